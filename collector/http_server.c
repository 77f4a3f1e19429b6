/*
 * A small HTTP/1.1 server (HTTPS and HTTP/2 with a tls block) for the collector's own
 * endpoints (internal metrics, health_check, the prometheus exporter): an h2o 2.2 context on a
 * libuv loop owned by a thread of its own, so a scrape or a probe is answered even while the
 * pipelines' loop is busy. Every request is answered synchronously by the configured handler; its
 * body goes to h2o in one h2o_send and is freed with the request's pool.
 *
 * Stopping: an async handle wakes the server thread, which closes the listener, asks h2o to
 * shut connections down (a finished request then closes its connection instead of keeping
 * it alive), and expires the keep-alive timeouts so idle connections close now. Once no
 * connection is left (or after a deadline) the loop stops; the h2o context is disposed of on
 * the stopping thread after the join, because h2o_context_dispose runs the loop itself.
 */
#include <stdio.h>
#include <string.h>

#include <h2o.h>
#include <uv.h>

#include "th/conn_limit.h"
#include "th/http_server.h"
#include "th/log.h"
#include "th/tls.h"

#define POLL_MS          10
#define DEADLINE_MS      2000
#define REQ_TIMEOUT_MS   30000
#define MAX_REQUEST_BODY ((size_t)1024 * 1024)

struct th_http_server {
    th_http_handler_fn handler;
    void *data;
    const struct th_component *log_as;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_timer_t stop_timer;
    uv_thread_t thread;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    th_tls_server_t *tls; /* HTTPS when set */
    size_t n_conns;       /* open connections (server thread only) */
    size_t max_conns;     /* th_conn_limit_default(): beyond it connections are refused */
    struct th_conn_refusals refusals;
    struct th_conn_watch watch; /* the progress deadline (th/conn_limit.h), REQ_TIMEOUT_MS */
    uv_timer_t sweep_timer;     /* one per server: shuts stalled connections down */
    int port;
    uint64_t stop_started;
    bool abandoned; /* connections outlived the deadline: h2o cannot be disposed of */
    bool loop_ready, h2o_ready, listener_ready, thread_started;
};

struct handler {
    h2o_handler_t super;
    th_http_server_t *srv;
};

/* ---- Requests ----------------------------------------------------------------------------- */

const char *th_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request-URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static const char *find_header(const struct th_http_request *r, const char *name, size_t *len)
{
    h2o_req_t *req = r->priv;
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) {
        return NULL;
    }
    if (len) {
        *len = req->headers.entries[i].value.len;
    }
    return req->headers.entries[i].value.base;
}

