/*
 * The file exporter's writer: records are encoded by the thread that calls consume into an
 * in-memory run, and one writer thread per exporter writes the runs out every flush
 * interval (sooner when a megabyte is waiting), rotates the file, and on shutdown writes
 * the rest and fsyncs.
 *
 * Why a thread and not a uv_timer on the host loop: write(2) on a local file usually returns
 * at once, but not when the disk is slow, the page cache is full of dirty pages (the kernel
 * throttles the writer), the file is on NFS, or a rotation renames and reopens; and fsync can
 * take seconds. Any of those on the loop would stall every connection the receiver serves.
 * The encoding stays in consume because it can only fail for memory, which the caller can
 * then answer with a retry, and because a bounded byte buffer is a simpler budget than
 * queued batches (whose arenas are larger than their encoding).
 *
 * Failure rule: nothing is dropped silently. A failed write keeps its bytes (a partial write
 * resumes where it stopped), logs the error with the path, and makes every consume answer
 * TH_ERETRY until a retry at the next interval succeeds; only if the disk is still failing at
 * shutdown is the remainder lost, and the log says how many bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exporters/file/file.h"
#include "th/log.h"

/* Repeated write errors are logged at most this often (the first one always). */
#define ERR_LOG_INTERVAL_NS (10ull * 1000000000ull)
/* The encoding scratch of the zstd path is given back when it grew past this. */
#define SCRATCH_KEEP (8u << 20)

static uint64_t now_plus(uint64_t ns)
{
    return th_now_mono_ns() + ns;
}

int th__file_writer_create(const struct th_file_cfg *cfg, struct th_component *c,
                           th_file_writer_t **out)
{
    int ret = TH_ENOMEM;
    th_file_writer_t *w = th_calloc(1, sizeof(*w));
    if (!w) {
        return TH_ENOMEM;
    }
    w->fd = -1;
    w->comp = c;
    w->path = th_strdup(cfg->path);
    if (!w->path) {
        goto fail;
    }
    w->append = cfg->append;
    w->proto = cfg->format && !strcmp(cfg->format, "proto");
    w->zstd = cfg->compression && !strcmp(cfg->compression, "zstd");
    w->flush_ns = cfg->flush_interval > 0 ? (uint64_t)cfg->flush_interval : 1000000000ull;
    w->rotate = cfg->rotation_enabled;
    /* lumberjack: a megabyte is 1024*1024 bytes, and 0 means its default of 100. */
    int64_t mb = cfg->rotation.max_megabytes > 0 ? cfg->rotation.max_megabytes : 100;
    w->max_bytes = (uint64_t)mb << 20;
    w->max_days = cfg->rotation.max_days;
    w->max_backups = cfg->rotation.max_backups;
    w->localtime = cfg->rotation.localtime;
    w->create_dir = cfg->create_directory;
    w->dir_mode = th__file_parse_permissions(
        cfg->directory_permissions && *cfg->directory_permissions ? cfg->directory_permissions
                                                                  : "0755");
    if (w->zstd) {
        w->zctx = ZSTD_createCCtx();
        if (!w->zctx) {
            goto fail;
        }
    }
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cret = pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (cret != 0) {
        goto fail;
    }
    if (pthread_mutex_init(&w->lock, NULL) != 0) {
        pthread_cond_destroy(&w->cond);
        goto fail;
    }
    w->sync_ready = true;
    *out = w;
    return 0;
fail:
    th__file_writer_destroy(w);
    return ret;
}

/* mkdir -p of the directory that holds @p path. */
static int make_parent_dirs(const char *path, int mode)
{
    char *dir = th_strdup(path);
    if (!dir) {
        return TH_ENOMEM;
    }
    int ret = 0;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        goto out;
    }
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(dir, (mode_t)mode) != 0 && errno != EEXIST) {
            ret = -errno;
            goto out;
        }
        *p = '/';
    }
    if (mkdir(dir, (mode_t)mode) != 0 && errno != EEXIST) {
        ret = -errno;
    }
out:
    th_free(dir);
    return ret;
}

/* Open the live file. @p fresh truncates (a new file after rotation, or append: false at
 * start); otherwise the file is appended to. */
