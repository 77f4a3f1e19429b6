/*
 * The probabilistic sampler processor (the Collector's `probabilistic_sampler`), for traces.
 *
 * Each span is kept or dropped by a decision that depends only on its trace (the trace id,
 * or the `rv` randomness in its tracestate), so every collector with the same settings keeps
 * or drops a trace whole. Three modes, as in the Collector:
 *
 * - hash_seed (the default): FNV-1a-32 over the seed (4 bytes little-endian) and the 16-byte
 *   trace id; the span is kept when the low 14 bits are below
 *   uint32(float32(sampling_percentage) × 163.84). Decisions match the Collector's for the
 *   same seed. Kept spans get `ot=rv:<the hash as 56-bit randomness>;th:<threshold>` in their
 *   tracestate, as the Collector writes them.
 * - proportional and equalizing: OpenTelemetry consistent probability sampling (OTEP 235):
 *   randomness is the `rv` value of the tracestate's `ot` entry, or the low 56 bits of the
 *   trace id; a span is kept when threshold <= randomness; kept spans carry the threshold in
 *   `ot=th:` (sampling_precision hex digits). Proportional multiplies the arriving probability
 *   by sampling_percentage; equalizing lowers it to sampling_percentage when it is higher.
 *
 * The span attribute `sampling.priority` (int, double, or a numeric string) overrides: 0
 * drops the span, a positive value keeps it. A span whose sampling information is unusable
 * (bad tracestate, inconsistent `th`, no randomness) is dropped with fail_closed (the
 * default) and kept without.
 *
 * A dropped span is removed from the batch; the batch's acks still settle successfully (a
 * deliberate drop is not a failure), and a batch left empty is released, not forwarded.
 */
#ifndef TH_PROCESSORS_PROBABILISTIC_SAMPLER_H
#define TH_PROCESSORS_PROBABILISTIC_SAMPLER_H

#include "th/batch.h"
#include "th/component.h"
#include "th/config.h"

enum th_probabilistic_sampler_mode {
    TH_PSAMPLER_HASH_SEED = 0,
    TH_PSAMPLER_PROPORTIONAL,
    TH_PSAMPLER_EQUALIZING,
};

/** Typed settings (build them directly in tests; the config layer fills them from YAML). */
struct th_probabilistic_sampler_settings {
    /** Percent of traces kept; >= 100 keeps all, 0 none. A float32, as in the Collector, so
     *  the hash_seed arithmetic (done in float32) gives the Collector's decisions. */
    float sampling_percentage;
    uint32_t hash_seed;
    enum th_probabilistic_sampler_mode mode;
    bool fail_closed;       /**< drop spans whose sampling information is unusable */
    int sampling_precision; /**< hex digits of the `th` written (1..14) in consistent modes */
};

/** Counters over the sampler's life. */
struct th_probabilistic_sampler_stats {
    uint64_t kept;
    uint64_t dropped;
    uint64_t errors;   /**< spans whose sampling information was unusable */
    uint64_t priority; /**< decisions forced by sampling.priority */
};

typedef struct th_probabilistic_sampler th_probabilistic_sampler_t;

/**
 * Check settings as the Collector's Validate does (messages with its wording: `sampling rate
 * is negative: -15.300000%`, `invalid sampling precision: 0`, ...).
 * @return 0 or TH_ECONFIG (message in @p err).
 */
int th_probabilistic_sampler_settings_check(const struct th_probabilistic_sampler_settings *s,
                                            char *err, size_t errlen);

/**
 * Build a sampler (no allocation beyond the struct; the thresholds are computed once).
 * @return 0, TH_ECONFIG (message in @p err), TH_ENOMEM.
 */
int th_probabilistic_sampler_create(const struct th_probabilistic_sampler_settings *s,
                                    th_probabilistic_sampler_t **out, char *err, size_t errlen);

/** Free a sampler; NULL is allowed. */
void th_probabilistic_sampler_destroy(th_probabilistic_sampler_t *ps);

/**
 * Decide for one span, and when it is kept, update its tracestate as the Collector does.
 * @param[in] a where a new tracestate string is allocated (the batch's arena).
 * @param[out] keep the decision.
 * @return 0 or TH_ENOMEM (then *keep is still set, but the tracestate was not updated).
 */
int th_probabilistic_sampler_span(th_probabilistic_sampler_t *ps, th_arena_t *a,
                                  th_otlp_span_t *span, bool *keep);

/**
 * Sample a batch in place: dropped spans are removed, and scope and resource entries left
 * empty too; span_count is updated.
 * @param[out] dropped the number of spans removed.
 * @return 0 or TH_ENOMEM (the batch is consistent, but some kept spans may lack their
 *         tracestate update).
 */
int th_probabilistic_sampler_batch(th_probabilistic_sampler_t *ps, th_batch_t *b, size_t *dropped);

/** @return the counters so far. */
struct th_probabilistic_sampler_stats
th_probabilistic_sampler_get_stats(const th_probabilistic_sampler_t *ps);

/* ---- Internals, exposed for the tests ------------------------------------------------- */

/** FNV-1a-32 of the seed (4 bytes little-endian) followed by @p len bytes of @p p. */
uint32_t th__probabilistic_sampler_fnv(uint32_t seed, const uint8_t *p, size_t len);

/**
 * The threshold (rejections out of 2^56) for a probability, rounded to @p precision hex
 * digits with the Collector's extra digits near 0 and 1 (pkg/sampling
 * ProbabilityToThresholdWithPrecision).
 * @return 0, or TH_EINVAL when @p prob is outside [2^-56, 1].
 */
int th__probabilistic_sampler_threshold(double prob, int precision, uint64_t *out);

/** Encode a threshold as a `th` value: 14 hex digits without trailing zeros, "0" for
 *  always-sample. @p out needs 15 bytes. */
void th__probabilistic_sampler_tvalue(uint64_t threshold, char *out);

/* ---- The config layer ------------------------------------------------------------------ */

struct th_probabilistic_sampler_cfg {
    double sampling_percentage;
    int64_t hash_seed;
    const char *mode;
    bool fail_closed;
    int64_t sampling_precision;
    const char *attribute_source;  /**< logs only */
    const char *from_attribute;    /**< logs only */
    const char *sampling_priority; /**< logs only */
};

extern const struct th_cfg_field th_probabilistic_sampler_config_fields[];

/**
 * Turn a decoded config into settings and check them.
 * @return 0 or TH_ECONFIG (message in @p err, e.g. `mode: unsupported sampler mode "x"`).
 */
int th_probabilistic_sampler_settings_from_cfg(const struct th_probabilistic_sampler_cfg *cfg,
                                               struct th_probabilistic_sampler_settings *out,
                                               char *err, size_t errlen);

/** config_check of the ops table. */
int th_probabilistic_sampler_config_check(const void *cfg, const char **err);

extern const struct th_component_ops th_processor_probabilistic_sampler_ops;

#endif
