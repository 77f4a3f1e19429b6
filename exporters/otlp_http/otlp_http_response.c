/*
 * What an OTLP/HTTP response means for the exporter (otlp.md §2, otelcol-config.md §7):
 * 2xx is delivered, its body an ExportTraceServiceResponse whose partial_success counts
 * rejected spans (a body that does not parse is permanent, as in the Collector); 429, 502,
 * 503 and 504 are retried, honouring Retry-After as seconds or an HTTP-date; 413 asks the
 * helper to split; every other status is permanent, explained by the google.rpc.Status in the
 * body. Transfer failures (refused, reset, timed out) are retried. Messages name the URL,
 * the status and what the server said, so a person can act on the log line.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "collector/json_reader.h"
#include "exporters/otlp_http/otlp_http.h"
#include "google/rpc/status.pb-c.h"

/* ---- Retry-After ---------------------------------------------------------------------- */

int th__otlphttp_parse_retry_after(const char *v, time_t now, int64_t *ns)
{
    /* The three HTTP-date forms of RFC 9110 §5.6.7, newest first; all in GMT. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    };
    if (v == NULL) {
        return TH_EINVAL;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) {
        n--;
    }
    if (n == 0 || n > 64) {
        return TH_EINVAL;
    }
    char text[65];
    memcpy(text, v, n);
    text[n] = '\0';
    if (strspn(text, "0123456789") == n) {
        /* Delay-seconds; anything past a year is clamped rather than overflowing. */
        int64_t s = n > 8 ? 365 * 86400 : strtoll(text, NULL, 10);
        *ns = TH_MIN(s, (int64_t)365 * 86400) * 1000000000;
        return 0;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(formats); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(text, formats[i], &tm);
        if (end == NULL || *end != '\0') {
            continue;
        }
        time_t at = timegm(&tm);
        if (at == (time_t)-1) {
            return TH_EINVAL;
        }
        int64_t d = at > now ? (int64_t)(at - now) : 0;
        *ns = TH_MIN(d, (int64_t)365 * 86400) * 1000000000;
        return 0;
    }
    return TH_EINVAL;
}

/* ---- Bodies ----------------------------------------------------------------------------- */

enum body_kind { BODY_OTHER, BODY_PROTO, BODY_JSON };

/* The media type of a Content-Type, parameters and case ignored. */
static enum body_kind body_kind(const char *ct)
{
    if (ct == NULL) {
        return BODY_OTHER;
    }
    while (*ct == ' ') {
        ct++;
    }
    size_t n = strcspn(ct, "; \t");
    if (n == strlen("application/x-protobuf") &&
        strncasecmp(ct, "application/x-protobuf", n) == 0) {
        return BODY_PROTO;
    }
    if (n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0) {
        return BODY_JSON;
    }
    return BODY_OTHER;
}

static void *pbc_alloc(void *data, size_t size)
{
    return th_malloc(size);
}

static void pbc_free(void *data, void *p)
{
    th_free(p);
}

static ProtobufCAllocator pbc_allocator = {.alloc = pbc_alloc, .free = pbc_free};

/* Copy a string for a message: printable ASCII and UTF-8 kept, control bytes as spaces. */
static void copy_text(char *dst, size_t cap, const uint8_t *s, size_t len)
{
    size_t n = TH_MIN(len, cap - 1);
    for (size_t i = 0; i < n; i++) {
        dst[i] = s[i] < 0x20 || s[i] == 0x7f ? ' ' : (char)s[i];
    }
    dst[n] = '\0';
}

/* Is the key @p t one of the two spellings? (OTLP/JSON readers accept both.) */
static bool key_is(const th_json_tok_t *t, const char *camel, const char *snake)
{
    return (t->len == strlen(camel) && memcmp(t->ptr, camel, t->len) == 0) ||
           (t->len == strlen(snake) && memcmp(t->ptr, snake, t->len) == 0);
}

