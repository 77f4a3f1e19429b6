/*
 * Tests of the probabilistic sampler: the Collector's config checks; hash_seed decisions
 * against vectors computed independently with the Collector's arithmetic (FNV-1a-32 of the
 * little-endian seed and trace id, float32 percentage × 163.84); kept fractions within 5
 * sigma over 100k random trace ids in every mode; identical decisions from two instances with
 * the same seed; whole traces; sampling.priority; tracestate reading and writing (rv, th,
 * OTEP 235 thresholds); the batch walk, acks and the component.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/component.h"
#include "th/log.h"
#include "processors/probabilistic_sampler/probabilistic_sampler.h"
#include "processors/probabilistic_sampler/probabilistic_sampler_tracestate.h"
#include "../exporters/exporter_fixture.h"

static th_probabilistic_sampler_t *make(float pct, uint32_t seed,
                                        enum th_probabilistic_sampler_mode mode, bool fail_closed)
{
    struct th_probabilistic_sampler_settings s = {.sampling_percentage = pct,
                                                  .hash_seed = seed,
                                                  .mode = mode,
                                                  .fail_closed = fail_closed,
                                                  .sampling_precision = 4};
    th_probabilistic_sampler_t *ps = NULL;
    char err[256];
    if (th_probabilistic_sampler_create(&s, &ps, err, sizeof(err)) != 0) {
        fail_msg("create: %s", err);
    }
    return ps;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* splitmix64: a fixed sequence, so the statistical test is reproducible. */
static uint64_t next_rand(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static th_otlp_span_t *span_with(th_arena_t *a, const uint8_t id[16], const char *tracestate)
{
    th_otlp_span_t *s = FX_NEW(a, th_otlp_span_t, opentelemetry__proto__trace__v1__span__init);
    uint8_t *p = th_arena_alloc(a, 16);
    memcpy(p, id, 16);
    s->trace_id = (ProtobufCBinaryData){.len = 16, .data = p};
    s->span_id = fx_id(a, "0102030405060708");
    s->name = "op";
    s->trace_state = tracestate ? th_arena_strndup(a, tracestate, strlen(tracestate)) : "";
    return s;
}

static void random_id(uint8_t id[16])
{
    uint64_t x = next_rand(), y = next_rand();
    memcpy(id, &x, 8);
    memcpy(id + 8, &y, 8);
}

static bool decide(th_probabilistic_sampler_t *ps, th_arena_t *a, th_otlp_span_t *s)
{
    bool keep = false;
    assert_int_equal(th_probabilistic_sampler_span(ps, a, s, &keep), 0);
    return keep;
}

/* ---- Config ---------------------------------------------------------------------------- */

static int check_yaml(const char *yaml, char *err, size_t errlen)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_node_t *node;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, errlen), 0);
    struct th_probabilistic_sampler_cfg cfg;
    int ret = th_cfg_decode(th_probabilistic_sampler_config_fields, node, &cfg, a, "", err, errlen);
    if (ret == 0) {
        const char *why = NULL;
        ret = th_probabilistic_sampler_config_check(&cfg, &why);
        if (ret != 0) {
            snprintf(err, errlen, "%s", why);
        }
    }
    th_arena_destroy(a);
    return ret;
}

static void expect_error(const char *yaml, const char *want)
{
    char err[512] = "";
    int ret = check_yaml(yaml, err, sizeof(err));
    if (ret == 0 || !strstr(err, want)) {
        fail_msg("config:\n%s\nwant: %s\ngot %d: %s", yaml, want, ret, err);
    }
}

