/*
 * The OTLP receiver's config table and checks. Keys, defaults and the Default flavor of
 * `grpc:`/`http:` follow the Collector's otlpreceiver (otelcol-config.md §4); the
 * max_* hostile-input limits are Tracehouse's own. Parsing is done by the config layer from
 * these rows; this file only declares them and checks rules across fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receivers/otlp/otlp_config.h"
#include "receivers/otlp/otlp_decompress.h"

static const char *const http_transports[] = {"tcp", "tcp4", "tcp6", "unix", NULL};
static const char *const grpc_transports[] = {"tcp", "unix", NULL};

static const struct th_cfg_field auth_fields[] = {
    {.name = "authenticator",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_otlp_auth_cfg, authenticator),
     .desc = "id of the server authenticator extension"},
    {.name = "request_params",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_otlp_auth_cfg, request_params),
     .desc = "query parameters passed to the authenticator"},
    {.name = NULL},
};

static const struct th_cfg_field cors_fields[] = {
    {.name = "allowed_origins",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_otlp_cors_cfg, allowed_origins),
     .desc = "origins allowed to send cross-origin requests; `*` matches any run of characters "
             "(CORS is off when empty)"},
    {.name = "allowed_headers",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_otlp_cors_cfg, allowed_headers),
     .desc = "request headers allowed beyond the CORS-safelisted ones and X-Requested-With; "
             "\"*\" allows any"},
    {.name = "exposed_headers",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_otlp_cors_cfg, exposed_headers),
     .desc = "response headers a browser script may read"},
    {.name = "max_age",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = offsetof(struct th_otlp_cors_cfg, max_age),
     .min = 0,
     .max = 1e9,
     .desc = "seconds a browser may cache a preflight answer (0: no Access-Control-Max-Age)"},
    {.name = NULL},
};

#define HTTP_OFF(f) offsetof(struct th_otlp_http_cfg, f)

static const struct th_cfg_field http_fields[] = {
    {.name = "endpoint",
     .type = TH_CFG_STRING,
     .def = TH_OTLP_HTTP_DEFAULT_ENDPOINT,
     .offset = HTTP_OFF(endpoint),
     .desc = "host:port to listen on; 0.0.0.0:4318 or :4318 for all interfaces, port 0 for "
             "any free port"},
    {.name = "transport",
     .type = TH_CFG_ENUM,
     .def = "tcp",
     .offset = HTTP_OFF(transport),
     .choices = http_transports,
     .desc = "tcp, tcp4 or tcp6 (unix sockets are not supported yet)"},
    {.name = "traces_url_path",
     .type = TH_CFG_STRING,
     .def = "/v1/traces",
     .offset = HTTP_OFF(traces_url_path),
     .desc = "URL path that accepts ExportTraceServiceRequest (a leading / is added)"},
    {.name = "metrics_url_path",
     .type = TH_CFG_STRING,
     .def = "/v1/metrics",
     .offset = HTTP_OFF(metrics_url_path),
     .desc = "URL path for metrics; Tracehouse answers 404 there (traces only)"},
    {.name = "logs_url_path",
     .type = TH_CFG_STRING,
     .def = "/v1/logs",
     .offset = HTTP_OFF(logs_url_path),
     .desc = "URL path for logs; Tracehouse answers 404 there (traces only)"},
    {.name = "cors",
     .type = TH_CFG_SECTION,
     .offset = HTTP_OFF(cors),
     .sub = cors_fields,
     .desc = "cross-origin resource sharing for browser senders"},
    {.name = "max_request_body_size",
     .type = TH_CFG_SIZE,
     .def = "20MiB",
     .offset = HTTP_OFF(max_request_body_size),
     .desc = "largest request body in bytes, checked before and after decompression (413 "
             "above it); <= 0 means 20 MiB"},
    {.name = "include_metadata",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = HTTP_OFF(include_metadata),
     .flags = TH_CFG_F_NOOP,
     .desc = "pass HTTP headers downstream as client metadata (not supported yet)"},
    {.name = "response_headers",
     .type = TH_CFG_STRMAP,
     .offset = HTTP_OFF(response_headers),
     .desc = "headers added to every response"},
    {.name = "compression_algorithms",
     .type = TH_CFG_STRLIST,
     .offset = HTTP_OFF(compression_algorithms),
     .desc = "Content-Encoding values accepted (empty: gzip, zstd, zlib, deflate; identity is "
             "always accepted); others get 400"},
    {.name = "read_timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = HTTP_OFF(read_timeout),
     .min = 0,
     .desc = "HTTP/1.1: time allowed to wait for, and read, a whole request (0: 30s)"},
    {.name = "read_header_timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = HTTP_OFF(read_header_timeout),
     .min = 0,
     .desc = "time allowed for request headers; h2o has one timer for headers and body, so the "
             "larger of this and read_timeout is used (0: 30s)"},
    {.name = "write_timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = HTTP_OFF(write_timeout),
     .min = 0,
     .desc = "time from reading a request to having written its answer; a connection past it "
             "is closed (0: no limit)"},
    {.name = "idle_timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = HTTP_OFF(idle_timeout),
     .min = 0,
     .desc = "HTTP/2: close a connection idle this long (0: 60s)"},
    {.name = "keep_alives_enabled",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = HTTP_OFF(keep_alives_enabled),
     .desc = "keep HTTP/1.1 connections open between requests"},
    {.name = "max_connections",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = HTTP_OFF(max_connections),
     .min = 0,
     .max = 1048576,
     .desc = "Tracehouse key, not in the Collector: most connections kept open at once; more "
             "are accepted and closed at once (0: a quarter of the open files limit, within "
             "64..65536)"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = HTTP_OFF(tls),
     .aux = HTTP_OFF(tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "TLS for the HTTP server (HTTPS with HTTP/2 by ALPN); absent: plaintext"},
    {.name = "auth",
     .type = TH_CFG_OPTIONAL,
     .offset = HTTP_OFF(auth),
     .aux = HTTP_OFF(auth_enabled),
     .sub = auth_fields,
     .desc = "server authentication: an authenticator extension checks every request (401 "
             "without valid credentials)"},
    {.name = "middlewares",
     .type = TH_CFG_NODE,
     .offset = HTTP_OFF(middlewares),
     .desc = "HTTP middleware extensions (not supported yet: a non-empty list is an error)"},
    {.name = "max_nesting_depth",
     .type = TH_CFG_INT,
     .def = "32",
     .offset = HTTP_OFF(max_nesting_depth),
     .min = 1,
     .max = TH_OTLP_MAX_DEPTH_CAP,
     .desc = "deepest nesting of arrays and kvlists in one attribute value (400 above it)"},
    {.name = "max_spans_per_request",
     .type = TH_CFG_INT,
     .def = "1000000",
     .offset = HTTP_OFF(max_spans_per_request),
     .min = 1,
     .max = 1e10,
     .desc = "most spans in one request (400 above it)"},
    {.name = "max_attributes_per_item",
     .type = TH_CFG_INT,
     .def = "16384",
     .offset = HTTP_OFF(max_attributes_per_item),
     .min = 1,
     .max = 1e9,
     .desc = "most attributes on one span, event, link, scope or resource (400 above it)"},
    {.name = "max_string_length",
     .type = TH_CFG_SIZE,
     .def = "4MiB",
     .offset = HTTP_OFF(max_string_length),
     .min = 1,
     .max = 1e10,
     .desc = "longest string or bytes value in bytes (400 above it)"},
    {.name = NULL},
};

#define SP_OFF(f) offsetof(struct th_otlp_grpc_server_params, f)

static const struct th_cfg_field server_params_fields[] = {
    {.name = "max_connection_idle",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = SP_OFF(max_connection_idle),
     .desc = "GOAWAY to a connection without calls for this long (0: 5m)"},
    {.name = "max_connection_age",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = SP_OFF(max_connection_age),
     .desc = "GOAWAY to a connection this old (0: never)"},
    {.name = "max_connection_age_grace",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = SP_OFF(max_connection_age_grace),
     .desc = "then close it after this long (0: 30s)"},
    {.name = "time",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = SP_OFF(time),
     .desc = "PING a client that sent nothing for this long (0: 2h)"},
    {.name = "timeout",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = SP_OFF(timeout),
     .desc = "close the connection when that PING is not answered in time (0: 20s)"},
    {.name = NULL},
};

static const struct th_cfg_field enforcement_fields[] = {
    {.name = "min_time",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = offsetof(struct th_otlp_grpc_enforcement, min_time),
     .desc = "shortest interval between client keepalive pings; a client pinging more often "
             "gets GOAWAY(ENHANCE_YOUR_CALM, too_many_pings) after three strikes (0: 5m)"},
    {.name = "permit_without_stream",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct th_otlp_grpc_enforcement, permit_without_stream),
     .desc = "allow client pings while no call is open (otherwise only one per 2 h)"},
    {.name = NULL},
};

static const struct th_cfg_field keepalive_fields[] = {
    {.name = "server_parameters",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlp_grpc_keepalive_cfg, server_parameters),
     .sub = server_params_fields,
     .desc = "idle, age and ping settings of the server"},
    {.name = "enforcement_policy",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlp_grpc_keepalive_cfg, enforcement_policy),
     .sub = enforcement_fields,
     .desc = "what the server accepts from client keepalive pings"},
    {.name = NULL},
};

#define GRPC_OFF(f) offsetof(struct th_otlp_grpc_cfg, f)

static const struct th_cfg_field grpc_fields[] = {
    {.name = "endpoint",
     .type = TH_CFG_STRING,
     .def = TH_OTLP_GRPC_DEFAULT_ENDPOINT,
     .offset = GRPC_OFF(endpoint),
     .desc = "host:port to listen on"},
    {.name = "transport",
     .type = TH_CFG_ENUM,
     .def = "tcp",
     .offset = GRPC_OFF(transport),
     .choices = grpc_transports,
     .desc = "tcp or unix"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = GRPC_OFF(tls),
     .aux = GRPC_OFF(tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "TLS for the gRPC server (ALPN h2 required); absent: plaintext h2c"},
    {.name = "max_recv_msg_size_mib",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = GRPC_OFF(max_recv_msg_size_mib),
     .min = 0,
     .max = 1e6,
     .desc = "largest message in MiB, before and after decompression (0: 4 MiB)"},
    {.name = "max_concurrent_streams",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = GRPC_OFF(max_concurrent_streams),
     .min = 0,
     .max = 4294967295.0,
     .desc = "most concurrent streams per connection (0: 100)"},
    {.name = "read_buffer_size",
     .type = TH_CFG_INT,
     .def = "524288",
     .offset = GRPC_OFF(read_buffer_size),
     .min = 0,
     .max = 1e10,
     .desc = "bytes read from a socket at a time"},
    {.name = "write_buffer_size",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = GRPC_OFF(write_buffer_size),
     .min = 0,
     .max = 1e10,
     .desc = "bytes queued to a connection before reading from it pauses (0: 256 KiB)"},
    {.name = "keepalive",
     .type = TH_CFG_SECTION,
     .offset = GRPC_OFF(keepalive),
     .sub = keepalive_fields,
     .desc = "server_parameters and enforcement_policy for HTTP/2 keepalive"},
    {.name = "max_connections",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = GRPC_OFF(max_connections),
     .min = 0,
     .max = 1048576,
     .desc = "Tracehouse key, not in the Collector: most connections kept open at once; more "
             "are accepted and closed at once (0: a quarter of the open files limit, within "
             "64..65536)"},
    {.name = "auth",
     .type = TH_CFG_OPTIONAL,
     .offset = GRPC_OFF(auth),
     .aux = GRPC_OFF(auth_enabled),
     .sub = auth_fields,
     .desc = "server authentication: an authenticator extension checks every call "
             "(UNAUTHENTICATED without valid credentials)"},
    {.name = "include_metadata",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = GRPC_OFF(include_metadata),
     .desc = "pass gRPC metadata downstream as client metadata (accepted, no effect yet)"},
    {.name = "middlewares",
     .type = TH_CFG_NODE,
     .offset = GRPC_OFF(middlewares),
     .desc = "gRPC middleware extensions (not supported yet: setting them is an error)"},
    {.name = NULL},
};

static const struct th_cfg_field protocols_fields[] = {
    {.name = "grpc",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct th_otlp_protocols_cfg, grpc),
     .aux = offsetof(struct th_otlp_protocols_cfg, grpc_enabled),
     .sub = grpc_fields,
     .desc = "OTLP/gRPC (present, even empty, enables it)"},
    {.name = "http",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct th_otlp_protocols_cfg, http),
     .aux = offsetof(struct th_otlp_protocols_cfg, http_enabled),
     .sub = http_fields,
     .desc = "OTLP/HTTP (present, even empty, enables it)"},
    {.name = NULL},
};

const struct th_cfg_field th_otlp_config_fields[] = {
    {.name = "protocols",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct th_otlp_cfg, protocols),
     .sub = protocols_fields,
     .desc = "the protocols to serve: grpc, http, or both (at least one)"},
    {.name = NULL},
};

void th_otlp_http_cfg_default(struct th_otlp_http_cfg *out)
{
    /* The same values as the table's defaults, for code that runs without the YAML layer. */
    memset(out, 0, sizeof(*out));
    out->endpoint = TH_OTLP_HTTP_DEFAULT_ENDPOINT;
    out->transport = "tcp";
    out->traces_url_path = "/v1/traces";
    out->metrics_url_path = "/v1/metrics";
    out->logs_url_path = "/v1/logs";
    out->max_request_body_size = TH_OTLP_HTTP_DEFAULT_MAX_BODY;
    out->keep_alives_enabled = true;
    out->max_nesting_depth = 32;
    out->max_spans_per_request = 1000000;
    out->max_attributes_per_item = 16384;
    out->max_string_length = (int64_t)4 * 1024 * 1024;
}

