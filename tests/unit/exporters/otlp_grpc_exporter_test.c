/*
 * The otlp_grpc exporter (exporters/otlp_grpc/) on a real uv loop against real servers over
 * loopback:
 *
 *  - a scripted HTTP/2 server written here with nghttp2 (its own thread, poll, optional TLS
 *    with OpenSSL on the socket) that answers as each test tells it: OK, partial success,
 *    any status with or without RetryInfo, silence, a TCP reset, GOAWAY, a plain HTTP 503,
 *    or holding calls until many are open at once;
 *  - the project's own OTLP/gRPC receiver, started in-process on the same loop.
 *
 * What is checked: every result mapping (on the wire, and the mapper alone for HTTP, RST and
 * malformed replies), gzip/zstd/none (decompressed here with zlib and libzstd and compared
 * byte for byte with what was sent), the request headers and configured metadata, many
 * concurrent streams on one connection, a 3 MiB message through flow control, reconnecting
 * after the server restarts, fast failure while the connection is down, wait_for_ready,
 * keepalive PINGs finding a frozen server, TLS (verification with a throwaway CA, failure
 * without it or with the wrong name, skip-verify, mTLS, bad files), the component through the
 * exporter helper (RetryInfo honoured), its config and the registry alias, and allocation
 * failure at every step of init and of one request. Certificates are made with the openssl
 * CLI in a temporary directory.
 *
 * (Named otlp_grpc_exporter_test.c: the receiver's tests/unit/receivers/otlp_grpc_test.c
 * would give a second CMake target of the same name.)
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>
#include <zstd.h>

#include "exporter_fixture.h"
#include "exporters/otlp_grpc/otlp_grpc.h"
#include "receivers/otlp/otlp_grpc.h"
#include "th/log.h"

static char tmpdir[256];
static char ca_crt[300], srv_crt[300], srv_key[300], cli_crt[300], cli_key[300];

/* ---- certificates ------------------------------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by
 * the CA (P-256 keys: quick to make). */
static int make_certs(void)
{
    snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", tmpdir);
    snprintf(srv_crt, sizeof(srv_crt), "%s/srv.crt", tmpdir);
    snprintf(srv_key, sizeof(srv_key), "%s/srv.key", tmpdir);
    snprintf(cli_crt, sizeof(cli_crt), "%s/cli.crt", tmpdir);
    snprintf(cli_key, sizeof(cli_key), "%s/cli.key", tmpdir);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    int r = sh("cd %s && openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 "
               "-subj '/CN=Tracehouse test CA' -addext basicConstraints=critical,CA:TRUE "
               "-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1",
               tmpdir, ec);
    r = r ? r
          : sh("cd %s && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext && "
               "openssl req %s -keyout srv.key -out srv.csr -subj '/CN=localhost' >/dev/null 2>&1 "
               "&& openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
               "-out srv.crt -days 2 -extfile srv.ext >/dev/null 2>&1",
               tmpdir, ec);
    r = r ? r
          : sh("cd %s && openssl req %s -keyout cli.key -out cli.csr -subj '/CN=exporter' "
               ">/dev/null 2>&1 && openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key "
               "-CAcreateserial -out cli.crt -days 2 >/dev/null 2>&1",
               tmpdir, ec);
    return r;
}

/* ---- the scripted server -------------------------------------------------------------------- */

enum mode {
    M_OK,      /* 200, an empty response, grpc-status 0 */
    M_PARTIAL, /* OK with partial_success {3, "3 spans had no name"} */
    M_STATUS,  /* Trailers-Only with status, message, details */
    M_SILENT,  /* never answer */
    M_RESET,   /* close the TCP connection with RST on the first request */
    M_GOAWAY,  /* answer the first stream of a connection, GOAWAY(last = it), ignore others */
    M_HTTP503, /* a plain HTTP 503 text/plain reply */
    M_GATHER,  /* hold calls until `gather` are open, then answer them all OK */
    M_HTTP1,   /* an HTTP/1.1 server: answer the preface with a 400 and close */
};

struct sstream {
    int32_t id;
    char hdrs[2048];
    size_t hlen;
    th_buf_t body;
    th_buf_t resp; /* the response message (with its prefix) being sent */
    size_t resp_off;
    struct sstream *next_pending;
    struct sstream *next_all; /* every open stream of the connection, freed with it */
};

struct sconn {
    int fd;
    SSL *ssl;
    bool handshaken;
    nghttp2_session *session;
    bool kill;
    bool goaway_sent;
    int open;
    struct sstream *pending;
    int n_pending;
    struct sstream *all;
    struct srv *srv;
};

struct srv {
    int lfd;
    int port;
    bool tls;
    bool mtls;
    SSL_CTX *ctx;
    pthread_t thr;
    /* stop, frozen and mode are set by the test thread while the server thread reads them */
    int stop;
    int frozen; /* stop reading and answering, sockets stay open */
    pthread_mutex_t mu;
    /* the script */
    enum mode mode;
    int status;
    const char *message;
    const char *details;
    int gather;
    int status_left; /* M_STATUS: answer this many with the status, then OK (0: always) */
    int max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS (0: 100) */
    /* what happened */
    int connections;
    int handshake_failures;
    int requests;
    int max_open;
    int pings;
    char hdrs[2048]; /* the last request's headers, "name: value\n" */
    uint8_t *msg;    /* the last request message, decompressed */
    size_t msg_len;
    bool compressed_flag;
    int bad_requests;
};

static int gunzip(const uint8_t *in, size_t n, th_buf_t *out)
{
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    int r;
    do {
        th_buf_reserve(out, 65536);
        z.next_out = out->ptr + out->len;
        z.avail_out = 65536;
        r = inflate(&z, Z_NO_FLUSH);
        out->len = (size_t)(z.next_out - out->ptr);
    } while (r == Z_OK);
    inflateEnd(&z);
    return r == Z_STREAM_END ? 0 : -1;
}

static int unzstd(const uint8_t *in, size_t n, th_buf_t *out)
{
    unsigned long long size = ZSTD_getFrameContentSize(in, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
        return -1;
    }
    th_buf_reserve(out, (size_t)size + 1);
    size_t r = ZSTD_decompress(out->ptr, (size_t)size + 1, in, n);
    if (ZSTD_isError(r)) {
        return -1;
    }
    out->len = r;
    return 0;
}

static const char *hdr_value(const char *hdrs, const char *name, char *buf, size_t cap)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s: ", name);
    char tmp[2100];
    snprintf(tmp, sizeof(tmp), "\n%s", hdrs);
    const char *p = strstr(tmp, key);
    if (!p) {
        return NULL;
    }
    p += strlen(key);
    size_t n = strcspn(p, "\n");
    snprintf(buf, cap, "%.*s", (int)n, p);
    return buf;
}

/* The grpc-timeout header in ns (-1 when absent or malformed). */
static int64_t timeout_hdr(const char *hdrs)
{
    char v[32];
    int64_t ns = -1;
    if (!hdr_value(hdrs, "grpc-timeout", v, sizeof(v)) ||
        th_grpc_timeout_parse(v, strlen(v), &ns) != 0) {
        return -1;
    }
    return ns;
}

/* Check the request (prefix, compression) and keep it for the test. */
static void record_request(struct sconn *sc, struct sstream *st)
{
    struct srv *s = sc->srv;
    th_buf_t plain = {0};
    const uint8_t *b = st->body.ptr;
    bool ok = st->body.len >= 5;
    uint32_t len =
        ok ? (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4] : 0;
    ok = ok && len == st->body.len - 5;
    char enc[32] = "";
    hdr_value(st->hdrs, "grpc-encoding", enc, sizeof(enc));
    if (ok && b[0] == 1) {
        ok = !strcmp(enc, "gzip")   ? gunzip(b + 5, len, &plain) == 0
             : !strcmp(enc, "zstd") ? unzstd(b + 5, len, &plain) == 0
                                    : false;
    } else if (ok) {
        ok = b[0] == 0 && th_buf_append(&plain, b + 5, len) == 0;
    }
    pthread_mutex_lock(&s->mu);
    s->requests++;
    memcpy(s->hdrs, st->hdrs, sizeof(s->hdrs));
    free(s->msg);
    s->msg = NULL;
    s->msg_len = 0;
    if (ok) {
        s->msg = malloc(plain.len + 1);
        memcpy(s->msg, plain.ptr, plain.len);
        s->msg_len = plain.len;
        s->compressed_flag = b[0] == 1;
    } else {
        s->bad_requests++;
    }
    pthread_mutex_unlock(&s->mu);
    th_buf_free(&plain);
}

