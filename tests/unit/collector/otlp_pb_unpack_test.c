/*
 * Differential tests of the hand-written OTLP protobuf unpacker (th__otlp_unpack) against
 * protobuf-c's generic unpack: thousands of seeded random requests generated from the
 * protobuf-c descriptors (every field of every message, set or unset, given once or many
 * times, in any order, non-repeated fields repeated, unknown fields of every wire type,
 * padded varints, empty and large strings, long repeated fields, nested AnyValues), each
 * decoded by both and packed again: the bytes must be identical. Then the cases that need
 * a hand-made input: protobuf-c's merge rules, oneof switching, odd varints; truncated and
 * malformed inputs; the arena budget; and th_batch_clone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/otlp_internal.h"
#include "th/otlp.h"

#define REQ_DESC                                                                                   \
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor

/* ---- A small protobuf writer -------------------------------------------------------------- */

static void w_raw(th_buf_t *b, const void *p, size_t n)
{
    assert_int_equal(th_buf_append(b, p, n), 0);
}

/* A varint padded with @p pad extra bytes (non-canonical, but valid) up to @p max bytes. */
static void w_varint_pad(th_buf_t *b, uint64_t v, unsigned pad, unsigned max)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    while (pad-- > 0 && n < max) {
        tmp[n++] = 0x80;
    }
    tmp[n - 1] &= 0x7f;
    w_raw(b, tmp, n);
}

static void w_varint(th_buf_t *b, uint64_t v)
{
    w_varint_pad(b, v, 0, 10);
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

static void w_sub(th_buf_t *b, unsigned field, th_buf_t *sub)
{
    w_len(b, field, sub->ptr, sub->len);
    th_buf_free(sub);
}

static void w_fixed(th_buf_t *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++) {
        tmp[i] = (uint8_t)(v >> (8 * i));
    }
    w_raw(b, tmp, n);
}

/* ---- Decoding with both, and comparing ------------------------------------------------------ */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(m, b), *len);
    return b;
}

/* The new unpacker with an unlimited budget. @return its result; *out set on success. */
static int unpack_new(const uint8_t *buf, size_t len, th_arena_t *a, th_otlp_request_t **out)
{
    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, a, SIZE_MAX);
    return th__otlp_unpack(buf, len, &mem, out);
}

static th_otlp_request_t *unpack_pbc(const uint8_t *buf, size_t len, th_arena_t *a)
{
    ProtobufCAllocator alloc;
    th_arena_pbc_allocator(a, &alloc);
    return opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
        &alloc, len, buf);
}

static bool prewalk_ok(const uint8_t *buf, size_t len)
{
    struct th_otlp_limits l;
    th__otlp_limits_resolve(NULL, len, &l);
    uint64_t est;
    return th__otlp_prewalk(buf, len, &l, NULL, &est) == 0;
}

static void dump(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n && i < 400; i++) {
        fprintf(stderr, " %02x", p[i]);
    }
    fprintf(stderr, "%s\n", n > 400 ? " ..." : "");
}

/*
 * Decode @p buf with both unpackers and require the same packed bytes.
 * @return true when both decoded it, false when both refused it.
 */
static bool same_both(const uint8_t *buf, size_t len)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_arena_t *b = th_arena_create(0, 0);
    assert_non_null(a);
    assert_non_null(b);
    th_otlp_request_t *rn = NULL;
    int rc = unpack_new(buf, len, a, &rn);
    th_otlp_request_t *rp = unpack_pbc(buf, len, b);
    if ((rc == 0) != (rp != NULL)) {
        dump("input", buf, len);
        fail_msg("new unpacker %d, protobuf-c %s", rc, rp ? "ok" : "failed");
    }
    bool ok = rc == 0;
    if (ok) {
        size_t nn;
        size_t np;
        uint8_t *pn = pack(&rn->base, &nn);
        uint8_t *pp = pack(&rp->base, &np);
        if (nn != np || memcmp(pn, pp, nn) != 0) {
            dump("input", buf, len);
            dump("new", pn, nn);
            dump("protobuf-c", pp, np);
            fail_msg("packed results differ");
        }
        free(pn);
        free(pp);
    } else {
        assert_int_equal(rc, TH_EDECODE);
    }
    th_arena_destroy(a);
    th_arena_destroy(b);
    return ok;
}

/* ---- Random requests, generated from the descriptors ------------------------------------- */

struct gen {
    uint64_t s;
    int budget;      /* messages left to generate */
    bool pad_kv_key; /* pad every KeyValue.key tag (keeps the walk off its fast path) */
    bool bad;        /* now and then a byte that is not UTF-8, or a NUL, in a string */
};

