/*
 * Configuration: the OpenTelemetry Collector's YAML format, loaded into a tree of nodes
 * (with ${env:VAR} substitution already applied), and the declarative field tables that
 * decode a node into a component's typed config struct. The parsing layer only fills
 * structs; runtime code takes the structs (so tests can build them without YAML).
 */
#ifndef TH_CONFIG_H
#define TH_CONFIG_H

#include "th/arena.h"
#include "th/common.h"

/* ---- The node tree -------------------------------------------------------------------- */

enum th_node_kind {
    TH_NODE_NULL,   /**< `key:` with no value, `null`, `~`, or an unset ${env:X} */
    TH_NODE_SCALAR, /**< a string, number or bool, as text */
    TH_NODE_MAP,
    TH_NODE_SEQ,
};

typedef struct th_node th_node_t;

struct th_node_pair {
    const char *key;
    th_node_t *value;
};

struct th_node {
    enum th_node_kind kind;
    int line;                   /**< 1-based line in the YAML text, for messages */
    const char *text;           /**< SCALAR: the value after substitution, NUL-terminated */
    size_t len;                 /**< SCALAR: length of text */
    bool quoted;                /**< SCALAR: quoted in YAML, so always a string, never a number */
    struct th_node_pair *pairs; /**< MAP: in file order */
    th_node_t **items;          /**< SEQ */
    size_t n;                   /**< MAP: pairs; SEQ: items */
};

/** @return the value of @p key in a MAP node, or NULL (also when @p map is not a map). */
const th_node_t *th_node_get(const th_node_t *map, const char *key);

/* ---- Field tables ------------------------------------------------------------------- */

enum th_cfg_type {
    TH_CFG_BOOL,     /**< bool */
    TH_CFG_INT,      /**< int64_t */
    TH_CFG_DOUBLE,   /**< double */
    TH_CFG_STRING,   /**< const char * (in the config arena; "" when unset) */
    TH_CFG_ENUM,     /**< const char *, one of choices */
    TH_CFG_DURATION, /**< int64_t nanoseconds; "200ms", "1m30s", or an integer of ns */
    TH_CFG_SIZE,     /**< int64_t bytes; an integer, or "4MiB", "512KiB", "1GB" */
    TH_CFG_STRLIST,  /**< th_strlist_t; a YAML sequence of scalars */
    TH_CFG_STRMAP,   /**< th_strmap_t; a map, or a list of {name, value} */
    TH_CFG_SECTION,  /**< a nested struct decoded with sub; null or absent = defaults */
    TH_CFG_OPTIONAL, /**< a nested struct with presence: see TH_CFG_F_SOME and aux */
    TH_CFG_NODE,     /**< const th_node_t *: kept raw, decoded by the component itself */
};

/** The field must be given. */
#define TH_CFG_F_REQUIRED 0x1u
/** The value is a secret: never print or log it. */
#define TH_CFG_F_SECRET 0x2u
/** TH_CFG_OPTIONAL: enabled when the key is absent (the Collector's Some flavor). Without
 *  this flag an absent key means disabled and `key:` (null) or `key: {}` means enabled with
 *  defaults (the Default flavor). `key: {enabled: false}` always disables. */
#define TH_CFG_F_SOME 0x4u
/** The key is accepted for compatibility and has no effect yet; a warning says so. */
#define TH_CFG_F_NOOP 0x8u

typedef struct th_strlist {
    const char **v;
    size_t n;
} th_strlist_t;

typedef struct th_strmap {
    const char **keys;
    const char **vals;
    size_t n;
} th_strmap_t;

/**
 * One row of a config table. Tables end with a row whose name is NULL.
 * Defaults are text and go through the same parser as user input, so a unit test can prove
 * every default parses and sits within its bounds.
 */
struct th_cfg_field {
    const char *name;
    enum th_cfg_type type;
    const char *def;  /**< default as YAML text; NULL = zero value */
    size_t offset;    /**< offsetof the field in the struct */
    double min, max;  /**< bounds for INT, DOUBLE, DURATION, SIZE; min == max == 0: none */
    unsigned flags;   /**< TH_CFG_F_* */
    const char *desc; /**< mandatory: one line for --help and docs */
    const struct th_cfg_field *sub; /**< SECTION and OPTIONAL: the nested table */
    size_t aux;                 /**< OPTIONAL: offsetof a bool that says whether it is enabled */
    const char *const *choices; /**< ENUM: NULL-terminated list of accepted values */
};

