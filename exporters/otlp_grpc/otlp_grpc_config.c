/*
 * The otlp_grpc exporter's config rules: the endpoint as the Collector's gRPC client reads it
 * (configgrpc plus grpc-go's target parsing), the compression names, TLS versions, metadata
 * names, and the exporter helper's retry and queue checks; and the nested field tables (tls,
 * keepalive, compression_params) that otlp_grpc.c puts in its own. Messages name the key, so a
 * config the Collector refuses is refused here with a reason a person can act on.
 */
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exporters/otlp_grpc/otlp_grpc.h"
#include "th/auth.h"

/* ---- field tables ---- */

#define TLS_ROW(key, member, description)                                                          \
    {                                                                                              \
        .name = key, .type = TH_CFG_STRING, .def = "",                                             \
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, member), .desc = description,     \
    }

const struct th_cfg_field th__otlp_grpc_exporter_tls_fields[] = {
    {
        .name = "insecure",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, insecure),
        .desc = "Plaintext HTTP/2 (h2c) instead of TLS (ignored when a CA is set or the "
                "endpoint is https://)",
    },
    {
        .name = "insecure_skip_verify",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, insecure_skip_verify),
        .desc = "Use TLS but do not verify the server's certificate",
    },
    TLS_ROW("ca_file", ca_file,
            "PEM file of the CAs that sign the server's certificate "
            "(default: the system's trusted CAs)"),
    TLS_ROW("ca_pem", ca_pem, "The same CAs as PEM text"),
    TLS_ROW("cert_file", cert_file, "Client certificate (PEM) for mutual TLS"),
    TLS_ROW("cert_pem", cert_pem, "Client certificate as PEM text"),
    TLS_ROW("key_file", key_file, "The client certificate's private key (PEM)"),
    TLS_ROW("key_pem", key_pem, "The private key as PEM text"),
    {
        .name = "include_system_ca_certs_pool",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, include_system_ca_certs_pool),
        .desc = "Trust the system's CAs as well as ca_file/ca_pem",
    },
    TLS_ROW("min_version", min_version, "Lowest TLS version: 1.0, 1.1, 1.2, 1.3 (\"\": 1.2)"),
    TLS_ROW("max_version", max_version, "Highest TLS version (\"\": the highest supported)"),
    TLS_ROW("server_name_override", server_name_override,
            "Name sent as SNI and matched against the certificate (default: the endpoint's "
            "host)"),
    {
        .name = "cipher_suites",
        .type = TH_CFG_STRLIST,
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, cipher_suites),
        .flags = TH_CFG_F_NOOP,
        .desc = "Go cipher suite names; OpenSSL's defaults are used",
    },
    {
        .name = "include_insecure_cipher_suites",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, include_insecure_cipher_suites),
        .flags = TH_CFG_F_NOOP,
        .desc = "Allow Go's insecure cipher suites",
    },
    {
        .name = "curve_preferences",
        .type = TH_CFG_STRLIST,
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, curve_preferences),
        .flags = TH_CFG_F_NOOP,
        .desc = "Elliptic curves in order of preference; OpenSSL's defaults are used",
    },
    {
        .name = "reload_interval",
        .type = TH_CFG_DURATION,
        .def = "0s",
        .offset = offsetof(struct th_otlp_grpc_exporter_tls_cfg, reload_interval),
        .min = 0,
        .max = INFINITY,
        .flags = TH_CFG_F_NOOP,
        .desc = "Reload the certificates this often (certificates are read at start)",
    },
    {.name = NULL},
};

const struct th_cfg_field th__otlp_grpc_exporter_keepalive_fields[] = {
    {
        .name = "time",
        .type = TH_CFG_DURATION,
        .def = "10s",
        .offset = offsetof(struct th_otlp_grpc_exporter_keepalive_cfg, time),
        .min = 0,
        .max = INFINITY,
        .desc = "Send a PING after this long without hearing from the server",
    },
    {
        .name = "timeout",
        .type = TH_CFG_DURATION,
        .def = "10s",
        .offset = offsetof(struct th_otlp_grpc_exporter_keepalive_cfg, timeout),
        .min = 0,
        .max = INFINITY,
        .desc = "Reset the connection when the PING is not answered within this",
    },
    {
        .name = "permit_without_stream",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_otlp_grpc_exporter_keepalive_cfg, permit_without_stream),
        .desc = "Also ping when no call is in flight",
    },
    {.name = NULL},
};

const struct th_cfg_field th__otlp_grpc_exporter_compression_params_fields[] = {
    {
        .name = "level",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = offsetof(struct th_otlp_grpc_exporter_compression_params, level),
        .min = -2,
        .max = 22,
        .flags = TH_CFG_F_NOOP,
        .desc = "Compression level (each algorithm's default is used)",
    },
    {.name = NULL},
};

