/*
 * OTLP/JSON decoding into the same protobuf-c structs the protobuf decoder produces, so the
 * rest of the pipeline cannot tell the two apart (the tests compare packed bytes). A
 * recursive-descent reader over the pull tokenizer: one function per message, each
 * allocating its struct in the arena (under the same budget as protobuf) and initialising it
 * with the generated __init. Repeated fields are collected on one scratch stack of pointers
 * and copied into an exact-size arena array when their JSON array closes, so nothing is
 * over-allocated and nothing is malloc'd per field. Recursion happens only through nested
 * AnyValues, and each level is checked against max_depth before descending (the tokenizer
 * bounds the nesting of unknown fields the same way).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th/base64.h"
#include "collector/json_reader.h"
#include "collector/otlp_internal.h"

/* A step of the path to the value being decoded, linked up the C stack for error messages. */
struct jpath {
    const struct jpath *up;
    const char *name;
    size_t idx;
    bool indexed;
};

struct jdec {
    th_json_reader_t r;
    struct th__otlp_mem mem;
    struct th_otlp_limits lim;
    struct th_otlp_error *err;
    uint64_t spans;
    uint32_t any_depth; /* nesting of the AnyValue elements being read */
    void **stack;       /* elements of the repeated fields being read, innermost last */
    size_t nstack;
    size_t capstack;
    uint8_t *scratch; /* unescaped text of ids, bytes, numbers, enum names */
    size_t capscratch;
};

/* ---- Errors ------------------------------------------------------------------------------ */

static void render_path(const struct jpath *at, char *buf, size_t cap)
{
    const struct jpath *chain[512];
    size_t n = 0;
    for (const struct jpath *p = at; p && n < TH_ARRAY_SIZE(chain); p = p->up) {
        if (p->name) {
            chain[n++] = p;
        }
    }
    size_t len = 0;
    buf[0] = '\0';
    while (n-- > 0 && len < cap) {
        const struct jpath *p = chain[n];
        int w = p->indexed
                    ? snprintf(buf + len, cap - len, "%s%s[%zu]", len ? "." : "", p->name, p->idx)
                    : snprintf(buf + len, cap - len, "%s%s", len ? "." : "", p->name);
        len = w < 0 ? cap : TH_MIN(cap, len + (size_t)w);
    }
    if (!buf[0]) {
        snprintf(buf, cap, "request");
    }
}

