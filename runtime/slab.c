/*
 * slab.c — fixed-size objects from 2 MiB huge-page chunks (slab.h).
 *
 * A chunk is PPI_SLAB_CHUNK bytes at a PPI_SLAB_CHUNK-aligned address, so
 * the chunk of an object is its address rounded down. Its first
 * CHUNK_HEADER bytes are the header; objects follow, per_chunk of them.
 * Objects are carved from the never-used tail in order (so a chunk touches
 * its pages only as far as it was used, where huge pages are refused) and
 * recycled through the chunk's free list.
 *
 * Where a chunk is (all under the slab's lock):
 *
 * | state   | used                | on list      | leaves by                        |
 * |---------|---------------------|--------------|----------------------------------|
 * | partial | 0 < used < per_chunk| s->partial   | alloc (full), free (empty)       |
 * | full    | used == per_chunk   | none         | free (partial)                   |
 * | spare   | 0                   | s->spare     | alloc (partial), never unmapped  |
 * |         |                     |              | while listed                     |
 * | gone    | —                   | —            | (munmap'd: more than             |
 * |         |                     |              | PPI_SLAB_SPARE_CHUNKS empty)     |
 *
 * A new chunk enters as partial with its first object handed out. Allocation
 * takes from the head of s->partial: the chunk most recently given room.
 *
 * Synchronisation
 *
 * | field                         | written by                      | read by              |
 * |-------------------------------|---------------------------------|----------------------|
 * | s->partial, spare, counters,  | alloc / free under s->lock      | same, under s->lock  |
 * | chunk headers                 |                                 |                      |
 * | a free object's first word    | free under s->lock              | alloc under s->lock  |
 * | a live object                 | its owner (the caller)          | its owner            |
 * | s->registered                 | register_slab (release, under   | alloc (acquire: skip |
 * |                               | registry_lock)                  | the registry lock)   |
 *
 * The mutex orders an object's last use by the thread that frees it before
 * its first use by the thread that gets it next (unlock → lock).
 *
 * fork(): before_fork takes registry_lock, then every registered slab's
 * lock (in list order; nothing takes two slab locks, and alloc registers
 * before it takes its slab's lock, so the order cannot invert); both sides
 * of the fork unlock them after. Chunks are private mappings, copied on
 * write: the child owns consistent copies.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "slab.h"
#include "tunables.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_HEADER 64

struct ppi_slab_chunk {
    ppi_slab_chunk *prev, *next; /* in s->partial; next also links s->spare */
    void *free;                  /* freed objects, linked through their first word */
    uint32_t carved;             /* objects taken from the never-used tail */
    uint32_t used;               /* objects handed out and not freed */
    bool in_partial;
};
_Static_assert(sizeof(ppi_slab_chunk) <= CHUNK_HEADER, "chunk header");

static uint32_t per_chunk(const ppi_slab *s)
{
    return (uint32_t)((PPI_SLAB_CHUNK - CHUNK_HEADER) / s->obj_size);
}

static char *object_at(ppi_slab_chunk *c, const ppi_slab *s, uint32_t i)
{
    return (char *)c + CHUNK_HEADER + (size_t)i * s->obj_size;
}

static ppi_slab_chunk *chunk_of(void *p)
{
    return (ppi_slab_chunk *)((uintptr_t)p & ~(uintptr_t)(PPI_SLAB_CHUNK - 1));
}

/* ---- the fork handler's list of slabs ------------------------------------ */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ppi_slab *registry; /* under registry_lock */
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    for (ppi_slab *s = registry; s; s = s->next_registered)
        pthread_mutex_lock(&s->lock);
}

/* Both sides: the forking thread holds every lock (the child's copies are
 * held by its only thread, the same one). */
static void after_fork(void)
{
    for (ppi_slab *s = registry; s; s = s->next_registered)
        pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&registry_lock);
}

static void registry_setup(void)
{
    (void)pthread_atfork(before_fork, after_fork, after_fork);
}

/* Put @s on the fork handler's list, once. Called without @s->lock. */
static void register_slab(ppi_slab *s)
{
    pthread_once(&registry_once, registry_setup);
    pthread_mutex_lock(&registry_lock);
    /* relaxed: registry_lock orders the check against other registrations. */
    if (!atomic_load_explicit((_Atomic bool *)&s->registered, memory_order_relaxed)) {
        s->next_registered = registry;
        registry = s;
        /* release: a thread that sees it set skips the lock; the list write
         * above is read only under registry_lock anyway. */
        atomic_store_explicit((_Atomic bool *)&s->registered, true, memory_order_release);
    }
    pthread_mutex_unlock(&registry_lock);
}

