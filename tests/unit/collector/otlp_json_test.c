/*
 * Tests of OTLP/JSON: decoding (the otlp.md §3 example, the shapes the JS SDK sends, the
 * lenient forms the Collector accepts, every hostile input with its exact result code) and
 * encoding (its format rules, and the round trip decode_json(encode_json(x)) == x compared
 * as packed protobuf bytes, on the bench payloads and on a message with every value type).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/json_reader.h"
#include "th/otlp.h"

/* otlp.md §1.7: the same content as the §3 example. */
static const uint8_t VEC146[] = {
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

/* otlp.md §3, verbatim. */
static const char SPEC_EXAMPLE[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"stringValue\":\"svc\"}}]},\n"
    "  \"scopeSpans\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},\n"
    "    \"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":"
    "\"eee19b7ec3c1b174\",\n"
    "      \"flags\":769,\"name\":\"op\",\"kind\":2,\n"
    "      \"startTimeUnixNano\":\"1544712660000000000\",\"endTimeUnixNano\":"
    "\"1544712661000000000\",\n"
    "      \"attributes\":[{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":"
    "\"500\"}}],\n"
    "      \"status\":{\"code\":2,\"message\":\"boom\"}}]}]}]}";

struct result {
    int rc;
    th_arena_t *arena;
    th_otlp_request_t *req;
    struct th_otlp_error err;
};

static void decode(const char *json, size_t len, const struct th_otlp_limits *lim, struct result *r)
{
    r->arena = th_arena_create(0, 0);
    assert_non_null(r->arena);
    r->req = NULL;
    r->rc = th_otlp_decode_json((const uint8_t *)json, len, lim, r->arena, &r->req, &r->err);
}

static void done(struct result *r)
{
    th_arena_destroy(r->arena);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
}

/* Decode and check the packed result equals @p want. */
static void same_as(const char *json, const uint8_t *want, size_t wlen)
{
    struct result r;
    decode(json, strlen(json), NULL, &r);
    if (r.rc) {
        print_error("%s\n", r.err.msg);
    }
    assert_int_equal(r.rc, 0);
    size_t n;
    uint8_t *b = pack(&r.req->base, &n);
    if (n != wlen || memcmp(b, want, n) != 0) {
        print_error("packed %zu bytes, wanted %zu, from %s\n", n, wlen, json);
        fail();
    }
    free(b);
    done(&r);
}

static void expect_n(const char *json, size_t len, const struct th_otlp_limits *lim, int rc,
                     const char *msg)
{
    struct result r;
    decode(json, len, lim, &r);
    if (r.rc != rc || (msg && !strstr(r.err.msg, msg))) {
        print_error("got %d (%s) '%s', wanted %d with '%s' for %.200s\n", r.rc, th_strerror(r.rc),
                    r.rc ? r.err.msg : "", rc, msg ? msg : "", json);
        fail();
    }
    done(&r);
}

static void expect(const char *json, int rc, const char *msg)
{
    expect_n(json, strlen(json), NULL, rc, msg);
}

/* A request with one span: @p span_fields go inside the span after valid ids. */
static char *one_span(const char *span_fields)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
             "\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\"%s%s}]}]}]}",
             span_fields[0] ? "," : "", span_fields);
    return buf;
}

/* The value of the first attribute of the first span, from an attribute value's JSON. */
static const th_otlp_any_t *value_of(struct result *r, const char *value_json)
{
    char fields[4096];
    snprintf(fields, sizeof(fields), "\"attributes\":[{\"key\":\"k\",\"value\":%s}]", value_json);
    decode(one_span(fields), strlen(one_span(fields)), NULL, r);
    if (r->rc) {
        print_error("%s: %s\n", value_json, r->err.msg);
        return NULL;
    }
    return r->req->resource_spans[0]->scope_spans[0]->spans[0]->attributes[0]->value;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n + 1 : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

/* ---- Decoding -------------------------------------------------------------------------------- */

static void test_spec_example(void **state)
{
    (void)state;
    same_as(SPEC_EXAMPLE, VEC146, sizeof(VEC146));
}

/* What @opentelemetry/exporter-trace-otlp-http sends: numbers for intValue and (without
 * BigInt) timestamps, ids in hex, explicit zero counts and empty arrays. */
static void test_js_sdk_shapes(void **state)
{
    (void)state;
    same_as("{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
            "\"value\":{\"stringValue\":\"svc\"}}],\"droppedAttributesCount\":0},"
            "\"scopeSpans\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},"
            "\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
            "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"op\",\"kind\":2,"
            "\"startTimeUnixNano\":1544712660000000000,\"endTimeUnixNano\":1544712661000000000,"
            "\"attributes\":[{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":500}}],"
            "\"droppedAttributesCount\":0,\"events\":[],\"droppedEventsCount\":0,"
            "\"status\":{\"code\":2,\"message\":\"boom\"},\"links\":[],\"droppedLinksCount\":0,"
            "\"flags\":769}]}]}]}",
            VEC146, sizeof(VEC146));
    /* Timestamps as strings (BigInt available), exponent forms, and a JS double. */
    struct result r;
    decode(one_span("\"startTimeUnixNano\":\"1735689660309510000\",\"endTimeUnixNano\":"
                    "1.54471266e18,\"attributes\":[{\"key\":\"d\",\"value\":{\"doubleValue\":"
                    "0.25}},{\"key\":\"b\",\"value\":{\"boolValue\":true}}]"),
           strlen(one_span("\"startTimeUnixNano\":\"1735689660309510000\",\"endTimeUnixNano\":"
                           "1.54471266e18,\"attributes\":[{\"key\":\"d\",\"value\":{"
                           "\"doubleValue\":0.25}},{\"key\":\"b\",\"value\":{\"boolValue\":"
                           "true}}]")),
           NULL, &r);
    assert_int_equal(r.rc, 0);
    th_otlp_span_t *sp = r.req->resource_spans[0]->scope_spans[0]->spans[0];
    assert_true(sp->start_time_unix_nano == 1735689660309510000ull);
    assert_true(sp->end_time_unix_nano == 1544712660000000000ull);
    assert_true(sp->attributes[0]->value->double_value == 0.25);
    assert_true(sp->attributes[1]->value->bool_value);
    done(&r);
}

