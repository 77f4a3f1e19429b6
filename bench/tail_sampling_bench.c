/*
 * Benchmark of the tail_sampling processor: spans per CPU-second through decode →
 * tail_sampling → nop with tail sampling on (status_code ERROR + latency 500ms + probabilistic
 * 10%), 50,000 traces in flight, against decode → nop alone; and the memory overhead per
 * buffered trace beyond its span data, at 50,000 traces in flight.
 *
 *   th_tail_sampling_bench [-n PUSHES] [-t] [FILE.pb ...]
 *
 * Every push decodes one payload into a fresh arena, as the OTLP/HTTP receiver does, and
 * rewrites the first four bytes of each trace id with a counter (the bench README's
 * OTLP_UNIQUE), so every push brings new traces. Two ways to keep 50,000 in flight:
 *
 *   overflow   num_traces 50000, decision_wait 1h: once full, every new trace decides the
 *              oldest early (the steady state is exactly 50,000 pending);
 *   timer      num_traces 1M, decision_wait chosen so that about 50,000 traces are pending at
 *              the measured rate, the loop run between pushes: decisions come from the timer,
 *              many per tick.
 *
 * Memory: after filling 50,000 traces (no decisions yet), the component's own structures are
 * counted (table slots, trace records, chunks in use and their slack, decision cache, source
 * records). RSS is measured in two child processes that decode the same pushes: one holds the
 * batches in a plain array (the span data alone), the other hands them to tail_sampling; the
 * difference per pending trace is the overhead RSS sees. -t raises glibc's trim and mmap thresholds
 * first, as the other benches do. Without files it uses
 * /work/shared/bench/payloads/otlp-100spans-01..10.pb (10 traces of 10 spans each). CPU time is
 * CLOCK_PROCESS_CPUTIME_ID, one thread. Build with -DCMAKE_BUILD_TYPE=Release.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exporters/nop/nop.h"
#include "processors/tail_sampling/tail_sampling_buffer.h"
#include "th/log.h"
#include "th/otlp.h"
#include "bench/bench_payload.h"

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "VmRSS:", 6)) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

/* Decode as the receiver does, then make the traces new: counter in bytes 0..3 of the id. */
static th_batch_t *decode(const struct th_bench_payload *p, uint32_t unique)
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
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                memcpy(ss->spans[k]->trace_id.data, &unique, 4);
            }
        }
    }
    th_batch_t *b = th_batch_create(a, req);
    if (!b) {
        exit(1);
    }
    return b;
}

static const char *policies_yaml =
    "policies:\n"
    "  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n"
    "  - {name: slow, type: latency, latency: {threshold_ms: 500}}\n"
    "  - {name: some, type: probabilistic, probabilistic: {sampling_percentage: 10}}\n";

struct rig {
    uv_loop_t loop;
    struct th_host host;
    th_arena_t *arena;
    struct th_component *nop;
    struct th_component *ts;
    struct th_consumer *entry;
};

/* @p extra: YAML keys before the policies; NULL for nop alone. */
static void rig_open(struct rig *r, const char *extra)
{
    memset(r, 0, sizeof(*r));
    uv_loop_init(&r->loop);
    r->host.loop = &r->loop;
    static const struct th_nop_cfg nop_cfg = {0};
    if (th_component_create(&th_exporter_nop_ops, "nop", &nop_cfg, NULL, &r->nop) != 0) {
        exit(1);
    }
    r->entry = &r->nop->consumer;
    if (!extra) {
        return;
    }
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "%s%s", extra, policies_yaml);
    r->arena = th_arena_create(0, 0);
    th_node_t *node = NULL;
    char err[512] = "";
    struct th_tail_sampling_cfg *cfg = th_arena_calloc(r->arena, 1, sizeof(*cfg));
    if (th_yaml_parse(yaml, strlen(yaml), "<bench>", r->arena, &node, err, sizeof(err)) != 0 ||
        th_cfg_decode(th_tail_sampling_config_fields, node, cfg, r->arena, "tail_sampling", err,
                      sizeof(err)) != 0 ||
        th_component_create(&th_processor_tail_sampling_ops, "tail_sampling", cfg,
                            &r->nop->consumer, &r->ts) != 0 ||
        r->ts->ops->start(r->ts, &r->host) != 0) {
        fprintf(stderr, "tail_sampling: cannot start: %s\n", err);
        exit(1);
    }
    r->ts->started = true;
    r->entry = &r->ts->consumer;
}

static void rig_close(struct rig *r)
{
    th_component_destroy(r->ts);
    th_component_destroy(r->nop);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    th_arena_destroy(r->arena);
}

