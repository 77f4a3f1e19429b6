/*
 * The otlp_http exporter (alias otlphttp): OTLP/HTTP to any OTLP backend, as the Collector's
 * otlphttpexporter. The component is glue around the exporter helper (queue, retries, the
 * exporter's thread and loop); this folder provides the transport the helper drives: one
 * POST per request over libcurl's multi interface, run by the helper's libuv loop (uv_poll
 * per socket, one uv_timer for curl's timeouts), keep-alive connections shared by a small
 * pool of easy handles, parallel requests, HTTP/2 over TLS when the server offers it.
 *
 * Internal header: the typed config (what tests build directly), and the th__ functions the
 * folder's files share with each other and with the unit test. Names use the alias as
 * their prefix (th_otlphttp_), since the OTLP receiver already owns th_otlp_http_.
 */
#ifndef TH_EXPORTER_OTLP_HTTP_H
#define TH_EXPORTER_OTLP_HTTP_H

#include <time.h>

#include "th/auth.h"
#include "th/component.h"
#include "th/config.h"
#include "th/exporterhelper.h"
#include "th/otlp.h"

/** The most of a response body that is read and parsed (the Collector reads 64 KiB). */
#define TH_OTLPHTTP_MAX_RESPONSE (64u * 1024u)

/** `tls`: configtls client settings, mapped onto curl's TLS options (https URLs only). */
struct th_otlphttp_tls_cfg {
    const char *ca_file;               /**< CURLOPT_CAINFO */
    const char *ca_pem;                /**< CURLOPT_CAINFO_BLOB */
    const char *cert_file;             /**< CURLOPT_SSLCERT (client certificate, PEM) */
    const char *cert_pem;              /**< CURLOPT_SSLCERT_BLOB */
    const char *key_file;              /**< CURLOPT_SSLKEY */
    const char *key_pem;               /**< CURLOPT_SSLKEY_BLOB */
    bool include_system_ca_certs_pool; /**< keep the system roots beside ca_file/ca_pem */
    const char *min_version;           /**< "1.0".."1.3"; default "1.2" */
    const char *max_version;           /**< "" (newest) or "1.0".."1.3" */
    th_strlist_t cipher_suites;        /**< accepted, no effect (Go names) */
    bool include_insecure_cipher_suites;
    th_strlist_t curve_preferences;   /**< X25519, P256, P384, P521 → CURLOPT_SSL_EC_CURVES */
    int64_t reload_interval;          /**< accepted, no effect */
    const th_node_t *tpm;             /**< accepted, no effect */
    bool insecure;                    /**< the Collector's HTTP client ignores it for https */
    bool insecure_skip_verify;        /**< no certificate or host name check */
    const char *server_name_override; /**< SNI and the name checked in the certificate */
};

/** `compression_params` */
struct th_otlphttp_compression_params {
    int64_t level; /**< gzip/zlib/deflate: -1 default, -2 Huffman only, 0..9; zstd: any;
                        0 is each algorithm's default */
};

