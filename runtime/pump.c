/*
 * pump.c — the client-side backlog and the thread that feeds it in.
 *
 * pp_submit never blocks: when no slot is free it copies the call into a
 * backlog entry (the future itself, holding its argument) and returns. The
 * pump thread, started on first need, moves entries into slots in FIFO order
 * as slots free up. While the backlog is non-empty it also "harvests":
 * finished slots whose futures the user still holds are detached (their
 * outcome copied into the future) so that a user holding many futures never
 * starves the backlog. It sleeps on the segment's done eventcount, which
 * workers notify after each task, with a bounded timeout.
 *
 * The same thread is the executor's *service thread* for done-callbacks: it
 * consumes the completion ring (entries of finished slots whose futures have
 * callbacks) and runs them (callback.c). It lives while there is a backlog or
 * a pending callback, and exits after shutdown once both are gone.
 *
 * The backlog holds one reference to each of its futures, dropped once the
 * future is bound to a slot or completed (cancelled, pool broken).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "process.h"

#define PUMP_NAP_NS 20000000ull
/* While a backlog waits for slots the pump polls the free ring every
 * REFILL_NS instead of being woken per freed slot: a ring of thousands of
 * queued tasks lasts far longer, and nobody pays a wake-up per task. */
#define REFILL_NS 100000ull
/* After this many naps without a free slot, harvest finished slots whose
 * futures the user still holds (an O(slots) scan). */
#define STARVED_NAPS 20

/* The executor whose service thread the calling thread is, else NULL.
 * Thread-local: written once by that thread, read only by it. */
static _Thread_local pp_executor *pump_of_this_thread;

static void *pump_main(void *arg);
static void backlog_complete_all(pp_executor *ex, int err, int code, pid_t pid, const char *msg);

/* Put @f back at the head (it found no slot). Caller holds ex->lock. */
static void backlog_push_front(pp_executor *ex, pp_future *f)
{
    f->next = ex->bl_head;
    ex->bl_head = f;
    if (!ex->bl_tail)
        ex->bl_tail = f;
    /* relaxed: a hint, as above. */
    atomic_fetch_add_explicit(&ex->bl_count, 1, memory_order_relaxed);
}

/* Start the service thread if it is not running. Caller holds ex->lock. */
static int service_start_locked(pp_executor *ex)
{
    if (ex->pump_running)
        return 0;
    if (ex->pump_started) /* it left its loop (after shutdown): reap it first */
        pthread_join(ex->pump, NULL);
    ex->pump_started = 0;
    /* The thread holds a reference to @ex until its very end: a future that
     * outlives pp_executor_destroy can never free the executor under it
     * (executor_free joins or detaches it). relaxed: we hold one already. */
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
    int rc = pthread_create(&ex->pump, NULL, pump_main, ex);
    if (rc) {
        /* relaxed: ours, taken just above; the caller's keeps it above 0. */
        atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_relaxed);
        return -rc;
    }
    ex->pump_started = ex->pump_running = 1;
    return 0;
}

void ppi_service_start(pp_executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    if (service_start_locked(ex) != 0)
        fprintf(stderr, "ppool: cannot start the callback thread; callbacks run on the next wait\n");
    pthread_cond_signal(&ex->pump_cv);
    pthread_mutex_unlock(&ex->lock);
}

int ppi_backlog_add(pp_executor *ex, pp_future *f, const void *arg, size_t arg_size)
{
    if (arg_size) {
        f->arg = malloc(arg_size);
        if (!f->arg)
            return -ENOMEM;
        memcpy(f->arg, arg, arg_size);
    }
    f->arg_size = arg_size;
    pp_future_ref(f); /* the backlog's reference */
    pthread_mutex_lock(&ex->lock);
    int rc = service_start_locked(ex);
    if (rc) {
        pthread_mutex_unlock(&ex->lock);
        free(f->arg);
        f->arg = NULL;
        pp_future_release(f);
        return rc;
    }
    if (ex->bl_tail)
        ex->bl_tail->next = f;
    else
        ex->bl_head = f;
    ex->bl_tail = f;
    /* relaxed: a hint; the list is under the lock. */
    atomic_fetch_add_explicit(&ex->bl_count, 1, memory_order_relaxed);
    pthread_cond_signal(&ex->pump_cv);
    pthread_mutex_unlock(&ex->lock);
    return 0;
}

