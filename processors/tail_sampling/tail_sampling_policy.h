/*
 * Internal to the tail sampling policies: the compiled form of a policy (built once by
 * tail_sampling_policy.c from the config, evaluated by tail_sampling_policy_eval.c), and the
 * small helpers the evaluators need without allocating per decision: a hash set of strings,
 * an LRU of regex results, a token bucket and the probabilistic policy's arithmetic.
 *
 * Nothing here is thread-safe: the policies of one processor are evaluated by one thread at a
 * time (the component's decision thread), which is also what lets the stateful policies
 * (rate_limiting, bytes_limiting, composite, the regex cache) keep plain counters.
 */
#ifndef TH_TAIL_SAMPLING_POLICY_H
#define TH_TAIL_SAMPLING_POLICY_H

#include "processors/attributes/attributes_regex.h"
#include "processors/tail_sampling/tail_sampling.h"

/** The policy types, as spelled in the Collector's `type` key. */
enum th__ts_ptype {
    TH__TS_ALWAYS_SAMPLE,
    TH__TS_LATENCY,
    TH__TS_NUMERIC_ATTRIBUTE,
    TH__TS_PROBABILISTIC,
    TH__TS_STATUS_CODE,
    TH__TS_STRING_ATTRIBUTE,
    TH__TS_RATE_LIMITING,
    TH__TS_BYTES_LIMITING,
    TH__TS_SPAN_COUNT,
    TH__TS_TRACE_STATE,
    TH__TS_TRACE_FLAGS,
    TH__TS_BOOLEAN_ATTRIBUTE,
    TH__TS_AND,
    TH__TS_NOT,
    TH__TS_DROP,
    TH__TS_COMPOSITE,
};

/** An immutable set of strings (open addressing, FNV-1a hashes), built at create time. */
struct th__ts_strset {
    struct th__ts_strslot {
        uint64_t h;
        const char *s; /**< NULL: empty slot */
        size_t len;
    } * slots;
    size_t mask; /**< slots - 1 (a power of two at least twice the count) */
    size_t n;
};

/** One remembered regex result. */
struct th__ts_rc_entry {
    struct th__ts_rc_entry *hnext;       /**< bucket chain */
    struct th__ts_rc_entry *prev, *next; /**< recency list, most recent first */
    uint64_t h;
    char *s; /**< heap copy of the value; reused when the entry is recycled */
    size_t len, cap;
    bool match;
};

/** The LRU of value -> matched (the Collector's cache_max_size, default 128). */
struct th__ts_rcache {
    struct th__ts_rc_entry **buckets;
    size_t mask;
    struct th__ts_rc_entry *head, *tail;
    size_t n, cap;
};

/** A token bucket with the behaviour of golang.org/x/time/rate's Limiter.AllowN. */
struct th__ts_bucket {
    double rate;  /**< tokens per second (>= 0) */
    double burst; /**< capacity */
    double tokens;
    uint64_t last_ns;
    bool started; /**< a new Limiter starts full */
};

struct th__ts_policy;

/** A composite sub-policy with its per-second span budget. */
struct th__ts_comp_sub {
    struct th__ts_policy *p;
    int64_t allocated; /**< spans per second */
    int64_t used;      /**< spans sampled in the current second */
};

/** A compiled policy (top level or sub-policy). */
struct th__ts_policy {
    enum th__ts_ptype type;
    const char *name;
    /** Next policy holding resources outside the arena (regexes, the regex cache), in the
     *  list the policies object releases on destroy, even after a failed build. */
    struct th__ts_policy *res_next;
    union {
        struct {
            int64_t threshold_ms, upper_ms;
        } latency;
        struct {
            const char *key;
            int64_t min, max;
            bool invert;
        } numeric;
        struct {
            uint64_t salt_state; /**< FNV-1a state after the salt's bytes */
            uint64_t threshold;
        } prob;
        struct {
            unsigned mask; /**< bit (1 << code) for each status code that samples */
        } status;
        struct {
            const char *key;
            bool invert;
            bool regex;
            struct th__ts_strset set; /**< exact values */
            pcre2_code **re;          /**< regex values, in config order */
            size_t n_re;
            struct th__ts_rcache cache;
        } string;
        struct th__ts_bucket bucket; /**< rate_limiting (spans), bytes_limiting (bytes) */
        struct {
            int64_t min, max;
        } span_count;
        struct {
            const char *key;
            size_t klen;
            struct th__ts_strset set;
        } trace_state;
        struct {
            const char *key;
            bool value;
            bool invert;
        } boolean;
        struct {
            struct th__ts_policy **subs; /**< and, drop */
            size_t n;
        } list;
        struct {
            struct th__ts_policy *sub;
        } not_;
        struct {
            struct th__ts_comp_sub *subs; /**< in evaluation order */
            size_t n;
            int64_t max_total;
            int64_t total; /**< spans sampled in the current second, all sub-policies */
            int64_t second;
        } composite;
    } u;
};

