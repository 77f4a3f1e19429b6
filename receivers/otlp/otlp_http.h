/*
 * The OTLP/HTTP server of the otlp receiver: h2o 2.2 on a libuv loop, serving
 * POST <traces_url_path> with protobuf or JSON bodies (HTTP/1.1 with keep-alive, and HTTP/2
 * with prior knowledge or h2c upgrade), CORS, capped decompression, and the Collector's
 * answers (otlp.md §2, otelcol-config.md §4.2). It takes the typed config, so a test can run
 * it without YAML.
 *
 * Threading: every function here runs on the loop's thread, or while the loop is not
 * running. The consumer is called on the loop's thread.
 */
#ifndef TH_RECEIVER_OTLP_HTTP_H
#define TH_RECEIVER_OTLP_HTTP_H

#include <uv.h>

#include "th/auth.h"
#include "th/component.h"
#include "th/otlp.h"
#include "receivers/otlp/otlp_config.h"
#include "receivers/otlp/otlp_decompress.h"

typedef struct th_otlp_http_server th_otlp_http_server_t;

/**
 * Create a server from its config. No I/O: nothing is bound until start.
 * @param[in] cfg the HTTP settings; everything needed is copied, so @p cfg may be freed
 *            after the call.
 * @param[in] next where decoded batches go; must outlive the server's running time (it is
 *            never called after shutdown returns).
 * @param[in] owner the component for logs and counters (its stats are updated), or NULL
 *            (then the server logs as the collector and keeps its own counters).
 * @param[out] out the server.
 * @return 0, TH_ECONFIG (invalid endpoint or path), TH_ENOMEM.
 * @note Free with th_otlp_http_server_destroy().
 */
int th_otlp_http_server_create(const struct th_otlp_http_cfg *cfg, struct th_consumer *next,
                               struct th_component *owner, th_otlp_http_server_t **out);

/**
 * Bind the endpoint and start serving on @p loop. Host names are resolved once, here
 * ("localhost" binds 127.0.0.1, as Go does); ":port" listens on all interfaces (IPv6 and
 * IPv4). Logs "listening on ADDRESS" at info level.
 * @return 0; TH_EADDRINUSE (the port is taken; logged); TH_EINVAL (the host does not
 *         resolve; logged); TH_EPERM (a privileged port); TH_EIO; TH_EEXIST (already
 *         started); TH_ECONFIG (`tls`: a certificate, key or CA file cannot be loaded;
 *         logged with the key and file).
 * @note On failure nothing is left open; the server can be destroyed, or started again.
 */
int th_otlp_http_server_start(th_otlp_http_server_t *s, uv_loop_t *loop);

/** @return the TCP port actually bound (useful with port 0), or -1 when not listening. */
int th_otlp_http_bound_port(const th_otlp_http_server_t *s);

/**
 * Authenticate every request with @p auth (th/auth.h) from now on: a request without valid
 * credentials is answered 401 with WWW-Authenticate (and a google.rpc.Status body in the
 * request's encoding) before its body is decoded. CORS preflights pass unauthenticated, as
 * browsers send them without credentials.
 * @param[in] s the server; NULL is allowed (nothing happens).
 * @param[in] auth copied; the zero value turns authentication off. The extension must
 *            outlive the server's running time.
 */
void th_otlp_http_server_set_auth(th_otlp_http_server_t *s, const struct th_auth *auth);

/**
 * Stop: close the listener, stop taking requests (any request still arriving is answered
 * 503 without reaching the consumer), and close every connection. The consumer is never
 * called after this returns. Idempotent, and a no-op on a server never started.
 * The handles finish closing on the loop; th_otlp_http_server_closed() says when.
 * @return 0.
 */
int th_otlp_http_server_shutdown(th_otlp_http_server_t *s);

/** @return true when no libuv handle of the server is open or closing. */
bool th_otlp_http_server_closed(const th_otlp_http_server_t *s);

/**
 * Free the server (shutting it down first if needed). NULL is allowed.
 * @note When handles are still closing, the memory is released by the loop once they have
 *       closed, so the loop must run again (as it must anyway for uv_loop_close); the
 *       server stops referring to @p owner and to the consumer immediately.
 */
void th_otlp_http_server_destroy(th_otlp_http_server_t *s);

/** Counters of a server created without an owner (with an owner, see owner->stats). */
const struct th_component_stats *th_otlp_http_server_stats(const th_otlp_http_server_t *s);

/** Counters of this server alone, with or without an owner (whose stats sum every
 *  transport): otelcol_receiver_*_spans{transport="http"}. Read them atomically. */
const struct th_component_stats *
th_otlp_http_server_transport_stats(const th_otlp_http_server_t *s);

/* ---- The request core, shared with the fuzz target ------------------------------------ */

/** What the core needs to turn one request body into an answer. */
struct th__otlp_export {
    struct th_consumer *next;                   /**< downstream */
    struct th_component_stats *stats;           /**< accepted/refused span counters (atomic) */
    struct th_component_stats *transport_stats; /**< counted here too when not NULL */
    const struct th_component *log_as;          /**< for log lines, or NULL */
    struct th_otlp_limits lim;                  /**< decoder limits */
    size_t max_body;                            /**< cap before and after decompression */
    unsigned encodings;                         /**< allowed enum th_otlp_encoding bits */
};

/** The answer to one export request. */
struct th__otlp_reply {
    int status;         /**< HTTP status */
    const char *reason; /**< its reason phrase */
    int retry_after_s;  /**< > 0: send Retry-After */
    th_buf_t body;      /**< heap; the caller frees it with th_buf_free() */
};

/**
 * Handle one POST to the traces path whose media type is known: decompress (capped),
 * decode, hand the batch to the consumer, and build the answer in the request's encoding.
 * @param[in] json true for application/json, false for application/x-protobuf.
 * @param[in] encoding,encoding_len the Content-Encoding header value (len 0: none).
 * @param[in] body,len the request body as received.
 * @param[in] ack when not NULL, the batch carries it: the pipeline settles it once the spans
 *            are stored or delivered, and a successful export then leaves r->status 0 to say
 *            "answer when the ack settles". With NULL, success is answered at once.
 * @param[out] r the answer (always filled; on allocation failure the body may be empty).
 * @note The batch made from the body goes to x->next and is never touched afterwards.
 */
void th__otlp_http_export(const struct th__otlp_export *x, bool json, const char *encoding,
                          size_t encoding_len, const uint8_t *body, size_t len, th_ack_t *ack,
                          struct th__otlp_reply *r);

/**
 * The answer for a request whose ack settled with @p result (0: 200 with an empty
 * ExportTraceServiceResponse; a failure: the status the consumer contract maps it to).
 */
void th__otlp_http_settled_reply(bool json, int result, struct th__otlp_reply *r);

#endif