static uint64_t rnd(struct gen *g)
{
    /* xorshift64* */
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 0x2545F4914F6CDD1Dull;
}

static unsigned below(struct gen *g, unsigned n)
{
    return (unsigned)(rnd(g) % n);
}

/* Usually canonical, sometimes padded (at least @p min_pad bytes). */
static void g_varint_min(struct gen *g, th_buf_t *b, uint64_t v, unsigned max, unsigned min_pad)
{
    unsigned pad = below(g, 8) == 0 ? 1 + below(g, 4) : 0;
    w_varint_pad(b, v, pad > min_pad ? pad : min_pad, max);
}

static void g_varint(struct gen *g, th_buf_t *b, uint64_t v, unsigned max)
{
    g_varint_min(g, b, v, max, 0);
}

static void g_tag(struct gen *g, th_buf_t *b, uint32_t fno, unsigned wt)
{
    g_varint(g, b, (uint64_t)fno << 3 | wt, 5);
}

/* Interesting integers: small, boundaries, negative (10-byte), random. */
static uint64_t g_int(struct gen *g)
{
    static const uint64_t edge[] = {0,          1,          127,         128,
                                    0x7fffffff, 0x80000000, 0xffffffff,  0x100000000ull,
                                    ~0ull,      1ull << 63, (uint64_t)-2};
    switch (below(g, 4)) {
    case 0:
        return edge[below(g, TH_ARRAY_SIZE(edge))];
    case 1:
        return rnd(g);
    case 2:
        return rnd(g) >> below(g, 64);
    default:
        return below(g, 300);
    }
}

/* Valid UTF-8 without NUL, of about @p n bytes. */
static void g_utf8(struct gen *g, th_buf_t *b, size_t n)
{
    size_t start = b->len;
    while (b->len - start < n) {
        uint32_t c;
        switch (below(g, 8)) {
        case 0:
            c = 0x80 + below(g, 0x800 - 0x80);
            break;
        case 1:
            c = 0x800 + below(g, 0x10000 - 0x800);
            if (c >= 0xd800 && c <= 0xdfff) {
                c = 0xe000;
            }
            break;
        case 2:
            c = 0x10000 + below(g, 0x110000 - 0x10000);
            break;
        default:
            c = 1 + below(g, 0x7f);
            break;
        }
        uint8_t u[4];
        size_t k;
        if (c < 0x80) {
            u[0] = (uint8_t)c;
            k = 1;
        } else if (c < 0x800) {
            u[0] = (uint8_t)(0xc0 | c >> 6);
            u[1] = (uint8_t)(0x80 | (c & 0x3f));
            k = 2;
        } else if (c < 0x10000) {
            u[0] = (uint8_t)(0xe0 | c >> 12);
            u[1] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
            u[2] = (uint8_t)(0x80 | (c & 0x3f));
            k = 3;
        } else {
            u[0] = (uint8_t)(0xf0 | c >> 18);
            u[1] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
            u[2] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
            u[3] = (uint8_t)(0x80 | (c & 0x3f));
            k = 4;
        }
        w_raw(b, u, k);
    }
}

static size_t g_strlen(struct gen *g)
{
    switch (below(g, 16)) {
    case 0:
    case 1:
        return 0;
    case 2:
        return 1000 + below(g, 2000); /* past the inline allocation path */
    case 3:
        return below(g, 200) == 0 ? 70000 : 8 + below(g, 100);
    default:
        return 1 + below(g, 24);
    }
}

/* A length-delimited value: the length (maybe padded) and the bytes. */
static void g_lendata(struct gen *g, th_buf_t *b, const th_buf_t *v)
{
    g_varint(g, b, v->len, 5);
    if (v->len) {
        w_raw(b, v->ptr, v->len);
    }
}

static void g_message(struct gen *g, th_buf_t *out, const ProtobufCMessageDescriptor *d,
                      unsigned depth);

