/*
 * jaeger_storage_exporter: the ops table, config table and lifecycle glue. The work is in
 * jaeger_storage_exporter_writer.c.
 */
#include <stddef.h>

#include "exporters/jaeger_storage/jaeger_storage_exporter.h"
#include "th/jaeger_storage.h"
#include "th/log.h"

#define CFG_OFF(f) offsetof(struct th_jaeger_storage_exporter_cfg, f)
/* Rows of a section are relative to the section's own struct. */
#define QUEUE_OFF(f) offsetof(struct th_jse_queue_cfg, f)

static const char *const sizers[] = {"requests", "items", NULL};

static const struct th_cfg_field queue_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = QUEUE_OFF(enabled),
     .desc = "queue batches for the writer thread (always on: the event loop never waits)"},
    {.name = "queue_size",
     .type = TH_CFG_INT,
     .def = "1000",
     .offset = QUEUE_OFF(queue_size),
     .min = 1,
     .max = 1000000,
     .desc = "batches waiting for the writer at most; then 503"},
    {.name = "num_consumers",
     .type = TH_CFG_INT,
     .def = "1",
     .offset = QUEUE_OFF(num_consumers),
     .min = 1,
     .max = 1024,
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: the store has one writer"},
    {.name = "blocking",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = QUEUE_OFF(blocking),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: a full queue answers 503"},
    {.name = "sizer",
     .type = TH_CFG_ENUM,
     .def = "requests",
     .offset = QUEUE_OFF(sizer),
     .choices = sizers,
     .flags = TH_CFG_F_NOOP,
     .desc = "unit of queue_size (requests)"},
    {.name = NULL},
};

static const struct th_cfg_field config[] = {
    {.name = "trace_storage",
     .type = TH_CFG_STRING,
     .offset = CFG_OFF(trace_storage),
     .flags = TH_CFG_F_REQUIRED,
     .desc = "name of the backend in extensions::jaeger_storage::backends"},
    {.name = "queue",
     .type = TH_CFG_SECTION,
     .offset = CFG_OFF(queue),
     .sub = queue_fields,
     .desc = "the queue in front of the writer thread"},
    {.name = "max_queue_bytes",
     .type = TH_CFG_SIZE,
     .def = "64MiB",
     .offset = CFG_OFF(max_queue_bytes),
     .min = 1024,
     .max = 68719476736.0,
     .desc = "memory of queued batches at most; beyond it senders get 503 and retry"},
    {.name = "max_batches_per_txn",
     .type = TH_CFG_INT,
     .def = "64",
     .offset = CFG_OFF(max_batches_per_txn),
     .min = 1,
     .max = 100000,
     .desc = "group commit: batches written in one transaction at most"},
    {.name = "retention_interval",
     .type = TH_CFG_DURATION,
     .def = "30s",
     .offset = CFG_OFF(retention_interval),
     .min = 1e6,
     .max = 8.64e13,
     .desc = "how often the writer enforces the store's retention"},
    {.name = "commit_delay",
     .type = TH_CFG_DURATION,
     .def = "2ms",
     .offset = CFG_OFF(commit_delay),
     .min = 0,
     .max = 1e9,
     .desc = "group commit: how long a small group (under 4096 spans) waits for more batches "
             "before its commit; each commit rewrites and syncs the index pages it touches, so "
             "fewer, larger commits cost less CPU per span (0: commit at once)"},
    {.name = "retry_on_failure",
     .type = TH_CFG_NODE,
     .offset = CFG_OFF(retry_on_failure),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: failures go back to the sender"},
    {.name = NULL},
};

static int jse_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    (void)next;
    struct th_jaeger_storage_exporter *e = (struct th_jaeger_storage_exporter *)c;
    e->cfg = cfg;
    int ret = th__jse_writer_init(
        &e->writer, c, (size_t)e->cfg->queue.queue_size, (size_t)e->cfg->max_queue_bytes,
        (size_t)e->cfg->max_batches_per_txn, (uint64_t)e->cfg->retention_interval);
    if (ret == 0) {
        th__jse_writer_set_commit_delay(&e->writer, (uint64_t)e->cfg->commit_delay);
    }
    return ret;
}

static int jse_start(struct th_component *c, struct th_host *host)
{
    struct th_jaeger_storage_exporter *e = (struct th_jaeger_storage_exporter *)c;
    th_store_t *store = NULL;
    int ret = th_jaeger_storage_find(host, e->cfg->trace_storage, &store);
    if (ret != 0) {
        th_log_error(c,
                     "trace_storage \"%s\": no such backend; add it under "
                     "extensions::jaeger_storage::backends and list jaeger_storage in "
                     "service::extensions",
                     e->cfg->trace_storage);
        return ret;
    }
    return th__jse_writer_start(&e->writer, store);
}

static int jse_shutdown(struct th_component *c)
{
    struct th_jaeger_storage_exporter *e = (struct th_jaeger_storage_exporter *)c;
    th__jse_writer_stop(&e->writer);
    return 0;
}

static void jse_destroy(struct th_component *c)
{
    struct th_jaeger_storage_exporter *e = (struct th_jaeger_storage_exporter *)c;
    th__jse_writer_stop(&e->writer);
    th__jse_writer_deinit(&e->writer);
}

static int jse_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_jaeger_storage_exporter *e = (struct th_jaeger_storage_exporter *)c;
    return th__jse_writer_push(&e->writer, batch);
}

void th_jaeger_storage_exporter_queue_stats(const struct th_component *c, uint64_t *size,
                                            uint64_t *capacity, uint64_t *enqueue_failed)
{
    const struct th_jaeger_storage_exporter *e = (const struct th_jaeger_storage_exporter *)c;
    if (size) {
        *size = __atomic_load_n(&e->writer.count, __ATOMIC_RELAXED);
    }
    if (capacity) {
        *capacity = e->writer.cap;
    }
    if (enqueue_failed) {
        *enqueue_failed = __atomic_load_n(&e->writer.enqueue_failed, __ATOMIC_RELAXED);
    }
}

const struct th_component_ops th_exporter_jaeger_storage_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "jaeger_storage_exporter",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_ALPHA,
    .caps = TH_CAP_DURABLE, /* acks settle after the store's commit */
    .description = "Writes spans into a jaeger_storage backend (the LMDB span store)",
    .config_size = sizeof(struct th_jaeger_storage_exporter_cfg),
    .config = config,
    .instance_size = sizeof(struct th_jaeger_storage_exporter),
    .init = jse_init,
    .start = jse_start,
    .shutdown = jse_shutdown,
    .destroy = jse_destroy,
    .consume_traces = jse_consume,
};
