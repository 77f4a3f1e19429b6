/*
 * The ack hub: ack completions settled on any thread, run on one loop's thread in arrival
 * order. A settle on the loop thread completes at once; elsewhere the entry goes on a list
 * under a mutex and a uv_async_t wakes the loop. The hub is reference counted (loop thread
 * only) by its creator and every attached entry, so it outlives late settles and closes
 * after the receiver that made it is gone.
 */
#include <pthread.h>

#include "th/ack_hub.h"

struct th_ack_hub {
    pthread_mutex_t lock;
    struct th_ack_hub_entry *done; /* settled off the loop thread, newest first */
    uv_async_t async;
    pthread_t loop_thread;
    size_t refs; /* loop thread only */
};

static void on_closed(uv_handle_t *h)
{
    th_ack_hub_t *hub = h->data;
    pthread_mutex_destroy(&hub->lock);
    th_free(hub);
}

static void hub_unref(th_ack_hub_t *hub)
{
    if (hub && --hub->refs == 0) {
        uv_close((uv_handle_t *)&hub->async, on_closed);
    }
}

/* Run the completion, then drop the entry's reference: the completion may free the entry,
 * so the hub is read first. */
static void complete(struct th_ack_hub_entry *e)
{
    th_ack_hub_t *hub = e->hub;
    e->on_complete(e, e->result);
    hub_unref(hub);
}

static void on_async(uv_async_t *h)
{
    th_ack_hub_t *hub = h->data;
    pthread_mutex_lock(&hub->lock);
    struct th_ack_hub_entry *list = hub->done;
    hub->done = NULL;
    pthread_mutex_unlock(&hub->lock);
    /* The list is newest first; complete in arrival order. */
    struct th_ack_hub_entry *rev = NULL;
    while (list) {
        struct th_ack_hub_entry *n = list->next_done;
        list->next_done = rev;
        rev = list;
        list = n;
    }
    hub->refs++; /* completing the last entry must not close the hub under us */
    while (rev) {
        struct th_ack_hub_entry *n = rev->next_done;
        complete(rev);
        rev = n;
    }
    hub_unref(hub);
}

int th_ack_hub_create(uv_loop_t *loop, th_ack_hub_t **out)
{
    th_ack_hub_t *hub = th_calloc(1, sizeof(*hub));
    if (!hub) {
        return TH_ENOMEM;
    }
    pthread_mutex_init(&hub->lock, NULL);
    uv_async_init(loop, &hub->async, on_async);
    /* Waiting requests keep their own handles open; the hub alone must not keep the loop
     * running once everything else has closed. */
    uv_unref((uv_handle_t *)&hub->async);
    hub->async.data = hub;
    hub->loop_thread = pthread_self();
    hub->refs = 1;
    *out = hub;
    return 0;
}

void th_ack_hub_set_loop_thread(th_ack_hub_t *hub)
{
    hub->loop_thread = pthread_self();
}

void th_ack_hub_entry_init(struct th_ack_hub_entry *e, th_ack_hub_complete_fn on_complete)
{
    e->next_done = NULL;
    e->hub = NULL;
    e->on_complete = on_complete;
    e->result = 0;
}

void th_ack_hub_attach(th_ack_hub_t *hub, struct th_ack_hub_entry *e)
{
    e->hub = hub;
    if (hub) {
        hub->refs++;
    }
}

void th_ack_hub_settle(struct th_ack_hub_entry *e, int result)
{
    th_ack_hub_t *hub = e->hub;
    e->result = result;
    if (!hub || pthread_equal(pthread_self(), hub->loop_thread)) {
        complete(e);
        return;
    }
    pthread_mutex_lock(&hub->lock);
    e->next_done = hub->done;
    hub->done = e;
    pthread_mutex_unlock(&hub->lock);
    uv_async_send(&hub->async);
}

void th_ack_hub_release(th_ack_hub_t *hub)
{
    if (!hub) {
        return;
    }
    on_async(&hub->async); /* settles that already reached the hub complete now */
    hub_unref(hub);
}
