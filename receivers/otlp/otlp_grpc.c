/*
 * The OTLP/gRPC server: nghttp2 server sessions over libuv TCP (h2c with prior knowledge, or
 * TLS with ALPN h2), serving the unary TraceService/Export call. Each connection is a `struct
 * gconn` whose bytes go through a small transport table (the socket; the socket with an
 * OpenSSL session in between, otlp_grpc_tls.c; or memory), so the fuzz target drives the very
 * same session code without a socket.
 *
 * A call (one stream) reassembles its Length-Prefixed-Message (bounded by
 * max_recv_msg_size), decompresses and decodes it into its own arena, hands the batch to the
 * pipeline with an ack, and is answered when the ack settles (stored or delivered), as the
 * HTTP side does. Acks settle on any thread; they come back to the loop through a hub.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "th/ack_hub.h"
#include "th/conn_limit.h"
#include "th/log.h"
#include "th/tls.h"
#include "receivers/otlp/otlp_grpc.h"
#include "receivers/otlp/otlp_grpc_tls.h"

#define ACCEPT_ENCODINGS "identity,gzip,deflate,zstd"
/* Shutdown waits at most this long for calls in flight. */
#define DRAIN_MAX_MS 10000
/* A client must finish the preface and SETTINGS within this long. */
#define HANDSHAKE_NS ((uint64_t)10 * 1000000000)
/* A call must finish its headers within HANDSHAKE_NS of its first HEADERS frame, and its
 * whole request within CALL_READ_NS; otherwise the connection is closed. Without these a
 * client trickling a byte a second holds its connection for ever: a call in progress keeps
 * the idle timer off, and every byte keeps the keepalive ping away. 30 s still lets a 4 MiB
 * message through at 140 KB/s. */
#define CALL_READ_NS ((uint64_t)30 * 1000000000)
/* Housekeeping (idle, age, keepalive, handshake) runs at least this often. */
#define TICK_NS ((uint64_t)1000000000)
/* Windows: the connection's is large so many concurrent 4 MiB messages do not stall. */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW   (16 << 20)

enum srv_state { ST_NEW, ST_RUNNING, ST_CLOSING, ST_DONE };

enum call_state {
    CALL_READING,  /* headers and DATA arriving */
    CALL_WAITING,  /* the pipeline took the batch; answered when its ack settles */
    CALL_ANSWERED, /* the answer is submitted; later DATA is discarded */
};

struct gconn;
struct pending;

/* One stream: one Export call. */
struct call {
    struct gconn *conn;
    int32_t stream_id;
    struct call *prev, *next;
    enum call_state state;
    struct th_grpc_reader rd;
    size_t counted;      /* bytes of rd.msg counted in the server's budget */
    size_t header_bytes; /* the request's header list so far (name + value + 32 each) */
    bool post, path_ok, ct_seen, ct_grpc;
    bool enc_unknown;
    char encoding[16]; /* "" = identity */
    uint64_t begun_ns; /* its first HEADERS frame (CALL_READ_NS, HANDSHAKE_NS) */
    bool headers_in;   /* the header block is complete */
    uint64_t deadline_ns;
    struct pending *pending;
    uint8_t *resp; /* the framed response message, while it is sent */
    size_t resp_len, resp_off;
    nghttp2_nv trailers[2];
    char *auth_value; /* the authenticator's header, kept until the headers are complete */
    size_t auth_len;
};

/* How a connection's bytes leave: the socket, TLS over the socket, or memory. */
struct transport {
    /* Take @p b's bytes (the buffer passes to the transport); 0 or a negative error. */
    int (*write)(struct gconn *c, th_buf_t *b);
    /* Stop or resume reading (write backpressure). */
    void (*pause)(struct gconn *c, bool paused);
    /* Tear the transport down; it calls conn_free when done. */
    void (*close)(struct gconn *c);
};

struct gconn {
    th_otlp_grpc_server_t *srv;
    const struct transport *tx;
    nghttp2_session *h2;
    struct gconn *prev, *next;
    struct call *calls;
    size_t n_calls;
    uint64_t created_ns, last_read_ns, idle_since_ns, ping_sent_ns;
    /* The keepalive enforcement policy: when the client last pinged, and its strikes. */
    uint64_t last_ping_ns;
    unsigned ping_strikes;
    bool ping_reset;     /* we sent headers or data since: the next ping is no strike */
    bool too_many_pings; /* over the policy: GOAWAY(ENHANCE_YOUR_CALM) and close */
    size_t out_pending;  /* bytes handed to the transport and not yet written */
    bool defer_flush;    /* inside nghttp2 callbacks or a walk of the calls: flush after */
    bool settings_seen;
    bool goaway_sent;
    bool paused;
    bool closing; /* close once the queued bytes are written */
    bool closed;  /* the transport is being torn down */
    /* Socket transport. */
    uv_tcp_t tcp;
    th__otlp_grpc_tls_t *tls; /* TLS transport: the session between the socket and nghttp2 */
    /* Session transport (fuzzing). */
    void (*on_output)(void *ctx, const uint8_t *p, size_t n);
    void *out_ctx;
};

struct th__otlp_grpc_session {
    struct gconn *c;
};

/* What an ack points to: it outlives the call when the client goes away first. */
struct pending {
    struct th_ack_hub_entry e; /* first: the hub hands it back */
    struct call *call;         /* NULL once the call is gone */
};

struct th_otlp_grpc_server {
    th_arena_t *arena;
    struct th_component *owner;
    struct th_component_stats own_stats;
    struct th_component_stats *stats;
    struct th_consumer *next;
    struct th_otlp_limits lim;
    const char *endpoint;
    uint64_t max_msg;
    uint32_t max_streams;
    size_t read_size;
    size_t write_high;
    size_t budget; /* message bytes buffered across every call */
    size_t buffered;
    uint64_t idle_ns, age_ns, age_grace_ns, ka_time_ns, ka_timeout_ns;
    uint64_t ping_min_ns;    /* enforcement_policy::min_time (0: 5 min) */
    bool ping_without_calls; /* enforcement_policy::permit_without_stream */

    enum srv_state state;
    bool accepting;
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    uv_timer_t tick;
    uint64_t tick_due;
    uv_timer_t drain;
    size_t handles; /* libuv handles open or closing */
    struct gconn *conns;
    size_t n_conns;
    size_t max_conns; /* max_connections, or th_conn_limit_default(): beyond it connections
                       * are refused */
    bool max_conns_set;
    struct th_conn_refusals refusals;
    uint8_t *rbuf;
    int port;
    char addr_text[INET6_ADDRSTRLEN + 16];
    th_ack_hub_t *hub;    /* its loop thread is set by the first connection: start() may run on
                           * another thread */
    th_tls_server_t *tls; /* `tls:`: every connection speaks TLS with ALPN h2 */
    bool destroy_pending;
    uint64_t last_warn_ns;

    /* `auth:`: the authenticator every call goes through (zero: none), and the one header it
     * reads, lower case, which calls keep until their headers are complete. */
    th_auth_t auth;
    const char *auth_header;
};

static void conn_flush(struct gconn *c);
static void conn_close(struct gconn *c, bool graceful);
static void schedule(th_otlp_grpc_server_t *s, uint64_t due_ns);
static void maybe_finish(th_otlp_grpc_server_t *s);

static bool warn_allowed(th_otlp_grpc_server_t *s)
{
    uint64_t now = th_now_mono_ns();
    if (s->last_warn_ns != 0 && now - s->last_warn_ns < 1000000000ull) {
        return false;
    }
    s->last_warn_ns = now;
    return true;
}

