/*
 * The collector's internal metrics: the Prometheus endpoint at
 * http://<service::telemetry::metrics endpoint>/metrics (default localhost:8888) with the
 * OpenTelemetry Collector's series (otelcol_receiver_*, otelcol_processor_*,
 * otelcol_exporter_*, otelcol_process_*, target_info), named as the Collector's default
 * reader names them (no `_total`, no unit suffix), and Tracehouse's own (tracehouse_store_*,
 * tracehouse_query_*, tracehouse_build_info). docs/metrics.md lists every series.
 *
 * A scrape is built on the endpoint's own thread from counters the components keep
 * (atomically, or as plain integers written by one thread: a reading may then lag by a few
 * updates, never tear on the 64-bit targets Tracehouse builds for).
 */
#ifndef TH_TELEMETRY_H
#define TH_TELEMETRY_H

#include "th/collector.h"
#include "th/config.h"
#include "th/histogram.h"
#include "th/otlp.h"
#include "th/prom.h"

/* ---- A scrape being built: families in first-seen order, samples grouped by family ---- */

typedef struct th_scrape th_scrape_t;

/**
 * Start an empty scrape.
 * @return the scrape, or NULL when memory is short. Free with th_scrape_destroy().
 */
th_scrape_t *th_scrape_create(void);

/** Free a scrape; NULL is allowed. */
void th_scrape_destroy(th_scrape_t *s);

/**
 * Add a counter, gauge or untyped sample. A sample whose family and labels (same names and
 * values, same order) were already added is summed into it, so per-pipeline instances of
 * one processor id give one series as in the Collector.
 * @param[in] name,help the family; static strings (they are kept, not copied).
 * @param[in] labels,n_labels copied.
 * @return 0, TH_ENOMEM, or TH_EINVAL when @p name was added before with another type.
 */
int th_scrape_add(th_scrape_t *s, const char *name, enum th_prom_type type, const char *help,
                  const struct th_prom_label *labels, size_t n_labels, double value);

/**
 * Add a histogram series (bucket counts per bucket, not cumulative; n_bounds + 1 of them).
 * Summed into an existing series with the same labels (the bounds must be the same).
 * @param[in] bounds static, ascending; kept, not copied.
 * @return 0, TH_ENOMEM, TH_EINVAL (a type or bounds mismatch with an earlier sample).
 */
int th_scrape_add_histogram(th_scrape_t *s, const char *name, const char *help,
                            const struct th_prom_label *labels, size_t n_labels,
                            const double *bounds, size_t n_bounds, const uint64_t *counts,
                            double sum);

/** th_scrape_add_histogram for a th_latency_histogram (in seconds). */
int th_scrape_add_latency(th_scrape_t *s, const char *name, const char *help,
                          const struct th_prom_label *labels, size_t n_labels,
                          const struct th_latency_histogram *h);

/**
 * Write the scrape in the Prometheus text format 0.0.4.
 * @return 0 or TH_ENOMEM.
 */
int th_scrape_write(const th_scrape_t *s, th_buf_t *out);

/* ---- What goes into a scrape ------------------------------------------------------------ */

/** Process-wide facts for target_info and the process series. */
struct th_telemetry_process {
    uint64_t start_unix_ns;      /**< when the process started (wall clock) */
    uint64_t start_mono_ns;      /**< the same on the monotonic clock, for uptime */
    char instance_id[37];        /**< service.instance.id: a random UUID, fixed per process */
    const th_strmap_t *resource; /**< service::telemetry::resource; may be NULL */
};

/**
 * Fill @p p for this process: now as the start, a fresh random UUID.
 * @param[in] resource service::telemetry::resource (kept), or NULL.
 */
void th_telemetry_process_init(struct th_telemetry_process *p, const th_strmap_t *resource);

/**
 * Add every series of a collector: target_info, build info, process, receivers, processors,
 * exporters, stores (jaeger_storage) and the query API (jaeger_query).
 * @param[in] level service::telemetry::metrics::level ("basic" leaves out the batch
 *            processor's series, as the Collector does; NULL means normal).
 * @return 0 or TH_ENOMEM.
 * @note Call while the collector's components exist and are not shutting down.
 */
int th_telemetry_collect(th_collector_t *c, const struct th_telemetry_process *p, const char *level,
                         th_scrape_t *s);

/** The process series alone (otelcol_process_*). @return 0 or TH_ENOMEM. */
int th__telemetry_collect_process(const struct th_telemetry_process *p, th_scrape_t *s);

/* ---- The endpoint ------------------------------------------------------------------------- */

typedef struct th_telemetry th_telemetry_t;

/**
 * Serve /metrics for @p c on cfg->metrics_endpoint, on a thread of its own.
 * @param[in] c the collector (created; it may be started later).
 * @param[in] cfg service::telemetry; must outlive the endpoint (the collector's config does).
 * @param[out] out the endpoint, or NULL when cfg->metrics_level is "none".
 * @param[out] err why it could not start (the endpoint named).
 * @return 0, TH_EADDRINUSE, TH_EINVAL (a bad endpoint), TH_EIO, TH_ENOMEM.
 * @note Stop it before the collector's components shut down: th_collector_on_shutdown().
 */
int th_telemetry_start(th_collector_t *c, const struct th_telemetry_cfg *cfg, th_telemetry_t **out,
                       char *err, size_t errlen);

/** @return the port the endpoint listens on (useful with port 0). */
int th_telemetry_port(const th_telemetry_t *t);

/** Stop serving and free; NULL is allowed. */
void th_telemetry_stop(th_telemetry_t *t);

#endif
