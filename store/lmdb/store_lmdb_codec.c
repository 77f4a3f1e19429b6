/*
 * The store's records: a block's payload (OTLP resources, scopes and spans in msgpack,
 * encoded from and decoded into protobuf-c structs), its partial zstd decompression, and the
 * trace entry. Everything that reads stored bytes fails with TH_EIO on damage and never
 * reads out of bounds (tests/fuzz/store_codec).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "store/lmdb/store_lmdb_codec.h"
#include "store/lmdb/store_lmdb_keys.h"

/* ---- Block records: encoding ---------------------------------------------------------- */

static void enc_any(th__mpw_t *w, const th_otlp_any_t *v, int depth);

static void enc_attrs(th__mpw_t *w, th_otlp_kv_t *const *kv, size_t n, int depth)
{
    th__mpw_map(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        if (!kv[i]) {
            th__mpw_str(w, "", 0);
            th__mpw_nil(w);
            continue;
        }
        th__mpw_cstr(w, kv[i]->key);
        if (kv[i]->value) {
            enc_any(w, kv[i]->value, depth);
        } else {
            th__mpw_nil(w);
        }
    }
}

static void enc_any(th__mpw_t *w, const th_otlp_any_t *v, int depth)
{
    if (depth > TH_MP_MAX_DEPTH) {
        w->err = TH_EINVAL;
        return;
    }
    if (!v) {
        th__mpw_empty_any(w);
        return;
    }
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        th__mpw_cstr(w, v->string_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        th__mpw_bool(w, v->bool_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        th__mpw_int(w, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        th__mpw_double(w, v->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        th__mpw_bin(w, v->bytes_value.data, v->bytes_value.len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        const Opentelemetry__Proto__Common__V1__ArrayValue *a = v->array_value;
        size_t n = a ? a->n_values : 0;
        th__mpw_array(w, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            enc_any(w, a->values[i], depth + 1);
        }
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        const Opentelemetry__Proto__Common__V1__KeyValueList *l = v->kvlist_value;
        enc_attrs(w, l ? l->values : NULL, l ? l->n_values : 0, depth + 1);
        break;
    }
    default:
        /* not set, or string_value_strindex (profiles only, ignored as by the decoder) */
        th__mpw_empty_any(w);
        break;
    }
}

static void enc_strs(th__mpw_t *w, char *const *s, size_t n)
{
    th__mpw_array(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        th__mpw_cstr(w, s[i]);
    }
}

void th__blk_enc_resource(th__mpw_t *w, const th_otlp_resource_spans_t *rs)
{
    const Opentelemetry__Proto__Resource__V1__Resource *r = rs->resource;
    th__mpw_array(w, 5);
    th__mpw_bool(w, r != NULL);
    enc_attrs(w, r ? r->attributes : NULL, r ? r->n_attributes : 0, 0);
    th__mpw_uint(w, r ? r->dropped_attributes_count : 0);
    size_t n = r ? r->n_entity_refs : 0;
    th__mpw_array(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const Opentelemetry__Proto__Common__V1__EntityRef *e = r->entity_refs[i];
        th__mpw_array(w, 4);
        th__mpw_cstr(w, e ? e->schema_url : NULL);
        th__mpw_cstr(w, e ? e->type : NULL);
        enc_strs(w, e ? e->id_keys : NULL, e ? e->n_id_keys : 0);
        enc_strs(w, e ? e->description_keys : NULL, e ? e->n_description_keys : 0);
    }
    th__mpw_cstr(w, rs->schema_url);
}

void th__blk_enc_scope(th__mpw_t *w, uint32_t res_idx, const th_otlp_scope_spans_t *ss)
{
    const Opentelemetry__Proto__Common__V1__InstrumentationScope *s = ss->scope;
    th__mpw_array(w, 7);
    th__mpw_uint(w, res_idx);
    th__mpw_bool(w, s != NULL);
    th__mpw_cstr(w, s ? s->name : NULL);
    th__mpw_cstr(w, s ? s->version : NULL);
    enc_attrs(w, s ? s->attributes : NULL, s ? s->n_attributes : 0, 0);
    th__mpw_uint(w, s ? s->dropped_attributes_count : 0);
    th__mpw_cstr(w, ss->schema_url);
}

void th__blk_enc_span(th__mpw_t *w, uint32_t scope_idx, uint64_t base, const th_otlp_span_t *sp)
{
    th__mpw_array(w, TH_SPAN_FIELDS);
    th__mpw_uint(w, scope_idx);
    th__mpw_bin(w, sp->span_id.data, sp->span_id.len);
    th__mpw_cstr(w, sp->trace_state);
    th__mpw_bin(w, sp->parent_span_id.data, sp->parent_span_id.len);
    th__mpw_uint(w, sp->flags);
    th__mpw_cstr(w, sp->name);
    th__mpw_int(w, (int64_t)sp->kind);
    th__mpw_uint(w, sp->start_time_unix_nano - base);
    /* the end as an offset from the start: small, and exact for any pair of values */
    th__mpw_int(w, (int64_t)(sp->end_time_unix_nano - sp->start_time_unix_nano));
    enc_attrs(w, sp->attributes, sp->n_attributes, 0);
    th__mpw_uint(w, sp->dropped_attributes_count);
    th__mpw_array(w, (uint32_t)sp->n_events);
    for (size_t i = 0; i < sp->n_events; i++) {
        const Opentelemetry__Proto__Trace__V1__Span__Event *e = sp->events[i];
        th__mpw_array(w, 4);
        th__mpw_uint(w, e ? e->time_unix_nano : 0);
        th__mpw_cstr(w, e ? e->name : NULL);
        enc_attrs(w, e ? e->attributes : NULL, e ? e->n_attributes : 0, 0);
        th__mpw_uint(w, e ? e->dropped_attributes_count : 0);
    }
    th__mpw_uint(w, sp->dropped_events_count);
    th__mpw_array(w, (uint32_t)sp->n_links);
    for (size_t i = 0; i < sp->n_links; i++) {
        const Opentelemetry__Proto__Trace__V1__Span__Link *l = sp->links[i];
        th__mpw_array(w, 6);
        th__mpw_bin(w, l ? l->trace_id.data : NULL, l ? l->trace_id.len : 0);
        th__mpw_bin(w, l ? l->span_id.data : NULL, l ? l->span_id.len : 0);
        th__mpw_cstr(w, l ? l->trace_state : NULL);
        enc_attrs(w, l ? l->attributes : NULL, l ? l->n_attributes : 0, 0);
        th__mpw_uint(w, l ? l->dropped_attributes_count : 0);
        th__mpw_uint(w, l ? l->flags : 0);
    }
    th__mpw_uint(w, sp->dropped_links_count);
    if (sp->status) {
        th__mpw_array(w, 2);
        th__mpw_int(w, (int64_t)sp->status->code);
        th__mpw_cstr(w, sp->status->message);
    } else {
        th__mpw_nil(w);
    }
}

/* ---- Block records: decoding ---------------------------------------------------------- */

static char *dec_str(th__mpr_t *r, th_arena_t *a, int *ret)
{
    const char *s;
    size_t n;
    if (th__mpr_str(r, &s, &n) != 0) {
        *ret = TH_EIO;
        return NULL;
    }
    if (n == 0) {
        return (char *)protobuf_c_empty_string;
    }
    char *c = th_arena_strndup(a, s, n);
    if (!c) {
        *ret = TH_ENOMEM;
    }
    return c;
}

static int dec_bin(th__mpr_t *r, th_arena_t *a, ProtobufCBinaryData *out)
{
    const uint8_t *p;
    size_t n;
    if (th__mpr_bin(r, &p, &n) != 0) {
        return TH_EIO;
    }
    out->len = n;
    out->data = NULL;
    if (n) {
        out->data = th_arena_memdup(a, p, n);
        if (!out->data) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

static int dec_u32(th__mpr_t *r, uint32_t *v)
{
    return th__mpr_u32(r, v);
}

int th__dec_any(th__mpr_t *r, th_arena_t *a, int depth, th_otlp_any_t **out)
{
    if (depth > TH_MP_MAX_DEPTH) {
        return TH_EIO;
    }
    enum th__mp_type t = th__mpr_peek(r);
    if (t == TH_MP_NIL) {
        *out = NULL;
        return th__mpr_nil(r);
    }
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    *v = (th_otlp_any_t)OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    int ret = 0;
    switch (t) {
    case TH_MP_STR:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = dec_str(r, a, &ret);
        break;
    case TH_MP_BOOL: {
        bool b = false;
        ret = th__mpr_bool(r, &b);
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        v->bool_value = b;
        break;
    }
    case TH_MP_UINT:
    case TH_MP_INT:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        ret = th__mpr_int(r, &v->int_value);
        break;
    case TH_MP_FLOAT:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        ret = th__mpr_double(r, &v->double_value);
        break;
    case TH_MP_BIN:
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
        ret = dec_bin(r, a, &v->bytes_value);
        break;
    case TH_MP_EXT: {
        int8_t et;
        const uint8_t *p;
        size_t n;
        ret = th__mpr_ext(r, &et, &p, &n);
        if (ret == 0 && (et != 0 || n != 0)) {
            ret = TH_EIO;
        }
        break;
    }
    case TH_MP_ARRAY: {
        uint32_t n;
        if (th__mpr_array(r, &n) != 0) {
            return TH_EIO;
        }
        Opentelemetry__Proto__Common__V1__ArrayValue *av = th_arena_alloc(a, sizeof(*av));
        if (!av) {
            return TH_ENOMEM;
        }
        *av = (Opentelemetry__Proto__Common__V1__ArrayValue)
            OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
        if (n) {
            av->values = th_arena_alloc(a, n * sizeof(*av->values));
            if (!av->values) {
                return TH_ENOMEM;
            }
        }
        for (uint32_t i = 0; i < n && ret == 0; i++) {
            th_otlp_any_t *e = NULL;
            ret = th__dec_any(r, a, depth + 1, &e);
            if (ret == 0 && !e) {
                ret = TH_EIO; /* an array element is always a value */
            }
            av->values[i] = e;
            av->n_values = i + 1;
        }
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
        v->array_value = av;
        break;
    }
    case TH_MP_MAP: {
        Opentelemetry__Proto__Common__V1__KeyValueList *l = th_arena_alloc(a, sizeof(*l));
        if (!l) {
            return TH_ENOMEM;
        }
        *l = (Opentelemetry__Proto__Common__V1__KeyValueList)
            OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
        /* nested maps count towards the same depth limit */
        if (depth + 1 > TH_MP_MAX_DEPTH) {
            return TH_EIO;
        }
        uint32_t n;
        if (th__mpr_map(r, &n) != 0) {
            return TH_EIO;
        }
        if (n) {
            l->values = th_arena_alloc(a, n * sizeof(*l->values));
            if (!l->values) {
                return TH_ENOMEM;
            }
        }
        for (uint32_t i = 0; i < n && ret == 0; i++) {
            th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
            if (!kv) {
                return TH_ENOMEM;
            }
            *kv = (th_otlp_kv_t)OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
            kv->key = dec_str(r, a, &ret);
            if (ret == 0) {
                ret = th__dec_any(r, a, depth + 2, &kv->value);
            }
            l->values[i] = kv;
            l->n_values = i + 1;
        }
        v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
        v->kvlist_value = l;
        break;
    }
    default:
        ret = TH_EIO;
        break;
    }
    if (ret == 0) {
        *out = v;
    }
    return ret;
}

int th__dec_attrs(th__mpr_t *r, th_arena_t *a, th_otlp_kv_t ***out, size_t *n_out)
{
    uint32_t n;
    if (th__mpr_map(r, &n) != 0) {
        return TH_EIO;
    }
    *out = NULL;
    *n_out = 0;
    if (!n) {
        return 0;
    }
    th_otlp_kv_t **kvs = th_arena_alloc(a, n * sizeof(*kvs));
    th_otlp_kv_t *arr = th_arena_alloc(a, n * sizeof(*arr));
    if (!kvs || !arr) {
        return TH_ENOMEM;
    }
    int ret = 0;
    for (uint32_t i = 0; i < n; i++) {
        th_otlp_kv_t *kv = &arr[i];
        *kv = (th_otlp_kv_t)OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        kv->key = dec_str(r, a, &ret);
        if (ret != 0) {
            return ret;
        }
        ret = th__dec_any(r, a, 1, &kv->value);
        if (ret != 0) {
            return ret;
        }
        kvs[i] = kv;
    }
    *out = kvs;
    *n_out = n;
    return 0;
}

static int dec_strs(th__mpr_t *r, th_arena_t *a, char ***out, size_t *n_out)
{
    uint32_t n;
    if (th__mpr_array(r, &n) != 0) {
        return TH_EIO;
    }
    *n_out = 0;
    *out = NULL;
    if (!n) {
        return 0;
    }
    char **v = th_arena_alloc(a, n * sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    int ret = 0;
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        v[i] = dec_str(r, a, &ret);
    }
    *out = v;
    *n_out = n;
    return ret;
}

int th__blk_view_open(struct th__blk_view *v, const uint8_t *buf, size_t len)
{
    memset(v, 0, sizeof(*v));
    if (!buf || !len) {
        return TH_EIO;
    }
    v->buf = buf;
    v->len = len;
    th__mpr_t r = {buf, buf + len};
    uint32_t n, version;
    if (th__mpr_array(&r, &n) != 0 || n != 4 || th__mpr_u32(&r, &version) != 0 ||
        version != TH_BLOCK_VERSION || th__mpr_u32(&r, &v->n_res) != 0 ||
        th__mpr_u32(&r, &v->n_scopes) != 0 || th__mpr_u32(&r, &v->n_groups) != 0) {
        return TH_EIO;
    }
    /* each record takes at least one byte */
    if ((uint64_t)v->n_res + v->n_scopes > len) {
        return TH_EIO;
    }
    size_t nr = v->n_res ? v->n_res : 1;
    size_t ns = v->n_scopes ? v->n_scopes : 1;
    v->res_off = th_malloc(2 * nr * sizeof(uint32_t));
    v->scope_off = th_malloc(3 * ns * sizeof(uint32_t));
    if (!v->res_off || !v->scope_off) {
        th__blk_view_free(v);
        return TH_ENOMEM;
    }
    v->res_end = v->res_off + nr;
    v->scope_end = v->scope_off + ns;
    v->scope_res = v->scope_off + 2 * ns;
    for (uint32_t i = 0; i < v->n_res; i++) {
        v->res_off[i] = (uint32_t)(r.p - buf);
        if (th__mpr_skip(&r) != 0) {
            goto bad;
        }
        v->res_end[i] = (uint32_t)(r.p - buf);
    }
    for (uint32_t i = 0; i < v->n_scopes; i++) {
        v->scope_off[i] = (uint32_t)(r.p - buf);
        th__mpr_t s = r;
        uint32_t fields;
        if (th__mpr_array(&s, &fields) != 0 || fields != 7 ||
            th__mpr_u32(&s, &v->scope_res[i]) != 0 || v->scope_res[i] >= v->n_res ||
            th__mpr_skip(&r) != 0) {
            goto bad;
        }
        v->scope_end[i] = (uint32_t)(r.p - buf);
    }
    v->groups_off = (uint32_t)(r.p - buf);
    return 0;
bad:
    th__blk_view_free(v);
    return TH_EIO;
}

void th__blk_view_free(struct th__blk_view *v)
{
    th_free(v->res_off);
    th_free(v->scope_off);
    v->res_off = v->res_end = NULL;
    v->scope_off = v->scope_end = v->scope_res = NULL;
}

int th__blk_dec_resource(const struct th__blk_view *v, uint32_t idx, th_arena_t *a,
                         th_otlp_resource_spans_t **out)
{
    if (idx >= v->n_res) {
        return TH_EIO;
    }
    th__mpr_t r = {v->buf + v->res_off[idx], v->buf + v->res_end[idx]};
    th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
    Opentelemetry__Proto__Resource__V1__Resource *res = th_arena_alloc(a, sizeof(*res));
    if (!rs || !res) {
        return TH_ENOMEM;
    }
    *rs = (th_otlp_resource_spans_t)OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    *res = (Opentelemetry__Proto__Resource__V1__Resource)
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    uint32_t n;
    bool present;
    if (th__mpr_array(&r, &n) != 0 || n != 5 || th__mpr_bool(&r, &present) != 0) {
        return TH_EIO;
    }
    int ret = th__dec_attrs(&r, a, &res->attributes, &res->n_attributes);
    if (ret != 0) {
        return ret;
    }
    uint32_t refs;
    if (dec_u32(&r, &res->dropped_attributes_count) != 0 || th__mpr_array(&r, &refs) != 0) {
        return TH_EIO;
    }
    if (refs) {
        res->entity_refs = th_arena_alloc(a, refs * sizeof(*res->entity_refs));
        if (!res->entity_refs) {
            return TH_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < refs; i++) {
        Opentelemetry__Proto__Common__V1__EntityRef *e = th_arena_alloc(a, sizeof(*e));
        if (!e) {
            return TH_ENOMEM;
        }
        *e = (Opentelemetry__Proto__Common__V1__EntityRef)
            OPENTELEMETRY__PROTO__COMMON__V1__ENTITY_REF__INIT;
        uint32_t f;
        if (th__mpr_array(&r, &f) != 0 || f != 4) {
            return TH_EIO;
        }
        e->schema_url = dec_str(&r, a, &ret);
        if (ret == 0) {
            e->type = dec_str(&r, a, &ret);
        }
        if (ret == 0) {
            ret = dec_strs(&r, a, &e->id_keys, &e->n_id_keys);
        }
        if (ret == 0) {
            ret = dec_strs(&r, a, &e->description_keys, &e->n_description_keys);
        }
        if (ret != 0) {
            return ret;
        }
        res->entity_refs[i] = e;
        res->n_entity_refs = i + 1;
    }
    rs->schema_url = dec_str(&r, a, &ret);
    if (ret != 0) {
        return ret;
    }
    rs->resource = present ? res : NULL;
    *out = rs;
    return 0;
}

int th__blk_dec_scope(const struct th__blk_view *v, uint32_t idx, th_arena_t *a,
                      th_otlp_scope_spans_t **out)
{
    if (idx >= v->n_scopes) {
        return TH_EIO;
    }
    th__mpr_t r = {v->buf + v->scope_off[idx], v->buf + v->scope_end[idx]};
    th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
    Opentelemetry__Proto__Common__V1__InstrumentationScope *s = th_arena_alloc(a, sizeof(*s));
    if (!ss || !s) {
        return TH_ENOMEM;
    }
    *ss = (th_otlp_scope_spans_t)OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    *s = (Opentelemetry__Proto__Common__V1__InstrumentationScope)
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    uint32_t n, res_idx;
    bool present;
    int ret = 0;
    if (th__mpr_array(&r, &n) != 0 || n != 7 || dec_u32(&r, &res_idx) != 0 ||
        th__mpr_bool(&r, &present) != 0) {
        return TH_EIO;
    }
    s->name = dec_str(&r, a, &ret);
    if (ret == 0) {
        s->version = dec_str(&r, a, &ret);
    }
    if (ret == 0) {
        ret = th__dec_attrs(&r, a, &s->attributes, &s->n_attributes);
    }
    if (ret == 0 && dec_u32(&r, &s->dropped_attributes_count) != 0) {
        ret = TH_EIO;
    }
    if (ret == 0) {
        ss->schema_url = dec_str(&r, a, &ret);
    }
    if (ret != 0) {
        return ret;
    }
    ss->scope = present ? s : NULL;
    *out = ss;
    return 0;
}

static int dec_events(th__mpr_t *r, th_arena_t *a, th_otlp_span_t *sp)
{
    uint32_t n;
    if (th__mpr_array(r, &n) != 0) {
        return TH_EIO;
    }
    if (!n) {
        return 0;
    }
    sp->events = th_arena_alloc(a, n * sizeof(*sp->events));
    Opentelemetry__Proto__Trace__V1__Span__Event *arr = th_arena_alloc(a, n * sizeof(*arr));
    if (!sp->events || !arr) {
        return TH_ENOMEM;
    }
    int ret = 0;
    for (uint32_t i = 0; i < n; i++) {
        Opentelemetry__Proto__Trace__V1__Span__Event *e = &arr[i];
        *e = (Opentelemetry__Proto__Trace__V1__Span__Event)
            OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
        uint32_t f;
        if (th__mpr_array(r, &f) != 0 || f != 4 || th__mpr_uint(r, &e->time_unix_nano) != 0) {
            return TH_EIO;
        }
        e->name = dec_str(r, a, &ret);
        if (ret == 0) {
            ret = th__dec_attrs(r, a, &e->attributes, &e->n_attributes);
        }
        if (ret == 0 && dec_u32(r, &e->dropped_attributes_count) != 0) {
            ret = TH_EIO;
        }
        if (ret != 0) {
            return ret;
        }
        sp->events[i] = e;
        sp->n_events = i + 1;
    }
    return 0;
}

static int dec_links(th__mpr_t *r, th_arena_t *a, th_otlp_span_t *sp)
{
    uint32_t n;
    if (th__mpr_array(r, &n) != 0) {
        return TH_EIO;
    }
    if (!n) {
        return 0;
    }
    sp->links = th_arena_alloc(a, n * sizeof(*sp->links));
    Opentelemetry__Proto__Trace__V1__Span__Link *arr = th_arena_alloc(a, n * sizeof(*arr));
    if (!sp->links || !arr) {
        return TH_ENOMEM;
    }
    int ret = 0;
    for (uint32_t i = 0; i < n; i++) {
        Opentelemetry__Proto__Trace__V1__Span__Link *l = &arr[i];
        *l = (Opentelemetry__Proto__Trace__V1__Span__Link)
            OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
        uint32_t f;
        if (th__mpr_array(r, &f) != 0 || f != 6) {
            return TH_EIO;
        }
        ret = dec_bin(r, a, &l->trace_id);
        if (ret == 0) {
            ret = dec_bin(r, a, &l->span_id);
        }
        if (ret == 0) {
            l->trace_state = dec_str(r, a, &ret);
        }
        if (ret == 0) {
            ret = th__dec_attrs(r, a, &l->attributes, &l->n_attributes);
        }
        if (ret == 0 &&
            (dec_u32(r, &l->dropped_attributes_count) != 0 || dec_u32(r, &l->flags) != 0)) {
            ret = TH_EIO;
        }
        if (ret != 0) {
            return ret;
        }
        sp->links[i] = l;
        sp->n_links = i + 1;
    }
    return 0;
}

static int dec_span(th__mpr_t *r, th_arena_t *a, uint64_t base, uint32_t n_scopes,
                    uint32_t *scope_idx, th_otlp_span_t *sp)
{
    uint32_t n;
    if (th__mpr_array(r, &n) != 0 || n != TH_SPAN_FIELDS || dec_u32(r, scope_idx) != 0 ||
        *scope_idx >= n_scopes) {
        return TH_EIO;
    }
    int ret = dec_bin(r, a, &sp->span_id);
    if (ret == 0) {
        sp->trace_state = dec_str(r, a, &ret);
    }
    if (ret == 0) {
        ret = dec_bin(r, a, &sp->parent_span_id);
    }
    if (ret != 0) {
        return ret;
    }
    int64_t kind, dur;
    uint64_t start;
    if (dec_u32(r, &sp->flags) != 0) {
        return TH_EIO;
    }
    sp->name = dec_str(r, a, &ret);
    if (ret != 0) {
        return ret;
    }
    if (th__mpr_int(r, &kind) != 0 || kind < INT32_MIN || kind > INT32_MAX ||
        th__mpr_uint(r, &start) != 0 || th__mpr_int(r, &dur) != 0) {
        return TH_EIO;
    }
    sp->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
    sp->start_time_unix_nano = base + start;
    sp->end_time_unix_nano = sp->start_time_unix_nano + (uint64_t)dur;
    ret = th__dec_attrs(r, a, &sp->attributes, &sp->n_attributes);
    if (ret == 0 && dec_u32(r, &sp->dropped_attributes_count) != 0) {
        ret = TH_EIO;
    }
    if (ret == 0) {
        ret = dec_events(r, a, sp);
    }
    if (ret == 0 && dec_u32(r, &sp->dropped_events_count) != 0) {
        ret = TH_EIO;
    }
    if (ret == 0) {
        ret = dec_links(r, a, sp);
    }
    if (ret == 0 && dec_u32(r, &sp->dropped_links_count) != 0) {
        ret = TH_EIO;
    }
    if (ret != 0) {
        return ret;
    }
    if (th__mpr_peek(r) == TH_MP_NIL) {
        return th__mpr_nil(r);
    }
    Opentelemetry__Proto__Trace__V1__Status *st = th_arena_alloc(a, sizeof(*st));
    if (!st) {
        return TH_ENOMEM;
    }
    *st = (Opentelemetry__Proto__Trace__V1__Status)OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    int64_t code;
    if (th__mpr_array(r, &n) != 0 || n != 2 || th__mpr_int(r, &code) != 0 || code < INT32_MIN ||
        code > INT32_MAX) {
        return TH_EIO;
    }
    st->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)code;
    st->message = dec_str(r, a, &ret);
    sp->status = st;
    return ret;
}

int th__blk_dec_group(th__mpr_t *r, uint32_t n_scopes, th_arena_t *a,
                      int (*on_span)(void *ctx, uint32_t scope_idx, th_otlp_span_t *sp), void *ctx)
{
    uint32_t n, n_spans;
    const uint8_t *tid;
    size_t tid_len;
    uint64_t base;
    if (th__mpr_array(r, &n) != 0 || n != 3 || th__mpr_bin(r, &tid, &tid_len) != 0 ||
        tid_len != 16 || th__mpr_uint(r, &base) != 0 || th__mpr_array(r, &n_spans) != 0) {
        return TH_EIO;
    }
    uint8_t *trace_id = th_arena_memdup(a, tid, 16);
    if (!trace_id) {
        return TH_ENOMEM;
    }
    for (uint32_t i = 0; i < n_spans; i++) {
        th_otlp_span_t *sp = th_arena_alloc(a, sizeof(*sp));
        if (!sp) {
            return TH_ENOMEM;
        }
        *sp = (th_otlp_span_t)OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
        sp->trace_id.data = trace_id;
        sp->trace_id.len = 16;
        uint32_t scope_idx;
        int ret = dec_span(r, a, base, n_scopes, &scope_idx, sp);
        if (ret == 0) {
            ret = on_span(ctx, scope_idx, sp);
        }
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

/* ---- Partial decompression ---------------------------------------------------------- */

/* One decompression context per thread that reads, kept for the thread's life. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_key_make(void)
{
    pthread_key_create(&dctx_key, dctx_free);
}

static ZSTD_DCtx *thread_dctx(void)
{
    pthread_once(&dctx_once, dctx_key_make);
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d) {
        d = ZSTD_createDCtx();
        if (d && pthread_setspecific(dctx_key, d) != 0) {
            ZSTD_freeDCtx(d);
            d = NULL;
        }
    }
    return d;
}

int th__zstd_partial(const uint8_t *comp, size_t len, size_t need, th__mpw_t *out)
{
    unsigned long long size = ZSTD_getFrameContentSize(comp, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > TH_PAYLOAD_MAX) {
        return TH_EIO;
    }
    size_t want = need < size ? need : (size_t)size;
    ZSTD_DCtx *d = thread_dctx();
    if (!d) {
        return TH_ENOMEM;
    }
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {comp, len, 0};
    /* the output grows as bytes come out: a damaged header claiming a huge size fails on
     * its first bytes instead of costing an allocation of that size */
    out->len = 0;
    size_t cap = TH_MIN(want, TH_MAX(8 * len, (size_t)65536));
    ZSTD_outBuffer o = {NULL, 0, 0};
    /* stop as soon as the bytes asked for are out: a trace near the start of a block costs
     * only that much decompression */
    while (o.pos < want) {
        if (o.pos == o.size) {
            if (!th__mpw_room(out, cap - o.pos)) {
                return TH_ENOMEM;
            }
            o.dst = out->p;
            o.size = cap;
            cap = TH_MIN(want, 2 * cap);
        }
        size_t r = ZSTD_decompressStream(d, &o, &in);
        if (ZSTD_isError(r)) {
            return TH_EIO;
        }
        out->len = o.pos;
        if (r == 0) {
            break; /* the frame is complete */
        }
        if (in.pos == in.size && o.pos < o.size) {
            return TH_EIO; /* wants more input than there is: a truncated frame */
        }
    }
    if (o.pos < want) {
        return TH_EIO;
    }
    out->len = o.pos;
    return 0;
}

/* ---- Trace entries -------------------------------------------------------------------- */

static int get_u32v(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    uint64_t u;
    if (th__varint_get(p, end, &u) != 0 || u > UINT32_MAX) {
        return TH_EIO;
    }
    *v = (uint32_t)u;
    return 0;
}

int th__trace_entry_parse(const uint8_t *p, size_t len, struct th__trace_entry *e)
{
    const uint8_t *end = p + len;
    uint64_t span;
    if (len < 1 || *p++ != TH_TRACE_ENTRY_VERSION || get_u32v(&p, end, &e->raw_off) != 0 ||
        get_u32v(&p, end, &e->raw_len) != 0 || get_u32v(&p, end, &e->n_spans) != 0 || end - p < 8) {
        return TH_EIO;
    }
    e->min_start = th__be64_get(p);
    p += 8;
    if (th__varint_get(&p, end, &span) != 0 || get_u32v(&p, end, &e->n_runs) != 0) {
        return TH_EIO;
    }
    e->max_end = e->min_start + span;
    e->runs = p;
    uint64_t total = 0;
    for (uint32_t i = 0; i < e->n_runs; i++) {
        uint32_t svc, count;
        if (get_u32v(&p, end, &svc) != 0 || get_u32v(&p, end, &count) != 0) {
            return TH_EIO;
        }
        total += count;
    }
    if (total != e->n_spans) {
        return TH_EIO;
    }
    e->runs_end = p;
    if ((uint64_t)(end - p) < (uint64_t)e->n_spans * 8) {
        return TH_EIO;
    }
    e->ids = p;
    p += (size_t)e->n_spans * 8;
    if (get_u32v(&p, end, &e->n_roots) != 0) {
        return TH_EIO;
    }
    e->roots = p;
    for (uint32_t i = 0; i < e->n_roots; i++) {
        struct th__root root;
        if (th__trace_entry_root(&p, end, &root) != 0) {
            return TH_EIO;
        }
    }
    e->roots_end = p;
    return p == end ? 0 : TH_EIO;
}

int th__trace_entry_svcs(const struct th__trace_entry *e, uint32_t *svcs)
{
    const uint8_t *p = e->runs;
    size_t k = 0;
    for (uint32_t i = 0; i < e->n_runs; i++) {
        uint32_t svc, count;
        if (get_u32v(&p, e->runs_end, &svc) != 0 || get_u32v(&p, e->runs_end, &count) != 0 ||
            count > e->n_spans - k) {
            return TH_EIO;
        }
        for (uint32_t j = 0; j < count; j++) {
            svcs[k++] = svc;
        }
    }
    return k == e->n_spans ? 0 : TH_EIO;
}

int th__trace_entry_root(const uint8_t **pp, const uint8_t *end, struct th__root *out)
{
    const uint8_t *p = *pp;
    if (end - p < 8) {
        return TH_EIO;
    }
    out->parent = th__be64_get(p);
    p += 8;
    if (get_u32v(&p, end, &out->svc) != 0 || get_u32v(&p, end, &out->minute) != 0) {
        return TH_EIO;
    }
    *pp = p;
    return 0;
}
