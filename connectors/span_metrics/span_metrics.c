/*
 * The span_metrics connector's ops table, config table and lifecycle glue: the flush timer on
 * the pipeline loop, and the hand-over of each snapshot to the metrics pipelines. The
 * aggregation is in span_metrics_agg.c, the config rules in span_metrics_config.c.
 */
#include <math.h>
#include <string.h>

#include "connectors/span_metrics/span_metrics.h"
#include "th/log.h"

#define CFG_OFF(f)  offsetof(struct th_span_metrics_cfg, f)
#define HIST_OFF(f) offsetof(struct th_span_metrics_histogram_cfg, f)

static const char *const units[] = {"ms", "s", NULL};

static const struct th_cfg_field explicit_fields[] = {
    {.name = "buckets",
     .type = TH_CFG_STRLIST,
     .def = "[2ms, 4ms, 6ms, 8ms, 10ms, 50ms, 100ms, 200ms, 400ms, 800ms, 1s, 1400ms, 2s, 5s, "
            "10s, 15s]",
     .offset = offsetof(struct th_span_metrics_explicit_cfg, buckets),
     .desc = "upper bounds of the duration buckets, ascending durations"},
    {0},
};

static const struct th_cfg_field exponential_fields[] = {
    {.name = "max_size",
     .type = TH_CFG_INT,
     .def = "160",
     .offset = offsetof(struct th_span_metrics_exponential_cfg, max_size),
     .min = 1,
     .max = 16384,
     .desc = "the most buckets of the base-2 exponential histogram (the scale drops to fit)"},
    {0},
};

static const struct th_cfg_field histogram_fields[] = {
    {.name = "disable",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = HIST_OFF(disable),
     .desc = "no duration histogram, calls only"},
    {.name = "unit",
     .type = TH_CFG_ENUM,
     .def = "ms",
     .offset = HIST_OFF(unit),
     .choices = units,
     .desc = "unit of the durations: ms or s"},
    {.name = "explicit",
     .type = TH_CFG_OPTIONAL,
     .offset = HIST_OFF(explicit_),
     .aux = HIST_OFF(has_explicit),
     .sub = explicit_fields,
     .desc = "an explicit-bucket histogram (the default)"},
    {.name = "exponential",
     .type = TH_CFG_OPTIONAL,
     .offset = HIST_OFF(exponential),
     .aux = HIST_OFF(has_exponential),
     .sub = exponential_fields,
     .desc = "a base-2 exponential histogram instead (not shown by the prometheus exporter)"},
    {.name = "dimensions",
     .type = TH_CFG_NODE,
     .offset = HIST_OFF(dimensions),
     .desc = "extra dimensions of the duration histogram only: [{name, default}]"},
    {0},
};

static const struct th_cfg_field exemplars_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct th_span_metrics_exemplars_cfg, enabled),
     .desc = "attach spans (trace and span id, duration) to data points as exemplars"},
    {.name = "max_per_data_point",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = offsetof(struct th_span_metrics_exemplars_cfg, max_per_data_point),
     .min = 0,
     .max = 100000,
     .desc = "exemplars kept per data point and flush, the newest (0: 16)"},
    {0},
};

static const struct th_cfg_field events_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct th_span_metrics_events_cfg, enabled),
     .flags = TH_CFG_F_NOOP,
     .desc = "an events metric counting span events"},
    {.name = "dimensions",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_span_metrics_events_cfg, dimensions),
     .flags = TH_CFG_F_NOOP,
     .desc = "dimensions of the events metric"},
    {0},
};

