/*
 * TLS for the collector's servers: the one `tls` field table every server shares, its checks,
 * and th_tls_server_t, which turns the block into an OpenSSL server context and replaces that
 * context when the files change (reload_interval, client_ca_file_reload).
 *
 * Files are read whole into memory and parsed from there, so what is hashed to notice a change
 * is exactly what is loaded. A reload builds a complete new SSL_CTX; the old one is retired,
 * not freed at once, because h2o creates a connection's SSL object only when its first bytes
 * arrive and until then holds a bare pointer to the context. Key bytes are wiped after use and
 * never appear in a message.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <h2o.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "th/log.h"
#include "th/tls.h"

/* Cert, key and CA bundles are small; a bigger file is a mistake (or hostile). */
#define MAX_PEM_FILE ((size_t)1 << 20)
/* A retired context is freed this long after a reload: far beyond h2o's 10 s handshake
 * timeout, the longest a connection can hold it without an SSL object of its own. */
#define RETIRE_NS ((uint64_t)300 * 1000000000)
/* client_ca_file_reload without reload_interval: how often the CA file is looked at. */
#define CA_RELOAD_NS ((uint64_t)1000000000)

/* ---- The field table ----------------------------------------------------------------------- */

static const char *const tls_versions[] = {"", "1.0", "1.1", "1.2", "1.3", NULL};

#define OFF(f) offsetof(struct th_tls_server_cfg, f)

const struct th_cfg_field th_tls_server_config_fields[] = {
    {.name = "cert_file",
     .type = TH_CFG_STRING,
     .offset = OFF(cert_file),
     .desc = "PEM file with the server certificate, then any intermediate certificates"},
    {.name = "cert_pem",
     .type = TH_CFG_STRING,
     .offset = OFF(cert_pem),
     .desc = "the server certificate as PEM text (instead of cert_file)"},
    {.name = "key_file",
     .type = TH_CFG_STRING,
     .offset = OFF(key_file),
     .desc = "PEM file with the server's private key (unencrypted)"},
    {.name = "key_pem",
     .type = TH_CFG_STRING,
     .offset = OFF(key_pem),
     .flags = TH_CFG_F_SECRET,
     .desc = "the private key as PEM text (instead of key_file; never logged)"},
    {.name = "client_ca_file",
     .type = TH_CFG_STRING,
     .offset = OFF(client_ca_file),
     .desc = "PEM CA bundle: turns on mTLS; clients must present a certificate it signed"},
    {.name = "client_ca_file_reload",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = OFF(client_ca_file_reload),
     .desc = "re-read client_ca_file when it changes (looked at once a second, on new "
             "connections)"},
    {.name = "min_version",
     .type = TH_CFG_ENUM,
     .def = TH_TLS_DEFAULT_MIN_VERSION,
     .offset = OFF(min_version),
     .choices = tls_versions,
     .desc = "lowest TLS version accepted: 1.0, 1.1, 1.2 or 1.3 (\"\": 1.2)"},
    {.name = "max_version",
     .type = TH_CFG_ENUM,
     .def = "",
     .offset = OFF(max_version),
     .choices = tls_versions,
     .desc = "highest TLS version accepted (\"\": the newest, 1.3)"},
    {.name = "cipher_suites",
     .type = TH_CFG_STRLIST,
     .offset = OFF(cipher_suites),
     .desc = "TLS 1.0-1.2 cipher suites allowed, by IANA name (empty: OpenSSL's defaults; "
             "TLS 1.3 suites are not configurable, as in Go)"},
    {.name = "include_insecure_cipher_suites",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = OFF(include_insecure_cipher_suites),
     .desc = "allow the suites Go lists as insecure (3DES, RC4, CBC-SHA256) in cipher_suites"},
    {.name = "curve_preferences",
     .type = TH_CFG_STRLIST,
     .offset = OFF(curve_preferences),
     .desc = "key exchange groups in preference order: X25519, P256, P384, P521 (empty: "
             "OpenSSL's defaults)"},
    {.name = "reload_interval",
     .type = TH_CFG_DURATION,
     .def = "0s",
     .offset = OFF(reload_interval),
     .min = 0,
     .max = INFINITY,
     .desc = "re-read cert, key and client CA files this often, on a new connection, and "
             "serve new connections with them when they changed (0: never)"},
    {.name = "ca_file",
     .type = TH_CFG_STRING,
     .offset = OFF(ca_file),
     .flags = TH_CFG_F_NOOP | TH_CFG_F_NOT_HERE,
     .desc = "CA for verifying servers; unused on a server, as in the Collector (mTLS is "
             "client_ca_file)"},
    {.name = "ca_pem",
     .type = TH_CFG_STRING,
     .offset = OFF(ca_pem),
     .flags = TH_CFG_F_NOOP | TH_CFG_F_NOT_HERE,
     .desc = "ca_file as PEM text; unused on a server"},
    {.name = "include_system_ca_certs_pool",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = OFF(include_system_ca_certs_pool),
     .flags = TH_CFG_F_NOOP | TH_CFG_F_NOT_HERE,
     .desc = "add the system CAs to ca_file's; unused on a server"},
    {.name = "tpm",
     .type = TH_CFG_NODE,
     .offset = OFF(tpm),
     .desc = "private key held in a TPM (not supported: setting it is an error)"},
    {.name = NULL},
};

