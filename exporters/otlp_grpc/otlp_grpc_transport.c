/*
 * The otlp_grpc transport: one HTTP/2 connection (an nghttp2 client session over a uv TCP or
 * Unix socket, with TLS through memory BIOs when configured) on the exporter's loop, and one
 * stream per Export call, so the helper's num_consumers calls share it concurrently.
 *
 * Connection life, as a gRPC channel without a resolver: idle until a call needs it;
 * connecting (resolve, TCP, TLS + ALPN h2, SETTINGS); ready; and after a failed attempt a
 * backoff during which calls fail fast with the reason (or wait, with wait_for_ready). A
 * connection that drops fails its calls as retryable and the next call reconnects at once. A
 * GOAWAY stops new streams on the connection (they go to a new one) and the streams above
 * its last-stream-id fail as retryable. Keepalive PINGs, and a PING after a call's deadline
 * passes in silence, find a dead connection and reset it.
 *
 * Memory: a call, a connection and its socket are each freed only in the close callback of
 * their last uv handle, never inside an nghttp2 callback, so nothing on the stack is freed
 * under it. done callbacks run from loop callbacks (a zero timer for fast failures), never
 * from send().
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "th/base64.h"
#include "exporters/otlp_grpc/otlp_grpc.h"
#include "th/log.h"

#define NS_PER_MS ((int64_t)1000000)
#define NS_PER_S  ((int64_t)1000000000)

/* Reconnect backoff after a failed attempt (gRPC's connection backoff, a shorter cap). */
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS     30000
/* How long one connection attempt (TCP + TLS + SETTINGS) may take (gRPC's minimum). */
#define CONNECT_TIMEOUT_MS 20000
/* A liveness PING sent after a call's deadline passed in silence waits this long. */
#define LIVENESS_TIMEOUT_NS (10 * NS_PER_S)
/* Our receive windows: responses are small, but never stall on them. */
#define LOCAL_WINDOW (16 << 20)

struct conn;
struct call;

/* An intrusive list of calls; each call is on at most one. */
struct call_list {
    struct call *head, *tail;
    size_t n;
};

struct call {
    th_otlp_grpc_exporter_transport_t *t;
    struct call_list *list; /* waiting, failing, or its connection's streams */
    struct call *prev, *next;
    struct conn *conn; /* set once its stream is submitted */
    int32_t stream_id;
    uint8_t *frame; /* the length-prefixed request message */
    size_t frame_len, frame_off;
    th_export_done_cb done;
    void *arg;
    uv_timer_t timer; /* the per-attempt deadline; the call is freed in its close callback */
    uint64_t submitted_ns;
    struct th_export_result pre; /* the outcome of a call on the failing list */
    struct th_otlp_grpc_exporter_response resp;
};

/* The socket of one connection attempt, freed in its close callback. A failed attempt's
 * socket is closed and a new one made for the next address. */
struct sock {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t connect_req;
    struct conn *conn; /* NULL once detached: callbacks then do nothing */
};

enum conn_state {
    CONN_RESOLVING,
    CONN_CONNECTING,
    CONN_HANDSHAKE, /* TLS */
    CONN_READY,
};

struct conn {
    th_otlp_grpc_exporter_transport_t *t;
    struct conn *prev, *next; /* t->conns */
    enum conn_state state;
    bool closing;
    bool draining; /* GOAWAY received: no new streams */
    int32_t goaway_last_id;
    uv_getaddrinfo_t gai;
    bool resolving;
    struct addrinfo *addrs, *next_addr;
    char addr_text[64]; /* the address being tried, for messages */
    struct sock *sock;
    uv_timer_t timer; /* connect deadline, then keepalive / liveness */
    bool timer_open;
    nghttp2_session *session;
    th_otlp_grpc_exporter_tls_t *tls;
    th_buf_t out;   /* bytes gathered for the next write */
    size_t writing; /* bytes in uv_write requests not yet done */
    uint8_t *rbuf;
    uint8_t *plain; /* decrypted bytes (TLS) */
    struct call_list calls;
    uint64_t last_read_ns;
    bool got_bytes; /* some HTTP/2 bytes arrived: the first are checked for HTTP/1 or TLS */
    bool ping_outstanding;
    uint64_t ping_sent_ns;
    int64_t ping_timeout_ns;
};

struct wreq {
    uv_write_t req;
    th_buf_t buf;
};

struct th_otlp_grpc_exporter_transport {
    uv_loop_t *loop;
    struct th_component *comp;
    struct th_otlp_grpc_exporter_target target;
    struct th_otlp_grpc_exporter_tls_cfg tls_cfg; /* read by prepare */
    bool use_tls;
    char server_name[256];
    th_otlp_grpc_exporter_tls_ctx_t *tls_ctx;
    const char *encoding; /* "gzip", "zstd" or NULL */
    int64_t timeout_ns;
    bool keepalive;
    struct th_otlp_grpc_exporter_keepalive_cfg ka;
    bool wait_for_ready;
    size_t read_buffer_size;
    size_t write_buffer_size;
    nghttp2_nv *nv; /* the request headers, the same for every call */
    size_t n_nv;
    th_buf_t strings; /* what nv points into */
    char **owned;     /* strings nv points to, freed at destroy */
    size_t n_owned;
    struct th_auth_client auth; /* the authenticator's header, refreshed per call */
    size_t auth_nv;             /* its entry in nv (valid when auth is enabled) */
    char *auth_str;             /* that entry's value; nghttp2 copies it at each submit */
    struct conn *conn;          /* the connection new streams go to, or NULL */
    struct conn *conns;         /* every connection not yet freed */
    struct call_list waiting;
    struct call_list failing;
    uv_timer_t kick;
    uv_timer_t backoff_timer;
    bool in_backoff;
    bool failing_streak; /* the last attempt failed: log the recovery */
    int64_t backoff_ms;
    char last_error[200];
    bool started, stopped;
    int in_h2; /* inside nghttp2_session_mem_recv/mem_send: their callbacks must not reenter */
    struct th_otlp_grpc_exporter_transport_stats stats;
};

