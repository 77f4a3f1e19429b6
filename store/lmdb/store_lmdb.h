/*
 * The LMDB span store, internal: the store handle, the transaction wrapper with its sticky
 * error, the catalog (service and operation ids) and the functions the write, read and
 * retention files share. Nothing outside store/lmdb/ includes this header; everyone else
 * goes through include/th/store.h.
 */
#ifndef TH_STORE_LMDB_H
#define TH_STORE_LMDB_H

#include <lmdb.h>
#include <pthread.h>
#include <sys/types.h>
#include <zstd.h>

#include "store/lmdb/store_lmdb_codec.h"
#include "store/lmdb/store_lmdb_keys.h"
#include "th/store.h"

/** The on-disk layout version, kept in meta under "layout"; another value refuses to open. */
#define TH_LMDB_LAYOUT 2

/** A block holds the spans of one service from one write, at most this many; more are split
 *  into several blocks, so neither a trace lookup nor a search decompresses more than one
 *  such block per piece it needs. */
#define TH_BLOCK_MAX_SPANS 2048

/*
 * Span stats of a block (in blkidx) or of a summary of blocks (in svcsum): u64 min_start |
 * u64 min_dur | u64 max_dur | u32 n_spans | u8 tag table parts | u8 n_long | u8 n_short, then
 * n_long + n_short points (u32 µs after min_start, u64 duration in ns). The "long" points
 * are the spans no later span outlasts, newest first: the newest start among spans lasting at
 * least d is the first point with duration >= d. The "short" points are the mirror image for
 * spans lasting at most d. A count's top bit says the list was cut at TH_FRONTIER_MAX points
 * (beyond them nothing is known).
 *
 * A blkidx value is u32 svc | u64 max_start, then the stats. An svcsum value is the stats,
 * then u8 n_blocks and n_blocks × (u64 block, u64 max_start) of the blocks it covers.
 */
#define TH_STATS_FIXED   31
#define TH_BLKIDX_HEAD   12
#define TH_FRONTIER_MAX  48
#define TH_FRONTIER_CUT  0x80
#define TH_FRONTIER_SIZE 12
#define TH_STATS_MAX     (TH_STATS_FIXED + 2 * TH_FRONTIER_MAX * TH_FRONTIER_SIZE)

/** A service's blocks are summarised by this many at a time. */
#define TH_SUM_BLOCKS 32

/** Parsed stats. */
struct th__stats {
    uint64_t min_start, min_dur, max_dur;
    uint32_t n_spans;
    unsigned n_parts, n_long, n_short;
    bool long_cut, short_cut;
    const uint8_t *longs, *shorts; /* points */
    size_t len;                    /* bytes the stats took */
};

/** Parse stats at the start of @p p. @return 0 or TH_EIO. */
int th__stats_parse(const uint8_t *p, size_t len, struct th__stats *v);

/** A parsed blkidx value. */
struct th__blkidx {
    uint32_t svc;
    uint64_t max_start;
    struct th__stats st;
};

/** A parsed svcsum value. */
struct th__svcsum {
    struct th__stats st;
    unsigned n_blocks;
    const uint8_t *blocks; /* n_blocks × (u64 block, u64 max_start) */
};

/** Parse a blkidx value. @return 0 or TH_EIO. */
int th__blkidx_parse(const uint8_t *p, size_t len, struct th__blkidx *v);

/** Parse an svcsum value. @return 0 or TH_EIO. */
int th__svcsum_parse(const uint8_t *p, size_t len, struct th__svcsum *v);

/** Retention looks at most this many of the oldest blocks per transaction. */
#define TH_RETENTION_BLOCKS_PER_TXN 512

/** A retention transaction stops deleting after this long, so the writer never waits long on
 *  it; a commit (and its sync) then covers hundreds of blocks rather than a few. */
#define TH_RETENTION_TXN_NS 20000000ull

/** A retention pass stops after this long, or after half the retention interval when that is
 *  longer (so a pass can delete what arrived during one interval), and goes on at the next
 *  call. */
