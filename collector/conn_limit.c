/*
 * Connection limits shared by every server: the default per-endpoint cap derived from the
 * open files limit, the counter that keeps refusal lines to one every ten seconds, so a
 * connection flood cannot turn into a log flood, and the progress deadline's bookkeeping
 * (which connection a request arrived on, and the sweep that shuts down stalled ones).
 */
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <h2o.h>

#include "th/common.h"
#include "th/conn_limit.h"
#include "th/log.h"
#include "th/tls.h"

size_t th_conn_limit_default(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return TH_CONN_LIMIT_MAX;
    }
    rlim_t q = rl.rlim_cur / 4;
    if (q < TH_CONN_LIMIT_MIN) {
        return TH_CONN_LIMIT_MIN;
    }
    return q > TH_CONN_LIMIT_MAX ? TH_CONN_LIMIT_MAX : (size_t)q;
}

bool th_conn_refusal_note(struct th_conn_refusals *r, uint64_t *count)
{
    uint64_t now = th_now_mono_ns();
    r->pending++;
    if (r->last_log_ns != 0 && now - r->last_log_ns < TH_CONN_REFUSAL_LOG_NS) {
        return false;
    }
    r->last_log_ns = now;
    *count = r->pending;
    r->pending = 0;
    return true;
}

void th_conn_watch_init(struct th_conn_watch *w, uint64_t bound_ns)
{
    memset(w, 0, sizeof(*w));
    w->bound_ns = bound_ns;
}

void th_conn_watch_free(struct th_conn_watch *w)
{
    th_free(w->by_fd);
    w->by_fd = NULL;
    w->cap = 0;
    w->list = NULL;
}

int th_conn_watch_add(struct th_conn_watch *w, struct th_conn_progress *p, int fd)
{
    if (fd < 0) {
        return TH_EINVAL;
    }
    if ((size_t)fd >= w->cap) {
        /* Descriptors are small and dense: a table indexed by them finds a request's
         * connection in O(1), with one pointer per descriptor. */
        size_t cap = w->cap ? w->cap : 256;
        while (cap <= (size_t)fd) {
            cap *= 2;
        }
        struct th_conn_progress **t = th_realloc(w->by_fd, cap * sizeof(*t));
        if (!t) {
            return TH_ENOMEM;
        }
        memset(t + w->cap, 0, (cap - w->cap) * sizeof(*t));
        w->by_fd = t;
        w->cap = cap;
    }
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->last_ns = th_now_mono_ns();
    w->by_fd[fd] = p;
    p->next = w->list;
    if (w->list) {
        w->list->prev = p;
    }
    w->list = p;
    return 0;
}

void th_conn_watch_remove(struct th_conn_watch *w, struct th_conn_progress *p)
{
    /* The descriptor may already belong to a newer connection (it was closed before this
     * callback ran): clear the slot only when it is still ours. */
    if (p->fd >= 0 && (size_t)p->fd < w->cap && w->by_fd[p->fd] == p) {
        w->by_fd[p->fd] = NULL;
    }
    for (struct th_conn_req *r = p->reqs; r; r = r->next) {
        r->conn = NULL;
    }
    p->reqs = NULL;
    if (p->prev) {
        p->prev->next = p->next;
    } else if (w->list == p) {
        w->list = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    }
    p->prev = p->next = NULL;
    p->fd = -1;
}

struct th_conn_progress *th_conn_watch_find(const struct th_conn_watch *w, int fd)
{
    return fd >= 0 && (size_t)fd < w->cap ? w->by_fd[fd] : NULL;
}

void th_conn_req_begin(struct th_conn_req *r, struct th_conn_progress *p)
{
    r->conn = p;
    r->prev = NULL;
    r->next = NULL;
    if (!p) {
        return;
    }
    r->next = p->reqs;
    if (p->reqs) {
        p->reqs->prev = r;
    }
    p->reqs = r;
    p->in_flight++;
    p->last_ns = r->begin_ns = th_now_mono_ns();
}

void th_conn_req_end(struct th_conn_req *r)
{
    struct th_conn_progress *p = r->conn;
    if (!p) {
        return;
    }
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        p->reqs = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->conn = NULL;
    p->in_flight--;
    p->last_ns = th_now_mono_ns();
}

/* Shut @p p down (both ways: the HTTP library sees EOF or a write error and closes it through
 * its own path) and count it in @p counter. @return true when a line is due; *log_count then
 * holds the count since the last one. */
static bool cut_conn(struct th_conn_progress *p, struct th_conn_refusals *counter,
                     uint64_t *log_count)
{
    p->cut = true;
    shutdown(p->fd, SHUT_RDWR);
    uint64_t n;
    if (!th_conn_refusal_note(counter, &n)) {
        return false;
    }
    *log_count = n;
    return true;
}

