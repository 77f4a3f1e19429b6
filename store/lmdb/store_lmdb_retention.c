/*
 * Retention of the LMDB span store: blocks are deleted oldest first, with every index entry
 * their meta record lists, when they are older than ttl (counted from ingest, as Jaeger's
 * badger store counts from write time) or while the pages in use exceed the size limit.
 * Each transaction deletes as many blocks as it can in a few milliseconds (one commit and
 * sync then covers hundreds of blocks, yet the writer never waits long), and a pass stops
 * after a time budget that lets it delete what arrived in one retention interval; LMDB
 * reuses the freed pages, so the file stops growing once the window is full.
 */
#include <sched.h>
#include <string.h>

#include "store/lmdb/store_lmdb.h"

/* catalog names unused for ttl plus this long are dropped (last_seen is coarse) */
#define CATALOG_SLACK_NS (3600ull * 1000000000ull)

struct victim {
    uint64_t block, ingest;
    uint64_t bytes; /* a rough guess of the pages deleting it frees: payload, meta, indexes */
};

/* Delete every key of @p dbi that starts with the 8 bytes of @p id. */
static void del_range(struct th_lmdb *s, struct th__txn *tx, MDB_dbi dbi, uint64_t id)
{
    (void)s;
    if (tx->ret) {
        return;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(tx->t, dbi, &c);
    if (rc != 0) {
        tx->ret = th__mdb_err(rc);
        return;
    }
    uint8_t k[TH_KEY_TAGS_LEN];
    th__key_tags(k, id, 0);
    /* seek again after each delete rather than trust the cursor's place after it */
    for (;;) {
        MDB_val key = {sizeof(k), k}, v;
        rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
        if (rc != 0 || key.mv_size < 8 || th__be64_get(key.mv_data) != id) {
            break;
        }
        rc = mdb_cursor_del(c, 0);
        if (rc != 0) {
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        tx->ret = th__mdb_err(rc);
    }
}

/* Delete one block and everything its meta lists. @return spans deleted, or an error. */
static int64_t delete_block(struct th_lmdb *s, struct th__txn *tx, uint64_t block, th__mpw_t *buf)
{
    buf->len = 0;
    struct th__block_meta m;
    int ret = th__chunks_get(s, tx->t, block, TH_BLOCK_KIND_META, buf);
    bool have_meta = ret == 0 && th__block_meta_parse(buf->p, buf->len, &m) == 0;
    if (ret != 0 && ret != TH_ENOENT && ret != TH_EIO) {
        return ret;
    }
    int64_t spans = 0;
    if (have_meta) {
        /* a corrupt meta record loses its index entries (readers skip pieces of deleted
         * blocks), but the block itself still goes */
        spans = m.n_spans;
        const uint8_t *p = m.traces;
        for (uint32_t i = 0; i < m.n_traces; i++) {
            const uint8_t *tid = p;
            p += 16;
            uint64_t subs;
            th__varint_get(&p, m.traces_end, &subs);
            for (uint64_t j = 0; j < subs && j <= UINT16_MAX; j++) {
                uint8_t k[TH_KEY_TRACE_LEN];
                th__key_trace(k, tid, block, (uint16_t)j);
                th__txn_del(tx, s->dbi_traces, k, sizeof(k));
            }
        }
        /* out of its service's pending list, if a summary has not taken it yet */
        uint8_t pk[TH_KEY_PEND_LEN];
        th__key_pend(pk, m.svc);
        MDB_val pv;
        if (th__txn_get(tx, s->dbi_meta, pk, sizeof(pk), &pv) == 0 && pv.mv_size % 16 == 0 &&
            pv.mv_size <= 16 * TH_SUM_BLOCKS) {
            uint8_t list[16 * TH_SUM_BLOCKS];
            size_t n = 0;
            for (size_t i = 0; i < pv.mv_size / 16; i++) {
                const uint8_t *e = (const uint8_t *)pv.mv_data + 16 * i;
                if (th__be64_get(e) != block) {
                    memcpy(list + 16 * n++, e, 16);
                }
            }
            if (n == 0) {
                th__txn_del(tx, s->dbi_meta, pk, sizeof(pk));
            } else if (16 * n != pv.mv_size) {
                th__txn_put(tx, s->dbi_meta, pk, sizeof(pk), list, 16 * n, 0);
            }
        }
        if (m.has_sum) {
            /* this block completed a summary: its older blocks are gone, so it goes too */
            uint8_t k[TH_KEY_SVCSUM_LEN];
            th__key_svcsum(k, m.svc, m.sum_max_start, m.sum);
            th__txn_del(tx, s->dbi_svcsum, k, sizeof(k));
            del_range(s, tx, s->dbi_sumtags, m.sum);
        }
        p = m.edges;
        for (uint32_t i = 0; i < m.n_edges; i++) {
            uint64_t minute, parent, child, count;
            th__varint_get(&p, m.edges_end, &minute);
            th__varint_get(&p, m.edges_end, &parent);
            th__varint_get(&p, m.edges_end, &child);
            th__varint_get(&p, m.edges_end, &count);
            th__deps_add(s, tx, (uint32_t)minute, (uint32_t)parent, (uint32_t)child,
                         -(int64_t)count);
        }
    }
    uint8_t bk[TH_KEY_BLKIDX_LEN];
    th__be64_put(bk, block);
    th__txn_del(tx, s->dbi_blkidx, bk, sizeof(bk));
    del_range(s, tx, s->dbi_tags, block);
    th__chunks_del(s, tx, block);
    return tx->ret ? tx->ret : spans;
}

/* The oldest blocks, with their ingest times, up to the first one ingested after @p until
 * (the rest are not due, and reading their meta records costs a pass time). */
static int oldest_blocks(struct th_lmdb *s, MDB_txn *t, struct victim *v, size_t max, size_t *n,
                         uint64_t until, th__mpw_t *buf)
{
    *n = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi_blocks, &c);
    if (rc != 0) {
        return th__mdb_err(rc);
    }
    MDB_val key, val;
    int ret = 0;
    uint64_t last = UINT64_MAX;
    for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == 0 && *n < max;
         rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != TH_KEY_BLOCK_LEN) {
            continue;
        }
        uint64_t block = th__be64_get(key.mv_data);
        if (block == last) {
            continue;
        }
        last = block;
        buf->len = 0;
        struct th__block_meta m;
        uint64_t ingest = 0, bytes = 0; /* no readable meta: treat as ancient, so it goes first */
        if (th__chunks_get(s, t, block, TH_BLOCK_KIND_META, buf) == 0 &&
            th__block_meta_parse(buf->p, buf->len, &m) == 0) {
            ingest = m.ingest_ns;
            /* the payload is about half of what a block takes with its indexes (README) */
            bytes = 2 * ((uint64_t)m.comp_len + buf->len);
        }
        v[(*n)++] = (struct victim){block, ingest, bytes};
        if (ingest > until) {
            break;
        }
        /* jump past this block's chunks */
        uint8_t k[TH_KEY_BLOCK_LEN];
        th__key_block(k, block, 0xff, 0xffff);
        key.mv_size = sizeof(k);
        key.mv_data = k;
        rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
        if (rc != 0) {
            break;
        }
        rc = mdb_cursor_get(c, &key, &val, MDB_PREV);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        ret = th__mdb_err(rc);
    }
    mdb_cursor_close(c);
    return ret;
}

