/*
 * The collector: builds the pipeline graph from a parsed config and runs its lifecycle.
 *
 * As in the OpenTelemetry Collector, receivers and exporters are shared by every pipeline
 * that names them, while processors are instantiated once per pipeline. The graph is wired
 * back to front (exporters, then each pipeline's processors from last to first, then
 * receivers) so every component gets its downstream consumer at init.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fanout.h"
#include "th/collector.h"
#include "th/log.h"

/* One configured component, decoded but maybe not instantiated. */
struct node {
    enum th_kind kind;
    const char *id;
    const char *pipeline; /* processors: the pipeline that owns this instance */
    const struct th_component_ops *ops;
    void *cfg;
    struct th_component *inst;
    /* receivers: the pipelines' entry consumers they feed */
    struct th_consumer **feeds;
    size_t n_feeds;
};

/* The signal of a pipeline id: "metrics" or "metrics/name", else traces (config.c refuses
 * every other signal). */
static unsigned pipeline_signal(const struct th_pipeline_cfg *p)
{
    return !strncmp(p->id, "metrics", 7) && (p->id[7] == '\0' || p->id[7] == '/')
               ? TH_SIGNAL_METRICS
               : TH_SIGNAL_TRACES;
}

static const char *signal_name(unsigned s)
{
    return s == TH_SIGNAL_METRICS ? "metrics" : "traces";
}

/* What a component handles, for messages: "traces only", "metrics only", ... */
static const char *signals_text(unsigned s)
{
    switch (s & (TH_SIGNAL_TRACES | TH_SIGNAL_METRICS)) {
    case TH_SIGNAL_TRACES:
        return "traces only";
    case TH_SIGNAL_METRICS:
        return "metrics only";
    case TH_SIGNAL_TRACES | TH_SIGNAL_METRICS:
        return "traces and metrics";
    }
    return "no signal Tracehouse carries";
}

static bool list_has(const th_strlist_t *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!strcmp(l->v[i], id)) {
            return true;
        }
    }
    return false;
}

struct th_collector {
    th_config_t *cfg;
    uv_loop_t *loop;
    struct th_host host;
    /* decoded configs of every configured component, by kind */
    struct node *nodes;
    size_t n_nodes;
    /* instances in start order: extensions, exporters, processors (back to front), receivers */
    struct node **order;
    size_t n_order;
    struct th__fanout **fanouts;
    size_t n_fanouts;
    struct th__metrics_fanout **mfanouts; /* metrics pipelines' exporters, connectors' outputs */
    size_t n_mfanouts;
    uv_signal_t sigterm, sigint;
    uv_async_t stop_async;
    bool loop_handles;
    bool started;
    bool shut_down;
    int run_error;
    /* th_collector_on_shutdown: called once when shutdown begins */
    void (*on_shutdown)(void *data);
    void *on_shutdown_data;
};

static const char *section_name(enum th_kind kind)
{
    switch (kind) {
    case TH_KIND_RECEIVER:
        return "receivers";
    case TH_KIND_PROCESSOR:
        return "processors";
    case TH_KIND_EXPORTER:
        return "exporters";
    case TH_KIND_EXTENSION:
        return "extensions";
    case TH_KIND_CONNECTOR:
        return "connectors";
    }
    return "?";
}

/* List the built-in types of a kind, for "unknown type" messages. */
static void valid_types(enum th_kind kind, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; th_builtin[i] && n < cap; i++) {
        if (th_builtin[i]->kind == kind) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", th_builtin[i]->type);
        }
    }
}