static int jfail(struct jdec *d, const struct jpath *at, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int jfail(struct jdec *d, const struct jpath *at, int rc, const char *fmt, ...)
{
    if (!d->err) {
        return rc;
    }
    char path[200];
    char what[160];
    render_path(at, path, sizeof(path));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    th__otlp_errf(d->err, "%s: %s", path, what);
    return rc;
}

static int nomem(struct jdec *d)
{
    return th__otlp_mem_fail(&d->mem, d->err);
}

/* A tokenizer error as a message with the place and the byte offset. */
static int __attribute__((noinline, cold))
reader_error(struct jdec *d, const struct jpath *at, int rc)
{
    if (rc == TH_E2BIG) {
        return jfail(d, at, rc, "JSON nested deeper than %u levels (" TH_OTLP_KEY_DEPTH ")",
                     d->r.max_depth);
    }
    return jfail(d, at, rc, "invalid JSON at byte %zu: %s", d->r.erroff, d->r.errmsg);
}

/* Next token. */
static inline int next(struct jdec *d, const struct jpath *at, th_json_tok_t *t)
{
    int rc = th_json_next(&d->r, t);
    return __builtin_expect(rc != 0, 0) ? reader_error(d, at, rc) : 0;
}

static int skip(struct jdec *d, const struct jpath *at, const th_json_tok_t *t)
{
    int rc = th_json_skip(&d->r, t);
    return rc ? reader_error(d, at, rc) : 0;
}

static const char *type_name(enum th_json_type t)
{
    switch (t) {
    case TH_JSON_OBJ_BEGIN:
        return "an object";
    case TH_JSON_ARR_BEGIN:
        return "an array";
    case TH_JSON_STRING:
        return "a string";
    case TH_JSON_NUMBER:
        return "a number";
    case TH_JSON_TRUE:
    case TH_JSON_FALSE:
        return "a boolean";
    case TH_JSON_NULL:
        return "null";
    default:
        return "something else";
    }
}

static int expected(struct jdec *d, const struct jpath *at, const char *what,
                    const th_json_tok_t *t)
{
    return jfail(d, at, TH_EDECODE, "expected %s, got %s", what, type_name(t->type));
}

/* ---- Memory ------------------------------------------------------------------------------ */

static void *alloc(struct jdec *d, size_t n)
{
    return th__otlp_mem_alloc(&d->mem, n);
}

/* Allocate and __init a message into @p var; var is NULL when memory or the budget ran out. */
#define NEW_MSG(d, var, init)                                                                      \
    do {                                                                                           \
        (var) = alloc((d), sizeof(*(var)));                                                        \
        if (var) {                                                                                 \
            init(var);                                                                             \
        }                                                                                          \
    } while (0)

static int push_ptr(struct jdec *d, void *p)
{
    if (d->nstack == d->capstack) {
        size_t cap = d->capstack ? d->capstack * 2 : 256;
        void **s = th_realloc(d->stack, cap * sizeof(*s));
        if (!s) {
            th__otlp_errf(d->err, "out of memory while decoding the request");
            return TH_ENOMEM;
        }
        d->stack = s;
        d->capstack = cap;
    }
    d->stack[d->nstack++] = p;
    return 0;
}

static uint8_t *scratch(struct jdec *d, size_t n)
{
    if (n > d->capscratch) {
        size_t cap = TH_MAX(n, 256);
        uint8_t *s = th_realloc(d->scratch, cap);
        if (!s) {
            return NULL;
        }
        d->scratch = s;
        d->capscratch = cap;
    }
    return d->scratch;
}

/* The text of a string token with escapes decoded (into scratch when it has any). */
static int text_of(struct jdec *d, const th_json_tok_t *t, const uint8_t **p, size_t *len)
{
    if (!t->escaped) {
        *p = t->ptr;
        *len = t->len;
        return 0;
    }
    uint8_t *s = scratch(d, t->len);
    if (!s && t->len) {
        th__otlp_errf(d->err, "out of memory while decoding the request");
        return TH_ENOMEM;
    }
    *len = th_json_unescape(t, s);
    *p = s;
    return 0;
}

/* ---- Keys -------------------------------------------------------------------------------- */

struct key {
    const char *camel;
    const char *snake;
    uint8_t clen;
    uint8_t slen;
    uint8_t id;
};

#define KEY(c, s, id)                                                                              \
    {                                                                                              \
        c, s, sizeof(c) - 1, sizeof(s) - 1, id                                                     \
    }

/*
 * @return the id of the key in @p keys, or 0 for an unknown key (skipped by the caller).
 * Senders write an object's keys in the same order every time, so the search starts just
 * after the key matched last (@p hint, kept by the caller for one object) and usually hits
 * at once. lowerCamelCase is tried first (what senders should use), then snake_case.
 */
static int match_key(const th_json_tok_t *t, const struct key *keys, size_t n, size_t *hint)
{
    const uint8_t *p = t->ptr;
    size_t len = t->len;
    uint8_t buf[64];
    if (t->escaped) {
        if (t->len > sizeof(buf)) {
            return 0;
        }
        len = th_json_unescape(t, buf);
        p = buf;
    }
    if (len == 0) {
        return 0;
    }
    size_t i = *hint < n ? *hint : 0;
    for (size_t j = 0; j < n; j++, i = i + 1 < n ? i + 1 : 0) {
        if (len == keys[i].clen && p[0] == (uint8_t)keys[i].camel[0] &&
            memcmp(p, keys[i].camel, len) == 0) {
            *hint = i + 1;
            return keys[i].id;
        }
    }
    for (i = 0; i < n; i++) {
        if (len == keys[i].slen && keys[i].slen != keys[i].clen &&
            memcmp(p, keys[i].snake, len) == 0) {
            *hint = i + 1;
            return keys[i].id;
        }
    }
    return 0;
}

/* ---- Scalars ----------------------------------------------------------------------------- */

/* A string field: decoded into the arena (always allocated, so a oneof "" stays set). */
static int get_string(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, char **out)
{
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    if (t->type != TH_JSON_STRING) {
        return expected(d, at, "a string", t);
    }
    if (!t->escaped && t->len > d->lim.max_string_len) {
        goto too_long;
    }
    char *s = alloc(d, t->len + 1);
    if (!s) {
        return nomem(d);
    }
    size_t n = th_json_unescape(t, (uint8_t *)s);
    s[n] = '\0';
    if (t->escaped) {
        if (n > d->lim.max_string_len) {
            goto too_long;
        }
        if (memchr(s, 0, n)) {
            /* protobuf-c strings are NUL-terminated: a NUL would silently cut the value. */
            return jfail(d, at, TH_EDECODE, "string contains a NUL character (\\u0000)");
        }
    }
    *out = s;
    return 0;
too_long:
    return jfail(d, at, TH_E2BIG,
                 "string of %zu bytes is longer than %llu (" TH_OTLP_KEY_STRLEN ")", t->len,
                 (unsigned long long)d->lim.max_string_len);
}

/* A trace or span id: hex, any case; "" is the empty id. Lengths are checked afterwards. */
static int get_id(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                  ProtobufCBinaryData *out)
{
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    if (t->type != TH_JSON_STRING) {
        return expected(d, at, "a hex string", t);
    }
    const uint8_t *p;
    size_t len;
    int rc = text_of(d, t, &p, &len);
    if (rc) {
        return rc;
    }
    if (len % 2) {
        return jfail(d, at, TH_EDECODE, "invalid hex id: odd number of digits (%zu)", len);
    }
    if (len / 2 > d->lim.max_string_len) {
        return jfail(d, at, TH_E2BIG,
                     "id of %zu bytes is longer than %llu (" TH_OTLP_KEY_STRLEN ")", len / 2,
                     (unsigned long long)d->lim.max_string_len);
    }
    out->len = 0;
    out->data = NULL;
    if (!len) {
        return 0;
    }
    uint8_t *b = alloc(d, len / 2);
    if (!b) {
        return nomem(d);
    }
    static const int8_t hex[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
        ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
        ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
        ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
    };
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex[p[i]];
        int lo = hex[p[i + 1]];
        if (!hi || !lo) {
            return jfail(d, at, TH_EDECODE, "invalid hex id: '%c' is not a hex digit",
                         hi ? p[i + 1] : p[i]);
        }
        b[i / 2] = (uint8_t)(((hi - 1) << 4) | (lo - 1));
    }
    out->data = b;
    out->len = len / 2;
    return 0;
}

