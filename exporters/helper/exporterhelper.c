/*
 * The exporter helper's lifecycle and its two threads' meeting point. consume() runs on a
 * receiver's loop: it reserves room in the queue with one atomic (so a full queue is refused
 * without waiting for anything), puts the batch in a mutex-protected inbox and wakes the
 * exporter's loop with uv_async. Everything else (encoding, the persistent queue, sending,
 * retries) happens on the exporter's own thread and loop (exporterhelper_queue.c).
 */
#include <stdio.h>
#include <string.h>

#include "exporters/helper/exporterhelper_internal.h"
#include "th/log.h"

static uint64_t units_of(const struct th_exporterhelper *h, const th_batch_t *b)
{
    switch (h->sizer) {
    case TH__EH_ITEMS:
        return b->span_count;
    case TH__EH_BYTES:
        return protobuf_c_message_get_packed_size(&b->req->base);
    case TH__EH_REQUESTS:
        break;
    }
    return 1;
}

/* Take @p units of room, unless that would pass the capacity; an empty queue takes anything,
 * so a request larger than the whole queue is not refused forever. */
static bool reserve(struct th_exporterhelper *h, uint64_t units)
{
    uint64_t cur = __atomic_load_n(&h->size, __ATOMIC_RELAXED);
    do {
        if (cur > 0 && cur + units > h->capacity) {
            return false;
        }
    } while (!__atomic_compare_exchange_n(&h->size, &cur, cur + units, true, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    return true;
}

void th__eh_unreserve(struct th_exporterhelper *h, uint64_t units)
{
    __atomic_sub_fetch(&h->size, units, __ATOMIC_ACQ_REL);
}

int th_exporterhelper_create(struct th_component *c, const struct th_retry_cfg *retry,
                             const struct th_queue_cfg *queue,
                             const struct th_export_transport_ops *tops, void *transport,
                             th_exporterhelper_t **out)
{
    struct th_exporterhelper *h = th_calloc(1, sizeof(*h));
    if (!h) {
        tops->destroy(transport);
        return TH_ENOMEM;
    }
    h->c = c;
    h->tops = tops;
    h->transport = transport;
    if (retry) {
        h->retry = *retry;
    }
    if (queue && queue->enabled) {
        h->qcfg = *queue;
    } else {
        /* No queue: the Collector sends in the caller, which waits. The receiver's loop must
         * not wait, so hold the batch (answer once delivered) with room for num_consumers
         * requests and block beyond that. */
        h->qcfg.enabled = false;
        h->qcfg.num_consumers = queue && queue->num_consumers > 0 ? queue->num_consumers : 10;
        h->qcfg.queue_size = h->qcfg.num_consumers;
        h->qcfg.block_on_overflow = true;
        h->qcfg.wait_for_result = true;
    }
    const char *sizer = h->qcfg.sizer ? h->qcfg.sizer : "requests";
    h->sizer = !strcmp(sizer, "items")   ? TH__EH_ITEMS
               : !strcmp(sizer, "bytes") ? TH__EH_BYTES
                                         : TH__EH_REQUESTS;
    h->block = h->qcfg.block_on_overflow || h->qcfg.blocking;
    h->wait_for_result = h->qcfg.wait_for_result;
    h->persistent = h->qcfg.enabled && h->qcfg.storage && *h->qcfg.storage;
    h->capacity = h->qcfg.queue_size > 0 ? (uint64_t)h->qcfg.queue_size : 1;
    h->n_slots = h->qcfg.num_consumers > 0 ? (size_t)h->qcfg.num_consumers : 1;
    h->slots = th_calloc(h->n_slots, sizeof(*h->slots));
    if (!h->slots) {
        tops->destroy(transport);
        th_free(h);
        return TH_ENOMEM;
    }
    h->pq.lock_fd = -1;
    h->rng = th_now_mono_ns() ^ (uint64_t)(uintptr_t)h ^ 0x9E3779B97F4A7C15ull;
    if (!h->rng) {
        h->rng = 1;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->started_cond, NULL);
    c->exporterhelper = h; /* the metrics endpoint and health_check find the queue here */
    *out = h;
    return 0;
}

/* Tell start() how the thread's set-up went. */
static void report_start(struct th_exporterhelper *h, int ret)
{
    pthread_mutex_lock(&h->lock);
    h->start_result = ret;
    h->start_done = true;
    if (ret == 0) {
        h->loop_ready = true;
    }
    pthread_cond_signal(&h->started_cond);
    pthread_mutex_unlock(&h->lock);
}

static void on_wake(uv_async_t *a)
{
    struct th_exporterhelper *h = a->data;
    pthread_mutex_lock(&h->lock);
    bool drain = h->stopping && !h->draining;
    pthread_mutex_unlock(&h->lock);
    th__eh_step(h);
    if (drain) {
        th__eh_begin_drain(h);
    }
}

static void *thread_main(void *arg)
{
    struct th_exporterhelper *h = arg;
    bool transport_started = false;
    int ret = uv_loop_init(&h->loop);
    if (ret != 0) {
        report_start(h, TH_EIO);
        return NULL;
    }
    uv_async_init(&h->loop, &h->wake, on_wake);
    h->wake.data = h;
    uv_timer_init(&h->loop, &h->finish_timer);
    h->finish_timer.data = h;
    for (size_t i = 0; i < h->n_slots; i++) {
        h->slots[i].h = h;
        uv_timer_init(&h->loop, &h->slots[i].timer);
        h->slots[i].timer.data = &h->slots[i];
    }
    if (h->persistent) {
        ret = th__eh_pq_open(h);
    }
    if (ret == 0) {
        ret = h->tops->start(h->transport, &h->loop);
        transport_started = ret == 0;
        if (ret != 0) {
            th_log_error(h->c, "the transport did not start: %s", th_strerror(ret));
        }
    }
    report_start(h, ret);
    if (ret == 0) {
        th__eh_step(h); /* what a previous run left, and what came before start */
    } else {
        (void)transport_started;
        uv_close((uv_handle_t *)&h->wake, NULL);
        uv_close((uv_handle_t *)&h->finish_timer, NULL);
        for (size_t i = 0; i < h->n_slots; i++) {
            uv_close((uv_handle_t *)&h->slots[i].timer, NULL);
        }
    }
    uv_run(&h->loop, UV_RUN_DEFAULT);
    if (h->persistent) {
        th__eh_pq_close(h);
    }
    if (uv_loop_close(&h->loop) != 0) {
        th_log_error(h->c, "exporter loop closed with handles still open");
    }
    return NULL;
}

int th_exporterhelper_start(th_exporterhelper_t *h, struct th_host *host)
{
    if (h->persistent) {
        int ret = th_file_storage_client(host, h->qcfg.storage, TH_KIND_EXPORTER, h->c->id,
                                         "traces", &h->storage);
        if (ret != 0) {
            th_log_error(h->c,
                         "sending_queue::storage: storage extension \"%s\" not found; configure "
                         "it under extensions and list it in service::extensions",
                         h->qcfg.storage);
            return ret == TH_ENOENT ? TH_ECONFIG : ret;
        }
    }
    if (pthread_create(&h->thread, NULL, thread_main, h) != 0) {
        return TH_EIO;
    }
    pthread_mutex_lock(&h->lock);
    while (!h->start_done) {
        pthread_cond_wait(&h->started_cond, &h->lock);
    }
    int ret = h->start_result;
    pthread_mutex_unlock(&h->lock);
    if (ret != 0) {
        pthread_join(h->thread, NULL);
        return ret;
    }
    h->thread_running = true;
    return 0;
}

/* Append to an inbox array (under the lock). */
static int push(struct th__eh_in **v, size_t *n, size_t *cap, th_batch_t *b, uint64_t units)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct th__eh_in *nv = th_realloc(*v, nc * sizeof(*nv));
        if (!nv) {
            return TH_ENOMEM;
        }
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = (struct th__eh_in){.batch = b, .units = units};
    return 0;
}

static int refuse(struct th_exporterhelper *h, th_batch_t *b, int err)
{
    if (err == TH_ERETRY) {
        __atomic_add_fetch(&h->enqueue_failed, b->span_count, __ATOMIC_RELAXED);
        th_log_debug(h->c, "sending queue is full: %zu spans refused", b->span_count);
    }
    th_batch_fail(b, err);
    th_batch_release(b);
    return err;
}

int th_exporterhelper_consume(th_exporterhelper_t *h, th_batch_t *batch)
{
    uint64_t units = units_of(h, batch);
    bool reserved = false;
    if (!h->block) {
        if (h->persistent && __atomic_load_n(&h->disk_full, __ATOMIC_ACQUIRE)) {
            return refuse(h, batch, TH_ERETRY);
        }
        if (!reserve(h, units)) {
            return refuse(h, batch, TH_ERETRY);
        }
        reserved = true;
    }
    int ret;
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        ret = TH_ESHUTDOWN;
    } else if (reserved) {
        ret = push(&h->inbox, &h->n_inbox, &h->cap_inbox, batch, units);
    } else if (h->n_overflow == 0 &&
               !(h->persistent && __atomic_load_n(&h->disk_full, __ATOMIC_ACQUIRE)) &&
               reserve(h, units)) {
        /* blocking, and there is room: no need to wait behind anyone */
        reserved = true;
        ret = push(&h->inbox, &h->n_inbox, &h->cap_inbox, batch, units);
    } else {
        ret = push(&h->overflow, &h->n_overflow, &h->cap_overflow, batch, units);
    }
    /* The send happens under the lock: the loop closes the handle only under it, after
     * stopping was set. */
    if (ret == 0 && h->loop_ready) {
        uv_async_send(&h->wake);
    }
    pthread_mutex_unlock(&h->lock);
    if (ret != 0) {
        if (reserved) {
            th__eh_unreserve(h, units);
        }
        return refuse(h, batch, ret == TH_ENOMEM ? TH_ERETRY : ret);
    }
    return TH_HELD;
}

