/*
 * The memory_limiter's config rules: the Collector's Validate (internal/memorylimiter), in its
 * order and with its messages, so the same config is refused with the same words.
 */
#include "processors/memory_limiter/memory_limiter.h"

int th__memory_limiter_config_check(const void *cfg_, const char **err)
{
    const struct th_memory_limiter_cfg *c = cfg_;
    if (c->check_interval <= 0) {
        *err = "'check_interval' must be greater than zero";
        return TH_ECONFIG;
    }
    if (c->min_gc_interval_when_soft_limited < c->min_gc_interval_when_hard_limited) {
        *err = "'min_gc_interval_when_soft_limited' should be larger than "
               "'min_gc_interval_when_hard_limited'";
        return TH_ECONFIG;
    }
    if (c->max_gc_interval_when_soft_limited < 0) {
        *err = "'max_gc_interval_when_soft_limited' must be non-negative";
        return TH_ECONFIG;
    }
    if (c->max_gc_interval_when_hard_limited < 0) {
        *err = "'max_gc_interval_when_hard_limited' must be non-negative";
        return TH_ECONFIG;
    }
    if (c->max_gc_interval_when_soft_limited > 0 &&
        c->max_gc_interval_when_soft_limited < c->min_gc_interval_when_soft_limited) {
        *err = "'max_gc_interval_when_soft_limited' must be greater than or equal to "
               "'min_gc_interval_when_soft_limited' (or 0 to disable)";
        return TH_ECONFIG;
    }
    if (c->max_gc_interval_when_hard_limited > 0 &&
        c->max_gc_interval_when_hard_limited < c->min_gc_interval_when_hard_limited) {
        *err = "'max_gc_interval_when_hard_limited' must be greater than or equal to "
               "'min_gc_interval_when_hard_limited' (or 0 to disable)";
        return TH_ECONFIG;
    }
    /* The soft cap tighter than the hard one is almost always a typo, says the Collector. */
    if (c->max_gc_interval_when_soft_limited > 0 && c->max_gc_interval_when_hard_limited > 0 &&
        c->max_gc_interval_when_soft_limited < c->max_gc_interval_when_hard_limited) {
        *err = "'max_gc_interval_when_soft_limited' should be larger than or equal to "
               "'max_gc_interval_when_hard_limited' (when both are set)";
        return TH_ECONFIG;
    }
    if (c->limit_mib == 0 && c->limit_percentage == 0) {
        *err = "'limit_mib' or 'limit_percentage' must be greater than zero";
        return TH_ECONFIG;
    }
    if (c->limit_percentage > 100 || c->spike_limit_percentage > 100) {
        *err = "'limit_percentage' and 'spike_limit_percentage' must be greater than zero and "
               "less than or equal to hundred";
        return TH_ECONFIG;
    }
    if (c->limit_mib > 0 && c->limit_mib <= c->spike_limit_mib) {
        *err = "'spike_limit_mib' must be smaller than 'limit_mib'";
        return TH_ECONFIG;
    }
    if (c->limit_percentage > 0 && c->limit_percentage <= c->spike_limit_percentage) {
        *err = "'spike_limit_percentage' must be smaller than 'limit_percentage'";
        return TH_ECONFIG;
    }
    return 0;
}