/* A JSON string value into @p dst (unescaped, truncated to fit). */
static void json_string(const th_json_tok_t *t, char *dst, size_t cap)
{
    uint8_t tmp[512];
    if (t->len <= sizeof(tmp)) {
        size_t n = th_json_unescape(t, tmp);
        copy_text(dst, cap, tmp, n);
    } else {
        copy_text(dst, cap, t->ptr, t->len);
    }
}

/* An int64 as OTLP/JSON writes it: a decimal string or a number. */
static int json_int64(const th_json_tok_t *t, int64_t *out)
{
    char text[32];
    if ((t->type != TH_JSON_STRING && t->type != TH_JSON_NUMBER) || t->len == 0 ||
        t->len >= sizeof(text)) {
        return TH_EDECODE;
    }
    memcpy(text, t->ptr, t->len);
    text[t->len] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return TH_EDECODE;
    }
    *out = v;
    return 0;
}

/* Walk the members of the object whose `{` was just read, calling @p on_key for each key
 * with the value's first token; unknown members are skipped whole. */
typedef int (*member_fn)(th_json_reader_t *r, const th_json_tok_t *key, const th_json_tok_t *val,
                         void *ctx);

static int json_object(th_json_reader_t *r, member_fn fn, void *ctx)
{
    th_json_tok_t k, v;
    for (;;) {
        int ret = th_json_next(r, &k);
        if (ret != 0) {
            return ret;
        }
        if (k.type == TH_JSON_OBJ_END) {
            return 0;
        }
        if (k.type != TH_JSON_KEY || (ret = th_json_next(r, &v)) != 0) {
            return TH_EDECODE;
        }
        ret = fn(r, &k, &v, ctx);
        if (ret != 0) {
            return ret;
        }
    }
}

struct partial {
    int64_t rejected;
    char msg[160];
};

static int on_partial_member(th_json_reader_t *r, const th_json_tok_t *k, const th_json_tok_t *v,
                             void *ctx)
{
    struct partial *p = ctx;
    if (key_is(k, "rejectedSpans", "rejected_spans") && v->type != TH_JSON_NULL) {
        return json_int64(v, &p->rejected);
    }
    if (key_is(k, "errorMessage", "error_message") && v->type == TH_JSON_STRING) {
        json_string(v, p->msg, sizeof(p->msg));
        return 0;
    }
    return th_json_skip(r, v);
}

static int on_response_member(th_json_reader_t *r, const th_json_tok_t *k, const th_json_tok_t *v,
                              void *ctx)
{
    if (key_is(k, "partialSuccess", "partial_success") && v->type == TH_JSON_OBJ_BEGIN) {
        return json_object(r, on_partial_member, ctx);
    }
    if (key_is(k, "partialSuccess", "partial_success") && v->type != TH_JSON_NULL) {
        return TH_EDECODE;
    }
    return th_json_skip(r, v);
}

static int on_status_member(th_json_reader_t *r, const th_json_tok_t *k, const th_json_tok_t *v,
                            void *ctx)
{
    if (key_is(k, "message", "message") && v->type == TH_JSON_STRING) {
        json_string(v, ctx, 160);
        return 0;
    }
    return th_json_skip(r, v);
}

/* Parse a whole JSON document that must be one object, member by member. */
static int json_doc(const uint8_t *body, size_t len, member_fn fn, void *ctx)
{
    th_json_reader_t r;
    th_json_tok_t t;
    th_json_reader_init(&r, body, len, 64);
    if (th_json_next(&r, &t) != 0 || t.type != TH_JSON_OBJ_BEGIN) {
        return TH_EDECODE;
    }
    int ret = json_object(&r, fn, ctx);
    if (ret == 0 && (th_json_next(&r, &t) != 0 || t.type != TH_JSON_END)) {
        ret = TH_EDECODE;
    }
    return ret;
}

