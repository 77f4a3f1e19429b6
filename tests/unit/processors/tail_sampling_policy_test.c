/*
 * Tests of the tail sampling policies: every policy type and combinator on traces built by
 * hand (struct th_ts_trace over protobuf-c spans), through the real config path (YAML text
 * parsed with th_yaml_parse); the Collector's config errors with their key paths; the
 * evaluation order and final-decision rules; the per-policy counters; and the probabilistic
 * policy against an independent FNV-1a-64 and long-double threshold.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/config.h"
#include "processors/tail_sampling/tail_sampling.h"
#include "processors/tail_sampling/tail_sampling_policy.h" /* th__ts_prob_threshold */
#include "../exporters/exporter_fixture.h"

#define PATH "processors::tail_sampling::policies"
#define SEC  1000000000ull
#define MS   1000000ull

/* ---- Building policies --------------------------------------------------------------------- */

static int try_create(const char *yaml, const char *proc, bool first_match, th_ts_policies_t **out,
                      char *err, size_t errlen)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_node_t *node;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, errlen);
    if (ret == 0) {
        ret = th_ts_policies_create(node, proc, PATH, first_match, out, err, errlen);
    }
    th_arena_destroy(a); /* the policies must not keep pointers into the config tree */
    return ret;
}

static th_ts_policies_t *mk2(const char *yaml, const char *proc, bool first_match)
{
    th_ts_policies_t *p = NULL;
    char err[512] = "";
    if (try_create(yaml, proc, first_match, &p, err, sizeof(err)) != 0) {
        fail_msg("create failed for:\n%s\n%s", yaml, err);
    }
    return p;
}

static th_ts_policies_t *mk(const char *yaml)
{
    return mk2(yaml, "", false);
}

static void expect_error(const char *yaml, const char *want)
{
    th_ts_policies_t *p = NULL;
    char err[1024] = "";
    int ret = try_create(yaml, "", false, &p, err, sizeof(err));
    if (ret != TH_ECONFIG || !strstr(err, want)) {
        fail_msg("config:\n%s\nwant: %s\ngot %d: %s", yaml, want, ret, err);
    }
    assert_null(p);
}

/* ---- Building traces ----------------------------------------------------------------------- */

struct tb {
    th_arena_t *a;
    struct th_ts_trace t;
    struct th_ts_chunk *last;
};

static void tb_init(struct tb *b, th_arena_t *a)
{
    memset(b, 0, sizeof(*b));
    b->a = a;
    b->t.min_start_ns = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        b->t.trace_id[i] = (uint8_t)(0xa0 + i);
    }
}

/* Add a span the way the buffer does: appended to the newest chunk, with the counters. */
static void tb_add(struct tb *b, th_otlp_resource_spans_t *rs, th_otlp_span_t *s)
{
    if (!b->last || b->last->n == TH_TS_CHUNK) {
        struct th_ts_chunk *c = th_arena_calloc(b->a, 1, sizeof(*c));
        if (b->last) {
            b->last->next = c;
        } else {
            b->t.first = c;
        }
        b->last = c;
    }
    b->last->v[b->last->n++] = (struct th_ts_span){.span = s, .rs = rs};
    b->t.span_count++;
    b->t.bytes += 100;
    if (s->start_time_unix_nano && s->start_time_unix_nano < b->t.min_start_ns) {
        b->t.min_start_ns = s->start_time_unix_nano;
    }
    if (s->end_time_unix_nano > b->t.max_end_ns) {
        b->t.max_end_ns = s->end_time_unix_nano;
    }
}

static th_otlp_resource_spans_t *rs_new(th_arena_t *a, size_t n, th_otlp_kv_t **kvs)
{
    th_otlp_resource_spans_t *rs =
        FX_NEW(a, th_otlp_resource_spans_t, opentelemetry__proto__trace__v1__resource_spans__init);
    fx_resource_t *r = FX_NEW(a, fx_resource_t, opentelemetry__proto__resource__v1__resource__init);
    r->n_attributes = n;
    r->attributes = fx_kvs(a, n, kvs);
    rs->resource = r;
    return rs;
}

static th_otlp_span_t *sp(th_arena_t *a, uint64_t start, uint64_t end)
{
    return fx_span(a, FX_SPAN_LEAF, NULL, "op", 1, start, end);
}

static th_otlp_span_t *sp_attrs(th_arena_t *a, size_t n, th_otlp_kv_t **kvs)
{
    th_otlp_span_t *s = sp(a, 1 * SEC, 2 * SEC);
    s->n_attributes = n;
    s->attributes = fx_kvs(a, n, kvs);
    return s;
}

/* A one-span trace whose span has one attribute (and a resource without attributes). */
static struct th_ts_trace *trace_span_attr(struct tb *b, th_arena_t *a, const char *key,
                                           th_otlp_any_t *v)
{
    tb_init(b, a);
    th_otlp_kv_t *kv = fx_kv(a, key, v);
    tb_add(b, rs_new(a, 0, NULL), sp_attrs(a, 1, &kv));
    return &b->t;
}

/* A one-span trace whose resource has one attribute (and the span none). */
static struct th_ts_trace *trace_res_attr(struct tb *b, th_arena_t *a, const char *key,
                                          th_otlp_any_t *v)
{
    tb_init(b, a);
    th_otlp_kv_t *kv = fx_kv(a, key, v);
    tb_add(b, rs_new(a, 1, &kv), sp(a, 1 * SEC, 2 * SEC));
    return &b->t;
}

static enum th_ts_decision decide_at(th_ts_policies_t *p, const struct th_ts_trace *t, uint64_t now)
{
    struct th_ts_verdict v = {.final = TH_TS_UNSPECIFIED, .policy = -2};
    th_ts_policies_decide(p, t, now, &v);
    assert_true(v.final == TH_TS_SAMPLED || v.final == TH_TS_NOT_SAMPLED ||
                v.final == TH_TS_DROPPED);
    if (v.final == TH_TS_SAMPLED) {
        assert_true(v.policy >= 0);
    } else {
        assert_int_equal(v.policy, -1);
    }
    return v.final;
}

static enum th_ts_decision decide(th_ts_policies_t *p, const struct th_ts_trace *t)
{
    return decide_at(p, t, 1700000000ull * SEC);
}

#define SAMPLED     TH_TS_SAMPLED
#define NOT_SAMPLED TH_TS_NOT_SAMPLED
#define DROPPED     TH_TS_DROPPED

/* ---- Names and config errors ---------------------------------------------------------------- */