#define TH_RETENTION_BUDGET_NS 250000000ull

/** A string-keyed cache entry of the catalog (services or operations). */
struct th__cat_entry {
    uint64_t hash;
    char *key; /* th_malloc'd; NULL = empty slot */
    uint32_t klen;
    uint32_t id;
    uint64_t seen; /* last_seen last written to the database */
};

/** An open-addressing map from catalog keys to ids, used only by the writer. */
struct th__cat {
    struct th__cat_entry *slots;
    size_t cap, n;
};

struct th__wctx; /* the writer's reusable scratch (store_lmdb_write.c) */

/** The store handle. */
struct th_lmdb {
    struct th_store base;
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_blocks, dbi_traces, dbi_blkidx, dbi_tags, dbi_svcsum, dbi_sumtags,
        dbi_svc, dbi_ops, dbi_deps;
    char *path;
    struct th_store_cfg cfg; /* cfg.path points to path */
    unsigned psize;
    size_t chunk_max; /* value bytes per chunk so that two chunks fill one leaf page */
    uint64_t map_size;
    dev_t dev;
    ino_t ino;
    uint64_t gen; /* unique per open in this process: keys the readers' block cache */

    /* The writer side: write() and retention() hold wlock for each transaction, so the
     * in-memory writer state below changes only under it. */
    pthread_mutex_t wlock;
    pthread_mutex_t retention_lock; /* one retention pass at a time (trylock) */
    uint64_t next_block;
    uint32_t next_svc, next_op;
    uint64_t next_sum;
    struct th__cat svcs, ops;
    bool cat_stale; /* a write aborted: reload the caches and counters from the database */
    struct th__wctx *w;
    ZSTD_CCtx *cctx;
    int zlevel;
    bool space_pressure;     /* a write found the store full and evict_oldest_when_full is set:
                              * the next retention pass frees room */
    int last_errno;          /* errno behind the last failed write, 0 after a success (atomic) */
    bool needs_reopen;       /* LMDB reported MDB_PANIC (a meta page write failed): the
                              * environment is unusable until reopened (atomic) */
    uint64_t read_reopen_ns; /* when a read last tried that reopen (monotonic; atomic) */

    /* The store's clock: the wall clock at open plus the monotonic time since, so a clock
     * step while running (NTP, an operator) neither stamps blocks out of order nor makes
     * retention delete them early (store_lmdb.c, th__lmdb_now). */
    uint64_t clock_wall0, clock_mono0;

    /* counters (atomic), persisted in meta by each write transaction */
    uint64_t spans_written, batches_written, retention_deleted;
    uint64_t write_errors;               /* failed writes, for internal metrics (atomic) */
    struct th_latency_histogram commits; /* write commit durations, for internal metrics */
    uint64_t last_prune_ns;              /* when retention last pruned the catalog */

    /* MDB_WRITEMAP maps the file read-write; it must not have holes (a page fault on a full
     * disk would be SIGBUS), so the map grows in preallocated steps. Every transaction holds
     * maplock shared; growing the map takes it exclusively, as LMDB requires no transaction
     * be open while the map size changes. */
    pthread_rwlock_t maplock;
    uint64_t map_max; /* the map never grows past this */
};

/* ---- Errors and transactions ---------------------------------------------------------- */

/** The store's clock in ns since the epoch: the wall clock read at open plus the monotonic
 *  time elapsed since, immune to clock steps while the process runs. Blocks are stamped with
 *  it, and retention measures their age with it. */
uint64_t th__lmdb_now(const struct th_lmdb *s);

/** Note the errno behind a failed LMDB call or system call (a positive @p rc), for
 *  th_store_stats' last_write_errno; MDB_PANIC marks the environment for reopening. */
void th__lmdb_note_err(struct th_lmdb *s, int rc);

