/*
 * Attribute lists and values for the processors that edit them: lookups, in-place removal and
 * insertion, deep copies and equality, pcommon's AsString() rendering, and YAML typing of
 * config values. Everything new is allocated in the arena the caller passes.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processors/attributes/attributes_value.h"

ssize_t th__attributes_find(th_otlp_kv_t *const *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (kvs[i] && kvs[i]->key && !strcmp(kvs[i]->key, key)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

th_otlp_any_t *th__attributes_get(th_otlp_kv_t *const *kvs, size_t n, const char *key)
{
    ssize_t i = th__attributes_find(kvs, n, key);
    return i < 0 ? NULL : kvs[i]->value;
}

void th__attributes_remove_at(th_otlp_kv_t **kvs, size_t *n, size_t i)
{
    th_assert(i < *n);
    memmove(&kvs[i], &kvs[i + 1], (*n - i - 1) * sizeof(*kvs));
    (*n)--;
}

bool th__attributes_remove(struct th__attributes_list l, const char *key)
{
    ssize_t i = th__attributes_find(*l.kvs, *l.n, key);
    if (i < 0) {
        return false;
    }
    th__attributes_remove_at(*l.kvs, l.n, (size_t)i);
    return true;
}

int th__attributes_append(th_arena_t *a, struct th__attributes_list l, const char *key,
                          size_t keylen, th_otlp_any_t *value)
{
    th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
    char *k = th_arena_strndup(a, key, keylen);
    /* The message's array cannot grow in place (its capacity is unknown): a new one. */
    th_otlp_kv_t **v = th_arena_alloc(a, (*l.n + 1) * sizeof(*v));
    if (!kv || !k || !v) {
        return TH_ENOMEM;
    }
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = k;
    kv->value = value;
    if (*l.n > 0) {
        memcpy(v, *l.kvs, *l.n * sizeof(*v));
    }
    v[*l.n] = kv;
    *l.kvs = v;
    (*l.n)++;
    return 0;
}

static th_otlp_any_t *new_any(th_arena_t *a)
{
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    if (v) {
        opentelemetry__proto__common__v1__any_value__init(v);
    }
    return v;
}

int th__attributes_put_empty(th_arena_t *a, struct th__attributes_list l, const char *key,
                             th_otlp_any_t **out)
{
    ssize_t i = th__attributes_find(*l.kvs, *l.n, key);
    if (i >= 0) {
        th_otlp_kv_t *kv = (*l.kvs)[i];
        if (!kv->value) {
            kv->value = new_any(a);
            if (!kv->value) {
                return TH_ENOMEM;
            }
        }
        *out = kv->value;
        return 0;
    }
    th_otlp_any_t *v = new_any(a);
    if (!v) {
        return TH_ENOMEM;
    }
    int ret = th__attributes_append(a, l, key, strlen(key), v);
    if (ret == 0) {
        *out = v;
    }
    return ret;
}

void th__attributes_value_set_str(th_otlp_any_t *v, char *s)
{
    v->value_case = TH__ANY_STRING;
    v->string_value = s;
}

int th__attributes_value_set_strn(th_arena_t *a, th_otlp_any_t *v, const char *s, size_t len)
{
    char *c = th_arena_strndup(a, s, len);
    if (!c) {
        return TH_ENOMEM;
    }
    th__attributes_value_set_str(v, c);
    return 0;
}

void th__attributes_value_set_int(th_otlp_any_t *v, int64_t i)
{
    v->value_case = TH__ANY_INT;
    v->int_value = i;
}

void th__attributes_value_set_double(th_otlp_any_t *v, double d)
{
    v->value_case = TH__ANY_DOUBLE;
    v->double_value = d;
}

/* ---- Copies and equality ------------------------------------------------------------ */

