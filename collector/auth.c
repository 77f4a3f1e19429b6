/*
 * The core side of authentication (th/auth.h): resolving `auth::authenticator` to an
 * extension, checking a request through it (with h2o requests' headers and query
 * parameters), and the small helpers every authenticator shares: SHA-256, a constant-time
 * comparison and the split of an Authorization value into scheme and credentials.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "th/auth.h"
#include "th/component.h"
#include "th/log.h"

const struct th_cfg_field th_auth_cfg_fields[] = {
    {.name = "authenticator",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_auth_cfg, authenticator),
     .desc = "id of the authenticator extension (bearertokenauth, basicauth) that checks every "
             "request"},
    {.name = "request_params",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct th_auth_cfg, request_params),
     .desc = "query parameters handed to the authenticator as headers of the same name"},
    {.name = NULL},
};

int th_auth_resolve(struct th_host *host, const char *id, unsigned role, th_auth_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!id || !*id) {
        snprintf(err, errlen, "auth::authenticator: must name an authenticator extension");
        return TH_ECONFIG;
    }
    struct th_component *c = host && host->get_extension ? host->get_extension(host, id) : NULL;
    if (!c) {
        snprintf(err, errlen,
                 "auth::authenticator: no extension \"%s\" (configure it under extensions and "
                 "list it in service::extensions)",
                 id);
        return TH_ECONFIG;
    }
    if (!c->ops->auth) {
        snprintf(err, errlen,
                 "auth::authenticator: extension \"%s\" is not an authenticator (use "
                 "bearertokenauth or basicauth)",
                 id);
        return TH_ECONFIG;
    }
    if (!(c->ops->auth->roles(c) & role)) {
        snprintf(err, errlen,
                 role == TH_AUTH_SERVER
                     ? "auth::authenticator: extension \"%s\" cannot check incoming requests "
                       "(a basicauth needs htpasswd for that)"
                     : "auth::authenticator: extension \"%s\" cannot add credentials to "
                       "outgoing requests (a basicauth needs client_auth for that)",
                 id);
        return TH_ECONFIG;
    }
    out->ext = c;
    out->ops = c->ops->auth;
    return 0;
}

int th_auth_check(const th_auth_t *a, th_auth_header_fn get, void *ctx, struct th_auth_denial *why)
{
    if (!th_auth_enabled(a)) {
        return 0;
    }
    why->challenge = NULL;
    why->message = "unauthenticated";
    return a->ops->authenticate(a->ext, get, ctx, why);
}

int th_auth_client_header(const th_auth_t *a, const char **name, th_buf_t *value)
{
    if (!th_auth_enabled(a) || !a->ops->client_header) {
        return TH_EUNSUPPORTED;
    }
    return a->ops->client_header(a->ext, name, value);
}

/* ---- Exporters ---------------------------------------------------------------------------- */

int th_auth_client_node_check(const th_node_t *auth, const char **err)
{
    if (!auth || auth->kind == TH_NODE_NULL) {
        return 0;
    }
    if (auth->kind != TH_NODE_MAP) {
        *err = "auth: expected a map with authenticator";
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < auth->n; i++) {
        if (strcmp(auth->pairs[i].key, "authenticator") != 0) {
            *err = "auth: unknown key (exporters take auth::authenticator only)";
            return TH_ECONFIG;
        }
    }
    const th_node_t *id = th_node_get(auth, "authenticator");
    if (!id || id->kind != TH_NODE_SCALAR || id->len == 0) {
        *err = "auth::authenticator: must name an authenticator extension";
        return TH_ECONFIG;
    }
    return 0;
}

