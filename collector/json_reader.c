/*
 * The pull JSON tokenizer: a state machine over the input with a bit stack of open
 * containers (object or array) instead of recursion. Strings are scanned eight bytes at a
 * time while they hold nothing that needs attention (quote, backslash, control character,
 * non-ASCII), which is most of an OTLP payload.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "collector/json_reader.h"

enum state {
    ST_VALUE,       /* a value must follow (top level, after ':' or after ',' in an array) */
    ST_FIRST_KEY,   /* just after '{': a key or '}' */
    ST_KEY,         /* after ',' in an object: a key */
    ST_FIRST_VALUE, /* just after '[': a value or ']' */
    ST_AFTER,       /* after a value: ',' or the closer, or the end at top level */
    ST_DONE,        /* END was returned */
    ST_ERROR,
};

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

void th_json_reader_init(th_json_reader_t *r, const uint8_t *buf, size_t len, uint32_t max_depth)
{
    r->buf = buf;
    r->p = buf;
    r->end = buf + len;
    if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf) {
        r->p += 3;
    }
    r->depth = 0;
    r->max_depth = max_depth > TH_JSON_MAX_DEPTH ? TH_JSON_MAX_DEPTH : max_depth;
    r->state = ST_VALUE;
    r->err = 0;
    r->errmsg = NULL;
    r->erroff = 0;
}

static int fail(th_json_reader_t *r, const uint8_t *at, int err, const char *msg)
{
    r->state = ST_ERROR;
    r->err = err;
    r->errmsg = msg;
    r->erroff = (size_t)(at - r->buf);
    return err;
}

static inline bool in_object(const th_json_reader_t *r)
{
    uint32_t d = r->depth - 1;
    return (r->kinds[d / 64] >> (d % 64)) & 1;
}

static inline const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    /* Compact JSON has none: one comparison settles the usual case. */
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    return p;
}

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Read 4 hex digits at p (bounds checked by the caller). @return the value or -1. */
static inline int32_t hex4(const uint8_t *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) {
            return -1;
        }
        v = (v << 4) | h;
    }
    return v;
}

/*
 * Length of the well-formed UTF-8 sequence at p whose lead byte is >= 0x80, or 0 when it is
 * not well formed (RFC 3629 table: no overlongs, no surrogates, nothing above U+10FFFF).
 */
static inline size_t utf8_seq(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xc2 && c <= 0xdf) {
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)) {
            return 0; /* overlong, or a surrogate */
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)) {
            return 0; /* overlong, or above U+10FFFF */
        }
        return 4;
    }
    return 0;
}

/* 0x80 in each byte of @p v that is zero, exactly (no false positives from borrows). */
static inline uint64_t zero_bytes(uint64_t v)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
    return ~(((v & low7) + low7) | v | low7);
}

/* 0x80 in each byte that needs attention in a string: '"', '\\', < 0x20, or >= 0x80. */
static inline uint64_t special_bytes(uint64_t v)
{
    return zero_bytes(v ^ (ONES * '"')) | zero_bytes(v ^ (ONES * '\\')) |
           zero_bytes(v & (ONES * 0xe0)) | (v & HIGHS);
}

/*
 * Scan the rest of a string from @p p (its first byte at @p start, the opening quote at
 * start[-1]); fill the token. The general case: escapes, non-ASCII, errors.
 */
static int __attribute__((noinline))
scan_string_slow(th_json_reader_t *r, const uint8_t *start, const uint8_t *p, th_json_tok_t *t)
{
    const uint8_t *end = r->end;
    bool escaped = false;
    for (;;) {
        /* Jump to the first byte that needs attention, 16 or 8 bytes at a time. */
#if defined(__SSE2__)
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            /* Signed compare: bytes >= 0x80 are negative, so "< 0x20" also catches them. */
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                     _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            unsigned bits = (unsigned)_mm_movemask_epi8(m);
            if (bits) {
                p += __builtin_ctz(bits);
                goto found;
            }
            p += 16;
        }
#endif
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            uint64_t sp = special_bytes(v);
            if (sp) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                p += __builtin_ctzll(sp) >> 3;
#endif
                break;
            }
            p += 8;
        }
#if defined(__SSE2__)
    found:
