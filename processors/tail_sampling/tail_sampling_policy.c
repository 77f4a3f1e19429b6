/*
 * The tail sampling policies: decoding the Collector's `policies` list (every key, type and
 * message as the Collector has them, through th_cfg_decode and one field table per policy
 * type), compiling it into th__ts_policy trees, and the decision loop with the Collector's
 * evaluation order and final-decision rules (makeDecision). The evaluators themselves are in
 * tail_sampling_policy_eval.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "th/log.h"
#include "processors/tail_sampling/tail_sampling_policy.h"

/* ---- Per-type config tables ---------------------------------------------------------------- */

struct latency_cfg {
    int64_t threshold_ms, upper_threshold_ms;
};

static const struct th_cfg_field latency_fields[] = {
    {.name = "threshold_ms",
     .type = TH_CFG_INT,
     .offset = offsetof(struct latency_cfg, threshold_ms),
     .desc = "sample traces lasting at least this many milliseconds (more than, with an upper "
             "bound)"},
    {.name = "upper_threshold_ms",
     .type = TH_CFG_INT,
     .offset = offsetof(struct latency_cfg, upper_threshold_ms),
     .desc = "sample only traces lasting at most this many milliseconds; 0 = no upper bound"},
    {0},
};

struct numeric_cfg {
    const char *key;
    int64_t min_value, max_value;
    bool invert_match;
};

static const struct th_cfg_field numeric_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct numeric_cfg, key),
     .desc = "the resource or span attribute to read (int values)"},
    {.name = "min_value",
     .type = TH_CFG_INT,
     .offset = offsetof(struct numeric_cfg, min_value),
     .desc = "smallest matching value, inclusive; 0 = no lower bound"},
    {.name = "max_value",
     .type = TH_CFG_INT,
     .offset = offsetof(struct numeric_cfg, max_value),
     .desc = "largest matching value, inclusive; 0 = no upper bound"},
    {.name = "invert_match",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct numeric_cfg, invert_match),
     .desc = "sample when no resource or span matches (a match is not sampled)"},
    {0},
};

struct prob_cfg {
    const char *hash_salt;
    double sampling_percentage;
};

static const struct th_cfg_field prob_fields[] = {
    {.name = "hash_salt",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct prob_cfg, hash_salt),
     .desc = "salt hashed before the trace id; empty = \"default-hash-seed\""},
    {.name = "sampling_percentage",
     .type = TH_CFG_DOUBLE,
     .offset = offsetof(struct prob_cfg, sampling_percentage),
     .desc = "percentage of traces to sample; 100 or more samples all"},
    {0},
};

struct status_cfg {
    th_strlist_t status_codes;
};

static const struct th_cfg_field status_fields[] = {
    {.name = "status_codes",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct status_cfg, status_codes),
     .desc = "span status codes that sample the trace: OK, ERROR, UNSET"},
    {0},
};

struct string_cfg {
    const char *key;
    th_strlist_t values;
    bool enabled_regex_matching;
    int64_t cache_max_size;
    bool invert_match;
};

static const struct th_cfg_field string_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct string_cfg, key),
     .desc = "the resource or span attribute to read (string values)"},
    {.name = "values",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct string_cfg, values),
     .desc = "values (or regular expressions) that match; empty strings are ignored"},
    {.name = "enabled_regex_matching",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct string_cfg, enabled_regex_matching),
     .desc = "treat values as regular expressions (not anchored)"},
    {.name = "cache_max_size",
     .type = TH_CFG_INT,
     .offset = offsetof(struct string_cfg, cache_max_size),
     .desc = "attribute values whose regex result is remembered; <= 0 means 128"},
    {.name = "invert_match",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct string_cfg, invert_match),
     .desc = "sample when no resource or span matches (a match is not sampled)"},
    {0},
};

struct rate_cfg {
    int64_t per_second, burst_capacity;
};

static const struct th_cfg_field rate_fields[] = {
    {.name = "spans_per_second",
     .type = TH_CFG_INT,
     .offset = offsetof(struct rate_cfg, per_second),
     .desc = "spans of sampled traces allowed per second (token bucket refill rate)"},
    {.name = "burst_capacity",
     .type = TH_CFG_INT,
     .offset = offsetof(struct rate_cfg, burst_capacity),
     .desc = "token bucket size in spans; 0 = twice spans_per_second"},
    {0},
};

static const struct th_cfg_field bytes_fields[] = {
    {.name = "bytes_per_second",
     .type = TH_CFG_INT,
     .offset = offsetof(struct rate_cfg, per_second),
     .desc = "protobuf bytes of sampled traces allowed per second (token bucket refill rate)"},
    {.name = "burst_capacity",
     .type = TH_CFG_INT,
     .offset = offsetof(struct rate_cfg, burst_capacity),
     .desc = "token bucket size in bytes; 0 = twice bytes_per_second"},
    {0},
};

struct span_count_cfg {
    int64_t min_spans, max_spans;
};

