/*
 * Tests of the jaeger_storage extension: its config forms (lmdb, and Jaeger's memory and
 * badger mapped onto LMDB), its error messages with their full key paths (also through the
 * collector), th_jaeger_storage_find, the lifecycle (temporary directories made and removed)
 * and background retention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "store/jaeger_storage/jaeger_storage.h"
#include "store_test_util.h"
#include "th/collector.h"

static th_arena_t *arena;

/* Decode an extension config from YAML; @return config_check's result (message in *why). */
static int decode(const char *yaml, struct th_jaeger_storage_cfg *cfg, const char **why)
{
    char err[512] = "";
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<test>", arena, &node, err, sizeof(err)),
                     0);
    const struct th_component_ops *o = &th_extension_jaeger_storage_ops;
    int ret =
        th_cfg_decode(o->config, node, cfg, arena, "extensions::jaeger_storage", err, sizeof(err));
    if (ret != 0) {
        fail_msg("decode: %s", err);
    }
    *why = NULL;
    return o->config_check(cfg, why);
}

static struct th__js_backend *backend(struct th__js_backend *b, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(b[i].name, name)) {
            return &b[i];
        }
    }
    fail_msg("no backend %s", name);
    return NULL;
}

static void test_config_forms(void **state)
{
    (void)state;
    struct th_jaeger_storage_cfg cfg;
    const char *why;
    assert_int_equal(decode("backends:\n"
                            "  main:\n"
                            "    lmdb:\n"
                            "      path: /tmp/th-js-main\n"
                            "      ttl: {spans: 24h}\n"
                            "      max_size_mib: 100\n"
                            "      sync: false\n"
                            "  mem:\n"
                            "    memory: {max_traces: 1000}\n"
                            "  big:\n"
                            "    memory: {max_traces: 1000000}\n"
                            "  bdg:\n"
                            "    badger:\n"
                            "      directories: {keys: /tmp/th-js-k, values: /tmp/th-js-v}\n"
                            "      ephemeral: false\n"
                            "      ttl: {spans: 1h}\n"
                            "      consistency: true\n"
                            "      maintenance_interval: 1m\n"
                            "  defaults:\n"
                            "    lmdb:\n"
                            "  eph:\n"
                            "    badger: {}\n"
                            "metric_backends:\n"
                            "  prom: {prometheus: {endpoint: x}}\n",
                            &cfg, &why),
                     0);
    struct th__js_backend *b;
    size_t n;
    char err[512];
    assert_int_equal(th__js_decode(&cfg, arena, &b, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 6);
    struct th__js_backend *m = backend(b, n, "main");
    assert_string_equal(m->type, "lmdb");
    assert_string_equal(m->store.path, "/tmp/th-js-main");
    assert_int_equal(m->store.ttl_ns, 24 * 3600 * TU_S);
    assert_int_equal(m->store.max_size_bytes, 100ll << 20);
    assert_false(m->store.sync);
    assert_false(m->store.ephemeral);
    assert_int_equal(m->store.retention_interval_ns, 30 * TU_S);
    /* memory: a temporary store sized by max_traces, no ttl, deleted at exit */
    m = backend(b, n, "mem");
    assert_null(m->store.path);
    assert_true(m->store.ephemeral);
    assert_int_equal(m->store.ttl_ns, 0);
    assert_int_equal(m->store.max_size_bytes, 16ll << 20);
    m = backend(b, n, "big");
    assert_int_equal(m->store.max_size_bytes, 1000000ll * TH_JS_BYTES_PER_TRACE);
    /* badger: directories.keys is the store, consistency is sync */
    m = backend(b, n, "bdg");
    assert_string_equal(m->store.path, "/tmp/th-js-k");
    assert_false(m->store.ephemeral);
    assert_int_equal(m->store.ttl_ns, 3600 * TU_S);
    assert_true(m->store.sync);
    assert_int_equal(m->store.retention_interval_ns, 60 * TU_S);
    /* defaults */
    m = backend(b, n, "defaults");
    assert_string_equal(m->store.path, "./tracehouse-data");
    assert_int_equal(m->store.ttl_ns, 72 * 3600 * TU_S);
    assert_int_equal(m->store.max_size_bytes, 0);
    assert_true(m->store.sync);
    m = backend(b, n, "eph");
    assert_true(m->store.ephemeral);
    assert_null(m->store.path);
    assert_int_equal(m->store.ttl_ns, 72 * 3600 * TU_S);
    assert_false(m->store.sync);
    /* no backends at all is fine */
    assert_int_equal(decode("{}", &cfg, &why), 0);
    assert_int_equal(th__js_decode(&cfg, arena, &b, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
}

static void check_error(const char *yaml, const char *want_prefix, const char *want_part)
{
    struct th_jaeger_storage_cfg cfg;
    const char *why;
    assert_int_equal(decode(yaml, &cfg, &why), TH_ECONFIG);
    assert_non_null(why);
    if (strncmp(why, want_prefix, strlen(want_prefix)) || !strstr(why, want_part)) {
        fail_msg("got \"%s\", want \"%s...%s...\"", why, want_prefix, want_part);
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    check_error("backends: {main: {lmdb: {ttl: {spans: 3x}}}}",
                "::backends::main::lmdb::ttl::spans: ", "invalid duration");
    check_error("backends: {main: {lmdb: {pathh: /x}}}", "::backends::main::lmdb", "pathh");
    check_error("backends: {main: {lmdb: {max_size_mib: -1}}}",
                "::backends::main::lmdb::max_size_mib: ", "out of range");
    check_error("backends: {main: {lmdb: {path: ''}}}", "::backends::main::lmdb::path: ", "empty");
    check_error("backends: {main: {rocks: {}}}",
                "::backends::main::rocks: ", "unknown backend type");
    check_error("backends: {main: {cassandra: {}}}",
                "::backends::main::cassandra: ", "not served by Tracehouse");
    check_error("backends: {main: {lmdb: {}, memory: {}}}",
                "::backends::main: ", "exactly one backend type");
    check_error("backends: {main: x}", "::backends::main: ", "exactly one backend type");
    check_error("backends: [a]", "::backends: ", "map");
    check_error("backends: {m: {memory: {max_traces: 0}}}",
                "::backends::m::memory::max_traces: ", "out of range");
    check_error("backends: {b: {badger: {read_only: true}}}",
                "::backends::b::badger::read_only: ", "not supported");
    check_error("backends: {b: {badger: {ttl: {spans: 0s}}}}",
                "::backends::b::badger::ttl::spans: ", "out of range");
    check_error("backends: {a: {lmdb: {path: /tmp/same}}, b: {badger: {ephemeral: false, "
                "directories: {keys: /tmp/same}}}}",
                "::backends::b: ", "same directory");
}

/* The collector puts the extension's message after its own key path. */
static void test_error_path_through_collector(void **state)
{
    (void)state;
    const char *yaml = "extensions:\n"
                       "  jaeger_storage:\n"
                       "    backends:\n"
                       "      main:\n"
                       "        lmdb:\n"
                       "          ttl:\n"
                       "            spans: 3x\n"
                       "receivers:\n"
                       "  otlp:\n"
                       "    protocols:\n"
                       "      http:\n"
                       "        endpoint: 127.0.0.1:0\n"
                       "exporters:\n"
                       "  nop:\n"
                       "service:\n"
                       "  extensions: [jaeger_storage]\n"
                       "  pipelines:\n"
                       "    traces:\n"
                       "      receivers: [otlp]\n"
                       "      exporters: [nop]\n";
    th_config_t *cfg = NULL;
    char err[512] = "";
    assert_int_equal(th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)), 0);
    th_collector_t *c = NULL;
    assert_int_equal(th_collector_create(cfg, NULL, &c, err, sizeof(err)), TH_ECONFIG);
    const char *want = "extensions::jaeger_storage::backends::main::lmdb::ttl::spans: ";
    if (strncmp(err, want, strlen(want)) || !strstr(err, "invalid duration")) {
        fail_msg("got \"%s\"", err);
    }
}

/* ---- The running extension ------------------------------------------------------------ */

struct fake_host {
    struct th_host host;
    struct th_component *ext;
};

static struct th_component *get_ext(struct th_host *h, const char *id)
{
    struct fake_host *fh = (struct fake_host *)h;
    return !strcmp(id, "jaeger_storage") ? fh->ext : NULL;
}

static bool dir_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void test_find_and_lifecycle(void **state)
{
    (void)state;
    char dir[256], keys[256], yaml[1024];
    tu_tmpdir(dir, sizeof(dir), "js");
    tu_tmpdir(keys, sizeof(keys), "jsk");
    snprintf(yaml, sizeof(yaml),
             "backends:\n"
             "  main: {lmdb: {path: %s/store, sync: false}}\n"
             "  mem: {memory: {max_traces: 10}}\n"
             "  bdg: {badger: {ephemeral: false, directories: {keys: %s}}}\n",
             dir, keys);
    struct th_jaeger_storage_cfg cfg;
    const char *why;
    assert_int_equal(decode(yaml, &cfg, &why), 0);
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_extension_jaeger_storage_ops, "jaeger_storage", &cfg, NULL, &c), 0);
    struct fake_host fh = {.host = {.get_extension = get_ext}, .ext = c};
    th_store_t *st = NULL;
    /* not started: nothing to find */
    assert_int_equal(th_jaeger_storage_find(&fh.host, "main", &st), TH_ENOENT);
    assert_int_equal(c->ops->start(c, &fh.host), 0);
    c->started = true;
    assert_int_equal(th_jaeger_storage_find(&fh.host, "main", &st), 0);
    assert_non_null(st);
    th_store_t *mem = NULL, *bdg = NULL;
    assert_int_equal(th_jaeger_storage_find(&fh.host, "mem", &mem), 0);
    assert_int_equal(th_jaeger_storage_find(&fh.host, "bdg", &bdg), 0);
    assert_true(st != mem && mem != bdg);
    assert_int_equal(th_jaeger_storage_find(&fh.host, "nope", &st), TH_ENOENT);
    assert_int_equal(th_jaeger_storage_find(&fh.host, NULL, &st), TH_EINVAL);
    struct fake_host none = {.host = {.get_extension = get_ext}, .ext = NULL};
    assert_int_equal(th_jaeger_storage_find(&none.host, "main", &st), TH_ENOENT);
    /* each store works */
    th_store_t *stores[] = {st, mem, bdg};
    for (size_t i = 0; i < 3; i++) {
        th_arena_t *a = th_arena_create(0, 0);
        th_otlp_request_t *req = tu_request(a);
        uint8_t t[16];
        tu_tid(t, i + 1);
        tu_span(a, tu_scope(a, tu_resource(a, req, "svc"), "l", "1"), t, 1, 0, "op", 2, TU_T0,
                TU_T0 + 1);
        assert_int_equal(tu_write(stores[i], req), 0);
        th_otlp_request_t *got;
        assert_int_equal(th_store_get_trace(stores[i], t, 0, 0, a, &got), 0);
        th_arena_destroy(a);
    }
    /* the files are where the config says; the memory store's directory is a temporary one */
    char p[512];
    snprintf(p, sizeof(p), "%s/store/data.mdb", dir);
    assert_true(access(p, F_OK) == 0);
    snprintf(p, sizeof(p), "%s/data.mdb", keys);
    assert_true(access(p, F_OK) == 0);
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    char memdir[512] = "";
    for (size_t i = 0; i < js->n_backends; i++) {
        if (!strcmp(js->backends[i].name, "mem")) {
            snprintf(memdir, sizeof(memdir), "%s", js->backends[i].tmpdir);
        }
    }
    assert_true(dir_exists(memdir));
    /* shutdown closes the stores, removes the temporary directory, and is idempotent */
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    c->shut_down = true;
    assert_false(dir_exists(memdir));
    assert_int_equal(th_jaeger_storage_find(&fh.host, "main", &st), TH_ENOENT);
    snprintf(p, sizeof(p), "%s/data.mdb", keys);
    assert_true(access(p, F_OK) == 0); /* not ephemeral: kept */
    th_component_destroy(c);
    /* again: the stores can be opened anew (nothing was left open) */
    assert_int_equal(
        th_component_create(&th_extension_jaeger_storage_ops, "jaeger_storage", &cfg, NULL, &c), 0);
    fh.ext = c;
    assert_int_equal(c->ops->start(c, &fh.host), 0);
    c->started = true;
    assert_int_equal(th_jaeger_storage_find(&fh.host, "bdg", &bdg), 0);
    th_arena_t *a = th_arena_create(0, 0);
    uint8_t t[16];
    tu_tid(t, 3);
    th_otlp_request_t *got;
    assert_int_equal(th_store_get_trace(bdg, t, 0, 0, a, &got), 0); /* kept across restarts */
    th_arena_destroy(a);
    th_component_destroy(c);
    snprintf(p, sizeof(p), "%s/store", dir);
    tu_rmdir(p);
    tu_rmdir(dir);
    tu_rmdir(keys);
}

