/*
 * The tail sampling buffer: spans grouped by trace id without copying. A pending trace is a
 * record in an open-addressing table keyed by the 16-byte id, with its spans in chunks of
 * pointers into the batches they arrived in; records and chunks come from slabs through free
 * lists, so the hot path never mallocs per span. The buffer holds the one reference consume
 * is handed on each batch for as long as a pending trace has spans in it, and counts the
 * batch's arena bytes for exactly that long.
 *
 * Admission is per batch: everything that can refuse (the byte budget, block_on_overflow,
 * memory for records) is checked before the first span is taken, so a refused batch leaves
 * nothing behind and its sender retries it whole.
 */
#include <string.h>

#include "processors/tail_sampling/tail_sampling_buffer.h"
#include "th/log.h"

/* Records per slab: big enough that slab bookkeeping is noise, small enough to not matter. */
#define SLAB_N 256

/* ---- Pools ---------------------------------------------------------------------------- */

static int slab_keep(struct th_tail_sampling *ts, void *p)
{
    if (ts->n_slabs == ts->cap_slabs) {
        size_t cap = ts->cap_slabs ? ts->cap_slabs * 2 : 64;
        void **v = th_realloc(ts->slabs, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        ts->slabs = v;
        ts->cap_slabs = cap;
    }
    ts->slabs[ts->n_slabs++] = p;
    return 0;
}

/* Make sure @p need trace records and chunks are on the free lists (so ingesting a batch
 * cannot fail half-way). */
static int reserve(struct th_tail_sampling *ts, size_t traces, size_t chunks)
{
    while (ts->n_free_traces < traces) {
        struct th__ts_trace *v = th_malloc(SLAB_N * sizeof(*v));
        if (!v || slab_keep(ts, v) != 0) {
            th_free(v);
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < SLAB_N; i++) {
            v[i].next = ts->free_traces;
            ts->free_traces = &v[i];
        }
        ts->n_free_traces += SLAB_N;
    }
    while (ts->n_free_chunks < chunks) {
        struct th__ts_chunk *v = th_malloc(SLAB_N * sizeof(*v));
        if (!v || slab_keep(ts, v) != 0) {
            th_free(v);
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < SLAB_N; i++) {
            v[i].c.next = ts->free_chunks ? &ts->free_chunks->c : NULL;
            ts->free_chunks = &v[i];
        }
        ts->n_free_chunks += SLAB_N;
    }
    if (!ts->free_srcs) {
        struct th__ts_src *v = th_malloc(SLAB_N * sizeof(*v));
        if (!v || slab_keep(ts, v) != 0) {
            th_free(v);
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < SLAB_N; i++) {
            v[i].next = ts->free_srcs;
            ts->free_srcs = &v[i];
        }
    }
    return 0;
}

static struct th__ts_chunk *chunk_get(struct th_tail_sampling *ts)
{
    struct th__ts_chunk *k = ts->free_chunks;
    th_assert(k);
    ts->free_chunks = (struct th__ts_chunk *)k->c.next;
    ts->n_free_chunks--;
    k->c.next = NULL;
    k->c.n = 0;
    return k;
}

static void chunk_put(struct th_tail_sampling *ts, struct th__ts_chunk *k)
{
    k->c.next = ts->free_chunks ? &ts->free_chunks->c : NULL;
    ts->free_chunks = k;
    ts->n_free_chunks++;
}

/* One fewer run of spans in the source; the last one lets the batch go. */
static void src_unhold(struct th_tail_sampling *ts, struct th__ts_src *s)
{
    th_assert(s->holds > 0);
    if (--s->holds == 0) {
        ts->pending_bytes -= s->bytes;
        th_batch_release(s->b);
        s->b = NULL;
        s->next = ts->free_srcs;
        ts->free_srcs = s;
    }
}

/* ---- The table ---------------------------------------------------------------------------- */

static struct th__ts_trace *table_find(const struct th_tail_sampling *ts, const uint8_t id[16],
                                       uint64_t h)
{
    for (size_t i = h & ts->mask;; i = (i + 1) & ts->mask) {
        const struct th__ts_slot *s = &ts->slots[i];
        if (!s->t) {
            return NULL;
        }
        if (s->h == h && memcmp(s->t->pub.trace_id, id, 16) == 0) {
            return s->t;
        }
    }
}

static void table_put(struct th__ts_slot *slots, size_t mask, struct th__ts_trace *t, uint64_t h)
{
    size_t i = h & mask;
    while (slots[i].t) {
        i = (i + 1) & mask;
    }
    slots[i].h = h;
    slots[i].t = t;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void table_remove(struct th_tail_sampling *ts, const struct th__ts_trace *t, uint64_t h)
{
    size_t i = h & ts->mask;
    while (ts->slots[i].t != t) {
        th_assert(ts->slots[i].t);
        i = (i + 1) & ts->mask;
    }
    for (size_t j = (i + 1) & ts->mask; ts->slots[j].t; j = (j + 1) & ts->mask) {
        size_t home = ts->slots[j].h & ts->mask;
        /* The entry at j may move to the hole at i when its home is not in (i, j]. */
        bool in_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_between) {
            ts->slots[i] = ts->slots[j];
            i = j;
        }
    }
    ts->slots[i].t = NULL;
    ts->slots[i].h = 0;
}

static int table_alloc(struct th_tail_sampling *ts, size_t nslots)
{
    struct th__ts_slot *v = th_calloc(nslots, sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; ts->slots && i <= ts->mask; i++) {
        if (ts->slots[i].t) {
            table_put(v, nslots - 1, ts->slots[i].t, ts->slots[i].h);
        }
    }
    th_free(ts->slots);
    ts->slots = v;
    ts->mask = nslots - 1;
    return 0;
}

/* Keep the load at most 1/2 for @p n traces (never past max_slots, which is 2x num_traces). */
static int table_reserve(struct th_tail_sampling *ts, size_t n)
{
    size_t want = ts->mask + 1;
    while (n * 2 > want && want < ts->max_slots) {
        want *= 2;
    }
    return want > ts->mask + 1 ? table_alloc(ts, want) : 0;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n) {
        p *= 2;
    }
    return p;
}

