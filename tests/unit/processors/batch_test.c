/*
 * Unit tests of the batch processor (processors/batch): the config rules and their messages,
 * the size trigger (exactly full, one span more), the timer (driven on a real libuv loop),
 * splitting to send_batch_max_size at span granularity, the shutdown flush, acks settled only
 * when every batch holding a request's spans is released (with a durable consumer behind:
 * TH_CAP_DURABLE) or at enqueue (without one), the per-iteration flush in front of a durable
 * consumer, downstream refusals failing every sender of a merged batch, and allocation
 * failures at every step of building a batch.
 *
 * Batches are built as the receiver leaves them: protobuf-c structs in one arena per request.
 * Every span is named "s<n>" with n increasing across requests, so the capture consumer can
 * check that spans arrive once each and in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "processors/batch/batch.h"
#include "th/log.h"

typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;

/* ---- Building batches ----------------------------------------------------------------- */

static unsigned next_id;

/*
 * A request shaped by @p spec: resource spans separated by '|', each a comma-separated list of
 * span counts, one per scope spans ("3,0,2|5": two resources, the first with three scopes of
 * 3, 0 and 2 spans). An empty part is a resource without scope spans.
 */
static th_batch_t *make_batch(const char *spec)
{
    th_arena_t *a = th_arena_create(0, 0);
    assert_non_null(a);
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    size_t n_rs = 1;
    for (const char *p = spec; *p; p++) {
        n_rs += *p == '|';
    }
    req->n_resource_spans = n_rs;
    req->resource_spans = th_arena_alloc(a, n_rs * sizeof(*req->resource_spans));
    const char *p = spec;
    for (size_t r = 0; r < n_rs; r++) {
        th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        req->resource_spans[r] = rs;
        resource_t *res = th_arena_alloc(a, sizeof(*res));
        opentelemetry__proto__resource__v1__resource__init(res);
        th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
        opentelemetry__proto__common__v1__key_value__init(kv);
        kv->key = th_arena_strndup(a, "service.name", 12);
        th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
        opentelemetry__proto__common__v1__any_value__init(v);
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        char name[32];
        snprintf(name, sizeof(name), "svc-%u-%zu", next_id, r);
        v->string_value = th_arena_strndup(a, name, strlen(name));
        kv->value = v;
        res->n_attributes = 1;
        res->attributes = th_arena_alloc(a, sizeof(*res->attributes));
        res->attributes[0] = kv;
        rs->resource = res;
        rs->schema_url = th_arena_strndup(a, "https://example.com/schema", 26);
        size_t counts[32];
        size_t n_ss = 0;
        while (*p && *p != '|') {
            char *end;
            counts[n_ss++] = strtoul(p, &end, 10);
            p = *end == ',' ? end + 1 : end;
        }
        if (*p == '|') {
            p++;
        }
        rs->n_scope_spans = n_ss;
        rs->scope_spans = th_arena_alloc(a, (n_ss ? n_ss : 1) * sizeof(*rs->scope_spans));
        for (size_t s = 0; s < n_ss; s++) {
            th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
            opentelemetry__proto__trace__v1__scope_spans__init(ss);
            rs->scope_spans[s] = ss;
            scope_t *sc = th_arena_alloc(a, sizeof(*sc));
            opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
            snprintf(name, sizeof(name), "scope-%zu", s);
            sc->name = th_arena_strndup(a, name, strlen(name));
            ss->scope = sc;
            ss->n_spans = counts[s];
            ss->spans = th_arena_alloc(a, (counts[s] ? counts[s] : 1) * sizeof(*ss->spans));
            for (size_t k = 0; k < counts[s]; k++) {
                th_otlp_span_t *sp = th_arena_alloc(a, sizeof(*sp));
                opentelemetry__proto__trace__v1__span__init(sp);
                snprintf(name, sizeof(name), "s%u", next_id++);
                sp->name = th_arena_strndup(a, name, strlen(name));
                ss->spans[k] = sp;
            }
        }
    }
    th_batch_t *b = th_batch_create(a, req);
    assert_non_null(b);
    return b;
}

/* An ack the way the receiver uses one: the test keeps the creator's reference until it has
 * handed the batch on, then settles it; on_settled records the outcome. */
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

static th_ack_t *attach_ack(th_batch_t *b, struct ack_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    th_ack_t *ack = th_ack_create(on_settled, rec);
    assert_non_null(ack);
    assert_int_equal(th_batch_add_ack(b, ack), 0);
    return ack;
}

/* ---- The consumer behind the processor ------------------------------------------------- */

#define MAX_IDS   8192
#define MAX_CALLS 512

