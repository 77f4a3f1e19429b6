/*
 * The shared server TLS module (th/tls.h): the field table and its defaults, the checks
 * across keys, loading files (errors that name the key and file, a key that does not match),
 * and real handshakes against the context it builds, in memory through BIO pairs: versions,
 * mTLS, ALPN, cipher suites, inline PEM, reloading changed files (and keeping the old context
 * when the new files are bad). Last, the collector's small HTTP server over TLS on a socket.
 * Certificates are made with the openssl CLI in a temporary directory.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "th/http_server.h"
#include "th/tls.h"
#include "tls_test_certs.h"

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A CA, two server certificates for localhost (different keys), a client certificate, and a
 * second CA with a client certificate of its own. */
static int make_certs(void **state)
{
    (void)state;
    if (tls_certs_dir("/tmp/th-tls-XXXXXX") != 0) {
        return -1;
    }
    tls_make_ca("ca", "th-test-ca");
    tls_make_ca("ca2", "other-ca");
    tls_issue("server", "server", "ca", true);
    tls_issue("server2", "server2", "ca", true);
    tls_issue("client", "client", "ca", false);
    tls_issue("client2", "client2", "ca2", false);
    sh("printf 'not a certificate\\n' > garbage.pem");
    /* The RSA suites need an RSA certificate. */
    sh("openssl req -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj /CN=localhost");
    sh("openssl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out rsa.pem "
       "-days 2 -extfile san.ext");
    return 0;
}

/* A config with the files of one server certificate (paths in static storage per slot). */
static void server_cfg(struct th_tls_server_cfg *c, const char *name)
{
    static char cert[4][128], key[4][128];
    static int slot;
    slot = (slot + 1) % 4;
    th_tls_server_cfg_default(c);
    snprintf(cert[slot], sizeof(cert[slot]), "%s/%s.pem", dir, name);
    snprintf(key[slot], sizeof(key[slot]), "%s/%s.key", dir, name);
    c->cert_file = cert[slot];
    c->key_file = key[slot];
}

static th_tls_server_t *load(const struct th_tls_server_cfg *c, enum th_tls_alpn alpn)
{
    struct th_tls_server_opts o = {.path = "x::tls", .alpn = alpn};
    th_tls_server_t *t = NULL;
    char err[1024];
    int ret = th_tls_server_create(c, &o, &t, err, sizeof(err));
    if (ret != 0) {
        fail_msg("create: %s", err);
    }
    ret = th_tls_server_load(t, err, sizeof(err));
    if (ret != 0) {
        fail_msg("load: %s", err);
    }
    return t;
}

/* ---- A TLS client in memory ------------------------------------------------------------- */

struct client {
    const char *ca;   /* file name in dir, or NULL for no verification */
    const char *cert; /* client certificate name (name.pem, name.key), or NULL */
    int max_version;  /* 0: default */
    const char *alpn; /* wire-format ALPN list, or NULL */
    size_t alpn_len;
    const char *cipher; /* OpenSSL TLS 1.2 cipher list, or NULL */
};

struct result {
    bool ok;
    int version;
    char alpn[16];
    char cipher[64];
    unsigned char peer_sha256[32]; /* the server certificate's fingerprint */
};

static SSL_CTX *client_ctx(const struct client *cl)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    char p[256], k[256];
    if (cl->ca) {
        path_of(p, sizeof(p), cl->ca);
        assert_int_equal(SSL_CTX_load_verify_locations(c, p, NULL), 1);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    }
    if (cl->cert) {
        char name[64];
        snprintf(name, sizeof(name), "%s.pem", cl->cert);
        path_of(p, sizeof(p), name);
        snprintf(name, sizeof(name), "%s.key", cl->cert);
        path_of(k, sizeof(k), name);
        assert_int_equal(SSL_CTX_use_certificate_file(c, p, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c, k, SSL_FILETYPE_PEM), 1);
    }
    if (cl->max_version) {
        SSL_CTX_set_max_proto_version(c, cl->max_version);
    }
    if (cl->alpn) {
        SSL_CTX_set_alpn_protos(c, (const unsigned char *)cl->alpn, (unsigned)cl->alpn_len);
    }
    if (cl->cipher) {
        assert_int_equal(SSL_CTX_set_cipher_list(c, cl->cipher), 1);
    }
    return c;
}

