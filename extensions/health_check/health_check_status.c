/*
 * health_check's answers: whether the collector is up (every pipeline started, not shutting
 * down), whether it can do its work (component statuses, full sending queues), and the
 * Collector's JSON body with Go's spellings of times and durations, which probes and
 * dashboards written for the Collector parse.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "exporters/jaeger_storage/jaeger_storage_exporter.h"
#include "extensions/health_check/health_check.h"
#include "th/collector.h"
#include "th/exporterhelper.h"

/* "<whole>[.<frac>]<unit>" with the fraction's trailing zeros dropped, as Go prints. */
static size_t put_frac(char *out, size_t len, uint64_t whole, uint64_t frac, int digits,
                       const char *unit)
{
    char f[16] = "";
    if (frac) {
        snprintf(f, sizeof(f), ".%0*" PRIu64, digits, frac);
        size_t n = strlen(f);
        while (n > 1 && f[n - 1] == '0') {
            f[--n] = '\0';
        }
    }
    int n = snprintf(out, len, "%" PRIu64 "%s%s", whole, f, unit);
    return n < 0 ? 0 : TH_MIN((size_t)n, len);
}

void th__health_check_go_duration(int64_t ns, char *out, size_t len)
{
    if (ns == 0) {
        snprintf(out, len, "0s");
        return;
    }
    size_t o = 0;
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    if (ns < 0) {
        o += (size_t)snprintf(out, len, "-");
    }
    if (u < 1000) {
        snprintf(out + o, len - o, "%" PRIu64 "ns", u);
    } else if (u < 1000000) {
        put_frac(out + o, len - o, u / 1000, u % 1000, 3, "\xc2\xb5s"); /* µs */
    } else if (u < 1000000000) {
        put_frac(out + o, len - o, u / 1000000, u % 1000000, 6, "ms");
    } else {
        uint64_t s = u / 1000000000, frac = u % 1000000000;
        uint64_t h = s / 3600, m = s / 60 % 60;
        s %= 60;
        if (h) {
            o += (size_t)snprintf(out + o, len - o, "%" PRIu64 "h", h);
        }
        if (h || m) {
            o += (size_t)snprintf(out + o, len - o, "%" PRIu64 "m", m);
        }
        put_frac(out + o, len - o, s, frac, 9, "s");
    }
}

void th__health_check_rfc3339(uint64_t unix_ns, char *out, size_t len)
{
    time_t secs = (time_t)(unix_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    put_frac(out, len, 0, unix_ns % 1000000000u, 9, "Z");
    /* put_frac wrote "0[.frac]Z": keep the fraction and unit after the date */
    char tail[24];
    snprintf(tail, sizeof(tail), "%s", out + 1);
    snprintf(out, len, "%s%s", date, tail);
}

/* ---- Can the collector do its work? ------------------------------------------------------- */

struct check {
    char *buf;
    size_t len;
    bool bad;
};

static void check_component(void *data, struct th_component *c, const char *pipeline)
{
    (void)pipeline;
    struct check *k = data;
    if (k->bad) {
        return; /* the first problem is the one reported */
    }
    const char *reason = NULL;
    int err = th_component_status(c, &reason);
    if (err != 0) {
        snprintf(k->buf, k->len, "%s \"%s\": %s (%s)", c->kind_name, c->id,
                 reason ? reason : "failing", th_strerror(err));
        k->bad = true;
        return;
    }
    if (c->ops->kind != TH_KIND_EXPORTER) {
        return;
    }
    uint64_t size = 0, capacity = 0;
    if (!strcmp(c->ops->type, "jaeger_storage_exporter")) {
        th_jaeger_storage_exporter_queue_stats(c, &size, &capacity, NULL);
    } else if (c->exporterhelper && th_exporterhelper_queue_enabled(c->exporterhelper)) {
        th_exporterhelper_queue_stats(c->exporterhelper, &size, &capacity);
    } else {
        return;
    }
    if (capacity > 0 && size >= capacity) {
        snprintf(k->buf, k->len,
                 "%s \"%s\": the sending queue is full (%" PRIu64 " of %" PRIu64 ")", c->kind_name,
                 c->id, size, capacity);
        k->bad = true;
    }
}

bool th__health_check_degraded(struct th_host *host, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!host || !host->data) {
        return false; /* no collector behind the host (a component test) */
    }
    struct check k = {.buf = buf, .len = len};
    th_collector_foreach_component(host->data, check_component, &k);
    return k.bad;
}

/* ---- Answers ------------------------------------------------------------------------------ */

/* A JSON string body: the reason is ours, but component ids come from the config. */
static int put_json_string(th_buf_t *b, const char *s)
{
    int ret = th_buf_append(b, "\"", 1);
    for (; ret == 0 && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            ret = th_buf_printf(b, "\\%c", ch);
        } else if (ch < 0x20) {
            ret = th_buf_printf(b, "\\u%04x", ch);
        } else {
            ret = th_buf_append(b, s, 1);
        }
    }
    return ret ? ret : th_buf_append(b, "\"", 1);
}

int th__health_check_serve(void *data, const struct th_http_request *req,
                           struct th_http_response *res)
{
    struct th_health_check *h = data;
    const char *path = h->cfg->path;
    if (req->path_len != strlen(path) || memcmp(req->path, path, req->path_len) != 0) {
        res->status = 404;
        return th_buf_printf(&res->body, "404 page not found\n");
    }
    uint64_t since = h->host ? __atomic_load_n(&h->host->ready_since_ns, __ATOMIC_ACQUIRE) : 0;
    char reason[512] = "";
    bool healthy = since != 0 && !th__health_check_degraded(h->host, reason, sizeof(reason));
    res->status = healthy ? 200 : 503;
    const struct th_health_check_body_cfg *rb = &h->cfg->response_body;
    if ((rb->healthy && *rb->healthy) || (rb->unhealthy && *rb->unhealthy)) {
        const char *body = healthy ? rb->healthy : rb->unhealthy;
        return body ? th_buf_append(&res->body, body, strlen(body)) : 0;
    }
    res->content_type = "application/json";
    char up[48] = "0001-01-01T00:00:00Z";
    char uptime[40] = "";
    if (since) {
        th__health_check_rfc3339(since, up, sizeof(up));
        /* uptime on the monotonic clock: a wall clock step changes start_time, not uptime */
        uint64_t mono0 = __atomic_load_n(&h->host->ready_since_mono_ns, __ATOMIC_ACQUIRE);
        uint64_t now = th_now_mono_ns();
        th__health_check_go_duration(now > mono0 ? (int64_t)(now - mono0) : 0, uptime,
                                     sizeof(uptime));
    }
    /* Degraded (Tracehouse's addition): the status names the component and the reason, and
     * "reason" carries them alone for tools. */
    int ret = th_buf_printf(&res->body, "{\"status\":");
    if (ret == 0 && reason[0]) {
        char status[600];
        snprintf(status, sizeof(status), "Server not available: %s", reason);
        ret = put_json_string(&res->body, status);
    } else if (ret == 0) {
        ret = th_buf_printf(&res->body, "\"%s\"",
                            healthy ? "Server available" : "Server not available");
    }
    if (ret == 0) {
        ret = th_buf_printf(&res->body, ",\"upSince\":\"%s\",\"uptime\":\"%s\"", up, uptime);
    }
    if (ret == 0 && reason[0]) {
        ret = th_buf_printf(&res->body, ",\"reason\":");
        ret = ret ? ret : put_json_string(&res->body, reason);
    }
    return ret ? ret : th_buf_append(&res->body, "}", 1);
}
