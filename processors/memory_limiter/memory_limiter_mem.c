/*
 * Measuring memory for the memory_limiter: the process's anonymous resident memory from
 * /proc/self/statm, the memory the process may use (cgroup v2 or v1 limits, or MemTotal),
 * and handing free heap back to the kernel.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "processors/memory_limiter/memory_limiter.h"

int th__memory_limiter_read_statm(int fd, uint64_t *bytes)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) {
        return TH_EIO;
    }
    buf[n] = '\0';
    /* "size resident shared text lib data dt", in pages */
    unsigned long long size, resident, shared;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3 || shared > resident) {
        return TH_EIO;
    }
    long page = sysconf(_SC_PAGESIZE);
    *bytes = (uint64_t)(resident - shared) * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

int th__memory_limiter_read_self(struct th_memory_limiter *ml, uint64_t *bytes)
{
    return ml->statm_fd >= 0 ? th__memory_limiter_read_statm(ml->statm_fd, bytes) : TH_EIO;
}

void th__memory_limiter_trim(struct th_memory_limiter *ml)
{
    (void)ml;
    malloc_trim(0);
}

/* Read a small file under @p root into @p buf. @return 0 or TH_ENOENT. */
static int read_small(const char *root, const char *path, char *buf, size_t cap)
{
    char full[4096];
    if ((size_t)snprintf(full, sizeof(full), "%s%s", root, path) >= sizeof(full)) {
        return TH_ENOENT;
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return TH_ENOENT;
    }
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return 0;
}

/* A cgroup limit file: a number of bytes, or "max" (no limit). @return true for a number. */
static bool read_limit(const char *root, const char *path, uint64_t *out)
{
    char buf[64];
    if (read_small(root, path, buf, sizeof(buf)) != 0) {
        return false;
    }
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || (*end != '\n' && *end != '\0')) {
        return false; /* "max" or garbage */
    }
    *out = v;
    return true;
}

/* Every limit from @p dir (a cgroup path such as "/a/b") up to the hierarchy's root, each
 * file being <mount><dir>/<file>; the smallest lowers *limit. A limit on an ancestor bounds
 * its descendants, and inside a cgroup namespace the root of the mount is the container. */
static void walk_limits(const char *root, const char *mount, const char *dir, const char *file,
                        uint64_t *limit, bool *found)
{
    char cur[2048];
    snprintf(cur, sizeof(cur), "%s", dir);
    for (;;) {
        size_t len = strlen(cur);
        while (len > 1 && cur[len - 1] == '/') {
            cur[--len] = '\0';
        }
        char path[2300];
        snprintf(path, sizeof(path), "%s%s/%s", mount, strcmp(cur, "/") ? cur : "", file);
        uint64_t v;
        if (read_limit(root, path, &v)) {
            *found = true;
            if (v < *limit) {
                *limit = v;
            }
        }
        char *slash = strrchr(cur, '/');
        if (!slash || strcmp(cur, "/") == 0 || cur[0] != '/') {
            break;
        }
        if (slash == cur) {
            cur[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
}

/* Does a v1 controller list ("cpu,memory") name the memory controller? */
static bool has_memory(const char *list, size_t len)
{
    const char *p = list;
    const char *end = list + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (n == 6 && memcmp(p, "memory", 6) == 0) {
            return true;
        }
        p += n + 1;
    }
    return false;
}

int th__memory_limiter_total_memory_at(const char *root, uint64_t *bytes)
{
    uint64_t limit = UINT64_MAX;
    bool found = false;
    char buf[8192];
    if (read_small(root, "/proc/meminfo", buf, sizeof(buf)) == 0) {
        const char *m = strstr(buf, "MemTotal:");
        unsigned long long kib;
        if (m && sscanf(m + 9, "%llu", &kib) == 1 && kib > 0) {
            limit = (uint64_t)kib * 1024;
            found = true;
        }
    }
    bool v1_seen = false;
    bool v2_seen = false;
    if (read_small(root, "/proc/self/cgroup", buf, sizeof(buf)) == 0) {
        /* "hierarchy-id:controllers:path" per line; v2 is "0::path". */
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) {
                *nl = '\0';
            }
            char *c1 = strchr(line, ':');
            char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (c2) {
                const char *path = c2 + 1;
                if (strncmp(line, "0::", 3) == 0) {
                    walk_limits(root, "/sys/fs/cgroup", path, "memory.max", &limit, &found);
                    v2_seen = true;
                } else if (has_memory(c1 + 1, (size_t)(c2 - c1 - 1))) {
                    walk_limits(root, "/sys/fs/cgroup/memory", path, "memory.limit_in_bytes",
                                &limit, &found);
                    v1_seen = true;
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    /* No /proc/self/cgroup (or no line for a hierarchy): the mount roots still apply. */
    if (!v2_seen) {
        walk_limits(root, "/sys/fs/cgroup", "/", "memory.max", &limit, &found);
    }
    if (!v1_seen) {
        walk_limits(root, "/sys/fs/cgroup/memory", "/", "memory.limit_in_bytes", &limit, &found);
    }
    if (!found || limit == 0) {
        return TH_ENOENT;
    }
    *bytes = limit;
    return 0;
}

int th__memory_limiter_total_memory(uint64_t *bytes)
{
    return th__memory_limiter_total_memory_at("", bytes);
}
