/*
 * What a scrape of the internal metrics holds: target_info and build info, then one walk over
 * the collector's components adding the Collector's receiver, processor and exporter series
 * (otelcol-config.md §18, tail sampling §13.7) and Tracehouse's store and query series. Each
 * component type's counters are read through that component's own accessor, with relaxed
 * atomic loads: components update them on their own threads.
 */
#include <string.h>

#include "exporters/jaeger_storage/jaeger_storage_exporter.h"
#include "processors/batch/batch.h"
#include "processors/memory_limiter/memory_limiter.h"
#include "processors/tail_sampling/tail_sampling.h"
#include "receivers/otlp/otlp.h"
#include "th/exporterhelper.h"
#include "th/jaeger_storage.h"
#include "th/telemetry.h"
#include "ui-api/jaeger/jaeger_query.h"

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* The walk's state: the first error sticks and stops further additions. */
struct walk {
    th_scrape_t *s;
    const char *level;
    int ret;
};

static void add(struct walk *w, const char *name, enum th_prom_type type, const char *help,
                const struct th_prom_label *l, size_t n, double v)
{
    if (w->ret == 0) {
        w->ret = th_scrape_add(w->s, name, type, help, l, n, v);
    }
}

static void counter(struct walk *w, const char *name, const char *help,
                    const struct th_prom_label *l, size_t n, uint64_t v)
{
    add(w, name, TH_PROM_COUNTER, help, l, n, (double)v);
}

static void gauge(struct walk *w, const char *name, const char *help, const struct th_prom_label *l,
                  size_t n, double v)
{
    add(w, name, TH_PROM_GAUGE, help, l, n, v);
}

static bool is(const struct th_component *c, enum th_kind kind, const char *type)
{
    return c->ops->kind == kind && !strcmp(c->ops->type, type);
}

/* ---- Receivers ---------------------------------------------------------------------------- */

static void receiver_series(struct walk *w, const struct th_prom_label *l, size_t n,
                            const struct th_component_stats *st)
{
    counter(w, "otelcol_receiver_accepted_spans",
            "Number of spans successfully pushed into the pipeline. [{spans}]", l, n, st->accepted);
    counter(w, "otelcol_receiver_refused_spans",
            "Number of spans that could not be pushed into the pipeline. [{spans}]", l, n,
            st->refused);
    counter(w, "otelcol_receiver_failed_spans",
            "The number of spans that failed to be processed by the receiver due to internal "
            "errors. [{spans}]",
            l, n, st->failed);
}

static void receiver(struct walk *w, struct th_component *c)
{
    if (is(c, TH_KIND_RECEIVER, "otlp")) {
        static const char *const transports[] = {"grpc", "http"};
        for (size_t i = 0; i < TH_ARRAY_SIZE(transports); i++) {
            struct th_component_stats st;
            if (th_otlp_receiver_transport_stats(c, i == 0, &st) != 0) {
                continue;
            }
            struct th_prom_label l[] = {{"receiver", c->id}, {"transport", transports[i]}};
            receiver_series(w, l, 2, &st);
        }
        return;
    }
    struct th_component_stats st = {.accepted = LD(c->stats.accepted),
                                    .refused = LD(c->stats.refused)};
    struct th_prom_label l[] = {{"receiver", c->id}};
    receiver_series(w, l, 1, &st);
}

/* ---- Processors --------------------------------------------------------------------------- */

static void batch_processor(struct walk *w, struct th_component *c)
{
    if (w->level && !strcmp(w->level, "basic")) {
        return; /* the Collector's basic level drops the batch processor's series */
    }
    const struct th_batch_processor_stats *st = &((struct th_batch_processor *)c)->stats;
    struct th_prom_label l[] = {{"processor", c->id}};
    uint64_t counts[TH_BATCH_SEND_SIZE_BOUNDS + 1];
    for (size_t i = 0; i <= TH_BATCH_SEND_SIZE_BOUNDS; i++) {
        counts[i] = LD(st->send_size[i]);
    }
    if (w->ret == 0) {
        w->ret = th_scrape_add_histogram(w->s, "otelcol_processor_batch_batch_send_size",
                                         "Number of units in the batch [{units}]", l, 1,
                                         th_batch_send_size_bounds(), TH_BATCH_SEND_SIZE_BOUNDS,
                                         counts, (double)LD(st->send_size_sum));
    }
    counter(w, "otelcol_processor_batch_batch_size_trigger_send",
            "Number of times the batch was sent due to a size trigger [{times}]", l, 1,
            LD(st->batch_size_trigger_send));
    /* Tracehouse's end-of-loop flush in front of a durable consumer is a time trigger too. */
    counter(w, "otelcol_processor_batch_timeout_trigger_send",
            "Number of times the batch was sent due to a timeout trigger (or, in front of a "
            "durable consumer, the end of an event loop iteration) [{times}]",
            l, 1, LD(st->timeout_trigger_send) + LD(st->loop_trigger_send));
}

