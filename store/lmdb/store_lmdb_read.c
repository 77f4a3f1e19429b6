/*
 * The read path of the LMDB span store: a trace by id (one range scan of the traces
 * database, then one partial decompression per block that holds a piece of it), search
 * (service and operation indexes newest first, pruned by time, duration and Bloom filters,
 * then an exact check of the candidate blocks' spans), the catalog and dependencies. Every
 * read runs in its own short read transaction and copies what it returns into the caller's
 * arena before the transaction ends.
 */
#include <stdlib.h>
#include <string.h>

#include "store/lmdb/store_lmdb.h"

/* ---- Trace by id ---------------------------------------------------------------------- */

struct piece {
    uint64_t block;
    uint32_t raw_off, raw_len;
};

struct out_res {
    uint64_t hash;
    th_otlp_resource_spans_t *rs;
};

struct out_scope {
    uint64_t hash;
    uint32_t res;
    th_otlp_scope_spans_t *ss;
    size_t n_spans;
};

struct out_span {
    uint32_t scope;
    th_otlp_span_t *sp;
};

struct gt_ctx {
    th_arena_t *a;
    const struct th__blk_view *view;
    uint32_t *scope_map; /* block scope index → output scope + 1 (0: not yet) */
    struct out_res *res;
    size_t n_res, cap_res;
    struct out_scope *scopes;
    size_t n_scopes, cap_scopes;
    struct out_span *spans;
    size_t n_spans, cap_spans;
};

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    size_t c = *cap ? *cap * 2 : 16;
    void *p = th_realloc(*v, c * size);
    if (!p) {
        return TH_ENOMEM;
    }
    *v = p;
    *cap = c;
    return 0;
}

/* The output scope of a block's scope: resources are shared across blocks by the bytes of
 * their record, scopes by the bytes of theirs after the resource index. */
static int map_scope(struct gt_ctx *g, uint32_t idx, uint32_t *out)
{
    if (g->scope_map[idx]) {
        *out = g->scope_map[idx] - 1;
        return 0;
    }
    const struct th__blk_view *v = g->view;
    uint32_t ri = v->scope_res[idx];
    uint64_t rh = th__hash64(v->buf + v->res_off[ri], v->res_end[ri] - v->res_off[ri], 0);
    size_t r;
    for (r = 0; r < g->n_res && g->res[r].hash != rh; r++) {
    }
    if (r == g->n_res) {
        if (grow((void **)&g->res, &g->cap_res, g->n_res, sizeof(*g->res)) != 0) {
            return TH_ENOMEM;
        }
        th_otlp_resource_spans_t *rs;
        int ret = th__blk_dec_resource(v, ri, g->a, &rs);
        if (ret != 0) {
            return ret;
        }
        g->res[g->n_res++] = (struct out_res){rh, rs};
    }
    th__mpr_t rd = {v->buf + v->scope_off[idx], v->buf + v->scope_end[idx]};
    uint32_t n, skip;
    if (th__mpr_array(&rd, &n) != 0 || th__mpr_u32(&rd, &skip) != 0) {
        return TH_EIO;
    }
    uint64_t sh = th__hash64(rd.p, (size_t)(rd.end - rd.p), rh);
    size_t s;
    for (s = 0; s < g->n_scopes && !(g->scopes[s].hash == sh && g->scopes[s].res == r); s++) {
    }
    if (s == g->n_scopes) {
        if (grow((void **)&g->scopes, &g->cap_scopes, g->n_scopes, sizeof(*g->scopes)) != 0) {
            return TH_ENOMEM;
        }
        th_otlp_scope_spans_t *ss;
        int ret = th__blk_dec_scope(v, idx, g->a, &ss);
        if (ret != 0) {
            return ret;
        }
        g->scopes[g->n_scopes++] = (struct out_scope){sh, (uint32_t)r, ss, 0};
    }
    g->scope_map[idx] = (uint32_t)s + 1;
    *out = (uint32_t)s;
    return 0;
}

static int gt_on_span(void *ctx, uint32_t scope_idx, th_otlp_span_t *sp)
{
    struct gt_ctx *g = ctx;
    uint32_t s = 0;
    int ret = map_scope(g, scope_idx, &s);
    if (ret != 0) {
        return ret;
    }
    if (grow((void **)&g->spans, &g->cap_spans, g->n_spans, sizeof(*g->spans)) != 0) {
        return TH_ENOMEM;
    }
    g->spans[g->n_spans++] = (struct out_span){s, sp};
    g->scopes[s].n_spans++;
    return 0;
}

/* Put the collected spans under their scopes and resources, all in the arena. */
static int gt_build(struct gt_ctx *g, th_otlp_request_t **out)
{
    th_arena_t *a = g->a;
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    if (!req) {
        return TH_ENOMEM;
    }
    *req = (th_otlp_request_t)
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req->resource_spans = th_arena_alloc(a, g->n_res * sizeof(*req->resource_spans));
    if (!req->resource_spans) {
        return TH_ENOMEM;
    }
    req->n_resource_spans = g->n_res;
    for (size_t r = 0; r < g->n_res; r++) {
        size_t n = 0;
        for (size_t s = 0; s < g->n_scopes; s++) {
            n += g->scopes[s].res == r;
        }
        th_otlp_resource_spans_t *rs = g->res[r].rs;
        rs->scope_spans = th_arena_alloc(a, (n ? n : 1) * sizeof(*rs->scope_spans));
        if (!rs->scope_spans) {
            return TH_ENOMEM;
        }
        req->resource_spans[r] = rs;
    }
    for (size_t s = 0; s < g->n_scopes; s++) {
        struct out_scope *os = &g->scopes[s];
        th_otlp_resource_spans_t *rs = g->res[os->res].rs;
        rs->scope_spans[rs->n_scope_spans++] = os->ss;
        os->ss->spans =
            th_arena_alloc(a, (os->n_spans ? os->n_spans : 1) * sizeof(th_otlp_span_t *));
        if (!os->ss->spans) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < g->n_spans; i++) {
        th_otlp_scope_spans_t *ss = g->scopes[g->spans[i].scope].ss;
        ss->spans[ss->n_spans++] = g->spans[i].sp;
    }
    *out = req;
    return 0;
}

