/*
 * The otlp_http exporter's transport on a real libuv loop against real servers: the
 * Tracehouse OTLP receiver in-process (bodies in every encoding and compression arrive and
 * decode) and a small scripted HTTP/1.1 server written here (statuses, Retry-After, Status
 * bodies, garbage 2xx bodies, partial success, a server that never answers, what was sent:
 * path, headers, bodies, connections). Also the pure parts: URL joining, config checks,
 * Retry-After, response classification; and, once the exporter helper links, the component
 * itself through YAML.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "exporters/otlp_http/otlp_http.h"
#include "google/rpc/status.pb-c.h"
#include "receivers/otlp/otlp.h"
#include "th/log.h"

/* h2o keeps per-thread recycle lists that LeakSanitizer would report (see the receiver's
 * test); our own objects are still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

static uint64_t now_ms(void)
{
    return th_now_mono_ns() / 1000000;
}

/* ---- Requests to send --------------------------------------------------------------------- */

/* A protobuf ExportTraceServiceRequest of @p n spans named "<prefix>-<i>". */
static void make_request_ex(size_t n, const char *prefix, size_t sid_len, th_buf_t *out)
{
    Opentelemetry__Proto__Common__V1__AnyValue sv =
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    sv.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    sv.string_value = "unit-test";
    Opentelemetry__Proto__Common__V1__KeyValue kv =
        OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    kv.key = "service.name";
    kv.value = &sv;
    Opentelemetry__Proto__Common__V1__KeyValue *kvs[] = {&kv};
    Opentelemetry__Proto__Resource__V1__Resource res =
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = kvs;
    Opentelemetry__Proto__Trace__V1__Span *spans = calloc(n, sizeof(*spans));
    Opentelemetry__Proto__Trace__V1__Span **sp = calloc(n, sizeof(*sp));
    char(*names)[32] = calloc(n, 32);
    uint8_t tid[16], sid[8];
    for (size_t i = 0; i < n; i++) {
        Opentelemetry__Proto__Trace__V1__Span s = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        memset(tid, 0x11, sizeof(tid));
        memset(sid, 0x22, sizeof(sid));
        sid[7] = (uint8_t)(i + 1);
        sid[6] = (uint8_t)((i + 1) >> 8);
        spans[i] = s;
        spans[i].trace_id.len = 16;
        spans[i].trace_id.data = malloc(16);
        memcpy(spans[i].trace_id.data, tid, 16);
        spans[i].span_id.len = sid_len;
        spans[i].span_id.data = malloc(8);
        memcpy(spans[i].span_id.data, sid, 8);
        snprintf(names[i], 32, "%s-%zu", prefix, i);
        spans[i].name = names[i];
        spans[i].kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        spans[i].start_time_unix_nano = 1700000000000000000ull + i;
        spans[i].end_time_unix_nano = 1700000001000000000ull + i;
        sp[i] = &spans[i];
    }
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss =
        OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.n_spans = n;
    ss.spans = sp;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ssp[] = {&ss};
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs =
        OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &res;
    rs.n_scope_spans = 1;
    rs.scope_spans = ssp;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rsp[] = {&rs};
    th_otlp_request_t req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = 1;
    req.resource_spans = rsp;
    size_t len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    out->len = 0;
    assert_int_equal(th_buf_reserve(out, len + 1), 0);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, out->ptr);
    out->len = len;
    for (size_t i = 0; i < n; i++) {
        free(spans[i].trace_id.data);
        free(spans[i].span_id.data);
    }
    free(names);
    free(sp);
    free(spans);
}

static void make_request(size_t n, const char *prefix, th_buf_t *out)
{
    make_request_ex(n, prefix, 8, out);
}

/* Decode a request (protobuf or JSON) and return its span count; the first name into @p name. */
static size_t decode_spans(const uint8_t *p, size_t len, bool json, char *name, size_t cap)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = NULL;
    int ret = json ? th_otlp_decode_json(p, len, NULL, a, &req, NULL)
                   : th_otlp_decode_pb(p, len, NULL, a, &req, NULL);
    assert_int_equal(ret, 0);
    size_t n = th_otlp_request_span_count(req);
    if (name != NULL && n > 0) {
        snprintf(name, cap, "%s", req->resource_spans[0]->scope_spans[0]->spans[0]->name);
    }
    th_arena_destroy(a);
    return n;
}

/* ---- A scripted HTTP/1.1 server ------------------------------------------------------------ */

struct answer {
    int status;          /* 0: never answer (hang until the server stops) */
    const char *headers; /* extra header lines, each ending in \r\n */
    const void *body;
    size_t body_len;
    int delay_ms;
};

#define MAX_SEEN  64
#define MAX_CONNS 64

struct seen {
    char head[4096];
    uint8_t *body;
    size_t body_len;
    int conn;
};

struct fake {
    int lfd;
    int port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    bool stop;
    struct answer script[16]; /* the i-th request gets script[i]; the last one repeats */
    size_t n_script;
    struct seen seen[MAX_SEEN];
    size_t n_seen;
    int conns;
    int active, max_active; /* requests being answered right now, and the most at once */
    pthread_t conn_threads[MAX_CONNS];
    int conn_fds[MAX_CONNS];
};

struct conn_arg {
    struct fake *f;
    int fd;
    int id;
};

static bool write_all(int fd, const void *p, size_t len)
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

static bool fake_stopping(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    bool s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* Read one request: head up to the blank line, then Content-Length bytes. */
static bool read_request(struct fake *f, int fd, char *head, size_t cap, uint8_t **body,
                         size_t *blen)
{
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n + 1 >= cap) {
            return false;
        }
        ssize_t got = recv(fd, head + n, 1, 0);
        if (got <= 0) {
            return false;
        }
        n++;
    }
    head[n] = '\0';
    size_t len = 0;
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    if (cl != NULL) {
        len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    }
    *body = malloc(len + 1);
    size_t have = 0;
    while (have < len) {
        ssize_t got = recv(fd, *body + have, len - have, 0);
        if (got <= 0) {
            free(*body);
            return false;
        }
        have += (size_t)got;
    }
    *blen = len;
    return true;
}

static void *conn_main(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    free(p);
    struct fake *f = a.f;
    char head[4096];
    for (;;) {
        uint8_t *body = NULL;
        size_t blen = 0;
        if (!read_request(f, a.fd, head, sizeof(head), &body, &blen)) {
            break;
        }
        pthread_mutex_lock(&f->mu);
        size_t idx = f->n_seen;
        struct answer ans = f->script[TH_MIN(idx, f->n_script - 1)];
        if (idx < MAX_SEEN) {
            snprintf(f->seen[idx].head, sizeof(f->seen[idx].head), "%s", head);
            f->seen[idx].body = body;
            f->seen[idx].body_len = blen;
            f->seen[idx].conn = a.id;
            f->n_seen++;
            body = NULL;
        }
        f->active++;
        f->max_active = TH_MAX(f->max_active, f->active);
        pthread_mutex_unlock(&f->mu);
        free(body);
        if (ans.status == 0) {
            while (!fake_stopping(f)) {
                usleep(10000);
            }
            break;
        }
        if (ans.delay_ms > 0) {
            usleep((useconds_t)ans.delay_ms * 1000);
        }
        char out[1024];
        int n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
                         ans.status, ans.body_len, ans.headers ? ans.headers : "");
        pthread_mutex_lock(&f->mu);
        f->active--;
        pthread_mutex_unlock(&f->mu);
        if (!write_all(a.fd, out, (size_t)n) ||
            (ans.body_len > 0 && !write_all(a.fd, ans.body, ans.body_len))) {
            break;
        }
    }
    return NULL;
}