#endif
        if (p >= end) {
            return fail(r, start - 1, TH_EDECODE, "unterminated string");
        }
        uint8_t c = *p;
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            escaped = true;
            if (end - p < 2) {
                return fail(r, p, TH_EDECODE, "unterminated string");
            }
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                continue;
            case 'u':
                break;
            default:
                return fail(r, p, TH_EDECODE, "invalid escape in string");
            }
            if (end - p < 6) {
                return fail(r, p, TH_EDECODE, "truncated \\u escape");
            }
            int32_t cp = hex4(p + 2);
            if (cp < 0) {
                return fail(r, p, TH_EDECODE, "invalid \\u escape");
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                return fail(r, p, TH_EDECODE, "unpaired low surrogate in \\u escape");
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
                    return fail(r, p, TH_EDECODE, "unpaired high surrogate in \\u escape");
                }
                int32_t lo = hex4(p + 8);
                if (lo < 0xdc00 || lo > 0xdfff) {
                    return fail(r, p, TH_EDECODE, "unpaired high surrogate in \\u escape");
                }
                p += 12;
            } else {
                p += 6;
            }
            continue;
        }
        if (c < 0x20) {
            return fail(r, p, TH_EDECODE, "control character in string");
        }
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (!n) {
                return fail(r, p, TH_EDECODE, "invalid UTF-8 in string");
            }
            p += n;
            continue;
        }
        p++;
    }
    t->ptr = start;
    t->len = (size_t)(p - start);
    t->escaped = escaped;
    r->p = p + 1;
    return 0;
}

/*
 * Scan a string whose opening quote is at p[-1]; fill the token. Inline fast path: a string
 * of plain ASCII whose closing quote is within 16-byte reach of the scan, which is most
 * keys and values; anything else continues in scan_string_slow.
 */
static inline int scan_string(th_json_reader_t *r, const uint8_t *p, th_json_tok_t *t)
{
    const uint8_t *start = p;
#if defined(__SSE2__)
    const uint8_t *end = r->end;
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                              _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                 _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
        unsigned bits = (unsigned)_mm_movemask_epi8(m);
        if (bits) {
            p += __builtin_ctz(bits);
            if (*p != '"') {
                break;
            }
            t->ptr = start;
            t->len = (size_t)(p - start);
            t->escaped = false;
            r->p = p + 1;
            return 0;
        }
        p += 16;
    }
#endif
    return scan_string_slow(r, start, p, t);
}

static inline bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Scan a number starting at p (a '-' or a digit), by the RFC 8259 grammar. */
static int scan_number(th_json_reader_t *r, const uint8_t *p, th_json_tok_t *t)
{
    const uint8_t *end = r->end;
    const uint8_t *start = p;
    if (*p == '-') {
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return fail(r, start, TH_EDECODE, "invalid number");
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            return fail(r, start, TH_EDECODE, "leading zero in number");
        }
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            return fail(r, start, TH_EDECODE, "invalid number: digits must follow '.'");
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return fail(r, start, TH_EDECODE, "invalid number: digits must follow the exponent");
        }
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    t->type = TH_JSON_NUMBER;
    t->ptr = start;
    t->len = (size_t)(p - start);
    t->escaped = false;
    r->p = p;
    return 0;
}

static int push(th_json_reader_t *r, const uint8_t *at, bool object)
{
    if (r->depth >= r->max_depth) {
        return fail(r, at, TH_E2BIG, "nesting too deep");
    }
    uint32_t d = r->depth++;
    if (object) {
        r->kinds[d / 64] |= 1ull << (d % 64);
    } else {
        r->kinds[d / 64] &= ~(1ull << (d % 64));
    }
    return 0;
}

static int close_container(th_json_reader_t *r, const uint8_t *p, th_json_tok_t *t, bool object)
{
    r->depth--;
    r->state = ST_AFTER;
    r->p = p + 1;
    t->type = object ? TH_JSON_OBJ_END : TH_JSON_ARR_END;
    t->ptr = p;
    t->len = 1;
    return 0;
}

/* Read a value starting at p (whitespace skipped). */
static int read_value(th_json_reader_t *r, const uint8_t *p, th_json_tok_t *t)
{
    const uint8_t *end = r->end;
    t->escaped = false;
    if (p >= end) {
        return fail(r, p, TH_EDECODE, "unexpected end of input, expected a value");
    }
    t->ptr = p;
    t->len = 1;
    switch (*p) {
    case '{':
        if (push(r, p, true)) {
            return r->err;
        }
        r->state = ST_FIRST_KEY;
        r->p = p + 1;
        t->type = TH_JSON_OBJ_BEGIN;
        return 0;
    case '[':
        if (push(r, p, false)) {
            return r->err;
        }
        r->state = ST_FIRST_VALUE;
        r->p = p + 1;
        t->type = TH_JSON_ARR_BEGIN;
        return 0;
    case '"':
        if (scan_string(r, p + 1, t)) {
            return r->err;
        }
        t->type = TH_JSON_STRING;
        r->state = ST_AFTER;
        return 0;
    case 't':
        if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            t->type = TH_JSON_TRUE;
            t->len = 4;
            break;
        }
        return fail(r, p, TH_EDECODE, "invalid literal");
    case 'f':
        if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            t->type = TH_JSON_FALSE;
            t->len = 5;
            break;
        }
        return fail(r, p, TH_EDECODE, "invalid literal");
    case 'n':
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            t->type = TH_JSON_NULL;
            t->len = 4;
            break;
        }
        return fail(r, p, TH_EDECODE, "invalid literal");
    default:
        if (*p == '-' || is_digit(*p)) {
            if (scan_number(r, p, t)) {
                return r->err;
            }
            r->state = ST_AFTER;
            return 0;
        }
        return fail(r, p, TH_EDECODE, "unexpected character, expected a value");
    }
    r->p = p + t->len;
    r->state = ST_AFTER;
    return 0;
}