/* Run a handshake between a client and a server SSL made from @p sctx, through a BIO pair,
 * then one application byte each way so TLS 1.3's late failures (client certificate) show. */
static struct result handshake(SSL_CTX *sctx, const struct client *cl)
{
    struct result r = {0};
    SSL_CTX *cctx = client_ctx(cl);
    SSL *c = SSL_new(cctx);
    SSL *s = SSL_new(sctx);
    BIO *bc, *bs;
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_tlsext_host_name(c, "localhost");
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    bool cdone = false, sdone = false, failed = false;
    for (int i = 0; i < 64 && !failed && !(cdone && sdone); i++) {
        if (!cdone) {
            int rc = SSL_do_handshake(c);
            int e = SSL_get_error(c, rc);
            cdone = rc == 1;
            failed = rc != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
        }
        if (!sdone && !failed) {
            int rs = SSL_do_handshake(s);
            int e = SSL_get_error(s, rs);
            sdone = rs == 1;
            failed = rs != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
        }
    }
    if (cdone && sdone && !failed) {
        char b = 0;
        r.ok = SSL_write(c, "x", 1) == 1 && SSL_read(s, &b, 1) == 1 && b == 'x' &&
               SSL_write(s, "y", 1) == 1 && SSL_read(c, &b, 1) == 1 && b == 'y';
    }
    if (r.ok) {
        r.version = SSL_version(c);
        const unsigned char *a = NULL;
        unsigned int alen = 0;
        SSL_get0_alpn_selected(s, &a, &alen);
        snprintf(r.alpn, sizeof(r.alpn), "%.*s", (int)alen, a ? (const char *)a : "");
        snprintf(r.cipher, sizeof(r.cipher), "%s",
                 SSL_CIPHER_standard_name(SSL_get_current_cipher(c)));
        X509 *peer = SSL_get1_peer_certificate(c);
        unsigned int n = 0;
        assert_non_null(peer);
        X509_digest(peer, EVP_sha256(), r.peer_sha256, &n);
        X509_free(peer);
    }
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    ERR_clear_error();
    return r;
}

static void file_sha256(const char *name, unsigned char out[32])
{
    char p[256];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned int n = 0;
    X509_digest(x, EVP_sha256(), out, &n);
    X509_free(x);
}

static const struct client trusting = {.ca = "ca.pem"};

/* ---- Config ----------------------------------------------------------------------------- */

static void test_table(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct th_tls_server_cfg c;
    char err[512] = "";
    assert_int_equal(th_cfg_defaults(th_tls_server_config_fields, &c, a, err, sizeof(err)), 0);
    assert_string_equal(c.min_version, "1.2");
    assert_string_equal(c.max_version, "");
    assert_int_equal(c.reload_interval, 0);
    assert_false(c.client_ca_file_reload);
    for (const struct th_cfg_field *f = th_tls_server_config_fields; f->name; f++) {
        assert_non_null(f->desc);
        assert_true(strlen(f->desc) > 10);
    }
    /* The static defaults match the table's. */
    struct th_tls_server_cfg d;
    th_tls_server_cfg_default(&d);
    assert_string_equal(d.min_version, c.min_version);
    assert_string_equal(d.max_version, c.max_version);

    th_node_t *n = NULL;
    const char *yaml = "cert_file: /c.pem\nkey_file: /k.pem\nmin_version: \"1.3\"\n"
                       "reload_interval: 30s\nclient_ca_file: /ca.pem\n"
                       "cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n";
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "t", a, &n, err, sizeof(err)), 0);
    assert_int_equal(
        th_cfg_decode(th_tls_server_config_fields, n, &c, a, "r::tls", err, sizeof(err)), 0);
    assert_string_equal(c.cert_file, "/c.pem");
    assert_string_equal(c.min_version, "1.3");
    assert_int_equal(c.reload_interval, 30000000000LL);
    assert_int_equal(c.cipher_suites.n, 1);
    assert_int_equal(th_tls_server_cfg_check(&c, "r::tls", err, sizeof(err)), 0);

    /* A version outside the list is refused by the table itself. */
    yaml = "min_version: \"1.4\"\n";
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "t", a, &n, err, sizeof(err)), 0);
    assert_int_equal(
        th_cfg_decode(th_tls_server_config_fields, n, &c, a, "r::tls", err, sizeof(err)),
        TH_ECONFIG);
    assert_non_null(strstr(err, "r::tls::min_version"));
    /* key_pem is a secret: its value never shows in a message. */
    yaml = "key_pem: [\"SECRETKEYTEXT\"]\n";
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "t", a, &n, err, sizeof(err)), 0);
    assert_int_equal(
        th_cfg_decode(th_tls_server_config_fields, n, &c, a, "r::tls", err, sizeof(err)),
        TH_ECONFIG);
    assert_null(strstr(err, "SECRETKEYTEXT"));
    /* ca_file never applies to a server: the warning says so, not "no effect yet" */
    yaml = "ca_file: /ca.pem\n";
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "t", a, &n, err, sizeof(err)), 0);
    FILE *cap = tmpfile();
    assert_non_null(cap);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(cap), 2);
    int rc = th_cfg_decode(th_tls_server_config_fields, n, &c, a, "r::tls", err, sizeof(err));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    char logged[1024] = "";
    rewind(cap);
    size_t got = fread(logged, 1, sizeof(logged) - 1, cap);
    logged[got] = '\0';
    fclose(cap);
    assert_non_null(strstr(logged, "r::tls::ca_file"));
    assert_non_null(strstr(logged, "does not apply here"));
    assert_null(strstr(logged, "yet"));
    th_arena_destroy(a);
}

