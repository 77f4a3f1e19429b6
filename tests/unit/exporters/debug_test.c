/*
 * Tests of the debug exporter: the three formats byte for byte against the Collector's
 * layout, value rendering (every type, Go's float and time formats, JSON of maps and
 * slices), the zap-style sampler, both outputs (stdout and the collector's log), config
 * checks and the lifecycle.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporters/debug/debug.h"
#include "exporter_fixture.h"
#include "th/log.h"

#define TID FX_TRACE_ID

static const char expected_detailed[] =
    "ResourceSpans #0\n"
    "Resource SchemaURL: https://opentelemetry.io/schemas/1.4.0\n"
    "Resource attributes:\n"
    "     -> service.name: Str(checkout)\n"
    "     -> host.cpus: Int(8)\n"
    "     -> debug: Bool(false)\n"
    "ScopeSpans #0\n"
    "ScopeSpans SchemaURL: https://opentelemetry.io/schemas/1.21.0\n"
    "InstrumentationScope io.tracehouse.test 1.2.3\n"
    "InstrumentationScope attributes:\n"
    "     -> scope.attr: Str(s)\n"
    "Span #0\n"
    "    Trace ID       : " TID "\n"
    "    Parent ID      : \n"
    "    ID             : eee19b7ec3c1b174\n"
    "    Name           : GET /cart\n"
    "    Kind           : Server\n"
    "    TraceState     : ot=th:0\n"
    "    Start time     : 2018-12-13 14:51:00 +0000 UTC\n"
    "    End time       : 2018-12-13 14:51:01 +0000 UTC\n"
    "    Status code    : Error\n"
    "    Status message : boom\n"
    "    DroppedAttributesCount: 1\n"
    "    DroppedEventsCount: 2\n"
    "    DroppedLinksCount: 3\n"
    "Attributes:\n"
    "     -> http.method: Str(GET)\n"
    "     -> http.status_code: Int(500)\n"
    "     -> big.int: Int(9007199254740993)\n"
    "     -> neg.int: Int(-42)\n"
    "     -> ratio: Double(0.25)\n"
    "     -> tiny: Double(1e-7)\n"
    "     -> huge: Double(1e+21)\n"
    "     -> ok: Bool(true)\n"
    "     -> mixed: Slice([\"a\",-1,2.5,true])\n"
    "     -> map: Map({\"a\":\"\\u003c\\u0026\\u003e\",\"m\":[],\"z\":1})\n"
    "     -> raw: Bytes(AAH+/2hp)\n"
    "     -> empty: Empty()\n"
    "     -> utf8: Str(h\xc3\xa9llo \"q\"\n)\n"
    "Events:\n"
    "SpanEvent #0\n"
    "     -> Name: exception\n"
    "     -> Timestamp: 2018-12-13 14:51:00.500000123 +0000 UTC\n"
    "     -> DroppedAttributesCount: 4\n"
    "     -> Attributes::\n"
    "          -> exception.type: Str(IOError)\n"
    "          -> retries: Int(3)\n"
    "Links:\n"
    "SpanLink #0\n"
    "     -> Trace ID: 0af7651916cd43dd8448eb211c80319c\n"
    "     -> ID: b7ad6b7169203331\n"
    "     -> TraceState: k=v\n"
    "     -> DroppedAttributesCount: 5\n"
    "     -> Attributes::\n"
    "          -> link.kind: Str(follows)\n"
    "Span #1\n"
    "    Trace ID       : " TID "\n"
    "    Parent ID      : eee19b7ec3c1b174\n"
    "    ID             : eee19b7ec3c1b173\n"
    "    Name           : redis GET\n"
    "    Kind           : Client\n"
    "    Start time     : 2018-12-13 14:51:00.1 +0000 UTC\n"
    "    End time       : 2018-12-13 14:51:00.2 +0000 UTC\n"
    "    Status code    : Ok\n"
    "    Status message : \n"
    "    DroppedAttributesCount: 0\n"
    "    DroppedEventsCount: 0\n"
    "    DroppedLinksCount: 0\n"
    "Attributes:\n"
    "     -> db.system: Str(redis)\n"
    "Events:\n"
    "SpanEvent #0\n"
    "     -> Name: sent\n"
    "     -> Timestamp: 2018-12-13 14:51:00.15 +0000 UTC\n"
    "     -> DroppedAttributesCount: 0\n"
    "Span #2\n"
    "    Trace ID       : " TID "\n"
    "    Parent ID      : eee19b7ec3c1b173\n"
    "    ID             : 0102030405060708\n"
    "    Name           : serialize\n"
    "    Kind           : Internal\n"
    "    Start time     : 2018-12-13 14:51:00.100000321 +0000 UTC\n"
    "    End time       : 2018-12-13 14:51:00.100000789 +0000 UTC\n"
    "    Status code    : Unset\n"
    "    Status message : \n"
    "    DroppedAttributesCount: 0\n"
    "    DroppedEventsCount: 0\n"
    "    DroppedLinksCount: 0\n";

static const char expected_normal[] =
    "ResourceTraces #0 [https://opentelemetry.io/schemas/1.4.0] service.name=checkout "
    "host.cpus=8 debug=false\n"
    "ScopeTraces #0 io.tracehouse.test@1.2.3 [https://opentelemetry.io/schemas/1.21.0] "
    "scope.attr=s\n"
    "GET /cart " TID " eee19b7ec3c1b174 http.method=GET http.status_code=500 "
    "big.int=9007199254740993 neg.int=-42 ratio=0.25 tiny=1e-7 huge=1e+21 ok=true "
    "mixed=[\"a\",-1,2.5,true] map={\"a\":\"\\u003c\\u0026\\u003e\",\"m\":[],\"z\":1} "
    "raw=AAH+/2hp empty= utf8=h\xc3\xa9llo \"q\"\n\n"
    "redis GET " TID " eee19b7ec3c1b173 db.system=redis\n"
    "serialize " TID " 0102030405060708\n";

static char *buf_str(th_buf_t *b)
{
    th_buf_append(b, "", 1);
    return (char *)b->ptr;
}

static void test_detailed_layout(void **state)
{
    (void)state;
    th_batch_t *b = fx_batch();
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_detailed(b->req, &out), 0);
    assert_string_equal(buf_str(&out), expected_detailed);
    th_buf_free(&out);
    th_batch_release(b);
}

static void test_normal_layout(void **state)
{
    (void)state;
    th_batch_t *b = fx_batch();
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_normal(b->req, &out), 0);
    assert_string_equal(buf_str(&out), expected_normal);
    th_buf_free(&out);
    out = (th_buf_t){0};
    assert_int_equal(th__debug_format_basic(b->req, &out), 0);
    assert_string_equal(buf_str(&out), "{\"resource spans\": 1, \"spans\": 3}");
    th_buf_free(&out);
    th_batch_release(b);
}

/* A span with no ids, no scope, no resource and no status prints empty ids and Unset, as
 * pdata does for empty values; an unknown kind prints nothing. */
