/*
 * How many connections one listening endpoint keeps open, and the rate-limited count of the
 * ones it refused beyond that. Shared by every server (OTLP/HTTP, OTLP/gRPC, the query API,
 * the health check and metrics endpoints) so they bound connections the same way.
 */
#ifndef TH_CONN_LIMIT_H
#define TH_CONN_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/** The smallest and largest default limit (see th_conn_limit_default()). */
#define TH_CONN_LIMIT_MIN 64
#define TH_CONN_LIMIT_MAX 65536

/** At most one refusal line per endpoint this often. */
#define TH_CONN_REFUSAL_LOG_NS ((uint64_t)10 * 1000000000)

/**
 * The connection limit of one endpoint when the config sets none: a quarter of the soft
 * RLIMIT_NOFILE (the three public endpoints full still leave a quarter of the descriptors to
 * the store, the exporters and the health check), within [TH_CONN_LIMIT_MIN,
 * TH_CONN_LIMIT_MAX]. The upper bound caps the memory idle connections can take.
 * @return the limit; reads the current limit on each call (main raises it before servers
 *         start).
 */
size_t th_conn_limit_default(void);

/** Refusals of one endpoint since its last log line. Owned by one thread (its loop). */
struct th_conn_refusals {
    uint64_t last_log_ns; /**< 0: never logged */
    uint64_t pending;     /**< refused since the last line */
};

/**
 * Count a refused connection.
 * @param[in,out] r the endpoint's counter.
 * @param[out] count when this returns true: how many were refused since the last line,
 *             this one included (the counter restarts).
 * @return true when the caller should log a line now (the first refusal, then at most once
 *         every TH_CONN_REFUSAL_LOG_NS).
 */
bool th_conn_refusal_note(struct th_conn_refusals *r, uint64_t *count);

/*
 * The progress deadline. h2o 2.2's HTTP/2 idle timer restarts on every byte read, so a client
 * that trickles a HEADERS frame a byte a second would keep its connection (and a slot of the
 * limit above) for ever. A server that owns its connections registers each one here and
 * reports when a request reaches its handler and when its answer is done; a connection with
 * no request in flight that completed none for longer than the bound is shut down by one
 * periodic sweep per server. The servers choose the bound at least as long as their own
 * timers, so the sweep only catches what those timers miss.
 */

/** One connection's progress. Embedded in the server's connection struct; loop thread only. */
struct th_conn_progress {
    struct th_conn_progress *prev, *next; /**< the watch's list */
    struct th_conn_req *reqs;             /**< requests in flight on it */
    uint64_t last_ns;                     /**< accepted, or a request began or ended */
    uint32_t in_flight;
    int fd;
    bool cut; /**< shut down by the sweep; closing */
};

/** One request in flight: lives as long as the request (in its pool). */
struct th_conn_req {
    struct th_conn_progress *conn; /**< NULL once the connection is gone */
    struct th_conn_req *prev, *next;
    uint64_t begin_ns; /**< when it reached its handler (the write timeout's start) */
};

/** A server's connections, found by descriptor. Owned by one thread (its loop). */
struct th_conn_watch {
    struct th_conn_progress **by_fd;
    size_t cap;
    struct th_conn_progress *list;
    uint64_t bound_ns;
    uint64_t write_bound_ns; /**< the write timeout; 0: none (see th_conn_watch_sweep_writes) */
    struct th_conn_refusals cuts;  /**< rate-limits the sweep's log line */
    struct th_conn_refusals wcuts; /**< the same for the write timeout's line */
};

/**
 * @param[out] w the watch, empty.
 * @param[in] bound_ns the progress deadline (> 0).
 */
void th_conn_watch_init(struct th_conn_watch *w, uint64_t bound_ns);

/** Free the descriptor table; the connections must be gone (or be dropped with it). */
void th_conn_watch_free(struct th_conn_watch *w);

/**
 * Start watching an accepted connection (its clock starts now).
 * @param[in] fd its socket.
 * @return 0, or TH_ENOMEM (not watched: the caller closes it).
 */
int th_conn_watch_add(struct th_conn_watch *w, struct th_conn_progress *p, int fd);

/** Stop watching a closed connection; its requests still in flight are detached. */
void th_conn_watch_remove(struct th_conn_watch *w, struct th_conn_progress *p);

/** @return the watched connection on @p fd, or NULL. */
struct th_conn_progress *th_conn_watch_find(const struct th_conn_watch *w, int fd);

/** A request reached its handler on @p p (NULL: unknown connection, nothing tracked). */
void th_conn_req_begin(struct th_conn_req *r, struct th_conn_progress *p);

