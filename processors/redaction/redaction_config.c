/*
 * The redaction processor's config layer: the field table (the Collector's keys and
 * defaults), the conversion into typed settings, and the checks, so that a bad regex or a
 * missing HMAC key stops the collector at start-up with the list and index named.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "processors/attributes/attributes_regex.h"
#include "processors/redaction/redaction.h"

#define F(field) offsetof(struct th_redaction_cfg, field)

const struct th_cfg_field th_redaction_config_fields[] = {
    {.name = "allow_all_keys",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = F(allow_all_keys),
     .desc = "keep every key; when false, keys not in allowed_keys are deleted (fail closed)"},
    {.name = "allowed_keys",
     .type = TH_CFG_STRLIST,
     .offset = F(allowed_keys),
     .desc = "attribute keys that are kept (exact names)"},
    {.name = "ignored_keys",
     .type = TH_CFG_STRLIST,
     .offset = F(ignored_keys),
     .desc = "attribute keys passed through without any check (exact names)"},
    {.name = "ignored_key_patterns",
     .type = TH_CFG_STRLIST,
     .offset = F(ignored_key_patterns),
     .desc = "regexes on keys passed through without any check"},
    {.name = "blocked_key_patterns",
     .type = TH_CFG_STRLIST,
     .offset = F(blocked_key_patterns),
     .desc = "regexes on keys whose whole value is masked"},
    {.name = "blocked_values",
     .type = TH_CFG_STRLIST,
     .offset = F(blocked_values),
     .desc = "regexes; every match in a value is masked"},
    {.name = "allowed_values",
     .type = TH_CFG_STRLIST,
     .offset = F(allowed_values),
     .desc = "regexes; a value matching one is left unmasked"},
    {.name = "redact_all_types",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = F(redact_all_types),
     .desc = "also check non-string values, as text (a masked value becomes a string)"},
    {.name = "hash_function",
     .type = TH_CFG_STRING,
     .offset = F(hash_function),
     .desc = "replace matches with their hex digest instead of ****: md5, sha1, sha3, "
             "hmac-sha256 or hmac-sha512"},
    {.name = "hmac_key",
     .type = TH_CFG_STRING,
     .flags = TH_CFG_F_SECRET,
     .offset = F(hmac_key),
     .desc = "key for hmac-sha256 (32 bytes or more) and hmac-sha512 (64 bytes or more)"},
    {.name = "summary",
     .type = TH_CFG_STRING,
     .offset = F(summary),
     .desc = "diagnostic attributes: debug (counts and keys), info (counts), silent (none)"},
    {.name = "url_sanitizer",
     .type = TH_CFG_NODE,
     .flags = TH_CFG_F_NOOP,
     .offset = F(url_sanitizer),
     .desc = "URL sanitization {enabled, attributes, sanitize_span_name} (not implemented yet)"},
    {.name = "db_sanitizer",
     .type = TH_CFG_NODE,
     .flags = TH_CFG_F_NOOP,
     .offset = F(db_sanitizer),
     .desc = "database query obfuscation {sql, redis, memcached, mongo, opensearch, es, "
             "valkey, sanitize_span_name} (not implemented yet)"},
    {.name = NULL},
};

static const struct {
    const char *name;
    enum th_redaction_hash fn;
} hash_names[] = {
    {"md5", TH_REDACTION_MD5},
    {"sha1", TH_REDACTION_SHA1},
    {"sha3", TH_REDACTION_SHA3},
    {"hmac-sha256", TH_REDACTION_HMAC_SHA256},
    {"hmac-sha512", TH_REDACTION_HMAC_SHA512},
};

int th_redaction_settings_from_cfg(const struct th_redaction_cfg *cfg,
                                   struct th_redaction_settings *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->allow_all_keys = cfg->allow_all_keys;
    out->allowed_keys = cfg->allowed_keys;
    out->ignored_keys = cfg->ignored_keys;
    out->ignored_key_patterns = cfg->ignored_key_patterns;
    out->blocked_key_patterns = cfg->blocked_key_patterns;
    out->blocked_values = cfg->blocked_values;
    out->allowed_values = cfg->allowed_values;
    out->redact_all_types = cfg->redact_all_types;
    out->hmac_key = cfg->hmac_key;
    const char *h = cfg->hash_function ? cfg->hash_function : "";
    if (*h) {
        bool found = false;
        for (size_t i = 0; i < TH_ARRAY_SIZE(hash_names); i++) {
            if (!strcasecmp(h, hash_names[i].name)) {
                out->hash_function = hash_names[i].fn;
                found = true;
            }
        }
        if (!found) {
            snprintf(err, errlen,
                     "hash_function: unknown HashFunction \"%s\", allowed functions are md5, "
                     "sha1, sha3, hmac-sha256 and hmac-sha512",
                     h);
            return TH_ECONFIG;
        }
    }
    /* The Collector compares summary exactly and treats anything else as silent. */
    const char *sum = cfg->summary ? cfg->summary : "";
    out->summary = !strcmp(sum, "debug")  ? TH_REDACTION_DEBUG
                   : !strcmp(sum, "info") ? TH_REDACTION_INFO
                                          : TH_REDACTION_SILENT;
    return th_redaction_settings_check(out, err, errlen);
}

static int check_list(const th_strlist_t *l, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        char why[768];
        pcre2_code *re = NULL;
        int ret = th__attributes_regex_compile(l->v[i], &re, why, sizeof(why));
        pcre2_code_free(re);
        if (ret == TH_ECONFIG) {
            snprintf(err, errlen, "%s::%zu: %s", name, i, why);
        }
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

int th_redaction_settings_check(const struct th_redaction_settings *s, char *err, size_t errlen)
{
    const struct {
        const th_strlist_t *l;
        const char *name;
    } lists[] = {
        {&s->ignored_key_patterns, "ignored_key_patterns"},
        {&s->blocked_key_patterns, "blocked_key_patterns"},
        {&s->blocked_values, "blocked_values"},
        {&s->allowed_values, "allowed_values"},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(lists); i++) {
        int ret = check_list(lists[i].l, lists[i].name, err, errlen);
        if (ret != 0) {
            return ret;
        }
    }
    if ((s->hash_function == TH_REDACTION_HMAC_SHA256 ||
         s->hash_function == TH_REDACTION_HMAC_SHA512) &&
        (!s->hmac_key || !*s->hmac_key)) {
        snprintf(err, errlen, "hmac_key: must be set when hash_function is %s",
                 s->hash_function == TH_REDACTION_HMAC_SHA256 ? "hmac-sha256" : "hmac-sha512");
        return TH_ECONFIG;
    }
    return 0;
}

int th_redaction_config_check(const void *cfg, const char **err)
{
    /* Config checks run once, at start-up, on the main thread. */
    static _Thread_local char msg[1024];
    struct th_redaction_settings s;
    int ret = th_redaction_settings_from_cfg(cfg, &s, msg, sizeof(msg));
    if (ret != 0) {
        *err = ret == TH_ENOMEM ? "out of memory" : msg;
    }
    return ret;
}
