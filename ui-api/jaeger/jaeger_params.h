/*
 * Query-parameter parsing for the Jaeger query API: the query string (Go's url.ParseQuery
 * rules), the scalar formats Jaeger's Go code parses (strconv integers and bools, Go
 * durations, hex trace ids, RFC 3339 times, JSON tag maps), and the parameter sets of the
 * v1 and api_v3 routes. Every error message is the text Jaeger answers with (its Go error
 * strings), because clients show it to people.
 *
 * Nothing here allocates outside the arena it is given, and no input makes it crash: the
 * fuzz target tests/fuzz/jaeger_params drives it with arbitrary query strings.
 */
#ifndef TH_JAEGER_PARAMS_H
#define TH_JAEGER_PARAMS_H

#include "th/arena.h"
#include "th/common.h"

/** The most traces one search may ask for (the Jaeger UI's own maximum). */
#define TH_JAEGER_MAX_LIMIT 1500
/** The most traceID= values one request may carry. */
#define TH_JAEGER_MAX_TRACE_IDS 1500
/** Jaeger's defaultQueryLimit: traces a search returns when no limit is given. */
#define TH_JAEGER_DEFAULT_LIMIT 100
/** The longest query string accepted, in bytes. */
#define TH_JAEGER_MAX_QUERY_LEN (64 * 1024)
/** Deepest JSON nesting accepted in `tags` and `query.attributes`. */
#define TH_JAEGER_MAX_JSON_DEPTH 1000
/** Jaeger's defaultTraceQueryLookbackDuration: 48 hours, in ns. */
#define TH_JAEGER_DEFAULT_LOOKBACK_NS ((int64_t)48 * 3600 * 1000000000)
/** Jaeger's defaultDependencyLookbackDuration: 24 hours, in ns. */
#define TH_JAEGER_DEFAULT_DEP_LOOKBACK_NS ((int64_t)24 * 3600 * 1000000000)

/** One name=value pair of a query string, percent-decoded and NUL-terminated. */
struct th_jaeger_param {
    const char *key;
    const char *value;
    size_t key_len;
    size_t value_len;
};

/** A parsed query string: the pairs in order, repeated keys kept. */
typedef struct th_jaeger_params {
    struct th_jaeger_param *v;
    size_t n;
} th_jaeger_params_t;

/**
 * Parse a query string (without the '?') as Go's url.ParseQuery does: pairs split at '&',
 * key and value split at the first '=', a bare key has the value "", '+' is a space, %XX is
 * a byte. Pairs Go would reject (a bad escape, a ';' in the key) are skipped, as r.FormValue
 * does with them.
 * @param[in] qs,len the query string; it need not be NUL-terminated.
 * @param[in] a where the pairs are allocated.
 * @param[out] out the pairs (valid while @p a lives).
 * @return 0, TH_E2BIG (longer than TH_JAEGER_MAX_QUERY_LEN), TH_ENOMEM.
 */
int th_jaeger_params_parse(const char *qs, size_t len, th_arena_t *a, th_jaeger_params_t *out);

/** @return the first value of @p key, or NULL when the key is absent. */
const char *th_jaeger_param_get(const th_jaeger_params_t *p, const char *key);

/** @return the first value of @p key, or "" when absent (Go's r.FormValue). */
const char *th_jaeger_param_value(const th_jaeger_params_t *p, const char *key);

/** @return how many times @p key occurs. */
size_t th_jaeger_param_count(const th_jaeger_params_t *p, const char *key);

/**
 * Percent-decode @p len bytes: %XX always, '+' as a space only when @p plus_is_space (query
 * strings, not paths).
 * @param[out] out the decoded bytes plus a NUL, in @p a; @p out_len their length.
 * @return 0, TH_EINVAL (a '%' not followed by two hex digits), TH_ENOMEM.
 */
int th_jaeger_unescape(const char *s, size_t len, bool plus_is_space, th_arena_t *a, char **out,
                       size_t *out_len);

