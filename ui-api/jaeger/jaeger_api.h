/*
 * The Jaeger query API without the transport: routing of a request (method, path, query
 * string) to the v1 and api_v3 handlers, which read the store and build the whole response
 * body in memory. jaeger_http.c carries requests here from h2o; tests call it directly.
 *
 * Memory: each request gets its own arena (bounded by TH_JAEGER_REQUEST_MEMORY) that the
 * store copies results into, so no read transaction is open while the body is built or sent.
 */
#ifndef TH_JAEGER_API_H
#define TH_JAEGER_API_H

#include "th/arena.h"
#include "th/otlp.h"
#include "th/store.h"
#include "ui-api/jaeger/jaeger_params.h"

/** The most memory one request may use for store results and scratch. */
#define TH_JAEGER_REQUEST_MEMORY ((size_t)256 * 1024 * 1024)

/** The largest response body built; a bigger answer is refused with 503. */
#define TH_JAEGER_MAX_RESPONSE ((size_t)256 * 1024 * 1024)

/** What the handlers need; shared read-only by every request. */
struct th_jaeger_api {
    th_store_t *store;         /**< the span store (not owned) */
    const char *base_path;     /**< "" for none, else "/prefix" without a trailing '/' */
    int64_t max_clock_skew_ns; /**< the clock-skew adjuster's limit; 0 disables shifting */
    size_t request_memory;     /**< arena limit per request; 0 = TH_JAEGER_REQUEST_MEMORY */
    size_t max_response;       /**< response body limit; 0 = TH_JAEGER_MAX_RESPONSE */
};

/** A response: status, the two headers that vary, and the body. */
struct th_jaeger_response {
    int status;
    const char *content_type; /**< static string */
    bool nosniff;             /**< send X-Content-Type-Options: nosniff (Go's http.Error) */
    const char *allow;        /**< Allow header value for 405, else NULL */
    th_buf_t body;            /**< heap; release with th_jaeger_response_free() */
};

/**
 * Answer one request.
 * @param[in] method the HTTP method; GET and HEAD are served (HEAD as GET: the transport
 *            drops the body), anything else gets 405 on a known route.
 * @param[in] path the raw request path (still percent-encoded), without the query.
 * @param[in] query the raw query string without '?', or NULL.
 * @param[in] now_ns the wall clock, for default time windows.
 * @param[out] resp the response; always filled when 0 is returned.
 * @return 0, or TH_ENOMEM when not even an error response could be built (answer 503).
 * @note The store is only read; results are copied into a per-request arena first.
 */
int th_jaeger_api_serve(const struct th_jaeger_api *api, const char *method, size_t method_len,
                        const char *path, size_t path_len, const char *query, size_t query_len,
                        int64_t now_ns, struct th_jaeger_response *resp);

/** @return the response body limit of @p api (its own, or TH_JAEGER_MAX_RESPONSE). */
size_t th_jaeger_max_response(const struct th_jaeger_api *api);

/** The 503 message for an answer over the response limit, naming the @p param to lower. */
void th_jaeger_too_big_msg(const struct th_jaeger_api *api, const char *param, char *out,
                           size_t cap);

/** Free a response's body; the response can be reused. */
void th_jaeger_response_free(struct th_jaeger_response *resp);

/* ---- Shared by the v1 and api_v3 handlers (jaeger_api.c, jaeger_v3.c) ------------------- */

/** One request being served. */
struct th_jaeger_req {
    const struct th_jaeger_api *api;
    th_arena_t *arena;
    th_jaeger_params_t params;
    int64_t now_ns;
    const char *segment; /**< the decoded {service} or {trace_id} path segment, or NULL */
    struct th_jaeger_response *resp;
};

/**
 * Write Go's http.Error: @p text, a newline, text/plain; charset=utf-8 and nosniff.
 * @return 0 or TH_ENOMEM.
 */
int th_jaeger_http_error(struct th_jaeger_response *resp, int status, const char *text);

/**
 * Write a JSON success body (the caller then fills resp->body): status 200 and
 * application/json.
 */
void th_jaeger_json_ok(struct th_jaeger_response *resp);

/**
 * Fetch a trace and prepare it for output: not found (or found without spans) is TH_ENOENT;
 * unless @p raw the adjusters run.
 * @param[out] out the trace in the request's arena.
 * @return 0, TH_ENOENT, or the store's error.
 */
int th_jaeger_fetch_trace(struct th_jaeger_req *r, const uint8_t id[16], bool raw,
                          th_otlp_request_t **out);

/**
 * Build the store query of a parsed search (limits clamped, negative times and durations
 * treated as unset) and run it.
 * @param[out] ids,n the trace ids found, newest first, in the arena.
 * @return 0, or the store's error.
 */
int th_jaeger_find_traces(struct th_jaeger_req *r, const struct th_jaeger_search *s,
                          uint8_t (**ids)[16], size_t *n);

/** The api_v3 handlers (jaeger_v3.c). Each fills r->resp; @return 0 or TH_ENOMEM. */
int th_jaeger_v3_services(struct th_jaeger_req *r);
int th_jaeger_v3_operations(struct th_jaeger_req *r);
int th_jaeger_v3_get_trace(struct th_jaeger_req *r);
int th_jaeger_v3_find_traces(struct th_jaeger_req *r);
int th_jaeger_v3_trace_summaries(struct th_jaeger_req *r);

#endif