/* ---- small helpers ------------------------------------------------------------------- */

static void list_push(struct call_list *l, struct call *c)
{
    c->list = l;
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail) {
        l->tail->next = c;
    } else {
        l->head = c;
    }
    l->tail = c;
    l->n++;
}

static void list_remove(struct call *c)
{
    struct call_list *l = c->list;
    if (!l) {
        return;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        l->head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        l->tail = c->prev;
    }
    l->n--;
    c->list = NULL;
    c->prev = c->next = NULL;
}

static void result_set(struct th_export_result *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void result_set(struct th_export_result *r, int err, const char *fmt, ...)
{
    memset(r, 0, sizeof(*r));
    r->err = err;
    r->retry_after_ns = -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
}

static const char *peer(const th_otlp_grpc_exporter_transport_t *t)
{
    return t->target.is_unix ? t->target.path : t->target.authority;
}

static void on_kick(uv_timer_t *timer);
static void on_conn_timer(uv_timer_t *timer);

static void kick(th_otlp_grpc_exporter_transport_t *t)
{
    if (t->started && !t->stopped) {
        uv_timer_start(&t->kick, on_kick, 0, 0);
    }
}

static void conn_flush(struct conn *c);
static void conn_close(struct conn *c, int err, const char *msg);
static void conn_lost(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void transport_connect(th_otlp_grpc_exporter_transport_t *t);

/* ---- calls --------------------------------------------------------------------------- */

static void call_free_cb(uv_handle_t *h)
{
    struct call *call = h->data;
    th__otlp_grpc_exporter_response_free(&call->resp);
    th_free(call->frame);
    th_free(call);
}

/* Finish a call: off its list and stream, deadline stopped, done called, freed later. */
static void call_finish(struct call *call, const struct th_export_result *r)
{
    list_remove(call);
    if (call->conn && call->conn->session && call->stream_id > 0) {
        nghttp2_session_set_stream_user_data(call->conn->session, call->stream_id, NULL);
    }
    call->conn = NULL;
    uv_timer_stop(&call->timer);
    th_otlp_grpc_exporter_transport_t *t = call->t;
    if (t->stats.active_streams > 0 && call->stream_id > 0) {
        t->stats.active_streams--;
    }
    call->stream_id = 0;
    call->done(call->arg, r);
    uv_close((uv_handle_t *)&call->timer, call_free_cb);
}

static void fail_list(struct call_list *l, int err, const char *msg)
{
    struct th_export_result r;
    result_set(&r, err, "%s", msg);
    struct call *c;
    while ((c = l->head) != NULL) {
        call_finish(c, &r);
    }
}

static ssize_t on_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    /* Looked up by stream, not through src: a call that timed out is gone. */
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    size_t n = TH_MIN(length, call->frame_len - call->frame_off);
    memcpy(buf, call->frame + call->frame_off, n);
    call->frame_off += n;
    if (call->frame_off == call->frame_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

/* A rotated credential (a token file) goes out from this call on. The header's value is
 * copied by nghttp2 at submit (no NO_COPY flag), so the old string can go at once; when taking
 * the new one fails, the last one is sent. */
static void refresh_auth(th_otlp_grpc_exporter_transport_t *t)
{
    if (th_auth_client_refresh(&t->auth) != 1) {
        return;
    }
    const th_buf_t *v = &t->auth.value;
    char *s = th_strndup(v->len ? (const char *)v->ptr : "", v->len);
    if (!s) {
        return;
    }
    if (t->auth_str) {
        explicit_bzero(t->auth_str, strlen(t->auth_str));
        th_free(t->auth_str);
    }
    t->auth_str = s;
    t->nv[t->auth_nv].value = (uint8_t *)s;
    t->nv[t->auth_nv].valuelen = v->len;
}

/* Open the call's stream on a ready connection. */
static void call_submit(struct conn *c, struct call *call)
{
    th_otlp_grpc_exporter_transport_t *t = c->t;
    list_remove(call);
    refresh_auth(t);
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = on_data_read};
    int32_t id = nghttp2_submit_request(c->session, NULL, t->nv, t->n_nv, &prd, call);
    if (id < 0) {
        struct th_export_result r;
        result_set(&r, TH_ERETRY, "opening a stream to %s: %s", peer(t), nghttp2_strerror(id));
        call_finish(call, &r);
        return;
    }
    call->conn = c;
    call->stream_id = id;
    call->submitted_ns = th_now_mono_ns();
    list_push(&c->calls, call);
    t->stats.calls++;
    t->stats.active_streams++;
}

static void conn_send_ping(struct conn *c, int64_t timeout_ns)
{
    if (c->ping_outstanding || nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) != 0) {
        return;
    }
    c->ping_outstanding = true;
    c->ping_sent_ns = th_now_mono_ns();
    c->ping_timeout_ns = timeout_ns;
    c->t->stats.pings++;
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)(timeout_ns / NS_PER_MS) + 1, 0);
}