/**
 * Check an existing store file before the store opens it for writing: read-only, its header
 * pages, its size against its last page, and with @p full every key of every database in
 * order (faults LMDB would take for a crash are caught). A missing or empty data.mdb passes (a new
 * store).
 * @param[out] err on failure, one line naming the file, what is wrong and what to do.
 * @return 0, or TH_EIO (damaged or unreadable: the store must not be opened).
 * @note Writes nothing. After a caught fault the read-only handle is leaked on purpose.
 */
int th__lmdb_check_existing(const char *dir, bool full, char *err, size_t errlen);

/** Close and reopen the environment after MDB_PANIC (a failed meta page write leaves LMDB's
 *  handle unusable): waits for open transactions to end. @return 0 or TH_EIO. */
int th__lmdb_reopen(struct th_lmdb *s);

/** Map an LMDB or errno code to enum th_err: MDB_MAP_FULL → TH_ESPACE, MDB_NOTFOUND →
 *  TH_ENOENT, ENOMEM → TH_ENOMEM, everything else (corruption, I/O) → TH_EIO. */
int th__mdb_err(int rc);

/** A transaction that carries its first error: operations after a failure do nothing, and
 *  commit aborts and returns that error. */
struct th__txn {
    MDB_txn *t;
    int ret;
    struct th_lmdb *s;
};

/** Begin a transaction; on MDB_READERS_FULL, clear stale readers and retry once.
 *  @return 0 or an error (then tx->t is NULL). */
int th__txn_begin(struct th_lmdb *s, bool rdonly, struct th__txn *tx);

/** Put a value (sticky error). */
void th__txn_put(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, const void *v,
                 size_t vl, unsigned flags);

/** Reserve @p vl bytes for a value and @return where to write them, or NULL (sticky error). */
void *th__txn_reserve(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, size_t vl,
                      unsigned flags);

/** Get a value. @return 0, TH_ENOENT, or an error (also made sticky). */
int th__txn_get(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v);

/** Delete a key; a missing key is not an error. */
void th__txn_del(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl);

/** Grow the map (and the preallocated file) by a step, or to @p at_least bytes; waits for
 *  open transactions to end. @return 0, TH_ESPACE (at map_max, or the disk is full),
 *  TH_EIO. */
int th__map_grow(struct th_lmdb *s, uint64_t at_least);

/** Allocate the data file's blocks up to @p size. @return 0, TH_ESPACE, TH_EIO. */
int th__map_prealloc(struct th_lmdb *s, uint64_t size);

/** Commit, or abort when an error is pending. @return 0 or the error. */
int th__txn_commit(struct th__txn *tx);

/** Abort (NULL-safe). */
void th__txn_abort(struct th__txn *tx);

/* ---- Chunked values ------------------------------------------------------------------- */

/** Store @p len bytes as chunks block|kind|0.. of at most chunk_max bytes (MDB_APPEND). */
void th__chunks_put(struct th_lmdb *s, struct th__txn *tx, uint64_t block, uint8_t kind,
                    const uint8_t *p, size_t len);

/** Read all chunks of block|kind into @p out (appended). @return 0, TH_ENOENT, TH_EIO. */
int th__chunks_get(struct th_lmdb *s, MDB_txn *t, uint64_t block, uint8_t kind, th__mpw_t *out);

/** Delete all chunks of @p block (meta and data). */
void th__chunks_del(struct th_lmdb *s, struct th__txn *tx, uint64_t block);

/* ---- Catalog -------------------------------------------------------------------------- */

/** Build the svc key of a name. @param[out] k room for TH_KEY_SVC_MAX. @return its length. */
size_t th__svc_name_key(const char *name, size_t n, uint8_t *k);

/** Build the ops key. @param[out] k room for TH_KEY_OPS_MAX. @return its length. */
size_t th__op_key(uint32_t svc, int kind, const char *name, size_t n, uint8_t *k);

/** Look a service id up by name in a read transaction. @return 0, TH_ENOENT, TH_EIO. */
int th__svc_lookup(struct th_lmdb *s, MDB_txn *t, const char *name, size_t n, uint32_t *id);

