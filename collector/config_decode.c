/*
 * Field tables: decoding a node tree into a component's typed config struct, the defaults of a
 * table, and the scalar parsers (bools, integers, numbers, Go durations, sizes). Defaults are
 * text and go through exactly the code that decodes user input, so a bad default is caught by
 * the same checks. Typing follows the Collector's confmap with weak typing off (see
 * th_cfg_decode in config.h for the rules and the one deliberate leniency: any plain scalar is
 * accepted as a string).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "th/config.h"
#include "th/log.h"

struct dctx {
    th_arena_t *a;
    char *err;
    size_t errlen;
};

/* ---- Messages ---------------------------------------------------------------------------- */

/* "path::key: message"; either part may be missing. */
static int fail(struct dctx *d, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct dctx *d, const char *path, const char *key, const char *fmt, ...)
{
    int n;
    bool have_path = path && *path;
    if (have_path && key) {
        n = snprintf(d->err, d->errlen, "%s::%s: ", path, key);
    } else if (have_path || key) {
        n = snprintf(d->err, d->errlen, "%s: ", have_path ? path : key);
    } else {
        n = 0;
    }
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n < d->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TH_ECONFIG;
}

/* A printable, quoted, shortened copy of a value for messages. Values can hold anything, so
 * control characters are escaped to keep the message one line. */
