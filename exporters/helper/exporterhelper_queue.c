/*
 * The exporter helper's work on its own loop: batches from the inbox are encoded as
 * protobuf and queued (in memory, or committed to the persistent queue), and only then are
 * their acks settled; num_consumers slots each send one request, retry it on its own timer,
 * split it when the server finds it too large, and settle it when it is delivered or fails
 * for good. At shutdown nothing is retried: each request gets one more attempt, and the
 * persistent queue keeps on disk whatever is not delivered.
 */
#include <stdio.h>
#include <string.h>

#include "exporters/helper/exporterhelper_internal.h"
#include "th/log.h"

/* At most this many batches are committed in one persistent-queue transaction. */
#define GROUP_MAX 256

void th__eh_list_push(struct th__eh_list *l, struct th__eh_req *r, bool front)
{
    if (front) {
        r->next = l->head;
        l->head = r;
        if (!l->tail) {
            l->tail = r;
        }
    } else {
        r->next = NULL;
        if (l->tail) {
            l->tail->next = r;
        } else {
            l->head = r;
        }
        l->tail = r;
    }
    l->n++;
}

struct th__eh_req *th__eh_list_pop(struct th__eh_list *l)
{
    struct th__eh_req *r = l->head;
    if (r) {
        l->head = r->next;
        if (!l->head) {
            l->tail = NULL;
        }
        r->next = NULL;
        l->n--;
    }
    return r;
}

void th__eh_req_free(struct th__eh_req *r)
{
    if (r) {
        th_free(r->pb);
        th_free(r);
    }
}

static void stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

/* ---- Enqueueing ------------------------------------------------------------------------- */

/* A batch that could not be queued: its sender is told to retry. */
static void enqueue_failed(struct th_exporterhelper *h, struct th__eh_in *in, int err)
{
    th__eh_unreserve(h, in->units);
    stat_add(&h->enqueue_failed, in->batch->span_count);
    th_batch_fail(in->batch, TH_ERETRY);
    th_batch_release(in->batch);
    (void)err;
}

static void enqueue_memory(struct th_exporterhelper *h, struct th__eh_in *in)
{
    th_batch_t *b = in->batch;
    struct th__eh_req *r = th_calloc(1, sizeof(*r));
    size_t len = protobuf_c_message_get_packed_size(&b->req->base);
    uint8_t *pb = r ? th_malloc(len ? len : 1) : NULL;
    if (!pb) {
        th_free(r);
        th_log_error(h->c, "out of memory encoding %zu spans; the sender will retry",
                     b->span_count);
        enqueue_failed(h, in, TH_ENOMEM);
        return;
    }
    protobuf_c_message_pack(&b->req->base, pb);
    r->pb = pb;
    r->len = len;
    r->spans = b->span_count;
    r->units = in->units;
    th__eh_list_push(&h->queue, r, false);
    if (h->wait_for_result) {
        r->held = b; /* settled when delivered */
    } else {
        th_batch_release(b); /* queued: the sender may be answered */
    }
}

static void enqueue(struct th_exporterhelper *h, struct th__eh_in *in, size_t n)
{
    if (!h->persistent) {
        for (size_t i = 0; i < n; i++) {
            enqueue_memory(h, &in[i]);
        }
        return;
    }
    for (size_t i = 0; i < n; i += GROUP_MAX) {
        size_t k = TH_MIN(n - i, (size_t)GROUP_MAX);
        int ret = th__eh_pq_append(h, &in[i], k);
        if (ret != 0) {
            uint64_t spans = 0;
            for (size_t j = 0; j < k; j++) {
                spans += in[i + j].batch->span_count;
                enqueue_failed(h, &in[i + j], ret);
            }
            th_log_error(h->c, "persistent queue: %llu spans not queued, senders will retry: %s",
                         (unsigned long long)spans, th_strerror(ret));
        }
    }
}

/* Move what consume() handed over into the queue: the inbox, then blocked batches as room
 * frees (all of them once draining: they get their one attempt like the rest). */
