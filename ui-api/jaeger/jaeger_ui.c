/*
 * The web UI of the query endpoint: the built-in UI embedded at build time, or a directory
 * of built Jaeger UI assets (`ui.assets_path`) read once at start. Everything a request can
 * get is prepared in th_jaeger_ui_create(): the injected index.html, each file's strong ETag
 * (SHA-256) and a gzip variant of the compressible files. Serving is then a lookup in a
 * sorted table, with no file system access: a path cannot name anything that was not loaded,
 * which is what makes traversal impossible rather than merely checked, and the server thread
 * never blocks on a disk.
 *
 * Why read the assets directory at start and not per request: a Jaeger UI build is a few
 * megabytes, so memory is not the constraint; per-request reads would need a race-free
 * "stays under the root" check (realpath then open is a TOCTOU window for symlinks), would
 * block the server's event loop on disk, and would hash every file again for its ETag.
 * The cost is that changed assets need a restart. A changed ui.config_file does not: the
 * query server's timer calls th_jaeger_ui_reload(), which looks at the file once a second and
 * injects the new config into the page kept as read (as Jaeger watches that file).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "collector/json_reader.h"
#include "th/otlp.h"
#include "ui-api/jaeger/jaeger_ui.h"

/* The longest decoded request path looked up; longer ones get 414. */
#define MAX_NAME 4096
/* Files smaller than this are not worth a gzip variant (headers cost more than they save). */
#define GZIP_MIN 512
/* The deepest folder nesting followed in an assets directory (also bounds symlink loops). */
#define MAX_DEPTH 16
/* The largest UI config file read. */
#define MAX_CONFIG ((size_t)1024 * 1024)

/* Jaeger's values for what Tracehouse serves: no archive, no metrics (jaeger-api.md §6.1). */
#define JAEGER_VERSION_JSON                                                                        \
    "{\"gitCommit\":\"\",\"gitVersion\":\"tracehouse-" TH_VERSION "\",\"buildDate\":\"\"}"
#define JAEGER_BACKEND_CAPS_JSON                                                                   \
    "{\"archiveStorage\":false,\"metricsStorage\":false,\"searchWithoutServiceName\":false,"       \
    "\"aiAssistant\":false}"
#define JAEGER_STORAGE_CAPS_JSON "{\"archiveStorage\":false,\"metricsStorage\":false}"

/* Sent when the binary was built without any file under ui-api/web/. */
static const char fallback_page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><base href=\"/\">"
    "<title>Tracehouse</title></head>\n<body><p>This build of Tracehouse has no web UI. The "
    "query API is at <a href=\"api/services\">api/</a>.</p></body></html>\n";

static const char msg_404[] = "404 page not found\n";
static const char msg_400[] = "400 Bad Request\n";
static const char msg_405[] = "Method Not Allowed\n";
static const char msg_414[] = "414 Request URI Too Long\n";

/* One servable file: a file of the table, or the injected index page. */
struct entry {
    const char *path;
    const char *ctype;
    const uint8_t *data;
    size_t len;
    char etag[40];
    uint8_t *gz; /* gzip variant, or NULL */
    size_t gz_len;
    char gz_etag[48];
    bool owned; /* path and data are on the heap (assets directory) */
};

struct th_jaeger_ui {
    char *base;
    bool log_access;
    struct entry *files; /* sorted by path; index.html is not among them */
    size_t n, cap;
    size_t total; /* bytes loaded from an assets directory */
    struct entry page;
    th_buf_t page_buf;
    /* ui.config_file, watched (assets only): the index as read, to inject again */
    char *config_path;
    uint8_t *raw_index;
    size_t raw_index_len;
    struct stat config_st; /* what the last look saw: device, inode, size, mtime */
    uint64_t next_check_ns;
    /* pages replaced by a reload: responses in flight may still point into them */
    struct old_page {
        th_buf_t buf;
        uint8_t *gz;
    } * old;
    size_t n_old;
};

/* ---- Content types ------------------------------------------------------------------------- */

/* Keep in step with th_ui_content_type in cmake/th_embed_ui.cmake (a unit test compares). */
const char *th_jaeger_ui_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
        {"txt", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/vnd.microsoft.icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    for (size_t i = 0; dot && i < TH_ARRAY_SIZE(types); i++) {
        if (!strcasecmp(dot + 1, types[i].ext)) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

static bool compressible(const char *ctype)
{
    return !strncmp(ctype, "text/", 5) || strstr(ctype, "json") || strstr(ctype, "svg");
}

/* ---- ETags and gzip ----------------------------------------------------------------------- */

/* A strong ETag: the first 128 bits of the SHA-256, as cmake/th_embed_ui.cmake writes it. */
static int make_etag(const uint8_t *p, size_t len, const char *suffix, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16) {
        return TH_ENOMEM; /* only fails when OpenSSL cannot allocate its context */
    }
    char hex[33];
    for (int i = 0; i < 16; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    snprintf(out, cap, "\"%s%s\"", hex, suffix);
    return 0;
}

/* Add a gzip variant when it saves at least a tenth; a file that does not shrink keeps none. */
static int add_gzip(struct entry *e)
{
    if (e->len < GZIP_MIN || !compressible(e->ctype) || e->len > UINT_MAX) {
        return 0;
    }
    z_stream z = {0};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return TH_ENOMEM;
    }
    int rc = 0;
    size_t cap = deflateBound(&z, (uLong)e->len);
    uint8_t *buf = th_malloc(cap);
    if (!buf) {
        rc = TH_ENOMEM;
        goto out;
    }
    z.next_in = (Bytef *)e->data;
    z.avail_in = (uInt)e->len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out > e->len - e->len / 10) {
        th_free(buf);
        goto out;
    }
    /* the variant's tag is the file's with a suffix: a different representation, same data */
    memcpy(e->gz_etag, e->etag, strlen(e->etag) - 1);
    snprintf(e->gz_etag + strlen(e->etag) - 1, sizeof(e->gz_etag) - strlen(e->etag) + 1, "-gzip\"");
    e->gz = buf;
    e->gz_len = z.total_out;
out:
    deflateEnd(&z);
    return rc;
}

