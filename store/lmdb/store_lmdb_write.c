/*
 * The write path of the LMDB span store. One call is one transaction (group commit). Its
 * spans are grouped by service, and each service's spans become blocks of up to
 * TH_BLOCK_MAX_SPANS spans, appended once (MDB_APPEND, key = a monotonic block id):
 * resources and scopes stored once per block, spans grouped by trace, msgpack compressed with
 * zstd. Around each block go small index records, mostly appends too: one traces key per
 * trace and block (the only random inserts: one per trace, not per span), the block's index
 * entry and tag table, every 32 blocks of a service a summary of them, dependency counters
 * and the catalog. Retention deletes a block and
 * everything its meta record lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/lmdb/store_lmdb.h"

/* last_seen of a catalog entry is rewritten at most this often */
#define SEEN_REFRESH_NS (600ull * 1000000000ull)
/* the catalog caches hold at most this many names; then they start over */
#define CAT_MAX 1000000
/* older pieces of a trace looked at to resolve parent/child calls across blocks */
#define DEPS_MAX_OLD_ENTRIES 256
/* a write that fills the map grows it and starts over at most this many times */
#define GROW_TRIES 8

/* ---- A small open-addressing map of u64 keys to u64 values ---------------------------- */

struct u64map {
    uint64_t *keys, *vals;
    uint8_t *used;
    size_t cap, n;
};

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void u64map_clear(struct u64map *m)
{
    if (m->n) {
        memset(m->used, 0, m->cap);
        m->n = 0;
    }
}

static void u64map_free(struct u64map *m)
{
    th_free(m->keys);
    th_free(m->vals);
    th_free(m->used);
    memset(m, 0, sizeof(*m));
}

static int u64map_grow(struct u64map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = th_malloc(cap * sizeof(*keys));
    uint64_t *vals = th_malloc(cap * sizeof(*vals));
    uint8_t *used = th_calloc(cap, 1);
    if (!keys || !vals || !used) {
        th_free(keys);
        th_free(vals);
        th_free(used);
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->used[i]) {
            size_t j = mix64(m->keys[i]) & (cap - 1);
            while (used[j]) {
                j = (j + 1) & (cap - 1);
            }
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
            used[j] = 1;
        }
    }
    size_t n = m->n;
    u64map_free(m);
    m->keys = keys;
    m->vals = vals;
    m->used = used;
    m->cap = cap;
    m->n = n;
    return 0;
}

/* The value slot of @p key, added with value @p init when absent; NULL on ENOMEM. */
static uint64_t *u64map_slot(struct u64map *m, uint64_t key, uint64_t init, bool *added)
{
    if ((m->n + 1) * 2 > m->cap && u64map_grow(m) != 0) {
        return NULL;
    }
    size_t j = mix64(key) & (m->cap - 1);
    while (m->used[j]) {
        if (m->keys[j] == key) {
            *added = false;
            return &m->vals[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = init;
    m->used[j] = 1;
    m->n++;
    *added = true;
    return &m->vals[j];
}

/* Keep the newest start of a tag hash. */
static int tag_put(struct u64map *m, uint32_t h, uint64_t start)
{
    bool added;
    uint64_t *v = u64map_slot(m, h, start, &added);
    if (!v) {
        return TH_ENOMEM;
    }
    if (*v < start) {
        *v = start;
    }
    return 0;
}

/* ---- The writer's scratch ------------------------------------------------------------- */

struct wspan {
    const th_otlp_span_t *sp;
    const th_otlp_resource_spans_t *rs;
    const th_otlp_scope_spans_t *ss;
    uint8_t tid[16];
    uint64_t sid, pid; /* span and parent ids as big-endian integers */
    uint64_t start;
    uint32_t svc, scope, next;
    bool has_parent;
};

struct wtrace {
    uint8_t tid[16];
    uint32_t first, last, n;
};

struct wres {
    uint32_t off, len;
    uint64_t max_start;
    const th_otlp_resource_spans_t *rs;
};

struct wscope {
    uint32_t off, len, res;
    uint64_t max_start;
    const th_otlp_scope_spans_t *ss;
};

struct wedge {
    uint32_t minute, parent, child, count;
};

struct idsvc {
    uint64_t sid;
    uint32_t svc;
};

struct wroot {
    uint64_t pid;
    uint32_t svc, minute, span;
    bool resolved;
};

struct tagent {
    uint32_t hash, delta;
};

struct sdur {
    uint64_t start, dur;
};

#define VEC(T)                                                                                     \
    struct {                                                                                       \
        T *v;                                                                                      \
        size_t n, cap;                                                                             \
    }

struct th__wctx {
    th__mpw_t payload, tmp, comp, meta, entry, restab, scopetab;
    /* every span of the call, and their order grouped by service */
    VEC(struct wspan) spans;
    VEC(uint32_t) order;
    VEC(uint32_t) svc_first; /* per service of the call: first index into order */
    struct u64map svcmap;    /* service id → index among the call's services */
    /* the block being built: indexes into spans */
    VEC(uint32_t) blk;
    VEC(struct wtrace) traces;
    uint32_t *tslots; /* trace index + 1 by trace id hash; 0 = empty */
    size_t tslots_cap;
    VEC(struct wres) res;
    VEC(struct wscope) scopes;
    struct u64map rsmap, ssmap, resmap, scopemap; /* pointers and contents → index */
    const th_otlp_resource_spans_t *last_rs;      /* the last looked up, and its index */
    const th_otlp_scope_spans_t *last_ss;
    uint32_t last_res, last_scope;
    struct u64map tags;      /* tag hash → newest start */
    struct u64map sumtags;   /* the same, for a summary */
    VEC(struct sdur) sumpts; /* frontier points of a summary's blocks */
    VEC(struct tagent) tagents;
    VEC(struct sdur) sdurs; /* start and duration of every span of the block */
    uint64_t min_start, max_start, min_dur, max_dur;
    VEC(struct wedge) edges;
    VEC(struct idsvc) ids;
    VEC(struct wroot) roots;
    VEC(uint32_t) root_of;
};

static int vec_grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        c *= 2;
    }
    void *p = th_realloc(*v, c * size);
    if (!p) {
        return TH_ENOMEM;
    }
    *v = p;
    *cap = c;
    return 0;
}

#define VEC_PUSH(vec, out)                                                                         \
    (vec_grow((void **)&(vec).v, &(vec).cap, (vec).n + 1, sizeof(*(vec).v)) != 0                   \
         ? TH_ENOMEM                                                                               \
         : ((out) = &(vec).v[(vec).n++], memset((out), 0, sizeof(*(out))), 0))

void th__lmdb_wctx_free(struct th__wctx *w)
{
    if (!w) {
        return;
    }
    th__mpw_t *bufs[] = {&w->payload, &w->tmp,    &w->comp,    &w->meta,
                         &w->entry,   &w->restab, &w->scopetab};
    for (size_t i = 0; i < TH_ARRAY_SIZE(bufs); i++) {
        th__mpw_free(bufs[i]);
    }
    struct u64map *maps[] = {&w->svcmap,   &w->rsmap, &w->ssmap,  &w->resmap,
                             &w->scopemap, &w->tags,  &w->sumtags};
    for (size_t i = 0; i < TH_ARRAY_SIZE(maps); i++) {
        u64map_free(maps[i]);
    }
    void *vecs[] = {w->spans.v, w->order.v,  w->svc_first.v, w->blk.v,     w->traces.v,
                    w->res.v,   w->scopes.v, w->tagents.v,   w->edges.v,   w->ids.v,
                    w->sdurs.v, w->sumpts.v, w->roots.v,     w->root_of.v, w->tslots};
    for (size_t i = 0; i < TH_ARRAY_SIZE(vecs); i++) {
        th_free(vecs[i]);
    }
    th_free(w);
}

/* Forget the block being built (keeping the memory). */
static void block_reset(struct th__wctx *w)
{
    w->blk.n = 0;
    if (w->traces.n) {
        memset(w->tslots, 0, w->tslots_cap * sizeof(*w->tslots));
    }
    w->traces.n = 0;
    w->res.n = 0;
    w->scopes.n = 0;
    w->last_rs = NULL;
    w->last_ss = NULL;
    w->restab.len = 0;
    w->scopetab.len = 0;
    u64map_clear(&w->rsmap);
    u64map_clear(&w->ssmap);
    u64map_clear(&w->resmap);
    u64map_clear(&w->scopemap);
    u64map_clear(&w->tags);
    w->sdurs.n = 0;
    w->edges.n = 0;
    w->min_start = UINT64_MAX;
    w->max_start = 0;
    w->min_dur = UINT64_MAX;
    w->max_dur = 0;
}

/* ---- Catalog -------------------------------------------------------------------------- */

static struct th__cat_entry *cat_find(struct th__cat *c, const void *key, size_t klen, uint64_t h)
{
    if (!c->cap) {
        return NULL;
    }
    size_t j = h & (c->cap - 1);
    while (c->slots[j].key) {
        struct th__cat_entry *e = &c->slots[j];
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            return e;
        }
        j = (j + 1) & (c->cap - 1);
    }
    return NULL;
}

