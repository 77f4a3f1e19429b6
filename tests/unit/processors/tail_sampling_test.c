/*
 * Unit tests of the tail sampling component (processors/tail_sampling, not its policies):
 * the real component created from YAML config, driven on a real libuv loop into a capturing
 * consumer. Grouping of interleaved traces, decisions at decision_wait after the first span
 * (and not later), late spans following the cached decision both ways, a root arriving last,
 * decision_wait_after_root_received, num_traces overflow deciding the oldest early,
 * maximum_trace_size_bytes, max_buffer_bytes backpressure (TH_ERETRY, nothing kept), a
 * downstream refusal retried on later ticks, shutdown flushing (or dropping) pending traces,
 * acks settled at ingest, every sampled trace forwarded whole under its own resource and
 * scope, a private copy for a mutating consumer, and config errors through the collector's
 * validate path.
 *
 * Spans are named "t<trace>s<span>", trace ids carry the trace number in their first four
 * bytes, and each resource and scope is named after the batch and position it came from, so
 * the capture can check where every forwarded span belongs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "processors/tail_sampling/tail_sampling.h"
#include "th/collector.h"
#include "th/log.h"

typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;
typedef Opentelemetry__Proto__Trace__V1__Status status_t;

#define MS 1000000LL

/* ---- Building batches --------------------------------------------------------------------- */

/** One span to put in a batch. */
struct sp {
    unsigned trace;   /* 1.. */
    unsigned span;    /* 0 is the root (no parent) */
    bool error;       /* status ERROR */
    unsigned res;     /* resource index in the batch (0..3) */
    unsigned scope;   /* scope index within the resource (0..3) */
    size_t pad_bytes; /* an attribute of this many bytes (maximum_trace_size_bytes) */
};

static unsigned batch_seq;

static void trace_id(unsigned trace, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        out[i] = (uint8_t)(0xa0 + i);
    }
    out[0] = (uint8_t)(trace >> 24);
    out[1] = (uint8_t)(trace >> 16);
    out[2] = (uint8_t)(trace >> 8);
    out[3] = (uint8_t)trace;
}

static char *fmt(th_arena_t *a, const char *f, unsigned x, unsigned y)
{
    char buf[64];
    snprintf(buf, sizeof(buf), f, x, y);
    return th_arena_strndup(a, buf, strlen(buf));
}