/**
 * Fill @p out with the defaults of @p table (recursively for sections).
 * @return 0, or TH_ECONFIG when a default does not parse (a bug; the message says which).
 */
int th_cfg_defaults(const struct th_cfg_field *table, void *out, th_arena_t *arena, char *err,
                    size_t errlen);

/**
 * Decode @p node into @p out: defaults first, then every key of the node. Unknown keys,
 * wrong types, out-of-bounds values and missing required keys are errors.
 * @param[in] table the field table.
 * @param[in] node a MAP or NULL node (NULL node: defaults only).
 * @param[out] out the struct to fill.
 * @param[in] arena where strings and lists are allocated (the config's arena).
 * @param[in] path the key path of @p node for messages, e.g. "processors::batch/fast".
 * @param[out] err receives "path::key: what is wrong" on failure.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th_cfg_decode(const struct th_cfg_field *table, const th_node_t *node, void *out,
                  th_arena_t *arena, const char *path, char *err, size_t errlen);

/** Parse a duration ("1m30s", "200ms", "-1.5h", or an integer of ns). @return 0 or TH_EINVAL. */
int th_parse_duration(const char *s, int64_t *ns);
/** Parse a size ("4MiB", "20971520", "1GB"). @return 0 or TH_EINVAL. */
int th_parse_size(const char *s, int64_t *bytes);

/* ---- The whole file ----------------------------------------------------------------- */

/** A pipeline from service::pipelines. */
struct th_pipeline_cfg {
    const char *id; /**< "traces" or "traces/name" */
    th_strlist_t receivers;
    th_strlist_t processors;
    th_strlist_t exporters;
};

/** service::telemetry, the parts Tracehouse uses. */
struct th_telemetry_cfg {
    const char *log_level;        /**< debug|info|warn|error */
    const char *log_encoding;     /**< json|console */
    const char *metrics_level;    /**< none|basic|normal|detailed */
    const char *metrics_endpoint; /**< host:port of the Prometheus endpoint */
};

typedef struct th_config {
    th_arena_t *arena;  /**< owns every node and string below */
    const char *source; /**< the file name, or "<embedded>" */
    th_node_t *root;
    const th_node_t *receivers, *processors, *exporters, *extensions, *connectors;
    struct th_pipeline_cfg *pipelines;
    size_t n_pipelines;
    th_strlist_t service_extensions;
    struct th_telemetry_cfg telemetry;
} th_config_t;

/**
 * Parse YAML text into a config: substitution of ${env:VAR}, ${VAR}, ${env:VAR:-default}
 * and $$, then the checks that need no component (top-level keys, the shape of service,
 * pipeline ids, duplicate processors). References to components are checked when the
 * collector is built, since that needs the registry.
 * @param[in] source name for messages ("<embedded>" or the path).
 * @param[out] out the config; free with th_config_destroy().
 * @param[out] err a message naming the key path on failure.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th_config_parse(const char *yaml, size_t len, const char *source, th_config_t **out, char *err,
                    size_t errlen);

/** Read and parse a file. @return as th_config_parse, or TH_ENOENT/TH_EIO for the file. */
int th_config_load_file(const char *path, th_config_t **out, char *err, size_t errlen);

/** Free a config; NULL is allowed. */
void th_config_destroy(th_config_t *cfg);

/**
 * Expand ${...} references and $$ in one string.
 * @param[out] out the result, allocated in @p arena.
 * @param[out] whole set when the input was exactly one reference (then the value is typed
 *             as YAML rather than taken as text); may be NULL.
 * @param[out] is_null set when the input was one reference to an unset variable without
 *             default; may be NULL.
 * @return 0, TH_ECONFIG (bad reference: message in err), TH_ENOMEM.
 */
int th_config_expand(const char *in, th_arena_t *arena, const char **out, bool *whole,
                     bool *is_null, char *err, size_t errlen);

#endif