/* ---- Path resolution ---------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int th_jaeger_ui_resolve(const char *rel, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    size_t i = len > 0 && rel[0] == '/' ? 1 : 0;
    if (cap == 0) {
        return TH_E2BIG;
    }
    for (; i < len; i++) {
        char c = rel[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(rel[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(rel[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return TH_EINVAL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        /* A backslash is a separator on other systems; a NUL would cut the name short. */
        if (c == '\0' || c == '\\') {
            return TH_EINVAL;
        }
        if (o + 1 >= cap) {
            return TH_E2BIG;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    /* "." and ".." are refused in the decoded name, so %2e%2e and ..%2f are caught too. */
    for (size_t s = 0; s <= o;) {
        size_t e = s;
        while (e < o && out[e] != '/') {
            e++;
        }
        size_t n = e - s;
        if ((n == 1 && out[s] == '.') || (n == 2 && out[s] == '.' && out[s + 1] == '.')) {
            return TH_EINVAL;
        }
        s = e + 1;
    }
    return 0;
}

/* ---- Index page injection ----------------------------------------------------------------- */

static int append_str(th_buf_t *b, const char *s)
{
    return th_buf_append(b, s, strlen(s));
}

/* Escape for an HTML attribute value in double quotes. */
static int append_html_attr(th_buf_t *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        switch (*s) {
        case '&':
            rc = append_str(b, "&amp;");
            break;
        case '"':
            rc = append_str(b, "&quot;");
            break;
        case '\'':
            rc = append_str(b, "&#39;");
            break;
        case '<':
            rc = append_str(b, "&lt;");
            break;
        case '>':
            rc = append_str(b, "&gt;");
            break;
        default:
            rc = th_buf_append(b, s, 1);
        }
    }
    return rc;
}

/* Escape for a JavaScript string literal inside a <script> element: quotes, backslash, and
 * the characters that could end the element or open a comment. */
static int append_js_str(th_buf_t *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == '\\' || c == '\'' || c == '"' || c == '<' || c == '>' || c == '&') {
            rc = th_buf_printf(b, "\\u%04x", c);
        } else {
            rc = th_buf_append(b, s, 1);
        }
    }
    return rc;
}

/* One substitution pass: at each position @p match says how many bytes match (0: none); the
 * match is replaced by what @p repl writes. Matches do not overlap, leftmost first, as Go's
 * Regexp.ReplaceAll. */
typedef size_t (*match_fn)(const uint8_t *in, size_t len, size_t at, const void *arg,
                           size_t *start);
typedef int (*repl_fn)(th_buf_t *out, const void *arg);

static int pass(th_buf_t *in, match_fn match, const void *marg, repl_fn repl, const void *rarg)
{
    th_buf_t out = {0};
    size_t copied = 0;
    int rc = th_buf_reserve(&out, in->len + 64);
    for (size_t at = 0; rc == 0 && at < in->len;) {
        size_t start = at;
        size_t n = match(in->ptr, in->len, at, marg, &start);
        if (n == 0) {
            at++;
            continue;
        }
        /* start may lie before at (the JS pattern's leading blank lines), never before what
         * was copied already */
        if (start < copied) {
            start = copied;
        }
        rc = th_buf_append(&out, in->ptr + copied, start - copied);
        if (rc == 0) {
            rc = repl(&out, rarg);
        }
        copied = at + n;
        at = copied;
    }
    if (rc == 0 && copied < in->len) {
        rc = th_buf_append(&out, in->ptr + copied, in->len - copied);
    }
    if (rc != 0) {
        th_buf_free(&out);
        return rc;
    }
    th_buf_free(in);
    *in = out;
    return 0;
}

/* A literal. */
static size_t match_lit(const uint8_t *in, size_t len, size_t at, const void *arg, size_t *start)
{
    const char *lit = arg;
    size_t n = strlen(lit);
    (void)start;
    return len - at >= n && !memcmp(in + at, lit, n) ? n : 0;
}

