/*
 * Tests of the pull JSON tokenizer: token streams, RFC 8259 validation (strings, escapes,
 * surrogate pairs, UTF-8, numbers, literals, structure), the nesting limit, skipping, and
 * unescaping. Long strings put the special byte at every offset of the 8-byte fast path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/json_reader.h"

/* Tokenize all of @p s; @return 0 or the first error. Types go to @p types (letters). */
static int tokenize(const char *s, size_t len, uint32_t depth, char *types, size_t cap)
{
    th_json_reader_t r;
    th_json_reader_init(&r, (const uint8_t *)s, len, depth);
    size_t n = 0;
    for (;;) {
        th_json_tok_t t;
        int rc = th_json_next(&r, &t);
        if (rc) {
            if (types) {
                types[n] = '\0';
            }
            return rc;
        }
        static const char letters[] = "?{}[]ksn tfn.";
        char c = t.type == TH_JSON_TRUE    ? 'T'
                 : t.type == TH_JSON_FALSE ? 'F'
                 : t.type == TH_JSON_NULL  ? 'N'
                 : t.type == TH_JSON_END   ? '.'
                                           : letters[t.type];
        if (types && n + 1 < cap) {
            types[n++] = c;
        }
        if (t.type == TH_JSON_END) {
            break;
        }
    }
    if (types) {
        types[n] = '\0';
    }
    return 0;
}

static void ok(const char *s, const char *want)
{
    char got[256];
    int rc = tokenize(s, strlen(s), 64, got, sizeof(got));
    if (rc != 0 || strcmp(got, want) != 0) {
        print_error("'%s': rc %d, tokens '%s', wanted '%s'\n", s, rc, got, want);
        fail();
    }
}

static void bad_n(const char *s, size_t len, int want)
{
    int rc = tokenize(s, len, 64, NULL, 0);
    if (rc != want) {
        print_error("'%.*s': rc %d, wanted %d\n", (int)len, s, rc, want);
        fail();
    }
}

static void bad(const char *s)
{
    bad_n(s, strlen(s), TH_EDECODE);
}

static void test_tokens(void **state)
{
    (void)state;
    ok("{}", "{}.");
    ok("[]", "[].");
    ok(" \t\r\n{ \"a\" : 1 , \"b\":[true,false,null,\"x\",-0.5e+3]}\n", "{knk[TFNsn]}.");
    ok("\"top\"", "s.");
    ok("0", "n.");
    ok("-0", "n.");
    ok("123.456E-7", "n.");
    ok("true", "T.");
    ok("null", "N.");
    ok("[[],{},[{}]]", "[[]{}[{}]].");
    ok("\xef\xbb\xbf{}", "{}."); /* a byte order mark is skipped */
    ok("{\"a\":{\"b\":{\"c\":[1,2,{\"d\":\"e\"}]}}}", "{k{k{k[nn{ks}]}}}.");
}

static void test_structure_errors(void **state)
{
    (void)state;
    bad("");
    bad("   ");
    bad("{");
    bad("}");
    bad("[1,]");
    bad("[,1]");
    bad("{\"a\":1,}");
    bad("{\"a\" 1}");
    bad("{\"a\":}");
    bad("{1:2}");
    bad("{\"a\":1 \"b\":2}");
    bad("[1 2]");
    bad("[1}");
    bad("{\"a\":1]");
    bad("{} {}");
    bad("{}x");
    bad("[] ,");
    bad("'a'");
    bad("[tru]");
    bad("[nul]");
    bad("[falsey]");
    bad("[True]");
    bad("[undefined]");
    bad("[NaN]");
    bad("[Infinity]");
    bad_n("{\"a\":1}\0", 8, TH_EDECODE);
}

static void test_numbers(void **state)
{
    (void)state;
    bad("[01]");
    bad("[-]");
    bad("[1.]");
    bad("[.5]");
    bad("[+1]");
    bad("[1e]");
    bad("[1e+]");
    bad("[0x10]");
    bad("[1.5.5]");
    bad("[--1]");
    bad("[-01]");
    ok("[0,-0,1,-1,10,0.0,1e5,1E+5,1e-5,1.25e10]", "[nnnnnnnnnn].");
    /* The number's text is exactly what the grammar matched. */
    th_json_reader_t r;
    const char *s = "[-12.5e3,7]";
    th_json_reader_init(&r, (const uint8_t *)s, strlen(s), 8);
    th_json_tok_t t;
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(t.type, TH_JSON_NUMBER);
    assert_int_equal(t.len, 7);
    assert_memory_equal(t.ptr, "-12.5e3", 7);
}

static void test_strings(void **state)
{
    (void)state;
    ok("[\"\",\"a\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"]",
       "[ssss].");
    bad("[\"\\x\"]");
    bad("[\"\\u12\"]");
    bad("[\"\\u12g4\"]");
    bad("[\"\\ud800\"]"); /* lone high surrogate */
    bad("[\"\\ud800x\"]");
    bad("[\"\\ud800\\u0041\"]"); /* high surrogate + non-surrogate */
    bad("[\"\\udc00\"]");        /* lone low surrogate */
    bad("[\"\\ud800\\ud800\"]");
    bad("[\"abc");
    bad("[\"abc\\");
    bad("[\"a\tb\"]"); /* raw control character */
    bad("[\"a\nb\"]");
    bad_n("[\"a\0b\"]", 6, TH_EDECODE);
    /* Raw UTF-8: valid of every length, and the invalid forms. */
    ok("[\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"]", "[s].");
    bad("[\"\xff\"]");
    bad("[\"\x80\"]");
    bad("[\"\xc0\x80\"]");
    bad("[\"\xc1\xbf\"]");
    bad("[\"\xe0\x80\xaf\"]");
    bad("[\"\xed\xa0\x80\"]");
    bad("[\"\xf0\x80\x80\xaf\"]");
    bad("[\"\xf4\x90\x80\x80\"]");
    bad("[\"\xf5\x80\x80\x80\"]");
    bad("[\"\xe2\x82\"]");
    bad("[\"\xc3\"]");
}

