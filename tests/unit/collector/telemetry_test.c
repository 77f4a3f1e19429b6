/*
 * The internal metrics: the scrape builder (families grouped, identical series summed, type
 * mismatches refused), and a real collector in-process (OTLP/HTTP receiver → memory_limiter →
 * batch → the LMDB store and nop) scraped over HTTP after spans were sent to it: accepted
 * spans per transport, processor and exporter counters, store series, process series and
 * target_info, and the exposition parses as Prometheus text (each family's samples together,
 * one HELP and TYPE each).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "receivers/otlp/otlp.h"
#include "th/collector.h"
#include "th/log.h"
#include "th/telemetry.h"

static const char *text_of(th_buf_t *b)
{
    assert_int_equal(th_buf_append(b, "", 1), 0);
    b->len--;
    return (const char *)b->ptr;
}

static void test_scrape_builder(void **state)
{
    (void)state;
    th_scrape_t *s = th_scrape_create();
    assert_non_null(s);
    struct th_prom_label a[] = {{"processor", "batch"}, {"otel_signal", "traces"}};
    struct th_prom_label b[] = {{"processor", "batch/2"}, {"otel_signal", "traces"}};
    assert_int_equal(th_scrape_add(s, "x_items", TH_PROM_COUNTER, "items", a, 2, 3), 0);
    assert_int_equal(th_scrape_add(s, "y_gauge", TH_PROM_GAUGE, "g", NULL, 0, 7), 0);
    assert_int_equal(th_scrape_add(s, "x_items", TH_PROM_COUNTER, "items", b, 2, 1), 0);
    /* the same processor id in a second pipeline: summed into one series */
    assert_int_equal(th_scrape_add(s, "x_items", TH_PROM_COUNTER, "items", a, 2, 4), 0);
    assert_int_equal(th_scrape_add(s, "x_items", TH_PROM_GAUGE, "items", a, 2, 4), TH_EINVAL);
    const double bounds[] = {1, 2};
    const uint64_t c1[] = {1, 0, 2}, c2[] = {0, 1, 0};
    const double other[] = {1, 3};
    assert_int_equal(th_scrape_add_histogram(s, "h", "hist", NULL, 0, bounds, 2, c1, 10), 0);
    assert_int_equal(th_scrape_add_histogram(s, "h", "hist", NULL, 0, bounds, 2, c2, 1.5), 0);
    assert_int_equal(th_scrape_add_histogram(s, "h", "hist", NULL, 0, other, 2, c2, 1), TH_EINVAL);
    struct th_latency_histogram lat = {0};
    th_latency_observe(&lat, 700000);     /* 0.7 ms: le=0.001 */
    th_latency_observe(&lat, 9000000000); /* 9 s: +Inf */
    assert_int_equal(th_scrape_add_latency(s, "lat_seconds", "latency", NULL, 0, &lat), 0);
    th_buf_t out = {0};
    assert_int_equal(th_scrape_write(s, &out), 0);
    assert_string_equal(
        text_of(&out),
        "# HELP x_items items\n# TYPE x_items counter\n"
        "x_items{processor=\"batch\",otel_signal=\"traces\"} 7\n"
        "x_items{processor=\"batch/2\",otel_signal=\"traces\"} 1\n"
        "# HELP y_gauge g\n# TYPE y_gauge gauge\ny_gauge 7\n"
        "# HELP h hist\n# TYPE h histogram\n"
        "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\nh_bucket{le=\"+Inf\"} 4\nh_sum 11.5\n"
        "h_count 4\n"
        "# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"
        "lat_seconds_bucket{le=\"0.0005\"} 0\nlat_seconds_bucket{le=\"0.001\"} 1\n"
        "lat_seconds_bucket{le=\"0.0025\"} 1\nlat_seconds_bucket{le=\"0.005\"} 1\n"
        "lat_seconds_bucket{le=\"0.01\"} 1\nlat_seconds_bucket{le=\"0.025\"} 1\n"
        "lat_seconds_bucket{le=\"0.05\"} 1\nlat_seconds_bucket{le=\"0.1\"} 1\n"
        "lat_seconds_bucket{le=\"0.25\"} 1\nlat_seconds_bucket{le=\"0.5\"} 1\n"
        "lat_seconds_bucket{le=\"1\"} 1\nlat_seconds_bucket{le=\"2.5\"} 1\n"
        "lat_seconds_bucket{le=\"5\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 2\n"
        "lat_seconds_sum 9.0007\nlat_seconds_count 2\n");
    th_buf_free(&out);
    th_scrape_destroy(s);
    th_scrape_destroy(NULL);
}

