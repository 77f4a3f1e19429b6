/*
 * The memory_limiter's state machine, after the Collector's CheckMemLimits: every
 * check_interval the memory is measured; below the soft limit data flows; above it the free
 * heap is handed back to the kernel (malloc_trim, the forced GC's counterpart, paced by the
 * min/max_gc_interval settings) and, if memory is still above the soft limit, every consume
 * is refused until a later check finds it below. consume also measures between ticks when its
 * estimate reaches the soft limit, so a flood cannot run far past it.
 */
#include <fcntl.h>
#include <unistd.h>

#include "processors/memory_limiter/memory_limiter.h"
#include "th/log.h"

#define MIB (1024ull * 1024ull)

void th__memory_limiter_limits(const struct th_memory_limiter_cfg *cfg, uint64_t total,
                               uint64_t *hard, uint64_t *soft)
{
    uint64_t limit;
    uint64_t spike;
    if (cfg->limit_mib > 0) {
        limit = (uint64_t)cfg->limit_mib * MIB;
        spike = (uint64_t)(cfg->spike_limit_mib > 0 ? cfg->spike_limit_mib : 0) * MIB;
    } else {
        limit = (uint64_t)cfg->limit_percentage * total / 100;
        spike = (uint64_t)(cfg->spike_limit_percentage > 0 ? cfg->spike_limit_percentage : 0) *
                total / 100;
    }
    if (spike == 0) {
        spike = limit / 5;
    }
    *hard = limit;
    *soft = spike < limit ? limit - spike : 0;
}

static int measure(struct th_memory_limiter *ml, uint64_t *bytes)
{
    int ret = ml->read_usage(ml, bytes);
    if (ret != 0) {
        if (!ml->read_failed_logged) {
            th_log_error(&ml->base, "cannot measure memory: %s; keeping the last state",
                         th_strerror(ret));
            ml->read_failed_logged = true;
        }
        return ret;
    }
    ml->read_failed_logged = false;
    ml->usage = *bytes;
    ml->since = 0;
    ml->calls = 0;
    return 0;
}

/* The time to wait between trims: the configured minimum, doubled for every trim in a row
 * that freed next to nothing, up to the cap (0: no backoff), as the Collector paces its GC. */
static uint64_t trim_interval(const struct th_memory_limiter *ml, int64_t min_ns, int64_t cap_ns)
{
    if (ml->ineffective_trims == 0 || cap_ns <= 0) {
        return (uint64_t)(min_ns > 0 ? min_ns : 0);
    }
    uint64_t interval = (uint64_t)(min_ns > 0 ? min_ns : ml->cfg->check_interval);
    for (unsigned i = 0; i < ml->ineffective_trims; i++) {
        interval *= 2;
        if (interval >= (uint64_t)cap_ns) {
            return (uint64_t)cap_ns;
        }
    }
    return interval;
}

/* Trim, measure again and judge whether the trim helped. @return the new measurement. */
static uint64_t trim_and_measure(struct th_memory_limiter *ml, uint64_t before)
{
    ml->trim(ml);
    __atomic_add_fetch(&ml->stats.trims, 1, __ATOMIC_RELAXED);
    ml->last_trim_ns = ml->now_ns();
    uint64_t after = before;
    if (measure(ml, &after) != 0) {
        return before;
    }
    th_log_info(&ml->base,
                "Memory usage after returning free memory to the system. cur_mem_mib=%llu",
                (unsigned long long)(after / MIB));
    if (after > before / 100 * (100 - TH_MEMORY_LIMITER_TRIM_EFFECTIVE_PCT)) {
        ml->ineffective_trims++;
        if (ml->ineffective_trims == 1) {
            th_log_warn(&ml->base,
                        "Returning free memory did not reclaim enough memory. Will back off to "
                        "preserve CPU for recovery. mem_before_mib=%llu cur_mem_mib=%llu",
                        (unsigned long long)(before / MIB), (unsigned long long)(after / MIB));
        }
    } else {
        ml->ineffective_trims = 0;
    }
    return after;
}

static void set_refusing(struct th_memory_limiter *ml, bool refuse)
{
    if (refuse && !ml->refusing) {
        th_log_warn(&ml->base, "Memory usage is above soft limit. Refusing data. cur_mem_mib=%llu",
                    (unsigned long long)(ml->usage / MIB));
    } else if (!refuse && ml->refusing) {
        th_log_info(&ml->base,
                    "Memory usage back within limits. Resuming normal operation. cur_mem_mib=%llu",
                    (unsigned long long)(ml->usage / MIB));
    }
    ml->refusing = refuse;
}

