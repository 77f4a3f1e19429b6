/*
 * The memory_limiter's ops table, config table and lifecycle glue. The limiter itself is in
 * memory_limiter_check.c, the measuring in memory_limiter_mem.c, the config rules in
 * memory_limiter_config.c.
 */
#include "processors/memory_limiter/memory_limiter.h"
#include "th/log.h"

#define CFG_OFF(f) offsetof(struct th_memory_limiter_cfg, f)
/* The Collector's fields are uint32. */
#define U32_MAX 4294967295.0

/* Durations carry no bounds here: the Collector's own messages come from config_check. */
static const struct th_cfg_field memory_limiter_config[] = {
    {
        .name = "check_interval",
        .type = TH_CFG_DURATION,
        .def = "0s",
        .offset = CFG_OFF(check_interval),
        .desc = "Time between measurements of memory use (required, > 0; 1s is recommended)",
    },
    {
        .name = "limit_mib",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(limit_mib),
        .min = 0,
        .max = U32_MAX,
        .desc = "Hard limit in MiB of resident anonymous memory; wins over limit_percentage",
    },
    {
        .name = "spike_limit_mib",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(spike_limit_mib),
        .min = 0,
        .max = U32_MAX,
        .desc = "Expected spike between checks in MiB; soft limit = limit - spike (0: 20% of "
                "the limit)",
    },
    {
        .name = "limit_percentage",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(limit_percentage),
        .min = 0,
        .max = U32_MAX,
        .desc = "Hard limit in % of the memory available (cgroup limit, else MemTotal)",
    },
    {
        .name = "spike_limit_percentage",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(spike_limit_percentage),
        .min = 0,
        .max = U32_MAX,
        .desc = "Expected spike in % of the memory available (0: 20% of the limit)",
    },
    {
        .name = "min_gc_interval_when_soft_limited",
        .type = TH_CFG_DURATION,
        .def = "10s",
        .offset = CFG_OFF(min_gc_interval_when_soft_limited),
        .desc = "Least time between returning free memory to the system (malloc_trim) above "
                "the soft limit",
    },
    {
        .name = "min_gc_interval_when_hard_limited",
        .type = TH_CFG_DURATION,
        .def = "0s",
        .offset = CFG_OFF(min_gc_interval_when_hard_limited),
        .desc = "Least time between returning free memory to the system above the hard limit",
    },
    {
        .name = "max_gc_interval_when_soft_limited",
        .type = TH_CFG_DURATION,
        .def = "30s",
        .offset = CFG_OFF(max_gc_interval_when_soft_limited),
        .desc = "Cap of the backoff between trims that free too little, above the soft limit "
                "(0: no backoff)",
    },
    {
        .name = "max_gc_interval_when_hard_limited",
        .type = TH_CFG_DURATION,
        .def = "30s",
        .offset = CFG_OFF(max_gc_interval_when_hard_limited),
        .desc = "Cap of the backoff between trims that free too little, above the hard limit "
                "(0: no backoff)",
    },
    {.name = NULL},
};

static int ml_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    struct th_memory_limiter *ml = (struct th_memory_limiter *)c;
    const char *why = NULL;
    ml->statm_fd = -1;
    if (!next && !c->metrics_next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    if (th__memory_limiter_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    ml->cfg = cfg;
    ml->read_usage = th__memory_limiter_read_self;
    ml->trim = th__memory_limiter_trim;
    ml->now_ns = th_now_mono_ns;
    ml->total_memory = th__memory_limiter_total_memory;
    /* Batches pass through untouched: upstream must see what is behind us. */
    if (next) {
        c->consumer.caps |= next->caps;
    }
    return 0;
}

static int ml_start(struct th_component *c, struct th_host *host)
{
    c->host = host;
    return th__memory_limiter_start((struct th_memory_limiter *)c, host->loop);
}

static int ml_shutdown(struct th_component *c)
{
    th__memory_limiter_stop((struct th_memory_limiter *)c);
    c->shut_down = true;
    return 0;
}

static void ml_destroy(struct th_component *c)
{
    th__memory_limiter_stop((struct th_memory_limiter *)c);
}

static int ml_consume(struct th_component *c, th_batch_t *batch)
{
    return th__memory_limiter_consume((struct th_memory_limiter *)c, batch);
}

/* In a metrics pipeline: the periodic check keeps `refusing` current, and snapshots are few
 * and small, so they are only refused while memory is above the soft limit. */
static int ml_consume_metrics(struct th_component *c, th_metrics_t *m)
{
    struct th_memory_limiter *ml = (struct th_memory_limiter *)c;
    if (ml->stopped || ml->refusing) {
        th_metrics_release(m);
        return ml->stopped ? TH_ESHUTDOWN : TH_ENOMEM;
    }
    return th_metrics_consumer_consume(c->metrics_next, m);
}

const struct th_component_ops th_processor_memory_limiter_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "memory_limiter",
    .signals = TH_SIGNAL_TRACES | TH_SIGNAL_METRICS,
    .stability = TH_STABILITY_BETA,
    .description = "Refuses data (HTTP 503, gRPC UNAVAILABLE) while memory use is above the "
                   "soft limit",
    .config_size = sizeof(struct th_memory_limiter_cfg),
    .config = memory_limiter_config,
    .config_check = th__memory_limiter_config_check,
    .instance_size = sizeof(struct th_memory_limiter),
    .init = ml_init,
    .start = ml_start,
    .shutdown = ml_shutdown,
    .destroy = ml_destroy,
    .consume_traces = ml_consume,
    .consume_metrics = ml_consume_metrics,
};
