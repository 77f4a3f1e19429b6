/*
 * Unit tests of the memory_limiter processor (processors/memory_limiter): every config
 * message of the Collector in its order, the limits for fixed and percentage settings, every
 * transition of the limiter driven by an injected memory reader, clock and trim (refuse above
 * the soft limit, trim above it when due with the Collector's pacing and backoff, resume below
 * it), the quick checks in consume between ticks, the timer on a real libuv loop, the cgroup
 * v1/v2 and MemTotal reading on fake /proc and /sys trees, and the real statm reader.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "processors/memory_limiter/memory_limiter.h"
#include "th/log.h"

#define MIB (1024ull * 1024ull)
#define SEC 1000000000LL
#define MS  1000000LL

/* ---- Batches and the consumer behind the limiter ---------------------------------------- */

static th_batch_t *make_batch(size_t spans)
{
    th_arena_t *a = th_arena_create(0, 0);
    assert_non_null(a);
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->n_spans = spans;
    ss->spans = th_arena_alloc(a, (spans ? spans : 1) * sizeof(*ss->spans));
    for (size_t i = 0; i < spans; i++) {
        ss->spans[i] = th_arena_alloc(a, sizeof(th_otlp_span_t));
        opentelemetry__proto__trace__v1__span__init(ss->spans[i]);
    }
    rs->n_scope_spans = 1;
    rs->scope_spans = th_arena_alloc(a, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    req->n_resource_spans = 1;
    req->resource_spans = th_arena_alloc(a, sizeof(*req->resource_spans));
    req->resource_spans[0] = rs;
    th_batch_t *b = th_batch_create(a, req);
    assert_non_null(b);
    return b;
}

struct sink {
    struct th_consumer base;
    size_t batches;
    size_t spans;
    int ret;
};

static int sink_consume(struct th_consumer *self, th_batch_t *b)
{
    struct sink *s = (struct sink *)self;
    s->batches++;
    s->spans += b->span_count;
    th_batch_release(b);
    return s->ret;
}

/* ---- The limiter with injected memory, clock and trim ---------------------------------- */

struct fake {
    uint64_t usage;   /* what the reader returns */
    int read_err;     /* or this error */
    uint64_t now;     /* the clock */
    unsigned trims;   /* trim calls */
    uint64_t trim_to; /* a trim sets usage to this when non-zero */
    uint64_t total;   /* total memory for percentages */
    int total_err;
};

static int fake_read(struct th_memory_limiter *ml, uint64_t *bytes)
{
    struct fake *f = ml->test_data;
    if (f->read_err) {
        return f->read_err;
    }
    *bytes = f->usage;
    return 0;
}

static void fake_trim(struct th_memory_limiter *ml)
{
    struct fake *f = ml->test_data;
    f->trims++;
    if (f->trim_to) {
        f->usage = f->trim_to;
    }
}

static struct fake *the_fake; /* for the clock and total memory, which take no argument */

static uint64_t fake_now(void)
{
    return the_fake->now;
}

static int fake_total(uint64_t *bytes)
{
    if (the_fake->total_err) {
        return the_fake->total_err;
    }
    *bytes = the_fake->total;
    return 0;
}

struct fixture {
    struct th_memory_limiter_cfg cfg;
    struct fake fake;
    struct sink sink;
    struct th_component *c;
    struct th_memory_limiter *ml;
};

/* Defaults as decoded from the table, then a fixed limit. */
static void default_cfg(struct th_memory_limiter_cfg *cfg)
{
    th_arena_t *a = th_arena_create(0, 0);
    char err[256];
    assert_int_equal(
        th_cfg_defaults(th_processor_memory_limiter_ops.config, cfg, a, err, sizeof(err)), 0);
    th_arena_destroy(a);
    cfg->check_interval = SEC;
    cfg->limit_mib = 100; /* hard 100 MiB, soft 80 MiB */
}

static struct fixture *fx_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    default_cfg(&f->cfg);
    f->sink.base.consume = sink_consume;
    f->fake.now = 1000 * SEC;
    f->fake.usage = 10 * MIB;
    the_fake = &f->fake;
    return f;
}