static struct th__cat_entry *cat_insert(struct th__cat *c, const void *key, size_t klen, uint64_t h)
{
    if (c->n >= CAT_MAX) {
        th__cat_clear(c);
    }
    if ((c->n + 1) * 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct th__cat_entry *slots = th_calloc(cap, sizeof(*slots));
        if (!slots) {
            return NULL;
        }
        for (size_t i = 0; i < c->cap; i++) {
            if (c->slots[i].key) {
                size_t j = c->slots[i].hash & (cap - 1);
                while (slots[j].key) {
                    j = (j + 1) & (cap - 1);
                }
                slots[j] = c->slots[i];
            }
        }
        th_free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    char *k = th_malloc(klen ? klen : 1);
    if (!k) {
        return NULL;
    }
    memcpy(k, key, klen);
    size_t j = h & (c->cap - 1);
    while (c->slots[j].key) {
        j = (j + 1) & (c->cap - 1);
    }
    c->slots[j] = (struct th__cat_entry){.hash = h, .key = k, .klen = (uint32_t)klen};
    c->n++;
    return &c->slots[j];
}

static void put_counter32(struct th_lmdb *s, struct th__txn *tx, const char *key, uint32_t v)
{
    uint8_t b[4];
    th__be32_put(b, v);
    th__txn_put(tx, s->dbi_meta, key, strlen(key), b, 4, 0);
}

/* Write a catalog value: id | last_seen | the full name when the key had to cut it. */
static void put_cat_value(struct th__txn *tx, MDB_dbi dbi, const uint8_t *k, size_t kl, uint32_t id,
                          uint64_t seen, const char *name, size_t n)
{
    size_t extra = n > TH_KEY_NAME_MAX ? n : 0;
    uint8_t *v = th__txn_reserve(tx, dbi, k, kl, 12 + extra, 0);
    if (v) {
        th__be32_put(v, id);
        th__be64_put(v + 4, seen);
        if (extra) {
            memcpy(v + 12, name, n);
        }
    }
}

/* The id of a catalog name (service, or operation under a service), made on first sight. */
static int cat_id(struct th_lmdb *s, struct th__txn *tx, bool is_op, uint32_t svc, int kind,
                  const char *name, size_t n, uint64_t now, uint32_t *id)
{
    struct th__cat *c = is_op ? &s->ops : &s->svcs;
    MDB_dbi dbi = is_op ? s->dbi_ops : s->dbi_svc;
    uint8_t k[TH_KEY_OPS_MAX + 8];
    size_t kl = is_op ? th__op_key(svc, kind, name, n, k) : th__svc_name_key(name, n, k);
    /* the cache key is the full name (keys may be cut) */
    uint8_t ck[16];
    th__be32_put(ck, svc);
    ck[4] = (uint8_t)kind;
    uint64_t h = th__hash64(name, n, th__hash64(ck, is_op ? 5 : 0, 1));
    struct th__cat_entry *e = cat_find(c, name, n, h);
    if (e) {
        if (now > e->seen + SEEN_REFRESH_NS) {
            put_cat_value(tx, dbi, k, kl, e->id, now, name, n);
            e->seen = now;
        }
        *id = e->id;
        return tx->ret;
    }
    MDB_val v;
    int ret = th__txn_get(tx, dbi, k, kl, &v);
    uint64_t seen = now;
    if (ret == 0 && v.mv_size >= 12 &&
        (n <= TH_KEY_NAME_MAX ||
         (v.mv_size - 12 == n && memcmp((uint8_t *)v.mv_data + 12, name, n) == 0))) {
        *id = th__be32_get(v.mv_data);
        seen = th__be64_get((uint8_t *)v.mv_data + 4);
        if (now > seen + SEEN_REFRESH_NS) {
            put_cat_value(tx, dbi, k, kl, *id, now, name, n);
            seen = now;
        }
    } else if (ret == 0 || ret == TH_ENOENT) {
        /* new (or a cut key shared with another long name: the newer one takes it over) */
        uint32_t *next = is_op ? &s->next_op : &s->next_svc;
        *id = (*next)++;
        put_counter32(s, tx, is_op ? "next_op" : "next_svc", *next);
        put_cat_value(tx, dbi, k, kl, *id, now, name, n);
        if (!is_op) {
            uint8_t ik[5] = {'i'};
            th__be32_put(ik + 1, *id);
            th__txn_put(tx, s->dbi_svc, ik, sizeof(ik), name, n, 0);
        }
    } else {
        return ret;
    }
    e = cat_insert(c, name, n, h);
    if (!e) {
        return TH_ENOMEM;
    }
    e->id = *id;
    e->seen = seen;
    return tx->ret;
}

/* At the first write, and after a write failed: the caches may hold ids of an aborted
 * transaction, so start again from what is committed. */
static void cat_reload(struct th_lmdb *s, struct th__txn *tx)
{
    th__cat_clear(&s->svcs);
    th__cat_clear(&s->ops);
    MDB_val v;
    s->next_svc = 1;
    s->next_op = 1;
    if (th__txn_get(tx, s->dbi_meta, "next_svc", 8, &v) == 0 && v.mv_size == 4) {
        s->next_svc = th__be32_get(v.mv_data);
    }
    if (th__txn_get(tx, s->dbi_meta, "next_op", 7, &v) == 0 && v.mv_size == 4) {
        s->next_op = th__be32_get(v.mv_data);
    }
    s->next_sum = 1;
    if (th__txn_get(tx, s->dbi_meta, "next_sum", 8, &v) == 0 && v.mv_size == 8) {
        s->next_sum = th__be64_get(v.mv_data);
    }
    s->cat_stale = false;
}

/* ---- Adding spans to a block ---------------------------------------------------------- */

static const char *service_name(const Opentelemetry__Proto__Resource__V1__Resource *r, size_t *n)
{
    /* the OTLP → Jaeger translation: no attributes at all gives this name; attributes but no
     * string service.name give "" */
    static const char noname[] = "OTLPResourceNoServiceName";
    if (!r || r->n_attributes == 0) {
        *n = sizeof(noname) - 1;
        return noname;
    }
    for (size_t i = 0; i < r->n_attributes; i++) {
        const th_otlp_kv_t *kv = r->attributes[i];
        if (kv && kv->key && strcmp(kv->key, "service.name") == 0 && kv->value &&
            kv->value->value_case ==
                OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            *n = strlen(kv->value->string_value);
            return kv->value->string_value;
        }
    }
    *n = 0;
    return "";
}

/* Add the tag hash of one attribute, with the start of the span it belongs to. */
static int hash_value(struct th__wctx *w, const char *key, const th_otlp_any_t *v, uint64_t start)
{
    size_t klen = strlen(key);
    char num[24];
    uint32_t h;
    switch (v ? v->value_case : OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        h = th__tag_hash(key, klen, TH_TAGH_STR, v->string_value, strlen(v->string_value));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        h = th__tag_hash(key, klen, TH_TAGH_STR, v->bool_value ? "true" : "false",
                         v->bool_value ? 4 : 5);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        h = th__tag_hash(key, klen, TH_TAGH_STR, num, th__fmt_i64(v->int_value, num));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        /* by the bits, so writing needs no float formatting; a query parses its text */
        h = th__tag_hash(key, klen, TH_TAGH_DOUBLE, &v->double_value, 8);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        w->tmp.len = 0;
        th__any_as_string(&w->tmp, v);
        if (w->tmp.err) {
            return w->tmp.err;
        }
        h = th__tag_hash(key, klen, TH_TAGH_STR, w->tmp.p, w->tmp.len);
        break;
    default:
        h = th__tag_hash(key, klen, TH_TAGH_STR, "", 0);
        break;
    }
    return tag_put(&w->tags, h, start);
}

static int hash_attrs(struct th__wctx *w, th_otlp_kv_t *const *kv, size_t n, uint64_t start)
{
    for (size_t i = 0; i < n; i++) {
        if (kv[i] && kv[i]->key) {
            int ret = hash_value(w, kv[i]->key, kv[i]->value, start);
            if (ret != 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int add_mark(struct th__wctx *w, const char *key, const void *v, size_t vlen, uint64_t start)
{
    return tag_put(&w->tags, th__tag_hash(key, strlen(key), TH_TAGH_MARK, v, vlen), start);
}

static int block_res_find(struct th__wctx *w, const th_otlp_resource_spans_t *rs, uint32_t *out);

/* The block's record of a resource: one per distinct resource content. */
static int block_res(struct th__wctx *w, const th_otlp_resource_spans_t *rs, uint32_t *out)
{
    /* spans come in runs under one resource: remember the last */
    if (w->last_rs == rs && w->res.n) {
        *out = w->last_res;
        return 0;
    }
    int ret = block_res_find(w, rs, out);
    if (ret == 0) {
        w->last_rs = rs;
        w->last_res = *out;
    }
    return ret;
}

static int block_scope_find(struct th__wctx *w, const th_otlp_scope_spans_t *ss, uint32_t res,
                            uint32_t *out);

static int block_scope(struct th__wctx *w, const th_otlp_scope_spans_t *ss, uint32_t res,
                       uint32_t *out)
{
    if (w->last_ss == ss && w->scopes.n) {
        *out = w->last_scope;
        return 0;
    }
    int ret = block_scope_find(w, ss, res, out);
    if (ret == 0) {
        w->last_ss = ss;
        w->last_scope = *out;
    }
    return ret;
}

static int block_res_find(struct th__wctx *w, const th_otlp_resource_spans_t *rs, uint32_t *out)
{
    bool added;
    uint64_t *slot = u64map_slot(&w->rsmap, (uint64_t)(uintptr_t)rs, 0, &added);
    if (!slot) {
        return TH_ENOMEM;
    }
    if (!added) {
        *out = (uint32_t)*slot;
        return 0;
    }
    w->tmp.len = 0;
    th__blk_enc_resource(&w->tmp, rs);
    if (w->tmp.err) {
        return w->tmp.err;
    }
    uint64_t h = th__hash64(w->tmp.p, w->tmp.len, 0);
    uint64_t *by_content = u64map_slot(&w->resmap, h, w->res.n, &added);
    if (!by_content) {
        return TH_ENOMEM;
    }
    if (!added) {
        struct wres *r = &w->res.v[*by_content];
        if (r->len == w->tmp.len && memcmp(w->restab.p + r->off, w->tmp.p, r->len) == 0) {
            *slot = *out = (uint32_t)*by_content;
            return 0;
        }
        /* a hash collision: keep both, unshared */
    }
    struct wres *r;
    if (VEC_PUSH(w->res, r) != 0) {
        return TH_ENOMEM;
    }
    r->off = (uint32_t)w->restab.len;
    r->len = (uint32_t)w->tmp.len;
    r->rs = rs;
    th__mpw_raw(&w->restab, w->tmp.p, w->tmp.len);
    *slot = *out = (uint32_t)(w->res.n - 1);
    return w->restab.err;
}

/* The block's record of a scope (with its resource). */
static int block_scope_find(struct th__wctx *w, const th_otlp_scope_spans_t *ss, uint32_t res,
                            uint32_t *out)
{
    bool added;
    uint64_t *slot = u64map_slot(&w->ssmap, (uint64_t)(uintptr_t)ss, 0, &added);
    if (!slot) {
        return TH_ENOMEM;
    }
    if (!added) {
        *out = (uint32_t)*slot;
        return 0;
    }
    w->tmp.len = 0;
    th__blk_enc_scope(&w->tmp, res, ss);
    if (w->tmp.err) {
        return w->tmp.err;
    }
    uint64_t h = th__hash64(w->tmp.p, w->tmp.len, 0);
    uint64_t *by_content = u64map_slot(&w->scopemap, h, w->scopes.n, &added);
    if (!by_content) {
        return TH_ENOMEM;
    }
    if (!added) {
        struct wscope *sc = &w->scopes.v[*by_content];
        if (sc->len == w->tmp.len && memcmp(w->scopetab.p + sc->off, w->tmp.p, sc->len) == 0) {
            *slot = *out = (uint32_t)*by_content;
            return 0;
        }
    }
    struct wscope *sc;
    if (VEC_PUSH(w->scopes, sc) != 0) {
        return TH_ENOMEM;
    }
    sc->off = (uint32_t)w->scopetab.len;
    sc->len = (uint32_t)w->tmp.len;
    sc->res = res;
    sc->ss = ss;
    th__mpw_raw(&w->scopetab, w->tmp.p, w->tmp.len);
    *slot = *out = (uint32_t)(w->scopes.n - 1);
    return w->scopetab.err;
}

/* An id of up to 8 bytes as a big-endian integer (shorter ids are left-padded with zeros). */
static uint64_t id64(const ProtobufCBinaryData *b)
{
    uint64_t v = 0;
    size_t n = b->len > 8 ? 8 : b->len;
    const uint8_t *p = b->data + (b->len - n);
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static int add_trace(struct th__wctx *w, const uint8_t tid[16], uint32_t span)
{
    size_t mask = w->tslots_cap - 1;
    size_t j = (size_t)(th__hash64(tid, 16, 3) & mask);
    while (w->tslots[j]) {
        struct wtrace *t = &w->traces.v[w->tslots[j] - 1];
        if (memcmp(t->tid, tid, 16) == 0) {
            w->spans.v[t->last].next = span;
            t->last = span;
            t->n++;
            return 0;
        }
        j = (j + 1) & mask;
    }
    struct wtrace *t;
    if (VEC_PUSH(w->traces, t) != 0) {
        return TH_ENOMEM;
    }
    memcpy(t->tid, tid, 16);
    t->first = t->last = span;
    t->n = 1;
    w->tslots[j] = (uint32_t)w->traces.n;
    return 0;
}

/* Add span @p i of the call to the block being built. */
static int block_add(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w, uint32_t i,
                     uint64_t now)
{
    struct wspan *ws = &w->spans.v[i];
    const th_otlp_span_t *sp = ws->sp;
    uint32_t res;
    int ret = block_res(w, ws->rs, &res);
    if (ret == 0) {
        ret = block_scope(w, ws->ss, res, &ws->scope);
    }
    uint32_t *b;
    if (ret == 0 && VEC_PUSH(w->blk, b) != 0) {
        ret = TH_ENOMEM;
    }
    if (ret != 0) {
        return ret;
    }
    *b = i;
    ws->next = UINT32_MAX;
    ret = add_trace(w, ws->tid, i);
    if (ret != 0) {
        return ret;
    }
    int kind = sp->kind >= 0 && sp->kind <= 5 ? (int)sp->kind : 0;
    const char *name = sp->name ? sp->name : "";
    size_t nlen = strlen(name);
    uint32_t op;
    ret = cat_id(s, tx, true, ws->svc, kind, name, nlen, now, &op);
    if (ret != 0) {
        return ret;
    }
    uint64_t start = sp->start_time_unix_nano;
    uint64_t dur = sp->end_time_unix_nano > start ? sp->end_time_unix_nano - start : 0;
    w->min_start = TH_MIN(w->min_start, start);
    w->max_start = TH_MAX(w->max_start, start);
    w->min_dur = TH_MIN(w->min_dur, dur);
    w->max_dur = TH_MAX(w->max_dur, dur);
    struct sdur *sd;
    if (VEC_PUSH(w->sdurs, sd) != 0) {
        return TH_ENOMEM;
    }
    sd->start = start;
    sd->dur = dur;
    struct wres *r = &w->res.v[res];
    struct wscope *sc = &w->scopes.v[ws->scope];
    r->max_start = TH_MAX(r->max_start, start);
    sc->max_start = TH_MAX(sc->max_start, start);

    ret = hash_attrs(w, sp->attributes, sp->n_attributes, start);
    for (size_t e = 0; ret == 0 && e < sp->n_events; e++) {
        if (sp->events[e]) {
            ret = hash_attrs(w, sp->events[e]->attributes, sp->events[e]->n_attributes, start);
        }
    }
    for (size_t l = 0; ret == 0 && l < sp->n_links; l++) {
        if (sp->links[l]) {
            ret = hash_attrs(w, sp->links[l]->attributes, sp->links[l]->n_attributes, start);
        }
    }
    uint8_t kb = (uint8_t)kind;
    if (ret == 0) {
        ret = add_mark(w, TH_MARK_KIND, &kb, 1, start);
    }
    if (ret == 0) {
        /* the operation marker: kind byte, then the name */
        w->tmp.len = 0;
        th__mpw_raw(&w->tmp, &kb, 1);
        th__mpw_raw(&w->tmp, name, nlen);
        ret = w->tmp.err ? w->tmp.err : add_mark(w, TH_MARK_OP, w->tmp.p, w->tmp.len, start);
    }
    if (ret == 0 && sp->status &&
        sp->status->code ==
            OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR) {
        ret = add_mark(w, TH_MARK_ERROR, "true", 4, start);
    }
    return ret;
}

/* ---- Dependencies --------------------------------------------------------------------- */

static int edge_add(struct th__wctx *w, uint32_t minute, uint32_t parent, uint32_t child)
{
    if (parent == child) {
        return 0; /* as Jaeger's badger store: calls within one service are not edges */
    }
    for (size_t i = 0; i < w->edges.n; i++) {
        struct wedge *e = &w->edges.v[i];
        if (e->minute == minute && e->parent == parent && e->child == child) {
            e->count++;
            return 0;
        }
    }
    struct wedge *e;
    if (VEC_PUSH(w->edges, e) != 0) {
        return TH_ENOMEM;
    }
    *e = (struct wedge){minute, parent, child, 1};
    return 0;
}

static int idsvc_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct idsvc *)a)->sid, y = ((const struct idsvc *)b)->sid;
    return x < y ? -1 : x > y;
}

static int root_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct wroot *)a)->pid, y = ((const struct wroot *)b)->pid;
    return x < y ? -1 : x > y;
}