static void *accept_main(void *p)
{
    struct fake *f = p;
    while (!fake_stopping(f)) {
        struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0) {
            continue;
        }
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&f->mu);
        int id = f->conns;
        if (id >= MAX_CONNS) {
            pthread_mutex_unlock(&f->mu);
            close(fd);
            continue;
        }
        f->conn_fds[id] = fd;
        f->conns++;
        pthread_mutex_unlock(&f->mu);
        struct conn_arg *a = malloc(sizeof(*a));
        *a = (struct conn_arg){.f = f, .fd = fd, .id = id};
        assert_int_equal(pthread_create(&f->conn_threads[id], NULL, conn_main, a), 0);
    }
    return NULL;
}

static void fake_start(struct fake *f, const struct answer *script, size_t n)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    memcpy(f->script, script, n * sizeof(*script));
    f->n_script = n;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    socklen_t sl = sizeof(sa);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->accept_thread, NULL, accept_main, f), 0);
}

static void fake_stop(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->accept_thread, NULL);
    for (int i = 0; i < f->conns; i++) {
        shutdown(f->conn_fds[i], SHUT_RDWR);
        pthread_join(f->conn_threads[i], NULL);
        close(f->conn_fds[i]);
    }
    close(f->lfd);
    for (size_t i = 0; i < f->n_seen; i++) {
        free(f->seen[i].body);
    }
    pthread_mutex_destroy(&f->mu);
}

/* The value of header @p name in a request head, or NULL. */
static const char *head_value(const char *head, const char *name, char *out, size_t cap)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    const char *p = strcasestr(head, pat);
    if (p == NULL) {
        return NULL;
    }
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    size_t n = strcspn(p, "\r");
    snprintf(out, cap, "%.*s", (int)n, p);
    return out;
}

/* ---- The transport on a loop on this thread ----------------------------------------------- */

struct env {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(ONCE) from blocking past the deadline checks */
    struct th_otlphttp_cfg cfg;
    th_otlphttp_transport_t *t;
    struct th_export_result results[64];
    size_t n_done;
    th_buf_t body;
};

static void on_tick(uv_timer_t *h)
{
}

static void on_done(void *arg, const struct th_export_result *r)
{
    struct env *e = arg;
    assert_true(e->n_done < TH_ARRAY_SIZE(e->results));
    e->results[e->n_done++] = *r;
}

/* The table's defaults, by hand (the component's own table is tested through YAML below). */
static void cfg_default(struct th_otlphttp_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->encoding = "proto";
    c->compression = "none";
    c->timeout = 5000000000;
    c->write_buffer_size = 524288;
    c->max_idle_conns = 100;
    c->idle_conn_timeout = 90000000000;
    c->force_attempt_http2 = true;
    c->tls.min_version = "1.2";
    c->tls.max_version = "";
}

static void env_start(struct env *e)
{
    const char *err = NULL;
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(uv_timer_init(&e->loop, &e->tick), 0);
    assert_int_equal(uv_timer_start(&e->tick, on_tick, 20, 20), 0);
    int ret = th__otlphttp_transport_create(&e->cfg, NULL, &e->t, &err);
    if (ret != 0) {
        fail_msg("create: %s", err ? err : th_strerror(ret));
    }
    assert_int_equal(th__otlphttp_transport_ops.start(e->t, &e->loop), 0);
}

static void env_wait(struct env *e, size_t n, uint64_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    while (e->n_done < n) {
        if (now_ms() > deadline) {
            fail_msg("only %zu of %zu requests finished in %llu ms", e->n_done, n,
                     (unsigned long long)timeout_ms);
        }
        uv_run(&e->loop, UV_RUN_ONCE);
    }
}

static void send_one(struct env *e, const th_buf_t *body)
{
    assert_int_equal(th__otlphttp_transport_ops.send(e->t, body->ptr, body->len, on_done, e), 0);
}

/* Stop (cancelling what is in flight), let the loop close every handle, destroy. */
static void env_stop(struct env *e)
{
    th__otlphttp_transport_ops.stop(e->t);
    th__otlphttp_transport_ops.stop(e->t); /* idempotent */
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    th__otlphttp_transport_ops.destroy(e->t);
    e->t = NULL;
    th_buf_free(&e->body);
}

static char url_buf[256];

static const char *url_of(int port, const char *path)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
    return url_buf;
}

/* ---- Pure parts ----------------------------------------------------------------------------- */

static void test_url_joining(void **state)
{
    struct th_otlphttp_cfg c;
    char *url = NULL;
    const char *err = NULL;
    cfg_default(&c);
    c.endpoint = "https://h:4318/otlp";
    assert_int_equal(th__otlphttp_traces_url(&c, &url, &err), 0);
    assert_string_equal(url, "https://h:4318/otlp/v1/traces");
    th_free(url);
    c.endpoint = "https://h:4318/otlp/";
    assert_int_equal(th__otlphttp_traces_url(&c, &url, &err), 0);
    assert_string_equal(url, "https://h:4318/otlp/v1/traces");
    th_free(url);
    c.endpoint = "http://h:4318";
    assert_int_equal(th__otlphttp_traces_url(&c, &url, &err), 0);
    assert_string_equal(url, "http://h:4318/v1/traces");
    th_free(url);
    c.traces_endpoint = "http://other:1234/custom/path";
    assert_int_equal(th__otlphttp_traces_url(&c, &url, &err), 0);
    assert_string_equal(url, "http://other:1234/custom/path");
    th_free(url);
    c.endpoint = "";
    c.traces_endpoint = "";
    c.metrics_endpoint = "http://m:4318/v1/metrics";
    assert_int_equal(th__otlphttp_traces_url(&c, &url, &err), TH_ECONFIG);
    assert_string_equal(err, "either endpoint or traces_endpoint must be specified");
}

static void check_cfg(struct th_otlphttp_cfg *c, const char *substr)
{
    const char *err = NULL;
    int ret = th__otlphttp_config_check(c, &err);
    if (substr == NULL) {
        if (ret != 0) {
            fail_msg("unexpected error: %s", err);
        }
        return;
    }
    assert_int_equal(ret, TH_ECONFIG);
    if (strstr(err, substr) == NULL) {
        fail_msg("error \"%s\" does not mention \"%s\"", err, substr);
    }
}

