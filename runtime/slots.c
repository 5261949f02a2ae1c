/*
 * slots.c — the client's slot bookkeeping: taking a FREE slot, binding a
 * call into it (the submission fast path), giving slots back, and freeing
 * slots that ended without their future (RECLAIM).
 *
 * Submission fast path (no lock, no system call unless a worker sleeps):
 *   pop a FREE slot index from the client's free ring -> copy the argument in
 *   -> store QUEUED (release) -> push (idx, gen) on the task ring (release)
 *   -> notify the workers' eventcount (one fence, one load).
 * The slot state machine and the task ring's synchronisation tables are in
 * docs/design.md ("Slots", "The task ring").
 *
 * Ownership: a slot index popped from ex->free_slots belongs to the calling
 * client thread until it is bound (then to the slot word's state machine)
 * or pushed back. slot_owner[i] and notify_owner[i] change only under the
 * slot lock (client.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "copy.h"
#include "process.h"
#include "tunables.h"

/* Take a FREE slot index from the client's free ring. Returns 0 with *idx
 * set, or -EAGAIN when every slot is in use. Any client thread; lock-free. */
int ppi_acquire_slot(pp_executor *ex, uint32_t *idx)
{
    uint64_t v;
    if (ppi_ring_pop(ex->free_slots, &v)) {
        *idx = (uint32_t)v;
        return 0;
    }
    ppi_reclaim_slots(ex);
    if (ppi_ring_pop(ex->free_slots, &v)) {
        *idx = (uint32_t)v;
        return 0;
    }
    return -EAGAIN;
}

/* Free the slots in RECLAIM (orphaned or cancelled uses) and their arena
 * blocks, returning them to the free ring. Client threads. */
