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
#include "exporters/prometheus/prometheus.h"

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

/* ---- Metrics pipelines and connectors ---------------------------------------------------- */

/* The span metrics setup of the Collector's users, with {PIPELINES} in place of the pipelines. */
static char *metrics_yaml(const char *pipelines)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
             "processors:\n"
             "  batch:\n"
             "  memory_limiter: {check_interval: 1s, limit_mib: 4096}\n"
             "  attributes: {actions: [{key: k, action: delete}]}\n"
             "connectors: {spanmetrics: {metrics_flush_interval: 1h}}\n"
             "exporters: {nop: , debug: , prometheus: {endpoint: 127.0.0.1:0}}\n"
             "service:\n  pipelines:\n%s",
             pipelines);
    return buf;
}

static void test_metrics_pipeline_errors(void **state)
{
    (void)state;
    /* a connector used on one side only, with the Collector's messages */
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [spanmetrics]}\n"),
                 "connector \"spanmetrics\" used as exporter in traces pipeline but not used in "
                 "any supported receiver pipeline");
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [nop]}\n"
                              "    metrics: {receivers: [spanmetrics], exporters: [prometheus]}\n"),
                 "connector \"spanmetrics\" used as receiver in metrics pipeline but not used in "
                 "any supported exporter pipeline");
    /* the wrong way round: span_metrics connects traces to metrics only */
    expect_error(metrics_yaml("    traces: {receivers: [spanmetrics], exporters: [nop]}\n"
                              "    metrics: {receivers: [otlp], exporters: [spanmetrics]}\n"),
                 "connector \"spanmetrics\" used as exporter in metrics pipeline but not used in "
                 "any supported receiver pipeline (span_metrics connects traces to metrics)");
    /* components that handle traces only, in a metrics pipeline, and the reverse */
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [spanmetrics]}\n"
                              "    metrics: {receivers: [spanmetrics], processors: [attributes], "
                              "exporters: [prometheus]}\n"),
                 "service::pipelines::metrics: processor \"attributes\" handles traces only, not "
                 "metrics (type attributes)");
    expect_error(
        metrics_yaml("    traces: {receivers: [otlp], exporters: [spanmetrics]}\n"
                     "    metrics: {receivers: [spanmetrics], exporters: [debug]}\n"),
        "service::pipelines::metrics: exporter \"debug\" handles traces only, not metrics");
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [spanmetrics]}\n"
                              "    metrics: {receivers: [spanmetrics, otlp], "
                              "exporters: [prometheus]}\n"),
                 "service::pipelines::metrics: receiver \"otlp\" handles traces only, not metrics");
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [prometheus]}\n"),
                 "service::pipelines::traces: exporter \"prometheus\" handles metrics only, not "
                 "traces (type prometheus)");
    expect_error(metrics_yaml("    traces: {receivers: [otlp], exporters: [spanmetrics]}\n"
                              "    metrics: {receivers: [spanmetrics], exporters: [nope]}\n"),
                 "service::pipelines::metrics: references exporter \"nope\" which is not "
                 "configured");
    /* a connector configured but used nowhere is fine, as an unused receiver is */
    th_collector_t *c = NULL;
    char err[1024] = "";
    assert_int_equal(build(metrics_yaml("    traces: {receivers: [otlp], exporters: [nop]}\n"), &c,
                           err, sizeof(err)),
                     0);
    assert_null(th_collector_find(c, TH_KIND_CONNECTOR, "spanmetrics"));
    th_collector_destroy(c);
}

/* One connector instance for both sides; what it counts reaches the prometheus exporter
 * through batch and memory_limiter, and its final flush at shutdown arrives before the
 * exporter stops. */
static void test_metrics_pipeline_runs(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *yaml =
        metrics_yaml("    traces: {receivers: [otlp], processors: [memory_limiter], "
                     "exporters: [nop, spanmetrics]}\n"
                     "    metrics: {receivers: [spanmetrics], processors: [memory_limiter, batch], "
                     "exporters: [prometheus]}\n"
                     "    metrics/2: {receivers: [spanmetrics], exporters: [prometheus]}\n");
    th_config_t *cfg = NULL;
    char err[1024] = "";
    assert_int_equal(th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)), 0);
    th_collector_t *c = NULL;
    if (th_collector_create(cfg, &loop, &c, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    struct th_component *conn = th_collector_find(c, TH_KIND_CONNECTOR, "spanmetrics");
    assert_non_null(conn);
    assert_string_equal(conn->ops->type, "span_metrics");
    assert_non_null(conn->metrics_next);
    struct th_component *prom = th_collector_find(c, TH_KIND_EXPORTER, "prometheus");
    assert_non_null(prom);
    assert_int_equal(th_collector_start(c), 0);

    /* a request with one span, straight into the connector */
    th_arena_t *a = th_arena_create(0, 0);
    char body[] =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
        "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"spans\":[{"
        "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\","
        "\"name\":\"op\",\"kind\":2,\"startTimeUnixNano\":\"1000000\","
        "\"endTimeUnixNano\":\"4000000\"}]}]}]}";
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    th_otlp_request_t *req = NULL;
    struct th_otlp_error oerr;
    assert_int_equal(th_otlp_decode_json((const uint8_t *)body, strlen(body), &lim, a, &req, &oerr),
                     0);
    th_batch_t *b = th_batch_create(a, req);
    b->span_count = 1;
    assert_int_equal(th_consumer_consume(&conn->consumer, b), 0);
    assert_int_equal(th_collector_shutdown(c), 0);
    /* one series of calls and one of durations, from the flush at shutdown, both pipelines
     * feeding the same exporter */
    assert_int_equal(th_prometheus_store_size(((struct th_prometheus_exporter *)prom)->store), 2);
    th_collector_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
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
        cmocka_unit_test(test_metrics_pipeline_errors),
        cmocka_unit_test(test_metrics_pipeline_runs),
        cmocka_unit_test(test_components_doc_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