/* `LHS *= *RHS;`: Jaeger's assignment patterns (spaces only, as the regexps have it). */
struct assign {
    const char *lhs, *rhs;
};

static size_t match_assign(const uint8_t *in, size_t len, size_t at, const void *arg, size_t *start)
{
    const struct assign *a = arg;
    size_t l = strlen(a->lhs), r = strlen(a->rhs);
    (void)start;
    if (len - at < l || memcmp(in + at, a->lhs, l) != 0) {
        return 0;
    }
    size_t i = at + l;
    while (i < len && in[i] == ' ') {
        i++;
    }
    if (i >= len || in[i] != '=') {
        return 0;
    }
    i++;
    while (i < len && in[i] == ' ') {
        i++;
    }
    if (len - i < r + 1 || memcmp(in + i, a->rhs, r) != 0 || in[i + r] != ';') {
        return 0;
    }
    return i + r + 1 - at;
}

/* Go's \s. */
static bool go_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* `(?im)^\s*\/\/\s*JAEGER_CONFIG_JS.*\n.*`, matched at the "//": the comment line and the
 * line after it. The leftmost match starts at the first line start from which only
 * whitespace leads to the "//", so blank lines before the comment go too. */
static size_t match_config_js(const uint8_t *in, size_t len, size_t at, const void *arg,
                              size_t *start)
{
    static const char key[] = "JAEGER_CONFIG_JS";
    (void)arg;
    if (len - at < 2 || in[at] != '/' || in[at + 1] != '/') {
        return 0;
    }
    size_t b = at; /* only whitespace back to a line start? */
    while (b > 0 && go_space(in[b - 1])) {
        b--;
    }
    if (b > 0) {
        while (b < at && in[b] != '\n') {
            b++;
        }
        if (b == at) {
            return 0; /* something else on the line before the comment */
        }
        b++;
    }
    size_t i = at + 2;
    while (i < len && go_space(in[i])) {
        i++;
    }
    if (len - i < sizeof(key) - 1 || strncasecmp((const char *)in + i, key, sizeof(key) - 1)) {
        return 0;
    }
    i += sizeof(key) - 1;
    while (i < len && in[i] != '\n') {
        i++;
    }
    if (i == len) {
        return 0; /* the pattern needs the newline */
    }
    i++;
    while (i < len && in[i] != '\n') {
        i++;
    }
    *start = b;
    return i - at;
}

static int repl_str(th_buf_t *out, const void *arg)
{
    return append_str(out, arg);
}

/* `<base href="` + base + `/"` */
static int repl_base_href(th_buf_t *out, const void *arg)
{
    int rc = append_str(out, "<base href=\"");
    if (rc == 0) {
        rc = append_html_attr(out, arg);
    }
    return rc == 0 ? append_str(out, "/\"") : rc;
}

struct js_lit {
    char quote;
    const char *value;
};

static int repl_js_lit(th_buf_t *out, const void *arg)
{
    const struct js_lit *l = arg;
    int rc = th_buf_append(out, &l->quote, 1);
    if (rc == 0) {
        rc = append_js_str(out, l->value);
    }
    return rc == 0 ? th_buf_append(out, &l->quote, 1) : rc;
}

struct assign_repl {
    const char *lhs;
    const char *value;
};

/* `LHS = value;` */
static int repl_assign(th_buf_t *out, const void *arg)
{
    const struct assign_repl *a = arg;
    return th_buf_printf(out, "%s = %s;", a->lhs, a->value);
}

static int start_copy(const uint8_t *in, size_t len, th_buf_t *out)
{
    *out = (th_buf_t){0};
    return len > 0 ? th_buf_append(out, in, len) : 0;
}

int th_jaeger_ui_inject_builtin(const uint8_t *in, size_t len, const char *base_path, th_buf_t *out)
{
    const struct js_lit sq = {'\'', base_path}, dq = {'"', base_path};
    int rc = start_copy(in, len, out);
    if (rc == 0 && *base_path) {
        rc = pass(out, match_lit, TH_JAEGER_UI_BASE_HREF, repl_base_href, base_path);
    }
    if (rc == 0) {
        rc = pass(out, match_lit, "'" TH_JAEGER_UI_BASE_PATH_MARKER "'", repl_js_lit, &sq);
    }
    if (rc == 0) {
        rc = pass(out, match_lit, "\"" TH_JAEGER_UI_BASE_PATH_MARKER "\"", repl_js_lit, &dq);
    }
    if (rc != 0) {
        th_buf_free(out);
    }
    return rc;
}

