/*
 * The OTLP/HTTP server: h2o 2.2 on libuv. We own the listening socket and every accepted
 * uv_tcp_t (so shutdown can reach connections h2o keeps alive), h2o parses HTTP/1.1 and
 * HTTP/2 and buffers the body, and one handler answers every path the way the Collector's
 * otlphttp.go does. The request core (th__otlp_http_export) does not know about h2o, so the
 * fuzz target runs the same code.
 *
 * Teardown is asynchronous, as libuv requires: shutdown closes the listener and shuts the
 * connection sockets down so h2o closes them itself; when the last handle is gone the h2o
 * context is disposed (which closes its timers), and two chained sentinel handles tell us
 * when libuv is done with that memory.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#include "th/ack_hub.h"
#include "th/conn_limit.h"
#include "th/http_server.h"
#include "th/log.h"
#include "th/tls.h"
#include "receivers/otlp/otlp_http.h"

#define CT_PROTOBUF "application/x-protobuf"
#define CT_JSON     "application/json"
#define CT_TEXT     "text/plain; charset=utf-8"

/* Seconds a client is told to wait before retrying a refused export. */
#define RETRY_AFTER_S 1
/* Shutdown waits at most this long for the pipeline to settle requests in flight. */
#define DRAIN_MAX_MS 10000
/* After the last of them is answered, this long for the answer to reach the client. */
#define DRAIN_GRACE_MS 200

/* google.rpc.Code values used in Status bodies. */
enum {
    RPC_INVALID_ARGUMENT = 3,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_UNAUTHENTICATED = 16,
};

enum srv_state {
    ST_NEW,       /* created, or start failed: no handle open */
    ST_RUNNING,   /* listening */
    ST_CLOSING,   /* shutdown: waiting for the listener and connections to close */
    ST_DISPOSING, /* h2o context disposed: waiting for libuv to release its handles */
    ST_DONE,      /* nothing open; can be started again or freed */
};

/* One accepted connection. h2o owns tcp.data, so we find the conn by address. */
struct conn {
    uv_tcp_t tcp;
    th_otlp_http_server_t *srv;
    bool busy;                        /* shutdown: a request on it still waits for its ack */
    struct th_conn_progress progress; /* the progress deadline (th/conn_limit.h) */
    struct conn *prev;
    struct conn *next;
};

struct handler {
    h2o_handler_t super;
    th_otlp_http_server_t *srv;
};

struct filter {
    h2o_filter_t super;
    th_otlp_http_server_t *srv;
};

struct resp_header {
    h2o_iovec_t name; /* lowercase, as HTTP/2 requires */
    h2o_iovec_t value;
};

struct th_otlp_http_server {
    th_arena_t *arena; /* copies of everything taken from the config */
    struct th_component *owner;
    struct th_component_stats own_stats;
    struct th__otlp_export x;

    const char *endpoint;
    int family; /* AF_UNSPEC, AF_INET or AF_INET6 (transport tcp, tcp4, tcp6) */
    h2o_iovec_t traces_path;
    h2o_iovec_t metrics_path;
    h2o_iovec_t logs_path;
    const char **origins; /* lowercase patterns; CORS is on when n_origins > 0 */
    size_t n_origins;
    const char **allow_headers; /* lowercase */
    size_t n_allow_headers;
    bool allow_any_header;
    h2o_iovec_t expose_headers; /* joined with ", "; len 0: none */
    int64_t max_age;
    struct resp_header *resp_headers;
    size_t n_resp_headers;
    bool keep_alive;
    uint64_t http1_timeout_ms;
    uint64_t http2_idle_ms;

    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool ctx_inited;
    th_tls_server_t *tls; /* HTTPS when set: loaded at start, asked for each connection */

    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listener_open;
    uv_tcp_t reject; /* accepts and closes a connection we had no memory for */
    bool reject_busy;
    bool accept_pending;
    uv_timer_t sentinel[2];
    struct conn *conns;
    size_t n_conns;
    size_t max_conns; /* max_connections, or th_conn_limit_default(): beyond it connections
                       * are refused */
    bool max_conns_set;
    struct th_conn_refusals refusals;
    struct th_conn_watch watch; /* the progress deadline: bound and connections by fd */
    uv_timer_t sweep_timer;     /* one per server: shuts stalled connections down */
    int port;
    char addr_text[INET6_ADDRSTRLEN + 16];
    enum srv_state state;
    th_ack_hub_t *hub;       /* where settled acks come back to the loop */
    uv_timer_t drain_timer;  /* shutdown: bounds the wait for acks, then closes the rest */
    struct pending *pending; /* requests waiting for their ack */
    bool destroy_pending;
    uint64_t last_warn_ns;
    th_auth_t auth; /* `auth:`: the authenticator every request goes through, or zero */
};

/* ---- Small helpers --------------------------------------------------------------------- */

/* Warnings caused by clients (pipeline refusals) at most once a second, so a flood of bad
 * requests cannot flood the log. */
static bool warn_allowed(th_otlp_http_server_t *s)
{
    uint64_t now = th_now_mono_ns();
    if (now - s->last_warn_ns < 1000000000ull && s->last_warn_ns != 0) {
        return false;
    }
    s->last_warn_ns = now;
    return true;
}

static bool iov_eq(h2o_iovec_t a, h2o_iovec_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static void trim(const char **p, size_t *len)
{
    while (*len > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t')) {
        (*len)--;
    }
}

/* The media type of a Content-Type value, parameters ignored: 0 protobuf, 1 JSON, -1 other
 * (Go's mime.ParseMediaType is what the Collector uses; case does not matter). */
static int media_type(const char *v, size_t len)
{
    const char *semi = memchr(v, ';', len);
    if (semi) {
        len = (size_t)(semi - v);
    }
    trim(&v, &len);
    if (h2o_lcstris(v, len, H2O_STRLIT(CT_PROTOBUF))) {
        return 0;
    }
    if (h2o_lcstris(v, len, H2O_STRLIT(CT_JSON))) {
        return 1;
    }
    return -1;
}

static int request_media_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0) {
        return -1;
    }
    return media_type(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

/* Case-insensitive glob where `*` matches any run of characters (CORS origin patterns:
 * "https://(star).example.com"). Iterative, remembering only the last star: linear in practice
 * and never recursive, whatever the Origin header holds. */
static bool glob_match(const char *pat, const char *s, size_t slen)
{
    size_t pi = 0, si = 0;
    size_t plen = strlen(pat);
    size_t star = SIZE_MAX, mark = 0;
    while (si < slen) {
        if (pi < plen && pat[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < plen && h2o_tolower(pat[pi]) == h2o_tolower(s[si])) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < plen && pat[pi] == '*') {
        pi++;
    }
    return pi == plen;
}

static bool origin_allowed(const th_otlp_http_server_t *s, h2o_iovec_t origin)
{
    for (size_t i = 0; i < s->n_origins; i++) {
        if (glob_match(s->origins[i], origin.base, origin.len)) {
            return true;
        }
    }
    return false;
}

/* Headers a preflight may always ask for: the CORS-safelisted request headers, and
 * X-Requested-With and Origin as rs/cors adds them. */
static const char *const safelisted_headers[] = {
    "accept", "accept-language", "content-language", "content-type", "x-requested-with", "origin",
};

static bool header_allowed(const th_otlp_http_server_t *s, const char *name, size_t len)
{
    if (s->allow_any_header) {
        return true;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(safelisted_headers); i++) {
        if (h2o_lcstris(name, len, safelisted_headers[i], strlen(safelisted_headers[i]))) {
            return true;
        }
    }
    for (size_t i = 0; i < s->n_allow_headers; i++) {
        if (h2o_lcstris(name, len, s->allow_headers[i], strlen(s->allow_headers[i]))) {
            return true;
        }
    }
    return false;
}

static h2o_iovec_t find_header_str(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0) {
        return h2o_iovec_init(NULL, 0);
    }
    return req->headers.entries[i].value;
}

static void add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value, len);
}

