/*
 * The span store interface, the shape of Jaeger's storage API: write batches; get a trace
 * by id; find trace ids by query; list services and operations; dependencies. The
 * jaeger_storage_exporter and the query API use only this interface, so a second backend
 * (ClickHouse, for users who outgrow one machine) can come later without touching them.
 * LMDB is the first backend (store/lmdb/).
 *
 * Threads: one writer at a time (th_store_write is called from the exporter's writer
 * thread); readers run concurrently from any thread. Results are copied into the caller's
 * arena, so no read transaction is held while the caller writes to a slow client.
 */
#ifndef TH_STORE_H
#define TH_STORE_H

#include "th/arena.h"
#include "th/batch.h"
#include "th/common.h"
#include "th/histogram.h"

typedef struct th_store th_store_t;

/** What a store is opened with: Jaeger v2's `jaeger_storage.backends.NAME.lmdb`. */
struct th_store_cfg {
    const char *path; /**< directory of the store files; created if missing */
    /** Retention by age (ttl.spans, 72h in config): spans go this long after they were
     *  *written*, as with Jaeger's badger TTL, so a replay of old spans is kept for the
     *  whole ttl and clock skew in the data never deletes it early. 0 = no age limit. */
    int64_t ttl_ns;
    /** Retention by size (max_size_mib): the oldest spans go while the pages in use exceed
     *  it. 0 = no limit but the map's. */
    int64_t max_size_bytes;
    /** true: fsync every commit (a committed batch survives power loss). false: no fsync
     *  (MDB_NOSYNC | MDB_NOMETASYNC): a committed batch still survives the process being
     *  killed, but an OS crash or power loss can lose the last commits or damage the file;
     *  retention passes flush to disk, which bounds the window. */
    bool sync;
    /** The most the LMDB map (and so the file) may grow to; the file grows in preallocated
     *  steps up to it. 0 = twice max_size (at least max_size + 256 MiB), or 1 TiB. */
    int64_t map_size_bytes;
    /** How often the jaeger_storage extension runs retention in the background; <= 0 means
     *  30s. The store itself runs none: its owner calls th_store_retention(). */
    int64_t retention_interval_ns;
    bool ephemeral; /**< delete the files (and the directory, if empty) on close */
    /** What a full disk (or a map that cannot grow) does. false (default): writes fail with
     *  TH_ESPACE (senders get 503 and retry) and nothing is deleted before its ttl; writes
     *  resume by themselves once there is room. true: the next retention pass deletes the
     *  oldest blocks (about a tenth of the data) to make room, losing acknowledged spans. */
    bool evict_oldest_when_full;
    /** By default an existing data.mdb is walked read-only before it is opened (every key of
     *  every database, the free list, the size against the last page), so a damaged file is
     *  refused with a clear message instead of crashing a reader later; that costs about a
     *  second per GB. true: check only the header pages and the size (check_on_start: false). */
    bool skip_full_check;
};

/**
 * A search, Jaeger's TraceQueryParameters. Zero fields are unset. A trace matches when one
 * of its spans of @p service meets every condition (Jaeger's memory store semantics): the
 * operation and kind, a start in the window, a duration within the bounds, and each tag.
 *
 * A tag key=value holds when the span, its scope, its resource, one of its events or one of
 * its links has an attribute @p key whose value, as text, is @p value: strings as they are,
 * ints in decimal, bools true/false, doubles as Go's FormatFloat(v, 'f', -1) ("0.25", "3"),
 * bytes in base64, arrays and maps as JSON (maps with sorted keys). Special keys, as in
 * Jaeger: `error=true` holds for status ERROR (or an attribute error=true) and `error=false`
 * for any other span; `span.kind` is the kind's name (server, client, producer, consumer,
 * internal, unspecified); `scope.name` and `scope.version`; `resource.KEY` looks at resource
 * attributes only.
 */