static void test_detailed_empty_parts(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req =
        FX_NEW(a, th_otlp_request_t,
               opentelemetry__proto__collector__trace__v1__export_trace_service_request__init);
    th_otlp_resource_spans_t *rs =
        FX_NEW(a, th_otlp_resource_spans_t, opentelemetry__proto__trace__v1__resource_spans__init);
    th_otlp_scope_spans_t *ss =
        FX_NEW(a, th_otlp_scope_spans_t, opentelemetry__proto__trace__v1__scope_spans__init);
    th_otlp_span_t *sp = FX_NEW(a, th_otlp_span_t, opentelemetry__proto__trace__v1__span__init);
    sp->name = "x";
    sp->kind = 9;
    sp->trace_id = fx_id(a, "00000000000000000000000000000000");
    ss->spans = &sp;
    ss->n_spans = 1;
    rs->scope_spans = &ss;
    rs->n_scope_spans = 1;
    req->resource_spans = &rs;
    req->n_resource_spans = 1;
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_detailed(req, &out), 0);
    assert_string_equal(buf_str(&out), "ResourceSpans #0\n"
                                       "Resource SchemaURL: \n"
                                       "ScopeSpans #0\n"
                                       "ScopeSpans SchemaURL: \n"
                                       "InstrumentationScope  \n"
                                       "Span #0\n"
                                       "    Trace ID       : \n"
                                       "    Parent ID      : \n"
                                       "    ID             : \n"
                                       "    Name           : x\n"
                                       "    Kind           : \n"
                                       "    Start time     : 1970-01-01 00:00:00 +0000 UTC\n"
                                       "    End time       : 1970-01-01 00:00:00 +0000 UTC\n"
                                       "    Status code    : Unset\n"
                                       "    Status message : \n"
                                       "    DroppedAttributesCount: 0\n"
                                       "    DroppedEventsCount: 0\n"
                                       "    DroppedLinksCount: 0\n");
    th_buf_free(&out);
    out = (th_buf_t){0};
    assert_int_equal(th__debug_format_normal(req, &out), 0);
    assert_string_equal(buf_str(&out), "ResourceTraces #0\nScopeTraces #0\nx  \n");
    th_buf_free(&out);
    th_arena_destroy(a);
}

