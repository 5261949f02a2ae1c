/*
 * slab.h — fixed-size objects carved from 2 MiB chunks of private memory
 * that the kernel may back with one transparent huge page each.
 *
 * Used for pp_future (future.c): a million outstanding futures are 240 MB,
 * and where every fresh 4 KiB page costs a fault of 1-12 µs (the last under
 * a hypervisor that shadows page tables) malloc's heap made the submit loop
 * pay ~2.6 µs per future on its first run. A chunk advised MADV_HUGEPAGE
 * faults once per 2 MiB where /sys/kernel/mm/transparent_hugepage/enabled is
 * `madvise` or `always`; elsewhere it costs what malloc's pages cost.
 *
 * Thread safety: every function may be called from any thread; one mutex
 * per slab (the critical sections are a few loads and stores; mmap and
 * munmap of a chunk run under it too, once per 2 MiB).
 * fork(): a pthread_atfork handler holds every slab's lock across fork(), so
 * the child's copy is consistent and unlocked (single-threaded child: its
 * copies of the parent's objects stay valid and may be freed there).
 * Memory: an object's first word is overwritten while it is free; the
 * contents of a fresh object are undefined (not zeroed on reuse).
 * Chunks that become empty are unmapped, except PPI_SLAB_SPARE_CHUNKS per
 * slab kept for the next burst (tunables.h). Under AddressSanitizer free
 * objects are poisoned, so a use after free is still reported.
 */
#ifndef PPOOL_RUNTIME_SLAB_H
#define PPOOL_RUNTIME_SLAB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PPI_SLAB_CHUNK ((size_t)2 << 20) /* bytes, and the chunks' alignment */

typedef struct ppi_slab_chunk ppi_slab_chunk;

typedef struct ppi_slab {
    pthread_mutex_t lock;     /* guards every field below and the chunks' headers */
    size_t obj_size;          /* bytes per object, a multiple of 16 (PPI_SLAB_INIT) */
    ppi_slab_chunk *partial;  /* chunks with a free object and a live one */
    ppi_slab_chunk *spare;    /* empty chunks kept mapped (singly linked) */
    unsigned nspare;
    size_t chunks;            /* chunks mapped now (partial, full, spare) */
    size_t live;              /* objects handed out and not freed */
    bool registered;          /* on the fork handler's list */
    struct ppi_slab *next_registered;
} ppi_slab;

/* A slab of objects of @size bytes (16 <= size, rounded up to 16; at most
 * about a tenth of a chunk is sensible). Static storage duration. */
#define PPI_SLAB_INIT(size)                                                                   \
    {                                                                                         \
        .lock = PTHREAD_MUTEX_INITIALIZER, .obj_size = ((size_t)(size) + 15) & ~(size_t)15,    \
    }

/*
 * ppi_slab_alloc - one object of @s->obj_size bytes, 16-byte aligned, or
 * NULL when no chunk can be mapped (ENOMEM). Takes @s->lock.
 */
void *ppi_slab_alloc(ppi_slab *s);

/*
 * ppi_slab_free - give back @p (from ppi_slab_alloc(@s); NULL is ignored).
 * Takes @s->lock. The last free of a chunk unmaps it or keeps it as a spare.
 */
void ppi_slab_free(ppi_slab *s, void *p);

/* Counters for tests and statistics, read under @s->lock. */
typedef struct ppi_slab_stats {
    size_t chunks, spare, live, per_chunk;
} ppi_slab_stats;
void ppi_slab_get_stats(ppi_slab *s, ppi_slab_stats *out);

/* The slab pp_future comes from (future.c). */
extern ppi_slab ppi_future_slab;

#endif