/* A batch holding @p n spans, grouped by the (res, scope) each names, in the order given. */
static th_batch_t *make_batch(const struct sp *v, size_t n)
{
    unsigned bno = ++batch_seq;
    th_arena_t *a = th_arena_create(0, 0);
    assert_non_null(a);
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    th_otlp_resource_spans_t *rsv[4] = {0};
    th_otlp_scope_spans_t *ssv[4][4] = {{0}};
    req->resource_spans = th_arena_calloc(a, 4, sizeof(*req->resource_spans));
    for (size_t i = 0; i < n; i++) {
        unsigned r = v[i].res;
        unsigned s = v[i].scope;
        assert_true(r < 4 && s < 4);
        if (!rsv[r]) {
            th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
            opentelemetry__proto__trace__v1__resource_spans__init(rs);
            resource_t *res = th_arena_alloc(a, sizeof(*res));
            opentelemetry__proto__resource__v1__resource__init(res);
            th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
            opentelemetry__proto__common__v1__key_value__init(kv);
            kv->key = th_arena_strndup(a, "service.name", 12);
            th_otlp_any_t *val = th_arena_alloc(a, sizeof(*val));
            opentelemetry__proto__common__v1__any_value__init(val);
            val->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            val->string_value = fmt(a, "b%u-r%u", bno, r);
            kv->value = val;
            res->n_attributes = 1;
            res->attributes = th_arena_alloc(a, sizeof(*res->attributes));
            res->attributes[0] = kv;
            rs->resource = res;
            rs->scope_spans = th_arena_calloc(a, 4, sizeof(*rs->scope_spans));
            rsv[r] = rs;
            req->resource_spans[req->n_resource_spans++] = rs;
        }
        if (!ssv[r][s]) {
            th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
            opentelemetry__proto__trace__v1__scope_spans__init(ss);
            scope_t *sc = th_arena_alloc(a, sizeof(*sc));
            opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
            sc->name = fmt(a, "scope-r%u-s%u", r, s);
            ss->scope = sc;
            ss->spans = th_arena_calloc(a, n, sizeof(*ss->spans));
            ssv[r][s] = ss;
            rsv[r]->scope_spans[rsv[r]->n_scope_spans++] = ss;
        }
        th_otlp_span_t *span = th_arena_alloc(a, sizeof(*span));
        opentelemetry__proto__trace__v1__span__init(span);
        uint8_t *tid = th_arena_alloc(a, 16);
        trace_id(v[i].trace, tid);
        span->trace_id = (ProtobufCBinaryData){.data = tid, .len = 16};
        uint8_t *sid = th_arena_alloc(a, 8);
        memset(sid, 0, 8);
        sid[0] = 1;
        sid[6] = (uint8_t)v[i].span;
        sid[7] = (uint8_t)v[i].trace;
        span->span_id = (ProtobufCBinaryData){.data = sid, .len = 8};
        if (v[i].span != 0) {
            uint8_t *pid = th_arena_alloc(a, 8);
            memset(pid, 0, 8);
            pid[0] = 1;
            pid[7] = (uint8_t)v[i].trace;
            span->parent_span_id = (ProtobufCBinaryData){.data = pid, .len = 8};
        }
        span->name = fmt(a, "t%us%u", v[i].trace, v[i].span);
        span->start_time_unix_nano = 1700000000000000000ull + v[i].span * 1000;
        span->end_time_unix_nano = span->start_time_unix_nano + 500;
        if (v[i].error) {
            status_t *st = th_arena_alloc(a, sizeof(*st));
            opentelemetry__proto__trace__v1__status__init(st);
            st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
            span->status = st;
        }
        if (v[i].pad_bytes) {
            th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
            opentelemetry__proto__common__v1__key_value__init(kv);
            kv->key = th_arena_strndup(a, "pad", 3);
            th_otlp_any_t *val = th_arena_alloc(a, sizeof(*val));
            opentelemetry__proto__common__v1__any_value__init(val);
            val->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            char *pad = th_arena_alloc(a, v[i].pad_bytes + 1);
            memset(pad, 'x', v[i].pad_bytes);
            pad[v[i].pad_bytes] = '\0';
            val->string_value = pad;
            kv->value = val;
            span->n_attributes = 1;
            span->attributes = th_arena_alloc(a, sizeof(*span->attributes));
            span->attributes[0] = kv;
        }
        ssv[r][s]->spans[ssv[r][s]->n_spans++] = span;
    }
    th_batch_t *b = th_batch_create(a, req);
    assert_non_null(b);
    return b;
}

/* Every span of traces first..last (inclusive), spans 0..per-1, one resource and scope. */
static th_batch_t *make_traces(unsigned first, unsigned last, unsigned per, bool error)
{
    struct sp v[512];
    size_t n = 0;
    for (unsigned t = first; t <= last; t++) {
        for (unsigned s = 0; s < per; s++) {
            assert_true(n < 512);
            v[n++] = (struct sp){.trace = t, .span = s, .error = error && s == per - 1};
        }
    }
    return make_batch(v, n);
}

/* ---- Acks ---------------------------------------------------------------------------------- */

struct ack_rec {
    int settled;
    int result;
};

static void on_settled(th_ack_t *ack, int result)
{
    struct ack_rec *r = ack->data;
    r->settled++;
    r->result = result;
}

/* Attach an ack and give up the creator's reference (as a receiver does after consume). */
static void attach_ack(th_batch_t *b, struct ack_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    th_ack_t *ack = th_ack_create(on_settled, rec);
    assert_non_null(ack);
    assert_int_equal(th_batch_add_ack(b, ack), 0);
    th_ack_settle(ack, 0);
}

/* ---- The capturing consumer ---------------------------------------------------------------- */

#define MAX_SPANS 8192

struct got {
    unsigned trace, span;
    char res[32], scope[32];
    const th_otlp_span_t *ptr;
};

struct capture {
    struct th_consumer base;
    int ret;      /* what consume answers */
    size_t calls; /* batches taken (whatever the answer) */
    size_t n;     /* spans recorded (only from batches answered with 0) */
    struct got v[MAX_SPANS];
    bool mutate; /* rename every span, as a mutating processor would */
};

