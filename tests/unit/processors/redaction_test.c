/*
 * Tests of the redaction processor: config checks (regexes named by list and index, hash
 * functions, HMAC keys), the Collector's per-list algorithm (ignore, delete, allow, mask by key
 * and by value, in order), Go's replace-all semantics, the hash functions against digests
 * computed independently, the summary attributes of each list, non-string values, the match
 * limit failing closed, the component, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/component.h"
#include "th/log.h"
#include "processors/attributes/attributes_value.h"
#include "processors/redaction/redaction.h"
#include "../exporters/exporter_fixture.h"

#define LIST(...)                                                                                  \
    ((th_strlist_t){.v = (const char *[]){__VA_ARGS__},                                            \
                    .n = sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)})

static th_redaction_proc_t *make(const struct th_redaction_settings *s)
{
    th_redaction_proc_t *p = NULL;
    char err[1024] = "";
    int ret = th_redaction_proc_create(s, &p, err, sizeof(err));
    if (ret != 0) {
        fail_msg("create: %s", err);
    }
    return p;
}

struct list {
    th_otlp_kv_t **kvs;
    size_t n;
};

static void add(th_arena_t *a, struct list *l, const char *key, th_otlp_any_t *v)
{
    struct th__attributes_list al = {&l->kvs, &l->n};
    assert_int_equal(th__attributes_append(a, al, key, strlen(key), v), 0);
}

static th_otlp_any_t *get(const struct list *l, const char *key)
{
    ssize_t i = th__attributes_find(l->kvs, l->n, key);
    return i < 0 ? NULL : l->kvs[i]->value;
}

static void assert_str(const th_otlp_any_t *v, const char *want)
{
    assert_non_null(v);
    assert_int_equal(v->value_case, TH__ANY_STRING);
    assert_string_equal(v->string_value, want);
}

static void assert_int(const th_otlp_any_t *v, int64_t want)
{
    assert_non_null(v);
    assert_int_equal(v->value_case, TH__ANY_INT);
    assert_true(v->int_value == want);
}

static void run(th_redaction_proc_t *p, th_arena_t *a, struct list *l)
{
    assert_int_equal(th_redaction_proc_attrs(p, a, &l->kvs, &l->n), 0);
}

/* Mask one string value under the given blocked_values and return the result. */
static const char *mask1(const th_strlist_t *blocked, const char *value, th_arena_t *a)
{
    struct th_redaction_settings s = {.allow_all_keys = true, .blocked_values = *blocked};
    th_redaction_proc_t *p = make(&s);
    struct list l = {0};
    add(a, &l, "v", fx_str(a, value));
    run(p, a, &l);
    th_redaction_proc_destroy(p);
    return get(&l, "v")->string_value;
}

/* ---- Config ---------------------------------------------------------------------------- */

static int check_yaml(const char *yaml, char *err, size_t errlen)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_node_t *node;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, errlen);
    assert_int_equal(ret, 0);
    struct th_redaction_cfg cfg;
    ret = th_cfg_decode(th_redaction_config_fields, node, &cfg, a, "", err, errlen);
    if (ret == 0) {
        const char *why = NULL;
        ret = th_redaction_config_check(&cfg, &why);
        if (ret != 0) {
            snprintf(err, errlen, "%s", why);
        }
    }
    th_arena_destroy(a);
    return ret;
}

static void expect_error(const char *yaml, const char *want)
{
    char err[1024] = "";
    int ret = check_yaml(yaml, err, sizeof(err));
    if (ret != TH_ECONFIG || strcmp(err, want) != 0) {
        fail_msg("config:\n%s\nwant: %s\ngot %d: %s", yaml, want, ret, err);
    }
}