static void on_call_timeout(uv_timer_t *timer)
{
    struct call *call = timer->data;
    th_otlp_grpc_exporter_transport_t *t = call->t;
    struct th_export_result r;
    double secs = (double)t->timeout_ns / 1e9;
    struct conn *c = call->conn;
    if (c) {
        /* The server may still be working on it: cancel the stream so it can stop. */
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
        result_set(&r, TH_ERETRY, "DEADLINE_EXCEEDED: no answer from %s within %.3gs (timeout)",
                   peer(t), secs);
        bool silent = c->last_read_ns < call->submitted_ns;
        call_finish(call, &r);
        /* Nothing heard since the call was sent: find out whether the connection is dead
         * rather than waiting for the kernel to notice. */
        if (silent && !c->closing) {
            conn_send_ping(c,
                           t->keepalive && t->ka.timeout > 0 ? t->ka.timeout : LIVENESS_TIMEOUT_NS);
        }
        conn_flush(c);
        return;
    }
    result_set(&r, TH_ERETRY, "DEADLINE_EXCEEDED: no connection to %s within %.3gs%s%s", peer(t),
               secs, t->last_error[0] ? ": " : " (still connecting)", t->last_error);
    call_finish(call, &r);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static void copy_text(char *dst, size_t cap, const uint8_t *v, size_t len)
{
    size_t n = TH_MIN(len, cap - 1);
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call || frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    struct th_otlp_grpc_exporter_response *r = &call->resp;
#define IS(s) (namelen == sizeof(s) - 1 && memcmp(name, s, namelen) == 0)
    if (IS(":status")) {
        char buf[8];
        copy_text(buf, sizeof(buf), value, valuelen);
        r->http_status = atoi(buf);
    } else if (IS("content-type")) {
        copy_text(r->content_type, sizeof(r->content_type), value, valuelen);
        r->content_type_grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0;
    } else if (IS("grpc-status")) {
        char buf[12];
        copy_text(buf, sizeof(buf), value, valuelen);
        char *end = NULL;
        long s = strtol(buf, &end, 10);
        r->grpc_status =
            (end != buf && *end == '\0' && s >= 0 && s < 1000) ? (int)s : TH_GRPC_UNKNOWN;
    } else if (IS("grpc-message")) {
        copy_text(r->grpc_message, sizeof(r->grpc_message), value, valuelen);
        r->grpc_message_len = strlen(r->grpc_message);
    } else if (IS("grpc-status-details-bin")) {
        int64_t d = -1;
        if (th_grpc_status_details_retry((const char *)value, valuelen, &d) == 0) {
            r->retry_delay_ns = d;
        }
    } else if (IS("grpc-encoding")) {
        copy_text(r->encoding, sizeof(r->encoding), value, valuelen);
    }
#undef IS
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call || call->resp.data_err) {
        return 0;
    }
    int ret = th_grpc_reader_feed(&call->resp.reader, data, len);
    if (ret != 0) {
        call->resp.data_err = ret;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    struct conn *c = ud;
    struct call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call) {
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR) {
        call->resp.reset = true;
        call->resp.rst_code = error_code;
    }
    if (c->draining && stream_id > c->goaway_last_id) {
        call->resp.refused_by_goaway = true;
    }
    struct th_export_result r;
    th__otlp_grpc_exporter_result(&call->resp, peer(c->t), &r);
    call_finish(call, &r);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct conn *c = ud;
    th_otlp_grpc_exporter_transport_t *t = c->t;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        t->stats.goaways++;
        c->draining = true;
        c->goaway_last_id = frame->goaway.last_stream_id;
        th_log_debug(t->comp,
                     "%s sent GOAWAY (%s, last stream %" PRId32 "); new calls go to a "
                     "new connection",
                     peer(t), nghttp2_http2_strerror(frame->goaway.error_code),
                     frame->goaway.last_stream_id);
        if (t->conn == c) {
            t->conn = NULL;
        }
        /* Streams above last-stream-id were never processed: fail them now, retryably,
         * rather than waiting for the server to close the connection. */
        struct call *call = c->calls.head;
        while (call) {
            struct call *next = call->next;
            if (call->stream_id > c->goaway_last_id) {
                call->resp.refused_by_goaway = true;
                nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id,
                                          NGHTTP2_REFUSED_STREAM);
                struct th_export_result r;
                th__otlp_grpc_exporter_result(&call->resp, peer(t), &r);
                call_finish(call, &r);
            }
            call = next;
        }
        if (t->waiting.n > 0) {
            kick(t);
        }
    } else if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->ping_outstanding = false;
        uv_timer_stop(&c->timer);
        if (t->keepalive && t->ka.time > 0) {
            uv_timer_start(&c->timer, on_conn_timer, (uint64_t)(t->ka.time / NS_PER_MS) + 1, 0);
        }
    }
    return 0;
}

/* ---- the connection ------------------------------------------------------------------- */

static void sock_close_cb(uv_handle_t *h)
{
    th_free(h->data);
}

static void conn_maybe_free(struct conn *c)
{
    if (!c->closing || c->resolving || c->sock || c->timer_open) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    nghttp2_session_del(c->session);
    th__otlp_grpc_exporter_tls_free(c->tls);
    if (c->addrs) {
        uv_freeaddrinfo(c->addrs);
    }
    th_buf_free(&c->out);
    th_free(c->rbuf);
    th_free(c->plain);
    th_free(c);
}

static void conn_timer_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->timer_open = false;
    conn_maybe_free(c);
}

static void sock_detach(struct conn *c)
{
    struct sock *s = c->sock;
    if (!s) {
        return;
    }
    c->sock = NULL;
    s->conn = NULL;
    uv_close(&s->h.handle, sock_close_cb);
}

/* Close the connection: its calls finish with @p err; the memory goes in close callbacks. */
static void conn_close(struct conn *c, int err, const char *msg)
{
    if (c->closing) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    c->closing = true;
    if (t->conn == c) {
        t->conn = NULL;
    }
    fail_list(&c->calls, err, msg);
    sock_detach(c);
    if (c->resolving) {
        uv_cancel((uv_req_t *)&c->gai); /* its callback then sees UV_ECANCELED and frees */
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_timer_close_cb);
}

/* A connection that had been established is gone: its calls retry, the next call
 * reconnects at once. */
static void conn_lost(struct conn *c, const char *fmt, ...)
{
    if (c->closing) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->stats.disconnects++;
    if (c->calls.n > 0) {
        th_log_warn(t->comp, "connection to %s lost with %zu calls in flight: %s", peer(t),
                    c->calls.n, msg);
    } else {
        th_log_debug(t->comp, "connection to %s closed: %s", peer(t), msg);
    }
    conn_close(c, TH_ERETRY, msg);
    if (t->waiting.n > 0) {
        kick(t);
    }
}

