/*
 * Tests of the LMDB span store through its public interface (and, white-box, its key
 * encodings and stored records): every field of a span survives the round trip; a trace
 * written in pieces, out of order, comes back whole; each search condition and index; the
 * catalog; dependencies across writes; retention by age and by size (the file stops
 * growing); reopening; corrupted values; a crashed writer.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "store/lmdb/store_lmdb.h"
#include "store_test_util.h"

struct fx {
    char dir[256];
    th_store_t *st;
    th_arena_t *a;
};

static int open_store(struct fx *f, const struct th_store_cfg *base)
{
    struct th_store_cfg cfg = base ? *base : (struct th_store_cfg){.ttl_ns = 72 * 3600 * TU_S};
    cfg.path = f->dir;
    char err[512] = "";
    int ret = th_store_open(&th_store_lmdb_ops, &cfg, &f->st, err, sizeof(err));
    if (ret != 0) {
        print_error("open: %s\n", err);
    }
    return ret;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    tu_tmpdir(f->dir, sizeof(f->dir), "store");
    f->a = th_arena_create(0, 0);
    assert_int_equal(open_store(f, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    th_store_close(f->st);
    th_arena_destroy(f->a);
    tu_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- Keys and codecs ------------------------------------------------------------------ */

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void test_keys_sort(void **state)
{
    (void)state;
    srand(7);
    for (int i = 0; i < 2000; i++) {
        uint64_t a = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 2) ^ (uint64_t)(rand() & 3);
        uint64_t b = i % 7 ? ((uint64_t)rand() << 33) ^ (uint64_t)rand() : a;
        uint64_t ba = (uint64_t)rand(), bb = (uint64_t)rand();
        uint8_t ka[TH_KEY_SVCSUM_LEN], kb[TH_KEY_SVCSUM_LEN];
        th__key_svcsum(ka, 7, a, ba);
        th__key_svcsum(kb, 7, b, bb);
        int want = a != b ? (a < b ? -1 : 1) : (ba < bb ? -1 : ba > bb);
        assert_int_equal(sign(memcmp(ka, kb, sizeof(ka))), want);
        /* the service comes first */
        th__key_svcsum(kb, 8, 0, 0);
        assert_true(memcmp(ka, kb, sizeof(ka)) < 0);

        uint8_t ta[TH_KEY_TRACE_LEN], tb[TH_KEY_TRACE_LEN], tid[16];
        tu_tid(tid, 42);
        th__key_trace(ta, tid, a, (uint16_t)i);
        th__key_trace(tb, tid, b, (uint16_t)(i + 1));
        want = a != b ? (a < b ? -1 : 1) : -1;
        assert_int_equal(sign(memcmp(ta, tb, sizeof(ta))), want);

        uint8_t bl1[TH_KEY_BLOCK_LEN], bl2[TH_KEY_BLOCK_LEN];
        th__key_block(bl1, a, TH_BLOCK_KIND_DATA, 65535);
        th__key_block(bl2, a + 1, TH_BLOCK_KIND_META, 0);
        if (a != UINT64_MAX) {
            assert_true(memcmp(bl1, bl2, sizeof(bl1)) < 0);
        }
        uint8_t d1[TH_KEY_DEPS_LEN], d2[TH_KEY_DEPS_LEN];
        th__key_deps(d1, TH_DEPS_MINUTE, (uint32_t)a, 9, 9);
        th__key_deps(d2, TH_DEPS_MINUTE, (uint32_t)b, 1, 1);
        if ((uint32_t)a != (uint32_t)b) {
            assert_int_equal(sign(memcmp(d1, d2, sizeof(d1))), (uint32_t)a < (uint32_t)b ? -1 : 1);
        }
        /* round trips */
        assert_int_equal(th__be64_get(ka + 4), a);
        assert_int_equal(th__be64_get(ka + 12), ba);
        assert_int_equal(th__be32_get(ka), 7);
        assert_int_equal(th__be16_get(ta + 24), (uint16_t)i);
    }
}

