/*
 * The attributes processor's config layer: the field table, the decoding of `actions:` and
 * `include:`/`exclude:` (kept raw by the table and decoded here, item by item, so a message
 * names the item: `actions::2::action: ...`), and the checks the Collector makes in
 * NewAttrProc and filterspan, with its wording.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "processors/attributes/attributes.h"
#include "processors/attributes/attributes_regex.h"
#include "processors/attributes/attributes_value.h"

const struct th_cfg_field th_attributes_config_fields[] = {
    {.name = "actions",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_attributes_cfg, actions),
     .desc = "ordered list of actions, each {key, action: insert|update|upsert|delete|hash|"
             "extract|convert, value, from_attribute, from_context, default_value, pattern, "
             "converted_type}; required"},
    {.name = "include",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_attributes_cfg, include),
     .desc = "only spans matching this are processed: {match_type: strict|regexp, services, "
             "span_names, span_kinds, attributes: [{key, value}], resources: [{key, value}], "
             "libraries: [{name, version}]}"},
    {.name = "exclude",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_attributes_cfg, exclude),
     .desc = "spans matching this are not processed (same keys as include; checked after it)"},
    {.name = NULL},
};

/* ---- One action ------------------------------------------------------------------------ */

struct action_raw {
    const char *key, *action, *pattern, *from_attribute, *from_context, *converted_type;
    const th_node_t *value, *default_value;
};

static const struct th_cfg_field action_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, key),
     .desc = "the attribute to act on"},
    {.name = "action",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, action),
     .desc = "insert, update, upsert, delete, hash, extract or convert (any case)"},
    {.name = "value",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct action_raw, value),
     .desc = "the value to set, typed as YAML types it (int, double, bool, string, list, map)"},
    {.name = "pattern",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, pattern),
     .desc = "delete/hash: regex on keys; extract: regex with named groups on the value"},
    {.name = "from_attribute",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, from_attribute),
     .desc = "copy the value of this attribute"},
    {.name = "from_context",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, from_context),
     .desc = "copy client metadata (not available yet: always missing)"},
    {.name = "default_value",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct action_raw, default_value),
     .desc = "the value to use when the source gives none"},
    {.name = "converted_type",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct action_raw, converted_type),
     .desc = "convert: int, double or string"},
    {.name = NULL},
};

static const struct {
    const char *name;
    enum th_attributes_action_type type;
} action_names[] = {
    {"insert", TH_ATTRIBUTES_INSERT},   {"update", TH_ATTRIBUTES_UPDATE},
    {"upsert", TH_ATTRIBUTES_UPSERT},   {"delete", TH_ATTRIBUTES_DELETE},
    {"hash", TH_ATTRIBUTES_HASH},       {"extract", TH_ATTRIBUTES_EXTRACT},
    {"convert", TH_ATTRIBUTES_CONVERT},
};

/* The Collector lowercases `action` and then compares. */
static int decode_action(const th_node_t *item, size_t i, th_arena_t *a,
                         struct th_attributes_action *out, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof(path), "actions::%zu", i);
    struct action_raw raw;
    memset(&raw, 0, sizeof(raw));
    int ret = th_cfg_decode(action_fields, item, &raw, a, path, err, errlen);
    if (ret != 0) {
        return ret;
    }
    memset(out, 0, sizeof(*out));
    size_t alen = strlen(raw.action);
    char *lower = th_arena_strndup(a, raw.action, alen);
    if (!lower) {
        return TH_ENOMEM;
    }
    for (size_t k = 0; k < alen; k++) {
        lower[k] = (char)((lower[k] >= 'A' && lower[k] <= 'Z') ? lower[k] + 32 : lower[k]);
    }
    out->action = lower;
    for (size_t k = 0; k < TH_ARRAY_SIZE(action_names); k++) {
        if (!strcmp(lower, action_names[k].name)) {
            out->type = action_names[k].type;
        }
    }
    out->key = raw.key;
    out->pattern = raw.pattern;
    out->from_attribute = raw.from_attribute;
    out->from_context = raw.from_context;
    out->converted_type = raw.converted_type;
    th_otlp_any_t *v;
    if (th__attributes_value_from_node(a, raw.value, &v) != 0) {
        return TH_ENOMEM;
    }
    out->value = v;
    if (th__attributes_value_from_node(a, raw.default_value, &v) != 0) {
        return TH_ENOMEM;
    }
    out->default_value = v;
    return 0;
}