static const char *show(const char *s, size_t len, char *buf, size_t cap)
{
    /* Room kept at the end for "...", the closing quote and the NUL. */
    const size_t tail = 5;
    size_t n = 0;
    buf[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char piece[8];
        size_t pl;
        if (c < 0x20 || c == 0x7f) {
            pl = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", c);
        } else if (c == '"' || c == '\\') {
            piece[0] = '\\';
            piece[1] = (char)c;
            pl = 2;
        } else {
            piece[0] = (char)c;
            pl = 1;
        }
        if (n + pl + tail > cap) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(buf + n, piece, pl);
        n += pl;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

static const char *show_node(const struct th_cfg_field *f, const th_node_t *v, char *buf,
                             size_t cap)
{
    if (f->flags & TH_CFG_F_SECRET) {
        snprintf(buf, cap, "(secret, not shown)");
        return buf;
    }
    return show(v->text, v->len, buf, cap);
}

static const char *kind_noun(const th_node_t *v)
{
    switch (v->kind) {
    case TH_NODE_MAP:
        return "a map";
    case TH_NODE_SEQ:
        return "a list";
    case TH_NODE_NULL:
        return "null";
    case TH_NODE_SCALAR:
        break;
    }
    return v->quoted ? "a quoted string" : "a scalar";
}

/* Print a duration bound the way users write them ("5s", "200ms"). */
static void fmt_duration(double ns, char *buf, size_t cap)
{
    static const struct {
        const char *u;
        double m;
    } units[] = {{"h", 3600e9}, {"m", 60e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1}};
    if (ns == 0) {
        snprintf(buf, cap, "0s");
        return;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(units); i++) {
        if (fmod(ns, units[i].m) == 0) {
            snprintf(buf, cap, "%.0f%s", ns / units[i].m, units[i].u);
            return;
        }
    }
    snprintf(buf, cap, "%.0fns", ns);
}

static void fmt_size(double b, char *buf, size_t cap)
{
    static const struct {
        const char *u;
        double m;
    } units[] = {{"GiB", 1073741824.0}, {"MiB", 1048576.0}, {"KiB", 1024.0}};
    for (size_t i = 0; i < TH_ARRAY_SIZE(units); i++) {
        if (b != 0 && fmod(b, units[i].m) == 0) {
            snprintf(buf, cap, "%.0f%s", b / units[i].m, units[i].u);
            return;
        }
    }
    snprintf(buf, cap, "%.0f", b);
}

static void fmt_bound(const struct th_cfg_field *f, double v, char *buf, size_t cap)
{
    if (f->type == TH_CFG_DURATION) {
        fmt_duration(v, buf, cap);
    } else if (f->type == TH_CFG_SIZE) {
        fmt_size(v, buf, cap);
    } else {
        snprintf(buf, cap, "%.17g", v);
    }
}

/* Check v against the row's bounds; the message shows the bounds in the field's own units. */
static int check_bounds(struct dctx *d, const struct th_cfg_field *f, double v, const th_node_t *n,
                        const char *path, const char *key)
{
    if (f->min == 0 && f->max == 0) {
        return 0;
    }
    if (v >= f->min && v <= f->max) {
        return 0;
    }
    char lo[48], hi[48], val[96];
    fmt_bound(f, f->min, lo, sizeof(lo));
    fmt_bound(f, f->max, hi, sizeof(hi));
    show_node(f, n, val, sizeof(val));
    if (isinf(f->max)) {
        return fail(d, path, key, "value %s is out of range (must be at least %s)", val, lo);
    }
    if (isinf(f->min)) {
        return fail(d, path, key, "value %s is out of range (must be at most %s)", val, hi);
    }
    return fail(d, path, key, "value %s is out of range (must be between %s and %s)", val, lo, hi);
}

/* ---- Scalar parsers ---------------------------------------------------------------------- */

static bool parse_bool(const char *s, bool *out)
{
    /* YAML 1.2 core schema, as yaml.v3 resolves into the Collector's map[string]any: yes/no/
     * on/off are strings there, and strings do not decode into bools. */
    static const char *const t[] = {"true", "True", "TRUE"};
    static const char *const f[] = {"false", "False", "FALSE"};
    for (size_t i = 0; i < 3; i++) {
        if (!strcmp(s, t[i])) {
            *out = true;
            return true;
        }
        if (!strcmp(s, f[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Copy s without '_' (YAML digit separators) into buf; false when too long or empty. */
static bool strip_underscores(const char *s, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') {
            if (i == 0) {
                return false;
            }
            continue;
        }
        if (n + 1 >= cap) {
            return false;
        }
        buf[n++] = s[i];
    }
    buf[n] = '\0';
    return n > 0;
}

static bool all_digits(const char *s, int base)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        int c = (unsigned char)*s;
        int v = isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : 99;
        if (v >= base) {
            return false;
        }
    }
    return true;
}

/* A YAML float (yaml.v3's rules without .inf/.nan):
 * [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool parse_float_text(const char *s, size_t len, double *out)
{
    char buf[128];
    if (!strip_underscores(s, len, buf, sizeof(buf))) {
        return false;
    }
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
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits) {
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
    double v = strtod(buf, NULL);
    if (!isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* A YAML integer as yaml.v3 reads it (Go's ParseInt with base 0 after dropping '_'): decimal,
 * 0x hex, 0o or leading-0 octal, 0b binary, with a sign. An integral float ("1e3", "2.0")
 * also counts, as mapstructure converts floats into ints. */
static bool parse_int_text(const char *s, size_t len, int64_t *out)
{
    char buf[96];
    if (!strip_underscores(s, len, buf, sizeof(buf))) {
        return false;
    }
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
    } else if (p[0] == '0' && p[1] && all_digits(p + 1, 8)) {
        base = 8;
        p += 1;
    }
    if (all_digits(p, base)) {
        errno = 0;
        unsigned long long u = strtoull(p, NULL, base);
        if (errno == ERANGE || u > (unsigned long long)INT64_MAX + (neg ? 1u : 0u)) {
            return false;
        }
        *out = neg ? (int64_t)(0 - u) : (int64_t)u;
        return true;
    }
    double d;
    if (base == 10 && parse_float_text(s, len, &d) && d == floor(d) &&
        d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        *out = (int64_t)d;
        return true;
    }
    return false;
}

int th_parse_duration(const char *s, int64_t *ns)
{
    if (!s) {
        return TH_EINVAL;
    }
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    /* Our extension of Go's syntax: a bare integer is nanoseconds, as the Collector decodes
     * an integer YAML value into a time.Duration. */
    if (all_digits(p, 10)) {
        errno = 0;
        unsigned long long u = strtoull(p, NULL, 10);
        if (errno == ERANGE || u > (unsigned long long)INT64_MAX + (neg ? 1u : 0u)) {
            return TH_EINVAL;
        }
        *ns = neg ? (int64_t)(0 - u) : (int64_t)u;
        return 0;
    }
    if (!*p) {
        return TH_EINVAL;
    }
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"ns", 1ull},           {"us", 1000ull},
        {"\xc2\xb5s", 1000ull}, /* U+00B5 */
        {"\xce\xbcs", 1000ull}, /* U+03BC */
        {"ms", 1000000ull},     {"s", 1000000000ull},
        {"m", 60000000000ull},  {"h", 3600000000000ull},
    };
    const uint64_t limit = 1ull << 63;
    uint64_t total = 0;
    while (*p) {
        if (!(isdigit((unsigned char)*p) || *p == '.')) {
            return TH_EINVAL;
        }
        uint64_t v = 0;
        bool pre = false;
        while (isdigit((unsigned char)*p)) {
            if (v > (limit - 1) / 10) {
                return TH_EINVAL;
            }
            v = v * 10 + (uint64_t)(*p - '0');
            pre = true;
            p++;
        }
        uint64_t f = 0;
        double scale = 1;
        bool post = false;
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                /* Digits past what fits in f cannot change the result; skip them. */
                if (f <= (limit - 1) / 10) {
                    f = f * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                post = true;
                p++;
            }
        }
        if (!pre && !post) {
            return TH_EINVAL;
        }
        const char *u = p;
        while (*p && *p != '.' && !isdigit((unsigned char)*p)) {
            p++;
        }
        size_t ulen = (size_t)(p - u);
        uint64_t mult = 0;
        for (size_t i = 0; i < TH_ARRAY_SIZE(units); i++) {
            if (strlen(units[i].name) == ulen && !strncmp(u, units[i].name, ulen)) {
                mult = units[i].mult;
                break;
            }
        }
        if (!mult) {
            return TH_EINVAL; /* missing or unknown unit */
        }
        if (v > limit / mult) {
            return TH_EINVAL;
        }
        v *= mult;
        if (f > 0) {
            /* Go computes the fraction in float64 and truncates; so do we. */
            v += (uint64_t)((double)f * ((double)mult / scale));
            if (v > limit) {
                return TH_EINVAL;
            }
        }
        total += v;
        if (total > limit) {
            return TH_EINVAL;
        }
    }
    if (!neg && total > limit - 1) {
        return TH_EINVAL;
    }
    *ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}

