/*
 * The internal metrics endpoint: the scrape builder (families kept in first-seen order so
 * each family's samples come out together, as the text format requires, and identical
 * series summed) and the HTTP handler that serves GET /metrics on its own thread.
 * What goes into a scrape is in telemetry_components.c and telemetry_process.c.
 */
#include <stdio.h>
#include <string.h>

#include "th/http_server.h"
#include "th/log.h"
#include "th/telemetry.h"

struct series {
    struct series *next;
    struct th_prom_label *labels;
    size_t n_labels;
    double value;     /* counters, gauges */
    uint64_t *counts; /* histograms: n_bounds + 1 */
    double sum;
};

struct family {
    struct family *next;
    const char *name;
    const char *help;
    enum th_prom_type type;
    const double *bounds; /* histograms */
    size_t n_bounds;
    struct series *first, *last;
};

struct th_scrape {
    th_arena_t *arena;
    struct family *first, *last;
};

th_scrape_t *th_scrape_create(void)
{
    th_arena_t *a = th_arena_create(16 * 1024, 0);
    th_scrape_t *s = a ? th_arena_calloc(a, 1, sizeof(*s)) : NULL;
    if (!s) {
        th_arena_destroy(a);
        return NULL;
    }
    s->arena = a;
    return s;
}

void th_scrape_destroy(th_scrape_t *s)
{
    if (s) {
        th_arena_destroy(s->arena);
    }
}

static struct family *family_get(th_scrape_t *s, const char *name, enum th_prom_type type,
                                 const char *help, int *err)
{
    for (struct family *f = s->first; f; f = f->next) {
        if (!strcmp(f->name, name)) {
            *err = f->type == type ? 0 : TH_EINVAL;
            return f->type == type ? f : NULL;
        }
    }
    struct family *f = th_arena_calloc(s->arena, 1, sizeof(*f));
    if (!f) {
        *err = TH_ENOMEM;
        return NULL;
    }
    f->name = name;
    f->help = help;
    f->type = type;
    if (s->last) {
        s->last->next = f;
    } else {
        s->first = f;
    }
    s->last = f;
    return f;
}

static bool same_labels(const struct series *x, const struct th_prom_label *l, size_t n)
{
    if (x->n_labels != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(x->labels[i].name, l[i].name) || strcmp(x->labels[i].value, l[i].value)) {
            return false;
        }
    }
    return true;
}

/* The series of @p f with these labels, added (zeroed, labels copied) when new. */
static struct series *series_get(th_scrape_t *s, struct family *f, const struct th_prom_label *l,
                                 size_t n)
{
    for (struct series *x = f->first; x; x = x->next) {
        if (same_labels(x, l, n)) {
            return x;
        }
    }
    struct series *x = th_arena_calloc(s->arena, 1, sizeof(*x));
    if (!x || (n && !(x->labels = th_arena_calloc(s->arena, n, sizeof(*x->labels))))) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = l[i].value ? l[i].value : "";
        x->labels[i].name = th_arena_strndup(s->arena, l[i].name, strlen(l[i].name));
        x->labels[i].value = th_arena_strndup(s->arena, v, strlen(v));
        if (!x->labels[i].name || !x->labels[i].value) {
            return NULL;
        }
    }
    x->n_labels = n;
    if (f->type == TH_PROM_HISTOGRAM &&
        !(x->counts = th_arena_calloc(s->arena, f->n_bounds + 1, sizeof(*x->counts)))) {
        return NULL;
    }
    if (f->last) {
        f->last->next = x;
    } else {
        f->first = x;
    }
    f->last = x;
    return x;
}

int th_scrape_add(th_scrape_t *s, const char *name, enum th_prom_type type, const char *help,
                  const struct th_prom_label *labels, size_t n_labels, double value)
{
    int err = 0;
    if (type == TH_PROM_HISTOGRAM) {
        return TH_EINVAL;
    }
    struct family *f = family_get(s, name, type, help, &err);
    if (!f) {
        return err;
    }
    struct series *x = series_get(s, f, labels, n_labels);
    if (!x) {
        return TH_ENOMEM;
    }
    x->value += value;
    return 0;
}