#define NV(n, v, vlen)                                                                             \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen), NGHTTP2_NV_FLAG_NONE                \
    }

/* ---- Answers --------------------------------------------------------------------------- */

static void call_release_msg(struct call *k)
{
    th_otlp_grpc_server_t *s = k->conn ? k->conn->srv : NULL;
    if (s && k->counted) {
        s->buffered -= k->counted;
    }
    k->counted = 0;
    th_grpc_reader_free(&k->rd);
}

/* Submit an answer (never twice), then write it unless nghttp2 is mid-receive. */
static void call_answered(struct call *k)
{
    k->state = CALL_ANSWERED;
    call_release_msg(k);
    if (k->conn && !k->conn->defer_flush) {
        conn_flush(k->conn);
    }
}

/* Trailers-Only: one HEADERS frame with END_STREAM carrying the status. */
static void answer_status(struct call *k, int code, const char *msg, int64_t retry_delay_ns,
                          bool accept_encoding)
{
    if (k->state == CALL_ANSWERED || !k->conn) {
        return;
    }
    char status[12];
    int slen = snprintf(status, sizeof(status), "%d", code);
    th_arena_t *a = th_arena_create(1024, 0);
    char *m = a ? th_grpc_message_encode(a, msg ? msg : "") : NULL;
    char *details = a && retry_delay_ns >= 0
                        ? th_grpc_status_details_encode(a, code, msg, retry_delay_ns)
                        : NULL;
    nghttp2_nv nv[6] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
        NV("grpc-status", status, (size_t)slen),
    };
    size_t n = 3;
    if (m && *m) {
        nghttp2_nv x = NV("grpc-message", m, strlen(m));
        nv[n++] = x;
    }
    if (details) {
        nghttp2_nv x = NV("grpc-status-details-bin", details, strlen(details));
        nv[n++] = x;
    }
    if (accept_encoding) {
        nghttp2_nv x = NV("grpc-accept-encoding", ACCEPT_ENCODINGS, sizeof(ACCEPT_ENCODINGS) - 1);
        nv[n++] = x;
    }
    /* nghttp2 copies the header block, so the arena can go now. */
    nghttp2_submit_response(k->conn->h2, k->stream_id, nv, n, NULL);
    th_arena_destroy(a);
    call_answered(k);
}

/* A plain HTTP answer for a request that is not gRPC at all. */
static void answer_http(struct call *k, const char *status, const char *msg)
{
    if (k->state == CALL_ANSWERED || !k->conn) {
        return;
    }
    nghttp2_nv nv[] = {
        NV(":status", status, strlen(status)),
        NV("content-type", "text/plain", 10),
        NV("grpc-status", "13", 2),
        NV("grpc-message", msg, strlen(msg)),
    };
    nghttp2_submit_response(k->conn->h2, k->stream_id, nv, TH_ARRAY_SIZE(nv), NULL);
    call_answered(k);
}

static ssize_t resp_read(nghttp2_session *h2, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct call *k = src->ptr;
    size_t n = TH_MIN(len, k->resp_len - k->resp_off);
    memcpy(buf, k->resp + k->resp_off, n);
    k->resp_off += n;
    if (k->resp_off == k->resp_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(h2, sid, k->trailers, 1) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

/* HEADERS, one DATA frame with the length-prefixed ExportTraceServiceResponse, trailers. */
static void answer_ok(struct call *k)
{
    if (k->state == CALL_ANSWERED || !k->conn) {
        return;
    }
    th_buf_t body = {0};
    uint8_t *frame = NULL;
    size_t flen = 0;
    if (th_otlp_encode_response(false, 0, NULL, &body) != 0 ||
        th_grpc_frame(NULL, body.ptr, body.len, &frame, &flen) != 0) {
        th_buf_free(&body);
        /* The spans are in: still say OK, in a Trailers-Only answer that needs no memory. */
        answer_status(k, TH_GRPC_OK, NULL, -1, false);
        return;
    }
    th_buf_free(&body);
    k->resp = frame;
    k->resp_len = flen;
    k->resp_off = 0;
    nghttp2_nv t = NV("grpc-status", "0", 1);
    k->trailers[0] = t;
    nghttp2_nv nv[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
        NV("grpc-accept-encoding", ACCEPT_ENCODINGS, sizeof(ACCEPT_ENCODINGS) - 1),
    };
    nghttp2_data_provider dp = {.source.ptr = k, .read_callback = resp_read};
    nghttp2_submit_response(k->conn->h2, k->stream_id, nv, TH_ARRAY_SIZE(nv), &dp);
    call_answered(k);
}

/* What a consumer's result means for the client (the HTTP side's mapping, in gRPC codes). */
static void answer_pipeline(struct call *k, int ret)
{
    char msg[160];
    switch (ret) {
    case 0:
    case TH_HELD:
        answer_ok(k);
        return;
    case TH_ERETRY:
    case TH_ESHUTDOWN:
    case TH_ESPACE:
    case TH_AGAIN:
        snprintf(msg, sizeof(msg), "the pipeline cannot take the data now (%s); retry later",
                 th_strerror(ret));
        answer_status(k, TH_GRPC_UNAVAILABLE, msg, TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        return;
    case TH_ENOMEM:
        answer_status(k, TH_GRPC_UNAVAILABLE, "data refused due to high memory usage",
                      TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        return;
    case TH_EPERM:
    case TH_EINVAL:
    case TH_EDECODE:
    case TH_E2BIG:
        snprintf(msg, sizeof(msg), "the pipeline rejected the data permanently (%s)",
                 th_strerror(ret));
        answer_status(k, TH_GRPC_INVALID_ARGUMENT, msg, -1, false);
        return;
    default:
        snprintf(msg, sizeof(msg), "internal error (%s)", th_strerror(ret));
        answer_status(k, TH_GRPC_INTERNAL, msg, -1, false);
        return;
    }
}

/* ---- Acks ------------------------------------------------------------------------------ */

/* On the loop thread (or, with no hub, where the ack settled): answer the call if it is
 * still there and waiting, and free. */
static void on_pending_complete(struct th_ack_hub_entry *e, int result)
{
    struct pending *p = (struct pending *)e;
    struct call *k = p->call;
    if (k) {
        k->pending = NULL;
        if (k->state == CALL_WAITING) {
            th_otlp_grpc_server_t *s = k->conn->srv;
            if (result != 0 && warn_allowed(s)) {
                th_log_warn(s->owner,
                            "answered an export with an error: the pipeline could not store or "
                            "deliver it (%s; at most one such line a second)",
                            th_strerror(result));
            }
            answer_pipeline(k, result);
        }
    }
    th_free(p);
}

/* Any thread: the hub brings the answer back to the loop, in arrival order. */
static void on_ack_settled(th_ack_t *ack, int result)
{
    struct pending *p = ack->data;
    th_ack_hub_settle(&p->e, result);
}

/* ---- The call's message ---------------------------------------------------------------- */

static void export_message(struct call *k, uint8_t *msg, size_t len, bool compressed)
{
    th_otlp_grpc_server_t *s = k->conn->srv;
    char text[320];
    uint8_t *plain = NULL;
    size_t plain_len = len;
    th_arena_t *arena = NULL;
    const uint8_t *data = msg;

    if (!s->accepting) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "the receiver is shutting down",
                      TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        goto out;
    }
    if (compressed) {
        if (!k->encoding[0]) {
            answer_status(k, TH_GRPC_INTERNAL,
                          "the message is flagged compressed but the call has no grpc-encoding", -1,
                          false);
            goto out;
        }
        int ret = th_grpc_decompress(k->encoding, msg, len, s->max_msg, &plain, &plain_len);
        if (ret == TH_E2BIG) {
            snprintf(text, sizeof(text),
                     "the decompressed message exceeds max_recv_msg_size (%llu bytes)",
                     (unsigned long long)s->max_msg);
            answer_status(k, TH_GRPC_RESOURCE_EXHAUSTED, text, -1, false);
            goto out;
        }
        if (ret == TH_ENOMEM) {
            answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory decompressing the message",
                          TH_OTLP_GRPC_RETRY_DELAY_NS, false);
            goto out;
        }
        if (ret != 0) {
            snprintf(text, sizeof(text), "cannot decompress the message (grpc-encoding %s)",
                     k->encoding);
            answer_status(k, TH_GRPC_INTERNAL, text, -1, false);
            goto out;
        }
        data = plain;
    }
    /* The arena per request: a first chunk near the decoded size. */
    size_t chunk = TH_MIN(TH_MAX(plain_len * 8, (size_t)16 * 1024), (size_t)1024 * 1024);
    arena = th_arena_create(chunk, 0);
    if (!arena) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory", TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        goto out;
    }
    th_otlp_request_t *req = NULL;
    struct th_otlp_error derr;
    memset(&derr, 0, sizeof(derr));
    int ret = th_otlp_decode_pb(data, plain_len, &s->lim, arena, &req, &derr);
    th_free(plain);
    plain = NULL;
    if (ret == TH_ENOMEM && derr.arena_limit) {
        answer_status(k, TH_GRPC_RESOURCE_EXHAUSTED, derr.msg, -1, false);
        goto out;
    }
    if (ret == TH_ENOMEM) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory decoding the request",
                      TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        goto out;
    }
    if (ret != 0) {
        answer_status(k, TH_GRPC_INVALID_ARGUMENT,
                      derr.msg[0] ? derr.msg : "cannot decode the request", -1, false);
        TH_LOG_AT(TH_LOG_DEBUG, s->owner, "decoding an OTLP/gRPC request", "INVALID_ARGUMENT: %s",
                  derr.msg);
        goto out;
    }
    size_t spans = th_otlp_request_span_count(req);
    if (spans == 0) {
        answer_ok(k);
        goto out;
    }
    th_batch_t *batch = th_batch_create(arena, req);
    if (!batch) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory", TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        goto out;
    }
    arena = NULL; /* the batch owns it now */
    struct pending *p = th_calloc(1, sizeof(*p));
    if (p) {
        th_ack_hub_entry_init(&p->e, on_pending_complete);
    }
    th_ack_t *ack = p ? th_ack_create(on_ack_settled, p) : NULL;
    if (!ack || th_batch_add_ack(batch, ack) != 0) {
        if (ack) {
            p->call = NULL;
            th_ack_settle(ack, 0); /* frees p through on_ack_settled */
        } else {
            th_free(p);
        }
        th_batch_release(batch);
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory", TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        goto out;
    }
    p->call = k;
    th_ack_hub_attach(s->hub, &p->e); /* no hub (a session without start): completes in place */
    k->pending = p;
    k->state = CALL_WAITING;
    ret = th_consumer_consume(s->next, batch);
    if (ret != 0 && ret != TH_HELD) {
        __atomic_add_fetch(&s->stats->refused, spans, __ATOMIC_RELAXED);
        if (s->stats != &s->own_stats) { /* per transport, for the internal metrics */
            __atomic_add_fetch(&s->own_stats.refused, spans, __ATOMIC_RELAXED);
        }
        k->pending = NULL;
        p->call = NULL;
        k->state = CALL_READING; /* so the answer below goes out */
        answer_pipeline(k, ret);
        if (warn_allowed(s)) {
            th_log_warn(s->owner,
                        "refused an export of %zu spans: the pipeline answered %s (at most one "
                        "such line a second)",
                        spans, th_strerror(ret));
        }
    } else {
        __atomic_add_fetch(&s->stats->accepted, spans, __ATOMIC_RELAXED);
        if (s->stats != &s->own_stats) {
            __atomic_add_fetch(&s->own_stats.accepted, spans, __ATOMIC_RELAXED);
        }
    }
    /* Let go of the creator's reference: the answer comes when the last holder settles,
     * maybe right now. */
    th_ack_settle(ack, 0);