struct th_trace_query {
    const char *service;           /**< required */
    const char *operation;         /**< span name; NULL = any */
    int span_kind;                 /**< OTLP SpanKind 1..5; 0 = any */
    const char *const *tag_keys;   /**< AND of key=value pairs (see above) */
    const char *const *tag_values; /**< the values, as text */
    size_t n_tags;
    uint64_t start_min_ns, start_max_ns;       /**< span start window */
    uint64_t duration_min_ns, duration_max_ns; /**< span duration bounds */
    size_t limit;                              /**< traces to return at most (default 20) */
};

struct th_store_operation {
    const char *name;
    int span_kind; /**< OTLP SpanKind; 0 when unknown */
};

struct th_store_dependency {
    const char *parent;
    const char *child;
    uint64_t call_count;
};

/** Counters a store keeps (internal metrics); the counts persist across restarts. */
struct th_store_stats {
    uint64_t spans_written;
    uint64_t batches_written;
    uint64_t bytes_on_disk; /**< blocks the store's files take (preallocated ahead of use) */
    uint64_t bytes_used;    /**< bytes of pages holding data, indexes included */
    uint64_t retention_deleted_spans;
    uint64_t oldest_span_ns; /**< earliest span start of the oldest stored block; 0 if none */
    uint64_t capacity_bytes; /**< LMDB: the map's current size (it grows in steps) */
    uint64_t fs_free_bytes;  /**< free bytes for unprivileged users on the store's filesystem */
    uint64_t write_errors;   /**< write() calls that failed (since open; not persisted) */
    struct th_latency_histogram commit; /**< write transaction commit durations (since open) */
    /** errno of the system call behind the last failed write (ENOSPC, EDQUOT, EROFS, EACCES,
     *  EIO), 0 when the last write succeeded or the failure had no system call behind it. */
    int last_write_errno;
};

/** A backend's operations; a store handle starts with a pointer to them. */
struct th_store_ops {
    const char *name;
    int (*open)(const struct th_store_cfg *cfg, th_store_t **out, char *err, size_t errlen);
    void (*close)(th_store_t *s);
    int (*write)(th_store_t *s, th_batch_t *const *batches, size_t n);
    int (*get_trace)(th_store_t *s, const uint8_t trace_id[16], uint64_t start_min_ns,
                     uint64_t start_max_ns, th_arena_t *a, th_otlp_request_t **out);
    int (*find_trace_ids)(th_store_t *s, const struct th_trace_query *q, uint8_t (*ids)[16],
                          size_t *n);
    int (*services)(th_store_t *s, th_arena_t *a, const char ***out, size_t *n);
    int (*operations)(th_store_t *s, const char *service, int span_kind, th_arena_t *a,
                      struct th_store_operation **out, size_t *n);
    int (*dependencies)(th_store_t *s, uint64_t end_ns, uint64_t lookback_ns, th_arena_t *a,
                        struct th_store_dependency **out, size_t *n);
    int (*retention)(th_store_t *s, uint64_t now_ns);
    void (*stats)(th_store_t *s, struct th_store_stats *out);
};

struct th_store {
    const struct th_store_ops *ops;
};

/** The LMDB backend. */
extern const struct th_store_ops th_store_lmdb_ops;

/**
 * Open a store.
 * @param[out] out the store; close with th_store_close().
 * @param[out] err a message a person can act on (path, permission, version).
 * @return 0, TH_EIO (cannot create or open the files, another layout or LMDB version),
 *         TH_EEXIST (the directory is already open in this process: open each store once),
 *         TH_ESPACE (the disk cannot hold the first allocation), TH_ENOMEM, TH_ECONFIG (no
 *         path).
 * @note cfg->path is copied.
 */
static inline int th_store_open(const struct th_store_ops *ops, const struct th_store_cfg *cfg,
                                th_store_t **out, char *err, size_t errlen)
{
    return ops->open(cfg, out, err, errlen);
}

/** Flush and close; NULL is allowed. */
static inline void th_store_close(th_store_t *s)
{
    if (s) {
        s->ops->close(s);
    }
}

/**
 * Write batches in one transaction (group commit). When it returns 0 the spans are durable
 * (with sync) and visible to readers. Only one writer runs at a time (a second waits).
 * @note The batches stay the caller's; nothing of them is kept.
 * @return 0, TH_ESPACE (the map is at its maximum or the disk is full: run retention and
 *         try again; nothing is evicted for it unless evict_oldest_when_full), TH_E2BIG (a
 *         single block over 256 MiB), TH_EIO (a read-only or failing disk: see
 *         th_store_stats' last_write_errno), TH_ENOMEM. A later call retries what failed
 *         (growing the map, reopening the files), so writes resume by themselves.
 */