static void test_config(void **state)
{
    (void)state;
    expect_error("sampling_percentage: -15.3\n",
                 "sampling_percentage: sampling rate is negative: -15.300000%");
    expect_error("sampling_percentage: 1e-20\n",
                 "sampling_percentage: sampling rate is too small: 1e-20%");
    expect_error("sampling_percentage: 1e40\n", "sampling rate is invalid: +Inf%");
    expect_error("sampling_percentage: 10\nsampling_precision: 0\n",
                 "sampling_precision: invalid sampling precision: 0");
    expect_error("sampling_percentage: 10\nsampling_precision: 15\n",
                 "sampling_precision: sampling precision is too great, should be <= 14: 15");
    expect_error("sampling_percentage: 10\nmode: downsample\n",
                 "mode: unsupported sampler mode \"downsample\"");
    expect_error("sampling_percentage: 10\nattribute_source: body\n",
                 "attribute_source: invalid attribute source: body. Expected: traceID or record");
    expect_error("sampling_percentage: 10\nhash_seed: -1\n", "hash_seed");
    expect_error("sampling_percentage: 10\nhash_seed: 4294967296\n", "hash_seed");
    expect_error("sampling_percentage: '10'\n", "sampling_percentage");
    char err[512];
    assert_int_equal(check_yaml("{}\n", err, sizeof(err)), 0); /* the Collector's default: 0% */
    assert_int_equal(check_yaml("sampling_percentage: 150\nhash_seed: 4294967295\nmode: "
                                "equalizing\nfail_closed: false\nsampling_precision: 14\n",
                                err, sizeof(err)),
                     0);

    /* The defaults are the Collector's. */
    th_arena_t *a = th_arena_create(0, 0);
    struct th_probabilistic_sampler_cfg cfg;
    assert_int_equal(
        th_cfg_defaults(th_probabilistic_sampler_config_fields, &cfg, a, err, sizeof(err)), 0);
    struct th_probabilistic_sampler_settings s;
    assert_int_equal(th_probabilistic_sampler_settings_from_cfg(&cfg, &s, err, sizeof(err)), 0);
    assert_true(s.sampling_percentage == 0);
    assert_int_equal(s.hash_seed, 0);
    assert_int_equal(s.mode, TH_PSAMPLER_HASH_SEED);
    assert_true(s.fail_closed);
    assert_int_equal(s.sampling_precision, 4);
    th_arena_destroy(a);
}

/* ---- hash_seed --------------------------------------------------------------------------- */

static void test_fnv(void **state)
{
    (void)state;
    uint8_t id[16];
    for (int i = 0; i < 16; i++) {
        id[i] = (uint8_t)i;
    }
    /* computed independently (Python): FNV-1a-32 of seed LE || bytes */
    assert_int_equal(th__probabilistic_sampler_fnv(0, NULL, 0), 0x4b95f515u);
    assert_int_equal(th__probabilistic_sampler_fnv(22, id, 16), 0x5571e3c3u);
}

/* Vectors made with the Collector's arithmetic in Python: keep iff
 * (fnv(seed LE || id) & 0x3fff) < int(float32(float32(pct) * float32(163.84))). */
static void test_hash_seed_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        uint32_t seed;
        float pct;
        bool keep;
    } v[] = {
        {"a31c06bd463e3923bc1aadbde48b1697", 123456789, 10, false},
        {"0717373b819a068f32b7a6b38b6b3872", 22, 10, false},
        {"c2ce28b26c57472737f5c3561a176118", 22, 50, true},
        {"9a43ce0bba75891ff9ec60148d4bd4a0", 22, 15.3f, false},
        {"b4110ba93ac54afc14da3bdd19614774", 22, 15.3f, false},
        {"5e5a35ab44b3efaea5129ba22b88ba3e", 1, 33.33f, false},
        {"6145fdeca3b08e38af53d7c4c60e3ad2", 0, 50, false},
        {"66441036e9f191e0b75036a77f65e2ea", 123456789, 15.3f, false},
        {"43233fbe8f8943bf956de595665c38ff", 1, 33.33f, false},
        {"17c10cdc1c27a028caae6c9810626198", 123456789, 50, false},
        {"f88ddcf102aeb81daee289c044c4a457", 0, 50, false},
        {"6f287400f4b8e0b843f880c32d81e91b", 22, 15.3f, true},
    };
    th_arena_t *a = th_arena_create(0, 0);
    for (size_t i = 0; i < TH_ARRAY_SIZE(v); i++) {
        th_probabilistic_sampler_t *ps = make(v[i].pct, v[i].seed, TH_PSAMPLER_HASH_SEED, true);
        ProtobufCBinaryData id = fx_id(a, v[i].id);
        if (decide(ps, a, span_with(a, id.data, "")) != v[i].keep) {
            fail_msg("vector %zu (%s seed %u pct %g): want %s", i, v[i].id, v[i].seed,
                     (double)v[i].pct, v[i].keep ? "keep" : "drop");
        }
        th_probabilistic_sampler_destroy(ps);
    }
    th_arena_destroy(a);
}