/* Create with the fakes in place and start without a loop (checks are called by hand). */
static void fx_start(struct fixture *f)
{
    assert_int_equal(th_component_create(&th_processor_memory_limiter_ops, "memory_limiter",
                                         &f->cfg, &f->sink.base, &f->c),
                     0);
    f->ml = (struct th_memory_limiter *)f->c;
    f->ml->test_data = &f->fake;
    f->ml->read_usage = fake_read;
    f->ml->trim = fake_trim;
    f->ml->now_ns = fake_now;
    f->ml->total_memory = fake_total;
    assert_int_equal(th__memory_limiter_start(f->ml, NULL), 0);
    f->c->started = true;
}

static int fx_consume(struct fixture *f, size_t spans)
{
    return th_consumer_consume(&f->c->consumer, make_batch(spans));
}

static void fx_free(struct fixture *f)
{
    th_component_destroy(f->c);
    free(f);
}

/* ---- Config ------------------------------------------------------------------------------ */

static int decode(const char *yaml, struct th_memory_limiter_cfg *cfg, th_arena_t *a, char *err,
                  size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret != 0) {
        return ret;
    }
    ret = th_cfg_decode(th_processor_memory_limiter_ops.config, node, cfg, a,
                        "processors::memory_limiter", err, errlen);
    if (ret != 0) {
        return ret;
    }
    const char *why = NULL;
    if (th_processor_memory_limiter_ops.config_check(cfg, &why) != 0) {
        snprintf(err, errlen, "%s", why);
        return TH_ECONFIG;
    }
    return 0;
}