/* Drop service and operation names nobody used for longer than ttl. */
static int prune_catalog(struct th_lmdb *s, uint64_t now)
{
    if (s->cfg.ttl_ns <= 0 || now < (uint64_t)s->cfg.ttl_ns + CATALOG_SLACK_NS) {
        return 0;
    }
    uint64_t cutoff = now - (uint64_t)s->cfg.ttl_ns - CATALOG_SLACK_NS;
    pthread_mutex_lock(&s->wlock);
    struct th__txn tx;
    int ret = th__txn_begin(s, false, &tx);
    MDB_dbi dbis[2] = {s->dbi_svc, s->dbi_ops};
    uint8_t k[TH_KEY_OPS_MAX + 8];
    for (int d = 0; d < 2 && ret == 0 && !tx.ret; d++) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(tx.t, dbis[d], &c);
        if (rc != 0) {
            tx.ret = th__mdb_err(rc);
            break;
        }
        MDB_val key, v;
        for (rc = mdb_cursor_get(c, &key, &v, MDB_FIRST); rc == 0;) {
            const uint8_t *kp = key.mv_data;
            bool is_name = d == 1 || (key.mv_size >= 1 && kp[0] == 'n');
            if (!is_name || v.mv_size < 12 || key.mv_size > sizeof(k) ||
                th__be64_get((uint8_t *)v.mv_data + 4) >= cutoff) {
                rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
                continue;
            }
            /* copy the key out of the page before changing the tree, then seek past it */
            size_t kl = key.mv_size;
            memcpy(k, kp, kl);
            if (d == 0) {
                uint8_t ik[5] = {'i'};
                memcpy(ik + 1, v.mv_data, 4);
                th__txn_del(&tx, s->dbi_svc, ik, sizeof(ik));
            }
            th__txn_del(&tx, dbis[d], k, kl);
            if (tx.ret) {
                break;
            }
            key.mv_size = kl;
            key.mv_data = k;
            rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
        }
        mdb_cursor_close(c);
        if (rc != 0 && rc != MDB_NOTFOUND && !tx.ret) {
            tx.ret = th__mdb_err(rc);
        }
    }
    ret = ret ? ret : th__txn_commit(&tx);
    th__txn_abort(&tx);
    s->cat_stale = true;
    pthread_mutex_unlock(&s->wlock);
    return ret;
}