static const struct th_cfg_field span_count_fields[] = {
    {.name = "min_spans",
     .type = TH_CFG_INT,
     .offset = offsetof(struct span_count_cfg, min_spans),
     .min = -2147483648.0,
     .max = 2147483647.0,
     .desc = "sample traces with at least this many spans"},
    {.name = "max_spans",
     .type = TH_CFG_INT,
     .offset = offsetof(struct span_count_cfg, max_spans),
     .min = -2147483648.0,
     .max = 2147483647.0,
     .desc = "and at most this many; 0 = no upper bound"},
    {0},
};

struct trace_state_cfg {
    const char *key;
    th_strlist_t values;
};

static const struct th_cfg_field trace_state_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct trace_state_cfg, key),
     .desc = "the W3C tracestate key to read"},
    {.name = "values",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct trace_state_cfg, values),
     .desc = "tracestate values that sample the trace"},
    {0},
};

struct bool_cfg {
    const char *key;
    bool value;
    bool invert_match;
};

static const struct th_cfg_field bool_fields[] = {
    {.name = "key",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct bool_cfg, key),
     .desc = "the resource or span attribute to read (bool values)"},
    {.name = "value",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct bool_cfg, value),
     .desc = "the value that matches"},
    {.name = "invert_match",
     .type = TH_CFG_BOOL,
     .offset = offsetof(struct bool_cfg, invert_match),
     .desc = "sample when no resource or span matches (a match is not sampled)"},
    {0},
};

struct list_cfg {
    const th_node_t *subs;
};

static const struct th_cfg_field and_fields[] = {
    {.name = "and_sub_policy",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct list_cfg, subs),
     .desc = "policies that must all sample the trace"},
    {0},
};

static const struct th_cfg_field drop_fields[] = {
    {.name = "drop_sub_policy",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct list_cfg, subs),
     .desc = "policies that, when all sample the trace, drop it"},
    {0},
};

static const struct th_cfg_field not_fields[] = {
    {.name = "not_sub_policy",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct list_cfg, subs),
     .desc = "the policy whose decision is inverted"},
    {0},
};

struct composite_cfg {
    int64_t max_total_spans_per_second;
    th_strlist_t policy_order;
    const th_node_t *subs;
    const th_node_t *rate_allocation;
};

static const struct th_cfg_field composite_fields[] = {
    {.name = "max_total_spans_per_second",
     .type = TH_CFG_INT,
     .offset = offsetof(struct composite_cfg, max_total_spans_per_second),
     .desc = "spans of sampled traces allowed per second, all sub-policies together"},
    {.name = "policy_order",
     .type = TH_CFG_STRLIST,
     .offset = offsetof(struct composite_cfg, policy_order),
     .desc = "sub-policy names in the order they are tried"},
    {.name = "composite_sub_policy",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct composite_cfg, subs),
     .desc = "the sub-policies"},
    {.name = "rate_allocation",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct composite_cfg, rate_allocation),
     .desc = "list of {policy, percent}: each sub-policy's share of the total"},
    {0},
};

struct alloc_cfg {
    const char *policy;
    int64_t percent;
};

static const struct th_cfg_field alloc_fields[] = {
    {.name = "policy",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct alloc_cfg, policy),
     .desc = "a composite sub-policy name"},
    {.name = "percent",
     .type = TH_CFG_INT,
     .offset = offsetof(struct alloc_cfg, percent),
     .desc = "its percentage of max_total_spans_per_second"},
    {0},
};

/* ---- The policy item: {name, type, <section>...} --------------------------------------------- */

/* The sections a policy item may carry. The Collector decodes every section of its policy
 * struct whatever the type, so a leftover section for another type is accepted (and checked)
 * but only the section of the policy's own type is used. */
enum section {
    S_LATENCY,
    S_NUMERIC,
    S_PROB,
    S_STATUS,
    S_STRING,
    S_RATE,
    S_BYTES,
    S_SPAN_COUNT,
    S_TRACE_STATE,
    S_BOOL,
    S_OTTL,
    S_AND,
    S_NOT,
    S_DROP,
    S_COMPOSITE,
    N_SECTIONS,
    S_NONE = -1,
};

struct item_cfg {
    const char *name;
    const char *type;
    const th_node_t *sec[N_SECTIONS];
};

#define SEC_ROW(k, s, d)                                                                           \
    {                                                                                              \
        .name = k, .type = TH_CFG_NODE, .offset = offsetof(struct item_cfg, sec[s]), .desc = d     \
    }