/* ---- endpoint ---- */

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int copy_field(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap) {
        return TH_ECONFIG;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* host:port or [v6]:port, with a numeric port; an empty host means this machine. */
static int parse_hostport(const char *s, struct th_otlp_grpc_exporter_target *t, const char **err)
{
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '/') {
        len--; /* "host:4317/" is what people write after an http:// prefix */
    }
    const char *host = s;
    size_t host_len;
    const char *port;
    if (*s == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || close + 1 >= s + len || close[1] != ':') {
            *err = "endpoint: an IPv6 address must be written [address]:port";
            return TH_ECONFIG;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ':') {
                colon = s + i;
            }
        }
        if (!colon) {
            *err = "endpoint: missing port (write host:port, e.g. collector:4317)";
            return TH_ECONFIG;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            *err = "endpoint: an IPv6 address must be written [address]:port";
            return TH_ECONFIG;
        }
        host_len = (size_t)(colon - s);
        port = colon + 1;
    }
    size_t port_len = (size_t)(s + len - port);
    if (port_len == 0 || port_len > 5 || strspn(port, "0123456789") < port_len) {
        *err = "endpoint: the port must be a number (write host:port, e.g. collector:4317)";
        return TH_ECONFIG;
    }
    long p = strtol(port, NULL, 10);
    if (p < 1 || p > 65535) {
        *err = "endpoint: the port must be between 1 and 65535";
        return TH_ECONFIG;
    }
    if (host_len == 0) {
        host = "localhost";
        host_len = strlen(host);
    }
    for (size_t i = 0; i < host_len; i++) {
        if (host[i] == '/' || isspace((unsigned char)host[i])) {
            *err = "endpoint: the host contains '/' or a space (write host:port, e.g. "
                   "collector:4317)";
            return TH_ECONFIG;
        }
    }
    if (copy_field(t->host, sizeof(t->host), host, host_len) != 0) {
        *err = "endpoint: the host name is too long";
        return TH_ECONFIG;
    }
    snprintf(t->port, sizeof(t->port), "%ld", p);
    bool v6 = memchr(t->host, ':', host_len) != NULL;
    snprintf(t->authority, sizeof(t->authority), "%s%s%s:%s", v6 ? "[" : "", t->host, v6 ? "]" : "",
             t->port);
    return 0;
}

int th__otlp_grpc_exporter_parse_endpoint(const char *endpoint,
                                          struct th_otlp_grpc_exporter_target *out,
                                          const char **err)
{
    memset(out, 0, sizeof(*out));
    const char *s = endpoint ? endpoint : "";
    if (!*s) {
        *err = "requires a non-empty \"endpoint\"";
        return TH_ECONFIG;
    }
    /* configgrpc strips these before handing the target to grpc-go; https also means TLS. */
    if (has_prefix(s, "https://")) {
        out->force_tls = true;
        s += strlen("https://");
    } else if (has_prefix(s, "http://")) {
        s += strlen("http://");
    }
    if (has_prefix(s, "unix://")) {
        /* unix:///abs/path (the authority must be empty) */
        s += strlen("unix://");
        if (*s != '/') {
            *err = "endpoint: unix:// needs an absolute path (unix:///path/to/socket)";
            return TH_ECONFIG;
        }
    } else if (has_prefix(s, "unix:")) {
        s += strlen("unix:");
    } else {
        if (has_prefix(s, "dns:") || has_prefix(s, "passthrough:")) {
            /* scheme:[//authority]/host:port; the DNS authority (a resolver) is not used */
            s = strchr(s, ':') + 1;
            if (has_prefix(s, "//")) {
                const char *slash = strchr(s + 2, '/');
                if (!slash) {
                    *err = "endpoint: write dns:///host:port";
                    return TH_ECONFIG;
                }
                s = slash + 1;
            }
        }
        return parse_hostport(s, out, err);
    }
    if (!*s) {
        *err = "endpoint: the Unix socket path is empty";
        return TH_ECONFIG;
    }
    if (copy_field(out->path, sizeof(out->path), s, strlen(s)) != 0) {
        *err = "endpoint: the Unix socket path is longer than 107 bytes";
        return TH_ECONFIG;
    }
    out->is_unix = true;
    snprintf(out->authority, sizeof(out->authority), "localhost");
    return 0;
}

const char *th__otlp_grpc_exporter_encoding(const struct th_otlp_grpc_exporter_cfg *cfg)
{
    const char *c = cfg->compression ? cfg->compression : "";
    if (!strcmp(c, "gzip") || !strcmp(c, "zstd")) {
        return c;
    }
    return NULL;
}

static bool tls_version_ok(const char *v)
{
    return !v || !*v || !strcmp(v, "1.0") || !strcmp(v, "1.1") || !strcmp(v, "1.2") ||
           !strcmp(v, "1.3");
}

/* gRPC metadata names: lowercase letters, digits, '-', '_', '.' (uppercase is folded when
 * sent), and not the names HTTP/2 or gRPC reserve for themselves. */
