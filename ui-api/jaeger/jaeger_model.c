/*
 * OTLP traces as the Jaeger query API shows them: Jaeger v2's query-time adjusters on the
 * OTLP structs, the v1 JSON trace model (collector-contrib's OTLP → Jaeger translator plus
 * Jaeger's uimodel converter, jaeger-api.md §3–§4), and api_v3 trace summaries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui-api/jaeger/jaeger_model.h"
#include "ui-api/jaeger/jaeger_params.h"

#define AV(x)        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_##x
#define KIND_SERVER  OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER
#define KIND_CLIENT  OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
#define STATUS_OK    OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK
#define STATUS_ERROR OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR

typedef Opentelemetry__Proto__Trace__V1__Span__Event th_otlp_event_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Link th_otlp_link_t;
typedef Opentelemetry__Proto__Resource__V1__Resource th_otlp_resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope th_otlp_scope_t;

/* ---- Small helpers ------------------------------------------------------------------------ */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* A span id as Jaeger's uint64 (0 when absent or malformed, as pdata's empty id). */
static uint64_t span_id64(const ProtobufCBinaryData *b)
{
    return b->len == 8 && b->data ? be64(b->data) : 0;
}

/* A trace id as Jaeger's {High, Low}. */
static void trace_id128(const ProtobufCBinaryData *b, uint64_t *hi, uint64_t *lo)
{
    if (b->len == 16 && b->data) {
        *hi = be64(b->data);
        *lo = be64(b->data + 8);
    } else {
        *hi = 0;
        *lo = 0;
    }
}

static void id_text(uint64_t hi, uint64_t lo, char out[33])
{
    if (hi == 0) {
        snprintf(out, 33, "%016llx", (unsigned long long)lo);
    } else {
        snprintf(out, 33, "%016llx%016llx", (unsigned long long)hi, (unsigned long long)lo);
    }
}

void th_jaeger_trace_id_string(const uint8_t id[16], char out[33])
{
    id_text(be64(id), be64(id + 8), out);
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* The first attribute named @p key, as pcommon.Map.Get. */
static th_otlp_kv_t *find_attr(th_otlp_kv_t **kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (kvs[i] && kvs[i]->key && !strcmp(kvs[i]->key, key)) {
            return kvs[i];
        }
    }
    return NULL;
}

static bool is_str(const th_otlp_any_t *v)
{
    return v && v->value_case == AV(STRING_VALUE);
}

/* pcommon.Value.Str(): the string, or "" for any other type. */
static const char *value_str(const th_otlp_any_t *v)
{
    return is_str(v) ? str_or_empty(v->string_value) : "";
}

size_t th_jaeger_span_count(const th_otlp_request_t *req)
{
    size_t n = 0;
    for (size_t i = 0; req && i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; rs && j < rs->n_scope_spans; j++) {
            n += rs->scope_spans[j] ? rs->scope_spans[j]->n_spans : 0;
        }
    }
    return n;
}

/* Iterate every span: for (SPANS_BEGIN(req, rs, ss, sp)) { ... } SPANS_END */
#define FOR_EACH_SPAN(req, rs, ss, sp)                                                             \
    for (size_t i_ = 0; i_ < (req)->n_resource_spans; i_++)                                        \
        for (th_otlp_resource_spans_t *rs = (req)->resource_spans[i_]; rs; rs = NULL)              \
            for (size_t j_ = 0; j_ < rs->n_scope_spans; j_++)                                      \
                for (th_otlp_scope_spans_t *ss = rs->scope_spans[j_]; ss; ss = NULL)               \
                    for (size_t k_ = 0; k_ < ss->n_spans; k_++)                                    \
                        for (th_otlp_span_t *sp = ss->spans[k_]; sp; sp = NULL)

/* Stable sort of a pointer array (merge sort with scratch from the arena; insertion sort when
 * the array is small or scratch is short). Stability matters: pdata sorts stably. */
static void stable_sort(void **v, size_t n, int (*cmp)(const void *, const void *), th_arena_t *a)
{
    if (n < 2) {
        return;
    }
    void **tmp = n > 16 ? th_arena_alloc(a, n * sizeof(*tmp)) : NULL;
    if (!tmp) {
        for (size_t i = 1; i < n; i++) {
            void *x = v[i];
            size_t j = i;
            while (j > 0 && cmp(v[j - 1], x) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = TH_MIN(lo + width, n), hi = TH_MIN(lo + 2 * width, n);
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                tmp[k++] = cmp(v[j], v[i]) < 0 ? v[j++] : v[i++];
            }
            while (i < mid) {
                tmp[k++] = v[i++];
            }
            while (j < hi) {
                tmp[k++] = v[j++];
            }
        }
        memcpy(v, tmp, n * sizeof(*v));
    }
}

static int cmp_kv_key(const void *x, const void *y)
{
    const th_otlp_kv_t *a = x, *b = y;
    return strcmp(a && a->key ? a->key : "", b && b->key ? b->key : "");
}

static int cmp_event_time(const void *x, const void *y)
{
    const th_otlp_event_t *a = x, *b = y;
    return a->time_unix_nano < b->time_unix_nano ? -1 : a->time_unix_nano > b->time_unix_nano;
}

/* ---- Warnings ----------------------------------------------------------------------------- */

static th_otlp_kv_t *new_kv(th_arena_t *a, const char *key)
{
    th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    if (!kv || !v) {
        return NULL;
    }
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)key;
    kv->value = v;
    return kv;
}

/* Append one pointer to an arena-held pointer array (copying it, since the original may be
 * exactly sized). */
static int push_ptr(void ***arr, size_t *n, void *p, th_arena_t *a)
{
    void **nv = th_arena_alloc(a, (*n + 1) * sizeof(*nv));
    if (!nv) {
        return TH_ENOMEM;
    }
    if (*n) {
        memcpy(nv, *arr, *n * sizeof(*nv));
    }
    nv[(*n)++] = p;
    *arr = nv;
    return 0;
}

/* jptrace.AddWarnings: append to the span's list-of-strings warnings attribute. */
static int add_warning(th_otlp_span_t *sp, const char *text, th_arena_t *a)
{
    char *copy = th_arena_strndup(a, text, strlen(text));
    th_otlp_any_t *item = th_arena_alloc(a, sizeof(*item));
    if (!copy || !item) {
        return TH_ENOMEM;
    }
    opentelemetry__proto__common__v1__any_value__init(item);
    item->value_case = AV(STRING_VALUE);
    item->string_value = copy;
    th_otlp_kv_t *kv = find_attr(sp->attributes, sp->n_attributes, TH_JAEGER_WARNINGS_ATTR);
    if (!kv) {
        kv = new_kv(a, TH_JAEGER_WARNINGS_ATTR);
        if (!kv || push_ptr((void ***)&sp->attributes, &sp->n_attributes, kv, a) != 0) {
            return TH_ENOMEM;
        }
    }
    if (!kv->value) {
        kv->value = th_arena_alloc(a, sizeof(*kv->value));
        if (!kv->value) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__any_value__init(kv->value);
    }
    if (kv->value->value_case != AV(ARRAY_VALUE) || !kv->value->array_value) {
        Opentelemetry__Proto__Common__V1__ArrayValue *arr = th_arena_alloc(a, sizeof(*arr));
        if (!arr) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__array_value__init(arr);
        kv->value->value_case = AV(ARRAY_VALUE);
        kv->value->array_value = arr;
    }
    Opentelemetry__Proto__Common__V1__ArrayValue *arr = kv->value->array_value;
    return push_ptr((void ***)&arr->values, &arr->n_values, item, a);
}

