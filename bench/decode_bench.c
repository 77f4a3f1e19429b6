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
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "th/otlp.h"

struct payload {
    char path[512];
    uint8_t *buf;
    size_t len;
    bool json;
};

static int load(struct payload *p)
{
    FILE *f = fopen(p->path, "rb");
    if (!f) {
        return -1;
    }
    int rc = -1;
    if (fseek(f, 0, SEEK_END) != 0) {
        goto out;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto out;
    }
    p->len = (size_t)n;
    p->buf = malloc(p->len ? p->len : 1);
    if (!p->buf || fread(p->buf, 1, p->len, f) != p->len) {
        goto out;
    }
    size_t l = strlen(p->path);
    p->json = l > 5 && strcmp(p->path + l - 5, ".json") == 0;
    rc = 0;
out:
    fclose(f);
    return rc;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Decode every payload of one encoding @p iters times; @return spans per second. */
static double run(struct payload *ps, size_t n, bool json, long iters, size_t *spans_out,
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
    long iters = 2000;
    struct payload ps[64];
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            iters = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-t") == 0) {
            mallopt(M_TRIM_THRESHOLD, 64 << 20);
            mallopt(M_MMAP_THRESHOLD, 16 << 20);
        } else if (n < 64) {
            snprintf(ps[n++].path, sizeof(ps[0].path), "%s", argv[i]);
        }
    }
    if (n == 0) {
        for (int i = 1; i <= 10; i++) {
            snprintf(ps[n++].path, sizeof(ps[0].path),
                     "/work/shared/bench/payloads/otlp-100spans-%02d.pb", i);
            snprintf(ps[n++].path, sizeof(ps[0].path),
                     "/work/shared/bench/payloads/otlp-100spans-%02d.json", i);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (load(&ps[i]) != 0) {
            fprintf(stderr, "cannot read %s\n", ps[i].path);
            return 1;
        }
    }
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