static void test_config(void **state)
{
    (void)state;
    expect_error("blocked_values: ['4[0-9]{12}', '(']\n",
                 "blocked_values::1: invalid regular expression \"(\": missing closing "
                 "parenthesis at offset 1");
    expect_error("allowed_values: ['[a-']\n",
                 "allowed_values::0: invalid regular expression \"[a-\": missing terminating ] "
                 "for character class at offset 3");
    expect_error("blocked_key_patterns: [ok, '*x']\n",
                 "blocked_key_patterns::1: invalid regular expression \"*x\": quantifier does "
                 "not follow a repeatable item at offset 0");
    expect_error("ignored_key_patterns: ['a{2,1}']\n",
                 "ignored_key_patterns::0: invalid regular expression \"a{2,1}\": numbers out of "
                 "order in {} quantifier at offset 5");
    expect_error("hash_function: sha9\n",
                 "hash_function: unknown HashFunction \"sha9\", allowed functions are md5, sha1, "
                 "sha3, hmac-sha256 and hmac-sha512");
    expect_error("hash_function: hmac-sha256\n",
                 "hmac_key: must be set when hash_function is hmac-sha256");
    char err[1024];
    assert_int_equal(check_yaml("hash_function: SHA3\nsummary: verbose\n", err, sizeof(err)), 0);
    assert_int_equal(check_yaml("url_sanitizer: {enabled: true}\ndb_sanitizer: {sql: {enabled: "
                                "true}}\n",
                                err, sizeof(err)),
                     0);
    assert_int_equal(check_yaml("colour: red\n", err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "colour: unknown key"));

    /* The secret is never printed, even when it does not decode. */
    assert_int_equal(check_yaml("hmac_key: [my-secret-key]\n", err, sizeof(err)), TH_ECONFIG);
    assert_null(strstr(err, "my-secret-key"));
}

/* ---- The algorithm ---------------------------------------------------------------------- */