static void test_varint_and_msgpack(void **state)
{
    (void)state;
    th__mpw_t w = {0};
    uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < TH_ARRAY_SIZE(vals); i++) {
        th__mpw_varint(&w, vals[i]);
    }
    const uint8_t *p = w.p, *end = w.p + w.len;
    for (size_t i = 0; i < TH_ARRAY_SIZE(vals); i++) {
        uint64_t v;
        assert_int_equal(th__varint_get(&p, end, &v), 0);
        assert_int_equal(v, vals[i]);
    }
    assert_ptr_equal(p, end);
    uint64_t v;
    p = w.p;
    assert_int_equal(th__varint_get(&p, w.p + w.len - 1 - 9, &v) == 0 ? 0 : 1, 0);
    /* truncated: the last varint without its final byte */
    p = end - 10;
    assert_int_equal(th__varint_get(&p, end - 1, &v), TH_EIO);

    /* every msgpack form our writer uses is read back, and msgpack-c agrees */
    w.len = 0;
    int64_t ints[] = {0,    1,     -1,     -32,    -33,       127,       128,       -128,
                      -129, 65535, -32768, -32769, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < TH_ARRAY_SIZE(ints); i++) {
        th__mpw_int(&w, ints[i]);
    }
    th__mpw_str(&w, "x", 1);
    char big[70000];
    memset(big, 'q', sizeof(big));
    th__mpw_str(&w, big, 40);
    th__mpw_str(&w, big, 300);
    th__mpw_str(&w, big, sizeof(big));
    th__mpw_bin(&w, (const uint8_t *)big, 0);
    th__mpw_bin(&w, (const uint8_t *)big, 70000);
    th__mpw_double(&w, -0.5);
    th__mpw_empty_any(&w);
    th__mpw_array(&w, 20);
    for (int i = 0; i < 20; i++) {
        th__mpw_nil(&w);
    }
    th__mpw_map(&w, 17);
    for (int i = 0; i < 17; i++) {
        th__mpw_bool(&w, i & 1);
        th__mpw_uint(&w, (uint64_t)i << 40);
    }
    assert_int_equal(w.err, 0);
    th__mpr_t r = {w.p, w.p + w.len};
    for (size_t i = 0; i < TH_ARRAY_SIZE(ints); i++) {
        int64_t got;
        assert_int_equal(th__mpr_int(&r, &got), 0);
        assert_true(got == ints[i]);
    }
    const char *s;
    size_t n;
    size_t lens[] = {1, 40, 300, sizeof(big)};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(th__mpr_str(&r, &s, &n), 0);
        assert_int_equal(n, lens[i]);
    }
    const uint8_t *bp;
    assert_int_equal(th__mpr_bin(&r, &bp, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(th__mpr_bin(&r, &bp, &n), 0);
    assert_int_equal(n, 70000);
    double d;
    assert_int_equal(th__mpr_double(&r, &d), 0);
    assert_true(d == -0.5);
    assert_int_equal(th__mpr_peek(&r), TH_MP_EXT);
    assert_int_equal(th__mpr_skip(&r), 0);
    assert_int_equal(th__mpr_skip(&r), 0); /* the array */
    assert_int_equal(th__mpr_skip(&r), 0); /* the map */
    assert_ptr_equal(r.p, r.end);

    size_t off = 0, objects = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    while (off < w.len) {
        assert_int_equal(msgpack_unpack_next(&u, (const char *)w.p, w.len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        objects++;
    }
    msgpack_unpacked_destroy(&u);
    assert_int_equal(objects, TH_ARRAY_SIZE(ints) + 4 + 2 + 1 + 1 + 2);
    th__mpw_free(&w);
}

static void test_as_string(void **state)
{
    (void)state;
    char b[400];
    struct {
        double v;
        const char *s;
    } d[] = {{0.25, "0.25"},
             {3, "3"},
             {-0.0, "-0"},
             {1e21, "1000000000000000000000"},
             {1.5e-7, "0.00000015"},
             {0.1, "0.1"},
             {123456.789, "123456.789"}};
    for (size_t i = 0; i < TH_ARRAY_SIZE(d); i++) {
        th__fmt_double(d[i].v, b);
        assert_string_equal(b, d[i].s);
    }
    th__fmt_i64(INT64_MIN, b);
    assert_string_equal(b, "-9223372036854775808");
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_any_t *arr = tu_any(a);
    arr->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    arr->array_value = th_arena_calloc(a, 1, sizeof(*arr->array_value));
    *arr->array_value = (Opentelemetry__Proto__Common__V1__ArrayValue)
        OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    th_otlp_any_t *items[] = {tu_str(a, "a<b"), tu_int(a, 2), tu_bool(a, true)};
    arr->array_value->values = items;
    arr->array_value->n_values = 3;
    th__mpw_t w = {0};
    th__any_as_string(&w, arr);
    assert_int_equal(w.len, strlen("[\"a\\u003cb\",2,true]"));
    assert_memory_equal(w.p, "[\"a\\u003cb\",2,true]", w.len);
    th__mpw_free(&w);
    th_arena_destroy(a);
}

/* ---- The full round trip -------------------------------------------------------------- */

static th_otlp_any_t *nested(th_arena_t *a)
{
    /* ["s", 7, [1.5, true], {"k": "v", "e": <empty>}] */
    th_otlp_any_t *inner = tu_any(a);
    inner->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    inner->array_value = th_arena_alloc(a, sizeof(*inner->array_value));
    *inner->array_value = (Opentelemetry__Proto__Common__V1__ArrayValue)
        OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    th_otlp_any_t **iv = th_arena_alloc(a, 2 * sizeof(*iv));
    iv[0] = tu_dbl(a, 1.5);
    iv[1] = tu_bool(a, true);
    inner->array_value->values = iv;
    inner->array_value->n_values = 2;
    th_otlp_any_t *kvl = tu_any(a);
    kvl->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    kvl->kvlist_value = th_arena_alloc(a, sizeof(*kvl->kvlist_value));
    *kvl->kvlist_value = (Opentelemetry__Proto__Common__V1__KeyValueList)
        OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    th_otlp_kv_t **kvs = th_arena_alloc(a, 2 * sizeof(*kvs));
    kvs[0] = tu_kv(a, "k", tu_str(a, "v"));
    kvs[1] = tu_kv(a, "e", tu_any(a));
    kvl->kvlist_value->values = kvs;
    kvl->kvlist_value->n_values = 2;
    th_otlp_any_t *outer = tu_any(a);
    outer->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    outer->array_value = th_arena_alloc(a, sizeof(*outer->array_value));
    *outer->array_value = (Opentelemetry__Proto__Common__V1__ArrayValue)
        OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    th_otlp_any_t **ov = th_arena_alloc(a, 4 * sizeof(*ov));
    ov[0] = tu_str(a, "s");
    ov[1] = tu_int(a, 7);
    ov[2] = inner;
    ov[3] = kvl;
    outer->array_value->values = ov;
    outer->array_value->n_values = 4;
    return outer;
}

static void every_kind_of_attr(th_arena_t *a, th_otlp_kv_t ***kv, size_t *n)
{
    th_otlp_any_t *bytes = tu_any(a);
    bytes->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    bytes->bytes_value.len = 5;
    bytes->bytes_value.data = th_arena_memdup(a, "\x00\x01\xff\x80\x7f", 5);
    th_otlp_kv_t *list[] = {
        tu_kv(a, "str", tu_str(a, "hello")),
        tu_kv(a, "int", tu_int(a, -1234567890123ll)),
        tu_kv(a, "dbl", tu_dbl(a, 0.1)),
        tu_kv(a, "bool", tu_bool(a, false)),
        tu_kv(a, "bytes", bytes),
        tu_kv(a, "nested", nested(a)),
        tu_kv(a, "empty", tu_any(a)),
        tu_kv(a, "novalue", NULL),
        tu_kv(a, "unicode", tu_str(a, "h\xc3\xa9llo \xe2\x9c\x93")),
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(list); i++) {
        *kv = (th_otlp_kv_t **)tu_push(a, (void **)*kv, n, list[i]);
    }
}

static th_otlp_request_t *full_request(th_arena_t *a, const uint8_t tid[16])
{
    th_otlp_request_t *req = tu_request(a);
    th_otlp_resource_spans_t *rs = tu_resource(a, req, "alpha");
    every_kind_of_attr(a, &rs->resource->attributes, &rs->resource->n_attributes);
    rs->resource->dropped_attributes_count = 3;
    Opentelemetry__Proto__Common__V1__EntityRef *e = th_arena_alloc(a, sizeof(*e));
    *e = (Opentelemetry__Proto__Common__V1__EntityRef)
        OPENTELEMETRY__PROTO__COMMON__V1__ENTITY_REF__INIT;
    e->schema_url = "https://example.com/entity";
    e->type = "host";
    static char *ids[] = {"host.id", "host.name"};
    static char *descs[] = {"host.arch"};
    e->id_keys = ids;
    e->n_id_keys = 2;
    e->description_keys = descs;
    e->n_description_keys = 1;
    rs->resource->entity_refs = th_arena_alloc(a, sizeof(*rs->resource->entity_refs));
    rs->resource->entity_refs[0] = e;
    rs->resource->n_entity_refs = 1;
    rs->schema_url = "https://opentelemetry.io/schemas/1.21.0";
    th_otlp_scope_spans_t *ss = tu_scope(a, rs, "lib", "1.2.3");
    ss->scope->attributes =
        (th_otlp_kv_t **)tu_push(a, (void **)ss->scope->attributes, &ss->scope->n_attributes,
                                 tu_kv(a, "scope.attr", tu_int(a, 9)));
    ss->scope->dropped_attributes_count = 1;
    ss->schema_url = "https://opentelemetry.io/schemas/1.20.0";

    th_otlp_span_t *sp = tu_span(a, ss, tid, 0x1111, 0x2222, "op-one", 2, TU_T0 + 5 * TU_S,
                                 TU_T0 + 5 * TU_S + 1234567);
    sp->trace_state = "vendor=x,other=y";
    sp->flags = 257;
    every_kind_of_attr(a, &sp->attributes, &sp->n_attributes);
    sp->dropped_attributes_count = 4;
    for (int i = 0; i < 2; i++) {
        Opentelemetry__Proto__Trace__V1__Span__Event *ev =
            tu_event(a, sp, TU_T0 + 5 * TU_S + (uint64_t)i, i ? "second" : "exception");
        ev->attributes = (th_otlp_kv_t **)tu_push(a, (void **)ev->attributes, &ev->n_attributes,
                                                  tu_kv(a, "exception.type", tu_str(a, "E")));
        ev->dropped_attributes_count = (uint32_t)i;
    }
    sp->dropped_events_count = 5;
    for (int i = 0; i < 2; i++) {
        Opentelemetry__Proto__Trace__V1__Span__Link *l = th_arena_alloc(a, sizeof(*l));
        *l = (Opentelemetry__Proto__Trace__V1__Span__Link)
            OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
        uint8_t other[16];
        tu_tid(other, 99 + (uint64_t)i);
        l->trace_id.len = 16;
        l->trace_id.data = th_arena_memdup(a, other, 16);
        l->span_id = tu_id8(a, 77 + (uint64_t)i);
        l->trace_state = i ? "" : "k=v";
        l->attributes = (th_otlp_kv_t **)tu_push(a, (void **)l->attributes, &l->n_attributes,
                                                 tu_kv(a, "link.attr", tu_bool(a, true)));
        l->dropped_attributes_count = 2;
        l->flags = 1;
        sp->links = (Opentelemetry__Proto__Trace__V1__Span__Link **)tu_push(a, (void **)sp->links,
                                                                            &sp->n_links, l);
    }
    sp->dropped_links_count = 6;
    tu_status(a, sp, 2, "boom");
    /* a second span: no parent, no status, an end before its start */
    th_otlp_span_t *sp2 = tu_span(a, ss, tid, 0x3333, 0, "", 0, TU_T0 + 9 * TU_S, TU_T0 + 8 * TU_S);
    (void)sp2;
    return req;
}

static void pack(const th_otlp_request_t *req, uint8_t **out, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(&req->base);
    *out = malloc(*n ? *n : 1);
    protobuf_c_message_pack(&req->base, *out);
}

static void test_roundtrip_every_field(void **state)
{
    struct fx *f = *state;
    uint8_t tid[16];
    tu_tid(tid, 1);
    th_otlp_request_t *req = full_request(f->a, tid);
    assert_int_equal(tu_write(f->st, req), 0);
    th_otlp_request_t *got = NULL;
    assert_int_equal(th_store_get_trace(f->st, tid, 0, 0, f->a, &got), 0);
    uint8_t *pa, *pb;
    size_t na, nb;
    pack(req, &pa, &na);
    pack(got, &pb, &nb);
    /* the protobuf encoding of what comes back is byte for byte what went in */
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na);
    free(pa);
    free(pb);

    uint8_t none[16];
    tu_tid(none, 2);
    assert_int_equal(th_store_get_trace(f->st, none, 0, 0, f->a, &got), TH_ENOENT);

    /* the stored payload is well-formed msgpack by msgpack-c's reading too */
    struct th_lmdb *s = (struct th_lmdb *)f->st;
    struct th__txn tx;
    assert_int_equal(th__txn_begin(s, true, &tx), 0);
    th__mpw_t comp = {0}, payload = {0};
    const uint8_t *pp;
    size_t plen;
    assert_int_equal(th__block_payload(s, tx.t, 1, SIZE_MAX, &comp, &payload, &pp, &plen), 0);
    th__txn_abort(&tx);
    size_t off = 0, objects = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    while (off < plen) {
        assert_int_equal(msgpack_unpack_next(&u, (const char *)pp, plen, &off),
                         MSGPACK_UNPACK_SUCCESS);
        objects++;
    }
    msgpack_unpacked_destroy(&u);
    assert_int_equal(objects, 1 + 1 + 1 + 1); /* header, resource, scope, one trace group */
    th__mpw_free(&comp);
    th__mpw_free(&payload);
}

/* ---- The readers' block cache ------------------------------------------------------- */

/* One trace of one span named @p name in a fresh store at f->dir (block 1 every time). */
static void write_one(struct fx *f, const uint8_t tid[16], const char *name)
{
    th_otlp_request_t *req = tu_request(f->a);
    th_otlp_resource_spans_t *rs = tu_resource(f->a, req, "svc");
    th_otlp_scope_spans_t *ss = tu_scope(f->a, rs, "lib", "1");
    tu_span(f->a, ss, tid, 0x10, 0, name, 2, TU_T0, TU_T0 + TU_S);
    assert_int_equal(tu_write(f->st, req), 0);
}

static const char *only_span_name(struct fx *f, const uint8_t tid[16])
{
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, tid, 0, 0, f->a, &got), 0);
    const th_otlp_span_t *sp[2];
    assert_int_equal(tu_spans(got, sp, 2), 1);
    return sp[0]->name;
}

