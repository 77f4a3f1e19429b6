/*
 * Tests of the configuration layer: the YAML loader (syntax errors, limits, anchors, merge
 * keys, duplicate keys), field-table decoding (every type, bounds, choices, optional sections,
 * no-op keys, env typing), durations and sizes, component ids, and the checks th_config_parse
 * makes on top-level keys, service::pipelines and service::telemetry.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "th/config.h"

static th_arena_t *arena;
static char err[1024];

static int setup(void **state)
{
    (void)state;
    arena = th_arena_create(0, 0);
    return arena ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_arena_destroy(arena);
    return 0;
}

/* Parse YAML that must be valid. */
static const th_node_t *yaml(const char *text)
{
    th_node_t *n = NULL;
    int ret = th_yaml_parse(text, strlen(text), "test.yaml", arena, &n, err, sizeof(err));
    if (ret != 0) {
        fail_msg("parsing failed: %s", err);
    }
    return n;
}

/* Parse YAML that must fail with a message containing msg. */
static void yaml_error(const char *text, const char *msg)
{
    th_node_t *n = NULL;
    int ret = th_yaml_parse(text, strlen(text), "test.yaml", arena, &n, err, sizeof(err));
    assert_int_equal(ret, TH_ECONFIG);
    if (!strstr(err, msg)) {
        fail_msg("message \"%s\" lacks \"%s\"", err, msg);
    }
}

static void assert_contains(const char *s, const char *part)
{
    if (!strstr(s, part)) {
        fail_msg("\"%s\" lacks \"%s\"", s, part);
    }
}

/* ---- A sample field table with every type -------------------------------------------------- */

struct sub {
    int64_t a;
    const char *b;
};

struct sample {
    bool flag;
    int64_t count;
    double ratio;
    const char *name;
    const char *mode;
    int64_t timeout;
    int64_t size;
    th_strlist_t list;
    th_strmap_t headers;
    struct sub section;
    struct sub opt;
    bool opt_on;
    struct sub some;
    bool some_on;
    const th_node_t *raw;
    const char *token;
    bool legacy;
    int64_t at_least;
    double at_most;
};

static const char *const modes[] = {"fast", "Slow", NULL};

static const struct th_cfg_field sub_fields[] = {
    {.name = "a",
     .type = TH_CFG_INT,
     .def = "7",
     .offset = offsetof(struct sub, a),
     .min = 0,
     .max = 100,
     .desc = "a number"},
    {.name = "b",
     .type = TH_CFG_STRING,
     .def = "bee",
     .offset = offsetof(struct sub, b),
     .desc = "a string"},
    {0},
};

static const struct th_cfg_field sample_fields[] = {
    {.name = "flag",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct sample, flag),
     .desc = "a bool"},
    {.name = "count",
     .type = TH_CFG_INT,
     .def = "10",
     .offset = offsetof(struct sample, count),
     .min = 1,
     .max = 65535,
     .desc = "an int"},
    {.name = "ratio",
     .type = TH_CFG_DOUBLE,
     .def = "0.5",
     .offset = offsetof(struct sample, ratio),
     .min = 0,
     .max = 1,
     .desc = "a double"},
    {.name = "name",
     .type = TH_CFG_STRING,
     .def = "localhost:4318",
     .offset = offsetof(struct sample, name),
     .desc = "a string"},
    {.name = "mode",
     .type = TH_CFG_ENUM,
     .def = "fast",
     .offset = offsetof(struct sample, mode),
     .choices = modes,
     .desc = "an enum"},
    {.name = "timeout",
     .type = TH_CFG_DURATION,
     .def = "5s",
     .offset = offsetof(struct sample, timeout),
     .min = 0,
     .max = 3600e9,
     .desc = "a duration"},
    {.name = "size",
     .type = TH_CFG_SIZE,
     .def = "4MiB",
     .offset = offsetof(struct sample, size),
     .min = 1,
     .max = 1073741824.0,
     .desc = "a size"},
    {.name = "list",
     .type = TH_CFG_STRLIST,
     .def = "[a, b]",
     .offset = offsetof(struct sample, list),
     .desc = "a list"},
    {.name = "headers",
     .type = TH_CFG_STRMAP,
     .def = "{x: y}",
     .offset = offsetof(struct sample, headers),
     .desc = "a map"},
    {.name = "section",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct sample, section),
     .sub = sub_fields,
     .desc = "a section"},
    {.name = "opt",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct sample, opt),
     .aux = offsetof(struct sample, opt_on),
     .sub = sub_fields,
     .desc = "Default flavor"},
    {.name = "some",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct sample, some),
     .aux = offsetof(struct sample, some_on),
     .sub = sub_fields,
     .flags = TH_CFG_F_SOME,
     .desc = "Some flavor"},
    {.name = "raw", .type = TH_CFG_NODE, .offset = offsetof(struct sample, raw), .desc = "raw"},
    {.name = "token",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct sample, token),
     .flags = TH_CFG_F_SECRET,
     .desc = "a secret"},
    {.name = "legacy",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct sample, legacy),
     .flags = TH_CFG_F_NOOP,
     .desc = "a no-op"},
    {.name = "at_least",
     .type = TH_CFG_INT,
     .def = "1",
     .offset = offsetof(struct sample, at_least),
     .min = 1,
     .max = INFINITY,
     .desc = "one-sided"},
    {.name = "at_most",
     .type = TH_CFG_DOUBLE,
     .def = "1",
     .offset = offsetof(struct sample, at_most),
     .min = -INFINITY,
     .max = 2.5,
     .desc = "one-sided"},
    {0},
};

static int decode(const char *text, struct sample *s)
{
    memset(s, 0xa5, sizeof(*s));
    const th_node_t *n = yaml(text);
    return th_cfg_decode(sample_fields, n, s, arena, "processors::x/y", err, sizeof(err));
}

static void decode_ok(const char *text, struct sample *s)
{
    if (decode(text, s) != 0) {
        fail_msg("decoding failed: %s", err);
    }
}

static void decode_error(const char *text, const char *msg)
{
    struct sample s;
    assert_int_equal(decode(text, &s), TH_ECONFIG);
    if (strcmp(err, msg) != 0) {
        fail_msg("message \"%s\", expected \"%s\"", err, msg);
    }
}

static void assert_defaults(const struct sample *s)
{
    assert_true(s->flag);
    assert_int_equal(s->count, 10);
    assert_true(s->ratio == 0.5);
    assert_string_equal(s->name, "localhost:4318");
    assert_string_equal(s->mode, "fast");
    assert_int_equal(s->timeout, 5000000000LL);
    assert_int_equal(s->size, 4 << 20);
    assert_int_equal(s->list.n, 2);
    assert_string_equal(s->list.v[0], "a");
    assert_string_equal(s->list.v[1], "b");
    assert_int_equal(s->headers.n, 1);
    assert_string_equal(s->headers.keys[0], "x");
    assert_string_equal(s->headers.vals[0], "y");
    assert_int_equal(s->section.a, 7);
    assert_string_equal(s->section.b, "bee");
    assert_false(s->opt_on);
    assert_int_equal(s->opt.a, 7);
    assert_true(s->some_on);
    assert_int_equal(s->some.a, 7);
    assert_null(s->raw);
    assert_string_equal(s->token, "");
    assert_false(s->legacy);
}

static void test_defaults_only(void **state)
{
    (void)state;
    struct sample s;
    memset(&s, 0xa5, sizeof(s));
    assert_int_equal(th_cfg_defaults(sample_fields, &s, arena, err, sizeof(err)), 0);
    assert_defaults(&s);
    decode_ok("", &s); /* empty document: a null node */
    assert_defaults(&s);
    memset(&s, 0xa5, sizeof(s));
    assert_int_equal(th_cfg_decode(sample_fields, NULL, &s, arena, NULL, err, sizeof(err)), 0);
    assert_defaults(&s);
    decode_ok("{}", &s);
    assert_defaults(&s);
}

static void test_decode_every_type(void **state)
{
    (void)state;
    struct sample s;
    decode_ok("flag: false\n"
              "count: 0x10\n"
              "ratio: 0.25\n"
              "name: 0123\n"
              "mode: SLOW\n"
              "timeout: 1m30s\n"
              "size: 512KiB\n"
              "list: [c, 'd', \"\"]\n"
              "headers: {Authorization: Bearer x, X-Num: 5}\n"
              "section: {a: 3}\n"
              "raw: {anything: [1, 2]}\n"
              "token: hunter2\n"
              "at_least: 1_000_000\n"
              "at_most: -1e3\n",
              &s);
    assert_false(s.flag);
    assert_int_equal(s.count, 16);
    assert_true(s.ratio == 0.25);
    assert_string_equal(s.name, "0123"); /* a string keeps the text as written */
    assert_string_equal(s.mode, "Slow"); /* the table's spelling */
    assert_int_equal(s.timeout, 90000000000LL);
    assert_int_equal(s.size, 512 * 1024);
    assert_int_equal(s.list.n, 3);
    assert_string_equal(s.list.v[0], "c");
    assert_string_equal(s.list.v[1], "d");
    assert_string_equal(s.list.v[2], "");
    assert_int_equal(s.headers.n, 2);
    assert_string_equal(s.headers.keys[0], "Authorization");
    assert_string_equal(s.headers.vals[0], "Bearer x");
    assert_string_equal(s.headers.vals[1], "5");
    assert_int_equal(s.section.a, 3);
    assert_string_equal(s.section.b, "bee");
    assert_non_null(s.raw);
    assert_int_equal(s.raw->kind, TH_NODE_MAP);
    assert_non_null(th_node_get(s.raw, "anything"));
    assert_string_equal(s.token, "hunter2");
    assert_int_equal(s.at_least, 1000000);
    assert_true(s.at_most == -1000.0);
}