static const char *attr_str(const resource_t *r)
{
    return r && r->n_attributes ? r->attributes[0]->value->string_value : "";
}

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *cap = (struct capture *)self;
    cap->calls++;
    assert_int_equal(b->span_count, th_otlp_request_span_count(b->req));
    if (cap->ret == 0) {
        for (size_t i = 0; i < b->req->n_resource_spans; i++) {
            const th_otlp_resource_spans_t *rs = b->req->resource_spans[i];
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
                for (size_t k = 0; k < ss->n_spans; k++) {
                    th_otlp_span_t *span = ss->spans[k];
                    assert_true(cap->n < MAX_SPANS);
                    struct got *g = &cap->v[cap->n++];
                    assert_int_equal(sscanf(span->name, "t%us%u", &g->trace, &g->span), 2);
                    snprintf(g->res, sizeof(g->res), "%s", attr_str(rs->resource));
                    snprintf(g->scope, sizeof(g->scope), "%s", ss->scope->name);
                    g->ptr = span;
                    /* the trace id matches the name */
                    uint8_t id[16];
                    trace_id(g->trace, id);
                    assert_memory_equal(span->trace_id.data, id, 16);
                    if (cap->mutate) {
                        span->name[0] = 'T';
                    }
                }
            }
        }
    }
    th_batch_release(b);
    return cap->ret;
}

/* @return spans captured of trace @p t. */
static size_t spans_of(const struct capture *cap, unsigned t)
{
    size_t n = 0;
    for (size_t i = 0; i < cap->n; i++) {
        n += cap->v[i].trace == t;
    }
    return n;
}

/* Trace @p t came out whole: each of spans 0..per-1 exactly once. */
static void assert_whole(const struct capture *cap, unsigned t, unsigned per)
{
    for (unsigned s = 0; s < per; s++) {
        size_t seen = 0;
        for (size_t i = 0; i < cap->n; i++) {
            seen += cap->v[i].trace == t && cap->v[i].span == s;
        }
        if (seen != 1) {
            fail_msg("trace %u span %u forwarded %zu times", t, s, seen);
        }
    }
    assert_int_equal(spans_of(cap, t), per);
}

/* ---- The component on a real loop ---------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct th_host host;
    th_arena_t *arena;
    struct th_component *c;
    struct capture cap;
    bool started;
};

static struct th_component *no_ext(struct th_host *h, const char *id)
{
    (void)h;
    (void)id;
    return NULL;
}

static void no_fatal(struct th_host *h, struct th_component *c, int err)
{
    (void)h;
    fail_msg("%s reported a fatal error: %s", c->id, th_strerror(err));
}

/* The policies most tests use: sample traces with an error span. */
#define ERRORS_POLICY                                                                              \
    "policies:\n"                                                                                  \
    "  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n"

static int decode_cfg(const char *yaml, th_arena_t *a, struct th_tail_sampling_cfg *cfg, char *err,
                      size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret != 0) {
        return ret;
    }
    ret = th_cfg_decode(th_processor_tail_sampling_ops.config, node, cfg, a,
                        "processors::tail_sampling", err, errlen);
    if (ret != 0) {
        return ret;
    }
    const char *why = NULL;
    ret = th_processor_tail_sampling_ops.config_check(cfg, &why);
    if (ret != 0) {
        snprintf(err, errlen, "%s", why);
    }
    return ret;
}

static struct fx *fx_new(const char *yaml, unsigned caps, bool start)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->host = (struct th_host){.loop = &f->loop, .get_extension = no_ext, .report_fatal = no_fatal};
    f->cap.base.consume = capture_consume;
    f->cap.base.caps = caps;
    f->arena = th_arena_create(0, 0);
    struct th_tail_sampling_cfg *cfg = th_arena_calloc(f->arena, 1, sizeof(*cfg));
    char err[512] = "";
    if (decode_cfg(yaml, f->arena, cfg, err, sizeof(err)) != 0) {
        fail_msg("config: %s", err);
    }
    assert_int_equal(th_component_create(&th_processor_tail_sampling_ops, "tail_sampling/t", cfg,
                                         &f->cap.base, &f->c),
                     0);
    if (start) {
        f->c->host = &f->host;
        assert_int_equal(f->c->ops->start(f->c, &f->host), 0);
        f->c->started = true;
        f->started = true;
    }
    return f;
}

static int fx_consume(struct fx *f, th_batch_t *b)
{
    return th_consumer_consume(&f->c->consumer, b);
}

