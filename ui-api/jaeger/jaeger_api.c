/*
 * Routing of the Jaeger query API and the v1 ("internal HTTP JSON") handlers: services,
 * operations (both routes), trace search and multi-get, trace by id, dependencies. Shapes,
 * defaults and messages follow jaeger-api.md §2 and §3; the api_v3 handlers are in
 * jaeger_v3.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui-api/jaeger/jaeger_api.h"
#include "ui-api/jaeger/jaeger_model.h"
#include "ui-api/jaeger/json_writer.h"

/* ---- Responses ---------------------------------------------------------------------------- */

void th_jaeger_response_free(struct th_jaeger_response *resp)
{
    th_buf_free(&resp->body);
}

int th_jaeger_http_error(struct th_jaeger_response *resp, int status, const char *text)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->nosniff = true;
    resp->body.len = 0;
    int rc = th_buf_append(&resp->body, text, strlen(text));
    if (rc == 0) {
        rc = th_buf_append(&resp->body, "\n", 1);
    }
    return rc;
}

void th_jaeger_json_ok(struct th_jaeger_response *resp)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->nosniff = false;
    resp->body.len = 0;
}

/* The v1 error envelope, written as Go's http.Error writes handleError's JSON. */
static int v1_error(struct th_jaeger_req *r, int status, const char *msg)
{
    th_buf_t b = {0};
    th_jaeger_json_t w;
    th_jaeger_json_init(&w, &b, 0);
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "data");
    th_jaeger_json_null(&w);
    th_jaeger_json_keyz(&w, "total");
    th_jaeger_json_int(&w, 0);
    th_jaeger_json_keyz(&w, "limit");
    th_jaeger_json_int(&w, 0);
    th_jaeger_json_keyz(&w, "offset");
    th_jaeger_json_int(&w, 0);
    th_jaeger_json_keyz(&w, "errors");
    th_jaeger_json_arr_begin(&w);
    th_jaeger_json_obj_begin(&w);
    th_jaeger_json_keyz(&w, "code");
    th_jaeger_json_int(&w, status);
    th_jaeger_json_keyz(&w, "msg");
    th_jaeger_json_strz(&w, msg);
    th_jaeger_json_obj_end(&w);
    th_jaeger_json_arr_end(&w);
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

size_t th_jaeger_max_response(const struct th_jaeger_api *api)
{
    return api->max_response ? api->max_response : TH_JAEGER_MAX_RESPONSE;
}

void th_jaeger_too_big_msg(const struct th_jaeger_api *api, const char *param, char *out,
                           size_t cap)
{
    size_t n = th_jaeger_max_response(api);
    if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0) {
        snprintf(out, cap,
                 "the response would be larger than %zu MiB; narrow the query or lower %s", n >> 20,
                 param);
    } else {
        snprintf(out, cap,
                 "the response would be larger than %zu bytes; narrow the query or lower %s", n,
                 param);
    }
}

/* A store failure, memory exhaustion or an answer too big, as the v1 API reports it. */
static int v1_fail(struct th_jaeger_req *r, int err)
{
    char msg[160];
    if (err == TH_E2BIG) {
        th_jaeger_too_big_msg(r->api, "'limit'", msg, sizeof(msg));
        return v1_error(r, 503, msg);
    }
    if (err == TH_ENOMEM) {
        return v1_error(r, 503,
                        "out of memory while building the response; narrow the query or lower "
                        "'limit'");
    }
    snprintf(msg, sizeof(msg), "storage error: %s", th_strerror(err));
    return v1_error(r, 500, msg);
}

static bool pretty(const struct th_jaeger_req *r)
{
    const char *v = th_jaeger_param_value(&r->params, "prettyPrint");
    return *v && strcmp(v, "false") != 0;
}

static void envelope_begin(struct th_jaeger_req *r, th_jaeger_json_t *w)
{
    th_jaeger_json_ok(r->resp);
    th_jaeger_json_init(w, &r->resp->body, pretty(r) ? 4 : 0);
    th_jaeger_json_set_limit(w, th_jaeger_max_response(r->api));
    th_jaeger_json_obj_begin(w);
    th_jaeger_json_keyz(w, "data");
}

/* Close the envelope (errors are written by the caller when there are any) and check it. */
static int envelope_end(struct th_jaeger_req *r, th_jaeger_json_t *w, int64_t total,
                        bool errors_written)
{
    th_jaeger_json_keyz(w, "total");
    th_jaeger_json_int(w, total);
    th_jaeger_json_keyz(w, "limit");
    th_jaeger_json_int(w, 0);
    th_jaeger_json_keyz(w, "offset");
    th_jaeger_json_int(w, 0);
    if (!errors_written) {
        th_jaeger_json_keyz(w, "errors");
        th_jaeger_json_null(w);
    }
    th_jaeger_json_obj_end(w);
    int rc = th_jaeger_json_finish(w);
    return rc == 0 ? 0 : v1_fail(r, rc == TH_ENOMEM || rc == TH_E2BIG ? rc : TH_EIO);
}

