/*
 * The LMDB span store's check of an existing file before it is opened for writing.
 *
 * LMDB trusts its file: a page of garbage can send it past the end of a page or of the map
 * (SIGSEGV, SIGBUS) or into an assertion (SIGABRT), and with MDB_WRITEMAP it extends a
 * truncated file with zeros at open, hiding the damage. So before the real open, an existing
 * file is opened read-only on its own, its size checked against its last page, and every
 * key of every database (and the free list) walked in order, with those three signals turned
 * into an error for this thread while it walks. A damaged store is refused with a message
 * naming the file and the way out; nothing is written to it (README.md, Faults).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/lmdb/store_lmdb.h"

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local sigjmp_buf *guard_jmp;
static const int guard_sigs[] = {SIGSEGV, SIGBUS, SIGABRT};
static struct sigaction guard_old[TH_ARRAY_SIZE(guard_sigs)];

static void guard_handler(int sig)
{
    if (guard_jmp) {
        siglongjmp(*guard_jmp, sig);
    }
    /* another thread's fault: put the previous handler back and let it act */
    for (size_t i = 0; i < TH_ARRAY_SIZE(guard_sigs); i++) {
        if (guard_sigs[i] == sig) {
            sigaction(sig, &guard_old[i], NULL);
        }
    }
    raise(sig);
}

/* Walk one database: keys strictly increasing, as many as its record says. */
static int walk_db(MDB_txn *t, MDB_dbi dbi, char *what, size_t wl)
{
    MDB_stat st;
    int rc = mdb_stat(t, dbi, &st);
    if (rc != 0) {
        return rc;
    }
    MDB_cursor *c;
    rc = mdb_cursor_open(t, dbi, &c);
    if (rc != 0) {
        return rc;
    }
    uint8_t prev[512];
    MDB_val pk = {0, prev}, k, v;
    size_t n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (++n > st.ms_entries || k.mv_size > sizeof(prev) ||
            (n > 1 && mdb_cmp(t, dbi, &pk, &k) >= 0)) {
            snprintf(what, wl, "keys out of order, or more keys than recorded");
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(prev, k.mv_data, k.mv_size);
        pk.mv_size = k.mv_size;
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        rc = n == st.ms_entries ? 0 : MDB_CORRUPTED;
        if (rc) {
            snprintf(what, wl, "%zu keys where %zu are recorded", n, (size_t)st.ms_entries);
        }
    }
    return rc;
}

/* The free list: ID lists (a count, then page numbers) of pages at most the last page. */
static int walk_free(MDB_txn *t, size_t last_pgno)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(t, 0, &c);
    if (rc != 0) {
        return rc;
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        size_t n;
        if (v.mv_size < sizeof(size_t) || v.mv_size % sizeof(size_t)) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(&n, v.mv_data, sizeof(n));
        if (n != v.mv_size / sizeof(size_t) - 1) {
            rc = MDB_CORRUPTED;
            break;
        }
        for (size_t i = 1; i <= n && rc == 0; i++) {
            size_t pg;
            memcpy(&pg, (const uint8_t *)v.mv_data + i * sizeof(size_t), sizeof(pg));
            rc = pg > last_pgno ? MDB_CORRUPTED : 0;
        }
        if (rc != 0) {
            break;
        }
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Every database of the file, and the free list. */
static int walk_env(MDB_env *env, char *what, size_t wl)
{
    MDB_envinfo info;
    MDB_txn *t = NULL;
    int rc = mdb_env_info(env, &info);
    if (rc == 0) {
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &t);
    }
    if (rc != 0) {
        return rc;
    }
    MDB_dbi main_dbi;
    MDB_cursor *c = NULL;
    rc = mdb_dbi_open(t, NULL, 0, &main_dbi);
    if (rc == 0) {
        rc = walk_db(t, main_dbi, what, wl);
    }
    if (rc == 0) {
        rc = mdb_cursor_open(t, main_dbi, &c);
    }
    MDB_val k, v;
    int r = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    for (; r == 0 && rc == 0; r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char name[64];
        if (k.mv_size == 0 || k.mv_size >= sizeof(name)) {
            snprintf(what, wl, "a database name of %zu bytes", k.mv_size);
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_dbi dbi;
        rc = mdb_dbi_open(t, name, 0, &dbi);
        if (rc == 0) {
            rc = walk_db(t, dbi, what, wl);
        }
        if (rc != 0 && !what[0]) {
            snprintf(what, wl, "in the database %s", name);
        }
    }
    if (c) {
        mdb_cursor_close(c);
    }
    if (rc == 0 && r != MDB_NOTFOUND) {
        rc = r;
    }
    if (rc == 0) {
        rc = walk_free(t, info.me_last_pgno);
        if (rc != 0) {
            snprintf(what, wl, "the free page list");
        }
    }
    mdb_txn_abort(t);
    return rc;
}

/* Refuse a damaged file, naming it and the way out. */
static int damaged(const char *file, const char *dir, const char *why, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "%s is damaged (%s). Tracehouse does not open a damaged store and never deletes "
             "one: to start with an empty store, move the directory aside (mv %s %s.damaged) "
             "and start again, or put back a copy from a backup",
             file, why, dir, dir);
    return TH_EIO;
}

