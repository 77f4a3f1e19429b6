/*
 * Authentication: the shared helpers (scheme split, constant-time equality), bearertokenauth
 * (token sets, header matching, the token file re-read when it changes, the client header),
 * basicauth (htpasswd parsing with every hash kind and plain text refused, password checks,
 * Basic header parsing with malformed base64 and empty passwords, the client header), the
 * resolution of `auth::authenticator` with its errors, and that no secret reaches the log.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "extensions/basicauth/basicauth.h"
#include "extensions/bearertokenauth/bearertokenauth.h"
#include "th/auth.h"
#include "th/base64.h"
#include "th/log.h"

/* Hashes made with Apache's htpasswd 2.4 (-B -C 4, -2, -5, -s, -m) and openssl passwd -1. */
#define H_BCRYPT   "$2y$04$p/LaMa0vWZlFLQnIB0tEEuRPB08Ou4gAEsPEmNcSpZ2cQCIfQRLNS"    /* b-pass */
#define H_BCRYPT_B "$2b$04$qMvVZCISr3ti7Sa6y0WcH.qot4qRm83JAX55TMZUtDmW7bU02d2lC"    /* x */
#define H_S256     "$5$9/Gd36txrFiCObSG$FnwyCeP5svWH8/FR4F13rRYyF6eK3YrpPMp/aXwkoG2" /* s256-pass */
#define H_S512                                                                                     \
    "$6$ZYICuoWAKxAwfQGB$wHhNsKeTSjQ5CgNbvrZ0R9tM/MMctBN4dRNKObfg5bsQRv/R6Q9Y0EEn/9RH6X8ZpoYKB/"   \
    "rNhhkVXOXJJ5TUp0"                                                         /* s512-pass */
#define H_SHA   "{SHA}xO2etOilyqtV8o1RvvnmkeBx7QI="                            /* sha-pass */
#define H_APR1  "$apr1$iqfCRZ0N$ML9QP84hBbQhXo0t0NwQu."                        /* apr-pass */
#define H_MD5   "$1$abcdefgh$QDzVj6N8.axjJ3VSCVMwD0"                           /* md5-pass */
#define H_EMPTY "$2y$04$.YLMmZQ0/QKGTD.8bFghlOOVg0z50zHVsM0a6ODyrtHpuN6OaQatG" /* "" */

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/th_auth_test.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    /* write then rename, as a rotation does: the reader never sees half a file */
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

/* ---- Capturing the log ------------------------------------------------------------------- */

static int saved_stderr = -1;
static char log_path[300];

static void log_capture_begin(void)
{
    snprintf(log_path, sizeof(log_path), "%s/log.txt", tmpdir);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
}

/* @return what was logged (static buffer). */
static const char *log_capture_end(void)
{
    static char buf[65536];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- A header callback over a fixed list ------------------------------------------------- */

struct hdrs {
    const char *name[4];
    const char *value[4];
};

static const char *hdr_get(void *ctx, const char *name, size_t *len)
{
    struct hdrs *h = ctx;
    for (int i = 0; i < 4 && h->name[i]; i++) {
        if (!strcasecmp(h->name[i], name)) {
            *len = strlen(h->value[i]);
            return h->value[i];
        }
    }
    return NULL;
}

static int auth_with(struct th_component *c, const char *name, const char *value,
                     struct th_auth_denial *why)
{
    struct hdrs h = {{name}, {value}};
    return c->ops->auth->authenticate(c, hdr_get, &h, why);
}

/* Create and start an extension from YAML. */
static struct th_component *make(const char *type, const char *yaml, th_arena_t *a, int *start_rc)
{
    const struct th_component_ops *o = th_registry_find(TH_KIND_EXTENSION, type);
    assert_non_null(o);
    char err[512] = "";
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, sizeof(err)), 0);
    void *cfg = th_arena_calloc(a, 1, o->config_size);
    if (th_cfg_decode(o->config, node, cfg, a, type, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(o, type, cfg, NULL, &c), 0);
    int rc = o->start(c, NULL);
    if (start_rc) {
        *start_rc = rc;
    } else {
        assert_int_equal(rc, 0);
    }
    c->started = rc == 0;
    return c;
}

