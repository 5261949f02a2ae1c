/*
 * backlog.c — the client-side backlog: submissions waiting for a free slot
 * (or for arena room for their argument), and feeding them into slots.
 *
 * pp_submit never blocks: when no slot is free it copies the call into a
 * backlog entry (the future itself, holding its argument) and returns. The
 * executor's service thread (service_thread.c), started on first need, moves
 * entries into slots in FIFO order as slots free up (ppi_backlog_feed_round),
 * and so does any client thread that frees a slot meanwhile: it binds the
 * head into that slot at once (ppi_backlog_help, from ppi_release_slot).
 * While the backlog is non-empty it also "harvests": finished slots whose
 * futures the user still holds are detached (their outcome copied into the
 * future) so that a user holding many futures never starves the backlog.
 *
 * The list is an intrusive urcu list (pp_future.bl_node) under ex->lock, so
 * that cancelling an entry is O(1) however deep the backlog; a future is on
 * it exactly when its bl_node is not empty (every removal re-initialises the
 * node). ex->bl_count mirrors its length for lock-free hints (pp_submit keeps
 * FIFO order behind an existing backlog; statistics).
 *
 * The backlog holds one reference to each of its futures, dropped once the
 * future is bound to a slot or completed (cancelled, pool broken, no room at
 * shutdown).
 *
 * Locking: every function here takes ex->lock itself unless it says "caller
 * holds ex->lock" (ppi_backlog_help only tries it); none is called with a
 * slot lock held. An entry leaves the list either under ex->lock together
 * with its bind (helpers, and the service thread's feed): pp_shutdown and
 * the service thread decide under ex->lock that the backlog is empty and
 * stop may be sent, so no entry is ever between the list and the ring.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "process.h"
#include "shards.h"
#include "tunables.h"

/* The lists are walked node by node (cds_list_for_each), never with the
 * *_entry iterators: those form a pp_future pointer from the list head
 * itself at the end of the walk, a misaligned object access (undefined
 * behaviour that UBSan reports: pp_future is 16-byte aligned). */

/* ex->lock is held for a few hundred nanoseconds at a time (a list append,
 * or a take and a bind), by a submitting thread and by the threads that
 * feed the backlog. An adaptive mutex spins briefly before it sleeps, so
 * such a collision costs no FUTEX_WAIT/FUTEX_WAKE pair (two system calls,
 * microseconds each under a hypervisor); a holder preempted for longer
 * still puts its waiters to sleep. */
void ppi_backlog_lock_init(pthread_mutex_t *lock)
{
    pthread_mutexattr_t at;
    if (pthread_mutexattr_init(&at) != 0) {
        pthread_mutex_init(lock, NULL);
        return;
    }
    bool adaptive = pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ADAPTIVE_NP) == 0;
    pthread_mutex_init(lock, adaptive ? &at : NULL);
    pthread_mutexattr_destroy(&at);
}

/* Unlink @f from the backlog. Caller holds ex->lock; @f is on it. */
static void backlog_unlink(pp_executor *ex, pp_future *f)
{
    cds_list_del_init(&f->bl_node);
    /* relaxed: a hint for submitters; the list itself is under the lock. */
    atomic_fetch_sub_explicit(&ex->bl_count, 1, memory_order_relaxed);
}

/* Put @f back at the head (it found no slot). Caller holds ex->lock. */
static void backlog_push_front(pp_executor *ex, pp_future *f)
{
    cds_list_add(&f->bl_node, &ex->backlog);
    /* relaxed: a hint, as above. */
    atomic_fetch_add_explicit(&ex->bl_count, 1, memory_order_relaxed);
}

bool ppi_backlog_empty(pp_executor *ex)
{
    return cds_list_empty(&ex->backlog);
}

