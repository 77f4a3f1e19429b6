/*
 * The writer thread of the jaeger_storage_exporter: a bounded ring of batches filled by the
 * event loop and drained by one thread that writes as many batches as are waiting (up to a
 * limit) in one store transaction. Group commit is what makes a synced commit affordable:
 * one fsync covers every request that arrived while the previous commit ran.
 *
 * Acks are settled when a batch is released after its commit; a batch the store could not
 * take is released with a retryable failure, so its sender gets 503 and sends it again.
 */
#include <string.h>
#include <time.h>

#include "exporters/jaeger_storage/jaeger_storage_exporter.h"
#include "th/log.h"

/* While writes keep failing, the error is logged again this often (with a count). */
#define FAIL_LOG_EVERY_NS (30ull * 1000000000ull)

int th__jse_writer_init(struct th_jse_writer *w, struct th_component *owner, size_t cap,
                        size_t max_bytes, size_t max_per_txn, uint64_t retention_interval_ns)
{
    memset(w, 0, sizeof(*w));
    w->ring = th_calloc(cap, sizeof(*w->ring));
    w->ring_bytes = th_calloc(cap, sizeof(*w->ring_bytes));
    if (!w->ring || !w->ring_bytes) {
        th_free(w->ring);
        th_free(w->ring_bytes);
        w->ring = NULL;
        return TH_ENOMEM;
    }
    w->cap = cap;
    w->owner = owner;
    w->max_bytes = max_bytes;
    w->max_per_txn = max_per_txn;
    w->retention_interval_ns = retention_interval_ns;
    pthread_mutex_init(&w->lock, NULL);
    /* timed waits on the monotonic clock: a wall clock step must neither stall a waiting
     * group (a step back) nor spin the thread (a step forward) */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

/* The absolute monotonic time @p ns from now, for pthread_cond_timedwait. */
static struct timespec mono_after(uint64_t ns)
{
    uint64_t t = th_now_mono_ns() + ns;
    return (struct timespec){(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
}

/* A group this large commits without waiting: the per-commit cost is already spread thin. */
#define COMMIT_NOW_SPANS 4096

void th__jse_writer_set_commit_delay(struct th_jse_writer *w, uint64_t ns)
{
    w->commit_delay_ns = ns;
}

static size_t batch_bytes(const th_batch_t *b)
{
    return th_arena_reserved(b->arena);
}

/* Write one group; on TH_ESPACE run retention (expired spans, or the oldest with
 * evict_oldest_when_full) and try once more. */
static int write_group(struct th_jse_writer *w, th_batch_t **group, size_t n)
{
    int ret = th_store_write(w->store, group, n);
    if (ret == TH_ESPACE && w->store->ops->retention) {
        if (!w->failing) {
            th_log_warn(w->owner, "store is full; enforcing retention before retrying the write");
        }
        w->store->ops->retention(w->store, th_now_unix_ns());
        ret = th_store_write(w->store, group, n);
    }
    return ret;
}

/* Health and the log follow the store's state: one clear line when writes start failing
 * (and every FAIL_LOG_EVERY_NS while they do), one when they work again. */
static void note_result(struct th_jse_writer *w, int ret, size_t spans)
{
    uint64_t now = th_now_mono_ns();
    if (ret == 0) {
        if (w->failing) {
            th_log_info(w->owner,
                        "the store takes writes again after %llu failed commits in %.1f s; "
                        "ingest accepts spans again",
                        (unsigned long long)w->failed_commits,
                        (double)(now - w->fail_since_ns) / 1e9);
            w->failing = false;
            w->failed_commits = 0;
        }
        th_component_set_status(w->owner, 0, NULL);
        return;
    }
    struct th_store_stats st;
    th_store_stats(w->store, &st);
    int e = st.last_write_errno;
    const char *reason = ret == TH_ESPACE                          ? "the store is full"
                         : e == EROFS || e == EACCES || e == EPERM ? "the store is read-only"
                                                                   : "the store cannot write";
    th_component_set_status(w->owner, ret, reason);
    w->failed_commits++;
    if (!w->failing) {
        w->failing = true;
        w->fail_since_ns = now;
    } else if (now - w->last_fail_log_ns < FAIL_LOG_EVERY_NS) {
        th_log_debug(w->owner, "%zu spans not stored, senders will retry: %s", spans,
                     th_strerror(ret));
        return;
    }
    w->last_fail_log_ns = now;
    const char *fix = ret == TH_ESPACE
                          ? "free space on the store's disk (nothing stored is deleted "
                            "before its ttl unless evict_oldest_when_full is set)"
                      : e == EROFS || e == EACCES || e == EPERM
                          ? "make the store's directory and files writable again"
                          : "fix the store's disk";
    th_log_error_ctx(w->owner, "writing spans to the store",
                     "%s (%s%s%s): %zu spans not stored; ingest answers 503 and senders retry "
                     "(%llu failed commits so far); writes resume by themselves once you %s",
                     reason, th_strerror(ret), e ? ": " : "", e ? strerror(e) : "", spans,
                     (unsigned long long)w->failed_commits, fix);
}

static void maybe_retention(struct th_jse_writer *w)
{
    uint64_t now = th_now_mono_ns();
    if (!w->store->ops->retention || now - w->last_retention_ns < w->retention_interval_ns) {
        return;
    }
    w->last_retention_ns = now;
    int ret = w->store->ops->retention(w->store, th_now_unix_ns());
    if (ret != 0) {
        th_log_error(w->owner, "retention pass failed: %s", th_strerror(ret));
    }
}

static void *writer_main(void *arg)
{
    struct th_jse_writer *w = arg;
    th_batch_t *group[256];
    size_t max = TH_MIN(w->max_per_txn, TH_ARRAY_SIZE(group));
    w->last_retention_ns = th_now_mono_ns();
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->count == 0 && !w->stopping) {
            struct timespec ts = mono_after(1000000000u); /* now and then, for retention */
            pthread_cond_timedwait(&w->wake, &w->lock, &ts);
            if (w->count == 0) {
                pthread_mutex_unlock(&w->lock);
                maybe_retention(w);
                pthread_mutex_lock(&w->lock);
            }
        }
        if (w->count == 0 && w->stopping) {
            break;
        }
        size_t n = 0;
        size_t bytes = 0;
        size_t spans = 0;
        uint64_t deadline = 0;
        for (;;) {
            while (w->count > 0 && n < max) {
                group[n] = w->ring[w->head];
                /* The size counted at push: the arena may have grown since (acks, merging). */
                bytes += w->ring_bytes[w->head];
                spans += group[n]->span_count;
                n++;
                w->head = (w->head + 1) % w->cap;
                w->count--;
            }
            /* Group commit with a delay: every commit rewrites the paths of each index it
             * touches and syncs them, so a commit of a few batches costs nearly what one of
             * many does. A small group waits briefly for the requests already on their way. */
            if (n == max || spans >= COMMIT_NOW_SPANS || w->commit_delay_ns == 0 || w->stopping) {
                break;
            }
            uint64_t now = th_now_mono_ns();
            if (deadline == 0) {
                deadline = now + w->commit_delay_ns;
            }
            if (now >= deadline) {
                break;
            }
            struct timespec ts = mono_after(deadline - now);
            pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        }
        pthread_mutex_unlock(&w->lock);

        int ret = write_group(w, group, n);
        /* health_check reports a failure until a write succeeds again */
        note_result(w, ret, spans);
        if (ret == 0) {
            __atomic_add_fetch(&w->owner->stats.sent, spans, __ATOMIC_RELAXED);
        } else {
            __atomic_add_fetch(&w->owner->stats.failed, spans, __ATOMIC_RELAXED);
        }
        for (size_t i = 0; i < n; i++) {
            if (ret != 0) {
                th_batch_fail(group[i], TH_ERETRY);
            }
            th_batch_release(group[i]);
        }
        maybe_retention(w);

        pthread_mutex_lock(&w->lock);
        w->bytes -= bytes;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int th__jse_writer_start(struct th_jse_writer *w, th_store_t *store)
{
    w->store = store;
    w->stopping = false;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        return TH_EIO;
    }
    w->running = true;
    return 0;
}

int th__jse_writer_push(struct th_jse_writer *w, th_batch_t *b)
{
    size_t bytes = batch_bytes(b);
    pthread_mutex_lock(&w->lock);
    if (!w->running || w->stopping) {
        pthread_mutex_unlock(&w->lock);
        th_batch_release(b);
        return TH_ESHUTDOWN;
    }
    /* Full by count or by memory: refuse now, so the sender retries instead of the
     * process growing without bound. An empty queue always takes one batch. */
    if (w->count == w->cap || (w->count > 0 && w->bytes + bytes > w->max_bytes)) {
        size_t count = w->count, queued = w->bytes;
        pthread_mutex_unlock(&w->lock);
        __atomic_add_fetch(&w->enqueue_failed, b->span_count, __ATOMIC_RELAXED);
        th_batch_release(b);
        th_log_debug(w->owner, "queue full: %zu batches, %zu bytes queued, %zu more refused", count,
                     queued, bytes);
        return TH_ERETRY;
    }
    w->ring[(w->head + w->count) % w->cap] = b;
    w->ring_bytes[(w->head + w->count) % w->cap] = bytes;
    w->count++;
    w->bytes += bytes;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void th__jse_writer_stop(struct th_jse_writer *w)
{
    pthread_mutex_lock(&w->lock);
    if (!w->running) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    w->running = false;
}

void th__jse_writer_deinit(struct th_jse_writer *w)
{
    if (!w->ring) {
        return;
    }
    /* Only reached with the thread stopped; anything left was never written. */
    while (w->count > 0) {
        th_batch_t *b = w->ring[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
        th_batch_fail(b, TH_ESHUTDOWN);
        th_batch_release(b);
    }
    th_free(w->ring);
    th_free(w->ring_bytes);
    w->ring = NULL;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
}