/* ---- Adjuster: DeduplicateClientServerSpanIDs ------------------------------------------- */

struct idflag {
    uint64_t id;
    bool client;
};

static int cmp_idflag(const void *x, const void *y)
{
    const struct idflag *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Index of @p id in the sorted set, or -1. */
static ptrdiff_t idset_find(const struct idflag *set, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && set[lo].id == id ? (ptrdiff_t)lo : -1;
}

static int set_span_id(ProtobufCBinaryData *b, uint64_t v, th_arena_t *a)
{
    uint8_t *p = th_arena_alloc(a, 8);
    if (!p) {
        return TH_ENOMEM;
    }
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    b->data = p;
    b->len = 8;
    return 0;
}

static int adjust_span_ids(th_otlp_request_t *req, th_arena_t *a)
{
    size_t n = th_jaeger_span_count(req);
    if (n == 0) {
        return 0;
    }
    struct idflag *set = th_arena_alloc(a, n * sizeof(*set));
    if (!set) {
        return TH_ENOMEM;
    }
    size_t m = 0;
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        set[m].id = span_id64(&sp->span_id);
        set[m].client = sp->kind == KIND_CLIENT;
        m++;
    }
    qsort(set, m, sizeof(*set), cmp_idflag);
    /* collapse duplicates, or-ing the client flag */
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u > 0 && set[u - 1].id == set[i].id) {
            set[u - 1].client |= set[i].client;
        } else {
            set[u++] = set[i];
        }
    }
    /* old id → new id, for the children of the renamed server spans */
    uint64_t *old_ids = NULL, *new_ids = NULL;
    size_t n_map = 0;
    uint64_t max_used = 0;
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        if (sp->kind != KIND_SERVER) {
            continue;
        }
        uint64_t id = span_id64(&sp->span_id);
        ptrdiff_t at = idset_find(set, u, id);
        if (at < 0 || !set[at].client) {
            continue;
        }
        uint64_t nid = max_used + 1;
        while (nid != 0 && idset_find(set, u, nid) >= 0) {
            nid++;
        }
        if (nid == 0) {
            if (add_warning(sp, "cannot assign unique span ID, too many spans in the trace", a)) {
                return TH_ENOMEM;
            }
            continue;
        }
        max_used = nid;
        if (!old_ids) {
            old_ids = th_arena_alloc(a, n * sizeof(*old_ids));
            new_ids = th_arena_alloc(a, n * sizeof(*new_ids));
            if (!old_ids || !new_ids) {
                return TH_ENOMEM;
            }
        }
        size_t k = 0;
        while (k < n_map && old_ids[k] != id) {
            k++;
        }
        old_ids[k] = id;
        new_ids[k] = nid;
        n_map += k == n_map;
        /* the previously shared id is the new parent */
        if (set_span_id(&sp->parent_span_id, id, a) || set_span_id(&sp->span_id, nid, a)) {
            return TH_ENOMEM;
        }
    }
    if (n_map == 0) {
        return 0;
    }
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        uint64_t parent = span_id64(&sp->parent_span_id);
        for (size_t k = 0; k < n_map; k++) {
            if (old_ids[k] == parent && span_id64(&sp->span_id) != new_ids[k]) {
                if (set_span_id(&sp->parent_span_id, new_ids[k], a)) {
                    return TH_ENOMEM;
                }
                break;
            }
        }
    }
    return 0;
}

/* ---- Adjuster: SortCollections ------------------------------------------------------------ */

static void sort_attrs(th_otlp_kv_t **kvs, size_t n, th_arena_t *a)
{
    stable_sort((void **)kvs, n, cmp_kv_key, a);
}

static void adjust_sort(th_otlp_request_t *req, th_arena_t *a)
{
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (!rs) {
            continue;
        }
        if (rs->resource) {
            sort_attrs(rs->resource->attributes, rs->resource->n_attributes, a);
        }
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            if (ss && ss->scope) {
                sort_attrs(ss->scope->attributes, ss->scope->n_attributes, a);
            }
        }
    }
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        sort_attrs(sp->attributes, sp->n_attributes, a);
        stable_sort((void **)sp->events, sp->n_events, cmp_event_time, a);
        for (size_t e = 0; e < sp->n_events; e++) {
            sort_attrs(sp->events[e]->attributes, sp->events[e]->n_attributes, a);
        }
        for (size_t l = 0; l < sp->n_links; l++) {
            if (sp->links[l]) {
                sort_attrs(sp->links[l]->attributes, sp->links[l]->n_attributes, a);
            }
        }
    }
}

/* ---- Adjuster: DeduplicateSpans ----------------------------------------------------------- */

/* Protobuf bytes of a message (an empty message for NULL), for exact comparison. */
static int packed(const ProtobufCMessage *m, th_arena_t *a, th_bytes_t *out)
{
    out->ptr = (const uint8_t *)"";
    out->len = 0;
    if (!m) {
        return 0;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0) {
        return 0;
    }
    uint8_t *p = th_arena_alloc(a, n);
    if (!p) {
        return TH_ENOMEM;
    }
    protobuf_c_message_pack(m, p);
    out->ptr = p;
    out->len = n;
    return 0;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool bytes_eq(th_bytes_t x, th_bytes_t y)
{
    return x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0);
}

/* A span's identity for deduplication: resource (with its schema URL), scope (with its
 * schema URL) and the span itself, as Jaeger hashes them together. */
struct span_key {
    th_bytes_t res, res_schema, scope, scope_schema, span;
    uint64_t hash;
};

static bool key_eq(const struct span_key *x, const struct span_key *y)
{
    return x->hash == y->hash && bytes_eq(x->span, y->span) && bytes_eq(x->res, y->res) &&
           bytes_eq(x->res_schema, y->res_schema) && bytes_eq(x->scope, y->scope) &&
           bytes_eq(x->scope_schema, y->scope_schema);
}

/* The span id as a number, the cheap first test: identical spans have identical ids. */
static uint64_t span_id_of(const th_otlp_span_t *sp)
{
    uint64_t v = 0;
    if (sp->span_id.len) {
        memcpy(&v, sp->span_id.data, TH_MIN(sp->span_id.len, sizeof(v)));
    }
    return v;
}

/* The slot of span id @p id in an open-addressing table of ids + 1 (0 means empty): where
 * it is, or the empty slot where it goes. */
static size_t id_slot(const uint64_t *ids, size_t cap, uint64_t id)
{
    /* A full 64-bit mix: span ids are read in memory order, so sequential ids (some SDKs,
     * tests, crafted input) differ only in the high bits, and a multiply alone then put every
     * id in one slot and turned a 20,000-span trace into 200M probes. */
    uint64_t x = id + 1;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    size_t slot = (size_t)x & (cap - 1);
    while (ids[slot] && ids[slot] != id + 1) {
        slot = (slot + 1) & (cap - 1);
    }
    return slot;
}

