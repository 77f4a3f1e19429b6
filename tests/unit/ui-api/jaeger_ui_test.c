/*
 * Tests of the web UI server side (ui-api/jaeger/jaeger_ui.c): the embedded table (types and
 * ETags agree with the C side), path resolution and traversal, the built-in and Jaeger
 * index.html substitutions, UI config files, loading an assets directory (symlinks, dot
 * files, missing index), and serving: API paths declined, SPA fallback, 404 under static/,
 * redirects, 304, gzip negotiation, HEAD and methods; plus allocation failure at every step
 * of th_jaeger_ui_create.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "th/otlp.h"
#include "ui-api/jaeger/jaeger_ui.h"

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static void make_dir(const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static const char *tmp_path(const char *rel)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, rel);
    return p[k];
}

/* Jaeger UI's index.html, reduced to the lines the server rewrites (v2.20 plus the older
 * base tag and storage capabilities). */
static const char jaeger_index[] =
    "<!doctype html>\n<html><head>\n"
    "<base href=\"/\" data-inject-target=\"BASE_URL\" />\n"
    "<script>\n"
    "      // Important! Do not alter the following line; query-service looks for that exact "
    "pattern.\n"
    "      // JAEGER_CONFIG_JS\n"
    "      // the line above may be replaced by a UIConfig function.\n"
    "      function getJaegerUiConfig() {\n"
    "        const DEFAULT_CONFIG = null;\n"
    "        const JAEGER_CONFIG = DEFAULT_CONFIG;\n"
    "        return JAEGER_CONFIG;\n"
    "      }\n"
    "      function getJaegerStorageCapabilities() {\n"
    "        const JAEGER_STORAGE_CAPABILITIES = DEFAULT_STORAGE_CAPABILITIES;\n"
    "      }\n"
    "      function getJaegerBackendCapabilities() {\n"
    "        const JAEGER_BACKEND_CAPABILITIES  =  DEFAULT_BACKEND_CAPABILITIES;\n"
    "      }\n"
    "      function getJaegerVersion() {\n"
    "        const JAEGER_VERSION = DEFAULT_VERSION;\n"
    "      }\n"
    "</script></head><body></body></html>\n";

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/th_jaeger_ui_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return -1;
    }
    /* assets/: a Jaeger UI build; outside.txt and a link to it must never be served */
    make_dir("assets");
    make_dir("assets/static");
    make_dir("assets/.git");
    write_file("assets/index.html", jaeger_index);
    write_file("assets/static/main.js", "console.log('jaeger ui');\n");
    write_file("assets/static/big.css", "");
    write_file("assets/.git/config", "secret\n");
    write_file("assets/.hidden", "secret\n");
    write_file("assets/favicon.ico", "ico");
    write_file("outside.txt", "top secret\n");
    char target[512], link[512];
    snprintf(target, sizeof(target), "%s/outside.txt", tmpdir);
    snprintf(link, sizeof(link), "%s/assets/static/leak.txt", tmpdir);
    if (symlink(target, link) != 0) {
        return -1;
    }
    snprintf(link, sizeof(link), "%s/assets/static/alias.js", tmpdir);
    if (symlink("main.js", link) != 0) {
        return -1;
    }
    snprintf(link, sizeof(link), "%s/assets/up", tmpdir);
    if (symlink("..", link) != 0) {
        return -1;
    }
    /* a CSS file large and repetitive enough to get a gzip variant */
    char css[8192] = "";
    for (int i = 0; i < 100; i++) {
        strcat(css, ".span-row { display: flex; color: #123456; }\n");
    }
    write_file("assets/static/big.css", css);
    make_dir("noindex");
    write_file("noindex/app.js", "x");
    write_file("ui.json", " { \"menu\" : [ {\"label\": \"</script><b>&\"} ], \"n\": 1.5e3,"
                          " \"e\": {} , \"a\": [ ], \"t\": true, \"z\": null } ");
    write_file("ui.js", "\n  function UIConfig() { return {a: 1}; }\n\n");
    write_file("bad.json", "{\"a\": }");
    write_file("array.json", "[1, 2]");
    write_file("bad.js", "var x = 1;");
    write_file("ui.yaml", "a: 1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- The embedded table ------------------------------------------------------------------ */

static void test_builtin_table(void **state)
{
    (void)state;
    assert_true(th_jaeger_ui_builtin_count > 0);
    bool has_index = false;
    for (size_t i = 0; i < th_jaeger_ui_builtin_count; i++) {
        const struct th_jaeger_ui_file *f = &th_jaeger_ui_builtin[i];
        /* the build's type table and the C one agree, and the ETag is the SHA-256 prefix */
        assert_string_equal(f->content_type, th_jaeger_ui_content_type(f->path));
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        assert_int_equal(EVP_Digest(f->data, f->len, md, &n, EVP_sha256(), NULL), 1);
        char want[40] = "\"";
        for (int k = 0; k < 16; k++) {
            snprintf(want + 1 + 2 * k, 3, "%02x", md[k]);
        }
        strcat(want, "\"");
        assert_string_equal(f->etag, want);
        assert_int_equal(f->data[f->len], 0);
        if (i > 0) {
            assert_true(strcmp(th_jaeger_ui_builtin[i - 1].path, f->path) < 0);
        }
        has_index |= !strcmp(f->path, "index.html");
        /* the README is the contract, not an asset */
        assert_string_not_equal(f->path, "README.md");
    }
    assert_true(has_index);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_string_equal(th_jaeger_ui_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(th_jaeger_ui_content_type("static/app.JS"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(th_jaeger_ui_content_type("a.css"), "text/css; charset=utf-8");
    assert_string_equal(th_jaeger_ui_content_type("x.svg"), "image/svg+xml");
    assert_string_equal(th_jaeger_ui_content_type("f.woff2"), "font/woff2");
    assert_string_equal(th_jaeger_ui_content_type("m.js.map"), "application/json");
    assert_string_equal(th_jaeger_ui_content_type("noext"), "application/octet-stream");
    assert_string_equal(th_jaeger_ui_content_type("dir.js/noext"), "application/octet-stream");
}

/* ---- Paths -------------------------------------------------------------------------------- */

static int resolve(const char *p, char *out)
{
    return th_jaeger_ui_resolve(p, strlen(p), out, 64);
}

static void test_resolve(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(resolve("/", out), 0);
    assert_string_equal(out, "");
    assert_int_equal(resolve("/static/app.js", out), 0);
    assert_string_equal(out, "static/app.js");
    assert_int_equal(resolve("/static/a%20b%2Fc", out), 0);
    assert_string_equal(out, "static/a b/c");
    assert_int_equal(resolve("/trace/abc...def", out), 0); /* dots inside a segment are fine */
    assert_string_equal(out, "trace/abc...def");
    assert_int_equal(resolve("/static/.x", out), 0);
    /* traversal, however spelled */
    assert_int_equal(resolve("/..", out), TH_EINVAL);
    assert_int_equal(resolve("/static/../../etc/passwd", out), TH_EINVAL);
    assert_int_equal(resolve("/%2e%2e/etc/passwd", out), TH_EINVAL);
    assert_int_equal(resolve("/%2E./x", out), TH_EINVAL);
    assert_int_equal(resolve("/static/..%2fx", out), TH_EINVAL);
    assert_int_equal(resolve("/static/./app.js", out), TH_EINVAL);
    assert_int_equal(resolve("/static/.", out), TH_EINVAL);
    assert_int_equal(resolve("/a\\..\\b", out), TH_EINVAL);
    assert_int_equal(resolve("/a%5c..", out), TH_EINVAL);
    assert_int_equal(resolve("/a%00b", out), TH_EINVAL);
    /* bad escapes */
    assert_int_equal(resolve("/a%2", out), TH_EINVAL);
    assert_int_equal(resolve("/a%zz", out), TH_EINVAL);
    assert_int_equal(resolve("/a%", out), TH_EINVAL);
    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(resolve(big, out), TH_E2BIG);
}

/* ---- Injection ---------------------------------------------------------------------------- */

static char *inject_builtin(const char *in, const char *base)
{
    th_buf_t b;
    assert_int_equal(th_jaeger_ui_inject_builtin((const uint8_t *)in, strlen(in), base, &b), 0);
    assert_int_equal(th_buf_append(&b, "", 1), 0);
    return (char *)b.ptr;
}

static void test_inject_builtin(void **state)
{
    (void)state;
    const char *page = "<base href=\"/\"><script>var b = 'TH_BASE_PATH', c = \"TH_BASE_PATH\";"
                       "// TH_BASE_PATH stays\nvar d = 'TH_BASE_PATHX';</script>";
    char *s = inject_builtin(page, "");
    assert_string_equal(s, "<base href=\"/\"><script>var b = '', c = \"\";// TH_BASE_PATH stays\n"
                           "var d = 'TH_BASE_PATHX';</script>");
    free(s);
    s = inject_builtin(page, "/jaeger");
    assert_string_equal(s, "<base href=\"/jaeger/\"><script>var b = '/jaeger', c = "
                           "\"/jaeger\";// TH_BASE_PATH stays\nvar d = 'TH_BASE_PATHX';</script>");
    free(s);
    /* a base path cannot break out of the attribute or the script */
    s = inject_builtin("<base href=\"/\" /> 'TH_BASE_PATH'", "/a\"b</script>'");
    assert_string_equal(s, "<base href=\"/a&quot;b&lt;/script&gt;&#39;/\" /> "
                           "'/a\\u0022b\\u003c/script\\u003e\\u0027'");
    free(s);
    s = inject_builtin("no markers", "/x");
    assert_string_equal(s, "no markers");
    free(s);
}

static char *inject_jaeger(const char *in, const char *js, const char *json, const char *base)
{
    th_buf_t b;
    assert_int_equal(
        th_jaeger_ui_inject_jaeger((const uint8_t *)in, strlen(in), js, json, base, &b), 0);
    assert_int_equal(th_buf_append(&b, "", 1), 0);
    return (char *)b.ptr;
}

#define VERSION_JSON                                                                               \
    "JAEGER_VERSION = {\"gitCommit\":\"\",\"gitVersion\":\"tracehouse-" TH_VERSION                 \
    "\",\"buildDate\":\"\"};"

static void test_inject_jaeger(void **state)
{
    (void)state;
    char *s = inject_jaeger(jaeger_index, NULL, "{\"a\":1}", "/jaeger");
    assert_non_null(strstr(s, "<base href=\"/jaeger/\" data-inject-target"));
    assert_non_null(strstr(s, "const JAEGER_CONFIG = {\"a\":1};\n"));
    assert_null(strstr(s, "DEFAULT_CONFIG;"));
    assert_non_null(strstr(s, "// JAEGER_CONFIG_JS\n")); /* JSON config: the JS hook stays */
    assert_non_null(strstr(s, "const " VERSION_JSON));
    assert_non_null(strstr(s, "const JAEGER_BACKEND_CAPABILITIES = {\"archiveStorage\":false,"
                              "\"metricsStorage\":false,\"searchWithoutServiceName\":false,"
                              "\"aiAssistant\":false};"));
    assert_non_null(strstr(s, "const JAEGER_STORAGE_CAPABILITIES = {\"archiveStorage\":false,"
                              "\"metricsStorage\":false};"));
    free(s);

    /* no config, no base: config untouched, <base> untouched, the rest injected */
    s = inject_jaeger(jaeger_index, NULL, NULL, "");
    assert_non_null(strstr(s, "const JAEGER_CONFIG = DEFAULT_CONFIG;"));
    assert_non_null(strstr(s, "<base href=\"/\" data-inject-target"));
    assert_non_null(strstr(s, VERSION_JSON));
    free(s);

    /* JS config: the comment line and the line after it are replaced */
    s = inject_jaeger(jaeger_index, "function UIConfig() { return {}; }", NULL, "");
    assert_non_null(strstr(s, "exact pattern.\nfunction UIConfig() { return {}; }\n"
                              "      function getJaegerUiConfig() {"));
    assert_null(strstr(s, "JAEGER_CONFIG_JS"));
    assert_null(strstr(s, "the line above"));
    free(s);

    /* Go's (?im)^\s*: leading blank lines go too, the match is case-insensitive, and every
     * occurrence is replaced; a comment after code on its line is not the pattern */
    s = inject_jaeger("a\n\n  \n  // jaeger_config_js x\nnext\nb\n//JAEGER_CONFIG_JS\n\nc\n"
                      "x; // JAEGER_CONFIG_JS\nd\n// JAEGER_CONFIG_JS",
                      "JS", NULL, "");
    assert_string_equal(s, "a\nJS\nb\nJS\nc\nx; // JAEGER_CONFIG_JS\nd\n// JAEGER_CONFIG_JS");
    free(s);

    /* the assignment pattern: spaces only, and the semicolon is required */
    s = inject_jaeger("JAEGER_VERSION=DEFAULT_VERSION; JAEGER_VERSION\t= DEFAULT_VERSION; "
                      "JAEGER_VERSION = DEFAULT_VERSION",
                      NULL, NULL, "");
    assert_string_equal(s, VERSION_JSON " JAEGER_VERSION\t= DEFAULT_VERSION; JAEGER_VERSION = "
                                        "DEFAULT_VERSION");
    free(s);
}

/* ---- Config files ------------------------------------------------------------------------- */

static void test_config_files(void **state)
{
    (void)state;
    char *js, *json, err[512];
    assert_int_equal(th_jaeger_ui_load_config(tmp_path("ui.json"), &js, &json, err, sizeof(err)),
                     0);
    assert_null(js);
    /* compact, and nothing in it can close the <script> it is injected into */
    assert_string_equal(json, "{\"menu\":[{\"label\":\"\\u003c/script\\u003e\\u003cb\\u003e"
                              "\\u0026\"}],\"n\":1.5e3,\"e\":{},\"a\":[],\"t\":true,\"z\":null}");
    free(json);
    assert_int_equal(th_jaeger_ui_load_config(tmp_path("ui.js"), &js, &json, err, sizeof(err)), 0);
    assert_null(json);
    assert_string_equal(js, "function UIConfig() { return {a: 1}; }");
    free(js);

    assert_int_equal(th_jaeger_ui_load_config(tmp_path("bad.json"), &js, &json, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "cannot parse UI config file"));
    assert_int_equal(th_jaeger_ui_load_config(tmp_path("array.json"), &js, &json, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "must be a JSON object"));
    assert_int_equal(th_jaeger_ui_load_config(tmp_path("bad.js"), &js, &json, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "must define function UIConfig()"));
    assert_int_equal(th_jaeger_ui_load_config(tmp_path("ui.yaml"), &js, &json, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "expecting .js or .json"));
    assert_int_equal(
        th_jaeger_ui_load_config(tmp_path("missing.json"), &js, &json, err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "cannot read UI config file"));
    assert_null(js);
    assert_null(json);
}

/* ---- Serving ------------------------------------------------------------------------------ */

static struct th_jaeger_ui_response resp;

static int serve_h(const th_jaeger_ui_t *ui, const char *method, const char *path, const char *inm,
                   const char *ae)
{
    const char *q = strchr(path, '?');
    struct th_jaeger_ui_request r = {
        .method = method,
        .method_len = strlen(method),
        .path = path,
        .path_len = q ? (size_t)(q - path) : strlen(path),
        .query = q ? q + 1 : NULL,
        .query_len = q ? strlen(q + 1) : 0,
        .if_none_match = inm,
        .if_none_match_len = inm ? strlen(inm) : 0,
        .accept_encoding = ae,
        .accept_encoding_len = ae ? strlen(ae) : 0,
    };
    return th_jaeger_ui_serve(ui, &r, &resp);
}

static int serve(const th_jaeger_ui_t *ui, const char *path)
{
    return serve_h(ui, "GET", path, NULL, NULL);
}

static bool body_has(const char *needle)
{
    char *b = strndup((const char *)resp.body, resp.len);
    bool ok = strstr(b, needle) != NULL;
    free(b);
    return ok;
}

static th_jaeger_ui_t *create(const char *base, const char *assets, const char *config)
{
    struct th_jaeger_ui_cfg cfg = {.base_path = base, .assets_path = assets, .config_file = config};
    th_jaeger_ui_t *ui = NULL;
    char err[512];
    int rc = th_jaeger_ui_create(&cfg, &ui, err, sizeof(err));
    if (rc != 0) {
        fail_msg("create: %s", err);
    }
    return ui;
}

static void test_serve_builtin(void **state)
{
    (void)state;
    th_jaeger_ui_t *ui = create("", NULL, NULL);
    const char *spa[] = {"/",
                         "/search?service=x",
                         "/trace/0123456789abcdef",
                         "/dependencies",
                         "/index.html",
                         "/anything/else",
                         "/trace/a...b"};
    for (size_t i = 0; i < sizeof(spa) / sizeof(spa[0]); i++) {
        assert_int_equal(serve(ui, spa[i]), 0);
        assert_int_equal(resp.status, 200);
        assert_string_equal(resp.content_type, "text/html; charset=utf-8");
        assert_string_equal(resp.cache_control, "no-cache");
        assert_non_null(resp.etag);
        assert_true(body_has("<html"));
        assert_false(body_has("'TH_BASE_PATH'"));
    }
    /* the API's paths, including an encoded "api", and malformed ones, are declined */
    const char *api[] = {"/api", "/api/services", "/api/nope", "/api/%zz", "/%61pi/services"};
    for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
        assert_int_equal(serve(ui, api[i]), TH_DECLINED);
    }
    assert_int_equal(serve(ui, "/apix"), 0); /* not the API: a page */
    assert_int_equal(resp.status, 200);
    for (size_t i = 0; i < th_jaeger_ui_builtin_count; i++) {
        const struct th_jaeger_ui_file *f = &th_jaeger_ui_builtin[i];
        if (!strcmp(f->path, "index.html")) {
            continue;
        }
        char p[512];
        snprintf(p, sizeof(p), "/%s", f->path);
        assert_int_equal(serve(ui, p), 0);
        assert_int_equal(resp.status, 200);
        assert_string_equal(resp.content_type, f->content_type);
        assert_string_equal(resp.etag, f->etag);
        assert_int_equal(resp.len, f->len);
        assert_memory_equal(resp.body, f->data, f->len);
        assert_null(resp.content_encoding);
    }
    assert_int_equal(serve(ui, "/static/nope.js"), 0);
    assert_int_equal(resp.status, 404);
    assert_int_equal(serve(ui, "/static/../../etc/passwd"), 0);
    assert_int_equal(resp.status, 400);
    assert_int_equal(serve(ui, "/%2e%2e/%2e%2e/etc/passwd"), 0);
    assert_int_equal(resp.status, 400);
    assert_int_equal(serve_h(ui, "POST", "/search", NULL, NULL), 0);
    assert_int_equal(resp.status, 405);
    assert_string_equal(resp.allow, "GET, HEAD");
    assert_int_equal(serve_h(ui, "HEAD", "/search", NULL, NULL), 0);
    assert_int_equal(resp.status, 200);
    assert_true(resp.len > 0);
    th_jaeger_ui_destroy(ui);
}

static void test_serve_base_path(void **state)
{
    (void)state;
    th_jaeger_ui_t *ui = create("/jaeger", NULL, NULL);
    assert_int_equal(serve(ui, "/search"), TH_DECLINED);
    assert_int_equal(serve(ui, "/"), TH_DECLINED);
    assert_int_equal(serve(ui, "/jaegerx/search"), TH_DECLINED);
    assert_int_equal(serve(ui, "/jaeger/api/services"), TH_DECLINED);
    assert_int_equal(serve(ui, "/jaeger/search?service=a"), 0);
    assert_int_equal(resp.status, 200);
    assert_true(body_has("'/jaeger'") || body_has("\"/jaeger\""));
    assert_int_equal(serve(ui, "/jaeger"), 0);
    assert_int_equal(resp.status, 301);
    assert_string_equal(resp.location, "/jaeger/");
    assert_int_equal(serve(ui, "/jaeger?a=b"), 0);
    assert_string_equal(resp.location, "/jaeger/?a=b");
    th_jaeger_ui_destroy(ui);
}

static void test_serve_assets(void **state)
{
    (void)state;
    th_jaeger_ui_t *ui = create("/jaeger", tmp_path("assets"), tmp_path("ui.json"));
    assert_int_equal(serve(ui, "/jaeger/search"), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/html; charset=utf-8");
    assert_true(body_has("<base href=\"/jaeger/\""));
    assert_true(body_has("JAEGER_CONFIG = {\"menu\":"));
    assert_true(body_has(VERSION_JSON));
    assert_true(body_has("JAEGER_BACKEND_CAPABILITIES = {"));
    assert_true(body_has("JAEGER_STORAGE_CAPABILITIES = {"));
    assert_int_equal(serve(ui, "/jaeger/static/main.js"), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/javascript; charset=utf-8");
    assert_int_equal(resp.len, strlen("console.log('jaeger ui');\n"));
    /* a link inside the directory is followed */
    assert_int_equal(serve(ui, "/jaeger/static/alias.js"), 0);
    assert_int_equal(resp.status, 200);
    assert_true(body_has("jaeger ui"));
    assert_int_equal(serve(ui, "/jaeger/favicon.ico"), 0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "image/vnd.microsoft.icon");
    /* a link out of it, dot files and the raw index are not files */
    assert_int_equal(serve(ui, "/jaeger/static/leak.txt"), 0);
    assert_int_equal(resp.status, 404);
    assert_int_equal(serve(ui, "/jaeger/up/outside.txt"), 0);
    assert_false(body_has("top secret"));
    assert_int_equal(serve(ui, "/jaeger/.git/config"), 0);
    assert_false(body_has("secret"));
    assert_int_equal(serve(ui, "/jaeger/.hidden"), 0);
    assert_false(body_has("secret"));
    assert_int_equal(serve(ui, "/jaeger/static/%2e%2e/%2e%2e/outside.txt"), 0);
    assert_int_equal(resp.status, 400);
    assert_int_equal(serve(ui, "/jaeger/index.html"), 0);
    assert_true(body_has(VERSION_JSON));

    /* conditional requests */
    assert_int_equal(serve(ui, "/jaeger/static/main.js"), 0);
    char tag[64];
    snprintf(tag, sizeof(tag), "%s", resp.etag);
    char list[160];
    snprintf(list, sizeof(list), "\"x\", W/%s", tag);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/main.js", tag, NULL), 0);
    assert_int_equal(resp.status, 304);
    assert_string_equal(resp.etag, tag);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/main.js", list, NULL), 0);
    assert_int_equal(resp.status, 304);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/main.js", "*", NULL), 0);
    assert_int_equal(resp.status, 304);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/main.js", "\"other\"", NULL), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(serve(ui, "/jaeger/"), 0);
    snprintf(tag, sizeof(tag), "%s", resp.etag);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/trace/1", tag, NULL), 0);
    assert_int_equal(resp.status, 304);

    /* gzip: when accepted, and only then; its own ETag; the bytes inflate to the file */
    assert_int_equal(serve(ui, "/jaeger/static/big.css"), 0);
    size_t plain_len = resp.len;
    const uint8_t *plain = resp.body;
    assert_string_equal(resp.vary, "Accept-Encoding");
    assert_null(resp.content_encoding);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/big.css", NULL, "br, gzip;q=0.8"), 0);
    assert_string_equal(resp.content_encoding, "gzip");
    assert_true(resp.len < plain_len);
    assert_non_null(strstr(resp.etag, "-gzip\""));
    uint8_t out[8192];
    uLongf out_len = sizeof(out);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)resp.body;
    z.avail_in = (uInt)resp.len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, plain_len);
    assert_memory_equal(out, plain, plain_len);
    inflateEnd(&z);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/big.css", NULL, "gzip;q=0, deflate"), 0);
    assert_null(resp.content_encoding);
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/big.css", NULL, "*"), 0);
    assert_string_equal(resp.content_encoding, "gzip");
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/big.css", NULL, "identity"), 0);
    assert_null(resp.content_encoding);
    /* small files have no variant */
    assert_int_equal(serve_h(ui, "GET", "/jaeger/static/main.js", NULL, "gzip"), 0);
    assert_null(resp.content_encoding);
    assert_null(resp.vary);
    th_jaeger_ui_destroy(ui);

    /* a JS config */
    ui = create("", tmp_path("assets"), tmp_path("ui.js"));
    assert_int_equal(serve(ui, "/"), 0);
    assert_true(body_has("function UIConfig() { return {a: 1}; }\n"));
    assert_true(body_has("<base href=\"/\""));
    th_jaeger_ui_destroy(ui);
}

static void test_create_errors(void **state)
{
    (void)state;
    struct {
        const char *assets, *config, *want;
        int rc;
    } cases[] = {
        {"missing", NULL, "ui::assets_path:", TH_ECONFIG},
        {"noindex", NULL, "has no index.html", TH_ECONFIG},
        {"outside.txt", NULL, "is not a directory", TH_ECONFIG},
        {"assets", "bad.json", "ui::config_file: cannot parse", TH_ECONFIG},
        {"assets", "missing.js", "ui::config_file: cannot read", TH_ECONFIG},
        {NULL, "bad.js", "ui::config_file: UI config file must define", TH_ECONFIG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct th_jaeger_ui_cfg cfg = {
            .base_path = "",
            .assets_path = cases[i].assets ? tmp_path(cases[i].assets) : NULL,
            .config_file = cases[i].config ? tmp_path(cases[i].config) : NULL};
        th_jaeger_ui_t *ui = NULL;
        char err[512] = "";
        assert_int_equal(th_jaeger_ui_create(&cfg, &ui, err, sizeof(err)), cases[i].rc);
        if (!strstr(err, cases[i].want)) {
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].want);
        }
        assert_null(ui);
    }
    th_jaeger_ui_destroy(NULL);
}

/* ---- Allocation failure ------------------------------------------------------------------- */

static long budget;

static void *f_malloc(size_t n)
{
    return budget-- > 0 ? malloc(n) : NULL;
}

static void *f_calloc(size_t n, size_t s)
{
    return budget-- > 0 ? calloc(n, s) : NULL;
}

static void *f_realloc(void *p, size_t n)
{
    return budget-- > 0 ? realloc(p, n) : NULL;
}

static const struct th_mem_methods failing = {f_malloc, f_calloc, f_realloc, free};

static void test_create_oom(void **state)
{
    (void)state;
    struct th_jaeger_ui_cfg cfg = {
        .base_path = "/j", .assets_path = tmp_path("assets"), .config_file = tmp_path("ui.json")};
    for (long n = 0;; n++) {
        th_jaeger_ui_t *ui = NULL;
        char err[512];
        budget = n;
        th_mem_set_methods(&failing);
        int rc = th_jaeger_ui_create(&cfg, &ui, err, sizeof(err));
        th_mem_set_methods(NULL);
        if (rc == 0) {
            assert_non_null(ui);
            th_jaeger_ui_destroy(ui);
            assert_true(n > 5);
            break;
        }
        assert_int_equal(rc, TH_ENOMEM);
        assert_null(ui);
        assert_true(n < 10000);
    }
}

/* A config file that changes while running: looked at once a second, a change (an edit, a
 * rename over it) is injected, a bad edit is reported once and the last good config stays,
 * the built-in UI and a UI without a config file have nothing to follow. */
static void test_reload_config(void **state)
{
    (void)state;
    write_file("live.json", "{\"menu\": \"first\"}");
    th_jaeger_ui_t *ui = create("", tmp_path("assets"), tmp_path("live.json"));
    char err[1200];
    uint64_t now = 1000000000000ull;
    /* nothing changed */
    assert_int_equal(th_jaeger_ui_reload(ui, now, err, sizeof(err)), 0);
    assert_int_equal(serve(ui, "/"), 0);
    assert_true(body_has("\"menu\":\"first\""));
    char etag1[64];
    snprintf(etag1, sizeof(etag1), "%s", resp.etag);
    const uint8_t *old_body = resp.body;
    size_t old_len = resp.len;
    char *old_copy = strndup((const char *)old_body, old_len);

    /* a rename over it (a different inode) is seen at the next look, not before */
    write_file("live.json.new", "{\"menu\": \"second\"}");
    assert_int_equal(rename(tmp_path("live.json.new"), tmp_path("live.json")), 0);
    assert_int_equal(th_jaeger_ui_reload(ui, now + 500000000ull, err, sizeof(err)), 0);
    assert_int_equal(th_jaeger_ui_reload(ui, now + 1000000000ull, err, sizeof(err)), 1);
    assert_int_equal(serve(ui, "/"), 0);
    assert_true(body_has("\"menu\":\"second\""));
    assert_string_not_equal(resp.etag, etag1);
    /* a response still being written keeps its bytes */
    assert_memory_equal(old_body, old_copy, old_len);
    free(old_copy);

    /* a bad edit: reported once, the page keeps the last good config */
    write_file("live.json", "{\"menu\": ");
    struct stat st;
    assert_int_equal(stat(tmp_path("live.json"), &st), 0);
    struct timespec later[2] = {st.st_atim, {st.st_mtim.tv_sec + 5, 0}};
    assert_int_equal(utimensat(AT_FDCWD, tmp_path("live.json"), later, 0), 0);
    assert_int_equal(th_jaeger_ui_reload(ui, now + 2000000000ull, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "live.json"));
    assert_non_null(strstr(err, "keeps the previous config"));
    assert_int_equal(th_jaeger_ui_reload(ui, now + 3000000000ull, err, sizeof(err)), 0);
    assert_int_equal(serve(ui, "/"), 0);
    assert_true(body_has("\"menu\":\"second\""));
    /* fixed: taken */
    write_file("live.json", "{\"menu\": \"third\"}");
    later[1].tv_sec += 5;
    assert_int_equal(utimensat(AT_FDCWD, tmp_path("live.json"), later, 0), 0);
    assert_int_equal(th_jaeger_ui_reload(ui, now + 4000000000ull, err, sizeof(err)), 1);
    assert_int_equal(serve(ui, "/"), 0);
    assert_true(body_has("\"menu\":\"third\""));
    th_jaeger_ui_destroy(ui);

    /* nothing to follow */
    ui = create("", NULL, NULL);
    assert_int_equal(th_jaeger_ui_reload(ui, now, err, sizeof(err)), 0);
    th_jaeger_ui_destroy(ui);
    ui = create("", tmp_path("assets"), NULL);
    assert_int_equal(th_jaeger_ui_reload(ui, now, err, sizeof(err)), 0);
    th_jaeger_ui_destroy(ui);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_table), cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_resolve),       cmocka_unit_test(test_inject_builtin),
        cmocka_unit_test(test_inject_jaeger), cmocka_unit_test(test_config_files),
        cmocka_unit_test(test_serve_builtin), cmocka_unit_test(test_serve_base_path),
        cmocka_unit_test(test_serve_assets),  cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_oom),    cmocka_unit_test(test_reload_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
