/*
 * Retry arithmetic and splitting for the exporter helper: the exponential backoff the
 * Collector uses (cenkalti/backoff: a randomised interval that grows by a multiplier up to a
 * maximum, given up after max_elapsed_time), and the split of a request the server found too
 * large into two halves by spans, each keeping its spans' resource and scope.
 */
#include <string.h>

#include "exporters/helper/exporterhelper_internal.h"

/* xorshift64*: the randomisation needs no quality beyond spreading retries apart. */
static double rand01(struct th_exporterhelper *h)
{
    uint64_t x = h->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    h->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

int64_t th__eh_backoff_next(struct th_exporterhelper *h, struct th__eh_slot *s, uint64_t now)
{
    const struct th_retry_cfg *rc = &h->retry;
    double iv = (double)s->interval_ns;
    double delta = rc->randomization_factor * iv;
    double lo = iv - delta, hi = iv + delta;
    int64_t next = (int64_t)(lo + rand01(h) * (hi - lo));
    /* grow for the next time, without overflowing past max_interval */
    if (rc->multiplier <= 0 || iv >= (double)rc->max_interval_ns / rc->multiplier) {
        s->interval_ns = rc->multiplier <= 0 ? 0 : rc->max_interval_ns;
    } else {
        s->interval_ns = (int64_t)(iv * rc->multiplier);
    }
    int64_t elapsed = (int64_t)(now - s->first_ns);
    if (rc->max_elapsed_time_ns > 0 && elapsed + next > rc->max_elapsed_time_ns) {
        return -1;
    }
    return next;
}

/* The spans of @p src whose position (in resource, scope, span order) is in [from, to), with
 * shallow copies of the resource and scope entries that hold them. */
static th_otlp_request_t *slice(th_arena_t *a, const th_otlp_request_t *src, size_t from, size_t to)
{
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    if (!req) {
        return NULL;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->resource_spans =
        th_arena_calloc(a, src->n_resource_spans ? src->n_resource_spans : 1, sizeof(void *));
    if (!req->resource_spans) {
        return NULL;
    }
    size_t idx = 0;
    for (size_t i = 0; i < src->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = src->resource_spans[i];
        th_otlp_resource_spans_t *out = NULL;
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            size_t lo = TH_MAX(idx, from), hi = TH_MIN(idx + ss->n_spans, to);
            if (lo < hi) {
                if (!out) {
                    out = th_arena_alloc(a, sizeof(*out));
                    if (!out) {
                        return NULL;
                    }
                    *out = *rs;
                    out->n_scope_spans = 0;
                    out->scope_spans = th_arena_calloc(a, rs->n_scope_spans, sizeof(void *));
                    if (!out->scope_spans) {
                        return NULL;
                    }
                    req->resource_spans[req->n_resource_spans++] = out;
                }
                th_otlp_scope_spans_t *sc = th_arena_alloc(a, sizeof(*sc));
                if (!sc) {
                    return NULL;
                }
                *sc = *ss;
                sc->spans = ss->spans + (lo - idx);
                sc->n_spans = hi - lo;
                out->scope_spans[out->n_scope_spans++] = sc;
            }
            idx += ss->n_spans;
        }
    }
    return req;
}

static int pack(const th_otlp_request_t *req, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *p = th_malloc(n ? n : 1);
    if (!p) {
        return TH_ENOMEM;
    }
    protobuf_c_message_pack(&req->base, p);
    *out = p;
    *len = n;
    return 0;
}

int th__eh_split(const uint8_t *pb, size_t len, uint8_t **a, size_t *alen, uint64_t *aspans,
                 uint8_t **b, size_t *blen, uint64_t *bspans)
{
    int ret = TH_ENOMEM;
    *a = *b = NULL;
    th_arena_t *arena = th_arena_create(0, 0);
    if (!arena) {
        return TH_ENOMEM;
    }
    ProtobufCAllocator alloc;
    th_arena_pbc_allocator(arena, &alloc);
    th_otlp_request_t *req = (th_otlp_request_t *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
        &alloc, len, pb);
    if (!req) {
        ret = TH_EDECODE;
        goto out;
    }
    size_t n = th_otlp_request_span_count(req);
    if (n < 2) {
        ret = TH_E2BIG;
        goto out;
    }
    size_t half = n / 2;
    th_otlp_request_t *first = slice(arena, req, 0, half);
    th_otlp_request_t *second = slice(arena, req, half, n);
    if (!first || !second) {
        goto out;
    }
    ret = pack(first, a, alen);
    if (ret == 0) {
        ret = pack(second, b, blen);
    }
    if (ret != 0) {
        th_free(*a);
        *a = NULL;
        goto out;
    }
    *aspans = half;
    *bspans = n - half;
out:
    th_arena_destroy(arena);
    return ret;
}
