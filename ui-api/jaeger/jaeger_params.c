/*
 * Query-parameter parsing for the Jaeger query API. The scalar parsers follow the Go
 * functions Jaeger calls (strconv.ParseInt, strconv.ParseBool, time.ParseDuration,
 * time.Parse(RFC3339Nano), json.Unmarshal into map[string]string) closely enough that the
 * 400 messages are the same text, quoting included.
 */
#include <stdio.h>
#include <string.h>

#include "th/base64.h"
#include "ui-api/jaeger/jaeger_params.h"

/* ---- Bounded message building ------------------------------------------------------------ */

/* A message under construction in a caller's fixed buffer; text past the end is dropped, so a
 * huge parameter value cannot overflow anything. */
struct msg {
    char *p;
    size_t cap;
    size_t len;
};

static void msg_init(struct msg *m, char *buf, size_t cap)
{
    m->p = buf;
    m->cap = cap;
    m->len = 0;
    if (cap) {
        buf[0] = '\0';
    }
}

static void msg_putn(struct msg *m, const char *s, size_t n)
{
    for (size_t i = 0; i < n && m->len + 1 < m->cap; i++) {
        m->p[m->len++] = s[i];
    }
    if (m->cap) {
        m->p[m->len < m->cap ? m->len : m->cap - 1] = '\0';
    }
}

static void msg_puts(struct msg *m, const char *s)
{
    msg_putn(m, s, strlen(s));
}

static void msg_hexbyte(struct msg *m, const char *prefix, unsigned v, int digits)
{
    char tmp[16];
    snprintf(tmp, sizeof(tmp), "%s%0*x", prefix, digits, v);
    msg_puts(m, tmp);
}

/* Decode one UTF-8 sequence (RFC 3629 ranges). @return its length, or 0 when invalid. */
static size_t utf8_decode(const uint8_t *p, size_t avail, uint32_t *cp)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    v = (v << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* strconv.Quote: printable runes as they are, the usual backslash escapes, \x for bytes that
 * are not UTF-8, \u for other unprintable runes. */
static void msg_quote_go(struct msg *m, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    msg_puts(m, "\"");
    for (size_t i = 0; i < len && m->len + 1 < m->cap;) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            msg_hexbyte(m, "\\x", p[i], 2);
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            msg_putn(m, e, 2);
        } else if (cp >= 0x20 && cp < 0x7F) {
            msg_putn(m, s + i, 1);
        } else if (cp == '\a' || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' ||
                   cp == '\t' || cp == '\v') {
            static const char names[] = "abtnvfr";
            char e[2] = {'\\', names[cp - '\a']};
            msg_putn(m, e, 2);
        } else if (cp < 0x20 || cp == 0x7F) {
            msg_hexbyte(m, "\\x", cp, 2);
        } else if ((cp >= 0x80 && cp < 0xA0) || cp == 0xAD || cp == 0x2028 || cp == 0x2029 ||
                   cp == 0xFEFF) {
            msg_hexbyte(m, "\\u", cp, 4);
        } else {
            msg_putn(m, s + i, n);
        }
        i += n;
    }
    msg_puts(m, "\"");
}

/* The time package's own quote: non-ASCII and control bytes as \x, '"' and '\' escaped. */
static void msg_quote_time(struct msg *m, const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    msg_puts(m, "\"");
    for (size_t i = 0; i < len && m->len + 1 < m->cap; i++) {
        if (p[i] >= 0x80 || p[i] < 0x20) {
            msg_hexbyte(m, "\\x", p[i], 2);
        } else {
            if (p[i] == '"' || p[i] == '\\') {
                msg_puts(m, "\\");
            }
            msg_putn(m, s + i, 1);
        }
    }
    msg_puts(m, "\"");
}

/* ---- The query string -------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int th_jaeger_unescape(const char *s, size_t len, bool plus_is_space, th_arena_t *a, char **out,
                       size_t *out_len)
{
    char *d = th_arena_alloc(a, len + 1);
    if (!d) {
        return TH_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int h = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                return TH_EINVAL;
            }
            d[o++] = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            d[o++] = ' ';
        } else {
            d[o++] = c;
        }
    }
    d[o] = '\0';
    *out = d;
    *out_len = o;
    return 0;
}

int th_jaeger_params_parse(const char *qs, size_t len, th_arena_t *a, th_jaeger_params_t *out)
{
    out->v = NULL;
    out->n = 0;
    if (len > TH_JAEGER_MAX_QUERY_LEN) {
        return TH_E2BIG;
    }
    size_t pairs = 1;
    for (size_t i = 0; i < len; i++) {
        pairs += qs[i] == '&';
    }
    struct th_jaeger_param *v = th_arena_alloc(a, pairs * sizeof(*v));
    if (!v) {
        return TH_ENOMEM;
    }
    size_t n = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && qs[j] != '&') {
            j++;
        }
        const char *seg = qs + i;
        size_t seglen = j - i;
        i = j + 1;
        if (seglen == 0) {
            continue;
        }
        size_t eq = 0;
        while (eq < seglen && seg[eq] != '=') {
            eq++;
        }
        /* Go 1.17+ refuses ';' as a separator: such a pair is an error and dropped. */
        if (memchr(seg, ';', eq)) {
            continue;
        }
        char *k, *val;
        size_t klen, vlen;
        int rc = th_jaeger_unescape(seg, eq, true, a, &k, &klen);
        if (rc == TH_EINVAL) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        const char *vs = eq < seglen ? seg + eq + 1 : seg + seglen;
        size_t vl = eq < seglen ? seglen - eq - 1 : 0;
        rc = th_jaeger_unescape(vs, vl, true, a, &val, &vlen);
        if (rc == TH_EINVAL) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        v[n].key = k;
        v[n].key_len = klen;
        v[n].value = val;
        v[n].value_len = vlen;
        n++;
    }
    out->v = v;
    out->n = n;
    return 0;
}