static void take_inbox(struct th_exporterhelper *h)
{
    for (;;) {
        struct th__eh_in *v = NULL;
        size_t n = 0;
        pthread_mutex_lock(&h->lock);
        if (h->n_inbox > 0) {
            v = h->inbox;
            n = h->n_inbox;
            h->inbox = NULL;
            h->n_inbox = h->cap_inbox = 0;
        } else if (h->n_overflow > 0) {
            size_t k = 0;
            while (k < h->n_overflow) {
                uint64_t units = h->overflow[k].units;
                uint64_t cur = __atomic_load_n(&h->size, __ATOMIC_ACQUIRE);
                bool full = h->persistent && __atomic_load_n(&h->disk_full, __ATOMIC_ACQUIRE);
                if (!h->draining && (full || (cur > 0 && cur + units > h->capacity))) {
                    break;
                }
                __atomic_add_fetch(&h->size, units, __ATOMIC_ACQ_REL);
                k++;
            }
            if (k > 0) {
                v = th_malloc(k * sizeof(*v));
                if (v) {
                    memcpy(v, h->overflow, k * sizeof(*v));
                    memmove(h->overflow, h->overflow + k, (h->n_overflow - k) * sizeof(*v));
                    h->n_overflow -= k;
                    n = k;
                } else {
                    for (size_t i = 0; i < k; i++) {
                        th__eh_unreserve(h, h->overflow[i].units);
                    }
                }
            }
        }
        pthread_mutex_unlock(&h->lock);
        if (n == 0) {
            th_free(v);
            return;
        }
        enqueue(h, v, n);
        th_free(v);
    }
}

/* ---- Finishing requests ----------------------------------------------------------------- */

/* A request is done: settle what it held and, for a half, tell its parent; the persistent
 * record goes when the whole request is done, unless @p keep (left for the next start). */
static void complete(struct th_exporterhelper *h, struct th__eh_req *r, int err, bool keep)
{
    for (;;) {
        if (r->held) {
            if (err < 0) {
                th_batch_fail(r->held, err);
            }
            th_batch_release(r->held);
            r->held = NULL;
        }
        struct th__eh_req *parent = r->parent;
        if (!parent) {
            if (r->seq) {
                if (keep) {
                    th__eh_pq_unmark(h, r->seq);
                } else {
                    th__eh_pq_remove(h, r->seq);
                }
            }
            th__eh_req_free(r);
            return;
        }
        if (err < 0 && parent->result == 0) {
            parent->result = err;
        }
        parent->keep = parent->keep || keep;
        th__eh_req_free(r);
        if (--parent->children > 0) {
            return;
        }
        r = parent;
        err = parent->result;
        keep = parent->keep;
    }
}

static void slot_done(struct th__eh_slot *s, int err, bool keep)
{
    struct th_exporterhelper *h = s->h;
    struct th__eh_req *r = s->req;
    s->req = NULL;
    s->final = false;
    complete(h, r, err, keep);
    th__eh_step(h);
}

static void drop(struct th__eh_slot *s, int err, const char *why, const char *msg)
{
    struct th_exporterhelper *h = s->h;
    uint64_t spans = s->req->spans;
    stat_add(&h->c->stats.failed, spans);
    if (h->draining) {
        h->undelivered_spans += spans;
    }
    th_log_error(h->c, "Exporting failed. Dropping data: %s%s%s (%llu spans)", why,
                 msg && *msg ? ": " : "", msg ? msg : "", (unsigned long long)spans);
    slot_done(s, err, false);
}

/* ---- Sending ---------------------------------------------------------------------------- */

static void on_sent(void *arg, const struct th_export_result *r);

static void on_sync_fail(uv_timer_t *t)
{
    struct th__eh_slot *s = t->data;
    struct th_export_result r = {.err = s->sync_err, .retry_after_ns = -1};
    snprintf(r.message, sizeof(r.message), "send failed: %s", th_strerror(s->sync_err));
    s->sync_err = 0;
    s->sending = true; /* on_sent expects it */
    on_sent(s, &r);
}

