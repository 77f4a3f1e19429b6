/*
 * The generic contract every registered component must keep (STYLE rule 20): its config
 * table documents every key and its defaults parse within bounds; it can be created with
 * defaults and destroyed without start; and create → start → shutdown → destroy → create →
 * start again works (so ports, files and threads are really released).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/collector.h"
#include "th/log.h"

static char tmpdir[256];

static void check_table(const struct th_cfg_field *t, const char *type)
{
    for (; t && t->name; t++) {
        if (!t->desc || !*t->desc) {
            fail_msg("%s: config key \"%s\" has no description", type, t->name);
        }
        if (t->type == TH_CFG_ENUM && !t->choices) {
            fail_msg("%s: enum key \"%s\" lists no choices", type, t->name);
        }
        if (t->type == TH_CFG_SECTION || t->type == TH_CFG_OPTIONAL) {
            assert_non_null(t->sub);
            check_table(t->sub, type);
        }
    }
}

static void test_tables_documented(void **state)
{
    (void)state;
    size_t n = 0;
    for (size_t i = 0; th_builtin[i]; i++, n++) {
        const struct th_component_ops *o = th_builtin[i];
        assert_int_equal(o->abi, TH_COMPONENT_ABI);
        assert_true(o->instance_size >= sizeof(struct th_component));
        assert_non_null(o->description);
        check_table(o->config, o->type);
    }
    assert_true(n > 0);
}

static void test_defaults_parse(void **state)
{
    (void)state;
    for (size_t i = 0; th_builtin[i]; i++) {
        const struct th_component_ops *o = th_builtin[i];
        if (!o->config) {
            continue;
        }
        th_arena_t *a = th_arena_create(0, 0);
        void *cfg = th_arena_calloc(a, 1, o->config_size ? o->config_size : 1);
        char err[512] = "";
        int ret = th_cfg_defaults(o->config, cfg, a, err, sizeof(err));
        if (ret != 0) {
            fail_msg("%s: defaults do not parse: %s", o->type, err);
        }
        th_arena_destroy(a);
    }
}

/* Decode the defaults, overriding what a component needs to run in a test (free ports, a
 * temporary file) through a YAML snippet. */
static void *component_cfg(const struct th_component_ops *o, th_arena_t *a)
{
    char yaml[512] = "{}";
    if (o->kind == TH_KIND_RECEIVER && !strcmp(o->type, "otlp")) {
        snprintf(yaml, sizeof(yaml), "protocols:\n  http:\n    endpoint: 127.0.0.1:0\n");
    } else if (o->kind == TH_KIND_EXPORTER && !strcmp(o->type, "file")) {
        snprintf(yaml, sizeof(yaml), "path: %s/out.jsonl\n", tmpdir);
    } else if (o->kind == TH_KIND_PROCESSOR && !strcmp(o->type, "memory_limiter")) {
        /* check_interval and a limit are required (the Collector has no usable default). */
        snprintf(yaml, sizeof(yaml), "check_interval: 1s\nlimit_mib: 4096\n");
    } else if (o->kind == TH_KIND_PROCESSOR && !strcmp(o->type, "attributes")) {
        /* actions are required (the Collector's default config is invalid too). */
        snprintf(yaml, sizeof(yaml), "actions:\n  - {key: k, action: delete}\n");
    } else if (o->kind == TH_KIND_EXPORTER && !strcmp(o->type, "otlp_http")) {
        /* an endpoint is required; nothing listens on port 1 (nothing is sent here) */
        snprintf(yaml, sizeof(yaml), "endpoint: http://127.0.0.1:1\n");
    } else if (o->kind == TH_KIND_EXPORTER && !strcmp(o->type, "otlp_grpc")) {
        /* an endpoint is required; nothing listens on port 1 (nothing is sent here) */
        snprintf(yaml, sizeof(yaml), "endpoint: 127.0.0.1:1\ntls: {insecure: true}\n");
    } else if (o->kind == TH_KIND_PROCESSOR && !strcmp(o->type, "tail_sampling")) {
        /* policies are required (the Collector's default config is invalid too). */
        snprintf(yaml, sizeof(yaml), "policies:\n  - {name: all, type: always_sample}\n");
    } else if (o->kind == TH_KIND_EXPORTER && !strcmp(o->type, "jaeger_storage_exporter")) {
        snprintf(yaml, sizeof(yaml), "trace_storage: contract\n");
    } else if (o->kind == TH_KIND_EXTENSION && !strcmp(o->type, "jaeger_query")) {
        /* storage::traces is required; host_ext hands out a store named "contract". */
        snprintf(yaml, sizeof(yaml),
                 "storage: {traces: contract}\nhttp: {endpoint: \"127.0.0.1:0\"}\n");
    } else if (o->kind == TH_KIND_EXTENSION && !strcmp(o->type, "health_check")) {
        /* the default localhost:13133 may be taken by a collector running beside the tests */
        snprintf(yaml, sizeof(yaml), "endpoint: \"127.0.0.1:0\"\n");
    } else if (o->kind == TH_KIND_EXPORTER && !strcmp(o->type, "prometheus")) {
        /* an endpoint is required (the Collector has no default); any free port */
        snprintf(yaml, sizeof(yaml), "endpoint: 127.0.0.1:0\n");
    } else if (o->kind == TH_KIND_EXTENSION && !strcmp(o->type, "bearertokenauth")) {
        /* a token (or a file) is required, as in the Collector */
        snprintf(yaml, sizeof(yaml), "token: contract-token\n");
    } else if (o->kind == TH_KIND_EXTENSION && !strcmp(o->type, "basicauth")) {
        /* htpasswd or client_auth is required, as in the Collector ({SHA} of "pw") */
        snprintf(yaml, sizeof(yaml),
                 "htpasswd: {inline: \"u:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\"}\n");
    } else if (o->kind == TH_KIND_EXTENSION && !strcmp(o->type, "file_storage")) {
        /* the default directory (the Collector's /var/lib/otelcol/file_storage) must exist */
        snprintf(yaml, sizeof(yaml), "directory: %s\n", tmpdir);
    }
    char err[512] = "";
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<contract>", a, &node, err, sizeof(err)),
                     0);
    void *cfg = th_arena_calloc(a, 1, o->config_size ? o->config_size : 1);
    if (o->config) {
        int ret = th_cfg_decode(o->config, node, cfg, a, o->type, err, sizeof(err));
        if (ret != 0) {
            fail_msg("%s: %s", o->type, err);
        }
        const char *why = NULL;
        if (o->config_check && o->config_check(cfg, &why) != 0) {
            fail_msg("%s: default config fails its check: %s", o->type, why);
        }
    }
    return cfg;
}

