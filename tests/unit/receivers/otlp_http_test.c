/*
 * The otlp receiver over real loopback HTTP: the component runs on a libuv loop in a second
 * thread with a capture consumer, and each test drives it with a blocking HTTP/1.1 client
 * (and curl for HTTP/2). Covered: 200 for protobuf and JSON (plain, gzip, deflate, zstd,
 * chunked), zero-span requests, 415/405/404, 413 before and after decompression, 400 for bad
 * bodies and encodings with Status bodies in the request's encoding, 503 + Retry-After and
 * 400 from the pipeline, CORS, keep-alive, slow-client timeouts, shutdown of live
 * connections, EADDRINUSE, the config table through YAML, and allocation failure along the
 * request path. Every bad request is followed by a good one on the same server.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "google/rpc/status.pb-c.h"
#include "th/log.h"
#include "receivers/otlp/otlp.h"
#include "receivers/otlp/otlp_http.h"

/* h2o keeps freed buffers in per-thread recycle lists (h2o_mem_alloc_recycle) that are never
 * released; each server here runs on a thread that then exits, so LeakSanitizer would report
 * those caches. Our own objects (connections, sockets, the server) are still checked, and
 * uv_loop_close() proves every handle closed. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

/* ---- The capture consumer ------------------------------------------------------------- */

struct capture {
    struct th_consumer consumer;
    pthread_mutex_t mu;
    int ret; /* what consume returns (read atomically) */
    size_t calls;
    size_t spans;
    char first_name[64];
    th_batch_t *kept[256];
    size_t n_kept;
    bool hold; /* keep batches unsettled: the answer waits until the test releases them */
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    int ret = __atomic_load_n(&c->ret, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->spans += b->span_count;
    const th_otlp_request_t *req = b->req;
    if (req->n_resource_spans && req->resource_spans[0]->n_scope_spans &&
        req->resource_spans[0]->scope_spans[0]->n_spans) {
        snprintf(c->first_name, sizeof(c->first_name), "%s",
                 req->resource_spans[0]->scope_spans[0]->spans[0]->name);
    }
    /* Ownership passed to us whatever we answer: keep it on success, drop it otherwise. */
    if (ret == 0 && c->n_kept < TH_ARRAY_SIZE(c->kept)) {
        /* Taking responsibility for the data settles its acks (as a store does after its
         * commit), unless the test wants the answer to wait. */
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

static void capture_init(struct capture *c)
{
    memset(c, 0, sizeof(*c));
    c->consumer.consume = capture_consume;
    pthread_mutex_init(&c->mu, NULL);
}

static void capture_reset(struct capture *c)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_kept; i++) {
        th_batch_release(c->kept[i]);
    }
    c->n_kept = 0;
    c->calls = 0;
    c->spans = 0;
    c->first_name[0] = '\0';
    pthread_mutex_unlock(&c->mu);
}

static size_t capture_spans(struct capture *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->spans;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static size_t capture_calls(struct capture *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- The server fixture: the component on a loop in its own thread --------------------- */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
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

/* On the loop thread: the collector's order, shutdown then destroy. The loop ends once the
 * receiver's handles have closed, which is what proves shutdown releases everything. */
static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;
    assert_int_equal(s->c->ops->shutdown(s->c), 0);
    assert_int_equal(s->c->ops->shutdown(s->c), 0); /* idempotent */
    s->c->shut_down = true;
    th_component_destroy(s->c);
    s->c = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

typedef void (*tweak_fn)(struct th_otlp_http_cfg *http);

static void server_start(struct server *s, tweak_fn tweak)
{
    memset(s, 0, sizeof(*s));
    s->cfg.protocols.http_enabled = true;
    th_otlp_http_cfg_default(&s->cfg.protocols.http);
    s->cfg.protocols.http.endpoint = "127.0.0.1:0";
    if (tweak) {
        tweak(&s->cfg.protocols.http);
    }
    capture_init(&s->cap);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop, on_stop), 0);
    s->stop.data = s;
    s->host = (struct th_host){.loop = &s->loop, .get_extension = no_ext, .report_fatal = no_fatal};
    assert_int_equal(
        th_component_create(&th_receiver_otlp_ops, "otlp", &s->cfg, &s->cap.consumer, &s->c), 0);
    s->c->host = &s->host;
    assert_int_equal(s->c->ops->start(s->c, &s->host), 0);
    s->c->started = true;
    s->port = th_otlp_receiver_http_port(s->c);
    assert_true(s->port > 0);
    assert_int_equal(pthread_create(&s->thread, NULL, loop_main, s), 0);
}

static void server_stop(struct server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_null(s->c);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    capture_reset(&s->cap);
    pthread_mutex_destroy(&s->cap.mu);
}

/* ---- A small blocking HTTP/1.1 client -------------------------------------------------- */

struct resp {
    int status;
    char head[8192];
    uint8_t *body;
    size_t body_len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        c += n;
        len -= (size_t)n;
    }
    return true;
}

/* The value of a response header (case-insensitive name), copied into out; NULL if absent. */
static const char *hdr(const struct resp *r, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (!end) {
            break;
        }
        if ((size_t)(end - line) > nlen && line[nlen] == ':' && !strncasecmp(line, name, nlen)) {
            const char *v = line + nlen + 1;
            while (*v == ' ') {
                v++;
            }
            snprintf(out, outlen, "%.*s", (int)(end - v), v);
            return out;
        }
        line = end;
    }
    return NULL;
}

/* Read one response (status line, headers, Content-Length body). @return 0, or -1 when the
 * connection closed or timed out first. */
static int read_resp(int fd, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n + 1 >= sizeof(r->head)) {
            return -1;
        }
        ssize_t got = recv(fd, r->head + n, 1, 0);
        if (got <= 0) {
            return -1;
        }
        n += (size_t)got;
        r->head[n] = '\0';
        end = n >= 4 ? strstr(r->head + n - 4, "\r\n\r\n") : NULL;
    }
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) {
        return -1;
    }
    char v[64];
    size_t len = hdr(r, "content-length", v, sizeof(v)) ? strtoul(v, NULL, 10) : 0;
    r->body = malloc(len + 1);
    r->body_len = len;
    size_t have = 0;
    while (have < len) {
        ssize_t got = recv(fd, r->body + have, len - have, 0);
        if (got <= 0) {
            return -1;
        }
        have += (size_t)got;
    }
    r->body[len] = '\0';
    return 0;
}

