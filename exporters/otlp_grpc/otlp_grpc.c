/*
 * The otlp_grpc exporter's ops table, config tables and lifecycle glue: init builds the
 * transport (otlp_grpc_transport.c) and hands it to the exporter helper, which owns the
 * queue, the retries and the thread; start loads the TLS files and starts the helper; the
 * rest delegates to it. The nested config tables and the rules across keys are in
 * otlp_grpc_config.c.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "exporters/otlp_grpc/otlp_grpc.h"
#include "th/auth.h"
#include "th/log.h"

struct th_otlp_grpc_exporter {
    struct th_component base;
    const struct th_otlp_grpc_exporter_cfg *cfg;
    /* owned by the helper; kept to load its TLS files at start */
    th_otlp_grpc_exporter_transport_t *transport;
    th_exporterhelper_t *helper;
};

static const struct th_cfg_field otlp_grpc_config[] = {
    {
        .name = "endpoint",
        .type = TH_CFG_STRING,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, endpoint),
        .flags = TH_CFG_F_REQUIRED,
        .desc = "host:port of the OTLP/gRPC server (also dns:///host:port, unix:///path; a "
                "leading http:// or https:// is stripped, https:// forces TLS)",
    },
    {
        .name = "compression",
        .type = TH_CFG_STRING,
        .def = "gzip",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, compression),
        .desc = "Message compression: gzip, zstd or none",
    },
    {
        .name = "compression_params",
        .type = TH_CFG_SECTION,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, compression_params),
        .sub = th__otlp_grpc_exporter_compression_params_fields,
        .desc = "Compression settings",
    },
    {
        .name = "tls",
        .type = TH_CFG_SECTION,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, tls),
        .sub = th__otlp_grpc_exporter_tls_fields,
        .desc = "TLS client settings (TLS is on unless insecure: true)",
    },
    {
        .name = "keepalive",
        .type = TH_CFG_OPTIONAL,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, keepalive),
        .aux = offsetof(struct th_otlp_grpc_exporter_cfg, keepalive_enabled),
        .sub = th__otlp_grpc_exporter_keepalive_fields,
        .desc = "Keepalive PINGs that find a dead connection (present, even empty, enables "
                "them)",
    },
    {
        .name = "read_buffer_size",
        .type = TH_CFG_SIZE,
        .def = "0",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, read_buffer_size),
        .min = 0,
        .max = 64 << 20,
        .desc = "Bytes read from the socket at once (0: 64 KiB)",
    },
    {
        .name = "write_buffer_size",
        .type = TH_CFG_SIZE,
        .def = "524288",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, write_buffer_size),
        .min = 0,
        .max = 1 << 30,
        .desc = "Bytes queued for the socket before HTTP/2 output pauses (0: 512 KiB)",
    },
    {
        .name = "wait_for_ready",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, wait_for_ready),
        .desc = "While the connection is failing, calls wait for it (up to timeout) instead "
                "of failing at once",
    },
    {
        .name = "headers",
        .type = TH_CFG_STRMAP,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, headers),
        .flags = TH_CFG_F_SECRET,
        .desc = "gRPC metadata sent with every call (names ending in -bin are base64-encoded)",
    },
    {
        .name = "user_agent",
        .type = TH_CFG_STRING,
        .def = "",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, user_agent),
        .desc = "User-Agent of the calls (\"\": Tracehouse's own)",
    },
    {
        .name = "balancer_name",
        .type = TH_CFG_STRING,
        .def = "round_robin",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, balancer_name),
        .desc = "round_robin or pick_first; either way one connection to the resolved host",
    },
    {
        .name = "authority",
        .type = TH_CFG_STRING,
        .def = "",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, authority),
        .desc = ":authority of the calls (\"\": the endpoint's host:port)",
    },
    {
        .name = "auth",
        .type = TH_CFG_NODE,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, auth),
        .desc = "auth::authenticator: a client authenticator extension (bearertokenauth, "
                "basicauth with client_auth) whose header every call carries, taken at start",
    },
    {
        .name = "middlewares",
        .type = TH_CFG_STRLIST,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, middlewares),
        .desc = "Middleware extensions (not supported; must be empty)",
    },
    {
        .name = "timeout",
        .type = TH_CFG_DURATION,
        .def = "5s",
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, timeout),
        .min = 0,
        .max = INFINITY,
        .desc = "Deadline of each attempt (sent as grpc-timeout; 0: none)",
    },
    {
        .name = "retry_on_failure",
        .type = TH_CFG_SECTION,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, retry),
        .sub = th_retry_cfg_fields,
        .desc = "Retry failed exports with exponential backoff",
    },
    {
        .name = "sending_queue",
        .type = TH_CFG_OPTIONAL,
        .offset = offsetof(struct th_otlp_grpc_exporter_cfg, queue),
        .aux = offsetof(struct th_otlp_grpc_exporter_cfg, queue.enabled),
        .sub = th_queue_cfg_fields,
        .flags = TH_CFG_F_SOME,
        .desc = "Queue batches in front of the senders (on unless enabled: false)",
    },
    {.name = NULL},
};

