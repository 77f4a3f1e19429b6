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
    TH_NODE_NULL,   /**< `key:` with no value, `null`, `~`, or an unset ${env:X} (expanded) */
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
    int line;         /**< 1-based line in the YAML text, for messages */
    const char *text; /**< SCALAR: the value after substitution, NUL-terminated */
    size_t len;       /**< SCALAR: length of text */
    bool quoted;      /**< SCALAR: quoted in YAML, so always a string, never a number */
    /** SCALAR or NULL: the value was exactly one ${...} reference. The Collector then gives a
     *  typed field the zero value when the variable is unset or empty (and keeps the default
     *  for a plain YAML null); th_cfg_decode follows that. */
    bool expanded;
    struct th_node_pair *pairs; /**< MAP: in file order */
    th_node_t **items;          /**< SEQ */
    size_t n;                   /**< MAP: pairs; SEQ: items */
};

/**
 * Look a key up in a MAP node (keys are case-sensitive, as in the Collector).
 * @param[in] map a node, or NULL.
 * @return the value of @p key, or NULL when absent (also when @p map is NULL or not a map).
 * @note The node lives in the arena that made @p map.
 */
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

/** The field must be given (present and not null). */
#define TH_CFG_F_REQUIRED 0x1u
/** The value is a secret: never print or log it. */
#define TH_CFG_F_SECRET 0x2u
/** TH_CFG_OPTIONAL: enabled when the key is absent (the Collector's Some flavor). Without
 *  this flag an absent key means disabled and `key:` (null) or `key: {}` means enabled with
 *  defaults (the Default flavor). `key: {enabled: false}` always disables. */
#define TH_CFG_F_SOME 0x4u
/** The key is accepted for compatibility and has no effect yet: it is still decoded and
 *  checked (when its type allows), and th_cfg_decode logs one warning saying so. */
#define TH_CFG_F_NOOP 0x8u
/** With TH_CFG_F_NOOP: the key never applies where it is (a client-side key in a server's
 *  block, say), so the warning says that instead of "yet". */
#define TH_CFG_F_NOT_HERE 0x10u

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
    const char *def; /**< default as YAML text; NULL = zero value */
    size_t offset;   /**< offsetof the field in the struct */
    /** Inclusive bounds for INT, DOUBLE, DURATION (ns), SIZE (bytes); min == max == 0 means
     *  none. Use -INFINITY or INFINITY (math.h) for a one-sided bound. */
    double min, max;
    unsigned flags;                 /**< TH_CFG_F_* */
    const char *desc;               /**< mandatory: one line for --help and docs */
    const struct th_cfg_field *sub; /**< SECTION and OPTIONAL: the nested table */
    size_t aux;                 /**< OPTIONAL: offsetof a bool that says whether it is enabled */
    const char *const *choices; /**< ENUM: NULL-terminated list of accepted values */
};

/**
 * Fill @p out with the defaults of @p table (recursively for sections). Each default is text
 * decoded by the same code as user input: scalars as plain YAML scalars, STRLIST, STRMAP and
 * NODE defaults as YAML ("[a, b]", "{k: v}"). A NULL default is the zero value ("" for
 * STRING and ENUM). An OPTIONAL section gets its sub-defaults and is enabled only with
 * TH_CFG_F_SOME.
 * @return 0, TH_ECONFIG when a default does not parse or is out of bounds (a bug in the table;
 *         the message says which), TH_ENOMEM.
 * @note Strings and lists are allocated in @p arena.
 */
int th_cfg_defaults(const struct th_cfg_field *table, void *out, th_arena_t *arena, char *err,
                    size_t errlen);

