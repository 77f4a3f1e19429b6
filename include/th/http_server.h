/*
 * A small HTTP/1.1 server for the collector's own endpoints: internal metrics (:8888),
 * health_check (:13133) and the prometheus exporter. Each server runs an h2o context on a
 * libuv loop of its own thread, so a scrape or a health probe is answered even while the
 * pipelines' loop is busy, and the handler is called on that thread.
 */
#ifndef TH_HTTP_SERVER_H
#define TH_HTTP_SERVER_H

#include <stddef.h>

#include "th/otlp.h"

struct th_component;
struct th_tls_server_cfg;

typedef struct th_http_server th_http_server_t;

/** What the handler sees of a request; the strings are not NUL-terminated. */
struct th_http_request {
    const char *method;
    size_t method_len;
    const char *path; /**< without the query string */
    size_t path_len;
    const char *query; /**< after '?', or NULL */
    size_t query_len;
    /** Find a request header by lower-case name. @return its value, or NULL. */
    const char *(*header)(const struct th_http_request *req, const char *name, size_t *len);
    void *priv; /**< for header() */
};

/** What the handler fills in. body starts empty; the server frees it after sending. */
struct th_http_response {
    int status;               /**< default 200 */
    const char *content_type; /**< static string; default "text/plain; charset=utf-8" */
    th_buf_t body;
};

/**
 * Answer one request, on the server's thread.
 * @return 0, or a negative th_err: the server answers 500 and logs it.
 */
typedef int (*th_http_handler_fn)(void *data, const struct th_http_request *req,
                                  struct th_http_response *res);

struct th_http_server_cfg {
    const char *endpoint; /**< "host:port", ":port" (all interfaces) or "port"; port 0 = any */
    th_http_handler_fn handler;
    void *data;                        /**< passed to handler */
    const struct th_component *log_as; /**< for log lines; may be NULL */
    /** HTTPS (HTTP/2 by ALPN too) when not NULL; a plaintext request then fails the
     *  handshake. Checked and copied by th_http_server_start (th/tls.h). */
    const struct th_tls_server_cfg *tls;
};

/**
 * Bind and start serving on a thread of its own.
 * @param[out] out the server.
 * @param[out] err a message naming the endpoint on failure, or the tls key and file
 *             ("tls::cert_file \"/x.pem\": No such file or directory").
 * @return 0, TH_EADDRINUSE, TH_EINVAL (bad endpoint), TH_ECONFIG (tls), TH_EIO, TH_ENOMEM.
 */
int th_http_server_start(const struct th_http_server_cfg *cfg, th_http_server_t **out, char *err,
                         size_t errlen);

/** The bound port (useful with port 0). */
int th_http_server_port(const th_http_server_t *s);

/** Stop listening, finish or close connections, join the thread and free. NULL is allowed. */
void th_http_server_stop(th_http_server_t *s);

/**
 * The reason phrase of an HTTP status the project's servers answer with ("Not Found").
 * @return a static string; "Unknown" for a status not in the table.
 */
const char *th_http_reason(int status);

#endif
