/*
 * TLS for the otlp_grpc exporter, through OpenSSL memory BIOs: the connection code reads
 * ciphertext from its uv socket into the session and writes out what the session produces,
 * so TLS never touches a file descriptor and stays on the exporter's loop without blocking.
 * The context carries the configtls client settings: versions, trust (ca_file/ca_pem or the
 * system store), the client certificate for mTLS, and ALPN "h2" as gRPC requires.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "exporters/otlp_grpc/otlp_grpc.h"
#include "th/tls.h"

struct th_otlp_grpc_exporter_tls_ctx {
    SSL_CTX *ctx;
    bool verify;
};

struct th_otlp_grpc_exporter_tls {
    SSL *ssl;
    BIO *rbio; /**< ciphertext from the socket (owned by ssl) */
    BIO *wbio; /**< ciphertext for the socket (owned by ssl) */
};

static const unsigned char alpn_h2[] = {2, 'h', '2'};

static bool set(const char *s)
{
    return s && *s;
}

/* Check a file can be opened, so a missing file is reported with errno's words rather than
 * OpenSSL's error code. */
static int readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "tls::%s \"%s\": %s", key, path, strerror(errno));
        return TH_ECONFIG;
    }
    fclose(f);
    return 0;
}

/* Add every certificate of a PEM text to the context's trust store. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio) {
        return TH_ENOMEM;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int added = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, x);
        X509_free(x);
        added++;
    }
    ERR_clear_error(); /* the read that ends the loop leaves "no start line" */
    BIO_free(bio);
    if (!added) {
        snprintf(err, errlen, "tls::ca_pem: no PEM certificate found");
        return TH_ECONFIG;
    }
    return 0;
}

/* OpenSSL checks a key against the certificate already loaded when it is set. */
static bool key_mismatch(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

/* The client certificate (with its chain) and key for mTLS, from files or PEM text. */
static int load_client_cert(SSL_CTX *ctx, const struct th_otlp_grpc_exporter_tls_cfg *cfg,
                            char *err, size_t errlen)
{
    char buf[256];
    if (set(cfg->cert_file)) {
        if (readable("cert_file", cfg->cert_file, err, errlen) != 0) {
            return TH_ECONFIG;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
            snprintf(err, errlen, "tls::cert_file \"%s\": %s", cfg->cert_file,
                     th_tls_reason(buf, sizeof(buf), "not a PEM certificate"));
            return TH_ECONFIG;
        }
    } else if (set(cfg->cert_pem)) {
        BIO *bio = BIO_new_mem_buf(cfg->cert_pem, -1);
        X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
        X509_free(x);
        X509 *extra;
        while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                X509_free(extra);
                ok = 0;
            }
        }
        BIO_free(bio);
        if (!ok) {
            snprintf(err, errlen, "tls::cert_pem: %s",
                     th_tls_reason(buf, sizeof(buf), "not a PEM certificate"));
            return TH_ECONFIG;
        }
        ERR_clear_error();
    }
    if (set(cfg->key_file)) {
        if (readable("key_file", cfg->key_file, err, errlen) != 0) {
            return TH_ECONFIG;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "tls::key_file \"%s\": %s", cfg->key_file,
                     key_mismatch() ? "the key does not match the client certificate"
                                    : th_tls_reason(buf, sizeof(buf), "not a PEM private key"));
            ERR_clear_error();
            return TH_ECONFIG;
        }
    } else if (set(cfg->key_pem)) {
        BIO *bio = BIO_new_mem_buf(cfg->key_pem, -1);
        EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
        EVP_PKEY_free(k);
        BIO_free(bio);
        if (!ok) {
            snprintf(err, errlen, "tls::key_pem: %s",
                     key_mismatch() ? "the key does not match the client certificate"
                                    : th_tls_reason(buf, sizeof(buf), "not a PEM private key"));
            ERR_clear_error();
            return TH_ECONFIG;
        }
    }
    if ((set(cfg->key_file) || set(cfg->key_pem)) && SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls: the client key does not match the client certificate");
        ERR_clear_error();
        return TH_ECONFIG;
    }
    return 0;
}