static const struct idsvc *ids_find(const struct idsvc *v, size_t n, uint64_t sid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].sid < sid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && v[lo].sid == sid ? &v[lo] : NULL;
}

static uint32_t minute_of(uint64_t ns)
{
    uint64_t m = ns / TH_NS_PER_MINUTE;
    return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

/* Calls between this block's spans of a trace and the pieces of the same trace stored
 * before: a root here whose parent is there, or a root there whose parent is here. Each
 * call is counted once, by whichever of the two spans arrives last. */
static int resolve_old(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w, MDB_cursor *c,
                       const struct wtrace *t)
{
    uint8_t k[TH_KEY_TRACE_LEN];
    memcpy(k, t->tid, 16);
    memset(k + 16, 0xff, 10);
    MDB_val key = {sizeof(k), k}, val;
    int rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    rc = rc == 0              ? mdb_cursor_get(c, &key, &val, MDB_PREV)
         : rc == MDB_NOTFOUND ? mdb_cursor_get(c, &key, &val, MDB_LAST)
                              : rc;
    uint32_t svcs[TH_GROUP_MAX_SPANS];
    for (int seen = 0; rc == 0 && seen < DEPS_MAX_OLD_ENTRIES; seen++) {
        if (key.mv_size != TH_KEY_TRACE_LEN || memcmp(key.mv_data, t->tid, 16) != 0) {
            break;
        }
        struct th__trace_entry e;
        /* a corrupt old entry only loses its calls; it must not fail today's write */
        if (th__trace_entry_parse(val.mv_data, val.mv_size, &e) == 0 &&
            e.n_spans <= TH_GROUP_MAX_SPANS && th__trace_entry_svcs(&e, svcs) == 0) {
            for (uint32_t i = 0; i < e.n_spans && w->roots.n; i++) {
                uint64_t sid = th__be64_get(e.ids + 8 * (size_t)i);
                /* roots are sorted by parent id: find the first with this one */
                size_t lo = 0, hi = w->roots.n;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (w->roots.v[mid].pid < sid) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                for (; lo < w->roots.n && w->roots.v[lo].pid == sid; lo++) {
                    struct wroot *r = &w->roots.v[lo];
                    if (!r->resolved) {
                        r->resolved = true;
                        int ret = edge_add(w, r->minute, svcs[i], r->svc);
                        if (ret != 0) {
                            return ret;
                        }
                    }
                }
            }
            const uint8_t *p = e.roots;
            for (uint32_t i = 0; i < e.n_roots; i++) {
                struct th__root old;
                if (th__trace_entry_root(&p, e.roots_end, &old) != 0) {
                    break;
                }
                const struct idsvc *parent = ids_find(w->ids.v, w->ids.n, old.parent);
                if (parent) {
                    int ret = edge_add(w, old.minute, parent->svc, old.svc);
                    if (ret != 0) {
                        return ret;
                    }
                }
            }
        }
        rc = mdb_cursor_get(c, &key, &val, MDB_PREV);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        tx->ret = th__mdb_err(rc);
        return tx->ret;
    }
    return 0;
}

/* Calls within the trace's spans of this block, and the roots left for later. */
static int trace_deps(struct th__wctx *w, const struct wtrace *t, uint32_t *root_of)
{
    w->ids.n = 0;
    w->roots.n = 0;
    if (vec_grow((void **)&w->ids.v, &w->ids.cap, t->n, sizeof(*w->ids.v)) != 0) {
        return TH_ENOMEM;
    }
    for (uint32_t i = t->first; i != UINT32_MAX; i = w->spans.v[i].next) {
        w->ids.v[w->ids.n++] = (struct idsvc){w->spans.v[i].sid, w->spans.v[i].svc};
    }
    th__qsort(w->ids.v, w->ids.n, sizeof(*w->ids.v), idsvc_cmp);
    for (uint32_t i = t->first; i != UINT32_MAX; i = w->spans.v[i].next) {
        const struct wspan *sp = &w->spans.v[i];
        root_of[i] = UINT32_MAX;
        if (!sp->has_parent) {
            continue;
        }
        const struct idsvc *parent = ids_find(w->ids.v, w->ids.n, sp->pid);
        if (parent) {
            int ret = edge_add(w, minute_of(sp->start), parent->svc, sp->svc);
            if (ret != 0) {
                return ret;
            }
            continue;
        }
        struct wroot *r;
        if (VEC_PUSH(w->roots, r) != 0) {
            return TH_ENOMEM;
        }
        *r = (struct wroot){sp->pid, sp->svc, minute_of(sp->start), i, false};
    }
    th__qsort(w->roots.v, w->roots.n, sizeof(*w->roots.v), root_cmp);
    for (size_t r = 0; r < w->roots.n; r++) {
        root_of[w->roots.v[r].span] = (uint32_t)r;
    }
    return 0;
}

/* Encode one piece of a trace (up to TH_GROUP_MAX_SPANS spans from @p *cursor) into the
 * payload and put its traces entry. */
static int put_group(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w,
                     const struct wtrace *t, uint32_t *cursor, uint64_t block, uint16_t sub,
                     const uint32_t *root_of)
{
    uint32_t members[TH_GROUP_MAX_SPANS];
    uint32_t n = 0;
    uint64_t base = UINT64_MAX, max_end = 0;
    for (uint32_t i = *cursor; i != UINT32_MAX && n < TH_GROUP_MAX_SPANS; i = w->spans.v[i].next) {
        members[n++] = i;
        const th_otlp_span_t *sp = w->spans.v[i].sp;
        base = TH_MIN(base, sp->start_time_unix_nano);
        max_end = TH_MAX(max_end, sp->end_time_unix_nano);
        *cursor = w->spans.v[i].next;
    }
    max_end = TH_MAX(max_end, base);
    uint32_t raw_off = (uint32_t)w->payload.len;
    th__mpw_array(&w->payload, 3);
    th__mpw_bin(&w->payload, t->tid, 16);
    th__mpw_uint(&w->payload, base);
    th__mpw_array(&w->payload, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct wspan *ws = &w->spans.v[members[i]];
        th__blk_enc_span(&w->payload, ws->scope, base, ws->sp);
    }
    if (w->payload.err) {
        return w->payload.err;
    }
    uint32_t raw_len = (uint32_t)(w->payload.len - raw_off);

    th__mpw_t *e = &w->entry;
    e->len = 0;
    uint8_t ver = TH_TRACE_ENTRY_VERSION;
    th__mpw_raw(e, &ver, 1);
    th__mpw_varint(e, raw_off);
    th__mpw_varint(e, raw_len);
    th__mpw_varint(e, n);
    uint8_t b8[8];
    th__be64_put(b8, base);
    th__mpw_raw(e, b8, 8);
    th__mpw_varint(e, max_end - base);
    /* runs of equal services, in member order */
    uint32_t runs = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || w->spans.v[members[i]].svc != w->spans.v[members[i - 1]].svc) {
            runs++;
        }
    }
    th__mpw_varint(e, runs);
    for (uint32_t i = 0; i < n;) {
        uint32_t svc = w->spans.v[members[i]].svc, j = i;
        while (j < n && w->spans.v[members[j]].svc == svc) {
            j++;
        }
        th__mpw_varint(e, svc);
        th__mpw_varint(e, j - i);
        i = j;
    }
    for (uint32_t i = 0; i < n; i++) {
        th__be64_put(b8, w->spans.v[members[i]].sid);
        th__mpw_raw(e, b8, 8);
    }
    uint32_t n_roots = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = root_of[members[i]];
        n_roots += r != UINT32_MAX && !w->roots.v[r].resolved;
    }
    th__mpw_varint(e, n_roots);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = root_of[members[i]];
        if (r != UINT32_MAX && !w->roots.v[r].resolved) {
            th__be64_put(b8, w->roots.v[r].pid);
            th__mpw_raw(e, b8, 8);
            th__mpw_varint(e, w->roots.v[r].svc);
            th__mpw_varint(e, w->roots.v[r].minute);
        }
    }
    if (e->err) {
        return e->err;
    }
    uint8_t k[TH_KEY_TRACE_LEN];
    th__key_trace(k, t->tid, block, sub);
    th__txn_put(tx, s->dbi_traces, k, sizeof(k), e->p, e->len, 0);
    return tx->ret;
}

