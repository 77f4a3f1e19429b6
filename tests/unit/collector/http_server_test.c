/*
 * The collector's small HTTP server, over real sockets: status, body and content type as
 * the handler set them, request headers and query string seen by the handler, HEAD, a
 * handler error becoming 500, endpoint errors, and stopping while a keep-alive connection
 * is still open.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/http_server.h"

struct seen {
    char method[16];
    char path[128];
    char query[128];
    char agent[128];
    int calls;
};

static int handler(void *data, const struct th_http_request *req, struct th_http_response *res)
{
    struct seen *s = data;
    s->calls++;
    snprintf(s->method, sizeof(s->method), "%.*s", (int)req->method_len, req->method);
    snprintf(s->path, sizeof(s->path), "%.*s", (int)req->path_len, req->path);
    snprintf(s->query, sizeof(s->query), "%.*s", req->query ? (int)req->query_len : 0,
             req->query ? req->query : "");
    size_t alen = 0;
    const char *agent = req->header(req, "x-probe", &alen);
    snprintf(s->agent, sizeof(s->agent), "%.*s", agent ? (int)alen : 6, agent ? agent : "(none)");
    if (req->path_len == 5 && !memcmp(req->path, "/fail", 5)) {
        return TH_EIO;
    }
    if (req->path_len == 8 && !memcmp(req->path, "/missing", 8)) {
        res->status = 404;
        return th_buf_printf(&res->body, "no such page\n");
    }
    if (req->path_len == 6 && !memcmp(req->path, "/plain", 6)) {
        return th_buf_printf(&res->body, "default type");
    }
    res->content_type = "application/json";
    return th_buf_printf(&res->body, "{\"path\":\"%s\"}", s->path);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Read one response whose length is given by Content-Length (or until close). */
static size_t read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        assert_true(n >= 0);
        len += (size_t)n;
        buf[len] = '\0';
        if (n == 0) {
            return len;
        }
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "content-length: ");
        if (end && cl && cl < end) {
            size_t want = (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16);
            if (len >= want) {
                return len;
            }
        }
    }
}

static size_t request(int fd, const char *req, char *buf, size_t cap)
{
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return read_response(fd, buf, cap);
}

static th_http_server_t *start(struct seen *seen, const char *endpoint)
{
    struct th_http_server_cfg cfg = {.endpoint = endpoint, .handler = handler, .data = seen};
    th_http_server_t *s = NULL;
    char err[256];
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), 0);
    assert_true(th_http_server_port(s) > 0);
    return s;
}

static void test_get(void **state)
{
    (void)state;
    struct seen seen = {0};
    th_http_server_t *s = start(&seen, "127.0.0.1:0");
    int fd = connect_to(th_http_server_port(s));
    char buf[4096];
    request(fd, "GET /metrics?x=1&y HTTP/1.1\r\nHost: a\r\nX-Probe: hello\r\n\r\n", buf,
            sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "content-type: application/json\r\n"));
    assert_non_null(strcasestr(buf, "content-length: 19\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\n{\"path\":\"/metrics\"}"));
    assert_string_equal(seen.method, "GET");
    assert_string_equal(seen.path, "/metrics");
    assert_string_equal(seen.query, "x=1&y");
    assert_string_equal(seen.agent, "hello");

    /* same connection (keep-alive): default content type, no header */
    request(fd, "POST /plain HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "content-type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\ndefault type"));
    assert_string_equal(seen.method, "POST");
    assert_string_equal(seen.query, "");
    assert_string_equal(seen.agent, "(none)");

    request(fd, "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(buf, "no such page\n"));

    request(fd, "GET /fail HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 500 Internal Server Error\r\n"));
    assert_int_equal(seen.calls, 4);
    close(fd);
    th_http_server_stop(s);
}

static void test_head(void **state)
{
    (void)state;
    struct seen seen = {0};
    th_http_server_t *s = start(&seen, "localhost:0");
    int fd = connect_to(th_http_server_port(s));
    char buf[4096];
    /* Connection: close, so the response ends with the connection and any body would show */
    size_t n =
        request(fd, "HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    const char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    if ((size_t)(end + 4 - buf) < n) {
        read_response(fd, buf, sizeof(buf)); /* drain until close */
    }
    assert_int_equal((size_t)(end + 4 - buf), n);
    assert_string_equal(seen.method, "HEAD");
    close(fd);
    th_http_server_stop(s);
}

/* Stopping with an idle keep-alive connection and one mid-request: both are closed, stop
 * returns promptly and the server's memory is released (ASan/LSan would tell). */
static void test_stop_with_open_connections(void **state)
{
    (void)state;
    struct seen seen = {0};
    th_http_server_t *s = start(&seen, ":0");
    int port = th_http_server_port(s);
    int idle = connect_to(port);
    char buf[4096];
    request(idle, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "200 OK"));
    int partial = connect_to(port);
    const char *half = "GET /b HTTP/1.1\r\nHo";
    assert_int_equal(write(partial, half, strlen(half)), (ssize_t)strlen(half));
    usleep(50 * 1000);

    uint64_t t0 = th_now_mono_ns();
    th_http_server_stop(s);
    uint64_t took_ms = (th_now_mono_ns() - t0) / 1000000;
    assert_true(took_ms < 2500);
    /* the idle connection was closed by the server: read sees EOF (or a reset) */
    struct pollfd p = {.fd = idle, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_true(read(idle, buf, sizeof(buf)) <= 0);
    close(idle);
    close(partial);
    /* the port is free again */
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
    struct th_http_server_cfg cfg = {.endpoint = ep, .handler = handler, .data = &seen};
    char err[256];
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), 0);
    th_http_server_stop(s);
}

static void test_endpoint_errors(void **state)
{
    (void)state;
    struct seen seen = {0};
    char err[256];
    th_http_server_t *s = NULL;
    struct th_http_server_cfg cfg = {
        .endpoint = "localhost:http-ish", .handler = handler, .data = &seen};
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), TH_EINVAL);
    assert_non_null(strstr(err, "localhost:http-ish"));
    cfg.endpoint = "localhost:70000";
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), TH_EINVAL);
    cfg.endpoint = "no-such-host.invalid:80";
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), TH_EINVAL);

    th_http_server_t *first = start(&seen, "127.0.0.1:0");
    char ep[32];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", th_http_server_port(first));
    cfg.endpoint = ep;
    assert_int_equal(th_http_server_start(&cfg, &s, err, sizeof(err)), TH_EADDRINUSE);
    assert_non_null(strstr(err, ep));
    th_http_server_stop(first);
    th_http_server_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_stop_with_open_connections),
        cmocka_unit_test(test_endpoint_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
