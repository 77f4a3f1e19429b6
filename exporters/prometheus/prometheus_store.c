/*
 * The prometheus exporter's series store: the latest state of every series, keyed by its
 * Prometheus name and sorted labels, as the Collector's accumulator keeps it. Cumulative
 * points replace a series; delta counters and histograms (same bounds) add to it, so a scrape
 * always sees cumulative values. Series not updated for metric_expiration are dropped. One
 * mutex guards it all: snapshots come from the pipeline loop, scrapes from the HTTP thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporters/prometheus/prometheus.h"

enum pkind { P_COUNTER, P_GAUGE, P_HISTOGRAM };

struct pseries {
    struct pseries *next;
    uint64_t hash;
    enum pkind kind;
    char *sig; /* family \0 (name \0 value \0)* */
    size_t sig_len;
    const char *family; /* points into sig */
    char *help;
    struct th_prom_label *labels;
    size_t n_labels;
    double value;
    uint64_t count;
    double sum;
    double *bounds;
    size_t n_bounds;
    uint64_t *counts;       /* n_bounds + 1 */
    struct th_exemplar *ex; /* counter: 1; histogram: one per bucket */
    bool *ex_set;
    uint64_t time_ns;
    uint64_t updated_mono;
};

struct th_prometheus_store {
    struct th_prometheus_store_cfg cfg;
    pthread_mutex_t lock;
    struct pseries **table;
    size_t cap;
    size_t n;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int th_prometheus_store_create(const struct th_prometheus_store_cfg *cfg,
                               th_prometheus_store_t **out)
{
    th_prometheus_store_t *s = th_calloc(1, sizeof(*s));
    if (!s) {
        return TH_ENOMEM;
    }
    s->cfg = *cfg;
    s->cap = 256;
    s->table = th_calloc(s->cap, sizeof(*s->table));
    if (!s->table) {
        th_free(s);
        return TH_ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

static void series_free(struct pseries *p)
{
    th_free(p->help);
    th_free(p->bounds);
    th_free(p->counts);
    th_free(p->ex);
    th_free(p->ex_set);
    th_free(p);
}

void th_prometheus_store_destroy(th_prometheus_store_t *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->cap; i++) {
        struct pseries *p = s->table[i];
        while (p) {
            struct pseries *next = p->next;
            series_free(p);
            p = next;
        }
    }
    pthread_mutex_destroy(&s->lock);
    th_free(s->table);
    th_free(s);
}

/* ---- Labels of a point ------------------------------------------------------------------ */

struct lbl {
    char name[160];
    char value[1024];
};

struct lset {
    struct lbl *v;
    size_t n, cap;
};

/* Add a label; one that normalises to an existing name joins its value with ';' (as the
 * translator does when "a.b" and "a_b" meet). */
static int lset_add(struct lset *l, const char *raw_name, const char *value, bool normalise)
{
    char name[160];
    if (normalise) {
        th_prometheus_label_name(raw_name, name, sizeof(name));
    } else {
        snprintf(name, sizeof(name), "%s", raw_name);
    }
    for (size_t i = 0; i < l->n; i++) {
        if (!strcmp(l->v[i].name, name)) {
            size_t vl = strlen(l->v[i].value);
            snprintf(l->v[i].value + vl, sizeof(l->v[i].value) - vl, ";%s", value);
            return 0;
        }
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct lbl *v = th_realloc(l->v, cap * sizeof(*v));
        if (!v) {
            return TH_ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name);
    snprintf(l->v[l->n].value, sizeof(l->v[l->n].value), "%s", value);
    l->n++;
    return 0;
}

static const char *res_attr(const struct th_metric_resource *r, const char *key)
{
    for (size_t i = 0; i < r->n_attrs; i++) {
        if (!strcmp(r->attrs[i].key, key)) {
            return r->attrs[i].value;
        }
    }
    return NULL;
}

/* job = [service.namespace/]service.name, instance = service.instance.id */
static int add_job_instance(struct lset *l, const struct th_metric_resource *r)
{
    const char *name = res_attr(r, "service.name");
    const char *ns = res_attr(r, "service.namespace");
    const char *inst = res_attr(r, "service.instance.id");
    char job[1024];
    if (name) {
        snprintf(job, sizeof(job), "%s%s%s", ns ? ns : "", ns ? "/" : "", name);
        if (lset_add(l, "job", job, false) != 0) {
            return TH_ENOMEM;
        }
    }
    if (inst && lset_add(l, "instance", inst, false) != 0) {
        return TH_ENOMEM;
    }
    return 0;
}

static int cmp_lbl(const void *a, const void *b)
{
    return strcmp(((const struct lbl *)a)->name, ((const struct lbl *)b)->name);
}

/* Double the buckets once the chains grow past two series on average. */
static void maybe_grow(th_prometheus_store_t *s)
{
    if (s->n < 2 * s->cap) {
        return;
    }
    size_t cap = s->cap * 2;
    struct pseries **t = th_calloc(cap, sizeof(*t));
    if (!t) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < s->cap; i++) {
        struct pseries *p = s->table[i];
        while (p) {
            struct pseries *next = p->next;
            p->next = t[p->hash & (cap - 1)];
            t[p->hash & (cap - 1)] = p;
            p = next;
        }
    }
    th_free(s->table);
    s->table = t;
    s->cap = cap;
}

/* The series of family + labels, created empty when new. */
static struct pseries *series_get(th_prometheus_store_t *s, const char *family, enum pkind kind,
                                  struct lset *l)
{
    qsort(l->v, l->n, sizeof(*l->v), cmp_lbl);
    size_t len = strlen(family) + 1;
    for (size_t i = 0; i < l->n; i++) {
        len += strlen(l->v[i].name) + strlen(l->v[i].value) + 2;
    }
    char stack[4096];
    char *sig = len <= sizeof(stack) ? stack : th_malloc(len);
    if (!sig) {
        return NULL;
    }
    size_t o = 0;
    memcpy(sig, family, strlen(family) + 1);
    o += strlen(family) + 1;
    for (size_t i = 0; i < l->n; i++) {
        size_t a = strlen(l->v[i].name) + 1, b = strlen(l->v[i].value) + 1;
        memcpy(sig + o, l->v[i].name, a);
        memcpy(sig + o + a, l->v[i].value, b);
        o += a + b;
    }
    uint64_t h = hash_bytes(sig, len);
    struct pseries *p = s->table[h & (s->cap - 1)];
    for (; p; p = p->next) {
        if (p->hash == h && p->sig_len == len && !memcmp(p->sig, sig, len)) {
            break;
        }
    }
    if (!p) {
        /* one block: the series, its labels and the signature they point into */
        size_t off_l = (sizeof(*p) + 7) & ~(size_t)7;
        size_t off_s = off_l + l->n * sizeof(struct th_prom_label);
        uint8_t *mem = th_calloc(1, off_s + len);
        if (mem) {
            p = (struct pseries *)mem;
            p->hash = h;
            p->kind = kind;
            p->sig = (char *)mem + off_s;
            p->sig_len = len;
            memcpy(p->sig, sig, len);
            p->family = p->sig;
            p->labels = (struct th_prom_label *)(mem + off_l);
            const char *q = p->sig + strlen(family) + 1;
            for (size_t i = 0; i < l->n; i++) {
                p->labels[i].name = q;
                q += strlen(q) + 1;
                p->labels[i].value = q;
                q += strlen(q) + 1;
            }
            p->n_labels = l->n;
            p->next = s->table[h & (s->cap - 1)];
            s->table[h & (s->cap - 1)] = p;
            s->n++;
            maybe_grow(s);
        }
    }
    if (sig != stack) {
        th_free(sig);
    }
    return p;
}

/* Keep the newest exemplar of each bucket (histograms) or of the series (counters). */
static int take_exemplars(struct pseries *p, const struct th_metric_point *pt)
{
    size_t slots = p->kind == P_HISTOGRAM ? p->n_bounds + 1 : 1;
    if (!pt->n_exemplars) {
        return 0;
    }
    if (!p->ex) {
        p->ex = th_calloc(slots, sizeof(*p->ex));
        p->ex_set = th_calloc(slots, sizeof(*p->ex_set));
        if (!p->ex || !p->ex_set) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < pt->n_exemplars; i++) {
        const struct th_exemplar *e = &pt->exemplars[i];
        size_t b = 0;
        if (p->kind == P_HISTOGRAM) {
            while (b < p->n_bounds && e->value > p->bounds[b]) {
                b++;
            }
        }
        p->ex[b] = *e;
        p->ex_set[b] = true;
    }
    return 0;
}

static int fold_histogram(struct pseries *p, const struct th_metric *mt,
                          const struct th_metric_point *pt)
{
    bool same = p->bounds && p->n_bounds == mt->n_bounds &&
                !memcmp(p->bounds, mt->bounds, mt->n_bounds * sizeof(double));
    if (!same) {
        double *b = th_malloc((mt->n_bounds ? mt->n_bounds : 1) * sizeof(double));
        uint64_t *c = th_calloc(mt->n_bounds + 1, sizeof(uint64_t));
        if (!b || !c) {
            th_free(b);
            th_free(c);
            return TH_ENOMEM;
        }
        memcpy(b, mt->bounds, mt->n_bounds * sizeof(double));
        th_free(p->bounds);
        th_free(p->counts);
        th_free(p->ex);
        th_free(p->ex_set);
        p->ex = NULL;
        p->ex_set = NULL;
        p->bounds = b;
        p->counts = c;
        p->n_bounds = mt->n_bounds;
        p->count = 0;
        p->sum = 0;
    }
    bool add = mt->temporality == TH_TEMPORALITY_DELTA && same;
    for (size_t i = 0; i <= mt->n_bounds && i < pt->n_buckets; i++) {
        p->counts[i] = (add ? p->counts[i] : 0) + pt->buckets[i];
    }
    p->count = (add ? p->count : 0) + pt->count;
    p->sum = (add ? p->sum : 0) + pt->sum;
    return take_exemplars(p, pt);
}

static int fold_point(th_prometheus_store_t *s, const struct th_metric_resource *r,
                      const struct th_metric *mt, const char *family, enum pkind kind,
                      const struct th_metric_point *pt, uint64_t mono_ns, struct lset *l)
{
    l->n = 0;
    for (size_t i = 0; i < pt->n_attrs; i++) {
        if (lset_add(l, pt->attrs[i].key, pt->attrs[i].value, true) != 0) {
            return TH_ENOMEM;
        }
    }
    if (s->cfg.resource_to_telemetry) {
        /* resource attributes the point does not have itself */
        for (size_t i = 0; i < r->n_attrs; i++) {
            bool dup = false;
            for (size_t k = 0; k < pt->n_attrs && !dup; k++) {
                dup = !strcmp(pt->attrs[k].key, r->attrs[i].key);
            }
            if (!dup && lset_add(l, r->attrs[i].key, r->attrs[i].value, true) != 0) {
                return TH_ENOMEM;
            }
        }
    }
    if (add_job_instance(l, r) != 0) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < s->cfg.const_labels.n; i++) {
        if (lset_add(l, s->cfg.const_labels.keys[i], s->cfg.const_labels.vals[i], true) != 0) {
            return TH_ENOMEM;
        }
    }
    struct pseries *p = series_get(s, family, kind, l);
    if (!p) {
        return TH_ENOMEM;
    }
    if (!p->help && mt->description && *mt->description) {
        p->help = th_strdup(mt->description);
    }
    p->kind = kind;
    p->time_ns = pt->time_ns;
    p->updated_mono = mono_ns;
    if (kind == P_HISTOGRAM) {
        return fold_histogram(p, mt, pt);
    }
    bool add = kind == P_COUNTER && mt->temporality == TH_TEMPORALITY_DELTA;
    p->value = (add ? p->value : 0) + pt->value;
    return kind == P_COUNTER ? take_exemplars(p, pt) : 0;
}

/* target_info: the resource's attributes other than those job and instance come from. */
static int fold_target_info(th_prometheus_store_t *s, const struct th_metric_resource *r,
                            uint64_t mono_ns, struct lset *l)
{
    l->n = 0;
    if (add_job_instance(l, r) != 0) {
        return TH_ENOMEM;
    }
    if (l->n == 0) {
        return 0; /* the Collector skips resources without job and instance */
    }
    for (size_t i = 0; i < r->n_attrs; i++) {
        const char *k = r->attrs[i].key;
        if (strcmp(k, "service.name") && strcmp(k, "service.namespace") &&
            strcmp(k, "service.instance.id") && lset_add(l, k, r->attrs[i].value, true) != 0) {
            return TH_ENOMEM;
        }
    }
    char family[300];
    th_prometheus_metric_name("target_info", "", false, false, s->cfg.namespace_, false, family,
                              sizeof(family));
    struct pseries *p = series_get(s, family, P_GAUGE, l);
    if (!p) {
        return TH_ENOMEM;
    }
    if (!p->help) {
        p->help = th_strdup("Target metadata");
    }
    p->value = 1;
    p->time_ns = th_now_unix_ns();
    p->updated_mono = mono_ns;
    return 0;
}

static void expire(th_prometheus_store_t *s, uint64_t mono_ns)
{
    uint64_t ttl = s->cfg.metric_expiration_ns;
    if (!ttl) {
        return;
    }
    for (size_t i = 0; i < s->cap; i++) {
        struct pseries **pp = &s->table[i];
        while (*pp) {
            struct pseries *p = *pp;
            if (mono_ns - p->updated_mono >= ttl) {
                *pp = p->next;
                series_free(p);
                s->n--;
            } else {
                pp = &p->next;
            }
        }
    }
}

int th_prometheus_store_add(th_prometheus_store_t *s, const th_metrics_t *m, uint64_t mono_ns)
{
    struct lset l = {0};
    int ret = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t r = 0; r < m->n_resources && ret == 0; r++) {
        const struct th_metric_resource *res = &m->resources[r];
        if (!s->cfg.resource_to_telemetry) {
            ret = fold_target_info(s, res, mono_ns, &l);
        }
        for (size_t sc = 0; sc < res->n_scopes && ret == 0; sc++) {
            const struct th_metric_scope *scope = &res->scopes[sc];
            for (size_t i = 0; i < scope->n_metrics && ret == 0; i++) {
                const struct th_metric *mt = &scope->metrics[i];
                enum pkind kind;
                if (mt->type == TH_METRIC_EXP_HISTOGRAM) {
                    continue; /* no place for them in the text formats */
                } else if (mt->type == TH_METRIC_HISTOGRAM) {
                    kind = P_HISTOGRAM;
                } else if (mt->type == TH_METRIC_SUM && mt->monotonic) {
                    kind = P_COUNTER;
                } else {
                    kind = P_GAUGE;
                }
                char family[300];
                th_prometheus_metric_name(mt->name, mt->unit, kind == P_COUNTER, kind == P_GAUGE,
                                          s->cfg.namespace_, s->cfg.add_metric_suffixes, family,
                                          sizeof(family));
                for (size_t k = 0; k < mt->n_points && ret == 0; k++) {
                    ret = fold_point(s, res, mt, family, kind, &mt->points[k], mono_ns, &l);
                }
            }
        }
    }
    expire(s, mono_ns);
    pthread_mutex_unlock(&s->lock);
    th_free(l.v);
    return ret;
}