/* ---- Shared helpers ------------------------------------------------------------------------ */

int th_jaeger_fetch_trace(struct th_jaeger_req *r, const uint8_t id[16], bool raw,
                          th_otlp_request_t **out)
{
    th_otlp_request_t *req = NULL;
    /* start/end hints are not passed on: clients disagree on their unit (jaeger-api.md §2.6) */
    int rc = th_store_get_trace(r->api->store, id, 0, 0, r->arena, &req);
    if (rc != 0) {
        return rc;
    }
    if (th_jaeger_span_count(req) == 0) {
        return TH_ENOENT; /* never a trace without spans: Grafana indexes spans[0] */
    }
    if (!raw && (rc = th_jaeger_adjust(req, r->api->max_clock_skew_ns, r->arena)) != 0) {
        return rc;
    }
    if (th_jaeger_span_count(req) == 0) {
        return TH_ENOENT;
    }
    *out = req;
    return 0;
}

static uint64_t ns_or_zero(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

int th_jaeger_find_traces(struct th_jaeger_req *r, const struct th_jaeger_search *s,
                          uint8_t (**ids)[16], size_t *n)
{
    struct th_trace_query q = {
        .service = s->service,
        .operation = *s->operation ? s->operation : NULL,
        .tag_keys = s->tags.keys,
        .tag_values = s->tags.values,
        .n_tags = s->tags.n,
        .start_min_ns = ns_or_zero(s->start_min_ns),
        .start_max_ns = ns_or_zero(s->start_max_ns),
        .duration_min_ns = ns_or_zero(s->duration_min_ns),
        .duration_max_ns = ns_or_zero(s->duration_max_ns),
    };
    /* As Jaeger's stores: no positive limit means the default; and never above the UI's max. */
    int64_t limit = s->limit > 0 ? s->limit : TH_JAEGER_DEFAULT_LIMIT;
    q.limit = (size_t)TH_MIN(limit, (int64_t)TH_JAEGER_MAX_LIMIT);
    *ids = th_arena_alloc(r->arena, q.limit * sizeof(**ids));
    if (!*ids) {
        return TH_ENOMEM;
    }
    *n = 0;
    if (s->start_max_ns < 0 || s->start_max_ns < s->start_min_ns) {
        return 0; /* an empty window */
    }
    return th_store_find_trace_ids(r->api->store, &q, *ids, n);
}

/* ---- v1 handlers --------------------------------------------------------------------------- */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int v1_services(struct th_jaeger_req *r)
{
    const char **names = NULL;
    size_t n = 0;
    int rc = th_store_services(r->api->store, r->arena, &names, &n);
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    th_jaeger_json_arr_begin(&w); /* never null, even when empty */
    for (size_t i = 0; i < n; i++) {
        th_jaeger_json_strz(&w, names[i]);
    }
    th_jaeger_json_arr_end(&w);
    return envelope_end(r, &w, (int64_t)n, false);
}

static int cmp_op(const void *x, const void *y)
{
    const struct th_store_operation *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->span_kind > b->span_kind) - (a->span_kind < b->span_kind);
}

/* The operations of a service: kind < 0 means an unknown kind name (nothing matches), 0 all
 * kinds, 6 the "unspecified" kind (0 in OTLP, which the store reads as "all"). */
static int load_operations(struct th_jaeger_req *r, const char *service, int kind,
                           struct th_store_operation **ops, size_t *n)
{
    *ops = NULL;
    *n = 0;
    if (kind < 0) {
        return 0;
    }
    int rc = th_store_operations(r->api->store, service, kind == 6 ? 0 : kind, r->arena, ops, n);
    if (rc != 0) {
        return rc;
    }
    if (kind == 6) {
        size_t m = 0;
        for (size_t i = 0; i < *n; i++) {
            if ((*ops)[i].span_kind == 0) {
                (*ops)[m++] = (*ops)[i];
            }
        }
        *n = m;
    }
    if (*n > 1) {
        qsort(*ops, *n, sizeof(**ops), cmp_op);
    }
    return 0;
}

/* spanKind / span_kind as the handlers take it: "" = all kinds. */
static int kind_param(const char *v)
{
    if (*v == '\0') {
        return 0;
    }
    int k = th_jaeger_span_kind_parse(v);
    return k == 0 ? 6 : k;
}

