/*
 * The span_metrics aggregation: spans counted into series keyed by their dimension values,
 * and snapshots built from the series at each flush.
 *
 * A series key is the bytes of everything that tells series apart: which metric(s) it holds,
 * the resource it belongs to, then each dimension value NUL-terminated (configured dimensions
 * are preceded by a presence byte, since an omitted dimension differs from an empty one).
 * The key is built in a scratch buffer that only grows, hashed, and looked up in a chained
 * hash table; a new series copies the key, and its attribute values point into that copy, so
 * a series is one allocation. Resources are keyed the same way by their (sorted) attributes.
 *
 * Snapshots copy every string they hold into their own arena: they are read on other threads
 * (the prometheus exporter's server) after the series they came from may be gone.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/span_metrics/span_metrics.h"

#define KIND_CALLS 0x1u
#define KIND_HIST  0x2u
/* Key byte of an overflow series (beyond the cardinality limit). */
#define KEY_OVERFLOW 0x80u

/* Default dimensions, in output order; bit i of exclude drops default i. */
enum { DEF_SERVICE, DEF_SPAN_NAME, DEF_KIND, DEF_STATUS, N_DEFAULTS };
static const char *const default_names[N_DEFAULTS] = {"service.name", "span.name", "span.kind",
                                                      "status.code"};
static const char *const kind_names[] = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER",
};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                           "STATUS_CODE_ERROR"};

struct exp_hist {
    int32_t scale;
    int64_t offset; /* index of counts[0] */
    int64_t lo, hi; /* the used range; lo > hi when empty */
    uint64_t zero;
    uint64_t *counts; /* exp_max_size of them */
};

struct ring {
    struct th_exemplar *v;
    size_t n;   /* held */
    size_t pos; /* next slot to write */
};

struct resource {
    struct resource *next;
    uint64_t hash;
    uint64_t last_seen_ns; /* mono */
    size_t n_series[2];    /* calls, histogram: for the cardinality limit */
    size_t n_alive;        /* series pointing here */
    size_t flush_idx;      /* its index in the snapshot being built */
    size_t flush_points[2];
    struct th_metric_attr *attrs;
    size_t n_attrs;
    size_t key_len;
    uint8_t *key;
};

struct series {
    struct series *next;
    uint64_t hash;
    struct resource *res;
    unsigned kinds;
    bool touched;          /* counted since the last flush */
    uint64_t start_ns;     /* wall: creation (cumulative) or the last flush (delta) */
    uint64_t last_seen_ns; /* mono */
    uint64_t calls;
    uint64_t count;
    double sum;
    uint64_t *buckets; /* explicit: n_bounds + 1 */
    struct exp_hist exp;
    struct ring ex;  /* duration exemplars */
    struct ring cex; /* calls exemplars */
    struct th_metric_attr *attrs;
    size_t n_attrs;
    size_t key_len;
    uint8_t *key;
};

/* Where a dimension's value sits in the key being built. */
struct vref {
    uint32_t off;
    uint32_t len;
    const char *name;
    const char *fixed; /* a static value (kind, status) instead of key bytes */
    bool present;
};

struct th_span_metrics_agg {
    struct th_span_metrics_agg_cfg cfg;
    double *bounds;
    struct series **table;
    size_t cap; /* power of two */
    size_t n_series;
    struct resource *resources;
    struct resource *global; /* add_resource_attributes off: the one attribute-less resource */
    uint8_t *key;
    size_t key_cap, key_len;
    struct vref *refs;
    size_t n_refs, cap_refs;
    const th_otlp_kv_t **sorted; /* scratch for resource keys */
    size_t cap_sorted;
    struct th_span_metrics_agg_stats stats;
};

/* ---- Small helpers ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Eight bytes at a time (keys run to dozens of bytes per span, so this is most of the cost of
 * a lookup), then a final mix so the low bits (the bucket) depend on every byte. */
static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ull;
        h = (h << 27) | (h >> 37);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ mix(w ^ ((uint64_t)n << 56))) * 0x9e3779b97f4a7c15ull;
    return mix(h);
}

static int key_reserve(th_span_metrics_agg_t *a, size_t extra)
{
    if (a->key_len + extra <= a->key_cap) {
        return 0;
    }
    size_t cap = a->key_cap ? a->key_cap : 256;
    while (cap < a->key_len + extra) {
        cap *= 2;
    }
    uint8_t *k = th_realloc(a->key, cap);
    if (!k) {
        return TH_ENOMEM;
    }
    a->key = k;
    a->key_cap = cap;
    return 0;
}

static int key_put(th_span_metrics_agg_t *a, const void *p, size_t n)
{
    if (key_reserve(a, n) != 0) {
        return TH_ENOMEM;
    }
    memcpy(a->key + a->key_len, p, n);
    a->key_len += n;
    return 0;
}

