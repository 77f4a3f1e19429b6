/*
 * The LMDB span store: the ops table, open and close, and stats. One LMDB environment per
 * store directory, opened once per process (a registry refuses a second open of the same
 * directory, which LMDB's POSIX locks would not survive). The layout and the reasons for it
 * are in README.md beside this file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/lmdb/store_lmdb.h"

/* ---- Directories open in this process ------------------------------------------------- */

struct open_dir {
    dev_t dev;
    ino_t ino;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_dir registry[64];
static size_t registry_n;

static int registry_add(dev_t dev, ino_t ino)
{
    int ret = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].dev == dev && registry[i].ino == ino) {
            ret = TH_EEXIST;
            goto out;
        }
    }
    if (registry_n == TH_ARRAY_SIZE(registry)) {
        ret = TH_E2BIG;
        goto out;
    }
    registry[registry_n++] = (struct open_dir){dev, ino};
out:
    pthread_mutex_unlock(&registry_lock);
    return ret;
}

static void registry_remove(dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_n; i++) {
        if (registry[i].dev == dev && registry[i].ino == ino) {
            registry[i] = registry[--registry_n];
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) {
        return ENAMETOOLONG;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                return errno;
            }
            buf[i] = c;
        }
    }
    return 0;
}

/* ---- Open ----------------------------------------------------------------------------- */

#define GIB (1024ull * 1024 * 1024)
#define MIB (1024ull * 1024)

/* The most the map may grow to. */
static uint64_t map_max_for(const struct th_store_cfg *cfg)
{
    uint64_t m;
    if (cfg->map_size_bytes > 0) {
        m = (uint64_t)cfg->map_size_bytes;
    } else if (cfg->max_size_bytes > 0) {
        /* room above the limit: retention starts at the limit, and freed pages become
         * reusable only once no reader holds the snapshot that still sees them */
        uint64_t max = (uint64_t)cfg->max_size_bytes;
        m = TH_MAX(2 * max, max + 256 * MIB);
    } else {
        m = 1024 * GIB; /* address space only: the file grows in steps as data comes */
    }
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
    return (m + page - 1) / page * page;
}

/* Open (creating) every named database in @p t. @return an LMDB code; @p name says which. */
static int dbis_open(struct th_lmdb *s, MDB_txn *t, const char **name)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {
        {"meta", &s->dbi_meta},       {"blocks", &s->dbi_blocks}, {"traces", &s->dbi_traces},
        {"blkidx", &s->dbi_blkidx},   {"tags", &s->dbi_tags},     {"svcsum", &s->dbi_svcsum},
        {"sumtags", &s->dbi_sumtags}, {"svc", &s->dbi_svc},       {"ops", &s->dbi_ops},
        {"deps", &s->dbi_deps},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(dbs); i++) {
        int rc = mdb_dbi_open(t, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc != 0) {
            *name = dbs[i].name;
            return rc;
        }
    }
    return 0;
}

/* The counters and the next block id, from the database (at open, and after a reopen, when
 * a commit reported as failed may have reached the file after all). @return an LMDB code. */
static int load_state(struct th_lmdb *s, MDB_txn *t)
{
    struct {
        const char *key;
        uint64_t *v;
    } ctr[] = {{"spans", &s->spans_written},
               {"batches", &s->batches_written},
               {"deleted", &s->retention_deleted}};
    MDB_val k, v;
    for (size_t i = 0; i < TH_ARRAY_SIZE(ctr); i++) {
        k = (MDB_val){strlen(ctr[i].key), (void *)ctr[i].key};
        if (mdb_get(t, s->dbi_meta, &k, &v) == 0 && v.mv_size == 8) {
            __atomic_store_n(ctr[i].v, th__be64_get(v.mv_data), __ATOMIC_RELAXED);
        }
    }
    /* the next block follows the last stored one */
    s->next_block = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, s->dbi_blocks, &c);
    if (rc == 0) {
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == TH_KEY_BLOCK_LEN) {
            s->next_block = th__be64_get(k.mv_data) + 1;
        }
        mdb_cursor_close(c);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    k = (MDB_val){10, "next_block"};
    if (mdb_get(t, s->dbi_meta, &k, &v) == 0 && v.mv_size == 8) {
        s->next_block = TH_MAX(s->next_block, th__be64_get(v.mv_data));
    }
    if (s->next_block == 0) {
        s->next_block = 1;
    }
    return rc;
}