struct capture {
    struct th_consumer base;
    int ret;   /* what consume answers */
    bool keep; /* keep the batches (released by the test) instead of releasing them */
    th_batch_t *kept[MAX_CALLS];
    size_t n_kept;
    size_t calls;
    size_t sizes[MAX_CALLS]; /* span_count of each batch */
    th_batch_t *seen[MAX_CALLS];
    unsigned ids[MAX_IDS]; /* span ids in arrival order */
    size_t n_ids;
    /* resources and scopes seen, to check what a split shares */
    const resource_t *res[MAX_IDS];
    const scope_t *scope[MAX_IDS];
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *cap = (struct capture *)self;
    assert_true(cap->calls < MAX_CALLS);
    /* span_count must be what the structs hold */
    assert_int_equal(b->span_count, th_otlp_request_span_count(b->req));
    cap->sizes[cap->calls] = b->span_count;
    cap->seen[cap->calls] = b;
    cap->calls++;
    for (size_t i = 0; i < b->req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = b->req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                assert_true(cap->n_ids < MAX_IDS);
                cap->res[cap->n_ids] = rs->resource;
                cap->scope[cap->n_ids] = ss->scope;
                cap->ids[cap->n_ids++] = (unsigned)strtoul(ss->spans[k]->name + 1, NULL, 10);
            }
        }
    }
    if (cap->keep) {
        cap->kept[cap->n_kept++] = b;
    } else {
        th_batch_release(b);
    }
    return cap->ret;
}

static void capture_init(struct capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    cap->base.consume = capture_consume;
}

static void capture_release_kept(struct capture *cap)
{
    for (size_t i = 0; i < cap->n_kept; i++) {
        th_batch_release(cap->kept[i]);
    }
    cap->n_kept = 0;
}

/* Every id from @p first, @p n of them, in order. */
static void assert_ids(const struct capture *cap, unsigned first, size_t n)
{
    assert_int_equal(cap->n_ids, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cap->ids[i], first + i);
    }
}

/* ---- The processor, on a real loop ----------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    struct th_host host;
    struct th_batch_processor_cfg cfg;
    struct th_component *c;
    struct th_batch_processor *p;
    struct capture cap;
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

static struct fixture *fx_new(int64_t size, int64_t max, int64_t timeout_ns)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->host = (struct th_host){.loop = &f->loop, .get_extension = no_ext, .report_fatal = no_fatal};
    f->cfg.send_batch_size = size;
    f->cfg.send_batch_max_size = max;
    f->cfg.timeout = timeout_ns;
    f->cfg.metadata_cardinality_limit = 1000;
    capture_init(&f->cap);
    return f;
}

static void fx_start(struct fixture *f)
{
    assert_int_equal(
        th_component_create(&th_processor_batch_ops, "batch", &f->cfg, &f->cap.base, &f->c), 0);
    f->p = (struct th_batch_processor *)f->c;
    f->c->host = &f->host;
    assert_int_equal(f->c->ops->start(f->c, &f->host), 0);
    f->c->started = true;
}

static int fx_consume(struct fixture *f, th_batch_t *b)
{
    return th_consumer_consume(&f->c->consumer, b);
}

static void fx_free(struct fixture *f)
{
    th_component_destroy(f->c);
    capture_release_kept(&f->cap);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the closed timer frees itself */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

#define HOUR_NS (3600LL * 1000000000LL)

/* ---- Config ------------------------------------------------------------------------------ */

static int decode(const char *yaml, struct th_batch_processor_cfg *cfg, th_arena_t *a, char *err,
                  size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret != 0) {
        return ret;
    }
    ret = th_cfg_decode(th_processor_batch_ops.config, node, cfg, a, "processors::batch", err,
                        errlen);
    if (ret != 0) {
        return ret;
    }
    const char *why = NULL;
    if (th_processor_batch_ops.config_check(cfg, &why) != 0) {
        snprintf(err, errlen, "%s", why);
        return TH_ECONFIG;
    }
    return 0;
}

