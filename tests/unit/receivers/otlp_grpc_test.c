/*
 * The otlp receiver's gRPC protocol over real loopback TCP: the component runs on a libuv
 * loop in a second thread with a capture consumer, and each test drives it with an nghttp2
 * *client* session written here (blocking socket, h2c with prior knowledge). Every status
 * path is checked on the wire: OK with the spans arriving intact, gzip/zstd/deflate,
 * UNIMPLEMENTED (path, encoding), 415, RESOURCE_EXHAUSTED (announced and decompressed),
 * INVALID_ARGUMENT, INTERNAL (compressed flag without encoding), UNAVAILABLE + RetryInfo from
 * the pipeline, DEADLINE_EXCEEDED, many concurrent streams on one connection, a message split
 * across many DATA frames, garbage prefaces, and shutdown with GOAWAY while a call waits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "th/grpc.h"
#include "receivers/otlp/otlp.h"
#include "receivers/otlp/otlp_grpc.h"

/* ---- The capture consumer ------------------------------------------------------------- */

struct capture {
    struct th_consumer consumer;
    pthread_mutex_t mu;
    int ret;
    bool hold; /* keep batches unsettled until the test releases them */
    size_t calls;
    size_t spans;
    th_batch_t *kept[512];
    size_t n_kept;
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    pthread_mutex_lock(&c->mu);
    int ret = c->ret;
    c->calls++;
    c->spans += b->span_count;
    if (ret == 0 && c->n_kept < TH_ARRAY_SIZE(c->kept)) {
        if (!c->hold) {
            th_batch_settle_acks(b, 0);
        }
        c->kept[c->n_kept++] = b;
    } else {
        th_batch_release(b);
    }
    pthread_mutex_unlock(&c->mu);
    return ret;
}

/* Release every kept batch (settling held acks with @p result). */
static void capture_release(struct capture *c, int result)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_kept; i++) {
        if (result) {
            th_batch_fail(c->kept[i], result);
        }
        th_batch_release(c->kept[i]);
    }
    c->n_kept = 0;
    pthread_mutex_unlock(&c->mu);
}

/* Find a kept span by name. @return the span or NULL. */
static const Opentelemetry__Proto__Trace__V1__Span *capture_find(struct capture *c,
                                                                 const char *name)
{
    const Opentelemetry__Proto__Trace__V1__Span *found = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_kept && !found; i++) {
        const th_otlp_request_t *req = c->kept[i]->req;
        for (size_t r = 0; r < req->n_resource_spans && !found; r++) {
            for (size_t s = 0; s < req->resource_spans[r]->n_scope_spans && !found; s++) {
                const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss =
                    req->resource_spans[r]->scope_spans[s];
                for (size_t k = 0; k < ss->n_spans; k++) {
                    if (!strcmp(ss->spans[k]->name, name)) {
                        found = ss->spans[k];
                        break;
                    }
                }
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* ---- The server fixture --------------------------------------------------------------- */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    uv_async_t shut;
    pthread_t thread;
    struct th_host host;
    struct th_otlp_cfg cfg;
    struct capture cap;
    struct th_component *c;
    int port;
};

static struct th_component *no_ext(struct th_host *h, const char *id)
{
    return NULL;
}

static void no_fatal(struct th_host *h, struct th_component *c, int err)
{
    abort();
}

static void *loop_main(void *arg)
{
    struct server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void on_shut(uv_async_t *a)
{
    struct server *s = a->data;
    assert_int_equal(s->c->ops->shutdown(s->c), 0);
}

static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;
    assert_int_equal(s->c->ops->shutdown(s->c), 0);
    assert_int_equal(s->c->ops->shutdown(s->c), 0); /* idempotent */
    s->c->shut_down = true;
    th_component_destroy(s->c);
    s->c = NULL;
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&s->shut, NULL);
}

typedef void (*tweak_fn)(struct th_otlp_grpc_cfg *g);

static void server_start(struct server *s, tweak_fn tweak)
{
    memset(s, 0, sizeof(*s));
    s->cfg.protocols.grpc_enabled = true;
    th_otlp_grpc_cfg_default(&s->cfg.protocols.grpc);
    s->cfg.protocols.grpc.endpoint = "127.0.0.1:0";
    if (tweak) {
        tweak(&s->cfg.protocols.grpc);
    }
    memset(&s->cap, 0, sizeof(s->cap));
    s->cap.consumer.consume = capture_consume;
    pthread_mutex_init(&s->cap.mu, NULL);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop, on_stop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->shut, on_shut), 0);
    s->stop.data = s->shut.data = s;
    s->host = (struct th_host){.loop = &s->loop, .get_extension = no_ext, .report_fatal = no_fatal};
    assert_int_equal(
        th_component_create(&th_receiver_otlp_ops, "otlp", &s->cfg, &s->cap.consumer, &s->c), 0);
    s->c->host = &s->host;
    assert_int_equal(s->c->ops->start(s->c, &s->host), 0);
    s->c->started = true;
    s->port = th_otlp_receiver_grpc_port(s->c);
    assert_true(s->port > 0);
    assert_int_equal(th_otlp_receiver_http_port(s->c), -1);
    assert_int_equal(pthread_create(&s->thread, NULL, loop_main, s), 0);
}

