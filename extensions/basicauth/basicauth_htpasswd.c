/*
 * htpasswd for basicauth: parsing the file format, checking a password against each hash
 * kind, and the Basic credentials of a request. bcrypt and the SHA-crypt family go through
 * libxcrypt's crypt_r; {SHA} and $apr1$ are computed here on OpenSSL's digests ($apr1$ from
 * the algorithm as Apache describes it: MD5-crypt with its own magic string). Hashes are
 * compared in constant time; nothing here logs.
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "extensions/basicauth/basicauth.h"
#include "th/base64.h"

#define APR1_MAGIC     "$apr1$"
#define APR1_SALT_MAX  8
#define APR1_ENC_LEN   22
#define SHA1_LEN       20
#define BCRYPT_HASHLEN 60

/* ---- Parsing ---------------------------------------------------------------------------- */

static bool has_prefix(const char *s, size_t len, const char *p)
{
    size_t pl = strlen(p);
    return len >= pl && !memcmp(s, p, pl);
}

static bool is_crypt64(char c)
{
    return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z');
}

/* What kind of hash this is, with a structural check; -1 for plain text or unknown kinds. */
static int hash_kind(const char *h, size_t len)
{
    if (has_prefix(h, len, "$2y$") || has_prefix(h, len, "$2b$") || has_prefix(h, len, "$2a$")) {
        /* $2y$NN$ + 22 characters of salt + 31 of hash */
        if (len != BCRYPT_HASHLEN || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' ||
            h[6] != '$') {
            return -1;
        }
        for (size_t i = 7; i < len; i++) {
            if (!is_crypt64(h[i])) {
                return -1;
            }
        }
        return TH_HTPASSWD_BCRYPT;
    }
    if (has_prefix(h, len, "$5$") || has_prefix(h, len, "$6$") || has_prefix(h, len, "$1$")) {
        /* $id$[rounds=N$]salt$hash: at least the salt's closing '$' and a hash */
        const char *end = memchr(h + 3, '$', len - 3);
        if (!end || end + 1 >= h + len) {
            return -1;
        }
        return h[1] == '5'   ? TH_HTPASSWD_SHA256CRYPT
               : h[1] == '6' ? TH_HTPASSWD_SHA512CRYPT
                             : TH_HTPASSWD_MD5CRYPT;
    }
    if (has_prefix(h, len, APR1_MAGIC)) {
        const char *s = h + strlen(APR1_MAGIC);
        const char *end = memchr(s, '$', len - strlen(APR1_MAGIC));
        if (!end || end == s || (size_t)(h + len - end - 1) != APR1_ENC_LEN) {
            return -1;
        }
        return TH_HTPASSWD_APR1;
    }
    if (has_prefix(h, len, "{SHA}")) {
        uint8_t d[TH_BASE64_DECODED_MAX(64)];
        size_t dl = 0;
        if (len - 5 > 64 || th_base64_decode(h + 5, len - 5, d, &dl) != 0 || dl != SHA1_LEN) {
            return -1;
        }
        return TH_HTPASSWD_SHA1;
    }
    return -1;
}

static struct th_htpasswd_entry *find(const struct th_htpasswd *h, const char *user, size_t len)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strlen(h->v[i].user) == len && !memcmp(h->v[i].user, user, len)) {
            return &h->v[i];
        }
    }
    return NULL;
}

const struct th_htpasswd_entry *th_htpasswd_find(const struct th_htpasswd *h, const char *user,
                                                 size_t len)
{
    return find(h, user, len);
}