static int open_file(th_file_writer_t *w, bool fresh, uint64_t *size)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : O_APPEND);
    int fd = open(w->path, flags, 0600);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    *size = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? (uint64_t)st.st_size : 0;
    w->fd = fd;
    return 0;
}

static void log_write_error(th_file_writer_t *w, const char *what, int err)
{
    uint64_t now = th_now_mono_ns();
    if (err == w->last_err_logged && now - w->last_err_log_ns < ERR_LOG_INTERVAL_NS) {
        return;
    }
    w->last_err_logged = err;
    w->last_err_log_ns = now;
    th_log_error(w->comp, "%s %s: %s; buffered data is kept and retried, new data is refused", what,
                 w->path, strerror(-err));
}

char *th__file_backup_name(const char *path, uint64_t unix_ns, bool localtime)
{
    const char *base = strrchr(path, '/');
    size_t dir_len = base ? (size_t)(base - path) + 1 : 0;
    base = base ? base + 1 : path;
    /* filepath.Ext: from the last dot of the file name, dot included. */
    const char *dot = strrchr(base, '.');
    size_t prefix_len = dot ? (size_t)(dot - base) : strlen(base);
    const char *ext = dot ? dot : "";

    time_t sec = (time_t)(unix_ns / 1000000000ull);
    unsigned ms = (unsigned)((unix_ns / 1000000ull) % 1000);
    struct tm tm;
    if (localtime) {
        localtime_r(&sec, &tm);
    } else {
        gmtime_r(&sec, &tm);
    }
    char stamp[40];
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H-%M-%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03u", ms);

    size_t len = dir_len + prefix_len + 1 + strlen(stamp) + strlen(ext) + 1;
    char *out = th_malloc(len);
    if (out) {
        snprintf(out, len, "%.*s%.*s-%s%s", (int)dir_len, path, (int)prefix_len, base, stamp, ext);
    }
    return out;
}

/* Parse the time out of a backup name's stamp ("2006-01-02T15-04-05.000"). */
static bool parse_stamp(const char *s, size_t len, bool localtime, int64_t *unix_ms)
{
    if (len != 23) {
        return false;
    }
    char stamp[24];
    memcpy(stamp, s, len);
    stamp[len] = '\0';
    struct tm tm = {0};
    unsigned ms = 0;
    char tail;
    if (sscanf(stamp, "%4d-%2d-%2dT%2d-%2d-%2d.%3u%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &tail) != 7) {
        return false;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = localtime ? mktime(&tm) : timegm(&tm);
    *unix_ms = (int64_t)t * 1000 + ms;
    return true;
}

struct backup {
    char *name;
    int64_t ms;
};

static int cmp_backup_newest_first(const void *a, const void *b)
{
    const struct backup *x = a;
    const struct backup *y = b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : 0;
}

/* Remove backups past max_backups (oldest first) and older than max_days, as lumberjack's
 * mill does after each rotation. Failures are logged and otherwise ignored: the live file
 * matters more than the old ones. */
static void remove_old_backups(th_file_writer_t *w)
{
    if (w->max_backups <= 0 && w->max_days <= 0) {
        return;
    }
    const char *slash = strrchr(w->path, '/');
    char *dir = slash ? th_strndup(w->path, slash == w->path ? 1 : (size_t)(slash - w->path))
                      : th_strdup(".");
    const char *base = slash ? slash + 1 : w->path;
    const char *dot = strrchr(base, '.');
    size_t prefix_len = dot ? (size_t)(dot - base) : strlen(base);
    const char *ext = dot ? dot : "";
    size_t ext_len = strlen(ext);
    struct backup *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        int64_t ms;
        if (len < prefix_len + 1 + ext_len || strncmp(name, base, prefix_len) != 0 ||
            name[prefix_len] != '-' || strcmp(name + len - ext_len, ext) != 0 ||
            !parse_stamp(name + prefix_len + 1, len - prefix_len - 1 - ext_len, w->localtime,
                         &ms)) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct backup *nl = th_realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                goto out;
            }
            list = nl;
            cap = ncap;
        }
        list[n].name = th_strdup(name);
        list[n].ms = ms;
        if (!list[n].name) {
            goto out;
        }
        n++;
    }
    qsort(list, n, sizeof(*list), cmp_backup_newest_first);
    int64_t cutoff_ms = 0;
    if (w->max_days > 0) {
        cutoff_ms = (int64_t)(th_now_unix_ns() / 1000000ull) - w->max_days * 86400000ll;
    }
    for (size_t i = 0; i < n; i++) {
        bool too_many = w->max_backups > 0 && i >= (size_t)w->max_backups;
        bool too_old = w->max_days > 0 && list[i].ms < cutoff_ms;
        if (!too_many && !too_old) {
            continue;
        }
        size_t plen = strlen(dir) + 1 + strlen(list[i].name) + 1;
        char *p = th_malloc(plen);
        if (p) {
            snprintf(p, plen, "%s/%s", dir, list[i].name);
            if (unlink(p) != 0) {
                th_log_warn(w->comp, "removing old backup %s: %s", p, strerror(errno));
            }
            th_free(p);
        }
    }