static void test_decision_names(void **state)
{
    (void)state;
    assert_string_equal(th_ts_decision_name(TH_TS_SAMPLED), "sampled");
    assert_string_equal(th_ts_decision_name(TH_TS_NOT_SAMPLED), "not_sampled");
    assert_string_equal(th_ts_decision_name(TH_TS_DROPPED), "dropped");
    assert_string_equal(th_ts_decision_name(TH_TS_INVERT_SAMPLED), "sampled");
    assert_string_equal(th_ts_decision_name(TH_TS_INVERT_NOT_SAMPLED), "not_sampled");
    assert_string_equal(th_ts_decision_name(TH_TS_ERROR), "error");
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_error("- {name: a, type: always_sample}\n- {type: always_sample}\n",
                 PATH "[1]: policy name cannot be empty");
    expect_error("- {name: '', type: always_sample}\n", PATH "[0]: policy name cannot be empty");
    expect_error("- {name: a, type: always_sample}\n- {name: b, type: always_sample}\n"
                 "- {name: a, type: latency, latency: {threshold_ms: 1}}\n",
                 PATH "[2]: duplicate policy name \"a\"");
    expect_error("- {name: a, type: sometimes_sample}\n",
                 PATH "[0]::type: unknown sampling policy type \"sometimes_sample\" (supported: "
                      "always_sample, latency, numeric_attribute, probabilistic, status_code, "
                      "string_attribute, rate_limiting, bytes_limiting, span_count, trace_state, "
                      "trace_flags, boolean_attribute, and, not, drop, composite)");
    expect_error("- {name: a, type: always_sample}\n- {name: b, type: always_sample}\n"
                 "- {name: c, type: latency, latency: {treshold_ms: 5}}\n",
                 PATH "[2]::latency::treshold_ms: unknown key (see tracehouse --help), did you "
                      "mean \"threshold_ms\"?");
    expect_error("- {name: a, type: latency, laetncy: {threshold_ms: 5}}\n",
                 PATH "[0]::laetncy: unknown key");
    expect_error("- {name: a, type: latency, latency: {threshold_ms: abc}}\n",
                 PATH "[0]::latency::threshold_ms: expected");
    expect_error("- {name: a, type: status_code, status_code: {status_codes: [ERROR, EROR]}}\n",
                 PATH "[0]::status_code::status_codes: unknown status code \"EROR\", supported: "
                      "OK, ERROR, UNSET");
    expect_error("- {name: a, type: status_code, status_code: {status_codes: [error]}}\n",
                 "unknown status code \"error\"");
    expect_error("- {name: a, type: status_code, status_code: {status_codes: []}}\n",
                 PATH "[0]::status_code::status_codes: expected at least one status code");
    expect_error("- {name: a, type: status_code}\n", "expected at least one status code");
    expect_error("- {name: a, type: ottl_condition, ottl_condition: {span: ['true']}}\n",
                 PATH "[0]::type: sampling policy type \"ottl_condition\" is not supported");
    expect_error("- {name: a, type: numeric_attribute, numeric_attribute: {key: k}}\n",
                 PATH "[0]::numeric_attribute: at least one of min_value or max_value");
    expect_error("- {name: a, type: string_attribute, string_attribute: {key: k, values: ['(x'],"
                 " enabled_regex_matching: true}}\n",
                 PATH "[0]::string_attribute::values[0]: invalid regular expression \"(x\"");
    expect_error("- {name: a, type: span_count, span_count: {min_spans: 3000000000}}\n",
                 PATH "[0]::span_count::min_spans: value");
    /* Sub-policies: paths through the combinators, and the types they allow. */
    expect_error("- name: a\n  type: and\n  and:\n    and_sub_policy:\n"
                 "      - {name: x, type: always_sample}\n"
                 "      - {name: y, type: latency, latency: {treshold_ms: 1}}\n",
                 PATH "[0]::and::and_sub_policy[1]::latency::treshold_ms: unknown key");
    expect_error("- name: a\n  type: and\n  and:\n    and_sub_policy:\n"
                 "      - {name: x, type: composite}\n",
                 PATH "[0]::and::and_sub_policy[0]::type: unknown sampling policy type "
                      "\"composite\" for a sub-policy (supported: always_sample");
    expect_error("- name: a\n  type: drop\n  drop:\n    drop_sub_policy:\n"
                 "      - {name: x, type: and}\n",
                 "\"and\" for a sub-policy");
    expect_error("- name: a\n  type: composite\n  composite:\n    composite_sub_policy:\n"
                 "      - {name: x, type: composite}\n",
                 PATH "[0]::composite::composite_sub_policy[0]::type: unknown sampling policy "
                      "type \"composite\" for a composite sub-policy");
    expect_error("- name: a\n  type: not\n  not:\n    not_sub_policy:\n"
                 "      - {name: x, type: always_sample}\n",
                 PATH "[0]::not::not_sub_policy: expected one policy (a map), got a list");
    expect_error("- name: a\n  type: not\n  not:\n    not_sub_policy: {name: x, type: drop}\n",
                 PATH "[0]::not::not_sub_policy::type: unknown sampling policy type \"drop\"");
    expect_error("- name: a\n  type: composite\n  composite:\n    max_total_spans_per_second: 5\n"
                 "    rate_allocation: [{policy: x, precent: 5}]\n",
                 PATH "[0]::composite::rate_allocation[0]::precent: unknown key");
    /* A leftover section for another type is checked as the Collector's decoder does. */
    expect_error("- {name: a, type: always_sample, latency: {threshold: 1}}\n",
                 PATH "[0]::latency::threshold: unknown key");
    expect_error("name: a\n", PATH ": expected a list of policies, got a map");
    expect_error("- just-a-string\n", PATH "[0]: expected a policy");

    /* Accepted: a leftover (valid) section, no policies at all. */
    th_ts_policies_t *p = mk("- {name: a, type: always_sample, latency: {threshold_ms: 1}}\n");
    th_ts_policies_destroy(p);
    p = mk("[]\n");
    size_t n = 99;
    th_ts_policies_stats(p, &n);
    assert_int_equal(n, 0);
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    tb_init(&b, a);
    tb_add(&b, rs_new(a, 0, NULL), sp(a, 1, 2));
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    th_ts_policies_destroy(NULL);
    th_arena_destroy(a);
}