/* The headers every response carries: response_headers from the config, and CORS for an
 * allowed Origin on an actual (non-preflight) request. */
static void add_common_headers(th_otlp_http_server_t *s, h2o_req_t *req)
{
    for (size_t i = 0; i < s->n_resp_headers; i++) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, s->resp_headers[i].name.base,
                              s->resp_headers[i].name.len, 1, NULL, s->resp_headers[i].value.base,
                              s->resp_headers[i].value.len);
    }
    if (s->n_origins == 0) {
        return;
    }
    add_header(req, "vary", H2O_STRLIT("Origin"));
    h2o_iovec_t origin = find_header_str(req, "origin");
    if (origin.base && origin_allowed(s, origin)) {
        add_header(req, "access-control-allow-origin", origin.base, origin.len);
        add_header(req, "access-control-allow-credentials", H2O_STRLIT("true"));
        if (s->expose_headers.len) {
            add_header(req, "access-control-expose-headers", s->expose_headers.base,
                       s->expose_headers.len);
        }
    }
}

static void respond(th_otlp_http_server_t *s, h2o_req_t *req, int status, const char *ctype,
                    const void *body, size_t len, int retry_after_s)
{
    req->res.status = status;
    req->res.reason = th_http_reason(status);
    req->res.content_length = len;
    if (ctype) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                       strlen(ctype));
    }
    if (retry_after_s > 0) {
        char *v = h2o_mem_alloc_pool(&req->pool, 16);
        int n = snprintf(v, 16, "%d", retry_after_s);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
    }
    add_common_headers(s, req);
    if (!s->keep_alive) {
        req->http1_is_persistent = 0;
    }
    h2o_send_inline(req, len ? body : "", len);
}

static void respond_text(th_otlp_http_server_t *s, h2o_req_t *req, int status, const char *text)
{
    respond(s, req, status, CT_TEXT, text, strlen(text), 0);
}

/* ---- The request core ------------------------------------------------------------------ */

static void reply_status(struct th__otlp_reply *r, bool json, int http, int code, const char *msg,
                         int retry_after_s)
{
    r->status = http;
    r->reason = th_http_reason(http);
    r->retry_after_s = retry_after_s;
    th_buf_free(&r->body);
    /* Out of memory here leaves the body empty: the status code still says what happened. */
    if (th_otlp_encode_status(json, code, msg, retry_after_s, &r->body) != 0) {
        th_buf_free(&r->body);
    }
}

/* What a consumer's result means for the client (component.h's contract, mapped the way
 * the Collector maps gRPC codes to HTTP: UNAVAILABLE 503, INVALID_ARGUMENT 400). */
static void reply_pipeline(const struct th__otlp_export *x, struct th__otlp_reply *r, bool json,
                           int ret)
{
    char msg[160];
    switch (ret) {
    case TH_ERETRY:
    case TH_ESHUTDOWN:
    case TH_ESPACE:
    case TH_AGAIN:
        snprintf(msg, sizeof(msg), "the pipeline cannot take the data now (%s); retry later",
                 th_strerror(ret));
        reply_status(r, json, 503, RPC_UNAVAILABLE, msg, RETRY_AFTER_S);
        break;
    case TH_ENOMEM:
        reply_status(r, json, 503, RPC_UNAVAILABLE, "data refused due to high memory usage",
                     RETRY_AFTER_S);
        break;
    case TH_EPERM:
    case TH_EINVAL:
    case TH_EDECODE:
    case TH_E2BIG:
        snprintf(msg, sizeof(msg), "the pipeline rejected the data permanently (%s)",
                 th_strerror(ret));
        reply_status(r, json, 400, RPC_INVALID_ARGUMENT, msg, 0);
        break;
    default:
        snprintf(msg, sizeof(msg), "internal error (%s)", th_strerror(ret));
        reply_status(r, json, 500, RPC_INTERNAL, msg, 0);
        break;
    }
}

void th__otlp_http_export(const struct th__otlp_export *x, bool json, const char *encoding,
                          size_t encoding_len, const uint8_t *body, size_t len, th_ack_t *ack,
                          struct th__otlp_reply *r)
{
    char msg[320];
    uint8_t *plain = NULL;
    size_t plain_len = len;
    th_arena_t *arena = NULL;
    enum th_otlp_encoding enc;
    memset(r, 0, sizeof(*r));

    if (len > x->max_body) {
        snprintf(msg, sizeof(msg),
                 "request body of %zu bytes exceeds max_request_body_size (%zu bytes)", len,
                 x->max_body);
        reply_status(r, json, 413, RPC_INVALID_ARGUMENT, msg, 0);
        goto out;
    }
    int ret = th_otlp_encoding_parse(encoding ? encoding : "", encoding_len, &enc);
    if (ret != 0 || !(enc & x->encodings)) {
        snprintf(msg, sizeof(msg), "unsupported Content-Encoding: %.*s",
                 (int)TH_MIN(encoding_len, 64), encoding ? encoding : "");
        reply_status(r, json, 400, RPC_INVALID_ARGUMENT, msg, 0);
        goto out;
    }
    const uint8_t *data = body;
    if (enc != TH_OTLP_ENC_IDENTITY) {
        char why[200];
        ret = th_otlp_decompress(enc, body, len, x->max_body, &plain, &plain_len, why, sizeof(why));
        if (ret == TH_E2BIG) {
            snprintf(msg, sizeof(msg), "%s (%zu bytes)", why, x->max_body);
            reply_status(r, json, 413, RPC_INVALID_ARGUMENT, msg, 0);
            goto out;
        }
        if (ret == TH_ENOMEM) {
            reply_status(r, json, 503, RPC_UNAVAILABLE, "out of memory decompressing the body",
                         RETRY_AFTER_S);
            goto out;
        }
        if (ret != 0) {
            snprintf(msg, sizeof(msg), "%s", why);
            reply_status(r, json, 400, RPC_INVALID_ARGUMENT, msg, 0);
            goto out;
        }
        data = plain;
    }