static ssize_t srv_read_resp(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                             size_t length, uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct sstream *st = src->ptr;
    size_t n = TH_MIN(length, st->resp.len - st->resp_off);
    memcpy(buf, st->resp.ptr + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->resp.len == 0 || st->resp.ptr[0] != 'o') { /* gRPC: trailers follow */
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
            nghttp2_submit_trailer(session, stream_id, tr, 1);
        }
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

static void respond_ok(struct sconn *sc, struct sstream *st, bool partial)
{
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (partial) {
        ps.rejected_spans = 3;
        ps.error_message = "3 spans had no name";
        resp.partial_success = &ps;
    }
    size_t n = protobuf_c_message_get_packed_size(&resp.base);
    th_buf_reserve(&st->resp, n + 5);
    uint8_t *p = st->resp.ptr;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    protobuf_c_message_pack(&resp.base, p + 5);
    st->resp.len = n + 5;
    nghttp2_nv h[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = srv_read_resp};
    nghttp2_submit_response(sc->session, st->id, h, 2, &prd);
}

static void respond_status(struct sconn *sc, struct sstream *st)
{
    struct srv *s = sc->srv;
    char code[8];
    snprintf(code, sizeof(code), "%d", s->status);
    nghttp2_nv h[5] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                       NV("grpc-status", code)};
    size_t n = 3;
    if (s->message) {
        h[n++] = (nghttp2_nv)NV("grpc-message", s->message);
    }
    if (s->details) {
        h[n++] = (nghttp2_nv)NV("grpc-status-details-bin", s->details);
    }
    nghttp2_submit_response(sc->session, st->id, h, n, NULL);
}

static void respond_503(struct sconn *sc, struct sstream *st)
{
    /* 'o' first: srv_read_resp then ends the stream with the data, no trailers */
    th_buf_append(&st->resp, "overloaded", 10);
    nghttp2_nv h[] = {NV(":status", "503"), NV("content-type", "text/plain")};
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = srv_read_resp};
    nghttp2_submit_response(sc->session, st->id, h, 2, &prd);
}

static void on_request(struct sconn *sc, struct sstream *st)
{
    struct srv *s = sc->srv;
    record_request(sc, st);
    switch (__atomic_load_n(&s->mode, __ATOMIC_ACQUIRE)) {
    case M_OK:
        respond_ok(sc, st, false);
        break;
    case M_PARTIAL:
        respond_ok(sc, st, true);
        break;
    case M_STATUS:
        respond_status(sc, st);
        if (s->status_left > 0 && --s->status_left == 0) {
            __atomic_store_n(&s->mode, M_OK, __ATOMIC_RELEASE);
        }
        break;
    case M_SILENT:
    case M_HTTP1: /* handled before HTTP/2 */
        break;
    case M_RESET:
        sc->kill = true;
        break;
    case M_GOAWAY:
        if (!sc->goaway_sent) {
            respond_ok(sc, st, false);
            nghttp2_submit_goaway(sc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL,
                                  0);
            sc->goaway_sent = true;
        }
        break;
    case M_HTTP503:
        respond_503(sc, st);
        break;
    case M_GATHER:
        st->next_pending = sc->pending;
        sc->pending = st;
        if (++sc->n_pending >= s->gather) {
            for (struct sstream *p = sc->pending; p; p = p->next_pending) {
                respond_ok(sc, p, false);
            }
            sc->pending = NULL;
            sc->n_pending = 0;
        }
        break;
    }
}

static int srv_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct sconn *sc = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct sstream *st = calloc(1, sizeof(*st));
    st->id = frame->hd.stream_id;
    st->next_all = sc->all;
    sc->all = st;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    sc->open++;
    pthread_mutex_lock(&sc->srv->mu);
    if (sc->open > sc->srv->max_open) {
        sc->srv->max_open = sc->open;
    }
    pthread_mutex_unlock(&sc->srv->mu);
    return 0;
}

static int srv_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud)
{
    struct sstream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st) {
        int n = snprintf(st->hdrs + st->hlen, sizeof(st->hdrs) - st->hlen, "%.*s: %.*s\n",
                         (int)namelen, name, (int)valuelen, value);
        if (n > 0 && st->hlen + (size_t)n < sizeof(st->hdrs)) {
            st->hlen += (size_t)n;
        }
    }
    return 0;
}

static int srv_on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                       const uint8_t *data, size_t len, void *ud)
{
    struct sstream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st) {
        th_buf_append(&st->body, data, len);
    }
    return 0;
}

static int srv_on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    struct sconn *sc = ud;
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        pthread_mutex_lock(&sc->srv->mu);
        sc->srv->pings++;
        pthread_mutex_unlock(&sc->srv->mu);
    }
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct sstream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (st) {
            on_request(sc, st);
        }
    }
    return 0;
}

static int srv_on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *ud)
{
    struct sconn *sc = ud;
    struct sstream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st) {
        return 0;
    }
    for (struct sstream **pp = &sc->pending; *pp; pp = &(*pp)->next_pending) {
        if (*pp == st) {
            *pp = st->next_pending;
            sc->n_pending--;
            break;
        }
    }
    for (struct sstream **pp = &sc->all; *pp; pp = &(*pp)->next_all) {
        if (*pp == st) {
            *pp = st->next_all;
            break;
        }
    }
    sc->open--;
    th_buf_free(&st->body);
    th_buf_free(&st->resp);
    free(st);
    return 0;
}

static void sconn_start_h2(struct sconn *sc)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, srv_on_close);
    nghttp2_session_server_new(&sc->session, cbs, sc);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                     sc->srv->max_streams ? (uint32_t)sc->srv->max_streams : 100}};
    nghttp2_submit_settings(sc->session, NGHTTP2_FLAG_NONE, set, 1);
    sc->handshaken = true;
}

/* Write everything, waiting for the socket when it is full. */
static int write_all(struct sconn *sc, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (sc->ssl) {
            int r = SSL_write(sc->ssl, p, (int)n);
            if (r <= 0) {
                int e = SSL_get_error(sc->ssl, r);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
                    return -1;
                }
                w = 0;
            } else {
                w = r;
            }
        } else {
            w = send(sc->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                return -1;
            }
            w = w < 0 ? 0 : w;
        }
        if (w == 0) {
            struct pollfd pf = {.fd = sc->fd, .events = POLLOUT};
            poll(&pf, 1, 50);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void sconn_free(struct sconn *sc, bool rst)
{
    if (rst) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(sc->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    if (sc->session) {
        nghttp2_session_del(sc->session); /* without calling on_stream_close */
    }
    while (sc->all) {
        struct sstream *st = sc->all;
        sc->all = st->next_all;
        th_buf_free(&st->body);
        th_buf_free(&st->resp);
        free(st);
    }
    if (sc->ssl) {
        SSL_free(sc->ssl);
    }
    close(sc->fd);
    free(sc);
}

/* Send what the session has queued. @return false when the connection failed. */
static bool sconn_flush(struct sconn *sc)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(sc->session, &data);
        if (n <= 0) {
            return true;
        }
        if (write_all(sc, data, (size_t)n) != 0) {
            return false;
        }
    }
}

