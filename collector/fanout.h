/*
 * Internal: the fan-out consumer that hands one batch to several consumers.
 */
#ifndef TH_FANOUT_H
#define TH_FANOUT_H

#include "th/component.h"

struct th__fanout {
    struct th_consumer base;
    struct th_consumer **out;
    size_t n;
};

/**
 * Create a fan-out over @p n consumers (the array is copied).
 * @return the fan-out, or NULL when memory is short.
 */
struct th__fanout *th__fanout_create(struct th_consumer **out, size_t n);

/** Free a fan-out; NULL is allowed. */
void th__fanout_destroy(struct th__fanout *f);

/** Combine two consume results: a retryable failure outranks a permanent one. */
int th__fanout_merge(int a, int b);

#endif