int th__lmdb_check_existing(const char *dir, bool full, char *err, size_t errlen)
{
    char file[4200];
    snprintf(file, sizeof(file), "%s/data.mdb", dir);
    struct stat sb;
    if (stat(file, &sb) != 0 || sb.st_size == 0) {
        return 0; /* a new store */
    }
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(env, 16);
    }
    if (rc == 0) {
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0640);
    }
    if (rc != 0) {
        if (env) {
            mdb_env_close(env);
        }
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
            rc == EINVAL) {
            return damaged(file, dir, "its header pages are not a valid LMDB header", err, errlen);
        }
        if (rc == EACCES || rc == EPERM) {
            snprintf(err, errlen,
                     "%s cannot be read (%s): give the user running Tracehouse read and write "
                     "access to the directory and its files data.mdb and lock.mdb",
                     file, strerror(rc));
            return TH_EIO;
        }
        snprintf(err, errlen, "%s: cannot open the store: %s", file, mdb_strerror(rc));
        return th__mdb_err(rc);
    }
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(env, &info);
    mdb_env_stat(env, &ms);
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    if ((uint64_t)sb.st_size < need) {
        char why[160];
        snprintf(why, sizeof(why), "it is %llu bytes but its pages reach %llu bytes: it was cut",
                 (unsigned long long)sb.st_size, (unsigned long long)need);
        mdb_env_close(env);
        return damaged(file, dir, why, err, errlen);
    }
    if (!full) {
        mdb_env_close(env); /* check_on_start: false, the header and size checks only */
        return 0;
    }
    char what[128] = "";
    sigjmp_buf jb;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = guard_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    pthread_mutex_lock(&guard_lock);
    for (size_t i = 0; i < TH_ARRAY_SIZE(guard_sigs); i++) {
        sigaction(guard_sigs[i], &sa, &guard_old[i]);
    }
    volatile int sig = sigsetjmp(jb, 1);
    if (sig == 0) {
        guard_jmp = &jb;
        rc = walk_env(env, what, sizeof(what));
    }
    guard_jmp = NULL;
    for (size_t i = 0; i < TH_ARRAY_SIZE(guard_sigs); i++) {
        sigaction(guard_sigs[i], &guard_old[i], NULL);
    }
    pthread_mutex_unlock(&guard_lock);
    if (sig != 0) {
        /* LMDB's state is unknown after the fault: the read-only handle is left as it is (a
         * mapping and a descriptor) rather than risk a second fault closing it */
        snprintf(what, sizeof(what), "reading its pages crashed LMDB (signal %d)", (int)sig);
        return damaged(file, dir, what, err, errlen);
    }
    mdb_env_close(env);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof(why), "%s%s%s", mdb_strerror(rc), what[0] ? ": " : "", what);
        return damaged(file, dir, why, err, errlen);
    }
    return 0;
}
