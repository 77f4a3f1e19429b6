/*
 * The redaction processor's work, as the Collector's processAttrs does it, for each attribute
 * list on its own: ignored keys pass, keys not allowed are deleted, values matching
 * allowed_values pass, blocked key patterns mask the whole value, blocked_values mask each
 * match (in list order, each on the result of the previous), and the summary attributes are
 * added to the same list. Regexes are compiled once (PCRE2 + JIT); new strings go into the
 * batch's arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "processors/attributes/attributes_regex.h"
#include "processors/attributes/attributes_value.h"
#include "processors/redaction/redaction.h"

#define MASK "****"

/* A sorted copy of a key list, for binary search. */
struct keyset {
    const char **v;
    size_t n;
};

struct relist {
    pcre2_code **re;
    size_t n;
};

struct th_redaction_proc {
    th_arena_t *arena; /* the copies of the settings; regexes are freed with it */
    bool allow_all_keys;
    bool redact_all_types;
    enum th_redaction_summary summary;
    enum th_redaction_hash hash;
    struct keyset allowed, ignored;
    struct relist ignored_re, blocked_keys, blocked_values, allowed_values;
    EVP_MD *md; /* fetched once: an implicit fetch per digest would cost more than the hash */
    EVP_MD_CTX *mdctx; /* reused for every digest (a context per digest costs a malloc) */
    const char *hmac_key;
    size_t hmac_key_len;
    /* One matcher per instance: consume runs on the pipeline's loop thread only, so the
     * PCRE2 match data is never used by two threads at once. */
    struct th__attributes_matcher m;
    struct th_redaction_stats stats;
};

