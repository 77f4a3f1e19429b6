/*
 * The jaeger_storage extension, internal: its config (Jaeger v2's shape), the decoded
 * backends, and the instance that owns the open stores and the retention thread.
 */
#ifndef TH_STORE_JAEGER_STORAGE_INTERNAL_H
#define TH_STORE_JAEGER_STORAGE_INTERNAL_H

#include <pthread.h>

#include "th/jaeger_storage.h"

/** extensions::jaeger_storage. Backends are decoded by our own code (th__js_decode) so that
 *  each backend type gets its own strict table and errors name the full key path. */
struct th_jaeger_storage_cfg {
    const th_node_t *backends;        /**< name → {lmdb | memory | badger: {...}} */
    const th_node_t *metric_backends; /**< accepted (Jaeger's SPM storage); unused */
};

/** ttl: {spans} */
struct th__js_ttl {
    int64_t spans;
};

/** badger's directories: {keys, values} */
struct th__js_dirs {
    const char *keys;
    const char *values;
};

/** backends::NAME::lmdb */
struct th__js_lmdb_cfg {
    const char *path;
    struct th__js_ttl ttl;
    int64_t max_size_mib;
    bool sync;
    int64_t retention_interval;
    bool evict_oldest_when_full;
    bool check_on_start;
};

/** backends::NAME::memory (Jaeger v2's in-memory store) */
struct th__js_memory_cfg {
    int64_t max_traces;
};

/** backends::NAME::badger (Jaeger v2's badger store) */
struct th__js_badger_cfg {
    struct th__js_dirs directories;
    bool ephemeral;
    struct th__js_ttl ttl;
    bool consistency;
    int64_t maintenance_interval;
    int64_t metrics_update_interval;
    bool read_only;
};

/** One decoded backend: what to open. */
struct th__js_backend {
    const char *name;
    const char *type;          /**< "lmdb", "memory" or "badger" */
    struct th_store_cfg store; /**< path NULL: a temporary directory made at start */
    char *tmpdir;              /**< the temporary directory (heap), removed at shutdown */
    th_store_t *opened;
};

/** Bytes of store per trace a `memory` backend's max_traces is sized with. */
#define TH_JS_BYTES_PER_TRACE (4 * 1024)

/**
 * Decode and check every backend of @p cfg.
 * @param[in] a where names, paths and the backend array are allocated.
 * @param[out] err on failure, a message whose key path starts with "::backends::NAME", for
 *             the collector to put after "extensions::jaeger_storage".
 * @return 0, TH_ECONFIG, TH_ENOMEM.
 */
int th__js_decode(const struct th_jaeger_storage_cfg *cfg, th_arena_t *a,
                  struct th__js_backend **out, size_t *n, char *err, size_t errlen);

/** The config table of the extension. */
extern const struct th_cfg_field th__js_config[];

/** config_check: decode the backends once to report the first error. */
int th__js_config_check(const void *cfg, const char **err);

struct th_jaeger_storage {
    struct th_component base;
    const struct th_jaeger_storage_cfg *cfg;
    th_arena_t *arena;
    struct th__js_backend *backends;
    size_t n_backends;
    /* background retention for every store */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool thread_running;
    bool stopping;
};

#endif
