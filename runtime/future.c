/*
 * future.c — futures: waiting, reading the outcome, reference counting.
 *
 * A future is in one of three places (cstate):
 *   BACKLOG  queued client-side; waiters sleep on cstate (private futex);
 *   SLOT     bound to slot (idx, gen); waiters read the slot's state word and
 *            sleep on its low half (shared futex) after setting WAITERS;
 *   DONE     the outcome was copied into the future ("detached") and the
 *            slot went back to the free ring.
 * Detaching happens under the slot lock, by the first of: a thread reading
 * the result, the service thread needing slots for the backlog (harvest), or the last release.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "process.h"
#include "slab.h"
#include "tunables.h"

/* Futures come from 2 MiB huge-page chunks, not malloc: a million
 * outstanding futures are 240 MB, and fresh 4 KiB heap pages cost the
 * submit loop a fault each (slab.h, docs/design.md "Future memory"). */
ppi_slab ppi_future_slab = PPI_SLAB_INIT(sizeof(pp_future));
_Static_assert(_Alignof(pp_future) <= 16, "the slab aligns objects to 16 bytes");


pp_future *ppi_future_new(pp_executor *ex)
{
    pp_future *f = ppi_slab_alloc(&ppi_future_slab);
    if (!f)
        return NULL;
    memset(f, 0, offsetof(pp_future, small));
    atomic_init(&f->refs, 1);
    atomic_init(&f->cstate, PPI_F_BACKLOG);
    f->ex = ex;
    CDS_INIT_LIST_HEAD(&f->bl_node);
    CDS_INIT_LIST_HEAD(&f->cbs);
    /* relaxed: the caller holds a reference already (its executor handle). */
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
    return f;
}

static void future_free(pp_future *f)
{
    pp_executor *ex = f->ex;
    if (f->res_arena && !ppi_foreign(ex)) /* a forked child's copy: no shared write */
        ppi_arena_free(&ex->seg, f->res_arena);
    free(f->res_heap);
    free(f->msg);
    ppi_future_drop_arg(f);
    ppi_slab_free(&ppi_future_slab, f);
    ppi_executor_unref(ex);
}

/* Complete an unbound (backlog) future with @err. Caller owns it exclusively
 * (it is off the backlog list). Wakes its waiters. */
void ppi_future_finish(pp_future *f, int err, const char *msg)
{
    ppi_future_completed(f, ppi_future_complete(f, err, msg));
}

/* First half of ppi_future_finish: record the outcome and publish DONE (may
 * run under the backlog lock). Returns the previous cstate. */
uint32_t ppi_future_complete(pp_future *f, int err, const char *msg)
{
    f->err = err;
    f->msg = msg ? strdup(msg) : NULL;
    ppi_future_drop_arg(f);
    /* release: the outcome above before DONE. */
    return atomic_exchange_explicit(&f->cstate, PPI_F_DONE, memory_order_release);
}

/* Second half (no lock held): wake waiters, notify, run callbacks. */
void ppi_future_completed(pp_future *f, uint32_t was)
{
    if (was == PPI_F_BACKLOG_WAITED)
        ppi_futex_wake(&f->cstate, INT_MAX, false);
    ppi_ec_notify(&f->ex->seg.hdr->done_ec, INT_MAX); /* pp_wait / as_completed */
    ppi_fire_callbacks(f);
}

/* Copy the outcome of terminal slot @sl into @f. */
static void copy_outcome(pp_executor *ex, pp_future *f, ppi_slot *sl)
{
    ppi_seg *s = &ex->seg;
    f->err = sl->err;
    f->code = sl->code;
    f->pid = sl->pid;
    f->rank1 = sl->rank1;
    if (sl->err) {
        f->msg = strndup(ppi_slot_res_inline(s, sl), sl->msg_len);
        ppi_arena_free(s, sl->res_off); /* a failed task's partial result */
    } else if (sl->res_off) {
        f->res_arena = sl->res_off;      /* ownership moves: no copy */
        f->res = s->base + sl->res_off;
    } else if (sl->res_size <= sizeof f->small) {
        memcpy(f->small, ppi_slot_res_inline(s, sl), sl->res_size);
        f->res = f->small;
    } else {
        f->res_heap = aligned_alloc(16, (sl->res_size + 15) & ~(size_t)15);
        if (f->res_heap) {
            memcpy(f->res_heap, ppi_slot_res_inline(s, sl), sl->res_size);
            f->res = f->res_heap;
        } else {
            f->err = -ENOMEM;
        }
    }
    f->res_size = f->err ? 0 : sl->res_size;
    ppi_arena_free(s, sl->arg_off);
    sl->arg_off = sl->res_off = 0;
}