/**
 * Decode @p node into @p out: defaults first, then every key of the node. Unknown keys,
 * wrong types, out-of-bounds values, ENUM values not in choices and missing required keys are
 * errors.
 *
 * Typing follows the Collector with weak typing off: a quoted YAML scalar is a string, so
 * `port: "123"` into an INT (or BOOL, DOUBLE) is an error, while `port: ${env:P}` is typed
 * from the variable's text. DURATION and SIZE accept quoted text ("5s"), since those are
 * strings in the Collector too. Any scalar decodes into a STRING as its text, so `0123`
 * stays "0123" (the Collector refuses `name: 5`; accepting it breaks no valid config). A
 * plain YAML null keeps the default; a whole ${env:X} that is
 * unset or empty gives the zero value ("" for strings). STRLIST also accepts one scalar, split
 * at commas (the Collector's string-to-slice hook). STRMAP accepts a map or a list of
 * {name, value}; duplicate names are an error. ENUM matches case-insensitively and stores the
 * table's spelling.
 *
 * @param[in] table the field table.
 * @param[in] node a MAP or NULL node (NULL pointer or NULL node: defaults only).
 * @param[out] out the struct to fill.
 * @param[in] arena where strings and lists are allocated (the config's arena).
 * @param[in] path the key path of @p node for messages, e.g. "processors::batch/fast"; "" or
 *            NULL at the top.
 * @param[out] err receives "path::key: what is wrong" on failure, e.g.
 *             `processors::batch/fast::timeout: invalid duration "5x"`. Values of
 *             TH_CFG_F_SECRET fields are never printed.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 * @note NODE fields point into @p node's tree, which must outlive @p out.
 */
int th_cfg_decode(const struct th_cfg_field *table, const th_node_t *node, void *out,
                  th_arena_t *arena, const char *path, char *err, size_t errlen);

/**
 * Parse a Go duration: a sign, then one or more decimal numbers each with a unit ("ns", "us",
 * "µs", "ms", "s", "m", "h"), e.g. "1h30m", "1.5s", "-200ms", "0". A bare integer is
 * nanoseconds (what the Collector does with an integer YAML value).
 * @return 0, or TH_EINVAL for bad syntax or overflow of int64 nanoseconds.
 */
int th_parse_duration(const char *s, int64_t *ns);

/**
 * Parse a size: an integer of bytes, or a number with a unit: B, KB, MB, GB, TB (powers of
 * 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, optionally after a space
 * ("4MiB", "1.5 GB"). Fractional bytes are truncated; negative sizes are invalid.
 * @return 0, or TH_EINVAL for bad syntax or overflow of int64.
 */
int th_parse_size(const char *s, int64_t *bytes);

struct th_tls_server_cfg;

/* ---- The whole file ----------------------------------------------------------------- */

/** A pipeline from service::pipelines. */
struct th_pipeline_cfg {
    const char *id; /**< "traces", "traces/name", "metrics" or "metrics/name" */
    th_strlist_t receivers;
    th_strlist_t processors;
    th_strlist_t exporters;
};

/** service::telemetry, the parts Tracehouse uses. Every field is set (defaults included). */
struct th_telemetry_cfg {
    const char *log_level;     /**< debug|info|warn|error (dpanic, panic, fatal → error) */
    const char *log_encoding;  /**< json|console; default json (one JSON object per line) */
    const char *metrics_level; /**< none|basic|normal|detailed; default normal */
    /** host:port of the Prometheus endpoint, from the first pull reader (or the legacy
     *  `address`); default "localhost:8888". Not used when metrics_level is "none". */
    const char *metrics_endpoint;
    /** HTTPS for that endpoint: the `tls` block of the prometheus pull exporter (a Tracehouse
     *  key; the Collector's reader has none). NULL: plaintext. */
    const struct th_tls_server_cfg *metrics_tls;
    /** service::telemetry::resource: attributes for the collector's own telemetry, from the
     *  legacy map form (null values skipped) or the {attributes: [{name, value}]} form. */
    th_strmap_t resource;
};

typedef struct th_config {
    th_arena_t *arena;  /**< owns every node and string below */
    const char *source; /**< the file name, or "<embedded>" */
    th_node_t *root;
    /** The top-level sections: a MAP, a NULL node (`receivers:`), or NULL when absent. Their
     *  keys are component ids, checked and normalised ("type" or "type/name", spaces around
     *  each part trimmed), unique within a section. */
    const th_node_t *receivers, *processors, *exporters, *extensions, *connectors;
    struct th_pipeline_cfg *pipelines; /**< in file order; ids and entries normalised */
    size_t n_pipelines;                /**< at least 1 */
    th_strlist_t service_extensions;   /**< normalised ids, no duplicates */
    struct th_telemetry_cfg telemetry;
} th_config_t;