/* Failing after policies with regexes were built releases them (ASan's leak check sees it). */
static void test_failure_paths(void **state)
{
    (void)state;
    expect_error("- {name: rx, type: string_attribute, string_attribute: {key: k, values: [a, b],"
                 " enabled_regex_matching: true}}\n- {name: b, type: bogus}\n",
                 PATH "[1]::type: unknown sampling policy type \"bogus\"");
    expect_error("- name: c\n  type: composite\n  composite:\n    composite_sub_policy:\n"
                 "      - {name: rx, type: string_attribute, string_attribute: {key: k, values: "
                 "[a], enabled_regex_matching: true}}\n"
                 "      - name: n\n        type: and\n        and:\n          and_sub_policy:\n"
                 "            - {name: rx2, type: string_attribute, string_attribute: {key: k, "
                 "values: [a], enabled_regex_matching: true}}\n"
                 "            - {name: z, type: zzz}\n",
                 PATH "[0]::composite::composite_sub_policy[1]::and::and_sub_policy[1]::type: "
                      "unknown sampling policy type \"zzz\"");
    expect_error("- {name: rx, type: string_attribute, string_attribute: {key: k, values: [a, "
                 "'[z'], enabled_regex_matching: true}}\n",
                 "values[1]: invalid regular expression");
}

/* Allocation failure N = 0, 1, 2, ... during create: each is TH_ENOMEM, cleanly, until the
 * create succeeds. */
static long fail_at = -1, alloc_count;
static void *f_malloc(size_t n)
{
    return alloc_count++ == fail_at ? NULL : malloc(n);
}
static void *f_calloc(size_t n, size_t s)
{
    return alloc_count++ == fail_at ? NULL : calloc(n, s);
}
static void *f_realloc(void *p, size_t n)
{
    return alloc_count++ == fail_at ? NULL : realloc(p, n);
}
static const struct th_mem_methods failing = {f_malloc, f_calloc, f_realloc, free};

static void test_oom(void **state)
{
    (void)state;
    const char *yaml =
        "- name: d\n  type: drop\n  drop:\n    drop_sub_policy:\n"
        "      - {name: probe, type: string_attribute, string_attribute: {key: p, values: [x]}}\n"
        "- {name: rx, type: string_attribute, string_attribute: {key: k, values: ['^a'], "
        "enabled_regex_matching: true}}\n"
        "- name: c\n  type: composite\n  composite:\n    max_total_spans_per_second: 10\n"
        "    composite_sub_policy:\n      - {name: a, type: always_sample}\n"
        "    rate_allocation: [{policy: a, percent: 50}]\n"
        "- {name: ts, type: trace_state, trace_state: {key: k, values: [v]}}\n";
    th_arena_t *a = th_arena_create(0, 0);
    th_node_t *node;
    char err[512];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    int ret = TH_ENOMEM;
    for (fail_at = 0; fail_at < 10000 && ret == TH_ENOMEM; fail_at++) {
        alloc_count = 0;
        th_ts_policies_t *p = NULL;
        th_mem_set_methods(&failing);
        ret = th_ts_policies_create(node, "n", PATH, false, &p, err, sizeof(err));
        th_mem_set_methods(NULL);
        if (ret == TH_ENOMEM) {
            assert_null(p);
        } else {
            assert_int_equal(ret, 0);
            struct tb b;
            th_otlp_kv_t *kv = fx_kv(a, "k", fx_str(a, "abc"));
            tb_init(&b, a);
            tb_add(&b, rs_new(a, 0, NULL), sp_attrs(a, 1, &kv));
            assert_int_equal(decide(p, &b.t), SAMPLED);
            th_ts_policies_destroy(p);
        }
    }
    assert_int_equal(ret, 0);
    assert_true(fail_at > 3); /* some attempts did fail */
    th_arena_destroy(a);
}

/* ---- Simple policies ---------------------------------------------------------------------- */

