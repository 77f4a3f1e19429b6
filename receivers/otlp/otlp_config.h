/*
 * Configuration of the OTLP receiver: the typed structs (what the runtime takes, so tests
 * can build them without YAML), the field table that decodes the Collector's
 * `receivers::otlp` keys into them, and the cross-field checks.
 */
#ifndef TH_RECEIVER_OTLP_CONFIG_H
#define TH_RECEIVER_OTLP_CONFIG_H

#include "th/config.h"
#include "th/otlp.h"
#include "th/tls.h"

/** Default endpoints; localhost as in the Collector since v0.110. */
#define TH_OTLP_HTTP_DEFAULT_ENDPOINT "localhost:4318"
#define TH_OTLP_GRPC_DEFAULT_ENDPOINT "localhost:4317"

/** The Collector's default max_request_body_size (also used for values <= 0). */
#define TH_OTLP_HTTP_DEFAULT_MAX_BODY ((int64_t)20 * 1024 * 1024)

/**
 * Timeouts Tracehouse uses where the Collector's 0 means "none": a finite bound is what
 * keeps a slowloris client from holding a connection forever.
 */
#define TH_OTLP_HTTP_DEFAULT_REQUEST_TIMEOUT_NS ((int64_t)30 * 1000000000)
#define TH_OTLP_HTTP_DEFAULT_IDLE_TIMEOUT_NS    ((int64_t)60 * 1000000000)

/** Server authentication: `auth::authenticator` names an authenticator extension (th/auth.h)
 *  resolved when the receiver starts. */
struct th_otlp_auth_cfg {
    const char *authenticator;
    th_strlist_t request_params;
};

/** CORS for browser senders (rs/cors semantics, as the Collector). */
struct th_otlp_cors_cfg {
    th_strlist_t allowed_origins; /**< CORS is on only when this is not empty; `*` wildcards */
    th_strlist_t allowed_headers; /**< beyond the safelisted ones; "*" allows any */
    th_strlist_t exposed_headers; /**< Access-Control-Expose-Headers on actual responses */
    int64_t max_age;              /**< seconds; > 0 sends Access-Control-Max-Age */
};

/** protocols::http. */
struct th_otlp_http_cfg {
    const char *endpoint;  /**< host:port; ":port" or "0.0.0.0:port" for all interfaces */
    const char *transport; /**< tcp, tcp4, tcp6 (unix is not supported yet) */
    const char *traces_url_path;
    const char *metrics_url_path;
    const char *logs_url_path;
    struct th_otlp_cors_cfg cors;
    int64_t max_request_body_size; /**< bytes, before and after decompression; <= 0: 20 MiB */
    bool include_metadata;
    th_strmap_t response_headers;
    th_strlist_t compression_algorithms; /**< empty: gzip, zstd, zlib, deflate */
    int64_t read_timeout;                /**< ns; 0: Tracehouse default */
    int64_t read_header_timeout;         /**< ns; 0: Tracehouse default */
    int64_t write_timeout;               /**< ns; 0: no limit */
    int64_t idle_timeout;                /**< ns; 0: Tracehouse default */
    bool keep_alives_enabled;
    int64_t max_connections;      /**< Tracehouse key; 0: th_conn_limit_default() */
    bool tls_enabled;             /**< `tls:` present: HTTPS (th/tls.h) */
    struct th_tls_server_cfg tls; /**< configtls server keys */
    bool auth_enabled;
    struct th_otlp_auth_cfg auth;
    const th_node_t *middlewares;
    /* Tracehouse's hostile-input limits (see struct th_otlp_limits). */
    int64_t max_nesting_depth;
    int64_t max_spans_per_request;
    int64_t max_attributes_per_item;
    int64_t max_string_length; /**< bytes */
};

/** protocols::grpc::keepalive::server_parameters (grpc-go keepalive.ServerParameters). */
struct th_otlp_grpc_server_params {
    int64_t max_connection_idle;      /**< ns; a connection without calls this long gets
                                           GOAWAY; 0: Tracehouse default (5 min) */
    int64_t max_connection_age;       /**< ns; GOAWAY after this long; 0: never */
    int64_t max_connection_age_grace; /**< ns; then closed after this long; 0: 30 s */
    int64_t time;                     /**< ns; PING a client silent this long; 0: 2 h */
    int64_t timeout;                  /**< ns; close when that PING is not answered; 0: 20 s */
};