/* Cancel @f if it is still in the backlog. Returns true if it was. */
bool ppi_backlog_cancel(pp_executor *ex, pp_future *f)
{
    pthread_mutex_lock(&ex->lock);
    pp_future **pp = &ex->bl_head, *prev = NULL;
    while (*pp && *pp != f) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    bool found = *pp == f;
    if (found) {
        *pp = f->next;
        if (ex->bl_tail == f)
            ex->bl_tail = prev;
        f->next = NULL;
        /* relaxed: a hint. */
        atomic_fetch_sub_explicit(&ex->bl_count, 1, memory_order_relaxed);
    }
    uint32_t was = 0;
    if (found) /* complete it under the lock: a racing canceller that does not
                  find it on the list then sees it DONE */
        was = ppi_future_complete(f, -ECANCELED, NULL);
    pthread_mutex_unlock(&ex->lock);
    if (found) {
        ppi_future_completed(f, was);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f); /* the backlog's reference */
    }
    return found;
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

static void backlog_complete_all(pp_executor *ex, int err, int code, pid_t pid, const char *msg)
{
    pthread_mutex_lock(&ex->lock);
    pp_future *list = ex->bl_head;
    ex->bl_head = ex->bl_tail = NULL;
    /* relaxed: a hint. */
    atomic_store_explicit(&ex->bl_count, 0, memory_order_relaxed);
    pthread_mutex_unlock(&ex->lock);
    while (list) {
        pp_future *f = list;
        list = f->next;
        f->next = NULL;
        f->code = code;
        f->pid = pid > 0 ? pid : 0;
        ppi_future_finish(f, err, msg);
        if (err == -ECANCELED)
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f);
    }
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
    pp_future *prev = NULL;
    for (pp_future *f = ex->bl_head; f; prev = f, f = f->next) {
        if (f->arg_size > ex->seg.inline_size) {
            uint64_t off = f->arg_size < failed ? ppi_arena_alloc(&ex->seg, f->arg_size) : 0;
            if (!off) {
                failed = f->arg_size < failed ? f->arg_size : failed;
                *no_room = true;
                continue;
            }
            f->arg_off = off;
        }
        if (prev)
            prev->next = f->next;
        else
            ex->bl_head = f->next;
        if (ex->bl_tail == f)
            ex->bl_tail = prev;
        f->next = NULL;
        /* relaxed: a hint for submitters; the list itself is under the lock. */
        atomic_fetch_sub_explicit(&ex->bl_count, 1, memory_order_relaxed);
        return f;
    }
    return NULL;
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
    pp_future *fail = NULL;
    pthread_mutex_lock(&ex->lock);
    pp_future **pp = &ex->bl_head, *prev = NULL;
    while (*pp) {
        pp_future *f = *pp;
        if (f->arg_size <= ex->seg.inline_size) {
            prev = f;
            pp = &f->next;
            continue;
        }
        *pp = f->next;
        if (ex->bl_tail == f)
            ex->bl_tail = prev;
        /* relaxed: a hint, as above. */
        atomic_fetch_sub_explicit(&ex->bl_count, 1, memory_order_relaxed);
        f->next = fail;
        fail = f;
    }
    pthread_mutex_unlock(&ex->lock);
    while (fail) {
        pp_future *f = fail;
        fail = f->next;
        f->next = NULL;
        ppi_future_finish(f, -ENOMEM, "no room in the shared arena for the argument at shutdown");
        pp_future_release(f); /* the backlog's reference */
    }
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
        pthread_mutex_lock(&ex->lock);
        pp_future *f = backlog_take(ex, no_room);
        pthread_mutex_unlock(&ex->lock);
        if (!f) {
            ppi_free_ring_push(ex, idx);
            return moved;
        }
        if (ppi_bind(ex, f, idx, f->arg, f->arg_size) != 0) {
            /* Cannot happen (the block was reserved); keep the entry. Under
             * the lock, after a shutdown(cancel_futures) has emptied the
             * backlog, it is cancelled rather than put back. */
            pthread_mutex_lock(&ex->lock);
            /* relaxed: ordered by the lock (pp_shutdown stores cancel_req
             * before its cancel sweep takes the lock). */
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
            return moved;
        }
        free(f->arg);
        f->arg = NULL;
        /* seq_cst: pairs with pp_shutdown's store of cancel_req (see there). */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&ex->cancel_req, memory_order_relaxed))
            ppi_cancel_bound(ex, idx);
        pp_future_release(f); /* the backlog's reference */
        moved++;
    }
}