/* Mark the span ids that occur more than once; only their spans can be duplicates. */
static int shared_ids(th_otlp_request_t *req, size_t n, th_arena_t *a, uint64_t **ids,
                      uint8_t **shared, size_t *cap_out)
{
    size_t cap = 16;
    while (cap < n * 2) {
        cap *= 2;
    }
    *ids = th_arena_calloc(a, cap, sizeof(**ids));
    *shared = th_arena_calloc(a, cap, 1);
    if (!*ids || !*shared) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; rs && j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; ss && k < ss->n_spans; k++) {
                if (!ss->spans[k]) {
                    continue;
                }
                uint64_t id = span_id_of(ss->spans[k]);
                size_t slot = id_slot(*ids, cap, id);
                if ((*ids)[slot]) {
                    (*shared)[slot] = 1;
                }
                (*ids)[slot] = id + 1;
            }
        }
    }
    *cap_out = cap;
    return 0;
}

static int adjust_dedupe(th_otlp_request_t *req, th_arena_t *a)
{
    size_t n = th_jaeger_span_count(req);
    if (n < 2) {
        return 0;
    }
    uint64_t *ids;
    uint8_t *shared;
    size_t id_cap;
    if (shared_ids(req, n, a, &ids, &shared, &id_cap) != 0) {
        return TH_ENOMEM;
    }
    size_t cap = id_cap; /* both tables hold at most n entries, at most half full */
    struct span_key **table = th_arena_calloc(a, cap, sizeof(*table));
    if (!table) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (!rs) {
            continue;
        }
        struct span_key base;
        if (packed((const ProtobufCMessage *)rs->resource, a, &base.res)) {
            return TH_ENOMEM;
        }
        base.res_schema.ptr = (const uint8_t *)str_or_empty(rs->schema_url);
        base.res_schema.len = strlen((const char *)base.res_schema.ptr);
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            if (!ss) {
                continue;
            }
            if (packed((const ProtobufCMessage *)ss->scope, a, &base.scope)) {
                return TH_ENOMEM;
            }
            base.scope_schema.ptr = (const uint8_t *)str_or_empty(ss->schema_url);
            base.scope_schema.len = strlen((const char *)base.scope_schema.ptr);
            uint64_t h0 = 0xcbf29ce484222325ull;
            h0 = fnv1a(h0, base.res.ptr, base.res.len);
            h0 = fnv1a(h0, base.res_schema.ptr, base.res_schema.len + 1);
            h0 = fnv1a(h0, base.scope.ptr, base.scope.len);
            h0 = fnv1a(h0, base.scope_schema.ptr, base.scope_schema.len + 1);
            size_t kept = 0;
            for (size_t k = 0; k < ss->n_spans; k++) {
                th_otlp_span_t *sp = ss->spans[k];
                if (!sp) {
                    continue;
                }
                if (!shared[id_slot(ids, id_cap, span_id_of(sp))]) {
                    ss->spans[kept++] = sp; /* no other span has its id: not a duplicate */
                    continue;
                }
                struct span_key *key = th_arena_alloc(a, sizeof(*key));
                if (!key) {
                    return TH_ENOMEM;
                }
                *key = base;
                if (packed((const ProtobufCMessage *)sp, a, &key->span)) {
                    return TH_ENOMEM;
                }
                key->hash = fnv1a(h0, key->span.ptr, key->span.len);
                size_t slot = key->hash & (cap - 1);
                bool dup = false;
                while (table[slot]) {
                    if (key_eq(table[slot], key)) {
                        dup = true;
                        break;
                    }
                    slot = (slot + 1) & (cap - 1);
                }
                if (!dup) {
                    table[slot] = key;
                    ss->spans[kept++] = sp;
                }
            }
            ss->n_spans = kept;
        }
    }
    return 0;
}

/* ---- Adjuster: CorrectClockSkew ----------------------------------------------------------- */

static void frac_int(char *buf, size_t *w, uint64_t v, int prec, uint64_t *rest)
{
    /* Go's fmtFrac: the fraction of v/10^prec without trailing zeros, then fmtInt. */
    bool print = false;
    for (int i = 0; i < prec; i++) {
        int digit = (int)(v % 10);
        print = print || digit != 0;
        if (print) {
            buf[--*w] = (char)('0' + digit);
        }
        v /= 10;
    }
    if (print) {
        buf[--*w] = '.';
    }
    *rest = v;
}

static void fmt_int(char *buf, size_t *w, uint64_t v)
{
    if (v == 0) {
        buf[--*w] = '0';
        return;
    }
    while (v > 0) {
        buf[--*w] = (char)('0' + v % 10);
        v /= 10;
    }
}

