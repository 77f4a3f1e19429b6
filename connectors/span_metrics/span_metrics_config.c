/*
 * span_metrics config: the dimension lists ([{name, default}]) decoded from their raw nodes,
 * and the rules across fields, with the Collector's messages where it has one.
 */
#include <stdio.h>
#include <string.h>

#include "connectors/span_metrics/span_metrics.h"

static char msg[512];
/* dimension list messages, kept apart so check_dims can quote them into msg */
static char dmsg[400];

void th_span_metrics_dims_free(struct th_span_metrics_dims *d)
{
    if (d) {
        th_free(d->v);
        d->v = NULL;
        d->n = 0;
    }
}

int th_span_metrics_dims_decode(const th_node_t *node, struct th_span_metrics_dims *out,
                                const char **why)
{
    out->v = NULL;
    out->n = 0;
    if (!node || node->kind == TH_NODE_NULL) {
        return 0;
    }
    if (node->kind != TH_NODE_SEQ) {
        *why = "expected a list of {name, default}";
        return TH_ECONFIG;
    }
    out->v = th_calloc(node->n ? node->n : 1, sizeof(*out->v));
    if (!out->v) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < node->n; i++) {
        const th_node_t *it = node->items[i];
        if (it->kind != TH_NODE_MAP) {
            snprintf(dmsg, sizeof(dmsg), "%zu: expected a map with name and default", i);
            goto fail;
        }
        const th_node_t *name = NULL, *def = NULL;
        for (size_t k = 0; k < it->n; k++) {
            const char *key = it->pairs[k].key;
            if (!strcmp(key, "name")) {
                name = it->pairs[k].value;
            } else if (!strcmp(key, "default")) {
                def = it->pairs[k].value;
            } else if (!strcmp(key, "glob")) {
                snprintf(dmsg, sizeof(dmsg), "%zu::glob: glob dimensions are not supported yet", i);
                goto fail;
            } else {
                snprintf(dmsg, sizeof(dmsg), "%zu::%s: unknown key (expected name, default)", i,
                         key);
                goto fail;
            }
        }
        if (!name || name->kind != TH_NODE_SCALAR || !name->len) {
            snprintf(dmsg, sizeof(dmsg), "%zu::name: a dimension needs a name", i);
            goto fail;
        }
        if (def && def->kind != TH_NODE_SCALAR && def->kind != TH_NODE_NULL) {
            snprintf(dmsg, sizeof(dmsg), "%zu::default: expected a string", i);
            goto fail;
        }
        out->v[i].name = name->text;
        out->v[i].name_len = name->len;
        out->v[i].def = def && def->kind == TH_NODE_SCALAR ? def->text : NULL;
        out->n++;
    }
    return 0;
fail:
    th_span_metrics_dims_free(out);
    *why = dmsg;
    return TH_ECONFIG;
}

/* Dimension names must not repeat, nor repeat a default dimension (Collector's check). */
static int check_dims(const char *what, const th_node_t *node, const th_node_t *more,
                      const char **err)
{
    struct th_span_metrics_dims d = {0}, m = {0};
    const char *why = NULL;
    int ret = th_span_metrics_dims_decode(node, &d, &why);
    if (ret == 0) {
        ret = th_span_metrics_dims_decode(more, &m, &why);
    }
    if (ret != 0) {
        snprintf(msg, sizeof(msg), "::%s::%s", what, why ? why : "out of memory");
        *err = msg;
        th_span_metrics_dims_free(&d);
        return TH_ECONFIG;
    }
    static const char *const reserved[] = {"service.name", "span.kind", "status.code", "span.name"};
    for (size_t i = 0; i < d.n + m.n && ret == 0; i++) {
        const char *name = i < d.n ? d.v[i].name : m.v[i - d.n].name;
        for (size_t r = 0; r < TH_ARRAY_SIZE(reserved); r++) {
            if (!strcmp(name, reserved[r])) {
                ret = TH_ECONFIG;
            }
        }
        for (size_t j = 0; j < i; j++) {
            const char *prev = j < d.n ? d.v[j].name : m.v[j - d.n].name;
            if (!strcmp(name, prev)) {
                ret = TH_ECONFIG;
            }
        }
        if (ret != 0) {
            snprintf(msg, sizeof(msg), "failed validating dimensions: duplicate dimension name %s",
                     name);
            *err = msg;
        }
    }
    th_span_metrics_dims_free(&d);
    th_span_metrics_dims_free(&m);
    return ret;
}

int th__span_metrics_config_check(const void *cfg_, const char **err)
{
    const struct th_span_metrics_cfg *cfg = cfg_;
    if (check_dims("dimensions", cfg->dimensions, cfg->calls_dimensions, err) != 0 ||
        check_dims("histogram::dimensions", cfg->dimensions, cfg->histogram.dimensions, err) != 0) {
        return TH_ECONFIG;
    }
    if (cfg->histogram.has_explicit && cfg->histogram.has_exponential) {
        *err = "use either `explicit` or `exponential` buckets histogram";
        return TH_ECONFIG;
    }
    const th_strlist_t *b = &cfg->histogram.explicit_.buckets;
    int64_t prev = -1;
    for (size_t i = 0; i < b->n; i++) {
        int64_t ns;
        if (th_parse_duration(b->v[i], &ns) != 0) {
            snprintf(msg, sizeof(msg),
                     "::histogram::explicit::buckets::%zu: invalid duration \"%s\"", i, b->v[i]);
            *err = msg;
            return TH_ECONFIG;
        }
        if (ns <= prev) {
            snprintf(msg, sizeof(msg),
                     "::histogram::explicit::buckets::%zu: buckets must be ascending (%s)", i,
                     b->v[i]);
            *err = msg;
            return TH_ECONFIG;
        }
        prev = ns;
    }
    if (cfg->metrics_flush_interval <= 0) {
        snprintf(msg, sizeof(msg),
                 "invalid metrics_flush_interval: %lldns, the duration should be positive",
                 (long long)cfg->metrics_flush_interval);
        *err = msg;
        return TH_ECONFIG;
    }
    if (cfg->metrics_expiration < 0 || cfg->series_expiration < 0) {
        *err = "invalid metrics_expiration or series_expiration: the duration should be positive";
        return TH_ECONFIG;
    }
    if (cfg->aggregation_cardinality_limit < 0) {
        snprintf(msg, sizeof(msg),
                 "invalid aggregation_cardinality_limit: %lld, the limit should be positive",
                 (long long)cfg->aggregation_cardinality_limit);
        *err = msg;
        return TH_ECONFIG;
    }
    return 0;
}
