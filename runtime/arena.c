/*
 * arena.c — the shared arena for payloads larger than a slot's inline area.
 *
 * A first-fit bitmap allocator over 4 KiB units, guarded by a robust
 * process-shared mutex. Allocations happen in the client (arguments) and in
 * workers (results); a block is freed by whoever owns it: the client, a worker
 * (its replaced result block, or an orphaned slot's blocks before RECLAIM), the
 * manager (an orphaned slot it fails after its worker died). This is the cold path
 * (each payload over the inline size costs one lock), so a lock is acceptable;
 * the hot path (inline payloads) never touches it.
 *
 * Crash safety: a worker that dies inside ppi_arena_alloc leaves the mutex
 * EOWNERDEAD. The next locker marks it consistent. The bitmap is updated
 * before the run length, and a block is only handed out after both, so the
 * worst case is a run of units marked used that nobody owns: a leak of at
 * most one block per crash, never a double allocation.
 *
 * Placement is the lowest-address first fit: a block goes to the lowest run
 * of free units that holds it, so freed pages are reused at once, already
 * faulted in by the client and the workers. (A next-fit that moved on after
 * every allocation walked the whole 1 GiB arena before reusing anything:
 * every argument or result over the inline size then landed on a fresh
 * page, a page fault in the client and one in the worker per task, about
 * 200 us per round trip under a hypervisor; bench_scaling, docs/scaling.md.)
 * `hint` is a lower bound below which every unit is in use, so the search
 * skips the busy prefix; it is lowered before units are freed and raised
 * after they are taken, so a process dying in between leaves it too low,
 * which costs only search time.
 *
 * Freed blocks of 256 KiB or more are punched out of the memfd so that their
 * memory goes back to the system at once, except task payloads (arguments,
 * results) lying wholly below PPI_ARENA_KEEP_BYTES: those keep their pages
 * for the next large payload, which first fit places there (tunables.h). The punch happens while the block
 * is still marked used (before the bitmap is cleared): punched after, it
 * could zero the data of a concurrent allocation that got the same units.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>

#include "segment.h"

#define PUNCH_MIN (256u * 1024u)

#include "tunables.h"

static void arena_lock(ppi_arena *a)
{
    int rc = pthread_mutex_lock(&a->lock);
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&a->lock); /* see "Crash safety" above */
}

static uint64_t *bitmap(ppi_seg *s) { return (uint64_t *)(s->base + s->hdr->arena.off_bitmap); }
static uint32_t *runlen(ppi_seg *s) { return (uint32_t *)(s->base + s->hdr->arena.off_runlen); }

static int bit_get(const uint64_t *bm, uint64_t i) { return (int)((bm[i >> 6] >> (i & 63)) & 1); }

static void bits_set(uint64_t *bm, uint64_t from, uint64_t n, int on)
{
    for (uint64_t i = from; i < from + n; i++) {
        if ((i & 63) == 0 && i + 64 <= from + n) {
            bm[i >> 6] = on ? ~(uint64_t)0 : 0;
            i += 63;
            continue;
        }
        if (on)
            bm[i >> 6] |= (uint64_t)1 << (i & 63);
        else
            bm[i >> 6] &= ~((uint64_t)1 << (i & 63));
    }
}

/* First run of @n free units in [from, to); returns its start or UINT64_MAX. */
static uint64_t find_run(const uint64_t *bm, uint64_t from, uint64_t to, uint64_t n)
{
    uint64_t i = from;
    while (i + n <= to) {
        if ((i & 63) == 0 && bm[i >> 6] == ~(uint64_t)0) {
            i += 64;
            continue;
        }
        if (bit_get(bm, i)) {
            i++;
            continue;
        }
        uint64_t j = i;
        while (j < i + n) {
            if ((j & 63) == 0 && j + 64 <= i + n && bm[j >> 6] == 0) {
                j += 64;
                continue;
            }
            if (bit_get(bm, j))
                break;
            j++;
        }
        if (j >= i + n)
            return i;
        i = j + 1;
    }
    return UINT64_MAX;
}