static uint32_t unique_seq = 1;

/* @return spans per CPU-second over @p pushes decoded pushes (after @p warm unmeasured ones);
 * @p run_loop runs the loop between pushes (timer mode). */
static double run(struct rig *r, const struct th_bench_payload *ps, size_t n, long warm,
                  long pushes, bool run_loop)
{
    size_t spans = 0;
    uint64_t t0 = 0;
    for (long it = 0; it < warm + pushes; it++) {
        if (it == warm) {
            t0 = cpu_ns();
            spans = 0;
        }
        th_batch_t *b = decode(&ps[it % (long)n], unique_seq++);
        spans += b->span_count;
        int rc = th_consumer_consume(r->entry, b);
        if (rc < 0) {
            fprintf(stderr, "consume: %s\n", th_strerror(rc));
            exit(1);
        }
        if (run_loop && it % 8 == 0) {
            uv_run(&r->loop, UV_RUN_NOWAIT);
        }
    }
    uint64_t t1 = cpu_ns();
    return t1 > t0 ? (double)spans * 1e9 / (double)(t1 - t0) : 0;
}

/* Fill a tail_sampling instance with @p traces pending; print what it accounts for. */
static void memory_accounted(const struct th_bench_payload *ps, size_t n, size_t traces)
{
    struct rig r;
    rig_open(&r, "decision_wait: 1h\nnum_traces: 50000\nmax_buffer_bytes: 16GiB\n");
    const struct th_tail_sampling *ts = (const struct th_tail_sampling *)r.ts;
    uint32_t seq = 1;
    while (ts->n_traces < traces) {
        th_batch_t *b = decode(&ps[seq % n], seq);
        seq++;
        if (th_consumer_consume(r.entry, b) < 0) {
            exit(1);
        }
    }
    size_t chunks_used = 0;
    size_t spans = 0;
    for (const struct th__ts_trace *t = ts->fifo.head; t; t = t->next) {
        for (const struct th_ts_chunk *k = t->pub.first; k; k = k->next) {
            chunks_used++;
        }
        spans += t->pub.span_count;
    }
    double nt = (double)ts->n_traces;
    size_t table = (ts->mask + 1) * sizeof(struct th__ts_slot);
    size_t chunk_bytes = chunks_used * sizeof(struct th__ts_chunk);
    size_t cache = 0;
    for (int i = 0; i < 2; i++) {
        const struct th__ts_cache *c = &ts->cache_store[i];
        cache += c->cap * 17 + (c->cap ? (c->imask + 1) * sizeof(uint32_t) : 0);
    }
    /* one source record per batch held: 10 traces per payload here */
    double srcs = (double)sizeof(struct th__ts_src) * (double)(seq - 1) / nt;
    double per = ((double)(table + chunk_bytes + cache) + srcs * nt) / nt +
                 (double)sizeof(struct th__ts_trace);
    printf("memory at %zu traces in flight (%zu spans, %.1f per trace):\n", ts->n_traces, spans,
           (double)spans / nt);
    printf("  accounted: %.0f B per trace = table %.0f + record %zu + chunks %.0f (%zu B each, "
           "%.2f per trace) + decision cache %.0f + source records %.1f\n",
           per, (double)table / nt, sizeof(struct th__ts_trace), (double)chunk_bytes / nt,
           sizeof(struct th__ts_chunk), (double)chunks_used / nt, (double)cache / nt, srcs);
    rig_close(&r);
}

/* In a child process: decode the same pushes as memory_accounted and hold them, either in a
 * plain array (@p with_ts false: the span data alone) or in tail_sampling; print the RSS
 * growth in KiB on @p fd. */
static void rss_child(const struct th_bench_payload *ps, size_t n, size_t traces, bool with_ts,
                      int fd)
{
    long before = rss_kib();
    struct rig r;
    memset(&r, 0, sizeof(r));
    size_t pushes = traces / 10;
    th_batch_t **held = with_ts ? NULL : calloc(pushes, sizeof(*held));
    const struct th_tail_sampling *ts = NULL;
    if (with_ts) {
        /* The sizing hint makes the table full size at once: growing it frees the old one,
         * and a large free moves glibc's mmap threshold, which changes where the arenas of
         * later batches go (and so RSS) for reasons that have nothing to do with us. */
        rig_open(&r, "decision_wait: 1h\nnum_traces: 50000\nmax_buffer_bytes: 16GiB\n"
                     "expected_new_traces_per_sec: 100000\n");
        ts = (const struct th_tail_sampling *)r.ts;
    }
    for (uint32_t seq = 1; seq <= pushes; seq++) {
        th_batch_t *b = decode(&ps[seq % n], seq);
        if (!with_ts) {
            held[seq - 1] = b;
        } else if (th_consumer_consume(r.entry, b) < 0) {
            exit(1);
        }
    }
    long after = rss_kib();
    char line[64];
    int len = snprintf(line, sizeof(line), "%ld %zu\n", after - before, ts ? ts->n_traces : traces);
    _exit(write(fd, line, (size_t)len) == len ? 0 : 1);
}

