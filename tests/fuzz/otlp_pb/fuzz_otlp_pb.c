/*
 * libFuzzer target: OTLP protobuf decoding (th_otlp_decode_pb). Whatever the input, decoding
 * must return cleanly (ASan/UBSan watch memory, the stack and arithmetic). When it succeeds
 * the request must survive the JSON path: encode, decode again, and encode to the same text.
 *
 *   fuzz_otlp_pb -max_total_time=60 tests/fuzz/otlp_pb/corpus
 */
#include <stdlib.h>
#include <string.h>

#include "th/otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        return 0;
    }
    th_otlp_request_t *req = NULL;
    struct th_otlp_error err;
    int rc = th_otlp_decode_pb(data, size, NULL, a, &req, &err);
    if (rc != 0 && rc != TH_EDECODE && rc != TH_E2BIG && rc != TH_ENOMEM) {
        abort(); /* only the documented results */
    }
    if (rc != 0 && err.msg[0] == '\0') {
        abort(); /* every failure says why */
    }
    if (rc == 0) {
        th_buf_t j1 = {0};
        th_buf_t j2 = {0};
        th_otlp_request_t *again = NULL;
        if (th_otlp_encode_json(req, &j1) != 0) {
            abort();
        }
        /* Accepted protobuf is always valid OTLP/JSON once encoded... */
        if (th_otlp_decode_json(j1.ptr, j1.len, NULL, a, &again, &err) != 0) {
            abort();
        }
        /* ...and encodes to the same text (unknown protobuf fields are not in JSON). */
        if (th_otlp_encode_json(again, &j2) != 0 || j1.len != j2.len ||
            memcmp(j1.ptr, j2.ptr, j1.len) != 0) {
            abort();
        }
        th_buf_free(&j1);
        th_buf_free(&j2);
    }
    th_arena_destroy(a);
    return 0;
}