static void server_stop(struct server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_null(s->c);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    capture_release(&s->cap, 0);
    pthread_mutex_destroy(&s->cap.mu);
}

/* ---- An nghttp2 client ----------------------------------------------------------------- */

struct call {
    int32_t id;
    const uint8_t *body; /* what the request DATA carries (already framed) */
    size_t body_len, body_off;
    size_t chunk; /* most bytes per DATA frame (0: as nghttp2 likes) */
    int http_status;
    int grpc_status; /* -1 until seen */
    char grpc_message[512];
    char details[512];
    char accept_encoding[128];
    uint8_t data[4096];
    size_t data_len;
    bool closed;
    uint32_t rst; /* the stream's close error code */
};

struct client {
    int fd;
    nghttp2_session *h2;
    bool goaway;
    int32_t goaway_last;
    bool eof;
};

static ssize_t cl_read_body(nghttp2_session *h2, int32_t sid, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct call *k = src->ptr;
    size_t n = k->body_len - k->body_off;
    n = TH_MIN(n, len);
    if (k->chunk) {
        n = TH_MIN(n, k->chunk);
    }
    memcpy(buf, k->body + k->body_off, n);
    k->body_off += n;
    if (k->body_off == k->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static int cl_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
                        size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!k) {
        return 0;
    }
    char v[512];
    snprintf(v, sizeof(v), "%.*s", (int)vlen, (const char *)value);
    if (nlen == 7 && !memcmp(name, ":status", 7)) {
        k->http_status = atoi(v);
    } else if (nlen == 11 && !memcmp(name, "grpc-status", 11)) {
        k->grpc_status = atoi(v);
    } else if (nlen == 12 && !memcmp(name, "grpc-message", 12)) {
        snprintf(k->grpc_message, sizeof(k->grpc_message), "%s", v);
    } else if (nlen == 23 && !memcmp(name, "grpc-status-details-bin", 23)) {
        snprintf(k->details, sizeof(k->details), "%s", v);
    } else if (nlen == 20 && !memcmp(name, "grpc-accept-encoding", 20)) {
        snprintf(k->accept_encoding, sizeof(k->accept_encoding), "%.100s", v);
    }
    return 0;
}

static int cl_on_data(nghttp2_session *h2, uint8_t flags, int32_t sid, const uint8_t *p, size_t n,
                      void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, sid);
    if (k && k->data_len + n <= sizeof(k->data)) {
        memcpy(k->data + k->data_len, p, n);
        k->data_len += n;
    }
    return 0;
}

static int cl_on_close(nghttp2_session *h2, int32_t sid, uint32_t err, void *user)
{
    struct call *k = nghttp2_session_get_stream_user_data(h2, sid);
    if (k) {
        k->closed = true;
        k->rst = err;
    }
    return 0;
}

static int cl_on_frame(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
    struct client *cl = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        cl->goaway = true;
        cl->goaway_last = f->goaway.last_stream_id;
    }
    return 0;
}

static int client_connect(struct client *cl, int port)
{
    memset(cl, 0, sizeof(*cl));
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cl->fd >= 0);
    int one = 1;
    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(cl->fd);
        return -1;
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, cl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_on_frame);
    assert_int_equal(nghttp2_session_client_new(&cl->h2, cb, cl), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(cl->h2, NGHTTP2_FLAG_NONE, iv, 1);
    return 0;
}

static void client_close(struct client *cl)
{
    nghttp2_session_del(cl->h2);
    close(cl->fd);
}

static bool client_send(struct client *cl)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(cl->h2, &data);
        if (n <= 0) {
            return n == 0;
        }
        while (n > 0) {
            ssize_t w = send(cl->fd, data, (size_t)n, MSG_NOSIGNAL);
            if (w <= 0) {
                return false;
            }
            data += w;
            n -= w;
        }
    }
}

/* Pump until every call is closed, the connection ends, or @p ms pass. */
static void client_run(struct client *cl, struct call **calls, size_t n, int ms)
{
    uint64_t end = th_now_mono_ns() + (uint64_t)ms * 1000000;
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n; i++) {
            all = all && calls[i]->closed;
        }
        if (all || cl->eof || th_now_mono_ns() > end) {
            return;
        }
        if (!client_send(cl)) {
            cl->eof = true;
            return;
        }
        struct pollfd p = {.fd = cl->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        uint8_t buf[65536];
        ssize_t r = recv(cl->fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            cl->eof = true;
            return;
        }
        assert_true(nghttp2_session_mem_recv(cl->h2, buf, (size_t)r) == r);
    }
}