/* Read what there is and answer. @return false when the connection is over. */
static bool sconn_serve(struct sconn *sc)
{
    uint8_t buf[65536];
    if (__atomic_load_n(&sc->srv->mode, __ATOMIC_ACQUIRE) == M_HTTP1 && !sc->ssl) {
        ssize_t n = recv(sc->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN) {
            return true;
        }
        static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        write_all(sc, (const uint8_t *)resp, sizeof(resp) - 1);
        /* read what the client still sends, so the close is a FIN and not a reset that
         * could destroy the answer before the client reads it */
        shutdown(sc->fd, SHUT_WR);
        for (int i = 0; i < 20 && recv(sc->fd, buf, sizeof(buf), 0) != 0; i++) {
            usleep(10000);
        }
        return false;
    }
    if (sc->ssl && !sc->handshaken) {
        ERR_clear_error();
        int r = SSL_accept(sc->ssl);
        if (r == 1) {
            sconn_start_h2(sc);
        } else {
            int e = SSL_get_error(sc->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                pthread_mutex_lock(&sc->srv->mu);
                sc->srv->handshake_failures++;
                pthread_mutex_unlock(&sc->srv->mu);
                return false;
            }
            return true;
        }
    }
    for (;;) {
        ssize_t n;
        if (sc->ssl) {
            int r = SSL_read(sc->ssl, buf, sizeof(buf));
            if (r <= 0) {
                int e = SSL_get_error(sc->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    break;
                }
                return false;
            }
            n = r;
        } else {
            n = recv(sc->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EAGAIN) {
                break;
            }
            if (n <= 0) {
                return false;
            }
        }
        if (nghttp2_session_mem_recv(sc->session, buf, (size_t)n) < 0) {
            return false;
        }
        if (sc->kill) {
            return false;
        }
    }
    return sconn_flush(sc);
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    struct sconn *conns[16] = {0};
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        if (__atomic_load_n(&s->frozen, __ATOMIC_ACQUIRE)) {
            usleep(10000);
            continue;
        }
        struct pollfd pf[17];
        pf[0] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        int n = 1;
        for (int i = 0; i < 16; i++) {
            if (conns[i]) {
                pf[n++] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
            }
        }
        poll(pf, (nfds_t)n, 10);
        if (pf[0].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            for (int i = 0; fd >= 0 && i < 16; i++) {
                if (!conns[i]) {
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct sconn *sc = calloc(1, sizeof(*sc));
                    sc->fd = fd;
                    sc->srv = s;
                    if (s->tls) {
                        sc->ssl = SSL_new(s->ctx);
                        SSL_set_fd(sc->ssl, fd);
                        SSL_set_accept_state(sc->ssl);
                    } else if (__atomic_load_n(&s->mode, __ATOMIC_ACQUIRE) != M_HTTP1) {
                        sconn_start_h2(sc);
                        sconn_flush(sc); /* the server preface (SETTINGS) goes first */
                    }
                    conns[i] = sc;
                    pthread_mutex_lock(&s->mu);
                    s->connections++;
                    pthread_mutex_unlock(&s->mu);
                    fd = -1;
                }
            }
            if (fd >= 0) {
                close(fd);
            }
        }
        /* Serve every connection each round (cheap: non-blocking), which also flushes what
         * a callback queued. */
        for (int i = 0; i < 16; i++) {
            if (conns[i] && !sconn_serve(conns[i])) {
                sconn_free(conns[i], conns[i]->kill);
                conns[i] = NULL;
            }
        }
    }
    for (int i = 0; i < 16; i++) {
        if (conns[i]) {
            sconn_free(conns[i], false);
        }
    }
    return NULL;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    for (unsigned i = 0; i + 1 <= inlen && i + 1 + in[i] <= inlen; i += 1u + in[i]) {
        if (in[i] == 2 && !memcmp(in + i + 1, "h2", 2)) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Start a server on @p port (0: any), plaintext or TLS. */
static struct srv *srv_start(int port, bool tls, bool mtls)
{
    struct srv *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->tls = tls;
    s->mtls = mtls;
    if (tls) {
        s->ctx = SSL_CTX_new(TLS_server_method());
        assert_int_equal(SSL_CTX_use_certificate_chain_file(s->ctx, srv_crt), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, srv_key, SSL_FILETYPE_PEM), 1);
        SSL_CTX_set_alpn_select_cb(s->ctx, alpn_select, NULL);
        if (mtls) {
            assert_int_equal(SSL_CTX_load_verify_locations(s->ctx, ca_crt, NULL), 1);
            SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
    }
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    fcntl(s->lfd, F_SETFL, fcntl(s->lfd, F_GETFL) | O_NONBLOCK);
    pthread_create(&s->thr, NULL, srv_main, s);
    return s;
}

static void srv_stop(struct srv *s)
{
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    pthread_join(s->thr, NULL);
    close(s->lfd);
    SSL_CTX_free(s->ctx);
    free(s->msg);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void srv_script(struct srv *s, enum mode m, int status, const char *msg, const char *details)
{
    pthread_mutex_lock(&s->mu);
    __atomic_store_n(&s->mode, m, __ATOMIC_RELEASE);
    s->status = status;
    s->message = msg;
    s->details = details;
    pthread_mutex_unlock(&s->mu);
}

static int srv_get(struct srv *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- the client side ------------------------------------------------------------------ */

struct slot {
    bool done;
    struct th_export_result r;
};

static void on_done(void *arg, const struct th_export_result *r)
{
    struct slot *s = arg;
    assert_false(s->done); /* exactly once */
    s->done = true;
    s->r = *r;
}

struct client {
    uv_loop_t loop;
    bool loop_ready; /* the loop was initialised before client_open (a server shares it) */
    uv_timer_t tick;
    th_otlp_grpc_exporter_transport_t *t;
    struct th_otlp_grpc_exporter_cfg cfg;
    char endpoint[64];
    uint8_t *pb;
    size_t pb_len;
};

static void on_tick(uv_timer_t *t)
{
}

static void cfg_defaults(struct client *c, int port)
{
    memset(&c->cfg, 0, sizeof(c->cfg));
    snprintf(c->endpoint, sizeof(c->endpoint), "127.0.0.1:%d", port);
    c->cfg.endpoint = c->endpoint;
    c->cfg.compression = "gzip";
    c->cfg.tls.insecure = true;
    c->cfg.timeout = 5 * (int64_t)1000000000;
}

static void client_open(struct client *c)
{
    if (!c->loop_ready) {
        assert_int_equal(uv_loop_init(&c->loop), 0);
    }
    c->loop_ready = false;
    uv_timer_init(&c->loop, &c->tick);
    uv_timer_start(&c->tick, on_tick, 10, 10); /* so UV_RUN_ONCE never blocks for long */
    assert_int_equal(th__otlp_grpc_exporter_transport_create(&c->cfg, NULL, &c->t), 0);
    char err[512] = "";
    int ret = th__otlp_grpc_exporter_transport_prepare(c->t, err, sizeof(err));
    if (ret != 0) {
        fail_msg("prepare: %s", err);
    }
    assert_int_equal(th__otlp_grpc_exporter_transport_ops.start(c->t, &c->loop), 0);
    if (!c->pb) {
        th_batch_t *b = fx_batch();
        c->pb = fx_pack(b->req, &c->pb_len);
        th_batch_release(b);
    }
}

static void client_close(struct client *c)
{
    th__otlp_grpc_exporter_transport_ops.stop(c->t);
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    th__otlp_grpc_exporter_transport_ops.destroy(c->t);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    free(c->pb);
    c->pb = NULL;
}

static void send_n(struct client *c, struct slot *slots, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&slots[i], 0, sizeof(slots[i]));
        assert_int_equal(
            th__otlp_grpc_exporter_transport_ops.send(c->t, c->pb, c->pb_len, on_done, &slots[i]),
            0);
        assert_false(slots[i].done); /* never from inside send */
    }
}

/* Run the loop until every slot is done or @p ms pass. @return how many are done. */
static int wait_done(struct client *c, struct slot *slots, int n, int ms)
{
    uint64_t end = th_now_mono_ns() + (uint64_t)ms * 1000000;
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++) {
            done += slots[i].done;
        }
        if (done == n || th_now_mono_ns() > end) {
            return done;
        }
        uv_run(&c->loop, UV_RUN_ONCE);
    }
}

static void run_for(struct client *c, int ms)
{
    uint64_t end = th_now_mono_ns() + (uint64_t)ms * 1000000;
    while (th_now_mono_ns() < end) {
        uv_run(&c->loop, UV_RUN_ONCE);
    }
}

/* Send one request and wait for its result. */
static struct th_export_result send1(struct client *c)
{
    struct slot s;
    send_n(c, &s, 1);
    assert_int_equal(wait_done(c, &s, 1, 15000), 1);
    return s.r;
}

static void check_msg(const struct srv *s, const struct client *c)
{
    assert_int_equal(s->bad_requests, 0);
    assert_int_equal(s->msg_len, c->pb_len);
    assert_memory_equal(s->msg, c->pb, c->pb_len);
}

/* ---- tests: mapping --------------------------------------------------------------------- */

