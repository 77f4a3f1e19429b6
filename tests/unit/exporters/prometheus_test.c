/*
 * The prometheus exporter: metric and label names against the translator's rules, the series
 * store rendered in the text format and in OpenMetrics and parsed back (labels, job and
 * instance, target_info, const_labels, resource attributes as labels, delta accumulation,
 * expiration, exemplars, timestamps), and the scrape endpoint over a real socket.
 */
#include <math.h>
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

#include "exporters/prometheus/prometheus.h"

/* ---- Names --------------------------------------------------------------------------------- */

static void name_is(const char *name, const char *unit, bool counter, bool gauge, const char *ns,
                    bool suffixes, const char *want)
{
    char out[256];
    th_prometheus_metric_name(name, unit, counter, gauge, ns, suffixes, out, sizeof(out));
    if (strcmp(out, want) != 0) {
        fail_msg("%s [%s]: got %s, want %s", name, unit, out, want);
    }
}

static void test_metric_names(void **state)
{
    (void)state;
    name_is("traces.span.metrics.calls", "", true, false, "", true,
            "traces_span_metrics_calls_total");
    name_is("traces.span.metrics.duration", "ms", false, false, "", true,
            "traces_span_metrics_duration_milliseconds");
    name_is("calls", "", true, false, "", true, "calls_total");
    name_is("duration", "s", false, false, "", true, "duration_seconds");
    name_is("traces.span.metrics.calls", "", true, false, "", false, "traces_span_metrics_calls");
    name_is("traces.span.metrics.duration", "ms", false, false, "", false,
            "traces_span_metrics_duration");
    name_is("traces.span.metrics.calls", "", true, false, "my-ns", true,
            "my_ns_traces_span_metrics_calls_total");
    /* the unit already in the name, total not repeated */
    name_is("request.duration.seconds", "s", false, false, "", true, "request_duration_seconds");
    name_is("requests.total", "", true, false, "", true, "requests_total");
    name_is("total.requests", "", true, false, "", true, "requests_total");
    name_is("net.io", "By/s", false, true, "", true, "net_io_bytes_per_second");
    name_is("cpu.utilization", "1", false, true, "", true, "cpu_utilization_ratio");
    name_is("queue.size", "{requests}", false, true, "", true, "queue_size");
    name_is("2xx.count", "", true, false, "", true, "_2xx_count_total");
    name_is("a..b__c", "", false, true, "", true, "a_b_c");
}