/* Sleep until a worker finishes something (or a bounded nap passes). */
static void pump_nap(pp_executor *ex)
{
    ppi_ec *ec = &ex->seg.hdr->done_ec;
    uint32_t seq = ppi_ec_prepare(ec);
    if (ppi_ring_nonempty(ex->seg.cring)) {
        ppi_ec_cancel(ec);
        return;
    }
    ppi_ec_sleep(ec, seq, PUMP_NAP_NS);
}

/* Short timed nap while the backlog waits for slots (see REFILL_NS). */
static void refill_nap(pp_executor *ex)
{
    if (ppi_ring_nonempty(ex->free_slots) || ppi_ring_nonempty(ex->seg.cring))
        return;
    struct timespec ts = {0, (long)REFILL_NS};
    nanosleep(&ts, NULL);
}

/* The pool broke: fail what waits client-side, and — if the manager is gone
 * too, so nobody else will — the slots that still wait on callbacks. */
static void pump_broken(pp_executor *ex)
{
    ppi_backlog_fail_broken(ex);
    if (!ppi_manager_dead(ex))
        return;
    for (uint32_t i = 0; i < ex->seg.nslots; i++)
        ppi_slot_fail_broken(&ex->seg, i, true);
}

static bool service_idle(pp_executor *ex)
{
    /* relaxed: hints; every sleep below is bounded or signalled. */
    return !ex->bl_head && atomic_load_explicit(&ex->cb_pending, memory_order_relaxed) == 0 &&
           !ppi_ring_nonempty(ex->seg.cring);
}

/* One round of feeding the backlog (the service thread's loop, and a
 * pp_shutdown(wait) called on that thread): move entries into free slots;
 * when none moved, free what finished and sleep a bounded nap. @starved
 * counts rounds without a free slot across calls. Returns true when entries
 * moved (the caller loops again without sleeping). */
static bool feed_round(pp_executor *ex, int *starved, bool shut)
{
    bool no_room;
    if (feed(ex, &no_room) > 0) {
        *starved = 0;
        return true;
    }
    if (no_room) {
        /* Waiting for arena room, not for a slot (so the free ring is not
         * empty and refill_nap would not sleep): free the blocks of finished
         * and reclaimable slots, then sleep until a task finishes or a nap
         * passes. After shutdown, once nothing runs, what still finds no room
         * fails instead of waiting for ever. */
        *starved = 0;
        ppi_harvest(ex);
        ppi_reclaim_slots(ex);
        if (feed(ex, &no_room) > 0)
            return true;
        if (no_room && shut && pool_quiet(ex))
            backlog_fail_no_room(ex);
        else
            pump_nap(ex);
        return false;
    }
    if (++*starved >= STARVED_NAPS) {
        ppi_harvest(ex);
        *starved = feed(ex, &no_room) > 0 ? 0 : STARVED_NAPS / 2;
    }
    if (*starved)
        refill_nap(ex);
    return *starved == 0;
}