/* Append an attribute value as text, as the Collector's Value.AsString renders it. */
static int key_put_any(th_span_metrics_agg_t *a, const th_otlp_any_t *v)
{
    char tmp[64];
    int n = 0;
    if (!v) {
        return 0;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return key_put(a, v->string_value, strlen(v->string_value));
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return key_put(a, v->bool_value ? "true" : "false", v->bool_value ? 4 : 5);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE: {
        /* by hand: status codes are common dimensions, and snprintf costs more than the rest
         * of the span's lookup */
        uint64_t u = v->int_value < 0 ? 0 - (uint64_t)v->int_value : (uint64_t)v->int_value;
        char *e = tmp + sizeof(tmp);
        do {
            *--e = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v->int_value < 0) {
            *--e = '-';
        }
        return key_put(a, e, (size_t)(tmp + sizeof(tmp) - e));
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        /* the shortest text that reads back the same */
        for (int prec = 1; prec <= 17; prec++) {
            n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v->double_value);
            if (strtod(tmp, NULL) == v->double_value) {
                break;
            }
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        for (size_t i = 0; i < v->bytes_value.len; i++) {
            char hx[3];
            snprintf(hx, sizeof(hx), "%02x", v->bytes_value.data[i]);
            if (key_put(a, hx, 2) != 0) {
                return TH_ENOMEM;
            }
        }
        return 0;
    default:
        /* arrays and maps: rare as dimensions; they key as empty text */
        return 0;
    }
    return key_put(a, tmp, (size_t)n);
}

static const th_otlp_any_t *find_attr(th_otlp_kv_t **kv, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kv[i]->key, name)) {
            return kv[i]->value;
        }
    }
    return NULL;
}

static int push_ref(th_span_metrics_agg_t *a, const char *name, uint32_t off, bool present,
                    const char *fixed)
{
    if (a->n_refs == a->cap_refs) {
        size_t cap = a->cap_refs ? a->cap_refs * 2 : 16;
        struct vref *r = th_realloc(a->refs, cap * sizeof(*r));
        if (!r) {
            return TH_ENOMEM;
        }
        a->refs = r;
        a->cap_refs = cap;
    }
    a->refs[a->n_refs++] = (struct vref){.off = off,
                                         .len = (uint32_t)(a->key_len - off),
                                         .name = name,
                                         .fixed = fixed,
                                         .present = present};
    return 0;
}

/* ---- Exponential histograms -------------------------------------------------------------- */

static int64_t shift_floor(int64_t v, int s)
{
    return v >= 0 ? v >> s : -((-v - 1) >> s) - 1;
}

int64_t th_span_metrics_exp_index(double v, int32_t scale)
{
    int e;
    double frac = frexp(v, &e); /* v = frac * 2^e, frac in [0.5, 1) */
    if (scale <= 0) {
        /* the power-of-two bucket (2^k, 2^(k+1)] holding v; an exact power is its upper
         * bound, so it belongs one bucket lower */
        int64_t k = frac == 0.5 ? e - 2 : e - 1;
        return shift_floor(k, -scale);
    }
    if (frac == 0.5) {
        return (int64_t)(e - 1) * ((int64_t)1 << scale) - 1;
    }
    return (int64_t)ceil(log(v) * ldexp(M_LOG2E, scale)) - 1;
}

static void exp_reset(struct exp_hist *h)
{
    h->scale = TH_SPAN_METRICS_EXP_MAX_SCALE;
    h->lo = 1;
    h->hi = 0;
    h->offset = 0;
    h->zero = 0;
}

/* Halve the resolution @p s times: bucket i becomes i >> s. Works in place because a count
 * only ever moves to a lower position. */
static void exp_downscale(struct exp_hist *h, int s)
{
    int64_t nlo = shift_floor(h->lo, s);
    for (int64_t i = h->lo; i <= h->hi; i++) {
        uint64_t c = h->counts[i - h->offset];
        h->counts[i - h->offset] = 0;
        h->counts[shift_floor(i, s) - nlo] += c;
    }
    h->offset = nlo;
    h->lo = nlo;
    h->hi = shift_floor(h->hi, s);
    h->scale -= s;
}

static void exp_add(struct exp_hist *h, int32_t max_size, double v)
{
    if (!(v > 0)) {
        h->zero++;
        return;
    }
    int64_t idx = th_span_metrics_exp_index(v, h->scale);
    if (h->lo > h->hi) {
        h->offset = h->lo = h->hi = idx;
        h->counts[0]++;
        return;
    }
    int64_t lo = TH_MIN(h->lo, idx), hi = TH_MAX(h->hi, idx);
    int s = 0;
    while (shift_floor(hi, s) - shift_floor(lo, s) + 1 > max_size) {
        s++;
    }
    if (s > 0) {
        exp_downscale(h, s);
        idx = shift_floor(idx, s);
        lo = TH_MIN(h->lo, idx);
        hi = TH_MAX(h->hi, idx);
    }
    if (lo < h->offset || hi >= h->offset + max_size) {
        /* move the counts so the window starts at lo */
        memmove(h->counts + (h->lo - lo), h->counts + (h->lo - h->offset),
                (size_t)(h->hi - h->lo + 1) * sizeof(uint64_t));
        if (h->lo - lo > 0) {
            memset(h->counts, 0, (size_t)(h->lo - lo) * sizeof(uint64_t));
        }
        int64_t end = h->hi - lo + 1;
        memset(h->counts + end, 0, (size_t)(max_size - end) * sizeof(uint64_t));
        h->offset = lo;
    }
    h->counts[idx - h->offset]++;
    h->lo = lo;
    h->hi = hi;
}

