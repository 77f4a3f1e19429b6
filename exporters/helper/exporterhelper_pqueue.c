/*
 * The persistent sending queue: one LMDB environment (one file and its -lock file) in the
 * file_storage directory, named after the exporter. Each queued request is one record keyed
 * by a big-endian u64 sequence, so records sort in queue order and are appended with
 * MDB_APPEND; the value is a 16-byte header (magic, span count) and the protobuf request.
 *
 * Durability: batches are committed in groups (one transaction for everything the inbox
 * held) and their acks settle after the commit, so an acknowledged span is on disk (with
 * `fsync: false` it survives a crash of the process, with `fsync: true` a crash of the
 * machine too). A record is deleted only once it is delivered or failed for good; what is
 * left is sent first at the next start. Deletes and marks are never synced: losing one to a
 * power cut can only send a request again.
 *
 * Duplicates: before a request is sent its sequence is written to a second database,
 * "dispatched", and removed with the record. Marks found at start are requests that were in
 * flight when the process died: they are sent again and may arrive twice; the helper counts
 * and logs them. Only the exporter's thread touches the environment.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exporters/helper/exporterhelper_internal.h"
#include "th/log.h"

#define HDR_LEN         16
#define MAP_INITIAL     (64ull << 20)
#define MAP_MAX_DEFAULT (16ull << 30)

static const uint8_t magic[4] = {'T', 'H', 'Q', '1'};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The one place LMDB codes become th_err. */
static int mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_MAP_FULL:
    case ENOSPC:
        return TH_ESPACE;
    case MDB_NOTFOUND:
        return TH_ENOENT;
    case ENOMEM:
        return TH_ENOMEM;
    default:
        return TH_EIO;
    }
}

/* Double the map, up to the maximum; only between transactions (we are the only user). */
static bool grow(struct th_exporterhelper *h)
{
    struct th__eh_pq *pq = &h->pq;
    if (pq->map_size >= pq->max_map_size) {
        return false;
    }
    size_t next = TH_MIN(pq->map_size * 2, pq->max_map_size);
    if (mdb_env_set_mapsize(pq->env, next) != 0) {
        return false;
    }
    th_log_info(h->c, "persistent queue: map grown to %zu MiB", next >> 20);
    pq->map_size = next;
    return true;
}

/* Take the data file's lock, waiting up to the storage timeout: two processes sending from
 * one queue would send everything twice. */
static int lock_file(struct th_exporterhelper *h)
{
    struct th__eh_pq *pq = &h->pq;
    pq->lock_fd = open(h->storage.path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pq->lock_fd < 0) {
        th_log_error(h->c, "persistent queue: cannot open %s: %s", h->storage.path,
                     strerror(errno));
        return TH_EIO;
    }
    uint64_t deadline = th_now_mono_ns() + (uint64_t)TH_MAX(h->storage.timeout_ns, 0);
    while (flock(pq->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            th_log_error(h->c, "persistent queue: cannot lock %s: %s", h->storage.path,
                         strerror(errno));
            return TH_EIO;
        }
        if (th_now_mono_ns() >= deadline) {
            th_log_error(h->c,
                         "persistent queue: %s is in use by another process (waited for the "
                         "file_storage timeout)",
                         h->storage.path);
            return TH_EEXIST;
        }
        usleep(10000);
    }
    return 0;
}

/* Put what a previous run left into the in-memory queue, and count the requests it was
 * sending when it stopped. */
