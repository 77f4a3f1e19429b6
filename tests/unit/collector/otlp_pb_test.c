/*
 * Tests of the OTLP protobuf decoder (th_otlp_decode_pb) and the response encoders: the
 * reference vectors of otlp.md §1.6-§1.7, the bench payloads, and every hostile input we
 * know of, each rejected with its exact result code and a message naming the place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/otlp.h"

/* ---- Helpers: a tiny protobuf writer for hand-made (and broken) messages ------------------ */

static void w_raw(th_buf_t *b, const void *p, size_t n)
{
    assert_int_equal(th_buf_append(b, p, n), 0);
}

static void w_varint(th_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    w_raw(b, tmp, n);
}

static void w_tag(th_buf_t *b, unsigned field, unsigned wt)
{
    w_varint(b, (uint64_t)field << 3 | wt);
}

static void w_len(th_buf_t *b, unsigned field, const void *p, size_t n)
{
    w_tag(b, field, 2);
    w_varint(b, n);
    w_raw(b, p, n);
}

static void w_str(th_buf_t *b, unsigned field, const char *s)
{
    w_len(b, field, s, strlen(s));
}

/* A sub-message field from a finished buffer, which is freed. */
static void w_sub(th_buf_t *b, unsigned field, th_buf_t *sub)
{
    w_len(b, field, sub->ptr, sub->len);
    th_buf_free(sub);
}

static void w_fixed64(th_buf_t *b, unsigned field, uint64_t v)
{
    w_tag(b, field, 1);
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++) {
        tmp[i] = (uint8_t)(v >> (8 * i));
    }
    w_raw(b, tmp, 8);
}