/* Read a key and the ':' after it; p is at the opening quote. */
static int read_key(th_json_reader_t *r, const uint8_t *p, th_json_tok_t *t)
{
    if (p >= r->end || *p != '"') {
        return fail(r, p, TH_EDECODE, "expected a string key");
    }
    if (scan_string(r, p + 1, t)) {
        return r->err;
    }
    const uint8_t *q = skip_ws(r->p, r->end);
    if (q >= r->end || *q != ':') {
        return fail(r, q, TH_EDECODE, "expected ':' after an object key");
    }
    r->p = q + 1;
    r->state = ST_VALUE;
    t->type = TH_JSON_KEY;
    return 0;
}

int th_json_next(th_json_reader_t *r, th_json_tok_t *t)
{
    if (r->err) {
        t->type = TH_JSON_NONE;
        return r->err;
    }
    const uint8_t *p = skip_ws(r->p, r->end);
    switch (r->state) {
    case ST_VALUE:
        return read_value(r, p, t);
    case ST_FIRST_KEY:
        if (p < r->end && *p == '}') {
            return close_container(r, p, t, true);
        }
        return read_key(r, p, t);
    case ST_KEY:
        return read_key(r, p, t);
    case ST_FIRST_VALUE:
        if (p < r->end && *p == ']') {
            return close_container(r, p, t, false);
        }
        return read_value(r, p, t);
    case ST_AFTER:
        if (r->depth == 0) {
            if (p < r->end) {
                return fail(r, p, TH_EDECODE, "unexpected data after the JSON value");
            }
            r->state = ST_DONE;
            r->p = p;
            t->type = TH_JSON_END;
            t->ptr = p;
            t->len = 0;
            return 0;
        }
        if (p >= r->end) {
            return fail(r, p, TH_EDECODE, "unexpected end of input");
        }
        if (in_object(r)) {
            if (*p == '}') {
                return close_container(r, p, t, true);
            }
            if (*p != ',') {
                return fail(r, p, TH_EDECODE, "expected ',' or '}' in object");
            }
            return read_key(r, skip_ws(p + 1, r->end), t);
        }
        if (*p == ']') {
            return close_container(r, p, t, false);
        }
        if (*p != ',') {
            return fail(r, p, TH_EDECODE, "expected ',' or ']' in array");
        }
        return read_value(r, skip_ws(p + 1, r->end), t);
    case ST_DONE:
        t->type = TH_JSON_END;
        t->ptr = r->p;
        t->len = 0;
        return 0;
    default:
        t->type = TH_JSON_NONE;
        return r->err ? r->err : TH_EDECODE;
    }
}

int th_json_skip(th_json_reader_t *r, const th_json_tok_t *first)
{
    if (first->type != TH_JSON_OBJ_BEGIN && first->type != TH_JSON_ARR_BEGIN) {
        return 0;
    }
    uint32_t target = r->depth - 1;
    th_json_tok_t t;
    do {
        int rc = th_json_next(r, &t);
        if (rc) {
            return rc;
        }
    } while (r->depth > target || (t.type != TH_JSON_OBJ_END && t.type != TH_JSON_ARR_END));
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

size_t th_json_unescape(const th_json_tok_t *t, uint8_t *out)
{
    const uint8_t *p = t->ptr;
    const uint8_t *end = p + t->len;
    uint8_t *o = out;
    if (!t->escaped) {
        memcpy(out, p, t->len);
        return t->len;
    }
    while (p < end) {
        const uint8_t *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            memcpy(o, p, (size_t)(end - p));
            o += end - p;
            break;
        }
        memcpy(o, p, (size_t)(bs - p));
        o += bs - p;
        p = bs + 1;
        switch (*p) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            /* Validated by the scanner: 4 hex digits, and a pair for a high surrogate. */
            uint32_t cp = (uint32_t)hex4(p + 1);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo = (uint32_t)hex4(p + 3);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            o += put_utf8(o, cp);
            break;
        }
        default: /* '"', '\\', '/' */
            *o++ = *p;
            break;
        }
        p++;
    }
    return (size_t)(o - out);
}
