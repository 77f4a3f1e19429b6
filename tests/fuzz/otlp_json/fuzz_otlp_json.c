/*
 * libFuzzer target: OTLP/JSON decoding (th_otlp_decode_json). Whatever the input, decoding
 * must return cleanly. When it succeeds, encoding and decoding again must give the same
 * message (compared as packed protobuf bytes) and the same JSON text.
 *
 *   fuzz_otlp_json -dict=tests/fuzz/otlp_json/otlp_json.dict -max_total_time=60 \
 *       tests/fuzz/otlp_json/corpus
 */
#include <stdlib.h>
#include <string.h>

#include "th/otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *pack(const th_otlp_request_t *req, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b) {
        abort();
    }
    protobuf_c_message_pack(&req->base, b);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        return 0;
    }
    th_otlp_request_t *req = NULL;
    struct th_otlp_error err;
    int rc = th_otlp_decode_json(data, size, NULL, a, &req, &err);
    if (rc != 0 && rc != TH_EDECODE && rc != TH_E2BIG && rc != TH_ENOMEM) {
        abort();
    }
    if (rc != 0 && err.msg[0] == '\0') {
        abort();
    }
    if (rc == 0) {
        th_buf_t j1 = {0};
        th_buf_t j2 = {0};
        th_otlp_request_t *again = NULL;
        if (th_otlp_encode_json(req, &j1) != 0 ||
            th_otlp_decode_json(j1.ptr, j1.len, NULL, a, &again, &err) != 0 ||
            th_otlp_encode_json(again, &j2) != 0) {
            abort();
        }
        if (j1.len != j2.len || memcmp(j1.ptr, j2.ptr, j1.len) != 0) {
            abort();
        }
        size_t n1;
        size_t n2;
        uint8_t *b1 = pack(req, &n1);
        uint8_t *b2 = pack(again, &n2);
        if (n1 != n2 || memcmp(b1, b2, n1) != 0) {
            abort();
        }
        free(b1);
        free(b2);
        th_buf_free(&j1);
        th_buf_free(&j2);
    }
    th_arena_destroy(a);
    return 0;
}
