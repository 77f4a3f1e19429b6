/*
 * The HTTP side of the Jaeger query API: an h2o 2.2 server on a libuv loop of its own thread.
 * Each request is answered synchronously by th_jaeger_api_serve() (which copies what it reads
 * from the store into a per-request arena and builds the whole body), then the body is handed
 * to h2o in one h2o_send and freed when h2o releases the request's pool. CORS and the
 * configured response headers are added here; everything Jaeger-specific is in jaeger_api.c.
 *
 * Shutdown runs on the server thread: close the listener, ask h2o to shut connections down,
 * wait a short grace for requests in flight, then expire the keep-alive timeouts so idle
 * connections close, and only when no connection is left dispose of the h2o context (which
 * must happen while the loop is not running, since h2o_context_dispose runs the loop itself).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <uv.h>

#include "th/conn_limit.h"
#include "th/http_server.h"
#include "th/log.h"
#include "th/tls.h"
#include "ui-api/jaeger/jaeger_query.h"

/* How long connections get to finish their requests before idle ones are closed, and how
 * long shutdown waits at most for a connection that is still sending. */
#define DRAIN_GRACE_MS     250
#define DRAIN_DEADLINE_MS  2000
#define DRAIN_POLL_MS      20
#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_MAX_BODY   ((size_t)20 * 1024 * 1024)

struct th_jaeger_http {
    struct th_jaeger_http_cfg cfg;
    const struct th_component *log_as;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_timer_t drain_timer;
    uv_thread_t thread;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    th_tls_server_t *tls; /* HTTPS when set */
    size_t n_conns;       /* open connections (server thread only) */
    size_t max_conns;     /* max_connections or th_conn_limit_default(): beyond it
                           * connections are refused */
    struct th_conn_refusals refusals;
    struct th_conn_watch watch; /* the progress deadline: bound and connections by fd */
    uv_timer_t sweep_timer;     /* one per server: shuts stalled connections down */
    int port;
    uint64_t drain_started;
    bool forced;
    bool abandoned; /* connections outlived the deadline: h2o cannot be disposed of */
    bool loop_ready, h2o_ready, listener_ready, thread_started;
};

struct handler {
    h2o_handler_t super;
    th_jaeger_http_t *srv;
};

/* ---- Responses ---------------------------------------------------------------------------- */

/* h2o keeps the pointers it is given: values are copied into the request's pool, since some
 * are built on the stack. */
static void add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base,
                          v.len);
}

static void add_headerz(h2o_req_t *req, const char *name, const char *value)
{
    add_header(req, name, value, strlen(value));
}

static h2o_iovec_t req_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i >= 0 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

/* The body lives in the request's pool: h2o releases it after the last byte went out. */
static void dispose_body(void *p)
{
    th_buf_free(p);
}

/* What every response gets: status, content type, nosniff, Allow, the configured headers. */
static void common_headers(th_jaeger_http_t *s, h2o_req_t *req, int status,
                           const char *content_type, bool nosniff, const char *allow)
{
    req->res.status = status;
    req->res.reason = th_http_reason(status);
    if (content_type) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    }
    if (nosniff) {
        add_headerz(req, "x-content-type-options", "nosniff");
    }
    if (allow) {
        add_headerz(req, "allow", allow);
    }
    const th_strmap_t *rh = s->cfg.response_headers;
    for (size_t i = 0; rh && i < rh->n; i++) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, rh->keys[i], strlen(rh->keys[i]), 0,
                              rh->keys[i], rh->vals[i], strlen(rh->vals[i]));
    }
    if (!s->cfg.keep_alive) {
        req->http1_is_persistent = 0;
    }
}