out:
    th_free(plain);
    th_arena_destroy(arena);
}

/* END_STREAM from the client: the request is complete. */
static void call_end(struct call *k)
{
    if (k->state != CALL_READING) {
        return;
    }
    size_t len = 0;
    bool compressed = false;
    uint8_t *msg = th_grpc_reader_take(&k->rd, &len, &compressed);
    if (!msg) {
        answer_status(k, TH_GRPC_INTERNAL,
                      k->rd.hdr_len ? "the request ended inside its message"
                                    : "the request carried no message",
                      -1, false);
        return;
    }
    /* The reader no longer holds it; keep it counted until it is decoded. */
    export_message(k, msg, len, compressed);
    th_free(msg);
    if (k->conn && k->counted) {
        k->conn->srv->buffered -= k->counted;
    }
    k->counted = 0;
}

static void call_data(struct call *k, const uint8_t *p, size_t n)
{
    if (k->state != CALL_READING) {
        return; /* answered early: the rest of the upload is dropped */
    }
    th_otlp_grpc_server_t *s = k->conn->srv;
    char text[200];
    int ret = th_grpc_reader_feed(&k->rd, p, n);
    if (ret == 0 && k->rd.msg && !k->counted) {
        k->counted = k->rd.msg_len;
        s->buffered += k->counted;
        if (s->buffered > s->budget) {
            answer_status(k, TH_GRPC_UNAVAILABLE,
                          "the receiver is buffering too many messages; retry later",
                          TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        }
        return;
    }
    switch (ret) {
    case 0:
        return;
    case TH_E2BIG:
        snprintf(text, sizeof(text),
                 "the message of %zu bytes exceeds max_recv_msg_size (%llu bytes)", k->rd.msg_len,
                 (unsigned long long)s->max_msg);
        answer_status(k, TH_GRPC_RESOURCE_EXHAUSTED, text, -1, false);
        return;
    case TH_ENOMEM:
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory", TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        return;
    default:
        if (k->rd.messages > 0) {
            answer_status(k, TH_GRPC_UNIMPLEMENTED,
                          "more than one request message on the unary Export method", -1, false);
        } else {
            answer_status(k, TH_GRPC_INTERNAL, "invalid message prefix (compressed flag not 0/1)",
                          -1, false);
        }
        return;
    }
}

/* The authenticator's view of a call: the one header the call kept. */
static const char *call_auth_get(void *ctx, const char *name, size_t *len)
{
    struct call *k = ctx;
    th_otlp_grpc_server_t *s = k->conn->srv;
    if (!k->auth_value || !s->auth_header || strcasecmp(name, s->auth_header) != 0) {
        return NULL;
    }
    *len = k->auth_len;
    return k->auth_value;
}

/* Check the call's credentials; answer UNAUTHENTICATED (or UNAVAILABLE when memory is short)
 * when they do not pass. The kept header is wiped either way. */
static bool call_authenticated(struct call *k)
{
    th_otlp_grpc_server_t *s = k->conn->srv;
    struct th_auth_denial why;
    int ret = th_auth_check(&s->auth, call_auth_get, k, &why);
    if (k->auth_value) {
        explicit_bzero(k->auth_value, k->auth_len);
        th_free(k->auth_value);
        k->auth_value = NULL;
        k->auth_len = 0;
    }
    if (ret == 0) {
        return true;
    }
    if (ret == TH_ENOMEM) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "out of memory", TH_OTLP_GRPC_RETRY_DELAY_NS, false);
    } else {
        answer_status(k, TH_GRPC_UNAUTHENTICATED, why.message, -1, false);
    }
    if (warn_allowed(s)) {
        th_log_warn(s->owner, "answered %s to a call on %s: %s (at most one such line a second)",
                    ret == TH_ENOMEM ? "UNAVAILABLE" : "UNAUTHENTICATED", s->addr_text,
                    why.message);
    }
    return false;
}