/* One occurrence of field @p f of message @p d. */
static void g_field(struct gen *g, th_buf_t *b, const ProtobufCMessageDescriptor *d,
                    const ProtobufCFieldDescriptor *f, unsigned depth)
{
    th_buf_t v = {0};
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        g_tag(g, b, f->id, 0);
        if (below(g, 10) == 0) {
            /* Only a tenth byte carries a bit: still true for protobuf-c. */
            w_raw(b, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", 10);
        } else {
            g_varint(g, b, below(g, 3) == 0 ? g_int(g) : below(g, 2), 10);
        }
        break;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_ENUM:
        g_tag(g, b, f->id, 0);
        g_varint(g, b, g_int(g), 10);
        break;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        g_tag(g, b, f->id, 1);
        w_fixed(b, g_int(g), 8);
        break;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        g_tag(g, b, f->id, 5);
        w_fixed(b, g_int(g), 4);
        break;
    case PROTOBUF_C_TYPE_STRING:
        g_varint_min(
            g, b, (uint64_t)f->id << 3 | 2, 5,
            g->pad_kv_key && d == &opentelemetry__proto__common__v1__key_value__descriptor ? 1 : 0);
        g_utf8(g, &v, g_strlen(g));
        if (below(g, 40) == 0 && g->bad) {
            uint8_t c = below(g, 2) ? 0xff : 0x00;
            w_raw(&v, &c, 1);
        }
        g_lendata(g, b, &v);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        static const size_t sizes[] = {0, 8, 16, 16, 8, 3, 40};
        size_t n = sizes[below(g, TH_ARRAY_SIZE(sizes))];
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)rnd(g);
            w_raw(&v, &c, 1);
        }
        g_tag(g, b, f->id, 2);
        g_lendata(g, b, &v);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        g_tag(g, b, f->id, 2);
        g_message(g, &v, f->descriptor, depth + 1);
        g_lendata(g, b, &v);
        break;
    default:
        fail_msg("field type %d not in the OTLP schema", (int)f->type);
    }
    th_buf_free(&v);
}

/* An unknown field of any wire type protobuf-c accepts. */
static void g_unknown(struct gen *g, th_buf_t *b, const ProtobufCMessageDescriptor *d)
{
    static const uint32_t far[] = {100, 1000, 2047, 2048, 0x1fffffff};
    uint32_t fno = below(g, 2) ? d->fields[d->n_fields - 1].id + 1 + below(g, 20)
                               : far[below(g, TH_ARRAY_SIZE(far))];
    th_buf_t v = {0};
    switch (below(g, 4)) {
    case 0:
        g_tag(g, b, fno, 0);
        g_varint(g, b, g_int(g), 10);
        break;
    case 1:
        g_tag(g, b, fno, 1);
        w_fixed(b, rnd(g), 8);
        break;
    case 2:
        g_tag(g, b, fno, 5);
        w_fixed(b, rnd(g), 4);
        break;
    default:
        /* Any bytes: unknown fields are not checked for UTF-8. */
        for (unsigned i = below(g, 30); i > 0; i--) {
            uint8_t c = (uint8_t)rnd(g);
            w_raw(&v, &c, 1);
        }
        g_tag(g, b, fno, 2);
        g_lendata(g, b, &v);
        break;
    }
    th_buf_free(&v);
}

static void g_message(struct gen *g, th_buf_t *out, const ProtobufCMessageDescriptor *d,
                      unsigned depth)
{
    if (d == &opentelemetry__proto__common__v1__any_value__descriptor) {
        /* Always a member: protobuf-c 1.4 fails to merge two AnyValues that both have none
         * (merge_messages looks up the oneof case 0 and gives up), which test_merge_any
         * covers by hand. Often nothing else, as real values are. */
        g_field(g, out, d, &d->fields[below(g, d->n_fields)], depth);
        if (below(g, 2) == 0) {
            return;
        }
    }
    if (d == &opentelemetry__proto__common__v1__key_value__descriptor && below(g, 2) == 0) {
        /* Often the usual key/value: key, then value. */
        g_field(g, out, d, &d->fields[0], depth);
        g_field(g, out, d, &d->fields[1], depth);
        return;
    }
    if (--g->budget < 0 || depth > 14) {
        return; /* an empty message */
    }
    unsigned n = below(g, depth < 4 ? 8 : 5);
    for (unsigned i = 0; i < n; i++) {
        if (below(g, 12) == 0) {
            g_unknown(g, out, d);
            continue;
        }
        const ProtobufCFieldDescriptor *f = &d->fields[below(g, d->n_fields)];
        /* Sometimes a long run of one field (repeated or not). */
        unsigned times = below(g, 25) == 0 ? 20 + below(g, 150) : below(g, 6) == 0 ? 2 : 1;
        for (unsigned t = 0; t < times; t++) {
            g_field(g, out, d, f, depth);
        }
    }
}

static void g_request(struct gen *g, th_buf_t *out)
{
    g->budget = 1 + (int)below(g, below(g, 10) == 0 ? 1500 : 120);
    g_message(g, out, &REQ_DESC, 0);
}

