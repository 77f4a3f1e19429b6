/*
 * Configuration of the jaeger_query extension: the field table for Jaeger v2's
 * `extensions.jaeger_query` (storage, http with the Collector's HTTP server keys, grpc,
 * base_path, ui, max_clock_skew_adjust) and the rules across fields. Keys Tracehouse does not
 * act on yet are accepted so Jaeger configs load; the ones that would change security
 * (multi-tenancy) are refused rather than silently ignored. `auth` is confighttp's
 * (th/auth.h); `tls` is the shared configtls server block (th/tls.h).
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "ui-api/jaeger/jaeger_query.h"

#define CFG(f)  offsetof(struct th_jaeger_query_cfg, f)
#define HTTP(f) offsetof(struct th_jaeger_query_http_cfg, f)

static const struct th_cfg_field storage_table[] = {
    {.name = "traces",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_jaeger_query_storage_cfg, traces),
     .flags = TH_CFG_F_REQUIRED,
     .desc = "Name of the extensions::jaeger_storage backend the traces are read from"},
    {.name = "traces_archive",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_jaeger_query_storage_cfg, traces_archive),
     .flags = TH_CFG_F_NOOP,
     .desc = "Backend for archived traces (accepted; archiving is not served yet)"},
    {.name = "metrics",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_jaeger_query_storage_cfg, metrics),
     .flags = TH_CFG_F_NOOP,
     .desc = "Backend for span metrics of the Monitor tab (accepted; not served yet)"},
    {.name = NULL},
};

static const struct th_cfg_field cors_table[] = {
    {.name = "allowed_origins",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_jaeger_query_cors_cfg, allowed_origins),
     .desc = "Origins allowed to make cross-origin requests ('*' wildcards); empty disables "
             "CORS"},
    {.name = "allowed_headers",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_jaeger_query_cors_cfg, allowed_headers),
     .desc = "Request headers allowed beyond the CORS-safelisted ones ('*' allows any)"},
    {.name = "max_age",
     .type = TH_CFG_INT,
     .offset = offsetof(struct th_jaeger_query_cors_cfg, max_age),
     .min = 0,
     .max = INFINITY,
     .desc = "Seconds browsers may cache a preflight answer (0: not sent)"},
    {.name = NULL},
};

static const char *const transports[] = {"tcp", "tcp4", "tcp6", "unix", NULL};

static const struct th_cfg_field http_table[] = {
    {.name = "endpoint",
     .type = TH_CFG_STRING,
     .def = TH_JAEGER_QUERY_DEFAULT_ENDPOINT,
     .offset = HTTP(endpoint),
     .desc = "host:port the query API listens on (\":16686\" for every interface)"},
    {.name = "transport",
     .type = TH_CFG_ENUM,
     .def = "tcp",
     .offset = HTTP(transport),
     .choices = transports,
     .desc = "Network: tcp, tcp4 or tcp6 (unix sockets are not supported yet)"},
    {.name = "cors",
     .type = TH_CFG_SECTION,
     .offset = HTTP(cors),
     .sub = cors_table,
     .desc = "Cross-origin resource sharing for browser clients"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = HTTP(tls),
     .aux = HTTP(tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "TLS for the query API (HTTPS with HTTP/2 by ALPN); absent: plaintext"},
    {.name = "auth",
     .type = TH_CFG_OPTIONAL,
     .offset = HTTP(auth),
     .aux = HTTP(auth_enabled),
     .sub = th_auth_cfg_fields,
     .desc = "Server authentication: an authenticator extension (basicauth, bearertokenauth) "
             "checks every request, API and UI (401 with WWW-Authenticate otherwise)"},
    {.name = "max_request_body_size",
     .type = TH_CFG_SIZE,
     .def = "20MiB",
     .offset = HTTP(max_request_body_size),
     .desc = "Largest request body accepted, in bytes"},
    {.name = "include_metadata",
     .type = TH_CFG_BOOL,
     .offset = HTTP(include_metadata),
     .flags = TH_CFG_F_NOOP,
     .desc = "Pass HTTP headers on as client metadata (accepted; no effect)"},
    {.name = "response_headers",
     .type = TH_CFG_STRMAP,
     .offset = HTTP(response_headers),
     .desc = "Headers added to every response"},
    {.name = "compression_algorithms",
     .type = TH_CFG_STRLIST,
     .offset = HTTP(compression_algorithms),
     .flags = TH_CFG_F_NOOP,
     .desc = "Request decompression algorithms (accepted; requests carry no body)"},
    {.name = "read_timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = HTTP(read_timeout),
     .min = 0,
     .max = INFINITY,
     .desc = "Time to read a whole request; the larger of this and read_header_timeout "
             "bounds reading a request (one timer in h2o 2.2)"},
    {.name = "read_header_timeout",
     .type = TH_CFG_DURATION,
     .def = "1m",
     .offset = HTTP(read_header_timeout),
     .min = 0,
     .max = INFINITY,
     .desc = "Time a client has to send a request's headers (0: 1m)"},
    {.name = "write_timeout",
     .type = TH_CFG_DURATION,
     .def = "30s",
     .offset = HTTP(write_timeout),
     .min = 0,
     .max = INFINITY,
     .desc = "Time from reading a request to having written its answer; a connection past it is "
             "closed (0: no limit)"},
    {.name = "idle_timeout",
     .type = TH_CFG_DURATION,
     .def = "1m",
     .offset = HTTP(idle_timeout),
     .min = 0,
     .max = INFINITY,
     .desc = "How long an idle keep-alive connection is kept when neither read timeout is "
             "set; otherwise the request bound applies to idle connections too"},
    {.name = "keep_alives_enabled",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = HTTP(keep_alives_enabled),
     .desc = "Keep HTTP/1.1 connections open between requests"},
    {.name = "max_connections",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = HTTP(max_connections),
     .min = 0,
     .max = 1048576,
     .desc = "Tracehouse key, not in the Collector or Jaeger: most connections kept open at "
             "once; more are accepted and closed at once (0: a quarter of the open files "
             "limit, within 64..65536)"},
    {.name = "middlewares",
     .type = TH_CFG_NODE,
     .offset = HTTP(middlewares),
     .desc = "Middleware extensions (accepted only when empty)"},
    {.name = NULL},
};

static const struct th_cfg_field ui_table[] = {
    {.name = "config_file",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_jaeger_query_ui_cfg, config_file),
     .desc = "Jaeger UI configuration injected into its index.html: a .json file (an object, "
             "JAEGER_CONFIG) or a .js file defining function UIConfig(); followed while "
             "running (looked at once a second); only with assets_path"},
    {.name = "assets_path",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_jaeger_query_ui_cfg, assets_path),
     .desc = "Directory of a Jaeger UI build (index.html, static/) served instead of the "
             "built-in UI; read at start (at most 128 MiB, 4096 files)"},
    {.name = "log_access",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct th_jaeger_query_ui_cfg, log_access),
     .desc = "Log every request the UI answers (pages and static assets)"},
    {.name = NULL},
};

const struct th_cfg_field th_jaeger_query_config[] = {
    {.name = "storage",
     .type = TH_CFG_SECTION,
     .offset = CFG(storage),
     .sub = storage_table,
     .desc = "The jaeger_storage backends the query API reads"},
    {.name = "http",
     .type = TH_CFG_SECTION,
     .offset = CFG(http),
     .sub = http_table,
     .desc = "The HTTP server of the query API (Jaeger v1 /api and api_v3 /api/v3)"},
    {.name = "grpc",
     .type = TH_CFG_NODE,
     .def = "{endpoint: \"localhost:16685\"}",
     .offset = CFG(grpc),
     .desc = "The gRPC query API server (accepted; the gRPC API is not served)"},
    {.name = "base_path",
     .type = TH_CFG_STRING,
     .def = "/",
     .offset = CFG(base_path),
     .desc = "Path prefix of every route, e.g. /jaeger (\"/\" for none)"},
    {.name = "ui",
     .type = TH_CFG_SECTION,
     .offset = CFG(ui),
     .sub = ui_table,
     .desc = "The web UI on the query endpoint: built in, or Jaeger UI assets"},
    {.name = "max_clock_skew_adjust",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = CFG(max_clock_skew_adjust),
     .min = 0,
     .max = INFINITY,
     .desc = "Largest shift the clock-skew adjuster applies to a span (0s: none, warn only)"},
    {.name = "bearer_token_propagation",
     .type = TH_CFG_BOOL,
     .offset = CFG(bearer_token_propagation),
     .flags = TH_CFG_F_NOOP,
     .desc = "Pass the caller's bearer token on to storage (accepted; no effect)"},
    {.name = "enable_tracing",
     .type = TH_CFG_BOOL,
     .offset = CFG(enable_tracing),
     .flags = TH_CFG_F_NOOP,
     .desc = "Trace the query service itself (accepted; no effect)"},
    {.name = "multi_tenancy",
     .type = TH_CFG_NODE,
     .offset = CFG(multi_tenancy),
     .desc = "Tenant headers (accepted only when disabled)"},
    {.name = NULL},
};

int th_jaeger_query_config_check(const void *p, const char **err)
{
    const struct th_jaeger_query_cfg *cfg = p;
    /* REQUIRED in the table only fires when `storage:` is written at all */
    if (!cfg->storage.traces || !*cfg->storage.traces) {
        *err = "storage::traces: required key is missing (the name of a jaeger_storage "
               "backend)";
        return TH_ECONFIG;
    }
    if (cfg->http.tls_enabled &&
        th_tls_server_cfg_check_static(&cfg->http.tls, "http::tls", err) != 0) {
        return TH_ECONFIG;
    }
    if (cfg->http.transport && !strcmp(cfg->http.transport, "unix")) {
        *err = "http::transport: unix sockets are not supported yet (use tcp, tcp4 or tcp6)";
        return TH_ECONFIG;
    }
    if (cfg->http.middlewares && cfg->http.middlewares->kind != TH_NODE_NULL &&
        cfg->http.middlewares->n > 0) {
        *err = "http::middlewares: middleware extensions are not supported yet";
        return TH_ECONFIG;
    }
    const th_node_t *mt = cfg->multi_tenancy;
    const th_node_t *mt_on = mt ? th_node_get(mt, "enabled") : NULL;
    if (mt_on && mt_on->kind == TH_NODE_SCALAR && !strcmp(mt_on->text, "true")) {
        *err = "multi_tenancy: multi-tenancy is not supported yet";
        return TH_ECONFIG;
    }
    if (cfg->base_path && *cfg->base_path && cfg->base_path[0] != '/') {
        *err = "base_path: must start with \"/\"";
        return TH_ECONFIG;
    }
    return 0;
}

const char *th_jaeger_query_base_path(const char *base_path, th_arena_t *a)
{
    const char *bp = base_path ? base_path : "";
    size_t n = strlen(bp);
    while (n > 0 && bp[n - 1] == '/') {
        n--;
    }
    return th_arena_strndup(a, bp, n);
}
