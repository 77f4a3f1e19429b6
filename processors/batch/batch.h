/*
 * The batch processor: gathers the batches of many requests into batches of about
 * send_batch_size spans and hands them on when they are full or when timeout expires, as the
 * OpenTelemetry Collector's batch processor does. Merging copies no span: a merged batch is a
 * small arena holding a new ExportTraceServiceRequest whose resource spans point into the
 * source batches, which it keeps alive (one reference each, released by an arena cleanup).
 * Splitting to send_batch_max_size works at span granularity with new ResourceSpans and
 * ScopeSpans structs that point at slices of the sources' span arrays.
 *
 * Acknowledgements: when the consumer behind us is durable (TH_CAP_DURABLE: a store, an
 * exporter that answers once delivered), a merged batch carries the acks of every source it
 * holds spans of, so a sender is answered only when every span of its request has been
 * released downstream, and what is pending is sent at the end of each loop iteration in which
 * batches arrived so that senders do not wait for the timer. When the downstream consumer
 * refuses a merged batch, the batch is failed with that error and every sender in it is
 * answered with it (a retryable error: HTTP 503) and retries, where the Collector would drop
 * the data and log. When the consumer behind us is not durable (an in-memory sending queue
 * settles at enqueue anyway), the acks are settled as each batch is queued, as the Collector
 * answers at once, and the size trigger and the timer batch as in the Collector.
 *
 * Threads: consume, the timer, the flush handle and shutdown all run on the host's loop
 * thread (host->loop).
 */
#ifndef TH_PROCESSOR_BATCH_H
#define TH_PROCESSOR_BATCH_H

#include "th/component.h"

/** The batch processor's config, filled by its field table or built directly by tests. */
struct th_batch_processor_cfg {
    /** Spans that trigger a send (8192); 0: send every request at once, split by max. */
    int64_t send_batch_size;
    /** Nanoseconds after which whatever is pending is sent (200ms); 0: no timer, every request
     *  is sent at once (split by send_batch_max_size). */
    int64_t timeout;
    /** The most spans in one sent batch; 0: no limit. If >0 it must be >= send_batch_size. */
    int64_t send_batch_max_size;
    /** Client metadata keys to batch by. Accepted, checked for duplicates; batching by
     *  metadata is not supported yet (receivers do not pass client metadata), so everything
     *  is batched together and a warning is logged when the list is not empty. */
    th_strlist_t metadata_keys;
    /** The most distinct metadata combinations (1000); accepted, no effect yet. */
    int64_t metadata_cardinality_limit;
};

/** The ops table registered as processor "batch". */
extern const struct th_component_ops th_processor_batch_ops;

/**
 * Check the rules across fields, with the Collector's messages:
 * `send_batch_max_size must be greater or equal to send_batch_size`,
 * `duplicate entry in metadata_keys: "<key>" (case-insensitive)`,
 * `timeout must be greater or equal to 0`.
 * @param[in] cfg a struct th_batch_processor_cfg.
 * @param[out] err the message on failure; it may point into a static buffer that the next
 *             failing call overwrites (config checks run on one thread, at start-up).
 * @return 0 or TH_ECONFIG.
 */
int th__batch_processor_config_check(const void *cfg, const char **err);

/* ---- The pending queue (batch_merge.c) ----------------------------------------------- */

/** A source batch waiting to be sent, and how many of its spans are still to be taken. */
struct th__batch_source {
    th_batch_t *b; /**< one reference, the queue's */
    size_t spans;  /**< spans of b not yet taken */
};

/**
 * The spans waiting to be sent: source batches in arrival order (a ring) and a cursor at the
 * next span of the oldest one. Taking spans never changes a source batch's structs, since a
 * source may be shared read-only with other pipelines.
 */
struct th__batch_queue {
    struct th__batch_source *v; /**< ring of cap entries */
    size_t head, len, cap;
    size_t rs, ss, span; /**< cursor in the oldest source: resource, scope and span index */
    size_t spans;        /**< spans pending in total */
    /** Resources and scopes of a resource spans split across sent batches are copied for the
     *  parts after the first, so a consumer that changes them (TH_CAP_MUTATES downstream)
     *  never changes them twice. */
    bool copy_split_headers;
};

/** Initialise an empty queue. */
void th__batch_queue_init(struct th__batch_queue *q, bool copy_split_headers);

/**
 * Append a source batch (its spans are counted here, not taken from span_count).
 * @param[in] b the batch; the queue takes the caller's reference on success.
 * @return 0; TH_ENOMEM (the batch is still the caller's).
 * @note A batch without spans is not queued: it is released at once (its acks settle).
 */
int th__batch_queue_push(struct th__batch_queue *q, th_batch_t *b);

