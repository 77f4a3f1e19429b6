/*
 * The api_v3 JSON gateway routes of the Jaeger query API (jaeger-api.md §5): services,
 * operations, a trace by id and trace search as OTLP/JSON under "result", and the trace
 * summaries the Jaeger UI's search page lists. Errors are grpc-gateway's shape,
 * {"error":{"httpCode":N,"message":"..."}}, written as Go's http.Error writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui-api/jaeger/jaeger_api.h"
#include "ui-api/jaeger/jaeger_model.h"
#include "ui-api/jaeger/json_writer.h"

static int v3_error(struct th_jaeger_req *r, int status, const char *msg)
{
    th_buf_t b = {0};
    th_jaeger_json_t w;
    th_jaeger_json_init(&w, &b, 0);
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "error");
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "httpCode");
    th_jaeger_json_int(&w, status);
    th_jaeger_json_keyz(&w, "message");
    th_jaeger_json_strz(&w, msg);
    th_jaeger_json_obj_end(&w);
    th_jaeger_json_obj_end(&w);
    int rc = th_jaeger_json_finish(&w);
    if (rc == 0) {
        rc = th_buf_append(&b, "\0", 1);
    }
    if (rc == 0) {
        rc = th_jaeger_http_error(r->resp, status, (const char *)b.ptr);
    }
    th_buf_free(&b);
    return rc;
}

static int v3_fail(struct th_jaeger_req *r, int err)
{
    char msg[160];
    if (err == TH_E2BIG) {
        th_jaeger_too_big_msg(r->api, "query.searchDepth", msg, sizeof(msg));
        return v3_error(r, 503, msg);
    }
    if (err == TH_ENOMEM) {
        return v3_error(r, 503,
                        "out of memory while building the response; narrow the query or lower "
                        "query.searchDepth");
    }
    snprintf(msg, sizeof(msg), "storage error: %s", th_strerror(err));
    return v3_error(r, 500, msg);
}

static int v3_finish(struct th_jaeger_req *r, th_jaeger_json_t *w)
{
    int rc = th_jaeger_json_finish(w);
    return rc == 0 ? 0 : v3_fail(r, rc == TH_ENOMEM || rc == TH_E2BIG ? rc : TH_EIO);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

int th_jaeger_v3_services(struct th_jaeger_req *r)
{
    const char **names = NULL;
    size_t n = 0;
    int rc = th_store_services(r->api->store, r->arena, &names, &n);
    if (rc != 0) {
        return v3_fail(r, rc);
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    th_jaeger_json_t w;
    th_jaeger_json_ok(r->resp);
    th_jaeger_json_init(&w, &r->resp->body, 0);
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "services");
    th_jaeger_json_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        th_jaeger_json_strz(&w, names[i]);
    }
    th_jaeger_json_arr_end(&w);
    th_jaeger_json_obj_end(&w);
    return v3_finish(r, &w);
}

static int cmp_op(const void *x, const void *y)
{
    const struct th_store_operation *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->span_kind > b->span_kind) - (a->span_kind < b->span_kind);
}

int th_jaeger_v3_operations(struct th_jaeger_req *r)
{
    const char *service = th_jaeger_param_value(&r->params, "service");
    const char *kind_s = th_jaeger_param_get(&r->params, "spanKind");
    if (!kind_s || !*kind_s) {
        kind_s = th_jaeger_param_value(&r->params, "span_kind");
    }
    int kind = *kind_s ? th_jaeger_span_kind_parse(kind_s) : 0;
    struct th_store_operation *ops = NULL;
    size_t n = 0;
    /* No service is not an error here: the list is just empty. */
    if (*service && kind >= 0) {
        int rc = th_store_operations(r->api->store, service, kind, r->arena, &ops, &n);
        if (rc != 0) {
            return v3_fail(r, rc);
        }
    }
    if (n > 1) {
        qsort(ops, n, sizeof(*ops), cmp_op);
    }
    th_jaeger_json_t w;
    th_jaeger_json_ok(r->resp);
    th_jaeger_json_init(&w, &r->resp->body, 0);
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "operations");
    th_jaeger_json_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        /* "unspecified" asks for the operations of unknown kind only */
        if (kind == 0 && *kind_s && ops[i].span_kind != 0) {
            continue;
        }
        const char *k = th_jaeger_span_kind_name(ops[i].span_kind);
        th_jaeger_json_obj_begin(&w);
        th_jaeger_json_keyz(&w, "name");
        th_jaeger_json_strz(&w, ops[i].name);
        th_jaeger_json_keyz(&w, "spanKind");
        th_jaeger_json_strz(&w, *k ? k : "internal"); /* Jaeger's stand-in for unknown */
        th_jaeger_json_obj_end(&w);
    }
    th_jaeger_json_arr_end(&w);
    th_jaeger_json_obj_end(&w);
    return v3_finish(r, &w);
}