static void on_backoff_done(uv_timer_t *timer)
{
    th_otlp_grpc_exporter_transport_t *t = timer->data;
    t->in_backoff = false;
    if (t->waiting.n > 0) {
        transport_connect(t);
    }
}

/* An attempt to connect failed: wait before the next, and fail the waiting calls (unless
 * they wait for ready), as a gRPC channel in TRANSIENT_FAILURE does. */
static void conn_failed(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_failed(struct conn *c, const char *fmt, ...)
{
    if (c->closing) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->last_error, sizeof(t->last_error), fmt, ap);
    va_end(ap);
    conn_close(c, TH_ERETRY, t->last_error);
    t->backoff_ms =
        t->backoff_ms ? TH_MIN(t->backoff_ms * 8 / 5, BACKOFF_MAX_MS) : BACKOFF_INITIAL_MS;
    /* +-20% jitter so many exporters do not reconnect in step */
    int64_t jitter = (int64_t)(th_now_mono_ns() % 401) - 200; /* per mille */
    int64_t delay = t->backoff_ms + t->backoff_ms * jitter / 1000;
    if (!t->failing_streak) {
        th_log_warn(t->comp, "cannot connect to %s: %s (retrying the connection in %.1fs)", peer(t),
                    t->last_error, (double)delay / 1000);
    }
    t->failing_streak = true;
    t->in_backoff = true;
    uv_timer_start(&t->backoff_timer, on_backoff_done, (uint64_t)delay, 0);
    if (!t->wait_for_ready) {
        fail_list(&t->waiting, TH_ERETRY, t->last_error);
    }
}

static ssize_t session_send_cb(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *ud)
{
    return NGHTTP2_ERR_CALLBACK_FAILURE; /* unused: nghttp2_session_mem_send */
}

static int conn_ready(struct conn *c)
{
    th_otlp_grpc_exporter_transport_t *t = c->t;
    nghttp2_session_callbacks *cbs = NULL;
    int rv = nghttp2_session_callbacks_new(&cbs);
    if (rv != 0) {
        goto out;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, session_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    rv = nghttp2_session_client_new(&c->session, cbs, c);
    if (rv != 0) {
        goto out;
    }
    /* No server push (gRPC never uses it); generous windows so responses never stall. */
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1 << 20},
    };
    rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, TH_ARRAY_SIZE(settings));
    if (rv == 0) {
        rv = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, LOCAL_WINDOW);
    }
out:
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        conn_failed(c, "starting HTTP/2 with %s: %s", peer(t), nghttp2_strerror(rv));
        return TH_ENOMEM;
    }
    c->state = CONN_READY;
    c->last_read_ns = th_now_mono_ns();
    t->stats.connected++;
    t->backoff_ms = 0;
    t->last_error[0] = '\0';
    if (t->failing_streak) {
        th_log_info(t->comp, "connected to %s again", peer(t));
    }
    t->failing_streak = false;
    uv_timer_stop(&c->timer);
    if (t->keepalive && t->ka.time > 0) {
        uv_timer_start(&c->timer, on_conn_timer, (uint64_t)(t->ka.time / NS_PER_MS) + 1, 0);
    }
    if (t->conn == c) {
        struct call *call;
        while ((call = t->waiting.head) != NULL) {
            call_submit(c, call);
        }
    }
    return 0;
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct sock *s = req->handle->data;
    struct conn *c = s->conn;
    size_t len = w->buf.len;
    th_buf_free(&w->buf);
    th_free(w);
    if (!c) {
        return;
    }
    c->writing -= len;
    if (status < 0) {
        if (c->state == CONN_READY) {
            conn_lost(c, "writing to %s: %s", peer(c->t), uv_strerror(status));
        } else {
            conn_failed(c, "writing to %s: %s", peer(c->t), uv_strerror(status));
        }
        return;
    }
    conn_flush(c);
}

/* Move what nghttp2 (and TLS) want to send into one uv_write, as much as the write buffer
 * allows; a finished session (GOAWAY done, no streams) closes the connection. */
static void conn_flush(struct conn *c)
{
    th_otlp_grpc_exporter_transport_t *t = c->t;
    if (c->closing || !c->sock || c->state < CONN_HANDSHAKE || t->in_h2) {
        return; /* inside an nghttp2 callback: the caller flushes when it returns */
    }
    if (c->state == CONN_READY) {
        while (nghttp2_session_want_write(c->session) &&
               c->out.len + c->writing < t->write_buffer_size) {
            const uint8_t *data = NULL;
            t->in_h2++;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            t->in_h2--;
            if (c->closing) {
                return;
            }
            if (n < 0) {
                conn_lost(c, "HTTP/2 to %s: %s", peer(t), nghttp2_strerror((int)n));
                return;
            }
            if (n == 0) {
                break;
            }
            int ret = c->tls ? th__otlp_grpc_exporter_tls_write(c->tls, data, (size_t)n)
                             : th_buf_append(&c->out, data, (size_t)n);
            if (ret == 0 && c->tls) {
                ret = th__otlp_grpc_exporter_tls_drain(c->tls, &c->out);
            }
            if (ret != 0) {
                conn_lost(c, "sending to %s: %s", peer(t), th_strerror(ret));
                return;
            }
        }
    }
    if (c->tls && th__otlp_grpc_exporter_tls_drain(c->tls, &c->out) != 0) {
        conn_lost(c, "sending to %s: out of memory", peer(t));
        return;
    }
    if (c->out.len > 0) {
        struct wreq *w = th_calloc(1, sizeof(*w));
        if (!w) {
            conn_lost(c, "sending to %s: out of memory", peer(t));
            return;
        }
        w->buf = c->out;
        memset(&c->out, 0, sizeof(c->out));
        uv_buf_t b = uv_buf_init((char *)w->buf.ptr, (unsigned)w->buf.len);
        c->writing += w->buf.len;
        int rv = uv_write(&w->req, &c->sock->h.stream, &b, 1, on_write);
        if (rv < 0) {
            c->writing -= w->buf.len;
            th_buf_free(&w->buf);
            th_free(w);
            conn_lost(c, "writing to %s: %s", peer(t), uv_strerror(rv));
            return;
        }
    }
    if (c->state == CONN_READY && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session) && c->writing == 0) {
        conn_lost(c, "the HTTP/2 session with %s ended (GOAWAY)", peer(t));
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sock *s = h->data;
    struct conn *c = s->conn;
    if (!c || !c->rbuf) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->rbuf, (unsigned)c->t->read_buffer_size);
}

