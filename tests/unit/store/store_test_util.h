/*
 * Helpers for the store tests: build OTLP requests field by field in an arena, make
 * temporary store directories, and compare requests by their protobuf encoding.
 */
#ifndef TH_TESTS_STORE_TEST_UTIL_H
#define TH_TESTS_STORE_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th/batch.h"
#include "th/store.h"

#define TU_MS 1000000ull
#define TU_S  1000000000ull
/* a fixed base time (2025-01-01T00:00:00Z) so tests do not depend on the clock */
#define TU_T0 1735689600000000000ull

/* Append one pointer to an arena array of pointers. */
static inline void **tu_push(th_arena_t *a, void **arr, size_t *n, void *item)
{
    void **v = th_arena_alloc(a, (*n + 1) * sizeof(void *));
    if (*n) {
        memcpy(v, arr, *n * sizeof(void *));
    }
    v[(*n)++] = item;
    return v;
}

static inline th_otlp_request_t *tu_request(th_arena_t *a)
{
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    *req = (th_otlp_request_t)
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    return req;
}

static inline th_otlp_any_t *tu_any(th_arena_t *a)
{
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    *v = (th_otlp_any_t)OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    return v;
}

static inline th_otlp_any_t *tu_str(th_arena_t *a, const char *s)
{
    th_otlp_any_t *v = tu_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = th_arena_strndup(a, s, strlen(s));
    return v;
}

static inline th_otlp_any_t *tu_int(th_arena_t *a, int64_t i)
{
    th_otlp_any_t *v = tu_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return v;
}

static inline th_otlp_any_t *tu_dbl(th_arena_t *a, double d)
{
    th_otlp_any_t *v = tu_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return v;
}

static inline th_otlp_any_t *tu_bool(th_arena_t *a, bool b)
{
    th_otlp_any_t *v = tu_any(a);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return v;
}

static inline th_otlp_kv_t *tu_kv(th_arena_t *a, const char *key, th_otlp_any_t *v)
{
    th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
    *kv = (th_otlp_kv_t)OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
    kv->key = th_arena_strndup(a, key, strlen(key));
    kv->value = v;
    return kv;
}

/* A resource with service.name (unless NULL) in a new ResourceSpans of @p req. */
static inline th_otlp_resource_spans_t *tu_resource(th_arena_t *a, th_otlp_request_t *req,
                                                    const char *service)
{
    th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
    *rs = (th_otlp_resource_spans_t)OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    rs->resource = th_arena_alloc(a, sizeof(*rs->resource));
    *rs->resource = (Opentelemetry__Proto__Resource__V1__Resource)
        OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    if (service) {
        rs->resource->attributes = (th_otlp_kv_t **)tu_push(
            a, (void **)rs->resource->attributes, &rs->resource->n_attributes,
            tu_kv(a, "service.name", tu_str(a, service)));
    }
    req->resource_spans = (th_otlp_resource_spans_t **)tu_push(a, (void **)req->resource_spans,
                                                               &req->n_resource_spans, rs);
    return rs;
}

static inline void tu_res_attr(th_arena_t *a, th_otlp_resource_spans_t *rs, const char *k,
                               th_otlp_any_t *v)
{
    rs->resource->attributes = (th_otlp_kv_t **)tu_push(
        a, (void **)rs->resource->attributes, &rs->resource->n_attributes, tu_kv(a, k, v));
}

static inline th_otlp_scope_spans_t *tu_scope(th_arena_t *a, th_otlp_resource_spans_t *rs,
                                              const char *name, const char *version)
{
    th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
    *ss = (th_otlp_scope_spans_t)OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss->scope = th_arena_alloc(a, sizeof(*ss->scope));
    *ss->scope = (Opentelemetry__Proto__Common__V1__InstrumentationScope)
        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    ss->scope->name = th_arena_strndup(a, name, strlen(name));
    ss->scope->version = th_arena_strndup(a, version, strlen(version));
    rs->scope_spans =
        (th_otlp_scope_spans_t **)tu_push(a, (void **)rs->scope_spans, &rs->n_scope_spans, ss);
    return ss;
}