static void test_config_defaults(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_memory_limiter_cfg cfg;
    char err[256] = "";
    assert_int_equal(decode("check_interval: 1s\nlimit_mib: 4000\nspike_limit_mib: 800\n", &cfg, a,
                            err, sizeof(err)),
                     0);
    assert_int_equal(cfg.check_interval, SEC);
    assert_int_equal(cfg.limit_mib, 4000);
    assert_int_equal(cfg.spike_limit_mib, 800);
    assert_int_equal(cfg.limit_percentage, 0);
    assert_int_equal(cfg.spike_limit_percentage, 0);
    assert_int_equal(cfg.min_gc_interval_when_soft_limited, 10 * SEC);
    assert_int_equal(cfg.min_gc_interval_when_hard_limited, 0);
    assert_int_equal(cfg.max_gc_interval_when_soft_limited, 30 * SEC);
    assert_int_equal(cfg.max_gc_interval_when_hard_limited, 30 * SEC);
    assert_int_equal(decode("check_interval: 5s\nlimit_percentage: 75\nspike_limit_percentage: "
                            "15\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_int_equal(cfg.limit_percentage, 75);
    assert_int_equal(cfg.spike_limit_percentage, 15);
    /* max intervals of 0 disable the backoff and are valid */
    assert_int_equal(decode("check_interval: 1s\nlimit_mib: 10\nmax_gc_interval_when_soft_limited: "
                            "0s\nmax_gc_interval_when_hard_limited: 0s\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    th_arena_destroy(a);
}

static void expect_msg(const char *yaml, const char *msg)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_memory_limiter_cfg cfg;
    char err[400] = "";
    int ret = decode(yaml, &cfg, a, err, sizeof(err));
    if (ret != TH_ECONFIG || strcmp(err, msg) != 0) {
        fail_msg("config:\n%s\nwant: %s\ngot (%d): %s", yaml, msg, ret, err);
    }
    th_arena_destroy(a);
}

static void test_config_messages(void **state)
{
    (void)state;
    expect_msg("limit_mib: 100\n", "'check_interval' must be greater than zero");
    expect_msg("check_interval: 0s\nlimit_mib: 100\n",
               "'check_interval' must be greater than zero");
    expect_msg("check_interval: -1s\nlimit_mib: 100\n",
               "'check_interval' must be greater than zero");
    expect_msg(
        "check_interval: 100ms\nlimit_mib: 5722\nspike_limit_mib: 1907\n"
        "min_gc_interval_when_soft_limited: 50ms\nmin_gc_interval_when_hard_limited: 100ms\n",
        "'min_gc_interval_when_soft_limited' should be larger than "
        "'min_gc_interval_when_hard_limited'");
    expect_msg("check_interval: 100ms\nlimit_mib: 5722\nmax_gc_interval_when_soft_limited: -1s\n",
               "'max_gc_interval_when_soft_limited' must be non-negative");
    expect_msg("check_interval: 100ms\nlimit_mib: 5722\nmax_gc_interval_when_hard_limited: -1s\n",
               "'max_gc_interval_when_hard_limited' must be non-negative");
    expect_msg("check_interval: 100ms\nlimit_mib: 5722\nmin_gc_interval_when_soft_limited: 10s\n"
               "max_gc_interval_when_soft_limited: 5s\nmax_gc_interval_when_hard_limited: 5s\n",
               "'max_gc_interval_when_soft_limited' must be greater than or equal to "
               "'min_gc_interval_when_soft_limited' (or 0 to disable)");
    expect_msg("check_interval: 100ms\nlimit_mib: 5722\nmin_gc_interval_when_hard_limited: 5s\n"
               "max_gc_interval_when_hard_limited: 2s\n",
               "'max_gc_interval_when_hard_limited' must be greater than or equal to "
               "'min_gc_interval_when_hard_limited' (or 0 to disable)");
    expect_msg("check_interval: 100ms\nlimit_mib: 5722\nmax_gc_interval_when_soft_limited: 20s\n"
               "max_gc_interval_when_hard_limited: 25s\n",
               "'max_gc_interval_when_soft_limited' should be larger than or equal to "
               "'max_gc_interval_when_hard_limited' (when both are set)");
    expect_msg("check_interval: 1s\n",
               "'limit_mib' or 'limit_percentage' must be greater than zero");
    expect_msg("check_interval: 1s\nlimit_percentage: 101\n",
               "'limit_percentage' and 'spike_limit_percentage' must be greater than zero and "
               "less than or equal to hundred");
    expect_msg("check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 101\n",
               "'limit_percentage' and 'spike_limit_percentage' must be greater than zero and "
               "less than or equal to hundred");
    expect_msg("check_interval: 1s\nlimit_mib: 10\nspike_limit_mib: 10\n",
               "'spike_limit_mib' must be smaller than 'limit_mib'");
    expect_msg("check_interval: 1s\nlimit_mib: 10\nspike_limit_mib: 20\n",
               "'spike_limit_mib' must be smaller than 'limit_mib'");
    expect_msg("check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 60\n",
               "'spike_limit_percentage' must be smaller than 'limit_percentage'");
    expect_msg("check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 50\n",
               "'spike_limit_percentage' must be smaller than 'limit_percentage'");
    /* The order is the Collector's: the interval before the limits. */
    expect_msg("check_interval: 0s\nlimit_mib: 10\nspike_limit_mib: 20\n",
               "'check_interval' must be greater than zero");
    /* uint32 fields refuse negative values while decoding */
    th_arena_t *a = th_arena_create(0, 0);
    struct th_memory_limiter_cfg cfg;
    char err[400] = "";
    assert_int_equal(decode("check_interval: 1s\nlimit_mib: -2000\n", &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "limit_mib"));
    th_arena_destroy(a);
}

/* A config that fails its check also fails create, without any YAML. */
static void test_init_refuses_bad_config(void **state)
{
    (void)state;
    struct sink s = {.base.consume = sink_consume};
    struct th_memory_limiter_cfg cfg;
    default_cfg(&cfg);
    cfg.check_interval = 0;
    struct th_component *c = NULL;
    th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
    assert_int_equal(
        th_component_create(&th_processor_memory_limiter_ops, "memory_limiter", &cfg, &s.base, &c),
        TH_ECONFIG);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    assert_null(c);
}

static void test_limits(void **state)
{
    (void)state;
    struct th_memory_limiter_cfg cfg;
    default_cfg(&cfg);
    uint64_t hard;
    uint64_t soft;
    cfg.limit_mib = 100;
    th__memory_limiter_limits(&cfg, 0, &hard, &soft);
    assert_int_equal(hard, 100 * MIB);
    assert_int_equal(soft, 80 * MIB); /* spike defaults to 20% */
    cfg.spike_limit_mib = 30;
    th__memory_limiter_limits(&cfg, 0, &hard, &soft);
    assert_int_equal(soft, 70 * MIB);
    /* limit_mib wins over a percentage */
    cfg.limit_percentage = 50;
    th__memory_limiter_limits(&cfg, 1000 * MIB, &hard, &soft);
    assert_int_equal(hard, 100 * MIB);
    cfg.limit_mib = 0;
    cfg.spike_limit_mib = 0;
    th__memory_limiter_limits(&cfg, 1000 * MIB, &hard, &soft);
    assert_int_equal(hard, 500 * MIB);
    assert_int_equal(soft, 400 * MIB);
    cfg.spike_limit_percentage = 5;
    th__memory_limiter_limits(&cfg, 1000 * MIB, &hard, &soft);
    assert_int_equal(soft, 450 * MIB);
}

/* Percentages take the total memory at start; without it start fails with the message. */
static void test_percentage_start(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->cfg.limit_mib = 0;
    f->cfg.limit_percentage = 50;
    f->fake.total = 1000 * MIB;
    fx_start(f);
    assert_int_equal(f->ml->hard, 500 * MIB);
    assert_int_equal(f->ml->soft, 400 * MIB);
    fx_free(f);

    f = fx_new();
    f->cfg.limit_mib = 0;
    f->cfg.limit_percentage = 50;
    f->fake.total_err = TH_ENOENT;
    assert_int_equal(th_component_create(&th_processor_memory_limiter_ops, "memory_limiter",
                                         &f->cfg, &f->sink.base, &f->c),
                     0);
    f->ml = (struct th_memory_limiter *)f->c;
    f->ml->total_memory = fake_total;
    th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
    assert_int_equal(th__memory_limiter_start(f->ml, NULL), TH_EIO);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    fx_free(f);
}

/* ---- Transitions ------------------------------------------------------------------------- */

static void test_refuse_and_resume(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    assert_false(f->ml->refusing);
    assert_int_equal(fx_consume(f, 3), 0);
    assert_int_equal(f->sink.spans, 3);

    /* just below the soft limit: still accepting */
    f->fake.usage = 80 * MIB - 1;
    th__memory_limiter_check(f->ml);
    assert_false(f->ml->refusing);

    /* exactly at the soft limit: refusing, every consume answers TH_ENOMEM */
    f->fake.usage = 80 * MIB;
    th__memory_limiter_check(f->ml);
    assert_true(f->ml->refusing);
    assert_int_equal(f->fake.trims, 0); /* 10s have not passed since start */
    assert_int_equal(fx_consume(f, 4), TH_ENOMEM);
    assert_int_equal(fx_consume(f, 5), TH_ENOMEM);
    assert_int_equal(f->sink.spans, 3);
    assert_int_equal(f->ml->stats.refused_spans, 9);
    assert_int_equal(f->ml->stats.accepted_spans, 3);

    /* back below: resume */
    f->fake.usage = 50 * MIB;
    th__memory_limiter_check(f->ml);
    assert_false(f->ml->refusing);
    assert_int_equal(fx_consume(f, 2), 0);
    assert_int_equal(f->sink.spans, 5);
    assert_int_equal(f->ml->stats.accepted_spans, 5);
    /* what the next consumer answers is passed back */
    f->sink.ret = TH_ERETRY;
    assert_int_equal(fx_consume(f, 1), TH_ERETRY);
    assert_int_equal(f->ml->stats.accepted_spans, 6);
    fx_free(f);
}

/* Above the soft limit a trim runs once min_gc_interval_when_soft_limited has passed; if it
 * frees enough the limiter does not refuse at all. */
static void test_soft_limit_trim(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    f->fake.usage = 90 * MIB;
    f->fake.now += 10 * SEC; /* exactly 10s: not yet (strictly more is needed) */
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 0);
    assert_true(f->ml->refusing);
    f->fake.now += 1;
    f->fake.trim_to = 60 * MIB;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 1);
    assert_false(f->ml->refusing);
    assert_int_equal(f->ml->usage, 60 * MIB);
    /* the next soft trim waits 10s again */
    f->fake.usage = 85 * MIB;
    f->fake.now += 5 * SEC;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 1);
    assert_true(f->ml->refusing);
    fx_free(f);
}