/* A bytes field: base64, standard or URL-safe alphabet, padded or not. */
static int get_bytes(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                     ProtobufCBinaryData *out)
{
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    if (t->type != TH_JSON_STRING) {
        return expected(d, at, "a base64 string", t);
    }
    const uint8_t *p;
    size_t len;
    int rc = text_of(d, t, &p, &len);
    if (rc) {
        return rc;
    }
    /* Padding: only at the end, at most two, and only to complete a 4-character group. */
    size_t pad = 0;
    while (len > 0 && p[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if ((pad && (len + pad) % 4) || len % 4 == 1) {
        return jfail(d, at, TH_EDECODE, "invalid base64: bad length or padding");
    }
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (n > d->lim.max_string_len) {
        return jfail(d, at, TH_E2BIG,
                     "bytes value of %zu bytes is longer than %llu (" TH_OTLP_KEY_STRLEN ")", n,
                     (unsigned long long)d->lim.max_string_len);
    }
    out->len = 0;
    out->data = NULL;
    if (!n) {
        return 0;
    }
    uint8_t *b = alloc(d, n);
    if (!b) {
        return nomem(d);
    }
    /* A third '=' left at the end is no padding: the decoder would drop it, so a short
     * result means one was there. */
    size_t o;
    if (th_base64_decode((const char *)p, len, b, &o) != 0 || o != n) {
        return jfail(d, at, TH_EDECODE, "invalid base64: unexpected character");
    }
    out->data = b;
    out->len = o;
    return 0;
}

/* Does [p, p+len) match the JSON number grammar exactly? (For numbers inside strings.) */
static bool number_text_ok(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') {
        return false;
    }
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            return false;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') {
            return false;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    return p == end;
}

/*
 * The longest number text given to strtod. RFC 8259 lets a parser limit numbers; no OTLP
 * value needs more, and strtod's cost grows with the digits it is handed.
 */
#define MAX_NUMBER_TEXT 512

/* strtod on a slice (it needs a NUL): a stack copy, or scratch for long texts. */
static int slice_strtod(struct jdec *d, const uint8_t *p, size_t len, double *out)
{
    char small[64];
    char *s = small;
    if (len >= sizeof(small)) {
        uintptr_t at = (uintptr_t)p;
        uintptr_t sc = (uintptr_t)d->scratch;
        if (d->scratch && at >= sc && at < sc + d->capscratch) {
            /* Already in scratch (an unescaped string): copy to a fresh heap buffer. */
            s = th_malloc(len + 1);
        } else {
            s = (char *)scratch(d, len + 1);
        }
        if (!s) {
            th__otlp_errf(d->err, "out of memory while decoding the request");
            return TH_ENOMEM;
        }
    }
    memcpy(s, p, len);
    s[len] = '\0';
    *out = strtod(s, NULL);
    if (s != small && (uint8_t *)s != d->scratch) {
        th_free(s);
    }
    return 0;
}

enum int_kind { I32, U32, I64, U64 };

/*
 * An integer field given as a number or a string holding one. Exponent and fraction forms
 * are accepted when the value is integral ("1e3", "5.0"), as ProtoJSON allows.
 */
static int get_int(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                   enum int_kind kind, uint64_t *out_bits)
{
    const uint8_t *p;
    size_t len;
    if (t->type == TH_JSON_NUMBER) {
        p = t->ptr;
        len = t->len;
    } else if (t->type == TH_JSON_STRING) {
        int rc = text_of(d, t, &p, &len);
        if (rc) {
            return rc;
        }
    } else {
        return expected(d, at, "an integer", t);
    }
    bool neg = len > 0 && p[0] == '-';
    uint64_t mag = 0;
    bool simple = true;
    bool overflow = false;
    for (size_t i = neg; i < len; i++) {
        uint8_t c = p[i];
        if (c < '0' || c > '9') {
            simple = false;
            break;
        }
        /* 19 digits always fit; only longer numbers need the overflow check. */
        if (i - neg >= 19 && mag > (UINT64_MAX - (c - '0')) / 10) {
            overflow = true;
        }
        mag = mag * 10 + (c - '0');
    }
    if (len == (size_t)neg) {
        simple = false; /* "" or "-" */
    }
    if (!simple && t->type == TH_JSON_STRING && !number_text_ok(p, len)) {
        return jfail(d, at, TH_EDECODE, "\"%.*s\" is not an integer", (int)TH_MIN(len, 40),
                     (const char *)p);
    }
    if (!simple) {
        double v;
        if (len > MAX_NUMBER_TEXT) {
            return jfail(d, at, TH_EDECODE, "number of %zu characters is too long", len);
        }
        int rc = slice_strtod(d, p, len, &v);
        if (rc) {
            return rc;
        }
        if (!isfinite(v) || v != floor(v)) {
            return jfail(d, at, TH_EDECODE, "%.*s is not an integer", (int)TH_MIN(len, 40),
                         (const char *)p);
        }
        neg = v < 0;
        double a = fabs(v);
        overflow = a >= 18446744073709551616.0;
        mag = overflow ? 0 : (uint64_t)a;
    }
    bool ok;
    switch (kind) {
    case I32:
        ok = !overflow && (neg ? mag <= 2147483648ull : mag <= INT32_MAX);
        break;
    case U32:
        ok = !overflow && (!neg || mag == 0) && mag <= UINT32_MAX;
        break;
    case I64:
        ok = !overflow && (neg ? mag <= 9223372036854775808ull : mag <= INT64_MAX);
        break;
    default:
        ok = !overflow && (!neg || mag == 0);
        break;
    }
    if (!ok) {
        static const char *const names[] = {"int32", "uint32", "int64", "uint64"};
        return jfail(d, at, TH_EDECODE, "%.*s is out of range for %s", (int)TH_MIN(len, 40),
                     (const char *)p, names[kind]);
    }
    *out_bits = neg ? (uint64_t)0 - mag : mag;
    return 0;
}

static int get_u32(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, uint32_t *out)
{
    uint64_t v;
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    int rc = get_int(d, at, t, U32, &v);
    if (!rc) {
        *out = (uint32_t)v;
    }
    return rc;
}

static int get_u64(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, uint64_t *out)
{
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    return get_int(d, at, t, U64, out);
}

static int get_i32(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, int32_t *out)
{
    uint64_t v;
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    int rc = get_int(d, at, t, I32, &v);
    if (!rc) {
        *out = (int32_t)(uint32_t)v;
    }
    return rc;
}

/* An enum: its number, or (leniently, as the Collector does) its name. */
static int get_enum(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                    const char *const *names, size_t n, int *out)
{
    if (t->type == TH_JSON_NULL) {
        return 0;
    }
    if (t->type == TH_JSON_STRING) {
        const uint8_t *p;
        size_t len;
        int rc = text_of(d, t, &p, &len);
        if (rc) {
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0) {
                *out = (int)i;
                return 0;
            }
        }
        if (!number_text_ok(p, len)) {
            return jfail(d, at, TH_EDECODE, "unknown enum value \"%.*s\"", (int)TH_MIN(len, 40),
                         (const char *)p);
        }
    }
    int32_t v = 0;
    int rc = get_i32(d, at, t, &v);
    if (!rc) {
        *out = v;
    }
    return rc;
}

