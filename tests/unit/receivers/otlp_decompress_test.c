/*
 * The OTLP/HTTP receiver's decompressor: Content-Encoding names, round trips through gzip
 * (one and several members), zlib, raw deflate and zstd (one and several frames), corrupt,
 * truncated and trailing input, the exact size cap, gzip and zstd bombs with the memory they
 * are allowed to cost, and allocation failure at every step.
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

#include "receivers/otlp/otlp_decompress.h"

/* ---- Helpers: compress with the libraries directly ------------------------------------ */

/* window_bits: 31 gzip, 15 zlib, -15 raw deflate. */
static uint8_t *zcompress(const uint8_t *in, size_t len, int window_bits, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, len) + 64;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

static uint8_t *zstd_compress(const uint8_t *in, size_t len, size_t *out_len)
{
    size_t cap = ZSTD_compressBound(len);
    uint8_t *out = malloc(cap);
    size_t n = ZSTD_compress(out, cap, in, len, 3);
    assert_false(ZSTD_isError(n));
    *out_len = n;
    return out;
}

/* Text with some structure, like a JSON export body. */
static uint8_t *sample(size_t len)
{
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)("{\"resourceSpans\":[{\"spanId\":\"abc\"}]}"[i % 36] + (i / 997) % 3);
    }
    return p;
}

static void expect_roundtrip(enum th_otlp_encoding enc, const uint8_t *comp, size_t clen,
                             const uint8_t *want, size_t wlen)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    char err[200];
    int ret = th_otlp_decompress(enc, comp, clen, wlen, &out, &out_len, err, sizeof(err));
    if (ret != 0) {
        fail_msg("decompress failed: %d %s", ret, err);
    }
    assert_int_equal(out_len, wlen);
    assert_memory_equal(out, want, wlen);
    th_free(out);
}

/* ---- Encoding names -------------------------------------------------------------------- */

