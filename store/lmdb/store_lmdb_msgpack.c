/*
 * The primitives under the store's records: a msgpack writer into one growable buffer, a
 * bounds-checked msgpack reader over stored bytes, LEB128 varints, the 64-bit hash and the
 * tag table lookup, and the AsString forms of attribute values (decimal, Go's float format,
 * base64, JSON) that tag search compares. Our own writer and reader rather than msgpack-c's
 * packer and unpacker: the writer appends with no callback per item, and the reader decodes
 * straight from LMDB's memory without copying objects into a zone; msgpack-c stays the
 * reference the tests check our bytes against.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "th/base64.h"
#include "store/lmdb/store_lmdb_codec.h"
#include "store/lmdb/store_lmdb_keys.h"

/* ---- msgpack writer ------------------------------------------------------------------- */

uint8_t *th__mpw_grow(th__mpw_t *w, size_t n)
{
    if (w->err) {
        return NULL;
    }
    if (w->cap - w->len >= n) {
        return w->p + w->len;
    }
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->len < n) {
        if (cap > SIZE_MAX / 2) {
            w->err = TH_ENOMEM;
            return NULL;
        }
        cap *= 2;
    }
    uint8_t *p = th_realloc(w->p, cap);
    if (!p) {
        w->err = TH_ENOMEM;
        return NULL;
    }
    w->p = p;
    w->cap = cap;
    return w->p + w->len;
}

void th__mpw_free(th__mpw_t *w)
{
    th_free(w->p);
    memset(w, 0, sizeof(*w));
}

void th__mpw_raw(th__mpw_t *w, const void *p, size_t n)
{
    uint8_t *d = th__mpw_room(w, n);
    if (d) {
        if (n) {
            memcpy(d, p, n);
        }
        w->len += n;
    }
}

static inline void put1(th__mpw_t *w, uint8_t b)
{
    uint8_t *d = th__mpw_room(w, 1);
    if (d) {
        d[0] = b;
        w->len++;
    }
}

/* A type byte followed by a big-endian integer of @p n bytes. */
static inline void put_tagged(th__mpw_t *w, uint8_t tag, uint64_t v, unsigned n)
{
    uint8_t *d = th__mpw_room(w, 1 + n);
    if (!d) {
        return;
    }
    d[0] = tag;
    for (unsigned i = 0; i < n; i++) {
        d[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    w->len += 1 + n;
}

void th__mpw_nil(th__mpw_t *w)
{
    put1(w, 0xc0);
}

void th__mpw_bool(th__mpw_t *w, bool b)
{
    put1(w, b ? 0xc3 : 0xc2);
}

void th__mpw_uint(th__mpw_t *w, uint64_t v)
{
    if (v < 128) {
        put1(w, (uint8_t)v);
    } else if (v <= 0xff) {
        put_tagged(w, 0xcc, v, 1);
    } else if (v <= 0xffff) {
        put_tagged(w, 0xcd, v, 2);
    } else if (v <= 0xffffffffu) {
        put_tagged(w, 0xce, v, 4);
    } else {
        put_tagged(w, 0xcf, v, 8);
    }
}

void th__mpw_int(th__mpw_t *w, int64_t v)
{
    if (v >= 0) {
        th__mpw_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        put1(w, (uint8_t)(int8_t)v);
    } else if (v >= INT8_MIN) {
        put_tagged(w, 0xd0, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        put_tagged(w, 0xd1, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        put_tagged(w, 0xd2, (uint64_t)v, 4);
    } else {
        put_tagged(w, 0xd3, (uint64_t)v, 8);
    }
}

void th__mpw_double(th__mpw_t *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    put_tagged(w, 0xcb, bits, 8);
}

static void put_len(th__mpw_t *w, size_t n, uint8_t fix, size_t fixmax, uint8_t t8, uint8_t t16,
                    uint8_t t32)
{
    if (n <= fixmax) {
        put1(w, (uint8_t)(fix | n));
    } else if (t8 && n <= 0xff) {
        put_tagged(w, t8, n, 1);
    } else if (n <= 0xffff) {
        put_tagged(w, t16, n, 2);
    } else if (n <= 0xffffffffu) {
        put_tagged(w, t32, n, 4);
    } else {
        w->err = TH_E2BIG;
    }
}

void th__mpw_str(th__mpw_t *w, const char *s, size_t n)
{
    put_len(w, n, 0xa0, 31, 0xd9, 0xda, 0xdb);
    th__mpw_raw(w, s, n);
}

void th__mpw_cstr(th__mpw_t *w, const char *s)
{
    th__mpw_str(w, s ? s : "", s ? strlen(s) : 0);
}

void th__mpw_bin(th__mpw_t *w, const uint8_t *p, size_t n)
{
    /* bin has no fix form: put_len's fix path is only taken for n <= 0 with fixmax 0 */
    if (n <= 0xff) {
        put_tagged(w, 0xc4, n, 1);
    } else {
        put_len(w, n, 0, 0, 0, 0xc5, 0xc6);
    }
    th__mpw_raw(w, p, n);
}

void th__mpw_array(th__mpw_t *w, uint32_t n)
{
    put_len(w, n, 0x90, 15, 0, 0xdc, 0xdd);
}

void th__mpw_map(th__mpw_t *w, uint32_t n)
{
    put_len(w, n, 0x80, 15, 0, 0xde, 0xdf);
}

void th__mpw_empty_any(th__mpw_t *w)
{
    static const uint8_t m[3] = {0xc7, 0x00, 0x00};
    th__mpw_raw(w, m, 3);
}

void th__mpw_varint(th__mpw_t *w, uint64_t v)
{
    uint8_t *d = th__mpw_room(w, 10);
    if (!d) {
        return;
    }
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    w->len += n;
}

int th__varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end) {
            return TH_EIO;
        }
        uint8_t b = *p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *pp = p;
            return 0;
        }
    }
    return TH_EIO;
}