/* Forms the Collector accepts besides canonical OTLP/JSON: all decode to the vector. */
static void test_lenient_forms(void **state)
{
    (void)state;
    /* snake_case keys, enum names, 32-bit numbers as strings, uppercase hex. */
    same_as("{\"resource_spans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
            "\"value\":{\"string_value\":\"svc\"}}]},\"scope_spans\":[{\"scope\":{\"name\":"
            "\"lib\",\"version\":\"1.0\"},\"spans\":[{\"trace_id\":"
            "\"5B8EFFF798038103D269B633813FC60C\",\"span_id\":\"EEE19B7EC3C1B174\","
            "\"flags\":\"769\",\"name\":\"op\",\"kind\":\"SPAN_KIND_SERVER\","
            "\"start_time_unix_nano\":\"1544712660000000000\",\"end_time_unix_nano\":"
            "\"1544712661000000000\",\"attributes\":[{\"key\":\"http.response.status_code\","
            "\"value\":{\"int_value\":\"5e2\"}}],\"status\":{\"code\":\"STATUS_CODE_ERROR\","
            "\"message\":\"boom\"}}]}]}]}",
            VEC146, sizeof(VEC146));
    /* Duplicate keys (last wins), nulls, unknown fields of any shape, whitespace, escapes in
     * keys and values, a byte order mark. */
    same_as("\xef\xbb\xbf {\"unknown\":{\"a\":[1,{\"b\":null},[[\"x\"]]],\"c\":true},\n"
            " \"resourceSpans\" : [ {\"resource\":{\"attributes\":[{\"key\":\"service.name\","
            "\"value\":{\"stringValue\":\"svc\"},\"extra\":[]}]},\"schemaUrl\":null,"
            "\"scopeSpans\":[{\"scope\":null,\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},"
            "\"spans\":[{\"name\":\"first\",\"traceId\":\"5b8efff798038103d269b633813fc60c\","
            "\"span\\u0049d\":\"eee19b7ec3c1b174\",\"flags\":1,\"flags\":769,\"name\":\"\\u006fp\","
            "\"kind\":2,\"traceState\":null,\"parentSpanId\":\"\",\"startTimeUnixNano\":"
            "\"1544712660000000000\",\"endTimeUnixNano\":\"1544712661000000000\",\"attributes\":"
            "[{\"key\":\"http.response.status_code\",\"value\":{\"stringValue\":null,"
            "\"intValue\":\"500\"}}],\"status\":null,\"status\":{\"code\":2,\"message\":\"boom\","
            "\"future\":{\"x\":1}},\"newField\":[1,2,3]}]}]}],\"more\":\"stuff\"}\r\n",
            VEC146, sizeof(VEC146));
}