/* Block ids start again at 1 in a new store: what this thread cached of the old store's
 * block 1 must not be served for the new one, even at the same path and address. */
static void test_block_cache_per_store(void **state)
{
    struct fx *f = *state;
    uint8_t tid[16];
    tu_tid(tid, 7);
    write_one(f, tid, "first");
    assert_string_equal(only_span_name(f, tid), "first");
    assert_string_equal(only_span_name(f, tid), "first"); /* now from the cache */

    th_store_close(f->st);
    f->st = NULL;
    tu_rmdir(f->dir);
    assert_int_equal(open_store(f, NULL), 0);
    write_one(f, tid, "second");
    assert_string_equal(only_span_name(f, tid), "second");
}

/* ---- Traces in pieces ----------------------------------------------------------------- */

static void test_trace_in_pieces_out_of_order(void **state)
{
    struct fx *f = *state;
    uint8_t tid[16];
    tu_tid(tid, 500);
    /* 40 spans in a chain, half in service a and half in b, written 5 at a time in a
     * shuffled order with other traces in between */
    int order[40];
    for (int i = 0; i < 40; i++) {
        order[i] = i;
    }
    srand(3);
    for (int i = 39; i > 0; i--) {
        int j = rand() % (i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int w = 0; w < 8; w++) {
        th_otlp_request_t *req = tu_request(f->a);
        th_otlp_scope_spans_t *sa = tu_scope(f->a, tu_resource(f->a, req, "a"), "lib", "1");
        th_otlp_scope_spans_t *sb = tu_scope(f->a, tu_resource(f->a, req, "b"), "lib", "1");
        for (int k = 0; k < 5; k++) {
            int i = order[w * 5 + k];
            tu_span(f->a, i < 20 ? sa : sb, tid, 1000 + (uint64_t)i, i ? 999 + (uint64_t)i : 0,
                    "step", 1, TU_T0 + (uint64_t)i * TU_MS, TU_T0 + (uint64_t)i * TU_MS + 10);
        }
        uint8_t noise[16];
        tu_tid(noise, 10000 + (uint64_t)w);
        tu_span(f->a, sa, noise, 1, 0, "noise", 1, TU_T0, TU_T0 + 1);
        assert_int_equal(tu_write(f->st, req), 0);
    }
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, tid, 0, 0, f->a, &got), 0);
    const th_otlp_span_t *spans[64];
    assert_int_equal(tu_spans(got, spans, 64), 40);
    bool seen[40] = {0};
    for (int i = 0; i < 40; i++) {
        uint64_t id = 0;
        for (int b = 0; b < 8; b++) {
            id = id << 8 | spans[i]->span_id.data[b];
        }
        int k = (int)(id - 1000);
        assert_true(k >= 0 && k < 40 && !seen[k]);
        seen[k] = true;
        assert_string_equal(tu_service_of(got, spans[i]), k < 20 ? "a" : "b");
        assert_memory_equal(spans[i]->trace_id.data, tid, 16);
    }
    /* grouped: one resource per service, shared across the 8 blocks */
    assert_int_equal(got->n_resource_spans, 2);
    assert_int_equal(got->resource_spans[0]->n_scope_spans, 1);
}

static void test_big_traces_and_blocks(void **state)
{
    struct fx *f = *state;
    /* a trace of 130 spans in one write (pieces of TH_GROUP_MAX_SPANS), and one write of more
     * spans than a block holds */
    uint8_t big[16];
    tu_tid(big, 77);
    th_otlp_request_t *req = tu_request(f->a);
    th_otlp_scope_spans_t *ss = tu_scope(f->a, tu_resource(f->a, req, "svc"), "lib", "1");
    for (uint64_t i = 0; i < 130; i++) {
        tu_span(f->a, ss, big, i + 1, i, "op", 1, TU_T0 + i, TU_T0 + i + 5);
    }
    for (uint64_t i = 0; i < TH_BLOCK_MAX_SPANS + 100; i++) {
        uint8_t tid[16];
        tu_tid(tid, 100000 + i / 3);
        tu_span(f->a, ss, tid, i + 1, 0, "bulk", 2, TU_T0 + i * TU_MS, TU_T0 + i * TU_MS + 7);
    }
    assert_int_equal(tu_write(f->st, req), 0);
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, big, 0, 0, f->a, &got), 0);
    assert_int_equal(th_otlp_request_span_count(got), 130);
    for (uint64_t i = 0; i < TH_BLOCK_MAX_SPANS + 100; i += 3) {
        uint8_t tid[16];
        tu_tid(tid, 100000 + i / 3);
        th_arena_t *a = th_arena_create(0, 0);
        assert_int_equal(th_store_get_trace(f->st, tid, 0, 0, a, &got), 0);
        assert_int_equal(th_otlp_request_span_count(got), 3);
        th_arena_destroy(a);
    }
    struct th_store_stats st;
    f->st->ops->stats(f->st, &st);
    assert_int_equal(st.spans_written, 130 + TH_BLOCK_MAX_SPANS + 100);
    assert_int_equal(st.batches_written, 1);
}