void th_otlp_grpc_cfg_default(struct th_otlp_grpc_cfg *out)
{
    memset(out, 0, sizeof(*out));
    out->endpoint = TH_OTLP_GRPC_DEFAULT_ENDPOINT;
    out->transport = "tcp";
    out->read_buffer_size = 524288;
}

int th_otlp_endpoint_split(const char *endpoint, char *host, size_t hostlen, int *port)
{
    if (!endpoint || !*endpoint || hostlen == 0) {
        return TH_EINVAL;
    }
    const char *colon;
    const char *hstart = endpoint;
    size_t hlen;
    if (endpoint[0] == '[') {
        const char *close = strchr(endpoint, ']');
        if (!close || close[1] != ':') {
            return TH_EINVAL;
        }
        hstart = endpoint + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(endpoint, ':');
        if (!colon) {
            return TH_EINVAL;
        }
        hlen = (size_t)(colon - endpoint);
        /* An unbracketed IPv6 literal is ambiguous ("::1:4318"): Go rejects it too. */
        if (memchr(endpoint, ':', hlen)) {
            return TH_EINVAL;
        }
    }
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) {
        return TH_EINVAL;
    }
    int v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return TH_EINVAL;
        }
        v = v * 10 + (*p - '0');
    }
    if (v > 65535 || hlen >= hostlen) {
        return TH_EINVAL;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    *port = v;
    return 0;
}

