/*
 * Authentication: the interface between the servers that take `auth: {authenticator: NAME}`
 * (the OTLP/HTTP and OTLP/gRPC receivers, the jaeger_query API) and the extensions that
 * check credentials (bearertokenauth, basicauth), as the Collector's extensionauth.Server and
 * extensionauth.HTTPClient/GRPCClient. An authenticator is an extension whose ops table sets
 * `auth` to a const struct th_auth_ops; a server resolves the extension by id when it starts
 * (th_auth_resolve) and asks it about every request before reading anything else of it.
 *
 * Credentials never appear in log lines or in the messages of this interface: denials carry
 * a fixed reason and the challenge to send, nothing taken from the request.
 *
 * Threading: authenticate() and client_header() may be called from several threads at once
 * (the receivers' loop and the query API's thread); implementations lock what they share.
 */
#ifndef TH_AUTH_H
#define TH_AUTH_H

#include "th/common.h"
#include "th/config.h"
#include "th/otlp.h"

struct th_component;
struct th_host;
struct st_h2o_req_t;

/** Roles an authenticator instance can take (struct th_auth_ops::roles). */
#define TH_AUTH_SERVER 0x1u /**< checks the credentials of incoming requests */
#define TH_AUTH_CLIENT 0x2u /**< adds credentials to outgoing requests */

/** The realm Tracehouse names in its challenges. */
#define TH_AUTH_REALM "tracehouse"

/**
 * How a server shows a request's headers to an authenticator.
 * @param[in] ctx the server's request.
 * @param[in] name a header name in lower case ("authorization").
 * @param[out] len the value's length.
 * @return the first value of that header (not NUL-terminated, valid while the request is),
 *         or NULL when the request has none.
 */
typedef const char *(*th_auth_header_fn)(void *ctx, const char *name, size_t *len);

/** Why a request was refused: what the server answers (401 / UNAUTHENTICATED). */
struct th_auth_denial {
    /** The WWW-Authenticate value to send ("Basic realm=\"tracehouse\""); static, or owned by
     *  the authenticator and valid as long as it is. */
    const char *challenge;
    /** A short reason for the client ("missing credentials"); static, never holds anything
     *  taken from the request. */
    const char *message;
};

/**
 * The authenticator side of an extension. Every callback takes the extension instance.
 */
struct th_auth_ops {
    /**
     * @return the TH_AUTH_* roles this instance was configured for (a basicauth with
     *         `htpasswd` serves, one with `client_auth` is a client).
     */
    unsigned (*roles)(const struct th_component *self);
    /**
     * The one request header a server must keep for authenticate() (a server that does not
     * keep every header, like the gRPC receiver, captures only this one).
     * @return a lower-case header name, valid as long as the instance.
     */
    const char *(*header)(const struct th_component *self);
    /**
     * Check one request (TH_AUTH_SERVER).
     * @param[in] get,ctx the request's headers.
     * @param[out] why filled when the request is refused.
     * @return 0 when the request may proceed; TH_EPERM when it is refused (answer 401 or
     *         UNAUTHENTICATED with @p why); TH_ENOMEM (answer 503 / UNAVAILABLE).
     * @note Must not log the credentials, nor keep pointers into the request.
     */
    int (*authenticate)(struct th_component *self, th_auth_header_fn get, void *ctx,
                        struct th_auth_denial *why);
    /**
     * The header to add to an outgoing request (TH_AUTH_CLIENT); NULL when the extension
     * has no client side.
     * @param[out] name a lower-case header name, valid as long as the instance.
     * @param[out] value the header's value, appended to an empty buffer the caller frees with
     *             th_buf_free() (it holds a secret: the caller should not log it).
     * @return 0, TH_ENOMEM, TH_EUNSUPPORTED (the instance is not configured as a client).
     */
    int (*client_header)(struct th_component *self, const char **name, th_buf_t *value);
};

/** A resolved authenticator as a server or client keeps it; all zero means "no auth". */
typedef struct th_auth {
    struct th_component *ext;           /**< the extension instance, or NULL */
    const struct th_auth_ops *ops;      /**< ext's authenticator, or NULL */
    const th_strlist_t *request_params; /**< HTTP servers: query parameters that count as
                                             headers of the same name; may be NULL */
} th_auth_t;

/** The Collector's `auth` section of a server (configauth.Config). */
struct th_auth_cfg {
    const char *authenticator;   /**< the id of the authenticator extension */
    th_strlist_t request_params; /**< HTTP: query parameters handed on as headers */
};

/** The config table of struct th_auth_cfg, for servers that take `auth`. */
extern const struct th_cfg_field th_auth_cfg_fields[];