int th_jaeger_ui_inject_jaeger(const uint8_t *in, size_t len, const char *config_js,
                               const char *config_json, const char *base_path, th_buf_t *out)
{
    static const struct assign config = {"JAEGER_CONFIG", "DEFAULT_CONFIG"};
    static const struct assign version = {"JAEGER_VERSION", "DEFAULT_VERSION"};
    static const struct assign backend = {"JAEGER_BACKEND_CAPABILITIES",
                                          "DEFAULT_BACKEND_CAPABILITIES"};
    static const struct assign storage = {"JAEGER_STORAGE_CAPABILITIES",
                                          "DEFAULT_STORAGE_CAPABILITIES"};
    const struct assign_repl config_r = {"JAEGER_CONFIG", config_json};
    const struct assign_repl version_r = {"JAEGER_VERSION", JAEGER_VERSION_JSON};
    const struct assign_repl backend_r = {"JAEGER_BACKEND_CAPABILITIES", JAEGER_BACKEND_CAPS_JSON};
    const struct assign_repl storage_r = {"JAEGER_STORAGE_CAPABILITIES", JAEGER_STORAGE_CAPS_JSON};
    /* The order of Jaeger's static handler: config, version, capabilities, base. */
    int rc = start_copy(in, len, out);
    if (rc == 0 && config_json) {
        rc = pass(out, match_assign, &config, repl_assign, &config_r);
    }
    if (rc == 0 && config_js) {
        rc = pass(out, match_config_js, NULL, repl_str, config_js);
    }
    if (rc == 0) {
        rc = pass(out, match_assign, &version, repl_assign, &version_r);
    }
    if (rc == 0) {
        rc = pass(out, match_assign, &backend, repl_assign, &backend_r);
    }
    if (rc == 0) {
        rc = pass(out, match_assign, &storage, repl_assign, &storage_r);
    }
    if (rc == 0 && *base_path) {
        rc = pass(out, match_lit, TH_JAEGER_UI_BASE_HREF, repl_base_href, base_path);
    }
    if (rc != 0) {
        th_buf_free(out);
    }
    return rc;
}

/* ---- The UI config file ------------------------------------------------------------------- */

/* A JSON string's raw bytes (escapes kept), with what could end a <script> escaped as Go's
 * encoding/json does: <, >, &, U+2028 and U+2029. */
static int append_json_raw(th_buf_t *b, const th_json_tok_t *t)
{
    int rc = th_buf_append(b, "\"", 1);
    for (size_t i = 0; rc == 0 && i < t->len; i++) {
        uint8_t c = t->ptr[i];
        if (c == '<' || c == '>' || c == '&') {
            rc = th_buf_printf(b, "\\u%04x", c);
        } else if (c == 0xe2 && i + 2 < t->len && t->ptr[i + 1] == 0x80 &&
                   (t->ptr[i + 2] == 0xa8 || t->ptr[i + 2] == 0xa9)) {
            rc = th_buf_printf(b, "\\u%04x", t->ptr[i + 2] == 0xa8 ? 0x2028 : 0x2029);
            i += 2;
        } else {
            rc = th_buf_append(b, &c, 1);
        }
    }
    return rc == 0 ? th_buf_append(b, "\"", 1) : rc;
}

#define JSON_DEPTH 128

/* Validate and write back compact JSON; the top level must be an object (or null, which
 * Go's json.Unmarshal into a map also accepts). */
