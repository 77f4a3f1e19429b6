/*
 * The command line and payload loading shared by the decode, batch/memory_limiter and
 * tail_sampling benchmarks.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_payload.h"

static int load(struct th_bench_payload *p)
{
    FILE *f = fopen(p->path, "rb");
    if (!f) {
        return -1;
    }
    int rc = -1;
    if (fseek(f, 0, SEEK_END) != 0) {
        goto out;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto out;
    }
    p->len = (size_t)n;
    p->buf = malloc(p->len ? p->len : 1);
    if (!p->buf || fread(p->buf, 1, p->len, f) != p->len) {
        goto out;
    }
    size_t l = strlen(p->path);
    p->json = l > 5 && strcmp(p->path + l - 5, ".json") == 0;
    rc = 0;
out:
    fclose(f);
    return rc;
}

int th_bench_payloads_load(int argc, char **argv, struct th_bench_args *a,
                           struct th_bench_payload *ps, size_t *n)
{
    size_t k = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            a->count = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "-t") == 0) {
            mallopt(M_TRIM_THRESHOLD, a->trim_threshold);
            mallopt(M_MMAP_THRESHOLD, a->mmap_threshold);
        } else if (k < TH_BENCH_MAX_PAYLOADS) {
            snprintf(ps[k++].path, sizeof(ps[0].path), "%s", argv[i]);
        }
    }
    if (k == 0) {
        for (int i = 1; i <= 10; i++) {
            snprintf(ps[k++].path, sizeof(ps[0].path),
                     "/work/shared/bench/payloads/otlp-100spans-%02d.pb", i);
            if (a->default_json_files) {
                snprintf(ps[k++].path, sizeof(ps[0].path),
                         "/work/shared/bench/payloads/otlp-100spans-%02d.json", i);
            }
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (load(&ps[i]) != 0) {
            fprintf(stderr, "cannot read %s\n", ps[i].path);
            return -1;
        }
    }
    *n = k;
    return 0;
}
