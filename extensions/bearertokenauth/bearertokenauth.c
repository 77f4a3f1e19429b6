/*
 * The bearertokenauth extension: the ops table, the config table, the lifecycle and the
 * authenticator callbacks. start loads the tokens (from the file when one is named); the
 * token sets and the file reload are in bearertokenauth_tokens.c.
 */
#include <stdio.h>
#include <string.h>

#include "extensions/bearertokenauth/bearertokenauth.h"
#include "th/log.h"

#define OFF(f) offsetof(struct th_bearertokenauth_cfg, f)

const struct th_cfg_field th_bearertokenauth_config[] = {
    {.name = "header",
     .type = TH_CFG_STRING,
     .def = "Authorization",
     .offset = OFF(header),
     .desc = "request header that carries the token"},
    {.name = "scheme",
     .type = TH_CFG_STRING,
     .def = "Bearer",
     .offset = OFF(scheme),
     .desc = "auth scheme before the token (matched case-insensitively; \"\" for the bare "
             "token)"},
    {.name = "token",
     .type = TH_CFG_STRING,
     .offset = OFF(token),
     .flags = TH_CFG_F_SECRET,
     .desc = "the accepted token, and the one sent by exporters"},
    {.name = "tokens",
     .type = TH_CFG_STRLIST,
     .offset = OFF(tokens),
     .flags = TH_CFG_F_SECRET,
     .desc = "several accepted tokens (the first is sent by exporters); not with token"},
    {.name = "filename",
     .type = TH_CFG_STRING,
     .offset = OFF(filename),
     .desc = "file of tokens, one a line, re-read when it changes; takes precedence over "
             "token and tokens"},
    {.name = NULL},
};

