/*
 * The health_check extension: the OpenTelemetry Collector's health endpoint (contrib
 * extension/healthcheckextension), on localhost:13133 by default. Any request to `path` is
 * answered 200 once every pipeline has started and 503 before that and from the moment
 * shutdown begins. Tracehouse also answers 503 while the collector runs but cannot do its
 * work: a component reported a failure (th_component_set_status(): the jaeger_storage_exporter
 * when the store is full or its writes fail) or an exporter's sending queue is full; it goes
 * back to 200 by itself when that clears.
 *
 * The server runs on its own thread (th_http_server), so a probe is answered even when the
 * pipelines' loop is busy; the answer is computed from atomics the components keep.
 */
#ifndef TH_EXTENSION_HEALTH_CHECK_H
#define TH_EXTENSION_HEALTH_CHECK_H

#include "th/component.h"
#include "th/http_server.h"
#include "th/tls.h"

/** The default endpoint (the Collector's, on localhost since v0.110). */
#define TH_HEALTH_CHECK_DEFAULT_ENDPOINT "localhost:13133"

/** `response_body`: replaces the JSON bodies when either is set. */
struct th_health_check_body_cfg {
    const char *healthy;
    const char *unhealthy;
};

/** `check_collector_pipeline`: accepted and checked, not acted on (the Collector documents it
 *  as broken and not to be used). */
struct th_health_check_pipeline_cfg {
    bool enabled;
    int64_t interval;                   /**< ns; 5m */
    int64_t exporter_failure_threshold; /**< > 0; 5 */
};

/** extensions::health_check */
struct th_health_check_cfg {
    const char *endpoint; /**< host:port; ":port" for every interface */
    const char *path;     /**< "/"; must start with '/' */
    struct th_health_check_body_cfg response_body;
    struct th_health_check_pipeline_cfg check_collector_pipeline;
    bool tls_enabled;             /**< `tls:` present: HTTPS (th/tls.h) */
    struct th_tls_server_cfg tls; /**< configtls server keys */
};

/** The ops table registered as extension "health_check". */
extern const struct th_component_ops th_extension_health_check_ops;

/** The config table of struct th_health_check_cfg. */
extern const struct th_cfg_field th_health_check_config[];

/**
 * The rules across keys: path must start with '/', exporter_failure_threshold must be > 0.
 * @param[out] err a static message starting with "::" and the key.
 * @return 0 or TH_ECONFIG.
 */
int th_health_check_config_check(const void *cfg, const char **err);

/** The instance. */
struct th_health_check {
    struct th_component base;
    const struct th_health_check_cfg *cfg;
    th_http_server_t *srv;
    struct th_host *host; /**< from start: host->ready_since_ns says whether we are up */
};

/**
 * Why the collector cannot do its work right now, looking at every component of the
 * collector behind @p host: a component status set with th_component_set_status(), or an
 * exporter whose sending queue is full.
 * @param[out] buf the reason, e.g. `exporter "jaeger_storage_exporter": the store is full
 *             (the store is out of space)`; "" when everything is fine.
 * @return true when something is wrong.
 */
bool th__health_check_degraded(struct th_host *host, char *buf, size_t len);

/**
 * Format a duration as Go's time.Duration.String() does: "0s", "1.5µs", "250ms",
 * "2.000000001s", "1m2.5s", "1h0m0s".
 * @param[out] out room for 32 bytes.
 */
void th__health_check_go_duration(int64_t ns, char *out, size_t len);

/**
 * Format a wall-clock time as Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros
 * dropped), in UTC: "2024-05-01T10:20:30.5Z".
 * @param[out] out room for 40 bytes.
 */
void th__health_check_rfc3339(uint64_t unix_ns, char *out, size_t len);

/**
 * The port a started health_check instance listens on (useful with port 0 in tests).
 * @return the port, or 0 when it is not started or @p c is not a health_check.
 */
int th_health_check_port(const struct th_component *c);

/** Answer one request (the server's handler; exposed for tests). */
int th__health_check_serve(void *data, const struct th_http_request *req,
                           struct th_http_response *res);

#endif