void th__memory_limiter_check(struct th_memory_limiter *ml)
{
    uint64_t usage;
    if (measure(ml, &usage) != 0) {
        return;
    }
    __atomic_add_fetch(&ml->stats.checks, 1, __ATOMIC_RELAXED);
    th_log_debug(&ml->base, "Currently used memory. cur_mem_mib=%llu",
                 (unsigned long long)(usage / MIB));
    if (usage < ml->soft) {
        ml->ineffective_trims = 0;
        set_refusing(ml, false);
        return;
    }
    const struct th_memory_limiter_cfg *c = ml->cfg;
    uint64_t since_trim = ml->now_ns() - ml->last_trim_ns;
    if (usage >= ml->hard) {
        if (since_trim > trim_interval(ml, c->min_gc_interval_when_hard_limited,
                                       c->max_gc_interval_when_hard_limited)) {
            th_log_warn(&ml->base,
                        "Memory usage is above hard limit. Returning free memory to the system. "
                        "cur_mem_mib=%llu",
                        (unsigned long long)(usage / MIB));
            usage = trim_and_measure(ml, usage);
        }
    } else if (since_trim > trim_interval(ml, c->min_gc_interval_when_soft_limited,
                                          c->max_gc_interval_when_soft_limited)) {
        th_log_info(&ml->base,
                    "Memory usage is above soft limit. Returning free memory to the system. "
                    "cur_mem_mib=%llu",
                    (unsigned long long)(usage / MIB));
        usage = trim_and_measure(ml, usage);
    }
    set_refusing(ml, usage >= ml->soft);
}

static void on_tick(uv_timer_t *t)
{
    th__memory_limiter_check(t->data);
}

int th__memory_limiter_consume(struct th_memory_limiter *ml, th_batch_t *b)
{
    size_t spans = b->span_count;
    if (ml->stopped) {
        th_batch_release(b);
        return TH_ESHUTDOWN;
    }
    if (ml->armed && !ml->refusing) {
        /* Cheap between ticks: measure only when the estimate reaches the soft limit, or now
         * and then. The batch's arena is what holding it costs. */
        ml->since += th_arena_reserved(b->arena);
        uint64_t usage;
        if ((++ml->calls >= TH_MEMORY_LIMITER_CONSUME_CHECK_EVERY ||
             ml->usage + ml->since >= ml->soft) &&
            measure(ml, &usage) == 0) {
            __atomic_add_fetch(&ml->stats.quick_checks, 1, __ATOMIC_RELAXED);
            if (usage >= ml->soft) {
                set_refusing(ml, true);
            }
        }
    }
    if (ml->refusing) {
        __atomic_add_fetch(&ml->stats.refused_spans, spans, __ATOMIC_RELAXED);
        th_batch_release(b);
        return TH_ENOMEM;
    }
    __atomic_add_fetch(&ml->stats.accepted_spans, spans, __ATOMIC_RELAXED);
    return th_consumer_consume(ml->base.next, b);
}

int th__memory_limiter_start(struct th_memory_limiter *ml, uv_loop_t *loop)
{
    const struct th_memory_limiter_cfg *c = ml->cfg;
    uint64_t total = 0;
    if (c->limit_mib == 0) {
        int ret = ml->total_memory(&total);
        if (ret != 0) {
            th_log_error(&ml->base,
                         "failed to get total memory, use fixed memory settings (limit_mib): %s",
                         th_strerror(ret));
            return TH_EIO;
        }
        th_log_info(&ml->base,
                    "Using percentage memory limiter total_memory_mib=%llu limit_percentage=%lld "
                    "spike_limit_percentage=%lld",
                    (unsigned long long)(total / MIB), (long long)c->limit_percentage,
                    (long long)c->spike_limit_percentage);
    }
    th__memory_limiter_limits(c, total, &ml->hard, &ml->soft);
    th_log_info(&ml->base,
                "Memory limiter configured limit_mib=%llu spike_limit_mib=%llu "
                "check_interval=%lldms",
                (unsigned long long)(ml->hard / MIB),
                (unsigned long long)((ml->hard - ml->soft) / MIB),
                (long long)(c->check_interval / 1000000));
    if (ml->read_usage == th__memory_limiter_read_self && ml->statm_fd < 0) {
        ml->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        if (ml->statm_fd < 0) {
            th_log_error(&ml->base, "cannot open /proc/self/statm to measure memory: %s",
                         th_strerror(-errno));
            return TH_EIO;
        }
    }
    ml->last_trim_ns = ml->now_ns();
    ml->armed = true;
    /* Measure once now rather than trusting the first check_interval. */
    th__memory_limiter_check(ml);
    if (loop && !ml->timer) {
        uv_timer_t *t = th_malloc(sizeof(*t));
        if (!t) {
            return TH_ENOMEM;
        }
        if (uv_timer_init(loop, t) != 0) {
            th_free(t);
            return TH_EIO;
        }
        t->data = ml;
        ml->timer = t;
        /* libuv counts milliseconds; anything under one still ticks every millisecond. */
        uint64_t ms = (uint64_t)(c->check_interval / 1000000 + (c->check_interval % 1000000 != 0));
        uv_timer_start(t, on_tick, ms, ms);
    }
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    th_free(h);
}

void th__memory_limiter_stop(struct th_memory_limiter *ml)
{
    ml->stopped = true;
    if (ml->timer) {
        uv_timer_stop(ml->timer);
        /* Heap handle, freed by its close callback: the instance may go first. */
        uv_close((uv_handle_t *)ml->timer, on_timer_closed);
        ml->timer = NULL;
    }
    if (ml->statm_fd >= 0) {
        close(ml->statm_fd);
        ml->statm_fd = -1;
    }
}
