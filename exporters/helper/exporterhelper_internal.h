/*
 * The exporter helper, internal: the helper's state, the requests it queues and sends, and
 * the functions its files share. Everything below runs on the exporter's own thread unless
 * it says otherwise; the inbox (filled by consume() on the receivers' threads) and the queue
 * size are the only state shared across threads.
 */
#ifndef TH_EXPORTERHELPER_INTERNAL_H
#define TH_EXPORTERHELPER_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "th/exporterhelper.h"
#include "th/file_storage.h"

enum th__eh_sizer {
    TH__EH_REQUESTS,
    TH__EH_ITEMS,
    TH__EH_BYTES,
};

/** One request: protobuf bytes waiting in the queue or being sent. A request split in two
 *  (TH_E2BIG) waits for its halves, which point back at it. */
struct th__eh_req {
    struct th__eh_req *next;   /**< in the queue or the ready list */
    struct th__eh_req *parent; /**< the request this half came from, or NULL */
    uint32_t children;         /**< halves not finished yet */
    int result;                /**< first failure among the halves */
    bool keep;                 /**< a half was left undelivered at shutdown: keep the record */
    uint8_t *pb;               /**< heap; NULL for a persistent record not loaded yet */
    size_t len;
    uint64_t spans;
    uint64_t units;   /**< what it counts against queue_size while queued */
    uint64_t seq;     /**< the persistent record's key; 0 in memory */
    th_batch_t *held; /**< wait_for_result: released (acks settled) when the request is done */
};

/** A FIFO of requests. */
struct th__eh_list {
    struct th__eh_req *head, *tail;
    size_t n;
};

/** One consumer: a request in flight or waiting for its retry timer. */
struct th__eh_slot {
    struct th_exporterhelper *h;
    uv_timer_t timer;
    struct th__eh_req *req; /**< NULL when free */
    bool sending;           /**< a send is outstanding (done not called yet) */
    bool final;             /**< this attempt is the last one (shutdown) */
    int sync_err;           /**< send() failed at once: the result handled by the timer */
    uint64_t first_ns;      /**< first attempt, for max_elapsed_time */
    int64_t interval_ns;    /**< the backoff's current interval */
};

/** A batch handed over by consume(), not yet encoded. */
struct th__eh_in {
    th_batch_t *batch;
    uint64_t units;
};

/** The persistent queue: an LMDB environment in the file_storage directory. */
struct th__eh_pq {
    MDB_env *env;
    MDB_dbi reqs;       /**< big-endian u64 sequence → header + protobuf */
    MDB_dbi dispatched; /**< sequences being sent: possible duplicates after a crash */
    int lock_fd;        /**< flock held on the data file: one process per queue */
    uint64_t next_seq;
    size_t map_size, max_map_size;
    bool fsync;
    /** Requests found in flight when the last run stopped (sent again: may arrive twice). */
    uint64_t redelivered, redelivered_spans;
};

struct th_exporterhelper {
    struct th_component *c;
    struct th_retry_cfg retry;
    struct th_queue_cfg qcfg;
    enum th__eh_sizer sizer;
    bool block;           /**< block_on_overflow or blocking */
    bool wait_for_result; /**< settle acks at delivery */
    const struct th_export_transport_ops *tops;
    void *transport;

    /* shared with consume() */
    pthread_mutex_t lock;
    struct th__eh_in *inbox, *overflow; /**< overflow: block_on_overflow, not reserved */
    size_t n_inbox, cap_inbox, n_overflow, cap_overflow;
    bool stopping;           /**< consume refuses (shutdown called) */
    uint64_t size;           /**< queued units (inbox + queue); atomic */
    uint64_t capacity;       /**< queue_size */
    bool disk_full;          /**< the persistent queue's map is full; atomic */
    uint64_t enqueue_failed; /**< spans refused or lost before being queued; atomic */

    /* the thread */
    pthread_t thread;
    bool thread_running;
    pthread_cond_t started_cond;
    bool start_done;
    int start_result;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t finish_timer; /**< the drain's end, run outside any transport callback */
    bool loop_ready;

