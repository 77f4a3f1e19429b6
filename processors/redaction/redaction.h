/*
 * The redaction processor (the Collector's `redaction`): deletes every attribute whose key is
 * not allowed, and masks the parts of values that match blocked patterns, in the resource,
 * scope, span, span event and span link attributes of every span. Each attribute list is
 * processed on its own and gets its own summary attributes (redaction.masked.count, ...).
 *
 * Masking is deterministic: a match becomes "****", or the lowercase hex digest of the
 * matched text with hash_function (md5, sha1, sha3 = SHA3-256, hmac-sha256, hmac-sha512).
 *
 * Typed settings for th_redaction_proc_create() (tests build them directly), and the config
 * layer (redaction_config.c) that fills them from the Collector's YAML.
 */
#ifndef TH_PROCESSORS_REDACTION_H
#define TH_PROCESSORS_REDACTION_H

#include <sys/types.h>

#include "th/batch.h"
#include "th/component.h"
#include "th/config.h"

/** How a match is replaced. */
enum th_redaction_hash {
    TH_REDACTION_MASK = 0, /**< the literal "****" */
    TH_REDACTION_MD5,
    TH_REDACTION_SHA1,
    TH_REDACTION_SHA3, /**< SHA3-256 */
    TH_REDACTION_HMAC_SHA256,
    TH_REDACTION_HMAC_SHA512,
};

/** Which diagnostic attributes are added to a list that was changed. */
enum th_redaction_summary {
    TH_REDACTION_SILENT = 0, /**< none (also the Collector's behaviour for "" and unknowns) */
    TH_REDACTION_INFO,       /**< the counts */
    TH_REDACTION_DEBUG,      /**< the counts and the key names */
};

struct th_redaction_settings {
    bool allow_all_keys;               /**< false: keys not in allowed_keys are deleted */
    th_strlist_t allowed_keys;         /**< exact keys kept */
    th_strlist_t ignored_keys;         /**< exact keys passed through untouched */
    th_strlist_t ignored_key_patterns; /**< regexes on keys passed through untouched */
    th_strlist_t blocked_key_patterns; /**< regexes on keys whose whole value is masked */
    th_strlist_t blocked_values;       /**< regexes whose matches in values are masked */
    th_strlist_t allowed_values;       /**< regexes: a value matching one is left alone */
    bool redact_all_types;             /**< also non-string values, as their AsString() text */
    enum th_redaction_hash hash_function;
    const char *hmac_key; /**< the HMAC key (secret), for the hmac-* functions */
    enum th_redaction_summary summary;
};

/** What the processor did, over its life (for tests and internal metrics). */
struct th_redaction_stats {
    uint64_t redacted; /**< attributes deleted */
    uint64_t masked;   /**< values masked */
    uint64_t allowed;  /**< values kept because of allowed_values */
    uint64_t ignored;  /**< attributes passed through because of ignored keys */
    /** Regex searches abandoned at the match limit, and masked values that would have grown
     *  past (length + 1) × 161 + 4096 bytes. Those fail closed: the whole value is masked. */
    uint64_t limit_hits;
};

typedef struct th_redaction_proc th_redaction_proc_t;

/**
 * Check settings: every regex compiles (`blocked_values::1: invalid regular expression "(":
 * missing closing parenthesis at offset 1`), and an HMAC function has a key.
 * @return 0, TH_ECONFIG (message in @p err), TH_ENOMEM.
 */
int th_redaction_settings_check(const struct th_redaction_settings *s, char *err, size_t errlen);

/**
 * Build a processor: copy the settings and compile every regex (PCRE2 with JIT) once.
 * @return 0, TH_ECONFIG (message in @p err), TH_ENOMEM.
 * @note The settings are not referenced afterwards.
 */
int th_redaction_proc_create(const struct th_redaction_settings *s, th_redaction_proc_t **out,
                             char *err, size_t errlen);

/** Free a processor; NULL is allowed. */
void th_redaction_proc_destroy(th_redaction_proc_t *p);

/**
 * Redact one attribute list in place and add its summary attributes.
 * @param[in] a where new strings and attributes are allocated (the batch's arena).
 * @return 0 or TH_ENOMEM (the list may be partly processed: the caller must drop it).
 * @note Not thread-safe: one processor is used by one thread at a time (it owns the PCRE2
 *       match data).
 */
int th_redaction_proc_attrs(th_redaction_proc_t *p, th_arena_t *a, th_otlp_kv_t ***kvs, size_t *n);

/**
 * Redact the resource, scope, span, event and link attributes of every span of @p b.
 * @return 0 or TH_ENOMEM (then the batch must not be forwarded).
 */
int th_redaction_proc_traces(th_redaction_proc_t *p, th_batch_t *b);

/** @return the counters so far. */
struct th_redaction_stats th_redaction_proc_stats(const th_redaction_proc_t *p);

/**
 * Find a blocked_values pattern that matches the empty string (it puts a mask between every
 * two characters of every value: almost always a mistake worth a warning).
 * @return its index, or -1.
 */
ssize_t th_redaction_proc_empty_match(th_redaction_proc_t *p);

/* ---- The config layer ------------------------------------------------------------------ */

/** The component's config struct (`processors::redaction`). */
struct th_redaction_cfg {
    bool allow_all_keys;
    th_strlist_t allowed_keys, ignored_keys, ignored_key_patterns, blocked_key_patterns;
    th_strlist_t blocked_values, allowed_values;
    bool redact_all_types;
    const char *hash_function;
    const char *hmac_key;
    const char *summary;
    const th_node_t *url_sanitizer; /**< accepted, no effect yet (a warning says so) */
    const th_node_t *db_sanitizer;  /**< accepted, no effect yet (a warning says so) */
};

/** The field table of `processors::redaction`. */
extern const struct th_cfg_field th_redaction_config_fields[];

/**
 * Turn a decoded config into settings and check them.
 * @param[out] err e.g. `hash_function: unknown HashFunction "sha9", allowed functions are
 *             md5, sha1, sha3, hmac-sha256 and hmac-sha512`.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 * @note The settings point into @p cfg.
 */
int th_redaction_settings_from_cfg(const struct th_redaction_cfg *cfg,
                                   struct th_redaction_settings *out, char *err, size_t errlen);

/** config_check of the ops table. */
int th_redaction_config_check(const void *cfg, const char **err);

extern const struct th_component_ops th_processor_redaction_ops;

#endif