out:
    if (d) {
        closedir(d);
    }
    for (size_t i = 0; i < n; i++) {
        th_free(list[i].name);
    }
    th_free(list);
    th_free(dir);
}

/* Move the live file aside under a timestamped name and start a new one (lumberjack). A
 * retry after a failed open finds fd == -1 and only opens. */
static int rotate(th_file_writer_t *w)
{
    if (w->fd >= 0) {
        if (fsync(w->fd) != 0 && errno != EINVAL) {
            th_log_warn(w->comp, "fsync %s before rotation: %s", w->path, strerror(errno));
        }
        close(w->fd);
        w->fd = -1;
        uint64_t now = th_now_unix_ns();
        char *backup = NULL;
        /* Two rotations in one millisecond would give the same name and the second rename
         * would replace the first backup; move the stamp on instead. */
        for (int i = 0; i < 1000; i++) {
            th_free(backup);
            backup = th__file_backup_name(w->path, now + (uint64_t)i * 1000000ull, w->localtime);
            if (!backup || access(backup, F_OK) != 0) {
                break;
            }
        }
        if (!backup) {
            return TH_ENOMEM;
        }
        if (rename(w->path, backup) != 0) {
            th_log_warn(w->comp, "rotating %s to %s: %s", w->path, backup, strerror(errno));
        }
        th_free(backup);
    }
    uint64_t size;
    int ret = open_file(w, true, &size);
    if (ret != 0) {
        return ret;
    }
    remove_old_backups(w);
    return 0;
}

/* Write the writer's runs in order; stop at the first error and keep the rest. */
static int write_held(th_file_writer_t *w, uint64_t *written)
{
    while (w->held) {
        struct th_file_seg *seg = w->held;
        if (seg->rotate_first) {
            int ret = rotate(w);
            if (ret != 0) {
                log_write_error(w, "opening", ret);
                return ret;
            }
            seg->rotate_first = false;
        } else if (w->fd < 0) {
            uint64_t size;
            int ret = open_file(w, false, &size);
            if (ret != 0) {
                log_write_error(w, "opening", ret);
                return ret;
            }
        }
        while (seg->off < seg->data.len) {
            ssize_t n = write(w->fd, seg->data.ptr + seg->off, seg->data.len - seg->off);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                int err = -errno;
                log_write_error(w, "writing", err);
                return err;
            }
            seg->off += (size_t)n;
            *written += (uint64_t)n;
        }
        w->held = seg->next;
        th_buf_free(&seg->data);
        th_free(seg);
    }
    return 0;
}