    /* exporter-thread state */
    struct th_file_storage_client storage; /**< persistent: where the queue lives */
    bool persistent;
    struct th__eh_pq pq;
    struct th__eh_list queue; /**< waiting to be sent */
    struct th__eh_list ready; /**< halves of split requests: sent before the queue */
    struct th__eh_slot *slots;
    size_t n_slots;
    bool draining;              /**< shutdown: one more attempt each, no retries */
    bool drain_stopped;         /**< persistent: a final attempt failed, the rest stays on disk */
    bool finishing;             /**< drained: finish_timer is due */
    bool finished;              /**< the loop is closing */
    uint64_t undelivered_spans; /**< shutdown: spans dropped (memory) or kept (persistent) */
    uint64_t rng;
    bool shut_down;
};

/* ---- exporterhelper_queue.c: requests, dispatch, results ------------------------------ */

/** Encode and queue what consume() handed over, then send what the consumers can take. */
void th__eh_step(struct th_exporterhelper *h);

/** Shutdown on the loop: stop retrying, give what is queued one more attempt, then close. */
void th__eh_begin_drain(struct th_exporterhelper *h);

/** Free a request's memory (not its halves or parent). */
void th__eh_req_free(struct th__eh_req *r);

/** Add @p r at the tail (or the head) of @p l. */
void th__eh_list_push(struct th__eh_list *l, struct th__eh_req *r, bool front);
/** @return the first request of @p l, removed, or NULL. */
struct th__eh_req *th__eh_list_pop(struct th__eh_list *l);

/** Give queued units back (when a request leaves the queue or was never queued). */
void th__eh_unreserve(struct th_exporterhelper *h, uint64_t units);

/* ---- exporterhelper_retry.c: backoff and splitting ------------------------------------- */

/**
 * The next delay of an exponential backoff (cenkalti/backoff, as the Collector): the current
 * interval randomised by ±randomization_factor, after which the interval grows by
 * multiplier up to max_interval.
 * @return the delay in ns, or -1 when the next attempt would come after max_elapsed_time.
 */
int64_t th__eh_backoff_next(struct th_exporterhelper *h, struct th__eh_slot *s, uint64_t now);

/**
 * Split an encoded ExportTraceServiceRequest into two by spans, keeping the resource and
 * scope of every span.
 * @param[out] a,b the halves (heap, th_free); a holds the first half of the spans in order.
 * @return 0; TH_E2BIG when it holds fewer than two spans; TH_EDECODE; TH_ENOMEM.
 */
int th__eh_split(const uint8_t *pb, size_t len, uint8_t **a, size_t *alen, uint64_t *aspans,
                 uint8_t **b, size_t *blen, uint64_t *bspans);

/* ---- exporterhelper_pqueue.c: the persistent queue -------------------------------------- */

/** Open (or create) the queue's LMDB environment and load what a previous run left into
 *  h->queue. @return 0, TH_EIO, TH_ENOMEM, TH_EEXIST (another process holds it). */
int th__eh_pq_open(struct th_exporterhelper *h);

/** Close the environment (records stay on disk). */
void th__eh_pq_close(struct th_exporterhelper *h);

/**
 * Commit @p n batches as records in one transaction (group commit) and queue them.
 * @return 0 (all queued), or an error for all of them (TH_ERETRY when the map is full).
 */
int th__eh_pq_append(struct th_exporterhelper *h, struct th__eh_in *in, size_t n);

/** Read a record's bytes into @p r->pb. @return 0, TH_ENOENT, TH_ENOMEM, TH_EIO. */
int th__eh_pq_load(struct th_exporterhelper *h, struct th__eh_req *r);

/** Mark records as being sent (one transaction). */
void th__eh_pq_mark(struct th_exporterhelper *h, const uint64_t *seqs, size_t n);

/** Delete a record and its mark: delivered, or failed for good. */
void th__eh_pq_remove(struct th_exporterhelper *h, uint64_t seq);

/** Unmark a record that stays queued (shutdown). */
void th__eh_pq_unmark(struct th_exporterhelper *h, uint64_t seq);

/** Test hook: the largest map the persistent queue grows to (bytes). */
void th__eh_set_max_map_size(th_exporterhelper_t *h, size_t bytes);

/** Test hook: the requests found in flight from the last run, and their spans. */
void th__eh_redelivered(const th_exporterhelper_t *h, uint64_t *requests, uint64_t *spans);

#endif