static void send_response(th_jaeger_http_t *s, h2o_req_t *req, struct th_jaeger_response *resp)
{
    static h2o_generator_t generator = {NULL, NULL};
    common_headers(s, req, resp->status, resp->content_type, resp->nosniff, resp->allow);
    th_buf_t *body = h2o_mem_alloc_shared(&req->pool, sizeof(*body), dispose_body);
    *body = resp->body;
    resp->body = (th_buf_t){0};
    req->res.content_length = body->len;
    h2o_start_response(req, &generator);
    h2o_iovec_t iov = h2o_iovec_init(body->ptr, body->len);
    bool head = req->method.len == 4 && !memcmp(req->method.base, "HEAD", 4);
    h2o_send(req, &iov, head || body->len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* A web UI answer: its body belongs to the UI, which outlives every request, so it is sent
 * without a copy. A 304 has no body (and no Content-Length); HEAD keeps the entity's length. */
static void send_ui(th_jaeger_http_t *s, h2o_req_t *req, const struct th_jaeger_ui_response *r)
{
    static h2o_generator_t generator = {NULL, NULL};
    common_headers(s, req, r->status, r->status == 304 ? NULL : r->content_type, r->nosniff,
                   r->allow);
    if (r->etag) {
        add_headerz(req, "etag", r->etag);
    }
    if (r->cache_control) {
        add_headerz(req, "cache-control", r->cache_control);
    }
    if (r->vary) {
        add_headerz(req, "vary", r->vary);
    }
    if (r->content_encoding && r->status != 304) {
        add_headerz(req, "content-encoding", r->content_encoding);
    }
    if (r->location[0]) {
        add_headerz(req, "location", r->location);
    }
    bool head = req->method.len == 4 && !memcmp(req->method.base, "HEAD", 4);
    bool body = r->status != 304 && !head && r->len > 0;
    req->res.content_length = r->status == 304 ? SIZE_MAX : r->len;
    h2o_start_response(req, &generator);
    h2o_iovec_t iov = h2o_iovec_init(body ? r->body : NULL, body ? r->len : 0);
    h2o_send(req, &iov, body ? 1 : 0, H2O_SEND_STATE_FINAL);
}

/* ---- CORS (rs/cors with AllowCredentials, as the Collector configures it) ----------------- */

static bool wildcard_match(const char *pattern, const char *s, size_t len)
{
    const char *star = strchr(pattern, '*');
    if (!star) {
        return strlen(pattern) == len && !strncasecmp(pattern, s, len);
    }
    size_t pre = (size_t)(star - pattern), suf = strlen(star + 1);
    return len >= pre + suf && !strncasecmp(pattern, s, pre) &&
           !strncasecmp(star + 1, s + len - suf, suf);
}

static bool origin_allowed(const th_jaeger_http_t *s, h2o_iovec_t origin)
{
    const th_strlist_t *o = s->cfg.cors_origins;
    for (size_t i = 0; o && origin.base && i < o->n; i++) {
        if (wildcard_match(o->v[i], origin.base, origin.len)) {
            return true;
        }
    }
    return false;
}

static bool header_allowed(const th_jaeger_http_t *s, const char *h, size_t len)
{
    static const char *const safe[] = {"accept",       "accept-language",  "content-language",
                                       "content-type", "x-requested-with", "origin"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(safe); i++) {
        if (strlen(safe[i]) == len && !strncasecmp(safe[i], h, len)) {
            return true;
        }
    }
    const th_strlist_t *a = s->cfg.cors_headers;
    for (size_t i = 0; a && i < a->n; i++) {
        if (!strcmp(a->v[i], "*") || (strlen(a->v[i]) == len && !strncasecmp(a->v[i], h, len))) {
            return true;
        }
    }
    return false;
}

static void cors_allow(h2o_req_t *req, h2o_iovec_t origin)
{
    add_header(req, "access-control-allow-origin", origin.base, origin.len);
    add_headerz(req, "access-control-allow-credentials", "true");
}

/* A preflight: 204 with the grants when the origin, method and headers are all allowed. */
static void preflight(th_jaeger_http_t *s, h2o_req_t *req, h2o_iovec_t origin)
{
    add_headerz(req, "vary",
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    h2o_iovec_t m = req_header(req, "access-control-request-method");
    h2o_iovec_t hs = req_header(req, "access-control-request-headers");
    bool ok = origin_allowed(s, origin) && ((m.len == 3 && !strncasecmp(m.base, "GET", 3)) ||
                                            (m.len == 4 && !strncasecmp(m.base, "HEAD", 4)) ||
                                            (m.len == 4 && !strncasecmp(m.base, "POST", 4)));
    for (size_t i = 0; ok && i < hs.len;) {
        while (i < hs.len && (hs.base[i] == ' ' || hs.base[i] == ',')) {
            i++;
        }
        size_t j = i;
        while (j < hs.len && hs.base[j] != ',' && hs.base[j] != ' ') {
            j++;
        }
        if (j > i && !header_allowed(s, hs.base + i, j - i)) {
            ok = false;
        }
        i = j;
    }
    if (ok) {
        cors_allow(req, origin);
        char upper[8];
        size_t n = TH_MIN(m.len, sizeof(upper));
        for (size_t i = 0; i < n; i++) {
            upper[i] = (char)(m.base[i] >= 'a' && m.base[i] <= 'z' ? m.base[i] - 32 : m.base[i]);
        }
        add_header(req, "access-control-allow-methods", upper, n);
        if (hs.len) {
            add_header(req, "access-control-allow-headers", hs.base, hs.len);
        }
        if (s->cfg.cors_max_age_s > 0) {
            char age[24];
            snprintf(age, sizeof(age), "%lld", (long long)s->cfg.cors_max_age_s);
            add_headerz(req, "access-control-max-age", age);
        }
    }
    struct th_jaeger_response resp = {.status = 204};
    send_response(s, req, &resp);
}

/* ---- Request metrics ---------------------------------------------------------------------- */

static const struct {
    const char *segs[5]; /* "*" matches one non-empty segment */
    const char *name;
} route_templates[] = {
    [TH_JAEGER_ROUTE_TRACE] = {{"api", "traces", "*"}, "/api/traces/{traceID}"},
    [TH_JAEGER_ROUTE_TRACES] = {{"api", "traces"}, "/api/traces"},
    [TH_JAEGER_ROUTE_SERVICES] = {{"api", "services"}, "/api/services"},
    [TH_JAEGER_ROUTE_SERVICE_OPERATIONS] = {{"api", "services", "*", "operations"},
                                            "/api/services/{service}/operations"},
    [TH_JAEGER_ROUTE_OPERATIONS] = {{"api", "operations"}, "/api/operations"},
    [TH_JAEGER_ROUTE_DEPENDENCIES] = {{"api", "dependencies"}, "/api/dependencies"},
    [TH_JAEGER_ROUTE_V3_SERVICES] = {{"api", "v3", "services"}, "/api/v3/services"},
    [TH_JAEGER_ROUTE_V3_OPERATIONS] = {{"api", "v3", "operations"}, "/api/v3/operations"},
    [TH_JAEGER_ROUTE_V3_TRACES] = {{"api", "v3", "traces"}, "/api/v3/traces"},
    [TH_JAEGER_ROUTE_V3_TRACE] = {{"api", "v3", "traces", "*"}, "/api/v3/traces/{traceID}"},
    [TH_JAEGER_ROUTE_V3_TRACE_SUMMARIES] = {{"api", "v3", "trace-summaries"},
                                            "/api/v3/trace-summaries"},
    [TH_JAEGER_ROUTE_OTHER] = {{NULL}, "other"},
};

const char *th_jaeger_route_name(enum th_jaeger_route r)
{
    return r < TH_JAEGER_ROUTES ? route_templates[r].name : "other";
}

/* Match the raw segments against the templates; a label needs no percent-decoding. */
enum th_jaeger_route th_jaeger_route_of(const char *base_path, const char *path, size_t len)
{
    size_t bl = strlen(base_path);
    if (len <= bl || memcmp(path, base_path, bl) != 0 || path[bl] != '/') {
        return TH_JAEGER_ROUTE_OTHER;
    }
    const char *seg[6];
    size_t seg_len[6];
    size_t n = 0;
    for (size_t i = bl + 1; i <= len; n++) {
        size_t j = i;
        while (j < len && path[j] != '/') {
            j++;
        }
        if (n == TH_ARRAY_SIZE(seg)) {
            return TH_JAEGER_ROUTE_OTHER;
        }
        seg[n] = path + i;
        seg_len[n] = j - i;
        i = j + 1;
    }
    for (int r = 0; r < TH_JAEGER_ROUTE_OTHER; r++) {
        size_t k = 0;
        for (; k < n && k < 5 && route_templates[r].segs[k]; k++) {
            const char *t = route_templates[r].segs[k];
            bool ok = !strcmp(t, "*") ? seg_len[k] > 0
                                      : strlen(t) == seg_len[k] && !memcmp(t, seg[k], seg_len[k]);
            if (!ok) {
                break;
            }
        }
        if (k == n && (k == 5 || !route_templates[r].segs[k])) {
            return (enum th_jaeger_route)r;
        }
    }
    return TH_JAEGER_ROUTE_OTHER;
}

static void count_request(th_jaeger_http_t *s, enum th_jaeger_route route, int status,
                          uint64_t started_ns)
{
    struct th_jaeger_query_metrics *m = s->cfg.metrics;
    if (!m) {
        return;
    }
    int st = status < 0 ? 0 : TH_MIN(status, TH_JAEGER_MAX_STATUS);
    __atomic_add_fetch(&m->requests[route][st], 1, __ATOMIC_RELAXED);
    th_latency_observe(&m->duration[route], th_now_mono_ns() - started_ns);
}

/* ---- Requests ----------------------------------------------------------------------------- */

/* The web UI takes every path under the base path but the API's.
 * @return whether it answered. */
static bool serve_ui(th_jaeger_http_t *s, h2o_req_t *req, size_t path_len, const char *query,
                     size_t query_len, bool cors, h2o_iovec_t origin)
{
    h2o_iovec_t inm = req_header(req, "if-none-match");
    h2o_iovec_t ae = req_header(req, "accept-encoding");
    struct th_jaeger_ui_request ur = {
        .method = req->method.base,
        .method_len = req->method.len,
        .path = req->path.base,
        .path_len = path_len,
        .query = query,
        .query_len = query_len,
        .if_none_match = inm.base,
        .if_none_match_len = inm.len,
        .accept_encoding = ae.base,
        .accept_encoding_len = ae.len,
    };
    struct th_jaeger_ui_response resp;
    if (th_jaeger_ui_serve(s->cfg.ui, &ur, &resp) != 0) {
        return false;
    }
    if (resp.log_access) {
        th_log_info(s->log_as, "serving static asset %.*s: %d", (int)req->path.len, req->path.base,
                    resp.status);
    }
    if (cors) {
        add_headerz(req, "vary", "Origin");
        if (origin_allowed(s, origin)) {
            cors_allow(req, origin);
        }
    }
    send_ui(s, req, &resp);
    return true;
}

/* confighttp's auth: every route (API, UI files and pages) needs credentials. A refusal is
 * Go's http.Error with 401 and the challenge, so a browser asks for basic credentials.
 * @return true when the request was answered. */
static bool refuse_unauthenticated(th_jaeger_http_t *s, h2o_req_t *req, bool cors,
                                   h2o_iovec_t origin)
{
    struct th_auth_denial why;
    int ret = th_auth_check_h2o(&s->cfg.auth, req, &why);
    if (ret == 0) {
        return false;
    }
    struct th_jaeger_response resp = {0};
    int status = ret == TH_ENOMEM ? 503 : 401;
    if (th_jaeger_http_error(&resp, status, why.message) != 0) {
        th_jaeger_response_free(&resp);
        h2o_send_error_generic(req, 503, "Service Unavailable", "Service Unavailable", 0);
        return true;
    }
    if (status == 401) {
        th_auth_h2o_challenge(req, &why);
    }
    if (cors) {
        add_headerz(req, "vary", "Origin");
        if (origin_allowed(s, origin)) {
            cors_allow(req, origin);
        }
    }
    send_response(s, req, &resp);
    th_jaeger_response_free(&resp);
    return true;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    th_jaeger_http_t *s = ((struct handler *)self)->srv;
    th_conn_watch_track_h2o(&s->watch, req);
    h2o_iovec_t origin = req_header(req, "origin");
    bool cors = s->cfg.cors_origins && s->cfg.cors_origins->n > 0 && origin.base;
    if (cors && req->method.len == 7 && !memcmp(req->method.base, "OPTIONS", 7) &&
        req_header(req, "access-control-request-method").base) {
        preflight(s, req, origin);
        return 0;
    }
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL;
    size_t query_len = query ? req->path.len - req->query_at - 1 : 0;
    uint64_t started_ns = th_now_mono_ns();
    enum th_jaeger_route route = th_jaeger_route_of(s->cfg.api.base_path, req->path.base, path_len);
    if (th_auth_enabled(&s->cfg.auth) && refuse_unauthenticated(s, req, cors, origin)) {
        count_request(s, route, req->res.status, started_ns);
        return 0;
    }
    if (s->cfg.ui && serve_ui(s, req, path_len, query, query_len, cors, origin)) {
        count_request(s, route, req->res.status, started_ns);
        return 0;
    }
    struct th_jaeger_response resp = {0};
    int rc = th_jaeger_api_serve(&s->cfg.api, req->method.base, req->method.len, req->path.base,
                                 path_len, query, query_len, (int64_t)th_now_unix_ns(), &resp);
    if (rc != 0) {
        th_log_warn(s->log_as, "answering %.*s: %s", (int)path_len, req->path.base,
                    th_strerror(rc));
        if (th_jaeger_http_error(&resp, 503, "Service Unavailable") != 0) {
            th_jaeger_response_free(&resp);
            h2o_send_error_generic(req, 503, "Service Unavailable", "Service Unavailable", 0);
            count_request(s, route, 503, started_ns);
            return 0;
        }
    }
    if (cors) {
        add_headerz(req, "vary", "Origin");
        if (origin_allowed(s, origin)) {
            cors_allow(req, origin);
        }
    }
    int status = resp.status;
    send_response(s, req, &resp);
    th_jaeger_response_free(&resp);
    count_request(s, route, status, started_ns);
    return 0;
}

/* ---- Connections -------------------------------------------------------------------------- */

/* A connection h2o closed: one less against the limit. The server is found from the loop,
 * which it embeds. */
static void on_conn_closed(uv_handle_t *h)
{
    char *loop = (char *)h->loop;
    th_jaeger_http_t *s = (th_jaeger_http_t *)(loop - offsetof(struct th_jaeger_http, loop));
    struct th_h2o_conn *c = (struct th_h2o_conn *)h;
    th_conn_watch_remove(&s->watch, &c->progress);
    s->n_conns--;
    th_free(c);
}

/* The progress deadline's sweep: one timer per server, not one per connection. */
static void on_sweep(uv_timer_t *t)
{
    th_jaeger_http_t *s = t->data;
    th_conn_watch_tick(&s->watch, s->log_as, "",
                       "the bound is the larger of idle_timeout and read_header_timeout + "
                       "read_timeout");
    char err[1200];
    int rc = th_jaeger_ui_reload(s->cfg.ui, th_now_mono_ns(), err, sizeof(err));
    if (rc == 1) {
        th_log_info(s->log_as, "ui::config_file changed: the page now carries the new config");
    } else if (rc < 0) {
        th_log_warn(s->log_as, "%s", err);
    }
}

static void on_accept(uv_stream_t *listener, int status)
{
    th_jaeger_http_t *s = listener->data;
    if (status != 0) {
        return;
    }
    if (s->n_conns >= s->max_conns) {
        th_conn_refuse(listener, &s->refusals, s->log_as, "", s->n_conns, s->max_conns,
                       s->cfg.max_connections != 0);
        return;
    }
    if (th_h2o_conn_accept(listener, &s->watch, &s->n_conns, &s->accept_ctx, s->tls,
                           on_conn_closed) == TH_ENOMEM) {
        th_log_warn(s->log_as, "out of memory accepting a connection");
    }
}

/* ---- Shutdown ----------------------------------------------------------------------------- */

static bool no_connections(th_jaeger_http_t *s)
{
    /* A TLS connection still in its handshake is on neither list, only on the handshake
     * timeout; h2o_context_dispose insists that it is gone too. */
    return h2o_linklist_is_empty(&s->ctx.http1._conns) &&
           h2o_linklist_is_empty(&s->ctx.http2._conns) &&
           h2o_linklist_is_empty(&s->ctx.handshake_timeout._entries);
}

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void finish_loop(th_jaeger_http_t *s)
{
    uv_timer_stop(&s->drain_timer);
    uv_close((uv_handle_t *)&s->drain_timer, on_closed_noop);
    uv_close((uv_handle_t *)&s->sweep_timer, on_closed_noop);
    uv_close((uv_handle_t *)&s->stop_async, on_closed_noop);
    uv_stop(&s->loop);
}

static void on_drain(uv_timer_t *t)
{
    th_jaeger_http_t *s = t->data;
    if (no_connections(s)) {
        finish_loop(s);
        return;
    }
    uint64_t waited = uv_now(&s->loop) - s->drain_started;
    if (waited >= DRAIN_GRACE_MS && !s->forced) {
        /* Expire the timeouts idle connections wait on: h2o then closes them itself. */
        s->forced = true;
        h2o_timeout_run(&s->loop, &s->ctx.http1.req_timeout, UINT64_MAX / 2);
        h2o_timeout_run(&s->loop, &s->ctx.http2.idle_timeout, UINT64_MAX / 2);
        h2o_timeout_run(&s->loop, &s->ctx.http2.graceful_shutdown_timeout, UINT64_MAX / 2);
        h2o_timeout_run(&s->loop, &s->ctx.handshake_timeout, UINT64_MAX / 2); /* TLS */
        return;
    }
    if (waited >= DRAIN_DEADLINE_MS) {
        th_log_warn(s->log_as, "connections still open after %d ms; stopping without them",
                    DRAIN_DEADLINE_MS);
        s->abandoned = true;
        finish_loop(s);
    }
}

static void on_stop(uv_async_t *a)
{
    th_jaeger_http_t *s = a->data;
    uv_close((uv_handle_t *)&s->listener, on_closed_noop);
    h2o_context_request_shutdown(&s->ctx);
    s->drain_started = uv_now(&s->loop);
    uv_timer_start(&s->drain_timer, on_drain, 0, DRAIN_POLL_MS);
}

/* The server thread. h2o keeps per-thread caches of freed buffers that it never releases;
 * the socket-buffer one is reachable, so it is emptied before the thread ends. (The memory
 * pool's cache is static in libh2o and stays: a bounded 16 chunks per thread.) */
static void run(void *arg)
{
    th_jaeger_http_t *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    h2o_mem_recycle_t *cache = &h2o_socket_buffer_prototype.allocator;
    while (cache->cnt > 0) {
        free(h2o_mem_alloc_recycle(cache, 1));
    }
}

/* Undo what start did, on the calling thread; the loop must not be running. */
static void teardown(th_jaeger_http_t *s)
{
    if (s->abandoned) {
        return; /* h2o still references its connections: leak rather than corrupt */
    }
    if (s->h2o_ready) {
        /* h2o_context_request_shutdown() arms HTTP/2's GOAWAY resend on the one-second
         * timeout even when there is no HTTP/2 connection; with none left it has nothing to
         * do, and h2o_context_dispose() insists on empty timeouts. */
        if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout)) {
            h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
        }
        h2o_context_dispose(&s->ctx); /* runs the loop once to close its timers */
        h2o_config_dispose(&s->globalconf);
    }
    if (s->loop_ready) {
        if (!s->thread_started) {
            if (s->listener_ready) {
                uv_close((uv_handle_t *)&s->listener, on_closed_noop);
            }
            uv_close((uv_handle_t *)&s->stop_async, on_closed_noop);
            uv_close((uv_handle_t *)&s->drain_timer, on_closed_noop);
            uv_close((uv_handle_t *)&s->sweep_timer, on_closed_noop);
        }
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0) {
            th_log_warn(s->log_as, "query API loop still had handles at shutdown");
            return;
        }
    }
    th_conn_watch_free(&s->watch);
    th_tls_server_destroy(s->tls);
    th_free(s);
}

