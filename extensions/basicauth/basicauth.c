/*
 * The basicauth extension: the ops table, the config table, the lifecycle and the
 * authenticator callbacks. start reads the htpasswd file and inline text (their parsing and
 * the hash checks are in basicauth_htpasswd.c); a client instance only builds its header.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "extensions/basicauth/basicauth.h"
#include "th/base64.h"
#include "th/log.h"

static const struct th_cfg_field htpasswd_fields[] = {
    {.name = "file",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_basicauth_htpasswd_cfg, file),
     .desc = "path of an htpasswd file (bcrypt, SHA-256/512-crypt, $apr1$, {SHA}; read at "
             "start)"},
    {.name = "inline",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_basicauth_htpasswd_cfg, inline_text),
     .flags = TH_CFG_F_SECRET,
     .desc = "htpasswd content; its users take precedence over the file's"},
    {.name = NULL},
};

static const struct th_cfg_field client_fields[] = {
    {.name = "username",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_basicauth_client_cfg, username),
     .desc = "user name sent by exporters (no ':')"},
    {.name = "password",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct th_basicauth_client_cfg, password),
     .flags = TH_CFG_F_SECRET,
     .desc = "password sent by exporters"},
    {.name = NULL},
};

const struct th_cfg_field th_basicauth_config[] = {
    {.name = "htpasswd",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct th_basicauth_cfg, htpasswd),
     .aux = offsetof(struct th_basicauth_cfg, htpasswd_enabled),
     .sub = htpasswd_fields,
     .desc = "server side: the users allowed in"},
    {.name = "client_auth",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct th_basicauth_cfg, client_auth),
     .aux = offsetof(struct th_basicauth_cfg, client_auth_enabled),
     .sub = client_fields,
     .desc = "client side: the credentials exporters send"},
    {.name = NULL},
};

int th_basicauth_config_check(const void *p, const char **err)
{
    const struct th_basicauth_cfg *cfg = p;
    if (cfg->htpasswd_enabled && cfg->client_auth_enabled) {
        *err = "only one of `htpasswd` or `client_auth` can be specified";
        return TH_ECONFIG;
    }
    if (!cfg->htpasswd_enabled && !cfg->client_auth_enabled) {
        *err = "no credential source provided (set htpasswd or client_auth)";
        return TH_ECONFIG;
    }
    if (cfg->htpasswd_enabled && !(cfg->htpasswd.file && *cfg->htpasswd.file) &&
        !(cfg->htpasswd.inline_text && *cfg->htpasswd.inline_text)) {
        *err = "htpasswd: set file or inline";
        return TH_ECONFIG;
    }
    if (cfg->client_auth_enabled && cfg->client_auth.username &&
        strchr(cfg->client_auth.username, ':')) {
        *err = "client_auth::username: must not contain ':'";
        return TH_ECONFIG;
    }
    return 0;
}

static int ba_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    (void)next;
    struct th_basicauth *b = (struct th_basicauth *)c;
    const char *why = NULL;
    if (th_basicauth_config_check(cfg_, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    b->cfg = cfg_;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        return TH_ENOMEM;
    }
    b->lock_inited = true;
    return 0;
}

/* Read a whole htpasswd file (at most TH_BASICAUTH_MAX_FILE). */
static int read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
    int rc = th_file_read(path, TH_BASICAUTH_MAX_FILE, out, out_len);
    if (rc == TH_E2BIG) {
        snprintf(err, errlen, "htpasswd::file: %s is larger than %zu bytes", path,
                 TH_BASICAUTH_MAX_FILE);
    } else if (rc == TH_ENOMEM) {
        snprintf(err, errlen, "out of memory");
    } else if (rc != 0) {
        snprintf(err, errlen, "htpasswd::file: cannot read %s: %s", path, strerror(errno));
    }
    return rc;
}