static void test_config_defaults(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_batch_processor_cfg cfg;
    char err[256] = "";
    assert_int_equal(decode("{}", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(cfg.send_batch_size, 8192);
    assert_int_equal(cfg.timeout, 200000000);
    assert_int_equal(cfg.send_batch_max_size, 0);
    assert_int_equal(cfg.metadata_keys.n, 0);
    assert_int_equal(cfg.metadata_cardinality_limit, 1000);
    assert_int_equal(decode("send_batch_size: 10000\nsend_batch_max_size: 11000\ntimeout: 10s\n"
                            "metadata_keys: [tenant_id]\nmetadata_cardinality_limit: 10\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_int_equal(cfg.send_batch_size, 10000);
    assert_int_equal(cfg.send_batch_max_size, 11000);
    assert_int_equal(cfg.timeout, 10000000000LL);
    assert_int_equal(cfg.metadata_keys.n, 1);
    assert_string_equal(cfg.metadata_keys.v[0], "tenant_id");
    /* Equal sizes, a zero size with a max, a zero timeout: all valid. */
    assert_int_equal(
        decode("send_batch_size: 1000\nsend_batch_max_size: 1000\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(
        decode("send_batch_size: 0\nsend_batch_max_size: 1000\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(decode("timeout: 0s\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(decode("metadata_keys: [tenant, region]\n", &cfg, a, err, sizeof(err)), 0);
    th_arena_destroy(a);
}

static void test_config_messages(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_batch_processor_cfg cfg;
    char err[256] = "";
    /* below the default send_batch_size of 8192 */
    assert_int_equal(decode("send_batch_max_size: 1000\n", &cfg, a, err, sizeof(err)), TH_ECONFIG);
    assert_string_equal(err, "send_batch_max_size must be greater or equal to send_batch_size");
    assert_int_equal(
        decode("send_batch_size: 4096\nsend_batch_max_size: 1000\n", &cfg, a, err, sizeof(err)),
        TH_ECONFIG);
    assert_string_equal(err, "send_batch_max_size must be greater or equal to send_batch_size");
    assert_int_equal(decode("timeout: -5s\n", &cfg, a, err, sizeof(err)), TH_ECONFIG);
    assert_string_equal(err, "timeout must be greater or equal to 0");
    assert_int_equal(decode("metadata_keys: [tenant, tenant]\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "duplicate entry in metadata_keys: \"tenant\" (case-insensitive)");
    assert_int_equal(decode("metadata_keys: [Tenant, region, TENANT]\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "duplicate entry in metadata_keys: \"tenant\" (case-insensitive)");
    /* The Collector's order: max before duplicates before timeout. */
    assert_int_equal(decode("send_batch_max_size: 1\nmetadata_keys: [a, A]\ntimeout: -1s\n", &cfg,
                            a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "send_batch_max_size must be greater or equal to send_batch_size");
    assert_int_equal(decode("metadata_keys: [a, A]\ntimeout: -1s\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "duplicate entry in metadata_keys: \"a\" (case-insensitive)");
    /* uint32 fields: negative and too large values are refused by the table */
    assert_int_equal(decode("send_batch_size: -1\n", &cfg, a, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "send_batch_size"));
    assert_int_equal(decode("send_batch_max_size: 5000000000\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "send_batch_max_size"));
    assert_int_equal(decode("send_batch_sise: 5\n", &cfg, a, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "send_batch_sise"));
    th_arena_destroy(a);
}

/* A config that fails its check also fails create (no YAML involved). */
static void test_init_refuses_bad_config(void **state)
{
    (void)state;
    struct capture cap;
    capture_init(&cap);
    struct th_batch_processor_cfg cfg = {.send_batch_size = 10, .send_batch_max_size = 5};
    struct th_component *c = NULL;
    th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
    assert_int_equal(th_component_create(&th_processor_batch_ops, "batch", &cfg, &cap.base, &c),
                     TH_ECONFIG);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    assert_null(c);
}

/* ---- The size trigger ------------------------------------------------------------------ */

static void test_exactly_full_sends_at_once(void **state)
{
    (void)state;
    struct fixture *f = fx_new(10, 0, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    unsigned first = next_id;
    assert_int_equal(fx_consume(f, make_batch("4")), TH_HELD);
    assert_int_equal(fx_consume(f, make_batch("2,1|2")), TH_HELD);
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(f->p->q.spans, 9);
    /* the tenth span makes the batch exactly full: sent at once, nothing left */
    assert_int_equal(fx_consume(f, make_batch("1")), 0);
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 10);
    assert_ids(&f->cap, first, 10);
    assert_int_equal(f->p->q.spans, 0);
    assert_int_equal(f->p->stats.batch_size_trigger_send, 1);
    assert_int_equal(f->p->stats.timeout_trigger_send, 0);
    assert_int_equal(f->p->stats.spans_sent, 10);
    fx_free(f);
}

static void test_one_span_more(void **state)
{
    (void)state;
    /* Without a max, everything pending goes in one batch: 11 spans. */
    struct fixture *f = fx_new(10, 0, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    unsigned first = next_id;
    assert_int_equal(fx_consume(f, make_batch("6")), TH_HELD);
    assert_int_equal(fx_consume(f, make_batch("5")), 0);
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 11);
    assert_ids(&f->cap, first, 11);
    fx_free(f);

    /* With max = size, the eleventh span stays for the timer (or the next request). */
    f = fx_new(10, 10, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    first = next_id;
    assert_int_equal(fx_consume(f, make_batch("6")), TH_HELD);
    assert_int_equal(fx_consume(f, make_batch("5")), TH_HELD);
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 10);
    assert_int_equal(f->p->q.spans, 1);
    assert_int_equal(fx_consume(f, make_batch("9")), 0);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[1], 10);
    assert_ids(&f->cap, first, 20);
    assert_int_equal(f->p->stats.batch_size_trigger_send, 2);
    fx_free(f);
}

/* A request that fills a batch alone, with nothing pending, is handed on as it is. */
static void test_whole_request_passes_through(void **state)
{
    (void)state;
    struct fixture *f = fx_new(10, 0, 0);
    fx_start(f);
    th_batch_t *b = make_batch("3|2");
    assert_int_equal(fx_consume(f, b), 0);
    assert_int_equal(f->cap.calls, 1);
    assert_ptr_equal(f->cap.seen[0], b);
    fx_free(f);

    f = fx_new(5, 0, HOUR_NS);
    fx_start(f);
    b = make_batch("7");
    assert_int_equal(fx_consume(f, b), 0);
    assert_ptr_equal(f->cap.seen[0], b);
    fx_free(f);
}

/* A request without spans is not queued; its ack settles at once, successfully. */
static void test_empty_request(void **state)
{
    (void)state;
    struct fixture *f = fx_new(10, 0, HOUR_NS);
    fx_start(f);
    struct ack_rec rec;
    th_batch_t *b = make_batch("0|");
    th_ack_t *ack = attach_ack(b, &rec);
    assert_int_equal(fx_consume(f, b), 0);
    th_ack_settle(ack, 0);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, 0);
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(f->p->q.len, 0);
    fx_free(f);
}

/* ---- The timer --------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Run the loop until the capture has @p calls batches or @p ms pass. */
static void run_until(struct fixture *f, size_t calls, uint64_t ms)
{
    bool expired = false;
    uv_timer_t deadline;
    uv_timer_init(&f->loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, ms, 0);
    while (f->cap.calls < calls && !expired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_timeout_flush(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 0, 30 * 1000000LL); /* 30ms */
    fx_start(f);
    unsigned first = next_id;
    uint64_t t0 = th_now_mono_ns();
    assert_int_equal(fx_consume(f, make_batch("3")), 0);
    assert_int_equal(fx_consume(f, make_batch("1,1")), 0);
    run_until(f, 1, 5000);
    uint64_t waited = th_now_mono_ns() - t0;
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 5);
    assert_ids(&f->cap, first, 5);
    assert_true(waited >= 25 * 1000000ull); /* libuv's clock is in ms */
    assert_int_equal(f->p->stats.timeout_trigger_send, 1);
    assert_int_equal(f->p->stats.batch_size_trigger_send, 0);
    /* The timer keeps running: more data goes out on the next expiry. */
    assert_int_equal(fx_consume(f, make_batch("2")), 0);
    run_until(f, 2, 5000);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[1], 2);
    assert_int_equal(f->p->stats.timeout_trigger_send, 2);
    /* With nothing pending, the timer sends nothing. */
    run_until(f, 3, 100);
    assert_int_equal(f->cap.calls, 2);
    fx_free(f);
}

/* A size-triggered send restarts the timer: the rest waits a whole timeout again. */
static void test_size_send_restarts_timer(void **state)
{
    (void)state;
    struct fixture *f = fx_new(4, 0, 60 * 1000000LL); /* 60ms */
    fx_start(f);
    assert_int_equal(fx_consume(f, make_batch("1")), 0);
    run_until(f, 99, 40); /* 40ms into the 60 */
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(fx_consume(f, make_batch("3")), 0); /* full: sent, timer restarted */
    assert_int_equal(fx_consume(f, make_batch("1")), 0);
    uint64_t t0 = th_now_mono_ns();
    run_until(f, 2, 5000);
    uint64_t waited = th_now_mono_ns() - t0;
    assert_int_equal(f->cap.calls, 2);
    /* Without the restart the old timer would have fired about 20ms after t0. */
    assert_true(waited >= 45 * 1000000ull);
    fx_free(f);
}

/* timeout 0: every request is sent at once, split by max, whatever send_batch_size says. */
static void test_timeout_zero_sends_immediately(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 4000, 0);
    fx_start(f);
    assert_null(f->p->timer);
    unsigned first = next_id;
    assert_int_equal(fx_consume(f, make_batch("2")), 0);
    assert_int_equal(fx_consume(f, make_batch("1|1")), 0);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[0], 2);
    assert_int_equal(f->cap.sizes[1], 2);
    assert_ids(&f->cap, first, 4);
    fx_free(f);

    f = fx_new(0, 3, 0);
    fx_start(f);
    first = next_id;
    assert_int_equal(fx_consume(f, make_batch("4|3")), 0);
    assert_int_equal(f->cap.calls, 3);
    assert_int_equal(f->cap.sizes[0], 3);
    assert_int_equal(f->cap.sizes[1], 3);
    assert_int_equal(f->cap.sizes[2], 1);
    assert_ids(&f->cap, first, 7);
    fx_free(f);
}

/* ---- Splitting ------------------------------------------------------------------------- */

/* Every split, at every boundary, keeps order, counts and the source intact. */
static void test_max_size_split(void **state)
{
    (void)state;
    static const char *const shapes[] = {"4,4|4,4|4,4", "1,0,5|0||3,2,1", "24", "2|2|2|2|2|2"};
    for (size_t s = 0; s < TH_ARRAY_SIZE(shapes); s++) {
        for (int64_t max = 1; max <= 13; max++) {
            struct fixture *f = fx_new(0, max, 0);
            fx_start(f);
            unsigned first = next_id;
            th_batch_t *b = make_batch(shapes[s]);
            size_t total = th_otlp_request_span_count(b->req);
            /* Keep the source, to check afterwards that nothing in it was changed. */
            th_batch_retain(b);
            size_t n_rs = b->req->n_resource_spans;
            size_t n_ss0 = b->req->resource_spans[0]->n_scope_spans;
            assert_int_equal(fx_consume(f, b), 0);
            size_t want_calls = (total + (size_t)max - 1) / (size_t)max;
            assert_int_equal(f->cap.calls, want_calls);
            for (size_t i = 0; i < want_calls; i++) {
                size_t want = i + 1 < want_calls ? (size_t)max : total - (size_t)max * i;
                assert_int_equal(f->cap.sizes[i], want);
            }
            assert_ids(&f->cap, first, total);
            assert_int_equal(b->req->n_resource_spans, n_rs);
            assert_int_equal(b->req->resource_spans[0]->n_scope_spans, n_ss0);
            assert_int_equal(th_otlp_request_span_count(b->req), total);
            assert_int_equal(f->p->q.spans, 0);
            assert_int_equal(f->p->q.len, 0);
            th_batch_release(b);
            fx_free(f);
        }
    }
}

/* Split and merged at once: a max smaller than the requests, several requests pending. */
static void test_split_and_merge(void **state)
{
    (void)state;
    struct fixture *f = fx_new(6, 7, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    unsigned first = next_id;
    assert_int_equal(fx_consume(f, make_batch("3")), TH_HELD);
    /* 14 pending: 7 sent, and the 7 left are still >= 6: sent too */
    assert_int_equal(fx_consume(f, make_batch("2|9")), 0);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[0], 7);
    assert_int_equal(f->cap.sizes[1], 7);
    assert_int_equal(f->p->q.spans, 0);
    assert_int_equal(fx_consume(f, make_batch("5")), TH_HELD);
    assert_int_equal(th__batch_processor_shutdown(f->p), 0);
    assert_int_equal(f->cap.calls, 3);
    assert_int_equal(f->cap.sizes[2], 5);
    assert_ids(&f->cap, first, 19);
    fx_free(f);
}

/* With a consumer that changes data behind us, the parts of a split resource spans get their
 * own resource and scope (equal in content), so nothing is changed twice; without one they
 * share the source's. */
static void test_split_headers_for_mutators(void **state)
{
    (void)state;
    for (int mut = 0; mut <= 1; mut++) {
        struct fixture *f = fx_new(0, 3, 0);
        f->cap.base.caps = mut ? TH_CAP_MUTATES : 0;
        f->cap.keep = true; /* keep the batches so the pointers stay valid */
        fx_start(f);
        assert_int_equal(f->c->consumer.caps & TH_CAP_MUTATES, (unsigned)(mut ? 1 : 0));
        assert_int_equal(fx_consume(f, make_batch("5")), 0);
        assert_int_equal(f->cap.calls, 2);
        /* span 0..2 in the first batch, 3..4 in the second, one resource and scope */
        const resource_t *r0 = f->cap.res[0];
        const resource_t *r1 = f->cap.res[3];
        const scope_t *s0 = f->cap.scope[0];
        const scope_t *s1 = f->cap.scope[3];
        if (mut) {
            assert_ptr_not_equal(r0, r1);
            assert_ptr_not_equal(s0, s1);
        } else {
            assert_ptr_equal(r0, r1);
            assert_ptr_equal(s0, s1);
        }
        assert_int_equal(r1->n_attributes, 1);
        assert_string_equal(r1->attributes[0]->key, "service.name");
        assert_string_equal(r1->attributes[0]->value->string_value,
                            r0->attributes[0]->value->string_value);
        assert_string_equal(s1->name, "scope-0");
        fx_free(f);
    }
}

/* ---- Shutdown --------------------------------------------------------------------------- */

static void test_shutdown_flushes_everything(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 0, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    unsigned first = next_id;
    struct ack_rec rec[3];
    for (int i = 0; i < 3; i++) {
        th_batch_t *b = make_batch("2,3");
        th_ack_t *ack = attach_ack(b, &rec[i]);
        assert_int_equal(fx_consume(f, b), TH_HELD);
        th_ack_settle(ack, 0);
        assert_int_equal(rec[i].settled, 0);
    }
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 15);
    assert_ids(&f->cap, first, 15);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rec[i].settled, 1);
        assert_int_equal(rec[i].result, 0);
    }
    assert_int_equal(f->p->stats.timeout_trigger_send, 1);
    /* idempotent, and nothing is taken after */
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->cap.calls, 1);
    th_batch_t *late = make_batch("1");
    assert_int_equal(fx_consume(f, late), TH_ESHUTDOWN);
    assert_int_equal(th__batch_processor_consume(f->p, make_batch("1")), TH_ESHUTDOWN);
    fx_free(f);
}

/* Shutdown with a max: everything leaves, in batches no larger than the max. */
static void test_shutdown_splits_by_max(void **state)
{
    (void)state;
    struct fixture *f = fx_new(100, 100, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    assert_int_equal(fx_consume(f, make_batch("40|40")), TH_HELD);
    /* reach into the queue past the size trigger, as several requests between sends would */
    assert_int_equal(th__batch_queue_push(&f->p->q, make_batch("90")), 0);
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[0], 100);
    assert_int_equal(f->cap.sizes[1], 70);
    fx_free(f);
}

/* Shutdown without start (no timer) and destroy with data still pending. */
static void test_lifecycle_without_start(void **state)
{
    (void)state;
    struct capture cap;
    capture_init(&cap);
    cap.base.caps = TH_CAP_DURABLE; /* the acks are held, so destroy must fail them */
    struct th_batch_processor_cfg cfg = {.send_batch_size = 100, .timeout = HOUR_NS};
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_processor_batch_ops, "batch", &cfg, &cap.base, &c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);

    /* Never started, never shut down, data pending: destroy fails the senders (they retry). */
    c = NULL;
    assert_int_equal(th_component_create(&th_processor_batch_ops, "batch", &cfg, &cap.base, &c), 0);
    struct ack_rec rec;
    th_batch_t *b = make_batch("3");
    th_ack_t *ack = attach_ack(b, &rec);
    assert_int_equal(th_consumer_consume(&c->consumer, b), TH_HELD);
    th_ack_settle(ack, 0);
    th_component_destroy(c);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, TH_ESHUTDOWN);
    assert_int_equal(cap.calls, 0);
}

/* ---- Acks ------------------------------------------------------------------------------ */

/* A sender is answered only when every batch with its spans is released downstream. */
static void test_acks_settle_after_release(void **state)
{
    (void)state;
    struct fixture *f = fx_new(4, 4, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    f->cap.keep = true;
    fx_start(f);
    struct ack_rec ra;
    struct ack_rec rb;
    th_batch_t *a = make_batch("3");
    th_ack_t *acka = attach_ack(a, &ra);
    assert_int_equal(fx_consume(f, a), TH_HELD);
    th_ack_settle(acka, 0);
    /* b's 6 spans: 1 joins a's 3 in the first batch, 4 make a second, 1 stays pending */
    th_batch_t *b = make_batch("6");
    th_ack_t *ackb = attach_ack(b, &rb);
    assert_int_equal(fx_consume(f, b), TH_HELD);
    th_ack_settle(ackb, 0);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(ra.settled + rb.settled, 0);
    /* releasing the first batch answers a (all its spans were there), not b */
    th_batch_release(f->cap.kept[0]);
    f->cap.kept[0] = NULL;
    assert_int_equal(ra.settled, 1);
    assert_int_equal(ra.result, 0);
    assert_int_equal(rb.settled, 0);
    th_batch_release(f->cap.kept[1]);
    f->cap.kept[1] = NULL;
    assert_int_equal(rb.settled, 0); /* one span of b is still pending */
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->cap.calls, 3);
    assert_int_equal(rb.settled, 0); /* sent, but the consumer still holds it */
    th_batch_release(f->cap.kept[2]);
    f->cap.kept[2] = NULL;
    assert_int_equal(rb.settled, 1);
    assert_int_equal(rb.result, 0);
    f->cap.n_kept = 0;
    fx_free(f);
}

/* A refused merged batch fails every sender in it; the others are untouched. */
static void test_refusal_fails_every_sender(void **state)
{
    (void)state;
    static const int errs[] = {TH_ERETRY, TH_ENOMEM, TH_EPERM};
    for (size_t e = 0; e < TH_ARRAY_SIZE(errs); e++) {
        struct fixture *f = fx_new(6, 6, HOUR_NS);
        f->cap.base.caps = TH_CAP_DURABLE;
        fx_start(f);
        struct ack_rec rec[4];
        th_ack_t *acks[4];
        static const char *const shapes[] = {"2", "1|1", "1", "3"};
        f->cap.ret = errs[e];
        for (int i = 0; i < 4; i++) {
            th_batch_t *b = make_batch(shapes[i]);
            acks[i] = attach_ack(b, &rec[i]);
            int ret = fx_consume(f, b);
            /* the refusal reaches senders through the acks, not this result */
            assert_true(ret == 0 || ret == TH_HELD);
            th_ack_settle(acks[i], 0);
        }
        /* the first batch held requests 0..2 and one span of 3; request 3 is in both */
        assert_int_equal(f->cap.calls, 1);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(rec[i].settled, i < 3 ? 1 : 0);
            if (i < 3) {
                assert_int_equal(rec[i].result, errs[e]);
            }
        }
        assert_int_equal(f->p->stats.batches_refused, 1);
        assert_int_equal(f->p->stats.spans_refused, 6);
        f->cap.ret = 0; /* the rest of request 3 is delivered, but its first part was not */
        assert_int_equal(f->c->ops->shutdown(f->c), 0);
        assert_int_equal(rec[3].settled, 1);
        assert_int_equal(rec[3].result, errs[e]);
        fx_free(f);
    }
}

/* A request handed on whole (timeout 0) and refused fails its sender too. */
static void test_refusal_of_passed_through_request(void **state)
{
    (void)state;
    struct fixture *f = fx_new(10, 0, 0);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    f->cap.ret = TH_ERETRY;
    struct ack_rec rec;
    th_batch_t *b = make_batch("4");
    th_ack_t *ack = attach_ack(b, &rec);
    assert_int_equal(fx_consume(f, b), 0);
    assert_ptr_equal(f->cap.seen[0], b);
    th_ack_settle(ack, 0);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, TH_ERETRY);
    fx_free(f);
}