int th__attributes_value_copy(th_arena_t *a, th_otlp_any_t *dst, const th_otlp_any_t *src)
{
    opentelemetry__proto__common__v1__any_value__init(dst);
    if (!src) {
        return 0;
    }
    switch (src->value_case) {
    case TH__ANY_STRING:
        return th__attributes_value_set_strn(a, dst, src->string_value,
                                             src->string_value ? strlen(src->string_value) : 0);
    case TH__ANY_BOOL:
        dst->value_case = TH__ANY_BOOL;
        dst->bool_value = src->bool_value;
        return 0;
    case TH__ANY_INT:
        th__attributes_value_set_int(dst, src->int_value);
        return 0;
    case TH__ANY_DOUBLE:
        th__attributes_value_set_double(dst, src->double_value);
        return 0;
    case TH__ANY_BYTES: {
        dst->value_case = TH__ANY_BYTES;
        dst->bytes_value.len = src->bytes_value.len;
        dst->bytes_value.data = NULL;
        if (src->bytes_value.len) {
            dst->bytes_value.data = th_arena_memdup(a, src->bytes_value.data, src->bytes_value.len);
            if (!dst->bytes_value.data) {
                return TH_ENOMEM;
            }
        }
        return 0;
    }
    case TH__ANY_ARRAY: {
        const th__attributes_array_t *s = src->array_value;
        th__attributes_array_t *d = th_arena_alloc(a, sizeof(*d));
        if (!d) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__array_value__init(d);
        dst->value_case = TH__ANY_ARRAY;
        dst->array_value = d;
        size_t n = s ? s->n_values : 0;
        if (n == 0) {
            return 0;
        }
        d->values = th_arena_alloc(a, n * sizeof(*d->values));
        if (!d->values) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            d->values[i] = th__attributes_value_dup(a, s->values[i]);
            if (!d->values[i]) {
                return TH_ENOMEM;
            }
            d->n_values++;
        }
        return 0;
    }
    case TH__ANY_KVLIST: {
        const th__attributes_kvlist_t *s = src->kvlist_value;
        th__attributes_kvlist_t *d = th_arena_alloc(a, sizeof(*d));
        if (!d) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__key_value_list__init(d);
        dst->value_case = TH__ANY_KVLIST;
        dst->kvlist_value = d;
        size_t n = s ? s->n_values : 0;
        if (n == 0) {
            return 0;
        }
        d->values = th_arena_alloc(a, n * sizeof(*d->values));
        if (!d->values) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            const th_otlp_kv_t *skv = s->values[i];
            th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
            if (!kv) {
                return TH_ENOMEM;
            }
            opentelemetry__proto__common__v1__key_value__init(kv);
            const char *key = skv && skv->key ? skv->key : "";
            kv->key = th_arena_strndup(a, key, strlen(key));
            kv->value = th__attributes_value_dup(a, skv ? skv->value : NULL);
            if (!kv->key || !kv->value) {
                return TH_ENOMEM;
            }
            d->values[d->n_values++] = kv;
        }
        return 0;
    }
    default:
        return 0; /* empty (or a string-table index, which is not supported: empty) */
    }
}

th_otlp_any_t *th__attributes_value_dup(th_arena_t *a, const th_otlp_any_t *src)
{
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    if (v && th__attributes_value_copy(a, v, src) != 0) {
        return NULL;
    }
    return v;
}

static int value_type(const th_otlp_any_t *v)
{
    if (!v) {
        return TH__ANY_EMPTY;
    }
    switch (v->value_case) {
    case TH__ANY_STRING:
    case TH__ANY_BOOL:
    case TH__ANY_INT:
    case TH__ANY_DOUBLE:
    case TH__ANY_ARRAY:
    case TH__ANY_KVLIST:
    case TH__ANY_BYTES:
        return v->value_case;
    default:
        return TH__ANY_EMPTY;
    }
}

bool th__attributes_value_equal(const th_otlp_any_t *x, const th_otlp_any_t *y)
{
    int t = value_type(x);
    if (t != value_type(y)) {
        return false;
    }
    switch (t) {
    case TH__ANY_STRING:
        return !strcmp(x->string_value ? x->string_value : "",
                       y->string_value ? y->string_value : "");
    case TH__ANY_BOOL:
        return !x->bool_value == !y->bool_value;
    case TH__ANY_INT:
        return x->int_value == y->int_value;
    case TH__ANY_DOUBLE:
        return x->double_value == y->double_value;
    case TH__ANY_BYTES:
        return x->bytes_value.len == y->bytes_value.len &&
               (x->bytes_value.len == 0 ||
                !memcmp(x->bytes_value.data, y->bytes_value.data, x->bytes_value.len));
    case TH__ANY_ARRAY: {
        size_t nx = x->array_value ? x->array_value->n_values : 0;
        size_t ny = y->array_value ? y->array_value->n_values : 0;
        if (nx != ny) {
            return false;
        }
        for (size_t i = 0; i < nx; i++) {
            if (!th__attributes_value_equal(x->array_value->values[i], y->array_value->values[i])) {
                return false;
            }
        }
        return true;
    }
    case TH__ANY_KVLIST: {
        size_t nx = x->kvlist_value ? x->kvlist_value->n_values : 0;
        size_t ny = y->kvlist_value ? y->kvlist_value->n_values : 0;
        if (nx != ny) {
            return false;
        }
        /* Maps compare by content, whatever the order of their entries. */
        for (size_t i = 0; i < nx; i++) {
            const th_otlp_kv_t *kv = x->kvlist_value->values[i];
            ssize_t j = th__attributes_find(y->kvlist_value->values, ny, kv->key ? kv->key : "");
            if (j < 0 ||
                !th__attributes_value_equal(kv->value, y->kvlist_value->values[j]->value)) {
                return false;
            }
        }
        return true;
    }
    default:
        return true;
    }
}

