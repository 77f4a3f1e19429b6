/*
 * Tracehouse common definitions: the one error convention of the project, byte slices,
 * the replaceable allocator and assertions. Every other header includes this one.
 */
#ifndef TH_COMMON_H
#define TH_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TH_VERSION "0.1.0"

/**
 * Result codes. 0 is success; errors are negative. Where an errno value describes the
 * failure it is used (TH_ENOMEM == -ENOMEM); the project's own failures sit below -1000.
 * Non-error control results are positive (TH_AGAIN, TH_DECLINED, TH_HELD).
 */
enum th_err {
    TH_OK = 0,
    TH_ENOMEM = -ENOMEM,         /**< allocation failed, or a memory budget is exhausted */
    TH_EINVAL = -EINVAL,         /**< invalid argument or malformed input */
    TH_EIO = -EIO,               /**< an I/O operation failed */
    TH_ENOENT = -ENOENT,         /**< no such file, key or component */
    TH_EEXIST = -EEXIST,         /**< already exists */
    TH_E2BIG = -E2BIG,           /**< input exceeds a configured limit */
    TH_EADDRINUSE = -EADDRINUSE, /**< a listen address is taken */
    TH_ERETRY = -1001,           /**< transient failure: the sender should retry later */
    TH_EPERM = -1002,            /**< permanent failure: retrying cannot help */
    TH_ECONFIG = -1003,          /**< configuration error */
    TH_EDECODE = -1004,          /**< undecodable input (protobuf, JSON, compression) */
    TH_ESPACE = -1005,           /**< the store is out of space */
    TH_ESHUTDOWN = -1006,        /**< the component is shutting down */
    TH_EUNSUPPORTED = -1007,     /**< a feature or encoding that is not supported */
};

/** Backpressure: not done now, try again later. Not an error. */
#define TH_AGAIN 1
/** Not mine: the next handler should take it. */
#define TH_DECLINED 2
/** The consumer kept the data for later (tail sampling); ownership passed. */
#define TH_HELD 3

/**
 * Describe a result code in English.
 * @param[in] err a value of enum th_err or a control result.
 * @return a static string, never NULL.
 */
const char *th_strerror(int err);

/** A byte slice that does not own its memory. */
typedef struct th_bytes {
    const uint8_t *ptr;
    size_t len;
} th_bytes_t;

/** The allocator table behind th_malloc and friends; replaceable so tests can inject failure. */
struct th_mem_methods {
    void *(*malloc)(size_t size);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t size);
    void (*free)(void *p);
};

/**
 * Replace the allocator. Call before anything is allocated, or pair every allocation with
 * the table that made it (tests replace it around one operation and restore it after).
 * @param[in] m the new table; NULL restores the C library's allocator.
 */
void th_mem_set_methods(const struct th_mem_methods *m);

/** @return memory from the current allocator, or NULL. Never aborts. */
void *th_malloc(size_t size);
/** @return zeroed memory for n objects of size bytes, or NULL (also on overflow). */
void *th_calloc(size_t n, size_t size);
/** @return the resized block, or NULL with @p p untouched. */
void *th_realloc(void *p, size_t size);
/** Free memory from th_malloc and friends; NULL is allowed. */
void th_free(void *p);
/** @return a heap copy of a NUL-terminated string, or NULL. */
char *th_strdup(const char *s);
/** @return a heap copy of @p len bytes plus a NUL, or NULL. */
char *th_strndup(const char *s, size_t len);

/**
 * Read a whole file of at most @p max bytes (certificates, token and htpasswd files, UI
 * configs and assets). Whatever it read is wiped before it is freed on failure, as such files
 * often hold secrets.
 * @param[out] out the bytes, NUL-terminated, from th_malloc (the caller frees, and wipes it
 *             when it holds a secret); @param[out] len their number.
 * @return 0; TH_ENOENT (no such file); TH_E2BIG (larger than @p max); TH_ENOMEM; TH_EIO (any
 *         other failure, a directory included). On TH_ENOENT and TH_EIO errno says why.
 */
int th_file_read(const char *path, size_t max, char **out, size_t *len);

/** Report a broken invariant and abort. Used by th_assert only. */
_Noreturn void th__assert_fail(const char *expr, const char *file, int line);

/** Assert an invariant (never input validation). Stays on in every build. */
#define th_assert(expr)                                                                            \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            th__assert_fail(#expr, __FILE__, __LINE__);                                            \
        }                                                                                          \
    } while (0)

#define TH_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TH_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define TH_MAX(a, b)     ((a) > (b) ? (a) : (b))

/** @return the monotonic clock in nanoseconds. */
uint64_t th_now_mono_ns(void);
/** @return the wall clock in nanoseconds since the Unix epoch. */
uint64_t th_now_unix_ns(void);

#endif