static int compact_json(const uint8_t *in, size_t len, th_buf_t *out, const char **why)
{
    th_json_reader_t r;
    th_json_tok_t t;
    bool comma[JSON_DEPTH + 1] = {false};
    int d = 0;
    bool after_key = false;
    int rc;
    th_json_reader_init(&r, in, len, JSON_DEPTH);
    for (bool first = true;; first = false) {
        if ((rc = th_json_next(&r, &t)) != 0) {
            *why = r.errmsg ? r.errmsg : "invalid JSON";
            return rc == TH_ENOMEM ? rc : TH_ECONFIG;
        }
        if (first && t.type != TH_JSON_OBJ_BEGIN && t.type != TH_JSON_NULL) {
            *why = "the top level must be a JSON object";
            return TH_ECONFIG;
        }
        if (t.type == TH_JSON_END) {
            return 0;
        }
        bool closing = t.type == TH_JSON_OBJ_END || t.type == TH_JSON_ARR_END;
        if (closing) {
            d--;
        } else if (!after_key && comma[d]) {
            rc = th_buf_append(out, ",", 1);
        }
        after_key = false;
        switch (t.type) {
        case TH_JSON_OBJ_BEGIN:
        case TH_JSON_ARR_BEGIN:
            rc = rc ? rc : th_buf_append(out, t.type == TH_JSON_OBJ_BEGIN ? "{" : "[", 1);
            comma[d] = true;
            comma[++d] = false;
            break;
        case TH_JSON_OBJ_END:
        case TH_JSON_ARR_END:
            rc = th_buf_append(out, t.type == TH_JSON_OBJ_END ? "}" : "]", 1);
            break;
        case TH_JSON_KEY:
            rc = rc ? rc : append_json_raw(out, &t);
            rc = rc ? rc : th_buf_append(out, ":", 1);
            after_key = true;
            comma[d] = true;
            break;
        case TH_JSON_STRING:
            rc = rc ? rc : append_json_raw(out, &t);
            comma[d] = true;
            break;
        default: /* numbers and literals as written */
            rc = rc ? rc : th_buf_append(out, t.ptr, t.len);
            comma[d] = true;
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
}

/* `function\s+UIConfig(\s)?\(\s?\)(\s)?{`, Jaeger's check of a .js config. */
static bool defines_uiconfig(const char *s)
{
    for (const char *p = strstr(s, "function"); p; p = strstr(p + 1, "function")) {
        const uint8_t *q = (const uint8_t *)p + 8;
        if (!go_space(*q)) {
            continue;
        }
        while (go_space(*q)) {
            q++;
        }
        if (strncmp((const char *)q, "UIConfig", 8) != 0) {
            continue;
        }
        q += 8;
        q += go_space(*q);
        if (*q++ != '(') {
            continue;
        }
        q += go_space(*q);
        if (*q++ != ')') {
            continue;
        }
        q += go_space(*q);
        if (*q == '{') {
            return true;
        }
    }
    return false;
}

int th_jaeger_ui_load_config(const char *path, char **js, char **json, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    th_buf_t b = {0};
    *js = *json = NULL;
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    bool is_json = dot && (!slash || dot > slash) && !strcasecmp(dot, ".json");
    bool is_js = dot && (!slash || dot > slash) && !strcasecmp(dot, ".js");
    if (!is_json && !is_js) {
        snprintf(err, errlen, "unrecognized UI config file format, expecting .js or .json file: %s",
                 path);
        return TH_ECONFIG;
    }
    int rc = th_file_read(path, MAX_CONFIG, (char **)&data, &len);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read UI config file %s: %s", path,
                 rc == TH_E2BIG ? "larger than 1 MiB"
                 : rc == TH_EIO ? strerror(errno)
                                : th_strerror(rc));
        rc = rc == TH_ENOMEM ? rc : TH_ECONFIG;
        goto out;
    }
    if (is_json) {
        const char *why = NULL;
        rc = compact_json(data, len, &b, &why);
        if (rc == 0) {
            rc = th_buf_append(&b, "", 1);
        }
        if (rc != 0) {
            snprintf(err, errlen, "cannot parse UI config file %s: %s", path,
                     why ? why : th_strerror(rc));
            goto out;
        }
        *json = (char *)b.ptr;
        b = (th_buf_t){0};
        goto out;
    }
    size_t s = 0, e = len;
    while (s < e && go_space(data[s])) {
        s++;
    }
    while (e > s && go_space(data[e - 1])) {
        e--;
    }
    data[e] = '\0';
    if (!defines_uiconfig((const char *)data + s)) {
        snprintf(err, errlen, "UI config file must define function UIConfig(): %s", path);
        rc = TH_ECONFIG;
        goto out;
    }
    *js = th_strndup((const char *)data + s, e - s);
    rc = *js ? 0 : TH_ENOMEM;
out:
    th_buf_free(&b);
    th_free(data);
    return rc;
}

/* ---- The file table ----------------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static struct entry *push(th_jaeger_ui_t *ui)
{
    if (ui->n == ui->cap) {
        size_t cap = ui->cap ? ui->cap * 2 : 64;
        struct entry *f = th_realloc(ui->files, cap * sizeof(*f));
        if (!f) {
            return NULL;
        }
        ui->files = f;
        ui->cap = cap;
    }
    struct entry *e = &ui->files[ui->n++];
    *e = (struct entry){0};
    return e;
}

static int load_builtin(th_jaeger_ui_t *ui, const uint8_t **index, size_t *index_len)
{
    *index = (const uint8_t *)fallback_page;
    *index_len = sizeof(fallback_page) - 1;
    for (size_t i = 0; i < th_jaeger_ui_builtin_count; i++) {
        const struct th_jaeger_ui_file *f = &th_jaeger_ui_builtin[i];
        if (!strcmp(f->path, "index.html")) {
            *index = f->data;
            *index_len = f->len;
            continue;
        }
        struct entry *e = push(ui);
        if (!e) {
            return TH_ENOMEM;
        }
        e->path = f->path;
        e->ctype = f->content_type;
        e->data = f->data;
        e->len = f->len;
        snprintf(e->etag, sizeof(e->etag), "%s", f->etag);
    }
    return 0;
}

/* Is @p real (a realpath) the root or below it? */
static bool inside(const char *root, const char *real)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') {
        return true;
    }
    return !strncmp(real, root, n) && (real[n] == '\0' || real[n] == '/');
}

struct loader {
    th_jaeger_ui_t *ui;
    const char *root; /* realpath of the assets directory */
    char *err;
    size_t errlen;
};