#define SHARED_ROWS                                                                                \
    {.name = "name",                                                                               \
     .type = TH_CFG_STRING,                                                                        \
     .offset = offsetof(struct item_cfg, name),                                                    \
     .desc = "the policy's name (unique at the top level; metrics use it)"},                       \
        {.name = "type",                                                                           \
         .type = TH_CFG_STRING,                                                                    \
         .offset = offsetof(struct item_cfg, type),                                                \
         .desc = "the policy type"},                                                               \
        SEC_ROW("latency", S_LATENCY, "latency policy settings"),                                  \
        SEC_ROW("numeric_attribute", S_NUMERIC, "numeric_attribute policy settings"),              \
        SEC_ROW("probabilistic", S_PROB, "probabilistic policy settings"),                         \
        SEC_ROW("status_code", S_STATUS, "status_code policy settings"),                           \
        SEC_ROW("string_attribute", S_STRING, "string_attribute policy settings"),                 \
        SEC_ROW("rate_limiting", S_RATE, "rate_limiting policy settings"),                         \
        SEC_ROW("bytes_limiting", S_BYTES, "bytes_limiting policy settings"),                      \
        SEC_ROW("span_count", S_SPAN_COUNT, "span_count policy settings"),                         \
        SEC_ROW("trace_state", S_TRACE_STATE, "trace_state policy settings"),                      \
        SEC_ROW("boolean_attribute", S_BOOL, "boolean_attribute policy settings"),                 \
        SEC_ROW("ottl_condition", S_OTTL, "ottl_condition policy settings (not supported)")

/* Sub-policies of and, drop and not. */
static const struct th_cfg_field sub_item_fields[] = {SHARED_ROWS, {0}};

/* Sub-policies of composite, which may be `and`. */
static const struct th_cfg_field composite_item_fields[] = {
    SHARED_ROWS, SEC_ROW("and", S_AND, "and policy settings"), {0}};

static const struct th_cfg_field top_item_fields[] = {
    SHARED_ROWS,
    SEC_ROW("and", S_AND, "and policy settings"),
    SEC_ROW("not", S_NOT, "not policy settings"),
    SEC_ROW("drop", S_DROP, "drop policy settings"),
    SEC_ROW("composite", S_COMPOSITE, "composite policy settings"),
    {0},
};

static const char *const section_names[N_SECTIONS] = {
    [S_LATENCY] = "latency",
    [S_NUMERIC] = "numeric_attribute",
    [S_PROB] = "probabilistic",
    [S_STATUS] = "status_code",
    [S_STRING] = "string_attribute",
    [S_RATE] = "rate_limiting",
    [S_BYTES] = "bytes_limiting",
    [S_SPAN_COUNT] = "span_count",
    [S_TRACE_STATE] = "trace_state",
    [S_BOOL] = "boolean_attribute",
    [S_OTTL] = "ottl_condition",
    [S_AND] = "and",
    [S_NOT] = "not",
    [S_DROP] = "drop",
    [S_COMPOSITE] = "composite",
};

/* The table of each simple section, for checking sections of other types too. */
static const struct th_cfg_field *const section_fields[N_SECTIONS] = {
    [S_LATENCY] = latency_fields,
    [S_NUMERIC] = numeric_fields,
    [S_PROB] = prob_fields,
    [S_STATUS] = status_fields,
    [S_STRING] = string_fields,
    [S_RATE] = rate_fields,
    [S_BYTES] = bytes_fields,
    [S_SPAN_COUNT] = span_count_fields,
    [S_TRACE_STATE] = trace_state_fields,
    [S_BOOL] = bool_fields,
};

/* Room for any simple section's config struct. */
union any_cfg {
    struct latency_cfg latency;
    struct numeric_cfg numeric;
    struct prob_cfg prob;
    struct status_cfg status;
    struct string_cfg string;
    struct rate_cfg rate;
    struct span_count_cfg span_count;
    struct trace_state_cfg trace_state;
    struct bool_cfg boolean;
};

/* Where a policy sits, which decides the types it may have. */
enum level {
    LVL_TOP,
    LVL_COMPOSITE_SUB,
    LVL_SUB, /* inside and, drop, not */
};

static const struct ptype_def {
    const char *name;
    enum th__ts_ptype type;
    enum section sec;
    enum level deepest; /* the deepest level it is allowed at */
} ptypes[] = {
    {"always_sample", TH__TS_ALWAYS_SAMPLE, S_NONE, LVL_SUB},
    {"latency", TH__TS_LATENCY, S_LATENCY, LVL_SUB},
    {"numeric_attribute", TH__TS_NUMERIC_ATTRIBUTE, S_NUMERIC, LVL_SUB},
    {"probabilistic", TH__TS_PROBABILISTIC, S_PROB, LVL_SUB},
    {"status_code", TH__TS_STATUS_CODE, S_STATUS, LVL_SUB},
    {"string_attribute", TH__TS_STRING_ATTRIBUTE, S_STRING, LVL_SUB},
    {"rate_limiting", TH__TS_RATE_LIMITING, S_RATE, LVL_SUB},
    {"bytes_limiting", TH__TS_BYTES_LIMITING, S_BYTES, LVL_SUB},
    {"span_count", TH__TS_SPAN_COUNT, S_SPAN_COUNT, LVL_SUB},
    {"trace_state", TH__TS_TRACE_STATE, S_TRACE_STATE, LVL_SUB},
    {"trace_flags", TH__TS_TRACE_FLAGS, S_NONE, LVL_SUB},
    {"boolean_attribute", TH__TS_BOOLEAN_ATTRIBUTE, S_BOOL, LVL_SUB},
    {"and", TH__TS_AND, S_AND, LVL_COMPOSITE_SUB},
    {"not", TH__TS_NOT, S_NOT, LVL_TOP},
    {"drop", TH__TS_DROP, S_DROP, LVL_TOP},
    {"composite", TH__TS_COMPOSITE, S_COMPOSITE, LVL_TOP},
};

