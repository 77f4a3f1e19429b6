/*
 * The Jaeger query API's JSON writer: Go encoding/json compatible escaping, number
 * formatting and indentation (see json_writer.h for why those matter).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui-api/jaeger/json_writer.h"

static const char hexdigits[] = "0123456789abcdef";

void th_jaeger_json_init(th_jaeger_json_t *w, th_buf_t *out, int indent)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->indent = indent;
}

void th_jaeger_json_set_limit(th_jaeger_json_t *w, size_t max_len)
{
    w->max_len = max_len;
}

/* The cap is checked at every write: escaping can only add a bounded amount past it. */
static bool over(th_jaeger_json_t *w)
{
    if (w->err == 0 && w->max_len && w->out->len > w->max_len) {
        w->err = TH_E2BIG;
    }
    return w->err != 0;
}

/* Append without a call when there is room: a search answer is thousands of short tokens. */
static inline int append(th_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    if (b->cap - b->len >= n) {
        memcpy(b->ptr + b->len, p, n);
        b->len += n;
        return 0;
    }
    return th_buf_append(b, p, n);
}

static void put(th_jaeger_json_t *w, const void *p, size_t n)
{
    if (!over(w)) {
        w->err = append(w->out, p, n);
    }
}

static void newline_indent(th_jaeger_json_t *w, int depth)
{
    if (w->err || w->indent <= 0) {
        return;
    }
    size_t n = 1 + (size_t)depth * (size_t)w->indent;
    if ((w->err = th_buf_reserve(w->out, n)) != 0) {
        return;
    }
    w->out->ptr[w->out->len] = '\n';
    memset(w->out->ptr + w->out->len + 1, ' ', n - 1);
    w->out->len += n;
}

/* Everything a value or key needs before its own text: the comma and, when indenting, the
 * line break. A value right after its key needs neither. */
static void before_item(th_jaeger_json_t *w)
{
    if (w->err) {
        return;
    }
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth == 0) {
        return;
    }
    if (w->count[w->depth - 1]++ > 0) {
        put(w, ",", 1);
    }
    newline_indent(w, w->depth);
}

static void open(th_jaeger_json_t *w, char c)
{
    before_item(w);
    if (w->err) {
        return;
    }
    if (w->depth >= TH_JAEGER_JSON_MAX_DEPTH) {
        w->err = TH_E2BIG;
        return;
    }
    put(w, &c, 1);
    w->count[w->depth++] = 0;
}

static void close_(th_jaeger_json_t *w, char c)
{
    if (w->err) {
        return;
    }
    if (w->depth == 0 || w->after_key) {
        w->err = TH_EINVAL;
        return;
    }
    w->depth--;
    if (w->count[w->depth] > 0) {
        newline_indent(w, w->depth);
    }
    put(w, &c, 1);
}

void th_jaeger_json_obj_begin(th_jaeger_json_t *w)
{
    open(w, '{');
}

void th_jaeger_json_obj_end(th_jaeger_json_t *w)
{
    close_(w, '}');
}

void th_jaeger_json_arr_begin(th_jaeger_json_t *w)
{
    open(w, '[');
}

void th_jaeger_json_arr_end(th_jaeger_json_t *w)
{
    close_(w, ']');
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one.
 * The ranges are those of RFC 3629, so overlongs and surrogates count as invalid, as in Go. */
static size_t utf8_seq(const uint8_t *p, size_t avail)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

/* Bytes that end a run copied as is: control characters, the quote and backslash, the
 * three Go escapes for HTML (<, >, &) and everything from 0x80 (checked as UTF-8). */
static const uint8_t special[256] = {
    [0x00 ... 0x1F] = 1, ['"'] = 1, ['\\'] = 1,          ['<'] = 1,
    ['>'] = 1,           ['&'] = 1, [0x80 ... 0xFF] = 1,
};

int th_jaeger_json_escape(th_buf_t *out, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, start = 0;
    int rc = 0;
    while (rc == 0) {
        /* the common case: a run of plain ASCII, copied in one go below */
        while (i < len && !special[p[i]]) {
            i++;
        }
        if (i >= len) {
            break;
        }
        uint8_t c = p[i];
        const char *esc = NULL;
        size_t esc_len = 2;
        char tmp[6];
        size_t adv = 1;
        if (c >= 0x80) {
            adv = utf8_seq(p + i, len - i);
            if (adv == 0) {
                esc = "\\ufffd";
                esc_len = 6;
                adv = 1;
            } else if (adv == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                /* U+2028 and U+2029 break JavaScript string literals; Go escapes them. */
                esc = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
                esc_len = 6;
            } else {
                i += adv; /* valid UTF-8 stays as it is */
                continue;
            }
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c == '\b') {
            esc = "\\b";
        } else if (c == '\f') {
            esc = "\\f";
        } else {
            /* other control characters, <, > and & */
            tmp[0] = '\\';
            tmp[1] = 'u';
            tmp[2] = '0';
            tmp[3] = '0';
            tmp[4] = hexdigits[c >> 4];
            tmp[5] = hexdigits[c & 0xF];
            esc = tmp;
            esc_len = 6;
        }
        rc = append(out, p + start, i - start);
        if (rc == 0) {
            rc = append(out, esc, esc_len);
        }
        i += adv;
        start = i;
    }
    if (rc == 0) {
        rc = append(out, p + start, len - start);
    }
    return rc;
}

/* A quoted, escaped string and then @p tail (a key's colon, or nothing): one limit check
 * and, for plain text, one copy. A search answer is mostly short strings. */
static void put_string(th_jaeger_json_t *w, const char *s, size_t len, const char *tail,
                       size_t tail_len)
{
    if (over(w)) {
        return;
    }
    th_buf_t *b = w->out;
    if ((w->err = th_buf_reserve(b, len + 2 + tail_len)) != 0) {
        return;
    }
    b->ptr[b->len++] = '"';
    if ((w->err = th_jaeger_json_escape(b, s, len)) == 0 && (w->err = append(b, "\"", 1)) == 0) {
        w->err = append(b, tail, tail_len);
    }
}

void th_jaeger_json_key(th_jaeger_json_t *w, const char *k, size_t len)
{
    if (w->err) {
        return;
    }
    if (w->depth == 0 || w->after_key) {
        w->err = TH_EINVAL;
        return;
    }
    before_item(w);
    put_string(w, k, len, w->indent > 0 ? ": " : ":", w->indent > 0 ? 2 : 1);
    w->after_key = true;
}

void th_jaeger_json_keyz(th_jaeger_json_t *w, const char *k)
{
    th_jaeger_json_key(w, k, strlen(k));
}

void th_jaeger_json_str(th_jaeger_json_t *w, const char *s, size_t len)
{
    before_item(w);
    put_string(w, s, len, NULL, 0);
}

void th_jaeger_json_strz(th_jaeger_json_t *w, const char *s)
{
    th_jaeger_json_str(w, s ? s : "", s ? strlen(s) : 0);
}

void th_jaeger_json_int(th_jaeger_json_t *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    before_item(w);
    put(w, tmp, (size_t)n);
}

void th_jaeger_json_uint(th_jaeger_json_t *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    before_item(w);
    put(w, tmp, (size_t)n);
}

/* Shortest round-trip digits of a finite non-zero |v|: the fewest significant digits whose
 * correctly rounded decimal reads back as v. Writes the digits (no dot) and returns the
 * decimal exponent of the first digit. */
static int shortest_digits(double v, char *digits, size_t *ndigits)
{
    char tmp[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
        if (strtod(tmp, NULL) == v || prec == 16) {
            break;
        }
    }
    /* tmp is d[.ddd]e±XX */
    size_t n = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits[n++] = *p;
        }
    }
    int exp = atoi(p + 1);
    /* trailing zeros carry no information */
    while (n > 1 && digits[n - 1] == '0') {
        n--;
    }
    *ndigits = n;
    return exp;
}

