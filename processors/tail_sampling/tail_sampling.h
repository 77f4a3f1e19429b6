/*
 * The tail sampling processor, shared between its parts: tail_sampling_policy*.c (the
 * policies: their config, evaluation and the final-decision rules) and tail_sampling.c /
 * tail_sampling_buffer.c (the component: grouping spans by trace, timing decisions, the
 * decision caches, forwarding sampled traces). Policies see a buffered trace only through
 * struct th_ts_trace, so they can be tested on traces built by hand.
 */
#ifndef TH_TAIL_SAMPLING_H
#define TH_TAIL_SAMPLING_H

#include "th/batch.h"
#include "th/component.h"
#include "th/config.h"

/* ---- A buffered trace, as the policies read it ----------------------------------------- */

/** One buffered span: pointers into the batch it arrived in (which the buffer keeps). */
struct th_ts_span {
    const th_otlp_span_t *span;
    const th_otlp_scope_spans_t *ss;
    const th_otlp_resource_spans_t *rs;
    th_batch_t *batch;
};

#define TH_TS_CHUNK 7

/** Spans are kept in chunks, newest chunk last. */
struct th_ts_chunk {
    struct th_ts_chunk *next;
    uint32_t n;
    struct th_ts_span v[TH_TS_CHUNK];
};

/** What the buffer knows of a trace when it is decided. */
struct th_ts_trace {
    uint8_t trace_id[16];
    uint64_t span_count;
    uint64_t bytes;        /**< protobuf size of its spans (maximum_trace_size_bytes,
                                bytes_limiting) */
    uint64_t min_start_ns; /**< UINT64_MAX when no span had a start time */
    uint64_t max_end_ns;   /**< 0 when no span had an end time */
    const struct th_ts_chunk *first;
};

/* ---- Decisions --------------------------------------------------------------------------- */

enum th_ts_decision {
    TH_TS_UNSPECIFIED = 0,
    TH_TS_PENDING,
    TH_TS_SAMPLED,
    TH_TS_NOT_SAMPLED,
    TH_TS_DROPPED,
    TH_TS_INVERT_SAMPLED,
    TH_TS_INVERT_NOT_SAMPLED,
    TH_TS_ERROR,
};

/** @return "sampled", "not_sampled", "dropped", ... as the Collector's metrics spell it. */
const char *th_ts_decision_name(enum th_ts_decision d);

/* ---- The policies ------------------------------------------------------------------------ */

typedef struct th_ts_policies th_ts_policies_t;

/** Per top-level policy counters (telemetry: count_traces_sampled by policy and decision). */
struct th_ts_policy_stats {
    const char *name; /**< "<processor name>.<policy name>", or the policy name alone */
    uint64_t sampled, not_sampled, dropped; /**< traces, by this policy's own result */
    uint64_t errors;                        /**< evaluation errors */
    uint64_t executions, execution_ns;      /**< time spent evaluating */
};

/** The outcome for one trace. */
struct th_ts_verdict {
    enum th_ts_decision final; /**< TH_TS_SAMPLED, TH_TS_NOT_SAMPLED or TH_TS_DROPPED */
    int policy;                /**< index of the first top-level policy that sampled, or -1 */
};

/**
 * Build the policies from the `policies` list of the config (a SEQ node), checking every key
 * with the Collector's names and messages ("policy name cannot be empty", "duplicate policy
 * name", "unknown sampling policy type").
 * @param[in] processor_name the part after '/' of the processor id, or "" (metric labels).
 * @param[in] path key path for messages, e.g. "processors::tail_sampling::policies".
 * @return 0, TH_ECONFIG with @p err set, TH_ENOMEM.
 */
int th_ts_policies_create(const th_node_t *policies, const char *processor_name, const char *path,
                          bool sample_on_first_match, th_ts_policies_t **out, char *err,
                          size_t errlen);

/**
 * Decide one trace: drop policies first, then the others in config order; the Collector's
 * final-decision rules; stateful policies (rate_limiting, bytes_limiting, composite) spend
 * their budgets at @p now_ns (wall clock).
 */
void th_ts_policies_decide(th_ts_policies_t *p, const struct th_ts_trace *t, uint64_t now_ns,
                           struct th_ts_verdict *out);

/** The per-policy counters, in config order. */
const struct th_ts_policy_stats *th_ts_policies_stats(const th_ts_policies_t *p, size_t *n);