/* RFC 9110 token characters, what a header name is made of. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int th_bearertokenauth_config_check(const void *p, const char **err)
{
    const struct th_bearertokenauth_cfg *cfg = p;
    bool has_token = cfg->token && *cfg->token;
    bool has_file = cfg->filename && *cfg->filename;
    if (!has_token && cfg->tokens.n == 0 && !has_file) {
        *err = "no bearer token provided (set token, tokens or filename)";
        return TH_ECONFIG;
    }
    if (has_token && cfg->tokens.n > 0) {
        *err = "either tokens or token should be provided, not both";
        return TH_ECONFIG;
    }
    size_t hl = cfg->header ? strlen(cfg->header) : 0;
    if (hl == 0 || hl >= sizeof(((struct th_bearertokenauth *)0)->header)) {
        *err = "header: must be a header name of 1 to 127 characters";
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < hl; i++) {
        if (!is_tchar((unsigned char)cfg->header[i])) {
            *err = "header: not a valid header name";
            return TH_ECONFIG;
        }
    }
    for (const char *s = cfg->scheme; s && *s; s++) {
        if (!is_tchar((unsigned char)*s)) {
            *err = "scheme: not a valid auth scheme (letters, digits and !#$%&'*+-.^_`|~)";
            return TH_ECONFIG;
        }
    }
    return 0;
}

static int bt_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    (void)next;
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    const struct th_bearertokenauth_cfg *cfg = cfg_;
    const char *why = NULL;
    if (th_bearertokenauth_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    b->cfg = cfg;
    size_t i = 0;
    for (; cfg->header[i]; i++) {
        char ch = cfg->header[i];
        b->header[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    b->header[i] = '\0';
    snprintf(b->challenge, sizeof(b->challenge), "%s realm=\"" TH_AUTH_REALM "\"",
             cfg->scheme && *cfg->scheme ? cfg->scheme : "Bearer");
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        return TH_ENOMEM;
    }
    b->lock_inited = true;
    return 0;
}

static int bt_start(struct th_component *c, struct th_host *host)
{
    (void)host;
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    const struct th_bearertokenauth_cfg *cfg = b->cfg;
    int ret = 0;
    if (cfg->filename && *cfg->filename) {
        if ((cfg->token && *cfg->token) || cfg->tokens.n > 0) {
            th_log_warn(c, "filename is set: the configured token(s) are ignored");
        }
        ret = th_bearertokenauth_reload(b);
        if (ret != 0) {
            return ret;
        }
        __atomic_store_n(&b->next_check_ns, th_now_mono_ns() + TH_BEARERTOKENAUTH_RECHECK_NS,
                         __ATOMIC_RELAXED);
    } else {
        struct th_bearer_tokens *t = NULL;
        const char *one[1] = {cfg->token};
        ret = cfg->tokens.n > 0
                  ? th_bearertokenauth_tokens_from_list(cfg->tokens.v, cfg->tokens.n, &t)
                  : th_bearertokenauth_tokens_from_list(one, 1, &t);
        if (ret != 0) {
            return ret;
        }
        if (t->n == 0) {
            th_bearertokenauth_tokens_free(t);
            th_log_error(c, "token/tokens: every configured token is empty");
            return TH_ECONFIG;
        }
        pthread_mutex_lock(&b->lock);
        th_bearertokenauth_tokens_free(b->tokens);
        b->tokens = t;
        pthread_mutex_unlock(&b->lock);
    }
    __atomic_store_n(&b->running, 1, __ATOMIC_RELEASE);
    return 0;
}

static int bt_shutdown(struct th_component *c)
{
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    __atomic_store_n(&b->running, 0, __ATOMIC_RELEASE);
    return 0;
}

static void bt_destroy(struct th_component *c)
{
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    bt_shutdown(c);
    th_bearertokenauth_tokens_free(b->tokens);
    b->tokens = NULL;
    if (b->lock_inited) {
        pthread_mutex_destroy(&b->lock);
        b->lock_inited = false;
    }
}

/* With a token file, one request a second (whichever wins the race) looks at it again. */
static void maybe_reload(struct th_bearertokenauth *b)
{
    if (!b->cfg->filename || !*b->cfg->filename) {
        return;
    }
    uint64_t now = th_now_mono_ns();
    uint64_t due = __atomic_load_n(&b->next_check_ns, __ATOMIC_RELAXED);
    if (now < due ||
        !__atomic_compare_exchange_n(&b->next_check_ns, &due, now + TH_BEARERTOKENAUTH_RECHECK_NS,
                                     false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        return;
    }
    th_bearertokenauth_reload(b);
}

static unsigned bt_roles(const struct th_component *c)
{
    (void)c;
    return TH_AUTH_SERVER | TH_AUTH_CLIENT;
}

static const char *bt_header(const struct th_component *c)
{
    return ((const struct th_bearertokenauth *)c)->header;
}

static int bt_authenticate(struct th_component *c, th_auth_header_fn get, void *ctx,
                           struct th_auth_denial *why)
{
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    why->challenge = b->challenge;
    if (!__atomic_load_n(&b->running, __ATOMIC_ACQUIRE)) {
        why->message = "the authenticator is not running";
        return TH_EPERM;
    }
    maybe_reload(b);
    size_t len = 0;
    const char *v = get(ctx, b->header, &len);
    if (!v || len == 0) {
        why->message = "missing or empty authorization header";
        return TH_EPERM;
    }
    pthread_mutex_lock(&b->lock);
    bool ok = th_bearertokenauth_match(b->tokens, b->cfg->scheme, v, len);
    pthread_mutex_unlock(&b->lock);
    if (!ok) {
        why->message = "scheme or token does not match";
        return TH_EPERM;
    }
    return 0;
}

static int bt_client_header(struct th_component *c, const char **name, th_buf_t *value)
{
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    maybe_reload(b);
    int ret = 0;
    pthread_mutex_lock(&b->lock);
    const char *tok = b->tokens ? b->tokens->first : NULL;
    if (!tok) {
        ret = TH_EUNSUPPORTED;
    } else if (b->cfg->scheme && *b->cfg->scheme) {
        ret = th_buf_printf(value, "%s %s", b->cfg->scheme, tok);
    } else {
        ret = th_buf_append(value, tok, strlen(tok));
    }
    pthread_mutex_unlock(&b->lock);
    *name = b->header;
    return ret;
}

static const struct th_auth_ops bt_auth = {
    .roles = bt_roles,
    .header = bt_header,
    .authenticate = bt_authenticate,
    .client_header = bt_client_header,
};

const struct th_component_ops th_extension_bearertokenauth_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "bearertokenauth",
    .stability = TH_STABILITY_BETA,
    .description = "Authenticator: checks `Authorization: Bearer <token>` on receivers and the "
                   "query API, and sends it from exporters",
    .config_size = sizeof(struct th_bearertokenauth_cfg),
    .config = th_bearertokenauth_config,
    .config_check = th_bearertokenauth_config_check,
    .instance_size = sizeof(struct th_bearertokenauth),
    .init = bt_init,
    .start = bt_start,
    .shutdown = bt_shutdown,
    .destroy = bt_destroy,
    .auth = &bt_auth,
};