/** Free the writer's catalog caches. */
void th__cat_clear(struct th__cat *c);

/** Service name of an id into @p a. @return 0, TH_ENOENT, TH_EIO, TH_ENOMEM. */
int th__svc_name(struct th_lmdb *s, MDB_txn *t, uint32_t id, th_arena_t *a, const char **out);

/* ---- The parts ------------------------------------------------------------------------ */

int th__lmdb_write(th_store_t *st, th_batch_t *const *batches, size_t n);
void th__lmdb_wctx_free(struct th__wctx *w);

int th__lmdb_get_trace(th_store_t *st, const uint8_t trace_id[16], uint64_t start_min_ns,
                       uint64_t start_max_ns, th_arena_t *a, th_otlp_request_t **out);
int th__lmdb_find_trace_ids(th_store_t *st, const struct th_trace_query *q, uint8_t (*ids)[16],
                            size_t *n);
int th__lmdb_services(th_store_t *st, th_arena_t *a, const char ***out, size_t *n);
int th__lmdb_operations(th_store_t *st, const char *service, int span_kind, th_arena_t *a,
                        struct th_store_operation **out, size_t *n);
int th__lmdb_dependencies(th_store_t *st, uint64_t end_ns, uint64_t lookback_ns, th_arena_t *a,
                          struct th_store_dependency **out, size_t *n);

int th__lmdb_retention(th_store_t *st, uint64_t now_ns);

/** Bytes of pages in use: (last page + 1 - free pages) × page size. */
int th__lmdb_used_bytes(struct th_lmdb *s, MDB_txn *t, uint64_t *used);

/**
 * A block's decompressed payload, at least its first @p need bytes (all of it when need is
 * SIZE_MAX), from the calling thread's cache of recent blocks or decompressed now.
 * @param[in,out] comp,out scratch buffers the caller owns and frees.
 * @param[out] data,len the payload: valid until the thread's next call (it may sit in the
 *             cache or in @p out).
 * @return 0, TH_ENOENT, TH_EIO (corrupt), TH_ENOMEM.
 */
int th__block_payload(struct th_lmdb *s, MDB_txn *t, uint64_t block, size_t need, th__mpw_t *comp,
                      th__mpw_t *out, const uint8_t **data, size_t *len);

/**
 * th__block_payload, opened as a block view (its resource and scope tables), from the
 * thread's cache when the payload is there.
 * @param[in,out] scratch a view the caller frees with th__blk_view_free (zero it first);
 *                used when the payload is not cached.
 * @param[out] view the view: valid until the thread's next call; view->buf/len is the payload.
 * @return as th__block_payload, or th__blk_view_open's error.
 */
int th__block_view(struct th_lmdb *s, MDB_txn *t, uint64_t block, size_t need, th__mpw_t *comp,
                   th__mpw_t *out, struct th__blk_view *scratch, const struct th__blk_view **view);

/** The block meta record, parsed (pointers into the caller's buffer). */
struct th__block_meta {
    uint64_t ingest_ns, min_start, max_start;
    uint32_t n_spans, raw_len, comp_len;
    uint32_t n_traces;
    const uint8_t *traces, *traces_end; /* n × (16-byte id, varint n_subs) */
    uint32_t svc;                       /* the block's service */
    bool has_sum;                       /* the block completed a summary, which goes with it */
    uint64_t sum, sum_max_start;
    uint32_t n_edges;
    const uint8_t *edges, *edges_end; /* n × (varint minute, parent, child, count) */
};

#define TH_BLOCK_META_VERSION 2

/** Parse a block meta record. @return 0 or TH_EIO. */
int th__block_meta_parse(const uint8_t *p, size_t len, struct th__block_meta *m);

/** Add @p delta to the minute and hour counters of an edge (deleting counters that reach 0). */
void th__deps_add(struct th_lmdb *s, struct th__txn *tx, uint32_t minute, uint32_t parent,
                  uint32_t child, int64_t delta);

#endif