static void attempt(struct th__eh_slot *s)
{
    struct th_exporterhelper *h = s->h;
    s->sending = true;
    int ret = h->tops->send(h->transport, s->req->pb, s->req->len, on_sent, s);
    if (ret != 0) {
        /* done will not be called: handle the failure on the next loop turn, not inside the
         * caller (which may be dispatching) */
        s->sending = false;
        s->sync_err = ret;
        uv_timer_start(&s->timer, on_sync_fail, 0, 0);
    }
}

static void on_retry(uv_timer_t *t)
{
    struct th__eh_slot *s = t->data;
    if (s->req && !s->sending) {
        s->final = s->final || s->h->draining;
        attempt(s);
    }
}

/* The classes of result the helper acts on. */
static int classify(int err)
{
    switch (err) {
    case 0:
    case TH_ERETRY:
    case TH_EPERM:
    case TH_E2BIG:
    case TH_ESHUTDOWN:
        return err;
    case TH_ENOMEM:
    case TH_EIO:
    case TH_ESPACE:
        return TH_ERETRY; /* our side was short of something: worth another try */
    default:
        return TH_EPERM;
    }
}

/* A retryable failure: wait for the backoff (or the server's delay, when longer). */
static void retry_later(struct th__eh_slot *s, const struct th_export_result *r, int err)
{
    struct th_exporterhelper *h = s->h;
    if (h->draining || s->final || err == TH_ESHUTDOWN) {
        if (h->persistent) {
            /* the record stays on disk; once the server fails a final attempt, the rest of
             * the queue stays there too rather than each waiting for its own failure */
            h->drain_stopped = h->drain_stopped || h->draining;
            h->undelivered_spans += s->req->spans;
            th_log_debug(h->c, "shutting down: %llu spans kept in the persistent queue: %s",
                         (unsigned long long)s->req->spans, r->message);
            slot_done(s, err, true);
        } else {
            /* Same for memory: once the server fails a final attempt, the rest of the queue
             * is dropped at once (counted and logged) rather than each waiting out its own
             * timeout against a backend that is down or hanging, which would hold SIGTERM for
             * queue length x timeout. */
            h->drain_stopped = h->drain_stopped || h->draining;
            drop(s, err, "shutting down, no more retries", r->message);
        }
        return;
    }
    if (!h->retry.enabled) {
        drop(s, err, "retry_on_failure is disabled", r->message);
        return;
    }
    uint64_t now = th_now_mono_ns();
    int64_t delay = th__eh_backoff_next(h, s, now);
    if (delay < 0) {
        drop(s, err, "no more retries left", r->message);
        return;
    }
    if (r->retry_after_ns > delay) {
        delay = r->retry_after_ns;
    }
    th_log_info(h->c, "Exporting failed. Will retry the request after interval: %s (in %.3fs)",
                r->message, (double)delay / 1e9);
    uint64_t ms = ((uint64_t)delay + 999999) / 1000000;
    uv_update_time(&h->loop);
    uv_timer_start(&s->timer, on_retry, ms, 0);
}

