/*
 * The TLS layer of the OTLP/gRPC server (otlp_grpc_tls.c), driven in memory against an
 * OpenSSL client: the handshake, the server's bytes queued before it and sent after, data
 * both ways, the accounting of queued bytes, and the refusals: a plaintext HTTP/2 client, a
 * client without ALPN h2, a client without a certificate under mTLS. Then the real server on
 * a loopback socket: a TLS client gets the server's SETTINGS and an answer to a PING, and a
 * plaintext HTTP/2 client gets nothing but a closed connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "th/tls.h"
#include "receivers/otlp/otlp_grpc.h"
#include "receivers/otlp/otlp_grpc_tls.h"
#include "../collector/tls_test_certs.h"

static int make_certs(void **state)
{
    (void)state;
    if (tls_certs_dir("/tmp/th-gtls-XXXXXX") != 0) {
        return -1;
    }
    tls_make_ca("ca", "ca");
    tls_issue("server", "localhost", "ca", true);
    tls_issue("client", "client", "ca", false);
    return 0;
}

static char files[4][128];

static th_tls_server_t *server(bool mtls)
{
    struct th_tls_server_cfg c;
    th_tls_server_cfg_default(&c);
    snprintf(files[0], sizeof(files[0]), "%s/server.pem", dir);
    snprintf(files[1], sizeof(files[1]), "%s/server.key", dir);
    snprintf(files[2], sizeof(files[2]), "%s/ca.pem", dir);
    c.cert_file = files[0];
    c.key_file = files[1];
    if (mtls) {
        c.client_ca_file = files[2];
    }
    struct th_tls_server_opts o = {.path = "protocols::grpc::tls", .alpn = TH_TLS_ALPN_H2};
    th_tls_server_t *t = NULL;
    char err[512];
    assert_int_equal(th_tls_server_create(&c, &o, &t, err, sizeof(err)), 0);
    assert_int_equal(th_tls_server_load(t, err, sizeof(err)), 0);
    return t;
}

/* A client in memory: what it writes is taken from wbio, what it reads is put in rbio. */
struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void client_init(struct client *cl, const char *alpn, size_t alpn_len, bool cert)
{
    char p[256], k[256];
    cl->ctx = SSL_CTX_new(TLS_client_method());
    snprintf(p, sizeof(p), "%s/ca.pem", dir);
    assert_int_equal(SSL_CTX_load_verify_locations(cl->ctx, p, NULL), 1);
    SSL_CTX_set_verify(cl->ctx, SSL_VERIFY_PEER, NULL);
    if (alpn) {
        SSL_CTX_set_alpn_protos(cl->ctx, (const unsigned char *)alpn, (unsigned)alpn_len);
    }
    if (cert) {
        snprintf(p, sizeof(p), "%s/client.pem", dir);
        snprintf(k, sizeof(k), "%s/client.key", dir);
        assert_int_equal(SSL_CTX_use_certificate_file(cl->ctx, p, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(cl->ctx, k, SSL_FILETYPE_PEM), 1);
    }
    cl->ssl = SSL_new(cl->ctx);
    cl->rbio = BIO_new(BIO_s_mem());
    cl->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cl->rbio, -1);
    SSL_set_bio(cl->ssl, cl->rbio, cl->wbio);
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    SSL_set_connect_state(cl->ssl);
}

static void client_free(struct client *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    ERR_clear_error();
}

static size_t take(BIO *b, uint8_t *buf, size_t cap)
{
    int n = BIO_read(b, buf, (int)cap);
    return n > 0 ? (size_t)n : 0;
}

/* Shuttle bytes until both sides stop talking. @return the server's last result; plaintext
 * the server decrypted goes to @p plain, the queued bytes it flushed are added to *flushed. */