/* A TH_CFG_NODE value counts as set when it is a non-empty map or list. */
static bool node_set(const th_node_t *n)
{
    return n && (n->kind == TH_NODE_MAP || n->kind == TH_NODE_SEQ) && n->n > 0;
}

int th_otlp_http_cfg_check(const struct th_otlp_http_cfg *http, const char **err)
{
    char host[256];
    int port;
    if (http->tls_enabled &&
        th_tls_server_cfg_check_static(&http->tls, "protocols::http::tls", err) != 0) {
        return TH_ECONFIG;
    }
    if (node_set(http->middlewares)) {
        *err = "protocols::http::middlewares: HTTP middlewares are not supported yet";
        return TH_ECONFIG;
    }
    if (http->transport && !strcmp(http->transport, "unix")) {
        *err = "protocols::http::transport: unix sockets are not supported yet";
        return TH_ECONFIG;
    }
    if (th_otlp_endpoint_split(http->endpoint, host, sizeof(host), &port) != 0) {
        *err = "protocols::http::endpoint: expected host:port, [ipv6]:port or :port";
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < http->compression_algorithms.n; i++) {
        const char *a = http->compression_algorithms.v[i];
        enum th_otlp_encoding enc;
        if (th_otlp_encoding_parse(a, strlen(a), &enc) == TH_EINVAL) {
            *err = "protocols::http::compression_algorithms: unknown algorithm (valid: gzip, "
                   "zstd, zlib, deflate, snappy, x-snappy-framed, lz4, none)";
            return TH_ECONFIG;
        }
    }
    for (size_t i = 0; i < http->cors.allowed_origins.n; i++) {
        if (!http->cors.allowed_origins.v[i] || !*http->cors.allowed_origins.v[i]) {
            *err = "protocols::http::cors::allowed_origins: an origin is empty";
            return TH_ECONFIG;
        }
    }
    return 0;
}

