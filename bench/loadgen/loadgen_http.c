/*
 * The load generator's OTLP/HTTP transport: one HTTP/1.1 keep-alive connection per lg_conn,
 * one request at a time (as the SDKs' exporters do), written straight to a libuv TCP handle.
 * Responses are read just far enough to know their status and where they end
 * (Content-Length or chunked); their bodies are skipped. A closed connection reconnects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench/loadgen/loadgen.h"

#define RBUF 16384

struct lg_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t retry;    /* reconnects after a pause, so a dead server is not hammered */
    unsigned backoff_ms; /* the next pause: 0 after a good connect, then 10 ms up to 1 s */
    int handles;         /* handles still open once closing: freed at 0 */
    uv_write_t write;
    uv_loop_t *loop;
    struct sockaddr_storage addr;
    char authority[128];
    bool json;
    lg_done_cb done;
    void *arg;
    bool connected, connecting, busy, closing;
    char head[512];
    uint8_t *body;
    size_t body_cap;
    uint64_t intended_ns;
    /* response parsing */
    char rbuf[RBUF];
    size_t rlen;
    int status;
    bool in_body, chunked;
    uint64_t body_left;
};

static void conn_connect(struct lg_conn *c);

static void finish(struct lg_conn *c, int status)
{
    struct lg_answer a = {.status = status, .grpc_status = -1, .intended_ns = c->intended_ns};
    c->busy = false;
    c->in_body = false;
    c->rlen = 0;
    c->done(c, &a, c->arg);
}

static void conn_free(struct lg_conn *c)
{
    if (--c->handles == 0) {
        free(c->body);
        free(c);
    }
}

static void on_retry_closed(uv_handle_t *h)
{
    conn_free(h->data);
}

static void on_retry(uv_timer_t *t)
{
    conn_connect(t->data);
}

static void on_closed(uv_handle_t *h)
{
    struct lg_conn *c = h->data;
    c->connected = c->connecting = false;
    if (c->closing) {
        conn_free(c);
        return;
    }
    if (c->busy) {
        finish(c, 0); /* the request died with the connection */
    }
    c->backoff_ms = c->backoff_ms ? (c->backoff_ms * 2 > 1000 ? 1000 : c->backoff_ms * 2) : 10;
    uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
}

static void drop_conn(struct lg_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct lg_conn *c = h->data;
    buf->base = c->rbuf + c->rlen;
    buf->len = RBUF - c->rlen;
}