void th_ts_policies_destroy(th_ts_policies_t *p);

/* ---- The component's config ------------------------------------------------------------ */

struct th_tail_sampling_cfg {
    int64_t decision_wait_ns;                     /**< 30s */
    int64_t decision_wait_after_root_received_ns; /**< 0 = off */
    int64_t num_traces;                           /**< 50000 */
    int64_t expected_new_traces_per_sec;          /**< sizing hint */
    bool block_on_overflow;
    bool sample_on_first_match;
    bool drop_pending_traces_on_shutdown;
    int64_t maximum_trace_size_bytes; /**< 0 = off */
    struct {
        int64_t sampled_cache_size;
        int64_t non_sampled_cache_size;
    } decision_cache;
    int64_t max_buffer_bytes;      /**< Tracehouse: cap on the bytes of buffered batches */
    const char *sampling_strategy; /**< trace-complete (span-ingest refused for now) */
    const char *tail_storage;      /**< the Collector's extension id; must be "" (refused) */
    const th_node_t *policies;     /**< decoded by th_ts_policies_create */
};

extern const struct th_cfg_field th_tail_sampling_config_fields[];
int th_tail_sampling_config_check(const void *cfg, const char **err);

/* ---- The component ------------------------------------------------------------------- */

/** The ops table registered as processor "tail_sampling" (tail_sampling.c). */
extern const struct th_component_ops th_processor_tail_sampling_ops;

/**
 * Counters of one tail_sampling instance, with the meanings of the Collector's
 * otelcol_processor_tail_sampling_* metrics (otelcol-config.md §13.7) where one exists.
 */
struct th_tail_sampling_stats {
    /* global_count_traces_sampled, by decision */
    uint64_t traces_sampled;     /**< decision "sampled" */
    uint64_t traces_not_sampled; /**< decision "not_sampled" */
    uint64_t traces_dropped;     /**< decision "dropped" (a drop policy matched) */
    uint64_t spans_sampled;      /**< spans of sampled traces handed downstream */
    uint64_t spans_not_sampled;  /**< spans of not-sampled or dropped traces released */

    uint64_t traces_on_memory;           /**< gauge: traces buffered, waiting for a decision */
    uint64_t buffer_bytes;               /**< gauge: bytes of batches held (pending + retry) */
    uint64_t new_trace_id_received;      /**< traces seen for the first time */
    uint64_t trace_dropped_too_early;    /**< traces lost before a decision (spans dropped) */
    uint64_t traces_decided_early;       /**< decided before decision_wait: num_traces or
                                              max_buffer_bytes reached (the Collector drops
                                              these; Tracehouse decides them with what it has) */
    uint64_t traces_dropped_too_large;   /**< decided not sampled at maximum_trace_size_bytes */
    uint64_t late_spans;                 /**< spans that arrived after their trace's decision */
    uint64_t early_releases_sampled;     /**< late spans forwarded from the decision cache */
    uint64_t early_releases_not_sampled; /**< late spans dropped from the decision cache */
    uint64_t policy_evaluation_errors;   /**< sum of the policies' evaluation errors */

    uint64_t decisions;               /**< traces decided */
    uint64_t decision_latency_ns;     /**< sum over decisions of (decision - first span) */
    uint64_t decision_latency_max_ns; /**< the largest of those */
    uint64_t ticks;                   /**< timer ticks that decided at least one trace */

    uint64_t batches_refused; /**< batches refused with TH_ERETRY (backpressure) */
    uint64_t outputs_sent;    /**< output batches the next consumer took */
    uint64_t outputs_refused; /**< refusals by the next consumer (each retried later) */
    uint64_t spans_failed;    /**< sampled spans lost: permanent refusal, or still refused
                                   at shutdown (each loss is logged) */

    const struct th_ts_policy_stats *policies; /**< per policy, in config order */
    size_t n_policies;
};

/**
 * The counters of a tail_sampling instance, for the metrics endpoint.
 * @param[in] c an instance of th_processor_tail_sampling_ops.
 * @return the counters, updated in place; valid until the instance is destroyed.
 * @note Read them on the loop thread the instance runs on (they are plain integers).
 */
const struct th_tail_sampling_stats *th_tail_sampling_stats(const struct th_component *c);

#endif
