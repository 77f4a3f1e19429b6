/*
 * Batches for the exporter tests, built directly as protobuf-c structs in an arena (the way a
 * receiver's decoder leaves them), with every value type, events, links, status, trace state
 * and dropped counts, so formats and round trips are checked on all of it.
 */
#ifndef TH_TEST_EXPORTER_FIXTURE_H
#define TH_TEST_EXPORTER_FIXTURE_H

#include <string.h>

#include "th/batch.h"

typedef Opentelemetry__Proto__Common__V1__ArrayValue fx_array_t;
typedef Opentelemetry__Proto__Common__V1__KeyValueList fx_kvlist_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Event fx_event_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Link fx_link_t;
typedef Opentelemetry__Proto__Trace__V1__Status fx_status_t;
typedef Opentelemetry__Proto__Resource__V1__Resource fx_resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope fx_scope_t;

#define FX_NEW(a, type, init)                                                                      \
    ({                                                                                             \
        type *p_ = th_arena_alloc((a), sizeof(type));                                              \
        if (p_) {                                                                                  \
            init(p_);                                                                              \
        }                                                                                          \
        p_;                                                                                        \
    })

static inline th_otlp_any_t *fx_any(th_arena_t *a)
{
    return FX_NEW(a, th_otlp_any_t, opentelemetry__proto__common__v1__any_value__init);
}

static inline th_otlp_any_t *fx_str(th_arena_t *a, const char *s)
{
    th_otlp_any_t *v = fx_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = th_arena_strndup(a, s, strlen(s));
    return v;
}

static inline th_otlp_any_t *fx_int(th_arena_t *a, int64_t i)
{
    th_otlp_any_t *v = fx_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return v;
}

static inline th_otlp_any_t *fx_double(th_arena_t *a, double d)
{
    th_otlp_any_t *v = fx_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return v;
}

static inline th_otlp_any_t *fx_bool(th_arena_t *a, bool b)
{
    th_otlp_any_t *v = fx_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return v;
}

static inline th_otlp_any_t *fx_bytes(th_arena_t *a, const void *p, size_t len)
{
    th_otlp_any_t *v = fx_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    v->bytes_value.data = th_arena_memdup(a, p, len);
    v->bytes_value.len = len;
    return v;
}

/* An array of @p n values. */
static inline th_otlp_any_t *fx_array(th_arena_t *a, size_t n, th_otlp_any_t **vals)
{
    th_otlp_any_t *v = fx_any(a);
    fx_array_t *arr = FX_NEW(a, fx_array_t, opentelemetry__proto__common__v1__array_value__init);
    arr->n_values = n;
    arr->values = th_arena_alloc(a, (n ? n : 1) * sizeof(*arr->values));
    if (n > 0) {
        memcpy(arr->values, vals, n * sizeof(*vals));
    }
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v->array_value = arr;
    return v;
}

static inline th_otlp_kv_t *fx_kv(th_arena_t *a, const char *key, th_otlp_any_t *val)
{
    th_otlp_kv_t *kv = FX_NEW(a, th_otlp_kv_t, opentelemetry__proto__common__v1__key_value__init);
    kv->key = th_arena_strndup(a, key, strlen(key));
    kv->value = val;
    return kv;
}

static inline th_otlp_any_t *fx_kvlist(th_arena_t *a, size_t n, th_otlp_kv_t **kvs)
{
    th_otlp_any_t *v = fx_any(a);
    fx_kvlist_t *l = FX_NEW(a, fx_kvlist_t, opentelemetry__proto__common__v1__key_value_list__init);
    l->n_values = n;
    l->values = th_arena_alloc(a, (n ? n : 1) * sizeof(*l->values));
    if (n > 0) {
        memcpy(l->values, kvs, n * sizeof(*kvs));
    }
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    v->kvlist_value = l;
    return v;
}

static inline th_otlp_kv_t **fx_kvs(th_arena_t *a, size_t n, th_otlp_kv_t **kvs)
{
    th_otlp_kv_t **v = th_arena_alloc(a, (n ? n : 1) * sizeof(*v));
    if (n > 0) {
        memcpy(v, kvs, n * sizeof(*kvs));
    }
    return v;
}

static inline ProtobufCBinaryData fx_id(th_arena_t *a, const char *hex)
{
    size_t n = strlen(hex) / 2;
    uint8_t *p = th_arena_alloc(a, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned byte;
        sscanf(hex + 2 * i, "%2x", &byte);
        p[i] = (uint8_t)byte;
    }
    return (ProtobufCBinaryData){.len = n, .data = p};
}

#define FX_KVS(a, ...)                                                                             \
    fx_kvs((a), sizeof((th_otlp_kv_t *[]){__VA_ARGS__}) / sizeof(th_otlp_kv_t *),                  \
           (th_otlp_kv_t *[]){__VA_ARGS__})
