/*
 * TLS for every server endpoint: the Collector's configtls server block (`tls:` on OTLP/HTTP,
 * OTLP/gRPC, the query API, health_check, the prometheus exporter and the internal metrics
 * endpoint), one field table for all of them, its checks, and the OpenSSL server context
 * built from it, with certificate reloading.
 *
 * The config layer fills a struct th_tls_server_cfg; a server turns it into a
 * th_tls_server_t when it starts, and asks that object for the SSL_CTX of each new
 * connection. When reload_interval is set the files are re-read at most once per interval, on
 * a new connection (as the Collector's configtls does in its GetCertificate hook), and a
 * changed set of files gives new connections a new context; connections already open keep
 * theirs. A reload that fails keeps the old context and logs a warning.
 */
#ifndef TH_TLS_H
#define TH_TLS_H

#include <openssl/ssl.h>

#include "th/config.h"

struct th_component;

/** The Collector's default min_version. */
#define TH_TLS_DEFAULT_MIN_VERSION "1.2"

/**
 * configtls.ServerConfig (otelcol-config.md §3.2). Every string is "" when unset, never NULL
 * once decoded or defaulted (NULL is accepted too and means unset).
 */
struct th_tls_server_cfg {
    const char *ca_file;               /**< accepted; a server does not use it (Collector) */
    const char *ca_pem;                /**< likewise */
    const char *cert_file;             /**< PEM certificate, then its chain */
    const char *cert_pem;              /**< the same as text; exclusive with cert_file */
    const char *key_file;              /**< PEM private key, unencrypted */
    const char *key_pem;               /**< the same as text (a secret); exclusive with key_file */
    bool include_system_ca_certs_pool; /**< accepted; a server does not use it */
    const char *min_version;           /**< "1.0".."1.3"; "" means 1.2 */
    const char *max_version;           /**< "1.0".."1.3"; "" means the newest (1.3) */
    th_strlist_t cipher_suites;        /**< IANA names for TLS 1.0-1.2 (TLS 1.3 ones: ignored) */
    bool include_insecure_cipher_suites; /**< allow the suites Go lists as insecure */
    th_strlist_t curve_preferences;      /**< X25519, P256, P384, P521, in preference order */
    int64_t reload_interval;             /**< ns; > 0 re-reads the files this often */
    const char *client_ca_file;          /**< CA bundle: clients must present a cert it signs */
    bool client_ca_file_reload;          /**< re-read client_ca_file when it changes */
    const th_node_t *tpm;                /**< refused when set: keys in a TPM are unsupported */
};

/**
 * The field table of the `tls` block, shared by every server so the keys, defaults and
 * descriptions are defined once. Use it as the sub-table of a TH_CFG_OPTIONAL row (the
 * Collector's servers have TLS off unless the key is present).
 */
extern const struct th_cfg_field th_tls_server_config_fields[];

/**
 * Fill @p out with the table's defaults without YAML (TLS 1.2 minimum, nothing else set).
 * @param[out] out the config; strings point to static storage.
 */
void th_tls_server_cfg_default(struct th_tls_server_cfg *out);

/**
 * The checks that need no file: a certificate and a key are given (file or PEM, not both),
 * versions are known and min <= max, cipher suites and curves are known names (insecure suites
 * only with include_insecure_cipher_suites), client_ca_file_reload has a client_ca_file,
 * reload_interval is not negative, no tpm block.
 * @param[in] cfg the block.
 * @param[in] path the key path for messages, e.g. "protocols::grpc::tls".
 * @param[out] err "path::key: what is wrong" on failure.
 * @return 0 or TH_ECONFIG.
 */
int th_tls_server_cfg_check(const struct th_tls_server_cfg *cfg, const char *path, char *err,
                            size_t errlen);

/**
 * th_tls_server_cfg_check for a component's config_check callback, which returns a static
 * message: the message is formatted into a buffer local to the calling thread.
 * @param[out] err on failure, points to that buffer; it stays valid until the next call on
 *             the same thread.
 * @return 0 or TH_ECONFIG.
 */
