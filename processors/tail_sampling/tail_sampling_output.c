/*
 * Output batches: the sampled spans of one tick (or of one consume call: late spans and early
 * decisions) go downstream as one batch that copies no span. It is built the way
 * processors/batch/batch_merge.c builds merged batches: a small arena with a new request whose
 * ResourceSpans and ScopeSpans structs point at the buffered spans, holding a reference on
 * every source batch (released by an arena cleanup). Spans are grouped back under their
 * resource and scope, so a tick's output has one ResourceSpans per source resource.
 *
 * A consumer that changes batches (TH_CAP_MUTATES) gets a private copy (th_batch_clone), so it
 * never writes into memory shared with traces still pending. A refused output (TH_ERETRY,
 * TH_ENOMEM) is kept, counted in the buffer's bytes, and retried on the next ticks, in order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processors/tail_sampling/tail_sampling_buffer.h"
#include "th/log.h"

/* The output arena holds the request, pointer arrays and one struct per resource and scope. */
#define OUT_CHUNK        4096
#define WARN_INTERVAL_NS 1000000000ull

void th__ts_warn_limited(struct th_tail_sampling *ts, const char *fmt, ...)
{
    uint64_t now = th_now_mono_ns();
    if (ts->last_log_ns && now - ts->last_log_ns < WARN_INTERVAL_NS) {
        ts->not_logged++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    th_log_warn(&ts->base, "%s (%llu similar lines suppressed since the last one)", msg,
                (unsigned long long)ts->not_logged);
    ts->last_log_ns = now;
    ts->not_logged = 0;
}

/* ---- Gathering ------------------------------------------------------------------------------ */

static int hold(struct th__ts_out *o, th_batch_t *b)
{
    if (o->n_holds && o->holds[o->n_holds - 1] == b) {
        return 0;
    }
    if (o->n_holds == o->cap_holds) {
        size_t cap = o->cap_holds ? o->cap_holds * 2 : 64;
        th_batch_t **v = th_realloc(o->holds, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        o->holds = v;
        o->cap_holds = cap;
    }
    th_batch_retain(b);
    o->holds[o->n_holds++] = b;
    return 0;
}

int th__ts_out_add_span(struct th_tail_sampling *ts, const struct th_ts_span *s)
{
    struct th__ts_out *o = &ts->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        struct th_ts_span *v = th_realloc(o->v, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        o->v = v;
        o->cap = cap;
    }
    if (hold(o, s->batch) != 0) {
        return TH_ENOMEM;
    }
    o->v[o->n++] = *s;
    return 0;
}

int th__ts_out_add_trace(struct th_tail_sampling *ts, const struct th__ts_trace *t)
{
    for (const struct th_ts_chunk *k = t->pub.first; k; k = k->next) {
        for (uint32_t i = 0; i < k->n; i++) {
            int ret = th__ts_out_add_span(ts, &k->v[i]);
            if (ret != 0) {
                return ret;
            }
        }
    }
    return 0;
}

/* ---- Building ---------------------------------------------------------------------------------
 */

struct holds {
    th_batch_t **v;
    size_t n;
};

static void on_out_arena_destroy(void *data)
{
    struct holds *h = data;
    for (size_t i = 0; i < h->n; i++) {
        th_batch_release(h->v[i]);
    }
    th_free(h->v);
}

/* Order spans by resource, then scope; the index keeps arrival order within a scope. */
struct keyed {
    const th_otlp_resource_spans_t *rs;
    const th_otlp_scope_spans_t *ss;
    const th_otlp_span_t *span;
    size_t i;
};

static int cmp_keyed(const void *pa, const void *pb)
{
    const struct keyed *a = pa;
    const struct keyed *b = pb;
    if (a->rs != b->rs) {
        return (uintptr_t)a->rs < (uintptr_t)b->rs ? -1 : 1;
    }
    if (a->ss != b->ss) {
        return (uintptr_t)a->ss < (uintptr_t)b->ss ? -1 : 1;
    }
    return a->i < b->i ? -1 : a->i > b->i;
}

static int cmp_ptr(const void *pa, const void *pb)
{
    uintptr_t a = (uintptr_t) * (th_batch_t *const *)pa;
    uintptr_t b = (uintptr_t) * (th_batch_t *const *)pb;
    return a < b ? -1 : a > b;
}

/* Build the gathered spans into a batch; the gathered holds move into its arena cleanup.
 * @return 0 (with *out NULL when nothing was gathered) or TH_ENOMEM (holds released). */
static int build(struct th_tail_sampling *ts, th_batch_t **out, size_t *bytes)
{
    struct th__ts_out *o = &ts->out;
    *out = NULL;
    if (o->n == 0) {
        return 0;
    }
    int ret = TH_ENOMEM;
    struct keyed *k = th_malloc(o->n * sizeof(*k));
    th_arena_t *a = th_arena_create(OUT_CHUNK, 0);
    struct holds *h = a ? th_arena_calloc(a, 1, sizeof(*h)) : NULL;
    if (!k || !h) {
        goto fail;
    }
    for (size_t i = 0; i < o->n; i++) {
        k[i] = (struct keyed){o->v[i].rs, o->v[i].ss, o->v[i].span, i};
    }
    /* Spans of one trace arrive in order of their scope most of the time; sorting is only
     * needed when a tick mixes scopes, and costs little next to deciding. */
    bool sorted = true;
    for (size_t i = 1; i < o->n && sorted; i++) {
        sorted = cmp_keyed(&k[i - 1], &k[i]) <= 0;
    }
    if (!sorted) {
        qsort(k, o->n, sizeof(*k), cmp_keyed);
    }
    size_t n_rs = 0;
    size_t n_ss = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (i == 0 || k[i].rs != k[i - 1].rs) {
            n_rs++;
            n_ss++;
        } else if (k[i].ss != k[i - 1].ss) {
            n_ss++;
        }
    }
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    th_otlp_resource_spans_t *rsv = th_arena_alloc(a, n_rs * sizeof(*rsv));
    th_otlp_resource_spans_t **rsp = th_arena_alloc(a, n_rs * sizeof(*rsp));
    th_otlp_scope_spans_t *ssv = th_arena_alloc(a, n_ss * sizeof(*ssv));
    th_otlp_scope_spans_t **ssp = th_arena_alloc(a, n_ss * sizeof(*ssp));
    th_otlp_span_t **spv = th_arena_alloc(a, o->n * sizeof(*spv));
    if (!req || !rsv || !rsp || !ssv || !ssp || !spv) {
        goto fail;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->resource_spans = rsp;
    size_t ri = 0;
    size_t si = 0;
    th_otlp_resource_spans_t *cur_rs = NULL;
    th_otlp_scope_spans_t *cur_ss = NULL;
    for (size_t i = 0; i < o->n; i++) {
        if (i == 0 || k[i].rs != k[i - 1].rs) {
            /* The resource's header (resource, schema_url, unknown fields) is shared. */
            cur_rs = &rsv[ri];
            *cur_rs = *k[i].rs;
            cur_rs->n_scope_spans = 0;
            cur_rs->scope_spans = &ssp[si];
            rsp[ri++] = cur_rs;
            cur_ss = NULL;
        }
        if (!cur_ss || k[i].ss != k[i - 1].ss) {
            cur_ss = &ssv[si];
            *cur_ss = *k[i].ss;
            cur_ss->n_spans = 0;
            cur_ss->spans = &spv[i];
            ssp[si++] = cur_ss;
            cur_rs->n_scope_spans++;
        }
        /* The request's structs are not const; nothing downstream of a read-only consumer
         * writes through them (a mutating one gets a copy). */
        spv[i] = (th_otlp_span_t *)k[i].span;
        cur_ss->n_spans++;
    }
    req->n_resource_spans = n_rs;
    /* One reference per source is enough: a tick holds a batch once per trace it sampled. */
    qsort(o->holds, o->n_holds, sizeof(*o->holds), cmp_ptr);
    size_t nh = 0;
    for (size_t i = 0; i < o->n_holds; i++) {
        if (nh && o->holds[nh - 1] == o->holds[i]) {
            th_batch_release(o->holds[i]); /* not the last: the kept one remains */
        } else {
            o->holds[nh++] = o->holds[i];
        }
    }
    o->n_holds = nh;
    /* What the output keeps alive: its sources' arenas (an upper bound while a pending trace
     * holds one too) and its own. */
    *bytes = th_arena_reserved(a);
    for (size_t i = 0; i < o->n_holds; i++) {
        *bytes += th_arena_reserved(o->holds[i]->arena);
    }
    /* The holds go to the arena: from here the cleanup releases them. */
    h->v = o->holds;
    h->n = o->n_holds;
    if (th_arena_cleanup_add(a, on_out_arena_destroy, h) != 0) {
        goto fail;
    }
    o->holds = NULL;
    o->n_holds = o->cap_holds = 0;
    th_batch_t *b = th_batch_create(a, req);
    if (!b) {
        /* the cleanup releases the holds with the arena */
        th_arena_destroy(a);
        a = NULL;
        goto fail_released;
    }
    b->span_count = o->n;
    b->received_ns = th_now_unix_ns();
    th_free(k);
    o->n = 0;
    *out = b;
    return 0;
fail:
    th_arena_destroy(a);
    for (size_t i = 0; i < o->n_holds; i++) {
        th_batch_release(o->holds[i]);
    }
    o->n_holds = 0;
fail_released:
    th_free(k);
    o->n = 0;
    return ret;
}

/* ---- Sending ------------------------------------------------------------------------------------
 */

/* Hand one output on. @return 0 when taken or lost for good, TH_ERETRY when it should be
 * retried (the caller keeps its reference). */
static int send_out(struct th_tail_sampling *ts, th_batch_t *b)
{
    th_batch_t *give = b;
    size_t spans = b->span_count;
    if (ts->mutating_next) {
        int ret = th_batch_clone(b, &give);
        if (ret != 0) {
            __atomic_add_fetch(&ts->stats.outputs_refused, 1, __ATOMIC_RELAXED);
            return TH_ERETRY;
        }
    } else {
        th_batch_retain(b);
    }
    int ret = th_consumer_consume(ts->base.next, give);
    if (ret >= 0) {
        __atomic_add_fetch(&ts->stats.outputs_sent, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ts->stats.spans_sampled, spans, __ATOMIC_RELAXED);
        return 0;
    }
    if (ret == TH_ERETRY || ret == TH_ENOMEM) {
        __atomic_add_fetch(&ts->stats.outputs_refused, 1, __ATOMIC_RELAXED);
        th__ts_warn_limited(ts,
                            "the next consumer refused %zu sampled spans (%s); they are kept "
                            "and retried",
                            spans, th_strerror(ret));
        return TH_ERETRY;
    }
    __atomic_add_fetch(&ts->stats.spans_failed, spans, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ts->base.stats.failed, spans, __ATOMIC_RELAXED);
    th__ts_warn_limited(ts,
                        "the next consumer refused %zu sampled spans for good (%s); they "
                        "are lost",
                        spans, th_strerror(ret));
    return 0;
}

static void retry_push(struct th_tail_sampling *ts, th_batch_t *b, size_t bytes)
{
    struct th__ts_retry *r = th_malloc(sizeof(*r));
    if (!r) {
        __atomic_add_fetch(&ts->stats.spans_failed, b->span_count, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ts->base.stats.failed, b->span_count, __ATOMIC_RELAXED);
        th__ts_warn_limited(ts, "out of memory keeping %zu refused sampled spans; they are lost",
                            b->span_count);
        th_batch_release(b);
        return;
    }
    r->b = b;
    r->bytes = bytes;
    r->next = NULL;
    if (ts->retry_tail) {
        ts->retry_tail->next = r;
    } else {
        ts->retry_head = r;
    }
    ts->retry_tail = r;
    ts->retry_bytes += r->bytes;
    __atomic_store_n(&ts->stats.buffer_bytes, ts->pending_bytes + ts->retry_bytes,
                     __ATOMIC_RELAXED);
}

void th__ts_out_retry(struct th_tail_sampling *ts)
{
    while (ts->retry_head) {
        struct th__ts_retry *r = ts->retry_head;
        if (send_out(ts, r->b) != 0) {
            return;
        }
        ts->retry_head = r->next;
        if (!ts->retry_head) {
            ts->retry_tail = NULL;
        }
        ts->retry_bytes -= r->bytes;
        th_batch_release(r->b);
        th_free(r);
    }
    __atomic_store_n(&ts->stats.buffer_bytes, ts->pending_bytes + ts->retry_bytes,
                     __ATOMIC_RELAXED);
}

void th__ts_out_flush(struct th_tail_sampling *ts)
{
    size_t n = ts->out.n;
    th_batch_t *b = NULL;
    size_t bytes = 0;
    if (build(ts, &b, &bytes) != 0) {
        __atomic_add_fetch(&ts->stats.spans_failed, n, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ts->base.stats.failed, n, __ATOMIC_RELAXED);
        th__ts_warn_limited(ts,
                            "out of memory building a batch of %zu sampled spans; they are "
                            "lost",
                            n);
        return;
    }
    if (!b) {
        return;
    }
    /* Order is kept: behind earlier refused outputs, this one waits its turn. */
    th__ts_out_retry(ts);
    if (ts->retry_head || send_out(ts, b) != 0) {
        retry_push(ts, b, bytes);
        return;
    }
    th_batch_release(b);
}

void th__ts_out_drop_retries(struct th_tail_sampling *ts, const char *why)
{
    size_t spans = 0;
    while (ts->retry_head) {
        struct th__ts_retry *r = ts->retry_head;
        ts->retry_head = r->next;
        spans += r->b->span_count;
        ts->retry_bytes -= r->bytes;
        th_batch_release(r->b);
        th_free(r);
    }
    ts->retry_tail = NULL;
    if (spans) {
        __atomic_add_fetch(&ts->stats.spans_failed, spans, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ts->base.stats.failed, spans, __ATOMIC_RELAXED);
        th_log_error(&ts->base, "%zu sampled spans the next consumer kept refusing are lost (%s)",
                     spans, why);
    }
    __atomic_store_n(&ts->stats.buffer_bytes, ts->pending_bytes + ts->retry_bytes,
                     __ATOMIC_RELAXED);
}

void th__ts_out_deinit(struct th__ts_out *o)
{
    for (size_t i = 0; i < o->n_holds; i++) {
        th_batch_release(o->holds[i]);
    }
    th_free(o->holds);
    th_free(o->v);
    memset(o, 0, sizeof(*o));
}