int th_auth_client_resolve(struct th_component *c, struct th_host *host, const th_node_t *auth,
                           struct th_auth_client *out)
{
    char err[512];
    const char *why = NULL;
    memset(out, 0, sizeof(*out));
    if (!auth || auth->kind == TH_NODE_NULL) {
        return 0;
    }
    if (th_auth_client_node_check(auth, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    th_auth_t a;
    int ret = th_auth_resolve(host, th_node_get(auth, "authenticator")->text, TH_AUTH_CLIENT, &a,
                              err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    ret = th_auth_client_header(&a, &out->name, &out->value);
    if (ret != 0) {
        th_log_error(c, "auth::authenticator: the extension gave no credentials to send: %s",
                     th_strerror(ret));
        th_auth_client_free(out);
        return ret == TH_ENOMEM ? ret : TH_ECONFIG;
    }
    out->a = a;
    return 0;
}

static void wipe_buf(th_buf_t *b)
{
    if (b->ptr) {
        explicit_bzero(b->ptr, b->cap);
    }
    th_buf_free(b);
}

int th_auth_client_refresh(struct th_auth_client *c)
{
    if (!th_auth_enabled(&c->a)) {
        return 0;
    }
    const char *name = NULL;
    th_buf_t now = {0};
    int ret = th_auth_client_header(&c->a, &name, &now);
    if (ret == 0 && now.len == c->value.len &&
        (now.len == 0 || memcmp(now.ptr, c->value.ptr, now.len) == 0)) {
        wipe_buf(&now);
        return 0;
    }
    if (ret != 0) {
        wipe_buf(&now);
        return ret;
    }
    wipe_buf(&c->value);
    c->value = now;
    c->name = name;
    return 1;
}

void th_auth_client_free(struct th_auth_client *c)
{
    wipe_buf(&c->value);
    memset(c, 0, sizeof(*c));
}

/* ---- h2o requests ------------------------------------------------------------------------ */

struct h2o_ctx {
    h2o_req_t *req;
    const th_strlist_t *params;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of query parameter @p name, percent-decoded into the request's pool ('+' is a
 * space, as Go's url.ParseQuery has it). */
static const char *query_param(h2o_req_t *req, const char *name, size_t *len)
{
    if (req->query_at == SIZE_MAX) {
        return NULL;
    }
    const char *q = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));
        const char *kend = eq ? eq : pend;
        if ((size_t)(kend - q) == nlen && !memcmp(q, name, nlen)) {
            const char *v = eq ? eq + 1 : pend;
            size_t vlen = (size_t)(pend - v);
            char *out = h2o_mem_alloc_pool(&req->pool, vlen + 1);
            size_t o = 0;
            for (size_t i = 0; i < vlen; i++) {
                int h, l;
                if (v[i] == '%' && i + 2 < vlen && (h = hexval((unsigned char)v[i + 1])) >= 0 &&
                    (l = hexval((unsigned char)v[i + 2])) >= 0) {
                    out[o++] = (char)(h * 16 + l);
                    i += 2;
                } else {
                    out[o++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            out[o] = '\0';
            *len = o;
            return out;
        }
        q = amp ? amp + 1 : end;
    }
    return NULL;
}

static const char *h2o_get(void *p, const char *name, size_t *len)
{
    struct h2o_ctx *x = p;
    /* A listed query parameter replaces the header (confighttp's authInterceptor). */
    for (size_t i = 0; x->params && i < x->params->n; i++) {
        if (!strcasecmp(x->params->v[i], name)) {
            const char *v = query_param(x->req, x->params->v[i], len);
            if (v) {
                return v;
            }
        }
    }
    ssize_t i = h2o_find_header_by_str(&x->req->headers, name, strlen(name), -1);
    if (i < 0) {
        return NULL;
    }
    *len = x->req->headers.entries[i].value.len;
    return x->req->headers.entries[i].value.base;
}

int th_auth_check_h2o(const th_auth_t *a, struct st_h2o_req_t *req, struct th_auth_denial *why)
{
    struct h2o_ctx x = {.req = req, .params = a ? a->request_params : NULL};
    return th_auth_check(a, h2o_get, &x, why);
}

void th_auth_h2o_challenge(struct st_h2o_req_t *req, const struct th_auth_denial *why)
{
    if (why && why->challenge) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       why->challenge, strlen(why->challenge));
    }
}

/* ---- Shared helpers ---------------------------------------------------------------------- */

void th_auth_sha256(const void *p, size_t len, uint8_t out[TH_AUTH_DIGEST_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest with SHA-256 only fails on allocation failure inside OpenSSL; a zeroed
     * digest then matches no stored one (those are computed the same way at load, where a
     * failure is reported). */
    if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 || n != TH_AUTH_DIGEST_LEN) {
        memset(out, 0, TH_AUTH_DIGEST_LEN);
    }
}

bool th_auth_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

bool th_auth_split_scheme(const char *v, size_t len, const char *scheme, const char **cred,
                          size_t *cred_len)
{
    size_t sl = strlen(scheme);
    if (!v || len <= sl || strncasecmp(v, scheme, sl) != 0 || (v[sl] != ' ' && v[sl] != '\t')) {
        return false;
    }
    size_t i = sl;
    while (i < len && (v[i] == ' ' || v[i] == '\t')) {
        i++;
    }
    size_t e = len;
    while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t')) {
        e--;
    }
    *cred = v + i;
    *cred_len = e - i;
    return e > i;
}
