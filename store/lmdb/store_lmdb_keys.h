/*
 * Key layouts of the LMDB span store. Every integer in a key is big-endian so that LMDB's
 * byte order is numeric order; fixed-width fields come first so no two layouts of one
 * database can be ambiguous. README.md beside this file documents the same table.
 */
#ifndef TH_STORE_LMDB_KEYS_H
#define TH_STORE_LMDB_KEYS_H

#include <stdint.h>
#include <string.h>

/* ---- Big-endian helpers --------------------------------------------------------------- */

static inline void th__be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void th__be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void th__be64_put(uint8_t *p, uint64_t v)
{
    th__be32_put(p, (uint32_t)(v >> 32));
    th__be32_put(p + 4, (uint32_t)v);
}

static inline uint16_t th__be16_get(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t th__be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t th__be64_get(const uint8_t *p)
{
    return (uint64_t)th__be32_get(p) << 32 | th__be32_get(p + 4);
}

/* ---- blocks: block(8) | kind(1) | chunk(2) → a chunk of the block's meta or data ------- */

#define TH_KEY_BLOCK_LEN   11
#define TH_BLOCK_KIND_META 0 /* what retention needs to delete the block's index entries */
#define TH_BLOCK_KIND_DATA 1 /* the zstd-compressed msgpack payload */

static inline void th__key_block(uint8_t *k, uint64_t block, uint8_t kind, uint16_t chunk)
{
    th__be64_put(k, block);
    k[8] = kind;
    th__be16_put(k + 9, chunk);
}

/* ---- traces: trace(16) | block(8) | sub(2) → where the trace's spans sit in the block --- */

#define TH_KEY_TRACE_LEN 26

static inline void th__key_trace(uint8_t *k, const uint8_t trace[16], uint64_t block, uint16_t sub)
{
    memcpy(k, trace, 16);
    th__be64_put(k + 16, block);
    th__be16_put(k + 24, sub);
}

/* ---- blkidx: block(8) → the block's service, newest start, span stats ------------------ */

#define TH_KEY_BLKIDX_LEN 8

/* ---- svcsum: svc(4) | max_start(8) | summary(8) → a summary of 32 of the service's blocks  */

#define TH_KEY_SVCSUM_LEN 20

static inline void th__key_svcsum(uint8_t *k, uint32_t svc, uint64_t max_start, uint64_t sum)
{
    th__be32_put(k, svc);
    th__be64_put(k + 4, max_start);
    th__be64_put(k + 12, sum);
}

/* ---- pend: 'p' | svc(4) in meta → the service's newest blocks, not yet in a summary ----- */

#define TH_KEY_PEND_LEN 5

static inline void th__key_pend(uint8_t *k, uint32_t svc)
{
    k[0] = 'p';
    th__be32_put(k + 1, svc);
}

/* ---- tags: block(8) | part(1) → a part of the block's tag table; sumtags: the same for a
 * summary, keyed summary(8) | part(1) ------------------------------------------------------ */

#define TH_KEY_TAGS_LEN 9

static inline void th__key_tags(uint8_t *k, uint64_t block, uint8_t part)
{
    th__be64_put(k, block);
    k[8] = part;
}

/* ---- deps: level(1) | bucket(4) | parent svc(4) | child svc(4) → call count (u64) -------- */

#define TH_KEY_DEPS_LEN  13
#define TH_DEPS_MINUTE   0 /* bucket = minutes since the epoch of the child span's start */
#define TH_DEPS_HOUR     1 /* bucket = hours since the epoch: the same counts rolled up */
#define TH_NS_PER_MINUTE 60000000000ull

static inline void th__key_deps(uint8_t *k, uint8_t level, uint32_t bucket, uint32_t parent,
                                uint32_t child)
{
    k[0] = level;
    th__be32_put(k + 1, bucket);
    th__be32_put(k + 5, parent);
    th__be32_put(k + 9, child);
}

/* ---- svc: 'n' name → id(4) | last_seen(8);  'i' id(4) → name -------------------------- */

/* Names longer than this are cut and followed by an 8-byte hash of the whole name (LMDB keys
 * are at most 511 bytes); the full name is then kept in the value. */
#define TH_KEY_NAME_MAX 400
#define TH_KEY_SVC_MAX  (1 + TH_KEY_NAME_MAX + 8)

/* ---- ops: svc(4) | kind(1) | name → op id(4) | last_seen(8) [| full name] --------------- */

#define TH_KEY_OPS_MAX (5 + TH_KEY_NAME_MAX + 8)

#endif