int th_parse_size(const char *s, int64_t *bytes)
{
    if (!s) {
        return TH_EINVAL;
    }
    const char *p = s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p)) {
        return TH_EINVAL;
    }
    while (isdigit((unsigned char)*p)) {
        if (v > (uint64_t)INT64_MAX / 10) {
            return TH_EINVAL;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    uint64_t f = 0;
    double scale = 1;
    bool frac = false;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return TH_EINVAL;
        }
        while (isdigit((unsigned char)*p)) {
            if (f <= (uint64_t)INT64_MAX / 10) {
                f = f * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
            p++;
        }
        frac = true;
    }
    if (*p == ' ') {
        p++;
        if (!*p) {
            return TH_EINVAL;
        }
    }
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1ull},          {"b", 1ull},           {"kb", 1000ull},
        {"mb", 1000000ull},  {"gb", 1000000000ull}, {"tb", 1000000000000ull},
        {"kib", 1ull << 10}, {"mib", 1ull << 20},   {"gib", 1ull << 30},
        {"tib", 1ull << 40},
    };
    uint64_t mult = 0;
    for (size_t i = 0; i < TH_ARRAY_SIZE(units); i++) {
        if (!strcasecmp(p, units[i].name)) {
            mult = units[i].mult;
            break;
        }
    }
    if (!mult || (frac && mult == 1)) {
        return TH_EINVAL; /* unknown unit, or a fraction of a byte */
    }
    if (v > (uint64_t)INT64_MAX / mult) {
        return TH_EINVAL;
    }
    v *= mult;
    if (f > 0) {
        v += (uint64_t)((double)f * ((double)mult / scale));
        if (v > (uint64_t)INT64_MAX) {
            return TH_EINVAL;
        }
    }
    *bytes = (int64_t)v;
    return 0;
}

/* ---- Decoding ---------------------------------------------------------------------------- */

static int decode_map(struct dctx *d, const struct th_cfg_field *table, const th_node_t *node,
                      void *out, const char *path, const char *skip);
static int defaults(struct dctx *d, const struct th_cfg_field *table, void *out, const char *path);

static void *field_ptr(void *base, size_t off)
{
    return (char *)base + off;
}

