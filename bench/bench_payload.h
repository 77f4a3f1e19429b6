/*
 * What the payload-driven micro-benchmarks share: their command line (-n COUNT, -t, FILE...),
 * the default bench payloads, and loading a payload file into memory.
 */
#ifndef TH_BENCH_PAYLOAD_H
#define TH_BENCH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The most payloads a benchmark takes. */
#define TH_BENCH_MAX_PAYLOADS 64

/** One payload file, loaded whole. */
struct th_bench_payload {
    char path[512];
    uint8_t *buf; /**< malloc'd by th_bench_payloads_load; the benchmark frees it */
    size_t len;
    bool json; /**< the path ends in ".json" */
};

/** How a benchmark reads its command line. */
struct th_bench_args {
    long count;              /**< in: the default for -n; out: its value */
    int trim_threshold;      /**< -t: glibc's M_TRIM_THRESHOLD */
    int mmap_threshold;      /**< -t: glibc's M_MMAP_THRESHOLD */
    bool default_json_files; /**< without files: the .json payloads as well as the .pb ones */
};

/** The defaults of the pipeline benchmarks: 20,000 pushes, -t at 256 MiB / 32 MiB, .pb only. */
#define TH_BENCH_ARGS_PIPELINE                                                                     \
    {                                                                                              \
        .count = 20000, .trim_threshold = 256 << 20, .mmap_threshold = 32 << 20                    \
    }

/**
 * Read "[-n COUNT] [-t] [FILE ...]" (-t applies the mallopt thresholds at once), then load
 * every file, or the bench payloads in /work/shared/bench/payloads (01..10) when none is
 * given.
 * @param[in,out] a the options; a->count is replaced by -n.
 * @param[out] ps room for TH_BENCH_MAX_PAYLOADS payloads.
 * @param[out] n how many were loaded.
 * @return 0, or -1 after printing which file could not be read.
 * @note Each ps[i].buf is malloc'd; the caller frees them.
 */
int th_bench_payloads_load(int argc, char **argv, struct th_bench_args *a,
                           struct th_bench_payload *ps, size_t *n);

#endif