/* The request's headers are complete: route, or answer at once. */
static void call_headers_done(struct call *k)
{
    char text[200];
    th_otlp_grpc_server_t *s = k->conn->srv;
    k->headers_in = true;
    if (!k->ct_grpc) {
        answer_http(k, "415",
                    k->ct_seen ? "unsupported content-type; gRPC needs application/grpc"
                               : "missing content-type; gRPC needs application/grpc");
        return;
    }
    if (th_auth_enabled(&s->auth) && !call_authenticated(k)) {
        return;
    }
    if (!k->post || !k->path_ok) {
        answer_status(k, TH_GRPC_UNIMPLEMENTED,
                      "unknown method: this receiver serves "
                      "opentelemetry.proto.collector.trace.v1.TraceService/Export only",
                      -1, false);
        return;
    }
    if (k->enc_unknown) {
        snprintf(text, sizeof(text),
                 "grpc-encoding is not supported; supported: " ACCEPT_ENCODINGS);
        answer_status(k, TH_GRPC_UNIMPLEMENTED, text, -1, true);
        return;
    }
    if (!s->accepting) {
        answer_status(k, TH_GRPC_UNAVAILABLE, "the receiver is shutting down",
                      TH_OTLP_GRPC_RETRY_DELAY_NS, false);
        return;
    }
    if (k->deadline_ns) {
        schedule(s, k->deadline_ns);
    }
}

static bool ieq(const uint8_t *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp((const char *)a, b, blen) == 0;
}

static void call_header(struct call *k, const uint8_t *name, size_t nlen, const uint8_t *value,
                        size_t vlen)
{
    th_otlp_grpc_server_t *s = k->conn->srv;
    if (s->auth_header && !k->auth_value && ieq(name, nlen, s->auth_header)) {
        /* Kept only until the headers are complete (call_authenticated wipes it). */
        k->auth_value = th_strndup((const char *)value, vlen);
        k->auth_len = k->auth_value ? vlen : 0;
    }
    if (ieq(name, nlen, ":method")) {
        k->post = vlen == 4 && !memcmp(value, "POST", 4);
    } else if (ieq(name, nlen, ":path")) {
        k->path_ok = vlen == strlen(TH_GRPC_TRACE_EXPORT_PATH) &&
                     !memcmp(value, TH_GRPC_TRACE_EXPORT_PATH, vlen);
    } else if (ieq(name, nlen, "content-type")) {
        /* application/grpc, application/grpc+proto, with or without parameters. */
        static const char base[] = "application/grpc";
        size_t bl = sizeof(base) - 1;
        k->ct_seen = true;
        k->ct_grpc = false;
        if (vlen >= bl && !strncasecmp((const char *)value, base, bl)) {
            const uint8_t *rest = value + bl;
            size_t rl = vlen - bl;
            const uint8_t *semi = memchr(rest, ';', rl);
            if (semi) {
                rl = (size_t)(semi - rest);
            }
            while (rl > 0 && (rest[rl - 1] == ' ' || rest[rl - 1] == '\t')) {
                rl--;
            }
            k->ct_grpc = rl == 0 || ieq(rest, rl, "+proto");
        }
    } else if (ieq(name, nlen, "grpc-encoding")) {
        if (vlen >= sizeof(k->encoding) ||
            !(ieq(value, vlen, "identity") || ieq(value, vlen, "gzip") ||
              ieq(value, vlen, "deflate") || ieq(value, vlen, "zstd"))) {
            k->enc_unknown = true;
        } else if (ieq(value, vlen, "identity")) {
            k->encoding[0] = '\0';
        } else {
            memcpy(k->encoding, value, vlen);
            k->encoding[vlen] = '\0';
        }
    } else if (ieq(name, nlen, "grpc-timeout")) {
        int64_t ns;
        if (th_grpc_timeout_parse((const char *)value, vlen, &ns) == 0) {
            uint64_t now = th_now_mono_ns();
            k->deadline_ns = (uint64_t)ns > UINT64_MAX - now ? UINT64_MAX : now + (uint64_t)ns;
            if (k->deadline_ns == 0) {
                k->deadline_ns = 1;
            }
        }
    }
}

static void call_free(struct call *k)
{
    struct gconn *c = k->conn;
    call_release_msg(k);
    if (k->pending) {
        k->pending->call = NULL; /* the ack still settles; nobody is answered */
        k->pending = NULL;
    }
    if (c) {
        if (k->prev) {
            k->prev->next = k->next;
        } else {
            c->calls = k->next;
        }
        if (k->next) {
            k->next->prev = k->prev;
        }
        c->n_calls--;
        if (c->n_calls == 0) {
            c->idle_since_ns = th_now_mono_ns();
        }
    }
    th_free(k->resp);
    if (k->auth_value) {
        explicit_bzero(k->auth_value, k->auth_len);
        th_free(k->auth_value);
    }
    th_free(k);
}

/* ---- nghttp2 callbacks ----------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    struct gconn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct call *k = th_calloc(1, sizeof(*k));
    if (!k) {
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    k->conn = c;
    k->stream_id = f->hd.stream_id;
    k->begun_ns = th_now_mono_ns();
    th_grpc_reader_init(&k->rd, c->srv->max_msg);
    k->next = c->calls;
    if (c->calls) {
        c->calls->prev = k;
    }
    c->calls = k;
    c->n_calls++;
    nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, k);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!k) {
        return 0;
    }
    k->header_bytes += nlen + vlen + 32;
    if (k->header_bytes > TH_OTLP_GRPC_MAX_HEADER_LIST) {
        /* nghttp2 resets the stream; the connection goes on. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        call_header(k, name, nlen, value, vlen);
    }
    return 0;
}

/*
 * The keepalive enforcement policy, as gRPC servers apply it: a client PING is a strike when
 * it comes sooner than min_time after the previous one (sooner than 2 h when no call is open
 * and permit_without_stream is false), unless we sent headers or data since; the third strike
 * past two ends the connection with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"), which gRPC
 * clients read as "ping less often". nghttp2 answers every PING itself.
 */
#define PING_MAX_STRIKES 2
#define PING_IDLE_MIN_NS ((uint64_t)2 * 3600 * 1000000000)

static void on_client_ping(struct gconn *c)
{
    uint64_t now = th_now_mono_ns();
    uint64_t prev = c->last_ping_ns;
    c->last_ping_ns = now;
    if (c->ping_reset) {
        c->ping_reset = false;
        c->ping_strikes = 0;
        return;
    }
    const th_otlp_grpc_server_t *s = c->srv;
    uint64_t min = c->n_calls == 0 && !s->ping_without_calls ? PING_IDLE_MIN_NS : s->ping_min_ns;
    if (prev != 0 && now - prev < min) {
        c->ping_strikes++;
    }
    if (c->ping_strikes > PING_MAX_STRIKES) {
        c->too_many_pings = true;
    }
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    struct gconn *c = user;
    if (f->hd.type == NGHTTP2_SETTINGS) {
        c->settings_seen = true;
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        on_client_ping(c);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    struct call *k = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!k) {
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        call_headers_done(k);
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        call_end(k);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *p,
                         size_t n, void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, sid);
    if (k) {
        call_data(k, p, n);
    }
    return 0;
}