/* Decode every component of one top-level section into nodes. */
static int decode_section(th_collector_t *c, enum th_kind kind, const th_node_t *map, char *err,
                          size_t errlen)
{
    if (!map || map->kind == TH_NODE_NULL) {
        return 0;
    }
    for (size_t i = 0; i < map->n; i++) {
        const char *id = map->pairs[i].key;
        const char *type, *name;
        char path[512];
        snprintf(path, sizeof(path), "%s::%s", section_name(kind), id);
        char sub[400];
        if (th_config_split_id(id, c->cfg->arena, &type, &name, sub, sizeof(sub)) != 0) {
            snprintf(err, errlen, "%s: %s", path, sub);
            return TH_ECONFIG;
        }
        const struct th_component_ops *ops = th_registry_find(kind, type);
        if (!ops) {
            char types[512];
            valid_types(kind, types, sizeof(types));
            snprintf(err, errlen, "%s: unknown type: \"%s\" for id: \"%s\" (valid values: [%s])",
                     path, type, id, types);
            return TH_ECONFIG;
        }
        struct node *n = &c->nodes[c->n_nodes++];
        n->kind = kind;
        n->id = id;
        n->ops = ops;
        n->cfg = th_arena_calloc(c->cfg->arena, 1, ops->config_size ? ops->config_size : 1);
        if (!n->cfg) {
            return TH_ENOMEM;
        }
        if (ops->config) {
            int ret = th_cfg_decode(ops->config, map->pairs[i].value, n->cfg, c->cfg->arena, path,
                                    err, errlen);
            if (ret != 0) {
                return ret;
            }
        }
        const char *why = NULL;
        if (ops->config_check && ops->config_check(n->cfg, &why) != 0) {
            /* a message starting with "::" continues the key path (a nested key) */
            if (why && why[0] == ':') {
                snprintf(err, errlen, "%s%s", path, why);
            } else {
                snprintf(err, errlen, "%s: %s", path, why ? why : "invalid configuration");
            }
            return TH_ECONFIG;
        }
    }
    return 0;
}

static struct node *find_node(th_collector_t *c, enum th_kind kind, const char *id)
{
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].kind == kind && !strcmp(c->nodes[i].id, id)) {
            return &c->nodes[i];
        }
    }
    return NULL;
}

/* Record an instance in start order, once. */
static void push_order(th_collector_t *c, struct node *n)
{
    for (size_t i = 0; i < c->n_order; i++) {
        if (c->order[i] == n) {
            return;
        }
    }
    c->order[c->n_order++] = n;
}

static struct th_consumer *make_fanout(th_collector_t *c, struct th_consumer **outs, size_t n)
{
    if (n == 1) {
        return outs[0];
    }
    struct th__fanout *f = th__fanout_create(outs, n);
    if (!f) {
        return NULL;
    }
    c->fanouts[c->n_fanouts++] = f;
    return &f->base;
}

static struct th_metrics_consumer *make_mfanout(th_collector_t *c,
                                                struct th_metrics_consumer **outs, size_t n)
{
    if (n == 1) {
        return outs[0];
    }
    struct th__metrics_fanout *f = th__metrics_fanout_create(outs, n);
    if (!f) {
        return NULL;
    }
    c->mfanouts[c->n_mfanouts++] = f;
    return &f->base;
}

/* Create the instance of a node; @p mnext (metrics downstream) or @p next (traces). */
static int instantiate(struct node *n, struct th_consumer *next, struct th_metrics_consumer *mnext,
                       char *err, size_t errlen)
{
    int ret = mnext ? th_component_create_metrics(n->ops, n->id, n->cfg, mnext, &n->inst)
                    : th_component_create(n->ops, n->id, n->cfg, next, &n->inst);
    if (ret != 0) {
        snprintf(err, errlen, "%s::%s: cannot create: %s", section_name(n->kind), n->id,
                 th_strerror(ret));
    }
    return ret;
}

/*
 * Wire one pipeline's exporters and processors; record its entry consumer for receivers
 * (@p entry for traces, @p mentry for metrics). Connectors used as exporters are already
 * instantiated (build_connectors runs between the metrics and the traces pipelines).
 */
