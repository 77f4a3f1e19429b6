/*
 * The otlp_http exporter's ops table, config table and lifecycle glue. The component is the
 * exporter helper (queue, retries, its own thread and loop) driving this folder's transport
 * (otlp_http_transport.c); the rules across fields are in otlp_http_config.c.
 */
#include <math.h>
#include <string.h>

#include "exporters/otlp_http/otlp_http.h"
#include "th/auth.h"
#include "th/log.h"

static const char *const encodings[] = {"proto", "json", NULL};

#define ROW(field, kind, dflt, text)                                                               \
    {                                                                                              \
        .name = #field, .type = (kind), .def = (dflt),                                             \
        .offset = offsetof(struct th_otlphttp_cfg, field), .desc = (text)                          \
    }

/* A duration or size that must not be negative. */
#define ROW_POS(field, kind, dflt, text, fl)                                                       \
    {                                                                                              \
        .name = #field, .type = (kind), .def = (dflt),                                             \
        .offset = offsetof(struct th_otlphttp_cfg, field), .min = 0, .max = INFINITY,              \
        .flags = (fl), .desc = (text)                                                              \
    }

static const struct th_cfg_field compression_params_fields[] = {
    {.name = "level",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = offsetof(struct th_otlphttp_compression_params, level),
     .desc = "gzip/zlib/deflate: -1 or 0 default, -2 Huffman only, 1..9; zstd: its levels"},
    {.name = NULL},
};

/* `cookies:` has no keys of its own; its presence turns cookies on. */
static const struct th_cfg_field cookies_fields[] = {
    {.name = NULL},
};

static const struct th_cfg_field otlp_http_config[] = {
    ROW(endpoint, TH_CFG_STRING, NULL, "Base URL; /v1/traces is appended"),
    ROW(traces_endpoint, TH_CFG_STRING, NULL, "Full URL for traces, used as written"),
    ROW(metrics_endpoint, TH_CFG_STRING, NULL, "Full URL for metrics (Tracehouse sends traces)"),
    ROW(logs_endpoint, TH_CFG_STRING, NULL, "Full URL for logs (Tracehouse sends traces)"),
    ROW(profiles_endpoint, TH_CFG_STRING, NULL,
        "Full URL for profiles (Tracehouse sends "
        "traces)"),
    {.name = "encoding",
     .type = TH_CFG_ENUM,
     .def = "proto",
     .offset = offsetof(struct th_otlphttp_cfg, encoding),
     .choices = encodings,
     .desc = "proto (application/x-protobuf) or json (application/json)"},
    ROW_POS(timeout, TH_CFG_DURATION, "30s", "Time for one request, answer included (0: none)", 0),
    ROW(compression, TH_CFG_STRING, "gzip", "gzip, zstd, zlib, deflate or none"),
    {.name = "compression_params",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlphttp_cfg, compression_params),
     .sub = compression_params_fields,
     .desc = "Compression settings"},
    {.name = "headers",
     .type = TH_CFG_STRMAP,
     .offset = offsetof(struct th_otlphttp_cfg, headers),
     .flags = TH_CFG_F_SECRET,
     .desc = "Headers sent with every request; they override Tracehouse's own"},
    {.name = "tls",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlphttp_cfg, tls),
     .sub = th__otlphttp_tls_fields,
     .desc = "TLS client settings (https URLs)"},
    ROW(proxy_url, TH_CFG_STRING, NULL, "Proxy for every request (\"\": the *_proxy variables)"),
    ROW_POS(read_buffer_size, TH_CFG_SIZE, "0", "Receive buffer of each connection (0: curl's)", 0),
    ROW_POS(write_buffer_size, TH_CFG_SIZE, "524288", "Upload buffer of each connection", 0),
    ROW_POS(max_idle_conns, TH_CFG_INT, "100", "Connections kept open for reuse (0: curl's)", 0),
    ROW_POS(max_idle_conns_per_host, TH_CFG_INT, "0",
            "Idle connections kept per host (curl caps them overall: max_idle_conns)",
            TH_CFG_F_NOOP),
    ROW_POS(max_conns_per_host, TH_CFG_INT, "0", "Most connections to the server (0: no limit)", 0),
    ROW_POS(idle_conn_timeout, TH_CFG_DURATION, "90s",
            "Close connections idle this long (0: never)", 0),
    ROW(disable_keep_alives, TH_CFG_BOOL, "false", "A new connection for every request"),
    ROW(force_attempt_http2, TH_CFG_BOOL, "true", "Offer HTTP/2 (ALPN) on https URLs"),
    ROW_POS(http2_read_idle_timeout, TH_CFG_DURATION, "0s",
            "HTTP/2 health check timing (curl has no equivalent)", TH_CFG_F_NOOP),
    ROW_POS(http2_ping_timeout, TH_CFG_DURATION, "15s",
            "HTTP/2 health check timing (curl has no equivalent)", TH_CFG_F_NOOP),
    {.name = "cookies",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct th_otlphttp_cfg, cookies_enabled),
     .aux = offsetof(struct th_otlphttp_cfg, cookies_enabled),
     .sub = cookies_fields,
     .desc = "Keep cookies the server sets and send them back (present enables it)"},
    {.name = "auth",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_otlphttp_cfg, auth),
     .desc = "auth::authenticator: a client authenticator extension (bearertokenauth, "
             "basicauth with client_auth) whose header every request carries, taken at start"},
    {.name = "middlewares",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_otlphttp_cfg, middlewares),
     .desc = "Middleware extensions (not supported)"},
    {.name = "retry_on_failure",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlphttp_cfg, retry),
     .sub = th_retry_cfg_fields,
     .desc = "Retries with exponential backoff, honouring Retry-After"},
    {.name = "sending_queue",
     .type = TH_CFG_OPTIONAL,
     .flags = TH_CFG_F_SOME,
     .offset = offsetof(struct th_otlphttp_cfg, queue),
     .aux = offsetof(struct th_otlphttp_cfg, queue.enabled),
     .sub = th_queue_cfg_fields,
     .desc = "Queue in memory or on disk (storage), drained by num_consumers requests"},
    {.name = NULL},
};