/* Submit a call. @p extra: more headers as name/value pairs, NULL-terminated. */
static void call_submit(struct client *cl, struct call *k, const char *path, const char *ctype,
                        const char *const *extra)
{
    k->grpc_status = -1;
    nghttp2_nv nv[16];
    size_t n = 0;
#define ADD(name, value)                                                                           \
    nv[n++] = (nghttp2_nv){(uint8_t *)(name), (uint8_t *)(value), strlen(name), strlen(value),     \
                           NGHTTP2_NV_FLAG_NONE}
    ADD(":method", "POST");
    ADD(":scheme", "http");
    ADD(":authority", "localhost");
    ADD(":path", path);
    ADD("te", "trailers");
    if (ctype) {
        ADD("content-type", ctype);
    }
    for (size_t i = 0; extra && extra[i]; i += 2) {
        ADD(extra[i], extra[i + 1]);
    }
#undef ADD
    nghttp2_data_provider dp = {.source.ptr = k, .read_callback = cl_read_body};
    k->id = nghttp2_submit_request(cl->h2, NULL, nv, n, &dp, k);
    assert_true(k->id > 0);
}

/* One call on its own connection; the answer is in @p k. */
static void one_call(int port, struct call *k, const char *path, const char *ctype,
                     const char *const *extra)
{
    struct client cl;
    assert_int_equal(client_connect(&cl, port), 0);
    call_submit(&cl, k, path, ctype, extra);
    struct call *ks[] = {k};
    client_run(&cl, ks, 1, 10000);
    assert_true(k->closed);
    client_close(&cl);
}

/* ---- Payloads -------------------------------------------------------------------------- */

/* An ExportTraceServiceRequest with @p n spans named prefix-i; ids derived from @p seed. */
static uint8_t *make_request(size_t n, const char *prefix, unsigned seed, size_t *len)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    Opentelemetry__Proto__Trace__V1__Span *spans = calloc(n + 1, sizeof(*spans));
    Opentelemetry__Proto__Trace__V1__Span **ptrs = calloc(n + 1, sizeof(*ptrs));
    char(*names)[48] = calloc(n + 1, 48);
    uint8_t(*ids)[24] = calloc(n + 1, 24);
    for (size_t i = 0; i < n; i++) {
        opentelemetry__proto__trace__v1__span__init(&spans[i]);
        for (int j = 0; j < 24; j++) {
            ids[i][j] = (uint8_t)(seed * 7 + i * 31 + (size_t)j + 1);
        }
        spans[i].trace_id = (ProtobufCBinaryData){16, ids[i]};
        spans[i].span_id = (ProtobufCBinaryData){8, ids[i] + 16};
        snprintf(names[i], 48, "%s-%zu", prefix, i);
        spans[i].name = names[i];
        spans[i].kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        spans[i].start_time_unix_nano = 1700000000000000000ull + i;
        spans[i].end_time_unix_nano = 1700000000000000100ull + i;
        ptrs[i] = &spans[i];
    }
    ss.n_spans = n;
    ss.spans = ptrs;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    *len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    uint8_t *out = malloc(*len + 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out);
    free(spans);
    free(ptrs);
    free(names);
    free(ids);
    return out;
}

static uint8_t *framed(const char *enc, const uint8_t *msg, size_t len, size_t *flen)
{
    uint8_t *f = NULL;
    assert_int_equal(th_grpc_frame(enc, msg, len, &f, flen), 0);
    return f;
}

static void expect_status(const struct call *k, int code)
{
    if (k->grpc_status != code) {
        fail_msg("grpc-status %d (%s), expected %d; http %d", k->grpc_status, k->grpc_message, code,
                 k->http_status);
    }
}

/* ---- Tests ----------------------------------------------------------------------------- */