static void dispose_body(void *p)
{
    th_buf_free(p);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    th_http_server_t *s = ((struct handler *)self)->srv;
    th_conn_watch_track_h2o(&s->watch, req);
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    struct th_http_request hr = {
        .method = req->method.base,
        .method_len = req->method.len,
        .path = req->path.base,
        .path_len = path_len,
        .query = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : NULL,
        .query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0,
        .header = find_header,
        .priv = req,
    };
    struct th_http_response res = {.status = 200};
    int rc = s->handler(s->data, &hr, &res);
    if (rc != 0) {
        th_log_warn(s->log_as, "answering %.*s %.*s: %s", (int)req->method.len, req->method.base,
                    (int)path_len, req->path.base, th_strerror(rc));
        th_buf_free(&res.body);
        h2o_send_error_generic(req, 500, "Internal Server Error", "Internal Server Error", 0);
        return 0;
    }
    /* The body belongs to the request's pool from here: freed once it has been sent. */
    th_buf_t *body = h2o_mem_alloc_shared(&req->pool, sizeof(*body), dispose_body);
    *body = res.body;
    const char *ct = res.content_type ? res.content_type : "text/plain; charset=utf-8";
    req->res.status = res.status;
    req->res.reason = th_http_reason(res.status);
    req->res.content_length = body->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
    h2o_start_response(req, &generator);
    h2o_iovec_t iov = h2o_iovec_init(body->ptr, body->len);
    bool head = req->method.len == 4 && !memcmp(req->method.base, "HEAD", 4);
    h2o_send(req, &iov, head || body->len == 0 ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}

/* ---- Connections -------------------------------------------------------------------------- */

/* A connection h2o closed: one less against the limit. The server is found from the loop,
 * which it embeds. */
static void on_conn_closed(uv_handle_t *h)
{
    char *loop = (char *)h->loop;
    th_http_server_t *s = (th_http_server_t *)(loop - offsetof(struct th_http_server, loop));
    struct th_h2o_conn *c = (struct th_h2o_conn *)h;
    th_conn_watch_remove(&s->watch, &c->progress);
    s->n_conns--;
    th_free(c);
}

/* The progress deadline's sweep (h2o's HTTP/2 idle timer restarts on every byte read, so an
 * h2c client trickling its HEADERS frame is stopped only here): one timer per server. */
static void on_sweep(uv_timer_t *t)
{
    th_http_server_t *s = t->data;
    th_conn_watch_tick(&s->watch, s->log_as, "", NULL);
}

static void on_accept(uv_stream_t *listener, int status)
{
    th_http_server_t *s = listener->data;
    if (status != 0) {
        return;
    }
    if (s->n_conns >= s->max_conns) {
        th_conn_refuse(listener, &s->refusals, s->log_as, "", s->n_conns, s->max_conns, false);
        return;
    }
    if (th_h2o_conn_accept(listener, &s->watch, &s->n_conns, &s->accept_ctx, s->tls,
                           on_conn_closed) == TH_ENOMEM) {
        th_log_warn(s->log_as, "out of memory accepting a connection");
    }
}

/* ---- Stop --------------------------------------------------------------------------------- */

static void on_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static bool no_connections(th_http_server_t *s)
{
    /* A TLS connection still in its handshake is on neither list, only on the handshake
     * timeout; h2o_context_dispose insists that it is gone too. */
    return h2o_linklist_is_empty(&s->ctx.http1._conns) &&
           h2o_linklist_is_empty(&s->ctx.http2._conns) &&
           h2o_linklist_is_empty(&s->ctx.handshake_timeout._entries);
}

/* Fire every pending keep-alive/idle timeout: h2o closes the idle connections itself. A
 * connection still sending is not on these lists and finishes first. */
static void expire_idle(th_http_server_t *s)
{
    h2o_timeout_run(&s->loop, &s->ctx.http1.req_timeout, UINT64_MAX / 2);
    h2o_timeout_run(&s->loop, &s->ctx.http2.idle_timeout, UINT64_MAX / 2);
    h2o_timeout_run(&s->loop, &s->ctx.http2.graceful_shutdown_timeout, UINT64_MAX / 2);
    h2o_timeout_run(&s->loop, &s->ctx.handshake_timeout, UINT64_MAX / 2); /* TLS */
}

static void on_stop_poll(uv_timer_t *t)
{
    th_http_server_t *s = t->data;
    if (!no_connections(s)) {
        if (uv_now(&s->loop) - s->stop_started < DEADLINE_MS) {
            expire_idle(s);
            return;
        }
        th_log_warn(s->log_as, "connections still open after %d ms; stopping without them",
                    DEADLINE_MS);
        s->abandoned = true;
    }
    uv_timer_stop(&s->stop_timer);
    uv_close((uv_handle_t *)&s->stop_timer, on_closed_noop);
    uv_close((uv_handle_t *)&s->stop_async, on_closed_noop);
    uv_close((uv_handle_t *)&s->sweep_timer, on_closed_noop);
    uv_stop(&s->loop);
}

static void on_stop(uv_async_t *a)
{
    th_http_server_t *s = a->data;
    uv_close((uv_handle_t *)&s->listener, on_closed_noop);
    h2o_context_request_shutdown(&s->ctx);
    expire_idle(s);
    s->stop_started = uv_now(&s->loop);
    uv_timer_start(&s->stop_timer, on_stop_poll, 0, POLL_MS);
}

/* The server thread. h2o caches freed socket buffers per thread and never releases them; the
 * cache is emptied before the thread ends so nothing is left behind per server. */
static void run(void *arg)
{
    th_http_server_t *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    h2o_mem_recycle_t *cache = &h2o_socket_buffer_prototype.allocator;
    while (cache->cnt > 0) {
        free(h2o_mem_alloc_recycle(cache, 1));
    }
}

/* Undo what start did, on the calling thread, with the loop not running. */
static void teardown(th_http_server_t *s)
{
    if (s->abandoned) {
        return; /* h2o still references its connections: leak rather than corrupt */
    }
    if (s->h2o_ready) {
        /* request_shutdown arms HTTP/2's GOAWAY timer even with no HTTP/2 connection, and
         * h2o_context_dispose insists on empty timeouts. */
        if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout)) {
            h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
        }
        h2o_context_dispose(&s->ctx);
        h2o_config_dispose(&s->globalconf);
    }
    if (s->loop_ready) {
        if (!s->thread_started) {
            if (s->listener_ready) {
                uv_close((uv_handle_t *)&s->listener, on_closed_noop);
            }
            uv_close((uv_handle_t *)&s->stop_async, on_closed_noop);
            uv_close((uv_handle_t *)&s->stop_timer, on_closed_noop);
            uv_close((uv_handle_t *)&s->sweep_timer, on_closed_noop);
        }
        uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0) {
            th_log_warn(s->log_as, "HTTP server loop still had handles when stopped");
            return;
        }
    }
    th_conn_watch_free(&s->watch);
    th_tls_server_destroy(s->tls);
    th_free(s);
}