/* The kept fraction is within 5 sigma of the percentage for 100k random trace ids, the
 * rule is exactly "low 14 bits < scaled", and a second instance decides identically. */
static void test_hash_seed_statistics(void **state)
{
    (void)state;
    const size_t n = 100000;
    const float pcts[] = {10, 15.3f, 50, 1};
    for (size_t k = 0; k < TH_ARRAY_SIZE(pcts); k++) {
        th_probabilistic_sampler_t *ps = make(pcts[k], 22, TH_PSAMPLER_HASH_SEED, true);
        th_probabilistic_sampler_t *twin = make(pcts[k], 22, TH_PSAMPLER_HASH_SEED, true);
        th_probabilistic_sampler_t *other = make(pcts[k], 23, TH_PSAMPLER_HASH_SEED, true);
        uint32_t scaled = (uint32_t)(pcts[k] * 163.84f);
        size_t kept = 0, differ = 0;
        for (size_t i = 0; i < n; i++) {
            th_arena_t *a = th_arena_create(4096, 0);
            uint8_t id[16];
            random_id(id);
            bool keep = decide(ps, a, span_with(a, id, ""));
            assert_true(keep == decide(twin, a, span_with(a, id, "")));
            differ += keep != decide(other, a, span_with(a, id, ""));
            bool rule = (th__probabilistic_sampler_fnv(22, id, 16) & 0x3fff) < scaled;
            assert_true(keep == rule);
            kept += keep;
            th_arena_destroy(a);
        }
        double p = pcts[k] / 100.0;
        double sigma = sqrt(p * (1 - p) / (double)n);
        double got = (double)kept / (double)n;
        if (fabs(got - p) > 5 * sigma) {
            fail_msg("pct %g: kept %.5f, want %.5f ± %.5f", (double)pcts[k], got, p, 5 * sigma);
        }
        /* a different seed decides differently (decorrelated tiers) */
        assert_true(differ > n * p * (1 - p));
        th_probabilistic_sampler_destroy(ps);
        th_probabilistic_sampler_destroy(twin);
        th_probabilistic_sampler_destroy(other);
    }
}

static void test_consistent_statistics(void **state)
{
    (void)state;
    const size_t n = 100000;
    const enum th_probabilistic_sampler_mode modes[] = {TH_PSAMPLER_PROPORTIONAL,
                                                        TH_PSAMPLER_EQUALIZING};
    for (size_t m = 0; m < 2; m++) {
        th_probabilistic_sampler_t *ps = make(25, 0, modes[m], true);
        th_probabilistic_sampler_t *twin = make(25, 99, modes[m], true);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            th_arena_t *a = th_arena_create(4096, 0);
            uint8_t id[16];
            random_id(id);
            bool keep = decide(ps, a, span_with(a, id, ""));
            /* the seed plays no part in these modes */
            assert_true(keep == decide(twin, a, span_with(a, id, "")));
            kept += keep;
            th_arena_destroy(a);
        }
        double sigma = sqrt(0.25 * 0.75 / (double)n);
        assert_true(fabs((double)kept / (double)n - 0.25) <= 5 * sigma);
        th_probabilistic_sampler_destroy(ps);
        th_probabilistic_sampler_destroy(twin);
    }
}