static void test_ok_spans_intact(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len, flen;
    uint8_t *msg = make_request(3, "ok", 1, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    assert_int_equal(k.http_status, 200);
    expect_status(&k, 0);
    assert_int_equal(k.rst, NGHTTP2_NO_ERROR);
    /* The empty ExportTraceServiceResponse, length-prefixed. */
    assert_int_equal(k.data_len, 5);
    assert_memory_equal(k.data, "\0\0\0\0\0", 5);
    assert_string_equal(k.accept_encoding, "identity,gzip,deflate,zstd");
    const Opentelemetry__Proto__Trace__V1__Span *sp = capture_find(&s.cap, "ok-2");
    assert_non_null(sp);
    assert_int_equal(sp->trace_id.len, 16);
    assert_int_equal(sp->trace_id.data[0], (uint8_t)(7 + 2 * 31 + 1));
    assert_int_equal(sp->span_id.data[0], (uint8_t)(7 + 2 * 31 + 17));
    assert_int_equal(sp->start_time_unix_nano, 1700000000000000002ull);
    assert_int_equal(sp->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
    assert_int_equal(s.c->stats.accepted, 3);
    /* application/grpc+proto works too, and a zero-span request is OK without the pipeline. */
    uint8_t *f0 = framed(NULL, (const uint8_t *)"", 0, &flen);
    struct call k0 = {.body = f0, .body_len = flen};
    one_call(s.port, &k0, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc+proto", NULL);
    expect_status(&k0, 0);
    assert_int_equal(s.cap.calls, 1);
    free(msg);
    th_free(f);
    th_free(f0);
    server_stop(&s);
}

static void test_compressed(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    const char *encs[] = {"gzip", "zstd", "deflate"};
    size_t len, flen;
    uint8_t *msg = make_request(40, "gz", 2, &len);
    for (size_t i = 0; i < TH_ARRAY_SIZE(encs); i++) {
        uint8_t *f = framed(encs[i], msg, len, &flen);
        assert_int_equal(f[0], 1);
        assert_true(flen < len);
        struct call k = {.body = f, .body_len = flen};
        const char *extra[] = {"grpc-encoding", encs[i], NULL};
        one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", extra);
        expect_status(&k, 0);
        th_free(f);
    }
    assert_int_equal(s.cap.spans, 120);
    assert_non_null(capture_find(&s.cap, "gz-39"));

    /* Compressed flag without grpc-encoding: INTERNAL. */
    uint8_t *f = framed("gzip", msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, TH_GRPC_INTERNAL);
    /* Corrupt gzip: INTERNAL. */
    f[20] ^= 0xff;
    f[21] ^= 0xff;
    struct call kc = {.body = f, .body_len = flen};
    const char *gz[] = {"grpc-encoding", "gzip", NULL};
    one_call(s.port, &kc, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", gz);
    expect_status(&kc, TH_GRPC_INTERNAL);
    th_free(f);
    /* An unknown encoding: UNIMPLEMENTED with grpc-accept-encoding. */
    uint8_t *plain = framed(NULL, msg, len, &flen);
    struct call ku = {.body = plain, .body_len = flen};
    const char *snappy[] = {"grpc-encoding", "snappy", NULL};
    one_call(s.port, &ku, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", snappy);
    expect_status(&ku, TH_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(ku.accept_encoding, "gzip"));
    th_free(plain);
    assert_int_equal(s.cap.spans, 120);
    free(msg);
    server_stop(&s);
}

static void test_routing(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len, flen;
    uint8_t *msg = make_request(1, "route", 3, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k1 = {.body = f, .body_len = flen};
    one_call(s.port, &k1, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
             "application/grpc", NULL);
    expect_status(&k1, TH_GRPC_UNIMPLEMENTED);
    assert_int_equal(k1.http_status, 200);
    assert_true(strlen(k1.grpc_message) > 0);
    struct call k2 = {.body = f, .body_len = flen};
    one_call(s.port, &k2, TH_GRPC_TRACE_EXPORT_PATH, "application/json", NULL);
    assert_int_equal(k2.http_status, 415);
    struct call k3 = {.body = f, .body_len = flen};
    one_call(s.port, &k3, TH_GRPC_TRACE_EXPORT_PATH, NULL, NULL);
    assert_int_equal(k3.http_status, 415);
    /* Case matters in :path. */
    struct call k4 = {.body = f, .body_len = flen};
    one_call(s.port, &k4, "/opentelemetry.proto.collector.trace.v1.TraceService/export",
             "application/grpc", NULL);
    expect_status(&k4, TH_GRPC_UNIMPLEMENTED);
    assert_int_equal(s.cap.calls, 0);
    /* A request with no message at all. */
    struct call k5 = {.body = f, .body_len = 0};
    one_call(s.port, &k5, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k5, TH_GRPC_INTERNAL);
    /* Two messages on the unary call. */
    uint8_t *two = malloc(flen * 2);
    memcpy(two, f, flen);
    memcpy(two + flen, f, flen);
    struct call k6 = {.body = two, .body_len = flen * 2};
    one_call(s.port, &k6, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k6, TH_GRPC_UNIMPLEMENTED);
    /* And the server still works. */
    struct call k7 = {.body = f, .body_len = flen};
    one_call(s.port, &k7, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k7, 0);
    free(two);
    free(msg);
    th_free(f);
    server_stop(&s);
}

static void one_mib(struct th_otlp_grpc_cfg *g)
{
    g->max_recv_msg_size_mib = 1;
}

static void test_resource_exhausted(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, one_mib);
    /* Announced over the limit: refused from the prefix alone. */
    uint8_t big_prefix[5] = {0, 0, 0x10, 0, 1}; /* 1 MiB + 1 */
    struct call k = {.body = big_prefix, .body_len = 5};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, TH_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(k.details, ""); /* no RetryInfo: not retryable */
    /* Small on the wire, over the limit once decompressed. */
    size_t zlen = 3u << 20;
    uint8_t *zeros = calloc(1, zlen);
    size_t flen;
    uint8_t *f = framed("gzip", zeros, zlen, &flen);
    assert_true(flen < 64 * 1024);
    struct call k2 = {.body = f, .body_len = flen};
    const char *gz[] = {"grpc-encoding", "gzip", NULL};
    one_call(s.port, &k2, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", gz);
    expect_status(&k2, TH_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(k2.details, "");
    th_free(f);
    free(zeros);
    /* Just under the limit passes, split across many DATA frames. */
    size_t len;
    uint8_t *msg = make_request(9000, "split", 4, &len);
    assert_true(len > 300 * 1024 && len < (1u << 20));
    f = framed(NULL, msg, len, &flen);
    struct call k3 = {.body = f, .body_len = flen, .chunk = 1000};
    one_call(s.port, &k3, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k3, 0);
    assert_int_equal(s.cap.spans, 9000);
    assert_non_null(capture_find(&s.cap, "split-8999"));
    th_free(f);
    free(msg);
    server_stop(&s);
}

/* The default 4 MiB limit: a message just under it arrives without stalls. */
static void test_four_mib(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len, flen;
    uint8_t *msg = make_request(40000, "big", 5, &len);
    assert_true(len > (2u << 20) && len < (4u << 20));
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    uint64_t t0 = th_now_mono_ns();
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, 0);
    assert_true(th_now_mono_ns() - t0 < 5000000000ull);
    assert_int_equal(s.cap.spans, 40000);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void test_invalid_argument(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    /* Not protobuf. */
    const uint8_t junk[] = {0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    struct call k = {.body = junk, .body_len = sizeof(junk)};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, TH_GRPC_INVALID_ARGUMENT);
    assert_true(strlen(k.grpc_message) > 0);
    /* A span id of the wrong length: the decoder's message names the field. */
    size_t len, flen;
    uint8_t *msg = make_request(1, "bad", 6, &len);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                         msg);
    req->resource_spans[0]->scope_spans[0]->spans[0]->span_id.len = 3;
    uint8_t packed[512];
    size_t plen =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(req, packed);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                            NULL);
    uint8_t *f = framed(NULL, packed, plen, &flen);
    struct call k2 = {.body = f, .body_len = flen};
    one_call(s.port, &k2, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k2, TH_GRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(k2.grpc_message, "span_id"));
    assert_int_equal(s.cap.calls, 0);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void test_unavailable_retry_info(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    s.cap.ret = TH_ERETRY;
    size_t len, flen;
    uint8_t *msg = make_request(2, "retry", 7, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, TH_GRPC_UNAVAILABLE);
    int64_t delay = -1;
    assert_int_equal(th_grpc_status_details_retry(k.details, strlen(k.details), &delay), 0);
    assert_int_equal(delay, TH_OTLP_GRPC_RETRY_DELAY_NS);
    assert_int_equal(s.c->stats.refused, 2);
    /* Memory pressure: UNAVAILABLE with the memory_limiter's message. */
    s.cap.ret = TH_ENOMEM;
    struct call k2 = {.body = f, .body_len = flen};
    one_call(s.port, &k2, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k2, TH_GRPC_UNAVAILABLE);
    assert_string_equal(k2.grpc_message, "data refused due to high memory usage");
    /* A permanent refusal: INVALID_ARGUMENT, no RetryInfo. */
    s.cap.ret = TH_EPERM;
    struct call k3 = {.body = f, .body_len = flen};
    one_call(s.port, &k3, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k3, TH_GRPC_INVALID_ARGUMENT);
    assert_string_equal(k3.details, "");
    /* An ack that settles with a failure later (a store that could not commit). */
    s.cap.ret = 0;
    s.cap.hold = true;
    struct client cl;
    assert_int_equal(client_connect(&cl, s.port), 0);
    struct call k4 = {.body = f, .body_len = flen};
    call_submit(&cl, &k4, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    struct call *ks[] = {&k4};
    client_run(&cl, ks, 1, 300);
    assert_false(k4.closed); /* waiting for the ack */
    capture_release(&s.cap, TH_ERETRY);
    client_run(&cl, ks, 1, 5000);
    expect_status(&k4, TH_GRPC_UNAVAILABLE);
    assert_true(k4.details[0] != '\0');
    client_close(&cl);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void test_concurrent_streams(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    enum { N = 80 };
    struct call *ks[N];
    uint8_t *frames[N];
    struct client cl;
    assert_int_equal(client_connect(&cl, s.port), 0);
    for (int i = 0; i < N; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "c%d", i);
        size_t len, flen;
        uint8_t *msg = make_request(5, prefix, (unsigned)i, &len);
        frames[i] = framed(i % 2 ? "gzip" : NULL, msg, len, &flen);
        free(msg);
        ks[i] = calloc(1, sizeof(struct call));
        ks[i]->body = frames[i];
        ks[i]->body_len = flen;
        ks[i]->chunk = 50 + (size_t)i;
        const char *gz[] = {"grpc-encoding", "gzip", NULL};
        call_submit(&cl, ks[i], TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", i % 2 ? gz : NULL);
    }
    client_run(&cl, ks, N, 15000);
    for (int i = 0; i < N; i++) {
        assert_true(ks[i]->closed);
        expect_status(ks[i], 0);
        char name[32];
        snprintf(name, sizeof(name), "c%d-4", i);
        assert_non_null(capture_find(&s.cap, name));
        th_free(frames[i]);
        free(ks[i]);
    }
    assert_int_equal(s.cap.spans, N * 5);
    client_close(&cl);
    server_stop(&s);
}

static void ten_streams(struct th_otlp_grpc_cfg *g)
{
    g->max_concurrent_streams = 10;
}

/* The limits a client learns from the server's SETTINGS. */
static void test_settings_advertised(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, ten_streams);
    struct client cl;
    assert_int_equal(client_connect(&cl, s.port), 0);
    client_send(&cl);
    for (int i = 0; i < 50 && nghttp2_session_get_remote_settings(
                                  cl.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) != 10;
         i++) {
        struct pollfd p = {.fd = cl.fd, .events = POLLIN};
        if (poll(&p, 1, 20) > 0) {
            uint8_t buf[4096];
            ssize_t r = recv(cl.fd, buf, sizeof(buf), 0);
            assert_true(r > 0);
            nghttp2_session_mem_recv(cl.h2, buf, (size_t)r);
        }
    }
    assert_int_equal(
        nghttp2_session_get_remote_settings(cl.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 10);
    assert_int_equal(
        nghttp2_session_get_remote_settings(cl.h2, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
        TH_OTLP_GRPC_MAX_HEADER_LIST);
    /* The connection window was opened wide for large messages. */
    assert_true(nghttp2_session_get_remote_window_size(cl.h2) > (1 << 20));
    client_close(&cl);
    server_stop(&s);
}

static void test_deadline(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    s.cap.hold = true;
    size_t len, flen;
    uint8_t *msg = make_request(1, "late", 8, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    const char *to[] = {"grpc-timeout", "200m", NULL};
    uint64_t t0 = th_now_mono_ns();
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", to);
    uint64_t ms = (th_now_mono_ns() - t0) / 1000000;
    expect_status(&k, TH_GRPC_DEADLINE_EXCEEDED);
    assert_true(ms >= 190 && ms < 3000);
    /* The data still went on. */
    assert_non_null(capture_find(&s.cap, "late-0"));
    capture_release(&s.cap, 0);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void test_garbage_preface(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    const char *garbage[] = {
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls client hello",
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(garbage); i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_true(send(fd, garbage[i], strlen(garbage[i]), MSG_NOSIGNAL) > 0);
        /* The server closes: reads end (after at most its SETTINGS and a GOAWAY). */
        uint8_t buf[4096];
        ssize_t r;
        int rounds = 0;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while ((r = recv(fd, buf, sizeof(buf), 0)) > 0 && rounds < 100) {
            rounds++;
        }
        assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
        close(fd);
    }
    /* A good client still gets through. */
    size_t len, flen;
    uint8_t *msg = make_request(1, "after", 9, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, 0);
    th_free(f);
    free(msg);
    server_stop(&s);
}

/* Shutdown: GOAWAY, the waiting call still answered once its ack settles, new calls refused. */
static void test_shutdown_goaway(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    s.cap.hold = true;
    size_t len, flen;
    uint8_t *msg = make_request(2, "drain", 10, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct client cl;
    assert_int_equal(client_connect(&cl, s.port), 0);
    struct call k = {.body = f, .body_len = flen};
    call_submit(&cl, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    struct call *ks[] = {&k};
    client_run(&cl, ks, 1, 300);
    assert_false(k.closed);
    uv_async_send(&s.shut);
    for (int i = 0; i < 100 && !cl.goaway; i++) {
        client_run(&cl, ks, 1, 20);
    }
    assert_true(cl.goaway);
    assert_int_equal(cl.goaway_last, k.id);
    assert_false(k.closed);
    /* The pipeline's flush settles the ack: the call is answered OK. */
    capture_release(&s.cap, 0);
    client_run(&cl, ks, 1, 5000);
    expect_status(&k, 0);
    /* Then the connection closes. */
    struct call never = {0};
    struct call *kn[] = {&never};
    client_run(&cl, kn, 1, 3000);
    assert_true(cl.eof);
    client_close(&cl);
    /* New connections are not accepted. */
    struct client c2;
    assert_int_equal(client_connect(&c2, s.port), -1);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void short_idle(struct th_otlp_grpc_cfg *g)
{
    g->keepalive.server_parameters.max_connection_idle = 300 * 1000000LL;
}

/* max_connection_idle: a connection without calls gets GOAWAY and is closed. */
static void test_idle_goaway(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, short_idle);
    size_t len, flen;
    uint8_t *msg = make_request(1, "idle", 13, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct client cl;
    assert_int_equal(client_connect(&cl, s.port), 0);
    struct call k = {.body = f, .body_len = flen};
    call_submit(&cl, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    struct call never = {0};
    struct call *ks[] = {&k, &never};
    uint64_t t0 = th_now_mono_ns();
    client_run(&cl, ks, 2, 5000);
    uint64_t ms = (th_now_mono_ns() - t0) / 1000000;
    expect_status(&k, 0);
    assert_true(cl.goaway);
    assert_true(cl.eof);
    assert_true(ms >= 250 && ms < 4000);
    client_close(&cl);
    th_free(f);
    free(msg);
    server_stop(&s);
}

static void fast_ping(struct th_otlp_grpc_cfg *g)
{
    g->keepalive.server_parameters.time = 200 * 1000000LL;
    g->keepalive.server_parameters.timeout = 200 * 1000000LL;
}

/* keepalive time/timeout: a silent client is PINGed, and closed when it does not answer. */
static void test_keepalive_ping(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, fast_ping);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    static const char hello[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    assert_int_equal(send(fd, hello, sizeof(hello) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(hello) - 1);
    /* Read without ever answering: a PING frame (type 6) arrives, then the close. */
    uint8_t buf[4096];
    size_t have = 0;
    ssize_t r;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint64_t t0 = th_now_mono_ns();
    while ((r = recv(fd, buf + have, sizeof(buf) - have, 0)) > 0 && have < sizeof(buf)) {
        have += (size_t)r;
    }
    uint64_t ms = (th_now_mono_ns() - t0) / 1000000;
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    assert_true(ms >= 300 && ms < 4000);
    bool ping = false;
    for (size_t off = 0; off + 9 <= have;) {
        size_t flen = (size_t)buf[off] << 16 | (size_t)buf[off + 1] << 8 | buf[off + 2];
        if (buf[off + 3] == 6 && !(buf[off + 4] & 1)) {
            ping = true;
        }
        off += 9 + flen;
    }
    assert_true(ping);
    close(fd);
    server_stop(&s);
}

static char fixed_endpoint[32];

static void fixed_port(struct th_otlp_grpc_cfg *g)
{
    g->endpoint = fixed_endpoint;
}

/* Shutdown releases the port: the same endpoint binds again at once (SO_REUSEADDR, every
 * handle closed), and the new server answers. */
static void test_restart_same_port(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    int port = s.port;
    size_t len, flen;
    uint8_t *msg = make_request(1, "again", 12, &len);
    uint8_t *f = framed(NULL, msg, len, &flen);
    struct call k = {.body = f, .body_len = flen};
    one_call(s.port, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
    expect_status(&k, 0);
    server_stop(&s);
    snprintf(fixed_endpoint, sizeof(fixed_endpoint), "127.0.0.1:%d", port);
    for (int round = 0; round < 2; round++) {
        server_start(&s, fixed_port);
        assert_int_equal(s.port, port);
        struct call k2 = {.body = f, .body_len = flen};
        one_call(s.port, &k2, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", NULL);
        expect_status(&k2, 0);
        server_stop(&s);
    }
    th_free(f);
    free(msg);
}

/* The socketless session the fuzzer drives: an nghttp2 client wired to it in memory. */
struct pipe_out {
    uint8_t buf[1 << 16];
    size_t len;
};

static void pipe_collect(void *ctx, const uint8_t *p, size_t n)
{
    struct pipe_out *o = ctx;
    assert_true(o->len + n <= sizeof(o->buf));
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void test_session_in_memory(void **state)
{
    (void)state;
    struct capture cap;
    memset(&cap, 0, sizeof(cap));
    cap.consumer.consume = capture_consume;
    pthread_mutex_init(&cap.mu, NULL);
    struct th_otlp_grpc_cfg g;
    th_otlp_grpc_cfg_default(&g);
    th_otlp_grpc_server_t *srv = NULL;
    assert_int_equal(th_otlp_grpc_server_create(&g, &cap.consumer, NULL, &srv), 0);
    struct pipe_out out = {.len = 0};
    th__otlp_grpc_session_t *ss = NULL;
    assert_int_equal(th__otlp_grpc_session_create(srv, pipe_collect, &out, &ss), 0);
    assert_true(out.len > 0); /* the server's SETTINGS */

    struct client cl;
    memset(&cl, 0, sizeof(cl));
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, cl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cl_on_frame);
    assert_int_equal(nghttp2_session_client_new(&cl.h2, cb, &cl), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(cl.h2, NGHTTP2_FLAG_NONE, NULL, 0);
    size_t len, flen;
    uint8_t *msg = make_request(4, "mem", 11, &len);
    uint8_t *f = framed("zstd", msg, len, &flen);
    struct call k = {.body = f, .body_len = flen, .chunk = 17};
    const char *z[] = {"grpc-encoding", "zstd", NULL};
    call_submit(&cl, &k, TH_GRPC_TRACE_EXPORT_PATH, "application/grpc", z);
    for (int round = 0; round < 100 && !k.closed; round++) {
        const uint8_t *d;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(cl.h2, &d)) > 0) {
            assert_int_equal(th__otlp_grpc_session_feed(ss, d, (size_t)n), 0);
        }
        if (out.len) {
            assert_int_equal(nghttp2_session_mem_recv(cl.h2, out.buf, out.len), (ssize_t)out.len);
            out.len = 0;
        }
    }
    assert_true(k.closed);
    expect_status(&k, 0);
    assert_non_null(capture_find(&cap, "mem-3"));
    assert_int_equal(th_otlp_grpc_server_stats(srv)->accepted, 4);
    /* An unknown frame type is ignored; DATA on stream 0 is a connection error: GOAWAY, then
     * the session is closed and takes nothing more. */
    const uint8_t ext[] = {0, 0, 4, 0x42, 0, 0, 0, 0, 9, 1, 2, 3, 4};
    assert_int_equal(th__otlp_grpc_session_feed(ss, ext, sizeof(ext)), 0);
    const uint8_t bad[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'};
    assert_int_equal(th__otlp_grpc_session_feed(ss, bad, sizeof(bad)), TH_EIO);
    assert_int_equal(th__otlp_grpc_session_feed(ss, ext, sizeof(ext)), TH_EIO);
    assert_int_equal(nghttp2_session_mem_recv(cl.h2, out.buf, out.len), (ssize_t)out.len);
    assert_true(cl.goaway);
    nghttp2_session_del(cl.h2);
    th__otlp_grpc_session_destroy(ss);
    th_otlp_grpc_server_destroy(srv);
    capture_release(&cap, 0);
    pthread_mutex_destroy(&cap.mu);
    th_free(f);
    free(msg);
}

static void test_config(void **state)
{
    (void)state;
    struct th_otlp_grpc_cfg g;
    const char *err = NULL;
    th_otlp_grpc_cfg_default(&g);
    assert_int_equal(th_otlp_grpc_cfg_check(&g, &err), 0);
    g.tls_enabled = true;
    assert_int_equal(th_otlp_grpc_cfg_check(&g, &err), TH_ECONFIG);
    assert_non_null(strstr(err, "protocols::grpc::tls"));
    g.tls_enabled = false;
    g.transport = "unix";
    assert_int_equal(th_otlp_grpc_cfg_check(&g, &err), TH_ECONFIG);
    g.transport = "tcp";
    g.endpoint = "nope";
    assert_int_equal(th_otlp_grpc_cfg_check(&g, &err), TH_ECONFIG);
    /* The table decodes keepalive durations. */
    th_arena_t *a = th_arena_create(0, 0);
    th_node_t *root = NULL;
    char e[256];
    const char *yaml = "protocols:\n  grpc:\n    max_recv_msg_size_mib: 8\n    keepalive:\n"
                       "      server_parameters:\n        max_connection_idle: 11s\n"
                       "      enforcement_policy:\n        min_time: 10s\n"
                       "        permit_without_stream: true\n";
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "test", a, &root, e, sizeof(e)), 0);
    struct th_otlp_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(
        th_cfg_decode(th_otlp_config_fields, root, &cfg, a, "receivers::otlp", e, sizeof(e)), 0);
    assert_true(cfg.protocols.grpc_enabled);
    assert_false(cfg.protocols.http_enabled);
    assert_int_equal(cfg.protocols.grpc.max_recv_msg_size_mib, 8);
    assert_int_equal(cfg.protocols.grpc.keepalive.server_parameters.max_connection_idle,
                     11000000000LL);
    assert_int_equal(cfg.protocols.grpc.keepalive.enforcement_policy.min_time, 10000000000LL);
    assert_true(cfg.protocols.grpc.keepalive.enforcement_policy.permit_without_stream);
    assert_string_equal(cfg.protocols.grpc.endpoint, "localhost:4317");
    assert_int_equal(th_otlp_config_check(&cfg, &err), 0);
    th_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_ok_spans_intact),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_resource_exhausted),
        cmocka_unit_test(test_four_mib),
        cmocka_unit_test(test_invalid_argument),
        cmocka_unit_test(test_unavailable_retry_info),
        cmocka_unit_test(test_concurrent_streams),
        cmocka_unit_test(test_settings_advertised),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_garbage_preface),
        cmocka_unit_test(test_shutdown_goaway),
        cmocka_unit_test(test_session_in_memory),
        cmocka_unit_test(test_restart_same_port),
        cmocka_unit_test(test_idle_goaway),
        cmocka_unit_test(test_keepalive_ping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