static int build_pipeline(th_collector_t *c, const struct th_pipeline_cfg *p, char *err,
                          size_t errlen, struct th_consumer **entry,
                          struct th_metrics_consumer **mentry)
{
    unsigned sig = pipeline_signal(p);
    struct th_consumer *outs[64];
    struct th_metrics_consumer *mouts[64];
    if (p->exporters.n > TH_ARRAY_SIZE(outs)) {
        snprintf(err, errlen, "service::pipelines::%s::exporters: at most %zu exporters", p->id,
                 TH_ARRAY_SIZE(outs));
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < p->exporters.n; i++) {
        struct node *n = find_node(c, TH_KIND_EXPORTER, p->exporters.v[i]);
        if (!n) {
            n = find_node(c, TH_KIND_CONNECTOR, p->exporters.v[i]);
        }
        if (!n) {
            snprintf(err, errlen,
                     "service::pipelines::%s: references exporter \"%s\" which is not configured",
                     p->id, p->exporters.v[i]);
            return TH_ECONFIG;
        }
        if (n->kind == TH_KIND_EXPORTER && !(n->ops->signals & sig)) {
            snprintf(err, errlen,
                     "service::pipelines::%s: exporter \"%s\" handles %s, not %s (type %s)", p->id,
                     n->id, signals_text(n->ops->signals), signal_name(sig), n->ops->type);
            return TH_ECONFIG;
        }
        if (!n->inst) {
            th_assert(n->kind == TH_KIND_EXPORTER); /* connectors: see check_connectors */
            int ret = instantiate(n, NULL, NULL, err, errlen);
            if (ret != 0) {
                return ret;
            }
            push_order(c, n);
        }
        outs[i] = &n->inst->consumer;
        mouts[i] = &n->inst->metrics_consumer;
    }
    struct th_consumer *next = NULL;
    struct th_metrics_consumer *mnext = NULL;
    if (sig == TH_SIGNAL_METRICS) {
        mnext = make_mfanout(c, mouts, p->exporters.n);
    } else {
        next = make_fanout(c, outs, p->exporters.n);
    }
    if (!next && !mnext) {
        return TH_ENOMEM;
    }
    for (size_t k = p->processors.n; k-- > 0;) {
        struct node *cfgnode = find_node(c, TH_KIND_PROCESSOR, p->processors.v[k]);
        if (!cfgnode) {
            snprintf(err, errlen,
                     "service::pipelines::%s: references processor \"%s\" which is not configured",
                     p->id, p->processors.v[k]);
            return TH_ECONFIG;
        }
        if (!(cfgnode->ops->signals & sig)) {
            snprintf(err, errlen,
                     "service::pipelines::%s: processor \"%s\" handles %s, not %s (type %s)", p->id,
                     cfgnode->id, signals_text(cfgnode->ops->signals), signal_name(sig),
                     cfgnode->ops->type);
            return TH_ECONFIG;
        }
        /* Processors are per pipeline: a fresh node sharing the decoded config. */
        struct node *n = &c->nodes[c->n_nodes++];
        *n = *cfgnode;
        n->pipeline = p->id;
        n->inst = NULL;
        int ret = instantiate(n, next, mnext, err, errlen);
        if (ret != 0) {
            return ret;
        }
        push_order(c, n);
        if (sig == TH_SIGNAL_METRICS) {
            mnext = &n->inst->metrics_consumer;
        } else {
            next = &n->inst->consumer;
        }
    }
    *entry = sig == TH_SIGNAL_TRACES ? next : NULL;
    *mentry = sig == TH_SIGNAL_METRICS ? mnext : NULL;
    return 0;
}

/*
 * A connector is an exporter of one pipeline and a receiver of another: each use must be
 * matched by a use on the other side in a pipeline of the signal it connects to, with the
 * Collector's messages.
 */