static const struct th_cfg_field span_metrics_config[] = {
    {.name = "histogram",
     .type = TH_CFG_SECTION,
     .offset = CFG_OFF(histogram),
     .sub = histogram_fields,
     .desc = "the duration histogram"},
    {.name = "dimensions",
     .type = TH_CFG_NODE,
     .offset = CFG_OFF(dimensions),
     .desc = "extra dimensions [{name, default}]: span attribute, else resource attribute, else "
             "default, else omitted"},
    {.name = "calls_dimensions",
     .type = TH_CFG_NODE,
     .offset = CFG_OFF(calls_dimensions),
     .desc = "extra dimensions of the calls metric only"},
    {.name = "exclude_dimensions",
     .type = TH_CFG_STRLIST,
     .offset = CFG_OFF(exclude_dimensions),
     .desc = "default dimensions to leave out (service.name, span.name, span.kind, status.code)"},
    {.name = "dimensions_cache_size",
     .type = TH_CFG_INT,
     .def = "1000",
     .offset = CFG_OFF(dimensions_cache_size),
     .min = -INFINITY,
     .max = INFINITY,
     .flags = TH_CFG_F_NOOP,
     .desc = "deprecated in the Collector (use aggregation_cardinality_limit); series keep their "
             "own attributes, so there is no cache to size"},
    {.name = "aggregation_cardinality_limit",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = CFG_OFF(aggregation_cardinality_limit),
     .min = -INFINITY,
     .max = INFINITY,
     .desc = "series per resource and metric; more go to one series with "
             "otel.metric.overflow=true (0: no limit)"},
    {.name = "resource_metrics_cache_size",
     .type = TH_CFG_INT,
     .def = "1000",
     .offset = CFG_OFF(resource_metrics_cache_size),
     .flags = TH_CFG_F_NOOP,
     .desc = "resources tracked (an LRU in the Collector)"},
    {.name = "resource_metrics_key_attributes",
     .type = TH_CFG_STRLIST,
     .offset = CFG_OFF(resource_metrics_key_attributes),
     .desc = "resource attributes that tell resources apart (default: all)"},
    {.name = "aggregation_temporality",
     .type = TH_CFG_STRING,
     .def = "AGGREGATION_TEMPORALITY_CUMULATIVE",
     .offset = CFG_OFF(aggregation_temporality),
     .desc = "AGGREGATION_TEMPORALITY_CUMULATIVE or AGGREGATION_TEMPORALITY_DELTA (anything "
             "else: cumulative)"},
    {.name = "namespace",
     .type = TH_CFG_STRING,
     .def = "traces.span.metrics",
     .offset = CFG_OFF(namespace_),
     .desc = "prefix of the metric names (namespace.calls, namespace.duration)"},
    {.name = "metrics_flush_interval",
     .type = TH_CFG_DURATION,
     .def = "60s",
     .offset = CFG_OFF(metrics_flush_interval),
     .desc = "time between snapshots sent to the metrics pipelines"},
    {.name = "metrics_expiration",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = CFG_OFF(metrics_expiration),
     .desc = "drop a resource's metrics after no span for this long (0: never)"},
    {.name = "series_expiration",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = CFG_OFF(series_expiration),
     .desc = "drop a series after no span for this long (0: never)"},
    {.name = "metric_timestamp_cache_size",
     .type = TH_CFG_INT,
     .def = "1000",
     .offset = CFG_OFF(metric_timestamp_cache_size),
     .flags = TH_CFG_F_NOOP,
     .desc = "delta start times remembered (kept per live series here)"},
    {.name = "exemplars",
     .type = TH_CFG_SECTION,
     .offset = CFG_OFF(exemplars),
     .sub = exemplars_fields,
     .desc = "exemplars on data points"},
    {.name = "events",
     .type = TH_CFG_SECTION,
     .offset = CFG_OFF(events),
     .sub = events_fields,
     .desc = "the events metric"},
    {.name = "include_instrumentation_scope",
     .type = TH_CFG_STRLIST,
     .offset = CFG_OFF(include_instrumentation_scope),
     .flags = TH_CFG_F_NOOP,
     .desc = "scopes whose name and version become dimensions"},
    {.name = "add_resource_attributes",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = CFG_OFF(add_resource_attributes),
     .desc = "keep metrics per resource, with its attributes (else one resource, no attributes)"},
    {.name = "enable_metrics_sampling_method",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = CFG_OFF(enable_metrics_sampling_method),
     .flags = TH_CFG_F_NOOP,
     .desc = "count spans by their sampling adjusted count"},
    {0},
};