/* ---- Shared helpers ---------------------------------------------------------------------- */

static void test_split_scheme(void **state)
{
    (void)state;
    const char *cred;
    size_t n;
    assert_true(th_auth_split_scheme("Bearer abc", 10, "Bearer", &cred, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(cred, "abc", 3);
    /* the scheme is case-insensitive (RFC 9110 §11.1); spaces and tabs around are dropped */
    assert_true(th_auth_split_scheme("bEARER \t abc  ", 14, "Bearer", &cred, &n));
    assert_int_equal(n, 3);
    assert_true(th_auth_split_scheme("BASIC x", 7, "Basic", &cred, &n));
    assert_false(th_auth_split_scheme("Bearerabc", 9, "Bearer", &cred, &n));
    assert_false(th_auth_split_scheme("Bearer", 6, "Bearer", &cred, &n));
    assert_false(th_auth_split_scheme("Bearer   ", 9, "Bearer", &cred, &n));
    assert_false(th_auth_split_scheme("Basic abc", 9, "Bearer", &cred, &n));
    assert_false(th_auth_split_scheme(NULL, 0, "Bearer", &cred, &n));
    assert_true(th_auth_equal("abcd", "abcd", 4));
    assert_false(th_auth_equal("abcd", "abce", 4));
}

/* ---- bearertokenauth --------------------------------------------------------------------- */

static void test_bearer_tokens(void **state)
{
    (void)state;
    struct th_bearer_tokens *t = NULL;
    const char text[] = "  first-token \r\n\n\tsecond\n\n";
    assert_int_equal(th_bearertokenauth_tokens_parse(text, strlen(text), &t), 0);
    assert_int_equal(t->n, 2);
    assert_string_equal(t->first, "first-token");
    assert_true(th_bearertokenauth_match(t, "Bearer", "Bearer first-token", 18));
    assert_true(th_bearertokenauth_match(t, "Bearer", "bearer second", 13));
    assert_true(th_bearertokenauth_match(t, "Bearer", "BEARER  second ", 15));
    /* prefixes, extensions, other schemes and bare tokens do not pass */
    assert_false(th_bearertokenauth_match(t, "Bearer", "Bearer first", 12));
    assert_false(th_bearertokenauth_match(t, "Bearer", "Bearer first-token2", 19));
    assert_false(th_bearertokenauth_match(t, "Bearer", "Basic first-token", 17));
    assert_false(th_bearertokenauth_match(t, "Bearer", "first-token", 11));
    assert_false(th_bearertokenauth_match(t, "Bearer", "Bearer ", 7));
    /* no scheme: the whole value is the token */
    assert_true(th_bearertokenauth_match(t, "", "second", 6));
    assert_false(th_bearertokenauth_match(t, "", "Bearer second", 13));
    th_bearertokenauth_tokens_free(t);

    /* an empty file gives an empty set that matches nothing */
    assert_int_equal(th_bearertokenauth_tokens_parse("\n \n", 3, &t), 0);
    assert_int_equal(t->n, 0);
    assert_null(t->first);
    assert_false(th_bearertokenauth_match(t, "Bearer", "Bearer ", 7));
    th_bearertokenauth_tokens_free(t);

    const char *list[] = {"", "a", "b"};
    assert_int_equal(th_bearertokenauth_tokens_from_list(list, 3, &t), 0);
    assert_int_equal(t->n, 2);
    assert_string_equal(t->first, "a");
    th_bearertokenauth_tokens_free(t);
}

static void test_bearer_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_bearertokenauth_cfg cfg;
    char err[256];
    const char *why = NULL;
    assert_int_equal(th_cfg_defaults(th_bearertokenauth_config, &cfg, a, err, sizeof(err)), 0);
    assert_string_equal(cfg.header, "Authorization");
    assert_string_equal(cfg.scheme, "Bearer");
    assert_int_equal(th_bearertokenauth_config_check(&cfg, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "no bearer token provided"));
    cfg.token = "t";
    assert_int_equal(th_bearertokenauth_config_check(&cfg, &why), 0);
    const char *two[] = {"x", "y"};
    cfg.tokens = (th_strlist_t){two, 2};
    assert_int_equal(th_bearertokenauth_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "either tokens or token should be provided, not both");
    cfg.token = "";
    assert_int_equal(th_bearertokenauth_config_check(&cfg, &why), 0);
    cfg.header = "X Bad";
    assert_int_equal(th_bearertokenauth_config_check(&cfg, &why), TH_ECONFIG);
    th_arena_destroy(a);
}

static void test_bearer_extension(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    log_capture_begin();
    struct th_component *c =
        make("bearertokenauth", "tokens: [tok-one-SECRET, tok-two-SECRET]\nheader: X-Api-Key\n", a,
             NULL);
    struct th_auth_denial why;
    assert_string_equal(c->ops->auth->header(c), "x-api-key");
    assert_int_equal(auth_with(c, "x-api-key", "Bearer tok-two-SECRET", &why), 0);
    assert_int_equal(auth_with(c, "X-API-KEY", "bearer tok-one-SECRET", &why), 0);
    assert_int_equal(auth_with(c, "authorization", "Bearer tok-one-SECRET", &why), TH_EPERM);
    assert_string_equal(why.challenge, "Bearer realm=\"tracehouse\"");
    assert_string_equal(why.message, "missing or empty authorization header");
    assert_int_equal(auth_with(c, "x-api-key", "Bearer tok-three-SECRET", &why), TH_EPERM);
    assert_string_equal(why.message, "scheme or token does not match");
    /* the client side sends the first token */
    const char *name = NULL;
    th_buf_t v = {0};
    assert_int_equal(c->ops->auth->client_header(c, &name, &v), 0);
    assert_string_equal(name, "x-api-key");
    assert_int_equal(v.len, strlen("Bearer tok-one-SECRET"));
    assert_memory_equal(v.ptr, "Bearer tok-one-SECRET", v.len);
    th_buf_free(&v);
    /* after shutdown nothing passes */
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(auth_with(c, "x-api-key", "Bearer tok-two-SECRET", &why), TH_EPERM);
    th_component_destroy(c);
    const char *log = log_capture_end();
    assert_null(strstr(log, "SECRET"));
    th_arena_destroy(a);
}

static void test_bearer_file_reload(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char path[300], yaml[400];
    snprintf(path, sizeof(path), "%s/token", tmpdir);
    write_file(path, "old-SECRET\n");
    snprintf(yaml, sizeof(yaml), "filename: %s\ntoken: ignored-SECRET\n", path);
    log_capture_begin();
    struct th_component *c = make("bearertokenauth", yaml, a, NULL);
    struct th_bearertokenauth *b = (struct th_bearertokenauth *)c;
    struct th_auth_denial why;
    assert_int_equal(auth_with(c, "authorization", "Bearer old-SECRET", &why), 0);
    assert_int_equal(auth_with(c, "authorization", "Bearer ignored-SECRET", &why), TH_EPERM);

    /* replaced while running: the next request after the recheck interval sees it */
    write_file(path, "new-SECRET\nnewer-SECRET\n");
    __atomic_store_n(&b->next_check_ns, 0, __ATOMIC_RELAXED);
    assert_int_equal(auth_with(c, "authorization", "Bearer newer-SECRET", &why), 0);
    assert_int_equal(auth_with(c, "authorization", "Bearer old-SECRET", &why), TH_EPERM);
    /* and not before the interval is over: a rewrite within the second waits */
    write_file(path, "third-SECRET\n");
    assert_int_equal(auth_with(c, "authorization", "Bearer third-SECRET", &why), TH_EPERM);
    __atomic_store_n(&b->next_check_ns, 0, __ATOMIC_RELAXED);
    assert_int_equal(auth_with(c, "authorization", "Bearer third-SECRET", &why), 0);

    /* the file disappearing keeps the last tokens */
    assert_int_equal(unlink(path), 0);
    __atomic_store_n(&b->next_check_ns, 0, __ATOMIC_RELAXED);
    assert_int_equal(auth_with(c, "authorization", "Bearer third-SECRET", &why), 0);
    /* an empty file refuses everything */
    write_file(path, "\n");
    __atomic_store_n(&b->next_check_ns, 0, __ATOMIC_RELAXED);
    assert_int_equal(auth_with(c, "authorization", "Bearer third-SECRET", &why), TH_EPERM);
    th_component_destroy(c);

    /* a missing file at start fails the start */
    char missing[300];
    snprintf(missing, sizeof(missing), "filename: %s/nope\n", tmpdir);
    int rc = 0;
    c = make("bearertokenauth", missing, a, &rc);
    assert_int_equal(rc, TH_ENOENT);
    th_component_destroy(c);
    const char *log = log_capture_end();
    assert_null(strstr(log, "SECRET"));
    assert_non_null(strstr(log, "reloaded the token file"));
    assert_non_null(strstr(log, "filename is set: the configured token(s) are ignored"));
    th_arena_destroy(a);
}

/* ---- basicauth: htpasswd ------------------------------------------------------------------ */

static void test_htpasswd_kinds(void **state)
{
    (void)state;
    struct th_htpasswd h = {0};
    char err[512] = "";
    const char text[] = "# users\n"
                        "\n"
                        "bc:" H_BCRYPT "\r\n"
                        "bb:" H_BCRYPT_B "\n"
                        "s256:" H_S256 "\n"
                        "s512:" H_S512 "\n"
                        "  sha:" H_SHA ":extra field ignored\n"
                        "apr:" H_APR1 "\n"
                        "md5:" H_MD5 "\n"
                        "empty:" H_EMPTY "\n";
    assert_int_equal(th_htpasswd_parse(&h, text, strlen(text), "inline", err, sizeof(err)), 0);
    assert_int_equal(h.n, 8);
    static const struct {
        const char *user, *pw;
        enum th_htpasswd_kind kind;
    } ok[] = {
        {"bc", "b-pass", TH_HTPASSWD_BCRYPT},
        {"bb", "x", TH_HTPASSWD_BCRYPT},
        {"s256", "s256-pass", TH_HTPASSWD_SHA256CRYPT},
        {"s512", "s512-pass", TH_HTPASSWD_SHA512CRYPT},
        {"sha", "sha-pass", TH_HTPASSWD_SHA1},
        {"apr", "apr-pass", TH_HTPASSWD_APR1},
        {"md5", "md5-pass", TH_HTPASSWD_MD5CRYPT},
        {"empty", "", TH_HTPASSWD_BCRYPT},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const struct th_htpasswd_entry *e = th_htpasswd_find(&h, ok[i].user, strlen(ok[i].user));
        assert_non_null(e);
        assert_int_equal(e->kind, ok[i].kind);
        if (!th_htpasswd_verify(e, ok[i].pw, strlen(ok[i].pw))) {
            fail_msg("%s: the right password does not verify", ok[i].user);
        }
        /* a wrong password, one character more or less, and the empty password fail */
        char wrong[64];
        snprintf(wrong, sizeof(wrong), "%sx", ok[i].pw);
        assert_false(th_htpasswd_verify(e, wrong, strlen(wrong)));
        if (*ok[i].pw) {
            assert_false(th_htpasswd_verify(e, ok[i].pw, strlen(ok[i].pw) - 1));
            assert_false(th_htpasswd_verify(e, "", 0));
        }
    }
    /* a NUL inside the password never verifies (crypt would stop there) */
    const struct th_htpasswd_entry *bc = th_htpasswd_find(&h, "bc", 2);
    assert_false(th_htpasswd_verify(bc, "b-pass\0zz", 9));
    assert_null(th_htpasswd_find(&h, "nobody", 6));
    assert_null(th_htpasswd_find(&h, "b", 1));

    /* a later entry of a user replaces the earlier one (inline after file) */
    const char over[] = "apr:" H_SHA "\n";
    assert_int_equal(th_htpasswd_parse(&h, over, strlen(over), "inline", err, sizeof(err)), 0);
    assert_int_equal(h.n, 8);
    const struct th_htpasswd_entry *e = th_htpasswd_find(&h, "apr", 3);
    assert_true(th_htpasswd_verify(e, "sha-pass", 8));
    assert_false(th_htpasswd_verify(e, "apr-pass", 8));
    th_htpasswd_free(&h);
}

static void test_htpasswd_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"ok:" H_SHA "\neve:plain-SECRET\n", "htpasswd inline, line 2: the password is plain text"},
        {"eve:$2y$04$short-SECRET\n", "line 1: the password is plain text"},
        {"eve:$apr1$salt$tooshort-SECRET\n", "line 1: the password is plain text"},
        {"eve:{SHA}bm90LTIwLWJ5dGVz-SECRET\n", "line 1: the password is plain text"},
        {"eve:$5$nohash\n", "line 1: the password is plain text"},
        {"eve:abcdefghijklm\n", "line 1: the password is plain text"}, /* DES crypt */
        {"\n\nno-colon-SECRET\n", "htpasswd inline, line 3: expected user:hash"},
        {":" H_SHA "\n", "line 1: empty user name"},
        {"eve:\n", "line 1: the user has no password hash"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct th_htpasswd h = {0};
        char err[512] = "";
        assert_int_equal(
            th_htpasswd_parse(&h, bad[i].text, strlen(bad[i].text), "inline", err, sizeof(err)),
            TH_ECONFIG);
        if (!strstr(err, bad[i].want)) {
            fail_msg("case %zu: %s", i, err);
        }
        assert_null(strstr(err, "SECRET"));
        assert_null(strstr(err, "eve"));
        th_htpasswd_free(&h);
    }
}