static int check_connectors(th_collector_t *c, char *err, size_t errlen)
{
    const th_config_t *cfg = c->cfg;
    for (size_t i = 0; i < c->n_nodes; i++) {
        const struct node *n = &c->nodes[i];
        if (n->kind != TH_KIND_CONNECTOR) {
            continue;
        }
        const char *clash = find_node(c, TH_KIND_RECEIVER, n->id)   ? "receiver"
                            : find_node(c, TH_KIND_EXPORTER, n->id) ? "exporter"
                                                                    : NULL;
        if (clash) {
            snprintf(err, errlen,
                     "connectors::%s: ambiguous ID: Found both \"%s\" %s and \"%s\" connector. "
                     "Change one of the components' IDs to eliminate ambiguity (e.g. rename "
                     "\"%s\" connector to \"%s/connector\")",
                     n->id, n->id, clash, n->id, n->id, n->id);
            return TH_ECONFIG;
        }
        unsigned as_exporter = 0, as_receiver = 0;
        for (size_t p = 0; p < cfg->n_pipelines; p++) {
            unsigned sig = pipeline_signal(&cfg->pipelines[p]);
            as_exporter |= list_has(&cfg->pipelines[p].exporters, n->id) ? sig : 0;
            as_receiver |= list_has(&cfg->pipelines[p].receivers, n->id) ? sig : 0;
        }
        bool in_ok = (as_exporter & n->ops->signals) != 0;
        bool out_ok = (as_receiver & n->ops->signals_out) != 0;
        static const unsigned sigs[] = {TH_SIGNAL_TRACES, TH_SIGNAL_METRICS};
        /* exporter-side uses first, as the Collector reports them */
        for (size_t k = 0; k < 2 * TH_ARRAY_SIZE(sigs); k++) {
            unsigned s = sigs[k % TH_ARRAY_SIZE(sigs)];
            bool exp_side = k < TH_ARRAY_SIZE(sigs);
            if (exp_side && (as_exporter & s) && !((n->ops->signals & s) && out_ok)) {
                snprintf(err, errlen,
                         "connector \"%s\" used as exporter in %s pipeline but not used in any "
                         "supported receiver pipeline (%s connects %s to %s)",
                         n->id, signal_name(s), n->ops->type, signal_name(n->ops->signals),
                         signal_name(n->ops->signals_out));
                return TH_ECONFIG;
            }
            if (!exp_side && (as_receiver & s) && !((n->ops->signals_out & s) && in_ok)) {
                snprintf(err, errlen,
                         "connector \"%s\" used as receiver in %s pipeline but not used in any "
                         "supported exporter pipeline (%s connects %s to %s)",
                         n->id, signal_name(s), n->ops->type, signal_name(n->ops->signals),
                         signal_name(n->ops->signals_out));
                return TH_ECONFIG;
            }
        }
    }
    return 0;
}

/* Instantiate every connector used, feeding the metrics pipelines that name it as a receiver
 * (one instance for both sides, as in the Collector). */
static int build_connectors(th_collector_t *c, struct th_metrics_consumer **mentries, char *err,
                            size_t errlen)
{
    const th_config_t *cfg = c->cfg;
    struct th_metrics_consumer **outs = th_calloc(cfg->n_pipelines + 1, sizeof(*outs));
    if (!outs) {
        return TH_ENOMEM;
    }
    int ret = 0;
    size_t n_nodes = c->n_nodes;
    for (size_t i = 0; i < n_nodes && ret == 0; i++) {
        struct node *n = &c->nodes[i];
        if (n->kind != TH_KIND_CONNECTOR) {
            continue;
        }
        size_t k = 0;
        for (size_t p = 0; p < cfg->n_pipelines; p++) {
            if (mentries[p] && list_has(&cfg->pipelines[p].receivers, n->id)) {
                outs[k++] = mentries[p];
            }
        }
        if (k == 0) {
            continue; /* not used (check_connectors refused one-sided use) */
        }
        struct th_metrics_consumer *mnext = make_mfanout(c, outs, k);
        if (!mnext) {
            ret = TH_ENOMEM;
            break;
        }
        ret = instantiate(n, NULL, mnext, err, errlen);
        if (ret == 0) {
            push_order(c, n);
        }
    }
    th_free(outs);
    return ret;
}

static struct th_component *host_get_extension(struct th_host *h, const char *id)
{
    th_collector_t *c = h->data;
    struct node *n = find_node(c, TH_KIND_EXTENSION, id);
    return n ? n->inst : NULL;
}

