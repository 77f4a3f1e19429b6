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

typedef struct th_batch {
    th_arena_t *arena;      /**< owns req and everything it points to */
    th_otlp_request_t *req; /**< the spans */
    size_t span_count;      /**< spans in req, kept current by whoever changes req */
    uint32_t refs;          /**< reference count; atomic */
    uint64_t received_ns;   /**< wall clock when the receiver accepted it */
} th_batch_t;

/**
 * Wrap a decoded request in a batch with one reference.
 * @param[in] arena the arena that owns @p req; the batch takes it over.
 * @param[in] req the request, allocated in @p arena.
 * @return the batch, or NULL when memory is short (then the arena is still the caller's).
 */
th_batch_t *th_batch_create(th_arena_t *arena, th_otlp_request_t *req);

/** Add a reference (for a fan-out that hands the same batch to several read-only consumers). */
void th_batch_retain(th_batch_t *b);

/**
 * Drop a reference; the last one frees the batch and its arena.
 * @param[in] b the batch; NULL is allowed.
 */
void th_batch_release(th_batch_t *b);

/**
 * Deep-copy a batch into a new arena, for a consumer that must change data others still read.
 * @param[out] out the copy, with one reference.
 * @return 0, TH_ENOMEM.
 */
int th_batch_clone(const th_batch_t *b, th_batch_t **out);

/** @return the number of spans in a request (walks resource and scope spans). */
size_t th_otlp_request_span_count(const th_otlp_request_t *req);

#endif
