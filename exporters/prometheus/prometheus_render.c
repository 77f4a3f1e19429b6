/*
 * Prometheus names and the sample writer the shared text writer (th/prom.h) has no room for:
 * OpenMetrics lines with exemplars, and lines with timestamps (send_timestamps).
 *
 * Names follow the Collector's translator (pkg/translator/prometheus) with suffixes on: the
 * OTel name is cut into words at every character that is not a letter or a digit, the unit
 * becomes a word of its own unless the name holds it already, counters end in "total", and the
 * words are joined with '_'.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/prometheus/prometheus.h"

/* The UCUM units the translator spells out. */
static const struct {
    const char *ucum;
    const char *word;
} unit_words[] = {
    {"d", "days"},          {"h", "hours"},         {"min", "minutes"},    {"s", "seconds"},
    {"ms", "milliseconds"}, {"us", "microseconds"}, {"ns", "nanoseconds"}, {"By", "bytes"},
    {"KiBy", "kibibytes"},  {"MiBy", "mebibytes"},  {"GiBy", "gibibytes"}, {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},   {"MBy", "megabytes"},   {"GBy", "gigabytes"},  {"TBy", "terabytes"},
    {"m", "meters"},        {"V", "volts"},         {"A", "amperes"},      {"J", "joules"},
    {"W", "watts"},         {"g", "grams"},         {"Cel", "celsius"},    {"Hz", "hertz"},
    {"%", "percent"},
};

static const struct {
    const char *ucum;
    const char *word;
} per_words[] = {
    {"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"},
    {"w", "week"},   {"mo", "month"}, {"y", "year"},
};

static const char *unit_word(const char *u, size_t n, bool per)
{
    if (per) {
        for (size_t i = 0; i < TH_ARRAY_SIZE(per_words); i++) {
            if (strlen(per_words[i].ucum) == n && !strncmp(per_words[i].ucum, u, n)) {
                return per_words[i].word;
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(unit_words); i++) {
        if (strlen(unit_words[i].ucum) == n && !strncmp(unit_words[i].ucum, u, n)) {
            return unit_words[i].word;
        }
    }
    return NULL;
}

/* Words of a text, split at anything but letters and digits, appended to buf ('_' between).
 * @return false when the buffer is full. */
static void add_words(const char *s, size_t n, char *buf, size_t cap, size_t *len)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && !isalnum((unsigned char)s[i])) {
            i++;
        }
        size_t start = i;
        while (i < n && isalnum((unsigned char)s[i])) {
            i++;
        }
        if (i > start && *len + (i - start) + 2 < cap) {
            if (*len) {
                buf[(*len)++] = '_';
            }
            memcpy(buf + *len, s + start, i - start);
            *len += i - start;
            buf[*len] = '\0';
        }
    }
}

/* Whether the '_'-separated words of name contain the words of w in a row. */
static bool has_words(const char *name, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = name; (p = strstr(p, w)) != NULL; p++) {
        bool start = p == name || p[-1] == '_';
        bool end = p[wl] == '\0' || p[wl] == '_';
        if (start && end) {
            return true;
        }
    }
    return false;
}

static void drop_word(char *name, const char *w)
{
    size_t wl = strlen(w);
    for (char *p = name; (p = strstr(p, w)) != NULL;) {
        bool start = p == name || p[-1] == '_';
        bool end = p[wl] == '\0' || p[wl] == '_';
        if (start && end) {
            char *from = p + wl + (p[wl] == '_');
            char *to = p > name && p[wl] == '\0' ? p - 1 : p;
            memmove(to, from, strlen(from) + 1);
            p = to;
        } else {
            p++;
        }
    }
}

void th_prometheus_metric_name(const char *name, const char *unit, bool counter, bool gauge,
                               const char *namespace_, bool suffixes, char *out, size_t cap)
{
    char words[512];
    size_t len = 0;
    words[0] = '\0';
    add_words(name, strlen(name), words, sizeof(words), &len);
    if (suffixes) {
        /* the unit, without {annotations}: "ms" or "By/s" */
        char u[64];
        size_t ul = 0;
        for (const char *p = unit ? unit : ""; *p && ul + 1 < sizeof(u); p++) {
            if (*p == '{') {
                while (*p && *p != '}') {
                    p++;
                }
                if (!*p) {
                    break;
                }
                continue;
            }
            u[ul++] = *p;
        }
        u[ul] = '\0';
        const char *slash = strchr(u, '/');
        size_t main_len = slash ? (size_t)(slash - u) : ul;
        char suffix[128] = "";
        if (main_len) {
            const char *w = unit_word(u, main_len, false);
            snprintf(suffix, sizeof(suffix), "%.*s", w ? (int)strlen(w) : (int)main_len, w ? w : u);
        }
        if (slash && slash[1]) {
            const char *w = unit_word(slash + 1, strlen(slash + 1), true);
            size_t sl = strlen(suffix);
            snprintf(suffix + sl, sizeof(suffix) - sl, "%sper_%s", sl ? "_" : "",
                     w ? w : slash + 1);
        }
        if (gauge && !strcmp(u, "1")) {
            snprintf(suffix, sizeof(suffix), "ratio");
        } else if (!strcmp(u, "1")) {
            suffix[0] = '\0';
        }
        char sw[160];
        size_t swl = 0;
        sw[0] = '\0';
        add_words(suffix, strlen(suffix), sw, sizeof(sw), &swl);
        if (swl && !has_words(words, sw)) {
            add_words(sw, swl, words, sizeof(words), &len);
        }
        if (counter) {
            drop_word(words, "total");
            len = strlen(words);
            add_words("total", 5, words, sizeof(words), &len);
        }
    }
    const char *ns = namespace_ ? namespace_ : "";
    char nsw[256];
    size_t nsl = 0;
    nsw[0] = '\0';
    add_words(ns, strlen(ns), nsw, sizeof(nsw), &nsl);
    snprintf(out, cap, "%s%s%s%s", isdigit((unsigned char)(nsl ? nsw[0] : words[0])) ? "_" : "",
             nsw, nsl && len ? "_" : "", words);
}

