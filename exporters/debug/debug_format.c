/*
 * The debug exporter's text formats, written to match the OpenTelemetry Collector's debug
 * exporter line for line (exporter/debugexporter/internal/{normal,otlptext}) so that people
 * who know its output, and scripts that grep it, find the same text here. Values are shown
 * as pcommon's Value.AsString() does: maps and slices as Go's encoding/json would marshal
 * them (sorted keys, HTML-safe escapes), bytes as base64, doubles in the shortest form.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "th/base64.h"
#include "exporters/debug/debug.h"

/* Maps and slices nest; the receiver caps nesting at its max_depth (32 by default), and this
 * cap keeps a batch built some other way from recursing without bound. */
#define MAX_VALUE_DEPTH 64

/* A writer with a sticky error, so the formatters read as a list of lines rather than a
 * list of error checks; the first failure is what the caller gets. */
struct w {
    th_buf_t *b;
    int err;
};

static void put(struct w *w, const char *s, size_t n)
{
    if (w->err == 0 && n > 0 && th_buf_append(w->b, s, n) != 0) {
        w->err = TH_ENOMEM;
    }
}

static void puts_(struct w *w, const char *s)
{
    put(w, s, s ? strlen(s) : 0);
}

static void putc_(struct w *w, char c)
{
    put(w, &c, 1);
}

static void __attribute__((format(printf, 2, 3))) putf(struct w *w, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->err = w->err ? w->err : TH_EINVAL;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        put(w, small, (size_t)n);
        return;
    }
    /* Too long for the stack buffer: format straight into the output. */
    if (w->err != 0 || th_buf_reserve(w->b, (size_t)n + 1) != 0) {
        w->err = w->err ? w->err : TH_ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)w->b->ptr + w->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->b->len += (size_t)n;
}

static const char *str(const char *s)
{
    return s ? s : "";
}

/* ---- Scalars ---------------------------------------------------------------------------- */

void th__debug_format_time(uint64_t unix_ns, char *out, size_t cap)
{
    /* pcommon converts the uint64 to int64 nanoseconds, so values past 2262 wrap negative
     * there too; floor division keeps the fraction positive for times before 1970. */
    int64_t ns = (int64_t)unix_ns;
    int64_t sec = ns / 1000000000;
    int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[48];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    if (frac == 0) {
        snprintf(out, cap, "%s +0000 UTC", date);
        return;
    }
    char digits[10];
    snprintf(digits, sizeof(digits), "%09lld", (long long)frac);
    size_t n = 9;
    while (n > 0 && digits[n - 1] == '0') {
        n--;
    }
    digits[n] = '\0';
    snprintf(out, cap, "%s.%s +0000 UTC", date, digits);
}

void th__debug_format_double(double d, char *out, size_t cap)
{
    if (isnan(d)) {
        snprintf(out, cap, "json: unsupported value: NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(out, cap, "json: unsupported value: %cInf", d < 0 ? '-' : '+');
        return;
    }
    if (d == 0) {
        snprintf(out, cap, "%s", signbit(d) ? "-0" : "0");
        return;
    }
    /* The shortest precision that reads back to the same double, as Go's strconv does with
     * precision -1; %.*e hands us the digits and the decimal exponent. */
    char sci[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec, d);
        if (strtod(sci, NULL) == d) {
            break;
        }
    }
    char digits[24];
    size_t nd = 0;
    const char *p = sci;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits[nd++] = *p;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    int exp10 = atoi(p + 1);
    double a = fabs(d);
    char tmp[400];
    size_t n = 0;
    if (neg) {
        tmp[n++] = '-';
    }
    if (a < 1e-6 || a >= 1e21) {
        /* Exponent form: Go writes at least two exponent digits, and encoding/json then
         * trims "e-07" to "e-7". */
        tmp[n++] = digits[0];
        if (nd > 1) {
            tmp[n++] = '.';
            memcpy(tmp + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        int e = exp10 < 0 ? -exp10 : exp10;
        n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "e%c%s%d", exp10 < 0 ? '-' : '+',
                              (e < 10 && exp10 >= 0) ? "0" : "", e);
    } else if (exp10 < 0) {
        tmp[n++] = '0';
        tmp[n++] = '.';
        for (int i = -1; i > exp10; i--) {
            tmp[n++] = '0';
        }
        memcpy(tmp + n, digits, nd);
        n += nd;
    } else {
        for (int i = 0; i <= exp10 || (size_t)i < nd; i++) {
            if (i == exp10 + 1) {
                tmp[n++] = '.';
            }
            tmp[n++] = (size_t)i < nd ? digits[i] : '0';
        }
    }
    tmp[n] = '\0';
    snprintf(out, cap, "%s", tmp);
}

/* Standard base64 with padding, as Go's base64.StdEncoding and encoding/json write bytes.
 * Encoded a chunk at a time: chunks are whole 3-byte groups, so padding ends the last. */
static void put_base64(struct w *w, const uint8_t *p, size_t len)
{
    char q[256];
    const size_t chunk = sizeof(q) / 4 * 3;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = TH_MIN(chunk, len - i);
        put(w, q, th_base64_encode(p + i, n, q, true));
    }
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
        return 0;
    }
    return len;
}

