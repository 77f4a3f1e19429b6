/*
 * Tests of the nop exporter: it is registered, takes every batch, releases it at once (its
 * acks settle with success), counts the spans, and follows the lifecycle contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exporters/nop/nop.h"
#include "exporter_fixture.h"

static void test_registered(void **state)
{
    (void)state;
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "nop"), &th_exporter_nop_ops);
    assert_int_equal(th_exporter_nop_ops.abi, TH_COMPONENT_ABI);
    assert_int_equal(th_exporter_nop_ops.kind, TH_KIND_EXPORTER);
    assert_true(th_exporter_nop_ops.signals & TH_SIGNAL_TRACES);
    /* No keys, as in the Collector: the table is only its terminator. */
    assert_null(th_exporter_nop_ops.config[0].name);
    assert_true(th_exporter_nop_ops.config_size > 0);
}

static void test_consume_releases(void **state)
{
    (void)state;
    struct th_nop_cfg cfg = {0};
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_nop_ops, "nop", &cfg, NULL, &c), 0);
    struct th_host host = {0};
    if (c->ops->start) {
        assert_int_equal(c->ops->start(c, &host), 0);
    }
    struct fx_acks acks[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        th_batch_t *b = fx_batch();
        assert_non_null(b);
        fx_track(b, &acks[i]);
        assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
        /* Released inside consume: the ack has settled already, with success. */
        assert_int_equal(acks[i].settled, 1);
        assert_int_equal(acks[i].result, 0);
    }
    assert_int_equal(c->stats.accepted, 9);
    assert_int_equal(c->stats.sent, 9);
    assert_int_equal(c->stats.refused, 0);
    th_component_destroy(c);
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct th_nop_cfg cfg = {0};
    struct th_component *c = NULL;
    /* create → destroy without start; then create → start → destroy twice over. */
    assert_int_equal(th_component_create(&th_exporter_nop_ops, "nop/a", &cfg, NULL, &c), 0);
    assert_string_equal(c->id, "nop/a");
    th_component_destroy(c);
    for (int i = 0; i < 2; i++) {
        struct th_host host = {0};
        assert_int_equal(th_component_create(&th_exporter_nop_ops, "nop", &cfg, NULL, &c), 0);
        if (c->ops->start) {
            assert_int_equal(c->ops->start(c, &host), 0);
        }
        if (c->ops->shutdown) {
            assert_int_equal(c->ops->shutdown(c), 0);
        }
        th_component_destroy(c);
    }
    th_component_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered),
        cmocka_unit_test(test_consume_releases),
        cmocka_unit_test(test_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