static void test_encoding_parse(void **state)
{
    (void)state;
    enum th_otlp_encoding e;
    assert_int_equal(th_otlp_encoding_parse("", 0, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_IDENTITY);
    assert_int_equal(th_otlp_encoding_parse(" identity ", 10, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_IDENTITY);
    assert_int_equal(th_otlp_encoding_parse("GZip", 4, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_GZIP);
    assert_int_equal(th_otlp_encoding_parse("x-gzip", 6, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_GZIP);
    assert_int_equal(th_otlp_encoding_parse("deflate", 7, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_DEFLATE);
    assert_int_equal(th_otlp_encoding_parse("zlib", 4, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_ZLIB);
    assert_int_equal(th_otlp_encoding_parse("zstd\t", 5, &e), 0);
    assert_int_equal(e, TH_OTLP_ENC_ZSTD);
    /* Only the length given counts: "gzipX" cut at 4 is gzip. */
    assert_int_equal(th_otlp_encoding_parse("gzipX", 4, &e), 0);
    assert_int_equal(th_otlp_encoding_parse("snappy", 6, &e), TH_EUNSUPPORTED);
    assert_int_equal(th_otlp_encoding_parse("lz4", 3, &e), TH_EUNSUPPORTED);
    assert_int_equal(th_otlp_encoding_parse("br", 2, &e), TH_EINVAL);
    assert_int_equal(th_otlp_encoding_parse("gzip, zstd", 10, &e), TH_EINVAL);
    assert_int_equal(th_otlp_encoding_parse("gzi", 3, &e), TH_EINVAL);
    assert_string_equal(th_otlp_encoding_name(TH_OTLP_ENC_ZSTD), "zstd");
}

/* ---- Round trips ----------------------------------------------------------------------- */

static void test_gzip_roundtrip(void **state)
{
    (void)state;
    size_t lens[] = {1, 100, 70000, 300000};
    for (size_t i = 0; i < TH_ARRAY_SIZE(lens); i++) {
        uint8_t *plain = sample(lens[i]);
        size_t clen;
        uint8_t *comp = zcompress(plain, lens[i], 31, &clen);
        expect_roundtrip(TH_OTLP_ENC_GZIP, comp, clen, plain, lens[i]);
        free(comp);
        free(plain);
    }
}

static void test_gzip_members(void **state)
{
    (void)state;
    uint8_t *plain = sample(5000);
    size_t l1, l2;
    uint8_t *a = zcompress(plain, 2000, 31, &l1);
    uint8_t *b = zcompress(plain + 2000, 3000, 31, &l2);
    uint8_t *both = malloc(l1 + l2 + 3);
    memcpy(both, a, l1);
    memcpy(both + l1, b, l2);
    expect_roundtrip(TH_OTLP_ENC_GZIP, both, l1 + l2, plain, 5000);

    /* Bytes after the last member that are not another member: rejected, as Go does. */
    memcpy(both + l1 + l2, "xyz", 3);
    uint8_t *out = NULL;
    size_t out_len;
    char err[200];
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_GZIP, both, l1 + l2 + 3, 10000, &out, &out_len,
                                        err, sizeof(err)),
                     TH_EDECODE);
    assert_non_null(strstr(err, "trailing"));
    assert_null(out);
    free(a);
    free(b);
    free(both);
    free(plain);
}

static void test_deflate_zlib_and_raw(void **state)
{
    (void)state;
    uint8_t *plain = sample(40000);
    size_t clen;
    uint8_t *z = zcompress(plain, 40000, 15, &clen);
    expect_roundtrip(TH_OTLP_ENC_DEFLATE, z, clen, plain, 40000);
    expect_roundtrip(TH_OTLP_ENC_ZLIB, z, clen, plain, 40000);
    free(z);
    /* Raw deflate (what some clients send as "deflate") is the fallback. */
    uint8_t *raw = zcompress(plain, 40000, -15, &clen);
    expect_roundtrip(TH_OTLP_ENC_DEFLATE, raw, clen, plain, 40000);
    free(raw);
    free(plain);
}

static void test_zstd_roundtrip_and_frames(void **state)
{
    (void)state;
    uint8_t *plain = sample(200000);
    size_t l1, l2;
    uint8_t *a = zstd_compress(plain, 150000, &l1);
    expect_roundtrip(TH_OTLP_ENC_ZSTD, a, l1, plain, 150000);
    uint8_t *b = zstd_compress(plain + 150000, 50000, &l2);
    uint8_t *both = malloc(l1 + l2);
    memcpy(both, a, l1);
    memcpy(both + l1, b, l2);
    expect_roundtrip(TH_OTLP_ENC_ZSTD, both, l1 + l2, plain, 200000);
    free(a);
    free(b);
    free(both);
    free(plain);
}

/* An empty payload compresses to a valid stream that decompresses to 0 bytes. */
static void test_empty_payloads(void **state)
{
    (void)state;
    size_t clen;
    uint8_t *g = zcompress((const uint8_t *)"", 0, 31, &clen);
    uint8_t *out = NULL;
    size_t out_len = 99;
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_GZIP, g, clen, 100, &out, &out_len, NULL, 0),
                     0);
    assert_non_null(out);
    assert_int_equal(out_len, 0);
    th_free(out);
    /* No bytes at all is not a gzip stream. */
    out = NULL;
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_GZIP, g, 0, 100, &out, &out_len, NULL, 0),
                     TH_EDECODE);
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_ZSTD, g, 0, 100, &out, &out_len, NULL, 0),
                     TH_EDECODE);
    /* Identity is never "decompressed". */
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_IDENTITY, (const uint8_t *)"x", 1, 100, &out,
                                        &out_len, NULL, 0),
                     TH_EINVAL);
    assert_null(out);
    free(g);
}

/* ---- Hostile input ------------------------------------------------------------------- */