static void test_random_requests(void **state)
{
    (void)state;
    struct gen g = {.s = 0x9e3779b97f4a7c15ull};
    size_t decoded = 0;
    size_t bytes = 0;
    for (int i = 0; i < 2000; i++) {
        th_buf_t req = {0};
        g_request(&g, &req);
        /* The generator only writes what the validating walk accepts... */
        if (!prewalk_ok(req.ptr, req.len)) {
            dump("input", req.ptr, req.len);
            fail_msg("request %d not accepted by the walk", i);
        }
        /* ...and both unpackers must then build the same request. */
        assert_true(same_both(req.ptr, req.len));
        decoded++;
        bytes += req.len;
        /* Truncated: whatever the walk accepts, both agree on; nothing crashes. */
        for (int k = 0; k < 3 && req.len > 0; k++) {
            size_t cut = below(&g, (unsigned)req.len);
            if (prewalk_ok(req.ptr, cut)) {
                assert_true(same_both(req.ptr, cut));
            } else {
                th_arena_t *a = th_arena_create(0, 0);
                th_otlp_request_t *r = NULL;
                int rc = unpack_new(req.ptr, cut, a, &r);
                assert_true(rc == 0 || rc == TH_EDECODE);
                th_arena_destroy(a);
            }
        }
        th_buf_free(&req);
    }
    assert_int_equal(decoded, 2000);
    print_message("%zu random requests, %zu bytes\n", decoded, bytes);
}

/*
 * The walk checks the common key/value in one go (kv_fast in otlp_pb.c); the general walk
 * does it when the key's tag is padded. Both must accept and refuse the same requests, with
 * the same messages, and estimate the same size. Half the requests have an invalid string
 * somewhere; half run with a string limit most strings break.
 */
static void test_walk_fast_path(void **state)
{
    (void)state;
    size_t refused = 0;
    for (int i = 0; i < 1000; i++) {
        struct gen g1 = {.s = 0x5851f42d4c957f2dull + (uint64_t)i * 0x9e3779b97f4a7c15ull,
                         .bad = (i & 1) != 0};
        struct gen g2 = g1;
        g2.pad_kv_key = true;
        th_buf_t fast = {0};
        th_buf_t slow = {0};
        g_request(&g1, &fast);
        g_request(&g2, &slow);
        struct th_otlp_limits lim;
        th_otlp_limits_default(&lim);
        if (i & 2) {
            lim.max_string_len = 12;
        }
        struct th_otlp_limits l1;
        struct th_otlp_limits l2;
        th__otlp_limits_resolve(&lim, fast.len, &l1);
        th__otlp_limits_resolve(&lim, slow.len, &l2);
        struct th_otlp_error e1;
        struct th_otlp_error e2;
        uint64_t est1 = 0;
        uint64_t est2 = 0;
        int rc1 = th__otlp_prewalk(fast.ptr, fast.len, &l1, &e1, &est1);
        int rc2 = th__otlp_prewalk(slow.ptr, slow.len, &l2, &e2, &est2);
        if (rc1 != rc2 || (rc1 == 0 && est1 != est2) || (rc1 != 0 && strcmp(e1.msg, e2.msg) != 0)) {
            dump("canonical", fast.ptr, fast.len);
            fail_msg("request %d: %d '%s' est %llu vs %d '%s' est %llu", i, rc1, rc1 ? e1.msg : "",
                     (unsigned long long)est1, rc2, rc2 ? e2.msg : "", (unsigned long long)est2);
        }
        refused += rc1 != 0;
        th_buf_free(&fast);
        th_buf_free(&slow);
    }
    /* Both outcomes were exercised. */
    assert_true(refused > 200 && refused < 950);
    print_message("%zu of 1000 refused\n", refused);
}

/* ---- Hand-made cases ------------------------------------------------------------------------ */

/* A request with one span whose fields are @p span. */
static void one_span(th_buf_t *req, th_buf_t *span)
{
    th_buf_t ss = {0};
    th_buf_t rs = {0};
    w_sub(&ss, 2, span);
    w_sub(&rs, 2, &ss);
    w_sub(req, 1, &rs);
}

/* A span with one attribute "k" whose value field (field 2 of KeyValue) is given @p n
 * times, from the encoded AnyValues @p v. */
static void attr_values(th_buf_t *req, const th_buf_t *v, size_t n)
{
    th_buf_t kv = {0};
    w_str(&kv, 1, "k");
    for (size_t i = 0; i < n; i++) {
        w_len(&kv, 2, v[i].ptr, v[i].len);
    }
    th_buf_t span = {0};
    w_sub(&span, 9, &kv);
    one_span(req, &span);
}

static th_otlp_any_t *first_value(th_otlp_request_t *r)
{
    return r->resource_spans[0]->scope_spans[0]->spans[0]->attributes[0]->value;
}

