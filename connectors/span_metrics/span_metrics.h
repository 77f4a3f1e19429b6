/*
 * The span_metrics connector: RED metrics (calls, errors through status.code, duration
 * histograms) aggregated from spans, per service, span name, kind, status and configured
 * dimensions, as the Collector's spanmetrics connector makes them. It is an exporter of
 * traces pipelines and a receiver of metrics pipelines: every metrics_flush_interval it hands
 * a snapshot (th_metrics_t) to the metrics pipelines that name it.
 *
 * Threads: consume, the flush timer and shutdown all run on the pipeline loop (host->loop),
 * so the aggregation state needs no lock.
 *
 * Hot path: one hash of the dimension key per span (two with calls_dimensions or
 * histogram.dimensions), a lookup in an open hash table, and counter updates; memory is
 * allocated only when a new series appears or the key scratch buffer grows.
 */
#ifndef TH_CONNECTOR_SPAN_METRICS_H
#define TH_CONNECTOR_SPAN_METRICS_H

#include "th/component.h"

/** A configured dimension: an attribute looked up on the span, then on its resource. */
struct th_span_metrics_dim {
    const char *name;
    size_t name_len;
    const char *def; /**< the default when absent, or NULL: then the dimension is omitted */
};

/** A list of dimensions (decoded by th_span_metrics_dims_decode). */
struct th_span_metrics_dims {
    struct th_span_metrics_dim *v;
    size_t n;
};

struct th_span_metrics_explicit_cfg {
    th_strlist_t buckets; /**< durations as text ("2ms"), parsed at init */
};

struct th_span_metrics_exponential_cfg {
    int64_t max_size;
};

struct th_span_metrics_histogram_cfg {
    bool disable;
    const char *unit; /**< "ms" or "s" */
    bool has_explicit;
    struct th_span_metrics_explicit_cfg explicit_;
    bool has_exponential;
    struct th_span_metrics_exponential_cfg exponential;
    const th_node_t *dimensions; /**< list of {name, default} */
};

struct th_span_metrics_exemplars_cfg {
    bool enabled;
    int64_t max_per_data_point; /**< 0: unset (TH_SPAN_METRICS_DEFAULT_EXEMPLARS) */
};

struct th_span_metrics_events_cfg {
    bool enabled;
    const th_node_t *dimensions;
};

/** The connector's config, filled by its field table or built directly by tests. */
struct th_span_metrics_cfg {
    struct th_span_metrics_histogram_cfg histogram;
    const th_node_t *dimensions;       /**< list of {name, default} for both metrics */
    const th_node_t *calls_dimensions; /**< extra dimensions of calls only */
    th_strlist_t exclude_dimensions;   /**< default dimensions to leave out */
    int64_t dimensions_cache_size;     /**< deprecated; accepted (series hold their attributes) */
    int64_t aggregation_cardinality_limit; /**< series per resource and metric; 0: none */
    int64_t resource_metrics_cache_size;
    th_strlist_t resource_metrics_key_attributes;
    const char *aggregation_temporality;
    const char *namespace_;
    int64_t metrics_flush_interval; /**< ns */
    int64_t metrics_expiration;     /**< ns; 0: never */
    int64_t series_expiration;      /**< ns; 0: never */
    int64_t metric_timestamp_cache_size;
    struct th_span_metrics_exemplars_cfg exemplars;
    struct th_span_metrics_events_cfg events;
    th_strlist_t include_instrumentation_scope;
    bool add_resource_attributes;
    bool enable_metrics_sampling_method;
};

/** Exemplars kept per data point and flush interval when max_per_data_point is unset. */
#define TH_SPAN_METRICS_DEFAULT_EXEMPLARS 16
/** The scale an exponential histogram starts at (the finest the Collector uses). */
#define TH_SPAN_METRICS_EXP_MAX_SCALE 20

/** The ops table registered as connector "span_metrics" (alias "spanmetrics"). */
extern const struct th_component_ops th_connector_span_metrics_ops;

/* ---- Config (span_metrics_config.c) ---------------------------------------------------- */

/**
 * The rules across fields, with the Collector's messages: duplicate dimension names
 * (`failed validating dimensions: duplicate dimension name X`), explicit and exponential
 * together, negative durations, bad bucket durations, a zero flush interval.
 * @return 0 or TH_ECONFIG with *err set (a static buffer: config checks run at start-up).
 */
