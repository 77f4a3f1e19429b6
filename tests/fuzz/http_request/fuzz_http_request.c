/*
 * libFuzzer target for the OTLP/HTTP receiver's request handling, in two modes chosen by
 * the first byte:
 *   even: the request core (th__otlp_http_export): the second byte picks JSON or protobuf,
 *         the Content-Encoding (identity, gzip, deflate, zstd, snappy, garbage) and what the
 *         pipeline answers; the rest is the body, run through capped decompression and the
 *         decoders, then a batch handed to a consumer that frees it.
 *   odd:  raw bytes written to a real server over loopback TCP: h2o's HTTP/1.1 and HTTP/2
 *         parsers, then routing, CORS preflight parsing, media types, the 413 filter and the
 *         same core. The server is started once and must survive every input.
 * Any crash, hang, leak or sanitizer report is a bug; so is an answer outside the codes the
 * receiver documents.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "th/log.h"
#include "receivers/otlp/otlp_http.h"

static int pipeline_result;

/* The pipeline: takes the batch (ownership passes whatever it answers) and answers what the
 * input asked for. */
static int consume(struct th_consumer *self, th_batch_t *b)
{
    (void)self;
    th_batch_release(b);
    return pipeline_result;
}

static struct th_consumer sink = {.consume = consume};

static const int results[] = {0,         TH_HELD,      TH_ERETRY, TH_EPERM,
                              TH_ENOMEM, TH_ESHUTDOWN, TH_EINVAL, TH_EIO};
static const char *const encodings[] = {"",     "gzip",   "deflate", "zstd",
                                        "zlib", "snappy", "x,gzip",  "identity"};

static void run_core(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return;
    }
    uint8_t sel = data[0];
    data++;
    size--;
    struct th_component_stats stats = {0};
    struct th__otlp_export x = {
        .next = &sink,
        .stats = &stats,
        .max_body = 256 * 1024,
        .encodings = TH_OTLP_ENC_ALL,
    };
    th_otlp_limits_default(&x.lim);
    x.lim.max_depth = 16;
    pipeline_result = results[(sel >> 4) % TH_ARRAY_SIZE(results)];
    const char *enc = encodings[(sel >> 1) & 7];
    struct th__otlp_reply r;
    th__otlp_http_export(&x, sel & 1, enc, strlen(enc), data, size, NULL, &r);
    switch (r.status) {
    case 200:
    case 400:
    case 413:
    case 500:
    case 503:
        break;
    default:
        abort();
    }
    if (r.status == 503 && r.retry_after_s <= 0) {
        abort();
    }
    th_buf_free(&r.body);
}

static uv_loop_t loop;
static th_otlp_http_server_t *server;
static int port;

static const char *origins[] = {"https://*.example.com", "http://localhost:*"};
static const char *allow_headers[] = {"x-custom"};
static const char *rh_keys[] = {"X-Fuzz"};
static const char *rh_vals[] = {"1"};

static void start_server(void)
{
    struct th_otlp_http_cfg cfg;
    th_otlp_http_cfg_default(&cfg);
    cfg.endpoint = "127.0.0.1:0";
    cfg.max_request_body_size = 256 * 1024;
    cfg.max_nesting_depth = 16;
    cfg.cors.allowed_origins = (th_strlist_t){origins, 2};
    cfg.cors.allowed_headers = (th_strlist_t){allow_headers, 1};
    cfg.cors.max_age = 60;
    cfg.response_headers = (th_strmap_t){rh_keys, rh_vals, 1};
    if (uv_loop_init(&loop) != 0 || th_otlp_http_server_create(&cfg, &sink, NULL, &server) != 0 ||
        th_otlp_http_server_start(server, &loop) != 0) {
        abort();
    }
    port = th_otlp_http_bound_port(server);
}

/* Write the input, half-close, and run the loop until the server closes the connection. */
static void run_raw(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) {
        abort();
    }
    /* Close with RST: thousands of connections a second would otherwise exhaust the
     * ephemeral ports with TIME_WAIT. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        /* Refused means the server stopped listening: that is a bug. Anything else is the
         * host running short of ports or memory; skip the input. */
        if (errno == ECONNREFUSED) {
            abort();
        }
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t off = 0;
    char buf[4096];
    bool half_closed = false;
    for (int i = 0; i < 100000; i++) {
        if (off < size) {
            ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
            } else if (n < 0 && errno != EAGAIN) {
                off = size; /* the server closed early (413, parse error): fine */
            }
        }
        if (off == size && !half_closed) {
            shutdown(fd, SHUT_WR);
            half_closed = true;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
    }
    close(fd);
    /* Let the server see the close and free the connection before the next input. */
    for (int i = 0; i < 10; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server) {
        th_log_configure(TH_LOG_OFF, TH_LOG_CONSOLE);
        start_server();
    }
    if (size < 1) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        run_core(data + 1, size - 1);
    } else {
        run_raw(data + 1, size - 1);
    }
    return 0;
}