    /* A first chunk near the decoded size keeps most requests in one or two chunks. */
    size_t chunk = TH_MIN(TH_MAX(plain_len * 8, (size_t)16 * 1024), (size_t)1024 * 1024);
    arena = th_arena_create(chunk, 0);
    if (!arena) {
        reply_status(r, json, 503, RPC_UNAVAILABLE, "out of memory", RETRY_AFTER_S);
        goto out;
    }
    th_otlp_request_t *req = NULL;
    struct th_otlp_error derr;
    memset(&derr, 0, sizeof(derr));
    ret = json ? th_otlp_decode_json(data, plain_len, &x->lim, arena, &req, &derr)
               : th_otlp_decode_pb(data, plain_len, &x->lim, arena, &req, &derr);
    th_free(plain);
    plain = NULL;
    if (ret == TH_ENOMEM && derr.arena_limit) {
        reply_status(r, json, 413, RPC_INVALID_ARGUMENT, derr.msg, 0);
        goto out;
    }
    if (ret == TH_ENOMEM) {
        reply_status(r, json, 503, RPC_UNAVAILABLE, "out of memory decoding the request",
                     RETRY_AFTER_S);
        goto out;
    }
    if (ret != 0) {
        reply_status(r, json, 400, RPC_INVALID_ARGUMENT,
                     derr.msg[0] ? derr.msg : "cannot decode the request", 0);
        TH_LOG_AT(TH_LOG_DEBUG, x->log_as, "decoding an OTLP request", "400: %s", derr.msg);
        goto out;
    }

    size_t spans = th_otlp_request_span_count(req);
    if (spans > 0) {
        th_batch_t *batch = th_batch_create(arena, req);
        if (!batch) {
            reply_status(r, json, 503, RPC_UNAVAILABLE, "out of memory", RETRY_AFTER_S);
            goto out;
        }
        arena = NULL; /* the batch owns it now, and the consumer owns the batch */
        if (ack && th_batch_add_ack(batch, ack) != 0) {
            th_batch_release(batch);
            reply_status(r, json, 503, RPC_UNAVAILABLE, "out of memory", RETRY_AFTER_S);
            goto out;
        }
        ret = th_consumer_consume(x->next, batch);
        if (ret != 0 && ret != TH_HELD) {
            __atomic_add_fetch(&x->stats->refused, spans, __ATOMIC_RELAXED);
            if (x->transport_stats) {
                __atomic_add_fetch(&x->transport_stats->refused, spans, __ATOMIC_RELAXED);
            }
            reply_pipeline(x, r, json, ret);
            goto out;
        }
        __atomic_add_fetch(&x->stats->accepted, spans, __ATOMIC_RELAXED);
        if (x->transport_stats) {
            __atomic_add_fetch(&x->transport_stats->accepted, spans, __ATOMIC_RELAXED);
        }
        if (ack) {
            goto out; /* answered when the ack settles */
        }
    }
    r->status = 200;
    r->reason = th_http_reason(200);
    if (th_otlp_encode_response(json, 0, NULL, &r->body) != 0) {
        th_buf_free(&r->body);
    }
out:
    th_free(plain);
    th_arena_destroy(arena);
}

void th__otlp_http_settled_reply(bool json, int result, struct th__otlp_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (result != 0) {
        reply_pipeline(NULL, r, json, result);
        return;
    }
    r->status = 200;
    r->reason = th_http_reason(200);
    if (th_otlp_encode_response(json, 0, NULL, &r->body) != 0) {
        th_buf_free(&r->body);
    }
}

/* ---- Answers that wait for the pipeline ------------------------------------------------ */

/*
 * A request is answered only when its ack settles, i.e. when the spans are stored or
 * delivered (the store settles after its commit). Acks settle on whatever thread finishes
 * last, often the store's writer thread, so settled requests are handed to the loop through
 * a hub: a list under a lock and a uv_async_t. The hub is reference counted by the server
 * and by every request still waiting, so a late settle after the server is gone (an
 * exporter draining at shutdown) still lands somewhere valid.
 */
struct pending {
    struct th_ack_hub_entry e;   /* first: the hub hands it back */
    struct pending *prev, *next; /* the server's waiting list (loop thread) */
    th_otlp_http_server_t *srv;  /* NULL once the server shut down */
    h2o_req_t *req;              /* NULL once the client went away or the server shut down */
    struct pending **holder;     /* the slot in the request's pool that points back here */
    bool json;
    bool answered;
};

static void pending_detach(struct pending *p)
{
    th_otlp_http_server_t *s = p->srv;
    if (s) {
        if (p->prev) {
            p->prev->next = p->next;
        } else {
            s->pending = p->next;
        }
        if (p->next) {
            p->next->prev = p->prev;
        }
        p->srv = NULL;
    }
    if (p->holder) {
        *p->holder = NULL;
        p->holder = NULL;
    }
    p->req = NULL;
}

static void on_drain_timer(uv_timer_t *t);

/* On the loop thread: answer (when someone is still listening) and free. */
static void on_pending_complete(struct th_ack_hub_entry *e, int result)
{
    struct pending *p = (struct pending *)e;
    if (!p->answered && p->req && p->srv) {
        struct th__otlp_reply r;
        th__otlp_http_settled_reply(p->json, result, &r);
        if (r.status >= 500 && warn_allowed(p->srv)) {
            th_log_warn(p->srv->owner,
                        "answered %d to an export: the pipeline could not "
                        "store or deliver it (at most one such line a second)",
                        r.status);
        }
        respond(p->srv, p->req, r.status, p->json ? CT_JSON : CT_PROTOBUF, r.body.ptr, r.body.len,
                r.retry_after_s);
        th_buf_free(&r.body);
    }
    th_otlp_http_server_t *s = p->srv;
    pending_detach(p);
    th_free(p);
    if (s && s->state == ST_CLOSING && !s->pending) {
        /* The last request shutdown was waiting for: give its answer a moment to leave,
         * then close what is left. */
        uv_timer_start(&s->drain_timer, on_drain_timer, DRAIN_GRACE_MS, 0);
    }
}

/* Any thread: the hub brings the answer back to the loop, in arrival order. */
static void on_ack_settled(th_ack_t *ack, int result)
{
    struct pending *p = ack->data;
    th_ack_hub_settle(&p->e, result);
}

