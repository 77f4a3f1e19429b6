/*
 * The load generator's payloads. Requests are built once, as templates, from a seeded PRNG:
 * traces are trees of spans spread over services (one ResourceSpans per service), with a
 * configurable number and size of attributes, events, error and slow traces. Each template is
 * encoded once (protobuf or OTLP/JSON) and the offsets of its trace ids recorded, so sending
 * a request costs a copy and a few stores: the first 4 bytes of every trace id become the
 * request's sequence number, and a store or tail sampler sees new traces every time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/loadgen/loadgen.h"
#include "th/arena.h"
#include "th/batch.h"
#include "th/otlp.h"

typedef Opentelemetry__Proto__Resource__V1__Resource lg_resource_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope lg_scope_t;
typedef Opentelemetry__Proto__Trace__V1__Status lg_status_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Event lg_event_t;

/* xoshiro-style generator: fast, seeded, the same payloads for the same seed. */
struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rndf(struct rng *r)
{
    return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

static unsigned rndn(struct rng *r, unsigned n)
{
    return n ? (unsigned)(rnd(r) % n) : 0;
}

static void rnd_bytes(struct rng *r, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)rnd(r);
    }
    p[0] |= 1; /* never all zero: an all-zero id is invalid */
}

/* Realistic names: what HTTP servers, clients and databases put on spans. */
static const char *const ops[] = {"GET /api/orders",   "POST /api/checkout", "GET /api/users/{id}",
                                  "SELECT orders",     "INSERT payments",    "GET /health",
                                  "publish shipments", "process shipment",   "GET /api/cart",
                                  "redis GET"};
static const char *const keys[] = {"http.request.method",
                                   "http.route",
                                   "http.response.status_code",
                                   "url.path",
                                   "server.address",
                                   "db.system",
                                   "db.operation.name",
                                   "user_agent.original",
                                   "network.peer.port",
                                   "messaging.system",
                                   "enduser.id",
                                   "thread.name"};
#define N_OPS  (sizeof(ops) / sizeof(ops[0]))
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static char *rnd_text(th_arena_t *a, struct rng *r, unsigned len)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789-_/";
    char *s = th_arena_alloc(a, len + 1);
    if (!s) {
        return NULL;
    }
    for (unsigned i = 0; i < len; i++) {
        s[i] = al[rndn(r, sizeof(al) - 1)];
    }
    s[len] = 0;
    return s;
}

static th_otlp_kv_t *kv_new(th_arena_t *a, const char *key)
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

static th_otlp_kv_t *kv_str(th_arena_t *a, const char *key, char *val)
{
    th_otlp_kv_t *kv = kv_new(a, key);
    if (kv) {
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        kv->value->string_value = val;
    }
    return kv;
}

static th_otlp_kv_t *kv_int(th_arena_t *a, const char *key, int64_t v)
{
    th_otlp_kv_t *kv = kv_new(a, key);
    if (kv) {
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        kv->value->int_value = v;
    }
    return kv;
}

static const char *pick(struct rng *r, const char *const *v, unsigned n)
{
    return v[rndn(r, n)];
}

/* Attribute i of a span. The first ones are the semantic conventions' usual suspects with
 * their usual cardinality (a few methods and status codes, one route per operation), so
 * searches by attribute find realistic result sets; past those the types rotate string,
 * int, double, bool as application attributes mix them. */
