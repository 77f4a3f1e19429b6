/*
 * The shared capped decompressor (collector/decompress.c) and the shared google.rpc.Status
 * builder (collector/rpc_status.h): round trips of every codec at sizes around the cap, the
 * cap itself, raw deflate under "deflate", several gzip members and zstd frames, trailing
 * bytes (refused after gzip, ignored after zlib), truncation, a zstd window over the limit,
 * TH_CODEC_NONE; and the Status bytes being the same whether an OTLP/HTTP body or a gRPC
 * trailer carries them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zstd.h>

#include "th/arena.h"
#include "th/base64.h"
#include "th/decompress.h"
#include "th/grpc.h"
#include "th/otlp.h"
#include "collector/rpc_status.h"

/* Words from a small vocabulary in a pseudo-random order: compressible, not trivially. */
static uint8_t *sample(size_t n)
{
    static const char *const words[] = {"span ", "trace ",        "http.route ", "GET ",
                                        "200 ",  "service.name ", "checkout "};
    uint8_t *p = malloc(n + 16);
    size_t len = 0;
    for (uint32_t x = 7; len < n; x = x * 1664525 + 1013904223) {
        const char *w = words[(x >> 24) % (sizeof(words) / sizeof(words[0]))];
        size_t wl = strlen(w);
        memcpy(p + len, w, wl);
        len += wl;
    }
    return p;
}

/* Compress with the gRPC framer (gzip, zlib or zstd) and drop the 5-byte frame prefix;
 * raw deflate is the zlib stream without its 2-byte header and 4-byte Adler-32. */
static uint8_t *compress_as(enum th_codec c, bool raw, const uint8_t *in, size_t n, size_t *len)
{
    const char *enc = c == TH_CODEC_GZIP ? "gzip" : c == TH_CODEC_ZSTD ? "zstd" : "deflate";
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(th_grpc_frame(enc, in, n, &frame, &flen), 0);
    size_t skip = 5 + (raw ? 2 : 0);
    *len = flen - skip - (raw ? 4 : 0);
    uint8_t *out = malloc(*len + 1);
    memcpy(out, frame + skip, *len);
    th_free(frame);
    return out;
}

static void expect(enum th_codec c, const uint8_t *in, size_t in_len, size_t max_out,
                   const uint8_t *want, size_t want_len)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    char err[128];
    assert_int_equal(th_decompress(c, in, in_len, max_out, &out, &out_len, err, sizeof(err)), 0);
    assert_non_null(out);
    assert_int_equal(out_len, want_len);
    if (want_len) {
        assert_memory_equal(out, want, want_len);
    }
    assert_string_equal(err, "");
    th_free(out);
}

static void expect_fail(enum th_codec c, const uint8_t *in, size_t in_len, size_t max_out, int want)
{
    uint8_t *out = (uint8_t *)"untouched";
    size_t out_len = 0;
    char err[128] = "";
    assert_int_equal(th_decompress(c, in, in_len, max_out, &out, &out_len, err, sizeof(err)), want);
    assert_string_equal((const char *)out, "untouched");
    if (want != TH_ENOMEM) {
        assert_true(err[0] != '\0');
    }
}

static void test_round_trips_and_cap(void **state)
{
    (void)state;
    const struct {
        enum th_codec c;
        bool raw; /* raw deflate rather than zlib */
    } forms[] = {{TH_CODEC_GZIP, false},
                 {TH_CODEC_DEFLATE, false},
                 {TH_CODEC_DEFLATE, true},
                 {TH_CODEC_ZSTD, false}};
    const size_t sizes[] = {0, 1, 1000, 16 * 1024, 70000, 1 << 20};
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            uint8_t *plain = sample(n);
            size_t clen;
            uint8_t *comp = compress_as(forms[f].c, forms[f].raw, plain, n, &clen);
            expect(forms[f].c, comp, clen, n, plain, n); /* exactly at the cap */
            expect(forms[f].c, comp, clen, n * 3 + 7, plain, n);
            if (n > 0) {
                expect_fail(forms[f].c, comp, clen, n - 1, TH_E2BIG);
            }
            if (clen > 4) {
                expect_fail(forms[f].c, comp, clen - 3, n, TH_EDECODE); /* truncated */
            }
            free(comp);
            free(plain);
        }
    }
}