/* ---- Durable or not downstream ---------------------------------------------------------- */

/* Not durable behind us (an in-memory queue answers at enqueue anyway): the sender is
 * answered as its batch is queued, long before the timer, as in the Collector; the data
 * still goes out by size, timer or shutdown, and a refusal then no longer reaches it. */
static void test_not_durable_answers_at_enqueue(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 0, HOUR_NS);
    fx_start(f);
    assert_int_equal(f->c->consumer.caps & TH_CAP_DURABLE, 0);
    unsigned first = next_id;
    struct ack_rec rec[2];
    for (int i = 0; i < 2; i++) {
        th_batch_t *b = make_batch("2|1");
        th_ack_t *ack = attach_ack(b, &rec[i]);
        assert_int_equal(fx_consume(f, b), 0);
        th_ack_settle(ack, 0);
        assert_int_equal(rec[i].settled, 1);
        assert_int_equal(rec[i].result, 0);
    }
    assert_int_equal(f->cap.calls, 0);
    assert_int_equal(f->p->q.spans, 6);
    /* no flush per loop iteration: the Collector's timer batching holds */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cap.calls, 0);
    assert_false(uv_is_active((uv_handle_t *)f->p->flush));
    f->cap.ret = TH_ERETRY;
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->cap.calls, 1);
    assert_ids(&f->cap, first, 6);
    assert_int_equal(rec[0].settled + rec[1].settled, 2); /* answered once, with success */
    assert_int_equal(rec[0].result, 0);
    fx_free(f);
}