/* A trace id whose last 8 bytes are @p n (and the first 8 a fixed pattern). */
static inline void tu_tid(uint8_t tid[16], uint64_t n)
{
    for (int i = 0; i < 8; i++) {
        tid[i] = (uint8_t)(0xa0 + i);
        tid[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    }
}

static inline ProtobufCBinaryData tu_id8(th_arena_t *a, uint64_t id)
{
    ProtobufCBinaryData b = {0, NULL};
    if (!id) {
        return b;
    }
    b.len = 8;
    b.data = th_arena_alloc(a, 8);
    for (int i = 0; i < 8; i++) {
        b.data[i] = (uint8_t)(id >> (56 - 8 * i));
    }
    return b;
}

static inline th_otlp_span_t *tu_span(th_arena_t *a, th_otlp_scope_spans_t *ss,
                                      const uint8_t tid[16], uint64_t sid, uint64_t parent,
                                      const char *name, int kind, uint64_t start, uint64_t end)
{
    th_otlp_span_t *sp = th_arena_alloc(a, sizeof(*sp));
    *sp = (th_otlp_span_t)OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    sp->trace_id.len = 16;
    sp->trace_id.data = th_arena_memdup(a, tid, 16);
    sp->span_id = tu_id8(a, sid);
    sp->parent_span_id = tu_id8(a, parent);
    sp->name = th_arena_strndup(a, name, strlen(name));
    sp->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
    sp->start_time_unix_nano = start;
    sp->end_time_unix_nano = end;
    ss->spans = (th_otlp_span_t **)tu_push(a, (void **)ss->spans, &ss->n_spans, sp);
    return sp;
}

static inline void tu_attr(th_arena_t *a, th_otlp_span_t *sp, const char *k, th_otlp_any_t *v)
{
    sp->attributes =
        (th_otlp_kv_t **)tu_push(a, (void **)sp->attributes, &sp->n_attributes, tu_kv(a, k, v));
}

static inline void tu_status(th_arena_t *a, th_otlp_span_t *sp, int code, const char *msg)
{
    sp->status = th_arena_alloc(a, sizeof(*sp->status));
    *sp->status =
        (Opentelemetry__Proto__Trace__V1__Status)OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    sp->status->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)code;
    sp->status->message = th_arena_strndup(a, msg, strlen(msg));
}

static inline Opentelemetry__Proto__Trace__V1__Span__Event *
tu_event(th_arena_t *a, th_otlp_span_t *sp, uint64_t t, const char *name)
{
    Opentelemetry__Proto__Trace__V1__Span__Event *e = th_arena_alloc(a, sizeof(*e));
    *e = (Opentelemetry__Proto__Trace__V1__Span__Event)
        OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
    e->time_unix_nano = t;
    e->name = th_arena_strndup(a, name, strlen(name));
    sp->events = (Opentelemetry__Proto__Trace__V1__Span__Event **)tu_push(a, (void **)sp->events,
                                                                          &sp->n_events, e);
    return e;
}

/* A unique empty directory under /tmp for one store. */
static inline void tu_tmpdir(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "/tmp/th-%s-XXXXXX", tag);
    if (!mkdtemp(out)) {
        abort();
    }
}

/* Remove a store directory (its files, then itself). */
static inline void tu_rmdir(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char f[1024];
                snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
                unlink(f);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

/* Write one request as one batch. */
static inline int tu_write(th_store_t *st, th_otlp_request_t *req)
{
    th_batch_t b = {.req = req, .span_count = th_otlp_request_span_count(req)};
    th_batch_t *one = &b;
    return th_store_write(st, &one, 1);
}

/* All spans of a request, in order. */
static inline size_t tu_spans(const th_otlp_request_t *req, const th_otlp_span_t **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            for (size_t k = 0; k < rs->scope_spans[j]->n_spans; k++) {
                if (n < max) {
                    out[n] = rs->scope_spans[j]->spans[k];
                }
                n++;
            }
        }
    }
    return n;
}

/* The service.name of the resource a span is under, or NULL. */
static inline const char *tu_service_of(const th_otlp_request_t *req, const th_otlp_span_t *sp)
{
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            for (size_t k = 0; k < rs->scope_spans[j]->n_spans; k++) {
                if (rs->scope_spans[j]->spans[k] == sp && rs->resource) {
                    for (size_t a = 0; a < rs->resource->n_attributes; a++) {
                        if (!strcmp(rs->resource->attributes[a]->key, "service.name")) {
                            return rs->resource->attributes[a]->value->string_value;
                        }
                    }
                }
            }
        }
    }
    return NULL;
}

#endif