static void test_members_frames_and_trailers(void **state)
{
    (void)state;
    const uint8_t a[] = "first member ", b[] = "second member";
    size_t la, lb;
    uint8_t *ga = compress_as(TH_CODEC_GZIP, false, a, sizeof(a) - 1, &la);
    uint8_t *gb = compress_as(TH_CODEC_GZIP, false, b, sizeof(b) - 1, &lb);
    uint8_t two[512];
    memcpy(two, ga, la);
    memcpy(two + la, gb, lb);
    expect(TH_CODEC_GZIP, two, la + lb, 100, (const uint8_t *)"first member second member", 26);
    /* Garbage after a gzip stream is refused... */
    memcpy(two + la, "junk", 4);
    expect_fail(TH_CODEC_GZIP, two, la + 4, 100, TH_EDECODE);
    /* ...after a zlib stream it is ignored. */
    size_t lz;
    uint8_t *za = compress_as(TH_CODEC_DEFLATE, false, a, sizeof(a) - 1, &lz);
    memcpy(two, za, lz);
    memcpy(two + lz, "junk", 4);
    expect(TH_CODEC_DEFLATE, two, lz + 4, 100, a, sizeof(a) - 1);
    /* Two zstd frames. */
    size_t f1, f2;
    uint8_t *z1 = compress_as(TH_CODEC_ZSTD, false, a, sizeof(a) - 1, &f1);
    uint8_t *z2 = compress_as(TH_CODEC_ZSTD, false, b, sizeof(b) - 1, &f2);
    memcpy(two, z1, f1);
    memcpy(two + f1, z2, f2);
    expect(TH_CODEC_ZSTD, two, f1 + f2, 100, (const uint8_t *)"first member second member", 26);
    free(ga);
    free(gb);
    free(za);
    free(z1);
    free(z2);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_fail(TH_CODEC_GZIP, (const uint8_t *)"", 0, 10, TH_EDECODE);
    expect_fail(TH_CODEC_ZSTD, (const uint8_t *)"garbage!", 8, 10, TH_EDECODE);
    expect_fail(TH_CODEC_DEFLATE, (const uint8_t *)"\xff\xff\xff\xff", 4, 10, TH_EDECODE);
    expect_fail(TH_CODEC_NONE, (const uint8_t *)"x", 1, 10, TH_EINVAL);
    /* A zstd frame that asks for a 256 MiB window is refused before any memory goes. */
    size_t n = 1000;
    uint8_t *plain = sample(n);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 28);
    ZSTD_CCtx_setPledgedSrcSize(cc, ZSTD_CONTENTSIZE_UNKNOWN);
    uint8_t out[2048];
    ZSTD_outBuffer ob = {out, sizeof(out), 0};
    ZSTD_inBuffer ib = {plain, n, 0};
    /* Fed as a stream, so the size is unknown and the window stays as asked. */
    assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue)));
    ZSTD_inBuffer none = {NULL, 0, 0};
    assert_int_equal(ZSTD_compressStream2(cc, &ob, &none, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    expect_fail(TH_CODEC_ZSTD, out, ob.pos, 1u << 20, TH_E2BIG);
    free(plain);
}

/* The same Status bytes in an OTLP/HTTP body and in grpc-status-details-bin. */
static void test_status_same_both_ways(void **state)
{
    (void)state;
    const int64_t delays_s[] = {-1, 5, 30};
    for (size_t i = 0; i < sizeof(delays_s) / sizeof(delays_s[0]); i++) {
        th_buf_t body;
        memset(&body, 0, sizeof(body));
        int s = (int)delays_s[i];
        assert_int_equal(th_otlp_encode_status(false, 14, "server overloaded", s, &body), 0);
        th_arena_t *arena = th_arena_create(4096, 0);
        char *b64 = th_grpc_status_details_encode(arena, 14, "server overloaded",
                                                  s > 0 ? s * 1000000000ll : -1);
        assert_non_null(b64);
        char want[256];
        size_t wl = th_base64_encode(body.ptr, body.len, want, false);
        want[wl] = '\0';
        assert_string_equal(b64, want);
        int64_t back = 0;
        assert_int_equal(th_grpc_status_details_retry(b64, strlen(b64), &back), 0);
        assert_true(back == (s > 0 ? s * 1000000000ll : -1));
        th_arena_destroy(arena);
        th_buf_free(&body);
    }
    /* Sub-second delays keep their nanoseconds. */
    struct th__rpc_status m;
    th__rpc_status_init(&m, 8, NULL, 1500000000ll);
    assert_string_equal(m.st.message, "");
    assert_int_equal(m.st.n_details, 1);
    Google__Rpc__RetryInfo *ri =
        google__rpc__retry_info__unpack(NULL, m.any.value.len, m.any.value.data);
    assert_non_null(ri);
    assert_int_equal(ri->retry_delay->seconds, 1);
    assert_int_equal(ri->retry_delay->nanos, 500000000);
    google__rpc__retry_info__free_unpacked(ri, NULL);
    th__rpc_status_init(&m, 3, "bad", -1);
    assert_int_equal(m.st.n_details, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips_and_cap),
        cmocka_unit_test(test_members_frames_and_trailers),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_status_same_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
