/*
 * jaeger_storage_exporter: its defaults decode as documented (the queue section's rows are
 * relative to the section), batches reach a real LMDB store through the writer thread, the
 * senders' acks settle only after the commit, and a full queue answers TH_ERETRY.
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

extern const struct th_component_ops th_exporter_jaeger_storage_ops;

static void test_defaults(void **state)
{
    (void)state;
    const struct th_component_ops *o = &th_exporter_jaeger_storage_ops;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_jaeger_storage_exporter_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    char err[256];
    assert_int_equal(th_cfg_defaults(o->config, &cfg, a, err, sizeof(err)), 0);
    assert_true(cfg.queue.enabled);
    assert_int_equal(cfg.queue.queue_size, 1000);
    assert_int_equal(cfg.queue.num_consumers, 1);
    assert_string_equal(cfg.queue.sizer, "requests");
    assert_int_equal(cfg.max_queue_bytes, 64ll << 20);
    assert_int_equal(cfg.max_batches_per_txn, 64);
    assert_int_equal(cfg.retention_interval, 30ll * 1000000000ll);
    th_arena_destroy(a);
}

struct settled {
    int calls;
    int result;
};

static void on_settled(th_ack_t *ack, int result)
{
    struct settled *s = ack->data;
    __atomic_store_n(&s->result, result, __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_ACQ_REL);
}

static void test_writes_and_settles_after_commit(void **state)
{
    (void)state;
    char dir[] = "/tmp/th-jse-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct th_store_cfg scfg = {.path = dir, .ttl_ns = 3600ll * 1000000000ll, .sync = true};
    th_store_t *store = NULL;
    char err[256];
    assert_int_equal(th_store_open(&th_store_lmdb_ops, &scfg, &store, err, sizeof(err)), 0);

    struct th_component owner = {
        .id = "jaeger_storage_exporter", .kind_name = "exporter", .log_level = -1};
    struct th_jse_writer w;
    assert_int_equal(th__jse_writer_init(&w, &owner, 4, 64 << 20, 8, 1000000000ull), 0);
    assert_int_equal(th__jse_writer_start(&w, store), 0);

    struct settled s = {0};
    th_ack_t *ack = th_ack_create(on_settled, &s);
    th_batch_t *b = fx_batch();
    uint8_t trace_id[16];
    memcpy(trace_id, b->req->resource_spans[0]->scope_spans[0]->spans[0]->trace_id.data, 16);
    size_t spans = b->span_count;
    assert_int_equal(th_batch_add_ack(b, ack), 0);
    assert_int_equal(th__jse_writer_push(&w, b), 0);
    th_ack_settle(ack, 0); /* the receiver's own reference */
    for (int i = 0; i < 500 && __atomic_load_n(&s.calls, __ATOMIC_ACQUIRE) == 0; i++) {
        usleep(2000);
    }
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.result, 0);
    /* Settled means committed: a reader sees the trace now. */
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *got = NULL;
    assert_int_equal(th_store_get_trace(store, trace_id, 0, 0, a, &got), 0);
    assert_true(th_otlp_request_span_count(got) >= 1);
    assert_int_equal(owner.stats.sent, spans);
    th_arena_destroy(a);

    th__jse_writer_stop(&w);
    /* After stop nothing is taken. */
    assert_int_equal(th__jse_writer_push(&w, fx_batch()), TH_ESHUTDOWN);
    th__jse_writer_deinit(&w);
    th_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_full_queue_refuses(void **state)
{
    (void)state;
    struct th_component owner = {
        .id = "jaeger_storage_exporter", .kind_name = "exporter", .log_level = -1};
    struct th_jse_writer w;
    /* Two batches at most; the writer is "running" without a thread, so nothing drains. */
    assert_int_equal(th__jse_writer_init(&w, &owner, 2, 64 << 20, 8, 1000000000ull), 0);
    w.running = true;
    struct settled s = {0};
    th_ack_t *ack = th_ack_create(on_settled, &s);
    th_batch_t *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = fx_batch();
        assert_int_equal(th_batch_add_ack(b[i], ack), 0);
    }
    assert_int_equal(th__jse_writer_push(&w, b[0]), 0);
    assert_int_equal(th__jse_writer_push(&w, b[1]), 0);
    assert_int_equal(th__jse_writer_push(&w, b[2]), TH_ERETRY);
    w.running = false;
    /* What was never written is failed back to the sender. */
    th__jse_writer_deinit(&w);
    th_ack_settle(ack, 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.result, TH_ESHUTDOWN);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_writes_and_settles_after_commit),
        cmocka_unit_test(test_full_queue_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
