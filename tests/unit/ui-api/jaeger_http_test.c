/*
 * End-to-end tests of the Jaeger query API: a real LMDB store in a temporary directory holds
 * two traces, the h2o server (ui-api/jaeger/jaeger_http.c) answers on a loopback port, and a
 * plain socket client checks status lines, headers and bodies of every route: v1 services,
 * operations (both routes, with spanKind), traces by id (32 and 16 hex digits, leading zeros
 * stripped, upper case), 404, search with every parameter, multi-get, the 400 messages,
 * dependencies, the api_v3 routes, base_path, prettyPrint, HEAD, 405 and unknown paths.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/batch.h"
#include "th/collector.h"
#include "th/store.h"
#include "ui-api/jaeger/jaeger_query.h"

#define AV(x) OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x
#define MS    1000000ull

/* libh2o caches freed memory-pool chunks in a thread-local list it never frees (static in
 * libh2o, so nothing can empty it); when a server thread ends, LeakSanitizer reports them.
 * That cache is bounded (16 chunks per thread); every other allocation is still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}

static char dir[] = "/tmp/th-jaeger-http-XXXXXX";
static th_store_t *store;
static th_jaeger_http_t *srv, *srv_base;
static uint64_t base_ns; /* start of trace A, µs aligned */

/* ---- Building the stored traces ---------------------------------------------------------- */

static th_arena_t *A;

static th_otlp_kv_t *kv_str(const char *k, const char *v)
{
    th_otlp_kv_t *x = th_arena_alloc(A, sizeof(*x));
    th_otlp_any_t *a = th_arena_alloc(A, sizeof(*a));
    opentelemetry__proto__common__v1__key_value__init(x);
    opentelemetry__proto__common__v1__any_value__init(a);
    a->value_case = AV(STRING_VALUE);
    a->string_value = (char *)v;
    x->key = (char *)k;
    x->value = a;
    return x;
}

static th_otlp_kv_t *kv_int(const char *k, int64_t v)
{
    th_otlp_kv_t *x = kv_str(k, "");
    x->value->value_case = AV(INT_VALUE);
    x->value->int_value = v;
    return x;
}

static void *ptrs(size_t n, ...)
{
    void **v = th_arena_alloc(A, n * sizeof(*v));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        v[i] = va_arg(ap, void *);
    }
    va_end(ap);
    return v;
}

static ProtobufCBinaryData hexid(const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *p = th_arena_alloc(A, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        sscanf(hex + 2 * i, "%2x", &x);
        p[i] = (uint8_t)x;
    }
    return (ProtobufCBinaryData){n, n ? p : NULL};
}

static th_otlp_span_t *span(const char *trace, const char *id, const char *parent, const char *name,
                            int kind, uint64_t start, uint64_t end)
{
    th_otlp_span_t *s = th_arena_alloc(A, sizeof(*s));
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id = hexid(trace);
    s->span_id = hexid(id);
    s->parent_span_id = hexid(parent);
    s->name = (char *)name;
    s->kind = kind;
    s->start_time_unix_nano = start;
    s->end_time_unix_nano = end;
    return s;
}