/* ---- msgpack reader ------------------------------------------------------------------- */

static inline uint64_t be_n(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

enum th__mp_type th__mpr_peek(const th__mpr_t *r)
{
    if (r->p >= r->end) {
        return TH_MP_BAD;
    }
    uint8_t b = *r->p;
    if (b <= 0x7f) {
        return TH_MP_UINT;
    }
    if (b <= 0x8f) {
        return TH_MP_MAP;
    }
    if (b <= 0x9f) {
        return TH_MP_ARRAY;
    }
    if (b <= 0xbf) {
        return TH_MP_STR;
    }
    if (b >= 0xe0) {
        return TH_MP_INT;
    }
    switch (b) {
    case 0xc0:
        return TH_MP_NIL;
    case 0xc2:
    case 0xc3:
        return TH_MP_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return TH_MP_BIN;
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        return TH_MP_EXT;
    case 0xca:
    case 0xcb:
        return TH_MP_FLOAT;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        return TH_MP_UINT;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        return TH_MP_INT;
    case 0xd9:
    case 0xda:
    case 0xdb:
        return TH_MP_STR;
    case 0xdc:
    case 0xdd:
        return TH_MP_ARRAY;
    case 0xde:
    case 0xdf:
        return TH_MP_MAP;
    default:
        return TH_MP_BAD;
    }
}

/* Read @p n bytes after the type byte as a big-endian length or value. */
static inline int take(th__mpr_t *r, unsigned n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < 1 + (size_t)n) {
        return TH_EIO;
    }
    *v = be_n(r->p + 1, n);
    r->p += 1 + n;
    return 0;
}

int th__mpr_nil(th__mpr_t *r)
{
    if (r->p >= r->end || *r->p != 0xc0) {
        return TH_EIO;
    }
    r->p++;
    return 0;
}

int th__mpr_bool(th__mpr_t *r, bool *b)
{
    if (r->p >= r->end || (*r->p != 0xc2 && *r->p != 0xc3)) {
        return TH_EIO;
    }
    *b = *r->p++ == 0xc3;
    return 0;
}

int th__mpr_uint(th__mpr_t *r, uint64_t *v)
{
    if (r->p >= r->end) {
        return TH_EIO;
    }
    uint8_t b = *r->p;
    if (b <= 0x7f) {
        *v = b;
        r->p++;
        return 0;
    }
    if (b >= 0xcc && b <= 0xcf) {
        return take(r, 1u << (b - 0xcc), v);
    }
    if (b >= 0xd0 && b <= 0xd3) {
        int64_t i;
        int ret = th__mpr_int(r, &i);
        if (ret == 0 && i < 0) {
            return TH_EIO;
        }
        *v = (uint64_t)i;
        return ret;
    }
    return TH_EIO;
}

int th__mpr_u32(th__mpr_t *r, uint32_t *v)
{
    uint64_t u;
    if (th__mpr_uint(r, &u) != 0 || u > UINT32_MAX) {
        return TH_EIO;
    }
    *v = (uint32_t)u;
    return 0;
}