static void expect_refused(const struct th_tls_server_cfg *c, const char *want)
{
    char err[512] = "";
    assert_int_equal(th_tls_server_cfg_check(c, "p::tls", err, sizeof(err)), TH_ECONFIG);
    if (!strstr(err, want)) {
        fail_msg("expected \"%s\" in \"%s\"", want, err);
    }
}

static void test_check(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    th_tls_server_cfg_default(&c);
    expect_refused(&c, "p::tls: a TLS server needs a certificate and its private key: set "
                       "cert_file and key_file");
    c.cert_file = "/c.pem";
    expect_refused(&c, "set key_file (or key_pem)");
    c.cert_file = "";
    c.key_file = "/k.pem";
    expect_refused(&c, "set cert_file (or cert_pem)");
    c.cert_file = "/c.pem";
    char err[256];
    assert_int_equal(th_tls_server_cfg_check(&c, "p::tls", err, sizeof(err)), 0);
    c.cert_pem = "-----BEGIN CERTIFICATE-----";
    expect_refused(&c, "cert_file and cert_pem are both set");
    c.cert_pem = "";
    c.key_pem = "x";
    expect_refused(&c, "key_file and key_pem are both set");
    c.key_pem = "";

    c.min_version = "1.3";
    c.max_version = "1.2";
    expect_refused(&c, "p::tls: min_version 1.3 is above max_version 1.2");
    c.max_version = "";
    c.min_version = "2.0";
    expect_refused(&c, "p::tls::min_version: unknown TLS version \"2.0\"");
    c.min_version = "";
    c.max_version = "1.1"; /* "" min means 1.2 */
    expect_refused(&c, "min_version 1.2 is above max_version 1.1");
    c.max_version = "";

    const char *bad[] = {"TLS_NOPE"};
    c.cipher_suites = (th_strlist_t){bad, 1};
    expect_refused(&c, "p::tls::cipher_suites: unknown cipher suite \"TLS_NOPE\"");
    const char *insecure[] = {"TLS_RSA_WITH_3DES_EDE_CBC_SHA"};
    c.cipher_suites = (th_strlist_t){insecure, 1};
    expect_refused(&c, "TLS_RSA_WITH_3DES_EDE_CBC_SHA is insecure; set include_insecure");
    c.include_insecure_cipher_suites = true;
    assert_int_equal(th_tls_server_cfg_check(&c, "p::tls", err, sizeof(err)), 0);
    c.cipher_suites = (th_strlist_t){0};

    const char *curves[] = {"P256", "brainpool"};
    c.curve_preferences = (th_strlist_t){curves, 2};
    expect_refused(&c, "p::tls::curve_preferences: unsupported curve \"brainpool\"");
    c.curve_preferences = (th_strlist_t){0};

    c.client_ca_file_reload = true;
    expect_refused(&c, "client_ca_file_reload: needs client_ca_file");
    c.client_ca_file = "/ca.pem";
    assert_int_equal(th_tls_server_cfg_check(&c, "p::tls", err, sizeof(err)), 0);
    c.reload_interval = -1;
    expect_refused(&c, "reload_interval: must not be negative");
    c.reload_interval = 0;
    th_node_t tpm = {.kind = TH_NODE_MAP};
    c.tpm = &tpm;
    expect_refused(&c, "p::tls::tpm: keys held in a TPM are not supported");
    c.tpm = NULL;

    /* The static flavour for config_check callbacks. */
    const char *why = NULL;
    c.cert_file = "";
    assert_int_equal(th_tls_server_cfg_check_static(&c, "protocols::http::tls", &why), TH_ECONFIG);
    assert_non_null(strstr(why, "protocols::http::tls: a TLS server needs"));
    /* create checks too, and reads nothing. */
    th_tls_server_t *t = (th_tls_server_t *)1;
    assert_int_equal(th_tls_server_create(&c, NULL, &t, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "tls: a TLS server needs"));
}

