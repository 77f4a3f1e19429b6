/*
 * The ack hub: brings ack completions that settle on other threads (a store's writer, an
 * exporter's loop) back to one libuv loop's thread, where a receiver may answer its
 * requests. Completions are run in the order they arrived at the hub.
 *
 * A receiver creates one hub per listener, embeds a struct th_ack_hub_entry in each request
 * that waits for its ack, and calls th_ack_hub_settle() from the ack's callback. The hub is
 * reference counted by its creator and by every attached entry, so an ack that settles
 * after the receiver let go of the hub (an exporter draining at shutdown) still lands
 * somewhere valid; the hub's uv_async_t is closed once the last reference is gone.
 */
#ifndef TH_ACK_HUB_H
#define TH_ACK_HUB_H

#include <uv.h>

#include "th/common.h"

typedef struct th_ack_hub th_ack_hub_t;

struct th_ack_hub_entry;

/**
 * Called on the loop thread (or, for an entry attached to no hub, on the settling thread)
 * once per entry, with the result it was settled with.
 * @note The callback may free the memory holding @p e: the hub does not touch the entry
 *       afterwards. It must not call back into the hub for this entry.
 */
typedef void (*th_ack_hub_complete_fn)(struct th_ack_hub_entry *e, int result);

/**
 * What a waiting request embeds. Set it up with th_ack_hub_entry_init(); the fields are the
 * hub's, not the caller's.
 */
struct th_ack_hub_entry {
    struct th_ack_hub_entry *next_done; /**< the hub's settled list (under its lock) */
    th_ack_hub_t *hub;                  /**< NULL: not attached, completes where it settles */
    th_ack_hub_complete_fn on_complete; /**< what completes the entry */
    int result;                         /**< what it settled with */
};

/**
 * Create a hub on @p loop, calling the current thread the loop's thread.
 * @param[in] loop the loop whose thread runs the completions; the hub's uv_async_t is
 *            unreferenced so the hub alone never keeps the loop running.
 * @param[out] out the hub, holding one reference (the creator's).
 * @return 0 or TH_ENOMEM.
 * @note Call on the loop thread, or call th_ack_hub_set_loop_thread() from it before any
 *       entry can settle. Give the creator's reference back with th_ack_hub_release().
 */
int th_ack_hub_create(uv_loop_t *loop, th_ack_hub_t **out);

/**
 * Say that the calling thread is the loop's thread: settles on it complete at once, and
 * settles on any other go through the uv_async_t. For a hub created before the loop runs
 * on its final thread.
 * @param[in] hub the hub.
 */
void th_ack_hub_set_loop_thread(th_ack_hub_t *hub);

/**
 * Prepare @p e, attached to no hub yet (a settle completes it on the settling thread).
 * @param[out] e the entry, usually inside the request's own allocation.
 * @param[in] on_complete its completion.
 */
void th_ack_hub_entry_init(struct th_ack_hub_entry *e, th_ack_hub_complete_fn on_complete);

/**
 * Attach @p e to @p hub: its completion will run on the loop thread, and it holds a
 * reference on the hub until it completes. Loop thread only.
 * @param[in] hub the hub, or NULL to leave @p e unattached.
 * @param[in,out] e an entry from th_ack_hub_entry_init(), not yet settled.
 */
void th_ack_hub_attach(th_ack_hub_t *hub, struct th_ack_hub_entry *e);

/**
 * Settle @p e with @p result, from any thread. On the loop thread (or with no hub) the
 * completion runs before this returns; elsewhere it is queued and the loop is woken.
 * After the completion the entry's reference on the hub is dropped.
 * @param[in,out] e the entry; it belongs to its completion from now on.
 * @param[in] result what the ack settled with.
 */
void th_ack_hub_settle(struct th_ack_hub_entry *e, int result);

/**
 * The creator lets go: complete the entries already queued (loop thread, now), then drop
 * the creator's reference. The hub closes when the last attached entry completes.
 * @param[in] hub the hub, or NULL (nothing happens).
 * @note Entries that settle later still complete on the loop thread, so their completion
 *       must cope with the receiver being gone.
 */
void th_ack_hub_release(th_ack_hub_t *hub);

#endif