void th_jaeger_go_duration_string(int64_t d, char *out, size_t cap)
{
    char buf[40];
    size_t w = sizeof(buf);
    uint64_t u = (uint64_t)d;
    bool neg = d < 0;
    if (neg) {
        u = 0 - u;
    }
    buf[--w] = '\0';
    if (u < 1000000000ull) {
        int prec;
        buf[--w] = 's';
        if (u == 0) {
            buf[--w] = '0';
            snprintf(out, cap, "%s", buf + w);
            return;
        } else if (u < 1000) {
            prec = 0;
            buf[--w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            buf[--w] = '\xb5';
            buf[--w] = '\xc2';
        } else {
            prec = 6;
            buf[--w] = 'm';
        }
        frac_int(buf, &w, u, prec, &u);
        fmt_int(buf, &w, u);
    } else {
        buf[--w] = 's';
        frac_int(buf, &w, u, 9, &u);
        fmt_int(buf, &w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            fmt_int(buf, &w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                fmt_int(buf, &w, u);
            }
        }
    }
    if (neg) {
        buf[--w] = '-';
    }
    snprintf(out, cap, "%s", buf + w);
}

/* pcommon.Value.AsString for scalars (what clock skew's host key needs). */
static const char *scalar_as_string(const th_otlp_any_t *v, th_arena_t *a)
{
    char tmp[48];
    if (!v) {
        return "";
    }
    switch (v->value_case) {
    case AV(STRING_VALUE):
        return str_or_empty(v->string_value);
    case AV(INT_VALUE):
        snprintf(tmp, sizeof(tmp), "%lld", (long long)v->int_value);
        break;
    case AV(BOOL_VALUE):
        return v->bool_value ? "true" : "false";
    case AV(DOUBLE_VALUE):
        if (th_jaeger_format_double(v->double_value, tmp) == 0) {
            snprintf(tmp, sizeof(tmp), "%s",
                     v->double_value != v->double_value ? "NaN"
                                                        : (v->double_value > 0 ? "+Inf" : "-Inf"));
        }
        break;
    default:
        return "";
    }
    char *s = th_arena_strndup(a, tmp, strlen(tmp));
    return s ? s : "";
}

/* The clock-skew adjuster's idea of a host: host.id, else host.ip (or its first element),
 * else host.name. */
static const char *host_key(const th_otlp_resource_spans_t *rs, th_arena_t *a)
{
    if (!rs->resource) {
        return "";
    }
    th_otlp_kv_t **kv = rs->resource->attributes;
    size_t n = rs->resource->n_attributes;
    th_otlp_kv_t *f;
    if ((f = find_attr(kv, n, "host.id"))) {
        return value_str(f->value);
    }
    if ((f = find_attr(kv, n, "host.ip")) && f->value) {
        if (is_str(f->value)) {
            return value_str(f->value);
        }
        if (f->value->value_case == AV(ARRAY_VALUE) && f->value->array_value &&
            f->value->array_value->n_values > 0) {
            return scalar_as_string(f->value->array_value->values[0], a);
        }
    }
    if ((f = find_attr(kv, n, "host.name"))) {
        return value_str(f->value);
    }
    return "";
}

struct skew_node {
    th_otlp_span_t *span;
    const char *host;
    uint64_t id;
    struct skew_node **children;
    size_t n_children;
    size_t cap_children;
    bool root;
};

static int cmp_node_id(const void *x, const void *y)
{
    const struct skew_node *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

static struct skew_node *node_find(struct skew_node **by_id, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by_id[mid]->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && by_id[lo]->id == id ? by_id[lo] : NULL;
}

static int64_t skew_of(const th_otlp_span_t *child, const th_otlp_span_t *parent)
{
    int64_t ps = (int64_t)parent->start_time_unix_nano, pe = (int64_t)parent->end_time_unix_nano;
    int64_t cs = (int64_t)child->start_time_unix_nano, ce = (int64_t)child->end_time_unix_nano;
    int64_t pd = pe - ps, cd = ce - cs;
    if (cd > pd) {
        /* async child, or the parent gave up first: only keep it from starting earlier */
        return cs < ps ? ps - cs : 0;
    }
    if (cs >= ps && ce <= pe) {
        return 0;
    }
    /* network latency split evenly between request and response */
    return ps + (pd - cd) / 2 - cs;
}

static int apply_skew(struct skew_node *n, int64_t delta, int64_t max_delta, th_arena_t *a)
{
    char d1[40], d2[40], msg[160];
    if (delta == 0) {
        return 0;
    }
    int64_t absd = delta < 0 ? -delta : delta;
    if (absd > max_delta || delta == INT64_MIN) {
        th_jaeger_go_duration_string(delta, d1, sizeof(d1));
        if (max_delta == 0) {
            snprintf(msg, sizeof(msg),
                     "clock skew adjustment disabled; not applying calculated delta of %s", d1);
        } else {
            th_jaeger_go_duration_string(max_delta, d2, sizeof(d2));
            snprintf(msg, sizeof(msg),
                     "max clock skew adjustment delta of %s exceeded; not applying calculated "
                     "delta of %s",
                     d2, d1);
        }
        return add_warning(n->span, msg, a);
    }
    th_otlp_span_t *sp = n->span;
    sp->start_time_unix_nano = (uint64_t)((int64_t)sp->start_time_unix_nano + delta);
    sp->end_time_unix_nano = (uint64_t)((int64_t)sp->end_time_unix_nano + delta);
    th_jaeger_go_duration_string(delta, d1, sizeof(d1));
    snprintf(msg, sizeof(msg), "This span's timestamps were adjusted by %s", d1);
    for (size_t e = 0; e < sp->n_events; e++) {
        sp->events[e]->time_unix_nano = (uint64_t)((int64_t)sp->events[e]->time_unix_nano + delta);
    }
    return add_warning(sp, msg, a);
}

struct skew_frame {
    struct skew_node *n;
    struct skew_node *parent;
    const char *host;
    int64_t delta;
};

/* Walk one tree, each node after its parent, without recursion (traces can be deep). */
static int skew_walk(struct skew_node *root, int64_t max_delta, struct skew_frame *stack,
                     th_arena_t *a)
{
    size_t top = 0;
    stack[top++] = (struct skew_frame){root, NULL, root->host, 0};
    while (top > 0) {
        struct skew_frame f = stack[--top];
        struct skew_node *n = f.n;
        if ((strcmp(n->host, f.host) != 0 || *n->host == '\0') && f.parent) {
            /* a different host: compare with the (already adjusted) parent */
            f.host = n->host;
            f.delta = skew_of(n->span, f.parent->span);
        }
        if (apply_skew(n, f.delta, max_delta, a) != 0) {
            return TH_ENOMEM;
        }
        for (size_t c = n->n_children; c-- > 0;) {
            stack[top++] = (struct skew_frame){n->children[c], n, f.host, f.delta};
        }
    }
    return 0;
}

static int adjust_clock_skew(th_otlp_request_t *req, int64_t max_delta, th_arena_t *a)
{
    size_t n = th_jaeger_span_count(req);
    if (n == 0) {
        return 0;
    }
    struct skew_node *nodes = th_arena_calloc(a, n, sizeof(*nodes));
    struct skew_node **by_id = th_arena_alloc(a, n * sizeof(*by_id));
    struct skew_frame *stack = th_arena_alloc(a, n * sizeof(*stack));
    if (!nodes || !by_id || !stack) {
        return TH_ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (!rs) {
            continue;
        }
        const char *host = host_key(rs, a);
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; ss && k < ss->n_spans; k++) {
                nodes[m] = (struct skew_node){
                    .span = ss->spans[k], .host = host, .id = span_id64(&ss->spans[k]->span_id)};
                by_id[m] = &nodes[m];
                m++;
            }
        }
    }
    /* Stable order by id: the first span with an id owns it, later ones are duplicates. */
    stable_sort((void **)by_id, m, cmp_node_id, a);
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u > 0 && by_id[u - 1]->id == by_id[i]->id) {
            if (add_warning(by_id[i]->span, "duplicate span IDs; skipping clock skew adjustment",
                            a)) {
                return TH_ENOMEM;
            }
            by_id[i]->host = NULL; /* marks "not a node" */
            continue;
        }
        by_id[u++] = by_id[i];
    }
    for (size_t i = 0; i < m; i++) {
        struct skew_node *nd = &nodes[i];
        if (!nd->host) {
            continue; /* a duplicate */
        }
        uint64_t parent = span_id64(&nd->span->parent_span_id);
        if (parent == 0) {
            nd->root = true;
            continue;
        }
        struct skew_node *p = node_find(by_id, u, parent);
        if (!p) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "parent span ID=%016llx is not in the trace; skipping clock skew adjustment",
                     (unsigned long long)parent);
            if (add_warning(nd->span, msg, a)) {
                return TH_ENOMEM;
            }
            nd->root = true;
            continue;
        }
        if (p->n_children == p->cap_children) {
            size_t cap = p->cap_children ? p->cap_children * 2 : 4;
            struct skew_node **c = th_arena_alloc(a, cap * sizeof(*c));
            if (!c) {
                return TH_ENOMEM;
            }
            if (p->n_children) {
                memcpy(c, p->children, p->n_children * sizeof(*c));
            }
            p->children = c;
            p->cap_children = cap;
        }
        p->children[p->n_children++] = nd;
    }
    for (size_t i = 0; i < m; i++) {
        if (nodes[i].root && skew_walk(&nodes[i], max_delta, stack, a) != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

/* ---- Adjusters: NormalizeIPAttributes, MoveLibraryAttributes, RemoveEmptySpanLinks ------- */

static int normalize_ips(th_otlp_kv_t **kvs, size_t n, th_arena_t *a)
{
    for (size_t i = 0; i < n; i++) {
        th_otlp_kv_t *kv = kvs[i];
        if (!kv || !kv->key || !kv->value ||
            (strcmp(kv->key, "ip") != 0 && strcmp(kv->key, "peer.ipv4") != 0)) {
            continue;
        }
        uint32_t ip;
        if (kv->value->value_case == AV(INT_VALUE)) {
            ip = (uint32_t)kv->value->int_value;
        } else if (kv->value->value_case == AV(DOUBLE_VALUE)) {
            double d = kv->value->double_value;
            ip = d >= 0 && d < 4294967296.0 ? (uint32_t)d : 0;
        } else {
            continue;
        }
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
                 ip & 255);
        th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
        char *s = th_arena_strndup(a, tmp, strlen(tmp));
        if (!v || !s) {
            return TH_ENOMEM;
        }
        opentelemetry__proto__common__v1__any_value__init(v);
        v->value_case = AV(STRING_VALUE);
        v->string_value = s;
        kv->value = v;
    }
    return 0;
}

static bool is_library_key(const char *k)
{
    static const char *const keys[] = {"telemetry.sdk.language", "telemetry.sdk.name",
                                       "telemetry.sdk.version", "telemetry.distro.name",
                                       "telemetry.distro.version"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(keys); i++) {
        if (!strcmp(k, keys[i])) {
            return true;
        }
    }
    return false;
}

static int move_library_attrs(th_otlp_resource_spans_t *rs, th_otlp_span_t *sp, th_arena_t *a)
{
    const char *conflicts[8];
    size_t n_conflicts = 0;
    size_t kept = 0;
    for (size_t i = 0; i < sp->n_attributes; i++) {
        th_otlp_kv_t *kv = sp->attributes[i];
        if (!kv || !kv->key || !is_library_key(kv->key)) {
            sp->attributes[kept++] = kv;
            continue;
        }
        if (!rs->resource) {
            rs->resource = th_arena_alloc(a, sizeof(*rs->resource));
            if (!rs->resource) {
                return TH_ENOMEM;
            }
            opentelemetry__proto__resource__v1__resource__init(rs->resource);
        }
        th_otlp_resource_t *res = rs->resource;
        th_otlp_kv_t *have = find_attr(res->attributes, res->n_attributes, kv->key);
        if (have && !(is_str(have->value) && is_str(kv->value) &&
                      !strcmp(value_str(have->value), value_str(kv->value)))) {
            /* only identical strings may move; anything else stays, with a warning */
            sp->attributes[kept++] = kv;
            if (n_conflicts < TH_ARRAY_SIZE(conflicts)) {
                conflicts[n_conflicts++] = kv->key;
            }
            continue;
        }
        if (have) {
            have->value = kv->value;
        } else if (push_ptr((void ***)&res->attributes, &res->n_attributes, kv, a) != 0) {
            return TH_ENOMEM;
        }
    }
    sp->n_attributes = kept;
    for (size_t i = 0; i < n_conflicts; i++) {
        char msg[160];
        snprintf(msg, sizeof(msg), "conflicting values between Span and Resource for attribute %s",
                 conflicts[i]);
        if (add_warning(sp, msg, a) != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

static bool all_zero(const ProtobufCBinaryData *b)
{
    for (size_t i = 0; b->data && i < b->len; i++) {
        if (b->data[i]) {
            return false;
        }
    }
    return true;
}

static int remove_empty_links(th_otlp_span_t *sp, th_arena_t *a)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < sp->n_links; i++) {
        th_otlp_link_t *l = sp->links[i];
        if (!l || all_zero(&l->trace_id)) {
            removed++;
            continue;
        }
        sp->links[kept++] = l;
    }
    sp->n_links = kept;
    for (size_t i = 0; i < removed; i++) {
        if (add_warning(sp, "Invalid span link removed", a) != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

int th_jaeger_adjust(th_otlp_request_t *req, int64_t max_clock_skew_ns, th_arena_t *a)
{
    if (!req) {
        return 0;
    }
    int rc = adjust_span_ids(req, a);
    if (rc != 0) {
        return rc;
    }
    adjust_sort(req, a);
    if ((rc = adjust_dedupe(req, a)) != 0) {
        return rc;
    }
    if ((rc = adjust_clock_skew(req, max_clock_skew_ns < 0 ? 0 : max_clock_skew_ns, a)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (rs && rs->resource &&
            normalize_ips(rs->resource->attributes, rs->resource->n_attributes, a) != 0) {
            return TH_ENOMEM;
        }
    }
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        if (normalize_ips(sp->attributes, sp->n_attributes, a) != 0) {
            return TH_ENOMEM;
        }
    }
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        if (move_library_attrs(rs, sp, a) != 0) {
            return TH_ENOMEM;
        }
    }
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        if (remove_empty_links(sp, a) != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

/* ---- v1 JSON: values ----------------------------------------------------------------------- */

/* json.Marshal fails on NaN and infinities, and pcommon's AsString then gives "". */
static bool has_nonfinite(const th_otlp_any_t *v, int depth)
{
    if (!v || depth > 256) {
        return false;
    }
    switch (v->value_case) {
    case AV(DOUBLE_VALUE):
        return v->double_value != v->double_value || v->double_value - v->double_value != 0;
    case AV(ARRAY_VALUE):
        for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++) {
            if (has_nonfinite(v->array_value->values[i], depth + 1)) {
                return true;
            }
        }
        return false;
    case AV(KVLIST_VALUE):
        for (size_t i = 0; v->kvlist_value && i < v->kvlist_value->n_values; i++) {
            th_otlp_kv_t *kv = v->kvlist_value->values[i];
            if (kv && has_nonfinite(kv->value, depth + 1)) {
                return true;
            }
        }
        return false;
    default:
        return false;
    }
}

/* Go's json.Marshal of pcommon's AsRaw(): maps as objects with sorted keys (the last of
 * duplicate keys wins), slices as arrays, bytes as base64, empty values as null. */
static void write_raw(th_jaeger_json_t *w, const th_otlp_any_t *v, th_arena_t *a)
{
    if (!v) {
        th_jaeger_json_null(w);
        return;
    }
    switch (v->value_case) {
    case AV(STRING_VALUE):
        th_jaeger_json_strz(w, v->string_value);
        return;
    case AV(BOOL_VALUE):
        th_jaeger_json_bool(w, v->bool_value);
        return;
    case AV(INT_VALUE):
        th_jaeger_json_int(w, v->int_value);
        return;
    case AV(DOUBLE_VALUE):
        th_jaeger_json_double(w, v->double_value);
        return;
    case AV(BYTES_VALUE):
        th_jaeger_json_base64(w, v->bytes_value.data, v->bytes_value.len);
        return;
    case AV(ARRAY_VALUE):
        th_jaeger_json_arr_begin(w);
        for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++) {
            write_raw(w, v->array_value->values[i], a);
        }
        th_jaeger_json_arr_end(w);
        return;
    case AV(KVLIST_VALUE): {
        size_t n = v->kvlist_value ? v->kvlist_value->n_values : 0;
        th_otlp_kv_t **kv = n ? th_arena_alloc(a, n * sizeof(*kv)) : NULL;
        if (n && !kv) {
            w->err = TH_ENOMEM;
            return;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (v->kvlist_value->values[i]) {
                kv[m++] = v->kvlist_value->values[i];
            }
        }
        stable_sort((void **)kv, m, cmp_kv_key, a);
        th_jaeger_json_obj_begin(w);
        for (size_t i = 0; i < m; i++) {
            if (i + 1 < m && cmp_kv_key(kv[i], kv[i + 1]) == 0) {
                continue; /* a later duplicate replaces this one */
            }
            th_jaeger_json_keyz(w, str_or_empty(kv[i]->key));
            write_raw(w, kv[i]->value, a);
        }
        th_jaeger_json_obj_end(w);
        return;
    }
    default:
        th_jaeger_json_null(w);
        return;
    }
}

/* pcommon AsString of a map or slice: its JSON text ("" when it cannot be marshalled). */
static int as_json_string(const th_otlp_any_t *v, th_arena_t *a, th_buf_t *out)
{
    out->len = 0;
    if (has_nonfinite(v, 0)) {
        return 0;
    }
    th_jaeger_json_t w;
    th_jaeger_json_init(&w, out, 0);
    write_raw(&w, v, a);
    int rc = th_jaeger_json_finish(&w);
    if (rc == TH_E2BIG) {
        out->len = 0; /* deeper than any JSON encoder here goes: Go would fail too */
        return 0;
    }
    return rc;
}

static void write_kv_head(th_jaeger_json_t *w, const char *key, const char *type)
{
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "key");
    th_jaeger_json_strz(w, key);
    th_jaeger_json_keyz(w, "type");
    th_jaeger_json_strz(w, type);
    th_jaeger_json_keyz(w, "value");
}

static void write_str_tag(th_jaeger_json_t *w, const char *key, const char *value)
{
    write_kv_head(w, key, "string");
    th_jaeger_json_strz(w, value);
    th_jaeger_json_obj_end(w);
}

/* JavaScript's Number.MAX_SAFE_INTEGER: larger int64 values travel as strings. */
#define MAX_SAFE_INT ((int64_t)(((uint64_t)1 << 53) - 1))

/* One attribute as a v1 KeyValue (translator's attributeToJaegerProtoTag, then uimodel). */
static void write_attr_tag(th_jaeger_json_t *w, const th_otlp_kv_t *kv, th_arena_t *a,
                           th_buf_t *scratch)
{
    const char *key = str_or_empty(kv->key);
    const th_otlp_any_t *v = kv->value;
    switch (v ? v->value_case : AV(_NOT_SET)) {
    case AV(STRING_VALUE):
        write_str_tag(w, key, v->string_value);
        return;
    case AV(BOOL_VALUE):
        write_kv_head(w, key, "bool");
        th_jaeger_json_bool(w, v->bool_value);
        break;
    case AV(INT_VALUE):
        write_kv_head(w, key, "int64");
        if (v->int_value > MAX_SAFE_INT || v->int_value < -MAX_SAFE_INT) {
            char tmp[24];
            snprintf(tmp, sizeof(tmp), "%lld", (long long)v->int_value);
            th_jaeger_json_strz(w, tmp);
        } else {
            th_jaeger_json_int(w, v->int_value);
        }
        break;
    case AV(DOUBLE_VALUE):
        write_kv_head(w, key, "float64");
        th_jaeger_json_double(w, v->double_value);
        break;
    case AV(BYTES_VALUE):
        write_kv_head(w, key, "binary");
        th_jaeger_json_base64(w, v->bytes_value.data, v->bytes_value.len);
        break;
    case AV(ARRAY_VALUE):
    case AV(KVLIST_VALUE): {
        int rc = as_json_string(v, a, scratch);
        if (rc != 0) {
            w->err = rc;
            return;
        }
        write_kv_head(w, key, "string");
        th_jaeger_json_str(w, (const char *)scratch->ptr, scratch->len);
        break;
    }
    default:
        write_str_tag(w, key, "");
        return;
    }
    th_jaeger_json_obj_end(w);
}

static void write_attr_tags(th_jaeger_json_t *w, th_otlp_kv_t **kvs, size_t n, const char *skip,
                            th_arena_t *a, th_buf_t *scratch)
{
    for (size_t i = 0; i < n; i++) {
        if (!kvs[i] || (skip && kvs[i]->key && !strcmp(kvs[i]->key, skip))) {
            continue;
        }
        write_attr_tag(w, kvs[i], a, scratch);
    }
}

/* ---- v1 JSON: processes -------------------------------------------------------------------- */

static const char *service_name(const th_otlp_resource_t *res)
{
    if (!res || res->n_attributes == 0) {
        return TH_JAEGER_NO_SERVICE_NAME;
    }
    th_otlp_kv_t *kv = find_attr(res->attributes, res->n_attributes, "service.name");
    return kv ? value_str(kv->value) : "";
}

static void write_process(th_jaeger_json_t *w, const th_otlp_resource_t *res, th_arena_t *a,
                          th_buf_t *scratch)
{
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "serviceName");
    th_jaeger_json_strz(w, service_name(res));
    th_jaeger_json_keyz(w, "tags");
    th_jaeger_json_arr_begin(w);
    if (res) {
        write_attr_tags(w, res->attributes, res->n_attributes, "service.name", a, scratch);
    }
    th_jaeger_json_arr_end(w);
    th_jaeger_json_obj_end(w);
}

/* A distinct process: its compact JSON is its identity (Jaeger hashes service and tags). */
struct process {
    const th_otlp_resource_t *res;
    th_bytes_t key;
    char id[24];
};

struct trace_ctx {
    th_arena_t *a;
    th_buf_t scratch;      /* map and slice values as JSON text */
    struct process *procs; /* distinct processes, in order of first use */
    size_t n_procs;
    size_t *proc_of_rs; /* per resource_spans: index in procs */
};

static int build_processes(struct trace_ctx *t, const th_otlp_request_t *req)
{
    size_t n = req->n_resource_spans;
    t->procs = th_arena_calloc(t->a, n ? n : 1, sizeof(*t->procs));
    t->proc_of_rs = th_arena_calloc(t->a, n ? n : 1, sizeof(*t->proc_of_rs));
    if (!t->procs || !t->proc_of_rs) {
        return TH_ENOMEM;
    }
    th_buf_t key = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        size_t spans = 0;
        for (size_t j = 0; rs && j < rs->n_scope_spans; j++) {
            spans += rs->scope_spans[j] ? rs->scope_spans[j]->n_spans : 0;
        }
        if (spans == 0) {
            continue;
        }
        key.len = 0;
        th_jaeger_json_t w;
        th_jaeger_json_init(&w, &key, 0);
        write_process(&w, rs->resource, t->a, &t->scratch);
        if ((rc = th_jaeger_json_finish(&w)) != 0) {
            break;
        }
        th_bytes_t k = {key.ptr, key.len};
        size_t p = 0;
        while (p < t->n_procs && !bytes_eq(t->procs[p].key, k)) {
            p++;
        }
        if (p == t->n_procs) {
            struct process *pr = &t->procs[t->n_procs++];
            pr->res = rs->resource;
            pr->key.ptr = th_arena_memdup(t->a, key.ptr, key.len);
            pr->key.len = key.len;
            snprintf(pr->id, sizeof(pr->id), "p%zu", t->n_procs);
            if (!pr->key.ptr) {
                rc = TH_ENOMEM;
            }
        }
        t->proc_of_rs[i] = p;
    }
    th_buf_free(&key);
    return rc;
}

static int cmp_proc_id(const void *x, const void *y)
{
    return strcmp(((const struct process *)x)->id, ((const struct process *)y)->id);
}

/* ---- v1 JSON: spans ------------------------------------------------------------------------ */

static void write_ref(th_jaeger_json_t *w, const char *type, uint64_t hi, uint64_t lo,
                      uint64_t span)
{
    char tid[33], sid[17];
    id_text(hi, lo, tid);
    snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)span);
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "refType");
    th_jaeger_json_strz(w, type);
    th_jaeger_json_keyz(w, "traceID");
    th_jaeger_json_strz(w, tid);
    th_jaeger_json_keyz(w, "spanID");
    th_jaeger_json_strz(w, sid);
    th_jaeger_json_obj_end(w);
}

