/*
 * The OTLP/gRPC server of the otlp receiver: HTTP/2 with prior knowledge (h2c), or over TLS
 * with ALPN h2 when `tls` is set (otlp_grpc_tls.c), by nghttp2 on the receiver's libuv loop,
 * serving the unary TraceService/Export call (otlp.md §4, otelcol-config.md §4.1). It takes the
 * typed config, so a test can run it without YAML.
 *
 * Threading: every function here runs on the loop's thread, or while the loop is not
 * running. The consumer is called on the loop's thread; acks may settle on any thread.
 */
#ifndef TH_RECEIVER_OTLP_GRPC_H
#define TH_RECEIVER_OTLP_GRPC_H

#include <uv.h>

#include "th/auth.h"
#include "th/component.h"
#include "th/grpc.h"
#include "receivers/otlp/otlp_config.h"

typedef struct th_otlp_grpc_server th_otlp_grpc_server_t;

/** Streams per connection advertised when max_concurrent_streams is 0. */
#define TH_OTLP_GRPC_DEFAULT_STREAMS 100
/** Connections served at once; more are accepted and closed at once. */
#define TH_OTLP_GRPC_MAX_CONNECTIONS 1024
/** The largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE); larger is refused. */
#define TH_OTLP_GRPC_MAX_HEADER_LIST 16384
/** The delay put in RetryInfo when the pipeline cannot take data (as HTTP's Retry-After). */
#define TH_OTLP_GRPC_RETRY_DELAY_NS ((int64_t)1000000000)

/**
 * Create a server from its config. No I/O: nothing is bound until start.
 * @param[in] cfg the gRPC settings; everything needed is copied.
 * @param[in] next where decoded batches go; never called after shutdown returns.
 * @param[in] owner the component for logs and counters (its stats are updated), or NULL.
 * @param[out] out the server.
 * @return 0, TH_ECONFIG (logged), TH_ENOMEM.
 * @note Free with th_otlp_grpc_server_destroy().
 */
int th_otlp_grpc_server_create(const struct th_otlp_grpc_cfg *cfg, struct th_consumer *next,
                               struct th_component *owner, th_otlp_grpc_server_t **out);

/**
 * Bind the endpoint and serve on @p loop ("localhost" binds 127.0.0.1, ":port" every
 * interface). Logs "OTLP/gRPC listening on ADDRESS".
 * @return 0; TH_EADDRINUSE, TH_EINVAL (unresolvable host), TH_EPERM, TH_EIO, TH_ECONFIG
 *         (`tls` files that cannot be loaded) (all logged); TH_EEXIST (already started);
 *         TH_ENOMEM.
 * @note On failure nothing is left open.
 */
int th_otlp_grpc_server_start(th_otlp_grpc_server_t *s, uv_loop_t *loop);

/** @return the TCP port bound (useful with port 0), or -1 when not listening. */
int th_otlp_grpc_bound_port(const th_otlp_grpc_server_t *s);

/**
 * Authenticate every call with @p auth (th/auth.h) from now on: once a call's headers are
 * complete, one without valid credentials is answered Trailers-Only with grpc-status 16
 * (UNAUTHENTICATED) and its message is never read.
 * @param[in] s the server; NULL is allowed (nothing happens).
 * @param[in] auth copied; the zero value turns authentication off. The extension must
 *            outlive the server's running time.
 */
void th_otlp_grpc_server_set_auth(th_otlp_grpc_server_t *s, const struct th_auth *auth);

/**
 * Stop: close the listener and send GOAWAY on every connection. Calls whose spans the
 * pipeline already took are answered when their acks settle (the pipeline's shutdown flush);
 * calls that complete later are answered UNAVAILABLE; connections close when they have
 * nothing left to answer, or after 10 s. The consumer is never called after this returns.
 * Idempotent; a no-op on a server never started.
 * @return 0.
 */
int th_otlp_grpc_server_shutdown(th_otlp_grpc_server_t *s);

/** @return true when no libuv handle of the server is open or closing. */
bool th_otlp_grpc_server_closed(const th_otlp_grpc_server_t *s);

/**
 * Free the server (shutting it down first). NULL is allowed.
 * @note When handles are still closing the loop frees the memory once they have closed, so
 *       the loop must run again; the server stops referring to its owner and consumer now.
 */
void th_otlp_grpc_server_destroy(th_otlp_grpc_server_t *s);

/** Counters of a server created without an owner (with an owner, see owner->stats). */
const struct th_component_stats *th_otlp_grpc_server_stats(const th_otlp_grpc_server_t *s);

/** Counters of this server alone, with or without an owner (whose stats sum every
 *  transport): otelcol_receiver_*_spans{transport="grpc"}. Read them atomically. */
const struct th_component_stats *
th_otlp_grpc_server_transport_stats(const th_otlp_grpc_server_t *s);

/* ---- Sessions without a socket, for the fuzz target and white-box tests ---------------- */

typedef struct th__otlp_grpc_session th__otlp_grpc_session_t;

/**
 * Open an HTTP/2 server session on @p s fed by the caller instead of a socket. A server that
 * was never started takes calls on such sessions (without deadlines or timers); acks must
 * then settle on the calling thread.
 * @param[in] on_output receives every byte the session would write (may be NULL).
 * @return 0 or TH_ENOMEM.
 */
int th__otlp_grpc_session_create(th_otlp_grpc_server_t *s,
                                 void (*on_output)(void *ctx, const uint8_t *p, size_t n),
                                 void *ctx, th__otlp_grpc_session_t **out);

/**
 * Feed bytes as if read from the client.
 * @return 0, or TH_EIO once the session has closed the connection (garbage, protocol error).
 */
int th__otlp_grpc_session_feed(th__otlp_grpc_session_t *ss, const uint8_t *p, size_t n);

/** Close and free the session (calls still waiting for acks are detached). NULL is allowed. */
void th__otlp_grpc_session_destroy(th__otlp_grpc_session_t *ss);

#endif