/*
 * ppi_detach_locked - if @f is still bound and its slot finished, copy the
 * outcome into @f, free the slot and clear BOUND. Caller holds slot_lock[f->idx]
 * and must push f->idx to the free ring (ppi_release_slot) after unlocking
 * when this returns true. Never frees @f.
 */
bool ppi_detach_locked(pp_executor *ex, pp_future *f)
{
    if (ex->slot_owner[f->idx] != f)
        return false;
    ppi_slot *sl = ppi_slot_at(&ex->seg, f->idx);
    /* acquire: pairs with the worker's (or sweeper's) release of DONE/FAILED. */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (ppi_st_gen(w) != f->gen || !ppi_st_terminal(ppi_st_state(w)))
        return false;
    uint32_t idx = f->idx, gen = f->gen;
    copy_outcome(ex, f, sl);
    ex->slot_owner[idx] = NULL;
    bool keep = ex->notify_owner[idx] == f; /* its completion entry is pending */
    /* release: the outcome copied above is visible to whoever sees DONE. */
    atomic_store_explicit(&f->cstate, PPI_F_DONE, memory_order_release);
    /* release: a user whose final pp_future_release reads BOUND clear (with
     * acquire) may free the future at once: this is our last access to it. */
    atomic_fetch_and_explicit(&f->refs, ~PPI_BOUND, memory_order_release);
    if (keep)
        return false; /* the service thread frees the slot when it sees the entry */
    ppi_free_slot_word(ex, idx, gen);
    return true;
}

/* Slot @idx (terminal, detached, use @gen) becomes FREE. Caller holds its
 * slot lock and pushes it to the free ring after unlocking. */
void ppi_free_slot_word(pp_executor *ex, uint32_t idx, uint32_t gen)
{
    ppi_slot *sl = ppi_slot_at(&ex->seg, idx);
    /* release: our reads of the slot complete before it is reused; exchange
     * so that a WAITERS flag set meanwhile is not lost. */
    uint64_t old = atomic_exchange_explicit(
        &sl->state, ppi_st_make(gen, PPI_S_FREE, 0, PPI_NO_WORKER), memory_order_release);
    if (ppi_st_flags(old) & PPI_F_WAITERS)
        ppi_futex_wake(ppi_slot_futex(sl), INT_MAX, true);
}

/* Detach @f if possible (takes the slot lock). */
static void detach(pp_executor *ex, pp_future *f)
{
    uint32_t idx = f->idx;
    ppi_slot_lock(ex, idx);
    bool freed = ppi_detach_locked(ex, f);
    ppi_slot_unlock(ex, idx);
    if (freed)
        ppi_release_slot(ex, idx);
}

/*
 * ppi_cancel_bound - cancel the task in slot @idx if no worker started it.
 * Returns true if it was cancelled. Takes the slot lock.
 */
bool ppi_cancel_bound(pp_executor *ex, uint32_t idx)
{
    ppi_slot_lock(ex, idx);
    pp_future *f = ex->slot_owner[idx];
    bool done = false;
    if (f) {
        ppi_slot *sl = ppi_slot_at(&ex->seg, idx);
        /* relaxed: the CAS validates. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
        while (ppi_st_gen(w) == f->gen && ppi_st_state(w) == PPI_S_QUEUED) {
            uint64_t nw = ppi_st_make(f->gen, PPI_S_CANCELLED, 0, PPI_NO_WORKER);
            /* relaxed: the worker that pops the stale entry only recycles the
             * slot; it reads nothing we wrote. */
            if (atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                done = true;
                break;
            }
        }
        if (done) {
            /* The slot now belongs to its ring entry: the worker that pops it
             * marks it RECLAIM, and the client's reclaim scan frees it and its
             * argument block. */
            ex->slot_owner[idx] = NULL;
            ex->notify_owner[idx] = NULL;
            f->err = -ECANCELED;
            pp_future_ref(f); /* keep it alive for its callbacks below (before
                                 BOUND goes: a racing last release must not free it) */
            /* release: outcome before DONE. */
            atomic_store_explicit(&f->cstate, PPI_F_DONE, memory_order_release);
            /* release: as in ppi_detach_locked. */
            atomic_fetch_and_explicit(&f->refs, ~PPI_BOUND, memory_order_release);
            if (ppi_st_flags(w) & PPI_F_WAITERS)
                ppi_futex_wake(ppi_slot_futex(sl), INT_MAX, true);
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        }
    }
    ppi_slot_unlock(ex, idx);
    if (done) {
        ppi_ec_notify(&ex->seg.hdr->done_ec, INT_MAX); /* pp_wait / as_completed */
        ppi_fire_callbacks(f); /* inside the cancelling call, as in Python */
        pp_future_release(f);
    }
    return done;
}

