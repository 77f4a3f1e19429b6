/*
 * The memory_limiter processor: refuses data while the process uses too much memory, so that
 * senders back off and retry instead of the collector being killed, as the OpenTelemetry
 * Collector's memory_limiter does.
 *
 * The hard limit is limit_mib (or limit_percentage of the memory available to the process:
 * the cgroup limit, v2 or v1, or MemTotal); the soft limit is the hard limit minus the spike
 * limit (spike_limit_mib, spike_limit_percentage, or 20% of the hard limit). Memory is
 * measured every check_interval on a timer on the host's loop: at or above the soft limit
 * every consume is refused with TH_ENOMEM (the OTLP receivers answer HTTP 503 / gRPC
 * UNAVAILABLE, "data refused due to high memory usage"); below it data flows again.
 *
 * What is measured is the process's anonymous resident memory (RssAnon: resident minus
 * shared pages, from /proc/self/statm). It is what the kernel and the cgroup actually charge
 * and what an OOM kill follows, it covers every allocation (the decoders' arenas, h2o's and
 * libuv's buffers, exporters' queues, thread stacks), and it costs one pread of a small procfs
 * file. File-backed pages (the binary, and the LMDB store's memory map, which the kernel can
 * drop at will) are left out. Its one weakness is that memory freed to the allocator is still
 * resident until the allocator gives it back, which is what the Collector's forced GC maps
 * to here: malloc_trim(0), run at the same moments and with the same pacing
 * (min_gc_interval_when_* between trims, doubling up to max_gc_interval_when_* while trims
 * free less than 5%).
 *
 * Between two checks, consume keeps an estimate (the last measurement plus the arena sizes of
 * the batches let through since) and measures again at once when it reaches the soft limit,
 * and at least every TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY calls, so a flood between two
 * ticks cannot overshoot far. Only a check on the timer lifts a refusal, as in the Collector.
 *
 * Threads: consume, the timer and shutdown all run on the host's loop thread.
 */
#ifndef TH_PROCESSOR_MEMORY_LIMITER_H
#define TH_PROCESSOR_MEMORY_LIMITER_H

#include "th/component.h"

/** Consume measures memory again at least once per this many calls. */
#define TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY 32

/** A forced trim that frees less than this percentage of the measured memory is ineffective
 *  and doubles the time to the next one (the Collector's GC effectiveness threshold). */
#define TH_MEMORY_LIMITER_TRIM_EFFECTIVE_PCT 5

/** The memory_limiter's config, filled by its field table or built directly by tests. */
struct th_memory_limiter_cfg {
    int64_t check_interval;                    /**< ns between checks; required, > 0 */
    int64_t limit_mib;                         /**< hard limit in MiB; wins over the percentage */
    int64_t spike_limit_mib;                   /**< hard - soft in MiB; 0: 20% of the limit */
    int64_t limit_percentage;                  /**< hard limit in % of total memory */
    int64_t spike_limit_percentage;            /**< hard - soft in % of total; 0: 20% of limit */
    int64_t min_gc_interval_when_soft_limited; /**< ns between trims above the soft limit (10s) */
    int64_t min_gc_interval_when_hard_limited; /**< ns between trims above the hard limit (0) */
    int64_t
        max_gc_interval_when_soft_limited; /**< backoff cap above the soft limit (30s); 0: none */
    int64_t
        max_gc_interval_when_hard_limited; /**< backoff cap above the hard limit (30s); 0: none */
};

/** The ops table registered as processor "memory_limiter". */
extern const struct th_component_ops th_processor_memory_limiter_ops;

/**
 * Check the config as the Collector's Validate does, in its order and with its messages
 * (`'check_interval' must be greater than zero`, `'limit_mib' or 'limit_percentage' must be
 * greater than zero`, ...).
 * @param[in] cfg a struct th_memory_limiter_cfg.
 * @param[out] err a static message on failure.
 * @return 0 or TH_ECONFIG.
 */
int th__memory_limiter_config_check(const void *cfg, const char **err);

/** Counters of one instance (the Collector's otelcol_processor_memory_limiter_*, later). */
struct th_memory_limiter_stats {
    uint64_t accepted_spans; /**< let through (whatever the next consumer then said) */
    uint64_t refused_spans;  /**< refused with TH_ENOMEM */
    uint64_t checks;         /**< measurements on the timer */
    uint64_t quick_checks;   /**< measurements from consume */
    uint64_t trims;          /**< malloc_trim calls */
};

struct th_memory_limiter;

