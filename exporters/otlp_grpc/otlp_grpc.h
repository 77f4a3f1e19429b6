/*
 * The otlp_grpc exporter (alias otlp): sends every batch as one OTLP/gRPC
 * TraceService/Export call over one HTTP/2 connection (nghttp2 client session on the
 * exporter's own loop; h2c with prior knowledge when insecure, TLS through memory BIOs
 * otherwise). The queue, the retries and the exporter thread are the exporter helper's; this
 * component is the transport the helper drives (one call per send, many streams at once) and
 * the glue that builds both from the Collector's config keys.
 *
 * Internal header: the config structs (so tests build them without YAML), the endpoint
 * parser and the transport's constructor.
 */
#ifndef TH_EXPORTER_OTLP_GRPC_H
#define TH_EXPORTER_OTLP_GRPC_H

#include "th/auth.h"
#include "th/component.h"
#include "th/config.h"
#include "th/exporterhelper.h"
#include "th/grpc.h"
#include "th/otlp.h"

/** configtls client settings (otelcol-config.md §3.2). */
struct th_otlp_grpc_exporter_tls_cfg {
    bool insecure;             /**< plaintext h2c (unless a CA is set or the scheme is https) */
    bool insecure_skip_verify; /**< TLS without checking the server's certificate */
    const char *ca_file;       /**< PEM file of CAs to trust instead of the system store */
    const char *ca_pem;        /**< the same as PEM text */
    const char *cert_file;     /**< client certificate (chain) for mTLS */
    const char *cert_pem;
    const char *key_file; /**< the client certificate's private key */
    const char *key_pem;
    bool include_system_ca_certs_pool; /**< trust the system store as well as ca_file/ca_pem */
    const char *min_version;           /**< "1.0".."1.3"; "" = 1.2 */
    const char *max_version;           /**< "" = the highest OpenSSL offers */
    const char *server_name_override;  /**< SNI and the name the certificate must match */
    th_strlist_t cipher_suites;        /**< accepted, no effect (Go names) */
    bool include_insecure_cipher_suites;
    th_strlist_t curve_preferences; /**< accepted, no effect */
    int64_t reload_interval;        /**< accepted, no effect */
};

/** keepalive: client pings (gRPC's keepalive.ClientParameters). */
struct th_otlp_grpc_exporter_keepalive_cfg {
    int64_t time;               /**< ns of quiet after which a PING is sent (10s) */
    int64_t timeout;            /**< ns to wait for its ACK before the connection is dead (10s) */
    bool permit_without_stream; /**< ping even when no call is in flight */
};

/** compression_params */
struct th_otlp_grpc_exporter_compression_params {
    int64_t level; /**< accepted, no effect: each algorithm's default level is used */
};

/** The exporter's config, filled by its field table or built directly by tests. */
struct th_otlp_grpc_exporter_cfg {
    const char *endpoint;    /**< required: host:port, dns:///host:port, unix:///path */
    const char *compression; /**< gzip (default), zstd, none or "" */
    struct th_otlp_grpc_exporter_compression_params compression_params;
    struct th_otlp_grpc_exporter_tls_cfg tls;
    bool keepalive_enabled; /**< the keepalive: key is present */
    struct th_otlp_grpc_exporter_keepalive_cfg keepalive;
    int64_t read_buffer_size;  /**< bytes per socket read (0: 64 KiB) */
    int64_t write_buffer_size; /**< bytes queued for the socket before nghttp2 is paused */
    bool wait_for_ready;       /**< calls wait for a connection instead of failing fast */
    th_strmap_t headers;       /**< gRPC metadata sent with every call */
    const char *user_agent;    /**< "" = Tracehouse's own */
    const char *balancer_name; /**< accepted: round_robin or pick_first (one connection) */
    const char *authority;     /**< :authority; "" = host:port of the endpoint */
    const th_node_t *auth;     /**< authenticator extensions: refused when set */
    th_strlist_t middlewares;  /**< refused when not empty */
    int64_t timeout;           /**< ns per attempt; 0 = none (5s) */
    struct th_retry_cfg retry;
    struct th_queue_cfg queue; /**< sending_queue; queue.enabled says whether it is on */
};

/** Where to connect, from the endpoint (see th__otlp_grpc_exporter_parse_endpoint). */
struct th_otlp_grpc_exporter_target {
    bool is_unix;        /**< connect to a Unix socket at path */
    bool force_tls;      /**< the endpoint said https:// */
    char host[256];      /**< the host name or address, without IPv6 brackets */
    char port[8];        /**< decimal */
    char path[108];      /**< the Unix socket path */
    char authority[300]; /**< default :authority (host:port, brackets kept; "localhost" for unix) */
};

