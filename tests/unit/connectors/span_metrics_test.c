/*
 * span_metrics: the aggregation driven with hand-built OTLP requests and checked through the
 * snapshots it builds: dimension lookup order, defaults and omission, exclusion, bucket
 * placement at the bounds, exponential indices against an independent computation and across
 * scale reductions, cumulative against delta over flushes, the cardinality overflow series,
 * spans without service.name, exemplars; then the config rules and the connector itself.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connectors/span_metrics/span_metrics.h"

/* ---- Building requests ----------------------------------------------------------------- */

#define MAX_ITEMS 64

static th_arena_t *arena;

static th_otlp_kv_t *kv_str(const char *k, const char *v)
{
    th_otlp_kv_t *kv = th_arena_calloc(arena, 1, sizeof(*kv));
    th_otlp_any_t *any = th_arena_calloc(arena, 1, sizeof(*any));
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(any);
    any->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    any->string_value = (char *)v;
    kv->key = (char *)k;
    kv->value = any;
    return kv;
}

static th_otlp_kv_t *kv_int(const char *k, int64_t v)
{
    th_otlp_kv_t *kv = kv_str(k, "");
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = v;
    return kv;
}

static th_otlp_request_t *new_request(void)
{
    th_otlp_request_t *r = th_arena_calloc(arena, 1, sizeof(*r));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(r);
    r->resource_spans = th_arena_calloc(arena, MAX_ITEMS, sizeof(*r->resource_spans));
    return r;
}