static void label_is(const char *in, const char *want)
{
    char out[128];
    th_prometheus_label_name(in, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_label_names(void **state)
{
    (void)state;
    label_is("http.method", "http_method");
    label_is("service.name", "service_name");
    label_is("0abc", "key_0abc");
    label_is("_foo", "key_foo");
    label_is("__foo", "__foo");
    label_is("a-b/c", "a_b_c");
}

/* ---- A small exposition parser ------------------------------------------------------------ */

struct sample {
    char name[128];
    char labels[16][2][128];
    int n_labels;
    double value;
    bool has_ts;
    char exemplar[256];
};

static struct sample samples[256];
static int n_samples;

static void parse(const char *text)
{
    n_samples = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (*p != '#') {
            struct sample *s = &samples[n_samples++];
            memset(s, 0, sizeof(*s));
            size_t n = strcspn(p, "{ ");
            memcpy(s->name, p, n);
            p += n;
            if (*p == '{') {
                p++;
                while (*p != '}') {
                    size_t k = strcspn(p, "=");
                    memcpy(s->labels[s->n_labels][0], p, k);
                    p += k + 2; /* =" */
                    size_t v = 0;
                    while (*p != '"') {
                        if (*p == '\\') {
                            p++;
                        }
                        s->labels[s->n_labels][1][v++] = *p++;
                    }
                    p++;
                    if (*p == ',') {
                        p++;
                    }
                    s->n_labels++;
                }
                p++;
            }
            assert_int_equal(*p, ' ');
            char *end;
            s->value = strtod(p + 1, &end);
            assert_true(end > p + 1);
            p = end;
            if (*p == ' ' && p[1] != '#') {
                s->has_ts = true;
                strtod(p + 1, &end);
                p = end;
            }
            if (!strncmp(p, " # ", 3)) {
                memcpy(s->exemplar, p + 3, (size_t)(eol - p - 3));
            }
        }
        p = eol + 1;
    }
}

static const char *label(const struct sample *s, const char *name)
{
    for (int i = 0; i < s->n_labels; i++) {
        if (!strcmp(s->labels[i][0], name)) {
            return s->labels[i][1];
        }
    }
    return NULL;
}

/* The one sample of @p name whose labels include the NULL-terminated pairs. */
static const struct sample *find(const char *name, ...)
{
    const struct sample *found = NULL;
    for (int i = 0; i < n_samples; i++) {
        if (strcmp(samples[i].name, name)) {
            continue;
        }
        va_list ap;
        va_start(ap, name);
        bool ok = true;
        for (const char *k; ok && (k = va_arg(ap, const char *)) != NULL;) {
            const char *v = va_arg(ap, const char *);
            const char *have = label(&samples[i], k);
            ok = v ? have && !strcmp(have, v) : !have;
        }
        va_end(ap);
        if (ok) {
            if (found) {
                fail_msg("two samples %s match", name);
            }
            found = &samples[i];
        }
    }
    if (!found) {
        fail_msg("no sample %s", name);
    }
    return found;
}

static int count(const char *name)
{
    int n = 0;
    for (int i = 0; i < n_samples; i++) {
        n += !strcmp(samples[i].name, name);
    }
    return n;
}

/* ---- Snapshots ------------------------------------------------------------------------------ */

static const struct th_metric_attr res_attrs[] = {
    {"service.name", "svc"}, {"service.instance.id", "i-1"}, {"host.name", "h1"}};
static const struct th_metric_attr pt_attrs[] = {
    {"service.name", "svc"}, {"span.name", "GET \"/x\""}, {"http.method", "GET"}};
static const double bounds[] = {2, 4};
static uint64_t buckets[] = {1, 2, 3};
static struct th_exemplar ex[2];

static th_metrics_t *snapshot(enum th_temporality temp, double calls)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_metrics_t *m = th_metrics_create(a);
    struct th_metric_resource *r = th_arena_calloc(a, 1, sizeof(*r));
    struct th_metric_scope *sc = th_arena_calloc(a, 1, sizeof(*sc));
    struct th_metric *mt = th_arena_calloc(a, 2, sizeof(*mt));
    struct th_metric_point *p = th_arena_calloc(a, 2, sizeof(*p));
    r->attrs = res_attrs;
    r->n_attrs = TH_ARRAY_SIZE(res_attrs);
    r->scopes = sc;
    r->n_scopes = 1;
    sc->name = "spanmetricsconnector";
    sc->metrics = mt;
    sc->n_metrics = 2;
    mt[0] = (struct th_metric){.name = "traces.span.metrics.calls",
                               .unit = "",
                               .description = "",
                               .type = TH_METRIC_SUM,
                               .temporality = temp,
                               .monotonic = true,
                               .points = &p[0],
                               .n_points = 1};
    mt[1] = (struct th_metric){.name = "traces.span.metrics.duration",
                               .unit = "ms",
                               .description = "span durations",
                               .type = TH_METRIC_HISTOGRAM,
                               .temporality = temp,
                               .bounds = bounds,
                               .n_bounds = 2,
                               .points = &p[1],
                               .n_points = 1};
    memset(ex[0].trace_id, 0xab, 16);
    memset(ex[0].span_id, 0xcd, 8);
    ex[0].value = 3;
    ex[0].time_ns = 1700000000123000000ull;
    ex[1] = ex[0];
    ex[1].value = 9;
    ex[1].span_id[0] = 0x01;
    p[0] = (struct th_metric_point){.attrs = pt_attrs,
                                    .n_attrs = TH_ARRAY_SIZE(pt_attrs),
                                    .time_ns = 1700000000000000000ull,
                                    .value = calls,
                                    .exemplars = &ex[1],
                                    .n_exemplars = 1};
    p[1] = (struct th_metric_point){.attrs = pt_attrs,
                                    .n_attrs = TH_ARRAY_SIZE(pt_attrs),
                                    .time_ns = 1700000000000000000ull,
                                    .count = 6,
                                    .sum = 21.5,
                                    .buckets = buckets,
                                    .n_buckets = 3,
                                    .exemplars = ex,
                                    .n_exemplars = 2};
    m->resources = r;
    m->n_resources = 1;
    return m;
}

static char *render(th_prometheus_store_t *s, bool om, uint64_t mono)
{
    th_buf_t b = {0};
    assert_int_equal(th_prometheus_store_render(s, om, mono, &b), 0);
    assert_int_equal(th_buf_append(&b, "", 1), 0);
    return (char *)b.ptr;
}

