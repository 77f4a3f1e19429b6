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
    th_jaeger_ui_t *ui; /* the web UI, from start to shutdown (after the server stopped) */
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

/* A Collector timeout of 0 means "Tracehouse's default" here: h2o needs a finite bound.
 * h2o 2.2 has one HTTP/1 timer, from the wait for a request until its body is in, so it
 * takes the request's bound (the larger of read_header_timeout and read_timeout): taking
 * idle_timeout (1m by default) let a client trickling its headers a byte a second hold a
 * connection for a minute whatever read_header_timeout said. Idle keep-alive connections
 * are closed after the same time. */
static uint64_t timeout_ms(const struct th_jaeger_query_http_cfg *h)
{
    int64_t ns = TH_MAX(h->read_header_timeout, h->read_timeout);
    if (ns <= 0) {
        ns = h->idle_timeout;
    }
    return ns > 0 ? (uint64_t)(ns / 1000000) : 0;
}

/* The progress deadline (th/conn_limit.h): the larger of the idle timeout, the time Go would
 * allow one request's headers and body (read_header_timeout + read_timeout), and h2o's own
 * timer, so it only catches what h2o's timers miss (HTTP/2's idle timer restarts on every
 * byte read). 0 when all are 0: the server then uses its default timeout. */
static uint64_t progress_ms(const struct th_jaeger_query_http_cfg *h)
{
    int64_t ns = TH_MAX(h->idle_timeout, 0);
    ns = TH_MAX(ns, TH_MAX(h->read_header_timeout, 0) + TH_MAX(h->read_timeout, 0));
    uint64_t ms = (uint64_t)(ns / 1000000);
    return TH_MAX(ms, timeout_ms(h));
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
    char err[512];
    th_auth_t auth = {0};
    if (cfg->http.auth_enabled) {
        rc = th_auth_resolve(host, cfg->http.auth.authenticator, TH_AUTH_SERVER, &auth, err,
                             sizeof(err));
        if (rc != 0) {
            th_log_error(c, "extensions::jaeger_query::http::%s", err);
            return rc;
        }
        auth.request_params = &cfg->http.auth.request_params;
    }
    if (cfg->ui.config_file && *cfg->ui.config_file &&
        !(cfg->ui.assets_path && *cfg->ui.assets_path)) {
        th_log_warn(c, "extensions::jaeger_query::ui::config_file only configures Jaeger UI "
                       "assets (ui::assets_path); the built-in UI ignores it");
    }
    struct th_jaeger_ui_cfg uc = {.base_path = base,
                                  .assets_path = cfg->ui.assets_path,
                                  .config_file = cfg->ui.config_file,
                                  .log_access = cfg->ui.log_access};
    rc = th_jaeger_ui_create(&uc, &q->ui, err, sizeof(err));
    if (rc != 0) {
        th_log_error(c, "extensions::jaeger_query::%s", err);
        return rc;
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
        .ui = q->ui,
        .tls = cfg->http.tls_enabled ? &cfg->http.tls : NULL,
        .request_timeout_ms = timeout_ms(&cfg->http),
        .progress_timeout_ms = progress_ms(&cfg->http),
        .write_timeout_ms = cfg->http.write_timeout > 0
                                ? TH_MAX((uint64_t)cfg->http.write_timeout / 1000000, 1)
                                : 0,
        .max_connections = cfg->http.max_connections > 0 ? (size_t)cfg->http.max_connections : 0,
        .max_request_body =
            cfg->http.max_request_body_size > 0 ? (size_t)cfg->http.max_request_body_size : 0,
    };
    hc.auth = auth;
    rc = th_jaeger_http_start(&hc, c, &q->http, err, sizeof(err));
    if (rc != 0) {
        th_log_error(c, "extensions::jaeger_query::http: %s", err);
        th_jaeger_ui_destroy(q->ui);
        q->ui = NULL;
        return rc;
    }
    th_log_info(c, "Jaeger query API and %s listening on %s (port %d)%s%s",
                cfg->ui.assets_path && *cfg->ui.assets_path ? "Jaeger UI" : "web UI",
                cfg->http.endpoint, th_jaeger_http_port(q->http), *base ? ", base path " : "",
                base);
    return 0;
}

static int jq_shutdown(struct th_component *c)
{
    struct th_jaeger_query *q = (struct th_jaeger_query *)c;
    th_jaeger_http_stop(q->http);
    q->http = NULL;
    th_jaeger_ui_destroy(q->ui); /* after the server: responses point into it */
    q->ui = NULL;
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
    .description = "Jaeger query API (v1 /api and api_v3 /api/v3) and the web UI over a "
                   "jaeger_storage backend",
    .config_size = sizeof(struct th_jaeger_query_cfg),
    .config = th_jaeger_query_config,
    .config_check = th_jaeger_query_config_check,
    .instance_size = sizeof(struct th_jaeger_query),
    .init = jq_init,
    .start = jq_start,
    .shutdown = jq_shutdown,
    .destroy = jq_destroy,
};