/* Above the hard limit a trim runs on every check (min 0); one that frees enough lifts the
 * refusal in the same check. */
static void test_hard_limit_trim(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    f->fake.usage = 100 * MIB; /* exactly the hard limit */
    f->fake.now += 1;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 1);
    assert_true(f->ml->refusing);
    /* that trim freed nothing, so the next waits 2s (check_interval doubled) */
    f->fake.now += 2 * SEC + 1;
    f->fake.trim_to = 20 * MIB;
    f->fake.usage = 120 * MIB;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 2);
    assert_false(f->ml->refusing);
    assert_int_equal(fx_consume(f, 1), 0);
    fx_free(f);
}

/* Trims that free less than 5% back off: the interval doubles from check_interval (the hard
 * minimum is 0) up to max_gc_interval_when_hard_limited, and resets once memory is fine. */
static void test_trim_backoff(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->cfg.max_gc_interval_when_hard_limited = 5 * SEC;
    fx_start(f);
    f->fake.usage = 150 * MIB;
    f->fake.now += 1;
    th__memory_limiter_check(f->ml); /* trim 1, ineffective */
    assert_int_equal(f->fake.trims, 1);
    assert_int_equal(f->ml->ineffective_trims, 1);
    f->fake.now += 2 * SEC; /* the interval is now 2s (1s doubled): not strictly more */
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 1);
    f->fake.now += 1;
    th__memory_limiter_check(f->ml); /* trim 2, ineffective: interval 4s */
    assert_int_equal(f->fake.trims, 2);
    f->fake.now += 4 * SEC + 1;
    th__memory_limiter_check(f->ml); /* trim 3: interval would be 8s, capped at 5s */
    assert_int_equal(f->fake.trims, 3);
    f->fake.now += 5 * SEC;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 3);
    f->fake.now += 1;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 4);
    /* an effective trim (more than 5% freed) resets the backoff */
    f->fake.now += 5 * SEC + 1;
    f->fake.trim_to = 140 * MIB;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->fake.trims, 5);
    assert_int_equal(f->ml->ineffective_trims, 0);
    assert_true(f->ml->refusing);
    /* below the soft limit resets it too */
    f->fake.trim_to = 0;
    f->fake.now += 1;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->ml->ineffective_trims, 1);
    f->fake.usage = 10 * MIB;
    th__memory_limiter_check(f->ml);
    assert_int_equal(f->ml->ineffective_trims, 0);
    assert_false(f->ml->refusing);
    fx_free(f);
}