int ppi_backlog_add(pp_executor *ex, pp_future *f, const void *arg, size_t arg_size)
{
    if (arg_size) {
        /* A small argument waits in the future itself (its result area is
         * free until the outcome): one allocation, and one heap page touched,
         * less per backlogged task. */
        f->arg = arg_size <= sizeof f->small ? (void *)f->small : malloc(arg_size);
        if (!f->arg)
            return -ENOMEM;
        memcpy(f->arg, arg, arg_size);
    }
    f->arg_size = arg_size;
    pp_future_ref(f); /* the backlog's reference */
    pthread_mutex_lock(&ex->lock);
    int rc = ppi_service_start_locked(ex);
    if (rc) {
        pthread_mutex_unlock(&ex->lock);
        ppi_future_drop_arg(f);
        pp_future_release(f);
        return rc;
    }
    cds_list_add_tail(&f->bl_node, &ex->backlog);
    /* relaxed: a hint; the list is under the lock. */
    atomic_fetch_add_explicit(&ex->bl_count, 1, memory_order_relaxed);
    pthread_cond_signal(&ex->service_cv);
    pthread_mutex_unlock(&ex->lock);
    return 0;
}

/* Cancel @f if it is still in the backlog. Returns true if it was. O(1). */
bool ppi_backlog_cancel(pp_executor *ex, pp_future *f)
{
    pthread_mutex_lock(&ex->lock);
    bool found = !cds_list_empty(&f->bl_node);
    uint32_t was = 0;
    if (found) {
        backlog_unlink(ex, f);
        /* complete it under the lock: a racing canceller that does not find
         * it on the list then sees it DONE */
        was = ppi_future_complete(f, -ECANCELED, NULL);
    }
    pthread_mutex_unlock(&ex->lock);
    if (found) {
        ppi_future_completed(f, was);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f); /* the backlog's reference */
    }
    return found;
}

/* Move every entry of the backlog onto @out (emptied first). Caller holds
 * ex->lock. */
static void backlog_take_all(pp_executor *ex, struct cds_list_head *out)
{
    CDS_INIT_LIST_HEAD(out);
    cds_list_splice(&ex->backlog, out);
    CDS_INIT_LIST_HEAD(&ex->backlog);
    /* relaxed: a hint. */
    atomic_store_explicit(&ex->bl_count, 0, memory_order_relaxed);
}

/* Complete every future on @list with @err (and the cause @code/@pid/@msg),
 * dropping the backlog's reference to each. No lock held. */
static void complete_list(pp_executor *ex, struct cds_list_head *list, int err, int code,
                          pid_t pid, const char *msg)
{
    struct cds_list_head *pos, *next;
    cds_list_for_each_safe(pos, next, list) {
        pp_future *f = cds_list_entry(pos, pp_future, bl_node);
        cds_list_del_init(&f->bl_node);
        f->code = code;
        f->pid = pid > 0 ? pid : 0;
        ppi_future_finish(f, err, msg);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(err == -ECANCELED ? &ex->cancelled : &ex->bl_failed, 1,
                                  memory_order_relaxed);
        pp_future_release(f); /* the backlog's reference */
    }
}

static void backlog_complete_all(pp_executor *ex, int err, int code, pid_t pid, const char *msg)
{
    struct cds_list_head list;
    pthread_mutex_lock(&ex->lock);
    backlog_take_all(ex, &list);
    pthread_mutex_unlock(&ex->lock);
    complete_list(ex, &list, err, code, pid, msg);
}

/* Complete every backlog entry with PP_EBROKEN and the pool's cause (the
 * dead worker's pid and signal or exit status), as a slot would report it. */
void ppi_backlog_fail_broken(pp_executor *ex)
{
    ppi_hdr *h = ex->seg.hdr;
    /* acquire: pairs with ppi_pool_break's release of pool_state (the cause
     * fields were written before it). */
    if (atomic_load_explicit(&h->pool_state, memory_order_acquire) == PPI_POOL_RUNNING)
        return;
    /* relaxed: ordered by the acquire above. */
    backlog_complete_all(ex, PP_EBROKEN, atomic_load_explicit(&h->broken_code, memory_order_relaxed),
                         atomic_load_explicit(&h->broken_pid, memory_order_relaxed),
                         h->broken_msg);
}