static const struct th_tail_sampling_stats *fx_stats(struct fx *f)
{
    return th_tail_sampling_stats(f->c);
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Run the loop for @p ms milliseconds. */
static void run_for(struct fx *f, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, on_stop, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void fx_shutdown(struct fx *f)
{
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    f->c->shut_down = true;
}

static void fx_free(struct fx *f)
{
    th_component_destroy(f->c);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the closed timer frees itself */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    th_arena_destroy(f->arena);
    free(f);
}

/* ---- Tests ----------------------------------------------------------------------------------- */

/* Three traces interleaved over two batches; the two with an error come out whole, in one
 * tick, after decision_wait; the third does not. */
static void test_grouping_interleaved(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 200ms\n" ERRORS_POLICY, 0, true);
    struct sp b1[] = {{.trace = 1, .span = 0},
                      {.trace = 2, .span = 0},
                      {.trace = 3, .span = 0},
                      {.trace = 1, .span = 1},
                      {.trace = 2, .span = 1, .error = true},
                      {.trace = 3, .span = 1}};
    struct sp b2[] = {{.trace = 3, .span = 2, .error = true},
                      {.trace = 1, .span = 2},
                      {.trace = 2, .span = 2},
                      {.trace = 1, .span = 3},
                      {.trace = 3, .span = 3}};
    assert_int_equal(fx_consume(f, make_batch(b1, 6)), TH_HELD);
    assert_int_equal(fx_consume(f, make_batch(b2, 5)), TH_HELD);
    assert_int_equal(fx_stats(f)->traces_on_memory, 3);
    assert_int_equal(fx_stats(f)->new_trace_id_received, 3);
    assert_int_equal(f->cap.calls, 0);
    run_for(f, 400);
    assert_int_equal(f->cap.calls, 1); /* one tick, one batch */
    assert_whole(&f->cap, 2, 3);
    assert_whole(&f->cap, 3, 4);
    assert_int_equal(spans_of(&f->cap, 1), 0);
    assert_int_equal(f->cap.n, 7);
    const struct th_tail_sampling_stats *s = fx_stats(f);
    assert_int_equal(s->traces_sampled, 2);
    assert_int_equal(s->traces_not_sampled, 1);
    assert_int_equal(s->traces_on_memory, 0);
    assert_int_equal(s->buffer_bytes, 0);
    assert_int_equal(s->spans_sampled, 7);
    assert_int_equal(f->c->stats.accepted, 11);
    assert_int_equal(f->c->stats.dropped, 4);
    assert_int_equal(s->n_policies, 1);
    assert_string_equal(s->policies[0].name, "t.errors");
    fx_free(f);
}

/* Decided decision_wait after the FIRST span: a span in between does not extend the wait;
 * a span after the decision follows it (forwarded at once, in its own batch). */
static void test_decision_wait_from_first_span(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 300ms\n" ERRORS_POLICY, 0, true);
    uint64_t t0 = th_now_mono_ns();
    struct sp a[] = {{.trace = 7, .span = 0, .error = true}};
    assert_int_equal(fx_consume(f, make_batch(a, 1)), TH_HELD);
    run_for(f, 200);
    assert_int_equal(f->cap.calls, 0);
    struct sp b[] = {{.trace = 7, .span = 1}};
    assert_int_equal(fx_consume(f, make_batch(b, 1)), TH_HELD);
    /* still due at t0 + 300ms (+ up to 50ms of grouping), not at t0 + 500ms */
    while (f->cap.calls == 0 && th_now_mono_ns() - t0 < 2000 * MS) {
        run_for(f, 10);
    }
    uint64_t took = th_now_mono_ns() - t0;
    assert_int_equal(f->cap.calls, 1);
    assert_true(took >= 299 * MS);
    assert_true(took < 480 * MS);
    assert_whole(&f->cap, 7, 2);
    /* late: forwarded within consume */
    struct sp c[] = {{.trace = 7, .span = 2}};
    assert_int_equal(fx_consume(f, make_batch(c, 1)), 0);
    assert_int_equal(f->cap.calls, 2);
    assert_whole(&f->cap, 7, 3);
    assert_int_equal(fx_stats(f)->late_spans, 1);
    assert_int_equal(fx_stats(f)->early_releases_sampled, 1);
    const struct th_tail_sampling_stats *s = fx_stats(f);
    assert_int_equal(s->decisions, 1);
    assert_true(s->decision_latency_ns >= 299 * MS);
    fx_free(f);
}

/* Late spans follow the cached decision both ways, with the default caches (0: the last
 * num_traces decisions) and with explicit sizes; after eviction a span starts a new trace. */
static void test_late_spans_follow_decision(void **state)
{
    (void)state;
    const char *cfgs[] = {
        "decision_wait: 100ms\n" ERRORS_POLICY,
        "decision_wait: 100ms\ndecision_cache: {sampled_cache_size: 2, non_sampled_cache_size: "
        "2}\n" ERRORS_POLICY,
    };
    for (size_t k = 0; k < 2; k++) {
        struct fx *f = fx_new(cfgs[k], 0, true);
        struct sp a[] = {{.trace = 1, .span = 0, .error = true}, {.trace = 2, .span = 0}};
        fx_consume(f, make_batch(a, 2));
        run_for(f, 250);
        assert_int_equal(f->cap.n, 1);
        /* sampled trace 1: forwarded at once; not-sampled trace 2: dropped */
        struct sp late[] = {{.trace = 1, .span = 1},
                            {.trace = 2, .span = 1},
                            {.trace = 1, .span = 2},
                            {.trace = 2, .span = 2, .error = true}};
        assert_int_equal(fx_consume(f, make_batch(late, 4)), 0);
        assert_whole(&f->cap, 1, 3);
        assert_int_equal(spans_of(&f->cap, 2), 0);
        const struct th_tail_sampling_stats *s = fx_stats(f);
        assert_int_equal(s->late_spans, 4);
        assert_int_equal(s->early_releases_sampled, 2);
        assert_int_equal(s->early_releases_not_sampled, 2);
        assert_int_equal(s->traces_on_memory, 0);
        if (k == 1) {
            /* Two more not-sampled decisions evict trace 2 from its cache of 2. */
            struct sp more[] = {{.trace = 3, .span = 0}, {.trace = 4, .span = 0}};
            fx_consume(f, make_batch(more, 2));
            run_for(f, 250);
            struct sp again[] = {{.trace = 2, .span = 3, .error = true}};
            assert_int_equal(fx_consume(f, make_batch(again, 1)), TH_HELD);
            assert_int_equal(fx_stats(f)->traces_on_memory, 1);
        }
        fx_free(f);
    }
}

/* The root span arrives last, before the deadline: the trace is whole. */
static void test_root_arrives_last(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 200ms\n" ERRORS_POLICY, 0, true);
    struct sp kids[] = {
        {.trace = 5, .span = 3, .error = true}, {.trace = 5, .span = 2}, {.trace = 5, .span = 1}};
    fx_consume(f, make_batch(kids, 3));
    run_for(f, 80);
    struct sp root[] = {{.trace = 5, .span = 0}};
    fx_consume(f, make_batch(root, 1));
    run_for(f, 300);
    assert_int_equal(f->cap.calls, 1);
    assert_whole(&f->cap, 5, 4);
    fx_free(f);
}

/* decision_wait_after_root_received decides a trace early once its root is in; one without
 * a root waits for decision_wait. */
static void test_decision_after_root(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 5s\ndecision_wait_after_root_received: 100ms\n"
                          "policies: [{name: all, type: always_sample}]\n",
                          0, true);
    struct sp a[] = {{.trace = 1, .span = 1}, {.trace = 2, .span = 1}, {.trace = 1, .span = 0}};
    fx_consume(f, make_batch(a, 3));
    run_for(f, 300);
    assert_whole(&f->cap, 1, 2);
    assert_int_equal(spans_of(&f->cap, 2), 0);
    assert_int_equal(fx_stats(f)->traces_on_memory, 1);
    /* the root arriving later moves trace 2 too */
    struct sp b[] = {{.trace = 2, .span = 0}};
    fx_consume(f, make_batch(b, 1));
    run_for(f, 300);
    assert_whole(&f->cap, 2, 2);
    assert_int_equal(fx_stats(f)->traces_on_memory, 0);
    fx_free(f);
}

/* num_traces reached: the oldest trace is decided early with what it has, and counted. */
static void test_num_traces_overflow(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 10s\nnum_traces: 3\n"
                          "policies: [{name: all, type: always_sample}]\n",
                          0, true);
    fx_consume(f, make_traces(1, 3, 2, false));
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(fx_consume(f, make_traces(4, 5, 2, false)), TH_HELD);
    /* traces 1 and 2 made room, decided early and forwarded within consume */
    assert_int_equal(f->cap.calls, 1);
    assert_whole(&f->cap, 1, 2);
    assert_whole(&f->cap, 2, 2);
    assert_int_equal(f->cap.n, 4);
    const struct th_tail_sampling_stats *s = fx_stats(f);
    assert_int_equal(s->traces_decided_early, 2);
    assert_int_equal(s->trace_dropped_too_early, 0);
    assert_int_equal(s->traces_on_memory, 3);
    fx_shutdown(f);
    assert_int_equal(f->cap.n, 10);
    fx_free(f);
}