static void *writer_main(void *arg)
{
    th_file_writer_t *w = arg;
    uint64_t next = now_plus(w->flush_ns);
    int err = 0;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && !w->kick && th_now_mono_ns() < next) {
            struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull),
                                  .tv_nsec = (long)(next % 1000000000ull)};
            pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        }
        bool stopping = w->stop;
        w->kick = false;
        if (th_now_mono_ns() >= next) {
            next = now_plus(w->flush_ns);
        }
        /* Take the producers' runs behind any the writer still holds from a failure. */
        if (w->head) {
            struct th_file_seg **end = &w->held;
            while (*end) {
                end = &(*end)->next;
            }
            *end = w->head;
            w->head = w->tail = NULL;
        }
        pthread_mutex_unlock(&w->lock);

        uint64_t written = 0;
        err = write_held(w, &written);

        pthread_mutex_lock(&w->lock);
        w->pending -= written;
        if (err == 0 && w->last_err_logged != 0) {
            th_log_info(w->comp, "writing %s works again", w->path);
            w->last_err_logged = 0;
        }
        __atomic_store_n(&w->sticky_err, err, __ATOMIC_RELEASE);
        /* After stop nothing new arrives; one more pass if something came in between. */
        if (stopping && (err != 0 || !w->head)) {
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);

    if (w->fd >= 0) {
        if (fsync(w->fd) != 0 && errno != EINVAL && errno != EROFS) {
            int e = -errno;
            th_log_error(w->comp, "fsync %s: %s", w->path, strerror(-e));
            err = err ? err : e;
        }
        if (close(w->fd) != 0 && err == 0) {
            err = -errno;
        }
        w->fd = -1;
    }
    if (w->held) {
        uint64_t lost = 0;
        for (struct th_file_seg *s = w->held; s; s = s->next) {
            lost += s->data.len - s->off;
        }
        th_log_error(w->comp, "shutting down with %llu bytes not written to %s: %s",
                     (unsigned long long)lost, w->path, strerror(-err));
    }
    w->final_err = err;
    return NULL;
}