static void test_integers(void **state)
{
    (void)state;
    struct sample s;
    decode_ok("count: 0o17", &s);
    assert_int_equal(s.count, 15);
    decode_ok("count: 017", &s); /* Go's base-0 parse, as yaml.v3 does */
    assert_int_equal(s.count, 15);
    decode_ok("count: 0b101", &s);
    assert_int_equal(s.count, 5);
    decode_ok("count: +42", &s);
    assert_int_equal(s.count, 42);
    decode_ok("count: 1e3", &s); /* an integral float converts, as in mapstructure */
    assert_int_equal(s.count, 1000);
    decode_ok("ratio: 1", &s);
    assert_true(s.ratio == 1.0);
    decode_ok("ratio: .5", &s);
    assert_true(s.ratio == 0.5);
    decode_error("count: 1.5", "processors::x/y::count: expected an integer, got \"1.5\"");
    decode_error("count: 99999999999999999999999",
                 "processors::x/y::count: expected an integer, got \"99999999999999999999999\"");
    decode_error("count: 12abc", "processors::x/y::count: expected an integer, got \"12abc\"");
    decode_error("count: _1", "processors::x/y::count: expected an integer, got \"_1\"");
    decode_error("ratio: .inf", "processors::x/y::ratio: expected a number, got \".inf\"");
    decode_error("ratio: 1e", "processors::x/y::ratio: expected a number, got \"1e\"");
}