void th_tls_server_cfg_default(struct th_tls_server_cfg *out)
{
    memset(out, 0, sizeof(*out));
    out->ca_file = out->ca_pem = out->cert_file = out->cert_pem = "";
    out->key_file = out->key_pem = out->client_ca_file = out->max_version = "";
    out->min_version = TH_TLS_DEFAULT_MIN_VERSION;
}

/* ---- Names: versions, cipher suites, curves -------------------------------------------------- */

static bool set(const char *s)
{
    return s && *s;
}

int th_tls_version(const char *v, int dflt)
{
    if (!set(v)) {
        return dflt;
    }
    static const struct {
        const char *name;
        int version;
    } versions[] = {
        {"1.0", TLS1_VERSION},
        {"1.1", TLS1_1_VERSION},
        {"1.2", TLS1_2_VERSION},
        {"1.3", TLS1_3_VERSION},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(versions); i++) {
        if (!strcmp(v, versions[i].name)) {
            return versions[i].version;
        }
    }
    return -1;
}

/* The suites Go's crypto/tls knows (tls.CipherSuites and tls.InsecureCipherSuites), which
 * are the names configtls accepts. TLS 1.3 suites are accepted and have no effect. */
static const struct {
    const char *name;
    bool insecure;
    bool tls13;
} go_suites[] = {
    {"TLS_AES_128_GCM_SHA256", false, true},
    {"TLS_AES_256_GCM_SHA384", false, true},
    {"TLS_CHACHA20_POLY1305_SHA256", false, true},
    {"TLS_RSA_WITH_AES_128_CBC_SHA", false, false},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", false, false},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", false, false},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", false, false},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, false},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, false},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, false},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, false},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, false},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, false},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, false},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, false},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, false},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, false},
    {"TLS_RSA_WITH_RC4_128_SHA", true, false},
    {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", true, false},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", true, false},
    {"TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", true, false},
    {"TLS_ECDHE_RSA_WITH_RC4_128_SHA", true, false},
    {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", true, false},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", true, false},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", true, false},
};

static int suite_index(const char *name)
{
    for (size_t i = 0; i < TH_ARRAY_SIZE(go_suites); i++) {
        if (!strcmp(go_suites[i].name, name)) {
            return (int)i;
        }
    }
    return -1;
}

/* Go's curve names (configtls) and OpenSSL's group names for them. */
static const struct {
    const char *go;
    const char *ossl;
} curves[] = {
    {"X25519", "X25519"},
    {"P256", "P-256"},
    {"P384", "P-384"},
    {"P521", "P-521"},
};

static const char *curve_of(const char *go)
{
    for (size_t i = 0; i < TH_ARRAY_SIZE(curves); i++) {
        if (!strcmp(curves[i].go, go)) {
            return curves[i].ossl;
        }
    }
    return NULL;
}

/* ---- Checks -------------------------------------------------------------------------------- */

