/*
 * The health_check extension: the ops table, the config table and the lifecycle glue. start
 * binds the endpoint (a server on its own thread, th_http_server); shutdown stops it. The
 * answers are built in health_check_status.c.
 */
#include <stdio.h>
#include <string.h>

#include "extensions/health_check/health_check.h"
#include "th/log.h"

#define OFF(f)  offsetof(struct th_health_check_cfg, f)
#define BOFF(f) offsetof(struct th_health_check_body_cfg, f)
#define POFF(f) offsetof(struct th_health_check_pipeline_cfg, f)

static const struct th_cfg_field body_fields[] = {
    {.name = "healthy",
     .type = TH_CFG_STRING,
     .offset = BOFF(healthy),
     .desc = "body of the 200 answer instead of the JSON status"},
    {.name = "unhealthy",
     .type = TH_CFG_STRING,
     .offset = BOFF(unhealthy),
     .desc = "body of the 503 answer instead of the JSON status"},
    {.name = NULL},
};

static const struct th_cfg_field pipeline_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = POFF(enabled),
     .flags = TH_CFG_F_NOOP,
     .desc = "the Collector documents this check as broken; Tracehouse reports store and "
             "queue failures by itself"},
    {.name = "interval",
     .type = TH_CFG_DURATION,
     .def = "5m",
     .offset = POFF(interval),
     .flags = TH_CFG_F_NOOP,
     .desc = "how often the pipeline check would run"},
    {.name = "exporter_failure_threshold",
     .type = TH_CFG_INT,
     .def = "5",
     .offset = POFF(exporter_failure_threshold),
     .flags = TH_CFG_F_NOOP,
     .desc = "failures before the pipeline check would report (must be > 0)"},
    {.name = NULL},
};

const struct th_cfg_field th_health_check_config[] = {
    {.name = "endpoint",
     .type = TH_CFG_STRING,
     .def = TH_HEALTH_CHECK_DEFAULT_ENDPOINT,
     .offset = OFF(endpoint),
     .desc = "host:port to listen on (\":port\" for every interface)"},
    {.name = "path",
     .type = TH_CFG_STRING,
     .def = "/",
     .offset = OFF(path),
     .desc = "the path answered (any method); must start with /"},
    {.name = "response_body",
     .type = TH_CFG_SECTION,
     .offset = OFF(response_body),
     .sub = body_fields,
     .desc = "fixed bodies instead of the JSON status"},
    {.name = "check_collector_pipeline",
     .type = TH_CFG_SECTION,
     .offset = OFF(check_collector_pipeline),
     .sub = pipeline_fields,
     .desc = "the Collector's pipeline check (accepted for compatibility)"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = OFF(tls),
     .aux = OFF(tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "TLS for the health endpoint (HTTPS); absent: plaintext"},
    {.name = NULL},
};

int th_health_check_config_check(const void *p, const char **err)
{
    const struct th_health_check_cfg *cfg = p;
    if (!cfg->path || cfg->path[0] != '/') {
        *err = "::path: must start with \"/\"";
        return TH_ECONFIG;
    }
    if (cfg->check_collector_pipeline.exporter_failure_threshold <= 0) {
        *err = "::check_collector_pipeline::exporter_failure_threshold: must be greater than 0";
        return TH_ECONFIG;
    }
    if (!cfg->endpoint || !*cfg->endpoint) {
        *err = "::endpoint: must not be empty";
        return TH_ECONFIG;
    }
    if (cfg->tls_enabled && th_tls_server_cfg_check_static(&cfg->tls, "::tls", err) != 0) {
        return TH_ECONFIG;
    }
    return 0;
}

static int hc_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    (void)next;
    ((struct th_health_check *)c)->cfg = cfg;
    return 0;
}

static int hc_start(struct th_component *c, struct th_host *host)
{
    struct th_health_check *h = (struct th_health_check *)c;
    h->host = host;
    struct th_http_server_cfg sc = {
        .endpoint = h->cfg->endpoint,
        .handler = th__health_check_serve,
        .data = h,
        .log_as = c,
        .tls = h->cfg->tls_enabled ? &h->cfg->tls : NULL,
    };
    char err[512];
    int ret = th_http_server_start(&sc, &h->srv, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "extensions::health_check: %s", err);
        return ret;
    }
    th_log_info(c, "health check on %s://%s%s (port %d)", h->cfg->tls_enabled ? "https" : "http",
                h->cfg->endpoint, h->cfg->path, th_http_server_port(h->srv));
    return 0;
}

static int hc_shutdown(struct th_component *c)
{
    struct th_health_check *h = (struct th_health_check *)c;
    th_http_server_stop(h->srv);
    h->srv = NULL;
    return 0;
}

static void hc_destroy(struct th_component *c)
{
    hc_shutdown(c);
}

int th_health_check_port(const struct th_component *c)
{
    const struct th_health_check *h = (const struct th_health_check *)c;
    return c->ops == &th_extension_health_check_ops && h->srv ? th_http_server_port(h->srv) : 0;
}

const struct th_component_ops th_extension_health_check_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "health_check",
    .stability = TH_STABILITY_BETA,
    .description = "HTTP health endpoint for probes: 200 while pipelines run and the store and "
                   "exporter queues can take data, else 503",
    .config_size = sizeof(struct th_health_check_cfg),
    .config = th_health_check_config,
    .config_check = th_health_check_config_check,
    .instance_size = sizeof(struct th_health_check),
    .init = hc_init,
    .start = hc_start,
    .shutdown = hc_shutdown,
    .destroy = hc_destroy,
};