/* ---- Series -------------------------------------------------------------------------------- */

static void ring_add(struct ring *r, size_t cap, const th_otlp_span_t *span, double value,
                     uint64_t now_ns)
{
    struct th_exemplar *e = &r->v[r->pos];
    e->value = value;
    e->time_ns = span->end_time_unix_nano ? span->end_time_unix_nano : now_ns;
    memset(e->trace_id, 0, sizeof(e->trace_id));
    memset(e->span_id, 0, sizeof(e->span_id));
    if (span->trace_id.len == 16) {
        memcpy(e->trace_id, span->trace_id.data, 16);
    }
    if (span->span_id.len == 8) {
        memcpy(e->span_id, span->span_id.data, 8);
    }
    r->pos = (r->pos + 1) % cap;
    if (r->n < cap) {
        r->n++;
    }
}

static int grow_table(th_span_metrics_agg_t *a)
{
    size_t cap = a->cap ? a->cap * 2 : 256;
    struct series **t = th_calloc(cap, sizeof(*t));
    if (!t) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < a->cap; i++) {
        struct series *s = a->table[i];
        while (s) {
            struct series *next = s->next;
            s->next = t[s->hash & (cap - 1)];
            t[s->hash & (cap - 1)] = s;
            s = next;
        }
    }
    th_free(a->table);
    a->table = t;
    a->cap = cap;
    return 0;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* A new series for the key in a->key (with value references a->refs), in one allocation. */
static struct series *series_new(th_span_metrics_agg_t *a, struct resource *res, unsigned kinds,
                                 bool overflow, uint64_t hash, uint64_t now_ns)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    size_t n_attrs = 0;
    for (size_t i = 0; i < a->n_refs; i++) {
        n_attrs += a->refs[i].present;
    }
    if (overflow) {
        n_attrs = 1;
    }
    bool hist = (kinds & KIND_HIST) != 0;
    size_t n_buckets = hist && !cfg->exponential ? cfg->n_bounds + 1 : 0;
    size_t n_exp = hist && cfg->exponential ? (size_t)cfg->exp_max_size : 0;
    size_t ex_cap = cfg->exemplars ? cfg->max_exemplars : 0;
    size_t sz = align8(sizeof(struct series));
    size_t o_attrs = sz;
    sz += align8(n_attrs * sizeof(struct th_metric_attr));
    size_t o_buckets = sz;
    sz += (n_buckets + n_exp) * sizeof(uint64_t);
    size_t o_ex = sz;
    sz += (hist ? ex_cap : 0) * sizeof(struct th_exemplar);
    size_t o_cex = sz;
    sz += ((kinds & KIND_CALLS) ? ex_cap : 0) * sizeof(struct th_exemplar);
    size_t o_key = sz;
    sz += a->key_len + 1;
    uint8_t *mem = th_calloc(1, sz);
    if (!mem) {
        return NULL;
    }
    struct series *s = (struct series *)mem;
    s->hash = hash;
    s->res = res;
    s->kinds = kinds;
    s->start_ns = now_ns;
    s->attrs = (struct th_metric_attr *)(mem + o_attrs);
    s->buckets = n_buckets ? (uint64_t *)(mem + o_buckets) : NULL;
    if (n_exp) {
        s->exp.counts = (uint64_t *)(mem + o_buckets);
        exp_reset(&s->exp);
    }
    s->ex.v = (struct th_exemplar *)(mem + o_ex);
    s->cex.v = (struct th_exemplar *)(mem + o_cex);
    s->key = mem + o_key;
    s->key_len = a->key_len;
    memcpy(s->key, a->key, a->key_len);
    if (overflow) {
        s->attrs[0] = (struct th_metric_attr){"otel.metric.overflow", "true"};
        s->n_attrs = 1;
    } else {
        /* every value in the key is followed by a NUL, so attributes point into the copy */
        for (size_t i = 0; i < a->n_refs; i++) {
            const struct vref *r = &a->refs[i];
            if (r->present) {
                s->attrs[s->n_attrs].key = r->name;
                s->attrs[s->n_attrs].value = r->fixed ? r->fixed : (const char *)s->key + r->off;
                s->n_attrs++;
            }
        }
    }
    return s;
}

static struct series *series_lookup(th_span_metrics_agg_t *a, uint64_t hash)
{
    if (!a->cap) {
        return NULL;
    }
    for (struct series *s = a->table[hash & (a->cap - 1)]; s; s = s->next) {
        if (s->hash == hash && s->key_len == a->key_len && !memcmp(s->key, a->key, a->key_len)) {
            return s;
        }
    }
    return NULL;
}

static int series_insert(th_span_metrics_agg_t *a, struct series *s)
{
    if (a->n_series + 1 > a->cap) {
        int ret = grow_table(a);
        if (ret != 0) {
            return ret;
        }
    }
    size_t b = s->hash & (a->cap - 1);
    s->next = a->table[b];
    a->table[b] = s;
    a->n_series++;
    s->res->n_alive++;
    if (s->kinds & KIND_CALLS) {
        s->res->n_series[0]++;
    }
    if (s->kinds & KIND_HIST) {
        s->res->n_series[1]++;
    }
    return 0;
}

