/*
 * Internal to the tail sampling component (not the policies): the instance, the trace buffer
 * (tail_sampling_buffer.c), the decision caches (tail_sampling_cache.c), the output batches
 * (tail_sampling_output.c) and the decision timer and shutdown (tail_sampling_decide.c).
 *
 * Everything runs on one thread, the loop the receivers feed us on: consume, the timer and
 * shutdown. Nothing here locks.
 */
#ifndef TH_TAIL_SAMPLING_BUFFER_H
#define TH_TAIL_SAMPLING_BUFFER_H

#include "processors/tail_sampling/tail_sampling.h"

/* ---- Source batches ---------------------------------------------------------------------- */

/**
 * A batch the buffer holds spans of. The buffer keeps one reference on the batch (the one
 * consume was handed) for as long as any pending trace has spans in it; its arena's bytes are
 * counted in the buffer's bytes for exactly that long.
 */
struct th__ts_src {
    th_batch_t *b;
    size_t bytes;            /**< th_arena_reserved of b's arena when it came in */
    uint32_t holds;          /**< runs of consecutive spans of pending traces in b */
    struct th__ts_src *next; /**< free list */
};

/** A chunk of spans as the policies see it, plus the source of each span. */
struct th__ts_chunk {
    struct th_ts_chunk c; /**< first member: c.next points at the next th__ts_chunk's c */
    struct th__ts_src *src[TH_TS_CHUNK];
};

/** A pending trace. */
struct th__ts_trace {
    struct th_ts_trace pub;           /**< what the policies read; pub.first is the first chunk */
    struct th__ts_chunk *last;        /**< where the next span goes */
    struct th__ts_trace *prev, *next; /**< its FIFO (by deadline); free list uses next */
    uint64_t first_ns;                /**< monotonic time of the first span */
    uint64_t deadline_ns;             /**< monotonic time it is due */
    bool root_seen;
    bool in_root_fifo; /**< moved by decision_wait_after_root_received */
};

/** A FIFO of pending traces; deadlines are non-decreasing from head to tail. */
struct th__ts_fifo {
    struct th__ts_trace *head, *tail;
};

/* ---- Decision caches -------------------------------------------------------------------- */

/**
 * A FIFO ring of decided trace ids with an open-addressing index: about 16 + 1 + 8 bytes per
 * entry. When full, the oldest decision is forgotten.
 */
struct th__ts_cache {
    uint8_t (*ids)[16]; /**< ring of cap ids */
    uint8_t *dec;       /**< enum th_ts_decision per ring entry */
    uint32_t *index;    /**< ring position + 1, or 0: empty; imask + 1 slots */
    size_t cap, head, n;
    size_t imask;
};

/* ---- Output batches --------------------------------------------------------------------- */

/** The spans of one output batch as they are gathered; built into a batch by finish. */
struct th__ts_out {
    struct th_ts_span *v;
    size_t n, cap;
    th_batch_t **holds; /**< one reference per run of spans from one batch, taken when the
                             spans are added (the trace may let its batches go right after) */
    size_t n_holds, cap_holds;
};

/** An output batch the next consumer refused, kept to retry. */
struct th__ts_retry {
    th_batch_t *b;
    size_t bytes; /**< counted in the buffer's bytes while queued */
    struct th__ts_retry *next;
};

/* ---- The instance ------------------------------------------------------------------------ */

struct th_tail_sampling {
    struct th_component base;
    struct th_tail_sampling_cfg cfg;
    th_ts_policies_t *policies;
    struct th_tail_sampling_stats stats;

    /* the trace table: open addressing, linear probing, backward-shift deletion */
    struct th__ts_slot {
        uint64_t h; /**< hash of the id; the trace is NULL when the slot is empty */
        struct th__ts_trace *t;
    } * slots;
    size_t mask;      /**< slots - 1 */
    size_t max_slots; /**< the table never grows past this (2x num_traces, power of two) */
    size_t n_traces;  /**< pending traces */

    struct th__ts_fifo fifo;      /**< by first arrival */
    struct th__ts_fifo root_fifo; /**< moved early by decision_wait_after_root_received */

    /* pools: records come from slabs and go back to free lists */
    struct th__ts_trace *free_traces;
    struct th__ts_chunk *free_chunks;
    struct th__ts_src *free_srcs;
    size_t n_free_traces, n_free_chunks;
    void **slabs;
    size_t n_slabs, cap_slabs;

    uint64_t pending_bytes; /**< bytes of the source batches pending traces hold */
    uint64_t retry_bytes;   /**< bytes of output batches waiting to be retried */
    uint64_t max_bytes;

    struct th__ts_cache cache_store[2];
    struct th__ts_cache *sampled_cache, *not_sampled_cache; /**< may be the same cache */

    struct th__ts_out out; /**< the output being gathered */
    struct th__ts_retry *retry_head, *retry_tail;

    uv_timer_t *timer;  /**< on host->loop once started; frees itself when closed */
    uint64_t armed_ns;  /**< monotonic time the timer is set for; 0: not armed */
    bool stopped;       /**< shutdown ran */
    bool mutating_next; /**< the next consumer changes batches: hand it copies */