static void test_apr1(void **state)
{
    (void)state;
    char out[64];
    /* openssl passwd -apr1 -salt xyz x, and htpasswd -m with a password over 16 bytes */
    assert_int_equal(th_htpasswd_apr1("x", 1, "xyz", 3, out, sizeof(out)), 0);
    assert_string_equal(out, "$apr1$xyz$XUI0YWf4qbQQemKIKYAaQ1");
    const char *pw = "a-much-longer-password-over-sixteen-bytes-long-and-more-and-more";
    assert_int_equal(th_htpasswd_apr1(pw, strlen(pw), "4VM2k5ez", 8, out, sizeof(out)), 0);
    assert_string_equal(out, "$apr1$4VM2k5ez$wLgXhfKnUoVZyv2t.J4ff1");
    assert_int_equal(th_htpasswd_apr1("secret", 6, "abcdefgh", 8, out, sizeof(out)), 0);
    assert_string_equal(out, "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/");
    /* the salt is cut at 8 characters */
    assert_int_equal(th_htpasswd_apr1("secret", 6, "abcdefghijk", 11, out, sizeof(out)), 0);
    assert_string_equal(out, "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/");
    assert_int_equal(th_htpasswd_apr1("secret", 6, "abcdefgh", 8, out, 20), TH_EINVAL);
}