/* "path::key" in the arena, for the messages of nested sections. */
static const char *join(struct dctx *d, const char *path, const char *key)
{
    size_t pl = path ? strlen(path) : 0;
    size_t kl = strlen(key);
    char *s = th_arena_alloc(d->a, pl + kl + 3);
    if (!s) {
        return NULL;
    }
    if (pl) {
        memcpy(s, path, pl);
        memcpy(s + pl, "::", 2);
        pl += 2;
    }
    memcpy(s + pl, key, kl + 1);
    return s;
}

static int oom(struct dctx *d)
{
    snprintf(d->err, d->errlen, "out of memory");
    return TH_ENOMEM;
}

static const char *type_noun(enum th_cfg_type t)
{
    switch (t) {
    case TH_CFG_BOOL:
        return "a bool (true or false)";
    case TH_CFG_INT:
        return "an integer";
    case TH_CFG_DOUBLE:
        return "a number";
    case TH_CFG_STRING:
    case TH_CFG_ENUM:
        return "a string";
    case TH_CFG_DURATION:
        return "a duration (like 5s or 200ms)";
    case TH_CFG_SIZE:
        return "a size (like 4MiB or 1048576)";
    case TH_CFG_STRLIST:
        return "a list of strings";
    case TH_CFG_STRMAP:
        return "a map of strings or a list of {name, value}";
    case TH_CFG_SECTION:
    case TH_CFG_OPTIONAL:
        return "a map";
    case TH_CFG_NODE:
        return "a value";
    }
    return "a value";
}

/* The zero value a whole ${env:X} gives a typed field when X is unset or empty. */
static void set_zero(const struct th_cfg_field *f, void *p)
{
    switch (f->type) {
    case TH_CFG_BOOL:
        *(bool *)p = false;
        break;
    case TH_CFG_INT:
    case TH_CFG_DURATION:
    case TH_CFG_SIZE:
        *(int64_t *)p = 0;
        break;
    case TH_CFG_DOUBLE:
        *(double *)p = 0;
        break;
    case TH_CFG_STRING:
    case TH_CFG_ENUM:
        *(const char **)p = "";
        break;
    case TH_CFG_STRLIST:
        memset(p, 0, sizeof(th_strlist_t));
        break;
    case TH_CFG_STRMAP:
        memset(p, 0, sizeof(th_strmap_t));
        break;
    case TH_CFG_NODE:
        *(const th_node_t **)p = NULL;
        break;
    case TH_CFG_SECTION:
    case TH_CFG_OPTIONAL:
        break;
    }
}

/* Set an ENUM from text, matching the choices case-insensitively and storing the table's
 * spelling, so components can compare with strcmp. */
static int set_enum(struct dctx *d, const struct th_cfg_field *f, const char *text, size_t len,
                    void *p, const char *path, const char *key)
{
    if (!f->choices) {
        const char *s = th_arena_strndup(d->a, text, len);
        if (!s) {
            return oom(d);
        }
        *(const char **)p = s;
        return 0;
    }
    for (size_t i = 0; f->choices[i]; i++) {
        if (strlen(f->choices[i]) == len && !strncasecmp(f->choices[i], text, len)) {
            *(const char **)p = f->choices[i];
            return 0;
        }
    }
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; f->choices[i] && n < sizeof(list); i++) {
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", f->choices[i]);
    }
    char val[96];
    const char *shown =
        (f->flags & TH_CFG_F_SECRET) ? "(secret, not shown)" : show(text, len, val, sizeof(val));
    return fail(d, path, key, "invalid value %s (expected one of: %s)", shown, list);
}