    uint64_t last_log_ns; /**< rate limit of loss and refusal warnings */
    uint64_t not_logged;  /**< warnings suppressed since the last one */
};

/* ---- tail_sampling_buffer.c ------------------------------------------------------------- */

/** Set up the table and pools for cfg (no I/O). @return 0, TH_ENOMEM. */
int th__ts_buffer_init(struct th_tail_sampling *ts);

/** Free the pools and the table; pending traces must have been released. */
void th__ts_buffer_deinit(struct th_tail_sampling *ts);

/**
 * Take a batch: group its spans by trace, answer late spans from the decision caches, decide
 * traces early when num_traces or max_buffer_bytes is reached, and send what was sampled.
 * @return 0 (nothing kept), TH_HELD (spans buffered), TH_ERETRY (full: nothing of the batch
 *         was kept), TH_ENOMEM (nothing kept), TH_ESHUTDOWN.
 * @note Takes the caller's reference on @p b whatever the result.
 */
int th__ts_consume(struct th_tail_sampling *ts, th_batch_t *b);

/** Remove a pending trace from the table and its FIFO and free it, releasing its sources. */
void th__ts_trace_release(struct th_tail_sampling *ts, struct th__ts_trace *t);

/* ---- tail_sampling_cache.c -------------------------------------------------------------- */

/** @return 0 or TH_ENOMEM. A cache of @p cap 0 is empty and never remembers anything. */
int th__ts_cache_init(struct th__ts_cache *c, size_t cap);
void th__ts_cache_deinit(struct th__ts_cache *c);
/** Remember a decision (replacing an older one of the same id). */
void th__ts_cache_put(struct th__ts_cache *c, const uint8_t id[16], uint64_t h,
                      enum th_ts_decision d);
/** @return the decision remembered for the id, or TH_TS_UNSPECIFIED. */
enum th_ts_decision th__ts_cache_get(const struct th__ts_cache *c, const uint8_t id[16],
                                     uint64_t h);

/** @return the hash of a trace id used by the table and the caches. */
static inline uint64_t th__ts_hash(const uint8_t id[16])
{
    uint64_t a, b;
    __builtin_memcpy(&a, id, 8);
    __builtin_memcpy(&b, id + 8, 8);
    /* Ids are random in practice, but not always (sequential test ids, OTLP_UNIQUE rewriting
     * the first bytes): mix both halves so every bit matters. */
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull);
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* ---- tail_sampling_output.c ------------------------------------------------------------- */

/** Add every span of a trace to the output being gathered. @return 0 or TH_ENOMEM. */
int th__ts_out_add_trace(struct th_tail_sampling *ts, const struct th__ts_trace *t);

/** Add one span to the output being gathered. @return 0 or TH_ENOMEM. */
int th__ts_out_add_span(struct th_tail_sampling *ts, const struct th_ts_span *s);

/**
 * Build what was gathered into one batch (pointing at the buffered spans, holding a reference
 * on every source batch) and hand it on, after any earlier refused output; a refused output
 * is kept and retried by th__ts_out_retry.
 */
void th__ts_out_flush(struct th_tail_sampling *ts);

/** Try the refused outputs again, oldest first, stopping at the first refusal. */
void th__ts_out_retry(struct th_tail_sampling *ts);

/** Release every refused output still queued, counting and logging the loss. */
void th__ts_out_drop_retries(struct th_tail_sampling *ts, const char *why);

/** Release what is gathered and free the gathering arrays. */
void th__ts_out_deinit(struct th__ts_out *o);

/** Log a warning at most once a second (losses and refusals). */
void th__ts_warn_limited(struct th_tail_sampling *ts, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- tail_sampling_decide.c ------------------------------------------------------------- */

/** Why a trace is decided now. */
enum th__ts_why {
    TH__TS_DUE,       /**< decision_wait (or the root wait) passed */
    TH__TS_EARLY,     /**< num_traces or max_buffer_bytes reached */
    TH__TS_TOO_LARGE, /**< maximum_trace_size_bytes passed: not sampled, no evaluation */
    TH__TS_SHUTDOWN,  /**< shutting down */
};

/**
 * Decide one pending trace with the policies, remember the decision, add a sampled trace to
 * the output being gathered, and release the trace.
 * @param[in] now_unix_ns wall clock for the stateful policies.
 */
void th__ts_decide(struct th_tail_sampling *ts, struct th__ts_trace *t, enum th__ts_why why,
                   uint64_t now_unix_ns);

/** Remember a decision in the matching cache. */
void th__ts_remember(struct th_tail_sampling *ts, const uint8_t id[16], uint64_t h,
                     enum th_ts_decision d);

/** (Re)arm the timer for the earliest deadline or a pending retry. */
void th__ts_timer_arm(struct th_tail_sampling *ts);

/** Start the timer on @p loop. @return 0, TH_ENOMEM, TH_EIO. */
int th__ts_timer_start(struct th_tail_sampling *ts, uv_loop_t *loop);

/** Stop and close the timer (it frees itself). */
void th__ts_timer_close(struct th_tail_sampling *ts);

/** Decide or drop everything pending and flush it downstream. Idempotent. */
int th__ts_shutdown(struct th_tail_sampling *ts);

#endif