/* h2o frees the request's pool when the connection goes; stop pointing at the request. */
static void on_req_pool_dispose(void *mem)
{
    struct pending **slot = mem;
    if (*slot) {
        (*slot)->holder = NULL;
        (*slot)->req = NULL;
    }
}

/* Shutdown: nobody will be answered any more; the acks still settle and free their entry. */
static void hub_release(th_otlp_http_server_t *s)
{
    while (s->pending) {
        pending_detach(s->pending);
    }
    /* Settles that already reached the hub are freed now; later ones when they come. */
    th_ack_hub_release(s->hub);
    s->hub = NULL;
}

/* Shut a connection's socket down: h2o's next read sees EOF (or its write fails) and it
 * closes the connection through its own path, so its state stays consistent. */
static void conn_shutdown(struct conn *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        shutdown(fd, SHUT_RDWR);
    }
}

/* The connection a request arrived on, found by its peer address. */
static struct conn *conn_of(th_otlp_http_server_t *s, h2o_req_t *req)
{
    struct sockaddr_storage want;
    socklen_t wl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&want);
    if (wl == 0) {
        return NULL;
    }
    for (struct conn *c = s->conns; c; c = c->next) {
        struct sockaddr_storage have;
        int hl = sizeof(have);
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&have, &hl) == 0 &&
            (socklen_t)hl == wl && memcmp(&have, &want, wl) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Shutdown is over waiting: nobody is answered any more; close every connection. */
static void on_drain_timer(uv_timer_t *t)
{
    th_otlp_http_server_t *s = t->data;
    if (s->pending) {
        th_log_warn(s->owner,
                    "shutdown: requests still waiting for the pipeline after %d ms are closed "
                    "unanswered; their senders will retry",
                    DRAIN_MAX_MS);
    }
    hub_release(s);
    for (struct conn *c = s->conns; c; c = c->next) {
        conn_shutdown(c);
    }
}

/* ---- h2o handler ----------------------------------------------------------------------- */

/* A CORS preflight (OPTIONS with Access-Control-Request-Method), answered as rs/cors does:
 * always 204; the Access-Control-Allow-* headers only when origin, method and every
 * requested header are allowed. */
static void preflight(th_otlp_http_server_t *s, h2o_req_t *req, h2o_iovec_t method)
{
    add_header(req, "vary",
               H2O_STRLIT("Origin, Access-Control-Request-Method, "
                          "Access-Control-Request-Headers"));
    h2o_iovec_t origin = find_header_str(req, "origin");
    const char *m = method.base;
    size_t mlen = method.len;
    trim(&m, &mlen);
    bool ok = origin.base && origin_allowed(s, origin) && h2o_lcstris(m, mlen, H2O_STRLIT("post"));

    /* Browsers may send the requested headers in several header lines. */
    char *asked = NULL;
    size_t asked_len = 0;
    ssize_t cursor = -1;
    while (ok && (cursor = h2o_find_header_by_str(
                      &req->headers, H2O_STRLIT("access-control-request-headers"), cursor)) >= 0) {
        h2o_iovec_t v = req->headers.entries[cursor].value;
        const char *p = v.base, *end = v.base + v.len;
        while (ok && p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *tok = p;
            size_t tlen = (size_t)((comma ? comma : end) - p);
            p = comma ? comma + 1 : end;
            trim(&tok, &tlen);
            if (tlen == 0) {
                continue;
            }
            if (!header_allowed(s, tok, tlen)) {
                ok = false;
                break;
            }
            char *grown = h2o_mem_alloc_pool(&req->pool, asked_len + tlen + 2);
            if (asked_len) {
                memcpy(grown, asked, asked_len);
                grown[asked_len++] = ',';
            }
            for (size_t i = 0; i < tlen; i++) {
                grown[asked_len + i] = h2o_tolower(tok[i]);
            }
            asked_len += tlen;
            asked = grown;
        }
    }
    if (ok) {
        add_header(req, "access-control-allow-origin", origin.base, origin.len);
        add_header(req, "access-control-allow-methods", H2O_STRLIT("POST"));
        if (asked_len) {
            add_header(req, "access-control-allow-headers", asked, asked_len);
        }
        add_header(req, "access-control-allow-credentials", H2O_STRLIT("true"));
        if (s->max_age > 0) {
            char *v = h2o_mem_alloc_pool(&req->pool, 24);
            int n = snprintf(v, 24, "%lld", (long long)s->max_age);
            add_header(req, "access-control-max-age", v, (size_t)n);
        }
    }
    for (size_t i = 0; i < s->n_resp_headers; i++) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, s->resp_headers[i].name.base,
                              s->resp_headers[i].name.len, 1, NULL, s->resp_headers[i].value.base,
                              s->resp_headers[i].value.len);
    }
    req->res.status = 204;
    req->res.reason = th_http_reason(204);
    req->res.content_length = 0;
    if (!s->keep_alive) {
        req->http1_is_persistent = 0;
    }
    h2o_send_inline(req, "", 0);
}

/* A request the authenticator refused: 401 with the challenge, never decoded. The body is a
 * google.rpc.Status in the request's encoding when that is known (as the Collector's error
 * handler answers), text otherwise; nothing from the request is echoed or logged. */
