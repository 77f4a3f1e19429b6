/*
 * LMDB plumbing of the span store: the one function that maps LMDB codes to th_err, the
 * transaction wrapper with a sticky error, values split into page-sized chunks, block
 * payload decompression, the block meta record, dependency counters, catalog keys and
 * page accounting for retention by size.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "store/lmdb/store_lmdb.h"

/*
 * ThreadSanitizer cannot see how LMDB orders a read transaction after the commits before it
 * (the meta pages and reader table of the mapped file, plain stores and barriers), nor how it
 * reuses a page only once every reader that saw it has ended. Without help, every read of a
 * committed page "races" with the write that filled it. So in a TSan build each transaction
 * acquires one sync point when it begins and releases it when it ends: the happens-before
 * LMDB guarantees, stated to the tool (scripts/tsan.sh). Nothing in other builds.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char txn_sync;
#define TXN_BEGUN() __tsan_acquire(&txn_sync)
#define TXN_ENDED() __tsan_release(&txn_sync)
#else
#define TXN_BEGUN() ((void)0)
#define TXN_ENDED() ((void)0)
#endif

int th__mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return TH_ENOENT;
    case MDB_MAP_FULL:
        return TH_ESPACE;
    case MDB_TXN_FULL:
        return TH_E2BIG;
    case MDB_READERS_FULL:
        return TH_ERETRY;
    case ENOMEM:
        return TH_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return TH_ESPACE;
    default:
        /* MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, MDB_BAD_TXN, EIO, ... */
        return TH_EIO;
    }
}

/* Transactions this thread has open, each holding maplock for reading: a reopen takes maplock
 * for writing, so a thread that holds one must not start it. */
static _Thread_local unsigned open_txns;

/* Reads after MDB_PANIC: every transaction fails until the environment is reopened, which a
 * write does first thing. With no ingest that could be never, so a read reopens it too, when
 * no write is running (the writer's lock is free: taken without waiting, as a write in
 * progress reopens by itself) and at most once a second (while the disk still fails, every
 * attempt fails). */
static void reopen_for_reads(struct th_lmdb *s)
{
    uint64_t now = th_now_mono_ns();
    uint64_t last = __atomic_load_n(&s->read_reopen_ns, __ATOMIC_RELAXED);
    if (open_txns > 0 || (last && now - last < 1000000000ull) ||
        !__atomic_compare_exchange_n(&s->read_reopen_ns, &last, now, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED)) {
        return;
    }
    if (pthread_mutex_trylock(&s->wlock) != 0) {
        return;
    }
    if (__atomic_load_n(&s->needs_reopen, __ATOMIC_RELAXED)) {
        /* a failure is noted by the reopen itself; the read below reports it */
        (void)th__lmdb_reopen(s);
    }
    pthread_mutex_unlock(&s->wlock);
}

int th__txn_begin(struct th_lmdb *s, bool rdonly, struct th__txn *tx)
{
    tx->t = NULL;
    tx->ret = 0;
    tx->s = s;
    unsigned flags = rdonly ? MDB_RDONLY : 0;
    if (rdonly && __atomic_load_n(&s->needs_reopen, __ATOMIC_RELAXED)) {
        reopen_for_reads(s);
    }
    pthread_rwlock_rdlock(&s->maplock);
    if (!s->env) {
        /* a reopen failed: the next write tries again */
        pthread_rwlock_unlock(&s->maplock);
        tx->ret = TH_EIO;
        return tx->ret;
    }
    int rc = mdb_txn_begin(s->env, NULL, flags, &tx->t);
    if (rc == MDB_READERS_FULL) {
        /* slots of readers that died without ending their transaction */
        int dead = 0;
        mdb_reader_check(s->env, &dead);
        rc = mdb_txn_begin(s->env, NULL, flags, &tx->t);
    } else if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, flags, &tx->t);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&s->maplock);
        if (!rdonly) {
            th__lmdb_note_err(s, rc);
        } else if (rc == MDB_PANIC) {
            __atomic_store_n(&s->needs_reopen, true, __ATOMIC_RELAXED);
        }
        tx->t = NULL;
        tx->ret = th__mdb_err(rc);
        return tx->ret;
    }
    open_txns++;
    TXN_BEGUN();
    return 0;
}

