/*
 * libFuzzer target: OTLP protobuf decoding (th_otlp_decode_pb). Whatever the input, decoding
 * must return cleanly (ASan/UBSan watch memory, the stack and arithmetic). When it succeeds
 * the request must survive the JSON path: encode, decode again, and encode to the same text.
 * Differential: the hand-written unpacker (th__otlp_unpack) runs on every input, checked or
 * not, and must return cleanly; when the validating walk accepts the input it must decode
 * it, to exactly what protobuf-c's generic unpack builds (compared packed).
 *
 *   fuzz_otlp_pb -max_total_time=60 tests/fuzz/otlp_pb/corpus
 */
#include <stdlib.h>
#include <string.h>

#include "collector/otlp_internal.h"
#include "th/otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b || protobuf_c_message_pack(m, b) != *len) {
        abort();
    }
    return b;
}

static void differential(const uint8_t *data, size_t size)
{
    struct th_otlp_limits l;
    th__otlp_limits_resolve(NULL, size, &l);
    th_arena_t *a = th_arena_create(0, 0);
    th_arena_t *b = th_arena_create(0, 0);
    if (!a || !b) {
        abort();
    }
    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, a, (size_t)l.max_arena);
    th_otlp_request_t *mine = NULL;
    int rc = th__otlp_unpack(data, size, &mem, &mine);
    if (rc != 0 && rc != TH_EDECODE && rc != TH_ENOMEM) {
        abort();
    }
    uint64_t estimate;
    if (th__otlp_prewalk(data, size, &l, NULL, &estimate) == 0) {
        if (rc == TH_EDECODE) {
            abort(); /* the walk accepted what the unpacker cannot read */
        }
        ProtobufCAllocator alloc;
        th_arena_pbc_allocator(b, &alloc);
        th_otlp_request_t *theirs =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                &alloc, size, data);
        /* protobuf-c 1.4 fails on one valid input (two AnyValues for one key, neither with a
         * member: its merge looks up oneof case 0); otherwise both must agree. */
        if (rc == 0 && theirs) {
            size_t n1;
            size_t n2;
            uint8_t *p1 = pack(&mine->base, &n1);
            uint8_t *p2 = pack(&theirs->base, &n2);
            if (n1 != n2 || memcmp(p1, p2, n1) != 0) {
                abort();
            }
            free(p1);
            free(p2);
        }
    }
    th_arena_destroy(a);
    th_arena_destroy(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    differential(data, size);
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
