/*
 * The attributes processor component: the ops table and the lifecycle glue. The config layer
 * is attributes_config.c, the actions and filters attributes_proc.c.
 */
#include "th/log.h"
#include "processors/attributes/attributes.h"

struct attributes_processor {
    struct th_component base; /* first, as the core requires */
    th_attributes_proc_t *proc;
};

static int attributes_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    struct attributes_processor *ap = (struct attributes_processor *)c;
    char err[1024];
    if (!next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    /* Batches go on synchronously with their acks, so an ack settles when the consumer behind
     * us settles it: we are as durable as it is. */
    c->consumer.caps |= next->caps & TH_CAP_DURABLE;
    /* The settings are only needed while the processor copies them. */
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        return TH_ENOMEM;
    }
    struct th_attributes_settings s;
    int ret = th_attributes_settings_decode(cfg, a, &s, err, sizeof(err));
    if (ret == 0) {
        ret = th_attributes_proc_create(&s, &ap->proc, err, sizeof(err));
    }
    th_arena_destroy(a);
    if (ret != 0) {
        th_log_error(c, "%s", err);
    }
    return ret;
}

static int attributes_start(struct th_component *c, struct th_host *host)
{
    struct attributes_processor *ap = (struct attributes_processor *)c;
    (void)host;
    if (th_attributes_proc_uses_context(ap->proc)) {
        th_log_warn(c, "from_context: client metadata is not available in Tracehouse yet, so "
                       "these actions always find their source missing (default_value applies)");
    }
    return 0;
}

static void attributes_destroy(struct th_component *c)
{
    struct attributes_processor *ap = (struct attributes_processor *)c;
    th_attributes_proc_destroy(ap->proc);
    ap->proc = NULL;
}

/* Runs on the pipeline's loop thread, the only user of the processor's match data. */
static int attributes_consume(struct th_component *c, th_batch_t *batch)
{
    struct attributes_processor *ap = (struct attributes_processor *)c;
    int ret = th_attributes_proc_traces(ap->proc, batch);
    if (ret != 0) {
        /* The batch may be half processed: it must not go on. */
        th_log_error(c, "processing a batch: %s", th_strerror(ret));
        th_batch_fail(batch, ret);
        th_batch_release(batch);
        return ret;
    }
    return th_consumer_consume(c->next, batch);
}

const struct th_component_ops th_processor_attributes_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "attributes",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .caps = TH_CAP_MUTATES,
    .description = "Inserts, updates, deletes, hashes, extracts and converts span attributes",
    .config_size = sizeof(struct th_attributes_cfg),
    .config = th_attributes_config_fields,
    .config_check = th_attributes_config_check,
    .instance_size = sizeof(struct attributes_processor),
    .init = attributes_init,
    .start = attributes_start,
    .destroy = attributes_destroy,
    .consume_traces = attributes_consume,
};
