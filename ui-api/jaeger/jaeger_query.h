/*
 * The jaeger_query extension: Jaeger's query HTTP API (v1 under /api and api_v3 under /api/v3) over
 * the span store, configured as Jaeger v2's `extensions.jaeger_query`. This header holds the
 * typed config (what the runtime takes, so tests build it without YAML), the config table
 * that fills it, and the HTTP server the extension runs (jaeger_http.c).
 *
 * The server runs on its own thread with its own libuv loop: building a large response reads
 * the store and encodes JSON for tens of milliseconds, which must not stall the collector's
 * ingest loop; and h2o's context can only be disposed of while its loop is not running.
 */
#ifndef TH_JAEGER_QUERY_H
#define TH_JAEGER_QUERY_H

#include "th/auth.h"
#include "th/component.h"
#include "th/config.h"
#include "th/histogram.h"
#include "th/tls.h"
#include "ui-api/jaeger/jaeger_api.h"
#include "ui-api/jaeger/jaeger_ui.h"

/** The default HTTP endpoint (Jaeger's, on localhost as the Collector's servers are). */
#define TH_JAEGER_QUERY_DEFAULT_ENDPOINT "localhost:16686"

/** `storage`: the jaeger_storage backends read. */
struct th_jaeger_query_storage_cfg {
    const char *traces;         /**< required: a backend of extensions::jaeger_storage */
    const char *traces_archive; /**< accepted; archive storage is not served yet */
    const char *metrics;        /**< accepted; metrics storage is not served yet */
};

/** `http::cors` (rs/cors semantics, as the Collector's HTTP servers). */
struct th_jaeger_query_cors_cfg {
    th_strlist_t allowed_origins; /**< CORS is on only when this is not empty; '*' wildcards */
    th_strlist_t allowed_headers; /**< request headers allowed beyond the safelisted ones */
    int64_t max_age;              /**< seconds; > 0 sends Access-Control-Max-Age */
};

/** `http`: confighttp.ServerConfig, the keys that matter here. */
struct th_jaeger_query_http_cfg {
    const char *endpoint;  /**< host:port; ":port" for every interface */
    const char *transport; /**< tcp, tcp4 or tcp6 */
    struct th_jaeger_query_cors_cfg cors;
    bool tls_enabled;                    /**< `tls:` present: HTTPS (th/tls.h) */
    struct th_tls_server_cfg tls;        /**< configtls server keys */
    bool auth_enabled;                   /**< `auth:` present: every request authenticated */
    struct th_auth_cfg auth;             /**< confighttp's auth (th/auth.h) */
    int64_t max_request_body_size;       /**< bytes; <= 0 means 20 MiB */
    bool include_metadata;               /**< accepted; no effect */
    th_strmap_t response_headers;        /**< added to every response */
    th_strlist_t compression_algorithms; /**< accepted; responses are not compressed */
    int64_t read_timeout;                /**< ns; with read_header_timeout, the larger bounds a
                                              request (and keep-alive idleness) */
    int64_t read_header_timeout;         /**< ns; see read_timeout */
    int64_t write_timeout;               /**< ns; 0: no limit */
    int64_t idle_timeout;                /**< ns; used only when both read timeouts are 0 */
    bool keep_alives_enabled;
    int64_t max_connections;      /**< Tracehouse key; 0: th_conn_limit_default() */
    const th_node_t *middlewares; /**< accepted when empty */
};

/** `ui`: the built-in UI, or Jaeger UI assets (jaeger_ui.h). */
struct th_jaeger_query_ui_cfg {
    const char *config_file; /**< Jaeger UI config, .json or .js (with assets_path only) */
    const char *assets_path; /**< a Jaeger UI build served instead of the built-in UI */
    bool log_access;         /**< log every UI request */
};

/** extensions::jaeger_query. */
struct th_jaeger_query_cfg {
    struct th_jaeger_query_storage_cfg storage;
    struct th_jaeger_query_http_cfg http;
    const th_node_t *grpc; /**< accepted; the gRPC query API is not served (logged at start) */
    const char *base_path; /**< "/" or "" for none; otherwise must start with '/' */
    struct th_jaeger_query_ui_cfg ui;
    int64_t max_clock_skew_adjust;  /**< ns; 0 disables clock-skew shifting */
    bool bearer_token_propagation;  /**< accepted; no effect */
    bool enable_tracing;            /**< accepted; no effect */
    const th_node_t *multi_tenancy; /**< accepted unless it enables tenancy */
};

/** The config table of struct th_jaeger_query_cfg. */
extern const struct th_cfg_field th_jaeger_query_config[];

/**
 * The cross-field rules of the config: storage::traces must name a backend; TLS and
 * multi-tenancy are refused (not served yet); transport must be tcp/tcp4/tcp6; base_path must
 * start with '/'; middlewares must be empty.
 * @param[out] err a static message naming the key (the collector prefixes the path).
 * @return 0 or TH_ECONFIG.
 */
int th_jaeger_query_config_check(const void *cfg, const char **err);

/**
 * Normalise base_path: "" and "/" mean none (""), a trailing '/' is dropped.
 * @return the normalised path in @p a, or NULL when memory is short.
 */
const char *th_jaeger_query_base_path(const char *base_path, th_arena_t *a);

/** The ops of the extension. */
extern const struct th_component_ops th_extension_jaeger_query_ops;

/**
 * The port a started jaeger_query instance listens on (useful with port 0 in tests).
 * @param[in] c an instance of th_extension_jaeger_query_ops.
 * @return the port, or 0 when it is not started (or @p c is not a jaeger_query).
 */