/* Every span of a trace gets the same decision, so traces are kept or dropped whole. */
static void test_whole_traces(void **state)
{
    (void)state;
    th_probabilistic_sampler_t *ps = make(30, 7, TH_PSAMPLER_HASH_SEED, true);
    th_arena_t *a = th_arena_create(0, 0);
    for (int t = 0; t < 200; t++) {
        uint8_t id[16];
        random_id(id);
        bool first = decide(ps, a, span_with(a, id, ""));
        for (int s = 0; s < 5; s++) {
            assert_true(decide(ps, a, span_with(a, id, "")) == first);
        }
    }
    th_probabilistic_sampler_destroy(ps);
    th_arena_destroy(a);
}

static void test_priority(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    th_probabilistic_sampler_t *all = make(100, 0, TH_PSAMPLER_HASH_SEED, true);
    th_probabilistic_sampler_t *none = make(0, 0, TH_PSAMPLER_HASH_SEED, true);
    uint8_t id[16];
    random_id(id);
    static const struct {
        int type; /* 0 int, 1 double, 2 string */
        const char *text;
        int want; /* 0 drop, 1 keep, -1 defer */
    } cases[] = {
        {0, "0", 0},   {0, "1", 1},   {0, "-1", -1}, {1, "0", 0},   {1, "0.5", 1},
        {2, "0", 0},   {2, "0.0", 0}, {2, "10", 1},  {2, "-2", -1}, {2, "abc", -1},
        {2, " 1", -1}, {2, "1e3", 1}, {2, "inf", 1}, {2, "", -1},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        th_otlp_any_t *v = cases[i].type == 0   ? fx_int(a, atoll(cases[i].text))
                           : cases[i].type == 1 ? fx_double(a, atof(cases[i].text))
                                                : fx_str(a, cases[i].text);
        for (int which = 0; which < 2; which++) {
            th_otlp_span_t *s = span_with(a, id, "");
            s->attributes =
                FX_KVS(a, fx_kv(a, "other", fx_int(a, 0)), fx_kv(a, "sampling.priority", v));
            s->n_attributes = 2;
            bool keep = decide(which ? none : all, a, s);
            bool want = cases[i].want == -1 ? which == 0 : cases[i].want == 1;
            if (keep != want) {
                fail_msg("case %zu (%s) at %s: got %s", i, cases[i].text, which ? "0%" : "100%",
                         keep ? "keep" : "drop");
            }
        }
    }
    th_probabilistic_sampler_destroy(all);
    th_probabilistic_sampler_destroy(none);
    th_arena_destroy(a);
}

/* ---- Tracestate ------------------------------------------------------------------------ */

