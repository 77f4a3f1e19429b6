/*
 * Tracehouse's own log records: JSON lines (default) or console lines on stderr. One
 * fprintf per record under a lock, so lines from different threads never interleave.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "th/component.h"
#include "th/log.h"

int th_log_level = TH_LOG_INFO;
static enum th_log_encoding encoding = TH_LOG_JSON;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void th_log_configure(int level, enum th_log_encoding enc)
{
    th_log_level = level;
    encoding = enc;
}

int th_log_level_parse(const char *s)
{
    if (!strcasecmp(s, "debug")) {
        return TH_LOG_DEBUG;
    }
    if (!strcasecmp(s, "info")) {
        return TH_LOG_INFO;
    }
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning")) {
        return TH_LOG_WARN;
    }
    if (!strcasecmp(s, "error")) {
        return TH_LOG_ERROR;
    }
    return -1;
}

int th__log_level_of(const struct th_component *c)
{
    if (c && c->log_level >= 0) {
        return c->log_level;
    }
    return th_log_level;
}

/* Append s to the line as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
    return n;
}

void th__log(int level, const struct th_component *c, const char *action, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t wl = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof(when) - wl, ".%03ldZ", ts.tv_nsec / 1000000);

    const char *lv = level_names[level < 0 ? 0 : level > 3 ? 3 : level];
    char line[4096];
    size_t n;
    if (encoding == TH_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\"", when, lv);
        if (c) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"kind\":\"%s\",\"id\":\"",
                                  c->kind_name);
            n += json_escape(line + n, sizeof(line) - n, c->id);
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\"");
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":\"");
        n += json_escape(line + n, sizeof(line) - n, msg);
        if (action) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"while\":\"");
            n += json_escape(line + n, sizeof(line) - n, action);
        }
        snprintf(line + n, sizeof(line) - n, "\"}");
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s\t%s\t", when, lv);
        if (c) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s/%s\t", c->kind_name, c->id);
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", msg);
        if (action && n < sizeof(line)) {
            snprintf(line + n, sizeof(line) - n, " (while %s)", action);
        }
    }
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}