/* Send one request on an open connection and read the answer. */
static int do_req(int fd, const char *method, const char *path, const char *headers,
                  const void *body, size_t len, struct resp *r)
{
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\n%s\r\n", method, path,
                     len, headers ? headers : "");
    if (!send_all(fd, head, (size_t)n) || (len && !send_all(fd, body, len))) {
        return -1;
    }
    return read_resp(fd, r);
}

/* One request on a fresh connection. */
static void req(int port, const char *method, const char *path, const char *headers,
                const void *body, size_t len, struct resp *r)
{
    int fd = client_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(do_req(fd, method, path, headers, body, len, r), 0);
    close(fd);
}

/* ---- Payloads -------------------------------------------------------------------------- */

/* An ExportTraceServiceRequest with n valid spans named prefix-0, prefix-1, ... */
static uint8_t *make_pb(size_t n, const char *prefix, size_t *len)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp = &rs;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp = &ss;
    Opentelemetry__Proto__Trace__V1__Span *spans = calloc(n ? n : 1, sizeof(*spans));
    Opentelemetry__Proto__Trace__V1__Span **sp = calloc(n ? n : 1, sizeof(*sp));
    char(*names)[32] = calloc(n ? n : 1, 32);
    uint8_t(*ids)[24] = calloc(n ? n : 1, 24);
    for (size_t i = 0; i < n; i++) {
        opentelemetry__proto__trace__v1__span__init(&spans[i]);
        for (int j = 0; j < 24; j++) {
            ids[i][j] = (uint8_t)(i * 31 + j + 1);
        }
        spans[i].trace_id = (ProtobufCBinaryData){16, ids[i]};
        spans[i].span_id = (ProtobufCBinaryData){8, ids[i] + 16};
        snprintf(names[i], 32, "%s-%zu", prefix, i);
        spans[i].name = names[i];
        spans[i].start_time_unix_nano = 1700000000000000000ull + i;
        spans[i].end_time_unix_nano = 1700000000000000100ull + i;
        sp[i] = &spans[i];
    }
    ss.n_spans = n;
    ss.spans = sp;
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
    free(sp);
    free(names);
    free(ids);
    return out;
}

static const char JSON_2[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
    "{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"spans\":["
    "{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\","
    "\"name\":\"json-0\",\"kind\":2},"
    "{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b175\","
    "\"parentSpanId\":\"eee19b7ec3c1b174\",\"name\":\"json-1\"}]}]}]}";

/* The 146-byte test vector of otlp.md §1.7: one span named "op". */
static const uint8_t PB_VECTOR[] = {
    0x0a, 0x8f, 0x01, 0x0a, 0x17, 0x0a, 0x15, 0x0a, 0x0c, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63,
    0x65, 0x2e, 0x6e, 0x61, 0x6d, 0x65, 0x12, 0x05, 0x0a, 0x03, 0x73, 0x76, 0x63, 0x12, 0x74,
    0x0a, 0x0a, 0x0a, 0x03, 0x6c, 0x69, 0x62, 0x12, 0x03, 0x31, 0x2e, 0x30, 0x12, 0x66, 0x0a,
    0x10, 0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
    0xc6, 0x0c, 0x12, 0x08, 0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74, 0x2a, 0x02, 0x6f,
    0x70, 0x30, 0x02, 0x39, 0x00, 0x48, 0x59, 0xe3, 0xfa, 0xeb, 0x6f, 0x15, 0x41, 0x00, 0x12,
    0xf4, 0x1e, 0xfb, 0xeb, 0x6f, 0x15, 0x4a, 0x20, 0x0a, 0x19, 0x68, 0x74, 0x74, 0x70, 0x2e,
    0x72, 0x65, 0x73, 0x70, 0x6f, 0x6e, 0x73, 0x65, 0x2e, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73,
    0x5f, 0x63, 0x6f, 0x64, 0x65, 0x12, 0x03, 0x18, 0xf4, 0x03, 0x7a, 0x08, 0x12, 0x04, 0x62,
    0x6f, 0x6f, 0x6d, 0x18, 0x02, 0x85, 0x01, 0x01, 0x03, 0x00, 0x00,
};

static uint8_t *zcompress(const void *in, size_t len, int window_bits, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, len) + 64;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* ---- Checks on responses ------------------------------------------------------------- */

static void expect_ctype(const struct resp *r, const char *want)
{
    char v[128];
    assert_non_null(hdr(r, "content-type", v, sizeof(v)));
    assert_string_equal(v, want);
}

/* A google.rpc.Status body in protobuf: its code, and a message containing @p contains. */
static void expect_pb_status(const struct resp *r, int code, const char *contains)
{
    expect_ctype(r, "application/x-protobuf");
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, r->body_len, r->body);
    assert_non_null(st);
    assert_int_equal(st->code, code);
    if (contains && !strstr(st->message, contains)) {
        fail_msg("status message \"%s\" lacks \"%s\"", st->message, contains);
    }
    google__rpc__status__free_unpacked(st, NULL);
}

static void expect_json_status(const struct resp *r, int code, const char *contains)
{
    expect_ctype(r, "application/json");
    char want[32];
    snprintf(want, sizeof(want), "\"code\":%d", code);
    if (!strstr((const char *)r->body, want)) {
        fail_msg("JSON status %s lacks %s", r->body, want);
    }
    if (contains && !strstr((const char *)r->body, contains)) {
        fail_msg("JSON status %s lacks \"%s\"", r->body, contains);
    }
}

/* The server still serves: a good protobuf export gets 200 and reaches the consumer. */
static void expect_alive(struct server *s)
{
    size_t before = capture_spans(&s->cap);
    size_t len;
    uint8_t *pb = make_pb(2, "alive", &len);
    struct resp r;
    req(s->port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s->cap), before + 2);
    resp_free(&r);
    free(pb);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Success paths ------------------------------------------------------------------- */

static void test_protobuf_200(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len;
    uint8_t *pb = make_pb(3, "pb", &len);
    struct resp r;
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 200);
    expect_ctype(&r, "application/x-protobuf");
    assert_int_equal(r.body_len, 0); /* the empty ExportTraceServiceResponse */
    assert_int_equal(capture_calls(&s.cap), 1);
    assert_int_equal(capture_spans(&s.cap), 3);
    assert_string_equal(s.cap.first_name, "pb-0");
    assert_int_equal(s.c->stats.accepted, 3);
    resp_free(&r);

    /* The reference vector decodes to its one span. */
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", PB_VECTOR,
        sizeof(PB_VECTOR), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(s.cap.first_name, "op");
    resp_free(&r);
    free(pb);
    server_stop(&s);
}

