/*
 * Metric snapshots: creation and reference counting, and the fan-out that hands one snapshot
 * to several metrics consumers. Snapshots are read-only once handed on, so a fan-out shares
 * one snapshot among all its consumers and never copies.
 */
#include "th/metrics.h"

#include "collector/fanout.h"

th_metrics_t *th_metrics_create(th_arena_t *arena)
{
    th_metrics_t *m = th_arena_calloc(arena, 1, sizeof(*m));
    if (!m) {
        return NULL;
    }
    m->arena = arena;
    m->refs = 1;
    return m;
}

void th_metrics_retain(th_metrics_t *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void th_metrics_release(th_metrics_t *m)
{
    if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        th_arena_destroy(m->arena); /* m itself lives in the arena */
    }
}

size_t th_metrics_point_count(const th_metrics_t *m)
{
    size_t n = 0;
    for (size_t r = 0; r < m->n_resources; r++) {
        const struct th_metric_resource *res = &m->resources[r];
        for (size_t s = 0; s < res->n_scopes; s++) {
            for (size_t i = 0; i < res->scopes[s].n_metrics; i++) {
                n += res->scopes[s].metrics[i].n_points;
            }
        }
    }
    return n;
}

static int fanout_consume(struct th_metrics_consumer *self, th_metrics_t *m)
{
    struct th__metrics_fanout *f = (struct th__metrics_fanout *)self;
    /* One reference per consumer; the caller's goes to the first. Taken before any consumer
     * runs, since a consumer may release its reference before returning. */
    for (size_t i = 1; i < f->n; i++) {
        th_metrics_retain(m);
    }
    int result = 0;
    for (size_t i = 0; i < f->n; i++) {
        result = th__fanout_merge(result, th_metrics_consumer_consume(f->out[i], m));
    }
    return result;
}

struct th__metrics_fanout *th__metrics_fanout_create(struct th_metrics_consumer **out, size_t n)
{
    struct th__metrics_fanout *f = th_calloc(1, sizeof(*f));
    if (!f) {
        return NULL;
    }
    f->out = th_calloc(n ? n : 1, sizeof(*f->out));
    if (!f->out) {
        th_free(f);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        f->out[i] = out[i];
    }
    f->n = n;
    f->base.consume = fanout_consume;
    return f;
}

void th__metrics_fanout_destroy(struct th__metrics_fanout *f)
{
    if (f) {
        th_free(f->out);
        th_free(f);
    }
}