int th__mpr_int(th__mpr_t *r, int64_t *v)
{
    if (r->p >= r->end) {
        return TH_EIO;
    }
    uint8_t b = *r->p;
    if (b >= 0xe0) {
        *v = (int8_t)b;
        r->p++;
        return 0;
    }
    if (b >= 0xd0 && b <= 0xd3) {
        unsigned n = 1u << (b - 0xd0);
        uint64_t u;
        if (take(r, n, &u) != 0) {
            return TH_EIO;
        }
        /* sign-extend from n bytes */
        unsigned shift = 64 - 8 * n;
        *v = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
        return 0;
    }
    uint64_t u;
    if (th__mpr_uint(r, &u) != 0 || u > INT64_MAX) {
        return TH_EIO;
    }
    *v = (int64_t)u;
    return 0;
}

int th__mpr_double(th__mpr_t *r, double *d)
{
    if (r->p >= r->end) {
        return TH_EIO;
    }
    uint64_t u;
    if (*r->p == 0xcb) {
        if (take(r, 8, &u) != 0) {
            return TH_EIO;
        }
        memcpy(d, &u, 8);
        return 0;
    }
    if (*r->p == 0xca) {
        if (take(r, 4, &u) != 0) {
            return TH_EIO;
        }
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, 4);
        *d = f;
        return 0;
    }
    return TH_EIO;
}

/* Read a length header among a fix range and three tagged forms; then check the bytes. */
static int read_len(th__mpr_t *r, uint8_t fix_lo, uint8_t fix_hi, uint8_t fix_mask, uint8_t t8,
                    uint8_t t16, uint8_t t32, uint64_t *n)
{
    if (r->p >= r->end) {
        return TH_EIO;
    }
    uint8_t b = *r->p;
    if (fix_hi && b >= fix_lo && b <= fix_hi) {
        *n = b & fix_mask;
        r->p++;
        return 0;
    }
    if (t8 && b == t8) {
        return take(r, 1, n);
    }
    if (b == t16) {
        return take(r, 2, n);
    }
    if (b == t32) {
        return take(r, 4, n);
    }
    return TH_EIO;
}