static void test_background_retention(void **state)
{
    (void)state;
    char dir[256], yaml[512];
    tu_tmpdir(dir, sizeof(dir), "jsr");
    snprintf(yaml, sizeof(yaml),
             "backends: {main: {lmdb: {path: %s, ttl: {spans: 1s}, retention_interval: 1s, "
             "sync: false}}}",
             dir);
    struct th_jaeger_storage_cfg cfg;
    const char *why;
    assert_int_equal(decode(yaml, &cfg, &why), 0);
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_extension_jaeger_storage_ops, "jaeger_storage", &cfg, NULL, &c), 0);
    struct fake_host fh = {.host = {.get_extension = get_ext}, .ext = c};
    assert_int_equal(c->ops->start(c, &fh.host), 0);
    c->started = true;
    th_store_t *st;
    assert_int_equal(th_jaeger_storage_find(&fh.host, "main", &st), 0);
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = tu_request(a);
    uint8_t t[16];
    tu_tid(t, 1);
    tu_span(a, tu_scope(a, tu_resource(a, req, "svc"), "l", "1"), t, 1, 0, "op", 2, TU_T0,
            TU_T0 + 1);
    assert_int_equal(tu_write(st, req), 0);
    /* the extension's thread deletes the spans once they are older than the ttl */
    th_otlp_request_t *got;
    int ret = 0;
    for (int i = 0; i < 60 && ret == 0; i++) {
        usleep(100000);
        ret = th_store_get_trace(st, t, 0, 0, a, &got);
    }
    assert_int_equal(ret, TH_ENOENT);
    th_arena_destroy(a);
    th_component_destroy(c);
    tu_rmdir(dir);
}

static int group_setup(void **state)
{
    (void)state;
    arena = th_arena_create(0, 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_arena_destroy(arena);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_forms),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_error_path_through_collector),
        cmocka_unit_test(test_find_and_lifecycle),
        cmocka_unit_test(test_background_retention),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