/* Decode one scalar (BOOL, INT, DOUBLE, STRING, ENUM, DURATION, SIZE) into p. */
static int decode_scalar(struct dctx *d, const struct th_cfg_field *f, const th_node_t *v, void *p,
                         const char *path, const char *key)
{
    char val[96];
    if (v->kind == TH_NODE_NULL) {
        if (!v->expanded) {
            return 0; /* a plain YAML null keeps the default, as confmap does */
        }
        /* An unset ${env:X}: the Collector gives the field its zero value. */
        if (f->type == TH_CFG_ENUM) {
            return set_enum(d, f, "", 0, p, path, key);
        }
        set_zero(f, p);
        return 0;
    }
    if (v->kind != TH_NODE_SCALAR) {
        return fail(d, path, key, "expected %s, got %s", type_noun(f->type), kind_noun(v));
    }
    if (v->expanded && v->len == 0 && f->type != TH_CFG_STRING && f->type != TH_CFG_ENUM) {
        /* ${env:X} with X set but empty: YAML reads "" as null, so the zero value. */
        set_zero(f, p);
        return 0;
    }
    /* Weak typing is off in the Collector: a quoted string never becomes a bool or number.
     * (DURATION and SIZE are strings there too, so quotes are fine for them.) */
    if (v->quoted &&
        (f->type == TH_CFG_BOOL || f->type == TH_CFG_INT || f->type == TH_CFG_DOUBLE)) {
        return fail(d, path, key, "expected %s, got the quoted string %s (remove the quotes)",
                    type_noun(f->type), show_node(f, v, val, sizeof(val)));
    }
    int ret = 0;
    switch (f->type) {
    case TH_CFG_BOOL: {
        bool b;
        if (!parse_bool(v->text, &b)) {
            return fail(d, path, key, "expected %s, got %s", type_noun(f->type),
                        show_node(f, v, val, sizeof(val)));
        }
        *(bool *)p = b;
        break;
    }
    case TH_CFG_INT: {
        int64_t i;
        if (!parse_int_text(v->text, v->len, &i)) {
            return fail(d, path, key, "expected %s, got %s", type_noun(f->type),
                        show_node(f, v, val, sizeof(val)));
        }
        ret = check_bounds(d, f, (double)i, v, path, key);
        if (ret == 0) {
            *(int64_t *)p = i;
        }
        break;
    }
    case TH_CFG_DOUBLE: {
        double x;
        int64_t i;
        if (parse_int_text(v->text, v->len, &i)) {
            x = (double)i;
        } else if (!parse_float_text(v->text, v->len, &x)) {
            return fail(d, path, key, "expected %s, got %s", type_noun(f->type),
                        show_node(f, v, val, sizeof(val)));
        }
        ret = check_bounds(d, f, x, v, path, key);
        if (ret == 0) {
            *(double *)p = x;
        }
        break;
    }
    case TH_CFG_DURATION:
    case TH_CFG_SIZE: {
        int64_t i;
        bool dur = f->type == TH_CFG_DURATION;
        if ((dur ? th_parse_duration(v->text, &i) : th_parse_size(v->text, &i)) != 0) {
            return fail(d, path, key, "invalid %s %s", dur ? "duration" : "size",
                        show_node(f, v, val, sizeof(val)));
        }
        ret = check_bounds(d, f, (double)i, v, path, key);
        if (ret == 0) {
            *(int64_t *)p = i;
        }
        break;
    }
    case TH_CFG_STRING: {
        const char *s = th_arena_strndup(d->a, v->text, v->len);
        if (!s) {
            return oom(d);
        }
        *(const char **)p = s;
        break;
    }
    case TH_CFG_ENUM:
        ret = set_enum(d, f, v->text, v->len, p, path, key);
        break;
    default:
        th_assert(!"not a scalar type");
    }
    return ret;
}

/* A scalar item of a list or map as a string; null is "". */
static int item_string(struct dctx *d, const th_node_t *v, const char **out, const char *path,
                       const char *key)
{
    if (v->kind == TH_NODE_NULL) {
        *out = "";
        return 0;
    }
    if (v->kind != TH_NODE_SCALAR) {
        return fail(d, path, key, "expected a string, got %s", kind_noun(v));
    }
    *out = th_arena_strndup(d->a, v->text, v->len);
    return *out ? 0 : oom(d);
}

