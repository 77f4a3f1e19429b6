/*
 * The batch processor's triggers, following the Collector's shard loop: after each request is
 * queued, batches are sent while send_batch_size spans are pending (or at once when there is
 * no timer) and the timer is restarted; when the timer fires, whatever is pending is sent;
 * shutdown sends everything left. Every sent batch is held until the downstream consumer
 * answers, so a refusal can fail it and reach each of its senders through their acks.
 */
#include "processors/batch/batch.h"
#include "th/log.h"

/* Refusals from downstream are logged at most this often (each one reaches its senders). */
#define REFUSAL_LOG_INTERVAL_NS 1000000000ull

static void log_refusal(struct th_batch_processor *p, int err, size_t spans)
{
    uint64_t now = th_now_mono_ns();
    if (p->last_refusal_log_ns && now - p->last_refusal_log_ns < REFUSAL_LOG_INTERVAL_NS) {
        p->refusals_not_logged++;
        return;
    }
    th_log_warn(&p->base,
                "the next consumer refused a batch of %zu spans (%s); its senders are told to "
                "retry (%llu more refusals since the last line)",
                spans, th_strerror(err), (unsigned long long)p->refusals_not_logged);
    p->last_refusal_log_ns = now;
    p->refusals_not_logged = 0;
}

/* Send one batch of up to send_batch_max_size spans from the front of the queue. */
static void send_one(struct th_batch_processor *p, bool size_trigger)
{
    th_batch_t *out = NULL;
    size_t before = p->q.spans;
    int ret = th__batch_queue_take(&p->q, (size_t)p->send_batch_max_size, &out);
    if (ret != 0) {
        /* No batch could be built. Fail the oldest request whole so the queue always shrinks:
         * its senders get a retryable error, nothing is left behind silently. */
        th__batch_queue_fail_head(&p->q, TH_ENOMEM);
        p->stats.spans_failed += before - p->q.spans;
        th_log_error(&p->base,
                     "out of memory building a batch; %zu spans failed back to their "
                     "senders",
                     before - p->q.spans);
        return;
    }
    size_t spans = out->span_count;
    if (size_trigger) {
        p->stats.batch_size_trigger_send++;
    } else {
        p->stats.timeout_trigger_send++;
    }
    /* Our own reference keeps the batch (and its acks) until we know the answer. */
    th_batch_retain(out);
    ret = th_consumer_consume(p->base.next, out);
    if (ret < 0) {
        th_batch_fail(out, ret);
        p->stats.batches_refused++;
        p->stats.spans_refused += spans;
        log_refusal(p, ret, spans);
    } else {
        p->stats.batches_sent++;
        p->stats.spans_sent += spans;
    }
    th_batch_release(out);
}

static void on_timer(uv_timer_t *t)
{
    struct th_batch_processor *p = t->data;
    /* Pending spans are below send_batch_size here, so this is one batch unless max splits. */
    while (p->q.spans > 0) {
        send_one(p, false);
    }
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
    int ret = th__batch_queue_push(&p->q, b);
    if (ret != 0) {
        th_batch_release(b);
        return ret;
    }
    bool sent = false;
    while (p->q.spans > 0 && (p->timeout_ms == 0 || p->q.spans >= p->send_batch_size)) {
        send_one(p, true);
        sent = true;
    }
    if (sent) {
        restart_timer(p);
    }
    return p->q.spans > 0 ? TH_HELD : 0;
}

int th__batch_processor_start(struct th_batch_processor *p, uv_loop_t *loop)
{
    if (p->timeout_ms == 0 || p->timer || !loop) {
        return 0; /* without a loop (a bare test) only size and shutdown send */
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

static void on_timer_closed(uv_handle_t *h)
{
    th_free(h);
}

/* The timer lives on the heap and frees itself once libuv is done with it, so the instance
 * can go before the loop runs the close callback. */
static void close_timer(struct th_batch_processor *p)
{
    if (p->timer) {
        uv_timer_stop(p->timer);
        uv_close((uv_handle_t *)p->timer, on_timer_closed);
        p->timer = NULL;
    }
}

int th__batch_processor_shutdown(struct th_batch_processor *p)
{
    if (p->stopped) {
        return 0;
    }
    p->stopped = true;
    close_timer(p);
    while (p->q.spans > 0) {
        send_one(p, false);
    }
    return 0;
}

void th__batch_processor_deinit(struct th_batch_processor *p)
{
    close_timer(p);
    th__batch_queue_deinit(&p->q, TH_ESHUTDOWN);
}