static void test_ok_headers_gzip(void **state)
{
    struct srv *s = srv_start(0, false, false);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    const char *keys[] = {"Authorization", "x-tenant", "trace-bin"};
    const char *vals[] = {"Bearer abc", "acme", "hi!"};
    c.cfg.headers = (th_strmap_t){.keys = keys, .vals = vals, .n = 3};
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.rejected_spans, 0);
    pthread_mutex_lock(&s->mu);
    check_msg(s, &c);
    assert_true(s->compressed_flag);
    char v[256];
    assert_string_equal(hdr_value(s->hdrs, ":method", v, sizeof(v)), "POST");
    assert_string_equal(hdr_value(s->hdrs, ":scheme", v, sizeof(v)), "http");
    assert_string_equal(hdr_value(s->hdrs, ":path", v, sizeof(v)),
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    char auth[64];
    snprintf(auth, sizeof(auth), "127.0.0.1:%d", s->port);
    assert_string_equal(hdr_value(s->hdrs, ":authority", v, sizeof(v)), auth);
    assert_string_equal(hdr_value(s->hdrs, "content-type", v, sizeof(v)), "application/grpc");
    assert_string_equal(hdr_value(s->hdrs, "te", v, sizeof(v)), "trailers");
    assert_string_equal(hdr_value(s->hdrs, "grpc-encoding", v, sizeof(v)), "gzip");
    assert_non_null(strstr(hdr_value(s->hdrs, "grpc-accept-encoding", v, sizeof(v)), "gzip"));
    assert_int_equal(timeout_hdr(s->hdrs), 5000000000);
    assert_non_null(strstr(hdr_value(s->hdrs, "user-agent", v, sizeof(v)), "Tracehouse/"));
    assert_string_equal(hdr_value(s->hdrs, "authorization", v, sizeof(v)), "Bearer abc");
    assert_string_equal(hdr_value(s->hdrs, "x-tenant", v, sizeof(v)), "acme");
    assert_string_equal(hdr_value(s->hdrs, "trace-bin", v, sizeof(v)), "aGkh"); /* base64 */
    pthread_mutex_unlock(&s->mu);
    client_close(&c);
    srv_stop(s);
}

static void test_compression_zstd_none(void **state)
{
    struct srv *s = srv_start(0, false, false);
    const char *modes[] = {"zstd", "none", ""};
    for (size_t i = 0; i < 3; i++) {
        struct client c = {0};
        cfg_defaults(&c, s->port);
        c.cfg.compression = modes[i];
        client_open(&c);
        assert_int_equal(send1(&c).err, 0);
        pthread_mutex_lock(&s->mu);
        check_msg(s, &c);
        char v[64];
        if (i == 0) {
            assert_true(s->compressed_flag);
            assert_string_equal(hdr_value(s->hdrs, "grpc-encoding", v, sizeof(v)), "zstd");
        } else {
            assert_false(s->compressed_flag);
            assert_null(hdr_value(s->hdrs, "grpc-encoding", v, sizeof(v)));
        }
        pthread_mutex_unlock(&s->mu);
        client_close(&c);
    }
    srv_stop(s);
}

static void test_partial_success(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_PARTIAL, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.rejected_spans, 3);
    assert_non_null(strstr(r.message, "3 spans had no name"));
    client_close(&c);
    srv_stop(s);
}

/* The test vector of otlp.md §1.6: UNAVAILABLE "server overloaded" with RetryInfo 5s. */
#define UNAVAILABLE_5S                                                                             \
    "CA4SEXNlcnZlciBvdmVybG9hZGVkGjAKKHR5cGUuZ29vZ2xlYXBpcy5jb20vZ29vZ2xlLnJwYy5SZXRyeUluZm8SBAoC" \
    "CAU"

static void test_status_mapping(void **state)
{
    struct srv *s = srv_start(0, false, false);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    th_arena_t *a = th_arena_create(0, 0);
    char *re_retry =
        th_grpc_status_details_encode(a, TH_GRPC_RESOURCE_EXHAUSTED, "slow down", 2500000000);
    char *re_plain = th_grpc_status_details_encode(a, TH_GRPC_RESOURCE_EXHAUSTED, "too big", -1);
    struct {
        int status;
        const char *msg;
        const char *details;
        int err;
        int64_t retry;
        const char *text;
    } cases[] = {
        {14, "server overloaded", UNAVAILABLE_5S, TH_ERETRY, 5000000000, "server overloaded"},
        {14, "down", NULL, TH_ERETRY, -1, "UNAVAILABLE"},
        {8, "slow down", re_retry, TH_ERETRY, 2500000000, "slow down"},
        {8, "too%20big", re_plain, TH_E2BIG, -1, "too big"},
        {8, NULL, NULL, TH_E2BIG, -1, "RESOURCE_EXHAUSTED"},
        {3, "bad span", NULL, TH_EPERM, -1, "INVALID_ARGUMENT"},
        {16, "who are you", NULL, TH_EPERM, -1, "who are you"},
        {12, NULL, NULL, TH_EPERM, -1, "UNIMPLEMENTED"},
        {13, NULL, NULL, TH_EPERM, -1, "INTERNAL"},
        {1, NULL, NULL, TH_ERETRY, -1, "CANCELLED"},
        {4, NULL, NULL, TH_ERETRY, -1, "DEADLINE_EXCEEDED"},
        {10, NULL, NULL, TH_ERETRY, -1, "ABORTED"},
        {11, NULL, NULL, TH_ERETRY, -1, "OUT_OF_RANGE"},
        {15, NULL, NULL, TH_ERETRY, -1, "DATA_LOSS"},
        {2, NULL, NULL, TH_EPERM, -1, "UNKNOWN"},
        {7, NULL, NULL, TH_EPERM, -1, "PERMISSION_DENIED"},
        {9, NULL, NULL, TH_EPERM, -1, "FAILED_PRECONDITION"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        srv_script(s, M_STATUS, cases[i].status, cases[i].msg, cases[i].details);
        struct th_export_result r = send1(&c);
        if (r.err != cases[i].err || r.retry_after_ns != cases[i].retry ||
            !strstr(r.message, cases[i].text)) {
            fail_msg("status %d: got err %d retry %lld \"%s\"", cases[i].status, r.err,
                     (long long)r.retry_after_ns, r.message);
        }
    }
    /* All on one connection: a status is not a connection problem. */
    assert_int_equal(srv_get(s, &s->connections), 1);
    th_arena_destroy(a);
    client_close(&c);
    srv_stop(s);
}

static void test_http_503(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_HTTP503, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "HTTP 503"));
    assert_non_null(strstr(r.message, "text/plain"));
    client_close(&c);
    srv_stop(s);
}

static void test_timeout(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_SILENT, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    c.cfg.timeout = 300 * (int64_t)1000000;
    client_open(&c);
    uint64_t t0 = th_now_mono_ns();
    struct th_export_result r = send1(&c);
    uint64_t took = th_now_mono_ns() - t0;
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "DEADLINE_EXCEEDED"));
    assert_true(took >= 290000000ull && took < 3000000000ull);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(timeout_hdr(s->hdrs), 300000000);
    pthread_mutex_unlock(&s->mu);
    /* The server answered nothing, but the connection is alive (it answers PINGs): the next
     * call works on it. */
    srv_script(s, M_OK, 0, NULL, NULL);
    assert_int_equal(send1(&c).err, 0);
    assert_int_equal(srv_get(s, &s->connections), 1);
    client_close(&c);
    srv_stop(s);
}

static void test_connection_reset(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_RESET, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct slot slots[3];
    send_n(&c, slots, 3);
    assert_int_equal(wait_done(&c, slots, 3, 10000), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(slots[i].r.err, TH_ERETRY);
        assert_non_null(strstr(slots[i].r.message, "127.0.0.1"));
    }
    /* The next call reconnects at once. */
    srv_script(s, M_OK, 0, NULL, NULL);
    assert_int_equal(send1(&c).err, 0);
    assert_int_equal(srv_get(s, &s->connections), 2);
    struct th_otlp_grpc_exporter_transport_stats st;
    th__otlp_grpc_exporter_transport_stats(c.t, &st);
    assert_int_equal(st.disconnects, 1);
    client_close(&c);
    srv_stop(s);
}

static void test_goaway(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_GOAWAY, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct slot slots[3];
    send_n(&c, slots, 3);
    assert_int_equal(wait_done(&c, slots, 3, 10000), 3);
    int ok = 0;
    int goaway = 0;
    for (int i = 0; i < 3; i++) {
        if (slots[i].r.err == 0) {
            ok++;
        } else if (slots[i].r.err == TH_ERETRY && strstr(slots[i].r.message, "GOAWAY")) {
            goaway++;
        } else {
            fail_msg("call %d: %d %s", i, slots[i].r.err, slots[i].r.message);
        }
    }
    assert_int_equal(ok, 1);
    assert_int_equal(goaway, 2);
    /* New calls go to a new connection. */
    srv_script(s, M_OK, 0, NULL, NULL);
    assert_int_equal(send1(&c).err, 0);
    assert_int_equal(srv_get(s, &s->connections), 2);
    struct th_otlp_grpc_exporter_transport_stats st;
    th__otlp_grpc_exporter_transport_stats(c.t, &st);
    assert_int_equal(st.goaways, 1);
    client_close(&c);
    srv_stop(s);
}