/* Feed plaintext HTTP/2 bytes to the session. @return false when the connection is gone. */
static bool conn_recv(struct conn *c, const uint8_t *p, size_t n)
{
    /* A server that is not HTTP/2 gets a message saying what it is instead of "protocol
     * error": the usual mistakes are the OTLP/HTTP port, and plaintext to a TLS port. */
    if (!c->got_bytes) {
        c->got_bytes = true;
        if (n >= 7 && memcmp(p, "HTTP/1.", 7) == 0) {
            conn_failed(c,
                        "%s answered in HTTP/1, not HTTP/2: not a gRPC server (OTLP/HTTP "
                        "usually listens on 4318, OTLP/gRPC on 4317)",
                        peer(c->t));
            return false;
        }
        if (!c->tls && n >= 3 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 3) {
            conn_failed(c, "%s answered with TLS: remove tls::insecure to connect with TLS",
                        peer(c->t));
            return false;
        }
    }
    c->t->in_h2++;
    ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
    c->t->in_h2--;
    if (c->closing) {
        return false;
    }
    if (rv < 0) {
        conn_lost(c, "HTTP/2 protocol error from %s: %s", peer(c->t), nghttp2_strerror((int)rv));
        return false;
    }
    return true;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sock *s = stream->data;
    struct conn *c = s->conn;
    if (!c || nread == 0) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    if (nread < 0) {
        const char *why = nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread);
        if (c->state == CONN_READY && !c->got_bytes) {
            /* Dropped before a single frame: a connection failure, not a lost connection
             * (so it backs off); most often plaintext sent to a TLS port. */
            conn_failed(c, "connection to %s %s%s before any HTTP/2 frame%s", peer(t),
                        nread == UV_EOF ? "" : "failed: ", why,
                        c->tls ? "" : " (if it serves TLS, remove tls::insecure)");
        } else if (c->state == CONN_READY) {
            conn_lost(c, "connection to %s %s%s", peer(t), nread == UV_EOF ? "" : "failed: ", why);
        } else {
            conn_failed(c,
                        "%s %s during the TLS handshake%s%s (is it serving TLS? set "
                        "tls::insecure for plaintext)",
                        peer(t), nread == UV_EOF ? "closed the connection" : "failed",
                        nread == UV_EOF ? "" : ": ", nread == UV_EOF ? "" : why);
        }
        return;
    }
    c->last_read_ns = th_now_mono_ns();
    if (!c->tls) {
        if (conn_recv(c, (const uint8_t *)buf->base, (size_t)nread)) {
            conn_flush(c);
        }
        return;
    }
    if (th__otlp_grpc_exporter_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread) != 0) {
        conn_lost(c, "reading from %s: out of memory", peer(t));
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        char err[256];
        int r = th__otlp_grpc_exporter_tls_handshake(c->tls, err, sizeof(err));
        if (r < 0) {
            conn_failed(c, "%s: %s", peer(t), err);
            return;
        }
        if (r == 0) {
            conn_flush(c);
            return;
        }
        if (conn_ready(c) != 0) {
            return;
        }
    }
    for (;;) {
        int n = th__otlp_grpc_exporter_tls_read(c->tls, c->plain, t->read_buffer_size);
        if (n < 0) {
            conn_lost(c, "the TLS session with %s ended", peer(t));
            return;
        }
        if (n == 0 || !conn_recv(c, c->plain, (size_t)n)) {
            break;
        }
    }
    conn_flush(c);
}

static void try_next_addr(struct conn *c);

static void on_connect(uv_connect_t *req, int status)
{
    struct sock *s = req->handle->data;
    struct conn *c = s->conn;
    if (!c) {
        return;
    }
    th_otlp_grpc_exporter_transport_t *t = c->t;
    if (status < 0) {
        bool named = c->addr_text[0] && strcmp(c->addr_text, t->target.host) != 0;
        snprintf(t->last_error, sizeof(t->last_error), "connecting to %s%s%s: %s", peer(t),
                 named ? " at " : "", named ? c->addr_text : "", uv_strerror(status));
        sock_detach(c);
        try_next_addr(c);
        return;
    }
    if (!t->target.is_unix) {
        uv_tcp_nodelay(&s->h.tcp, 1);
    }
    int rv = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (rv < 0) {
        conn_failed(c, "reading from %s: %s", peer(t), uv_strerror(rv));
        return;
    }
    if (t->use_tls) {
        c->state = CONN_HANDSHAKE;
        c->tls = th__otlp_grpc_exporter_tls_new(t->tls_ctx, t->server_name);
        if (!c->tls) {
            conn_failed(c, "TLS with %s: out of memory", peer(t));
            return;
        }
        char err[256];
        if (th__otlp_grpc_exporter_tls_handshake(c->tls, err, sizeof(err)) < 0) {
            conn_failed(c, "%s: %s", peer(t), err);
            return;
        }
        conn_flush(c);
        return;
    }
    c->state = CONN_HANDSHAKE; /* so the flush below writes */
    if (conn_ready(c) == 0) {
        conn_flush(c);
    }
}