void th__lmdb_note_err(struct th_lmdb *s, int rc)
{
    if (rc == MDB_PANIC) {
        /* the errno that caused it was noted when it happened */
        __atomic_store_n(&s->needs_reopen, true, __ATOMIC_RELAXED);
        return;
    }
    /* LMDB's own codes are negative; a positive one is the errno of a system call */
    if (rc > 0) {
        __atomic_store_n(&s->last_errno, rc, __ATOMIC_RELAXED);
    }
}

void th__txn_put(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, const void *v,
                 size_t vl, unsigned flags)
{
    if (tx->ret) {
        return;
    }
    MDB_val key = {kl, (void *)k};
    MDB_val val = {vl, (void *)v};
    int rc = mdb_put(tx->t, dbi, &key, &val, flags);
    if (rc != 0) {
        tx->ret = th__mdb_err(rc);
    }
}

void *th__txn_reserve(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, size_t vl,
                      unsigned flags)
{
    if (tx->ret) {
        return NULL;
    }
    MDB_val key = {kl, (void *)k};
    MDB_val val = {vl, NULL};
    int rc = mdb_put(tx->t, dbi, &key, &val, flags | MDB_RESERVE);
    if (rc != 0) {
        tx->ret = th__mdb_err(rc);
        return NULL;
    }
    return val.mv_data;
}

int th__txn_get(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v)
{
    if (tx->ret) {
        return tx->ret;
    }
    MDB_val key = {kl, (void *)k};
    int rc = mdb_get(tx->t, dbi, &key, v);
    if (rc == MDB_NOTFOUND) {
        return TH_ENOENT;
    }
    if (rc != 0) {
        tx->ret = th__mdb_err(rc);
    }
    return tx->ret;
}

void th__txn_del(struct th__txn *tx, MDB_dbi dbi, const void *k, size_t kl)
{
    if (tx->ret) {
        return;
    }
    MDB_val key = {kl, (void *)k};
    int rc = mdb_del(tx->t, dbi, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        tx->ret = th__mdb_err(rc);
    }
}

int th__txn_commit(struct th__txn *tx)
{
    if (!tx->t) {
        return tx->ret ? tx->ret : TH_EIO;
    }
    if (tx->ret) {
        mdb_txn_abort(tx->t);
        TXN_ENDED();
        tx->t = NULL;
        pthread_rwlock_unlock(&tx->s->maplock);
        open_txns--;
        return tx->ret;
    }
    uint64_t t0 = th_now_mono_ns();
    int rc = mdb_txn_commit(tx->t);
    TXN_ENDED();
    th_latency_observe(&tx->s->commits, th_now_mono_ns() - t0);
    tx->t = NULL;
    pthread_rwlock_unlock(&tx->s->maplock);
    open_txns--;
    if (rc != 0) {
        /* msync or the meta page's write failed (a full or read-only disk, an I/O error);
         * with a failed meta write LMDB refuses every later transaction (MDB_PANIC) until
         * the environment is reopened, which the next write does */
        th__lmdb_note_err(tx->s, rc);
    }
    tx->ret = th__mdb_err(rc);
    return tx->ret;
}

void th__txn_abort(struct th__txn *tx)
{
    if (tx && tx->t) {
        mdb_txn_abort(tx->t);
        TXN_ENDED();
        tx->t = NULL;
        pthread_rwlock_unlock(&tx->s->maplock);
        open_txns--;
    }
}