struct th_otlphttp_exporter {
    struct th_component base;
    th_exporterhelper_t *helper;
    th_otlphttp_transport_t *transport; /* the helper's; start adds the auth header to it */
    const struct th_otlphttp_cfg *cfg;
};

static int otlp_http_config_check(const void *p, const char **err)
{
    const struct th_otlphttp_cfg *cfg = p;
    int ret = th__otlphttp_config_check(cfg, err);
    if (ret == 0) {
        ret = th_exporterhelper_config_check(&cfg->retry, &cfg->queue, err);
    }
    return ret;
}

static int otlp_http_init(struct th_component *c, const void *p, struct th_consumer *next)
{
    struct th_otlphttp_exporter *x = (struct th_otlphttp_exporter *)c;
    const struct th_otlphttp_cfg *cfg = p;
    th_otlphttp_transport_t *t = NULL;
    const char *err = NULL;
    int ret = otlp_http_config_check(cfg, &err);
    if (ret == 0) {
        ret = th__otlphttp_transport_create(cfg, c, &t, &err);
    }
    if (ret != 0) {
        if (err != NULL) {
            th_log_error(c, "%s", err);
        }
        return ret;
    }
    /* Without an in-memory queue (none, a persistent one, or wait_for_result) the helper
     * settles acks only once the data is stored or delivered. */
    if (!cfg->queue.enabled || (cfg->queue.storage && *cfg->queue.storage) ||
        cfg->queue.wait_for_result) {
        c->consumer.caps |= TH_CAP_DURABLE;
    }
    /* The helper owns the transport from here on, even when it fails. */
    x->transport = t;
    x->cfg = cfg;
    return th_exporterhelper_create(c, &cfg->retry, &cfg->queue, &th__otlphttp_transport_ops, t,
                                    &x->helper);
}

static int otlp_http_start(struct th_component *c, struct th_host *host)
{
    struct th_otlphttp_exporter *x = (struct th_otlphttp_exporter *)c;
    c->host = host;
    struct th_auth_client auth;
    int ret = th_auth_client_resolve(c, host, x->cfg ? x->cfg->auth : NULL, &auth);
    if (ret == 0 && th_auth_enabled(&auth.a)) {
        ret = th__otlphttp_transport_set_auth(x->transport, &auth);
    }
    th_auth_client_free(&auth);
    if (ret != 0) {
        return ret;
    }
    ret = th_exporterhelper_start(x->helper, host);
    if (ret == 0) {
        c->started = true;
    }
    return ret;
}

static int otlp_http_shutdown(struct th_component *c)
{
    struct th_otlphttp_exporter *x = (struct th_otlphttp_exporter *)c;
    c->shut_down = true;
    return x->helper != NULL ? th_exporterhelper_shutdown(x->helper) : 0;
}

static void otlp_http_destroy(struct th_component *c)
{
    struct th_otlphttp_exporter *x = (struct th_otlphttp_exporter *)c;
    th_exporterhelper_destroy(x->helper);
    x->helper = NULL;
}

static int otlp_http_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_otlphttp_exporter *x = (struct th_otlphttp_exporter *)c;
    return th_exporterhelper_consume(x->helper, batch);
}

const struct th_component_ops th_exporter_otlp_http_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "otlp_http",
    .alias = "otlphttp",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .description = "Sends batches over OTLP/HTTP (protobuf or JSON) with a queue and retries",
    .config_size = sizeof(struct th_otlphttp_cfg),
    .config = otlp_http_config,
    .config_check = otlp_http_config_check,
    .instance_size = sizeof(struct th_otlphttp_exporter),
    .init = otlp_http_init,
    .start = otlp_http_start,
    .shutdown = otlp_http_shutdown,
    .destroy = otlp_http_destroy,
    .consume_traces = otlp_http_consume,
};