static void test_always_and_empty(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    th_ts_policies_t *p = mk("- {name: all, type: always_sample}\n");
    struct tb b;
    tb_init(&b, a);
    assert_int_equal(decide(p, &b.t), SAMPLED); /* even with no spans */
    th_ts_policies_destroy(p);

    /* Every span-based policy is NotSampled on a trace without spans. */
    p = mk("- {name: l, type: latency, latency: {threshold_ms: 0}}\n"
           "- {name: s, type: status_code, status_code: {status_codes: [UNSET, OK, ERROR]}}\n"
           "- {name: n, type: numeric_attribute, numeric_attribute: {key: k, min_value: -5}}\n"
           "- {name: f, type: trace_flags}\n"
           "- {name: c, type: span_count, span_count: {min_spans: 1}}\n");
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static struct th_ts_trace *trace_duration(struct tb *b, th_arena_t *a, uint64_t dur_ns)
{
    tb_init(b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    uint64_t t0 = 1700000000ull * SEC;
    /* children first, the root (the whole duration) last: arrival order must not matter */
    for (int i = 0; i < 9; i++) {
        tb_add(b, rs, sp(a, t0 + 1 * MS + (uint64_t)i, t0 + 2 * MS));
    }
    tb_add(b, rs, sp(a, t0, t0 + dur_ns));
    return &b->t;
}

static void test_latency(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk("- {name: slow, type: latency, latency: {threshold_ms: 100}}\n");
    assert_int_equal(decide(p, trace_duration(&b, a, 100 * MS)), SAMPLED); /* exactly at it */
    assert_int_equal(decide(p, trace_duration(&b, a, 100 * MS - 1)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_duration(&b, a, 5 * SEC)), SAMPLED);
    /* the duration spans several spans: none of them lasts 100ms alone */
    tb_init(&b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    tb_add(&b, rs, sp(a, 10 * SEC + 60 * MS, 10 * SEC + 120 * MS));
    tb_add(&b, rs, sp(a, 10 * SEC, 10 * SEC + 50 * MS));
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- name: band\n  type: latency\n  latency: {threshold_ms: 100, upper_threshold_ms: "
           "200}\n");
    assert_int_equal(decide(p, trace_duration(&b, a, 100 * MS)), NOT_SAMPLED); /* exclusive */
    assert_int_equal(decide(p, trace_duration(&b, a, 101 * MS)), SAMPLED);
    assert_int_equal(decide(p, trace_duration(&b, a, 200 * MS)), SAMPLED);          /* inclusive */
    assert_int_equal(decide(p, trace_duration(&b, a, 200 * MS + 999999)), SAMPLED); /* 200ms */
    assert_int_equal(decide(p, trace_duration(&b, a, 201 * MS)), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_numeric(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk("- name: errs\n  type: numeric_attribute\n  numeric_attribute: "
                             "{key: http.status_code, min_value: 500, max_value: 599}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_int(a, 500))),
                     SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_int(a, 599))),
                     SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_int(a, 600))),
                     NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_int(a, 499))),
                     NOT_SAMPLED);
    assert_int_equal(decide(p, trace_res_attr(&b, a, "http.status_code", fx_int(a, 503))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status", fx_int(a, 503))), NOT_SAMPLED);
    /* only int values: a string or double is not read as a number */
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_str(a, "503"))),
                     NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "http.status_code", fx_double(a, 503))),
                     NOT_SAMPLED);
    /* the match is on any span, not only the first */
    tb_init(&b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    for (int i = 0; i < 12; i++) {
        th_otlp_kv_t *kv = fx_kv(a, "http.status_code", fx_int(a, i == 11 ? 502 : 200));
        tb_add(&b, rs, sp_attrs(a, 1, &kv));
    }
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);

    /* one-sided bounds (0 means no bound) */
    p = mk("- {name: big, type: numeric_attribute, numeric_attribute: {key: n, min_value: 10}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, INT64_MAX))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, 9))), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    p = mk("- {name: small, type: numeric_attribute, numeric_attribute: {key: n, max_value: "
           "-1}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, INT64_MIN))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, 0))), NOT_SAMPLED);
    th_ts_policies_destroy(p);

    /* invert_match: a match is NotSampled, no match (or no key) is Sampled */
    p = mk("- name: inv\n  type: numeric_attribute\n  numeric_attribute: {key: n, min_value: 1, "
           "max_value: 5, invert_match: true}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, 3))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_res_attr(&b, a, "n", fx_int(a, 3))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "n", fx_int(a, 7))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "other", fx_int(a, 3))), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_string_exact(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk("- name: envs\n  type: string_attribute\n  string_attribute: "
                             "{key: env, values: [prod, staging, '']}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, "prod"))), SAMPLED);
    assert_int_equal(decide(p, trace_res_attr(&b, a, "env", fx_str(a, "staging"))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, "prod2"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, "pro"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, ""))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_int(a, 1))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "envx", fx_str(a, "prod"))), NOT_SAMPLED);
    /* resource attributes of a later span, span attributes elsewhere */
    tb_init(&b, a);
    th_otlp_kv_t *other = fx_kv(a, "env", fx_str(a, "dev"));
    th_otlp_kv_t *match = fx_kv(a, "env", fx_str(a, "prod"));
    tb_add(&b, rs_new(a, 1, &other), sp(a, 1, 2));
    tb_add(&b, rs_new(a, 1, &match), sp(a, 1, 2));
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);

    /* exact matching is exact: a regex-looking value is literal */
    p = mk("- {name: lit, type: string_attribute, string_attribute: {key: k, values: ['a.c']}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "k", fx_str(a, "abc"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "k", fx_str(a, "a.c"))), SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- name: inv\n  type: string_attribute\n  string_attribute: {key: env, values: [prod],"
           " invert_match: true}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, "prod"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_res_attr(&b, a, "env", fx_str(a, "prod"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "env", fx_str(a, "dev"))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "nokey", fx_str(a, "prod"))), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_string_regex(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    /* not anchored, several expressions, a cache of 2 entries to exercise eviction */
    th_ts_policies_t *p = mk("- name: rx\n  type: string_attribute\n  string_attribute:\n"
                             "    key: url.path\n    values: ['^/api/v[0-9]+/', 'health']\n"
                             "    enabled_regex_matching: true\n    cache_max_size: 2\n");
    const struct {
        const char *v;
        enum th_ts_decision want;
    } cases[] = {
        {"/api/v2/users", SAMPLED}, {"/x/api/v2/", NOT_SAMPLED}, {"/healthz", SAMPLED},
        {"/readyz", NOT_SAMPLED},   {"/api/vx/", NOT_SAMPLED},   {"my-health-check", SAMPLED},
    };
    for (int round = 0; round < 3; round++) { /* later rounds hit (or miss) the cache */
        for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
            enum th_ts_decision got =
                decide(p, trace_span_attr(&b, a, "url.path", fx_str(a, cases[i].v)));
            if (got != cases[i].want) {
                fail_msg("round %d: %s: got %s", round, cases[i].v, th_ts_decision_name(got));
            }
        }
        assert_int_equal(decide(p, trace_span_attr(&b, a, "url.path", fx_str(a, "/healthz"))),
                         SAMPLED); /* a cache hit right after the miss */
    }
    assert_int_equal(decide(p, trace_res_attr(&b, a, "url.path", fx_str(a, "/api/v1/"))), SAMPLED);
    th_ts_policies_destroy(p);

    /* regex vs exact on the same value */
    p = mk("- {name: rx, type: string_attribute, string_attribute: {key: k, values: ['a.c'], "
           "enabled_regex_matching: true}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "k", fx_str(a, "xxabcxx"))), SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- {name: rx, type: string_attribute, string_attribute: {key: k, values: ['^err'], "
           "enabled_regex_matching: true, invert_match: true}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "k", fx_str(a, "error"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "k", fx_str(a, "an error"))), SAMPLED);
    th_ts_policies_destroy(p);

    /* A pattern that exhausts the match limit is an evaluation error: counted, ignored. */
    p = mk("- {name: bad, type: string_attribute, string_attribute: {key: k, values: ['(a+)+$'], "
           "enabled_regex_matching: true}}\n"
           "- {name: rest, type: always_sample}\n");
    char evil[64];
    memset(evil, 'a', 40);
    strcpy(evil + 40, "!");
    struct th_ts_verdict v;
    th_ts_policies_decide(p, trace_span_attr(&b, a, "k", fx_str(a, evil)), 0, &v);
    assert_int_equal(v.final, SAMPLED);
    assert_int_equal(v.policy, 1);
    size_t n;
    const struct th_ts_policy_stats *st = th_ts_policies_stats(p, &n);
    assert_int_equal(st[0].errors, 1);
    assert_int_equal(st[0].sampled + st[0].not_sampled + st[0].dropped, 0);
    assert_int_equal(st[0].executions, 1);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_status_code(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p =
        mk("- {name: e, type: status_code, status_code: {status_codes: [ERROR]}}\n");
    tb_init(&b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    th_otlp_span_t *ok = sp(a, 1, 2);
    ok->status = FX_NEW(a, fx_status_t, opentelemetry__proto__trace__v1__status__init);
    ok->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
    tb_add(&b, rs, ok);
    tb_add(&b, rs, sp(a, 1, 2)); /* no status: UNSET */
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED);
    th_otlp_span_t *bad = sp(a, 1, 2);
    bad->status = FX_NEW(a, fx_status_t, opentelemetry__proto__trace__v1__status__init);
    bad->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    tb_add(&b, rs, bad);
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- {name: u, type: status_code, status_code: {status_codes: [UNSET]}}\n");
    tb_init(&b, a);
    tb_add(&b, rs, ok);
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED);
    tb_add(&b, rs, sp(a, 1, 2));
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static struct th_ts_trace *trace_n(struct tb *b, th_arena_t *a, int n)
{
    tb_init(b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    for (int i = 0; i < n; i++) {
        tb_add(b, rs, sp(a, 1, 2));
    }
    return &b->t;
}

static void test_rate_limiting(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    /* 10 spans/s, burst 20 (the default of twice the rate) */
    th_ts_policies_t *p =
        mk("- {name: rl, type: rate_limiting, rate_limiting: {spans_per_second: 10}}\n");
    uint64_t t0 = 1700000000ull * SEC;
    assert_int_equal(decide_at(p, trace_n(&b, a, 15), t0), SAMPLED);              /* 20 -> 5 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 6), t0), NOT_SAMPLED);           /* 5 < 6 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 5), t0), SAMPLED);               /* 5 -> 0 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + 50 * MS), NOT_SAMPLED); /* 0.5 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + 100 * MS), SAMPLED);    /* 1 -> 0 */
    /* a second later the bucket has refilled 10 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 10), t0 + 1100 * MS), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + 1100 * MS), NOT_SAMPLED);
    /* long idle: capped at the burst; more than the burst never passes */
    assert_int_equal(decide_at(p, trace_n(&b, a, 21), t0 + 100 * SEC), NOT_SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 20), t0 + 100 * SEC), SAMPLED);
    /* a clock going backwards refills nothing */
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + 50 * SEC), NOT_SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- name: rl\n  type: rate_limiting\n  rate_limiting: {spans_per_second: 1, "
           "burst_capacity: 3}\n");
    assert_int_equal(decide_at(p, trace_n(&b, a, 4), t0), NOT_SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 3), t0), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + SEC), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0 + SEC), NOT_SAMPLED);
    th_ts_policies_destroy(p);

    /* bytes_limiting: the same bucket over the trace's bytes (100 per span here) */
    p = mk("- {name: bl, type: bytes_limiting, bytes_limiting: {bytes_per_second: 1000}}\n");
    assert_int_equal(decide_at(p, trace_n(&b, a, 21), t0), NOT_SAMPLED); /* 2100 > 2000 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 15), t0), SAMPLED);     /* 2000 -> 500 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 6), t0), NOT_SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 6), t0 + 100 * MS), SAMPLED); /* 600 */
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_span_count(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p =
        mk("- {name: sc, type: span_count, span_count: {min_spans: 2, max_spans: 8}}\n");
    assert_int_equal(decide(p, trace_n(&b, a, 1)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_n(&b, a, 2)), SAMPLED);
    assert_int_equal(decide(p, trace_n(&b, a, 8)), SAMPLED);
    assert_int_equal(decide(p, trace_n(&b, a, 9)), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    p = mk("- {name: sc, type: span_count, span_count: {min_spans: 3}}\n");
    assert_int_equal(decide(p, trace_n(&b, a, 2)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_n(&b, a, 300)), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_boolean(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p =
        mk("- {name: bot, type: boolean_attribute, boolean_attribute: {key: is_bot, value: "
           "true}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, true))), SAMPLED);
    assert_int_equal(decide(p, trace_res_attr(&b, a, "is_bot", fx_bool(a, true))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, false))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_str(a, "true"))), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    p = mk("- {name: human, type: boolean_attribute, boolean_attribute: {key: is_bot, value: "
           "false}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, false))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_str(a, "x"))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "other", fx_bool(a, false))), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    p = mk("- {name: inv, type: boolean_attribute, boolean_attribute: {key: is_bot, value: true,"
           " invert_match: true}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, true))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, false))), SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "x", fx_bool(a, true))), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static struct th_ts_trace *trace_ts(struct tb *b, th_arena_t *a, const char *ts, uint32_t flags)
{
    tb_init(b, a);
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    tb_add(b, rs, sp(a, 1, 2));
    th_otlp_span_t *s = sp(a, 1, 2);
    s->trace_state = th_arena_strndup(a, ts, strlen(ts));
    s->flags = flags;
    tb_add(b, rs, s);
    return &b->t;
}

static void test_trace_state_and_flags(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk("- {name: ts, type: trace_state, trace_state: {key: congo, values: "
                             "[t61rcWkgMzE, other]}}\n");
    assert_int_equal(decide(p, trace_ts(&b, a, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", 0)),
                     SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "congo=other", 0)), SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, " congo=other , rojo=1 ", 0)), SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "congo=t61rcWkgMz", 0)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "rojo=t61rcWkgMzE", 0)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "", 0)), NOT_SAMPLED);
    /* an invalid tracestate matches nothing: upper-case key, duplicate key, no '=' */
    assert_int_equal(decide(p, trace_ts(&b, a, "Rojo=1,congo=other", 0)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "congo=other,congo=x", 0)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "rojo,congo=other", 0)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "t@vendor=1,congo=other", 0)), SAMPLED);
    th_ts_policies_destroy(p);

    p = mk("- {name: f, type: trace_flags}\n");
    assert_int_equal(decide(p, trace_ts(&b, a, "", 0x100)), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_ts(&b, a, "", 0x301)), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