static const char *link_ref_type(const th_otlp_link_t *l)
{
    th_otlp_kv_t *kv = find_attr(l->attributes, l->n_attributes, "opentracing.ref_type");
    if (!kv) {
        return "FOLLOWS_FROM";
    }
    return !strcmp(value_str(kv->value), "child_of") ? "CHILD_OF" : "FOLLOWS_FROM";
}

static void write_references(th_jaeger_json_t *w, const th_otlp_span_t *sp)
{
    uint64_t hi, lo;
    trace_id128(&sp->trace_id, &hi, &lo);
    uint64_t parent = span_id64(&sp->parent_span_id);
    /* A link to the parent itself only decides the parent reference's type. */
    const char *parent_type = "CHILD_OF";
    th_jaeger_json_arr_begin(w);
    for (size_t i = 0; parent && i < sp->n_links; i++) {
        const th_otlp_link_t *l = sp->links[i];
        uint64_t lhi, llo;
        trace_id128(&l->trace_id, &lhi, &llo);
        if (lhi == hi && llo == lo && span_id64(&l->span_id) == parent) {
            parent_type = link_ref_type(l);
        }
    }
    if (parent) {
        write_ref(w, parent_type, hi, lo, parent);
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        const th_otlp_link_t *l = sp->links[i];
        uint64_t lhi, llo;
        trace_id128(&l->trace_id, &lhi, &llo);
        uint64_t lsid = span_id64(&l->span_id);
        if (parent && lhi == hi && llo == lo && lsid == parent) {
            continue;
        }
        write_ref(w, link_ref_type(l), lhi, llo, lsid);
    }
    th_jaeger_json_arr_end(w);
}