/* ---- The policies object --------------------------------------------------------------------- */

struct th_ts_policies {
    th_arena_t *arena;          /**< every policy, string and table */
    struct th__ts_policy **top; /**< config order */
    size_t n;
    size_t *order; /**< evaluation order: drop policies first, then the rest */
    struct th_ts_policy_stats *stats;
    bool sample_on_first_match;
    bool has_regex;
    struct th__attributes_matcher matcher;
    struct th__ts_policy *res; /**< policies holding resources outside the arena */
};

/* What building needs: the arena, the message buffer, the policies (for flags). */
struct bctx {
    th_ts_policies_t *ps;
    th_arena_t *a;
    char *err;
    size_t errlen;
};

static int oom(struct bctx *c)
{
    snprintf(c->err, c->errlen, "out of memory building the sampling policies");
    return TH_ENOMEM;
}

static const char *supported_list(enum level lvl, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < TH_ARRAY_SIZE(ptypes); i++) {
        if (ptypes[i].deepest < lvl) {
            continue;
        }
        int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", ptypes[i].name);
        if (w < 0 || (size_t)w >= cap - n) {
            break;
        }
        n += (size_t)w;
    }
    return buf;
}

static int build_item(struct bctx *c, const th_node_t *item, const char *path, enum level lvl,
                      struct th__ts_policy **out);

/* Build a list of sub-policies (and_sub_policy, drop_sub_policy, composite_sub_policy). */
static int build_list(struct bctx *c, const th_node_t *node, const char *path, enum level lvl,
                      struct th__ts_policy ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!node || node->kind == TH_NODE_NULL) {
        return 0;
    }
    if (node->kind != TH_NODE_SEQ) {
        snprintf(c->err, c->errlen, "%s: expected a list of policies, got %s", path,
                 node->kind == TH_NODE_MAP ? "a map" : "a scalar");
        return TH_ECONFIG;
    }
    struct th__ts_policy **v = th_arena_calloc(c->a, node->n ? node->n : 1, sizeof(*v));
    if (!v) {
        return oom(c);
    }
    for (size_t i = 0; i < node->n; i++) {
        char ipath[512];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        int ret = build_item(c, node->items[i], ipath, lvl, &v[i]);
        if (ret != 0) {
            return ret;
        }
    }
    *out = v;
    *n = node->n;
    return 0;
}

static bool trace_state_keep(const char *s, size_t len, const void *arg)
{
    (void)s;
    /* A key=value list member cannot exceed 256 characters; longer values can never match. */
    return strlen((const char *)arg) + len < 256;
}

static int build_string(struct bctx *c, struct th__ts_policy *p, const struct string_cfg *cfg,
                        const char *spath)
{
    p->res_next = c->ps->res; /* released on destroy, whatever happens below */
    c->ps->res = p;
    p->u.string.key = cfg->key;
    p->u.string.invert = cfg->invert_match;
    p->u.string.regex = cfg->enabled_regex_matching;
    if (!cfg->enabled_regex_matching) {
        return th__ts_strset_init(&p->u.string.set, c->a, cfg->values.v, cfg->values.n, NULL,
                                  NULL) == 0
                   ? 0
                   : oom(c);
    }
    size_t cache = cfg->cache_max_size <= 0 ? 128 : (size_t)cfg->cache_max_size;
    if (th__ts_rcache_init(&p->u.string.cache, cache) != 0) {
        return oom(c);
    }
    p->u.string.re = th_arena_calloc(c->a, cfg->values.n ? cfg->values.n : 1, sizeof(pcre2_code *));
    if (!p->u.string.re) {
        return oom(c);
    }
    for (size_t i = 0; i < cfg->values.n; i++) {
        char msg[384];
        int ret =
            th__attributes_regex_compile(cfg->values.v[i], &p->u.string.re[i], msg, sizeof(msg));
        if (ret != 0) {
            snprintf(c->err, c->errlen, "%s::values[%zu]: %s", spath, i, msg);
            return ret;
        }
        p->u.string.n_re++;
    }
    c->ps->has_regex = true;
    return 0;
}

static int build_status(struct bctx *c, struct th__ts_policy *p, const struct status_cfg *cfg,
                        const char *spath)
{
    if (cfg->status_codes.n == 0) {
        snprintf(c->err, c->errlen,
                 "%s::status_codes: expected at least one status code to filter on", spath);
        return TH_ECONFIG;
    }
    static const char *const names[] = {"UNSET", "OK", "ERROR"}; /* by OTLP code */
    for (size_t i = 0; i < cfg->status_codes.n; i++) {
        const char *s = cfg->status_codes.v[i];
        size_t k = 0;
        while (k < TH_ARRAY_SIZE(names) && strcmp(s, names[k]) != 0) {
            k++;
        }
        if (k == TH_ARRAY_SIZE(names)) {
            snprintf(c->err, c->errlen,
                     "%s::status_codes: unknown status code \"%s\", supported: OK, ERROR, UNSET",
                     spath, s);
            return TH_ECONFIG;
        }
        p->u.status.mask |= 1u << k;
    }
    return 0;
}

