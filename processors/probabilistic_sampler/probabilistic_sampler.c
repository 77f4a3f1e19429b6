/*
 * The probabilistic sampler component: the ops table and the lifecycle glue. The config
 * layer is probabilistic_sampler_config.c, the decisions probabilistic_sampler_decide.c and
 * the tracestate handling probabilistic_sampler_tracestate.c.
 */
#include "th/log.h"
#include "processors/probabilistic_sampler/probabilistic_sampler.h"

struct psampler_processor {
    struct th_component base; /* first, as the core requires */
    th_probabilistic_sampler_t *ps;
};

static int psampler_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct psampler_processor *pp = (struct psampler_processor *)c;
    const struct th_probabilistic_sampler_cfg *cfg = cfg_;
    char err[512];
    if (!next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    /* Batches go on synchronously with their acks, so an ack settles when the consumer behind
     * us settles it: we are as durable as it is. */
    c->consumer.caps |= next->caps & TH_CAP_DURABLE;
    struct th_probabilistic_sampler_settings s;
    int ret = th_probabilistic_sampler_settings_from_cfg(cfg, &s, err, sizeof(err));
    if (ret == 0) {
        ret = th_probabilistic_sampler_create(&s, &pp->ps, err, sizeof(err));
    }
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    if (s.sampling_percentage == 0) {
        /* The Collector's default: legal, and almost always a forgotten key. */
        th_log_warn(c, "sampling_percentage is 0: every span is dropped (unless its "
                       "sampling.priority keeps it)");
    }
    return 0;
}

static void psampler_destroy(struct th_component *c)
{
    struct psampler_processor *pp = (struct psampler_processor *)c;
    th_probabilistic_sampler_destroy(pp->ps);
    pp->ps = NULL;
}

static int psampler_consume(struct th_component *c, th_batch_t *batch)
{
    struct psampler_processor *pp = (struct psampler_processor *)c;
    size_t dropped = 0;
    int ret = th_probabilistic_sampler_batch(pp->ps, batch, &dropped);
    __atomic_add_fetch(&c->stats.dropped, dropped, __ATOMIC_RELAXED);
    if (ret != 0) {
        /* Out of memory writing a kept span's tracestate: the decisions stand, and the
         * spans go on with the tracestate they arrived with. */
        th_log_warn(c, "updating the tracestate of kept spans: %s", th_strerror(ret));
    }
    if (batch->span_count == 0) {
        /* Everything was dropped on purpose: the acks settle as delivered. */
        th_batch_release(batch);
        return 0;
    }
    return th_consumer_consume(c->next, batch);
}

const struct th_component_ops th_processor_probabilistic_sampler_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "probabilistic_sampler",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .caps = TH_CAP_MUTATES,
    .description = "Keeps a percentage of traces, decided from the trace id (hash_seed, "
                   "proportional, equalizing)",
    .config_size = sizeof(struct th_probabilistic_sampler_cfg),
    .config = th_probabilistic_sampler_config_fields,
    .config_check = th_probabilistic_sampler_config_check,
    .instance_size = sizeof(struct psampler_processor),
    .init = psampler_init,
    .destroy = psampler_destroy,
    .consume_traces = psampler_consume,
};