/* ---- Scalars, with Go's error messages --------------------------------------------------- */

/**
 * Parse a decimal integer as Go's strconv does.
 * @param[in] fn the Go function named in the message: "ParseInt" or "Atoi".
 * @param[in] bits 32 or 64: the range checked.
 * @param[out] err e.g. `strconv.ParseInt: parsing "x": invalid syntax` or `...: value out of
 *             range`.
 * @return 0 or TH_EINVAL.
 */
int th_jaeger_parse_int(const char *fn, const char *s, int bits, int64_t *out, char *err,
                        size_t errlen);

/**
 * Parse a bool as strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
 * @return 0 or TH_EINVAL with `strconv.ParseBool: parsing "x": invalid syntax`.
 */
int th_jaeger_parse_bool(const char *s, bool *out, char *err, size_t errlen);

/**
 * Parse a Go duration (time.ParseDuration): an optional sign, then decimal numbers with
 * units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h ("1h30m", "1.5s", "-2ms"); "0" alone
 * needs no unit.
 * @param[out] err `time: invalid duration "x"`, `time: missing unit in duration "1"` or
 *             `time: unknown unit "x" in duration "1x"`.
 * @return 0 or TH_EINVAL.
 */
int th_jaeger_parse_go_duration(const char *s, int64_t *ns, char *err, size_t errlen);

/**
 * Parse a trace id as Jaeger does (model.TraceIDFromString): 1 to 32 hex characters of
 * either case, leading zeros optional, the last 16 characters being the low half.
 * @param[in] allow_base64 also accept base64 (standard or URL-safe, padded or not, at most
 *            24 characters) of 8 or 16 bytes when the text is not hex, as the by-id routes
 *            of Jaeger v2.20 do. The error reported is then still the hex one.
 * @param[out] id the 16 bytes (big-endian high half, then low half).
 * @param[out] err e.g. `strconv.ParseUint: parsing "zz": invalid syntax` or
 *             `TraceID cannot be longer than 32 hex characters: <s>`.
 * @return 0 or TH_EINVAL.
 */
int th_jaeger_parse_trace_id(const char *s, bool allow_base64, uint8_t id[16], char *err,
                             size_t errlen);

/**
 * Parse an RFC 3339 time with optional fraction (Go's time.RFC3339Nano layout). A space
 * where the offset sign belongs is read as '+' (a client that did not URL-encode "+01:00").
 * @param[out] unix_ns nanoseconds since the epoch (saturated to the int64 range).
 * @param[out] err Go's time.ParseError text, e.g. `parsing time "x" as
 *             "2006-01-02T15:04:05.999999999Z07:00": cannot parse "x" as "2006"`.
 * @return 0 or TH_EINVAL.
 */
int th_jaeger_parse_rfc3339(const char *s, int64_t *unix_ns, char *err, size_t errlen);

/** Tag filters: key=value pairs with map semantics (setting a key again replaces it). */
struct th_jaeger_tags {
    const char **keys;
    const char **values;
    size_t n;
    size_t cap;
};

/** Set @p key to @p value (both must live as long as the tags). @return 0 or TH_ENOMEM. */
int th_jaeger_tags_set(struct th_jaeger_tags *t, th_arena_t *a, const char *key, const char *value);

/**
 * Parse a JSON object of strings into @p tags, as Go's json.Unmarshal into map[string]string:
 * later keys replace earlier ones, `null` (the whole document) adds nothing, a null member
 * value is "".
 * @param[out] err Go's message, e.g. `unexpected end of JSON input`, `invalid character 'x'
 *             looking for beginning of value`, `json: cannot unmarshal number into Go value of
 *             type string`.
 * @return 0, TH_EINVAL, TH_ENOMEM.
 */
int th_jaeger_parse_tags_json(const char *s, size_t len, th_arena_t *a, struct th_jaeger_tags *tags,
                              char *err, size_t errlen);