static void test_config_check(void **state)
{
    struct th_otlphttp_cfg c;
    cfg_default(&c);
    check_cfg(&c, "at least one endpoint must be specified");
    c.endpoint = "http://localhost:4318";
    check_cfg(&c, NULL);
    c.endpoint = "localhost:4318";
    check_cfg(&c, "endpoint: \"localhost:4318\" is not an http:// or https:// URL");
    c.endpoint = "ftp://x/";
    check_cfg(&c, "not an http:// or https:// URL");
    c.endpoint = "";
    c.traces_endpoint = "https://x:4318/v1/traces";
    check_cfg(&c, NULL);
    c.compression = "snappy";
    check_cfg(&c, "\"snappy\" is not supported by Tracehouse");
    c.compression = "lz4";
    check_cfg(&c, "not supported by Tracehouse");
    c.compression = "brotli";
    check_cfg(&c, "unsupported compression type \"brotli\"");
    c.compression = "gzip";
    c.compression_params.level = 10;
    check_cfg(&c, "compression_params::level: 10 is not valid for gzip");
    c.compression_params.level = -2;
    check_cfg(&c, NULL);
    c.compression = "zstd";
    c.compression_params.level = 19;
    check_cfg(&c, NULL);
    c.tls.cert_file = "/x.pem";
    check_cfg(&c, "needs its key");
    c.tls.key_file = "/k.pem";
    check_cfg(&c, NULL);
    const char *curves[] = {"X25519", "P-256"};
    c.tls.curve_preferences = (th_strlist_t){curves, 2};
    check_cfg(&c, "unknown curve \"P-256\"");
}

static void test_retry_after(void **state)
{
    int64_t ns = 0;
    time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(th__otlphttp_parse_retry_after("7", now, &ns), 0);
    assert_true(ns == 7000000000);
    assert_int_equal(th__otlphttp_parse_retry_after(" 0 ", now, &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(th__otlphttp_parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now, &ns), 0);
    assert_true(ns == 30000000000);
    assert_int_equal(th__otlphttp_parse_retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", now, &ns),
                     0);
    assert_true(ns == 60000000000);
    assert_int_equal(th__otlphttp_parse_retry_after("Tue Nov 14 22:13:25 2023", now, &ns), 0);
    assert_true(ns == 5000000000);
    /* In the past: now. */
    assert_int_equal(th__otlphttp_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now, &ns), 0);
    assert_true(ns == 0);
    assert_int_equal(th__otlphttp_parse_retry_after("soon", now, &ns), TH_EINVAL);
    assert_int_equal(th__otlphttp_parse_retry_after("-5", now, &ns), TH_EINVAL);
    assert_int_equal(th__otlphttp_parse_retry_after("", now, &ns), TH_EINVAL);
    assert_int_equal(th__otlphttp_parse_retry_after("1.5", now, &ns), TH_EINVAL);
}

/* Packed bodies for the scripted server. */
static size_t pack_status(const char *msg, uint8_t *out)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = 3;
    st.message = (char *)msg;
    return google__rpc__status__pack(&st, out);
}

static size_t pack_partial(int64_t rejected, const char *msg, uint8_t *out)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    ps.rejected_spans = rejected;
    ps.error_message = (char *)msg;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse r =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    r.partial_success = &ps;
    return opentelemetry__proto__collector__trace__v1__export_trace_service_response__pack(&r, out);
}

static void classify(long status, const char *ct, const void *body, size_t len,
                     const char *retry_after, struct th_export_result *r)
{
    struct th_otlphttp_response resp = {
        .url = "http://h/v1/traces",
        .status = status,
        .content_type = ct,
        .retry_after = retry_after,
        .body = body,
        .body_len = len,
        .now = 1700000000,
    };
    th__otlphttp_classify(&resp, r);
}

static void test_classify(void **state)
{
    struct th_export_result r;
    uint8_t buf[256];
    classify(200, NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.retry_after_ns == -1);
    /* The Go Collector's "empty partial success" is success with nothing to report. */
    classify(200, "application/x-protobuf", "\x0a\x00", 2, NULL, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.rejected_spans, 0);
    assert_string_equal(r.message, "");
    classify(200, "application/json", "{\"partialSuccess\":{}}", 21, NULL, &r);
    assert_int_equal(r.err, 0);
    size_t n = pack_partial(3, "three spans too old", buf);
    classify(200, "application/x-protobuf", buf, n, NULL, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.rejected_spans, 3);
    assert_non_null(strstr(r.message, "3 spans rejected: three spans too old"));
    const char *js = "{\"partialSuccess\":{\"rejectedSpans\":\"5\",\"errorMessage\":\"x\\ty\"},"
                     "\"other\":[1,{\"a\":null}]}";
    classify(202, "application/json; charset=utf-8", js, strlen(js), NULL, &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.rejected_spans, 5);
    assert_non_null(strstr(r.message, "5 spans rejected: x y"));
    /* A 2xx body that does not parse is permanent. */
    classify(200, "application/x-protobuf", "\xff\xff\xff", 3, NULL, &r);
    assert_int_equal(r.err, TH_EPERM);
    assert_non_null(strstr(r.message, "not an ExportTraceServiceResponse"));
    classify(200, "application/json", "{\"partialSuccess\":", 18, NULL, &r);
    assert_int_equal(r.err, TH_EPERM);
    /* A 2xx with a body of another type is not parsed. */
    classify(200, "text/plain", "ok", 2, NULL, &r);
    assert_int_equal(r.err, 0);
    /* Retryable statuses, with and without Retry-After. */
    long retryable[] = {429, 502, 503, 504};
    for (size_t i = 0; i < TH_ARRAY_SIZE(retryable); i++) {
        classify(retryable[i], NULL, NULL, 0, "3", &r);
        assert_int_equal(r.err, TH_ERETRY);
        assert_true(r.retry_after_ns == 3000000000);
        classify(retryable[i], NULL, NULL, 0, NULL, &r);
        assert_int_equal(r.err, TH_ERETRY);
        assert_true(r.retry_after_ns == -1);
    }
    classify(503, NULL, NULL, 0, "Tue, 14 Nov 2023 22:13:30 GMT", &r);
    assert_true(r.retry_after_ns == 10000000000);
    classify(503, NULL, NULL, 0, "garbage", &r);
    assert_int_equal(r.err, TH_ERETRY);
    assert_true(r.retry_after_ns == -1);
    classify(413, NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.err, TH_E2BIG);
    /* Everything else is permanent, explained by the Status in the body. */
    n = pack_status("span_id: must be 8 bytes", buf);
    classify(400, "application/x-protobuf", buf, n, NULL, &r);
    assert_int_equal(r.err, TH_EPERM);
    assert_string_equal(r.message,
                        "HTTP 400 Bad Request from http://h/v1/traces: span_id: must be 8 bytes");
    js = "{\"code\":3,\"message\":\"bad \\\"json\\\"\",\"details\":[]}";
    classify(400, "application/json", js, strlen(js), NULL, &r);
    assert_string_equal(r.message, "HTTP 400 Bad Request from http://h/v1/traces: bad \"json\"");
    classify(401, "text/plain", "token expired\n", 14, "5", &r);
    assert_int_equal(r.err, TH_EPERM);
    assert_string_equal(r.message, "HTTP 401 Unauthorized from http://h/v1/traces: token expired ");
    classify(500, NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.err, TH_EPERM);
    classify(301, NULL, NULL, 0, NULL, &r);
    assert_int_equal(r.err, TH_EPERM);
    /* No response at all: retried. */
    struct th_otlphttp_response resp = {.url = "http://h/v1/traces",
                                        .curl_code = 7,
                                        .curl_error = "Failed to connect to h port 80"};
    th__otlphttp_classify(&resp, &r);
    assert_int_equal(r.err, TH_ERETRY);
    assert_string_equal(r.message,
                        "POST http://h/v1/traces failed: Failed to connect to h port 80");
}