/* protobuf-c's merge rules for an AnyValue given twice, checked on the structs too. */
static void test_merge_any(void **state)
{
    (void)state;
    th_buf_t v[8] = {{0}};
    w_str(&v[0], 1, "str");
    w_tag(&v[1], 2, 0);
    w_varint(&v[1], 1);
    w_tag(&v[2], 3, 0);
    w_varint(&v[2], 42);
    w_tag(&v[3], 4, 1);
    w_fixed(&v[3], 0x400921fb54442d18ull, 8);
    th_buf_t arr = {0};
    w_len(&arr, 1, "\x18\x07", 2);
    w_sub(&v[4], 5, &arr);
    w_len(&v[5], 7, "\x01\x02", 2);
    w_len(&v[6], 7, "", 0);
    w_tag(&v[7], 8, 0);
    w_varint(&v[7], 5);
    th_buf_t empty = {0};
    /* Each kind, followed by an empty AnyValue (no member set). */
    static const int carried[] = {
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET, /* strings are not */
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE,
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE,
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE,
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE,
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE,
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET, /* empty bytes are not */
        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX,
    };
    for (size_t i = 0; i < 8; i++) {
        th_buf_t pair[2] = {v[i], empty};
        th_buf_t req = {0};
        attr_values(&req, pair, 2);
        assert_true(same_both(req.ptr, req.len));
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *r = NULL;
        assert_int_equal(unpack_new(req.ptr, req.len, a, &r), 0);
        assert_int_equal(first_value(r)->value_case, carried[i]);
        th_arena_destroy(a);
        th_buf_free(&req);
        /* Every kind followed by every kind: the later wins whole. */
        for (size_t j = 0; j < 8; j++) {
            th_buf_t two[2] = {v[i], v[j]};
            attr_values(&req, two, 2);
            assert_true(same_both(req.ptr, req.len));
            th_buf_free(&req);
        }
    }
    /* Two AnyValues with no member: protobuf-c 1.4 fails the whole request here (its merge
     * looks up oneof case 0); the message is valid, and the result is an empty value. */
    th_buf_t none[2] = {{0}, {0}};
    th_buf_t req = {0};
    attr_values(&req, none, 2);
    assert_true(prewalk_ok(req.ptr, req.len));
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r = NULL;
    assert_int_equal(unpack_new(req.ptr, req.len, a, &r), 0);
    assert_int_equal(first_value(r)->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    th_arena_destroy(a);
    th_buf_free(&req);
    for (size_t i = 0; i < 8; i++) {
        th_buf_free(&v[i]);
    }
}

/* Scope, resource and status given twice: merged, repeated fields concatenated. */
static void test_merge_messages(void **state)
{
    (void)state;
    th_buf_t kv = {0};
    w_str(&kv, 1, "a");
    th_buf_t scope1 = {0};
    th_buf_t scope2 = {0};
    w_str(&scope1, 1, "name1");
    w_str(&scope1, 2, "v1");
    w_len(&scope1, 3, kv.ptr, kv.len);
    w_tag(&scope1, 4, 0);
    w_varint(&scope1, 3);
    w_str(&scope2, 2, ""); /* sent, though empty: replaces v1 */
    w_len(&scope2, 3, kv.ptr, kv.len);
    w_tag(&scope2, 99, 0); /* unknown fields of the later occurrence survive */
    w_varint(&scope2, 1);
    th_buf_t status1 = {0};
    th_buf_t status2 = {0};
    w_str(&status1, 2, "boom");
    w_tag(&status1, 3, 0);
    w_varint(&status1, 2);
    w_tag(&status2, 3, 0);
    w_varint(&status2, 1);
    th_buf_t res1 = {0};
    th_buf_t res2 = {0};
    w_len(&res1, 1, kv.ptr, kv.len);
    w_tag(&res1, 2, 0);
    w_varint(&res1, 9);
    w_len(&res2, 1, kv.ptr, kv.len);
    w_len(&res2, 1, kv.ptr, kv.len);
    w_len(&res2, 3, "\x0a\x01x", 3);

    th_buf_t span = {0};
    w_len(&span, 15, status1.ptr, status1.len);
    w_len(&span, 15, status2.ptr, status2.len);
    th_buf_t ss = {0};
    w_len(&ss, 1, scope1.ptr, scope1.len);
    w_sub(&ss, 2, &span);
    w_len(&ss, 1, scope2.ptr, scope2.len);
    th_buf_t rs = {0};
    w_len(&rs, 1, res1.ptr, res1.len);
    w_sub(&rs, 2, &ss);
    w_len(&rs, 1, res2.ptr, res2.len);
    th_buf_t req = {0};
    w_sub(&req, 1, &rs);
    assert_true(prewalk_ok(req.ptr, req.len));
    assert_true(same_both(req.ptr, req.len));

    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r = NULL;
    assert_int_equal(unpack_new(req.ptr, req.len, a, &r), 0);
    th_otlp_resource_spans_t *rsp = r->resource_spans[0];
    assert_int_equal(rsp->resource->n_attributes, 3);
    assert_int_equal(rsp->resource->dropped_attributes_count, 0); /* the later's: unset */
    assert_int_equal(rsp->resource->n_entity_refs, 1);
    const Opentelemetry__Proto__Common__V1__InstrumentationScope *sc = rsp->scope_spans[0]->scope;
    assert_string_equal(sc->name, "name1");
    assert_string_equal(sc->version, "");
    assert_int_equal(sc->n_attributes, 2);
    assert_int_equal(sc->base.n_unknown_fields, 1);
    const Opentelemetry__Proto__Trace__V1__Status *st = rsp->scope_spans[0]->spans[0]->status;
    assert_string_equal(st->message, "boom");
    assert_int_equal(st->code, 1);
    th_arena_destroy(a);
    th_buf_free(&req);
    th_buf_free(&kv);
    th_buf_free(&scope1);
    th_buf_free(&scope2);
    th_buf_free(&status1);
    th_buf_free(&status2);
    th_buf_free(&res1);
    th_buf_free(&res2);
}

/* Scalars: the last occurrence wins; ids and strings as sent; defaults when absent. */
static void test_fields(void **state)
{
    (void)state;
    th_buf_t span = {0};
    w_len(&span, 1, "AAAAAAAAAAAAAAAA", 16);
    w_len(&span, 1, "0123456789abcdef", 16);
    w_len(&span, 2, "spanid01", 8);
    w_str(&span, 5, "first");
    w_str(&span, 5, "second");
    w_tag(&span, 6, 0);
    w_varint(&span, 2);
    w_tag(&span, 6, 0);
    w_varint(&span, (uint64_t)-1); /* an int32 enum as a 10-byte varint */
    w_tag(&span, 7, 1);
    w_fixed(&span, 111, 8);
    w_tag(&span, 16, 5);
    w_fixed(&span, 0x301, 4);
    w_tag(&span, 10, 0);
    w_varint(&span, 0x1234567890ull); /* a uint32 keeps the low 32 bits */
    w_len(&span, 4, "", 0);
    th_buf_t req = {0};
    one_span(&req, &span);
    assert_true(same_both(req.ptr, req.len));
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r = NULL;
    assert_int_equal(unpack_new(req.ptr, req.len, a, &r), 0);
    th_otlp_span_t *s = r->resource_spans[0]->scope_spans[0]->spans[0];
    assert_int_equal(s->base.descriptor, &opentelemetry__proto__trace__v1__span__descriptor);
    assert_int_equal(s->trace_id.len, 16);
    assert_memory_equal(s->trace_id.data, "0123456789abcdef", 16);
    assert_string_equal(s->name, "second");
    assert_true((int32_t)s->kind == -1);
    assert_int_equal(s->start_time_unix_nano, 111);
    assert_int_equal(s->end_time_unix_nano, 0);
    assert_int_equal(s->flags, 0x301);
    assert_int_equal(s->dropped_attributes_count, 0x34567890u);
    assert_int_equal(s->parent_span_id.len, 0);
    assert_null(s->parent_span_id.data);
    assert_ptr_equal(s->trace_state, protobuf_c_empty_string);
    assert_null(s->status);
    assert_int_equal(s->n_attributes, 0);
    assert_null(s->attributes);
    th_arena_destroy(a);
    th_buf_free(&req);
}

/* Malformed input: refused without reading past the end, whatever the bytes. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        bool pbc_accepts; /* protobuf-c takes it (the walk refuses it first) */
    } bad[] = {
        {"\x0a", 1, false},                         /* length missing */
        {"\x0a\x05\x00", 3, false},                 /* length past the end */
        {"\x0a\x80", 2, false},                     /* truncated length */
        {"\x0a\xff\xff\xff\xff\x0f", 6, false},     /* 5-byte length, past the end */
        {"\x0a\x80\x80\x80\x80\x80\x00", 7, false}, /* 6-byte length */
        {"\x08\x01", 2, false},                     /* resource_spans as a varint */
        {"\x00\x00", 2, false},                     /* field 0 */
        {"\x0b", 1, false},                         /* a group */
        {"\x0c", 1, false},                         /* a group end */
        {"\x0e", 1, false},                         /* wire type 6 */
        {"\x80", 1, false},                         /* truncated tag */
        {"\x80\x80\x80\x80\x80\x01", 6, false},     /* tag longer than 5 bytes */
        {"\xf8\xff\xff\xff\x7f\x00", 6, true},      /* field number past 2^29 */
        {"\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12, false}, /* 11-byte varint */
        {"\x19\x01\x02", 3, false},                                      /* truncated 64-bit */
        {"\x15\x01", 2, false},                                          /* truncated 32-bit */
        {"\x0a\x02\x12\x05", 4, false},         /* inner length past its message */
        {"\x0a\x04\x12\x02\x08\x01", 6, false}, /* scope_spans[0] as a varint */
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(bad); i++) {
        /* A heap copy of exactly the bytes, so a read past them is a real overflow. */
        uint8_t *copy = malloc(bad[i].len);
        assert_non_null(copy);
        memcpy(copy, bad[i].bytes, bad[i].len);
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *r = NULL;
        if (unpack_new(copy, bad[i].len, a, &r) != TH_EDECODE) {
            fail_msg("bad input %zu accepted", i);
        }
        assert_null(r);
        /* protobuf-c refuses them too (none is deep enough to hurt it). */
        if (!bad[i].pbc_accepts) {
            assert_null(unpack_pbc(copy, bad[i].len, a));
        }
        th_arena_destroy(a);
        free(copy);
    }
    /* The empty request, and no buffer at all. */
    assert_false(!same_both((const uint8_t *)"", 0));
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r = NULL;
    assert_int_equal(unpack_new(NULL, 0, a, &r), 0);
    assert_int_equal(r->n_resource_spans, 0);
    assert_int_equal(unpack_new(NULL, 1, a, &r), TH_EDECODE);
    th_arena_destroy(a);
}