/* With block_on_overflow, a batch bringing new traces past num_traces is refused whole. */
static void test_block_on_overflow(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 10s\nnum_traces: 3\nblock_on_overflow: true\n"
                          "policies: [{name: all, type: always_sample}]\n",
                          0, true);
    fx_consume(f, make_traces(1, 3, 2, false));
    struct ack_rec rec;
    th_batch_t *b = make_traces(3, 4, 2, false);
    attach_ack(b, &rec);
    assert_int_equal(fx_consume(f, b), TH_ERETRY);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, TH_ERETRY);
    assert_int_equal(fx_stats(f)->traces_on_memory, 3);
    assert_int_equal(fx_stats(f)->batches_refused, 1);
    /* spans of pending traces only: taken */
    assert_int_equal(fx_consume(f, make_traces(2, 3, 1, false)), TH_HELD);
    fx_free(f);
}

/* maximum_trace_size_bytes: decided not sampled at once (even with an error), later spans
 * dropped. */
static void test_maximum_trace_size(void **state)
{
    (void)state;
    struct fx *f =
        fx_new("decision_wait: 10s\nmaximum_trace_size_bytes: 1000\n" ERRORS_POLICY, 0, true);
    struct sp a[] = {{.trace = 1, .span = 0, .error = true, .pad_bytes = 400},
                     {.trace = 2, .span = 0, .error = true},
                     {.trace = 1, .span = 1, .error = false, .pad_bytes = 400}};
    assert_int_equal(fx_consume(f, make_batch(a, 3)), TH_HELD);
    assert_int_equal(fx_stats(f)->traces_on_memory, 2);
    struct sp b[] = {{.trace = 1, .span = 2, .error = false, .pad_bytes = 400},
                     {.trace = 1, .span = 3}};
    assert_int_equal(fx_consume(f, make_batch(b, 2)), 0);
    const struct th_tail_sampling_stats *s = fx_stats(f);
    assert_int_equal(s->traces_dropped_too_large, 1);
    assert_int_equal(s->traces_on_memory, 1);
    assert_int_equal(s->late_spans, 1); /* span 3 came after the decision */
    fx_shutdown(f);
    assert_int_equal(spans_of(&f->cap, 1), 0);
    assert_whole(&f->cap, 2, 1);
    fx_free(f);
}

