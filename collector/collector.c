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
    uv_signal_t sigterm, sigint;
    uv_async_t stop_async;
    bool loop_handles;
    bool started;
    bool shut_down;
    int run_error;
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

static int instantiate(struct node *n, struct th_consumer *next, char *err, size_t errlen)
{
    int ret = th_component_create(n->ops, n->id, n->cfg, next, &n->inst);
    if (ret != 0) {
        snprintf(err, errlen, "%s::%s: cannot create: %s", section_name(n->kind), n->id,
                 th_strerror(ret));
    }
    return ret;
}

/* Wire one pipeline's exporters and processors; record its entry consumer for receivers. */
static int build_pipeline(th_collector_t *c, const struct th_pipeline_cfg *p, char *err,
                          size_t errlen, struct th_consumer **entry)
{
    struct th_consumer *outs[64];
    if (p->exporters.n > TH_ARRAY_SIZE(outs)) {
        snprintf(err, errlen, "service::pipelines::%s::exporters: at most %zu exporters", p->id,
                 TH_ARRAY_SIZE(outs));
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < p->exporters.n; i++) {
        struct node *n = find_node(c, TH_KIND_EXPORTER, p->exporters.v[i]);
        if (!n) {
            snprintf(err, errlen,
                     "service::pipelines::%s: references exporter \"%s\" which is not configured",
                     p->id, p->exporters.v[i]);
            return TH_ECONFIG;
        }
        if (!n->inst) {
            int ret = instantiate(n, NULL, err, errlen);
            if (ret != 0) {
                return ret;
            }
            push_order(c, n);
        }
        outs[i] = &n->inst->consumer;
    }
    struct th_consumer *next = make_fanout(c, outs, p->exporters.n);
    if (!next) {
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
        /* Processors are per pipeline: a fresh node sharing the decoded config. */
        struct node *n = &c->nodes[c->n_nodes++];
        *n = *cfgnode;
        n->pipeline = p->id;
        n->inst = NULL;
        int ret = instantiate(n, next, err, errlen);
        if (ret != 0) {
            return ret;
        }
        push_order(c, n);
        next = &n->inst->consumer;
    }
    *entry = next;
    return 0;
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
    if (!c->nodes || !c->order || !c->fanouts) {
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
        ret = instantiate(n, NULL, err, errlen);
        if (ret != 0) {
            goto fail;
        }
        push_order(c, n);
    }

    /* Pipelines: exporters and processors, then receivers feeding every pipeline naming them. */
    struct th_consumer **entries = th_calloc(cfg->n_pipelines + 1, sizeof(*entries));
    if (!entries) {
        ret = TH_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        ret = build_pipeline(c, &cfg->pipelines[i], err, errlen, &entries[i]);
        if (ret != 0) {
            th_free(entries);
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->n_pipelines; i++) {
        const struct th_pipeline_cfg *p = &cfg->pipelines[i];
        for (size_t r = 0; r < p->receivers.n; r++) {
            struct node *n = find_node(c, TH_KIND_RECEIVER, p->receivers.v[r]);
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
        ret = instantiate(n, next, err, errlen);
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