/* ---- Against the real OTLP receiver --------------------------------------------------------- */

struct capture {
    struct th_consumer consumer;
    pthread_mutex_t mu;
    size_t calls, spans;
    char first_name[64];
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->spans += b->span_count;
    const th_otlp_request_t *req = b->req;
    if (req->n_resource_spans && req->resource_spans[0]->n_scope_spans &&
        req->resource_spans[0]->scope_spans[0]->n_spans) {
        snprintf(c->first_name, sizeof(c->first_name), "%s",
                 req->resource_spans[0]->scope_spans[0]->spans[0]->name);
    }
    pthread_mutex_unlock(&c->mu);
    th_batch_release(b);
    return 0;
}

struct receiver {
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

static void *receiver_main(void *arg)
{
    struct receiver *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void on_receiver_stop(uv_async_t *a)
{
    struct receiver *s = a->data;
    th_component_destroy(s->c);
    s->c = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

static void receiver_start(struct receiver *s)
{
    memset(s, 0, sizeof(*s));
    s->cfg.protocols.http_enabled = true;
    th_otlp_http_cfg_default(&s->cfg.protocols.http);
    s->cfg.protocols.http.endpoint = "127.0.0.1:0";
    s->cap.consumer.consume = capture_consume;
    pthread_mutex_init(&s->cap.mu, NULL);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop, on_receiver_stop), 0);
    s->stop.data = s;
    s->host = (struct th_host){.loop = &s->loop, .get_extension = no_ext, .report_fatal = no_fatal};
    assert_int_equal(
        th_component_create(&th_receiver_otlp_ops, "otlp", &s->cfg, &s->cap.consumer, &s->c), 0);
    s->c->host = &s->host;
    assert_int_equal(s->c->ops->start(s->c, &s->host), 0);
    s->c->started = true;
    s->port = th_otlp_receiver_http_port(s->c);
    assert_true(s->port > 0);
    assert_int_equal(pthread_create(&s->thread, NULL, receiver_main, s), 0);
}

static void receiver_stop(struct receiver *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    pthread_mutex_destroy(&s->cap.mu);
}

/* Every encoding and compression the exporter speaks, into the real receiver. */
static void test_real_receiver(void **state)
{
    static const struct {
        const char *encoding, *compression;
        int64_t level;
    } cases[] = {
        {"proto", "none", 0}, {"proto", "gzip", 0},     {"proto", "zstd", 0},
        {"proto", "zlib", 9}, {"proto", "deflate", -2}, {"json", "none", 0},
        {"json", "gzip", 1},  {"json", "zstd", 5},      {"proto", "", 0},
    };
    struct receiver rcv;
    receiver_start(&rcv);
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        struct env *e = calloc(1, sizeof(*e));
        cfg_default(&e->cfg);
        e->cfg.endpoint = url_of(rcv.port, "");
        e->cfg.encoding = cases[i].encoding;
        e->cfg.compression = cases[i].compression;
        e->cfg.compression_params.level = cases[i].level;
        env_start(e);
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "%s-%s", cases[i].encoding, cases[i].compression);
        make_request(25, prefix, &e->body);
        size_t before = rcv.cap.spans;
        send_one(e, &e->body);
        send_one(e, &e->body);
        env_wait(e, 2, 10000);
        for (size_t k = 0; k < 2; k++) {
            if (e->results[k].err != 0) {
                fail_msg("%s/%s: %s (%s)", cases[i].encoding, cases[i].compression,
                         th_strerror(e->results[k].err), e->results[k].message);
            }
            assert_int_equal(e->results[k].rejected_spans, 0);
        }
        pthread_mutex_lock(&rcv.cap.mu);
        assert_int_equal(rcv.cap.spans - before, 50);
        char want[80];
        snprintf(want, sizeof(want), "%s-0", prefix);
        assert_string_equal(rcv.cap.first_name, want);
        pthread_mutex_unlock(&rcv.cap.mu);
        env_stop(e);
        free(e);
    }
    /* The receiver refuses a request with bad ids: 400 with its Status message, permanent. */
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(rcv.port, "/");
    env_start(e);
    make_request_ex(1, "bad", 7, &e->body); /* a 7-byte span id: the receiver refuses it */
    send_one(e, &e->body);
    env_wait(e, 1, 10000);
    if (e->results[0].err != TH_EPERM) {
        fail_msg("expected a permanent error, got %s: %s", th_strerror(e->results[0].err),
                 e->results[0].message);
    }
    assert_non_null(strstr(e->results[0].message, "HTTP 400 Bad Request from http://127.0.0.1:"));
    env_stop(e);
    free(e);
    receiver_stop(&rcv);
}

/* ---- Against the scripted server ------------------------------------------------------------ */