const char *th__attributes_type_name(const th_otlp_any_t *v)
{
    switch (value_type(v)) {
    case TH__ANY_STRING:
        return "Str";
    case TH__ANY_BOOL:
        return "Bool";
    case TH__ANY_INT:
        return "Int";
    case TH__ANY_DOUBLE:
        return "Double";
    case TH__ANY_ARRAY:
        return "Slice";
    case TH__ANY_KVLIST:
        return "Map";
    case TH__ANY_BYTES:
        return "Bytes";
    default:
        return "Empty";
    }
}

/* ---- Text rendering -------------------------------------------------------------------- */

/* A growable text buffer in an arena (doubling; the old blocks stay in the arena). */
struct tbuf {
    th_arena_t *a;
    char *p;
    size_t len, cap;
    bool oom;
    bool bad; /* JSON: a value encoding/json refuses (NaN, infinities) */
};

static void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = th_arena_alloc(b->a, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        if (b->len) {
            memcpy(p, b->p, b->len);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_str(struct tbuf *b, const char *s)
{
    tb_put(b, s, strlen(s));
}

/*
 * The shortest decimal digits of a finite double that read back to it: digits without a dot
 * in @p digits and the decimal exponent of the first digit (d.ddd × 10^exp). For a normal
 * double the shortest %e text is found by trying each precision, which is what Go's
 * shortest formatting produces too.
 */
static void shortest_digits(double d, char *digits, size_t cap, int *exp10)
{
    char buf[64];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    /* buf is "[-]d[.ddd]e±XX" */
    const char *p = buf;
    if (*p == '-') {
        p++;
    }
    size_t n = 0;
    for (; *p && *p != 'e'; p++) {
        if (isdigit((unsigned char)*p) && n + 1 < cap) {
            digits[n++] = *p;
        }
    }
    /* Drop trailing zeros ("1.000e+00" cannot happen with the shortest precision, but 0 can). */
    while (n > 1 && digits[n - 1] == '0') {
        n--;
    }
    digits[n] = '\0';
    *exp10 = *p == 'e' ? atoi(p + 1) : 0;
}

size_t th__attributes_fmt_double_plain(double d, char *buf, size_t cap)
{
    if (isnan(d)) {
        return (size_t)snprintf(buf, cap, "NaN");
    }
    if (isinf(d)) {
        return (size_t)snprintf(buf, cap, d > 0 ? "+Inf" : "-Inf");
    }
    char digits[32];
    int e;
    size_t n = 0;
    if (signbit(d)) {
        buf[n++] = '-';
    }
    if (d == 0) {
        buf[n++] = '0';
        buf[n] = '\0';
        return n;
    }
    shortest_digits(d, digits, sizeof(digits), &e);
    size_t nd = strlen(digits);
    if (e >= 0) {
        /* integer part: digits[0..e], padded with zeros */
        for (int i = 0; i <= e && n + 2 < cap; i++) {
            buf[n++] = (size_t)i < nd ? digits[i] : '0';
        }
        if ((size_t)e + 1 < nd) {
            buf[n++] = '.';
            for (size_t i = (size_t)e + 1; i < nd && n + 1 < cap; i++) {
                buf[n++] = digits[i];
            }
        }
    } else {
        buf[n++] = '0';
        buf[n++] = '.';
        for (int i = 0; i < -e - 1 && n + 2 < cap; i++) {
            buf[n++] = '0';
        }
        for (size_t i = 0; i < nd && n + 1 < cap; i++) {
            buf[n++] = digits[i];
        }
    }
    buf[n] = '\0';
    return n;
}

/* Go's float64AsString / encoding/json number: 'f' form, or 'e' form ("1e+21", "1.5e-7")
 * below 1e-6 and from 1e21. */
static size_t fmt_double_es6(double d, char *buf, size_t cap)
{
    double abs = fabs(d);
    if (abs == 0 || (abs >= 1e-6 && abs < 1e21)) {
        return th__attributes_fmt_double_plain(d, buf, cap);
    }
    char digits[32];
    int e;
    shortest_digits(d, digits, sizeof(digits), &e);
    size_t n = 0;
    if (d < 0) {
        buf[n++] = '-';
    }
    buf[n++] = digits[0];
    if (digits[1]) {
        buf[n++] = '.';
        for (size_t i = 1; digits[i] && n + 8 < cap; i++) {
            buf[n++] = digits[i];
        }
    }
    /* Only exponents from 21 up and from -7 down get here: Go writes "e+21" and "e-07", and
     * the ES6 clean-up turns "e-07" into "e-7", which is plain %+d. */
    n += (size_t)snprintf(buf + n, cap - n, "e%+d", e);
    return n;
}

static void tb_base64(struct tbuf *b, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                       i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
        tb_put(b, out, 4);
    }
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 when it is not valid. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* A JSON string as Go's encoding/json writes it: HTML-safe (<, >, & escaped), \b \f \n \r \t,
 * other controls as \u00XX, U+2028/2029 escaped, invalid UTF-8 as \ufffd. */
static void tb_json_string(struct tbuf *b, const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    tb_put(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t adv = 1;
        if (c < 0x80) {
            switch (c) {
            case '"':
                esc = "\\\"";
                break;
            case '\\':
                esc = "\\\\";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            default:
                if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                    snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                    esc = ubuf;
                }
            }
        } else {
            adv = utf8_len(s + i, len - i);
            if (adv == 0) {
                esc = "\\ufffd";
                adv = 1;
            } else if (adv == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
                       (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
                esc = s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            }
        }
        if (esc) {
            tb_put(b, str + start, i - start);
            tb_str(b, esc);
            start = i + adv;
        }
        i += adv;
    }
    tb_put(b, str + start, len - start);
    tb_put(b, "\"", 1);
}

static void tb_json_value(struct tbuf *b, const th_otlp_any_t *v, int depth);

/* Map entries sort by key in byte order, as Go sorts map keys; of equal keys the last is kept
 * (pcommon's AsRaw overwrites earlier duplicates). */
static int kv_cmp(const void *x, const void *y)
{
    const th_otlp_kv_t *a = *(th_otlp_kv_t *const *)x;
    const th_otlp_kv_t *b = *(th_otlp_kv_t *const *)y;
    return strcmp(a->key ? a->key : "", b->key ? b->key : "");
}

static void tb_json_map(struct tbuf *b, const th__attributes_kvlist_t *l, int depth)
{
    size_t n = l ? l->n_values : 0;
    tb_put(b, "{", 1);
    if (n == 0) {
        tb_put(b, "}", 1);
        return;
    }
    /* Sort a copy of the pointers, stably, so equal keys keep their order. */
    th_otlp_kv_t **sorted = th_arena_alloc(b->a, n * sizeof(*sorted));
    if (!sorted) {
        b->oom = true;
        return;
    }
    memcpy(sorted, l->values, n * sizeof(*sorted));
    /* Insertion sort: stable, and attribute maps are small. */
    for (size_t i = 1; i < n; i++) {
        th_otlp_kv_t *x = sorted[i];
        size_t j = i;
        while (j > 0 && kv_cmp(&sorted[j - 1], &x) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = x;
    }
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && kv_cmp(&sorted[i], &sorted[i + 1]) == 0) {
            continue; /* a later entry has the same key and wins */
        }
        if (!first) {
            tb_put(b, ",", 1);
        }
        first = false;
        const char *k = sorted[i]->key ? sorted[i]->key : "";
        tb_json_string(b, k, strlen(k));
        tb_put(b, ":", 1);
        tb_json_value(b, sorted[i]->value, depth + 1);
    }
    tb_put(b, "}", 1);
}

static void tb_json_value(struct tbuf *b, const th_otlp_any_t *v, int depth)
{
    char num[400];
    if (depth > 256) {
        b->bad = true; /* deeper than any decoder lets through; refuse like a failed Marshal */
        return;
    }
    switch (value_type(v)) {
    case TH__ANY_STRING: {
        const char *s = v->string_value ? v->string_value : "";
        tb_json_string(b, s, strlen(s));
        break;
    }
    case TH__ANY_BOOL:
        tb_str(b, v->bool_value ? "true" : "false");
        break;
    case TH__ANY_INT:
        snprintf(num, sizeof(num), "%" PRId64, v->int_value);
        tb_str(b, num);
        break;
    case TH__ANY_DOUBLE:
        if (!isfinite(v->double_value)) {
            b->bad = true;
            return;
        }
        tb_put(b, num, fmt_double_es6(v->double_value, num, sizeof(num)));
        break;
    case TH__ANY_BYTES:
        tb_put(b, "\"", 1);
        tb_base64(b, v->bytes_value.data, v->bytes_value.len);
        tb_put(b, "\"", 1);
        break;
    case TH__ANY_ARRAY: {
        tb_put(b, "[", 1);
        size_t n = v->array_value ? v->array_value->n_values : 0;
        for (size_t i = 0; i < n; i++) {
            if (i) {
                tb_put(b, ",", 1);
            }
            tb_json_value(b, v->array_value->values[i], depth + 1);
        }
        tb_put(b, "]", 1);
        break;
    }
    case TH__ANY_KVLIST:
        tb_json_map(b, v->kvlist_value, depth);
        break;
    default:
        tb_str(b, "null");
    }
}

int th__attributes_value_as_string(th_arena_t *a, const th_otlp_any_t *v, const char **out,
                                   size_t *len)
{
    char num[400];
    const char *s = NULL;
    size_t n = 0;
    switch (value_type(v)) {
    case TH__ANY_STRING:
        *out = v->string_value ? v->string_value : "";
        *len = strlen(*out);
        return 0;
    case TH__ANY_BOOL:
        s = v->bool_value ? "true" : "false";
        n = strlen(s);
        break;
    case TH__ANY_INT:
        n = (size_t)snprintf(num, sizeof(num), "%" PRId64, v->int_value);
        s = num;
        break;
    case TH__ANY_DOUBLE:
        if (isfinite(v->double_value)) {
            n = fmt_double_es6(v->double_value, num, sizeof(num));
        } else {
            /* pcommon: fmt.Sprintf("json: unsupported value: %s", FormatFloat(f, 'g')) */
            n = (size_t)snprintf(num, sizeof(num), "json: unsupported value: %s",
                                 isnan(v->double_value) ? "NaN"
                                 : v->double_value > 0  ? "+Inf"
                                                        : "-Inf");
        }
        s = num;
        break;
    case TH__ANY_BYTES:
    case TH__ANY_ARRAY:
    case TH__ANY_KVLIST: {
        struct tbuf b = {.a = a};
        if (v->value_case == TH__ANY_BYTES) {
            tb_base64(&b, v->bytes_value.data, v->bytes_value.len);
        } else {
            tb_json_value(&b, v, 0);
        }
        if (b.oom) {
            return TH_ENOMEM;
        }
        /* A value encoding/json refuses renders as "" (pcommon ignores the error). */
        *out = b.bad || !b.p ? "" : b.p;
        *len = b.bad || !b.p ? 0 : b.len;
        return 0;
    }
    default:
        *out = "";
        *len = 0;
        return 0;
    }
    char *c = th_arena_strndup(a, s, n);
    if (!c) {
        return TH_ENOMEM;
    }
    *out = c;
    *len = n;
    return 0;
}

/* ---- YAML typing of config values ------------------------------------------------------ */

/* yaml.v3's int resolution: strconv.ParseInt(s without '_', 0, 64), then ParseUint (a uint64
 * above INT64_MAX wraps when pcommon stores it as an int). */
static bool yaml_int(const char *text, size_t len, int64_t *out)
{
    char buf[80];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '_') {
            continue;
        }
        if (n + 1 >= sizeof(buf)) {
            return false;
        }
        buf[n++] = text[i];
    }
    buf[n] = '\0';
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O')) {
        base = 8;
        p += 2;
    } else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B')) {
        base = 2;
        p += 2;
    } else if (p[0] == '0' && p[1]) {
        base = 8;
        p += 1;
    }
    if (!*p) {
        return false;
    }
    for (const char *q = p; *q; q++) {
        int c = tolower((unsigned char)*q);
        int d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 99;
        if (d >= base) {
            return false;
        }
    }
    errno = 0;
    unsigned long long u = strtoull(p, NULL, base);
    if (errno == ERANGE) {
        return false;
    }
    if (neg) {
        if (u > (unsigned long long)INT64_MAX + 1u) {
            return false;
        }
        *out = (int64_t)(0 - u);
    } else {
        *out = (int64_t)u; /* above INT64_MAX: a uint64 that pcommon's SetInt wraps */
    }
    return true;
}