/* Complete every backlog entry with @err (cancel, broken pool). */
void ppi_backlog_cancel_all(pp_executor *ex, int err, const char *msg)
{
    backlog_complete_all(ex, err, 0, 0, msg);
}

/*
 * Unlink and return the first backlog entry that can be bound now: the head,
 * or, when the head's argument finds no arena room, the first later entry
 * whose argument is inline or finds room (a large argument waiting for room
 * does not hold up smaller tasks). An arena argument's block is reserved
 * here, under the lock (f->arg_off), so the bind cannot fail for want of
 * room. Sets *no_room when an entry was passed over for want of room. Only
 * sizes below the smallest that already failed are tried, so one scan costs
 * few allocation attempts. Caller holds ex->lock.
 */
static pp_future *backlog_take(pp_executor *ex, bool *no_room)
{
    size_t failed = SIZE_MAX;
    struct cds_list_head *pos;
    cds_list_for_each(pos, &ex->backlog) {
        pp_future *f = cds_list_entry(pos, pp_future, bl_node);
        if (f->arg_size > ex->seg.inline_size) {
            uint64_t off = f->arg_size < failed ? ppi_arena_alloc(&ex->seg, f->arg_size) : 0;
            if (!off) {
                failed = f->arg_size < failed ? f->arg_size : failed;
                *no_room = true;
                continue;
            }
            f->arg_off = off;
        }
        backlog_unlink(ex, f);
        return f;
    }
    return NULL;
}

/* Unlink and return the backlog's head if it can be bound now (inline
 * argument, or an arena block reserved for it here), else NULL: O(1), for
 * ppi_backlog_help, which leaves passing over entries that wait for room to
 * the service thread. Caller holds ex->lock. */
static pp_future *backlog_take_head(pp_executor *ex)
{
    if (cds_list_empty(&ex->backlog))
        return NULL;
    pp_future *f = cds_list_entry(ex->backlog.next, pp_future, bl_node);
    if (f->arg_size > ex->seg.inline_size) {
        uint64_t off = ppi_arena_alloc(&ex->seg, f->arg_size);
        if (!off)
            return NULL;
        f->arg_off = off;
    }
    backlog_unlink(ex, f);
    return f;
}

/* True when no task is queued, running or cancelled-but-unreclaimed: nothing
 * in the pool will finish and free arena room by itself. */
static bool pool_quiet(pp_executor *ex)
{
    for (uint32_t i = 0; i < ex->seg.nslots; i++) {
        /* relaxed: a hint; the caller acts only after shutdown, when the
         * state can only move towards terminal. */
        uint32_t st = ppi_st_state(
            atomic_load_explicit(&ppi_slot_at(&ex->seg, i)->state, memory_order_relaxed));
        if (st == PPI_S_QUEUED || st == PPI_S_RUNNING || st == PPI_S_KILLING ||
            st == PPI_S_CANCELLED || st == PPI_S_RECLAIM)
            return false;
    }
    return true;
}

/* After shutdown, with the pool quiet: fail the backlog entries whose
 * arguments still find no arena room (-ENOMEM); nothing will free any. */
static void backlog_fail_no_room(pp_executor *ex)
{
    struct cds_list_head fail;
    CDS_INIT_LIST_HEAD(&fail);
    pthread_mutex_lock(&ex->lock);
    struct cds_list_head *pos, *next;
    cds_list_for_each_safe(pos, next, &ex->backlog) {
        pp_future *f = cds_list_entry(pos, pp_future, bl_node);
        if (f->arg_size <= ex->seg.inline_size)
            continue;
        backlog_unlink(ex, f);
        cds_list_add_tail(&f->bl_node, &fail);
    }
    pthread_mutex_unlock(&ex->lock);
    complete_list(ex, &fail, -ENOMEM, 0, 0,
                  "no room in the shared arena for the argument at shutdown");
}