static void test_statuses(void **state)
{
    uint8_t status_pb[128], partial_pb[128];
    size_t status_len = pack_status("too many attributes", status_pb);
    size_t partial_len = pack_partial(2, "2 spans refused", partial_pb);
    const char *json_status = "{\"code\":3,\"message\":\"bad json thing\"}";
    char date[64], date_hdr[96];
    time_t later = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(date_hdr, sizeof(date_hdr), "Retry-After: %s\r\n", date);
    const struct answer script[] = {
        {.status = 429, .headers = "Retry-After: 7\r\n"},
        {.status = 503, .headers = date_hdr},
        {.status = 502},
        {.status = 504, .headers = "Retry-After: 0\r\n"},
        {.status = 413},
        {.status = 400,
         .headers = "Content-Type: application/x-protobuf\r\n",
         .body = status_pb,
         .body_len = status_len},
        {.status = 400,
         .headers = "Content-Type: application/json\r\n",
         .body = json_status,
         .body_len = strlen(json_status)},
        {.status = 200,
         .headers = "Content-Type: application/x-protobuf\r\n",
         .body = "\x0a\x05\xff",
         .body_len = 3},
        {.status = 200,
         .headers = "Content-Type: application/x-protobuf\r\n",
         .body = partial_pb,
         .body_len = partial_len},
        {.status = 404, .headers = "Content-Type: text/plain\r\n", .body = "nope", .body_len = 4},
        {.status = 200},
    };
    struct fake f;
    fake_start(&f, script, TH_ARRAY_SIZE(script));
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(f.port, "");
    env_start(e);
    make_request(3, "st", &e->body);
    /* One at a time, so the i-th answer goes to the i-th request. */
    for (size_t i = 0; i < TH_ARRAY_SIZE(script); i++) {
        send_one(e, &e->body);
        env_wait(e, i + 1, 10000);
    }
    struct th_export_result *r = e->results;
    assert_int_equal(r[0].err, TH_ERETRY);
    assert_true(r[0].retry_after_ns == 7000000000);
    assert_non_null(strstr(r[0].message, "HTTP 429 Too Many Requests from http://127.0.0.1:"));
    assert_int_equal(r[1].err, TH_ERETRY);
    assert_true(r[1].retry_after_ns >= 28000000000 && r[1].retry_after_ns <= 30000000000);
    assert_int_equal(r[2].err, TH_ERETRY);
    assert_true(r[2].retry_after_ns == -1);
    assert_int_equal(r[3].err, TH_ERETRY);
    assert_true(r[3].retry_after_ns == 0);
    assert_int_equal(r[4].err, TH_E2BIG);
    assert_int_equal(r[5].err, TH_EPERM);
    assert_non_null(strstr(r[5].message, "HTTP 400 Bad Request from "));
    assert_non_null(strstr(r[5].message, "/v1/traces: too many attributes"));
    assert_int_equal(r[6].err, TH_EPERM);
    assert_non_null(strstr(r[6].message, ": bad json thing"));
    assert_int_equal(r[7].err, TH_EPERM);
    assert_non_null(strstr(r[7].message, "not an ExportTraceServiceResponse"));
    assert_int_equal(r[8].err, 0);
    assert_int_equal(r[8].rejected_spans, 2);
    assert_non_null(strstr(r[8].message, "2 spans rejected: 2 spans refused"));
    assert_int_equal(r[9].err, TH_EPERM);
    assert_non_null(strstr(r[9].message, "HTTP 404 Not Found from "));
    assert_non_null(strstr(r[9].message, ": nope"));
    assert_int_equal(r[10].err, 0);
    /* All of it on one kept-alive connection. */
    struct th_otlphttp_transport_stats st;
    th__otlphttp_transport_stats(e->t, &st);
    assert_int_equal(f.conns, 1);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.requests, TH_ARRAY_SIZE(script));
    assert_int_equal(st.completed, TH_ARRAY_SIZE(script));
    env_stop(e);
    free(e);
    fake_stop(&f);
}

/* What goes over the wire: path, method, headers (ours and the user's), bodies. */
static void test_request_shape(void **state)
{
    static const struct {
        const char *encoding, *compression, *content_encoding;
    } cases[] = {
        {"proto", "none", NULL},         {"proto", "gzip", "gzip"}, {"proto", "zstd", "zstd"},
        {"json", "none", NULL},          {"json", "gzip", "gzip"},  {"proto", "zlib", "zlib"},
        {"proto", "deflate", "deflate"},
    };
    const struct answer ok = {.status = 200};
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        struct fake f;
        fake_start(&f, &ok, 1);
        struct env *e = calloc(1, sizeof(*e));
        cfg_default(&e->cfg);
        e->cfg.endpoint = url_of(f.port, "/otlp/");
        e->cfg.encoding = cases[i].encoding;
        e->cfg.compression = cases[i].compression;
        const char *keys[] = {"Authorization", "X-Tenant", "X-Empty"};
        const char *vals[] = {"Bearer s3cret", "blue", ""};
        e->cfg.headers = (th_strmap_t){keys, vals, 3};
        env_start(e);
        make_request(7, "shape", &e->body);
        send_one(e, &e->body);
        env_wait(e, 1, 10000);
        assert_int_equal(e->results[0].err, 0);
        assert_int_equal(f.n_seen, 1);
        const struct seen *s = &f.seen[0];
        char v[256];
        assert_true(strncmp(s->head, "POST /otlp/v1/traces HTTP/1.1\r\n", 31) == 0);
        assert_string_equal(head_value(s->head, "Content-Type", v, sizeof(v)),
                            strcmp(cases[i].encoding, "json") == 0 ? "application/json"
                                                                   : "application/x-protobuf");
        assert_non_null(head_value(s->head, "User-Agent", v, sizeof(v)));
        assert_true(strncmp(v, "tracehouse/" TH_VERSION " (linux/",
                            strlen("tracehouse/" TH_VERSION " (linux/")) == 0);
        assert_string_equal(head_value(s->head, "Authorization", v, sizeof(v)), "Bearer s3cret");
        assert_string_equal(head_value(s->head, "X-Tenant", v, sizeof(v)), "blue");
        assert_non_null(head_value(s->head, "X-Empty", v, sizeof(v)));
        assert_string_equal(v, "");
        assert_null(head_value(s->head, "Expect", v, sizeof(v)));
        const char *ce = head_value(s->head, "Content-Encoding", v, sizeof(v));
        if (cases[i].content_encoding == NULL) {
            assert_null(ce);
        } else {
            assert_non_null(ce);
            assert_string_equal(ce, cases[i].content_encoding);
        }
        /* Undo the compression independently and decode the body. */
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        if (cases[i].content_encoding == NULL) {
            plain = malloc(s->body_len + 1);
            memcpy(plain, s->body, s->body_len);
            plain_len = s->body_len;
        } else if (strcmp(cases[i].content_encoding, "zstd") == 0) {
            unsigned long long sz = ZSTD_getFrameContentSize(s->body, s->body_len);
            assert_true(sz != ZSTD_CONTENTSIZE_ERROR && sz != ZSTD_CONTENTSIZE_UNKNOWN);
            plain = malloc(sz + 1);
            plain_len = ZSTD_decompress(plain, sz, s->body, s->body_len);
            assert_false(ZSTD_isError(plain_len));
        } else {
            z_stream zs;
            memset(&zs, 0, sizeof(zs));
            bool gz = strcmp(cases[i].content_encoding, "gzip") == 0;
            assert_int_equal(inflateInit2(&zs, gz ? 31 : 15), Z_OK);
            plain = malloc(1 << 20);
            zs.next_in = s->body;
            zs.avail_in = (uInt)s->body_len;
            zs.next_out = plain;
            zs.avail_out = 1 << 20;
            assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
            plain_len = zs.total_out;
            inflateEnd(&zs);
        }
        bool json = strcmp(cases[i].encoding, "json") == 0;
        if (!json) {
            /* Protobuf goes out byte for byte as the helper handed it over. */
            assert_int_equal(plain_len, e->body.len);
            assert_memory_equal(plain, e->body.ptr, plain_len);
        } else {
            assert_true(plain_len > 0 && plain[0] == '{');
        }
        char name[64];
        assert_int_equal(decode_spans(plain, plain_len, json, name, sizeof(name)), 7);
        assert_string_equal(name, "shape-0");
        free(plain);
        env_stop(e);
        free(e);
        fake_stop(&f);
    }
}