int th__ts_buffer_init(struct th_tail_sampling *ts)
{
    size_t num = (size_t)ts->cfg.num_traces;
    ts->max_slots = pow2_at_least(num * 2);
    /* expected_new_traces_per_sec sizes the table for the traces one decision_wait brings;
     * it grows from there (up to max_slots) when the hint is low or absent. */
    double wait_s = (double)ts->cfg.decision_wait_ns / 1e9;
    double expect = (double)ts->cfg.expected_new_traces_per_sec * (wait_s > 1 ? wait_s : 1);
    size_t first = expect > 0 ? (size_t)TH_MIN(expect, (double)num) : TH_MIN(num, 4096);
    size_t nslots = TH_MIN(pow2_at_least(first * 2), ts->max_slots);
    return table_alloc(ts, nslots);
}

void th__ts_buffer_deinit(struct th_tail_sampling *ts)
{
    for (size_t i = 0; i < ts->n_slabs; i++) {
        th_free(ts->slabs[i]);
    }
    th_free(ts->slabs);
    th_free(ts->slots);
    ts->slabs = NULL;
    ts->slots = NULL;
    ts->n_slabs = ts->cap_slabs = 0;
    ts->free_traces = NULL;
    ts->free_chunks = NULL;
    ts->free_srcs = NULL;
}

/* ---- FIFOs --------------------------------------------------------------------------------- */

static void fifo_push(struct th__ts_fifo *f, struct th__ts_trace *t)
{
    t->next = NULL;
    t->prev = f->tail;
    if (f->tail) {
        f->tail->next = t;
    } else {
        f->head = t;
    }
    f->tail = t;
}

static void fifo_unlink(struct th__ts_fifo *f, struct th__ts_trace *t)
{
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        f->head = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    } else {
        f->tail = t->prev;
    }
    t->prev = t->next = NULL;
}

/* ---- Traces -------------------------------------------------------------------------------- */