int th__file_writer_start(th_file_writer_t *w)
{
    int ret;
    if (w->create_dir) {
        ret = make_parent_dirs(w->path, w->dir_mode);
        if (ret != 0) {
            th_log_error(w->comp, "creating the directory of %s: %s", w->path,
                         ret == TH_ENOMEM ? "out of memory" : strerror(-ret));
            return ret;
        }
    }
    /* lumberjack (rotation) always appends to an existing file; otherwise `append` says. */
    uint64_t size = 0;
    ret = open_file(w, !(w->append || w->rotate), &size);
    if (ret != 0) {
        th_log_error(w->comp, "opening %s: %s", w->path, strerror(-ret));
        return ret;
    }
    pthread_mutex_lock(&w->lock);
    w->file_bytes = size;
    w->stop = false;
    int tret = pthread_create(&w->thread, NULL, writer_main, w);
    w->thread_running = tret == 0;
    pthread_mutex_unlock(&w->lock);
    if (tret != 0) {
        close(w->fd);
        w->fd = -1;
        th_log_error(w->comp, "starting the writer thread: %s", strerror(tret));
        return TH_ENOMEM;
    }
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append one request to @p out in the file's framing: a JSON line, or a 4-byte big-endian
 * length and the (protobuf or compressed) bytes, which is the Collector's legacy framing
 * for proto and for any compressed record. Called under lock (zctx and scratch). On failure
 * @p out may hold a partial tail; the caller cuts it off. */
static int encode_record(th_file_writer_t *w, const th_otlp_request_t *req, th_buf_t *out)
{
    int ret;
    if (!w->zstd) {
        if (!w->proto) {
            ret = th_otlp_encode_json(req, out);
            return ret != 0 ? ret : th_buf_append(out, "\n", 1);
        }
        size_t size = protobuf_c_message_get_packed_size(&req->base);
        if (size > UINT32_MAX) {
            return TH_E2BIG;
        }
        ret = th_buf_reserve(out, 4 + size);
        if (ret != 0) {
            return ret;
        }
        put_be32(out->ptr + out->len, (uint32_t)size);
        protobuf_c_message_pack(&req->base, out->ptr + out->len + 4);
        out->len += 4 + size;
        return 0;
    }
    th_buf_t *src = &w->scratch;
    src->len = 0;
    if (w->proto) {
        size_t size = protobuf_c_message_get_packed_size(&req->base);
        ret = th_buf_reserve(src, size);
        if (ret != 0) {
            return ret;
        }
        protobuf_c_message_pack(&req->base, src->ptr);
        src->len = size;
    } else {
        ret = th_otlp_encode_json(req, src);
        if (ret != 0) {
            goto out;
        }
    }
    size_t bound = ZSTD_compressBound(src->len);
    ret = th_buf_reserve(out, 4 + bound);
    if (ret != 0) {
        goto out;
    }
    size_t n = ZSTD_compressCCtx(w->zctx, out->ptr + out->len + 4, bound, src->ptr, src->len,
                                 ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(n) || n > UINT32_MAX) {
        /* zstd fails on memory (its own allocations) or nothing else we can cause. */
        ret = TH_ENOMEM;
        goto out;
    }
    put_be32(out->ptr + out->len, (uint32_t)n);
    out->len += 4 + n;
out:
    if (src->cap > SCRATCH_KEEP) {
        th_buf_free(src);
    }
    return ret;
}

static struct th_file_seg *seg_new(th_file_writer_t *w, bool rotate_first)
{
    struct th_file_seg *s = th_calloc(1, sizeof(*s));
    if (s) {
        s->rotate_first = rotate_first;
        if (w->tail) {
            w->tail->next = s;
        } else {
            w->head = s;
        }
        w->tail = s;
    }
    return s;
}

/* Unlink and free the tail run (it was made for a record that then failed). */
static void seg_drop_tail(th_file_writer_t *w)
{
    struct th_file_seg *s = w->tail;
    struct th_file_seg **pp = &w->head;
    while (*pp != s) {
        pp = &(*pp)->next;
    }
    *pp = NULL;
    w->tail = NULL;
    for (struct th_file_seg *p = w->head; p; p = p->next) {
        w->tail = p;
    }
    th_buf_free(&s->data);
    th_free(s);
}

int th__file_writer_push(th_file_writer_t *w, const th_otlp_request_t *req)
{
    int ret = 0;
    pthread_mutex_lock(&w->lock);
    if (!w->thread_running || w->stop) {
        ret = TH_ESHUTDOWN;
        goto out;
    }
    if (__atomic_load_n(&w->sticky_err, __ATOMIC_ACQUIRE) != 0 ||
        w->pending >= TH_FILE_MAX_PENDING) {
        ret = TH_ERETRY;
        goto out;
    }
    bool fresh = !w->tail;
    struct th_file_seg *seg = fresh ? seg_new(w, false) : w->tail;
    if (!seg) {
        ret = TH_ENOMEM;
        goto out;
    }
    size_t start = seg->data.len;
    ret = encode_record(w, req, &seg->data);
    if (ret != 0) {
        seg->data.len = start;
        if (fresh) {
            seg_drop_tail(w);
        }
        goto out;
    }
    size_t rec = seg->data.len - start;
    /* lumberjack rotates before a write that would pass the limit; a record bigger than the
     * limit still goes whole into a new file rather than failing. */
    if (w->rotate && w->file_bytes > 0 && w->file_bytes + rec > w->max_bytes) {
        struct th_file_seg *next = seg_new(w, true);
        if (!next || th_buf_append(&next->data, seg->data.ptr + start, rec) != 0) {
            seg->data.len = start;
            if (next) {
                seg_drop_tail(w);
            }
            if (fresh) {
                seg_drop_tail(w);
            }
            ret = TH_ENOMEM;
            goto out;
        }
        seg->data.len = start;
        w->file_bytes = rec;
    } else {
        w->file_bytes += rec;
    }
    w->pending += rec;
    if (w->pending >= TH_FILE_WAKE_BYTES && !w->kick) {
        w->kick = true;
        pthread_cond_signal(&w->cond);
    }
out:
    pthread_mutex_unlock(&w->lock);
    return ret;
}

int th__file_writer_shutdown(th_file_writer_t *w)
{
    if (!w || !w->sync_ready || w->shut) {
        return w ? w->final_err : 0;
    }
    w->shut = true;
    pthread_mutex_lock(&w->lock);
    bool running = w->thread_running;
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (running) {
        pthread_join(w->thread, NULL);
        pthread_mutex_lock(&w->lock);
        w->thread_running = false;
        pthread_mutex_unlock(&w->lock);
    } else if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    return w->final_err;
}

static void free_segs(struct th_file_seg *s)
{
    while (s) {
        struct th_file_seg *next = s->next;
        th_buf_free(&s->data);
        th_free(s);
        s = next;
    }
}

void th__file_writer_destroy(th_file_writer_t *w)
{
    if (!w) {
        return;
    }
    th__file_writer_shutdown(w);
    free_segs(w->held);
    free_segs(w->head);
    w->held = w->head = w->tail = NULL;
    if (w->sync_ready) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    ZSTD_freeCCtx(w->zctx);
    th_buf_free(&w->scratch);
    th_free(w->path);
    th_free(w);
}