int th__lmdb_get_trace(th_store_t *st, const uint8_t trace_id[16], uint64_t start_min_ns,
                       uint64_t start_max_ns, th_arena_t *a, th_otlp_request_t **out)
{
    /* The window is only a hint (Grafana sends it in the wrong unit): one range scan finds
     * every piece of the trace anyway, so nothing is filtered by it. */
    (void)start_min_ns;
    (void)start_max_ns;
    struct th_lmdb *s = (struct th_lmdb *)st;
    struct piece *pieces = NULL;
    size_t n = 0, cap = 0;
    th__mpw_t comp = {0}, payload = {0};
    struct gt_ctx g = {.a = a};
    struct th__blk_view view = {0};
    MDB_cursor *c = NULL;
    struct th__txn tx;
    int ret = th__txn_begin(s, true, &tx);
    if (ret != 0) {
        return ret;
    }
    int rc = mdb_cursor_open(tx.t, s->dbi_traces, &c);
    if (rc != 0) {
        ret = th__mdb_err(rc);
        goto out;
    }
    uint8_t k[TH_KEY_TRACE_LEN];
    th__key_trace(k, trace_id, 0, 0);
    MDB_val key = {sizeof(k), k}, val;
    for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != TH_KEY_TRACE_LEN || memcmp(key.mv_data, trace_id, 16) != 0) {
            break;
        }
        struct th__trace_entry e;
        if (th__trace_entry_parse(val.mv_data, val.mv_size, &e) != 0) {
            ret = TH_EIO;
            goto out;
        }
        if (grow((void **)&pieces, &cap, n, sizeof(*pieces)) != 0) {
            ret = TH_ENOMEM;
            goto out;
        }
        pieces[n++] =
            (struct piece){th__be64_get((uint8_t *)key.mv_data + 16), e.raw_off, e.raw_len};
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
        goto out;
    }
    if (n == 0) {
        ret = TH_ENOENT;
        goto out;
    }
    /* pieces come in block order: decompress each block once, up to its last piece */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t need = 0;
        for (; j < n && pieces[j].block == pieces[i].block; j++) {
            need = TH_MAX(need, (size_t)pieces[j].raw_off + pieces[j].raw_len);
        }
        const struct th__blk_view *bv = NULL;
        ret = th__block_view(s, tx.t, pieces[i].block, need, &comp, &payload, &view, &bv);
        if (ret == TH_ENOENT) {
            /* an entry left behind by a block deleted with a corrupt meta record */
            ret = 0;
            i = j;
            continue;
        }
        if (ret != 0) {
            goto out;
        }
        const uint8_t *pp = bv->buf;
        size_t plen = bv->len;
        g.view = bv;
        g.scope_map = th_calloc(bv->n_scopes ? bv->n_scopes : 1, sizeof(uint32_t));
        if (!g.scope_map) {
            ret = TH_ENOMEM;
            goto out;
        }
        for (size_t p = i; p < j && ret == 0; p++) {
            if ((size_t)pieces[p].raw_off + pieces[p].raw_len > plen ||
                pieces[p].raw_off < bv->groups_off) {
                ret = TH_EIO;
                break;
            }
            th__mpr_t r = {pp + pieces[p].raw_off, pp + pieces[p].raw_off + pieces[p].raw_len};
            ret = th__blk_dec_group(&r, bv->n_scopes, a, gt_on_span, &g);
        }
        th_free(g.scope_map);
        g.scope_map = NULL;
        th__blk_view_free(&view);
        if (ret != 0) {
            goto out;
        }
        i = j;
    }
    mdb_cursor_close(c);
    c = NULL;
    th__txn_abort(&tx);
    ret = g.n_spans ? gt_build(&g, out) : TH_ENOENT;
out:
    if (c) {
        mdb_cursor_close(c);
    }
    th__txn_abort(&tx);
    th__blk_view_free(&view);
    th_free(pieces);
    th_free(g.res);
    th_free(g.scopes);
    th_free(g.spans);
    th__mpw_free(&comp);
    th__mpw_free(&payload);
    return ret;
}

/* ---- Search --------------------------------------------------------------------------- */

enum tag_kind {
    TAG_ATTR,     /* any of span, scope, resource, event, link attributes */
    TAG_RESOURCE, /* resource.KEY: resource attributes only */
    TAG_ERROR,    /* error=true|false: status ERROR (or an attribute error=true) */
    TAG_KIND,     /* span.kind */
    TAG_SCOPE_NAME,
    TAG_SCOPE_VERSION,
};

/* A condition's hashes in the tag tables: a block may match it only if one of them is there,
 * and its newest match is no newer than the newest of those found. */
struct probes {
    int n;
    uint32_t h[6];
};

struct qtag {
    enum tag_kind kind;
    const char *key, *val;
    size_t klen, vlen;
    bool want; /* TAG_ERROR */
    int span_kind;
    struct probes pr; /* none: the condition cannot be looked up (checked on spans only) */
};

/* A trace found, ranked by its newest matching span start in microseconds (the Jaeger API's
 * resolution), then by the block that span is in: among equal starts the newer ingest comes
 * first, which lets a replay of identical timestamps stop after `limit` blocks. */
struct cand {
    uint8_t tid[16];
    uint64_t best, block;
};

struct search {
    struct th_lmdb *s;
    MDB_txn *t;
    const struct th_trace_query *q;
    uint64_t smin, smax, dmin, dmax;
    size_t limit;
    struct qtag *tags;
    size_t n_tags;
    struct probes op, kind;
    uint32_t svc;
    th__mpw_t comp, payload, tmp;
    th_arena_t *scratch; /* for nested values compared by their JSON text */
    struct cand *cands;
    size_t n_cands, cap_cands;
    uint32_t *slots; /* candidate index + 1 by trace id hash */
    size_t cap_slots;
    uint64_t kth, kth_block; /* rank of the limit-th best candidate (while n_cands >= limit) */
    uint64_t block;          /* the block being evaluated */
};

static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

static void probe_add(struct probes *p, uint32_t h)
{
    if (p->n < (int)TH_ARRAY_SIZE(p->h)) {
        p->h[p->n++] = h;
    }
}