static int sdur_cmp(const void *a, const void *b)
{
    const struct sdur *x = a, *y = b;
    return x->start > y->start ? -1 : x->start < y->start;
}

/* Microseconds from the block's first start to @p start, as the tag table keeps them. */
static uint32_t delta_us(uint64_t base, uint64_t start)
{
    uint64_t d = start / 1000 - base / 1000;
    return d >= TH_TAGS_DELTA_NONE ? TH_TAGS_DELTA_NONE : (uint32_t)d;
}

/* LSD radix sort by 8-bit digits of a key, skipping digits every element shares (the high
 * bytes of nearby start times, say). qsort's callback per comparison cost a seventh of the
 * ingest CPU here. @p tmp has room for @p n elements. */
#define RADIX_SORT(T, v, tmp, n, nbytes, key)                                                      \
    do {                                                                                           \
        T *src_ = (v), *dst_ = (tmp);                                                              \
        for (unsigned d_ = 0; d_ < (nbytes); d_++) {                                               \
            size_t cnt_[256] = {0};                                                                \
            unsigned sh_ = 8 * d_;                                                                 \
            for (size_t i_ = 0; i_ < (n); i_++) {                                                  \
                cnt_[(uint8_t)(key(src_[i_]) >> sh_)]++;                                           \
            }                                                                                      \
            if (cnt_[(uint8_t)(key(src_[0]) >> sh_)] == (n)) {                                     \
                continue;                                                                          \
            }                                                                                      \
            size_t sum_ = 0;                                                                       \
            for (unsigned b_ = 0; b_ < 256; b_++) {                                                \
                size_t c_ = cnt_[b_];                                                              \
                cnt_[b_] = sum_;                                                                   \
                sum_ += c_;                                                                        \
            }                                                                                      \
            for (size_t i_ = 0; i_ < (n); i_++) {                                                  \
                dst_[cnt_[(uint8_t)(key(src_[i_]) >> sh_)]++] = src_[i_];                          \
            }                                                                                      \
            T *t_ = src_;                                                                          \
            src_ = dst_;                                                                           \
            dst_ = t_;                                                                             \
        }                                                                                          \
        if (src_ != (v)) {                                                                         \
            memcpy((v), src_, (n) * sizeof(T));                                                    \
        }                                                                                          \
    } while (0)