static void test_corrupt_and_truncated(void **state)
{
    (void)state;
    uint8_t *plain = sample(50000);
    size_t glen, zlen, slen;
    uint8_t *g = zcompress(plain, 50000, 31, &glen);
    uint8_t *z = zcompress(plain, 50000, 15, &zlen);
    uint8_t *s = zstd_compress(plain, 50000, &slen);
    uint8_t *out = NULL;
    size_t out_len;
    char err[200];

    /* Truncated anywhere: never accepted, never a crash. */
    for (size_t cut = 1; cut < glen; cut += glen / 37 + 1) {
        assert_int_equal(
            th_otlp_decompress(TH_OTLP_ENC_GZIP, g, cut, 100000, &out, &out_len, err, sizeof(err)),
            TH_EDECODE);
    }
    for (size_t cut = 1; cut < slen; cut += slen / 37 + 1) {
        assert_int_equal(
            th_otlp_decompress(TH_OTLP_ENC_ZSTD, s, cut, 100000, &out, &out_len, err, sizeof(err)),
            TH_EDECODE);
    }
    for (size_t cut = 2; cut < zlen; cut += zlen / 37 + 1) {
        int ret =
            th_otlp_decompress(TH_OTLP_ENC_ZLIB, z, cut, 100000, &out, &out_len, err, sizeof(err));
        assert_int_equal(ret, TH_EDECODE);
    }
    assert_null(out);

    /* A flipped bit in the gzip body is caught by inflate or by the CRC. */
    g[glen / 2] ^= 0x40;
    assert_int_equal(
        th_otlp_decompress(TH_OTLP_ENC_GZIP, g, glen, 100000, &out, &out_len, err, sizeof(err)),
        TH_EDECODE);
    assert_true(strlen(err) > 0);

    /* Garbage with each decoder. */
    const uint8_t junk[] = "this is not compressed at all, just text";
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_GZIP, junk, sizeof(junk), 1000, &out, &out_len,
                                        err, sizeof(err)),
                     TH_EDECODE);
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_ZSTD, junk, sizeof(junk), 1000, &out, &out_len,
                                        err, sizeof(err)),
                     TH_EDECODE);
    assert_non_null(strstr(err, "zstd"));
    assert_int_equal(th_otlp_decompress(TH_OTLP_ENC_DEFLATE, junk, sizeof(junk), 1000, &out,
                                        &out_len, err, sizeof(err)),
                     TH_EDECODE);
    assert_null(out);
    free(g);
    free(z);
    free(s);
    free(plain);
}

static void test_cap_is_exact(void **state)
{
    (void)state;
    uint8_t *plain = sample(100000);
    size_t clen;
    uint8_t *g = zcompress(plain, 100000, 31, &clen);
    uint8_t *out = NULL;
    size_t out_len;
    char err[200];
    /* Exactly the cap passes; one byte less fails with E2BIG. */
    assert_int_equal(
        th_otlp_decompress(TH_OTLP_ENC_GZIP, g, clen, 100000, &out, &out_len, err, sizeof(err)), 0);
    assert_int_equal(out_len, 100000);
    th_free(out);
    out = NULL;
    assert_int_equal(
        th_otlp_decompress(TH_OTLP_ENC_GZIP, g, clen, 99999, &out, &out_len, err, sizeof(err)),
        TH_E2BIG);
    assert_non_null(strstr(err, "max_request_body_size"));
    assert_null(out);
    free(g);

    uint8_t *s = zstd_compress(plain, 100000, &clen);
    assert_int_equal(
        th_otlp_decompress(TH_OTLP_ENC_ZSTD, s, clen, 100000, &out, &out_len, err, sizeof(err)), 0);
    th_free(out);
    out = NULL;
    assert_int_equal(
        th_otlp_decompress(TH_OTLP_ENC_ZSTD, s, clen, 99999, &out, &out_len, err, sizeof(err)),
        TH_E2BIG);
    free(s);
    free(plain);
}

/* A counting allocator: the peak of live bytes allocated through th_malloc. */
static size_t live, peak;
static long fail_at = -1; /* the allocation number that fails, -1: none */
static long n_allocs;

static void *count_malloc(size_t n)
{
    if (fail_at >= 0 && n_allocs++ == fail_at) {
        return NULL;
    }
    size_t *p = malloc(n + 16);
    if (!p) {
        return NULL;
    }
    p[0] = n;
    live += n;
    peak = TH_MAX(peak, live);
    return (char *)p + 16;
}

static void count_free(void *q)
{
    if (!q) {
        return;
    }
    size_t *p = (size_t *)((char *)q - 16);
    live -= p[0];
    free(p);
}

static void *count_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = count_malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