void ppi_reclaim_slots(pp_executor *ex)
{
    ppi_seg *s = &ex->seg;
    /* acquire: pairs with the workers' release increments. */
    if (atomic_load_explicit(&s->hdr->reclaim, memory_order_acquire) == 0)
        return;
    for (uint32_t i = 0; i < s->nslots; i++) {
        ppi_slot *sl = ppi_slot_at(s, i);
        /* relaxed: the CAS below validates. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
        if (ppi_st_state(w) != PPI_S_RECLAIM)
            continue;
        uint64_t nw = ppi_st_make(ppi_st_gen(w), PPI_S_FREE, 0, PPI_NO_WORKER);
        /* acquire: the worker's writes (arena offsets) before we free them. */
        if (!atomic_compare_exchange_strong_explicit(&sl->state, &w, nw, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        /* relaxed: a counter; the CAS above owns the slot. */
        atomic_fetch_sub_explicit(&s->hdr->reclaim, 1, memory_order_relaxed);
        ppi_arena_free(s, sl->arg_off);
        ppi_arena_free(s, sl->res_off);
        sl->arg_off = sl->res_off = 0;
        ppi_free_ring_push(ex, i);
    }
}

/* Return a FREE slot index to the client's free ring. Its consumers are our
 * own threads, so waiting for a preempted one always ends. */
void ppi_free_ring_push(pp_executor *ex, uint32_t idx)
{
    while (!ppi_ring_push_wait(ex->free_slots, idx, PPI_FREE_RING_RETRY_NS))
        ;
}

/* True while the calling thread is inside ppi_backlog_help: the backlog's
 * reference it drops there may free another slot, which then goes to the
 * free ring rather than into a nested help (bounded stack). Thread-local:
 * written and read by its own thread only. */
static _Thread_local bool helping_backlog;

/*
 * ppi_release_slot - give back the FREE slot @idx we own. While a backlog
 * exists, the releasing thread binds the backlog's head into it at once
 * (ppi_backlog_help): the slot is warm in this thread's cache, the workers'
 * queue stays full (no worker falls asleep and needs a FUTEX_WAKE per bind),
 * and on a box with few CPUs the service thread no longer stands between a
 * freed slot and the next task. Otherwise, or when the backlog lock is busy,
 * the slot goes to the free ring, which the service thread polls on short
 * timed naps while a backlog exists (no wake-up needed). Any client thread,
 * holding no slot lock; it may hold ex->lock (then help's trylock fails).
 */
static bool release_slot(pp_executor *ex, uint32_t idx, bool notify)
{
    /* relaxed: a hint; ppi_backlog_help re-checks under ex->lock. */
    if (!helping_backlog && atomic_load_explicit(&ex->bl_count, memory_order_relaxed) != 0) {
        helping_backlog = true;
        bool bound = ppi_backlog_help(ex, idx, notify);
        helping_backlog = false;
        if (bound)
            return true;
    }
    ppi_free_ring_push(ex, idx);
    return false;
}

void ppi_release_slot(pp_executor *ex, uint32_t idx)
{
    release_slot(ex, idx, true);
}

/* ppi_release_slot for a caller that frees many slots in a row (the service
 * thread's harvest): a task bound into @idx is queued without notifying the
 * workers; returns true then, and the caller owes one ppi_ec_notify of
 * work_ec before it sleeps or returns. A wake per bind costs a FUTEX_WAKE
 * system call each while woken workers wait for a CPU. */
bool ppi_release_slot_quiet(pp_executor *ex, uint32_t idx)
{
    return release_slot(ex, idx, false);
}

/*
 * ppi_bind - put fn(arg) into the FREE slot @idx we own and queue it.
 * Returns 0, or -EAGAIN when a large argument finds no arena room (the slot
 * goes back to the free ring; the caller keeps the call in the backlog).
 */
_Thread_local uint64_t ppi_adopt_off;

int ppi_bind(pp_executor *ex, pp_future *f, uint32_t idx, const void *arg, size_t arg_size)
{
    return ppi_bind_ex(ex, f, idx, arg, arg_size, true);
}

/* ppi_bind, but with @notify false the workers' eventcount is not notified:
 * the caller binds several and calls ppi_ec_notify(&hdr->work_ec, ...) once
 * after the last (before it sleeps or returns), which keeps the Dekker pair
 * (every push is followed by a fence and a load of the waiters). */
int ppi_bind_ex(pp_executor *ex, pp_future *f, uint32_t idx, const void *arg, size_t arg_size,
                bool notify)
{
    ppi_seg *s = &ex->seg;
    ppi_slot *sl = ppi_slot_at(s, idx);
    uint64_t arg_off = 0;
    if (arg_size > s->inline_size) {
        /* An arena block the caller hands over (pp_ext_submit_adopt): it
         * becomes the slot's argument block as it is, no copy. */
        bool adopt = ppi_adopt_off && (const char *)arg == s->base + ppi_adopt_off;
        /* The service thread may have reserved the block already (backlog_take). */
        arg_off = adopt ? ppi_adopt_off : f->arg_off ? f->arg_off : ppi_arena_alloc(s, arg_size);
        f->arg_off = 0;
        if (!arg_off) {
            ppi_free_ring_push(ex, idx);
            return -EAGAIN;
        }
        if (adopt)
            ppi_adopt_off = 0; /* taken: the caller no longer owns it */
        else /* a worker on another core reads it: copy.h picks the way */
            ppi_copy_payload(s->base + arg_off, arg, arg_size);
    } else if (arg_size) {
        memcpy(ppi_slot_arg_inline(s, sl), arg, arg_size);
    }
    sl->fn = f->fn_token;
    sl->timeout_ns = f->timeout_ns;
    /* relaxed: we own the FREE slot; QUEUED's release store publishes it. */
    atomic_store_explicit(&sl->kill_grace_ns, f->grace_ns, memory_order_relaxed);
    sl->retries = f->retries;
    sl->kill_reason = PPI_KILL_NONE;
    sl->started_ns = 0;
    sl->arg_size = arg_size;
    sl->arg_off = arg_off;
    sl->res_size = 0;
    sl->res_off = 0;
    sl->err = sl->code = sl->pid = 0;
    sl->msg_len = 0;
    sl->rank1 = 0;
    /* relaxed: we own the FREE slot; nobody else writes its state. */
    uint32_t gen = ppi_st_gen(atomic_load_explicit(&sl->state, memory_order_relaxed)) + 1;
    f->idx = idx;
    f->gen = gen;
    ppi_slot_lock(ex, idx);
    ex->slot_owner[idx] = f;
    /* relaxed: BOUND is published with the slot lock's release. */
    atomic_fetch_or_explicit(&f->refs, PPI_BOUND, memory_order_relaxed);
    /* seq_cst, then the seq_cst load of want_notify: pairs with the
     * registration's store of want_notify then load of cstate (store-buffer
     * pattern): either it sees SLOT and arms the slot itself (under this slot
     * lock, so after us), or we see want_notify here. Exchange: a backlog
     * waiter that announced itself is woken below. A waiter seeing SLOT spins
     * on the slot word until the QUEUED store below (gen check). */
    uint32_t was = atomic_exchange_explicit(&f->cstate, PPI_F_SLOT, memory_order_seq_cst);
    uint32_t flags = atomic_load_explicit(&f->want_notify, memory_order_seq_cst) ? PPI_F_NOTIFY : 0;
    if (flags)
        ex->notify_owner[idx] = f;
    /* release: payload and fields above before QUEUED (pairs with the
     * worker's acquire in its claim CAS). */
    atomic_store_explicit(&sl->state, ppi_st_make(gen, PPI_S_QUEUED, flags, PPI_NO_WORKER),
                          memory_order_release);
    ppi_slot_unlock(ex, idx);
    /* The ring has a cell per slot and each slot is in it at most once, so it
     * is never logically full; wait out a worker preempted inside its pop.
     * Give up only once the pool is broken (a worker died there): the slot
     * stays QUEUED and its waiters fail it (fail_if_broken). */
    while (!ppi_tasks_push_wait(s, ppi_entry(idx, gen), PPI_RING_PUSH_RETRY_NS))
        if (ppi_pool_check(ex) != 0)
            break;
    if (notify)
        ppi_ec_notify(&s->hdr->work_ec, 1);
    if (was == PPI_F_BACKLOG_WAITED)
        ppi_futex_wake(&f->cstate, INT_MAX, false);
    return 0;
}
