/*
 * The Prometheus text exposition format 0.0.4: family headers, sample lines and whole
 * histograms written into a th_buf_t. Numbers are printed in the shortest decimal form that
 * parses back to the same double (as Go's strconv 'g' -1 does), with +Inf, -Inf and NaN
 * spelled the way Prometheus reads them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th/prom.h"

static const char *type_name(enum th_prom_type t)
{
    switch (t) {
    case TH_PROM_COUNTER:
        return "counter";
    case TH_PROM_GAUGE:
        return "gauge";
    case TH_PROM_HISTOGRAM:
        return "histogram";
    default:
        return "untyped";
    }
}

/* Shortest round-trip text of a double into @p out (room for 32 chars). */
static void format_number(double v, char *out, size_t n)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers (counters, byte counts) in plain digits while exact and readable. */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

/* Escape for a label value (\\, \", \n) or, with @p help, for HELP text (\\, \n only). */
static int append_escaped(th_buf_t *out, const char *s, bool help)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *rep = NULL;
        if (*p == '\\') {
            rep = "\\\\";
        } else if (*p == '\n') {
            rep = "\\n";
        } else if (*p == '"' && !help) {
            rep = "\\\"";
        } else if (*p != '\0') {
            continue;
        }
        if (th_buf_append(out, run, (size_t)(p - run)) != 0) {
            return TH_ENOMEM;
        }
        if (!rep) {
            return 0;
        }
        if (th_buf_append(out, rep, 2) != 0) {
            return TH_ENOMEM;
        }
        run = p + 1;
    }
}

int th_prom_family(th_buf_t *out, const char *name, enum th_prom_type type, const char *help)
{
    if (th_buf_printf(out, "# HELP %s ", name) != 0 ||
        append_escaped(out, help ? help : "", true) ||
        th_buf_printf(out, "\n# TYPE %s %s\n", name, type_name(type)) != 0) {
        return TH_ENOMEM;
    }
    return 0;
}

/* name{labels[,le="x"]} value\n */
static int sample(th_buf_t *out, const char *name, const char *suffix,
                  const struct th_prom_label *labels, size_t n_labels, const char *le, double value)
{
    if (th_buf_printf(out, "%s%s", name, suffix ? suffix : "") != 0) {
        return TH_ENOMEM;
    }
    size_t total = n_labels + (le ? 1 : 0);
    for (size_t i = 0; i < total; i++) {
        const char *lname = i < n_labels ? labels[i].name : "le";
        const char *lval = i < n_labels ? labels[i].value : le;
        if (th_buf_printf(out, "%s%s=\"", i == 0 ? "{" : ",", lname) != 0 ||
            append_escaped(out, lval ? lval : "", false) != 0 || th_buf_append(out, "\"", 1)) {
            return TH_ENOMEM;
        }
    }
    char num[40];
    format_number(value, num, sizeof(num));
    if (th_buf_printf(out, "%s %s\n", total ? "}" : "", num) != 0) {
        return TH_ENOMEM;
    }
    return 0;
}

int th_prom_sample(th_buf_t *out, const char *name, const char *suffix,
                   const struct th_prom_label *labels, size_t n_labels, double value)
{
    return sample(out, name, suffix, labels, n_labels, NULL, value);
}

int th_prom_histogram(th_buf_t *out, const char *name, const struct th_prom_label *labels,
                      size_t n_labels, const double *bounds, size_t n_bounds,
                      const uint64_t *counts, double sum)
{
    uint64_t cumulative = 0;
    char le[40];
    for (size_t i = 0; i <= n_bounds; i++) {
        cumulative += counts[i];
        if (i < n_bounds) {
            format_number(bounds[i], le, sizeof(le));
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        if (sample(out, name, "_bucket", labels, n_labels, le, (double)cumulative) != 0) {
            return TH_ENOMEM;
        }
    }
    if (sample(out, name, "_sum", labels, n_labels, NULL, sum) != 0 ||
        sample(out, name, "_count", labels, n_labels, NULL, (double)cumulative) != 0) {
        return TH_ENOMEM;
    }
    return 0;
}