void th__ts_trace_release(struct th_tail_sampling *ts, struct th__ts_trace *t)
{
    table_remove(ts, t, th__ts_hash(t->pub.trace_id));
    fifo_unlink(t->in_root_fifo ? &ts->root_fifo : &ts->fifo, t);
    ts->n_traces--;
    __atomic_store_n(&ts->stats.traces_on_memory, ts->n_traces, __ATOMIC_RELAXED);
    struct th__ts_src *prev = NULL;
    struct th__ts_chunk *k = (struct th__ts_chunk *)t->pub.first;
    while (k) {
        struct th__ts_chunk *next = (struct th__ts_chunk *)k->c.next;
        for (uint32_t i = 0; i < k->c.n; i++) {
            if (k->src[i] != prev) {
                prev = k->src[i];
                src_unhold(ts, prev);
            }
        }
        chunk_put(ts, k);
        k = next;
    }
    t->next = ts->free_traces;
    ts->free_traces = t;
    ts->n_free_traces++;
    __atomic_store_n(&ts->stats.buffer_bytes, ts->pending_bytes + ts->retry_bytes,
                     __ATOMIC_RELAXED);
}

static struct th__ts_trace *trace_new(struct th_tail_sampling *ts, const uint8_t id[16], uint64_t h,
                                      uint64_t now)
{
    struct th__ts_trace *t = ts->free_traces;
    th_assert(t);
    ts->free_traces = t->next;
    ts->n_free_traces--;
    memset(t, 0, sizeof(*t));
    memcpy(t->pub.trace_id, id, 16);
    t->pub.min_start_ns = UINT64_MAX;
    t->first_ns = now;
    t->deadline_ns = now + (uint64_t)ts->cfg.decision_wait_ns;
    struct th__ts_chunk *k = chunk_get(ts);
    t->pub.first = &k->c;
    t->last = k;
    table_put(ts->slots, ts->mask, t, h);
    fifo_push(&ts->fifo, t);
    ts->n_traces++;
    __atomic_store_n(&ts->stats.traces_on_memory, ts->n_traces, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ts->stats.new_trace_id_received, 1, __ATOMIC_RELAXED);
    return t;
}

/* A root span arrived: decide the trace decision_wait_after_root_received from now, if that
 * is earlier than its deadline. The root FIFO stays ordered because the wait is constant. */
static void root_seen(struct th_tail_sampling *ts, struct th__ts_trace *t, uint64_t now)
{
    t->root_seen = true;
    uint64_t wait = (uint64_t)ts->cfg.decision_wait_after_root_received_ns;
    if (wait == 0 || t->in_root_fifo || now + wait >= t->deadline_ns) {
        return;
    }
    fifo_unlink(&ts->fifo, t);
    t->deadline_ns = now + wait;
    t->in_root_fifo = true;
    fifo_push(&ts->root_fifo, t);
}

/* @return the oldest pending trace (earliest first arrival), or NULL. */
static struct th__ts_trace *oldest(struct th_tail_sampling *ts)
{
    struct th__ts_trace *a = ts->fifo.head;
    struct th__ts_trace *b = ts->root_fifo.head;
    if (!a || (b && b->first_ns < a->first_ns)) {
        return b;
    }
    return a;
}

/* The size the span has in a protobuf ResourceSpans (what maximum_trace_size_bytes and
 * bytes_limiting count): its own packed size plus the field tag and length prefix. */
static uint64_t span_bytes(const th_otlp_span_t *sp)
{
    size_t n = protobuf_c_message_get_packed_size(&sp->base);
    size_t len_prefix = 1;
    for (size_t v = n; v >= 0x80; v >>= 7) {
        len_prefix++;
    }
    return (uint64_t)(n + 1 + len_prefix);
}

static void append(struct th_tail_sampling *ts, struct th__ts_trace *t, struct th__ts_src *src,
                   const th_otlp_span_t *sp, const th_otlp_scope_spans_t *ss,
                   const th_otlp_resource_spans_t *rs)
{
    struct th__ts_chunk *k = t->last;
    /* The source gains a hold for each run of the trace's spans in it. */
    const struct th__ts_src *prev = k->c.n ? k->src[k->c.n - 1] : NULL;
    if (k->c.n == TH_TS_CHUNK) {
        struct th__ts_chunk *nk = chunk_get(ts);
        k->c.next = &nk->c;
        t->last = nk;
        k = nk;
    }
    if (prev != src) {
        src->holds++;
    }
    k->c.v[k->c.n] = (struct th_ts_span){.span = sp, .ss = ss, .rs = rs, .batch = src->b};
    k->src[k->c.n] = src;
    k->c.n++;
    t->pub.span_count++;
    if (sp->start_time_unix_nano && sp->start_time_unix_nano < t->pub.min_start_ns) {
        t->pub.min_start_ns = sp->start_time_unix_nano;
    }
    if (sp->end_time_unix_nano > t->pub.max_end_ns) {
        t->pub.max_end_ns = sp->end_time_unix_nano;
    }
}