static struct sock *sock_new(struct conn *c)
{
    struct sock *s = th_calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    int rv = c->t->target.is_unix ? uv_pipe_init(c->t->loop, &s->h.pipe, 0)
                                  : uv_tcp_init(c->t->loop, &s->h.tcp);
    if (rv < 0) {
        th_free(s);
        return NULL;
    }
    s->h.handle.data = s;
    s->conn = c;
    c->sock = s;
    return s;
}

/* Connect to the next resolved address; when none is left the attempt failed. */
static void try_next_addr(struct conn *c)
{
    th_otlp_grpc_exporter_transport_t *t = c->t;
    while (c->next_addr) {
        struct addrinfo *ai = c->next_addr;
        c->next_addr = ai->ai_next;
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
            uv_ip_name(ai->ai_addr, c->addr_text, sizeof(c->addr_text));
        }
        struct sock *s = sock_new(c);
        if (!s) {
            conn_failed(c, "connecting to %s: out of memory", peer(t));
            return;
        }
        int rv = uv_tcp_connect(&s->connect_req, &s->h.tcp, ai->ai_addr, on_connect);
        if (rv == 0) {
            return;
        }
        snprintf(t->last_error, sizeof(t->last_error), "connecting to %s (%s): %s", peer(t),
                 c->addr_text, uv_strerror(rv));
        sock_detach(c);
    }
    char msg[sizeof(t->last_error)];
    snprintf(msg, sizeof(msg), "%s", t->last_error);
    conn_failed(c, "%s", msg);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct conn *c = req->data;
    c->resolving = false;
    if (c->closing) {
        if (res) {
            uv_freeaddrinfo(res);
        }
        conn_maybe_free(c);
        return;
    }
    if (status < 0) {
        conn_failed(c, "resolving %s: %s", c->t->target.host, uv_strerror(status));
        return;
    }
    c->addrs = res;
    c->next_addr = res;
    c->state = CONN_CONNECTING;
    snprintf(c->t->last_error, sizeof(c->t->last_error), "connecting to %s: no address",
             peer(c->t));
    try_next_addr(c);
}

static void on_conn_timer(uv_timer_t *timer)
{
    struct conn *c = timer->data;
    th_otlp_grpc_exporter_transport_t *t = c->t;
    uint64_t now = th_now_mono_ns();
    if (c->state != CONN_READY) {
        conn_failed(c, "connecting to %s: no HTTP/2 connection after %ds", peer(t),
                    CONNECT_TIMEOUT_MS / 1000);
        return;
    }
    if (c->ping_outstanding) {
        uint64_t waited = now - c->ping_sent_ns;
        if (waited >= (uint64_t)c->ping_timeout_ns) {
            conn_lost(c, "%s did not answer a PING within %.3gs: connection reset", peer(t),
                      (double)c->ping_timeout_ns / 1e9);
            return;
        }
        uv_timer_start(timer, on_conn_timer,
                       ((uint64_t)c->ping_timeout_ns - waited) / NS_PER_MS + 1, 0);
        return;
    }
    if (!t->keepalive || t->ka.time <= 0) {
        return;
    }
    uint64_t idle = now - c->last_read_ns;
    if (idle < (uint64_t)t->ka.time) {
        uv_timer_start(timer, on_conn_timer, ((uint64_t)t->ka.time - idle) / NS_PER_MS + 1, 0);
        return;
    }
    if (c->calls.n > 0 || t->ka.permit_without_stream) {
        conn_send_ping(c, t->ka.timeout > 0 ? t->ka.timeout : LIVENESS_TIMEOUT_NS);
        conn_flush(c);
        return;
    }
    uv_timer_start(timer, on_conn_timer, (uint64_t)(t->ka.time / NS_PER_MS) + 1, 0);
}