static void test_parallel_streams(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_GATHER, 0, NULL, NULL);
    s->gather = 10;
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct slot slots[10];
    send_n(&c, slots, 10);
    assert_int_equal(wait_done(&c, slots, 10, 10000), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(slots[i].r.err, 0);
    }
    /* The server held every call until all ten were open at once, on one connection. */
    assert_int_equal(srv_get(s, &s->connections), 1);
    assert_int_equal(srv_get(s, &s->max_open), 10);
    assert_int_equal(srv_get(s, &s->requests), 10);
    client_close(&c);
    srv_stop(s);
}

/* A server that allows 2 streams at a time: the rest wait in nghttp2 and all succeed. */
static void test_stream_limit(void **state)
{
    struct srv *s = srv_start(0, false, false);
    s->max_streams = 2;
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    assert_int_equal(send1(&c).err, 0); /* the server's SETTINGS are known from here on */
    struct slot slots[6];
    send_n(&c, slots, 6);
    assert_int_equal(wait_done(&c, slots, 6, 10000), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(slots[i].r.err, 0);
    }
    assert_true(srv_get(s, &s->max_open) <= 2);
    assert_int_equal(srv_get(s, &s->requests), 7);
    assert_int_equal(srv_get(s, &s->connections), 1);
    client_close(&c);
    srv_stop(s);
}

static void test_reconnect_after_restart(void **state)
{
    struct srv *s = srv_start(0, false, false);
    int port = s->port;
    struct client c = {0};
    cfg_defaults(&c, port);
    client_open(&c);
    assert_int_equal(send1(&c).err, 0);
    srv_stop(s);
    /* Down: the drop is noticed, the reconnect is refused, and while the connection backs off
     * calls fail at once with the reason. */
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    uint64_t t0 = th_now_mono_ns();
    r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "connection refused"));
    assert_true(th_now_mono_ns() - t0 < 500000000ull);
    /* Up again on the same port: after the backoff the next call gets through. */
    s = srv_start(port, false, false);
    run_for(&c, 1300);
    r = send1(&c);
    if (r.err != 0) {
        fail_msg("after restart: %s", r.message);
    }
    assert_int_equal(srv_get(s, &s->connections), 1);
    client_close(&c);
    srv_stop(s);
}

static void test_wait_for_ready(void **state)
{
    struct srv *s = srv_start(0, false, false);
    int port = s->port;
    srv_stop(s);
    struct client c = {0};
    cfg_defaults(&c, port);
    c.cfg.wait_for_ready = true;
    c.cfg.timeout = 8 * (int64_t)1000000000;
    client_open(&c);
    struct slot slot;
    send_n(&c, &slot, 1);
    run_for(&c, 300); /* refused at least once, now backing off; the call waits */
    assert_false(slot.done);
    s = srv_start(port, false, false);
    assert_int_equal(wait_done(&c, &slot, 1, 6000), 1);
    assert_int_equal(slot.r.err, 0);
    client_close(&c);
    srv_stop(s);
}

static void test_keepalive_dead_server(void **state)
{
    struct srv *s = srv_start(0, false, false);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    c.cfg.keepalive_enabled = true;
    c.cfg.keepalive.time = 200 * (int64_t)1000000;
    c.cfg.keepalive.timeout = 300 * (int64_t)1000000;
    c.cfg.keepalive.permit_without_stream = true;
    client_open(&c);
    assert_int_equal(send1(&c).err, 0);
    run_for(&c, 700); /* idle: pings are sent and answered */
    assert_true(srv_get(s, &s->pings) >= 2);
    struct th_otlp_grpc_exporter_transport_stats st;
    th__otlp_grpc_exporter_transport_stats(c.t, &st);
    assert_int_equal(st.disconnects, 0);
    /* A server that stops reading (a frozen process): the unanswered PING resets the
     * connection, and a call in flight fails as retryable before its own 5 s deadline. */
    __atomic_store_n(&s->frozen, 1, __ATOMIC_RELEASE);
    usleep(50000); /* let the server's thread finish the round it is in */
    struct slot slot;
    send_n(&c, &slot, 1);
    assert_int_equal(wait_done(&c, &slot, 1, 3000), 1);
    assert_int_equal(slot.r.err, TH_ERETRY);
    if (!strstr(slot.r.message, "PING")) {
        fail_msg("%s", slot.r.message);
    }
    client_close(&c);
    srv_stop(s);
}

/* Not an HTTP/2 server: the message says what it is, and the calls retry (after backoff). */
static void test_wrong_servers(void **state)
{
    struct srv *s = srv_start(0, false, false);
    srv_script(s, M_HTTP1, 0, NULL, NULL);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    if (!strstr(r.message, "HTTP/1")) {
        fail_msg("%s", r.message);
    }
    client_close(&c);
    srv_stop(s);
    /* plaintext to a TLS port */
    s = srv_start(0, true, false);
    cfg_defaults(&c, s->port);
    client_open(&c);
    r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    if (!strstr(r.message, "TLS")) {
        fail_msg("%s", r.message);
    }
    client_close(&c);
    srv_stop(s);
}

static void test_unix_socket(void **state)
{
    /* Nothing listens: the Unix path is tried and the failure names it. */
    struct client c = {0};
    cfg_defaults(&c, 1);
    char ep[300];
    snprintf(ep, sizeof(ep), "unix://%s/none.sock", tmpdir);
    c.cfg.endpoint = ep;
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "none.sock"));
    client_close(&c);
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static void test_tls_verify(void **state)
{
    struct srv *s = srv_start(0, true, false);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = ca_crt;
    client_open(&c);
    struct th_export_result r = send1(&c);
    if (r.err != 0) {
        fail_msg("TLS with the CA: %s", r.message);
    }
    pthread_mutex_lock(&s->mu);
    check_msg(s, &c);
    char v[16];
    assert_string_equal(hdr_value(s->hdrs, ":scheme", v, sizeof(v)), "https");
    pthread_mutex_unlock(&s->mu);
    client_close(&c);

    /* By name: localhost is in the certificate too (SNI and host check). */
    cfg_defaults(&c, s->port);
    snprintf(c.endpoint, sizeof(c.endpoint), "localhost:%d", s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = ca_crt;
    client_open(&c);
    r = send1(&c);
    if (r.err != 0) {
        fail_msg("TLS by name: %s", r.message);
    }
    client_close(&c);

    /* A name the certificate does not have. */
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = ca_crt;
    c.cfg.tls.server_name_override = "collector.example";
    client_open(&c);
    r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "verify failed"));
    client_close(&c);
    srv_stop(s);
}

static void test_tls_untrusted(void **state)
{
    struct srv *s = srv_start(0, true, false);
    struct client c = {0};
    /* The system store does not know the throwaway CA. */
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    client_open(&c);
    struct th_export_result r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    assert_non_null(strstr(r.message, "certificate verify failed"));
    assert_int_equal(srv_get(s, &s->requests), 0);
    client_close(&c);

    /* insecure_skip_verify: TLS without checking. */
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.insecure_skip_verify = true;
    client_open(&c);
    r = send1(&c);
    if (r.err != 0) {
        fail_msg("skip verify: %s", r.message);
    }
    client_close(&c);

    /* Plaintext to a TLS port fails as retryable with a message. */
    cfg_defaults(&c, s->port);
    client_open(&c);
    r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    client_close(&c);
    srv_stop(s);
}

static void test_mtls(void **state)
{
    struct srv *s = srv_start(0, true, true);
    struct client c = {0};
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = ca_crt;
    c.cfg.tls.cert_file = cli_crt;
    c.cfg.tls.key_file = cli_key;
    client_open(&c);
    struct th_export_result r = send1(&c);
    if (r.err != 0) {
        fail_msg("mTLS: %s", r.message);
    }
    client_close(&c);
    /* Without the client certificate the server refuses. */
    cfg_defaults(&c, s->port);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = ca_crt;
    client_open(&c);
    r = send1(&c);
    assert_int_equal(r.err, TH_ERETRY);
    client_close(&c);
    srv_stop(s);
}