static int decode_strlist(struct dctx *d, const struct th_cfg_field *f, const th_node_t *v,
                          th_strlist_t *out, const char *path, const char *key)
{
    if (v->kind == TH_NODE_NULL) {
        if (v->expanded) {
            memset(out, 0, sizeof(*out));
        }
        return 0;
    }
    if (v->kind == TH_NODE_MAP) {
        return fail(d, path, key, "expected %s, got a map", type_noun(f->type));
    }
    th_strlist_t l = {0};
    if (v->kind == TH_NODE_SCALAR) {
        /* The Collector's string-to-slice hook: "a,b" is [a, b]; "" is []. */
        if (v->len == 0) {
            *out = l;
            return 0;
        }
        size_t n = 1;
        for (size_t i = 0; i < v->len; i++) {
            n += v->text[i] == ',';
        }
        l.v = th_arena_calloc(d->a, n, sizeof(*l.v));
        if (!l.v) {
            return oom(d);
        }
        const char *s = v->text;
        const char *end = v->text + v->len;
        while (l.n < n) {
            const char *c = memchr(s, ',', (size_t)(end - s));
            if (!c) {
                c = end;
            }
            l.v[l.n] = th_arena_strndup(d->a, s, (size_t)(c - s));
            if (!l.v[l.n++]) {
                return oom(d);
            }
            s = c + 1;
        }
        *out = l;
        return 0;
    }
    if (v->n) {
        l.v = th_arena_calloc(d->a, v->n, sizeof(*l.v));
        if (!l.v) {
            return oom(d);
        }
    }
    for (size_t i = 0; i < v->n; i++) {
        const th_node_t *it = v->items[i];
        if (it->kind != TH_NODE_SCALAR && it->kind != TH_NODE_NULL) {
            const char *p = join(d, path, key);
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            return p ? fail(d, p, idx, "expected a string, got %s", kind_noun(it)) : oom(d);
        }
        int ret = item_string(d, it, &l.v[l.n], path, key);
        if (ret != 0) {
            return ret;
        }
        l.n++;
    }
    *out = l;
    return 0;
}

static int decode_strmap(struct dctx *d, const struct th_cfg_field *f, const th_node_t *v,
                         th_strmap_t *out, const char *path, const char *key)
{
    if (v->kind == TH_NODE_NULL) {
        if (v->expanded) {
            memset(out, 0, sizeof(*out));
        }
        return 0;
    }
    if (v->kind == TH_NODE_SCALAR) {
        return fail(d, path, key, "expected %s, got %s", type_noun(f->type), kind_noun(v));
    }
    const char *mpath = join(d, path, key);
    if (!mpath) {
        return oom(d);
    }
    th_strmap_t m = {0};
    if (v->n) {
        m.keys = th_arena_calloc(d->a, v->n, sizeof(*m.keys));
        m.vals = th_arena_calloc(d->a, v->n, sizeof(*m.vals));
        if (!m.keys || !m.vals) {
            return oom(d);
        }
    }
    for (size_t i = 0; i < v->n; i++) {
        int ret;
        if (v->kind == TH_NODE_MAP) {
            m.keys[m.n] = th_arena_strndup(d->a, v->pairs[i].key, strlen(v->pairs[i].key));
            if (!m.keys[m.n]) {
                return oom(d);
            }
            ret = item_string(d, v->pairs[i].value, &m.vals[m.n], mpath, v->pairs[i].key);
        } else {
            /* The list form [{name: k, value: v}] of configopaque.MapList. */
            const th_node_t *it = v->items[i];
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            if (it->kind != TH_NODE_MAP) {
                return fail(d, mpath, idx, "expected a map with name and value, got %s",
                            kind_noun(it));
            }
            const th_node_t *name = NULL;
            const th_node_t *value = NULL;
            for (size_t j = 0; j < it->n; j++) {
                if (!strcmp(it->pairs[j].key, "name")) {
                    name = it->pairs[j].value;
                } else if (!strcmp(it->pairs[j].key, "value")) {
                    value = it->pairs[j].value;
                } else {
                    const char *ip = join(d, mpath, idx);
                    return ip ? fail(d, ip, it->pairs[j].key,
                                     "unknown key (expected name and value)")
                              : oom(d);
                }
            }
            if (!name || name->kind != TH_NODE_SCALAR || name->len == 0) {
                return fail(d, mpath, idx, "each entry needs a non-empty name");
            }
            ret = item_string(d, name, &m.keys[m.n], mpath, idx);
            if (ret == 0) {
                if (value) {
                    ret = item_string(d, value, &m.vals[m.n], mpath, idx);
                } else {
                    m.vals[m.n] = "";
                }
            }
        }
        if (ret != 0) {
            return ret;
        }
        for (size_t j = 0; j < m.n; j++) {
            if (!strcmp(m.keys[j], m.keys[m.n])) {
                char k[96];
                return fail(d, path, key, "duplicate name %s",
                            show(m.keys[j], strlen(m.keys[j]), k, sizeof(k)));
            }
        }
        m.n++;
    }
    *out = m;
    return 0;
}