/* ---- Loading ------------------------------------------------------------------------------ */

static void expect_load(const struct th_tls_server_cfg *c, const char *want1, const char *want2)
{
    th_tls_server_t *t = NULL;
    char err[1024] = "";
    struct th_tls_server_opts o = {.path = "x::tls"};
    assert_int_equal(th_tls_server_create(c, &o, &t, err, sizeof(err)), 0);
    assert_int_equal(th_tls_server_load(t, err, sizeof(err)), TH_ECONFIG);
    assert_null(th_tls_server_ctx(t));
    if (!strstr(err, want1) || (want2 && !strstr(err, want2))) {
        fail_msg("expected \"%s\" and \"%s\" in \"%s\"", want1, want2 ? want2 : "", err);
    }
    /* Key material never appears in a message. */
    assert_null(strstr(err, "PRIVATE KEY"));
    assert_null(strstr(err, "BEGIN"));
    th_tls_server_destroy(t);
}

static void test_load_errors(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    char p[256];
    server_cfg(&c, "server");
    path_of(p, sizeof(p), "missing.pem");
    c.cert_file = p;
    expect_load(&c, "x::tls::cert_file \"", "missing.pem\": No such file or directory");

    server_cfg(&c, "server");
    path_of(p, sizeof(p), "nokey.key");
    c.key_file = p;
    expect_load(&c, "x::tls::key_file \"", "nokey.key\": No such file or directory");

    server_cfg(&c, "server");
    path_of(p, sizeof(p), "garbage.pem");
    c.cert_file = p;
    expect_load(&c, "garbage.pem\": no PEM certificate found", NULL);

    /* The key of another certificate. */
    server_cfg(&c, "server");
    path_of(p, sizeof(p), "server2.key");
    c.key_file = p;
    expect_load(&c,
                "server2.key\": the private key does not match the certificate of "
                "x::tls::cert_file",
                NULL);

    /* A certificate where the key should be. */
    server_cfg(&c, "server");
    path_of(p, sizeof(p), "server.pem");
    c.key_file = p;
    expect_load(&c, "no unencrypted PEM private key found", NULL);

    server_cfg(&c, "server");
    path_of(p, sizeof(p), "garbage.pem");
    c.client_ca_file = p;
    expect_load(&c, "x::tls::client_ca_file \"", "garbage.pem\": no PEM certificate found");

    server_cfg(&c, "server");
    path_of(p, sizeof(p), "nothere");
    c.client_ca_file = p;
    expect_load(&c, "x::tls::client_ca_file", "No such file or directory");

    /* A directory is not a certificate file. */
    server_cfg(&c, "server");
    c.cert_file = dir;
    expect_load(&c, "not a regular file", NULL);
}

/* ---- Handshakes ----------------------------------------------------------------------------- */