/* Release batches that never reached the queue (never started, or destroyed early). */
static void release_inboxes(struct th_exporterhelper *h)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_inbox; i++) {
        th__eh_unreserve(h, h->inbox[i].units);
        th_batch_fail(h->inbox[i].batch, TH_ESHUTDOWN);
        th_batch_release(h->inbox[i].batch);
    }
    for (size_t i = 0; i < h->n_overflow; i++) {
        th_batch_fail(h->overflow[i].batch, TH_ESHUTDOWN);
        th_batch_release(h->overflow[i].batch);
    }
    h->n_inbox = h->n_overflow = 0;
    pthread_mutex_unlock(&h->lock);
}

int th_exporterhelper_shutdown(th_exporterhelper_t *h)
{
    pthread_mutex_lock(&h->lock);
    if (h->shut_down) {
        pthread_mutex_unlock(&h->lock);
        return 0;
    }
    h->shut_down = true;
    h->stopping = true;
    if (h->thread_running && h->loop_ready) {
        uv_async_send(&h->wake);
    }
    pthread_mutex_unlock(&h->lock);
    if (h->thread_running) {
        pthread_join(h->thread, NULL);
        h->thread_running = false;
    }
    release_inboxes(h);
    return 0;
}

void th_exporterhelper_destroy(th_exporterhelper_t *h)
{
    if (!h) {
        return;
    }
    th_exporterhelper_shutdown(h);
    if (h->c && h->c->exporterhelper == h) {
        h->c->exporterhelper = NULL;
    }
    /* after the thread: only what a failed start or a never-started helper left */
    struct th__eh_req *r;
    while ((r = th__eh_list_pop(&h->ready)) != NULL) {
        th__eh_req_free(r);
    }
    while ((r = th__eh_list_pop(&h->queue)) != NULL) {
        if (r->held) {
            th_batch_fail(r->held, TH_ESHUTDOWN);
            th_batch_release(r->held);
        }
        th__eh_req_free(r);
    }
    h->tops->destroy(h->transport);
    th_free(h->inbox);
    th_free(h->overflow);
    th_free(h->slots);
    pthread_cond_destroy(&h->started_cond);
    pthread_mutex_destroy(&h->lock);
    th_free(h);
}

void th_exporterhelper_queue_stats(const th_exporterhelper_t *h, uint64_t *size, uint64_t *capacity)
{
    if (size) {
        *size = __atomic_load_n(&h->size, __ATOMIC_RELAXED);
    }
    if (capacity) {
        *capacity = h->capacity;
    }
}

bool th_exporterhelper_queue_enabled(const th_exporterhelper_t *h)
{
    return h->qcfg.enabled;
}

uint64_t th_exporterhelper_enqueue_failed(const th_exporterhelper_t *h)
{
    return __atomic_load_n(&h->enqueue_failed, __ATOMIC_RELAXED);
}

void th__eh_set_max_map_size(th_exporterhelper_t *h, size_t bytes)
{
    h->pq.max_map_size = bytes;
}

void th__eh_redelivered(const th_exporterhelper_t *h, uint64_t *requests, uint64_t *spans)
{
    *requests = h->pq.redelivered;
    *spans = h->pq.redelivered_spans;
}
