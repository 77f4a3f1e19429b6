/*
 * The process series of the internal metrics (otelcol_process_*), measured the way a C
 * program can: uptime from the monotonic clock, CPU from getrusage, RSS from
 * /proc/self/statm, and the heap from glibc's mallinfo2 (Go's runtime numbers have no exact
 * C counterpart; docs/metrics.md says which number stands for which).
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "th/telemetry.h"

void th_telemetry_process_init(struct th_telemetry_process *p, const th_strmap_t *resource)
{
    memset(p, 0, sizeof(*p));
    p->start_unix_ns = th_now_unix_ns();
    p->start_mono_ns = th_now_mono_ns();
    p->resource = resource;
    /* A version 4 UUID, as the Collector's service.instance.id. */
    uint8_t u[16];
    if (getrandom(u, sizeof(u), 0) != (ssize_t)sizeof(u)) {
        uint64_t x = p->start_mono_ns ^ ((uint64_t)getpid() << 32) ^ p->start_unix_ns;
        for (size_t i = 0; i < sizeof(u); i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            u[i] = (uint8_t)(x >> 56);
        }
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(p->instance_id, sizeof(p->instance_id),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

/* Resident pages from /proc/self/statm, in bytes; 0 when it cannot be read. */
static uint64_t rss_bytes(void)
{
    uint64_t bytes = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        unsigned long long size, resident;
        if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
            bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
        }
        fclose(f);
    }
    return bytes;
}

int th__telemetry_collect_process(const struct th_telemetry_process *p, th_scrape_t *s)
{
    int ret = 0;
    double uptime = (double)(th_now_mono_ns() - p->start_mono_ns) / 1e9;
    struct rusage ru;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    struct mallinfo2 mi = mallinfo2();
    ret = ret ? ret
              : th_scrape_add(s, "otelcol_process_uptime", TH_PROM_COUNTER,
                              "Uptime of the process [s]", NULL, 0, uptime);
    ret = ret ? ret
              : th_scrape_add(s, "otelcol_process_cpu_seconds", TH_PROM_COUNTER,
                              "Total CPU user and system time in seconds [s]", NULL, 0, cpu);
    ret = ret ? ret
              : th_scrape_add(s, "otelcol_process_memory_rss", TH_PROM_GAUGE,
                              "Total physical memory (resident set size) [By]", NULL, 0,
                              (double)rss_bytes());
    ret = ret ? ret
              : th_scrape_add(s, "otelcol_process_runtime_heap_alloc_bytes", TH_PROM_GAUGE,
                              "Bytes of allocated heap objects: malloc's bytes in use "
                              "(glibc mallinfo2 uordblks + hblkhd) [By]",
                              NULL, 0, (double)(mi.uordblks + mi.hblkhd));
    ret = ret ? ret
              : th_scrape_add(s, "otelcol_process_runtime_total_sys_memory_bytes", TH_PROM_GAUGE,
                              "Total bytes of memory obtained from the OS by malloc (glibc "
                              "mallinfo2 arena + hblkhd; the LMDB map is not included) [By]",
                              NULL, 0, (double)(mi.arena + mi.hblkhd));
    return ret;
}