/* Find or create the series of the key in a->key; beyond the cardinality limit, the
 * resource's overflow series for these kinds. */
static int series_get(th_span_metrics_agg_t *a, struct resource *res, unsigned kinds,
                      uint64_t now_ns, struct series **out)
{
    uint64_t hash = hash_bytes(a->key, a->key_len);
    struct series *s = series_lookup(a, hash);
    bool overflow = false;
    if (!s && a->cfg.cardinality_limit) {
        size_t used = (kinds & KIND_CALLS) ? res->n_series[0] : res->n_series[1];
        if (used >= a->cfg.cardinality_limit) {
            /* the overflow key: its own first byte, then the resource */
            a->key_len = 0;
            uint8_t k = (uint8_t)(kinds | KEY_OVERFLOW);
            if (key_put(a, &k, 1) != 0 || key_put(a, &res, sizeof(res)) != 0) {
                return TH_ENOMEM;
            }
            hash = hash_bytes(a->key, a->key_len);
            s = series_lookup(a, hash);
            overflow = true;
            a->stats.overflowed++;
        }
    }
    if (!s) {
        s = series_new(a, res, kinds, overflow, hash, now_ns);
        if (!s) {
            return TH_ENOMEM;
        }
        if (overflow) {
            /* not counted against the limit */
            res->n_alive++;
            if (a->n_series + 1 > a->cap && grow_table(a) != 0) {
                res->n_alive--;
                th_free(s);
                return TH_ENOMEM;
            }
            size_t b = hash & (a->cap - 1);
            s->next = a->table[b];
            a->table[b] = s;
            a->n_series++;
        } else if (series_insert(a, s) != 0) {
            th_free(s);
            return TH_ENOMEM;
        }
    }
    *out = s;
    return 0;
}

/* ---- Resources ----------------------------------------------------------------------------- */

static bool is_key_attr(const th_span_metrics_agg_t *a, const char *key)
{
    if (!a->cfg.resource_key_attrs) {
        return true;
    }
    for (size_t i = 0; i < a->cfg.n_resource_key_attrs; i++) {
        if (!strcmp(a->cfg.resource_key_attrs[i], key)) {
            return true;
        }
    }
    return false;
}

/* The resource of a ResourceSpans: attributes sorted by key make the key, as the Collector's
 * map hash ignores attribute order. */
static int resource_get(th_span_metrics_agg_t *a, const th_otlp_resource_spans_t *rs,
                        uint64_t mono_ns, struct resource **out)
{
    if (!a->cfg.add_resource_attributes) {
        if (!a->global) {
            a->global = th_calloc(1, sizeof(*a->global));
            if (!a->global) {
                return TH_ENOMEM;
            }
            a->global->next = a->resources;
            a->resources = a->global;
            a->stats.resources++;
        }
        a->global->last_seen_ns = mono_ns;
        *out = a->global;
        return 0;
    }
    size_t n = rs->resource ? rs->resource->n_attributes : 0;
    if (n > a->cap_sorted) {
        const th_otlp_kv_t **p = th_realloc(a->sorted, n * sizeof(*p));
        if (!p) {
            return TH_ENOMEM;
        }
        a->sorted = p;
        a->cap_sorted = n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const th_otlp_kv_t *kv = rs->resource->attributes[i];
        if (!is_key_attr(a, kv->key)) {
            continue;
        }
        size_t j = k++;
        while (j > 0 && strcmp(a->sorted[j - 1]->key, kv->key) > 0) {
            a->sorted[j] = a->sorted[j - 1];
            j--;
        }
        a->sorted[j] = kv;
    }
    a->key_len = 0;
    for (size_t i = 0; i < k; i++) {
        if (key_put(a, a->sorted[i]->key, strlen(a->sorted[i]->key) + 1) != 0 ||
            key_put_any(a, a->sorted[i]->value) != 0 || key_put(a, "", 1) != 0) {
            return TH_ENOMEM;
        }
    }
    uint64_t hash = hash_bytes(a->key, a->key_len);
    for (struct resource *r = a->resources; r; r = r->next) {
        if (r->hash == hash && r->key_len == a->key_len && !memcmp(r->key, a->key, a->key_len)) {
            r->last_seen_ns = mono_ns;
            *out = r;
            return 0;
        }
    }
    /* New: keep every attribute (not only the key ones) as text, in one allocation. */
    size_t key_len = a->key_len;
    for (size_t i = 0; i < n; i++) {
        const th_otlp_kv_t *kv = rs->resource->attributes[i];
        if (key_put(a, kv->key, strlen(kv->key) + 1) != 0 || key_put_any(a, kv->value) != 0 ||
            key_put(a, "", 1) != 0) {
            return TH_ENOMEM;
        }
    }
    size_t sz =
        align8(sizeof(struct resource)) + align8(n * sizeof(struct th_metric_attr)) + a->key_len;
    uint8_t *mem = th_calloc(1, sz);
    if (!mem) {
        return TH_ENOMEM;
    }
    struct resource *r = (struct resource *)mem;
    r->attrs = (struct th_metric_attr *)(mem + align8(sizeof(struct resource)));
    r->key = mem + align8(sizeof(struct resource)) + align8(n * sizeof(struct th_metric_attr));
    memcpy(r->key, a->key, a->key_len);
    r->key_len = key_len;
    r->hash = hash;
    r->last_seen_ns = mono_ns;
    const char *p = (const char *)r->key + key_len;
    for (size_t i = 0; i < n; i++) {
        r->attrs[i].key = p;
        p += strlen(p) + 1;
        r->attrs[i].value = p;
        p += strlen(p) + 1;
    }
    r->n_attrs = n;
    r->next = a->resources;
    a->resources = r;
    a->stats.resources++;
    *out = r;
    return 0;
}