#define FX_NKVS(...) (sizeof((th_otlp_kv_t *[]){__VA_ARGS__}) / sizeof(th_otlp_kv_t *))

#define FX_TRACE_ID  "5b8efff798038103d269b633813fc60c"
#define FX_SPAN_ROOT "eee19b7ec3c1b174"
#define FX_SPAN_KID  "eee19b7ec3c1b173"
#define FX_SPAN_LEAF "0102030405060708"
#define FX_LINK_TID  "0af7651916cd43dd8448eb211c80319c"
#define FX_LINK_SID  "b7ad6b7169203331"

/* A span with the given ids, name, kind and times (start, end in ns). */
static inline th_otlp_span_t *fx_span(th_arena_t *a, const char *span_id, const char *parent,
                                      const char *name, int kind, uint64_t start, uint64_t end)
{
    th_otlp_span_t *s = FX_NEW(a, th_otlp_span_t, opentelemetry__proto__trace__v1__span__init);
    s->trace_id = fx_id(a, FX_TRACE_ID);
    s->span_id = fx_id(a, span_id);
    if (parent) {
        s->parent_span_id = fx_id(a, parent);
    }
    s->name = th_arena_strndup(a, name, strlen(name));
    s->kind = kind;
    s->start_time_unix_nano = start;
    s->end_time_unix_nano = end;
    return s;
}

/*
 * The full fixture: one resource (schema URL, string/int/bool attributes), one scope
 * (name, version, attribute, schema URL) with three spans:
 *   root SERVER: every value type as attributes, trace state, an event with attributes, a
 *                link with attributes, status ERROR "boom", dropped counts, flags;
 *   child CLIENT: status OK, an event without attributes;
 *   leaf INTERNAL: no attributes, no status, nanosecond times.
 * @p big, when not NULL, is added as a string attribute "big" of the root span (rotation
 * tests use it to make records of a chosen size).
 */
