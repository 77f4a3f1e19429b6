/*
 * The debug exporter: writes what flows through a pipeline to the log (or stdout) in the
 * OpenTelemetry Collector's debug exporter formats, with its per-second log sampling. Used to
 * see what a pipeline receives; never meant for throughput.
 */
#ifndef TH_EXPORTER_DEBUG_H
#define TH_EXPORTER_DEBUG_H

#include <pthread.h>

#include "th/component.h"
#include "th/otlp.h"

/** How much is written per batch (the Collector's `verbosity`). */
enum th_debug_verbosity {
    TH_DEBUG_BASIC = 0,    /**< one line per batch with the counts */
    TH_DEBUG_NORMAL = 1,   /**< plus one line per resource, scope and span */
    TH_DEBUG_DETAILED = 2, /**< plus the full dump of every field */
};

/** The debug exporter's config, filled by its field table or built directly by tests. */
struct th_debug_cfg {
    const char *verbosity;       /**< "basic" (default), "normal" or "detailed" */
    int64_t sampling_initial;    /**< messages logged per second before sampling (2) */
    int64_t sampling_thereafter; /**< after that, one message in this many (1: all; 0: none) */
    bool use_internal_logger;    /**< true: the collector's log on stderr; false: stdout */
};

/** The ops table registered as exporter "debug". */
extern const struct th_component_ops th_exporter_debug_ops;

/** @return the verbosity named @p s, or -1 when it is not one of the three. */
int th__debug_verbosity_parse(const char *s);

/* ---- Sampling (debug_output.c) ------------------------------------------------------- */

/** Counter slots, as in zap's sampler: messages hash to one of them. */
#define TH_DEBUG_SAMPLER_SLOTS 4096u

/**
 * zap's sampler, which the Collector wraps around the debug exporter's logger: within each
 * one-second tick, the first `initial` messages with the same text pass, then one in every
 * `thereafter`; thereafter == 0 drops all the rest. Messages are told apart by a hash of
 * their text into TH_DEBUG_SAMPLER_SLOTS counters, so two texts may share a counter.
 */
struct th_debug_sampler {
    uint64_t initial;
    uint64_t thereafter;
    uint64_t tick_ns;
    struct {
        uint64_t count;    /**< messages seen in the current tick */
        uint64_t reset_at; /**< monotonic ns when the tick ends */
    } slots[TH_DEBUG_SAMPLER_SLOTS];
};

/** Set up a sampler with a one-second tick. */
void th__debug_sampler_init(struct th_debug_sampler *s, uint64_t initial, uint64_t thereafter);

/**
 * Count one message and say whether it is written.
 * @param[in] msg,len the message text (its hash picks the counter).
 * @param[in] now_ns the monotonic clock.
 * @return true when the message passes the sampler.
 * @note Not thread-safe; the exporter calls it under its lock.
 */
bool th__debug_sampler_allow(struct th_debug_sampler *s, const char *msg, size_t len,
                             uint64_t now_ns);

/** The instance (debug.c allocates it through instance_size). */
struct th_debug_exporter {
    struct th_component base; /**< first, as every instance */
    enum th_debug_verbosity verbosity;
    bool internal_logger;
    pthread_mutex_t lock;            /**< the sampler and the output are shared by callers */
    bool lock_ready;                 /**< init made the lock (destroy may follow a failed init) */
    struct th_debug_sampler sampler; /**< under lock */
};

/**
 * Write one batch's output: the basic line, and the normal or detailed dump when the
 * verbosity asks for it, each through the sampler.
 * @return 0, TH_ENOMEM (formatting ran out of memory; nothing or only the basic line was
 *         written).
 * @note Does not take the batch; the caller releases it.
 */
int th__debug_write_batch(struct th_debug_exporter *d, const th_otlp_request_t *req);

/* ---- Text formats (debug_format.c) --------------------------------------------------- */

/**
 * The fields of the basic line, `{"resource spans": N, "spans": M}`, as zap's console encoder
 * prints the two fields of the Collector's "Traces" message.
 * @return 0 or TH_ENOMEM.
 */
int th__debug_format_basic(const th_otlp_request_t *req, th_buf_t *out);

/**
 * The normal format: per resource `ResourceTraces #i [schema] k=v ...`, per scope
 * `ScopeTraces #j name@version [schema] k=v ...`, per span `name trace_id span_id k=v ...`,
 * each line ending in '\n'.
 * @return 0 or TH_ENOMEM.
 */
int th__debug_format_normal(const th_otlp_request_t *req, th_buf_t *out);

/**
 * The detailed format: the Collector's otlptext dump of every resource, scope, span,
 * attribute, event, link and status, each line ending in '\n'.
 * @return 0 or TH_ENOMEM.
 */
int th__debug_format_detailed(const th_otlp_request_t *req, th_buf_t *out);

/**
 * Append a value as the Collector's detailed dump shows it: `Type(text)` with Type one of
 * Empty, Str, Bool, Int, Double, Map, Slice, Bytes and text as pcommon's AsString (maps and
 * slices as JSON with sorted keys, bytes as base64, doubles in the shortest form).
 * @param[in] v the value; NULL is printed as Empty().
 * @return 0 or TH_ENOMEM.
 */
int th__debug_format_value(const th_otlp_any_t *v, th_buf_t *out);

/**
 * Append a value's text only (pcommon AsString), as the normal format's `k=v` shows it.
 * @return 0 or TH_ENOMEM.
 */
int th__debug_format_value_text(const th_otlp_any_t *v, th_buf_t *out);

/**
 * Format a timestamp as Go's time.Time.String() in UTC:
 * "2020-02-11 20:26:12.000000321 +0000 UTC" (trailing zeros of the fraction dropped, and the
 * dot too when the fraction is zero).
 * @param[out] out at least 64 bytes.
 */
void th__debug_format_time(uint64_t unix_ns, char *out, size_t cap);

/**
 * Format a double as Go's encoding/json (and pcommon) does: the shortest text that reads
 * back to the same value, in plain notation unless |d| < 1e-6 or |d| >= 1e21.
 * @param[out] out at least 40 bytes.
 */
void th__debug_format_double(double d, char *out, size_t cap);

#endif