static void test_threshold_math(void **state)
{
    (void)state;
    /* pkg/sampling's ProbabilityToThresholdWithPrecision, computed independently */
    static const struct {
        double p;
        int prec;
        const char *tv;
    } v[] = {
        {0.5, 4, "8"},
        {1.0 / 3, 4, "aaab"},
        {2.0 / 3, 4, "5555"},
        {0.1, 4, "e666"},
        {0.01, 4, "fd70a"},
        {0.25, 4, "c"},
        {0.001, 2, "ffbe"},
        {0.999, 2, "0042"},
        {0x1p-56, 4, "ffffffffffffff"},
        {0.1, 14, "e6666666666666"},
        {0.125, 1, "e"},
        {1.0, 4, "0"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(v); i++) {
        uint64_t th;
        char tv[15];
        assert_int_equal(th__probabilistic_sampler_threshold(v[i].p, v[i].prec, &th), 0);
        th__probabilistic_sampler_tvalue(th, tv);
        if (strcmp(tv, v[i].tv) != 0) {
            fail_msg("p=%g prec=%d: got %s, want %s", v[i].p, v[i].prec, tv, v[i].tv);
        }
    }
    uint64_t th;
    assert_int_equal(th__probabilistic_sampler_threshold(0x1p-57, 4, &th), TH_EINVAL);
    assert_int_equal(th__probabilistic_sampler_threshold(1.5, 4, &th), TH_EINVAL);
}

static void test_tracestate_parse(void **state)
{
    (void)state;
    struct th__ps_tracestate ts;
    static const char *const ok[] = {
        "",
        "vendor=x",
        "ot=rv:00112233445566;th:8,vendor=opaque",
        "a=1 ,  b=2,c=3",
        "a=1,,b=2",
        "  ,a=1",
        "tenant@sys=v a l",
        "ot=th:c;p:8;x:y",
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(ok); i++) {
        if (th__ps_tracestate_parse(ok[i], strlen(ok[i]), &ts) != 0) {
            fail_msg("should parse: \"%s\"", ok[i]);
        }
    }
    static const char *const bad[] = {
        " a=1",
        "a=1 ",
        "A=1",
        "a=",
        "a",
        "a=x=y",
        "ot=rv:123",
        "ot=rv:0011223344556g",
        "ot=th:",
        "ot=th:123456789abcdef",
        "ot=TH:1",
        "ot=th:1;",
        "ot=rv:00112233445566;;th:1",
        "a=\x01",
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(bad); i++) {
        if (th__ps_tracestate_parse(bad[i], strlen(bad[i]), &ts) == 0) {
            fail_msg("should not parse: \"%s\"", bad[i]);
        }
    }
    /* 31 members parse; the Collector's scanner refuses the 32nd */
    char many[512] = "";
    for (int i = 0; i < 32; i++) {
        char m[16];
        snprintf(m, sizeof(m), "%sk%d=v", i ? "," : "", i);
        strcat(many, m);
    }
    assert_int_equal(th__ps_tracestate_parse(many, strlen(many), &ts), TH_EINVAL);
    *strrchr(many, ',') = '\0';
    assert_int_equal(th__ps_tracestate_parse(many, strlen(many), &ts), 0);

    const char *in = "a=1 , ot=x:y;th:c;rv:0011223344556F,b=2";
    assert_int_equal(th__ps_tracestate_parse(in, strlen(in), &ts), 0);
    assert_true(ts.has_th && ts.th == 0xc0000000000000ull);
    assert_true(ts.has_rv && ts.rv == 0x0011223344556full);
    char out[2048];
    assert_true(th__ps_tracestate_write(&ts, out, sizeof(out)) > 0);
    assert_string_equal(out, "ot=rv:0011223344556F;th:c;x:y,a=1,b=2");
}

static void test_tracestate_written(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    uint8_t id[16];
    for (int i = 0; i < 16; i++) {
        id[i] = (uint8_t)i;
    }
    /* hash_seed: seed 22 hashes this id to low bits 9155 (Python); 60% keeps below 9830 and
     * rejects 16384 - 9830 buckets: th = 6554 << 42 = "6668"; rv is the hash laid out in 56
     * bits as the Collector does. */
    th_probabilistic_sampler_t *ps = make(60, 22, TH_PSAMPLER_HASH_SEED, true);
    th_otlp_span_t *s = span_with(a, id, "vendor=opaque");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:70f1559271e3c3;th:6668,vendor=opaque");
    th_probabilistic_sampler_destroy(ps);
    ps = make(55, 22, TH_PSAMPLER_HASH_SEED, true); /* 55% keeps below 9011: dropped */
    assert_false(decide(ps, a, span_with(a, id, "")));
    th_probabilistic_sampler_destroy(ps);

    /* hash_seed leaves consistent-sampling tracestates alone: an error, so fail_closed drops
     * and fail-open keeps without touching the tracestate. */
    ps = make(100, 22, TH_PSAMPLER_HASH_SEED, true);
    assert_false(decide(ps, a, span_with(a, id, "ot=th:8")));
    assert_false(decide(ps, a, span_with(a, id, "not a tracestate")));
    th_probabilistic_sampler_destroy(ps);
    ps = make(100, 22, TH_PSAMPLER_HASH_SEED, false);
    s = span_with(a, id, "ot=rv:00000000000000");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:00000000000000");
    th_probabilistic_sampler_destroy(ps);

    /* proportional: randomness from rv (here high), probability multiplied by the arriving
     * one: 0.5 × 0.5 = 0.25 → th:c */
    ps = make(50, 0, TH_PSAMPLER_PROPORTIONAL, true);
    s = span_with(a, id, "ot=rv:f0000000000000;th:8,v=1");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:f0000000000000;th:c,v=1");
    /* without rv the low 56 bits of the trace id decide: 0x090a0b0c0d0e0f < th:8 → drop */
    assert_false(decide(ps, a, span_with(a, id, "")));
    /* an arriving threshold the randomness does not pass is inconsistent: dropped */
    assert_false(decide(ps, a, span_with(a, id, "ot=rv:10000000000000;th:8")));
    th_probabilistic_sampler_destroy(ps);

    /* equalizing: an arriving probability lower than ours is kept as it is */
    ps = make(50, 0, TH_PSAMPLER_EQUALIZING, true);
    s = span_with(a, id, "ot=rv:f0000000000000;th:c");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:f0000000000000;th:c");
    s = span_with(a, id, "ot=rv:f0000000000000;th:4");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:f0000000000000;th:8");
    s = span_with(a, id, "ot=rv:90000000000000");
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=rv:90000000000000;th:8");
    th_probabilistic_sampler_destroy(ps);

    /* sampling.priority keeps despite 0%, and records th:0 */
    ps = make(0, 0, TH_PSAMPLER_EQUALIZING, true);
    s = span_with(a, id, "");
    s->attributes = FX_KVS(a, fx_kv(a, "sampling.priority", fx_int(a, 1)));
    s->n_attributes = 1;
    assert_true(decide(ps, a, s));
    assert_string_equal(s->trace_state, "ot=th:0");
    struct th_probabilistic_sampler_stats st = th_probabilistic_sampler_get_stats(ps);
    assert_int_equal(st.kept, 1);
    assert_int_equal(st.priority, 1);
    th_probabilistic_sampler_destroy(ps);
    th_arena_destroy(a);
}

/* ---- The batch and the component -------------------------------------------------------- */

struct capture {
    struct th_consumer base;
    th_batch_t *got;
    int calls;
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    c->calls++;
    th_batch_release(c->got);
    c->got = b;
    return 0;
}

/* A batch of @p traces traces × 3 spans, spread over 2 resources and 2 scopes each. */
static th_batch_t *many_traces(int traces)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req =
        FX_NEW(a, th_otlp_request_t,
               opentelemetry__proto__collector__trace__v1__export_trace_service_request__init);
    req->resource_spans = th_arena_alloc(a, 2 * sizeof(*req->resource_spans));
    for (int r = 0; r < 2; r++) {
        th_otlp_resource_spans_t *rs = FX_NEW(
            a, th_otlp_resource_spans_t, opentelemetry__proto__trace__v1__resource_spans__init);
        rs->scope_spans = th_arena_alloc(a, 2 * sizeof(*rs->scope_spans));
        for (int k = 0; k < 2; k++) {
            th_otlp_scope_spans_t *ss = FX_NEW(a, th_otlp_scope_spans_t,
                                               opentelemetry__proto__trace__v1__scope_spans__init);
            ss->spans = th_arena_alloc(a, (size_t)traces * 3 * sizeof(*ss->spans));
            rs->scope_spans[rs->n_scope_spans++] = ss;
        }
        req->resource_spans[req->n_resource_spans++] = rs;
    }
    for (int t = 0; t < traces; t++) {
        uint8_t id[16];
        random_id(id);
        for (int s = 0; s < 3; s++) {
            /* spans of one trace land in different resources and scopes */
            th_otlp_scope_spans_t *ss =
                req->resource_spans[(t + s) % 2]->scope_spans[(t / 2 + s) % 2];
            ss->spans[ss->n_spans++] = span_with(a, id, "");
        }
    }
    return th_batch_create(a, req);
}