static th_otlp_resource_spans_t *rspans(th_otlp_kv_t **attrs, size_t na, const char *scope,
                                        th_otlp_span_t **spans, size_t ns)
{
    th_otlp_resource_spans_t *rs = th_arena_alloc(A, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = th_arena_alloc(A, sizeof(*rs->resource));
    opentelemetry__proto__resource__v1__resource__init(rs->resource);
    rs->resource->attributes = attrs;
    rs->resource->n_attributes = na;
    th_otlp_scope_spans_t *ss = th_arena_alloc(A, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    if (scope) {
        ss->scope = th_arena_alloc(A, sizeof(*ss->scope));
        opentelemetry__proto__common__v1__instrumentation_scope__init(ss->scope);
        ss->scope->name = (char *)scope;
        ss->scope->version = "1.2.0";
    }
    ss->spans = spans;
    ss->n_spans = ns;
    rs->scope_spans = ptrs(1, ss);
    rs->n_scope_spans = 1;
    return rs;
}

#define TA "5b8efff798038103d269b633813fc60c"
#define TB "00000000000000000000000000000abc"

/* Trace A: frontend GET /api/users (100ms) → backend SELECT users (client, error, event).
 * Trace B, one second later: frontend GET /health (2ms, http.status_code 500). */
static void write_traces(void)
{
    A = th_arena_create(0, 0);
    assert_non_null(A);
    uint64_t b = base_ns;
    th_otlp_span_t *a1 = span(TA, "0000000000000001", "", "GET /api/users", 2, b, b + 100 * MS);
    a1->attributes = ptrs(2, kv_str("http.method", "GET"), kv_int("http.status_code", 200));
    a1->n_attributes = 2;
    th_otlp_span_t *a2 = span(TA, "0000000000000002", "0000000000000001", "SELECT users", 3,
                              b + 10 * MS, b + 60 * MS);
    a2->attributes = ptrs(1, kv_str("db.system", "postgresql"));
    a2->n_attributes = 1;
    a2->status = th_arena_alloc(A, sizeof(*a2->status));
    opentelemetry__proto__trace__v1__status__init(a2->status);
    a2->status->code = 2;
    a2->status->message = "timeout";
    Opentelemetry__Proto__Trace__V1__Span__Event *ev = th_arena_alloc(A, sizeof(*ev));
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->time_unix_nano = b + 50 * MS;
    ev->name = "exception";
    a2->events = ptrs(1, ev);
    a2->n_events = 1;
    th_otlp_span_t *b1 =
        span(TB, "0000000000000010", "", "GET /health", 2, b + 1000 * MS, b + 1002 * MS);
    b1->attributes = ptrs(1, kv_int("http.status_code", 500));
    b1->n_attributes = 1;

    th_otlp_kv_t **fe = ptrs(2, kv_str("service.name", "frontend"), kv_str("host.name", "web-1"));
    th_otlp_request_t *req = th_arena_alloc(A, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->resource_spans =
        ptrs(3, rspans(fe, 2, "io.opentelemetry.http", ptrs(1, a1), 1),
             rspans(ptrs(1, kv_str("service.name", "backend")), 1, NULL, ptrs(1, a2), 1),
             rspans(fe, 2, "io.opentelemetry.http", ptrs(1, b1), 1));
    req->n_resource_spans = 3;
    th_batch_t *batch = th_batch_create(A, req);
    assert_non_null(batch);
    batch->span_count = 3;
    assert_int_equal(th_store_write(store, &batch, 1), 0);
    th_batch_release(batch);
    A = NULL;
}

/* ---- A small HTTP/1.1 client ------------------------------------------------------------- */

struct resp {
    int status;
    char headers[4096];
    char *body;
    size_t body_len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Send one request (Connection: close) and read the whole answer. */
static void request(int port, const char *method, const char *target, const char *extra,
                    struct resp *r)
{
    memset(r, 0, sizeof(*r));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[8192];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n", method,
                     target, extra ? extra : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) {
            break;
        }
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *eoh = strstr(buf, "\r\n\r\n");
    assert_non_null(eoh);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
    size_t hl = (size_t)(eoh - buf) + 2; /* keep the last header's CRLF */
    assert_true(hl < sizeof(r->headers));
    memcpy(r->headers, buf, hl);
    r->headers[hl] = '\0';
    for (char *p = r->headers; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a'); /* header names and values compared in lower case */
        }
    }
    r->body_len = len - hl - 2;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, eoh + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
}

static void get(const char *target, struct resp *r)
{
    request(th_jaeger_http_port(srv), "GET", target, NULL, r);
}

static bool has_header(const struct resp *r, const char *line)
{
    if (!strstr(r->headers, line)) {
        print_error("headers:\n%s\n", r->headers);
        return false;
    }
    return true;
}

/* A successful JSON answer with exactly this body. */
static void expect_json(const char *target, const char *body)
{
    struct resp r;
    get(target, &r);
    if (r.status != 200 || strcmp(r.body, body) != 0) {
        fail_msg("GET %s: %d\n got: %s\nwant: %s", target, r.status, r.body, body);
    }
    assert_true(has_header(&r, "\r\ncontent-type: application/json\r\n"));
    resp_free(&r);
}

/* An error written as Go's http.Error: text/plain, nosniff, the body plus a newline. */
static void expect_error(const char *target, int status, const char *body)
{
    struct resp r;
    get(target, &r);
    char want[4096];
    snprintf(want, sizeof(want), "%s\n", body);
    if (r.status != status || strcmp(r.body, want) != 0) {
        fail_msg("GET %s: %d\n got: %s\nwant: %d %s", target, r.status, r.body, status, want);
    }
    assert_true(has_header(&r, "\r\ncontent-type: text/plain; charset=utf-8\r\n"));
    assert_true(has_header(&r, "\r\nx-content-type-options: nosniff\r\n"));
    resp_free(&r);
}

static void expect_v1_error(const char *target, int status, const char *msg)
{
    char body[2048];
    snprintf(body, sizeof(body),
             "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{\"code\":%d,"
             "\"msg\":\"%s\"}]}",
             status, msg);
    expect_error(target, status, body);
}

/* The trace ids in a v1 search answer, in order, as "id,id,". A trace object is the only
 * object whose "traceID" is followed by "spans". */
static void search_ids(const char *target, char *out, size_t cap)
{
    struct resp r;
    get(target, &r);
    if (r.status != 200) {
        fail_msg("GET %s: %d %s", target, r.status, r.body);
    }
    out[0] = '\0';
    size_t n = 0;
    for (const char *p = r.body; (p = strstr(p, "{\"traceID\":\"")); p++) {
        const char *id = p + 12;
        const char *end = strchr(id, '"');
        if (end && strncmp(end, "\",\"spans\":", 10) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%.*s,", (int)(end - id), id);
        }
    }
    resp_free(&r);
}

/* ---- Fixtures ---------------------------------------------------------------------------- */

static int remove_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) {
        return -1;
    }
    struct th_store_cfg cfg = {.path = dir, .sync = false};
    char err[256];
    if (th_store_open(&th_store_lmdb_ops, &cfg, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store: %s\n", err);
        return -1;
    }
    /* a whole second, ten minutes ago: easy microsecond arithmetic */
    base_ns = (th_now_unix_ns() / 1000000000ull - 600) * 1000000000ull;
    write_traces();
    struct th_jaeger_http_cfg hc = {
        .endpoint = "127.0.0.1:0",
        .api = {.store = store, .base_path = ""},
        .keep_alive = true,
    };
    if (th_jaeger_http_start(&hc, NULL, &srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "server: %s\n", err);
        return -1;
    }
    hc.api.base_path = "/jaeger";
    if (th_jaeger_http_start(&hc, NULL, &srv_base, err, sizeof(err)) != 0) {
        fprintf(stderr, "server: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_jaeger_http_stop(srv);
    th_jaeger_http_stop(srv_base);
    th_store_close(store);
    nftw(dir, remove_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- v1 ------------------------------------------------------------------------------------ */

static void test_services(void **state)
{
    (void)state;
    expect_json("/api/services",
                "{\"data\":[\"backend\",\"frontend\"],\"total\":2,\"limit\":0,\"offset\":0,"
                "\"errors\":null}");
    expect_json("/api/services?prettyPrint=true", "{\n"
                                                  "    \"data\": [\n"
                                                  "        \"backend\",\n"
                                                  "        \"frontend\"\n"
                                                  "    ],\n"
                                                  "    \"total\": 2,\n"
                                                  "    \"limit\": 0,\n"
                                                  "    \"offset\": 0,\n"
                                                  "    \"errors\": null\n"
                                                  "}");
    expect_json("/api/services?prettyPrint=false",
                "{\"data\":[\"backend\",\"frontend\"],\"total\":2,\"limit\":0,\"offset\":0,"
                "\"errors\":null}");
}

static void test_operations(void **state)
{
    (void)state;
    expect_json("/api/services/frontend/operations",
                "{\"data\":[\"GET /api/users\",\"GET /health\"],\"total\":2,\"limit\":0,"
                "\"offset\":0,\"errors\":null}");
    /* the path segment is percent-decoded once */
    expect_json("/api/services/%66rontend/operations",
                "{\"data\":[\"GET /api/users\",\"GET /health\"],\"total\":2,\"limit\":0,"
                "\"offset\":0,\"errors\":null}");
    expect_json("/api/services/nobody/operations",
                "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    expect_json("/api/operations?service=frontend&spanKind=server",
                "{\"data\":[{\"name\":\"GET /api/users\",\"spanKind\":\"server\"},{\"name\":"
                "\"GET /health\",\"spanKind\":\"server\"}],\"total\":2,\"limit\":0,\"offset\":0,"
                "\"errors\":null}");
    expect_json("/api/operations?service=backend",
                "{\"data\":[{\"name\":\"SELECT users\",\"spanKind\":\"client\"}],\"total\":1,"
                "\"limit\":0,\"offset\":0,\"errors\":null}");
    expect_json("/api/operations?service=frontend&spanKind=client",
                "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    expect_v1_error("/api/operations", 400, "parameter 'service' is required");
    expect_v1_error("/api/operations?spanKind=server&service=", 400,
                    "parameter 'service' is required");
}

static void trace_b_json(char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"data\":[{\"traceID\":\"0000000000000abc\",\"spans\":[{\"traceID\":"
             "\"0000000000000abc\",\"spanID\":\"0000000000000010\",\"operationName\":\"GET "
             "/health\",\"references\":[],\"startTime\":%llu,\"duration\":2000,\"tags\":["
             "{\"key\":\"otel.scope.name\",\"type\":\"string\",\"value\":"
             "\"io.opentelemetry.http\"},{\"key\":\"otel.scope.version\",\"type\":\"string\","
             "\"value\":\"1.2.0\"},{\"key\":\"http.status_code\",\"type\":\"int64\",\"value\":"
             "500},{\"key\":\"span.kind\",\"type\":\"string\",\"value\":\"server\"}],\"logs\":[],"
             "\"processID\":\"p1\",\"warnings\":null}],\"processes\":{\"p1\":{\"serviceName\":"
             "\"frontend\",\"tags\":[{\"key\":\"host.name\",\"type\":\"string\",\"value\":"
             "\"web-1\"}]}},\"warnings\":null}],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":"
             "null}",
             (unsigned long long)(base_ns / 1000 + 1000000));
}

static void test_trace_by_id(void **state)
{
    (void)state;
    char want[4096];
    trace_b_json(want, sizeof(want));
    expect_json("/api/traces/00000000000000000000000000000abc", want);
    expect_json("/api/traces/0000000000000abc", want);
    expect_json("/api/traces/abc", want);
    expect_json("/api/traces/ABC", want);
    expect_json("/api/traces/ABC?start=1&end=2", want); /* hints only, never a filter */

    /* the 32-digit id: both spans, both processes, the error tag, the event */
    struct resp r;
    get("/api/traces/" TA, &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.body, "{\"data\":[{\"traceID\":\"" TA "\",\"spans\":[", 47) == 0);
    assert_non_null(strstr(r.body, "\"spanID\":\"0000000000000002\",\"operationName\":\"SELECT "
                                   "users\",\"references\":[{\"refType\":\"CHILD_OF\",\"traceID\":"
                                   "\"" TA "\",\"spanID\":\"0000000000000001\"}]"));
    assert_non_null(strstr(r.body, "{\"key\":\"error\",\"type\":\"bool\",\"value\":true}"));
    assert_non_null(strstr(r.body, "{\"key\":\"event\",\"type\":\"string\",\"value\":"
                                   "\"exception\"}"));
    assert_non_null(strstr(r.body, "\"p2\":{\"serviceName\":\"backend\",\"tags\":[]}"));
    const char *end = "],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}";
    assert_string_equal(r.body + r.body_len - strlen(end), end);
    resp_free(&r);

    expect_v1_error("/api/traces/1234", 404, "trace not found");
    expect_v1_error("/api/traces/zz", 400, "strconv.ParseUint: parsing \\\"zz\\\": invalid syntax");
    expect_v1_error("/api/traces/abc?raw=x", 400,
                    "unable to parse param 'raw': strconv.ParseBool: parsing \\\"x\\\": invalid "
                    "syntax");
    /* base64, as Jaeger v2.20 accepts on this route */
    expect_json("/api/traces/AAAAAAAAAAAAAAAAAAAKvA==", want);
}

static void test_search(void **state)
{
    (void)state;
    char ids[512], t[1024];
    unsigned long long b = base_ns / 1000;
    search_ids("/api/traces?service=frontend", ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000abc," TA ","); /* newest first */
    search_ids("/api/traces?service=frontend&limit=20&lookback=1h&minDuration&maxDuration", ids,
               sizeof(ids));
    assert_string_equal(ids, "0000000000000abc," TA ",");
    search_ids("/api/traces?service=frontend&limit=1", ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000abc,");
    search_ids("/api/traces?service=frontend&operation=GET+%2Fhealth", ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000abc,");
    search_ids("/api/traces?service=backend", ids, sizeof(ids));
    assert_string_equal(ids, TA ",");
    search_ids("/api/traces?service=frontend&tags=%7B%22http.status_code%22%3A%22500%22%7D", ids,
               sizeof(ids));
    assert_string_equal(ids, "0000000000000abc,");
    search_ids("/api/traces?service=frontend&tag=http.status_code:200", ids, sizeof(ids));
    assert_string_equal(ids, TA ",");
    search_ids("/api/traces?service=backend&tags=%7B%22error%22%3A%22true%22%7D", ids, sizeof(ids));
    assert_string_equal(ids, TA ",");
    search_ids("/api/traces?service=frontend&minDuration=50ms", ids, sizeof(ids));
    assert_string_equal(ids, TA ",");
    search_ids("/api/traces?service=frontend&maxDuration=10ms", ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000abc,");
    snprintf(t, sizeof(t), "/api/traces?service=frontend&start=%llu", b + 500000);
    search_ids(t, ids, sizeof(ids));
    assert_string_equal(ids, "0000000000000abc,");
    snprintf(t, sizeof(t), "/api/traces?service=frontend&start=%llu&end=%llu", b - 1000,
             b + 500000);
    search_ids(t, ids, sizeof(ids));
    assert_string_equal(ids, TA ",");
    expect_json("/api/traces?service=nobody",
                "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");

    /* traceID mode: found ones in order; the missing one listed, status 200 */
    struct resp r;
    get("/api/traces?traceID=abc&traceID=" TA "&traceID=1234", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "{\"data\":[{\"traceID\":\"0000000000000abc\""));
    assert_non_null(strstr(r.body, "]}},\"warnings\":null},{\"traceID\":\"" TA "\""));
    const char *tail = "],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{\"msg\":\"trace not "
                       "found\",\"traceID\":\"0000000000001234\"}]}";
    assert_string_equal(r.body + r.body_len - strlen(tail), tail);
    resp_free(&r);

    expect_v1_error("/api/traces", 400, "parameter 'service' is required");
    expect_v1_error("/api/traces?service=frontend&limit=many", 400,
                    "strconv.ParseInt: parsing \\\"many\\\": invalid syntax");
    expect_v1_error("/api/traces?service=frontend&start=yesterday", 400,
                    "unable to parse param 'start': strconv.ParseInt: parsing \\\"yesterday\\\": "
                    "invalid syntax");
    expect_v1_error("/api/traces?service=frontend&minDuration=10", 400,
                    "unable to parse param 'minDuration': time: missing unit in duration "
                    "\\\"10\\\"");
    expect_v1_error("/api/traces?service=frontend&minDuration=2s&maxDuration=1s", 400,
                    "'maxDuration' should be greater than 'minDuration'");
    expect_v1_error("/api/traces?service=frontend&tag=oops", 400,
                    "malformed 'tag' parameter, expecting key:value, received: oops");
    expect_v1_error("/api/traces?service=frontend&tags=%7B", 400,
                    "malformed 'tags' parameter, cannot unmarshal JSON: unexpected end of JSON "
                    "input");
    expect_v1_error("/api/traces?traceID=xyz", 400,
                    "cannot parse traceID param: strconv.ParseUint: parsing \\\"xyz\\\": invalid "
                    "syntax");
}

static void test_dependencies(void **state)
{
    (void)state;
    char t[256];
    unsigned long long now_ms = th_now_unix_ns() / 1000000;
    snprintf(t, sizeof(t), "/api/dependencies?endTs=%llu&lookback=3600000", now_ms);
    expect_json(t, "{\"data\":[{\"parent\":\"frontend\",\"child\":\"backend\",\"callCount\":1}],"
                   "\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    snprintf(t, sizeof(t), "/api/dependencies?endTs=%llu&lookback=3600000&service=backend", now_ms);
    expect_json(t, "{\"data\":[{\"parent\":\"frontend\",\"child\":\"backend\",\"callCount\":1}],"
                   "\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    snprintf(t, sizeof(t), "/api/dependencies?endTs=%llu&lookback=3600000&service=other", now_ms);
    expect_json(t, "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    /* a window that ends before the traces */
    snprintf(t, sizeof(t), "/api/dependencies?endTs=%llu&lookback=60000",
             (unsigned long long)(base_ns / 1000000 - 60000));
    expect_json(t, "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    expect_v1_error("/api/dependencies?endTs=x", 400,
                    "unable to parse param 'endTs': strconv.ParseInt: parsing \\\"x\\\": invalid "
                    "syntax");
    expect_v1_error("/api/dependencies?lookback=1h", 400,
                    "unable to parse param 'lookback': strconv.ParseInt: parsing \\\"1h\\\": "
                    "invalid syntax");
}

static void test_http_rules(void **state)
{
    (void)state;
    struct resp g, h;
    get("/api/services", &g);
    request(th_jaeger_http_port(srv), "HEAD", "/api/services", NULL, &h);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 0);
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\ncontent-length: %zu\r\n", g.body_len);
    assert_true(has_header(&h, cl));
    resp_free(&g);
    resp_free(&h);

    request(th_jaeger_http_port(srv), "POST", "/api/services", "Content-Length: 0\r\n", &h);
    assert_int_equal(h.status, 405);
    assert_string_equal(h.body, "Method Not Allowed\n");
    assert_true(has_header(&h, "\r\nallow: get, head\r\n"));
    resp_free(&h);

    expect_error("/api/nope", 404, "404 page not found");
    expect_error("/api/services/", 404, "404 page not found");
    expect_error("/api/traces/", 404, "404 page not found");
    expect_error("/api/v3/nope", 404, "404 page not found");
    expect_error("/search", 404, "404 page not found");
}

static void test_base_path(void **state)
{
    (void)state;
    struct resp r;
    int port = th_jaeger_http_port(srv_base);
    request(port, "GET", "/jaeger/api/services", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"data\":[\"backend\",\"frontend\"],\"total\":2,\"limit\":0,"
                                "\"offset\":0,\"errors\":null}");
    resp_free(&r);
    request(port, "GET", "/jaeger/api/v3/services", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"services\":[\"backend\",\"frontend\"]}");
    resp_free(&r);
    request(port, "GET", "/jaeger/api/traces/abc?prettyPrint=1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.body,
                        "{\n    \"data\": [\n        {\n            \"traceID\": "
                        "\"0000000000000abc\",\n",
                        strlen("{\n    \"data\": [\n        {\n            \"traceID\": "
                               "\"0000000000000abc\",\n")) == 0);
    resp_free(&r);
    request(port, "GET", "/api/services", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "404 page not found\n");
    resp_free(&r);
    request(port, "GET", "/jaegerx/api/services", NULL, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

/* ---- api_v3 -------------------------------------------------------------------------------- */

static void rfc3339(uint64_t ns, char *out, size_t cap)
{
    time_t s = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    size_t n = strlen(out);
    snprintf(out + n, cap - n, ".%03lluZ", (unsigned long long)(ns % 1000000000ull / 1000000));
}

static void test_v3(void **state)
{
    (void)state;
    expect_json("/api/v3/services", "{\"services\":[\"backend\",\"frontend\"]}");
    expect_json("/api/v3/operations?service=backend",
                "{\"operations\":[{\"name\":\"SELECT users\",\"spanKind\":\"client\"}]}");
    expect_json("/api/v3/operations?service=frontend&spanKind=server",
                "{\"operations\":[{\"name\":\"GET /api/users\",\"spanKind\":\"server\"},{\"name\":"
                "\"GET /health\",\"spanKind\":\"server\"}]}");
    expect_json("/api/v3/operations", "{\"operations\":[]}");

    struct resp r;
    get("/api/v3/traces/abc", &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.body, "{\"result\":{\"resourceSpans\":[{", 29) == 0);
    assert_non_null(strstr(r.body, "\"traceId\":\"" TB "\""));
    assert_non_null(strstr(r.body, "\"spanId\":\"0000000000000010\""));
    assert_null(strstr(r.body, TA));
    assert_string_equal(r.body + r.body_len - 3, "]}}");
    resp_free(&r);
    expect_error("/api/v3/traces/1234", 404,
                 "{\"error\":{\"httpCode\":404,\"message\":\"No traces found\"}}");
    expect_error("/api/v3/traces/zz", 400,
                 "{\"error\":{\"httpCode\":400,\"message\":\"malformed parameter trace_id: "
                 "strconv.ParseUint: parsing \\\"zz\\\": invalid syntax\"}}");

    char tmin[64], tmax[64], t[512];
    rfc3339(base_ns - 60000 * MS, tmin, sizeof(tmin));
    rfc3339(base_ns + 60000 * MS, tmax, sizeof(tmax));
    snprintf(
        t, sizeof(t),
        "/api/v3/traces?query.serviceName=frontend&query.startTimeMin=%s&query.startTimeMax=%s",
        tmin, tmax);
    get(t, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"traceId\":\"" TA "\""));
    assert_non_null(strstr(r.body, "\"traceId\":\"" TB "\""));
    resp_free(&r);
    snprintf(t, sizeof(t),
             "/api/v3/traces?query.service_name=frontend&query.start_time_min=%s&query.start_time_"
             "max=%s&query.num_traces=1",
             tmin, tmax);
    get(t, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, TA));
    resp_free(&r);
    snprintf(t, sizeof(t),
             "/api/v3/traces?query.serviceName=nobody&query.startTimeMin=%s&query.startTimeMax=%s",
             tmin, tmax);
    expect_error(t, 404, "{\"error\":{\"httpCode\":404,\"message\":\"No traces found\"}}");

    snprintf(t, sizeof(t),
             "/api/v3/trace-summaries?query.serviceName=frontend&query.startTimeMin=%s&query."
             "startTimeMax=%s&query.searchDepth=20",
             tmin, tmax);
    char want[2048];
    snprintf(want, sizeof(want),
             "{\"summaries\":["
             "{\"traceId\":\"" TB "\",\"rootServiceName\":\"frontend\",\"rootOperationName\":"
             "\"GET /health\",\"minStartTimeUnixNano\":\"%llu\",\"maxEndTimeUnixNano\":\"%llu\","
             "\"spanCount\":1,\"services\":[{\"name\":\"frontend\",\"spanCount\":1}]},"
             "{\"traceId\":\"" TA "\",\"rootServiceName\":\"frontend\",\"rootOperationName\":"
             "\"GET /api/users\",\"minStartTimeUnixNano\":\"%llu\",\"maxEndTimeUnixNano\":"
             "\"%llu\",\"spanCount\":2,\"errorSpanCount\":1,\"services\":[{\"name\":\"backend\","
             "\"spanCount\":1,\"errorSpanCount\":1},{\"name\":\"frontend\",\"spanCount\":1}]}]}",
             (unsigned long long)(base_ns + 1000 * MS), (unsigned long long)(base_ns + 1002 * MS),
             (unsigned long long)base_ns, (unsigned long long)(base_ns + 100 * MS));
    expect_json(t, want);
    snprintf(t, sizeof(t),
             "/api/v3/trace-summaries?query.serviceName=nobody&query.startTimeMin=%s&query."
             "startTimeMax=%s",
             tmin, tmax);
    expect_json(t, "{\"summaries\":[]}");

    expect_error("/api/v3/trace-summaries?query.serviceName=frontend", 400,
                 "{\"error\":{\"httpCode\":400,\"message\":\"query.startTimeMin and "
                 "query.startTimeMax are required\"}}");
    snprintf(t, sizeof(t),
             "/api/v3/traces?query.serviceName=frontend&query.startTimeMin=%s&query.startTimeMax=%s"
             "&query.durationMin=5",
             tmin, tmax);
    expect_error(t, 400,
                 "{\"error\":{\"httpCode\":400,\"message\":\"malformed parameter "
                 "query.durationMin: time: missing unit in duration \\\"5\\\"\"}}");
}

/* ---- Keep-alive and stop ------------------------------------------------------------- */

/* Read one response with a Content-Length body from a kept-alive connection. */
static int read_one(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) {
            return -1;
        }
        len += (size_t)got;
        buf[len] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length: ");
        if (eoh && cl && (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10) <= len) {
            int status = 0;
            sscanf(buf, "HTTP/1.1 %d", &status);
            return status;
        }
    }
}

/* Two requests on one connection; then stop with the connection idle: the server closes it
 * and stop returns promptly. */
static void test_keep_alive_and_stop(void **state)
{
    (void)state;
    th_jaeger_http_t *s3;
    char err[256];
    struct th_jaeger_http_cfg hc = {
        .endpoint = "127.0.0.1:0", .api = {.store = store, .base_path = ""}, .keep_alive = true};
    assert_int_equal(th_jaeger_http_start(&hc, NULL, &s3, err, sizeof(err)), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)th_jaeger_http_port(s3))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    static const char req[] = "GET /api/v3/services HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[8192];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
        assert_int_equal(read_one(fd, buf, sizeof(buf)), 200);
        assert_non_null(strstr(buf, "{\"services\":[\"backend\",\"frontend\"]}"));
    }
    uint64_t t0 = th_now_mono_ns();
    th_jaeger_http_stop(s3);
    uint64_t took_ms = (th_now_mono_ns() - t0) / 1000000;
    assert_true(took_ms < 1500);
    assert_int_equal(read(fd, buf, sizeof(buf)), 0); /* closed by the server */
    close(fd);
    /* the port is free again at once */
    struct th_jaeger_http_cfg again = hc;
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", ntohs(sa.sin_port));
    again.endpoint = ep;
    assert_int_equal(th_jaeger_http_start(&again, NULL, &s3, err, sizeof(err)), 0);
    /* and a second server on the same port is refused with a clear message */
    th_jaeger_http_t *dup;
    assert_int_equal(th_jaeger_http_start(&again, NULL, &dup, err, sizeof(err)), TH_EADDRINUSE);
    assert_non_null(strstr(err, "address already in use"));
    th_jaeger_http_stop(s3);
    hc.endpoint = "nohost";
    assert_int_equal(th_jaeger_http_start(&hc, NULL, &dup, err, sizeof(err)), TH_ECONFIG);
    assert_string_equal(err, "endpoint \"nohost\": missing port");
}

/* An answer over the response limit is refused with 503 and a message, not sent. */
static void test_response_limit(void **state)
{
    (void)state;
    struct th_jaeger_api api = {.store = store, .base_path = "", .max_response = 100};
    struct th_jaeger_response resp = {0};
    const char *path = "/api/traces/" TA;
    assert_int_equal(th_jaeger_api_serve(&api, "GET", 3, path, strlen(path), NULL, 0,
                                         (int64_t)th_now_unix_ns(), &resp),
                     0);
    assert_int_equal(resp.status, 503);
    assert_int_equal(th_buf_append(&resp.body, "", 1), 0);
    assert_string_equal((const char *)resp.body.ptr,
                        "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{\"code\":"
                        "503,\"msg\":\"the response would be larger than 100 bytes; narrow the "
                        "query or lower 'limit'\"}]}\n");
    th_jaeger_response_free(&resp);
    path = "/api/v3/traces/" TA;
    assert_int_equal(th_jaeger_api_serve(&api, "GET", 3, path, strlen(path), NULL, 0,
                                         (int64_t)th_now_unix_ns(), &resp),
                     0);
    assert_int_equal(resp.status, 503);
    th_jaeger_response_free(&resp);
}

/* CORS as the Collector's HTTP servers do it, and configured response headers. */
static void test_cors_and_headers(void **state)
{
    (void)state;
    const char *origins[] = {"https://*.example.com"};
    const char *hdrs[] = {"X-Custom"};
    const char *rk[] = {"X-Served-By"}, *rv[] = {"tracehouse"};
    th_strlist_t ol = {origins, 1}, hl = {hdrs, 1};
    th_strmap_t rh = {rk, rv, 1};
    struct th_jaeger_http_cfg hc = {.endpoint = "127.0.0.1:0",
                                    .api = {.store = store, .base_path = ""},
                                    .cors_origins = &ol,
                                    .cors_headers = &hl,
                                    .cors_max_age_s = 600,
                                    .response_headers = &rh,
                                    .keep_alive = true};
    th_jaeger_http_t *s4;
    char err[256];
    assert_int_equal(th_jaeger_http_start(&hc, NULL, &s4, err, sizeof(err)), 0);
    int port = th_jaeger_http_port(s4);
    struct resp r;
    request(port, "GET", "/api/v3/services", "Origin: https://ui.example.com\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "\r\naccess-control-allow-origin: https://ui.example.com\r\n"));
    assert_true(has_header(&r, "\r\naccess-control-allow-credentials: true\r\n"));
    assert_true(has_header(&r, "\r\nvary: origin\r\n"));
    assert_true(has_header(&r, "\r\nx-served-by: tracehouse\r\n"));
    resp_free(&r);
    request(port, "GET", "/api/v3/services", "Origin: https://evil.test\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.headers, "access-control-allow-origin"));
    resp_free(&r);
    request(port, "OPTIONS", "/api/traces",
            "Origin: https://ui.example.com\r\nAccess-Control-Request-Method: GET\r\n"
            "Access-Control-Request-Headers: x-custom\r\n",
            &r);
    assert_int_equal(r.status, 204);
    assert_true(has_header(&r, "\r\naccess-control-allow-origin: https://ui.example.com\r\n"));
    assert_true(has_header(&r, "\r\naccess-control-allow-methods: get\r\n"));
    assert_true(has_header(&r, "\r\naccess-control-allow-headers: x-custom\r\n"));
    assert_true(has_header(&r, "\r\naccess-control-max-age: 600\r\n"));
    resp_free(&r);
    /* a header that is not allowed: no grant */
    request(port, "OPTIONS", "/api/traces",
            "Origin: https://ui.example.com\r\nAccess-Control-Request-Method: GET\r\n"
            "Access-Control-Request-Headers: x-other\r\n",
            &r);
    assert_int_equal(r.status, 204);
    assert_null(strstr(r.headers, "access-control-allow-origin"));
    resp_free(&r);
    /* without CORS configured an OPTIONS request is just a wrong method */
    request(th_jaeger_http_port(srv), "OPTIONS", "/api/traces",
            "Origin: https://ui.example.com\r\nAccess-Control-Request-Method: GET\r\n", &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    th_jaeger_http_stop(s4);
}

/* ---- The extension in a collector ------------------------------------------------------ */

static int run_collector(const char *backend, th_collector_t **out, uv_loop_t *loop)
{
    char yaml[1024], err[512];
    snprintf(yaml, sizeof(yaml),
             "extensions:\n"
             "  jaeger_storage:\n"
             "    backends:\n"
             "      main:\n"
             "        lmdb: {path: %s/ext}\n"
             "  jaeger_query:\n"
             "    storage: {traces: %s}\n"
             "    http: {endpoint: \"127.0.0.1:0\"}\n"
             "    base_path: /jaeger/\n"
             "receivers:\n"
             "  otlp:\n"
             "    protocols:\n"
             "      http: {endpoint: \"127.0.0.1:0\"}\n"
             "exporters:\n"
             "  nop:\n"
             "service:\n"
             "  extensions: [jaeger_storage, jaeger_query]\n"
             "  pipelines:\n"
             "    traces: {receivers: [otlp], exporters: [nop]}\n",
             dir, backend);
    th_config_t *cfg;
    assert_int_equal(th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)), 0);
    if (th_collector_create(cfg, loop, out, err, sizeof(err)) != 0) {
        fail_msg("collector: %s", err);
    }
    return th_collector_start(*out);
}

/* The extension from a Jaeger-shaped config: the store found by name, the API on its port
 * under the base path; and a clear failure when the backend does not exist. */
static void test_extension(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    th_collector_t *c;
    assert_int_equal(run_collector("main", &c, &loop), 0);
    struct th_component *q = th_collector_find(c, TH_KIND_EXTENSION, "jaeger_query");
    assert_non_null(q);
    int port = th_jaeger_query_port(q);
    assert_true(port > 0);
    struct resp r;
    request(port, "GET", "/jaeger/api/services", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "{\"data\":[],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}");
    resp_free(&r);
    th_collector_destroy(c);
    assert_int_equal(th_jaeger_query_port(NULL), 0);

    assert_int_equal(run_collector("nope", &c, &loop), TH_ENOENT);
    th_collector_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- Out of memory ------------------------------------------------------------------- */

static long alloc_budget = -1; /* allocations left before failing; -1: never fail */
static long alloc_count;

static void *f_malloc(size_t n)
{
    if (alloc_budget >= 0 && alloc_count++ >= alloc_budget) {
        return NULL;
    }
    return malloc(n);
}

static void *f_calloc(size_t n, size_t sz)
{
    if (alloc_budget >= 0 && alloc_count++ >= alloc_budget) {
        return NULL;
    }
    return calloc(n, sz);
}

static void *f_realloc(void *p, size_t n)
{
    if (alloc_budget >= 0 && alloc_count++ >= alloc_budget) {
        return NULL;
    }
    return realloc(p, n);
}

static const struct th_mem_methods failing = {f_malloc, f_calloc, f_realloc, free};

#define V3_TRACE_A ("/api/v3/traces/" TA)

/* Fail allocation N for N = 0, 1, 2, ... on whole requests: each answer is a clean 503 (or
 * TH_ENOMEM when not even that fits) until one succeeds, with nothing leaked (ASan). */
static void test_out_of_memory(void **state)
{
    (void)state;
    static const char *const paths[] = {"/api/traces/abc", "/api/traces", V3_TRACE_A,
                                        "/api/services"};
    static const char *const queries[] = {NULL, "service=frontend&prettyPrint=1", NULL, NULL};
    struct th_jaeger_api api = {.store = store, .base_path = ""};
    for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
        bool ok = false;
        for (long n = 0; n < 5000 && !ok; n++) {
            struct th_jaeger_response resp = {0};
            alloc_count = 0;
            alloc_budget = n;
            th_mem_set_methods(&failing);
            int rc = th_jaeger_api_serve(&api, "GET", 3, paths[k], strlen(paths[k]), queries[k],
                                         queries[k] ? strlen(queries[k]) : 0,
                                         (int64_t)th_now_unix_ns(), &resp);
            th_mem_set_methods(NULL);
            alloc_budget = -1;
            if (rc == 0 && resp.status == 200) {
                ok = true;
            } else if (rc == 0) {
                if (resp.status != 503 && resp.status != 500) {
                    fail_msg("%s with %ld allocations: status %d %.*s", paths[k], n, resp.status,
                             (int)resp.body.len, (const char *)resp.body.ptr);
                }
            } else {
                assert_int_equal(rc, TH_ENOMEM);
            }
            th_jaeger_response_free(&resp);
        }
        assert_true(ok);
    }
}

/* ---- Config ---------------------------------------------------------------------------- */

static int decode(const char *yaml, struct th_jaeger_query_cfg *cfg, th_arena_t *a, char *err,
                  size_t errlen)
{
    th_node_t *node = NULL;
    int rc = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (rc == 0) {
        rc = th_cfg_decode(th_jaeger_query_config, node, cfg, a, "extensions::jaeger_query", err,
                           errlen);
    }
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_jaeger_query_cfg cfg;
    char err[512];
    /* Jaeger v2's all-in-one jaeger_query section loads as is */
    assert_int_equal(decode("storage:\n  traces: some_store\n  traces_archive: another_store\n"
                            "ui:\n  config_file: ./cmd/jaeger/config-ui.json\n"
                            "  log_access: true\n"
                            "max_clock_skew_adjust: 1s\n"
                            "http:\n  endpoint: 0.0.0.0:16686\n"
                            "  cors:\n    allowed_origins: [\"https://*.example.com\"]\n"
                            "grpc:\n  endpoint: 0.0.0.0:16685\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_string_equal(cfg.storage.traces, "some_store");
    assert_string_equal(cfg.http.endpoint, "0.0.0.0:16686");
    assert_string_equal(cfg.http.transport, "tcp");
    assert_int_equal(cfg.max_clock_skew_adjust, 1000000000);
    assert_int_equal(cfg.http.cors.allowed_origins.n, 1);
    assert_true(cfg.http.keep_alives_enabled);
    assert_string_equal(cfg.base_path, "/");
    const char *why = NULL;
    assert_int_equal(th_jaeger_query_config_check(&cfg, &why), 0);

    /* defaults */
    assert_int_equal(decode("storage: {traces: s}\n", &cfg, a, err, sizeof(err)), 0);
    assert_string_equal(cfg.http.endpoint, "localhost:16686");
    assert_int_equal(cfg.max_clock_skew_adjust, 0);
    assert_int_equal(cfg.http.idle_timeout, (int64_t)60 * 1000000000);
    assert_non_null(th_node_get(cfg.grpc, "endpoint"));
    assert_string_equal(th_node_get(cfg.grpc, "endpoint")->text, "localhost:16685");

    /* errors that name the key */
    assert_int_equal(decode("storage: {traces_archive: y}\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "extensions::jaeger_query::storage::traces: required key is missing");
    /* without a storage section at all, the check says it */
    assert_int_equal(decode("http: {endpoint: x}\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(th_jaeger_query_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "storage::traces: required key is missing (the name of a "
                             "jaeger_storage backend)");
    assert_int_equal(
        decode("storage: {traces: s}\nhttp: {endpoint: x, bogus: 1}\n", &cfg, a, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "extensions::jaeger_query::http::bogus"));
    assert_int_equal(
        decode("storage: {traces: s}\nmax_clock_skew_adjust: -1s\n", &cfg, a, err, sizeof(err)),
        TH_ECONFIG);

    static const struct {
        const char *yaml;
        const char *why;
    } refused[] = {
        {"storage: {traces: s}\nhttp: {tls: {cert_file: c}}\n",
         "http::tls: a TLS server needs a certificate and its private key: set key_file (or "
         "key_pem) (or remove the tls block to serve plaintext)"},
        {"storage: {traces: s}\nhttp: {transport: unix}\n",
         "http::transport: unix sockets are not supported yet (use tcp, tcp4 or tcp6)"},
        {"storage: {traces: s}\nbase_path: jaeger\n", "base_path: must start with \"/\""},
        {"storage: {traces: s}\nmulti_tenancy: {enabled: true}\n",
         "multi_tenancy: multi-tenancy is not supported yet"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(decode(refused[i].yaml, &cfg, a, err, sizeof(err)), 0);
        why = NULL;
        assert_int_equal(th_jaeger_query_config_check(&cfg, &why), TH_ECONFIG);
        assert_string_equal(why, refused[i].why);
    }
    assert_int_equal(decode("storage: {traces: s}\nhttp: {tls: {enabled: false}}\n"
                            "multi_tenancy: {enabled: false}\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_int_equal(th_jaeger_query_config_check(&cfg, &why), 0);

    assert_string_equal(th_jaeger_query_base_path("/", a), "");
    assert_string_equal(th_jaeger_query_base_path("", a), "");
    assert_string_equal(th_jaeger_query_base_path("/jaeger/", a), "/jaeger");
    assert_string_equal(th_jaeger_query_base_path("/a/b", a), "/a/b");
    th_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_trace_by_id),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_dependencies),
        cmocka_unit_test(test_http_rules),
        cmocka_unit_test(test_base_path),
        cmocka_unit_test(test_v3),
        cmocka_unit_test(test_keep_alive_and_stop),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_response_limit),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_cors_and_headers),
        cmocka_unit_test(test_extension),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