/* Releases the held batches after a delay, from another thread (as the store's writer
 * thread does after a commit), failing them first when asked. */
struct releaser {
    struct capture *cap;
    int fail_with;
    pthread_t thread;
};

static void *releaser_main(void *arg)
{
    struct releaser *rel = arg;
    for (int i = 0; i < 500 && capture_calls(rel->cap) == 0; i++) {
        usleep(2000);
    }
    usleep(150 * 1000);
    pthread_mutex_lock(&rel->cap->mu);
    for (size_t i = 0; i < rel->cap->n_kept; i++) {
        th_batch_fail(rel->cap->kept[i], rel->fail_with);
        th_batch_release(rel->cap->kept[i]);
    }
    rel->cap->n_kept = 0;
    pthread_mutex_unlock(&rel->cap->mu);
    return NULL;
}

/* The answer waits for the ack: 200 only once the data is settled, 503 if it failed. */
static void test_answer_waits_for_ack(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    s.cap.hold = true;
    size_t len;
    uint8_t *pb = make_pb(2, "held", &len);
    const int fails[] = {0, TH_ERETRY};
    for (size_t k = 0; k < TH_ARRAY_SIZE(fails); k++) {
        capture_reset(&s.cap);
        struct releaser rel = {.cap = &s.cap, .fail_with = fails[k]};
        pthread_create(&rel.thread, NULL, releaser_main, &rel);
        uint64_t t0 = th_now_mono_ns();
        struct resp r;
        req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
        uint64_t waited_ms = (th_now_mono_ns() - t0) / 1000000;
        pthread_join(rel.thread, NULL);
        assert_true(waited_ms >= 140);
        assert_int_equal(r.status, fails[k] ? 503 : 200);
        if (fails[k]) {
            char v[16];
            assert_true(hdr(&r, "retry-after", v, sizeof(v)));
        }
        resp_free(&r);
    }
    free(pb);
    server_stop(&s);
}

static void test_json_200(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    /* Parameters and case in the media type do not matter; the answer is the bare type. */
    req(s.port, "POST", "/v1/traces", "Content-Type: Application/JSON; charset=utf-8\r\n", JSON_2,
        strlen(JSON_2), &r);
    assert_int_equal(r.status, 200);
    expect_ctype(&r, "application/json");
    assert_string_equal((char *)r.body, "{}");
    assert_int_equal(capture_spans(&s.cap), 2);
    assert_string_equal(s.cap.first_name, "json-0");
    resp_free(&r);
    /* A query string does not change the path. */
    req(s.port, "POST", "/v1/traces?x=1", "Content-Type: application/json\r\n", JSON_2,
        strlen(JSON_2), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 4);
    resp_free(&r);
    server_stop(&s);
}

static void test_compressed_bodies(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len, clen;
    uint8_t *pb = make_pb(50, "gz", &len);
    struct resp r;

    uint8_t *gz = zcompress(pb, len, 31, &clen);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\n", gz, clen, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 50);
    assert_string_equal(s.cap.first_name, "gz-0");
    resp_free(&r);
    free(gz);

    uint8_t *zl = zcompress(JSON_2, strlen(JSON_2), 15, &clen);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/json\r\nContent-Encoding: deflate\r\n", zl, clen, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 52);
    resp_free(&r);
    free(zl);

    size_t zcap = ZSTD_compressBound(len);
    uint8_t *zs = malloc(zcap);
    clen = ZSTD_compress(zs, zcap, pb, len, 3);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/x-protobuf\r\nContent-Encoding: zstd\r\n", zs, clen, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 102);
    resp_free(&r);
    free(zs);

    /* "identity" is accepted as no encoding. */
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/x-protobuf\r\nContent-Encoding: identity\r\n", pb, len, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 152);
    resp_free(&r);
    free(pb);
    server_stop(&s);
}

static void test_chunked_body(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    int fd = client_connect(s.port);
    char head[256];
    size_t half = strlen(JSON_2) / 2;
    int n = snprintf(head, sizeof(head),
                     "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                     half);
    assert_true(send_all(fd, head, (size_t)n));
    assert_true(send_all(fd, JSON_2, half));
    n = snprintf(head, sizeof(head), "\r\n%zx\r\n", strlen(JSON_2) - half);
    assert_true(send_all(fd, head, (size_t)n));
    assert_true(send_all(fd, JSON_2 + half, strlen(JSON_2) - half));
    assert_true(send_all(fd, "\r\n0\r\n\r\n", 7));
    struct resp r;
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(capture_spans(&s.cap), 2);
    resp_free(&r);
    close(fd);
    server_stop(&s);
}

static void test_zero_spans(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    /* An empty protobuf body is an empty request. */
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", "", 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "{}");
    resp_free(&r);
    const char *empty = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[]}]}]}";
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", empty, strlen(empty),
        &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* None of these reached the pipeline. */
    assert_int_equal(capture_calls(&s.cap), 0);
    expect_alive(&s);
    server_stop(&s);
}

/* ---- Status codes --------------------------------------------------------------------- */

