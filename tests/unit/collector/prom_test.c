/*
 * The Prometheus text writer: family headers, label escaping, the spelling of special
 * values, shortest round-trip numbers and cumulative histogram buckets.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/prom.h"

/* The buffer as a NUL-terminated string (th_buf_printf leaves a spare byte; make sure). */
static const char *text(th_buf_t *b)
{
    assert_int_equal(th_buf_append(b, "", 1), 0);
    b->len--;
    return (const char *)b->ptr;
}

static void test_family(void **state)
{
    (void)state;
    th_buf_t b = {0};
    assert_int_equal(th_prom_family(&b, "otelcol_x", TH_PROM_COUNTER, "a \\ b\nc \"q\""), 0);
    assert_string_equal(text(&b), "# HELP otelcol_x a \\\\ b\\nc \"q\"\n"
                                  "# TYPE otelcol_x counter\n");
    th_buf_free(&b);
    assert_int_equal(th_prom_family(&b, "g", TH_PROM_GAUGE, "h"), 0);
    assert_int_equal(th_prom_family(&b, "h", TH_PROM_HISTOGRAM, "h"), 0);
    assert_int_equal(th_prom_family(&b, "u", TH_PROM_UNTYPED, "h"), 0);
    assert_non_null(strstr(text(&b), "# TYPE g gauge\n"));
    assert_non_null(strstr(text(&b), "# TYPE h histogram\n"));
    assert_non_null(strstr(text(&b), "# TYPE u untyped\n"));
    th_buf_free(&b);
}

static void test_escaping(void **state)
{
    (void)state;
    th_buf_t b = {0};
    struct th_prom_label l[] = {{"a", "x\"y"}, {"b", "back\\slash"}, {"c", "new\nline"}};
    assert_int_equal(th_prom_sample(&b, "m", NULL, l, 3, 1), 0);
    assert_string_equal(text(&b), "m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"new\\nline\"} 1\n");
    th_buf_free(&b);
    assert_int_equal(th_prom_sample(&b, "m", "_sum", NULL, 0, 2.5), 0);
    assert_string_equal(text(&b), "m_sum 2.5\n");
    th_buf_free(&b);
}

static void test_special_values(void **state)
{
    (void)state;
    th_buf_t b = {0};
    assert_int_equal(th_prom_sample(&b, "a", NULL, NULL, 0, INFINITY), 0);
    assert_int_equal(th_prom_sample(&b, "b", NULL, NULL, 0, -INFINITY), 0);
    assert_int_equal(th_prom_sample(&b, "c", NULL, NULL, 0, NAN), 0);
    assert_int_equal(th_prom_sample(&b, "d", NULL, NULL, 0, 0.1), 0);
    assert_int_equal(th_prom_sample(&b, "e", NULL, NULL, 0, 1234567), 0);
    assert_int_equal(th_prom_sample(&b, "f", NULL, NULL, 0, 9007199254740992.0), 0);
    assert_int_equal(th_prom_sample(&b, "g", NULL, NULL, 0, 1.0 / 3.0), 0);
    assert_int_equal(th_prom_sample(&b, "h", NULL, NULL, 0, -0.0005), 0);
    assert_int_equal(th_prom_sample(&b, "i", NULL, NULL, 0, 1000), 0);
    assert_int_equal(th_prom_sample(&b, "j", NULL, NULL, 0, 1e20), 0);
    assert_int_equal(th_prom_sample(&b, "k", NULL, NULL, 0, -0.0), 0);
    assert_int_equal(th_prom_sample(&b, "l", NULL, NULL, 0, 1.5e-7), 0);
    assert_string_equal(text(&b), "a +Inf\nb -Inf\nc NaN\nd 0.1\ne 1234567\n"
                                  "f 9007199254740992\ng 0.3333333333333333\nh -0.0005\n"
                                  "i 1000\nj 1e+20\nk 0\nl 1.5e-07\n");
    th_buf_free(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    th_buf_t b = {0};
    const double bounds[] = {0.5, 1, 2.5};
    const uint64_t counts[] = {1, 0, 3, 2}; /* last: above 2.5 */
    struct th_prom_label l[] = {{"route", "/api/traces"}};
    assert_int_equal(th_prom_histogram(&b, "d", l, 1, bounds, 3, counts, 17.25), 0);
    assert_string_equal(text(&b), "d_bucket{route=\"/api/traces\",le=\"0.5\"} 1\n"
                                  "d_bucket{route=\"/api/traces\",le=\"1\"} 1\n"
                                  "d_bucket{route=\"/api/traces\",le=\"2.5\"} 4\n"
                                  "d_bucket{route=\"/api/traces\",le=\"+Inf\"} 6\n"
                                  "d_sum{route=\"/api/traces\"} 17.25\n"
                                  "d_count{route=\"/api/traces\"} 6\n");
    th_buf_free(&b);
    /* no labels: le is the only one */
    assert_int_equal(th_prom_histogram(&b, "h", NULL, 0, bounds, 1, counts, 0), 0);
    assert_string_equal(text(&b), "h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
                                  "h_sum 0\nh_count 1\n");
    th_buf_free(&b);
}

/* Fail every allocation: each writer reports TH_ENOMEM. */
static int fail_calls;
static void *failing_malloc(size_t n)
{
    (void)n;
    fail_calls++;
    return NULL;
}
static void *failing_calloc(size_t n, size_t m)
{
    (void)n;
    (void)m;
    fail_calls++;
    return NULL;
}
static void *failing_realloc(void *p, size_t n)
{
    (void)p;
    (void)n;
    fail_calls++;
    return NULL;
}

static void test_enomem(void **state)
{
    (void)state;
    static const struct th_mem_methods failing = {failing_malloc, failing_calloc, failing_realloc,
                                                  free};
    th_buf_t b = {0};
    const double bounds[] = {1};
    const uint64_t counts[] = {1, 1};
    th_mem_set_methods(&failing);
    assert_int_equal(th_prom_family(&b, "x", TH_PROM_GAUGE, "h"), TH_ENOMEM);
    assert_int_equal(th_prom_sample(&b, "x", NULL, NULL, 0, 1), TH_ENOMEM);
    assert_int_equal(th_prom_histogram(&b, "x", NULL, 0, bounds, 1, counts, 1), TH_ENOMEM);
    th_mem_set_methods(NULL);
    assert_true(fail_calls >= 3);
    th_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family),         cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_special_values), cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