/* A failing reader keeps the last state (and does not crash or flap). */
static void test_read_failure_keeps_state(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    f->fake.usage = 90 * MIB;
    th__memory_limiter_check(f->ml);
    assert_true(f->ml->refusing);
    f->fake.read_err = TH_EIO;
    th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
    th__memory_limiter_check(f->ml);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    assert_true(f->ml->refusing);
    f->fake.read_err = 0;
    f->fake.usage = 1 * MIB;
    th__memory_limiter_check(f->ml);
    assert_false(f->ml->refusing);
    fx_free(f);
}

/* Between ticks consume measures again every TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY calls. */
static void test_consume_checks_every_n_calls(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    f->fake.usage = 95 * MIB; /* memory jumped, no tick yet */
    for (int i = 1; i < TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY; i++) {
        assert_int_equal(fx_consume(f, 1), 0);
    }
    assert_false(f->ml->refusing);
    assert_int_equal(fx_consume(f, 1), TH_ENOMEM); /* the Nth call measures and refuses */
    assert_true(f->ml->refusing);
    assert_int_equal(f->ml->stats.quick_checks, 1);
    assert_int_equal(f->sink.batches, TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY - 1);
    /* only a tick lifts the refusal, never consume */
    f->fake.usage = 10 * MIB;
    for (int i = 0; i < 2 * TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY; i++) {
        assert_int_equal(fx_consume(f, 1), TH_ENOMEM);
    }
    th__memory_limiter_check(f->ml);
    assert_int_equal(fx_consume(f, 1), 0);
    fx_free(f);
}