static void test_tls_bad_files(void **state)
{
    struct client c = {0};
    cfg_defaults(&c, 1);
    c.cfg.tls.insecure = false;
    c.cfg.tls.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(th__otlp_grpc_exporter_transport_create(&c.cfg, NULL, &c.t), 0);
    char err[512] = "";
    assert_int_equal(th__otlp_grpc_exporter_transport_prepare(c.t, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "ca_file"));
    assert_non_null(strstr(err, "No such file"));
    th__otlp_grpc_exporter_transport_ops.destroy(c.t);
    /* A key that is not the certificate's. */
    c.cfg.tls.ca_file = ca_crt;
    c.cfg.tls.cert_file = cli_crt;
    c.cfg.tls.key_file = srv_key;
    assert_int_equal(th__otlp_grpc_exporter_transport_create(&c.cfg, NULL, &c.t), 0);
    assert_int_equal(th__otlp_grpc_exporter_transport_prepare(c.t, err, sizeof(err)), TH_ECONFIG);
    if (!strstr(err, "does not match")) {
        fail_msg("%s", err);
    }
    th__otlp_grpc_exporter_transport_ops.destroy(c.t);
}

/* ---- against the project's own receiver ----------------------------------------------------- */

struct capture {
    struct th_consumer consumer;
    int calls;
    size_t spans;
    uint8_t *last;
    size_t last_len;
    bool refuse;
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *cap = (struct capture *)self;
    if (cap->refuse) {
        th_batch_release(b);
        return TH_ERETRY;
    }
    cap->calls++;
    cap->spans += b->span_count;
    free(cap->last);
    cap->last = fx_pack(b->req, &cap->last_len);
    th_batch_settle_acks(b, 0);
    th_batch_release(b);
    return 0;
}

/* The project's OTLP/gRPC receiver on the same loop: what it hands the pipeline is what was
 * sent, with every compression; many calls share one connection; a pipeline that refuses
 * comes back as UNAVAILABLE with RetryInfo; its shutdown GOAWAY is handled. */
static void test_real_receiver(void **state)
{
    struct capture cap = {.consumer.consume = capture_consume};
    struct th_otlp_grpc_cfg rcfg;
    th_otlp_grpc_cfg_default(&rcfg);
    rcfg.endpoint = "127.0.0.1:0";
    th_otlp_grpc_server_t *srv = NULL;
    assert_int_equal(th_otlp_grpc_server_create(&rcfg, &cap.consumer, NULL, &srv), 0);
    const char *modes[] = {"gzip", "zstd", "none"};
    for (size_t i = 0; i < 3; i++) {
        struct client c = {0};
        assert_int_equal(uv_loop_init(&c.loop), 0);
        c.loop_ready = true;
        assert_int_equal(th_otlp_grpc_server_start(srv, &c.loop), 0);
        cfg_defaults(&c, th_otlp_grpc_bound_port(srv));
        c.cfg.compression = modes[i];
        client_open(&c);
        cap.calls = 0;
        struct th_export_result r = send1(&c);
        if (r.err != 0) {
            fail_msg("%s: %s", modes[i], r.message);
        }
        assert_int_equal(cap.calls, 1);
        assert_int_equal(cap.last_len, c.pb_len);
        assert_memory_equal(cap.last, c.pb, c.pb_len);
        if (i == 0) {
            /* concurrency: eight calls at once on the one connection */
            struct slot slots[8];
            send_n(&c, slots, 8);
            assert_int_equal(wait_done(&c, slots, 8, 10000), 8);
            for (int k = 0; k < 8; k++) {
                assert_int_equal(slots[k].r.err, 0);
            }
            assert_int_equal(cap.calls, 9);
            struct th_otlp_grpc_exporter_transport_stats st;
            th__otlp_grpc_exporter_transport_stats(c.t, &st);
            assert_int_equal(st.connected, 1);
            /* the pipeline refuses: UNAVAILABLE with RetryInfo */
            cap.refuse = true;
            r = send1(&c);
            cap.refuse = false;
            assert_int_equal(r.err, TH_ERETRY);
            assert_true(r.retry_after_ns > 0);
            assert_non_null(strstr(r.message, "UNAVAILABLE"));
        }
        if (i == 2) {
            /* 3 MiB uncompressed: far beyond the HTTP/2 windows and the write buffer, so
             * flow control and write pacing are exercised; arrives byte for byte. */
            size_t big_len = 3u << 20;
            char *big = malloc(big_len + 1);
            for (size_t k = 0; k < big_len; k++) {
                big[k] = (char)('a' + (k * 7919u >> 3) % 26);
            }
            big[big_len] = '\0';
            th_batch_t *bb = fx_batch_big(big);
            free(c.pb);
            c.pb = fx_pack(bb->req, &c.pb_len);
            th_batch_release(bb);
            free(big);
            r = send1(&c);
            if (r.err != 0) {
                fail_msg("3 MiB: %s", r.message);
            }
            assert_int_equal(cap.last_len, c.pb_len);
            assert_memory_equal(cap.last, c.pb, c.pb_len);
        }
        /* The receiver shuts down (GOAWAY, then closes): the next call fails as retryable. */
        assert_int_equal(th_otlp_grpc_server_shutdown(srv), 0);
        run_for(&c, 100);
        r = send1(&c);
        assert_int_equal(r.err, TH_ERETRY);
        client_close(&c);
        th_otlp_grpc_server_destroy(srv);
        srv = NULL;
        if (i < 2) {
            assert_int_equal(th_otlp_grpc_server_create(&rcfg, &cap.consumer, NULL, &srv), 0);
        }
    }
    free(cap.last);
}

/* ---- the component: config, registry, and the helper driving the transport ---------------- */

static int decode(const char *yaml, th_arena_t *a, struct th_otlp_grpc_exporter_cfg *cfg, char *err,
                  size_t errlen)
{
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen), 0);
    memset(cfg, 0, sizeof(*cfg));
    int ret = th_cfg_decode(th_exporter_otlp_grpc_ops.config, node, cfg, a, "exporters::otlp", err,
                            errlen);
    if (ret == 0) {
        const char *why = NULL;
        ret = th_exporter_otlp_grpc_ops.config_check(cfg, &why);
        if (ret != 0) {
            snprintf(err, errlen, "%s", why);
        }
    }
    return ret;
}

static void test_registry_alias(void **state)
{
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "otlp_grpc"), &th_exporter_otlp_grpc_ops);
    /* The alias "otlp" is also the receiver's type: each kind finds its own. */
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "otlp"), &th_exporter_otlp_grpc_ops);
    const struct th_component_ops *rx = th_registry_find(TH_KIND_RECEIVER, "otlp");
    assert_non_null(rx);
    assert_int_equal(rx->kind, TH_KIND_RECEIVER);
}

