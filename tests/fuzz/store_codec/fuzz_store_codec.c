/*
 * libFuzzer target for the store's record decoders: a store file can be damaged, and
 * decoding any stored value must fail cleanly (TH_EIO), never crash or read out of bounds.
 * The first input byte picks the decoder; the rest is the stored value:
 *   0,1 a block payload: its tables, every resource, scope and group, and the search's span
 *       walker over it (with a query picked from the selector's upper bits);
 *   2   a trace entry, its services and unresolved roots;
 *   3   a block meta record and the lists retention walks;
 *   4   a block index or summary value and their duration frontiers;
 *   5   a tag table part;
 *   6   a zstd frame, partially and fully decompressed (then walked as a payload);
 *   7   loose msgpack: skipping and decoding attribute values.
 * The search walker is static in store_lmdb_read.c, so that file is included here (the
 * library's copy of it is then not linked in).
 */
#include "store/lmdb/store_lmdb_read.c"

static int on_span(void *ctx, uint32_t scope_idx, th_otlp_span_t *sp)
{
    (void)ctx;
    (void)scope_idx;
    (void)sp;
    return 0;
}

static void payload(const uint8_t *data, size_t size, uint8_t sel, th_arena_t *a)
{
    struct th__blk_view v;
    if (th__blk_view_open(&v, data, size) != 0) {
        return;
    }
    for (uint32_t i = 0; i < v.n_res; i++) {
        th_otlp_resource_spans_t *rs;
        th__blk_dec_resource(&v, i, a, &rs);
    }
    for (uint32_t i = 0; i < v.n_scopes; i++) {
        th_otlp_scope_spans_t *ss;
        th__blk_dec_scope(&v, i, a, &ss);
    }
    th__mpr_t r = {data + v.groups_off, data + size};
    for (uint32_t g = 0; g < v.n_groups; g++) {
        if (th__blk_dec_group(&r, v.n_scopes, a, on_span, NULL) != 0) {
            break;
        }
    }
    /* the search's walker, with a query shaped by the selector */
    static const char *keys[] = {"error", "k", "resource.k", "scope.name", "span.kind", "d"};
    static const char *vals[] = {"true", "v", "1", "lib", "server", "0.5"};
    struct th_trace_query q = {
        .service = "svc",
        .operation = sel & 0x10 ? "op" : NULL,
        .span_kind = sel & 0x20 ? 2 : 0,
        .tag_keys = keys,
        .tag_values = vals,
        .n_tags = (sel >> 6) * 2,
        .duration_min_ns = sel & 0x08 ? 1000 : 0,
        .limit = 5,
    };
    struct search x = {.q = &q, .limit = 5, .smax = UINT64_MAX, .dmax = UINT64_MAX};
    x.dmin = q.duration_min_ns;
    if (parse_tags(&x) == 0) {
        eval_block(&x, &v);
    }
    th_free(x.tags);
    th_free(x.cands);
    th_free(x.slots);
    th__mpw_free(&x.tmp);
    th_arena_destroy(x.scratch);
    th__blk_view_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t sel = data[0];
    data++;
    size--;
    th_arena_t *a = th_arena_create(0, 64u << 20);
    switch (sel & 7) {
    case 0:
    case 1:
        payload(data, size, sel, a);
        break;
    case 2: {
        struct th__trace_entry e;
        if (th__trace_entry_parse(data, size, &e) == 0) {
            uint32_t *svcs = th_malloc((e.n_spans ? e.n_spans : 1) * sizeof(*svcs));
            if (svcs) {
                th__trace_entry_svcs(&e, svcs);
                th_free(svcs);
            }
            const uint8_t *p = e.roots;
            struct th__root root;
            for (uint32_t i = 0; i < e.n_roots; i++) {
                if (th__trace_entry_root(&p, e.roots_end, &root) != 0) {
                    break;
                }
            }
        }
        break;
    }
    case 3: {
        struct th__block_meta m;
        if (th__block_meta_parse(data, size, &m) == 0) {
            const uint8_t *p = m.traces;
            for (uint32_t i = 0; i < m.n_traces; i++) {
                uint64_t subs;
                p += 16;
                if (th__varint_get(&p, m.traces_end, &subs) != 0) {
                    break;
                }
            }
            p = m.edges;
            for (uint32_t i = 0; i < 4 * m.n_edges; i++) {
                uint64_t v;
                if (th__varint_get(&p, m.edges_end, &v) != 0) {
                    break;
                }
            }
        }
        break;
    }
    case 4: {
        struct th__blkidx b;
        struct th__svcsum sv;
        const struct th__stats *st = NULL;
        if (th__blkidx_parse(data, size, &b) == 0) {
            st = &b.st;
        } else if (th__svcsum_parse(data, size, &sv) == 0) {
            st = &sv.st;
            uint64_t sum = 0;
            for (unsigned i = 0; i < sv.n_blocks; i++) {
                sum += th__be64_get(sv.blocks + 16 * i);
            }
            (void)sum;
        }
        if (st) {
            struct search x = {.smax = UINT64_MAX, .dmin = 5, .dmax = 1000};
            uint64_t bound;
            bool possible = true;
            frontier_bound(st->longs, st->n_long, st->long_cut, true, x.dmin, 1, 2, &bound,
                           &possible);
            frontier_bound(st->shorts, st->n_short, st->short_cut, false, x.dmax, 1, 2, &bound,
                           &possible);
        }
        break;
    }
    case 5: {
        if (size >= 4) {
            uint32_t d;
            th__tags_find(data + 4, size - 4, th__be32_get(data), &d);
        }
        break;
    }
    case 6: {
        th__mpw_t out = {0};
        size_t need = size >= 2 ? (size_t)data[0] << 8 | data[1] : 0;
        th__zstd_partial(data, size, need, &out);
        if (th__zstd_partial(data, size, SIZE_MAX, &out) == 0) {
            payload(out.p, out.len, sel, a);
        }
        th__mpw_free(&out);
        break;
    }
    case 7: {
        th__mpr_t r = {data, data + size};
        while (r.p < r.end && th__mpr_skip(&r) == 0) {
        }
        r.p = data;
        th_otlp_any_t *v;
        while (r.p < r.end && th__dec_any(&r, a, 0, &v) == 0) {
        }
        th_otlp_kv_t **kv;
        size_t n;
        r.p = data;
        th__dec_attrs(&r, a, &kv, &n);
        break;
    }
    }
    th_arena_destroy(a);
    return 0;
}