/* The service thread frees finished slots whose futures are still held,
 * binding backlog entries into them as it goes; the workers are notified
 * once per PPI_HARVEST_NOTIFY_EVERY such binds, not per bind. Returns how
 * many slots it freed. */
uint32_t ppi_harvest(pp_executor *ex)
{
    ppi_seg *s = &ex->seg;
    uint32_t unnotified = 0, freed_count = 0;
    for (uint32_t i = 0; i < s->nslots; i++) {
        /* relaxed: a hint; ppi_detach_locked re-reads with acquire. */
        uint64_t w = atomic_load_explicit(&ppi_slot_at(s, i)->state, memory_order_relaxed);
        if (!ppi_st_terminal(ppi_st_state(w)))
            continue;
        ppi_slot_lock(ex, i);
        pp_future *f = ex->slot_owner[i];
        bool freed = f && ppi_detach_locked(ex, f);
        ppi_slot_unlock(ex, i);
        freed_count += freed;
        if (freed && ppi_release_slot_quiet(ex, i) &&
            ++unnotified == PPI_HARVEST_NOTIFY_EVERY) {
            ppi_ec_notify(&s->hdr->work_ec, INT_MAX);
            unnotified = 0;
        }
    }
    if (unnotified)
        ppi_ec_notify(&s->hdr->work_ec, INT_MAX);
    return freed_count;
}

/* If the pool broke, fail @f's slot ourselves when nobody else will. */
static void fail_if_broken(pp_executor *ex, pp_future *f)
{
    if (ppi_pool_check(ex) == 0)
        return;
    ppi_slot_lock(ex, f->idx);
    if (ex->slot_owner[f->idx] == f) {
        /* Running tasks are failed by the manager after it killed the
         * workers; if the manager is gone too, the workers are dead (parent-
         * death signal) and we fail running ones as well. */
        ppi_slot_fail_broken(&ex->seg, f->idx, ppi_manager_dead(ex));
    }
    ppi_slot_unlock(ex, f->idx);
}

/*
 * Bound future @f read slot word @w that cannot be its own: another
 * generation, FREE/RECLAIM of its generation, or an unknown state. A detach
 * or a cancel explains that for an instant: both change the word, then
 * cstate, under the slot lock. So look again under the lock. If @f is still
 * bound there, the word was overwritten (a task that wrote past its result
 * into this slot's header, a process forked from the client using the pool):
 * fail @f with -EPROTO rather than wait forever. The slot stays out of use
 * (neither freed nor given back: whatever wrote it may write it again), and
 * its payload blocks are not freed. Returns true if @f is done now.
 */
