/*
 * The basicauth extension (contrib extension/basicauthextension): HTTP Basic authentication.
 * As a server authenticator it checks `Authorization: Basic base64(user:password)` against an
 * htpasswd file and/or inline htpasswd text (bcrypt, SHA-256-crypt, SHA-512-crypt, MD5-crypt,
 * Apache's $apr1$ and {SHA}; plain-text entries are refused at start). As a client
 * authenticator (`client_auth`) it adds that header to exporters' requests. One instance is
 * one or the other, as in the Collector.
 */
#ifndef TH_EXTENSION_BASICAUTH_H
#define TH_EXTENSION_BASICAUTH_H

#include <pthread.h>

#include "th/auth.h"
#include "th/component.h"

/** Successful checks remembered (keyed by a keyed digest of the credentials), so a client
 *  sending the same valid credentials does not pay a bcrypt per request. */
#define TH_BASICAUTH_CACHE 64
/** The largest htpasswd file read. */
#define TH_BASICAUTH_MAX_FILE ((size_t)4 << 20)

/** `htpasswd`. */
struct th_basicauth_htpasswd_cfg {
    const char *file;        /**< path of an htpasswd file */
    const char *inline_text; /**< htpasswd content (`inline`); its entries win over file's */
};

/** `client_auth`. */
struct th_basicauth_client_cfg {
    const char *username;
    const char *password; /**< secret */
};

/** extensions::basicauth[/name]. */
struct th_basicauth_cfg {
    bool htpasswd_enabled;
    struct th_basicauth_htpasswd_cfg htpasswd;
    bool client_auth_enabled;
    struct th_basicauth_client_cfg client_auth;
};

/** The config table of struct th_basicauth_cfg. */
extern const struct th_cfg_field th_basicauth_config[];

/**
 * The rules across keys: exactly one of htpasswd and client_auth; htpasswd names a file or
 * inline text; a client username without ':'.
 * @param[out] err a static message.
 * @return 0 or TH_ECONFIG.
 */
int th_basicauth_config_check(const void *cfg, const char **err);

/** The ops table registered as extension "basicauth". */
extern const struct th_component_ops th_extension_basicauth_ops;

/* ---- htpasswd (basicauth_htpasswd.c) ------------------------------------------------------- */

/** The hash kinds of an htpasswd entry. */
enum th_htpasswd_kind {
    TH_HTPASSWD_BCRYPT,      /**< $2y$, $2b$, $2a$ (htpasswd -B) */
    TH_HTPASSWD_SHA256CRYPT, /**< $5$ (htpasswd -2) */
    TH_HTPASSWD_SHA512CRYPT, /**< $6$ (htpasswd -5) */
    TH_HTPASSWD_MD5CRYPT,    /**< $1$ (openssl passwd -1) */
    TH_HTPASSWD_APR1,        /**< $apr1$ (htpasswd -m, Apache's default) */
    TH_HTPASSWD_SHA1,        /**< {SHA}base64(SHA-1) (htpasswd -s) */
};

struct th_htpasswd_entry {
    char *user;
    char *hash;
    enum th_htpasswd_kind kind;
};

/** Parsed htpasswd content: one entry per user (a later line for a user replaces it). */
struct th_htpasswd {
    struct th_htpasswd_entry *v;
    size_t n, cap;
};

/**
 * Parse htpasswd text and add its entries to @p h: `user:hash` lines (anything after a second
 * ':' is ignored, as Apache does), blank lines and lines starting with '#' skipped, CR LF
 * line ends accepted. Entries replace earlier ones of the same user.
 * @param[in] source "file PATH" or "inline", for messages.
 * @param[out] err on failure: the source and line number and what is wrong (never the hash
 *             nor the user: a plain-text entry would be a password).
 * @return 0, TH_ECONFIG (a line without ':', an empty user, a hash of an unsupported kind or
 *         plain text), TH_ENOMEM.
 */
int th_htpasswd_parse(struct th_htpasswd *h, const char *text, size_t len, const char *source,
                      char *err, size_t errlen);

/** @return the entry of @p user, or NULL. */
const struct th_htpasswd_entry *th_htpasswd_find(const struct th_htpasswd *h, const char *user,
                                                 size_t len);

/**
 * Check a password against an entry's hash (the final comparison in constant time).
 * @return true when it matches; false also when the password holds a NUL byte or the hash
 *         is malformed.
 */
bool th_htpasswd_verify(const struct th_htpasswd_entry *e, const char *pw, size_t pwlen);

/**
 * Apache's $apr1$ hash (MD5-crypt with the "$apr1$" magic), for checking and for tests.
 * @param[in] salt,saltlen the salt (at most 8 characters are used).
 * @param[out] out "$apr1$<salt>$<22 characters>" and a NUL; at least 40 bytes.
 * @return 0, TH_EINVAL (@p outlen too small), TH_ENOMEM.
 */
int th_htpasswd_apr1(const char *pw, size_t pwlen, const char *salt, size_t saltlen, char *out,
                     size_t outlen);

/** Free the entries (hashes are wiped); the struct itself is the caller's. */
void th_htpasswd_free(struct th_htpasswd *h);

/**
 * Decode an Authorization value `Basic base64(user:password)` (scheme case-insensitive,
 * standard base64 with padding required, as Go's base64.StdEncoding).
 * @param[out] buf receives the decoded credentials; @p buflen at least
 *             TH_BASE64_DECODED_MAX(len) + 1.
 * @param[out] user,user_len,pw,pw_len point into @p buf (split at the first ':').
 * @return true when the value is well formed with a non-empty user.
 */
bool th_basicauth_parse_header(const char *v, size_t len, char *buf, size_t buflen,
                               const char **user, size_t *user_len, const char **pw,
                               size_t *pw_len);

/** The instance. */
struct th_basicauth {
    struct th_component base;
    const struct th_basicauth_cfg *cfg;
    struct th_htpasswd users;
    int running;          /* atomic */
    pthread_mutex_t lock; /* guards the cache */
    bool lock_inited;
    uint8_t cache_key[TH_AUTH_DIGEST_LEN]; /* random, per process */
    uint8_t cache[TH_BASICAUTH_CACHE][TH_AUTH_DIGEST_LEN];
    size_t cache_n, cache_next;
};

#endif