int th__mpr_str(th__mpr_t *r, const char **s, size_t *n)
{
    uint64_t len;
    if (read_len(r, 0xa0, 0xbf, 0x1f, 0xd9, 0xda, 0xdb, &len) != 0 ||
        len > (uint64_t)(r->end - r->p)) {
        return TH_EIO;
    }
    *s = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

int th__mpr_bin(th__mpr_t *r, const uint8_t **p, size_t *n)
{
    uint64_t len;
    if (read_len(r, 0, 0, 0, 0xc4, 0xc5, 0xc6, &len) != 0 || len > (uint64_t)(r->end - r->p)) {
        return TH_EIO;
    }
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

int th__mpr_array(th__mpr_t *r, uint32_t *n)
{
    uint64_t len;
    /* every element takes at least one byte: a count beyond the bytes left is corrupt */
    if (read_len(r, 0x90, 0x9f, 0x0f, 0, 0xdc, 0xdd, &len) != 0 ||
        len > (uint64_t)(r->end - r->p)) {
        return TH_EIO;
    }
    *n = (uint32_t)len;
    return 0;
}

int th__mpr_map(th__mpr_t *r, uint32_t *n)
{
    uint64_t len;
    if (read_len(r, 0x80, 0x8f, 0x0f, 0, 0xde, 0xdf, &len) != 0 ||
        len * 2 > (uint64_t)(r->end - r->p)) {
        return TH_EIO;
    }
    *n = (uint32_t)len;
    return 0;
}

int th__mpr_ext(th__mpr_t *r, int8_t *type, const uint8_t **p, size_t *n)
{
    if (r->p >= r->end) {
        return TH_EIO;
    }
    uint8_t b = *r->p;
    uint64_t len;
    if (b >= 0xd4 && b <= 0xd8) {
        len = 1u << (b - 0xd4);
        r->p++;
    } else if (b == 0xc7 || b == 0xc8 || b == 0xc9) {
        if (take(r, 1u << (b - 0xc7), &len) != 0) {
            return TH_EIO;
        }
    } else {
        return TH_EIO;
    }
    if (r->p >= r->end || len > (uint64_t)(r->end - r->p - 1)) {
        return TH_EIO;
    }
    *type = (int8_t)*r->p++;
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

/* Skip objects iteratively: a count of objects still to skip replaces recursion, and it can
 * never exceed the bytes left, since every object takes at least one byte. */
int th__mpr_skip(th__mpr_t *r)
{
    uint64_t pending = 1;
    while (pending) {
        if (pending > (uint64_t)(r->end - r->p)) {
            return TH_EIO;
        }
        pending--;
        uint32_t n;
        const uint8_t *p;
        size_t len;
        uint64_t u;
        int64_t i;
        double d;
        bool b = false;
        int8_t t;
        int ret;
        switch (th__mpr_peek(r)) {
        case TH_MP_NIL:
            ret = th__mpr_nil(r);
            break;
        case TH_MP_BOOL:
            ret = th__mpr_bool(r, &b);
            break;
        case TH_MP_UINT:
            ret = th__mpr_uint(r, &u);
            break;
        case TH_MP_INT:
            ret = th__mpr_int(r, &i);
            break;
        case TH_MP_FLOAT:
            ret = th__mpr_double(r, &d);
            break;
        case TH_MP_STR:
            ret = th__mpr_str(r, (const char **)&p, &len);
            break;
        case TH_MP_BIN:
            ret = th__mpr_bin(r, &p, &len);
            break;
        case TH_MP_EXT:
            ret = th__mpr_ext(r, &t, &p, &len);
            break;
        case TH_MP_ARRAY:
            ret = th__mpr_array(r, &n);
            pending += n;
            break;
        case TH_MP_MAP:
            ret = th__mpr_map(r, &n);
            pending += 2 * (uint64_t)n;
            break;
        default:
            return TH_EIO;
        }
        if (ret != 0) {
            return TH_EIO;
        }
    }
    return 0;
}

/* ---- Hashing -------------------------------------------------------------------------- */

#define HP1 0x9E3779B185EBCA87ull
#define HP2 0xC2B2AE3D27D4EB4Full
#define HP3 0x165667B19E3779F9ull
#define HP4 0x85EBCA77C2B2AE63ull

static inline uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

/* Little-endian loads, so stored filters mean the same on any host. */
static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

uint64_t th__hash64(const void *data, size_t n, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ HP3 ^ ((uint64_t)n * HP1);
    while (n >= 8) {
        uint64_t k = rotl64(le64(p) * HP2, 31) * HP1;
        h = rotl64(h ^ k, 27) * HP1 + HP4;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < n; i++) {
        tail |= (uint64_t)p[i] << (8 * i);
    }
    h ^= rotl64(tail * HP1, 23) * HP2;
    h ^= h >> 33;
    h *= HP2;
    h ^= h >> 29;
    h *= HP3;
    h ^= h >> 32;
    return h;
}

uint32_t th__tag_hash(const char *key, size_t klen, int kind, const void *v, size_t vlen)
{
    uint64_t h = th__hash64(v, vlen, th__hash64(key, klen, 0x7468u + (uint64_t)kind));
    return (uint32_t)(h ^ (h >> 32));
}

bool th__tags_find(const uint8_t *entries, size_t len, uint32_t h, uint32_t *delta)
{
    size_t lo = 0, hi = len / TH_TAGS_ENTRY;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t m = th__be32_get(entries + mid * TH_TAGS_ENTRY);
        if (m < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < len / TH_TAGS_ENTRY && th__be32_get(entries + lo * TH_TAGS_ENTRY) == h) {
        *delta = th__be32_get(entries + lo * TH_TAGS_ENTRY + 4);
        return true;
    }
    return false;
}

/* ---- AsString forms ------------------------------------------------------------------- */

size_t th__fmt_i64(int64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0) {
        buf[len++] = '-';
    }
    while (n) {
        buf[len++] = tmp[--n];
    }
    buf[len] = '\0';
    return len;
}

size_t th__fmt_double(double v, char *buf)
{
    if (isnan(v)) {
        return (size_t)sprintf(buf, "NaN");
    }
    if (isinf(v)) {
        return (size_t)sprintf(buf, v > 0 ? "+Inf" : "-Inf");
    }
    /* the shortest %e form that reads back to v gives the digits and the exponent */
    char e[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    const char *p = e;
    size_t len = 0;
    if (*p == '-') {
        buf[len++] = '-';
        p++;
    }
    char digits[20];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && nd < sizeof(digits)) {
            digits[nd++] = *p;
        }
    }
    int exp = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (exp >= 0) {
        /* integer part: digits[0..exp], padded with zeros */
        for (int i = 0; i <= exp; i++) {
            buf[len++] = (size_t)i < nd ? digits[i] : '0';
        }
        if (nd > (size_t)exp + 1) {
            buf[len++] = '.';
            for (size_t i = (size_t)exp + 1; i < nd; i++) {
                buf[len++] = digits[i];
            }
        }
    } else {
        buf[len++] = '0';
        buf[len++] = '.';
        for (int i = 0; i < -exp - 1; i++) {
            buf[len++] = '0';
        }
        for (size_t i = 0; i < nd; i++) {
            buf[len++] = digits[i];
        }
    }
    buf[len] = '\0';
    return len;
}

void th__base64(th__mpw_t *w, const uint8_t *p, size_t n)
{
    uint8_t *d = th__mpw_room(w, th_base64_encoded_len(n, true));
    if (!d) {
        return;
    }
    w->len += th_base64_encode(p, n, (char *)d, true);
}

/* JSON string as Go's encoding/json writes it (HTML-safe escapes included). */
static void json_str(th__mpw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put1(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            th__mpw_raw(w, e, 2);
        } else if (c == '\n') {
            th__mpw_raw(w, "\\n", 2);
        } else if (c == '\r') {
            th__mpw_raw(w, "\\r", 2);
        } else if (c == '\t') {
            th__mpw_raw(w, "\\t", 2);
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            th__mpw_raw(w, e, 6);
        } else {
            put1(w, c);
        }
    }
    put1(w, '"');
}