static th_otlp_kv_t *span_attr(th_arena_t *a, struct rng *r, const struct lg_shape *sh, unsigned i,
                               const char *op)
{
    static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
    static const int64_t codes[] = {200, 200, 200, 200, 201, 204, 404, 500};
    static const char *const dbs[] = {"postgresql", "redis", "mysql"};
    static const char *const dbops[] = {"SELECT", "INSERT", "UPDATE"};
    char *text;
    switch (i) {
    case 0:
        return kv_str(a, keys[0], (char *)pick(r, methods, 6));
    case 1:
        return kv_str(a, keys[1], (char *)op);
    case 2:
        return kv_int(a, keys[2], codes[rndn(r, 8)]);
    case 4:
        text = th_arena_alloc(a, 16);
        if (!text) {
            return NULL;
        }
        snprintf(text, 16, "host-%02u", rndn(r, 20));
        return kv_str(a, keys[4], text);
    case 5:
        return kv_str(a, keys[5], (char *)pick(r, dbs, 3));
    case 6:
        return kv_str(a, keys[6], (char *)pick(r, dbops, 3));
    case 8:
        return kv_int(a, keys[8], 1024 + rndn(r, 60000));
    case 9:
        return kv_str(a, keys[9], "kafka");
    case 11:
        text = th_arena_alloc(a, 16);
        if (!text) {
            return NULL;
        }
        snprintf(text, 16, "worker-%u", rndn(r, 16));
        return kv_str(a, keys[11], text);
    case 3:
    case 7:
    case 10:
        text = rnd_text(a, r, sh->attr_size);
        return text ? kv_str(a, keys[i], text) : NULL;
    default:
        break;
    }
    char *key = th_arena_alloc(a, 24);
    if (!key) {
        return NULL;
    }
    snprintf(key, 24, "app.attr_%u", i);
    th_otlp_kv_t *kv = kv_new(a, key);
    if (!kv) {
        return NULL;
    }
    switch (i % 4) {
    case 0:
    case 3:
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
        kv->value->string_value = rnd_text(a, r, sh->attr_size);
        if (!kv->value->string_value) {
            return NULL;
        }
        break;
    case 1:
        kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
        kv->value->int_value = (int64_t)rndn(r, 100000);
        break;
    default:
        if (i % 8 == 2) {
            kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
            kv->value->bool_value = rndn(r, 2);
        } else {
            kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
            kv->value->double_value = rndf(r) * 1000.0;
        }
        break;
    }
    return kv;
}

/* The spans of one generated trace, before they are grouped by service. */
struct gspan {
    th_otlp_span_t *span;
    unsigned service;
    unsigned depth, children;
};

static int gen_trace(th_arena_t *a, struct rng *r, const struct lg_shape *sh, uint64_t base_ns,
                     const uint8_t trace_id[16], struct gspan *out, unsigned n)
{
    bool error = rndf(r) < sh->error_share;
    bool slow = rndf(r) < sh->slow_share;
    uint64_t root_ns =
        slow ? (uint64_t)sh->slow_ms * 1000000u + rndn(r, 1000000) : 1000000u + rndn(r, 200000000u);
    unsigned error_span = rndn(r, n);
    for (unsigned i = 0; i < n; i++) {
        th_otlp_span_t *s = th_arena_alloc(a, sizeof(*s));
        if (!s) {
            return -1;
        }
        opentelemetry__proto__trace__v1__span__init(s);
        uint8_t *tid = th_arena_memdup(a, trace_id, 16);
        uint8_t *sid = th_arena_alloc(a, 8);
        if (!tid || !sid) {
            return -1;
        }
        rnd_bytes(r, sid, 8);
        s->trace_id = (ProtobufCBinaryData){16, tid};
        s->span_id = (ProtobufCBinaryData){8, sid};
        unsigned parent = 0, service = 0, depth = 0;
        uint64_t start, dur;
        if (i == 0) {
            service = rndn(r, sh->services);
            start = base_ns;
            dur = root_ns;
            s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
        } else {
            /* A parent that still has room for children and depth; the root otherwise. */
            for (unsigned tries = 0; tries < 8; tries++) {
                unsigned p = rndn(r, i);
                if (out[p].depth + 1 <= sh->max_depth && out[p].children < sh->max_fanout) {
                    parent = p;
                    break;
                }
            }
            out[parent].children++;
            depth = out[parent].depth + 1;
            th_otlp_span_t *ps = out[parent].span;
            s->parent_span_id = ps->span_id;
            uint64_t pdur = ps->end_time_unix_nano - ps->start_time_unix_nano;
            uint64_t off = pdur / 10 + rndn(r, (unsigned)(pdur / 4 + 1));
            start = ps->start_time_unix_nano + off;
            dur = (pdur - off) / 2 + 1;
            bool remote = rndn(r, 2) == 0;
            service = remote ? rndn(r, sh->services) : out[parent].service;
            s->kind = remote ? OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT
                             : OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL;
        }
        s->name = (char *)ops[(service * 3 + i) % N_OPS];
        s->start_time_unix_nano = start;
        s->end_time_unix_nano = start + dur;
        s->n_attributes = sh->attrs;
        s->attributes = th_arena_alloc(a, sizeof(*s->attributes) * (sh->attrs + 1));
        if (!s->attributes) {
            return -1;
        }
        for (unsigned k = 0; k < sh->attrs; k++) {
            s->attributes[k] = span_attr(a, r, sh, k, s->name);
            if (!s->attributes[k]) {
                return -1;
            }
        }
        if (rndf(r) < sh->event_share) {
            lg_event_t *e = th_arena_alloc(a, sizeof(*e));
            lg_event_t **ev = th_arena_alloc(a, sizeof(*ev));
            th_otlp_kv_t **eattr = th_arena_alloc(a, sizeof(*eattr));
            if (!e || !ev || !eattr) {
                return -1;
            }
            opentelemetry__proto__trace__v1__span__event__init(e);
            e->name = "exception";
            e->time_unix_nano = start + dur / 2;
            eattr[0] = kv_str(a, "exception.message", rnd_text(a, r, sh->attr_size * 2));
            if (!eattr[0] || !eattr[0]->value->string_value) {
                return -1;
            }
            e->attributes = eattr;
            e->n_attributes = 1;
            ev[0] = e;
            s->events = ev;
            s->n_events = 1;
        }
        if (error && i == error_span) {
            lg_status_t *st = th_arena_alloc(a, sizeof(*st));
            if (!st) {
                return -1;
            }
            opentelemetry__proto__trace__v1__status__init(st);
            st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
            st->message = "upstream failed";
            s->status = st;
        }
        out[i] = (struct gspan){.span = s, .service = service, .depth = depth};
    }
    return 0;
}

