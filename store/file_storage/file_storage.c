/*
 * The file_storage extension: checks (or creates) its directory at start and names the files
 * components keep there (th_file_storage_client). It opens no file itself: each component
 * owns its file, so a client's LMDB environment lives and dies with that component.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/file_storage/file_storage.h"
#include "th/log.h"

static int fs_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    (void)next;
    struct th_file_storage *fs = (struct th_file_storage *)c;
    fs->cfg = cfg;
    return 0;
}

/* mkdir -p with @p mode for every directory made. */
static int make_dirs(const char *dir, unsigned mode)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n >= sizeof(p)) {
        return ENAMETOOLONG;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            return errno;
        }
        p[i] = saved;
    }
    return 0;
}

static int fs_start(struct th_component *c, struct th_host *host)
{
    (void)host;
    struct th_file_storage *fs = (struct th_file_storage *)c;
    const char *dir = fs->cfg->directory;
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        if (e != ENOENT || !fs->cfg->create_directory) {
            th_log_error(c,
                         "directory must exist: stat %s: %s. You can enable the "
                         "create_directory option to automatically create it",
                         dir, strerror(e));
            return e == ENOENT ? TH_ENOENT : TH_EIO;
        }
        unsigned mode = 0750;
        th__fs_parse_mode(fs->cfg->directory_permissions, &mode); /* checked by config_check */
        e = make_dirs(dir, mode);
        if (e != 0) {
            th_log_error(c, "cannot create directory %s: %s", dir, strerror(e));
            return TH_EIO;
        }
        th_log_info(c, "created directory %s", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        th_log_error(c, "%s is not a directory", dir);
        return TH_EINVAL;
    }
    if (access(dir, R_OK | W_OK | X_OK) != 0) {
        th_log_error(c, "directory %s is not writable: %s", dir, strerror(errno));
        return TH_EIO;
    }
    fs->ready = true;
    return 0;
}

static int fs_shutdown(struct th_component *c)
{
    struct th_file_storage *fs = (struct th_file_storage *)c;
    fs->ready = false;
    return 0;
}

/* Append @p s to @p out at *n: bytes outside [A-Za-z0-9._-] become ~XXXX (the Collector's
 * sanitising of client names), and when @p slash is set the first '/' becomes '_'. */
static bool put_sanitised(char *out, size_t cap, size_t *n, const char *s, bool slash)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        const char *piece = tmp;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '_' || *p == '-') {
            tmp[0] = (char)*p;
            tmp[1] = '\0';
        } else if (*p == '/' && slash) {
            piece = "_";
            slash = false;
        } else {
            snprintf(tmp, sizeof(tmp), "~%04X", *p);
        }
        size_t len = strlen(piece);
        if (*n + len >= cap) {
            return false;
        }
        memcpy(out + *n, piece, len + 1);
        *n += len;
    }
    return true;
}

int th_file_storage_client(struct th_host *host, const char *storage_id, enum th_kind kind,
                           const char *component_id, const char *name,
                           struct th_file_storage_client *out)
{
    if (!host || !storage_id || !component_id || !out || !host->get_extension) {
        return TH_EINVAL;
    }
    struct th_component *c = host->get_extension(host, storage_id);
    if (!c || c->ops != &th_extension_file_storage_ops) {
        return TH_ENOENT;
    }
    struct th_file_storage *fs = (struct th_file_storage *)c;
    if (!fs->ready) {
        return TH_ENOENT;
    }
    size_t n = (size_t)snprintf(out->path, sizeof(out->path), "%s/%s_", fs->cfg->directory,
                                th_kind_name(kind));
    if (n >= sizeof(out->path) ||
        !put_sanitised(out->path, sizeof(out->path), &n, component_id, true)) {
        return TH_E2BIG;
    }
    if (name && *name) {
        if (n + 1 >= sizeof(out->path)) {
            return TH_E2BIG;
        }
        out->path[n++] = '_';
        out->path[n] = '\0';
        if (!put_sanitised(out->path, sizeof(out->path), &n, name, false)) {
            return TH_E2BIG;
        }
    }
    out->fsync = fs->cfg->fsync;
    out->timeout_ns = fs->cfg->timeout;
    return 0;
}

const struct th_component_ops th_extension_file_storage_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "file_storage",
    .stability = TH_STABILITY_BETA,
    .description = "A directory where components keep files (the persistent sending queue)",
    .config_size = sizeof(struct th_file_storage_cfg),
    .config = th__fs_config,
    .config_check = th__fs_config_check,
    .instance_size = sizeof(struct th_file_storage),
    .init = fs_init,
    .start = fs_start,
    .shutdown = fs_shutdown,
};