/**
 * Find the authenticator extension @p id and check that it can take @p role. Called by a
 * server's start; the extension may not have started yet (extensions start in the order of
 * service::extensions): until it has, it refuses every request, so nothing gets in early.
 * @param[in] host the host given to start.
 * @param[in] id the extension id from `auth::authenticator` ("basicauth/query").
 * @param[in] role TH_AUTH_SERVER or TH_AUTH_CLIENT.
 * @param[out] out the authenticator (request_params is left NULL for the caller to set).
 * @param[out] err why it failed: the id is empty, names no extension listed in
 *             service::extensions, names one that is not an authenticator, or one not
 *             configured for @p role.
 * @return 0 or TH_ECONFIG.
 */
int th_auth_resolve(struct th_host *host, const char *id, unsigned role, th_auth_t *out, char *err,
                    size_t errlen);

/** @return true when @p a holds an authenticator (false for the zero value: no auth). */
static inline bool th_auth_enabled(const th_auth_t *a)
{
    return a && a->ops != NULL;
}

/**
 * Check a request with a header callback. With no authenticator every request passes.
 * @return as struct th_auth_ops::authenticate.
 */
int th_auth_check(const th_auth_t *a, th_auth_header_fn get, void *ctx, struct th_auth_denial *why);

/**
 * Check an h2o request: its headers, and the query parameters named in request_params
 * (which, as in the Collector, stand in for the header of the same name).
 * @return as struct th_auth_ops::authenticate.
 */
int th_auth_check_h2o(const th_auth_t *a, struct st_h2o_req_t *req, struct th_auth_denial *why);

/**
 * Add `WWW-Authenticate: <challenge>` to an h2o response (nothing when the challenge is
 * NULL).
 */
void th_auth_h2o_challenge(struct st_h2o_req_t *req, const struct th_auth_denial *why);

/**
 * The header an authenticator's client side adds.
 * @return as struct th_auth_ops::client_header; TH_EUNSUPPORTED when @p a has none.
 */
int th_auth_client_header(const th_auth_t *a, const char **name, th_buf_t *value);

/* ---- Exporters (clients) ------------------------------------------------------------------ */

/**
 * Check an exporter's `auth` node (kept raw in its config): absent or null, or a map with
 * only a non-empty `authenticator`.
 * @param[out] err a static message naming the key.
 * @return 0 or TH_ECONFIG.
 */
int th_auth_client_node_check(const th_node_t *auth, const char **err);

/** An exporter's client credentials: its authenticator and the header value last taken. */
struct th_auth_client {
    th_auth_t a;      /**< zero: no authentication */
    const char *name; /**< the header name, lower case (valid as long as the extension) */
    th_buf_t value;   /**< the value last taken (a secret: wiped when freed) */
};

/**
 * For an exporter's start: resolve its `auth::authenticator` as a client and take the header
 * it adds to every request. Failures are logged as @p c.
 * @param[in] auth the exporter's `auth` node (absent or null: no authentication).
 * @param[out] out zeroed first; with authentication, the authenticator, the header name and
 *             its first value (the caller frees it with th_auth_client_free()).
 * @return 0, TH_ECONFIG (unknown extension, not a client authenticator), TH_ENOMEM.
 */
int th_auth_client_resolve(struct th_component *c, struct th_host *host, const th_node_t *auth,
                           struct th_auth_client *out);

/**
 * Take the authenticator's current header value before a request, so a rotated credential (a
 * bearertokenauth token file, looked at again at most once a second) is sent from the next
 * request on, as the Collector's clients do.
 * @return 1 when the value changed (c->value holds the new one); 0 when it is the same, or
 *         there is no authentication; an error (TH_ENOMEM, or the extension's) leaves c->value
 *         as it was, so the last good credential keeps being sent.
 */
int th_auth_client_refresh(struct th_auth_client *c);

/** Wipe and free the value; the struct is zero after. */
void th_auth_client_free(struct th_auth_client *c);

/* ---- Helpers the authenticators share ---------------------------------------------------- */

/** SHA-256 digest length. */
#define TH_AUTH_DIGEST_LEN 32

/** SHA-256 of @p len bytes into @p out. */
void th_auth_sha256(const void *p, size_t len, uint8_t out[TH_AUTH_DIGEST_LEN]);

/**
 * Compare two equal-length byte strings in time that depends only on @p len.
 * @return true when they are equal.
 */
bool th_auth_equal(const void *a, const void *b, size_t len);

/**
 * Split an Authorization-style value into its scheme and credentials: the scheme matches
 * @p scheme case-insensitively (RFC 9110 §11.1) and is followed by one or more spaces or
 * tabs; trailing whitespace is dropped from the credentials.
 * @param[in] v,len the header value.
 * @param[in] scheme the expected scheme ("Basic", "Bearer").
 * @param[out] cred,cred_len the credentials (pointing into @p v).
 * @return true when the scheme matched and the credentials are not empty.
 */
bool th_auth_split_scheme(const char *v, size_t len, const char *scheme, const char **cred,
                          size_t *cred_len);

#endif