size_t th_prometheus_store_size(th_prometheus_store_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- Rendering ----------------------------------------------------------------------------- */

static int cmp_series(const void *a, const void *b)
{
    const struct pseries *x = *(const struct pseries *const *)a;
    const struct pseries *y = *(const struct pseries *const *)b;
    int c = strcmp(x->family, y->family);
    if (c) {
        return c;
    }
    size_t n = TH_MIN(x->sig_len, y->sig_len);
    c = memcmp(x->sig, y->sig, n);
    return c ? c : (x->sig_len > y->sig_len) - (x->sig_len < y->sig_len);
}

static const char *type_word(enum pkind k)
{
    return k == P_COUNTER ? "counter" : k == P_HISTOGRAM ? "histogram" : "gauge";
}

/* The family header: # HELP and # TYPE (OpenMetrics names a counter family without _total). */
static int header(th_buf_t *out, bool om, const struct pseries *p, const char *base)
{
    if (!om) {
        enum th_prom_type t = p->kind == P_COUNTER     ? TH_PROM_COUNTER
                              : p->kind == P_HISTOGRAM ? TH_PROM_HISTOGRAM
                                                       : TH_PROM_GAUGE;
        return th_prom_family(out, p->family, t, p->help ? p->help : "");
    }
    if (p->help && th_buf_printf(out, "# HELP %s %s\n", base, p->help) != 0) {
        return TH_ENOMEM;
    }
    return th_buf_printf(out, "# TYPE %s %s\n", base, type_word(p->kind));
}

static int render_one(th_prometheus_store_t *s, th_buf_t *out, bool om, const struct pseries *p,
                      const char *base)
{
    int64_t ts = s->cfg.send_timestamps ? (int64_t)(p->time_ns / 1000000) : -1;
    bool own = om || ts >= 0; /* the shared writer has no exemplars nor timestamps */
    if (p->kind == P_HISTOGRAM) {
        if (!own) {
            return th_prom_histogram(out, p->family, p->labels, p->n_labels, p->bounds, p->n_bounds,
                                     p->counts, p->sum);
        }
        uint64_t cum = 0;
        for (size_t i = 0; i <= p->n_bounds; i++) {
            cum += p->counts[i];
            double le = i < p->n_bounds ? p->bounds[i] : INFINITY;
            const struct th_exemplar *ex = p->ex_set && p->ex_set[i] ? &p->ex[i] : NULL;
            if (th__prometheus_write_sample(out, om, p->family, "_bucket", p->labels, p->n_labels,
                                            &le, (double)cum, ex, ts) != 0) {
                return TH_ENOMEM;
            }
        }
        if (th__prometheus_write_sample(out, om, p->family, "_sum", p->labels, p->n_labels, NULL,
                                        p->sum, NULL, ts) != 0 ||
            th__prometheus_write_sample(out, om, p->family, "_count", p->labels, p->n_labels, NULL,
                                        (double)cum, NULL, ts) != 0) {
            return TH_ENOMEM;
        }
        return 0;
    }
    if (!own) {
        return th_prom_sample(out, p->family, NULL, p->labels, p->n_labels, p->value);
    }
    const struct th_exemplar *ex = p->ex_set && p->ex_set[0] ? &p->ex[0] : NULL;
    if (om && p->kind == P_COUNTER) {
        return th__prometheus_write_sample(out, om, base, "_total", p->labels, p->n_labels, NULL,
                                           p->value, ex, ts);
    }
    return th__prometheus_write_sample(out, om, p->family, NULL, p->labels, p->n_labels, NULL,
                                       p->value, NULL, ts);
}

int th_prometheus_store_render(th_prometheus_store_t *s, bool open_metrics, uint64_t mono_ns,
                               th_buf_t *out)
{
    int ret = 0;
    pthread_mutex_lock(&s->lock);
    expire(s, mono_ns);
    struct pseries **v = th_malloc((s->n ? s->n : 1) * sizeof(*v));
    if (!v) {
        pthread_mutex_unlock(&s->lock);
        return TH_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->cap; i++) {
        for (struct pseries *p = s->table[i]; p; p = p->next) {
            v[n++] = p;
        }
    }
    qsort(v, n, sizeof(*v), cmp_series);
    for (size_t i = 0; i < n && ret == 0; i++) {
        const struct pseries *p = v[i];
        char base[320];
        size_t fl = strlen(p->family);
        /* OpenMetrics: a counter family is named without _total, its sample with it */
        if (p->kind == P_COUNTER && fl > 6 && !strcmp(p->family + fl - 6, "_total")) {
            fl -= 6;
        }
        snprintf(base, sizeof(base), "%.*s", (int)fl, p->family);
        if (i == 0 || strcmp(v[i - 1]->family, p->family) != 0) {
            ret = header(out, open_metrics, p, base);
        }
        if (ret == 0) {
            ret = render_one(s, out, open_metrics, p, base);
        }
    }
    if (ret == 0 && open_metrics) {
        ret = th_buf_append(out, "# EOF\n", 6);
    }
    pthread_mutex_unlock(&s->lock);
    th_free(v);
    return ret;
}