/* An answer sent before the client finished its request is followed by RST_STREAM(NO_ERROR)
 * (PROTOCOL-HTTP2.md), so the client stops uploading what nobody reads. */
static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) {
        ((struct gconn *)user)->ping_reset = true;
    }
    if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id) == 0) {
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t sid, uint32_t err, void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, sid);
    if (k) {
        nghttp2_session_set_stream_user_data(h2, sid, NULL);
        call_free(k);
    }
    return 0;
}

static nghttp2_session_callbacks *make_callbacks(void)
{
    nghttp2_session_callbacks *cb = NULL;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

/* ---- Connections ----------------------------------------------------------------------- */

static void *h2_malloc(size_t size, void *ud)
{
    return th_malloc(size);
}

static void h2_free(void *p, void *ud)
{
    th_free(p);
}

static void *h2_calloc(size_t n, size_t size, void *ud)
{
    return th_calloc(n, size);
}

static void *h2_realloc(void *p, size_t size, void *ud)
{
    return th_realloc(p, size);
}

static nghttp2_mem h2_mem = {NULL, h2_malloc, h2_free, h2_calloc, h2_realloc};

static int conn_init(th_otlp_grpc_server_t *s, struct gconn *c, const struct transport *tx)
{
    c->srv = s;
    c->tx = tx;
    c->created_ns = c->last_read_ns = c->idle_since_ns = th_now_mono_ns();
    nghttp2_session_callbacks *cb = make_callbacks();
    nghttp2_option *opt = NULL;
    int ret = TH_ENOMEM;
    if (!cb || nghttp2_option_new(&opt) != 0) {
        goto out;
    }
    nghttp2_option_set_max_send_header_block_length(opt, 16384);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    if (nghttp2_session_server_new3(&c->h2, cb, c, opt, &h2_mem) != 0) {
        c->h2 = NULL;
        goto out;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TH_OTLP_GRPC_MAX_HEADER_LIST},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, TH_ARRAY_SIZE(iv)) != 0 ||
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        goto out;
    }
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    ret = 0;
out:
    if (ret != 0) {
        nghttp2_session_del(c->h2);
        c->h2 = NULL;
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return ret;
}

/* Free the session and the calls, and unlink; the transport is already down. */
static void conn_free(struct gconn *c)
{
    th_otlp_grpc_server_t *s = c->srv;
    while (c->calls) {
        struct call *k = c->calls;
        if (c->h2) {
            nghttp2_session_set_stream_user_data(c->h2, k->stream_id, NULL);
        }
        call_free(k);
    }
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    th__otlp_grpc_tls_destroy(c->tls);
    c->tls = NULL;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->n_conns--;
    th_free(c);
    maybe_finish(s);
}

/* Write what nghttp2 has queued, in chunks, until it has nothing or the transport is full. */
static void conn_flush(struct gconn *c)
{
    if (c->closed || !c->h2) {
        return;
    }
    th_otlp_grpc_server_t *s = c->srv;
    th_buf_t b = {0};
    while (c->out_pending + b.len < s->write_high) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0) {
            th_buf_free(&b);
            conn_close(c, false);
            return;
        }
        if (n == 0) {
            break;
        }
        if (th_buf_append(&b, data, (size_t)n) != 0) {
            th_buf_free(&b);
            conn_close(c, false);
            return;
        }
    }
    if (b.len > 0) {
        c->out_pending += b.len;
        if (c->tx->write(c, &b) != 0) {
            conn_close(c, false);
            return;
        }
    }
    th_buf_free(&b);
    bool full = c->out_pending >= s->write_high;
    if (full != c->paused && !c->closing) {
        c->paused = full;
        c->tx->pause(c, full);
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        conn_close(c, true);
    } else if (c->closing && c->out_pending == 0) {
        conn_close(c, false);
    }
}

/* Graceful: stop reading, close once the queued bytes are written. */
static void conn_close(struct gconn *c, bool graceful)
{
    if (c->closed) {
        return;
    }
    if (graceful && c->out_pending > 0) {
        if (!c->closing) {
            c->closing = true;
            c->tx->pause(c, true);
        }
        return;
    }
    c->closed = true;
    c->tx->close(c);
}

static int conn_feed(struct gconn *c, const uint8_t *p, size_t n)
{
    if (c->closed || c->closing) {
        return TH_EIO;
    }
    c->last_read_ns = th_now_mono_ns();
    c->ping_sent_ns = 0;
    c->defer_flush = true;
    ssize_t rv = nghttp2_session_mem_recv(c->h2, p, n);
    c->defer_flush = false;
    if (rv < 0) {
        /* nghttp2 queued a GOAWAY when it could; send it, then close. */
        TH_LOG_AT(TH_LOG_DEBUG, c->srv->owner, "reading an HTTP/2 connection", "closing: %s",
                  nghttp2_strerror((int)rv));
        conn_flush(c);
        conn_close(c, true);
        return TH_EIO;
    }
    if (c->too_many_pings && !c->closed && !c->closing) {
        static const char why[] = "too_many_pings";
        TH_LOG_AT(TH_LOG_DEBUG, c->srv->owner, "reading an HTTP/2 connection",
                  "closing: the client pings more often than keepalive::enforcement_policy "
                  "allows");
        c->goaway_sent = true;
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2),
                              NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof(why) - 1);
        conn_flush(c);
        conn_close(c, true);
        return TH_EIO;
    }
    conn_flush(c);
    return c->closed || c->closing ? TH_EIO : 0;
}

static void conn_goaway(struct gconn *c, uint32_t code)
{
    if (c->goaway_sent || c->closed || !c->h2) {
        return;
    }
    c->goaway_sent = true;
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          code, NULL, 0);
    conn_flush(c);
    if (!c->closed && c->n_calls == 0) {
        conn_close(c, true);
    }
}

