/*
 * Benchmark of the batch and memory_limiter processors: spans per CPU-second with each
 * processor in front of a nop exporter, against the nop exporter alone, two ways:
 *
 *   isolated   the bench payloads are decoded once and the same batches are pushed again and
 *              again (a reference is taken before each push, so the nop exporter's release
 *              does not free them): the figure is the processor's own cost;
 *   pipeline   every push decodes its payload into a fresh arena first, as the OTLP/HTTP
 *              receiver does: the figure is what a real pipeline loses to the processor.
 *
 *   th_batch_limiter_bench [-n ITERATIONS] [-t] [FILE.pb ...]
 *
 * -t raises glibc's trim and mmap thresholds first (as th_decode_bench -t does). A batch
 * processor keeps a batch's worth of decoded requests alive (82 of these payloads for the
 * default 8192 spans); freeing them together hands the top of the heap back to the kernel, and
 * the next requests fault their pages in again, which costs far more than the merging. -t
 * shows how much of the "with decode" difference is that.
 *
 * Without files it uses /work/shared/bench/payloads/otlp-100spans-01..10.pb. CPU time is
 * clock_gettime(CLOCK_PROCESS_CPUTIME_ID); everything runs on one thread, so spans per
 * CPU-second is spans per second per core. Build with -DCMAKE_BUILD_TYPE=Release.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exporters/nop/nop.h"
#include "processors/batch/batch.h"
#include "processors/memory_limiter/memory_limiter.h"
#include "th/log.h"
#include "th/otlp.h"
#include "bench/bench_payload.h"

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Decode as the receiver does: an arena whose first chunk is about the decoded size. */
static th_batch_t *decode(const struct th_bench_payload *p)
{
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    size_t chunk = TH_MIN(TH_MAX(p->len * 8, (size_t)16 * 1024), (size_t)1 << 20);
    th_arena_t *a = th_arena_create(chunk, 0);
    th_otlp_request_t *req = NULL;
    struct th_otlp_error err;
    if (!a || th_otlp_decode_pb(p->buf, p->len, &lim, a, &req, &err) != 0) {
        fprintf(stderr, "%s: cannot decode: %s\n", p->path, err.msg);
        exit(1);
    }
    th_batch_t *b = th_batch_create(a, req);
    if (!b) {
        exit(1);
    }
    return b;
}

/* One processor configuration under test; NULL ops means the nop exporter alone. */
struct setup {
    const char *name;
    const struct th_component_ops *ops;
    const void *cfg;
};

struct rig {
    uv_loop_t loop;
    struct th_host host;
    struct th_component *nop;
    struct th_component *proc;
    struct th_consumer *entry;
};

static void rig_open(struct rig *r, const struct setup *s)
{
    memset(r, 0, sizeof(*r));
    uv_loop_init(&r->loop);
    r->host.loop = &r->loop;
    static const struct th_nop_cfg nop_cfg = {0};
    if (th_component_create(&th_exporter_nop_ops, "nop", &nop_cfg, NULL, &r->nop) != 0) {
        exit(1);
    }
    r->entry = &r->nop->consumer;
    if (s->ops) {
        if (th_component_create(s->ops, s->name, s->cfg, &r->nop->consumer, &r->proc) != 0 ||
            r->proc->ops->start(r->proc, &r->host) != 0) {
            fprintf(stderr, "%s: cannot start\n", s->name);
            exit(1);
        }
        r->proc->started = true;
        r->entry = &r->proc->consumer;
    }
}

/* Shutdown flushes what the batch processor still holds: part of the measured work. */
static void rig_flush(struct rig *r)
{
    if (r->proc && r->proc->ops->shutdown) {
        r->proc->ops->shutdown(r->proc);
        r->proc->shut_down = true;
    }
}

static void rig_close(struct rig *r)
{
    th_component_destroy(r->proc);
    th_component_destroy(r->nop);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
}

/* @return spans per CPU-second pushing the same decoded batches @p iters times. */
static double run_isolated(const struct setup *s, th_batch_t **bs, size_t n, long iters)
{
    struct rig r;
    rig_open(&r, s);
    size_t spans = 0;
    uint64_t t0 = cpu_ns();
    for (long it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) {
            th_batch_retain(bs[i]);
            spans += bs[i]->span_count;
            int rc = th_consumer_consume(r.entry, bs[i]);
            if (rc < 0) {
                fprintf(stderr, "%s: consume: %s\n", s->name, th_strerror(rc));
                exit(1);
            }
        }
    }
    rig_flush(&r);
    uint64_t t1 = cpu_ns();
    rig_close(&r);
    return t1 > t0 ? (double)spans * 1e9 / (double)(t1 - t0) : 0;
}

