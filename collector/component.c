/*
 * The registry of built-in components and the generic part of every instance: allocation,
 * the consumer that dispatches to the ops table, and orderly destruction.
 */
#include <string.h>

#include "th/component.h"

const char *th_kind_name(enum th_kind kind)
{
    switch (kind) {
    case TH_KIND_RECEIVER:
        return "receiver";
    case TH_KIND_PROCESSOR:
        return "processor";
    case TH_KIND_EXPORTER:
        return "exporter";
    case TH_KIND_EXTENSION:
        return "extension";
    case TH_KIND_CONNECTOR:
        return "connector";
    }
    return "component";
}

const char *th_stability_name(enum th_stability s)
{
    switch (s) {
    case TH_STABILITY_DEVELOPMENT:
        return "development";
    case TH_STABILITY_ALPHA:
        return "alpha";
    case TH_STABILITY_BETA:
        return "beta";
    case TH_STABILITY_STABLE:
        return "stable";
    }
    return "unknown";
}

const struct th_component_ops *th_registry_find(enum th_kind kind, const char *type)
{
    for (size_t i = 0; th_builtin[i]; i++) {
        const struct th_component_ops *ops = th_builtin[i];
        if (ops->kind != kind) {
            continue;
        }
        if (!strcmp(ops->type, type) || (ops->alias && !strcmp(ops->alias, type))) {
            return ops;
        }
    }
    return NULL;
}

/* The consumer face of a processor or exporter: count and dispatch. */
static int component_consume(struct th_consumer *self, th_batch_t *batch)
{
    struct th_component *c =
        (struct th_component *)((char *)self - offsetof(struct th_component, consumer));
    size_t spans = batch->span_count;
    if (c->shut_down) {
        th_batch_release(batch);
        __atomic_add_fetch(&c->stats.refused, spans, __ATOMIC_RELAXED);
        return TH_ESHUTDOWN;
    }
    int ret = c->ops->consume_traces(c, batch);
    if (ret == 0 || ret == TH_HELD) {
        __atomic_add_fetch(&c->stats.accepted, spans, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&c->stats.refused, spans, __ATOMIC_RELAXED);
    }
    return ret;
}

/* The metrics face: snapshots after shutdown are refused like batches. */
static int component_consume_metrics(struct th_metrics_consumer *self, th_metrics_t *m)
{
    struct th_component *c =
        (struct th_component *)((char *)self - offsetof(struct th_component, metrics_consumer));
    if (c->shut_down || !c->ops->consume_metrics) {
        th_metrics_release(m);
        return c->shut_down ? TH_ESHUTDOWN : TH_EUNSUPPORTED;
    }
    return c->ops->consume_metrics(c, m);
}

static int create(const struct th_component_ops *ops, const char *id, const void *cfg,
                  struct th_consumer *next, struct th_metrics_consumer *metrics_next,
                  struct th_component **out)
{
    th_assert(ops->abi == TH_COMPONENT_ABI);
    th_assert(ops->instance_size >= sizeof(struct th_component));
    struct th_component *c = th_calloc(1, ops->instance_size);
    if (!c) {
        return TH_ENOMEM;
    }
    c->ops = ops;
    c->id = th_strdup(id);
    if (!c->id) {
        th_free(c);
        return TH_ENOMEM;
    }
    c->kind_name = th_kind_name(ops->kind);
    c->log_level = -1;
    c->next = next;
    c->consumer.consume = component_consume;
    c->consumer.caps = ops->caps;
    c->metrics_consumer.consume = component_consume_metrics;
    c->metrics_next = metrics_next;
    int ret = ops->init ? ops->init(c, cfg, next) : 0;
    if (ret != 0) {
        if (ops->destroy) {
            ops->destroy(c);
        }
        th_free((char *)c->id);
        th_free(c);
        return ret;
    }
    *out = c;
    return 0;
}

int th_component_create(const struct th_component_ops *ops, const char *id, const void *cfg,
                        struct th_consumer *next, struct th_component **out)
{
    return create(ops, id, cfg, next, NULL, out);
}

int th_component_create_metrics(const struct th_component_ops *ops, const char *id, const void *cfg,
                                struct th_metrics_consumer *metrics_next, struct th_component **out)
{
    return create(ops, id, cfg, NULL, metrics_next, out);
}

/* The reason is published before the error, so a reader that sees the error sees a reason
 * that goes with it (or the previous one, briefly). */
void th_component_set_status(struct th_component *c, int err, const char *reason)
{
    if (err != 0) {
        __atomic_store_n(&c->status_reason, reason, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&c->status_err, err, __ATOMIC_RELEASE);
}

int th_component_status(const struct th_component *c, const char **reason)
{
    int err = __atomic_load_n(&c->status_err, __ATOMIC_ACQUIRE);
    if (reason) {
        *reason = err ? __atomic_load_n(&c->status_reason, __ATOMIC_ACQUIRE) : NULL;
    }
    return err;
}

void th_component_destroy(struct th_component *c)
{
    if (!c) {
        return;
    }
    if (c->started && !c->shut_down && c->ops->shutdown) {
        c->ops->shutdown(c);
    }
    c->shut_down = true;
    if (c->ops->destroy) {
        c->ops->destroy(c);
    }
    th_free((char *)c->id);
    th_free(c);
}