/** What an evaluation needs besides the policy and the trace. */
struct th__ts_eval_ctx {
    const struct th_ts_trace *t;
    uint64_t now_ns;
    struct th__attributes_matcher *matcher; /**< for string_attribute regexes */
};

/**
 * Evaluate one policy.
 * @return TH_TS_SAMPLED, TH_TS_NOT_SAMPLED, TH_TS_DROPPED (drop only) or TH_TS_ERROR.
 */
enum th_ts_decision th__ts_policy_eval(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx);

/** Release what one policy holds outside the arena (regexes, the regex cache); not its
 *  sub-policies, which are on the resource list themselves when they hold anything. */
void th__ts_policy_release(struct th__ts_policy *p);

/** FNV-1a 64 of @p len bytes continuing from @p h (start with TH__TS_FNV_OFFSET). */
uint64_t th__ts_fnv1a(uint64_t h, const void *p, size_t len);

#define TH__TS_FNV_OFFSET 0xcbf29ce484222325ull

/**
 * The probabilistic policy's threshold, as the Collector computes it: floor(MaxUint64 ×
 * (pct/100)) where the product is rounded to 64 bits of mantissa (big.Float with the precision
 * of its MaxUint64 operand), exactly, with integer arithmetic (so on every platform).
 * @return UINT64_MAX for pct >= 100, 0 for pct <= 0.
 */
uint64_t th__ts_prob_threshold(double pct);

/**
 * Build a set of the non-empty strings of @p v, skipping those @p keep rejects.
 * @return 0 or TH_ENOMEM.
 */
int th__ts_strset_init(struct th__ts_strset *s, th_arena_t *a, const char *const *v, size_t n,
                       bool (*keep)(const char *s, size_t len, const void *arg), const void *arg);

/** @return whether @p s (@p len bytes, hash @p h) is in the set. */
bool th__ts_strset_has(const struct th__ts_strset *s, uint64_t h, const char *str, size_t len);

/**
 * Set up an empty regex cache for @p cap entries.
 * @return 0 or TH_ENOMEM.
 */
int th__ts_rcache_init(struct th__ts_rcache *c, size_t cap);

/**
 * Look a value up (@p h is its th__ts_fnv1a hash from TH__TS_FNV_OFFSET).
 * @return the entry, made the most recent, or NULL.
 */
struct th__ts_rc_entry *th__ts_rcache_get(struct th__ts_rcache *c, uint64_t h, const char *s,
                                          size_t len);

/**
 * Remember a result (the value must not be in the cache). When full, the least recently used
 * entry is recycled, so after warm-up nothing is allocated. Out of memory only means the
 * result is not remembered.
 */
void th__ts_rcache_put(struct th__ts_rcache *c, uint64_t h, const char *s, size_t len, bool match);

/** Free the cache's entries and buckets; safe on a zeroed cache. */
void th__ts_rcache_deinit(struct th__ts_rcache *c);

/**
 * A token bucket of @p rate per second holding @p burst, full before the first use.
 */
void th__ts_bucket_init(struct th__ts_bucket *b, int64_t rate, int64_t burst);

/** Take @p n tokens at @p now_ns if they are there (x/time/rate AllowN). @return whether. */
bool th__ts_bucket_allow(struct th__ts_bucket *b, uint64_t now_ns, uint64_t n);

#endif