/* Nesting past TH_OTLP_MAX_DEPTH_CAP is refused, not recursed into without end. */
static void test_deep_nesting(void **state)
{
    (void)state;
    for (int levels = TH_OTLP_MAX_DEPTH_CAP; levels <= TH_OTLP_MAX_DEPTH_CAP + 1; levels++) {
        th_buf_t any = {0};
        w_tag(&any, 3, 0);
        w_varint(&any, 1);
        for (int i = 0; i < levels; i++) {
            th_buf_t arr = {0};
            w_sub(&arr, 1, &any);
            w_sub(&any, 5, &arr);
        }
        th_buf_t kv = {0};
        w_str(&kv, 1, "deep");
        w_sub(&kv, 2, &any);
        th_buf_t span = {0};
        w_sub(&span, 9, &kv);
        th_buf_t req = {0};
        one_span(&req, &span);
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *r = NULL;
        int rc = unpack_new(req.ptr, req.len, a, &r);
        assert_int_equal(rc, levels > TH_OTLP_MAX_DEPTH_CAP ? TH_EDECODE : 0);
        th_arena_destroy(a);
        th_buf_free(&req);
    }
    /* Far deeper, 100,000 levels of kvlist{kv{value: kvlist{...}}}, written inside out with
     * 5-byte lengths: refused, no crash. */
    size_t levels = 100000;
    size_t unit = 3 * 6; /* three length-delimited headers of 6 bytes each */
    size_t total = levels * unit;
    uint8_t *buf = malloc(total);
    assert_non_null(buf);
    size_t remaining = 0;
    for (size_t i = levels; i-- > 0;) {
        uint8_t *p = buf + i * unit;
        /* AnyValue.kvlist_value { KeyValueList.values { KeyValue.value { ... } } } */
        const uint8_t hdr[3] = {0x32, 0x0a, 0x12};
        for (int h = 0; h < 3; h++) {
            size_t inner = remaining + (size_t)(unit - 6 * (h + 1));
            p[6 * h] = hdr[h];
            uint64_t v = inner;
            for (int k = 0; k < 5; k++) {
                p[6 * h + 1 + k] = (uint8_t)((v & 0x7f) | (k < 4 ? 0x80 : 0));
                v >>= 7;
            }
        }
        remaining += unit;
    }
    th_arena_t *a = th_arena_create(0, 0);
    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, a, SIZE_MAX);
    th_otlp_request_t *r = NULL;
    th_buf_t kv = {0};
    w_str(&kv, 1, "k");
    w_len(&kv, 2, buf, total);
    th_buf_t span = {0};
    w_sub(&span, 9, &kv);
    th_buf_t req = {0};
    one_span(&req, &span);
    assert_int_equal(th__otlp_unpack(req.ptr, req.len, &mem, &r), TH_EDECODE);
    th_arena_destroy(a);
    th_buf_free(&req);
    free(buf);
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