/** Its answer is done (the request is released); idempotent. */
void th_conn_req_end(struct th_conn_req *r);

struct st_h2o_req_t;

/**
 * A request of an h2o server reached its handler: exempt its connection from the progress
 * deadline until h2o releases the request's pool (its answer is done). The connection is
 * found by its socket's descriptor through h2o's public API, not through h2o's structs.
 * @param w the server's watch; a request whose connection is not in it is ignored.
 */
void th_conn_watch_track_h2o(struct th_conn_watch *w, struct st_h2o_req_t *req);

/**
 * Shut down (shutdown(2) both ways, so the HTTP library sees EOF and closes the connection
 * through its own path) every connection without a request in flight whose last progress is
 * older than the bound.
 * @param[in] now_ns th_now_mono_ns().
 * @param[out] log_count when this returns true: connections cut since the last line.
 * @return true when the caller should log a line now (at most once every
 *         TH_CONN_REFUSAL_LOG_NS).
 */
bool th_conn_watch_sweep(struct th_conn_watch *w, uint64_t now_ns, uint64_t *log_count);

/**
 * The write timeout (the Collector's `write_timeout`, counted as Go's server counts it: from the
 * moment a request is read until its answer is written). h2o 2.2 has no write timer, and its
 * idle timers do not run while an answer is being written, so a client that asks for a large
 * answer and never reads it would hold the connection and the answer's memory for ever. Shut
 * down (as th_conn_watch_sweep does) every connection with a request in flight for longer than
 * w->write_bound_ns; does nothing when that is 0.
 * @param[out] log_count when this returns true: connections cut since the last such line.
 * @return true when the caller should log a line now (at most once every
 *         TH_CONN_REFUSAL_LOG_NS).
 */
bool th_conn_watch_sweep_writes(struct th_conn_watch *w, uint64_t now_ns, uint64_t *log_count);

struct th_component;
struct st_h2o_accept_ctx_t;
struct th_tls_server;
struct uv_stream_s;

/**
 * Over the limit: accept the pending connection of @p listener and close it at once (the
 * client sees EOF or a reset now, and the backlog keeps moving), and count it in @p r, with a
 * line "refused N connection(s)<where> since the last such line: ..." at most once every
 * TH_CONN_REFUSAL_LOG_NS, logged as @p log_as.
 * @param[in] where e.g. " on 127.0.0.1:4318", or "".
 * @param[in] limit_set whether max_connections set @p limit (the line names its source).
 * @return false when there was no memory for a handle (nothing was accepted).
 */
bool th_conn_refuse(struct uv_stream_s *listener, struct th_conn_refusals *r,
                    const struct th_component *log_as, const char *where, size_t open, size_t limit,
                    bool limit_set);

/** One connection of an h2o server that th_h2o_conn_accept() made. */
struct th_h2o_conn {
    uv_tcp_t tcp; /**< first: h2o's close callback is given this handle */
    struct th_conn_progress progress;
};

/**
 * Accept a connection of an h2o server: watched by @p w (the progress deadline), then handed
 * to h2o, over TLS with the context current now when @p tls is set (so a reloaded certificate
 * serves new connections).
 * @param[in,out] count the server's open connections: one more before h2o gets it (h2o may
 *                close it at once, and on_closed then counts it down).
 * @param[in] on_closed h2o's close callback: it gets the struct th_h2o_conn, removes it from
 *            the watch, counts it down and frees it.
 * @return 0, or TH_ENOMEM / TH_EIO (nothing is left open or counted).
 */
int th_h2o_conn_accept(struct uv_stream_s *listener, struct th_conn_watch *w, size_t *count,
                       struct st_h2o_accept_ctx_t *actx, struct th_tls_server *tls,
                       void (*on_closed)(uv_handle_t *h));

/**
 * One tick of a server's sweep timer: both sweeps above, each with its rate-limited line,
 * logged as @p log_as. The lines read "closed N connection(s)<where> since the last such
 * line: ...".
 * @param[in] where e.g. " on 127.0.0.1:4318", or "".
 * @param[in] bound_why what sets the progress bound, for the line (e.g. "the bound is the larger
 *            of idle_timeout and ..."), or NULL.
 */
void th_conn_watch_tick(struct th_conn_watch *w, const struct th_component *log_as,
                        const char *where, const char *bound_why);

/** @return how often to sweep, in ms: an eighth of the bound, within [100 ms, 1 s]. */
uint64_t th_conn_watch_period_ms(const struct th_conn_watch *w);

#endif