/* A batch shared with another holder (a fan-out to a durable pipeline) keeps its acks even
 * when nothing durable is behind us, and does not wait for the timer either. */
static void test_not_durable_keeps_acks_of_shared_batch(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 0, HOUR_NS);
    fx_start(f);
    struct ack_rec rec;
    th_batch_t *b = make_batch("3");
    th_ack_t *ack = attach_ack(b, &rec);
    th_batch_retain(b); /* the other pipeline's reference */
    assert_int_equal(fx_consume(f, b), TH_HELD);
    th_ack_settle(ack, 0);
    assert_int_equal(rec.settled, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cap.calls, 1); /* sent, and released by the capture */
    assert_int_equal(rec.settled, 0);  /* the other holder still has it */
    th_batch_release(b);
    assert_int_equal(rec.settled, 1);
    assert_int_equal(rec.result, 0);
    fx_free(f);
}

/* Durable behind us: senders are answered only once the downstream settles, but they do not
 * wait for the timer: what arrived before one loop iteration is sent, merged, at its end. */
static void test_durable_flushes_each_iteration(void **state)
{
    (void)state;
    struct fixture *f = fx_new(1000, 0, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    f->cap.keep = true; /* the store: settles when the test says */
    fx_start(f);
    assert_true(f->c->consumer.caps & TH_CAP_DURABLE); /* declared upstream too */
    unsigned first = next_id;
    struct ack_rec rec[4];
    static const char *const shapes[] = {"2", "1|1", "3,1", "1"};
    for (int i = 0; i < 3; i++) {
        th_batch_t *b = make_batch(shapes[i]);
        th_ack_t *ack = attach_ack(b, &rec[i]);
        assert_int_equal(fx_consume(f, b), TH_HELD);
        th_ack_settle(ack, 0);
    }
    assert_int_equal(f->cap.calls, 0);
    assert_true(uv_is_active((uv_handle_t *)f->p->flush));
    uint64_t t0 = th_now_mono_ns();
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(th_now_mono_ns() - t0 < 1000000000ull); /* one iteration, not the hour */
    /* the three requests, merged into one batch */
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 8);
    assert_ids(&f->cap, first, 8);
    assert_int_equal(f->p->stats.loop_trigger_send, 1);
    assert_int_equal(f->p->stats.timeout_trigger_send, 0);
    assert_int_equal(f->p->q.spans, 0);
    /* nothing pending: the handle is stopped, so an idle loop blocks instead of spinning */
    assert_false(uv_is_active((uv_handle_t *)f->p->flush));
    /* sent, but not yet stored: nobody is answered */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rec[i].settled, 0);
    }
    th_batch_release(f->cap.kept[0]);
    f->cap.kept[0] = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rec[i].settled, 1);
        assert_int_equal(rec[i].result, 0);
    }
    /* the next iteration's request makes its own batch; a downstream failure reaches it */
    th_batch_t *b = make_batch(shapes[3]);
    th_ack_t *ack = attach_ack(b, &rec[3]);
    assert_int_equal(fx_consume(f, b), TH_HELD);
    th_ack_settle(ack, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[1], 1);
    assert_int_equal(rec[3].settled, 0);
    th_batch_fail(f->cap.kept[1], TH_ERETRY);
    th_batch_release(f->cap.kept[1]);
    f->cap.kept[1] = NULL;
    assert_int_equal(rec[3].settled, 1);
    assert_int_equal(rec[3].result, TH_ERETRY);
    f->cap.n_kept = 0;
    fx_free(f);
}

