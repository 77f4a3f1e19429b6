/*
 * The gRPC wire helpers (collector/grpc_wire.c): Length-Prefixed-Message reassembly split at
 * every byte boundary, the max_len refusal, a second message, compression round trips and
 * caps, the google.rpc.Status test vector of otlp.md §1.6 both ways, grpc-timeout and
 * grpc-message percent coding, the status table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "th/grpc.h"

/* otlp.md §1.6. */
static const char VECTOR_B64[] = "CA4SEXNlcnZlciBvdmVybG9hZGVkGjAKKHR5cGUuZ29vZ2xlYXBpcy5jb20vZ29v"
                                 "Z2xlLnJwYy5SZXRyeUluZm8SBAoCCAU";

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        /* Half text, half noise: compressible but not trivially. */
        p[i] = (i & 64) ? (uint8_t)(x >> 16) : (uint8_t)('a' + i % 26);
    }
    return p;
}

static void test_status_names_and_retry_table(void **state)
{
    (void)state;
    assert_string_equal(th_grpc_status_name(0), "OK");
    assert_string_equal(th_grpc_status_name(14), "UNAVAILABLE");
    assert_string_equal(th_grpc_status_name(16), "UNAUTHENTICATED");
    assert_string_equal(th_grpc_status_name(17), "UNKNOWN");
    assert_string_equal(th_grpc_status_name(-1), "UNKNOWN");
    const int yes[] = {1, 4, 10, 11, 14, 15};
    const int no[] = {0, 2, 3, 5, 6, 7, 9, 12, 13, 16};
    for (size_t i = 0; i < TH_ARRAY_SIZE(yes); i++) {
        assert_true(th_grpc_status_retryable(yes[i], false));
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(no); i++) {
        assert_false(th_grpc_status_retryable(no[i], true));
    }
    assert_false(th_grpc_status_retryable(TH_GRPC_RESOURCE_EXHAUSTED, false));
    assert_true(th_grpc_status_retryable(TH_GRPC_RESOURCE_EXHAUSTED, true));
}

