/*
 * The prometheus exporter's ops table, config table and lifecycle glue: the scrape endpoint
 * (th/http_server.h) started at start and stopped at shutdown, and the scrape handler, which
 * picks the format (OpenMetrics when enabled and asked for in Accept, as the Collector's
 * Prometheus client does) and renders the series store (prometheus_store.c).
 */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "exporters/prometheus/prometheus.h"
#include "th/log.h"

#define CFG_OFF(f) offsetof(struct th_prometheus_exporter_cfg, f)

static const struct th_cfg_field r2t_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct th_prometheus_r2t_cfg, enabled),
     .desc = "copy every resource attribute to the labels of its series (else target_info)"},
    {0},
};

static const struct th_cfg_field prometheus_config[] = {
    {.name = "endpoint",
     .type = TH_CFG_STRING,
     .offset = CFG_OFF(endpoint),
     .flags = TH_CFG_F_REQUIRED,
     .desc = "host:port of the scrape endpoint (/metrics)"},
    {.name = "namespace",
     .type = TH_CFG_STRING,
     .offset = CFG_OFF(namespace_),
     .desc = "prefix of every metric name"},
    {.name = "const_labels",
     .type = TH_CFG_STRMAP,
     .offset = CFG_OFF(const_labels),
     .desc = "labels added to every series"},
    {.name = "send_timestamps",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = CFG_OFF(send_timestamps),
     .desc = "write each sample's timestamp"},
    {.name = "metric_expiration",
     .type = TH_CFG_DURATION,
     .def = "5m",
     .offset = CFG_OFF(metric_expiration),
     .min = 0,
     .max = INFINITY,
     .desc = "drop series not updated for this long (0: never)"},
    {.name = "resource_to_telemetry_conversion",
     .type = TH_CFG_SECTION,
     .offset = CFG_OFF(resource_to_telemetry_conversion),
     .sub = r2t_fields,
     .desc = "resource attributes as labels"},
    {.name = "enable_open_metrics",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = CFG_OFF(enable_open_metrics),
     .desc = "serve OpenMetrics (with exemplars) to scrapers that ask for it in Accept"},
    {.name = "add_metric_suffixes",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = CFG_OFF(add_metric_suffixes),
     .desc = "unit suffixes (_milliseconds) and _total on counters"},
    {.name = "without_scope_info",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = CFG_OFF(without_scope_info),
     .flags = TH_CFG_F_NOOP,
     .desc = "no otel_scope_* labels (they are never added)"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = CFG_OFF(tls),
     .aux = CFG_OFF(tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "TLS for the scrape endpoint (HTTPS); absent: plaintext"},
    {0},
};

static int prom_config_check(const void *p, const char **err)
{
    const struct th_prometheus_exporter_cfg *cfg = p;
    if (cfg->tls_enabled && th_tls_server_cfg_check_static(&cfg->tls, "::tls", err) != 0) {
        return TH_ECONFIG;
    }
    return 0;
}

/* Does the Accept header ask for OpenMetrics? */
static bool wants_open_metrics(const struct th_http_request *req)
{
    size_t len = 0;
    const char *a = req->header ? req->header(req, "accept", &len) : NULL;
    static const char om[] = "application/openmetrics-text";
    for (size_t i = 0; a && i + sizeof(om) - 1 <= len; i++) {
        if (!strncasecmp(a + i, om, sizeof(om) - 1)) {
            return true;
        }
    }
    return false;
}

/* On the HTTP server's thread. */
static int on_scrape(void *data, const struct th_http_request *req, struct th_http_response *res)
{
    struct th_prometheus_exporter *pe = data;
    if (req->path_len != 8 || memcmp(req->path, "/metrics", 8) != 0) {
        res->status = 404;
        return th_buf_printf(&res->body, "404 page not found\n");
    }
    bool om = pe->cfg->enable_open_metrics && wants_open_metrics(req);
    res->content_type = om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                           : "text/plain; version=0.0.4; charset=utf-8";
    return th_prometheus_store_render(pe->store, om, th_now_mono_ns(), &res->body);
}

static int prom_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct th_prometheus_exporter *pe = (struct th_prometheus_exporter *)c;
    const struct th_prometheus_exporter_cfg *cfg = cfg_;
    pe->cfg = cfg;
    struct th_prometheus_store_cfg sc = {
        .namespace_ = cfg->namespace_,
        .add_metric_suffixes = cfg->add_metric_suffixes,
        .resource_to_telemetry = cfg->resource_to_telemetry_conversion.enabled,
        .metric_expiration_ns = (uint64_t)cfg->metric_expiration,
        .const_labels = cfg->const_labels,
        .send_timestamps = cfg->send_timestamps,
    };
    return th_prometheus_store_create(&sc, &pe->store);
}

static int prom_start(struct th_component *c, struct th_host *host)
{
    struct th_prometheus_exporter *pe = (struct th_prometheus_exporter *)c;
    c->host = host;
    if (pe->server) {
        return 0;
    }
    struct th_http_server_cfg hc = {.endpoint = pe->cfg->endpoint,
                                    .handler = on_scrape,
                                    .data = pe,
                                    .log_as = c,
                                    .tls = pe->cfg->tls_enabled ? &pe->cfg->tls : NULL};
    char err[256];
    int ret = th_http_server_start(&hc, &pe->server, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    th_log_info(c, "serving metrics at %s://%s/metrics (port %d)",
                pe->cfg->tls_enabled ? "https" : "http", pe->cfg->endpoint,
                th_http_server_port(pe->server));
    return 0;
}

static int prom_shutdown(struct th_component *c)
{
    struct th_prometheus_exporter *pe = (struct th_prometheus_exporter *)c;
    pe->stopped = true;
    th_http_server_stop(pe->server);
    pe->server = NULL;
    c->shut_down = true;
    return 0;
}

static void prom_destroy(struct th_component *c)
{
    struct th_prometheus_exporter *pe = (struct th_prometheus_exporter *)c;
    th_http_server_stop(pe->server);
    pe->server = NULL;
    th_prometheus_store_destroy(pe->store);
    pe->store = NULL;
}

static int prom_consume_metrics(struct th_component *c, th_metrics_t *m)
{
    struct th_prometheus_exporter *pe = (struct th_prometheus_exporter *)c;
    int ret = th_prometheus_store_add(pe->store, m, th_now_mono_ns());
    th_metrics_release(m);
    return ret;
}

const struct th_component_ops th_exporter_prometheus_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "prometheus",
    .signals = TH_SIGNAL_METRICS,
    .stability = TH_STABILITY_BETA,
    .description = "Serves the metrics of metrics pipelines for Prometheus to scrape",
    .config_size = sizeof(struct th_prometheus_exporter_cfg),
    .config = prometheus_config,
    .config_check = prom_config_check,
    .instance_size = sizeof(struct th_prometheus_exporter),
    .init = prom_init,
    .start = prom_start,
    .shutdown = prom_shutdown,
    .destroy = prom_destroy,
    .consume_metrics = prom_consume_metrics,
};