static long rss_growth(const struct th_bench_payload *ps, size_t n, size_t traces, bool with_ts,
                       size_t *pending)
{
    int p[2];
    if (pipe(p) != 0) {
        exit(1);
    }
    fflush(stdout); /* or the child prints it again */
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        rss_child(ps, n, traces, with_ts, p[1]);
    }
    close(p[1]);
    char buf[64] = "";
    ssize_t got = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    waitpid(pid, NULL, 0);
    long kib = -1;
    if (got > 0) {
        sscanf(buf, "%ld %zu", &kib, pending);
    }
    return kib;
}

static void memory(const struct th_bench_payload *ps, size_t n, size_t traces)
{
    /* The children first, while this process's heap is pristine: they inherit it, and memory
     * freed here earlier would be reused by them without showing in RSS. */
    size_t pend_plain = 0;
    size_t pend_ts = 0;
    long plain = rss_growth(ps, n, traces, false, &pend_plain);
    long with = rss_growth(ps, n, traces, true, &pend_ts);
    memory_accounted(ps, n, traces);
    printf("  RSS growth holding the decoded batches alone: %ld KiB; in tail_sampling (%zu "
           "traces pending): %ld KiB\n",
           plain, pend_ts, with);
    printf("  RSS beyond the span data: %.0f B per trace\n",
           (double)(with - plain) * 1024.0 / (double)(pend_ts ? pend_ts : 1));
}

int main(int argc, char **argv)
{
    struct th_bench_args args = TH_BENCH_ARGS_PIPELINE;
    struct th_bench_payload ps[TH_BENCH_MAX_PAYLOADS];
    size_t n = 0;
    if (th_bench_payloads_load(argc, argv, &args, ps, &n) != 0) {
        return 1;
    }
    long pushes = args.count;
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    printf("command: ");
    for (int i = 0; i < argc; i++) {
        printf("%s%s", i ? " " : "", argv[i]);
    }
    printf("\n");

    /* Memory first, in a fresh heap. */
    memory(ps, n, 50000);

    struct rig r;
    rig_open(&r, NULL);
    double base = run(&r, ps, n, pushes / 10, pushes, false);
    rig_close(&r);
    printf("%-44s %10.0f spans/CPU-s\n", "decode -> nop", base);

    /* 50,000 in flight: fill, then measure the steady state of deciding the oldest early. */
    rig_open(&r, "decision_wait: 1h\nnum_traces: 50000\nmax_buffer_bytes: 16GiB\n");
    double ovf = run(&r, ps, n, 50000 / 10 + pushes / 10, pushes, false);
    const struct th_tail_sampling_stats *s = th_tail_sampling_stats(r.ts);
    printf("%-44s %10.0f spans/CPU-s (%+.2f us/span), %llu traces in flight, %.1f%% sampled\n",
           "decode -> tail_sampling (overflow) -> nop", ovf, (1e6 / ovf - 1e6 / base),
           (unsigned long long)s->traces_on_memory,
           100.0 * (double)s->traces_sampled / (double)(s->decisions ? s->decisions : 1));
    rig_close(&r);

    /* Timer: decision_wait for about 50,000 in flight at the overflow rate. */
    double traces_per_s = ovf / 10.0;
    int wait_ms = (int)(50000.0 / traces_per_s * 1000.0);
    char extra[256];
    snprintf(extra, sizeof(extra),
             "decision_wait: %dms\nnum_traces: 1000000\nmax_buffer_bytes: 16GiB\n", wait_ms);
    rig_open(&r, extra);
    double tim = run(&r, ps, n, 50000 / 10, pushes, true);
    s = th_tail_sampling_stats(r.ts);
    printf("%-44s %10.0f spans/CPU-s (%+.2f us/span), decision_wait %d ms, %llu in flight at "
           "the end, %llu ticks\n",
           "decode -> tail_sampling (timer) -> nop", tim, (1e6 / tim - 1e6 / base), wait_ms,
           (unsigned long long)s->traces_on_memory, (unsigned long long)s->ticks);
    rig_close(&r);
    for (size_t i = 0; i < n; i++) {
        free(ps[i].buf);
    }
    return 0;
}