/* Real payloads: the test data and the fuzz corpus seeds. */
static void test_real_payloads(void **state)
{
    (void)state;
    static const char *const files[] = {
        TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb",
        TH_SOURCE_DIR "/tests/fuzz/otlp_pb/corpus/every-type.pb",
        TH_SOURCE_DIR "/tests/fuzz/otlp_pb/corpus/vector-146.pb",
        TH_SOURCE_DIR "/tests/fuzz/otlp_pb/corpus/nested-33.pb",
        TH_SOURCE_DIR "/tests/fuzz/otlp_pb/corpus/merge-and-unknown-fields.pb",
        TH_SOURCE_DIR "/tests/fuzz/otlp_pb/corpus/anyvalue-oneof-switch.pb",
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(files); i++) {
        size_t len;
        uint8_t *b = read_file(files[i], &len);
        assert_non_null(b);
        /* nested-33 is refused by the walk with the default depth; protobuf-c can still
         * read it, and so must the unpacker. */
        assert_true(same_both(b, len));
        free(b);
    }
}

/*
 * The budget: with too little room the unpacker stops with TH_ENOMEM and over_limit set,
 * never anything else, and th_otlp_decode_pb says it is the request's size (413).
 */
static void test_arena_budget(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = read_file(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb", &len);
    assert_non_null(b);
    /* What it takes. */
    th_arena_t *a = th_arena_create(0, 0);
    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, a, SIZE_MAX);
    th_otlp_request_t *r = NULL;
    assert_int_equal(th__otlp_unpack(b, len, &mem, &r), 0);
    size_t need = mem.used;
    th_arena_destroy(a);
    assert_true(need > 0);
    for (size_t limit = 0; limit < need; limit += need / 37 + 1) {
        a = th_arena_create(0, 0);
        th__otlp_mem_init(&mem, a, limit);
        r = NULL;
        assert_int_equal(th__otlp_unpack(b, len, &mem, &r), TH_ENOMEM);
        assert_true(mem.over_limit);
        assert_false(mem.oom);
        assert_true(mem.used <= limit);
        assert_null(r);
        th_arena_destroy(a);
    }
    /* Through the decoder: the request's own size, with the limit in the message. */
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    for (lim.max_arena = 1024; lim.max_arena < need + 65536; lim.max_arena += 8192) {
        a = th_arena_create(0, 0);
        struct th_otlp_error err;
        r = NULL;
        int rc = th_otlp_decode_pb(b, len, &lim, a, &r, &err);
        if (lim.max_arena >= need + TH__OTLP_BLOCK) {
            assert_int_equal(rc, 0);
        } else if (rc != 0) {
            assert_int_equal(rc, TH_ENOMEM);
            assert_true(err.arena_limit);
            char want[64];
            snprintf(want, sizeof(want), "more than %llu bytes", (unsigned long long)lim.max_arena);
            assert_non_null(strstr(err.msg, want));
        }
        th_arena_destroy(a);
    }
    /* An arena out of memory is a plain TH_ENOMEM. */
    a = th_arena_create(256, 2048);
    th__otlp_mem_init(&mem, a, SIZE_MAX);
    assert_int_equal(th__otlp_unpack(b, len, &mem, &r), TH_ENOMEM);
    assert_true(mem.oom);
    th_arena_destroy(a);
    free(b);
}

