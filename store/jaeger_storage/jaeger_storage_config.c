/*
 * Config of the jaeger_storage extension: Jaeger v2's `backends` map, each backend one of
 * `lmdb`, `memory` or `badger`, decoded with its own strict table through th_cfg_decode so
 * that an error names the whole key path (extensions::jaeger_storage::backends::main::lmdb::
 * ttl::spans: ...), and mapped onto the LMDB store's typed config.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "store/jaeger_storage/jaeger_storage.h"

#define MIB (1024ll * 1024)

const struct th_cfg_field th__js_config[] = {
    {.name = "backends",
     .type = TH_CFG_NODE,
     .def = "{}",
     .offset = offsetof(struct th_jaeger_storage_cfg, backends),
     .desc = "trace stores by name, each `lmdb`, `memory` or `badger` (served by LMDB)"},
    {.name = "metric_backends",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct th_jaeger_storage_cfg, metric_backends),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility with Jaeger's metrics storage; not used"},
    {.name = NULL},
};

/* ---- Backend tables ------------------------------------------------------------------- */

#define LMDB_OFF(f) offsetof(struct th__js_lmdb_cfg, f)

static const struct th_cfg_field lmdb_ttl[] = {
    {.name = "spans",
     .type = TH_CFG_DURATION,
     .def = "72h",
     .offset = offsetof(struct th__js_ttl, spans),
     .min = 0,
     .max = INFINITY,
     .desc = "delete spans this long after they were written; 0 keeps them until max_size_mib"},
    {.name = NULL},
};

static const struct th_cfg_field lmdb_table[] = {
    {.name = "path",
     .type = TH_CFG_STRING,
     .def = "./tracehouse-data",
     .offset = LMDB_OFF(path),
     .desc = "directory of the store (created if missing)"},
    {.name = "ttl",
     .type = TH_CFG_SECTION,
     .offset = LMDB_OFF(ttl),
     .sub = lmdb_ttl,
     .desc = "retention by age"},
    {.name = "max_size_mib",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = LMDB_OFF(max_size_mib),
     .min = 0,
     .max = 1073741824.0,
     .desc = "retention by size: the oldest spans go when the data exceeds this; 0 = no limit"},
    {.name = "sync",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = LMDB_OFF(sync),
     .desc = "fsync each commit; false is faster but an OS crash or power loss can lose or "
             "damage recent data (a process crash cannot)"},
    {.name = "retention_interval",
     .type = TH_CFG_DURATION,
     .def = "30s",
     .offset = LMDB_OFF(retention_interval),
     .min = 1e9,
     .max = 8.64e13,
     .desc = "how often retention runs in the background"},
    {.name = "evict_oldest_when_full",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = LMDB_OFF(evict_oldest_when_full),
     .desc = "when the disk is full, delete the oldest spans before their ttl to make room "
             "(acknowledged spans are lost); false: answer 503 until there is room again"},
    {.name = "check_on_start",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = LMDB_OFF(check_on_start),
     .desc = "walk the whole store file read-only at start and refuse a damaged one (about a "
             "second per GB; false: only the header pages and the file size are checked)"},
    {.name = NULL},
};

#define MEM_OFF(f) offsetof(struct th__js_memory_cfg, f)

static const struct th_cfg_field memory_table[] = {
    {.name = "max_traces",
     .type = TH_CFG_INT,
     .def = "100000",
     .offset = MEM_OFF(max_traces),
     .min = 1,
     .max = 1e12,
     .desc = "traces kept, about (an LMDB store in a temporary directory sized at 4 KiB per "
             "trace, deleted at exit)"},
    {.name = NULL},
};

#define BADGER_OFF(f) offsetof(struct th__js_badger_cfg, f)

