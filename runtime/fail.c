/*
 * fail.c — failing futures from outside their worker: breaking the pool, and
 * failing one slot (broken pool, dead worker, killed task).
 *
 * Any process may call these (the manager mostly; a client waiter when the
 * manager is gone). A slot is failed in three steps so that its outcome
 * fields have exactly one writer:
 *   1. CAS from an accepted state (QUEUED, RUNNING(w), KILLING(w)) to an
 *      intermediate RUNNING(PPI_SWEEPER): a live worker's publish CAS, which
 *      expects RUNNING(itself), now fails;
 *   2. write err/code/pid/message;
 *   3. CAS to FAILED (or RECLAIM for an orphan) with release, wake waiters,
 *      and push the completion entry if callbacks asked for one.
 */
#include <stdio.h>
#include <string.h>

#include "ppool.h"
#include "process.h"

bool ppi_pool_break(ppi_seg *seg, int code, pid_t pid, const char *msg)
{
    ppi_hdr *h = seg->hdr;
    int32_t zero = 0;
    /* acq_rel: the first breaker (CAS winner on broken_pid) alone writes the
     * cause fields. */
    if (!atomic_compare_exchange_strong_explicit(&h->broken_pid, &zero, pid > 0 ? pid : -1,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    /* relaxed: published by the release store of pool_state below. */
    atomic_store_explicit(&h->broken_code, code, memory_order_relaxed);
    snprintf(h->broken_msg, sizeof h->broken_msg, "%s", msg);
    /* release: the cause fields are visible to whoever acquires BROKEN. */
    atomic_store_explicit(&h->pool_state, PPI_POOL_BROKEN, memory_order_release);
    /* Wake every class of sleeper: workers, the client's pump and waiters in
     * pp_wait (slot waiters are woken by the sweeps that follow). */
    atomic_fetch_add_explicit(&h->work_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->work_ec.seq, INT_MAX, true);
    atomic_fetch_add_explicit(&h->done_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->done_ec.seq, INT_MAX, true);
    ppi_futex_wake(&h->ready, INT_MAX, true);
    return true;
}

bool ppi_slot_fail(ppi_seg *seg, uint32_t idx, unsigned accept, int worker, int err, int code,
                   pid_t pid, const char *msg)
{
    ppi_slot *sl = ppi_slot_at(seg, idx);
    /* acquire: see the last owner's writes before we overwrite the outcome. */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    for (;;) {
        uint32_t st = ppi_st_state(w);
        if (!(accept & (1u << st)))
            return false;
        if (worker >= 0 && st != PPI_S_QUEUED && ppi_st_worker(w) != (uint32_t)worker)
            return false;
        uint64_t claim = ppi_st_make(ppi_st_gen(w), PPI_S_RUNNING, ppi_st_flags(w), PPI_SWEEPER);
        /* acquire: as above; the claim makes a racing worker's publish fail. */
        if (atomic_compare_exchange_weak_explicit(&sl->state, &w, claim, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    sl->err = err;
    sl->code = code;
    sl->pid = pid;
    int n = snprintf(ppi_slot_res_inline(seg, sl), seg->inline_size, "%s", msg);
    sl->msg_len = n < 0 ? 0 : (uint32_t)n;
    if (sl->msg_len >= seg->inline_size)
        sl->msg_len = seg->inline_size - 1;
    sl->res_size = 0;
    /* relaxed: the CAS below validates (flags may change under us). */
    uint64_t w2 = atomic_load_explicit(&sl->state, memory_order_relaxed);
    if (ppi_st_flags(w2) & PPI_F_ORPHAN) {
        /* Nobody reads an orphan's outcome: free its blocks (a dead worker's
         * result block too) while we own the slot, rather than let them hold
         * arena room until the client's next reclaim scan. ORPHAN is never
         * cleared, so the CAS below does go to RECLAIM. */
        ppi_arena_free_rec(seg, &sl->res_off);
        ppi_arena_free_rec(seg, &sl->arg_off);
    }
    uint64_t nw;
    do {
        uint32_t fl = ppi_st_flags(w2);
        nw = (fl & PPI_F_ORPHAN) ? ppi_st_make(ppi_st_gen(w2), PPI_S_RECLAIM, 0, PPI_NO_WORKER)
                                 : ppi_st_make(ppi_st_gen(w2), PPI_S_FAILED, 0, PPI_NO_WORKER);
        /* release: publishes the outcome; pairs with the waiter's acquire. */
    } while (!atomic_compare_exchange_weak_explicit(&sl->state, &w2, nw, memory_order_release,
                                                    memory_order_relaxed));
    ppi_slot_finished(seg, idx, w2, nw);
    return true;
}

bool ppi_slot_fail_broken(ppi_seg *seg, uint32_t idx, bool running)
{
    ppi_hdr *h = seg->hdr;
    unsigned accept = 1u << PPI_S_QUEUED;
    if (running)
        accept |= (1u << PPI_S_RUNNING) | (1u << PPI_S_KILLING);
    /* relaxed: published by pool_state's release, which the caller acquired. */
    return ppi_slot_fail(seg, idx, accept, -1, PP_EBROKEN,
                         atomic_load_explicit(&h->broken_code, memory_order_relaxed),
                         atomic_load_explicit(&h->broken_pid, memory_order_relaxed),
                         h->broken_msg);
}