static int load_dir(struct loader *L, const char *dir, const char *rel, int depth)
{
    int rc = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(L->err, L->errlen, "cannot open directory %s: %s", dir, strerror(errno));
        return TH_ECONFIG;
    }
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        /* dot files (.git, editor state) are not part of a UI build */
        if (de->d_name[0] == '.') {
            continue;
        }
        char full[PATH_MAX], name[PATH_MAX];
        if (snprintf(full, sizeof(full), "%s/%s", dir, de->d_name) >= (int)sizeof(full) ||
            snprintf(name, sizeof(name), "%s%s", rel, de->d_name) >= (int)sizeof(name)) {
            continue;
        }
        struct stat st;
        if (lstat(full, &st) != 0) {
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            /* a link is followed only when it resolves inside the directory */
            char real[PATH_MAX];
            if (!realpath(full, real) || !inside(L->root, real) || stat(real, &st) != 0) {
                continue;
            }
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH) {
                char sub[PATH_MAX];
                snprintf(sub, sizeof(sub), "%s/", name);
                rc = load_dir(L, full, sub, depth + 1);
            }
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;
        }
        th_jaeger_ui_t *ui = L->ui;
        if (ui->n >= TH_JAEGER_UI_MAX_FILES) {
            snprintf(L->err, L->errlen, "%s: more than %d files", L->root, TH_JAEGER_UI_MAX_FILES);
            rc = TH_E2BIG;
            break;
        }
        uint8_t *data = NULL;
        size_t len = 0;
        rc = th_file_read(full, TH_JAEGER_UI_MAX_ASSETS - ui->total, (char **)&data, &len);
        if (rc == TH_E2BIG) {
            snprintf(L->err, L->errlen, "%s: the files take more than %zu MiB", L->root,
                     TH_JAEGER_UI_MAX_ASSETS >> 20);
            break;
        }
        if (rc != 0) {
            snprintf(L->err, L->errlen, "cannot read %s: %s", full,
                     rc == TH_ENOMEM ? "out of memory" : strerror(errno));
            break;
        }
        char *path = th_strdup(name);
        struct entry *e = path ? push(ui) : NULL;
        if (!e) {
            th_free(path);
            th_free(data);
            rc = TH_ENOMEM;
            break;
        }
        e->path = path;
        e->data = data;
        e->len = len;
        e->owned = true;
        e->ctype = th_jaeger_ui_content_type(path);
        ui->total += len;
        rc = make_etag(data, len, "", e->etag, sizeof(e->etag));
    }
    closedir(d);
    return rc;
}

static int load_assets(th_jaeger_ui_t *ui, const char *dir, char *err, size_t errlen)
{
    char root[PATH_MAX];
    if (!realpath(dir, root)) {
        snprintf(err, errlen, "ui::assets_path: %s: %s", dir, strerror(errno));
        return TH_ECONFIG;
    }
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "ui::assets_path: %s is not a directory", dir);
        return TH_ECONFIG;
    }
    struct loader L = {.ui = ui, .root = root, .err = err, .errlen = errlen};
    int rc = load_dir(&L, root, "", 0);
    if (rc != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "ui::assets_path: %s", why);
    }
    return rc;
}

/* ---- Create / destroy --------------------------------------------------------------------- */

static void free_entry(struct entry *e)
{
    if (e->owned) {
        th_free((void *)e->path);
        th_free((void *)e->data);
    }
    th_free(e->gz);
}

void th_jaeger_ui_destroy(th_jaeger_ui_t *ui)
{
    if (!ui) {
        return;
    }
    for (size_t i = 0; i < ui->n; i++) {
        free_entry(&ui->files[i]);
    }
    th_free(ui->files);
    th_free(ui->page.gz);
    th_buf_free(&ui->page_buf);
    for (size_t i = 0; i < ui->n_old; i++) {
        th_buf_free(&ui->old[i].buf);
        th_free(ui->old[i].gz);
    }
    th_free(ui->old);
    th_free(ui->config_path);
    th_free(ui->raw_index);
    th_free(ui->base);
    th_free(ui);
}

/* The page entry of page_buf: its ETag and gzip variant. */
static int page_finish(th_jaeger_ui_t *ui)
{
    ui->page = (struct entry){.path = "index.html",
                              .ctype = "text/html; charset=utf-8",
                              .data = ui->page_buf.ptr,
                              .len = ui->page_buf.len};
    int rc = make_etag(ui->page.data, ui->page.len, "", ui->page.etag, sizeof(ui->page.etag));
    return rc == 0 ? add_gzip(&ui->page) : rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int th_jaeger_ui_reload(th_jaeger_ui_t *ui, uint64_t now_ns, char *err, size_t errlen)
{
    if (!ui || !ui->config_path || now_ns < ui->next_check_ns) {
        return 0;
    }
    ui->next_check_ns = now_ns + 1000000000ull;
    struct stat st;
    if (stat(ui->config_path, &st) != 0) {
        memset(&st, 0, sizeof(st));
    }
    if (same_file(&st, &ui->config_st)) {
        return 0;
    }
    /* Looked at once per change, whatever comes of it: a bad edit is reported once, and the
     * page keeps the last good config until the file changes again. */
    ui->config_st = st;
    char *js = NULL, *json = NULL;
    char why[1024];
    int rc = th_jaeger_ui_load_config(ui->config_path, &js, &json, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "ui::config_file: %s; the page keeps the previous config", why);
        return rc;
    }
    struct old_page *old = th_realloc(ui->old, (ui->n_old + 1) * sizeof(*old));
    th_buf_t page = {0};
    rc = old ? 0 : TH_ENOMEM;
    if (old) {
        ui->old = old;
        rc =
            th_jaeger_ui_inject_jaeger(ui->raw_index, ui->raw_index_len, js, json, ui->base, &page);
    }
    th_free(js);
    th_free(json);
    if (rc != 0) {
        th_buf_free(&page);
        snprintf(err, errlen, "ui::config_file: %s: out of memory", ui->config_path);
        return rc;
    }
    /* Responses in flight point into the current page: it is kept until destroy (one per
     * change of the file, a few kilobytes each). */
    ui->old[ui->n_old++] = (struct old_page){.buf = ui->page_buf, .gz = ui->page.gz};
    ui->page_buf = page;
    rc = page_finish(ui);
    if (rc != 0) {
        snprintf(err, errlen, "ui::config_file: %s: out of memory", ui->config_path);
    }
    return rc == 0 ? 1 : rc;
}