/* @f found a slot but its bind failed (cannot happen: the block was
 * reserved). Keep the entry; after a shutdown(cancel_futures) has emptied
 * the backlog, cancel it rather than put it back. */
static void bind_failed(pp_executor *ex, pp_future *f)
{
    pthread_mutex_lock(&ex->lock);
    /* relaxed: ordered by the lock (pp_shutdown stores cancel_req before its
     * cancel sweep takes the lock). */
    bool cancel = atomic_load_explicit(&ex->cancel_req, memory_order_relaxed);
    uint32_t was = cancel ? ppi_future_complete(f, -ECANCELED, "cancelled by shutdown") : 0;
    if (!cancel)
        backlog_push_front(ex, f);
    pthread_mutex_unlock(&ex->lock);
    if (cancel) {
        ppi_future_completed(f, was);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f); /* the backlog's reference */
    }
}

/* Backlog entry @f was just bound into slot @idx (ex->lock released): free
 * its argument copy, cancel it if a pp_shutdown(cancel_futures) swept the
 * slots meanwhile, and drop the backlog's reference. seq_cst fence: pairs
 * with pp_shutdown's store of cancel_req (see there), so either its sweep
 * saw the QUEUED slot or we see cancel_req here. */
static void after_backlog_bind(pp_executor *ex, pp_future *f, uint32_t idx)
{
    ppi_future_drop_arg(f);
    atomic_thread_fence(memory_order_seq_cst);
    /* relaxed: ordered by the fence above. */
    if (atomic_load_explicit(&ex->cancel_req, memory_order_relaxed))
        ppi_cancel_bound(ex, idx);
    pp_future_release(f); /* the backlog's reference */
}

/* Move backlog entries into slots while slots are free. Returns how many.
 * Sets *no_room when an entry waits for arena room rather than a slot. */
static int feed(pp_executor *ex, bool *no_room)
{
    int moved = 0;
    *no_room = false;
    for (;;) {
        uint32_t idx;
        if (ppi_acquire_slot(ex, &idx) != 0)
            return moved;
        /* Take and bind under one hold of ex->lock: pp_shutdown decides under
         * it that an empty backlog lets it send stop, so an entry must never
         * be off the list without its ring entry pushed (workers that found
         * the ring empty with stop set are gone). */
        pthread_mutex_lock(&ex->lock);
        pp_future *f = backlog_take(ex, no_room);
        if (!f) {
            pthread_mutex_unlock(&ex->lock);
            ppi_free_ring_push(ex, idx);
            return moved;
        }
        int rc = ppi_bind(ex, f, idx, f->arg, f->arg_size);
        pthread_mutex_unlock(&ex->lock);
        if (rc != 0) {
            bind_failed(ex, f);
            return moved;
        }
        after_backlog_bind(ex, f, idx);
        moved++;
    }
}

/*
 * ppi_backlog_help - bind the backlog's head into the FREE
 * slot @idx, which the calling client thread owns (ppi_release_slot, right
 * after it freed it). Returns true when @idx was consumed (bound, or pushed
 * to the free ring by a bind that failed), false when it is still the
 * caller's: ex->lock is busy, the backlog is empty, its head waits for arena
 * room (passing it over is the service thread's scan), or a shutdown is
 * cancelling. O(1) under the lock. With @notify false the workers are not
 * notified (ppi_bind_ex): the caller owes a notify of work_ec.
 *
 * Locking: trylock of ex->lock, never a wait (the caller may hold it, or be
 * a user thread that must not block behind a submitter); the take and the
 * bind both happen under it, so the service thread's decision to send stop
 * (made under ex->lock when the backlog is empty) never sees an entry that
 * left the backlog but is not yet in the task ring. Lock order ex->lock >
 * slot lock (client.h), as ppi_bind takes the slot lock.
 *
 * Barriers: after the bind, a seq_cst fence and a load of cancel_req, as in
 * feed(): pairs with pp_shutdown's store, so either its sweep sees the
 * QUEUED slot or we cancel it here.
 */