/* ---- Aggregating -------------------------------------------------------------------------- */

/* Append one configured dimension: span attribute, then resource attribute, then default. */
static int put_dim(th_span_metrics_agg_t *a, const struct th_span_metrics_dim *d,
                   const th_otlp_span_t *span, const th_otlp_resource_spans_t *rs)
{
    const th_otlp_any_t *v = find_attr(span->attributes, span->n_attributes, d->name);
    if (!v && rs->resource) {
        v = find_attr(rs->resource->attributes, rs->resource->n_attributes, d->name);
    }
    uint8_t present = v || d->def;
    if (key_put(a, &present, 1) != 0) {
        return TH_ENOMEM;
    }
    uint32_t off = (uint32_t)a->key_len;
    int ret = 0;
    if (v) {
        ret = key_put_any(a, v);
    } else if (d->def) {
        ret = key_put(a, d->def, strlen(d->def));
    }
    if (ret != 0 || push_ref(a, d->name, off, present, NULL) != 0) {
        return TH_ENOMEM;
    }
    return key_put(a, "", 1);
}

/* Build the key of a span for @p kinds with @p extra dimensions after the common ones. */
static int build_key(th_span_metrics_agg_t *a, unsigned kinds, struct resource *res,
                     const char *service, const th_otlp_span_t *span,
                     const th_otlp_resource_spans_t *rs, const struct th_span_metrics_dims *extra)
{
    a->key_len = 0;
    a->n_refs = 0;
    uint8_t k = (uint8_t)kinds;
    if (key_put(a, &k, 1) != 0 || key_put(a, &res, sizeof(res)) != 0) {
        return TH_ENOMEM;
    }
    unsigned kind = span->kind < TH_ARRAY_SIZE(kind_names) ? (unsigned)span->kind : 0;
    unsigned status = span->status && (unsigned)span->status->code < TH_ARRAY_SIZE(status_names)
                          ? (unsigned)span->status->code
                          : 0;
    for (int i = 0; i < N_DEFAULTS; i++) {
        if (a->cfg.exclude & (1u << i)) {
            continue;
        }
        uint32_t off = (uint32_t)a->key_len;
        int ret;
        const char *fixed = NULL;
        if (i == DEF_SERVICE) {
            ret = key_put(a, service, strlen(service));
        } else if (i == DEF_SPAN_NAME) {
            ret = key_put(a, span->name, strlen(span->name));
        } else {
            uint8_t b = (uint8_t)(i == DEF_KIND ? kind : status);
            fixed = i == DEF_KIND ? kind_names[kind] : status_names[status];
            ret = key_put(a, &b, 1);
        }
        if (ret != 0 || push_ref(a, default_names[i], off, true, fixed) != 0 ||
            key_put(a, "", 1) != 0) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < a->cfg.dims.n; i++) {
        if (put_dim(a, &a->cfg.dims.v[i], span, rs) != 0) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; extra && i < extra->n; i++) {
        if (put_dim(a, &extra->v[i], span, rs) != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

static void observe(th_span_metrics_agg_t *a, struct series *s, unsigned kinds,
                    const th_otlp_span_t *span, double d, uint64_t now_ns, uint64_t mono_ns)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    bool ex = cfg->exemplars && span->trace_id.len == 16;
    if (kinds & KIND_CALLS) {
        s->calls++;
        if (ex) {
            ring_add(&s->cex, cfg->max_exemplars, span, d, now_ns);
        }
    }
    if (kinds & KIND_HIST) {
        s->count++;
        s->sum += d;
        if (cfg->exponential) {
            exp_add(&s->exp, cfg->exp_max_size, d);
        } else {
            /* the first bound >= d: bounds are upper-inclusive (Prometheus le) */
            size_t lo = 0, hi = cfg->n_bounds;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (a->bounds[mid] < d) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            s->buckets[lo]++;
        }
        if (ex) {
            ring_add(&s->ex, cfg->max_exemplars, span, d, now_ns);
        }
    }
    s->touched = true;
    s->last_seen_ns = mono_ns;
}

static int add_span(th_span_metrics_agg_t *a, struct resource *res, const char *service,
                    const th_otlp_resource_spans_t *rs, const th_otlp_span_t *span, uint64_t now_ns,
                    uint64_t mono_ns)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    double d = 0;
    if (span->end_time_unix_nano > span->start_time_unix_nano) {
        d = (double)(span->end_time_unix_nano - span->start_time_unix_nano) /
            (cfg->unit_seconds ? 1e9 : 1e6);
    }
    bool hist = !cfg->histogram_disabled;
    bool split = cfg->calls_dims.n > 0 || (hist && cfg->hist_dims.n > 0);
    struct series *s;
    int ret;
    if (!split) {
        unsigned kinds = KIND_CALLS | (hist ? KIND_HIST : 0);
        ret = build_key(a, kinds, res, service, span, rs, NULL);
        if (ret == 0) {
            ret = series_get(a, res, kinds, now_ns, &s);
        }
        if (ret == 0) {
            observe(a, s, kinds, span, d, now_ns, mono_ns);
        }
        return ret;
    }
    ret = build_key(a, KIND_CALLS, res, service, span, rs, &cfg->calls_dims);
    if (ret == 0) {
        ret = series_get(a, res, KIND_CALLS, now_ns, &s);
    }
    if (ret != 0) {
        return ret;
    }
    observe(a, s, KIND_CALLS, span, d, now_ns, mono_ns);
    if (!hist) {
        return 0;
    }
    ret = build_key(a, KIND_HIST, res, service, span, rs, &cfg->hist_dims);
    if (ret == 0) {
        ret = series_get(a, res, KIND_HIST, now_ns, &s);
    }
    if (ret == 0) {
        observe(a, s, KIND_HIST, span, d, now_ns, mono_ns);
    }
    return ret;
}

int th_span_metrics_agg_add(th_span_metrics_agg_t *a, const th_otlp_request_t *req, uint64_t now_ns,
                            uint64_t mono_ns)
{
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[r];
        const th_otlp_any_t *svc =
            rs->resource
                ? find_attr(rs->resource->attributes, rs->resource->n_attributes, "service.name")
                : NULL;
        size_t spans = 0;
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            spans += rs->scope_spans[s]->n_spans;
        }
        if (!svc) {
            a->stats.skipped += spans;
            continue;
        }
        /* the service name as text: the key scratch is reused, so copy it aside */
        char svc_buf[256];
        const char *service = svc_buf;
        if (svc->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            service = svc->string_value;
        } else {
            a->key_len = 0;
            if (key_put_any(a, svc) != 0) {
                return TH_ENOMEM;
            }
            size_t n = TH_MIN(a->key_len, sizeof(svc_buf) - 1);
            memcpy(svc_buf, a->key, n);
            svc_buf[n] = '\0';
        }
        struct resource *res;
        int ret = resource_get(a, rs, mono_ns, &res);
        if (ret != 0) {
            return ret;
        }
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[s];
            for (size_t i = 0; i < ss->n_spans; i++) {
                ret = add_span(a, res, service, rs, ss->spans[i], now_ns, mono_ns);
                if (ret != 0) {
                    return ret;
                }
                a->stats.spans++;
            }
        }
    }
    return 0;
}