/** protocols::grpc::keepalive::enforcement_policy: how often a client may ping (otlp_grpc.c,
 *  on_client_ping). */
struct th_otlp_grpc_enforcement {
    int64_t min_time; /**< ns */
    bool permit_without_stream;
};

/** protocols::grpc::keepalive. */
struct th_otlp_grpc_keepalive_cfg {
    struct th_otlp_grpc_server_params server_parameters;
    struct th_otlp_grpc_enforcement enforcement_policy;
};

/** protocols::grpc: OTLP/gRPC over HTTP/2 with prior knowledge (h2c). */
struct th_otlp_grpc_cfg {
    const char *endpoint;
    const char *transport; /**< tcp (unix is not supported yet) */
    bool tls_enabled;      /**< `tls:` present: TLS with ALPN h2 (th/tls.h) */
    struct th_tls_server_cfg tls;
    int64_t max_recv_msg_size_mib;  /**< before and after decompression; 0: 4 MiB */
    int64_t max_concurrent_streams; /**< per connection; 0: 100 */
    int64_t read_buffer_size;       /**< bytes per socket read */
    int64_t write_buffer_size;      /**< bytes queued to a connection before reading pauses;
                                         0: 256 KiB */
    struct th_otlp_grpc_keepalive_cfg keepalive;
    int64_t max_connections; /**< Tracehouse key; 0: th_conn_limit_default() */
    bool auth_enabled;       /**< `auth:` present: calls are authenticated */
    struct th_otlp_auth_cfg auth;
    bool include_metadata; /**< accepted, no effect yet (a warning says so) */
    const th_node_t *middlewares;
};

struct th_otlp_protocols_cfg {
    bool grpc_enabled; /**< `grpc:` present (Default flavor) */
    struct th_otlp_grpc_cfg grpc;
    bool http_enabled; /**< `http:` present (Default flavor) */
    struct th_otlp_http_cfg http;
};

/** receivers::otlp[/name]. */
struct th_otlp_cfg {
    struct th_otlp_protocols_cfg protocols;
};

/** The receiver's field table (NULL-name terminated). */
extern const struct th_cfg_field th_otlp_config_fields[];

/**
 * Fill an HTTP config with the defaults of the table, without YAML (for tests and for code
 * that builds a receiver directly).
 * @param[out] out the config; strings point to static storage.
 */
void th_otlp_http_cfg_default(struct th_otlp_http_cfg *out);

/**
 * Fill a gRPC config with the defaults of the table, without YAML.
 * @param[out] out the config; strings point to static storage.
 */
void th_otlp_grpc_cfg_default(struct th_otlp_grpc_cfg *out);

/**
 * The checks for the gRPC protocol alone: no middlewares (not supported yet), a
 * complete tls block when present (th_tls_server_cfg_check), tcp transport, a parsable
 * endpoint.
 * @return 0 or TH_ECONFIG with *err set to a static message (a thread-local one for tls).
 */
int th_otlp_grpc_cfg_check(const struct th_otlp_grpc_cfg *grpc, const char **err);

/**
 * The cross-field rules of the receiver config: at least one protocol, no
 * middlewares on the HTTP server (not supported yet), a complete tls block when present, a
 * parsable endpoint, known compression algorithms.
 * @param[in] cfg a struct th_otlp_cfg.
 * @param[out] err a static message on failure.
 * @return 0 or TH_ECONFIG.
 */
int th_otlp_config_check(const void *cfg, const char **err);

/**
 * The same checks for the HTTP protocol alone.
 * @return 0 or TH_ECONFIG with *err set to a static message.
 */
int th_otlp_http_cfg_check(const struct th_otlp_http_cfg *http, const char **err);

/**
 * Map the hostile-input keys of an HTTP config to decoder limits.
 * @param[out] lim the limits (0 fields take the decoder's defaults).
 */
void th_otlp_http_cfg_limits(const struct th_otlp_http_cfg *http, struct th_otlp_limits *lim);

/**
 * Split an endpoint "host:port", "[v6]:port" or ":port".
 * @param[out] host the host part, NUL-terminated ("" for all interfaces).
 * @param[in] hostlen size of @p host.
 * @param[out] port the port, 0-65535.
 * @return 0 or TH_EINVAL.
 */
int th_otlp_endpoint_split(const char *endpoint, char *host, size_t hostlen, int *port);

#endif