static bool fail_if_corrupt(pp_executor *ex, pp_future *f, uint64_t w)
{
    uint32_t idx = f->idx;
    ppi_slot_lock(ex, idx);
    /* acquire: pairs with the release stores of cstate (under this lock). */
    bool bound = atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_SLOT &&
                 ex->slot_owner[idx] == f;
    if (bound) {
        ppi_slot *sl = ppi_slot_at(&ex->seg, idx);
        /* acquire: as in future_wait; a word changed meanwhile is looked at
         * by the caller's next pass. */
        uint64_t now = atomic_load_explicit(&sl->state, memory_order_acquire);
        if (now != w) {
            ppi_slot_unlock(ex, idx);
            return false;
        }
        char msg[PP_MESSAGE_MAX + 1];
        snprintf(msg, sizeof msg,
                 "slot %u was overwritten (state word %#llx, expected generation %u): "
                 "shared memory corrupted by a task writing past its result, or the "
                 "pool used from a forked process",
                 idx, (unsigned long long)w, f->gen);
        ex->slot_owner[idx] = NULL;
        ex->notify_owner[idx] = NULL;
        f->err = -EPROTO;
        f->code = 0;
        f->pid = 0;
        f->msg = strdup(msg);
        pp_future_ref(f); /* for the callbacks below, as in ppi_cancel_bound */
        /* release: outcome before DONE. */
        atomic_store_explicit(&f->cstate, PPI_F_DONE, memory_order_release);
        /* release: as in ppi_detach_locked. */
        atomic_fetch_and_explicit(&f->refs, ~PPI_BOUND, memory_order_release);
    }
    ppi_slot_unlock(ex, idx);
    if (bound) {
        fprintf(stderr, "ppool: %s\n", f->msg ? f->msg : "slot overwritten");
        ppi_ec_notify(&ex->seg.hdr->done_ec, INT_MAX); /* pp_wait / as_completed */
        ppi_fire_callbacks(f);
        pp_future_release(f);
        return true;
    }
    /* acquire: as above; not bound any more means detached or cancelled. */
    return atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_DONE;
}

/* Wait until @f is done or @deadline passes. Returns 0 or -ETIMEDOUT. */
static int future_wait(pp_future *f, uint64_t deadline)
{
    pp_executor *ex = f->ex;
    uint64_t spin_until = 0;
    unsigned spins = 0;
    for (;;) {
        /* acquire: pairs with the release stores of cstate. */
        uint32_t c = atomic_load_explicit(&f->cstate, memory_order_acquire);
        if (c == PPI_F_DONE)
            return 0;
        if (ppi_in_backlog(c)) {
            uint64_t left = ppi_remaining(deadline, PPI_FUTURE_NAP_NS);
            if (left == 0)
                return -ETIMEDOUT;
            /* acquire on failure: re-read the new state. Announce ourselves so
             * that the binder wakes us (it skips the system call otherwise). */
            if (c == PPI_F_BACKLOG &&
                !atomic_compare_exchange_strong_explicit(&f->cstate, &c, PPI_F_BACKLOG_WAITED,
                                                         memory_order_acquire,
                                                         memory_order_acquire))
                continue;
            if (ppi_futex_wait(&f->cstate, PPI_F_BACKLOG_WAITED, left, false) == -ETIMEDOUT)
                ppi_pool_check(ex); /* the service thread fails the backlog if broken */
            continue;
        }
        ppi_slot *sl = ppi_slot_at(&ex->seg, f->idx);
        /* acquire: pairs with the worker's release of DONE/FAILED. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
        uint32_t st = ppi_st_state(w);
        /* Another generation, FREE/RECLAIM of ours, or no state at all: the
         * future was detached or cancelled meanwhile (cstate says DONE at
         * once, or once the slot lock is free), or the word was overwritten.
         * Never loop on it without checking. */
        if (ppi_st_gen(w) != f->gen || st == PPI_S_FREE || st == PPI_S_RECLAIM ||
            st > PPI_S_KILLING) {
            /* acquire: pairs with the release stores of cstate. */
            if (atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_DONE ||
                fail_if_corrupt(ex, f, w))
                return 0;
            if (ppi_now_ns() >= deadline)
                return -ETIMEDOUT;
            continue;
        }
        if (ppi_st_terminal(st) || st == PPI_S_CANCELLED)
            return 0;
        /* Spin: the slot word after every pause (one pause is ~20 ns on
         * recent AMD cores: re-reading only after 64 of them added ~0.6 µs
         * to the average round trip), the clock only every
         * PPI_SPIN_CLOCK_EVERY passes (a clock read costs about two pauses).
         * The first pass reads it, so a deadline already past never spins. */
        if (spins++ % PPI_SPIN_CLOCK_EVERY) {
            ppi_cpu_relax();
            continue;
        }
        uint64_t now = ppi_now_ns();
        if (!spin_until)
            spin_until = now + PPI_FUTURE_SPIN_NS;
        if (now < spin_until && now < deadline) {
            ppi_cpu_relax();
            continue;
        }
        uint64_t left = ppi_remaining(deadline, PPI_FUTURE_NAP_NS);
        if (left == 0) {
            /* A caller that only polls (pp_future_done, timeout 0) still
             * notices a dead pool within milliseconds. */
            if (ppi_liveness_tick(ex) != 0) {
                fail_if_broken(ex, f);
                deadline = 0; /* re-check once, then report */
                if (ppi_st_state(atomic_load_explicit(&sl->state, memory_order_acquire)) !=
                    ppi_st_state(w))
                    continue;
            }
            return -ETIMEDOUT;
        }
        uint64_t ww = w | ((uint64_t)PPI_F_WAITERS << 8);
        /* relaxed: the flag only asks the publisher for a wake; the futex
         * compare re-validates the word. */
        if (!(ppi_st_flags(w) & PPI_F_WAITERS) &&
            !atomic_compare_exchange_strong_explicit(&sl->state, &w, ww, memory_order_relaxed,
                                                     memory_order_relaxed))
            continue;
        if (ppi_futex_wait(ppi_slot_futex(sl), (uint32_t)ww, left, true) == -ETIMEDOUT)
            fail_if_broken(ex, f);
    }
}