/* A user header wins over ours (Content-Type here), as in the Collector. */
static void test_header_override(void **state)
{
    const struct answer ok = {.status = 200};
    struct fake f;
    fake_start(&f, &ok, 1);
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.traces_endpoint = url_of(f.port, "/exact/path");
    const char *keys[] = {"content-type", "User-Agent"};
    const char *vals[] = {"application/vnd.custom", "mine/1.0"};
    e->cfg.headers = (th_strmap_t){keys, vals, 2};
    env_start(e);
    make_request(1, "o", &e->body);
    send_one(e, &e->body);
    env_wait(e, 1, 10000);
    assert_int_equal(e->results[0].err, 0);
    char v[128];
    assert_true(strncmp(f.seen[0].head, "POST /exact/path HTTP/1.1\r\n", 27) == 0);
    assert_string_equal(head_value(f.seen[0].head, "Content-Type", v, sizeof(v)),
                        "application/vnd.custom");
    assert_null(strstr(f.seen[0].head, "application/x-protobuf"));
    assert_string_equal(head_value(f.seen[0].head, "User-Agent", v, sizeof(v)), "mine/1.0");
    env_stop(e);
    free(e);
    fake_stop(&f);
    /* A header value with a line break is refused when the transport is made. */
    struct th_otlphttp_cfg c;
    cfg_default(&c);
    c.endpoint = "http://127.0.0.1:1";
    const char *bk[] = {"X-A"};
    const char *bv[] = {"a\r\nX-Injected: 1"};
    c.headers = (th_strmap_t){bk, bv, 1};
    th_otlphttp_transport_t *t = NULL;
    const char *err = NULL;
    assert_int_equal(th__otlphttp_transport_create(&c, NULL, &t, &err), TH_ECONFIG);
    assert_non_null(strstr(err, "X-A"));
}

static void test_keepalive_and_not(void **state)
{
    const struct answer ok = {.status = 200};
    for (int disable = 0; disable <= 1; disable++) {
        struct fake f;
        fake_start(&f, &ok, 1);
        struct env *e = calloc(1, sizeof(*e));
        cfg_default(&e->cfg);
        e->cfg.endpoint = url_of(f.port, "");
        e->cfg.disable_keep_alives = disable;
        env_start(e);
        make_request(2, "ka", &e->body);
        for (size_t i = 0; i < 20; i++) {
            send_one(e, &e->body);
            env_wait(e, i + 1, 10000);
            assert_int_equal(e->results[i].err, 0);
        }
        struct th_otlphttp_transport_stats st;
        th__otlphttp_transport_stats(e->t, &st);
        assert_int_equal(f.n_seen, 20);
        assert_int_equal(f.conns, disable ? 20 : 1);
        assert_int_equal(st.connections, disable ? 20 : 1);
        assert_int_equal(st.easy_handles, 1); /* one at a time: one handle, reused */
        env_stop(e);
        free(e);
        fake_stop(&f);
    }
}

static void test_parallel(void **state)
{
    const struct answer slow = {.status = 200, .delay_ms = 300};
    /* No per-host limit: 8 requests at once, 8 connections, done in about one delay. */
    struct fake f;
    fake_start(&f, &slow, 1);
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(f.port, "");
    env_start(e);
    make_request(4, "par", &e->body);
    uint64_t t0 = now_ms();
    for (int i = 0; i < 8; i++) {
        send_one(e, &e->body);
    }
    env_wait(e, 8, 10000);
    uint64_t took = now_ms() - t0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(e->results[i].err, 0);
    }
    assert_int_equal(f.max_active, 8);
    assert_true(took < 8 * 300 / 2);
    struct th_otlphttp_transport_stats st;
    th__otlphttp_transport_stats(e->t, &st);
    assert_int_equal(st.max_in_flight, 8);
    assert_int_equal(st.easy_handles, 8);
    /* The next round reuses the 8 connections and the 8 handles. */
    for (int i = 0; i < 8; i++) {
        send_one(e, &e->body);
    }
    env_wait(e, 16, 10000);
    th__otlphttp_transport_stats(e->t, &st);
    assert_int_equal(f.conns, 8);
    assert_int_equal(st.connections, 8);
    assert_int_equal(st.easy_handles, 8);
    env_stop(e);
    free(e);
    fake_stop(&f);

    /* max_conns_per_host: 2 connections, the other requests wait for one. */
    fake_start(&f, &slow, 1);
    e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(f.port, "");
    e->cfg.max_conns_per_host = 2;
    env_start(e);
    make_request(4, "lim", &e->body);
    for (int i = 0; i < 6; i++) {
        send_one(e, &e->body);
    }
    env_wait(e, 6, 10000);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(e->results[i].err, 0);
    }
    assert_int_equal(f.max_active, 2);
    assert_int_equal(f.conns, 2);
    env_stop(e);
    free(e);
    fake_stop(&f);
}

static void test_timeout_refused_and_stop(void **state)
{
    /* A server that never answers: the per-attempt timeout makes it retryable. */
    const struct answer hang = {.status = 0};
    struct fake f;
    fake_start(&f, &hang, 1);
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(f.port, "");
    e->cfg.timeout = 300000000;
    env_start(e);
    make_request(1, "hang", &e->body);
    uint64_t t0 = now_ms();
    send_one(e, &e->body);
    env_wait(e, 1, 5000);
    uint64_t took = now_ms() - t0;
    assert_int_equal(e->results[0].err, TH_ERETRY);
    assert_non_null(strstr(e->results[0].message, "timed out"));
    assert_true(took >= 290 && took < 2000);

    /* Stop with two requests in flight: each done gets TH_ESHUTDOWN, from stop. */
    send_one(e, &e->body);
    send_one(e, &e->body);
    uint64_t until = now_ms() + 100;
    while (now_ms() < until) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(e->n_done, 1);
    th__otlphttp_transport_ops.stop(e->t);
    assert_int_equal(e->n_done, 3);
    assert_int_equal(e->results[1].err, TH_ESHUTDOWN);
    assert_int_equal(e->results[2].err, TH_ESHUTDOWN);
    /* After stop, send refuses (and never calls done). */
    assert_int_equal(th__otlphttp_transport_ops.send(e->t, e->body.ptr, e->body.len, on_done, e),
                     TH_ESHUTDOWN);
    env_stop(e);
    assert_int_equal(e->n_done, 3);
    free(e);
    fake_stop(&f);

    /* Nobody listening: connection refused, retryable, with curl's reason. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    int port = ntohs(sa.sin_port);
    close(fd);
    e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(port, "");
    env_start(e);
    make_request(1, "refused", &e->body);
    send_one(e, &e->body);
    env_wait(e, 1, 5000);
    assert_int_equal(e->results[0].err, TH_ERETRY);
    assert_non_null(strstr(e->results[0].message, "POST http://127.0.0.1:"));
    assert_non_null(strstr(e->results[0].message, "failed: "));
    env_stop(e);
    free(e);
}

/* The send contract: done is never called from inside send, even for an instant failure. */
struct reentry {
    struct env *e;
    bool in_send;
    bool called_inside;
};

static void on_done_reentry(void *arg, const struct th_export_result *r)
{
    struct reentry *re = arg;
    if (re->in_send) {
        re->called_inside = true;
    }
    on_done(re->e, r);
}

static void test_done_never_inside_send(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = "http://127.0.0.1:1"; /* refused at once */
    env_start(e);
    make_request(1, "x", &e->body);
    struct reentry re = {.e = e};
    re.in_send = true;
    assert_int_equal(
        th__otlphttp_transport_ops.send(e->t, e->body.ptr, e->body.len, on_done_reentry, &re), 0);
    re.in_send = false;
    env_wait(e, 1, 5000);
    assert_false(re.called_inside);
    assert_int_equal(e->results[0].err, TH_ERETRY);
    env_stop(e);
    free(e);
}

/* ---- The component: config table through YAML, then the helper driving the transport ---- */

/* Decode @p yaml with the component's table into @p cfg; @return th_cfg_decode's result, or
 * the config_check's (message in @p err). */
static int decode_cfg(const char *yaml, th_arena_t *a, struct th_otlphttp_cfg *cfg, char *err,
                      size_t errlen)
{
    th_node_t *root = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "test", a, &root, err, errlen), 0);
    int ret = th_cfg_decode(th_exporter_otlp_http_ops.config, root, cfg, a, "exporters::otlp_http",
                            err, errlen);
    if (ret != 0) {
        return ret;
    }
    const char *msg = NULL;
    ret = th_exporter_otlp_http_ops.config_check(cfg, &msg);
    if (ret != 0) {
        snprintf(err, errlen, "%s", msg);
    }
    return ret;
}