static bool key_is(const struct th_jaeger_param *p, const char *key)
{
    size_t kl = strlen(key);
    return p->key_len == kl && memcmp(p->key, key, kl) == 0;
}

const char *th_jaeger_param_get(const th_jaeger_params_t *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++) {
        if (key_is(&p->v[i], key)) {
            return p->v[i].value;
        }
    }
    return NULL;
}

const char *th_jaeger_param_value(const th_jaeger_params_t *p, const char *key)
{
    const char *v = th_jaeger_param_get(p, key);
    return v ? v : "";
}

size_t th_jaeger_param_count(const th_jaeger_params_t *p, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        n += key_is(&p->v[i], key);
    }
    return n;
}

/* ---- strconv ------------------------------------------------------------------------------ */

static int num_error(const char *fn, const char *s, const char *what, char *err, size_t errlen)
{
    struct msg m;
    msg_init(&m, err, errlen);
    msg_puts(&m, "strconv.");
    msg_puts(&m, fn);
    msg_puts(&m, ": parsing ");
    msg_quote_go(&m, s, strlen(s));
    msg_puts(&m, ": ");
    msg_puts(&m, what);
    return TH_EINVAL;
}

int th_jaeger_parse_int(const char *fn, const char *s, int bits, int64_t *out, char *err,
                        size_t errlen)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (*p == '\0') {
        return num_error(fn, s, "invalid syntax", err, errlen);
    }
    uint64_t cutoff = (uint64_t)1 << (bits - 1);
    uint64_t un = 0;
    bool range = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return num_error(fn, s, "invalid syntax", err, errlen);
        }
        /* As ParseUint: the first overflow is the answer, whatever follows it. */
        if (un > (UINT64_MAX - 9) / 10) {
            range = true;
            break;
        }
        un = un * 10 + (uint64_t)(*p - '0');
    }
    if (range || (!neg && un >= cutoff) || (neg && un > cutoff)) {
        return num_error(fn, s, "value out of range", err, errlen);
    }
    *out = neg ? (int64_t)(0 - un) : (int64_t)un;
    return 0;
}

int th_jaeger_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < TH_ARRAY_SIZE(t); i++) {
        if (!strcmp(s, t[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, f[i])) {
            *out = false;
            return 0;
        }
    }
    return num_error("ParseBool", s, "invalid syntax", err, errlen);
}

/* ---- time.ParseDuration ------------------------------------------------------------------- */

static int dur_error(const char *pre, const char *unit, size_t ulen, const char *orig, char *err,
                     size_t errlen)
{
    struct msg m;
    msg_init(&m, err, errlen);
    msg_puts(&m, "time: ");
    msg_puts(&m, pre);
    if (unit) {
        msg_quote_time(&m, unit, ulen);
        msg_puts(&m, " in duration ");
    }
    msg_quote_time(&m, orig, strlen(orig));
    return TH_EINVAL;
}

#define DUR_INVALID(orig) dur_error("invalid duration ", NULL, 0, orig, err, errlen)

int th_jaeger_parse_go_duration(const char *orig, int64_t *ns, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* µs, U+00B5 */
        {"\xce\xbcs", 1000}, /* μs, U+03BC */
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", 60ull * 1000000000},
        {"h", 3600ull * 1000000000},
    };
    const uint64_t lim = (uint64_t)1 << 63;
    const char *s = orig;
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (!strcmp(s, "0")) {
        *ns = 0;
        return 0;
    }
    if (*s == '\0') {
        return DUR_INVALID(orig);
    }
    uint64_t d = 0;
    while (*s) {
        if (!(*s == '.' || (*s >= '0' && *s <= '9'))) {
            return DUR_INVALID(orig);
        }
        /* integer part */
        const char *start = s;
        uint64_t v = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (v > lim / 10) {
                return DUR_INVALID(orig);
            }
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > lim) {
                return DUR_INVALID(orig);
            }
        }
        bool pre = s != start;
        /* fraction: digits past what fits are ignored, as in Go */
        uint64_t f = 0;
        double scale = 1;
        bool post = false;
        if (*s == '.') {
            s++;
            const char *fs = s;
            bool overflow = false;
            for (; *s >= '0' && *s <= '9'; s++) {
                if (overflow) {
                    continue;
                }
                if (f > (lim - 1) / 10) {
                    overflow = true;
                    continue;
                }
                uint64_t y = f * 10 + (uint64_t)(*s - '0');
                if (y > lim) {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10;
            }
            post = s != fs;
        }
        if (!pre && !post) {
            return DUR_INVALID(orig);
        }
        /* unit: everything up to the next digit or dot */
        const char *u = s;
        while (*s && *s != '.' && !(*s >= '0' && *s <= '9')) {
            s++;
        }
        size_t ulen = (size_t)(s - u);
        if (ulen == 0) {
            return dur_error("missing unit in duration ", NULL, 0, orig, err, errlen);
        }
        uint64_t mult = 0;
        for (size_t i = 0; i < TH_ARRAY_SIZE(units); i++) {
            if (strlen(units[i].name) == ulen && !memcmp(units[i].name, u, ulen)) {
                mult = units[i].mult;
            }
        }
        if (!mult) {
            return dur_error("unknown unit ", u, ulen, orig, err, errlen);
        }
        if (v > lim / mult) {
            return DUR_INVALID(orig);
        }
        v *= mult;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)mult / scale));
            if (v > lim) {
                return DUR_INVALID(orig);
            }
        }
        d += v;
        if (d > lim) {
            return DUR_INVALID(orig);
        }
    }
    if (neg) {
        *ns = d == lim ? INT64_MIN : -(int64_t)d;
        return 0;
    }
    if (d > lim - 1) {
        return DUR_INVALID(orig);
    }
    *ns = (int64_t)d;
    return 0;
}