/* The server found the request too large: send it as two halves (ahead of the queue). */
static void split(struct th__eh_slot *s, const struct th_export_result *r)
{
    struct th_exporterhelper *h = s->h;
    struct th__eh_req *req = s->req;
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    uint64_t aspans = 0, bspans = 0;
    int ret = th__eh_split(req->pb, req->len, &a, &alen, &aspans, &b, &blen, &bspans);
    if (ret == TH_E2BIG || ret == TH_EDECODE) {
        stat_add(&h->c->stats.failed, req->spans);
        th_log_error(h->c, "not retryable error: the request is too large%s: %s (%llu spans)",
                     ret == TH_E2BIG ? " even with one span; dropping it" : " and cannot be split",
                     r->message, (unsigned long long)req->spans);
        slot_done(s, TH_EPERM, false);
        return;
    }
    struct th__eh_req *ra = ret == 0 ? th_calloc(1, sizeof(*ra)) : NULL;
    struct th__eh_req *rb = ret == 0 ? th_calloc(1, sizeof(*rb)) : NULL;
    if (!ra || !rb) {
        th_free(ra);
        th_free(rb);
        th_free(a);
        th_free(b);
        struct th_export_result again = *r;
        snprintf(again.message, sizeof(again.message), "out of memory splitting the request");
        retry_later(s, &again, TH_ERETRY);
        return;
    }
    *ra = (struct th__eh_req){.parent = req, .pb = a, .len = alen, .spans = aspans};
    *rb = (struct th__eh_req){.parent = req, .pb = b, .len = blen, .spans = bspans};
    req->children = 2;
    th_free(req->pb); /* the halves carry the data now; a persistent record stays on disk */
    req->pb = NULL;
    th__eh_list_push(&h->ready, rb, true);
    th__eh_list_push(&h->ready, ra, true);
    th_log_info(h->c, "the request is too large (%s): sending it as two of %llu and %llu spans",
                r->message, (unsigned long long)aspans, (unsigned long long)bspans);
    s->req = NULL;
    s->final = false;
    th__eh_step(h);
}

static void on_sent(void *arg, const struct th_export_result *r)
{
    struct th__eh_slot *s = arg;
    struct th_exporterhelper *h = s->h;
    th_assert(s->sending && s->req);
    s->sending = false;
    int err = classify(r->err);
    if (err == 0) {
        uint64_t spans = s->req->spans;
        uint64_t rejected = TH_MIN(r->rejected_spans, spans);
        stat_add(&h->c->stats.sent, spans - rejected);
        if (rejected > 0) {
            stat_add(&h->c->stats.failed, rejected);
            th_log_warn(h->c, "partial success: the server rejected %llu of %llu spans: %s",
                        (unsigned long long)rejected, (unsigned long long)spans, r->message);
        }
        slot_done(s, 0, false);
    } else if (err == TH_E2BIG) {
        split(s, r);
    } else if (err == TH_ERETRY || err == TH_ESHUTDOWN) {
        retry_later(s, r, err);
    } else {
        uint64_t spans = s->req->spans;
        stat_add(&h->c->stats.failed, spans);
        if (h->draining) {
            h->undelivered_spans += spans;
        }
        th_log_error(h->c, "Exporting failed. Dropping data: not retryable error: %s (%llu spans)",
                     r->message, (unsigned long long)spans);
        slot_done(s, TH_EPERM, false);
    }
}

/* Hand queued requests to free slots: halves of split requests first, then the queue. */
static void pump(struct th_exporterhelper *h)
{
    if (h->drain_stopped || h->finished) {
        return;
    }
    struct th__eh_slot *started[64];
    uint64_t marks[64];
    size_t n = 0, nm = 0;
    for (size_t i = 0; i < h->n_slots; i++) {
        struct th__eh_slot *s = &h->slots[i];
        if (s->req) {
            continue;
        }
        struct th__eh_req *r = NULL;
        while (!r) {
            r = th__eh_list_pop(&h->ready);
            if (!r) {
                r = th__eh_list_pop(&h->queue);
                if (!r) {
                    break;
                }
                th__eh_unreserve(h, r->units);
                r->units = 0;
            }
            if (!r->pb && r->seq) {
                int ret = th__eh_pq_load(h, r);
                if (ret != 0) {
                    th_log_error(h->c, "persistent queue: record %llu unreadable (%s); skipped",
                                 (unsigned long long)r->seq, th_strerror(ret));
                    if (ret != TH_ENOMEM) {
                        th__eh_pq_remove(h, r->seq);
                        th__eh_req_free(r);
                        r = NULL;
                    } else {
                        th__eh_list_push(&h->queue, r, true); /* try again later */
                        r = NULL;
                        break;
                    }
                }
            }
        }
        if (!r) {
            break;
        }
        s->req = r;
        s->final = h->draining;
        s->first_ns = th_now_mono_ns();
        s->interval_ns = h->retry.initial_interval_ns;
        started[n++] = s;
        if (r->seq && !r->parent) {
            marks[nm++] = r->seq;
        }
        if (n == TH_ARRAY_SIZE(started)) {
            break;
        }
    }
    /* mark before sending, so a crash during the send knows what may arrive twice */
    if (nm > 0) {
        th__eh_pq_mark(h, marks, nm);
    }
    for (size_t i = 0; i < n; i++) {
        attempt(started[i]);
    }
    if (n == TH_ARRAY_SIZE(started)) {
        pump(h); /* more free slots than one round takes */
    }
}