/* ---- Flushing ----------------------------------------------------------------------------- */

static int copy_attrs(th_arena_t *ar, const struct th_metric_attr *in, size_t n,
                      const struct th_metric_attr **out)
{
    struct th_metric_attr *v = th_arena_calloc(ar, n ? n : 1, sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].key = th_arena_strndup(ar, in[i].key, strlen(in[i].key));
        v[i].value = th_arena_strndup(ar, in[i].value, strlen(in[i].value));
        if (!v[i].key || !v[i].value) {
            return TH_ENOMEM;
        }
    }
    *out = v;
    return 0;
}

/* Exemplars of a ring, oldest first, into the arena. */
static int copy_ring(th_arena_t *ar, const struct ring *r, size_t cap,
                     const struct th_exemplar **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!r->n) {
        return 0;
    }
    struct th_exemplar *v = th_arena_alloc(ar, r->n * sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    size_t start = r->n < cap ? 0 : r->pos;
    for (size_t i = 0; i < r->n; i++) {
        v[i] = r->v[(start + i) % cap];
    }
    *out = v;
    *n = r->n;
    return 0;
}

static bool emits(const th_span_metrics_agg_t *a, const struct series *s)
{
    return !a->cfg.delta || s->touched;
}

static int fill_point(th_span_metrics_agg_t *a, th_arena_t *ar, const struct series *s, bool hist,
                      uint64_t now_ns, struct th_metric_point *pt)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    int ret = copy_attrs(ar, s->attrs, s->n_attrs, &pt->attrs);
    if (ret != 0) {
        return ret;
    }
    pt->n_attrs = s->n_attrs;
    pt->start_ns = s->start_ns;
    pt->time_ns = now_ns;
    if (!hist) {
        pt->value = (double)s->calls;
        return copy_ring(ar, &s->cex, cfg->max_exemplars, &pt->exemplars, &pt->n_exemplars);
    }
    pt->count = s->count;
    pt->sum = s->sum;
    if (cfg->exponential) {
        pt->scale = s->exp.scale;
        pt->zero_count = s->exp.zero;
        if (s->exp.lo <= s->exp.hi) {
            pt->offset = (int32_t)s->exp.lo;
            pt->n_buckets = (size_t)(s->exp.hi - s->exp.lo + 1);
            pt->buckets = th_arena_memdup(ar, s->exp.counts + (s->exp.lo - s->exp.offset),
                                          pt->n_buckets * sizeof(uint64_t));
            if (!pt->buckets) {
                return TH_ENOMEM;
            }
        }
    } else {
        pt->n_buckets = cfg->n_bounds + 1;
        pt->buckets = th_arena_memdup(ar, s->buckets, pt->n_buckets * sizeof(uint64_t));
        if (!pt->buckets) {
            return TH_ENOMEM;
        }
    }
    return copy_ring(ar, &s->ex, cfg->max_exemplars, &pt->exemplars, &pt->n_exemplars);
}