/* Group spans by service into ResourceSpans, one ScopeSpans each. */
static th_otlp_request_t *build_request(th_arena_t *a, struct rng *r, const struct lg_shape *sh,
                                        struct gspan *spans, size_t n)
{
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    th_otlp_resource_spans_t **rss = th_arena_alloc(a, sizeof(*rss) * sh->services);
    if (!req || !rss) {
        return NULL;
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    size_t nrs = 0;
    for (unsigned svc = 0; svc < sh->services; svc++) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++) {
            count += spans[i].service == svc;
        }
        if (count == 0) {
            continue;
        }
        th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
        th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
        th_otlp_scope_spans_t **ssv = th_arena_alloc(a, sizeof(*ssv));
        lg_resource_t *res = th_arena_alloc(a, sizeof(*res));
        lg_scope_t *scope = th_arena_alloc(a, sizeof(*scope));
        th_otlp_span_t **sv = th_arena_alloc(a, sizeof(*sv) * count);
        th_otlp_kv_t **rattr = th_arena_alloc(a, sizeof(*rattr) * (sh->resource_attrs + 1));
        char *svc_name = th_arena_alloc(a, 32);
        if (!rs || !ss || !ssv || !res || !scope || !sv || !rattr || !svc_name) {
            return NULL;
        }
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        opentelemetry__proto__trace__v1__scope_spans__init(ss);
        opentelemetry__proto__resource__v1__resource__init(res);
        opentelemetry__proto__common__v1__instrumentation_scope__init(scope);
        snprintf(svc_name, 32, "service-%02u", svc);
        rattr[0] = kv_str(a, "service.name", svc_name);
        if (!rattr[0]) {
            return NULL;
        }
        for (unsigned k = 0; k < sh->resource_attrs; k++) {
            char *key = th_arena_alloc(a, 32);
            if (!key) {
                return NULL;
            }
            snprintf(key, 32, k == 0 ? "host.name" : "deployment.attr_%u", k);
            rattr[k + 1] = kv_str(a, key, rnd_text(a, r, 12));
            if (!rattr[k + 1] || !rattr[k + 1]->value->string_value) {
                return NULL;
            }
        }
        res->attributes = rattr;
        res->n_attributes = sh->resource_attrs + 1;
        scope->name = "th_loadgen";
        scope->version = "1.0.0";
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (spans[i].service == svc) {
                sv[j++] = spans[i].span;
            }
        }
        ss->scope = scope;
        ss->spans = sv;
        ss->n_spans = count;
        ssv[0] = ss;
        rs->resource = res;
        rs->scope_spans = ssv;
        rs->n_scope_spans = 1;
        rss[nrs++] = rs;
    }
    req->resource_spans = rss;
    req->n_resource_spans = nrs;
    return req;
}

static int encode(const th_otlp_request_t *req, bool json, uint8_t **body, size_t *len)
{
    if (json) {
        th_buf_t b = {0};
        if (th_otlp_encode_json(req, &b) != 0) {
            th_buf_free(&b);
            return -1;
        }
        *body = (uint8_t *)b.ptr;
        *len = b.len;
        return 0;
    }
    size_t n = protobuf_c_message_get_packed_size(&req->base);
    *body = th_malloc(n ? n : 1);
    if (!*body) {
        return -1;
    }
    *len = protobuf_c_message_pack(&req->base, *body);
    return 0;
}

