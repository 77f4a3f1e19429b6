/*
 * The jaeger_query extension: ops table and lifecycle. init keeps the config; start finds the
 * span store through the jaeger_storage extension and starts the HTTP server (its own thread
 * and loop, see jaeger_http.c); shutdown stops it. Parsing is in jaeger_query_config.c, the
 * API in jaeger_api.c and jaeger_v3.c, the trace model in jaeger_model.c.
 */
#include <string.h>

#include "th/jaeger_storage.h"
#include "th/log.h"
#include "ui-api/jaeger/jaeger_query.h"

struct th_jaeger_query {
    struct th_component base;
    const struct th_jaeger_query_cfg *cfg;
    th_arena_t *arena; /* normalised strings that live as long as the instance */
    th_jaeger_http_t *http;
    struct th_jaeger_query_metrics metrics; /* for the internal metrics endpoint */
};

static int jq_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    (void)next;
    struct th_jaeger_query *q = (struct th_jaeger_query *)c;
    q->cfg = cfg;
    q->arena = th_arena_create(1024, 0);
    return q->arena ? 0 : TH_ENOMEM;
}

/* A Collector timeout of 0 means "Tracehouse's default" here: h2o needs a finite bound. */
static uint64_t timeout_ms(const struct th_jaeger_query_http_cfg *h)
{
    int64_t ns = h->idle_timeout > 0 ? h->idle_timeout : h->read_header_timeout;
    return ns > 0 ? (uint64_t)(ns / 1000000) : 0;
}

static int jq_start(struct th_component *c, struct th_host *host)
{
    struct th_jaeger_query *q = (struct th_jaeger_query *)c;
    const struct th_jaeger_query_cfg *cfg = q->cfg;
    th_store_t *store = NULL;
    int rc = th_jaeger_storage_find(host, cfg->storage.traces, &store);
    if (rc != 0 || !store) {
        th_log_error(c,
                     "extensions::jaeger_query::storage::traces: no jaeger_storage backend named "
                     "\"%s\" (configure it under extensions::jaeger_storage::backends and list "
                     "jaeger_storage in service::extensions before jaeger_query)",
                     cfg->storage.traces ? cfg->storage.traces : "");
        return rc != 0 ? rc : TH_ENOENT;
    }
    const th_node_t *ep = cfg->grpc ? th_node_get(cfg->grpc, "endpoint") : NULL;
    if (cfg->grpc && cfg->grpc->kind != TH_NODE_NULL) {
        th_log_info(c, "the gRPC query API is not served (grpc::endpoint %s); use the HTTP API",
                    ep && ep->text ? ep->text : "unset");
    }
    const char *base = th_jaeger_query_base_path(cfg->base_path, q->arena);
    if (!base) {
        return TH_ENOMEM;
    }
    struct th_jaeger_http_cfg hc = {
        .endpoint = cfg->http.endpoint,
        .transport = cfg->http.transport,
        .api = {.store = store, .base_path = base, .max_clock_skew_ns = cfg->max_clock_skew_adjust},
        .cors_origins = &cfg->http.cors.allowed_origins,
        .cors_headers = &cfg->http.cors.allowed_headers,
        .cors_max_age_s = cfg->http.cors.max_age,
        .response_headers = &cfg->http.response_headers,
        .keep_alive = cfg->http.keep_alives_enabled,
        .metrics = &q->metrics,
        .request_timeout_ms = timeout_ms(&cfg->http),
        .max_request_body =
            cfg->http.max_request_body_size > 0 ? (size_t)cfg->http.max_request_body_size : 0,
    };
    char err[512];
    rc = th_jaeger_http_start(&hc, c, &q->http, err, sizeof(err));
    if (rc != 0) {
        th_log_error(c, "extensions::jaeger_query::http: %s", err);
        return rc;
    }
    th_log_info(c, "Jaeger query API listening on %s (port %d)%s%s", cfg->http.endpoint,
                th_jaeger_http_port(q->http), *base ? ", base path " : "", base);
    return 0;
}

static int jq_shutdown(struct th_component *c)
{
    struct th_jaeger_query *q = (struct th_jaeger_query *)c;
    th_jaeger_http_stop(q->http);
    q->http = NULL;
    return 0;
}

static void jq_destroy(struct th_component *c)
{
    struct th_jaeger_query *q = (struct th_jaeger_query *)c;
    if (!q) {
        return;
    }
    jq_shutdown(c);
    th_arena_destroy(q->arena);
    q->arena = NULL;
}

int th_jaeger_query_port(const struct th_component *c)
{
    if (!c || c->ops != &th_extension_jaeger_query_ops) {
        return 0;
    }
    const struct th_jaeger_query *q = (const struct th_jaeger_query *)c;
    return q->http ? th_jaeger_http_port(q->http) : 0;
}

const struct th_jaeger_query_metrics *th_jaeger_query_metrics(const struct th_component *c)
{
    if (!c || c->ops != &th_extension_jaeger_query_ops) {
        return NULL;
    }
    return &((const struct th_jaeger_query *)c)->metrics;
}

const struct th_component_ops th_extension_jaeger_query_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "jaeger_query",
    .stability = TH_STABILITY_ALPHA,
    .description = "Jaeger query API (v1 /api and api_v3 /api/v3) over a jaeger_storage backend",
    .config_size = sizeof(struct th_jaeger_query_cfg),
    .config = th_jaeger_query_config,
    .config_check = th_jaeger_query_config_check,
    .instance_size = sizeof(struct th_jaeger_query),
    .init = jq_init,
    .start = jq_start,
    .shutdown = jq_shutdown,
    .destroy = jq_destroy,
};