/* The deep copy of a batch goes through the same unpacker: equal, and independent. */
static void test_batch_clone(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = read_file(TH_SOURCE_DIR "/tests/unit/collector/data/otlp-100spans-01.pb", &len);
    assert_non_null(b);
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *r = NULL;
    struct th_otlp_error err;
    assert_int_equal(th_otlp_decode_pb(b, len, NULL, a, &r, &err), 0);
    th_batch_t *batch = th_batch_create(a, r);
    assert_non_null(batch);
    th_batch_t *copy = NULL;
    assert_int_equal(th_batch_clone(batch, &copy), 0);
    assert_int_equal(copy->span_count, batch->span_count);
    assert_ptr_not_equal(copy->req, batch->req);
    size_t n1;
    size_t n2;
    uint8_t *p1 = pack(&batch->req->base, &n1);
    uint8_t *p2 = pack(&copy->req->base, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1);
    assert_int_equal(n1, len); /* canonical input packs back to itself */
    assert_memory_equal(p1, b, len);
    free(p1);
    free(p2);
    th_batch_release(batch);
    /* The copy outlives the original. */
    th_otlp_span_t *s = copy->req->resource_spans[0]->scope_spans[0]->spans[0];
    assert_int_equal(s->trace_id.len, 16);
    assert_true(strlen(s->name) > 0);
    th_batch_release(copy);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),          cmocka_unit_test(test_merge_any),
        cmocka_unit_test(test_merge_messages),  cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_deep_nesting),    cmocka_unit_test(test_real_payloads),
        cmocka_unit_test(test_arena_budget),    cmocka_unit_test(test_batch_clone),
        cmocka_unit_test(test_random_requests), cmocka_unit_test(test_walk_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