static int get_double(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, double *out)
{
    const uint8_t *p;
    size_t len;
    if (t->type == TH_JSON_NUMBER) {
        p = t->ptr;
        len = t->len;
    } else if (t->type == TH_JSON_STRING) {
        int rc = text_of(d, t, &p, &len);
        if (rc) {
            return rc;
        }
        if (len == 3 && memcmp(p, "NaN", 3) == 0) {
            *out = NAN;
            return 0;
        }
        if (len == 8 && memcmp(p, "Infinity", 8) == 0) {
            *out = INFINITY;
            return 0;
        }
        if (len == 9 && memcmp(p, "-Infinity", 9) == 0) {
            *out = -INFINITY;
            return 0;
        }
        if (!number_text_ok(p, len)) {
            return jfail(d, at, TH_EDECODE, "\"%.*s\" is not a number", (int)TH_MIN(len, 40),
                         (const char *)p);
        }
    } else {
        return expected(d, at, "a number", t);
    }
    double v;
    if (len > MAX_NUMBER_TEXT) {
        return jfail(d, at, TH_EDECODE, "number of %zu characters is too long", len);
    }
    int rc = slice_strtod(d, p, len, &v);
    if (rc) {
        return rc;
    }
    if (isinf(v)) {
        return jfail(d, at, TH_EDECODE, "%.*s is out of range for a double", (int)TH_MIN(len, 40),
                     (const char *)p);
    }
    *out = v;
    return 0;
}

/* ---- Objects and arrays -------------------------------------------------------------------- */

/*
 * Having read a value's first token: 1 for null (unset), 0 when it opens an object, an
 * error otherwise.
 */
static int open_object(struct jdec *d, const struct jpath *at, const th_json_tok_t *t)
{
    if (t->type == TH_JSON_NULL) {
        return 1;
    }
    if (t->type != TH_JSON_OBJ_BEGIN) {
        return expected(d, at, "an object", t);
    }
    return 0;
}

/*
 * Read the next key of an object. @return 1 with @p key set, 0 at the end of the object, or
 * an error.
 */
static int next_key(struct jdec *d, const struct jpath *at, th_json_tok_t *key)
{
    int rc = next(d, at, key);
    if (rc) {
        return rc;
    }
    return key->type == TH_JSON_KEY ? 1 : 0;
}

typedef int (*elem_fn)(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out);

/*
 * A repeated field: read the array, decoding each element with @p fn, and store an exact-size
 * arena array of pointers. @p limit (0: none) bounds the element count (max_attributes).
 */
static int get_array(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, elem_fn fn,
                     uint64_t limit, size_t *n_out, void ***arr_out)
{
    if (t->type == TH_JSON_NULL) {
        *n_out = 0;
        *arr_out = NULL;
        return 0;
    }
    if (t->type != TH_JSON_ARR_BEGIN) {
        return expected(d, at, "an array", t);
    }
    size_t base = d->nstack;
    struct jpath ep = {at->up, at->name, 0, true};
    for (;;) {
        th_json_tok_t e;
        int rc = next(d, &ep, &e);
        if (rc) {
            return rc;
        }
        if (e.type == TH_JSON_ARR_END) {
            break;
        }
        if (limit && ep.idx >= limit) {
            return jfail(d, at, TH_E2BIG, "more than %llu entries (" TH_OTLP_KEY_ATTRS ")",
                         (unsigned long long)limit);
        }
        if (e.type == TH_JSON_NULL) {
            return jfail(d, &ep, TH_EDECODE, "null is not allowed as an array element");
        }
        void *elem = NULL;
        rc = fn(d, &ep, &e, &elem);
        if (rc) {
            return rc;
        }
        rc = push_ptr(d, elem);
        if (rc) {
            return rc;
        }
        ep.idx++;
    }
    size_t n = d->nstack - base;
    void **arr = NULL;
    if (n) {
        arr = alloc(d, n * sizeof(void *));
        if (!arr) {
            return nomem(d);
        }
        memcpy(arr, d->stack + base, n * sizeof(void *));
    }
    d->nstack = base;
    *n_out = n;
    *arr_out = arr;
    return 0;
}

/* Repeated fields of a given element type, without casts at every call. */
#define GET_ARRAY(d, at, t, fn, limit, n, arr)                                                     \
    get_array((d), (at), (t), (fn), (limit), &(n), (void ***)&(arr))

static int get_any(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, uint32_t depth,
                   th_otlp_any_t **out);

static int elem_any(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    return get_any(d, at, t, d->any_depth, (th_otlp_any_t **)out);
}

enum { K_KEY = 1, K_VALUE, K_KEY_STRINDEX };
static const struct key kv_keys[] = {
    KEY("key", "key", K_KEY),
    KEY("value", "value", K_VALUE),
    KEY("keyStrindex", "key_strindex", K_KEY_STRINDEX),
};