bool th_conn_watch_sweep(struct th_conn_watch *w, uint64_t now_ns, uint64_t *log_count)
{
    bool log = false;
    for (struct th_conn_progress *p = w->list; p; p = p->next) {
        if (!p->cut && p->in_flight == 0 && now_ns - p->last_ns >= w->bound_ns) {
            log |= cut_conn(p, &w->cuts, log_count);
        }
    }
    return log;
}

/* @return whether a request of @p p has been in flight for @p bound_ns or longer. */
static bool late_answer(const struct th_conn_progress *p, uint64_t now_ns, uint64_t bound_ns)
{
    for (const struct th_conn_req *r = p->reqs; r; r = r->next) {
        if (now_ns - r->begin_ns >= bound_ns) {
            return true;
        }
    }
    return false;
}

bool th_conn_watch_sweep_writes(struct th_conn_watch *w, uint64_t now_ns, uint64_t *log_count)
{
    bool log = false;
    if (w->write_bound_ns == 0) {
        return false;
    }
    for (struct th_conn_progress *p = w->list; p; p = p->next) {
        if (!p->cut && p->in_flight > 0 && late_answer(p, now_ns, w->write_bound_ns)) {
            log |= cut_conn(p, &w->wcuts, log_count);
        }
    }
    return log;
}

static void free_handle(uv_handle_t *h)
{
    th_free(h);
}

bool th_conn_refuse(uv_stream_t *listener, struct th_conn_refusals *r,
                    const struct th_component *log_as, const char *where, size_t open, size_t limit,
                    bool limit_set)
{
    uint64_t refused;
    if (th_conn_refusal_note(r, &refused)) {
        th_log_warn(log_as,
                    "refused %llu connection(s)%s since the last such line: %zu open, the "
                    "limit is %zu (%s)",
                    (unsigned long long)refused, where, open, limit,
                    limit_set ? "max_connections" : "a quarter of the open files limit");
    }
    uv_tcp_t *t = th_malloc(sizeof(*t));
    if (!t) {
        return false;
    }
    uv_tcp_init(listener->loop, t);
    uv_accept(listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle);
    return true;
}

int th_h2o_conn_accept(uv_stream_t *listener, struct th_conn_watch *w, size_t *count,
                       h2o_accept_ctx_t *actx, th_tls_server_t *tls,
                       void (*on_closed)(uv_handle_t *h))
{
    struct th_h2o_conn *c = th_calloc(1, sizeof(*c));
    if (!c) {
        return TH_ENOMEM;
    }
    uv_tcp_init(listener->loop, &c->tcp);
    uv_os_fd_t fd;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        th_conn_watch_add(w, &c->progress, fd) != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_handle);
        return TH_EIO;
    }
    (*count)++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_closed);
    if (tls) {
        actx->ssl_ctx = th_tls_server_ctx(tls);
    }
    h2o_accept(actx, sock);
    return 0;
}

void th_conn_watch_tick(struct th_conn_watch *w, const struct th_component *log_as,
                        const char *where, const char *bound_why)
{
    uint64_t cut;
    if (th_conn_watch_sweep(w, th_now_mono_ns(), &cut)) {
        th_log_warn(log_as,
                    "closed %llu connection(s)%s since the last such line: no request in flight "
                    "and none completed for %llu ms (a slow or stalled client%s%s)",
                    (unsigned long long)cut, where, (unsigned long long)(w->bound_ns / 1000000),
                    bound_why ? "; " : "", bound_why ? bound_why : "");
    }
    if (th_conn_watch_sweep_writes(w, th_now_mono_ns(), &cut)) {
        th_log_warn(log_as,
                    "closed %llu connection(s)%s since the last such line: a request was not "
                    "answered and written within write_timeout (%llu ms; a client that does not "
                    "read its answer, or a server side slower than that)",
                    (unsigned long long)cut, where,
                    (unsigned long long)(w->write_bound_ns / 1000000));
    }
}

uint64_t th_conn_watch_period_ms(const struct th_conn_watch *w)
{
    uint64_t ms = w->bound_ns / 8 / 1000000;
    return ms < 100 ? 100 : ms > 1000 ? 1000 : ms;
}

/* h2o releases the request's pool when its answer is done (HTTP/1.1: before the next
 * request; HTTP/2: when the stream closes): the end of the request for the deadline. */
static void on_track_dispose(void *mem)
{
    th_conn_req_end(mem);
}

void th_conn_watch_track_h2o(struct th_conn_watch *w, h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    struct th_conn_progress *p = sock ? th_conn_watch_find(w, h2o_socket_get_fd(sock)) : NULL;
    if (!p) {
        return;
    }
    struct th_conn_req *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_track_dispose);
    th_conn_req_begin(r, p);
}
