/*
 * Decode benchmark: decodes OTLP payloads N times each, protobuf and JSON, with a fresh arena
 * per request as the receiver does, and prints spans per CPU-second of this thread for each
 * codec (CPU time, not wall time, so other load on the machine does not skew it).
 *
 *   th_decode_bench [-n ITERATIONS] [-t] [FILE.pb|FILE.json ...]
 *
 * The arena's first chunk is sized as the OTLP/HTTP receiver sizes it (8x the body, 16 KiB to
 * 1 MiB). -t raises glibc's trim and mmap thresholds first, for comparison: with a small first
 * chunk, freeing each request's arena can hand the top of the heap back to the kernel and the
 * next request faults the pages in again, which then costs more than decoding.
 * Without files it uses the bench payloads in /work/shared/bench/payloads (01..10, both
 * encodings). Build with -DCMAKE_BUILD_TYPE=Release for meaningful figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "th/otlp.h"
#include "bench/bench_payload.h"

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Decode every payload of one encoding @p iters times; @return spans per second. */
static double run(struct th_bench_payload *ps, size_t n, bool json, long iters, size_t *spans_out,
                  size_t *bytes_out)
{
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    size_t spans = 0;
    size_t bytes = 0;
    uint64_t t0 = cpu_ns();
    for (long it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) {
            if (ps[i].json != json) {
                continue;
            }
            /* The first chunk the OTLP/HTTP receiver picks: about the decoded size. */
            size_t chunk = TH_MIN(TH_MAX(ps[i].len * 8, (size_t)16 * 1024), (size_t)1 << 20);
            th_arena_t *a = th_arena_create(chunk, 0);
            th_otlp_request_t *req = NULL;
            struct th_otlp_error err;
            int rc = json ? th_otlp_decode_json(ps[i].buf, ps[i].len, &lim, a, &req, &err)
                          : th_otlp_decode_pb(ps[i].buf, ps[i].len, &lim, a, &req, &err);
            if (rc) {
                fprintf(stderr, "%s: %s (%s)\n", ps[i].path, th_strerror(rc), err.msg);
                exit(1);
            }
            spans += th_otlp_request_span_count(req);
            bytes += ps[i].len;
            th_arena_destroy(a);
        }
    }
    uint64_t t1 = cpu_ns();
    *spans_out = spans;
    *bytes_out = bytes;
    return t1 > t0 ? (double)spans * 1e9 / (double)(t1 - t0) : 0;
}

int main(int argc, char **argv)
{
    struct th_bench_args args = {.count = 2000,
                                 .trim_threshold = 64 << 20,
                                 .mmap_threshold = 16 << 20,
                                 .default_json_files = true};
    struct th_bench_payload ps[TH_BENCH_MAX_PAYLOADS];
    size_t n = 0;
    if (th_bench_payloads_load(argc, argv, &args, ps, &n) != 0) {
        return 1;
    }
    long iters = args.count;
    for (int json = 0; json <= 1; json++) {
        size_t spans;
        size_t bytes;
        /* A short warm-up, then the measured run. */
        run(ps, n, json, iters / 10 + 1, &spans, &bytes);
        double rate = run(ps, n, json, iters, &spans, &bytes);
        if (spans) {
            printf("%-8s %10.0f spans/CPU-s  %8.1f MB/CPU-s  (%zu spans)\n",
                   json ? "json" : "protobuf", rate, rate * ((double)bytes / (double)spans) / 1e6,
                   spans);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(ps[i].buf);
    }
    return 0;
}