static int load(struct th_exporterhelper *h, MDB_txn *txn)
{
    struct th__eh_pq *pq = &h->pq;
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, pq->reqs, &cur);
    MDB_val k, v;
    uint64_t spans_total = 0;
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        if (rc != 0) {
            break;
        }
        if (k.mv_size != 8 || v.mv_size < HDR_LEN || memcmp(v.mv_data, magic, 4) != 0) {
            th_log_warn(h->c, "persistent queue: deleting a record that is not a request");
            rc = mdb_cursor_del(cur, 0);
            continue;
        }
        struct th__eh_req *r = th_calloc(1, sizeof(*r));
        if (!r) {
            rc = ENOMEM;
            break;
        }
        r->seq = get_be64(k.mv_data);
        r->spans = get_be64((const uint8_t *)v.mv_data + 8);
        r->len = v.mv_size - HDR_LEN;
        r->units = h->sizer == TH__EH_ITEMS ? r->spans : h->sizer == TH__EH_BYTES ? r->len : 1;
        __atomic_add_fetch(&h->size, r->units, __ATOMIC_ACQ_REL);
        th__eh_list_push(&h->queue, r, false);
        spans_total += r->spans;
        pq->next_seq = r->seq + 1;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        return mdb_err(rc);
    }
    rc = mdb_cursor_open(txn, pq->dispatched, &cur);
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        rc = mdb_cursor_get(cur, &k, &v, op);
        if (rc != 0) {
            break;
        }
        MDB_val rv;
        if (mdb_get(txn, pq->reqs, &k, &rv) == 0 && rv.mv_size >= HDR_LEN) {
            pq->redelivered++;
            pq->redelivered_spans += get_be64((const uint8_t *)rv.mv_data + 8);
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        return mdb_err(rc);
    }
    rc = mdb_drop(txn, pq->dispatched, 0);
    if (rc != 0) {
        return mdb_err(rc);
    }
    if (h->queue.n > 0) {
        th_log_info(h->c,
                    "persistent queue %s: %zu requests (%llu spans) left from the last run are "
                    "sent first",
                    h->storage.path, h->queue.n, (unsigned long long)spans_total);
    }
    if (pq->redelivered > 0) {
        th_log_warn(h->c,
                    "persistent queue: %llu requests (%llu spans) were being sent when the last "
                    "run stopped; they are sent again and may arrive twice",
                    (unsigned long long)pq->redelivered, (unsigned long long)pq->redelivered_spans);
    }
    return 0;
}

int th__eh_pq_open(struct th_exporterhelper *h)
{
    struct th__eh_pq *pq = &h->pq;
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    if (major != MDB_VERSION_MAJOR || minor < 9) {
        th_log_error(h->c, "LMDB %d.%d.%d is too old (0.9 or later needed)", major, minor, patch);
        return TH_EUNSUPPORTED;
    }
    int ret = lock_file(h);
    if (ret != 0) {
        return ret;
    }
    pq->fsync = h->storage.fsync;
    pq->next_seq = 1;
    if (!pq->max_map_size) {
        pq->max_map_size = MAP_MAX_DEFAULT;
    }
    /* start with room for what the file already holds */
    struct stat st;
    size_t map = MAP_INITIAL;
    if (fstat(pq->lock_fd, &st) == 0) {
        while (map < (size_t)st.st_size * 2 && map < pq->max_map_size) {
            map *= 2;
        }
    }
    pq->map_size = TH_MIN(map, TH_MAX(pq->max_map_size, (size_t)1 << 20));
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&pq->env);
    if (rc == 0) {
        mdb_env_set_maxdbs(pq->env, 2);
        rc = mdb_env_set_mapsize(pq->env, pq->map_size);
    }
    if (rc == 0) {
        rc = mdb_env_open(pq->env, h->storage.path, MDB_NOSUBDIR | (pq->fsync ? 0 : MDB_NOSYNC),
                          0600);
    }
    if (rc == 0) {
        MDB_envinfo info;
        mdb_env_info(pq->env, &info);
        pq->map_size = info.me_mapsize; /* an existing file may have a larger map */
        rc = mdb_txn_begin(pq->env, NULL, 0, &txn);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "requests", MDB_CREATE, &pq->reqs);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "dispatched", MDB_CREATE, &pq->dispatched);
    }
    if (rc != 0) {
        th_log_error(h->c, "persistent queue: cannot open %s: %s", h->storage.path,
                     mdb_strerror(rc));
        ret = mdb_err(rc) == TH_ENOMEM ? TH_ENOMEM : TH_EIO;
        goto fail;
    }
    ret = load(h, txn);
    if (ret == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
        ret = rc == 0 ? 0 : mdb_err(rc);
    }
    if (ret != 0) {
        th_log_error(h->c, "persistent queue: cannot read %s: %s", h->storage.path,
                     th_strerror(ret));
        goto fail;
    }
    return 0;
