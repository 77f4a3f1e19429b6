/*
 * The file exporter: writes every batch to a file as one line of OTLP/JSON (the
 * OpenTelemetry Collector's file exporter format), or length-prefixed protobuf, optionally
 * zstd-compressed per record, with size-based rotation. Encoding happens in consume; a
 * writer thread does all file I/O, so a slow or full disk never stalls the event loop.
 */
#ifndef TH_EXPORTER_FILE_H
#define TH_EXPORTER_FILE_H

#include <pthread.h>
#include <zstd.h>

#include "th/component.h"
#include "th/otlp.h"

/** rotation: (the Collector's lumberjack settings). */
struct th_file_rotation_cfg {
    int64_t max_megabytes; /**< rotate before the file would pass this many MiB (100) */
    int64_t max_days;      /**< delete backups older than this many days; 0 keeps them (0) */
    int64_t max_backups;   /**< keep at most this many backups; 0 keeps all (100) */
    bool localtime;        /**< backup names in local time instead of UTC (false) */
};

/** group_by: accepted for compatibility; enabling it is refused (not implemented). */
struct th_file_group_by_cfg {
    bool enabled;
    const char *resource_attribute;
    int64_t max_open_files;
};

/** The file exporter's config, filled by its field table or built directly by tests. */
struct th_file_cfg {
    const char *path;                     /**< required */
    bool append;                          /**< false: truncate at start */
    const char *format;                   /**< "json" (default) or "proto" */
    const char *compression;              /**< "" (none) or "zstd" */
    int64_t flush_interval;               /**< ns between writes of the buffer; 0: 1 s */
    bool rotation_enabled;                /**< the rotation: section is present */
    struct th_file_rotation_cfg rotation; /**< used when rotation_enabled */
    struct th_file_group_by_cfg group_by; /**< must stay disabled */
    bool create_directory;                /**< create the file's directory at start */
    const char *directory_permissions;    /**< octal mode for created directories ("0755") */
};

/** The ops table registered as exporter "file". */
extern const struct th_component_ops th_exporter_file_ops;

/**
 * Check the rules that span several fields, as the Collector's Validate does (path set,
 * append excludes rotation and compression, known format and compression, group_by off,
 * directory_permissions octal and only with create_directory).
 * @param[out] err a static message on failure.
 * @return 0 or TH_ECONFIG.
 */
int th__file_config_check(const void *cfg, const char **err);

/** @return the mode in @p s ("0755"), or -1 when it is not octal within 0777. */
int th__file_parse_permissions(const char *s);

/* ---- The writer (file_writer.c) ------------------------------------------------------ */

/** Bytes buffered (encoded, not yet written) beyond which consume answers TH_ERETRY. */
#define TH_FILE_MAX_PENDING (64u << 20)
/** Buffered bytes that wake the writer before the flush interval ends. */
#define TH_FILE_WAKE_BYTES (1u << 20)

/** A run of encoded records bound for one file (a rotation starts a new run). */
struct th_file_seg {
    struct th_file_seg *next;
    bool rotate_first; /**< rotate the file before writing this run */
    th_buf_t data;
    size_t off; /**< bytes of data already written (a failed write resumes here) */
};

/**
 * The buffer between the threads that call consume and the writer thread, and the file.
 * Fields under "lock" are shared; the others belong to the writer thread once it runs.
 */
typedef struct th_file_writer {
    struct th_component *comp; /**< for logs and stats */
    /* settings */
    char *path;
    bool append;
    bool proto;
    bool zstd;
    uint64_t flush_ns;
    bool rotate;
    uint64_t max_bytes;
    int64_t max_days;
    int64_t max_backups;
    bool localtime;
    bool create_dir;
    int dir_mode;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool sync_ready;     /**< lock and cond exist */
    pthread_t thread;    /**< the writer */
    bool thread_running; /**< under lock */
    bool stop;           /**< under lock: drain, sync, close and exit */
    bool kick;           /**< under lock: enough is buffered, write before the interval ends */
    bool shut;           /**< shutdown has run (it is idempotent) */
    int final_err;       /**< what the writer thread ended with */
    struct th_file_seg *head, *tail; /**< under lock: records waiting for the writer */
    uint64_t pending;                /**< under lock: bytes encoded and not yet written */
    uint64_t file_bytes; /**< under lock: bytes the current file will hold once written */
    int sticky_err;      /**< atomic: the last write failure (negative errno), 0 after success */
    th_buf_t scratch;    /**< under lock: encoding before compression */
    ZSTD_CCtx *zctx;     /**< under lock */

    int fd;                   /**< the open file, or -1 */
    struct th_file_seg *held; /**< the writer's runs, oldest first, still to write */
    uint64_t last_err_log_ns; /**< rate limit for repeated write errors */
    int last_err_logged;
} th_file_writer_t;

/**
 * Create a writer from a checked config. No I/O.
 * @param[in] c the component, for logs and stats.
 * @param[out] out the writer.
 * @return 0, TH_ENOMEM.
 */
int th__file_writer_create(const struct th_file_cfg *cfg, struct th_component *c,
                           th_file_writer_t **out);

/**
 * Create the directory when asked, open the file (truncated unless append, or appended to
 * when rotating, as lumberjack does) and start the writer thread.
 * @return 0, or a negative errno for the file (logged with the path), TH_ENOMEM.
 */
int th__file_writer_start(th_file_writer_t *w);

/**
 * Encode a request and queue it for the writer.
 * @return 0; TH_ERETRY when the last write failed (disk full: the data already accepted is
 *         kept and retried) or TH_FILE_MAX_PENDING bytes are waiting; TH_ESHUTDOWN after
 *         shutdown or before start; TH_ENOMEM.
 * @note Does not take the batch; the caller releases it.
 */
int th__file_writer_push(th_file_writer_t *w, const th_otlp_request_t *req);

/**
 * Stop the writer: write everything queued, fsync, close. Idempotent; safe without start.
 * @return 0, or the write error that left data unwritten (logged with the byte count).
 */
int th__file_writer_shutdown(th_file_writer_t *w);

/** Shut down if needed and free everything. NULL is allowed. */
void th__file_writer_destroy(th_file_writer_t *w);

/**
 * The name lumberjack gives a backup: "<dir>/<name>-2006-01-02T15-04-05.000<ext>".
 * @param[in] path the live file's path.
 * @param[in] unix_ns the rotation time.
 * @param[in] localtime format in local time rather than UTC.
 * @return a heap string, or NULL when memory is short.
 */
char *th__file_backup_name(const char *path, uint64_t unix_ns, bool localtime);

/** The instance (file.c allocates it through instance_size). */
struct th_file_exporter {
    struct th_component base;
    th_file_writer_t *writer;
};

#endif