static inline th_batch_t *fx_batch_big(const char *big)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req =
        FX_NEW(a, th_otlp_request_t,
               opentelemetry__proto__collector__trace__v1__export_trace_service_request__init);

    th_otlp_resource_spans_t *rs =
        FX_NEW(a, th_otlp_resource_spans_t, opentelemetry__proto__trace__v1__resource_spans__init);
    rs->schema_url = "https://opentelemetry.io/schemas/1.4.0";
    rs->resource = FX_NEW(a, fx_resource_t, opentelemetry__proto__resource__v1__resource__init);
    rs->resource->attributes =
        FX_KVS(a, fx_kv(a, "service.name", fx_str(a, "checkout")),
               fx_kv(a, "host.cpus", fx_int(a, 8)), fx_kv(a, "debug", fx_bool(a, false)));
    rs->resource->n_attributes = 3;

    th_otlp_scope_spans_t *ss =
        FX_NEW(a, th_otlp_scope_spans_t, opentelemetry__proto__trace__v1__scope_spans__init);
    ss->schema_url = "https://opentelemetry.io/schemas/1.21.0";
    ss->scope =
        FX_NEW(a, fx_scope_t, opentelemetry__proto__common__v1__instrumentation_scope__init);
    ss->scope->name = "io.tracehouse.test";
    ss->scope->version = "1.2.3";
    ss->scope->attributes = FX_KVS(a, fx_kv(a, "scope.attr", fx_str(a, "s")));
    ss->scope->n_attributes = 1;

    /* Root: SERVER, every attribute type. */
    th_otlp_span_t *root = fx_span(a, FX_SPAN_ROOT, NULL, "GET /cart", 2, 1544712660000000000ull,
                                   1544712661000000000ull);
    root->trace_state = "ot=th:0";
    root->flags = 0x301;
    th_otlp_any_t *arr_items[] = {fx_str(a, "a"), fx_int(a, -1), fx_double(a, 2.5),
                                  fx_bool(a, true)};
    th_otlp_kv_t *inner[] = {fx_kv(a, "z", fx_int(a, 1)), fx_kv(a, "a", fx_str(a, "<&>")),
                             fx_kv(a, "m", fx_array(a, 0, NULL))};
    static const uint8_t raw[] = {0x00, 0x01, 0xfe, 0xff, 'h', 'i'};
    th_otlp_kv_t *attrs[] = {
        fx_kv(a, "http.method", fx_str(a, "GET")),
        fx_kv(a, "http.status_code", fx_int(a, 500)),
        fx_kv(a, "big.int", fx_int(a, 9007199254740993ll)),
        fx_kv(a, "neg.int", fx_int(a, -42)),
        fx_kv(a, "ratio", fx_double(a, 0.25)),
        fx_kv(a, "tiny", fx_double(a, 1e-7)),
        fx_kv(a, "huge", fx_double(a, 1e21)),
        fx_kv(a, "ok", fx_bool(a, true)),
        fx_kv(a, "mixed", fx_array(a, 4, arr_items)),
        fx_kv(a, "map", fx_kvlist(a, 3, inner)),
        fx_kv(a, "raw", fx_bytes(a, raw, sizeof(raw))),
        fx_kv(a, "empty", fx_any(a)),
        fx_kv(a, "utf8", fx_str(a, "h\xc3\xa9llo \"q\"\n")),
    };
    size_t n_attrs = TH_ARRAY_SIZE(attrs);
    root->attributes = th_arena_alloc(a, (n_attrs + 1) * sizeof(*root->attributes));
    memcpy(root->attributes, attrs, sizeof(attrs));
    if (big) {
        root->attributes[n_attrs++] = fx_kv(a, "big", fx_str(a, big));
    }
    root->n_attributes = n_attrs;
    root->dropped_attributes_count = 1;
    root->dropped_events_count = 2;
    root->dropped_links_count = 3;
    fx_event_t *ev = FX_NEW(a, fx_event_t, opentelemetry__proto__trace__v1__span__event__init);
    ev->name = "exception";
    ev->time_unix_nano = 1544712660500000123ull;
    ev->attributes = FX_KVS(a, fx_kv(a, "exception.type", fx_str(a, "IOError")),
                            fx_kv(a, "retries", fx_int(a, 3)));
    ev->n_attributes = 2;
    ev->dropped_attributes_count = 4;
    root->events = th_arena_alloc(a, sizeof(*root->events));
    root->events[0] = ev;
    root->n_events = 1;
    fx_link_t *ln = FX_NEW(a, fx_link_t, opentelemetry__proto__trace__v1__span__link__init);
    ln->trace_id = fx_id(a, FX_LINK_TID);
    ln->span_id = fx_id(a, FX_LINK_SID);
    ln->trace_state = "k=v";
    ln->attributes = FX_KVS(a, fx_kv(a, "link.kind", fx_str(a, "follows")));
    ln->n_attributes = 1;
    ln->dropped_attributes_count = 5;
    ln->flags = 0x100;
    root->links = th_arena_alloc(a, sizeof(*root->links));
    root->links[0] = ln;
    root->n_links = 1;
    root->status = FX_NEW(a, fx_status_t, opentelemetry__proto__trace__v1__status__init);
    root->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    root->status->message = "boom";

    /* Child: CLIENT, status OK, an event without attributes. */
    th_otlp_span_t *kid = fx_span(a, FX_SPAN_KID, FX_SPAN_ROOT, "redis GET", 3,
                                  1544712660100000000ull, 1544712660200000000ull);
    kid->attributes = FX_KVS(a, fx_kv(a, "db.system", fx_str(a, "redis")));
    kid->n_attributes = 1;
    fx_event_t *ev2 = FX_NEW(a, fx_event_t, opentelemetry__proto__trace__v1__span__event__init);
    ev2->name = "sent";
    ev2->time_unix_nano = 1544712660150000000ull;
    kid->events = th_arena_alloc(a, sizeof(*kid->events));
    kid->events[0] = ev2;
    kid->n_events = 1;
    kid->status = FX_NEW(a, fx_status_t, opentelemetry__proto__trace__v1__status__init);
    kid->status->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;

    /* Leaf: INTERNAL, odd nanoseconds, nothing else. */
    th_otlp_span_t *leaf = fx_span(a, FX_SPAN_LEAF, FX_SPAN_KID, "serialize", 1,
                                   1544712660100000321ull, 1544712660100000789ull);

    ss->spans = th_arena_alloc(a, 3 * sizeof(*ss->spans));
    ss->spans[0] = root;
    ss->spans[1] = kid;
    ss->spans[2] = leaf;
    ss->n_spans = 3;
    rs->scope_spans = th_arena_alloc(a, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    req->resource_spans = th_arena_alloc(a, sizeof(*req->resource_spans));
    req->resource_spans[0] = rs;
    req->n_resource_spans = 1;
    return th_batch_create(a, req);
}

static inline th_batch_t *fx_batch(void)
{
    return fx_batch_big(NULL);
}

/* Pack a request to protobuf bytes (heap; the caller frees). */
static inline uint8_t *fx_pack(const th_otlp_request_t *req, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *p = malloc(*len ? *len : 1);
    protobuf_c_message_pack(&req->base, p);
    return p;
}

/* Counts settled acks and the last result, to prove a batch was released. */
struct fx_acks {
    int settled;
    int result;
};

static inline void fx_on_settled(th_ack_t *ack, int result)
{
    struct fx_acks *s = ack->data;
    s->settled++;
    s->result = result;
}

/* Attach an ack to @p b that reports into @p s when the batch is finally released. */
static inline void fx_track(th_batch_t *b, struct fx_acks *s)
{
    th_ack_t *ack = th_ack_create(fx_on_settled, s);
    th_batch_add_ack(b, ack);
    th_ack_settle(ack, 0); /* drop the creator's reference: only the batch holds it */
}

#endif
