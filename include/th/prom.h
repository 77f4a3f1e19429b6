/*
 * The Prometheus text exposition format (version 0.0.4), written into a th_buf_t: one
 * family at a time (# HELP, # TYPE, then its samples), label values escaped, numbers in the
 * shortest form that reads back the same (+Inf, -Inf, NaN spelled as Prometheus does).
 * Shared by the internal metrics endpoint and the prometheus exporter.
 */
#ifndef TH_PROM_H
#define TH_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "th/otlp.h"

enum th_prom_type {
    TH_PROM_COUNTER,
    TH_PROM_GAUGE,
    TH_PROM_HISTOGRAM,
    TH_PROM_UNTYPED,
};

/** One label; the value is escaped on output (backslash, double quote, newline). */
struct th_prom_label {
    const char *name;
    const char *value;
};

/**
 * Start a family: the # HELP and # TYPE lines.
 * @return 0 or TH_ENOMEM.
 */
int th_prom_family(th_buf_t *out, const char *name, enum th_prom_type type, const char *help);

/**
 * One sample line: `name{labels} value`. @p suffix ("_bucket", "_sum", "_count" or NULL) is
 * appended to @p name.
 * @return 0 or TH_ENOMEM.
 */
int th_prom_sample(th_buf_t *out, const char *name, const char *suffix,
                   const struct th_prom_label *labels, size_t n_labels, double value);

/**
 * A whole histogram series: cumulative `_bucket` lines with `le` added to @p labels for each
 * bound and +Inf, then `_sum` and `_count`.
 * @param[in] bounds the upper bounds, ascending, @p n_bounds of them.
 * @param[in] counts per bucket (not cumulative), @p n_bounds + 1 of them (the last is +Inf).
 * @return 0 or TH_ENOMEM.
 */
int th_prom_histogram(th_buf_t *out, const char *name, const struct th_prom_label *labels,
                      size_t n_labels, const double *bounds, size_t n_bounds,
                      const uint64_t *counts, double sum);

#endif
