/*
 * The load generator's OTLP/gRPC transport: one HTTP/2 connection (h2c, prior knowledge) per
 * lg_conn through an nghttp2 client session, carrying up to `streams` Export calls at once,
 * each one length-prefixed message. A call ends with its trailers (grpc-status) or the
 * stream's close; a dropped connection fails its calls and reconnects.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/loadgen/loadgen.h"

#define EXPORT_PATH "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

struct lg_stream {
    uint8_t *buf; /* prefix + message */
    size_t len, off;
    uint64_t intended_ns;
    int http_status, grpc_status;
    struct lg_stream *prev, *next; /* the connection's open calls */
};

struct lg_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t retry;    /* reconnects after a pause, so a dead server is not hammered */
    unsigned backoff_ms; /* the next pause: 0 after a good connect, then 10 ms up to 1 s */
    int handles;         /* handles still open once closing: freed at 0 */
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    char authority[128];
    lg_done_cb done;
    void *arg;
    nghttp2_session *h2;
    bool connected, closing;
    unsigned streams, inflight;
    struct lg_stream *open; /* calls in flight, failed together when the connection drops */
    char rbuf[65536];
};

struct wreq {
    uv_write_t w;
    uint8_t data[];
};

static void conn_connect(struct lg_conn *c);

static void end_stream(struct lg_conn *c, struct lg_stream *s, bool transport_error)
{
    struct lg_answer a = {.status = transport_error ? 0 : s->http_status,
                          .grpc_status = transport_error ? -1 : s->grpc_status,
                          .intended_ns = s->intended_ns};
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->open = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    if (!transport_error && a.grpc_status < 0) {
        a.grpc_status = 2; /* no grpc-status: UNKNOWN, as gRPC clients take it */
    }
    free(s->buf);
    free(s);
    c->inflight--;
    c->done(c, &a, c->arg);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Write out whatever nghttp2 has queued. */
static void flush(struct lg_conn *c)
{
    if (!c->h2 || !c->connected) {
        return;
    }
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n <= 0) {
            return;
        }
        struct wreq *w = malloc(sizeof(*w) + (size_t)n);
        if (!w) {
            return;
        }
        memcpy(w->data, data, (size_t)n);
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
        if (uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            free(w);
            return;
        }
    }
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct lg_stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s) {
        return 0;
    }
    char v[16] = {0};
    memcpy(v, value, valuelen < sizeof(v) - 1 ? valuelen : sizeof(v) - 1);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        s->http_status = atoi(v);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        s->grpc_status = atoi(v);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t err, void *ud)
{
    struct lg_conn *c = ud;
    struct lg_stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (s) {
        nghttp2_session_set_stream_user_data(h2, id, NULL);
        end_stream(c, s, err != NGHTTP2_NO_ERROR && s->grpc_status < 0);
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)h2;
    (void)id;
    (void)ud;
    struct lg_stream *s = src->ptr;
    size_t n = s->len - s->off;
    if (n > len) {
        n = len;
    }
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    if (s->off == s->len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct lg_conn *c = h->data;
    buf->base = c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void conn_free(struct lg_conn *c)
{
    if (--c->handles == 0) {
        free(c);
    }
}

static void on_retry_closed(uv_handle_t *h)
{
    conn_free(h->data);
}

static void on_retry(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void on_closed(uv_handle_t *h)
{
    struct lg_conn *c = h->data;
    if (c->h2) {
        nghttp2_session_del(c->h2); /* calls no stream callbacks: fail them here */
        c->h2 = NULL;
    }
    c->connected = false;
    while (c->open) {
        end_stream(c, c->open, true);
    }
    if (c->closing) {
        conn_free(c);
        return;
    }
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 1000 ? 1000 : c->backoff_ms * 2) : 10;
    uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
}

static void drop_conn(struct lg_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct lg_conn *c = st->data;
    if (nread < 0) {
        drop_conn(c);
        return;
    }
    if (nread == 0 || !c->h2) {
        return;
    }
    if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)buf->base, (size_t)nread) < 0) {
        drop_conn(c);
        return;
    }
    flush(c);
}

static int make_session(struct lg_conn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        return -1;
    }
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rc = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) {
        return -1;
    }
    nghttp2_settings_entry s[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, s, 1);
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 1 << 28);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct lg_conn *c = req->data;
    if (status != 0 || make_session(c) != 0) {
        drop_conn(c);
        return;
    }
    c->connected = true;
    c->backoff_ms = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    flush(c);
    struct lg_answer a = {.status = -1, .grpc_status = -1};
    c->done(c, &a, c->arg);
}

static void conn_connect(struct lg_conn *c)
{
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&c->addr, on_connect) != 0) {
        drop_conn(c);
    }
}

static struct lg_conn *grpc_open(uv_loop_t *loop, const struct sockaddr *addr,
                                 const char *authority, bool json, lg_done_cb done, void *arg)
{
    (void)json;
    struct lg_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->loop = loop;
    memcpy(&c->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    snprintf(c->authority, sizeof(c->authority), "%s", authority);
    c->done = done;
    c->arg = arg;
    c->streams = 8;
    c->handles = 2;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    conn_connect(c);
    return c;
}

void lg_grpc_set_streams(struct lg_conn *c, unsigned n)
{
    c->streams = n;
}

static unsigned grpc_capacity(struct lg_conn *c)
{
    return c->connected ? c->streams : 0;
}

static unsigned grpc_inflight(struct lg_conn *c)
{
    return c->inflight;
}

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

static int grpc_send(struct lg_conn *c, const uint8_t *body, size_t len, uint64_t intended_ns)
{
    if (!c->connected || !c->h2) {
        return -1;
    }
    struct lg_stream *s = calloc(1, sizeof(*s));
    if (!s || !(s->buf = malloc(len + 5))) {
        free(s);
        return -1;
    }
    s->buf[0] = 0;
    s->buf[1] = (uint8_t)(len >> 24);
    s->buf[2] = (uint8_t)(len >> 16);
    s->buf[3] = (uint8_t)(len >> 8);
    s->buf[4] = (uint8_t)len;
    memcpy(s->buf + 5, body, len);
    s->len = len + 5;
    s->intended_ns = intended_ns;
    s->grpc_status = -1;
    nghttp2_nv nv[] = {
        HDR(":method", "POST"),
        HDR(":scheme", "http"),
        HDR(":path", EXPORT_PATH),
        HDR(":authority", c->authority),
        HDR("content-type", "application/grpc"),
        HDR("te", "trailers"),
        HDR("user-agent", "th_loadgen"),
    };
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->h2, NULL, nv, sizeof(nv) / sizeof(nv[0]), &dp, s);
    if (id < 0) {
        free(s->buf);
        free(s);
        return -1;
    }
    c->inflight++;
    s->next = c->open;
    if (c->open) {
        c->open->prev = s;
    }
    c->open = s;
    flush(c);
    return 0;
}

static void grpc_close(struct lg_conn *c)
{
    c->closing = true;
    uv_close((uv_handle_t *)&c->retry, on_retry_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

const struct lg_transport lg_grpc_transport = {
    .name = "grpc",
    .open = grpc_open,
    .capacity = grpc_capacity,
    .inflight = grpc_inflight,
    .send = grpc_send,
    .close = grpc_close,
};