static void test_basic_header(void **state)
{
    (void)state;
    char buf[256];
    const char *u, *p;
    size_t ul, pl;
#define PARSE(v) th_basicauth_parse_header((v), strlen(v), buf, sizeof(buf), &u, &ul, &p, &pl)
    assert_true(PARSE("Basic dXNlcjpwYXNz")); /* user:pass */
    assert_int_equal(ul, 4);
    assert_memory_equal(u, "user", 4);
    assert_int_equal(pl, 4);
    assert_memory_equal(p, "pass", 4);
    assert_true(PARSE("basic   dXNlcjpwYXNz")); /* the scheme is case-insensitive */
    assert_true(PARSE("BASIC dTpwOnc="));       /* u:p:w: the password keeps its colons */
    assert_int_equal(pl, 3);
    assert_memory_equal(p, "p:w", 3);
    assert_true(PARSE("Basic dXNlcjo=")); /* "user:": an empty password is well formed */
    assert_int_equal(pl, 0);
    /* malformed */
    assert_false(PARSE("Basic dXNlcjpwYXNz=")); /* length not a multiple of 4 */
    assert_false(PARSE("Basic dXNlcjo"));       /* padding missing */
    assert_false(PARSE("Basic dXNl*jpwYXNz"));  /* not base64 */
    assert_false(PARSE("Basic dXNlcjpw-XNz"));  /* URL-safe alphabet */
    assert_false(PARSE("Basic dXNlcnBhc3M="));  /* userpass: no colon */
    assert_false(PARSE("Basic OnBhc3M="));      /* ":pass": empty user */
    assert_false(PARSE("Basic "));
    assert_false(PARSE("Bearer dXNlcjpwYXNz"));
    assert_false(PARSE("dXNlcjpwYXNz"));
#undef PARSE
}

