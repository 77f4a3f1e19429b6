/*
 * TLS for the OTLP/gRPC server connections through OpenSSL memory BIOs: ciphertext from the
 * socket goes into the read BIO, SSL_read gives nghttp2 its bytes, and whatever the session
 * writes (handshake, alerts, records) is drained from the write BIO for the socket. Until the
 * handshake is done the server's own HTTP/2 bytes are queued in plaintext, then encrypted in
 * order. gRPC requires ALPN "h2": a handshake that ends without it fails.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "th/tls.h"
#include "receivers/otlp/otlp_grpc_tls.h"

/* SSL_read into the output this much at a time. */
#define READ_CHUNK 16384

struct th__otlp_grpc_tls {
    SSL *ssl;
    BIO *rbio;      /* ciphertext from the socket (owned by ssl) */
    BIO *wbio;      /* ciphertext for the socket (owned by ssl) */
    th_buf_t queue; /* plaintext sent before the handshake finished */
    bool ready;
    bool failed;
    char why[160];
};

int th__otlp_grpc_tls_create(SSL_CTX *ctx, th__otlp_grpc_tls_t **out)
{
    th__otlp_grpc_tls_t *t = th_calloc(1, sizeof(*t));
    if (!t) {
        return TH_ENOMEM;
    }
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        th_free(t);
        ERR_clear_error();
        return TH_ENOMEM;
    }
    /* An empty read BIO means "more later", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

/* Move everything the session wrote to @p out. */
static int drain(th__otlp_grpc_tls_t *t, th_buf_t *out)
{
    size_t pending;
    while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
        if (th_buf_reserve(out, pending) != 0) {
            return TH_ENOMEM;
        }
        int n = BIO_read(t->wbio, out->ptr + out->len, (int)TH_MIN(pending, (size_t)INT32_MAX));
        if (n <= 0) {
            break;
        }
        out->len += (size_t)n;
    }
    return 0;
}

/* The reason of the newest OpenSSL error (or @p dflt), kept for the log line. */
static void note_error(th__otlp_grpc_tls_t *t, const char *dflt)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        snprintf(t->why, sizeof(t->why), "client certificate: %s",
                 X509_verify_cert_error_string(v));
    } else {
        snprintf(t->why, sizeof(t->why), "%s", r ? r : dflt);
    }
    ERR_clear_error();
}

/* The session is over: drop the queue (counted as flushed) and keep the alert for @p out. */
static int fail(th__otlp_grpc_tls_t *t, th_buf_t *out, size_t *flushed)
{
    t->failed = true;
    *flushed += t->queue.len;
    th_buf_free(&t->queue);
    drain(t, out);
    return TH_EIO;
}

static int encrypt(th__otlp_grpc_tls_t *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int chunk = (int)TH_MIN(n, (size_t)(1 << 30));
        int w = SSL_write(t->ssl, p, chunk);
        if (w <= 0) {
            note_error(t, "write failed");
            return TH_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int th__otlp_grpc_tls_recv(th__otlp_grpc_tls_t *t, const uint8_t *in, size_t n, th_buf_t *plain,
                           th_buf_t *out, size_t *flushed)
{
    *flushed = 0;
    if (t->failed) {
        return TH_EIO;
    }
    if (n > 0 && BIO_write(t->rbio, in, (int)n) != (int)n) {
        snprintf(t->why, sizeof(t->why), "out of memory");
        return fail(t, out, flushed);
    }
    if (!t->ready) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                return drain(t, out);
            }
            note_error(t, "handshake failed");
            return fail(t, out, flushed);
        }
        if (!th_tls_alpn_ok(t->ssl, TH_TLS_ALPN_H2)) {
            snprintf(t->why, sizeof(t->why),
                     "the client did not offer ALPN \"h2\" (gRPC needs it)");
            return fail(t, out, flushed);
        }
        t->ready = true;
        if (t->queue.len > 0) {
            if (encrypt(t, t->queue.ptr, t->queue.len) != 0) {
                return fail(t, out, flushed);
            }
            *flushed = t->queue.len;
            th_buf_free(&t->queue);
        }
    }
    for (;;) {
        if (th_buf_reserve(plain, READ_CHUNK) != 0) {
            return TH_ENOMEM;
        }
        ERR_clear_error();
        int r = SSL_read(t->ssl, plain->ptr + plain->len, READ_CHUNK);
        if (r > 0) {
            plain->len += (size_t)r;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(t->why, sizeof(t->why), "the client closed the TLS session");
        } else {
            note_error(t, "bad TLS record");
        }
        /* What was decrypted before still counts: the caller feeds it, then closes. */
        return fail(t, out, flushed);
    }
    return drain(t, out);
}

int th__otlp_grpc_tls_send(th__otlp_grpc_tls_t *t, const uint8_t *p, size_t n, th_buf_t *out,
                           size_t *flushed)
{
    *flushed = 0;
    if (t->failed) {
        return TH_EIO;
    }
    if (!t->ready) {
        return th_buf_append(&t->queue, p, n);
    }
    if (encrypt(t, p, n) != 0) {
        return fail(t, out, flushed);
    }
    *flushed = n;
    return drain(t, out);
}

bool th__otlp_grpc_tls_ready(const th__otlp_grpc_tls_t *t)
{
    return t && t->ready;
}

const char *th__otlp_grpc_tls_why(const th__otlp_grpc_tls_t *t)
{
    return t ? t->why : "";
}

void th__otlp_grpc_tls_destroy(th__otlp_grpc_tls_t *t)
{
    if (!t) {
        return;
    }
    SSL_free(t->ssl); /* frees both BIOs */
    th_buf_free(&t->queue);
    th_free(t);
}