static const struct th_cfg_field badger_dirs[] = {
    {.name = "keys",
     .type = TH_CFG_STRING,
     .def = "./data/keys",
     .offset = offsetof(struct th__js_dirs, keys),
     .desc = "directory of the LMDB store when not ephemeral"},
    {.name = "values",
     .type = TH_CFG_STRING,
     .def = "./data/values",
     .offset = offsetof(struct th__js_dirs, values),
     .desc = "accepted for compatibility and unused: LMDB keeps keys and values in one file "
             "under keys"},
    {.name = NULL},
};

static const struct th_cfg_field badger_ttl[] = {
    {.name = "spans",
     .type = TH_CFG_DURATION,
     .def = "72h",
     .offset = offsetof(struct th__js_ttl, spans),
     .min = 1,
     .max = INFINITY,
     .desc = "delete spans this long after they were written (must be positive, as in Jaeger)"},
    {.name = NULL},
};

static const struct th_cfg_field badger_table[] = {
    {.name = "directories",
     .type = TH_CFG_SECTION,
     .offset = BADGER_OFF(directories),
     .sub = badger_dirs,
     .desc = "where the store lives when not ephemeral"},
    {.name = "ephemeral",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = BADGER_OFF(ephemeral),
     .desc = "keep the store in a temporary directory deleted at exit (Jaeger's default)"},
    {.name = "ttl",
     .type = TH_CFG_SECTION,
     .offset = BADGER_OFF(ttl),
     .sub = badger_ttl,
     .desc = "retention by age"},
    {.name = "consistency",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = BADGER_OFF(consistency),
     .desc = "fsync each commit (badger's SyncWrites)"},
    {.name = "maintenance_interval",
     .type = TH_CFG_DURATION,
     .def = "5m",
     .offset = BADGER_OFF(maintenance_interval),
     .min = 1e9,
     .max = 8.64e13,
     .desc = "how often retention runs in the background"},
    {.name = "metrics_update_interval",
     .type = TH_CFG_DURATION,
     .def = "10s",
     .offset = BADGER_OFF(metrics_update_interval),
     .min = 1,
     .max = INFINITY,
     .desc = "accepted for compatibility and unused: store metrics are always current"},
    {.name = "read_only",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = BADGER_OFF(read_only),
     .desc = "not supported: must be false"},
    {.name = NULL},
};

/* Jaeger v2 backend types Tracehouse does not serve, for a clearer message. */
static const char *const other_jaeger_types[] = {"cassandra", "elasticsearch", "opensearch",
                                                 "grpc",      "clickhouse",    NULL};

/* ---- Decoding ------------------------------------------------------------------------- */

static int backend_from(const char *name, const char *type, const th_node_t *node, th_arena_t *a,
                        struct th__js_backend *b, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof(path), "::backends::%s::%s", name, type);
    memset(b, 0, sizeof(*b));
    b->name = name;
    b->type = type;
    struct th_store_cfg *sc = &b->store;
    int ret;
    if (!strcmp(type, "lmdb")) {
        struct th__js_lmdb_cfg c;
        ret = th_cfg_decode(lmdb_table, node, &c, a, path, err, errlen);
        if (ret != 0) {
            return ret;
        }
        if (!*c.path) {
            snprintf(err, errlen, "%s::path: must not be empty", path);
            return TH_ECONFIG;
        }
        sc->path = c.path;
        sc->ttl_ns = c.ttl.spans;
        sc->max_size_bytes = c.max_size_mib * MIB;
        sc->sync = c.sync;
        sc->retention_interval_ns = c.retention_interval;
        sc->evict_oldest_when_full = c.evict_oldest_when_full;
        sc->skip_full_check = !c.check_on_start;
    } else if (!strcmp(type, "memory")) {
        struct th__js_memory_cfg c;
        ret = th_cfg_decode(memory_table, node, &c, a, path, err, errlen);
        if (ret != 0) {
            return ret;
        }
        /* Jaeger's memory store keeps max_traces traces and forgets the oldest: retention by
         * size does the same at a fixed size per trace */
        int64_t bytes = c.max_traces > INT64_MAX / TH_JS_BYTES_PER_TRACE
                            ? INT64_MAX
                            : c.max_traces * TH_JS_BYTES_PER_TRACE;
        sc->max_size_bytes = TH_MAX(bytes, 16 * MIB);
        sc->ttl_ns = 0;
        sc->sync = false;
        sc->ephemeral = true;
        sc->evict_oldest_when_full = true; /* a cache of recent traces, as Jaeger's */
        sc->retention_interval_ns = 10000000000ll;
    } else {
        struct th__js_badger_cfg c;
        ret = th_cfg_decode(badger_table, node, &c, a, path, err, errlen);
        if (ret != 0) {
            return ret;
        }
        if (c.read_only) {
            snprintf(err, errlen, "%s::read_only: read-only stores are not supported", path);
            return TH_ECONFIG;
        }
        if (!c.ephemeral && !*c.directories.keys) {
            snprintf(err, errlen, "%s::directories::keys: must not be empty", path);
            return TH_ECONFIG;
        }
        sc->path = c.ephemeral ? NULL : c.directories.keys;
        sc->ephemeral = c.ephemeral;
        sc->ttl_ns = c.ttl.spans;
        sc->sync = c.consistency;
        sc->retention_interval_ns = c.maintenance_interval;
    }
    return 0;
}

