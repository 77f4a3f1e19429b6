/*
 * The batch processor's pending queue: source batches in arrival order, and the code that
 * takes spans from its front as one batch, merging several sources or splitting one, without
 * copying a span. A taken batch is a small arena holding a new request whose resource spans
 * point into the sources (whole ResourceSpans where they fit, new ResourceSpans and
 * ScopeSpans structs over slices of the span arrays where they do not); it holds a reference
 * on every source it points into and carries their acks.
 */
#include <string.h>

#include "processors/batch/batch.h"

/* The arena of a merged batch holds the request, pointer arrays and a few structs: small. */
#define OUT_CHUNK 4096

void th__batch_queue_init(struct th__batch_queue *q, bool copy_split_headers)
{
    memset(q, 0, sizeof(*q));
    q->copy_split_headers = copy_split_headers;
}

int th__batch_queue_push(struct th__batch_queue *q, th_batch_t *b)
{
    size_t n = th_otlp_request_span_count(b->req);
    if (n == 0) {
        th_batch_release(b); /* nothing to send: its senders are done */
        return 0;
    }
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct th__batch_source *v = th_calloc(cap, sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < q->len; i++) {
            v[i] = q->v[(q->head + i) % q->cap];
        }
        th_free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) % q->cap] = (struct th__batch_source){.b = b, .spans = n};
    q->len++;
    q->spans += n;
    return 0;
}

/* Drop the oldest source from the ring (its reference is the caller's business). */
static th_batch_t *pop(struct th__batch_queue *q)
{
    th_batch_t *b = q->v[q->head].b;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->rs = q->ss = q->span = 0;
    return b;
}

size_t th__batch_queue_fail_head(struct th__batch_queue *q, int err)
{
    if (q->len == 0) {
        return 0;
    }
    size_t n = q->v[q->head].spans;
    th_batch_t *b = pop(q);
    q->spans -= n;
    th_batch_fail(b, err);
    th_batch_release(b);
    return n;
}

void th__batch_queue_deinit(struct th__batch_queue *q, int err)
{
    while (q->len > 0) {
        th__batch_queue_fail_head(q, err);
    }
    th_free(q->v);
    q->v = NULL;
    q->cap = 0;
    q->spans = 0;
}

/* ---- Building one batch ----------------------------------------------------------------- */

/* The sources a merged batch points into, released when its arena goes. */
struct holds {
    th_batch_t **v;
    size_t n, cap;
};

struct out {
    th_batch_t *b;
    th_arena_t *arena;
    th_otlp_request_t *req;
    size_t cap_rs;
    struct holds *holds;
    bool copy_headers;
};

static void on_out_arena_destroy(void *data)
{
    struct holds *h = data;
    for (size_t i = 0; i < h->n; i++) {
        th_batch_release(h->v[i]);
    }
}