static void test_basicauth_extension(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    char path[300], yaml[600];
    snprintf(path, sizeof(path), "%s/htpasswd", tmpdir);
    write_file(path, "alice:" H_APR1 "\nbob:" H_BCRYPT "\n");
    /* inline wins over the file for alice ({SHA} of sha-pass) */
    snprintf(yaml, sizeof(yaml), "htpasswd:\n  file: %s\n  inline: |\n    alice:" H_SHA "\n", path);
    log_capture_begin();
    struct th_component *c = make("basicauth", yaml, a, NULL);
    struct th_auth_denial why;
    char hv[128], raw[64];
#define BASIC(userpass)                                                                            \
    (snprintf(raw, sizeof(raw), "%s", (userpass)), memcpy(hv, "Basic ", 6),                        \
     hv[6 + th_base64_encode((const uint8_t *)raw, strlen(raw), hv + 6, true)] = '\0', hv)
    assert_int_equal(auth_with(c, "authorization", BASIC("alice:sha-pass"), &why), 0);
    /* twice: the second is answered from the cache */
    assert_int_equal(auth_with(c, "authorization", BASIC("alice:sha-pass"), &why), 0);
    assert_int_equal(auth_with(c, "authorization", BASIC("alice:apr-pass"), &why), TH_EPERM);
    assert_string_equal(why.message, "invalid credentials");
    assert_string_equal(why.challenge, "Basic realm=\"tracehouse\", charset=\"UTF-8\"");
    assert_int_equal(auth_with(c, "authorization", BASIC("bob:b-pass"), &why), 0);
    assert_int_equal(auth_with(c, "authorization", BASIC("bob:"), &why), TH_EPERM);
    assert_int_equal(auth_with(c, "authorization", BASIC("carol:b-pass"), &why), TH_EPERM);
    assert_int_equal(auth_with(c, "authorization", "Basic !!!!", &why), TH_EPERM);
    assert_string_equal(why.message, "invalid authorization format");
    assert_int_equal(auth_with(c, "x-other", "whatever", &why), TH_EPERM);
    assert_string_equal(why.message, "no basic auth provided");
    assert_int_equal(c->ops->auth->roles(c), TH_AUTH_SERVER);
    const char *name = NULL;
    th_buf_t v = {0};
    assert_int_equal(c->ops->auth->client_header(c, &name, &v), TH_EUNSUPPORTED);
    th_buf_free(&v);
    th_component_destroy(c);

    /* a plain-text entry fails the start, naming the line and not the password */
    write_file(path, "alice:" H_APR1 "\neve:plain-SECRET\n");
    snprintf(yaml, sizeof(yaml), "htpasswd: {file: %s}\n", path);
    int rc = 0;
    c = make("basicauth", yaml, a, &rc);
    assert_int_equal(rc, TH_ECONFIG);
    th_component_destroy(c);

    /* client side */
    c = make("basicauth", "client_auth: {username: user, password: pass-SECRET}\n", a, NULL);
    assert_int_equal(c->ops->auth->roles(c), TH_AUTH_CLIENT);
    assert_int_equal(c->ops->auth->client_header(c, &name, &v), 0);
    assert_string_equal(name, "authorization");
    const char want[] = "Basic dXNlcjpwYXNzLVNFQ1JFVA==";
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.ptr, want, v.len);
    th_buf_free(&v);
    th_component_destroy(c);
    const char *log = log_capture_end();
    assert_null(strstr(log, "SECRET"));
    assert_null(strstr(log, "sha-pass"));
    assert_non_null(strstr(log, "line 2: the password is plain text"));