bool ppi_backlog_help(pp_executor *ex, uint32_t idx, bool notify)
{
    /* relaxed: a hint; the fence after the bind is the real check. */
    if (atomic_load_explicit(&ex->cancel_req, memory_order_relaxed))
        return false;
    if (pthread_mutex_trylock(&ex->lock) != 0)
        return false;
    pp_future *f = backlog_take_head(ex);
    if (!f) {
        pthread_mutex_unlock(&ex->lock);
        return false;
    }
    if (ppi_bind_ex(ex, f, idx, f->arg, f->arg_size, notify) != 0) {
        /* Cannot happen (backlog_take reserved the block); the bind gave
         * @idx back to the free ring. Keep the entry at the head. */
        backlog_push_front(ex, f);
        pthread_mutex_unlock(&ex->lock);
        return true;
    }
    pthread_mutex_unlock(&ex->lock);
    after_backlog_bind(ex, f, idx);
    return true;
}

/* Short timed nap while the backlog waits for slots (see
 * PPI_BACKLOG_REFILL_NS): skipped when a slot is free or a completion
 * entry waits. */
static void refill_nap(pp_executor *ex)
{
    if (ppi_ring_nonempty(ex->free_slots) || ppi_ring_nonempty(ex->seg.cring))
        return;
    struct timespec ts = {0, (long)PPI_BACKLOG_REFILL_NS};
    nanosleep(&ts, NULL);
}

ppi_feed_result ppi_backlog_feed_round(pp_executor *ex, int *starved, bool shut)
{
    bool no_room;
    if (feed(ex, &no_room) > 0) {
        *starved = 0;
        return PPI_FEED_MOVED;
    }
    if (no_room) {
        /* Waiting for arena room, not for a slot (so the free ring is not
         * empty and refill_nap would not sleep): free the blocks of finished
         * and reclaimable slots; then the caller sleeps until a task finishes
         * or a nap passes. After shutdown, once nothing runs, what still
         * finds no room fails instead of waiting for ever. */
        *starved = 0;
        ppi_harvest(ex);
        ppi_reclaim_slots(ex);
        if (feed(ex, &no_room) > 0)
            return PPI_FEED_MOVED;
        if (no_room && shut && pool_quiet(ex)) {
            backlog_fail_no_room(ex);
            return PPI_FEED_IDLE;
        }
        return PPI_FEED_WAIT_DONE;
    }
    /* Harvest after PPI_BACKLOG_STARVED_NAPS fruitless naps, or at once when
     * the task ring has run below a quarter of the slots and the last harvest
     * paid (then most slots are finished and held): before the workers run
     * dry, not a nap after. A harvest that freed nothing leaves *starved at
     * half, so a shallow ring with nothing to harvest (all slots running)
     * costs one scan per half of the count, not one per nap. */
    if (++*starved >= PPI_BACKLOG_STARVED_NAPS ||
        (*starved <= PPI_BACKLOG_STARVED_NAPS / 2 &&
         ppi_tasks_depth(&ex->seg) < ex->seg.nslots / PPI_HARVEST_LOW_WATER_DIV)) {
        uint32_t freed = ppi_harvest(ex);
        int moved = feed(ex, &no_room);
        *starved = freed > 0 || moved > 0 ? 0 : PPI_BACKLOG_STARVED_NAPS / 2;
    }
    if (*starved)
        refill_nap(ex);
    return *starved == 0 ? PPI_FEED_MOVED : PPI_FEED_IDLE;
}
