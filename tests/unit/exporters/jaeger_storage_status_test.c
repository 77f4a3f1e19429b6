/*
 * What the jaeger_storage_exporter tells health_check and the metrics endpoint, driven by a
 * scripted store: a write the store cannot take (even after retention) marks the exporter
 * unhealthy with the reason (full store or failing writes), the next successful write clears
 * it, and a full writer queue counts its refused spans and shows in the queue stats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporter_fixture.h"
#include "exporters/jaeger_storage/jaeger_storage_exporter.h"
#include "th/log.h"

/* A store whose writes return what the test says. */
struct fake_store {
    th_store_t base;
    int write_result;    /* atomic */
    int writes;          /* atomic */
    int retention_frees; /* atomic: a retention pass deletes spans */
    uint64_t deleted;    /* atomic */
};

static int fake_write(th_store_t *s, th_batch_t *const *b, size_t n)
{
    (void)b;
    (void)n;
    struct fake_store *f = (struct fake_store *)s;
    __atomic_add_fetch(&f->writes, 1, __ATOMIC_ACQ_REL);
    return __atomic_load_n(&f->write_result, __ATOMIC_ACQUIRE);
}

static int fake_retention(th_store_t *s, uint64_t now_ns)
{
    (void)now_ns;
    (void)s;
    return 0;
}

static void fake_stats(th_store_t *s, struct th_store_stats *out)
{
    (void)s;
    memset(out, 0, sizeof(*out));
}

static const struct th_store_ops fake_ops = {
    .name = "fake", .write = fake_write, .retention = fake_retention, .stats = fake_stats};

static int wait_status(struct th_component *c, int want)
{
    for (int i = 0; i < 1000 && th_component_status(c, NULL) != want; i++) {
        usleep(5000);
    }
    return th_component_status(c, NULL);
}

static void push_and_wait(struct th_jse_writer *w, struct fake_store *f)
{
    int before = __atomic_load_n(&f->writes, __ATOMIC_ACQUIRE);
    assert_int_equal(th__jse_writer_push(w, fx_batch()), 0);
    for (int i = 0; i < 1000 && __atomic_load_n(&f->writes, __ATOMIC_ACQUIRE) == before; i++) {
        usleep(2000);
    }
    assert_true(__atomic_load_n(&f->writes, __ATOMIC_ACQUIRE) > before);
}

static void test_status_follows_writes(void **state)
{
    (void)state;
    struct fake_store f = {.base = {.ops = &fake_ops}, .write_result = TH_ESPACE};
    struct th_jaeger_storage_exporter e = {.base = {.id = "jaeger_storage_exporter",
                                                    .kind_name = "exporter",
                                                    .log_level = TH_LOG_OFF}};
    struct th_jse_writer *w = &e.writer;
    assert_int_equal(th__jse_writer_init(w, &e.base, 4, 64 << 20, 8, 20000000ull), 0);
    assert_int_equal(th__jse_writer_start(w, &f.base), 0);
    const char *reason = NULL;
    assert_int_equal(th_component_status(&e.base, &reason), 0);
    assert_null(reason);

    /* full even after retention: unhealthy, with the reason */
    push_and_wait(w, &f);
    assert_int_equal(wait_status(&e.base, TH_ESPACE), TH_ESPACE);
    assert_int_equal(th_component_status(&e.base, &reason), TH_ESPACE);
    assert_string_equal(reason, "the store is full");

    /* the next write that succeeds clears it */
    __atomic_store_n(&f.write_result, 0, __ATOMIC_RELEASE);
    push_and_wait(w, &f);
    assert_int_equal(wait_status(&e.base, 0), 0);

    /* an I/O error is reported as failing writes */
    __atomic_store_n(&f.write_result, TH_EIO, __ATOMIC_RELEASE);
    push_and_wait(w, &f);
    assert_int_equal(wait_status(&e.base, TH_EIO), TH_EIO);
    assert_int_equal(th_component_status(&e.base, &reason), TH_EIO);
    assert_string_equal(reason, "the store cannot write");

    /* a successful write clears it again */
    __atomic_store_n(&f.write_result, 0, __ATOMIC_RELEASE);
    push_and_wait(w, &f);
    assert_int_equal(wait_status(&e.base, 0), 0);

    th__jse_writer_stop(w);
    th__jse_writer_deinit(w);
}

static void test_full_queue_counts(void **state)
{
    (void)state;
    struct th_jaeger_storage_exporter e = {.base = {.id = "jaeger_storage_exporter",
                                                    .kind_name = "exporter",
                                                    .log_level = TH_LOG_OFF}};
    struct th_jse_writer *w = &e.writer;
    assert_int_equal(th__jse_writer_init(w, &e.base, 2, 64 << 20, 8, 1000000000ull), 0);
    w->running = true; /* no thread: nothing drains */
    th_batch_t *b = fx_batch();
    size_t spans = b->span_count;
    assert_int_equal(th__jse_writer_push(w, b), 0);
    assert_int_equal(th__jse_writer_push(w, fx_batch()), 0);
    uint64_t size, cap, failed;
    th_jaeger_storage_exporter_queue_stats(&e.base, &size, &cap, &failed);
    assert_int_equal(size, 2);
    assert_int_equal(cap, 2);
    assert_int_equal(failed, 0);
    assert_int_equal(th__jse_writer_push(w, fx_batch()), TH_ERETRY);
    th_jaeger_storage_exporter_queue_stats(&e.base, NULL, NULL, &failed);
    assert_int_equal(failed, spans);
    w->running = false;
    th__jse_writer_deinit(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_follows_writes),
        cmocka_unit_test(test_full_queue_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
