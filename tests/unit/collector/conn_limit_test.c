/*
 * Connection limits and the progress deadline: the max_connections keys of the OTLP receiver
 * (protocols::http and ::grpc) and of jaeger_query::http through the YAML layer, and the
 * watch that finds a request's connection by descriptor and cuts stalled ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/common.h"
#include "th/config.h"
#include "th/conn_limit.h"
#include "receivers/otlp/otlp_config.h"
#include "ui-api/jaeger/jaeger_query.h"

static int decode(const struct th_cfg_field *table, const char *yaml, void *cfg, th_arena_t *a,
                  char *err, size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret == 0) {
        ret = th_cfg_decode(table, node, cfg, a, "test", err, errlen);
    }
    return ret;
}

static void test_otlp_max_connections(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char err[256];
    struct th_otlp_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_otlp_config_fields, "protocols: {http: {}, grpc: {}}\n", &cfg, a,
                            err, sizeof(err)),
                     0);
    assert_int_equal(cfg.protocols.http.max_connections, 0); /* the derived default */
    assert_int_equal(cfg.protocols.grpc.max_connections, 0);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_otlp_config_fields,
                            "protocols:\n  http: {max_connections: 20}\n"
                            "  grpc: {max_connections: 1000}\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_int_equal(cfg.protocols.http.max_connections, 20);
    assert_int_equal(cfg.protocols.grpc.max_connections, 1000);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_otlp_config_fields, "protocols: {http: {max_connections: -1}}\n",
                            &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "max_connections"));
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_otlp_config_fields, "protocols: {grpc: {max_connections: lots}}\n",
                            &cfg, a, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "max_connections"));
    th_arena_destroy(a);
}

static void test_jaeger_max_connections(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char err[256];
    struct th_jaeger_query_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(
        decode(th_jaeger_query_config, "storage: {traces: s}\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(cfg.http.max_connections, 0);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_jaeger_query_config,
                            "storage: {traces: s}\nhttp: {max_connections: 20}\n", &cfg, a, err,
                            sizeof(err)),
                     0);
    assert_int_equal(cfg.http.max_connections, 20);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(decode(th_jaeger_query_config,
                            "storage: {traces: s}\nhttp: {max_connections: 2000000}\n", &cfg, a,
                            err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "max_connections"));
    th_arena_destroy(a);
}

/* The watch: requests are found by descriptor, keep their connection alive while in flight,
 * and a connection idle past the bound is shut down (its peer sees EOF) with one log line. */
static void test_watch(void **state)
{
    (void)state;
    int sv[2][2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[0]), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[1]), 0);
    struct th_conn_watch w;
    th_conn_watch_init(&w, 1000000000); /* 1 s */
    assert_int_equal(th_conn_watch_period_ms(&w), 125);
    struct th_conn_progress busy, idle;
    assert_int_equal(th_conn_watch_add(&w, &busy, sv[0][0]), 0);
    assert_int_equal(th_conn_watch_add(&w, &idle, sv[1][0]), 0);
    assert_ptr_equal(th_conn_watch_find(&w, sv[0][0]), &busy);
    assert_ptr_equal(th_conn_watch_find(&w, sv[1][0]), &idle);
    assert_null(th_conn_watch_find(&w, 100000));

    struct th_conn_req r;
    th_conn_req_begin(&r, th_conn_watch_find(&w, sv[0][0]));
    assert_int_equal(busy.in_flight, 1);
    uint64_t now = th_now_mono_ns();
    uint64_t cut = 0;
    /* Within the bound: nothing is cut. */
    assert_false(th_conn_watch_sweep(&w, now + 500000000, &cut));
    /* Past it: the idle one is cut, the one with a request in flight is not. */
    assert_true(th_conn_watch_sweep(&w, now + 2000000000, &cut));
    assert_int_equal(cut, 1);
    assert_true(idle.cut);
    assert_false(busy.cut);
    char c;
    assert_int_equal(recv(sv[1][1], &c, 1, 0), 0); /* EOF: shut down */
    /* The request ends: the clock restarts from now, so it is not cut at once. */
    th_conn_req_end(&r);
    th_conn_req_end(&r); /* idempotent */
    assert_int_equal(busy.in_flight, 0);
    assert_false(th_conn_watch_sweep(&w, th_now_mono_ns() + 500000000, &cut));
    assert_false(busy.cut);
    /* Cut again within ten seconds: counted, not logged. */
    assert_false(th_conn_watch_sweep(&w, th_now_mono_ns() + 2000000000, &cut));
    assert_true(busy.cut);

    /* A closed connection detaches its requests; a reused descriptor is not cleared. */
    th_conn_req_begin(&r, &busy);
    th_conn_watch_remove(&w, &busy);
    assert_null(r.conn);
    th_conn_req_end(&r);
    struct th_conn_progress newer;
    assert_int_equal(th_conn_watch_add(&w, &newer, sv[1][0]), 0);
    th_conn_watch_remove(&w, &idle); /* the older connection on the same fd */
    assert_ptr_equal(th_conn_watch_find(&w, sv[1][0]), &newer);
    th_conn_watch_remove(&w, &newer);
    assert_null(w.list);
    th_conn_watch_free(&w);
    for (int i = 0; i < 2; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/* The write timeout: a connection whose request has been in flight past the bound is shut down
 * (a client that never reads a large answer); one without a request, or whose request is
 * younger, is left to the progress deadline; a zero bound cuts nothing. */
static void test_write_timeout(void **state)
{
    (void)state;
    int sv[2][2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[0]), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[1]), 0);
    struct th_conn_watch w;
    th_conn_watch_init(&w, 60000000000ull); /* a long progress deadline: it plays no part */
    struct th_conn_progress writing, idle;
    assert_int_equal(th_conn_watch_add(&w, &writing, sv[0][0]), 0);
    assert_int_equal(th_conn_watch_add(&w, &idle, sv[1][0]), 0);
    struct th_conn_req r;
    th_conn_req_begin(&r, &writing);
    uint64_t now = th_now_mono_ns();
    uint64_t cut = 0;
    /* No bound configured: nothing is cut however late. */
    assert_false(th_conn_watch_sweep_writes(&w, now + 3600000000000ull, &cut));
    assert_false(writing.cut);
    w.write_bound_ns = 2000000000; /* 2 s */
    assert_false(th_conn_watch_sweep_writes(&w, now + 1000000000, &cut));
    assert_false(writing.cut);
    assert_true(th_conn_watch_sweep_writes(&w, now + 3000000000ull, &cut));
    assert_int_equal(cut, 1);
    assert_true(writing.cut);
    assert_false(idle.cut); /* no request in flight: the write timeout does not apply */
    char c;
    assert_int_equal(recv(sv[0][1], &c, 1, 0), 0); /* EOF: shut down */
    /* Already cut: not counted twice. */
    assert_false(th_conn_watch_sweep_writes(&w, now + 4000000000ull, &cut));
    th_conn_req_end(&r);
    th_conn_watch_remove(&w, &writing);
    th_conn_watch_remove(&w, &idle);
    th_conn_watch_free(&w);
    for (int i = 0; i < 2; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_otlp_max_connections),
        cmocka_unit_test(test_jaeger_max_connections),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_write_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