static void check_time(uint64_t ns, const char *want)
{
    char got[64];
    th__debug_format_time(ns, got, sizeof(got));
    assert_string_equal(got, want);
}

static void test_time_format(void **state)
{
    (void)state;
    check_time(0, "1970-01-01 00:00:00 +0000 UTC");
    check_time(1, "1970-01-01 00:00:00.000000001 +0000 UTC");
    check_time(1581452772000000321ull, "2020-02-11 20:26:12.000000321 +0000 UTC");
    check_time(1581452773000000789ull, "2020-02-11 20:26:13.000000789 +0000 UTC");
    check_time(1544712660500000000ull, "2018-12-13 14:51:00.5 +0000 UTC");
    check_time(1544712660120000000ull, "2018-12-13 14:51:00.12 +0000 UTC");
    /* Past int64: pdata converts to int64 and the time lands before 1970. */
    check_time(UINT64_MAX, "1969-12-31 23:59:59.999999999 +0000 UTC");
}

static void check_double(double d, const char *want)
{
    char got[64];
    th__debug_format_double(d, got, sizeof(got));
    assert_string_equal(got, want);
}

static void test_double_format(void **state)
{
    (void)state;
    check_double(0, "0");
    check_double(-0.0, "-0");
    check_double(1, "1");
    check_double(100, "100");
    check_double(1.5, "1.5");
    check_double(-2.25, "-2.25");
    check_double(0.1, "0.1");
    check_double(0.3, "0.3");
    check_double(1.0 / 3, "0.3333333333333333");
    check_double(3.141592653589793, "3.141592653589793");
    check_double(123456789.125, "123456789.125");
    check_double(0.000001, "0.000001");
    check_double(0.0000001, "1e-7");
    check_double(1.5e-10, "1.5e-10");
    check_double(1e20, "100000000000000000000");
    check_double(1e21, "1e+21");
    check_double(1.2345e22, "1.2345e+22");
    check_double(1.7976931348623157e308, "1.7976931348623157e+308");
    check_double(5e-324, "5e-324");
    check_double(9007199254740993.0, "9007199254740992");
    check_double(NAN, "json: unsupported value: NaN");
    check_double(INFINITY, "json: unsupported value: +Inf");
    check_double(-INFINITY, "json: unsupported value: -Inf");
}

static void check_value(const th_otlp_any_t *v, const char *want)
{
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_value(v, &out), 0);
    assert_string_equal(buf_str(&out), want);
    th_buf_free(&out);
}