static int v1_service_operations(struct th_jaeger_req *r)
{
    struct th_store_operation *ops;
    size_t n;
    int rc = load_operations(r, r->segment, 0, &ops, &n);
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    th_jaeger_json_arr_begin(&w);
    size_t unique = 0;
    for (size_t i = 0; i < n; i++) {
        /* one name per operation whatever its kinds (sorted, so duplicates are adjacent) */
        if (i > 0 && !strcmp(ops[i].name, ops[i - 1].name)) {
            continue;
        }
        th_jaeger_json_strz(&w, ops[i].name);
        unique++;
    }
    th_jaeger_json_arr_end(&w);
    return envelope_end(r, &w, (int64_t)unique, false);
}

static int v1_operations(struct th_jaeger_req *r)
{
    const char *service = th_jaeger_param_value(&r->params, "service");
    if (*service == '\0') {
        return v1_error(r, 400, "parameter 'service' is required");
    }
    struct th_store_operation *ops;
    size_t n;
    int rc = load_operations(r, service, kind_param(th_jaeger_param_value(&r->params, "spanKind")),
                             &ops, &n);
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    th_jaeger_json_arr_begin(&w);
    for (size_t i = 0; i < n; i++) {
        th_jaeger_json_obj_begin(&w);
        th_jaeger_json_keyz(&w, "name");
        th_jaeger_json_strz(&w, ops[i].name);
        th_jaeger_json_keyz(&w, "spanKind");
        th_jaeger_json_strz(&w, th_jaeger_span_kind_name(ops[i].span_kind));
        th_jaeger_json_obj_end(&w);
    }
    th_jaeger_json_arr_end(&w);
    return envelope_end(r, &w, (int64_t)n, false);
}

static int v1_write_traces(struct th_jaeger_req *r, th_jaeger_json_t *w, th_otlp_request_t **traces,
                           size_t n)
{
    th_jaeger_json_arr_begin(w);
    for (size_t i = 0; i < n; i++) {
        if (traces[i]) {
            int rc = th_jaeger_write_v1_trace(w, traces[i], r->arena);
            if (rc != 0) {
                return rc;
            }
        }
    }
    th_jaeger_json_arr_end(w);
    return 0;
}