/* ---- Start -------------------------------------------------------------------------------- */

/* Resolve host:port (":port" and "[v6]:port" too) for listening. */
static int resolve(const char *endpoint, const char *transport, uv_loop_t *loop,
                   struct sockaddr_storage *out, char *err, size_t errlen)
{
    const char *colon = strrchr(endpoint, ':');
    if (!colon) {
        snprintf(err, errlen, "endpoint \"%s\": missing port", endpoint);
        return TH_ECONFIG;
    }
    char host[256];
    size_t hl = (size_t)(colon - endpoint);
    const char *h = endpoint;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "endpoint \"%s\": host too long", endpoint);
        return TH_ECONFIG;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        snprintf(err, errlen, "endpoint \"%s\": invalid port \"%s\"", endpoint, colon + 1);
        return TH_ECONFIG;
    }
    bool v6 = transport && !strcmp(transport, "tcp6");
    bool v4 = transport && !strcmp(transport, "tcp4");
    if (hl == 0) {
        snprintf(host, sizeof(host), "%s", v6 ? "::" : "0.0.0.0");
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_family = v6 ? AF_INET6 : (v4 ? AF_INET : AF_UNSPEC)};
    uv_getaddrinfo_t gai;
    int rc = uv_getaddrinfo(loop, &gai, NULL, host, colon + 1, &hints);
    if (rc != 0) {
        snprintf(err, errlen, "endpoint \"%s\": cannot resolve \"%s\": %s", endpoint, host,
                 uv_strerror(rc));
        return TH_ECONFIG;
    }
    /* Like Go for "localhost": the IPv4 address when there is one. */
    const struct addrinfo *pick = gai.addrinfo;
    for (const struct addrinfo *ai = gai.addrinfo; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    return 0;
}

