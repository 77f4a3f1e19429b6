/*
 * The bodies a receiver sends back: ExportTraceServiceResponse (success, partial success)
 * and google.rpc.Status (errors, with a RetryInfo detail when the client should back off),
 * in protobuf (packed by protobuf-c from the generated structs) or OTLP/JSON.
 */
#include <stdio.h>
#include <string.h>

#include "collector/otlp_internal.h"
#include "collector/rpc_status.h"

/* Pack a message onto the end of @p out. */
static int pack_append(const ProtobufCMessage *m, th_buf_t *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0) {
        return 0; /* an empty message; out->ptr may still be NULL */
    }
    int rc = th_buf_reserve(out, n);
    if (rc) {
        return rc;
    }
    out->len += protobuf_c_message_pack(m, out->ptr + out->len);
    return 0;
}

int th_otlp_encode_response(bool json, int64_t rejected, const char *msg, th_buf_t *out)
{
    bool partial = rejected != 0 || msg != NULL;
    if (json) {
        int rc;
        if (!partial) {
            return th_buf_append(out, "{}", 2);
        }
        if ((rc = th_buf_append(out, "{\"partialSuccess\":{", 19))) {
            return rc;
        }
        bool comma = false;
        if (rejected) {
            if ((rc = th_buf_printf(out, "\"rejectedSpans\":\"%lld\"", (long long)rejected))) {
                return rc;
            }
            comma = true;
        }
        if (msg && msg[0]) {
            if ((rc = th_buf_append(
                     out, comma ? ",\"errorMessage\":" : "\"errorMessage\":", comma ? 16 : 15)) ||
                (rc = th__otlp_json_string(out, msg))) {
                return rc;
            }
        }
        return th_buf_append(out, "}}", 2);
    }
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
    if (partial) {
        ps.rejected_spans = rejected;
        ps.error_message = (char *)(msg ? msg : "");
        resp.partial_success = &ps;
    }
    return pack_append(&resp.base, out);
}

int th_otlp_encode_status(bool json, int code, const char *msg, int retry_after_s, th_buf_t *out)
{
    int rc;
    if (json) {
        bool comma = false;
        if ((rc = th_buf_append(out, "{", 1))) {
            return rc;
        }
        if (code) {
            if ((rc = th_buf_printf(out, "\"code\":%d", code))) {
                return rc;
            }
            comma = true;
        }
        if (msg && msg[0]) {
            if ((rc = th_buf_append(out,
                                    comma ? ",\"message\":" : "\"message\":", comma ? 11 : 10)) ||
                (rc = th__otlp_json_string(out, msg))) {
                return rc;
            }
            comma = true;
        }
        if (retry_after_s > 0) {
            if ((rc = th_buf_printf(out,
                                    "%s\"details\":[{\"@type\":\"" TH__RETRY_INFO_TYPE
                                    "\",\"retryDelay\":\"%ds\"}]",
                                    comma ? "," : "", retry_after_s))) {
                return rc;
            }
        }
        return th_buf_append(out, "}", 1);
    }

    struct th__rpc_status m;
    th__rpc_status_init(&m, code, msg, retry_after_s > 0 ? retry_after_s * 1000000000ll : -1);
    return pack_append(&m.st.base, out);
}

void th__rpc_status_init(struct th__rpc_status *m, int code, const char *msg,
                         int64_t retry_delay_ns)
{
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Rpc__Duration delay = GOOGLE__RPC__DURATION__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Rpc__Any any = GOOGLE__RPC__ANY__INIT;
    m->st = st;
    m->any = any;
    m->st.code = code;
    m->st.message = (char *)(msg ? msg : "");
    if (retry_delay_ns >= 0) {
        /* The RetryInfo is packed into inner now, so the Any holds plain bytes. */
        delay.seconds = retry_delay_ns / 1000000000;
        delay.nanos = (int32_t)(retry_delay_ns % 1000000000);
        ri.retry_delay = &delay;
        m->any.type_url = (char *)TH__RETRY_INFO_TYPE;
        m->any.value.len = google__rpc__retry_info__pack(&ri, m->inner);
        m->any.value.data = m->inner;
        m->details[0] = &m->any;
        m->st.n_details = 1;
        m->st.details = m->details;
    }
}