/**
 * Parse an endpoint the way the Collector's gRPC client reads it: a leading http:// or
 * https:// is stripped (https forces TLS), dns:[//authority]/host:port is host:port,
 * unix:path and unix:///path are Unix sockets, anything else is host:port with a numeric
 * port ([v6]:port for IPv6).
 * @param[out] err a static message on failure.
 * @return 0 or TH_ECONFIG.
 */
int th__otlp_grpc_exporter_parse_endpoint(const char *endpoint,
                                          struct th_otlp_grpc_exporter_target *out,
                                          const char **err);

/** The nested tables of the exporter's config: tls, keepalive, compression_params. */
extern const struct th_cfg_field th__otlp_grpc_exporter_tls_fields[];
extern const struct th_cfg_field th__otlp_grpc_exporter_keepalive_fields[];
extern const struct th_cfg_field th__otlp_grpc_exporter_compression_params_fields[];

/** Cross-field rules (endpoint, compression, tls versions, headers, timeouts, retry/queue). */
int th__otlp_grpc_exporter_config_check(const void *cfg, const char **err);

/** The Collector's compression name as th_grpc_frame takes it: "gzip", "zstd" or NULL. */
const char *th__otlp_grpc_exporter_encoding(const struct th_otlp_grpc_exporter_cfg *cfg);

/* ---- One call's outcome (otlp_grpc_result.c) ------------------------------------------ */

/** The most a response message may hold (otlp.md §5: 4 MiB). */
#define TH_OTLP_GRPC_EXPORTER_MAX_RESPONSE ((uint64_t)4 << 20)

/** What the server sent on one stream, collected by the connection's nghttp2 callbacks. */
struct th_otlp_grpc_exporter_response {
    int http_status;         /**< :status, 0 before the response headers */
    int grpc_status;         /**< grpc-status from the trailers (or Trailers-Only), -1 if none */
    char grpc_message[256];  /**< grpc-message as sent (percent-encoded), truncated */
    size_t grpc_message_len; /**< bytes of it */
    int64_t retry_delay_ns;  /**< RetryInfo from grpc-status-details-bin, -1 if none */
    char content_type[64];   /**< the response's content-type, truncated */
    bool content_type_grpc;  /**< it starts with application/grpc */
    char encoding[16];       /**< the response's grpc-encoding */
    bool reset;              /**< the server reset the stream (RST_STREAM) */
    uint32_t rst_code;       /**< its HTTP/2 error code */
    bool refused_by_goaway;  /**< above a GOAWAY's last-stream-id: never processed */
    int data_err;            /**< a malformed response message (th_grpc_reader_feed's error) */
    struct th_grpc_reader reader; /**< the response message */
};

/** Start collecting a response. */
void th__otlp_grpc_exporter_response_init(struct th_otlp_grpc_exporter_response *r);
/** Free what it holds. */
void th__otlp_grpc_exporter_response_free(struct th_otlp_grpc_exporter_response *r);

/**
 * Map a finished stream to the exporter helper's result (takes the response message out of
 * @p r): OK -> 0 with partial_success's rejected spans; the retryable codes (RESOURCE_EXHAUSTED
 * only with RetryInfo) -> TH_ERETRY with the RetryInfo delay; RESOURCE_EXHAUSTED without it
 * -> TH_E2BIG; other codes -> TH_EPERM; RST_STREAM, GOAWAY and non-gRPC HTTP replies as gRPC
 * clients map them.
 * @param[in] peer host:port for the message.
 */
void th__otlp_grpc_exporter_result(struct th_otlp_grpc_exporter_response *r, const char *peer,
                                   struct th_export_result *out);

/* ---- The transport (otlp_grpc_transport.c, otlp_grpc_tls.c) ---------------------------- */

typedef struct th_otlp_grpc_exporter_transport th_otlp_grpc_exporter_transport_t;

/** What the transport has done, for tests and logs (read on the exporter's loop). */
struct th_otlp_grpc_exporter_transport_stats {
    uint64_t connects;       /**< connection attempts started */
    uint64_t connected;      /**< connections that reached HTTP/2 (after TLS) */
    uint64_t disconnects;    /**< connections lost or reset after being established */
    uint64_t calls;          /**< Export calls sent (streams opened) */
    uint64_t pings;          /**< PINGs sent (keepalive, and liveness checks after a timeout) */
    uint64_t goaways;        /**< GOAWAY frames received */
    uint64_t active_streams; /**< calls in flight now */
};

/**
 * Create the transport from @p cfg. No I/O: certificates are read by prepare.
 * @param[in] cfg copied (endpoint, headers, user agent, timeouts), except the tls strings,
 *            which are read by prepare and must stay valid until it returns.
 * @param[in] comp the exporter, for logs; may be NULL in tests.
 * @return 0, TH_ECONFIG (the endpoint does not parse; logged), TH_ENOMEM.
 * @note Free with th__otlp_grpc_exporter_transport_ops.destroy, after stop and after the loop
 *       closed its handles (or hand it to the exporter helper, which then owns it).
 */
