/*
 * The file_storage extension, internal: the instance, the config table and its checks.
 */
#ifndef TH_STORE_FILE_STORAGE_INTERNAL_H
#define TH_STORE_FILE_STORAGE_INTERNAL_H

#include "th/file_storage.h"

struct th_file_storage {
    struct th_component base;
    const struct th_file_storage_cfg *cfg;
    bool ready; /* started: the directory exists and is writable */
};

/** The config table of the extension. */
extern const struct th_cfg_field th__fs_config[];

/** config_check: the rules across keys (the directory itself is checked at start). */
int th__fs_config_check(const void *cfg, const char **err);

/**
 * Parse an octal permission string ("0750", "700").
 * @return 0, or TH_EINVAL when it is empty, too long or not octal.
 */
int th__fs_parse_mode(const char *s, unsigned *mode);

#endif