/* Timers: deadlines of calls, and idle, age, keepalive and handshake limits. */
static uint64_t conn_tick(struct gconn *c, uint64_t now)
{
    th_otlp_grpc_server_t *s = c->srv;
    uint64_t next = UINT64_MAX;
    if (c->closed) {
        return next;
    }
    /* Answers are written after the walk: writing may close streams and free calls. */
    c->defer_flush = true;
    const char *stalled = NULL;
    uint64_t stalled_ns = 0;
    for (struct call *k = c->calls; k; k = k->next) {
        if (k->state == CALL_READING) {
            uint64_t limit = k->headers_in ? CALL_READ_NS : HANDSHAKE_NS;
            if (now - k->begun_ns >= limit) {
                stalled = k->headers_in ? "its request message" : "its request headers";
                stalled_ns = limit;
            } else {
                next = TH_MIN(next, k->begun_ns + limit);
            }
        }
        if (k->deadline_ns && k->state != CALL_ANSWERED) {
            if (now >= k->deadline_ns) {
                /* The data already taken still goes on; only the answer is given up. */
                answer_status(k, TH_GRPC_DEADLINE_EXCEEDED,
                              "the pipeline did not answer within the call's grpc-timeout", -1,
                              false);
            } else {
                next = TH_MIN(next, k->deadline_ns);
            }
        }
    }
    c->defer_flush = false;
    conn_flush(c);
    if (c->closed) {
        return UINT64_MAX;
    }
    if (stalled) {
        if (warn_allowed(s)) {
            th_log_warn(s->owner,
                        "closed a connection on %s: a call did not send %s within %llu s "
                        "(a slow or stalled client; at most one such line a second)",
                        s->addr_text, stalled, (unsigned long long)(stalled_ns / 1000000000));
        }
        conn_close(c, false);
        return UINT64_MAX;
    }
    if (!c->settings_seen) {
        if (now - c->created_ns >= HANDSHAKE_NS) {
            conn_close(c, false);
            return UINT64_MAX;
        }
        next = TH_MIN(next, c->created_ns + HANDSHAKE_NS);
    }
    if (c->n_calls == 0 && s->idle_ns) {
        if (now - c->idle_since_ns >= s->idle_ns) {
            conn_goaway(c, NGHTTP2_NO_ERROR);
        } else {
            next = TH_MIN(next, c->idle_since_ns + s->idle_ns);
        }
    }
    if (s->age_ns && !c->closed) {
        if (now - c->created_ns >= s->age_ns + s->age_grace_ns) {
            conn_close(c, false);
            return UINT64_MAX;
        }
        if (now - c->created_ns >= s->age_ns) {
            conn_goaway(c, NGHTTP2_NO_ERROR);
            next = TH_MIN(next, c->created_ns + s->age_ns + s->age_grace_ns);
        } else {
            next = TH_MIN(next, c->created_ns + s->age_ns);
        }
    }
    if (!c->closed && s->ka_time_ns) {
        if (c->ping_sent_ns) {
            if (now - c->ping_sent_ns >= s->ka_timeout_ns) {
                conn_close(c, false);
                return UINT64_MAX;
            }
            next = TH_MIN(next, c->ping_sent_ns + s->ka_timeout_ns);
        } else if (now - c->last_read_ns >= s->ka_time_ns) {
            c->ping_sent_ns = now;
            nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
            conn_flush(c);
            next = TH_MIN(next, now + s->ka_timeout_ns);
        } else {
            next = TH_MIN(next, c->last_read_ns + s->ka_time_ns);
        }
    }
    return next;
}

static void on_tick(uv_timer_t *t)
{
    th_otlp_grpc_server_t *s = t->data;
    uint64_t now = th_now_mono_ns();
    uint64_t next = now + TICK_NS;
    s->tick_due = 0;
    struct gconn *c = s->conns;
    while (c) {
        /* A connection may be freed during its tick (fuzz sessions close synchronously). */
        struct gconn *n = c->next;
        next = TH_MIN(next, conn_tick(c, now));
        c = n;
    }
    if (s->state == ST_RUNNING || s->conns) {
        schedule(s, next);
    }
}

static void schedule(th_otlp_grpc_server_t *s, uint64_t due_ns)
{
    if (!s->loop || s->state == ST_DONE || s->state == ST_NEW ||
        uv_is_closing((uv_handle_t *)&s->tick)) {
        return;
    }
    if (s->tick_due && s->tick_due <= due_ns) {
        return;
    }
    uint64_t now = th_now_mono_ns();
    uint64_t ms = due_ns > now ? (due_ns - now + 999999) / 1000000 : 0;
    s->tick_due = due_ns;
    uv_timer_start(&s->tick, on_tick, ms, 0);
}

/* ---- The socket transport -------------------------------------------------------------- */

struct wreq {
    uv_write_t req;
    struct gconn *c;
    uint8_t *data;
    size_t len;
};

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct gconn *c = w->c;
    c->out_pending -= w->len;
    th_free(w->data);
    th_free(w);
    if (c->closed) {
        return;
    }
    if (status < 0) {
        conn_close(c, false);
        return;
    }
    conn_flush(c);
}

static int sock_write(struct gconn *c, th_buf_t *b)
{
    struct wreq *w = th_calloc(1, sizeof(*w));
    if (!w) {
        return TH_ENOMEM;
    }
    w->c = c;
    w->data = b->ptr;
    w->len = b->len;
    b->ptr = NULL;
    b->len = b->cap = 0;
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written);
    if (r != 0) {
        c->out_pending -= w->len;
        th_free(w->data);
        th_free(w);
        return TH_EIO;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct gconn *c = h->data;
    /* One buffer serves every connection: a read is consumed before the next one starts. */
    buf->base = (char *)c->srv->rbuf;
    buf->len = c->srv->read_size;
}