static void test_wrong_types(void **state)
{
    (void)state;
    decode_error("flag: yes",
                 "processors::x/y::flag: expected a bool (true or false), got \"yes\"");
    decode_error("flag: \"true\"", "processors::x/y::flag: expected a bool (true or false), got "
                                   "the quoted string \"true\" (remove the quotes)");
    decode_error("count: \"123\"", "processors::x/y::count: expected an integer, got the quoted "
                                   "string \"123\" (remove the quotes)");
    decode_error("ratio: '0.5'", "processors::x/y::ratio: expected a number, got the quoted "
                                 "string \"0.5\" (remove the quotes)");
    decode_error("count: {a: 1}", "processors::x/y::count: expected an integer, got a map");
    decode_error("name: [a]", "processors::x/y::name: expected a string, got a list");
    decode_error("list: {a: b}", "processors::x/y::list: expected a list of strings, got a map");
    decode_error("list: [a, [b]]", "processors::x/y::list::1: expected a string, got a list");
    decode_error("headers: text", "processors::x/y::headers: expected a map of strings or a "
                                  "list of {name, value}, got a scalar");
    decode_error("headers: {a: {b: c}}",
                 "processors::x/y::headers::a: expected a string, got a map");
    decode_error("section: 5", "processors::x/y::section: expected a map, got a scalar");
    decode_error("section: [1]", "processors::x/y::section: expected a map, got a list");
    decode_error("opt: true", "processors::x/y::opt: expected a map, got a scalar");
    decode_error("- 1", "processors::x/y: expected a map, got a list");
    /* A long value full of control characters is escaped and cut short in the message. */
    char text[400];
    size_t n = (size_t)snprintf(text, sizeof(text), "count: \"");
    for (int i = 0; i < 150; i++) {
        text[n++] = '\\';
        text[n++] = 't';
    }
    snprintf(text + n, sizeof(text) - n, "\"");
    struct sample s;
    assert_int_equal(decode(text, &s), TH_ECONFIG);
    assert_contains(err, "got the quoted string \"\\x09\\x09");
    assert_contains(err, "...\" (remove the quotes)");
    assert_true(strlen(err) < 200);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    decode_error("flga: true", "processors::x/y::flga: unknown key (see tracehouse --help), did "
                               "you mean \"flag\"?");
    decode_error("zzzzzzzz: 1", "processors::x/y::zzzzzzzz: unknown key (see tracehouse --help)");
    decode_error("section: {a: 1, c: 2}",
                 "processors::x/y::section::c: unknown key (see tracehouse --help)");
    /* Keys are case-sensitive, as in the Collector. */
    decode_error("FLAG: true", "processors::x/y::FLAG: unknown key (see tracehouse --help)");

    /* The path comes from the caller, e.g. the collector's section and component id. */
    static const struct th_cfg_field http_fields[] = {
        {.name = "endpoint", .type = TH_CFG_STRING, .offset = 0, .desc = "where to listen"},
        {0},
    };
    const char *ep;
    const th_node_t *n = yaml("endpont: localhost:4318");
    assert_int_equal(th_cfg_decode(http_fields, n, &ep, arena, "receivers::otlp::protocols::http",
                                   err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "receivers::otlp::protocols::http::endpont: unknown key (see "
                             "tracehouse --help), did you mean \"endpoint\"?");
    /* No path: the key alone. */
    assert_int_equal(th_cfg_decode(http_fields, n, &ep, arena, NULL, err, sizeof(err)), TH_ECONFIG);
    assert_contains(err, "endpont: unknown key");
    assert_true(strncmp(err, "endpont:", 8) == 0);
}

static void test_bounds(void **state)
{
    (void)state;
    struct sample s;
    decode_error(
        "count: 0",
        "processors::x/y::count: value \"0\" is out of range (must be between 1 and 65535)");
    decode_error("count: 65536", "processors::x/y::count: value \"65536\" is out of range (must "
                                 "be between 1 and 65535)");
    decode_ok("count: 65535", &s);
    assert_int_equal(s.count, 65535);
    decode_ok("count: 1", &s);
    decode_error(
        "ratio: 1.01",
        "processors::x/y::ratio: value \"1.01\" is out of range (must be between 0 and 1)");
    decode_error("timeout: -1s",
                 "processors::x/y::timeout: value \"-1s\" is out of range (must be between 0s and "
                 "1h)");
    decode_error("timeout: 2h", "processors::x/y::timeout: value \"2h\" is out of range (must "
                                "be between 0s and 1h)");
    decode_ok("timeout: 1h", &s);
    decode_error("size: 2GiB", "processors::x/y::size: value \"2GiB\" is out of range (must be "
                               "between 1 and 1GiB)");
    decode_error("size: 0", "processors::x/y::size: value \"0\" is out of range (must be between "
                            "1 and 1GiB)");
    decode_error("at_least: 0",
                 "processors::x/y::at_least: value \"0\" is out of range (must be at least 1)");
    decode_ok("at_least: 9223372036854775807", &s);
    decode_error("at_most: 2.6",
                 "processors::x/y::at_most: value \"2.6\" is out of range (must be at most 2.5)");
    decode_error("section: {a: 101}", "processors::x/y::section::a: value \"101\" is out of range "
                                      "(must be between 0 and 100)");
}

static void test_bad_durations_and_sizes(void **state)
{
    (void)state;
    decode_error("timeout: 5x", "processors::x/y::timeout: invalid duration \"5x\"");
    decode_error("timeout: s", "processors::x/y::timeout: invalid duration \"s\"");
    decode_error("timeout: 1.5", "processors::x/y::timeout: invalid duration \"1.5\"");
    decode_error("timeout: ''", "processors::x/y::timeout: invalid duration \"\"");
    decode_error("size: 4XB", "processors::x/y::size: invalid size \"4XB\"");
    decode_error("size: -1", "processors::x/y::size: invalid size \"-1\"");
    decode_error("size: 1.5", "processors::x/y::size: invalid size \"1.5\"");
    struct sample s;
    decode_ok("timeout: '250ms'", &s); /* durations are strings: quotes are fine */
    assert_int_equal(s.timeout, 250000000);
    decode_ok("timeout: 1000", &s); /* an integer is nanoseconds */
    assert_int_equal(s.timeout, 1000);
    decode_ok("size: \"1 MB\"", &s);
    assert_int_equal(s.size, 1000000);
}

static void test_enum_choices(void **state)
{
    (void)state;
    struct sample s;
    decode_ok("mode: FAST", &s);
    assert_string_equal(s.mode, "fast");
    decode_error("mode: medium",
                 "processors::x/y::mode: invalid value \"medium\" (expected one of: fast, Slow)");
    decode_error("mode: ''",
                 "processors::x/y::mode: invalid value \"\" (expected one of: fast, Slow)");
    decode_error("mode: [fast]", "processors::x/y::mode: expected a string, got a list");
}

static void test_optional_sections(void **state)
{
    (void)state;
    struct sample s;
    /* Default flavor: absent → disabled, with defaults in place. */
    decode_ok("flag: true", &s);
    assert_false(s.opt_on);
    assert_int_equal(s.opt.a, 7);
    /* `opt:` (null) → enabled with defaults. */
    decode_ok("opt:", &s);
    assert_true(s.opt_on);
    assert_int_equal(s.opt.a, 7);
    assert_string_equal(s.opt.b, "bee");
    /* `opt: {}` → enabled with defaults. */
    decode_ok("opt: {}", &s);
    assert_true(s.opt_on);
    assert_int_equal(s.opt.a, 7);
    /* Fields overlay the defaults and enable it. */
    decode_ok("opt: {a: 9}", &s);
    assert_true(s.opt_on);
    assert_int_equal(s.opt.a, 9);
    assert_string_equal(s.opt.b, "bee");
    /* `enabled: false` disables it; the other fields are still checked, then reset. */
    decode_ok("opt: {enabled: false, a: 9}", &s);
    assert_false(s.opt_on);
    assert_int_equal(s.opt.a, 7);
    decode_error("opt: {enabled: false, nope: 1}",
                 "processors::x/y::opt::nope: unknown key (see tracehouse --help)");
    decode_ok("opt: {enabled: true}", &s);
    assert_true(s.opt_on);
    /* `enabled` must be a YAML bool. */
    decode_error("opt: {enabled: 'false'}",
                 "processors::x/y::opt::enabled: expected true or false, got \"false\"");
    decode_error("opt: {enabled: 1}",
                 "processors::x/y::opt::enabled: expected true or false, got \"1\"");
    decode_error("opt: {enabled: [x]}",
                 "processors::x/y::opt::enabled: expected true or false, got a list");

    /* Some flavor: absent → enabled; null → enabled; enabled: false → disabled. */
    decode_ok("{}", &s);
    assert_true(s.some_on);
    decode_ok("some:", &s);
    assert_true(s.some_on);
    decode_ok("some: {enabled: false}", &s);
    assert_false(s.some_on);
    decode_ok("some: {a: 1}", &s);
    assert_true(s.some_on);
    assert_int_equal(s.some.a, 1);
}

static void test_strmap_forms(void **state)
{
    (void)state;
    struct sample s;
    decode_ok("headers:\n  - name: Authorization\n    value: Bearer x\n  - {name: X-Empty}\n", &s);
    assert_int_equal(s.headers.n, 2);
    assert_string_equal(s.headers.keys[0], "Authorization");
    assert_string_equal(s.headers.vals[0], "Bearer x");
    assert_string_equal(s.headers.keys[1], "X-Empty");
    assert_string_equal(s.headers.vals[1], "");
    decode_ok("headers: {a: ~}", &s);
    assert_string_equal(s.headers.vals[0], "");
    decode_ok("headers: []", &s);
    assert_int_equal(s.headers.n, 0);
    decode_ok("headers:", &s); /* null keeps the default */
    assert_int_equal(s.headers.n, 1);
    decode_error("headers: [{name: a, value: 1}, {name: a, value: 2}]",
                 "processors::x/y::headers: duplicate name \"a\"");
    decode_error("headers: [{value: 1}]", "processors::x/y::headers::0: each entry needs a "
                                          "non-empty name");
    decode_error("headers: [{name: a, val: 1}]",
                 "processors::x/y::headers::0::val: unknown key (expected name and value)");
    decode_error("headers: [a]",
                 "processors::x/y::headers::0: expected a map with name and value, got a scalar");
}

static void test_strlist_forms(void **state)
{
    (void)state;
    struct sample s;
    decode_ok("list: x,y,z", &s); /* the Collector's string-to-slice hook */
    assert_int_equal(s.list.n, 3);
    assert_string_equal(s.list.v[2], "z");
    decode_ok("list: single", &s);
    assert_int_equal(s.list.n, 1);
    assert_string_equal(s.list.v[0], "single");
    decode_ok("list: ''", &s);
    assert_int_equal(s.list.n, 0);
    decode_ok("list: []", &s);
    assert_int_equal(s.list.n, 0);
    decode_ok("list:", &s);
    assert_int_equal(s.list.n, 2); /* null keeps the default */
    decode_ok("list: [1, true, ~]", &s);
    assert_int_equal(s.list.n, 3);
    assert_string_equal(s.list.v[0], "1");
    assert_string_equal(s.list.v[1], "true");
    assert_string_equal(s.list.v[2], "");
}

static void test_secret_not_shown(void **state)
{
    (void)state;
    struct secret {
        int64_t key;
        const char *pick;
    };
    static const struct th_cfg_field fields[] = {
        {.name = "key",
         .type = TH_CFG_INT,
         .offset = offsetof(struct secret, key),
         .flags = TH_CFG_F_SECRET,
         .desc = "secret"},
        {.name = "pick",
         .type = TH_CFG_ENUM,
         .offset = offsetof(struct secret, pick),
         .choices = modes,
         .flags = TH_CFG_F_SECRET,
         .desc = "secret"},
        {0},
    };
    struct secret out;
    const th_node_t *n = yaml("key: s3cr3t");
    assert_int_equal(th_cfg_decode(fields, n, &out, arena, "p", err, sizeof(err)), TH_ECONFIG);
    assert_null(strstr(err, "s3cr3t"));
    assert_contains(err, "p::key: expected an integer");
    n = yaml("pick: s3cr3t");
    assert_int_equal(th_cfg_decode(fields, n, &out, arena, "p", err, sizeof(err)), TH_ECONFIG);
    assert_null(strstr(err, "s3cr3t"));
}

static void test_required(void **state)
{
    (void)state;
    static const struct th_cfg_field fields[] = {
        {.name = "must",
         .type = TH_CFG_STRING,
         .offset = 0,
         .flags = TH_CFG_F_REQUIRED,
         .desc = "required"},
        {0},
    };
    const char *v;
    assert_int_equal(th_cfg_decode(fields, yaml("{}"), &v, arena, "exporters::x", err, sizeof(err)),
                     TH_ECONFIG);
    assert_string_equal(err, "exporters::x::must: required key is missing");
    assert_int_equal(th_cfg_decode(fields, yaml("must:"), &v, arena, "e", err, sizeof(err)),
                     TH_ECONFIG);
    assert_int_equal(th_cfg_decode(fields, NULL, &v, arena, "e", err, sizeof(err)), TH_ECONFIG);
    assert_int_equal(th_cfg_decode(fields, yaml("must: here"), &v, arena, "e", err, sizeof(err)),
                     0);
    assert_string_equal(v, "here");
}

static void test_bad_defaults(void **state)
{
    (void)state;
    static const struct th_cfg_field bad_syntax[] = {
        {.name = "t", .type = TH_CFG_DURATION, .def = "5 seconds", .offset = 0, .desc = "x"},
        {0},
    };
    static const struct th_cfg_field bad_bounds[] = {
        {.name = "n",
         .type = TH_CFG_INT,
         .def = "0",
         .offset = 0,
         .min = 1,
         .max = 10,
         .desc = "x"},
        {0},
    };
    static const struct th_cfg_field bad_choice[] = {
        {.name = "m",
         .type = TH_CFG_ENUM,
         .def = "medium",
         .offset = 0,
         .choices = modes,
         .desc = "x"},
        {0},
    };
    static const struct th_cfg_field bad_list[] = {
        {.name = "l", .type = TH_CFG_STRLIST, .def = "[a, [b]]", .offset = 0, .desc = "x"},
        {0},
    };
    int64_t out[8];
    assert_int_equal(th_cfg_defaults(bad_syntax, out, arena, err, sizeof(err)), TH_ECONFIG);
    assert_contains(err, "t: bad default \"5 seconds\" in the field table");
    assert_int_equal(th_cfg_defaults(bad_bounds, out, arena, err, sizeof(err)), TH_ECONFIG);
    assert_contains(err, "out of range");
    assert_int_equal(th_cfg_defaults(bad_choice, out, arena, err, sizeof(err)), TH_ECONFIG);
    assert_contains(err, "expected one of");
    assert_int_equal(th_cfg_defaults(bad_list, out, arena, err, sizeof(err)), TH_ECONFIG);
    /* th_cfg_decode reports a bad default the same way. */
    assert_int_equal(th_cfg_decode(bad_bounds, NULL, out, arena, "p", err, sizeof(err)),
                     TH_ECONFIG);
    assert_contains(err, "p::n: bad default");
}

/* Run fn with stderr captured into buf. */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t cap)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, cap - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
}

static int noop_ret;

static void decode_noop(void *arg)
{
    noop_ret = decode((const char *)arg, &(struct sample){0});
}

