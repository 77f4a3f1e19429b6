/*
 * bearertokenauth's token sets: building them from a list or a token file, matching a header
 * value against them in constant time, and reloading the token file when its content changes.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "extensions/bearertokenauth/bearertokenauth.h"
#include "th/log.h"

void th_bearertokenauth_tokens_free(struct th_bearer_tokens *t)
{
    if (!t) {
        return;
    }
    if (t->first) {
        /* the token is a secret: do not leave it in freed memory */
        OPENSSL_cleanse(t->first, strlen(t->first));
    }
    th_free(t->first);
    th_free(t->digests);
    th_free(t);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Add one token (spaces around it trimmed; empty ones skipped). */
static int add_token(struct th_bearer_tokens *t, const char *s, size_t len)
{
    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1])) {
        len--;
    }
    if (len == 0) {
        return 0;
    }
    if (!t->first) {
        t->first = th_strndup(s, len);
        if (!t->first) {
            return TH_ENOMEM;
        }
    }
    th_auth_sha256(s, len, t->digests[t->n++]);
    return 0;
}

static struct th_bearer_tokens *tokens_alloc(size_t max)
{
    struct th_bearer_tokens *t = th_calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->digests = th_calloc(max ? max : 1, sizeof(*t->digests));
    if (!t->digests) {
        th_free(t);
        return NULL;
    }
    return t;
}

int th_bearertokenauth_tokens_parse(const char *text, size_t len, struct th_bearer_tokens **out)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    struct th_bearer_tokens *t = tokens_alloc(lines);
    if (!t) {
        return TH_ENOMEM;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            if (add_token(t, text + start, i - start) != 0) {
                th_bearertokenauth_tokens_free(t);
                return TH_ENOMEM;
            }
            start = i + 1;
        }
    }
    *out = t;
    return 0;
}

int th_bearertokenauth_tokens_from_list(const char *const *v, size_t n,
                                        struct th_bearer_tokens **out)
{
    struct th_bearer_tokens *t = tokens_alloc(n);
    if (!t) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] && add_token(t, v[i], strlen(v[i])) != 0) {
            th_bearertokenauth_tokens_free(t);
            return TH_ENOMEM;
        }
    }
    *out = t;
    return 0;
}

bool th_bearertokenauth_match(const struct th_bearer_tokens *t, const char *scheme,
                              const char *value, size_t len)
{
    const char *cred = value;
    size_t cred_len = len;
    if (!t || !value) {
        return false;
    }
    if (scheme && *scheme) {
        if (!th_auth_split_scheme(value, len, scheme, &cred, &cred_len)) {
            return false;
        }
    } else {
        while (cred_len > 0 && is_space(cred[cred_len - 1])) {
            cred_len--;
        }
        if (cred_len == 0) {
            return false;
        }
    }
    uint8_t d[TH_AUTH_DIGEST_LEN];
    th_auth_sha256(cred, cred_len, d);
    /* Every digest is compared, whichever matches: the time says nothing about which. */
    unsigned ok = 0;
    for (size_t i = 0; i < t->n; i++) {
        ok |= (unsigned)th_auth_equal(d, t->digests[i], TH_AUTH_DIGEST_LEN);
    }
    return ok != 0;
}

int th_bearertokenauth_reload(struct th_bearertokenauth *b)
{
    char *text = NULL;
    size_t len = 0;
    struct th_bearer_tokens *t = NULL;
    uint8_t d[TH_AUTH_DIGEST_LEN];
    int ret = th_file_read(b->cfg->filename, TH_BEARERTOKENAUTH_MAX_FILE, &text, &len);
    if (ret != 0) {
        pthread_mutex_lock(&b->lock);
        bool was_failing = b->file_failing;
        b->file_failing = true;
        pthread_mutex_unlock(&b->lock);
        if (!was_failing) {
            th_log_error(&b->base,
                         "cannot read the token file %s: %s; keeping the tokens "
                         "loaded before (if any)",
                         b->cfg->filename, th_strerror(ret));
        }
        return ret;
    }
    th_auth_sha256(text, len, d);
    pthread_mutex_lock(&b->lock);
    bool same = b->tokens && th_auth_equal(d, b->file_digest, sizeof(d));
    bool was_failing = b->file_failing;
    b->file_failing = false;
    pthread_mutex_unlock(&b->lock);
    if (same) {
        if (was_failing) {
            th_log_info(&b->base, "the token file %s is readable again (unchanged)",
                        b->cfg->filename);
        }
        goto out;
    }
    ret = th_bearertokenauth_tokens_parse(text, len, &t);
    if (ret != 0) {
        th_log_error(&b->base, "loading the token file %s: %s", b->cfg->filename, th_strerror(ret));
        goto out;
    }
    size_t n = t->n;
    pthread_mutex_lock(&b->lock);
    bool first = b->tokens == NULL;
    struct th_bearer_tokens *old = b->tokens;
    b->tokens = t;
    memcpy(b->file_digest, d, sizeof(d));
    pthread_mutex_unlock(&b->lock);
    th_bearertokenauth_tokens_free(old);
    t = NULL;
    if (n == 0) {
        th_log_warn(&b->base, "the token file %s holds no token: every request is refused",
                    b->cfg->filename);
    } else {
        th_log_info(&b->base, "%s the token file %s: %zu token%s", first ? "loaded" : "reloaded",
                    b->cfg->filename, n, n == 1 ? "" : "s");
    }
out:
    if (text) {
        OPENSSL_cleanse(text, len); /* it held secrets */
    }
    th_free(text);
    return ret;
}