/* ---- A running collector ------------------------------------------------------------------ */

/* One HTTP/1.1 request with Connection: close; the whole response in @p out. @return status */
static int http(int port, const char *method, const char *path, const char *ctype, const char *body,
                char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, ctype, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
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

struct client {
    int otlp_port, metrics_port;
    int post_status;
    char *scrape; /* the last scrape body */
    int done;
};

static const char spans_json[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
    "{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"spans\":["
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\","
    "\"name\":\"a\",\"startTimeUnixNano\":\"1700000000000000000\","
    "\"endTimeUnixNano\":\"1700000001000000000\"},"
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060709\","
    "\"name\":\"b\",\"startTimeUnixNano\":\"1700000000000000000\","
    "\"endTimeUnixNano\":\"1700000001000000000\"},"
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f11\",\"spanId\":\"0102030405060708\","
    "\"name\":\"c\",\"startTimeUnixNano\":\"1700000000000000000\","
    "\"endTimeUnixNano\":\"1700000001000000000\"}]}]}]}";

static void *client_main(void *arg)
{
    struct client *cl = arg;
    static char buf[1 << 20];
    cl->post_status =
        http(cl->otlp_port, "POST", "/v1/traces", "application/json", spans_json, buf, sizeof(buf));
    /* Wait until the store has committed the spans (the exporter answers after its commit,
     * but batching can hold them for its timeout first). */
    for (int i = 0; i < 500; i++) {
        int st = http(cl->metrics_port, "GET", "/metrics", "text/plain", NULL, buf, sizeof(buf));
        if (st == 200 &&
            strstr(buf, "otelcol_exporter_sent_spans{exporter=\"jaeger_storage_exporter\"} 3\n")) {
            break;
        }
        usleep(10000);
    }
    char *body = strstr(buf, "\r\n\r\n");
    cl->scrape = strdup(body ? body + 4 : buf);
    __atomic_store_n(&cl->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Every sample's family has exactly one HELP and TYPE, and no family is split. */
static void check_exposition(const char *text)
{
    char seen[256][128];
    size_t n_seen = 0;
    char current[128] = "";
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        char l[1024];
        snprintf(l, sizeof(l), "%.*s", (int)(end - line), line);
        if (!strncmp(l, "# TYPE ", 7)) {
            char name[128];
            sscanf(l + 7, "%127s", name);
            for (size_t i = 0; i < n_seen; i++) {
                if (!strcmp(seen[i], name)) {
                    fail_msg("family %s appears twice", name);
                }
            }
            snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
            snprintf(current, sizeof(current), "%s", name);
        } else if (l[0] != '#') {
            size_t k = strcspn(l, "{ ");
            assert_true(k > 0 && strncmp(l, current, strlen(current)) == 0);
            assert_true(l[k] == '{' || l[k] == ' ');
        }
        line = end + 1;
    }
}

static double value_of(const char *text, const char *series)
{
    char key[512];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *p = strstr(text, key);
    if (!p) {
        fail_msg("no series %s in:\n%s", series, text);
    }
    return strtod(p + strlen(key), NULL);
}

static void test_running_collector(void **state)
{
    (void)state;
    char dir[] = "/tmp/th-telemetry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "extensions:\n"
             "  jaeger_storage: {backends: {main: {lmdb: {path: %s/data}}}}\n"
             "receivers: {otlp: {protocols: {http: {endpoint: \"127.0.0.1:0\"}}}}\n"
             "processors:\n"
             "  batch: {timeout: 10ms}\n"
             "  memory_limiter: {check_interval: 1s, limit_mib: 4096}\n"
             "exporters: {jaeger_storage_exporter: {trace_storage: main}, nop: }\n"
             "service:\n"
             "  extensions: [jaeger_storage]\n"
             "  telemetry:\n"
             "    resource: {deployment.environment: test}\n"
             "    metrics: {level: normal}\n"
             "  pipelines:\n"
             "    traces: {receivers: [otlp], processors: [memory_limiter, batch], "
             "exporters: [jaeger_storage_exporter, nop]}\n",
             dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    th_config_t *cfg = NULL;
    char err[512];
    if (th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    cfg->telemetry.metrics_endpoint = "127.0.0.1:0"; /* the config allows no port 0 */
    th_collector_t *c = NULL;
    if (th_collector_create(cfg, &loop, &c, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    th_telemetry_t *t = NULL;
    assert_int_equal(th_telemetry_start(c, &cfg->telemetry, &t, err, sizeof(err)), 0);
    assert_non_null(t);
    assert_int_equal(th_collector_start(c), 0);
    struct client cl = {
        .otlp_port = th_otlp_receiver_http_port(th_collector_find(c, TH_KIND_RECEIVER, "otlp")),
        .metrics_port = th_telemetry_port(t),
    };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
    while (!__atomic_load_n(&cl.done, __ATOMIC_ACQUIRE)) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    pthread_join(th, NULL);
    th_telemetry_stop(t);
    assert_int_equal(th_collector_shutdown(c), 0);
    th_collector_destroy(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    const char *m = cl.scrape;
    assert_int_equal(cl.post_status, 200);
    check_exposition(m);
    assert_non_null(strstr(m, "# TYPE otelcol_receiver_accepted_spans counter\n"));
    assert_true(value_of(m, "otelcol_receiver_accepted_spans{receiver=\"otlp\","
                            "transport=\"http\"}") == 3);
    assert_true(value_of(m, "otelcol_receiver_refused_spans{receiver=\"otlp\","
                            "transport=\"http\"}") == 0);
    assert_null(strstr(m, "transport=\"grpc\"")); /* gRPC is not enabled */
    assert_true(value_of(m, "otelcol_processor_incoming_items{processor=\"batch\","
                            "otel_signal=\"traces\"}") == 3);
    assert_true(value_of(m, "otelcol_processor_outgoing_items{processor=\"batch\","
                            "otel_signal=\"traces\"}") == 3);
    assert_true(value_of(m, "otelcol_processor_memory_limiter_accepted_spans{processor="
                            "\"memory_limiter\"}") == 3);
    assert_true(value_of(m, "otelcol_processor_batch_batch_send_size_count{processor="
                            "\"batch\"}") >= 1);
    assert_true(value_of(m, "otelcol_processor_batch_batch_send_size_sum{processor="
                            "\"batch\"}") == 3);
    assert_true(value_of(m, "otelcol_exporter_sent_spans{exporter=\"nop\"}") == 3);
    assert_true(value_of(m, "otelcol_exporter_queue_capacity{data_type=\"traces\","
                            "exporter=\"jaeger_storage_exporter\"}") > 0);
    assert_true(value_of(m, "tracehouse_store_spans_written{store=\"main\"}") == 3);
    assert_true(value_of(m, "tracehouse_store_commit_duration_seconds_count{store=\"main\"}") >= 1);
    assert_true(value_of(m, "tracehouse_store_bytes_used{store=\"main\"}") > 0);
    assert_true(value_of(m, "tracehouse_store_capacity_bytes{store=\"main\"}") > 0);
    assert_true(value_of(m, "tracehouse_store_filesystem_free_bytes{store=\"main\"}") > 0);
    assert_true(value_of(m, "tracehouse_store_oldest_span_age_seconds{store=\"main\"}") > 0);
    assert_true(value_of(m, "tracehouse_store_write_errors{store=\"main\"}") == 0);
    assert_true(value_of(m, "otelcol_process_uptime") > 0);
    assert_true(value_of(m, "otelcol_process_memory_rss") > 1e6);
    /* mallinfo2 knows only glibc's malloc: under ASan (TH_SANITIZED) it reads 0 */
    assert_true(value_of(m, "otelcol_process_runtime_heap_alloc_bytes") > 0 ||
                getenv("TH_SANITIZED"));
    assert_true(value_of(m, "tracehouse_build_info{version=\"" TH_VERSION "\"}") == 1);
    assert_non_null(strstr(m, "\ntarget_info{service_instance_id=\""));
    assert_non_null(strstr(m, "service_name=\"tracehouse\",service_version=\"" TH_VERSION
                              "\",deployment_environment=\"test\"} 1\n"));
    assert_null(strstr(m, "_total{"));
    assert_null(strstr(m, "_total "));
    free(cl.scrape);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The endpoint answers only GET/HEAD /metrics, and level none starts nothing. */
static void test_endpoint(void **state)
{
    (void)state;
    const char *yaml = "receivers: {otlp: {protocols: {http: {endpoint: \"127.0.0.1:0\"}}}}\n"
                       "exporters: {nop: }\n"
                       "service:\n"
                       "  telemetry: {metrics: {address: \"127.0.0.1:0\"}}\n"
                       "  pipelines: {traces: {receivers: [otlp], exporters: [nop]}}\n";
    th_config_t *cfg = NULL;
    char err[512];
    if (th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    th_collector_t *c = NULL;
    assert_int_equal(th_collector_create(cfg, NULL, &c, err, sizeof(err)), 0);
    th_telemetry_t *t = NULL;
    assert_int_equal(th_telemetry_start(c, &cfg->telemetry, &t, err, sizeof(err)), 0);
    static char buf[1 << 18];
    int port = th_telemetry_port(t);
    assert_int_equal(http(port, "GET", "/", "text/plain", NULL, buf, sizeof(buf)), 404);
    assert_int_equal(http(port, "POST", "/metrics", "text/plain", "x", buf, sizeof(buf)), 405);
    assert_int_equal(http(port, "GET", "/metrics", "text/plain", NULL, buf, sizeof(buf)), 200);
    assert_non_null(strstr(buf, "content-type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    /* not started: the receiver has no transport counters yet, but is listed */
    assert_non_null(strstr(buf, "otelcol_receiver_accepted_spans{receiver=\"otlp\","
                                "transport=\"http\"} 0\n"));
    th_telemetry_stop(t);
    th_collector_destroy(c);

    struct th_telemetry_cfg none = {.metrics_level = "none", .metrics_endpoint = "x:1"};
    t = (th_telemetry_t *)1;
    assert_int_equal(th_telemetry_start(NULL, &none, &t, err, sizeof(err)), 0);
    assert_null(t);
    th_telemetry_stop(NULL);
}

/* One processor id in two pipelines gives one summed series; level basic drops batch's. */
static void test_levels_and_pipelines(void **state)
{
    (void)state;
    const char *yaml = "receivers: {otlp: {protocols: {http: {endpoint: \"127.0.0.1:0\"}}}}\n"
                       "processors: {batch: }\n"
                       "exporters: {nop: }\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    traces: {receivers: [otlp], processors: [batch], exporters: [nop]}\n"
                       "    traces/2: {receivers: [otlp], processors: [batch], exporters: [nop]}\n";
    th_config_t *cfg = NULL;
    char err[512];
    if (th_config_parse(yaml, strlen(yaml), "<test>", &cfg, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    th_collector_t *c = NULL;
    assert_int_equal(th_collector_create(cfg, NULL, &c, err, sizeof(err)), 0);
    struct th_telemetry_process p;
    th_telemetry_process_init(&p, NULL);
    assert_int_equal(strlen(p.instance_id), 36);
    assert_int_equal(p.instance_id[14], '4'); /* a version 4 UUID */
    static const char *const levels[] = {"normal", "basic"};
    for (size_t i = 0; i < 2; i++) {
        th_scrape_t *s = th_scrape_create();
        assert_int_equal(th_telemetry_collect(c, &p, levels[i], s), 0);
        th_buf_t out = {0};
        assert_int_equal(th_scrape_write(s, &out), 0);
        const char *m = text_of(&out);
        const char *first = strstr(m, "otelcol_processor_incoming_items{processor=\"batch\"");
        assert_non_null(first);
        assert_null(strstr(first + 1, "otelcol_processor_incoming_items{processor=\"batch\""));
        bool has_batch = strstr(m, "otelcol_processor_batch_batch_send_size_bucket") != NULL;
        assert_int_equal(has_batch, i == 0);
        check_exposition(m);
        th_buf_free(&out);
        th_scrape_destroy(s);
    }
    th_collector_destroy(c);
}

int main(void)
{
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_builder),
        cmocka_unit_test(test_running_collector),
        cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_levels_and_pipelines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