/* ---- Probabilistic -------------------------------------------------------------------------- */

/* FNV-1a 64, written from the definition. */
static uint64_t ref_fnv(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t ref_hash(const char *salt, const uint8_t id[16])
{
    uint64_t h = ref_fnv((const uint8_t *)salt, strlen(salt), 0xcbf29ce484222325ull);
    return ref_fnv(id, 16, h);
}

/* The Collector's threshold with x87 long double (a 64-bit mantissa, like the big.Float of
 * MaxUint64): one correctly rounded multiply, then truncation. */
static uint64_t ref_threshold(double pct)
{
    double ratio = pct / 100;
    if (ratio <= 0) {
        return 0;
    }
    if (ratio >= 1) {
        return UINT64_MAX;
    }
    volatile long double prod = (long double)UINT64_MAX * (long double)ratio;
    return (uint64_t)prod;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_probabilistic(void **state)
{
    (void)state;
    /* Known FNV-1a-64 vectors check the reference itself. */
    assert_true(ref_fnv((const uint8_t *)"", 0, 0xcbf29ce484222325ull) == 0xcbf29ce484222325ull);
    assert_true(ref_fnv((const uint8_t *)"a", 1, 0xcbf29ce484222325ull) == 0xaf63dc4c8601ec8cull);
    assert_true(ref_fnv((const uint8_t *)"foobar", 6, 0xcbf29ce484222325ull) ==
                0x85944171f73967e8ull);

    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    tb_init(&b, a);
    static const struct {
        const char *yaml;
        const char *salt;
        double pct;
    } cfgs[] = {
        {"- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}\n",
         "default-hash-seed", 10},
        {"- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 33.3, hash_salt: "
         "tier2}}\n",
         "tier2", 33.3},
        {"- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 0.5, hash_salt: "
         "''}}\n",
         "default-hash-seed", 0.5},
        {"- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 50}}\n",
         "default-hash-seed", 50},
    };
    for (size_t c = 0; c < TH_ARRAY_SIZE(cfgs); c++) {
        th_ts_policies_t *p = mk(cfgs[c].yaml);
        uint64_t thr = ref_threshold(cfgs[c].pct);
        unsigned sampled = 0;
        const unsigned total = 100000;
        for (unsigned i = 0; i < total; i++) {
            uint64_t x = next_rand(), y = next_rand();
            memcpy(b.t.trace_id, &x, 8);
            memcpy(b.t.trace_id + 8, &y, 8);
            bool want = ref_hash(cfgs[c].salt, b.t.trace_id) <= thr;
            enum th_ts_decision got = decide(p, &b.t);
            if ((got == SAMPLED) != want) {
                fail_msg("cfg %zu id %u: got %s", c, i, th_ts_decision_name(got));
            }
            sampled += got == SAMPLED;
        }
        double expect = total * cfgs[c].pct / 100;
        double sigma = sqrt(total * (cfgs[c].pct / 100) * (1 - cfgs[c].pct / 100));
        if (fabs(sampled - expect) > 5 * sigma) {
            fail_msg("cfg %zu: %u sampled of %u, expected about %.0f", c, sampled, total, expect);
        }
        th_ts_policies_destroy(p);
    }

    /* Salts decorrelate: the same id, two salts, decisions differ somewhere. */
    th_ts_policies_t *p1 = mk(cfgs[0].yaml);
    th_ts_policies_t *p2 = mk("- {name: p, type: probabilistic, probabilistic: "
                              "{sampling_percentage: 10, hash_salt: other}}\n");
    unsigned differ = 0;
    for (unsigned i = 0; i < 1000; i++) {
        uint64_t x = next_rand(), y = next_rand();
        memcpy(b.t.trace_id, &x, 8);
        memcpy(b.t.trace_id + 8, &y, 8);
        differ += decide(p1, &b.t) != decide(p2, &b.t);
    }
    assert_true(differ > 50);
    th_ts_policies_destroy(p1);
    th_ts_policies_destroy(p2);

    /* 100% or more samples everything; 0% samples only a hash of exactly 0. */
    th_ts_policies_t *all =
        mk("- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 150}}\n");
    th_ts_policies_t *none =
        mk("- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 0}}\n");
    for (unsigned i = 0; i < 1000; i++) {
        uint64_t x = next_rand(), y = next_rand();
        memcpy(b.t.trace_id, &x, 8);
        memcpy(b.t.trace_id + 8, &y, 8);
        assert_int_equal(decide(all, &b.t), SAMPLED);
        assert_int_equal(decide(none, &b.t), NOT_SAMPLED);
    }
    th_ts_policies_destroy(all);
    th_ts_policies_destroy(none);
    th_arena_destroy(a);
}

/* White box: the integer threshold against long double, on many percentages. */

static void test_prob_threshold(void **state)
{
    (void)state;
    assert_true(th__ts_prob_threshold(50) == 0x7fffffffffffffffull);
    assert_true(th__ts_prob_threshold(100) == UINT64_MAX);
    assert_true(th__ts_prob_threshold(0) == 0);
    assert_true(th__ts_prob_threshold(-3) == 0);
    assert_true(th__ts_prob_threshold(25) == 0x3fffffffffffffffull);
    static const double fixed[] = {1,      10, 12.5, 33.333333, 0.001, 99.999999,       1e-12,
                                   1e-300, 75, 5,    0.1,       66.6,  99.9999999999999};
    for (size_t i = 0; i < TH_ARRAY_SIZE(fixed); i++) {
        if (th__ts_prob_threshold(fixed[i]) != ref_threshold(fixed[i])) {
            fail_msg("pct %.17g: %llu != %llu", fixed[i],
                     (unsigned long long)th__ts_prob_threshold(fixed[i]),
                     (unsigned long long)ref_threshold(fixed[i]));
        }
    }
    for (int i = 0; i < 200000; i++) {
        double pct = (double)(next_rand() >> 11) / 9007199254740992.0 * 100;
        if (th__ts_prob_threshold(pct) != ref_threshold(pct)) {
            fail_msg("pct %.17g: %llu != %llu", pct, (unsigned long long)th__ts_prob_threshold(pct),
                     (unsigned long long)ref_threshold(pct));
        }
    }
}

/* The hash equal to the threshold is sampled (h <= threshold). Reachable thresholds are about
 * 2^11 apart, so an id whose hash is exactly one is found by trying ids; the percentage is
 * written with 17 digits so the config reads back the same double. */
static void test_probabilistic_boundary(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    tb_init(&b, a);
    double pct = 0, below = 0;
    bool found = false;
    for (int i = 0; i < 2000000 && !found; i++) {
        uint64_t x = next_rand(), y = next_rand();
        memcpy(b.t.trace_id, &x, 8);
        memcpy(b.t.trace_id + 8, &y, 8);
        uint64_t h = ref_hash("edge", b.t.trace_id);
        double guess = (double)h / 18446744073709551616.0 * 100;
        for (int k = -3; k <= 3 && !found; k++) {
            double c = guess;
            for (int s = 0; s < (k < 0 ? -k : k); s++) {
                c = nextafter(c, k < 0 ? 0 : 200);
            }
            char txt[64];
            snprintf(txt, sizeof(txt), "%.17g", c);
            double back = strtod(txt, NULL);
            if (ref_threshold(back) == h && ref_threshold(nextafter(back, 0)) < h) {
                pct = back;
                below = nextafter(back, 0);
                found = true;
            }
        }
    }
    assert_true(found);
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "- {name: p, type: probabilistic, probabilistic: {sampling_percentage: %.17g, "
             "hash_salt: edge}}\n",
             pct);
    th_ts_policies_t *p = mk(yaml);
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);
    snprintf(yaml, sizeof(yaml),
             "- {name: p, type: probabilistic, probabilistic: {sampling_percentage: %.17g, "
             "hash_salt: edge}}\n",
             below);
    p = mk(yaml);
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

/* The regex cache: bounded, least recently used out first, recycled entries. */
static void test_regex_cache_lru(void **state)
{
    (void)state;
    struct th__ts_rcache c;
    assert_int_equal(th__ts_rcache_init(&c, 2), 0);
#define H(s) th__ts_fnv1a(TH__TS_FNV_OFFSET, s, strlen(s))
    th__ts_rcache_put(&c, H("alpha"), "alpha", 5, true);
    th__ts_rcache_put(&c, H("beta"), "beta", 4, false);
    struct th__ts_rc_entry *e = th__ts_rcache_get(&c, H("alpha"), "alpha", 5);
    assert_non_null(e);
    assert_true(e->match);
    e = th__ts_rcache_get(&c, H("beta"), "beta", 4);
    assert_non_null(e);
    assert_false(e->match);
    assert_null(th__ts_rcache_get(&c, H("alph"), "alph", 4));
    assert_non_null(th__ts_rcache_get(&c, H("alpha"), "alpha", 5)); /* alpha most recent */
    /* a long value recycles beta's entry (the least recently used) */
    const char *longv = "gamma-gamma-gamma-gamma-gamma-gamma-gamma-gamma";
    th__ts_rcache_put(&c, H(longv), longv, strlen(longv), true);
    assert_int_equal(c.n, 2);
    assert_null(th__ts_rcache_get(&c, H("beta"), "beta", 4));
    assert_non_null(th__ts_rcache_get(&c, H("alpha"), "alpha", 5));
    e = th__ts_rcache_get(&c, H(longv), longv, strlen(longv));
    assert_non_null(e);
    assert_string_equal(e->s, longv);
    for (int i = 0; i < 1000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        if (!th__ts_rcache_get(&c, H(v), v, strlen(v))) {
            th__ts_rcache_put(&c, H(v), v, strlen(v), i % 2);
        }
        assert_true(c.n <= 2);
    }
    e = th__ts_rcache_get(&c, H("v999"), "v999", 4);
    assert_non_null(e);
    assert_true(e->match);
    assert_non_null(th__ts_rcache_get(&c, H("v998"), "v998", 4));
    assert_null(th__ts_rcache_get(&c, H("v997"), "v997", 4));
#undef H
    th__ts_rcache_deinit(&c);
    th__ts_rcache_deinit(&c); /* safe twice */
}

/* ---- Combinators ---------------------------------------------------------------------------- */

static void test_and_not_drop(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk("- name: prod-errors\n  type: and\n  and:\n    and_sub_policy:\n"
                             "      - {name: prod, type: string_attribute, string_attribute: "
                             "{key: env, values: [prod]}}\n"
                             "      - {name: err, type: status_code, status_code: {status_codes: "
                             "[ERROR]}}\n");
    tb_init(&b, a);
    th_otlp_kv_t *env = fx_kv(a, "env", fx_str(a, "prod"));
    th_otlp_resource_spans_t *rs = rs_new(a, 1, &env);
    tb_add(&b, rs, sp(a, 1, 2));
    assert_int_equal(decide(p, &b.t), NOT_SAMPLED); /* prod, but no error */
    th_otlp_span_t *bad = sp(a, 1, 2);
    bad->status = FX_NEW(a, fx_status_t, opentelemetry__proto__trace__v1__status__init);
    bad->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    tb_add(&b, rs, bad);
    assert_int_equal(decide(p, &b.t), SAMPLED);
    th_ts_policies_destroy(p);

    /* not: the sub-policy's decision swapped */
    p = mk("- name: not-bots\n  type: not\n  not:\n    not_sub_policy: {name: bot, type: "
           "boolean_attribute, boolean_attribute: {key: is_bot, value: true}}\n");
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, true))), NOT_SAMPLED);
    assert_int_equal(decide(p, trace_span_attr(&b, a, "is_bot", fx_bool(a, false))), SAMPLED);
    th_ts_policies_destroy(p);

    /* drop wins over sampled, whatever the config order; evaluation stops at it */
    p = mk2("- {name: keep-all, type: always_sample}\n"
            "- name: drop-health\n  type: drop\n  drop:\n    drop_sub_policy:\n"
            "      - {name: probe, type: string_attribute, string_attribute: {key: url.path, "
            "values: [/health, /metrics]}}\n"
            "- {name: keep-too, type: always_sample}\n",
            "tier1", false);
    struct th_ts_verdict v;
    th_ts_policies_decide(p, trace_span_attr(&b, a, "url.path", fx_str(a, "/health")), 0, &v);
    assert_int_equal(v.final, DROPPED);
    assert_int_equal(v.policy, -1);
    size_t n;
    const struct th_ts_policy_stats *st = th_ts_policies_stats(p, &n);
    assert_int_equal(n, 3);
    assert_string_equal(st[0].name, "tier1.keep-all");
    assert_string_equal(st[1].name, "tier1.drop-health");
    assert_int_equal(st[1].dropped, 1);
    assert_int_equal(st[0].executions, 0); /* stopped at the drop, which ran first */
    assert_int_equal(st[2].executions, 0);
    th_ts_policies_decide(p, trace_span_attr(&b, a, "url.path", fx_str(a, "/api")), 0, &v);
    assert_int_equal(v.final, SAMPLED);
    assert_int_equal(v.policy, 0); /* the first policy, in config order, that sampled */
    assert_int_equal(st[1].not_sampled, 1);
    assert_int_equal(st[0].sampled, 1);
    assert_int_equal(st[2].sampled, 1);
    assert_int_equal(st[0].executions, 1);
    th_ts_policies_destroy(p);

    /* an empty and samples (every one of no sub-policies sampled), as in the Collector */
    p = mk("- {name: e, type: and, and: {and_sub_policy: []}}\n");
    assert_int_equal(decide(p, trace_n(&b, a, 1)), SAMPLED);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_composite(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    /* a has 30% of 100; b and c have no allocation and share the 70 left (35 each); b is
     * tried first */
    th_ts_policies_t *p = mk("- name: comp\n  type: composite\n  composite:\n"
                             "    max_total_spans_per_second: 100\n"
                             "    policy_order: [b, a, c]\n"
                             "    composite_sub_policy:\n"
                             "      - {name: a, type: always_sample}\n"
                             "      - name: b\n        type: and\n        and:\n"
                             "          and_sub_policy:\n"
                             "            - {name: b1, type: span_count, span_count: {min_spans: "
                             "10}}\n"
                             "      - {name: c, type: span_count, span_count: {min_spans: 1}}\n"
                             "    rate_allocation:\n      - {policy: a, percent: 30}\n");
    uint64_t t0 = 1700000000ull * SEC;
    /* 20-span traces: b matches (min 10) and decides; its 35 fit one, not two */
    assert_int_equal(decide_at(p, trace_n(&b, a, 20), t0), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 20), t0 + 10 * MS), NOT_SAMPLED); /* 40 > 35 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 15), t0 + 20 * MS), SAMPLED);     /* 35 */
    /* small traces: b does not match, a (tried next) has 30 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 5), t0 + 30 * MS), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 9), t0 + 40 * MS), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 9), t0 + 50 * MS), SAMPLED);     /* a: 23 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 8), t0 + 60 * MS), NOT_SAMPLED); /* 31 > 30 */
    /* the next wall-clock second starts again */
    assert_int_equal(decide_at(p, trace_n(&b, a, 20), t0 + SEC), SAMPLED);
    assert_int_equal(decide_at(p, trace_n(&b, a, 9), t0 + SEC + 1), SAMPLED);
    th_ts_policies_destroy(p);

    /* without policy_order the config order is used; the total caps everything */
    p = mk("- name: comp\n  type: composite\n  composite:\n"
           "    max_total_spans_per_second: 10\n"
           "    composite_sub_policy:\n"
           "      - {name: x, type: span_count, span_count: {min_spans: 5}}\n"
           "      - {name: y, type: always_sample}\n"
           "    rate_allocation:\n      - {policy: x, percent: 80}\n"
           "      - {policy: y, percent: 80}\n");
    assert_int_equal(decide_at(p, trace_n(&b, a, 6), t0), SAMPLED);     /* x: 6 of 8 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 3), t0), SAMPLED);     /* y: 3; total 9 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 2), t0), NOT_SAMPLED); /* total 11 > 10 */
    assert_int_equal(decide_at(p, trace_n(&b, a, 1), t0), SAMPLED);     /* total 10 */
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

