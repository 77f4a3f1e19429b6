/*
 * The batch: the unit that flows through a pipeline. A decoded ExportTraceServiceRequest
 * (protobuf-c structs) living in one arena, reference counted so that a fan-out can share it
 * read-only; freed with its arena when the last holder releases it.
 */
#ifndef TH_BATCH_H
#define TH_BATCH_H

#include "th/arena.h"
#include "th/common.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest th_otlp_request_t;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans th_otlp_resource_spans_t;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans th_otlp_scope_spans_t;
typedef Opentelemetry__Proto__Trace__V1__Span th_otlp_span_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue th_otlp_kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue th_otlp_any_t;

/**
 * An acknowledgement owed to a sender. The receiver answers a request only when every batch
 * carrying its ack has been settled: stored, delivered, or deliberately dropped (sampling).
 * That is how "acknowledged" comes to mean "durable": the store settles after its commit.
 */
typedef struct th_ack th_ack_t;
struct th_ack {
    uint32_t refs; /**< holders that have not settled yet; atomic */
    int result;    /**< the first failure reported, or 0; atomic */
    /** Called once, on the thread that settles last, with the overall result. */
    void (*on_settled)(th_ack_t *ack, int result);
    void *data;
};

/**
 * Create an ack with one reference (the creator's).
 * @return the ack, or NULL when memory is short.
 */
th_ack_t *th_ack_create(void (*on_settled)(th_ack_t *ack, int result), void *data);

/** Add a holder. */
void th_ack_retain(th_ack_t *ack);

/**
 * One holder is done, with @p result (0 = delivered or dropped on purpose). The last one
 * calls on_settled with the first failure any holder reported, then frees the ack.
 */
void th_ack_settle(th_ack_t *ack, int result);

typedef struct th_batch {
    th_arena_t *arena;      /**< owns req and everything it points to */
    th_otlp_request_t *req; /**< the spans */
    size_t span_count;      /**< spans in req, kept current by whoever changes req */
    uint32_t refs;          /**< reference count; atomic */
    uint64_t received_ns;   /**< wall clock when the receiver accepted it */
    th_ack_t **acks;        /**< acks settled when the last reference goes (in arena) */
    size_t n_acks, cap_acks;
    int result; /**< what the acks are settled with: 0, or a failure */
} th_batch_t;

/**
 * Wrap a decoded request in a batch with one reference.
 * @param[in] arena the arena that owns @p req; the batch takes it over.
 * @param[in] req the request, allocated in @p arena.
 * @return the batch, or NULL when memory is short (then the arena is still the caller's).
 */
th_batch_t *th_batch_create(th_arena_t *arena, th_otlp_request_t *req);

/**
 * Make the batch carry an ack (retained): it is settled when the batch is finally released.
 * @return 0 or TH_ENOMEM.
 */
int th_batch_add_ack(th_batch_t *b, th_ack_t *ack);

/** Carry every ack of @p from as well (merging batches). @return 0 or TH_ENOMEM. */
int th_batch_add_acks_of(th_batch_t *b, const th_batch_t *from);

/** Record a failure: the acks will be settled with @p err (the first failure wins). */
void th_batch_fail(th_batch_t *b, int err);

/**
 * Settle the acks now with @p result and stop carrying them, for a component that takes
 * responsibility for the data itself (tail sampling buffers traces for decision_wait).
 */
void th_batch_settle_acks(th_batch_t *b, int result);

/** Add a reference (for a fan-out that hands the same batch to several read-only consumers). */
void th_batch_retain(th_batch_t *b);

/**
 * Drop a reference; the last one frees the batch and its arena.
 * @param[in] b the batch; NULL is allowed.
 */
void th_batch_release(th_batch_t *b);

/**
 * Deep-copy a batch into a new arena, for a consumer that must change data others still read.
 * The copy carries the same acks (retained), so they settle only when both are done.
 * @param[out] out the copy, with one reference.
 * @return 0, TH_ENOMEM.
 */
int th_batch_clone(const th_batch_t *b, th_batch_t **out);

/** @return the number of spans in a request (walks resource and scope spans). */
size_t th_otlp_request_span_count(const th_otlp_request_t *req);

#endif
