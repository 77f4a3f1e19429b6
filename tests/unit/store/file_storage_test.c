/*
 * The file_storage extension: its defaults and keys as the Collector's, the checks across
 * keys, the directory rules at start (must exist unless create_directory, which makes it with
 * directory_permissions; a file is not a directory), and the client file names it hands out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/file_storage.h"
#include "th/log.h"

static const struct th_component_ops *ops = &th_extension_file_storage_ops;

static char tmp[256];

static int decode(const char *yaml, struct th_file_storage_cfg *cfg, th_arena_t *a, char *err,
                  size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret == 0) {
        ret = th_cfg_decode(ops->config, node, cfg, a, "extensions::file_storage", err, errlen);
    }
    return ret;
}

static void test_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_file_storage_cfg cfg;
    char err[512];
    const char *why = NULL;
    assert_int_equal(decode("{}", &cfg, a, err, sizeof(err)), 0);
    assert_string_equal(cfg.directory, "/var/lib/otelcol/file_storage");
    assert_int_equal(cfg.timeout, 1000000000ll);
    assert_false(cfg.create_directory);
    assert_false(cfg.fsync);
    assert_string_equal(cfg.directory_permissions, "0750");
    assert_int_equal(ops->config_check(&cfg, &why), 0);

    /* a Collector config with compaction and recreate is accepted (no effect) */
    assert_int_equal(decode("directory: /x\ntimeout: 250ms\nfsync: true\ncreate_directory: true\n"
                            "directory_permissions: \"0700\"\nrecreate: false\n"
                            "compaction: {on_start: true, directory: /tmp, "
                            "max_transaction_size: 65536}\n",
                            &cfg, a, err, sizeof(err)),
                     0);
    assert_string_equal(cfg.directory, "/x");
    assert_int_equal(cfg.timeout, 250000000ll);
    assert_true(cfg.fsync);
    assert_true(cfg.create_directory);
    assert_non_null(cfg.compaction);
    assert_int_equal(ops->config_check(&cfg, &why), 0);

    /* unknown keys, bad types and bad values are errors naming the key */
    assert_int_not_equal(decode("directroy: /x\n", &cfg, a, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "directroy"));
    assert_int_not_equal(decode("timeout: soon\n", &cfg, a, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "timeout"));
    assert_int_not_equal(decode("timeout: -1s\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(decode("directory: \"\"\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(ops->config_check(&cfg, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "directory"));
    /* permissions are parsed only when the directory may be created, as in the Collector */
    assert_int_equal(decode("directory_permissions: rwx\n", &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(ops->config_check(&cfg, &why), 0);
    assert_int_equal(decode("directory_permissions: \"0980\"\ncreate_directory: true\n", &cfg, a,
                            err, sizeof(err)),
                     0);
    assert_int_equal(ops->config_check(&cfg, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "directory_permissions"));
    th_arena_destroy(a);
}

/* The started extension (or NULL when start failed) for @p yaml; *ret gets start's result. */
static struct th_component *started(const char *yaml, th_arena_t *a, struct th_host *host, int *ret)
{
    struct th_file_storage_cfg *cfg = th_arena_calloc(a, 1, sizeof(*cfg));
    char err[512];
    if (decode(yaml, cfg, a, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    const char *why = NULL;
    assert_int_equal(ops->config_check(cfg, &why), 0);
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(ops, "file_storage/q", cfg, NULL, &c), 0);
    *ret = ops->start(c, host);
    if (*ret != 0) {
        th_component_destroy(c);
        return NULL;
    }
    c->started = true;
    return c;
}

static struct th_component *the_ext;
static struct th_component *other_ext;

static struct th_component *host_ext(struct th_host *h, const char *id)
{
    (void)h;
    if (the_ext && !strcmp(id, the_ext->id)) {
        return the_ext;
    }
    return other_ext && !strcmp(id, other_ext->id) ? other_ext : NULL;
}

static void test_directory_rules(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_host host = {.get_extension = host_ext};
    char yaml[600], missing[300];
    int ret;

    /* missing, create_directory off (the Collector's default): start fails */
    snprintf(missing, sizeof(missing), "%s/a/b", tmp);
    snprintf(yaml, sizeof(yaml), "directory: %s\n", missing);
    assert_null(started(yaml, a, &host, &ret));
    assert_int_equal(ret, TH_ENOENT);

    /* create_directory makes it, parents included, with the permissions asked for */
    snprintf(yaml, sizeof(yaml),
             "directory: %s\ncreate_directory: true\ndirectory_permissions: \"0700\"\n", missing);
    mode_t old = umask(0);
    struct th_component *c = started(yaml, a, &host, &ret);
    umask(old);
    assert_int_equal(ret, 0);
    struct stat st;
    assert_int_equal(stat(missing, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(ops->shutdown(c), 0);
    assert_int_equal(ops->shutdown(c), 0);
    c->shut_down = true;
    th_component_destroy(c);

    /* now it exists: starts without create_directory */
    snprintf(yaml, sizeof(yaml), "directory: %s\n", missing);
    c = started(yaml, a, &host, &ret);
    assert_int_equal(ret, 0);
    th_component_destroy(c);

    /* a file is not a directory */
    char file[320];
    snprintf(file, sizeof(file), "%s/plain", tmp);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(yaml, sizeof(yaml), "directory: %s\ncreate_directory: true\n", file);
    assert_null(started(yaml, a, &host, &ret));
    assert_int_equal(ret, TH_EINVAL);
    th_arena_destroy(a);
}

static void test_client_names(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_host host = {.get_extension = host_ext};
    char yaml[600];
    int ret;
    snprintf(yaml, sizeof(yaml), "directory: %s\nfsync: true\ntimeout: 2s\n", tmp);
    struct th_file_storage_client cl;

    /* not configured (or not started yet) */
    assert_int_equal(th_file_storage_client(&host, "file_storage/q", TH_KIND_EXPORTER,
                                            "otlp_http/q", "traces", &cl),
                     TH_ENOENT);
    the_ext = started(yaml, a, &host, &ret);
    assert_int_equal(ret, 0);
    assert_int_equal(th_file_storage_client(&host, "file_storage/q", TH_KIND_EXPORTER,
                                            "otlp_http/q", "traces", &cl),
                     0);
    char want[600];
    snprintf(want, sizeof(want), "%s/exporter_otlp_http_q_traces", tmp);
    assert_string_equal(cl.path, want);
    assert_true(cl.fsync);
    assert_int_equal(cl.timeout_ns, 2000000000ll);

    /* no name part; unsafe bytes of a name are escaped; only the first / is a separator */
    assert_int_equal(
        th_file_storage_client(&host, "file_storage/q", TH_KIND_EXPORTER, "otlp", NULL, &cl), 0);
    snprintf(want, sizeof(want), "%s/exporter_otlp", tmp);
    assert_string_equal(cl.path, want);
    assert_int_equal(th_file_storage_client(&host, "file_storage/q", TH_KIND_EXPORTER,
                                            "otlp_grpc/a/b c", "traces", &cl),
                     0);
    snprintf(want, sizeof(want), "%s/exporter_otlp_grpc_a~002Fb~0020c_traces", tmp);
    assert_string_equal(cl.path, want);

    /* an extension of another type under that id is not a file_storage */
    static const struct th_component_ops not_fs = {.type = "health_check"};
    struct th_component fake = {.id = "file_storage/other", .ops = &not_fs};
    other_ext = &fake;
    assert_int_equal(th_file_storage_client(&host, "file_storage/other", TH_KIND_EXPORTER, "otlp",
                                            "traces", &cl),
                     TH_ENOENT);
    other_ext = NULL;
    assert_int_equal(
        th_file_storage_client(NULL, "file_storage/q", TH_KIND_EXPORTER, "otlp", NULL, &cl),
        TH_EINVAL);

    /* shut down: no longer handed out */
    assert_int_equal(ops->shutdown(the_ext), 0);
    the_ext->shut_down = true;
    assert_int_equal(th_file_storage_client(&host, "file_storage/q", TH_KIND_EXPORTER,
                                            "otlp_http/q", "traces", &cl),
                     TH_ENOENT);
    th_component_destroy(the_ext);
    the_ext = NULL;
    th_arena_destroy(a);
}

int main(void)
{
    th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
    snprintf(tmp, sizeof(tmp), "/tmp/th-fstore-XXXXXX");
    if (!mkdtemp(tmp)) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_directory_rules),
        cmocka_unit_test(test_client_names),
    };
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0) {
        return 1;
    }
    return ret;
}