int th_scrape_add_histogram(th_scrape_t *s, const char *name, const char *help,
                            const struct th_prom_label *labels, size_t n_labels,
                            const double *bounds, size_t n_bounds, const uint64_t *counts,
                            double sum)
{
    int err = 0;
    struct family *f = family_get(s, name, TH_PROM_HISTOGRAM, help, &err);
    if (!f) {
        return err;
    }
    if (!f->bounds) {
        f->bounds = bounds;
        f->n_bounds = n_bounds;
    } else if (f->n_bounds != n_bounds || memcmp(f->bounds, bounds, n_bounds * sizeof(double))) {
        return TH_EINVAL;
    }
    struct series *x = series_get(s, f, labels, n_labels);
    if (!x) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i <= n_bounds; i++) {
        x->counts[i] += counts[i];
    }
    x->sum += sum;
    return 0;
}

int th_scrape_add_latency(th_scrape_t *s, const char *name, const char *help,
                          const struct th_prom_label *labels, size_t n_labels,
                          const struct th_latency_histogram *h)
{
    return th_scrape_add_histogram(s, name, help, labels, n_labels, th_latency_bounds(),
                                   TH_LATENCY_BOUNDS, h->counts, (double)h->sum_ns / 1e9);
}

int th_scrape_write(const th_scrape_t *s, th_buf_t *out)
{
    for (const struct family *f = s->first; f; f = f->next) {
        if (th_prom_family(out, f->name, f->type, f->help) != 0) {
            return TH_ENOMEM;
        }
        for (const struct series *x = f->first; x; x = x->next) {
            int ret = f->type == TH_PROM_HISTOGRAM
                          ? th_prom_histogram(out, f->name, x->labels, x->n_labels, f->bounds,
                                              f->n_bounds, x->counts, x->sum)
                          : th_prom_sample(out, f->name, NULL, x->labels, x->n_labels, x->value);
            if (ret != 0) {
                return TH_ENOMEM;
            }
        }
    }
    return 0;
}

/* ---- The endpoint ------------------------------------------------------------------------- */

struct th_telemetry {
    th_collector_t *c;
    const struct th_telemetry_cfg *cfg;
    struct th_telemetry_process proc;
    th_http_server_t *srv;
};

static bool path_is(const struct th_http_request *req, const char *p)
{
    return req->path_len == strlen(p) && !memcmp(req->path, p, req->path_len);
}

static bool method_is(const struct th_http_request *req, const char *m)
{
    return req->method_len == strlen(m) && !memcmp(req->method, m, req->method_len);
}

static int on_request(void *data, const struct th_http_request *req, struct th_http_response *res)
{
    th_telemetry_t *t = data;
    if (!path_is(req, "/metrics")) {
        res->status = 404;
        return th_buf_printf(&res->body, "404 page not found\n");
    }
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
        res->status = 405;
        return th_buf_printf(&res->body, "method not allowed\n");
    }
    th_scrape_t *s = th_scrape_create();
    if (!s) {
        return TH_ENOMEM;
    }
    int ret = th_telemetry_collect(t->c, &t->proc, t->cfg->metrics_level, s);
    if (ret == 0) {
        ret = th_scrape_write(s, &res->body);
    }
    th_scrape_destroy(s);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return ret;
}

int th_telemetry_start(th_collector_t *c, const struct th_telemetry_cfg *cfg, th_telemetry_t **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->metrics_level && !strcmp(cfg->metrics_level, "none")) {
        return 0;
    }
    th_telemetry_t *t = th_calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    t->c = c;
    t->cfg = cfg;
    th_telemetry_process_init(&t->proc, &cfg->resource);
    struct th_http_server_cfg sc = {
        .endpoint = cfg->metrics_endpoint ? cfg->metrics_endpoint : "localhost:8888",
        .handler = on_request,
        .data = t,
        .tls = cfg->metrics_tls,
    };
    int ret = th_http_server_start(&sc, &t->srv, err, errlen);
    if (ret != 0) {
        th_free(t);
        return ret;
    }
    *out = t;
    return 0;
}

int th_telemetry_port(const th_telemetry_t *t)
{
    return t ? th_http_server_port(t->srv) : 0;
}

void th_telemetry_stop(th_telemetry_t *t)
{
    if (!t) {
        return;
    }
    th_http_server_stop(t->srv);
    th_free(t);
}
