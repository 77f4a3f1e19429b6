/*
 * The web UI on the query endpoint: the built-in UI (the files under ui-api/web/, embedded
 * in the binary at build time by cmake/th_embed_ui.cmake) or, when `ui.assets_path` is set,
 * a directory of built Jaeger UI assets. Everything is answered from memory: the pages are
 * prepared once when the server starts, so a request is a table lookup.
 *
 * The contract with the files in ui-api/web/ (also written in ui-api/web/README.md):
 *   - `<base href="/"` in index.html (the tag is not closed in the pattern, as in Jaeger) is
 *     rewritten to `<base href="{base_path}/"`;
 *   - the JavaScript string literal 'TH_BASE_PATH' (single or double quotes, quotes
 *     included) is replaced by the base path as a string literal: '' or '/jaeger';
 *   - every asset URL is relative (`static/app.js`, never `/static/app.js`), and the API is
 *     at `{base_path}/api/`;
 *   - index.html is sent for `{base}/` and every path that is neither under `{base}/api/` nor
 *     a file; a missing file under `{base}/static/` is a 404.
 * With Jaeger UI assets, index.html gets Jaeger's own substitutions instead
 * (reference/jaeger-api.md §6.1): JAEGER_CONFIG / JAEGER_CONFIG_JS, JAEGER_VERSION,
 * JAEGER_BACKEND_CAPABILITIES, JAEGER_STORAGE_CAPABILITIES and `<base href="/"`.
 */
#ifndef TH_JAEGER_UI_H
#define TH_JAEGER_UI_H

#include "th/common.h"

struct th_buf; /* th/otlp.h; not included: the generated table needs only this header */

/** The pattern of the `<base>` tag rewritten in index.html (both UIs). */
#define TH_JAEGER_UI_BASE_HREF "<base href=\"/\""

/** The placeholder, inside JavaScript string quotes, the built-in UI gets the base path in. */
#define TH_JAEGER_UI_BASE_PATH_MARKER "TH_BASE_PATH"

/** The largest Jaeger UI assets directory loaded (all files together). */
#define TH_JAEGER_UI_MAX_ASSETS ((size_t)128 * 1024 * 1024)

/** The most files loaded from a Jaeger UI assets directory. */
#define TH_JAEGER_UI_MAX_FILES 4096

/** One file of the built-in UI, as the generated table (build/ui-gen) lists it. */
struct th_jaeger_ui_file {
    const char *path;         /**< relative to ui-api/web/, '/'-separated: "static/app.js" */
    const char *content_type; /**< from the extension (th_jaeger_ui_content_type) */
    const uint8_t *data;      /**< the bytes, followed by a NUL not counted in len */
    size_t len;
    const char *etag; /**< strong: the first 128 bits of the SHA-256 of data, quoted */
};

/** The built-in UI, sorted by path (generated at build time). */
extern const struct th_jaeger_ui_file th_jaeger_ui_builtin[];
/** The number of entries of th_jaeger_ui_builtin. */
extern const size_t th_jaeger_ui_builtin_count;

/** What the UI is served with. */
struct th_jaeger_ui_cfg {
    const char *base_path;   /**< normalised: "" for none, else "/prefix" without a final '/' */
    const char *assets_path; /**< Jaeger UI assets directory; NULL or "" for the built-in UI */
    const char *config_file; /**< Jaeger UI config (.json or .js); only with assets_path */
    bool log_access;         /**< responses ask the transport to log the request */
};

typedef struct th_jaeger_ui th_jaeger_ui_t;

/**
 * Prepare the UI: load the assets directory (with assets_path) or index the built-in files,
 * read the config file, and build the injected index.html with its ETag, plus gzip variants
 * of the compressible files.
 * @param[in] cfg the settings; the strings are copied.
 * @param[out] out the UI, read-only afterwards except for th_jaeger_ui_reload().
 * @param[out] err why it failed, naming the file (missing directory or index.html, a config
 *             file that does not parse, a directory over TH_JAEGER_UI_MAX_ASSETS).
 * @return 0, TH_ECONFIG, TH_EIO, TH_E2BIG or TH_ENOMEM.
 * @note Files of an assets directory are read once, here: later changes need a restart
 *       (the config file is followed: th_jaeger_ui_reload()).
 *       Symbolic links are followed only when their target stays inside the directory.
 */
int th_jaeger_ui_create(const struct th_jaeger_ui_cfg *cfg, th_jaeger_ui_t **out, char *err,
                        size_t errlen);

/**
 * Follow a changed ui.config_file (Jaeger watches that file too): at most once a second, look
 * at it, and when it changed (device, inode, size or mtime: a rename over it counts), read it
 * and inject it into the index.html kept as read. Call on the thread that serves the UI; a
 * replaced page stays allocated until th_jaeger_ui_destroy, as responses may still use it.
 * Does nothing for the built-in UI or without a config file.
 * @param[in] now_ns th_now_mono_ns().
 * @param[out] err why a changed file was not taken (it is reported once per change; the page
 *             keeps the last good config).
 * @return 1 when the page changed, 0 when nothing did, or an error of
 *         th_jaeger_ui_load_config() or TH_ENOMEM.
 */
