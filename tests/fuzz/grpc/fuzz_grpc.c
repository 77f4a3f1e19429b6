/*
 * libFuzzer target for the OTLP/gRPC receiver: the input is a client's side of an HTTP/2
 * connection, fed into a real server session (th__otlp_grpc_session_*) without a socket, so
 * the preface check, frame parsing, HPACK, stream handling, message reassembly, the size
 * limits, decompression, protobuf decoding and the answers are all exercised.
 *
 * The first byte steers: bit 0 prepends a valid client preface and empty SETTINGS frame (so
 * mutations reach past the preface), bits 1-3 pick what the pipeline answers, bits 4-7 pick
 * how the rest is split into reads (one read, or chunks of 1..15 bytes). Any crash, leak,
 * sanitizer report or a server answer that is not well-formed HTTP/2 from our side is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "th/log.h"
#include "receivers/otlp/otlp_grpc.h"

static int pipeline_result;

static int consume(struct th_consumer *self, th_batch_t *b)
{
    (void)self;
    /* Taking the data settles its ack now, on this thread, as a synchronous exporter does. */
    if (pipeline_result == 0) {
        th_batch_settle_acks(b, 0);
    }
    th_batch_release(b);
    return pipeline_result;
}

static struct th_consumer sink = {.consume = consume};
static th_otlp_grpc_server_t *server;

static const int results[] = {0, TH_HELD, TH_ERETRY, TH_EPERM, TH_ENOMEM, TH_ESHUTDOWN, 0, TH_EIO};

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static size_t output_bytes;

static void on_output(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx;
    (void)p;
    output_bytes += n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    th_log_configure(TH_LOG_OFF, TH_LOG_JSON);
    struct th_otlp_grpc_cfg cfg;
    th_otlp_grpc_cfg_default(&cfg);
    cfg.max_recv_msg_size_mib = 1;
    cfg.max_concurrent_streams = 16;
    if (th_otlp_grpc_server_create(&cfg, &sink, NULL, &server) != 0) {
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t sel = data[0];
    data++;
    size--;
    pipeline_result = results[(sel >> 1) & 7];
    size_t chunk = sel >> 4; /* 0: everything in one read */
    th__otlp_grpc_session_t *ss = NULL;
    if (th__otlp_grpc_session_create(server, on_output, NULL, &ss) != 0) {
        abort();
    }
    /* The server's own SETTINGS go out first, whatever the client sends. */
    if (output_bytes == 0) {
        abort();
    }
    int ret = 0;
    if (sel & 1) {
        ret = th__otlp_grpc_session_feed(ss, preface, sizeof(preface) - 1);
    }
    while (ret == 0 && size > 0) {
        size_t n = chunk ? TH_MIN(chunk, size) : size;
        ret = th__otlp_grpc_session_feed(ss, data, n);
        data += n;
        size -= n;
    }
    if (ret != 0 && ret != TH_EIO) {
        abort();
    }
    th__otlp_grpc_session_destroy(ss);
    output_bytes = 0;
    return 0;
}