static void host_report_fatal(struct th_host *h, struct th_component *comp, int err)
{
    th_collector_t *c = h->data;
    th_log_error(comp, "fatal error, shutting down: %s", th_strerror(err));
    c->run_error = err;
    th_collector_stop(c);
}

int th_collector_create(th_config_t *cfg, uv_loop_t *loop, th_collector_t **out, char *err,
                        size_t errlen)
{
    int ret = TH_ENOMEM;
    th_collector_t *c = th_calloc(1, sizeof(*c));
    if (!c) {
        th_config_destroy(cfg);
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    c->cfg = cfg;
    c->loop = loop;
    c->host.loop = loop;
    c->host.get_extension = host_get_extension;
    c->host.report_fatal = host_report_fatal;
    c->host.data = c;

    /* Room for every configured component plus one processor instance per pipeline use. */
    size_t cap = 0;
    const th_node_t *sections[] = {cfg->receivers, cfg->processors, cfg->exporters, cfg->extensions,
                                   cfg->connectors};
    for (size_t i = 0; i < TH_ARRAY_SIZE(sections); i++) {
        cap += sections[i] && sections[i]->kind == TH_NODE_MAP ? sections[i]->n : 0;
    }
    size_t fanouts = 0;
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        cap += cfg->pipelines[i].processors.n;
        fanouts += 1;
    }
    fanouts += cap; /* receivers feeding several pipelines */
    c->nodes = th_calloc(cap + 1, sizeof(*c->nodes));
    c->order = th_calloc(cap + 1, sizeof(*c->order));
    c->fanouts = th_calloc(fanouts + 1, sizeof(*c->fanouts));
    c->mfanouts = th_calloc(fanouts + 1, sizeof(*c->mfanouts));
    if (!c->nodes || !c->order || !c->fanouts || !c->mfanouts) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    static const enum th_kind kinds[] = {TH_KIND_EXTENSION, TH_KIND_RECEIVER, TH_KIND_PROCESSOR,
                                         TH_KIND_EXPORTER, TH_KIND_CONNECTOR};
    const th_node_t *maps[] = {cfg->extensions, cfg->receivers, cfg->processors, cfg->exporters,
                               cfg->connectors};
    for (size_t i = 0; i < TH_ARRAY_SIZE(kinds); i++) {
        ret = decode_section(c, kinds[i], maps[i], err, errlen);
        if (ret != 0) {
            goto fail;
        }
    }

    /* Extensions named in service::extensions, in order. */
    for (size_t i = 0; i < cfg->service_extensions.n; i++) {
        struct node *n = find_node(c, TH_KIND_EXTENSION, cfg->service_extensions.v[i]);
        if (!n) {
            snprintf(err, errlen,
                     "service::extensions: references extension \"%s\" which is not "
                     "configured",
                     cfg->service_extensions.v[i]);
            ret = TH_ECONFIG;
            goto fail;
        }
        ret = instantiate(n, NULL, NULL, err, errlen);
        if (ret != 0) {
            goto fail;
        }
        push_order(c, n);
    }

    ret = check_connectors(c, err, errlen);
    if (ret != 0) {
        goto fail;
    }

    /* Pipelines: exporters and processors, then receivers feeding every pipeline naming them. */
    /* Metrics pipelines first, then the connectors feeding them, then traces pipelines (whose
     * exporters may be those connectors). */
    struct th_consumer **entries = th_calloc(cfg->n_pipelines + 1, sizeof(*entries));
    struct th_metrics_consumer **mentries = th_calloc(cfg->n_pipelines + 1, sizeof(*mentries));
    if (!entries || !mentries) {
        th_free(entries);
        th_free(mentries);
        ret = TH_ENOMEM;
        goto fail;
    }
    for (int pass = 0; pass < 2; pass++) {
        unsigned want = pass == 0 ? TH_SIGNAL_METRICS : TH_SIGNAL_TRACES;
        for (size_t i = 0; i < cfg->n_pipelines; i++) {
            if (pipeline_signal(&cfg->pipelines[i]) != want) {
                continue;
            }
            ret = build_pipeline(c, &cfg->pipelines[i], err, errlen, &entries[i], &mentries[i]);
            if (ret != 0) {
                break;
            }
        }
        if (ret == 0 && pass == 0) {
            ret = build_connectors(c, mentries, err, errlen);
        }
        if (ret != 0) {
            th_free(entries);
            th_free(mentries);
            goto fail;
        }
    }
    th_free(mentries);
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        const struct th_pipeline_cfg *p = &cfg->pipelines[i];
        unsigned sig = pipeline_signal(p);
        for (size_t r = 0; r < p->receivers.n; r++) {
            struct node *n = find_node(c, TH_KIND_RECEIVER, p->receivers.v[r]);
            if (!n && find_node(c, TH_KIND_CONNECTOR, p->receivers.v[r])) {
                continue; /* wired by build_connectors */
            }
            if (n && !(n->ops->signals & sig)) {
                snprintf(err, errlen,
                         "service::pipelines::%s: receiver \"%s\" handles %s, not %s (type %s; "
                         "a %s pipeline is fed by a connector such as span_metrics)",
                         p->id, n->id, signals_text(n->ops->signals), signal_name(sig),
                         n->ops->type, signal_name(sig));
                ret = TH_ECONFIG;
                th_free(entries);
                goto fail;
            }
            if (!n) {
                snprintf(err, errlen,
                         "service::pipelines::%s: references receiver \"%s\" which is not "
                         "configured",
                         p->id, p->receivers.v[r]);
                ret = TH_ECONFIG;
                th_free(entries);
                goto fail;
            }
            if (!n->feeds) {
                n->feeds = th_arena_calloc(cfg->arena, cfg->n_pipelines, sizeof(*n->feeds));
                if (!n->feeds) {
                    ret = TH_ENOMEM;
                    th_free(entries);
                    goto fail;
                }
            }
            n->feeds[n->n_feeds++] = entries[i];
        }
    }
    th_free(entries);
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct node *n = &c->nodes[i];
        if (n->kind != TH_KIND_RECEIVER || !n->n_feeds) {
            continue;
        }
        struct th_consumer *next = make_fanout(c, n->feeds, n->n_feeds);
        if (!next) {
            ret = TH_ENOMEM;
            goto fail;
        }
        ret = instantiate(n, next, NULL, err, errlen);
        if (ret != 0) {
            goto fail;
        }
        push_order(c, n);
    }
    *out = c;
    return 0;