/* ---- Admission ----------------------------------------------------------------------------- */

static void copy_id(uint8_t id[16], const th_otlp_span_t *sp)
{
    if (sp->trace_id.len == 16) {
        memcpy(id, sp->trace_id.data, 16);
    } else {
        /* The receivers refuse such spans; a batch built elsewhere gets the zero id. */
        memset(id, 0, 16);
        if (sp->trace_id.len) {
            memcpy(id, sp->trace_id.data, TH_MIN(sp->trace_id.len, (size_t)16));
        }
    }
}

/* With block_on_overflow: @return how many traces of the batch are not pending yet (an upper
 * bound: a new trace whose spans are not adjacent counts more than once). */
static size_t count_new(const struct th_tail_sampling *ts, const th_otlp_request_t *req)
{
    size_t n = 0;
    uint8_t last[16] = {0};
    bool have_last = false;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[r];
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[s];
            for (size_t i = 0; i < ss->n_spans; i++) {
                uint8_t id[16];
                copy_id(id, ss->spans[i]);
                if (have_last && memcmp(id, last, 16) == 0) {
                    continue;
                }
                memcpy(last, id, 16);
                have_last = true;
                uint64_t h = th__ts_hash(id);
                if (!table_find(ts, id, h) && th__ts_cache_get(ts->sampled_cache, id, h) == 0 &&
                    th__ts_cache_get(ts->not_sampled_cache, id, h) == 0) {
                    n++;
                }
            }
        }
    }
    return n;
}

/* Decide the oldest traces early until @p bytes more fit in the budget. Refused outputs
 * waiting for a retry mean downstream is refusing: deciding more would only move traces into
 * the retry queue, so then nothing is decided and the caller refuses the batch. */
static bool make_room(struct th_tail_sampling *ts, uint64_t bytes)
{
    uint64_t now_unix = 0;
    while (ts->pending_bytes + ts->retry_bytes + bytes > ts->max_bytes) {
        struct th__ts_trace *t = oldest(ts);
        if (!t || ts->retry_head) {
            break;
        }
        if (!now_unix) {
            now_unix = th_now_unix_ns();
        }
        th__ts_decide(ts, t, TH__TS_EARLY, now_unix);
    }
    /* A batch bigger than the whole budget is taken when nothing else is held, or it could
     * never be taken at all. */
    return ts->pending_bytes + ts->retry_bytes + bytes <= ts->max_bytes ||
           (ts->pending_bytes == 0 && ts->retry_bytes == 0);
}

static int refuse(struct th_tail_sampling *ts, th_batch_t *b, const char *why)
{
    __atomic_add_fetch(&ts->stats.batches_refused, 1, __ATOMIC_RELAXED);
    th__ts_warn_limited(ts, "refusing a batch of %zu spans: %s; the sender is told to retry",
                        b->span_count, why);
    th_batch_fail(b, TH_ERETRY);
    th_batch_release(b);
    return TH_ERETRY;
}

/* ---- Ingest ---------------------------------------------------------------------------------- */

