/*
 * Tracehouse's own logs: one JSON object per line on stderr by default (or a console line),
 * each with timestamp, level, component and message. The level is checked before any
 * argument is formatted, so a filtered message costs one comparison.
 */
#ifndef TH_LOG_H
#define TH_LOG_H

#include <stdarg.h>

#include "th/common.h"

struct th_component;

enum th_log_level {
    TH_LOG_DEBUG = 0,
    TH_LOG_INFO = 1,
    TH_LOG_WARN = 2,
    TH_LOG_ERROR = 3,
    TH_LOG_OFF = 4,
};

enum th_log_encoding {
    TH_LOG_JSON = 0,
    TH_LOG_CONSOLE = 1,
};

/** The process-wide level; components inherit it unless they set their own. */
extern int th_log_level;

/**
 * Set the level and encoding for the process.
 * @param[in] level one of enum th_log_level.
 * @param[in] enc TH_LOG_JSON or TH_LOG_CONSOLE.
 */
void th_log_configure(int level, enum th_log_encoding enc);

/** Parse "debug", "info", "warn", "error" (any case; "warning" too). @return level or -1. */
int th_log_level_parse(const char *s);

/**
 * Write one log record. Use the macros, which check the level first.
 * @param[in] c the component logging, or NULL for the collector itself.
 * @param[in] action what was being done ("decoding OTLP protobuf"), or NULL.
 */
void th__log(int level, const struct th_component *c, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** @return the effective level of @p c (its own, or the process level). */
int th__log_level_of(const struct th_component *c);

#define TH_LOG_AT(lvl, c, action, ...)                                                             \
    do {                                                                                           \
        if ((lvl) >= th__log_level_of(c)) {                                                        \
            th__log((lvl), (c), (action), __VA_ARGS__);                                            \
        }                                                                                          \
    } while (0)

#define th_log_debug(c, ...) TH_LOG_AT(TH_LOG_DEBUG, (c), NULL, __VA_ARGS__)
#define th_log_info(c, ...)  TH_LOG_AT(TH_LOG_INFO, (c), NULL, __VA_ARGS__)
#define th_log_warn(c, ...)  TH_LOG_AT(TH_LOG_WARN, (c), NULL, __VA_ARGS__)
#define th_log_error(c, ...) TH_LOG_AT(TH_LOG_ERROR, (c), NULL, __VA_ARGS__)
/** An error with context: "while <action>". */
#define th_log_error_ctx(c, action, ...) TH_LOG_AT(TH_LOG_ERROR, (c), (action), __VA_ARGS__)

#endif