/* A resource (NULL-terminated attribute list) with one scope. */
static th_otlp_scope_spans_t *add_resource(th_otlp_request_t *r, ...)
{
    th_otlp_resource_spans_t *rs = th_arena_calloc(arena, 1, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    Opentelemetry__Proto__Resource__V1__Resource *res = th_arena_calloc(arena, 1, sizeof(*res));
    opentelemetry__proto__resource__v1__resource__init(res);
    res->attributes = th_arena_calloc(arena, MAX_ITEMS, sizeof(*res->attributes));
    va_list ap;
    va_start(ap, r);
    for (th_otlp_kv_t *kv; (kv = va_arg(ap, th_otlp_kv_t *)) != NULL;) {
        res->attributes[res->n_attributes++] = kv;
    }
    va_end(ap);
    rs->resource = res;
    th_otlp_scope_spans_t *ss = th_arena_calloc(arena, 1, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->spans = th_arena_calloc(arena, 4096, sizeof(*ss->spans));
    rs->scope_spans = th_arena_calloc(arena, 1, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    r->resource_spans[r->n_resource_spans++] = rs;
    return ss;
}

static uint8_t id_seq;

/* A span of @p dur_ns (negative: end before start), then a NULL-terminated attribute list. */
static th_otlp_span_t *add_span(th_otlp_scope_spans_t *ss, const char *name, int kind, int status,
                                int64_t dur_ns, ...)
{
    th_otlp_span_t *s = th_arena_calloc(arena, 1, sizeof(*s));
    opentelemetry__proto__trace__v1__span__init(s);
    s->name = (char *)name;
    s->kind = kind;
    s->start_time_unix_nano = 1700000000000000000ull;
    s->end_time_unix_nano = (uint64_t)((int64_t)s->start_time_unix_nano + dur_ns);
    uint8_t *tid = th_arena_calloc(arena, 1, 16);
    uint8_t *sid = th_arena_calloc(arena, 1, 8);
    id_seq++;
    memset(tid, id_seq, 16);
    memset(sid, id_seq, 8);
    s->trace_id.data = tid;
    s->trace_id.len = 16;
    s->span_id.data = sid;
    s->span_id.len = 8;
    if (status) {
        Opentelemetry__Proto__Trace__V1__Status *st = th_arena_calloc(arena, 1, sizeof(*st));
        opentelemetry__proto__trace__v1__status__init(st);
        st->code = status;
        s->status = st;
    }
    s->attributes = th_arena_calloc(arena, MAX_ITEMS, sizeof(*s->attributes));
    va_list ap;
    va_start(ap, dur_ns);
    for (th_otlp_kv_t *kv; (kv = va_arg(ap, th_otlp_kv_t *)) != NULL;) {
        s->attributes[s->n_attributes++] = kv;
    }
    va_end(ap);
    ss->spans[ss->n_spans++] = s;
    return s;
}

#define MS (1000000ll)

/* ---- Reading snapshots ------------------------------------------------------------------- */

static const char *attr(const struct th_metric_point *p, const char *key)
{
    for (size_t i = 0; i < p->n_attrs; i++) {
        if (!strcmp(p->attrs[i].key, key)) {
            return p->attrs[i].value;
        }
    }
    return NULL;
}

/* The point of metric @p mi (0 calls, 1 duration) in resource 0 whose attributes include the
 * NULL-terminated key/value pairs; fails when there is not exactly one. */
static const struct th_metric_point *point(const th_metrics_t *m, size_t mi, ...)
{
    assert_non_null(m);
    assert_true(m->n_resources >= 1);
    const struct th_metric *mt = &m->resources[0].scopes[0].metrics[mi];
    const struct th_metric_point *found = NULL;
    for (size_t i = 0; i < mt->n_points; i++) {
        const struct th_metric_point *p = &mt->points[i];
        va_list ap;
        va_start(ap, mi);
        bool match = true;
        for (const char *k; match && (k = va_arg(ap, const char *)) != NULL;) {
            const char *v = va_arg(ap, const char *);
            const char *have = attr(p, k);
            match = v ? have && !strcmp(have, v) : have == NULL;
        }
        va_end(ap);
        if (match) {
            if (found) {
                fail_msg("two points match");
            }
            found = p;
        }
    }
    if (!found) {
        fail_msg("no point matches in %s", mt->name);
    }
    return found;
}

static const double default_bounds[] = {2,   4,   6,    8,    10,   50,   100,   200,
                                        400, 800, 1000, 1400, 2000, 5000, 10000, 15000};

static struct th_span_metrics_agg_cfg base_cfg(void)
{
    struct th_span_metrics_agg_cfg c = {0};
    c.bounds = default_bounds;
    c.n_bounds = TH_ARRAY_SIZE(default_bounds);
    c.namespace_ = "traces.span.metrics";
    return c;
}

static struct th_span_metrics_dims dims(const char *yaml)
{
    th_node_t *node = NULL;
    char err[256];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", arena, &node, err, sizeof(err)), 0);
    struct th_span_metrics_dims d;
    const char *why = NULL;
    assert_int_equal(th_span_metrics_dims_decode(node, &d, &why), 0);
    return d;
}

static th_metrics_t *flush_at(th_span_metrics_agg_t *a, uint64_t now)
{
    th_metrics_t *m = NULL;
    assert_int_equal(th_span_metrics_agg_flush(a, now, now, &m), 0);
    return m;
}

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

/* ---- Dimensions ---------------------------------------------------------------------------- */

static void test_dimension_lookup_order(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.dims = dims("[{name: region, default: nowhere}, {name: http.status_code}, {name: zone}]");
    c.add_resource_attributes = true;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss =
        add_resource(r, kv_str("service.name", "svc"), kv_str("region", "res-region"), NULL);
    /* span attribute first */
    add_span(ss, "op", 2, 0, 5 * MS, kv_str("region", "span-region"),
             kv_int("http.status_code", 200), NULL);
    /* then the resource's */
    add_span(ss, "op", 2, 0, 5 * MS, kv_int("http.status_code", 200), NULL);
    /* then the default: another resource without region; http.status_code missing: omitted */
    th_otlp_scope_spans_t *ss2 = add_resource(r, kv_str("service.name", "svc"), NULL);
    add_span(ss2, "op", 2, 0, 5 * MS, NULL);
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    assert_int_equal(m->n_resources, 2);
    /* resource order is not fixed: look through both */
    int seen = 0;
    for (size_t ri = 0; ri < m->n_resources; ri++) {
        const struct th_metric *calls = &m->resources[ri].scopes[0].metrics[0];
        assert_string_equal(calls->name, "traces.span.metrics.calls");
        for (size_t i = 0; i < calls->n_points; i++) {
            const struct th_metric_point *p = &calls->points[i];
            const char *region = attr(p, "region");
            assert_non_null(region);
            assert_null(attr(p, "zone")); /* never present, no default: omitted */
            if (!strcmp(region, "span-region") || !strcmp(region, "res-region")) {
                assert_string_equal(attr(p, "http.status_code"), "200");
                seen |= !strcmp(region, "span-region") ? 1 : 2;
            } else {
                assert_string_equal(region, "nowhere");
                assert_null(attr(p, "http.status_code"));
                seen |= 4;
            }
            assert_string_equal(attr(p, "service.name"), "svc");
            assert_string_equal(attr(p, "span.name"), "op");
            assert_string_equal(attr(p, "span.kind"), "SPAN_KIND_SERVER");
            assert_string_equal(attr(p, "status.code"), "STATUS_CODE_UNSET");
            assert_true(p->value == 1);
            /* defaults first, in the Collector's order, then the configured ones */
            assert_string_equal(p->attrs[0].key, "service.name");
            assert_string_equal(p->attrs[3].key, "status.code");
            assert_string_equal(p->attrs[4].key, "region");
        }
    }
    assert_int_equal(seen, 7);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

/* Resources: one attribute-less resource by default; with add_resource_attributes, one per
 * distinct resource, told apart by resource_metrics_key_attributes when set. */
static void test_resources(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        static const char *const keys[] = {"service.name"};
        struct th_span_metrics_agg_cfg c = base_cfg();
        c.add_resource_attributes = mode > 0;
        if (mode == 2) {
            c.resource_key_attrs = keys;
            c.n_resource_key_attrs = 1;
        }
        th_span_metrics_agg_t *a;
        assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
        th_otlp_request_t *r = new_request();
        /* same attributes in another order: the same resource */
        add_span(add_resource(r, kv_str("service.name", "svc"), kv_str("host.name", "h1"), NULL),
                 "op", 2, 0, MS, NULL);
        add_span(add_resource(r, kv_str("host.name", "h1"), kv_str("service.name", "svc"), NULL),
                 "op", 2, 0, MS, NULL);
        add_span(add_resource(r, kv_str("service.name", "svc"), kv_str("host.name", "h2"), NULL),
                 "op", 2, 0, MS, NULL);
        assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
        th_metrics_t *m = flush_at(a, 100);
        static const size_t want[] = {1, 2, 1};
        assert_int_equal(m->n_resources, want[mode]);
        if (mode == 0) {
            assert_int_equal(m->resources[0].n_attrs, 0);
            assert_true(point(m, 0, NULL)->value == 3);
        } else {
            assert_int_equal(m->resources[0].n_attrs, 2); /* every attribute is kept */
        }
        th_metrics_release(m);
        th_span_metrics_agg_destroy(a);
    }
}

static void test_exclude_and_split_dimensions(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.exclude = 1u << 3; /* status.code */
    c.calls_dims = dims("[{name: user}]");
    c.hist_dims = dims("[{name: route, default: none}]");
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    add_span(ss, "op", 3, 2, 1 * MS, kv_str("user", "u1"), kv_str("route", "/a"), NULL);
    add_span(ss, "op", 3, 0, 1 * MS, kv_str("user", "u1"), kv_str("route", "/b"), NULL);
    add_span(ss, "op", 3, 1, 1 * MS, kv_str("user", "u2"), NULL);
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric *mt = m->resources[0].scopes[0].metrics;
    /* calls: by user (statuses merged since status.code is excluded), no route */
    assert_int_equal(mt[0].n_points, 2);
    const struct th_metric_point *p = point(m, 0, "user", "u1", NULL);
    assert_true(p->value == 2);
    assert_null(attr(p, "status.code"));
    assert_null(attr(p, "route"));
    assert_true(point(m, 0, "user", "u2", NULL)->value == 1);
    /* duration: by route (default for the third), no user */
    assert_int_equal(mt[1].n_points, 3);
    assert_int_equal(point(m, 1, "route", "/a", NULL)->count, 1);
    assert_int_equal(point(m, 1, "route", "none", NULL)->count, 1);
    assert_null(attr(point(m, 1, "route", "/b", NULL), "user"));
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

static void test_skipped_without_service_name(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("host.name", "h"), NULL);
    add_span(ss, "op", 2, 0, 1 * MS, kv_str("service.name", "on-the-span"), NULL);
    add_span(ss, "op", 2, 0, 1 * MS, NULL);
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    struct th_span_metrics_agg_stats st = th_span_metrics_agg_stats(a);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.spans, 0);
    assert_null(flush_at(a, 100)); /* nothing to send */
    th_span_metrics_agg_destroy(a);
}

/* ---- Histograms -------------------------------------------------------------------------- */

static void test_bucket_bounds(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    static const double b[] = {2, 4};
    c.bounds = b;
    c.n_bounds = 2;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    add_span(ss, "op", 2, 0, 2 * MS, NULL);     /* on the bound: le=2 */
    add_span(ss, "op", 2, 0, 2 * MS + 1, NULL); /* just above: le=4 */
    add_span(ss, "op", 2, 0, 4 * MS, NULL);     /* le=4 */
    add_span(ss, "op", 2, 0, 5 * MS, NULL);     /* +Inf */
    add_span(ss, "op", 2, 0, -3 * MS, NULL);    /* end before start: 0, le=2 */
    add_span(ss, "op", 2, 0, 0, NULL);          /* 0: le=2 */
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric *d = &m->resources[0].scopes[0].metrics[1];
    assert_string_equal(d->name, "traces.span.metrics.duration");
    assert_string_equal(d->unit, "ms");
    assert_int_equal(d->type, TH_METRIC_HISTOGRAM);
    assert_int_equal(d->n_bounds, 2);
    const struct th_metric_point *p = &d->points[0];
    assert_int_equal(p->n_buckets, 3);
    assert_int_equal(p->buckets[0], 3);
    assert_int_equal(p->buckets[1], 2);
    assert_int_equal(p->buckets[2], 1);
    assert_int_equal(p->count, 6);
    assert_true(fabs(p->sum - (2 + 2.000001 + 4 + 5)) < 1e-9);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

static void test_unit_seconds(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    static const double b[] = {0.5, 1};
    c.bounds = b;
    c.n_bounds = 2;
    c.unit_seconds = true;
    c.namespace_ = "";
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    add_span(ss, "op", 2, 0, 750 * MS, NULL);
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric *mt = m->resources[0].scopes[0].metrics;
    assert_string_equal(mt[0].name, "calls"); /* no namespace */
    assert_string_equal(mt[1].name, "duration");
    assert_string_equal(mt[1].unit, "s");
    assert_true(mt[1].points[0].sum == 0.75);
    assert_int_equal(mt[1].points[0].buckets[1], 1);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

static void add_n(th_span_metrics_agg_t *a, const char *name, int n, uint64_t mono);

static void test_histogram_disabled(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.histogram_disabled = true;
    c.hist_dims = dims("[{name: route}]"); /* no histogram: not a reason to split calls */
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    add_n(a, "op", 4, 1);
    th_metrics_t *m = flush_at(a, 100);
    assert_int_equal(m->resources[0].scopes[0].n_metrics, 1);
    assert_true(point(m, 0, NULL)->value == 4);
    assert_int_equal(th_span_metrics_agg_stats(a).series, 1);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

/* The index from its definition, with long double logarithms: base^i < v <= base^(i+1). */
static int64_t ref_index(double v, int scale)
{
    long double base_log = ldexpl(logl(2.0L), -scale); /* ln(base) */
    int64_t i = (int64_t)ceill(logl((long double)v) / base_log) - 1;
    /* settle rounding at the edges with exact powers */
    while (expl((long double)(i + 1) * base_log) < (long double)v) {
        i++;
    }
    while (i > INT64_MIN + 1 && expl((long double)i * base_log) >= (long double)v) {
        i--;
    }
    return i;
}

static void test_exponential_index(void **state)
{
    (void)state;
    srand(7);
    for (int scale = -4; scale <= 20; scale++) {
        for (int k = 0; k < 2000; k++) {
            /* values from 1e-3 to 1e6, away from bucket edges by a relative 1e-9 */
            double v = exp(((double)rand() / RAND_MAX) * 20.0 - 7.0);
            int64_t ref = ref_index(v, scale);
            long double base_log = ldexpl(logl(2.0L), -scale);
            long double lo = expl((long double)ref * base_log);
            long double hi = expl((long double)(ref + 1) * base_log);
            if (((long double)v - lo) / lo < 1e-9L || (hi - (long double)v) / hi < 1e-9L) {
                continue;
            }
            int64_t got = th_span_metrics_exp_index(v, scale);
            if (got != ref) {
                fail_msg("scale %d value %.17g: index %lld, expected %lld", scale, v,
                         (long long)got, (long long)ref);
            }
        }
        /* exact powers of two sit at the top of their bucket */
        for (int e = -10; e <= 10; e++) {
            double v = ldexp(1.0, e);
            int64_t want = scale >= 0
                               ? (int64_t)e * ((int64_t)1 << scale) - 1
                               : (e - 1 >= 0 ? (e - 1) >> -scale : -((-(e - 1) - 1) >> -scale) - 1);
            assert_int_equal(th_span_metrics_exp_index(v, scale), want);
        }
    }
}

static void test_exponential_histogram(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.exponential = true;
    c.exp_max_size = 8;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    static const int64_t durs_us[] = {1500, 1700, 2500, 40000, 900, 123456, 7000000, 0, 3000};
    double sum = 0;
    for (size_t i = 0; i < TH_ARRAY_SIZE(durs_us); i++) {
        add_span(ss, "op", 2, 0, durs_us[i] * 1000, NULL);
        sum += (double)durs_us[i] / 1000.0;
    }
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric *d = &m->resources[0].scopes[0].metrics[1];
    assert_int_equal(d->type, TH_METRIC_EXP_HISTOGRAM);
    const struct th_metric_point *p = &d->points[0];
    assert_true(p->n_buckets <= 8);
    assert_true(p->scale < TH_SPAN_METRICS_EXP_MAX_SCALE); /* it had to drop */
    assert_int_equal(p->zero_count, 1);
    assert_int_equal(p->count, TH_ARRAY_SIZE(durs_us));
    assert_true(fabs(p->sum - sum) < 1e-6);
    /* every value is counted in the bucket its index says at the final scale */
    uint64_t want[64] = {0};
    for (size_t i = 0; i < TH_ARRAY_SIZE(durs_us); i++) {
        if (durs_us[i] == 0) {
            continue;
        }
        int64_t idx = ref_index((double)durs_us[i] / 1000.0, p->scale);
        assert_true(idx >= p->offset && idx < p->offset + (int64_t)p->n_buckets);
        want[idx - p->offset]++;
    }
    for (size_t i = 0; i < p->n_buckets; i++) {
        assert_int_equal(p->buckets[i], want[i]);
    }
    /* and the scale is the finest at which the range fits in 8 buckets */
    int64_t lo = ref_index(0.9, p->scale + 1), hi = ref_index(7000.0, p->scale + 1);
    assert_true(hi - lo + 1 > 8);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

/* ---- Temporality, overflow, exemplars ---------------------------------------------------- */

static void add_n(th_span_metrics_agg_t *a, const char *name, int n, uint64_t mono)
{
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    for (int i = 0; i < n; i++) {
        add_span(ss, name, 2, 0, 3 * MS, NULL);
    }
    assert_int_equal(th_span_metrics_agg_add(a, r, mono, mono), 0);
}

static void test_cumulative(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    add_n(a, "op", 3, 10);
    th_metrics_t *m1 = flush_at(a, 100);
    const struct th_metric_point *p1 = point(m1, 0, NULL);
    assert_true(p1->value == 3);
    assert_int_equal(p1->start_ns, 10);
    assert_int_equal(p1->time_ns, 100);
    assert_int_equal(m1->resources[0].scopes[0].metrics[0].temporality, TH_TEMPORALITY_CUMULATIVE);
    assert_true(m1->resources[0].scopes[0].metrics[0].monotonic);
    add_n(a, "op", 2, 150);
    th_metrics_t *m2 = flush_at(a, 200);
    const struct th_metric_point *p2 = point(m2, 0, NULL);
    assert_true(p2->value == 5);
    assert_int_equal(p2->start_ns, 10); /* the start stays */
    assert_int_equal(point(m2, 1, NULL)->count, 5);
    /* an idle interval still reports the totals */
    th_metrics_t *m3 = flush_at(a, 300);
    assert_true(point(m3, 0, NULL)->value == 5);
    /* the first snapshot is untouched by later flushes (it owns its memory) */
    assert_true(p1->value == 3);
    th_metrics_release(m1);
    th_metrics_release(m2);
    th_metrics_release(m3);
    th_span_metrics_agg_destroy(a);
}

static void test_delta(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.delta = true;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    add_n(a, "op", 3, 10);
    th_metrics_t *m1 = flush_at(a, 100);
    assert_true(point(m1, 0, NULL)->value == 3);
    assert_int_equal(point(m1, 0, NULL)->start_ns, 10);
    assert_int_equal(m1->resources[0].scopes[0].metrics[1].temporality, TH_TEMPORALITY_DELTA);
    add_n(a, "op", 2, 150);
    th_metrics_t *m2 = flush_at(a, 200);
    const struct th_metric_point *p = point(m2, 0, NULL);
    assert_true(p->value == 2);
    assert_int_equal(p->start_ns, 100); /* from the previous flush */
    assert_int_equal(p->time_ns, 200);
    const struct th_metric_point *h = point(m2, 1, NULL);
    assert_int_equal(h->count, 2);
    assert_int_equal(h->buckets[1], 2); /* 3ms: le=4 */
    assert_true(h->sum == 6);
    /* nothing new: nothing to send */
    assert_null(flush_at(a, 300));
    assert_int_equal(th_span_metrics_agg_stats(a).series, 0);
    th_metrics_release(m1);
    th_metrics_release(m2);
    th_span_metrics_agg_destroy(a);
}

static void test_cardinality_overflow(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.cardinality_limit = 2;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    add_n(a, "a", 1, 1);
    add_n(a, "b", 2, 1);
    add_n(a, "c", 3, 1); /* beyond the limit */
    add_n(a, "d", 4, 1); /* beyond the limit */
    add_n(a, "a", 1, 1); /* known: still its own series */
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric *calls = &m->resources[0].scopes[0].metrics[0];
    assert_int_equal(calls->n_points, 3);
    assert_true(point(m, 0, "span.name", "a", NULL)->value == 2);
    assert_true(point(m, 0, "span.name", "b", NULL)->value == 2);
    const struct th_metric_point *o = point(m, 0, "otel.metric.overflow", "true", NULL);
    assert_true(o->value == 7);
    assert_int_equal(o->n_attrs, 1);
    assert_int_equal(point(m, 1, "otel.metric.overflow", "true", NULL)->count, 7);
    assert_int_equal(th_span_metrics_agg_stats(a).overflowed, 7);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

static void test_exemplars(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.exemplars = true;
    c.max_exemplars = 2;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    th_otlp_span_t *s1 = add_span(ss, "op", 2, 0, 1 * MS, NULL);
    th_otlp_span_t *s2 = add_span(ss, "op", 2, 0, 7 * MS, NULL);
    th_otlp_span_t *s3 = add_span(ss, "op", 2, 0, 60 * MS, NULL);
    (void)s1;
    assert_int_equal(th_span_metrics_agg_add(a, r, 1, 1), 0);
    th_metrics_t *m = flush_at(a, 100);
    const struct th_metric_point *h = point(m, 1, NULL);
    assert_int_equal(h->n_exemplars, 2); /* the newest two */
    assert_memory_equal(h->exemplars[0].trace_id, s2->trace_id.data, 16);
    assert_memory_equal(h->exemplars[0].span_id, s2->span_id.data, 8);
    assert_true(h->exemplars[0].value == 7);
    assert_memory_equal(h->exemplars[1].span_id, s3->span_id.data, 8);
    assert_true(h->exemplars[1].value == 60);
    assert_int_equal(h->exemplars[1].time_ns, s3->end_time_unix_nano);
    assert_int_equal(point(m, 0, NULL)->n_exemplars, 2);
    /* exemplars belong to one interval */
    add_n(a, "op", 0, 150);
    th_metrics_t *m2 = flush_at(a, 200);
    assert_int_equal(point(m2, 1, NULL)->n_exemplars, 0);
    th_metrics_release(m);
    th_metrics_release(m2);
    th_span_metrics_agg_destroy(a);
}

static void test_series_expiration(void **state)
{
    (void)state;
    struct th_span_metrics_agg_cfg c = base_cfg();
    c.series_expiration_ns = 1000;
    th_span_metrics_agg_t *a;
    assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
    add_n(a, "old", 1, 10);
    add_n(a, "new", 1, 900);
    th_metrics_t *m = NULL;
    assert_int_equal(th_span_metrics_agg_flush(a, 1500, 1500, &m), 0);
    assert_int_equal(m->resources[0].scopes[0].metrics[0].n_points, 2); /* reported once more */
    th_metrics_release(m);
    assert_int_equal(th_span_metrics_agg_flush(a, 1600, 1600, &m), 0);
    assert_int_equal(m->resources[0].scopes[0].metrics[0].n_points, 1);
    point(m, 0, "span.name", "new", NULL);
    th_metrics_release(m);
    th_span_metrics_agg_destroy(a);
}

/* ---- Out of memory ------------------------------------------------------------------------ */

static int allocs_left;

static void *fail_malloc(size_t n)
{
    return allocs_left-- > 0 ? malloc(n) : NULL;
}

static void *fail_calloc(size_t n, size_t m)
{
    return allocs_left-- > 0 ? calloc(n, m) : NULL;
}

static void *fail_realloc(void *p, size_t n)
{
    return allocs_left-- > 0 ? realloc(p, n) : NULL;
}

static const struct th_mem_methods failing = {fail_malloc, fail_calloc, fail_realloc, free};

/* Fail allocation N for N = 0, 1, 2, ... in add and flush until both succeed: every failure is
 * TH_ENOMEM, what was counted stays consistent, and nothing leaks (ASan). */
static void test_out_of_memory(void **state)
{
    (void)state;
    for (int n = 0;; n++) {
        struct th_span_metrics_agg_cfg c = base_cfg();
        c.exemplars = true;
        c.dims = dims("[{name: region, default: x}]");
        th_span_metrics_agg_t *a;
        assert_int_equal(th_span_metrics_agg_create(&c, &a), 0);
        th_otlp_request_t *r = new_request();
        th_otlp_scope_spans_t *ss =
            add_resource(r, kv_str("service.name", "svc"), kv_str("host", "h"), NULL);
        for (int i = 0; i < 40; i++) {
            add_span(ss, i % 2 ? "a" : "b", 2, 0, i * MS, kv_int("region", i % 5), NULL);
        }
        allocs_left = n;
        th_mem_set_methods(&failing);
        int ret = th_span_metrics_agg_add(a, r, 1, 1);
        th_metrics_t *m = NULL;
        int fret = ret == 0 ? th_span_metrics_agg_flush(a, 10, 10, &m) : TH_ENOMEM;
        th_mem_set_methods(NULL);
        if (ret == 0 && fret == 0) {
            assert_int_equal(m->resources[0].scopes[0].metrics[0].n_points, 10);
            th_metrics_release(m);
            th_span_metrics_agg_destroy(a);
            assert_true(n > 3);
            break;
        }
        assert_int_equal(ret == 0 ? fret : ret, TH_ENOMEM);
        assert_null(m);
        /* the state is usable afterwards: what was counted is reported */
        th_metrics_t *after = NULL;
        assert_int_equal(th_span_metrics_agg_flush(a, 20, 20, &after), 0);
        size_t spans = 0;
        for (size_t i = 0; after && i < after->resources[0].scopes[0].metrics[0].n_points; i++) {
            spans += (size_t)after->resources[0].scopes[0].metrics[0].points[i].value;
        }
        assert_int_equal(spans, th_span_metrics_agg_stats(a).spans);
        th_metrics_release(after);
        th_span_metrics_agg_destroy(a);
    }
}

/* ---- Config and the connector ----------------------------------------------------------- */

static int check_yaml(const char *yaml, struct th_span_metrics_cfg *cfg, char *err, size_t n)
{
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", arena, &node, err, n), 0);
    memset(cfg, 0, sizeof(*cfg));
    int ret = th_cfg_decode(th_connector_span_metrics_ops.config, node, cfg, arena,
                            "connectors::spanmetrics", err, n);
    if (ret != 0) {
        return ret;
    }
    const char *why = NULL;
    ret = th__span_metrics_config_check(cfg, &why);
    if (ret != 0) {
        snprintf(err, n, "%s", why);
    }
    return ret;
}

static void test_config(void **state)
{
    (void)state;
    struct th_span_metrics_cfg cfg;
    char err[512];
    assert_int_equal(check_yaml("{}", &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.namespace_, "traces.span.metrics");
    assert_int_equal(cfg.metrics_flush_interval, 60000000000ll);
    assert_int_equal(cfg.histogram.explicit_.buckets.n, 16);
    assert_string_equal(cfg.histogram.unit, "ms");
    assert_false(cfg.histogram.has_exponential);
    assert_int_equal(check_yaml("dimensions: [{name: a}, {name: a}]", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "failed validating dimensions: duplicate dimension name a");
    assert_int_equal(check_yaml("dimensions: [{name: span.kind}]", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "failed validating dimensions: duplicate dimension name span.kind");
    assert_int_equal(check_yaml("histogram: {explicit: {buckets: [1ms]}, exponential: {}}", &cfg,
                                err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "use either `explicit` or `exponential` buckets histogram");
    assert_int_equal(
        check_yaml("histogram: {explicit: {buckets: [5ms, 2ms]}}", &cfg, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "buckets must be ascending"));
    assert_int_equal(check_yaml("dimensions: [{name: x, glob: 'x.*'}]", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "glob dimensions are not supported"));
    assert_int_equal(check_yaml("histogram: {unit: us}", &cfg, err, sizeof(err)), TH_ECONFIG);
    assert_int_equal(check_yaml("aggregation_cardinality_limit: -1", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "invalid aggregation_cardinality_limit: -1"));
    assert_int_equal(check_yaml("histogram: {exponential: {max_size: 20}}", &cfg, err, sizeof(err)),
                     0);
    assert_true(cfg.histogram.has_exponential);
    assert_int_equal(cfg.histogram.exponential.max_size, 20);
}

struct capture {
    struct th_metrics_consumer base;
    th_metrics_t *last;
    int n;
};

static int on_metrics(struct th_metrics_consumer *self, th_metrics_t *m)
{
    struct capture *c = (struct capture *)self;
    th_metrics_release(c->last);
    c->last = m;
    c->n++;
    return 0;
}

static void test_connector_flushes_at_shutdown(void **state)
{
    (void)state;
    struct th_span_metrics_cfg cfg;
    char err[512];
    assert_int_equal(check_yaml("metrics_flush_interval: 1h\n"
                                "dimensions: [{name: http.method, default: GET}]",
                                &cfg, err, sizeof(err)),
                     0);
    struct capture cap = {.base.consume = on_metrics};
    struct th_component *c = NULL;
    assert_int_equal(th_component_create_metrics(&th_connector_span_metrics_ops, "spanmetrics",
                                                 &cfg, &cap.base, &c),
                     0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct th_host host = {.loop = &loop};
    assert_int_equal(c->ops->start(c, &host), 0);
    c->started = true;
    th_arena_t *ba = th_arena_create(0, 0);
    th_arena_t *saved = arena;
    arena = ba;
    th_otlp_request_t *r = new_request();
    th_otlp_scope_spans_t *ss = add_resource(r, kv_str("service.name", "svc"), NULL);
    add_span(ss, "op", 2, 2, 3 * MS, NULL);
    add_span(ss, "op", 2, 2, 3 * MS, NULL);
    arena = saved;
    th_batch_t *b = th_batch_create(ba, r);
    b->span_count = 2;
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    assert_int_equal(cap.n, 0); /* nothing before the interval */
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(cap.n, 1); /* the final flush */
    const struct th_metric_point *p =
        point(cap.last, 0, "status.code", "STATUS_CODE_ERROR", "http.method", "GET", NULL);
    assert_true(p->value == 2);
    assert_int_equal(c->stats.accepted, 2);
    th_component_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    th_metrics_release(cap.last);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dimension_lookup_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclude_and_split_dimensions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped_without_service_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exponential_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exponential_histogram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cardinality_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exemplars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_expiration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connector_flushes_at_shutdown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