int th__ts_consume(struct th_tail_sampling *ts, th_batch_t *b)
{
    if (ts->stopped) {
        th_batch_release(b);
        return TH_ESHUTDOWN;
    }
    const th_otlp_request_t *req = b->req;
    size_t spans = th_otlp_request_span_count(req);
    if (spans == 0) {
        th_batch_release(b);
        return 0;
    }
    uint64_t bytes = th_arena_reserved(b->arena);
    size_t num = (size_t)ts->cfg.num_traces;
    if (ts->cfg.block_on_overflow && ts->n_traces + spans > num && ts->n_traces > 0 &&
        ts->n_traces + count_new(ts, req) > num) {
        return refuse(ts, b, "num_traces traces are pending and block_on_overflow is set");
    }
    if (!make_room(ts, bytes)) {
        return refuse(ts, b, "max_buffer_bytes is reached and the next consumer is refusing");
    }
    /* Worst case every span starts a trace and a chunk; the table never needs more than
     * num_traces (older traces are decided first). */
    if (reserve(ts, TH_MIN(spans, num), spans) != 0 ||
        table_reserve(ts, TH_MIN(ts->n_traces + spans, num)) != 0) {
        th_batch_release(b);
        return TH_ENOMEM;
    }
    /* The buffer answers for the spans from now on: the senders are done. */
    th_batch_settle_acks(b, 0);

    struct th__ts_src *src = ts->free_srcs;
    ts->free_srcs = src->next;
    src->b = b;
    src->bytes = bytes;
    /* This call's own hold: deciding a trace below must not let the batch go mid-walk. */
    src->holds = 1;
    ts->pending_bytes += bytes;

    uint64_t now = th_now_mono_ns();
    uint64_t now_unix = 0;
    uint64_t max_trace = ts->cfg.maximum_trace_size_bytes > 0
                             ? (uint64_t)ts->cfg.maximum_trace_size_bytes
                             : UINT64_MAX;
    struct th__ts_trace *t = NULL;
    uint64_t decided_before = ts->stats.decisions;
    uint8_t last_id[16];
    size_t dropped = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[r];
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[s];
            for (size_t i = 0; i < ss->n_spans; i++) {
                const th_otlp_span_t *sp = ss->spans[i];
                uint8_t id[16];
                copy_id(id, sp);
                /* Spans of one trace usually come together: skip the lookup, unless a
                 * decision since the last span may have released the trace. */
                if (!t || ts->stats.decisions != decided_before || memcmp(id, last_id, 16) != 0) {
                    uint64_t h = th__ts_hash(id);
                    decided_before = ts->stats.decisions;
                    memcpy(last_id, id, 16);
                    t = table_find(ts, id, h);
                    if (!t) {
                        enum th_ts_decision d = th__ts_cache_get(ts->sampled_cache, id, h);
                        if (d == 0) {
                            d = th__ts_cache_get(ts->not_sampled_cache, id, h);
                        }
                        if (d != 0) {
                            /* Late: the trace was decided; the span follows the decision. */
                            __atomic_add_fetch(&ts->stats.late_spans, 1, __ATOMIC_RELAXED);
                            if (d == TH_TS_SAMPLED) {
                                __atomic_add_fetch(&ts->stats.early_releases_sampled, 1,
                                                   __ATOMIC_RELAXED);
                                struct th_ts_span one = {sp, ss, rs, b};
                                if (th__ts_out_add_span(ts, &one) != 0) {
                                    dropped++;
                                    __atomic_add_fetch(&ts->stats.spans_failed, 1,
                                                       __ATOMIC_RELAXED);
                                }
                            } else {
                                __atomic_add_fetch(&ts->stats.early_releases_not_sampled, 1,
                                                   __ATOMIC_RELAXED);
                                dropped++;
                            }
                            continue;
                        }
                        if (ts->n_traces >= num) {
                            /* Full: decide the oldest now with what it has (the Collector
                             * drops it). */
                            if (!now_unix) {
                                now_unix = th_now_unix_ns();
                            }
                            th__ts_decide(ts, oldest(ts), TH__TS_EARLY, now_unix);
                            decided_before = ts->stats.decisions;
                        }
                        t = trace_new(ts, id, h, now);
                    }
                }
                append(ts, t, src, sp, ss, rs);
                if (sp->parent_span_id.len == 0 && !t->root_seen) {
                    root_seen(ts, t, now);
                }
                /* Always counted: bytes_limiting policies read it too. */
                t->pub.bytes += span_bytes(sp);
                if (t->pub.bytes > max_trace) {
                    th__ts_decide(ts, t, TH__TS_TOO_LARGE, 0);
                    t = NULL;
                }
            }
        }
    }
    if (dropped) {
        __atomic_add_fetch(&ts->base.stats.dropped, dropped, __ATOMIC_RELAXED);
    }
    /* What was decided here (early decisions, late spans) goes downstream now. */
    th__ts_out_flush(ts);
    /* When nothing pending points into the batch (its spans were late or decided at once),
     * this releases it; the output holds its own reference where it needs the spans. */
    bool held = src->holds > 1;
    src_unhold(ts, src);
    __atomic_store_n(&ts->stats.buffer_bytes, ts->pending_bytes + ts->retry_bytes,
                     __ATOMIC_RELAXED);
    th__ts_timer_arm(ts);
    return held ? TH_HELD : 0;
}