static void deny(th_otlp_http_server_t *s, h2o_req_t *req, int ret,
                 const struct th_auth_denial *why)
{
    int mt = request_media_type(req);
    int http = ret == TH_ENOMEM ? 503 : 401;
    th_auth_h2o_challenge(req, ret == TH_ENOMEM ? NULL : why);
    if (mt < 0) {
        char text[160];
        snprintf(text, sizeof(text), "%d %s: %s", http,
                 http == 401 ? "unauthorized" : "unavailable", why->message);
        respond_text(s, req, http, text);
    } else {
        struct th__otlp_reply r;
        memset(&r, 0, sizeof(r));
        reply_status(&r, mt == 1, http, http == 401 ? RPC_UNAUTHENTICATED : RPC_UNAVAILABLE,
                     why->message, http == 503 ? RETRY_AFTER_S : 0);
        respond(s, req, r.status, mt == 1 ? CT_JSON : CT_PROTOBUF, r.body.ptr, r.body.len,
                r.retry_after_s);
        th_buf_free(&r.body);
    }
    if (warn_allowed(s)) {
        th_log_warn(s->owner, "answered %d to a request on %s: %s (at most one such line a second)",
                    http, s->addr_text, why->message);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    th_otlp_http_server_t *s = ((struct handler *)self)->srv;
    th_conn_watch_track_h2o(&s->watch, req);
    h2o_iovec_t path = req->path;
    if (req->query_at != SIZE_MAX) {
        path.len = req->query_at;
    }

    if (s->n_origins > 0 && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        h2o_iovec_t m = find_header_str(req, "access-control-request-method");
        if (m.base) {
            preflight(s, req, m);
            return 0;
        }
    }
    if (th_auth_enabled(&s->auth)) {
        struct th_auth_denial why;
        int aret = th_auth_check_h2o(&s->auth, req, &why);
        if (aret != 0) {
            deny(s, req, aret, &why);
            return 0;
        }
    }
    if (!iov_eq(path, s->traces_path)) {
        if (iov_eq(path, s->metrics_path) || iov_eq(path, s->logs_path)) {
            respond_text(s, req, 404,
                         "404 not found: this receiver accepts traces only (metrics and logs "
                         "are not supported)");
        } else {
            respond_text(s, req, 404, "404 page not found");
        }
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        respond_text(s, req, 405, "405 method not allowed, supported: [POST]");
        return 0;
    }
    int mt = request_media_type(req);
    if (mt < 0) {
        respond_text(s, req, 415,
                     "415 unsupported media type, supported: [application/json, "
                     "application/x-protobuf]");
        return 0;
    }
    bool json = mt == 1;
    const char *ctype = json ? CT_JSON : CT_PROTOBUF;
    struct th__otlp_reply r;
    if (s->state != ST_RUNNING) {
        /* A request that was already buffered when shutdown began: refuse, retryably. */
        memset(&r, 0, sizeof(r));
        reply_status(&r, json, 503, RPC_UNAVAILABLE, "the receiver is shutting down",
                     RETRY_AFTER_S);
    } else {
        ssize_t ei = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_ENCODING, -1);
        const char *enc = ei >= 0 ? req->headers.entries[ei].value.base : NULL;
        size_t enc_len = ei >= 0 ? req->headers.entries[ei].value.len : 0;
        struct pending *p = th_calloc(1, sizeof(*p));
        struct pending **slot =
            p ? h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_pool_dispose) : NULL;
        if (slot) {
            *slot = NULL; /* the pool's dispose callback reads it whatever happens next */
        }
        th_ack_t *ack = slot ? th_ack_create(on_ack_settled, p) : NULL;
        if (!ack) {
            th_free(p);
            memset(&r, 0, sizeof(r));
            reply_status(&r, json, 503, RPC_UNAVAILABLE, "out of memory", RETRY_AFTER_S);
            respond(s, req, r.status, ctype, r.body.ptr, r.body.len, r.retry_after_s);
            th_buf_free(&r.body);
            return 0;
        }
        th_ack_hub_entry_init(&p->e, on_pending_complete);
        *slot = p;
        p->holder = slot;
        p->req = req;
        p->json = json;
        p->srv = s;
        th_ack_hub_attach(s->hub, &p->e);
        p->next = s->pending;
        if (s->pending) {
            s->pending->prev = p;
        }
        s->pending = p;
        th__otlp_http_export(&s->x, json, enc, enc_len, (const uint8_t *)req->entity.base,
                             req->entity.base ? req->entity.len : 0, ack, &r);
        if (r.status == 0) {
            /* Accepted: answered from on_ack_settled, maybe right now when we let go. */
            th_ack_settle(ack, 0);
            return 0;
        }
        p->answered = true;
        th_ack_settle(ack, 0);
        if (r.status >= 500 && warn_allowed(s)) {
            th_log_warn(s->owner,
                        "answered %d %s to an export on %s (at most one such line a "
                        "second)",
                        r.status, r.reason, s->addr_text);
        }
    }
    respond(s, req, r.status, ctype, r.body.ptr, r.body.len, r.retry_after_s);
    th_buf_free(&r.body);
    return 0;
}

/* h2o answers some errors before any handler runs: a declared or chunked body larger than
 * max_request_entity_size gets a text/plain 413. The OTLP spec wants a google.rpc.Status in
 * the request's encoding, so this filter rewrites exactly those responses. */
struct status_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
};

static void status_ostream_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                                size_t bufcnt, h2o_send_state_t state)
{
    struct status_ostream *os = (struct status_ostream *)self;
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    h2o_ostream_send_next(self, req, &os->body, 1, state);
}

