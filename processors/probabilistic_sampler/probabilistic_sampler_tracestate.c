/*
 * W3C tracestate parsing and writing for the probabilistic sampler, with the Collector's
 * pkg/sampling rules: the same syntax checks (so the same spans fail with fail_closed), the
 * same `rv`/`th` parsing, and the same output order (`ot` first).
 */
#include <stdio.h>
#include <string.h>

#include "processors/probabilistic_sampler/probabilistic_sampler_tracestate.h"

static bool is_lc(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* lcalpha / DIGIT / "_" / "-" / "*" / "/" */
static bool is_key_char(char c)
{
    return is_lc(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* simple-key = lcalpha 0*255(keychar); multi-tenant-key = (lcalpha/DIGIT) 0*240(keychar) "@"
 * lcalpha 0*13(keychar) */
static bool valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (!at) {
        if (n < 1 || n > 256 || !is_lc(k[0])) {
            return false;
        }
        for (size_t i = 1; i < n; i++) {
            if (!is_key_char(k[i])) {
                return false;
            }
        }
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn < 1 || tn > 241 || sn < 1 || sn > 14 || !(is_lc(k[0]) || is_digit(k[0])) ||
        !is_lc(at[1])) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (i != tn && i != tn + 1 && !is_key_char(k[i])) {
            return false;
        }
    }
    return true;
}

/* value = 0*255(chr) nblk-chr, chr = %x20-2B / %x2D-3C / %x3E-7E (no ',' or '=') */
static bool valid_value(const char *v, size_t n)
{
    if (n < 1 || n > 256 || v[n - 1] == ' ') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') {
            return false;
        }
    }
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (is_digit(c)) {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return false;
        }
        v = (v << 4) | d;
    }
    *out = v;
    return true;
}

/* The `ot` value: ^[a-z][a-z0-9]*:[a-zA-Z0-9._-]*(;[a-z][a-z0-9]*:[a-zA-Z0-9._-]*)*$, at most
 * 256 bytes; rv is 14 hex digits, th 1 to 14. */
static int parse_ot(const char *s, size_t len, struct th__ps_tracestate *ts)
{
    if (len > 256) {
        return TH_EINVAL;
    }
    ts->has_rv = ts->has_th = false;
    ts->n_ot_extra = 0;
    size_t i = 0;
    while (i <= len) {
        const char *m = s + i;
        const char *semi = memchr(m, ';', len - i);
        size_t mlen = semi ? (size_t)(semi - m) : len - i;
        const char *colon = memchr(m, ':', mlen);
        if (!colon || colon == m || !is_lc(m[0])) {
            return TH_EINVAL;
        }
        size_t klen = (size_t)(colon - m), vlen = mlen - klen - 1;
        for (size_t k = 1; k < klen; k++) {
            if (!is_lc(m[k]) && !is_digit(m[k])) {
                return TH_EINVAL;
            }
        }
        const char *v = colon + 1;
        for (size_t k = 0; k < vlen; k++) {
            char c = v[k];
            if (!is_lc(c) && !(c >= 'A' && c <= 'Z') && !is_digit(c) && c != '.' && c != '_' &&
                c != '-') {
                return TH_EINVAL;
            }
        }
        if (klen == 2 && !memcmp(m, "rv", 2)) {
            if (vlen != 14 || !parse_hex(v, vlen, &ts->rv)) {
                return TH_EINVAL;
            }
            memcpy(ts->rv_text, v, vlen);
            ts->rv_text[vlen] = '\0';
            ts->has_rv = true;
        } else if (klen == 2 && !memcmp(m, "th", 2)) {
            uint64_t t;
            if (vlen < 1 || vlen > 14 || !parse_hex(v, vlen, &t)) {
                return TH_EINVAL;
            }
            /* Trailing zeros are omitted in the encoding: shift the digits into 56 bits. */
            ts->th = t << (4 * (14 - vlen));
            memcpy(ts->th_text, v, vlen);
            ts->th_text[vlen] = '\0';
            ts->has_th = true;
        } else {
            if (ts->n_ot_extra == TH_ARRAY_SIZE(ts->ot_extra)) {
                return TH_EINVAL;
            }
            ts->ot_extra[ts->n_ot_extra++] = (struct th__ps_kv){m, v, klen, vlen};
        }
        if (!semi) {
            break;
        }
        i += mlen + 1;
        if (i == len) {
            return TH_EINVAL; /* a trailing ';' leaves an empty member */
        }
    }
    return 0;
}

