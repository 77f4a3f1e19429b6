/*
 * The exporter helper: what every network exporter shares, as the Collector's exporterhelper
 * does it: `sending_queue` (in memory, or persistent on disk through a `file_storage`
 * extension), `retry_on_failure` with exponential backoff that honours the server's
 * Retry-After / RetryInfo, splitting a batch the server found too large, and the exporter's
 * own thread and event loop. A transport (otlp_http over libcurl, otlp_grpc over nghttp2)
 * only sends one encoded request at a time and says how it went.
 *
 * Flow: consume() runs on the caller's thread and hands the batch to the exporter thread,
 * which encodes it as a protobuf ExportTraceServiceRequest and enqueues it (for the
 * persistent queue: commits it to LMDB) and only then settles the batch's acks, so a sender
 * is answered once its spans are queued (persistent queue: durable). num_consumers requests
 * are in flight at once; each is retried until delivered, refused permanently, or out of
 * retry time.
 */
#ifndef TH_EXPORTERHELPER_H
#define TH_EXPORTERHELPER_H

#include <uv.h>

#include "th/batch.h"
#include "th/common.h"
#include "th/component.h"
#include "th/config.h"

/* ---- The transport: one request at a time, asynchronously, on the exporter's loop ---- */

/** How one send went. */
struct th_export_result {
    /** 0 delivered; TH_ERETRY retryable (connection refused or reset, timeout, HTTP
     *  429/502/503/504, the retryable gRPC codes); TH_EPERM refused for good (other 4xx,
     *  INVALID_ARGUMENT, a 2xx body that does not parse); TH_E2BIG the server found the
     *  request too large and gave no retry delay (HTTP 413, RESOURCE_EXHAUSTED without
     *  RetryInfo): the helper splits it and sends the halves; TH_ESHUTDOWN cancelled. */
    int err;
    int64_t retry_after_ns;  /**< Retry-After / RetryInfo delay, or -1 when none was given */
    uint64_t rejected_spans; /**< partial success: spans the server refused for good */
    char message[256];       /**< what the server or the connection said, for the log */
};

/** Called exactly once per send, on the exporter's loop, never from inside send(). */
typedef void (*th_export_done_cb)(void *arg, const struct th_export_result *r);

struct th_export_transport_ops {
    /** Start on the exporter's thread, once its loop exists. @return 0 or an error. */
    int (*start)(void *self, uv_loop_t *loop);
    /**
     * Send one ExportTraceServiceRequest. @p pb stays valid until @p done is called. The
     * transport applies its own per-attempt timeout and encoding (JSON, compression).
     * @return 0 (done will be called), or an error (done will not be called).
     */
    int (*send)(void *self, const uint8_t *pb, size_t len, th_export_done_cb done, void *arg);
    /** Cancel what is in flight (each done gets TH_ESHUTDOWN) and close connections; the
     *  loop then runs until the handles are closed. */
    void (*stop)(void *self);
    /** Free the transport (after stop and after the loop has closed its handles). */
    void (*destroy)(void *self);
};

/* ---- Config: the Collector's keys ----------------------------------------------------- */

/** `retry_on_failure` */
struct th_retry_cfg {
    bool enabled;                /**< true */
    int64_t initial_interval_ns; /**< 5s */
    int64_t max_interval_ns;     /**< 30s */
    int64_t max_elapsed_time_ns; /**< 5m; 0 = forever */
    double multiplier;           /**< 1.5 */
    double randomization_factor; /**< 0.5 */
};

/** `sending_queue` */
struct th_queue_cfg {
    bool enabled;           /**< true (the Collector's Some flavor) */
    int64_t num_consumers;  /**< 10 */
    int64_t queue_size;     /**< 1000, in units of sizer */
    const char *sizer;      /**< requests | items | bytes */
    bool block_on_overflow; /**< false: a full queue refuses (the sender retries) */
    bool blocking;          /**< the older name of block_on_overflow */
    bool wait_for_result;   /**< settle acks only once delivered */
    const char *storage;    /**< a file_storage extension id: the persistent queue */
    const th_node_t *batch; /**< accepted and unused (batching in the queue is not done) */
};

/** Field tables for the two sections; an exporter puts them in its own table as SECTION /
 *  OPTIONAL rows (sending_queue is OPTIONAL with TH_CFG_F_SOME, aux = its enabled flag). */
extern const struct th_cfg_field th_retry_cfg_fields[];
extern const struct th_cfg_field th_queue_cfg_fields[];

/** Check retry and queue rules across fields. @return 0 or TH_ECONFIG with *err set. */
int th_exporterhelper_config_check(const struct th_retry_cfg *retry,
                                   const struct th_queue_cfg *queue, const char **err);

/* ---- The helper ------------------------------------------------------------------------ */

typedef struct th_exporterhelper th_exporterhelper_t;

/**
 * Create the helper for exporter @p c (for logs, stats and the persistent queue's name).
 * @param[in] transport,tops the transport; the helper owns it from here on (destroy frees it;
 *            when create fails it is destroyed before create returns).
 * @return 0, TH_ENOMEM.
 */
int th_exporterhelper_create(struct th_component *c, const struct th_retry_cfg *retry,
                             const struct th_queue_cfg *queue,
                             const struct th_export_transport_ops *tops, void *transport,
                             th_exporterhelper_t **out);

/** Open the queue (the storage extension through @p host), start the thread and its loop. */
int th_exporterhelper_start(th_exporterhelper_t *h, struct th_host *host);

/** Take a batch (struct th_consumer's contract): TH_HELD, or TH_ERETRY when the queue is
 *  full and does not block, TH_ESHUTDOWN after shutdown. */
int th_exporterhelper_consume(th_exporterhelper_t *h, th_batch_t *batch);

/** Stop taking batches, stop retrying, drain what the queue holds with one more attempt each
 *  (the persistent queue keeps what is not delivered for the next start), stop the thread. */
int th_exporterhelper_shutdown(th_exporterhelper_t *h);

/** Free everything (the transport too). NULL is allowed. */
void th_exporterhelper_destroy(th_exporterhelper_t *h);

/**
 * The queue's fill level, for otelcol_exporter_queue_size / _capacity. Safe from any thread.
 * @param[out] size units of the sizer queued now (waiting to be sent: not counting requests
 *             in flight or waiting for a retry); NULL allowed.
 * @param[out] capacity queue_size; NULL allowed.
 */
void th_exporterhelper_queue_stats(const th_exporterhelper_t *h, uint64_t *size,
                                   uint64_t *capacity);

/** @return whether sending_queue is enabled (without it there are no queue metrics, as in
 *  the Collector). */
bool th_exporterhelper_queue_enabled(const th_exporterhelper_t *h);

/**
 * Spans that could not be queued (otelcol_exporter_enqueue_failed_spans): refused because the
 * queue was full, or lost before they were queued (the persistent queue's disk was full).
 * Safe from any thread. Sent and failed spans are counted in the component's stats (`sent`:
 * delivered; `failed`: dropped after retries, refused for good, or lost at shutdown).
 */
uint64_t th_exporterhelper_enqueue_failed(const th_exporterhelper_t *h);

#endif