static int pump(struct client *cl, th__otlp_grpc_tls_t *t, th_buf_t *plain, size_t *flushed)
{
    int ret = 0;
    for (int i = 0; i < 32; i++) {
        SSL_do_handshake(cl->ssl); /* no-op once done */
        uint8_t buf[16384];
        size_t n = take(cl->wbio, buf, sizeof(buf));
        th_buf_t out = {0};
        size_t f = 0;
        ret = th__otlp_grpc_tls_recv(t, buf, n, plain, &out, &f);
        *flushed += f;
        if (out.len > 0) {
            BIO_write(cl->rbio, out.ptr, (int)out.len);
        }
        th_buf_free(&out);
        if (ret != 0 ||
            (n == 0 && BIO_ctrl_pending(cl->wbio) == 0 && SSL_is_init_finished(cl->ssl) && i > 2)) {
            break;
        }
    }
    return ret;
}

static void test_handshake_and_data(void **state)
{
    (void)state;
    th_tls_server_t *srv = server(false);
    th__otlp_grpc_tls_t *t = NULL;
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    /* The server writes its SETTINGS at once: queued until the handshake is done. */
    th_buf_t out = {0};
    size_t flushed = 99;
    assert_int_equal(th__otlp_grpc_tls_send(t, (const uint8_t *)"SETTINGS", 8, &out, &flushed), 0);
    assert_int_equal(flushed, 0);
    assert_int_equal(out.len, 0);
    assert_false(th__otlp_grpc_tls_ready(t));

    struct client cl;
    client_init(&cl, "\x02h2", 3, false);
    th_buf_t plain = {0};
    flushed = 0;
    assert_int_equal(pump(&cl, t, &plain, &flushed), 0);
    assert_true(th__otlp_grpc_tls_ready(t));
    assert_int_equal(flushed, 8);
    assert_int_equal(plain.len, 0);
    const unsigned char *a = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(cl.ssl, &a, &alen);
    assert_int_equal(alen, 2);
    assert_memory_equal(a, "h2", 2);
    char got[64] = "";
    assert_int_equal(SSL_read(cl.ssl, got, sizeof(got) - 1), 8);
    assert_memory_equal(got, "SETTINGS", 8);

    /* Client to server. */
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_int_equal(SSL_write(cl.ssl, preface, (int)sizeof(preface) - 1),
                     (int)sizeof(preface) - 1);
    assert_int_equal(pump(&cl, t, &plain, &flushed), 0);
    assert_int_equal(plain.len, sizeof(preface) - 1);
    assert_memory_equal(plain.ptr, preface, sizeof(preface) - 1);

    /* Server to client, after the handshake: encrypted at once. */
    assert_int_equal(th__otlp_grpc_tls_send(t, (const uint8_t *)"PING", 4, &out, &flushed), 0);
    assert_int_equal(flushed, 4);
    assert_true(out.len > 4);
    assert_null(memmem(out.ptr, out.len, "PING", 4)); /* ciphertext, not the bytes */
    BIO_write(cl.rbio, out.ptr, (int)out.len);
    memset(got, 0, sizeof(got));
    assert_int_equal(SSL_read(cl.ssl, got, sizeof(got) - 1), 4);
    assert_string_equal(got, "PING");

    /* close_notify from the client ends the session. */
    SSL_shutdown(cl.ssl);
    th_buf_free(&plain);
    flushed = 0;
    assert_int_equal(pump(&cl, t, &plain, &flushed), TH_EIO);
    assert_non_null(strstr(th__otlp_grpc_tls_why(t), "closed"));
    th_buf_free(&plain);
    th_buf_free(&out);
    client_free(&cl);
    th__otlp_grpc_tls_destroy(t);
    th_tls_server_destroy(srv);
}

