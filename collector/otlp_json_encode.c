/*
 * OTLP/JSON encoding of a request (the file exporter, debug output). It writes exactly what
 * th_otlp_decode_json reads back to the same message: present-but-empty messages as `{}`
 * (their presence changes the protobuf bytes), defaults and empty repeated fields omitted,
 * 64-bit integers as strings (JSON numbers lose precision past 2^53), doubles as the
 * shortest text that round-trips.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th/base64.h"
#include "collector/otlp_internal.h"

/* The writer: errors are sticky, so the encoders below need no checks between writes. */
struct jw {
    th_buf_t *b;
    int rc;
};

static void raw(struct jw *w, const void *p, size_t n)
{
    if (!w->rc) {
        w->rc = th_buf_append(w->b, p, n);
    }
}

#define LIT(w, s) raw((w), (s), sizeof(s) - 1)

/* Make room for @p n bytes; @return where to write them, or NULL after an error. */
static uint8_t *room(struct jw *w, size_t n)
{
    if (w->rc || (w->rc = th_buf_reserve(w->b, n))) {
        return NULL;
    }
    return w->b->ptr + w->b->len;
}

void th_hex_encode(const uint8_t *p, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Length of the well-formed UTF-8 sequence at p (lead >= 0x80), or 0. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
    size_t n = (size_t)(end - p);
    if (n > 4) {
        n = 4;
    }
    for (size_t k = 2; k <= n; k++) {
        if (th__utf8_check(p, k) == TH__UTF8_OK) {
            return k;
        }
    }
    return 0;
}

/*
 * Escape one chunk of a string. Each input byte becomes at most 6 output bytes (\u00XX, or
 * \ufffd for a byte of invalid UTF-8); a sequence never straddles chunks because the chunk
 * end is moved to a sequence boundary by the caller.
 */
static void str_chunk(struct jw *w, const uint8_t *p, const uint8_t *end)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t *o = room(w, (size_t)(end - p) * 6);
    if (!o) {
        return;
    }
    uint8_t *start = o;
    while (p < end) {
        uint8_t c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = c;
            p++;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
            p++;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = (uint8_t)hex[c >> 4];
            o[5] = (uint8_t)hex[c & 15];
            o += 6;
            p++;
        } else {
            size_t k = utf8_len(p, end);
            if (k) {
                memcpy(o, p, k);
                o += k;
                p += k;
            } else {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                p++;
            }
        }
    }
    w->b->len += (size_t)(o - start);
}

/* A JSON string: quotes, `"` `\` and control characters escaped, invalid UTF-8 as U+FFFD. */
static void str(struct jw *w, const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    const uint8_t *end = p + n;
    LIT(w, "\"");
    /* In chunks, so a long string does not reserve six times its size at once. */
    while (p < end) {
        const uint8_t *stop = end - p > 4096 ? p + 4096 : end;
        while (stop < end && (*stop & 0xc0) == 0x80 && stop > p + 4092) {
            stop--; /* do not split a UTF-8 sequence */
        }
        str_chunk(w, p, stop);
        p = stop;
    }
    LIT(w, "\"");
}

static void cstr(struct jw *w, const char *s)
{
    str(w, s ? s : "", s ? strlen(s) : 0);
}

static bool nonempty(const char *s)
{
    return s && s[0];
}

/* `"name":`, preceded by a comma unless it is the first member. */
static void key(struct jw *w, bool *first, const char *name)
{
    size_t n = strlen(name);
    uint8_t *o = room(w, n + 4);
    if (!o) {
        return;
    }
    uint8_t *start = o;
    if (!*first) {
        *o++ = ',';
    }
    *first = false;
    *o++ = '"';
    memcpy(o, name, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    w->b->len += (size_t)(o - start);
}

static void u64_num(struct jw *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    raw(w, tmp, (size_t)n);
}

/* 64-bit integers are strings in OTLP/JSON (ProtoJSON), so JavaScript does not round them. */
static void u64_str(struct jw *w, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "\"%llu\"", (unsigned long long)v);
    raw(w, tmp, (size_t)n);
}