/* A key path for messages: @p base then @p suffix. A path too long for the buffer is cut
 * short, which only shortens a message, so the truncation is deliberate. */
static void key_path(char *dst, size_t n, const char *base, const char *suffix)
{
    int w = snprintf(dst, n, "%s%s", base, suffix);
    if (w < 0 || (size_t)w >= n) {
        dst[n - 1] = 0;
    }
}

static int build_composite(struct bctx *c, struct th__ts_policy *p, const struct composite_cfg *cfg,
                           const char *spath)
{
    char lpath[512];
    key_path(lpath, sizeof(lpath), spath, "::composite_sub_policy");
    struct th__ts_policy **subs;
    size_t n;
    int ret = build_list(c, cfg->subs, lpath, LVL_COMPOSITE_SUB, &subs, &n);
    if (ret != 0) {
        return ret;
    }
    const th_node_t *ra = cfg->rate_allocation;
    if (ra && ra->kind != TH_NODE_NULL && ra->kind != TH_NODE_SEQ) {
        snprintf(c->err, c->errlen, "%s::rate_allocation: expected a list of {policy, percent}",
                 spath);
        return TH_ECONFIG;
    }
    size_t n_ra = ra && ra->kind == TH_NODE_SEQ ? ra->n : 0;
    struct alloc_cfg *allocs = th_arena_calloc(c->a, n_ra ? n_ra : 1, sizeof(*allocs));
    if (!allocs) {
        return oom(c);
    }
    for (size_t i = 0; i < n_ra; i++) {
        char apath[512];
        char sub[40];
        snprintf(sub, sizeof(sub), "::rate_allocation[%zu]", i);
        key_path(apath, sizeof(apath), spath, sub);
        ret = th_cfg_decode(alloc_fields, ra->items[i], &allocs[i], c->a, apath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
    }
    int64_t max = cfg->max_total_spans_per_second;
    p->u.composite.max_total = max;
    p->u.composite.second = -1;
    p->u.composite.n = n;
    p->u.composite.subs = th_arena_calloc(c->a, n ? n : 1, sizeof(*p->u.composite.subs));
    bool *placed = th_arena_calloc(c->a, n ? n : 1, sizeof(bool));
    int64_t *alloc = th_arena_calloc(c->a, n ? n : 1, sizeof(int64_t));
    bool *has_alloc = th_arena_calloc(c->a, n ? n : 1, sizeof(bool));
    if (!p->u.composite.subs || !placed || !alloc || !has_alloc) {
        return oom(c);
    }
    /* Allocations: percent% of the total, or an equal share of the total for a percent <= 0
     * (the Collector's getRateAllocationMap). A name that is no sub-policy's is ignored, as the
     * Collector does; it is worth a warning since it is most likely a typo. */
    int64_t given = 0;
    for (size_t k = 0; k < n_ra; k++) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(subs[i]->name, allocs[k].policy) != 0) {
                continue;
            }
            found = true;
            double v = allocs[k].percent > 0 ? (double)allocs[k].percent / 100 * (double)max
                                             : (double)max / (double)n;
            alloc[i] = (int64_t)v;
            has_alloc[i] = true;
        }
        if (!found) {
            th_log_warn(NULL, "%s::rate_allocation[%zu]: no sub-policy is named \"%s\"", spath, k,
                        allocs[k].policy);
        }
    }
    size_t unallocated = 0;
    for (size_t i = 0; i < n; i++) {
        if (has_alloc[i]) {
            given += alloc[i];
        } else {
            unallocated++;
        }
    }
    /* Sub-policies without an allocation share what is left of the total. (The Collector gives
     * them nothing, so they could never sample.) */
    int64_t left = max - given > 0 ? max - given : 0;
    for (size_t i = 0; i < n; i++) {
        if (!has_alloc[i]) {
            alloc[i] = left / (int64_t)unallocated;
        }
    }
    /* Evaluation order: policy_order first, then any sub-policy it does not name, in config
     * order. The Collector ignores policy_order (it tries the sub-policies in config order),
     * so a name it does not know is only warned about. */
    size_t k = 0;
    for (size_t j = 0; j < cfg->policy_order.n; j++) {
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            if (!placed[i] && strcmp(subs[i]->name, cfg->policy_order.v[j]) == 0) {
                placed[i] = true;
                p->u.composite.subs[k++] =
                    (struct th__ts_comp_sub){.p = subs[i], .allocated = alloc[i]};
                found = true;
                break;
            }
        }
        if (!found) {
            th_log_warn(NULL, "%s::policy_order[%zu]: no sub-policy is named \"%s\"", spath, j,
                        cfg->policy_order.v[j]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!placed[i]) {
            p->u.composite.subs[k++] =
                (struct th__ts_comp_sub){.p = subs[i], .allocated = alloc[i]};
        }
    }
    return 0;
}