static void test_noop_keys(void **state)
{
    (void)state;
    char out[4096];
    capture_stderr(decode_noop, "legacy: true", out, sizeof(out));
    assert_int_equal(noop_ret, 0);
    assert_contains(out, "processors::x/y::legacy: accepted for compatibility, but has no effect");
    /* Exactly once. */
    const char *first = strstr(out, "legacy");
    assert_null(strstr(first + 1, "legacy"));
    /* Still decoded and type-checked. */
    struct sample s;
    decode_ok("legacy: true", &s);
    assert_true(s.legacy);
    decode_error("legacy: maybe",
                 "processors::x/y::legacy: expected a bool (true or false), got \"maybe\"");
    /* Not present, no warning. */
    capture_stderr(decode_noop, "flag: true", out, sizeof(out));
    assert_null(strstr(out, "no effect"));
}

static void test_env_typing(void **state)
{
    (void)state;
    struct sample s;
    setenv("TH_T_N", "42", 1);
    setenv("TH_T_B", "false", 1);
    setenv("TH_T_EMPTY", "", 1);
    setenv("TH_T_ZERO", "0123", 1);
    unsetenv("TH_T_UNSET");
    /* A whole reference is typed from its value, quoted in YAML or not. */
    decode_ok("count: ${env:TH_T_N}", &s);
    assert_int_equal(s.count, 42);
    decode_ok("count: \"${env:TH_T_N}\"", &s);
    assert_int_equal(s.count, 42);
    decode_ok("flag: ${TH_T_B}", &s);
    assert_false(s.flag);
    /* A string field gets the raw text. */
    decode_ok("name: ${env:TH_T_ZERO}", &s);
    assert_string_equal(s.name, "0123");
    /* Inside a longer quoted string it is text, so not an integer. */
    decode_error("count: \"1${env:TH_T_N}\"", "processors::x/y::count: expected an integer, got "
                                              "the quoted string \"142\" (remove the quotes)");
    decode_ok("count: 1${env:TH_T_N}", &s);
    assert_int_equal(s.count, 142);
    /* Unset: the zero value (not the default); a plain null keeps the default. */
    decode_ok("name: ${env:TH_T_UNSET}\nflag: ${env:TH_T_UNSET}\nlist: ${env:TH_T_UNSET}", &s);
    assert_string_equal(s.name, "");
    assert_false(s.flag);
    assert_int_equal(s.list.n, 0);
    decode_ok("name:\nflag:", &s);
    assert_string_equal(s.name, "localhost:4318");
    assert_true(s.flag);
    /* The zero value is what the Collector gives; it is not checked against bounds. */
    decode_ok("timeout: ${env:TH_T_UNSET}", &s);
    assert_int_equal(s.timeout, 0);
    /* Set but empty: "" for strings, zero for the rest. */
    decode_ok("name: ${env:TH_T_EMPTY}\ntimeout: ${env:TH_T_EMPTY}", &s);
    assert_string_equal(s.name, "");
    assert_int_equal(s.timeout, 0);
    /* With a default. */
    decode_ok("count: ${env:TH_T_UNSET:-77}", &s);
    assert_int_equal(s.count, 77);
    /* A section from an unset variable: defaults. */
    decode_ok("section: ${env:TH_T_UNSET}", &s);
    assert_int_equal(s.section.a, 7);
    /* Values that are not of the type are errors as usual. */
    setenv("TH_T_WORD", "many", 1);
    decode_error("count: ${env:TH_T_WORD}",
                 "processors::x/y::count: expected an integer, got \"many\"");
    /* An enum cannot be empty. */
    decode_error("mode: ${env:TH_T_UNSET}",
                 "processors::x/y::mode: invalid value \"\" (expected one of: fast, Slow)");
}

/* ---- Durations and sizes ------------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"1ns", 1},
        {"1us", 1000},
        {"1\xc2\xb5s", 1000},
        {"1\xce\xbcs", 1000},
        {"1ms", 1000000},
        {"1s", 1000000000},
        {"1m", 60000000000},
        {"1h", 3600000000000},
        {"1h30m", 5400000000000},
        {"1m30s", 90000000000},
        {"1.5s", 1500000000},
        {".5s", 500000000},
        {"1.s", 1000000000},
        {"0.1s", 100000000},
        {"-1.5h", -5400000000000},
        {"+5s", 5000000000},
        {"200ms", 200000000},
        {"1h2m3s4ms5us6ns", 3723004005006},
        {"12345", 12345},
        {"-12345", -12345},
        {"2562047h47m16.854775807s", INT64_MAX},
        {"-2562047h47m16.854775808s", INT64_MIN},
        {"9223372036854775807", INT64_MAX},
        {"1.0000000000000000000000001s", 1000000000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ns = 42;
        if (th_parse_duration(ok[i].s, &ns) != 0) {
            fail_msg("\"%s\" should parse", ok[i].s);
        }
        if (ns != ok[i].ns) {
            fail_msg("\"%s\" gave %lld, expected %lld", ok[i].s, (long long)ns,
                     (long long)ok[i].ns);
        }
    }
    static const char *const bad[] = {
        "",
        "-",
        "+",
        "s",
        "1.5",
        "5x",
        "5 s",
        " 5s",
        "5s ",
        "1h-1m",
        ".s",
        "1..5s",
        "1e3s",
        "1sm",
        "1Ms",
        "5S",
        "1hh",
        "0x10s",
        "--1s",
        "2562048h",
        "2562047h47m16.854775808s",
        "9223372036854775808",
        "1.5.s",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        int64_t ns;
        if (th_parse_duration(bad[i], &ns) != TH_EINVAL) {
            fail_msg("\"%s\" should not parse", bad[i]);
        }
    }
    int64_t ns;
    assert_int_equal(th_parse_duration(NULL, &ns), TH_EINVAL);
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t b;
    } ok[] = {
        {"0", 0},
        {"20971520", 20971520},
        {"1B", 1},
        {"1KB", 1000},
        {"1MB", 1000000},
        {"1GB", 1000000000},
        {"2TB", 2000000000000},
        {"1KiB", 1024},
        {"4MiB", 4194304},
        {"1GiB", 1073741824},
        {"1TiB", 1099511627776},
        {"4mib", 4194304},
        {"1.5KiB", 1536},
        {"1.5 GB", 1500000000},
        {"512 KiB", 524288},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t b = 42;
        if (th_parse_size(ok[i].s, &b) != 0) {
            fail_msg("\"%s\" should parse", ok[i].s);
        }
        if (b != ok[i].b) {
            fail_msg("\"%s\" gave %lld, expected %lld", ok[i].s, (long long)b, (long long)ok[i].b);
        }
    }
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        "1.5",
        "1.5B",
        "4XB",
        "4 ",
        " 4",
        "4  MiB",
        "MiB",
        "4Mi",
        "4M",
        "1.KiB",
        "4MiB4",
        "0x10",
        "1e3",
        "9223372036854775808",
        "8388608TiB",
        "9223372036854775807KB",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        int64_t b;
        if (th_parse_size(bad[i], &b) != TH_EINVAL) {
            fail_msg("\"%s\" should not parse", bad[i]);
        }
    }
    int64_t b;
    assert_int_equal(th_parse_size("9223372036854775807", &b), 0);
    assert_int_equal(b, INT64_MAX);
    assert_int_equal(th_parse_size(NULL, &b), TH_EINVAL);
}

/* ---- Component ids ------------------------------------------------------------------------- */

static void split_ok(const char *id, const char *type, const char *name)
{
    const char *t, *n;
    if (th_config_split_id(id, arena, &t, &n, err, sizeof(err)) != 0) {
        fail_msg("\"%s\" should split: %s", id, err);
    }
    assert_string_equal(t, type);
    assert_string_equal(n, name);
}

static void split_error(const char *id, const char *msg)
{
    const char *t, *n;
    assert_int_equal(th_config_split_id(id, arena, &t, &n, err, sizeof(err)), TH_ECONFIG);
    if (!strstr(err, msg)) {
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", id, err, msg);
    }
    /* The same verdict without an arena. */
    assert_int_equal(th_config_split_id(id, NULL, NULL, NULL, err, sizeof(err)), TH_ECONFIG);
}