static void test_values(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    check_value(NULL, "Empty()");
    check_value(fx_any(a), "Empty()");
    check_value(fx_str(a, ""), "Str()");
    check_value(fx_str(a, "a b"), "Str(a b)");
    check_value(fx_int(a, INT64_MIN), "Int(-9223372036854775808)");
    check_value(fx_bool(a, false), "Bool(false)");
    check_value(fx_double(a, 2), "Double(2)");
    check_value(fx_bytes(a, "", 0), "Bytes()");
    check_value(fx_bytes(a, "a", 1), "Bytes(YQ==)");
    check_value(fx_bytes(a, "ab", 2), "Bytes(YWI=)");
    check_value(fx_array(a, 0, NULL), "Slice([])");
    check_value(fx_kvlist(a, 0, NULL), "Map({})");
    /* JSON strings as Go writes them: HTML-safe, U+2028/9 escaped, control characters,
     * invalid UTF-8 replaced. */
    th_otlp_any_t *s[] = {fx_str(a, "\"\\/\t\x01<>&\xe2\x80\xa8\xe2\x80\xa9\xff\xc3\xa9"),
                          fx_double(a, NAN), fx_any(a), fx_bytes(a, "\xff\xfe", 2)};
    check_value(fx_array(a, 4, s),
                "Slice([\"\\\"\\\\/\\t\\u0001\\u003c\\u003e\\u0026\\u2028\\u2029\\ufffd\xc3\xa9\","
                "null,null,\"//4=\"])");
    /* Maps: keys sorted, the last of duplicate keys wins, nesting kept. */
    th_otlp_any_t *inner_arr[] = {fx_int(a, 1), fx_kvlist(a, 0, NULL)};
    th_otlp_kv_t *kvs[] = {fx_kv(a, "b", fx_int(a, 1)), fx_kv(a, "a", fx_str(a, "first")),
                           fx_kv(a, "c", fx_array(a, 2, inner_arr)),
                           fx_kv(a, "a", fx_str(a, "last"))};
    check_value(fx_kvlist(a, 4, kvs), "Map({\"a\":\"last\",\"b\":1,\"c\":[1,{}]})");
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_value_text(fx_kvlist(a, 4, kvs), &out), 0);
    assert_string_equal(buf_str(&out), "{\"a\":\"last\",\"b\":1,\"c\":[1,{}]}");
    th_buf_free(&out);
    th_arena_destroy(a);
}

/* Nesting past the formatter's cap ends in null instead of recursing on. */
static void test_deep_value(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_any_t *v = fx_str(a, "x");
    for (int i = 0; i < 10000; i++) {
        v = fx_array(a, 1, &v);
    }
    th_buf_t out = {0};
    assert_int_equal(th__debug_format_value(v, &out), 0);
    const char *s = buf_str(&out);
    assert_non_null(strstr(s, "null"));
    assert_null(strstr(s, "\"x\""));
    th_buf_free(&out);
    th_arena_destroy(a);
}

static void test_sampler(void **state)
{
    (void)state;
    static struct th_debug_sampler s;
    const uint64_t t0 = 5000000000ull;
    th__debug_sampler_init(&s, 2, 3);
    /* Within one tick: the first two pass, then one in three. */
    bool want[] = {true, true, false, false, true, false, false, true};
    for (size_t i = 0; i < TH_ARRAY_SIZE(want); i++) {
        assert_int_equal(th__debug_sampler_allow(&s, "Traces", 6, t0 + i), want[i]);
    }
    /* A different message has its own counter. */
    assert_true(th__debug_sampler_allow(&s, "Other", 5, t0 + 10));
    /* The next tick starts over. */
    assert_true(th__debug_sampler_allow(&s, "Traces", 6, t0 + 1000000000ull));
    assert_true(th__debug_sampler_allow(&s, "Traces", 6, t0 + 1000000001ull));
    assert_false(th__debug_sampler_allow(&s, "Traces", 6, t0 + 1000000002ull));

    /* thereafter = 0: nothing after the initial ones. */
    th__debug_sampler_init(&s, 1, 0);
    assert_true(th__debug_sampler_allow(&s, "m", 1, t0));
    for (int i = 1; i < 20; i++) {
        assert_false(th__debug_sampler_allow(&s, "m", 1, t0 + (uint64_t)i));
    }
    /* The Collector's defaults (2, 1) let everything through. */
    th__debug_sampler_init(&s, 2, 1);
    for (int i = 0; i < 50; i++) {
        assert_true(th__debug_sampler_allow(&s, "m", 1, t0 + (uint64_t)i));
    }
}

/* Run consume of one fixture batch per call with fd @p fd redirected to a temp file, and
 * return what was written there. */