/* ... and at once when the last measurement plus what it let through reaches the soft limit. */
static void test_consume_checks_on_estimate(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    fx_start(f);
    f->fake.usage = 80 * MIB - 4096; /* measured a hair below soft */
    th__memory_limiter_check(f->ml);
    assert_false(f->ml->refusing);
    f->fake.usage = 81 * MIB; /* what the next measurement will say */
    /* the batch's arena (16 KiB) takes the estimate past soft: measured, refused */
    assert_int_equal(fx_consume(f, 1), TH_ENOMEM);
    assert_true(f->ml->refusing);
    assert_int_equal(f->ml->stats.quick_checks, 1);
    assert_int_equal(f->sink.batches, 0);
    /* if the measurement disagrees with the estimate, data flows */
    f->fake.usage = 79 * MIB;
    th__memory_limiter_check(f->ml);
    f->fake.usage = 80 * MIB - 4096;
    th__memory_limiter_check(f->ml);
    assert_int_equal(fx_consume(f, 1), 0);
    assert_int_equal(f->ml->stats.quick_checks, 2);
    assert_int_equal(f->sink.batches, 1);
    fx_free(f);
}

/* Above the soft limit at start: refusing from the first request. */
static void test_refusing_from_start(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->fake.usage = 85 * MIB;
    fx_start(f);
    assert_true(f->ml->refusing);
    assert_int_equal(fx_consume(f, 1), TH_ENOMEM);
    fx_free(f);
}

/* ---- Lifecycle and the timer ----------------------------------------------------------- */

static void test_shutdown(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    /* shutdown without start, twice */
    assert_int_equal(th_component_create(&th_processor_memory_limiter_ops, "memory_limiter",
                                         &f->cfg, &f->sink.base, &f->c),
                     0);
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    th_component_destroy(f->c);
    f->c = NULL;
    fx_start(f);
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    assert_int_equal(fx_consume(f, 1), TH_ESHUTDOWN);
    assert_int_equal(th__memory_limiter_consume(f->ml, make_batch(1)), TH_ESHUTDOWN);
    assert_int_equal(f->sink.batches, 0);
    fx_free(f);
}

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    bool expired = false;
    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, ms, 0);
    while (!expired) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* On a real loop the timer checks every check_interval; shutdown closes it. */