static int open_dbs(struct th_lmdb *s, char *err, size_t errlen)
{
    struct th__txn tx;
    int ret = th__txn_begin(s, false, &tx);
    if (ret != 0) {
        snprintf(err, errlen, "%s: cannot begin a transaction: %s", s->path, th_strerror(ret));
        return ret;
    }
    const char *name = "";
    int rc = dbis_open(s, tx.t, &name);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot open database %s: %s", s->path, name, mdb_strerror(rc));
        th__txn_abort(&tx);
        return th__mdb_err(rc);
    }
    MDB_val v;
    uint8_t layout[4];
    ret = th__txn_get(&tx, s->dbi_meta, "layout", 6, &v);
    if (ret == TH_ENOENT) {
        th__be32_put(layout, TH_LMDB_LAYOUT);
        th__txn_put(&tx, s->dbi_meta, "layout", 6, layout, 4, 0);
    } else if (ret == 0 && (v.mv_size != 4 || th__be32_get(v.mv_data) != TH_LMDB_LAYOUT)) {
        snprintf(err, errlen, "%s: store layout %u is not the layout %u this build reads", s->path,
                 v.mv_size == 4 ? th__be32_get(v.mv_data) : 0, TH_LMDB_LAYOUT);
        th__txn_abort(&tx);
        return TH_EIO;
    }
    rc = load_state(s, tx.t);
    ret = rc != 0 ? th__mdb_err(rc) : th__txn_commit(&tx);
    if (ret != 0) {
        th__txn_abort(&tx);
        snprintf(err, errlen, "%s: cannot initialise the store: %s", s->path, th_strerror(ret));
    }
    s->cat_stale = true; /* the writer loads ids and counters at its first transaction */
    return ret;
}

static void lmdb_close(th_store_t *st);

/* ---- The store's clock ---------------------------------------------------------------- */

uint64_t th__lmdb_now(const struct th_lmdb *s)
{
    return s->clock_wall0 + (th_now_mono_ns() - s->clock_mono0);
}

/* ---- The environment ------------------------------------------------------------------ */

/* Create and open s->env with the store's flags. @return 0 or an LMDB / errno code. */
static int env_open(struct th_lmdb *s)
{
    s->env = NULL;
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        return rc;
    }
    rc = mdb_env_set_maxdbs(s->env, 16);
    if (rc == 0) {
        rc = mdb_env_set_maxreaders(s->env, 256);
    }
    if (rc == 0) {
        rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size);
    }
    /* MDB_NOTLS: read transactions are not tied to threads, so any worker can run one.
     * MDB_WRITEMAP: commits write pages in place instead of one pwrite per page (a third of
     * the ingest cost otherwise); the file is preallocated so a full disk is an error from
     * posix_fallocate, never a SIGBUS. Durability is the same: with sync, commit msyncs. */
    unsigned flags = MDB_NOTLS | MDB_WRITEMAP;
    if (!s->cfg.sync) {
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    }
    if (rc == 0) {
        rc = mdb_env_open(s->env, s->path, flags, 0640);
    }
    if (rc != 0) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    return rc;
}

int th__lmdb_reopen(struct th_lmdb *s)
{
    pthread_rwlock_wrlock(&s->maplock);
    if (s->env) {
        mdb_env_close(s->env);
    }
    int rc = env_open(s);
    MDB_txn *t = NULL;
    if (rc == 0) {
        rc = mdb_txn_begin(s->env, NULL, 0, &t);
    }
    if (rc == 0) {
        const char *name;
        rc = dbis_open(s, t, &name);
        if (rc == 0) {
            rc = load_state(s, t);
        }
        if (rc == 0) {
            rc = mdb_txn_commit(t);
        } else {
            mdb_txn_abort(t);
        }
    }
    if (rc == 0) {
        __atomic_store_n(&s->needs_reopen, false, __ATOMIC_RELAXED);
        s->cat_stale = true;
    } else {
        th__lmdb_note_err(s, rc);
    }
    pthread_rwlock_unlock(&s->maplock);
    return rc == 0 ? 0 : TH_EIO;
}