/* yaml.v3's float resolution: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ after
 * dropping '_', and the .inf/.nan spellings. */
static bool yaml_float(const char *text, size_t len, double *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"};
    static const char *const ninf[] = {"-.inf", "-.Inf", "-.INF"};
    static const char *const nan_[] = {".nan", ".NaN", ".NAN"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(inf); i++) {
        if (!strcmp(text, inf[i])) {
            *out = INFINITY;
            return true;
        }
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(ninf); i++) {
        if (!strcmp(text, ninf[i])) {
            *out = -INFINITY;
            return true;
        }
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(nan_); i++) {
        if (!strcmp(text, nan_[i])) {
            *out = NAN;
            return true;
        }
    }
    char buf[128];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '_') {
            continue;
        }
        if (n + 1 >= sizeof(buf)) {
            return false;
        }
        buf[n++] = text[i];
    }
    buf[n] = '\0';
    const char *p = buf;
    if (*p == '+' || *p == '-') {
        p++;
    }
    size_t digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        size_t frac = 0;
        while (isdigit((unsigned char)*p)) {
            p++;
            frac++;
        }
        if (!digits && !frac) {
            return false;
        }
    } else if (!digits) {
        return false;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        while (isdigit((unsigned char)*p)) {
            p++;
        }
    }
    if (*p) {
        return false;
    }
    *out = strtod(buf, NULL);
    return true;
}