/* Decode the section of the policy's type and compile it. */
static int build_typed(struct bctx *c, struct th__ts_policy *p, const struct ptype_def *def,
                       const th_node_t *sec, const char *spath)
{
    int ret = 0;
    switch (def->type) {
    case TH__TS_ALWAYS_SAMPLE:
    case TH__TS_TRACE_FLAGS:
        return 0;
    case TH__TS_LATENCY: {
        struct latency_cfg cfg;
        ret = th_cfg_decode(latency_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        p->u.latency.threshold_ms = cfg.threshold_ms;
        p->u.latency.upper_ms = cfg.upper_threshold_ms;
        return ret;
    }
    case TH__TS_NUMERIC_ATTRIBUTE: {
        struct numeric_cfg cfg;
        ret = th_cfg_decode(numeric_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        /* The Collector (since pointer bounds) reads 0 as "no bound on that side" and refuses
         * a filter without any bound. */
        if (cfg.min_value == 0 && cfg.max_value == 0) {
            snprintf(c->err, c->errlen, "%s: at least one of min_value or max_value must be set",
                     spath);
            return TH_ECONFIG;
        }
        p->u.numeric.key = cfg.key;
        p->u.numeric.min = cfg.min_value != 0 ? cfg.min_value : INT64_MIN;
        p->u.numeric.max = cfg.max_value != 0 ? cfg.max_value : INT64_MAX;
        p->u.numeric.invert = cfg.invert_match;
        return 0;
    }
    case TH__TS_PROBABILISTIC: {
        struct prob_cfg cfg;
        ret = th_cfg_decode(prob_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        const char *salt = cfg.hash_salt && cfg.hash_salt[0] ? cfg.hash_salt : "default-hash-seed";
        p->u.prob.salt_state = th__ts_fnv1a(TH__TS_FNV_OFFSET, salt, strlen(salt));
        p->u.prob.threshold = th__ts_prob_threshold(cfg.sampling_percentage);
        return 0;
    }
    case TH__TS_STATUS_CODE: {
        struct status_cfg cfg;
        ret = th_cfg_decode(status_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        return ret != 0 ? ret : build_status(c, p, &cfg, spath);
    }
    case TH__TS_STRING_ATTRIBUTE: {
        struct string_cfg cfg;
        ret = th_cfg_decode(string_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        return ret != 0 ? ret : build_string(c, p, &cfg, spath);
    }
    case TH__TS_RATE_LIMITING:
    case TH__TS_BYTES_LIMITING: {
        struct rate_cfg cfg;
        ret = th_cfg_decode(def->type == TH__TS_RATE_LIMITING ? rate_fields : bytes_fields, sec,
                            &cfg, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        int64_t burst = cfg.burst_capacity;
        if (burst <= 0) {
            burst = cfg.per_second > INT64_MAX / 2 ? INT64_MAX : cfg.per_second * 2;
        }
        th__ts_bucket_init(&p->u.bucket, cfg.per_second, burst);
        return 0;
    }
    case TH__TS_SPAN_COUNT: {
        struct span_count_cfg cfg;
        ret = th_cfg_decode(span_count_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        p->u.span_count.min = cfg.min_spans;
        p->u.span_count.max = cfg.max_spans;
        return ret;
    }
    case TH__TS_TRACE_STATE: {
        struct trace_state_cfg cfg;
        ret = th_cfg_decode(trace_state_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        p->u.trace_state.key = cfg.key;
        p->u.trace_state.klen = strlen(cfg.key);
        return th__ts_strset_init(&p->u.trace_state.set, c->a, cfg.values.v, cfg.values.n,
                                  trace_state_keep, cfg.key) == 0
                   ? 0
                   : oom(c);
    }
    case TH__TS_BOOLEAN_ATTRIBUTE: {
        struct bool_cfg cfg;
        ret = th_cfg_decode(bool_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        p->u.boolean.key = cfg.key;
        p->u.boolean.value = cfg.value;
        p->u.boolean.invert = cfg.invert_match;
        return ret;
    }
    case TH__TS_AND:
    case TH__TS_DROP: {
        struct list_cfg cfg;
        bool is_and = def->type == TH__TS_AND;
        ret = th_cfg_decode(is_and ? and_fields : drop_fields, sec, &cfg, c->a, spath, c->err,
                            c->errlen);
        if (ret != 0) {
            return ret;
        }
        char lpath[512];
        key_path(lpath, sizeof(lpath), spath, is_and ? "::and_sub_policy" : "::drop_sub_policy");
        return build_list(c, cfg.subs, lpath, LVL_SUB, &p->u.list.subs, &p->u.list.n);
    }
    case TH__TS_NOT: {
        struct list_cfg cfg;
        ret = th_cfg_decode(not_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        char lpath[512];
        key_path(lpath, sizeof(lpath), spath, "::not_sub_policy");
        if (!cfg.subs || cfg.subs->kind != TH_NODE_MAP) {
            snprintf(c->err, c->errlen, "%s: expected one policy (a map), got %s", lpath,
                     !cfg.subs || cfg.subs->kind == TH_NODE_NULL ? "nothing"
                     : cfg.subs->kind == TH_NODE_SEQ             ? "a list"
                                                                 : "a scalar");
            return TH_ECONFIG;
        }
        return build_item(c, cfg.subs, lpath, LVL_SUB, &p->u.not_.sub);
    }
    case TH__TS_COMPOSITE: {
        struct composite_cfg cfg;
        ret = th_cfg_decode(composite_fields, sec, &cfg, c->a, spath, c->err, c->errlen);
        return ret != 0 ? ret : build_composite(c, p, &cfg, spath);
    }
    }
    return TH_ECONFIG;
}

static const struct th_cfg_field *item_table(enum level lvl)
{
    return lvl == LVL_TOP             ? top_item_fields
           : lvl == LVL_COMPOSITE_SUB ? composite_item_fields
                                      : sub_item_fields;
}

static int build_item(struct bctx *c, const th_node_t *item, const char *path, enum level lvl,
                      struct th__ts_policy **out)
{
    if (!item || item->kind != TH_NODE_MAP) {
        snprintf(c->err, c->errlen, "%s: expected a policy (a map with name and type), got %s",
                 path,
                 !item || item->kind == TH_NODE_NULL ? "null"
                 : item->kind == TH_NODE_SEQ         ? "a list"
                                                     : "a scalar");
        return TH_ECONFIG;
    }
    struct item_cfg cfg;
    int ret = th_cfg_decode(item_table(lvl), item, &cfg, c->a, path, c->err, c->errlen);
    if (ret != 0) {
        return ret;
    }
    const struct ptype_def *def = NULL;
    for (size_t i = 0; i < TH_ARRAY_SIZE(ptypes); i++) {
        if (strcmp(ptypes[i].name, cfg.type) == 0) {
            def = &ptypes[i];
            break;
        }
    }
    if (!def && strcmp(cfg.type, "ottl_condition") == 0) {
        snprintf(c->err, c->errlen,
                 "%s::type: sampling policy type \"ottl_condition\" is not supported by "
                 "Tracehouse (OTTL is not implemented); use the other policy types",
                 path);
        return TH_ECONFIG;
    }
    if (!def || def->deepest < lvl) {
        char list[512];
        snprintf(c->err, c->errlen,
                 "%s::type: unknown sampling policy type \"%s\"%s (supported: %s)", path, cfg.type,
                 !def                       ? ""
                 : lvl == LVL_COMPOSITE_SUB ? " for a composite sub-policy"
                                            : " for a sub-policy",
                 supported_list(lvl, list, sizeof(list)));
        return TH_ECONFIG;
    }
    /* Sections of other types: checked like the Collector's decoder does, then unused. */
    for (int s = 0; s < N_SECTIONS; s++) {
        if (!cfg.sec[s] || s == (int)def->sec || !section_fields[s]) {
            continue;
        }
        union any_cfg scratch;
        char spath[512];
        snprintf(spath, sizeof(spath), "%s::%s", path, section_names[s]);
        ret =
            th_cfg_decode(section_fields[s], cfg.sec[s], &scratch, c->a, spath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
    }
    struct th__ts_policy *p = th_arena_calloc(c->a, 1, sizeof(*p));
    if (!p) {
        return oom(c);
    }
    p->type = def->type;
    p->name = cfg.name;
    *out = p;
    char spath[512];
    snprintf(spath, sizeof(spath), "%s::%s", path, def->name);
    return build_typed(c, p, def, def->sec == S_NONE ? NULL : cfg.sec[def->sec], spath);
}

/* ---- Public API ------------------------------------------------------------------------------ */

const char *th_ts_decision_name(enum th_ts_decision d)
{
    switch (d) {
    case TH_TS_UNSPECIFIED:
        return "unspecified";
    case TH_TS_PENDING:
        return "pending";
    case TH_TS_SAMPLED:
    case TH_TS_INVERT_SAMPLED: /* the Collector's metrics count these as sampled */
        return "sampled";
    case TH_TS_NOT_SAMPLED:
    case TH_TS_INVERT_NOT_SAMPLED:
        return "not_sampled";
    case TH_TS_DROPPED:
        return "dropped";
    case TH_TS_ERROR:
        return "error";
    }
    return "unknown";
}

int th_ts_policies_create(const th_node_t *policies, const char *processor_name, const char *path,
                          bool sample_on_first_match, th_ts_policies_t **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (!path) {
        path = "policies";
    }
    if (!processor_name) {
        processor_name = "";
    }
    int ret = TH_ENOMEM;
    th_ts_policies_t *ps = th_calloc(1, sizeof(*ps));
    if (!ps || !(ps->arena = th_arena_create(0, 0))) {
        snprintf(err, errlen, "out of memory building the sampling policies");
        goto fail;
    }
    ps->sample_on_first_match = sample_on_first_match;
    struct bctx c = {.ps = ps, .a = ps->arena, .err = err, .errlen = errlen};
    if (policies && policies->kind != TH_NODE_NULL && policies->kind != TH_NODE_SEQ) {
        snprintf(err, errlen, "%s: expected a list of policies, got %s", path,
                 policies->kind == TH_NODE_MAP ? "a map" : "a scalar");
        ret = TH_ECONFIG;
        goto fail;
    }
    size_t n = policies && policies->kind == TH_NODE_SEQ ? policies->n : 0;
    ps->top = th_arena_calloc(ps->arena, n ? n : 1, sizeof(*ps->top));
    ps->order = th_arena_calloc(ps->arena, n ? n : 1, sizeof(*ps->order));
    ps->stats = th_arena_calloc(ps->arena, n ? n : 1, sizeof(*ps->stats));
    if (!ps->top || !ps->order || !ps->stats) {
        ret = oom(&c);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char ipath[512];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        const th_node_t *item = policies->items[i];
        /* Name checks come first, as in the Collector's loadSamplingPolicy. */
        const th_node_t *nm = item && item->kind == TH_NODE_MAP ? th_node_get(item, "name") : NULL;
        const char *name = nm && nm->kind == TH_NODE_SCALAR ? nm->text : "";
        if (item && item->kind == TH_NODE_MAP && name[0] == '\0') {
            snprintf(err, errlen, "%s: policy name cannot be empty", ipath);
            ret = TH_ECONFIG;
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ps->top[j]->name, name) == 0) {
                snprintf(err, errlen, "%s: duplicate policy name \"%s\"", ipath, name);
                ret = TH_ECONFIG;
                goto fail;
            }
        }
        ret = build_item(&c, item, ipath, LVL_TOP, &ps->top[i]);
        if (ret != 0) {
            goto fail;
        }
        ps->n = i + 1;
        struct th_ts_policy_stats *st = &ps->stats[i];
        if (processor_name[0]) {
            size_t len = strlen(processor_name) + 1 + strlen(ps->top[i]->name) + 1;
            char *s = th_arena_alloc(ps->arena, len);
            if (!s) {
                ret = oom(&c);
                goto fail;
            }
            snprintf(s, len, "%s.%s", processor_name, ps->top[i]->name);
            st->name = s;
        } else {
            st->name = ps->top[i]->name;
        }
    }
    /* Dropped takes precedence over every other result, so drop policies go first. */
    size_t k = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->top[i]->type == TH__TS_DROP) {
            ps->order[k++] = i;
        }
    }
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->top[i]->type != TH__TS_DROP) {
            ps->order[k++] = i;
        }
    }
    if (ps->has_regex && th__attributes_matcher_init(&ps->matcher, 0) != 0) {
        ret = oom(&c);
        goto fail;
    }
    *out = ps;
    return 0;
fail:
    th_ts_policies_destroy(ps);
    return ret;
}

void th_ts_policies_decide(th_ts_policies_t *p, const struct th_ts_trace *t, uint64_t now_ns,
                           struct th_ts_verdict *out)
{
    struct th__ts_eval_ctx cx = {.t = t, .now_ns = now_ns, .matcher = &p->matcher};
    bool dropped = false;
    int first_sampled = -1;
    uint64_t t0 = th_now_mono_ns();
    for (size_t k = 0; k < p->n; k++) {
        size_t i = p->order[k];
        enum th_ts_decision d = th__ts_policy_eval(p->top[i], &cx);
        uint64_t t1 = th_now_mono_ns();
        struct th_ts_policy_stats *st = &p->stats[i];
        __atomic_add_fetch(&st->executions, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st->execution_ns, t1 - t0, __ATOMIC_RELAXED);
        t0 = t1;
        switch (d) {
        case TH_TS_SAMPLED:
        case TH_TS_INVERT_SAMPLED:
            __atomic_add_fetch(&st->sampled, 1, __ATOMIC_RELAXED);
            if (first_sampled < 0) {
                first_sampled = (int)i;
            }
            break;
        case TH_TS_DROPPED:
            __atomic_add_fetch(&st->dropped, 1, __ATOMIC_RELAXED);
            dropped = true;
            break;
        case TH_TS_NOT_SAMPLED:
        case TH_TS_INVERT_NOT_SAMPLED:
            __atomic_add_fetch(&st->not_sampled, 1, __ATOMIC_RELAXED);
            break;
        default:
            /* counted and otherwise ignored */
            __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (dropped || (p->sample_on_first_match && d == TH_TS_SAMPLED)) {
            break;
        }
    }
    if (dropped) {
        out->final = TH_TS_DROPPED;
        out->policy = -1;
    } else if (first_sampled >= 0) {
        out->final = TH_TS_SAMPLED;
        out->policy = first_sampled;
    } else {
        out->final = TH_TS_NOT_SAMPLED;
        out->policy = -1;
    }
}

const struct th_ts_policy_stats *th_ts_policies_stats(const th_ts_policies_t *p, size_t *n)
{
    *n = p ? p->n : 0;
    return p ? p->stats : NULL;
}

void th_ts_policies_destroy(th_ts_policies_t *p)
{
    if (!p) {
        return;
    }
    for (struct th__ts_policy *r = p->res; r; r = r->res_next) {
        th__ts_policy_release(r);
    }
    th__attributes_matcher_deinit(&p->matcher);
    th_arena_destroy(p->arena);
    th_free(p);
}
