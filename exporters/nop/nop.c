/*
 * The nop exporter: accepts every batch and releases it at once. Nothing is encoded, copied
 * or counted beyond the generic component stats, so a pipeline ending here measures the cost
 * of receiving and decoding alone.
 */
#include "exporters/nop/nop.h"

/* The Collector's nop exporter has no settings either: the table is only the terminator. */
static const struct th_cfg_field nop_config[] = {
    {.name = NULL},
};

/* Discarding counts as sending: the spans reached their destination, which is nowhere. */
static int nop_consume(struct th_component *c, th_batch_t *batch)
{
    __atomic_add_fetch(&c->stats.sent, batch->span_count, __ATOMIC_RELAXED);
    th_batch_release(batch);
    return 0;
}

const struct th_component_ops th_exporter_nop_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "nop",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_STABLE,
    .description = "Accepts every batch and discards it (benchmark ceiling, sink)",
    .config_size = sizeof(struct th_nop_cfg),
    .config = nop_config,
    .instance_size = sizeof(struct th_component),
    .consume_traces = nop_consume,
};