static int lmdb_open(const struct th_store_cfg *cfg, th_store_t **out, char *err, size_t errlen)
{
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    if (major != 0 || minor != 9) {
        snprintf(err, errlen, "LMDB %d.%d.%d is not supported: the store needs LMDB 0.9.x", major,
                 minor, patch);
        return TH_EIO;
    }
    if (!cfg->path || !*cfg->path) {
        snprintf(err, errlen, "the store needs a path");
        return TH_ECONFIG;
    }
    int e = make_dirs(cfg->path);
    struct stat st;
    if (e != 0 || stat(cfg->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: cannot create the store directory: %s", cfg->path,
                 strerror(e       ? e
                          : errno ? errno
                                  : ENOTDIR));
        return TH_EIO;
    }
    int ret = registry_add(st.st_dev, st.st_ino);
    if (ret != 0) {
        snprintf(err, errlen, "%s: the store is already open in this process", cfg->path);
        return ret;
    }
    struct th_lmdb *s = th_calloc(1, sizeof(*s));
    if (!s || !(s->path = th_strdup(cfg->path))) {
        th_free(s);
        registry_remove(st.st_dev, st.st_ino);
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    static uint64_t opens;
    s->gen = __atomic_add_fetch(&opens, 1, __ATOMIC_RELAXED);
    s->base.ops = &th_store_lmdb_ops;
    s->cfg = *cfg;
    s->cfg.path = s->path;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->zlevel = 1; /* measured: -3 is 8% less CPU but 12% more disk; 2 and 3 gain nothing */
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->retention_lock, NULL);
    /* growing the map must not starve behind a stream of readers */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->maplock, &ra);
    pthread_rwlockattr_destroy(&ra);
    s->map_max = map_max_for(cfg);
    s->map_size = TH_MIN(s->map_max, 64 * MIB);

    s->clock_wall0 = th_now_unix_ns();
    s->clock_mono0 = th_now_mono_ns();

    ret = th__lmdb_check_existing(s->path, !cfg->skip_full_check, err, errlen);
    if (ret != 0) {
        goto fail;
    }
    int rc = env_open(s);
    if (rc != 0) {
        if (rc == EACCES || rc == EPERM || rc == EROFS) {
            snprintf(err, errlen,
                     "%s: the store's files cannot be opened for writing (%s): make the "
                     "directory and its files data.mdb and lock.mdb writable by the user running "
                     "Tracehouse (on a read-only mount, remount it read-write) and start again",
                     s->path, strerror(rc));
            ret = TH_EIO;
        } else {
            snprintf(err, errlen, "%s: cannot open the store: %s", s->path, mdb_strerror(rc));
            ret = th__mdb_err(rc);
        }
        goto fail;
    }
    /* a crashed process may have left reader slots behind */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    MDB_stat ms;
    mdb_env_stat(s->env, &ms);
    s->psize = ms.ms_psize;
    /* LMDB keeps a value inside the leaf page when key + value + 8 fit half a page (less the
     * page header and index); two such chunks fill a page, and no value ever needs a run of
     * overflow pages, whose reuse after deletes fragments the file */
    size_t nodemax = (((s->psize - 16) / 2) & ~(size_t)1) - 2;
    s->chunk_max = nodemax - 8 - TH_KEY_BLOCK_LEN - 1;
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0) {
        s->map_size = info.me_mapsize;
        s->map_max = TH_MAX(s->map_max, s->map_size);
    }
    ret = th__map_prealloc(s, s->map_size);
    if (ret != 0) {
        snprintf(err, errlen, "%s: cannot allocate %llu bytes for the store: %s", s->path,
                 (unsigned long long)s->map_size, th_strerror(ret));
        goto fail;
    }
    ret = open_dbs(s, err, errlen);
    if (ret != 0) {
        goto fail;
    }
    s->cctx = ZSTD_createCCtx();
    if (!s->cctx) {
        snprintf(err, errlen, "out of memory");
        ret = TH_ENOMEM;
        goto fail;
    }
    *out = &s->base;
    return 0;
