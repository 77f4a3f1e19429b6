/*
 * The attributes processor (the Collector's `attributes`): an ordered list of actions
 * (insert, update, upsert, delete, hash, extract, convert) applied to the attributes of every
 * span that passes the optional include/exclude filters.
 *
 * Two layers, as everywhere in Tracehouse: the typed settings below, which
 * th_attributes_proc_create() takes and which tests build directly, and the config layer
 * (attributes_config.c) that fills them from the Collector's YAML.
 */
#ifndef TH_PROCESSORS_ATTRIBUTES_H
#define TH_PROCESSORS_ATTRIBUTES_H

#include "th/batch.h"
#include "th/component.h"
#include "th/config.h"

/** What an action does (the Collector's `action:`, matched case-insensitively). */
enum th_attributes_action_type {
    TH_ATTRIBUTES_UNKNOWN = 0, /**< not one of the below: refused by the checks */
    TH_ATTRIBUTES_INSERT,
    TH_ATTRIBUTES_UPDATE,
    TH_ATTRIBUTES_UPSERT,
    TH_ATTRIBUTES_DELETE,
    TH_ATTRIBUTES_HASH,
    TH_ATTRIBUTES_EXTRACT,
    TH_ATTRIBUTES_CONVERT,
};

/** One entry of `actions:`. Strings are "" when not given, values NULL. */
struct th_attributes_action {
    enum th_attributes_action_type type;
    const char *action;         /**< the action as written, for messages (may be NULL) */
    const char *key;            /**< the attribute acted on */
    const char *pattern;        /**< delete/hash: regex on keys; extract: regex on the value */
    const th_otlp_any_t *value; /**< insert/update/upsert: a constant */
    const char *from_attribute; /**< insert/update/upsert: copy another attribute */
    /** insert/update/upsert: client metadata. Tracehouse has no client metadata yet, so the
     *  source is always missing (default_value applies); a warning says so at start. */
    const char *from_context;
    const th_otlp_any_t *default_value; /**< used when the source gives nothing */
    const char *converted_type;         /**< convert: "int", "double" or "string" */
};

/** How include/exclude strings are compared. */
enum th_attributes_match_type {
    TH_ATTRIBUTES_MATCH_UNSET = 0, /**< none given: only key-presence checks are possible */
    TH_ATTRIBUTES_MATCH_STRICT,    /**< exact equality */
    TH_ATTRIBUTES_MATCH_REGEXP,    /**< an unanchored regex search (Go regexp semantics) */
    TH_ATTRIBUTES_MATCH_INVALID,   /**< anything else: refused when a comparison needs it */
};

/** An attribute condition: the key must be present and, when value is set, match it. */
struct th_attributes_kv_match {
    const char *key;
    const th_otlp_any_t *value; /**< NULL: presence is enough */
};

/** A condition on the instrumentation scope. */
struct th_attributes_library {
    const char *name;
    const char *version; /**< NULL: any version; "" matches only an empty version */
};

/**
 * An include or exclude block: every condition given must hold. Each list matches when any
 * of its entries matches, except attributes, resources and libraries, where all must.
 */
struct th_attributes_match {
    enum th_attributes_match_type match_type;
    const char *match_type_text;               /**< as written, for messages */
    th_strlist_t services;                     /**< resource `service.name` */
    th_strlist_t span_names;                   /**< span name */
    th_strlist_t span_kinds;                   /**< "SPAN_KIND_SERVER", ... */
    struct th_attributes_kv_match *attributes; /**< span attributes */
    size_t n_attributes;
    struct th_attributes_kv_match *resources; /**< resource attributes */
    size_t n_resources;
    struct th_attributes_library *libraries;
    size_t n_libraries;
    /** Log-only keys, refused for spans with the Collector's messages (counts only). */
    size_t n_log_bodies, n_log_severity_texts;
    bool has_log_severity_number;
};

/** Everything the processor needs. */
struct th_attributes_settings {
    const struct th_attributes_action *actions;
    size_t n_actions;
    const struct th_attributes_match *include; /**< NULL: every span */
    const struct th_attributes_match *exclude; /**< NULL: none excluded */
};

/**
 * Check settings the way the Collector's NewAttrProc and filterspan do, with the first
 * problem described after the key path it concerns, e.g. `actions::2::pattern: invalid
 * regular expression "(": missing closing parenthesis at offset 1` or `actions::0: either
 * field "value", "from_attribute" or "from_context" setting must be specified`.
 * @return 0, TH_ECONFIG (message in @p err), TH_ENOMEM.
 */
int th_attributes_settings_check(const struct th_attributes_settings *s, char *err, size_t errlen);

typedef struct th_attributes_proc th_attributes_proc_t;

/**
 * Build a processor: check the settings, copy what it keeps and compile every regex.
 * @param[out] out the processor; free with th_attributes_proc_destroy().
 * @param[out] err the reason on TH_ECONFIG.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 * @note The settings are not referenced afterwards.
 */
int th_attributes_proc_create(const struct th_attributes_settings *s, th_attributes_proc_t **out,
                              char *err, size_t errlen);

/** Free a processor; NULL is allowed. */
void th_attributes_proc_destroy(th_attributes_proc_t *p);

/** @return whether any action reads client metadata (from_context), for the start warning. */
bool th_attributes_proc_uses_context(const th_attributes_proc_t *p);

/**
 * Apply the actions, in order, to one attribute list.
 * @param[in] a where new attributes and values are allocated (the batch's arena).
 * @param[in,out] kvs,n the list, edited in place.
 * @return 0 or TH_ENOMEM (the list is valid but may be partly processed).
 */
int th_attributes_proc_apply(th_attributes_proc_t *p, th_arena_t *a, th_otlp_kv_t ***kvs,
                             size_t *n);

/**
 * Apply the actions to the attributes of every span of @p b that include/exclude select.
 * @return 0 or TH_ENOMEM.
 * @note Not thread-safe: one processor is used by one thread at a time (it owns the PCRE2
 *       match data).
 */
int th_attributes_proc_traces(th_attributes_proc_t *p, th_batch_t *b);

/* ---- The config layer ------------------------------------------------------------------ */

/** The component's config struct: the raw nodes, decoded by attributes_config.c. */
struct th_attributes_cfg {
    const th_node_t *actions; /**< the `actions:` list */
    const th_node_t *include;
    const th_node_t *exclude;
};

/** The field table of `processors::attributes`. */
extern const struct th_cfg_field th_attributes_config_fields[];

/**
 * Decode a config into settings (allocated in @p a) and check them.
 * @param[out] err e.g. `actions::1::action: unsupported action "frobnicate"`.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th_attributes_settings_decode(const struct th_attributes_cfg *cfg, th_arena_t *a,
                                  struct th_attributes_settings *out, char *err, size_t errlen);

/** config_check of the ops table: decode and check into a scratch arena. */
int th_attributes_config_check(const void *cfg, const char **err);

extern const struct th_component_ops th_processor_attributes_ops;

#endif