void th_prometheus_label_name(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    const char *prefix = isdigit((unsigned char)name[0])      ? "key_"
                         : (name[0] == '_' && name[1] != '_') ? "key"
                                                              : "";
    n = (size_t)snprintf(out, cap, "%s", prefix);
    for (const char *p = name; *p && n + 1 < cap; p++) {
        out[n++] = isalnum((unsigned char)*p) || *p == '_' ? *p : '_';
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* Shortest text that reads back as the same double, laid out as Go's strconv.FormatFloat(v,
 * 'g', -1, 64) does (what Prometheus clients print): the exponent form below 1e-4 and from
 * 1e6 on ("1e+06"), plain digits between ("15000"). */
static void number(double v, char *out, size_t n)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        snprintf(out, n, "0");
        return;
    }
    int p = 0;
    char e[48];
    for (; p < 17; p++) {
        snprintf(e, sizeof(e), "%.*e", p, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    int exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 6) {
        snprintf(out, n, "%s", e);
    } else {
        snprintf(out, n, "%.*f", p > exp ? p - exp : 0, v);
    }
}

static int escaped(th_buf_t *out, const char *s)
{
    for (; *s; s++) {
        int ret = *s == '\\'   ? th_buf_append(out, "\\\\", 2)
                  : *s == '"'  ? th_buf_append(out, "\\\"", 2)
                  : *s == '\n' ? th_buf_append(out, "\\n", 2)
                               : th_buf_append(out, s, 1);
        if (ret != 0) {
            return TH_ENOMEM;
        }
    }
    return 0;
}

int th__prometheus_write_sample(th_buf_t *out, bool om, const char *name, const char *suffix,
                                const struct th_prom_label *labels, size_t n_labels,
                                const double *le, double value, const struct th_exemplar *ex,
                                int64_t ts_ms)
{
    if (th_buf_printf(out, "%s%s", name, suffix ? suffix : "") != 0) {
        return TH_ENOMEM;
    }
    size_t total = n_labels + (le ? 1 : 0);
    for (size_t i = 0; i < total; i++) {
        char lebuf[48];
        const char *v;
        if (i < n_labels) {
            v = labels[i].value;
        } else {
            number(*le, lebuf, sizeof(lebuf));
            /* OpenMetrics' canonical bound: a float, so "2" is "2.0" */
            if (om && !isinf(*le) && !strpbrk(lebuf, ".eEn")) {
                strcat(lebuf, ".0");
            }
            v = lebuf;
        }
        if (th_buf_printf(out, "%s%s=\"", i ? "," : "{", i < n_labels ? labels[i].name : "le") ||
            escaped(out, v ? v : "") || th_buf_append(out, "\"", 1)) {
            return TH_ENOMEM;
        }
    }
    char num[48];
    number(value, num, sizeof(num));
    if (th_buf_printf(out, "%s %s", total ? "}" : "", num) != 0) {
        return TH_ENOMEM;
    }
    if (ts_ms >= 0) {
        int ret = om ? th_buf_printf(out, " %lld.%03lld", (long long)(ts_ms / 1000),
                                     (long long)(ts_ms % 1000))
                     : th_buf_printf(out, " %lld", (long long)ts_ms);
        if (ret != 0) {
            return TH_ENOMEM;
        }
    }
    if (om && ex) {
        char tid[33], sid[17], ev[48];
        th_hex_encode(ex->trace_id, 16, tid);
        th_hex_encode(ex->span_id, 8, sid);
        number(ex->value, ev, sizeof(ev));
        if (th_buf_printf(out, " # {trace_id=\"%s\",span_id=\"%s\"} %s %llu.%03llu", tid, sid, ev,
                          (unsigned long long)(ex->time_ns / 1000000000ull),
                          (unsigned long long)(ex->time_ns / 1000000ull % 1000ull)) != 0) {
            return TH_ENOMEM;
        }
    }
    return th_buf_append(out, "\n", 1);
}