static void test_value_types(void **state)
{
    (void)state;
    struct result r;
    const th_otlp_any_t *v;

    v = value_of(&r, "{\"stringValue\":\"a\\u00e9\\ud83d\\ude00\"}");
    assert_non_null(v);
    assert_int_equal(v->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(v->string_value, "a\xc3\xa9\xf0\x9f\x98\x80");
    done(&r);

    v = value_of(&r, "{\"stringValue\":\"\"}"); /* set, though empty */
    assert_int_equal(v->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(v->string_value, "");
    done(&r);

    v = value_of(&r, "{\"boolValue\":false}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
    assert_false(v->bool_value);
    done(&r);

    static const struct {
        const char *json;
        int64_t want;
    } ints[] = {
        {"{\"intValue\":\"-5\"}", -5},
        {"{\"intValue\":-5}", -5},
        {"{\"intValue\":9007199254740993}", 9007199254740993ll}, /* > 2^53, exact */
        {"{\"intValue\":\"9223372036854775807\"}", INT64_MAX},
        {"{\"intValue\":\"-9223372036854775808\"}", INT64_MIN},
        {"{\"intValue\":0}", 0},
        {"{\"intValue\":\"1e3\"}", 1000},
        {"{\"intValue\":12.0}", 12},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(ints); i++) {
        v = value_of(&r, ints[i].json);
        assert_non_null(v);
        assert_int_equal(v->value_case,
                         OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
        assert_true(v->int_value == ints[i].want);
        done(&r);
    }

    static const struct {
        const char *json;
        double want;
    } dbls[] = {
        {"{\"doubleValue\":1.5}", 1.5},
        {"{\"doubleValue\":-2e-3}", -2e-3},
        {"{\"doubleValue\":\"3.25\"}", 3.25},
        {"{\"doubleValue\":\"Infinity\"}", INFINITY},
        {"{\"doubleValue\":\"-Infinity\"}", -INFINITY},
        {"{\"doubleValue\":5e-324}", 5e-324},
        {"{\"doubleValue\":1.7976931348623157e308}", 1.7976931348623157e308},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(dbls); i++) {
        v = value_of(&r, dbls[i].json);
        assert_non_null(v);
        assert_int_equal(v->value_case,
                         OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE);
        assert_true(v->double_value == dbls[i].want);
        done(&r);
    }
    v = value_of(&r, "{\"doubleValue\":\"NaN\"}");
    assert_true(isnan(v->double_value));
    done(&r);

    static const char *b64[] = {
        "{\"bytesValue\":\"aGn7/78=\"}", /* standard, padded */
        "{\"bytesValue\":\"aGn7_78\"}",  /* URL-safe, unpadded */
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(b64); i++) {
        v = value_of(&r, b64[i]);
        assert_int_equal(v->value_case,
                         OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
        assert_int_equal(v->bytes_value.len, 5);
        assert_memory_equal(v->bytes_value.data, "hi\xfb\xff\xbf", 5);
        done(&r);
    }
    static const char *pads[] = {"\"aGk=\"", "\"aGk\"", "\"aA==\"", "\"aA\""};
    static const char *pads_want[] = {"hi", "hi", "h", "h"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(pads); i++) {
        char j[64];
        snprintf(j, sizeof(j), "{\"bytesValue\":%s}", pads[i]);
        v = value_of(&r, j);
        assert_int_equal(v->bytes_value.len, strlen(pads_want[i]));
        assert_memory_equal(v->bytes_value.data, pads_want[i], v->bytes_value.len);
        done(&r);
    }
    v = value_of(&r, "{\"bytesValue\":\"\"}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
    assert_int_equal(v->bytes_value.len, 0);
    done(&r);

    v = value_of(&r, "{\"arrayValue\":{\"values\":[{\"intValue\":\"1\"},{},{\"arrayValue\":{}}]}}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
    assert_int_equal(v->array_value->n_values, 3);
    assert_int_equal(v->array_value->values[1]->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    assert_int_equal(v->array_value->values[2]->array_value->n_values, 0);
    done(&r);

    v = value_of(&r, "{\"kvlistValue\":{\"values\":[{\"key\":\"a\",\"value\":{\"boolValue\":"
                     "true}},{\"key\":\"b\"}]}}");
    assert_int_equal(v->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE);
    assert_int_equal(v->kvlist_value->n_values, 2);
    assert_string_equal(v->kvlist_value->values[0]->key, "a");
    assert_null(v->kvlist_value->values[1]->value);
    done(&r);

    v = value_of(&r, "{}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    done(&r);
    v = value_of(&r, "{\"stringValue\":null}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    done(&r);
    /* The last member given wins. */
    v = value_of(&r, "{\"stringValue\":\"s\",\"intValue\":7}");
    assert_int_equal(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
    assert_int_equal(v->int_value, 7);
    done(&r);
}

static void test_ids(void **state)
{
    (void)state;
    expect("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
           "\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee1\"}]}]}]}",
           TH_EDECODE, "resource_spans[0].scope_spans[0].spans[0].span_id: must be 8 bytes, got 2");
    expect("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8e\",\"spanId\":"
           "\"eee19b7ec3c1b174\"}]}]}]}",
           TH_EDECODE, "spans[0].trace_id: must be 16 bytes, got 2");
    expect("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"\",\"spanId\":"
           "\"eee19b7ec3c1b174\"}]}]}]}",
           TH_EDECODE, "spans[0].trace_id: must be 16 bytes, got 0");
    expect(
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"spanId\":\"eee19b7ec3c1b174\"}]}]}]}",
        TH_EDECODE, "spans[0].trace_id: must be 16 bytes, got 0");
    expect("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
           "\"00000000000000000000000000000000\",\"spanId\":\"eee19b7ec3c1b174\"}]}]}]}",
           TH_EDECODE, "spans[0].trace_id: must not be all zero");
    expect(one_span("\"spanId\":\"0000000000000000\""), TH_EDECODE,
           "spans[0].span_id: must not be all zero");
    expect(one_span("\"parentSpanId\":\"eee19b7ec3\""), TH_EDECODE,
           "spans[0].parent_span_id: must be empty or 8 bytes, got 5");
    expect(one_span("\"parentSpanId\":\"\""), 0, NULL);
    expect(one_span("\"parentSpanId\":\"EEE19B7EC3C1B174\""), 0, NULL);
    expect(one_span("\"spanId\":\"eee19b7ec3c1b17\""), TH_EDECODE,
           "spans[0].span_id: invalid hex id: odd number of digits (15)");
    expect(one_span("\"spanId\":\"eee19b7ec3c1b17g\""), TH_EDECODE,
           "spans[0].span_id: invalid hex id: 'g' is not a hex digit");
    expect(one_span("\"spanId\":12"), TH_EDECODE,
           "spans[0].span_id: expected a hex string, got a number");
    expect(one_span("\"links\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\"}]"), TH_EDECODE,
           "spans[0].links[0].span_id: must be 8 bytes, got 0");
}

static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *fields;
        const char *msg;
    } cases[] = {
        {"\"kind\":2147483648", "kind: 2147483648 is out of range for int32"},
        {"\"kind\":\"SPAN_KIND_WHATEVER\"", "kind: unknown enum value \"SPAN_KIND_WHATEVER\""},
        {"\"kind\":1.5", "kind: 1.5 is not an integer"},
        {"\"flags\":-1", "flags: -1 is out of range for uint32"},
        {"\"flags\":4294967296", "flags: 4294967296 is out of range for uint32"},
        {"\"flags\":\"0x10\"", "flags: \"0x10\" is not an integer"},
        {"\"flags\":\" 1\"", "is not an integer"},
        {"\"flags\":true", "flags: expected an integer, got a boolean"},
        {"\"droppedAttributesCount\":1.5", "dropped_attributes_count: 1.5 is not an integer"},
        {"\"startTimeUnixNano\":\"-1\"", "start_time_unix_nano: -1 is out of range for uint64"},
        {"\"startTimeUnixNano\":\"18446744073709551616\"", "out of range for uint64"},
        {"\"startTimeUnixNano\":1e20", "out of range for uint64"},
        {"\"startTimeUnixNano\":{\"low\":1,\"high\":2}", "expected an integer, got an object"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"9223372036854775808\"}}]",
         "attributes[0].value.int_value: 9223372036854775808 is out of range for int64"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":-9223372036854775809}}]",
         "out of range for int64"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":1e400}}]", "is not an integer"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":1e400}}]",
         "double_value: 1e400 is out of range for a double"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"nan\"}}]",
         "\"nan\" is not a number"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":\"true\"}}]",
         "bool_value: expected true or false, got a string"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"a\"}}]",
         "bytes_value: invalid base64: bad length or padding"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"a===\"}}]", "invalid base64"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"ab=c\"}}]", "invalid base64"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"ab c\"}}]", "invalid base64"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"a\\u0000b\"}}]",
         "attributes[0].value.string_value: string contains a NUL character"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":5}}]",
         "string_value: expected a string, got a number"},
        {"\"attributes\":[{\"key\":\"k\",\"value\":[]}]",
         "attributes[0].value: expected an object"},
        {"\"attributes\":[null]", "attributes[0]: null is not allowed"},
        {"\"attributes\":{}", "attributes: expected an array, got an object"},
        {"\"name\":\"a\\x\"", "invalid JSON at byte"},
        {"\"name\":\"\\ud800\"", "unpaired high surrogate"},
        {"\"name\":\"\\udc00\"", "unpaired low surrogate"},
        {"\"name\":\"tab\there\"", "control character in string"},
        {"\"name\":\"\xc3\x28\"", "invalid UTF-8 in string"},
        {"\"name\":\"\xed\xa0\x80\"", "invalid UTF-8 in string"},
        {"\"status\":[]", "status: expected an object, got an array"},
        {"\"events\":[{\"timeUnixNano\":\"x\"}]",
         "events[0].time_unix_nano: \"x\" is not an integer"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        expect(one_span(cases[i].fields), TH_EDECODE, cases[i].msg);
    }
    /* Absurdly long numbers. */
    char fields[2048];
    int n = snprintf(fields, sizeof(fields),
                     "\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":0.");
    memset(fields + n, '1', 600);
    strcpy(fields + n + 600, "}}]");
    expect(one_span(fields), TH_EDECODE, "double_value: number of 602 characters is too long");
    n = snprintf(fields, sizeof(fields), "\"startTimeUnixNano\":1");
    memset(fields + n, '0', 600);
    strcpy(fields + n + 600, "e-590");
    expect(one_span(fields), TH_EDECODE,
           "start_time_unix_nano: number of 606 characters is too long");
    /* Leading zeros are fine inside a string (Go's ParseUint takes them). */
    expect(one_span("\"startTimeUnixNano\":\"0001\""), 0, NULL);
}

static void test_bad_documents(void **state)
{
    (void)state;
    expect("", TH_EDECODE, "invalid JSON at byte 0");
    expect("[]", TH_EDECODE, "request: expected an object, got an array");
    expect("null", TH_EDECODE, "expected an object");
    expect("{} x", TH_EDECODE, "unexpected data after the JSON value");
    expect("{}{}", TH_EDECODE, "unexpected data after");
    expect("{\"resourceSpans\":[]}]", TH_EDECODE, NULL);
    expect("{\"resourceSpans\":[{}],}", TH_EDECODE, NULL);
    expect("{\"resourceSpans\":\"x\"}", TH_EDECODE, "resource_spans: expected an array");
    expect_n("{\"a\":1}\0", 8, NULL, TH_EDECODE, "unexpected data");
    expect("{}", 0, NULL);
    expect(" {\"resourceSpans\":[]} ", 0, NULL);
    /* Truncated at every byte of the example. */
    size_t n = strlen(SPEC_EXAMPLE);
    for (size_t i = 0; i < n; i++) {
        struct result r;
        decode(SPEC_EXAMPLE, i, NULL, &r);
        if (r.rc != TH_EDECODE) {
            print_error("prefix of %zu bytes: %d %s\n", i, r.rc, r.err.msg);
            fail();
        }
        done(&r);
    }
}

static char *nested_json(unsigned depth, bool kvlist)
{
    size_t cap = 64 + (size_t)depth * 64;
    char *s = malloc(cap + 512);
    assert_non_null(s);
    size_t n = 0;
    n += (size_t)sprintf(s + n, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                                "\"5b8efff798038103d269b633813fc60c\",\"spanId\":"
                                "\"eee19b7ec3c1b174\",\"attributes\":[{\"key\":\"k\",\"value\":");
    for (unsigned i = 0; i < depth; i++) {
        n += (size_t)sprintf(s + n, kvlist
                                        ? "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":"
                                        : "{\"arrayValue\":{\"values\":[");
    }
    n += (size_t)sprintf(s + n, "{\"stringValue\":\"x\"}");
    for (unsigned i = 0; i < depth; i++) {
        n += (size_t)sprintf(s + n, kvlist ? "}]}}" : "]}}");
    }
    sprintf(s + n, "}]}]}]}]}");
    return s;
}

static void test_nesting(void **state)
{
    (void)state;
    char *s = nested_json(5000, false);
    expect(s, TH_E2BIG, "max_nesting_depth");
    expect(s, TH_E2BIG, "spans[0].attributes[0].value");
    free(s);
    s = nested_json(5000, true);
    expect(s, TH_E2BIG, "nested deeper than 32 (max_nesting_depth)");
    free(s);
    s = nested_json(32, false);
    expect(s, 0, NULL);
    free(s);
    s = nested_json(32, true);
    expect(s, 0, NULL);
    free(s);
    s = nested_json(33, false);
    expect(s, TH_E2BIG, "nested deeper than 32 (max_nesting_depth)");
    free(s);
    /* Deep unknown fields are skipped, but only within the nesting allowance. */
    size_t n = 20000;
    char *u = malloc(2 * n + 64);
    assert_non_null(u);
    size_t k = (size_t)sprintf(u, "{\"x\":");
    memset(u + k, '[', n);
    memset(u + k + n, ']', n);
    strcpy(u + k + 2 * n, "}");
    expect(u, TH_E2BIG, "JSON nested deeper than");
    free(u);
    expect("{\"x\":[[[[[[[[[[{\"a\":[[[[[[[[[[1]]]]]]]]]]}]]]]]]]]]]}", 0, NULL);
}

static void test_limits(void **state)
{
    (void)state;
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    char *j = one_span("\"attributes\":[{\"key\":\"a\"},{\"key\":\"b\"},{\"key\":\"c\"}]");
    lim.max_attributes = 3;
    expect_n(j, strlen(j), &lim, 0, NULL);
    lim.max_attributes = 2;
    expect_n(j, strlen(j), &lim, TH_E2BIG,
             "spans[0].attributes: more than 2 entries (max_attributes_per_item)");
    th_otlp_limits_default(&lim);
    j = one_span("\"name\":\"0123456789abcdefg\"");
    lim.max_string_len = 17;
    expect_n(j, strlen(j), &lim, 0, NULL);
    lim.max_string_len = 16;
    expect_n(j, strlen(j), &lim, TH_E2BIG, "spans[0].name: string of 17 bytes is longer than 16");
    lim.max_string_len = 15;
    expect_n(j, strlen(j), &lim, TH_E2BIG, "trace_id: id of 16 bytes is longer than 15");
    /* Measured decoded: 6 escaped characters are 6 bytes. */
    j = one_span("\"name\":\"\\u0041\\u0042\\u0043\\u0044\\u0045\\u0046\"");
    lim.max_string_len = 16;
    expect_n(j, strlen(j), &lim, 0, NULL);
    lim.max_string_len = 5;
    expect_n(j, strlen(j), &lim, TH_E2BIG, "max_string_length");
    th_otlp_limits_default(&lim);
    const char *two = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                      "\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\"},"
                      "{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":"
                      "\"eee19b7ec3c1b175\"}]}]}]}";
    lim.max_spans = 2;
    expect_n(two, strlen(two), &lim, 0, NULL);
    lim.max_spans = 1;
    expect_n(two, strlen(two), &lim, TH_E2BIG,
             "request has more than 1 spans (max_spans_per_request)");
    /* The arena budget. */
    th_otlp_limits_default(&lim);
    lim.max_arena = 256;
    struct result r;
    decode(SPEC_EXAMPLE, strlen(SPEC_EXAMPLE), &lim, &r);
    assert_int_equal(r.rc, TH_ENOMEM);
    assert_true(r.err.arena_limit);
    done(&r);
}

/* ---- Encoding -------------------------------------------------------------------------------- */

static void roundtrip(const th_otlp_request_t *req)
{
    size_t n1;
    uint8_t *b1 = pack(&req->base, &n1);
    th_buf_t j = {0};
    assert_int_equal(th_otlp_encode_json(req, &j), 0);
    struct result r;
    decode((const char *)j.ptr, j.len, NULL, &r);
    if (r.rc) {
        print_error("%s in %.*s\n", r.err.msg, (int)TH_MIN(j.len, 2000), j.ptr);
    }
    assert_int_equal(r.rc, 0);
    size_t n2;
    uint8_t *b2 = pack(&r.req->base, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* And encoding is stable. */
    th_buf_t j2 = {0};
    assert_int_equal(th_otlp_encode_json(r.req, &j2), 0);
    assert_int_equal(j.len, j2.len);
    assert_memory_equal(j.ptr, j2.ptr, j.len);
    th_buf_free(&j);
    th_buf_free(&j2);
    free(b1);
    free(b2);
    done(&r);
}

static void test_roundtrip_bench(void **state)
{
    (void)state;
    for (int i = 0; i <= 10; i++) {
        char path[256];
        if (i == 0) {
            snprintf(path, sizeof(path), "%s",
                     TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb");
        } else {
            snprintf(path, sizeof(path), "/work/shared/bench/payloads/otlp-100spans-%02d.pb", i);
        }
        size_t len;
        uint8_t *buf = read_file(path, &len);
        if (!buf) {
            assert_true(i > 0); /* the copy in the repository must be there */
            continue;
        }
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *req = NULL;
        struct th_otlp_error err;
        assert_int_equal(th_otlp_decode_pb(buf, len, NULL, a, &req, &err), 0);
        roundtrip(req);
        th_arena_destroy(a);
        free(buf);
    }
}

typedef Opentelemetry__Proto__Common__V1__ArrayValue array_t;
typedef Opentelemetry__Proto__Common__V1__KeyValueList kvlist_t;

/* A message with every value type, built by hand as a processor would. */
static void test_roundtrip_every_type(void **state)
{
    (void)state;
    th_otlp_any_t v[16];
    th_otlp_kv_t kv[16];
    th_otlp_kv_t *kvp[16];
    for (int i = 0; i < 16; i++) {
        opentelemetry__proto__common__v1__any_value__init(&v[i]);
        opentelemetry__proto__common__v1__key_value__init(&kv[i]);
        kvp[i] = &kv[i];
        kv[i].value = &v[i];
    }
    static char keys[16][16];
    for (int i = 0; i < 16; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        kv[i].key = keys[i];
    }
    char s0[] = "plain";
    char s1[] = "esc \" \\ / \x01\x1f\n\t \xc3\xa9 \xf0\x9f\x98\x80";
    char s2[] = "";
    v[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v[0].string_value = s0;
    v[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v[1].string_value = s1;
    v[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v[2].string_value = s2;
    v[3].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v[3].bool_value = 1;
    v[4].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v[4].bool_value = 0;
    v[5].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v[5].int_value = -42;
    v[6].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v[6].int_value = 9007199254740993ll; /* 2^53 + 1 */
    v[7].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v[7].int_value = INT64_MIN;
    v[8].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v[8].double_value = 0.1;
    v[9].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v[9].double_value = 1.0 / 3.0;
    v[10].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v[10].double_value = -INFINITY;
    uint8_t bytes[] = {0, 1, 2, 0xfe, 0xff};
    v[11].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    v[11].bytes_value.data = bytes;
    v[11].bytes_value.len = sizeof(bytes);
    /* A nested array: [1, [true, {}], {kvlist}] and an empty AnyValue at v[14]. */
    th_otlp_any_t in[4];
    th_otlp_any_t *inp[3] = {&in[0], &in[1], &in[2]};
    th_otlp_any_t *inner2[2] = {&v[3], &in[3]};
    array_t arr = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    array_t arr2 = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    kvlist_t kvl = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    for (int i = 0; i < 4; i++) {
        opentelemetry__proto__common__v1__any_value__init(&in[i]);
    }
    in[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    in[0].int_value = 1;
    arr2.n_values = 2;
    arr2.values = inner2;
    in[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    in[1].array_value = &arr2;
    kvl.n_values = 2;
    kvl.values = &kvp[5];
    in[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    in[2].kvlist_value = &kvl;
    arr.n_values = 3;
    arr.values = inp;
    v[12].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v[12].array_value = &arr;
    kvlist_t kvl2 = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    kvl2.n_values = 3;
    kvl2.values = &kvp[0];
    v[13].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    v[13].kvlist_value = &kvl2;
    /* v[14] stays empty; kv[15] has no value at all. */
    kv[15].value = NULL;

    uint8_t tid[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                       0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
    uint8_t sid[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};
    uint8_t pid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    th_otlp_span_t span = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    span.trace_id.data = tid;
    span.trace_id.len = 16;
    span.span_id.data = sid;
    span.span_id.len = 8;
    span.parent_span_id.data = pid;
    span.parent_span_id.len = 8;
    span.trace_state = "k=v";
    span.flags = 0xffffffffu;
    span.name = "every type";
    span.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CONSUMER;
    span.start_time_unix_nano = UINT64_MAX;
    span.end_time_unix_nano = 1;
    span.n_attributes = 16;
    span.attributes = kvp;
    span.dropped_attributes_count = 4294967295u;
    Opentelemetry__Proto__Trace__V1__Span__Event ev =
        OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    Opentelemetry__Proto__Trace__V1__Span__Event *evp[1] = {&ev};
    ev.time_unix_nano = 1234;
    ev.name = "exception";
    ev.n_attributes = 2;
    ev.attributes = &kvp[8];
    ev.dropped_attributes_count = 1;
    span.n_events = 1;
    span.events = evp;
    span.dropped_events_count = 2;
    Opentelemetry__Proto__Trace__V1__Span__Link lk =
        OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
    Opentelemetry__Proto__Trace__V1__Span__Link *lkp[1] = {&lk};
    lk.trace_id.data = tid;
    lk.trace_id.len = 16;
    lk.span_id.data = pid;
    lk.span_id.len = 8;
    lk.trace_state = "a=b";
    lk.flags = 0x301;
    lk.dropped_attributes_count = 3;
    lk.n_attributes = 1;
    lk.attributes = &kvp[11];
    span.n_links = 1;
    span.links = lkp;
    span.dropped_links_count = 5;
    Opentelemetry__Proto__Trace__V1__Status st = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    span.status = &st; /* present but empty */
    th_otlp_span_t *spp[1] = {&span};

    Opentelemetry__Proto__Common__V1__InstrumentationScope scope =
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    scope.name = "lib";
    scope.n_attributes = 1;
    scope.attributes = &kvp[0];
    scope.dropped_attributes_count = 9;
    th_otlp_scope_spans_t ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.scope = &scope;
    ss.n_spans = 1;
    ss.spans = spp;
    ss.schema_url = "https://opentelemetry.io/schemas/1.24.0";
    th_otlp_scope_spans_t ss2 = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT; /* empty */
    th_otlp_scope_spans_t *ssp[2] = {&ss, &ss2};
    Opentelemetry__Proto__Common__V1__EntityRef ent =
        OPENTELEMETRY__PROTO__COMMON__V1__ENTITY_REF__INIT;
    Opentelemetry__Proto__Common__V1__EntityRef *entp[1] = {&ent};
    char *ids[2] = {"service.name", "service.namespace"};
    ent.type = "service";
    ent.n_id_keys = 2;
    ent.id_keys = ids;
    ent.n_description_keys = 1;
    ent.description_keys = ids;
    Opentelemetry__Proto__Resource__V1__Resource res =
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    res.n_attributes = 1;
    res.attributes = &kvp[0];
    res.n_entity_refs = 1;
    res.entity_refs = entp;
    th_otlp_resource_spans_t rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs.resource = &res;
    rs.n_scope_spans = 2;
    rs.scope_spans = ssp;
    th_otlp_resource_spans_t rs2 = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    th_otlp_resource_spans_t *rsp[2] = {&rs, &rs2};
    th_otlp_request_t req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.n_resource_spans = 2;
    req.resource_spans = rsp;

    roundtrip(&req);

    /* The format rules, spot-checked in the text. */
    th_buf_t j = {0};
    assert_int_equal(th_otlp_encode_json(&req, &j), 0);
    assert_int_equal(th_buf_append(&j, "", 1), 0);
    const char *t = (const char *)j.ptr;
    assert_non_null(strstr(t, "\"traceId\":\"5b8efff798038103d269b633813fc60c\""));
    assert_non_null(strstr(t, "\"parentSpanId\":\"0102030405060708\""));
    assert_non_null(strstr(t, "\"flags\":4294967295,"));
    assert_non_null(strstr(t, "\"kind\":5,"));
    assert_non_null(strstr(t, "\"startTimeUnixNano\":\"18446744073709551615\""));
    assert_non_null(strstr(t, "{\"key\":\"k5\",\"value\":{\"intValue\":\"-42\"}}"));
    assert_non_null(strstr(t, "{\"intValue\":\"9007199254740993\"}"));
    assert_non_null(strstr(t, "{\"intValue\":\"-9223372036854775808\"}"));
    assert_non_null(strstr(t, "{\"doubleValue\":0.1}"));
    assert_non_null(strstr(t, "{\"doubleValue\":0.3333333333333333}"));
    assert_non_null(strstr(t, "{\"doubleValue\":\"-Infinity\"}"));
    assert_non_null(strstr(t, "{\"bytesValue\":\"AAEC/v8=\"}"));
    assert_non_null(
        strstr(t, "\"esc \\\" \\\\ / \\u0001\\u001f\\u000a\\u0009 \xc3\xa9 \xf0\x9f\x98\x80\""));
    assert_non_null(strstr(t, "{\"key\":\"k2\",\"value\":{\"stringValue\":\"\"}}"));
    assert_non_null(strstr(t, "{\"key\":\"k14\",\"value\":{}}"));
    assert_non_null(strstr(t, "{\"key\":\"k15\"}"));
    assert_non_null(strstr(t, "\"status\":{}"));
    assert_non_null(strstr(t, "\"arrayValue\":{\"values\":[{\"intValue\":\"1\"},{\"arrayValue\":"
                              "{\"values\":[{\"boolValue\":true},{}]}},{\"kvlistValue\":"));
    assert_non_null(strstr(t, "\"entityRefs\":[{\"type\":\"service\",\"idKeys\":[\"service.name\","
                              "\"service.namespace\"],\"descriptionKeys\":[\"service.name\"]}]"));
    /* The empty scope spans and the empty resource spans are still there, as {}. */
    assert_non_null(
        strstr(t, "\"schemaUrl\":\"https://opentelemetry.io/schemas/1.24.0\"},{}]},{}]}"));
    th_buf_free(&j);
}

static void test_encode_misc(void **state)
{
    (void)state;
    th_buf_t j = {0};
    assert_int_equal(th_otlp_encode_json(NULL, &j), 0);
    assert_int_equal(j.len, 2);
    assert_memory_equal(j.ptr, "{}", 2);
    th_buf_free(&j);
    th_otlp_request_t req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    assert_int_equal(th_otlp_encode_json(&req, &j), 0);
    assert_int_equal(j.len, 2);
    th_buf_free(&j);

    /* Doubles: the shortest text that reads back exactly. */
    static const struct {
        double v;
        const char *text;
    } dbl[] = {
        {0.1, "0.1"},
        {100, "100"},
        {-0.0, "-0"},
        {1e300, "1e+300"},
        {5e-324, "5e-324"},
        {123456789.125, "123456789.125"},
        {2.2250738585072009e-308, "2.225073858507201e-308"},
        {1e-310, "1e-310"},
        {0.30000000000000004, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {NAN, "\"NaN\""},
        {INFINITY, "\"Infinity\""},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(dbl); i++) {
        th_otlp_any_t v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
        th_otlp_kv_t kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        th_otlp_kv_t *kvp = &kv;
        v.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        v.double_value = dbl[i].v;
        kv.value = &v;
        Opentelemetry__Proto__Resource__V1__Resource res =
            OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
        res.n_attributes = 1;
        res.attributes = &kvp;
        th_otlp_resource_spans_t rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
        th_otlp_resource_spans_t *rsp = &rs;
        rs.resource = &res;
        req.n_resource_spans = 1;
        req.resource_spans = &rsp;
        assert_int_equal(th_otlp_encode_json(&req, &j), 0);
        char want[128];
        snprintf(want, sizeof(want),
                 "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"value\":{\"doubleValue\":"
                 "%s}}]}}]}",
                 dbl[i].text);
        if (j.len != strlen(want) || memcmp(j.ptr, want, j.len) != 0) {
            print_error("got %.*s\nwanted %s\n", (int)j.len, j.ptr, want);
            fail();
        }
        th_buf_free(&j);
    }

    /* Invalid UTF-8 that reached a batch (a processor bug) still gives valid JSON. */
    th_otlp_span_t span = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    th_otlp_span_t *spp = &span;
    span.name = "bad \xff\xc3 end \xed\xa0\x80";
    th_otlp_scope_spans_t ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    th_otlp_scope_spans_t *ssp = &ss;
    ss.n_spans = 1;
    ss.spans = &spp;
    th_otlp_resource_spans_t rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    th_otlp_resource_spans_t *rsp = &rs;
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    assert_int_equal(th_otlp_encode_json(&req, &j), 0);
    const char *want = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":"
                       "\"bad \\ufffd\\ufffd end \\ufffd\\ufffd\\ufffd\"}]}]}]}";
    assert_int_equal(j.len, strlen(want));
    assert_memory_equal(j.ptr, want, j.len);
    th_buf_free(&j);

    /* A long string with escapes across the encoder's chunks. */
    size_t n = 20000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) {
        big[i] = i % 97 == 0 ? '\n' : (i % 5 == 0 ? '"' : 'a');
    }
    memcpy(big + 4094, "\xe2\x82\xac", 3); /* a 3-byte character across the 4096 boundary */
    big[n] = '\0';
    span.name = big;
    assert_int_equal(th_otlp_encode_json(&req, &j), 0);
    struct result r;
    decode((const char *)j.ptr, j.len, NULL, &r);
    assert_int_equal(r.rc, TH_EDECODE); /* no ids: but the JSON itself parsed */
    assert_non_null(strstr(r.err.msg, "trace_id: must be 16 bytes"));
    done(&r);
    th_json_reader_t rd;
    th_json_reader_init(&rd, j.ptr, j.len, 16);
    th_json_tok_t t;
    int rc;
    while ((rc = th_json_next(&rd, &t)) == 0 && t.type != TH_JSON_END) {
        if (t.type == TH_JSON_STRING && t.len > 1000) {
            uint8_t *out = malloc(t.len);
            size_t m = th_json_unescape(&t, out);
            assert_int_equal(m, n);
            assert_memory_equal(out, big, n);
            free(out);
        }
    }
    assert_int_equal(rc, 0);
    th_buf_free(&j);
    free(big);
}

/* ---- Responses ------------------------------------------------------------------------------- */

static void expect_text(th_buf_t *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(b->ptr, want, b->len) != 0) {
        print_error("got '%.*s'\nwanted '%s'\n", (int)b->len, b->ptr, want);
        fail();
    }
    th_buf_free(b);
}

static void test_responses_json(void **state)
{
    (void)state;
    th_buf_t b = {0};
    assert_int_equal(th_otlp_encode_response(true, 0, NULL, &b), 0);
    expect_text(&b, "{}");
    assert_int_equal(th_otlp_encode_response(true, 1, "x", &b), 0);
    expect_text(&b, "{\"partialSuccess\":{\"rejectedSpans\":\"1\",\"errorMessage\":\"x\"}}");
    assert_int_equal(th_otlp_encode_response(true, 0, "warning: \"slow\"\n", &b), 0);
    expect_text(&b, "{\"partialSuccess\":{\"errorMessage\":\"warning: \\\"slow\\\"\\u000a\"}}");
    assert_int_equal(th_otlp_encode_response(true, 7, NULL, &b), 0);
    expect_text(&b, "{\"partialSuccess\":{\"rejectedSpans\":\"7\"}}");
    assert_int_equal(th_otlp_encode_status(true, 14, "server overloaded", 5, &b), 0);
    expect_text(&b, "{\"code\":14,\"message\":\"server overloaded\",\"details\":[{\"@type\":"
                    "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"5s\"}]}");
    assert_int_equal(th_otlp_encode_status(true, 3, "bad \"x\"", 0, &b), 0);
    expect_text(&b, "{\"code\":3,\"message\":\"bad \\\"x\\\"\"}");
    assert_int_equal(th_otlp_encode_status(true, 0, NULL, 0, &b), 0);
    expect_text(&b, "{}");
    assert_int_equal(th_otlp_encode_status(true, 0, NULL, 30, &b), 0);
    expect_text(&b, "{\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
                    "\"retryDelay\":\"30s\"}]}");
    /* Appends after what is there. */
    assert_int_equal(th_buf_append(&b, "x", 1), 0);
    assert_int_equal(th_otlp_encode_response(true, 0, NULL, &b), 0);
    expect_text(&b, "x{}");
}

static void test_buf(void **state)
{
    (void)state;
    th_buf_t b = {0};
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(th_buf_printf(&b, "%d,", i), 0);
    }
    assert_true(b.len > 2000);
    assert_memory_equal(b.ptr, "0,1,2,", 6);
    assert_memory_equal(b.ptr + b.len - 4, "999,", 4);
    assert_int_equal(th_buf_append(&b, NULL, 0), 0);
    th_buf_free(&b);
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
    assert_int_equal(th_buf_reserve(&b, SIZE_MAX), TH_ENOMEM);
    assert_int_equal(th_buf_append(&b, "x", 1), 0);
    assert_int_equal(th_buf_reserve(&b, SIZE_MAX), TH_ENOMEM);
    assert_int_equal(b.len, 1);
    th_buf_free(&b);
}

/* ---- Allocation failure -------------------------------------------------------------------- */

static long fail_after;

static void *failing_malloc(size_t n)
{
    return fail_after-- > 0 ? malloc(n) : NULL;
}

static void *failing_calloc(size_t n, size_t s)
{
    return fail_after-- > 0 ? calloc(n, s) : NULL;
}

static void *failing_realloc(void *p, size_t n)
{
    return fail_after-- > 0 ? realloc(p, n) : NULL;
}

static const struct th_mem_methods failing = {failing_malloc, failing_calloc, failing_realloc,
                                              free};

static void test_oom_injection(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf =
        read_file(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.json", &len);
    assert_non_null(buf);
    for (long n = 0;; n++) {
        th_mem_set_methods(&failing);
        fail_after = n;
        th_arena_t *a = th_arena_create(4096, 0);
        int rc = TH_ENOMEM;
        th_otlp_request_t *req = NULL;
        struct th_otlp_error err;
        if (a) {
            rc = th_otlp_decode_json(buf, len, NULL, a, &req, &err);
        }
        th_mem_set_methods(NULL);
        th_arena_destroy(a);
        if (rc == 0) {
            assert_true(n > 2);
            break;
        }
        assert_int_equal(rc, TH_ENOMEM);
        assert_true(n < 10000);
    }
    /* The encoder too. */
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = NULL;
    assert_int_equal(th_otlp_decode_json(buf, len, NULL, a, &req, NULL), 0);
    for (long n = 0;; n++) {
        th_buf_t j = {0};
        th_mem_set_methods(&failing);
        fail_after = n;
        int rc = th_otlp_encode_json(req, &j);
        th_mem_set_methods(NULL);
        th_buf_free(&j);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, TH_ENOMEM);
    }
    th_arena_destroy(a);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_js_sdk_shapes),
        cmocka_unit_test(test_lenient_forms),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_roundtrip_bench),
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_encode_misc),
        cmocka_unit_test(test_responses_json),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_oom_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