static int ba_start(struct th_component *c, struct th_host *host)
{
    (void)host;
    struct th_basicauth *b = (struct th_basicauth *)c;
    const struct th_basicauth_cfg *cfg = b->cfg;
    char err[512];
    char *text = NULL;
    size_t len = 0;
    int ret = 0;
    if (!cfg->htpasswd_enabled) {
        __atomic_store_n(&b->running, 1, __ATOMIC_RELEASE);
        return 0;
    }
    th_htpasswd_free(&b->users);
    b->cache_n = b->cache_next = 0;
    if (RAND_bytes(b->cache_key, sizeof(b->cache_key)) != 1) {
        th_log_error(c, "no random bytes for the credentials cache");
        return TH_EIO;
    }
    if (cfg->htpasswd.file && *cfg->htpasswd.file) {
        ret = read_file(cfg->htpasswd.file, &text, &len, err, sizeof(err));
        if (ret != 0) {
            goto fail;
        }
        char src[300];
        snprintf(src, sizeof(src), "file %s", cfg->htpasswd.file);
        ret = th_htpasswd_parse(&b->users, text, len, src, err, sizeof(err));
        if (ret != 0) {
            goto fail;
        }
    }
    /* inline last: its users replace the file's */
    if (cfg->htpasswd.inline_text && *cfg->htpasswd.inline_text) {
        ret = th_htpasswd_parse(&b->users, cfg->htpasswd.inline_text,
                                strlen(cfg->htpasswd.inline_text), "inline", err, sizeof(err));
        if (ret != 0) {
            goto fail;
        }
    }
    if (b->users.n == 0) {
        th_log_warn(c, "htpasswd holds no user: every request is refused");
    } else {
        th_log_info(c, "%zu user%s loaded from htpasswd", b->users.n, b->users.n == 1 ? "" : "s");
    }
    if (text) {
        OPENSSL_cleanse(text, len);
    }
    th_free(text);
    __atomic_store_n(&b->running, 1, __ATOMIC_RELEASE);
    return 0;
fail:
    th_log_error(c, "extensions::%s: %s", c->id, err);
    if (text) {
        OPENSSL_cleanse(text, len);
    }
    th_free(text);
    th_htpasswd_free(&b->users);
    return ret == TH_ENOMEM ? ret : TH_ECONFIG;
}

static int ba_shutdown(struct th_component *c)
{
    struct th_basicauth *b = (struct th_basicauth *)c;
    __atomic_store_n(&b->running, 0, __ATOMIC_RELEASE);
    return 0;
}

static void ba_destroy(struct th_component *c)
{
    struct th_basicauth *b = (struct th_basicauth *)c;
    ba_shutdown(c);
    th_htpasswd_free(&b->users);
    OPENSSL_cleanse(b->cache, sizeof(b->cache));
    if (b->lock_inited) {
        pthread_mutex_destroy(&b->lock);
        b->lock_inited = false;
    }
}

static unsigned ba_roles(const struct th_component *c)
{
    const struct th_basicauth *b = (const struct th_basicauth *)c;
    return b->cfg->htpasswd_enabled ? TH_AUTH_SERVER : TH_AUTH_CLIENT;
}

static const char *ba_header(const struct th_component *c)
{
    (void)c;
    return "authorization";
}

/* The cache key of a set of credentials: SHA-256 of a random per-process key and the
 * credentials, so the cache holds nothing a dump could turn back into a password cheaply. */
static void cache_digest(const struct th_basicauth *b, const char *cred, size_t len,
                         uint8_t out[TH_AUTH_DIGEST_LEN], char *scratch)
{
    memcpy(scratch, b->cache_key, sizeof(b->cache_key));
    memcpy(scratch + sizeof(b->cache_key), cred, len);
    th_auth_sha256(scratch, sizeof(b->cache_key) + len, out);
}

static bool cache_has(struct th_basicauth *b, const uint8_t d[TH_AUTH_DIGEST_LEN])
{
    unsigned hit = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->cache_n; i++) {
        hit |= (unsigned)th_auth_equal(d, b->cache[i], TH_AUTH_DIGEST_LEN);
    }
    pthread_mutex_unlock(&b->lock);
    return hit != 0;
}

static void cache_put(struct th_basicauth *b, const uint8_t d[TH_AUTH_DIGEST_LEN])
{
    pthread_mutex_lock(&b->lock);
    memcpy(b->cache[b->cache_next], d, TH_AUTH_DIGEST_LEN);
    b->cache_next = (b->cache_next + 1) % TH_BASICAUTH_CACHE;
    if (b->cache_n < TH_BASICAUTH_CACHE) {
        b->cache_n++;
    }
    pthread_mutex_unlock(&b->lock);
}