static void test_batch(void **state)
{
    (void)state;
    th_probabilistic_sampler_t *ps = make(50, 3, TH_PSAMPLER_HASH_SEED, true);
    th_batch_t *b = many_traces(100);
    assert_int_equal(b->span_count, 300);
    size_t dropped = 0;
    assert_int_equal(th_probabilistic_sampler_batch(ps, b, &dropped), 0);
    assert_int_equal(b->span_count + dropped, 300);
    assert_int_equal(dropped % 3, 0); /* whole traces */
    assert_true(dropped > 0 && dropped < 300);
    assert_int_equal(th_otlp_request_span_count(b->req), b->span_count);
    th_batch_release(b);
    th_probabilistic_sampler_destroy(ps);

    /* 0%: everything goes, and the empty scope and resource entries with it */
    ps = make(0, 0, TH_PSAMPLER_HASH_SEED, true);
    b = many_traces(10);
    assert_int_equal(th_probabilistic_sampler_batch(ps, b, &dropped), 0);
    assert_int_equal(dropped, 30);
    assert_int_equal(b->span_count, 0);
    assert_int_equal(b->req->n_resource_spans, 0);
    th_batch_release(b);
    th_probabilistic_sampler_destroy(ps);
}

static struct th_component *component(const char *yaml, struct th_consumer *next, th_arena_t *a)
{
    th_node_t *node;
    char err[512];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    struct th_probabilistic_sampler_cfg *cfg = th_arena_calloc(a, 1, sizeof(*cfg));
    assert_int_equal(
        th_cfg_decode(th_probabilistic_sampler_config_fields, node, cfg, a, "p", err, sizeof(err)),
        0);
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_processor_probabilistic_sampler_ops, "ps", cfg, next, &c), 0);
    return c;
}