static int add_entry(struct th_htpasswd *h, const char *user, size_t ulen, const char *hash,
                     size_t hlen, enum th_htpasswd_kind kind)
{
    char *u = th_strndup(user, ulen);
    char *x = th_strndup(hash, hlen);
    if (!u || !x) {
        th_free(u);
        th_free(x);
        return TH_ENOMEM;
    }
    struct th_htpasswd_entry *e = find(h, user, ulen);
    if (e) {
        OPENSSL_cleanse(e->hash, strlen(e->hash));
        th_free(e->user);
        th_free(e->hash);
    } else {
        if (h->n == h->cap) {
            size_t cap = h->cap ? h->cap * 2 : 8;
            struct th_htpasswd_entry *v = th_realloc(h->v, cap * sizeof(*v));
            if (!v) {
                th_free(u);
                th_free(x);
                return TH_ENOMEM;
            }
            h->v = v;
            h->cap = cap;
        }
        e = &h->v[h->n++];
    }
    e->user = u;
    e->hash = x;
    e->kind = kind;
    return 0;
}

int th_htpasswd_parse(struct th_htpasswd *h, const char *text, size_t len, const char *source,
                      char *err, size_t errlen)
{
    size_t line_no = 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *l = text + i;
        size_t ll = end - i;
        i = end + 1;
        line_no++;
        while (ll > 0 && (l[ll - 1] == '\r' || l[ll - 1] == ' ' || l[ll - 1] == '\t')) {
            ll--;
        }
        while (ll > 0 && (*l == ' ' || *l == '\t')) {
            l++;
            ll--;
        }
        if (ll == 0 || *l == '#') {
            continue;
        }
        const char *colon = memchr(l, ':', ll);
        if (!colon) {
            snprintf(err, errlen, "htpasswd %s, line %zu: expected user:hash", source, line_no);
            return TH_ECONFIG;
        }
        size_t ulen = (size_t)(colon - l);
        const char *hash = colon + 1;
        size_t hlen = ll - ulen - 1;
        const char *colon2 = memchr(hash, ':', hlen);
        if (colon2) {
            hlen = (size_t)(colon2 - hash);
        }
        if (ulen == 0) {
            snprintf(err, errlen, "htpasswd %s, line %zu: empty user name", source, line_no);
            return TH_ECONFIG;
        }
        if (hlen == 0) {
            snprintf(err, errlen, "htpasswd %s, line %zu: the user has no password hash", source,
                     line_no);
            return TH_ECONFIG;
        }
        int kind = hash_kind(hash, hlen);
        if (kind < 0) {
            snprintf(err, errlen,
                     "htpasswd %s, line %zu: the password is plain text or hashed in a way "
                     "that is not supported; hash it with bcrypt (htpasswd -B), SHA-512-crypt "
                     "(htpasswd -5), SHA-256-crypt (htpasswd -2), $apr1$ (htpasswd -m) or "
                     "{SHA} (htpasswd -s)",
                     source, line_no);
            return TH_ECONFIG;
        }
        if (add_entry(h, l, ulen, hash, hlen, (enum th_htpasswd_kind)kind) != 0) {
            snprintf(err, errlen, "out of memory");
            return TH_ENOMEM;
        }
    }
    return 0;
}

void th_htpasswd_free(struct th_htpasswd *h)
{
    for (size_t i = 0; i < h->n; i++) {
        OPENSSL_cleanse(h->v[i].hash, strlen(h->v[i].hash));
        th_free(h->v[i].user);
        th_free(h->v[i].hash);
    }
    th_free(h->v);
    memset(h, 0, sizeof(*h));
}

/* ---- $apr1$ ------------------------------------------------------------------------------ */

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Six bits at a time, least significant first: the crypt(3) encoding. */
static char *to64(char *s, unsigned long v, int n)
{
    while (n-- > 0) {
        *s++ = itoa64[v & 0x3f];
        v >>= 6;
    }
    return s;
}

static bool md_init(EVP_MD_CTX *c)
{
    return EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1;
}

static bool md_up(EVP_MD_CTX *c, const void *p, size_t n)
{
    return EVP_DigestUpdate(c, p, n) == 1;
}

static bool md_final(EVP_MD_CTX *c, uint8_t out[16])
{
    unsigned int n = 0;
    return EVP_DigestFinal_ex(c, out, &n) == 1 && n == 16;
}

