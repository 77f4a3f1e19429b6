/*
 * The replaceable allocator, error strings, assertions and clocks shared by every part of
 * Tracehouse.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

int th_file_read(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? TH_ENOENT : TH_EIO;
    }
    int rc = 0, err = 0;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = TH_EIO;
        err = errno;
        goto out;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
        rc = TH_E2BIG;
        goto out;
    }
    /* A regular file's size is known, plus one byte to see its end (it may still change
     * while read); otherwise grow. Reads stop one byte past the limit, so a larger file, or a
     * pipe, is refused without reading it all. One byte stays free for the NUL. */
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : 4096;
    buf = th_malloc(cap);
    if (!buf) {
        rc = TH_ENOMEM;
        goto out;
    }
    for (;;) {
        if (n + 1 == cap) {
            size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            char *p = th_malloc(ncap);
            if (!p) {
                rc = TH_ENOMEM;
                goto out;
            }
            memcpy(p, buf, n);
            explicit_bzero(buf, cap);
            th_free(buf);
            buf = p;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = TH_EIO;
            err = errno;
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > max) {
            rc = TH_E2BIG;
            goto out;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    if (buf) {
        explicit_bzero(buf, cap);
        th_free(buf);
    }
    close(fd);
    errno = err;
    return rc;
}
