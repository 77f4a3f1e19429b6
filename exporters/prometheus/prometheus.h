/*
 * The prometheus exporter: the latest value of every series of the metrics pipelines that
 * name it, served at http://<endpoint>/metrics for a Prometheus server to scrape, named as
 * the Collector's prometheus exporter names them (dots to underscores, unit and _total
 * suffixes, namespace prefix; job and instance from service.name and service.instance.id).
 *
 * Threads: snapshots arrive on the pipeline loop (consume_metrics) and scrapes are answered on
 * the HTTP server's own thread; the series store is guarded by one mutex, held while a
 * snapshot is folded in and while a scrape renders.
 */
#ifndef TH_EXPORTER_PROMETHEUS_H
#define TH_EXPORTER_PROMETHEUS_H

#include <pthread.h>

#include "th/component.h"
#include "th/http_server.h"
#include "th/prom.h"
#include "th/tls.h"

struct th_prometheus_r2t_cfg {
    bool enabled;
};

/** The exporter's config, filled by its field table or built directly by tests. */
struct th_prometheus_exporter_cfg {
    const char *endpoint;   /**< host:port of the scrape endpoint (required) */
    const char *namespace_; /**< prefix of every metric name; "" for none */
    th_strmap_t const_labels;
    bool send_timestamps;
    int64_t metric_expiration; /**< ns; series not updated for this long are dropped */
    struct th_prometheus_r2t_cfg resource_to_telemetry_conversion;
    bool enable_open_metrics;
    bool add_metric_suffixes;
    bool without_scope_info;
    bool tls_enabled;             /**< `tls:` present: HTTPS (th/tls.h) */
    struct th_tls_server_cfg tls; /**< configtls server keys */
};

/** The ops table registered as exporter "prometheus". */
extern const struct th_component_ops th_exporter_prometheus_ops;

/* ---- Names (prometheus_render.c) ------------------------------------------------------- */

/**
 * The Prometheus name of a metric, as the Collector's translator builds it: the name split at
 * every character that is not a letter or digit and joined with '_', then (with @p suffixes)
 * the unit ("ms" → "milliseconds", "s" → "seconds", "By" → "bytes", "X/Y" → "X_per_Y",
 * "1" → "ratio" on gauges) unless the name holds it already, and "_total" on counters; then
 * the namespace prefix. A leading digit gets a '_' in front.
 * @param[out] out at least 256 bytes; longer names are cut.
 */
void th_prometheus_metric_name(const char *name, const char *unit, bool counter, bool gauge,
                               const char *namespace_, bool suffixes, char *out, size_t cap);

/**
 * A label name: characters other than letters, digits and '_' become '_'; a leading digit
 * gets "key_" in front, a single leading '_' gets "key".
 */
void th_prometheus_label_name(const char *name, char *out, size_t cap);

/**
 * Write one sample line in the text format 0.0.4 or in OpenMetrics: `name[suffix]{labels[,le]}
 * value[ timestamp][ # {trace_id,span_id} value time]`. The exemplar is written in OpenMetrics
 * only; the timestamp (ms in text, seconds in OpenMetrics) when @p ts_ms >= 0.
 * @param[in] le the bucket bound or NULL; written as "+Inf", or in OpenMetrics' canonical
 *            form ("2.0") when @p om.
 * @return 0 or TH_ENOMEM.
 */
int th__prometheus_write_sample(th_buf_t *out, bool om, const char *name, const char *suffix,
                                const struct th_prom_label *labels, size_t n_labels,
                                const double *le, double value, const struct th_exemplar *ex,
                                int64_t ts_ms);

/* ---- The series store (prometheus_store.c) -------------------------------------------- */

typedef struct th_prometheus_store th_prometheus_store_t;

/** What the store needs from the config. */
struct th_prometheus_store_cfg {
    const char *namespace_;
    bool add_metric_suffixes;
    bool resource_to_telemetry;
    uint64_t metric_expiration_ns;
    th_strmap_t const_labels;
    bool send_timestamps;
};

/** @return 0 or TH_ENOMEM. The config's strings must outlive the store. */
int th_prometheus_store_create(const struct th_prometheus_store_cfg *cfg,
                               th_prometheus_store_t **out);

/** Free the store; NULL is allowed. */
void th_prometheus_store_destroy(th_prometheus_store_t *s);

/**
 * Fold a snapshot into the store: cumulative points replace a series' value, delta points of
 * counters and histograms add to it. Exponential histograms are skipped (the text formats
 * have no place for them).
 * @param[in] mono_ns monotonic clock, for metric_expiration.
 * @return 0 or TH_ENOMEM (what was folded in before stays).
 * @note Takes the store's lock; the snapshot stays the caller's.
 */
int th_prometheus_store_add(th_prometheus_store_t *s, const th_metrics_t *m, uint64_t mono_ns);

/**
 * Render every live series (dropping expired ones first) into @p out.
 * @param[in] open_metrics OpenMetrics 1.0 (with exemplars and "# EOF") instead of the text
 *            format 0.0.4.
 * @return 0 or TH_ENOMEM.
 * @note Takes the store's lock.
 */
int th_prometheus_store_render(th_prometheus_store_t *s, bool open_metrics, uint64_t mono_ns,
                               th_buf_t *out);

/** @return the number of live series (target_info included). */
size_t th_prometheus_store_size(th_prometheus_store_t *s);

/* ---- The instance (prometheus.c) ------------------------------------------------------- */

struct th_prometheus_exporter {
    struct th_component base;
    const struct th_prometheus_exporter_cfg *cfg;
    th_prometheus_store_t *store;
    th_http_server_t *server;
    bool stopped;
};

#endif