int th_jaeger_query_port(const struct th_component *c);

/* ---- Request metrics (jaeger_http.c counts, the internal metrics endpoint reads) ------------- */

/** The API routes as templates, the `route` label of tracehouse_query_requests. */
enum th_jaeger_route {
    TH_JAEGER_ROUTE_TRACE,              /**< /api/traces/{traceID} */
    TH_JAEGER_ROUTE_TRACES,             /**< /api/traces */
    TH_JAEGER_ROUTE_SERVICES,           /**< /api/services */
    TH_JAEGER_ROUTE_SERVICE_OPERATIONS, /**< /api/services/{service}/operations */
    TH_JAEGER_ROUTE_OPERATIONS,         /**< /api/operations */
    TH_JAEGER_ROUTE_DEPENDENCIES,       /**< /api/dependencies */
    TH_JAEGER_ROUTE_V3_SERVICES,        /**< /api/v3/services */
    TH_JAEGER_ROUTE_V3_OPERATIONS,      /**< /api/v3/operations */
    TH_JAEGER_ROUTE_V3_TRACES,          /**< /api/v3/traces */
    TH_JAEGER_ROUTE_V3_TRACE,           /**< /api/v3/traces/{traceID} */
    TH_JAEGER_ROUTE_V3_TRACE_SUMMARIES, /**< /api/v3/trace-summaries */
    TH_JAEGER_ROUTE_OTHER,              /**< anything else */
    TH_JAEGER_ROUTES
};

/** Highest HTTP status counted by its own number; larger ones are counted as 599. */
#define TH_JAEGER_MAX_STATUS 599

/** Per-route request counters and durations; atomic, updated on the server's thread. */
struct th_jaeger_query_metrics {
    uint64_t requests[TH_JAEGER_ROUTES][TH_JAEGER_MAX_STATUS + 1]; /**< by route and status */
    struct th_latency_histogram duration[TH_JAEGER_ROUTES];        /**< by route */
};

/** @return the route template of a route ("/api/traces/{traceID}", "other"). */
const char *th_jaeger_route_name(enum th_jaeger_route r);

/**
 * Classify a request path (without the query string) by route template.
 * @param[in] base_path the normalised base path ("" for none).
 */
enum th_jaeger_route th_jaeger_route_of(const char *base_path, const char *path, size_t len);

/**
 * The request metrics of a jaeger_query instance (kept across restarts of its server).
 * @param[in] c an instance of th_extension_jaeger_query_ops.
 * @return the counters, valid until the instance is destroyed; NULL when @p c is not a
 *         jaeger_query. Read them with atomic loads.
 */
const struct th_jaeger_query_metrics *th_jaeger_query_metrics(const struct th_component *c);

/* ---- The HTTP server (jaeger_http.c) -------------------------------------------------------- */

typedef struct th_jaeger_http th_jaeger_http_t;

/** What the server is started with. */
struct th_jaeger_http_cfg {
    const char *endpoint;             /**< host:port; an empty host listens on every interface */
    const char *transport;            /**< tcp (default), tcp4, tcp6 */
    struct th_jaeger_api api;         /**< store, base path, adjuster settings (copied) */
    const th_strlist_t *cors_origins; /**< may be NULL */
    const th_strlist_t *cors_headers; /**< may be NULL */
    int64_t cors_max_age_s;
    const th_strmap_t *response_headers; /**< may be NULL */
    bool keep_alive;
    uint64_t request_timeout_ms;  /**< reading a request, and idle keep-alive; 0: 60s */
    size_t max_request_body;      /**< 0: 20 MiB */
    uint64_t progress_timeout_ms; /**< a connection with no request in flight that completed
                                       none for this long is closed (HTTP/2 trickled headers);
                                       0: request_timeout_ms */
    size_t max_connections;       /**< 0: th_conn_limit_default() */
    uint64_t write_timeout_ms;    /**< a connection whose request is not answered and written
                                       within this is closed; 0: no limit */
    struct th_jaeger_query_metrics *metrics; /**< counted per request; may be NULL */
    const struct th_tls_server_cfg *tls;     /**< HTTPS when not NULL (checked, copied at start) */
    th_auth_t auth;     /**< every request (API, UI files and pages) is authenticated unless zero;
                             CORS preflights pass, as browsers send them without credentials */
    th_jaeger_ui_t *ui; /**< the web UI under base_path; NULL: API only (not owned; its
                             config file is followed on the server's thread) */
};

/**
 * Bind, then serve on a thread of its own until th_jaeger_http_stop().
 * @param[in] cfg the settings; strings and lists must outlive the server.
 * @param[in] log_as the component to log as (may be NULL).
 * @param[out] out the server.
 * @param[out] err why it could not start (endpoint, address in use).
 * @return 0, TH_EADDRINUSE, TH_ECONFIG (a bad endpoint), TH_EIO, TH_ENOMEM.
 */
int th_jaeger_http_start(const struct th_jaeger_http_cfg *cfg, const struct th_component *log_as,
                         th_jaeger_http_t **out, char *err, size_t errlen);

/** @return the port the server listens on (useful with port 0). */
int th_jaeger_http_port(const th_jaeger_http_t *s);

/**
 * Stop accepting, let requests in flight finish (idle connections are closed after a short
 * grace), stop the thread and free everything. Blocks for at most about two seconds.
 * @param[in] s the server; NULL is allowed.
 */
void th_jaeger_http_stop(th_jaeger_http_t *s);

#endif