static void test_plaintext_client(void **state)
{
    (void)state;
    th_tls_server_t *srv = server(false);
    th__otlp_grpc_tls_t *t = NULL;
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    th_buf_t out = {0}, plain = {0};
    size_t flushed = 0;
    assert_int_equal(th__otlp_grpc_tls_send(t, (const uint8_t *)"SETTINGS", 8, &out, &flushed), 0);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_int_equal(th__otlp_grpc_tls_recv(t, (const uint8_t *)preface, sizeof(preface) - 1,
                                            &plain, &out, &flushed),
                     TH_EIO);
    /* Nothing reaches nghttp2, the queued SETTINGS are dropped (and accounted). */
    assert_int_equal(plain.len, 0);
    assert_int_equal(flushed, 8);
    assert_true(out.len == 0 || !memmem(out.ptr, out.len, "SETTINGS", 8));
    assert_true(strlen(th__otlp_grpc_tls_why(t)) > 0);
    /* The session stays failed. */
    assert_int_equal(th__otlp_grpc_tls_send(t, (const uint8_t *)"x", 1, &out, &flushed), TH_EIO);
    th_buf_free(&out);
    th__otlp_grpc_tls_destroy(t);
    th_tls_server_destroy(srv);
}

static void test_alpn_refusals(void **state)
{
    (void)state;
    th_tls_server_t *srv = server(false);
    /* No ALPN at all: the handshake completes, then the session refuses. */
    th__otlp_grpc_tls_t *t = NULL;
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    struct client cl;
    client_init(&cl, NULL, 0, false);
    th_buf_t plain = {0};
    size_t flushed = 0;
    assert_int_equal(pump(&cl, t, &plain, &flushed), TH_EIO);
    assert_false(th__otlp_grpc_tls_ready(t));
    assert_non_null(strstr(th__otlp_grpc_tls_why(t), "ALPN"));
    client_free(&cl);
    th__otlp_grpc_tls_destroy(t);

    /* ALPN without h2: a fatal alert during the handshake. */
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    client_init(&cl, "\x08http/1.1", 9, false);
    assert_int_equal(pump(&cl, t, &plain, &flushed), TH_EIO);
    assert_false(th__otlp_grpc_tls_ready(t));
    assert_int_equal(SSL_is_init_finished(cl.ssl), 0);
    client_free(&cl);
    th__otlp_grpc_tls_destroy(t);
    th_buf_free(&plain);
    th_tls_server_destroy(srv);
}

static void test_mtls(void **state)
{
    (void)state;
    th_tls_server_t *srv = server(true);
    th__otlp_grpc_tls_t *t = NULL;
    th_buf_t plain = {0};
    size_t flushed = 0;
    struct client cl;
    /* Without a certificate. */
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    client_init(&cl, "\x02h2", 3, false);
    assert_int_equal(pump(&cl, t, &plain, &flushed), TH_EIO);
    assert_false(th__otlp_grpc_tls_ready(t));
    client_free(&cl);
    th__otlp_grpc_tls_destroy(t);
    /* With one from the configured CA. */
    assert_int_equal(th__otlp_grpc_tls_create(th_tls_server_ctx(srv), &t), 0);
    client_init(&cl, "\x02h2", 3, true);
    assert_int_equal(pump(&cl, t, &plain, &flushed), 0);
    assert_true(th__otlp_grpc_tls_ready(t));
    client_free(&cl);
    th__otlp_grpc_tls_destroy(t);
    th_buf_free(&plain);
    th_tls_server_destroy(srv);
}

/* ---- The server on a socket ---------------------------------------------------------------- */

struct loop_thread {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t thread;
    th_otlp_grpc_server_t *srv;
};

static void on_stop(uv_async_t *a)
{
    struct loop_thread *lt = a->data;
    th_otlp_grpc_server_shutdown(lt->srv);
    uv_close((uv_handle_t *)&lt->stop, NULL);
}