int th__otlp_grpc_exporter_transport_create(const struct th_otlp_grpc_exporter_cfg *cfg,
                                            struct th_component *comp,
                                            th_otlp_grpc_exporter_transport_t **out);

/**
 * Load what TLS needs (CA, client certificate and key) so a bad file fails at start with a
 * message rather than on every send. Does nothing for plaintext.
 * @param[out] err the reason, e.g. `tls::ca_file "/x.pem": No such file or directory`.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th__otlp_grpc_exporter_transport_prepare(th_otlp_grpc_exporter_transport_t *t, char *err,
                                             size_t errlen);

/**
 * Add the authenticator's header to every call (before the transport runs: called by start).
 * It replaces a `headers` entry of the same name, as the Collector's per-RPC credentials do,
 * and is taken again before each call, so a rotated credential is sent from then on.
 * @param[in,out] auth the resolved client credentials; moved into the transport (zero after).
 * @return 0 or TH_ENOMEM.
 */
int th__otlp_grpc_exporter_transport_set_auth(th_otlp_grpc_exporter_transport_t *t,
                                              struct th_auth_client *auth);

/** Copy the counters (call on the transport's loop, or after it stopped). */
void th__otlp_grpc_exporter_transport_stats(const th_otlp_grpc_exporter_transport_t *t,
                                            struct th_otlp_grpc_exporter_transport_stats *out);

/** start/send/stop/destroy as the exporter helper drives them (see exporterhelper.h). */
extern const struct th_export_transport_ops th__otlp_grpc_exporter_transport_ops;

/* ---- TLS over memory BIOs (otlp_grpc_tls.c) ------------------------------------------- */

typedef struct th_otlp_grpc_exporter_tls_ctx th_otlp_grpc_exporter_tls_ctx_t;
typedef struct th_otlp_grpc_exporter_tls th_otlp_grpc_exporter_tls_t;

/**
 * Build the client context: protocol versions, trust (ca_file/ca_pem or the system store),
 * the client certificate, ALPN h2.
 * @return 0, TH_ECONFIG with @p err set, TH_ENOMEM.
 */
int th__otlp_grpc_exporter_tls_ctx_create(const struct th_otlp_grpc_exporter_tls_cfg *cfg,
                                          th_otlp_grpc_exporter_tls_ctx_t **out, char *err,
                                          size_t errlen);
/** Free a context; NULL is allowed. */
void th__otlp_grpc_exporter_tls_ctx_destroy(th_otlp_grpc_exporter_tls_ctx_t *ctx);

/**
 * Start a client session for one connection: SNI and the name to verify are @p server_name
 * (an IP address is verified as one and sent without SNI).
 * @return the session or NULL when memory is short.
 */
th_otlp_grpc_exporter_tls_t *th__otlp_grpc_exporter_tls_new(th_otlp_grpc_exporter_tls_ctx_t *ctx,
                                                            const char *server_name);
/** Free a session; NULL is allowed. */
void th__otlp_grpc_exporter_tls_free(th_otlp_grpc_exporter_tls_t *s);

/**
 * Advance the handshake.
 * @return 1 done, 0 needs more input (flush the output first), TH_EPERM failed (the reason in
 *         @p err: certificate verification, no h2 in ALPN, an alert).
 */
int th__otlp_grpc_exporter_tls_handshake(th_otlp_grpc_exporter_tls_t *s, char *err, size_t errlen);

/** Feed ciphertext read from the socket. @return 0 or TH_ENOMEM. */
int th__otlp_grpc_exporter_tls_feed(th_otlp_grpc_exporter_tls_t *s, const uint8_t *p, size_t n);

/**
 * Read decrypted bytes.
 * @return bytes (> 0), 0 when nothing is buffered, TH_EIO when the peer closed the TLS
 *         session or the record layer failed.
 */
int th__otlp_grpc_exporter_tls_read(th_otlp_grpc_exporter_tls_t *s, uint8_t *buf, size_t cap);

/** Encrypt plaintext into the output buffer. @return 0 or TH_EIO. */
int th__otlp_grpc_exporter_tls_write(th_otlp_grpc_exporter_tls_t *s, const uint8_t *p, size_t n);

/**
 * Move the ciphertext waiting to go to the socket to the end of @p out.
 * @return 0 or TH_ENOMEM.
 */
int th__otlp_grpc_exporter_tls_drain(th_otlp_grpc_exporter_tls_t *s, th_buf_t *out);

/** The exporter's ops table, registered as exporter "otlp_grpc" (alias "otlp"). */
extern const struct th_component_ops th_exporter_otlp_grpc_ops;

#endif
