/*
 * The redaction processor component: the ops table and the lifecycle glue. The config layer
 * is redaction_config.c, the work redaction_proc.c.
 */
#include <string.h>

#include "th/log.h"
#include "processors/redaction/redaction.h"

struct redaction_processor {
    struct th_component base; /* first, as the core requires */
    th_redaction_proc_t *proc;
    uint64_t limit_hits_logged; /* limit hits already reported */
    uint64_t last_warn_ns;      /* when the last limit warning was logged */
};

static int redaction_init(struct th_component *c, const void *cfg_, struct th_consumer *next)
{
    struct redaction_processor *rp = (struct redaction_processor *)c;
    const struct th_redaction_cfg *cfg = cfg_;
    char err[1024];
    if (!next) {
        th_log_error(c, "a processor needs a next consumer");
        return TH_EINVAL;
    }
    /* Batches go on synchronously with their acks, so an ack settles when the consumer behind
     * us settles it: we are as durable as it is. */
    c->consumer.caps |= next->caps & TH_CAP_DURABLE;
    struct th_redaction_settings s;
    int ret = th_redaction_settings_from_cfg(cfg, &s, err, sizeof(err));
    if (ret == 0) {
        ret = th_redaction_proc_create(&s, &rp->proc, err, sizeof(err));
    }
    if (ret != 0) {
        th_log_error(c, "%s", err);
        return ret;
    }
    const char *sum = cfg->summary ? cfg->summary : "";
    if (*sum && strcmp(sum, "debug") && strcmp(sum, "info") && strcmp(sum, "silent")) {
        th_log_warn(c, "summary: \"%s\" is not debug, info or silent; no summary is added", sum);
    }
    size_t klen = cfg->hmac_key ? strlen(cfg->hmac_key) : 0;
    if ((s.hash_function == TH_REDACTION_HMAC_SHA256 && klen < 32) ||
        (s.hash_function == TH_REDACTION_HMAC_SHA512 && klen < 64)) {
        th_log_warn(c, "hmac_key: shorter than the recommended %d bytes",
                    s.hash_function == TH_REDACTION_HMAC_SHA256 ? 32 : 64);
    }
    ssize_t empty = th_redaction_proc_empty_match(rp->proc);
    if (empty >= 0) {
        th_log_warn(c,
                    "blocked_values::%zd matches the empty string: a mask is put between every "
                    "two characters of every value",
                    empty);
    }
    if (!cfg->allow_all_keys && cfg->allowed_keys.n == 0) {
        th_log_info(c, "allow_all_keys is false and allowed_keys is empty: every attribute "
                       "is deleted");
    }
    return 0;
}

static void redaction_destroy(struct th_component *c)
{
    struct redaction_processor *rp = (struct redaction_processor *)c;
    th_redaction_proc_destroy(rp->proc);
    rp->proc = NULL;
}

/* Abandoned regex searches mask whole values; say so, at most once a minute. */
static void report_limits(struct redaction_processor *rp)
{
    struct th_redaction_stats st = th_redaction_proc_stats(rp->proc);
    uint64_t now = th_now_mono_ns();
    if (st.limit_hits > rp->limit_hits_logged &&
        (rp->last_warn_ns == 0 || now - rp->last_warn_ns > 60ull * 1000000000ull)) {
        th_log_warn(&rp->base,
                    "%llu regex searches hit the match limit (a pattern that backtracks on "
                    "these values) or grew a value past the size limit; those values were "
                    "masked whole",
                    (unsigned long long)(st.limit_hits - rp->limit_hits_logged));
        rp->limit_hits_logged = st.limit_hits;
        rp->last_warn_ns = now;
    }
}

/* Runs on the pipeline's loop thread, the only user of the processor's match data. */
static int redaction_consume(struct th_component *c, th_batch_t *batch)
{
    struct redaction_processor *rp = (struct redaction_processor *)c;
    int ret = th_redaction_proc_traces(rp->proc, batch);
    report_limits(rp);
    if (ret != 0) {
        /* A half-redacted batch must never go on. */
        th_log_error(c, "redacting a batch: %s", th_strerror(ret));
        th_batch_fail(batch, ret);
        th_batch_release(batch);
        return ret;
    }
    return th_consumer_consume(c->next, batch);
}

const struct th_component_ops th_processor_redaction_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_PROCESSOR,
    .type = "redaction",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_BETA,
    .caps = TH_CAP_MUTATES,
    .description = "Deletes attributes not allowed and masks sensitive values",
    .config_size = sizeof(struct th_redaction_cfg),
    .config = th_redaction_config_fields,
    .config_check = th_redaction_config_check,
    .instance_size = sizeof(struct redaction_processor),
    .init = redaction_init,
    .destroy = redaction_destroy,
    .consume_traces = redaction_consume,
};
