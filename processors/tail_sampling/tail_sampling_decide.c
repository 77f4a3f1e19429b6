/*
 * When traces are decided: decision_wait after their first span (later spans do not extend
 * it), or decision_wait_after_root_received after their root span when that is earlier. Both
 * FIFOs keep deadlines in order, so the one timer on the host loop is set for the earlier of
 * their heads, rounded up to a 50 ms boundary so that one tick decides every trace due in
 * that window instead of waking the loop once per trace. Shutdown decides (or drops, when
 * drop_pending_traces_on_shutdown) everything still pending and hands the sampled traces on
 * before it returns, while the consumers downstream are still running.
 */
#include "processors/tail_sampling/tail_sampling_buffer.h"
#include "th/log.h"

#define TICK_NS  50000000ull  /* decisions are grouped at this granularity */
#define RETRY_NS 100000000ull /* refused outputs are retried this often */
#define SLACK_NS 1000000ull   /* libuv counts whole milliseconds: a tick may come this early */
/* A tick or shutdown hands on what it gathered every this many spans, so one output batch
 * stays a reasonable size however many traces come due at once. */
#define FLUSH_SPANS 65536

void th__ts_remember(struct th_tail_sampling *ts, const uint8_t id[16], uint64_t h,
                     enum th_ts_decision d)
{
    th__ts_cache_put(d == TH_TS_SAMPLED ? ts->sampled_cache : ts->not_sampled_cache, id, h, d);
}

void th__ts_decide(struct th_tail_sampling *ts, struct th__ts_trace *t, enum th__ts_why why,
                   uint64_t now_unix_ns)
{
    enum th_ts_decision d = TH_TS_NOT_SAMPLED;
    if (why == TH__TS_TOO_LARGE) {
        __atomic_add_fetch(&ts->stats.traces_dropped_too_large, 1, __ATOMIC_RELAXED);
    } else {
        struct th_ts_verdict v = {.final = TH_TS_NOT_SAMPLED, .policy = -1};
        th_ts_policies_decide(ts->policies, &t->pub, now_unix_ns, &v);
        d = v.final;
        if (why == TH__TS_EARLY) {
            __atomic_add_fetch(&ts->stats.traces_decided_early, 1, __ATOMIC_RELAXED);
        }
    }
    uint64_t spans = t->pub.span_count;
    if (d == TH_TS_SAMPLED) {
        __atomic_add_fetch(&ts->stats.traces_sampled, 1, __ATOMIC_RELAXED);
        if (th__ts_out_add_trace(ts, t) != 0) {
            __atomic_add_fetch(&ts->stats.spans_failed, spans, __ATOMIC_RELAXED);
            __atomic_add_fetch(&ts->base.stats.failed, spans, __ATOMIC_RELAXED);
            th__ts_warn_limited(ts,
                                "out of memory gathering a sampled trace of %llu spans; they "
                                "are lost",
                                (unsigned long long)spans);
        }
    } else {
        if (d == TH_TS_DROPPED) {
            __atomic_add_fetch(&ts->stats.traces_dropped, 1, __ATOMIC_RELAXED);
        } else {
            d = TH_TS_NOT_SAMPLED; /* whatever else the policies say is not a sample */
            __atomic_add_fetch(&ts->stats.traces_not_sampled, 1, __ATOMIC_RELAXED);
        }
        __atomic_add_fetch(&ts->stats.spans_not_sampled, spans, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ts->base.stats.dropped, spans, __ATOMIC_RELAXED);
    }
    uint64_t age = th_now_mono_ns() - t->first_ns;
    __atomic_add_fetch(&ts->stats.decisions, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ts->stats.decision_latency_ns, age, __ATOMIC_RELAXED);
    if (age > ts->stats.decision_latency_max_ns) {
        __atomic_store_n(&ts->stats.decision_latency_max_ns, age, __ATOMIC_RELAXED);
    }
    th__ts_remember(ts, t->pub.trace_id, th__ts_hash(t->pub.trace_id), d);
    th__ts_trace_release(ts, t);
}

/* @return the pending trace due first, or NULL. */
static struct th__ts_trace *first_due(struct th_tail_sampling *ts)
{
    struct th__ts_trace *a = ts->fifo.head;
    struct th__ts_trace *b = ts->root_fifo.head;
    if (!a || (b && b->deadline_ns < a->deadline_ns)) {
        return b;
    }
    return a;
}

static void on_tick(uv_timer_t *timer)
{
    struct th_tail_sampling *ts = timer->data;
    ts->armed_ns = 0;
    th__ts_out_retry(ts);
    uint64_t limit = th_now_mono_ns() + SLACK_NS;
    uint64_t now_unix = th_now_unix_ns();
    size_t decided = 0;
    for (struct th__ts_trace *t; (t = first_due(ts)) && t->deadline_ns <= limit;) {
        th__ts_decide(ts, t, TH__TS_DUE, now_unix);
        decided++;
        if (ts->out.n >= FLUSH_SPANS) {
            th__ts_out_flush(ts);
        }
    }
    if (decided) {
        __atomic_add_fetch(&ts->stats.ticks, 1, __ATOMIC_RELAXED);
    }
    th__ts_out_flush(ts);
    th__ts_timer_arm(ts);
}