static int parse_tags(struct search *x)
{
    const struct th_trace_query *q = x->q;
    if (q->operation) {
        size_t ol = strlen(q->operation);
        for (int k = 0; k <= 5; k++) {
            if (q->span_kind && k != q->span_kind) {
                continue;
            }
            /* the marker is the kind byte then the name: hash it in two steps as written */
            th__mpw_t m = {0};
            uint8_t kb = (uint8_t)k;
            th__mpw_raw(&m, &kb, 1);
            th__mpw_raw(&m, q->operation, ol);
            if (m.err) {
                return TH_ENOMEM;
            }
            probe_add(&x->op,
                      th__tag_hash(TH_MARK_OP, strlen(TH_MARK_OP), TH_TAGH_MARK, m.p, m.len));
            th__mpw_free(&m);
        }
    } else if (q->span_kind) {
        uint8_t kb = (uint8_t)q->span_kind;
        probe_add(&x->kind, th__tag_hash(TH_MARK_KIND, strlen(TH_MARK_KIND), TH_TAGH_MARK, &kb, 1));
    }
    if (!q->n_tags) {
        return 0;
    }
    x->tags = th_calloc(q->n_tags, sizeof(*x->tags));
    if (!x->tags) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < q->n_tags; i++) {
        struct qtag *t = &x->tags[x->n_tags++];
        const char *k = q->tag_keys[i] ? q->tag_keys[i] : "";
        const char *v = q->tag_values[i] ? q->tag_values[i] : "";
        t->key = k;
        t->klen = strlen(k);
        t->val = v;
        t->vlen = strlen(v);
        t->kind = TAG_ATTR;
        if (!strcmp(k, "error") && (!strcmp(v, "true") || !strcmp(v, "false"))) {
            t->kind = TAG_ERROR;
            t->want = v[0] == 't';
            if (t->want) {
                probe_add(&t->pr, th__tag_hash(TH_MARK_ERROR, strlen(TH_MARK_ERROR), TH_TAGH_MARK,
                                               "true", 4));
                probe_add(&t->pr, th__tag_hash("error", 5, TH_TAGH_STR, "true", 4));
            }
            continue;
        }
        if (!strcmp(k, "span.kind")) {
            t->kind = TAG_KIND;
            t->span_kind = -1;
            for (int j = 0; j < 6; j++) {
                if (!strcmp(v, kind_names[j])) {
                    t->span_kind = j;
                }
            }
            if (t->span_kind >= 0) {
                uint8_t kb = (uint8_t)t->span_kind;
                probe_add(&t->pr,
                          th__tag_hash(TH_MARK_KIND, strlen(TH_MARK_KIND), TH_TAGH_MARK, &kb, 1));
            }
            continue;
        }
        if (!strcmp(k, "scope.name") || !strcmp(k, "scope.version")) {
            t->kind = k[6] == 'n' ? TAG_SCOPE_NAME : TAG_SCOPE_VERSION;
            continue;
        }
        if (!strncmp(k, "resource.", 9) && k[9]) {
            t->kind = TAG_RESOURCE;
            t->key = k + 9;
            t->klen -= 9;
        }
        probe_add(&t->pr, th__tag_hash(t->key, t->klen, TH_TAGH_STR, v, t->vlen));
        char *end;
        double d = t->vlen ? strtod(v, &end) : 0;
        if (t->vlen && *end == '\0') {
            probe_add(&t->pr, th__tag_hash(t->key, t->klen, TH_TAGH_DOUBLE, &d, 8));
        }
    }
    return 0;
}

/* Does the value at @p r (not consumed) have the AsString text @p want? */
static int value_is(struct search *x, th__mpr_t r, const char *want, size_t wlen, bool *match)
{
    char num[400];
    size_t n;
    *match = false;
    switch (th__mpr_peek(&r)) {
    case TH_MP_STR: {
        const char *sv;
        if (th__mpr_str(&r, &sv, &n) != 0) {
            return TH_EIO;
        }
        *match = n == wlen && memcmp(sv, want, n) == 0;
        return 0;
    }
    case TH_MP_BOOL: {
        bool b;
        if (th__mpr_bool(&r, &b) != 0) {
            return TH_EIO;
        }
        *match =
            b ? (wlen == 4 && !memcmp(want, "true", 4)) : (wlen == 5 && !memcmp(want, "false", 5));
        return 0;
    }
    case TH_MP_UINT:
    case TH_MP_INT: {
        int64_t i;
        if (th__mpr_int(&r, &i) != 0) {
            return TH_EIO;
        }
        n = th__fmt_i64(i, num);
        *match = n == wlen && memcmp(num, want, n) == 0;
        return 0;
    }
    case TH_MP_FLOAT: {
        double d;
        if (th__mpr_double(&r, &d) != 0) {
            return TH_EIO;
        }
        n = th__fmt_double(d, num);
        *match = n == wlen && memcmp(num, want, n) == 0;
        return 0;
    }
    case TH_MP_NIL:
    case TH_MP_EXT:
        *match = wlen == 0;
        return 0;
    default: {
        /* bytes, arrays and kvlists: rebuild the value and compare its text */
        if (!x->scratch && !(x->scratch = th_arena_create(0, 0))) {
            return TH_ENOMEM;
        }
        th_otlp_any_t *v = NULL;
        int ret = th__dec_any(&r, x->scratch, 1, &v);
        if (ret != 0) {
            return ret;
        }
        x->tmp.len = 0;
        th__any_as_string(&x->tmp, v);
        if (x->tmp.err) {
            return x->tmp.err;
        }
        *match = x->tmp.len == wlen && memcmp(x->tmp.p, want, wlen) == 0;
        return 0;
    }
    }
}

/* Walk an attribute map, setting the bit of every tag of an accepted kind it satisfies, and
 * noting an attribute error=true. */
static int attrs_mask(struct search *x, th__mpr_t *r, bool resource, uint64_t *mask,
                      bool *error_attr)
{
    uint32_t n;
    if (th__mpr_map(r, &n) != 0) {
        return TH_EIO;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        size_t kl;
        if (th__mpr_str(r, &k, &kl) != 0) {
            return TH_EIO;
        }
        for (size_t t = 0; t < x->n_tags; t++) {
            const struct qtag *q = &x->tags[t];
            if ((q->kind == TAG_ATTR || (resource && q->kind == TAG_RESOURCE)) && q->klen == kl &&
                !memcmp(q->key, k, kl) && !(*mask & (1ull << t))) {
                bool m;
                int ret = value_is(x, *r, q->val, q->vlen, &m);
                if (ret != 0) {
                    return ret;
                }
                if (m) {
                    *mask |= 1ull << t;
                }
            }
        }
        if (error_attr && kl == 5 && !memcmp(k, "error", 5)) {
            bool m;
            int ret = value_is(x, *r, "true", 4, &m);
            if (ret != 0) {
                return ret;
            }
            *error_attr = *error_attr || m;
        }
        if (th__mpr_skip(r) != 0) {
            return TH_EIO;
        }
    }
    return 0;
}

static int skip_n(th__mpr_t *r, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (th__mpr_skip(r) != 0) {
            return TH_EIO;
        }
    }
    return 0;
}

static uint64_t tid_hash(const uint8_t *tid)
{
    return th__hash64(tid, 16, 11);
}

static bool rank_gt(uint64_t s1, uint64_t b1, uint64_t s2, uint64_t b2)
{
    return s1 > s2 || (s1 == s2 && b1 > b2);
}