/* ---- include / exclude ----------------------------------------------------------------- */

struct regexp_raw {
    bool cacheenabled;
    int64_t cachemaxnumentries;
};

static const struct th_cfg_field regexp_fields[] = {
    {.name = "cacheenabled",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct regexp_raw, cacheenabled),
     .desc = "cache regexp results (accepted; matching is fast without a cache)"},
    {.name = "cachemaxnumentries",
     .type = TH_CFG_INT,
     .offset = offsetof(struct regexp_raw, cachemaxnumentries),
     .min = 0,
     .max = INFINITY,
     .desc = "size of that cache (accepted)"},
    {.name = NULL},
};

struct match_raw {
    const char *match_type;
    struct regexp_raw regexp;
    th_strlist_t services, span_names, span_kinds, log_bodies, log_severity_texts, metric_names;
    const th_node_t *attributes, *resources, *libraries, *log_severity_number;
};

static const struct th_cfg_field match_fields[] = {
    {.name = "match_type",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct match_raw, match_type),
     .desc = "strict or regexp"},
    {.name = "regexp",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct match_raw, regexp),
     .sub = regexp_fields,
     .desc = "regexp options (cache settings, accepted)"},
    {.name = "services",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, services),
     .desc = "service names (resource service.name)"},
    {.name = "span_names",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, span_names),
     .desc = "span names"},
    {.name = "span_kinds",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, span_kinds),
     .desc = "span kinds (SPAN_KIND_SERVER, ...)"},
    {.name = "attributes",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct match_raw, attributes),
     .desc = "span attributes that must all be present [{key, value}]"},
    {.name = "resources",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct match_raw, resources),
     .desc = "resource attributes that must all be present [{key, value}]"},
    {.name = "libraries",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct match_raw, libraries),
     .desc = "instrumentation scopes [{name, version}]"},
    {.name = "log_bodies",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, log_bodies),
     .desc = "logs only (an error for spans)"},
    {.name = "log_severity_texts",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, log_severity_texts),
     .desc = "logs only (an error for spans)"},
    {.name = "log_severity_number",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct match_raw, log_severity_number),
     .desc = "logs only (an error for spans)"},
    {.name = "metric_names",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct match_raw, metric_names),
     .desc = "metrics only (ignored for spans)"},
    {.name = NULL},
};

struct kv_raw {
    const char *key;
    const th_node_t *value;
};

static const struct th_cfg_field kv_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct kv_raw, key),
     .desc = "attribute key"},
    {.name = "value",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct kv_raw, value),
     .desc = "value to match; absent: the key being present is enough"},
    {.name = NULL},
};

struct lib_raw {
    const char *name;
    const th_node_t *version;
};

static const struct th_cfg_field lib_fields[] = {
    {.name = "name",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct lib_raw, name),
     .desc = "scope name"},
    {.name = "version",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct lib_raw, version),
     .desc = "scope version; absent: any"},
    {.name = NULL},
};

/* A list node: NULL or null is empty; anything but a sequence is an error. */
static int expect_seq(const th_node_t *n, const char *path, char *err, size_t errlen)
{
    if (!n || n->kind == TH_NODE_NULL || n->kind == TH_NODE_SEQ) {
        return 0;
    }
    snprintf(err, errlen, "%s: expected a list, got %s", path,
             n->kind == TH_NODE_MAP ? "a map" : "a scalar");
    return TH_ECONFIG;
}