int th__attributes_value_from_node(th_arena_t *a, const th_node_t *n, th_otlp_any_t **out)
{
    *out = NULL;
    if (!n || n->kind == TH_NODE_NULL) {
        return 0;
    }
    th_otlp_any_t *v = new_any(a);
    if (!v) {
        return TH_ENOMEM;
    }
    switch (n->kind) {
    case TH_NODE_SCALAR: {
        int64_t i;
        double d;
        if (n->quoted) {
            if (th__attributes_value_set_strn(a, v, n->text, n->len) != 0) {
                return TH_ENOMEM;
            }
        } else if (!strcmp(n->text, "true") || !strcmp(n->text, "True") ||
                   !strcmp(n->text, "TRUE")) {
            v->value_case = TH__ANY_BOOL;
            v->bool_value = true;
        } else if (!strcmp(n->text, "false") || !strcmp(n->text, "False") ||
                   !strcmp(n->text, "FALSE")) {
            v->value_case = TH__ANY_BOOL;
            v->bool_value = false;
        } else if (yaml_int(n->text, n->len, &i)) {
            th__attributes_value_set_int(v, i);
        } else if (yaml_float(n->text, n->len, &d)) {
            th__attributes_value_set_double(v, d);
        } else if (th__attributes_value_set_strn(a, v, n->text, n->len) != 0) {
            return TH_ENOMEM;
        }
        break;
    }
    case TH_NODE_SEQ: {
        th__attributes_array_t *arr = th_arena_alloc(a, sizeof(*arr));
        if (!arr) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__array_value__init(arr);
        arr->values = th_arena_alloc(a, (n->n ? n->n : 1) * sizeof(*arr->values));
        if (!arr->values) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < n->n; i++) {
            th_otlp_any_t *item;
            if (th__attributes_value_from_node(a, n->items[i], &item) != 0) {
                return TH_ENOMEM;
            }
            if (!item) {
                item = new_any(a); /* a null item is an empty value */
                if (!item) {
                    return TH_ENOMEM;
                }
            }
            arr->values[arr->n_values++] = item;
        }
        v->value_case = TH__ANY_ARRAY;
        v->array_value = arr;
        break;
    }
    case TH_NODE_MAP: {
        th__attributes_kvlist_t *l = th_arena_alloc(a, sizeof(*l));
        if (!l) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__key_value_list__init(l);
        l->values = th_arena_alloc(a, (n->n ? n->n : 1) * sizeof(*l->values));
        if (!l->values) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < n->n; i++) {
            th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
            if (!kv) {
                return TH_ENOMEM;
            }
            opentelemetry__proto__common__v1__key_value__init(kv);
            kv->key = th_arena_strndup(a, n->pairs[i].key, strlen(n->pairs[i].key));
            if (!kv->key || th__attributes_value_from_node(a, n->pairs[i].value, &kv->value)) {
                return TH_ENOMEM;
            }
            if (!kv->value && !(kv->value = new_any(a))) {
                return TH_ENOMEM;
            }
            l->values[l->n_values++] = kv;
        }
        v->value_case = TH__ANY_KVLIST;
        v->kvlist_value = l;
        break;
    }
    default:
        break;
    }
    *out = v;
    return 0;
}