static int cand_add(struct search *x, const uint8_t *tid, uint64_t start_ns)
{
    uint64_t start = start_ns / 1000;
    if ((x->n_cands + 1) * 2 > x->cap_slots) {
        size_t cap = x->cap_slots ? x->cap_slots * 2 : 256;
        uint32_t *slots = th_calloc(cap, sizeof(*slots));
        if (!slots) {
            return TH_ENOMEM;
        }
        for (size_t i = 0; i < x->n_cands; i++) {
            size_t j = tid_hash(x->cands[i].tid) & (cap - 1);
            while (slots[j]) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = (uint32_t)i + 1;
        }
        th_free(x->slots);
        x->slots = slots;
        x->cap_slots = cap;
    }
    size_t j = tid_hash(tid) & (x->cap_slots - 1);
    while (x->slots[j]) {
        struct cand *c = &x->cands[x->slots[j] - 1];
        if (!memcmp(c->tid, tid, 16)) {
            if (rank_gt(start, x->block, c->best, c->block)) {
                c->best = start;
                c->block = x->block;
            }
            return 0;
        }
        j = (j + 1) & (x->cap_slots - 1);
    }
    if (grow((void **)&x->cands, &x->cap_cands, x->n_cands, sizeof(*x->cands)) != 0) {
        return TH_ENOMEM;
    }
    memcpy(x->cands[x->n_cands].tid, tid, 16);
    x->cands[x->n_cands].best = start;
    x->cands[x->n_cands].block = x->block;
    x->slots[j] = (uint32_t)++x->n_cands;
    return 0;
}

/* Check every span of the service in a decompressed block against the query. */
static int eval_block(struct search *x, const struct th__blk_view *v)
{
    const struct th_trace_query *q = x->q;
    size_t qlen = strlen(q->service);
    size_t oplen = q->operation ? strlen(q->operation) : 0;
    uint64_t full = x->n_tags == 64 ? UINT64_MAX : (1ull << x->n_tags) - 1;
    int ret = 0;
    size_t nr = v->n_res ? v->n_res : 1, ns = v->n_scopes ? v->n_scopes : 1;
    uint64_t *res_mask = th_calloc(nr + ns, sizeof(uint64_t));
    bool *ok = th_calloc(nr + ns, sizeof(bool));
    if (!res_mask || !ok) {
        ret = TH_ENOMEM;
        goto out;
    }
    uint64_t *scope_mask = res_mask + nr;
    bool *res_ok = ok, *scope_ok = ok + nr;
    bool any = false;
    for (uint32_t i = 0; i < v->n_res; i++) {
        th__mpr_t r = {v->buf + v->res_off[i], v->buf + v->res_end[i]};
        uint32_t n, nattr;
        bool present;
        if (th__mpr_array(&r, &n) != 0 || n != 5 || th__mpr_bool(&r, &present) != 0) {
            ret = TH_EIO;
            goto out;
        }
        /* the service name, by the same rule the writer indexed it with */
        th__mpr_t m = r;
        if (th__mpr_map(&m, &nattr) != 0) {
            ret = TH_EIO;
            goto out;
        }
        const char *svc = nattr ? "" : "OTLPResourceNoServiceName";
        size_t svclen = strlen(svc);
        for (uint32_t a = 0; a < nattr; a++) {
            const char *k;
            size_t kl;
            if (th__mpr_str(&m, &k, &kl) != 0) {
                ret = TH_EIO;
                goto out;
            }
            if (kl == 12 && !memcmp(k, "service.name", 12) && th__mpr_peek(&m) == TH_MP_STR) {
                th__mpr_str(&m, &svc, &svclen);
                break;
            }
            if (th__mpr_skip(&m) != 0) {
                ret = TH_EIO;
                goto out;
            }
        }
        res_ok[i] = svclen == qlen && !memcmp(svc, q->service, qlen);
        if (res_ok[i]) {
            any = true;
            ret = attrs_mask(x, &r, true, &res_mask[i], NULL);
            if (ret != 0) {
                goto out;
            }
        }
    }
    if (!any) {
        goto out;
    }
    for (uint32_t i = 0; i < v->n_scopes; i++) {
        uint32_t ri = v->scope_res[i];
        scope_ok[i] = res_ok[ri];
        if (!scope_ok[i]) {
            continue;
        }
        th__mpr_t r = {v->buf + v->scope_off[i], v->buf + v->scope_end[i]};
        uint32_t n, idx;
        bool present;
        const char *name, *version;
        size_t nl, vl;
        if (th__mpr_array(&r, &n) != 0 || th__mpr_u32(&r, &idx) != 0 ||
            th__mpr_bool(&r, &present) != 0 || th__mpr_str(&r, &name, &nl) != 0 ||
            th__mpr_str(&r, &version, &vl) != 0) {
            ret = TH_EIO;
            goto out;
        }
        uint64_t mask = res_mask[ri];
        for (size_t t = 0; t < x->n_tags; t++) {
            const struct qtag *qt = &x->tags[t];
            if ((qt->kind == TAG_SCOPE_NAME && qt->vlen == nl && !memcmp(qt->val, name, nl)) ||
                (qt->kind == TAG_SCOPE_VERSION && qt->vlen == vl &&
                 !memcmp(qt->val, version, vl))) {
                mask |= 1ull << t;
            }
        }
        ret = attrs_mask(x, &r, false, &mask, NULL);
        if (ret != 0) {
            goto out;
        }
        scope_mask[i] = mask;
    }

    th__mpr_t r = {v->buf + v->groups_off, v->buf + v->len};
    for (uint32_t g = 0; g < v->n_groups; g++) {
        uint32_t n, n_spans;
        const uint8_t *tid;
        size_t tl;
        uint64_t base;
        if (th__mpr_array(&r, &n) != 0 || n != 3 || th__mpr_bin(&r, &tid, &tl) != 0 || tl != 16 ||
            th__mpr_uint(&r, &base) != 0 || th__mpr_array(&r, &n_spans) != 0) {
            ret = TH_EIO;
            goto out;
        }
        for (uint32_t i = 0; i < n_spans; i++) {
            uint32_t scope;
            if (th__mpr_array(&r, &n) != 0 || n != TH_SPAN_FIELDS || th__mpr_u32(&r, &scope) != 0 ||
                scope >= v->n_scopes) {
                ret = TH_EIO;
                goto out;
            }
            if (!scope_ok[scope]) {
                if (skip_n(&r, TH_SPAN_FIELDS - 1) != 0) {
                    ret = TH_EIO;
                    goto out;
                }
                continue;
            }
            const char *name;
            size_t nl;
            int64_t kind, dur;
            uint64_t start;
            if (skip_n(&r, 4) != 0 || th__mpr_str(&r, &name, &nl) != 0 ||
                th__mpr_int(&r, &kind) != 0 || th__mpr_uint(&r, &start) != 0 ||
                th__mpr_int(&r, &dur) != 0) {
                ret = TH_EIO;
                goto out;
            }
            start += base;
            uint64_t d = dur > 0 ? (uint64_t)dur : 0;
            bool match = (!q->operation || (nl == oplen && !memcmp(name, q->operation, nl))) &&
                         (!q->span_kind || kind == q->span_kind) && start >= x->smin &&
                         start <= x->smax && d >= x->dmin && d <= x->dmax;
            if (!match) {
                if (skip_n(&r, 7) != 0) {
                    ret = TH_EIO;
                    goto out;
                }
                continue;
            }
            uint64_t mask = scope_mask[scope];
            bool err_attr = false;
            ret = attrs_mask(x, &r, false, &mask, &err_attr);
            uint32_t ne, nlk;
            if (ret == 0 && (th__mpr_skip(&r) != 0 || th__mpr_array(&r, &ne) != 0)) {
                ret = TH_EIO;
            }
            for (uint32_t e = 0; ret == 0 && e < ne; e++) {
                if (th__mpr_array(&r, &n) != 0 || n != 4 || skip_n(&r, 2) != 0) {
                    ret = TH_EIO;
                    break;
                }
                ret = attrs_mask(x, &r, false, &mask, NULL);
                if (ret == 0 && th__mpr_skip(&r) != 0) {
                    ret = TH_EIO;
                }
            }
            if (ret == 0 && (th__mpr_skip(&r) != 0 || th__mpr_array(&r, &nlk) != 0)) {
                ret = TH_EIO;
            }
            for (uint32_t l = 0; ret == 0 && l < nlk; l++) {
                if (th__mpr_array(&r, &n) != 0 || n != 6 || skip_n(&r, 3) != 0) {
                    ret = TH_EIO;
                    break;
                }
                ret = attrs_mask(x, &r, false, &mask, NULL);
                if (ret == 0 && skip_n(&r, 2) != 0) {
                    ret = TH_EIO;
                }
            }
            bool status_err = false;
            if (ret == 0 && th__mpr_skip(&r) != 0) {
                ret = TH_EIO;
            }
            if (ret == 0) {
                if (th__mpr_peek(&r) == TH_MP_NIL) {
                    th__mpr_nil(&r);
                } else {
                    int64_t code = 0;
                    if (th__mpr_array(&r, &n) != 0 || n != 2 || th__mpr_int(&r, &code) != 0 ||
                        th__mpr_skip(&r) != 0) {
                        ret = TH_EIO;
                    }
                    status_err = code == 2;
                }
            }
            if (ret != 0) {
                goto out;
            }
            for (size_t t = 0; t < x->n_tags; t++) {
                const struct qtag *qt = &x->tags[t];
                if ((qt->kind == TAG_ERROR && (status_err || err_attr) == qt->want) ||
                    (qt->kind == TAG_KIND && qt->span_kind == kind)) {
                    mask |= 1ull << t;
                }
            }
            if (mask == full) {
                ret = cand_add(x, tid, start);
                if (ret != 0) {
                    goto out;
                }
            }
        }
    }
out:
    th_free(res_mask);
    th_free(ok);
    return ret;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->best != y->best || x->block != y->block) {
        return rank_gt(x->best, x->block, y->best, y->block) ? -1 : 1;
    }
    return memcmp(x->tid, y->tid, 16);
}