static bool is_h2o_error(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && h2o_memis(req->res.headers.entries[i].value.base,
                               req->res.headers.entries[i].value.len, H2O_STRLIT(CT_TEXT));
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    th_otlp_http_server_t *s = ((struct filter *)self)->srv;
    int mt;
    if (req->res.status == 413 && is_h2o_error(req) && (mt = request_media_type(req)) >= 0) {
        bool json = mt == 1;
        char msg[160];
        th_buf_t b = {0};
        snprintf(msg, sizeof(msg), "request body exceeds max_request_body_size (%zu bytes)",
                 s->x.max_body);
        if (th_otlp_encode_status(json, RPC_INVALID_ARGUMENT, msg, 0, &b) == 0) {
            struct status_ostream *os =
                (struct status_ostream *)h2o_add_ostream(req, sizeof(*os), slot);
            os->super.do_send = status_ostream_send;
            os->body = h2o_strdup(&req->pool, (const char *)b.ptr, b.len);
            req->res.content_length = b.len;
            h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                           json ? CT_JSON : CT_PROTOBUF,
                           json ? strlen(CT_JSON) : strlen(CT_PROTOBUF), 1);
            add_common_headers(s, req);
            slot = &os->super.next;
        }
        th_buf_free(&b);
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- Connections and teardown ---------------------------------------------------------- */

static void free_server(th_otlp_http_server_t *s)
{
    th_conn_watch_free(&s->watch);
    th_tls_server_destroy(s->tls);
    h2o_config_dispose(&s->globalconf);
    th_arena_destroy(s->arena);
    th_free(s);
}

static void on_sentinel1_closed(uv_handle_t *h)
{
    th_otlp_http_server_t *s = h->data;
    s->state = ST_DONE;
    s->loop = NULL;
    if (s->destroy_pending) {
        free_server(s);
    }
}

/* Handles closed inside a close callback finish on the next loop iteration, after every
 * handle of the current batch (h2o's timers among them) is released. */
static void on_sentinel0_closed(uv_handle_t *h)
{
    th_otlp_http_server_t *s = h->data;
    uv_close((uv_handle_t *)&s->sentinel[1], on_sentinel1_closed);
}

static void maybe_finish(th_otlp_http_server_t *s)
{
    if (s->state != ST_CLOSING || s->listener_open || s->n_conns > 0 || s->reject_busy) {
        return;
    }
    s->state = ST_DISPOSING;
    /* Every connection is gone: requests still waiting can no longer be answered. */
    hub_release(s);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
    if (s->ctx_inited) {
        h2o_context_dispose(&s->ctx);
        s->ctx_inited = false;
    }
    uv_close((uv_handle_t *)&s->sentinel[0], on_sentinel0_closed);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)((char *)h - offsetof(struct conn, tcp));
    th_otlp_http_server_t *s = c->srv;
    th_conn_watch_remove(&s->watch, &c->progress);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->n_conns--;
    th_free(c);
    maybe_finish(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    th_otlp_http_server_t *s = h->data;
    s->listener_open = false;
    maybe_finish(s);
}

static void on_connection(uv_stream_t *listener, int status);

static void on_reject_closed(uv_handle_t *h)
{
    th_otlp_http_server_t *s = h->data;
    s->reject_busy = false;
    if (s->accept_pending && s->state == ST_RUNNING) {
        s->accept_pending = false;
        on_connection((uv_stream_t *)&s->listener, 0);
        return;
    }
    maybe_finish(s);
}

/* Over the connection limit: accept and close at once, and say so at most once every ten
 * seconds. @return false when there was no memory for a handle, so the caller falls back to
 * its spare. */
static bool refuse(th_otlp_http_server_t *s, uv_stream_t *listener)
{
    char where[sizeof(s->addr_text) + 8];
    snprintf(where, sizeof(where), " on %s", s->addr_text);
    return th_conn_refuse(listener, &s->refusals, s->owner, where, s->n_conns, s->max_conns,
                          s->max_conns_set);
}

/* The progress deadline's sweep: one timer per server, not one per connection. */
static void on_sweep(uv_timer_t *t)
{
    th_otlp_http_server_t *s = t->data;
    char where[sizeof(s->addr_text) + 8];
    snprintf(where, sizeof(where), " on %s", s->addr_text);
    th_conn_watch_tick(&s->watch, s->owner, where,
                       "the bound is the larger of idle_timeout and read_header_timeout + "
                       "read_timeout");
}

static void on_connection(uv_stream_t *listener, int status)
{
    th_otlp_http_server_t *s = listener->data;
    if (status < 0) {
        if (warn_allowed(s)) {
            th_log_warn(s->owner, "accepting a connection on %s: %s", s->addr_text,
                        uv_strerror(status));
        }
        return;
    }
    if (s->n_conns >= s->max_conns && refuse(s, listener)) {
        return;
    }
    struct conn *c = s->n_conns < s->max_conns ? th_calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        /* No memory for the connection: accept it into the spare handle and close it, so
         * the listener keeps going. If the spare is busy, libuv pauses accepting until the
         * spare is free again. */
        if (s->reject_busy) {
            s->accept_pending = true;
            return;
        }
        uv_tcp_init(s->loop, &s->reject);
        s->reject.data = s;
        s->reject_busy = true;
        uv_accept(listener, (uv_stream_t *)&s->reject);
        uv_close((uv_handle_t *)&s->reject, on_reject_closed);
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->progress.fd = -1; /* not watched yet: on_conn_closed's remove finds nothing */
    uv_os_fd_t fd;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        th_conn_watch_add(&s->watch, &c->progress, fd) != 0) {
        c->next = s->conns;
        if (s->conns) {
            s->conns->prev = c;
        }
        s->conns = c;
        s->n_conns++;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    if (s->tls) {
        /* The current context: a certificate reload takes effect for new connections. */
        s->accept_ctx.ssl_ctx = th_tls_server_ctx(s->tls);
    }
    h2o_accept(&s->accept_ctx, sock);
}

/* ---- Create, start, shutdown, destroy -------------------------------------------------- */

static h2o_iovec_t url_path(th_arena_t *a, const char *p)
{
    /* The Collector parses the key as a URL path and adds a leading '/'. */
    size_t len = strlen(p);
    bool slash = len > 0 && p[0] == '/';
    char *out = th_arena_alloc(a, len + 2);
    if (!out) {
        return h2o_iovec_init(NULL, 0);
    }
    size_t n = 0;
    if (!slash) {
        out[n++] = '/';
    }
    memcpy(out + n, p, len);
    n += len;
    out[n] = '\0';
    return h2o_iovec_init(out, n);
}

static const char **copy_list(th_arena_t *a, const th_strlist_t *l, bool lower)
{
    const char **v = th_arena_calloc(a, l->n ? l->n : 1, sizeof(*v));
    if (!v) {
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        size_t len = strlen(l->v[i]);
        char *c = th_arena_strndup(a, l->v[i], len);
        if (!c) {
            return NULL;
        }
        for (size_t j = 0; lower && j < len; j++) {
            c[j] = h2o_tolower(c[j]);
        }
        v[i] = c;
    }
    return v;
}

static bool has_crlf(const char *v)
{
    return strpbrk(v, "\r\n") != NULL;
}

/* Timeouts: h2o 2.2 has one HTTP/1 timer that runs from the moment the server waits for a
 * request until its body is complete (so it also bounds keep-alive idleness), and one
 * HTTP/2 idle timer. The Collector's 0 means "no timeout"; we keep a finite default so a
 * client that sends slowly, or not at all, cannot hold a connection forever. */
static uint64_t ms_or(int64_t ns, int64_t dflt_ns)
{
    int64_t v = ns > 0 ? ns : dflt_ns;
    uint64_t ms = (uint64_t)(v / 1000000);
    return ms ? ms : 1;
}

int th_otlp_http_server_create(const struct th_otlp_http_cfg *cfg, struct th_consumer *next,
                               struct th_component *owner, th_otlp_http_server_t **out)
{
    const char *why = NULL;
    int ret = th_otlp_http_cfg_check(cfg, &why);
    if (ret != 0) {
        th_log_error(owner, "%s", why);
        return ret;
    }
    th_otlp_http_server_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        return TH_ENOMEM;
    }
    ret = TH_ENOMEM;
    s->arena = th_arena_create(4096, 0);
    if (!s->arena) {
        th_free(s);
        return TH_ENOMEM;
    }
    h2o_config_init(&s->globalconf);
    s->owner = owner;
    s->port = -1;
    s->max_conns =
        cfg->max_connections > 0 ? (size_t)cfg->max_connections : th_conn_limit_default();
    s->max_conns_set = cfg->max_connections > 0;
    s->state = ST_NEW;
    s->x.next = next;
    s->x.stats = owner ? &owner->stats : &s->own_stats;
    s->x.transport_stats = owner ? &s->own_stats : NULL;
    s->x.log_as = owner;
    th_otlp_http_cfg_limits(cfg, &s->x.lim);
    int64_t max_body =
        cfg->max_request_body_size > 0 ? cfg->max_request_body_size : TH_OTLP_HTTP_DEFAULT_MAX_BODY;
    s->x.max_body = (size_t)max_body;
    s->x.encodings = TH_OTLP_ENC_IDENTITY;
    if (cfg->compression_algorithms.n == 0) {
        s->x.encodings = TH_OTLP_ENC_ALL;
    }
    for (size_t i = 0; i < cfg->compression_algorithms.n; i++) {
        const char *name = cfg->compression_algorithms.v[i];
        enum th_otlp_encoding enc;
        if (th_otlp_encoding_parse(name, strlen(name), &enc) == 0) {
            s->x.encodings |= (unsigned)enc;
        } else {
            th_log_warn(owner,
                        "compression_algorithms: %s is not supported by Tracehouse; bodies "
                        "with that Content-Encoding get 400",
                        name);
        }
    }

    s->endpoint = th_arena_strndup(s->arena, cfg->endpoint, strlen(cfg->endpoint));
    s->family = AF_UNSPEC;
    if (cfg->transport && !strcmp(cfg->transport, "tcp4")) {
        s->family = AF_INET;
    } else if (cfg->transport && !strcmp(cfg->transport, "tcp6")) {
        s->family = AF_INET6;
    }
    s->traces_path = url_path(s->arena, cfg->traces_url_path ? cfg->traces_url_path : "");
    s->metrics_path = url_path(s->arena, cfg->metrics_url_path ? cfg->metrics_url_path : "");
    s->logs_path = url_path(s->arena, cfg->logs_url_path ? cfg->logs_url_path : "");
    if (!s->endpoint || !s->traces_path.base || !s->metrics_path.base || !s->logs_path.base) {
        goto fail;
    }

    s->n_origins = cfg->cors.allowed_origins.n;
    s->origins = copy_list(s->arena, &cfg->cors.allowed_origins, true);
    s->n_allow_headers = cfg->cors.allowed_headers.n;
    s->allow_headers = copy_list(s->arena, &cfg->cors.allowed_headers, true);
    if (!s->origins || !s->allow_headers) {
        goto fail;
    }
    for (size_t i = 0; i < s->n_allow_headers; i++) {
        if (!strcmp(s->allow_headers[i], "*")) {
            s->allow_any_header = true;
        }
    }
    if (s->n_origins == 0 && s->n_allow_headers > 0) {
        th_log_warn(owner, "cors::allowed_headers is ignored without cors::allowed_origins");
    }
    size_t elen = 0;
    for (size_t i = 0; i < cfg->cors.exposed_headers.n; i++) {
        elen += strlen(cfg->cors.exposed_headers.v[i]) + 2;
    }
    if (elen) {
        char *e = th_arena_alloc(s->arena, elen + 1);
        if (!e) {
            goto fail;
        }
        size_t n = 0;
        for (size_t i = 0; i < cfg->cors.exposed_headers.n; i++) {
            n += (size_t)sprintf(e + n, "%s%s", i ? ", " : "", cfg->cors.exposed_headers.v[i]);
        }
        s->expose_headers = h2o_iovec_init(e, n);
    }
    s->max_age = cfg->cors.max_age;

    s->n_resp_headers = cfg->response_headers.n;
    s->resp_headers = th_arena_calloc(s->arena, s->n_resp_headers ? s->n_resp_headers : 1,
                                      sizeof(struct resp_header));
    if (!s->resp_headers) {
        goto fail;
    }
    for (size_t i = 0; i < s->n_resp_headers; i++) {
        const char *k = cfg->response_headers.keys[i], *v = cfg->response_headers.vals[i];
        if (!*k || has_crlf(k) || has_crlf(v) || strchr(k, ':')) {
            th_log_error(owner, "response_headers: invalid header name or value for \"%s\"", k);
            ret = TH_ECONFIG;
            goto fail;
        }
        char *kc = th_arena_strndup(s->arena, k, strlen(k));
        char *vc = th_arena_strndup(s->arena, v, strlen(v));
        if (!kc || !vc) {
            goto fail;
        }
        for (char *p = kc; *p; p++) {
            *p = h2o_tolower(*p);
        }
        s->resp_headers[i].name = h2o_iovec_init(kc, strlen(kc));
        s->resp_headers[i].value = h2o_iovec_init(vc, strlen(vc));
    }
    s->keep_alive = cfg->keep_alives_enabled;
    if (cfg->tls_enabled) {
        char terr[1024];
        struct th_tls_server_opts to = {
            .path = "protocols::http::tls", .alpn = TH_TLS_ALPN_HTTP, .log_as = owner};
        ret = th_tls_server_create(&cfg->tls, &to, &s->tls, terr, sizeof(terr));
        if (ret != 0) {
            th_log_error(owner, "%s", terr);
            goto fail;
        }
        ret = TH_ENOMEM;
    }

    /* h2o: one host (every Host header maps to it), one handler for every path, and the
     * filter that gives h2o's own 413 a Status body. */
    s->globalconf.server_name = h2o_iovec_init(NULL, 0);
    s->globalconf.max_request_entity_size = s->x.max_body;
    int64_t rt = TH_MAX(cfg->read_timeout, cfg->read_header_timeout);
    s->http1_timeout_ms = ms_or(rt, TH_OTLP_HTTP_DEFAULT_REQUEST_TIMEOUT_NS);
    s->http2_idle_ms = ms_or(cfg->idle_timeout, TH_OTLP_HTTP_DEFAULT_IDLE_TIMEOUT_NS);
    s->globalconf.http1.req_timeout = s->http1_timeout_ms;
    s->globalconf.http2.idle_timeout = s->http2_idle_ms;
    /* The progress deadline: never shorter than h2o's own timers, so it only catches what
     * they miss (HTTP/2's idle timer restarts on every byte), and at least the time Go's
     * server would allow for one request's headers and body. */
    uint64_t rhrt_ms = (uint64_t)(TH_MAX(cfg->read_header_timeout, 0) / 1000000) +
                       (uint64_t)(TH_MAX(cfg->read_timeout, 0) / 1000000);
    uint64_t progress_ms = TH_MAX(TH_MAX(s->http2_idle_ms, s->http1_timeout_ms), rhrt_ms);
    th_conn_watch_init(&s->watch, progress_ms * 1000000);
    s->watch.write_bound_ns = (uint64_t)TH_MAX(cfg->write_timeout, 0);
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    struct handler *h = (struct handler *)h2o_create_handler(&host->fallback_path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = s;
    struct filter *f = (struct filter *)h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->srv = s;
    *out = s;
    return 0;
fail:
    free_server(s);
    return ret;
}

/* Resolve and bind with plain sockets first: a taken port or a bad host fails here, before
 * any libuv handle exists, so a failed start leaves nothing to close. */
static int bind_socket(th_otlp_http_server_t *s, const char *host, int port, int *fd_out,
                       struct sockaddr_storage *ss, socklen_t *sslen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = s->family;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    bool any = host[0] == '\0';
    if (any && s->family == AF_UNSPEC) {
        hints.ai_family = AF_INET6; /* dual stack where IPv6 exists, like Go's ":port" */
    }
    int gai = getaddrinfo(any ? NULL : host, portstr, &hints, &res);
    if (gai != 0 && any && s->family == AF_UNSPEC) {
        hints.ai_family = AF_INET;
        gai = getaddrinfo(NULL, portstr, &hints, &res);
    }
    if (gai != 0) {
        th_log_error(s->owner, "cannot listen on %s: cannot resolve \"%s\": %s", s->endpoint, host,
                     gai_strerror(gai));
        return TH_EINVAL;
    }
    /* Go listens on one address of a name, preferring IPv4 ("localhost" -> 127.0.0.1). */
    struct addrinfo *pick = res;
    for (struct addrinfo *ai = res; ai && s->family == AF_UNSPEC && !any; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    int ret = 0;
    int fd = socket(pick->ai_family, pick->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    pick->ai_protocol);
    if (fd < 0 && any && pick->ai_family == AF_INET6) {
        /* No IPv6 on this host: all interfaces means all IPv4 interfaces. */
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        memset(ss, 0, sizeof(*ss));
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*sin);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    } else {
        memcpy(ss, pick->ai_addr, pick->ai_addrlen);
        *sslen = pick->ai_addrlen;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        ret = errno;
        goto fail;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6 && any) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, (struct sockaddr *)ss, *sslen) != 0 || listen(fd, SOMAXCONN) != 0) {
        ret = errno;
        goto fail;
    }
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    if (ret == EADDRINUSE) {
        th_log_error(s->owner,
                     "cannot listen on %s: address already in use (is another collector "
                     "running?)",
                     s->endpoint);
        return TH_EADDRINUSE;
    }
    th_log_error(s->owner, "cannot listen on %s: %s", s->endpoint, strerror(ret));
    return ret == EACCES ? TH_EPERM : ret == EADDRNOTAVAIL ? TH_EINVAL : TH_EIO;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen, int *port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        *port = ntohs(a->sin_port);
        snprintf(out, outlen, "%s:%d", ip, *port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        *port = ntohs(a->sin6_port);
        snprintf(out, outlen, "[%s]:%d", ip, *port);
    }
}