/* Durable behind us, the size trigger still sends at once, and the rest waits one iteration. */
static void test_durable_size_trigger(void **state)
{
    (void)state;
    struct fixture *f = fx_new(4, 4, HOUR_NS);
    f->cap.base.caps = TH_CAP_DURABLE;
    fx_start(f);
    unsigned first = next_id;
    assert_int_equal(fx_consume(f, make_batch("6")), TH_HELD);
    assert_int_equal(f->cap.calls, 1);
    assert_int_equal(f->cap.sizes[0], 4);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->cap.calls, 2);
    assert_int_equal(f->cap.sizes[1], 2);
    assert_ids(&f->cap, first, 6);
    assert_int_equal(f->p->stats.batch_size_trigger_send, 1);
    assert_int_equal(f->p->stats.loop_trigger_send, 1);
    fx_free(f);
}

/* ---- Allocation failures ---------------------------------------------------------------- */

static long fail_countdown = -1; /* allocations left before failing; -1: never */
static long fail_hits;

static bool should_fail(void)
{
    if (fail_countdown < 0) {
        return false;
    }
    if (fail_countdown == 0) {
        fail_hits++;
        return true;
    }
    fail_countdown--;
    return false;
}

static void *f_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *f_calloc(size_t n, size_t s)
{
    return should_fail() ? NULL : calloc(n, s);
}

