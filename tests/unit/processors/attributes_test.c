/*
 * Tests of the attributes processor: every validation error of the Collector (with the key
 * path), the seven actions on every value type, YAML typing of values, the include/exclude
 * filters, the component in a pipeline, and allocation failures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th/component.h"
#include "th/log.h"
#include "th/otlp.h"
#include "processors/attributes/attributes.h"
#include "processors/attributes/attributes_value.h"
#include "../exporters/exporter_fixture.h"

/* ---- Helpers ---------------------------------------------------------------------------- */

/* Decode YAML into settings (in @p a); @return the result, message in err. */
static int settings_from_yaml(th_arena_t *a, const char *yaml, struct th_attributes_settings *s,
                              char *err, size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    assert_int_equal(ret, 0);
    struct th_attributes_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    ret = th_cfg_decode(th_attributes_config_fields, node, &cfg, a, "", err, errlen);
    if (ret != 0) {
        return ret;
    }
    return th_attributes_settings_decode(&cfg, a, s, err, errlen);
}

static th_attributes_proc_t *proc_from_yaml(const char *yaml)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_attributes_settings s;
    char err[1024] = "";
    int ret = settings_from_yaml(a, yaml, &s, err, sizeof(err));
    if (ret != 0) {
        fail_msg("settings: %s", err);
    }
    th_attributes_proc_t *p = NULL;
    ret = th_attributes_proc_create(&s, &p, err, sizeof(err));
    if (ret != 0) {
        fail_msg("create: %s", err);
    }
    th_arena_destroy(a); /* the processor keeps its own copies */
    return p;
}

