/*
 * The jaeger_storage extension: Jaeger v2's `extensions.jaeger_storage`, which opens the
 * trace stores named under `backends` when it starts and keeps them for the process. The
 * jaeger_storage_exporter writes into a store by name and the jaeger_query extension reads
 * from one; both find it here, so a store is opened once however many components use it.
 *
 * Backend types: `lmdb` (Tracehouse's own), and Jaeger v2's `memory` and `badger`, which are
 * accepted as written and served by LMDB (store/jaeger_storage/README.md has the mapping).
 */
#ifndef TH_JAEGER_STORAGE_H
#define TH_JAEGER_STORAGE_H

#include "th/component.h"
#include "th/store.h"

/** The extension's ops (kind TH_KIND_EXTENSION, type "jaeger_storage"). */
extern const struct th_component_ops th_extension_jaeger_storage_ops;

/**
 * Find a store the jaeger_storage extension opened.
 * @param[in] host the host a component was started with.
 * @param[in] backend the backend's name under extensions::jaeger_storage::backends.
 * @param[out] out the store; untouched on failure.
 * @return 0; TH_ENOENT when the extension is not configured (or not listed in
 *         service::extensions), is not started, or has no backend of that name; TH_EINVAL
 *         for a NULL argument.
 * @note The store belongs to the extension, which closes it at its shutdown; extensions shut
 *       down after every exporter, so a component may use the store until its own shutdown
 *       returns. Callers must not close it.
 */
int th_jaeger_storage_find(struct th_host *host, const char *backend, th_store_t **out);

/** Called by th_jaeger_storage_foreach for each open store. */
typedef void (*th_jaeger_storage_each_fn)(void *data, const char *backend, th_store_t *store);

/**
 * Visit the stores a started jaeger_storage instance has open, in config order (for the
 * internal metrics and health_check).
 * @param[in] c an instance of th_extension_jaeger_storage_ops (anything else: no call).
 * @param[in] fn called with each backend's name and store.
 * @note The stores are open from the instance's start to its shutdown; call this only
 *       between the two (the collector stops its metrics endpoint before any shutdown).
 */
void th_jaeger_storage_foreach(const struct th_component *c, th_jaeger_storage_each_fn fn,
                               void *data);

#endif
