/*
 * The replaceable allocator, error strings, assertions and clocks shared by every part of
 * Tracehouse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "th/common.h"

static const struct th_mem_methods libc_methods = {
    .malloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
};

/* Read by every thread on every allocation; set at start, and by tests while server threads
 * run (an out-of-memory test swaps in a failing allocator), so it is loaded and stored
 * atomically (a plain load on x86-64 and arm64). */
static const struct th_mem_methods *mem = &libc_methods;

static inline const struct th_mem_methods *methods(void)
{
    return __atomic_load_n(&mem, __ATOMIC_ACQUIRE);
}

void th_mem_set_methods(const struct th_mem_methods *m)
{
    __atomic_store_n(&mem, m ? m : &libc_methods, __ATOMIC_RELEASE);
}

void *th_malloc(size_t size)
{
    return methods()->malloc(size);
}

void *th_calloc(size_t n, size_t size)
{
    return methods()->calloc(n, size);
}

void *th_realloc(void *p, size_t size)
{
    return methods()->realloc(p, size);
}

void th_free(void *p)
{
    if (p) {
        methods()->free(p);
    }
}

char *th_strndup(const char *s, size_t len)
{
    char *d = th_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *th_strdup(const char *s)
{
    return th_strndup(s, strlen(s));
}

const char *th_strerror(int err)
{
    switch (err) {
    case TH_OK:
        return "success";
    case TH_AGAIN:
        return "try again later";
    case TH_DECLINED:
        return "declined";
    case TH_HELD:
        return "held for later";
    case TH_ERETRY:
        return "temporary failure, retry later";
    case TH_EPERM:
        return "permanent failure";
    case TH_ECONFIG:
        return "configuration error";
    case TH_EDECODE:
        return "malformed input";
    case TH_ESPACE:
        return "store out of space";
    case TH_ESHUTDOWN:
        return "shutting down";
    case TH_EUNSUPPORTED:
        return "not supported";
    case TH_E2BIG:
        return "input exceeds a configured limit";
    case TH_ENOMEM:
        return "out of memory";
    default:
        if (err < 0 && err > -1000) {
            return strerror(-err);
        }
        return "unknown error";
    }
}

_Noreturn void th__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "tracehouse: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

uint64_t th_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t th_now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
