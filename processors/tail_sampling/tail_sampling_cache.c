/*
 * The decision caches: FIFO rings of decided trace ids with an open-addressing index over the
 * ring positions, so a late span finds its trace's decision in one or two probes. About 25
 * bytes per remembered trace (16 for the id, 1 for the decision, 8 for two index slots).
 * When the ring is full the oldest decision is forgotten: a span of that trace arriving later
 * starts a new trace, as after the Collector's LRU eviction.
 */
#include <string.h>

#include "processors/tail_sampling/tail_sampling_buffer.h"

int th__ts_cache_init(struct th__ts_cache *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    if (cap == 0) {
        return 0;
    }
    size_t slots = 16;
    while (slots < cap * 2) {
        slots *= 2;
    }
    c->ids = th_malloc(cap * sizeof(*c->ids));
    c->dec = th_malloc(cap);
    c->index = th_calloc(slots, sizeof(*c->index));
    if (!c->ids || !c->dec || !c->index) {
        th__ts_cache_deinit(c);
        return TH_ENOMEM;
    }
    c->cap = cap;
    c->imask = slots - 1;
    return 0;
}

void th__ts_cache_deinit(struct th__ts_cache *c)
{
    th_free(c->ids);
    th_free(c->dec);
    th_free(c->index);
    memset(c, 0, sizeof(*c));
}

/* @return the index slot holding the id, or the empty slot where it would go. */
static size_t find_slot(const struct th__ts_cache *c, const uint8_t id[16], uint64_t h)
{
    for (size_t i = h & c->imask;; i = (i + 1) & c->imask) {
        uint32_t pos = c->index[i];
        if (pos == 0 || memcmp(c->ids[pos - 1], id, 16) == 0) {
            return i;
        }
    }
}

/* Backward-shift deletion of index slot @p i (hashes are recomputed from the ring). */
static void index_remove(struct th__ts_cache *c, size_t i)
{
    for (size_t j = (i + 1) & c->imask; c->index[j]; j = (j + 1) & c->imask) {
        size_t home = th__ts_hash(c->ids[c->index[j] - 1]) & c->imask;
        bool in_between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_between) {
            c->index[i] = c->index[j];
            i = j;
        }
    }
    c->index[i] = 0;
}

void th__ts_cache_put(struct th__ts_cache *c, const uint8_t id[16], uint64_t h,
                      enum th_ts_decision d)
{
    if (c->cap == 0) {
        return;
    }
    size_t i = find_slot(c, id, h);
    if (c->index[i]) {
        c->dec[c->index[i] - 1] = (uint8_t)d;
        return;
    }
    size_t pos;
    if (c->n == c->cap) {
        /* Forget the oldest: its ring entry is reused for this id. */
        pos = c->head;
        c->head = (c->head + 1) % c->cap;
        const uint8_t *old = c->ids[pos];
        index_remove(c, find_slot(c, old, th__ts_hash(old)));
        i = find_slot(c, id, h);
    } else {
        pos = (c->head + c->n) % c->cap;
        c->n++;
    }
    memcpy(c->ids[pos], id, 16);
    c->dec[pos] = (uint8_t)d;
    c->index[i] = (uint32_t)(pos + 1);
}

enum th_ts_decision th__ts_cache_get(const struct th__ts_cache *c, const uint8_t id[16], uint64_t h)
{
    if (c->n == 0) {
        return TH_TS_UNSPECIFIED;
    }
    size_t i = find_slot(c, id, h);
    return c->index[i] ? (enum th_ts_decision)c->dec[c->index[i] - 1] : TH_TS_UNSPECIFIED;
}
