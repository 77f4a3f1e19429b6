/*
 * The otlp_http exporter's config rules: the `tls` table, the checks across fields (which
 * endpoint, which compression and level, what Tracehouse refuses) and the URL joining of the
 * Collector's composeSignalURL (otelcol-config.md §7). The top-level table is in otlp_http.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "exporters/otlp_http/otlp_http.h"
#include "th/auth.h"

static const char *const tls_versions[] = {"", "1.0", "1.1", "1.2", "1.3", NULL};

#define TLS_ROW(field, kind, dflt, text)                                                           \
    {                                                                                              \
        .name = #field, .type = (kind), .def = (dflt),                                             \
        .offset = offsetof(struct th_otlphttp_tls_cfg, field), .desc = (text)                      \
    }

const struct th_cfg_field th__otlphttp_tls_fields[] = {
    TLS_ROW(ca_file, TH_CFG_STRING, NULL, "CA certificates (PEM file) that verify the server"),
    TLS_ROW(ca_pem, TH_CFG_STRING, NULL, "CA certificates as PEM text"),
    TLS_ROW(cert_file, TH_CFG_STRING, NULL, "client certificate (PEM file) for mutual TLS"),
    TLS_ROW(cert_pem, TH_CFG_STRING, NULL, "client certificate as PEM text"),
    TLS_ROW(key_file, TH_CFG_STRING, NULL, "client private key (PEM file)"),
    {.name = "key_pem",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_otlphttp_tls_cfg, key_pem),
     .flags = TH_CFG_F_SECRET,
     .desc = "client private key as PEM text"},
    TLS_ROW(include_system_ca_certs_pool, TH_CFG_BOOL, "false",
            "trust the system CAs as well as ca_file/ca_pem"),
    {.name = "min_version",
     .type = TH_CFG_ENUM,
     .def = "1.2",
     .offset = offsetof(struct th_otlphttp_tls_cfg, min_version),
     .choices = tls_versions,
     .desc = "lowest TLS version offered"},
    {.name = "max_version",
     .type = TH_CFG_ENUM,
     .def = "",
     .offset = offsetof(struct th_otlphttp_tls_cfg, max_version),
     .choices = tls_versions,
     .desc = "highest TLS version offered (\"\": the newest)"},
    {.name = "cipher_suites",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_otlphttp_tls_cfg, cipher_suites),
     .flags = TH_CFG_F_NOOP,
     .desc = "TLS 1.2 cipher suites (OpenSSL's defaults are used)"},
    {.name = "include_insecure_cipher_suites",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct th_otlphttp_tls_cfg, include_insecure_cipher_suites),
     .flags = TH_CFG_F_NOOP,
     .desc = "allow cipher suites known to be insecure"},
    TLS_ROW(curve_preferences, TH_CFG_STRLIST, NULL,
            "key exchange curves in preference order: X25519, P256, P384, P521"),
    {.name = "reload_interval",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = offsetof(struct th_otlphttp_tls_cfg, reload_interval),
     .min = 0,
     .max = INFINITY,
     .flags = TH_CFG_F_NOOP,
     .desc = "how often to reload certificates (curl reads them per connection)"},
    {.name = "tpm",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_otlphttp_tls_cfg, tpm),
     .flags = TH_CFG_F_NOOP,
     .desc = "key held in a TPM"},
    TLS_ROW(insecure, TH_CFG_BOOL, "false",
            "no effect on https URLs, as in the Collector's HTTP client; use http:// for "
            "plain text"),
    TLS_ROW(insecure_skip_verify, TH_CFG_BOOL, "false",
            "do not verify the server's certificate or name"),
    TLS_ROW(server_name_override, TH_CFG_STRING, NULL,
            "the server name sent (SNI) and checked in its certificate"),
    {.name = NULL},
};

/* An http:// or https:// URL that curl can parse; the message names the key. */
static int check_url(const char *key, const char *url, const char **err)
{
    static char msg[160];
    int ret = 0;
    CURLU *u = curl_url();
    char *scheme = NULL;
    if (u == NULL) {
        return TH_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(msg, sizeof(msg), "%s: \"%.80s\" is not an http:// or https:// URL", key, url);
        *err = msg;
        ret = TH_ECONFIG;
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return ret;
}

static bool is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int th__otlphttp_traces_url(const struct th_otlphttp_cfg *cfg, char **out, const char **err)
{
    if (is_set(cfg->traces_endpoint)) {
        *out = th_strdup(cfg->traces_endpoint);
        return *out ? 0 : TH_ENOMEM;
    }
    if (!is_set(cfg->endpoint)) {
        *err = "either endpoint or traces_endpoint must be specified";
        return TH_ECONFIG;
    }
    size_t n = strlen(cfg->endpoint);
    const char *suffix = cfg->endpoint[n - 1] == '/' ? "v1/traces" : "/v1/traces";
    size_t m = strlen(suffix);
    char *url = th_malloc(n + m + 1);
    if (url == NULL) {
        return TH_ENOMEM;
    }
    memcpy(url, cfg->endpoint, n);
    memcpy(url + n, suffix, m + 1);
    *out = url;
    return 0;
}

static bool zlib_family(int codec)
{
    return codec == TH_OTLPHTTP_GZIP || codec == TH_OTLPHTTP_ZLIB || codec == TH_OTLPHTTP_DEFLATE;
}

int th__otlphttp_config_check(const void *p, const char **err)
{
    const struct th_otlphttp_cfg *cfg = p;
    static char msg[200];
    if (!is_set(cfg->endpoint) && !is_set(cfg->traces_endpoint) && !is_set(cfg->metrics_endpoint) &&
        !is_set(cfg->logs_endpoint) && !is_set(cfg->profiles_endpoint)) {
        *err = "at least one endpoint must be specified";
        return TH_ECONFIG;
    }
    if (is_set(cfg->endpoint) && check_url("endpoint", cfg->endpoint, err) != 0) {
        return TH_ECONFIG;
    }
    if (is_set(cfg->traces_endpoint) &&
        check_url("traces_endpoint", cfg->traces_endpoint, err) != 0) {
        return TH_ECONFIG;
    }
    int codec = th__otlphttp_codec_parse(cfg->compression);
    if (codec == TH_EUNSUPPORTED) {
        snprintf(msg, sizeof(msg),
                 "compression: \"%s\" is not supported by Tracehouse; use gzip, zstd, zlib, "
                 "deflate or none",
                 cfg->compression);
        *err = msg;
        return TH_ECONFIG;
    }
    if (codec < 0) {
        snprintf(msg, sizeof(msg), "compression: unsupported compression type \"%.40s\"",
                 cfg->compression);
        *err = msg;
        return TH_ECONFIG;
    }
    int64_t level = cfg->compression_params.level;
    if (zlib_family(codec) && (level < -2 || level > 9)) {
        snprintf(msg, sizeof(msg),
                 "compression_params::level: %lld is not valid for %s (-1, -2 or 0..9)",
                 (long long)level, cfg->compression);
        *err = msg;
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < cfg->tls.curve_preferences.n; i++) {
        const char *c = cfg->tls.curve_preferences.v[i];
        if (strcmp(c, "X25519") != 0 && strcmp(c, "P256") != 0 && strcmp(c, "P384") != 0 &&
            strcmp(c, "P521") != 0) {
            snprintf(msg, sizeof(msg),
                     "tls::curve_preferences: unknown curve \"%.40s\" (X25519, P256, P384, "
                     "P521)",
                     c);
            *err = msg;
            return TH_ECONFIG;
        }
    }
    if ((is_set(cfg->tls.cert_file) || is_set(cfg->tls.cert_pem)) !=
        (is_set(cfg->tls.key_file) || is_set(cfg->tls.key_pem))) {
        *err = "tls: a client certificate needs its key and a key its certificate";
        return TH_ECONFIG;
    }
    if (th_auth_client_node_check(cfg->auth, err) != 0) {
        return TH_ECONFIG;
    }
    if (cfg->middlewares != NULL && cfg->middlewares->n > 0) {
        *err = "middlewares: not supported";
        return TH_ECONFIG;
    }
    return 0;
}