static const char *metric_name(th_arena_t *ar, const char *ns, const char *name)
{
    size_t n = strlen(ns) + strlen(name) + 2;
    char *s = th_arena_alloc(ar, n);
    if (s) {
        snprintf(s, n, "%s%s%s", ns, *ns ? "." : "", name);
    }
    return s;
}

static int build_snapshot(th_span_metrics_agg_t *a, uint64_t now_ns, th_metrics_t **out)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    size_t n_res = 0;
    for (struct resource *r = a->resources; r; r = r->next) {
        r->flush_points[0] = r->flush_points[1] = 0;
    }
    for (size_t b = 0; b < a->cap; b++) {
        for (struct series *s = a->table[b]; s; s = s->next) {
            if (emits(a, s)) {
                s->res->flush_points[0] += (s->kinds & KIND_CALLS) != 0;
                s->res->flush_points[1] += (s->kinds & KIND_HIST) != 0;
            }
        }
    }
    for (struct resource *r = a->resources; r; r = r->next) {
        r->flush_idx = n_res;
        n_res += (r->flush_points[0] + r->flush_points[1]) > 0;
    }
    *out = NULL;
    if (n_res == 0) {
        return 0;
    }
    th_arena_t *ar = th_arena_create(0, 0);
    if (!ar) {
        return TH_ENOMEM;
    }
    th_metrics_t *m = th_metrics_create(ar);
    if (!m) {
        th_arena_destroy(ar);
        return TH_ENOMEM;
    }
    int ret = TH_ENOMEM;
    m->resources = th_arena_calloc(ar, n_res, sizeof(*m->resources));
    if (!m->resources) {
        goto fail;
    }
    m->n_resources = n_res;
    const char *calls_name = metric_name(ar, cfg->namespace_, "calls");
    const char *dur_name = metric_name(ar, cfg->namespace_, "duration");
    if (!calls_name || !dur_name) {
        goto fail;
    }
    enum th_temporality temp = cfg->delta ? TH_TEMPORALITY_DELTA : TH_TEMPORALITY_CUMULATIVE;
    for (struct resource *r = a->resources; r; r = r->next) {
        if (!(r->flush_points[0] + r->flush_points[1])) {
            continue;
        }
        struct th_metric_resource *mr = &m->resources[r->flush_idx];
        if (copy_attrs(ar, r->attrs, r->n_attrs, &mr->attrs) != 0) {
            goto fail;
        }
        mr->n_attrs = r->n_attrs;
        struct th_metric_scope *sc = th_arena_calloc(ar, 1, sizeof(*sc));
        struct th_metric *mt = th_arena_calloc(ar, 2, sizeof(*mt));
        if (!sc || !mt) {
            goto fail;
        }
        mr->scopes = sc;
        mr->n_scopes = 1;
        sc->name = "spanmetricsconnector";
        sc->version = "";
        sc->metrics = mt;
        mt[0] = (struct th_metric){.name = calls_name,
                                   .unit = "",
                                   .description = "",
                                   .type = TH_METRIC_SUM,
                                   .temporality = temp,
                                   .monotonic = true};
        sc->n_metrics = 1;
        if (!cfg->histogram_disabled) {
            mt[1] = (struct th_metric){
                .name = dur_name,
                .unit = cfg->unit_seconds ? "s" : "ms",
                .description = "",
                .type = cfg->exponential ? TH_METRIC_EXP_HISTOGRAM : TH_METRIC_HISTOGRAM,
                .temporality = temp,
                .bounds = cfg->exponential ? NULL
                                           : th_arena_memdup(ar, a->bounds,
                                                             (cfg->n_bounds ? cfg->n_bounds : 1) *
                                                                 sizeof(double)),
                .n_bounds = cfg->exponential ? 0 : cfg->n_bounds,
            };
            if (!cfg->exponential && !mt[1].bounds) {
                goto fail;
            }
            sc->n_metrics = 2;
        }
        for (size_t i = 0; i < sc->n_metrics; i++) {
            size_t n = r->flush_points[i];
            mt[i].points = th_arena_calloc(ar, n ? n : 1, sizeof(*mt[i].points));
            if (!mt[i].points) {
                goto fail;
            }
        }
    }
    for (size_t b = 0; b < a->cap; b++) {
        for (struct series *s = a->table[b]; s; s = s->next) {
            if (!emits(a, s)) {
                continue;
            }
            struct th_metric *mt = m->resources[s->res->flush_idx].scopes[0].metrics;
            if ((s->kinds & KIND_CALLS) &&
                fill_point(a, ar, s, false, now_ns, &mt[0].points[mt[0].n_points++]) != 0) {
                goto fail;
            }
            if ((s->kinds & KIND_HIST) &&
                fill_point(a, ar, s, true, now_ns, &mt[1].points[mt[1].n_points++]) != 0) {
                goto fail;
            }
        }
    }
    *out = m;
    return 0;