/* Skip a chunked body; returns bytes consumed, sets *end when the last chunk went by. */
static size_t skip_chunked(struct lg_conn *c, const char *p, size_t n, bool *end)
{
    size_t used = 0;
    while (used < n) {
        if (c->body_left > 0) {
            size_t k = n - used < c->body_left ? n - used : (size_t)c->body_left;
            used += k;
            c->body_left -= k;
            continue;
        }
        const char *nl = memchr(p + used, '\n', n - used);
        if (!nl) {
            break; /* a size line split across reads: keep it */
        }
        size_t line_len = (size_t)(nl - (p + used)) + 1;
        char line[32] = {0};
        memcpy(line, p + used, line_len < sizeof(line) - 1 ? line_len : sizeof(line) - 1);
        used += line_len;
        if (line[0] == '\r' || line[0] == '\n') {
            continue; /* the CRLF after a chunk */
        }
        unsigned long sz = strtoul(line, NULL, 16);
        if (sz == 0) {
            /* last chunk; trailers are not sent by servers we drive: expect the final CRLF */
            const char *crlf = memchr(p + used, '\n', n - used);
            if (crlf) {
                used = (size_t)(crlf - p) + 1;
            }
            *end = true;
            return used;
        }
        c->body_left = sz;
    }
    return used;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct lg_conn *c = s->data;
    if (nread < 0) {
        drop_conn(c);
        return;
    }
    c->rlen += (size_t)nread;
    for (;;) {
        if (!c->busy) {
            c->rlen = 0; /* nothing expected: ignore */
            return;
        }
        if (!c->in_body) {
            char *end = NULL;
            for (size_t i = 3; i < c->rlen; i++) {
                if (memcmp(c->rbuf + i - 3, "\r\n\r\n", 4) == 0) {
                    end = c->rbuf + i + 1;
                    break;
                }
            }
            if (!end) {
                if (c->rlen == RBUF) {
                    drop_conn(c); /* a header block we will not read */
                }
                return;
            }
            c->status = 0;
            if (c->rlen < 12 || sscanf(c->rbuf, "HTTP/1.%*c %d", &c->status) != 1) {
                drop_conn(c);
                return;
            }
            c->chunked = false;
            c->body_left = 0;
            for (char *line = strstr(c->rbuf, "\r\n"); line && line < end;
                 line = strstr(line + 2, "\r\n")) {
                char *h = line + 2;
                if (strncasecmp(h, "content-length:", 15) == 0) {
                    c->body_left = strtoull(h + 15, NULL, 10);
                } else if (strncasecmp(h, "transfer-encoding:", 18) == 0 && strstr(h, "chunked") &&
                           strstr(h, "chunked") < end) {
                    c->chunked = true;
                }
            }
            size_t hlen = (size_t)(end - c->rbuf);
            memmove(c->rbuf, end, c->rlen - hlen);
            c->rlen -= hlen;
            c->in_body = true;
        }
        if (c->chunked) {
            bool done = false;
            size_t used = skip_chunked(c, c->rbuf, c->rlen, &done);
            memmove(c->rbuf, c->rbuf + used, c->rlen - used);
            c->rlen -= used;
            if (!done) {
                return;
            }
        } else {
            size_t k = c->rlen < c->body_left ? c->rlen : (size_t)c->body_left;
            memmove(c->rbuf, c->rbuf + k, c->rlen - k);
            c->rlen -= k;
            c->body_left -= k;
            if (c->body_left > 0) {
                return;
            }
        }
        finish(c, c->status);
        if (c->rlen == 0) {
            return;
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct lg_conn *c = req->data;
    c->connecting = false;
    if (status != 0) {
        drop_conn(c); /* on_closed reconnects */
        return;
    }
    c->connected = true;
    c->backoff_ms = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    /* Tell the scheduler the connection is free. */
    struct lg_answer a = {.status = -1, .grpc_status = -1};
    c->done(c, &a, c->arg);
}

static void conn_connect(struct lg_conn *c)
{
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    c->connecting = true;
    if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&c->addr, on_connect) != 0) {
        drop_conn(c);
    }
}

static struct lg_conn *http_open(uv_loop_t *loop, const struct sockaddr *addr,
                                 const char *authority, bool json, lg_done_cb done, void *arg)
{
    struct lg_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->loop = loop;
    memcpy(&c->addr, addr,
           addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    snprintf(c->authority, sizeof(c->authority), "%s", authority);
    c->json = json;
    c->done = done;
    c->arg = arg;
    c->handles = 2;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    conn_connect(c);
    return c;
}

static unsigned http_capacity(struct lg_conn *c)
{
    return c->connected ? 1 : 0;
}

static unsigned http_inflight(struct lg_conn *c)
{
    return c->busy ? 1 : 0;
}

static void on_written(uv_write_t *w, int status)
{
    struct lg_conn *c = w->data;
    if (status != 0) {
        drop_conn(c);
    }
}

static int http_send(struct lg_conn *c, const uint8_t *body, size_t len, uint64_t intended_ns)
{
    if (!c->connected || c->busy) {
        return -1;
    }
    if (c->body_cap < len) {
        uint8_t *b = realloc(c->body, len);
        if (!b) {
            return -1;
        }
        c->body = b;
        c->body_cap = len;
    }
    memcpy(c->body, body, len);
    int hl = snprintf(c->head, sizeof(c->head),
                      "POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nUser-Agent: th_loadgen\r\n\r\n",
                      c->authority, c->json ? "application/json" : "application/x-protobuf", len);
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)hl),
                        uv_buf_init((char *)c->body, (unsigned)len)};
    c->write.data = c;
    c->busy = true;
    c->intended_ns = intended_ns;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, 2, on_written) != 0) {
        drop_conn(c);
    }
    return 0;
}

static void http_close(struct lg_conn *c)
{
    c->closing = true;
    uv_close((uv_handle_t *)&c->retry, on_retry_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

const struct lg_transport lg_http_transport = {
    .name = "http",
    .open = http_open,
    .capacity = http_capacity,
    .inflight = http_inflight,
    .send = http_send,
    .close = http_close,
};