/* @return spans per CPU-second decoding each payload and pushing it, @p iters times. */
static double run_pipeline(const struct setup *s, const struct th_bench_payload *ps, size_t n,
                           long iters)
{
    struct rig r;
    rig_open(&r, s);
    size_t spans = 0;
    uint64_t t0 = cpu_ns();
    for (long it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) {
            th_batch_t *b = decode(&ps[i]);
            spans += b->span_count;
            int rc = th_consumer_consume(r.entry, b);
            if (rc < 0) {
                fprintf(stderr, "%s: consume: %s\n", s->name, th_strerror(rc));
                exit(1);
            }
        }
    }
    rig_flush(&r);
    uint64_t t1 = cpu_ns();
    rig_close(&r);
    return t1 > t0 ? (double)spans * 1e9 / (double)(t1 - t0) : 0;
}

int main(int argc, char **argv)
{
    struct th_bench_args args = TH_BENCH_ARGS_PIPELINE;
    struct th_bench_payload ps[TH_BENCH_MAX_PAYLOADS];
    size_t n = 0;
    if (th_bench_payloads_load(argc, argv, &args, ps, &n) != 0) {
        return 1;
    }
    long iters = args.count;
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);

    static const int64_t ms = 1000000;
    struct th_batch_processor_cfg batch_default = {
        .send_batch_size = 8192, .timeout = 200 * ms, .metadata_cardinality_limit = 1000};
    struct th_batch_processor_cfg batch_split = {
        .send_batch_size = 50, .send_batch_max_size = 50, .timeout = 200 * ms};
    struct th_batch_processor_cfg batch_merge_split = {
        .send_batch_size = 1000, .send_batch_max_size = 1000, .timeout = 200 * ms};
    struct th_batch_processor_cfg batch_passthrough = {.send_batch_size = 8192, .timeout = 0};
    struct th_memory_limiter_cfg limiter = {
        .check_interval = 1000 * ms,
        .limit_mib = 1 << 20, /* never reached: the cost of checking, not of refusing */
        .min_gc_interval_when_soft_limited = 10000 * ms,
        .max_gc_interval_when_soft_limited = 30000 * ms,
        .max_gc_interval_when_hard_limited = 30000 * ms,
    };
    const struct setup setups[] = {
        {"nop alone", NULL, NULL},
        {"batch (8192, 200ms: merge)", &th_processor_batch_ops, &batch_default},
        {"batch (1000/1000: merge+split)", &th_processor_batch_ops, &batch_merge_split},
        {"batch (50/50: split each)", &th_processor_batch_ops, &batch_split},
        {"batch (timeout 0: pass on)", &th_processor_batch_ops, &batch_passthrough},
        {"memory_limiter (1s)", &th_processor_memory_limiter_ops, &limiter},
    };

    th_batch_t *bs[64];
    for (size_t i = 0; i < n; i++) {
        bs[i] = decode(&ps[i]);
    }
    long pipe_iters = iters / 10 + 1;
    printf("%-32s %16s %10s %16s %10s\n", "", "isolated", "ns/span", "with decode", "ns/span");
    double base_iso = 0;
    double base_pipe = 0;
    for (size_t k = 0; k < TH_ARRAY_SIZE(setups); k++) {
        run_isolated(&setups[k], bs, n, iters / 10 + 1); /* warm-up */
        double iso = run_isolated(&setups[k], bs, n, iters);
        double pipe = run_pipeline(&setups[k], ps, n, pipe_iters);
        if (k == 0) {
            base_iso = iso;
            base_pipe = pipe;
            printf("%-32s %12.0f sp/s %10s %12.0f sp/s %10s\n", setups[k].name, iso, "-", pipe,
                   "-");
            continue;
        }
        /* The processor's own cost per span: the difference of the inverse rates. */
        printf("%-32s %12.0f sp/s %+9.1f %12.0f sp/s %+9.1f\n", setups[k].name, iso,
               1e9 / iso - 1e9 / base_iso, pipe, 1e9 / pipe - 1e9 / base_pipe);
    }
    for (size_t i = 0; i < n; i++) {
        th_batch_release(bs[i]);
        free(ps[i].buf);
    }
    return 0;
}