static int out_begin(struct out *o, bool copy_headers)
{
    memset(o, 0, sizeof(*o));
    o->copy_headers = copy_headers;
    o->arena = th_arena_create(OUT_CHUNK, 0);
    if (!o->arena) {
        return TH_ENOMEM;
    }
    o->req = th_arena_alloc(o->arena, sizeof(*o->req));
    o->holds = th_arena_calloc(o->arena, 1, sizeof(*o->holds));
    if (!o->req || !o->holds) {
        goto fail;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(o->req);
    if (th_arena_cleanup_add(o->arena, on_out_arena_destroy, o->holds) != 0) {
        goto fail;
    }
    o->b = th_batch_create(o->arena, o->req);
    if (!o->b) {
        goto fail;
    }
    o->b->received_ns = UINT64_MAX;
    return 0;
fail:
    th_arena_destroy(o->arena); /* holds is empty: the cleanup releases nothing */
    o->arena = NULL;
    return TH_ENOMEM;
}

/* Make the merged batch hold @p src: a reference (released by the arena cleanup) and its
 * acks. This comes before any span of @p src is placed, so when it fails no span of @p src is
 * in the batch (which the caller then fails, with whatever acks of @p src it carries). */
static int out_hold(struct out *o, th_batch_t *src)
{
    struct holds *h = o->holds;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        th_batch_t **v = th_arena_alloc(o->arena, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        if (h->n) {
            memcpy(v, h->v, h->n * sizeof(*v));
        }
        h->v = v;
        h->cap = cap;
    }
    th_batch_retain(src);
    h->v[h->n++] = src;
    if (src->received_ns < o->b->received_ns) {
        o->b->received_ns = src->received_ns;
    }
    return th_batch_add_acks_of(o->b, src);
}

static int out_append(struct out *o, th_otlp_resource_spans_t *rs)
{
    th_otlp_request_t *req = o->req;
    if (req->n_resource_spans == o->cap_rs) {
        size_t cap = o->cap_rs ? o->cap_rs * 2 : 8;
        th_otlp_resource_spans_t **v = th_arena_alloc(o->arena, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        if (req->n_resource_spans) {
            memcpy(v, req->resource_spans, req->n_resource_spans * sizeof(*v));
        }
        req->resource_spans = v;
        o->cap_rs = cap;
    }
    req->resource_spans[req->n_resource_spans++] = rs;
    return 0;
}

/* Deep-copy one message into the arena (protobuf-c's pack and unpack). Only used for the
 * resource or scope of a split part when a consumer downstream changes data. */
static int copy_msg(th_arena_t *a, const ProtobufCMessage *m, void **out)
{
    *out = NULL;
    if (!m) {
        return 0;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = th_arena_alloc(a, len ? len : 1);
    if (!buf) {
        return TH_ENOMEM;
    }
    protobuf_c_message_pack(m, buf);
    ProtobufCAllocator alloc;
    th_arena_pbc_allocator(a, &alloc);
    *out = protobuf_c_message_unpack(m->descriptor, &alloc, len, buf);
    return *out ? 0 : TH_ENOMEM;
}

static size_t rs_span_count(const th_otlp_resource_spans_t *rs)
{
    size_t n = 0;
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
        n += rs->scope_spans[j]->n_spans;
    }
    return n;
}

/* Account for @p n spans placed in the batch being built. */
static void taken(struct th__batch_queue *q, size_t n, size_t *remaining)
{
    q->v[q->head].spans -= n;
    q->spans -= n;
    *remaining -= n;
}

/* The part of one resource spans from the cursor on, as a new ResourceSpans: whole scope
 * spans where they fit, a new ScopeSpans over a slice of the spans where one does not. */
static int take_partial_rs(struct out *o, struct th__batch_queue *q,
                           const th_otlp_resource_spans_t *rs, size_t *remaining)
{
    th_otlp_resource_spans_t *part = th_arena_alloc(o->arena, sizeof(*part));
    th_otlp_scope_spans_t **ssv =
        th_arena_alloc(o->arena, (rs->n_scope_spans - q->ss) * sizeof(*ssv));
    if (!part || !ssv) {
        return TH_ENOMEM;
    }
    *part = *rs;
    part->scope_spans = ssv;
    part->n_scope_spans = 0;
    if (o->copy_headers && (q->ss != 0 || q->span != 0) &&
        copy_msg(o->arena, rs->resource ? &rs->resource->base : NULL, (void **)&part->resource) !=
            0) {
        return TH_ENOMEM;
    }
    if (out_append(o, part) != 0) {
        return TH_ENOMEM;
    }
    while (*remaining > 0 && q->ss < rs->n_scope_spans) {
        th_otlp_scope_spans_t *ss = rs->scope_spans[q->ss];
        size_t avail = ss->n_spans - q->span;
        if (q->span == 0 && avail <= *remaining) {
            ssv[part->n_scope_spans++] = ss;
            taken(q, avail, remaining);
            q->ss++;
            continue;
        }
        size_t k = TH_MIN(avail, *remaining);
        th_otlp_scope_spans_t *slice = th_arena_alloc(o->arena, sizeof(*slice));
        if (!slice) {
            return TH_ENOMEM;
        }
        *slice = *ss;
        slice->spans = ss->spans + q->span;
        slice->n_spans = k;
        if (o->copy_headers && q->span != 0 &&
            copy_msg(o->arena, ss->scope ? &ss->scope->base : NULL, (void **)&slice->scope) != 0) {
            return TH_ENOMEM;
        }
        ssv[part->n_scope_spans++] = slice;
        taken(q, k, remaining);
        q->span += k;
        if (q->span == ss->n_spans) {
            q->ss++;
            q->span = 0;
        }
    }
    if (q->ss == rs->n_scope_spans) {
        q->rs++;
        q->ss = 0;
    }
    return 0;
}

/* Place spans of the oldest source, from the cursor, until @p remaining is 0 or the source
 * has no more. */
static int take_from_head(struct out *o, struct th__batch_queue *q, size_t *remaining)
{
    const th_otlp_request_t *req = q->v[q->head].b->req;
    while (*remaining > 0 && q->rs < req->n_resource_spans) {
        th_otlp_resource_spans_t *rs = req->resource_spans[q->rs];
        if (q->ss == 0 && q->span == 0) {
            size_t n = rs_span_count(rs);
            if (n <= *remaining) {
                if (out_append(o, rs) != 0) {
                    return TH_ENOMEM;
                }
                taken(q, n, remaining);
                q->rs++;
                continue;
            }
        }
        int ret = take_partial_rs(o, q, rs, remaining);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

/* Release the queue's reference on the oldest source once all its spans are placed (the
 * batch being built holds its own). */
static void pop_if_done(struct th__batch_queue *q)
{
    if (q->len > 0 && q->v[q->head].spans == 0) {
        th_batch_release(pop(q));
    }
}

int th__batch_queue_take(struct th__batch_queue *q, size_t max, th_batch_t **out)
{
    if (q->len == 0 || q->spans == 0) {
        return TH_EINVAL;
    }
    size_t count = max && max < q->spans ? max : q->spans;
    struct th__batch_source *head = &q->v[q->head];
    /* Exactly the oldest source, untouched: hand it on as it is. */
    if (q->rs == 0 && q->ss == 0 && q->span == 0 && head->spans == count) {
        q->spans -= count;
        *out = pop(q);
        return 0;
    }
    struct out o;
    if (out_begin(&o, q->copy_split_headers) != 0) {
        return TH_ENOMEM;
    }
    size_t remaining = count;
    int ret = 0;
    while (remaining > 0 && q->len > 0) {
        ret = out_hold(&o, q->v[q->head].b);
        if (ret != 0) {
            goto fail;
        }
        ret = take_from_head(&o, q, &remaining);
        if (ret != 0) {
            goto fail;
        }
        pop_if_done(q);
    }
    th_assert(remaining == 0);
    o.b->span_count = count;
    *out = o.b;
    return 0;
fail:
    /* Spans already placed here are lost with this batch: fail it, so their senders retry. */
    pop_if_done(q);
    th_batch_fail(o.b, TH_ENOMEM);
    th_batch_release(o.b);
    return ret;
}