/* ---- Search --------------------------------------------------------------------------- */

/* The search data set (see each trace's comment). */
static void search_data(struct fx *f)
{
    th_arena_t *a = f->a;
    th_otlp_request_t *req = tu_request(a);
    th_otlp_resource_spans_t *shop = tu_resource(a, req, "shop");
    th_otlp_scope_spans_t *ss = tu_scope(a, shop, "lib-a", "1.0");
    uint8_t t[16];
    /* t1: GET /a (server, 100 ms, GET, 200) with a SELECT child (client, 5 ms) */
    tu_tid(t, 1);
    th_otlp_span_t *sp =
        tu_span(a, ss, t, 11, 0, "GET /a", 2, TU_T0 + 10 * TU_S, TU_T0 + 10 * TU_S + 100 * TU_MS);
    tu_attr(a, sp, "http.method", tu_str(a, "GET"));
    tu_attr(a, sp, "http.status_code", tu_int(a, 200));
    sp = tu_span(a, ss, t, 12, 11, "SELECT", 3, TU_T0 + 10 * TU_S + TU_MS,
                 TU_T0 + 10 * TU_S + 6 * TU_MS);
    tu_attr(a, sp, "db.system", tu_str(a, "mysql"));
    /* t2: GET /b, 2 s, ERROR, 500, an exception event */
    tu_tid(t, 2);
    sp = tu_span(a, ss, t, 21, 0, "GET /b", 2, TU_T0 + 20 * TU_S, TU_T0 + 22 * TU_S);
    tu_attr(a, sp, "http.status_code", tu_int(a, 500));
    tu_status(a, sp, 2, "failed");
    Opentelemetry__Proto__Trace__V1__Span__Event *e =
        tu_event(a, sp, TU_T0 + 21 * TU_S, "exception");
    e->attributes = (th_otlp_kv_t **)tu_push(a, (void **)e->attributes, &e->n_attributes,
                                             tu_kv(a, "exception.type", tu_str(a, "IOError")));
    /* t3: POST /c, 50 ms, ratio=0.25, flag=true, under a host.name=h1 resource, scope lib-b */
    th_otlp_resource_spans_t *shop2 = tu_resource(a, req, "shop");
    tu_res_attr(a, shop2, "host.name", tu_str(a, "h1"));
    th_otlp_scope_spans_t *ss2 = tu_scope(a, shop2, "lib-b", "2.0");
    tu_tid(t, 3);
    sp = tu_span(a, ss2, t, 31, 0, "POST /c", 2, TU_T0 + 30 * TU_S, TU_T0 + 30 * TU_S + 50 * TU_MS);
    tu_attr(a, sp, "ratio", tu_dbl(a, 0.25));
    tu_attr(a, sp, "flag", tu_bool(a, true));
    /* t4: x=1 on one span, y=2 on another, 300 ms each */
    tu_tid(t, 4);
    sp = tu_span(a, ss, t, 41, 0, "work", 1, TU_T0 + 40 * TU_S, TU_T0 + 40 * TU_S + 300 * TU_MS);
    tu_attr(a, sp, "x", tu_str(a, "1"));
    sp = tu_span(a, ss, t, 42, 41, "work", 1, TU_T0 + 41 * TU_S, TU_T0 + 41 * TU_S + 300 * TU_MS);
    tu_attr(a, sp, "y", tu_str(a, "2"));
    assert_int_equal(tu_write(f->st, req), 0);

    /* a second write: t5 (GET /a, 10 ms, GET) and another service's t6 */
    req = tu_request(a);
    ss = tu_scope(a, tu_resource(a, req, "shop"), "lib-a", "1.0");
    tu_tid(t, 5);
    sp = tu_span(a, ss, t, 51, 0, "GET /a", 2, TU_T0 + 50 * TU_S, TU_T0 + 50 * TU_S + 10 * TU_MS);
    tu_attr(a, sp, "http.method", tu_str(a, "GET"));
    th_otlp_scope_spans_t *os = tu_scope(a, tu_resource(a, req, "other"), "lib-a", "1.0");
    tu_tid(t, 6);
    tu_span(a, os, t, 61, 0, "GET /a", 2, TU_T0 + 60 * TU_S, TU_T0 + 60 * TU_S + TU_MS);
    assert_int_equal(tu_write(f->st, req), 0);
}

/* Run a query and check the trace numbers it returns, in order (0-terminated list). */
static void expect(struct fx *f, struct th_trace_query q, const int *want)
{
    uint8_t ids[32][16];
    size_t n = 99;
    if (!q.limit) {
        q.limit = 20;
    }
    assert_int_equal(th_store_find_trace_ids(f->st, &q, ids, &n), 0);
    size_t k = 0;
    while (want[k]) {
        k++;
    }
    if (n != k) {
        print_error("query svc=%s op=%s: got %zu traces, want %zu\n", q.service,
                    q.operation ? q.operation : "-", n, k);
    }
    assert_int_equal(n, k);
    for (size_t i = 0; i < n; i++) {
        uint8_t t[16];
        tu_tid(t, (uint64_t)want[i]);
        if (memcmp(ids[i], t, 16)) {
            print_error("query svc=%s: result %zu is trace %d, want %d\n", q.service, i, ids[i][15],
                        want[i]);
        }
        assert_memory_equal(ids[i], t, 16);
    }
}

static struct th_trace_query tagq(const char *k1, const char *v1, const char *k2, const char *v2)
{
    static const char *keys[2], *vals[2];
    keys[0] = k1;
    vals[0] = v1;
    keys[1] = k2;
    vals[1] = v2;
    return (struct th_trace_query){
        .service = "shop", .tag_keys = keys, .tag_values = vals, .n_tags = k2 ? 2 : 1};
}