static char *capture_fd(int fd, struct th_component *c, int batches)
{
    char path[] = "/tmp/th-debug-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    fflush(stdout);
    fflush(stderr);
    int saved = dup(fd);
    dup2(tmp, fd);
    for (int i = 0; i < batches; i++) {
        assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fd);
    close(saved);
    off_t size = lseek(tmp, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    assert_int_equal(pread(tmp, text, (size_t)size, 0), size);
    close(tmp);
    unlink(path);
    return text;
}

static struct th_component *make(const char *verbosity, int64_t initial, int64_t thereafter,
                                 bool internal, struct th_debug_cfg *cfg)
{
    *cfg = (struct th_debug_cfg){
        .verbosity = verbosity,
        .sampling_initial = initial,
        .sampling_thereafter = thereafter,
        .use_internal_logger = internal,
    };
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_debug_ops, "debug", cfg, NULL, &c), 0);
    struct th_host host = {0};
    assert_int_equal(c->ops->start(c, &host), 0);
    return c;
}

static void test_stdout_detailed(void **state)
{
    (void)state;
    struct th_debug_cfg cfg;
    struct th_component *c = make("detailed", 2, 1, false, &cfg);
    char *text = capture_fd(STDOUT_FILENO, c, 1);
    /* The console encoder without time or level: message, tab, fields; the dump is its own
     * message, so a newline follows its last line. */
    size_t want_len =
        strlen("Traces\t{\"resource spans\": 1, \"spans\": 3}\n") + strlen(expected_detailed) + 1;
    char *want = malloc(want_len + 1);
    snprintf(want, want_len + 1, "Traces\t{\"resource spans\": 1, \"spans\": 3}\n%s\n",
             expected_detailed);
    assert_string_equal(text, want);
    free(want);
    free(text);
    assert_int_equal(c->stats.sent, 3);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
}

static void test_stdout_basic_sampled(void **state)
{
    (void)state;
    struct th_debug_cfg cfg;
    /* One message per second, then none: five batches in a burst give one line. */
    struct th_component *c = make("basic", 1, 0, false, &cfg);
    char *text = capture_fd(STDOUT_FILENO, c, 5);
    assert_string_equal(text, "Traces\t{\"resource spans\": 1, \"spans\": 3}\n");
    free(text);
    /* Every batch was still taken and counted. */
    assert_int_equal(c->stats.sent, 15);
    th_component_destroy(c);
}

static void test_internal_logger_normal(void **state)
{
    (void)state;
    th_log_configure(TH_LOG_INFO, TH_LOG_CONSOLE);
    struct th_debug_cfg cfg;
    struct th_component *c = make("normal", 2, 1, true, &cfg);
    char *text = capture_fd(STDERR_FILENO, c, 1);
    /* One record for the counts, then one per line of the dump, in order, with the
     * component's prefix. */
    const char *want[] = {
        "exporter/debug\tTraces {\"resource spans\": 1, \"spans\": 3}\n",
        "exporter/debug\tResourceTraces #0 [https://opentelemetry.io/schemas/1.4.0] "
        "service.name=checkout host.cpus=8 debug=false\n",
        "exporter/debug\tScopeTraces #0 io.tracehouse.test@1.2.3",
        "exporter/debug\tGET /cart " TID " eee19b7ec3c1b174 http.method=GET",
        "exporter/debug\tredis GET " TID " eee19b7ec3c1b173 db.system=redis\n",
        "exporter/debug\tserialize " TID " 0102030405060708\n",
    };
    const char *p = text;
    for (size_t i = 0; i < TH_ARRAY_SIZE(want); i++) {
        const char *hit = strstr(p, want[i]);
        if (!hit) {
            fail_msg("missing or out of order: %s\nin:\n%s", want[i], text);
        }
        p = hit + strlen(want[i]);
    }
    /* The info level filters it all out, as for any info message. */
    free(text);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    text = capture_fd(STDERR_FILENO, c, 1);
    assert_string_equal(text, "");
    free(text);
    th_log_configure(TH_LOG_INFO, TH_LOG_JSON);
    th_component_destroy(c);
}