int th_tls_server_cfg_check_static(const struct th_tls_server_cfg *cfg, const char *path,
                                   const char **err);

/** Application protocols a server negotiates with ALPN. */
enum th_tls_alpn {
    TH_TLS_ALPN_NONE, /**< no ALPN */
    /** gRPC: the client must offer "h2"; a handshake without it fails (no_application_protocol
     *  alert). */
    TH_TLS_ALPN_H2,
    /** h2o servers: "h2" when offered, else "http/1.1" (h2o's own list and select callback);
     *  a client without ALPN speaks HTTP/1.1. */
    TH_TLS_ALPN_HTTP,
};

/** How a server uses TLS, beside the config. */
struct th_tls_server_opts {
    const char *path;                  /**< key path for messages ("http::tls"); copied */
    enum th_tls_alpn alpn;             /**< what ALPN offers */
    const struct th_component *log_as; /**< for reload log lines; may be NULL */
};

typedef struct th_tls_server th_tls_server_t;

/**
 * Make the TLS side of a server from its config: checks it (th_tls_server_cfg_check) and
 * copies it; reads no file (see th_tls_server_load).
 * @param[in] cfg the `tls` block; copied, so it may be freed afterwards.
 * @param[in] opts ALPN, key path and logging; copied.
 * @param[out] out the object; free with th_tls_server_destroy().
 * @param[out] err the reason on failure.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th_tls_server_create(const struct th_tls_server_cfg *cfg, const struct th_tls_server_opts *opts,
                         th_tls_server_t **out, char *err, size_t errlen);

/**
 * Read the certificate, key and client CA files now and build a new context from them (call
 * it when the server starts). On success new connections get the new context; on failure
 * the current one (if any) stays.
 * @param[out] err on failure, names the key and the file: `http::tls::cert_file
 *             "/etc/x.pem": No such file or directory`, `...: the private key does not match
 *             the certificate`. Key material is never part of a message.
 * @return 0, TH_ECONFIG (a file is missing, unreadable or not what it should be), TH_ENOMEM.
 */
int th_tls_server_load(th_tls_server_t *t, char *err, size_t errlen);

/**
 * The context for a connection accepted now. When a reload is due (reload_interval, or
 * client_ca_file_reload at most once a second) the files are read first; when their contents
 * changed a new context replaces the current one, and when that fails a warning is logged
 * (once per failing set of files) and the current one stays.
 * @return the context, or NULL when none was loaded yet.
 * @note Borrowed: valid for at least five minutes after a reload retires it, so a server may
 *       hand it to code that creates the SSL object later (h2o does on the first byte, within
 *       its handshake timeout). SSL_new takes its own reference. Safe from any thread.
 */
SSL_CTX *th_tls_server_ctx(th_tls_server_t *t);

/**
 * The OpenSSL protocol version of a configtls name ("1.0" .. "1.3").
 * @return the version, @p dflt for NULL or "", or -1 for an unknown name.
 */
int th_tls_version(const char *name, int dflt);

/**
 * The newest OpenSSL error of this thread as text (its reason string, else the full error
 * string in @p buf), or @p dflt when there is none; the thread's error queue is emptied.
 */
const char *th_tls_reason(char *buf, size_t cap, const char *dflt);

/** @return how many times a changed set of files was loaded (the first load counts). */
uint64_t th_tls_server_generation(const th_tls_server_t *t);

/** Free everything; contexts still used by connections live on until those end. NULL is ok. */
void th_tls_server_destroy(th_tls_server_t *t);

/**
 * Check the protocol of a finished server handshake against @p alpn: with TH_TLS_ALPN_H2 the
 * negotiated protocol must be "h2" (a client that offered no ALPN at all gets here without
 * one).
 * @return true when the connection may go on.
 */
bool th_tls_alpn_ok(const SSL *ssl, enum th_tls_alpn alpn);

#endif