#undef BASIC
    th_arena_destroy(a);
}

static void test_basicauth_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_basicauth_cfg cfg;
    char err[256];
    const char *why = NULL;
    assert_int_equal(th_cfg_defaults(th_basicauth_config, &cfg, a, err, sizeof(err)), 0);
    assert_int_equal(th_basicauth_config_check(&cfg, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "no credential source provided"));
    cfg.htpasswd_enabled = true;
    assert_int_equal(th_basicauth_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "htpasswd: set file or inline");
    cfg.htpasswd.inline_text = "u:" H_SHA;
    assert_int_equal(th_basicauth_config_check(&cfg, &why), 0);
    cfg.client_auth_enabled = true;
    assert_int_equal(th_basicauth_config_check(&cfg, &why), TH_ECONFIG);
    assert_string_equal(why, "only one of `htpasswd` or `client_auth` can be specified");
    cfg.htpasswd_enabled = false;
    cfg.client_auth.username = "a:b";
    assert_int_equal(th_basicauth_config_check(&cfg, &why), TH_ECONFIG);
    th_arena_destroy(a);
}

/* ---- Resolution ---------------------------------------------------------------------------- */

static struct th_component *exts[3];

static struct th_component *host_ext(struct th_host *h, const char *id)
{
    (void)h;
    for (int i = 0; i < 3; i++) {
        if (exts[i] && !strcmp(exts[i]->id, id)) {
            return exts[i];
        }
    }
    return NULL;
}