/* A line longer than a log record holds is split, never cut: every byte arrives. */
static void test_internal_logger_long_line(void **state)
{
    (void)state;
    th_log_configure(TH_LOG_INFO, TH_LOG_CONSOLE);
    char *big = malloc(5001);
    for (int i = 0; i < 5000; i++) {
        big[i] = (char)('a' + i % 26);
    }
    big[5000] = '\0';
    th_batch_t *b = fx_batch_big(big);
    struct th_debug_cfg cfg;
    struct th_component *c = make("normal", 2, 1, true, &cfg);
    char path[] = "/tmp/th-debug-XXXXXX";
    int tmp = mkstemp(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(tmp, STDERR_FILENO);
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(tmp, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    assert_int_equal(pread(tmp, text, (size_t)size, 0), size);
    close(tmp);
    unlink(path);
    /* Reassemble the pieces: the text after each record's "exporter/debug\t" prefix. */
    th_buf_t all = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *m = strstr(line, "exporter/debug\t");
        assert_non_null(m);
        m += strlen("exporter/debug\t");
        assert_true(strlen(m) <= 512);
        th_buf_append(&all, m, strlen(m));
    }
    assert_non_null(strstr(buf_str(&all), big));
    th_buf_free(&all);
    free(text);
    free(big);
    th_log_configure(TH_LOG_INFO, TH_LOG_JSON);
    th_component_destroy(c);
}

static void test_config(void **state)
{
    (void)state;
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "debug"), &th_exporter_debug_ops);
    for (const struct th_cfg_field *f = th_exporter_debug_ops.config; f->name; f++) {
        assert_non_null(f->desc);
        assert_true(strlen(f->desc) > 0);
    }
    /* The defaults through the config layer, as a config file with `debug:` gets them. */
    th_arena_t *a = th_arena_create(0, 0);
    struct th_debug_cfg d;
    char err[256] = "";
    assert_int_equal(th_cfg_defaults(th_exporter_debug_ops.config, &d, a, err, sizeof(err)), 0);
    assert_string_equal(d.verbosity, "basic");
    assert_int_equal(d.sampling_initial, 2);
    assert_int_equal(d.sampling_thereafter, 1);
    assert_true(d.use_internal_logger);
    const char *msg = NULL;
    assert_int_equal(th_exporter_debug_ops.config_check(&d, &msg), 0);
    th_arena_destroy(a);

    /* An unknown verbosity is refused by check and by create. */
    struct th_debug_cfg bad = {.verbosity = "loud", .sampling_initial = 2};
    assert_int_equal(th_exporter_debug_ops.config_check(&bad, &msg), TH_ECONFIG);
    assert_non_null(strstr(msg, "verbosity"));
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_debug_ops, "debug", &bad, NULL, &c),
                     TH_ECONFIG);
    bad = (struct th_debug_cfg){.verbosity = "basic", .sampling_initial = -1};
    assert_int_equal(th_exporter_debug_ops.config_check(&bad, &msg), TH_ECONFIG);
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct th_debug_cfg cfg = {
        .verbosity = "detailed", .sampling_initial = 2, .sampling_thereafter = 1};
    struct th_component *c = NULL;
    /* Shutdown without start, twice; destroy without start. */
    assert_int_equal(th_component_create(&th_exporter_debug_ops, "debug", &cfg, NULL, &c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
    assert_int_equal(th_component_create(&th_exporter_debug_ops, "debug/2", &cfg, NULL, &c), 0);
    th_component_destroy(c);
    /* After shutdown, batches are refused and released (their acks settle). */
    c = make("basic", 2, 1, false, &cfg);
    assert_int_equal(c->ops->shutdown(c), 0);
    struct fx_acks acks = {0};
    th_batch_t *b = fx_batch();
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), TH_ESHUTDOWN);
    assert_int_equal(acks.settled, 1);
    th_component_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detailed_layout),
        cmocka_unit_test(test_normal_layout),
        cmocka_unit_test(test_detailed_empty_parts),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_double_format),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_deep_value),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_stdout_detailed),
        cmocka_unit_test(test_stdout_basic_sampled),
        cmocka_unit_test(test_internal_logger_normal),
        cmocka_unit_test(test_internal_logger_long_line),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