static void test_method_type_path(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    char v[128];

    req(s.port, "GET", "/v1/traces", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 405);
    expect_ctype(&r, "text/plain; charset=utf-8");
    assert_string_equal((char *)r.body, "405 method not allowed, supported: [POST]");
    assert_non_null(hdr(&r, "allow", v, sizeof(v)));
    resp_free(&r);
    req(s.port, "PUT", "/v1/traces", "Content-Type: application/json\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    /* Without CORS, OPTIONS is just another method. */
    req(s.port, "OPTIONS", "/v1/traces", "Origin: https://a.example\r\n", NULL, 0, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);

    req(s.port, "POST", "/v1/traces", "Content-Type: text/plain\r\n", "x", 1, &r);
    assert_int_equal(r.status, 415);
    expect_ctype(&r, "text/plain; charset=utf-8");
    assert_string_equal(
        (char *)r.body,
        "415 unsupported media type, supported: [application/json, application/x-protobuf]");
    resp_free(&r);
    req(s.port, "POST", "/v1/traces", NULL, "x", 1, &r);
    assert_int_equal(r.status, 415);
    resp_free(&r);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/jsonx\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 415);
    resp_free(&r);

    req(s.port, "POST", "/v1/other", "Content-Type: application/json\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    req(s.port, "POST", "/v1/traces/x", "Content-Type: application/json\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    req(s.port, "POST", "/v1/metrics", "Content-Type: application/json\r\n", "{}", 2, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr((char *)r.body, "traces only"));
    resp_free(&r);
    req(s.port, "POST", "/v1/logs", "Content-Type: application/x-protobuf\r\n", "", 0, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    assert_int_equal(capture_calls(&s.cap), 0);
    expect_alive(&s);
    server_stop(&s);
}

static void small_body_limit(struct th_otlp_http_cfg *http)
{
    http->max_request_body_size = 64 * 1024;
}

static void test_413(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, small_body_limit);
    struct resp r;

    /* Declared too large: h2o refuses before reading the body; the answer is still a Status
     * in the request's encoding (and the connection closes). */
    int fd = client_connect(s.port);
    const char *head =
        "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-protobuf\r\n"
        "Content-Length: 10000000\r\n\r\n";
    assert_true(send_all(fd, head, strlen(head)));
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 413);
    expect_pb_status(&r, 3, "max_request_body_size");
    resp_free(&r);
    close(fd);

    fd = client_connect(s.port);
    head = "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           "Content-Length: 65537\r\n\r\n";
    assert_true(send_all(fd, head, strlen(head)));
    assert_int_equal(read_resp(fd, &r), 0);
    assert_int_equal(r.status, 413);
    expect_json_status(&r, 3, "max_request_body_size");
    resp_free(&r);
    close(fd);

    /* Exactly the limit is fine (and decodes to whatever it holds). */
    size_t len;
    uint8_t *pb = make_pb(1, "fits", &len);
    uint8_t *padded = calloc(1, 64 * 1024);
    memcpy(padded, pb, len);
    /* Pad with an unknown length-delimited field 99 so the message stays valid. */
    size_t pad = 64 * 1024 - len;
    padded[len] = 0x9a; /* field 99, wire type 2: tag varint 0x31a */
    padded[len + 1] = 0x06;
    size_t payload = pad - 2 - 3;
    padded[len + 2] = (uint8_t)(0x80 | (payload & 0x7f));
    padded[len + 3] = (uint8_t)(0x80 | ((payload >> 7) & 0x7f));
    padded[len + 4] = (uint8_t)(payload >> 14);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", padded, 64 * 1024,
        &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(s.cap.first_name, "fits-0");
    resp_free(&r);
    free(padded);
    free(pb);

    /* A gzip bomb: 1 MiB of JSON-ish zeros in ~1 KiB: 413 after decompression. */
    size_t big = 1024 * 1024, clen;
    uint8_t *zeros = calloc(1, big);
    uint8_t *gz = zcompress(zeros, big, 31, &clen);
    assert_true(clen < 64 * 1024);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n", gz, clen, &r);
    assert_int_equal(r.status, 413);
    expect_json_status(&r, 3, "decompressed body exceeds max_request_body_size");
    resp_free(&r);
    free(gz);
    free(zeros);
    expect_alive(&s);
    server_stop(&s);
}

static void test_400_bad_input(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct resp r;

    /* Garbage protobuf: the decoder's message comes back in a pb Status. */
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", junk,
        sizeof(junk), &r);
    assert_int_equal(r.status, 400);
    expect_pb_status(&r, 3, NULL);
    resp_free(&r);

    /* Every truncation of the reference vector, and a NUL inside the span name. */
    for (size_t cut = 1; cut < sizeof(PB_VECTOR); cut += 7) {
        req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", PB_VECTOR,
            cut, &r);
        assert_int_equal(r.status, 400);
        resp_free(&r);
    }
    uint8_t nul[sizeof(PB_VECTOR)];
    memcpy(nul, PB_VECTOR, sizeof(nul));
    nul[75] = 0x00; /* "op" -> "o\0" */
    assert_int_equal(PB_VECTOR[74], 0x6f);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", nul, sizeof(nul),
        &r);
    assert_int_equal(r.status, 400);
    expect_pb_status(&r, 3, NULL);
    resp_free(&r);
    nul[75] = 0xff; /* invalid UTF-8 */
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", nul, sizeof(nul),
        &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);

    /* Bad JSON: a JSON Status carrying the decoder's message. */
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", "{\"resourceSpans\":[",
        18, &r);
    assert_int_equal(r.status, 400);
    expect_json_status(&r, 3, "JSON");
    resp_free(&r);

    /* A span id of the wrong length. */
    const char *badid =
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
        "\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee1\",\"name\":\"x\"}]}]}]}";
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", badid, strlen(badid),
        &r);
    assert_int_equal(r.status, 400);
    expect_json_status(&r, 3, "span_id");
    resp_free(&r);

    /* 10,000 nested arrays in one attribute value: refused, not a stack overflow. */
    size_t depth = 10000;
    char *deep = malloc(depth * 40 + 512);
    size_t n =
        (size_t)sprintf(deep, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                              "\"5b8efff798038103d269b633813fc60c\",\"spanId\":"
                              "\"eee19b7ec3c1b174\",\"name\":\"x\",\"attributes\":[{"
                              "\"key\":\"k\",\"value\":");
    for (size_t i = 0; i < depth; i++) {
        n += (size_t)sprintf(deep + n, "{\"arrayValue\":{\"values\":[");
    }
    n += (size_t)sprintf(deep + n, "{\"intValue\":1}");
    for (size_t i = 0; i < depth; i++) {
        n += (size_t)sprintf(deep + n, "]}}");
    }
    n += (size_t)sprintf(deep + n, "}]}]}]}]}");
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", deep, n, &r);
    assert_int_equal(r.status, 400);
    expect_json_status(&r, 3, "max_nesting_depth");
    resp_free(&r);
    free(deep);

    /* Unknown, unsupported and corrupt encodings. */
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\nContent-Encoding: br\r\n",
        "{}", 2, &r);
    assert_int_equal(r.status, 400);
    expect_json_status(&r, 3, "unsupported Content-Encoding: br");
    resp_free(&r);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n", "x", 1, &r);
    assert_int_equal(r.status, 400);
    expect_pb_status(&r, 3, "snappy");
    resp_free(&r);
    req(s.port, "POST", "/v1/traces",
        "Content-Type: application/json\r\nContent-Encoding: gzip\r\n", "not gzip", 8, &r);
    assert_int_equal(r.status, 400);
    expect_json_status(&r, 3, "gzip");
    resp_free(&r);

    assert_int_equal(capture_calls(&s.cap), 0);
    expect_alive(&s);
    server_stop(&s);
}