/* The rank of the limit-th best candidate: older index entries cannot beat it. */
static int update_kth(struct search *x)
{
    if (x->n_cands < x->limit) {
        x->kth = x->kth_block = 0;
        return 0;
    }
    struct cand *b = th_malloc(x->n_cands * sizeof(*b));
    if (!b) {
        return TH_ENOMEM;
    }
    memcpy(b, x->cands, x->n_cands * sizeof(*b));
    th__qsort(b, x->n_cands, sizeof(*b), cand_cmp);
    x->kth = b[x->limit - 1].best;
    x->kth_block = b[x->limit - 1].block;
    th_free(b);
    return 0;
}

/* The tag table parts of one block or summary, fetched on first use. */
struct parts {
    MDB_dbi dbi;
    uint64_t id;
    unsigned n;
    MDB_val v[256];
    uint8_t fetched[256];
};

static int lookup(struct search *x, struct parts *pc, uint32_t h, bool *found, uint32_t *delta)
{
    *found = false;
    if (!pc->n) {
        return 0;
    }
    unsigned p = th__tags_part(h, pc->n);
    if (!pc->fetched[p]) {
        uint8_t k[TH_KEY_TAGS_LEN];
        th__key_tags(k, pc->id, (uint8_t)p);
        MDB_val key = {sizeof(k), k};
        int rc = mdb_get(x->t, pc->dbi, &key, &pc->v[p]);
        if (rc == MDB_NOTFOUND) {
            pc->v[p].mv_size = 0; /* an empty part */
        } else if (rc != 0) {
            return th__mdb_err(rc);
        }
        pc->fetched[p] = 1;
    }
    *found = th__tags_find(pc->v[p].mv_data, pc->v[p].mv_size, h, delta);
    return 0;
}

/* Narrow @p bound (µs) to the newest start that can match @p pr; *possible is cleared when
 * none of its hashes is there. */
static int probe_bound(struct search *x, struct parts *pc, const struct probes *pr,
                       uint64_t base_us, uint64_t max_us, uint64_t *bound, bool *possible)
{
    if (!pr->n) {
        return 0;
    }
    uint64_t best = 0;
    bool any = false;
    for (int i = 0; i < pr->n; i++) {
        bool found;
        uint32_t d;
        int ret = lookup(x, pc, pr->h[i], &found, &d);
        if (ret != 0) {
            return ret;
        }
        if (found) {
            uint64_t at = d == TH_TAGS_DELTA_NONE ? max_us : base_us + d;
            best = any ? TH_MAX(best, at) : at;
            any = true;
        }
    }
    if (!any) {
        *possible = false;
    } else {
        *bound = TH_MIN(*bound, best);
    }
    return 0;
}

/* The newest start among the spans the frontier says last at least (@p at_least) or at
 * most @p d; *possible is cleared when there is none. */
static void frontier_bound(const uint8_t *pts, unsigned n, bool cut, bool at_least, uint64_t d,
                           uint64_t base_us, uint64_t max_us, uint64_t *bound, bool *possible)
{
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *pt = pts + TH_FRONTIER_SIZE * i;
        uint64_t dur = th__be64_get(pt + 4);
        if (at_least ? dur >= d : dur <= d) {
            uint32_t delta = th__be32_get(pt);
            *bound = TH_MIN(*bound, delta == TH_TAGS_DELTA_NONE ? max_us : base_us + delta);
            return;
        }
    }
    if (!cut) {
        *possible = false;
    }
}

/* How new a match among these spans (a block's or a summary's) can be, from their stats and
 * tag table, without reading them. */
