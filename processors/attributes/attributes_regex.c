/*
 * PCRE2 (with JIT) behind Go-regexp semantics for the attributes and redaction processors:
 * compilation with readable errors, searches under a match limit, and Go's replace-all.
 */
#include <stdio.h>
#include <string.h>

#include "processors/attributes/attributes_regex.h"

/* UTF: Go matches runes. MATCH_INVALID_UTF: a value with invalid UTF-8 is still searched (Go
 * treats each bad byte as U+FFFD) instead of failing. DOLLAR_ENDONLY: Go's `$` does not match
 * before a final newline. NEVER_BACKSLASH_C: \C could split a UTF-8 sequence. */
#define COMPILE_OPTIONS                                                                            \
    (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)

int th__attributes_regex_compile(const char *pattern, pcre2_code **out, char *err, size_t errlen)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, COMPILE_OPTIONS,
                                   &code, &off, NULL);
    if (!re) {
        if (code == PCRE2_ERROR_NOMEMORY) {
            snprintf(err, errlen, "out of memory compiling a regular expression");
            return TH_ENOMEM;
        }
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "invalid regular expression \"%s\": %s at offset %zu", pattern, msg,
                 (size_t)off);
        return TH_ECONFIG;
    }
    /* Without a JIT (an unsupported CPU) the interpreter runs the same pattern, slower. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return 0;
}

uint32_t th__attributes_regex_groups(const pcre2_code *re)
{
    uint32_t n = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
    return n;
}

int th__attributes_matcher_init(struct th__attributes_matcher *m, uint32_t groups)
{
    m->md = pcre2_match_data_create(groups + 1, NULL);
    m->mctx = pcre2_match_context_create(NULL);
    /* 32 KiB grows to 1 MiB: room for deep patterns without a stack overflow in the JIT. */
    m->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (!m->md || !m->mctx || !m->jit) {
        return TH_ENOMEM;
    }
    pcre2_set_match_limit(m->mctx, TH__REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(m->mctx, 10000);
    pcre2_jit_stack_assign(m->mctx, NULL, m->jit);
    return 0;
}

void th__attributes_matcher_deinit(struct th__attributes_matcher *m)
{
    pcre2_jit_stack_free(m->jit);
    pcre2_match_context_free(m->mctx);
    pcre2_match_data_free(m->md);
    m->jit = NULL;
    m->mctx = NULL;
    m->md = NULL;
}

int th__attributes_regex_search(struct th__attributes_matcher *m, const pcre2_code *re,
                                const char *s, size_t len, size_t start)
{
    /* The JIT fast path skips pcre2_match's dispatch; the interpreter covers a pattern the
     * JIT could not compile. */
    int rc = pcre2_jit_match(re, (PCRE2_SPTR)s, len, start, 0, m->md, m->mctx);
    if (rc == PCRE2_ERROR_JIT_BADOPTION) {
        rc = pcre2_match(re, (PCRE2_SPTR)s, len, start, 0, m->md, m->mctx);
    }
    if (rc >= 0) {
        return 1;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
        return TH_E2BIG;
    }
    return TH_EINVAL;
}

/* Width of the character at s[0..n): a valid UTF-8 sequence, else one byte; 0 at the end.
 * (Go's utf8.DecodeRuneInString.) */
static size_t rune_width(const uint8_t *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    uint8_t c = s[0];
    size_t w = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (w == 0 || w > n) {
        return 1;
    }
    uint32_t cp = c & (0x7f >> w);
    for (size_t i = 1; i < w; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 1;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[w] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 1;
    }
    return w;
}

/* The output of a replacement, grown in the arena. */
struct obuf {
    th_arena_t *a;
    char *p;
    size_t len, cap;
};

static int ob_put(struct obuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = th_arena_alloc(b->a, cap);
        if (!p) {
            return TH_ENOMEM;
        }
        if (b->len) {
            memcpy(p, b->p, b->len);
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int th__attributes_regex_replace_all(struct th__attributes_matcher *m, const pcre2_code *re,
                                     th_arena_t *a, const char *s, size_t len,
                                     th__attributes_repl_fn repl, void *ctx, size_t max_out,
                                     const char **out, size_t *outlen, bool *replaced)
{
    struct obuf b = {.a = a};
    size_t last_end = 0; /* end of the most recent match */
    size_t pos = 0;      /* where the next search starts */
    bool any = false;
    while (pos <= len) {
        int rc = th__attributes_regex_search(m, re, s, len, pos);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            break;
        }
        const PCRE2_SIZE *ov = th__attributes_matcher_ovector(m);
        size_t ms = ov[0], me = ov[1];
        if (ms < last_end) {
            ms = last_end; /* \K can report a start before the search point; never re-copy */
        }
        if (ob_put(&b, s + last_end, ms - last_end) != 0) {
            return TH_ENOMEM;
        }
        /* Not for an empty match right after another match (Go's rule: no double
         * replacement for patterns that match both empty and non-empty text). */
        if (me > last_end || ms == 0) {
            char r[TH__REGEX_REPL_MAX];
            size_t rn = repl(ctx, s + ms, me > ms ? me - ms : 0, r);
            if (ob_put(&b, r, rn) != 0) {
                return TH_ENOMEM;
            }
            any = true;
            if (max_out && b.len > max_out) {
                return TH_E2BIG;
            }
        }
        last_end = me > last_end ? me : last_end;
        /* Advance past the match, always by at least one character. */
        size_t w = rune_width((const uint8_t *)s + pos, len - pos);
        if (pos + w > me) {
            pos += w;
        } else if (pos + 1 > me) {
            pos++;
        } else {
            pos = me;
        }
    }
    if (!any) {
        *out = s;
        *outlen = len;
        *replaced = false;
        return 0;
    }
    if (ob_put(&b, s + last_end, len - last_end) != 0) {
        return TH_ENOMEM;
    }
    *out = b.p;
    *outlen = b.len;
    *replaced = true;
    return 0;
}