static const struct entry *find(const th_jaeger_ui_t *ui, const char *name)
{
    struct entry key = {.path = name};
    return ui->n ? bsearch(&key, ui->files, ui->n, sizeof(key), cmp_entry) : NULL;
}

int th_jaeger_ui_create(const struct th_jaeger_ui_cfg *cfg, th_jaeger_ui_t **out, char *err,
                        size_t errlen)
{
    char *config_js = NULL, *config_json = NULL;
    const uint8_t *index = NULL;
    size_t index_len = 0;
    bool assets = cfg->assets_path && *cfg->assets_path;
    int rc;
    th_jaeger_ui_t *ui = th_calloc(1, sizeof(*ui));
    if (!ui || !(ui->base = th_strdup(cfg->base_path ? cfg->base_path : ""))) {
        snprintf(err, errlen, "out of memory");
        rc = TH_ENOMEM;
        goto fail;
    }
    ui->log_access = cfg->log_access;
    if (cfg->config_file && *cfg->config_file) {
        char why[1024];
        rc = th_jaeger_ui_load_config(cfg->config_file, &config_js, &config_json, why, sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "ui::config_file: %s", why);
            goto fail;
        }
    }
    if (assets) {
        if ((rc = load_assets(ui, cfg->assets_path, err, errlen)) != 0) {
            goto fail;
        }
    } else if ((rc = load_builtin(ui, &index, &index_len)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    qsort(ui->files, ui->n, sizeof(*ui->files), cmp_entry);
    if (assets) {
        /* index.html is only ever served injected, so it leaves the file table */
        const struct entry *ix = find(ui, "index.html");
        if (!ix) {
            snprintf(err, errlen,
                     "ui::assets_path: %s has no index.html (is it a Jaeger UI "
                     "build, e.g. jaeger-ui/packages/jaeger-ui/build?)",
                     cfg->assets_path);
            rc = TH_ECONFIG;
            goto fail;
        }
        size_t at = (size_t)(ix - ui->files);
        ui->raw_index = th_malloc(ix->len ? ix->len : 1);
        rc = ui->raw_index ? 0 : TH_ENOMEM;
        if (rc == 0) {
            memcpy(ui->raw_index, ix->data, ix->len);
            ui->raw_index_len = ix->len;
            rc = th_jaeger_ui_inject_jaeger(ix->data, ix->len, config_js, config_json, ui->base,
                                            &ui->page_buf);
        }
        free_entry(&ui->files[at]);
        memmove(&ui->files[at], &ui->files[at + 1], (ui->n - at - 1) * sizeof(*ui->files));
        ui->n--;
        if (rc == 0 && cfg->config_file && *cfg->config_file) {
            ui->config_path = th_strdup(cfg->config_file);
            rc = ui->config_path ? 0 : TH_ENOMEM;
            if (stat(cfg->config_file, &ui->config_st) != 0) {
                memset(&ui->config_st, 0, sizeof(ui->config_st));
            }
        }
    } else {
        rc = th_jaeger_ui_inject_builtin(index, index_len, ui->base, &ui->page_buf);
    }
    if (rc == 0) {
        rc = page_finish(ui);
    }
    for (size_t i = 0; rc == 0 && i < ui->n; i++) {
        rc = add_gzip(&ui->files[i]);
    }
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    th_free(config_js);
    th_free(config_json);
    *out = ui;
    return 0;
fail:
    th_free(config_js);
    th_free(config_json);
    th_jaeger_ui_destroy(ui);
    return rc;
}

/* ---- Serving ------------------------------------------------------------------------------ */

static bool token_eq(const char *p, size_t n, const char *tok)
{
    return strlen(tok) == n && !strncasecmp(p, tok, n);
}

/* Does Accept-Encoding allow gzip? A q of 0 refuses; `*` stands for gzip when gzip is not
 * named. */
static bool accepts_gzip(const char *h, size_t len)
{
    int gzip = -1, star = -1;
    for (size_t i = 0; h && i < len;) {
        while (i < len && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < len && h[i] != ',' && h[i] != ';' && h[i] != ' ' && h[i] != '\t') {
            i++;
        }
        size_t tl = i - s;
        bool zero = false;
        while (i < len && h[i] != ',') { /* parameters: only q matters */
            if ((h[i] == 'q' || h[i] == 'Q') && i + 1 < len && h[i + 1] == '=') {
                size_t v = i + 2;
                zero = v < len && h[v] == '0';
                for (v++; zero && v < len && h[v] != ',' && h[v] != ';' && h[v] != ' '; v++) {
                    zero = h[v] == '.' || h[v] == '0';
                }
            }
            i++;
        }
        if (token_eq(h + s, tl, "gzip") || token_eq(h + s, tl, "x-gzip")) {
            gzip = !zero;
        } else if (token_eq(h + s, tl, "*")) {
            star = !zero;
        }
    }
    return gzip == 1 || (gzip == -1 && star == 1);
}

/* If-None-Match: `*` or a list of entity tags, compared weakly (W/ ignored) as RFC 9110
 * says for this header. */
static bool etag_matches(const char *h, size_t len, const char *etag)
{
    size_t el = strlen(etag);
    for (size_t i = 0; h && i < len;) {
        while (i < len && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) {
            i++;
        }
        if (i < len && h[i] == '*') {
            return true;
        }
        if (i + 1 < len && h[i] == 'W' && h[i + 1] == '/') {
            i += 2;
        }
        size_t s = i;
        if (i < len && h[i] == '"') {
            for (i++; i < len && h[i] != '"'; i++) {
            }
            i += i < len;
        } else {
            while (i < len && h[i] != ',') {
                i++;
            }
        }
        if (i - s == el && !memcmp(h + s, etag, el)) {
            return true;
        }
    }
    return false;
}

static void plain(struct th_jaeger_ui_response *resp, int status, const char *msg, size_t len)
{
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    resp->nosniff = true;
    resp->body = (const uint8_t *)msg;
    resp->len = len;
}

#define PLAIN(resp, status, msg) plain((resp), (status), (msg), sizeof(msg) - 1)

static void send_entry(const struct th_jaeger_ui_request *req, const struct entry *e,
                       struct th_jaeger_ui_response *resp)
{
    bool gz = e->gz && accepts_gzip(req->accept_encoding, req->accept_encoding_len);
    resp->etag = gz ? e->gz_etag : e->etag;
    resp->content_encoding = gz ? "gzip" : NULL;
    resp->vary = e->gz ? "Accept-Encoding" : NULL;
    /* Names carry no content hash, so a cached copy must be revalidated: the ETag makes
     * that a 304 without a body. */
    resp->cache_control = "no-cache";
    resp->content_type = e->ctype;
    resp->nosniff = true;
    resp->body = gz ? e->gz : e->data;
    resp->len = gz ? e->gz_len : e->len;
    resp->status = etag_matches(req->if_none_match, req->if_none_match_len, resp->etag) ? 304 : 200;
}

int th_jaeger_ui_serve(const th_jaeger_ui_t *ui, const struct th_jaeger_ui_request *req,
                       struct th_jaeger_ui_response *resp)
{
    size_t bl = strlen(ui->base);
    const char *p = req->path;
    size_t pl = req->path_len;
    *resp = (struct th_jaeger_ui_response){.log_access = ui->log_access};
    if (pl == 0 || pl < bl || memcmp(p, ui->base, bl) != 0 || (pl > bl && p[bl] != '/')) {
        return TH_DECLINED; /* outside the base path */
    }
    const char *rel = p + bl;
    size_t rl = pl - bl;
    /* the API's, before any decoding, so its own 400 and 404 answers apply */
    if (rl >= 4 && !memcmp(rel, "/api", 4) && (rl == 4 || rel[4] == '/')) {
        return TH_DECLINED;
    }
    bool get = req->method_len == 3 && !memcmp(req->method, "GET", 3);
    bool head = req->method_len == 4 && !memcmp(req->method, "HEAD", 4);
    if (rl == 0) {
        /* {base} without the slash: relative asset URLs need the directory form */
        int n = snprintf(resp->location, sizeof(resp->location), "%s/", ui->base);
        if (req->query && req->query_len > 0 &&
            (size_t)n + 1 + req->query_len < sizeof(resp->location)) {
            snprintf(resp->location + n, sizeof(resp->location) - (size_t)n, "?%.*s",
                     (int)req->query_len, req->query);
        }
        resp->status = get || head ? 301 : 308;
        return 0;
    }
    char name[MAX_NAME];
    int rc = th_jaeger_ui_resolve(rel, rl, name, sizeof(name));
    if (rc == TH_E2BIG) {
        PLAIN(resp, 414, msg_414);
        return 0;
    }
    if (rc != 0) {
        PLAIN(resp, 400, msg_400);
        return 0;
    }
    if (!strcmp(name, "api") || !strncmp(name, "api/", 4)) {
        return TH_DECLINED; /* an encoded "api": the API decodes segments the same way */
    }
    if (!get && !head) {
        PLAIN(resp, 405, msg_405);
        resp->allow = "GET, HEAD";
        return 0;
    }
    const struct entry *e = NULL;
    if (*name && strcmp(name, "index.html") != 0) {
        e = find(ui, name);
        if (!e && !strncmp(name, "static/", 7)) {
            PLAIN(resp, 404, msg_404); /* a missing asset is not a page */
            return 0;
        }
    }
    send_entry(req, e ? e : &ui->page, resp);
    return 0;
}