static int stats_bound(struct search *x, const struct th__stats *st, MDB_dbi dbi, uint64_t id,
                       uint64_t max_us, uint64_t *bound, bool *possible)
{
    uint64_t base_us = st->min_start / 1000;
    *bound = max_us;
    *possible = st->min_start <= x->smax && st->max_dur >= x->dmin && st->min_dur <= x->dmax;
    if (*possible && x->dmin > 0) {
        frontier_bound(st->longs, st->n_long, st->long_cut, true, x->dmin, base_us, max_us, bound,
                       possible);
    }
    if (*possible && x->dmax < UINT64_MAX) {
        frontier_bound(st->shorts, st->n_short, st->short_cut, false, x->dmax, base_us, max_us,
                       bound, possible);
    }
    if (!*possible || (!x->op.n && !x->kind.n && !x->n_tags)) {
        return 0;
    }
    struct parts *pc = th_malloc(sizeof(*pc));
    if (!pc) {
        return TH_ENOMEM;
    }
    pc->dbi = dbi;
    pc->id = id;
    pc->n = st->n_parts;
    memset(pc->fetched, 0, sizeof(pc->fetched));
    int ret = probe_bound(x, pc, &x->op, base_us, max_us, bound, possible);
    if (ret == 0 && *possible) {
        ret = probe_bound(x, pc, &x->kind, base_us, max_us, bound, possible);
    }
    for (size_t t = 0; ret == 0 && *possible && t < x->n_tags; t++) {
        ret = probe_bound(x, pc, &x->tags[t].pr, base_us, max_us, bound, possible);
    }
    th_free(pc);
    return ret;
}

/* Something to look at, newest first: a block, or a summary of blocks. */
struct item {
    uint64_t max_start; /* ns */
    uint64_t block;     /* the block, or a summary's newest block (its rank) */
    uint64_t sum;       /* 0 for a block */
    uint64_t sum_key_start;
};

struct heap {
    struct item *v;
    size_t n, cap;
};

static bool item_gt(const struct item *a, const struct item *b)
{
    return a->max_start > b->max_start || (a->max_start == b->max_start && a->block > b->block);
}

static int heap_push(struct heap *h, struct item it)
{
    if (grow((void **)&h->v, &h->cap, h->n, sizeof(*h->v)) != 0) {
        return TH_ENOMEM;
    }
    size_t i = h->n++;
    while (i && item_gt(&it, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = it;
    return 0;
}

static struct item heap_pop(struct heap *h)
{
    struct item top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && item_gt(&h->v[c + 1], &h->v[c])) {
            c++;
        }
        if (!item_gt(&h->v[c], &last)) {
            break;
        }
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) {
        h->v[i] = last;
    }
    return top;
}

/* Read the next older summary of the service into the heap. */
static int next_summary(struct search *x, MDB_cursor *c, bool *more, bool first, struct heap *h)
{
    if (!*more) {
        return 0;
    }
    MDB_val key, val;
    int rc;
    if (first) {
        uint8_t k[TH_KEY_SVCSUM_LEN];
        th__key_svcsum(k, x->svc, UINT64_MAX, UINT64_MAX);
        key.mv_size = sizeof(k);
        key.mv_data = k;
        rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
        rc = rc == 0              ? mdb_cursor_get(c, &key, &val, MDB_PREV)
             : rc == MDB_NOTFOUND ? mdb_cursor_get(c, &key, &val, MDB_LAST)
                                  : rc;
    } else {
        rc = mdb_cursor_get(c, &key, &val, MDB_PREV);
    }
    if (rc == 0 && (key.mv_size != TH_KEY_SVCSUM_LEN || th__be32_get(key.mv_data) != x->svc)) {
        rc = MDB_NOTFOUND;
    }
    if (rc != 0) {
        *more = false;
        return rc == MDB_NOTFOUND ? 0 : th__mdb_err(rc);
    }
    struct th__svcsum sv;
    if (th__svcsum_parse(val.mv_data, val.mv_size, &sv) != 0 || !sv.n_blocks) {
        return TH_EIO;
    }
    struct item it = {.max_start = th__be64_get((uint8_t *)key.mv_data + 4),
                      .sum = th__be64_get((uint8_t *)key.mv_data + 12)};
    for (unsigned i = 0; i < sv.n_blocks; i++) {
        it.block = TH_MAX(it.block, th__be64_get(sv.blocks + 16 * i));
    }
    it.sum_key_start = it.max_start;
    return heap_push(h, it);
}

/* Is an item (of rank max_us, block) unable to beat the limit-th candidate? */
static bool beaten(const struct search *x, uint64_t max_us, uint64_t block)
{
    return x->n_cands >= x->limit && !rank_gt(max_us, block, x->kth, x->kth_block);
}

static int eval_one_block(struct search *x, const struct item *it)
{
    uint8_t bk[TH_KEY_BLKIDX_LEN];
    th__be64_put(bk, it->block);
    MDB_val key = {sizeof(bk), bk}, val;
    int rc = mdb_get(x->t, x->s->dbi_blkidx, &key, &val);
    if (rc == MDB_NOTFOUND) {
        return 0; /* deleted by retention since it was listed */
    }
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    struct th__blkidx b;
    if (th__blkidx_parse(val.mv_data, val.mv_size, &b) != 0) {
        return TH_EIO;
    }
    if (b.svc != x->svc) {
        return TH_EIO;
    }
    uint64_t bound;
    bool possible;
    int ret =
        stats_bound(x, &b.st, x->s->dbi_tags, it->block, it->max_start / 1000, &bound, &possible);
    if (ret != 0 || !possible || bound < x->smin / 1000 || beaten(x, bound, it->block)) {
        return ret;
    }
    struct th__blk_view scratch = {0};
    const struct th__blk_view *view = NULL;
    ret = th__block_view(x->s, x->t, it->block, SIZE_MAX, &x->comp, &x->payload, &scratch, &view);
    if (ret == TH_ENOENT) {
        th__blk_view_free(&scratch);
        return 0; /* an index entry left behind by a block deleted with a corrupt meta */
    }
    if (ret != 0) {
        th__blk_view_free(&scratch);
        return ret;
    }
    x->block = it->block;
    ret = eval_block(x, view);
    th__blk_view_free(&scratch);
    return ret == 0 ? update_kth(x) : ret;
}