/* Record every place the trace id appears in the encoded body (raw or as hex). */
static int find_ids(struct lg_template *t, bool json, const uint8_t (*ids)[16], size_t n_ids)
{
    size_t cap = 64;
    t->id_off = malloc(cap * sizeof(size_t));
    if (!t->id_off) {
        return -1;
    }
    for (size_t k = 0; k < n_ids; k++) {
        char hex[33];
        th_hex_encode(ids[k], 16, hex);
        const uint8_t *needle = json ? (const uint8_t *)hex : ids[k];
        size_t nlen = json ? 32 : 16;
        const uint8_t *p = t->body, *end = t->body + t->len;
        while (p < end) {
            const uint8_t *hit = memmem(p, (size_t)(end - p), needle, nlen);
            if (!hit) {
                break;
            }
            if (t->n_id_off == cap) {
                cap *= 2;
                size_t *v = realloc(t->id_off, cap * sizeof(size_t));
                if (!v) {
                    return -1;
                }
                t->id_off = v;
            }
            t->id_off[t->n_id_off++] = (size_t)(hit - t->body);
            p = hit + nlen;
        }
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Record where every distinct timestamp of the template's spans and events sits in the body:
 * as a little-endian fixed64 in protobuf, as a quoted decimal string in JSON. */
static int find_times(struct lg_template *t, bool json, const struct gspan *spans, size_t n)
{
    uint64_t *v = malloc(sizeof(*v) * (n * 3 + 1));
    size_t nv = 0, cap = 64;
    t->ts_off = malloc(cap * sizeof(size_t));
    if (!v || !t->ts_off) {
        free(v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const th_otlp_span_t *s = spans[i].span;
        v[nv++] = s->start_time_unix_nano;
        v[nv++] = s->end_time_unix_nano;
        if (s->n_events) {
            v[nv++] = s->events[0]->time_unix_nano;
        }
    }
    qsort(v, nv, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < nv; i++) {
        if (i > 0 && v[i] == v[i - 1]) {
            continue; /* one search finds every occurrence of a value */
        }
        uint8_t needle[24];
        size_t nlen, skip = 0;
        if (json) {
            nlen = (size_t)snprintf((char *)needle, sizeof(needle), "\"%llu\"",
                                    (unsigned long long)v[i]);
            skip = 1;
        } else {
            for (int b = 0; b < 8; b++) {
                needle[b] = (uint8_t)(v[i] >> (8 * b));
            }
            nlen = 8;
        }
        const uint8_t *p = t->body, *end = t->body + t->len;
        while (p < end) {
            const uint8_t *hit = memmem(p, (size_t)(end - p), needle, nlen);
            if (!hit) {
                break;
            }
            if (t->n_ts_off == cap) {
                cap *= 2;
                size_t *nv2 = realloc(t->ts_off, cap * sizeof(size_t));
                if (!nv2) {
                    free(v);
                    return -1;
                }
                t->ts_off = nv2;
            }
            t->ts_off[t->n_ts_off++] = (size_t)(hit - t->body) + skip;
            p = hit + nlen;
        }
    }
    free(v);
    return 0;
}

int lg_gen_templates(const struct lg_shape *sh, struct lg_template **out, size_t *n_out)
{
    struct rng r = {sh->seed};
    unsigned per_trace = sh->spans_per_trace ? sh->spans_per_trace : 1;
    unsigned traces = sh->spans_per_request / per_trace;
    if (traces == 0) {
        traces = 1;
    }
    struct lg_template *t = calloc(sh->templates, sizeof(*t));
    struct gspan *spans = calloc((size_t)traces * per_trace, sizeof(*spans));
    uint8_t(*ids)[16] = calloc(traces, 16);
    if (!t || !spans || !ids) {
        goto fail;
    }
    uint64_t base = th_now_unix_ns() - 60ull * 1000000000u;
    for (unsigned k = 0; k < sh->templates; k++) {
        th_arena_t *a = th_arena_create(64 * 1024, 0);
        if (!a) {
            goto fail;
        }
        for (unsigned tr = 0; tr < traces; tr++) {
            rnd_bytes(&r, ids[tr], 16);
            uint64_t start = base + rndn(&r, 1000000000u);
            if (gen_trace(a, &r, sh, start, ids[tr], spans + (size_t)tr * per_trace, per_trace) !=
                0) {
                th_arena_destroy(a);
                goto fail;
            }
        }
        th_otlp_request_t *req = build_request(a, &r, sh, spans, (size_t)traces * per_trace);
        int rc = req ? encode(req, sh->json, &t[k].body, &t[k].len) : -1;
        t[k].spans = (size_t)traces * per_trace;
        if (rc == 0) {
            rc = find_ids(&t[k], sh->json, (const uint8_t(*)[16])ids, traces);
        }
        if (rc == 0) {
            /* the spans live in the arena: read their times before it goes */
            rc = find_times(&t[k], sh->json, spans, (size_t)traces * per_trace);
        }
        th_arena_destroy(a);
        if (rc != 0) {
            goto fail;
        }
        t[k].base_ns = base + 60ull * 1000000000u;
    }
    free(spans);
    free(ids);
    *out = t;
    *n_out = sh->templates;
    return 0;
fail:
    fprintf(stderr, "th_loadgen: out of memory generating payloads\n");
    free(spans);
    free(ids);
    lg_templates_free(t, t ? sh->templates : 0);
    return -1;
}

void lg_stamp(const struct lg_template *t, bool json, uint32_t seq, uint64_t shift_ns, uint8_t *dst)
{
    static const char hx[] = "0123456789abcdef";
    memcpy(dst, t->body, t->len);
    uint8_t be[4] = {(uint8_t)(seq >> 24), (uint8_t)(seq >> 16), (uint8_t)(seq >> 8), (uint8_t)seq};
    for (size_t i = 0; i < t->n_id_off; i++) {
        uint8_t *p = dst + t->id_off[i];
        if (json) {
            for (int b = 0; b < 4; b++) {
                p[2 * b] = (uint8_t)hx[be[b] >> 4];
                p[2 * b + 1] = (uint8_t)hx[be[b] & 15];
            }
        } else {
            memcpy(p, be, 4);
        }
    }
    if (shift_ns == 0) {
        return;
    }
    for (size_t i = 0; i < t->n_ts_off; i++) {
        uint8_t *p = dst + t->ts_off[i];
        if (json) {
            /* 19 digits until the year 2286: the width never changes */
            uint64_t v = 0;
            for (int d = 0; d < 19; d++) {
                v = v * 10 + (uint64_t)(p[d] - '0');
            }
            v += shift_ns;
            for (int d = 18; d >= 0; d--) {
                p[d] = (uint8_t)('0' + v % 10);
                v /= 10;
            }
        } else {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--) {
                v = v << 8 | p[b];
            }
            v += shift_ns;
            for (int b = 0; b < 8; b++) {
                p[b] = (uint8_t)(v >> (8 * b));
            }
        }
    }
}

int lg_gen_split_trace(const struct lg_shape *sh, int part, uint8_t **body, size_t *len,
                       size_t *spans_out, char *trace_hex)
{
    /* The same seed gives the same trace for both parts; only which half is sent differs. */
    struct rng r = {sh->seed ^ 0x1a7e5a3ull};
    unsigned n = sh->spans_per_trace < 2 ? 2 : sh->spans_per_trace;
    struct gspan *spans = calloc(n, sizeof(*spans));
    th_arena_t *a = th_arena_create(64 * 1024, 0);
    uint8_t id[16];
    int rc = -1;
    if (!spans || !a) {
        goto out;
    }
    rnd_bytes(&r, id, 16);
    th_hex_encode(id, 16, trace_hex);
    if (gen_trace(a, &r, sh, th_now_unix_ns() - 1000000000u, id, spans, n) != 0) {
        goto out;
    }
    unsigned half = n / 2;
    struct gspan *from = part == 0 ? spans : spans + half;
    size_t count = part == 0 ? half : n - half;
    th_otlp_request_t *req = build_request(a, &r, sh, from, count);
    if (!req) {
        goto out;
    }
    rc = encode(req, sh->json, body, len);
    *spans_out = count;
out:
    th_arena_destroy(a);
    free(spans);
    return rc;
}

void lg_templates_free(struct lg_template *t, size_t n)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        th_free(t[i].body);
        free(t[i].id_off);
        free(t[i].ts_off);
    }
    free(t);
}
