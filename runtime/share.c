/*
 * share.c — named shared blocks (pp_shm_share / pp_shm_unshare /
 * pp_task_shared): a table of PP_SHARE_MAX entries in the segment header
 * mapping a handle to an arena block that tasks read in place.
 *
 * A handle is (seq << 8) | (index + 1): its low byte names the entry, seq
 * (share_seq, never reused) tells one registration of that entry from the
 * next. docs/design.md ("Shared blocks") has the protocol:
 *
 *   register: CAS handle 0 -> BUSY (exclusive), release fence, store off and
 *             size (relaxed), store handle (release)
 *   withdraw: CAS handle h -> 0
 *   lookup:   load handle (acquire) == h, load off and size (relaxed),
 *             acquire fence, load handle again == h
 *
 * The lookup is a seqlock read: if it read an off/size written by a later
 * registration of the same entry, the fences make its second load see BUSY
 * or that registration's (different) handle, so it returns nothing rather
 * than another block. Registrars are client threads (or a serving MPI
 * rank's loop); lookups run in any process that maps the segment.
 */
#include <errno.h>

#include "client.h"
#include "ext_worker.h"
#include "segment.h"

static ppi_share *share_entry(const ppi_seg *s, uint64_t handle)
{
    uint64_t idx = handle & 0xff;
    if (handle == 0 || handle == PPI_SHARE_BUSY || (handle >> 8) == 0 || idx == 0 ||
        idx > PP_SHARE_MAX)
        return NULL;
    return &s->hdr->shares[idx - 1];
}

/* Fill a won (BUSY) entry and publish it under @handle. */
static void share_publish(ppi_share *e, uint64_t handle, uint64_t off, uint64_t size)
{
    /* release fence: orders our BUSY (the CAS before) before the off/size
     * stores, for a racing lookup of the entry's previous handle (see the
     * file comment). */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->off, off, memory_order_relaxed);   /* relaxed: ordered by the fence above and the release below */
    atomic_store_explicit(&e->size, size, memory_order_relaxed); /* relaxed: as above */
    /* release: publishes off, size and the block's bytes (written by the
     * caller before the call) to a lookup's acquire load of the handle. */
    atomic_store_explicit(&e->handle, handle, memory_order_release);
}

int ppi_share_register(ppi_seg *s, uint64_t want, uint64_t off, uint64_t size, uint64_t *handle)
{
    if (want) {
        ppi_share *e = share_entry(s, want);
        if (!e)
            return -EINVAL;
        uint64_t free_ = 0;
        /* relaxed: the CAS only makes us the entry's one writer; what we
         * write is ordered by share_publish's fence and release. */
        if (!atomic_compare_exchange_strong_explicit(&e->handle, &free_, PPI_SHARE_BUSY,
                                                     memory_order_relaxed, memory_order_relaxed))
            return -EEXIST;
        share_publish(e, want, off, size);
        *handle = want;
        return 0;
    }
    /* relaxed: a unique number is all we need (the handle's own store
     * orders the entry). */
    uint64_t seq = atomic_fetch_add_explicit(&s->hdr->share_seq, 1, memory_order_relaxed) + 1;
    for (unsigned i = 0; i < PP_SHARE_MAX; i++) {
        ppi_share *e = &s->hdr->shares[i];
        uint64_t free_ = 0;
        /* relaxed: as above. */
        if (atomic_compare_exchange_strong_explicit(&e->handle, &free_, PPI_SHARE_BUSY,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            uint64_t h = (seq << 8) | (i + 1);
            share_publish(e, h, off, size);
            *handle = h;
            return 0;
        }
    }
    return -ENOSPC;
}

int ppi_share_withdraw(ppi_seg *s, uint64_t handle, uint64_t *off, uint64_t *size)
{
    ppi_share *e = share_entry(s, handle);
    if (!e)
        return -ENOENT;
    /* acquire: pairs with share_publish's release (off/size of this handle). */
    uint64_t h = atomic_load_explicit(&e->handle, memory_order_acquire);
    if (h != handle)
        return -ENOENT;
    uint64_t o = atomic_load_explicit(&e->off, memory_order_relaxed);   /* relaxed: after the acquire above */
    uint64_t n = atomic_load_explicit(&e->size, memory_order_relaxed);  /* relaxed: as above */
    /* relaxed: winning the CAS decides between two withdrawers of the same
     * handle; the next registrar's BUSY CAS and fence order its writes. */
    if (!atomic_compare_exchange_strong_explicit(&e->handle, &h, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
        return -ENOENT;
    if (off)
        *off = o;
    if (size)
        *size = n;
    return 0;
}

uint64_t ppi_share_lookup(const ppi_seg *s, uint64_t handle, uint64_t *size)
{
    *size = 0;
    ppi_share *e = share_entry(s, handle);
    if (!e)
        return 0;
    /* acquire: pairs with share_publish's release (off, size, block bytes). */
    if (atomic_load_explicit(&e->handle, memory_order_acquire) != handle)
        return 0;
    uint64_t off = atomic_load_explicit(&e->off, memory_order_relaxed);  /* relaxed: seqlock read, checked below */
    uint64_t n = atomic_load_explicit(&e->size, memory_order_relaxed);   /* relaxed: as above */
    /* acquire fence: the loads above happen before the re-check, so a
     * re-registration's off/size read above implies its BUSY is seen. */
    atomic_thread_fence(memory_order_acquire);
    /* relaxed: ordered by the fence. */
    if (atomic_load_explicit(&e->handle, memory_order_relaxed) != handle)
        return 0;
    if (off < s->hdr->arena.off_data || off >= s->size || n > s->size - off)
        return 0; /* never registered so: a damaged table reads as nothing */
    *size = n;
    return off;
}

/* ---- client API ----------------------------------------------------- */

/* The arena offset of [block, block + size), or 0 if it is not inside. */
static uint64_t block_off(pp_executor *ex, const void *block, size_t size)
{
    uint64_t off = pp_shm_offset(ex, block);
    if (off == UINT64_MAX || size == 0 || size > ex->seg.size - off)
        return 0;
    return off;
}

int pp_shm_share(pp_executor *ex, const void *block, size_t size, uint64_t *handle)
{
    if (handle)
        *handle = 0;
    if (!ex || !block || !handle)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    uint64_t off = block_off(ex, block, size);
    if (!off)
        return -EINVAL;
    return ppi_share_register(&ex->seg, 0, off, size, handle);
}

int pp_shm_unshare(pp_executor *ex, uint64_t handle, void **block)
{
    if (block)
        *block = NULL;
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    uint64_t off = 0;
    int rc = ppi_share_withdraw(&ex->seg, handle, &off, NULL);
    if (!rc && block)
        *block = ex->seg.base + off;
    return rc;
}

int pp_ext_share_as(pp_executor *ex, uint64_t handle, void *block, size_t size)
{
    uint64_t off = block_off(ex, block, size), got = 0;
    if (!off || !handle)
        return -EINVAL;
    return ppi_share_register(&ex->seg, handle, off, size, &got);
}