/* max_buffer_bytes: past it the oldest traces are decided early; when the next consumer
 * refuses too, the batch is refused with TH_ERETRY and nothing of it is kept. */
static void test_max_buffer_bytes(void **state)
{
    (void)state;
    /* each test batch has a 16 KiB arena: two fit, a third does not */
    struct fx *f = fx_new("decision_wait: 10s\nmax_buffer_bytes: 40KiB\n"
                          "policies: [{name: all, type: always_sample}]\n",
                          0, true);
    fx_consume(f, make_traces(1, 2, 2, false));
    fx_consume(f, make_traces(3, 4, 2, false));
    assert_int_equal(f->cap.calls, 0);
    assert_true(fx_stats(f)->buffer_bytes <= 40 * 1024);
    assert_int_equal(fx_consume(f, make_traces(5, 6, 2, false)), TH_HELD);
    /* the first batch's traces were decided early to make room */
    assert_int_equal(fx_stats(f)->traces_decided_early, 2);
    assert_whole(&f->cap, 1, 2);
    assert_whole(&f->cap, 2, 2);
    assert_true(fx_stats(f)->buffer_bytes <= 40 * 1024);
    /* now downstream refuses: what is decided early waits to be retried and counts */
    f->cap.ret = TH_ERETRY;
    assert_int_equal(fx_consume(f, make_traces(7, 8, 2, false)), TH_HELD);
    uint64_t traces_before = fx_stats(f)->new_trace_id_received;
    size_t pending_before = fx_stats(f)->traces_on_memory;
    struct ack_rec rec;
    th_batch_t *b = make_traces(9, 10, 2, false);
    attach_ack(b, &rec);
    assert_int_equal(fx_consume(f, b), TH_ERETRY);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, TH_ERETRY);
    assert_int_equal(fx_stats(f)->new_trace_id_received, traces_before);
    assert_int_equal(fx_stats(f)->traces_on_memory, pending_before);
    assert_true(fx_stats(f)->batches_refused >= 1);
    /* downstream recovers: the retry goes out and data flows again */
    f->cap.ret = 0;
    run_for(f, 300);
    assert_whole(&f->cap, 3, 2);
    assert_whole(&f->cap, 4, 2);
    assert_int_equal(fx_consume(f, make_traces(9, 10, 2, false)), TH_HELD);
    fx_shutdown(f);
    for (unsigned t = 1; t <= 10; t++) {
        assert_whole(&f->cap, t, 2);
    }
    fx_free(f);
}