static int elem_kv(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    th_otlp_kv_t *kv;
    NEW_MSG(d, kv, opentelemetry__proto__common__v1__key_value__init);
    if (!kv) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, kv_keys, TH_ARRAY_SIZE(kv_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_KEY:
            fp.name = "key";
            rc = get_string(d, &fp, &v, &kv->key);
            break;
        case K_VALUE:
            fp.name = "value";
            kv->value = NULL;
            rc = get_any(d, &fp, &v, d->any_depth, &kv->value);
            break;
        case K_KEY_STRINDEX:
            fp.name = "key_strindex";
            rc = get_i32(d, &fp, &v, &kv->key_strindex);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = kv;
    return 0;
}

enum { K_VALUES = 1 };
static const struct key values_keys[] = {KEY("values", "values", K_VALUES)};

/* An arrayValue or kvlistValue body: {"values": [...]}, one level deeper. */
static int get_values(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                      uint32_t depth, bool kvlist, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        *out = NULL;
        return rc < 0 ? rc : 0;
    }
    if (depth > d->lim.max_depth) {
        return jfail(d, at, TH_E2BIG, "values nested deeper than %u (" TH_OTLP_KEY_DEPTH ")",
                     (unsigned)d->lim.max_depth);
    }
    array_t *arr = NULL;
    kvlist_t *kvl = NULL;
    if (kvlist) {
        NEW_MSG(d, kvl, opentelemetry__proto__common__v1__key_value_list__init);
    } else {
        NEW_MSG(d, arr, opentelemetry__proto__common__v1__array_value__init);
    }
    if (!arr && !kvl) {
        return nomem(d);
    }
    uint32_t saved = d->any_depth;
    d->any_depth = depth;
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, values_keys, TH_ARRAY_SIZE(values_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, "values", 0, false};
        if (id == K_VALUES && kvlist) {
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, kvl->n_values, kvl->values);
        } else if (id == K_VALUES) {
            rc = GET_ARRAY(d, &fp, &v, elem_any, 0, arr->n_values, arr->values);
        } else {
            rc = skip(d, at, &v);
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    d->any_depth = saved;
    *out = kvlist ? (void *)kvl : (void *)arr;
    return 0;
}

enum {
    K_STRING = 1,
    K_BOOL,
    K_INT,
    K_DOUBLE,
    K_ARRAY,
    K_KVLIST,
    K_BYTES,
    K_STRINDEX,
};
static const struct key any_keys[] = {
    KEY("stringValue", "string_value", K_STRING),
    KEY("boolValue", "bool_value", K_BOOL),
    KEY("intValue", "int_value", K_INT),
    KEY("doubleValue", "double_value", K_DOUBLE),
    KEY("arrayValue", "array_value", K_ARRAY),
    KEY("kvlistValue", "kvlist_value", K_KVLIST),
    KEY("bytesValue", "bytes_value", K_BYTES),
    KEY("stringValueStrindex", "string_value_strindex", K_STRINDEX),
};

