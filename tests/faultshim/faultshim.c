/*
 * A fault-injection shim for the integration tests, LD_PRELOADed into tracehouse
 * (tests/integration/faults.test.mjs). Two independent faults, each configured by
 * environment variables and toggled at run time through a file, so a test changes them while
 * the process runs:
 *
 * Clock: TH_FAULT_CLOCK_FILE names a file holding an offset in seconds (signed, may have a
 * fraction). clock_gettime(CLOCK_REALTIME*), gettimeofday() and time() return the real wall
 * clock plus that offset, as if an operator or NTP stepped the clock. CLOCK_MONOTONIC is left
 * alone, as a real step leaves it.
 *
 * Write faults: while the file TH_FAULT_IO_FLAG exists, every write-side call on a file under
 * the directory TH_FAULT_IO_PATH fails with TH_FAULT_IO_ERRNO (EROFS by default; EACCES,
 * ENOSPC, EDQUOT, EIO): open for writing, write, pwrite, fsync, fdatasync, ftruncate,
 * fallocate, posix_fallocate, and msync of a mapping of such a file (with
 * TH_FAULT_IO_MSYNC_MAXLEN, only msyncs at most that long, and no other call: LMDB's meta
 * page write after its data sync went through). As root, chmod cannot make a file
 * read-only; this can, at any moment. Reads are untouched.
 *
 * Both files are read at most every few milliseconds (FAULT_POLL_NS), through raw system
 * calls so the shim never calls into itself.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* How long a read of a control file is trusted. */
#define FAULT_POLL_NS 5000000ll

#define REAL(name) ((__typeof__(&name))real_sym(#name))

static void *real_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "faultshim: no %s\n", name);
        abort();
    }
    return p;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- The clock ------------------------------------------------------------------------ */

static int64_t clock_read_at = -FAULT_POLL_NS, clock_offset;

/* The offset in ns from TH_FAULT_CLOCK_FILE (0 without it). */
static int64_t offset_ns(void)
{
    const char *f = getenv("TH_FAULT_CLOCK_FILE");
    if (!f) {
        return 0;
    }
    int64_t now = mono_ns();
    if (now - __atomic_load_n(&clock_read_at, __ATOMIC_RELAXED) < FAULT_POLL_NS) {
        return __atomic_load_n(&clock_offset, __ATOMIC_RELAXED);
    }
    char buf[64];
    long n = -1;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, f, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
        syscall(SYS_close, fd);
    }
    int64_t off = 0;
    if (n > 0) {
        buf[n] = '\0';
        off = (int64_t)(strtod(buf, NULL) * 1e9);
    }
    __atomic_store_n(&clock_offset, off, __ATOMIC_RELAXED);
    __atomic_store_n(&clock_read_at, now, __ATOMIC_RELAXED);
    return off;
}

static void shift(struct timespec *ts, int64_t off)
{
    int64_t t = (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec + off;
    ts->tv_sec = (time_t)(t / 1000000000ll);
    ts->tv_nsec = (long)(t % 1000000000ll);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000l;
        ts->tv_sec--;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int r = REAL(clock_gettime)(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        shift(ts, offset_ns());
    }
    return r;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timeval *volatile out = tv; /* callers may pass NULL despite the prototype */
    int r = REAL(gettimeofday)(tv, tz);
    if (r == 0 && out) {
        struct timespec ts = {tv->tv_sec, tv->tv_usec * 1000};
        shift(&ts, offset_ns());
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return r;
}

time_t time(time_t *out)
{
    struct timespec ts;
    REAL(clock_gettime)(CLOCK_REALTIME, &ts);
    shift(&ts, offset_ns());
    if (out) {
        *out = ts.tv_sec;
    }
    return ts.tv_sec;
}

/* ---- Write faults --------------------------------------------------------------------- */

static int64_t flag_read_at = -FAULT_POLL_NS;
static bool flag_on;

/* @return the errno to fail with while the flag file exists, else 0. */
static int io_fault(void)
{
    const char *f = getenv("TH_FAULT_IO_FLAG");
    if (!f || !getenv("TH_FAULT_IO_PATH")) {
        return 0;
    }
    int64_t now = mono_ns();
    if (now - __atomic_load_n(&flag_read_at, __ATOMIC_RELAXED) >= FAULT_POLL_NS) {
        bool on = syscall(SYS_faccessat, AT_FDCWD, f, F_OK, 0) == 0;
        __atomic_store_n(&flag_on, on, __ATOMIC_RELAXED);
        __atomic_store_n(&flag_read_at, now, __ATOMIC_RELAXED);
    }
    if (!__atomic_load_n(&flag_on, __ATOMIC_RELAXED)) {
        return 0;
    }
    const char *e = getenv("TH_FAULT_IO_ERRNO");
    if (!e || !strcmp(e, "EROFS")) {
        return EROFS;
    }
    return !strcmp(e, "EACCES")   ? EACCES
           : !strcmp(e, "ENOSPC") ? ENOSPC
           : !strcmp(e, "EDQUOT") ? EDQUOT
                                  : EIO;
}

static bool path_under(const char *p)
{
    const char *dir = getenv("TH_FAULT_IO_PATH");
    size_t n = dir ? strlen(dir) : 0;
    return n && p && !strncmp(p, dir, n) && (p[n] == '/' || p[n] == '\0');
}

static bool fd_under(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof(path) - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = '\0';
    return path_under(path);
}

/* @return the errno a write-side call on @p fd fails with now, or 0. */
static int fd_fault(int fd)
{
    int e = getenv("TH_FAULT_IO_MSYNC_MAXLEN") ? 0 : io_fault();
    return e && fd > 2 && fd_under(fd) ? e : 0;
}

/* Mappings of files under the directory, so msync can tell them apart. */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uintptr_t start, end;
} maps[64];

static void maps_add(void *addr, size_t len)
{
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (maps[i].start == 0) {
            maps[i].start = (uintptr_t)addr;
            maps[i].end = (uintptr_t)addr + len;
            break;
        }
    }
    pthread_mutex_unlock(&maps_lock);
}

