/*
 * The debug exporter's ops table, config table and lifecycle. It has no I/O to set up: each
 * batch is formatted and written synchronously in consume (debug_output.c), which is what
 * the Collector does too; it is a tool for looking at data, not for load.
 */
#include <string.h>

#include "exporters/debug/debug.h"

static const char *const verbosity_names[] = {"basic", "normal", "detailed", NULL};

static const struct th_cfg_field debug_config[] = {
    {
        .name = "verbosity",
        .type = TH_CFG_ENUM,
        .def = "basic",
        .offset = offsetof(struct th_debug_cfg, verbosity),
        .choices = verbosity_names,
        .desc = "How much to write per batch: basic (counts), normal (a line per span), "
                "detailed (every field)",
    },
    {
        .name = "sampling_initial",
        .type = TH_CFG_INT,
        .def = "2",
        .offset = offsetof(struct th_debug_cfg, sampling_initial),
        .min = 0,
        .max = 1e9,
        .desc = "Messages written each second before sampling starts",
    },
    {
        .name = "sampling_thereafter",
        .type = TH_CFG_INT,
        .def = "1",
        .offset = offsetof(struct th_debug_cfg, sampling_thereafter),
        .min = 0,
        .max = 1e9,
        .desc = "After sampling_initial in a second, write one message in this many "
                "(1: all, 0: none)",
    },
    {
        .name = "use_internal_logger",
        .type = TH_CFG_BOOL,
        .def = "true",
        .offset = offsetof(struct th_debug_cfg, use_internal_logger),
        .desc = "Write through the collector's own log (stderr); false writes plain text "
                "to stdout",
    },
    {.name = NULL},
};

int th__debug_verbosity_parse(const char *s)
{
    for (int i = 0; s && verbosity_names[i]; i++) {
        if (!strcmp(s, verbosity_names[i])) {
            return i;
        }
    }
    return -1;
}

/* The table bounds cover the numbers; the check repeats the verbosity rule for configs built
 * in C, which never went through the table. */
static int debug_config_check(const void *cfg, const char **err)
{
    const struct th_debug_cfg *dc = cfg;
    if (th__debug_verbosity_parse(dc->verbosity ? dc->verbosity : "basic") < 0) {
        *err = "verbosity must be one of basic, normal, detailed";
        return TH_ECONFIG;
    }
    if (dc->sampling_initial < 0 || dc->sampling_thereafter < 0) {
        *err = "sampling_initial and sampling_thereafter must not be negative";
        return TH_ECONFIG;
    }
    return 0;
}

static int debug_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    struct th_debug_exporter *d = (struct th_debug_exporter *)c;
    const struct th_debug_cfg *dc = cfg;
    const char *err = NULL;
    if (debug_config_check(cfg, &err) != 0) {
        return TH_ECONFIG;
    }
    d->verbosity = th__debug_verbosity_parse(dc->verbosity ? dc->verbosity : "basic");
    d->internal_logger = dc->use_internal_logger;
    th__debug_sampler_init(&d->sampler, (uint64_t)dc->sampling_initial,
                           (uint64_t)dc->sampling_thereafter);
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        return TH_ENOMEM;
    }
    d->lock_ready = true;
    return 0;
}

static int debug_start(struct th_component *c, struct th_host *host)
{
    c->host = host;
    c->started = true;
    return 0;
}

/* Nothing is buffered: every batch was written when it came. */
static int debug_shutdown(struct th_component *c)
{
    c->shut_down = true;
    return 0;
}

static void debug_destroy(struct th_component *c)
{
    struct th_debug_exporter *d = (struct th_debug_exporter *)c;
    /* A failed init may have stopped before the mutex existed. */
    if (d->lock_ready) {
        pthread_mutex_destroy(&d->lock);
        d->lock_ready = false;
    }
}

/* Formatting can only fail for memory, which may come back: the sender should retry. */
static int debug_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_debug_exporter *d = (struct th_debug_exporter *)c;
    int ret = th__debug_write_batch(d, batch->req);
    if (ret == 0) {
        __atomic_add_fetch(&c->stats.sent, batch->span_count, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&c->stats.failed, batch->span_count, __ATOMIC_RELAXED);
        ret = TH_ERETRY;
    }
    th_batch_release(batch);
    return ret;
}

const struct th_component_ops th_exporter_debug_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "debug",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_DEVELOPMENT,
    .description = "Writes batches to the log or stdout in the Collector's debug formats",
    .config_size = sizeof(struct th_debug_cfg),
    .config = debug_config,
    .config_check = debug_config_check,
    .instance_size = sizeof(struct th_debug_exporter),
    .init = debug_init,
    .start = debug_start,
    .shutdown = debug_shutdown,
    .destroy = debug_destroy,
    .consume_traces = debug_consume,
};