static void test_split_id(void **state)
{
    (void)state;
    split_ok("otlp", "otlp", "");
    split_ok("otlp/2", "otlp", "2");
    split_ok("otlp/a/b", "otlp", "a/b");
    split_ok(" batch / fast ", "batch", "fast");
    split_ok("memory_limiter", "memory_limiter", "");
    split_ok("otlp_http/backend-1.eu", "otlp_http", "backend-1.eu");
    split_ok("a/\xc3\xa9t\xc3\xa9", "a", "\xc3\xa9t\xc3\xa9"); /* été */
    split_ok("a123456789012345678901234567890123456789012345678901234567890bc",
             "a123456789012345678901234567890123456789012345678901234567890bc", "");
    split_error("", "id must not be empty");
    split_error("  ", "id must not be empty");
    split_error("otlp/", "the part after / should not be empty");
    split_error("otlp/  ", "the part after / should not be empty");
    split_error("/x", "the part before / should not be empty");
    split_error("1otlp", "invalid character(s) in type \"1otlp\"");
    split_error("ot-lp", "invalid character(s) in type \"ot-lp\"");
    split_error("_otlp", "invalid character(s) in type");
    split_error("a1234567890123456789012345678901234567890123456789012345678901bcd",
                "invalid character(s) in type");
    split_error("otlp/a b", "invalid character(s) in name \"a b\"");
    split_error("otlp/a$b", "invalid character(s) in name");
    split_error("otlp/a+b", "invalid character(s) in name");
    split_error("otlp/a\tb", "invalid character(s) in name");
    split_error("otlp/\xe2\x82\xac", "invalid character(s) in name");     /* € (Sc) */
    split_error("otlp/\xf0\x9f\x98\x80", "invalid character(s) in name"); /* emoji */
    split_error("otlp/a\xc2\xa0"
                "b",
                "invalid character(s) in name"); /* NBSP */
    split_error("otlp/a\xe2\x80\x8b"
                "b",
                "invalid character(s) in name");                  /* ZWSP */
    split_error("otlp/\xff", "invalid character(s) in name");     /* bad UTF-8 */
    split_error("otlp/\xc0\xaf", "invalid character(s) in name"); /* overlong */
    char longname[1100];
    memcpy(longname, "x/", 2);
    memset(longname + 2, 'n', 1025);
    longname[1027] = '\0';
    split_error(longname, "longer than 1024");
    longname[1026] = '\0';
    const char *t, *n;
    assert_int_equal(th_config_split_id(longname, arena, &t, &n, err, sizeof(err)), 0);
    assert_int_equal(strlen(n), 1024);
}

/* ---- The YAML loader ----------------------------------------------------------------------- */

static void test_yaml_scalars(void **state)
{
    (void)state;
    const th_node_t *n = yaml("a: 1\n"
                              "b: '1'\n"
                              "c:\n"
                              "d: ~\n"
                              "e: null\n"
                              "f: 'null'\n"
                              "g: !!str 5\n"
                              "h: |\n  text\n"
                              "i: \"\"\n"
                              "j: NULL\n");
    assert_int_equal(n->kind, TH_NODE_MAP);
    assert_int_equal(n->n, 10);
    const th_node_t *v = th_node_get(n, "a");
    assert_int_equal(v->kind, TH_NODE_SCALAR);
    assert_false(v->quoted);
    assert_string_equal(v->text, "1");
    assert_int_equal(v->len, 1);
    assert_int_equal(v->line, 1);
    assert_true(th_node_get(n, "b")->quoted);
    assert_int_equal(th_node_get(n, "c")->kind, TH_NODE_NULL);
    assert_int_equal(th_node_get(n, "d")->kind, TH_NODE_NULL);
    assert_int_equal(th_node_get(n, "e")->kind, TH_NODE_NULL);
    assert_int_equal(th_node_get(n, "f")->kind, TH_NODE_SCALAR);
    assert_true(th_node_get(n, "g")->quoted);
    assert_string_equal(th_node_get(n, "h")->text, "text\n");
    assert_true(th_node_get(n, "h")->quoted);
    assert_int_equal(th_node_get(n, "i")->kind, TH_NODE_SCALAR);
    assert_int_equal(th_node_get(n, "j")->kind, TH_NODE_NULL);
    assert_int_equal(th_node_get(n, "b")->line, 2);
    assert_null(th_node_get(n, "zz"));
    assert_null(th_node_get(NULL, "a"));
    assert_null(th_node_get(v, "a"));
    n = yaml("");
    assert_int_equal(n->kind, TH_NODE_NULL);
    n = yaml("[a, {b: c}]");
    assert_int_equal(n->kind, TH_NODE_SEQ);
    assert_int_equal(n->n, 2);
    assert_int_equal(n->items[1]->kind, TH_NODE_MAP);
}

static void test_yaml_syntax_errors(void **state)
{
    (void)state;
    yaml_error("receivers:\n  otlp:\n    protocols: [\n", "test.yaml: yaml: line 4, column 1: ");
    yaml_error("a: b\nc: d: e\n", "test.yaml: yaml: line 2, column 5: mapping values are not "
                                  "allowed in this context");
    yaml_error("a:\n\tb: c\n", "test.yaml: yaml: line 2, column 1: found character that cannot "
                               "start any token");
    yaml_error("a: \"unterminated\n", "test.yaml: yaml: line 2, column 1:");
    yaml_error("a: \xff\xfe\x00", "test.yaml: yaml:");
    yaml_error("a: b\n---\nc: d\n", "only one YAML document");
    yaml_error("a: \"x\\0y\"\n", "a: line 1: a NUL character inside a value is not allowed");
    yaml_error("? [a]\n: b\n", "a map key must be a plain string");
}

static void test_yaml_duplicate_keys(void **state)
{
    (void)state;
    yaml_error("receivers:\n  otlp:\n    a: 1\n    b: 2\n    a: 3\n",
               "receivers::otlp::a: line 5: mapping key already defined at line 3");
    yaml_error("x: 1\nx: 2\n", "x: line 2: mapping key already defined at line 1");
}

static void test_yaml_anchors(void **state)
{
    (void)state;
    const th_node_t *n = yaml("base: &b {timeout: 5s, size: 10}\n"
                              "copy: *b\n"
                              "list: &l [x, y]\n"
                              "again: *l\n"
                              "merged:\n  <<: *b\n  size: 20\n"
                              "multi:\n  <<: [*b, {extra: 1, size: 99}]\n"
                              "scalar: &s hello\n"
                              "s2: *s\n");
    const th_node_t *copy = th_node_get(n, "copy");
    assert_int_equal(copy->kind, TH_NODE_MAP);
    assert_string_equal(th_node_get(copy, "timeout")->text, "5s");
    /* An alias is a copy, not a shared node. */
    assert_ptr_not_equal(copy, th_node_get(n, "base"));
    assert_int_equal(th_node_get(n, "again")->n, 2);
    const th_node_t *m = th_node_get(n, "merged");
    assert_int_equal(m->n, 2);
    assert_string_equal(th_node_get(m, "size")->text, "20"); /* explicit keys win */
    assert_string_equal(th_node_get(m, "timeout")->text, "5s");
    m = th_node_get(n, "multi");
    assert_int_equal(m->n, 3);
    assert_string_equal(th_node_get(m, "size")->text, "10"); /* the first source wins */
    assert_string_equal(th_node_get(m, "extra")->text, "1");
    assert_string_equal(th_node_get(n, "s2")->text, "hello");
    /* A quoted "<<" is an ordinary key. */
    n = yaml("'<<': x");
    assert_string_equal(th_node_get(n, "<<")->text, "x");

    yaml_error("a: *nope\n", "a: line 1: unknown anchor \"nope\" referenced");
    yaml_error("a: &x [1, *x]\n", "unknown anchor \"x\"");
    yaml_error("a:\n  <<: 5\n", "the value of a << merge key must be a map or a list of maps");
    yaml_error("a:\n  <<: [{b: 1}, 2]\n", "the value of a << merge key must be a map");
}

static void test_yaml_alias_bomb(void **state)
{
    (void)state;
    yaml_error("a: &a [x,x,x,x,x,x,x,x,x,x]\n"
               "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
               "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
               "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
               "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
               "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
               "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
               "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
               "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
               "more than 100000 values");
}