static void *count_realloc(void *q, size_t n)
{
    if (!q) {
        return count_malloc(n);
    }
    size_t old = ((size_t *)((char *)q - 16))[0];
    void *p = count_malloc(n);
    if (!p) {
        return NULL;
    }
    memcpy(p, q, TH_MIN(old, n));
    count_free(q);
    return p;
}

static const struct th_mem_methods counting = {
    .malloc = count_malloc,
    .calloc = count_calloc,
    .realloc = count_realloc,
    .free = count_free,
};

static void test_bombs_stay_small(void **state)
{
    (void)state;
    /* 64 MiB of zeros: about 64 KiB of gzip, 2 KiB of zstd. */
    size_t big = (size_t)64 * 1024 * 1024;
    uint8_t *zeros = calloc(1, big);
    size_t glen, slen;
    uint8_t *g = zcompress(zeros, big, 31, &glen);
    uint8_t *s = zstd_compress(zeros, big, &slen);
    free(zeros);
    assert_true(glen < 200 * 1024);

    const size_t cap = (size_t)1024 * 1024;
    uint8_t *out = NULL;
    size_t out_len;
    char err[200];
    th_mem_set_methods(&counting);
    live = peak = 0;
    int ret = th_otlp_decompress(TH_OTLP_ENC_GZIP, g, glen, cap, &out, &out_len, err, sizeof(err));
    size_t gzip_peak = peak;
    size_t gzip_live = live;
    live = peak = 0;
    int zret = th_otlp_decompress(TH_OTLP_ENC_ZSTD, s, slen, cap, &out, &out_len, err, sizeof(err));
    size_t zstd_live = live;
    th_mem_set_methods(NULL);
    assert_int_equal(ret, TH_E2BIG);
    assert_int_equal(zret, TH_E2BIG);
    assert_null(out);
    /* The output buffer (cap + 1 at most, plus the smaller one realloc copies from) and
     * inflate's state (~44 KiB): bounded by the cap, not by the 64 MiB the bomb holds. */
    assert_true(gzip_peak <= (cap + 1) * 7 / 4 + 64 * 1024);
    assert_int_equal(gzip_live, 0);
    assert_int_equal(zstd_live, 0);
    free(g);
    free(s);
}

/* Fail allocation N for N = 0, 1, 2, ... until the operation succeeds: every failure is a
 * clean TH_ENOMEM with nothing left allocated. */
static void oom_loop(enum th_otlp_encoding enc, const uint8_t *comp, size_t clen, size_t want)
{
    for (long n = 0;; n++) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        th_mem_set_methods(&counting);
        live = 0;
        n_allocs = 0;
        fail_at = n;
        int ret = th_otlp_decompress(enc, comp, clen, want, &out, &out_len, NULL, 0);
        fail_at = -1;
        size_t left = live;
        if (ret == 0) {
            th_free(out);
        }
        th_mem_set_methods(NULL);
        if (ret == 0) {
            assert_int_equal(out_len, want);
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
        assert_int_equal(left, 0);
        assert_true(n < 100);
    }
}

static void test_oom(void **state)
{
    (void)state;
    uint8_t *plain = sample(300000);
    size_t glen, slen, zlen;
    uint8_t *g = zcompress(plain, 300000, 31, &glen);
    uint8_t *z = zcompress(plain, 300000, 15, &zlen);
    uint8_t *s = zstd_compress(plain, 300000, &slen);
    oom_loop(TH_OTLP_ENC_GZIP, g, glen, 300000);
    oom_loop(TH_OTLP_ENC_DEFLATE, z, zlen, 300000);
    /* zstd allocates its context with malloc, not th_malloc: only our buffer can fail. */
    oom_loop(TH_OTLP_ENC_ZSTD, s, slen, 300000);
    free(g);
    free(z);
    free(s);
    free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoding_parse),
        cmocka_unit_test(test_gzip_roundtrip),
        cmocka_unit_test(test_gzip_members),
        cmocka_unit_test(test_deflate_zlib_and_raw),
        cmocka_unit_test(test_zstd_roundtrip_and_frames),
        cmocka_unit_test(test_empty_payloads),
        cmocka_unit_test(test_corrupt_and_truncated),
        cmocka_unit_test(test_cap_is_exact),
        cmocka_unit_test(test_bombs_stay_small),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