/* A started jaeger_storage with one backend, "contract", for the components that read or
 * write a store (th_jaeger_storage_find asks the host for it). */
static struct th_component *storage_ext;

static struct th_component *host_ext(struct th_host *h, const char *id)
{
    (void)h;
    return storage_ext && !strcmp(id, "jaeger_storage") ? storage_ext : NULL;
}

static void storage_start(struct th_host *host, th_arena_t *a)
{
    const struct th_component_ops *o = th_registry_find(TH_KIND_EXTENSION, "jaeger_storage");
    if (!o) {
        return;
    }
    static const char yaml[] = "backends: {contract: {memory: {max_traces: 1000}}}\n";
    char err[512] = "";
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<contract>", a, &node, err, sizeof(err)),
                     0);
    void *cfg = th_arena_calloc(a, 1, o->config_size ? o->config_size : 1);
    if (th_cfg_decode(o->config, node, cfg, a, o->type, err, sizeof(err)) != 0) {
        fail_msg("jaeger_storage: %s", err);
    }
    assert_int_equal(th_component_create(o, "jaeger_storage", cfg, NULL, &storage_ext), 0);
    storage_ext->host = host;
    assert_int_equal(o->start(storage_ext, host), 0);
    storage_ext->started = true;
}

static void host_fatal(struct th_host *h, struct th_component *c, int err)
{
    (void)h;
    fail_msg("%s reported a fatal error: %s", c->id, th_strerror(err));
}

static int discard(struct th_consumer *self, th_batch_t *b)
{
    (void)self;
    th_batch_release(b);
    return 0;
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct th_consumer sink = {.consume = discard};
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct th_host host = {.loop = &loop, .get_extension = host_ext, .report_fatal = host_fatal};
    th_arena_t *storage_arena = th_arena_create(0, 0);
    storage_start(&host, storage_arena);
    for (size_t i = 0; th_builtin[i]; i++) {
        const struct th_component_ops *o = th_builtin[i];
        th_arena_t *a = th_arena_create(0, 0);
        void *cfg = component_cfg(o, a);
        struct th_consumer *next =
            o->kind == TH_KIND_EXPORTER || o->kind == TH_KIND_EXTENSION ? NULL : &sink;
        /* create → destroy without start */
        struct th_component *c = NULL;
        assert_int_equal(th_component_create(o, o->type, cfg, next, &c), 0);
        if (o->shutdown) {
            assert_int_equal(o->shutdown(c), 0); /* shutdown without start is safe */
            assert_int_equal(o->shutdown(c), 0); /* and idempotent */
        }
        th_component_destroy(c);
        /* twice: create → start → shutdown → destroy */
        for (int round = 0; round < 2; round++) {
            c = NULL;
            assert_int_equal(th_component_create(o, o->type, cfg, next, &c), 0);
            c->host = &host;
            int ret = o->start ? o->start(c, &host) : 0;
            if (ret != 0) {
                fail_msg("%s: start failed in round %d: %s", o->type, round, th_strerror(ret));
            }
            c->started = true;
            uv_run(&loop, UV_RUN_NOWAIT);
            if (o->shutdown) {
                assert_int_equal(o->shutdown(c), 0);
            }
            c->shut_down = true;
            th_component_destroy(c);
            /* Let closing handles finish before the next round. */
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        th_arena_destroy(a);
    }
    th_component_destroy(storage_ext);
    storage_ext = NULL;
    th_arena_destroy(storage_arena);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/th-contract-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_documented),
        cmocka_unit_test(test_defaults_parse),
        cmocka_unit_test(test_lifecycle),
    };
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        return 1;
    }
    return ret;
}