static void test_yaml_depth_limit(void **state)
{
    (void)state;
    char buf[512];
    size_t n = 0;
    for (int i = 0; i < 64; i++) {
        buf[n++] = '[';
    }
    for (int i = 0; i < 64; i++) {
        buf[n++] = ']';
    }
    buf[n] = '\0';
    yaml(buf); /* 64 levels are fine */
    n = 0;
    for (int i = 0; i < 65; i++) {
        buf[n++] = '[';
    }
    for (int i = 0; i < 65; i++) {
        buf[n++] = ']';
    }
    buf[n] = '\0';
    yaml_error(buf, "nesting deeper than 64 levels");
    /* Also through an alias. */
    n = (size_t)snprintf(buf, sizeof(buf), "a: &a ");
    for (int i = 0; i < 60; i++) {
        buf[n++] = '[';
    }
    for (int i = 0; i < 60; i++) {
        buf[n++] = ']';
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\nb: [[[[[[[[*a]]]]]]]]\n");
    yaml_error(buf, "nesting deeper than 64 levels");
}

static void test_yaml_size_limit(void **state)
{
    (void)state;
    size_t n = (16u << 20) + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    th_node_t *root;
    assert_int_equal(th_yaml_parse(big, n, "big.yaml", arena, &root, err, sizeof(err)), TH_ECONFIG);
    assert_contains(err, "larger than 16 MiB");
    th_config_t *cfg;
    assert_int_equal(th_config_parse(big, n, "big.yaml", &cfg, err, sizeof(err)), TH_ECONFIG);
    assert_null(cfg);
    free(big);
}

static void test_yaml_env(void **state)
{
    (void)state;
    setenv("TH_T_HOST", "example.com", 1);
    unsetenv("TH_T_UNSET");
    const th_node_t *n = yaml("a: ${env:TH_T_HOST}\n"
                              "b: 'http://${env:TH_T_HOST}:4318'\n"
                              "c: ${env:TH_T_UNSET}\n"
                              "d: $${env:TH_T_HOST}\n"
                              "${env:TH_T_HOST}: keys are not expanded\n");
    const th_node_t *a = th_node_get(n, "a");
    assert_string_equal(a->text, "example.com");
    assert_true(a->expanded);
    const th_node_t *b = th_node_get(n, "b");
    assert_string_equal(b->text, "http://example.com:4318");
    assert_false(b->expanded);
    assert_true(b->quoted);
    const th_node_t *c = th_node_get(n, "c");
    assert_int_equal(c->kind, TH_NODE_NULL);
    assert_true(c->expanded);
    assert_string_equal(th_node_get(n, "d")->text, "${env:TH_T_HOST}");
    assert_non_null(th_node_get(n, "${env:TH_T_HOST}"));
    yaml_error("exporters:\n  otlp:\n    endpoint: ${env:1BAD}\n",
               "exporters::otlp::endpoint: line 3: environment variable \"1BAD\" has invalid name");
}

/* ---- th_config_parse ----------------------------------------------------------------------- */

static const char *minimal = "receivers:\n"
                             "  otlp:\n"
                             "    protocols:\n"
                             "      http:\n"
                             "exporters:\n"
                             "  debug:\n"
                             "service:\n"
                             "  pipelines:\n"
                             "    traces:\n"
                             "      receivers: [otlp]\n"
                             "      exporters: [debug]\n";

static th_config_t *parse_ok(const char *text)
{
    th_config_t *cfg = NULL;
    if (th_config_parse(text, strlen(text), "test.yaml", &cfg, err, sizeof(err)) != 0) {
        fail_msg("config failed: %s", err);
    }
    assert_non_null(cfg);
    return cfg;
}

static void parse_error(const char *text, const char *msg)
{
    th_config_t *cfg = (th_config_t *)1;
    assert_int_equal(th_config_parse(text, strlen(text), "test.yaml", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_null(cfg);
    if (strcmp(err, msg) != 0) {
        fail_msg("message \"%s\", expected \"%s\"", err, msg);
    }
}

/* The minimal config with its service section replaced. */
static char *with_service(const char *service)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "receivers:\n  otlp:\n  otlp/2:\nprocessors:\n  batch:\n  memory_limiter:\n"
             "exporters:\n  debug:\n  otlp_http/x:\nextensions:\n  health_check:\n%s",
             service);
    return buf;
}

static void test_config_minimal(void **state)
{
    (void)state;
    th_config_t *cfg = parse_ok(minimal);
    assert_string_equal(cfg->source, "test.yaml");
    assert_non_null(cfg->root);
    assert_int_equal(cfg->receivers->kind, TH_NODE_MAP);
    assert_non_null(th_node_get(cfg->receivers, "otlp"));
    assert_non_null(th_node_get(cfg->exporters, "debug"));
    assert_null(cfg->processors);
    assert_null(cfg->extensions);
    assert_null(cfg->connectors);
    assert_int_equal(cfg->n_pipelines, 1);
    assert_string_equal(cfg->pipelines[0].id, "traces");
    assert_int_equal(cfg->pipelines[0].receivers.n, 1);
    assert_string_equal(cfg->pipelines[0].receivers.v[0], "otlp");
    assert_int_equal(cfg->pipelines[0].processors.n, 0);
    assert_string_equal(cfg->pipelines[0].exporters.v[0], "debug");
    assert_int_equal(cfg->service_extensions.n, 0);
    /* Telemetry defaults. */
    assert_string_equal(cfg->telemetry.log_level, "info");
    assert_string_equal(cfg->telemetry.log_encoding, "json");
    assert_string_equal(cfg->telemetry.metrics_level, "normal");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "localhost:8888");
    assert_int_equal(cfg->telemetry.resource.n, 0);
    th_config_destroy(cfg);
    th_config_destroy(NULL);
}

static void test_config_full(void **state)
{
    (void)state;
    th_config_t *cfg = parse_ok(with_service("service:\n"
                                             "  extensions: [health_check]\n"
                                             "  pipelines:\n"
                                             "    traces:\n"
                                             "      receivers: [otlp, otlp/2]\n"
                                             "      processors: [memory_limiter, batch]\n"
                                             "      exporters: [debug]\n"
                                             "    traces/backend:\n"
                                             "      receivers: otlp\n"
                                             "      processors: [batch]\n"
                                             "      exporters: [ otlp_http / x ]\n"));
    assert_int_equal(cfg->n_pipelines, 2);
    assert_string_equal(cfg->pipelines[0].id, "traces");
    assert_int_equal(cfg->pipelines[0].receivers.n, 2);
    assert_string_equal(cfg->pipelines[0].receivers.v[1], "otlp/2");
    assert_string_equal(cfg->pipelines[0].processors.v[0], "memory_limiter");
    assert_string_equal(cfg->pipelines[0].processors.v[1], "batch");
    assert_string_equal(cfg->pipelines[1].id, "traces/backend");
    assert_int_equal(cfg->pipelines[1].receivers.n, 1);
    assert_string_equal(cfg->pipelines[1].receivers.v[0], "otlp");
    assert_string_equal(cfg->pipelines[1].exporters.v[0], "otlp_http/x");
    assert_int_equal(cfg->service_extensions.n, 1);
    assert_string_equal(cfg->service_extensions.v[0], "health_check");
    th_config_destroy(cfg);
}

static void test_config_top_level(void **state)
{
    (void)state;
    parse_error("", "test.yaml: the configuration is empty");
    parse_error("# only a comment\n", "test.yaml: the configuration is empty");
    parse_error("- a\n", "test.yaml: the configuration must be a map with receivers, processors, "
                         "exporters, extensions, connectors and service");
    char buf[1024];
    snprintf(buf, sizeof(buf), "%sexportres:\n  debug:\n", minimal);
    parse_error(buf, "exportres: unknown top-level key (expected receivers, processors, "
                     "exporters, extensions, connectors, service)");
    parse_error("receivers: [otlp]\n", "receivers: expected a map of component ids, got a list");
    parse_error("processors: batch\n", "processors: expected a map of component ids, got a scalar");
    /* A null section is allowed (and holds nothing). */
    th_config_t *cfg =
        parse_ok(with_service("connectors:\nservice:\n  pipelines:\n    traces:\n"
                              "      receivers: [otlp]\n      exporters: [debug]\n"));
    assert_int_equal(cfg->connectors->kind, TH_NODE_NULL);
    th_config_destroy(cfg);
}

static void test_config_component_ids(void **state)
{
    (void)state;
    parse_error("receivers:\n  otlp/:\n", "receivers::otlp/: the part after / should not be empty");
    parse_error("exporters:\n  9x:\n",
                "exporters::9x: invalid character(s) in type \"9x\" (a letter, then up to 62 "
                "letters, digits or _)");
    parse_error("processors:\n  batch/a b:\n",
                "processors::batch/a b: invalid character(s) in name \"a b\" (no spaces, control "
                "characters or symbols)");
    parse_error("receivers:\n  otlp:\n  'otlp ':\n",
                "receivers: duplicate id \"otlp\" (after trimming spaces)");
    /* Keys are normalised in place, so the collector finds them by their pipeline names. */
    th_config_t *cfg = parse_ok("receivers:\n  ' otlp / a ':\nexporters:\n  debug:\n"
                                "service:\n  pipelines:\n    traces:\n"
                                "      receivers: ['otlp/a ']\n      exporters: [debug]\n");
    assert_non_null(th_node_get(cfg->receivers, "otlp/a"));
    assert_string_equal(cfg->pipelines[0].receivers.v[0], "otlp/a");
    th_config_destroy(cfg);
}