static void i64_str(struct jw *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "\"%lld\"", (long long)v);
    raw(w, tmp, (size_t)n);
}

static void hex_id(struct jw *w, const ProtobufCBinaryData *id)
{
    uint8_t *o = room(w, id->len * 2 + 3);
    if (!o) {
        return;
    }
    o[0] = '"';
    th_hex_encode(id->data, id->len, (char *)o + 1);
    o[1 + id->len * 2] = '"';
    w->b->len += id->len * 2 + 2;
}

static void base64(struct jw *w, const ProtobufCBinaryData *b)
{
    uint8_t *o = room(w, th_base64_encoded_len(b->len, true) + 2);
    if (!o) {
        return;
    }
    size_t n = th_base64_encode(b->data, b->len, (char *)o + 1, true);
    o[0] = '"';
    o[n + 1] = '"';
    w->b->len += n + 2;
}

/*
 * The shortest %g text that reads back to exactly @p v. For a normal double, if some text of
 * 15 digits or fewer reads back to it, the 15-digit rounding is that text (with %g dropping
 * the trailing zeros), so trying 15, 16, 17 finds the shortest ("0.1", not
 * "0.10000000000000001"); 17 digits always read back.
 */
static void dbl(struct jw *w, double v)
{
    if (isnan(v)) {
        LIT(w, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        if (v > 0) {
            LIT(w, "\"Infinity\"");
        } else {
            LIT(w, "\"-Infinity\"");
        }
        return;
    }
    char tmp[40];
    int n = 0;
    /* Subnormals carry fewer significant digits: search them from 1. */
    int prec = fabs(v) < DBL_MIN && v != 0 ? 1 : 15;
    for (; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    raw(w, tmp, (size_t)n);
}

static void i32_num(struct jw *w, int32_t v)
{
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "%d", (int)v);
    raw(w, tmp, (size_t)n);
}

static void enc_kvs(struct jw *w, bool *first, const char *name, size_t n,
                    th_otlp_kv_t *const *kvs);

static void enc_any(struct jw *w, const th_otlp_any_t *a)
{
    bool first = true;
    LIT(w, "{");
    switch (a->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        /* protobuf-c does not pack a oneof string left at its default pointer: neither do we. */
        if (a->string_value && a->string_value != (const char *)protobuf_c_empty_string) {
            key(w, &first, "stringValue");
            cstr(w, a->string_value);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        key(w, &first, "boolValue");
        if (a->bool_value) {
            LIT(w, "true");
        } else {
            LIT(w, "false");
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        key(w, &first, "intValue");
        i64_str(w, a->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        key(w, &first, "doubleValue");
        dbl(w, a->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        if (a->array_value) {
            bool f2 = true;
            key(w, &first, "arrayValue");
            LIT(w, "{");
            if (a->array_value->n_values) {
                key(w, &f2, "values");
                LIT(w, "[");
                for (size_t i = 0; i < a->array_value->n_values; i++) {
                    if (i) {
                        LIT(w, ",");
                    }
                    enc_any(w, a->array_value->values[i]);
                }
                LIT(w, "]");
            }
            LIT(w, "}");
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        if (a->kvlist_value) {
            bool f2 = true;
            key(w, &first, "kvlistValue");
            LIT(w, "{");
            enc_kvs(w, &f2, "values", a->kvlist_value->n_values, a->kvlist_value->values);
            LIT(w, "}");
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        key(w, &first, "bytesValue");
        base64(w, &a->bytes_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX:
        key(w, &first, "stringValueStrindex");
        i32_num(w, a->string_value_strindex);
        break;
    default:
        break;
    }
    LIT(w, "}");
}

static void enc_kv(struct jw *w, const th_otlp_kv_t *kv)
{
    bool first = true;
    LIT(w, "{");
    if (nonempty(kv->key)) {
        key(w, &first, "key");
        cstr(w, kv->key);
    }
    if (kv->value) {
        key(w, &first, "value");
        enc_any(w, kv->value);
    }
    if (kv->key_strindex) {
        key(w, &first, "keyStrindex");
        i32_num(w, kv->key_strindex);
    }
    LIT(w, "}");
}

static void enc_kvs(struct jw *w, bool *first, const char *name, size_t n, th_otlp_kv_t *const *kvs)
{
    if (!n) {
        return;
    }
    key(w, first, name);
    LIT(w, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) {
            LIT(w, ",");
        }
        enc_kv(w, kvs[i]);
    }
    LIT(w, "]");
}

static void field_str(struct jw *w, bool *first, const char *name, const char *v)
{
    if (nonempty(v)) {
        key(w, first, name);
        cstr(w, v);
    }
}

static void field_u32(struct jw *w, bool *first, const char *name, uint32_t v)
{
    if (v) {
        key(w, first, name);
        u64_num(w, v);
    }
}

static void field_i32(struct jw *w, bool *first, const char *name, int32_t v)
{
    if (v) {
        key(w, first, name);
        i32_num(w, v);
    }
}

static void field_u64(struct jw *w, bool *first, const char *name, uint64_t v)
{
    if (v) {
        key(w, first, name);
        u64_str(w, v);
    }
}

static void field_id(struct jw *w, bool *first, const char *name, const ProtobufCBinaryData *id)
{
    if (id->len) {
        key(w, first, name);
        hex_id(w, id);
    }
}

static void field_strs(struct jw *w, bool *first, const char *name, size_t n, char *const *v)
{
    if (!n) {
        return;
    }
    key(w, first, name);
    LIT(w, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) {
            LIT(w, ",");
        }
        cstr(w, v[i]);
    }
    LIT(w, "]");
}

static void enc_resource(struct jw *w, const resource_t *r)
{
    bool first = true;
    LIT(w, "{");
    enc_kvs(w, &first, "attributes", r->n_attributes, r->attributes);
    field_u32(w, &first, "droppedAttributesCount", r->dropped_attributes_count);
    if (r->n_entity_refs) {
        key(w, &first, "entityRefs");
        LIT(w, "[");
        for (size_t i = 0; i < r->n_entity_refs; i++) {
            const entity_t *e = r->entity_refs[i];
            bool f2 = true;
            raw(w, i ? ",{" : "{", i ? 2 : 1);
            field_str(w, &f2, "schemaUrl", e->schema_url);
            field_str(w, &f2, "type", e->type);
            field_strs(w, &f2, "idKeys", e->n_id_keys, e->id_keys);
            field_strs(w, &f2, "descriptionKeys", e->n_description_keys, e->description_keys);
            LIT(w, "}");
        }
        LIT(w, "]");
    }
    LIT(w, "}");
}

static void enc_scope(struct jw *w, const scope_t *s)
{
    bool first = true;
    LIT(w, "{");
    field_str(w, &first, "name", s->name);
    field_str(w, &first, "version", s->version);
    enc_kvs(w, &first, "attributes", s->n_attributes, s->attributes);
    field_u32(w, &first, "droppedAttributesCount", s->dropped_attributes_count);
    LIT(w, "}");
}

static void enc_event(struct jw *w, const event_t *e)
{
    bool first = true;
    LIT(w, "{");
    field_u64(w, &first, "timeUnixNano", e->time_unix_nano);
    field_str(w, &first, "name", e->name);
    enc_kvs(w, &first, "attributes", e->n_attributes, e->attributes);
    field_u32(w, &first, "droppedAttributesCount", e->dropped_attributes_count);
    LIT(w, "}");
}

static void enc_link(struct jw *w, const link_t *l)
{
    bool first = true;
    LIT(w, "{");
    field_id(w, &first, "traceId", &l->trace_id);
    field_id(w, &first, "spanId", &l->span_id);
    field_str(w, &first, "traceState", l->trace_state);
    enc_kvs(w, &first, "attributes", l->n_attributes, l->attributes);
    field_u32(w, &first, "droppedAttributesCount", l->dropped_attributes_count);
    field_u32(w, &first, "flags", l->flags);
    LIT(w, "}");
}

static void enc_span(struct jw *w, const th_otlp_span_t *s)
{
    bool first = true;
    LIT(w, "{");
    field_id(w, &first, "traceId", &s->trace_id);
    field_id(w, &first, "spanId", &s->span_id);
    field_str(w, &first, "traceState", s->trace_state);
    field_id(w, &first, "parentSpanId", &s->parent_span_id);
    field_u32(w, &first, "flags", s->flags);
    field_str(w, &first, "name", s->name);
    field_i32(w, &first, "kind", (int32_t)s->kind);
    field_u64(w, &first, "startTimeUnixNano", s->start_time_unix_nano);
    field_u64(w, &first, "endTimeUnixNano", s->end_time_unix_nano);
    enc_kvs(w, &first, "attributes", s->n_attributes, s->attributes);
    field_u32(w, &first, "droppedAttributesCount", s->dropped_attributes_count);
    if (s->n_events) {
        key(w, &first, "events");
        LIT(w, "[");
        for (size_t i = 0; i < s->n_events; i++) {
            if (i) {
                LIT(w, ",");
            }
            enc_event(w, s->events[i]);
        }
        LIT(w, "]");
    }
    field_u32(w, &first, "droppedEventsCount", s->dropped_events_count);
    if (s->n_links) {
        key(w, &first, "links");
        LIT(w, "[");
        for (size_t i = 0; i < s->n_links; i++) {
            if (i) {
                LIT(w, ",");
            }
            enc_link(w, s->links[i]);
        }
        LIT(w, "]");
    }
    field_u32(w, &first, "droppedLinksCount", s->dropped_links_count);
    if (s->status) {
        bool f2 = true;
        key(w, &first, "status");
        LIT(w, "{");
        field_str(w, &f2, "message", s->status->message);
        field_i32(w, &f2, "code", (int32_t)s->status->code);
        LIT(w, "}");
    }
    LIT(w, "}");
}

static void enc_scope_spans(struct jw *w, const th_otlp_scope_spans_t *ss)
{
    bool first = true;
    LIT(w, "{");
    if (ss->scope) {
        key(w, &first, "scope");
        enc_scope(w, ss->scope);
    }
    if (ss->n_spans) {
        key(w, &first, "spans");
        LIT(w, "[");
        for (size_t i = 0; i < ss->n_spans; i++) {
            if (i) {
                LIT(w, ",");
            }
            enc_span(w, ss->spans[i]);
        }
        LIT(w, "]");
    }
    field_str(w, &first, "schemaUrl", ss->schema_url);
    LIT(w, "}");
}

static void enc_resource_spans(struct jw *w, const th_otlp_resource_spans_t *rs)
{
    bool first = true;
    LIT(w, "{");
    if (rs->resource) {
        key(w, &first, "resource");
        enc_resource(w, rs->resource);
    }
    if (rs->n_scope_spans) {
        key(w, &first, "scopeSpans");
        LIT(w, "[");
        for (size_t i = 0; i < rs->n_scope_spans; i++) {
            if (i) {
                LIT(w, ",");
            }
            enc_scope_spans(w, rs->scope_spans[i]);
        }
        LIT(w, "]");
    }
    field_str(w, &first, "schemaUrl", rs->schema_url);
    LIT(w, "}");
}

int th_otlp_encode_json(const th_otlp_request_t *req, th_buf_t *out)
{
    struct jw w = {out, 0};
    bool first = true;
    LIT(&w, "{");
    if (req && req->n_resource_spans) {
        key(&w, &first, "resourceSpans");
        LIT(&w, "[");
        for (size_t i = 0; i < req->n_resource_spans; i++) {
            if (i) {
                LIT(&w, ",");
            }
            enc_resource_spans(&w, req->resource_spans[i]);
        }
        LIT(&w, "]");
    }
    LIT(&w, "}");
    return w.rc;
}

/* ---- Helpers for otlp_response.c --------------------------------------------------------- */

int th__otlp_json_string(th_buf_t *out, const char *s)
{
    struct jw w = {out, 0};
    cstr(&w, s);
    return w.rc;
}