int th_jaeger_http_start(const struct th_jaeger_http_cfg *cfg, const struct th_component *log_as,
                         th_jaeger_http_t **out, char *err, size_t errlen)
{
    int rc;
    th_jaeger_http_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    s->cfg = *cfg;
    s->log_as = log_as;
    s->max_conns = cfg->max_connections ? cfg->max_connections : th_conn_limit_default();
    if (uv_loop_init(&s->loop) != 0) {
        th_free(s);
        snprintf(err, errlen, "cannot create the event loop");
        return TH_EIO;
    }
    s->loop_ready = true;
    uv_async_init(&s->loop, &s->stop_async, on_stop);
    uv_timer_init(&s->loop, &s->drain_timer);
    uv_timer_init(&s->loop, &s->sweep_timer);
    s->stop_async.data = s->drain_timer.data = s->sweep_timer.data = s;
    if (cfg->tls) {
        struct th_tls_server_opts to = {.path = "tls", .alpn = TH_TLS_ALPN_HTTP, .log_as = log_as};
        if ((rc = th_tls_server_create(cfg->tls, &to, &s->tls, err, errlen)) != 0 ||
            (rc = th_tls_server_load(s->tls, err, errlen)) != 0) {
            goto fail;
        }
    }

    struct sockaddr_storage addr;
    if ((rc = resolve(cfg->endpoint, cfg->transport, &s->loop, &addr, err, errlen)) != 0) {
        goto fail;
    }
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    s->listener_ready = true;
    int uvrc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (uvrc == 0) {
        uvrc = uv_listen((uv_stream_t *)&s->listener, 128, on_accept);
    }
    if (uvrc != 0) {
        snprintf(err, errlen, "listen tcp %s: %s", cfg->endpoint, uv_strerror(uvrc));
        rc = uvrc == UV_EADDRINUSE ? TH_EADDRINUSE : TH_EIO;
        goto fail;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);

    /* h2o: one host, every path to our handler; bodies are small (GET), timeouts bounded */
    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    s->globalconf.max_request_entity_size =
        cfg->max_request_body ? cfg->max_request_body : DEFAULT_MAX_BODY;
    uint64_t timeout = cfg->request_timeout_ms ? cfg->request_timeout_ms : DEFAULT_TIMEOUT_MS;
    s->globalconf.http1.req_timeout = timeout;
    s->globalconf.http2.idle_timeout = timeout;
    th_conn_watch_init(&s->watch, TH_MAX(cfg->progress_timeout_ms, timeout) * 1000000);
    s->watch.write_bound_ns = cfg->write_timeout_ms * 1000000;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *hd = (struct handler *)h2o_create_handler(path, sizeof(*hd));
    hd->super.on_req = on_req;
    hd->srv = s;
    h2o_context_init(&s->ctx, &s->loop, &s->globalconf);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->globalconf.hosts;
    s->h2o_ready = true;

    uint64_t period = th_conn_watch_period_ms(&s->watch);
    uv_timer_start(&s->sweep_timer, on_sweep, period, period);
    if (uv_thread_create(&s->thread, run, s) != 0) {
        snprintf(err, errlen, "cannot start the query API thread");
        rc = TH_EIO;
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    teardown(s);
    return rc;
}

int th_jaeger_http_port(const th_jaeger_http_t *s)
{
    return s->port;
}

void th_jaeger_http_stop(th_jaeger_http_t *s)
{
    if (!s) {
        return;
    }
    uv_async_send(&s->stop_async);
    uv_thread_join(&s->thread);
    teardown(s);
}