static void test_config_pipelines(void **state)
{
    (void)state;
    parse_error(with_service(""), "service::pipelines: must have at least one pipeline");
    parse_error(with_service("service:\n"), "service::pipelines: must have at least one pipeline");
    parse_error(with_service("service:\n  pipelines: {}\n"),
                "service::pipelines: must have at least one pipeline");
    parse_error(with_service("service:\n  pipelines: [traces]\n"),
                "service::pipelines: expected a map of pipelines, got a list");
    parse_error(with_service("service: [x]\n"), "service: expected a map, got a list");
    parse_error(with_service("service:\n  pipelines:\n    logs/x:\n      receivers: [otlp]\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::logs/x: only traces and metrics pipelines are supported "
                "(Tracehouse is a trace collector; logs is not)");
    parse_error(with_service("service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::profiles: only traces and metrics pipelines are supported "
                "(Tracehouse is a trace collector; profiles is not)");
    parse_error(with_service("service:\n  pipelines:\n    spans:\n      receivers: [otlp]\n"),
                "service::pipelines::spans: unknown signal \"spans\" (only traces and metrics are "
                "supported)");
    parse_error(with_service("service:\n  pipelines:\n    metricsx:\n      receivers: [otlp]\n"),
                "service::pipelines::metricsx: unknown signal \"metricsx\" (only traces and "
                "metrics are supported)");
    /* metrics pipelines parse (what may feed them is checked when the graph is built) */
    th_config_t *mcfg = parse_ok(
        with_service("service:\n  pipelines:\n    metrics/red:\n      receivers: [spanmetrics]\n"
                     "      exporters: [prometheus]\n"
                     "    traces:\n      receivers: [otlp]\n      exporters: [spanmetrics]\n"));
    assert_int_equal(mcfg->n_pipelines, 2);
    assert_string_equal(mcfg->pipelines[0].id, "metrics/red");
    assert_string_equal(mcfg->pipelines[0].receivers.v[0], "spanmetrics");
    th_config_destroy(mcfg);
    parse_error(with_service("service:\n  pipelines:\n    traces/:\n      receivers: [otlp]\n"),
                "service::pipelines::traces/: the part after / should not be empty");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      exporters: [debug]\n"),
                "service::pipelines::traces: must have at least one receiver");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: []\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::traces: must have at least one receiver");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"),
                "service::pipelines::traces: must have at least one exporter");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n"),
                "service::pipelines::traces: must have at least one receiver");
    parse_error(with_service("service:\n  pipelines:\n    traces: [otlp]\n"),
                "service::pipelines::traces: expected a map with receivers, processors and "
                "exporters, got a list");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
                             "      processors: [batch, memory_limiter, batch]\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::traces: references processor \"batch\" multiple times");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
                             "      procesors: [batch]\n      exporters: [debug]\n"),
                "service::pipelines::traces::procesors: unknown key (expected receivers, "
                "processors, exporters)");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: [otlp/]\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::traces::receivers::0: the part after / should not be empty");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: [[otlp]]\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::traces::receivers::0: expected a component id, got a list");
    parse_error(with_service("service:\n  pipelines:\n    traces:\n      receivers: {otlp: 1}\n"
                             "      exporters: [debug]\n"),
                "service::pipelines::traces::receivers: expected a list of component ids, got a "
                "map");
    parse_error(
        with_service("service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
                     "      exporters: [debug]\n"
                     "    ' traces ':\n      receivers: [otlp]\n      exporters: [debug]\n"),
        "service::pipelines: duplicate pipeline \"traces\" (after trimming spaces)");
    parse_error(with_service("service:\n  extensions: [health_check, health_check]\n"),
                "service::extensions: references extension \"health_check\" multiple times");
    parse_error(with_service("service:\n  extension: [health_check]\n"),
                "service::extension: unknown key (expected extensions, pipelines, telemetry)");
}

static const char *pipeline = "  pipelines:\n    traces:\n      receivers: [otlp]\n"
                              "      exporters: [debug]\n";

static th_config_t *telemetry_ok(const char *telemetry)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "service:\n%s  telemetry:\n%s", pipeline, telemetry);
    return parse_ok(with_service(buf));
}

static void telemetry_error(const char *telemetry, const char *msg)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "service:\n%s  telemetry:\n%s", pipeline, telemetry);
    parse_error(with_service(buf), msg);
}

static void test_telemetry_logs(void **state)
{
    (void)state;
    th_config_t *cfg = telemetry_ok("    logs:\n      level: DEBUG\n      encoding: console\n");
    assert_string_equal(cfg->telemetry.log_level, "debug");
    assert_string_equal(cfg->telemetry.log_encoding, "console");
    th_config_destroy(cfg);
    cfg = telemetry_ok("    logs:\n      level: fatal\n");
    assert_string_equal(cfg->telemetry.log_level, "error");
    th_config_destroy(cfg);
    /* The documented no-op keys are accepted. */
    cfg = telemetry_ok("    logs:\n"
                       "      level: warn\n"
                       "      development: true\n"
                       "      disable_caller: true\n"
                       "      disable_stacktrace: true\n"
                       "      sampling: {enabled: true, tick: 10s, initial: 10, thereafter: 100}\n"
                       "      output_paths: [stderr, /var/log/x.log]\n"
                       "      error_output_paths: [stderr]\n"
                       "      initial_fields: {service: collector}\n");
    assert_string_equal(cfg->telemetry.log_level, "warn");
    th_config_destroy(cfg);
    telemetry_error("    logs:\n      level: loud\n",
                    "service::telemetry::logs::level: invalid value \"loud\" (expected one of: "
                    "debug, info, warn, error, dpanic, panic, fatal)");
    telemetry_error("    logs:\n      encoding: xml\n",
                    "service::telemetry::logs::encoding: invalid value \"xml\" (expected one of: "
                    "json, console)");
    telemetry_error("    logs:\n      sampling: {tick: often}\n",
                    "service::telemetry::logs::sampling::tick: invalid duration \"often\"");
    telemetry_error("    logs:\n      colour: true\n",
                    "service::telemetry::logs::colour: unknown key (see tracehouse --help)");
    telemetry_error("    log:\n      level: info\n",
                    "service::telemetry::log: unknown key (see tracehouse --help), did you mean "
                    "\"logs\"?");
}

static void test_telemetry_metrics(void **state)
{
    (void)state;
    th_config_t *cfg = telemetry_ok("    metrics:\n"
                                    "      level: detailed\n"
                                    "      readers:\n"
                                    "        - pull:\n"
                                    "            exporter:\n"
                                    "              prometheus:\n"
                                    "                host: 0.0.0.0\n"
                                    "                port: 9999\n"
                                    "                without_units: true\n");
    assert_string_equal(cfg->telemetry.metrics_level, "detailed");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "0.0.0.0:9999");
    th_config_destroy(cfg);
    cfg = telemetry_ok("    metrics:\n      readers:\n        - pull:\n            exporter:\n"
                       "              prometheus: {host: '::1', port: 8889}\n");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "[::1]:8889");
    th_config_destroy(cfg);
    cfg = telemetry_ok("    metrics:\n      readers:\n        - pull:\n            exporter:\n"
                       "              prometheus:\n");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "localhost:8888");
    th_config_destroy(cfg);
    /* The legacy address alias. */
    cfg = telemetry_ok("    metrics:\n      address: 127.0.0.1:7777\n");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "127.0.0.1:7777");
    th_config_destroy(cfg);
    /* Push readers are accepted (and have no effect); the default endpoint stays. */
    cfg = telemetry_ok("    metrics:\n      level: none\n      readers:\n        - periodic:\n"
                       "            exporter: {otlp: {endpoint: x}}\n");
    assert_string_equal(cfg->telemetry.metrics_level, "none");
    assert_string_equal(cfg->telemetry.metrics_endpoint, "localhost:8888");
    th_config_destroy(cfg);
    telemetry_error("    metrics:\n      level: verbose\n",
                    "service::telemetry::metrics::level: invalid value \"verbose\" (expected one "
                    "of: none, basic, normal, detailed)");
    telemetry_error("    metrics:\n      address: ':8888'\n      readers:\n        - pull:\n"
                    "            exporter: {prometheus: {port: 1}}\n",
                    "service::telemetry::metrics: use either readers or the legacy address, not "
                    "both");
    telemetry_error("    metrics:\n      readers:\n        - pull:\n            exporter:\n"
                    "              prometheus: {port: 70000}\n",
                    "service::telemetry::metrics::readers::0::pull::exporter::prometheus::port: "
                    "value \"70000\" is out of range (must be between 1 and 65535)");
    telemetry_error("    metrics:\n      readers:\n        - pull:\n            exporter:\n"
                    "              otlp: {}\n",
                    "service::telemetry::metrics::readers::0::pull::exporter::otlp: unsupported "
                    "pull exporter (only prometheus is supported)");
    telemetry_error("    metrics:\n      readers:\n        - pull: {}\n",
                    "service::telemetry::metrics::readers::0::pull::exporter: required key is "
                    "missing");
    telemetry_error("    metrics:\n      readers:\n        - push: {}\n",
                    "service::telemetry::metrics::readers::0::push: unknown key (expected pull "
                    "or periodic)");
    telemetry_error("    metrics:\n      readers: {pull: {}}\n",
                    "service::telemetry::metrics::readers: expected a list of readers, got a map");
    telemetry_error("    metrics:\n      readers:\n"
                    "        - pull: {exporter: {prometheus: {port: 1}}}\n"
                    "        - pull: {exporter: {prometheus: {port: 2}}}\n",
                    "service::telemetry::metrics::readers::1::pull::exporter::prometheus: only "
                    "one prometheus reader is supported");
}