static size_t seq_len(const th_node_t *n)
{
    return n && n->kind == TH_NODE_SEQ ? n->n : 0;
}

static int decode_kvs(const th_node_t *list, const char *path, th_arena_t *a,
                      struct th_attributes_kv_match **out, size_t *n, char *err, size_t errlen)
{
    int ret = expect_seq(list, path, err, errlen);
    if (ret != 0) {
        return ret;
    }
    size_t cnt = seq_len(list);
    *out = th_arena_calloc(a, cnt ? cnt : 1, sizeof(**out));
    if (!*out) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        char ipath[160];
        snprintf(ipath, sizeof(ipath), "%s::%zu", path, i);
        struct kv_raw raw = {0};
        ret = th_cfg_decode(kv_fields, list->items[i], &raw, a, ipath, err, errlen);
        if (ret != 0) {
            return ret;
        }
        th_otlp_any_t *v;
        if (th__attributes_value_from_node(a, raw.value, &v) != 0) {
            return TH_ENOMEM;
        }
        (*out)[i].key = raw.key;
        (*out)[i].value = v;
    }
    *n = cnt;
    return 0;
}

static int decode_match(const th_node_t *node, const char *path, th_arena_t *a,
                        const struct th_attributes_match **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!node || node->kind == TH_NODE_NULL) {
        return 0; /* a null block is an absent one, as a nil pointer in the Collector */
    }
    struct match_raw raw;
    memset(&raw, 0, sizeof(raw));
    int ret = th_cfg_decode(match_fields, node, &raw, a, path, err, errlen);
    if (ret != 0) {
        return ret;
    }
    struct th_attributes_match *m = th_arena_calloc(a, 1, sizeof(*m));
    if (!m) {
        return TH_ENOMEM;
    }
    m->match_type_text = raw.match_type;
    m->match_type = !*raw.match_type                    ? TH_ATTRIBUTES_MATCH_UNSET
                    : !strcmp(raw.match_type, "strict") ? TH_ATTRIBUTES_MATCH_STRICT
                    : !strcmp(raw.match_type, "regexp") ? TH_ATTRIBUTES_MATCH_REGEXP
                                                        : TH_ATTRIBUTES_MATCH_INVALID;
    m->services = raw.services;
    m->span_names = raw.span_names;
    m->span_kinds = raw.span_kinds;
    m->n_log_bodies = raw.log_bodies.n;
    m->n_log_severity_texts = raw.log_severity_texts.n;
    m->has_log_severity_number =
        raw.log_severity_number && raw.log_severity_number->kind != TH_NODE_NULL;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s::attributes", path);
    ret = decode_kvs(raw.attributes, sub, a, &m->attributes, &m->n_attributes, err, errlen);
    if (ret != 0) {
        return ret;
    }
    snprintf(sub, sizeof(sub), "%s::resources", path);
    ret = decode_kvs(raw.resources, sub, a, &m->resources, &m->n_resources, err, errlen);
    if (ret != 0) {
        return ret;
    }
    snprintf(sub, sizeof(sub), "%s::libraries", path);
    ret = expect_seq(raw.libraries, sub, err, errlen);
    if (ret != 0) {
        return ret;
    }
    size_t nl = seq_len(raw.libraries);
    m->libraries = th_arena_calloc(a, nl ? nl : 1, sizeof(*m->libraries));
    if (!m->libraries) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < nl; i++) {
        char ipath[160];
        snprintf(ipath, sizeof(ipath), "%s::%zu", sub, i);
        struct lib_raw lr = {0};
        ret = th_cfg_decode(lib_fields, raw.libraries->items[i], &lr, a, ipath, err, errlen);
        if (ret != 0) {
            return ret;
        }
        m->libraries[i].name = lr.name;
        if (lr.version && lr.version->kind == TH_NODE_SCALAR) {
            m->libraries[i].version = th_arena_strndup(a, lr.version->text, lr.version->len);
            if (!m->libraries[i].version) {
                return TH_ENOMEM;
            }
        } else if (lr.version && lr.version->kind != TH_NODE_NULL) {
            snprintf(err, errlen, "%s::version: expected a string", ipath);
            return TH_ECONFIG;
        }
    }
    m->n_libraries = nl;
    *out = m;
    return 0;
}

