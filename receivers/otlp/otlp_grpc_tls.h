/*
 * The TLS layer of the OTLP/gRPC server: one OpenSSL server session per connection, through
 * memory BIOs, between the socket and nghttp2. It never touches a file descriptor: the
 * connection code hands it the ciphertext it read and writes out the ciphertext it gets
 * back, so TLS runs on the receiver's loop without blocking and the bytes can be tested
 * without a socket. The context (certificates, versions, mTLS, ALPN "h2") comes from
 * th_tls_server_ctx() (th/tls.h).
 */
#ifndef TH_RECEIVER_OTLP_GRPC_TLS_H
#define TH_RECEIVER_OTLP_GRPC_TLS_H

#include <openssl/ssl.h>

#include "th/otlp.h"

typedef struct th__otlp_grpc_tls th__otlp_grpc_tls_t;

/**
 * Start a server session for a connection just accepted.
 * @param[in] ctx the context to use (SSL_new takes its own reference).
 * @param[out] out the session.
 * @return 0 or TH_ENOMEM.
 * @note Free with th__otlp_grpc_tls_destroy().
 */
int th__otlp_grpc_tls_create(SSL_CTX *ctx, th__otlp_grpc_tls_t **out);

/**
 * Take ciphertext read from the socket.
 * @param[in] in,n the bytes.
 * @param[out] plain receives the decrypted application bytes (for nghttp2).
 * @param[out] out receives ciphertext for the socket: handshake messages, alerts, and the
 *             plaintext queued by th__otlp_grpc_tls_send before the handshake finished.
 * @param[out] flushed set to how many queued plaintext bytes left the queue (encrypted into
 *             @p out, or dropped when the session failed), for the caller's accounting.
 * @return 0; TH_EIO when the handshake failed (a plaintext client, an untrusted or missing
 *         client certificate, no "h2" in ALPN, a version below min_version), a record is
 *         bad, or the peer sent close_notify: the caller writes @p out (the alert) and
 *         closes; TH_ENOMEM.
 */
int th__otlp_grpc_tls_recv(th__otlp_grpc_tls_t *t, const uint8_t *in, size_t n, th_buf_t *plain,
                           th_buf_t *out, size_t *flushed);

/**
 * Encrypt application bytes for the socket, or queue them until the handshake is done (the
 * server's SETTINGS frame is written before the client said anything).
 * @param[out] out receives the ciphertext.
 * @param[out] flushed how many plaintext bytes (queued ones included) are now in @p out.
 * @return 0, TH_EIO (the session failed before), TH_ENOMEM.
 */
int th__otlp_grpc_tls_send(th__otlp_grpc_tls_t *t, const uint8_t *p, size_t n, th_buf_t *out,
                           size_t *flushed);

/** @return true once the handshake finished with "h2" negotiated. */
bool th__otlp_grpc_tls_ready(const th__otlp_grpc_tls_t *t);

/** @return why the session failed (OpenSSL's reason, never key material), or "". */
const char *th__otlp_grpc_tls_why(const th__otlp_grpc_tls_t *t);

/** Free the session; NULL is allowed. */
void th__otlp_grpc_tls_destroy(th__otlp_grpc_tls_t *t);

#endif