static void memory_limiter(struct walk *w, struct th_component *c)
{
    const struct th_memory_limiter_stats *st = &((struct th_memory_limiter *)c)->stats;
    struct th_prom_label l[] = {{"processor", c->id}};
    counter(w, "otelcol_processor_memory_limiter_accepted_spans",
            "Number of spans successfully pushed into the next component in the pipeline. "
            "[{spans}]",
            l, 1, LD(st->accepted_spans));
    counter(w, "otelcol_processor_memory_limiter_refused_spans",
            "Number of spans that were rejected by the next component in the pipeline. "
            "[{spans}]",
            l, 1, LD(st->refused_spans));
}

#define TS "otelcol_processor_tail_sampling_"

static void tail_sampling(struct walk *w, struct th_component *c)
{
    const struct th_tail_sampling_stats *st = th_tail_sampling_stats(c);
    static const struct {
        const char *sampled, *decision;
    } decisions[] = {{"true", "sampled"}, {"false", "not_sampled"}, {"false", "dropped"}};
    for (size_t i = 0; i < st->n_policies; i++) {
        const struct th_ts_policy_stats *p = &st->policies[i];
        uint64_t v[] = {LD(p->sampled), LD(p->not_sampled), LD(p->dropped)};
        for (size_t d = 0; d < TH_ARRAY_SIZE(decisions); d++) {
            struct th_prom_label l[] = {{"policy", p->name},
                                        {"sampled", decisions[d].sampled},
                                        {"decision", decisions[d].decision}};
            counter(w, TS "count_traces_sampled",
                    "Count of traces that were sampled or not per sampling policy", l, 3, v[d]);
        }
        struct th_prom_label pl[] = {{"policy", p->name}};
        counter(w, TS "sampling_policy_execution_count",
                "Number of times a sampling policy has been executed", pl, 1, LD(p->executions));
        counter(w, TS "sampling_policy_execution_time_sum",
                "Total time spent executing a sampling policy [µs]", pl, 1,
                LD(p->execution_ns) / 1000);
    }
    uint64_t g[] = {LD(st->traces_sampled), LD(st->traces_not_sampled), LD(st->traces_dropped)};
    for (size_t d = 0; d < TH_ARRAY_SIZE(decisions); d++) {
        struct th_prom_label l[] = {{"sampled", decisions[d].sampled},
                                    {"decision", decisions[d].decision}};
        counter(w, TS "global_count_traces_sampled",
                "Global count of traces that were sampled or not by at least one policy", l, 2,
                g[d]);
    }
    gauge(w, TS "sampling_traces_on_memory",
          "Tracks the number of traces current on memory [{traces}]", NULL, 0,
          (double)LD(st->traces_on_memory));
    counter(w, TS "sampling_trace_dropped_too_early",
            "Count of traces that needed to be dropped before the configured wait time "
            "[{traces}]",
            NULL, 0, LD(st->trace_dropped_too_early));
    counter(w, TS "sampling_policy_evaluation_error", "Count of sampling policy evaluation errors",
            NULL, 0, LD(st->policy_evaluation_errors));
    counter(w, TS "new_trace_id_received", "Counts the arrival of new traces [{traces}]", NULL, 0,
            LD(st->new_trace_id_received));
    counter(w, TS "traces_dropped_too_large",
            "Count of traces that were dropped because they were too large [{traces}]", NULL, 0,
            LD(st->traces_dropped_too_large));
    struct th_prom_label yes[] = {{"sampled", "true"}}, no[] = {{"sampled", "false"}};
    counter(w, TS "early_releases_from_cache_decision",
            "Number of spans that were able to be immediately released due to a decision cache "
            "hit. [{spans}]",
            yes, 1, LD(st->early_releases_sampled));
    counter(w, TS "early_releases_from_cache_decision",
            "Number of spans that were able to be immediately released due to a decision cache "
            "hit. [{spans}]",
            no, 1, LD(st->early_releases_not_sampled));
}