/** exporters::otlp_http[/name], filled by the field table or built directly by tests. */
struct th_otlphttp_cfg {
    const char *endpoint;          /**< base URL; /v1/traces is appended */
    const char *traces_endpoint;   /**< full URL, used verbatim */
    const char *metrics_endpoint;  /**< accepted (traces only here) */
    const char *logs_endpoint;     /**< accepted (traces only here) */
    const char *profiles_endpoint; /**< accepted (traces only here) */
    const char *encoding;          /**< "proto" or "json" */
    int64_t timeout;               /**< ns per attempt, the HTTP client's; 0: none */
    const char *compression;       /**< gzip (default), zstd, zlib, deflate, none, "" */
    struct th_otlphttp_compression_params compression_params;
    th_strmap_t headers; /**< sent with every request, overriding ours on collision */
    struct th_otlphttp_tls_cfg tls;
    const char *proxy_url;           /**< CURLOPT_PROXY; "" uses the *_proxy variables */
    int64_t read_buffer_size;        /**< bytes; CURLOPT_BUFFERSIZE when > 0 */
    int64_t write_buffer_size;       /**< bytes; CURLOPT_UPLOAD_BUFFERSIZE when > 0 */
    int64_t max_idle_conns;          /**< connections curl keeps open (CURLMOPT_MAXCONNECTS) */
    int64_t max_idle_conns_per_host; /**< accepted, no effect (curl has no such cap) */
    int64_t max_conns_per_host;      /**< CURLMOPT_MAX_HOST_CONNECTIONS; 0: no limit */
    int64_t idle_conn_timeout;       /**< ns; CURLOPT_MAXAGE_CONN; 0: no limit */
    bool disable_keep_alives;        /**< a new connection per request */
    bool force_attempt_http2;        /**< offer h2 by ALPN on https (true) */
    int64_t http2_read_idle_timeout; /**< accepted, no effect */
    int64_t http2_ping_timeout;      /**< accepted, no effect */
    bool cookies_enabled;            /**< `cookies:` present: keep cookies between requests */
    const th_node_t *auth;           /**< refused when set: no authenticator extensions */
    const th_node_t *middlewares;    /**< refused when not empty */
    struct th_retry_cfg retry;       /**< retry_on_failure (the helper's) */
    struct th_queue_cfg queue;       /**< sending_queue (the helper's); queue.enabled is the
                                          OPTIONAL's flag (Some: on unless disabled) */
};

/** The ops table registered as exporter "otlp_http" (alias "otlphttp"). */
extern const struct th_component_ops th_exporter_otlp_http_ops;

/* ---- Config (otlp_http_config.c) ------------------------------------------------------ */

/** The `tls` field table. */
extern const struct th_cfg_field th__otlphttp_tls_fields[];

/**
 * The cross-field rules of this exporter's own keys: an endpoint given, URLs http(s), a
 * supported compression with a valid level, client certificate with key, known curves, no
 * authenticator or middlewares. (The ops table's config_check adds the helper's rules.)
 * @param[out] err a static message on failure.
 * @return 0 or TH_ECONFIG.
 */
int th__otlphttp_config_check(const void *cfg, const char **err);

/**
 * The traces URL, joined as the Collector's composeSignalURL: traces_endpoint verbatim, else
 * endpoint + "v1/traces" when it ends with '/', else endpoint + "/v1/traces".
 * @param[out] out a heap string (th_free) on success.
 * @return 0, TH_ECONFIG (neither set: *err says so), TH_ENOMEM.
 */
int th__otlphttp_traces_url(const struct th_otlphttp_cfg *cfg, char **out, const char **err);

/* ---- Request bodies (otlp_http_body.c) ------------------------------------------------ */

enum th_otlphttp_codec {
    TH_OTLPHTTP_NONE = 0,
    TH_OTLPHTTP_GZIP,
    TH_OTLPHTTP_ZLIB,    /**< zlib format, Content-Encoding: zlib */
    TH_OTLPHTTP_DEFLATE, /**< zlib format too (what Go sends), Content-Encoding: deflate */
    TH_OTLPHTTP_ZSTD,
};

/**
 * Map a `compression` value to a codec.
 * @return the codec, TH_EUNSUPPORTED for a Collector value Tracehouse does not implement
 *         (snappy, x-snappy-framed, lz4), TH_EINVAL for anything else.
 */
int th__otlphttp_codec_parse(const char *name);

/** @return the Content-Encoding of a codec, or NULL for none. */
const char *th__otlphttp_codec_header(enum th_otlphttp_codec codec);

/** Reusable compression state (one per transport; the transport runs on one thread). */
struct th_otlphttp_compressor {
    enum th_otlphttp_codec codec;
    int level;
    void *zs;   /**< z_stream, made on first use */
    void *zctx; /**< ZSTD_CCtx, made on first use */
};

/**
 * Compress @p len bytes with the compressor's codec, replacing the contents of @p out.
 * @return 0, TH_ENOMEM, TH_EIO (the library failed).
 */
int th__otlphttp_compress(struct th_otlphttp_compressor *z, const uint8_t *in, size_t len,
                          th_buf_t *out);

/** Free the compressor's state (the struct itself is the caller's). */
void th__otlphttp_compressor_deinit(struct th_otlphttp_compressor *z);