static int expand_summary(struct search *x, const struct item *it, struct heap *h)
{
    uint8_t k[TH_KEY_SVCSUM_LEN];
    th__key_svcsum(k, x->svc, it->sum_key_start, it->sum);
    MDB_val key = {sizeof(k), k}, val;
    int rc = mdb_get(x->t, x->s->dbi_svcsum, &key, &val);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    struct th__svcsum sv;
    if (th__svcsum_parse(val.mv_data, val.mv_size, &sv) != 0) {
        return TH_EIO;
    }
    uint64_t bound;
    bool possible;
    int ret =
        stats_bound(x, &sv.st, x->s->dbi_sumtags, it->sum, it->max_start / 1000, &bound, &possible);
    if (ret != 0 || !possible || bound < x->smin / 1000 || beaten(x, bound, it->block)) {
        return ret; /* none of its blocks can match, or beat what is found */
    }
    for (unsigned i = 0; i < sv.n_blocks && ret == 0; i++) {
        struct item b = {.max_start = th__be64_get(sv.blocks + 16 * i + 8),
                         .block = th__be64_get(sv.blocks + 16 * i)};
        ret = heap_push(h, b);
    }
    return ret;
}

/* Walk the service's blocks newest first: its newest blocks one by one, older ones by
 * summaries of TH_SUM_BLOCKS. Stop when nothing left can beat the `limit` traces found; skip
 * a block or a whole summary whose stats and tag table show it cannot; read the rest. */
static int scan_index(struct search *x)
{
    struct heap h = {0};
    MDB_cursor *c = NULL;
    bool more = true;
    int rc = mdb_cursor_open(x->t, x->s->dbi_svcsum, &c);
    int ret = rc ? th__mdb_err(rc) : 0;
    /* the blocks no summary covers yet */
    uint8_t pk[TH_KEY_PEND_LEN];
    th__key_pend(pk, x->svc);
    MDB_val key = {sizeof(pk), pk}, val;
    rc = ret ? 0 : mdb_get(x->t, x->s->dbi_meta, &key, &val);
    if (rc == 0 && ret == 0) {
        if (val.mv_size % 16) {
            ret = TH_EIO;
        }
        for (size_t i = 0; ret == 0 && i < val.mv_size / 16; i++) {
            const uint8_t *p = (const uint8_t *)val.mv_data + 16 * i;
            ret = heap_push(
                &h, (struct item){.max_start = th__be64_get(p + 8), .block = th__be64_get(p)});
        }
    } else if (rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
    if (ret == 0) {
        ret = next_summary(x, c, &more, true, &h);
    }
    while (ret == 0 && h.n) {
        struct item it = heap_pop(&h);
        if (it.sum) {
            ret = next_summary(x, c, &more, false, &h);
            if (ret != 0) {
                break;
            }
        }
        uint64_t max_us = it.max_start / 1000;
        if (it.max_start < x->smin || (x->n_cands >= x->limit && max_us < x->kth)) {
            break; /* everything left is older */
        }
        if (beaten(x, max_us, it.block)) {
            continue;
        }
        ret = it.sum ? expand_summary(x, &it, &h) : eval_one_block(x, &it);
    }
    if (c) {
        mdb_cursor_close(c);
    }
    th_free(h.v);
    return ret;
}

int th__lmdb_find_trace_ids(th_store_t *st, const struct th_trace_query *q, uint8_t (*ids)[16],
                            size_t *n)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    *n = 0;
    if (!q || !q->service || !*q->service) {
        return TH_EINVAL;
    }
    if (q->n_tags > 64) {
        return TH_E2BIG;
    }
    struct search x = {.s = s, .q = q};
    x.limit = q->limit ? q->limit : 20;
    x.smin = q->start_min_ns;
    x.smax = q->start_max_ns ? q->start_max_ns : UINT64_MAX;
    x.dmin = q->duration_min_ns;
    x.dmax = q->duration_max_ns ? q->duration_max_ns : UINT64_MAX;
    if (x.smin > x.smax || x.dmin > x.dmax) {
        return 0;
    }
    struct th__txn tx = {0};
    int ret = parse_tags(&x);
    if (ret == 0) {
        ret = th__txn_begin(s, true, &tx);
    }
    if (ret != 0) {
        goto out;
    }
    x.t = tx.t;
    ret = th__svc_lookup(s, tx.t, q->service, strlen(q->service), &x.svc);
    if (ret == TH_ENOENT) {
        ret = 0;
        goto out;
    }
    if (ret != 0) {
        goto out;
    }
    ret = scan_index(&x);
    if (ret != 0) {
        goto out;
    }
    th__qsort(x.cands, x.n_cands, sizeof(*x.cands), cand_cmp);
    *n = TH_MIN(x.n_cands, x.limit);
    for (size_t i = 0; i < *n; i++) {
        memcpy(ids[i], x.cands[i].tid, 16);
    }
out:
    th__txn_abort(&tx);
    th_free(x.tags);
    th_free(x.cands);
    th_free(x.slots);
    th__mpw_free(&x.comp);
    th__mpw_free(&x.payload);
    th__mpw_free(&x.tmp);
    th_arena_destroy(x.scratch);
    return ret;
}

/* ---- Catalog -------------------------------------------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int th__lmdb_services(th_store_t *st, th_arena_t *a, const char ***out, size_t *n)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    *n = 0;
    *out = NULL;
    const char **names = NULL;
    size_t cap = 0, cnt = 0;
    struct th__txn tx;
    int ret = th__txn_begin(s, true, &tx);
    if (ret != 0) {
        return ret;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(tx.t, s->dbi_svc, &c);
    if (rc != 0) {
        th__txn_abort(&tx);
        return th__mdb_err(rc);
    }
    MDB_val key = {1, "n"}, v;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const char *k = key.mv_data;
        if (key.mv_size < 1 || k[0] != 'n') {
            break;
        }
        if (v.mv_size < 12) {
            ret = TH_EIO;
            break;
        }
        /* a cut name is whole in the value */
        const char *name = v.mv_size > 12 ? (const char *)v.mv_data + 12 : k + 1;
        size_t nl = v.mv_size > 12 ? v.mv_size - 12 : key.mv_size - 1;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 32;
            const char **nn = th_arena_alloc(a, nc * sizeof(*nn));
            if (!nn) {
                ret = TH_ENOMEM;
                break;
            }
            if (cnt) {
                memcpy(nn, names, cnt * sizeof(*nn));
            }
            names = nn;
            cap = nc;
        }
        if (!(names[cnt++] = th_arena_strndup(a, name, nl))) {
            ret = TH_ENOMEM;
            break;
        }
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
    mdb_cursor_close(c);
    th__txn_abort(&tx);
    if (ret != 0) {
        return ret;
    }
    if (cnt) {
        th__qsort(names, cnt, sizeof(*names), str_cmp);
    }
    *out = names;
    *n = cnt;
    return 0;
}

static int op_cmp(const void *a, const void *b)
{
    const struct th_store_operation *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->span_kind - y->span_kind;
}

