/*
 * The otlp receiver component: the ops table, and the lifecycle glue between the collector
 * and the protocol servers. Config parsing lives in otlp_config.c, the HTTP server in
 * otlp_http.c; gRPC is declared in the config so Collector files load, and is served in a
 * later release.
 */
#include "th/log.h"
#include "receivers/otlp/otlp.h"
#include "receivers/otlp/otlp_http.h"

struct otlp_receiver {
    struct th_component base; /* first, as the core requires */
    th_otlp_http_server_t *http;
};

static int otlp_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    const struct th_otlp_cfg *cfg = cfg_;
    const char *why = NULL;
    if (th_otlp_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    if (!next) {
        th_log_error(c, "a receiver needs a pipeline to send to");
        return TH_EINVAL;
    }
    if (cfg->protocols.grpc_enabled) {
        /* Not an error: the default config enables both protocols. */
        th_log_warn(c,
                    "protocols::grpc is configured (%s) but the gRPC protocol is not served yet; "
                    "senders must use OTLP/HTTP",
                    cfg->protocols.grpc.endpoint ? cfg->protocols.grpc.endpoint : "");
    }
    if (cfg->protocols.http_enabled) {
        return th_otlp_http_server_create(&cfg->protocols.http, next, c, &r->http);
    }
    return 0;
}

static int otlp_start(struct th_component *c, struct th_host *host)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    if (r->http) {
        return th_otlp_http_server_start(r->http, host->loop);
    }
    return 0;
}

static int otlp_shutdown(struct th_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    return th_otlp_http_server_shutdown(r->http);
}

static void otlp_destroy(struct th_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    th_otlp_http_server_destroy(r->http);
    r->http = NULL;
}

int th_otlp_receiver_http_port(const struct th_component *c)
{
    const struct otlp_receiver *r = (const struct otlp_receiver *)c;
    return r->http ? th_otlp_http_bound_port(r->http) : -1;
}

const struct th_component_ops th_receiver_otlp_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_RECEIVER,
    .type = "otlp",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .description = "Receives traces over OTLP/HTTP (protobuf and JSON; gzip, zlib, zstd)",
    .config_size = sizeof(struct th_otlp_cfg),
    .config = th_otlp_config_fields,
    .config_check = th_otlp_config_check,
    .instance_size = sizeof(struct otlp_receiver),
    .init = otlp_init,
    .start = otlp_start,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
};