#define TAGENT_KEY(e) ((uint64_t)(e).hash)
#define SDUR_KEY(e)   (~(e).start) /* newest first */

static void put_point(uint8_t *v, uint64_t base, const struct sdur *p)
{
    th__be32_put(v, delta_us(base, p->start));
    th__be64_put(v + 4, p->dur);
}

/* Write the two duration frontiers of @p n (start, duration) pairs after the fixed part of
 * the stats at @p v, and their counts. @return the length of the stats. */
static size_t put_frontiers(struct sdur *sd, size_t n, uint64_t base, uint8_t *v, bool lcut,
                            bool scut)
{
    if (n > 1) {
        struct sdur *tmp = th_malloc(n * sizeof(*tmp));
        if (!tmp) {
            th__qsort(sd, n, sizeof(*sd), sdur_cmp);
        } else {
            RADIX_SORT(struct sdur, sd, tmp, n, 8, SDUR_KEY);
            th_free(tmp);
        }
    }
    size_t vl = TH_STATS_FIXED;
    unsigned nl = 0, ns = 0;
    /* runs of equal starts count as one point: their longest and their shortest */
    uint64_t longest = 0, shortest = UINT64_MAX;
    bool any = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        struct sdur hi = sd[i];
        for (; j < n && sd[j].start == sd[i].start; j++) {
            hi.dur = TH_MAX(hi.dur, sd[j].dur);
        }
        if (!any || hi.dur > longest) {
            if (nl < TH_FRONTIER_MAX) {
                put_point(v + vl, base, &hi);
                vl += TH_FRONTIER_SIZE;
                nl++;
            } else {
                lcut = true;
            }
            longest = hi.dur;
        }
        any = true;
        i = j;
    }
    uint8_t *shorts = v + vl;
    any = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        struct sdur lo = sd[i];
        for (; j < n && sd[j].start == sd[i].start; j++) {
            lo.dur = TH_MIN(lo.dur, sd[j].dur);
        }
        if (!any || lo.dur < shortest) {
            if (ns < TH_FRONTIER_MAX) {
                put_point(shorts + TH_FRONTIER_SIZE * ns, base, &lo);
                ns++;
            } else {
                scut = true;
            }
            shortest = lo.dur;
        }
        any = true;
        i = j;
    }
    vl += TH_FRONTIER_SIZE * ns;
    v[29] = (uint8_t)(nl | (lcut ? TH_FRONTIER_CUT : 0));
    v[30] = (uint8_t)(ns | (scut ? TH_FRONTIER_CUT : 0));
    return vl;
}

