/*
 * The health_check extension: Go's spellings of durations and times, the config rules, the
 * answers before start (503 with the Collector's zero time), once every pipeline runs (200
 * with upSince and uptime, any method, only on `path`), while a component reports a failure
 * (503 naming it, then 200 again by itself when it clears), with fixed response bodies, and
 * from the moment shutdown begins (503) — over real HTTP against an in-process collector.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "extensions/health_check/health_check.h"
#include "th/collector.h"
#include "th/log.h"

static void test_go_duration(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {999, "999ns"},
        {1500, "1.5\xc2\xb5s"},
        {250000000, "250ms"},
        {1234567, "1.234567ms"},
        {1000000000, "1s"},
        {2000000001, "2.000000001s"},
        {62500000000, "1m2.5s"},
        {120000000000, "2m0s"},
        {3600000000000, "1h0m0s"},
        {3723000000000, "1h2m3s"},
        {-1500000000, "-1.5s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[40];
        th__health_check_go_duration(cases[i].ns, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
}

static void test_rfc3339(void **state)
{
    (void)state;
    char out[48];
    th__health_check_rfc3339(1714558830000000000ull, out, sizeof(out));
    assert_string_equal(out, "2024-05-01T10:20:30Z");
    th__health_check_rfc3339(1714558830500000000ull, out, sizeof(out));
    assert_string_equal(out, "2024-05-01T10:20:30.5Z");
    th__health_check_rfc3339(1714558830000000123ull, out, sizeof(out));
    assert_string_equal(out, "2024-05-01T10:20:30.000000123Z");
}

static void test_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_health_check_cfg cfg;
    char err[256];
    assert_int_equal(th_cfg_defaults(th_health_check_config, &cfg, a, err, sizeof(err)), 0);
    assert_string_equal(cfg.endpoint, "localhost:13133");
    assert_string_equal(cfg.path, "/");
    assert_int_equal(cfg.check_collector_pipeline.exporter_failure_threshold, 5);
    const char *why = NULL;
    assert_int_equal(th_health_check_config_check(&cfg, &why), 0);
    cfg.path = "health";
    assert_int_equal(th_health_check_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "::path: must start with \"/\"");
    cfg.path = "/health";
    cfg.check_collector_pipeline.exporter_failure_threshold = 0;
    assert_int_equal(th_health_check_config_check(&cfg, &why), TH_ECONFIG);
    th_arena_destroy(a);
}

/* Before the collector is up (a host that is not ready): 503 with the Collector's body. */
static void test_not_ready(void **state)
{
    (void)state;
    struct th_health_check_cfg cfg = {.endpoint = "x", .path = "/"};
    struct th_host host = {0};
    struct th_health_check h = {.cfg = &cfg, .host = &host};
    struct th_http_request req = {.method = "GET", .method_len = 3, .path = "/", .path_len = 1};
    struct th_http_response res = {.status = 200};
    assert_int_equal(th__health_check_serve(&h, &req, &res), 0);
    assert_int_equal(res.status, 503);
    assert_string_equal(res.content_type, "application/json");
    assert_int_equal(th_buf_append(&res.body, "", 1), 0);
    assert_string_equal((char *)res.body.ptr, "{\"status\":\"Server not available\",\"upSince\":"
                                              "\"0001-01-01T00:00:00Z\",\"uptime\":\"\"}");
    th_buf_free(&res.body);
    /* a fixed unhealthy body replaces the JSON */
    cfg.response_body.unhealthy = "down";
    res = (struct th_http_response){.status = 200};
    assert_int_equal(th__health_check_serve(&h, &req, &res), 0);
    assert_int_equal(res.status, 503);
    assert_int_equal(res.body.len, 4);
    assert_memory_equal(res.body.ptr, "down", 4);
    th_buf_free(&res.body);
}

/* ---- Over HTTP against a running collector ------------------------------------------------ */

static int http(int port, const char *method, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                     method, path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1) {
            break;
        }
        ssize_t r = read(fd, out + len, cap - 1 - len);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd);
    int status = -1;
    sscanf(out, "HTTP/1.1 %d", &status);
    return status;
}

static int hc_port;
static int status_at_shutdown;
static char body_at_shutdown[2048];

/* Runs when shutdown begins, before any component stops: the probe must already fail. */
static void on_shutdown(void *data)
{
    (void)data;
    status_at_shutdown =
        http(hc_port, "GET", "/health", body_at_shutdown, sizeof(body_at_shutdown));
}

static void test_running(void **state)
{
    (void)state;
    const char *yaml =
        "extensions:\n"
        "  health_check: {endpoint: \"127.0.0.1:0\", path: /health}\n"
        "  jaeger_storage: {backends: {main: {memory: {max_traces: 1000}}}}\n"
        "receivers: {otlp: {protocols: {http: {endpoint: \"127.0.0.1:0\"}}}}\n"
        "exporters: {jaeger_storage_exporter: {trace_storage: main}}\n"
        "service:\n"
        "  extensions: [health_check, jaeger_storage]\n"
        "  telemetry: {metrics: {level: none}}\n"
        "  pipelines: {traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}}\n";
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    th_config_t *cfg = NULL;
    char err[512];
    if (th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    th_collector_t *c = NULL;
    if (th_collector_create(cfg, &loop, &c, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(th_collector_start(c), 0);
    struct th_component *hc = th_collector_find(c, TH_KIND_EXTENSION, "health_check");
    struct th_component *exp = th_collector_find(c, TH_KIND_EXPORTER, "jaeger_storage_exporter");
    assert_non_null(hc);
    assert_non_null(exp);
    hc_port = th_health_check_port(hc);
    assert_true(hc_port > 0);
    static char buf[4096];

    assert_int_equal(http(hc_port, "GET", "/health", buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "content-type: application/json\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\n{\"status\":\"Server available\",\"upSince\":\""));
    assert_non_null(strstr(buf, "\",\"uptime\":\""));
    assert_null(strstr(buf, "0001-01-01"));
    assert_int_equal(http(hc_port, "POST", "/health", buf, sizeof(buf)), 200);
    assert_int_equal(http(hc_port, "GET", "/", buf, sizeof(buf)), 404);

    /* the store cannot write: 503 naming the exporter and the reason */
    th_component_set_status(exp, TH_ESPACE, "the store is full");
    assert_int_equal(http(hc_port, "GET", "/health", buf, sizeof(buf)), 503);
    assert_non_null(strstr(buf, "{\"status\":\"Server not available: exporter "
                                "\\\"jaeger_storage_exporter\\\": the store is full ("));
    assert_non_null(strstr(buf, "\"reason\":\"exporter \\\"jaeger_storage_exporter\\\": the "
                                "store is full ("));
    /* recovered: 200 again, nobody restarted anything */
    th_component_set_status(exp, 0, NULL);
    assert_int_equal(http(hc_port, "HEAD", "/health", buf, sizeof(buf)), 200);

    th_collector_on_shutdown(c, on_shutdown, NULL);
    assert_int_equal(th_collector_shutdown(c), 0);
    assert_int_equal(status_at_shutdown, 503);
    assert_non_null(strstr(body_at_shutdown, "{\"status\":\"Server not available\",\"upSince\":"
                                             "\"0001-01-01T00:00:00Z\",\"uptime\":\"\"}"));
    th_collector_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_duration), cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_config),      cmocka_unit_test(test_not_ready),
        cmocka_unit_test(test_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