static inline int th_store_write(th_store_t *s, th_batch_t *const *batches, size_t n)
{
    return s->ops->write(s, batches, n);
}

/**
 * All spans of a trace, as an OTLP request (spans grouped under their resource and scope),
 * every field as it was written. Spans written several times come back several times.
 * @param[in] start_min_ns,start_max_ns hints only (0 = unbounded); nothing is filtered by
 *            them, since clients send them in the wrong unit (jaeger-api.md §2.6).
 * @param[out] out allocated in @p a.
 * @return 0, TH_ENOENT (no such trace), TH_EIO, TH_ENOMEM.
 */
static inline int th_store_get_trace(th_store_t *s, const uint8_t trace_id[16],
                                     uint64_t start_min_ns, uint64_t start_max_ns, th_arena_t *a,
                                     th_otlp_request_t **out)
{
    return s->ops->get_trace(s, trace_id, start_min_ns, start_max_ns, a, out);
}

/**
 * Trace ids of the traces with at least one span matching every condition of @p q, newest
 * first, at most q->limit. A trace's time is its newest matching span's start, compared at
 * microseconds (the API's resolution); among equal times the more recently written comes
 * first.
 * @param[out] ids room for q->limit ids.
 * @param[out] n how many were found.
 * @return 0, TH_EINVAL (no service), TH_EIO, TH_ENOMEM.
 */
static inline int th_store_find_trace_ids(th_store_t *s, const struct th_trace_query *q,
                                          uint8_t (*ids)[16], size_t *n)
{
    return s->ops->find_trace_ids(s, q, ids, n);
}

/** Service names, sorted. @return 0, TH_EIO, TH_ENOMEM. */
static inline int th_store_services(th_store_t *s, th_arena_t *a, const char ***out, size_t *n)
{
    return s->ops->services(s, a, out, n);
}

/** Operations of a service (span_kind 0 = all kinds), sorted by name. */
static inline int th_store_operations(th_store_t *s, const char *service, int span_kind,
                                      th_arena_t *a, struct th_store_operation **out, size_t *n)
{
    return s->ops->operations(s, service, span_kind, a, out, n);
}

/**
 * Parent → child service call counts: a span whose parent span (same trace) is in another
 * service is one call, counted by the child span's start, whichever of the two was written
 * first. Calls within one service are not counted (as Jaeger's badger store). The window
 * [end - lookback, end] is widened to whole minutes.
 * @param[out] out allocated in @p a; unordered, one entry per (parent, child).
 * @return 0, TH_EIO, TH_ENOMEM.
 */
static inline int th_store_dependencies(th_store_t *s, uint64_t end_ns, uint64_t lookback_ns,
                                        th_arena_t *a, struct th_store_dependency **out, size_t *n)
{
    return s->ops->dependencies(s, end_ns, lookback_ns, a, out, n);
}

/**
 * Enforce retention: delete spans written before @p now_ns - ttl, and the oldest spans while
 * the store is over its size (or after a write failed with TH_ESPACE). Deletes in small
 * transactions, so writers wait at most for one of them, and stops after about 250 ms (the
 * next call goes on). Safe from any thread; a call while another runs returns at once.
 * @param[in] now_ns the wall clock (tests pass a later time to expire data). The LMDB store
 *            reads it as an offset from the current wall clock applied to its own clock,
 *            which wall clock steps while it runs do not move (store/lmdb/README.md).
 * @return 0, TH_EIO, TH_ENOMEM.
 */
static inline int th_store_retention(th_store_t *s, uint64_t now_ns)
{
    return s->ops->retention ? s->ops->retention(s, now_ns) : 0;
}

/** Fill @p out with the store's counters. */
static inline void th_store_stats(th_store_t *s, struct th_store_stats *out)
{
    s->ops->stats(s, out);
}

#endif