/* Resolve the config into what the aggregation takes. */
static int make_agg(struct th_span_metrics *sm, const struct th_span_metrics_cfg *cfg)
{
    struct th_span_metrics_agg_cfg ac = {0};
    const char *why = NULL;
    double bounds[256];
    int ret = th_span_metrics_dims_decode(cfg->dimensions, &ac.dims, &why);
    if (ret == 0) {
        ret = th_span_metrics_dims_decode(cfg->calls_dimensions, &ac.calls_dims, &why);
    }
    if (ret == 0) {
        ret = th_span_metrics_dims_decode(cfg->histogram.dimensions, &ac.hist_dims, &why);
    }
    if (ret != 0) {
        goto fail;
    }
    for (size_t i = 0; i < cfg->exclude_dimensions.n; i++) {
        static const char *const defaults[] = {"service.name", "span.name", "span.kind",
                                               "status.code"};
        for (unsigned d = 0; d < TH_ARRAY_SIZE(defaults); d++) {
            if (!strcmp(cfg->exclude_dimensions.v[i], defaults[d])) {
                ac.exclude |= 1u << d;
            }
        }
    }
    ac.unit_seconds = !strcmp(cfg->histogram.unit, "s");
    ac.histogram_disabled = cfg->histogram.disable;
    ac.exponential = cfg->histogram.has_exponential;
    ac.exp_max_size = (int32_t)cfg->histogram.exponential.max_size;
    const th_strlist_t *b = &cfg->histogram.explicit_.buckets;
    if (b->n > TH_ARRAY_SIZE(bounds)) {
        th_log_error(&sm->base, "at most %zu histogram buckets", TH_ARRAY_SIZE(bounds));
        ret = TH_ECONFIG;
        goto fail;
    }
    for (size_t i = 0; i < b->n; i++) {
        int64_t ns = 0;
        th_parse_duration(b->v[i], &ns); /* checked by config_check */
        bounds[i] = (double)ns / (ac.unit_seconds ? 1e9 : 1e6);
    }
    ac.bounds = bounds;
    ac.n_bounds = b->n;
    ac.delta = !strcmp(cfg->aggregation_temporality, "AGGREGATION_TEMPORALITY_DELTA");
    if (!ac.delta && strcmp(cfg->aggregation_temporality, "AGGREGATION_TEMPORALITY_CUMULATIVE")) {
        th_log_warn(&sm->base,
                    "aggregation_temporality \"%s\" is neither cumulative nor delta: "
                    "using cumulative",
                    cfg->aggregation_temporality);
    }
    ac.cardinality_limit = (uint64_t)cfg->aggregation_cardinality_limit;
    ac.metrics_expiration_ns = (uint64_t)cfg->metrics_expiration;
    ac.series_expiration_ns = (uint64_t)cfg->series_expiration;
    ac.exemplars = cfg->exemplars.enabled;
    ac.max_exemplars = (size_t)cfg->exemplars.max_per_data_point;
    ac.namespace_ = cfg->namespace_;
    ac.add_resource_attributes = cfg->add_resource_attributes;
    if (cfg->resource_metrics_key_attributes.n) {
        ac.resource_key_attrs = cfg->resource_metrics_key_attributes.v;
        ac.n_resource_key_attrs = cfg->resource_metrics_key_attributes.n;
    }
    ret = th_span_metrics_agg_create(&ac, &sm->agg);
    if (ret == 0) {
        return 0;
    }
fail:
    if (why) {
        th_log_error(&sm->base, "%s", why);
    }
    th_span_metrics_dims_free(&ac.dims);
    th_span_metrics_dims_free(&ac.calls_dims);
    th_span_metrics_dims_free(&ac.hist_dims);
    return ret;
}

static int sm_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct th_span_metrics *sm = (struct th_span_metrics *)c;
    const struct th_span_metrics_cfg *cfg = cfg_;
    const char *why = NULL;
    if (th__span_metrics_config_check(cfg, &why) != 0) {
        th_log_error(c, "%s", why);
        return TH_ECONFIG;
    }
    sm->flush_ms = (uint64_t)(cfg->metrics_flush_interval / 1000000);
    if (sm->flush_ms == 0) {
        sm->flush_ms = 1;
    }
    return make_agg(sm, cfg);
}