static void test_search(void **state)
{
    struct fx *f = *state;
    search_data(f);
    /* service, newest first, limit */
    expect(f, (struct th_trace_query){.service = "shop"}, (int[]){5, 4, 3, 2, 1, 0});
    expect(f, (struct th_trace_query){.service = "shop", .limit = 2}, (int[]){5, 4, 0});
    expect(f, (struct th_trace_query){.service = "other"}, (int[]){6, 0});
    expect(f, (struct th_trace_query){.service = "nobody"}, (int[]){0});
    /* operation, with and without kind; kind alone */
    expect(f, (struct th_trace_query){.service = "shop", .operation = "GET /a"}, (int[]){5, 1, 0});
    expect(f, (struct th_trace_query){.service = "shop", .operation = "GET /a", .span_kind = 2},
           (int[]){5, 1, 0});
    expect(f, (struct th_trace_query){.service = "shop", .operation = "GET /a", .span_kind = 3},
           (int[]){0});
    expect(f, (struct th_trace_query){.service = "shop", .operation = "SELECT"}, (int[]){1, 0});
    expect(f, (struct th_trace_query){.service = "shop", .span_kind = 3}, (int[]){1, 0});
    expect(f, (struct th_trace_query){.service = "shop", .operation = "nope"}, (int[]){0});
    /* span attributes of each type, by their string form */
    expect(f, tagq("http.method", "GET", NULL, NULL), (int[]){5, 1, 0});
    expect(f, tagq("http.status_code", "500", NULL, NULL), (int[]){2, 0});
    expect(f, tagq("http.status_code", "200", NULL, NULL), (int[]){1, 0});
    expect(f, tagq("http.status_code", "200.0", NULL, NULL), (int[]){0});
    expect(f, tagq("ratio", "0.25", NULL, NULL), (int[]){3, 0});
    expect(f, tagq("ratio", "0.250", NULL, NULL), (int[]){0});
    expect(f, tagq("flag", "true", NULL, NULL), (int[]){3, 0});
    /* error=true is status ERROR; error=false every span that is not */
    expect(f, tagq("error", "true", NULL, NULL), (int[]){2, 0});
    expect(f, tagq("error", "false", NULL, NULL), (int[]){5, 4, 3, 1, 0});
    /* event, resource and scope attributes; pseudo tags */
    expect(f, tagq("exception.type", "IOError", NULL, NULL), (int[]){2, 0});
    expect(f, tagq("host.name", "h1", NULL, NULL), (int[]){3, 0});
    expect(f, tagq("resource.host.name", "h1", NULL, NULL), (int[]){3, 0});
    expect(f, tagq("resource.http.method", "GET", NULL, NULL), (int[]){0});
    expect(f, tagq("scope.name", "lib-b", NULL, NULL), (int[]){3, 0});
    expect(f, tagq("span.kind", "client", NULL, NULL), (int[]){1, 0});
    /* AND of tags, on one span: x and y are on different spans of t4 */
    expect(f, tagq("x", "1", NULL, NULL), (int[]){4, 0});
    expect(f, tagq("x", "1", "y", "2"), (int[]){0});
    expect(f, tagq("http.method", "GET", "http.status_code", "200"), (int[]){1, 0});
    /* an operation and a tag must hold on the same span */
    struct th_trace_query q = tagq("db.system", "mysql", NULL, NULL);
    q.operation = "GET /a";
    expect(f, q, (int[]){0});
    q.operation = "SELECT";
    expect(f, q, (int[]){1, 0});
    /* durations */
    expect(f, (struct th_trace_query){.service = "shop", .duration_min_ns = TU_S}, (int[]){2, 0});
    expect(f, (struct th_trace_query){.service = "shop", .duration_max_ns = 20 * TU_MS},
           (int[]){5, 1, 0});
    expect(f,
           (struct th_trace_query){
               .service = "shop", .duration_min_ns = 40 * TU_MS, .duration_max_ns = 60 * TU_MS},
           (int[]){3, 0});
    /* time window of span starts */
    expect(f, (struct th_trace_query){.service = "shop", .start_min_ns = TU_T0 + 25 * TU_S},
           (int[]){5, 4, 3, 0});
    expect(f, (struct th_trace_query){.service = "shop", .start_max_ns = TU_T0 + 25 * TU_S},
           (int[]){2, 1, 0});
    expect(f,
           (struct th_trace_query){.service = "shop",
                                   .start_min_ns = TU_T0 + 40 * TU_S + 1,
                                   .start_max_ns = TU_T0 + 45 * TU_S},
           (int[]){4, 0});
    /* no service */
    uint8_t ids[4][16];
    size_t n;
    struct th_trace_query bad = {.service = NULL};
    assert_int_equal(th_store_find_trace_ids(f->st, &bad, ids, &n), TH_EINVAL);
    assert_int_equal(n, 0);
}

/* Newest first is by span start, not by when the spans arrived. */
static void test_search_newest_first_by_start(void **state)
{
    struct fx *f = *state;
    uint8_t t[16];
    uint64_t starts[] = {50, 10, 40, 20, 30}; /* written in this order, one write each */
    for (int i = 0; i < 5; i++) {
        th_otlp_request_t *req = tu_request(f->a);
        th_otlp_scope_spans_t *ss = tu_scope(f->a, tu_resource(f->a, req, "late"), "l", "1");
        tu_tid(t, (uint64_t)starts[i]);
        tu_span(f->a, ss, t, 1, 0, "op", 2, TU_T0 + starts[i] * TU_S, TU_T0 + starts[i] * TU_S + 1);
        assert_int_equal(tu_write(f->st, req), 0);
    }
    expect(f, (struct th_trace_query){.service = "late"}, (int[]){50, 40, 30, 20, 10, 0});
    expect(f, (struct th_trace_query){.service = "late", .limit = 3}, (int[]){50, 40, 30, 0});
    /* the same trace again, later: its newest span counts */
    th_otlp_request_t *req = tu_request(f->a);
    th_otlp_scope_spans_t *ss = tu_scope(f->a, tu_resource(f->a, req, "late"), "l", "1");
    tu_tid(t, 10);
    tu_span(f->a, ss, t, 2, 1, "op", 2, TU_T0 + 60 * TU_S, TU_T0 + 60 * TU_S + 1);
    assert_int_equal(tu_write(f->st, req), 0);
    expect(f, (struct th_trace_query){.service = "late", .limit = 2}, (int[]){10, 50, 0});
}

/* Many blocks per service, so searches go through summaries: results must equal what a
 * brute-force reading says, for live-like and for identical (replayed) timestamps. */
static void many_blocks(struct fx *f, const char *svc, int n, bool same_times, uint64_t first)
{
    for (int i = 0; i < n; i++) {
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *req = tu_request(a);
        th_otlp_scope_spans_t *ss = tu_scope(a, tu_resource(a, req, svc), "l", "1");
        uint8_t t[16];
        tu_tid(t, first + (uint64_t)i);
        uint64_t at = TU_T0 + (same_times ? 0 : (uint64_t)i * TU_S);
        char op[16], mod[16];
        snprintf(op, sizeof(op), "op-%d", i % 3);
        snprintf(mod, sizeof(mod), "%d", i % 7);
        th_otlp_span_t *sp =
            tu_span(a, ss, t, 1, 0, op, 2, at, at + (uint64_t)(i % 10 + 1) * TU_MS);
        tu_attr(a, sp, "i", tu_int(a, i));
        tu_attr(a, sp, "mod", tu_str(a, mod));
        /* a second, older span so a trace's newest match is not always its first span */
        sp = tu_span(a, ss, t, 2, 1, "child", 3, at - TU_MS, at);
        assert_int_equal(tu_write(f->st, req), 0);
        th_arena_destroy(a);
    }
}

/* Expected traces: the newest (by i, since start grows with i) @p limit with pred(i). */
static void expect_newest(struct fx *f, struct th_trace_query q, int n, uint64_t first,
                          bool (*pred)(int i, int arg), int arg)
{
    int want[64];
    size_t k = 0;
    for (int i = n - 1; i >= 0 && k < q.limit; i--) {
        if (pred(i, arg)) {
            want[k++] = (int)first + i;
        }
    }
    want[k] = 0;
    expect(f, q, want);
}

static bool all(int i, int arg)
{
    (void)i;
    (void)arg;
    return true;
}

static bool mod_is(int i, int arg)
{
    return i % 7 == arg;
}

static bool op_is(int i, int arg)
{
    return i % 3 == arg;
}

static bool dur_at_least(int i, int arg)
{
    return i % 10 + 1 >= arg;
}

static bool is(int i, int arg)
{
    return i == arg;
}

static void test_search_many_blocks(void **state)
{
    struct fx *f = *state;
    int n = 5 * TH_SUM_BLOCKS + 7;
    many_blocks(f, "live", n, false, 1000);
    many_blocks(f, "replay", n, true, 5000);
    const char *keys[1], *vals[1];
    for (int pass = 0; pass < 2; pass++) {
        /* the same answers whether the traces differ in time or only in when written */
        const char *svc = pass ? "replay" : "live";
        uint64_t first = pass ? 5000 : 1000;
        expect_newest(f, (struct th_trace_query){.service = svc, .limit = 20}, n, first, all, 0);
        expect_newest(f, (struct th_trace_query){.service = svc, .limit = 5}, n, first, all, 0);
        keys[0] = "mod";
        vals[0] = "3";
        expect_newest(
            f,
            (struct th_trace_query){
                .service = svc, .limit = 20, .tag_keys = keys, .tag_values = vals, .n_tags = 1},
            n, first, mod_is, 3);
        keys[0] = "i";
        vals[0] = "5";
        expect_newest(
            f,
            (struct th_trace_query){
                .service = svc, .limit = 20, .tag_keys = keys, .tag_values = vals, .n_tags = 1},
            n, first, is, 5);
        vals[0] = "100000";
        expect_newest(
            f,
            (struct th_trace_query){
                .service = svc, .limit = 20, .tag_keys = keys, .tag_values = vals, .n_tags = 1},
            n, first, is, -1);
        expect_newest(f, (struct th_trace_query){.service = svc, .limit = 20, .operation = "op-1"},
                      n, first, op_is, 1);
        expect_newest(
            f, (struct th_trace_query){.service = svc, .limit = 20, .duration_min_ns = 9 * TU_MS},
            n, first, dur_at_least, 9);
    }
    /* a time window deep in the past of the live service */
    int want[21];
    for (int k = 0; k < 20; k++) {
        want[k] = 1000 + 50 - k;
    }
    want[20] = 0;
    expect(
        f,
        (struct th_trace_query){.service = "live", .limit = 20, .start_max_ns = TU_T0 + 50 * TU_S},
        want);
    /* retention by age keeps the summaries right: all gone, and new data is found */
    assert_int_equal(f->st->ops->retention(f->st, th_now_unix_ns() + 100 * 3600 * TU_S), 0);
    expect(f, (struct th_trace_query){.service = "live"}, (int[]){0});
    many_blocks(f, "live", TH_SUM_BLOCKS + 3, false, 9000);
    expect_newest(f, (struct th_trace_query){.service = "live", .limit = 20}, TH_SUM_BLOCKS + 3,
                  9000, all, 0);
}