int th_tls_server_cfg_check(const struct th_tls_server_cfg *cfg, const char *path, char *err,
                            size_t errlen)
{
    const char *p = path ? path : "tls";
    if (set(cfg->cert_file) && set(cfg->cert_pem)) {
        snprintf(err, errlen, "%s: cert_file and cert_pem are both set; use one", p);
        return TH_ECONFIG;
    }
    if (set(cfg->key_file) && set(cfg->key_pem)) {
        snprintf(err, errlen, "%s: key_file and key_pem are both set; use one", p);
        return TH_ECONFIG;
    }
    bool cert = set(cfg->cert_file) || set(cfg->cert_pem);
    bool key = set(cfg->key_file) || set(cfg->key_pem);
    if (!cert || !key) {
        snprintf(err, errlen,
                 "%s: a TLS server needs a certificate and its private key: set %s (or "
                 "remove the tls block to serve plaintext)",
                 p,
                 !cert && !key ? "cert_file and key_file"
                 : !cert       ? "cert_file (or cert_pem)"
                               : "key_file (or key_pem)");
        return TH_ECONFIG;
    }
    int min = th_tls_version(cfg->min_version, TLS1_2_VERSION);
    int max = th_tls_version(cfg->max_version, TLS1_3_VERSION);
    if (min < 0) {
        snprintf(err, errlen,
                 "%s::min_version: unknown TLS version \"%s\" (use 1.0, 1.1, 1.2 or "
                 "1.3)",
                 p, cfg->min_version);
        return TH_ECONFIG;
    }
    if (max < 0) {
        snprintf(err, errlen,
                 "%s::max_version: unknown TLS version \"%s\" (use 1.0, 1.1, 1.2 or "
                 "1.3)",
                 p, cfg->max_version);
        return TH_ECONFIG;
    }
    if (min > max) {
        snprintf(err, errlen, "%s: min_version %s is above max_version %s", p,
                 set(cfg->min_version) ? cfg->min_version : "1.2", cfg->max_version);
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < cfg->cipher_suites.n; i++) {
        const char *s = cfg->cipher_suites.v[i];
        int k = suite_index(s);
        if (k < 0) {
            snprintf(err, errlen,
                     "%s::cipher_suites: unknown cipher suite \"%s\" (use IANA "
                     "names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                     p, s);
            return TH_ECONFIG;
        }
        if (go_suites[k].insecure && !cfg->include_insecure_cipher_suites) {
            snprintf(err, errlen,
                     "%s::cipher_suites: %s is insecure; set "
                     "include_insecure_cipher_suites to allow it",
                     p, s);
            return TH_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->curve_preferences.n; i++) {
        if (!curve_of(cfg->curve_preferences.v[i])) {
            snprintf(err, errlen,
                     "%s::curve_preferences: unsupported curve \"%s\" (use X25519, "
                     "P256, P384 or P521)",
                     p, cfg->curve_preferences.v[i]);
            return TH_ECONFIG;
        }
    }
    if (cfg->client_ca_file_reload && !set(cfg->client_ca_file)) {
        snprintf(err, errlen, "%s::client_ca_file_reload: needs client_ca_file", p);
        return TH_ECONFIG;
    }
    if (cfg->reload_interval < 0) {
        snprintf(err, errlen, "%s::reload_interval: must not be negative", p);
        return TH_ECONFIG;
    }
    if (cfg->tpm && cfg->tpm->kind != TH_NODE_NULL) {
        snprintf(err, errlen, "%s::tpm: keys held in a TPM are not supported; use key_file", p);
        return TH_ECONFIG;
    }
    return 0;
}

int th_tls_server_cfg_check_static(const struct th_tls_server_cfg *cfg, const char *path,
                                   const char **err)
{
    static _Thread_local char buf[512];
    int ret = th_tls_server_cfg_check(cfg, path, buf, sizeof(buf));
    if (ret != 0) {
        *err = buf;
    }
    return ret;
}

/* ---- Loading ------------------------------------------------------------------------------- */

/* The bytes a context is built from. */
struct material {
    char *cert;
    size_t cert_len;
    char *key;
    size_t key_len;
    char *ca;
    size_t ca_len;
};

struct retired {
    SSL_CTX *ctx;
    uint64_t at_ns;
    struct retired *next;
};

struct th_tls_server {
    pthread_mutex_t mu;
    th_arena_t *arena; /* copies of the config's strings (not key_pem) */
    struct th_tls_server_cfg cfg;
    char *key_pem; /* heap, wiped when freed */
    char *path;
    enum th_tls_alpn alpn;
    const struct th_component *log_as;

    SSL_CTX *cur;
    struct retired *retired;
    struct material m; /* what cur was built from: a CA-only reload reuses cert and key */
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned char failed[EVP_MAX_MD_SIZE]; /* the last set of files that did not load */
    bool failed_set;
    char last_warning[512]; /* a failure is logged when it differs from the one before */
    uint64_t generation;
    uint64_t next_full_ns; /* cert, key and CA due */
    uint64_t next_ca_ns;   /* the CA alone due */
};

static void wipe_free(char *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        th_free(p);
    }
}

static void material_free(struct material *m)
{
    th_free(m->cert);
    wipe_free(m->key, m->key_len);
    th_free(m->ca);
    *m = (struct material){0};
}

const char *th_tls_reason(char *buf, size_t cap, const char *dflt)
{
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (!e) {
        return dflt;
    }
    const char *r = ERR_reason_error_string(e);
    if (r) {
        return r;
    }
    ERR_error_string_n(e, buf, cap);
    return buf;
}

/* Read a whole file (bounded); the message names the key and the path. */
static int read_file(const char *path, const char *key, const char *file, char **out, size_t *len,
                     char *err, size_t errlen)
{
    int rc = th_file_read(file, MAX_PEM_FILE, out, len);
    if (rc == TH_ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (rc == TH_E2BIG || (rc == TH_EIO && errno == EISDIR)) {
        snprintf(err, errlen, "%s::%s \"%s\": not a regular file of at most 1 MiB", path, key,
                 file);
    } else if (rc != 0) {
        snprintf(err, errlen, "%s::%s \"%s\": %s", path, key, file, strerror(errno));
    }
    return rc == 0 ? 0 : TH_ECONFIG;
}

static int copy_pem(const char *pem, char **out, size_t *len, char *err, size_t errlen)
{
    *len = strlen(pem);
    *out = th_strndup(pem, *len);
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    return 0;
}

/* Fill @p m from the files and PEM strings; with @p ca_only, take cert and key from @p prev. */
static int material_read(th_tls_server_t *t, bool ca_only, const struct material *prev,
                         struct material *m, char *err, size_t errlen)
{
    const struct th_tls_server_cfg *c = &t->cfg;
    int ret = 0;
    *m = (struct material){0};
    if (ca_only) {
        m->cert = th_strndup(prev->cert, prev->cert_len);
        m->key = th_malloc(prev->key_len + 1);
        if (!m->cert || !m->key) {
            snprintf(err, errlen, "out of memory");
            ret = TH_ENOMEM;
            goto out;
        }
        memcpy(m->key, prev->key, prev->key_len + 1);
        m->cert_len = prev->cert_len;
        m->key_len = prev->key_len;
    } else {
        ret = set(c->cert_file) ? read_file(t->path, "cert_file", c->cert_file, &m->cert,
                                            &m->cert_len, err, errlen)
                                : copy_pem(c->cert_pem, &m->cert, &m->cert_len, err, errlen);
        if (ret == 0) {
            ret = set(c->key_file) ? read_file(t->path, "key_file", c->key_file, &m->key,
                                               &m->key_len, err, errlen)
                                   : copy_pem(t->key_pem, &m->key, &m->key_len, err, errlen);
        }
        if (ret != 0) {
            goto out;
        }
    }
    if (set(c->client_ca_file)) {
        ret = read_file(t->path, "client_ca_file", c->client_ca_file, &m->ca, &m->ca_len, err,
                        errlen);
    }
out:
    if (ret != 0) {
        material_free(m);
    }
    return ret;
}

static int material_digest(const struct material *m, unsigned char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    const struct {
        const char *p;
        size_t n;
    } parts[] = {{m->cert, m->cert_len}, {m->key, m->key_len}, {m->ca, m->ca_len}};
    for (size_t i = 0; ok && i < TH_ARRAY_SIZE(parts); i++) {
        uint64_t n = parts[i].n; /* lengths keep "ab"+"c" apart from "a"+"bc" */
        ok = EVP_DigestUpdate(md, &n, sizeof(n)) && (n == 0 || EVP_DigestUpdate(md, parts[i].p, n));
    }
    ok = ok && EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
    return ok ? 0 : TH_ENOMEM;
}

/* Where a piece of material came from, for messages. */
static void origin(const th_tls_server_t *t, const char *key, const char *file, char *out,
                   size_t cap)
{
    if (set(file)) {
        snprintf(out, cap, "%s::%s \"%s\"", t->path, key, file);
    } else {
        snprintf(out, cap, "%s::%s", t->path, !strcmp(key, "cert_file") ? "cert_pem" : "key_pem");
    }
}

/* Certificate, then the chain, from PEM bytes. */
static int use_cert_chain(th_tls_server_t *t, SSL_CTX *ctx, const struct material *m, char *err,
                          size_t errlen)
{
    char where[1200], eb[256];
    origin(t, "cert_file", t->cfg.cert_file, where, sizeof(where));
    BIO *bio = BIO_new_mem_buf(m->cert, (int)m->cert_len);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    int ret = TH_ECONFIG;
    if (!leaf) {
        snprintf(err, errlen, "%s: no PEM certificate found (%s)", where,
                 th_tls_reason(eb, sizeof(eb), "empty"));
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
        snprintf(err, errlen, "%s: certificate refused: %s", where,
                 th_tls_reason(eb, sizeof(eb), "unknown error"));
        goto out;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            snprintf(err, errlen, "%s: chain certificate refused: %s", where,
                     th_tls_reason(eb, sizeof(eb), "unknown error"));
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the PEM data */
    ret = 0;
out:
    X509_free(leaf);
    BIO_free(bio);
    return ret;
}

static int use_key(th_tls_server_t *t, SSL_CTX *ctx, const struct material *m, char *err,
                   size_t errlen)
{
    char where[1200], cwhere[1200], eb[256];
    origin(t, "key_file", t->cfg.key_file, where, sizeof(where));
    BIO *bio = BIO_new_mem_buf(m->key, (int)m->key_len);
    /* No password callback: an encrypted key fails instead of prompting on the terminal. */
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
    int ret = TH_ECONFIG;
    if (!key) {
        snprintf(err, errlen, "%s: no unencrypted PEM private key found (%s)", where,
                 th_tls_reason(eb, sizeof(eb), "empty"));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        origin(t, "cert_file", t->cfg.cert_file, cwhere, sizeof(cwhere));
        snprintf(err, errlen, "%s: the private key does not match the certificate of %s", where,
                 cwhere);
        goto out;
    }
    ret = 0;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ret;
}

/* client_ca_file: every certificate becomes a trust anchor for client certificates and is
 * named in the CertificateRequest; clients without a valid certificate fail the handshake. */
static int use_client_ca(th_tls_server_t *t, SSL_CTX *ctx, const struct material *m, char *err,
                         size_t errlen)
{
    char eb[256];
    BIO *bio = BIO_new_mem_buf(m->ca, (int)m->ca_len);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int ret = TH_ECONFIG;
    size_t n = 0;
    if (!bio || !names) {
        snprintf(err, errlen, "out of memory");
        ret = TH_ENOMEM;
        goto out;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        int ok = X509_STORE_add_cert(store, ca) == 1 && name && sk_X509_NAME_push(names, name);
        if (!ok) {
            X509_NAME_free(name);
            X509_free(ca);
            snprintf(err, errlen, "%s::client_ca_file \"%s\": certificate refused: %s", t->path,
                     t->cfg.client_ca_file, th_tls_reason(eb, sizeof(eb), "unknown error"));
            goto out;
        }
        X509_free(ca);
        n++;
    }
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, errlen, "%s::client_ca_file \"%s\": no PEM certificate found", t->path,
                 t->cfg.client_ca_file);
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    ret = 0;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    BIO_free(bio);
    return ret;
}

/* cipher_suites: Go's IANA names to OpenSSL's, through the names OpenSSL itself reports. */
static int use_ciphers(th_tls_server_t *t, SSL_CTX *ctx, char *err, size_t errlen)
{
    const th_strlist_t *l = &t->cfg.cipher_suites;
    size_t cap = 1;
    for (size_t i = 0; i < l->n; i++) {
        cap += strlen(l->v[i]) + 1;
    }
    char *list = th_calloc(1, cap);
    SSL_CTX *all = SSL_CTX_new(TLS_server_method());
    int ret = TH_ECONFIG;
    if (!list || !all || SSL_CTX_set_cipher_list(all, "ALL:COMPLEMENTOFALL:@SECLEVEL=0") != 1) {
        snprintf(err, errlen, "out of memory");
        ret = TH_ENOMEM;
        goto out;
    }
    STACK_OF(SSL_CIPHER) *known = SSL_CTX_get_ciphers(all);
    size_t used = 0;
    for (size_t i = 0; i < l->n; i++) {
        int k = suite_index(l->v[i]);
        if (k >= 0 && go_suites[k].tls13) {
            continue; /* as in Go: TLS 1.3 suites are not configurable */
        }
        const char *ossl = NULL;
        for (int j = 0; j < sk_SSL_CIPHER_num(known) && !ossl; j++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(known, j);
            const char *std = SSL_CIPHER_standard_name(c);
            if (std && !strcmp(std, l->v[i])) {
                ossl = SSL_CIPHER_get_name(c);
            }
        }
        if (!ossl) {
            snprintf(err, errlen, "%s::cipher_suites: %s is not available in this OpenSSL build",
                     t->path, l->v[i]);
            goto out;
        }
        size_t need = strlen(ossl) + 2;
        if (used + need > cap) { /* OpenSSL names are shorter; never true in practice */
            snprintf(err, errlen, "%s::cipher_suites: name too long", t->path);
            goto out;
        }
        used += (size_t)snprintf(list + used, cap - used, "%s%s", used ? ":" : "", ossl);
    }
    if (used > 0 && SSL_CTX_set_cipher_list(ctx, list) != 1) {
        char eb[256];
        snprintf(err, errlen, "%s::cipher_suites: refused by OpenSSL: %s", t->path,
                 th_tls_reason(eb, sizeof(eb), "no usable suite"));
        goto out;
    }
    ret = 0;
out:
    SSL_CTX_free(all);
    th_free(list);
    return ret;
}

static int use_curves(th_tls_server_t *t, SSL_CTX *ctx, char *err, size_t errlen)
{
    const th_strlist_t *l = &t->cfg.curve_preferences;
    if (l->n == 0) {
        return 0;
    }
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < l->n && i < 8; i++) {
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ":" : "",
                                 curve_of(l->v[i]));
    }
    if (SSL_CTX_set1_groups_list(ctx, list) != 1) {
        char eb[256];
        snprintf(err, errlen, "%s::curve_preferences: refused by OpenSSL: %s", t->path,
                 th_tls_reason(eb, sizeof(eb), "unknown group"));
        return TH_ECONFIG;
    }
    return 0;
}

