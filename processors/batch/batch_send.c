/*
 * The batch processor's triggers, following the Collector's shard loop: after each request is
 * queued, batches are sent while send_batch_size spans are pending (or at once when there is
 * no timer) and the timer is restarted; when the timer fires, whatever is pending is sent;
 * shutdown sends everything left. Every sent batch is held until the downstream consumer
 * answers, so a refusal can fail it and reach each of its senders through their acks.
 *
 * Acks: with a durable next consumer (TH_CAP_DURABLE) they travel with the merged batches, and
 * an idle handle sends what is pending once per loop iteration, so a sender waits for its
 * data to be stored, not for the timer: a batch is whatever arrived in one iteration (or
 * send_batch_size spans). Otherwise they are settled as each batch is queued, as the
 * Collector answers at enqueue: the consumer behind us would settle them at its own enqueue
 * anyway, so holding them would only slow senders with few requests in flight.
 */
#include "processors/batch/batch.h"
#include "th/log.h"

/* Refusals from downstream are logged at most this often (each one reaches its senders when
 * they are still waiting). */
#define REFUSAL_LOG_INTERVAL_NS 1000000000ull

static void log_refusal(struct th_batch_processor *p, int err, size_t spans, bool acked)
{
    uint64_t now = th_now_mono_ns();
    if (p->last_refusal_log_ns && now - p->last_refusal_log_ns < REFUSAL_LOG_INTERVAL_NS) {
        p->refusals_not_logged++;
        return;
    }
    /* Senders answered at enqueue (nothing durable behind us) cannot be told any more: the
     * data is lost, as in the Collector, and the line says so. */
    th_log_warn(&p->base,
                "the next consumer refused a batch of %zu spans (%s); %s (%llu more refusals "
                "since the last line)",
                spans, th_strerror(err),
                acked ? "dropped: its senders were answered at enqueue"
                      : "its senders are told to retry",
                (unsigned long long)p->refusals_not_logged);
    p->last_refusal_log_ns = now;
    p->refusals_not_logged = 0;
}

/* What sent a batch (each has its counter). */
enum send_trigger { SEND_SIZE, SEND_TIMEOUT, SEND_LOOP };

/* Send one batch of up to send_batch_max_size spans from the front of the queue. */
static void send_one(struct th_batch_processor *p, enum send_trigger why)
{
    th_batch_t *out = NULL;
    size_t before = p->q.spans;
    int ret = th__batch_queue_take(&p->q, (size_t)p->send_batch_max_size, &out);
    if (ret != 0) {
        /* No batch could be built. Fail the oldest request whole so the queue always shrinks:
         * its senders get a retryable error, nothing is left behind silently. */
        th__batch_queue_fail_head(&p->q, TH_ENOMEM);
        __atomic_add_fetch(&p->stats.spans_failed, before - p->q.spans, __ATOMIC_RELAXED);
        th_log_error(&p->base,
                     "out of memory building a batch; %zu spans failed back to their "
                     "senders",
                     before - p->q.spans);
        return;
    }
    size_t spans = out->span_count;
    size_t bucket = 0;
    while (bucket < TH_BATCH_SEND_SIZE_BOUNDS &&
           (double)spans > th_batch_send_size_bounds()[bucket]) {
        bucket++;
    }
    __atomic_add_fetch(&p->stats.send_size[bucket], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&p->stats.send_size_sum, spans, __ATOMIC_RELAXED);
    if (why == SEND_SIZE) {
        __atomic_add_fetch(&p->stats.batch_size_trigger_send, 1, __ATOMIC_RELAXED);
    } else if (why == SEND_LOOP) {
        __atomic_add_fetch(&p->stats.loop_trigger_send, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&p->stats.timeout_trigger_send, 1, __ATOMIC_RELAXED);
    }
    /* Our own reference keeps the batch (and its acks) until we know the answer. */
    th_batch_retain(out);
    bool acked = out->n_acks == 0; /* every source's ack was settled at enqueue */
    ret = th_consumer_consume(p->base.next, out);
    if (ret < 0) {
        th_batch_fail(out, ret);
        __atomic_add_fetch(&p->stats.batches_refused, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&p->stats.spans_refused, spans, __ATOMIC_RELAXED);
        log_refusal(p, ret, spans, acked);
    } else {
        __atomic_add_fetch(&p->stats.batches_sent, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&p->stats.spans_sent, spans, __ATOMIC_RELAXED);
    }
    th_batch_release(out);
}

static void on_timer(uv_timer_t *t)
{
    struct th_batch_processor *p = t->data;
    /* Pending spans are below send_batch_size here, so this is one batch unless max splits. */
    while (p->q.spans > 0) {
        send_one(p, SEND_TIMEOUT);
    }
    if (p->flush) {
        uv_idle_stop(p->flush);
    }
}