/* ---- Trace ids ---------------------------------------------------------------------------- */

/* strconv.ParseUint(s, 16, 64) on at most 16 characters (so it cannot overflow). */
static int parse_hex64(const char *s, size_t len, uint64_t *out, char *err, size_t errlen)
{
    uint64_t v = 0;
    bool ok = len > 0;
    for (size_t i = 0; i < len && ok; i++) {
        int h = hexval((unsigned char)s[i]);
        ok = h >= 0;
        v = v << 4 | (uint64_t)(h < 0 ? 0 : h);
    }
    if (!ok) {
        struct msg m;
        msg_init(&m, err, errlen);
        msg_puts(&m, "strconv.ParseUint: parsing ");
        msg_quote_go(&m, s, len);
        msg_puts(&m, ": invalid syntax");
        return TH_EINVAL;
    }
    *out = v;
    return 0;
}

/* Base64 (either alphabet, padding optional) of exactly 8 or 16 bytes. */
static bool parse_b64_id(const char *s, size_t len, uint8_t id[16])
{
    if (len == 0 || len > 24) {
        return false;
    }
    uint8_t tmp[TH_BASE64_DECODED_MAX(24)];
    size_t n;
    if (th_base64_decode(s, len, tmp, &n) != 0) {
        return false;
    }
    /* Only canonical text: the bits of the last character past the last byte must be 0
     * (4 of them after 2 characters of a group, 2 after 3). */
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 != 0 && (th_base64_value((unsigned char)s[len - 1]) & (len % 4 == 2 ? 15 : 3))) {
        return false;
    }
    if (n == 8) {
        memset(id, 0, 8);
        memcpy(id + 8, tmp, 8);
        return true;
    }
    if (n == 16) {
        memcpy(id, tmp, 16);
        return true;
    }
    return false;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

int th_jaeger_parse_trace_id(const char *s, bool allow_base64, uint8_t id[16], char *err,
                             size_t errlen)
{
    size_t len = strlen(s);
    uint64_t hi = 0, lo = 0;
    int rc;
    if (len > 32) {
        struct msg m;
        msg_init(&m, err, errlen);
        msg_puts(&m, "TraceID cannot be longer than 32 hex characters: ");
        msg_puts(&m, s);
        rc = TH_EINVAL;
    } else if (len > 16) {
        rc = parse_hex64(s, len - 16, &hi, err, errlen);
        if (rc == 0) {
            rc = parse_hex64(s + len - 16, 16, &lo, err, errlen);
        }
    } else {
        rc = parse_hex64(s, len, &lo, err, errlen);
    }
    if (rc == 0) {
        put_be64(id, hi);
        put_be64(id + 8, lo);
        return 0;
    }
    if (allow_base64 && parse_b64_id(s, len, id)) {
        return 0;
    }
    return rc;
}

/* ---- RFC 3339 (Go's time.Parse with the RFC3339Nano layout) ------------------------------ */

#define RFC3339_LAYOUT "2006-01-02T15:04:05.999999999Z07:00"

static int time_error(const char *value, const char *elem, const char *rest, const char *what,
                      char *err, size_t errlen)
{
    struct msg m;
    msg_init(&m, err, errlen);
    msg_puts(&m, "parsing time ");
    msg_quote_time(&m, value, strlen(value));
    if (what) {
        msg_puts(&m, what);
        return TH_EINVAL;
    }
    msg_puts(&m, " as ");
    msg_quote_time(&m, RFC3339_LAYOUT, strlen(RFC3339_LAYOUT));
    msg_puts(&m, ": cannot parse ");
    msg_quote_time(&m, rest, strlen(rest));
    msg_puts(&m, " as ");
    msg_quote_time(&m, elem, strlen(elem));
    return TH_EINVAL;
}

static bool isdig(char c)
{
    return c >= '0' && c <= '9';
}

/* Go's getnum: one or two digits (exactly two when fixed). */
static bool getnum(const char **v, bool fixed, int *out)
{
    const char *s = *v;
    if (!isdig(s[0])) {
        return false;
    }
    if (!isdig(s[1])) {
        if (fixed) {
            return false;
        }
        *out = s[0] - '0';
        *v = s + 1;
        return true;
    }
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    *v = s + 2;
    return true;
}