/* ---- chunks -------------------------------------------------------------- */

static void partial_insert(ppi_slab *s, ppi_slab_chunk *c)
{
    c->prev = NULL;
    c->next = s->partial;
    if (s->partial)
        s->partial->prev = c;
    s->partial = c;
    c->in_partial = true;
}

static void partial_remove(ppi_slab *s, ppi_slab_chunk *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->partial = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->in_partial = false;
}

/* A fresh chunk, aligned to its size, advised to be one huge page; NULL
 * when the address space or memory is exhausted. */
static ppi_slab_chunk *map_chunk(void)
{
    size_t span = 2 * PPI_SLAB_CHUNK;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *base = (char *)(((uintptr_t)raw + PPI_SLAB_CHUNK - 1) & ~(uintptr_t)(PPI_SLAB_CHUNK - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    char *end = base + PPI_SLAB_CHUNK;
    if (end < raw + span)
        munmap(end, (size_t)(raw + span - end));
    /* Refused where THP is off or not built: then 4 KiB pages, as malloc. */
    (void)madvise(base, PPI_SLAB_CHUNK, MADV_HUGEPAGE);
    ppi_slab_chunk *c = (ppi_slab_chunk *)base; /* fresh pages: all zero */
    POISON(base + CHUNK_HEADER, PPI_SLAB_CHUNK - CHUNK_HEADER);
    return c;
}

static void unmap_chunk(ppi_slab_chunk *c)
{
    /* The shadow of this range must be clean for whoever maps it next. */
    UNPOISON(c, PPI_SLAB_CHUNK);
    munmap(c, PPI_SLAB_CHUNK);
}

/* A chunk to carve from when no partial one has room: a spare, else a new
 * mapping. Under s->lock. */
static ppi_slab_chunk *take_chunk(ppi_slab *s)
{
    ppi_slab_chunk *c = s->spare;
    if (c) {
        s->spare = c->next;
        s->nspare--;
        c->next = NULL;
        return c;
    }
    c = map_chunk();
    if (c)
        s->chunks++;
    return c;
}

/* @c has no live object left. Under s->lock. */
static void retire_chunk(ppi_slab *s, ppi_slab_chunk *c)
{
    if (c->in_partial)
        partial_remove(s, c);
    if (s->nspare < PPI_SLAB_SPARE_CHUNKS) {
        /* Its objects are all free (and poisoned): carve from the start
         * again, where the pages are already touched. */
        c->free = NULL;
        c->carved = 0;
        c->next = s->spare;
        s->spare = c;
        s->nspare++;
        return;
    }
    s->chunks--;
    unmap_chunk(c);
}

/* ---- objects ------------------------------------------------------------- */

void *ppi_slab_alloc(ppi_slab *s)
{
    /* acquire: pairs with register_slab's release. */
    if (!atomic_load_explicit((_Atomic bool *)&s->registered, memory_order_acquire))
        register_slab(s);
    pthread_mutex_lock(&s->lock);
    ppi_slab_chunk *c = s->partial;
    if (!c) {
        c = take_chunk(s);
        if (!c) {
            pthread_mutex_unlock(&s->lock);
            errno = ENOMEM;
            return NULL;
        }
        partial_insert(s, c);
    }
    char *p;
    if (c->free) {
        p = c->free;
        UNPOISON(p, s->obj_size);
        c->free = *(void **)p;
    } else {
        p = object_at(c, s, c->carved++);
        UNPOISON(p, s->obj_size);
    }
    if (++c->used == per_chunk(s))
        partial_remove(s, c);
    s->live++;
    pthread_mutex_unlock(&s->lock);
    return p;
}

void ppi_slab_free(ppi_slab *s, void *p)
{
    if (!p)
        return;
    ppi_slab_chunk *c = chunk_of(p);
    pthread_mutex_lock(&s->lock);
    *(void **)p = c->free;
    c->free = p;
    POISON(p, s->obj_size);
    bool was_full = c->used == per_chunk(s);
    c->used--;
    s->live--;
    if (c->used == 0)
        retire_chunk(s, c);
    else if (was_full)
        partial_insert(s, c);
    pthread_mutex_unlock(&s->lock);
}

void ppi_slab_get_stats(ppi_slab *s, ppi_slab_stats *out)
{
    pthread_mutex_lock(&s->lock);
    out->chunks = s->chunks;
    out->spare = s->nspare;
    out->live = s->live;
    out->per_chunk = per_chunk(s);
    pthread_mutex_unlock(&s->lock);
}