int th__ps_tracestate_parse(const char *s, size_t len, struct th__ps_tracestate *out)
{
    memset(out, 0, sizeof(*out));
    if (len > 1024) {
        return TH_EINVAL;
    }
    size_t pos = 0, items = 0;
    bool first = true;
    while (pos < len) {
        /* The Collector counts every comma-separated piece, empty ones too, and refuses the
         * 32nd. */
        if (++items >= TH__PS_MAX_MEMBERS) {
            return TH_EINVAL;
        }
        const char *p = s + pos;
        const char *comma = memchr(p, ',', len - pos);
        size_t plen = comma ? (size_t)(comma - p) : len - pos;
        bool last = !comma;
        size_t b = 0, e = plen;
        while (b < e && is_ows(p[b])) {
            b++;
        }
        while (e > b && is_ows(p[e - 1])) {
            e--;
        }
        if (e > b) {
            /* Whitespace may sit around commas only: not before the first member, not after
             * the last. */
            if ((first && b > 0) || (last && e < plen)) {
                return TH_EINVAL;
            }
            const char *m = p + b;
            size_t mlen = e - b;
            const char *eq = memchr(m, '=', mlen);
            if (!eq) {
                return TH_EINVAL;
            }
            size_t klen = (size_t)(eq - m);
            const char *v = eq + 1;
            size_t vlen = mlen - klen - 1;
            if (!valid_key(m, klen) || !valid_value(v, vlen)) {
                return TH_EINVAL;
            }
            if (klen == 2 && !memcmp(m, "ot", 2)) {
                if (parse_ot(v, vlen, out) != 0) {
                    return TH_EINVAL;
                }
            } else {
                out->members[out->n_members++] = (struct th__ps_kv){m, v, klen, vlen};
            }
        }
        first = false;
        pos += plen + (comma ? 1 : 0);
    }
    return 0;
}

void th__ps_tracestate_set_rv(struct th__ps_tracestate *ts, uint64_t rv)
{
    ts->has_rv = true;
    ts->rv = rv & (TH__PS_MAX_ADJUSTED - 1);
    snprintf(ts->rv_text, sizeof(ts->rv_text), "%014llx", (unsigned long long)ts->rv);
}

/* Append n bytes; false when out of room. */
static bool put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > cap) {
        return false;
    }
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return true;
}

size_t th__ps_tracestate_write(const struct th__ps_tracestate *ts, char *out, size_t cap)
{
    size_t len = 0;
    bool ok = put(out, cap, &len, "", 0);
    bool any = false;
    if (ts->has_rv || ts->has_th || ts->n_ot_extra) {
        ok = ok && put(out, cap, &len, "ot=", 3);
        bool sep = false;
        if (ts->has_rv) {
            ok = ok && put(out, cap, &len, "rv:", 3) &&
                 put(out, cap, &len, ts->rv_text, strlen(ts->rv_text));
            sep = true;
        }
        if (ts->has_th) {
            ok = ok && (!sep || put(out, cap, &len, ";", 1)) && put(out, cap, &len, "th:", 3) &&
                 put(out, cap, &len, ts->th_text, strlen(ts->th_text));
            sep = true;
        }
        for (size_t i = 0; i < ts->n_ot_extra; i++) {
            const struct th__ps_kv *kv = &ts->ot_extra[i];
            ok = ok && (!sep || put(out, cap, &len, ";", 1)) &&
                 put(out, cap, &len, kv->key, kv->klen) && put(out, cap, &len, ":", 1) &&
                 put(out, cap, &len, kv->val, kv->vlen);
            sep = true;
        }
        any = true;
    }
    for (size_t i = 0; i < ts->n_members; i++) {
        const struct th__ps_kv *kv = &ts->members[i];
        ok = ok && (!any || put(out, cap, &len, ",", 1)) &&
             put(out, cap, &len, kv->key, kv->klen) && put(out, cap, &len, "=", 1) &&
             put(out, cap, &len, kv->val, kv->vlen);
        any = true;
    }
    return ok ? len : 0;
}