/* A refused output is kept and retried on later ticks until taken; nothing is lost. */
static void test_downstream_refusal_retried(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 100ms\n" ERRORS_POLICY, 0, true);
    f->cap.ret = TH_ERETRY;
    fx_consume(f, make_traces(1, 3, 3, true));
    run_for(f, 400);
    assert_true(f->cap.calls >= 2); /* the first try and at least one retry */
    assert_int_equal(f->cap.n, 0);
    assert_true(fx_stats(f)->outputs_refused >= 2);
    assert_true(fx_stats(f)->buffer_bytes > 0); /* the kept output counts */
    /* a second tick's output waits behind the first */
    fx_consume(f, make_traces(4, 4, 2, true));
    run_for(f, 250);
    f->cap.ret = 0;
    run_for(f, 300);
    for (unsigned t = 1; t <= 3; t++) {
        assert_whole(&f->cap, t, 3);
    }
    assert_whole(&f->cap, 4, 2);
    assert_int_equal(f->cap.v[0].trace, 1); /* in order */
    assert_int_equal(fx_stats(f)->buffer_bytes, 0);
    assert_int_equal(fx_stats(f)->spans_failed, 0);
    fx_free(f);
}

/* Shutdown decides what is pending and forwards it before it returns, or drops it. */
static void test_shutdown_flushes(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 30s\n" ERRORS_POLICY, 0, true);
    fx_consume(f, make_traces(1, 4, 3, true));
    fx_consume(f, make_traces(5, 6, 2, false));
    fx_shutdown(f);
    for (unsigned t = 1; t <= 4; t++) {
        assert_whole(&f->cap, t, 3);
    }
    assert_int_equal(f->cap.n, 12);
    assert_int_equal(fx_stats(f)->traces_on_memory, 0);
    assert_int_equal(f->c->stats.dropped, 4);
    fx_shutdown(f); /* idempotent */
    assert_int_equal(fx_consume(f, make_traces(9, 9, 1, true)), TH_ESHUTDOWN);
    fx_free(f);

    f = fx_new("decision_wait: 30s\ndrop_pending_traces_on_shutdown: true\n" ERRORS_POLICY, 0,
               true);
    fx_consume(f, make_traces(1, 4, 3, true));
    fx_shutdown(f);
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(f->c->stats.dropped, 12);
    assert_int_equal(fx_stats(f)->trace_dropped_too_early, 4);
    fx_free(f);

    /* never started: shutdown is safe and still flushes */
    f = fx_new("decision_wait: 30s\n" ERRORS_POLICY, 0, false);
    fx_consume(f, make_traces(1, 1, 2, true));
    fx_shutdown(f);
    assert_whole(&f->cap, 1, 2);
    fx_free(f);
}

/* The senders are answered at ingest: acks settle while the spans are still buffered. */
static void test_acks_settled_at_ingest(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 30s\n" ERRORS_POLICY, 0, true);
    struct ack_rec rec;
    th_batch_t *b = make_traces(1, 2, 2, true);
    attach_ack(b, &rec);
    assert_int_equal(fx_consume(f, b), TH_HELD);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, 0);
    assert_int_equal(fx_stats(f)->traces_on_memory, 2);
    fx_free(f); /* destroy without shutdown releases everything (ASan/LSan check) */
}

/* Traces spread over two batches, each with two resources of two scopes: every sampled span
 * comes out once, under the resource and scope it was sent with. */
static void test_forwarded_whole_with_resource_and_scope(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 100ms\n" ERRORS_POLICY, 0, true);
    struct sp b1[16];
    struct sp b2[16];
    size_t n1 = 0;
    size_t n2 = 0;
    for (unsigned t = 1; t <= 4; t++) {
        for (unsigned s = 0; s < 4; s++) {
            struct sp x = {.trace = t,
                           .span = s,
                           .error = t != 4 && s == 3,
                           .res = s % 2,
                           .scope = (t + s) % 2};
            if (s < 2) {
                b1[n1++] = x;
            } else {
                b2[n2++] = x;
            }
        }
    }
    unsigned bno = batch_seq + 1;
    fx_consume(f, make_batch(b1, n1));
    fx_consume(f, make_batch(b2, n2));
    run_for(f, 300);
    assert_int_equal(f->cap.n, 12);
    for (size_t i = 0; i < f->cap.n; i++) {
        const struct got *g = &f->cap.v[i];
        char res[32];
        char scope[32];
        snprintf(res, sizeof(res), "b%u-r%u", g->span < 2 ? bno : bno + 1, g->span % 2);
        snprintf(scope, sizeof(scope), "scope-r%u-s%u", g->span % 2, (g->trace + g->span) % 2);
        assert_string_equal(g->res, res);
        assert_string_equal(g->scope, scope);
    }
    for (unsigned t = 1; t <= 3; t++) {
        assert_whole(&f->cap, t, 4);
    }
    fx_free(f);
}