void th__ts_timer_arm(struct th_tail_sampling *ts)
{
    if (!ts->timer || ts->stopped) {
        return;
    }
    const struct th__ts_trace *t = first_due(ts);
    uint64_t due = t ? t->deadline_ns : 0;
    uint64_t now = 0;
    if (ts->retry_head) {
        now = th_now_mono_ns();
        due = due && due < now + RETRY_NS ? due : now + RETRY_NS;
    }
    if (!due) {
        return; /* an armed timer with nothing due finds nothing and stops */
    }
    due = (due + TICK_NS - 1) / TICK_NS * TICK_NS;
    if (ts->armed_ns && ts->armed_ns <= due) {
        return;
    }
    if (!now) {
        now = th_now_mono_ns();
    }
    uint64_t delay_ms = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_timer_start(ts->timer, on_tick, delay_ms, 0);
    ts->armed_ns = due;
}

int th__ts_timer_start(struct th_tail_sampling *ts, uv_loop_t *loop)
{
    if (ts->timer || !loop) {
        return 0; /* without a loop (a bare test) decisions come from overflow and shutdown */
    }
    uv_timer_t *t = th_malloc(sizeof(*t));
    if (!t) {
        return TH_ENOMEM;
    }
    int rc = uv_timer_init(loop, t);
    if (rc != 0) {
        th_free(t);
        th_log_error(&ts->base, "cannot create the decision timer: %s", uv_strerror(rc));
        return TH_EIO;
    }
    t->data = ts;
    ts->timer = t;
    ts->armed_ns = 0;
    th__ts_timer_arm(ts);
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    th_free(h);
}

/* The timer lives on the heap and frees itself once libuv is done with it, so the instance
 * can go before the loop runs the close callback. */
void th__ts_timer_close(struct th_tail_sampling *ts)
{
    if (ts->timer) {
        uv_timer_stop(ts->timer);
        uv_close((uv_handle_t *)ts->timer, on_timer_closed);
        ts->timer = NULL;
        ts->armed_ns = 0;
    }
}

int th__ts_shutdown(struct th_tail_sampling *ts)
{
    if (ts->stopped) {
        return 0;
    }
    ts->stopped = true;
    th__ts_timer_close(ts);
    size_t traces = ts->n_traces;
    uint64_t sampled_before = ts->stats.traces_sampled;
    uint64_t spans = 0;
    if (ts->cfg.drop_pending_traces_on_shutdown) {
        for (struct th__ts_trace *t; (t = first_due(ts));) {
            spans += t->pub.span_count;
            __atomic_add_fetch(&ts->stats.trace_dropped_too_early, 1, __ATOMIC_RELAXED);
            th__ts_trace_release(ts, t);
        }
        __atomic_add_fetch(&ts->base.stats.dropped, spans, __ATOMIC_RELAXED);
        if (traces) {
            th_log_info(&ts->base,
                        "dropped %zu pending traces (%llu spans) undecided, as "
                        "drop_pending_traces_on_shutdown asks",
                        traces, (unsigned long long)spans);
        }
    } else {
        uint64_t now_unix = th_now_unix_ns();
        for (struct th__ts_trace *t; (t = first_due(ts));) {
            spans += t->pub.span_count;
            th__ts_decide(ts, t, TH__TS_SHUTDOWN, now_unix);
            if (ts->out.n >= FLUSH_SPANS) {
                th__ts_out_flush(ts);
            }
        }
        if (traces) {
            th_log_info(&ts->base,
                        "decided %zu pending traces (%llu spans) early at shutdown, %llu "
                        "sampled",
                        traces, (unsigned long long)spans,
                        (unsigned long long)(ts->stats.traces_sampled - sampled_before));
        }
    }
    th__ts_out_flush(ts);
    th__ts_out_retry(ts);
    th__ts_out_drop_retries(ts, "still refused at shutdown");
    const struct th_tail_sampling_stats *s = &ts->stats;
    th_log_info(&ts->base,
                "summary: %llu traces received, %llu sampled, %llu not sampled, %llu dropped "
                "by policy, %llu decided early, %llu too large, %llu late spans, %llu spans "
                "sampled, %llu spans lost downstream, mean decision latency %.0f ms",
                (unsigned long long)s->new_trace_id_received, (unsigned long long)s->traces_sampled,
                (unsigned long long)s->traces_not_sampled, (unsigned long long)s->traces_dropped,
                (unsigned long long)s->traces_decided_early,
                (unsigned long long)s->traces_dropped_too_large, (unsigned long long)s->late_spans,
                (unsigned long long)s->spans_sampled, (unsigned long long)s->spans_failed,
                s->decisions ? (double)s->decision_latency_ns / (double)s->decisions / 1e6 : 0.0);
    return 0;
}