/* ---- Route parameter sets ---------------------------------------------------------------- */

/** A trace search (v1 /api/traces, api_v3 /api/v3/traces and trace-summaries). */
struct th_jaeger_search {
    const char *service;   /**< "" when not given */
    const char *operation; /**< "" when not given */
    int64_t start_min_ns;  /**< window of span start times, Unix ns (may be negative) */
    int64_t start_max_ns;
    int64_t duration_min_ns; /**< 0 = no bound (may be negative as given) */
    int64_t duration_max_ns;
    int64_t limit; /**< as given, or TH_JAEGER_DEFAULT_LIMIT; clamp before use */
    struct th_jaeger_tags tags;
    uint8_t (*trace_ids)[16]; /**< v1 traceID= values, in order */
    size_t n_trace_ids;
    bool raw; /**< skip the adjusters */
};

/**
 * Parse the v1 search parameters in Jaeger's order (service, operation, start, end, tag and
 * tags, limit, minDuration, maxDuration, traceID, raw), then validate: a service unless
 * traceID is given (`parameter 'service' is required`), and maxDuration not below
 * minDuration (`'maxDuration' should be greater than 'minDuration'`).
 * @param[in] now_ns the current time, for the defaults of start (now - 48h) and end (now).
 * @param[out] err the 400 message.
 * @return 0, TH_EINVAL (answer 400), TH_E2BIG (too many traceID values: 400), TH_ENOMEM.
 */
int th_jaeger_parse_v1_search(const th_jaeger_params_t *p, int64_t now_ns, th_arena_t *a,
                              struct th_jaeger_search *out, char *err, size_t errlen);

/**
 * Parse the optional parameters of v1 /api/traces/{id}: start and end (µs; checked but only
 * hints, see jaeger-api.md §2.6) and raw.
 * @return 0 or TH_EINVAL with the 400 message.
 */
int th_jaeger_parse_v1_get_trace(const th_jaeger_params_t *p, bool *raw, char *err, size_t errlen);

/**
 * Parse v1 /api/dependencies: endTs (ms, default now) and lookback (ms, default 24h).
 * @return 0 or TH_EINVAL (`unable to parse param 'endTs': ...`).
 */
int th_jaeger_parse_v1_dependencies(const th_jaeger_params_t *p, int64_t now_ns, int64_t *end_ns,
                                    int64_t *lookback_ns, char *err, size_t errlen);

/**
 * Parse the api_v3 search parameters (query.serviceName, query.operationName,
 * query.startTimeMin/Max, query.durationMin/Max, query.searchDepth, query.attributes,
 * query.rawTraces and their snake_case aliases, the canonical name tried first).
 * @param[out] err `query.startTimeMin and query.startTimeMax are required`,
 *             `query.startTimeMin must be before query.startTimeMax` or
 *             `malformed parameter <name>: <Go error>`.
 * @return 0, TH_EINVAL (answer 400), TH_ENOMEM.
 */
int th_jaeger_parse_v3_search(const th_jaeger_params_t *p, th_arena_t *a,
                              struct th_jaeger_search *out, char *err, size_t errlen);

/**
 * Parse the optional parameters of api_v3 /api/v3/traces/{id}: startTime, endTime (RFC 3339
 * hints) and rawTraces (snake_case aliases accepted).
 * @return 0 or TH_EINVAL with the 400 message.
 */
int th_jaeger_parse_v3_get_trace(const th_jaeger_params_t *p, bool *raw, char *err, size_t errlen);

/**
 * Map a span kind name ("server", "client", "producer", "consumer", "internal",
 * "unspecified", any case) to the OTLP SpanKind value.
 * @return 0..5, or -1 for an unknown name.
 */
int th_jaeger_span_kind_parse(const char *s);

/** @return the lowercase name of an OTLP SpanKind ("" for 0 and unknown values). */
const char *th_jaeger_span_kind_name(int kind);

#endif