/* Start a new connection (t->conn); calls wait on t->waiting until it is ready. */
static void transport_connect(th_otlp_grpc_exporter_transport_t *t)
{
    struct conn *c = th_calloc(1, sizeof(*c));
    if (!c) {
        snprintf(t->last_error, sizeof(t->last_error), "connecting to %s: out of memory", peer(t));
        fail_list(&t->waiting, TH_ERETRY, t->last_error);
        return;
    }
    c->t = t;
    c->rbuf = th_malloc(t->read_buffer_size);
    c->plain = t->use_tls ? th_malloc(t->read_buffer_size) : NULL;
    uv_timer_init(t->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    c->next = t->conns;
    if (t->conns) {
        t->conns->prev = c;
    }
    t->conns = c;
    t->conn = c;
    t->stats.connects++;
    if (!c->rbuf || (t->use_tls && !c->plain)) {
        conn_failed(c, "connecting to %s: out of memory", peer(t));
        return;
    }
    uv_timer_start(&c->timer, on_conn_timer, CONNECT_TIMEOUT_MS, 0);
    if (t->target.is_unix) {
        c->state = CONN_CONNECTING;
        struct sock *s = sock_new(c);
        if (!s) {
            conn_failed(c, "connecting to %s: out of memory", peer(t));
            return;
        }
        uv_pipe_connect(&s->connect_req, &s->h.pipe, t->target.path, on_connect);
        return;
    }
    c->state = CONN_RESOLVING;
    c->gai.data = c;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->resolving = true;
    int rv = uv_getaddrinfo(t->loop, &c->gai, on_resolved, t->target.host, t->target.port, &hints);
    if (rv < 0) {
        c->resolving = false;
        conn_failed(c, "resolving %s: %s", t->target.host, uv_strerror(rv));
    }
}

/* The zero timer: complete fast failures, put waiting calls on a connection, flush. Runs
 * outside send() so done is never called from inside it. */
static void on_kick(uv_timer_t *timer)
{
    th_otlp_grpc_exporter_transport_t *t = timer->data;
    struct call *call;
    while ((call = t->failing.head) != NULL) {
        struct th_export_result r = call->pre;
        call_finish(call, &r);
    }
    if (t->stopped || t->waiting.n == 0) {
        goto flush;
    }
    if (t->conn && t->conn->state == CONN_READY && !t->conn->draining) {
        while ((call = t->waiting.head) != NULL) {
            call_submit(t->conn, call);
        }
    } else if (!t->conn && !t->in_backoff) {
        transport_connect(t);
    } else if (t->in_backoff && !t->wait_for_ready) {
        fail_list(&t->waiting, TH_ERETRY, t->last_error);
    }
flush:
    for (struct conn *c = t->conns; c; c = c->next) {
        conn_flush(c);
    }
}

/* ---- the transport ops ------------------------------------------------------------------ */

static int tr_start(void *self, uv_loop_t *loop)
{
    th_otlp_grpc_exporter_transport_t *t = self;
    t->loop = loop;
    uv_timer_init(loop, &t->kick);
    t->kick.data = t;
    uv_timer_init(loop, &t->backoff_timer);
    t->backoff_timer.data = t;
    t->started = true;
    return 0;
}

static int tr_send(void *self, const uint8_t *pb, size_t len, th_export_done_cb done, void *arg)
{
    th_otlp_grpc_exporter_transport_t *t = self;
    if (!t->started || t->stopped) {
        return TH_ESHUTDOWN;
    }
    struct call *call = th_calloc(1, sizeof(*call));
    if (!call) {
        return TH_ENOMEM;
    }
    int ret = th_grpc_frame(t->encoding, pb, len, &call->frame, &call->frame_len);
    if (ret != 0) {
        th_free(call);
        return ret;
    }
    call->t = t;
    call->done = done;
    call->arg = arg;
    th__otlp_grpc_exporter_response_init(&call->resp);
    uv_timer_init(t->loop, &call->timer);
    call->timer.data = call;
    if (t->timeout_ns > 0) {
        uv_timer_start(&call->timer, on_call_timeout, (uint64_t)(t->timeout_ns / NS_PER_MS), 0);
    }
    if (t->in_backoff && !t->wait_for_ready) {
        result_set(&call->pre, TH_ERETRY, "%s", t->last_error);
        list_push(&t->failing, call);
    } else {
        list_push(&t->waiting, call);
    }
    kick(t);
    return 0;
}

static void tr_stop(void *self)
{
    th_otlp_grpc_exporter_transport_t *t = self;
    if (!t->started || t->stopped) {
        t->stopped = true;
        return;
    }
    t->stopped = true;
    const char *msg = "the exporter is shutting down";
    fail_list(&t->failing, TH_ESHUTDOWN, msg);
    fail_list(&t->waiting, TH_ESHUTDOWN, msg);
    for (struct conn *c = t->conns; c; c = c->next) {
        if (!c->closing && c->session && c->sock) {
            /* Tell the server, best effort: the write may not make it before the close. */
            nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
            conn_flush(c);
        }
        conn_close(c, TH_ESHUTDOWN, msg);
    }
    uv_close((uv_handle_t *)&t->kick, NULL);
    uv_close((uv_handle_t *)&t->backoff_timer, NULL);
}

static void tr_destroy(void *self)
{
    th_otlp_grpc_exporter_transport_t *t = self;
    if (!t) {
        return;
    }
    th_assert(!t->started || (t->stopped && !t->conns));
    th__otlp_grpc_exporter_tls_ctx_destroy(t->tls_ctx);
    if (t->auth_str) {
        explicit_bzero(t->auth_str, strlen(t->auth_str));
        th_free(t->auth_str);
    }
    th_auth_client_free(&t->auth);
    for (size_t i = 0; i < t->n_owned; i++) {
        th_free(t->owned[i]);
    }
    th_free(t->owned);
    th_free(t->nv);
    th_free(t);
}

const struct th_export_transport_ops th__otlp_grpc_exporter_transport_ops = {
    .start = tr_start,
    .send = tr_send,
    .stop = tr_stop,
    .destroy = tr_destroy,
};

/* ---- construction ------------------------------------------------------------------------ */

static char *own(th_otlp_grpc_exporter_transport_t *t, char *s)
{
    if (!s) {
        return NULL;
    }
    t->owned[t->n_owned++] = s;
    return s;
}

/* Unpadded base64, for metadata whose name ends in -bin. */
static char *base64(const char *in)
{
    size_t n = strlen(in);
    char *out = th_malloc(th_base64_encoded_len(n, false) + 1);
    if (!out) {
        return NULL;
    }
    out[th_base64_encode((const uint8_t *)in, n, out, false)] = '\0';
    return out;
}

static void add_nv(th_otlp_grpc_exporter_transport_t *t, const char *name, const char *value)
{
    nghttp2_nv *nv = &t->nv[t->n_nv++];
    nv->name = (uint8_t *)name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *)value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
}

int th__otlp_grpc_exporter_transport_set_auth(th_otlp_grpc_exporter_transport_t *t,
                                              struct th_auth_client *auth)
{
    const char *name = auth->name;
    const th_buf_t *value = &auth->value;
    char *n = th_strdup(name);
    char *v = th_strndup(value->len ? (const char *)value->ptr : "", value->len);
    nghttp2_nv *nv = n && v ? th_realloc(t->nv, (t->n_nv + 1) * sizeof(*nv)) : NULL;
    if (nv) {
        t->nv = nv;
    }
    char **owned = nv ? th_realloc(t->owned, (t->n_owned + 1) * sizeof(*owned)) : NULL;
    if (!owned) {
        th_free(n);
        if (v) {
            explicit_bzero(v, value->len);
        }
        th_free(v);
        return TH_ENOMEM;
    }
    t->owned = owned;
    /* The authenticator's header wins over a configured one of the same name. */
    size_t keep = 0;
    for (size_t i = 0; i < t->n_nv; i++) {
        if (!(t->nv[i].namelen == strlen(n) &&
              !strncasecmp((const char *)t->nv[i].name, n, t->nv[i].namelen))) {
            t->nv[keep++] = t->nv[i];
        }
    }
    t->n_nv = keep;
    add_nv(t, own(t, n), v);
    t->nv[t->n_nv - 1].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME; /* the value is copied: it changes */
    t->auth_nv = t->n_nv - 1;
    t->auth_str = v;
    th_auth_client_free(&t->auth);
    t->auth = *auth;
    memset(auth, 0, sizeof(*auth));
    return 0;
}