static void maps_remove(void *addr)
{
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        if (maps[i].start == (uintptr_t)addr) {
            maps[i].start = maps[i].end = 0;
        }
    }
    pthread_mutex_unlock(&maps_lock);
}

static bool mapped_under(void *addr)
{
    bool hit = false;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        hit = hit || ((uintptr_t)addr >= maps[i].start && (uintptr_t)addr < maps[i].end);
    }
    pthread_mutex_unlock(&maps_lock);
    return hit;
}

#define FAIL_IF(e)                                                                                 \
    do {                                                                                           \
        int e_ = (e);                                                                              \
        if (e_) {                                                                                  \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int open_fault(const char *path, int flags)
{
    if (getenv("TH_FAULT_IO_MSYNC_MAXLEN")) {
        return 0;
    }
    return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) && path_under(path) ? io_fault() : 0;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    FAIL_IF(open_fault(path, flags));
    return REAL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    FAIL_IF(open_fault(path, flags));
    return REAL(open64)(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    FAIL_IF(open_fault(path, flags));
    return REAL(openat)(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    FAIL_IF(open_fault(path, flags));
    return REAL(openat64)(dirfd, path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    FAIL_IF(fd_fault(fd));
    return REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    FAIL_IF(fd_fault(fd));
    return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    FAIL_IF(fd_fault(fd));
    return REAL(pwrite64)(fd, buf, n, off);
}

int fsync(int fd)
{
    FAIL_IF(fd_fault(fd));
    return REAL(fsync)(fd);
}

int fdatasync(int fd)
{
    FAIL_IF(fd_fault(fd));
    return REAL(fdatasync)(fd);
}

int ftruncate(int fd, off_t len)
{
    FAIL_IF(fd_fault(fd));
    return REAL(ftruncate)(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
    FAIL_IF(fd_fault(fd));
    return REAL(ftruncate64)(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    FAIL_IF(fd_fault(fd));
    return REAL(fallocate)(fd, mode, off, len);
}

/* posix_fallocate reports its error as the return value, not in errno. */
int posix_fallocate(int fd, off_t off, off_t len)
{
    int e = fd_fault(fd);
    return e ? e : REAL(posix_fallocate)(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len)
{
    int e = fd_fault(fd);
    return e ? e : REAL(posix_fallocate64)(fd, off, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = REAL(mmap)(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) && fd_under(fd)) {
        maps_add(p, len);
    }
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    void *p = REAL(mmap64)(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED) && fd_under(fd)) {
        maps_add(p, len);
    }
    return p;
}

int munmap(void *addr, size_t len)
{
    maps_remove(addr);
    return REAL(munmap)(addr, len);
}

int msync(void *addr, size_t len, int flags)
{
    int e = io_fault();
    /* TH_FAULT_IO_MSYNC_MAXLEN: only msyncs this short fail (LMDB's meta page, not its data) */
    const char *max = getenv("TH_FAULT_IO_MSYNC_MAXLEN");
    if (max && len > strtoull(max, NULL, 10)) {
        e = 0;
    }
    FAIL_IF(e && mapped_under(addr) ? e : 0);
    return REAL(msync)(addr, len, flags);
}