/* ---- Shutdown ---------------------------------------------------------------------------- */

static bool slots_idle(const struct th_exporterhelper *h)
{
    for (size_t i = 0; i < h->n_slots; i++) {
        if (h->slots[i].req) {
            return false;
        }
    }
    return true;
}

static bool drained(const struct th_exporterhelper *h)
{
    return h->draining && !h->finished && slots_idle(h) &&
           (h->drain_stopped || (h->ready.n == 0 && h->queue.n == 0));
}

/* Drained: count what stays behind, stop the transport and close the loop's handles. Runs
 * from its own timer, never inside a transport's callback, since it stops the transport. */
static void on_finish(uv_timer_t *t)
{
    struct th_exporterhelper *h = t->data;
    h->finishing = false;
    if (!drained(h)) {
        return;
    }
    struct th__eh_req *r;
    while ((r = th__eh_list_pop(&h->ready)) != NULL) {
        h->undelivered_spans += r->spans;
        complete(h, r, TH_ESHUTDOWN, true);
    }
    while ((r = th__eh_list_pop(&h->queue)) != NULL) {
        h->undelivered_spans += r->spans;
        th__eh_unreserve(h, r->units);
        if (h->persistent) {
            th__eh_req_free(r); /* on disk: sent at the next start */
        } else {
            stat_add(&h->c->stats.failed, r->spans);
            complete(h, r, TH_ESHUTDOWN, false); /* settles a wait_for_result sender */
        }
    }
    h->finished = true;
    if (h->undelivered_spans > 0) {
        if (h->persistent) {
            th_log_warn(h->c,
                        "shutdown: %llu spans not delivered; kept in the persistent queue %s for "
                        "the next start",
                        (unsigned long long)h->undelivered_spans, h->storage.path);
        } else {
            th_log_error(h->c, "shutdown: %llu spans not delivered and dropped",
                         (unsigned long long)h->undelivered_spans);
        }
    }
    h->tops->stop(h->transport);
    pthread_mutex_lock(&h->lock);
    h->loop_ready = false;
    pthread_mutex_unlock(&h->lock);
    uv_close((uv_handle_t *)&h->wake, NULL);
    uv_close((uv_handle_t *)&h->finish_timer, NULL);
    for (size_t i = 0; i < h->n_slots; i++) {
        uv_close((uv_handle_t *)&h->slots[i].timer, NULL);
    }
}

static void maybe_finish(struct th_exporterhelper *h)
{
    if (!h->finishing && drained(h)) {
        h->finishing = true;
        uv_timer_start(&h->finish_timer, on_finish, 0, 0);
    }
}

void th__eh_begin_drain(struct th_exporterhelper *h)
{
    h->draining = true;
    th__eh_step(h); /* blocked batches join the queue */
    for (size_t i = 0; i < h->n_slots && !h->finished; i++) {
        struct th__eh_slot *s = &h->slots[i];
        if (!s->req) {
            continue;
        }
        s->final = true;
        if (!s->sending) {
            /* waiting for a retry: no more waiting, one last attempt now */
            uv_timer_stop(&s->timer);
            s->sync_err = 0;
            attempt(s);
        }
    }
    th__eh_step(h);
}

void th__eh_step(struct th_exporterhelper *h)
{
    if (h->finished) {
        return;
    }
    take_inbox(h);
    pump(h);
    take_inbox(h); /* dispatching freed room for blocked batches */
    pump(h);
    maybe_finish(h);
}