int th_htpasswd_apr1(const char *pw, size_t pwlen, const char *salt, size_t saltlen, char *out,
                     size_t outlen)
{
    static const char magic[] = APR1_MAGIC;
    const size_t ml = sizeof(magic) - 1;
    int ret = TH_ENOMEM;
    uint8_t fin[16];
    saltlen = TH_MIN(saltlen, (size_t)APR1_SALT_MAX);
    if (outlen < ml + saltlen + 1 + APR1_ENC_LEN + 1) {
        return TH_EINVAL;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD_CTX *alt = EVP_MD_CTX_new();
    if (!ctx || !alt) {
        goto out;
    }
    /* The alternate sum: password, salt, password. */
    if (!md_init(alt) || !md_up(alt, pw, pwlen) || !md_up(alt, salt, saltlen) ||
        !md_up(alt, pw, pwlen) || !md_final(alt, fin)) {
        goto out;
    }
    /* The main sum: password, magic, salt, then as many bytes of the alternate sum as the
     * password is long, then one byte per bit of the length (a NUL for a 1 bit, the
     * password's first character for a 0 bit). */
    if (!md_init(ctx) || !md_up(ctx, pw, pwlen) || !md_up(ctx, magic, ml) ||
        !md_up(ctx, salt, saltlen)) {
        goto out;
    }
    for (size_t left = pwlen; left > 0; left -= TH_MIN(left, (size_t)16)) {
        if (!md_up(ctx, fin, TH_MIN(left, (size_t)16))) {
            goto out;
        }
    }
    memset(fin, 0, sizeof(fin));
    for (size_t i = pwlen; i; i >>= 1) {
        if (!md_up(ctx, (i & 1) ? (const void *)fin : (const void *)pw, 1)) {
            goto out;
        }
    }
    if (!md_final(ctx, fin)) {
        goto out;
    }
    /* A thousand rounds to slow guessing down, mixing in password and salt by the round's
     * number. */
    for (int i = 0; i < 1000; i++) {
        if (!md_init(ctx)) {
            goto out;
        }
        bool ok = (i & 1) ? md_up(ctx, pw, pwlen) : md_up(ctx, fin, 16);
        ok = ok && (!(i % 3) || md_up(ctx, salt, saltlen));
        ok = ok && (!(i % 7) || md_up(ctx, pw, pwlen));
        ok = ok && ((i & 1) ? md_up(ctx, fin, 16) : md_up(ctx, pw, pwlen));
        if (!ok || !md_final(ctx, fin)) {
            goto out;
        }
    }
    char *p = out;
    memcpy(p, magic, ml);
    p += ml;
    memcpy(p, salt, saltlen);
    p += saltlen;
    *p++ = '$';
    static const int order[5][3] = {{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
    for (int i = 0; i < 5; i++) {
        unsigned long l = ((unsigned long)fin[order[i][0]] << 16) |
                          ((unsigned long)fin[order[i][1]] << 8) | fin[order[i][2]];
        p = to64(p, l, 4);
    }
    p = to64(p, fin[11], 2);
    *p = '\0';
    ret = 0;
out:
    OPENSSL_cleanse(fin, sizeof(fin));
    EVP_MD_CTX_free(ctx);
    EVP_MD_CTX_free(alt);
    return ret;
}

/* ---- Checking ---------------------------------------------------------------------------- */

/* Compare a computed hash with the stored one: lengths are not secret (they follow from the
 * kind), contents are compared in constant time. */
static bool same_text(const char *a, const char *b)
{
    size_t la = strlen(a);
    return la == strlen(b) && CRYPTO_memcmp(a, b, la) == 0;
}

static bool verify_crypt(const char *hash, const char *pw, size_t pwlen)
{
    bool ok = false;
    char *pwz = th_strndup(pw, pwlen);
    struct crypt_data *cd = th_calloc(1, sizeof(*cd));
    if (pwz && cd) {
        const char *r = crypt_r(pwz, hash, cd);
        /* libxcrypt answers a string starting with '*' for a setting it cannot use */
        ok = r && r[0] != '*' && same_text(r, hash);
    }
    if (pwz) {
        OPENSSL_cleanse(pwz, pwlen);
    }
    if (cd) {
        OPENSSL_cleanse(cd, sizeof(*cd));
    }
    th_free(pwz);
    th_free(cd);
    return ok;
}

static bool verify_apr1(const char *hash, const char *pw, size_t pwlen)
{
    const char *salt = hash + strlen(APR1_MAGIC);
    const char *end = strchr(salt, '$');
    char out[64];
    if (!end || th_htpasswd_apr1(pw, pwlen, salt, (size_t)(end - salt), out, sizeof(out)) != 0) {
        return false;
    }
    bool ok = same_text(out, hash);
    OPENSSL_cleanse(out, sizeof(out));
    return ok;
}

static bool verify_sha1(const char *hash, const char *pw, size_t pwlen)
{
    uint8_t want[TH_BASE64_DECODED_MAX(64)];
    uint8_t got[EVP_MAX_MD_SIZE];
    size_t wl = 0;
    unsigned int gl = 0;
    size_t hl = strlen(hash + 5);
    if (hl > 64 || th_base64_decode(hash + 5, hl, want, &wl) != 0 || wl != SHA1_LEN) {
        return false;
    }
    if (EVP_Digest(pw, pwlen, got, &gl, EVP_sha1(), NULL) != 1 || gl != SHA1_LEN) {
        return false;
    }
    return CRYPTO_memcmp(got, want, SHA1_LEN) == 0;
}

bool th_htpasswd_verify(const struct th_htpasswd_entry *e, const char *pw, size_t pwlen)
{
    if (!e || !pw || memchr(pw, '\0', pwlen)) {
        return false;
    }
    switch (e->kind) {
    case TH_HTPASSWD_BCRYPT:
    case TH_HTPASSWD_SHA256CRYPT:
    case TH_HTPASSWD_SHA512CRYPT:
    case TH_HTPASSWD_MD5CRYPT:
        return verify_crypt(e->hash, pw, pwlen);
    case TH_HTPASSWD_APR1:
        return verify_apr1(e->hash, pw, pwlen);
    case TH_HTPASSWD_SHA1:
        return verify_sha1(e->hash, pw, pwlen);
    }
    return false;
}

/* ---- The request's credentials ------------------------------------------------------------ */

static bool std_b64(char c)
{
    return c == '+' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z');
}

bool th_basicauth_parse_header(const char *v, size_t len, char *buf, size_t buflen,
                               const char **user, size_t *user_len, const char **pw, size_t *pw_len)
{
    const char *b64;
    size_t bl;
    if (!th_auth_split_scheme(v, len, "Basic", &b64, &bl)) {
        return false;
    }
    /* Go's StdEncoding: the standard alphabet, padded to a multiple of four. */
    if (bl % 4 != 0 || TH_BASE64_DECODED_MAX(bl) + 1 > buflen) {
        return false;
    }
    size_t pad = 0;
    while (pad < 2 && pad < bl && b64[bl - 1 - pad] == '=') {
        pad++;
    }
    for (size_t i = 0; i < bl - pad; i++) {
        if (!std_b64(b64[i])) {
            return false;
        }
    }
    size_t n = 0;
    if (th_base64_decode(b64, bl, (uint8_t *)buf, &n) != 0) {
        return false;
    }
    buf[n] = '\0';
    const char *colon = memchr(buf, ':', n);
    if (!colon || colon == buf) {
        return false;
    }
    *user = buf;
    *user_len = (size_t)(colon - buf);
    *pw = colon + 1;
    *pw_len = n - *user_len - 1;
    return true;
}