static int kv_cmp(const void *a, const void *b)
{
    const th_otlp_kv_t *x = *(const th_otlp_kv_t *const *)a;
    const th_otlp_kv_t *y = *(const th_otlp_kv_t *const *)b;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static void any_json(th__mpw_t *w, const th_otlp_any_t *v, int depth)
{
    char num[400];
    if (!v || depth > TH_MP_MAX_DEPTH) {
        th__mpw_raw(w, "null", 4);
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        json_str(w, v->string_value, strlen(v->string_value));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        th__mpw_raw(w, v->bool_value ? "true" : "false", v->bool_value ? 4 : 5);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        th__mpw_raw(w, num, th__fmt_i64(v->int_value, num));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        if (isnan(v->double_value) || isinf(v->double_value)) {
            th__mpw_raw(w, "null", 4);
        } else {
            th__mpw_raw(w, num, th__fmt_double(v->double_value, num));
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        put1(w, '"');
        th__base64(w, v->bytes_value.data, v->bytes_value.len);
        put1(w, '"');
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        put1(w, '[');
        const Opentelemetry__Proto__Common__V1__ArrayValue *a = v->array_value;
        for (size_t i = 0; a && i < a->n_values; i++) {
            if (i) {
                put1(w, ',');
            }
            any_json(w, a->values[i], depth + 1);
        }
        put1(w, ']');
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        put1(w, '{');
        const Opentelemetry__Proto__Common__V1__KeyValueList *l = v->kvlist_value;
        size_t n = l ? l->n_values : 0;
        th_otlp_kv_t **sorted = n ? th_malloc(n * sizeof(*sorted)) : NULL;
        if (n && !sorted) {
            w->err = TH_ENOMEM;
            return;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (l->values[i]) {
                sorted[m++] = l->values[i];
            }
        }
        th__qsort(sorted, m, sizeof(*sorted), kv_cmp);
        for (size_t i = 0; i < m; i++) {
            if (i) {
                put1(w, ',');
            }
            const char *k = sorted[i]->key ? sorted[i]->key : "";
            json_str(w, k, strlen(k));
            put1(w, ':');
            any_json(w, sorted[i]->value, depth + 1);
        }
        th_free(sorted);
        put1(w, '}');
        break;
    }
    default:
        th__mpw_raw(w, "null", 4);
        break;
    }
}

void th__any_as_string(th__mpw_t *w, const th_otlp_any_t *v)
{
    char num[400];
    if (!v) {
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        th__mpw_raw(w, v->string_value, strlen(v->string_value));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        th__mpw_raw(w, v->bool_value ? "true" : "false", v->bool_value ? 4 : 5);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        th__mpw_raw(w, num, th__fmt_i64(v->int_value, num));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        th__mpw_raw(w, num, th__fmt_double(v->double_value, num));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        th__base64(w, v->bytes_value.data, v->bytes_value.len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        any_json(w, v, 0);
        break;
    default:
        break;
    }
}
