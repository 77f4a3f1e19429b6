/*
 * The collector: the pipeline graph built from a config, and its lifecycle. main() is thin:
 * it parses the command line and hands a config to these functions, so tests can build and
 * run whole pipelines in-process.
 */
#ifndef TH_COLLECTOR_H
#define TH_COLLECTOR_H

#include <uv.h>

#include "th/component.h"
#include "th/config.h"

typedef struct th_collector th_collector_t;

/**
 * Build the graph: decode and check every configured component's config, check the
 * pipelines' references, create (init, no I/O) every component a pipeline uses, and wire
 * receivers → processors → fan-out → exporters. A connector (span_metrics) is one instance
 * that is an exporter of the traces pipelines naming it and feeds the metrics pipelines that
 * name it as a receiver; metrics pipelines are wired first for that reason.
 * @param[in] cfg the parsed config; the collector takes it over (also on failure).
 * @param[in] loop the loop components run on; NULL for a collector that is only validated.
 * @param[out] out the collector.
 * @param[out] err on failure, a message naming the key path.
 * @return 0, TH_ECONFIG, TH_ENOMEM, or a component's init error.
 */
int th_collector_create(th_config_t *cfg, uv_loop_t *loop, th_collector_t **out, char *err,
                        size_t errlen);

/**
 * Start everything: extensions, exporters, processors (from the exporters back), receivers.
 * On failure, what was started is shut down again.
 * @return 0, or the first component's start error (logged with its id).
 */
int th_collector_start(th_collector_t *c);

/**
 * Stop in the reverse order: receivers stop taking data, processors flush into exporters,
 * exporters flush, extensions stop. Idempotent; safe without start.
 * @return 0, or the first shutdown error (every component is still shut down).
 */
int th_collector_shutdown(th_collector_t *c);

/** Free the graph and the config; NULL is allowed. Shuts down first if needed. */
void th_collector_destroy(th_collector_t *c);

/**
 * Run the loop until SIGTERM or SIGINT (or th_collector_stop()), then shut down and let the
 * loop finish closing handles.
 * @return 0 after a clean shutdown, or the first error.
 */
int th_collector_run(th_collector_t *c);

/** Ask a running collector to shut down; safe from any thread and from signal context. */
void th_collector_stop(th_collector_t *c);

/**
 * Find an instance by kind and id ("otlp", "batch/fast"); processors are per pipeline, so
 * this returns the first pipeline's instance of a processor.
 * @return the instance, or NULL.
 */
struct th_component *th_collector_find(th_collector_t *c, enum th_kind kind, const char *id);

/** Called by th_collector_foreach_component for each instance. */
typedef void (*th_collector_each_fn)(void *data, struct th_component *comp, const char *pipeline);

/**
 * Visit every component instance in start order (extensions, exporters, processors,
 * receivers). Processors are per pipeline, so one processor id may come several times, each
 * with its @p pipeline id; other kinds come once with pipeline NULL.
 * @note The set of instances is fixed from create to destroy: safe from another thread
 *       while the collector runs (what each instance's state allows is the caller's concern).
 */
void th_collector_foreach_component(th_collector_t *c, th_collector_each_fn fn, void *data);

/**
 * Register one function to call when shutdown begins, before any component is shut down
 * (the internal metrics endpoint stops there, so it never reads a component that is going
 * away). A second call replaces the first. Not called if the collector never shuts down
 * (destroyed without start): the caller then cleans up itself.
 */
void th_collector_on_shutdown(th_collector_t *c, void (*fn)(void *data), void *data);

/** @return the embedded default config (YAML text), used when no --config is given. */
const char *th_default_config(void);

#endif
