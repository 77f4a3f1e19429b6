/*
 * Metrics as they flow through a metrics pipeline: an immutable snapshot of metric families
 * (resource → scope → metric → data points), the shape of an OTLP ExportMetricsServiceRequest
 * cut down to what Tracehouse produces: sums, gauges, explicit-bucket and base-2 exponential
 * histograms, with string attributes and exemplars that point at traces.
 *
 * A snapshot lives in one arena and is reference counted: a fan-out to several exporters
 * shares it read-only, and the last release frees the arena. Nobody changes a snapshot once
 * it is handed on, so there is no "mutates" capability for metrics.
 *
 * Metrics have their own consumer (struct th_metrics_consumer) beside the traces consumer of
 * component.h; a component that takes metrics sets consume_metrics in its ops table.
 */
#ifndef TH_METRICS_H
#define TH_METRICS_H

#include "th/arena.h"
#include "th/common.h"

/** One attribute of a resource or a data point. Values are strings, as Prometheus labels
 *  are; typed span attributes are rendered as text by whoever builds the snapshot. */
struct th_metric_attr {
    const char *key;
    const char *value;
};

enum th_metric_type {
    TH_METRIC_SUM,           /**< value; monotonic or not */
    TH_METRIC_GAUGE,         /**< value */
    TH_METRIC_HISTOGRAM,     /**< count, sum, buckets over th_metric::bounds */
    TH_METRIC_EXP_HISTOGRAM, /**< count, sum, scale, zero_count, offset + buckets */
};

enum th_temporality {
    TH_TEMPORALITY_CUMULATIVE, /**< since start_ns, which stays put across snapshots */
    TH_TEMPORALITY_DELTA,      /**< since the previous snapshot (start_ns = its time_ns) */
};

/** A sample that links a data point to a span. */
struct th_exemplar {
    double value;         /**< the span's duration, in the metric's unit */
    uint64_t time_ns;     /**< when the span ended (wall clock) */
    uint8_t trace_id[16]; /**< all zero: none */
    uint8_t span_id[8];
};

/** One series of a metric at one time. */
struct th_metric_point {
    const struct th_metric_attr *attrs; /**< sorted by nothing in particular; unique keys */
    size_t n_attrs;
    uint64_t start_ns; /**< wall clock ns */
    uint64_t time_ns;  /**< wall clock ns */
    double value;      /**< SUM, GAUGE */
    uint64_t count;    /**< histograms: observations */
    double sum;        /**< histograms: their total */
    /** HISTOGRAM: n_bounds + 1 counts (not cumulative), the last one above every bound.
     *  EXP_HISTOGRAM: counts of the positive buckets offset .. offset + n_buckets - 1, bucket
     *  i holding values in (base^i, base^(i+1)] with base = 2^(2^-scale). */
    const uint64_t *buckets;
    size_t n_buckets;
    int32_t scale;       /**< EXP_HISTOGRAM */
    int32_t offset;      /**< EXP_HISTOGRAM: index of buckets[0] */
    uint64_t zero_count; /**< EXP_HISTOGRAM: observations equal to 0 */
    const struct th_exemplar *exemplars;
    size_t n_exemplars;
};

/** One metric family. */
struct th_metric {
    const char *name;        /**< OTel name, e.g. "traces.span.metrics.calls" */
    const char *unit;        /**< UCUM, e.g. "ms", "s", "1", or "" */
    const char *description; /**< "" when none */
    enum th_metric_type type;
    enum th_temporality temporality; /**< SUM and histograms */
    bool monotonic;                  /**< SUM */
    const double *bounds;            /**< HISTOGRAM: ascending upper bounds, shared by points */
    size_t n_bounds;
    struct th_metric_point *points;
    size_t n_points;
};

/** The instrumentation scope that produced some metrics. */
struct th_metric_scope {
    const char *name;
    const char *version;
    struct th_metric *metrics;
    size_t n_metrics;
};

/** What the metrics describe (service.name and the like). */
struct th_metric_resource {
    const struct th_metric_attr *attrs;
    size_t n_attrs;
    struct th_metric_scope *scopes;
    size_t n_scopes;
};

/** A snapshot: everything below lives in arena. */
typedef struct th_metrics {
    th_arena_t *arena;
    uint32_t refs; /**< atomic */
    struct th_metric_resource *resources;
    size_t n_resources;
} th_metrics_t;

/**
 * Make an empty snapshot owning @p arena, with one reference.
 * @param[in] arena where the snapshot and everything it points to are allocated; taken over
 *            on success (on failure it is still the caller's).
 * @return the snapshot, or NULL when memory is short.
 */
th_metrics_t *th_metrics_create(th_arena_t *arena);

/** Add a reference, for a fan-out that shares the snapshot. */
void th_metrics_retain(th_metrics_t *m);

/** Drop a reference; the last one frees the arena. NULL is allowed. */
void th_metrics_release(th_metrics_t *m);

/** @return the number of data points in the snapshot. */
size_t th_metrics_point_count(const th_metrics_t *m);

/**
 * Something that takes metric snapshots: a processor, an exporter, or a fan-out.
 */
struct th_metrics_consumer {
    /**
     * Take a snapshot.
     * @note Ownership of the caller's reference passes to the callee whatever the result.
     * @return 0, TH_ERETRY, TH_EPERM, TH_ENOMEM, TH_ESHUTDOWN.
     */
    int (*consume)(struct th_metrics_consumer *self, th_metrics_t *m);
};

/** Hand a snapshot to a consumer (see struct th_metrics_consumer). */
static inline int th_metrics_consumer_consume(struct th_metrics_consumer *c, th_metrics_t *m)
{
    return c->consume(c, m);
}

/** A fan-out of metric snapshots to several consumers, each given one reference. */
struct th__metrics_fanout {
    struct th_metrics_consumer base;
    struct th_metrics_consumer **out;
    size_t n;
};

/**
 * Create a fan-out over @p n consumers (the array is copied).
 * @return the fan-out, or NULL when memory is short.
 * @note Internal to the collector; free with th__metrics_fanout_destroy().
 */
struct th__metrics_fanout *th__metrics_fanout_create(struct th_metrics_consumer **out, size_t n);

/** Free a fan-out; NULL is allowed. */
void th__metrics_fanout_destroy(struct th__metrics_fanout *f);

#endif