int th_otlp_grpc_cfg_check(const struct th_otlp_grpc_cfg *grpc, const char **err)
{
    char host[256];
    int port;
    if (grpc->tls_enabled &&
        th_tls_server_cfg_check_static(&grpc->tls, "protocols::grpc::tls", err) != 0) {
        return TH_ECONFIG;
    }
    if (node_set(grpc->middlewares)) {
        *err = "protocols::grpc::middlewares: gRPC middlewares are not supported yet";
        return TH_ECONFIG;
    }
    if (grpc->transport && !strcmp(grpc->transport, "unix")) {
        *err = "protocols::grpc::transport: unix sockets are not supported yet";
        return TH_ECONFIG;
    }
    if (th_otlp_endpoint_split(grpc->endpoint, host, sizeof(host), &port) != 0) {
        *err = "protocols::grpc::endpoint: expected host:port, [ipv6]:port or :port";
        return TH_ECONFIG;
    }
    return 0;
}

int th_otlp_config_check(const void *cfg_, const char **err)
{
    const struct th_otlp_cfg *cfg = cfg_;
    if (!cfg->protocols.grpc_enabled && !cfg->protocols.http_enabled) {
        *err = "must specify at least one protocol when using the OTLP receiver";
        return TH_ECONFIG;
    }
    if (cfg->protocols.grpc_enabled) {
        int ret = th_otlp_grpc_cfg_check(&cfg->protocols.grpc, err);
        if (ret != 0) {
            return ret;
        }
    }
    if (cfg->protocols.http_enabled) {
        return th_otlp_http_cfg_check(&cfg->protocols.http, err);
    }
    return 0;
}

void th_otlp_http_cfg_limits(const struct th_otlp_http_cfg *http, struct th_otlp_limits *lim)
{
    th_otlp_limits_default(lim);
    if (http->max_nesting_depth > 0) {
        lim->max_depth = (uint32_t)TH_MIN(http->max_nesting_depth, TH_OTLP_MAX_DEPTH_CAP);
    }
    if (http->max_spans_per_request > 0) {
        lim->max_spans = (uint64_t)http->max_spans_per_request;
    }
    if (http->max_attributes_per_item > 0) {
        lim->max_attributes = (uint64_t)http->max_attributes_per_item;
    }
    if (http->max_string_length > 0) {
        lim->max_string_len = (uint64_t)http->max_string_length;
    }
}