/* ---- Start -------------------------------------------------------------------------------- */

/* Resolve "host:port", "[v6]:port", ":port" or "port" for listening. No host means every
 * interface; "localhost" takes its IPv4 address when it has one, as Go does. */
static int resolve(const char *endpoint, uv_loop_t *loop, struct sockaddr_storage *out, char *err,
                   size_t errlen)
{
    const char *colon = strrchr(endpoint, ':');
    const char *portstr = colon ? colon + 1 : endpoint;
    size_t hl = colon ? (size_t)(colon - endpoint) : 0;
    const char *h = endpoint;
    char host[256];
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "endpoint \"%s\": host too long", endpoint);
        return TH_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(portstr, &end, 10);
    if (*portstr == '\0' || *end != '\0' || port < 0 || port > 65535) {
        snprintf(err, errlen, "endpoint \"%s\": invalid port \"%s\"", endpoint, portstr);
        return TH_EINVAL;
    }
    if (hl == 0) {
        snprintf(host, sizeof(host), "0.0.0.0");
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    uv_getaddrinfo_t gai;
    int rc = uv_getaddrinfo(loop, &gai, NULL, host, portstr, &hints);
    if (rc != 0) {
        snprintf(err, errlen, "endpoint \"%s\": cannot resolve \"%s\": %s", endpoint, host,
                 uv_strerror(rc));
        return TH_EINVAL;
    }
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

int th_http_server_start(const struct th_http_server_cfg *cfg, th_http_server_t **out, char *err,
                         size_t errlen)
{
    int rc;
    if (!cfg->endpoint || !cfg->handler) {
        snprintf(err, errlen, "HTTP server: no endpoint or handler");
        return TH_EINVAL;
    }
    th_http_server_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    s->handler = cfg->handler;
    s->data = cfg->data;
    s->log_as = cfg->log_as;
    s->max_conns = th_conn_limit_default();
    if (uv_loop_init(&s->loop) != 0) {
        th_free(s);
        snprintf(err, errlen, "cannot create an event loop");
        return TH_EIO;
    }
    s->loop_ready = true;
    uv_async_init(&s->loop, &s->stop_async, on_stop);
    uv_timer_init(&s->loop, &s->stop_timer);
    uv_timer_init(&s->loop, &s->sweep_timer);
    s->stop_async.data = s->stop_timer.data = s->sweep_timer.data = s;
    if (cfg->tls) {
        struct th_tls_server_opts to = {
            .path = "tls", .alpn = TH_TLS_ALPN_HTTP, .log_as = cfg->log_as};
        if ((rc = th_tls_server_create(cfg->tls, &to, &s->tls, err, errlen)) != 0 ||
            (rc = th_tls_server_load(s->tls, err, errlen)) != 0) {
            goto fail;
        }
    }

    struct sockaddr_storage addr;
    if ((rc = resolve(cfg->endpoint, &s->loop, &addr, err, errlen)) != 0) {
        goto fail;
    }
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    s->listener_ready = true;
    int uvrc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (uvrc == 0) {
        uvrc = uv_listen((uv_stream_t *)&s->listener, 64, on_accept);
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

    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    s->globalconf.max_request_entity_size = MAX_REQUEST_BODY;
    s->globalconf.http1.req_timeout = REQ_TIMEOUT_MS;
    s->globalconf.http2.idle_timeout = REQ_TIMEOUT_MS;
    th_conn_watch_init(&s->watch, (uint64_t)REQ_TIMEOUT_MS * 1000000);
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
        snprintf(err, errlen, "cannot start the HTTP server thread");
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

int th_http_server_port(const th_http_server_t *s)
{
    return s->port;
}

void th_http_server_stop(th_http_server_t *s)
{
    if (!s) {
        return;
    }
    uv_async_send(&s->stop_async);
    uv_thread_join(&s->thread);
    teardown(s);
}