static int days_in(int month, int64_t year)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) {
        return 29;
    }
    return d[month - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int th_jaeger_parse_rfc3339(const char *value, int64_t *unix_ns, char *err, size_t errlen)
{
    const char *v = value;
    int year, month, day, hour, min, sec;
    int64_t nsec = 0;
    int64_t zone = 0; /* seconds east of UTC */
    const char *at;

    /* 2006 */
    at = v;
    if (strlen(v) < 4 || !isdig(v[0]) || !isdig(v[1]) || !isdig(v[2]) || !isdig(v[3])) {
        return time_error(value, "2006", at, NULL, err, errlen);
    }
    year = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0');
    v += 4;
    /* -01 */
    if (*v != '-') {
        return time_error(value, "-", v, NULL, err, errlen);
    }
    v++;
    at = v;
    if (!getnum(&v, true, &month)) {
        return time_error(value, "01", at, NULL, err, errlen);
    }
    if (month < 1 || month > 12) {
        return time_error(value, NULL, NULL, ": month out of range", err, errlen);
    }
    /* -02 */
    if (*v != '-') {
        return time_error(value, "-", v, NULL, err, errlen);
    }
    v++;
    at = v;
    if (!getnum(&v, true, &day)) {
        return time_error(value, "02", at, NULL, err, errlen);
    }
    /* T15 */
    if (*v != 'T' && *v != 't') {
        return time_error(value, "T", v, NULL, err, errlen);
    }
    v++;
    at = v;
    if (!getnum(&v, false, &hour)) {
        return time_error(value, "15", at, NULL, err, errlen);
    }
    if (hour > 23) {
        return time_error(value, NULL, NULL, ": hour out of range", err, errlen);
    }
    /* :04 */
    if (*v != ':') {
        return time_error(value, ":", v, NULL, err, errlen);
    }
    v++;
    at = v;
    if (!getnum(&v, true, &min)) {
        return time_error(value, "04", at, NULL, err, errlen);
    }
    if (min > 59) {
        return time_error(value, NULL, NULL, ": minute out of range", err, errlen);
    }
    /* :05 */
    if (*v != ':') {
        return time_error(value, ":", v, NULL, err, errlen);
    }
    v++;
    at = v;
    if (!getnum(&v, true, &sec)) {
        return time_error(value, "05", at, NULL, err, errlen);
    }
    if (sec > 59) {
        return time_error(value, NULL, NULL, ": second out of range", err, errlen);
    }
    /* .999999999: optional, any number of digits (past nine they are truncated) */
    if ((v[0] == '.' || v[0] == ',') && isdig(v[1])) {
        v++;
        int64_t scale = 100000000;
        for (; isdig(*v); v++) {
            nsec += (*v - '0') * scale;
            scale /= 10;
        }
    }
    /* Z07:00 */
    at = v;
    if (*v == 'Z' || *v == 'z') {
        v++;
    } else {
        if (strlen(v) < 6 || v[3] != ':') {
            return time_error(value, "Z07:00", at, NULL, err, errlen);
        }
        const char *h = v + 1, *m = v + 4;
        int hr, mm;
        if (!getnum(&h, true, &hr) || !getnum(&m, true, &mm)) {
            return time_error(value, "Z07:00", at, NULL, err, errlen);
        }
        if (hr > 24) {
            return time_error(value, NULL, NULL, ": time zone offset hour out of range", err,
                              errlen);
        }
        if (mm > 60) {
            return time_error(value, NULL, NULL, ": time zone offset minute out of range", err,
                              errlen);
        }
        zone = ((int64_t)hr * 60 + mm) * 60;
        /* A '+' that was not URL-encoded arrives as a space. */
        if (v[0] == '-') {
            zone = -zone;
        } else if (v[0] != '+' && v[0] != ' ') {
            return time_error(value, "Z07:00", at, NULL, err, errlen);
        }
        v += 6;
    }
    if (*v) {
        struct msg m;
        msg_init(&m, err, errlen);
        msg_puts(&m, "parsing time ");
        msg_quote_time(&m, value, strlen(value));
        msg_puts(&m, ": extra text: ");
        msg_quote_time(&m, v, strlen(v));
        return TH_EINVAL;
    }
    if (day < 1 || day > days_in(month, year)) {
        return time_error(value, NULL, NULL, ": day out of range", err, errlen);
    }
    int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec - zone;
    /* Years 0000..9999 give about ±2.5e11 s: beyond int64 ns, so saturate. */
    const int64_t max_s = INT64_MAX / 1000000000 - 1;
    if (secs > max_s) {
        *unix_ns = INT64_MAX;
    } else if (secs < -max_s) {
        *unix_ns = INT64_MIN;
    } else {
        *unix_ns = secs * 1000000000 + nsec;
    }
    return 0;
}

/* ---- Tag maps and JSON -------------------------------------------------------------------- */

int th_jaeger_tags_set(struct th_jaeger_tags *t, th_arena_t *a, const char *key, const char *value)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!strcmp(t->keys[i], key)) {
            t->values[i] = value;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        const char **k = th_arena_alloc(a, cap * sizeof(*k));
        const char **v = th_arena_alloc(a, cap * sizeof(*v));
        if (!k || !v) {
            return TH_ENOMEM;
        }
        if (t->n) {
            memcpy(k, t->keys, t->n * sizeof(*k));
            memcpy(v, t->values, t->n * sizeof(*v));
        }
        t->keys = k;
        t->values = v;
        t->cap = cap;
    }
    t->keys[t->n] = key;
    t->values[t->n] = value;
    t->n++;
    return 0;
}

/* A JSON scan with Go's scanner messages. Syntax errors win over type errors (Go checks the
 * whole document before decoding), so the first type error is only kept aside. */
struct js {
    const uint8_t *p;
    const uint8_t *end;
    th_arena_t *a;
    char *err;
    size_t errlen;
    int rc;            /* first syntax error or ENOMEM */
    const char *tkind; /* kind of the first member value that is not a string */
};