int th__lmdb_retention(th_store_t *st, uint64_t now_ns)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    if (pthread_mutex_trylock(&s->retention_lock) != 0) {
        return 0; /* another pass is running */
    }
    /* at 50k spans/s a 5 s interval brings thousands of blocks; a fixed 250 ms pass deleted
     * a few dozen of them and the file grew without bound */
    uint64_t budget = TH_RETENTION_BUDGET_NS;
    if (s->cfg.retention_interval_ns > 0) {
        budget = TH_MAX(budget, (uint64_t)s->cfg.retention_interval_ns / 2);
    }
    uint64_t deadline = th_now_mono_ns() + budget;
    th__mpw_t buf = {0};
    struct victim *v = th_malloc(TH_RETENTION_BLOCKS_PER_TXN * sizeof(*v));
    if (!v) {
        pthread_mutex_unlock(&s->retention_lock);
        return TH_ENOMEM;
    }
    int ret = 0;
    uint64_t target = 0; /* delete until the pages in use are at most this; 0: size is fine */
    bool first = true;
    /* the size limit; with evict_oldest_when_full also a margin below the largest map so
     * writes never fill it. Without either, nothing goes before its ttl: a full store makes
     * writes fail (senders retry) rather than delete acknowledged spans. */
    uint64_t limit = UINT64_MAX;
    if (s->cfg.evict_oldest_when_full) {
        limit = s->map_max / 10 * 9;
    }
    if (s->cfg.max_size_bytes > 0) {
        limit = TH_MIN(limit, (uint64_t)s->cfg.max_size_bytes);
    }
    /* Ages are measured on the store's clock, which a clock step while running does not
     * move; the caller's time counts as an offset from the wall clock now (tests pass a
     * later time to expire data). */
    now_ns = th__lmdb_now(s) + (now_ns - th_now_unix_ns());
    while (th_now_mono_ns() < deadline) {
        struct th__txn rt;
        ret = th__txn_begin(s, true, &rt);
        if (ret != 0) {
            break;
        }
        uint64_t used = 0;
        size_t nv = 0;
        ret = th__lmdb_used_bytes(s, rt.t, &used);
        if (ret != 0) {
            th__txn_abort(&rt);
            break;
        }
        if (first) {
            first = false;
            if (used > limit) {
                target = limit / 10 * 9; /* some room, so the next write does not trip it */
            }
            if (__atomic_exchange_n(&s->space_pressure, false, __ATOMIC_RELAXED)) {
                uint64_t t = used / 10 * 9;
                target = target ? TH_MIN(target, t) : t;
            }
        } else if (target && used <= target) {
            target = 0;
        }
        /* over the size target any block may go; otherwise only those ingested before this */
        uint64_t until = 0;
        if (target) {
            until = UINT64_MAX;
        } else if (s->cfg.ttl_ns > 0) {
            until = now_ns - TH_MIN(now_ns, (uint64_t)s->cfg.ttl_ns);
        }
        ret = oldest_blocks(s, rt.t, v, TH_RETENTION_BLOCKS_PER_TXN, &nv, until, &buf);
        th__txn_abort(&rt);
        if (ret != 0) {
            break;
        }
        /* every expired block, and while over the size target the oldest blocks that free
         * about the excess (a transaction takes hundreds of blocks, which must not all go
         * when a few bring the size down; the next round measures again) */
        uint64_t need = target && used > target ? used - target : 0, freed = 0;
        size_t take = 0;
        for (; take < nv; take++) {
            bool expired = s->cfg.ttl_ns > 0 && v[take].ingest + (uint64_t)s->cfg.ttl_ns <= now_ns;
            if (!expired && freed >= need) {
                break;
            }
            freed += v[take].bytes;
        }
        if (!take) {
            break;
        }
        pthread_mutex_lock(&s->wlock);
        struct th__txn tx;
        ret = th__txn_begin(s, false, &tx);
        uint64_t spans = 0;
        /* one commit (and sync) for as many blocks as fit in the transaction's time, so the
         * writer waits at most about that long */
        uint64_t txn_end = th_now_mono_ns() + TH_RETENTION_TXN_NS;
        size_t done = 0;
        for (; ret == 0 && done < take && (done == 0 || th_now_mono_ns() < txn_end); done++) {
            int64_t r = delete_block(s, &tx, v[done].block, &buf);
            if (r < 0) {
                ret = (int)r;
            } else {
                spans += (uint64_t)r;
            }
        }
        if (ret == 0) {
            uint8_t b[8];
            th__be64_put(b, s->retention_deleted + spans);
            th__txn_put(&tx, s->dbi_meta, "deleted", 7, b, 8, 0);
            ret = th__txn_commit(&tx);
        }
        th__txn_abort(&tx);
        if (ret == 0) {
            __atomic_add_fetch(&s->retention_deleted, spans, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&s->wlock);
        if (ret != 0) {
            break;
        }
        /* a writer woken by the unlock gets the lock before the next transaction takes it */
        sched_yield();
    }
    th_free(v);
    th__mpw_free(&buf);
    /* without sync, commits reach the disk when the OS writes them back; flushing here
     * bounds what an OS crash can lose to one retention interval */
    if (!s->cfg.sync) {
        pthread_rwlock_rdlock(&s->maplock);
        int rc = s->env ? mdb_env_sync(s->env, 1) : 0;
        pthread_rwlock_unlock(&s->maplock);
        if (rc != 0) {
            th__lmdb_note_err(s, rc);
            ret = ret ? ret : th__mdb_err(rc);
        }
    }
    /* names are pruned now and then, not on every pass */
    if (ret == 0 && s->cfg.ttl_ns > 0 &&
        now_ns > s->last_prune_ns + TH_MIN((uint64_t)s->cfg.ttl_ns / 10, CATALOG_SLACK_NS)) {
        s->last_prune_ns = now_ns;
        ret = prune_catalog(s, now_ns);
    }
    pthread_mutex_unlock(&s->retention_lock);
    return ret;
}