/* The processor's own summary keys are always allowed (makeAllowList). */
static const char *const own_keys[] = {
    "redaction.redacted.keys", "redaction.redacted.count", "redaction.masked.keys",
    "redaction.masked.count",  "redaction.ignored.count",
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keyset_has(const struct keyset *s, const char *k)
{
    return s->n && bsearch(&k, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

static int keyset_build(th_arena_t *a, const th_strlist_t *l, const char *const *extra,
                        size_t nextra, struct keyset *out)
{
    size_t n = l->n + nextra;
    out->v = th_arena_calloc(a, n ? n : 1, sizeof(*out->v));
    if (!out->v) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < l->n; i++) {
        out->v[i] = th_arena_strndup(a, l->v[i], strlen(l->v[i]));
        if (!out->v[i]) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < nextra; i++) {
        out->v[l->n + i] = extra[i];
    }
    out->n = n;
    qsort(out->v, n, sizeof(*out->v), cmp_str);
    return 0;
}

static void free_re(void *re)
{
    pcre2_code_free(re);
}

static int relist_build(th_redaction_proc_t *p, const th_strlist_t *l, const char *name,
                        uint32_t *max_groups, struct relist *out, char *err, size_t errlen)
{
    out->re = th_arena_calloc(p->arena, l->n ? l->n : 1, sizeof(*out->re));
    if (!out->re) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < l->n; i++) {
        char why[768];
        int ret = th__attributes_regex_compile(l->v[i], &out->re[i], why, sizeof(why));
        if (ret != 0) {
            snprintf(err, errlen, "%s::%zu: %s", name, i, why);
            return ret;
        }
        if (th_arena_cleanup_add(p->arena, free_re, out->re[i]) != 0) {
            pcre2_code_free(out->re[i]);
            return TH_ENOMEM;
        }
        *max_groups = TH_MAX(*max_groups, th__attributes_regex_groups(out->re[i]));
        out->n++;
    }
    return 0;
}

int th_redaction_proc_create(const struct th_redaction_settings *s, th_redaction_proc_t **out,
                             char *err, size_t errlen)
{
    int ret = th_redaction_settings_check(s, err, errlen);
    if (ret != 0) {
        return ret;
    }
    th_redaction_proc_t *p = th_calloc(1, sizeof(*p));
    if (!p || !(p->arena = th_arena_create(0, 0))) {
        th_free(p);
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    p->allow_all_keys = s->allow_all_keys;
    p->redact_all_types = s->redact_all_types;
    p->summary = s->summary;
    p->hash = s->hash_function;
    uint32_t groups = 0;
    ret = keyset_build(p->arena, &s->allowed_keys, own_keys, TH_ARRAY_SIZE(own_keys), &p->allowed);
    if (ret == 0) {
        ret = keyset_build(p->arena, &s->ignored_keys, NULL, 0, &p->ignored);
    }
    if (ret == 0) {
        ret = relist_build(p, &s->ignored_key_patterns, "ignored_key_patterns", &groups,
                           &p->ignored_re, err, errlen);
    }
    if (ret == 0) {
        ret = relist_build(p, &s->blocked_key_patterns, "blocked_key_patterns", &groups,
                           &p->blocked_keys, err, errlen);
    }
    if (ret == 0) {
        ret = relist_build(p, &s->blocked_values, "blocked_values", &groups, &p->blocked_values,
                           err, errlen);
    }
    if (ret == 0) {
        ret = relist_build(p, &s->allowed_values, "allowed_values", &groups, &p->allowed_values,
                           err, errlen);
    }
    if (ret == 0) {
        ret = th__attributes_matcher_init(&p->m, groups);
    }
    if (ret == 0 && p->hash != TH_REDACTION_MASK) {
        static const char *const names[] = {
            [TH_REDACTION_MD5] = "MD5",
            [TH_REDACTION_SHA1] = "SHA1",
            [TH_REDACTION_SHA3] = "SHA3-256",
            [TH_REDACTION_HMAC_SHA256] = "SHA256",
            [TH_REDACTION_HMAC_SHA512] = "SHA512",
        };
        p->md = EVP_MD_fetch(NULL, names[p->hash], NULL);
        p->mdctx = EVP_MD_CTX_new();
        if (!p->mdctx) {
            ret = TH_ENOMEM;
        } else if (!p->md) {
            /* MD5 is missing only when OpenSSL runs in FIPS mode. */
            snprintf(err, errlen, "hash_function: %s is not available from OpenSSL",
                     names[p->hash]);
            ret = TH_ECONFIG;
        }
    }
    if (ret == 0 && s->hmac_key) {
        p->hmac_key_len = strlen(s->hmac_key);
        p->hmac_key = th_arena_strndup(p->arena, s->hmac_key, p->hmac_key_len);
        if (!p->hmac_key) {
            ret = TH_ENOMEM;
        }
    }
    if (ret != 0) {
        if (ret == TH_ENOMEM) {
            snprintf(err, errlen, "out of memory");
        }
        th_redaction_proc_destroy(p);
        return ret;
    }
    *out = p;
    return 0;
}

void th_redaction_proc_destroy(th_redaction_proc_t *p)
{
    if (!p) {
        return;
    }
    th__attributes_matcher_deinit(&p->m);
    EVP_MD_CTX_free(p->mdctx);
    EVP_MD_free(p->md);
    if (p->hmac_key) {
        /* The key is a secret: do not leave it in freed memory. */
        OPENSSL_cleanse((void *)p->hmac_key, p->hmac_key_len);
    }
    th_arena_destroy(p->arena);
    th_free(p);
}

struct th_redaction_stats th_redaction_proc_stats(const th_redaction_proc_t *p)
{
    return p->stats;
}

ssize_t th_redaction_proc_empty_match(th_redaction_proc_t *p)
{
    for (size_t i = 0; i < p->blocked_values.n; i++) {
        if (th__attributes_regex_search(&p->m, p->blocked_values.re[i], "", 0, 0) == 1) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* ---- Masking -------------------------------------------------------------------------- */

/* The replacement of one match: "****", or the lowercase hex digest of the matched text. */
static size_t mask_match(void *ctx, const char *match, size_t mlen, char *out)
{
    th_redaction_proc_t *p = ctx;
    if (p->hash == TH_REDACTION_MASK) {
        memcpy(out, MASK, sizeof(MASK) - 1);
        return sizeof(MASK) - 1;
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    bool ok;
    if (p->hash == TH_REDACTION_HMAC_SHA256 || p->hash == TH_REDACTION_HMAC_SHA512) {
        ok = HMAC(p->md, p->hmac_key, (int)p->hmac_key_len, (const uint8_t *)match, mlen, md,
                  &mdlen) != NULL;
    } else {
        ok = EVP_DigestInit_ex2(p->mdctx, p->md, NULL) == 1 &&
             EVP_DigestUpdate(p->mdctx, match, mlen) == 1 &&
             EVP_DigestFinal_ex(p->mdctx, md, &mdlen) == 1;
    }
    if (!ok) {
        /* Never let the text through: fall back to the fixed mask. */
        memcpy(out, MASK, sizeof(MASK) - 1);
        return sizeof(MASK) - 1;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    return 2 * (size_t)mdlen;
}

/* @return 1 when any regex of the list matches, 0 when none does, TH_E2BIG/TH_EINVAL when a
 * search was abandoned (and none matched before it). */
static int any_match(th_redaction_proc_t *p, const struct relist *l, const char *s, size_t len)
{
    int err = 0;
    for (size_t i = 0; i < l->n; i++) {
        int rc = th__attributes_regex_search(&p->m, l->re[i], s, len, 0);
        if (rc == 1) {
            return 1;
        }
        if (rc < 0) {
            __atomic_add_fetch(&p->stats.limit_hits, 1, __ATOMIC_RELAXED);
            err = rc;
        }
    }
    return err;
}

/* The whole value masked: what `(?s).*` replaced with the mask gives, for any text. */
static int mask_whole(th_redaction_proc_t *p, th_arena_t *a, th_otlp_any_t *v, const char *s,
                      size_t len)
{
    char r[TH__REGEX_REPL_MAX];
    size_t n = mask_match(p, s, len, r);
    return th__attributes_value_set_strn(a, v, r, n);
}

/* blocked_values in order, each on the result of the previous. @return 0, TH_ENOMEM; a search
 * abandoned at the limit masks the whole value (fail closed). */
static int mask_values(th_redaction_proc_t *p, th_arena_t *a, th_otlp_any_t *v, const char *s,
                       size_t len, bool *changed)
{
    const char *cur = s;
    size_t curlen = len;
    /* Every character replaced by the longest mask, and a mask between every two: no sane
     * pattern list gets further, and patterns matching the empty string cannot blow up. */
    size_t max_out = (len + 1) * (TH__REGEX_REPL_MAX + 1) + 4096;
    *changed = false;
    for (size_t i = 0; i < p->blocked_values.n; i++) {
        const char *next;
        size_t nextlen;
        bool replaced;
        int rc =
            th__attributes_regex_replace_all(&p->m, p->blocked_values.re[i], a, cur, curlen,
                                             mask_match, p, max_out, &next, &nextlen, &replaced);
        if (rc == TH_ENOMEM) {
            return rc;
        }
        if (rc < 0) {
            __atomic_add_fetch(&p->stats.limit_hits, 1, __ATOMIC_RELAXED);
            *changed = true;
            return mask_whole(p, a, v, s, len);
        }
        if (replaced) {
            cur = next;
            curlen = nextlen;
        }
    }
    if (cur != s && (curlen != len || memcmp(cur, s, len) != 0)) {
        *changed = true;
        th__attributes_value_set_str(v, (char *)cur); /* made in the arena by replace_all */
    }
    return 0;
}

/* ---- Summary attributes (addMetaAttrs) -------------------------------------------------- */

/* Keys joined with ",", sorted, merged with the keys the attribute already lists. */
static int put_keys(th_arena_t *a, struct th__attributes_list l, const char *name,
                    const char **keys, size_t n)
{
    const th_otlp_any_t *old = th__attributes_get(*l.kvs, *l.n, name);
    const char *prev =
        old && old->value_case == TH__ANY_STRING && old->string_value ? old->string_value : "";
    size_t extra = 0;
    if (*prev) {
        extra = 1;
        for (const char *c = prev; *c; c++) {
            extra += *c == ',';
        }
    }
    const char **all = th_arena_alloc(a, (n + extra) * sizeof(*all));
    char *copy = *prev ? th_arena_strndup(a, prev, strlen(prev)) : NULL;
    if (!all || (*prev && !copy)) {
        return TH_ENOMEM;
    }
    memcpy(all, keys, n * sizeof(*all));
    size_t total = n;
    if (copy) {
        for (char *tok = copy;;) {
            char *comma = strchr(tok, ',');
            if (comma) {
                *comma = '\0';
            }
            all[total++] = tok;
            if (!comma) {
                break;
            }
            tok = comma + 1;
        }
    }
    qsort(all, total, sizeof(*all), cmp_str);
    size_t len = 0;
    for (size_t i = 0; i < total; i++) {
        len += strlen(all[i]) + 1;
    }
    char *joined = th_arena_alloc(a, len + 1);
    if (!joined) {
        return TH_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < total; i++) {
        size_t kl = strlen(all[i]);
        if (i) {
            joined[off++] = ',';
        }
        memcpy(joined + off, all[i], kl);
        off += kl;
    }
    joined[off] = '\0';
    th_otlp_any_t *v;
    int ret = th__attributes_put_empty(a, l, name, &v);
    if (ret == 0) {
        th__attributes_value_set_str(v, joined);
    }
    return ret;
}

static int add_summary(th_redaction_proc_t *p, th_arena_t *a, struct th__attributes_list l,
                       const char **keys, size_t n, const char *keys_attr, const char *count_attr)
{
    if (n == 0 || p->summary == TH_REDACTION_SILENT) {
        return 0;
    }
    if (p->summary == TH_REDACTION_DEBUG && keys_attr) {
        int ret = put_keys(a, l, keys_attr, keys, n);
        if (ret != 0) {
            return ret;
        }
    }
    const th_otlp_any_t *old = th__attributes_get(*l.kvs, *l.n, count_attr);
    int64_t count = (int64_t)n + (old && old->value_case == TH__ANY_INT ? old->int_value : 0);
    th_otlp_any_t *v;
    int ret = th__attributes_put_empty(a, l, count_attr, &v);
    if (ret == 0) {
        th__attributes_value_set_int(v, count);
    }
    return ret;
}

/* ---- One attribute list ---------------------------------------------------------------- */

enum outcome { KEEP, IGNORED, REDACTED, ALLOWED, MASKED };

static int redact_one(th_redaction_proc_t *p, th_arena_t *a, th_otlp_kv_t *kv, enum outcome *out)
{
    const char *k = kv->key ? kv->key : "";
    size_t klen = strlen(k);
    *out = KEEP;
    if (keyset_has(&p->ignored, k) || any_match(p, &p->ignored_re, k, klen) == 1) {
        *out = IGNORED;
        return 0;
    }
    if (!p->allow_all_keys && !keyset_has(&p->allowed, k)) {
        *out = REDACTED;
        return 0;
    }
    th_otlp_any_t *v = kv->value;
    const char *s;
    size_t len;
    if (v && v->value_case == TH__ANY_STRING) {
        s = v->string_value ? v->string_value : "";
        len = strlen(s);
    } else if (p->redact_all_types) {
        if (!v && !(v = kv->value = th__attributes_value_dup(a, NULL))) {
            return TH_ENOMEM;
        }
        int ret = th__attributes_value_as_string(a, v, &s, &len);
        if (ret != 0) {
            return ret;
        }
    } else {
        return 0; /* only string values are redacted by default */
    }
    if (any_match(p, &p->allowed_values, s, len) == 1) {
        *out = ALLOWED;
        return 0;
    }
    /* An abandoned search counts as a match here: when in doubt, mask. */
    if (any_match(p, &p->blocked_keys, k, klen) != 0) {
        *out = MASKED;
        return mask_whole(p, a, v, s, len);
    }
    bool changed;
    int ret = mask_values(p, a, v, s, len, &changed);
    if (ret == 0 && changed) {
        *out = MASKED;
    }
    return ret;
}

int th_redaction_proc_attrs(th_redaction_proc_t *p, th_arena_t *a, th_otlp_kv_t ***kvs, size_t *n)
{
    if (*n == 0) {
        return 0;
    }
    struct th__attributes_list l = {kvs, n};
    /* Key names for the debug summary; only the counts otherwise. The keys stay valid after
     * their attribute leaves the list: they live in the arena. */
    bool names = p->summary == TH_REDACTION_DEBUG;
    size_t cap = names ? *n : 0;
    const char **redacted = names ? th_arena_alloc(a, cap * sizeof(char *)) : NULL;
    const char **masked = names ? th_arena_alloc(a, cap * sizeof(char *)) : NULL;
    const char **allowed = names ? th_arena_alloc(a, cap * sizeof(char *)) : NULL;
    if (names && (!redacted || !masked || !allowed)) {
        return TH_ENOMEM;
    }
    size_t nred = 0, nmask = 0, nallow = 0, nign = 0;
    for (size_t i = 0; i < *n;) {
        th_otlp_kv_t *kv = (*kvs)[i];
        enum outcome o;
        int ret = redact_one(p, a, kv, &o);
        if (ret != 0) {
            return ret;
        }
        const char *k = kv->key ? kv->key : "";
        switch (o) {
        case REDACTED:
            if (names) {
                redacted[nred] = k;
            }
            nred++;
            /* Deleting now or after the loop gives the same list: nothing below depends on
             * a redacted attribute. */
            th__attributes_remove_at(*kvs, n, i);
            continue;
        case MASKED:
            if (names) {
                masked[nmask] = k;
            }
            nmask++;
            break;
        case ALLOWED:
            if (names) {
                allowed[nallow] = k;
            }
            nallow++;
            break;
        case IGNORED:
            nign++;
            break;
        case KEEP:
            break;
        }
        i++;
    }
    __atomic_add_fetch(&p->stats.redacted, nred, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->stats.masked, nmask, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->stats.allowed, nallow, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->stats.ignored, nign, __ATOMIC_RELAXED);
    int ret =
        add_summary(p, a, l, redacted, nred, "redaction.redacted.keys", "redaction.redacted.count");
    if (ret == 0) {
        ret =
            add_summary(p, a, l, masked, nmask, "redaction.masked.keys", "redaction.masked.count");
    }
    if (ret == 0) {
        ret = add_summary(p, a, l, allowed, nallow, "redaction.allowed.keys",
                          "redaction.allowed.count");
    }
    if (ret == 0) {
        ret = add_summary(p, a, l, NULL, nign, NULL, "redaction.ignored.count");
    }
    return ret;
}

int th_redaction_proc_traces(th_redaction_proc_t *p, th_batch_t *b)
{
    th_arena_t *a = b->arena;
    th_otlp_request_t *req = b->req;
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (rs->resource) {
            ret = th_redaction_proc_attrs(p, a, &rs->resource->attributes,
                                          &rs->resource->n_attributes);
        }
        for (size_t j = 0; ret == 0 && j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            if (ss->scope) {
                ret =
                    th_redaction_proc_attrs(p, a, &ss->scope->attributes, &ss->scope->n_attributes);
            }
            for (size_t k = 0; ret == 0 && k < ss->n_spans; k++) {
                th_otlp_span_t *span = ss->spans[k];
                ret = th_redaction_proc_attrs(p, a, &span->attributes, &span->n_attributes);
                for (size_t e = 0; ret == 0 && e < span->n_events; e++) {
                    ret = th_redaction_proc_attrs(p, a, &span->events[e]->attributes,
                                                  &span->events[e]->n_attributes);
                }
                for (size_t l = 0; ret == 0 && l < span->n_links; l++) {
                    ret = th_redaction_proc_attrs(p, a, &span->links[l]->attributes,
                                                  &span->links[l]->n_attributes);
                }
            }
        }
    }
    return ret;
}