static void write_span_tags(th_jaeger_json_t *w, const th_otlp_scope_t *scope,
                            const th_otlp_span_t *sp, struct trace_ctx *t)
{
    th_jaeger_json_arr_begin(w);
    if (scope && scope->name && *scope->name) {
        write_str_tag(w, "otel.scope.name", scope->name);
    }
    if (scope && scope->version && *scope->version) {
        write_str_tag(w, "otel.scope.version", scope->version);
    }
    write_attr_tags(w, sp->attributes, sp->n_attributes, TH_JAEGER_WARNINGS_ATTR, t->a,
                    &t->scratch);
    const char *kind = th_jaeger_span_kind_name(sp->kind);
    if (*kind) {
        write_str_tag(w, "span.kind", kind);
    }
    int code = sp->status ? (int)sp->status->code : 0;
    if (code == STATUS_OK) {
        write_str_tag(w, "otel.status_code", "OK");
    } else if (code == STATUS_ERROR) {
        write_str_tag(w, "otel.status_code", "ERROR");
        write_kv_head(w, "error", "bool");
        th_jaeger_json_bool(w, true);
        th_jaeger_json_obj_end(w);
    }
    if (sp->status && sp->status->message && *sp->status->message) {
        write_str_tag(w, "otel.status_description", sp->status->message);
    }
    if (sp->trace_state && *sp->trace_state) {
        write_str_tag(w, "w3c.tracestate", sp->trace_state);
    }
    th_jaeger_json_arr_end(w);
}

