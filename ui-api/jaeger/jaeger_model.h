/*
 * The trace model of the Jaeger query API: Jaeger's query-time adjusters applied to an OTLP
 * trace, the OTLP → Jaeger v1 JSON mapping (jaeger-api.md §3–§4: the collector-contrib
 * translator followed by Jaeger's uimodel converter), and the api_v3 trace summaries.
 *
 * A trace here is what th_store_get_trace() returns: an OTLP request in the request's arena.
 * The adjusters change it in place (the arena copy is the query's own); the writers only
 * read it.
 */
#ifndef TH_JAEGER_MODEL_H
#define TH_JAEGER_MODEL_H

#include "th/arena.h"
#include "th/batch.h"
#include "ui-api/jaeger/json_writer.h"

/** The span attribute Jaeger carries adjuster warnings in (a list of strings). */
#define TH_JAEGER_WARNINGS_ATTR "@jaeger@warnings"

/** Service name Jaeger gives a resource without any attribute. */
#define TH_JAEGER_NO_SERVICE_NAME "OTLPResourceNoServiceName"

/**
 * Apply Jaeger v2's standard adjusters, in its order: DeduplicateClientServerSpanIDs,
 * SortCollections (attributes by key, events by time), DeduplicateSpans,
 * CorrectClockSkew(@p max_clock_skew_ns), NormalizeIPAttributes, MoveLibraryAttributes,
 * RemoveEmptySpanLinks. Warnings are added to the span attribute TH_JAEGER_WARNINGS_ATTR, as
 * Jaeger does.
 * @param[in,out] req the trace; changed in place (arrays may be replaced by copies in @p a).
 * @param[in] max_clock_skew_ns the largest shift the clock-skew adjuster applies; 0 disables
 *            shifting (a warning still says what the delta would have been).
 * @return 0 or TH_ENOMEM (the trace may then be partly adjusted, but stays consistent).
 */
int th_jaeger_adjust(th_otlp_request_t *req, int64_t max_clock_skew_ns, th_arena_t *a);

/** @return the number of spans in @p req (NULL-tolerant). */
size_t th_jaeger_span_count(const th_otlp_request_t *req);

/**
 * Write one trace as a Jaeger v1 JSON Trace object:
 * `{"traceID":…,"spans":[…],"processes":{"p1":…},"warnings":null}`.
 * @param[in] req the trace; it must have at least one span (check th_jaeger_span_count).
 * @param[in] a scratch memory (process keys, sorted map values).
 * @return 0, TH_ENOMEM, or the writer's error.
 */
int th_jaeger_write_v1_trace(th_jaeger_json_t *w, const th_otlp_request_t *req, th_arena_t *a);

/**
 * Write the text of a trace id as Jaeger v1 does: 16 hex digits when the high half is zero,
 * otherwise 32.
 * @param[out] out room for 33 chars.
 */
void th_jaeger_trace_id_string(const uint8_t id[16], char out[33]);

/** Per-service counts of a trace summary. */
struct th_jaeger_summary_service {
    const char *name;
    uint32_t span_count;
    uint32_t error_span_count;
};

/** An api_v3 TraceSummary (Jaeger's querysvc/summary.go). */
struct th_jaeger_summary {
    uint8_t trace_id[16];
    const char *root_service;   /**< "" when the trace has no parentless span */
    const char *root_operation; /**< "" likewise */
    uint64_t min_start_ns;
    uint64_t max_end_ns;
    uint32_t span_count;
    uint32_t error_span_count;
    uint32_t orphan_span_count;                 /**< spans whose parent is not in the trace */
    struct th_jaeger_summary_service *services; /**< sorted by name */
    size_t n_services;
};

/**
 * Summarise a trace: the root is the parentless span that starts first; services come from
 * the resource's service.name.
 * @param[out] out allocated parts live in @p a.
 * @return 0 or TH_ENOMEM.
 */
int th_jaeger_summarize(const th_otlp_request_t *req, th_arena_t *a, struct th_jaeger_summary *out);

/** Write a summary as api_v3 JSON; zero and empty fields are omitted, as jsonpb does. */
void th_jaeger_write_summary(th_jaeger_json_t *w, const struct th_jaeger_summary *s);

/**
 * Format a Go time.Duration as its String() does ("1.5s", "-250ms", "1h0m0s", "1µs").
 * @param[out] out room for 40 chars.
 */
void th_jaeger_go_duration_string(int64_t ns, char *out, size_t cap);

#endif
