/*
 * The file exporter's cross-field config rules, the same as the Collector's Validate in
 * exporter/fileexporter/config.go, with its messages, so a config that the Collector
 * refuses is refused here for the same reason.
 */
#include <stdlib.h>
#include <string.h>

#include "exporters/file/file.h"

int th__file_parse_permissions(const char *s)
{
    if (!s || !*s) {
        return -1;
    }
    char *end = NULL;
    long v = strtol(s, &end, 8);
    if (*end != '\0' || v < 0 || v > 0777) {
        return -1;
    }
    return (int)v;
}

int th__file_config_check(const void *cfg, const char **err)
{
    const struct th_file_cfg *fc = cfg;
    const char *compression = fc->compression ? fc->compression : "";
    const char *format = fc->format && *fc->format ? fc->format : "json";
    if (!fc->path || !*fc->path) {
        *err = "path must be non-empty";
        return TH_ECONFIG;
    }
    if (fc->append && *compression) {
        *err = "append and compression enabled at the same time is not supported";
        return TH_ECONFIG;
    }
    if (fc->append && fc->rotation_enabled) {
        *err = "append and rotation enabled at the same time is not supported";
        return TH_ECONFIG;
    }
    if (strcmp(format, "json") != 0 && strcmp(format, "proto") != 0) {
        *err = "format type is not supported";
        return TH_ECONFIG;
    }
    if (*compression && strcmp(compression, "zstd") != 0) {
        *err = "compression is not supported";
        return TH_ECONFIG;
    }
    if (fc->flush_interval < 0) {
        *err = "flush_interval must be larger than zero";
        return TH_ECONFIG;
    }
    if (fc->rotation_enabled && (fc->rotation.max_megabytes < 0 || fc->rotation.max_days < 0 ||
                                 fc->rotation.max_backups < 0)) {
        *err = "rotation: max_megabytes, max_days and max_backups must not be negative";
        return TH_ECONFIG;
    }
    /* Writing one file per resource attribute value is not implemented; silently writing
     * everything to a path with a '*' in it would be worse than refusing. */
    if (fc->group_by.enabled) {
        *err = "group_by is not supported yet (the key is accepted only with enabled: false)";
        return TH_ECONFIG;
    }
    const char *perms = fc->directory_permissions ? fc->directory_permissions : "";
    if (fc->create_directory) {
        if (*perms && th__file_parse_permissions(perms) < 0) {
            bool octal = strspn(perms, "01234567") == strlen(perms);
            *err = octal ? "directory_permissions contain invalid bits for file access"
                         : "directory_permissions value must be a valid octal representation";
            return TH_ECONFIG;
        }
    } else if (*perms) {
        *err = "directory_permissions requires create_directory to be true";
        return TH_ECONFIG;
    }
    return 0;
}