fail:
    if (txn) {
        mdb_txn_abort(txn);
    }
    struct th__eh_req *r;
    while ((r = th__eh_list_pop(&h->queue)) != NULL) {
        th__eh_unreserve(h, r->units);
        th__eh_req_free(r);
    }
    th__eh_pq_close(h);
    return ret;
}

void th__eh_pq_close(struct th_exporterhelper *h)
{
    struct th__eh_pq *pq = &h->pq;
    if (pq->env) {
        mdb_env_close(pq->env);
        pq->env = NULL;
    }
    if (pq->lock_fd >= 0) {
        close(pq->lock_fd); /* releases the flock */
        pq->lock_fd = -1;
    }
}

/* One attempt at committing the group; on success the records are there, in order. */
static int append_txn(struct th_exporterhelper *h, struct th__eh_in *in, size_t n,
                      struct th__eh_req **reqs)
{
    struct th__eh_pq *pq = &h->pq;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(pq->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const th_batch_t *b = in[i].batch;
        size_t len = protobuf_c_message_get_packed_size(&b->req->base);
        uint8_t key[8];
        put_be64(key, pq->next_seq + i);
        MDB_val k = {.mv_size = 8, .mv_data = key};
        MDB_val v = {.mv_size = HDR_LEN + len, .mv_data = NULL};
        rc = mdb_put(txn, pq->reqs, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rc != 0) {
            break;
        }
        uint8_t *p = v.mv_data;
        memcpy(p, magic, 4);
        memset(p + 4, 0, 4);
        put_be64(p + 8, b->span_count);
        protobuf_c_message_pack(&b->req->base, p + HDR_LEN);
        reqs[i]->seq = pq->next_seq + i;
        reqs[i]->spans = b->span_count;
        reqs[i]->len = len;
        reqs[i]->units = in[i].units;
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    return rc;
}

int th__eh_pq_append(struct th_exporterhelper *h, struct th__eh_in *in, size_t n)
{
    struct th__eh_pq *pq = &h->pq;
    struct th__eh_req *reqs[256];
    th_assert(n <= TH_ARRAY_SIZE(reqs));
    int ret = 0;
    size_t made = 0;
    for (; made < n; made++) {
        reqs[made] = th_calloc(1, sizeof(*reqs[made]));
        if (!reqs[made]) {
            ret = TH_ENOMEM;
            goto out;
        }
    }
    int rc;
    while ((rc = append_txn(h, in, n, reqs)) == MDB_MAP_FULL && grow(h)) {
    }
    if (rc != 0) {
        bool busy = h->queue.n > 0;
        for (size_t i = 0; i < h->n_slots && !busy; i++) {
            busy = h->slots[i].req != NULL;
        }
        if (rc == MDB_MAP_FULL && busy) {
            /* refuse at once until a delivery frees room (with nothing on disk to deliver,
             * only this group was too large) */
            __atomic_store_n(&h->disk_full, true, __ATOMIC_RELEASE);
        }
        if (rc == MDB_MAP_FULL) {
            th_log_error(h->c, "persistent queue %s is full (%zu MiB)", h->storage.path,
                         pq->map_size >> 20);
        }
        ret = mdb_err(rc) == TH_ESPACE ? TH_ERETRY : mdb_err(rc);
        goto out;
    }
    pq->next_seq += n;
    for (size_t i = 0; i < n; i++) {
        th__eh_list_push(&h->queue, reqs[i], false);
        /* committed: the sender may be told its spans are safe */
        th_batch_release(in[i].batch);
    }
    return 0;
out:
    for (size_t i = 0; i < made; i++) {
        th_free(reqs[i]);
    }
    return ret;
}

int th__eh_pq_load(struct th_exporterhelper *h, struct th__eh_req *r)
{
    struct th__eh_pq *pq = &h->pq;
    MDB_txn *txn = NULL;
    uint8_t key[8];
    put_be64(key, r->seq);
    MDB_val k = {.mv_size = 8, .mv_data = key}, v;
    int rc = mdb_txn_begin(pq->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_get(txn, pq->reqs, &k, &v);
    }
    int ret = mdb_err(rc);
    if (ret == 0 && v.mv_size < HDR_LEN) {
        ret = TH_EIO;
    }
    if (ret == 0) {
        size_t len = v.mv_size - HDR_LEN;
        r->pb = th_malloc(len ? len : 1);
        if (r->pb) {
            memcpy(r->pb, (const uint8_t *)v.mv_data + HDR_LEN, len); /* valid only in txn */
            r->len = len;
        } else {
            ret = TH_ENOMEM;
        }
    }
    if (txn) {
        mdb_txn_abort(txn);
    }
    return ret;
}

/* A write transaction that needs no sync: marks and deletes can only cause a resend. */
static int write_unsynced(struct th_exporterhelper *h, bool del, const uint64_t *seqs, size_t n,
                          bool record_too)
{
    struct th__eh_pq *pq = &h->pq;
    int rc;
    for (int round = 0; round < 2; round++) {
        if (pq->fsync) {
            mdb_env_set_flags(pq->env, MDB_NOSYNC, 1);
        }
        MDB_txn *txn = NULL;
        rc = mdb_txn_begin(pq->env, NULL, 0, &txn);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            uint8_t key[8];
            put_be64(key, seqs[i]);
            MDB_val k = {.mv_size = 8, .mv_data = key}, v = {.mv_size = 0, .mv_data = key};
            if (!del) {
                rc = mdb_put(txn, pq->dispatched, &k, &v, 0);
            } else {
                rc = mdb_del(txn, pq->dispatched, &k, NULL);
                rc = rc == MDB_NOTFOUND ? 0 : rc;
                if (rc == 0 && record_too) {
                    rc = mdb_del(txn, pq->reqs, &k, NULL);
                    rc = rc == MDB_NOTFOUND ? 0 : rc;
                }
            }
        }
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
        } else if (txn) {
            mdb_txn_abort(txn);
        }
        if (pq->fsync) {
            mdb_env_set_flags(pq->env, MDB_NOSYNC, 0);
        }
        if (rc != MDB_MAP_FULL || !grow(h)) {
            break;
        }
    }
    return rc;
}

void th__eh_pq_mark(struct th_exporterhelper *h, const uint64_t *seqs, size_t n)
{
    int rc = write_unsynced(h, false, seqs, n, false);
    if (rc != 0) {
        /* only the duplicate count after a crash suffers */
        th_log_warn(h->c, "persistent queue: cannot mark requests as sent: %s", mdb_strerror(rc));
    }
}

void th__eh_pq_remove(struct th_exporterhelper *h, uint64_t seq)
{
    int rc = write_unsynced(h, true, &seq, 1, true);
    if (rc != 0) {
        th_log_warn(h->c,
                    "persistent queue: cannot delete a finished request (%s); it will be sent "
                    "again at the next start",
                    mdb_strerror(rc));
        return;
    }
    __atomic_store_n(&h->disk_full, false, __ATOMIC_RELEASE);
}

void th__eh_pq_unmark(struct th_exporterhelper *h, uint64_t seq)
{
    write_unsynced(h, true, &seq, 1, false);
}
