/*
 * Tests of ${...} substitution (th_config_expand): the Collector's env rules from
 * otelcol-config.md §2, escaping, nesting, whole-value detection and every error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/config.h"

static th_arena_t *arena;

static int setup(void **state)
{
    (void)state;
    arena = th_arena_create(0, 0);
    setenv("TH_T_HOST", "example.com", 1);
    setenv("TH_T_PORT", "4318", 1);
    setenv("TH_T_EMPTY", "", 1);
    setenv("TH_T_INNER", "TH_T_HOST", 1);
    setenv("TH_T_REF", "${env:TH_T_HOST}", 1);
    setenv("TH_T_DOLLAR", "a$b", 1);
    unsetenv("TH_T_UNSET");
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_arena_destroy(arena);
    return 0;
}

struct result {
    int ret;
    const char *out;
    bool whole;
    bool is_null;
    char err[256];
};

static struct result expand(const char *in)
{
    struct result r = {0};
    r.ret = th_config_expand(in, arena, &r.out, &r.whole, &r.is_null, r.err, sizeof(r.err));
    return r;
}

static void expect(const char *in, const char *out, bool whole)
{
    struct result r = expand(in);
    if (r.ret != 0) {
        fail_msg("expanding \"%s\" failed: %s", in, r.err);
    }
    assert_string_equal(r.out, out);
    assert_int_equal(r.whole, whole);
    assert_false(r.is_null);
}

static void expect_error(const char *in, const char *msg)
{
    struct result r = expand(in);
    assert_int_equal(r.ret, TH_ECONFIG);
    if (!strstr(r.err, msg)) {
        fail_msg("expanding \"%s\": message \"%s\" lacks \"%s\"", in, r.err, msg);
    }
}

static void test_plain_text_unchanged(void **state)
{
    (void)state;
    expect("", "", false);
    expect("localhost:4318", "localhost:4318", false);
    expect("cost $5", "cost $5", false);
    expect("trailing $", "trailing $", false);
    expect("$", "$", false);
    expect("{env:X}", "{env:X}", false);
}

static void test_env_set(void **state)
{
    (void)state;
    expect("${env:TH_T_HOST}", "example.com", true);
    expect("http://${env:TH_T_HOST}:${env:TH_T_PORT}/v1", "http://example.com:4318/v1", false);
    expect("${env:TH_T_HOST}${env:TH_T_PORT}", "example.com4318", false);
    expect("x${env:TH_T_PORT}", "x4318", false);
    expect("${env:TH_T_PORT}x", "4318x", false);
}

static void test_default_scheme(void **state)
{
    (void)state;
    /* ${NAME} is ${env:NAME}: otelcol's default scheme is env. */
    expect("${TH_T_HOST}", "example.com", true);
    expect("${TH_T_UNSET:-fallback}", "fallback", true);
    expect("${TH_T_HOST:-fallback}", "example.com", true);
}

static void test_unset(void **state)
{
    (void)state;
    struct result r = expand("${env:TH_T_UNSET}");
    assert_int_equal(r.ret, 0);
    assert_true(r.whole);
    assert_true(r.is_null);
    assert_string_equal(r.out, "");
    /* Inside a longer string an unset variable is just empty, and not null. */
    r = expand("a-${env:TH_T_UNSET}-b");
    assert_int_equal(r.ret, 0);
    assert_false(r.whole);
    assert_false(r.is_null);
    assert_string_equal(r.out, "a--b");
}

static void test_defaults(void **state)
{
    (void)state;
    expect("${env:TH_T_UNSET:-localhost}", "localhost", true);
    expect("${env:TH_T_UNSET:-}", "", true);
    expect("${env:TH_T_UNSET:-a:-b}", "a:-b", true);
    expect("${env:TH_T_UNSET:-0.0.0.0}:4317", "0.0.0.0:4317", false);
    expect("${env:TH_T_HOST:-localhost}", "example.com", true);
    /* Set but empty: empty, and the default is not used. */
    expect("${env:TH_T_EMPTY:-localhost}", "", true);
    expect("${env:TH_T_EMPTY}", "", true);
    /* A default may itself hold a reference. */
    expect("${env:TH_T_UNSET:-${env:TH_T_PORT}}", "4318", true);
}

