/*
 * Base64 (collector/base64.c): the RFC 4648 §10 vectors padded and unpadded, the encoded
 * lengths, decoding of both alphabets with and without padding, the refusals (a lone last
 * character, characters outside the alphabets, '=' inside), and a round trip over every
 * length up to 300 with all byte values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/base64.h"

struct vec {
    const char *plain, *padded, *unpadded;
};

/* RFC 4648 §10. */
static const struct vec rfc[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_rfc_vectors_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        const uint8_t *p = (const uint8_t *)rfc[i].plain;
        size_t n = strlen(rfc[i].plain);
        char out[16];
        memset(out, '#', sizeof(out));
        assert_int_equal(th_base64_encoded_len(n, true), strlen(rfc[i].padded));
        assert_int_equal(th_base64_encode(p, n, out, true), strlen(rfc[i].padded));
        assert_memory_equal(out, rfc[i].padded, strlen(rfc[i].padded));
        assert_int_equal(out[strlen(rfc[i].padded)], '#'); /* nothing past the text */
        assert_int_equal(th_base64_encoded_len(n, false), strlen(rfc[i].unpadded));
        assert_int_equal(th_base64_encode(p, n, out, false), strlen(rfc[i].unpadded));
        assert_memory_equal(out, rfc[i].unpadded, strlen(rfc[i].unpadded));
    }
}

static void decode_ok(const char *s, const char *want)
{
    uint8_t out[64];
    size_t n = 999;
    assert_true(TH_BASE64_DECODED_MAX(strlen(s)) <= sizeof(out));
    assert_int_equal(th_base64_decode(s, strlen(s), out, &n), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void decode_bad(const char *s)
{
    uint8_t out[64];
    size_t n = 999;
    assert_int_equal(th_base64_decode(s, strlen(s), out, &n), TH_EINVAL);
    assert_int_equal(n, 0);
}

static void test_rfc_vectors_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        decode_ok(rfc[i].padded, rfc[i].plain);
        decode_ok(rfc[i].unpadded, rfc[i].plain);
    }
}

static void test_alphabets(void **state)
{
    (void)state;
    /* 0xfb 0xff 0xbf: "+/+/" standard, "-_-_" URL-safe; mixing is accepted too. */
    decode_ok("+/+/", "\xfb\xff\xbf");
    decode_ok("-_-_", "\xfb\xff\xbf");
    decode_ok("+_-/", "\xfb\xff\xbf");
    assert_int_equal(th_base64_value('A'), 0);
    assert_int_equal(th_base64_value('z'), 51);
    assert_int_equal(th_base64_value('9'), 61);
    assert_int_equal(th_base64_value('-'), 62);
    assert_int_equal(th_base64_value('/'), 63);
    assert_int_equal(th_base64_value('='), -1);
    assert_int_equal(th_base64_value(' '), -1);
    assert_int_equal(th_base64_value(0xc3), -1);
}

static void test_refusals(void **state)
{
    (void)state;
    decode_bad("Z");     /* one character cannot hold a byte */
    decode_bad("Zm9vY"); /* nor can a lone fifth */
    decode_bad("Zm9vY===");
    decode_bad("Zm 9v");    /* no white space */
    decode_bad("Zm=9v");    /* '=' only at the end */
    decode_bad("Zm9v\xc3"); /* nothing outside ASCII */
    decode_ok("Zh==", "f"); /* leftover bits are ignored, not refused */
    decode_ok("====", "");
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 151 + 7);
    }
    char text[404];
    uint8_t back[302];
    for (size_t len = 0; len <= sizeof(in); len++) {
        for (int pad = 0; pad < 2; pad++) {
            size_t tl = th_base64_encode(in, len, text, pad);
            assert_int_equal(tl, th_base64_encoded_len(len, pad));
            assert_true(TH_BASE64_DECODED_MAX(tl) <= sizeof(back));
            size_t n = 0;
            assert_int_equal(th_base64_decode(text, tl, back, &n), 0);
            assert_int_equal(n, len);
            assert_memory_equal(back, in, len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors_encode), cmocka_unit_test(test_rfc_vectors_decode),
        cmocka_unit_test(test_alphabets),          cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
