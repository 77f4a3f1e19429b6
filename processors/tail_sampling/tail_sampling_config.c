/*
 * The tail sampling processor's config: the Collector's keys (otelcol-config.md §13.1) with
 * their defaults, Tracehouse's max_buffer_bytes, and the rules across fields. The check
 * builds the policies once and throws them away, so `tracehouse validate` reports a policy
 * error with its key path exactly as starting the collector would.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "processors/tail_sampling/tail_sampling.h"

#define CFG_OFF(f) offsetof(struct th_tail_sampling_cfg, f)
/* The Collector's counts are uint64 or int; keep them where int64 arithmetic is safe. */
#define COUNT_MAX 1e15
/* The decision caches index ring positions with 32-bit integers. */
#define CACHE_MAX 2147483647.0

static const char *const strategies[] = {"trace-complete", "span-ingest", NULL};

static const struct th_cfg_field cache_fields[] = {
    {
        .name = "sampled_cache_size",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = offsetof(struct th_tail_sampling_cfg, decision_cache.sampled_cache_size),
        .min = 0,
        .max = CACHE_MAX,
        .desc = "Sampled trace ids remembered after their decision, so late spans are "
                "forwarded (0: the last num_traces decisions are remembered)",
    },
    {
        .name = "non_sampled_cache_size",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = offsetof(struct th_tail_sampling_cfg, decision_cache.non_sampled_cache_size),
        .min = 0,
        .max = CACHE_MAX,
        .desc = "Not-sampled trace ids remembered after their decision, so late spans are "
                "dropped (0: the last num_traces decisions are remembered)",
    },
    {.name = NULL},
};

const struct th_cfg_field th_tail_sampling_config_fields[] = {
    {
        .name = "decision_wait",
        .type = TH_CFG_DURATION,
        .def = "30s",
        .offset = CFG_OFF(decision_wait_ns),
        .min = 0,
        .max = INFINITY,
        .desc = "Time from the first span of a trace to its decision (later spans do not "
                "extend it)",
    },
    {
        .name = "decision_wait_after_root_received",
        .type = TH_CFG_DURATION,
        .def = "0s",
        .offset = CFG_OFF(decision_wait_after_root_received_ns),
        .min = 0,
        .max = INFINITY,
        .desc = "Decide a trace this long after its root span arrives, when that is earlier "
                "than decision_wait (0: off)",
    },
    {
        .name = "num_traces",
        .type = TH_CFG_INT,
        .def = "50000",
        .offset = CFG_OFF(num_traces),
        .min = 1,
        .max = 1e9,
        .desc = "Most traces pending at once; past it the oldest is decided early with the "
                "spans it has (or the batch is refused with block_on_overflow)",
    },
    {
        .name = "expected_new_traces_per_sec",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = CFG_OFF(expected_new_traces_per_sec),
        .min = 0,
        .max = COUNT_MAX,
        .desc = "Sizing hint: the trace table starts large enough for one decision_wait of "
                "this rate",
    },
    {
        .name = "block_on_overflow",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = CFG_OFF(block_on_overflow),
        .desc = "With num_traces pending, refuse new traces (the sender retries) instead of "
                "deciding the oldest early",
    },
    {
        .name = "sample_on_first_match",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = CFG_OFF(sample_on_first_match),
        .desc = "Stop evaluating policies at the first one that samples",
    },
    {
        .name = "drop_pending_traces_on_shutdown",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = CFG_OFF(drop_pending_traces_on_shutdown),
        .desc = "At shutdown drop pending traces instead of deciding them with the spans they "
                "have",
    },
    {
        .name = "maximum_trace_size_bytes",
        .type = TH_CFG_SIZE,
        .def = "0",
        .offset = CFG_OFF(maximum_trace_size_bytes),
        .min = 0,
        .max = INFINITY,
        .desc = "A pending trace whose spans pass this many protobuf bytes is decided not "
                "sampled at once (0: off)",
    },
    {
        .name = "decision_cache",
        .type = TH_CFG_SECTION,
        .offset = 0,
        .sub = cache_fields,
        .desc = "How many decided trace ids are remembered so that late spans follow the "
                "decision",
    },
    {
        .name = "sampling_strategy",
        .type = TH_CFG_ENUM,
        .def = "trace-complete",
        .offset = CFG_OFF(sampling_strategy),
        .choices = strategies,
        .desc = "trace-complete: buffer whole traces and decide after decision_wait "
                "(span-ingest is not supported)",
    },
    {
        .name = "tail_storage",
        .type = TH_CFG_STRING,
        .def = "",
        .offset = CFG_OFF(tail_storage),
        .desc = "An extension that stores pending spans (not supported: spans are buffered in "
                "memory up to max_buffer_bytes; must be empty)",
    },
    {
        .name = "max_buffer_bytes",
        .type = TH_CFG_SIZE,
        .def = "512MiB",
        .offset = CFG_OFF(max_buffer_bytes),
        .min = 1,
        .max = INFINITY,
        .desc = "Tracehouse: most bytes of received batches held for pending traces; past it "
                "the oldest traces are decided early, or batches are refused (retry)",
    },
    {
        .name = "policies",
        .type = TH_CFG_NODE,
        .offset = CFG_OFF(policies),
        .flags = TH_CFG_F_REQUIRED,
        .desc = "The sampling policies, as the Collector's: [{name, type, <type>: {...}}]",
    },
    {.name = NULL},
};

int th_tail_sampling_config_check(const void *cfg_, const char **err)
{
    static _Thread_local char msg[1024];
    const struct th_tail_sampling_cfg *cfg = cfg_;
    if (cfg->sampling_strategy && !strcmp(cfg->sampling_strategy, "span-ingest")) {
        *err = "::sampling_strategy: span-ingest is not supported yet; use trace-complete (the "
               "default)";
        return TH_ECONFIG;
    }
    if (cfg->tail_storage && cfg->tail_storage[0]) {
        *err = "::tail_storage: not supported: pending spans are buffered in memory (bounded "
               "by max_buffer_bytes and num_traces); remove the key";
        return TH_ECONFIG;
    }
    /* The policies are built at init from this same node; building them here reports their
     * errors at config time with their key path, e.g. "::policies[2]::latency: ...". */
    th_ts_policies_t *p = NULL;
    char why[900];
    why[0] = '\0';
    int ret = th_ts_policies_create(cfg->policies, "", "::policies", cfg->sample_on_first_match, &p,
                                    why, sizeof(why));
    th_ts_policies_destroy(p);
    if (ret != 0) {
        snprintf(msg, sizeof(msg), "%s", why[0] ? why : th_strerror(ret));
        *err = msg;
        return ret == TH_ENOMEM ? TH_ENOMEM : TH_ECONFIG;
    }
    return 0;
}
