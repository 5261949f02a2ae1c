/* ring.c — the Vyukov bounded MPMC ring; see ring.h for the synchronisation table. */
#include <sched.h>

#include "ring.h"
#include "sync.h"

void ppi_ring_init(ppi_ring *r, uint64_t cap)
{
    ppi_ring_init_at(r, cap, 0);
}

void ppi_ring_init_at(ppi_ring *r, uint64_t cap, uint64_t base)
{
    r->mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++) {
        /* relaxed: initialisation happens before the ring is shared (fork or
         * thread creation orders it). Cell i first serves ticket base + i
         * (base is a multiple of cap, so that ticket maps to cell i). */
        atomic_store_explicit(&r->cells[i].seq, base + i, memory_order_relaxed);
        atomic_store_explicit(&r->cells[i].val, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&r->enq, base, memory_order_relaxed);
    atomic_store_explicit(&r->deq, base, memory_order_relaxed);
}

bool ppi_ring_push(ppi_ring *r, uint64_t v)
{
    /* relaxed: the ticket is validated against the cell's seq below. */
    uint64_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
    ppi_ring_cell *cell;
    for (;;) {
        cell = &r->cells[pos & r->mask];
        /* acquire: pairs with the consumer's release that freed this cell, so
         * our val store cannot overtake its val load. */
        uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            /* relaxed: the CAS only hands out the ticket; data is published
             * by the seq release below. */
            if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return false; /* full: the cell still holds a value a lap behind */
        } else {
            /* relaxed: another producer took pos; retry with a fresh ticket. */
            pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
        }
    }
    /* relaxed: published by the release store of seq. */
    atomic_store_explicit(&cell->val, v, memory_order_relaxed);
    /* release: makes val (and everything the caller wrote before, e.g. the
     * slot's payload and state) visible to the consumer that acquires seq. */
    atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
    return true;
}

bool ppi_ring_pop(ppi_ring *r, uint64_t *v)
{
    return ppi_ring_pop_rec(r, v, NULL, NULL);
}

bool ppi_ring_nonempty(ppi_ring *r)
{
    /* relaxed: a hint only; ppi_ring_pop re-validates. */
    uint64_t pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
    /* relaxed: a hint only. */
    uint64_t seq = atomic_load_explicit(&r->cells[pos & r->mask].seq, memory_order_relaxed);
    return seq == pos + 1;
}

uint64_t ppi_ring_depth(ppi_ring *r)
{
    /* relaxed: a hint. deq first: enq only grows and deq never passes it,
     * so an enq read after deq is at least that deq (no negative depth). */
    uint64_t deq = atomic_load_explicit(&r->deq, memory_order_relaxed);
    /* relaxed: a hint, as above. */
    uint64_t enq = atomic_load_explicit(&r->enq, memory_order_relaxed);
    return enq - deq;
}

bool ppi_ring_push_wait(ppi_ring *r, uint64_t v, uint64_t max_ns)
{
    uint64_t give_up = 0;
    for (unsigned i = 0;; i++) {
        if (ppi_ring_push(r, v))
            return true;
        if (i < 64) {
            ppi_cpu_relax();
            continue;
        }
        uint64_t now = ppi_now_ns();
        if (!give_up)
            give_up = now + max_ns;
        else if (now > give_up)
            return false;
        sched_yield(); /* let the preempted consumer finish its pop */
    }
}

#ifdef PPOOL_FAULT_INJECTION
void (*ppi_ring_test_hook)(void);
#endif

/* The dequeue, with the crash-recovery trail when @claim/@entry are given
 * (workers); plain pops pass NULL. */
bool ppi_ring_pop_rec(ppi_ring *r, uint64_t *v, _Atomic uint64_t *claim, _Atomic uint64_t *entry)
{
    /* relaxed: the ticket is validated against the cell's seq below. */
    uint64_t pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
    ppi_ring_cell *cell;
    for (;;) {
        cell = &r->cells[pos & r->mask];
        /* acquire: pairs with the producer's release of seq = pos+1. */
        uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            /* relaxed: ordered before the CAS by the CAS's release. */
            if (claim)
                atomic_store_explicit(claim, pos + 1, memory_order_relaxed);
            /* release: the claim record is written before we may own the
             * cell (read by the manager only after we died). */
            if (atomic_compare_exchange_weak_explicit(&r->deq, &pos, pos + 1,
                                                      memory_order_release,
                                                      memory_order_relaxed)) {
#ifdef PPOOL_FAULT_INJECTION
                if (claim && ppi_ring_test_hook) /* workers only */
                    ppi_ring_test_hook();
#endif
                break;
            }
        } else if (dif < 0) {
            /* relaxed: our own record; nobody reads it while we live. */
            if (claim)
                atomic_store_explicit(claim, 0, memory_order_relaxed);
            return false; /* empty */
        } else {
            pos = atomic_load_explicit(&r->deq, memory_order_relaxed);
        }
    }
    /* relaxed: ordered after the acquire of seq that matched pos+1. */
    *v = atomic_load_explicit(&cell->val, memory_order_relaxed);
    /* relaxed: read by the manager only after our death. */
    if (entry)
        atomic_store_explicit(entry, *v, memory_order_relaxed);
    /* release: our val load completes before a producer reuses the cell. */
    atomic_store_explicit(&cell->seq, pos + r->mask + 1, memory_order_release);
    /* relaxed: as above. */
    if (claim)
        atomic_store_explicit(claim, 0, memory_order_relaxed);
    return true;
}

bool ppi_ring_recover(ppi_ring *r, uint64_t claim, _Atomic uint64_t *const *others, int nothers,
                      uint64_t wait_ns, uint64_t *v)
{
    if (claim == 0)
        return false;
    uint64_t pos = claim - 1;
    ppi_ring_cell *cell = &r->cells[pos & r->mask];
    uint64_t until = ppi_now_ns() + wait_ns;
    for (;;) {
        /* acquire: pairs with the consumers' release of deq and seq. */
        uint64_t deq = atomic_load_explicit(&r->deq, memory_order_acquire);
        uint64_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        if (deq <= pos || seq != pos + 1)
            return false; /* not taken, or released: nothing held */
        bool contested = false;
        for (int i = 0; i < nothers; i++)
            /* acquire: a live consumer naming the same ticket may own it. */
            if (atomic_load_explicit(others[i], memory_order_acquire) == claim)
                contested = true;
        if (!contested)
            break; /* the dead consumer holds it */
        if (ppi_now_ns() > until)
            return false;
        sched_yield();
    }
    /* relaxed: ordered by the release store of seq below. */
    *v = atomic_load_explicit(&cell->val, memory_order_relaxed);
    /* release: frees the cell for producers, as the dead consumer would have. */
    atomic_store_explicit(&cell->seq, pos + r->mask + 1, memory_order_release);
    return true;
}