static void test_text_format(void **state)
{
    (void)state;
    static const char *ck[] = {"env"}, *cv[] = {"prod"};
    struct th_prometheus_store_cfg cfg = {.namespace_ = "",
                                          .add_metric_suffixes = true,
                                          .metric_expiration_ns = 300000000000ull,
                                          .const_labels = {ck, cv, 1}};
    th_prometheus_store_t *s;
    assert_int_equal(th_prometheus_store_create(&cfg, &s), 0);
    th_metrics_t *m = snapshot(TH_TEMPORALITY_CUMULATIVE, 42);
    assert_int_equal(th_prometheus_store_add(s, m, 1), 0);
    th_metrics_release(m);
    char *text = render(s, false, 2);
    parse(text);
    assert_non_null(strstr(text, "# TYPE traces_span_metrics_calls_total counter\n"));
    assert_non_null(strstr(text, "# TYPE traces_span_metrics_duration_milliseconds histogram\n"));
    assert_non_null(strstr(text, "# HELP traces_span_metrics_duration_milliseconds span "
                                 "durations\n"));
    assert_null(strstr(text, " # {")); /* no exemplars in the text format */
    const struct sample *c = find("traces_span_metrics_calls_total", NULL);
    assert_true(c->value == 42);
    assert_string_equal(label(c, "service_name"), "svc");
    assert_string_equal(label(c, "span_name"), "GET \"/x\""); /* escaped and read back */
    assert_string_equal(label(c, "http_method"), "GET");
    assert_string_equal(label(c, "job"), "svc");
    assert_string_equal(label(c, "instance"), "i-1");
    assert_string_equal(label(c, "env"), "prod");
    assert_null(label(c, "host_name")); /* resource attributes go to target_info */
    assert_int_equal(c->n_labels, 6);
    /* cumulative buckets, then +Inf, _sum and _count */
    assert_true(find("traces_span_metrics_duration_milliseconds_bucket", "le", "2", NULL)->value ==
                1);
    assert_true(find("traces_span_metrics_duration_milliseconds_bucket", "le", "4", NULL)->value ==
                3);
    assert_true(
        find("traces_span_metrics_duration_milliseconds_bucket", "le", "+Inf", NULL)->value == 6);
    assert_true(find("traces_span_metrics_duration_milliseconds_sum", NULL)->value == 21.5);
    assert_true(find("traces_span_metrics_duration_milliseconds_count", NULL)->value == 6);
    const struct sample *ti = find("target_info", NULL);
    assert_true(ti->value == 1);
    assert_string_equal(label(ti, "host_name"), "h1");
    assert_string_equal(label(ti, "job"), "svc");
    assert_null(label(ti, "env"));
    assert_null(label(ti, "service_name"));
    assert_false(c->has_ts);
    free(text);
    /* a newer cumulative point replaces the value */
    m = snapshot(TH_TEMPORALITY_CUMULATIVE, 50);
    assert_int_equal(th_prometheus_store_add(s, m, 3), 0);
    th_metrics_release(m);
    text = render(s, false, 4);
    parse(text);
    assert_true(find("traces_span_metrics_calls_total", NULL)->value == 50);
    assert_int_equal(count("traces_span_metrics_calls_total"), 1);
    free(text);
    /* not updated for metric_expiration: gone */
    text = render(s, false, 3 + 300000000000ull);
    assert_string_equal(text, "");
    assert_int_equal(th_prometheus_store_size(s), 0);
    free(text);
    th_prometheus_store_destroy(s);
}

static void test_delta_and_options(void **state)
{
    (void)state;
    struct th_prometheus_store_cfg cfg = {.namespace_ = "ns",
                                          .add_metric_suffixes = false,
                                          .resource_to_telemetry = true,
                                          .send_timestamps = true};
    th_prometheus_store_t *s;
    assert_int_equal(th_prometheus_store_create(&cfg, &s), 0);
    for (int i = 0; i < 2; i++) {
        th_metrics_t *m = snapshot(TH_TEMPORALITY_DELTA, 5);
        assert_int_equal(th_prometheus_store_add(s, m, 1), 0);
        th_metrics_release(m);
    }
    char *text = render(s, false, 2);
    parse(text);
    /* deltas add up; no suffixes; the namespace in front */
    const struct sample *c = find("ns_traces_span_metrics_calls", NULL);
    assert_true(c->value == 10);
    assert_true(find("ns_traces_span_metrics_duration_bucket", "le", "+Inf", NULL)->value == 12);
    assert_true(find("ns_traces_span_metrics_duration_sum", NULL)->value == 43);
    /* resource attributes as labels, and no target_info */
    assert_string_equal(label(c, "host_name"), "h1");
    assert_string_equal(label(c, "service_instance_id"), "i-1");
    assert_int_equal(count("ns_target_info") + count("target_info"), 0);
    assert_true(c->has_ts);
    assert_non_null(strstr(text, "} 10 1700000000000\n"));
    free(text);
    th_prometheus_store_destroy(s);
}