int th_jaeger_ui_reload(th_jaeger_ui_t *ui, uint64_t now_ns, char *err, size_t errlen);

/** Free the UI; NULL is allowed. No response of it may still be in use. */
void th_jaeger_ui_destroy(th_jaeger_ui_t *ui);

/** A request, as much of it as the UI looks at. */
struct th_jaeger_ui_request {
    const char *method;
    size_t method_len;
    const char *path; /**< raw (percent-encoded), without the query string */
    size_t path_len;
    const char *query; /**< raw query without '?', or NULL: kept on a redirect */
    size_t query_len;
    const char *if_none_match; /**< the If-None-Match header value, or NULL */
    size_t if_none_match_len;
    const char *accept_encoding; /**< the Accept-Encoding header value, or NULL */
    size_t accept_encoding_len;
};

/** The largest Location header of a redirect; a longer query string is dropped. */
#define TH_JAEGER_UI_MAX_LOCATION 2048

/** A response. Header values are NULL when the header is not sent. */
struct th_jaeger_ui_response {
    int status;
    const char *content_type;
    const char *etag;
    const char *cache_control;
    const char *content_encoding;
    const char *vary;
    const char *allow;
    bool nosniff;        /**< send X-Content-Type-Options: nosniff */
    bool log_access;     /**< the transport should log the request (ui.log_access) */
    const uint8_t *body; /**< owned by the UI (valid until th_jaeger_ui_destroy) */
    size_t len; /**< the body's length; with 304 and HEAD it is still the entity's length */
    char location[TH_JAEGER_UI_MAX_LOCATION]; /**< a redirect's target, "" otherwise */
};

/**
 * Answer a request if it is the UI's.
 * @return 0 with @p resp filled; TH_DECLINED when the path is the API's (`{base}/api` and
 *         below) or outside the base path, so the API answers it (404 when unknown).
 * @note 400 for a bad percent-escape, a NUL, a backslash or a `.`/`..` segment; 404 for a
 *       missing file under static/; 405 for methods other than GET and HEAD; 301 from
 *       `{base}` to `{base}/`; 304 when If-None-Match names the ETag. index.html and files
 *       are sent with `Cache-Control: no-cache` and a strong ETag (file names carry no hash).
 */
int th_jaeger_ui_serve(const th_jaeger_ui_t *ui, const struct th_jaeger_ui_request *req,
                       struct th_jaeger_ui_response *resp);

/**
 * @return the Content-Type served for a file name, by its extension (case-insensitive):
 *         text types carry `; charset=utf-8`; unknown extensions are
 *         application/octet-stream.
 */
const char *th_jaeger_ui_content_type(const char *name);

/**
 * Jaeger's index.html substitutions (reference/jaeger-api.md §6.1), on @p in.
 * @param[in] config_js the trimmed contents of a .js config file, or NULL.
 * @param[in] config_json the compact JSON of a .json config file, or NULL.
 * @param[in] base_path normalised ("" for none): rewrites `<base href="/"` when not empty.
 * @param[out] out the page; the caller frees it with th_buf_free.
 * @return 0 or TH_ENOMEM.
 */
int th_jaeger_ui_inject_jaeger(const uint8_t *in, size_t len, const char *config_js,
                               const char *config_json, const char *base_path, struct th_buf *out);

/**
 * The built-in UI's substitutions on @p in (see the top of this header).
 * @param[out] out the page; the caller frees it with th_buf_free.
 * @return 0 or TH_ENOMEM.
 */
int th_jaeger_ui_inject_builtin(const uint8_t *in, size_t len, const char *base_path,
                                struct th_buf *out);

/**
 * Resolve a request path below the base path to a file name.
 * @param[in] rel the raw path after the base path, starting with '/'.
 * @param[out] out the percent-decoded name without the leading '/' ("" for the root),
 *             NUL-terminated.
 * @return 0; TH_EINVAL for a bad escape, a NUL or backslash, or a `.` or `..` segment;
 *         TH_E2BIG when it does not fit in @p cap.
 */
int th_jaeger_ui_resolve(const char *rel, size_t len, char *out, size_t cap);

/**
 * Read a Jaeger UI config file as Jaeger does: .json must hold a JSON object (written back
 * compact, with `<`, `>` and `&` escaped as Go does), .js is trimmed and must define
 * `function UIConfig()`.
 * @param[out] js,json exactly one is set, heap strings freed with th_free.
 * @return 0, TH_ECONFIG (unknown extension, bad JSON, no UIConfig), TH_EIO (unreadable),
 *         TH_ENOMEM.
 */
int th_jaeger_ui_load_config(const char *path, char **js, char **json, char *err, size_t errlen);

#endif