static void test_timer_on_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct th_host host = {.loop = &loop};
    struct fixture *f = fx_new();
    f->cfg.check_interval = 10 * MS;
    assert_int_equal(th_component_create(&th_processor_memory_limiter_ops, "memory_limiter",
                                         &f->cfg, &f->sink.base, &f->c),
                     0);
    f->ml = (struct th_memory_limiter *)f->c;
    f->ml->test_data = &f->fake;
    f->ml->read_usage = fake_read;
    f->ml->trim = fake_trim;
    f->ml->now_ns = fake_now;
    assert_int_equal(f->c->ops->start(f->c, &host), 0);
    f->c->started = true;
    assert_int_equal(f->ml->stats.checks, 1); /* the first one at start */
    f->fake.usage = 90 * MIB;
    run_for(&loop, 60);
    assert_true(f->ml->stats.checks >= 3);
    assert_true(f->ml->refusing);
    f->fake.usage = 10 * MIB;
    run_for(&loop, 40);
    assert_false(f->ml->refusing);
    uint64_t checks = f->ml->stats.checks;
    assert_int_equal(f->c->ops->shutdown(f->c), 0);
    run_for(&loop, 30);
    assert_int_equal(f->ml->stats.checks, checks); /* no tick after shutdown */
    fx_free(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The real reader and trim, on this process: a tiny limit refuses, a huge one does not. */
static void test_real_reader(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct th_host host = {.loop = &loop};
    struct sink s = {.base.consume = sink_consume};
    struct th_memory_limiter_cfg cfg;
    default_cfg(&cfg);
    cfg.limit_mib = 1;
    /* 8 MiB of touched memory, held while the limiter measures: well above 1 MiB */
    size_t len = 8 * MIB;
    char *held = malloc(len);
    assert_non_null(held);
    memset(held, 1, len);
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_processor_memory_limiter_ops, "memory_limiter", &cfg, &s.base, &c),
        0);
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    assert_int_equal(c->ops->start(c, &host), 0);
    c->started = true;
    struct th_memory_limiter *ml = (struct th_memory_limiter *)c;
    assert_true(ml->usage >= 8 * MIB);
    assert_true(ml->refusing);
    assert_true(ml->stats.trims >= 1); /* above the hard limit: trimmed at once */
    assert_int_equal(th_consumer_consume(&c->consumer, make_batch(2)), TH_ENOMEM);
    th_component_destroy(c);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    free(held);

    cfg.limit_mib = 1 << 30;
    c = NULL;
    assert_int_equal(
        th_component_create(&th_processor_memory_limiter_ops, "memory_limiter", &cfg, &s.base, &c),
        0);
    assert_int_equal(c->ops->start(c, &host), 0);
    c->started = true;
    assert_int_equal(th_consumer_consume(&c->consumer, make_batch(2)), 0);
    assert_int_equal(s.spans, 2);
    th_component_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- Measuring ------------------------------------------------------------------------- */

