/*
 * How one Export call went, from what the server sent on its stream: the gRPC status in the
 * trailers (or a Trailers-Only reply), RetryInfo in grpc-status-details-bin, the
 * ExportTraceServiceResponse's partial_success, an RST_STREAM, a GOAWAY that left the call
 * unprocessed, or an HTTP reply that is not gRPC at all. The mapping follows the OTLP
 * client retry table and grpc-go's (otlp.md §4); the message says what happened in words a
 * person can act on. Kept apart from the connection code so it is tested without sockets.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "exporters/otlp_grpc/otlp_grpc.h"
#include "th/grpc.h"

void th__otlp_grpc_exporter_response_init(struct th_otlp_grpc_exporter_response *r)
{
    memset(r, 0, sizeof(*r));
    r->grpc_status = -1;
    r->retry_delay_ns = -1;
    th_grpc_reader_init(&r->reader, TH_OTLP_GRPC_EXPORTER_MAX_RESPONSE);
}

void th__otlp_grpc_exporter_response_free(struct th_otlp_grpc_exporter_response *r)
{
    th_grpc_reader_free(&r->reader);
}

static void setmsg(struct th_export_result *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void setmsg(struct th_export_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

/* " (retry after 1.5s)" for the log, or "" */
static void delay_text(int64_t ns, char *buf, size_t cap)
{
    if (ns < 0) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, cap, " (server asks to retry after %.3gs)", (double)ns / 1e9);
}

/* The grpc-message as text: percent-decoded, printable. */
static void grpc_message_text(const struct th_otlp_grpc_exporter_response *r, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!r->grpc_message_len) {
        return;
    }
    th_arena_t *a = th_arena_create(1024, 0);
    char *m = a ? th_grpc_message_decode(a, r->grpc_message, r->grpc_message_len) : NULL;
    /* A long server message is cut to the buffer: it only goes into a log line. */
    int w = snprintf(buf, cap, "%s", m ? m : r->grpc_message);
    if (w < 0) {
        buf[0] = '\0';
    }
    th_arena_destroy(a);
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
}

/* The status in the trailers, mapped with the OTLP retry table. */
static void map_status(struct th_otlp_grpc_exporter_response *r, const char *peer,
                       struct th_export_result *out)
{
    char msg[200];
    char delay[64];
    grpc_message_text(r, msg, sizeof(msg));
    bool has_retry = r->retry_delay_ns >= 0;
    delay_text(r->retry_delay_ns, delay, sizeof(delay));
    const char *name = th_grpc_status_name(r->grpc_status);
    if (th_grpc_status_retryable(r->grpc_status, has_retry)) {
        out->err = TH_ERETRY;
        out->retry_after_ns = r->retry_delay_ns;
        setmsg(out, "%s from %s: %s%s", name, peer, *msg ? msg : "(no message)", delay);
    } else if (r->grpc_status == TH_GRPC_RESOURCE_EXHAUSTED) {
        /* No RetryInfo: the server refused the request's size; the helper splits it. */
        out->err = TH_E2BIG;
        setmsg(out,
               "RESOURCE_EXHAUSTED from %s without RetryInfo (the request is too large "
               "for the server): %s",
               peer, *msg ? msg : "(no message)");
    } else {
        out->err = TH_EPERM;
        setmsg(out, "%s (%d) from %s, not retryable: %s", name, r->grpc_status, peer,
               *msg ? msg : "(no message)");
    }
}

/* OK: read partial_success from the response message, if there is one. */
static void map_ok(struct th_otlp_grpc_exporter_response *r, const char *peer,
                   struct th_export_result *out)
{
    size_t len = 0;
    bool compressed = false;
    uint8_t *msg = th_grpc_reader_take(&r->reader, &len, &compressed);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    th_arena_t *a = NULL;
    out->err = 0;
    if (!msg || len == 0) {
        goto out; /* an empty response: full success */
    }
    if (compressed) {
        const char *enc = r->encoding[0] ? r->encoding : "identity";
        int ret = th_grpc_decompress(enc, msg, len, TH_OTLP_GRPC_EXPORTER_MAX_RESPONSE, &plain,
                                     &plain_len);
        if (ret == TH_ENOMEM) {
            setmsg(out, "delivered to %s; its response could not be read (out of memory)", peer);
            goto out;
        }
        if (ret != 0) {
            out->err = TH_EPERM;
            setmsg(out, "OK from %s, but its response (grpc-encoding %s) does not decompress: %s",
                   peer, enc, th_strerror(ret));
            goto out;
        }
    }
    a = th_arena_create(1024, 0);
    if (!a) {
        goto out; /* the data was delivered; only the partial-success detail is lost */
    }
    ProtobufCAllocator alloc;
    th_arena_pbc_allocator(a, &alloc);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            &alloc, plain ? plain_len : len, plain ? plain : msg);
    if (!resp) {
        out->err = TH_EPERM;
        setmsg(out, "OK from %s, but its ExportTraceServiceResponse does not parse", peer);
        goto out;
    }
    if (resp->partial_success) {
        int64_t rej = resp->partial_success->rejected_spans;
        const char *why = resp->partial_success->error_message;
        out->rejected_spans = rej > 0 ? (uint64_t)rej : 0;
        if (rej > 0 || (why && *why)) {
            setmsg(out, "partial success from %s: %" PRId64 " spans rejected: %s", peer, rej,
                   why && *why ? why : "(no message)");
        }
    }
