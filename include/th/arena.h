/*
 * The arena: a bump allocator that owns everything one request decodes into. It is freed in
 * one call when the batch made from the request is exported or dropped, so the decoder never
 * mallocs per field and nothing leaks on an error path.
 */
#ifndef TH_ARENA_H
#define TH_ARENA_H

#include <protobuf-c/protobuf-c.h>

#include "th/common.h"

typedef struct th_arena th_arena_t;

/**
 * Create an arena.
 * @param[in] chunk_size size of the first chunk in bytes (later chunks double, up to 1 MiB);
 *            0 picks 16 KiB.
 * @param[in] limit the most bytes the arena may hold in all its chunks; 0 means no limit.
 *            Allocations past it fail, which is how a hostile request is kept from growing
 *            memory without bound.
 * @return the arena, or NULL when memory is short.
 * @note The caller owns the arena and frees it with th_arena_destroy().
 */
th_arena_t *th_arena_create(size_t chunk_size, size_t limit);

/**
 * Run the cleanups (newest first) and free every chunk.
 * @param[in] a the arena; NULL is allowed.
 */
void th_arena_destroy(th_arena_t *a);

/**
 * Allocate @p size bytes aligned to 16.
 * @return the memory (uninitialised), or NULL when memory is short or the limit is reached.
 * @note The memory lives until the arena is destroyed; it cannot be freed alone.
 */
void *th_arena_alloc(th_arena_t *a, size_t size);

/** As th_arena_alloc, zeroed. */
void *th_arena_calloc(th_arena_t *a, size_t n, size_t size);

/** @return a NUL-terminated copy of @p len bytes of @p s in the arena, or NULL. */
char *th_arena_strndup(th_arena_t *a, const char *s, size_t len);

/** @return a copy of @p len bytes in the arena, or NULL (also for len 0: check len). */
void *th_arena_memdup(th_arena_t *a, const void *p, size_t len);

/**
 * Register a function to run when the arena is destroyed (for resources that are not
 * memory: file handles, references on shared objects).
 * @return 0, or TH_ENOMEM (then @p fn is not registered and will not run).
 */
int th_arena_cleanup_add(th_arena_t *a, void (*fn)(void *data), void *data);

/** @return the bytes handed out so far (the sum of sizes asked for, with alignment). */
size_t th_arena_used(const th_arena_t *a);

/** @return the bytes held in chunks (what the arena costs the process). */
size_t th_arena_reserved(const th_arena_t *a);

/**
 * Fill a protobuf-c allocator that takes memory from @p a and ignores frees, for
 * protobuf_c_message_unpack(). Unpacked messages must then never be freed with
 * protobuf_c_message_free_unpacked().
 * @param[out] out the allocator to fill.
 */
void th_arena_pbc_allocator(th_arena_t *a, ProtobufCAllocator *out);

#endif