static void test_escaping(void **state)
{
    (void)state;
    expect("$$", "$", false);
    expect("a$$b", "a$b", false);
    expect("$${env:TH_T_HOST}", "${env:TH_T_HOST}", false);
    expect("$$${env:TH_T_HOST}", "$example.com", false);
    expect("$$$${env:TH_T_HOST}", "$${env:TH_T_HOST}", false);
    expect("price: $$5 for ${env:TH_T_PORT}", "price: $5 for 4318", false);
}

static void test_nested(void **state)
{
    (void)state;
    expect("${env:${env:TH_T_INNER}}", "example.com", true);
    expect("${${TH_T_INNER}}", "example.com", true);
    expect("[${env:${env:TH_T_INNER}}]", "[example.com]", false);
    expect_error("${env:${env:${env:${env:${env:${env:${env:${env:${env:${env:${env:${env:${"
                 "env:${env:${env:${env:${env:${env:X}}}}}}}}}}}}}}}}}}",
                 "nested more than");
}

static void test_values_not_reexpanded(void **state)
{
    (void)state;
    /* A variable's value is data: a reference inside it stays as text. */
    expect("${env:TH_T_REF}", "${env:TH_T_HOST}", true);
    expect("${env:TH_T_DOLLAR}", "a$b", true);
}

static void test_unterminated_is_text(void **state)
{
    (void)state;
    expect("${env:TH_T_HOST", "${env:TH_T_HOST", false);
    expect("${a ${env:TH_T_PORT}", "${a 4318", false);
    expect("}${", "}${", false);
}

static void test_invalid_names(void **state)
{
    (void)state;
    expect_error("${env:1ABC}", "environment variable \"1ABC\" has invalid name");
    expect_error("${env:A-B}", "environment variable \"A-B\" has invalid name");
    expect_error("${env:}", "environment variable \"\" has invalid name");
    expect_error("${}", "has invalid name");
    expect_error("${ TH_T_HOST }", "has invalid name");
    expect_error("x${env:A.B}y", "environment variable \"A.B\" has invalid name");
    expect_error("${env:${env:TH_T_EMPTY}}", "environment variable \"\" has invalid name");
}

static void test_unsupported_scheme(void **state)
{
    (void)state;
    expect_error("${file:/etc/passwd}", "unsupported scheme \"file\"");
    expect_error("${http://example.com/x}", "unsupported scheme \"http\"");
    expect_error("a ${yaml:b: c} d", "unsupported scheme \"yaml\"");
}

static void test_dollar_inside_reference(void **state)
{
    (void)state;
    expect_error("${env:$$X}", "unsupported characters ('$')");
    expect_error("${env:${env:TH_T_DOLLAR}}", "unsupported characters ('$')");
}

static void test_output_limit(void **state)
{
    (void)state;
    size_t n = 600 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    setenv("TH_T_BIG", big, 1);
    free(big);
    expect_error("${env:TH_T_BIG}${env:TH_T_BIG}", "longer than");
    struct result r = expand("${env:TH_T_BIG}");
    assert_int_equal(r.ret, 0);
    assert_int_equal(strlen(r.out), n);
    unsetenv("TH_T_BIG");
}

static void test_optional_outputs(void **state)
{
    (void)state;
    const char *out;
    char err[128];
    assert_int_equal(
        th_config_expand("${env:TH_T_HOST}", arena, &out, NULL, NULL, err, sizeof(err)), 0);
    assert_string_equal(out, "example.com");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text_unchanged),
        cmocka_unit_test(test_env_set),
        cmocka_unit_test(test_default_scheme),
        cmocka_unit_test(test_unset),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_values_not_reexpanded),
        cmocka_unit_test(test_unterminated_is_text),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_unsupported_scheme),
        cmocka_unit_test(test_dollar_inside_reference),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_optional_outputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