fail:
    th_collector_destroy(c);
    return ret;
}

int th_collector_start(th_collector_t *c)
{
    for (size_t i = 0; i < c->n_order; i++) {
        struct th_component *comp = c->order[i]->inst;
        comp->host = &c->host;
        int ret = comp->ops->start ? comp->ops->start(comp, &c->host) : 0;
        if (ret != 0) {
            th_log_error(comp, "failed to start: %s", th_strerror(ret));
            c->started = true;
            th_collector_shutdown(c);
            return ret;
        }
        comp->started = true;
    }
    c->started = true;
    __atomic_store_n(&c->host.ready_since_mono_ns, th_now_mono_ns(), __ATOMIC_RELEASE);
    __atomic_store_n(&c->host.ready_since_ns, th_now_unix_ns(), __ATOMIC_RELEASE);
    th_log_info(NULL,
                "everything is ready, %zu components started; begin running and "
                "processing data",
                c->n_order);
    return 0;
}

int th_collector_shutdown(th_collector_t *c)
{
    if (c->shut_down) {
        return 0;
    }
    c->shut_down = true;
    __atomic_store_n(&c->host.ready_since_ns, 0, __ATOMIC_RELEASE);
    if (c->on_shutdown) {
        void (*fn)(void *) = c->on_shutdown;
        c->on_shutdown = NULL;
        fn(c->on_shutdown_data);
    }
    int first = 0;
    /* Reverse start order: receivers first, extensions last. */
    for (size_t i = c->n_order; i-- > 0;) {
        struct th_component *comp = c->order[i]->inst;
        if (!comp || comp->shut_down) {
            continue;
        }
        int ret = comp->ops->shutdown ? comp->ops->shutdown(comp) : 0;
        comp->shut_down = true;
        if (ret != 0) {
            th_log_error(comp, "shutdown failed: %s", th_strerror(ret));
            if (!first) {
                first = ret;
            }
        }
    }
    return first;
}