int th_otlp_http_server_start(th_otlp_http_server_t *s, uv_loop_t *loop)
{
    if (s->state != ST_NEW && s->state != ST_DONE) {
        return TH_EEXIST;
    }
    char host[256];
    int port;
    if (th_otlp_endpoint_split(s->endpoint, host, sizeof(host), &port) != 0) {
        th_log_error(s->owner, "cannot listen on %s: expected host:port", s->endpoint);
        return TH_EINVAL;
    }
    if (s->tls) {
        /* The files are read when the server starts: a missing or mismatched one fails it. */
        char terr[1024];
        int tret = th_tls_server_load(s->tls, terr, sizeof(terr));
        if (tret != 0) {
            th_log_error(s->owner, "%s", terr);
            return tret;
        }
    }
    int fd = -1;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int ret = bind_socket(s, host, port, &fd, &ss, &sslen);
    if (ret != 0) {
        return ret;
    }
    sslen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    format_addr(&ss, s->addr_text, sizeof(s->addr_text), &s->port);

    ret = th_ack_hub_create(loop, &s->hub);
    if (ret != 0) {
        close(fd);
        return ret;
    }
    s->loop = loop;
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_timer_init(loop, &s->sweep_timer);
    s->sweep_timer.data = s;
    uint64_t period = th_conn_watch_period_ms(&s->watch);
    uv_timer_start(&s->sweep_timer, on_sweep, period, period);
    for (int i = 0; i < 2; i++) {
        uv_timer_init(loop, &s->sentinel[i]);
        s->sentinel[i].data = s;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    s->state = ST_RUNNING;
    int uvr = uv_tcp_open(&s->listener, fd);
    if (uvr == 0) {
        uvr = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    } else {
        close(fd);
    }
    if (uvr != 0) {
        /* Should not happen with a socket we just made; clean up through the loop. */
        th_log_error(s->owner, "cannot listen on %s: %s", s->addr_text, uv_strerror(uvr));
        s->state = ST_CLOSING;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        s->port = -1;
        return TH_EIO;
    }
    h2o_context_init(&s->ctx, loop, &s->globalconf);
    s->ctx_inited = true;
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->globalconf.hosts;
    th_log_info(s->owner,
                "OTLP/HTTP listening on %s (traces at POST %s; at most %zu connections)%s",
                s->addr_text, s->traces_path.base, s->max_conns, s->tls ? "; TLS" : "");
    return 0;
}

int th_otlp_http_bound_port(const th_otlp_http_server_t *s)
{
    return s && s->state == ST_RUNNING ? s->port : -1;
}

void th_otlp_http_server_set_auth(th_otlp_http_server_t *s, const struct th_auth *auth)
{
    if (s) {
        s->auth = *auth;
    }
}

int th_otlp_http_server_shutdown(th_otlp_http_server_t *s)
{
    if (!s || s->state != ST_RUNNING) {
        return 0;
    }
    s->state = ST_CLOSING;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    /* Requests waiting for their ack are answered when the pipeline's shutdown flush
     * settles them (their spans are stored or delivered), so their connections stay open
     * until then; idle keep-alive connections go at once. */
    for (struct pending *p = s->pending; p; p = p->next) {
        struct conn *c = p->req ? conn_of(s, p->req) : NULL;
        if (c) {
            c->busy = true;
        }
    }
    for (struct conn *c = s->conns; c; c = c->next) {
        if (!c->busy) {
            conn_shutdown(c);
        }
    }
    if (s->pending) {
        uv_timer_start(&s->drain_timer, on_drain_timer, DRAIN_MAX_MS, 0);
    } else {
        hub_release(s);
    }
    th_log_info(s->owner, "OTLP/HTTP on %s stopped accepting (%zu connections closing)",
                s->addr_text, s->n_conns);
    s->port = -1;
    maybe_finish(s);
    return 0;
}

bool th_otlp_http_server_closed(const th_otlp_http_server_t *s)
{
    return !s || s->state == ST_NEW || s->state == ST_DONE;
}

void th_otlp_http_server_destroy(th_otlp_http_server_t *s)
{
    if (!s) {
        return;
    }
    th_otlp_http_server_shutdown(s);
    /* The component may be freed right after this: stop referring to it. */
    s->owner = NULL;
    s->x.log_as = NULL;
    s->x.stats = &s->own_stats;
    s->x.transport_stats = NULL;
    s->x.next = NULL;
    if (th_otlp_http_server_closed(s)) {
        free_server(s);
    } else {
        s->destroy_pending = true;
    }
}

const struct th_component_stats *th_otlp_http_server_stats(const th_otlp_http_server_t *s)
{
    return s->x.stats;
}

const struct th_component_stats *th_otlp_http_server_transport_stats(const th_otlp_http_server_t *s)
{
    return &s->own_stats;
}