size_t th_jaeger_format_double(double v, char *out)
{
    if (isnan(v) || isinf(v)) {
        return 0;
    }
    size_t o = 0;
    if (signbit(v)) {
        out[o++] = '-';
        v = -v;
    }
    if (v == 0) {
        out[o++] = '0';
        out[o] = '\0';
        return o;
    }
    char d[24];
    size_t nd;
    int exp = shortest_digits(v, d, &nd);
    if (v < 1e-6 || v >= 1e21) {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, nd - 1);
            o += nd - 1;
        }
        /* Go writes at least two exponent digits, then encoding/json trims "e-07" to "e-7". */
        int n = snprintf(out + o, 8, "e%c%s%d", exp < 0 ? '-' : '+',
                         (exp >= 0 && exp < 10) ? "0" : "", exp < 0 ? -exp : exp);
        o += (size_t)n;
        out[o] = '\0';
        return o;
    }
    if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > exp; i--) {
            out[o++] = '0';
        }
        memcpy(out + o, d, nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp || (size_t)i < nd; i++) {
            if (i == exp + 1) {
                out[o++] = '.';
            }
            out[o++] = (size_t)i < nd ? d[i] : '0';
        }
    }
    out[o] = '\0';
    return o;
}

void th_jaeger_json_double(th_jaeger_json_t *w, double v)
{
    char tmp[40];
    size_t n = th_jaeger_format_double(v, tmp);
    if (n == 0) {
        th_jaeger_json_strz(w, isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"));
        return;
    }
    before_item(w);
    put(w, tmp, n);
}

void th_jaeger_json_bool(th_jaeger_json_t *w, bool v)
{
    before_item(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void th_jaeger_json_null(th_jaeger_json_t *w)
{
    before_item(w);
    put(w, "null", 4);
}

void th_jaeger_json_base64(th_jaeger_json_t *w, const uint8_t *p, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    before_item(w);
    if (w->err) {
        return;
    }
    size_t n = (len + 2) / 3 * 4 + 2;
    if ((w->err = th_buf_reserve(w->out, n)) != 0) {
        return;
    }
    char *o = (char *)w->out->ptr + w->out->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tbl[x >> 18];
        *o++ = tbl[(x >> 12) & 63];
        *o++ = tbl[(x >> 6) & 63];
        *o++ = tbl[x & 63];
    }
    if (len - i == 1) {
        uint32_t x = (uint32_t)p[i] << 16;
        *o++ = tbl[x >> 18];
        *o++ = tbl[(x >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t x = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = tbl[x >> 18];
        *o++ = tbl[(x >> 12) & 63];
        *o++ = tbl[(x >> 6) & 63];
        *o++ = '=';
    }
    *o++ = '"';
    w->out->len = (size_t)(o - (char *)w->out->ptr);
}

void th_jaeger_json_raw(th_jaeger_json_t *w, const void *json, size_t len)
{
    before_item(w);
    put(w, json, len);
}

int th_jaeger_json_finish(th_jaeger_json_t *w)
{
    if (w->err) {
        return w->err;
    }
    if (w->depth != 0 || w->after_key) {
        return TH_EINVAL;
    }
    return 0;
}