/* Expect a config error whose text contains @p want. */
static void expect_error(const char *yaml, const char *want)
{
    th_arena_t *a = th_arena_create(0, 0);
    struct th_attributes_settings s;
    char err[1024] = "";
    int ret = settings_from_yaml(a, yaml, &s, err, sizeof(err));
    if (ret != TH_ECONFIG || !strstr(err, want)) {
        fail_msg("config:\n%s\nwant an error containing: %s\ngot %d: %s", yaml, want, ret, err);
    }
    th_arena_destroy(a);
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

static void apply(th_attributes_proc_t *p, th_arena_t *a, struct list *l)
{
    assert_int_equal(th_attributes_proc_apply(p, a, &l->kvs, &l->n), 0);
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

static void assert_double(const th_otlp_any_t *v, double want)
{
    assert_non_null(v);
    assert_int_equal(v->value_case, TH__ANY_DOUBLE);
    assert_true(v->double_value == want);
}

/* ---- Validation --------------------------------------------------------------------------- */

static void test_validation_errors(void **state)
{
    (void)state;
    expect_error("{}", "missing required field \"actions\"");
    expect_error("actions: []", "missing required field \"actions\"");
    expect_error("actions: {a: 1}", "actions: expected a list");
    expect_error("actions:\n  - key: a\n    action: frobnicate\n",
                 "actions::0::action: unsupported action \"frobnicate\"");
    expect_error("actions:\n  - {key: a, action: delete}\n  - {key: b, action: nope}\n",
                 "actions::1::action: unsupported action \"nope\"");
    /* key is checked before the action name, as the Collector does */
    expect_error("actions:\n  - {action: nope}\n", "actions::0: missing required field \"key\"");
    expect_error("actions:\n  - {action: insert, value: 1}\n",
                 "actions::0: missing required field \"key\"");
    expect_error("actions:\n  - {action: delete}\n",
                 "actions::0: missing required field (at least one of \"key\" and \"pattern\" "
                 "have to be used)");
    expect_error("actions:\n  - {key: a, action: insert}\n",
                 "actions::0: either field \"value\", \"from_attribute\" or \"from_context\" "
                 "setting must be specified");
    expect_error("actions:\n  - {key: a, action: upsert, value: 1, from_attribute: b}\n",
                 "actions::0: multiple value sources");
    expect_error("actions:\n  - {key: a, action: update, from_context: x, from_attribute: b}\n",
                 "actions::0: multiple value sources");
    expect_error("actions:\n  - {key: a, action: insert, value: 1, pattern: x}\n",
                 "actions::0::pattern: action \"insert\" does not use the \"pattern\" field");
    expect_error("actions:\n  - {key: a, action: UPSERT, value: 1, converted_type: int}\n",
                 "actions::0::converted_type: action \"upsert\" does not use the "
                 "\"converted_type\" field");
    expect_error("actions:\n  - {key: a, action: hash, value: 1}\n",
                 "actions::0: action \"hash\" does not use \"value\" or \"from_attribute\"");
    expect_error("actions:\n  - {key: a, action: delete, from_attribute: b}\n",
                 "actions::0: action \"delete\" does not use \"value\" or \"from_attribute\"");
    expect_error("actions:\n  - {key: a, action: delete, pattern: '('}\n",
                 "actions::0::pattern: invalid regular expression \"(\": missing closing "
                 "parenthesis at offset 1");
    expect_error("actions:\n  - {key: a, action: delete, default_value: 1}\n",
                 "actions::0::default_value: action \"delete\" does not use");
    expect_error("actions:\n  - {key: a, action: extract}\n",
                 "actions::0: missing required field \"pattern\" for action \"extract\"");
    expect_error("actions:\n  - {key: a, action: extract, pattern: 'a(b)'}\n",
                 "actions::0::pattern: contains at least one unnamed matcher group");
    expect_error("actions:\n  - {key: a, action: extract, pattern: 'ab'}\n",
                 "actions::0::pattern: contains no named matcher groups");
    expect_error("actions:\n  - {key: a, action: extract, pattern: '(?P<x>a)', value: 1}\n",
                 "actions::0: action \"extract\" does not use a value source field");
    expect_error("actions:\n  - {key: a, action: convert}\n",
                 "actions::0: missing required field \"converted_type\" for action \"convert\"");
    expect_error("actions:\n  - {key: a, action: convert, converted_type: float}\n",
                 "actions::0::converted_type: invalid value \"float\"");
    expect_error("actions:\n  - {key: a, action: convert, converted_type: int, pattern: x}\n",
                 "actions::0: action \"convert\" does not use value sources or \"pattern\"");
    expect_error("actions:\n  - {key: a, action: delete, colour: red}\n",
                 "actions::0::colour: unknown key");
    expect_error("actions:\n  - {key: a, action: delete, pattern: [x]}\n",
                 "actions::0::pattern: expected");

    /* include / exclude */
    const char *acts = "actions:\n  - {key: a, action: delete}\n";
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "%sinclude: {match_type: strict}\n", acts);
    expect_error(yaml, "include: at least one of \"attributes\", \"libraries\",  or "
                       "\"resources\" field must be specified");
    snprintf(yaml, sizeof(yaml), "%sexclude: {match_type: strict, log_bodies: [x]}\n", acts);
    expect_error(yaml, "exclude: log_bodies should not be specified for trace spans");
    snprintf(yaml, sizeof(yaml), "%sinclude: {match_type: strict, span_kinds: [server]}\n", acts);
    expect_error(yaml, "include::span_kinds::0: span_kinds string must match one of the "
                       "standard span kinds when match_type=strict");
    snprintf(yaml, sizeof(yaml), "%sinclude: {match_type: fuzzy, services: [a]}\n", acts);
    expect_error(yaml, "include::services: error creating service name filters: unrecognized "
                       "match_type: 'fuzzy', valid types are: [regexp strict]");
    snprintf(yaml, sizeof(yaml), "%sinclude: {services: [a]}\n", acts);
    expect_error(yaml, "unrecognized match_type: ''");
    snprintf(yaml, sizeof(yaml), "%sinclude: {match_type: regexp, span_names: ['a', '[']}\n", acts);
    expect_error(yaml, "include::span_names::1: invalid regular expression \"[\"");
    snprintf(yaml, sizeof(yaml),
             "%sinclude: {match_type: regexp, attributes: [{key: k, value: 5}]}\n", acts);
    expect_error(yaml, "include::attributes::0::value: error creating attribute filters: "
                       "match_type=regexp for \"k\" only supports Str, but found Int");
    snprintf(yaml, sizeof(yaml), "%sinclude: {match_type: strict, resources: [{value: 5}]}\n",
             acts);
    expect_error(yaml, "include::resources::0: error creating resource filters: can't have "
                       "empty key in the list of attributes");
    snprintf(yaml, sizeof(yaml), "%sexclude: {libraries: [{name: x}]}\n", acts);
    expect_error(yaml, "exclude::libraries::0::name: error creating library name filters");

    /* What is valid: key presence needs no match_type; a null block is no block. */
    th_attributes_proc_t *p = proc_from_yaml(
        "actions:\n  - {key: a, action: delete}\ninclude: {attributes: [{key: k}]}\nexclude:\n");
    th_attributes_proc_destroy(p);
}

/* The config check the collector runs names the path too. */
static void test_config_check(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    const char *yaml = "actions:\n  - {key: a, action: delete}\n  - {key: b, action: bogus}\n";
    th_node_t *node;
    char err[512];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    struct th_attributes_cfg cfg;
    assert_int_equal(
        th_cfg_decode(th_attributes_config_fields, node, &cfg, a, "p", err, sizeof(err)), 0);
    const char *why = NULL;
    assert_int_equal(th_attributes_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "actions::1::action: unsupported action \"bogus\"");
    th_arena_destroy(a);
}

/* ---- Actions ------------------------------------------------------------------------------ */

static void test_insert_update_upsert(void **state)
{
    (void)state;
    th_attributes_proc_t *p =
        proc_from_yaml("actions:\n"
                       "  - {key: ins, action: insert, value: 123}\n"
                       "  - {key: present, action: insert, value: no}\n"
                       "  - {key: present2, action: update, value: 2.5}\n"
                       "  - {key: absent, action: update, value: true}\n"
                       "  - {key: up1, action: upsert, value: \"123\"}\n"
                       "  - {key: up2, action: UpSert, value: 0x1F}\n"
                       "  - {key: list, action: upsert, value: [1, a, 2.5]}\n"
                       "  - {key: map, action: upsert, value: {x: 1}}\n"
                       "  - {key: t, action: insert, value: True}\n"
                       "  - {key: copy, action: insert, from_attribute: present}\n"
                       "  - {key: nocopy, action: insert, from_attribute: ghost}\n"
                       "  - {key: present2, action: upsert, from_attribute: present2}\n");
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    add(a, &l, "present", fx_str(a, "kept"));
    add(a, &l, "present2", fx_int(a, 7));
    add(a, &l, "up1", fx_int(a, 1));
    apply(p, a, &l);
    assert_int(get(&l, "ins"), 123);
    assert_str(get(&l, "present"), "kept");
    assert_double(get(&l, "present2"), 2.5);
    assert_null(get(&l, "absent"));
    assert_str(get(&l, "up1"), "123"); /* quoted: a string, as YAML types it */
    assert_int(get(&l, "up2"), 31);
    const th_otlp_any_t *list = get(&l, "list");
    assert_int_equal(list->value_case, TH__ANY_ARRAY);
    assert_int_equal(list->array_value->n_values, 3);
    assert_int(list->array_value->values[0], 1);
    assert_str(list->array_value->values[1], "a");
    assert_double(list->array_value->values[2], 2.5);
    const th_otlp_any_t *map = get(&l, "map");
    assert_int_equal(map->value_case, TH__ANY_KVLIST);
    assert_string_equal(map->kvlist_value->values[0]->key, "x");
    assert_int_equal(get(&l, "t")->value_case, TH__ANY_BOOL);
    assert_true(get(&l, "t")->bool_value);
    assert_str(get(&l, "copy"), "kept");
    assert_null(get(&l, "nocopy"));
    /* Existing keys keep their place; new ones are appended in action order. */
    assert_string_equal(l.kvs[0]->key, "present");
    assert_string_equal(l.kvs[1]->key, "present2");
    assert_string_equal(l.kvs[2]->key, "up1");
    assert_string_equal(l.kvs[3]->key, "ins");
    /* The copy is deep: changing the source later does not change it. */
    get(&l, "present")->string_value = "changed";
    assert_str(get(&l, "copy"), "kept");
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_default_value_and_context(void **state)
{
    (void)state;
    setenv("TH_ATTR_TEST_SET", "from-env", 1);
    unsetenv("TH_ATTR_TEST_UNSET");
    th_attributes_proc_t *p = proc_from_yaml(
        "actions:\n"
        "  - {key: a, action: upsert, from_attribute: ghost, default_value: dflt}\n"
        "  - {key: b, action: insert, from_context: metadata.x-tenant, default_value: 7}\n"
        "  - {key: c, action: insert, from_context: metadata.x-tenant}\n"
        "  - {key: d, action: insert, value: '${env:TH_ATTR_TEST_UNSET}', default_value: z}\n"
        "  - key: e\n"
        "    action: insert\n"
        "    value: ${env:TH_ATTR_TEST_UNSET}\n"
        "    default_value: z\n"
        "  - key: f\n"
        "    action: insert\n"
        "    value: ${env:TH_ATTR_TEST_SET}\n"
        "    default_value: z\n"
        "  - {key: g, action: insert, value: '', default_value: z}\n");
    assert_true(th_attributes_proc_uses_context(p));
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    apply(p, a, &l);
    assert_str(get(&l, "a"), "dflt");
    assert_int(get(&l, "b"), 7);
    assert_null(get(&l, "c"));     /* client metadata does not exist: a missing source */
    assert_str(get(&l, "d"), "z"); /* an unset variable is no value, quoted or not */
    assert_str(get(&l, "e"), "z");
    assert_str(get(&l, "g"), ""); /* an empty string is a value */
    assert_str(get(&l, "f"), "from-env");
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_delete(void **state)
{
    (void)state;
    th_attributes_proc_t *p = proc_from_yaml("actions:\n"
                                             "  - {key: db.table, action: delete}\n"
                                             "  - {pattern: '^secret\\.', action: DELETE}\n");
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    add(a, &l, "keep1", fx_int(a, 1));
    add(a, &l, "secret.a", fx_str(a, "x"));
    add(a, &l, "db.table", fx_str(a, "users"));
    add(a, &l, "keep2", fx_int(a, 2));
    add(a, &l, "secret.b", fx_str(a, "y"));
    add(a, &l, "not.secret.c", fx_str(a, "z"));
    apply(p, a, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.kvs[0]->key, "keep1");
    assert_string_equal(l.kvs[1]->key, "keep2");
    assert_string_equal(l.kvs[2]->key, "not.secret.c");
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_hash(void **state)
{
    (void)state;
    th_attributes_proc_t *p = proc_from_yaml("actions:\n"
                                             "  - {key: s, action: hash}\n"
                                             "  - {key: i, action: hash}\n"
                                             "  - {key: neg, action: hash}\n"
                                             "  - {key: b, action: hash}\n"
                                             "  - {key: d, action: hash}\n"
                                             "  - {key: empty, action: hash}\n"
                                             "  - {key: m, action: hash}\n"
                                             "  - {key: absent, action: hash}\n"
                                             "  - {pattern: '^mail', action: hash}\n");
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    add(a, &l, "s", fx_str(a, "abc"));
    add(a, &l, "i", fx_int(a, 1));
    add(a, &l, "neg", fx_int(a, -2));
    add(a, &l, "b", fx_bool(a, true));
    add(a, &l, "d", fx_double(a, 1.5));
    add(a, &l, "empty", fx_str(a, ""));
    add(a, &l, "m", fx_kvlist(a, 0, NULL));
    add(a, &l, "mail", fx_str(a, "user@example.com"));
    apply(p, a, &l);
    /* Expected digests computed independently (Python hashlib). */
    assert_str(get(&l, "s"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_str(get(&l, "i"), "7c9fa136d4413fa6173637e883b6998d32e1d675f88cddff9dcbcf331820f4b8");
    assert_str(get(&l, "neg"), "81b37f7f8b78762feb067131152a700548754f937a0668c1f327d2ee1a2d2801");
    assert_str(get(&l, "b"), "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a");
    assert_str(get(&l, "d"), "e163f8cb0f7067a7fc78ca859a77f849aea3214f38fb75b884e4a16be725c905");
    assert_str(get(&l, "empty"), "");
    assert_str(get(&l, "m"), "");
    assert_null(get(&l, "absent"));
    assert_str(get(&l, "mail"), "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514");
    th_attributes_proc_destroy(p);

    /* A key that also matches the pattern is hashed twice, as in the Collector. */
    p = proc_from_yaml("actions:\n  - {key: s, pattern: '^s$', action: hash}\n");
    l = (struct list){0};
    add(a, &l, "s", fx_str(a, "abc"));
    apply(p, a, &l);
    /* sha256 of the hex text of sha256("abc") */
    assert_str(get(&l, "s"), "dfe7a23fefeea519e9bbfdd1a6be94c4b2e4529dd6b7cbea83f9959c2621b13c");
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_extract(void **state)
{
    (void)state;
    th_attributes_proc_t *p =
        proc_from_yaml("actions:\n"
                       "  - key: http.url\n"
                       "    pattern: '^(?P<scheme>https?)://(?P<host>[^/:]+)(?::(?P<port>\\d+))?'\n"
                       "    action: extract\n");
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    add(a, &l, "http.url", fx_str(a, "https://shop.example.com/cart?id=1"));
    add(a, &l, "host", fx_str(a, "old"));
    apply(p, a, &l);
    assert_str(get(&l, "http.url"), "https://shop.example.com/cart?id=1"); /* source kept */
    assert_str(get(&l, "scheme"), "https");
    assert_str(get(&l, "host"), "shop.example.com"); /* overwritten */
    assert_str(get(&l, "port"), "");                 /* optional group that did not match */
    assert_int_equal(l.n, 4);

    /* Not a string, or no match: nothing happens. */
    struct list l2 = {0};
    add(a, &l2, "http.url", fx_int(a, 5));
    apply(p, a, &l2);
    assert_int_equal(l2.n, 1);
    struct list l3 = {0};
    add(a, &l3, "http.url", fx_str(a, "ftp://x"));
    apply(p, a, &l3);
    assert_int_equal(l3.n, 1);
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

static void test_convert(void **state)
{
    (void)state;
    th_attributes_proc_t *p =
        proc_from_yaml("actions:\n"
                       "  - {key: i1, action: convert, converted_type: int}\n"
                       "  - {key: i2, action: convert, converted_type: int}\n"
                       "  - {key: i3, action: convert, converted_type: int}\n"
                       "  - {key: i4, action: convert, converted_type: int}\n"
                       "  - {key: i5, action: convert, converted_type: int}\n"
                       "  - {key: d1, action: convert, converted_type: double}\n"
                       "  - {key: d2, action: convert, converted_type: double}\n"
                       "  - {key: d3, action: convert, converted_type: double}\n"
                       "  - {key: d4, action: convert, converted_type: double}\n"
                       "  - {key: s1, action: convert, converted_type: string}\n"
                       "  - {key: s2, action: convert, converted_type: string}\n"
                       "  - {key: s3, action: convert, converted_type: string}\n"
                       "  - {key: s4, action: convert, converted_type: string}\n"
                       "  - {key: s5, action: convert, converted_type: string}\n"
                       "  - {key: s6, action: convert, converted_type: string}\n"
                       "  - {key: s7, action: convert, converted_type: string}\n");
    th_arena_t *a = th_arena_create(0, 0);
    struct list l = {0};
    add(a, &l, "i1", fx_double(a, -3.9));
    add(a, &l, "i2", fx_bool(a, true));
    add(a, &l, "i3", fx_str(a, "-123"));
    add(a, &l, "i4", fx_str(a, "12x"));
    add(a, &l, "i5", fx_str(a, "1.5"));
    add(a, &l, "d1", fx_int(a, 3));
    add(a, &l, "d2", fx_bool(a, false));
    add(a, &l, "d3", fx_str(a, "2.5e3"));
    add(a, &l, "d4", fx_str(a, "abc"));
    add(a, &l, "s1", fx_int(a, 42));
    add(a, &l, "s2", fx_double(a, 1e21));
    add(a, &l, "s3", fx_double(a, 1e-7));
    add(a, &l, "s4", fx_double(a, 0.1));
    add(a, &l, "s5", fx_bool(a, false));
    th_otlp_kv_t *inner[] = {fx_kv(a, "z", fx_int(a, 1)), fx_kv(a, "a", fx_str(a, "<&>"))};
    add(a, &l, "s6", fx_kvlist(a, 2, inner));
    static const uint8_t raw[] = {0x00, 0x01, 0xfe, 0xff, 'h', 'i'};
    add(a, &l, "s7", fx_bytes(a, raw, sizeof(raw)));
    apply(p, a, &l);
    assert_int(get(&l, "i1"), -3);
    assert_int(get(&l, "i2"), 1);
    assert_int(get(&l, "i3"), -123);
    assert_str(get(&l, "i4"), "12x"); /* unchanged when it does not parse */
    assert_str(get(&l, "i5"), "1.5");
    assert_double(get(&l, "d1"), 3.0);
    assert_double(get(&l, "d2"), 0.0);
    assert_double(get(&l, "d3"), 2500.0);
    assert_str(get(&l, "d4"), "abc");
    assert_str(get(&l, "s1"), "42");
    assert_str(get(&l, "s2"), "1e+21");
    assert_str(get(&l, "s3"), "1e-7");
    assert_str(get(&l, "s4"), "0.1");
    assert_str(get(&l, "s5"), "false");
    assert_str(get(&l, "s6"), "{\"a\":\"\\u003c\\u0026\\u003e\",\"z\":1}");
    assert_str(get(&l, "s7"), "AAH+/2hp");
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

/* pcommon's AsString() and strconv's 'f' formatting, which convert and the filters use. */
static void test_as_string(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    static const struct {
        double d;
        const char *es6, *plain;
    } v[] = {
        {0.1, "0.1", "0.1"},
        {1e20, "100000000000000000000", "100000000000000000000"},
        {1e21, "1e+21", "1000000000000000000000"},
        {1e-6, "0.000001", "0.000001"},
        {1.5e-7, "1.5e-7", "0.00000015"},
        {5e-324, "5e-324", NULL},
        {1.7976931348623157e308, "1.7976931348623157e+308", NULL},
        {-2.5, "-2.5", "-2.5"},
        {123456789.123, "123456789.123", "123456789.123"},
        {-0.0, "-0", "-0"},
        {NAN, "json: unsupported value: NaN", "NaN"},
        {-INFINITY, "json: unsupported value: -Inf", "-Inf"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(v); i++) {
        const char *s;
        size_t len;
        assert_int_equal(th__attributes_value_as_string(a, fx_double(a, v[i].d), &s, &len), 0);
        assert_string_equal(s, v[i].es6);
        assert_int_equal(len, strlen(v[i].es6));
        if (v[i].plain) {
            char buf[400];
            th__attributes_fmt_double_plain(v[i].d, buf, sizeof(buf));
            assert_string_equal(buf, v[i].plain);
        }
    }
    /* JSON of arrays and maps: Go's encoding/json (sorted keys, HTML-safe escapes, the last
     * of duplicate keys, base64 bytes, null for empty, "" when a double is not finite) */
    static const uint8_t raw[] = {'h', 'i', '!'};
    th_otlp_kv_t *inner[] = {fx_kv(a, "b", fx_bool(a, true)), fx_kv(a, "a", fx_int(a, 1)),
                             fx_kv(a, "b", fx_str(a, "last\t\"wins\"\x01")),
                             fx_kv(a, "e", fx_any(a))};
    th_otlp_any_t *items[] = {fx_kvlist(a, 4, inner), fx_double(a, 2.5), fx_bytes(a, raw, 3),
                              fx_str(a, "\xff\xe2\x80\xa8")};
    const char *s;
    size_t len;
    assert_int_equal(th__attributes_value_as_string(a, fx_array(a, 4, items), &s, &len), 0);
    assert_string_equal(s,
                        "[{\"a\":1,\"b\":\"last\\t\\\"wins\\\"\\u0001\",\"e\":null},2.5,\"aGkh\","
                        "\"\\ufffd\\u2028\"]");
    th_otlp_any_t *bad[] = {fx_double(a, NAN)};
    assert_int_equal(th__attributes_value_as_string(a, fx_array(a, 1, bad), &s, &len), 0);
    assert_string_equal(s, "");
    th_arena_destroy(a);
}

/* ---- include / exclude ------------------------------------------------------------------ */

/* Run a processor that upserts touched=true over the fixture; @return which of the three
 * spans (root SERVER "GET /cart", kid CLIENT "redis GET", leaf INTERNAL "serialize") were
 * touched, as a bit mask. */
static unsigned touched(const char *filters)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "actions:\n  - {key: touched, action: upsert, value: true}\n%s",
             filters);
    th_attributes_proc_t *p = proc_from_yaml(yaml);
    th_batch_t *b = fx_batch();
    assert_int_equal(th_attributes_proc_traces(p, b), 0);
    unsigned mask = 0;
    th_otlp_scope_spans_t *ss = b->req->resource_spans[0]->scope_spans[0];
    for (size_t i = 0; i < ss->n_spans; i++) {
        if (th__attributes_get(ss->spans[i]->attributes, ss->spans[i]->n_attributes, "touched")) {
            mask |= 1u << i;
        }
    }
    th_batch_release(b);
    th_attributes_proc_destroy(p);
    return mask;
}

static void test_filters(void **state)
{
    (void)state;
    assert_int_equal(touched(""), 7);
    assert_int_equal(touched("include: {match_type: strict, services: [checkout]}\n"), 7);
    assert_int_equal(touched("include: {match_type: strict, services: [other]}\n"), 0);
    assert_int_equal(touched("include: {match_type: regexp, services: ['^check']}\n"), 7);
    assert_int_equal(touched("include: {match_type: strict, span_names: ['redis GET']}\n"), 2);
    assert_int_equal(touched("include: {match_type: regexp, span_names: [GET]}\n"), 3);
    assert_int_equal(touched("exclude: {match_type: regexp, span_names: [GET]}\n"), 4);
    assert_int_equal(touched("include: {match_type: strict, span_kinds: [SPAN_KIND_SERVER, "
                             "SPAN_KIND_INTERNAL]}\n"),
                     5);
    assert_int_equal(touched("include: {match_type: regexp, span_kinds: [CLIENT]}\n"), 2);
    /* attributes: typed strict equality; int 500 is not the string "500" */
    assert_int_equal(
        touched("include: {match_type: strict, attributes: [{key: http.status_code, value: "
                "500}]}\n"),
        1);
    assert_int_equal(
        touched("include: {match_type: strict, attributes: [{key: http.status_code, value: "
                "'500'}]}\n"),
        0);
    assert_int_equal(touched("include: {match_type: regexp, attributes: [{key: http.status_code, "
                             "value: '^5'}]}\n"),
                     1);
    assert_int_equal(touched("include: {attributes: [{key: db.system}]}\n"), 2);
    assert_int_equal(touched("include: {match_type: strict, resources: [{key: host.cpus, value: "
                             "8}]}\n"),
                     7);
    assert_int_equal(touched("include: {match_type: strict, resources: [{key: host.cpus, value: "
                             "9}]}\n"),
                     0);
    assert_int_equal(touched("include: {match_type: strict, libraries: [{name: "
                             "io.tracehouse.test}]}\n"),
                     7);
    assert_int_equal(touched("include: {match_type: strict, libraries: [{name: "
                             "io.tracehouse.test, version: 1.2.3}]}\n"),
                     7);
    assert_int_equal(touched("include: {match_type: strict, libraries: [{name: "
                             "io.tracehouse.test, version: ''}]}\n"),
                     0);
    /* every condition must hold; exclude is applied after include */
    assert_int_equal(touched("include: {match_type: regexp, span_names: [GET], span_kinds: "
                             "[SERVER]}\n"),
                     1);
    assert_int_equal(touched("include: {match_type: regexp, span_names: [GET]}\n"
                             "exclude: {match_type: strict, span_kinds: [SPAN_KIND_SERVER]}\n"),
                     2);
}

/* ---- The component ---------------------------------------------------------------------- */

struct capture {
    struct th_consumer base;
    th_batch_t *got;
    int calls;
};

static int capture_consume(struct th_consumer *self, th_batch_t *b)
{
    struct capture *c = (struct capture *)self;
    c->calls++;
    th_batch_release(c->got);
    c->got = b;
    return 0;
}

static void test_component(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    const char *yaml = "actions:\n  - {key: http.method, action: delete}\n"
                       "  - {key: env, action: insert, value: prod}\n";
    th_node_t *node;
    char err[512];
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", a, &node, err, sizeof(err)), 0);
    struct th_attributes_cfg cfg;
    assert_int_equal(
        th_cfg_decode(th_attributes_config_fields, node, &cfg, a, "p", err, sizeof(err)), 0);
    const char *why = NULL;
    assert_int_equal(th_processor_attributes_ops.config_check(&cfg, &why), 0);
    assert_true(th_processor_attributes_ops.caps & TH_CAP_MUTATES);
    struct capture cap = {.base = {.consume = capture_consume}};
    struct th_component *c = NULL;
    assert_int_equal(
        th_component_create(&th_processor_attributes_ops, "attributes/x", &cfg, &cap.base, &c), 0);
    struct fx_acks acks = {0};
    th_batch_t *b = fx_batch();
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
    assert_int_equal(cap.calls, 1);
    th_otlp_span_t *root = cap.got->req->resource_spans[0]->scope_spans[0]->spans[0];
    assert_null(th__attributes_get(root->attributes, root->n_attributes, "http.method"));
    assert_str(th__attributes_get(root->attributes, root->n_attributes, "env"), "prod");
    assert_int_equal(acks.settled, 0);
    th_batch_release(cap.got);
    assert_int_equal(acks.settled, 1);
    assert_int_equal(acks.result, 0);
    th_component_destroy(c);
    th_arena_destroy(a);
}

/* ---- Allocation failures -------------------------------------------------------------------- */

static long fail_after = -1; /* allocations allowed before failing; -1: never fail */

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
    if (fail_after == 0) {
        return NULL;
    }
    if (fail_after > 0) {
        fail_after--;
    }
    return realloc(p, n);
}

static const struct th_mem_methods failing = {fail_malloc, fail_calloc, fail_realloc, free};

static void test_oom(void **state)
{
    (void)state;
    const char *yaml = "actions:\n  - {key: a, action: upsert, value: [1, 2]}\n"
                       "  - {key: b, pattern: '^x', action: hash}\n"
                       "include: {match_type: regexp, span_names: [GET]}\n";
    th_arena_t *a = th_arena_create(0, 0);
    struct th_attributes_settings s;
    char err[512];
    assert_int_equal(settings_from_yaml(a, yaml, &s, err, sizeof(err)), 0);
    /* create: every allocation in turn fails cleanly, until none does */
    for (long n = 0;; n++) {
        th_attributes_proc_t *p = NULL;
        th_mem_set_methods(&failing);
        fail_after = n;
        int ret = th_attributes_proc_create(&s, &p, err, sizeof(err));
        fail_after = -1;
        th_mem_set_methods(NULL);
        if (ret == 0) {
            th_attributes_proc_destroy(p);
            assert_true(n > 0);
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
        assert_null(p);
    }
    /* processing: the batch's arena cannot grow */
    th_attributes_proc_t *p = NULL;
    assert_int_equal(th_attributes_proc_create(&s, &p, err, sizeof(err)), 0);
    for (long n = 0;; n++) {
        th_batch_t *b = fx_batch();
        th_mem_set_methods(&failing);
        fail_after = n;
        int ret = th_attributes_proc_traces(p, b);
        fail_after = -1;
        th_mem_set_methods(NULL);
        th_batch_release(b);
        if (ret == 0) {
            break;
        }
        assert_int_equal(ret, TH_ENOMEM);
    }
    th_attributes_proc_destroy(p);
    th_arena_destroy(a);
}

int main(void)
{
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_insert_update_upsert),
        cmocka_unit_test(test_default_value_and_context),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_as_string),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_component),
        cmocka_unit_test(test_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