int th__lmdb_operations(th_store_t *st, const char *service, int span_kind, th_arena_t *a,
                        struct th_store_operation **out, size_t *n)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    *n = 0;
    *out = NULL;
    if (!service) {
        return TH_EINVAL;
    }
    struct th_store_operation *ops = NULL;
    size_t cap = 0, cnt = 0;
    struct th__txn tx;
    int ret = th__txn_begin(s, true, &tx);
    if (ret != 0) {
        return ret;
    }
    uint32_t svc;
    ret = th__svc_lookup(s, tx.t, service, strlen(service), &svc);
    if (ret != 0) {
        th__txn_abort(&tx);
        return ret == TH_ENOENT ? 0 : ret;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(tx.t, s->dbi_ops, &c);
    if (rc != 0) {
        th__txn_abort(&tx);
        return th__mdb_err(rc);
    }
    uint8_t prefix[5];
    th__be32_put(prefix, svc);
    prefix[4] = (uint8_t)(span_kind > 0 ? span_kind : 0);
    size_t plen = span_kind > 0 ? 5 : 4;
    MDB_val key = {plen, prefix}, v;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const uint8_t *k = key.mv_data;
        if (key.mv_size < 5 || memcmp(k, prefix, plen) != 0) {
            break;
        }
        if (v.mv_size < 12) {
            ret = TH_EIO;
            break;
        }
        const char *name = v.mv_size > 12 ? (const char *)v.mv_data + 12 : (const char *)k + 5;
        size_t nl = v.mv_size > 12 ? v.mv_size - 12 : key.mv_size - 5;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 32;
            struct th_store_operation *no = th_arena_alloc(a, nc * sizeof(*no));
            if (!no) {
                ret = TH_ENOMEM;
                break;
            }
            if (cnt) {
                memcpy(no, ops, cnt * sizeof(*no));
            }
            ops = no;
            cap = nc;
        }
        ops[cnt].span_kind = k[4];
        if (!(ops[cnt++].name = th_arena_strndup(a, name, nl))) {
            ret = TH_ENOMEM;
            break;
        }
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
    mdb_cursor_close(c);
    th__txn_abort(&tx);
    if (ret != 0) {
        return ret;
    }
    if (cnt) {
        th__qsort(ops, cnt, sizeof(*ops), op_cmp);
    }
    *out = ops;
    *n = cnt;
    return 0;
}

/* ---- Dependencies --------------------------------------------------------------------- */

struct dep_sum {
    uint32_t parent, child;
    uint64_t count;
};

/* Sum the counters of one level over buckets [lo, hi]. */
static int deps_sum(struct th_lmdb *s, MDB_txn *t, uint8_t level, uint32_t lo, uint32_t hi,
                    struct dep_sum **sums, size_t *n, size_t *cap)
{
    if (lo > hi) {
        return 0;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi_deps, &c);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    uint8_t k[TH_KEY_DEPS_LEN];
    th__key_deps(k, level, lo, 0, 0);
    MDB_val key = {sizeof(k), k}, v;
    int ret = 0;
    for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
        const uint8_t *kp = key.mv_data;
        if (key.mv_size != TH_KEY_DEPS_LEN || kp[0] != level || th__be32_get(kp + 1) > hi) {
            break;
        }
        if (v.mv_size != 8) {
            ret = TH_EIO;
            break;
        }
        uint32_t p = th__be32_get(kp + 5), ch = th__be32_get(kp + 9);
        uint64_t cnt = th__be64_get(v.mv_data);
        size_t i;
        for (i = 0; i < *n && !((*sums)[i].parent == p && (*sums)[i].child == ch); i++) {
        }
        if (i == *n) {
            if (grow((void **)sums, cap, *n, sizeof(**sums)) != 0) {
                ret = TH_ENOMEM;
                break;
            }
            (*sums)[(*n)++] = (struct dep_sum){p, ch, 0};
        }
        (*sums)[i].count += cnt;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
    mdb_cursor_close(c);
    return ret;
}

int th__lmdb_dependencies(th_store_t *st, uint64_t end_ns, uint64_t lookback_ns, th_arena_t *a,
                          struct th_store_dependency **out, size_t *n)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    *n = 0;
    *out = NULL;
    uint64_t start_ns = end_ns > lookback_ns ? end_ns - lookback_ns : 0;
    uint64_t mlo64 = start_ns / TH_NS_PER_MINUTE, mhi64 = end_ns / TH_NS_PER_MINUTE;
    uint32_t mlo = mlo64 > UINT32_MAX ? UINT32_MAX : (uint32_t)mlo64;
    uint32_t mhi = mhi64 > UINT32_MAX ? UINT32_MAX : (uint32_t)mhi64;
    /* whole hours inside [mlo, mhi] come from the hourly counters, the ragged ends from the
     * minute counters */
    uint32_t hlo = (mlo + 59) / 60;
    uint32_t hend = (uint32_t)(((uint64_t)mhi + 1) / 60); /* hours < hend end inside */
    struct dep_sum *sums = NULL;
    size_t cnt = 0, cap = 0;
    struct th__txn tx;
    int ret = th__txn_begin(s, true, &tx);
    if (ret != 0) {
        return ret;
    }
    if (hlo < hend) {
        ret = deps_sum(s, tx.t, TH_DEPS_HOUR, hlo, hend - 1, &sums, &cnt, &cap);
        if (ret == 0 && mlo < hlo * 60) {
            ret = deps_sum(s, tx.t, TH_DEPS_MINUTE, mlo, hlo * 60 - 1, &sums, &cnt, &cap);
        }
        if (ret == 0 && (uint64_t)hend * 60 <= mhi) {
            ret = deps_sum(s, tx.t, TH_DEPS_MINUTE, hend * 60, mhi, &sums, &cnt, &cap);
        }
    } else {
        ret = deps_sum(s, tx.t, TH_DEPS_MINUTE, mlo, mhi, &sums, &cnt, &cap);
    }
    struct th_store_dependency *deps = NULL;
    if (ret == 0 && cnt) {
        deps = th_arena_alloc(a, cnt * sizeof(*deps));
        if (!deps) {
            ret = TH_ENOMEM;
        }
    }
    size_t k = 0;
    for (size_t i = 0; ret == 0 && i < cnt; i++) {
        deps[k].call_count = sums[i].count;
        ret = th__svc_name(s, tx.t, sums[i].parent, a, &deps[k].parent);
        if (ret == 0) {
            ret = th__svc_name(s, tx.t, sums[i].child, a, &deps[k].child);
        }
        if (ret == TH_ENOENT) {
            ret = 0; /* a name pruned from the catalog: its calls are gone with it */
            continue;
        }
        k++;
    }
    th__txn_abort(&tx);
    th_free(sums);
    if (ret != 0) {
        return ret;
    }
    *out = deps;
    *n = k;
    return 0;
}
