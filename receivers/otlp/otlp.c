/*
 * The otlp receiver component: the ops table, and the lifecycle glue between the collector
 * and the protocol servers. Config parsing lives in otlp_config.c, the HTTP server in
 * otlp_http.c, the gRPC server in otlp_grpc.c; both run on the host's loop.
 */
#include <string.h>

#include "th/auth.h"
#include "th/log.h"
#include "receivers/otlp/otlp.h"
#include "receivers/otlp/otlp_grpc.h"
#include "receivers/otlp/otlp_http.h"

struct otlp_receiver {
    struct th_component base; /* first, as the core requires */
    const struct th_otlp_cfg *cfg;
    th_otlp_http_server_t *http;
    th_otlp_grpc_server_t *grpc;
};

static int otlp_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    const struct th_otlp_cfg *cfg = cfg_;
    const char *why = NULL;
    r->cfg = cfg;
    if (th_otlp_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    if (!next) {
        th_log_error(c, "a receiver needs a pipeline to send to");
        return TH_EINVAL;
    }
    if (cfg->protocols.grpc_enabled) {
        int ret = th_otlp_grpc_server_create(&cfg->protocols.grpc, next, c, &r->grpc);
        if (ret != 0) {
            return ret;
        }
    }
    if (cfg->protocols.http_enabled) {
        int ret = th_otlp_http_server_create(&cfg->protocols.http, next, c, &r->http);
        if (ret != 0) {
            th_otlp_grpc_server_destroy(r->grpc);
            r->grpc = NULL;
            return ret;
        }
    }
    return 0;
}

/* `auth:` of a protocol: find the authenticator extension now that extensions exist. */
static int resolve_auth(struct th_component *c, struct th_host *host, bool enabled,
                        const struct th_otlp_auth_cfg *a, const char *proto, th_auth_t *out)
{
    char err[512];
    memset(out, 0, sizeof(*out));
    if (!enabled) {
        return 0;
    }
    int ret = th_auth_resolve(host, a->authenticator, TH_AUTH_SERVER, out, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "protocols::%s::%s", proto, err);
        return ret;
    }
    out->request_params = &a->request_params;
    return 0;
}

static int otlp_start(struct th_component *c, struct th_host *host)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    const struct th_otlp_protocols_cfg *p = &r->cfg->protocols;
    th_auth_t ga, ha;
    int aret = resolve_auth(c, host, r->grpc && p->grpc_enabled && p->grpc.auth_enabled,
                            &p->grpc.auth, "grpc", &ga);
    if (aret == 0) {
        aret = resolve_auth(c, host, r->http && p->http_enabled && p->http.auth_enabled,
                            &p->http.auth, "http", &ha);
    }
    if (aret != 0) {
        return aret;
    }
    th_otlp_grpc_server_set_auth(r->grpc, &ga);
    th_otlp_http_server_set_auth(r->http, &ha);
    if (r->grpc) {
        int ret = th_otlp_grpc_server_start(r->grpc, host->loop);
        if (ret != 0) {
            return ret;
        }
    }
    if (r->http) {
        int ret = th_otlp_http_server_start(r->http, host->loop);
        if (ret != 0) {
            th_otlp_grpc_server_shutdown(r->grpc);
            return ret;
        }
    }
    return 0;
}

static int otlp_shutdown(struct th_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    th_otlp_grpc_server_shutdown(r->grpc);
    return th_otlp_http_server_shutdown(r->http);
}

static void otlp_destroy(struct th_component *c)
{
    struct otlp_receiver *r = (struct otlp_receiver *)c;
    th_otlp_http_server_destroy(r->http);
    r->http = NULL;
    th_otlp_grpc_server_destroy(r->grpc);
    r->grpc = NULL;
}

int th_otlp_receiver_http_port(const struct th_component *c)
{
    const struct otlp_receiver *r = (const struct otlp_receiver *)c;
    return r->http ? th_otlp_http_bound_port(r->http) : -1;
}

int th_otlp_receiver_grpc_port(const struct th_component *c)
{
    const struct otlp_receiver *r = (const struct otlp_receiver *)c;
    return r->grpc ? th_otlp_grpc_bound_port(r->grpc) : -1;
}

int th_otlp_receiver_transport_stats(const struct th_component *c, bool grpc,
                                     struct th_component_stats *out)
{
    const struct otlp_receiver *r = (const struct otlp_receiver *)c;
    const struct th_component_stats *s = NULL;
    if (grpc && r->grpc) {
        s = th_otlp_grpc_server_transport_stats(r->grpc);
    } else if (!grpc && r->http) {
        s = th_otlp_http_server_transport_stats(r->http);
    }
    if (!s) {
        return TH_ENOENT;
    }
    out->accepted = __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&s->dropped, __ATOMIC_RELAXED);
    out->sent = __atomic_load_n(&s->sent, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&s->failed, __ATOMIC_RELAXED);
    return 0;
}

const struct th_component_ops th_receiver_otlp_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_RECEIVER,
    .type = "otlp",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .description =
        "Receives traces over OTLP/gRPC and OTLP/HTTP (protobuf and JSON; gzip, zlib, zstd)",
    .config_size = sizeof(struct th_otlp_cfg),
    .config = th_otlp_config_fields,
    .config_check = th_otlp_config_check,
    .instance_size = sizeof(struct otlp_receiver),
    .init = otlp_init,
    .start = otlp_start,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
};