/* ---- Catalog and dependencies --------------------------------------------------------- */

static void test_catalog(void **state)
{
    struct fx *f = *state;
    search_data(f);
    const char **names;
    size_t n;
    assert_int_equal(th_store_services(f->st, f->a, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "other");
    assert_string_equal(names[1], "shop");
    struct th_store_operation *ops;
    assert_int_equal(th_store_operations(f->st, "shop", 0, f->a, &ops, &n), 0);
    const char *want[] = {"GET /a", "GET /b", "POST /c", "SELECT", "work"};
    int kinds[] = {2, 2, 2, 3, 1};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ops[i].name, want[i]);
        assert_int_equal(ops[i].span_kind, kinds[i]);
    }
    assert_int_equal(th_store_operations(f->st, "shop", 3, f->a, &ops, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ops[0].name, "SELECT");
    assert_int_equal(th_store_operations(f->st, "nobody", 0, f->a, &ops, &n), 0);
    assert_int_equal(n, 0);
    /* a resource with no attributes at all is Jaeger's OTLPResourceNoServiceName */
    th_otlp_request_t *req = tu_request(f->a);
    th_otlp_resource_spans_t *rs = tu_resource(f->a, req, NULL);
    uint8_t t[16];
    tu_tid(t, 9);
    tu_span(f->a, tu_scope(f->a, rs, "s", "1"), t, 1, 0, "x", 1, TU_T0, TU_T0 + 1);
    assert_int_equal(tu_write(f->st, req), 0);
    assert_int_equal(th_store_services(f->st, f->a, &names, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "OTLPResourceNoServiceName");
}

static uint64_t dep_count(struct fx *f, uint64_t end, uint64_t lookback, const char *p,
                          const char *c)
{
    struct th_store_dependency *d;
    size_t n;
    assert_int_equal(th_store_dependencies(f->st, end, lookback, f->a, &d, &n), 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(d[i].parent, p) && !strcmp(d[i].child, c)) {
            total += d[i].call_count;
        }
        assert_true(strcmp(d[i].parent, d[i].child) != 0);
    }
    return total;
}

/* One call frontend → backend in trace @p n at @p at; the two spans written as @p how says:
 * 0 together, 1 child first, 2 parent first. */
static void call(struct fx *f, uint64_t n, uint64_t at, int how)
{
    uint8_t t[16];
    tu_tid(t, n);
    th_otlp_request_t *r1 = tu_request(f->a), *r2 = how ? tu_request(f->a) : r1;
    th_otlp_scope_spans_t *fs = tu_scope(f->a, tu_resource(f->a, r1, "frontend"), "l", "1");
    th_otlp_scope_spans_t *bs = tu_scope(f->a, tu_resource(f->a, r2, "backend"), "l", "1");
    tu_span(f->a, fs, t, 1, 0, "root", 2, at, at + 10 * TU_MS);
    tu_span(f->a, fs, t, 2, 1, "call backend", 3, at + TU_MS, at + 9 * TU_MS);
    tu_span(f->a, bs, t, 3, 2, "serve", 2, at + 2 * TU_MS, at + 8 * TU_MS);
    tu_span(f->a, bs, t, 4, 3, "internal", 1, at + 3 * TU_MS, at + 4 * TU_MS);
    if (how == 1) {
        assert_int_equal(tu_write(f->st, r2), 0);
        assert_int_equal(tu_write(f->st, r1), 0);
    } else {
        assert_int_equal(tu_write(f->st, r1), 0);
        if (how) {
            assert_int_equal(tu_write(f->st, r2), 0);
        }
    }
}

static void test_dependencies(void **state)
{
    struct fx *f = *state;
    uint64_t h = 3600 * TU_S;
    call(f, 1, TU_T0 + 10 * 60 * TU_S, 0);
    call(f, 2, TU_T0 + 20 * 60 * TU_S, 1);
    call(f, 3, TU_T0 + 30 * 60 * TU_S, 2);
    call(f, 4, TU_T0 + 3 * h + 90 * TU_S, 0);
    /* within one write, and across writes in both orders; same-service calls never */
    assert_int_equal(dep_count(f, TU_T0 + h, h, "frontend", "backend"), 3);
    assert_int_equal(dep_count(f, TU_T0 + h, h, "backend", "frontend"), 0);
    /* windows: whole hours from the hourly counters, the ends from minutes */
    assert_int_equal(dep_count(f, TU_T0 + 5 * h, 5 * h, "frontend", "backend"), 4);
    assert_int_equal(dep_count(f, TU_T0 + 15 * 60 * TU_S, 10 * 60 * TU_S, "frontend", "backend"),
                     1);
    assert_int_equal(dep_count(f, TU_T0 + 25 * 60 * TU_S, 10 * 60 * TU_S, "frontend", "backend"),
                     1);
    assert_int_equal(
        dep_count(f, TU_T0 + 3 * h + 2 * 60 * TU_S, 3 * 60 * TU_S, "frontend", "backend"), 1);
    assert_int_equal(dep_count(f, TU_T0 + 9 * 60 * TU_S, 9 * 60 * TU_S, "frontend", "backend"), 0);
    assert_int_equal(dep_count(f, TU_T0 + 10 * h, 2 * h, "frontend", "backend"), 0);
}

/* ---- Retention ------------------------------------------------------------------------ */

static size_t count(struct fx *f, const char *svc)
{
    uint8_t ids[64][16];
    size_t n;
    struct th_trace_query q = {.service = svc, .limit = 64};
    assert_int_equal(th_store_find_trace_ids(f->st, &q, ids, &n), 0);
    return n;
}

static void test_retention_by_age(void **state)
{
    struct fx *f = *state;
    th_store_close(f->st);
    struct th_store_cfg cfg = {.ttl_ns = 3600 * TU_S};
    assert_int_equal(open_store(f, &cfg), 0);
    /* spans dated long ago: age counts from ingest, so a replay is kept for the ttl */
    call(f, 1, TU_T0, 0);
    call(f, 2, TU_T0 + TU_S, 2);
    uint64_t now = th_now_unix_ns();
    assert_int_equal(f->st->ops->retention(f->st, now), 0);
    assert_int_equal(count(f, "frontend"), 2);
    assert_int_equal(f->st->ops->retention(f->st, now + 3600 * TU_S - 60 * TU_S), 0);
    assert_int_equal(count(f, "frontend"), 2);
    assert_int_equal(dep_count(f, TU_T0 + 3600 * TU_S, 7200 * TU_S, "frontend", "backend"), 2);
    /* past the ttl: everything goes, index entries and counters included */
    assert_int_equal(f->st->ops->retention(f->st, now + 3600 * TU_S + 60 * TU_S), 0);
    assert_int_equal(count(f, "frontend"), 0);
    assert_int_equal(count(f, "backend"), 0);
    uint8_t t[16];
    tu_tid(t, 1);
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_ENOENT);
    assert_int_equal(dep_count(f, TU_T0 + 3600 * TU_S, 7200 * TU_S, "frontend", "backend"), 0);
    struct th_store_stats st;
    f->st->ops->stats(f->st, &st);
    assert_int_equal(st.retention_deleted_spans, 8);
    /* the indexes are empty: nothing is left behind in them */
    struct th_lmdb *s = (struct th_lmdb *)f->st;
    struct th__txn tx;
    assert_int_equal(th__txn_begin(s, true, &tx), 0);
    MDB_dbi dbis[] = {s->dbi_blocks, s->dbi_traces,  s->dbi_blkidx, s->dbi_tags,
                      s->dbi_svcsum, s->dbi_sumtags, s->dbi_deps};
    for (size_t i = 0; i < TH_ARRAY_SIZE(dbis); i++) {
        MDB_stat ms;
        assert_int_equal(mdb_stat(tx.t, dbis[i], &ms), 0);
        assert_int_equal(ms.ms_entries, 0);
    }
    th__txn_abort(&tx);
    /* and it still works */
    call(f, 3, TU_T0, 0);
    assert_int_equal(count(f, "frontend"), 1);
}