/* End of a loop iteration in which batches arrived (durable downstream): send them all. */
static void on_flush(uv_idle_t *h)
{
    struct th_batch_processor *p = h->data;
    while (p->q.spans > 0) {
        send_one(p, SEND_LOOP);
    }
    /* Stopped once empty: an active idle handle makes the loop poll without blocking. */
    uv_idle_stop(h);
}

static void restart_timer(struct th_batch_processor *p)
{
    if (p->timer) {
        uv_timer_start(p->timer, on_timer, p->timeout_ms, p->timeout_ms);
    }
}

int th__batch_processor_consume(struct th_batch_processor *p, th_batch_t *b)
{
    if (p->stopped) {
        th_batch_release(b);
        return TH_ESHUTDOWN;
    }
    /* Not durable downstream: answer at enqueue, unless the batch is shared (a fan-out gives
     * the same batch to other pipelines, one of which may be durable: its acks are theirs
     * too). A reference of ours keeps b alive to settle it after the push, which may release
     * an empty batch at once; a failed push leaves the acks to fail with the batch. */
    bool settle = !p->durable && __atomic_load_n(&b->refs, __ATOMIC_ACQUIRE) == 1;
    if (settle) {
        th_batch_retain(b);
    }
    int ret = th__batch_queue_push(&p->q, b);
    if (ret != 0) {
        th_batch_release(b);
        if (settle) {
            th_batch_release(b);
        }
        return ret;
    }
    if (settle) {
        th_batch_settle_acks(b, 0);
        th_batch_release(b);
    }
    bool sent = false;
    while (p->q.spans > 0 && (p->timeout_ms == 0 || p->q.spans >= p->send_batch_size)) {
        send_one(p, SEND_SIZE);
        sent = true;
    }
    if (sent) {
        restart_timer(p);
    }
    if (p->q.spans > 0 && p->flush && (p->durable || !settle)) {
        uv_idle_start(p->flush, on_flush); /* a no-op when already active */
    }
    return p->q.spans > 0 && !settle ? TH_HELD : 0;
}

/* The flush handle is created for every started instance: even without a durable consumer,
 * a batch shared with another pipeline keeps its acks and must not wait for the timer. */
static int start_flush(struct th_batch_processor *p, uv_loop_t *loop)
{
    uv_idle_t *h = th_malloc(sizeof(*h));
    if (!h) {
        return TH_ENOMEM;
    }
    int rc = uv_idle_init(loop, h);
    if (rc != 0) {
        th_free(h);
        th_log_error(&p->base, "cannot create the batch flush handle: %s", uv_strerror(rc));
        return TH_EIO;
    }
    h->data = p;
    p->flush = h;
    return 0;
}

int th__batch_processor_start(struct th_batch_processor *p, uv_loop_t *loop)
{
    if (!loop) {
        return 0; /* without a loop (a bare test) only size and shutdown send */
    }
    if (!p->flush && p->timeout_ms > 0) {
        int ret = start_flush(p, loop);
        if (ret != 0) {
            return ret;
        }
    }
    if (p->timeout_ms == 0 || p->timer) {
        return 0;
    }
    uv_timer_t *t = th_malloc(sizeof(*t));
    if (!t) {
        return TH_ENOMEM;
    }
    int rc = uv_timer_init(loop, t);
    if (rc != 0) {
        th_free(t);
        th_log_error(&p->base, "cannot create the batch timer: %s", uv_strerror(rc));
        return TH_EIO;
    }
    t->data = p;
    p->timer = t;
    restart_timer(p);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    th_free(h);
}

/* The timer and the flush handle live on the heap and free themselves once libuv is done
 * with them, so the instance can go before the loop runs the close callbacks. */
static void close_handles(struct th_batch_processor *p)
{
    if (p->timer) {
        uv_timer_stop(p->timer);
        uv_close((uv_handle_t *)p->timer, on_handle_closed);
        p->timer = NULL;
    }
    if (p->flush) {
        uv_idle_stop(p->flush);
        uv_close((uv_handle_t *)p->flush, on_handle_closed);
        p->flush = NULL;
    }
}

int th__batch_processor_shutdown(struct th_batch_processor *p)
{
    if (p->stopped) {
        return 0;
    }
    p->stopped = true;
    close_handles(p);
    while (p->q.spans > 0) {
        send_one(p, SEND_TIMEOUT);
    }
    return 0;
}

void th__batch_processor_deinit(struct th_batch_processor *p)
{
    close_handles(p);
    th__batch_queue_deinit(&p->q, TH_ESHUTDOWN);
}