static void test_config(void **state)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlp_grpc_exporter_cfg cfg;
    char err[512];
    assert_int_equal(decode("endpoint: collector:4317\n", a, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.compression, "gzip");
    assert_int_equal(cfg.timeout, 5000000000);
    assert_false(cfg.tls.insecure); /* TLS by default */
    assert_false(cfg.keepalive_enabled);
    assert_true(cfg.queue.enabled); /* Some flavor */
    assert_int_equal(cfg.queue.num_consumers, 10);
    assert_true(cfg.retry.enabled);
    assert_int_equal(cfg.retry.initial_interval_ns, 5000000000);

    assert_int_equal(decode("endpoint: h:1\nkeepalive:\nsending_queue: {enabled: false}\n"
                            "headers: [{name: X-A, value: b}]\ncompression: zstd\n",
                            a, &cfg, err, sizeof(err)),
                     0);
    assert_true(cfg.keepalive_enabled);
    assert_int_equal(cfg.keepalive.time, 10000000000);
    assert_int_equal(cfg.keepalive.timeout, 10000000000);
    assert_false(cfg.queue.enabled);
    assert_int_equal(cfg.headers.n, 1);
    assert_string_equal(th__otlp_grpc_exporter_encoding(&cfg), "zstd");

    static const struct {
        const char *yaml;
        const char *why;
    } bad[] = {
        {"compression: gzip\n", "endpoint"},
        {"endpoint: collector\n", "port"},
        {"endpoint: collector:http\n", "port"},
        {"endpoint: collector:70000\n", "65535"},
        {"endpoint: h:1\ncompression: snappy\n", "snappy"},
        {"endpoint: h:1\ncompression: brotli\n", "compression"},
        {"endpoint: h:1\ntimeout: -1s\n", "timeout"},
        {"endpoint: h:1\ntls: {min_version: \"1.4\"}\n", "min_version"},
        {"endpoint: h:1\ntls: {cert_file: /x}\n", "key"},
        {"endpoint: h:1\nheaders: {grpc-foo: x}\n", "reserved"},
        {"endpoint: h:1\nheaders: {\"bad name\": x}\n", "header name"},
        /* auth::authenticator is resolved at start; only its shape is checked here */
        {"endpoint: h:1\nauth: {authenticator: \"\"}\n", "auth::authenticator"},
        {"endpoint: h:1\nauth: {authenticator: x, other: y}\n", "auth: unknown key"},
        {"endpoint: h:1\nbalancer_name: ring\n", "balancer_name"},
        {"endpoint: h:1\nbogus: 1\n", "bogus"},
        {"endpoint: h:1\nretry_on_failure: {max_elapsed_time: 1s}\n", "max_elapsed_time"},
        {"endpoint: h:1\nsending_queue: {num_consumers: 0}\n", "num_consumers"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        if (decode(bad[i].yaml, a, &cfg, err, sizeof(err)) == 0 || !strstr(err, bad[i].why)) {
            fail_msg("%s: expected an error about %s, got \"%s\"", bad[i].yaml, bad[i].why, err);
        }
    }
    th_arena_destroy(a);
}

static void test_endpoint_parse(void **state)
{
    static const struct {
        const char *in;
        const char *host, *port, *authority, *path;
        bool tls;
    } ok[] = {
        {"collector:4317", "collector", "4317", "collector:4317", "", false},
        {"http://collector:4317", "collector", "4317", "collector:4317", "", false},
        {"https://collector:4317/", "collector", "4317", "collector:4317", "", true},
        {"dns:///collector:4317", "collector", "4317", "collector:4317", "", false},
        {"dns://8.8.8.8:53/collector:1", "collector", "1", "collector:1", "", false},
        {"[::1]:4317", "::1", "4317", "[::1]:4317", "", false},
        {":4317", "localhost", "4317", "localhost:4317", "", false},
        {"unix:///run/otel.sock", "", "", "localhost", "/run/otel.sock", false},
        {"unix:otel.sock", "", "", "localhost", "otel.sock", false},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(ok); i++) {
        struct th_otlp_grpc_exporter_target t;
        const char *why = NULL;
        if (th__otlp_grpc_exporter_parse_endpoint(ok[i].in, &t, &why) != 0) {
            fail_msg("%s: %s", ok[i].in, why);
        }
        assert_string_equal(t.host, ok[i].host);
        assert_string_equal(t.port, ok[i].port);
        assert_string_equal(t.authority, ok[i].authority);
        assert_string_equal(t.path, ok[i].path);
        assert_int_equal(t.force_tls, ok[i].tls);
        assert_int_equal(t.is_unix, ok[i].path[0] != '\0');
    }
    const char *bad[] = {"",    "collector", "::1:4317", "[::1]4317",
                         "h:0", "h:",        "a b:1",    "unix://relative"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(bad); i++) {
        struct th_otlp_grpc_exporter_target t;
        const char *why = NULL;
        if (th__otlp_grpc_exporter_parse_endpoint(bad[i], &t, &why) == 0) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }
}

static struct th_component *no_ext(struct th_host *h, const char *id)
{
    return NULL;
}

static void host_fatal(struct th_host *h, struct th_component *c, int err)
{
    fail_msg("fatal: %s", th_strerror(err));
}

/* Wait (sleeping) until the server has seen @p n requests. */
static bool wait_requests(struct srv *s, int n, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (srv_get(s, &s->requests) >= n) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* The component as the collector builds it: the helper's thread and loop drive the
 * transport; UNAVAILABLE with RetryInfo is retried after the delay and then delivered. */
static void test_component_retry(void **state)
{
    struct srv *s = srv_start(0, false, false);
    th_arena_t *a = th_arena_create(0, 0);
    char *details = th_grpc_status_details_encode(a, TH_GRPC_UNAVAILABLE, "busy", 300000000);
    srv_script(s, M_STATUS, TH_GRPC_UNAVAILABLE, "busy", details);
    s->status_left = 1;
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "endpoint: 127.0.0.1:%d\ntls: {insecure: true}\ncompression: zstd\n"
             "retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}\n"
             "sending_queue: {num_consumers: 2}\n",
             s->port);
    struct th_otlp_grpc_exporter_cfg cfg;
    char err[512];
    if (decode(yaml, a, &cfg, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct th_host host = {.loop = &loop, .get_extension = no_ext, .report_fatal = host_fatal};
    struct th_component *c = NULL;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(th_component_create(&th_exporter_otlp_grpc_ops, "otlp", &cfg, NULL, &c),
                         0);
        c->host = &host;
        assert_int_equal(c->ops->start(c, &host), 0);
        c->started = true;
        th_batch_t *b = fx_batch();
        struct fx_acks acks = {0};
        fx_track(b, &acks);
        uint64_t t0 = th_now_mono_ns();
        int ret = th_consumer_consume(&c->consumer, b);
        assert_true(ret == 0 || ret == TH_HELD);
        assert_true(wait_requests(s, 2 * round + 2, 5000));
        uint64_t took = th_now_mono_ns() - t0;
        if (round == 0) {
            /* the retry waited for the server's RetryInfo (300ms), not the 50ms backoff */
            assert_true(took >= 280000000ull);
        }
        for (int i = 0; i < 200 && __atomic_load_n(&c->stats.sent, __ATOMIC_RELAXED) < 3; i++) {
            usleep(10000);
        }
        assert_int_equal(__atomic_load_n(&c->stats.sent, __ATOMIC_RELAXED), 3);
        pthread_mutex_lock(&s->mu);
        assert_int_equal(s->bad_requests, 0);
        assert_true(s->compressed_flag);
        th_batch_t *fb = fx_batch();
        size_t len;
        uint8_t *pb = fx_pack(fb->req, &len);
        assert_int_equal(s->msg_len, len);
        assert_memory_equal(s->msg, pb, len);
        free(pb);
        th_batch_release(fb);
        pthread_mutex_unlock(&s->mu);
        assert_int_equal(c->ops->shutdown(c), 0);
        c->shut_down = true;
        th_component_destroy(c);
        assert_int_equal(acks.settled, 1);
        srv_script(s, M_STATUS, TH_GRPC_UNAVAILABLE, "busy", details);
        s->status_left = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    th_arena_destroy(a);
    srv_stop(s);
}

/* ---- the result mapping alone ------------------------------------------------------------ */

static struct th_export_result map_response(struct th_otlp_grpc_exporter_response *r)
{
    struct th_export_result out;
    th__otlp_grpc_exporter_result(r, "h:1", &out);
    th__otlp_grpc_exporter_response_free(r);
    return out;
}

static void test_result_mapping(void **state)
{
    static const struct {
        int http;
        int err;
        const char *text;
    } http[] = {
        {400, TH_EPERM, "INTERNAL"},          {401, TH_EPERM, "UNAUTHENTICATED"},
        {403, TH_EPERM, "PERMISSION_DENIED"}, {404, TH_EPERM, "UNIMPLEMENTED"},
        {429, TH_ERETRY, "UNAVAILABLE"},      {502, TH_ERETRY, "UNAVAILABLE"},
        {503, TH_ERETRY, "UNAVAILABLE"},      {504, TH_ERETRY, "UNAVAILABLE"},
        {500, TH_EPERM, "UNKNOWN"},           {413, TH_EPERM, "UNKNOWN"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(http); i++) {
        struct th_otlp_grpc_exporter_response r;
        th__otlp_grpc_exporter_response_init(&r);
        r.http_status = http[i].http;
        snprintf(r.content_type, sizeof(r.content_type), "text/html");
        struct th_export_result out = map_response(&r);
        if (out.err != http[i].err || !strstr(out.message, http[i].text)) {
            fail_msg("HTTP %d: %d %s", http[i].http, out.err, out.message);
        }
    }
    static const struct {
        uint32_t code;
        int err;
    } rst[] = {
        {NGHTTP2_REFUSED_STREAM, TH_ERETRY},    {NGHTTP2_CANCEL, TH_ERETRY},
        {NGHTTP2_ENHANCE_YOUR_CALM, TH_ERETRY}, {NGHTTP2_INADEQUATE_SECURITY, TH_EPERM},
        {NGHTTP2_PROTOCOL_ERROR, TH_EPERM},     {NGHTTP2_INTERNAL_ERROR, TH_EPERM},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(rst); i++) {
        struct th_otlp_grpc_exporter_response r;
        th__otlp_grpc_exporter_response_init(&r);
        r.http_status = 200;
        r.reset = true;
        r.rst_code = rst[i].code;
        struct th_export_result out = map_response(&r);
        assert_int_equal(out.err, rst[i].err);
        assert_non_null(strstr(out.message, "h:1"));
    }
    /* 200 that is not gRPC; gRPC without a status */
    struct th_otlp_grpc_exporter_response r;
    th__otlp_grpc_exporter_response_init(&r);
    r.http_status = 200;
    snprintf(r.content_type, sizeof(r.content_type), "text/html");
    struct th_export_result out = map_response(&r);
    assert_int_equal(out.err, TH_EPERM);
    assert_non_null(strstr(out.message, "not a gRPC server"));
    th__otlp_grpc_exporter_response_init(&r);
    r.http_status = 200;
    r.content_type_grpc = true;
    out = map_response(&r);
    assert_int_equal(out.err, TH_EPERM);
    assert_non_null(strstr(out.message, "without a grpc-status"));
    /* GOAWAY wins over everything */
    th__otlp_grpc_exporter_response_init(&r);
    r.refused_by_goaway = true;
    r.reset = true;
    r.rst_code = NGHTTP2_PROTOCOL_ERROR;
    assert_int_equal(map_response(&r).err, TH_ERETRY);
    /* OK with a gzip-compressed response carrying partial success */
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    ps.rejected_spans = 5;
    ps.error_message = "five too old";
    resp.partial_success = &ps;
    uint8_t pb[128];
    size_t pb_len = protobuf_c_message_pack(&resp.base, pb);
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    assert_int_equal(th_grpc_frame("gzip", pb, pb_len, &frame, &frame_len), 0);
    th__otlp_grpc_exporter_response_init(&r);
    r.http_status = 200;
    r.content_type_grpc = true;
    r.grpc_status = 0;
    snprintf(r.encoding, sizeof(r.encoding), "gzip");
    assert_int_equal(th_grpc_reader_feed(&r.reader, frame, 3), 0); /* split anywhere */
    assert_int_equal(th_grpc_reader_feed(&r.reader, frame + 3, frame_len - 3), 0);
    out = map_response(&r);
    th_free(frame);
    assert_int_equal(out.err, 0);
    assert_int_equal(out.rejected_spans, 5);
    assert_non_null(strstr(out.message, "five too old"));
    /* OK whose message does not parse */
    static const uint8_t junk[] = {0, 0, 0, 0, 3, 0xff, 0xff, 0xff};
    th__otlp_grpc_exporter_response_init(&r);
    r.grpc_status = 0;
    assert_int_equal(th_grpc_reader_feed(&r.reader, junk, sizeof(junk)), 0);
    out = map_response(&r);
    assert_int_equal(out.err, TH_EPERM);
    assert_non_null(strstr(out.message, "does not parse"));
    /* grpc-message is percent-decoded for the log */
    th__otlp_grpc_exporter_response_init(&r);
    r.grpc_status = TH_GRPC_UNAVAILABLE;
    snprintf(r.grpc_message, sizeof(r.grpc_message), "caf%%C3%%A9 closed");
    r.grpc_message_len = strlen(r.grpc_message);
    out = map_response(&r);
    assert_int_equal(out.err, TH_ERETRY);
    assert_non_null(strstr(out.message, "caf\xc3\xa9 closed"));
}

/* ---- allocation failure (STYLE rule 23) ------------------------------------------------- */

/* Fail the fail_at-th allocation made on the test's thread (the scripted server's thread
 * allocates too, and is left alone). */
static pthread_t test_thread;
static long alloc_count;
static long fail_at = -1;

static bool fail_now(void)
{
    if (!pthread_equal(pthread_self(), test_thread)) {
        return false;
    }
    return alloc_count++ == fail_at;
}

static void *f_malloc(size_t n)
{
    return fail_now() ? NULL : malloc(n);
}

static void *f_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : calloc(n, size);
}

static void *f_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : realloc(p, n);
}

static const struct th_mem_methods failing = {f_malloc, f_calloc, f_realloc, free};

static void fail_from(long n)
{
    test_thread = pthread_self();
    alloc_count = 0;
    fail_at = n;
    th_mem_set_methods(&failing);
}

static void fail_stop(void)
{
    th_mem_set_methods(NULL);
    fail_at = -1;
}

/* init: every allocation failing in turn gives TH_ENOMEM and leaks nothing (ASan checks). */
static void test_oom_init(void **state)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlp_grpc_exporter_cfg cfg;
    char err[512];
    assert_int_equal(
        decode("endpoint: 127.0.0.1:1\nheaders: {a: b, c-bin: d}\n", a, &cfg, err, sizeof(err)), 0);
    for (long n = 0;; n++) {
        struct th_component *c = NULL;
        fail_from(n);
        int ret = th_component_create(&th_exporter_otlp_grpc_ops, "otlp", &cfg, NULL, &c);
        long made = alloc_count;
        fail_stop();
        if (ret == 0) {
            th_component_destroy(c);
            assert_true(made <= n); /* it only succeeds once nothing failed */
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
        assert_true(n < 1000);
    }
    th_arena_destroy(a);
}

/* One request: each allocation of send and of the connection and call that follow fails in
 * turn; send refuses with TH_ENOMEM, or done is called exactly once, and nothing leaks. */
static void test_oom_request(void **state)
{
    struct srv *s = srv_start(0, false, false);
    long n = 0;
    for (;; n++) {
        struct client c = {0};
        cfg_defaults(&c, s->port);
        client_open(&c);
        struct slot slot = {0};
        fail_from(n);
        int ret = th__otlp_grpc_exporter_transport_ops.send(c.t, c.pb, c.pb_len, on_done, &slot);
        if (ret == 0) {
            assert_int_equal(wait_done(&c, &slot, 1, 10000), 1);
        } else {
            assert_int_equal(ret, TH_ENOMEM);
        }
        long made = alloc_count;
        fail_stop();
        if (ret == 0 && slot.r.err != 0) {
            /* a failure inside the loop comes back as a result with a reason */
            assert_true(slot.r.message[0] != '\0');
        }
        client_close(&c);
        if (made <= n) {
            assert_int_equal(ret, 0);
            assert_int_equal(slot.r.err, 0);
            break;
        }
        assert_true(n < 1000);
    }
    assert_true(n > 3); /* the path does allocate */
    srv_stop(s);
}

/* The lifecycle contract: shutdown without start is safe and idempotent. */
static void test_component_no_start(void **state)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlp_grpc_exporter_cfg cfg;
    char err[512];
    assert_int_equal(decode("endpoint: 127.0.0.1:1\n", a, &cfg, err, sizeof(err)), 0);
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_otlp_grpc_ops, "otlp", &cfg, NULL, &c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
    th_arena_destroy(a);
}

/* A certificate that cannot be read fails start with a message, not every send. */
static void test_component_bad_ca(void **state)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_otlp_grpc_exporter_cfg cfg;
    char err[512];
    assert_int_equal(decode("endpoint: 127.0.0.1:1\ntls: {ca_file: /nonexistent.pem}\n", a, &cfg,
                            err, sizeof(err)),
                     0);
    struct th_host host = {.get_extension = no_ext, .report_fatal = host_fatal};
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_otlp_grpc_ops, "otlp", &cfg, NULL, &c), 0);
    assert_int_equal(c->ops->start(c, &host), TH_ECONFIG);
    th_component_destroy(c);
    th_arena_destroy(a);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/th-grpcexp-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    if (make_certs() != 0) {
        fprintf(stderr, "openssl CLI failed to make test certificates\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_headers_gzip),
        cmocka_unit_test(test_compression_zstd_none),
        cmocka_unit_test(test_partial_success),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_http_503),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connection_reset),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_parallel_streams),
        cmocka_unit_test(test_stream_limit),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_wait_for_ready),
        cmocka_unit_test(test_keepalive_dead_server),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_wrong_servers),
        cmocka_unit_test(test_tls_verify),
        cmocka_unit_test(test_tls_untrusted),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_tls_bad_files),
        cmocka_unit_test(test_real_receiver),
        cmocka_unit_test(test_registry_alias),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_component_retry),
        cmocka_unit_test(test_component_bad_ca),
        cmocka_unit_test(test_component_no_start),
        cmocka_unit_test(test_result_mapping),
        cmocka_unit_test(test_oom_init),
        cmocka_unit_test(test_oom_request),
    };
    int ret = cmocka_run_group_tests(tests, NULL, NULL);
    sh("rm -rf %s", tmpdir);
    return ret;
}