/* The fixed part of the stats. */
static void put_stats_head(uint8_t *v, uint64_t min_start, uint64_t min_dur, uint64_t max_dur,
                           uint32_t n, unsigned parts)
{
    th__be64_put(v, min_start);
    th__be64_put(v + 8, min_dur);
    th__be64_put(v + 16, max_dur);
    th__be32_put(v + 24, n);
    v[28] = (uint8_t)parts;
}

/* Write a tag table (hash → newest start in ns, relative to @p base) in parts under
 * id|part of @p dbi. @return the number of parts, or an error. */
static int put_tags(struct th__txn *tx, struct th__wctx *w, const struct u64map *m, uint64_t base,
                    MDB_dbi dbi, uint64_t id)
{
    w->tagents.n = 0;
    if (vec_grow((void **)&w->tagents.v, &w->tagents.cap, m->n + 1, sizeof(*w->tagents.v))) {
        return TH_ENOMEM;
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (m->used[j]) {
            w->tagents.v[w->tagents.n++] =
                (struct tagent){(uint32_t)m->keys[j], delta_us(base, m->vals[j])};
        }
    }
    size_t n = w->tagents.n;
    if (n > 1) {
        if (vec_grow((void **)&w->tagents.v, &w->tagents.cap, 2 * n, sizeof(*w->tagents.v))) {
            return TH_ENOMEM;
        }
        RADIX_SORT(struct tagent, w->tagents.v, w->tagents.v + n, n, 4, TAGENT_KEY);
    }
    /* parts by hash range; a part that would not fit half a page means more parts */
    unsigned parts =
        (unsigned)TH_MAX(1, (n * TH_TAGS_ENTRY + TH_TAGS_PART_BYTES - 1) / TH_TAGS_PART_BYTES);
    for (;; parts++) {
        if (parts > 255) {
            return TH_E2BIG;
        }
        size_t i = 0, most = 0;
        for (unsigned p = 0; p < parts; p++) {
            size_t j = i;
            while (j < n && th__tags_part(w->tagents.v[j].hash, parts) == p) {
                j++;
            }
            most = TH_MAX(most, j - i);
            i = j;
        }
        if (most * TH_TAGS_ENTRY <= TH_TAGS_PART_MAX) {
            break;
        }
    }
    size_t i = 0;
    for (unsigned p = 0; p < parts; p++) {
        size_t j = i;
        while (j < n && th__tags_part(w->tagents.v[j].hash, parts) == p) {
            j++;
        }
        if (j > i) {
            uint8_t k[TH_KEY_TAGS_LEN];
            th__key_tags(k, id, (uint8_t)p);
            uint8_t *v =
                th__txn_reserve(tx, dbi, k, sizeof(k), (j - i) * TH_TAGS_ENTRY, MDB_APPEND);
            if (!v) {
                return tx->ret;
            }
            for (size_t e = i; e < j; e++, v += TH_TAGS_ENTRY) {
                th__be32_put(v, w->tagents.v[e].hash);
                th__be32_put(v + 4, w->tagents.v[e].delta);
            }
        }
        i = j;
    }
    return (int)parts;
}

/* Summarise a service's last TH_SUM_BLOCKS blocks (@p list: block, max_start pairs): their
 * stats, duration frontiers and tag tables merged, so a search can rule all of them out with
 * one look. @return 0 or an error; *sum and *sum_max say what to delete with the newest. */
static int build_summary(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w, uint32_t svc,
                         const uint8_t *list, size_t n, uint64_t *sum, uint64_t *sum_max)
{
    u64map_clear(&w->sumtags);
    w->sumpts.n = 0;
    uint64_t min_start = UINT64_MAX, max_start = 0, min_dur = UINT64_MAX, max_dur = 0;
    uint32_t spans = 0;
    bool lcut = false, scut = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t bk[TH_KEY_BLKIDX_LEN];
        memcpy(bk, list + 16 * i, 8);
        uint64_t mstart = th__be64_get(list + 16 * i + 8);
        MDB_val v;
        struct th__blkidx b;
        int ret = th__txn_get(tx, s->dbi_blkidx, bk, sizeof(bk), &v);
        if (ret == TH_ENOENT || (ret == 0 && th__blkidx_parse(v.mv_data, v.mv_size, &b) != 0)) {
            continue; /* deleted already (retention by size), or damaged */
        }
        if (ret != 0) {
            return ret;
        }
        uint64_t base_us = b.st.min_start / 1000, max_us = mstart / 1000;
        min_start = TH_MIN(min_start, b.st.min_start);
        max_start = TH_MAX(max_start, mstart);
        min_dur = TH_MIN(min_dur, b.st.min_dur);
        max_dur = TH_MAX(max_dur, b.st.max_dur);
        spans += b.st.n_spans;
        lcut = lcut || b.st.long_cut;
        scut = scut || b.st.short_cut;
        /* the frontier of the union is the frontier of the union of frontiers */
        for (unsigned j = 0; j < b.st.n_long + b.st.n_short; j++) {
            const uint8_t *pt = b.st.longs + TH_FRONTIER_SIZE * j;
            uint32_t d = th__be32_get(pt);
            struct sdur *sd;
            if (VEC_PUSH(w->sumpts, sd) != 0) {
                return TH_ENOMEM;
            }
            sd->start = (d == TH_TAGS_DELTA_NONE ? max_us : base_us + d) * 1000;
            sd->dur = th__be64_get(pt + 4);
        }
        for (unsigned p = 0; p < b.st.n_parts; p++) {
            uint8_t tk[TH_KEY_TAGS_LEN];
            th__key_tags(tk, th__be64_get(bk), (uint8_t)p);
            ret = th__txn_get(tx, s->dbi_tags, tk, sizeof(tk), &v);
            if (ret == TH_ENOENT) {
                continue;
            }
            if (ret != 0) {
                return ret;
            }
            const uint8_t *e = v.mv_data;
            for (size_t k = 0; k + TH_TAGS_ENTRY <= v.mv_size; k += TH_TAGS_ENTRY) {
                uint32_t d = th__be32_get(e + k + 4);
                uint64_t at = (d == TH_TAGS_DELTA_NONE ? max_us : base_us + d) * 1000;
                ret = tag_put(&w->sumtags, th__be32_get(e + k), at);
                if (ret != 0) {
                    return ret;
                }
            }
        }
    }
    if (!max_start) {
        return 0; /* every block is gone: nothing to summarise */
    }
    *sum = s->next_sum++;
    uint8_t nb[8];
    th__be64_put(nb, s->next_sum);
    th__txn_put(tx, s->dbi_meta, "next_sum", 8, nb, 8, 0);
    int parts = put_tags(tx, w, &w->sumtags, min_start, s->dbi_sumtags, *sum);
    if (parts < 0) {
        return parts;
    }
    uint8_t v[TH_STATS_MAX + 1 + 16 * TH_SUM_BLOCKS];
    put_stats_head(v, min_start, min_dur, max_dur, spans, (unsigned)parts);
    size_t vl = put_frontiers(w->sumpts.v, w->sumpts.n, min_start, v, lcut, scut);
    v[vl++] = (uint8_t)n;
    memcpy(v + vl, list, 16 * n);
    vl += 16 * n;
    uint8_t k[TH_KEY_SVCSUM_LEN];
    th__key_svcsum(k, svc, max_start, *sum);
    th__txn_put(tx, s->dbi_svcsum, k, sizeof(k), v, vl, 0);
    *sum_max = max_start;
    return tx->ret;
}