out:
    th_free(msg);
    th_free(plain);
    th_arena_destroy(a);
}

/* An HTTP reply without gRPC status: grpc-go's table (otlp.md §4.2). */
static void map_http(const struct th_otlp_grpc_exporter_response *r, const char *peer,
                     struct th_export_result *out)
{
    const char *ct = r->content_type[0] ? r->content_type : "none";
    switch (r->http_status) {
    case 429:
    case 502:
    case 503:
    case 504:
        out->err = TH_ERETRY;
        setmsg(out, "HTTP %d from %s (not a gRPC reply, content-type %s): UNAVAILABLE, will retry",
               r->http_status, peer, ct);
        return;
    case 400:
        setmsg(out, "HTTP 400 from %s (not a gRPC reply, content-type %s): INTERNAL", peer, ct);
        break;
    case 401:
        setmsg(out, "HTTP 401 from %s: UNAUTHENTICATED (check the credentials in headers)", peer);
        break;
    case 403:
        setmsg(out, "HTTP 403 from %s: PERMISSION_DENIED", peer);
        break;
    case 404:
        setmsg(out,
               "HTTP 404 from %s: UNIMPLEMENTED (is this an OTLP/gRPC endpoint? "
               "OTLP/HTTP usually listens on 4318, gRPC on 4317)",
               peer);
        break;
    default:
        setmsg(out, "HTTP %d from %s (not a gRPC reply, content-type %s): UNKNOWN", r->http_status,
               peer, ct);
        break;
    }
    out->err = TH_EPERM;
}

/* RST_STREAM without a status: the mapping gRPC clients apply to HTTP/2 error codes. */
static void map_rst(const struct th_otlp_grpc_exporter_response *r, const char *peer,
                    struct th_export_result *out)
{
    const char *h2 = nghttp2_http2_strerror(r->rst_code);
    switch (r->rst_code) {
    case NGHTTP2_REFUSED_STREAM:
        out->err = TH_ERETRY;
        setmsg(out, "%s refused the stream (RST_STREAM REFUSED_STREAM): UNAVAILABLE, will retry",
               peer);
        return;
    case NGHTTP2_CANCEL:
        out->err = TH_ERETRY;
        setmsg(out, "%s cancelled the stream (RST_STREAM CANCEL): CANCELLED, will retry", peer);
        return;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        /* RESOURCE_EXHAUSTED in gRPC's table, but it is throttling, not a size complaint:
         * splitting the batch would not help, waiting does. */
        out->err = TH_ERETRY;
        setmsg(out, "%s asked to slow down (RST_STREAM ENHANCE_YOUR_CALM): will retry", peer);
        return;
    case NGHTTP2_INADEQUATE_SECURITY:
        out->err = TH_EPERM;
        setmsg(out, "%s reset the stream (INADEQUATE_SECURITY): PERMISSION_DENIED", peer);
        return;
    default:
        out->err = TH_EPERM;
        setmsg(out, "%s reset the stream (RST_STREAM %s): INTERNAL", peer, h2);
        return;
    }
}

void th__otlp_grpc_exporter_result(struct th_otlp_grpc_exporter_response *r, const char *peer,
                                   struct th_export_result *out)
{
    memset(out, 0, sizeof(*out));
    out->retry_after_ns = -1;
    if (r->refused_by_goaway) {
        out->err = TH_ERETRY;
        setmsg(out,
               "%s is going away (GOAWAY) and did not process the call: UNAVAILABLE, will "
               "retry on a new connection",
               peer);
    } else if (r->grpc_status >= 0) {
        if (r->grpc_status == TH_GRPC_OK && r->data_err == TH_ENOMEM) {
            /* The server took the data; only its partial-success detail is lost. */
            setmsg(out, "delivered to %s; its response could not be read (out of memory)", peer);
        } else if (r->grpc_status == TH_GRPC_OK && r->data_err) {
            out->err = TH_EPERM;
            setmsg(out, "OK from %s, but its response message is malformed: %s", peer,
                   th_strerror(r->data_err));
        } else if (r->grpc_status == TH_GRPC_OK) {
            map_ok(r, peer, out);
        } else {
            map_status(r, peer, out);
        }
    } else if (r->reset) {
        map_rst(r, peer, out);
    } else if (r->http_status != 0 && r->http_status != 200) {
        map_http(r, peer, out);
    } else if (r->http_status == 200 && !r->content_type_grpc) {
        out->err = TH_EPERM;
        setmsg(out, "%s answered HTTP 200 with content-type %s: not a gRPC server", peer,
               r->content_type[0] ? r->content_type : "(none)");
    } else {
        out->err = TH_EPERM;
        setmsg(out, "%s closed the stream without a grpc-status: INTERNAL", peer);
    }
}