static void test_pipeline_results(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct resp r;
    size_t len;
    uint8_t *pb = make_pb(4, "p", &len);
    char v[64];

    __atomic_store_n(&s.cap.ret, TH_ERETRY, __ATOMIC_RELEASE);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(hdr(&r, "retry-after", v, sizeof(v)));
    assert_string_equal(v, "1");
    expect_pb_status(&r, 14, "retry");
    resp_free(&r);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", JSON_2, strlen(JSON_2),
        &r);
    assert_int_equal(r.status, 503);
    expect_json_status(&r, 14, NULL);
    assert_non_null(strstr((char *)r.body, "RetryInfo"));
    resp_free(&r);

    __atomic_store_n(&s.cap.ret, TH_ENOMEM, __ATOMIC_RELEASE);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(hdr(&r, "retry-after", v, sizeof(v)));
    expect_pb_status(&r, 14, "memory");
    resp_free(&r);

    __atomic_store_n(&s.cap.ret, TH_EPERM, __ATOMIC_RELEASE);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 400);
    assert_null(hdr(&r, "retry-after", v, sizeof(v)));
    expect_pb_status(&r, 3, NULL);
    resp_free(&r);

    __atomic_store_n(&s.cap.ret, TH_HELD, __ATOMIC_RELEASE);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* Refused: 4 + 2 (retry, protobuf and JSON), 4 (memory), 4 (permanent); 4 held. */
    assert_int_equal(s.c->stats.refused, 14);
    assert_int_equal(s.c->stats.accepted, 4);
    __atomic_store_n(&s.cap.ret, 0, __ATOMIC_RELEASE);
    expect_alive(&s);
    free(pb);
    server_stop(&s);
}

/* ---- CORS --------------------------------------------------------------------------- */

static const char *cors_origins[] = {"https://*.example.com", "http://localhost:3000"};
static const char *cors_headers[] = {"X-Custom"};
static const char *cors_exposed[] = {"X-Trace", "X-Other"};

static void with_cors(struct th_otlp_http_cfg *http)
{
    http->cors.allowed_origins = (th_strlist_t){cors_origins, 2};
    http->cors.allowed_headers = (th_strlist_t){cors_headers, 1};
    http->cors.exposed_headers = (th_strlist_t){cors_exposed, 2};
    http->cors.max_age = 7200;
}

static void test_cors(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, with_cors);
    struct resp r;
    char v[256];

    req(s.port, "OPTIONS", "/v1/traces",
        "Origin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: Content-Type, x-custom\r\n",
        NULL, 0, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(hdr(&r, "access-control-allow-origin", v, sizeof(v)),
                        "https://app.example.com");
    assert_string_equal(hdr(&r, "access-control-allow-methods", v, sizeof(v)), "POST");
    assert_string_equal(hdr(&r, "access-control-allow-headers", v, sizeof(v)),
                        "content-type,x-custom");
    assert_string_equal(hdr(&r, "access-control-allow-credentials", v, sizeof(v)), "true");
    assert_string_equal(hdr(&r, "access-control-max-age", v, sizeof(v)), "7200");
    assert_non_null(strstr(hdr(&r, "vary", v, sizeof(v)), "Origin"));
    resp_free(&r);

    /* Not an allowed origin (the wildcard does not match the bare domain), a header not
     * allowed, a method other than POST: 204 without any Allow-* header, as rs/cors. */
    const char *bad[] = {
        "Origin: https://example.com\r\nAccess-Control-Request-Method: POST\r\n",
        "Origin: https://evil.com\r\nAccess-Control-Request-Method: POST\r\n",
        ("Origin: https://a.example.com\r\nAccess-Control-Request-Method: POST\r\n"
         "Access-Control-Request-Headers: x-secret\r\n"),
        "Origin: https://a.example.com\r\nAccess-Control-Request-Method: DELETE\r\n",
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(bad); i++) {
        req(s.port, "OPTIONS", "/v1/traces", bad[i], NULL, 0, &r);
        assert_int_equal(r.status, 204);
        assert_null(hdr(&r, "access-control-allow-origin", v, sizeof(v)));
        assert_null(hdr(&r, "access-control-allow-credentials", v, sizeof(v)));
        resp_free(&r);
    }

    /* The actual request carries the CORS headers (so a browser can read partialSuccess). */
    req(s.port, "POST", "/v1/traces",
        "Origin: http://localhost:3000\r\nContent-Type: application/json\r\n", JSON_2,
        strlen(JSON_2), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "access-control-allow-origin", v, sizeof(v)),
                        "http://localhost:3000");
    assert_string_equal(hdr(&r, "access-control-allow-credentials", v, sizeof(v)), "true");
    assert_string_equal(hdr(&r, "access-control-expose-headers", v, sizeof(v)), "X-Trace, X-Other");
    assert_string_equal(hdr(&r, "vary", v, sizeof(v)), "Origin");
    resp_free(&r);
    /* ...and error answers too. */
    req(s.port, "POST", "/v1/traces", "Origin: https://b.example.com\r\nContent-Type: text/xml\r\n",
        "x", 1, &r);
    assert_int_equal(r.status, 415);
    assert_string_equal(hdr(&r, "access-control-allow-origin", v, sizeof(v)),
                        "https://b.example.com");
    resp_free(&r);
    req(s.port, "POST", "/v1/traces",
        "Origin: https://evil.com\r\nContent-Type: application/json\r\n", JSON_2, strlen(JSON_2),
        &r);
    assert_int_equal(r.status, 200);
    assert_null(hdr(&r, "access-control-allow-origin", v, sizeof(v)));
    resp_free(&r);
    /* OPTIONS that is not a preflight (no Access-Control-Request-Method): 405. */
    req(s.port, "OPTIONS", "/v1/traces", "Origin: https://a.example.com\r\n", NULL, 0, &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    expect_alive(&s);
    server_stop(&s);
}