/* {"result": <OTLP TracesData JSON of every trace's resource spans>} */
static int write_result(struct th_jaeger_req *r, th_otlp_request_t **traces, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += traces[i] ? traces[i]->n_resource_spans : 0;
    }
    th_otlp_request_t all;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&all);
    all.resource_spans =
        th_arena_alloc(r->arena, (total ? total : 1) * sizeof(*all.resource_spans));
    if (!all.resource_spans) {
        return v3_fail(r, TH_ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; traces[i] && j < traces[i]->n_resource_spans; j++) {
            all.resource_spans[all.n_resource_spans++] = traces[i]->resource_spans[j];
        }
    }
    th_jaeger_json_ok(r->resp);
    th_buf_t *b = &r->resp->body;
    int rc = th_buf_append(b, "{\"result\":", 10);
    if (rc == 0) {
        rc = th_otlp_encode_json(&all, b);
    }
    if (rc == 0) {
        rc = th_buf_append(b, "}", 1);
    }
    if (rc == 0 && b->len > th_jaeger_max_response(r->api)) {
        rc = TH_E2BIG;
    }
    return rc == 0 ? 0 : v3_fail(r, rc);
}

int th_jaeger_v3_get_trace(struct th_jaeger_req *r)
{
    uint8_t id[16];
    char err[1024], msg[1100];
    if (th_jaeger_parse_trace_id(r->segment, true, id, err, sizeof(err)) != 0) {
        snprintf(msg, sizeof(msg), "malformed parameter trace_id: %s", err);
        return v3_error(r, 400, msg);
    }
    bool raw;
    if (th_jaeger_parse_v3_get_trace(&r->params, &raw, err, sizeof(err)) != 0) {
        return v3_error(r, 400, err);
    }
    th_otlp_request_t *trace;
    int rc = th_jaeger_fetch_trace(r, id, raw, &trace);
    if (rc == TH_ENOENT) {
        return v3_error(r, 404, "No traces found");
    }
    if (rc != 0) {
        return v3_fail(r, rc);
    }
    return write_result(r, &trace, 1);
}

/* An error response was written (1), or writing it failed (TH_ENOMEM). */
static int handled(int rc)
{
    return rc ? rc : 1;
}

/* Parse, search and fetch: the part /api/v3/traces and /api/v3/trace-summaries share.
 * @return 1 when an error response was written, 0 with the traces, or TH_ENOMEM. */
static int v3_search(struct th_jaeger_req *r, bool force_adjust, th_otlp_request_t ***traces,
                     size_t *n)
{
    struct th_jaeger_search s;
    char err[1024];
    int rc = th_jaeger_parse_v3_search(&r->params, r->arena, &s, err, sizeof(err));
    if (rc == TH_EINVAL) {
        return handled(v3_error(r, 400, err));
    }
    if (rc != 0) {
        return handled(v3_fail(r, rc));
    }
    if (*s.service == '\0') {
        return handled(v3_error(r, 400, "query.serviceName is required"));
    }
    if (force_adjust) {
        s.raw = false;
    }
    uint8_t(*ids)[16];
    size_t found;
    if ((rc = th_jaeger_find_traces(r, &s, &ids, &found)) != 0) {
        return handled(v3_fail(r, rc));
    }
    *traces = th_arena_calloc(r->arena, found ? found : 1, sizeof(**traces));
    if (!*traces) {
        return handled(v3_fail(r, TH_ENOMEM));
    }
    *n = 0;
    for (size_t i = 0; i < found; i++) {
        rc = th_jaeger_fetch_trace(r, ids[i], s.raw, &(*traces)[*n]);
        if (rc == 0) {
            (*n)++;
        } else if (rc != TH_ENOENT) {
            return handled(v3_fail(r, rc));
        }
    }
    return 0;
}

int th_jaeger_v3_find_traces(struct th_jaeger_req *r)
{
    th_otlp_request_t **traces;
    size_t n;
    int rc = v3_search(r, false, &traces, &n);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (n == 0) {
        return v3_error(r, 404, "No traces found");
    }
    return write_result(r, traces, n);
}

int th_jaeger_v3_trace_summaries(struct th_jaeger_req *r)
{
    th_otlp_request_t **traces;
    size_t n;
    int rc = v3_search(r, true, &traces, &n);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    th_jaeger_json_t w;
    th_jaeger_json_ok(r->resp);
    th_jaeger_json_init(&w, &r->resp->body, 0);
    th_jaeger_json_set_limit(&w, th_jaeger_max_response(r->api));
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "summaries");
    th_jaeger_json_arr_begin(&w); /* [] when nothing matched: 200, not 404 */
    for (size_t i = 0; i < n; i++) {
        struct th_jaeger_summary sum;
        if (th_jaeger_summarize(traces[i], r->arena, &sum) != 0) {
            return v3_fail(r, TH_ENOMEM);
        }
        th_jaeger_write_summary(&w, &sum);
    }
    th_jaeger_json_arr_end(&w);
    th_jaeger_json_obj_end(&w);
    return v3_finish(r, &w);
}
