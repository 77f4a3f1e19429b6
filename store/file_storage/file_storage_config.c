/*
 * Config of the file_storage extension: the Collector's keys and defaults, and the checks
 * across them (the directory's existence is checked at start, where it can be created).
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store/file_storage/file_storage.h"

#define FS_OFF(f) offsetof(struct th_file_storage_cfg, f)

const struct th_cfg_field th__fs_config[] = {
    {.name = "directory",
     .type = TH_CFG_STRING,
     .def = TH_FILE_STORAGE_DEFAULT_DIR,
     .offset = FS_OFF(directory),
     .desc = "where components keep their files (the persistent queues); must exist unless "
             "create_directory is set"},
    {.name = "timeout",
     .type = TH_CFG_DURATION,
     .def = "1s",
     .offset = FS_OFF(timeout),
     .min = 0,
     .max = INFINITY,
     .desc = "how long to wait for a file another process holds open"},
    {.name = "create_directory",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = FS_OFF(create_directory),
     .desc = "create the directory (and its parents) at start when it is missing"},
    {.name = "directory_permissions",
     .type = TH_CFG_STRING,
     .def = "0750",
     .offset = FS_OFF(directory_permissions),
     .desc = "octal permissions of directories made by create_directory"},
    {.name = "fsync",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = FS_OFF(fsync),
     .desc = "sync every commit to disk: survives power loss, not only a crash of the process"},
    {.name = "compaction",
     .type = TH_CFG_NODE,
     .offset = FS_OFF(compaction),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: LMDB reuses freed pages, so files do not need "
             "compacting"},
    {.name = "recreate",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = FS_OFF(recreate),
     .flags = TH_CFG_F_NOOP,
     .desc = "accepted for compatibility: files are never renamed and recreated"},
    {.name = NULL},
};

int th__fs_parse_mode(const char *s, unsigned *mode)
{
    if (!s || !*s || strlen(s) > 4) {
        return TH_EINVAL;
    }
    unsigned m = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '7') {
            return TH_EINVAL;
        }
        m = m * 8 + (unsigned)(*p - '0');
    }
    *mode = m;
    return 0;
}

int th__fs_config_check(const void *cfg, const char **err)
{
    const struct th_file_storage_cfg *c = cfg;
    unsigned mode;
    if (!c->directory || !*c->directory) {
        *err = "directory: must not be empty";
        return TH_ECONFIG;
    }
    if (c->timeout < 0) {
        *err = "timeout: must not be negative";
        return TH_ECONFIG;
    }
    /* the Collector parses the permissions only when it will create the directory */
    if (c->create_directory && th__fs_parse_mode(c->directory_permissions, &mode) != 0) {
        *err = "directory_permissions: must be an octal mode such as 0750";
        return TH_ECONFIG;
    }
    return 0;
}
