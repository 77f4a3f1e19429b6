/*
 * A fixed-bucket latency histogram for internal metrics: thirteen upper bounds from 0.5 ms
 * to 5 s (the Prometheus client's defaults with 0.5 ms, 1 ms and 2.5 ms in front), updated
 * with relaxed atomic adds from any thread and read by the metrics endpoint from another.
 * Used for the store's commit durations and the query API's request durations.
 */
#ifndef TH_HISTOGRAM_H
#define TH_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/** Number of finite upper bounds; a histogram has one more bucket (+Inf). */
#define TH_LATENCY_BOUNDS 13

/** A latency histogram. Zero-initialise it; observe and snapshot from any thread. */
struct th_latency_histogram {
    uint64_t counts[TH_LATENCY_BOUNDS + 1]; /**< per bucket, not cumulative; last is +Inf */
    uint64_t sum_ns;                        /**< sum of the observed durations */
};

/**
 * The upper bounds, in seconds, ascending.
 * @return a static array of TH_LATENCY_BOUNDS values.
 */
static inline const double *th_latency_bounds(void)
{
    static const double bounds[TH_LATENCY_BOUNDS] = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    return bounds;
}

/**
 * Count one duration: in the first bucket whose bound it does not exceed (Prometheus `le`).
 * @param[in,out] h the histogram.
 * @param[in] ns the duration in nanoseconds.
 */
static inline void th_latency_observe(struct th_latency_histogram *h, uint64_t ns)
{
    const double *b = th_latency_bounds();
    size_t i = 0;
    while (i < TH_LATENCY_BOUNDS && (double)ns > b[i] * 1e9) {
        i++;
    }
    __atomic_add_fetch(&h->counts[i], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&h->sum_ns, ns, __ATOMIC_RELAXED);
}

/**
 * Copy a histogram that other threads may be updating (each field read atomically; the
 * copy may be off by the observations that land while it is taken).
 * @param[in] h the histogram.
 * @param[out] out the copy.
 */
static inline void th_latency_snapshot(const struct th_latency_histogram *h,
                                       struct th_latency_histogram *out)
{
    for (size_t i = 0; i <= TH_LATENCY_BOUNDS; i++) {
        out->counts[i] = __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
    }
    out->sum_ns = __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED);
}

#endif