/* Add a block to its service's pending list; the TH_SUM_BLOCKS-th makes a summary. */
static int pend_add(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w, uint32_t svc,
                    uint64_t block, uint64_t max_start, bool *has, uint64_t *sum, uint64_t *sum_max)
{
    uint8_t k[TH_KEY_PEND_LEN];
    th__key_pend(k, svc);
    uint8_t list[16 * TH_SUM_BLOCKS];
    size_t n = 0;
    MDB_val v;
    int ret = th__txn_get(tx, s->dbi_meta, k, sizeof(k), &v);
    if (ret == 0 && v.mv_size % 16 == 0 && v.mv_size < sizeof(list)) {
        n = v.mv_size / 16;
        memcpy(list, v.mv_data, v.mv_size);
    } else if (ret != 0 && ret != TH_ENOENT) {
        return ret;
    }
    th__be64_put(list + 16 * n, block);
    th__be64_put(list + 16 * n + 8, max_start);
    n++;
    *has = false;
    if (n < TH_SUM_BLOCKS) {
        th__txn_put(tx, s->dbi_meta, k, sizeof(k), list, 16 * n, 0);
        return tx->ret;
    }
    th__txn_del(tx, s->dbi_meta, k, sizeof(k));
    *has = true;
    *sum_max = 0;
    ret = build_summary(s, tx, w, svc, list, n, sum, sum_max);
    if (ret == 0 && !*sum_max) {
        *has = false;
    }
    return ret;
}

static int flush_block(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w, uint64_t now,
                       MDB_cursor *tc)
{
    if (!w->blk.n) {
        return 0;
    }
    uint64_t block = s->next_block++;
    uint32_t svc = w->spans.v[w->blk.v[0]].svc;
    int ret = 0;
    /* resource and scope attributes hold for every span under them */
    for (size_t r = 0; r < w->res.n && ret == 0; r++) {
        const Opentelemetry__Proto__Resource__V1__Resource *res = w->res.v[r].rs->resource;
        if (res) {
            ret = hash_attrs(w, res->attributes, res->n_attributes, w->res.v[r].max_start);
        }
    }
    for (size_t i = 0; i < w->scopes.n && ret == 0; i++) {
        const Opentelemetry__Proto__Common__V1__InstrumentationScope *sc = w->scopes.v[i].ss->scope;
        if (sc) {
            ret = hash_attrs(w, sc->attributes, sc->n_attributes, w->scopes.v[i].max_start);
        }
    }
    if (ret != 0) {
        return ret;
    }
    uint32_t n_groups = 0;
    for (size_t i = 0; i < w->traces.n; i++) {
        n_groups += (w->traces.v[i].n + TH_GROUP_MAX_SPANS - 1) / TH_GROUP_MAX_SPANS;
    }
    th__mpw_t *pl = &w->payload;
    pl->len = 0;
    th__mpw_array(pl, 4);
    th__mpw_uint(pl, TH_BLOCK_VERSION);
    th__mpw_uint(pl, w->res.n);
    th__mpw_uint(pl, w->scopes.n);
    th__mpw_uint(pl, n_groups);
    th__mpw_raw(pl, w->restab.p, w->restab.len);
    th__mpw_raw(pl, w->scopetab.p, w->scopetab.len);

    /* the meta record: the lists retention reads, after a fixed head written below */
    th__mpw_t *m = &w->meta;
    m->len = 0;
    th__mpw_varint(m, w->traces.n);
    if (vec_grow((void **)&w->root_of.v, &w->root_of.cap, w->spans.n, sizeof(uint32_t)) != 0) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < w->traces.n && ret == 0; i++) {
        const struct wtrace *t = &w->traces.v[i];
        ret = trace_deps(w, t, w->root_of.v);
        if (ret == 0) {
            ret = resolve_old(s, tx, w, tc, t);
        }
        uint32_t cursor = t->first;
        uint16_t sub = 0;
        while (ret == 0 && cursor != UINT32_MAX) {
            ret = put_group(s, tx, w, t, &cursor, block, sub++, w->root_of.v);
        }
        th__mpw_raw(m, t->tid, 16);
        th__mpw_varint(m, sub);
    }
    if (ret != 0) {
        return ret;
    }
    th__mpw_varint(m, w->edges.n);
    for (size_t i = 0; i < w->edges.n; i++) {
        const struct wedge *e = &w->edges.v[i];
        th__deps_add(s, tx, e->minute, e->parent, e->child, e->count);
        th__mpw_varint(m, e->minute);
        th__mpw_varint(m, e->parent);
        th__mpw_varint(m, e->child);
        th__mpw_varint(m, e->count);
    }
    if (pl->err || m->err) {
        return TH_ENOMEM;
    }

    int parts = put_tags(tx, w, &w->tags, w->min_start, s->dbi_tags, block);
    if (parts < 0) {
        return parts;
    }
    /* the block index: one key per block, appended */
    uint8_t bk[TH_KEY_BLKIDX_LEN];
    th__be64_put(bk, block);
    uint8_t v[TH_BLKIDX_HEAD + TH_STATS_MAX];
    th__be32_put(v, svc);
    th__be64_put(v + 4, w->max_start);
    put_stats_head(v + TH_BLKIDX_HEAD, w->min_start, w->min_dur, w->max_dur, (uint32_t)w->blk.n,
                   (unsigned)parts);
    size_t vl = TH_BLKIDX_HEAD + put_frontiers(w->sdurs.v, w->sdurs.n, w->min_start,
                                               v + TH_BLKIDX_HEAD, false, false);
    th__txn_put(tx, s->dbi_blkidx, bk, sizeof(bk), v, vl, MDB_APPEND);
    bool has_sum = false;
    uint64_t sum = 0, sum_max = 0;
    ret = pend_add(s, tx, w, svc, block, w->max_start, &has_sum, &sum, &sum_max);
    if (ret != 0) {
        return ret;
    }

    if (pl->len > TH_PAYLOAD_MAX) {
        return TH_E2BIG; /* readers refuse bigger payloads as damaged */
    }
    /* compress the payload */
    size_t bound = ZSTD_compressBound(pl->len);
    w->comp.len = 0;
    if (!th__mpw_room(&w->comp, bound)) {
        return TH_ENOMEM;
    }
    size_t clen = ZSTD_compressCCtx(s->cctx, w->comp.p, bound, pl->p, pl->len, s->zlevel);
    if (ZSTD_isError(clen)) {
        return TH_ENOMEM;
    }
    w->comp.len = clen;

    w->tmp.len = 0;
    uint8_t head[25];
    head[0] = TH_BLOCK_META_VERSION;
    th__be64_put(head + 1, now);
    th__be64_put(head + 9, w->min_start);
    th__be64_put(head + 17, w->max_start);
    th__mpw_raw(&w->tmp, head, sizeof(head));
    th__mpw_varint(&w->tmp, w->blk.n);
    th__mpw_varint(&w->tmp, pl->len);
    th__mpw_varint(&w->tmp, clen);
    th__mpw_varint(&w->tmp, svc);
    uint8_t sb[17] = {has_sum};
    th__be64_put(sb + 1, sum);
    th__be64_put(sb + 9, sum_max);
    th__mpw_raw(&w->tmp, sb, has_sum ? 17 : 1);
    th__mpw_raw(&w->tmp, m->p, m->len);
    if (w->tmp.err) {
        return TH_ENOMEM;
    }
    th__chunks_put(s, tx, block, TH_BLOCK_KIND_META, w->tmp.p, w->tmp.len);
    th__chunks_put(s, tx, block, TH_BLOCK_KIND_DATA, w->comp.p, w->comp.len);
    return tx->ret;
}

