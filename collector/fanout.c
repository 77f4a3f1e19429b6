/*
 * Fan-out: one batch to several consumers. Read-only consumers share the batch (one
 * reference each); a consumer that mutates (TH_CAP_MUTATES) gets its own copy unless nobody
 * else needs the original. Copies are made before anything is handed on, because a consumer
 * may release its reference (and so free the batch) before consume returns.
 */
#include "fanout.h"

int th__fanout_merge(int a, int b)
{
    /* Success (0 or TH_HELD) ranks lowest; a retryable failure highest, so the client retries
     * rather than dropping data one exporter could not take yet. */
    if (a < 0 && b < 0) {
        if (a == TH_ERETRY || b == TH_ERETRY || a == TH_ENOMEM || b == TH_ENOMEM ||
            a == TH_ESHUTDOWN || b == TH_ESHUTDOWN) {
            return TH_ERETRY;
        }
        return a;
    }
    return a < 0 ? a : b < 0 ? b : (a == TH_HELD || b == TH_HELD) ? TH_HELD : 0;
}

static int fanout_consume(struct th_consumer *self, th_batch_t *batch)
{
    struct th__fanout *f = (struct th__fanout *)self;
    if (f->n == 1) {
        return th_consumer_consume(f->out[0], batch);
    }
    size_t readers = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!(f->out[i]->caps & TH_CAP_MUTATES)) {
            readers++;
        }
    }
    /* With no read-only consumer, the last mutating one takes the original. */
    size_t copies = f->n - readers - (readers == 0 ? 1 : 0);
    th_batch_t *stack_copies[8];
    th_batch_t **copy = stack_copies;
    if (copies > TH_ARRAY_SIZE(stack_copies)) {
        copy = th_calloc(copies, sizeof(*copy));
        if (!copy) {
            th_batch_release(batch);
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < copies; i++) {
        int ret = th_batch_clone(batch, &copy[i]);
        if (ret != 0) {
            for (size_t j = 0; j < i; j++) {
                th_batch_release(copy[j]);
            }
            if (copy != stack_copies) {
                th_free(copy);
            }
            th_batch_release(batch);
            return ret;
        }
    }
    /* One reference per reader; the one we hold goes to the first reader. */
    for (size_t i = 1; i < readers; i++) {
        th_batch_retain(batch);
    }
    int result = 0;
    size_t next_copy = 0;
    for (size_t i = 0; i < f->n; i++) {
        th_batch_t *give;
        if (!(f->out[i]->caps & TH_CAP_MUTATES)) {
            give = batch;
        } else if (next_copy < copies) {
            give = copy[next_copy++];
        } else {
            give = batch; /* the last mutating consumer when there are no readers */
        }
        result = th__fanout_merge(result, th_consumer_consume(f->out[i], give));
    }
    if (copy != stack_copies) {
        th_free(copy);
    }
    return result;
}

struct th__fanout *th__fanout_create(struct th_consumer **out, size_t n)
{
    struct th__fanout *f = th_calloc(1, sizeof(*f));
    if (!f) {
        return NULL;
    }
    f->out = th_calloc(n ? n : 1, sizeof(*f->out));
    if (!f->out) {
        th_free(f);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        f->out[i] = out[i];
        f->base.caps |= out[i]->caps;
    }
    f->n = n;
    f->base.consume = fanout_consume;
    return f;
}

void th__fanout_destroy(struct th__fanout *f)
{
    if (f) {
        th_free(f->out);
        th_free(f);
    }
}