int th_attributes_settings_decode(const struct th_attributes_cfg *cfg, th_arena_t *a,
                                  struct th_attributes_settings *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int ret = expect_seq(cfg->actions, "actions", err, errlen);
    if (ret != 0) {
        return ret;
    }
    size_t n = seq_len(cfg->actions);
    struct th_attributes_action *acts = th_arena_calloc(a, n ? n : 1, sizeof(*acts));
    if (!acts) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ret = decode_action(cfg->actions->items[i], i, a, &acts[i], err, errlen);
        if (ret != 0) {
            return ret;
        }
    }
    out->actions = acts;
    out->n_actions = n;
    ret = decode_match(cfg->include, "include", a, &out->include, err, errlen);
    if (ret == 0) {
        ret = decode_match(cfg->exclude, "exclude", a, &out->exclude, err, errlen);
    }
    if (ret == 0) {
        ret = th_attributes_settings_check(out, err, errlen);
    }
    return ret;
}

int th_attributes_config_check(const void *cfg, const char **err)
{
    /* Config checks run once, at start-up, on the main thread. */
    static _Thread_local char msg[1024];
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        *err = "out of memory";
        return TH_ENOMEM;
    }
    struct th_attributes_settings s;
    int ret = th_attributes_settings_decode(cfg, a, &s, msg, sizeof(msg));
    th_arena_destroy(a);
    if (ret != 0) {
        *err = ret == TH_ENOMEM ? "out of memory" : msg;
        return ret == TH_ENOMEM ? TH_ENOMEM : TH_ECONFIG;
    }
    return 0;
}

/* ---- The checks ---------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return TH_ECONFIG;
}

/* Compile to check, then free; the message gets the key path in front. */
static int check_regex(const char *pattern, const char *path, char *err, size_t errlen)
{
    char why[768];
    pcre2_code *re = NULL;
    int ret = th__attributes_regex_compile(pattern, &re, why, sizeof(why));
    pcre2_code_free(re);
    if (ret == TH_ECONFIG) {
        return fail(err, errlen, "%s: %s", path, why);
    }
    return ret;
}

/* Go's regexp SubexpNames: extract writes one attribute per group, so every group needs a
 * name. */