static void run(void *arg)
{
    struct loop_thread *lt = arg;
    uv_run(&lt->loop, UV_RUN_DEFAULT);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int consume_traces(struct th_consumer *self, th_batch_t *b)
{
    (void)self;
    th_batch_release(b);
    return 0;
}

static void test_server_socket(void **state)
{
    (void)state;
    struct th_otlp_grpc_cfg cfg;
    th_otlp_grpc_cfg_default(&cfg);
    cfg.endpoint = "127.0.0.1:0";
    cfg.tls_enabled = true;
    th_tls_server_cfg_default(&cfg.tls);
    snprintf(files[0], sizeof(files[0]), "%s/server.pem", dir);
    snprintf(files[1], sizeof(files[1]), "%s/server.key", dir);
    cfg.tls.cert_file = files[0];
    cfg.tls.key_file = files[1];
    struct th_consumer next = {.consume = consume_traces};
    struct loop_thread lt = {0};
    assert_int_equal(uv_loop_init(&lt.loop), 0);
    assert_int_equal(th_otlp_grpc_server_create(&cfg, &next, NULL, &lt.srv), 0);
    assert_int_equal(th_otlp_grpc_server_start(lt.srv, &lt.loop), 0);
    int port = th_otlp_grpc_bound_port(lt.srv);
    assert_true(port > 0);
    uv_async_init(&lt.loop, &lt.stop, on_stop);
    lt.stop.data = &lt;
    assert_int_equal(uv_thread_create(&lt.thread, run, &lt), 0);

    /* TLS with ALPN h2: the preface and an empty SETTINGS, then a PING; the server's SETTINGS
     * and the PING's ACK come back through TLS. */
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    char p[256];
    snprintf(p, sizeof(p), "%s/ca.pem", dir);
    assert_int_equal(SSL_CTX_load_verify_locations(cctx, p, NULL), 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2", 3);
    SSL *ssl = SSL_new(cctx);
    int fd = connect_to(port);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    assert_int_equal(SSL_connect(ssl), 1);
    static const uint8_t hello[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                   "\x00\x00\x00\x04\x00\x00\x00\x00\x00" /* SETTINGS */
                                   "\x00\x00\x08\x06\x00\x00\x00\x00\x00"
                                   "abcdefgh"; /* PING */
    assert_int_equal(SSL_write(ssl, hello, (int)sizeof(hello) - 1), (int)sizeof(hello) - 1);
    uint8_t buf[4096];
    size_t got = 0;
    bool ping_ack = false;
    while (!ping_ack && got < sizeof(buf)) {
        int n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - got));
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        /* A PING frame with the ACK flag and our payload. */
        static const uint8_t ack[] = "\x00\x00\x08\x06\x01\x00\x00\x00\x00"
                                     "abcdefgh";
        ping_ack = memmem(buf, got, ack, sizeof(ack) - 1) != NULL;
    }
    assert_true(got >= 9);
    assert_int_equal(buf[3], 0x04); /* the first frame is the server's SETTINGS */
    assert_true(ping_ack);
    SSL_free(ssl);
    close(fd);

    /* Plaintext HTTP/2 on the TLS port: no HTTP/2 frame comes back, only a close. */
    fd = connect_to(port);
    assert_int_equal(write(fd, hello, sizeof(hello) - 1), (ssize_t)(sizeof(hello) - 1));
    got = 0;
    ssize_t n;
    while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0) {
        got += (size_t)n;
    }
    assert_true(n == 0); /* closed, not timed out */
    /* At most a TLS alert record (type 21), never an HTTP/2 frame. */
    assert_true(got == 0 || buf[0] == 21);
    close(fd);
    SSL_CTX_free(cctx);

    uv_async_send(&lt.stop);
    uv_thread_join(&lt.thread);
    while (!th_otlp_grpc_server_closed(lt.srv)) {
        uv_run(&lt.loop, UV_RUN_NOWAIT);
    }
    th_otlp_grpc_server_destroy(lt.srv);
    uv_run(&lt.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&lt.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data), cmocka_unit_test(test_plaintext_client),
        cmocka_unit_test(test_alpn_refusals),      cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_server_socket),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