static void tls_on_read(struct gconn *c, const uint8_t *p, size_t n);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct gconn *c = st->data;
    if (nread == 0 || c->closed) {
        return;
    }
    if (nread < 0) {
        conn_close(c, false); /* EOF or error: calls waiting for acks are detached */
        return;
    }
    if (c->tls) {
        tls_on_read(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
}

static void sock_pause(struct gconn *c, bool paused)
{
    if (paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void on_sock_closed(uv_handle_t *h)
{
    struct gconn *c = h->data;
    th_otlp_grpc_server_t *s = c->srv;
    s->handles--;
    conn_free(c);
}

static void sock_close(struct gconn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_sock_closed);
}

static const struct transport sock_transport = {
    .write = sock_write,
    .pause = sock_pause,
    .close = sock_close,
};

/* ---- The TLS transport (otlp_grpc_tls.c does the TLS) ------------------------------------ */

/* With TLS, out_pending counts the ciphertext handed to the socket and not yet written. The
 * plaintext queued before the handshake is not counted: a connection shut down before its
 * handshake ends (an idle or plaintext client) closes at once instead of waiting for it. */
static int tls_send(struct gconn *c, th_buf_t *out)
{
    c->out_pending += out->len;
    int ret = out->len > 0 ? sock_write(c, out) : 0;
    th_buf_free(out);
    return ret;
}

static int tls_write(struct gconn *c, th_buf_t *b)
{
    th_buf_t out = {0};
    size_t flushed = 0;
    c->out_pending -= b->len; /* conn_flush counted the plaintext */
    int ret = th__otlp_grpc_tls_send(c->tls, b->ptr, b->len, &out, &flushed);
    th_buf_free(b);
    int wret = tls_send(c, &out);
    return ret != 0 ? ret : wret;
}

/* Ciphertext in: the session's answer (handshake, alert) goes out, plaintext to nghttp2. A
 * failed handshake (a plaintext client, no or an untrusted client certificate, no ALPN h2)
 * closes the connection once its alert is written. */
static void tls_on_read(struct gconn *c, const uint8_t *p, size_t n)
{
    th_buf_t plain = {0}, out = {0};
    size_t flushed = 0;
    int ret = th__otlp_grpc_tls_recv(c->tls, p, n, &plain, &out, &flushed);
    if (tls_send(c, &out) != 0 && ret == 0) {
        ret = TH_EIO;
    }
    if (plain.len > 0) {
        conn_feed(c, plain.ptr, plain.len);
    }
    th_buf_free(&plain);
    if (ret != 0 && !c->closed) {
        TH_LOG_AT(TH_LOG_DEBUG, c->srv->owner, "reading a TLS connection", "closing: %s",
                  th__otlp_grpc_tls_why(c->tls));
        conn_close(c, true);
    }
}

static const struct transport tls_transport = {
    .write = tls_write,
    .pause = sock_pause,
    .close = sock_close,
};

static void on_refused_closed(uv_handle_t *h)
{
    th_free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    th_otlp_grpc_server_t *s = listener->data;
    if (status < 0) {
        if (warn_allowed(s)) {
            th_log_warn(s->owner, "accepting a connection on %s: %s", s->addr_text,
                        uv_strerror(status));
        }
        return;
    }
    struct gconn *c = s->n_conns < s->max_conns ? th_calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        /* Accept and close at once, so the listener keeps going. */
        uv_tcp_t *t = th_malloc(sizeof(*t));
        if (t) {
            uv_tcp_init(s->loop, t);
            t->data = NULL;
            uv_accept(listener, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, on_refused_closed);
        }
        uint64_t refused;
        if (th_conn_refusal_note(&s->refusals, &refused)) {
            th_log_warn(s->owner,
                        "refused %llu connection(s) on %s since the last such line: %zu open, "
                        "the limit is %zu (%s)%s",
                        (unsigned long long)refused, s->addr_text, s->n_conns, s->max_conns,
                        s->max_conns_set ? "max_connections" : "a quarter of the open files limit",
                        s->n_conns < s->max_conns ? "; out of memory" : "");
        }
        return;
    }
    /* Acks exist only once a connection has sent a call, so this is set before any settles. */
    th_ack_hub_set_loop_thread(s->hub);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    s->handles++;
    if (s->tls && th__otlp_grpc_tls_create(th_tls_server_ctx(s->tls), &c->tls) != 0) {
        c->tls = NULL; /* out of memory: the connection is closed below */
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || (s->tls && !c->tls) ||
        conn_init(s, c, s->tls ? &tls_transport : &sock_transport) != 0) {
        c->srv = s;
        c->closed = true;
        /* conn_init links only on success: link so conn_free can unlink. */
        c->next = s->conns;
        if (s->conns) {
            s->conns->prev = c;
        }
        s->conns = c;
        s->n_conns++;
        uv_close((uv_handle_t *)&c->tcp, on_sock_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    conn_flush(c); /* our SETTINGS */
    /* Housekeeping runs at least once a second while connections are open. */
    schedule(s, c->created_ns + TICK_NS);
}

/* ---- The session transport (no socket) ------------------------------------------------- */

static int mem_write(struct gconn *c, th_buf_t *b)
{
    if (c->on_output) {
        c->on_output(c->out_ctx, b->ptr, b->len);
    }
    c->out_pending -= b->len;
    th_buf_free(b);
    return 0;
}

static void mem_pause(struct gconn *c, bool paused)
{
}

static void mem_close(struct gconn *c)
{
    /* The session's owner frees it; only the protocol side stops here. */
}

static const struct transport mem_transport = {
    .write = mem_write,
    .pause = mem_pause,
    .close = mem_close,
};

int th__otlp_grpc_session_create(th_otlp_grpc_server_t *s,
                                 void (*on_output)(void *ctx, const uint8_t *p, size_t n),
                                 void *ctx, th__otlp_grpc_session_t **out)
{
    th__otlp_grpc_session_t *ss = th_calloc(1, sizeof(*ss));
    struct gconn *c = th_calloc(1, sizeof(*c));
    if (!ss || !c) {
        th_free(ss);
        th_free(c);
        return TH_ENOMEM;
    }
    c->on_output = on_output;
    c->out_ctx = ctx;
    if (conn_init(s, c, &mem_transport) != 0) {
        th_free(c);
        th_free(ss);
        return TH_ENOMEM;
    }
    if (s->state == ST_NEW) {
        s->accepting = true;
    }
    ss->c = c;
    conn_flush(c);
    *out = ss;
    return 0;
}

int th__otlp_grpc_session_feed(th__otlp_grpc_session_t *ss, const uint8_t *p, size_t n)
{
    return conn_feed(ss->c, p, n);
}

void th__otlp_grpc_session_destroy(th__otlp_grpc_session_t *ss)
{
    if (!ss) {
        return;
    }
    ss->c->closed = true;
    conn_free(ss->c);
    th_free(ss);
}

/* ---- Create, start, shutdown, destroy -------------------------------------------------- */

static void free_server(th_otlp_grpc_server_t *s)
{
    th_tls_server_destroy(s->tls);
    th_free(s->rbuf);
    th_arena_destroy(s->arena);
    th_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    th_otlp_grpc_server_t *s = h->data;
    s->handles--;
    if (h == (uv_handle_t *)&s->listener) {
        s->listener_open = false;
    }
    maybe_finish(s);
}

static void hub_release(th_otlp_grpc_server_t *s)
{
    th_ack_hub_release(s->hub); /* settles that already arrived complete now */
    s->hub = NULL;
}

/* Once every connection is gone, close the timers; when they are closed, we are done. */
static void maybe_finish(th_otlp_grpc_server_t *s)
{
    if (s->state != ST_CLOSING || s->listener_open || s->n_conns > 0) {
        return;
    }
    if (!uv_is_closing((uv_handle_t *)&s->tick)) {
        hub_release(s);
        uv_close((uv_handle_t *)&s->tick, on_handle_closed);
        uv_close((uv_handle_t *)&s->drain, on_handle_closed);
        return;
    }
    if (s->handles > 0) {
        return;
    }
    s->state = ST_DONE;
    s->loop = NULL;
    if (s->destroy_pending) {
        free_server(s);
    }
}

int th_otlp_grpc_server_create(const struct th_otlp_grpc_cfg *cfg, struct th_consumer *next,
                               struct th_component *owner, th_otlp_grpc_server_t **out)
{
    const char *why = NULL;
    if (th_otlp_grpc_cfg_check(cfg, &why) != 0) {
        th_log_error(owner, "%s", why);
        return TH_ECONFIG;
    }
    th_otlp_grpc_server_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        return TH_ENOMEM;
    }
    s->arena = th_arena_create(1024, 0);
    s->endpoint =
        s->arena ? th_arena_strndup(s->arena, cfg->endpoint, strlen(cfg->endpoint)) : NULL;
    if (!s->endpoint) {
        free_server(s);
        return TH_ENOMEM;
    }
    s->owner = owner;
    s->stats = owner ? &owner->stats : &s->own_stats;
    s->next = next;
    s->port = -1;
    s->max_conns =
        cfg->max_connections > 0 ? (size_t)cfg->max_connections : th_conn_limit_default();
    s->max_conns_set = cfg->max_connections > 0;
    if (cfg->tls_enabled) {
        char terr[1024];
        struct th_tls_server_opts to = {
            .path = "protocols::grpc::tls", .alpn = TH_TLS_ALPN_H2, .log_as = owner};
        int tret = th_tls_server_create(&cfg->tls, &to, &s->tls, terr, sizeof(terr));
        if (tret != 0) {
            th_log_error(owner, "%s", terr);
            free_server(s);
            return tret;
        }
    }
    th_otlp_limits_default(&s->lim);
    int64_t mib = cfg->max_recv_msg_size_mib > 0 ? cfg->max_recv_msg_size_mib : 4;
    s->max_msg = (uint64_t)mib << 20;
    s->max_streams = cfg->max_concurrent_streams > 0 ? (uint32_t)cfg->max_concurrent_streams
                                                     : TH_OTLP_GRPC_DEFAULT_STREAMS;
    /* Buffered messages across every call: room for 16 full-size messages at least. */
    s->budget = (size_t)TH_MAX(s->max_msg * 16, (uint64_t)64 << 20);
    int64_t rs = cfg->read_buffer_size;
    s->read_size = (size_t)(rs < 16384 ? 16384 : rs > (4 << 20) ? (4 << 20) : rs);
    s->write_high = cfg->write_buffer_size > 0 ? (size_t)cfg->write_buffer_size : 256 * 1024;
    const struct th_otlp_grpc_server_params *sp = &cfg->keepalive.server_parameters;
    s->idle_ns = (uint64_t)(sp->max_connection_idle > 0 ? sp->max_connection_idle
                                                        : (int64_t)300 * 1000000000);
    s->age_ns = (uint64_t)TH_MAX(sp->max_connection_age, 0);
    s->age_grace_ns = (uint64_t)(sp->max_connection_age_grace > 0 ? sp->max_connection_age_grace
                                                                  : (int64_t)30 * 1000000000);
    s->ka_time_ns = (uint64_t)(sp->time > 0 ? sp->time : (int64_t)2 * 3600 * 1000000000);
    s->ka_timeout_ns = (uint64_t)(sp->timeout > 0 ? sp->timeout : (int64_t)20 * 1000000000);
    const struct th_otlp_grpc_enforcement *ep = &cfg->keepalive.enforcement_policy;
    s->ping_min_ns =
        (uint64_t)(ep->min_time > 0 ? ep->min_time : (int64_t)5 * 60 * 1000000000); /* 5 min */
    s->ping_without_calls = ep->permit_without_stream;
    if (cfg->include_metadata) {
        th_log_warn(owner, "protocols::grpc::include_metadata is accepted but has no effect yet");
    }
    *out = s;
    return 0;
}

/* Resolve and bind with plain sockets first, so a taken port fails before any handle
 * exists. "localhost" binds 127.0.0.1 (IPv4 first, as Go); "" binds every interface. */
static int bind_socket(th_otlp_grpc_server_t *s, const char *host, int port, int *fd_out)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    bool any = host[0] == '\0';
    hints.ai_family = any ? AF_INET6 : AF_UNSPEC;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int gai = getaddrinfo(any ? NULL : host, portstr, &hints, &res);
    if (gai != 0 && any) {
        hints.ai_family = AF_INET;
        gai = getaddrinfo(NULL, portstr, &hints, &res);
    }
    if (gai != 0) {
        th_log_error(s->owner, "cannot listen on %s: cannot resolve \"%s\": %s", s->endpoint, host,
                     gai_strerror(gai));
        return TH_EINVAL;
    }
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai && !any; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    int err = 0;
    int fd = socket(pick->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (pick->ai_family == AF_INET6 && any) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        }
        if (bind(fd, pick->ai_addr, pick->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    } else {
        err = errno;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        *fd_out = fd;
        return 0;
    }
    if (err == EADDRINUSE) {
        th_log_error(s->owner,
                     "cannot listen on %s: address already in use (is another collector "
                     "running?)",
                     s->endpoint);
        return TH_EADDRINUSE;
    }
    th_log_error(s->owner, "cannot listen on %s: %s", s->endpoint, strerror(err));
    return err == EACCES ? TH_EPERM : err == EADDRNOTAVAIL ? TH_EINVAL : TH_EIO;
}

int th_otlp_grpc_server_start(th_otlp_grpc_server_t *s, uv_loop_t *loop)
{
    if (s->state != ST_NEW && s->state != ST_DONE) {
        return TH_EEXIST;
    }
    char host[256];
    int port;
    if (th_otlp_endpoint_split(s->endpoint, host, sizeof(host), &port) != 0) {
        th_log_error(s->owner, "cannot listen on %s: expected host:port", s->endpoint);
        return TH_EINVAL;
    }
    if (!s->rbuf) {
        s->rbuf = th_malloc(s->read_size);
        if (!s->rbuf) {
            return TH_ENOMEM;
        }
    }
    if (s->tls) {
        /* The files are read when the server starts: a missing or mismatched one fails it. */
        char terr[1024];
        int tret = th_tls_server_load(s->tls, terr, sizeof(terr));
        if (tret != 0) {
            th_log_error(s->owner, "%s", terr);
            return tret;
        }
    }
    int fd = -1;
    int ret = bind_socket(s, host, port, &fd);
    if (ret != 0) {
        return ret;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        s->port = ntohs(a->sin_port);
        snprintf(s->addr_text, sizeof(s->addr_text), "%s:%d", ip, s->port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        s->port = ntohs(a->sin6_port);
        snprintf(s->addr_text, sizeof(s->addr_text), "[%s]:%d", ip, s->port);
    }
    ret = th_ack_hub_create(loop, &s->hub);
    if (ret != 0) {
        close(fd);
        s->port = -1;
        return ret;
    }
    s->loop = loop;
    uv_timer_init(loop, &s->tick);
    uv_timer_init(loop, &s->drain);
    s->tick.data = s->drain.data = s;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    s->handles = 3;
    s->state = ST_RUNNING;
    s->accepting = true;
    s->tick_due = 0;
    int uvr = uv_tcp_open(&s->listener, fd);
    if (uvr == 0) {
        uvr = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    } else {
        close(fd);
    }
    if (uvr != 0) {
        th_log_error(s->owner, "cannot listen on %s: %s", s->addr_text, uv_strerror(uvr));
        th_otlp_grpc_server_shutdown(s);
        return TH_EIO;
    }
    th_log_info(s->owner,
                "OTLP/gRPC listening on %s (TraceService/Export, %s; at most %zu connections)",
                s->addr_text, s->tls ? "TLS" : "h2c", s->max_conns);
    return 0;
}

int th_otlp_grpc_bound_port(const th_otlp_grpc_server_t *s)
{
    return s && s->state == ST_RUNNING ? s->port : -1;
}

void th_otlp_grpc_server_set_auth(th_otlp_grpc_server_t *s, const struct th_auth *auth)
{
    if (s) {
        s->auth = *auth;
        s->auth_header = th_auth_enabled(auth) ? auth->ops->header(auth->ext) : NULL;
    }
}

/* Shutdown is over waiting: close every connection; their calls go unanswered. */
static void on_drain(uv_timer_t *t)
{
    th_otlp_grpc_server_t *s = t->data;
    size_t waiting = 0;
    for (struct gconn *c = s->conns; c; c = c->next) {
        waiting += c->n_calls;
    }
    if (waiting) {
        th_log_warn(s->owner,
                    "shutdown: %zu calls still open after %d ms are closed unanswered; their "
                    "senders will retry",
                    waiting, DRAIN_MAX_MS);
    }
    struct gconn *c = s->conns;
    while (c) {
        struct gconn *n = c->next;
        conn_close(c, false);
        c = n;
    }
}

int th_otlp_grpc_server_shutdown(th_otlp_grpc_server_t *s)
{
    if (!s) {
        return 0;
    }
    s->accepting = false;
    if (s->state != ST_RUNNING) {
        return 0;
    }
    s->state = ST_CLOSING;
    uv_close((uv_handle_t *)&s->listener, on_handle_closed);
    size_t n = s->n_conns;
    /* GOAWAY tells clients to open no new call here; calls in flight are still answered. */
    struct gconn *c = s->conns;
    while (c) {
        struct gconn *nx = c->next;
        conn_goaway(c, NGHTTP2_NO_ERROR);
        c = nx;
    }
    uv_timer_start(&s->drain, on_drain, DRAIN_MAX_MS, 0);
    th_log_info(s->owner, "OTLP/gRPC on %s stopped accepting (%zu connections closing)",
                s->addr_text, n);
    s->port = -1;
    maybe_finish(s);
    return 0;
}

bool th_otlp_grpc_server_closed(const th_otlp_grpc_server_t *s)
{
    return !s || s->state == ST_NEW || s->state == ST_DONE;
}

void th_otlp_grpc_server_destroy(th_otlp_grpc_server_t *s)
{
    if (!s) {
        return;
    }
    th_otlp_grpc_server_shutdown(s);
    s->owner = NULL;
    s->stats = &s->own_stats;
    s->next = NULL;
    if (th_otlp_grpc_server_closed(s)) {
        free_server(s);
    } else {
        s->destroy_pending = true;
    }
}

const struct th_component_stats *th_otlp_grpc_server_stats(const th_otlp_grpc_server_t *s)
{
    return s->stats;
}

const struct th_component_stats *th_otlp_grpc_server_transport_stats(const th_otlp_grpc_server_t *s)
{
    return &s->own_stats;
}