/* A JSON string as Go's encoding/json writes it: HTML-safe (<, >, & as \u00XX), U+2028 and
 * U+2029 escaped, invalid UTF-8 replaced by U+FFFD. */
static void put_json_string(struct w *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    putc_(w, '"');
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t n = utf8_len(u + i, len - i);
            if (n == 0) {
                puts_(w, "\\ufffd");
                i++;
            } else if (n == 3 && c == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] & 0xfe) == 0xa8) {
                puts_(w, u[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
                i += 3;
            } else {
                put(w, s + i, n);
                i += n;
            }
            continue;
        }
        switch (c) {
        case '"':
            puts_(w, "\\\"");
            break;
        case '\\':
            puts_(w, "\\\\");
            break;
        case '\n':
            puts_(w, "\\n");
            break;
        case '\r':
            puts_(w, "\\r");
            break;
        case '\t':
            puts_(w, "\\t");
            break;
        case '\b':
            puts_(w, "\\b");
            break;
        case '\f':
            puts_(w, "\\f");
            break;
        default:
            if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                put(w, e, 6);
            } else {
                putc_(w, (char)c);
            }
        }
        i++;
    }
    putc_(w, '"');
}

/* ---- Values ----------------------------------------------------------------------------- */

static void put_json_value(struct w *w, const th_otlp_any_t *v, int depth);

struct kv_pos {
    const th_otlp_kv_t *kv;
    size_t pos;
};

static int cmp_kv_key(const void *a, const void *b)
{
    const struct kv_pos *x = a;
    const struct kv_pos *y = b;
    int c = strcmp(str(x->kv->key), str(y->kv->key));
    if (c != 0) {
        return c;
    }
    /* Equal keys stay in input order, so the last one can win below (a Go map keeps the
     * last value put). */
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* A kvlist as Go marshals map[string]any: keys sorted, one entry per key (the last). */
static void put_json_map(struct w *w, th_otlp_kv_t *const *kvs, size_t n, int depth)
{
    if (n == 0) {
        puts_(w, "{}");
        return;
    }
    struct kv_pos *sorted = th_malloc(n * sizeof(*sorted));
    if (!sorted) {
        w->err = w->err ? w->err : TH_ENOMEM;
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i]) {
            sorted[m].kv = kvs[i];
            sorted[m].pos = i;
            m++;
        }
    }
    qsort(sorted, m, sizeof(*sorted), cmp_kv_key);
    putc_(w, '{');
    bool first = true;
    for (size_t i = 0; i < m; i++) {
        const char *key = str(sorted[i].kv->key);
        if (i + 1 < m && !strcmp(key, str(sorted[i + 1].kv->key))) {
            continue;
        }
        if (!first) {
            putc_(w, ',');
        }
        first = false;
        put_json_string(w, key, strlen(key));
        putc_(w, ':');
        put_json_value(w, sorted[i].kv->value, depth + 1);
    }
    putc_(w, '}');
    th_free(sorted);
}