/* An OPTIONAL section that is present (otelcol-config.md §1.1): null or {} enables it with
 * defaults, {enabled: false, ...} disables it (the rest is still checked), other keys
 * overlay the defaults and enable it. */
static int decode_optional(struct dctx *d, const struct th_cfg_field *f, const th_node_t *v,
                           void *base, const char *path, const char *key)
{
    bool *enabled = field_ptr(base, f->aux);
    void *sub = field_ptr(base, f->offset);
    const char *spath = join(d, path, key);
    if (!spath) {
        return oom(d);
    }
    if (v->kind == TH_NODE_NULL) {
        *enabled = true;
        return decode_map(d, f->sub, v, sub, spath, NULL);
    }
    if (v->kind != TH_NODE_MAP) {
        return fail(d, path, key, "expected a map, got %s", kind_noun(v));
    }
    bool on = true;
    const th_node_t *en = th_node_get(v, "enabled");
    if (en) {
        char val[96];
        if (en->kind != TH_NODE_SCALAR || en->quoted || !parse_bool(en->text, &on)) {
            return fail(d, spath, "enabled", "expected true or false, got %s",
                        en->kind == TH_NODE_SCALAR ? show(en->text, en->len, val, sizeof(val))
                                                   : kind_noun(en));
        }
    }
    int ret = decode_map(d, f->sub, v, sub, spath, "enabled");
    if (ret != 0) {
        return ret;
    }
    *enabled = on;
    if (!on) {
        return defaults(d, f->sub, sub, spath);
    }
    return 0;
}

static int decode_field(struct dctx *d, const struct th_cfg_field *f, const th_node_t *v,
                        void *base, const char *path, const char *key)
{
    void *p = field_ptr(base, f->offset);
    switch (f->type) {
    case TH_CFG_BOOL:
    case TH_CFG_INT:
    case TH_CFG_DOUBLE:
    case TH_CFG_STRING:
    case TH_CFG_ENUM:
    case TH_CFG_DURATION:
    case TH_CFG_SIZE:
        return decode_scalar(d, f, v, p, path, key);
    case TH_CFG_STRLIST:
        return decode_strlist(d, f, v, p, path, key);
    case TH_CFG_STRMAP:
        return decode_strmap(d, f, v, p, path, key);
    case TH_CFG_SECTION: {
        if (v->kind != TH_NODE_NULL && v->kind != TH_NODE_MAP) {
            return fail(d, path, key, "expected a map, got %s", kind_noun(v));
        }
        const char *spath = join(d, path, key);
        return spath ? decode_map(d, f->sub, v, p, spath, NULL) : oom(d);
    }
    case TH_CFG_OPTIONAL:
        return decode_optional(d, f, v, base, path, key);
    case TH_CFG_NODE:
        *(const th_node_t **)p = v;
        return 0;
    }
    return fail(d, path, key, "unsupported field type %d", (int)f->type);
}

/* Edit distance counting a swap of neighbours as one edit (optimal string alignment), for
 * "did you mean" on unknown keys; long keys are not compared. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return (size_t)-1;
    }
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            best = TH_MIN(best, d[i - 1][j] + 1);
            best = TH_MIN(best, d[i][j - 1] + 1);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                best = TH_MIN(best, d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static int unknown_key(struct dctx *d, const struct th_cfg_field *table, const char *path,
                       const char *key)
{
    /* Suggest a near name only when the typo is small next to the key's length. */
    const char *best = NULL;
    size_t bd = 3;
    for (const struct th_cfg_field *f = table; f && f->name; f++) {
        size_t dist = distance(key, f->name);
        if (dist < bd && dist * 2 < strlen(key)) {
            bd = dist;
            best = f->name;
        }
    }
    if (best) {
        return fail(d, path, key, "unknown key (see tracehouse --help), did you mean \"%s\"?",
                    best);
    }
    return fail(d, path, key, "unknown key (see tracehouse --help)");
}

