/*
 * The attributes processor's work: the actions (the Collector's attraction package) applied
 * to span attribute lists in place, and the include/exclude span filters (filterspan). Every
 * regex is compiled once in th_attributes_proc_create; values and strings added to spans are
 * allocated in the batch's arena.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "processors/attributes/attributes.h"
#include "processors/attributes/attributes_regex.h"
#include "processors/attributes/attributes_value.h"

enum conv { CONV_NONE, CONV_INT, CONV_DOUBLE, CONV_STRING };

/* One action, ready to run. */
struct act {
    enum th_attributes_action_type type;
    const char *key;
    pcre2_code *re;      /* delete/hash: on keys; extract: on the value */
    const char **groups; /* extract: the name of each group, [1..n_groups] */
    uint32_t n_groups;
    th_otlp_any_t *value;    /* a constant, or NULL */
    th_otlp_any_t *fallback; /* default_value, or NULL */
    const char *from_attribute;
    bool from_context;
    enum conv conv;
};

/* A list of strings matched strictly or by regex (the Collector's filterset). */
struct fset {
    enum th_attributes_match_type type;
    const char **v;
    pcre2_code **re;
    size_t n;
};

struct kvm {
    const char *key;
    th_otlp_any_t *value; /* strict: compare; NULL: presence only */
    pcre2_code *re;       /* regexp: search the value's text */
};

struct lib {
    struct fset name, version;
    bool has_version;
};

struct match {
    struct fset services, names, kinds;
    struct kvm *attrs, *res;
    size_t n_attrs, n_res;
    struct lib *libs;
    size_t n_libs;
};

struct th_attributes_proc {
    th_arena_t *arena; /* owns the copies of the settings and the regex cleanups */
    struct act *acts;
    size_t n_acts;
    struct match *include, *exclude;
    struct th__attributes_matcher m;
    uint32_t max_groups;
    bool uses_context;
    EVP_MD *sha256;    /* fetched once: an implicit fetch per hash costs more than the hash */
    EVP_MD_CTX *mdctx; /* reused for every hash */
};

static void free_re(void *re)
{
    pcre2_code_free(re);
}

/* Compile into the processor: freed with its arena. */
static int compile(th_attributes_proc_t *p, const char *pattern, pcre2_code **out, char *err,
                   size_t errlen)
{
    int ret = th__attributes_regex_compile(pattern, out, err, errlen);
    if (ret != 0) {
        return ret;
    }
    if (th_arena_cleanup_add(p->arena, free_re, *out) != 0) {
        pcre2_code_free(*out);
        return TH_ENOMEM;
    }
    uint32_t g = th__attributes_regex_groups(*out);
    p->max_groups = TH_MAX(p->max_groups, g);
    return 0;
}

static const char *copy_str(th_arena_t *a, const char *s)
{
    s = s ? s : "";
    return th_arena_strndup(a, s, strlen(s));
}