static void test_timeout(void **state)
{
    (void)state;
    int64_t ns = 0;
    assert_int_equal(th_grpc_timeout_parse("1S", 2, &ns), 0);
    assert_int_equal(ns, 1000000000);
    assert_int_equal(th_grpc_timeout_parse("250m", 4, &ns), 0);
    assert_int_equal(ns, 250000000);
    assert_int_equal(th_grpc_timeout_parse("7u", 2, &ns), 0);
    assert_int_equal(ns, 7000);
    assert_int_equal(th_grpc_timeout_parse("99999999n", 9, &ns), 0);
    assert_int_equal(ns, 99999999);
    assert_int_equal(th_grpc_timeout_parse("2M", 2, &ns), 0);
    assert_int_equal(ns, 120000000000LL);
    assert_int_equal(th_grpc_timeout_parse("99999999H", 9, &ns), 0);
    assert_int_equal(ns, INT64_MAX); /* saturates */
    assert_int_equal(th_grpc_timeout_parse("0S", 2, &ns), 0);
    assert_int_equal(ns, 0);
    /* Nine digits, no unit, bad unit, sign, space, empty. */
    assert_int_equal(th_grpc_timeout_parse("123456789S", 10, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse("10", 2, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse("10s", 3, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse("-1S", 3, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse(" 1S", 3, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse("S", 1, &ns), TH_EINVAL);
    assert_int_equal(th_grpc_timeout_parse("", 0, &ns), TH_EINVAL);

    char buf[16];
    size_t n = th_grpc_timeout_format(1500, buf);
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "1500n");
    th_grpc_timeout_format(10LL * 1000000000, buf);
    assert_string_equal(buf, "10000000u");
    th_grpc_timeout_format(0, buf);
    assert_string_equal(buf, "0n");
    th_grpc_timeout_format(INT64_MAX, buf);
    assert_true(strlen(buf) <= 9);
    /* Format then parse never gives less than asked, and not much more. */
    const int64_t samples[] = {
        1, 999, 123456789, 30LL * 1000000000, 86400LL * 1000000000, INT64_MAX / 3};
    for (size_t i = 0; i < TH_ARRAY_SIZE(samples); i++) {
        n = th_grpc_timeout_format(samples[i], buf);
        assert_int_equal(th_grpc_timeout_parse(buf, n, &ns), 0);
        assert_true(ns >= samples[i]);
        assert_true(ns - samples[i] <= samples[i] / 50000 + 1); /* 5 significant digits at worst */
    }
}

static void test_message_coding(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char *e = th_grpc_message_encode(a, "100% bad\nline \xc3\xa9");
    assert_string_equal(e, "100%25 bad%0Aline %C3%A9");
    char *d = th_grpc_message_decode(a, e, strlen(e));
    assert_string_equal(d, "100% bad\nline \xc3\xa9");
    /* Invalid escapes stay as they are; lowercase hex decodes. */
    d = th_grpc_message_decode(a, "50%zz%4%c3%a9%", 14);
    assert_string_equal(d, "50%zz%4\xc3\xa9%");
    assert_string_equal(th_grpc_message_encode(a, ""), "");
    /* Every byte round trips. */
    char all[256];
    for (int i = 1; i < 256; i++) {
        all[i - 1] = (char)i;
    }
    all[255] = '\0';
    e = th_grpc_message_encode(a, all);
    for (const char *p = e; *p; p++) {
        assert_true(*p >= 0x20 && *p <= 0x7e);
    }
    d = th_grpc_message_decode(a, e, strlen(e));
    assert_memory_equal(d, all, 256);
    th_arena_destroy(a);
}

static void test_status_details_vector(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char *s = th_grpc_status_details_encode(a, 14, "server overloaded", 5LL * 1000000000);
    assert_string_equal(s, VECTOR_B64);
    int64_t d = 0;
    assert_int_equal(th_grpc_status_details_retry(VECTOR_B64, strlen(VECTOR_B64), &d), 0);
    assert_int_equal(d, 5LL * 1000000000);
    /* Padded base64 is accepted too (the vector's 83 bytes need one '='). */
    char padded[sizeof(VECTOR_B64) + 2];
    snprintf(padded, sizeof(padded), "%s=", VECTOR_B64);
    assert_int_equal(th_grpc_status_details_retry(padded, strlen(padded), &d), 0);
    assert_int_equal(d, 5LL * 1000000000);

    /* Sub-second delays, and a Status without RetryInfo. */
    s = th_grpc_status_details_encode(a, 14, "x", 1500000000);
    assert_int_equal(th_grpc_status_details_retry(s, strlen(s), &d), 0);
    assert_int_equal(d, 1500000000);
    s = th_grpc_status_details_encode(a, 8, "too big", -1);
    assert_int_equal(th_grpc_status_details_retry(s, strlen(s), &d), 0);
    assert_int_equal(d, -1);
    s = th_grpc_status_details_encode(a, 14, "now", 0);
    assert_int_equal(th_grpc_status_details_retry(s, strlen(s), &d), 0);
    assert_int_equal(d, 0);
    /* Not base64, or base64 of something that is not a Status. */
    assert_int_equal(th_grpc_status_details_retry("!!!!", 4, &d), TH_EDECODE);
    assert_int_equal(d, -1);
    assert_int_equal(th_grpc_status_details_retry("/w", 2, &d), TH_EDECODE);
    assert_int_equal(th_grpc_status_details_retry("", 0, &d), 0);
    assert_int_equal(d, -1);
    th_arena_destroy(a);
}

/* Feed a framed message in every two-piece split and in single bytes. */
static void test_reader_every_split(void **state)
{
    (void)state;
    const size_t len = 300;
    uint8_t *msg = pattern(len);
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(th_grpc_frame(NULL, msg, len, &frame, &flen), 0);
    assert_int_equal(flen, len + 5);
    assert_int_equal(frame[0], 0);
    assert_int_equal(frame[3], 1);
    assert_int_equal(frame[4], 300 - 256);
    for (size_t cut = 0; cut <= flen; cut++) {
        struct th_grpc_reader r;
        th_grpc_reader_init(&r, len);
        assert_int_equal(th_grpc_reader_feed(&r, frame, cut), 0);
        size_t got_len;
        bool comp;
        if (cut < flen) {
            assert_int_equal(r.messages, 0);
            assert_null(th_grpc_reader_take(&r, &got_len, &comp));
        }
        assert_int_equal(th_grpc_reader_feed(&r, frame + cut, flen - cut), 0);
        assert_int_equal(r.messages, 1);
        uint8_t *m = th_grpc_reader_take(&r, &got_len, &comp);
        assert_non_null(m);
        assert_int_equal(got_len, len);
        assert_false(comp);
        assert_memory_equal(m, msg, len);
        th_free(m);
        assert_null(th_grpc_reader_take(&r, &got_len, &comp));
        th_grpc_reader_free(&r);
    }
    struct th_grpc_reader r;
    th_grpc_reader_init(&r, len);
    for (size_t i = 0; i < flen; i++) {
        assert_int_equal(th_grpc_reader_feed(&r, frame + i, 1), 0);
        assert_int_equal(r.messages, i + 1 == flen ? 1 : 0);
    }
    /* A byte after the one message is a second message: refused. */
    assert_int_equal(th_grpc_reader_feed(&r, frame, 1), TH_EINVAL);
    th_grpc_reader_free(&r);
    free(msg);
    th_free(frame);
}

static void test_reader_limits(void **state)
{
    (void)state;
    struct th_grpc_reader r;
    /* Exactly max_len passes; one more is refused before anything is allocated. */
    uint8_t hdr[5] = {0, 0, 0, 0x10, 0x00};
    th_grpc_reader_init(&r, 4096);
    assert_int_equal(th_grpc_reader_feed(&r, hdr, 5), 0);
    assert_non_null(r.msg);
    th_grpc_reader_free(&r);
    hdr[4] = 1;
    th_grpc_reader_init(&r, 4096);
    assert_int_equal(th_grpc_reader_feed(&r, hdr, 5), TH_E2BIG);
    assert_null(r.msg);
    th_grpc_reader_free(&r);
    /* A 4 GiB announcement against a 4 MiB cap. */
    uint8_t huge[5] = {0, 0xff, 0xff, 0xff, 0xff};
    th_grpc_reader_init(&r, 4 << 20);
    assert_int_equal(th_grpc_reader_feed(&r, huge, 5), TH_E2BIG);
    th_grpc_reader_free(&r);
    /* A flag other than 0 and 1. */
    uint8_t bad[5] = {2, 0, 0, 0, 1};
    th_grpc_reader_init(&r, 100);
    assert_int_equal(th_grpc_reader_feed(&r, bad, 5), TH_EINVAL);
    th_grpc_reader_free(&r);
    /* An empty message is complete at once; a compressed flag is reported. */
    uint8_t empty[5] = {1, 0, 0, 0, 0};
    th_grpc_reader_init(&r, 100);
    assert_int_equal(th_grpc_reader_feed(&r, empty, 5), 0);
    assert_int_equal(r.messages, 1);
    size_t len = 99;
    bool comp = false;
    uint8_t *m = th_grpc_reader_take(&r, &len, &comp);
    assert_non_null(m);
    assert_int_equal(len, 0);
    assert_true(comp);
    th_free(m);
    /* Two messages in one feed. */
    uint8_t two[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    th_grpc_reader_free(&r);
    th_grpc_reader_init(&r, 100);
    assert_int_equal(th_grpc_reader_feed(&r, two, 10), TH_EINVAL);
    th_grpc_reader_free(&r);
}

static void roundtrip(const char *enc, size_t len)
{
    uint8_t *msg = pattern(len);
    uint8_t *frame = NULL, *plain = NULL;
    size_t flen = 0, plen = 0;
    assert_int_equal(th_grpc_frame(enc, msg, len, &frame, &flen), 0);
    bool identity = !enc || !strcmp(enc, "identity");
    assert_int_equal(frame[0], identity ? 0 : 1);
    size_t body =
        (size_t)frame[1] << 24 | (size_t)frame[2] << 16 | (size_t)frame[3] << 8 | frame[4];
    assert_int_equal(body + 5, flen);
    struct th_grpc_reader r;
    th_grpc_reader_init(&r, flen);
    assert_int_equal(th_grpc_reader_feed(&r, frame, flen), 0);
    size_t mlen;
    bool comp;
    uint8_t *m = th_grpc_reader_take(&r, &mlen, &comp);
    assert_int_equal(th_grpc_decompress(enc, m, mlen, len, &plain, &plen), 0);
    assert_int_equal(plen, len);
    if (len) {
        assert_memory_equal(plain, msg, len);
    }
    th_free(plain);
    /* One byte less of room is refused. */
    if (len > 0) {
        plain = (uint8_t *)1;
        assert_int_equal(th_grpc_decompress(enc, m, mlen, len - 1, &plain, &plen), TH_E2BIG);
        assert_null(plain);
    }
    /* Truncated compressed input is corrupt. */
    if (!identity && mlen > 4) {
        assert_int_equal(th_grpc_decompress(enc, m, mlen - 3, len, &plain, &plen), TH_EDECODE);
    }
    th_free(m);
    th_grpc_reader_free(&r);
    th_free(frame);
    free(msg);
}

static void test_compression_roundtrips(void **state)
{
    (void)state;
    const char *encs[] = {NULL, "identity", "gzip", "deflate", "zstd"};
    const size_t sizes[] = {0, 1, 100, 70000, 1 << 20};
    for (size_t e = 0; e < TH_ARRAY_SIZE(encs); e++) {
        for (size_t s = 0; s < TH_ARRAY_SIZE(sizes); s++) {
            roundtrip(encs[e], sizes[s]);
        }
    }
    uint8_t *out = NULL;
    size_t olen;
    assert_int_equal(th_grpc_frame("snappy", (const uint8_t *)"x", 1, &out, &olen),
                     TH_EUNSUPPORTED);
    assert_int_equal(th_grpc_decompress("snappy", (const uint8_t *)"x", 1, 10, &out, &olen),
                     TH_EUNSUPPORTED);
    assert_int_equal(th_grpc_decompress("gzip", (const uint8_t *)"garbage!", 8, 10, &out, &olen),
                     TH_EDECODE);
    assert_int_equal(th_grpc_decompress("zstd", (const uint8_t *)"garbage!", 8, 10, &out, &olen),
                     TH_EDECODE);
}

/* A gzip bomb: 64 MiB of zeros in ~64 KiB, against a 4 MiB cap. */
static void test_bomb_refused(void **state)
{
    (void)state;
    size_t big = 64u << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(th_grpc_frame("gzip", zeros, big, &frame, &flen), 0);
    assert_true(flen < 200 * 1024);
    uint8_t *out = NULL;
    size_t olen = 0;
    assert_int_equal(th_grpc_decompress("gzip", frame + 5, flen - 5, 4u << 20, &out, &olen),
                     TH_E2BIG);
    th_free(frame);
    size_t zb = ZSTD_compressBound(big);
    uint8_t *z = malloc(zb);
    size_t zn = ZSTD_compress(z, zb, zeros, big, 3);
    assert_false(ZSTD_isError(zn));
    assert_int_equal(th_grpc_decompress("zstd", z, zn, 4u << 20, &out, &olen), TH_E2BIG);
    free(z);
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_and_retry_table),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_message_coding),
        cmocka_unit_test(test_status_details_vector),
        cmocka_unit_test(test_reader_every_split),
        cmocka_unit_test(test_reader_limits),
        cmocka_unit_test(test_compression_roundtrips),
        cmocka_unit_test(test_bomb_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
