/*
 * Where the debug exporter's text goes and how often: zap's per-second sampler (the one the
 * Collector wraps around this exporter's logger), and the two outputs, the collector's own
 * log on stderr or plain stdout.
 */
#include <stdio.h>
#include <string.h>

#include "exporters/debug/debug.h"
#include "th/log.h"

/* The collector's log formats each record into a fixed buffer (see collector/log.c); long
 * lines go out in pieces no bigger than this so that even a piece made only of characters
 * that JSON-escape to six bytes still fits and nothing is cut off. */
#define LOG_PIECE 512

void th__debug_sampler_init(struct th_debug_sampler *s, uint64_t initial, uint64_t thereafter)
{
    memset(s, 0, sizeof(*s));
    s->initial = initial;
    s->thereafter = thereafter;
    s->tick_ns = 1000000000u;
}

/* FNV-1a, 32 bits: what zap hashes messages with to pick a counter. */
static uint32_t fnv32a(const char *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

bool th__debug_sampler_allow(struct th_debug_sampler *s, const char *msg, size_t len,
                             uint64_t now_ns)
{
    uint32_t slot = fnv32a(msg, len) % TH_DEBUG_SAMPLER_SLOTS;
    uint64_t n;
    if (now_ns >= s->slots[slot].reset_at) {
        s->slots[slot].count = 1;
        s->slots[slot].reset_at = now_ns + s->tick_ns;
        n = 1;
    } else {
        n = ++s->slots[slot].count;
    }
    if (n <= s->initial) {
        return true;
    }
    return s->thereafter != 0 && (n - s->initial) % s->thereafter == 0;
}

/* Back up from @p end to the start of a UTF-8 sequence, so a split never cuts a character. */
static size_t utf8_boundary(const char *p, size_t end)
{
    size_t e = end;
    while (e > 0 && ((unsigned char)p[e] & 0xc0) == 0x80) {
        e--;
    }
    return e > 0 ? e : end;
}

/* One log record per line; a long line is split into LOG_PIECE pieces. */
static void log_lines(struct th_debug_exporter *d, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - p) : len;
        size_t start = i;
        do {
            size_t piece = end - start;
            if (piece > LOG_PIECE) {
                piece = utf8_boundary(p + start, LOG_PIECE);
            }
            th_log_info(&d->base, "%.*s", (int)piece, p + start);
            start += piece;
        } while (start < end);
        i = end + 1;
    }
}

/* stdout as the Collector's custom logger writes it: the console encoder without time or
 * level, so the message, a tab, the fields, and a newline after every message. */
static void write_stdout(const char *msg, const char *fields)
{
    flockfile(stdout);
    fputs(msg, stdout);
    if (fields) {
        fputc('\t', stdout);
        fputs(fields, stdout);
    }
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
}

int th__debug_write_batch(struct th_debug_exporter *d, const th_otlp_request_t *req)
{
    th_buf_t fields = {0};
    th_buf_t dump = {0};
    /* Format before taking the lock: only the sampler and the write are shared. */
    int ret = th__debug_format_basic(req, &fields);
    if (ret == 0) {
        ret = th_buf_append(&fields, "", 1);
    }
    if (ret == 0 && d->verbosity == TH_DEBUG_NORMAL) {
        ret = th__debug_format_normal(req, &dump);
    } else if (ret == 0 && d->verbosity == TH_DEBUG_DETAILED) {
        ret = th__debug_format_detailed(req, &dump);
    }
    if (ret == 0) {
        ret = th_buf_append(&dump, "", 1);
    }
    if (ret != 0) {
        goto out;
    }
    pthread_mutex_lock(&d->lock);
    /* zap keys its counters on the message alone, "Traces", not on the fields. */
    if (th__debug_sampler_allow(&d->sampler, "Traces", 6, th_now_mono_ns())) {
        if (d->internal_logger) {
            th_log_info(&d->base, "Traces %s", (const char *)fields.ptr);
        } else {
            write_stdout("Traces", (const char *)fields.ptr);
        }
    }
    size_t dump_len = dump.len - 1;
    if (d->verbosity != TH_DEBUG_BASIC && dump_len > 0 &&
        th__debug_sampler_allow(&d->sampler, (const char *)dump.ptr, dump_len, th_now_mono_ns())) {
        if (d->internal_logger) {
            log_lines(d, (const char *)dump.ptr, dump_len);
        } else {
            write_stdout((const char *)dump.ptr, NULL);
        }
    }
    pthread_mutex_unlock(&d->lock);
out:
    th_buf_free(&fields);
    th_buf_free(&dump);
    return ret;
}