int th__map_grow(struct th_lmdb *s, uint64_t at_least)
{
    int ret = 0;
    pthread_rwlock_wrlock(&s->maplock);
    MDB_envinfo info;
    if (!s->env || mdb_env_info(s->env, &info) != 0) {
        ret = TH_EIO;
        goto out;
    }
    uint64_t cur = info.me_mapsize;
    if (cur >= at_least && at_least) {
        goto out; /* another thread grew it meanwhile */
    }
    /* steps of an eighth (at least 64 MiB), so the preallocated tail stays small */
    uint64_t step = TH_MAX(cur / 8, 64ull << 20);
    uint64_t next = TH_MAX(cur + step, at_least);
    uint64_t page = s->psize ? s->psize : 4096;
    next = (next + page - 1) / page * page;
    if (next > s->map_max) {
        next = s->map_max;
    }
    if (next <= cur) {
        ret = TH_ESPACE;
        goto out;
    }
    ret = th__map_prealloc(s, next);
    if (ret == 0) {
        int rc = mdb_env_set_mapsize(s->env, (size_t)next);
        ret = th__mdb_err(rc);
    }
    if (ret == 0) {
        s->map_size = next;
    }
out:
    pthread_rwlock_unlock(&s->maplock);
    return ret;
}

int th__map_prealloc(struct th_lmdb *s, uint64_t size)
{
    int fd = -1;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fd < 0) {
        return TH_EIO;
    }
    int e = posix_fallocate(fd, 0, (off_t)size);
    if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
        th__lmdb_note_err(s, e);
    }
    if (e == ENOSPC || e == EFBIG || e == EDQUOT) {
        return TH_ESPACE;
    }
    /* a file system without fallocate: LMDB still extends the file itself */
    return e == 0 || e == EOPNOTSUPP || e == EINVAL ? 0 : TH_EIO;
}

/* ---- Chunked values ------------------------------------------------------------------- */

void th__chunks_put(struct th_lmdb *s, struct th__txn *tx, uint64_t block, uint8_t kind,
                    const uint8_t *p, size_t len)
{
    size_t off = 0;
    uint32_t i = 0;
    do {
        if (i > UINT16_MAX) {
            if (!tx->ret) {
                tx->ret = TH_E2BIG;
            }
            return;
        }
        size_t n = TH_MIN(s->chunk_max, len - off);
        uint8_t key[TH_KEY_BLOCK_LEN];
        th__key_block(key, block, kind, (uint16_t)i);
        uint8_t *d = th__txn_reserve(tx, s->dbi_blocks, key, sizeof(key), n, MDB_APPEND);
        if (!d) {
            return;
        }
        if (n) {
            memcpy(d, p + off, n);
        }
        off += n;
        i++;
    } while (off < len);
}

int th__chunks_get(struct th_lmdb *s, MDB_txn *t, uint64_t block, uint8_t kind, th__mpw_t *out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi_blocks, &c);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    uint8_t kb[TH_KEY_BLOCK_LEN];
    th__key_block(kb, block, kind, 0);
    MDB_val key = {sizeof(kb), kb}, val;
    int ret = TH_ENOENT;
    uint32_t expect = 0;
    for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        const uint8_t *k = key.mv_data;
        if (key.mv_size != TH_KEY_BLOCK_LEN || memcmp(k, kb, 9) != 0) {
            break;
        }
        if (th__be16_get(k + 9) != expect) {
            ret = TH_EIO; /* a missing chunk */
            goto out;
        }
        expect++;
        th__mpw_raw(out, val.mv_data, val.mv_size);
        if (out->err) {
            ret = out->err;
            goto out;
        }
        ret = 0;
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
out:
    mdb_cursor_close(c);
    return ret;
}