/* An AnyValue at nesting @p depth; `{}` is the empty value, null leaves *out alone. */
static int get_any(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, uint32_t depth,
                   th_otlp_any_t **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    th_otlp_any_t *a;
    NEW_MSG(d, a, opentelemetry__proto__common__v1__any_value__init);
    if (!a) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, any_keys, TH_ARRAY_SIZE(any_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        if (id && v.type == TH_JSON_NULL) {
            continue; /* null: this member is not set */
        }
        struct jpath fp = {at, NULL, 0, false};
        void *sub = NULL;
        uint64_t bits = 0;
        switch (id) {
        case K_STRING: {
            char *s = NULL;
            fp.name = "string_value";
            if (!(rc = get_string(d, &fp, &v, &s))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
                a->string_value = s;
            }
            break;
        }
        case K_BOOL:
            if (v.type != TH_JSON_TRUE && v.type != TH_JSON_FALSE) {
                fp.name = "bool_value";
                rc = expected(d, &fp, "true or false", &v);
                break;
            }
            a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
            a->bool_value = v.type == TH_JSON_TRUE;
            break;
        case K_INT:
            fp.name = "int_value";
            if (!(rc = get_int(d, &fp, &v, I64, &bits))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
                a->int_value = (int64_t)bits;
            }
            break;
        case K_DOUBLE: {
            double x = 0;
            fp.name = "double_value";
            if (!(rc = get_double(d, &fp, &v, &x))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
                a->double_value = x;
            }
            break;
        }
        case K_ARRAY:
            fp.name = "array_value";
            if (!(rc = get_values(d, &fp, &v, depth + 1, false, &sub))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
                a->array_value = sub;
            }
            break;
        case K_KVLIST:
            fp.name = "kvlist_value";
            if (!(rc = get_values(d, &fp, &v, depth + 1, true, &sub))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
                a->kvlist_value = sub;
            }
            break;
        case K_BYTES: {
            ProtobufCBinaryData b = {0, NULL};
            fp.name = "bytes_value";
            if (!(rc = get_bytes(d, &fp, &v, &b))) {
                a->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
                a->bytes_value = b;
            }
            break;
        }
        case K_STRINDEX: {
            int32_t x = 0;
            fp.name = "string_value_strindex";
            if (!(rc = get_i32(d, &fp, &v, &x))) {
                a->value_case =
                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX;
                a->string_value_strindex = x;
            }
            break;
        }
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = a;
    return 0;
}

/* ---- The trace messages -------------------------------------------------------------------- */

static int elem_string(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    char *s = NULL;
    int rc = get_string(d, at, t, &s);
    *out = s;
    return rc;
}

enum { K_SCHEMA_URL = 1, K_TYPE, K_ID_KEYS, K_DESCRIPTION_KEYS };
static const struct key entity_keys[] = {
    KEY("schemaUrl", "schema_url", K_SCHEMA_URL),
    KEY("type", "type", K_TYPE),
    KEY("idKeys", "id_keys", K_ID_KEYS),
    KEY("descriptionKeys", "description_keys", K_DESCRIPTION_KEYS),
};

static int elem_entity(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    entity_t *e;
    NEW_MSG(d, e, opentelemetry__proto__common__v1__entity_ref__init);
    if (!e) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, entity_keys, TH_ARRAY_SIZE(entity_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_SCHEMA_URL:
            fp.name = "schema_url";
            rc = get_string(d, &fp, &v, &e->schema_url);
            break;
        case K_TYPE:
            fp.name = "type";
            rc = get_string(d, &fp, &v, &e->type);
            break;
        case K_ID_KEYS:
            fp.name = "id_keys";
            rc = GET_ARRAY(d, &fp, &v, elem_string, 0, e->n_id_keys, e->id_keys);
            break;
        case K_DESCRIPTION_KEYS:
            fp.name = "description_keys";
            rc = GET_ARRAY(d, &fp, &v, elem_string, 0, e->n_description_keys, e->description_keys);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = e;
    return 0;
}

enum { K_ATTRIBUTES = 1, K_DROPPED_ATTRIBUTES, K_ENTITY_REFS };
static const struct key resource_keys[] = {
    KEY("attributes", "attributes", K_ATTRIBUTES),
    KEY("droppedAttributesCount", "dropped_attributes_count", K_DROPPED_ATTRIBUTES),
    KEY("entityRefs", "entity_refs", K_ENTITY_REFS),
};

static int get_resource(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                        resource_t **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        if (rc == 1) {
            *out = NULL;
        }
        return rc < 0 ? rc : 0;
    }
    resource_t *r;
    NEW_MSG(d, r, opentelemetry__proto__resource__v1__resource__init);
    if (!r) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, resource_keys, TH_ARRAY_SIZE(resource_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_ATTRIBUTES:
            fp.name = "attributes";
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, r->n_attributes,
                           r->attributes);
            break;
        case K_DROPPED_ATTRIBUTES:
            fp.name = "dropped_attributes_count";
            rc = get_u32(d, &fp, &v, &r->dropped_attributes_count);
            break;
        case K_ENTITY_REFS:
            fp.name = "entity_refs";
            rc = GET_ARRAY(d, &fp, &v, elem_entity, 0, r->n_entity_refs, r->entity_refs);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = r;
    return 0;
}

enum { K_NAME = 1, K_VERSION, K_SCOPE_ATTRIBUTES, K_SCOPE_DROPPED };
static const struct key scope_keys[] = {
    KEY("name", "name", K_NAME),
    KEY("version", "version", K_VERSION),
    KEY("attributes", "attributes", K_SCOPE_ATTRIBUTES),
    KEY("droppedAttributesCount", "dropped_attributes_count", K_SCOPE_DROPPED),
};

static int get_scope(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, scope_t **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        if (rc == 1) {
            *out = NULL;
        }
        return rc < 0 ? rc : 0;
    }
    scope_t *s;
    NEW_MSG(d, s, opentelemetry__proto__common__v1__instrumentation_scope__init);
    if (!s) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, scope_keys, TH_ARRAY_SIZE(scope_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_NAME:
            fp.name = "name";
            rc = get_string(d, &fp, &v, &s->name);
            break;
        case K_VERSION:
            fp.name = "version";
            rc = get_string(d, &fp, &v, &s->version);
            break;
        case K_SCOPE_ATTRIBUTES:
            fp.name = "attributes";
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, s->n_attributes,
                           s->attributes);
            break;
        case K_SCOPE_DROPPED:
            fp.name = "dropped_attributes_count";
            rc = get_u32(d, &fp, &v, &s->dropped_attributes_count);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = s;
    return 0;
}

enum { K_TIME = 1, K_EVENT_NAME, K_EVENT_ATTRIBUTES, K_EVENT_DROPPED };
static const struct key event_keys[] = {
    KEY("timeUnixNano", "time_unix_nano", K_TIME),
    KEY("name", "name", K_EVENT_NAME),
    KEY("attributes", "attributes", K_EVENT_ATTRIBUTES),
    KEY("droppedAttributesCount", "dropped_attributes_count", K_EVENT_DROPPED),
};

static int elem_event(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    event_t *e;
    NEW_MSG(d, e, opentelemetry__proto__trace__v1__span__event__init);
    if (!e) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, event_keys, TH_ARRAY_SIZE(event_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_TIME:
            fp.name = "time_unix_nano";
            rc = get_u64(d, &fp, &v, &e->time_unix_nano);
            break;
        case K_EVENT_NAME:
            fp.name = "name";
            rc = get_string(d, &fp, &v, &e->name);
            break;
        case K_EVENT_ATTRIBUTES:
            fp.name = "attributes";
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, e->n_attributes,
                           e->attributes);
            break;
        case K_EVENT_DROPPED:
            fp.name = "dropped_attributes_count";
            rc = get_u32(d, &fp, &v, &e->dropped_attributes_count);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = e;
    return 0;
}

enum {
    K_TRACE_ID = 1,
    K_SPAN_ID,
    K_TRACE_STATE,
    K_PARENT_SPAN_ID,
    K_FLAGS,
    K_SPAN_NAME,
    K_KIND,
    K_START,
    K_END,
    K_SPAN_ATTRIBUTES,
    K_SPAN_DROPPED_ATTRIBUTES,
    K_EVENTS,
    K_DROPPED_EVENTS,
    K_LINKS,
    K_DROPPED_LINKS,
    K_STATUS,
    K_LINK_DROPPED_ATTRIBUTES,
};

static const struct key link_keys[] = {
    KEY("traceId", "trace_id", K_TRACE_ID),
    KEY("spanId", "span_id", K_SPAN_ID),
    KEY("traceState", "trace_state", K_TRACE_STATE),
    KEY("attributes", "attributes", K_SPAN_ATTRIBUTES),
    KEY("droppedAttributesCount", "dropped_attributes_count", K_LINK_DROPPED_ATTRIBUTES),
    KEY("flags", "flags", K_FLAGS),
};

static int elem_link(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    link_t *l;
    NEW_MSG(d, l, opentelemetry__proto__trace__v1__span__link__init);
    if (!l) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, link_keys, TH_ARRAY_SIZE(link_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_TRACE_ID:
            fp.name = "trace_id";
            rc = get_id(d, &fp, &v, &l->trace_id);
            break;
        case K_SPAN_ID:
            fp.name = "span_id";
            rc = get_id(d, &fp, &v, &l->span_id);
            break;
        case K_TRACE_STATE:
            fp.name = "trace_state";
            rc = get_string(d, &fp, &v, &l->trace_state);
            break;
        case K_SPAN_ATTRIBUTES:
            fp.name = "attributes";
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, l->n_attributes,
                           l->attributes);
            break;
        case K_LINK_DROPPED_ATTRIBUTES:
            fp.name = "dropped_attributes_count";
            rc = get_u32(d, &fp, &v, &l->dropped_attributes_count);
            break;
        case K_FLAGS:
            fp.name = "flags";
            rc = get_u32(d, &fp, &v, &l->flags);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = l;
    return 0;
}

enum { K_STATUS_MESSAGE = 1, K_STATUS_CODE };
static const struct key status_keys[] = {
    KEY("message", "message", K_STATUS_MESSAGE),
    KEY("code", "code", K_STATUS_CODE),
};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                           "STATUS_CODE_ERROR"};