/* The request headers: the same for every call, so built once (otlp.md §4.2). */
static int build_headers(th_otlp_grpc_exporter_transport_t *t,
                         const struct th_otlp_grpc_exporter_cfg *cfg)
{
    size_t cap = 12 + cfg->headers.n;
    t->nv = th_calloc(cap, sizeof(*t->nv));
    t->owned = th_calloc(4 + 2 * cfg->headers.n, sizeof(char *));
    if (!t->nv || !t->owned) {
        return TH_ENOMEM;
    }
    const char *authority =
        cfg->authority && *cfg->authority ? cfg->authority : t->target.authority;
    const char *ua = cfg->user_agent && *cfg->user_agent ? cfg->user_agent : NULL;
    for (size_t i = 0; i < cfg->headers.n; i++) {
        if (!strcasecmp(cfg->headers.keys[i], "user-agent") && !ua) {
            ua = cfg->headers.vals[i];
        }
    }
    char *auth = own(t, th_strdup(authority));
    char *uas = own(t, th_strdup(ua ? ua
                                    : "Tracehouse/" TH_VERSION
                                      " (OTLP/gRPC exporter; nghttp2/" NGHTTP2_VERSION ")"));
    char tbuf[32];
    size_t tl = t->timeout_ns > 0 ? th_grpc_timeout_format(t->timeout_ns, tbuf) : 0;
    char *timeout = tl ? own(t, th_strndup(tbuf, tl)) : NULL;
    if (!auth || !uas || (tl && !timeout)) {
        return TH_ENOMEM;
    }
    add_nv(t, ":method", "POST");
    add_nv(t, ":scheme", t->use_tls ? "https" : "http");
    add_nv(t, ":path", TH_GRPC_TRACE_EXPORT_PATH);
    add_nv(t, ":authority", auth);
    add_nv(t, "content-type", "application/grpc");
    add_nv(t, "te", "trailers");
    add_nv(t, "user-agent", uas);
    if (t->encoding) {
        add_nv(t, "grpc-encoding", t->encoding);
    }
    add_nv(t, "grpc-accept-encoding", "identity,gzip,deflate,zstd");
    if (timeout) {
        add_nv(t, "grpc-timeout", timeout);
    }
    for (size_t i = 0; i < cfg->headers.n; i++) {
        if (!strcasecmp(cfg->headers.keys[i], "user-agent")) {
            continue;
        }
        /* HTTP/2 header names are lowercase; gRPC metadata keys are case-insensitive. */
        char *name = own(t, th_strdup(cfg->headers.keys[i]));
        if (!name) {
            return TH_ENOMEM;
        }
        for (char *p = name; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        size_t nl = strlen(name);
        const char *v = cfg->headers.vals[i] ? cfg->headers.vals[i] : "";
        char *value =
            nl > 4 && !strcmp(name + nl - 4, "-bin") ? own(t, base64(v)) : own(t, th_strdup(v));
        if (!value) {
            return TH_ENOMEM;
        }
        add_nv(t, name, value);
    }
    return 0;
}

int th__otlp_grpc_exporter_transport_create(const struct th_otlp_grpc_exporter_cfg *cfg,
                                            struct th_component *comp,
                                            th_otlp_grpc_exporter_transport_t **out)
{
    const char *why = NULL;
    int ret = TH_ENOMEM;
    th_otlp_grpc_exporter_transport_t *t = th_calloc(1, sizeof(*t));
    if (!t) {
        goto fail;
    }
    t->comp = comp;
    if (th__otlp_grpc_exporter_parse_endpoint(cfg->endpoint, &t->target, &why) != 0) {
        th_log_error(comp, "%s", why);
        ret = TH_ECONFIG;
        goto fail;
    }
    t->tls_cfg = cfg->tls;
    bool has_ca = (cfg->tls.ca_file && *cfg->tls.ca_file) || (cfg->tls.ca_pem && *cfg->tls.ca_pem);
    /* configtls: plaintext only when insecure and no CA; https:// always means TLS. */
    t->use_tls = !cfg->tls.insecure || has_ca || t->target.force_tls;
    snprintf(t->server_name, sizeof(t->server_name), "%s",
             cfg->tls.server_name_override && *cfg->tls.server_name_override
                 ? cfg->tls.server_name_override
                 : (t->target.is_unix ? "localhost" : t->target.host));
    t->encoding = th__otlp_grpc_exporter_encoding(cfg);
    t->timeout_ns = cfg->timeout;
    t->keepalive = cfg->keepalive_enabled;
    t->ka = cfg->keepalive;
    t->wait_for_ready = cfg->wait_for_ready;
    t->read_buffer_size = cfg->read_buffer_size > 0 ? (size_t)cfg->read_buffer_size : 64 << 10;
    t->write_buffer_size = cfg->write_buffer_size > 0 ? (size_t)cfg->write_buffer_size : 512 << 10;
    ret = build_headers(t, cfg);
    if (ret != 0) {
        goto fail;
    }
    *out = t;
    return 0;
fail:
    tr_destroy(t);
    return ret;
}

int th__otlp_grpc_exporter_transport_prepare(th_otlp_grpc_exporter_transport_t *t, char *err,
                                             size_t errlen)
{
    if (!t->use_tls || t->tls_ctx) {
        return 0;
    }
    return th__otlp_grpc_exporter_tls_ctx_create(&t->tls_cfg, &t->tls_ctx, err, errlen);
}

void th__otlp_grpc_exporter_transport_stats(const th_otlp_grpc_exporter_transport_t *t,
                                            struct th_otlp_grpc_exporter_transport_stats *out)
{
    *out = t->stats;
}