/**
 * Re-encode a protobuf ExportTraceServiceRequest as OTLP/JSON, replacing @p out's contents.
 * @return 0, TH_EDECODE (the bytes are not a request), TH_ENOMEM.
 */
int th__otlphttp_pb_to_json(const uint8_t *pb, size_t len, th_buf_t *out);

/* ---- Responses (otlp_http_response.c) ------------------------------------------------- */

/**
 * Parse a Retry-After value: delay-seconds, or an HTTP-date (RFC 1123, also RFC 850 and
 * asctime as HTTP/1.1 allows), relative to @p now. A date in the past is 0.
 * @param[out] ns the delay in nanoseconds.
 * @return 0, or TH_EINVAL when the value is neither.
 */
int th__otlphttp_parse_retry_after(const char *v, time_t now, int64_t *ns);

/** What came back for one request, as the transport collected it. */
struct th_otlphttp_response {
    const char *url;          /**< the request's URL, for messages */
    long status;              /**< HTTP status; 0 when no response arrived */
    int curl_code;            /**< CURLcode of the transfer (0 = a response arrived) */
    const char *curl_error;   /**< curl's message for curl_code, or NULL */
    const char *content_type; /**< the response's Content-Type, or NULL */
    const char *retry_after;  /**< the Retry-After header, or NULL */
    const uint8_t *body;      /**< at most TH_OTLPHTTP_MAX_RESPONSE bytes of it */
    size_t body_len;
    time_t now; /**< the wall clock, for Retry-After dates */
};

/**
 * Classify a response as the Collector does: 2xx delivered (body parsed as
 * ExportTraceServiceResponse when protobuf or JSON; partial success counted; a body that
 * does not parse is TH_EPERM); 429/502/503/504 TH_ERETRY with Retry-After; 413 TH_E2BIG;
 * other statuses TH_EPERM with the google.rpc.Status message when the body is one;
 * transfer failures (connect, reset, timeout) TH_ERETRY.
 * @param[out] r filled in full, message included.
 */
void th__otlphttp_classify(const struct th_otlphttp_response *resp, struct th_export_result *r);

/* ---- The transport (otlp_http_transport.c) -------------------------------------------- */

typedef struct th_otlphttp_transport th_otlphttp_transport_t;

/** The transport's operations, for th_exporterhelper_create (self is the transport). */
extern const struct th_export_transport_ops th__otlphttp_transport_ops;

/**
 * Build a transport from config: the URL, the header list, the codec. No I/O.
 * @param[in] cfg must outlive the transport.
 * @param[in] c the component, for logs; may be NULL.
 * @return 0, TH_ECONFIG (with *err), TH_ENOMEM.
 * @note Free with th__otlphttp_transport_ops.destroy (after stop, once the loop has closed
 *       the transport's handles), or hand it to the helper, which does that.
 */
int th__otlphttp_transport_create(const struct th_otlphttp_cfg *cfg, struct th_component *c,
                                  th_otlphttp_transport_t **out, const char **err);

/**
 * Add the authenticator's header to every request (before the transport runs: called by
 * start). It replaces a `headers` entry of the same name, as the Collector's RoundTripper
 * does, and is taken again before each request, so a rotated credential is sent from then on.
 * @param[in,out] auth the resolved client credentials; moved into the transport (zero after).
 * @return 0 or TH_ENOMEM.
 */
int th__otlphttp_transport_set_auth(th_otlphttp_transport_t *t, struct th_auth_client *auth);

/** Counters of the transport, for tests and metrics. */
struct th_otlphttp_transport_stats {
    uint64_t requests;    /**< sends accepted */
    uint64_t completed;   /**< done callbacks made */
    uint64_t connections; /**< new connections curl opened */
    size_t in_flight;     /**< sends whose done has not been called */
    size_t max_in_flight; /**< the most at once */
    size_t easy_handles;  /**< easy handles made (the pool's size) */
};

/** Read the counters (on the transport's loop thread, or after it stopped). */
void th__otlphttp_transport_stats(const th_otlphttp_transport_t *t,
                                  struct th_otlphttp_transport_stats *out);

/** @return the URL requests go to (after joining). */
const char *th__otlphttp_transport_url(const th_otlphttp_transport_t *t);

#endif