static void test_resolve(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_host host = {.get_extension = host_ext};
    /* an extension that is not an authenticator */
    const struct th_component_ops *hc = th_registry_find(TH_KIND_EXTENSION, "health_check");
    assert_non_null(hc);
    void *hcfg = th_arena_calloc(a, 1, hc->config_size);
    char err[512];
    assert_int_equal(th_cfg_defaults(hc->config, hcfg, a, err, sizeof(err)), 0);
    assert_int_equal(th_component_create(hc, "health_check", hcfg, NULL, &exts[0]), 0);
    exts[1] = make("bearertokenauth", "token: t\n", a, NULL);
    exts[2] = make("basicauth", "client_auth: {username: u, password: p}\n", a, NULL);

    th_auth_t au;
    assert_int_equal(
        th_auth_resolve(&host, "bearertokenauth", TH_AUTH_SERVER, &au, err, sizeof(err)), 0);
    assert_true(th_auth_enabled(&au));
    struct hdrs h = {{"authorization"}, {"Bearer t"}};
    struct th_auth_denial why;
    assert_int_equal(th_auth_check(&au, hdr_get, &h, &why), 0);
    h.value[0] = "Bearer u";
    assert_int_equal(th_auth_check(&au, hdr_get, &h, &why), TH_EPERM);
    /* the zero value lets everything through */
    th_auth_t none = {0};
    assert_false(th_auth_enabled(&none));
    assert_int_equal(th_auth_check(&none, hdr_get, &h, &why), 0);

    assert_int_equal(th_auth_resolve(&host, "nope", TH_AUTH_SERVER, &au, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "no extension \"nope\""));
    assert_false(th_auth_enabled(&au));
    assert_int_equal(th_auth_resolve(&host, "health_check", TH_AUTH_SERVER, &au, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "\"health_check\" is not an authenticator"));
    assert_int_equal(th_auth_resolve(&host, "basicauth", TH_AUTH_SERVER, &au, err, sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "cannot check incoming requests"));
    assert_int_equal(th_auth_resolve(&host, "basicauth", TH_AUTH_CLIENT, &au, err, sizeof(err)), 0);
    assert_int_equal(th_auth_resolve(&host, "", TH_AUTH_SERVER, &au, err, sizeof(err)), TH_ECONFIG);
    for (int i = 0; i < 3; i++) {
        th_component_destroy(exts[i]);
        exts[i] = NULL;
    }
    th_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_scheme),       cmocka_unit_test(test_bearer_tokens),
        cmocka_unit_test(test_bearer_config),      cmocka_unit_test(test_bearer_extension),
        cmocka_unit_test(test_bearer_file_reload), cmocka_unit_test(test_htpasswd_kinds),
        cmocka_unit_test(test_htpasswd_refused),   cmocka_unit_test(test_apr1),
        cmocka_unit_test(test_basic_header),       cmocka_unit_test(test_basicauth_extension),
        cmocka_unit_test(test_basicauth_config),   cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