static int js_eof(struct js *j)
{
    struct msg m;
    msg_init(&m, j->err, j->errlen);
    msg_puts(&m, "unexpected end of JSON input");
    return j->rc = TH_EINVAL;
}

/* Go's quoteChar: the offending byte as a character literal. */
static int js_bad(struct js *j, const char *context)
{
    if (j->p >= j->end) {
        return js_eof(j);
    }
    uint8_t c = *j->p;
    struct msg m;
    msg_init(&m, j->err, j->errlen);
    msg_puts(&m, "invalid character ");
    if (c == '\'') {
        msg_puts(&m, "'\\''");
    } else if (c == '"') {
        msg_puts(&m, "'\"'");
    } else {
        /* strconv.Quote of the byte taken as a rune, between single quotes */
        char tmp[8];
        size_t n;
        if (c >= 0x80) {
            tmp[0] = (char)(0xC0 | (c >> 6));
            tmp[1] = (char)(0x80 | (c & 0x3F));
            n = 2;
        } else {
            tmp[0] = (char)c;
            n = 1;
        }
        struct msg q;
        char qbuf[16];
        msg_init(&q, qbuf, sizeof(qbuf));
        msg_quote_go(&q, tmp, n);
        msg_puts(&m, "'");
        msg_putn(&m, qbuf + 1, q.len - 2);
        msg_puts(&m, "'");
    }
    msg_puts(&m, " ");
    msg_puts(&m, context);
    return j->rc = TH_EINVAL;
}

static void js_ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

/* Scan a string starting at its opening quote; on success *s and *n are the raw bytes. */
static int js_string(struct js *j, const uint8_t **s, size_t *n)
{
    j->p++;
    const uint8_t *start = j->p;
    for (;;) {
        if (j->p >= j->end) {
            return js_eof(j);
        }
        uint8_t c = *j->p;
        if (c == '"') {
            *s = start;
            *n = (size_t)(j->p - start);
            j->p++;
            return 0;
        }
        if (c < 0x20) {
            return js_bad(j, "in string literal");
        }
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) {
                return js_eof(j);
            }
            c = *j->p;
            if (c == 'u') {
                for (int i = 0; i < 4; i++) {
                    j->p++;
                    if (j->p >= j->end) {
                        return js_eof(j);
                    }
                    if (hexval(*j->p) < 0) {
                        return js_bad(j, "in \\u hexadecimal character escape");
                    }
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return js_bad(j, "in string escape code");
            }
        }
        j->p++;
    }
}

static void put_utf8(char *o, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static uint32_t hex4(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v = v << 4 | (uint32_t)hexval(p[i]);
    }
    return v;
}

/* Decode the escapes of a scanned string as Go does: bad UTF-8 and lone surrogates become
 * U+FFFD. Each input byte yields at most 3 output bytes. */
static char *js_decode(struct js *j, const uint8_t *s, size_t len)
{
    char *o = th_arena_alloc(j->a, len * 3 + 1);
    if (!o) {
        j->rc = TH_ENOMEM;
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == '\\') {
            uint8_t e = s[i + 1];
            if (e != 'u') {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                o[n++] = to[strchr(from, e) - from];
                i += 2;
                continue;
            }
            uint32_t cp = hex4(s + i + 2);
            i += 6;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (i + 6 <= len && s[i] == '\\' && s[i + 1] == 'u') {
                    uint32_t lo = hex4(s + i + 2);
                    if (lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    } else {
                        cp = 0xFFFD;
                    }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                cp = 0xFFFD;
            }
            put_utf8(o, &n, cp);
            continue;
        }
        uint32_t cp;
        size_t w = utf8_decode(s + i, len - i, &cp);
        if (w == 0) {
            put_utf8(o, &n, 0xFFFD);
            i++;
        } else {
            memcpy(o + n, s + i, w);
            n += w;
            i += w;
        }
    }
    o[n] = '\0';
    return o;
}

static int js_literal(struct js *j, const char *lit)
{
    /* the first letter was checked by the caller */
    for (size_t i = 1; lit[i]; i++) {
        j->p++;
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (*j->p != (uint8_t)lit[i]) {
            char ctx[48];
            snprintf(ctx, sizeof(ctx), "in literal %s (expecting '%c')", lit, lit[i]);
            return js_bad(j, ctx);
        }
    }
    j->p++;
    return 0;
}