static int otlp_grpc_init(struct th_component *c, const void *cfgp, struct th_consumer *next)
{
    struct th_otlp_grpc_exporter *e = (struct th_otlp_grpc_exporter *)c;
    const struct th_otlp_grpc_exporter_cfg *cfg = cfgp;
    const char *err = NULL;
    if (th__otlp_grpc_exporter_config_check(cfg, &err) != 0) {
        th_log_error(c, "%s", err);
        return TH_ECONFIG;
    }
    e->cfg = cfg;
    int ret = th__otlp_grpc_exporter_transport_create(cfg, c, &e->transport);
    if (ret != 0) {
        return ret;
    }
    /* The helper owns the transport from here on, even when it fails (it frees it then). */
    ret = th_exporterhelper_create(c, &cfg->retry, &cfg->queue,
                                   &th__otlp_grpc_exporter_transport_ops, e->transport, &e->helper);
    if (ret != 0) {
        e->transport = NULL;
    }
    /* Without an in-memory queue (none, a persistent one, or wait_for_result) the helper
     * settles acks only once the data is stored or delivered. */
    if (!cfg->queue.enabled || (cfg->queue.storage && *cfg->queue.storage) ||
        cfg->queue.wait_for_result) {
        c->consumer.caps |= TH_CAP_DURABLE;
    }
    return ret;
}

static int otlp_grpc_start(struct th_component *c, struct th_host *host)
{
    struct th_otlp_grpc_exporter *e = (struct th_otlp_grpc_exporter *)c;
    c->host = host;
    /* The transport is the helper's now, but still idle: its files are read here, on the
     * caller's thread, so a bad certificate fails start with a message. */
    char err[512];
    struct th_auth_client auth;
    int ret = th_auth_client_resolve(c, host, e->cfg->auth, &auth);
    if (ret == 0 && th_auth_enabled(&auth.a)) {
        ret = th__otlp_grpc_exporter_transport_set_auth(e->transport, &auth);
    }
    th_auth_client_free(&auth);
    if (ret != 0) {
        return ret;
    }
    ret = th__otlp_grpc_exporter_transport_prepare(e->transport, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    return th_exporterhelper_start(e->helper, host);
}

static int otlp_grpc_shutdown(struct th_component *c)
{
    struct th_otlp_grpc_exporter *e = (struct th_otlp_grpc_exporter *)c;
    c->shut_down = true;
    return e->helper ? th_exporterhelper_shutdown(e->helper) : 0;
}

static void otlp_grpc_destroy(struct th_component *c)
{
    struct th_otlp_grpc_exporter *e = (struct th_otlp_grpc_exporter *)c;
    th_exporterhelper_destroy(e->helper); /* and the transport */
    e->helper = NULL;
    e->transport = NULL;
}

static int otlp_grpc_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_otlp_grpc_exporter *e = (struct th_otlp_grpc_exporter *)c;
    return th_exporterhelper_consume(e->helper, batch);
}

const struct th_component_ops th_exporter_otlp_grpc_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "otlp_grpc",
    .alias = "otlp",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .description = "Sends batches as OTLP/gRPC Export calls (HTTP/2, TLS, gzip/zstd) with a "
                   "sending queue and retries",
    .config_size = sizeof(struct th_otlp_grpc_exporter_cfg),
    .config = otlp_grpc_config,
    .config_check = th__otlp_grpc_exporter_config_check,
    .instance_size = sizeof(struct th_otlp_grpc_exporter),
    .init = otlp_grpc_init,
    .start = otlp_grpc_start,
    .shutdown = otlp_grpc_shutdown,
    .destroy = otlp_grpc_destroy,
    .consume_traces = otlp_grpc_consume,
};