static void processor(struct walk *w, struct th_component *c)
{
    uint64_t accepted = LD(c->stats.accepted), refused = LD(c->stats.refused);
    uint64_t dropped = LD(c->stats.dropped), failed = LD(c->stats.failed);
    uint64_t outgoing = accepted > dropped + failed ? accepted - dropped - failed : 0;
    if (is(c, TH_KIND_PROCESSOR, "batch")) {
        outgoing = LD(((struct th_batch_processor *)c)->stats.spans_sent);
    } else if (is(c, TH_KIND_PROCESSOR, "tail_sampling")) {
        outgoing = LD(th_tail_sampling_stats(c)->spans_sampled);
    } else if (is(c, TH_KIND_PROCESSOR, "memory_limiter")) {
        outgoing = LD(((struct th_memory_limiter *)c)->stats.accepted_spans);
    }
    struct th_prom_label l[] = {{"processor", c->id}, {"otel_signal", "traces"}};
    counter(w, "otelcol_processor_incoming_items",
            "Number of items passed to the processor. [{items}]", l, 2, accepted + refused);
    counter(w, "otelcol_processor_outgoing_items",
            "Number of items emitted from the processor. [{items}]", l, 2, outgoing);
    if (is(c, TH_KIND_PROCESSOR, "batch")) {
        batch_processor(w, c);
    } else if (is(c, TH_KIND_PROCESSOR, "memory_limiter")) {
        memory_limiter(w, c);
    } else if (is(c, TH_KIND_PROCESSOR, "tail_sampling")) {
        tail_sampling(w, c);
    }
}

/* ---- Exporters ---------------------------------------------------------------------------- */

static void exporter(struct walk *w, struct th_component *c)
{
    struct th_prom_label l[] = {{"exporter", c->id}};
    uint64_t size = 0, capacity = 0, enqueue_failed = 0;
    bool queue = false;
    if (is(c, TH_KIND_EXPORTER, "jaeger_storage_exporter")) {
        th_jaeger_storage_exporter_queue_stats(c, &size, &capacity, &enqueue_failed);
        queue = true;
    } else if (c->exporterhelper) {
        th_exporterhelper_queue_stats(c->exporterhelper, &size, &capacity);
        enqueue_failed = th_exporterhelper_enqueue_failed(c->exporterhelper);
        queue = th_exporterhelper_queue_enabled(c->exporterhelper);
    }
    counter(w, "otelcol_exporter_sent_spans",
            "Number of spans successfully sent to destination. [{spans}]", l, 1, LD(c->stats.sent));
    counter(w, "otelcol_exporter_send_failed_spans",
            "Number of spans in failed attempts to send to destination. [{spans}]", l, 1,
            LD(c->stats.failed));
    counter(w, "otelcol_exporter_enqueue_failed_spans",
            "Number of spans failed to be added to the sending queue. [{spans}]", l, 1,
            enqueue_failed);
    if (queue) {
        struct th_prom_label ql[] = {{"data_type", "traces"}, {"exporter", c->id}};
        gauge(w, "otelcol_exporter_queue_size", "Current size of the retry queue (in batches)", ql,
              2, (double)size);
        gauge(w, "otelcol_exporter_queue_capacity",
              "Fixed capacity of the retry queue (in batches)", ql, 2, (double)capacity);
    }
}

/* ---- Stores and the query API ------------------------------------------------------------ */

static void store_series(void *data, const char *backend, th_store_t *store)
{
    struct walk *w = data;
    struct th_store_stats st;
    th_store_stats(store, &st);
    struct th_prom_label l[] = {{"store", backend}};
    counter(w, "tracehouse_store_spans_written", "Spans committed to the store [{spans}]", l, 1,
            st.spans_written);
    gauge(w, "tracehouse_store_bytes_on_disk",
          "Bytes the store's files take on disk (preallocated ahead of use) [By]", l, 1,
          (double)st.bytes_on_disk);
    gauge(w, "tracehouse_store_bytes_used", "Bytes of pages holding data, indexes included [By]", l,
          1, (double)st.bytes_used);
    gauge(w, "tracehouse_store_capacity_bytes",
          "The LMDB map's current size: what the store holds before it grows [By]", l, 1,
          (double)st.capacity_bytes);
    gauge(w, "tracehouse_store_filesystem_free_bytes",
          "Free bytes (for unprivileged users) on the filesystem of the store's directory [By]", l,
          1, (double)st.fs_free_bytes);
    if (w->ret == 0) {
        w->ret = th_scrape_add_latency(w->s, "tracehouse_store_commit_duration_seconds",
                                       "Duration of the store's write transaction commits [s]", l,
                                       1, &st.commit);
    }
    counter(w, "tracehouse_store_retention_deleted_spans",
            "Spans deleted by retention (age or size) [{spans}]", l, 1, st.retention_deleted_spans);
    uint64_t now = th_now_unix_ns();
    double age =
        st.oldest_span_ns && now > st.oldest_span_ns ? (double)(now - st.oldest_span_ns) / 1e9 : 0;
    gauge(w, "tracehouse_store_oldest_span_age_seconds",
          "Age of the oldest span start still stored; 0 when the store is empty [s]", l, 1, age);
    counter(w, "tracehouse_store_write_errors",
            "Store writes (group commits) that failed; their senders were asked to retry", l, 1,
            st.write_errors);
}