static void test_handshake_defaults(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    server_cfg(&c, "server");
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_HTTP);
    SSL_CTX *ctx = th_tls_server_ctx(t);
    assert_non_null(ctx);
    assert_int_equal(th_tls_server_generation(t), 1);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);

    struct result r = handshake(ctx, &trusting);
    assert_true(r.ok);
    assert_int_equal(r.version, TLS1_3_VERSION);
    unsigned char want[32];
    file_sha256("server.pem", want);
    assert_memory_equal(r.peer_sha256, want, 32);

    /* TLS 1.2 still works by default; 1.1 does not (the minimum is 1.2). */
    struct client c12 = {.ca = "ca.pem", .max_version = TLS1_2_VERSION};
    r = handshake(ctx, &c12);
    assert_true(r.ok);
    assert_int_equal(r.version, TLS1_2_VERSION);
    struct client c11 = {.ca = "ca.pem", .max_version = TLS1_1_VERSION};
    assert_false(handshake(ctx, &c11).ok);

    /* h2o's ALPN list: h2 when offered, else http/1.1, and nothing is fine too. */
    struct client h2 = {.ca = "ca.pem", .alpn = "\x08http/1.1\x02h2", .alpn_len = 12};
    r = handshake(ctx, &h2);
    assert_true(r.ok);
    assert_string_equal(r.alpn, "h2");
    struct client h1 = {.ca = "ca.pem", .alpn = "\x08http/1.1", .alpn_len = 9};
    r = handshake(ctx, &h1);
    assert_true(r.ok);
    assert_string_equal(r.alpn, "http/1.1");
    /* No reload configured: the same context every time. */
    assert_ptr_equal(th_tls_server_ctx(t), ctx);
    th_tls_server_destroy(t);
}

static void test_min_version_13(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    server_cfg(&c, "server");
    c.min_version = "1.3";
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    struct client c12 = {.ca = "ca.pem", .max_version = TLS1_2_VERSION};
    assert_false(handshake(th_tls_server_ctx(t), &c12).ok);
    assert_true(handshake(th_tls_server_ctx(t), &trusting).ok);
    th_tls_server_destroy(t);

    /* max_version 1.2 keeps a 1.3 client at 1.2. */
    server_cfg(&c, "server");
    c.max_version = "1.2";
    t = load(&c, TH_TLS_ALPN_NONE);
    struct result r = handshake(th_tls_server_ctx(t), &trusting);
    assert_true(r.ok);
    assert_int_equal(r.version, TLS1_2_VERSION);
    th_tls_server_destroy(t);
}

static void test_mtls(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    char ca[256];
    server_cfg(&c, "server");
    path_of(ca, sizeof(ca), "ca.pem");
    c.client_ca_file = ca;
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    SSL_CTX *ctx = th_tls_server_ctx(t);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    /* No certificate: refused, in TLS 1.3 and in 1.2. */
    assert_false(handshake(ctx, &trusting).ok);
    struct client c12 = {.ca = "ca.pem", .max_version = TLS1_2_VERSION};
    assert_false(handshake(ctx, &c12).ok);
    /* A certificate from the configured CA: accepted. */
    struct client good = {.ca = "ca.pem", .cert = "client"};
    assert_true(handshake(ctx, &good).ok);
    good.max_version = TLS1_2_VERSION;
    assert_true(handshake(ctx, &good).ok);
    /* A certificate from another CA: refused. */
    struct client other = {.ca = "ca.pem", .cert = "client2"};
    assert_false(handshake(ctx, &other).ok);
    th_tls_server_destroy(t);
}

static void test_alpn_h2(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    server_cfg(&c, "server");
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_H2);
    SSL_CTX *ctx = th_tls_server_ctx(t);
    struct client h2 = {.ca = "ca.pem", .alpn = "\x08http/1.1\x02h2", .alpn_len = 12};
    struct result r = handshake(ctx, &h2);
    assert_true(r.ok);
    assert_string_equal(r.alpn, "h2");
    /* Offering ALPN without h2 fails the handshake (no_application_protocol). */
    struct client h1 = {.ca = "ca.pem", .alpn = "\x08http/1.1", .alpn_len = 9};
    assert_false(handshake(ctx, &h1).ok);
    th_tls_server_destroy(t);
}