static void put_json_value(struct w *w, const th_otlp_any_t *v, int depth)
{
    char num[64];
    if (depth > MAX_VALUE_DEPTH) {
        puts_(w, "null");
        return;
    }
    switch (v ? v->value_case : OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        put_json_string(w, str(v->string_value), strlen(str(v->string_value)));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        puts_(w, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        putf(w, "%lld", (long long)v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        /* encoding/json refuses NaN and infinities; show them as JSON null inside a map
         * rather than failing the whole dump. */
        if (isnan(v->double_value) || isinf(v->double_value)) {
            puts_(w, "null");
        } else {
            th__debug_format_double(v->double_value, num, sizeof(num));
            puts_(w, num);
        }
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        putc_(w, '"');
        put_base64(w, v->bytes_value.data, v->bytes_value.len);
        putc_(w, '"');
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        const Opentelemetry__Proto__Common__V1__ArrayValue *a = v->array_value;
        putc_(w, '[');
        for (size_t i = 0; a && i < a->n_values; i++) {
            if (i > 0) {
                putc_(w, ',');
            }
            put_json_value(w, a->values[i], depth + 1);
        }
        putc_(w, ']');
        break;
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
        const Opentelemetry__Proto__Common__V1__KeyValueList *l = v->kvlist_value;
        put_json_map(w, l ? l->values : NULL, l ? l->n_values : 0, depth);
        break;
    }
    default:
        puts_(w, "null");
        break;
    }
}

/* pcommon Value.Type().String() */
static const char *value_type(const th_otlp_any_t *v)
{
    switch (v ? v->value_case : OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return "Str";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return "Bool";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        return "Int";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        return "Double";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        return "Slice";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        return "Map";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        return "Bytes";
    default:
        return "Empty";
    }
}

/* pcommon Value.AsString(): strings raw, containers as JSON, bytes as base64. */
static void put_value_text(struct w *w, const th_otlp_any_t *v)
{
    char num[64];
    switch (v ? v->value_case : OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        puts_(w, v->string_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        puts_(w, v->bool_value ? "true" : "false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        putf(w, "%lld", (long long)v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        th__debug_format_double(v->double_value, num, sizeof(num));
        puts_(w, num);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        put_base64(w, v->bytes_value.data, v->bytes_value.len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        put_json_value(w, v, 0);
        break;
    default:
        break;
    }
}

int th__debug_format_value_text(const th_otlp_any_t *v, th_buf_t *out)
{
    struct w w = {.b = out};
    put_value_text(&w, v);
    return w.err;
}

static void put_value(struct w *w, const th_otlp_any_t *v)
{
    puts_(w, value_type(v));
    putc_(w, '(');
    put_value_text(w, v);
    putc_(w, ')');
}

int th__debug_format_value(const th_otlp_any_t *v, th_buf_t *out)
{
    struct w w = {.b = out};
    put_value(&w, v);
    return w.err;
}

/* ---- Shared pieces ---------------------------------------------------------------------- */

/* pdata's TraceID/SpanID String(): hex, or "" for the empty (all-zero) id. */
static void put_id(struct w *w, ProtobufCBinaryData id)
{
    bool zero = true;
    for (size_t i = 0; i < id.len; i++) {
        if (id.data[i]) {
            zero = false;
            break;
        }
    }
    if (zero || id.len > 64) {
        return;
    }
    char hex[129];
    th_hex_encode(id.data, id.len, hex);
    put(w, hex, id.len * 2);
}

static const char *kind_name(int kind)
{
    static const char *const names[] = {"Unspecified", "Internal", "Server",
                                        "Client",      "Producer", "Consumer"};
    return kind >= 0 && (size_t)kind < TH_ARRAY_SIZE(names) ? names[kind] : "";
}

static const char *status_name(int code)
{
    static const char *const names[] = {"Unset", "Ok", "Error"};
    return code >= 0 && (size_t)code < TH_ARRAY_SIZE(names) ? names[code] : "";
}

/* ---- Basic -------------------------------------------------------------------------------- */

int th__debug_format_basic(const th_otlp_request_t *req, th_buf_t *out)
{
    struct w w = {.b = out};
    putf(&w, "{\"resource spans\": %zu, \"spans\": %zu}", req->n_resource_spans,
         th_otlp_request_span_count(req));
    return w.err;
}

/* ---- Normal ------------------------------------------------------------------------------- */

/* " k=v k2=v2" as the normal format appends attributes (nothing when there are none). */
static void put_kv_line(struct w *w, th_otlp_kv_t *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        putc_(w, ' ');
        puts_(w, kvs[i]->key);
        putc_(w, '=');
        put_value_text(w, kvs[i]->value);
    }
}

int th__debug_format_normal(const th_otlp_request_t *req, th_buf_t *out)
{
    struct w w = {.b = out};
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        putf(&w, "ResourceTraces #%zu", i);
        if (rs->schema_url && *rs->schema_url) {
            putf(&w, " [%s]", rs->schema_url);
        }
        if (rs->resource) {
            put_kv_line(&w, rs->resource->attributes, rs->resource->n_attributes);
        }
        putc_(&w, '\n');
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            const Opentelemetry__Proto__Common__V1__InstrumentationScope *sc = ss->scope;
            /* The Collector prints the resource's index here (a slip); the scope's own index
             * is what a reader needs to tell scopes apart. */
            putf(&w, "ScopeTraces #%zu", j);
            const char *name = sc ? str(sc->name) : "";
            const char *version = sc ? str(sc->version) : "";
            if (*name) {
                putf(&w, " %s", name);
                if (*version) {
                    putf(&w, "@%s", version);
                }
            }
            if (ss->schema_url && *ss->schema_url) {
                putf(&w, " [%s]", ss->schema_url);
            }
            if (sc) {
                put_kv_line(&w, sc->attributes, sc->n_attributes);
            }
            putc_(&w, '\n');
            for (size_t k = 0; k < ss->n_spans; k++) {
                const th_otlp_span_t *sp = ss->spans[k];
                puts_(&w, sp->name);
                putc_(&w, ' ');
                put_id(&w, sp->trace_id);
                putc_(&w, ' ');
                put_id(&w, sp->span_id);
                put_kv_line(&w, sp->attributes, sp->n_attributes);
                putc_(&w, '\n');
            }
        }
    }
    return w.err;
}

/* ---- Detailed ----------------------------------------------------------------------------- */

/* "    %-15s: %s" of the Collector's logAttr. */
static void put_field(struct w *w, const char *label, const char *value)
{
    putf(w, "    %-15s: %s\n", label, value);
}

static void put_id_field(struct w *w, const char *label, ProtobufCBinaryData id)
{
    putf(w, "    %-15s: ", label);
    put_id(w, id);
    putc_(w, '\n');
}

/* The Collector's logAttributes: "<header>:", then "<indent>     -> key: Type(value)", where
 * indent is what precedes "->" in a header like "     -> Attributes:" (so event and link
 * attributes sit one level deeper). */
static void put_attributes(struct w *w, const char *header, const char *indent,
                           th_otlp_kv_t *const *kvs, size_t n)
{
    if (n == 0) {
        return;
    }
    putf(w, "%s:\n", header);
    for (size_t i = 0; i < n; i++) {
        putf(w, "%s     -> %s: ", indent, str(kvs[i]->key));
        put_value(w, kvs[i]->value);
        putc_(w, '\n');
    }
}

static void put_time(struct w *w, const char *prefix, uint64_t ns)
{
    char t[64];
    th__debug_format_time(ns, t, sizeof(t));
    putf(w, "%s%s\n", prefix, t);
}

static void put_span_detailed(struct w *w, const th_otlp_span_t *sp)
{
    char t[64];
    put_id_field(w, "Trace ID", sp->trace_id);
    put_id_field(w, "Parent ID", sp->parent_span_id);
    put_id_field(w, "ID", sp->span_id);
    put_field(w, "Name", str(sp->name));
    put_field(w, "Kind", kind_name((int)sp->kind));
    if (sp->trace_state && *sp->trace_state) {
        put_field(w, "TraceState", sp->trace_state);
    }
    th__debug_format_time(sp->start_time_unix_nano, t, sizeof(t));
    put_field(w, "Start time", t);
    th__debug_format_time(sp->end_time_unix_nano, t, sizeof(t));
    put_field(w, "End time", t);
    put_field(w, "Status code", status_name(sp->status ? (int)sp->status->code : 0));
    put_field(w, "Status message", sp->status ? str(sp->status->message) : "");
    putf(w, "    %-15s: %u\n", "DroppedAttributesCount", sp->dropped_attributes_count);
    putf(w, "    %-15s: %u\n", "DroppedEventsCount", sp->dropped_events_count);
    putf(w, "    %-15s: %u\n", "DroppedLinksCount", sp->dropped_links_count);
    put_attributes(w, "Attributes", "", sp->attributes, sp->n_attributes);
    if (sp->n_events > 0) {
        puts_(w, "Events:\n");
        for (size_t i = 0; i < sp->n_events; i++) {
            const Opentelemetry__Proto__Trace__V1__Span__Event *e = sp->events[i];
            putf(w, "SpanEvent #%zu\n", i);
            putf(w, "     -> Name: %s\n", str(e->name));
            put_time(w, "     -> Timestamp: ", e->time_unix_nano);
            putf(w, "     -> DroppedAttributesCount: %u\n", e->dropped_attributes_count);
            put_attributes(w, "     -> Attributes:", "     ", e->attributes, e->n_attributes);
        }
    }
    if (sp->n_links > 0) {
        puts_(w, "Links:\n");
        for (size_t i = 0; i < sp->n_links; i++) {
            const Opentelemetry__Proto__Trace__V1__Span__Link *l = sp->links[i];
            putf(w, "SpanLink #%zu\n", i);
            puts_(w, "     -> Trace ID: ");
            put_id(w, l->trace_id);
            puts_(w, "\n     -> ID: ");
            put_id(w, l->span_id);
            putf(w, "\n     -> TraceState: %s\n", str(l->trace_state));
            putf(w, "     -> DroppedAttributesCount: %u\n", l->dropped_attributes_count);
            put_attributes(w, "     -> Attributes:", "     ", l->attributes, l->n_attributes);
        }
    }
}

int th__debug_format_detailed(const th_otlp_request_t *req, th_buf_t *out)
{
    struct w w = {.b = out};
    for (size_t i = 0; i < req->n_resource_spans && w.err == 0; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        putf(&w, "ResourceSpans #%zu\n", i);
        putf(&w, "Resource SchemaURL: %s\n", str(rs->schema_url));
        if (rs->resource) {
            put_attributes(&w, "Resource attributes", "", rs->resource->attributes,
                           rs->resource->n_attributes);
        }
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            const Opentelemetry__Proto__Common__V1__InstrumentationScope *sc = ss->scope;
            putf(&w, "ScopeSpans #%zu\n", j);
            putf(&w, "ScopeSpans SchemaURL: %s\n", str(ss->schema_url));
            putf(&w, "InstrumentationScope %s %s\n", sc ? str(sc->name) : "",
                 sc ? str(sc->version) : "");
            if (sc) {
                put_attributes(&w, "InstrumentationScope attributes", "", sc->attributes,
                               sc->n_attributes);
            }
            for (size_t k = 0; k < ss->n_spans; k++) {
                putf(&w, "Span #%zu\n", k);
                put_span_detailed(&w, ss->spans[k]);
            }
        }
    }
    return w.err;
}
