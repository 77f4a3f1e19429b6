/*
 * ${...} substitution in config values, the Collector's confmap rules (otelcol-config.md §2):
 * ${env:NAME}, ${NAME}, ${env:NAME:-default}, $$ escaping and nested references resolved
 * inside-out. Only the env scheme exists here; file:, http: and yaml: are rejected with a
 * message rather than silently kept as text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th/config.h"
#include "th/log.h"

/* Nesting of ${ inside ${ and the size of one expanded value: generous for real configs,
 * small enough that a hostile environment or file cannot make us build huge strings. */
#define MAX_NESTING 16
#define MAX_OUTPUT  (1u << 20)

struct buf {
    char *p;
    size_t n;
    size_t cap;
};

struct ectx {
    char *err;
    size_t errlen;
};

static int buf_put(struct buf *b, const char *s, size_t len, struct ectx *e)
{
    if (b->n + len > MAX_OUTPUT) {
        snprintf(e->err, e->errlen, "expanded value is longer than %u bytes", MAX_OUTPUT);
        return TH_ECONFIG;
    }
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + len + 1) {
            cap *= 2;
        }
        char *p = th_realloc(b->p, cap);
        if (!p) {
            snprintf(e->err, e->errlen, "out of memory");
            return TH_ENOMEM;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

/* The index of the '}' closing the reference whose body starts at s[i], counting nested
 * "${"; or -1 when it is never closed (then the "${" is plain text, as in the Collector). */
static long find_close(const char *s, size_t len, size_t i)
{
    int depth = 1;
    while (i < len) {
        if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            depth++;
            i += 2;
            continue;
        }
        if (s[i] == '}' && --depth == 0) {
            return (long)i;
        }
        i++;
    }
    return -1;
}

static bool is_env_name(const char *s, size_t len)
{
    if (len == 0 ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return true;
}

/* Length of a URI scheme at the start of s ([A-Za-z][A-Za-z0-9+.-]+, followed by ':'), or 0. */
static size_t scheme_len(const char *s, size_t len)
{
    if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return 0;
    }
    size_t i = 1;
    while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                       (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '.' || s[i] == '-')) {
        i++;
    }
    return i >= 2 && i < len && s[i] == ':' ? i : 0;
}

static int expand(const char *s, size_t len, struct buf *out, int depth, struct ectx *e);

/*
 * Resolve one reference whose body (between "${" and "}") is s[0..len): expand nested
 * references in the body first, then look the variable up. Appends the value to out and
 * sets *unset when the variable is unset and has no default.
 */
static int resolve(const char *s, size_t len, struct buf *out, int depth, bool *unset,
                   struct ectx *e)
{
    struct buf body = {0};
    int ret = expand(s, len, &body, depth + 1, e);
    if (ret != 0) {
        goto out;
    }
    const char *b = body.p ? body.p : "";
    size_t blen = body.n;
    ret = TH_ECONFIG;
    if (memchr(b, '$', blen)) {
        /* The Collector forbids '$' in a reference (no escaping inside one). */
        snprintf(e->err, e->errlen,
                 "the reference \"${%.*s}\" contains unsupported characters ('$')",
                 (int)TH_MIN(blen, 200), b);
        goto out;
    }
    /* "scheme:opaque", unless what follows the first ':' is "-": then it is the default
     * scheme's "NAME:-default" form. */
    const char *name = b;
    size_t sl = scheme_len(b, blen);
    if (sl && !(sl + 1 < blen && b[sl + 1] == '-')) {
        if (sl != 3 || strncmp(b, "env", 3) != 0) {
            snprintf(e->err, e->errlen,
                     "unsupported scheme \"%.*s\" in \"${%.*s}\" (only env: is supported)", (int)sl,
                     b, (int)TH_MIN(blen, 200), b);
            goto out;
        }
        name = b + sl + 1;
    }
    size_t nlen = blen - (size_t)(name - b);
    const char *def = NULL;
    size_t deflen = 0;
    const char *sep = strstr(name, ":-");
    if (sep) {
        def = sep + 2;
        deflen = nlen - (size_t)(def - name);
        nlen = (size_t)(sep - name);
    }
    if (!is_env_name(name, nlen)) {
        snprintf(e->err, e->errlen, "environment variable \"%.*s\" has invalid name",
                 (int)TH_MIN(nlen, 200), name);
        goto out;
    }
    ((char *)name)[nlen] = '\0'; /* body is our own buffer */
    const char *val = getenv(name);
    if (val) {
        ret = buf_put(out, val, strlen(val), e);
    } else if (def) {
        ret = buf_put(out, def, deflen, e);
    } else {
        th_log_warn(NULL, "configuration references unset environment variable \"%s\"", name);
        *unset = true;
        ret = 0;
    }
out:
    th_free(body.p);
    return ret;
}

/* Expand s[0..len) into out: "$$" is one '$', "${...}" a reference, anything else itself. */
static int expand(const char *s, size_t len, struct buf *out, int depth, struct ectx *e)
{
    if (depth > MAX_NESTING) {
        snprintf(e->err, e->errlen, "references nested more than %d deep", MAX_NESTING);
        return TH_ECONFIG;
    }
    size_t i = 0;
    size_t lit = 0; /* start of the pending literal run */
    while (i < len) {
        if (s[i] != '$' || i + 1 >= len) {
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            int ret = buf_put(out, s + lit, i + 1 - lit, e);
            if (ret != 0) {
                return ret;
            }
            i += 2;
            lit = i;
            continue;
        }
        if (s[i + 1] != '{') {
            i++;
            continue;
        }
        long close = find_close(s, len, i + 2);
        if (close < 0) {
            i += 2;
            continue;
        }
        int ret = buf_put(out, s + lit, i - lit, e);
        if (ret != 0) {
            return ret;
        }
        bool unset = false;
        ret = resolve(s + i + 2, (size_t)close - i - 2, out, depth, &unset, e);
        if (ret != 0) {
            return ret;
        }
        i = (size_t)close + 1;
        lit = i;
    }
    return buf_put(out, s + lit, len - lit, e);
}

int th_config_expand(const char *in, th_arena_t *arena, const char **out, bool *whole,
                     bool *is_null, char *err, size_t errlen)
{
    struct ectx e = {err, errlen};
    struct buf b = {0};
    size_t len = strlen(in);
    bool w = false;
    bool unset = false;
    int ret;
    if (len >= 3 && in[0] == '$' && in[1] == '{' && find_close(in, len, 2) == (long)len - 1) {
        /* One reference and nothing else: the caller types the value like YAML. */
        w = true;
        ret = resolve(in + 2, len - 3, &b, 0, &unset, &e);
    } else {
        ret = expand(in, len, &b, 0, &e);
    }
    if (ret != 0) {
        goto out;
    }
    char *res = th_arena_strndup(arena, b.p ? b.p : "", b.n);
    if (!res) {
        snprintf(err, errlen, "out of memory");
        ret = TH_ENOMEM;
        goto out;
    }
    *out = res;
    if (whole) {
        *whole = w;
    }
    if (is_null) {
        *is_null = w && unset;
    }
out:
    th_free(b.p);
    return ret;
}