int th__js_decode(const struct th_jaeger_storage_cfg *cfg, th_arena_t *a,
                  struct th__js_backend **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    const th_node_t *bs = cfg->backends;
    if (!bs || bs->kind == TH_NODE_NULL) {
        return 0;
    }
    if (bs->kind != TH_NODE_MAP) {
        snprintf(err, errlen, "::backends: expected a map of backend names");
        return TH_ECONFIG;
    }
    struct th__js_backend *v = th_arena_calloc(a, bs->n ? bs->n : 1, sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    for (size_t i = 0; i < bs->n; i++) {
        const char *name = bs->pairs[i].key;
        const th_node_t *b = bs->pairs[i].value;
        if (!b || b->kind != TH_NODE_MAP || b->n != 1) {
            snprintf(err, errlen,
                     "::backends::%s: expected exactly one backend type (lmdb, memory or "
                     "badger)",
                     name);
            return TH_ECONFIG;
        }
        const char *type = b->pairs[0].key;
        if (strcmp(type, "lmdb") && strcmp(type, "memory") && strcmp(type, "badger")) {
            bool jaeger = false;
            for (size_t j = 0; other_jaeger_types[j]; j++) {
                jaeger = jaeger || !strcmp(type, other_jaeger_types[j]);
            }
            snprintf(err, errlen,
                     jaeger ? "::backends::%s::%s: this Jaeger backend type is not served by "
                              "Tracehouse (use lmdb, memory or badger)"
                            : "::backends::%s::%s: unknown backend type (use lmdb, memory or "
                              "badger)",
                     name, type);
            return TH_ECONFIG;
        }
        int ret = backend_from(name, type, b->pairs[0].value, a, &v[i], err, errlen);
        if (ret != 0) {
            return ret;
        }
        for (size_t j = 0; j < i; j++) {
            if (v[i].store.path && v[j].store.path && !strcmp(v[i].store.path, v[j].store.path)) {
                snprintf(err, errlen,
                         "::backends::%s: uses the same directory as backend \"%s\" (%s)", name,
                         v[j].name, v[i].store.path);
                return TH_ECONFIG;
            }
        }
    }
    *out = v;
    *n = bs->n;
    return 0;
}

int th__js_config_check(const void *cfg, const char **err)
{
    /* config_check has no arena of its own: decode into a scratch one; the message lives in a
     * per-thread buffer until the next check on this thread */
    static _Thread_local char msg[768];
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        *err = "out of memory";
        return TH_ECONFIG;
    }
    struct th__js_backend *b;
    size_t n;
    msg[0] = '\0';
    int ret = th__js_decode(cfg, a, &b, &n, msg, sizeof(msg));
    th_arena_destroy(a);
    if (ret != 0) {
        *err = msg[0] ? msg : th_strerror(ret);
        return TH_ECONFIG;
    }
    return 0;
}