void th_collector_destroy(th_collector_t *c)
{
    if (!c) {
        return;
    }
    if (c->started) {
        th_collector_shutdown(c);
    }
    /* Destroy in reverse order too, so nothing upstream outlives its consumer. */
    for (size_t i = c->n_order; i-- > 0;) {
        th_component_destroy(c->order[i]->inst);
        c->order[i]->inst = NULL;
    }
    for (size_t i = 0; i < c->n_fanouts; i++) {
        th__fanout_destroy(c->fanouts[i]);
    }
    th_free(c->fanouts);
    for (size_t i = 0; i < c->n_mfanouts; i++) {
        th__metrics_fanout_destroy(c->mfanouts[i]);
    }
    th_free(c->mfanouts);
    th_free(c->order);
    th_free(c->nodes);
    th_config_destroy(c->cfg);
    th_free(c);
}

struct th_component *th_collector_find(th_collector_t *c, enum th_kind kind, const char *id)
{
    for (size_t i = 0; i < c->n_order; i++) {
        struct node *n = c->order[i];
        if (n->kind == kind && !strcmp(n->id, id)) {
            return n->inst;
        }
    }
    return NULL;
}

static void on_close_noop(uv_handle_t *h)
{
    (void)h;
}

/* Shutdown runs on the loop thread; afterwards only handles that close by themselves remain. */
static void begin_shutdown(th_collector_t *c, const char *why)
{
    /* Already shut down (a start that failed does that itself): only the handles remain. */
    if (!c->shut_down) {
        th_log_info(NULL, "%s, shutting down", why);
        int ret = th_collector_shutdown(c);
        if (ret != 0 && !c->run_error) {
            c->run_error = ret;
        }
    }
    if (c->loop_handles) {
        uv_close((uv_handle_t *)&c->sigterm, on_close_noop);
        uv_close((uv_handle_t *)&c->sigint, on_close_noop);
        uv_close((uv_handle_t *)&c->stop_async, on_close_noop);
        c->loop_handles = false;
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    begin_shutdown(h->data, signum == SIGTERM ? "received SIGTERM" : "received SIGINT");
}

static void on_stop(uv_async_t *h)
{
    begin_shutdown(h->data, "stop requested");
}

void th_collector_stop(th_collector_t *c)
{
    if (c->loop_handles) {
        uv_async_send(&c->stop_async);
    }
}

int th_collector_run(th_collector_t *c)
{
    th_assert(c->loop);
    uv_signal_init(c->loop, &c->sigterm);
    uv_signal_init(c->loop, &c->sigint);
    uv_async_init(c->loop, &c->stop_async, on_stop);
    c->sigterm.data = c->sigint.data = c->stop_async.data = c;
    c->loop_handles = true;
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    int ret = th_collector_start(c);
    if (ret != 0) {
        begin_shutdown(c, "start failed");
        uv_run(c->loop, UV_RUN_DEFAULT);
        return ret;
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    /* The loop ends when every handle is closed, which happens after shutdown. */
    th_log_info(NULL, "shutdown complete");
    return c->run_error;
}

/* ---- Accessors for the internal metrics endpoint and health_check ------------------------ */

void th_collector_foreach_component(th_collector_t *c, th_collector_each_fn fn, void *data)
{
    for (size_t i = 0; i < c->n_order; i++) {
        struct node *n = c->order[i];
        if (n->inst) {
            fn(data, n->inst, n->kind == TH_KIND_PROCESSOR ? n->pipeline : NULL);
        }
    }
}

void th_collector_on_shutdown(th_collector_t *c, void (*fn)(void *data), void *data)
{
    c->on_shutdown = fn;
    c->on_shutdown_data = data;
}