/** Reads the memory in use, in bytes. @return 0 or a negative error. */
typedef int (*th_memory_limiter_read_fn)(struct th_memory_limiter *ml, uint64_t *bytes);

/** The instance (memory_limiter.c allocates it through instance_size). */
struct th_memory_limiter {
    struct th_component base;
    const struct th_memory_limiter_cfg *cfg;
    uint64_t hard, soft; /**< limits in bytes, set by start */
    bool armed;          /**< start has set the limits */
    bool refusing;       /**< consume answers TH_ENOMEM */
    bool stopped;        /**< shutdown has run */
    uint64_t usage;      /**< the last measurement, bytes */
    uint64_t since;      /**< arena bytes of batches let through since the last measurement */
    unsigned calls;      /**< consume calls since the last measurement */
    uint64_t last_trim_ns;
    unsigned ineffective_trims; /**< consecutive trims that freed less than 5% */
    bool read_failed_logged;
    uv_timer_t *timer; /**< on host->loop once started; freed by its close callback */
    int statm_fd;      /**< /proc/self/statm, or -1 */

    /* Replaceable by tests before start (init sets the real ones). */
    th_memory_limiter_read_fn read_usage;       /**< default: RssAnon from statm_fd */
    void (*trim)(struct th_memory_limiter *ml); /**< default: malloc_trim(0) */
    uint64_t (*now_ns)(void);                   /**< default: th_now_mono_ns */
    int (*total_memory)(uint64_t *bytes);       /**< default: th__memory_limiter_total_memory */
    void *test_data;                            /**< for the test's functions */

    struct th_memory_limiter_stats stats;
};

/* ---- The limiter (memory_limiter_check.c) ------------------------------------------ */

/**
 * The limits in bytes for a config: hard = limit_mib MiB, or limit_percentage % of @p total;
 * spike likewise, or 20% of hard when not set; soft = hard - spike.
 */
void th__memory_limiter_limits(const struct th_memory_limiter_cfg *cfg, uint64_t total,
                               uint64_t *hard, uint64_t *soft);

/**
 * Compute the limits (reading total memory for a percentage), take a first measurement and
 * start the timer on @p loop.
 * @return 0; TH_EIO when total memory or /proc/self/statm cannot be read (logged);
 *         TH_ENOMEM.
 */
int th__memory_limiter_start(struct th_memory_limiter *ml, uv_loop_t *loop);

/**
 * One check, as on every timer tick: measure; below the soft limit resume; above it trim
 * (when due) and measure again; refuse while still above the soft limit.
 */
void th__memory_limiter_check(struct th_memory_limiter *ml);

/**
 * Take a batch: refuse it with TH_ENOMEM while over the soft limit (the batch is released),
 * else hand it on.
 * @return TH_ENOMEM, TH_ESHUTDOWN, or the next consumer's result.
 */
int th__memory_limiter_consume(struct th_memory_limiter *ml, th_batch_t *b);

/** Stop the timer and close the statm file. Idempotent; safe without start. */
void th__memory_limiter_stop(struct th_memory_limiter *ml);

/* ---- Measuring memory (memory_limiter_mem.c) --------------------------------------- */

/**
 * Read anonymous resident memory (resident - shared pages) from an open /proc/<pid>/statm.
 * @param[in] fd the open file; read with pread at offset 0, so it can stay open.
 * @return 0, or TH_EIO when it cannot be read or parsed.
 */
int th__memory_limiter_read_statm(int fd, uint64_t *bytes);

/**
 * The memory available to this process: the smallest of MemTotal (/proc/meminfo) and every
 * memory limit of the process's cgroup and its ancestors (v2 memory.max, v1
 * memory.limit_in_bytes; "max" and v1's huge "unlimited" values do not limit).
 * @param[in] root a directory standing for / (tests build a fake tree), or "" for the real one.
 * @return 0; TH_ENOENT when neither MemTotal nor a cgroup limit can be read.
 */
int th__memory_limiter_total_memory_at(const char *root, uint64_t *bytes);

/** th__memory_limiter_total_memory_at("", bytes). */
int th__memory_limiter_total_memory(uint64_t *bytes);

/** The default reader: th__memory_limiter_read_statm on ml->statm_fd. */
int th__memory_limiter_read_self(struct th_memory_limiter *ml, uint64_t *bytes);

/** The default trim: malloc_trim(0), which hands free heap pages back to the kernel. */
void th__memory_limiter_trim(struct th_memory_limiter *ml);

#endif