/**
 * Parse YAML text into a config: substitution of ${env:VAR}, ${VAR}, ${env:VAR:-default}
 * and $$, then the checks that need no component (top-level keys, the shape of service,
 * pipeline ids, duplicate processors, a receiver and an exporter in each pipeline, component
 * id syntax, service::telemetry). References to components are checked when the collector is
 * built, since that needs the registry.
 *
 * Limits: at most 16 MiB of text, 64 levels of nesting and 100000 nodes. YAML anchors and
 * aliases (and `<<` merge keys) are supported; an alias is copied, and the copies count
 * towards the node limit, so an alias bomb fails cleanly. Only the first YAML document is
 * allowed; duplicate keys in a map are an error, as in the Collector.
 *
 * @param[in] source name for messages ("<embedded>" or the path).
 * @param[out] out the config; free with th_config_destroy().
 * @param[out] err a message naming the key path on failure ("service::pipelines::traces:
 *             must have at least one receiver"); YAML syntax errors give the source, line and
 *             column ("cfg.yaml: yaml: line 3, column 7: ...").
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 * @note Everything lives in one arena (no limit) owned by *out.
 */
int th_config_parse(const char *yaml, size_t len, const char *source, th_config_t **out, char *err,
                    size_t errlen);

/**
 * Read and parse a file (at most 16 MiB).
 * @return as th_config_parse, or TH_ENOENT/TH_EIO for the file (message in @p err).
 */
int th_config_load_file(const char *path, th_config_t **out, char *err, size_t errlen);

/** Free a config; NULL is allowed. */
void th_config_destroy(th_config_t *cfg);

/**
 * Expand ${...} references and $$ in one string (otelcol-config.md §2): `${env:NAME}`,
 * `${NAME}`, `${env:NAME:-default}` (default used only when NAME is unset), `$$` → `$` (so
 * `$${env:X}` is the literal text `${env:X}`), nested references resolved inside-out
 * (`${env:${env:INNER}}`, at most 16 deep). NAME must match ^[a-zA-Z_][a-zA-Z0-9_]*$. Only
 * the env scheme exists; any other scheme is an error. A `${` with no closing `}` is kept as
 * text. The value of a variable is not expanded again (a deliberate difference from the
 * Collector, which re-expands up to 100 rounds: values from the environment stay data). An
 * unset variable without default logs one warning and expands to nothing.
 * @param[in] in a NUL-terminated string.
 * @param[out] out the result, allocated in @p arena (at most 1 MiB).
 * @param[out] whole set when the input was exactly one reference (then the value is typed
 *             as YAML rather than taken as text); may be NULL.
 * @param[out] is_null set when the input was one reference to an unset variable without
 *             default; may be NULL.
 * @return 0, TH_ECONFIG (bad reference: message in err), TH_ENOMEM.
 */
int th_config_expand(const char *in, th_arena_t *arena, const char **out, bool *whole,
                     bool *is_null, char *err, size_t errlen);

/**
 * Split a component or pipeline id "type[/name]" at the first '/' and check its syntax as the
 * Collector does: spaces around each part are trimmed; type matches
 * ^[a-zA-Z][0-9a-zA-Z_]{0,62}$; name, when there is a '/', is 1 to 1024 bytes of valid UTF-8
 * with no spaces, control characters or symbols (ASCII $+<=>^`|~ and the common Unicode
 * separator, control, format and symbol ranges) and may contain further '/'.
 * @param[in] id the id as written.
 * @param[in] a arena for the parts; NULL to only check the syntax (then @p type and @p name
 *            are not touched and may be NULL).
 * @param[out] type,name the parts, allocated in @p a (name is "" when absent).
 * @param[out] err the reason on failure, without any key path (the caller adds it), e.g.
 *             `the part after / should not be empty`.
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th_config_split_id(const char *id, th_arena_t *a, const char **type, const char **name,
                       char *err, size_t errlen);

/**
 * Parse a YAML document (with ${...} substitution in values, never in keys) into a node tree,
 * without any of the collector-level checks; for component tests, config snippets and
 * table defaults. The limits and the alias, merge-key and duplicate-key rules are those of
 * th_config_parse.
 * @param[in] source name for YAML syntax messages.
 * @param[out] out the root node, allocated in @p arena; a NULL node for an empty document.
 * @return 0, TH_ECONFIG (syntax errors with line and column, other errors with the key
 *         path), TH_ENOMEM.
 */
int th_yaml_parse(const char *yaml, size_t len, const char *source, th_arena_t *arena,
                  th_node_t **out, char *err, size_t errlen);

#endif
