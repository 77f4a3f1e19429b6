/*
 * The tail sampling processor's ops table and lifecycle glue. The buffer is in
 * tail_sampling_buffer.c, the decision caches in tail_sampling_cache.c, the output batches in
 * tail_sampling_output.c, the timer and shutdown in tail_sampling_decide.c, the config table
 * in tail_sampling_config.c and the policies in tail_sampling_policy*.c.
 */
#include <stdio.h>
#include <string.h>

#include "processors/tail_sampling/tail_sampling_buffer.h"
#include "th/log.h"

static int ts_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct th_tail_sampling *ts = (struct th_tail_sampling *)c;
    const struct th_tail_sampling_cfg *cfg = cfg_;
    if (!next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    ts->cfg = *cfg;
    if (cfg->sampling_strategy && !strcmp(cfg->sampling_strategy, "span-ingest")) {
        th_log_error(c, "sampling_strategy span-ingest is not supported yet");
        return TH_ECONFIG;
    }
    /* Metric labels name policies "<processor name>.<policy>" when the id has a name. */
    const char *slash = strchr(c->id, '/');
    char path[512];
    snprintf(path, sizeof(path), "processors::%s::policies", c->id);
    char err[512] = "";
    int ret = th_ts_policies_create(cfg->policies, slash ? slash + 1 : "", path,
                                    cfg->sample_on_first_match, &ts->policies, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    /* Decided ids are remembered whether or not a cache size is set: the Collector keeps
     * decided traces in its map until num_traces evicts them, which is what lets late spans
     * follow the decision there; remembering the last num_traces decisions does the same for
     * about 25 bytes each instead of a whole trace. */
    size_t num = (size_t)cfg->num_traces;
    size_t s = (size_t)cfg->decision_cache.sampled_cache_size;
    size_t n = (size_t)cfg->decision_cache.non_sampled_cache_size;
    if (s == 0 && n == 0) {
        ret = th__ts_cache_init(&ts->cache_store[0], num);
        ts->sampled_cache = ts->not_sampled_cache = &ts->cache_store[0];
    } else {
        ret = th__ts_cache_init(&ts->cache_store[0], s ? s : num);
        if (ret == 0) {
            ret = th__ts_cache_init(&ts->cache_store[1], n ? n : num);
        }
        ts->sampled_cache = &ts->cache_store[0];
        ts->not_sampled_cache = &ts->cache_store[1];
    }
    if (ret != 0) {
        return ret;
    }
    ts->max_bytes = (uint64_t)cfg->max_buffer_bytes;
    ts->mutating_next = (next->caps & TH_CAP_MUTATES) != 0;
    return th__ts_buffer_init(ts);
}

static int ts_start(struct th_component *c, struct th_host *host)
{
    struct th_tail_sampling *ts = (struct th_tail_sampling *)c;
    c->host = host;
    return th__ts_timer_start(ts, host ? host->loop : NULL);
}

static int ts_shutdown(struct th_component *c)
{
    int ret = th__ts_shutdown((struct th_tail_sampling *)c);
    c->shut_down = true;
    return ret;
}

/* Also for an instance whose init failed half-way: every part accepts its zero state. */
static void ts_destroy(struct th_component *c)
{
    struct th_tail_sampling *ts = (struct th_tail_sampling *)c;
    th__ts_timer_close(ts);
    /* Never shut down (a failed start): nothing may be left holding batches. */
    if (ts->policies && !ts->stopped) {
        ts->cfg.drop_pending_traces_on_shutdown = true;
        th__ts_shutdown(ts);
    }
    th__ts_out_drop_retries(ts, "destroyed");
    th__ts_out_deinit(&ts->out);
    th__ts_buffer_deinit(ts);
    th__ts_cache_deinit(&ts->cache_store[0]);
    th__ts_cache_deinit(&ts->cache_store[1]);
    th_ts_policies_destroy(ts->policies);
    ts->policies = NULL;
}

static int ts_consume(struct th_component *c, th_batch_t *batch)
{
    return th__ts_consume((struct th_tail_sampling *)c, batch);
}

const struct th_tail_sampling_stats *th_tail_sampling_stats(const struct th_component *c)
{
    struct th_tail_sampling *ts = (struct th_tail_sampling *)c;
    struct th_tail_sampling_stats *s = &ts->stats;
    s->policies = ts->policies ? th_ts_policies_stats(ts->policies, &s->n_policies) : NULL;
    s->policy_evaluation_errors = 0;
    for (size_t i = 0; s->policies && i < s->n_policies; i++) {
        s->policy_evaluation_errors += s->policies[i].errors;
    }
    s->traces_on_memory = ts->n_traces;
    s->buffer_bytes = ts->pending_bytes + ts->retry_bytes;
    return s;
}

const struct th_component_ops th_processor_tail_sampling_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "tail_sampling",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .description = "Buffers spans by trace and samples whole traces by policy after "
                   "decision_wait (zero-copy, bounded by num_traces and max_buffer_bytes)",
    .config_size = sizeof(struct th_tail_sampling_cfg),
    .config = th_tail_sampling_config_fields,
    .config_check = th_tail_sampling_config_check,
    .instance_size = sizeof(struct th_tail_sampling),
    .init = ts_init,
    .start = ts_start,
    .shutdown = ts_shutdown,
    .destroy = ts_destroy,
    .consume_traces = ts_consume,
};