static void test_allow_and_delete(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    /* Fail closed: nothing allowed, everything deleted (the processor's own keys stay). */
    struct th_redaction_settings s = {.summary = TH_REDACTION_DEBUG};
    th_redaction_proc_t *p = make(&s);
    struct list l = {0};
    add(a, &l, "password", fx_str(a, "hunter2"));
    add(a, &l, "id", fx_int(a, 5));
    add(a, &l, "redaction.masked.count", fx_int(a, 2));
    run(p, a, &l);
    assert_null(get(&l, "password"));
    assert_null(get(&l, "id"));
    assert_int(get(&l, "redaction.masked.count"), 2);
    assert_str(get(&l, "redaction.redacted.keys"), "id,password");
    assert_int(get(&l, "redaction.redacted.count"), 2);
    th_redaction_proc_destroy(p);

    s = (struct th_redaction_settings){.allowed_keys = LIST("id", "name"),
                                       .ignored_keys = LIST("safe"),
                                       .ignored_key_patterns = LIST("^raw\\."),
                                       .blocked_values = LIST("secret"),
                                       .summary = TH_REDACTION_INFO};
    p = make(&s);
    l = (struct list){0};
    add(a, &l, "id", fx_str(a, "a secret id"));
    add(a, &l, "name", fx_str(a, "bob"));
    add(a, &l, "token", fx_str(a, "secret"));
    add(a, &l, "safe", fx_str(a, "secret but ignored"));
    add(a, &l, "raw.body", fx_str(a, "secret too"));
    run(p, a, &l);
    assert_str(get(&l, "id"), "a **** id");
    assert_str(get(&l, "name"), "bob");
    assert_null(get(&l, "token"));
    assert_str(get(&l, "safe"), "secret but ignored");
    assert_str(get(&l, "raw.body"), "secret too");
    /* info: counts, no key names */
    assert_int(get(&l, "redaction.redacted.count"), 1);
    assert_int(get(&l, "redaction.masked.count"), 1);
    assert_int(get(&l, "redaction.ignored.count"), 2);
    assert_null(get(&l, "redaction.redacted.keys"));
    assert_null(get(&l, "redaction.masked.keys"));
    /* order of what is left: the original order, then the summary */
    assert_string_equal(l.kvs[0]->key, "id");
    assert_string_equal(l.kvs[1]->key, "name");
    struct th_redaction_stats st = th_redaction_proc_stats(p);
    assert_int_equal(st.redacted, 1);
    assert_int_equal(st.masked, 1);
    assert_int_equal(st.ignored, 2);
    th_redaction_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_mask_by_key_and_value(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_redaction_settings s = {
        .allow_all_keys = true,
        .blocked_key_patterns = LIST(".*token.*", ".*api_key.*"),
        .blocked_values = LIST("4[0-9]{12}(?:[0-9]{3})?", "(5[1-5][0-9]{14})"),
        .allowed_values = LIST(".+@mycompany\\.com"),
        .summary = TH_REDACTION_DEBUG,
    };
    th_redaction_proc_t *p = make(&s);
    struct list l = {0};
    add(a, &l, "auth_token", fx_str(a, "abc\ndef"));
    add(a, &l, "note", fx_str(a, "visa 4111111111111111, mc 5500000000000004, end"));
    add(a, &l, "contact", fx_str(a, "card 4111111111111111 of bob@mycompany.com"));
    add(a, &l, "plain", fx_str(a, "nothing here"));
    add(a, &l, "count", fx_int(a, 4111111111111111));
    add(a, &l, "api_key_num", fx_int(a, 12));
    run(p, a, &l);
    assert_str(get(&l, "auth_token"), "****"); /* whole value, newlines included */
    assert_str(get(&l, "note"), "visa ****, mc ****, end");
    assert_str(get(&l, "contact"), "card 4111111111111111 of bob@mycompany.com"); /* allowed */
    assert_str(get(&l, "plain"), "nothing here");
    assert_int(get(&l, "count"), 4111111111111111); /* non-strings are left alone */
    assert_int(get(&l, "api_key_num"), 12);
    assert_str(get(&l, "redaction.masked.keys"), "auth_token,note");
    assert_int(get(&l, "redaction.masked.count"), 2);
    assert_str(get(&l, "redaction.allowed.keys"), "contact");
    assert_int(get(&l, "redaction.allowed.count"), 1);
    assert_null(get(&l, "redaction.redacted.count"));
    th_redaction_proc_destroy(p);

    /* redact_all_types: non-strings are checked as text and become strings when masked */
    s.redact_all_types = true;
    p = make(&s);
    l = (struct list){0};
    add(a, &l, "count", fx_int(a, 4111111111111111));
    add(a, &l, "api_key_num", fx_int(a, 12));
    add(a, &l, "small", fx_int(a, 7));
    run(p, a, &l);
    assert_str(get(&l, "count"), "****");
    assert_str(get(&l, "api_key_num"), "****");
    assert_int(get(&l, "small"), 7);
    th_redaction_proc_destroy(p);
    th_arena_destroy(a);
}

/* Go's ReplaceAllStringFunc, including empty matches, and blocked_values applied in order. */
static void test_replace_semantics(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    assert_string_equal(mask1(&LIST("x*"), "abc", a), "****a****b****c****");
    assert_string_equal(mask1(&LIST("a*"), "baaac", a), "****b****c****");
    assert_string_equal(mask1(&LIST("\\d{4}"), "12345678901", a), "********901");
    assert_string_equal(mask1(&LIST("^a|b$"), "aab", a), "****a****");
    /* each pattern sees the result of the previous one */
    assert_string_equal(mask1(&LIST("4[0-9]{15}", "\\d{4}"), "4111111111111111 1234", a),
                        "**** ****");
    /* `$` only at the very end, as in Go (not before a final newline) */
    assert_string_equal(mask1(&LIST("end$"), "the end\n", a), "the end\n");
    assert_string_equal(mask1(&LIST("(?m)end$"), "the end\n", a), "the ****\n");
    /* UTF-8: an empty match advances by a whole character; invalid bytes do not stop it */
    assert_string_equal(mask1(&LIST("é"), "caf\xc3\xa9 \xff caf\xc3\xa9", a),
                        "caf**** \xff caf****");
    assert_string_equal(mask1(&LIST("z*"), "\xc3\xa9", a), "****\xc3\xa9****");
    /* Go's \d is ASCII only */
    assert_string_equal(mask1(&LIST("\\d"),
                              "\xd9\xa3"
                              "3",
                              a),
                        "\xd9\xa3****");
    th_arena_destroy(a);
}

static void test_hash_functions(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    /* digests of "4111111111111111" computed independently (Python hashlib / hmac) */
    static const struct {
        enum th_redaction_hash fn;
        const char *key;
        const char *want;
    } cases[] = {
        {TH_REDACTION_MD5, NULL, "5910f4ea0062a0e29afd3dccc741e3ce"},
        {TH_REDACTION_SHA1, NULL, "68bfb396f35af3876fc509665b3dc23a0930aab1"},
        {TH_REDACTION_SHA3, NULL,
         "6099154214406cce6105a4688ab66533d3a55d1d7dd393cbccf22b487a22d922"},
        {TH_REDACTION_HMAC_SHA256, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
         "68461c4333f0d6ffc13ab17a895ccb61b6a8864e96602c4e91c869cfb9ccc6f1"},
        {TH_REDACTION_HMAC_SHA512,
         "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
         "89b024868b044f061da2d583e3b5cbdc8177fa0c7bad151d2a7c7e73aac1668e82781b89b8ce1eb73"
         "673659bcf141cba93daaadc3bb9cf6c8523e6c4f9c72f79"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(cases); i++) {
        struct th_redaction_settings s = {.allow_all_keys = true,
                                          .blocked_values = LIST("4[0-9]{15}"),
                                          .blocked_key_patterns = LIST("^whole$"),
                                          .hash_function = cases[i].fn,
                                          .hmac_key = cases[i].key};
        th_redaction_proc_t *p = make(&s);
        th_redaction_proc_t *p2 = make(&s);
        struct list l = {0}, l2 = {0};
        add(a, &l, "v", fx_str(a, "card=4111111111111111;"));
        add(a, &l, "whole", fx_str(a, "4111111111111111"));
        add(a, &l2, "v", fx_str(a, "card=4111111111111111;"));
        run(p, a, &l);
        run(p2, a, &l2);
        char want[256];
        snprintf(want, sizeof(want), "card=%s;", cases[i].want);
        assert_str(get(&l, "v"), want);
        assert_str(get(&l, "whole"), cases[i].want);
        /* deterministic: another instance masks the same text the same way */
        assert_str(get(&l2, "v"), want);
        th_redaction_proc_destroy(p);
        th_redaction_proc_destroy(p2);
    }
    th_arena_destroy(a);
}

/* A summary merges with the keys and counts a list already carries (a second redaction). */
static void test_summary_merge(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_redaction_settings s = {.allowed_keys = LIST("keep"), .summary = TH_REDACTION_DEBUG};
    th_redaction_proc_t *p = make(&s);
    struct list l = {0};
    add(a, &l, "keep", fx_str(a, "x"));
    add(a, &l, "zeta", fx_str(a, "x"));
    add(a, &l, "alpha", fx_str(a, "x"));
    add(a, &l, "redaction.redacted.keys", fx_str(a, "mid,beta"));
    add(a, &l, "redaction.redacted.count", fx_int(a, 2));
    run(p, a, &l);
    assert_str(get(&l, "redaction.redacted.keys"), "alpha,beta,mid,zeta");
    assert_int(get(&l, "redaction.redacted.count"), 4);
    th_redaction_proc_destroy(p);

    /* silent: nothing added */
    s.summary = TH_REDACTION_SILENT;
    p = make(&s);
    l = (struct list){0};
    add(a, &l, "zeta", fx_str(a, "x"));
    run(p, a, &l);
    assert_int_equal(l.n, 0);
    th_redaction_proc_destroy(p);
    th_arena_destroy(a);
}

/* Resource, scope, span, event and link attributes are each redacted, each with its own
 * summary. */
static void test_every_list(void **state)
{
    (void)state;
    struct th_redaction_settings s = {.allow_all_keys = true,
                                      .blocked_values =
                                          LIST("IOError", "follows", "checkout", "^s$", "redis"),
                                      .summary = TH_REDACTION_DEBUG};
    th_redaction_proc_t *p = make(&s);
    th_batch_t *b = fx_batch();
    assert_int_equal(th_redaction_proc_traces(p, b), 0);
    th_otlp_resource_spans_t *rs = b->req->resource_spans[0];
    struct list res = {rs->resource->attributes, rs->resource->n_attributes};
    assert_str(get(&res, "service.name"), "****");
    assert_str(get(&res, "redaction.masked.keys"), "service.name");
    th_otlp_scope_spans_t *ss = rs->scope_spans[0];
    struct list scope = {ss->scope->attributes, ss->scope->n_attributes};
    assert_str(get(&scope, "scope.attr"), "****");
    assert_int(get(&scope, "redaction.masked.count"), 1);
    th_otlp_span_t *root = ss->spans[0];
    struct list ev = {root->events[0]->attributes, root->events[0]->n_attributes};
    assert_str(get(&ev, "exception.type"), "****");
    assert_str(get(&ev, "redaction.masked.keys"), "exception.type");
    struct list ln = {root->links[0]->attributes, root->links[0]->n_attributes};
    assert_str(get(&ln, "link.kind"), "****");
    assert_int(get(&ln, "redaction.masked.count"), 1);
    struct list span = {root->attributes, root->n_attributes};
    assert_null(get(&span, "redaction.masked.count")); /* nothing to mask on the root */
    struct list kid = {ss->spans[1]->attributes, ss->spans[1]->n_attributes};
    assert_str(get(&kid, "db.system"), "****");
    assert_int(get(&kid, "redaction.masked.count"), 1);
    th_batch_release(b);
    th_redaction_proc_destroy(p);
}

/* A pattern that backtracks exponentially hits the match limit; the value is masked whole
 * (fail closed) instead of the collector stalling. */
static void test_match_limit(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_redaction_settings s = {.allow_all_keys = true, .blocked_values = LIST("(a|aa)+$")};
    th_redaction_proc_t *p = make(&s);
    char evil[64];
    memset(evil, 'a', 48);
    evil[48] = 'b';
    evil[49] = '\0';
    struct list l = {0};
    add(a, &l, "v", fx_str(a, evil));
    add(a, &l, "fine", fx_str(a, "aaa"));
    run(p, a, &l);
    assert_str(get(&l, "v"), "****");
    assert_str(get(&l, "fine"), "****");
    assert_true(th_redaction_proc_stats(p).limit_hits >= 1);
    th_redaction_proc_destroy(p);
    th_arena_destroy(a);
}

/* Patterns matching the empty string put a mask between every two characters, and each
 * pattern multiplies the length: past (length + 1) × 161 + 4096 the value is masked whole. */
static void test_growth_limit(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_redaction_settings s = {.allow_all_keys = true,
                                      .blocked_values = LIST("zzz", "a|", "b|", "c|"),
                                      .hash_function = TH_REDACTION_SHA1};
    th_redaction_proc_t *p = make(&s);
    assert_int_equal(th_redaction_proc_empty_match(p), 1);
    struct list l = {0};
    add(a, &l, "v", fx_str(a, "hello world"));
    run(p, a, &l);
    /* sha1("hello world"), computed independently */
    assert_str(get(&l, "v"), "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
    assert_int_equal(th_redaction_proc_stats(p).limit_hits, 1);
    th_redaction_proc_destroy(p);

    s.blocked_values = LIST("\\d+", "x");
    p = make(&s);
    assert_int_equal(th_redaction_proc_empty_match(p), -1);
    th_redaction_proc_destroy(p);
    th_arena_destroy(a);
}

/* ---- The component ---------------------------------------------------------------------- */

struct capture {
    struct th_consumer base;
    th_batch_t *got;
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    th_batch_release(c->got);
    c->got = b;
    return 0;
}

static void test_component(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    const char *yaml = "allowed_keys: [http.method]\nsummary: info\nurl_sanitizer:\n  enabled: "
                       "true\n";
    th_node_t *node;
    char err[512];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    struct th_redaction_cfg cfg;
    assert_int_equal(
        th_cfg_decode(th_redaction_config_fields, node, &cfg, a, "p", err, sizeof(err)), 0);
    assert_true(th_processor_redaction_ops.caps & TH_CAP_MUTATES);
    struct capture cap = {.base = {.consume = capture_consume}};
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_processor_redaction_ops, "redaction", &cfg, &cap.base, &c), 0);
    struct fx_acks acks = {0};
    th_batch_t *b = fx_batch();
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    th_otlp_span_t *root = cap.got->req->resource_spans[0]->scope_spans[0]->spans[0];
    struct list span = {root->attributes, root->n_attributes};
    assert_str(get(&span, "http.method"), "GET");
    assert_int(get(&span, "redaction.redacted.count"), 12);
    assert_int_equal(span.n, 2);
    th_batch_release(cap.got);
    assert_int_equal(acks.settled, 1);
    assert_int_equal(acks.result, 0);
    th_component_destroy(c);
    th_arena_destroy(a);
}

/* ---- Allocation failures ------------------------------------------------------------------ */

static long fail_after = -1;

static void *fail_malloc(size_t n)
{
    if (fail_after == 0) {
        return NULL;
    }
    if (fail_after > 0) {
        fail_after--;
    }
    return malloc(n);
}

static void *fail_calloc(size_t n, size_t s)
{
    void *p = fail_malloc(n * s);
    if (p) {
        memset(p, 0, n * s);
    }
    return p;
}

static void *fail_realloc(void *p, size_t n)
{
    return fail_after == 0 ? NULL : realloc(p, n);
}

static const struct th_mem_methods failing = {fail_malloc, fail_calloc, fail_realloc, free};

static void test_oom(void **state)
{
    (void)state;
    struct th_redaction_settings s = {.allowed_keys = LIST("http.method", "db.system"),
                                      .blocked_values = LIST("GET", "redis"),
                                      .hash_function = TH_REDACTION_SHA1,
                                      .summary = TH_REDACTION_DEBUG};
    char err[256];
    for (long n = 0;; n++) {
        th_redaction_proc_t *p = NULL;
        th_mem_set_methods(&failing);
        fail_after = n;
        int ret = th_redaction_proc_create(&s, &p, err, sizeof(err));
        fail_after = -1;
        th_mem_set_methods(NULL);
        if (ret == 0) {
            th_redaction_proc_destroy(p);
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
    }
    th_redaction_proc_t *p = make(&s);
    for (long n = 0;; n++) {
        th_batch_t *b = fx_batch();
        th_mem_set_methods(&failing);
        fail_after = n;
        int ret = th_redaction_proc_traces(p, b);
        fail_after = -1;
        th_mem_set_methods(NULL);
        th_batch_release(b);
        if (ret == 0) {
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
    }
    th_redaction_proc_destroy(p);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_allow_and_delete),
        cmocka_unit_test(test_mask_by_key_and_value),
        cmocka_unit_test(test_replace_semantics),
        cmocka_unit_test(test_hash_functions),
        cmocka_unit_test(test_summary_merge),
        cmocka_unit_test(test_every_list),
        cmocka_unit_test(test_match_limit),
        cmocka_unit_test(test_growth_limit),
        cmocka_unit_test(test_component),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