static bool js_digit(struct js *j)
{
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

static int js_number(struct js *j)
{
    if (*j->p == '-') {
        j->p++;
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (!js_digit(j)) {
            return js_bad(j, "in numeric literal");
        }
    }
    if (*j->p == '0') {
        j->p++;
    } else {
        while (js_digit(j)) {
            j->p++;
        }
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (!js_digit(j)) {
            return js_bad(j, "after decimal point in numeric literal");
        }
        while (js_digit(j)) {
            j->p++;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (!js_digit(j)) {
            return js_bad(j, "in exponent of numeric literal");
        }
        while (js_digit(j)) {
            j->p++;
        }
    }
    return 0;
}

/* Scan one value. @p kind receives Go's name for it ("string", "number", "object", ...);
 * @p sv, @p sn the raw bytes of a string. Members of the top-level object (depth 1) go into
 * @p tags. */
static int js_value(struct js *j, int depth, const char **kind, const uint8_t **sv, size_t *sn,
                    struct th_jaeger_tags *tags);

static int js_object(struct js *j, int depth, struct th_jaeger_tags *tags)
{
    j->p++;
    js_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (*j->p != '"') {
            return js_bad(j, "looking for beginning of object key string");
        }
        const uint8_t *ks;
        size_t kn;
        if (js_string(j, &ks, &kn) != 0) {
            return j->rc;
        }
        js_ws(j);
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (*j->p != ':') {
            return js_bad(j, "after object key");
        }
        j->p++;
        const char *kind;
        const uint8_t *vs = NULL;
        size_t vn = 0;
        if (js_value(j, depth + 1, &kind, &vs, &vn, NULL) != 0) {
            return j->rc;
        }
        if (tags && depth == 1) {
            if (!strcmp(kind, "string") || !strcmp(kind, "null")) {
                char *k = js_decode(j, ks, kn);
                const char *v = vs ? js_decode(j, vs, vn) : "";
                if (!k || !v || th_jaeger_tags_set(tags, j->a, k, v) != 0) {
                    return j->rc = TH_ENOMEM;
                }
            } else if (!j->tkind) {
                j->tkind = kind;
            }
        }
        js_ws(j);
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        if (*j->p != ',') {
            return js_bad(j, "after object key:value pair");
        }
        j->p++;
        js_ws(j);
    }
}

static int js_array(struct js *j, int depth)
{
    j->p++;
    js_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        const char *kind;
        const uint8_t *vs;
        size_t vn;
        if (js_value(j, depth + 1, &kind, &vs, &vn, NULL) != 0) {
            return j->rc;
        }
        js_ws(j);
        if (j->p >= j->end) {
            return js_eof(j);
        }
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        if (*j->p != ',') {
            return js_bad(j, "after array element");
        }
        j->p++;
    }
}

static int js_value(struct js *j, int depth, const char **kind, const uint8_t **sv, size_t *sn,
                    struct th_jaeger_tags *tags)
{
    js_ws(j);
    if (j->p >= j->end) {
        return js_eof(j);
    }
    uint8_t c = *j->p;
    if ((c == '{' || c == '[') && depth > TH_JAEGER_MAX_JSON_DEPTH) {
        struct msg m;
        msg_init(&m, j->err, j->errlen);
        msg_puts(&m, "exceeded max depth");
        return j->rc = TH_EINVAL;
    }
    switch (c) {
    case '{':
        *kind = "object";
        return js_object(j, depth, tags);
    case '[':
        *kind = "array";
        return js_array(j, depth);
    case '"':
        *kind = "string";
        return js_string(j, sv, sn);
    case 't':
        *kind = "bool";
        return js_literal(j, "true");
    case 'f':
        *kind = "bool";
        return js_literal(j, "false");
    case 'n':
        *kind = "null";
        return js_literal(j, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            *kind = "number";
            return js_number(j);
        }
        return js_bad(j, "looking for beginning of value");
    }
}