/* A 2xx body: ExportTraceServiceResponse in the encoding of its Content-Type. */
static int parse_success(const struct th_otlphttp_response *resp, struct partial *p)
{
    enum body_kind kind = body_kind(resp->content_type);
    if (resp->body_len == 0 || kind == BODY_OTHER) {
        return 0;
    }
    if (kind == BODY_JSON) {
        return json_doc(resp->body, resp->body_len, on_response_member, p);
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *m =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            &pbc_allocator, resp->body_len, resp->body);
    if (m == NULL) {
        return TH_EDECODE;
    }
    if (m->partial_success != NULL) {
        p->rejected = m->partial_success->rejected_spans;
        const char *s = m->partial_success->error_message;
        copy_text(p->msg, sizeof(p->msg), (const uint8_t *)s, strlen(s));
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
        m, &pbc_allocator);
    return 0;
}

/* What the server said with an error status: google.rpc.Status's message when the body is
 * one, the text itself when it is something else, "" when there is nothing. */
static void error_text(const struct th_otlphttp_response *resp, char *out, size_t cap)
{
    out[0] = '\0';
    if (resp->body_len == 0) {
        return;
    }
    enum body_kind kind = body_kind(resp->content_type);
    if (kind == BODY_PROTO) {
        Google__Rpc__Status *st =
            google__rpc__status__unpack(&pbc_allocator, resp->body_len, resp->body);
        if (st != NULL) {
            copy_text(out, cap, (const uint8_t *)st->message, strlen(st->message));
            google__rpc__status__free_unpacked(st, &pbc_allocator);
            return;
        }
    } else if (kind == BODY_JSON) {
        char msg[160] = "";
        if (json_doc(resp->body, resp->body_len, on_status_member, msg) == 0) {
            snprintf(out, cap, "%s", msg);
            return;
        }
    }
    /* Not a Status (a proxy's HTML page, plain text): show its start. */
    copy_text(out, TH_MIN(cap, 121), resp->body, resp->body_len);
}

static const char *reason(long status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

void th__otlphttp_classify(const struct th_otlphttp_response *resp, struct th_export_result *r)
{
    memset(r, 0, sizeof(*r));
    r->retry_after_ns = -1;
    if (resp->curl_code != CURLE_OK || resp->status == 0) {
        /* No response: refused, reset, DNS, TLS or the timeout. The Collector retries every
         * client error; so does Tracehouse. */
        const char *why = resp->curl_error && resp->curl_error[0]
                              ? resp->curl_error
                              : curl_easy_strerror((CURLcode)resp->curl_code);
        snprintf(r->message, sizeof(r->message), "POST %s failed: %s", resp->url, why);
        r->err = TH_ERETRY;
        return;
    }
    long st = resp->status;
    if (st >= 200 && st < 300) {
        struct partial p = {0};
        if (parse_success(resp, &p) != 0) {
            snprintf(r->message, sizeof(r->message),
                     "HTTP %ld from %s, but its body is not an ExportTraceServiceResponse (%s)", st,
                     resp->url, resp->content_type ? resp->content_type : "no content type");
            r->err = TH_EPERM;
            return;
        }
        if (p.rejected > 0 || p.msg[0] != '\0') {
            r->rejected_spans = p.rejected > 0 ? (uint64_t)p.rejected : 0;
            snprintf(r->message, sizeof(r->message),
                     "partial success from %s: %lld spans rejected%s%s", resp->url,
                     (long long)r->rejected_spans, p.msg[0] ? ": " : "", p.msg);
        }
        return;
    }
    char said[160];
    error_text(resp, said, sizeof(said));
    const char *rs = reason(st);
    snprintf(r->message, sizeof(r->message), "HTTP %ld%s%s from %s%s%s", st, rs[0] ? " " : "", rs,
             resp->url, said[0] ? ": " : "", said);
    int64_t delay = -1;
    bool has_delay = resp->retry_after != NULL &&
                     th__otlphttp_parse_retry_after(resp->retry_after, resp->now, &delay) == 0;
    switch (st) {
    case 429:
    case 502:
    case 503:
    case 504:
        r->err = TH_ERETRY;
        r->retry_after_ns = has_delay ? delay : -1;
        break;
    case 413:
        /* Too large: the helper splits the batch, unless the server says "later". */
        r->err = has_delay ? TH_ERETRY : TH_E2BIG;
        r->retry_after_ns = has_delay ? delay : -1;
        break;
    default:
        r->err = TH_EPERM;
        break;
    }
}
