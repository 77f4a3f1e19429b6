/*
 * Batches: a decoded request and the arena that owns it, reference counted so a fan-out can
 * share one batch among read-only consumers.
 */
#include "th/batch.h"

#include "collector/otlp_internal.h"

th_ack_t *th_ack_create(void (*on_settled)(th_ack_t *ack, int result), void *data)
{
    th_ack_t *ack = th_calloc(1, sizeof(*ack));
    if (ack) {
        ack->refs = 1;
        ack->on_settled = on_settled;
        ack->data = data;
    }
    return ack;
}

void th_ack_retain(th_ack_t *ack)
{
    __atomic_add_fetch(&ack->refs, 1, __ATOMIC_RELAXED);
}

void th_ack_settle(th_ack_t *ack, int result)
{
    if (result < 0) {
        int expected = 0;
        __atomic_compare_exchange_n(&ack->result, &expected, result, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
    if (__atomic_sub_fetch(&ack->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        int final = __atomic_load_n(&ack->result, __ATOMIC_ACQUIRE);
        if (ack->on_settled) {
            ack->on_settled(ack, final);
        }
        th_free(ack);
    }
}

int th_batch_add_ack(th_batch_t *b, th_ack_t *ack)
{
    if (b->n_acks == b->cap_acks) {
        size_t cap = b->cap_acks ? b->cap_acks * 2 : 4;
        th_ack_t **v = th_arena_alloc(b->arena, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < b->n_acks; i++) {
            v[i] = b->acks[i];
        }
        b->acks = v;
        b->cap_acks = cap;
    }
    th_ack_retain(ack);
    b->acks[b->n_acks++] = ack;
    return 0;
}

int th_batch_add_acks_of(th_batch_t *b, const th_batch_t *from)
{
    for (size_t i = 0; i < from->n_acks; i++) {
        int ret = th_batch_add_ack(b, from->acks[i]);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

void th_batch_fail(th_batch_t *b, int err)
{
    if (err < 0 && b->result == 0) {
        b->result = err;
    }
}

void th_batch_settle_acks(th_batch_t *b, int result)
{
    for (size_t i = 0; i < b->n_acks; i++) {
        th_ack_settle(b->acks[i], result);
    }
    b->n_acks = 0;
}

th_batch_t *th_batch_create(th_arena_t *arena, th_otlp_request_t *req)
{
    /* The batch lives in its own arena, so freeing the arena frees the batch too. */
    th_batch_t *b = th_arena_calloc(arena, 1, sizeof(*b));
    if (!b) {
        return NULL;
    }
    b->arena = arena;
    b->req = req;
    b->span_count = th_otlp_request_span_count(req);
    b->refs = 1;
    b->received_ns = th_now_unix_ns();
    return b;
}

void th_batch_retain(th_batch_t *b)
{
    __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
}

void th_batch_release(th_batch_t *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        th_batch_settle_acks(b, b->result);
        th_arena_destroy(b->arena);
    }
}

int th_batch_clone(const th_batch_t *b, th_batch_t **out)
{
    /* Pack and unpack: a deep copy that lands in one new arena, unpacked by the decoder's
     * own unpacker (several times faster than protobuf-c's generic one). */
    size_t len = protobuf_c_message_get_packed_size(&b->req->base);
    int ret = TH_ENOMEM;
    th_arena_t *arena = th_arena_create(len * 4 + 4096, 0);
    uint8_t *buf = th_malloc(len ? len : 1);
    if (!arena || !buf) {
        goto fail;
    }
    protobuf_c_message_pack(&b->req->base, buf);
    /* No budget: the data was accepted when it was received. */
    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, arena, SIZE_MAX);
    th_otlp_request_t *req = NULL;
    if (th__otlp_unpack(buf, len, &mem, &req) != 0) {
        goto fail;
    }
    th_batch_t *copy = th_batch_create(arena, req);
    if (!copy) {
        goto fail;
    }
    copy->received_ns = b->received_ns;
    if (th_batch_add_acks_of(copy, b) != 0) {
        copy->n_acks = 0; /* the arena goes below; nothing retained must leak */
        th_arena_destroy(arena);
        arena = NULL;
        goto fail;
    }
    th_free(buf);
    *out = copy;
    return 0;
fail:
    th_free(buf);
    th_arena_destroy(arena);
    return ret;
}

size_t th_otlp_request_span_count(const th_otlp_request_t *req)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            n += rs->scope_spans[j]->n_spans;
        }
    }
    return n;
}