static int get_status(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                      status_t **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        if (rc == 1) {
            *out = NULL;
        }
        return rc < 0 ? rc : 0;
    }
    status_t *s;
    NEW_MSG(d, s, opentelemetry__proto__trace__v1__status__init);
    if (!s) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, status_keys, TH_ARRAY_SIZE(status_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        int code = (int)s->code;
        switch (id) {
        case K_STATUS_MESSAGE:
            fp.name = "message";
            rc = get_string(d, &fp, &v, &s->message);
            break;
        case K_STATUS_CODE:
            fp.name = "code";
            rc = get_enum(d, &fp, &v, status_names, TH_ARRAY_SIZE(status_names), &code);
            s->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)code;
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = s;
    return 0;
}

/* In the order the Go Collector and the JS SDK write them (field-number order). */
static const struct key span_keys[] = {
    KEY("traceId", "trace_id", K_TRACE_ID),
    KEY("spanId", "span_id", K_SPAN_ID),
    KEY("traceState", "trace_state", K_TRACE_STATE),
    KEY("parentSpanId", "parent_span_id", K_PARENT_SPAN_ID),
    KEY("flags", "flags", K_FLAGS),
    KEY("name", "name", K_SPAN_NAME),
    KEY("kind", "kind", K_KIND),
    KEY("startTimeUnixNano", "start_time_unix_nano", K_START),
    KEY("endTimeUnixNano", "end_time_unix_nano", K_END),
    KEY("attributes", "attributes", K_SPAN_ATTRIBUTES),
    KEY("droppedAttributesCount", "dropped_attributes_count", K_SPAN_DROPPED_ATTRIBUTES),
    KEY("events", "events", K_EVENTS),
    KEY("droppedEventsCount", "dropped_events_count", K_DROPPED_EVENTS),
    KEY("links", "links", K_LINKS),
    KEY("droppedLinksCount", "dropped_links_count", K_DROPPED_LINKS),
    KEY("status", "status", K_STATUS),
};
static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};