static int decode_map(struct dctx *d, const struct th_cfg_field *table, const th_node_t *node,
                      void *out, const char *path, const char *skip)
{
    if (node && node->kind != TH_NODE_NULL && node->kind != TH_NODE_MAP) {
        return fail(d, path, NULL, "expected a map, got %s", kind_noun(node));
    }
    if (node && node->kind == TH_NODE_MAP) {
        for (size_t i = 0; i < node->n; i++) {
            const char *key = node->pairs[i].key;
            if (skip && !strcmp(key, skip)) {
                continue;
            }
            const struct th_cfg_field *f = table;
            while (f && f->name && strcmp(f->name, key) != 0) {
                f++;
            }
            if (!f || !f->name) {
                return unknown_key(d, table, path, key);
            }
            int ret = decode_field(d, f, node->pairs[i].value, out, path, key);
            if (ret != 0) {
                return ret;
            }
            if (f->flags & TH_CFG_F_NOOP) {
                const char *why = (f->flags & TH_CFG_F_NOT_HERE)
                                      ? "accepted for compatibility; it does not apply here"
                                      : "accepted for compatibility, but has no effect yet";
                if (path && *path) {
                    th_log_warn(NULL, "%s::%s: %s", path, key, why);
                } else {
                    th_log_warn(NULL, "%s: %s", key, why);
                }
            }
        }
    }
    for (const struct th_cfg_field *f = table; f && f->name; f++) {
        if (f->flags & TH_CFG_F_REQUIRED) {
            const th_node_t *v = th_node_get(node, f->name);
            if (!v || v->kind == TH_NODE_NULL) {
                return fail(d, path, f->name, "required key is missing");
            }
        }
    }
    return 0;
}

/* ---- Defaults ---------------------------------------------------------------------------- */

static int default_field(struct dctx *d, const struct th_cfg_field *f, void *out, const char *path)
{
    void *p = field_ptr(out, f->offset);
    switch (f->type) {
    case TH_CFG_SECTION:
    case TH_CFG_OPTIONAL: {
        const char *spath = join(d, path, f->name);
        if (!spath) {
            return oom(d);
        }
        if (f->type == TH_CFG_OPTIONAL) {
            *(bool *)field_ptr(out, f->aux) = (f->flags & TH_CFG_F_SOME) != 0;
        }
        return defaults(d, f->sub, p, spath);
    }
    default:
        break;
    }
    set_zero(f, p);
    if (!f->def) {
        return 0;
    }
    char msg[512];
    struct dctx sub = {d->a, msg, sizeof(msg)};
    int ret;
    if (f->type == TH_CFG_STRLIST || f->type == TH_CFG_STRMAP || f->type == TH_CFG_NODE) {
        /* Structured defaults are YAML text: "[a, b]", "{k: v}". */
        th_node_t *n;
        ret = th_yaml_parse(f->def, strlen(f->def), "<default>", d->a, &n, msg, sizeof(msg));
        if (ret == 0) {
            ret = decode_field(&sub, f, n, out, path, f->name);
        }
    } else {
        /* Scalars: the text as if the user had written it as a plain YAML scalar. */
        th_node_t n = {.kind = TH_NODE_SCALAR, .text = f->def, .len = strlen(f->def)};
        ret = decode_field(&sub, f, &n, out, path, f->name);
    }
    if (ret == TH_ECONFIG) {
        return fail(d, path, f->name, "bad default \"%s\" in the field table: %s", f->def, msg);
    }
    if (ret != 0) {
        return oom(d);
    }
    return 0;
}

static int defaults(struct dctx *d, const struct th_cfg_field *table, void *out, const char *path)
{
    for (const struct th_cfg_field *f = table; f && f->name; f++) {
        int ret = default_field(d, f, out, path);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

int th_cfg_defaults(const struct th_cfg_field *table, void *out, th_arena_t *arena, char *err,
                    size_t errlen)
{
    struct dctx d = {arena, err, errlen};
    return defaults(&d, table, out, "");
}

int th_cfg_decode(const struct th_cfg_field *table, const th_node_t *node, void *out,
                  th_arena_t *arena, const char *path, char *err, size_t errlen)
{
    struct dctx d = {arena, err, errlen};
    if (!path) {
        path = "";
    }
    int ret = defaults(&d, table, out, path);
    if (ret != 0) {
        return ret;
    }
    return decode_map(&d, table, node, out, path, NULL);
}