static void test_ciphers_curves(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    server_cfg(&c, "rsa");
    const char *suites[] = {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"};
    c.cipher_suites = (th_strlist_t){suites, 2};
    const char *curves[] = {"P384", "X25519"};
    c.curve_preferences = (th_strlist_t){curves, 2};
    c.max_version = "1.2";
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    SSL_CTX *ctx = th_tls_server_ctx(t);
    struct result r = handshake(ctx, &trusting);
    assert_true(r.ok);
    assert_string_equal(r.cipher, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
    /* A client with only a suite not in the list: refused. */
    struct client aes128 = {.ca = "ca.pem", .cipher = "ECDHE-RSA-AES128-GCM-SHA256"};
    assert_false(handshake(ctx, &aes128).ok);
    th_tls_server_destroy(t);
}

static char *slurp(const char *name)
{
    char p[256];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    static char buf[3][8192];
    static int i;
    i = (i + 1) % 3;
    size_t n = fread(buf[i], 1, sizeof(buf[i]) - 1, f);
    fclose(f);
    buf[i][n] = '\0';
    return buf[i];
}

static void test_inline_pem(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    th_tls_server_cfg_default(&c);
    c.cert_pem = slurp("server2.pem");
    c.key_pem = slurp("server2.key");
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    struct result r = handshake(th_tls_server_ctx(t), &trusting);
    assert_true(r.ok);
    unsigned char want[32];
    file_sha256("server2.pem", want);
    assert_memory_equal(r.peer_sha256, want, 32);
    th_tls_server_destroy(t);
    /* A mismatched inline pair names the keys, not the text. */
    c.key_pem = slurp("server.key");
    expect_load(&c,
                "x::tls::key_pem: the private key does not match the certificate of "
                "x::tls::cert_pem",
                NULL);
}

/* ---- Reloading ---------------------------------------------------------------------------- */

static void copy(const char *from, const char *to)
{
    sh("cp %s %s.tmp && mv %s.tmp %s", from, to, to, to);
}

static void test_reload(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    copy("server.pem", "live.pem");
    copy("server.key", "live.key");
    server_cfg(&c, "live");
    c.reload_interval = 1; /* 1 ns: every new connection looks at the files */
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    SSL_CTX *first = th_tls_server_ctx(t);
    unsigned char one[32], two[32];
    file_sha256("server.pem", one);
    file_sha256("server2.pem", two);
    struct result r = handshake(first, &trusting);
    assert_true(r.ok);
    assert_memory_equal(r.peer_sha256, one, 32);
    /* Unchanged files: the same context. */
    assert_ptr_equal(th_tls_server_ctx(t), first);
    assert_int_equal(th_tls_server_generation(t), 1);

    /* Replace both files: new connections get the new certificate; the old context stays
     * usable for connections that already have it. */
    copy("server2.pem", "live.pem");
    copy("server2.key", "live.key");
    SSL_CTX *second = th_tls_server_ctx(t);
    assert_ptr_not_equal(second, first);
    assert_int_equal(th_tls_server_generation(t), 2);
    r = handshake(second, &trusting);
    assert_true(r.ok);
    assert_memory_equal(r.peer_sha256, two, 32);
    assert_true(handshake(first, &trusting).ok);

    /* Half a replacement (new cert, old key) fails: the previous context stays. */
    copy("server.pem", "live.pem");
    assert_ptr_equal(th_tls_server_ctx(t), second);
    assert_ptr_equal(th_tls_server_ctx(t), second); /* reported once, still kept */
    assert_int_equal(th_tls_server_generation(t), 2);
    /* A garbage certificate: the same. */
    copy("garbage.pem", "live.pem");
    assert_ptr_equal(th_tls_server_ctx(t), second);
    /* The missing half arrives: the pair loads. */
    copy("server.pem", "live.pem");
    copy("server.key", "live.key");
    SSL_CTX *third = th_tls_server_ctx(t);
    assert_ptr_not_equal(third, second);
    assert_int_equal(th_tls_server_generation(t), 3);
    r = handshake(third, &trusting);
    assert_true(r.ok);
    assert_memory_equal(r.peer_sha256, one, 32);
    /* A removed file: kept as well. */
    char p[256];
    path_of(p, sizeof(p), "live.pem");
    unlink(p);
    assert_ptr_equal(th_tls_server_ctx(t), third);
    th_tls_server_destroy(t);
}

static void test_reload_off(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    copy("server.pem", "still.pem");
    copy("server.key", "still.key");
    server_cfg(&c, "still");
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    SSL_CTX *first = th_tls_server_ctx(t);
    copy("server2.pem", "still.pem");
    copy("server2.key", "still.key");
    assert_ptr_equal(th_tls_server_ctx(t), first);
    /* An explicit load (a restart) picks the new files up. */
    char err[512];
    assert_int_equal(th_tls_server_load(t, err, sizeof(err)), 0);
    assert_ptr_not_equal(th_tls_server_ctx(t), first);
    th_tls_server_destroy(t);
}

static void test_client_ca_reload(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    char ca[256];
    copy("ca2.pem", "clientca.pem");
    server_cfg(&c, "server");
    path_of(ca, sizeof(ca), "clientca.pem");
    c.client_ca_file = ca;
    c.client_ca_file_reload = true;
    th_tls_server_t *t = load(&c, TH_TLS_ALPN_NONE);
    struct client good = {.ca = "ca.pem", .cert = "client"};
    assert_false(handshake(th_tls_server_ctx(t), &good).ok);
    copy("ca.pem", "clientca.pem");
    usleep(1100 * 1000); /* the CA file is looked at once a second */
    SSL_CTX *ctx = th_tls_server_ctx(t);
    assert_int_equal(th_tls_server_generation(t), 2);
    assert_true(handshake(ctx, &good).ok);
    th_tls_server_destroy(t);
}

/* ---- The collector's HTTP server over TLS --------------------------------------------------- */

static int hello(void *data, const struct th_http_request *req, struct th_http_response *res)
{
    (void)data;
    (void)req;
    return th_buf_printf(&res->body, "hello over tls");
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void test_http_server_tls(void **state)
{
    (void)state;
    struct th_tls_server_cfg c;
    server_cfg(&c, "server");
    struct th_http_server_cfg sc = {.endpoint = "127.0.0.1:0", .handler = hello, .tls = &c};
    th_http_server_t *s = NULL;
    char err[512];
    assert_int_equal(th_http_server_start(&sc, &s, err, sizeof(err)), 0);
    int port = th_http_server_port(s);

    /* HTTPS: the answer comes back. */
    SSL_CTX *cctx = client_ctx(&trusting);
    SSL *ssl = SSL_new(cctx);
    int fd = connect_to(port);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    assert_int_equal(SSL_connect(ssl), 1);
    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_int_equal(SSL_write(ssl, req, (int)sizeof(req) - 1), (int)sizeof(req) - 1);
    char buf[2048];
    size_t got = 0;
    int n;
    while ((n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got))) > 0) {
        got += (size_t)n;
    }
    buf[got] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "hello over tls"));
    SSL_free(ssl);
    close(fd);

    /* Plaintext on the TLS port: no HTTP answer, the connection is closed. */
    fd = connect_to(port);
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    got = 0;
    while ((n = (int)read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t)n;
    }
    buf[got] = '\0';
    assert_null(strstr(buf, "HTTP/1.1"));
    assert_null(strstr(buf, "hello"));
    close(fd);
    SSL_CTX_free(cctx);
    th_http_server_stop(s);

    /* A missing file fails the start with the key and file named. */
    char p[256];
    path_of(p, sizeof(p), "absent.pem");
    c.cert_file = p;
    assert_int_equal(th_http_server_start(&sc, &s, err, sizeof(err)), TH_ECONFIG);
    assert_non_null(strstr(err, "tls::cert_file \""));
    assert_non_null(strstr(err, "absent.pem\": No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),           cmocka_unit_test(test_check),
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_handshake_defaults),
        cmocka_unit_test(test_min_version_13),  cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_alpn_h2),         cmocka_unit_test(test_ciphers_curves),
        cmocka_unit_test(test_inline_pem),      cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_off),      cmocka_unit_test(test_client_ca_reload),
        cmocka_unit_test(test_http_server_tls),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