fail:
    lmdb_close(&s->base);
    return ret;
}

static void lmdb_close(th_store_t *st)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    if (!s) {
        return;
    }
    if (s->env) {
        mdb_env_close(s->env);
    }
    if (s->cfg.ephemeral && s->path) {
        char f[4200];
        snprintf(f, sizeof(f), "%s/data.mdb", s->path);
        unlink(f);
        snprintf(f, sizeof(f), "%s/lock.mdb", s->path);
        unlink(f);
        rmdir(s->path);
    }
    registry_remove(s->dev, s->ino);
    th__cat_clear(&s->svcs);
    th__cat_clear(&s->ops);
    th__lmdb_wctx_free(s->w);
    ZSTD_freeCCtx(s->cctx);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->retention_lock);
    pthread_rwlock_destroy(&s->maplock);
    th_free(s->path);
    th_free(s);
}

/* ---- Stats ---------------------------------------------------------------------------- */

static void lmdb_stats(th_store_t *st, struct th_store_stats *out)
{
    struct th_lmdb *s = (struct th_lmdb *)st;
    memset(out, 0, sizeof(*out));
    out->spans_written = __atomic_load_n(&s->spans_written, __ATOMIC_RELAXED);
    out->batches_written = __atomic_load_n(&s->batches_written, __ATOMIC_RELAXED);
    out->retention_deleted_spans = __atomic_load_n(&s->retention_deleted, __ATOMIC_RELAXED);
    out->write_errors = __atomic_load_n(&s->write_errors, __ATOMIC_RELAXED);
    out->last_write_errno = __atomic_load_n(&s->last_errno, __ATOMIC_RELAXED);
    out->capacity_bytes = (uint64_t)s->map_size;
    th_latency_snapshot(&s->commits, &out->commit);
    struct statvfs vfs;
    if (statvfs(s->path, &vfs) == 0) {
        out->fs_free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    }
    char f[4200];
    snprintf(f, sizeof(f), "%s/data.mdb", s->path);
    struct stat sb;
    if (stat(f, &sb) == 0) {
        out->bytes_on_disk = (uint64_t)sb.st_blocks * 512;
    }
    /* the oldest block's earliest span */
    struct th__txn tx;
    if (th__txn_begin(s, true, &tx) != 0) {
        return;
    }
    th__lmdb_used_bytes(s, tx.t, &out->bytes_used);
    MDB_cursor *c;
    if (mdb_cursor_open(tx.t, s->dbi_blocks, &c) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && k.mv_size == TH_KEY_BLOCK_LEN) {
            th__mpw_t buf = {0};
            struct th__block_meta m;
            if (th__chunks_get(s, tx.t, th__be64_get(k.mv_data), TH_BLOCK_KIND_META, &buf) == 0 &&
                th__block_meta_parse(buf.p, buf.len, &m) == 0) {
                out->oldest_span_ns = m.min_start;
            }
            th__mpw_free(&buf);
        }
        mdb_cursor_close(c);
    }
    th__txn_abort(&tx);
}

/* The write op, counting failures for the internal metrics. */
static int lmdb_write(th_store_t *st, th_batch_t *const *batches, size_t n)
{
    int ret = th__lmdb_write(st, batches, n);
    if (ret != 0) {
        __atomic_add_fetch(&((struct th_lmdb *)st)->write_errors, 1, __ATOMIC_RELAXED);
    }
    return ret;
}

const struct th_store_ops th_store_lmdb_ops = {
    .name = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .write = lmdb_write,
    .get_trace = th__lmdb_get_trace,
    .find_trace_ids = th__lmdb_find_trace_ids,
    .services = th__lmdb_services,
    .operations = th__lmdb_operations,
    .dependencies = th__lmdb_dependencies,
    .retention = th__lmdb_retention,
    .stats = lmdb_stats,
};
