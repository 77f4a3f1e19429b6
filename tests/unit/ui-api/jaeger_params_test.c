/*
 * Tests of the Jaeger query API's parameter parsing (ui-api/jaeger/jaeger_params.c): the
 * query string rules, the Go-compatible scalar parsers and every 400 message of the v1 and
 * api_v3 parameter sets, compared with the text Jaeger's Go code produces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ui-api/jaeger/jaeger_params.h"

static th_arena_t *arena;

static int setup(void **state)
{
    (void)state;
    arena = th_arena_create(0, 0);
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_arena_destroy(arena);
    return 0;
}

static th_jaeger_params_t parse(const char *qs)
{
    th_jaeger_params_t p;
    assert_int_equal(th_jaeger_params_parse(qs, strlen(qs), arena, &p), 0);
    return p;
}

static void test_query_string(void **state)
{
    (void)state;
    th_jaeger_params_t p = parse("a=1&b=x+y%2Fz&a=2&bare&&empty=&c=%zz&d;e=1&%41=ok&=v");
    assert_string_equal(th_jaeger_param_get(&p, "a"), "1");
    assert_int_equal(th_jaeger_param_count(&p, "a"), 2);
    assert_string_equal(th_jaeger_param_get(&p, "b"), "x y/z");
    /* a bare key is present with an empty value (the UI's null parameters) */
    assert_non_null(th_jaeger_param_get(&p, "bare"));
    assert_string_equal(th_jaeger_param_get(&p, "bare"), "");
    assert_string_equal(th_jaeger_param_get(&p, "empty"), "");
    /* bad escapes and ';' in a key make Go drop the pair */
    assert_null(th_jaeger_param_get(&p, "c"));
    assert_null(th_jaeger_param_get(&p, "d;e"));
    assert_string_equal(th_jaeger_param_get(&p, "A"), "ok");
    assert_string_equal(th_jaeger_param_get(&p, ""), "v");
    assert_string_equal(th_jaeger_param_value(&p, "missing"), "");
    assert_null(th_jaeger_param_get(&p, "missing"));
    /* a value may hold '=' */
    p = parse("tags=%7B%22a%22%3A%22b%3Dc%22%7D&x=a=b");
    assert_string_equal(th_jaeger_param_get(&p, "tags"), "{\"a\":\"b=c\"}");
    assert_string_equal(th_jaeger_param_get(&p, "x"), "a=b");
    p = parse("");
    assert_int_equal(p.n, 0);
    /* %00 decodes (lengths keep it) */
    p = parse("k=a%00b");
    assert_int_equal(p.v[0].value_len, 3);

    static char big[TH_JAEGER_MAX_QUERY_LEN + 2];
    memset(big, 'a', sizeof(big) - 1);
    assert_int_equal(th_jaeger_params_parse(big, sizeof(big) - 1, arena, &p), TH_E2BIG);

    char *out;
    size_t n;
    assert_int_equal(th_jaeger_unescape("a+b%20", 6, false, arena, &out, &n), 0);
    assert_string_equal(out, "a+b ");
    assert_int_equal(th_jaeger_unescape("ab%2", 4, false, arena, &out, &n), TH_EINVAL);
    assert_int_equal(th_jaeger_unescape("%", 1, false, arena, &out, &n), TH_EINVAL);
}