/* ---- Connections ---------------------------------------------------------------------- */

static const char *resp_hdr_keys[] = {"X-Served-By"};
static const char *resp_hdr_vals[] = {"tracehouse"};

static void with_headers_no_keepalive(struct th_otlp_http_cfg *http)
{
    http->response_headers = (th_strmap_t){resp_hdr_keys, resp_hdr_vals, 1};
    http->keep_alives_enabled = false;
    http->traces_url_path = "custom/traces";
}

static void test_keepalive(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len;
    uint8_t *pb = make_pb(1, "ka", &len);
    struct resp r;
    char v[64];
    int fd = client_connect(s.port);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(do_req(fd, "POST", "/v1/traces",
                                "Content-Type: application/x-protobuf\r\n", pb, len, &r),
                         0);
        assert_int_equal(r.status, 200);
        assert_string_equal(hdr(&r, "connection", v, sizeof(v)), "keep-alive");
        resp_free(&r);
        /* A bad request in between does not cost the connection. */
        assert_int_equal(
            do_req(fd, "POST", "/v1/traces", "Content-Type: application/json\r\n", "[", 1, &r), 0);
        assert_int_equal(r.status, 400);
        resp_free(&r);
    }
    assert_int_equal(capture_spans(&s.cap), 3);
    close(fd);
    free(pb);
    server_stop(&s);
}

static void test_headers_and_no_keepalive(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, with_headers_no_keepalive);
    struct resp r;
    char v[64];
    int fd = client_connect(s.port);
    assert_int_equal(do_req(fd, "POST", "/custom/traces", "Content-Type: application/json\r\n",
                            JSON_2, strlen(JSON_2), &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "x-served-by", v, sizeof(v)), "tracehouse");
    assert_string_equal(hdr(&r, "connection", v, sizeof(v)), "close");
    resp_free(&r);
    /* The server closes after the answer. */
    char c;
    assert_true(recv(fd, &c, 1, 0) <= 0);
    close(fd);
    req(s.port, "POST", "/v1/traces", "Content-Type: application/json\r\n", JSON_2, strlen(JSON_2),
        &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(hdr(&r, "x-served-by", v, sizeof(v)), "tracehouse");
    resp_free(&r);
    server_stop(&s);
}

static void short_timeouts(struct th_otlp_http_cfg *http)
{
    http->read_timeout = 500 * 1000000LL;
    http->idle_timeout = 500 * 1000000LL;
}

/* Seconds until the server closes @p fd (recv returns 0 or an error). */
static double wait_closed(int fd, double start)
{
    char buf[256];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            return now_s() - start;
        }
    }
}

struct slow_client {
    int port;
    int mode; /* 0: headers byte by byte, 1: body byte by byte, 2: nothing */
    double closed_after;
};

static void *slow_main(void *arg)
{
    struct slow_client *sc = arg;
    int fd = client_connect(sc->port);
    double start = now_s();
    if (sc->mode == 0) {
        const char *h =
            "POST /v1/traces HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for (const char *p = h; *p; p++) {
            if (send(fd, p, 1, MSG_NOSIGNAL) != 1) {
                break;
            }
            usleep(100 * 1000);
        }
    } else if (sc->mode == 1) {
        const char *h = "POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        "Content-Length: 100\r\n\r\n";
        send_all(fd, h, strlen(h));
        for (int i = 0; i < 100; i++) {
            if (send(fd, "{", 1, MSG_NOSIGNAL) != 1) {
                break;
            }
            usleep(100 * 1000);
        }
    }
    sc->closed_after = wait_closed(fd, start);
    close(fd);
    return NULL;
}

static void test_slow_clients_cut_off(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, short_timeouts);
    struct slow_client sc[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        sc[i] = (struct slow_client){.port = s.port, .mode = i};
        pthread_create(&t[i], NULL, slow_main, &sc[i]);
    }
    /* Others are served while the slow ones hang on. */
    usleep(200 * 1000);
    expect_alive(&s);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        if (sc[i].closed_after < 0.3 || sc[i].closed_after > 3.0) {
            fail_msg("slow client %d cut off after %.2fs, expected ~0.5s", i, sc[i].closed_after);
        }
    }
    assert_int_equal(capture_calls(&s.cap), 1);
    expect_alive(&s);
    server_stop(&s);
}

static void test_shutdown_closes_connections(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    size_t len;
    uint8_t *pb = make_pb(1, "sd", &len);
    struct resp r;
    int idle = client_connect(s.port);
    assert_int_equal(
        do_req(idle, "POST", "/v1/traces", "Content-Type: application/x-protobuf\r\n", pb, len, &r),
        0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* A connection in the middle of sending headers. */
    int partial = client_connect(s.port);
    assert_true(send_all(partial, "POST /v1/tr", 11));
    int port = s.port;
    double start = now_s();
    server_stop(&s); /* returns once the loop has no handle left */
    assert_true(wait_closed(idle, start) < 2.0);
    assert_true(wait_closed(partial, start) < 2.0);
    close(idle);
    close(partial);
    /* Nobody listens any more. */
    assert_int_equal(client_connect(port), -1);
    free(pb);
}

static void test_port_in_use(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, NULL);
    struct th_otlp_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.protocols.http_enabled = true;
    th_otlp_http_cfg_default(&cfg.protocols.http);
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", s.port);
    cfg.protocols.http.endpoint = ep;
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_receiver_otlp_ops, "otlp/2", &cfg, &s.cap.consumer, &c), 0);
    /* Bind fails before any handle is made, so this is safe beside the running loop. */
    assert_int_equal(c->ops->start(c, &s.host), TH_EADDRINUSE);
    assert_int_equal(th_otlp_receiver_http_port(c), -1);
    th_component_destroy(c);
    expect_alive(&s);
    server_stop(&s);
}

