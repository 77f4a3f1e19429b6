/*
 * The per-request arena: chunks that double in size, bump allocation aligned to 16, cleanups
 * run in reverse order, and an optional byte limit so a hostile request cannot make the
 * decoder hold more than its budget.
 */
#include <string.h>

#include "th/arena.h"

#define ALIGN          16u
#define MAX_CHUNK_SIZE (1u << 20)

struct chunk {
    struct chunk *prev;
    size_t size; /* usable bytes after the header */
    size_t used;
    /* data follows, aligned */
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *data);
    void *data;
};

struct th_arena {
    struct chunk *head;
    struct cleanup *cleanups;
    size_t next_size;
    size_t used;
    size_t reserved;
    size_t limit;
};

#define CHUNK_HDR ((sizeof(struct chunk) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

static inline uint8_t *chunk_data(struct chunk *c)
{
    return (uint8_t *)c + CHUNK_HDR;
}

th_arena_t *th_arena_create(size_t chunk_size, size_t limit)
{
    th_arena_t *a = th_calloc(1, sizeof(*a));
    if (!a) {
        return NULL;
    }
    a->next_size = chunk_size ? chunk_size : 16384;
    a->limit = limit;
    return a;
}

void th_arena_destroy(th_arena_t *a)
{
    if (!a) {
        return;
    }
    for (struct cleanup *c = a->cleanups; c; c = c->next) {
        c->fn(c->data);
    }
    struct chunk *c = a->head;
    while (c) {
        struct chunk *prev = c->prev;
        th_free(c);
        c = prev;
    }
    th_free(a);
}

/* Slow path: the current chunk is full; start a new one big enough for size. */
static void *alloc_new_chunk(th_arena_t *a, size_t size)
{
    size_t want = a->next_size;
    if (want < size) {
        want = size;
    }
    if (a->limit && a->reserved + want + CHUNK_HDR > a->limit) {
        /* A last, smaller chunk may still fit the request under the limit. */
        if (a->reserved + size + CHUNK_HDR > a->limit) {
            return NULL;
        }
        want = a->limit - a->reserved - CHUNK_HDR;
    }
    struct chunk *c = th_malloc(CHUNK_HDR + want);
    if (!c) {
        return NULL;
    }
    c->prev = a->head;
    c->size = want;
    c->used = size;
    a->head = c;
    a->reserved += CHUNK_HDR + want;
    a->used += size;
    if (a->next_size < MAX_CHUNK_SIZE) {
        a->next_size *= 2;
    }
    return chunk_data(c);
}

void *th_arena_alloc(th_arena_t *a, size_t size)
{
    if (size > SIZE_MAX - ALIGN) {
        return NULL;
    }
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct chunk *c = a->head;
    if (c && c->size - c->used >= size) {
        void *p = chunk_data(c) + c->used;
        c->used += size;
        a->used += size;
        return p;
    }
    return alloc_new_chunk(a, size);
}

void *th_arena_calloc(th_arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = th_arena_alloc(a, n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

char *th_arena_strndup(th_arena_t *a, const char *s, size_t len)
{
    char *d = th_arena_alloc(a, len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void *th_arena_memdup(th_arena_t *a, const void *p, size_t len)
{
    void *d = th_arena_alloc(a, len ? len : 1);
    if (d && len) {
        memcpy(d, p, len);
    }
    return d;
}

int th_arena_cleanup_add(th_arena_t *a, void (*fn)(void *data), void *data)
{
    struct cleanup *c = th_arena_alloc(a, sizeof(*c));
    if (!c) {
        return TH_ENOMEM;
    }
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

size_t th_arena_used(const th_arena_t *a)
{
    return a->used;
}

size_t th_arena_reserved(const th_arena_t *a)
{
    return a->reserved;
}

static void *pbc_alloc(void *data, size_t size)
{
    return th_arena_alloc(data, size);
}

static void pbc_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

void th_arena_pbc_allocator(th_arena_t *a, ProtobufCAllocator *out)
{
    out->alloc = pbc_alloc;
    out->free = pbc_free;
    out->allocator_data = a;
}