static char tmp[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", tmp, rel);
    /* mkdir -p the directory */
    for (char *p = path + strlen(tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void new_tree(void)
{
    if (tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        assert_int_equal(system(cmd), 0);
    }
    snprintf(tmp, sizeof(tmp), "/tmp/th-memlim-XXXXXX");
    assert_non_null(mkdtemp(tmp));
}

static const char meminfo[] = "MemTotal:        1000000 kB\nMemFree:          500000 kB\n";

static void test_total_memory(void **state)
{
    (void)state;
    uint64_t total = 0;
    /* MemTotal only */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 1000000ull * 1024);

    /* cgroup v2: the smallest limit on the way up, "max" does not limit */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    write_file("/proc/self/cgroup", "0::/a/b\n");
    write_file("/sys/fs/cgroup/a/b/memory.max", "max\n");
    write_file("/sys/fs/cgroup/a/memory.max", "536870912\n");
    write_file("/sys/fs/cgroup/memory.max", "max\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 512 * MIB);

    /* v2 inside a cgroup namespace: "0::/" and the limit at the mount's root */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    write_file("/proc/self/cgroup", "0::/\n");
    write_file("/sys/fs/cgroup/memory.max", "100000000\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 100000000);

    /* cgroup v1, memory controller listed with another, unlimited root */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    write_file("/proc/self/cgroup", "9:name=systemd:/\n3:cpu,memory:/x/y\n0::/\n");
    write_file("/sys/fs/cgroup/memory/x/y/memory.limit_in_bytes", "268435456\n");
    write_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 256 * MIB);

    /* v1 path not visible inside the container: the mount's root holds the limit */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    write_file("/proc/self/cgroup", "4:memory:/docker/abc\n");
    write_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 128 * MIB);

    /* a cgroup limit above the machine's memory: MemTotal wins */
    new_tree();
    write_file("/proc/meminfo", meminfo);
    write_file("/proc/self/cgroup", "0::/\n");
    write_file("/sys/fs/cgroup/memory.max", "99999999999999\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 1000000ull * 1024);

    /* only a cgroup limit, no meminfo */
    new_tree();
    write_file("/proc/self/cgroup", "0::/\n");
    write_file("/sys/fs/cgroup/memory.max", "300000000\n");
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), 0);
    assert_int_equal(total, 300000000);

    /* nothing at all */
    new_tree();
    assert_int_equal(th__memory_limiter_total_memory_at(tmp, &total), TH_ENOENT);

    /* this machine: something sensible */
    assert_int_equal(th__memory_limiter_total_memory(&total), 0);
    assert_true(total >= 64 * MIB);
}

static void test_statm(void **state)
{
    (void)state;
    new_tree();
    write_file("/statm", "1000 600 100 10 0 500 0\n");
    char path[300];
    snprintf(path, sizeof(path), "%s/statm", tmp);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint64_t bytes = 0;
    assert_int_equal(th__memory_limiter_read_statm(fd, &bytes), 0);
    assert_int_equal(bytes, 500ull * (uint64_t)sysconf(_SC_PAGESIZE));
    /* read again from the same fd: pread at 0 */
    bytes = 0;
    assert_int_equal(th__memory_limiter_read_statm(fd, &bytes), 0);
    assert_int_equal(bytes, 500ull * (uint64_t)sysconf(_SC_PAGESIZE));
    close(fd);
    write_file("/statm", "garbage\n");
    fd = open(path, O_RDONLY);
    assert_int_equal(th__memory_limiter_read_statm(fd, &bytes), TH_EIO);
    close(fd);

    /* the real file follows real allocations: 64 MiB touched shows up */
    fd = open("/proc/self/statm", O_RDONLY);
    assert_true(fd >= 0);
    uint64_t before = 0;
    uint64_t after = 0;
    assert_int_equal(th__memory_limiter_read_statm(fd, &before), 0);
    size_t len = 64 * MIB;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, 1, len);
    assert_int_equal(th__memory_limiter_read_statm(fd, &after), 0);
    assert_true(after >= before + 60 * MIB);
    free(big);
    close(fd);
}

static int teardown_tree(void **state)
{
    (void)state;
    if (tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
        return system(cmd) == 0 ? 0 : -1;
    }
    return 0;
}

int main(void)
{
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_messages),
        cmocka_unit_test(test_init_refuses_bad_config),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_percentage_start),
        cmocka_unit_test(test_refuse_and_resume),
        cmocka_unit_test(test_soft_limit_trim),
        cmocka_unit_test(test_hard_limit_trim),
        cmocka_unit_test(test_trim_backoff),
        cmocka_unit_test(test_read_failure_keeps_state),
        cmocka_unit_test(test_consume_checks_every_n_calls),
        cmocka_unit_test(test_consume_checks_on_estimate),
        cmocka_unit_test(test_refusing_from_start),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_timer_on_loop),
        cmocka_unit_test(test_real_reader),
        cmocka_unit_test(test_total_memory),
        cmocka_unit_test(test_statm),
    };
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    teardown_tree(NULL);
    return ret;
}