static void test_config_table(void **state)
{
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "otlp_http"), &th_exporter_otlp_http_ops);
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "otlphttp"), &th_exporter_otlp_http_ops);
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlphttp_cfg cfg;
    char err[256];
    /* Defaults, as the Collector's. */
    assert_int_equal(decode_cfg("endpoint: http://h:4318\n", a, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.encoding, "proto");
    assert_string_equal(cfg.compression, "gzip");
    assert_true(cfg.timeout == 30000000000);
    assert_true(cfg.write_buffer_size == 524288);
    assert_true(cfg.max_idle_conns == 100);
    assert_true(cfg.idle_conn_timeout == 90000000000);
    assert_true(cfg.force_attempt_http2);
    assert_false(cfg.disable_keep_alives);
    assert_false(cfg.cookies_enabled);
    assert_string_equal(cfg.tls.min_version, "1.2");
    assert_true(cfg.retry.enabled);
    assert_true(cfg.retry.initial_interval_ns == 5000000000);
    assert_true(cfg.queue.enabled); /* Some by default */
    assert_true(cfg.queue.num_consumers == 10);
    /* Every key the brief lists. */
    const char *full = "endpoint: https://collector.example:4318/otlp/\n"
                       "traces_endpoint: https://other.example/v1/traces\n"
                       "encoding: json\n"
                       "compression: zstd\n"
                       "compression_params: {level: 7}\n"
                       "headers: {Authorization: Bearer x, X-Scope: a}\n"
                       "timeout: 10s\n"
                       "tls:\n"
                       "  ca_file: /etc/ca.pem\n"
                       "  cert_file: /etc/c.pem\n"
                       "  key_file: /etc/k.pem\n"
                       "  insecure: false\n"
                       "  insecure_skip_verify: true\n"
                       "  server_name_override: backend.internal\n"
                       "  min_version: \"1.3\"\n"
                       "proxy_url: http://proxy:3128\n"
                       "read_buffer_size: 65536\n"
                       "write_buffer_size: 1MiB\n"
                       "max_idle_conns: 10\n"
                       "max_idle_conns_per_host: 5\n"
                       "max_conns_per_host: 4\n"
                       "idle_conn_timeout: 30s\n"
                       "disable_keep_alives: true\n"
                       "force_attempt_http2: false\n"
                       "http2_read_idle_timeout: 10s\n"
                       "http2_ping_timeout: 5s\n"
                       "cookies: {}\n"
                       "retry_on_failure: {initial_interval: 1s, max_interval: 2s}\n"
                       "sending_queue: {num_consumers: 3, queue_size: 50}\n";
    int ret = decode_cfg(full, a, &cfg, err, sizeof(err));
    if (ret != 0) {
        fail_msg("%s", err);
    }
    assert_string_equal(cfg.encoding, "json");
    assert_true(cfg.compression_params.level == 7);
    assert_int_equal(cfg.headers.n, 2);
    assert_string_equal(cfg.tls.server_name_override, "backend.internal");
    assert_true(cfg.write_buffer_size == 1048576);
    assert_true(cfg.cookies_enabled);
    assert_true(cfg.queue.enabled && cfg.queue.num_consumers == 3);
    assert_true(cfg.retry.initial_interval_ns == 1000000000);
    /* The transport takes it (URL joining, headers, curves). */
    th_otlphttp_transport_t *t = NULL;
    const char *msg = NULL;
    assert_int_equal(th__otlphttp_transport_create(&cfg, NULL, &t, &msg), 0);
    assert_string_equal(th__otlphttp_transport_url(t), "https://other.example/v1/traces");
    th__otlphttp_transport_ops.destroy(t);
    /* Errors, with messages a person can act on. */
    assert_int_equal(decode_cfg("compression: gzip\n", a, &cfg, err, sizeof(err)), TH_ECONFIG);
    assert_string_equal(err, "at least one endpoint must be specified");
    assert_int_equal(decode_cfg("endpoint: http://h\nencoding: xml\n", a, &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "encoding"));
    assert_int_equal(
        decode_cfg("endpoint: http://h\ncompression: snappy\n", a, &cfg, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "not supported by Tracehouse"));
    assert_int_equal(decode_cfg("endpoint: http://h\ntimeout: -1s\n", a, &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_int_equal(decode_cfg("endpoint: http://h\nsending_queue: {num_consumers: 0}\n", a, &cfg,
                                err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "num_consumers"));
    /* auth::authenticator is resolved at start; only its shape is checked here */
    assert_int_equal(decode_cfg("endpoint: http://h\nauth: {authenticator: basicauth}\n", a, &cfg,
                                err, sizeof(err)),
                     0);
    assert_int_equal(
        decode_cfg("endpoint: http://h\nauth: [basicauth]\n", a, &cfg, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "authenticator"));
    assert_int_equal(decode_cfg("endpoint: http://h\nnope: 1\n", a, &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "nope"));
    /* sending_queue: {enabled: false} turns the queue off. */
    assert_int_equal(decode_cfg("endpoint: http://h\nsending_queue: {enabled: false}\n", a, &cfg,
                                err, sizeof(err)),
                     0);
    assert_false(cfg.queue.enabled);
    th_arena_destroy(a);
}

static struct th_component *no_ext2(struct th_host *h, const char *id)
{
    return NULL;
}

static void no_fatal2(struct th_host *h, struct th_component *c, int err)
{
    abort();
}

/* A batch of @p n spans, as a receiver makes it. */
static th_batch_t *make_batch(size_t n, const char *prefix)
{
    th_buf_t pb = {0};
    make_request(n, prefix, &pb);
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = NULL;
    assert_int_equal(th_otlp_decode_pb(pb.ptr, pb.len, NULL, a, &req, NULL), 0);
    th_buf_free(&pb);
    th_batch_t *b = th_batch_create(a, req);
    assert_non_null(b);
    return b;
}

/* The whole exporter in-process: YAML → component → helper thread → transport → server,
 * including a 503 with Retry-After that the helper honours before the retry succeeds. */
static void test_component_end_to_end(void **state)
{
    const struct answer script[] = {
        {.status = 503, .headers = "Retry-After: 1\r\n"},
        {.status = 200},
    };
    struct fake f;
    fake_start(&f, script, 2);
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlphttp_cfg cfg;
    char yaml[512], err[256];
    snprintf(
        yaml, sizeof(yaml),
        "endpoint: http://127.0.0.1:%d/base\n"
        "compression: zstd\n"
        "headers: {X-Edge: e1}\n"
        "retry_on_failure: {initial_interval: 50ms, max_interval: 100ms, randomization_factor: 0}\n"
        "sending_queue: {num_consumers: 2}\n",
        f.port);
    int ret = decode_cfg(yaml, a, &cfg, err, sizeof(err));
    if (ret != 0) {
        fail_msg("%s", err);
    }
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct th_host host = {.loop = &loop, .get_extension = no_ext2, .report_fatal = no_fatal2};
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_exporter_otlp_http_ops, "otlp_http/edge", &cfg, NULL, &c), 0);
    assert_int_equal(c->ops->start(c, &host), 0);
    c->started = true;
    uint64_t t0 = now_ms();
    ret = c->ops->consume_traces(c, make_batch(5, "comp"));
    assert_true(ret == 0 || ret == TH_HELD);
    uint64_t deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&f.mu);
        size_t n = f.n_seen;
        pthread_mutex_unlock(&f.mu);
        if (n >= 2) {
            break;
        }
        assert_true(now_ms() < deadline);
        usleep(10000);
    }
    uint64_t took = now_ms() - t0;
    /* The retry waited for Retry-After (1 s), not the 50 ms backoff. */
    assert_true(took >= 900);
    assert_int_equal(c->ops->shutdown(c), 0);
    c->shut_down = true;
    th_component_destroy(c);
    assert_int_equal(uv_loop_close(&loop), 0);
    char v[64];
    for (int i = 0; i < 2; i++) {
        assert_true(strncmp(f.seen[i].head, "POST /base/v1/traces HTTP/1.1\r\n", 31) == 0);
        assert_string_equal(head_value(f.seen[i].head, "X-Edge", v, sizeof(v)), "e1");
        assert_string_equal(head_value(f.seen[i].head, "Content-Encoding", v, sizeof(v)), "zstd");
    }
    uint8_t plain[4096];
    size_t pl = ZSTD_decompress(plain, sizeof(plain), f.seen[1].body, f.seen[1].body_len);
    assert_false(ZSTD_isError(pl));
    char name[64];
    assert_int_equal(decode_spans(plain, pl, false, name, sizeof(name)), 5);
    assert_string_equal(name, "comp-0");
    fake_stop(&f);
    th_arena_destroy(a);
}