fail:
    th_metrics_release(m);
    return ret;
}

static void series_reset(th_span_metrics_agg_t *a, struct series *s, uint64_t now_ns)
{
    s->calls = 0;
    s->count = 0;
    s->sum = 0;
    if (s->buckets) {
        memset(s->buckets, 0, (a->cfg.n_bounds + 1) * sizeof(uint64_t));
    }
    if (s->exp.counts) {
        memset(s->exp.counts, 0, (size_t)a->cfg.exp_max_size * sizeof(uint64_t));
        exp_reset(&s->exp);
    }
    s->start_ns = now_ns;
}

static void series_free(th_span_metrics_agg_t *a, struct series *s)
{
    struct resource *r = s->res;
    r->n_alive--;
    if (s->key_len && !(s->key[0] & KEY_OVERFLOW)) {
        if (s->kinds & KIND_CALLS) {
            r->n_series[0]--;
        }
        if (s->kinds & KIND_HIST) {
            r->n_series[1]--;
        }
    }
    a->n_series--;
    th_free(s);
}

int th_span_metrics_agg_flush(th_span_metrics_agg_t *a, uint64_t now_ns, uint64_t mono_ns,
                              th_metrics_t **out)
{
    const struct th_span_metrics_agg_cfg *cfg = &a->cfg;
    int ret = build_snapshot(a, now_ns, out);
    if (ret != 0) {
        return ret;
    }
    /* Expire resources first: their series go with them. */
    for (struct resource *r = a->resources; r; r = r->next) {
        if (cfg->metrics_expiration_ns && mono_ns - r->last_seen_ns >= cfg->metrics_expiration_ns) {
            r->last_seen_ns = 0; /* marks it for removal below */
            r->n_series[0] = (size_t)-1;
        }
    }
    for (size_t b = 0; b < a->cap; b++) {
        struct series **pp = &a->table[b];
        while (*pp) {
            struct series *s = *pp;
            bool gone = s->res->n_series[0] == (size_t)-1 || (cfg->delta && !s->touched) ||
                        (cfg->series_expiration_ns &&
                         mono_ns - s->last_seen_ns >= cfg->series_expiration_ns);
            if (gone) {
                *pp = s->next;
                if (s->res->n_series[0] == (size_t)-1) {
                    s->res->n_alive--;
                    a->n_series--;
                    th_free(s);
                } else {
                    series_free(a, s);
                }
                continue;
            }
            if (cfg->delta) {
                series_reset(a, s, now_ns);
            }
            s->touched = false;
            s->ex.n = s->ex.pos = 0;
            s->cex.n = s->cex.pos = 0;
            pp = &s->next;
        }
    }
    struct resource **rp = &a->resources;
    while (*rp) {
        struct resource *r = *rp;
        if (r->n_alive == 0) {
            *rp = r->next;
            if (r == a->global) {
                a->global = NULL;
            }
            a->stats.resources--;
            th_free(r);
            continue;
        }
        rp = &r->next;
    }
    return 0;
}

struct th_span_metrics_agg_stats th_span_metrics_agg_stats(const th_span_metrics_agg_t *a)
{
    struct th_span_metrics_agg_stats st = a->stats;
    st.series = a->n_series;
    return st;
}

int th_span_metrics_agg_create(const struct th_span_metrics_agg_cfg *cfg,
                               th_span_metrics_agg_t **out)
{
    th_span_metrics_agg_t *a = th_calloc(1, sizeof(*a));
    if (!a) {
        return TH_ENOMEM;
    }
    a->cfg = *cfg;
    if (cfg->n_bounds) {
        a->bounds = th_malloc(cfg->n_bounds * sizeof(double));
        if (!a->bounds) {
            th_free(a);
            return TH_ENOMEM;
        }
        memcpy(a->bounds, cfg->bounds, cfg->n_bounds * sizeof(double));
    }
    a->cfg.bounds = a->bounds;
    if (a->cfg.exemplars && a->cfg.max_exemplars == 0) {
        a->cfg.max_exemplars = TH_SPAN_METRICS_DEFAULT_EXEMPLARS;
    }
    if (a->cfg.exp_max_size <= 0) {
        a->cfg.exp_max_size = 160;
    }
    if (!a->cfg.namespace_) {
        a->cfg.namespace_ = "";
    }
    *out = a;
    return 0;
}

void th_span_metrics_agg_destroy(th_span_metrics_agg_t *a)
{
    if (!a) {
        return;
    }
    for (size_t b = 0; b < a->cap; b++) {
        struct series *s = a->table[b];
        while (s) {
            struct series *next = s->next;
            th_free(s);
            s = next;
        }
    }
    struct resource *r = a->resources;
    while (r) {
        struct resource *next = r->next;
        th_free(r);
        r = next;
    }
    th_span_metrics_dims_free(&a->cfg.dims);
    th_span_metrics_dims_free(&a->cfg.calls_dims);
    th_span_metrics_dims_free(&a->cfg.hist_dims);
    th_free(a->table);
    th_free(a->bounds);
    th_free(a->key);
    th_free(a->refs);
    th_free(a->sorted);
    th_free(a);
}