/*
 * ppi_arena_alloc - reserve @bytes (> 0) in the arena.
 * Returns the block's offset from the segment base (16-byte aligned, in fact
 * 4 KiB aligned) or 0 when there is no room. Takes the arena lock; may be
 * called by the client and by workers.
 */
uint64_t ppi_arena_alloc(ppi_seg *s, uint64_t bytes)
{
    return ppi_arena_alloc_rec(s, bytes, NULL);
}

/*
 * ppi_arena_alloc_rec - as ppi_arena_alloc, and store the block's offset in
 * *@rec (when not NULL) before the lock is released: a process that dies
 * right after leaves the block recorded there (a worker records its result
 * block in its slot, which the client frees when the slot fails).
 */
uint64_t ppi_arena_alloc_rec(ppi_seg *s, uint64_t bytes, uint64_t *rec)
{
    ppi_arena *a = &s->hdr->arena;
    /* Rounded up without overflow (bytes may be close to UINT64_MAX). */
    uint64_t n = bytes / PPI_ARENA_UNIT + (bytes % PPI_ARENA_UNIT != 0);
    if (n == 0 || n > a->units || n > UINT32_MAX)
        return 0;
    arena_lock(a);
    uint64_t *bm = bitmap(s);
    /* every unit below hint is in use: the lowest free run starts at or after it */
    uint64_t at = find_run(bm, a->hint < a->units ? a->hint : a->units, a->units, n);
    if (at != UINT64_MAX) {
        bits_set(bm, at, n, 1);
        runlen(s)[at] = (uint32_t)n;
        if (at == a->hint) /* the units below at + n are all in use now */
            a->hint = at + n;
        if (rec)
            *rec = a->off_data + at * PPI_ARENA_UNIT;
    }
    pthread_mutex_unlock(&a->lock);
    return at == UINT64_MAX ? 0 : a->off_data + at * PPI_ARENA_UNIT;
}

/*
 * ppi_arena_free - give back a block from ppi_arena_alloc (0 is ignored).
 * Called by the block's owner (the client; a worker for the result block it
 * took). Takes the arena lock.
 */
void ppi_arena_free(ppi_seg *s, uint64_t off)
{
    ppi_arena_free_rec(s, &off);
}

static void arena_free(ppi_seg *s, uint64_t *rec, bool keep_low);

void ppi_arena_free_punch(ppi_seg *s, uint64_t off)
{
    arena_free(s, &off, false);
}

/*
 * ppi_arena_free_rec - free the block recorded in *@rec (0: nothing) and
 * clear the record under the arena lock, so that a process dying at any
 * point leaves the block either recorded or free (never freed twice). Any
 * process that owns the block.
 */
void ppi_arena_free_rec(ppi_seg *s, uint64_t *rec)
{
    arena_free(s, rec, true);
}

/* The free; @keep_low: a large block wholly below PPI_ARENA_KEEP_BYTES keeps
 * its pages (a task payload; see the top of the file). */
static void arena_free(ppi_seg *s, uint64_t *rec, bool keep_low)
{
    uint64_t off = *rec;
    if (off == 0)
        return;
    ppi_arena *a = &s->hdr->arena;
    uint64_t at = (off - a->off_data) / PPI_ARENA_UNIT;
    /* The run length was written under the lock before the block was handed
     * out, and only the block's owner (us) clears it: readable unlocked. The
     * block is still ours while it is punched, so no other allocation can
     * have its data zeroed; only then do its units become free. */
    uint64_t n = runlen(s)[at];
    /* Through the mapping, not the memfd's descriptor: a worker's task may
     * have closed that number and opened another file there. */
    bool kept = keep_low && (at + n) * (uint64_t)PPI_ARENA_UNIT <= PPI_ARENA_KEEP_BYTES;
    if (n * PPI_ARENA_UNIT >= PUNCH_MIN && !kept)
        (void)madvise(s->base + off, (size_t)(n * PPI_ARENA_UNIT), MADV_REMOVE);
    arena_lock(a);
    if (at < a->hint) /* before the units are freed: see `hint` above */
        a->hint = at;
    *rec = 0;
    runlen(s)[at] = 0;
    bits_set(bitmap(s), at, n, 0);
    pthread_mutex_unlock(&a->lock);
}