/* ---- The entry point ------------------------------------------------------------------ */

static struct th__wctx *wctx_get(struct th_lmdb *s)
{
    if (!s->w) {
        struct th__wctx *w = th_calloc(1, sizeof(*w));
        if (!w) {
            return NULL;
        }
        /* room for every trace of a full block at half load */
        w->tslots_cap = 2 * TH_BLOCK_MAX_SPANS;
        w->tslots = th_calloc(w->tslots_cap, sizeof(*w->tslots));
        if (!w->tslots) {
            th_free(w);
            return NULL;
        }
        s->w = w;
    }
    return s->w;
}

static void put_counter64(struct th_lmdb *s, struct th__txn *tx, const char *key, uint64_t v)
{
    uint8_t b[8];
    th__be64_put(b, v);
    th__txn_put(tx, s->dbi_meta, key, strlen(key), b, 8, 0);
}

/* Every span of the call, with its service; then their order grouped by service. */
static int collect(struct th_lmdb *s, struct th__txn *tx, struct th__wctx *w,
                   th_batch_t *const *batches, size_t n, uint64_t now, uint64_t *nbatches)
{
    w->spans.n = 0;
    u64map_clear(&w->svcmap);
    w->svc_first.n = 0;
    for (size_t b = 0; b < n; b++) {
        const th_otlp_request_t *req = batches[b] ? batches[b]->req : NULL;
        if (!req) {
            continue;
        }
        (*nbatches)++;
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            const th_otlp_resource_spans_t *rs = req->resource_spans[i];
            if (!rs) {
                continue;
            }
            size_t nl;
            const char *name = service_name(rs->resource, &nl);
            uint32_t svc;
            int ret = cat_id(s, tx, false, 0, 0, name, nl, now, &svc);
            if (ret != 0) {
                return ret;
            }
            bool added;
            uint64_t *idx = u64map_slot(&w->svcmap, svc, w->svc_first.n, &added);
            uint32_t *cnt;
            if (!idx || (added && VEC_PUSH(w->svc_first, cnt) != 0)) {
                return TH_ENOMEM;
            }
            for (size_t j = 0; j < rs->n_scope_spans; j++) {
                const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
                for (size_t k = 0; ss && k < ss->n_spans; k++) {
                    const th_otlp_span_t *sp = ss->spans[k];
                    struct wspan *ws;
                    if (!sp) {
                        continue;
                    }
                    if (VEC_PUSH(w->spans, ws) != 0) {
                        return TH_ENOMEM;
                    }
                    ws->sp = sp;
                    ws->rs = rs;
                    ws->ss = ss;
                    /* trace ids are 16 bytes (the receiver checks); shorter is left-padded */
                    size_t tl = sp->trace_id.len > 16 ? 16 : sp->trace_id.len;
                    memcpy(ws->tid + 16 - tl, sp->trace_id.data + (sp->trace_id.len - tl), tl);
                    ws->sid = id64(&sp->span_id);
                    ws->pid = id64(&sp->parent_span_id);
                    ws->has_parent = ws->pid != 0;
                    ws->start = sp->start_time_unix_nano;
                    ws->svc = svc;
                    w->svc_first.v[*idx]++;
                }
            }
        }
    }
    /* counts → first positions, then place every span */
    uint32_t total = 0;
    for (size_t i = 0; i < w->svc_first.n; i++) {
        uint32_t c = w->svc_first.v[i];
        w->svc_first.v[i] = total;
        total += c;
    }
    if (vec_grow((void **)&w->order.v, &w->order.cap, total + 1, sizeof(uint32_t)) != 0) {
        return TH_ENOMEM;
    }
    w->order.n = total;
    for (uint32_t i = 0; i < w->spans.n; i++) {
        bool added;
        uint64_t *idx = u64map_slot(&w->svcmap, w->spans.v[i].svc, 0, &added);
        w->order.v[w->svc_first.v[*idx]++] = i;
    }
    return 0;
}

/* One attempt at the whole write in one transaction. */
static int write_once(struct th_lmdb *s, struct th__wctx *w, th_batch_t *const *batches, size_t n,
                      uint64_t *spans, uint64_t *nbatches)
{
    MDB_cursor *tc = NULL;
    struct th__txn tx = {0};
    int ret = th__txn_begin(s, false, &tx);
    if (ret != 0) {
        return ret;
    }
    int rc = mdb_cursor_open(tx.t, s->dbi_traces, &tc);
    if (rc != 0) {
        ret = th__mdb_err(rc);
        goto out;
    }
    if (s->cat_stale) {
        cat_reload(s, &tx);
    }
    uint64_t now = th__lmdb_now(s); /* the ingest time retention counts from */
    *spans = *nbatches = 0;
    ret = collect(s, &tx, w, batches, n, now, nbatches);
    /* the spans of each service, in order, in blocks of at most TH_BLOCK_MAX_SPANS */
    for (size_t i = 0; ret == 0 && i < w->order.n;) {
        uint32_t svc = w->spans.v[w->order.v[i]].svc;
        block_reset(w);
        for (; i < w->order.n && w->spans.v[w->order.v[i]].svc == svc &&
               w->blk.n < TH_BLOCK_MAX_SPANS && ret == 0;
             i++) {
            ret = block_add(s, &tx, w, w->order.v[i], now);
        }
        if (ret == 0) {
            ret = flush_block(s, &tx, w, now, tc);
        }
    }
    *spans = w->order.n;
    if (ret == 0) {
        put_counter64(s, &tx, "spans", s->spans_written + *spans);
        put_counter64(s, &tx, "batches", s->batches_written + *nbatches);
        put_counter64(s, &tx, "next_block", s->next_block);
    }
out:
    if (tc) {
        mdb_cursor_close(tc);
    }
    if (ret != 0) {
        if (!tx.ret) {
            tx.ret = ret;
        }
        th__txn_abort(&tx);
        return ret;
    }
    return th__txn_commit(&tx);
}

int th__lmdb_write(th_store_t *st, th_batch_t *const *batches, size_t n)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    if (n == 0) {
        return 0;
    }
    pthread_mutex_lock(&s->wlock);
    struct th__wctx *w = wctx_get(s);
    int ret = w ? 0 : TH_ENOMEM;
    if (ret == 0 && __atomic_load_n(&s->needs_reopen, __ATOMIC_RELAXED)) {
        /* a failed meta page write left LMDB's handle unusable (MDB_PANIC): what it committed
         * before is on disk, so a fresh handle carries on from there */
        ret = th__lmdb_reopen(s);
    }
    uint64_t spans = 0, nbatches = 0;
    for (int tries = 0; ret == 0; tries++) {
        uint64_t saved_block = s->next_block;
        ret = write_once(s, w, batches, n, &spans, &nbatches);
        if (ret == 0) {
            break;
        }
        /* ids handed out in the aborted transaction do not exist */
        s->next_block = saved_block;
        s->cat_stale = true;
        if (ret != TH_ESPACE || tries == GROW_TRIES) {
            break;
        }
        /* the map is full: grow it (and the file) a step and write again */
        ret = th__map_grow(s, 0);
        if (ret != 0) {
            ret = TH_ESPACE;
            break;
        }
    }
    if (ret == 0) {
        __atomic_add_fetch(&s->spans_written, spans, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->batches_written, nbatches, __ATOMIC_RELAXED);
        __atomic_store_n(&s->last_errno, 0, __ATOMIC_RELAXED);
    } else if (ret == TH_ESPACE && s->cfg.evict_oldest_when_full) {
        /* opted in: the next retention pass deletes the oldest blocks to make room; by
         * default nothing goes before its ttl and writes fail until there is room */
        __atomic_store_n(&s->space_pressure, true, __ATOMIC_RELAXED);
    }
    if (w) {
        block_reset(w);
    }
    pthread_mutex_unlock(&s->wlock);
    return ret;
}