static const char *check_header(const char *name, const char *value)
{
    if (!*name) {
        return "headers: a header name is empty";
    }
    for (const char *p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            return "headers: a header name may only contain letters, digits, '-', '_' and '.'";
        }
    }
    for (const char *p = value ? value : ""; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            return "headers: a header value contains a control character";
        }
    }
    if (!strncasecmp(name, "grpc-", 5)) {
        return "headers: names starting with grpc- are reserved by gRPC";
    }
    /* user-agent is allowed: it replaces the exporter's own (as user_agent does). */
    static const char *const reserved[] = {"content-type",      "te",         "host",
                                           "connection",        "keep-alive", "proxy-connection",
                                           "transfer-encoding", "upgrade",    NULL};
    for (size_t i = 0; reserved[i]; i++) {
        if (!strcasecmp(name, reserved[i])) {
            return "headers: content-type, te, host, connection, keep-alive, proxy-connection, "
                   "transfer-encoding and upgrade are set by the exporter or not allowed in "
                   "HTTP/2";
        }
    }
    return NULL;
}

int th__otlp_grpc_exporter_config_check(const void *cfgp, const char **err)
{
    const struct th_otlp_grpc_exporter_cfg *cfg = cfgp;
    struct th_otlp_grpc_exporter_target target;
    if (th__otlp_grpc_exporter_parse_endpoint(cfg->endpoint, &target, err) != 0) {
        return TH_ECONFIG;
    }
    const char *c = cfg->compression ? cfg->compression : "";
    if (strcmp(c, "gzip") && strcmp(c, "zstd") && strcmp(c, "none") && *c) {
        static const char *const known[] = {"zlib", "deflate", "snappy", "x-snappy-framed",
                                            "lz4",  NULL};
        for (size_t i = 0; known[i]; i++) {
            if (!strcmp(c, known[i])) {
                *err = "compression: this exporter supports gzip, zstd and none (snappy, lz4, "
                       "zlib and deflate are not implemented for gRPC)";
                return TH_ECONFIG;
            }
        }
        *err = "compression: unsupported compression type (use gzip, zstd or none)";
        return TH_ECONFIG;
    }
    if (!tls_version_ok(cfg->tls.min_version) || !tls_version_ok(cfg->tls.max_version)) {
        *err = "tls: min_version and max_version must be one of 1.0, 1.1, 1.2, 1.3";
        return TH_ECONFIG;
    }
    if (cfg->tls.min_version && *cfg->tls.min_version && cfg->tls.max_version &&
        *cfg->tls.max_version && strcmp(cfg->tls.min_version, cfg->tls.max_version) > 0) {
        *err = "tls: min_version is above max_version";
        return TH_ECONFIG;
    }
    if (cfg->tls.ca_file && *cfg->tls.ca_file && cfg->tls.ca_pem && *cfg->tls.ca_pem) {
        *err = "tls: provide either ca_file or ca_pem, not both";
        return TH_ECONFIG;
    }
    bool cert =
        (cfg->tls.cert_file && *cfg->tls.cert_file) || (cfg->tls.cert_pem && *cfg->tls.cert_pem);
    bool key = (cfg->tls.key_file && *cfg->tls.key_file) || (cfg->tls.key_pem && *cfg->tls.key_pem);
    if (cert != key) {
        *err = "tls: a client certificate and its key go together (set both or neither)";
        return TH_ECONFIG;
    }
    if ((cfg->tls.cert_file && *cfg->tls.cert_file && cfg->tls.cert_pem && *cfg->tls.cert_pem) ||
        (cfg->tls.key_file && *cfg->tls.key_file && cfg->tls.key_pem && *cfg->tls.key_pem)) {
        *err = "tls: provide either the _file or the _pem form of cert and key, not both";
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < cfg->headers.n; i++) {
        const char *why = check_header(cfg->headers.keys[i], cfg->headers.vals[i]);
        if (why) {
            *err = why;
            return TH_ECONFIG;
        }
    }
    const char *b = cfg->balancer_name ? cfg->balancer_name : "";
    if (*b && strcmp(b, "round_robin") && strcmp(b, "pick_first")) {
        *err = "balancer_name: must be round_robin or pick_first";
        return TH_ECONFIG;
    }
    if (th_auth_client_node_check(cfg->auth, err) != 0) {
        return TH_ECONFIG;
    }
    if (cfg->middlewares.n > 0) {
        *err = "middlewares: not supported";
        return TH_ECONFIG;
    }
    if (cfg->timeout < 0) {
        *err = "timeout: must not be negative";
        return TH_ECONFIG;
    }
    if (cfg->keepalive_enabled && (cfg->keepalive.time < 0 || cfg->keepalive.timeout < 0)) {
        *err = "keepalive: time and timeout must not be negative";
        return TH_ECONFIG;
    }
    return th_exporterhelper_config_check(&cfg->retry, &cfg->queue, err);
}