static void write_logs(th_jaeger_json_t *w, const th_otlp_span_t *sp, struct trace_ctx *t)
{
    th_jaeger_json_arr_begin(w);
    for (size_t i = 0; i < sp->n_events; i++) {
        const th_otlp_event_t *e = sp->events[i];
        th_jaeger_json_obj_begin(w);
        th_jaeger_json_keyz(w, "timestamp");
        th_jaeger_json_uint(w, e->time_unix_nano / 1000);
        th_jaeger_json_keyz(w, "fields");
        th_jaeger_json_arr_begin(w);
        if (e->name && *e->name && !find_attr(e->attributes, e->n_attributes, "event")) {
            write_str_tag(w, "event", e->name);
        }
        write_attr_tags(w, e->attributes, e->n_attributes, NULL, t->a, &t->scratch);
        th_jaeger_json_arr_end(w);
        th_jaeger_json_obj_end(w);
    }
    th_jaeger_json_arr_end(w);
}

static void write_warnings(th_jaeger_json_t *w, const th_otlp_span_t *sp)
{
    th_otlp_kv_t *kv = find_attr(sp->attributes, sp->n_attributes, TH_JAEGER_WARNINGS_ATTR);
    const Opentelemetry__Proto__Common__V1__ArrayValue *arr =
        kv && kv->value && kv->value->value_case == AV(ARRAY_VALUE) ? kv->value->array_value : NULL;
    if (!arr || arr->n_values == 0) {
        th_jaeger_json_null(w);
        return;
    }
    th_jaeger_json_arr_begin(w);
    for (size_t i = 0; i < arr->n_values; i++) {
        th_jaeger_json_strz(w, value_str(arr->values[i]));
    }
    th_jaeger_json_arr_end(w);
}

static void write_span(th_jaeger_json_t *w, const th_otlp_scope_t *scope, const th_otlp_span_t *sp,
                       const char *process_id, struct trace_ctx *t)
{
    uint64_t hi, lo;
    char tid[33], sid[17];
    trace_id128(&sp->trace_id, &hi, &lo);
    id_text(hi, lo, tid);
    snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)span_id64(&sp->span_id));
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "traceID");
    th_jaeger_json_strz(w, tid);
    th_jaeger_json_keyz(w, "spanID");
    th_jaeger_json_strz(w, sid);
    th_jaeger_json_keyz(w, "operationName");
    th_jaeger_json_strz(w, sp->name);
    th_jaeger_json_keyz(w, "references");
    write_references(w, sp);
    th_jaeger_json_keyz(w, "startTime");
    th_jaeger_json_uint(w, sp->start_time_unix_nano / 1000);
    th_jaeger_json_keyz(w, "duration");
    /* Go would wrap a negative duration into a huge number; no client can use that. */
    th_jaeger_json_uint(w, sp->end_time_unix_nano > sp->start_time_unix_nano
                               ? (sp->end_time_unix_nano - sp->start_time_unix_nano) / 1000
                               : 0);
    th_jaeger_json_keyz(w, "tags");
    write_span_tags(w, scope, sp, t);
    th_jaeger_json_keyz(w, "logs");
    write_logs(w, sp, t);
    th_jaeger_json_keyz(w, "processID");
    th_jaeger_json_strz(w, process_id);
    th_jaeger_json_keyz(w, "warnings");
    write_warnings(w, sp);
    th_jaeger_json_obj_end(w);
}