/* Hand the current state to the metrics pipelines. */
static void flush(struct th_span_metrics *sm)
{
    th_metrics_t *m = NULL;
    int ret = th_span_metrics_agg_flush(sm->agg, th_now_unix_ns(), th_now_mono_ns(), &m);
    if (ret == 0 && m) {
        /* without a metrics pipeline (a bare instance, as in tests) snapshots are dropped */
        ret = sm->base.metrics_next ? th_metrics_consumer_consume(sm->base.metrics_next, m) : 0;
        if (!sm->base.metrics_next) {
            th_metrics_release(m);
        }
    }
    if (ret != 0) {
        /* one line per failure streak, not per interval */
        if (sm->flush_failures++ == 0) {
            th_log_warn(&sm->base, "could not hand metrics on: %s", th_strerror(ret));
        }
    } else {
        sm->flush_failures = 0;
    }
}

static void on_timer(uv_timer_t *t)
{
    flush(t->data);
}

static int sm_start(struct th_component *c, struct th_host *host)
{
    struct th_span_metrics *sm = (struct th_span_metrics *)c;
    c->host = host;
    if (!host->loop || sm->timer) {
        return 0;
    }
    uv_timer_t *t = th_malloc(sizeof(*t));
    if (!t) {
        return TH_ENOMEM;
    }
    if (uv_timer_init(host->loop, t) != 0) {
        th_free(t);
        return TH_EIO;
    }
    t->data = sm;
    sm->timer = t;
    uv_timer_start(t, on_timer, sm->flush_ms, sm->flush_ms);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    th_free(h);
}

static int sm_shutdown(struct th_component *c)
{
    struct th_span_metrics *sm = (struct th_span_metrics *)c;
    if (sm->stopped) {
        return 0;
    }
    sm->stopped = true;
    if (sm->timer) {
        uv_timer_stop(sm->timer);
        uv_close((uv_handle_t *)sm->timer, on_closed);
        sm->timer = NULL;
    }
    /* what was counted since the last flush goes downstream before the pipelines close */
    if (sm->agg && c->started) {
        flush(sm);
    }
    c->shut_down = true;
    return 0;
}

static void sm_destroy(struct th_component *c)
{
    struct th_span_metrics *sm = (struct th_span_metrics *)c;
    if (sm->timer) {
        uv_timer_stop(sm->timer);
        uv_close((uv_handle_t *)sm->timer, on_closed);
        sm->timer = NULL;
    }
    th_span_metrics_agg_destroy(sm->agg);
    sm->agg = NULL;
}

/* Count and let go: the connector keeps no span, so the batch's acks settle as soon as every
 * other holder is done with it. */
static int sm_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_span_metrics *sm = (struct th_span_metrics *)c;
    struct th_span_metrics_agg_stats before = th_span_metrics_agg_stats(sm->agg);
    int ret = th_span_metrics_agg_add(sm->agg, batch->req, th_now_unix_ns(), th_now_mono_ns());
    struct th_span_metrics_agg_stats after = th_span_metrics_agg_stats(sm->agg);
    c->stats.dropped += after.skipped - before.skipped;
    th_batch_release(batch);
    return ret;
}

const struct th_component_ops th_connector_span_metrics_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_CONNECTOR,
    .type = "span_metrics",
    .alias = "spanmetrics",
    .signals = TH_SIGNAL_TRACES,
    .signals_out = TH_SIGNAL_METRICS,
    .stability = TH_STABILITY_ALPHA,
    .description = "Turns spans into RED metrics (calls, duration histograms) per service, "
                   "operation and dimension",
    .config_size = sizeof(struct th_span_metrics_cfg),
    .config = span_metrics_config,
    .config_check = th__span_metrics_config_check,
    .instance_size = sizeof(struct th_span_metrics),
    .init = sm_init,
    .start = sm_start,
    .shutdown = sm_shutdown,
    .destroy = sm_destroy,
    .consume_traces = sm_consume,
};