int th_jaeger_parse_tags_json(const char *s, size_t len, th_arena_t *a, struct th_jaeger_tags *tags,
                              char *err, size_t errlen)
{
    struct js j = {
        .p = (const uint8_t *)s,
        .end = (const uint8_t *)s + len,
        .a = a,
        .err = err,
        .errlen = errlen,
    };
    /* Members are collected aside and applied only when the whole document is good. */
    struct th_jaeger_tags got = {0};
    const char *kind = NULL;
    const uint8_t *sv;
    size_t sn;
    if (js_value(&j, 1, &kind, &sv, &sn, &got) != 0) {
        return j.rc;
    }
    js_ws(&j);
    if (j.p < j.end) {
        return js_bad(&j, "after top-level value");
    }
    struct msg m;
    msg_init(&m, err, errlen);
    if (strcmp(kind, "object") != 0 && strcmp(kind, "null") != 0) {
        msg_puts(&m, "json: cannot unmarshal ");
        msg_puts(&m, kind);
        msg_puts(&m, " into Go value of type map[string]string");
        return TH_EINVAL;
    }
    if (j.tkind) {
        msg_puts(&m, "json: cannot unmarshal ");
        msg_puts(&m, j.tkind);
        msg_puts(&m, " into Go value of type string");
        return TH_EINVAL;
    }
    for (size_t i = 0; i < got.n; i++) {
        int rc = th_jaeger_tags_set(tags, a, got.keys[i], got.values[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- Span kinds --------------------------------------------------------------------------- */

static const char *const kind_names[] = {"unspecified", "internal", "server",
                                         "client",      "producer", "consumer"};

int th_jaeger_span_kind_parse(const char *s)
{
    for (size_t i = 0; i < TH_ARRAY_SIZE(kind_names); i++) {
        if (!strcasecmp(s, kind_names[i])) {
            return (int)i;
        }
    }
    return -1;
}

const char *th_jaeger_span_kind_name(int kind)
{
    return kind >= 1 && kind <= 5 ? kind_names[kind] : "";
}

/* ---- v1 parameter sets -------------------------------------------------------------------- */

/* `unable to parse param 'NAME': <inner>`, Jaeger's newParseError. */
static int param_error(const char *name, const char *inner, char *err, size_t errlen)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", inner);
    snprintf(err, errlen, "unable to parse param '%s': %s", name, tmp);
    return TH_EINVAL;
}

/* v * unit with saturation: Go's Duration multiplication would wrap, which no client wants. */
static int64_t mul_sat(int64_t v, int64_t unit)
{
    if (v > 0 && v > INT64_MAX / unit) {
        return INT64_MAX;
    }
    if (v < 0 && v < INT64_MIN / unit) {
        return INT64_MIN;
    }
    return v * unit;
}

/* Jaeger's parseTime: an integer in @p unit ns, or the default when absent or empty. */
static int parse_time_param(const th_jaeger_params_t *p, const char *name, int64_t unit,
                            int64_t def, int64_t *out, char *err, size_t errlen)
{
    const char *v = th_jaeger_param_value(p, name);
    if (*v == '\0') {
        *out = def;
        return 0;
    }
    int64_t n;
    char inner[1024];
    if (th_jaeger_parse_int("ParseInt", v, 64, &n, inner, sizeof(inner)) != 0) {
        return param_error(name, inner, err, errlen);
    }
    *out = mul_sat(n, unit);
    return 0;
}

static int parse_duration_param(const th_jaeger_params_t *p, const char *name, int64_t *out,
                                char *err, size_t errlen)
{
    const char *v = th_jaeger_param_value(p, name);
    *out = 0;
    if (*v == '\0') {
        return 0;
    }
    char inner[1024];
    if (th_jaeger_parse_go_duration(v, out, inner, sizeof(inner)) != 0) {
        return param_error(name, inner, err, errlen);
    }
    return 0;
}

/* Jaeger's parseTags: tag=k:v values first, then tags={...} objects, later keys winning. */
static int parse_v1_tags(const th_jaeger_params_t *p, th_arena_t *a, struct th_jaeger_tags *t,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!key_is(&p->v[i], "tag")) {
            continue;
        }
        const char *v = p->v[i].value;
        const char *colon = strchr(v, ':');
        if (!colon) {
            snprintf(err, errlen, "malformed 'tag' parameter, expecting key:value, received: %s",
                     v);
            return TH_EINVAL;
        }
        char *k = th_arena_strndup(a, v, (size_t)(colon - v));
        if (!k || th_jaeger_tags_set(t, a, k, colon + 1) != 0) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        if (!key_is(&p->v[i], "tags")) {
            continue;
        }
        char inner[1024];
        int rc =
            th_jaeger_parse_tags_json(p->v[i].value, p->v[i].value_len, a, t, inner, sizeof(inner));
        if (rc == TH_EINVAL) {
            snprintf(err, errlen, "malformed 'tags' parameter, cannot unmarshal JSON: %s", inner);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int th_jaeger_parse_v1_search(const th_jaeger_params_t *p, int64_t now_ns, th_arena_t *a,
                              struct th_jaeger_search *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->service = th_jaeger_param_value(p, "service");
    out->operation = th_jaeger_param_value(p, "operation");
    int rc = parse_time_param(p, "start", 1000, now_ns - TH_JAEGER_DEFAULT_LOOKBACK_NS,
                              &out->start_min_ns, err, errlen);
    if (rc == 0) {
        rc = parse_time_param(p, "end", 1000, now_ns, &out->start_max_ns, err, errlen);
    }
    if (rc == 0) {
        rc = parse_v1_tags(p, a, &out->tags, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    out->limit = TH_JAEGER_DEFAULT_LIMIT;
    const char *lim = th_jaeger_param_value(p, "limit");
    if (*lim && th_jaeger_parse_int("ParseInt", lim, 32, &out->limit, err, errlen) != 0) {
        return TH_EINVAL; /* Jaeger returns the bare strconv error here */
    }
    rc = parse_duration_param(p, "minDuration", &out->duration_min_ns, err, errlen);
    if (rc == 0) {
        rc = parse_duration_param(p, "maxDuration", &out->duration_max_ns, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    size_t nids = th_jaeger_param_count(p, "traceID");
    if (nids > TH_JAEGER_MAX_TRACE_IDS) {
        snprintf(err, errlen, "too many 'traceID' parameters: %zu, at most %d are allowed", nids,
                 TH_JAEGER_MAX_TRACE_IDS);
        return TH_E2BIG;
    }
    if (nids) {
        out->trace_ids = th_arena_alloc(a, nids * sizeof(*out->trace_ids));
        if (!out->trace_ids) {
            return TH_ENOMEM;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        if (!key_is(&p->v[i], "traceID")) {
            continue;
        }
        char inner[1024];
        if (th_jaeger_parse_trace_id(p->v[i].value, false, out->trace_ids[out->n_trace_ids], inner,
                                     sizeof(inner)) != 0) {
            snprintf(err, errlen, "cannot parse traceID param: %s", inner);
            return TH_EINVAL;
        }
        out->n_trace_ids++;
    }
    const char *raw = th_jaeger_param_value(p, "raw");
    if (*raw) {
        char inner[1024];
        if (th_jaeger_parse_bool(raw, &out->raw, inner, sizeof(inner)) != 0) {
            return param_error("raw", inner, err, errlen);
        }
    }
    if (out->n_trace_ids == 0 && *out->service == '\0') {
        snprintf(err, errlen, "parameter 'service' is required");
        return TH_EINVAL;
    }
    if (out->duration_min_ns != 0 && out->duration_max_ns != 0 &&
        out->duration_max_ns < out->duration_min_ns) {
        snprintf(err, errlen, "'maxDuration' should be greater than 'minDuration'");
        return TH_EINVAL;
    }
    return 0;
}

int th_jaeger_parse_v1_get_trace(const th_jaeger_params_t *p, bool *raw, char *err, size_t errlen)
{
    int64_t ignored;
    int rc = parse_time_param(p, "start", 1000, 0, &ignored, err, errlen);
    if (rc == 0) {
        rc = parse_time_param(p, "end", 1000, 0, &ignored, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    *raw = false;
    const char *v = th_jaeger_param_value(p, "raw");
    if (*v) {
        char inner[1024];
        if (th_jaeger_parse_bool(v, raw, inner, sizeof(inner)) != 0) {
            return param_error("raw", inner, err, errlen);
        }
    }
    return 0;
}

int th_jaeger_parse_v1_dependencies(const th_jaeger_params_t *p, int64_t now_ns, int64_t *end_ns,
                                    int64_t *lookback_ns, char *err, size_t errlen)
{
    int rc = parse_time_param(p, "endTs", 1000000, now_ns, end_ns, err, errlen);
    if (rc == 0) {
        rc = parse_time_param(p, "lookback", 1000000, TH_JAEGER_DEFAULT_DEP_LOOKBACK_NS,
                              lookback_ns, err, errlen);
    }
    return rc;
}

/* ---- api_v3 parameter sets ---------------------------------------------------------------- */

/* The first of @p names present with a non-empty value (the canonical name comes first). */
static const char *v3_get(const th_jaeger_params_t *p, const char *const *names, const char **used)
{
    for (size_t i = 0; names[i]; i++) {
        const char *v = th_jaeger_param_get(p, names[i]);
        if (v && *v) {
            *used = names[i];
            return v;
        }
    }
    *used = names[0];
    return NULL;
}

static int malformed(const char *name, const char *inner, char *err, size_t errlen)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", inner);
    snprintf(err, errlen, "malformed parameter %s: %s", name, tmp);
    return TH_EINVAL;
}

int th_jaeger_parse_v3_search(const th_jaeger_params_t *p, th_arena_t *a,
                              struct th_jaeger_search *out, char *err, size_t errlen)
{
    static const char *const n_service[] = {"query.serviceName", "query.service_name", NULL};
    static const char *const n_operation[] = {"query.operationName", "query.operation_name", NULL};
    static const char *const n_tmin[] = {"query.startTimeMin", "query.start_time_min", NULL};
    static const char *const n_tmax[] = {"query.startTimeMax", "query.start_time_max", NULL};
    static const char *const n_depth[] = {"query.searchDepth", "query.search_depth",
                                          "query.num_traces", NULL};
    static const char *const n_dmin[] = {"query.durationMin", "query.duration_min", NULL};
    static const char *const n_dmax[] = {"query.durationMax", "query.duration_max", NULL};
    static const char *const n_attrs[] = {"query.attributes", NULL};
    static const char *const n_raw[] = {"query.rawTraces", "query.raw_traces", NULL};
    char inner[1024];
    const char *used;
    memset(out, 0, sizeof(*out));
    const char *v = v3_get(p, n_service, &used);
    out->service = v ? v : "";
    v = v3_get(p, n_operation, &used);
    out->operation = v ? v : "";

    const char *tmin_name, *tmax_name;
    const char *tmin = v3_get(p, n_tmin, &tmin_name);
    const char *tmax = v3_get(p, n_tmax, &tmax_name);
    if (!tmin || !tmax) {
        snprintf(err, errlen, "query.startTimeMin and query.startTimeMax are required");
        return TH_EINVAL;
    }
    if (th_jaeger_parse_rfc3339(tmin, &out->start_min_ns, inner, sizeof(inner)) != 0) {
        return malformed(tmin_name, inner, err, errlen);
    }
    if (th_jaeger_parse_rfc3339(tmax, &out->start_max_ns, inner, sizeof(inner)) != 0) {
        return malformed(tmax_name, inner, err, errlen);
    }
    if (out->start_min_ns >= out->start_max_ns) {
        snprintf(err, errlen, "query.startTimeMin must be before query.startTimeMax");
        return TH_EINVAL;
    }
    out->limit = TH_JAEGER_DEFAULT_LIMIT;
    if ((v = v3_get(p, n_depth, &used)) &&
        th_jaeger_parse_int("Atoi", v, 64, &out->limit, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    if ((v = v3_get(p, n_dmin, &used)) &&
        th_jaeger_parse_go_duration(v, &out->duration_min_ns, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    if ((v = v3_get(p, n_dmax, &used)) &&
        th_jaeger_parse_go_duration(v, &out->duration_max_ns, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    if ((v = v3_get(p, n_attrs, &used))) {
        int rc = th_jaeger_parse_tags_json(v, strlen(v), a, &out->tags, inner, sizeof(inner));
        if (rc == TH_EINVAL) {
            return malformed(used, inner, err, errlen);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if ((v = v3_get(p, n_raw, &used)) &&
        th_jaeger_parse_bool(v, &out->raw, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    return 0;
}

int th_jaeger_parse_v3_get_trace(const th_jaeger_params_t *p, bool *raw, char *err, size_t errlen)
{
    static const char *const n_start[] = {"startTime", "start_time", NULL};
    static const char *const n_end[] = {"endTime", "end_time", NULL};
    static const char *const n_raw[] = {"rawTraces", "raw_traces", NULL};
    char inner[1024];
    const char *used;
    int64_t ignored;
    const char *v;
    if ((v = v3_get(p, n_start, &used)) &&
        th_jaeger_parse_rfc3339(v, &ignored, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    if ((v = v3_get(p, n_end, &used)) &&
        th_jaeger_parse_rfc3339(v, &ignored, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    *raw = false;
    if ((v = v3_get(p, n_raw, &used)) && th_jaeger_parse_bool(v, raw, inner, sizeof(inner)) != 0) {
        return malformed(used, inner, err, errlen);
    }
    return 0;
}