static void *f_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static const struct th_mem_methods failing = {f_malloc, f_calloc, f_realloc, free};

/*
 * Merge and split while allocation N fails, for N = 0, 1, 2, ... until nothing fails: every
 * sender is answered exactly once, with success only if all its spans were delivered, and
 * nothing leaks (ASan). Enough requests go into each batch that its arena grows past its
 * first chunk, and the consumer mutates, so split resources and scopes are copied too.
 */
#define OOM_REQS 160

static void test_alloc_failures(void **state)
{
    (void)state;
    static const char *const shapes[] = {"2", "1|1", "1,3", "1,0,1|2"};
    static struct ack_rec rec[OOM_REQS];
    static th_ack_t *acks[OOM_REQS];
    static th_batch_t *bs[OOM_REQS];
    static unsigned first[OOM_REQS];
    static size_t count[OOM_REQS];
    static int rets[OOM_REQS];
    long n;
    for (n = 0;; n++) {
        struct fixture *f = fx_new(150, 150, HOUR_NS);
        f->cap.base.caps = TH_CAP_MUTATES | TH_CAP_DURABLE;
        fx_start(f);
        for (int i = 0; i < OOM_REQS; i++) {
            first[i] = next_id;
            bs[i] = make_batch(shapes[i % 4]);
            count[i] = th_otlp_request_span_count(bs[i]->req);
            acks[i] = attach_ack(bs[i], &rec[i]);
        }
        fail_hits = 0;
        fail_countdown = n;
        th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
        th_mem_set_methods(&failing);
        for (int i = 0; i < OOM_REQS; i++) {
            rets[i] = fx_consume(f, bs[i]);
            assert_true(rets[i] == 0 || rets[i] == TH_HELD || rets[i] == TH_ENOMEM);
        }
        f->c->ops->shutdown(f->c);
        fail_countdown = -1;
        th_mem_set_methods(NULL);
        th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
        for (int i = 0; i < OOM_REQS; i++) {
            th_ack_settle(acks[i], 0);
            assert_int_equal(rec[i].settled, 1);
            size_t seen = 0;
            for (size_t k = 0; k < f->cap.n_ids; k++) {
                seen += f->cap.ids[k] >= first[i] && f->cap.ids[k] < first[i] + count[i];
            }
            if (rets[i] == TH_ENOMEM) {
                /* refused at the door (the receiver answers 503 from this result): not queued */
                assert_int_equal(seen, 0);
            } else if (rec[i].result == 0) {
                /* success means every span of the request arrived, once */
                assert_int_equal(seen, count[i]);
            } else {
                assert_int_equal(rec[i].result, TH_ENOMEM);
                assert_true(seen <= count[i]);
            }
        }
        assert_int_equal(f->p->q.spans, 0);
        long hits = fail_hits;
        fx_free(f);
        if (hits == 0) {
            break;
        }
    }
    /* The loop went through every allocation of the run: the ring, several batch arenas and
     * their later chunks. */
    assert_true(n > 10);
}