static void test_first_match_and_stats(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    const char *yaml = "- {name: slow, type: latency, latency: {threshold_ms: 1000}}\n"
                       "- {name: all, type: always_sample}\n"
                       "- {name: rl, type: rate_limiting, rate_limiting: {spans_per_second: 1, "
                       "burst_capacity: 1}}\n";
    th_ts_policies_t *p = mk2(yaml, "", true);
    struct th_ts_verdict v;
    for (int i = 0; i < 3; i++) {
        th_ts_policies_decide(p, trace_n(&b, a, 1), 0, &v);
        assert_int_equal(v.final, SAMPLED);
        assert_int_equal(v.policy, 1);
    }
    size_t n;
    const struct th_ts_policy_stats *st = th_ts_policies_stats(p, &n);
    assert_int_equal(n, 3);
    assert_string_equal(st[0].name, "slow");
    assert_int_equal(st[0].not_sampled, 3);
    assert_int_equal(st[1].sampled, 3);
    assert_int_equal(st[2].executions, 0); /* never reached: its bucket is untouched */
    th_ts_policies_destroy(p);

    /* without sample_on_first_match every policy runs, and the limiter spends its token */
    p = mk2(yaml, "x", false);
    th_ts_policies_decide(p, trace_n(&b, a, 1), 0, &v);
    th_ts_policies_decide(p, trace_n(&b, a, 1), 0, &v);
    assert_int_equal(v.final, SAMPLED);
    assert_int_equal(v.policy, 1);
    st = th_ts_policies_stats(p, &n);
    assert_string_equal(st[2].name, "x.rl");
    assert_int_equal(st[2].executions, 2);
    assert_int_equal(st[2].sampled, 1);
    assert_int_equal(st[2].not_sampled, 1);
    assert_int_equal(st[0].errors, 0);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

/* Many traces through a realistic policy set: no allocation per decision is visible as no
 * growth, and the run stays quick (a rough guard, not a benchmark). */
static void test_many(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct tb b;
    th_ts_policies_t *p = mk(
        "- name: drop-health\n  type: drop\n  drop:\n    drop_sub_policy:\n"
        "      - {name: probe, type: string_attribute, string_attribute: {key: url.path, values: "
        "['/health', '/metrics']}}\n"
        "- {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n"
        "- {name: slow, type: latency, latency: {threshold_ms: 1000}}\n"
        "- {name: rx, type: string_attribute, string_attribute: {key: url.path, values: "
        "['^/api/'], enabled_regex_matching: true}}\n"
        "- {name: baseline, type: probabilistic, probabilistic: {sampling_percentage: 5}}\n");
    tb_init(&b, a);
    th_otlp_kv_t *kv = fx_kv(a, "url.path", fx_str(a, "/api/v1/x"));
    th_otlp_resource_spans_t *rs = rs_new(a, 0, NULL);
    for (int i = 0; i < 20; i++) {
        tb_add(&b, rs, sp_attrs(a, 1, &kv));
    }
    for (int i = 0; i < 100000; i++) {
        b.t.trace_id[0] = (uint8_t)i;
        b.t.trace_id[1] = (uint8_t)(i >> 8);
        assert_int_equal(decide(p, &b.t), SAMPLED);
    }
    size_t n;
    const struct th_ts_policy_stats *st = th_ts_policies_stats(p, &n);
    assert_int_equal(st[3].sampled, 100000);
    assert_true(st[3].execution_ns > 0);
    th_ts_policies_destroy(p);
    th_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_names),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_failure_paths),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_always_and_empty),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_string_exact),
        cmocka_unit_test(test_string_regex),
        cmocka_unit_test(test_status_code),
        cmocka_unit_test(test_rate_limiting),
        cmocka_unit_test(test_span_count),
        cmocka_unit_test(test_boolean),
        cmocka_unit_test(test_trace_state_and_flags),
        cmocka_unit_test(test_probabilistic),
        cmocka_unit_test(test_prob_threshold),
        cmocka_unit_test(test_probabilistic_boundary),
        cmocka_unit_test(test_regex_cache_lru),
        cmocka_unit_test(test_and_not_drop),
        cmocka_unit_test(test_composite),
        cmocka_unit_test(test_first_match_and_stats),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
