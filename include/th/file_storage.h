/*
 * The file_storage extension: the Collector's `extensions.file_storage`, a directory where
 * components keep their own files (the exporter helper's persistent sending queue). The
 * extension checks the directory when it starts (and creates it when `create_directory` is
 * set); a component asks it for the path of its file with th_file_storage_client() and opens
 * the file itself (an LMDB environment for the persistent queue).
 */
#ifndef TH_FILE_STORAGE_H
#define TH_FILE_STORAGE_H

#include "th/component.h"

/** The extension's ops (kind TH_KIND_EXTENSION, type "file_storage"). */
extern const struct th_component_ops th_extension_file_storage_ops;

/** The directory the extension uses when `directory` is not set: the Collector's default on
 *  Linux, so a Collector config that relies on it finds the same files. */
#define TH_FILE_STORAGE_DEFAULT_DIR "/var/lib/otelcol/file_storage"

/** extensions::file_storage[/NAME]: the Collector's keys. */
struct th_file_storage_cfg {
    const char *directory;             /**< where the files go */
    int64_t timeout;                   /**< ns to wait for a file another process holds */
    bool create_directory;             /**< create `directory` (and parents) at start */
    const char *directory_permissions; /**< octal mode for created directories ("0750") */
    bool fsync;                        /**< sync every commit (power-loss safe; slower) */
    const th_node_t *compaction;       /**< accepted; LMDB reuses freed pages by itself */
    bool recreate;                     /**< accepted; has no effect */
};

/** What a component needs to open its file under a file_storage extension. */
struct th_file_storage_client {
    /** DIRECTORY/KIND_TYPE_NAME_SIGNAL, e.g. ".../exporter_otlp_http_q_traces": the '/' of the
     *  component id becomes '_'; any other byte outside [A-Za-z0-9._-] becomes ~XXXX (its
     *  code in hex), as the Collector sanitises client names. */
    char path[4096];
    bool fsync;         /**< sync every commit */
    int64_t timeout_ns; /**< how long to wait for a lock another process holds; 0 = try once */
};

/**
 * Find a started file_storage extension and name the file a component should use there.
 * @param[in] host the host the component was started with.
 * @param[in] storage_id the extension's id as configured ("file_storage" or
 *            "file_storage/NAME").
 * @param[in] kind the asking component's kind (its name starts the file name).
 * @param[in] component_id the asking component's id ("otlp_http/q").
 * @param[in] name what the file is for ("traces"), or NULL.
 * @param[out] out filled on success.
 * @return 0; TH_ENOENT when no such extension is configured and listed in
 *         service::extensions, it is not a file_storage, or it has not started; TH_EINVAL
 *         for a NULL argument; TH_E2BIG when the path does not fit.
 * @note The directory belongs to the extension; the component owns the files it makes there.
 */
int th_file_storage_client(struct th_host *host, const char *storage_id, enum th_kind kind,
                           const char *component_id, const char *name,
                           struct th_file_storage_client *out);

#endif
