/*
 * The fan-out: read-only consumers share one batch, mutating consumers get copies, every
 * reference is released exactly once, and results merge with retryable failures winning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "collector/fanout.h"

struct probe {
    struct th_consumer base;
    th_batch_t *got;
    int result;
    bool mutate; /* change the span name, as a mutating processor would */
};

static int probe_consume(struct th_consumer *self, th_batch_t *b)
{
    struct probe *p = (struct probe *)self;
    p->got = b;
    if (p->mutate) {
        b->req->resource_spans[0]->scope_spans[0]->spans[0]->name = "changed";
    }
    return p->result;
}

static th_batch_t *make_batch(void)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = th_arena_calloc(a, 1, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    th_otlp_resource_spans_t *rs = th_arena_calloc(a, 1, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    th_otlp_scope_spans_t *ss = th_arena_calloc(a, 1, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    th_otlp_span_t *sp = th_arena_calloc(a, 1, sizeof(*sp));
    opentelemetry__proto__trace__v1__span__init(sp);
    sp->name = "original";
    ss->spans = th_arena_calloc(a, 1, sizeof(void *));
    ss->spans[0] = sp;
    ss->n_spans = 1;
    rs->scope_spans = th_arena_calloc(a, 1, sizeof(void *));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    req->resource_spans = th_arena_calloc(a, 1, sizeof(void *));
    req->resource_spans[0] = rs;
    req->n_resource_spans = 1;
    return th_batch_create(a, req);
}

static const char *name_of(th_batch_t *b)
{
    return b->req->resource_spans[0]->scope_spans[0]->spans[0]->name;
}

static void test_readers_share(void **state)
{
    (void)state;
    struct probe p[3];
    struct th_consumer *outs[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct probe){.base = {.consume = probe_consume}};
        outs[i] = &p[i].base;
    }
    struct th__fanout *f = th__fanout_create(outs, 3);
    th_batch_t *b = make_batch();
    assert_int_equal(th_consumer_consume(&f->base, b), 0);
    assert_ptr_equal(p[0].got, b);
    assert_ptr_equal(p[1].got, b);
    assert_ptr_equal(p[2].got, b);
    assert_int_equal(b->refs, 3);
    th_batch_release(b);
    th_batch_release(b);
    th_batch_release(b);
    th__fanout_destroy(f);
}

static void test_mutator_gets_copy(void **state)
{
    (void)state;
    struct probe reader = {.base = {.consume = probe_consume}};
    struct probe writer = {.base = {.consume = probe_consume, .caps = TH_CAP_MUTATES},
                           .mutate = true};
    struct th_consumer *outs[2] = {&writer.base, &reader.base};
    struct th__fanout *f = th__fanout_create(outs, 2);
    assert_true(f->base.caps & TH_CAP_MUTATES);
    th_batch_t *b = make_batch();
    assert_int_equal(th_consumer_consume(&f->base, b), 0);
    assert_ptr_equal(reader.got, b);
    assert_ptr_not_equal(writer.got, b);
    assert_string_equal(name_of(reader.got), "original");
    assert_string_equal(name_of(writer.got), "changed");
    th_batch_release(reader.got);
    th_batch_release(writer.got);
    th__fanout_destroy(f);
}

static void test_only_mutators(void **state)
{
    (void)state;
    struct probe w1 = {.base = {.consume = probe_consume, .caps = TH_CAP_MUTATES}, .mutate = true};
    struct probe w2 = {.base = {.consume = probe_consume, .caps = TH_CAP_MUTATES}};
    struct th_consumer *outs[2] = {&w1.base, &w2.base};
    struct th__fanout *f = th__fanout_create(outs, 2);
    th_batch_t *b = make_batch();
    assert_int_equal(th_consumer_consume(&f->base, b), 0);
    /* The last mutating consumer takes the original; the first a copy it may change. */
    assert_ptr_equal(w2.got, b);
    assert_ptr_not_equal(w1.got, b);
    assert_string_equal(name_of(w2.got), "original");
    th_batch_release(w1.got);
    th_batch_release(w2.got);
    th__fanout_destroy(f);
}

static void test_merge(void **state)
{
    (void)state;
    assert_int_equal(th__fanout_merge(0, 0), 0);
    assert_int_equal(th__fanout_merge(0, TH_HELD), TH_HELD);
    assert_int_equal(th__fanout_merge(TH_EPERM, 0), TH_EPERM);
    assert_int_equal(th__fanout_merge(TH_EPERM, TH_ERETRY), TH_ERETRY);
    assert_int_equal(th__fanout_merge(TH_ENOMEM, TH_EPERM), TH_ERETRY);
    assert_int_equal(th__fanout_merge(TH_HELD, TH_EINVAL), TH_EINVAL);

    struct probe ok = {.base = {.consume = probe_consume}};
    struct probe busy = {.base = {.consume = probe_consume}, .result = TH_ERETRY};
    struct th_consumer *outs[2] = {&ok.base, &busy.base};
    struct th__fanout *f = th__fanout_create(outs, 2);
    th_batch_t *b = make_batch();
    assert_int_equal(th_consumer_consume(&f->base, b), TH_ERETRY);
    th_batch_release(b);
    th_batch_release(b);
    th__fanout_destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_share),
        cmocka_unit_test(test_mutator_gets_copy),
        cmocka_unit_test(test_only_mutators),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