static const uint8_t TID[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
static const uint8_t SID[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};

/* A span with the given ids and name, plus optional extra (already encoded) fields. */
static void span_with(th_buf_t *out, const void *tid, size_t tlen, const void *sid, size_t slen,
                      const void *name, size_t nlen, const th_buf_t *extra)
{
    th_buf_t s = {0};
    w_len(&s, 1, tid, tlen);
    w_len(&s, 2, sid, slen);
    w_len(&s, 5, name, nlen);
    if (extra) {
        w_raw(&s, extra->ptr, extra->len);
    }
    w_sub(out, 2, &s);
}

/* resource_spans[0].scope_spans[0].spans = the spans (already field-2 encoded) in @p spans. */
static void request_of(th_buf_t *req, th_buf_t *spans)
{
    th_buf_t ss = {0};
    th_buf_t rs = {0};
    w_raw(&ss, spans->ptr, spans->len);
    th_buf_free(spans);
    w_sub(&rs, 2, &ss);
    w_sub(req, 1, &rs);
}

struct result {
    int rc;
    th_arena_t *arena;
    th_otlp_request_t *req;
    struct th_otlp_error err;
};

static void decode(const void *buf, size_t len, const struct th_otlp_limits *lim, struct result *r)
{
    r->arena = th_arena_create(0, 0);
    assert_non_null(r->arena);
    r->req = NULL;
    r->rc = th_otlp_decode_pb(buf, len, lim, r->arena, &r->req, &r->err);
}

static void done(struct result *r)
{
    th_arena_destroy(r->arena);
}

/* Decode and expect @p rc with a message containing @p msg (when not NULL). */
static void expect(const void *buf, size_t len, const struct th_otlp_limits *lim, int rc,
                   const char *msg)
{
    struct result r;
    decode(buf, len, lim, &r);
    if (r.rc != rc || (msg && !strstr(r.err.msg, msg))) {
        print_error("got %d (%s), message '%s'; wanted %d with '%s'\n", r.rc, th_strerror(r.rc),
                    r.rc ? r.err.msg : "", rc, msg ? msg : "");
        fail();
    }
    done(&r);
}

/* A request with one span whose span-level fields are @p extra. */
static void one_span(th_buf_t *req, const th_buf_t *extra)
{
    th_buf_t spans = {0};
    span_with(&spans, TID, 16, SID, 8, "op", 2, extra);
    request_of(req, &spans);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
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
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- The reference vector ------------------------------------------------------------------- */

/* otlp.md §1.7: 146 bytes, protoc output. */
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

static void test_vector_146(void **state)
{
    (void)state;
    assert_int_equal(sizeof(VEC146), 146);
    struct result r;
    decode(VEC146, sizeof(VEC146), NULL, &r);
    assert_int_equal(r.rc, 0);
    th_otlp_request_t *q = r.req;
    assert_int_equal(q->n_resource_spans, 1);
    th_otlp_resource_spans_t *rs = q->resource_spans[0];
    assert_non_null(rs->resource);
    assert_int_equal(rs->resource->n_attributes, 1);
    assert_string_equal(rs->resource->attributes[0]->key, "service.name");
    assert_int_equal(rs->resource->attributes[0]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE);
    assert_string_equal(rs->resource->attributes[0]->value->string_value, "svc");
    assert_int_equal(rs->n_scope_spans, 1);
    th_otlp_scope_spans_t *ss = rs->scope_spans[0];
    assert_string_equal(ss->scope->name, "lib");
    assert_string_equal(ss->scope->version, "1.0");
    assert_int_equal(ss->n_spans, 1);
    th_otlp_span_t *sp = ss->spans[0];
    assert_int_equal(sp->trace_id.len, 16);
    assert_memory_equal(sp->trace_id.data, TID, 16);
    assert_int_equal(sp->span_id.len, 8);
    assert_memory_equal(sp->span_id.data, SID, 8);
    assert_int_equal(sp->parent_span_id.len, 0);
    assert_int_equal(sp->flags, 0x301);
    assert_string_equal(sp->name, "op");
    assert_int_equal(sp->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
    assert_true(sp->start_time_unix_nano == 1544712660000000000ull);
    assert_true(sp->end_time_unix_nano == 1544712661000000000ull);
    assert_int_equal(sp->n_attributes, 1);
    assert_string_equal(sp->attributes[0]->key, "http.response.status_code");
    assert_int_equal(sp->attributes[0]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
    assert_int_equal(sp->attributes[0]->value->int_value, 500);
    assert_non_null(sp->status);
    assert_int_equal(sp->status->code,
                     OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
    assert_string_equal(sp->status->message, "boom");
    /* protobuf-c re-packs it byte for byte. */
    size_t n;
    uint8_t *b = pack(&q->base, &n);
    assert_int_equal(n, sizeof(VEC146));
    assert_memory_equal(b, VEC146, n);
    free(b);
    assert_int_equal(th_otlp_request_span_count(q), 1);
    done(&r);
}

static void test_empty(void **state)
{
    (void)state;
    struct result r;
    decode("", 0, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_non_null(r.req);
    assert_int_equal(r.req->n_resource_spans, 0);
    done(&r);
    decode(NULL, 0, NULL, &r);
    assert_int_equal(r.rc, 0);
    done(&r);
}

/* Every proper prefix of the vector is truncated inside the first field. */
static void test_truncated_every_offset(void **state)
{
    (void)state;
    for (size_t i = 1; i < sizeof(VEC146); i++) {
        struct result r;
        decode(VEC146, i, NULL, &r);
        if (r.rc != TH_EDECODE) {
            print_error("prefix of %zu bytes: %d %s\n", i, r.rc, r.err.msg);
            fail();
        }
        assert_true(r.err.msg[0] != '\0');
        done(&r);
    }
}

static void test_garbage(void **state)
{
    (void)state;
    /* An overlong tag (more than 5 bytes of varint). */
    static const uint8_t g1[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect(g1, sizeof(g1), NULL, TH_EDECODE, "overlong field tag");
    /* Field number 0. */
    static const uint8_t g2[] = {0x02, 0x00};
    expect(g2, sizeof(g2), NULL, TH_EDECODE, "invalid field number 0");
    /* Wire types 6 and 7 do not exist; 3 and 4 (groups) protobuf-c cannot read. */
    static const uint8_t g3[] = {0x17, 0x00};
    expect(g3, sizeof(g3), NULL, TH_EDECODE, "field 2: unsupported wire type 7");
    static const uint8_t g3b[] = {0x0f, 0x00};
    expect(g3b, sizeof(g3b), NULL, TH_EDECODE, "resource_spans[0]: wrong wire type 7");
    static const uint8_t g4[] = {0x7b, 0x7c};
    expect(g4, sizeof(g4), NULL, TH_EDECODE, "unsupported wire type group start");
    /* Text. */
    const char *g5 = "this is not protobuf";
    expect(g5, strlen(g5), NULL, TH_EDECODE, NULL);
    /* resource_spans as a varint. */
    static const uint8_t g6[] = {0x08, 0x01};
    expect(g6, sizeof(g6), NULL, TH_EDECODE, "resource_spans[0]: wrong wire type varint");
    /* A truncated varint in an unknown field. */
    static const uint8_t g7[] = {0x10, 0x80};
    expect(g7, sizeof(g7), NULL, TH_EDECODE, "truncated varint");
    /* An 11-byte varint. */
    static const uint8_t g8[] = {0x10, 0x80, 0x80, 0x80, 0x80, 0x80,
                                 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    expect(g8, sizeof(g8), NULL, TH_EDECODE, "overlong varint");
}

/* Lengths that run past the message, or do not fit protobuf-c's uint32. */
static void test_huge_lengths(void **state)
{
    (void)state;
    static const uint8_t h1[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    expect(h1, sizeof(h1), NULL, TH_EDECODE, "runs past the end");
    static const uint8_t h2[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00};
    expect(h2, sizeof(h2), NULL, TH_EDECODE, "invalid length");
    static const uint8_t h3[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    expect(h3, sizeof(h3), NULL, TH_EDECODE, "invalid length");
    /* A nested length longer than its parent's. */
    static const uint8_t h4[] = {0x0a, 0x03, 0x12, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00};
    expect(h4, sizeof(h4), NULL, TH_EDECODE, "resource_spans[0].scope_spans[0]: length 5 runs");
}

/* An AnyValue nested through array_value @p depth times, as the value of a span attribute. */
static void nested_request(th_buf_t *req, unsigned depth, bool kvlist)
{
    th_buf_t v = {0}; /* innermost AnyValue: a string */
    w_str(&v, 1, "x");
    for (unsigned i = 0; i < depth; i++) {
        th_buf_t container = {0};
        th_buf_t any = {0};
        if (kvlist) {
            th_buf_t kv = {0};
            w_str(&kv, 1, "k");
            w_sub(&kv, 2, &v);
            w_sub(&container, 1, &kv);
            w_sub(&any, 6, &container);
        } else {
            w_sub(&container, 1, &v);
            w_sub(&any, 5, &container);
        }
        v = any;
    }
    th_buf_t attr = {0};
    w_str(&attr, 1, "deep");
    w_sub(&attr, 2, &v);
    th_buf_t extra = {0};
    w_sub(&extra, 9, &attr);
    one_span(req, &extra);
    th_buf_free(&extra);
}

static void test_nesting(void **state)
{
    (void)state;
    th_buf_t req = {0};
    /* 5,000 levels: about 30 KB, and enough to crash protobuf-c without the walk. */
    nested_request(&req, 5000, false);
    expect(req.ptr, req.len, NULL, TH_E2BIG, "max_nesting_depth");
    expect(req.ptr, req.len, NULL, TH_E2BIG,
           "resource_spans[0].scope_spans[0].spans[0].attributes[0].value");
    th_buf_free(&req);
    nested_request(&req, 5000, true);
    expect(req.ptr, req.len, NULL, TH_E2BIG, "max_nesting_depth");
    th_buf_free(&req);
    /* Exactly at the default limit (32) is fine, one more is not. */
    nested_request(&req, 32, false);
    expect(req.ptr, req.len, NULL, 0, NULL);
    th_buf_free(&req);
    nested_request(&req, 33, true);
    expect(req.ptr, req.len, NULL, TH_E2BIG, "nested deeper than 32 (max_nesting_depth)");
    th_buf_free(&req);
    /* A configured limit, and the cap. */
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    lim.max_depth = 2;
    nested_request(&req, 3, false);
    expect(req.ptr, req.len, &lim, TH_E2BIG, "deeper than 2");
    th_buf_free(&req);
    lim.max_depth = 100000;
    nested_request(&req, TH_OTLP_MAX_DEPTH_CAP, false);
    expect(req.ptr, req.len, &lim, 0, NULL);
    th_buf_free(&req);
    nested_request(&req, TH_OTLP_MAX_DEPTH_CAP + 1, false);
    expect(req.ptr, req.len, &lim, TH_E2BIG, "max_nesting_depth");
    th_buf_free(&req);
}

static void test_id_lengths(void **state)
{
    (void)state;
    th_buf_t req = {0};
    th_buf_t spans = {0};
    span_with(&spans, TID, 16, SID, 3, "op", 2, NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, TH_EDECODE,
           "resource_spans[0].scope_spans[0].spans[0].span_id: must be 8 bytes, got 3");
    th_buf_free(&req);

    span_with(&spans, TID, 15, SID, 8, "op", 2, NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].trace_id: must be 16 bytes, got 15");
    th_buf_free(&req);

    span_with(&spans, TID, 0, SID, 8, "op", 2, NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].trace_id: must be 16 bytes, got 0");
    th_buf_free(&req);

    /* The place in a bigger request: resource_spans[0].scope_spans[1].spans[7]. */
    th_buf_t rs = {0};
    for (int s = 0; s < 2; s++) {
        th_buf_t ss = {0};
        for (int i = 0; i < 8; i++) {
            span_with(&ss, TID, 16, SID, s == 1 && i == 7 ? 3 : 8, "op", 2, NULL);
        }
        w_sub(&rs, 2, &ss);
    }
    w_sub(&req, 1, &rs);
    expect(req.ptr, req.len, NULL, TH_EDECODE,
           "resource_spans[0].scope_spans[1].spans[7].span_id: must be 8 bytes, got 3");
    th_buf_free(&req);

    /* parent_span_id: empty or 8 bytes. */
    th_buf_t extra = {0};
    w_len(&extra, 4, SID, 5);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE,
           "spans[0].parent_span_id: must be empty or 8 bytes, got 5");
    th_buf_free(&req);
    th_buf_free(&extra);
    w_len(&extra, 4, SID, 8);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, 0, NULL);
    th_buf_free(&req);
    th_buf_free(&extra);

    /* Links: same rules as spans. */
    th_buf_t link = {0};
    w_len(&link, 1, TID, 16);
    w_len(&link, 2, SID, 7);
    w_sub(&extra, 13, &link);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].links[0].span_id: must be 8 bytes, got 7");
    th_buf_free(&req);
    th_buf_free(&extra);
}

static void test_zero_ids(void **state)
{
    (void)state;
    static const uint8_t zero[16] = {0};
    th_buf_t req = {0};
    th_buf_t spans = {0};
    span_with(&spans, zero, 16, SID, 8, "op", 2, NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].trace_id: must not be all zero");
    th_buf_free(&req);
    span_with(&spans, TID, 16, zero, 8, "op", 2, NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].span_id: must not be all zero");
    th_buf_free(&req);
    th_buf_t extra = {0};
    th_buf_t link = {0};
    w_len(&link, 1, zero, 16);
    w_len(&link, 2, SID, 8);
    th_buf_t link2 = {0};
    w_len(&link2, 1, TID, 16);
    w_len(&link2, 2, SID, 8);
    w_sub(&extra, 13, &link2);
    w_sub(&extra, 13, &link);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].links[1].trace_id: must not be all zero");
    th_buf_free(&req);
    th_buf_free(&extra);
}

static void test_bad_strings(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } cases[] = {
        {"a\xff", 2, "is not valid UTF-8"},
        {"\xc0\x80", 2, "is not valid UTF-8"},          /* overlong NUL */
        {"\xe0\x80\xaf", 3, "is not valid UTF-8"},      /* overlong '/' */
        {"\xed\xa0\x80", 3, "is not valid UTF-8"},      /* a surrogate */
        {"\xf4\x90\x80\x80", 4, "is not valid UTF-8"},  /* above U+10FFFF */
        {"abcdefgh\xe2\x82", 10, "is not valid UTF-8"}, /* truncated sequence */
        {"\x80", 1, "is not valid UTF-8"},              /* lone continuation */
        {"op\0x", 4, "contains a NUL byte"},            /* protobuf-c would cut at the NUL */
        {"0123456789abcdef\0", 17, "contains a NUL byte"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        th_buf_t req = {0};
        th_buf_t spans = {0};
        span_with(&spans, TID, 16, SID, 8, cases[i].bytes, cases[i].len, NULL);
        request_of(&req, &spans);
        char want[128];
        snprintf(want, sizeof(want), "resource_spans[0].scope_spans[0].spans[0].name: string %s",
                 cases[i].msg);
        expect(req.ptr, req.len, NULL, TH_EDECODE, want);
        th_buf_free(&req);
    }
    /* Valid multi-byte UTF-8 of every length passes. */
    const char *ok = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    th_buf_t req = {0};
    th_buf_t spans = {0};
    span_with(&spans, TID, 16, SID, 8, ok, strlen(ok), NULL);
    request_of(&req, &spans);
    expect(req.ptr, req.len, NULL, 0, NULL);
    th_buf_free(&req);

    /* Deeper: an event's attribute value, with indexes on the way. */
    th_buf_t extra = {0};
    for (int e = 0; e < 2; e++) {
        th_buf_t ev = {0};
        for (int a = 0; a < 3; a++) {
            th_buf_t any = {0};
            th_buf_t kv = {0};
            w_str(&any, 1, e == 1 && a == 2 ? "bad\xfe" : "good");
            w_str(&kv, 1, "k");
            w_sub(&kv, 2, &any);
            w_sub(&ev, 3, &kv);
        }
        w_str(&ev, 2, "event");
        w_sub(&extra, 11, &ev);
    }
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE,
           "resource_spans[0].scope_spans[0].spans[0].events[1].attributes[2].value.string_value:"
           " string is not valid UTF-8");
    th_buf_free(&req);
    th_buf_free(&extra);
}

static void test_wrong_wire_type(void **state)
{
    (void)state;
    th_buf_t extra = {0};
    th_buf_t req = {0};
    w_tag(&extra, 7, 0); /* start_time_unix_nano is fixed64 */
    w_varint(&extra, 5);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE,
           "spans[0].start_time_unix_nano: wrong wire type varint, expected 64-bit");
    th_buf_free(&req);
    th_buf_free(&extra);
    w_tag(&extra, 16, 0); /* flags is fixed32 */
    w_varint(&extra, 1);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].flags: wrong wire type");
    th_buf_free(&req);
    th_buf_free(&extra);
    w_tag(&extra, 15, 5); /* status is a message */
    w_raw(&extra, "\0\0\0\0", 4);
    one_span(&req, &extra);
    expect(req.ptr, req.len, NULL, TH_EDECODE, "spans[0].status: wrong wire type 32-bit");
    th_buf_free(&req);
    th_buf_free(&extra);
}

static void test_limits(void **state)
{
    (void)state;
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    assert_int_equal(lim.max_depth, 32);
    assert_true(lim.max_spans == 1000000);
    assert_true(lim.max_string_len == 4u << 20);

    /* Spans. */
    th_buf_t req = {0};
    th_buf_t spans = {0};
    for (int i = 0; i < 11; i++) {
        span_with(&spans, TID, 16, SID, 8, "op", 2, NULL);
    }
    request_of(&req, &spans);
    lim.max_spans = 11;
    expect(req.ptr, req.len, &lim, 0, NULL);
    lim.max_spans = 10;
    expect(req.ptr, req.len, &lim, TH_E2BIG,
           "request has more than 10 spans (max_spans_per_request)");
    th_buf_free(&req);
    th_otlp_limits_default(&lim);

    /* Attributes on a span, and entries of a kvlist. */
    th_buf_t extra = {0};
    for (int i = 0; i < 5; i++) {
        th_buf_t kv = {0};
        w_str(&kv, 1, "k");
        w_sub(&extra, 9, &kv);
    }
    one_span(&req, &extra);
    th_buf_free(&extra);
    lim.max_attributes = 5;
    expect(req.ptr, req.len, &lim, 0, NULL);
    lim.max_attributes = 4;
    expect(req.ptr, req.len, &lim, TH_E2BIG,
           "spans[0].attributes: more than 4 entries (max_attributes_per_item)");
    th_buf_free(&req);
    nested_request(&req, 1, true);
    lim.max_attributes = 1;
    expect(req.ptr, req.len, &lim, 0, NULL);
    th_buf_free(&req);

    /* String length, for strings and bytes. */
    th_otlp_limits_default(&lim);
    lim.max_string_len = 16;
    th_buf_t spans2 = {0};
    span_with(&spans2, TID, 16, SID, 8, "0123456789abcdef", 16, NULL);
    request_of(&req, &spans2);
    expect(req.ptr, req.len, &lim, 0, NULL);
    th_buf_free(&req);
    span_with(&spans2, TID, 16, SID, 8, "0123456789abcdefg", 17, NULL);
    request_of(&req, &spans2);
    expect(req.ptr, req.len, &lim, TH_E2BIG,
           "spans[0].name: string of 17 bytes is longer than 16 (max_string_length)");
    th_buf_free(&req);
    lim.max_string_len = 15;
    expect(VEC146, sizeof(VEC146), &lim, TH_E2BIG, "trace_id: bytes value of 16 bytes");
}

/* Absurd repeated counts: a million empty values in 2 MB, far past the arena budget. */
static void test_absurd_counts(void **state)
{
    (void)state;
    th_buf_t arr = {0};
    for (int i = 0; i < 1000000; i++) {
        w_raw(&arr, "\x0a\x00", 2);
    }
    th_buf_t any = {0};
    w_sub(&any, 5, &arr);
    th_buf_t kv = {0};
    w_str(&kv, 1, "k");
    w_sub(&kv, 2, &any);
    th_buf_t extra = {0};
    w_sub(&extra, 9, &kv);
    th_buf_t req = {0};
    one_span(&req, &extra);
    th_buf_free(&extra);
    struct result r;
    decode(req.ptr, req.len, NULL, &r);
    assert_int_equal(r.rc, TH_ENOMEM);
    assert_true(r.err.arena_limit);
    /* Refused by the estimate before anything was allocated. */
    assert_true(th_arena_used(r.arena) == 0);
    done(&r);
    /* With room it decodes. */
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    lim.max_arena = 256u << 20;
    decode(req.ptr, req.len, &lim, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req->resource_spans[0]
                         ->scope_spans[0]
                         ->spans[0]
                         ->attributes[0]
                         ->value->array_value->n_values,
                     1000000);
    done(&r);
    th_buf_free(&req);
}

static void test_arena_limits(void **state)
{
    (void)state;
    /* A small max_arena: the request itself is too big (413, not 503). */
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    lim.max_arena = 512;
    struct result r;
    decode(VEC146, sizeof(VEC146), &lim, &r);
    assert_int_equal(r.rc, TH_ENOMEM);
    assert_true(r.err.arena_limit);
    assert_non_null(strstr(r.err.msg, "512 bytes"));
    done(&r);
    /* The arena itself out of memory: a plain TH_ENOMEM. */
    th_arena_t *a = th_arena_create(256, 1024);
    th_otlp_request_t *req = NULL;
    struct th_otlp_error err;
    size_t len;
    uint8_t *buf = read_file(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb", &len);
    assert_non_null(buf);
    assert_int_equal(th_otlp_decode_pb(buf, len, NULL, a, &req, &err), TH_ENOMEM);
    assert_false(err.arena_limit);
    assert_null(req);
    th_arena_destroy(a);
    free(buf);
}

/* Unknown fields are skipped by the walk and kept by protobuf-c; strindex fields ignored. */
static void test_unknown_fields(void **state)
{
    (void)state;
    th_buf_t extra = {0};
    w_tag(&extra, 100, 0);
    w_varint(&extra, 12345);
    w_len(&extra, 101, "\xff\xfe", 2); /* not UTF-8: unknown, so not checked */
    w_tag(&extra, 102, 5);
    w_raw(&extra, "abcd", 4);
    w_fixed64(&extra, 103, 7);
    th_buf_t kv = {0};
    th_buf_t any = {0};
    w_tag(&kv, 3, 0); /* key_strindex */
    w_varint(&kv, 4);
    w_tag(&any, 8, 0); /* string_value_strindex */
    w_varint(&any, 9);
    w_sub(&kv, 2, &any);
    w_sub(&extra, 9, &kv);
    th_buf_t req = {0};
    one_span(&req, &extra);
    struct result r;
    decode(req.ptr, req.len, NULL, &r);
    assert_int_equal(r.rc, 0);
    th_otlp_span_t *sp = r.req->resource_spans[0]->scope_spans[0]->spans[0];
    assert_int_equal(sp->base.n_unknown_fields, 4);
    assert_int_equal(sp->attributes[0]->key_strindex, 4);
    assert_int_equal(sp->attributes[0]->value->string_value_strindex, 9);
    size_t n;
    uint8_t *b = pack(&r.req->base, &n);
    assert_int_equal(n, req.len);
    free(b);
    done(&r);
    th_buf_free(&req);
    th_buf_free(&extra);
}

/* The bench payloads: span counts, and protobuf and JSON decode to the same bytes. */
static void check_pair(const char *pb_path, const char *json_path)
{
    size_t plen;
    size_t jlen;
    uint8_t *pb = read_file(pb_path, &plen);
    uint8_t *js = read_file(json_path, &jlen);
    assert_non_null(pb);
    assert_non_null(js);
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r1 = NULL;
    th_otlp_request_t *r2 = NULL;
    struct th_otlp_error err;
    assert_int_equal(th_otlp_decode_pb(pb, plen, NULL, a, &r1, &err), 0);
    assert_int_equal(th_otlp_decode_json(js, jlen, NULL, a, &r2, &err), 0);
    assert_int_equal(th_otlp_request_span_count(r1), 100);
    assert_int_equal(th_otlp_request_span_count(r2), 100);
    size_t n1;
    size_t n2;
    uint8_t *b1 = pack(&r1->base, &n1);
    uint8_t *b2 = pack(&r2->base, &n2);
    assert_int_equal(n1, plen);
    assert_memory_equal(b1, pb, plen); /* protobuf-c re-packs the input exactly */
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    th_arena_destroy(a);
    free(pb);
    free(js);
}

static void test_bench_payloads(void **state)
{
    (void)state;
    check_pair(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb",
               TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.json");
    /* All ten, when the shared bench directory is there. */
    FILE *f = fopen("/work/shared/bench/payloads/otlp-100spans-10.pb", "rb");
    if (!f) {
        return;
    }
    fclose(f);
    for (int i = 1; i <= 10; i++) {
        char p[128];
        char j[128];
        snprintf(p, sizeof(p), "/work/shared/bench/payloads/otlp-100spans-%02d.pb", i);
        snprintf(j, sizeof(j), "/work/shared/bench/payloads/otlp-100spans-%02d.json", i);
        check_pair(p, j);
    }
}

/* ---- Allocation failure: every allocation failing in turn fails cleanly ------------------- */

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
    uint8_t *buf = read_file(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb", &len);
    assert_non_null(buf);
    for (long n = 0;; n++) {
        th_mem_set_methods(&failing);
        fail_after = n;
        th_arena_t *a = th_arena_create(4096, 0);
        int rc = TH_ENOMEM;
        th_otlp_request_t *req = NULL;
        struct th_otlp_error err;
        if (a) {
            rc = th_otlp_decode_pb(buf, len, NULL, a, &req, &err);
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
    free(buf);
}

/* ---- Responses (otlp.md §1.5-§1.7) ----------------------------------------------------------- */

static void test_response_pb(void **state)
{
    (void)state;
    th_buf_t b = {0};
    assert_int_equal(th_otlp_encode_response(false, 0, NULL, &b), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(th_otlp_encode_response(false, 1, "x", &b), 0);
    static const uint8_t want[] = {0x0a, 0x05, 0x08, 0x01, 0x12, 0x01, 0x78};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.ptr, want, sizeof(want));
    th_buf_free(&b);
}

static void test_status_pb(void **state)
{
    (void)state;
    th_buf_t b = {0};
    assert_int_equal(th_otlp_encode_status(false, 14, "server overloaded", 5, &b), 0);
    static const char want[] = "\x08\x0e\x12\x11server overloaded\x1a\x30\x0a\x28"
                               "type.googleapis.com/google.rpc.RetryInfo\x12\x04\x0a\x02\x08\x05";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.ptr, want, b.len);
    /* What goes into grpc-status-details-bin (unpadded base64), per the reference. */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char enc[128];
    size_t o = 0;
    for (size_t i = 0; i < b.len; i += 3) {
        uint32_t v = (uint32_t)b.ptr[i] << 16 | (i + 1 < b.len ? (uint32_t)b.ptr[i + 1] << 8 : 0) |
                     (i + 2 < b.len ? b.ptr[i + 2] : 0);
        size_t k = b.len - i >= 3 ? 4 : b.len - i + 1;
        for (size_t j = 0; j < k; j++) {
            enc[o++] = b64[(v >> (18 - 6 * j)) & 63];
        }
    }
    enc[o] = '\0';
    assert_string_equal(enc, "CA4SEXNlcnZlciBvdmVybG9hZGVkGjAKKHR5cGUuZ29vZ2xlYXBpcy5jb20vZ29vZ2xlL"
                             "nJwYy5SZXRyeUluZm8SBAoCCAU");
    th_buf_free(&b);
    /* Without a retry delay there is no detail. */
    assert_int_equal(th_otlp_encode_status(false, 3, "bad", 0, &b), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.ptr,
                        "\x08\x03\x12\x03"
                        "bad",
                        7);
    th_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    char out[33];
    th_hex_encode(TID, 16, out);
    assert_string_equal(out, "5b8efff798038103d269b633813fc60c");
    th_hex_encode(TID, 0, out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_146),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_truncated_every_offset),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_id_lengths),
        cmocka_unit_test(test_zero_ids),
        cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_wrong_wire_type),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_absurd_counts),
        cmocka_unit_test(test_arena_limits),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_bench_payloads),
        cmocka_unit_test(test_oom_injection),
        cmocka_unit_test(test_response_pb),
        cmocka_unit_test(test_status_pb),
        cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