int th_jaeger_write_v1_trace(th_jaeger_json_t *w, const th_otlp_request_t *req, th_arena_t *a)
{
    struct trace_ctx t = {.a = a};
    int rc = build_processes(&t, req);
    if (rc != 0) {
        th_buf_free(&t.scratch);
        return rc;
    }
    const th_otlp_span_t *first = NULL;
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        if (!first) {
            first = sp;
        }
    }
    uint64_t hi = 0, lo = 0;
    if (first) {
        trace_id128(&first->trace_id, &hi, &lo);
    }
    char tid[33];
    id_text(hi, lo, tid);
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "traceID");
    th_jaeger_json_strz(w, tid);
    th_jaeger_json_keyz(w, "spans");
    th_jaeger_json_arr_begin(w);
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; rs && j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; ss && k < ss->n_spans; k++) {
                write_span(w, ss->scope, ss->spans[k], t.procs[t.proc_of_rs[i]].id, &t);
            }
        }
    }
    th_jaeger_json_arr_end(w);
    /* encoding/json writes map keys sorted: p1, p10, p2, ... */
    qsort(t.procs, t.n_procs, sizeof(*t.procs), cmp_proc_id);
    th_jaeger_json_keyz(w, "processes");
    th_jaeger_json_obj_begin(w);
    for (size_t p = 0; p < t.n_procs; p++) {
        th_jaeger_json_keyz(w, t.procs[p].id);
        write_process(w, t.procs[p].res, a, &t.scratch);
    }
    th_jaeger_json_obj_end(w);
    th_jaeger_json_keyz(w, "warnings");
    th_jaeger_json_null(w);
    th_jaeger_json_obj_end(w);
    th_buf_free(&t.scratch);
    return w->err;
}

/* ---- api_v3 summaries ---------------------------------------------------------------------- */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmp_service(const void *x, const void *y)
{
    return strcmp(((const struct th_jaeger_summary_service *)x)->name,
                  ((const struct th_jaeger_summary_service *)y)->name);
}

int th_jaeger_summarize(const th_otlp_request_t *req, th_arena_t *a, struct th_jaeger_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->root_service = "";
    out->root_operation = "";
    size_t n = th_jaeger_span_count(req);
    if (n == 0) {
        return 0;
    }
    uint64_t *ids = th_arena_alloc(a, n * sizeof(*ids));
    out->services = th_arena_calloc(a, req->n_resource_spans, sizeof(*out->services));
    if (!ids || !out->services) {
        return TH_ENOMEM;
    }
    size_t m = 0;
    bool have_root = false, first = true;
    uint64_t root_start = 0;
    FOR_EACH_SPAN(req, rs, ss, sp)
    {
        ids[m++] = span_id64(&sp->span_id);
        if (first && sp->trace_id.len == 16) {
            memcpy(out->trace_id, sp->trace_id.data, 16);
            first = false;
        }
    }
    qsort(ids, m, sizeof(*ids), cmp_u64);
    out->min_start_ns = UINT64_MAX;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        if (!rs) {
            continue;
        }
        const char *svc = "";
        if (rs->resource) {
            th_otlp_kv_t *kv =
                find_attr(rs->resource->attributes, rs->resource->n_attributes, "service.name");
            svc = kv ? value_str(kv->value) : "";
        }
        struct th_jaeger_summary_service *s = NULL;
        for (size_t k = 0; k < out->n_services; k++) {
            if (!strcmp(out->services[k].name, svc)) {
                s = &out->services[k];
            }
        }
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; ss && k < ss->n_spans; k++) {
                const th_otlp_span_t *sp = ss->spans[k];
                if (!s) {
                    s = &out->services[out->n_services++];
                    s->name = svc;
                }
                bool err = sp->status && sp->status->code == STATUS_ERROR;
                out->span_count++;
                out->error_span_count += err;
                s->span_count++;
                s->error_span_count += err;
                out->min_start_ns = TH_MIN(out->min_start_ns, sp->start_time_unix_nano);
                out->max_end_ns = TH_MAX(out->max_end_ns, sp->end_time_unix_nano);
                uint64_t parent = span_id64(&sp->parent_span_id);
                if (parent == 0) {
                    if (!have_root || sp->start_time_unix_nano < root_start) {
                        have_root = true;
                        root_start = sp->start_time_unix_nano;
                        out->root_service = svc;
                        out->root_operation = str_or_empty(sp->name);
                    }
                } else if (!bsearch(&parent, ids, m, sizeof(*ids), cmp_u64)) {
                    out->orphan_span_count++;
                }
            }
        }
    }
    qsort(out->services, out->n_services, sizeof(*out->services), cmp_service);
    return 0;
}

void th_jaeger_write_summary(th_jaeger_json_t *w, const struct th_jaeger_summary *s)
{
    char hex[33], num[24];
    th_hex_encode(s->trace_id, 16, hex);
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "traceId");
    th_jaeger_json_strz(w, hex);
    if (*s->root_service) {
        th_jaeger_json_keyz(w, "rootServiceName");
        th_jaeger_json_strz(w, s->root_service);
    }
    if (*s->root_operation) {
        th_jaeger_json_keyz(w, "rootOperationName");
        th_jaeger_json_strz(w, s->root_operation);
    }
    if (s->span_count && s->min_start_ns) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)s->min_start_ns);
        th_jaeger_json_keyz(w, "minStartTimeUnixNano");
        th_jaeger_json_strz(w, num);
    }
    if (s->max_end_ns) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)s->max_end_ns);
        th_jaeger_json_keyz(w, "maxEndTimeUnixNano");
        th_jaeger_json_strz(w, num);
    }
    static const char *const names[] = {"spanCount", "errorSpanCount", "orphanSpanCount"};
    const uint32_t counts[] = {s->span_count, s->error_span_count, s->orphan_span_count};
    for (size_t i = 0; i < 3; i++) {
        if (counts[i]) {
            th_jaeger_json_keyz(w, names[i]);
            th_jaeger_json_uint(w, counts[i]);
        }
    }
    if (s->n_services) {
        th_jaeger_json_keyz(w, "services");
        th_jaeger_json_arr_begin(w);
        for (size_t i = 0; i < s->n_services; i++) {
            th_jaeger_json_obj_begin(w);
            if (*s->services[i].name) {
                th_jaeger_json_keyz(w, "name");
                th_jaeger_json_strz(w, s->services[i].name);
            }
            if (s->services[i].span_count) {
                th_jaeger_json_keyz(w, "spanCount");
                th_jaeger_json_uint(w, s->services[i].span_count);
            }
            if (s->services[i].error_span_count) {
                th_jaeger_json_keyz(w, "errorSpanCount");
                th_jaeger_json_uint(w, s->services[i].error_span_count);
            }
            th_jaeger_json_obj_end(w);
        }
        th_jaeger_json_arr_end(w);
    }
    th_jaeger_json_obj_end(w);
}