/* gRPC: "h2" or nothing. Returning a fatal alert ends a handshake whose client offered
 * ALPN without h2 (a client that offers no ALPN is refused after the handshake). */
static int on_alpn_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                      const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen) {
            break;
        }
        if (n == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool th_tls_alpn_ok(const SSL *ssl, enum th_tls_alpn alpn)
{
    if (alpn != TH_TLS_ALPN_H2) {
        return true;
    }
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && p[0] == 'h' && p[1] == '2';
}

static int build(th_tls_server_t *t, const struct material *m, SSL_CTX **out, char *err,
                 size_t errlen)
{
    static const unsigned char sid_ctx[] = "tracehouse";
    char eb[256];
    int ret = TH_ENOMEM;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "%s: cannot create a TLS context: %s", t->path,
                 th_tls_reason(eb, sizeof(eb), "out of memory"));
        goto fail;
    }
    /* Checked by th_tls_server_cfg_check already. */
    int min = th_tls_version(t->cfg.min_version, TLS1_2_VERSION);
    int max = th_tls_version(t->cfg.max_version, TLS1_3_VERSION);
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max) != 1) {
        snprintf(err, errlen, "%s: TLS versions %s..%s refused by OpenSSL", t->path,
                 t->cfg.min_version, t->cfg.max_version);
        ret = TH_ECONFIG;
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* Session resumption with client certificates needs a session id context. */
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if ((ret = use_cert_chain(t, ctx, m, err, errlen)) != 0 ||
        (ret = use_key(t, ctx, m, err, errlen)) != 0 ||
        (m->ca && (ret = use_client_ca(t, ctx, m, err, errlen)) != 0) ||
        (ret = use_ciphers(t, ctx, err, errlen)) != 0 ||
        (ret = use_curves(t, ctx, err, errlen)) != 0) {
        goto fail;
    }
    if (t->alpn == TH_TLS_ALPN_H2) {
        SSL_CTX_set_alpn_select_cb(ctx, on_alpn_h2, NULL);
    } else if (t->alpn == TH_TLS_ALPN_HTTP) {
        h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return ret;
}

/* Free the retired contexts old enough that nobody can still be about to use them. */
static void prune(th_tls_server_t *t, uint64_t now, bool all)
{
    struct retired **pp = &t->retired;
    while (*pp) {
        struct retired *r = *pp;
        if (all || (now > r->at_ns && now - r->at_ns >= RETIRE_NS)) {
            *pp = r->next;
            SSL_CTX_free(r->ctx);
            th_free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* Read, compare and maybe swap; called with the lock held. @p ca_only rereads only the CA.
 * @return 0 (swapped or unchanged), or the error with @p err set. */
static int reload(th_tls_server_t *t, bool ca_only, bool *changed, char *err, size_t errlen)
{
    struct material m;
    unsigned char d[EVP_MAX_MD_SIZE] = {0}; /* SHA-256 fills 32 bytes; the rest compares too */
    SSL_CTX *ctx = NULL;
    *changed = false;
    int ret = material_read(t, ca_only && t->cur, &t->m, &m, err, errlen);
    if (ret != 0) {
        return ret;
    }
    if ((ret = material_digest(&m, d)) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (t->cur && !memcmp(d, t->digest, sizeof(d))) {
        goto out; /* unchanged */
    }
    if (t->failed_set && !memcmp(d, t->failed, sizeof(d))) {
        ret = TH_AGAIN; /* the same files failed before: already reported */
        goto out;
    }
    if ((ret = build(t, &m, &ctx, err, errlen)) != 0) {
        memcpy(t->failed, d, sizeof(d));
        t->failed_set = true;
        goto out;
    }
    if (t->cur) {
        struct retired *r = th_calloc(1, sizeof(*r));
        if (!r) {
            SSL_CTX_free(ctx);
            snprintf(err, errlen, "out of memory");
            ret = TH_ENOMEM;
            goto out;
        }
        r->ctx = t->cur;
        r->at_ns = th_now_mono_ns();
        r->next = t->retired;
        t->retired = r;
    }
    t->cur = ctx;
    memcpy(t->digest, d, sizeof(d));
    t->failed_set = false;
    material_free(&t->m);
    t->m = m;
    m = (struct material){0};
    __atomic_add_fetch(&t->generation, 1, __ATOMIC_RELAXED);
    *changed = true;
out:
    material_free(&m);
    return ret;
}

int th_tls_server_create(const struct th_tls_server_cfg *cfg, const struct th_tls_server_opts *opts,
                         th_tls_server_t **out, char *err, size_t errlen)
{
    const char *path = opts && set(opts->path) ? opts->path : "tls";
    int ret = th_tls_server_cfg_check(cfg, path, err, errlen);
    if (ret != 0) {
        return ret;
    }
    th_tls_server_t *t = th_calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    ret = TH_ENOMEM;
    t->arena = th_arena_create(1024, 0);
    if (!t->arena) {
        goto fail;
    }
    t->alpn = opts ? opts->alpn : TH_TLS_ALPN_NONE;
    t->log_as = opts ? opts->log_as : NULL;
    t->cfg = *cfg;
    th_arena_t *a = t->arena;
#define DUP(s) ((s) ? th_arena_strndup(a, (s), strlen(s)) : th_arena_strndup(a, "", 0))
    t->path = DUP(path);
    t->cfg.ca_file = t->cfg.ca_pem = ""; /* unused on a server */
    t->cfg.cert_file = DUP(cfg->cert_file);
    t->cfg.cert_pem = DUP(cfg->cert_pem);
    t->cfg.key_file = DUP(cfg->key_file);
    t->cfg.key_pem = ""; /* the secret is kept apart, in memory that is wiped */
    t->cfg.min_version = DUP(cfg->min_version);
    t->cfg.max_version = DUP(cfg->max_version);
    t->cfg.client_ca_file = DUP(cfg->client_ca_file);
    t->cfg.tpm = NULL;
#undef DUP
    t->key_pem = th_strdup(cfg->key_pem ? cfg->key_pem : "");
    if (!t->path || !t->cfg.cert_file || !t->cfg.cert_pem || !t->cfg.key_file ||
        !t->cfg.min_version || !t->cfg.max_version || !t->cfg.client_ca_file || !t->key_pem) {
        goto fail;
    }
    const th_strlist_t *lists[] = {&cfg->cipher_suites, &cfg->curve_preferences};
    th_strlist_t *copies[] = {&t->cfg.cipher_suites, &t->cfg.curve_preferences};
    for (size_t i = 0; i < 2; i++) {
        copies[i]->n = lists[i]->n;
        copies[i]->v = th_arena_calloc(a, lists[i]->n + 1, sizeof(char *));
        if (!copies[i]->v) {
            goto fail;
        }
        for (size_t j = 0; j < lists[i]->n; j++) {
            copies[i]->v[j] = th_arena_strndup(a, lists[i]->v[j], strlen(lists[i]->v[j]));
            if (!copies[i]->v[j]) {
                goto fail;
            }
        }
    }
    *out = t;
    return 0;
fail:
    snprintf(err, errlen, "out of memory");
    th_tls_server_destroy(t);
    return ret;
}

int th_tls_server_load(th_tls_server_t *t, char *err, size_t errlen)
{
    bool changed;
    pthread_mutex_lock(&t->mu);
    t->failed_set = false; /* an explicit load always reports */
    int ret = reload(t, false, &changed, err, errlen);
    uint64_t now = th_now_mono_ns();
    if (t->cfg.reload_interval > 0) {
        t->next_full_ns = now + (uint64_t)t->cfg.reload_interval;
    }
    t->next_ca_ns = now + CA_RELOAD_NS;
    pthread_mutex_unlock(&t->mu);
    return ret;
}

SSL_CTX *th_tls_server_ctx(th_tls_server_t *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t now = th_now_mono_ns();
    bool full = t->cfg.reload_interval > 0 && now >= t->next_full_ns;
    bool ca = !full && t->cfg.client_ca_file_reload && now >= t->next_ca_ns;
    if (t->cur && (full || ca)) {
        char err[1024];
        bool changed = false;
        int ret = reload(t, ca, &changed, err, sizeof(err));
        if (full) {
            t->next_full_ns = now + (uint64_t)t->cfg.reload_interval;
        }
        t->next_ca_ns = now + CA_RELOAD_NS;
        if (changed) {
            t->last_warning[0] = '\0';
            th_log_info(t->log_as, "%s: %s changed; new connections use the reloaded files",
                        t->path, ca ? "client_ca_file" : "the certificate files");
        } else if (ret < 0 && strncmp(err, t->last_warning, sizeof(t->last_warning) - 1) != 0) {
            /* Once per distinct failure: a file missing for an hour is one line. */
            snprintf(t->last_warning, sizeof(t->last_warning), "%s", err);
            th_log_warn(t->log_as,
                        "%s: reloading TLS files failed, still serving the previous "
                        "certificate: %s",
                        t->path, err);
        }
    }
    if (t->retired) {
        prune(t, now, false);
    }
    SSL_CTX *ctx = t->cur;
    pthread_mutex_unlock(&t->mu);
    return ctx;
}

uint64_t th_tls_server_generation(const th_tls_server_t *t)
{
    return t ? __atomic_load_n(&t->generation, __ATOMIC_RELAXED) : 0;
}

void th_tls_server_destroy(th_tls_server_t *t)
{
    if (!t) {
        return;
    }
    prune(t, 0, true);
    SSL_CTX_free(t->cur);
    material_free(&t->m);
    if (t->key_pem) {
        wipe_free(t->key_pem, strlen(t->key_pem));
    }
    th_arena_destroy(t->arena);
    pthread_mutex_destroy(&t->mu);
    th_free(t);
}