static int timeout_check(double timeout)
{
    return isnan(timeout) ? -EINVAL : 0;
}

/* Wait, then make sure the outcome is in the future (detach). */
static int wait_outcome(pp_future *f, double timeout)
{
    if (!f || timeout_check(timeout))
        return -EINVAL;
    if (ppi_foreign(f->ex))
        return PP_EFORKED;
    int rc = future_wait(f, ppi_deadline(timeout));
    if (rc)
        return rc;
    /* acquire: pairs with the release stores of cstate. */
    if (atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_SLOT)
        detach(f->ex, f);
    return 0;
}

int pp_future_result(pp_future *f, double timeout, const void **data, size_t *size)
{
    if (data)
        *data = NULL;
    if (size)
        *size = 0;
    int rc = wait_outcome(f, timeout);
    if (rc)
        return rc;
    if (f->err)
        return f->err;
    if (data)
        *data = f->res ? f->res : (const void *)f->small;
    if (size)
        *size = f->res_size;
    return 0;
}

int pp_future_exception(pp_future *f, double timeout, pp_exception *exc)
{
    if (!exc)
        return -EINVAL;
    memset(exc, 0, sizeof *exc);
    exc->message = "";
    int rc = wait_outcome(f, timeout);
    if (rc)
        return rc;
    exc->error = f->err;
    exc->code = ppi_public_code(f->err, f->code, &exc->how);
    exc->pid = f->pid;
    exc->rank = (f->rank1 ? f->rank1 : f->ex->ext_rank1) - 1;
    exc->message = f->msg ? f->msg : (f->err ? pp_strerror(f->err) : "");
    return 0;
}

bool pp_future_done(pp_future *f)
{
    return f && !ppi_foreign(f->ex) && future_wait(f, 0) == 0;
}

bool pp_future_running(pp_future *f)
{
    if (!f || ppi_foreign(f->ex))
        return false;
    /* acquire: pairs with the release stores of cstate. */
    if (atomic_load_explicit(&f->cstate, memory_order_acquire) != PPI_F_SLOT)
        return false;
    /* relaxed: a snapshot for the caller; RUNNING is set only by a worker. */
    uint64_t w = atomic_load_explicit(&ppi_slot_at(&f->ex->seg, f->idx)->state,
                                      memory_order_relaxed);
    uint32_t st = ppi_st_state(w);
    return ppi_st_gen(w) == f->gen && (st == PPI_S_RUNNING || st == PPI_S_KILLING) &&
           ppi_st_worker(w) < PPI_SWEEPER;
}

bool pp_future_cancel(pp_future *f)
{
    if (!f || ppi_foreign(f->ex))
        return false;
    pp_executor *ex = f->ex;
    for (;;) {
        /* acquire: pairs with the release stores of cstate. */
        uint32_t c = atomic_load_explicit(&f->cstate, memory_order_acquire);
        if (ppi_in_backlog(c)) {
            if (ppi_backlog_cancel(ex, f))
                return true;
            /* Not on the list but not bound yet: the service thread is binding it right
             * now (it never keeps one off the list for long). Cancel it in its
             * slot once bound; a concurrent cancel that won has completed it
             * under the backlog lock, which we took. */
            if (ppi_in_backlog(atomic_load_explicit(&f->cstate, memory_order_acquire)))
                sched_yield();
            continue;
        }
        if (c == PPI_F_SLOT && ppi_cancel_bound(ex, f->idx))
            return true;
        return pp_future_cancelled(f);
    }
}