static int elem_span(struct jdec *d, const struct jpath *at, const th_json_tok_t *t, void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    if (++d->spans > d->lim.max_spans) {
        th__otlp_errf(d->err, "request has more than %llu spans (" TH_OTLP_KEY_SPANS ")",
                      (unsigned long long)d->lim.max_spans);
        return TH_E2BIG;
    }
    th_otlp_span_t *s;
    NEW_MSG(d, s, opentelemetry__proto__trace__v1__span__init);
    if (!s) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, span_keys, TH_ARRAY_SIZE(span_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        int kind = (int)s->kind;
        switch (id) {
        case K_TRACE_ID:
            fp.name = "trace_id";
            rc = get_id(d, &fp, &v, &s->trace_id);
            break;
        case K_SPAN_ID:
            fp.name = "span_id";
            rc = get_id(d, &fp, &v, &s->span_id);
            break;
        case K_PARENT_SPAN_ID:
            fp.name = "parent_span_id";
            rc = get_id(d, &fp, &v, &s->parent_span_id);
            break;
        case K_TRACE_STATE:
            fp.name = "trace_state";
            rc = get_string(d, &fp, &v, &s->trace_state);
            break;
        case K_FLAGS:
            fp.name = "flags";
            rc = get_u32(d, &fp, &v, &s->flags);
            break;
        case K_SPAN_NAME:
            fp.name = "name";
            rc = get_string(d, &fp, &v, &s->name);
            break;
        case K_KIND:
            fp.name = "kind";
            rc = get_enum(d, &fp, &v, kind_names, TH_ARRAY_SIZE(kind_names), &kind);
            s->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
            break;
        case K_START:
            fp.name = "start_time_unix_nano";
            rc = get_u64(d, &fp, &v, &s->start_time_unix_nano);
            break;
        case K_END:
            fp.name = "end_time_unix_nano";
            rc = get_u64(d, &fp, &v, &s->end_time_unix_nano);
            break;
        case K_SPAN_ATTRIBUTES:
            fp.name = "attributes";
            rc = GET_ARRAY(d, &fp, &v, elem_kv, d->lim.max_attributes, s->n_attributes,
                           s->attributes);
            break;
        case K_SPAN_DROPPED_ATTRIBUTES:
            fp.name = "dropped_attributes_count";
            rc = get_u32(d, &fp, &v, &s->dropped_attributes_count);
            break;
        case K_EVENTS:
            fp.name = "events";
            rc = GET_ARRAY(d, &fp, &v, elem_event, 0, s->n_events, s->events);
            break;
        case K_DROPPED_EVENTS:
            fp.name = "dropped_events_count";
            rc = get_u32(d, &fp, &v, &s->dropped_events_count);
            break;
        case K_LINKS:
            fp.name = "links";
            rc = GET_ARRAY(d, &fp, &v, elem_link, 0, s->n_links, s->links);
            break;
        case K_DROPPED_LINKS:
            fp.name = "dropped_links_count";
            rc = get_u32(d, &fp, &v, &s->dropped_links_count);
            break;
        case K_STATUS:
            fp.name = "status";
            rc = get_status(d, &fp, &v, &s->status);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = s;
    return 0;
}

enum { K_SCOPE = 1, K_SPANS, K_SS_SCHEMA_URL };
static const struct key ss_keys[] = {
    KEY("scope", "scope", K_SCOPE),
    KEY("spans", "spans", K_SPANS),
    KEY("schemaUrl", "schema_url", K_SS_SCHEMA_URL),
};

static int elem_scope_spans(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                            void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    th_otlp_scope_spans_t *ss;
    NEW_MSG(d, ss, opentelemetry__proto__trace__v1__scope_spans__init);
    if (!ss) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, ss_keys, TH_ARRAY_SIZE(ss_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_SCOPE:
            fp.name = "scope";
            rc = get_scope(d, &fp, &v, &ss->scope);
            break;
        case K_SPANS:
            fp.name = "spans";
            rc = GET_ARRAY(d, &fp, &v, elem_span, 0, ss->n_spans, ss->spans);
            break;
        case K_SS_SCHEMA_URL:
            fp.name = "schema_url";
            rc = get_string(d, &fp, &v, &ss->schema_url);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = ss;
    return 0;
}

enum { K_RESOURCE = 1, K_SCOPE_SPANS, K_RS_SCHEMA_URL };
static const struct key rs_keys[] = {
    KEY("resource", "resource", K_RESOURCE),
    KEY("scopeSpans", "scope_spans", K_SCOPE_SPANS),
    KEY("schemaUrl", "schema_url", K_RS_SCHEMA_URL),
};

static int elem_resource_spans(struct jdec *d, const struct jpath *at, const th_json_tok_t *t,
                               void **out)
{
    int rc = open_object(d, at, t);
    if (rc) {
        return rc < 0 ? rc : 0;
    }
    th_otlp_resource_spans_t *rs;
    NEW_MSG(d, rs, opentelemetry__proto__trace__v1__resource_spans__init);
    if (!rs) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, at, &k)) == 1) {
        int id = match_key(&k, rs_keys, TH_ARRAY_SIZE(rs_keys), &hint);
        if ((rc = next(d, at, &v))) {
            return rc;
        }
        struct jpath fp = {at, NULL, 0, false};
        switch (id) {
        case K_RESOURCE:
            fp.name = "resource";
            rc = get_resource(d, &fp, &v, &rs->resource);
            break;
        case K_SCOPE_SPANS:
            fp.name = "scope_spans";
            rc = GET_ARRAY(d, &fp, &v, elem_scope_spans, 0, rs->n_scope_spans, rs->scope_spans);
            break;
        case K_RS_SCHEMA_URL:
            fp.name = "schema_url";
            rc = get_string(d, &fp, &v, &rs->schema_url);
            break;
        default:
            rc = skip(d, at, &v);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    *out = rs;
    return 0;
}

enum { K_RESOURCE_SPANS = 1 };
static const struct key req_keys[] = {
    KEY("resourceSpans", "resource_spans", K_RESOURCE_SPANS),
};

static int get_request(struct jdec *d, th_otlp_request_t **out)
{
    th_json_tok_t t;
    int rc = next(d, NULL, &t);
    if (rc) {
        return rc;
    }
    if (t.type != TH_JSON_OBJ_BEGIN) {
        return expected(d, NULL, "an object", &t);
    }
    th_otlp_request_t *req;
    NEW_MSG(d, req, opentelemetry__proto__collector__trace__v1__export_trace_service_request__init);
    if (!req) {
        return nomem(d);
    }
    th_json_tok_t k;
    th_json_tok_t v;
    size_t hint = 0;
    while ((rc = next_key(d, NULL, &k)) == 1) {
        int id = match_key(&k, req_keys, TH_ARRAY_SIZE(req_keys), &hint);
        if ((rc = next(d, NULL, &v))) {
            return rc;
        }
        if (id == K_RESOURCE_SPANS) {
            struct jpath fp = {NULL, "resource_spans", 0, false};
            rc = GET_ARRAY(d, &fp, &v, elem_resource_spans, 0, req->n_resource_spans,
                           req->resource_spans);
        } else {
            rc = skip(d, NULL, &v);
        }
        if (rc) {
            return rc;
        }
    }
    if (rc) {
        return rc;
    }
    /* Nothing may follow the request object but whitespace. */
    if ((rc = next(d, NULL, &t))) {
        return rc;
    }
    *out = req;
    return 0;
}

int th_otlp_decode_json(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                        th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err)
{
    if (err) {
        err->msg[0] = '\0';
        err->arena_limit = false;
    }
    /* The reader carries a 512-byte nesting stack: keep the state on the heap, once. */
    struct jdec *d = th_calloc(1, sizeof(*d));
    if (!d) {
        th__otlp_errf(err, "out of memory while decoding the request");
        return TH_ENOMEM;
    }
    th__otlp_limits_resolve(lim, len, &d->lim);
    d->err = err;
    th__otlp_mem_init(&d->mem, arena, (size_t)d->lim.max_arena);
    /*
     * Structural nesting of a legitimate request: 12 levels down to an attribute value, then
     * at most 4 per level of AnyValue nesting (kvlistValue, values, key/value, value). Unknown
     * fields get the same allowance, a little slack included.
     */
    th_json_reader_init(&d->r, buf ? buf : (const uint8_t *)"", buf ? len : 0,
                        16 + 4 * (d->lim.max_depth + 1));
    th_otlp_request_t *req = NULL;
    int rc = get_request(d, &req);
    if (!rc) {
        rc = th__otlp_validate(req, err);
    }
    if (!rc) {
        *out = req;
    }
    th_free(d->stack);
    th_free(d->scratch);
    th_free(d);
    return rc;
}
