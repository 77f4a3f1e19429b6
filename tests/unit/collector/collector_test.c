/*
 * The pipeline graph built from YAML: references checked with the Collector's messages,
 * unknown types listed with the valid ones, shared exporters and per-pipeline processors,
 * the embedded default config valid and identical to docs/default-config.yaml.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "th/collector.h"
#include "th/help.h"
#include "th/log.h"

/* Build a collector from YAML without a loop (what `tracehouse validate` does). */
static int build(const char *yaml, th_collector_t **out, char *err, size_t errlen)
{
    th_config_t *cfg = NULL;
    int ret = th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, errlen);
    if (ret != 0) {
        return ret;
    }
    return th_collector_create(cfg, NULL, out, err, errlen);
}

static void expect_error(const char *yaml, const char *msg)
{
    th_collector_t *c = NULL;
    char err[1024] = "";
    int ret = build(yaml, &c, err, sizeof(err));
    if (ret == 0) {
        th_collector_destroy(c);
        fail_msg("config was accepted, expected: %s", msg);
    }
    if (!strstr(err, msg)) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, msg);
    }
}

static void test_unknown_type(void **state)
{
    (void)state;
    expect_error("receivers: {otlp: {protocols: {http: }}}\n"
                 "exporters: {nope/x: }\n"
                 "service: {pipelines: {traces: {receivers: [otlp], exporters: [nope/x]}}}\n",
                 "exporters::nope/x: unknown type: \"nope\" for id: \"nope/x\" (valid values: [");
}

static void test_missing_reference(void **state)
{
    (void)state;
    expect_error("receivers: {otlp: {protocols: {http: }}}\n"
                 "exporters: {nop: }\n"
                 "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
                 "service::pipelines::traces: references exporter \"debug\" which is not "
                 "configured");
    expect_error("receivers: {otlp: {protocols: {http: }}}\n"
                 "exporters: {nop: }\n"
                 "service: {pipelines: {traces: {receivers: [otlp/2], exporters: [nop]}}}\n",
                 "references receiver \"otlp/2\" which is not configured");
}

static void test_unknown_key_names_path(void **state)
{
    (void)state;
    expect_error("receivers: {otlp: {protocols: {http: {endpont: x}}}}\n"
                 "exporters: {nop: }\n"
                 "service: {pipelines: {traces: {receivers: [otlp], exporters: [nop]}}}\n",
                 "receivers::otlp::protocols::http::endpont");
    expect_error("receivers: {otlp: {protocols: {http: }}}\n"
                 "exporters: {debug/v: {verbosity: loud}}\n"
                 "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug/v]}}}\n",
                 "exporters::debug/v::verbosity");
}

static void test_shared_exporter(void **state)
{
    (void)state;
    const char *yaml = "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
                       "exporters: {nop: , debug: }\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    traces: {receivers: [otlp], exporters: [nop, debug]}\n"
                       "    traces/2: {receivers: [otlp], exporters: [nop]}\n";
    th_collector_t *c = NULL;
    char err[1024] = "";
    if (build(yaml, &c, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    struct th_component *nop = th_collector_find(c, TH_KIND_EXPORTER, "nop");
    assert_non_null(nop);
    assert_non_null(th_collector_find(c, TH_KIND_EXPORTER, "debug"));
    assert_non_null(th_collector_find(c, TH_KIND_RECEIVER, "otlp"));
    assert_null(th_collector_find(c, TH_KIND_RECEIVER, "otlp/2"));
    th_collector_destroy(c);
}

static void test_default_config(void **state)
{
    (void)state;
    th_collector_t *c = NULL;
    char err[1024] = "";
    if (build(th_default_config(), &c, err, sizeof(err)) != 0) {
        fail_msg("embedded default config: %s", err);
    }
    th_collector_destroy(c);

    FILE *f = fopen(TH_SOURCE_DIR "/docs/default-config.yaml", "rb");
    assert_non_null(f);
    static char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_string_equal(text, th_default_config());
}

/* A start that fails (port taken) ends the run with an error instead of hanging. */
static void test_failed_start_returns(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* A plain socket, so nothing of it keeps the loop running. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd, (struct sockaddr *)&addr, &len);
    int port = ntohs(addr.sin_port);

    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:%d}}}}\n"
             "exporters: {nop: }\n"
             "service: {pipelines: {traces: {receivers: [otlp], exporters: [nop]}}}\n",
             port);
    th_config_t *cfg = NULL;
    char err[512];
    assert_int_equal(th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)), 0);
    th_collector_t *c = NULL;
    assert_int_equal(th_collector_create(cfg, &loop, &c, err, sizeof(err)), 0);
    assert_int_equal(th_collector_run(c), TH_EADDRINUSE);
    th_collector_destroy(c);
    close(fd);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The Collector READMEs' processor examples validate unchanged. */
static void test_collector_readme_processors(void **state)
{
    (void)state;
    th_config_t *cfg = NULL;
    char err[1024] = "";
    int ret = th_config_load_file(TH_SOURCE_DIR
                                  "/tests/unit/collector/configs/collector-readme-processors.yaml",
                                  &cfg, err, sizeof(err));
    if (ret != 0) {
        fail_msg("%s", err);
    }
    th_collector_t *c = NULL;
    if (th_collector_create(cfg, NULL, &c, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_non_null(th_collector_find(c, TH_KIND_PROCESSOR, "redaction"));
    assert_non_null(th_collector_find(c, TH_KIND_PROCESSOR, "batch/2"));
    th_collector_destroy(c);
}

/* docs/components.md is what `tracehouse docs` prints: regenerate it when a table changes. */
static void test_components_doc_current(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    th_help_markdown(mem);
    fclose(mem);
    FILE *f = fopen(TH_SOURCE_DIR "/docs/components.md", "rb");
    assert_non_null(f);
    char *doc = malloc(len + 2);
    size_t n = fread(doc, 1, len + 1, f);
    fclose(f);
    if (n != len || memcmp(doc, text, len) != 0) {
        fail_msg("docs/components.md is stale: run build/tracehouse docs > docs/components.md");
    }
    free(doc);
    free(text);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_missing_reference),
        cmocka_unit_test(test_unknown_key_names_path),
        cmocka_unit_test(test_shared_exporter),
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_failed_start_returns),
        cmocka_unit_test(test_collector_readme_processors),
        cmocka_unit_test(test_components_doc_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