static int check_named_groups(const char *pattern, const char *path, char *err, size_t errlen)
{
    char why[768];
    pcre2_code *re = NULL;
    int ret = th__attributes_regex_compile(pattern, &re, why, sizeof(why));
    if (ret != 0) {
        return ret == TH_ECONFIG ? fail(err, errlen, "%s: %s", path, why) : ret;
    }
    uint32_t groups = th__attributes_regex_groups(re);
    uint32_t names = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(re, PCRE2_INFO_NAMECOUNT, &names);
    pcre2_pattern_info(re, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(re, PCRE2_INFO_NAMETABLE, &table);
    ret = 0;
    if (groups == 0) {
        ret = fail(err, errlen, "%s: contains no named matcher groups", path);
    } else {
        for (uint32_t g = 1; g <= groups && ret == 0; g++) {
            bool named = false;
            for (uint32_t k = 0; k < names; k++) {
                const uint8_t *e = table + (size_t)k * entry;
                if ((uint32_t)((e[0] << 8) | e[1]) == g) {
                    named = true;
                }
            }
            if (!named) {
                ret = fail(err, errlen, "%s: contains at least one unnamed matcher group", path);
            }
        }
    }
    pcre2_code_free(re);
    return ret;
}

static int check_action(const struct th_attributes_action *a, size_t i, char *err, size_t errlen)
{
    const char *key = a->key ? a->key : "";
    const char *pattern = a->pattern ? a->pattern : "";
    const char *conv = a->converted_type ? a->converted_type : "";
    bool from_attr = a->from_attribute && *a->from_attribute;
    bool from_ctx = a->from_context && *a->from_context;
    const char *name = a->action ? a->action : "";
    for (size_t k = 0; !*name && k < TH_ARRAY_SIZE(action_names); k++) {
        if (action_names[k].type == a->type) {
            name = action_names[k].name;
        }
    }
    int sources = (a->value != NULL) + from_attr + from_ctx;
    char path[64];
    snprintf(path, sizeof(path), "actions::%zu", i);

    if (a->type == TH_ATTRIBUTES_DELETE || a->type == TH_ATTRIBUTES_HASH) {
        if (!*key && !*pattern) {
            return fail(err, errlen,
                        "%s: missing required field (at least one of \"key\" and \"pattern\" "
                        "have to be used)",
                        path);
        }
    } else if (!*key) {
        return fail(err, errlen, "%s: missing required field \"key\"", path);
    }
    if (a->default_value && a->type != TH_ATTRIBUTES_INSERT && a->type != TH_ATTRIBUTES_UPDATE &&
        a->type != TH_ATTRIBUTES_UPSERT && a->type != TH_ATTRIBUTES_UNKNOWN) {
        return fail(err, errlen,
                    "%s::default_value: action \"%s\" does not use the \"default_value\" field. "
                    "It must not be specified",
                    path, name);
    }
    switch (a->type) {
    case TH_ATTRIBUTES_INSERT:
    case TH_ATTRIBUTES_UPDATE:
    case TH_ATTRIBUTES_UPSERT:
        /* default_value alone is a source too: `value: ${env:X}` with X unset falls back. */
        if (sources == 0 && !a->default_value) {
            return fail(err, errlen,
                        "%s: either field \"value\", \"from_attribute\" or \"from_context\" "
                        "setting must be specified",
                        path);
        }
        if (sources > 1) {
            return fail(err, errlen,
                        "%s: multiple value sources being set (only one of \"value\", "
                        "\"from_attribute\" and \"from_context\" may be used)",
                        path);
        }
        if (*pattern) {
            return fail(err, errlen,
                        "%s::pattern: action \"%s\" does not use the \"pattern\" field. This "
                        "must not be specified",
                        path, name);
        }
        if (*conv) {
            return fail(err, errlen,
                        "%s::converted_type: action \"%s\" does not use the \"converted_type\" "
                        "field. This must not be specified",
                        path, name);
        }
        return 0;
    case TH_ATTRIBUTES_HASH:
    case TH_ATTRIBUTES_DELETE:
        if (a->value || from_attr) {
            return fail(err, errlen,
                        "%s: action \"%s\" does not use \"value\" or \"from_attribute\" field. "
                        "These must not be specified",
                        path, name);
        }
        if (*pattern) {
            char ppath[80];
            snprintf(ppath, sizeof(ppath), "%s::pattern", path);
            int ret = check_regex(pattern, ppath, err, errlen);
            if (ret != 0) {
                return ret;
            }
        }
        if (*conv) {
            return fail(err, errlen,
                        "%s::converted_type: action \"%s\" does not use the \"converted_type\" "
                        "field. This must not be specified",
                        path, name);
        }
        return 0;
    case TH_ATTRIBUTES_EXTRACT: {
        if (sources > 0) {
            return fail(err, errlen,
                        "%s: action \"%s\" does not use a value source field. These must not "
                        "be specified",
                        path, name);
        }
        if (!*pattern) {
            return fail(err, errlen, "%s: missing required field \"pattern\" for action \"%s\"",
                        path, name);
        }
        if (*conv) {
            return fail(err, errlen,
                        "%s::converted_type: action \"%s\" does not use the \"converted_type\" "
                        "field. This must not be specified",
                        path, name);
        }
        char ppath[80];
        snprintf(ppath, sizeof(ppath), "%s::pattern", path);
        return check_named_groups(pattern, ppath, err, errlen);
    }
    case TH_ATTRIBUTES_CONVERT:
        if (sources > 0 || *pattern) {
            return fail(err, errlen,
                        "%s: action \"%s\" does not use value sources or \"pattern\" field. "
                        "These must not be specified",
                        path, name);
        }
        if (!*conv) {
            return fail(err, errlen,
                        "%s: missing required field \"converted_type\" for action \"%s\"", path,
                        name);
        }
        if (strcmp(conv, "int") && strcmp(conv, "double") && strcmp(conv, "string")) {
            return fail(err, errlen,
                        "%s::converted_type: invalid value \"%s\" in field \"converted_type\" "
                        "for action \"%s\" (valid: int, double, string)",
                        path, conv, name);
        }
        return 0;
    default:
        return fail(err, errlen, "%s::action: unsupported action \"%s\"", path, name);
    }
}

static const char *const span_kind_names[] = {"SPAN_KIND_CLIENT", "SPAN_KIND_CONSUMER",
                                              "SPAN_KIND_INTERNAL", "SPAN_KIND_PRODUCER",
                                              "SPAN_KIND_SERVER"};

/* filterset.CreateFilterSet: needs a valid match_type; regexps must compile. */
static int check_filterset(const struct th_attributes_match *m, const char *const *v, size_t n,
                           const char *path, const char *what, char *err, size_t errlen)
{
    if (m->match_type != TH_ATTRIBUTES_MATCH_STRICT &&
        m->match_type != TH_ATTRIBUTES_MATCH_REGEXP) {
        return fail(err, errlen,
                    "%s: error creating %s filters: unrecognized match_type: '%s', valid types "
                    "are: [regexp strict]",
                    path, what, m->match_type_text ? m->match_type_text : "");
    }
    if (m->match_type == TH_ATTRIBUTES_MATCH_REGEXP) {
        for (size_t i = 0; i < n; i++) {
            char ipath[192];
            snprintf(ipath, sizeof(ipath), "%s::%zu", path, i);
            int ret = check_regex(v[i], ipath, err, errlen);
            if (ret != 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int check_kv_matches(const struct th_attributes_match *m,
                            const struct th_attributes_kv_match *kvs, size_t n, const char *path,
                            const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        char ipath[192];
        snprintf(ipath, sizeof(ipath), "%s::%zu", path, i);
        if (!kvs[i].key || !*kvs[i].key) {
            return fail(err, errlen,
                        "%s: error creating %s filters: can't have empty key in the list of "
                        "attributes",
                        ipath, what);
        }
        if (!kvs[i].value) {
            continue;
        }
        if (m->match_type == TH_ATTRIBUTES_MATCH_REGEXP) {
            if (kvs[i].value->value_case != TH__ANY_STRING) {
                return fail(err, errlen,
                            "%s::value: error creating %s filters: match_type=regexp for \"%s\" "
                            "only supports Str, but found %s",
                            ipath, what, kvs[i].key, th__attributes_type_name(kvs[i].value));
            }
            char vpath[240];
            snprintf(vpath, sizeof(vpath), "%s::value", ipath);
            int ret = check_regex(kvs[i].value->string_value, vpath, err, errlen);
            if (ret != 0) {
                return ret;
            }
        } else if (m->match_type != TH_ATTRIBUTES_MATCH_STRICT) {
            return fail(err, errlen,
                        "%s: error creating %s filters: unrecognized match_type: '%s', valid "
                        "types are: [regexp strict]",
                        ipath, what, m->match_type_text ? m->match_type_text : "");
        }
    }
    return 0;
}

/* filterconfig.ValidateForSpans, then filtermatcher.NewMatcher, then the span filtersets,
 * in the Collector's order. */
static int check_match(const struct th_attributes_match *m, const char *path, char *err,
                       size_t errlen)
{
    if (m->n_log_bodies > 0) {
        return fail(err, errlen, "%s: log_bodies should not be specified for trace spans", path);
    }
    if (m->n_log_severity_texts > 0) {
        return fail(err, errlen, "%s: log_severity_texts should not be specified for trace spans",
                    path);
    }
    if (m->has_log_severity_number) {
        return fail(err, errlen, "%s: log_severity_number should not be specified for trace spans",
                    path);
    }
    if (!m->services.n && !m->span_names.n && !m->n_attributes && !m->n_libraries &&
        !m->n_resources && !m->span_kinds.n) {
        return fail(err, errlen,
                    "%s: at least one of \"attributes\", \"libraries\",  or \"resources\" field "
                    "must be specified",
                    path);
    }
    if (m->match_type == TH_ATTRIBUTES_MATCH_STRICT) {
        for (size_t i = 0; i < m->span_kinds.n; i++) {
            bool ok = false;
            for (size_t k = 0; k < TH_ARRAY_SIZE(span_kind_names); k++) {
                ok = ok || !strcmp(m->span_kinds.v[i], span_kind_names[k]);
            }
            if (!ok) {
                return fail(err, errlen,
                            "%s::span_kinds::%zu: span_kinds string must match one of the "
                            "standard span kinds when match_type=strict: [SPAN_KIND_CLIENT "
                            "SPAN_KIND_CONSUMER SPAN_KIND_INTERNAL SPAN_KIND_PRODUCER "
                            "SPAN_KIND_SERVER]",
                            path, i);
            }
        }
    }
    char sub[160];
    int ret;
    for (size_t i = 0; i < m->n_libraries; i++) {
        snprintf(sub, sizeof(sub), "%s::libraries::%zu::name", path, i);
        const char *name = m->libraries[i].name ? m->libraries[i].name : "";
        ret = check_filterset(m, &name, 1, sub, "library name", err, errlen);
        if (ret == 0 && m->libraries[i].version) {
            snprintf(sub, sizeof(sub), "%s::libraries::%zu::version", path, i);
            ret = check_filterset(m, &m->libraries[i].version, 1, sub, "library version", err,
                                  errlen);
        }
        if (ret != 0) {
            return ret;
        }
    }
    snprintf(sub, sizeof(sub), "%s::attributes", path);
    ret = check_kv_matches(m, m->attributes, m->n_attributes, sub, "attribute", err, errlen);
    if (ret != 0) {
        return ret;
    }
    snprintf(sub, sizeof(sub), "%s::resources", path);
    ret = check_kv_matches(m, m->resources, m->n_resources, sub, "resource", err, errlen);
    if (ret != 0) {
        return ret;
    }
    const struct {
        const th_strlist_t *l;
        const char *key, *what;
    } sets[] = {{&m->services, "services", "service name"},
                {&m->span_names, "span_names", "span name"},
                {&m->span_kinds, "span_kinds", "span kind"}};
    for (size_t k = 0; k < TH_ARRAY_SIZE(sets); k++) {
        if (sets[k].l->n == 0) {
            continue;
        }
        snprintf(sub, sizeof(sub), "%s::%s", path, sets[k].key);
        ret = check_filterset(m, sets[k].l->v, sets[k].l->n, sub, sets[k].what, err, errlen);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

int th_attributes_settings_check(const struct th_attributes_settings *s, char *err, size_t errlen)
{
    if (s->n_actions == 0) {
        return fail(err, errlen, "missing required field \"actions\"");
    }
    for (size_t i = 0; i < s->n_actions; i++) {
        int ret = check_action(&s->actions[i], i, err, errlen);
        if (ret != 0) {
            return ret;
        }
    }
    if (s->include) {
        int ret = check_match(s->include, "include", err, errlen);
        if (ret != 0) {
            return ret;
        }
    }
    if (s->exclude) {
        return check_match(s->exclude, "exclude", err, errlen);
    }
    return 0;
}