/* Run a command and return its stdout (trimmed to @p outlen). */
static void run(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outlen - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* Node's HTTP/2 client: @p n POSTs multiplexed on one prior-knowledge connection. */
static const char H2_SCRIPT[] =
    "const h=require('node:http2');const c=h.connect('http://127.0.0.1:'+process.argv[2]);"
    "const n=+process.argv[3];let s=[];let d=0;c.on('error',e=>console.log('E'+e.message));"
    "for(let i=0;i<n;i++){const r=c.request({':method':'POST',':path':'/v1/traces',"
    "'content-type':'application/json'});r.on('response',x=>s.push(x[':status']));"
    "r.on('error',e=>console.log('E'+e.message));r.on('close',()=>{if(++d===n){c.close();"
    "console.log(s.join(','));}});r.resume();r.end(process.argv[4]);}";

/* HTTP/2 with prior knowledge (curl, and node for multiplexing) and through an h2c upgrade
 * on a reused connection (curl), when the tools are installed. */
static void test_http2(void **state)
{
    (void)state;
    if (access("/usr/bin/curl", X_OK) != 0) {
        skip();
    }
    struct server s;
    server_start(&s, NULL);
    char path[] = "/tmp/th-otlp-h2-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, JSON_2, strlen(JSON_2)) == (ssize_t)strlen(JSON_2));
    close(fd);
    char cmd[1024], out[256];
    const char *opts = "-s -o /dev/null -w %{http_code}_%{http_version}_%{num_connects}, "
                       "-H Content-Type:application/json --data-binary";
    snprintf(cmd, sizeof(cmd), "curl --http2-prior-knowledge %s @%s http://127.0.0.1:%d/v1/traces",
             opts, path, s.port);
    run(cmd, out, sizeof(out));
    assert_string_equal(out, "200_2_1,");
    /* Upgrade on the first request, the second reuses the HTTP/2 connection. */
    snprintf(cmd, sizeof(cmd),
             "curl --http2 %s @%s http://127.0.0.1:%d/v1/traces --next --http2 %s @%s "
             "http://127.0.0.1:%d/v1/traces",
             opts, path, s.port, opts, path, s.port);
    run(cmd, out, sizeof(out));
    assert_string_equal(out, "200_2_1,200_2_0,");
    size_t expect = 6;
    if (access("/usr/bin/node", X_OK) == 0 || access("/usr/local/bin/node", X_OK) == 0) {
        char script[] = "/tmp/th-otlp-h2js-XXXXXX";
        int sfd = mkstemp(script);
        assert_true(write(sfd, H2_SCRIPT, strlen(H2_SCRIPT)) == (ssize_t)strlen(H2_SCRIPT));
        close(sfd);
        snprintf(cmd, sizeof(cmd), "node %s %d 8 '%s' 2>&1", script, s.port, JSON_2);
        run(cmd, out, sizeof(out));
        assert_string_equal(out, "200,200,200,200,200,200,200,200\n");
        unlink(script);
        expect += 16;
    }
    assert_int_equal(capture_spans(&s.cap), expect);
    unlink(path);
    server_stop(&s);
}

/* ---- Config through the YAML layer --------------------------------------------------- */

static int decode_yaml(const char *yaml, th_arena_t *a, struct th_otlp_cfg *cfg, char *err,
                       size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret != 0) {
        return ret;
    }
    memset(cfg, 0, sizeof(*cfg));
    return th_cfg_decode(th_otlp_config_fields, node, cfg, a, "receivers::otlp", err, errlen);
}

static void test_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlp_cfg cfg;
    char err[512] = "";
    const char *why = NULL;

    assert_int_equal(decode_yaml("protocols:\n  http:\n", a, &cfg, err, sizeof(err)), 0);
    assert_true(cfg.protocols.http_enabled);
    assert_false(cfg.protocols.grpc_enabled);
    const struct th_otlp_http_cfg *h = &cfg.protocols.http;
    assert_string_equal(h->endpoint, "localhost:4318");
    assert_string_equal(h->traces_url_path, "/v1/traces");
    assert_int_equal(h->max_request_body_size, 20 * 1024 * 1024);
    assert_true(h->keep_alives_enabled);
    assert_false(h->tls_enabled);
    assert_int_equal(h->max_nesting_depth, 32);
    assert_int_equal(h->max_spans_per_request, 1000000);
    assert_int_equal(h->max_string_length, 4 * 1024 * 1024);
    assert_int_equal(th_otlp_config_check(&cfg, &why), 0);
    /* The runtime defaults match the table's. */
    struct th_otlp_http_cfg d;
    th_otlp_http_cfg_default(&d);
    assert_string_equal(d.endpoint, h->endpoint);
    assert_int_equal(d.max_request_body_size, h->max_request_body_size);
    assert_int_equal(d.max_attributes_per_item, h->max_attributes_per_item);
    assert_int_equal(d.max_string_length, h->max_string_length);

    assert_int_equal(
        decode_yaml("protocols:\n  grpc:\n  http:\n    endpoint: 0.0.0.0:4318\n"
                    "    traces_url_path: v1/t\n    max_request_body_size: 1MiB\n"
                    "    compression_algorithms: [gzip, zstd]\n    read_timeout: 5s\n"
                    "    cors:\n      allowed_origins: ['https://*.x.com']\n      max_age: 7200\n"
                    "    response_headers: {X-A: b}\n    max_nesting_depth: 8\n",
                    a, &cfg, err, sizeof(err)),
        0);
    assert_true(cfg.protocols.grpc_enabled);
    assert_string_equal(cfg.protocols.grpc.endpoint, "localhost:4317");
    assert_int_equal(cfg.protocols.grpc.read_buffer_size, 524288);
    assert_string_equal(h->endpoint, "0.0.0.0:4318");
    assert_int_equal(h->max_request_body_size, 1024 * 1024);
    assert_int_equal(h->compression_algorithms.n, 2);
    assert_int_equal(h->read_timeout, 5000000000LL);
    assert_int_equal(h->cors.allowed_origins.n, 1);
    assert_int_equal(h->cors.max_age, 7200);
    assert_int_equal(h->response_headers.n, 1);
    assert_int_equal(h->max_nesting_depth, 8);
    assert_int_equal(th_otlp_config_check(&cfg, &why), 0);
    struct th_otlp_limits lim;
    th_otlp_http_cfg_limits(h, &lim);
    assert_int_equal(lim.max_depth, 8);
    assert_int_equal(lim.max_string_len, 4 * 1024 * 1024);

    /* gRPC alone is valid (served later, with a warning). */
    assert_int_equal(decode_yaml("protocols:\n  grpc:\n", a, &cfg, err, sizeof(err)), 0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), 0);
    struct capture cap;
    capture_init(&cap);
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_receiver_otlp_ops, "otlp", &cfg, &cap.consumer, &c),
                     0);
    assert_int_equal(th_otlp_receiver_http_port(c), -1);
    th_component_destroy(c);

    assert_int_equal(decode_yaml("protocols: {}\n", a, &cfg, err, sizeof(err)), 0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "must specify at least one protocol when using the OTLP receiver");
    assert_int_equal(decode_yaml("{}\n", a, &cfg, err, sizeof(err)), 0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), TH_ECONFIG);

    assert_int_equal(decode_yaml("protocols:\n  http:\n    tls:\n      cert_file: c.pem\n", a, &cfg,
                                 err, sizeof(err)),
                     0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "protocols::http::tls: a TLS server needs a certificate and its "
                                "private key: set key_file"));
    /* auth is resolved when the receiver starts (tests/unit/extensions/auth_test.c) */
    assert_int_equal(decode_yaml("protocols:\n  http:\n    auth:\n      authenticator: basicauth\n",
                                 a, &cfg, err, sizeof(err)),
                     0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), 0);
    assert_true(cfg.protocols.http.auth_enabled);
    assert_string_equal(cfg.protocols.http.auth.authenticator, "basicauth");
    assert_int_equal(decode_yaml("protocols:\n  http:\n    compression_algorithms: [brotli]\n", a,
                                 &cfg, err, sizeof(err)),
                     0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), TH_ECONFIG);
    assert_int_equal(
        decode_yaml("protocols:\n  http:\n    endpoint: nohostport\n", a, &cfg, err, sizeof(err)),
        0);
    assert_int_equal(th_otlp_config_check(&cfg, &why), TH_ECONFIG);
    /* Unknown keys name themselves. */
    assert_int_equal(
        decode_yaml("protocols:\n  http:\n    bogus_key: 1\n", a, &cfg, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "bogus_key"));
    th_arena_destroy(a);
    pthread_mutex_destroy(&cap.mu);
}