int pp_future_kill(pp_future *f, double grace)
{
    if (!f || isnan(grace) || grace < 0)
        return -EINVAL;
    pp_executor *ex = f->ex;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    if (pp_future_cancel(f))
        return 0; /* not started: cancelled instead */
    /* acquire: pairs with the release stores of cstate. */
    if (atomic_load_explicit(&f->cstate, memory_order_acquire) != PPI_F_SLOT)
        return f->err == PP_EKILLED ? 0 : -EALREADY;
    int rc = -EALREADY;
    ppi_slot_lock(ex, f->idx);
    if (ex->slot_owner[f->idx] == f) {
        ppi_slot *sl = ppi_slot_at(&ex->seg, f->idx);
        /* relaxed: the CAS validates. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
        while (ppi_st_gen(w) == f->gen && ppi_st_state(w) == PPI_S_RUNNING &&
               ppi_st_worker(w) < PPI_SWEEPER) {
            /* relaxed: published by the release CAS below. */
            atomic_store_explicit(&sl->kill_grace_ns, ppi_s_to_ns(grace), memory_order_relaxed);
            sl->kill_reason = PPI_KILL_REQUEST;
            uint64_t nw = (w & ~(uint64_t)0xff) | PPI_S_KILLING;
            /* release: grace and reason before KILLING (the manager acquires). */
            if (atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_release,
                                                      memory_order_relaxed)) {
                rc = 0;
                break;
            }
        }
        if (ppi_st_gen(w) == f->gen && ppi_st_state(w) == PPI_S_KILLING)
            rc = 0;
    }
    ppi_slot_unlock(ex, f->idx);
    if (rc == 0)
        ppi_poke_manager(ex);
    return rc;
}

bool pp_future_cancelled(pp_future *f)
{
    if (!f || ppi_foreign(f->ex))
        return false;
    /* acquire: pairs with the release stores of cstate. */
    return atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_DONE &&
           f->err == -ECANCELED;
}

pp_future *pp_future_ref(pp_future *f)
{
    if (f)
        /* relaxed: the caller already holds a reference. */
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void pp_future_release(pp_future *f)
{
    if (!f)
        return;
    pp_executor *ex = f->ex;
    if (ppi_foreign(ex)) {
        /* A fork()ed child's copy: drop the reference; the last one frees
         * only the child's private memory (never the slot, never the arena).
         * acq_rel: as below. */
        uint32_t was = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
        if ((was & ~PPI_BOUND) == 1)
            future_free(f);
        return;
    }
    /* acquire: see BOUND as last written under the slot lock. */
    uint32_t r = atomic_load_explicit(&f->refs, memory_order_acquire);
    if ((r & ~PPI_BOUND) == 1 && (r & PPI_BOUND)) {
        /* Our reference is the last one and the future is bound: give the slot
         * back (finished) or hand it to the worker (still queued/running). */
        ppi_slot_lock(ex, f->idx);
        bool freed = false;
        if (ex->slot_owner[f->idx] == f) {
            freed = ppi_detach_locked(ex, f);
            if (!freed) {
                ppi_slot *sl = ppi_slot_at(&ex->seg, f->idx);
                /* relaxed: the CAS validates. */
                uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
                for (;;) {
                    uint32_t st = ppi_st_state(w);
                    if (ppi_st_terminal(st)) {
                        freed = ppi_detach_locked(ex, f);
                        break;
                    }
                    uint64_t nw = w | ((uint64_t)PPI_F_ORPHAN << 8);
                    /* release: the worker that sees ORPHAN recycles the slot;
                     * nothing of ours is read after. */
                    if (atomic_compare_exchange_weak_explicit(
                            &sl->state, &w, nw, memory_order_release, memory_order_relaxed)) {
                        ex->slot_owner[f->idx] = NULL;
                        /* release: as in ppi_detach_locked. */
                        atomic_fetch_and_explicit(&f->refs, ~PPI_BOUND, memory_order_release);
                        break;
                    }
                }
            }
        }
        ppi_slot_unlock(ex, f->idx);
        if (freed)
            ppi_release_slot(ex, f->idx);
    }
    /* acq_rel: the last dropper sees all writes to the future before freeing. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        future_free(f);
}