int th__otlp_grpc_exporter_tls_ctx_create(const struct th_otlp_grpc_exporter_tls_cfg *cfg,
                                          th_otlp_grpc_exporter_tls_ctx_t **out, char *err,
                                          size_t errlen)
{
    char buf[256];
    int ret = TH_ENOMEM;
    th_otlp_grpc_exporter_tls_ctx_t *c = th_calloc(1, sizeof(*c));
    if (!c) {
        goto fail;
    }
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) {
        goto fail;
    }
    ret = TH_ECONFIG;
    SSL_CTX_set_min_proto_version(c->ctx, th_tls_version(cfg->min_version, TLS1_2_VERSION));
    SSL_CTX_set_max_proto_version(c->ctx, th_tls_version(cfg->max_version, 0));
    c->verify = !cfg->insecure_skip_verify;
    SSL_CTX_set_verify(c->ctx, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (set(cfg->ca_file)) {
        if (readable("ca_file", cfg->ca_file, err, errlen) != 0) {
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(c->ctx, cfg->ca_file, NULL) != 1) {
            snprintf(err, errlen, "tls::ca_file \"%s\": %s", cfg->ca_file,
                     th_tls_reason(buf, sizeof(buf), "no PEM certificate found"));
            goto fail;
        }
    } else if (set(cfg->ca_pem)) {
        ret = add_ca_pem(c->ctx, cfg->ca_pem, err, errlen);
        if (ret != 0) {
            goto fail;
        }
        ret = TH_ECONFIG;
    }
    if ((!set(cfg->ca_file) && !set(cfg->ca_pem)) || cfg->include_system_ca_certs_pool) {
        if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
            snprintf(err, errlen, "tls: the system's trusted certificates cannot be loaded: %s",
                     th_tls_reason(buf, sizeof(buf), "unknown error"));
            goto fail;
        }
    }
    if (load_client_cert(c->ctx, cfg, err, errlen) != 0) {
        goto fail;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success, unlike the rest of the API. */
    if (SSL_CTX_set_alpn_protos(c->ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
        ret = TH_ENOMEM;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (ret == TH_ENOMEM) {
        snprintf(err, errlen, "tls: out of memory");
    }
    th__otlp_grpc_exporter_tls_ctx_destroy(c);
    return ret;
}

void th__otlp_grpc_exporter_tls_ctx_destroy(th_otlp_grpc_exporter_tls_ctx_t *c)
{
    if (!c) {
        return;
    }
    SSL_CTX_free(c->ctx);
    th_free(c);
}

th_otlp_grpc_exporter_tls_t *th__otlp_grpc_exporter_tls_new(th_otlp_grpc_exporter_tls_ctx_t *ctx,
                                                            const char *server_name)
{
    th_otlp_grpc_exporter_tls_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->ssl = SSL_new(ctx->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        goto fail;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_connect_state(s->ssl);
    unsigned char addr[16];
    bool is_ip =
        inet_pton(AF_INET, server_name, addr) == 1 || inet_pton(AF_INET6, server_name, addr) == 1;
    /* An IP address is checked against the certificate's IP SANs and is never sent as SNI
     * (RFC 6066 forbids literal addresses there). */
    if (is_ip) {
        if (ctx->verify &&
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), server_name) != 1) {
            goto fail;
        }
    } else {
        if (SSL_set_tlsext_host_name(s->ssl, server_name) != 1) {
            goto fail;
        }
        if (ctx->verify && SSL_set1_host(s->ssl, server_name) != 1) {
            goto fail;
        }
    }
    return s;
fail:
    if (s->ssl) {
        SSL_free(s->ssl); /* frees the BIOs it was given */
    } else {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
    }
    ERR_clear_error();
    th_free(s);
    return NULL;
}

void th__otlp_grpc_exporter_tls_free(th_otlp_grpc_exporter_tls_t *s)
{
    if (!s) {
        return;
    }
    SSL_free(s->ssl);
    th_free(s);
}

int th__otlp_grpc_exporter_tls_handshake(th_otlp_grpc_exporter_tls_t *s, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(s->ssl, &proto, &len);
        /* A server that ignores ALPN is given the benefit of the doubt (older gRPC servers);
         * one that picked something else does not speak gRPC on this port. */
        if (len > 0 && (len != 2 || memcmp(proto, "h2", 2) != 0)) {
            snprintf(err, errlen,
                     "TLS: the server chose ALPN protocol \"%.*s\", not h2 (is this "
                     "an HTTP/1 port rather than gRPC?)",
                     (int)len, (const char *)proto);
            return TH_EPERM;
        }
        return 1;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    long vr = SSL_get_verify_result(s->ssl);
    char buf[256];
    if (vr != X509_V_OK) {
        snprintf(err, errlen,
                 "TLS handshake: server certificate verify failed: %s (set "
                 "tls::ca_file to the CA that signed it)",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
    } else {
        snprintf(err, errlen, "TLS handshake failed: %s",
                 th_tls_reason(buf, sizeof(buf), "protocol error"));
    }
    return TH_EPERM;
}

int th__otlp_grpc_exporter_tls_feed(th_otlp_grpc_exporter_tls_t *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int w = BIO_write(s->rbio, p, chunk);
        if (w <= 0) {
            return TH_ENOMEM;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int th__otlp_grpc_exporter_tls_read(th_otlp_grpc_exporter_tls_t *s, uint8_t *buf, size_t cap)
{
    ERR_clear_error();
    int r = SSL_read(s->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0) {
        return r;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    ERR_clear_error();
    return TH_EIO;
}

int th__otlp_grpc_exporter_tls_write(th_otlp_grpc_exporter_tls_t *s, const uint8_t *p, size_t n)
{
    ERR_clear_error();
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int w = SSL_write(s->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return TH_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int th__otlp_grpc_exporter_tls_drain(th_otlp_grpc_exporter_tls_t *s, th_buf_t *out)
{
    size_t pending = BIO_ctrl_pending(s->wbio);
    if (pending == 0) {
        return 0;
    }
    if (th_buf_reserve(out, pending) != 0) {
        return TH_ENOMEM;
    }
    int r = BIO_read(s->wbio, out->ptr + out->len, (int)pending);
    if (r > 0) {
        out->len += (size_t)r;
    }
    return 0;
}