static void test_open_metrics(void **state)
{
    (void)state;
    struct th_prometheus_store_cfg cfg = {.namespace_ = "", .add_metric_suffixes = true};
    th_prometheus_store_t *s;
    assert_int_equal(th_prometheus_store_create(&cfg, &s), 0);
    th_metrics_t *m = snapshot(TH_TEMPORALITY_CUMULATIVE, 7);
    assert_int_equal(th_prometheus_store_add(s, m, 1), 0);
    th_metrics_release(m);
    char *text = render(s, true, 2);
    parse(text);
    size_t len = strlen(text);
    assert_true(len > 6 && !strcmp(text + len - 6, "# EOF\n"));
    assert_non_null(strstr(text, "# TYPE traces_span_metrics_calls counter\n"));
    assert_null(strstr(text, "# TYPE traces_span_metrics_calls_total"));
    const struct sample *c = find("traces_span_metrics_calls_total", NULL);
    assert_true(c->value == 7);
    assert_string_equal(c->exemplar, "{trace_id=\"abababababababababababababababab\",span_id="
                                     "\"01cdcdcdcdcdcdcd\"} 9 1700000000.123");
    /* each exemplar on the bucket its value falls in: 3 in le=4, 9 in +Inf; le in canonical
     * float form */
    const struct sample *b2 =
        find("traces_span_metrics_duration_milliseconds_bucket", "le", "2.0", NULL);
    assert_string_equal(b2->exemplar, "");
    const struct sample *b4 =
        find("traces_span_metrics_duration_milliseconds_bucket", "le", "4.0", NULL);
    assert_non_null(strstr(b4->exemplar, "span_id=\"cdcdcdcdcdcdcdcd\"} 3 "));
    const struct sample *inf =
        find("traces_span_metrics_duration_milliseconds_bucket", "le", "+Inf", NULL);
    assert_non_null(strstr(inf->exemplar, "span_id=\"01cdcdcdcdcdcdcd\"} 9 "));
    free(text);
    th_prometheus_store_destroy(s);
}

/* ---- The endpoint ------------------------------------------------------------------------- */

static char *http_get(int port, const char *path, const char *accept)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[512];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n",
                 path, accept ? "Accept: " : "", accept ? accept : "", accept ? "\r\n" : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static void test_endpoint(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    const char *yaml = "endpoint: 127.0.0.1:0\nenable_open_metrics: true\n";
    th_node_t *node;
    char err[256];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    struct th_prometheus_exporter_cfg cfg;
    assert_int_equal(th_cfg_decode(th_exporter_prometheus_ops.config, node, &cfg, a, "prometheus",
                                   err, sizeof(err)),
                     0);
    assert_int_equal(cfg.metric_expiration, 300000000000ll);
    assert_true(cfg.add_metric_suffixes);
    struct th_component *c;
    assert_int_equal(th_component_create(&th_exporter_prometheus_ops, "prometheus", &cfg, NULL, &c),
                     0);
    struct th_host host = {0};
    assert_int_equal(c->ops->start(c, &host), 0);
    c->started = true;
    th_metrics_t *m = snapshot(TH_TEMPORALITY_CUMULATIVE, 3);
    assert_int_equal(th_metrics_consumer_consume(&c->metrics_consumer, m), 0);
    int port = th_http_server_port(((struct th_prometheus_exporter *)c)->server);
    char *res = http_get(port, "/metrics", NULL);
    assert_non_null(strstr(res, "HTTP/1.1 200"));
    assert_non_null(strstr(res, "text/plain; version=0.0.4"));
    assert_non_null(strstr(res, "traces_span_metrics_calls_total{"));
    free(res);
    res = http_get(port, "/metrics", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    assert_non_null(strstr(res, "application/openmetrics-text; version=1.0.0"));
    assert_non_null(strstr(res, "# EOF\n"));
    free(res);
    res = http_get(port, "/other", NULL);
    assert_non_null(strstr(res, "HTTP/1.1 404"));
    free(res);
    assert_int_equal(c->ops->shutdown(c), 0);
    c->shut_down = true;
    /* after shutdown, snapshots are refused */
    m = snapshot(TH_TEMPORALITY_CUMULATIVE, 3);
    assert_int_equal(th_metrics_consumer_consume(&c->metrics_consumer, m), TH_ESHUTDOWN);
    th_component_destroy(c);
    th_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_names), cmocka_unit_test(test_label_names),
        cmocka_unit_test(test_text_format),  cmocka_unit_test(test_delta_and_options),
        cmocka_unit_test(test_open_metrics), cmocka_unit_test(test_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