void th__chunks_del(struct th_lmdb *s, struct th__txn *tx, uint64_t block)
{
    if (tx->ret) {
        return;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(tx->t, s->dbi_blocks, &c);
    if (rc != 0) {
        tx->ret = th__mdb_err(rc);
        return;
    }
    uint8_t kb[TH_KEY_BLOCK_LEN];
    th__key_block(kb, block, 0, 0);
    /* seek again after each delete rather than trust the cursor's place after it */
    for (;;) {
        MDB_val key = {sizeof(kb), kb}, val;
        rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
        if (rc != 0 || key.mv_size < 8 || memcmp(key.mv_data, kb, 8) != 0) {
            break;
        }
        rc = mdb_cursor_del(c, 0);
        if (rc != 0) {
            break;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        tx->ret = th__mdb_err(rc);
    }
    mdb_cursor_close(c);
}

/* ---- Block payloads ------------------------------------------------------------------- */

/*
 * Each reading thread keeps its last few decompressed payloads. A trace's spans sit in one
 * block per service, and traces that arrived together share blocks, so a search that
 * returns 20 traces would otherwise decompress the same blocks again and again (half of a
 * search's instructions went to zstd). Blocks never change once committed, and an id is
 * only ever reused after a failed write that no reader saw, so entries need no
 * invalidation; the store's open generation keeps stores apart.
 */
#define BCACHE_ENTRIES   256
#define BCACHE_MAX_BYTES ((size_t)1 << 20)  /* larger payloads are not kept */
#define BCACHE_BUDGET    ((size_t)16 << 20) /* payload bytes kept per thread at most */

struct bcache_entry {
    uint64_t gen, block, used;
    th__mpw_t payload;        /* the whole decompressed payload */
    struct th__blk_view view; /* its resource and scope tables, once asked for */
    bool has_view;
};

static void entry_drop_view(struct bcache_entry *e)
{
    if (e->has_view) {
        th__blk_view_free(&e->view);
        e->has_view = false;
    }
}

struct bcache {
    uint64_t clock;
    size_t bytes; /* capacity of the payload buffers held */
    struct bcache_entry e[BCACHE_ENTRIES];
};

/* Free the least recently used payloads until the buffers fit the budget. */
static void bcache_trim(struct bcache *c)
{
    while (c->bytes > BCACHE_BUDGET) {
        struct bcache_entry *lru = NULL;
        for (size_t i = 0; i < BCACHE_ENTRIES; i++) {
            if (c->e[i].payload.cap && (!lru || c->e[i].used < lru->used)) {
                lru = &c->e[i];
            }
        }
        if (!lru) {
            return;
        }
        c->bytes -= lru->payload.cap;
        th__mpw_free(&lru->payload);
        entry_drop_view(lru);
        lru->used = 0;
    }
}

static pthread_key_t bcache_key;
static pthread_once_t bcache_once = PTHREAD_ONCE_INIT;

static void bcache_free(void *p)
{
    struct bcache *c = p;
    c->bytes = 0;
    for (size_t i = 0; i < BCACHE_ENTRIES; i++) {
        th__mpw_free(&c->e[i].payload);
        entry_drop_view(&c->e[i]);
    }
    th_free(c);
}

static void bcache_key_make(void)
{
    pthread_key_create(&bcache_key, bcache_free);
}

static struct bcache *thread_bcache(void)
{
    pthread_once(&bcache_once, bcache_key_make);
    struct bcache *c = pthread_getspecific(bcache_key);
    if (!c && (c = th_calloc(1, sizeof(*c))) != NULL && pthread_setspecific(bcache_key, c) != 0) {
        th_free(c);
        c = NULL;
    }
    return c;
}

/* The payload, and the cache entry holding it (NULL when it is in @p out instead). */
static int payload_entry(struct th_lmdb *s, MDB_txn *t, uint64_t block, size_t need,
                         th__mpw_t *comp, th__mpw_t *out, const uint8_t **data, size_t *len,
                         struct bcache_entry **entry)
{
    *entry = NULL;
    struct bcache *c = thread_bcache();
    struct bcache_entry *victim = NULL;
    if (c) {
        for (size_t i = 0; i < BCACHE_ENTRIES; i++) {
            struct bcache_entry *e = &c->e[i];
            if (e->used && e->gen == s->gen && e->block == block) {
                e->used = ++c->clock;
                *data = e->payload.p;
                *len = e->payload.len;
                *entry = e;
                return 0;
            }
            if (!victim || e->used < victim->used) {
                victim = e;
            }
        }
    }
    comp->len = 0;
    int ret = th__chunks_get(s, t, block, TH_BLOCK_KIND_DATA, comp);
    if (ret != 0) {
        return ret;
    }
    if (!victim) {
        ret = th__zstd_partial(comp->p, comp->len, need, out);
        *data = out->p;
        *len = out->len;
        return ret;
    }
    /* Whole payloads only: a block is one zstd block or a few, so stopping early at `need`
     * saves little, and a whole payload serves every later trace in the block. */
    victim->used = 0;
    entry_drop_view(victim);
    c->bytes -= victim->payload.cap;
    ret = th__zstd_partial(comp->p, comp->len, SIZE_MAX, &victim->payload);
    if (ret != 0) {
        th__mpw_free(&victim->payload); /* also clears the buffer's sticky error */
        return ret;
    }
    if (victim->payload.len > BCACHE_MAX_BYTES) {
        /* too large to keep: hand it over to the caller's buffer */
        th__mpw_free(out);
        *out = victim->payload;
        victim->payload = (th__mpw_t){0};
        *data = out->p;
        *len = out->len;
        return 0;
    }
    victim->gen = s->gen;
    victim->block = block;
    victim->used = ++c->clock;
    c->bytes += victim->payload.cap;
    bcache_trim(c);
    *data = victim->payload.p;
    *len = victim->payload.len;
    *entry = victim;
    return 0;
}

int th__block_payload(struct th_lmdb *s, MDB_txn *t, uint64_t block, size_t need, th__mpw_t *comp,
                      th__mpw_t *out, const uint8_t **data, size_t *len)
{
    struct bcache_entry *e;
    return payload_entry(s, t, block, need, comp, out, data, len, &e);
}

int th__block_view(struct th_lmdb *s, MDB_txn *t, uint64_t block, size_t need, th__mpw_t *comp,
                   th__mpw_t *out, struct th__blk_view *scratch, const struct th__blk_view **view)
{
    struct bcache_entry *e;
    const uint8_t *data;
    size_t len;
    int ret = payload_entry(s, t, block, need, comp, out, &data, &len, &e);
    if (ret != 0) {
        return ret;
    }
    if (!e) {
        ret = th__blk_view_open(scratch, data, len);
        *view = scratch;
        return ret;
    }
    /* the tables of a cached payload are parsed once and kept beside it */
    if (!e->has_view) {
        ret = th__blk_view_open(&e->view, data, len);
        if (ret != 0) {
            return ret;
        }
        e->has_view = true;
    }
    *view = &e->view;
    return 0;
}

/* ---- Block meta ----------------------------------------------------------------------- */

static int get_u32v(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    uint64_t u;
    if (th__varint_get(p, end, &u) != 0 || u > UINT32_MAX) {
        return TH_EIO;
    }
    *v = (uint32_t)u;
    return 0;
}

static int get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (end - *p < 8) {
        return TH_EIO;
    }
    *v = th__be64_get(*p);
    *p += 8;
    return 0;
}

/* Skip @p n records of @p fields varints each, with @p fixed extra bytes at @p at. */
static int skip_records(const uint8_t **p, const uint8_t *end, uint32_t n, unsigned fields,
                        unsigned fixed_before, unsigned fixed_after)
{
    for (uint32_t i = 0; i < n; i++) {
        if ((size_t)(end - *p) < fixed_before) {
            return TH_EIO;
        }
        *p += fixed_before;
        for (unsigned f = 0; f < fields; f++) {
            uint64_t v;
            if (th__varint_get(p, end, &v) != 0) {
                return TH_EIO;
            }
        }
        if ((size_t)(end - *p) < fixed_after) {
            return TH_EIO;
        }
        *p += fixed_after;
    }
    return 0;
}

int th__block_meta_parse(const uint8_t *p, size_t len, struct th__block_meta *m)
{
    const uint8_t *end = p + len;
    memset(m, 0, sizeof(*m));
    if (len < 1 || *p++ != TH_BLOCK_META_VERSION || get_u64(&p, end, &m->ingest_ns) != 0 ||
        get_u64(&p, end, &m->min_start) != 0 || get_u64(&p, end, &m->max_start) != 0 ||
        get_u32v(&p, end, &m->n_spans) != 0 || get_u32v(&p, end, &m->raw_len) != 0 ||
        get_u32v(&p, end, &m->comp_len) != 0 || get_u32v(&p, end, &m->svc) != 0 || p >= end) {
        return TH_EIO;
    }
    m->has_sum = *p++ != 0;
    if (m->has_sum &&
        (get_u64(&p, end, &m->sum) != 0 || get_u64(&p, end, &m->sum_max_start) != 0)) {
        return TH_EIO;
    }
    if (get_u32v(&p, end, &m->n_traces) != 0) {
        return TH_EIO;
    }
    m->traces = p;
    if (skip_records(&p, end, m->n_traces, 1, 16, 0) != 0) {
        return TH_EIO;
    }
    m->traces_end = p;
    if (get_u32v(&p, end, &m->n_edges) != 0) {
        return TH_EIO;
    }
    m->edges = p;
    if (skip_records(&p, end, m->n_edges, 4, 0, 0) != 0) {
        return TH_EIO;
    }
    m->edges_end = p;
    return p == end ? 0 : TH_EIO;
}

int th__stats_parse(const uint8_t *p, size_t len, struct th__stats *v)
{
    if (len < TH_STATS_FIXED) {
        return TH_EIO;
    }
    v->min_start = th__be64_get(p);
    v->min_dur = th__be64_get(p + 8);
    v->max_dur = th__be64_get(p + 16);
    v->n_spans = th__be32_get(p + 24);
    v->n_parts = p[28];
    v->n_long = p[29] & ~TH_FRONTIER_CUT;
    v->long_cut = p[29] & TH_FRONTIER_CUT;
    v->n_short = p[30] & ~TH_FRONTIER_CUT;
    v->short_cut = p[30] & TH_FRONTIER_CUT;
    v->longs = p + TH_STATS_FIXED;
    v->shorts = v->longs + TH_FRONTIER_SIZE * (size_t)v->n_long;
    v->len = TH_STATS_FIXED + TH_FRONTIER_SIZE * (size_t)(v->n_long + v->n_short);
    if (v->n_long > TH_FRONTIER_MAX || v->n_short > TH_FRONTIER_MAX || v->len > len) {
        return TH_EIO;
    }
    return 0;
}

int th__blkidx_parse(const uint8_t *p, size_t len, struct th__blkidx *v)
{
    if (len < TH_BLKIDX_HEAD) {
        return TH_EIO;
    }
    v->svc = th__be32_get(p);
    v->max_start = th__be64_get(p + 4);
    if (th__stats_parse(p + TH_BLKIDX_HEAD, len - TH_BLKIDX_HEAD, &v->st) != 0 ||
        TH_BLKIDX_HEAD + v->st.len != len) {
        return TH_EIO;
    }
    return 0;
}

int th__svcsum_parse(const uint8_t *p, size_t len, struct th__svcsum *v)
{
    if (th__stats_parse(p, len, &v->st) != 0 || v->st.len >= len) {
        return TH_EIO;
    }
    v->n_blocks = p[v->st.len];
    v->blocks = p + v->st.len + 1;
    if (v->st.len + 1 + 16 * (size_t)v->n_blocks != len) {
        return TH_EIO;
    }
    return 0;
}

/* ---- Dependencies --------------------------------------------------------------------- */

void th__deps_add(struct th_lmdb *s, struct th__txn *tx, uint32_t minute, uint32_t parent,
                  uint32_t child, int64_t delta)
{
    for (uint8_t level = TH_DEPS_MINUTE; level <= TH_DEPS_HOUR; level++) {
        uint8_t k[TH_KEY_DEPS_LEN];
        th__key_deps(k, level, level == TH_DEPS_MINUTE ? minute : minute / 60, parent, child);
        MDB_val v;
        int64_t count = 0;
        int ret = th__txn_get(tx, s->dbi_deps, k, sizeof(k), &v);
        if (ret == 0 && v.mv_size == 8) {
            count = (int64_t)th__be64_get(v.mv_data);
        } else if (ret != 0 && ret != TH_ENOENT) {
            return;
        }
        count += delta;
        if (count <= 0) {
            th__txn_del(tx, s->dbi_deps, k, sizeof(k));
        } else {
            uint8_t c[8];
            th__be64_put(c, (uint64_t)count);
            th__txn_put(tx, s->dbi_deps, k, sizeof(k), c, sizeof(c), 0);
        }
    }
}

/* ---- Catalog keys --------------------------------------------------------------------- */

static size_t put_name(uint8_t *k, const char *name, size_t n)
{
    if (n <= TH_KEY_NAME_MAX) {
        memcpy(k, name, n);
        return n;
    }
    memcpy(k, name, TH_KEY_NAME_MAX);
    th__be64_put(k + TH_KEY_NAME_MAX, th__hash64(name, n, 0));
    return TH_KEY_NAME_MAX + 8;
}

size_t th__svc_name_key(const char *name, size_t n, uint8_t *k)
{
    k[0] = 'n';
    return 1 + put_name(k + 1, name, n);
}

size_t th__op_key(uint32_t svc, int kind, const char *name, size_t n, uint8_t *k)
{
    th__be32_put(k, svc);
    k[4] = (uint8_t)kind;
    return 5 + put_name(k + 5, name, n);
}

int th__svc_lookup(struct th_lmdb *s, MDB_txn *t, const char *name, size_t n, uint32_t *id)
{
    uint8_t k[TH_KEY_SVC_MAX];
    MDB_val key = {th__svc_name_key(name, n, k), k}, v;
    int rc = mdb_get(t, s->dbi_svc, &key, &v);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    if (v.mv_size < 12) {
        return TH_EIO;
    }
    /* a cut name keeps the full name after the id and last_seen */
    if (n > TH_KEY_NAME_MAX &&
        (v.mv_size - 12 != n || memcmp((uint8_t *)v.mv_data + 12, name, n))) {
        return TH_ENOENT;
    }
    *id = th__be32_get(v.mv_data);
    return 0;
}

int th__svc_name(struct th_lmdb *s, MDB_txn *t, uint32_t id, th_arena_t *a, const char **out)
{
    uint8_t k[5] = {'i'};
    th__be32_put(k + 1, id);
    MDB_val key = {sizeof(k), k}, v;
    int rc = mdb_get(t, s->dbi_svc, &key, &v);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    char *name = th_arena_strndup(a, v.mv_data, v.mv_size);
    if (!name) {
        return TH_ENOMEM;
    }
    *out = name;
    return 0;
}

void th__cat_clear(struct th__cat *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        th_free(c->slots[i].key);
    }
    th_free(c->slots);
    memset(c, 0, sizeof(*c));
}

/* ---- Page accounting ------------------------------------------------------------------ */

int th__lmdb_used_bytes(struct th_lmdb *s, MDB_txn *t, uint64_t *used)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    /* free pages are listed in LMDB's free DB (dbi 0), readable in a read transaction: each
     * record is an ID list whose first word is its length */
    MDB_cursor *c;
    rc = mdb_cursor_open(t, 0, &c);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    uint64_t free_pages = 0;
    MDB_val key, val;
    while ((rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) == 0) {
        if (val.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, val.mv_data, sizeof(n));
            free_pages += n;
        }
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) {
        return th__mdb_err(rc);
    }
    uint64_t pages = (uint64_t)info.me_last_pgno + 1;
    *used = (pages > free_pages ? pages - free_pages : 0) * s->psize;
    return 0;
}