/* ---- Allocation failure (rule 23): create and the send path fail cleanly, then work ---- */

static long alloc_budget = -1; /* allocations left before failing; -1: never fail */

static void *fail_malloc(size_t n)
{
    if (alloc_budget == 0) {
        return NULL;
    }
    if (alloc_budget > 0) {
        alloc_budget--;
    }
    return malloc(n);
}

static void *fail_calloc(size_t n, size_t size)
{
    if (alloc_budget == 0) {
        return NULL;
    }
    if (alloc_budget > 0) {
        alloc_budget--;
    }
    return calloc(n, size);
}

static void *fail_realloc(void *p, size_t n)
{
    if (alloc_budget == 0) {
        return NULL;
    }
    if (alloc_budget > 0) {
        alloc_budget--;
    }
    return realloc(p, n);
}

static const struct th_mem_methods failing = {fail_malloc, fail_calloc, fail_realloc, free};

static void test_oom(void **state)
{
    struct th_otlphttp_cfg c;
    cfg_default(&c);
    c.endpoint = "https://127.0.0.1:1/otlp";
    c.encoding = "json";
    c.compression = "gzip";
    const char *keys[] = {"X-A", "X-B"};
    const char *vals[] = {"1", ""};
    c.headers = (th_strmap_t){keys, vals, 2};
    c.tls.server_name_override = "backend.internal";
    const char *curves[] = {"X25519", "P256"};
    c.tls.curve_preferences = (th_strlist_t){curves, 2};
    int ret = TH_ENOMEM;
    long n;
    for (n = 0; ret == TH_ENOMEM && n < 1000; n++) {
        th_otlphttp_transport_t *t = NULL;
        const char *err = NULL;
        alloc_budget = n;
        th_mem_set_methods(&failing);
        ret = th__otlphttp_transport_create(&c, NULL, &t, &err);
        th_mem_set_methods(NULL);
        alloc_budget = -1;
        if (ret == 0) {
            th__otlphttp_transport_ops.destroy(t);
        } else {
            assert_int_equal(ret, TH_ENOMEM);
        }
    }
    assert_int_equal(ret, 0);
    assert_true(n > 3);
    /* The send path (JSON re-encoding, compression, a new easy handle): TH_ENOMEM from send
     * (and no done), or a request that completes. */
    const struct answer ok = {.status = 200};
    struct fake f;
    fake_start(&f, &ok, 1);
    struct env *e = calloc(1, sizeof(*e));
    cfg_default(&e->cfg);
    e->cfg.endpoint = url_of(f.port, "");
    e->cfg.encoding = "json";
    e->cfg.compression = "gzip";
    env_start(e);
    make_request(10, "oom", &e->body);
    ret = TH_ENOMEM;
    size_t sent = 0;
    for (n = 0; ret != 0 && n < 1000; n++) {
        alloc_budget = n;
        th_mem_set_methods(&failing);
        ret = th__otlphttp_transport_ops.send(e->t, e->body.ptr, e->body.len, on_done, e);
        th_mem_set_methods(NULL);
        alloc_budget = -1;
        if (ret != 0) {
            assert_int_equal(ret, TH_ENOMEM);
            assert_int_equal(e->n_done, 0);
        } else {
            sent++;
        }
    }
    assert_int_equal(sent, 1);
    env_wait(e, 1, 10000);
    assert_int_equal(e->results[0].err, 0);
    char name[64];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    uint8_t *plain = malloc(1 << 20);
    assert_int_equal(inflateInit2(&zs, 31), Z_OK);
    zs.next_in = f.seen[0].body;
    zs.avail_in = (uInt)f.seen[0].body_len;
    zs.next_out = plain;
    zs.avail_out = 1 << 20;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(decode_spans(plain, zs.total_out, true, name, sizeof(name)), 10);
    inflateEnd(&zs);
    free(plain);
    env_stop(e);
    free(e);
    fake_stop(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_joining),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_real_receiver),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_request_shape),
        cmocka_unit_test(test_header_override),
        cmocka_unit_test(test_keepalive_and_not),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_timeout_refused_and_stop),
        cmocka_unit_test(test_done_never_inside_send),
        cmocka_unit_test(test_config_table),
        cmocka_unit_test(test_component_end_to_end),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