static void test_telemetry_other(void **state)
{
    (void)state;
    th_config_t *cfg = telemetry_ok("    traces:\n      level: basic\n"
                                    "    resource:\n      service.name: tracehouse\n"
                                    "      removed: null\n      deployment.environment: prod\n");
    assert_int_equal(cfg->telemetry.resource.n, 2);
    assert_string_equal(cfg->telemetry.resource.keys[0], "service.name");
    assert_string_equal(cfg->telemetry.resource.vals[0], "tracehouse");
    assert_string_equal(cfg->telemetry.resource.keys[1], "deployment.environment");
    th_config_destroy(cfg);
    cfg = telemetry_ok("    resource:\n      attributes:\n"
                       "        - {name: service.name, value: th}\n"
                       "        - {name: n, value: 1, type: int}\n");
    assert_int_equal(cfg->telemetry.resource.n, 2);
    assert_string_equal(cfg->telemetry.resource.vals[0], "th");
    assert_string_equal(cfg->telemetry.resource.vals[1], "1");
    th_config_destroy(cfg);
    telemetry_error("    resource: [a]\n",
                    "service::telemetry::resource: expected a map, got a list");
    telemetry_error("    resource:\n      attributes:\n        - {value: x}\n",
                    "service::telemetry::resource::attributes::0: each attribute needs a name");
    telemetry_error("    resource:\n      a: {b: c}\n",
                    "service::telemetry::resource::a: expected a string, got a map");
    telemetry_error("    tracez: {}\n",
                    "service::telemetry::tracez: unknown key (see tracehouse --help), did you "
                    "mean \"traces\"?");
    telemetry_error("    metrics: [x]\n",
                    "service::telemetry::metrics: expected a map, got a list");
}

static void test_config_env(void **state)
{
    (void)state;
    setenv("TH_T_RECV", "otlp", 1);
    unsetenv("TH_T_UNSET");
    th_config_t *cfg = parse_ok("receivers:\n  otlp:\n    protocols:\n      http:\n"
                                "        endpoint: ${env:TH_T_UNSET:-localhost}:4318\n"
                                "exporters:\n  debug:\n"
                                "service:\n  pipelines:\n    traces:\n"
                                "      receivers: [\"${env:TH_T_RECV}\"]\n"
                                "      exporters: [debug]\n");
    assert_string_equal(cfg->pipelines[0].receivers.v[0], "otlp");
    const th_node_t *http =
        th_node_get(th_node_get(th_node_get(cfg->receivers, "otlp"), "protocols"), "http");
    assert_string_equal(th_node_get(http, "endpoint")->text, "localhost:4318");
    th_config_destroy(cfg);
    parse_error("receivers:\n  otlp:\n    endpoint: ${file:/x}\n",
                "receivers::otlp::endpoint: line 3: unsupported scheme \"file\" in "
                "\"${file:/x}\" (only env: is supported)");
}

static void test_config_yaml_errors(void **state)
{
    (void)state;
    th_config_t *cfg = (th_config_t *)1;
    const char *text = "receivers:\n  otlp:\n   protocols: {\n";
    assert_int_equal(th_config_parse(text, strlen(text), "cfg.yaml", &cfg, err, sizeof(err)),
                     TH_ECONFIG);
    assert_null(cfg);
    assert_true(strncmp(err, "cfg.yaml: yaml: line 4, column 1: ", 34) == 0);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/th_config_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, minimal, strlen(minimal)), (ssize_t)strlen(minimal));
    close(fd);
    th_config_t *cfg = NULL;
    assert_int_equal(th_config_load_file(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->source, path);
    assert_int_equal(cfg->n_pipelines, 1);
    th_config_destroy(cfg);
    unlink(path);
    assert_int_equal(th_config_load_file(path, &cfg, err, sizeof(err)), TH_ENOENT);
    assert_null(cfg);
    assert_contains(err, "cannot open config file");
    assert_int_equal(th_config_load_file("/", &cfg, err, sizeof(err)), TH_EIO);
    assert_contains(err, "cannot read config file");
}

/* ---- Allocation failure ------------------------------------------------------------------- */

static long alloc_budget; /* allocations left before failing; -1: never fail */

static bool may_alloc(void)
{
    if (alloc_budget == 0) {
        return false;
    }
    if (alloc_budget > 0) {
        alloc_budget--;
    }
    return true;
}

static void *fail_malloc(size_t n)
{
    return may_alloc() ? malloc(n) : NULL;
}

static void *fail_calloc(size_t n, size_t size)
{
    return may_alloc() ? calloc(n, size) : NULL;
}

static void *fail_realloc(void *p, size_t n)
{
    return may_alloc() ? realloc(p, n) : NULL;
}

static const struct th_mem_methods failing = {
    .malloc = fail_malloc,
    .calloc = fail_calloc,
    .realloc = fail_realloc,
    .free = free,
};

/* Fail allocation N for N = 0, 1, 2, ... until parsing succeeds: every attempt must return
 * TH_ENOMEM cleanly (the sanitizer build checks that nothing leaks). */
static void test_out_of_memory(void **state)
{
    (void)state;
    setenv("TH_T_HOST", "example.com", 1);
    const char *text = "receivers:\n  otlp/a:\n    protocols: {http: {endpoint: "
                       "'${env:TH_T_HOST}:4318'}}\n"
                       "processors:\n  base: &b {timeout: 1s}\n  batch: {<<: *b, size: 5}\n"
                       "exporters:\n  debug:\nextensions:\n  health_check:\n"
                       "service:\n  extensions: [health_check]\n"
                       "  telemetry:\n    logs: {level: debug}\n"
                       "    metrics: {readers: [{pull: {exporter: {prometheus: {port: 9}}}}]}\n"
                       "    resource: {service.name: x}\n"
                       "  pipelines:\n    traces:\n      receivers: [otlp/a]\n"
                       "      processors: [batch]\n      exporters: [debug]\n";
    int ret = TH_ENOMEM;
    long n;
    for (n = 0; ret == TH_ENOMEM && n < 100000; n++) {
        th_config_t *cfg = NULL;
        alloc_budget = n;
        th_mem_set_methods(&failing);
        ret = th_config_parse(text, strlen(text), "oom.yaml", &cfg, err, sizeof(err));
        th_mem_set_methods(NULL);
        if (ret == 0) {
            assert_string_equal(cfg->telemetry.metrics_endpoint, "localhost:9");
            th_config_destroy(cfg);
        } else {
            if (ret != TH_ENOMEM) {
                fail_msg("allocation %ld failing gave %d: %s", n, ret, err);
            }
            assert_null(cfg);
            assert_string_equal(err, "out of memory");
        }
    }
    assert_int_equal(ret, 0);
    assert_true(n > 10);

    /* The same for decoding a table. */
    const th_node_t *node = yaml("list: [a]\nheaders: [{name: k, value: v}]\nsection: {b: x}\n"
                                 "opt: {a: 2}\nname: n\n");
    ret = TH_ENOMEM;
    for (n = 0; ret == TH_ENOMEM && n < 100000; n++) {
        th_arena_t *a = th_arena_create(256, 0);
        assert_non_null(a);
        struct sample s;
        alloc_budget = n;
        th_mem_set_methods(&failing);
        ret = th_cfg_decode(sample_fields, node, &s, a, "p", err, sizeof(err));
        th_mem_set_methods(NULL);
        th_arena_destroy(a);
        if (ret != 0 && ret != TH_ENOMEM) {
            fail_msg("allocation %ld failing gave %d: %s", n, ret, err);
        }
    }
    assert_int_equal(ret, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_only),
        cmocka_unit_test(test_decode_every_type),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bad_durations_and_sizes),
        cmocka_unit_test(test_enum_choices),
        cmocka_unit_test(test_optional_sections),
        cmocka_unit_test(test_strmap_forms),
        cmocka_unit_test(test_strlist_forms),
        cmocka_unit_test(test_secret_not_shown),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_bad_defaults),
        cmocka_unit_test(test_noop_keys),
        cmocka_unit_test(test_env_typing),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_split_id),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_yaml_syntax_errors),
        cmocka_unit_test(test_yaml_duplicate_keys),
        cmocka_unit_test(test_yaml_anchors),
        cmocka_unit_test(test_yaml_alias_bomb),
        cmocka_unit_test(test_yaml_depth_limit),
        cmocka_unit_test(test_yaml_size_limit),
        cmocka_unit_test(test_yaml_env),
        cmocka_unit_test(test_config_minimal),
        cmocka_unit_test(test_config_full),
        cmocka_unit_test(test_config_top_level),
        cmocka_unit_test(test_config_component_ids),
        cmocka_unit_test(test_config_pipelines),
        cmocka_unit_test(test_telemetry_logs),
        cmocka_unit_test(test_telemetry_metrics),
        cmocka_unit_test(test_telemetry_other),
        cmocka_unit_test(test_config_env),
        cmocka_unit_test(test_config_yaml_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