static int ba_authenticate(struct th_component *c, th_auth_header_fn get, void *ctx,
                           struct th_auth_denial *why)
{
    struct th_basicauth *b = (struct th_basicauth *)c;
    why->challenge = "Basic realm=\"" TH_AUTH_REALM "\", charset=\"UTF-8\"";
    if (!__atomic_load_n(&b->running, __ATOMIC_ACQUIRE)) {
        why->message = "the authenticator is not running";
        return TH_EPERM;
    }
    size_t len = 0;
    const char *v = get(ctx, "authorization", &len);
    if (!v || len == 0) {
        why->message = "no basic auth provided";
        return TH_EPERM;
    }
    size_t cap = TH_BASE64_DECODED_MAX(len) + 1;
    char *buf = th_malloc(2 * cap + TH_AUTH_DIGEST_LEN);
    if (!buf) {
        why->message = "out of memory";
        return TH_ENOMEM;
    }
    int ret = TH_EPERM;
    const char *user, *pw;
    size_t ul, pl;
    if (!th_basicauth_parse_header(v, len, buf, cap, &user, &ul, &pw, &pl)) {
        why->message = "invalid authorization format";
        goto out;
    }
    uint8_t d[TH_AUTH_DIGEST_LEN];
    cache_digest(b, buf, ul + 1 + pl, d, buf + cap);
    if (cache_has(b, d)) {
        ret = 0;
        goto out;
    }
    const struct th_htpasswd_entry *e = th_htpasswd_find(&b->users, user, ul);
    /* An unknown user costs a hash check too, so timing does not tell which users exist. */
    bool ok = th_htpasswd_verify(e ? e : (b->users.n ? &b->users.v[0] : NULL), pw, pl) && e;
    if (!ok) {
        why->message = "invalid credentials";
        goto out;
    }
    cache_put(b, d);
    ret = 0;
out:
    OPENSSL_cleanse(buf, 2 * cap + TH_AUTH_DIGEST_LEN);
    th_free(buf);
    return ret;
}

static int ba_client_header(struct th_component *c, const char **name, th_buf_t *value)
{
    struct th_basicauth *b = (struct th_basicauth *)c;
    const struct th_basicauth_cfg *cfg = b->cfg;
    *name = "authorization";
    if (!cfg->client_auth_enabled) {
        return TH_EUNSUPPORTED;
    }
    const char *u = cfg->client_auth.username ? cfg->client_auth.username : "";
    const char *p = cfg->client_auth.password ? cfg->client_auth.password : "";
    size_t ul = strlen(u), pl = strlen(p);
    char *raw = th_malloc(ul + 1 + pl + 1);
    if (!raw) {
        return TH_ENOMEM;
    }
    memcpy(raw, u, ul);
    raw[ul] = ':';
    memcpy(raw + ul + 1, p, pl);
    size_t elen = th_base64_encoded_len(ul + 1 + pl, true);
    int ret = th_buf_reserve(value, 6 + elen + 1);
    if (ret == 0) {
        ret = th_buf_append(value, "Basic ", 6);
    }
    if (ret == 0) {
        char *dst = (char *)value->ptr + value->len;
        value->len += th_base64_encode((const uint8_t *)raw, ul + 1 + pl, dst, true);
    }
    OPENSSL_cleanse(raw, ul + 1 + pl);
    th_free(raw);
    return ret;
}

static const struct th_auth_ops ba_auth = {
    .roles = ba_roles,
    .header = ba_header,
    .authenticate = ba_authenticate,
    .client_header = ba_client_header,
};

const struct th_component_ops th_extension_basicauth_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "basicauth",
    .stability = TH_STABILITY_BETA,
    .description = "Authenticator: HTTP Basic credentials checked against htpasswd (receivers, "
                   "query API), or sent by exporters (client_auth)",
    .config_size = sizeof(struct th_basicauth_cfg),
    .config = th_basicauth_config,
    .config_check = th_basicauth_config_check,
    .instance_size = sizeof(struct th_basicauth),
    .init = ba_init,
    .start = ba_start,
    .shutdown = ba_shutdown,
    .destroy = ba_destroy,
    .auth = &ba_auth,
};
