/*
 * The batch processor's rules across fields: the Collector's Validate, in its order and with
 * its messages, so a config that the Collector refuses is refused here with the same words.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "processors/batch/batch.h"

/* Go's %q for the usual keys: quotes, backslashes and control bytes escaped. */
static void go_quote(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap < 3) {
        out[0] = '\0';
        return;
    }
    out[n++] = '"';
    for (; *s && n + 6 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (ch == '\t') {
            out[n++] = '\\';
            out[n++] = 't';
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* Keys are compared as the Collector does: lower-cased (ASCII; metadata keys are header
 * names). */
static bool same_key(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return false;
        }
    }
    return *a == *b;
}

int th__batch_processor_config_check(const void *cfg_, const char **err)
{
    static _Thread_local char msg[400];
    const struct th_batch_processor_cfg *cfg = cfg_;
    if (cfg->send_batch_max_size > 0 && cfg->send_batch_max_size < cfg->send_batch_size) {
        *err = "send_batch_max_size must be greater or equal to send_batch_size";
        return TH_ECONFIG;
    }
    for (size_t i = 0; i < cfg->metadata_keys.n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (same_key(cfg->metadata_keys.v[i], cfg->metadata_keys.v[j])) {
                char lower[256];
                size_t k = 0;
                for (const char *s = cfg->metadata_keys.v[i]; *s && k + 1 < sizeof(lower); s++) {
                    lower[k++] = (char)tolower((unsigned char)*s);
                }
                lower[k] = '\0';
                char quoted[300];
                go_quote(quoted, sizeof(quoted), lower);
                snprintf(msg, sizeof(msg),
                         "duplicate entry in metadata_keys: %s (case-insensitive)", quoted);
                *err = msg;
                return TH_ECONFIG;
            }
        }
    }
    if (cfg->timeout < 0) {
        *err = "timeout must be greater or equal to 0";
        return TH_ECONFIG;
    }
    return 0;
}