/* Spans with incompressible attributes, about @p bytes of them. */
static th_otlp_request_t *bulky(th_arena_t *a, uint64_t first, size_t spans, size_t bytes)
{
    th_otlp_request_t *req = tu_request(a);
    th_otlp_scope_spans_t *ss = tu_scope(a, tu_resource(a, req, "bulk"), "l", "1");
    char *junk = th_arena_alloc(a, bytes + 1);
    for (size_t i = 0; i < spans; i++) {
        for (size_t j = 0; j < bytes; j++) {
            junk[j] = (char)('!' + rand() % 90);
        }
        junk[bytes] = '\0';
        uint8_t t[16];
        tu_tid(t, first + i);
        th_otlp_span_t *sp = tu_span(a, ss, t, first + i, 0, "op", 1, TU_T0 + (first + i) * TU_MS,
                                     TU_T0 + (first + i) * TU_MS + 5);
        tu_attr(a, sp, "junk", tu_str(a, junk));
    }
    return req;
}

static long file_size(const char *dir)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_retention_by_size_file_stops_growing(void **state)
{
    struct fx *f = *state;
    th_store_close(f->st);
    /* an 8 MiB limit in a map that may not grow past 24 MiB: writing 5 times the map's size
     * only works if retention frees pages and LMDB reuses them */
    struct th_store_cfg cfg = {.max_size_bytes = 8 << 20, .map_size_bytes = 24 << 20};
    assert_int_equal(open_store(f, &cfg), 0);
    long size0 = file_size(f->dir);
    assert_true(size0 > 0 && size0 <= 24 << 20);
    srand(11);
    uint64_t written = 0, next = 1;
    while (written < 5 * (24 << 20)) {
        th_arena_t *a = th_arena_create(0, 0);
        assert_int_equal(tu_write(f->st, bulky(a, next, 100, 1000)), 0);
        th_arena_destroy(a);
        next += 100;
        written += 100 * 1000;
        assert_int_equal(f->st->ops->retention(f->st, th_now_unix_ns()), 0);
        struct th_store_stats st;
        f->st->ops->stats(f->st, &st);
        /* the limit, plus what one pass leaves above its low mark */
        assert_true(st.bytes_used <= (8 << 20) + (1 << 20));
        assert_int_equal(file_size(f->dir), size0);
    }
    /* the newest spans are there, the oldest gone */
    th_otlp_request_t *got;
    uint8_t t[16];
    tu_tid(t, next - 1);
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), 0);
    tu_tid(t, 1);
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_ENOENT);
    struct th_store_stats st;
    f->st->ops->stats(f->st, &st);
    assert_true(st.retention_deleted_spans > 0);
}

/* One write of @p n_svc services with @p per_svc spans each: as many blocks as services. */
static int write_many_blocks(th_store_t *st, uint64_t first, int n_svc, int per_svc)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = tu_request(a);
    for (int i = 0; i < n_svc; i++) {
        char name[32];
        snprintf(name, sizeof(name), "svc-%d", i);
        th_otlp_scope_spans_t *ss = tu_scope(a, tu_resource(a, req, name), "l", "1");
        for (int j = 0; j < per_svc; j++) {
            uint64_t id = first + (uint64_t)(i * per_svc + j);
            uint8_t t[16];
            tu_tid(t, id);
            tu_span(a, ss, t, id, 0, "op", 2, th_now_unix_ns(), th_now_unix_ns() + TU_MS);
        }
    }
    int ret = tu_write(st, req);
    th_arena_destroy(a);
    return ret;
}

static uint64_t last_pgno(struct fx *f)
{
    MDB_envinfo info;
    mdb_env_info(((struct th_lmdb *)f->st)->env, &info);
    return (uint64_t)info.me_last_pgno;
}

static void test_retention_keeps_up_with_small_blocks(void **state)
{
    struct fx *f = *state;
    th_store_close(f->st);
    /* the soak's shape: many small blocks (one per service per write), synced commits, a
     * short ttl and a 5 s interval. A pass that deleted 4 blocks per synced commit for 250 ms
     * fell further behind every interval and the file grew without bound. */
    struct th_store_cfg cfg = {
        .ttl_ns = 60 * TU_S, .retention_interval_ns = 5 * TU_S, .sync = true};
    assert_int_equal(open_store(f, &cfg), 0);
    enum { WRITES = 100, SVCS = 40, PER = 3 };
    uint64_t next = 1, pg_full = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = th_now_unix_ns();
        for (int w = 0; w < WRITES; w++) {
            assert_int_equal(write_many_blocks(f->st, next, SVCS, PER), 0);
            next += SVCS * PER;
        }
        struct th_store_stats st0, st1;
        f->st->ops->stats(f->st, &st0);
        /* younger than the ttl: nothing goes */
        assert_int_equal(f->st->ops->retention(f->st, t0 + 59 * TU_S), 0);
        f->st->ops->stats(f->st, &st1);
        assert_int_equal(st1.retention_deleted_spans, st0.retention_deleted_spans);
        uint8_t t[16];
        tu_tid(t, next - 1);
        th_otlp_request_t *got;
        assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), 0);
        /* the pages written in the round: each round holds the same data, so after the first
         * the freed pages must be reused and the file's used end must not move on */
        uint64_t pg = last_pgno(f);
        if (round == 0) {
            pg_full = pg;
        } else {
            assert_true(pg <= pg_full + pg_full / 10);
        }
        /* past the ttl: one pass deletes the whole round (WRITES × SVCS blocks) */
        assert_int_equal(f->st->ops->retention(f->st, th_now_unix_ns() + 61 * TU_S), 0);
        f->st->ops->stats(f->st, &st1);
        assert_int_equal(st1.retention_deleted_spans, st1.spans_written);
        assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_ENOENT);
    }
}

static void test_map_grows(void **state)
{
    struct fx *f = *state;
    /* no limit: the map (and the preallocated file) grow in steps as data comes */
    long size0 = file_size(f->dir);
    srand(12);
    uint64_t next = 1;
    while (file_size(f->dir) == size0) {
        th_arena_t *a = th_arena_create(0, 0);
        assert_int_equal(tu_write(f->st, bulky(a, next, 200, 2000)), 0);
        th_arena_destroy(a);
        next += 200;
        assert_true(next < 200000);
    }
    assert_true(file_size(f->dir) > size0);
    th_otlp_request_t *got;
    uint8_t t[16];
    tu_tid(t, 1);
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), 0);
    tu_tid(t, next - 1);
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), 0);
}

/* ---- Lifecycle and damage ------------------------------------------------------------- */