/* A consumer that changes batches gets a private copy: its writes do not reach the spans
 * still shared with the buffer (the late span of the same batch stays intact). */
static void test_mutating_next_gets_copy(void **state)
{
    (void)state;
    struct fx *f = fx_new("decision_wait: 100ms\n" ERRORS_POLICY, TH_CAP_MUTATES, true);
    f->cap.mutate = true;
    th_batch_t *b = make_traces(1, 2, 2, true);
    th_batch_retain(b); /* keep it to look at after the decision */
    const th_otlp_span_t *orig = b->req->resource_spans[0]->scope_spans[0]->spans[0];
    fx_consume(f, b);
    run_for(f, 300);
    assert_int_equal(f->cap.n, 4);
    for (size_t i = 0; i < f->cap.n; i++) {
        assert_ptr_not_equal(f->cap.v[i].ptr, orig);
    }
    assert_string_equal(orig->name, "t1s0"); /* not renamed */
    th_batch_release(b);
    fx_free(f);
}

/* Config errors come out of the collector's validate path, with their key paths. */
static void test_config_errors(void **state)
{
    (void)state;
    static const char head[] = "receivers:\n  otlp:\n    protocols:\n      http:\n"
                               "exporters:\n  nop:\n"
                               "processors:\n  tail_sampling:\n";
    static const char tail[] = "service:\n  telemetry: {metrics: {level: none}}\n"
                               "  pipelines:\n    traces:\n      receivers: [otlp]\n"
                               "      processors: [tail_sampling]\n      exporters: [nop]\n";
    struct {
        const char *body;
        const char *want; /* in the message */
    } cases[] = {
        {"    decision_wait: 1s\n", "processors::tail_sampling::policies"},
        {"    policies:\n      - {name: '', type: always_sample}\n",
         "processors::tail_sampling::policies[0]"},
        {"    policies:\n      - {name: x, type: nope}\n", "unknown sampling policy type"},
        {"    sampling_strategy: span-ingest\n    policies: []\n",
         "processors::tail_sampling::sampling_strategy: span-ingest is not supported"},
        {"    tail_storage: ext\n    policies: []\n", "processors::tail_sampling::tail_storage"},
        {"    num_traces: 0\n    policies: []\n", "processors::tail_sampling::num_traces"},
        {"    decision_wiat: 1s\n    policies: []\n", "decision_wiat"},
        {"    policies: []\n", NULL},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml), "%s%s%s", head, cases[i].body, tail);
        th_config_t *cfg = NULL;
        char err[1024] = "";
        assert_int_equal(th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)), 0);
        th_collector_t *c = NULL;
        int ret = th_collector_create(cfg, NULL, &c, err, sizeof(err));
        if (!cases[i].want) {
            if (ret != 0) {
                fail_msg("case %zu: %s", i, err);
            }
            th_collector_destroy(c);
            continue;
        }
        assert_int_not_equal(ret, 0);
        if (!strstr(err, cases[i].want)) {
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].want);
        }
    }
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouping_interleaved),
        cmocka_unit_test(test_decision_wait_from_first_span),
        cmocka_unit_test(test_late_spans_follow_decision),
        cmocka_unit_test(test_root_arrives_last),
        cmocka_unit_test(test_decision_after_root),
        cmocka_unit_test(test_num_traces_overflow),
        cmocka_unit_test(test_block_on_overflow),
        cmocka_unit_test(test_maximum_trace_size),
        cmocka_unit_test(test_max_buffer_bytes),
        cmocka_unit_test(test_downstream_refusal_retried),
        cmocka_unit_test(test_shutdown_flushes),
        cmocka_unit_test(test_acks_settled_at_ingest),
        cmocka_unit_test(test_forwarded_whole_with_resource_and_scope),
        cmocka_unit_test(test_mutating_next_gets_copy),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