int th__span_metrics_config_check(const void *cfg, const char **err);

/**
 * Decode a dimension list node ([{name, default}]) into @p out.
 * @param[in] node a SEQ node, or NULL/NULL node for none.
 * @param[out] why a message on failure (static buffer).
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 * @note Entries are allocated with th_malloc; free with th_span_metrics_dims_free().
 */
int th_span_metrics_dims_decode(const th_node_t *node, struct th_span_metrics_dims *out,
                                const char **why);

/** Free what th_span_metrics_dims_decode allocated. */
void th_span_metrics_dims_free(struct th_span_metrics_dims *d);

/* ---- The aggregation (span_metrics_agg.c) ---------------------------------------------- */

typedef struct th_span_metrics_agg th_span_metrics_agg_t;

/** What the aggregation needs, resolved from the config (tests build it directly). */
struct th_span_metrics_agg_cfg {
    struct th_span_metrics_dims dims;       /**< both metrics */
    struct th_span_metrics_dims calls_dims; /**< calls only */
    struct th_span_metrics_dims hist_dims;  /**< duration only */
    /** Default dimensions left out: bit 0 service.name, 1 span.name, 2 span.kind,
     *  3 status.code. */
    unsigned exclude;
    bool histogram_disabled;
    bool exponential;     /**< else explicit bounds */
    const double *bounds; /**< explicit: ascending, in unit; copied */
    size_t n_bounds;
    int32_t exp_max_size;       /**< exponential: buckets at most */
    bool unit_seconds;          /**< else milliseconds */
    bool delta;                 /**< else cumulative */
    uint64_t cardinality_limit; /**< 0: none */
    uint64_t metrics_expiration_ns;
    uint64_t series_expiration_ns;
    bool exemplars;
    size_t max_exemplars;   /**< per data point and flush; > 0 when exemplars */
    const char *namespace_; /**< "" for none */
    bool add_resource_attributes;
    const char *const *resource_key_attrs; /**< NULL: every attribute keys a resource */
    size_t n_resource_key_attrs;
};

/** Counters of an aggregation. */
struct th_span_metrics_agg_stats {
    uint64_t spans;      /**< spans aggregated */
    uint64_t skipped;    /**< spans whose resource has no service.name */
    uint64_t series;     /**< series alive */
    uint64_t overflowed; /**< spans counted in an overflow series */
    uint64_t resources;  /**< resources alive */
};

/**
 * Create an aggregation. The config's dimension lists are taken over (freed by destroy) and
 * the bounds copied.
 * @return 0 or TH_ENOMEM.
 */
int th_span_metrics_agg_create(const struct th_span_metrics_agg_cfg *cfg,
                               th_span_metrics_agg_t **out);

/** Free an aggregation; NULL is allowed. */
void th_span_metrics_agg_destroy(th_span_metrics_agg_t *a);

/**
 * Count the spans of a request.
 * @param[in] now_ns wall clock, the start time of series created now.
 * @param[in] mono_ns monotonic clock, for expiration.
 * @return 0, or TH_ENOMEM (spans counted before the failure stay counted).
 */
int th_span_metrics_agg_add(th_span_metrics_agg_t *a, const th_otlp_request_t *req, uint64_t now_ns,
                            uint64_t mono_ns);

/**
 * Build a snapshot of the current state, then reset what the temporality says (delta:
 * counters; both: exemplars) and expire stale series and resources.
 * @param[out] out the snapshot (one reference), or NULL when there is nothing to send.
 * @return 0 or TH_ENOMEM (the state is left as it was).
 */
int th_span_metrics_agg_flush(th_span_metrics_agg_t *a, uint64_t now_ns, uint64_t mono_ns,
                              th_metrics_t **out);

/** @return the counters. */
struct th_span_metrics_agg_stats th_span_metrics_agg_stats(const th_span_metrics_agg_t *a);

/**
 * The exponential histogram index of @p v (> 0) at @p scale: the i with
 * base^i < v <= base^(i+1), base = 2^(2^-scale). Exposed for tests.
 */
int64_t th_span_metrics_exp_index(double v, int32_t scale);

/* ---- The instance (span_metrics.c) ----------------------------------------------------- */

struct th_span_metrics {
    struct th_component base;
    th_span_metrics_agg_t *agg;
    uint64_t flush_ms;
    uv_timer_t *timer; /**< freed by its close callback */
    bool stopped;
    uint64_t flush_failures;
};

#endif