/* Create and start while allocation N fails: TH_ENOMEM cleanly, until it works. */
static void test_alloc_failures_lifecycle(void **state)
{
    (void)state;
    long n;
    for (n = 0;; n++) {
        struct fixture *f = fx_new(10, 0, HOUR_NS);
        fail_hits = 0;
        fail_countdown = n;
        th_mem_set_methods(&failing);
        int ret =
            th_component_create(&th_processor_batch_ops, "batch", &f->cfg, &f->cap.base, &f->c);
        if (ret == 0) {
            f->c->host = &f->host;
            ret = f->c->ops->start(f->c, &f->host);
            f->c->started = ret == 0;
        }
        fail_countdown = -1;
        th_mem_set_methods(NULL);
        long hits = fail_hits;
        if (hits == 0) {
            assert_int_equal(ret, 0);
            fx_free(f);
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
        if (f->c) {
            th_component_destroy(f->c);
            f->c = NULL;
        }
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&f->loop), 0);
        free(f);
    }
    assert_true(n >= 3); /* the instance, its id, the timer */
}

int main(void)
{
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_messages),
        cmocka_unit_test(test_init_refuses_bad_config),
        cmocka_unit_test(test_exactly_full_sends_at_once),
        cmocka_unit_test(test_one_span_more),
        cmocka_unit_test(test_whole_request_passes_through),
        cmocka_unit_test(test_empty_request),
        cmocka_unit_test(test_timeout_flush),
        cmocka_unit_test(test_size_send_restarts_timer),
        cmocka_unit_test(test_timeout_zero_sends_immediately),
        cmocka_unit_test(test_max_size_split),
        cmocka_unit_test(test_split_and_merge),
        cmocka_unit_test(test_split_headers_for_mutators),
        cmocka_unit_test(test_shutdown_flushes_everything),
        cmocka_unit_test(test_shutdown_splits_by_max),
        cmocka_unit_test(test_lifecycle_without_start),
        cmocka_unit_test(test_acks_settle_after_release),
        cmocka_unit_test(test_refusal_fails_every_sender),
        cmocka_unit_test(test_refusal_of_passed_through_request),
        cmocka_unit_test(test_not_durable_answers_at_enqueue),
        cmocka_unit_test(test_not_durable_keeps_acks_of_shared_batch),
        cmocka_unit_test(test_durable_flushes_each_iteration),
        cmocka_unit_test(test_durable_size_trigger),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_alloc_failures_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
