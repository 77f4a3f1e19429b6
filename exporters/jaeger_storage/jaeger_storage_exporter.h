/*
 * The jaeger_storage_exporter: batches go to one writer thread that commits them to a span
 * store (group commit), so the receiver's event loop never waits on the store. Acks are
 * settled after the commit, so a 200 to the sender means the spans are durable.
 */
#ifndef TH_EXPORTER_JAEGER_STORAGE_H
#define TH_EXPORTER_JAEGER_STORAGE_H

#include <pthread.h>

#include "th/component.h"
#include "th/store.h"

/** The `queue` section, in the Collector's shape. */
struct th_jse_queue_cfg {
    bool enabled;
    int64_t queue_size;    /**< batches waiting for the writer at most */
    int64_t num_consumers; /**< accepted; the store has one writer */
    bool blocking;         /**< accepted; Tracehouse never blocks the event loop */
    const char *sizer;
};

/** Config: Jaeger v2's storage exporter keys, and the queue in the Collector's shape. */
struct th_jaeger_storage_exporter_cfg {
    const char *trace_storage; /**< name of a jaeger_storage backend */
    struct th_jse_queue_cfg queue;
    int64_t max_queue_bytes;     /**< memory of waiting batches at most */
    int64_t max_batches_per_txn; /**< group commit: batches per transaction at most */
    int64_t retention_interval;  /**< ns between retention passes */
    int64_t commit_delay;        /**< ns a small group waits for more batches; 0: none */
    const th_node_t *retry_on_failure;
};

/** The queue and its writer thread. */
struct th_jse_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    th_batch_t **ring;
    size_t *ring_bytes; /* what each queued batch counted against max_bytes when pushed */
    size_t cap, head, count;
    size_t bytes;
    bool stopping;
    bool running;
    th_store_t *store;
    struct th_component *owner;
    size_t max_per_txn;
    size_t max_bytes;
    uint64_t retention_interval_ns;
    uint64_t last_retention_ns;
    uint64_t enqueue_failed;  /* spans refused because the queue was full (atomic) */
    uint64_t commit_delay_ns; /* how long a small group waits for company before its commit */
    /* the writer thread's view of the store's health, for one log line per change */
    bool failing;
    uint64_t failed_commits;
    uint64_t fail_since_ns, last_fail_log_ns;
};

struct th_jaeger_storage_exporter {
    struct th_component base;
    const struct th_jaeger_storage_exporter_cfg *cfg;
    struct th_jse_writer writer;
};

/**
 * Set up the queue (no thread yet).
 * @return 0 or TH_ENOMEM.
 */
int th__jse_writer_init(struct th_jse_writer *w, struct th_component *owner, size_t cap,
                        size_t max_bytes, size_t max_per_txn, uint64_t retention_interval_ns);

/**
 * Let a small group wait up to @p ns for more batches before its commit (0, the default
 * after init: commit at once). Call before start.
 */
void th__jse_writer_set_commit_delay(struct th_jse_writer *w, uint64_t ns);

/** Start the writer thread on @p store. @return 0 or TH_EIO. */
int th__jse_writer_start(struct th_jse_writer *w, th_store_t *store);

/**
 * Queue a batch for the writer.
 * @note Ownership passes in every case; on failure the batch is released.
 * @return 0, or TH_ERETRY when the queue is full (the sender should retry).
 */
int th__jse_writer_push(struct th_jse_writer *w, th_batch_t *b);

/** Write what is queued, stop and join the thread. Idempotent. */
void th__jse_writer_stop(struct th_jse_writer *w);

/** Free the queue (releasing anything left, with a failure). */
void th__jse_writer_deinit(struct th_jse_writer *w);

/**
 * The queue's state for the internal metrics (otelcol_exporter_queue_size and _capacity,
 * in batches, and otelcol_exporter_enqueue_failed_spans). Safe from any thread.
 * @param[in] c an instance of th_exporter_jaeger_storage_ops.
 * @param[out] size batches waiting for the writer; may be NULL.
 * @param[out] capacity the most that may wait; may be NULL.
 * @param[out] enqueue_failed spans refused because the queue was full; may be NULL.
 */
void th_jaeger_storage_exporter_queue_stats(const struct th_component *c, uint64_t *size,
                                            uint64_t *capacity, uint64_t *enqueue_failed);

#endif