static int build_fset(th_attributes_proc_t *p, enum th_attributes_match_type type,
                      const char *const *v, size_t n, struct fset *out, char *err, size_t errlen)
{
    out->type = type;
    out->n = n;
    out->v = th_arena_calloc(p->arena, n ? n : 1, sizeof(*out->v));
    out->re = th_arena_calloc(p->arena, n ? n : 1, sizeof(*out->re));
    if (!out->v || !out->re) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        out->v[i] = copy_str(p->arena, v[i]);
        if (!out->v[i]) {
            return TH_ENOMEM;
        }
        if (type == TH_ATTRIBUTES_MATCH_REGEXP) {
            int ret = compile(p, v[i], &out->re[i], err, errlen);
            if (ret != 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int build_kvms(th_attributes_proc_t *p, enum th_attributes_match_type type,
                      const struct th_attributes_kv_match *in, size_t n, struct kvm **out,
                      char *err, size_t errlen)
{
    *out = th_arena_calloc(p->arena, n ? n : 1, sizeof(**out));
    if (!*out) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct kvm *k = &(*out)[i];
        k->key = copy_str(p->arena, in[i].key);
        if (!k->key) {
            return TH_ENOMEM;
        }
        if (!in[i].value) {
            continue;
        }
        if (type == TH_ATTRIBUTES_MATCH_REGEXP) {
            int ret = compile(p, in[i].value->string_value, &k->re, err, errlen);
            if (ret != 0) {
                return ret;
            }
        } else if (!(k->value = th__attributes_value_dup(p->arena, in[i].value))) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

static int build_match(th_attributes_proc_t *p, const struct th_attributes_match *in,
                       struct match **out, char *err, size_t errlen)
{
    if (!in) {
        *out = NULL;
        return 0;
    }
    struct match *m = th_arena_calloc(p->arena, 1, sizeof(*m));
    if (!m) {
        return TH_ENOMEM;
    }
    enum th_attributes_match_type t = in->match_type;
    int ret = build_fset(p, t, in->services.v, in->services.n, &m->services, err, errlen);
    if (ret == 0) {
        ret = build_fset(p, t, in->span_names.v, in->span_names.n, &m->names, err, errlen);
    }
    if (ret == 0) {
        ret = build_fset(p, t, in->span_kinds.v, in->span_kinds.n, &m->kinds, err, errlen);
    }
    if (ret == 0) {
        ret = build_kvms(p, t, in->attributes, in->n_attributes, &m->attrs, err, errlen);
        m->n_attrs = in->n_attributes;
    }
    if (ret == 0) {
        ret = build_kvms(p, t, in->resources, in->n_resources, &m->res, err, errlen);
        m->n_res = in->n_resources;
    }
    if (ret != 0) {
        return ret;
    }
    m->libs = th_arena_calloc(p->arena, in->n_libraries ? in->n_libraries : 1, sizeof(*m->libs));
    if (!m->libs) {
        return TH_ENOMEM;
    }
    m->n_libs = in->n_libraries;
    for (size_t i = 0; i < in->n_libraries; i++) {
        const char *name = in->libraries[i].name ? in->libraries[i].name : "";
        ret = build_fset(p, t, &name, 1, &m->libs[i].name, err, errlen);
        if (ret == 0 && in->libraries[i].version) {
            m->libs[i].has_version = true;
            ret = build_fset(p, t, &in->libraries[i].version, 1, &m->libs[i].version, err, errlen);
        }
        if (ret != 0) {
            return ret;
        }
    }
    *out = m;
    return 0;
}

/* The name of each capture group of an extract pattern, by group number. */
static int build_groups(th_attributes_proc_t *p, struct act *act)
{
    uint32_t n = th__attributes_regex_groups(act->re), count = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(act->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(act->re, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(act->re, PCRE2_INFO_NAMETABLE, &table);
    act->groups = th_arena_calloc(p->arena, n + 1, sizeof(*act->groups));
    if (!act->groups) {
        return TH_ENOMEM;
    }
    act->n_groups = n;
    for (uint32_t k = 0; k < count; k++) {
        const uint8_t *e = table + (size_t)k * entry;
        uint32_t g = (uint32_t)((e[0] << 8) | e[1]);
        if (g <= n) {
            act->groups[g] = copy_str(p->arena, (const char *)e + 2);
            if (!act->groups[g]) {
                return TH_ENOMEM;
            }
        }
    }
    return 0;
}

int th_attributes_proc_create(const struct th_attributes_settings *s, th_attributes_proc_t **out,
                              char *err, size_t errlen)
{
    int ret = th_attributes_settings_check(s, err, errlen);
    if (ret != 0) {
        return ret;
    }
    th_attributes_proc_t *p = th_calloc(1, sizeof(*p));
    if (!p || !(p->arena = th_arena_create(0, 0))) {
        th_free(p);
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    ret = TH_ENOMEM;
    p->acts = th_arena_calloc(p->arena, s->n_actions, sizeof(*p->acts));
    if (!p->acts) {
        goto fail;
    }
    p->n_acts = s->n_actions;
    for (size_t i = 0; i < s->n_actions; i++) {
        const struct th_attributes_action *in = &s->actions[i];
        struct act *a = &p->acts[i];
        a->type = in->type;
        a->key = copy_str(p->arena, in->key);
        a->from_attribute = copy_str(p->arena, in->from_attribute);
        if (!a->key || !a->from_attribute) {
            goto fail;
        }
        a->from_context = in->from_context && *in->from_context;
        p->uses_context |= a->from_context;
        if (in->value && !(a->value = th__attributes_value_dup(p->arena, in->value))) {
            goto fail;
        }
        if (in->default_value &&
            !(a->fallback = th__attributes_value_dup(p->arena, in->default_value))) {
            goto fail;
        }
        const char *conv = in->converted_type ? in->converted_type : "";
        a->conv = !strcmp(conv, "int")      ? CONV_INT
                  : !strcmp(conv, "double") ? CONV_DOUBLE
                  : !strcmp(conv, "string") ? CONV_STRING
                                            : CONV_NONE;
        if (in->pattern && *in->pattern) {
            ret = compile(p, in->pattern, &a->re, err, errlen);
            if (ret != 0) {
                goto fail;
            }
            ret = TH_ENOMEM;
            if (a->type == TH_ATTRIBUTES_EXTRACT && build_groups(p, a) != 0) {
                goto fail;
            }
        }
    }
    ret = build_match(p, s->include, &p->include, err, errlen);
    if (ret == 0) {
        ret = build_match(p, s->exclude, &p->exclude, err, errlen);
    }
    if (ret != 0) {
        goto fail;
    }
    ret = th__attributes_matcher_init(&p->m, p->max_groups);
    if (ret != 0) {
        goto fail;
    }
    ret = TH_ENOMEM;
    p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    p->mdctx = EVP_MD_CTX_new();
    if (!p->sha256 || !p->mdctx) {
        goto fail;
    }
    *out = p;
    return 0;
fail:
    if (ret == TH_ENOMEM) {
        snprintf(err, errlen, "out of memory");
    }
    th_attributes_proc_destroy(p);
    return ret;
}

void th_attributes_proc_destroy(th_attributes_proc_t *p)
{
    if (!p) {
        return;
    }
    th__attributes_matcher_deinit(&p->m);
    EVP_MD_CTX_free(p->mdctx);
    EVP_MD_free(p->sha256);
    th_arena_destroy(p->arena);
    th_free(p);
}

bool th_attributes_proc_uses_context(const th_attributes_proc_t *p)
{
    return p->uses_context;
}

/* ---- Matching (filterspan) --------------------------------------------------------------- */

/* A regex error (the match limit) counts as no match: a filter never fails a batch. */
static bool re_matches(th_attributes_proc_t *p, const pcre2_code *re, const char *s, size_t len)
{
    return th__attributes_regex_search(&p->m, re, s, len, 0) == 1;
}

static bool fset_matches(th_attributes_proc_t *p, const struct fset *f, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < f->n; i++) {
        if (f->type == TH_ATTRIBUTES_MATCH_REGEXP ? re_matches(p, f->re[i], s, len)
                                                  : !strcmp(f->v[i], s)) {
            return true;
        }
    }
    return false;
}

/* filtermatcher's attributeStringValue: scalars only, doubles in 'f' form. */
static bool scalar_text(const th_otlp_any_t *v, char *buf, size_t cap, const char **out)
{
    if (!v) {
        return false;
    }
    switch (v->value_case) {
    case TH__ANY_STRING:
        *out = v->string_value ? v->string_value : "";
        return true;
    case TH__ANY_BOOL:
        *out = v->bool_value ? "true" : "false";
        return true;
    case TH__ANY_INT:
        snprintf(buf, cap, "%" PRId64, v->int_value);
        *out = buf;
        return true;
    case TH__ANY_DOUBLE:
        th__attributes_fmt_double_plain(v->double_value, buf, cap);
        *out = buf;
        return true;
    default:
        return false;
    }
}

static bool kvms_match(th_attributes_proc_t *p, const struct kvm *k, size_t n,
                       th_otlp_kv_t *const *kvs, size_t nkvs)
{
    if (n == 0) {
        return true;
    }
    if (nkvs == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        ssize_t at = th__attributes_find(kvs, nkvs, k[i].key);
        if (at < 0) {
            return false;
        }
        const th_otlp_any_t *v = kvs[at]->value;
        if (k[i].re) {
            char buf[400];
            const char *text;
            if (!scalar_text(v, buf, sizeof(buf), &text) ||
                !re_matches(p, k[i].re, text, strlen(text))) {
                return false;
            }
        } else if (k[i].value && !th__attributes_value_equal(k[i].value, v)) {
            return false;
        }
    }
    return true;
}

static const char *span_kind_str(int kind)
{
    switch (kind) {
    case 0:
        return "SPAN_KIND_UNSPECIFIED";
    case 1:
        return "SPAN_KIND_INTERNAL";
    case 2:
        return "SPAN_KIND_SERVER";
    case 3:
        return "SPAN_KIND_CLIENT";
    case 4:
        return "SPAN_KIND_PRODUCER";
    case 5:
        return "SPAN_KIND_CONSUMER";
    default:
        return "";
    }
}

static bool match_span(th_attributes_proc_t *p, const struct match *m,
                       const th_otlp_resource_spans_t *rs, const th_otlp_scope_spans_t *ss,
                       const th_otlp_span_t *span, th_arena_t *a)
{
    th_otlp_kv_t *const *rkvs = rs->resource ? rs->resource->attributes : NULL;
    size_t nr = rs->resource ? rs->resource->n_attributes : 0;
    if (m->services.n) {
        const char *svc = "<nil-service-name>";
        size_t len;
        ssize_t at = th__attributes_find(rkvs, nr, "service.name");
        if (at >= 0 && th__attributes_value_as_string(a, rkvs[at]->value, &svc, &len) != 0) {
            return false;
        }
        if (!fset_matches(p, &m->services, svc)) {
            return false;
        }
    }
    if (m->names.n && !fset_matches(p, &m->names, span->name ? span->name : "")) {
        return false;
    }
    if (m->kinds.n && !fset_matches(p, &m->kinds, span_kind_str(span->kind))) {
        return false;
    }
    const char *lname = ss->scope && ss->scope->name ? ss->scope->name : "";
    const char *lversion = ss->scope && ss->scope->version ? ss->scope->version : "";
    for (size_t i = 0; i < m->n_libs; i++) {
        if (!fset_matches(p, &m->libs[i].name, lname)) {
            return false;
        }
        if (m->libs[i].has_version && !fset_matches(p, &m->libs[i].version, lversion)) {
            return false;
        }
    }
    if (m->n_res && !kvms_match(p, m->res, m->n_res, rkvs, nr)) {
        return false;
    }
    return kvms_match(p, m->attrs, m->n_attrs, span->attributes, span->n_attributes);
}

/* ---- Actions (attraction) ---------------------------------------------------------------- */

/* attraction's sha2Hasher: the value's bytes (strings as UTF-8, bools as one byte, ints and
 * doubles as 8 bytes little-endian) hashed with SHA-256 into lowercase hex; anything else,
 * and an empty string, becomes "". */
static int hash_value(th_attributes_proc_t *p, th_arena_t *a, th_otlp_any_t *v)
{
    uint8_t buf[8];
    const uint8_t *data = NULL;
    size_t len = 0;
    switch (v->value_case) {
    case TH__ANY_STRING:
        data = (const uint8_t *)(v->string_value ? v->string_value : "");
        len = strlen((const char *)data);
        break;
    case TH__ANY_BOOL:
        buf[0] = v->bool_value ? 1 : 0;
        data = buf;
        len = 1;
        break;
    case TH__ANY_INT:
    case TH__ANY_DOUBLE: {
        uint64_t u;
        if (v->value_case == TH__ANY_INT) {
            u = (uint64_t)v->int_value;
        } else {
            memcpy(&u, &v->double_value, sizeof(u));
        }
        for (int i = 0; i < 8; i++) {
            buf[i] = (uint8_t)(u >> (8 * i));
        }
        data = buf;
        len = 8;
        break;
    }
    default:
        break;
    }
    if (len == 0) {
        th__attributes_value_set_str(v, (char *)"");
        return 0;
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char *hex = th_arena_alloc(a, 65);
    if (!hex || !EVP_DigestInit_ex2(p->mdctx, p->sha256, NULL) ||
        !EVP_DigestUpdate(p->mdctx, data, len) || !EVP_DigestFinal_ex(p->mdctx, md, &mdlen)) {
        return TH_ENOMEM;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * mdlen] = '\0';
    th__attributes_value_set_str(v, hex);
    return 0;
}

/* strconv.ParseInt(s, 10, 64): a sign and decimal digits, nothing else, in range. */
static bool parse_int10(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (!*p) {
        return false;
    }
    uint64_t u = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned d = (unsigned)(*p - '0');
        if (u > (UINT64_MAX - d) / 10) {
            return false;
        }
        u = u * 10 + d;
    }
    if (u > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) {
        return false;
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

/* strconv.ParseFloat(s, 64), closely: decimal and hex ("0x1p-2") forms, inf/infinity/nan in
 * any case; no spaces; an overflow is an error. */
static bool parse_float(const char *s, double *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-') {
        p++;
    }
    if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity")) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (!strcasecmp(s, "nan")) {
        *out = NAN;
        return true;
    }
    bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *q = hex ? p + 2 : p;
    size_t digits = 0;
    bool dot = false, exp = false;
    for (; *q; q++) {
        char c = *q;
        if ((c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))) {
            digits++;
        } else if (c == '.' && !dot && !exp) {
            dot = true;
        } else if (((!hex && (c == 'e' || c == 'E')) || (hex && (c == 'p' || c == 'P'))) && !exp &&
                   digits) {
            exp = true;
            if (q[1] == '+' || q[1] == '-') {
                q++;
            }
            if (q[1] < '0' || q[1] > '9') {
                return false;
            }
        } else {
            return false;
        }
    }
    if (!digits || (hex && !exp)) {
        return false;
    }
    char *end;
    double d = strtod(s, &end);
    if (*end || isinf(d)) {
        return false;
    }
    *out = d;
    return true;
}

/* Go's int64(float64) on amd64: truncation, and the "integer indefinite" value for NaN and
 * values out of range. */
static int64_t double_to_int(double d)
{
    if (isnan(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
        return INT64_MIN;
    }
    return (int64_t)d;
}

/* attraction's convertValue: a value that cannot be converted is left as it is. */
static int convert_value(th_arena_t *a, th_otlp_any_t *v, enum conv to)
{
    switch (to) {
    case CONV_STRING:
        if (v->value_case != TH__ANY_STRING) {
            const char *s;
            size_t len;
            int ret = th__attributes_value_as_string(a, v, &s, &len);
            if (ret != 0) {
                return ret;
            }
            th__attributes_value_set_str(v, (char *)s);
        }
        return 0;
    case CONV_INT:
        if (v->value_case == TH__ANY_DOUBLE) {
            th__attributes_value_set_int(v, double_to_int(v->double_value));
        } else if (v->value_case == TH__ANY_BOOL) {
            th__attributes_value_set_int(v, v->bool_value ? 1 : 0);
        } else if (v->value_case == TH__ANY_STRING) {
            int64_t i;
            if (parse_int10(v->string_value ? v->string_value : "", &i)) {
                th__attributes_value_set_int(v, i);
            }
        }
        return 0;
    case CONV_DOUBLE:
        if (v->value_case == TH__ANY_INT) {
            th__attributes_value_set_double(v, (double)v->int_value);
        } else if (v->value_case == TH__ANY_BOOL) {
            th__attributes_value_set_double(v, v->bool_value ? 1 : 0);
        } else if (v->value_case == TH__ANY_STRING) {
            double d;
            if (parse_float(v->string_value ? v->string_value : "", &d)) {
                th__attributes_value_set_double(v, d);
            }
        }
        return 0;
    default:
        return 0;
    }
}

static int do_upsert(th_arena_t *a, const struct act *act, struct th__attributes_list l)
{
    const th_otlp_any_t *src = act->value;
    if (!src && !act->from_context && *act->from_attribute) {
        ssize_t at = th__attributes_find(*l.kvs, *l.n, act->from_attribute);
        if (at >= 0) {
            src = (*l.kvs)[at]->value;
            if (!src) {
                static const th_otlp_any_t empty =
                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
                src = &empty;
            }
        }
    }
    /* A missing source (client metadata always is) falls back to default_value, if any. */
    if (!src) {
        src = act->fallback;
    }
    if (!src) {
        return 0;
    }
    ssize_t at = th__attributes_find(*l.kvs, *l.n, act->key);
    if ((at >= 0 && act->type == TH_ATTRIBUTES_INSERT) ||
        (at < 0 && act->type == TH_ATTRIBUTES_UPDATE)) {
        return 0;
    }
    /* Copy first: the source may be the very value that is overwritten. */
    th_otlp_any_t *copy = th__attributes_value_dup(a, src);
    if (!copy) {
        return TH_ENOMEM;
    }
    if (at >= 0) {
        (*l.kvs)[at]->value = copy;
        return 0;
    }
    return th__attributes_append(a, l, act->key, strlen(act->key), copy);
}

static bool key_matches(th_attributes_proc_t *p, const pcre2_code *re, const th_otlp_kv_t *kv)
{
    const char *k = kv->key ? kv->key : "";
    return re_matches(p, re, k, strlen(k));
}

static int do_extract(th_attributes_proc_t *p, th_arena_t *a, const struct act *act,
                      struct th__attributes_list l)
{
    th_otlp_any_t *v = th__attributes_get(*l.kvs, *l.n, act->key);
    if (!v || v->value_case != TH__ANY_STRING || !v->string_value) {
        return 0;
    }
    const char *s = v->string_value;
    if (th__attributes_regex_search(&p->m, act->re, s, strlen(s), 0) != 1) {
        return 0;
    }
    /* Keep the offsets: writing the attributes may run no regex, but copy them anyway. */
    PCRE2_SIZE ov[2 * 64];
    uint32_t n = TH_MIN(act->n_groups, 63u);
    memcpy(ov, th__attributes_matcher_ovector(&p->m), 2 * (n + 1) * sizeof(*ov));
    for (uint32_t g = 1; g <= n; g++) {
        th_otlp_any_t *dst;
        int ret = th__attributes_put_empty(a, l, act->groups[g] ? act->groups[g] : "", &dst);
        if (ret != 0) {
            return ret;
        }
        bool set = ov[2 * g] != PCRE2_UNSET;
        ret = th__attributes_value_set_strn(a, dst, set ? s + ov[2 * g] : "",
                                            set ? ov[2 * g + 1] - ov[2 * g] : 0);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

int th_attributes_proc_apply(th_attributes_proc_t *p, th_arena_t *a, th_otlp_kv_t ***kvs, size_t *n)
{
    struct th__attributes_list l = {kvs, n};
    for (size_t i = 0; i < p->n_acts; i++) {
        const struct act *act = &p->acts[i];
        int ret = 0;
        switch (act->type) {
        case TH_ATTRIBUTES_DELETE:
            th__attributes_remove(l, act->key);
            for (size_t k = 0; act->re && k < *n;) {
                if (key_matches(p, act->re, (*kvs)[k])) {
                    th__attributes_remove_at(*kvs, n, k);
                } else {
                    k++;
                }
            }
            break;
        case TH_ATTRIBUTES_INSERT:
        case TH_ATTRIBUTES_UPDATE:
        case TH_ATTRIBUTES_UPSERT:
            ret = do_upsert(a, act, l);
            break;
        case TH_ATTRIBUTES_HASH: {
            /* The key, then every key matching the pattern: a key that is both is hashed
             * twice, as in the Collector. */
            th_otlp_any_t *v = th__attributes_get(*kvs, *n, act->key);
            if (v) {
                ret = hash_value(p, a, v);
            }
            for (size_t k = 0; ret == 0 && act->re && k < *n; k++) {
                if ((*kvs)[k]->value && key_matches(p, act->re, (*kvs)[k])) {
                    ret = hash_value(p, a, (*kvs)[k]->value);
                }
            }
            break;
        }
        case TH_ATTRIBUTES_EXTRACT:
            ret = do_extract(p, a, act, l);
            break;
        case TH_ATTRIBUTES_CONVERT: {
            th_otlp_any_t *v = th__attributes_get(*kvs, *n, act->key);
            if (v) {
                ret = convert_value(a, v, act->conv);
            }
            break;
        }
        default:
            break;
        }
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

int th_attributes_proc_traces(th_attributes_proc_t *p, th_batch_t *b)
{
    th_otlp_request_t *req = b->req;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                th_otlp_span_t *span = ss->spans[k];
                if (p->include && !match_span(p, p->include, rs, ss, span, b->arena)) {
                    continue;
                }
                if (p->exclude && match_span(p, p->exclude, rs, ss, span, b->arena)) {
                    continue;
                }
                int ret =
                    th_attributes_proc_apply(p, b->arena, &span->attributes, &span->n_attributes);
                if (ret != 0) {
                    return ret;
                }
            }
        }
    }
    return 0;
}