/**
 * Take up to @p max spans (0: all) from the front of the queue as one batch.
 *
 * When the spans to take are exactly the oldest source batch, that batch itself is returned
 * (no wrapper). Otherwise a new batch is built whose request points into the sources; it
 * holds a reference on each source it has spans of and carries their acks.
 * @param[out] out the batch to send (one reference, the caller's).
 * @return 0; TH_EINVAL when the queue is empty; TH_ENOMEM when memory is short. After
 *         TH_ENOMEM the queue may have advanced: spans already placed in the failed batch
 *         were failed with TH_ENOMEM (their senders get a retryable error); the rest stay.
 */
int th__batch_queue_take(struct th__batch_queue *q, size_t max, th_batch_t **out);

/**
 * Remove the oldest source batch whole, failing it with @p err: its senders get that error.
 * For when no batch can be built (memory is short) and data must not be left behind.
 * @return the spans dropped from the queue.
 */
size_t th__batch_queue_fail_head(struct th__batch_queue *q, int err);

/** Fail every pending source with @p err, release them and free the ring. */
void th__batch_queue_deinit(struct th__batch_queue *q, int err);

/* ---- The processor (batch_send.c) -------------------------------------------------- */

/** The Collector's bucket bounds of otelcol_processor_batch_batch_send_size. */
#define TH_BATCH_SEND_SIZE_BOUNDS 22

/** @return the TH_BATCH_SEND_SIZE_BOUNDS upper bounds (spans), ascending; a static array. */
static inline const double *th_batch_send_size_bounds(void)
{
    static const double b[TH_BATCH_SEND_SIZE_BOUNDS] = {
        10,   25,   50,   75,   100,  250,  500,   750,   1000,  2000,  3000,
        4000, 5000, 6000, 7000, 8000, 9000, 10000, 20000, 30000, 50000, 100000};
    return b;
}

/** Counters of one instance (the Collector's otelcol_processor_batch_* metrics). */
struct th_batch_processor_stats {
    uint64_t batch_size_trigger_send; /**< batches sent because send_batch_size was reached */
    uint64_t timeout_trigger_send;    /**< batches sent by the timer or at shutdown */
    uint64_t loop_trigger_send;       /**< batches sent at the end of a loop iteration (durable) */
    uint64_t batches_sent;            /**< batches handed downstream */
    uint64_t spans_sent;              /**< spans in them */
    uint64_t batches_refused;         /**< batches the downstream consumer refused */
    uint64_t spans_refused;           /**< spans in them (their senders were failed) */
    uint64_t spans_failed;            /**< spans failed because memory was short */
    /** Spans per sent batch (otelcol_processor_batch_batch_send_size): per bucket of
     *  th_batch_send_size_bounds(), the last one above them all. */
    uint64_t send_size[TH_BATCH_SEND_SIZE_BOUNDS + 1];
    uint64_t send_size_sum; /**< spans in every batch counted in send_size */
};

/** The instance (batch.c allocates it through instance_size). */
struct th_batch_processor {
    struct th_component base;
    uint64_t send_batch_size;
    uint64_t send_batch_max_size; /**< 0: no limit */
    uint64_t timeout_ms;          /**< 0: no timer; at least 1 when the timeout is > 0 */
    struct th__batch_queue q;
    uv_timer_t *timer; /**< on host->loop once started; freed by its close callback */
    /** Durable downstream only: sends what is pending once per loop iteration; active only
     *  while spans are pending, so an idle collector does not spin. Freed by its close
     *  callback. */
    uv_idle_t *flush;
    bool durable; /**< the next consumer is TH_CAP_DURABLE: hold acks until it settles */
    bool stopped; /**< shutdown has run */
    struct th_batch_processor_stats stats;
    uint64_t last_refusal_log_ns; /**< rate limit of the refusal warning */
    uint64_t refusals_not_logged; /**< refusals since the last warning */
};

/**
 * Take a batch: queue it, then send while the size trigger holds (or at once without a
 * timer), splitting by send_batch_max_size. Not durable downstream: the batch's acks are
 * settled (successfully) once it is queued, unless another holder shares the batch (a
 * fan-out), whose acks are not ours to settle. Durable downstream: the flush handle is
 * started when spans are left pending.
 * @return 0 when everything was handed on or the acks were settled, TH_HELD when spans (and
 *         their acks) are left pending,
 *         TH_ESHUTDOWN after shutdown, TH_ENOMEM (the batch is released; its senders get a
 *         retryable error). What downstream does with sent batches reaches the senders
 *         through the acks, not through this result.
 */
int th__batch_processor_consume(struct th_batch_processor *p, th_batch_t *b);

/**
 * Start the timer on @p loop (when timeout > 0) and, with a durable next consumer, create the
 * per-iteration flush handle (started only while spans are pending).
 * @return 0, TH_ENOMEM, or a libuv error as TH_EIO.
 */
int th__batch_processor_start(struct th_batch_processor *p, uv_loop_t *loop);

/** Stop the timer and the flush handle and send everything pending. Idempotent; safe
 *  without start. */
int th__batch_processor_shutdown(struct th_batch_processor *p);

/** Free what is left (the timer and flush handle are closed; pending spans are failed). */
void th__batch_processor_deinit(struct th_batch_processor *p);

#endif
