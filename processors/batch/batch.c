/*
 * The batch processor's ops table, config table and lifecycle glue. The queue and the
 * merging are in batch_merge.c, the triggers and the timer in batch_send.c, the cross-field
 * rules in batch_config.c.
 */
#include "processors/batch/batch.h"
#include "th/log.h"

#define CFG_OFF(f) offsetof(struct th_batch_processor_cfg, f)
/* The Collector's fields are uint32. */
#define U32_MAX 4294967295.0

static const struct th_cfg_field batch_config[] = {
    {
        .name = "send_batch_size",
        .type = TH_CFG_INT,
        .def = "8192",
        .offset = CFG_OFF(send_batch_size),
        .min = 0,
        .max = U32_MAX,
        .desc = "Spans that trigger sending a batch; 0: send every request at once (split by "
                "send_batch_max_size)",
    },
    {
        .name = "timeout",
        .type = TH_CFG_DURATION,
        .def = "200ms",
        .offset = CFG_OFF(timeout),
        .desc = "Time after which pending spans are sent whatever their number; 0: no timer, "
                "every request is sent at once",
    },
    {
        .name = "send_batch_max_size",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(send_batch_max_size),
        .min = 0,
        .max = U32_MAX,
        .desc = "The most spans in one sent batch, larger ones are split (0: no limit; else "
                ">= send_batch_size)",
    },
    {
        .name = "metadata_keys",
        .type = TH_CFG_STRLIST,
        .offset = CFG_OFF(metadata_keys),
        .desc = "Client metadata keys to batch by (accepted; batching by metadata is not "
                "supported yet: everything is batched together)",
    },
    {
        .name = "metadata_cardinality_limit",
        .type = TH_CFG_INT,
        .def = "1000",
        .offset = CFG_OFF(metadata_cardinality_limit),
        .min = 0,
        .max = U32_MAX,
        .flags = TH_CFG_F_NOOP,
        .desc = "The most distinct metadata_keys value combinations",
    },
    {.name = NULL},
};

static int batch_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct th_batch_processor *p = (struct th_batch_processor *)c;
    const struct th_batch_processor_cfg *cfg = cfg_;
    const char *why = NULL;
    if (!next && !c->metrics_next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    if (th__batch_processor_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    if (!next) {
        /* In a metrics pipeline: a connector already sends one snapshot per flush interval,
         * so snapshots pass straight through and no timer is needed. */
        th__batch_queue_init(&p->q, false);
        return 0;
    }
    p->send_batch_size = (uint64_t)cfg->send_batch_size;
    p->send_batch_max_size = (uint64_t)cfg->send_batch_max_size;
    /* libuv timers count milliseconds: a timeout under 1ms still gets a timer (of 1ms). */
    p->timeout_ms =
        cfg->timeout > 0 ? (uint64_t)(cfg->timeout / 1000000 + (cfg->timeout % 1000000 != 0)) : 0;
    /* Batches pass through unchanged, so whoever feeds us must treat us as whatever is behind
     * us: a mutating consumer downstream makes us a mutating consumer (a fan-out then gives
     * us our own copy), and split resources and scopes get copied for it. */
    c->consumer.caps |= next->caps;
    /* Holding acks buys nothing in front of a consumer that settles them at enqueue (an
     * in-memory sending queue): only a durable one makes "answered" mean "stored". */
    p->durable = (next->caps & TH_CAP_DURABLE) != 0;
    th__batch_queue_init(&p->q, (next->caps & TH_CAP_MUTATES) != 0);
    if (cfg->metadata_keys.n > 0) {
        th_log_warn(c, "metadata_keys is set, but batching by client metadata is not supported yet "
                       "(receivers do not pass client metadata): all data is batched together");
    }
    return 0;
}

static int batch_start(struct th_component *c, struct th_host *host)
{
    struct th_batch_processor *p = (struct th_batch_processor *)c;
    c->host = host;
    return c->next ? th__batch_processor_start(p, host->loop) : 0;
}

static int batch_shutdown(struct th_component *c)
{
    struct th_batch_processor *p = (struct th_batch_processor *)c;
    int ret = th__batch_processor_shutdown(p);
    c->shut_down = true;
    return ret;
}

static void batch_destroy(struct th_component *c)
{
    th__batch_processor_deinit((struct th_batch_processor *)c);
}

static int batch_consume(struct th_component *c, th_batch_t *batch)
{
    return th__batch_processor_consume((struct th_batch_processor *)c, batch);
}

static int batch_consume_metrics(struct th_component *c, th_metrics_t *m)
{
    return th_metrics_consumer_consume(c->metrics_next, m);
}

const struct th_component_ops th_processor_batch_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "batch",
    .signals = TH_SIGNAL_TRACES | TH_SIGNAL_METRICS,
    .stability = TH_STABILITY_BETA,
    .description = "Groups spans into batches by size and time (merging without copying)",
    .config_size = sizeof(struct th_batch_processor_cfg),
    .config = batch_config,
    .config_check = th__batch_processor_config_check,
    .instance_size = sizeof(struct th_batch_processor),
    .init = batch_init,
    .start = batch_start,
    .shutdown = batch_shutdown,
    .destroy = batch_destroy,
    .consume_traces = batch_consume,
    .consume_metrics = batch_consume_metrics,
};