static void *pump_main(void *arg)
{
    pp_executor *ex = arg;
    int starved = 0;
    bool napped = true;
    pump_of_this_thread = ex;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        /* acquire: pairs with pp_shutdown's store. */
        bool shut = atomic_load_explicit(&ex->shutdown, memory_order_acquire);
        if (shut && !ex->bl_head && !ex->stop_sent) {
            ex->stop_sent = 1; /* the last backlog entry is in: let workers drain */
            ppi_request_stop(ex);
            ppi_svc_notify(ex);
        }
        if (service_idle(ex)) {
            if (shut)
                break; /* nothing more can arrive */
            pthread_cond_wait(&ex->pump_cv, &ex->lock);
            continue;
        }
        bool backlog = ex->bl_head != NULL;
        pthread_mutex_unlock(&ex->lock);
        ppi_drain_completions(ex);
        /* The full check polls the manager's pidfd: do it after naps only. */
        bool broken = napped ? ppi_pool_check(ex) != 0
                             /* acquire: pairs with ppi_pool_break's release. */
                             : atomic_load_explicit(&ex->seg.hdr->pool_state,
                                                    memory_order_acquire) != PPI_POOL_RUNNING;
        napped = true;
        if (broken) {
            pump_broken(ex);
            ppi_drain_completions(ex);
            if (!service_idle(ex))
                pump_nap(ex);
        } else if (backlog) {
            if (feed_round(ex, &starved, shut))
                napped = false;
        } else {
            pump_nap(ex);
        }
        pthread_mutex_lock(&ex->lock);
    }
    ex->pump_running = 0;
    pthread_mutex_unlock(&ex->lock);
    ppi_svc_notify(ex);
    ppi_executor_unref(ex); /* may free it (then detaches this thread) */
    return NULL;
}

/* True when the calling thread is @ex's service thread (e.g. inside a done-
 * callback). Lock-free. */
bool ppi_pump_is_self(pp_executor *ex)
{
    return pump_of_this_thread == ex;
}

void ppi_pump_join(pp_executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    pthread_cond_broadcast(&ex->pump_cv);
    bool join = ex->pump_started && !pthread_equal(pthread_self(), ex->pump);
    pthread_t tid = ex->pump;
    if (join)
        ex->pump_started = 0;
    pthread_mutex_unlock(&ex->lock);
    /* It leaves its loop by itself once shutdown is set and neither a backlog
     * nor a pending callback remains. */
    if (join)
        pthread_join(tid, NULL);
}

/*
 * pp_shutdown(wait=true) called on the service thread (inside a done-
 * callback): nobody else feeds the backlog, so the caller does the service
 * thread's work here until the backlog is in and stop is sent. Other
 * callbacks may run here meanwhile (nested in the calling one). Every sleep
 * is bounded (refill_nap, pump_nap).
 */
void ppi_pump_serve_backlog(pp_executor *ex)
{
    int starved = 0;
    for (;;) {
        pthread_mutex_lock(&ex->lock);
        bool backlog = ex->bl_head != NULL;
        if (!backlog && !ex->stop_sent) {
            ex->stop_sent = 1; /* the last backlog entry is in: let workers drain */
            ppi_request_stop(ex);
        }
        pthread_mutex_unlock(&ex->lock);
        if (!backlog) {
            ppi_svc_notify(ex);
            return;
        }
        ppi_drain_completions(ex);
        if (ppi_pool_check(ex) != 0) {
            pump_broken(ex); /* fails the backlog */
            continue;
        }
        feed_round(ex, &starved, true); /* called by pp_shutdown: shut down */
    }
}

/* The service thread's callback work, once, for a pp_shutdown(wait=true)
 * called on it that waits for the other callbacks: a bounded sleep unless a
 * completion entry waits, then run the callbacks of finished tasks and fail
 * what a dead pool left. */
void ppi_pump_serve_callbacks(pp_executor *ex)
{
    pump_nap(ex); /* returns at once if an entry waits */
    ppi_drain_completions(ex);
    if (ppi_pool_check(ex) != 0) {
        pump_broken(ex);
        ppi_drain_completions(ex);
    }
}