static void query_series(struct walk *w, struct th_component *c)
{
    const struct th_jaeger_query_metrics *m = th_jaeger_query_metrics(c);
    if (!m) {
        return;
    }
    for (int r = 0; r < TH_JAEGER_ROUTES; r++) {
        const char *route = th_jaeger_route_name((enum th_jaeger_route)r);
        for (int st = 0; st <= TH_JAEGER_MAX_STATUS; st++) {
            uint64_t n = LD(m->requests[r][st]);
            if (n == 0) {
                continue;
            }
            char status[8];
            snprintf(status, sizeof(status), "%d", st);
            struct th_prom_label l[] = {{"route", route}, {"status", status}};
            counter(w, "tracehouse_query_requests",
                    "Query API requests answered, by route template and HTTP status", l, 2, n);
        }
        struct th_latency_histogram h;
        th_latency_snapshot(&m->duration[r], &h);
        uint64_t total = 0;
        for (size_t i = 0; i <= TH_LATENCY_BOUNDS; i++) {
            total += h.counts[i];
        }
        if (total > 0 && w->ret == 0) {
            struct th_prom_label l[] = {{"route", route}};
            w->ret = th_scrape_add_latency(w->s, "tracehouse_query_duration_seconds",
                                           "Time to answer a query API request, by route "
                                           "template [s]",
                                           l, 1, &h);
        }
    }
}

/* ---- The walk ----------------------------------------------------------------------------- */

static void each(void *data, struct th_component *c, const char *pipeline)
{
    (void)pipeline;
    struct walk *w = data;
    switch (c->ops->kind) {
    case TH_KIND_RECEIVER:
        receiver(w, c);
        break;
    case TH_KIND_PROCESSOR:
        processor(w, c);
        break;
    case TH_KIND_EXPORTER:
        exporter(w, c);
        break;
    case TH_KIND_EXTENSION:
        if (is(c, TH_KIND_EXTENSION, "jaeger_storage")) {
            th_jaeger_storage_foreach(c, store_series, w);
        } else if (is(c, TH_KIND_EXTENSION, "jaeger_query")) {
            query_series(w, c);
        }
        break;
    case TH_KIND_CONNECTOR:
        break;
    }
}

/* target_info: the resource of the collector's own telemetry, dots as underscores. */
static int target_info(const struct th_telemetry_process *p, th_scrape_t *s)
{
    struct th_prom_label l[64];
    char names[64][128];
    size_t n = 0;
    const char *service_name = "tracehouse";
    const char *service_version = TH_VERSION;
    const char *instance = p->instance_id;
    const th_strmap_t *r = p->resource;
    for (size_t i = 0; r && i < r->n; i++) {
        if (!strcmp(r->keys[i], "service.name")) {
            service_name = r->vals[i];
        } else if (!strcmp(r->keys[i], "service.version")) {
            service_version = r->vals[i];
        } else if (!strcmp(r->keys[i], "service.instance.id")) {
            instance = r->vals[i];
        }
    }
    l[n++] = (struct th_prom_label){"service_instance_id", instance};
    l[n++] = (struct th_prom_label){"service_name", service_name};
    l[n++] = (struct th_prom_label){"service_version", service_version};
    for (size_t i = 0; r && i < r->n && n < TH_ARRAY_SIZE(l); i++) {
        const char *k = r->keys[i];
        if (!strcmp(k, "service.name") || !strcmp(k, "service.version") ||
            !strcmp(k, "service.instance.id")) {
            continue;
        }
        /* A Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_'. */
        size_t j = 0;
        for (; k[j] && j + 1 < sizeof(names[n]); j++) {
            char ch = k[j];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                      (j > 0 && ch >= '0' && ch <= '9');
            names[n][j] = ok ? ch : '_';
        }
        names[n][j] = '\0';
        l[n] = (struct th_prom_label){names[n], r->vals[i]};
        n++;
    }
    return th_scrape_add(s, "target_info", TH_PROM_GAUGE, "Target metadata", l, n, 1);
}

int th_telemetry_collect(th_collector_t *c, const struct th_telemetry_process *p, const char *level,
                         th_scrape_t *s)
{
    int ret = target_info(p, s);
    if (ret != 0) {
        return ret;
    }
    struct th_prom_label v[] = {{"version", TH_VERSION}};
    ret = th_scrape_add(s, "tracehouse_build_info", TH_PROM_GAUGE,
                        "Tracehouse build information; always 1", v, 1, 1);
    if (ret == 0) {
        ret = th__telemetry_collect_process(p, s);
    }
    if (ret != 0) {
        return ret;
    }
    struct walk w = {.s = s, .level = level};
    th_collector_foreach_component(c, each, &w);
    return w.ret;
}