static void test_component(void **state)
{
    (void)state;
    assert_true(th_processor_probabilistic_sampler_ops.caps & TH_CAP_MUTATES);
    th_arena_t *a = th_arena_create(0, 0);
    struct capture cap = {.base = {.consume = capture_consume}};

    /* All dropped: the acks settle successfully and nothing is forwarded. */
    struct th_component *c = component("sampling_percentage: 0\n", &cap.base, a);
    struct fx_acks acks = {0};
    th_batch_t *b = many_traces(20);
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    assert_int_equal(cap.calls, 0);
    assert_int_equal(acks.settled, 1);
    assert_int_equal(acks.result, 0);
    assert_int_equal(c->stats.dropped, 60);
    assert_int_equal(c->stats.accepted, 60);
    th_component_destroy(c);

    /* Some kept: forwarded with the survivors; the acks settle when the batch is released. */
    c = component("sampling_percentage: 50\nhash_seed: 9\n", &cap.base, a);
    acks = (struct fx_acks){0};
    b = many_traces(50);
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    assert_int_equal(cap.calls, 1);
    assert_int_equal(cap.got->span_count + c->stats.dropped, 150);
    assert_int_equal(acks.settled, 0);
    th_batch_release(cap.got);
    cap.got = NULL;
    assert_int_equal(acks.settled, 1);
    assert_int_equal(acks.result, 0);
    th_component_destroy(c);
    th_arena_destroy(a);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_fnv),
        cmocka_unit_test(test_hash_seed_vectors),
        cmocka_unit_test(test_hash_seed_statistics),
        cmocka_unit_test(test_consistent_statistics),
        cmocka_unit_test(test_whole_traces),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_threshold_math),
        cmocka_unit_test(test_tracestate_parse),
        cmocka_unit_test(test_tracestate_written),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_component),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