/* traceID= mode: each id looked up; the missing ones are listed in errors, status still 200. */
static int v1_multi_get(struct th_jaeger_req *r, const struct th_jaeger_search *s)
{
    th_otlp_request_t **traces = th_arena_calloc(r->arena, s->n_trace_ids, sizeof(*traces));
    if (!traces) {
        return v1_fail(r, TH_ENOMEM);
    }
    size_t missing = 0;
    for (size_t i = 0; i < s->n_trace_ids; i++) {
        int rc = th_jaeger_fetch_trace(r, s->trace_ids[i], s->raw, &traces[i]);
        if (rc == TH_ENOENT) {
            missing++;
        } else if (rc != 0) {
            return v1_fail(r, rc);
        }
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    int rc = v1_write_traces(r, &w, traces, s->n_trace_ids);
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    if (missing) {
        th_jaeger_json_keyz(&w, "total");
        th_jaeger_json_int(&w, 0);
        th_jaeger_json_keyz(&w, "limit");
        th_jaeger_json_int(&w, 0);
        th_jaeger_json_keyz(&w, "offset");
        th_jaeger_json_int(&w, 0);
        th_jaeger_json_keyz(&w, "errors");
        th_jaeger_json_arr_begin(&w);
        for (size_t i = 0; i < s->n_trace_ids; i++) {
            if (traces[i]) {
                continue;
            }
            char tid[33];
            th_jaeger_trace_id_string(s->trace_ids[i], tid);
            th_jaeger_json_obj_begin(&w);
            th_jaeger_json_keyz(&w, "msg");
            th_jaeger_json_strz(&w, "trace not found");
            th_jaeger_json_keyz(&w, "traceID");
            th_jaeger_json_strz(&w, tid);
            th_jaeger_json_obj_end(&w);
        }
        th_jaeger_json_arr_end(&w);
        th_jaeger_json_obj_end(&w);
        rc = th_jaeger_json_finish(&w);
        return rc == 0 ? 0 : v1_fail(r, rc);
    }
    return envelope_end(r, &w, 0, false);
}

static int v1_search(struct th_jaeger_req *r)
{
    struct th_jaeger_search s;
    char err[1024];
    int rc = th_jaeger_parse_v1_search(&r->params, r->now_ns, r->arena, &s, err, sizeof(err));
    if (rc == TH_EINVAL || rc == TH_E2BIG) {
        return v1_error(r, 400, err);
    }
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    if (s.n_trace_ids) {
        return v1_multi_get(r, &s);
    }
    uint8_t(*ids)[16];
    size_t n;
    if ((rc = th_jaeger_find_traces(r, &s, &ids, &n)) != 0) {
        return v1_fail(r, rc);
    }
    th_otlp_request_t **traces = th_arena_calloc(r->arena, n ? n : 1, sizeof(*traces));
    if (!traces) {
        return v1_fail(r, TH_ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        rc = th_jaeger_fetch_trace(r, ids[i], s.raw, &traces[i]);
        if (rc != 0 && rc != TH_ENOENT) { /* gone since the search (retention): skip it */
            return v1_fail(r, rc);
        }
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    if ((rc = v1_write_traces(r, &w, traces, n)) != 0) {
        return v1_fail(r, rc);
    }
    return envelope_end(r, &w, 0, false);
}

static int v1_get_trace(struct th_jaeger_req *r)
{
    uint8_t id[16];
    char err[1024];
    if (th_jaeger_parse_trace_id(r->segment, true, id, err, sizeof(err)) != 0) {
        return v1_error(r, 400, err);
    }
    bool raw;
    if (th_jaeger_parse_v1_get_trace(&r->params, &raw, err, sizeof(err)) != 0) {
        return v1_error(r, 400, err);
    }
    th_otlp_request_t *trace;
    int rc = th_jaeger_fetch_trace(r, id, raw, &trace);
    if (rc == TH_ENOENT) {
        return v1_error(r, 404, "trace not found");
    }
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    if ((rc = v1_write_traces(r, &w, &trace, 1)) != 0) {
        return v1_fail(r, rc);
    }
    return envelope_end(r, &w, 0, false);
}

static int cmp_dep(const void *x, const void *y)
{
    const struct th_store_dependency *a = x, *b = y;
    int c = strcmp(a->parent, b->parent);
    return c ? c : strcmp(a->child, b->child);
}

static int v1_dependencies(struct th_jaeger_req *r)
{
    int64_t end_ns, lookback_ns;
    char err[1024];
    if (th_jaeger_parse_v1_dependencies(&r->params, r->now_ns, &end_ns, &lookback_ns, err,
                                        sizeof(err)) != 0) {
        return v1_error(r, 400, err);
    }
    struct th_store_dependency *deps = NULL;
    size_t n = 0;
    int rc = 0;
    if (end_ns > 0 && lookback_ns > 0) {
        rc = th_store_dependencies(r->api->store, (uint64_t)end_ns, (uint64_t)lookback_ns, r->arena,
                                   &deps, &n);
    }
    if (rc != 0) {
        return v1_fail(r, rc);
    }
    /* keep the links of one service, if asked; then merge duplicate pairs */
    const char *service = th_jaeger_param_value(&r->params, "service");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!*service || !strcmp(deps[i].parent, service) || !strcmp(deps[i].child, service)) {
            deps[m++] = deps[i];
        }
    }
    if (m > 1) {
        qsort(deps, m, sizeof(*deps), cmp_dep);
    }
    size_t u = 0;
    for (size_t i = 0; i < m; i++) {
        if (u > 0 && cmp_dep(&deps[u - 1], &deps[i]) == 0) {
            deps[u - 1].call_count += deps[i].call_count;
        } else {
            deps[u++] = deps[i];
        }
    }
    th_jaeger_json_t w;
    envelope_begin(r, &w);
    th_jaeger_json_arr_begin(&w);
    for (size_t i = 0; i < u; i++) {
        th_jaeger_json_obj_begin(&w);
        th_jaeger_json_keyz(&w, "parent");
        th_jaeger_json_strz(&w, deps[i].parent);
        th_jaeger_json_keyz(&w, "child");
        th_jaeger_json_strz(&w, deps[i].child);
        th_jaeger_json_keyz(&w, "callCount");
        th_jaeger_json_uint(&w, deps[i].call_count);
        th_jaeger_json_obj_end(&w);
    }
    th_jaeger_json_arr_end(&w);
    return envelope_end(r, &w, 0, false);
}

/* ---- Routing ------------------------------------------------------------------------------- */

typedef int (*handler_fn)(struct th_jaeger_req *r);

/* A route: literal segments, "*" for the one wildcard segment. */
struct route {
    const char *segs[5];
    handler_fn fn;
};

static const struct route routes[] = {
    {{"api", "services", NULL}, v1_services},
    {{"api", "services", "*", "operations", NULL}, v1_service_operations},
    {{"api", "operations", NULL}, v1_operations},
    {{"api", "traces", NULL}, v1_search},
    {{"api", "traces", "*", NULL}, v1_get_trace},
    {{"api", "dependencies", NULL}, v1_dependencies},
    {{"api", "v3", "services", NULL}, th_jaeger_v3_services},
    {{"api", "v3", "operations", NULL}, th_jaeger_v3_operations},
    {{"api", "v3", "traces", NULL}, th_jaeger_v3_find_traces},
    {{"api", "v3", "traces", "*", NULL}, th_jaeger_v3_get_trace},
    {{"api", "v3", "trace-summaries", NULL}, th_jaeger_v3_trace_summaries},
};

#define MAX_SEGS 6

/* Split a path after its leading '/' into percent-decoded segments (as Go's ServeMux matches
 * them). @return the segment count, MAX_SEGS + 1 when there are more, or -1 for a bad escape. */
static int split_path(const char *p, size_t len, th_arena_t *a, const char **segs, size_t *seg_lens)
{
    int n = 0;
    size_t i = 1;
    while (i <= len) {
        size_t j = i;
        while (j < len && p[j] != '/') {
            j++;
        }
        if (n == MAX_SEGS) {
            return MAX_SEGS + 1;
        }
        char *s;
        size_t sl;
        int rc = th_jaeger_unescape(p + i, j - i, false, a, &s, &sl);
        if (rc == TH_EINVAL) {
            return -1;
        }
        if (rc != 0) {
            return -2;
        }
        segs[n] = s;
        seg_lens[n] = sl;
        n++;
        i = j + 1;
    }
    return n;
}

static const struct route *match(const char **segs, const size_t *lens, int n, const char **wild)
{
    for (size_t r = 0; r < TH_ARRAY_SIZE(routes); r++) {
        int k = 0;
        const char *w = NULL;
        for (; k < n && routes[r].segs[k]; k++) {
            if (!strcmp(routes[r].segs[k], "*")) {
                if (lens[k] == 0) {
                    break;
                }
                w = segs[k];
            } else if (strlen(routes[r].segs[k]) != lens[k] ||
                       memcmp(routes[r].segs[k], segs[k], lens[k]) != 0) {
                break;
            }
        }
        if (k == n && !routes[r].segs[k]) {
            *wild = w;
            return &routes[r];
        }
    }
    return NULL;
}

int th_jaeger_api_serve(const struct th_jaeger_api *api, const char *method, size_t method_len,
                        const char *path, size_t path_len, const char *query, size_t query_len,
                        int64_t now_ns, struct th_jaeger_response *resp)
{
    resp->allow = NULL;
    resp->body.len = 0;
    th_arena_t *arena = th_arena_create(16 * 1024, api->request_memory ? api->request_memory
                                                                       : TH_JAEGER_REQUEST_MEMORY);
    if (!arena) {
        return TH_ENOMEM;
    }
    struct th_jaeger_req r = {.api = api, .arena = arena, .now_ns = now_ns, .resp = resp};
    int rc;
    /* Everything lives under the base path; outside it there is nothing. */
    size_t bl = strlen(api->base_path);
    if (path_len < bl || memcmp(path, api->base_path, bl) != 0 ||
        (path_len > bl && path[bl] != '/') || path_len == bl) {
        rc = th_jaeger_http_error(resp, 404, "404 page not found");
        goto out;
    }
    const char *segs[MAX_SEGS];
    size_t lens[MAX_SEGS];
    int n = split_path(path + bl, path_len - bl, arena, segs, lens);
    if (n == -2) {
        rc = TH_ENOMEM;
        goto out;
    }
    if (n == -1) {
        rc = th_jaeger_http_error(resp, 400, "400 Bad Request");
        goto out;
    }
    const struct route *route = n <= MAX_SEGS ? match(segs, lens, n, &r.segment) : NULL;
    if (!route) {
        rc = th_jaeger_http_error(resp, 404, "404 page not found");
        goto out;
    }
    bool get = method_len == 3 && !memcmp(method, "GET", 3);
    bool head = method_len == 4 && !memcmp(method, "HEAD", 4);
    if (!get && !head) {
        rc = th_jaeger_http_error(resp, 405, "Method Not Allowed");
        resp->allow = "GET, HEAD";
        goto out;
    }
    rc = th_jaeger_params_parse(query ? query : "", query ? query_len : 0, arena, &r.params);
    if (rc == TH_E2BIG) {
        rc = th_jaeger_http_error(resp, 414, "414 Request URI Too Long");
        goto out;
    }
    if (rc == 0) {
        rc = route->fn(&r);
    }
out:
    th_arena_destroy(arena);
    return rc;
}