static void test_reopen_keeps_everything(void **state)
{
    struct fx *f = *state;
    search_data(f);
    call(f, 100, TU_T0, 1);
    th_store_close(f->st);
    assert_int_equal(open_store(f, NULL), 0);
    expect(f, (struct th_trace_query){.service = "shop"}, (int[]){5, 4, 3, 2, 1, 0});
    expect(f, tagq("error", "true", NULL, NULL), (int[]){2, 0});
    assert_int_equal(dep_count(f, TU_T0 + 3600 * TU_S, 7200 * TU_S, "frontend", "backend"), 1);
    struct th_store_stats st;
    f->st->ops->stats(f->st, &st);
    assert_int_equal(st.spans_written, 8 + 4);
    /* new writes continue the ids: old and new are both there */
    call(f, 101, TU_T0 + TU_S, 0);
    assert_int_equal(count(f, "frontend"), 2);
    const char **names;
    size_t n;
    assert_int_equal(th_store_services(f->st, f->a, &names, &n), 0);
    assert_int_equal(n, 4);
    /* a second open of the same directory in this process is refused */
    th_store_t *again;
    char err[256];
    struct th_store_cfg cfg = {.path = f->dir};
    assert_int_equal(th_store_open(&th_store_lmdb_ops, &cfg, &again, err, sizeof(err)), TH_EEXIST);
    /* a path that is a file */
    char file[300];
    snprintf(file, sizeof(file), "%s/data.mdb", f->dir);
    cfg.path = file;
    assert_int_equal(th_store_open(&th_store_lmdb_ops, &cfg, &again, err, sizeof(err)), TH_EIO);
    assert_non_null(strstr(err, file));
}

/* A page of the closed file overwritten with garbage: the full check at start refuses the
 * store, names the file and the way out, and leaves the file untouched. */
static void test_damaged_page_at_start(void **state)
{
    struct fx *f = *state;
    search_data(f);
    th_store_close(f->st);
    f->st = NULL;
    char file[300];
    snprintf(file, sizeof(file), "%s/data.mdb", f->dir);
    struct stat sb;
    assert_int_equal(stat(file, &sb), 0);
    assert_true(sb.st_size >= 4 * 4096);
    /* every page after the two meta pages: a B-tree root is among them */
    int fd = open(file, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t junk[4096];
    memset(junk, 0xa5, sizeof(junk));
    for (off_t off = 2 * 4096; off + 4096 <= sb.st_size; off += 4096) {
        assert_int_equal(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
    }
    close(fd);
    assert_int_equal(stat(file, &sb), 0);
    char err[1024] = "";
    struct th_store_cfg cfg = {.path = f->dir, .ttl_ns = 72 * 3600 * TU_S};
    th_store_t *st = NULL;
    assert_int_equal(th_store_open(&th_store_lmdb_ops, &cfg, &st, err, sizeof(err)), TH_EIO);
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, "damaged"));
    assert_non_null(strstr(err, ".damaged")); /* the way out: move it aside */
    /* refused before anything was written: the file is exactly as it was left */
    struct stat after;
    assert_int_equal(stat(file, &after), 0);
    assert_int_equal(after.st_size, sb.st_size);
    assert_int_equal(after.st_mtim.tv_sec, sb.st_mtim.tv_sec);
    assert_int_equal(after.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
    assert_int_equal(open_store(f, NULL), TH_EIO);
    f->st = NULL;
    tu_rmdir(f->dir);
    assert_int_equal(open_store(f, NULL), 0); /* teardown closes it */
}

/* Overwrite a stored value with garbage through LMDB, as a damaged disk would. */
static void damage(struct fx *f, MDB_dbi dbi, const void *key, size_t kl, const void *junk,
                   size_t jl)
{
    struct th_lmdb *s = (struct th_lmdb *)f->st;
    struct th__txn tx;
    assert_int_equal(th__txn_begin(s, false, &tx), 0);
    th__txn_put(&tx, dbi, key, kl, junk, jl, 0);
    assert_int_equal(th__txn_commit(&tx), 0);
}

static void test_corrupt_values(void **state)
{
    struct fx *f = *state;
    search_data(f);
    struct th_lmdb *s = (struct th_lmdb *)f->st;
    uint8_t t[16];
    tu_tid(t, 1);
    /* a damaged trace entry */
    uint8_t k[TH_KEY_TRACE_LEN];
    th__key_trace(k, t, 1, 0);
    damage(f, s->dbi_traces, k, sizeof(k), "\x01\xff\xff\xff", 4);
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_EIO);
    /* a damaged compressed block: trace by id and a search that reads it both fail cleanly */
    tu_tid(t, 2);
    uint8_t bk[TH_KEY_BLOCK_LEN];
    th__key_block(bk, 1, TH_BLOCK_KIND_DATA, 0);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 37 + 5);
    }
    damage(f, s->dbi_blocks, bk, sizeof(bk), junk, sizeof(junk));
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_EIO);
    uint8_t ids[8][16];
    size_t n;
    struct th_trace_query q = {.service = "shop", .limit = 8};
    assert_int_equal(th_store_find_trace_ids(f->st, &q, ids, &n), TH_EIO);
    /* a valid zstd frame of msgpack garbage */
    uint8_t bad[100], frame[400];
    for (size_t i = 0; i < sizeof(bad); i++) {
        bad[i] = (uint8_t)(0x90 + i % 11);
    }
    size_t fl = ZSTD_compress(frame, sizeof(frame), bad, sizeof(bad), 1);
    assert_false(ZSTD_isError(fl));
    damage(f, s->dbi_blocks, bk, sizeof(bk), frame, fl);
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), TH_EIO);
    assert_int_equal(th_store_find_trace_ids(f->st, &q, ids, &n), TH_EIO);
    /* a damaged index value */
    MDB_val key, v;
    struct th__txn tx;
    assert_int_equal(th__txn_begin(s, true, &tx), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(tx.t, s->dbi_blkidx, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &key, &v, MDB_LAST), 0);
    uint8_t sk[TH_KEY_BLKIDX_LEN];
    memcpy(sk, key.mv_data, sizeof(sk));
    mdb_cursor_close(c);
    th__txn_abort(&tx);
    damage(f, s->dbi_blkidx, sk, sizeof(sk), "xx", 2);
    assert_int_equal(th_store_find_trace_ids(f->st, &q, ids, &n), TH_EIO);
    /* retention deletes damaged blocks without failing */
    assert_int_equal(f->st->ops->retention(f->st, th_now_unix_ns() + 100 * 3600 * TU_S), 0);
}

static void test_crashed_writer(void **state)
{
    struct fx *f = *state;
    th_store_close(f->st);
    f->st = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child writes, leaves a read transaction open, and is killed */
        struct fx child = *f;
        if (open_store(&child, NULL) != 0) {
            _exit(2);
        }
        call(&child, 7, TU_T0, 0);
        struct th__txn tx;
        th__txn_begin((struct th_lmdb *)child.st, true, &tx);
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* the store opens and serves what was committed, with no repair step */
    assert_int_equal(open_store(f, NULL), 0);
    uint8_t t[16];
    tu_tid(t, 7);
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(f->st, t, 0, 0, f->a, &got), 0);
    assert_int_equal(th_otlp_request_span_count(got), 4);
    call(f, 8, TU_T0, 0);
    assert_int_equal(count(f, "frontend"), 2);
}

static void test_empty_writes(void **state)
{
    struct fx *f = *state;
    th_batch_t empty = {.req = tu_request(f->a)};
    th_batch_t none = {.req = NULL};
    th_batch_t *two[] = {&empty, &none};
    assert_int_equal(th_store_write(f->st, two, 2), 0);
    assert_int_equal(th_store_write(f->st, two, 0), 0);
    const char **names;
    size_t n;
    assert_int_equal(th_store_services(f->st, f->a, &names, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(count(f, "x"), 0);
    struct th_store_dependency *d;
    assert_int_equal(th_store_dependencies(f->st, TU_T0, TU_S, f->a, &d, &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_sort),
        cmocka_unit_test(test_varint_and_msgpack),
        cmocka_unit_test(test_as_string),
        cmocka_unit_test_setup_teardown(test_roundtrip_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_in_pieces_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_cache_per_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_traces_and_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_newest_first_by_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_many_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dependencies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size_file_stops_growing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_keeps_up_with_small_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_page_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crashed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