/* The special byte at every position of the fast path's 8-byte words. */
static void test_fast_path_offsets(void **state)
{
    (void)state;
    static const char *specials[] = {"\\n", "\xc3\xa9", "\"", "\x01"};
    static const bool valid[] = {true, true, true, false};
    for (size_t k = 0; k < TH_ARRAY_SIZE(specials); k++) {
        for (size_t pos = 0; pos < 40; pos++) {
            char s[128];
            size_t n = 0;
            s[n++] = '[';
            s[n++] = '"';
            for (size_t i = 0; i < pos; i++) {
                s[n++] = (char)('a' + i % 26);
            }
            if (k == 2) {
                /* The quote ends the string early: the rest is garbage. */
                memcpy(s + n, "\"]", 2);
                n += 2;
            } else {
                memcpy(s + n, specials[k], strlen(specials[k]));
                n += strlen(specials[k]);
                for (size_t i = 0; i < 20; i++) {
                    s[n++] = 'z';
                }
                memcpy(s + n, "\"]", 2);
                n += 2;
            }
            int rc = tokenize(s, n, 8, NULL, 0);
            if ((rc == 0) != valid[k]) {
                print_error("special %zu at %zu: rc %d\n", k, pos, rc);
                fail();
            }
            /* Check the string token's length. */
            if (valid[k]) {
                th_json_reader_t r;
                th_json_tok_t t;
                th_json_reader_init(&r, (const uint8_t *)s, n, 8);
                assert_int_equal(th_json_next(&r, &t), 0);
                assert_int_equal(th_json_next(&r, &t), 0);
                assert_int_equal(t.type, TH_JSON_STRING);
                assert_int_equal(t.len, n - 4);
            }
        }
    }
}

static void test_unescape(void **state)
{
    (void)state;
    const char *s =
        "[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\te\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000z\","
        "\"plain\"]";
    th_json_reader_t r;
    th_json_reader_init(&r, (const uint8_t *)s, strlen(s), 8);
    th_json_tok_t t;
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_true(t.escaped);
    uint8_t out[128];
    size_t n = th_json_unescape(&t, out);
    static const char want[] = "a\"b\\c/d\b\f\n\r\teA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_true(n <= t.len);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_false(t.escaped);
    n = th_json_unescape(&t, out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "plain", 5);
}

static void test_depth(void **state)
{
    (void)state;
    assert_int_equal(tokenize("[[[]]]", 6, 3, NULL, 0), 0);
    assert_int_equal(tokenize("[[[[]]]]", 8, 3, NULL, 0), TH_E2BIG);
    assert_int_equal(tokenize("{\"a\":{\"b\":[{}]}}", 16, 4, NULL, 0), 0);
    assert_int_equal(tokenize("{\"a\":{\"b\":[{}]}}", 16, 3, NULL, 0), TH_E2BIG);
    /* 5,000 deep, with no recursion to blow. */
    size_t n = 10000;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, '[', n / 2);
    memset(s + n / 2, ']', n / 2);
    assert_int_equal(tokenize(s, n, 64, NULL, 0), TH_E2BIG);
    assert_int_equal(tokenize(s, n, 100000, NULL, 0), TH_E2BIG); /* capped at 4096 */
    /* Exactly at the cap. */
    memset(s, '[', TH_JSON_MAX_DEPTH);
    memset(s + TH_JSON_MAX_DEPTH, ']', TH_JSON_MAX_DEPTH);
    assert_int_equal(tokenize(s, 2 * TH_JSON_MAX_DEPTH, 100000, NULL, 0), 0);
    free(s);
}

static void test_skip_and_sticky(void **state)
{
    (void)state;
    const char *s = "{\"skip\":{\"a\":[1,{\"b\":[]}],\"c\":\"d\"},\"keep\":2,\"s\":\"x\"}";
    th_json_reader_t r;
    th_json_reader_init(&r, (const uint8_t *)s, strlen(s), 8);
    th_json_tok_t t;
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(t.type, TH_JSON_OBJ_BEGIN);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(t.type, TH_JSON_KEY);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_depth(&r), 2);
    assert_int_equal(th_json_skip(&r, &t), 0);
    assert_int_equal(th_json_depth(&r), 1);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(t.type, TH_JSON_KEY);
    assert_memory_equal(t.ptr, "keep", 4);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_skip(&r, &t), 0); /* a scalar: nothing to do */
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_memory_equal(t.ptr, "s", 1);

    /* Errors stick, with where and what. */
    const char *b = "{\"a\":[1,2,x]}";
    th_json_reader_init(&r, (const uint8_t *)b, strlen(b), 8);
    int rc;
    while ((rc = th_json_next(&r, &t)) == 0) {
    }
    assert_int_equal(rc, TH_EDECODE);
    assert_int_equal(r.erroff, 10);
    assert_non_null(r.errmsg);
    assert_int_equal(th_json_next(&r, &t), TH_EDECODE);
    assert_int_equal(t.type, TH_JSON_NONE);
    /* A skip that runs into an error reports it. */
    const char *c = "{\"a\":[1,[2,}]}";
    th_json_reader_init(&r, (const uint8_t *)c, strlen(c), 8);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_next(&r, &t), 0);
    assert_int_equal(th_json_skip(&r, &t), TH_EDECODE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_fast_path_offsets),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_skip_and_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