static void test_parse_int(void **state)
{
    (void)state;
    char err[256];
    int64_t v;
    assert_int_equal(th_jaeger_parse_int("ParseInt", "123", 64, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 123);
    assert_int_equal(
        th_jaeger_parse_int("ParseInt", "-9223372036854775808", 64, &v, err, sizeof(err)), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(th_jaeger_parse_int("ParseInt", "+7", 32, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 7);
    assert_int_equal(th_jaeger_parse_int("ParseInt", "x", 64, &v, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.ParseInt: parsing \"x\": invalid syntax");
    assert_int_equal(th_jaeger_parse_int("ParseInt", "", 64, &v, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.ParseInt: parsing \"\": invalid syntax");
    assert_int_equal(th_jaeger_parse_int("ParseInt", "2147483648", 32, &v, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "strconv.ParseInt: parsing \"2147483648\": value out of range");
    assert_int_equal(th_jaeger_parse_int("ParseInt", "-2147483648", 32, &v, err, sizeof(err)), 0);
    assert_int_equal(
        th_jaeger_parse_int("ParseInt", "9223372036854775808", 64, &v, err, sizeof(err)),
        TH_EINVAL);
    assert_string_equal(err,
                        "strconv.ParseInt: parsing \"9223372036854775808\": value out of range");
    assert_int_equal(th_jaeger_parse_int("Atoi", "1.5", 64, &v, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.Atoi: parsing \"1.5\": invalid syntax");
    /* Go's strconv.Quote: control bytes escaped, printable Unicode kept */
    assert_int_equal(th_jaeger_parse_int("ParseInt", "a\"\n\xc3\xa9\xff", 64, &v, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "strconv.ParseInt: parsing \"a\\\"\\n\xc3\xa9\\xff\": invalid syntax");

    bool b;
    assert_int_equal(th_jaeger_parse_bool("True", &b, err, sizeof(err)), 0);
    assert_true(b);
    assert_int_equal(th_jaeger_parse_bool("0", &b, err, sizeof(err)), 0);
    assert_false(b);
    assert_int_equal(th_jaeger_parse_bool("yes", &b, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.ParseBool: parsing \"yes\": invalid syntax");
}

static void test_go_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"+0", 0},
        {"1h30m", 5400000000000},
        {"1.5s", 1500000000},
        {".5s", 500000000},
        {"1.s", 1000000000},
        {"100ms", 100000000},
        {"3us", 3000},
        {"3\xc2\xb5s", 3000},
        {"3\xce\xbcs", 3000},
        {"7ns", 7},
        {"-2m", -120000000000},
        {"1h0.5m1s", 3631000000000},
        {"2562047h47m16.854775807s", INT64_MAX},
    };
    char err[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ns = -1;
        int rc = th_jaeger_parse_go_duration(ok[i].in, &ns, err, sizeof(err));
        if (rc != 0 || ns != ok[i].ns) {
            fail_msg("%s: rc %d ns %lld err %s", ok[i].in, rc, (long long)ns, err);
        }
    }
    static const struct {
        const char *in;
        const char *err;
    } bad[] = {
        {"", "time: invalid duration \"\""},
        {"x", "time: invalid duration \"x\""},
        {"1", "time: missing unit in duration \"1\""},
        {"10", "time: missing unit in duration \"10\""},
        {"1x", "time: unknown unit \"x\" in duration \"1x\""},
        {"1h 30m", "time: unknown unit \"h \" in duration \"1h 30m\""},
        {".s", "time: invalid duration \".s\""},
        {"-", "time: invalid duration \"-\""},
        {"1\xc2\xb5", "time: unknown unit \"\\xc2\\xb5\" in duration \"1\\xc2\\xb5\""},
        {"9999999999h", "time: invalid duration \"9999999999h\""},
        {"2562047h47m16.854775808s", "time: invalid duration \"2562047h47m16.854775808s\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ns;
        assert_int_equal(th_jaeger_parse_go_duration(bad[i].in, &ns, err, sizeof(err)), TH_EINVAL);
        assert_string_equal(err, bad[i].err);
    }
}

static void id_eq(const uint8_t id[16], const char *hex32)
{
    char got[33];
    for (int i = 0; i < 16; i++) {
        snprintf(got + 2 * i, 3, "%02x", id[i]);
    }
    assert_string_equal(got, hex32);
}

static void test_trace_id(void **state)
{
    (void)state;
    uint8_t id[16];
    char err[256];
    assert_int_equal(
        th_jaeger_parse_trace_id("5b8efff798038103d269b633813fc60c", false, id, err, sizeof(err)),
        0);
    id_eq(id, "5b8efff798038103d269b633813fc60c");
    assert_int_equal(th_jaeger_parse_trace_id("1", false, id, err, sizeof(err)), 0);
    id_eq(id, "00000000000000000000000000000001");
    assert_int_equal(th_jaeger_parse_trace_id("00000000000004D2", false, id, err, sizeof(err)), 0);
    id_eq(id, "000000000000000000000000000004d2");
    assert_int_equal(th_jaeger_parse_trace_id("1000000000000004d2", false, id, err, sizeof(err)),
                     0);
    id_eq(id, "000000000000001000000000000004d2");

    assert_int_equal(th_jaeger_parse_trace_id("zz", false, id, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.ParseUint: parsing \"zz\": invalid syntax");
    assert_int_equal(th_jaeger_parse_trace_id("", false, id, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "strconv.ParseUint: parsing \"\": invalid syntax");
    /* past 16 characters the high half is parsed first, and named alone */
    assert_int_equal(th_jaeger_parse_trace_id("x0000000000000000001", false, id, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "strconv.ParseUint: parsing \"x000\": invalid syntax");
    assert_int_equal(
        th_jaeger_parse_trace_id("0000000000000000000000000000000001", false, id, err, sizeof(err)),
        TH_EINVAL);
    assert_string_equal(err, "TraceID cannot be longer than 32 hex characters: "
                             "0000000000000000000000000000000001");
    assert_int_equal(th_jaeger_parse_trace_id("+1", false, id, err, sizeof(err)), TH_EINVAL);

    /* base64 on the by-id routes only: 16 bytes, 8 bytes, URL-safe, unpadded */
    assert_int_equal(
        th_jaeger_parse_trace_id("W47/95gDgQPSabYzgT/GDA==", true, id, err, sizeof(err)), 0);
    id_eq(id, "5b8efff798038103d269b633813fc60c");
    assert_int_equal(th_jaeger_parse_trace_id("W47_95gDgQPSabYzgT_GDA", true, id, err, sizeof(err)),
                     0);
    id_eq(id, "5b8efff798038103d269b633813fc60c");
    assert_int_equal(th_jaeger_parse_trace_id("AAAAAAAABNI=", true, id, err, sizeof(err)), 0);
    id_eq(id, "000000000000000000000000000004d2");
    assert_int_equal(
        th_jaeger_parse_trace_id("W47/95gDgQPSabYzgT/GDA==", false, id, err, sizeof(err)),
        TH_EINVAL);
    assert_string_equal(err, "strconv.ParseUint: parsing \"W47/95gD\": invalid syntax");
    /* base64 of 9 bytes is no id: the hex error stands */
    assert_int_equal(th_jaeger_parse_trace_id("AAAAAAAAAAAz", true, id, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "strconv.ParseUint: parsing \"AAAAAAAAAAAz\": invalid syntax");
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ns;
    char err[512];
    assert_int_equal(th_jaeger_parse_rfc3339("1970-01-01T00:00:01Z", &ns, err, sizeof(err)), 0);
    assert_int_equal(ns, 1000000000);
    assert_int_equal(th_jaeger_parse_rfc3339("2026-08-01T10:00:00.123Z", &ns, err, sizeof(err)), 0);
    assert_int_equal(ns, 1785578400123000000);
    assert_int_equal(
        th_jaeger_parse_rfc3339("2026-08-01T12:00:00.000000001+02:00", &ns, err, sizeof(err)), 0);
    assert_int_equal(ns, 1785578400000000001);
    /* an unencoded '+' arrives as a space */
    assert_int_equal(th_jaeger_parse_rfc3339("2026-08-01T12:00:00 02:00", &ns, err, sizeof(err)),
                     0);
    assert_int_equal(ns, 1785578400000000000);
    assert_int_equal(th_jaeger_parse_rfc3339("2024-02-29T00:00:00-00:30", &ns, err, sizeof(err)),
                     0);

    static const struct {
        const char *in;
        const char *err;
    } bad[] = {
        {"x", "parsing time \"x\" as \"2006-01-02T15:04:05.999999999Z07:00\": cannot parse "
              "\"x\" as \"2006\""},
        {"2026-08-01", "parsing time \"2026-08-01\" as \"2006-01-02T15:04:05.999999999Z07:00\": "
                       "cannot parse \"\" as \"T\""},
        {"2026-8-01T00:00:00Z", "parsing time \"2026-8-01T00:00:00Z\" as "
                                "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse "
                                "\"8-01T00:00:00Z\" as \"01\""},
        {"2026-08-01T00:00:00", "parsing time \"2026-08-01T00:00:00\" as "
                                "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"\" as "
                                "\"Z07:00\""},
        {"2026-13-01T00:00:00Z", "parsing time \"2026-13-01T00:00:00Z\": month out of range"},
        {"2026-02-30T00:00:00Z", "parsing time \"2026-02-30T00:00:00Z\": day out of range"},
        {"2026-02-01T24:00:00Z", "parsing time \"2026-02-01T24:00:00Z\": hour out of range"},
        {"2026-02-01T00:00:00Zjunk",
         "parsing time \"2026-02-01T00:00:00Zjunk\": extra text: \"junk\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(th_jaeger_parse_rfc3339(bad[i].in, &ns, err, sizeof(err)), TH_EINVAL);
        assert_string_equal(err, bad[i].err);
    }
}

static void test_tags_json(void **state)
{
    (void)state;
    struct th_jaeger_tags t = {0};
    char err[256];
    const char *js = "{\"http.status_code\":\"500\",\"error\":\"true\",\"a\":null,"
                     "\"u\":\"\\u00e9\\ud83d\\ude00\\n\",\"http.status_code\":\"404\"}";
    assert_int_equal(th_jaeger_parse_tags_json(js, strlen(js), arena, &t, err, sizeof(err)), 0);
    assert_int_equal(t.n, 4);
    assert_string_equal(t.keys[0], "http.status_code");
    assert_string_equal(t.values[0], "404"); /* later keys win */
    assert_string_equal(t.values[1], "true");
    assert_string_equal(t.values[2], "");
    assert_string_equal(t.values[3], "\xc3\xa9\xf0\x9f\x98\x80\n");
    struct th_jaeger_tags none = {0};
    assert_int_equal(th_jaeger_parse_tags_json(" null ", 6, arena, &none, err, sizeof(err)), 0);
    assert_int_equal(none.n, 0);

    static const struct {
        const char *in;
        const char *err;
    } bad[] = {
        {"", "unexpected end of JSON input"},
        {"{\"a\":\"b\"", "unexpected end of JSON input"},
        {"x", "invalid character 'x' looking for beginning of value"},
        {"{a:1}", "invalid character 'a' looking for beginning of object key string"},
        {"{\"a\" 1}", "invalid character '1' after object key"},
        {"{\"a\":\"b\" \"c\"}", "invalid character '\"' after object key:value pair"},
        {"{\"a\":[1 2]}", "invalid character '2' after array element"},
        {"{\"a\":tru}", "invalid character '}' in literal true (expecting 'e')"},
        {"{\"a\":-x}", "invalid character 'x' in numeric literal"},
        {"{\"a\":1.x}", "invalid character 'x' after decimal point in numeric literal"},
        {"{\"a\":1ex}", "invalid character 'x' in exponent of numeric literal"},
        {"{\"a\":\"\\x\"}", "invalid character 'x' in string escape code"},
        {"{\"a\":\"\\u12g4\"}", "invalid character 'g' in \\u hexadecimal character escape"},
        {"{\"a\":\"\n\"}", "invalid character '\\n' in string literal"},
        {"{} {}", "invalid character '{' after top-level value"},
        {"{\"a\":1}", "json: cannot unmarshal number into Go value of type string"},
        {"{\"a\":true}", "json: cannot unmarshal bool into Go value of type string"},
        {"{\"a\":{}}", "json: cannot unmarshal object into Go value of type string"},
        {"{\"a\":[]}", "json: cannot unmarshal array into Go value of type string"},
        {"[]", "json: cannot unmarshal array into Go value of type map[string]string"},
        {"\"s\"", "json: cannot unmarshal string into Go value of type map[string]string"},
        {"1", "json: cannot unmarshal number into Go value of type map[string]string"},
        /* a syntax error anywhere wins over a type error before it */
        {"{\"a\":1,\"b\":x}", "invalid character 'x' looking for beginning of value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct th_jaeger_tags x = {0};
        int rc =
            th_jaeger_parse_tags_json(bad[i].in, strlen(bad[i].in), arena, &x, err, sizeof(err));
        if (rc != TH_EINVAL || strcmp(err, bad[i].err) != 0) {
            fail_msg("%s: rc %d err '%s' want '%s'", bad[i].in, rc, err, bad[i].err);
        }
        assert_int_equal(x.n, 0); /* nothing applied on failure */
    }
    /* nesting is bounded */
    char deep[2 * TH_JAEGER_MAX_JSON_DEPTH + 20];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4);
    n += 4;
    for (int i = 0; i < TH_JAEGER_MAX_JSON_DEPTH + 5; i++) {
        deep[n++] = '[';
    }
    assert_int_equal(th_jaeger_parse_tags_json(deep, n, arena, &t, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "exceeded max depth");
}

/* ---- v1 ------------------------------------------------------------------------------------ */

#define NOW ((int64_t)1700000000 * 1000000000)

static int v1(const char *qs, struct th_jaeger_search *s, char *err, size_t errlen)
{
    th_jaeger_params_t p = parse(qs);
    return th_jaeger_parse_v1_search(&p, NOW, arena, s, err, errlen);
}

static void v1_err(const char *qs, const char *want)
{
    struct th_jaeger_search s;
    char err[1024];
    int rc = v1(qs, &s, err, sizeof(err));
    if (rc != TH_EINVAL || strcmp(err, want) != 0) {
        fail_msg("%s: rc %d err '%s' want '%s'", qs, rc, err, want);
    }
}

static void test_v1_search(void **state)
{
    (void)state;
    struct th_jaeger_search s;
    char err[1024];
    /* defaults: the last 48 hours, 100 traces; the UI's bare keys are empty values */
    assert_int_equal(
        v1("service=frontend&minDuration&maxDuration&lookback=1h", &s, err, sizeof(err)), 0);
    assert_string_equal(s.service, "frontend");
    assert_string_equal(s.operation, "");
    assert_int_equal(s.start_min_ns, NOW - (int64_t)48 * 3600 * 1000000000);
    assert_int_equal(s.start_max_ns, NOW);
    assert_int_equal(s.limit, 100);
    assert_int_equal(s.duration_min_ns, 0);
    assert_int_equal(s.tags.n, 0);
    assert_false(s.raw);

    /* every parameter */
    assert_int_equal(
        v1("service=frontend&operation=HTTP+GET&start=1000&end=2000&limit=20&minDuration=1.5ms"
           "&maxDuration=1s&tag=url:http://x:1&tag=a:b&tags=%7B%22a%22%3A%22c%22%2C%22e%22%3A%22"
           "true%22%7D&raw=true",
           &s, err, sizeof(err)),
        0);
    assert_string_equal(s.operation, "HTTP GET");
    assert_int_equal(s.start_min_ns, 1000000);
    assert_int_equal(s.start_max_ns, 2000000);
    assert_int_equal(s.limit, 20);
    assert_int_equal(s.duration_min_ns, 1500000);
    assert_int_equal(s.duration_max_ns, 1000000000);
    assert_true(s.raw);
    assert_int_equal(s.tags.n, 3);
    assert_string_equal(s.tags.keys[0], "url");
    assert_string_equal(s.tags.values[0], "http://x:1");
    assert_string_equal(s.tags.keys[1], "a");
    assert_string_equal(s.tags.values[1], "c"); /* tags JSON applied after tag= */
    assert_string_equal(s.tags.keys[2], "e");

    /* traceID mode: no service needed; ids in order */
    assert_int_equal(v1("traceID=1&traceID=00000000000004d2&traceID=5b8efff798038103d269b633813"
                        "fc60c",
                        &s, err, sizeof(err)),
                     0);
    assert_int_equal(s.n_trace_ids, 3);
    id_eq(s.trace_ids[1], "000000000000000000000000000004d2");

    v1_err("", "parameter 'service' is required");
    v1_err("service=", "parameter 'service' is required");
    v1_err("service=a&start=x",
           "unable to parse param 'start': strconv.ParseInt: parsing \"x\": invalid syntax");
    v1_err("service=a&end=1.5",
           "unable to parse param 'end': strconv.ParseInt: parsing \"1.5\": invalid syntax");
    v1_err("service=a&limit=x", "strconv.ParseInt: parsing \"x\": invalid syntax");
    v1_err("service=a&limit=3000000000",
           "strconv.ParseInt: parsing \"3000000000\": value out of range");
    v1_err("service=a&minDuration=x",
           "unable to parse param 'minDuration': time: invalid duration \"x\"");
    v1_err("service=a&minDuration=100",
           "unable to parse param 'minDuration': time: missing unit in duration \"100\"");
    v1_err("service=a&maxDuration=1d",
           "unable to parse param 'maxDuration': time: unknown unit \"d\" in duration \"1d\"");
    v1_err("service=a&minDuration=2s&maxDuration=1s",
           "'maxDuration' should be greater than 'minDuration'");
    v1_err("service=a&tag=nocolon",
           "malformed 'tag' parameter, expecting key:value, received: nocolon");
    v1_err("service=a&tags=x", "malformed 'tags' parameter, cannot unmarshal JSON: invalid "
                               "character 'x' looking for beginning of value");
    v1_err("service=a&tags", "malformed 'tags' parameter, cannot unmarshal JSON: unexpected end "
                             "of JSON input");
    v1_err("service=a&tags=%7B%22a%22%3A1%7D", "malformed 'tags' parameter, cannot unmarshal "
                                               "JSON: json: cannot unmarshal number into Go "
                                               "value of type string");
    v1_err("traceID=xyz", "cannot parse traceID param: strconv.ParseUint: parsing \"xyz\": "
                          "invalid syntax");
    v1_err("service=a&raw=maybe",
           "unable to parse param 'raw': strconv.ParseBool: parsing \"maybe\": invalid syntax");
    /* parse errors come in Jaeger's order: start before limit before durations */
    v1_err("service=a&limit=x&start=y",
           "unable to parse param 'start': strconv.ParseInt: parsing \"y\": invalid syntax");

    /* the traceID bound */
    size_t cap = (TH_JAEGER_MAX_TRACE_IDS + 1) * 10 + 1;
    char *many = th_arena_alloc(arena, cap);
    size_t n = 0;
    for (int i = 0; i <= TH_JAEGER_MAX_TRACE_IDS; i++) {
        n += (size_t)snprintf(many + n, cap - n, "%straceID=1", i ? "&" : "");
    }
    assert_int_equal(v1(many, &s, err, sizeof(err)), TH_E2BIG);
    assert_non_null(strstr(err, "traceID"));
}

static void test_v1_other(void **state)
{
    (void)state;
    char err[1024];
    bool raw = true;
    th_jaeger_params_t p = parse("start=1&end=2");
    assert_int_equal(th_jaeger_parse_v1_get_trace(&p, &raw, err, sizeof(err)), 0);
    assert_false(raw);
    p = parse("raw=1");
    assert_int_equal(th_jaeger_parse_v1_get_trace(&p, &raw, err, sizeof(err)), 0);
    assert_true(raw);
    p = parse("start=abc");
    assert_int_equal(th_jaeger_parse_v1_get_trace(&p, &raw, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "unable to parse param 'start': strconv.ParseInt: parsing \"abc\": "
                             "invalid syntax");

    int64_t end, lb;
    p = parse("");
    assert_int_equal(th_jaeger_parse_v1_dependencies(&p, NOW, &end, &lb, err, sizeof(err)), 0);
    assert_int_equal(end, NOW);
    assert_int_equal(lb, (int64_t)24 * 3600 * 1000000000);
    p = parse("endTs=1700000000000&lookback=604800000");
    assert_int_equal(th_jaeger_parse_v1_dependencies(&p, NOW, &end, &lb, err, sizeof(err)), 0);
    assert_int_equal(end, NOW);
    assert_int_equal(lb, (int64_t)604800 * 1000000000);
    p = parse("endTs=now");
    assert_int_equal(th_jaeger_parse_v1_dependencies(&p, NOW, &end, &lb, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "unable to parse param 'endTs': strconv.ParseInt: parsing \"now\": "
                             "invalid syntax");
    p = parse("lookback=1h");
    assert_int_equal(th_jaeger_parse_v1_dependencies(&p, NOW, &end, &lb, err, sizeof(err)),
                     TH_EINVAL);
    assert_string_equal(err, "unable to parse param 'lookback': strconv.ParseInt: parsing \"1h\": "
                             "invalid syntax");

    assert_int_equal(th_jaeger_span_kind_parse("server"), 2);
    assert_int_equal(th_jaeger_span_kind_parse("CONSUMER"), 5);
    assert_int_equal(th_jaeger_span_kind_parse("unspecified"), 0);
    assert_int_equal(th_jaeger_span_kind_parse("bogus"), -1);
    assert_string_equal(th_jaeger_span_kind_name(1), "internal");
    assert_string_equal(th_jaeger_span_kind_name(0), "");
}

/* ---- api_v3 ------------------------------------------------------------------------------- */

static void v3_err(const char *qs, const char *want)
{
    struct th_jaeger_search s;
    char err[1024];
    th_jaeger_params_t p = parse(qs);
    int rc = th_jaeger_parse_v3_search(&p, arena, &s, err, sizeof(err));
    if (rc != TH_EINVAL || strcmp(err, want) != 0) {
        fail_msg("%s: rc %d err '%s' want '%s'", qs, rc, err, want);
    }
}

static void test_v3(void **state)
{
    (void)state;
    struct th_jaeger_search s;
    char err[1024];
    th_jaeger_params_t p = parse(
        "query.serviceName=frontend&query.operationName=GET&query.startTimeMin=2026-08-01T10:00:"
        "00.000Z&query.startTimeMax=2026-08-01T11:00:00Z&query.searchDepth=20&query.durationMin="
        "10ms&query.durationMax=1s&query.attributes=%7B%22a%22%3A%22b%22%7D&query.rawTraces="
        "true");
    assert_int_equal(th_jaeger_parse_v3_search(&p, arena, &s, err, sizeof(err)), 0);
    assert_string_equal(s.service, "frontend");
    assert_string_equal(s.operation, "GET");
    assert_int_equal(s.start_min_ns, 1785578400000000000);
    assert_int_equal(s.start_max_ns, 1785582000000000000);
    assert_int_equal(s.limit, 20);
    assert_int_equal(s.duration_min_ns, 10000000);
    assert_int_equal(s.duration_max_ns, 1000000000);
    assert_int_equal(s.tags.n, 1);
    assert_true(s.raw);

    /* the deprecated snake_case names; query.num_traces too; default depth 100 */
    p = parse("query.service_name=x&query.operation_name=y&query.start_time_min=2026-08-01T10:00:"
              "00Z&query.start_time_max=2026-08-01T11:00:00Z&query.raw_traces=0");
    assert_int_equal(th_jaeger_parse_v3_search(&p, arena, &s, err, sizeof(err)), 0);
    assert_string_equal(s.service, "x");
    assert_string_equal(s.operation, "y");
    assert_int_equal(s.limit, 100);
    p = parse("query.service_name=x&query.start_time_min=2026-08-01T10:00:00Z&query.start_time_"
              "max=2026-08-01T11:00:00Z&query.num_traces=7&query.serviceName=canonical");
    assert_int_equal(th_jaeger_parse_v3_search(&p, arena, &s, err, sizeof(err)), 0);
    assert_int_equal(s.limit, 7);
    assert_string_equal(s.service, "canonical");

#define TIMES "query.startTimeMin=2026-08-01T10:00:00Z&query.startTimeMax=2026-08-01T11:00:00Z"
    v3_err("query.serviceName=x", "query.startTimeMin and query.startTimeMax are required");
    v3_err("query.startTimeMin=2026-08-01T10:00:00Z",
           "query.startTimeMin and query.startTimeMax are required");
    v3_err("query.startTimeMin=2026-08-01T11:00:00Z&query.startTimeMax=2026-08-01T10:00:00Z",
           "query.startTimeMin must be before query.startTimeMax");
    v3_err("query.startTimeMin=yesterday&query.startTimeMax=2026-08-01T10:00:00Z",
           "malformed parameter query.startTimeMin: parsing time \"yesterday\" as "
           "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"yesterday\" as \"2006\"");
    v3_err("query.start_time_min=2026-08-01T10:00:00Z&query.start_time_max=2026-08-01",
           "malformed parameter query.start_time_max: parsing time \"2026-08-01\" as "
           "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"\" as \"T\"");
    v3_err(TIMES "&query.searchDepth=ten",
           "malformed parameter query.searchDepth: strconv.Atoi: parsing \"ten\": invalid "
           "syntax");
    v3_err(TIMES "&query.durationMin=5",
           "malformed parameter query.durationMin: time: missing unit in duration \"5\"");
    v3_err(TIMES "&query.duration_max=x",
           "malformed parameter query.duration_max: time: invalid duration \"x\"");
    v3_err(TIMES "&query.attributes=%5B%5D",
           "malformed parameter query.attributes: json: cannot unmarshal array into Go value of "
           "type map[string]string");
    v3_err(TIMES "&query.rawTraces=perhaps",
           "malformed parameter query.rawTraces: strconv.ParseBool: parsing \"perhaps\": invalid "
           "syntax");

    bool raw;
    p = parse("startTime=2026-08-01T10:00:00Z&raw_traces=true");
    assert_int_equal(th_jaeger_parse_v3_get_trace(&p, &raw, err, sizeof(err)), 0);
    assert_true(raw);
    p = parse("end_time=soon");
    assert_int_equal(th_jaeger_parse_v3_get_trace(&p, &raw, err, sizeof(err)), TH_EINVAL);
    assert_string_equal(err, "malformed parameter end_time: parsing time \"soon\" as "
                             "\"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"soon\" as "
                             "\"2006\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_string), cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_go_duration),  cmocka_unit_test(test_trace_id),
        cmocka_unit_test(test_rfc3339),      cmocka_unit_test(test_tags_json),
        cmocka_unit_test(test_v1_search),    cmocka_unit_test(test_v1_other),
        cmocka_unit_test(test_v3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