static void test_endpoint_split(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(th_otlp_endpoint_split("localhost:4318", host, sizeof(host), &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 4318);
    assert_int_equal(th_otlp_endpoint_split(":4318", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(th_otlp_endpoint_split("[::1]:0", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(th_otlp_endpoint_split("0.0.0.0:65535", host, sizeof(host), &port), 0);
    assert_int_equal(th_otlp_endpoint_split("h:65536", host, sizeof(host), &port), TH_EINVAL);
    assert_int_equal(th_otlp_endpoint_split("h:", host, sizeof(host), &port), TH_EINVAL);
    assert_int_equal(th_otlp_endpoint_split("h:12a", host, sizeof(host), &port), TH_EINVAL);
    assert_int_equal(th_otlp_endpoint_split("::1:4318", host, sizeof(host), &port), TH_EINVAL);
    assert_int_equal(th_otlp_endpoint_split("[::1]4318", host, sizeof(host), &port), TH_EINVAL);
    assert_int_equal(th_otlp_endpoint_split("h", host, sizeof(host), &port), TH_EINVAL);
}

/* ---- Allocation failure along the request path --------------------------------------- */

static size_t live;
static long fail_at = -1;
static long n_allocs;

static void *count_malloc(size_t n)
{
    if (fail_at >= 0 && n_allocs++ == fail_at) {
        return NULL;
    }
    size_t *p = malloc(n + 16);
    if (!p) {
        return NULL;
    }
    p[0] = n;
    live += n;
    return (char *)p + 16;
}

static void count_free(void *q)
{
    if (q) {
        size_t *p = (size_t *)((char *)q - 16);
        live -= p[0];
        free(p);
    }
}

static void *count_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = count_malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

static void *count_realloc(void *q, size_t n)
{
    if (!q) {
        return count_malloc(n);
    }
    size_t old = ((size_t *)((char *)q - 16))[0];
    void *p = count_malloc(n);
    if (p) {
        memcpy(p, q, TH_MIN(old, n));
        count_free(q);
    }
    return p;
}

static const struct th_mem_methods counting = {
    .malloc = count_malloc,
    .calloc = count_calloc,
    .realloc = count_realloc,
    .free = count_free,
};

static void oom_loop(bool json, const char *enc, const void *body, size_t len, size_t spans)
{
    struct capture cap;
    capture_init(&cap);
    struct th_component_stats stats = {0};
    struct th__otlp_export x = {
        .next = &cap.consumer,
        .stats = &stats,
        .max_body = 1024 * 1024,
        .encodings = TH_OTLP_ENC_ALL,
    };
    th_otlp_limits_default(&x.lim);
    for (long n = 0;; n++) {
        struct th__otlp_reply r;
        th_mem_set_methods(&counting);
        live = 0;
        n_allocs = 0;
        fail_at = n;
        th__otlp_http_export(&x, json, enc, enc ? strlen(enc) : 0, body, len, NULL, &r);
        fail_at = -1;
        int status = r.status;
        th_buf_free(&r.body);
        capture_reset(&cap); /* frees kept batches with the allocator that made them */
        size_t left = live;
        th_mem_set_methods(NULL);
        assert_int_equal(left, 0);
        if (status == 200) {
            assert_int_equal(stats.accepted, spans);
            break;
        }
        assert_int_equal(status, 503);
        assert_int_equal(stats.accepted, 0);
        assert_true(n < 10000);
    }
    pthread_mutex_destroy(&cap.mu);
}

static void test_oom_request_path(void **state)
{
    (void)state;
    size_t len, clen;
    uint8_t *pb = make_pb(20, "oom", &len);
    oom_loop(false, NULL, pb, len, 20);
    uint8_t *gz = zcompress(JSON_2, strlen(JSON_2), 31, &clen);
    oom_loop(true, "gzip", gz, clen, 2);
    free(gz);
    free(pb);
}

int main(void)
{
    /* A client that hangs up before its answer is written must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protobuf_200),
        cmocka_unit_test(test_answer_waits_for_ack),
        cmocka_unit_test(test_json_200),
        cmocka_unit_test(test_compressed_bodies),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_zero_spans),
        cmocka_unit_test(test_method_type_path),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_400_bad_input),
        cmocka_unit_test(test_pipeline_results),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_headers_and_no_keepalive),
        cmocka_unit_test(test_slow_clients_cut_off),
        cmocka_unit_test(test_shutdown_closes_connections),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_http2),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_endpoint_split),
        cmocka_unit_test(test_oom_request_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
