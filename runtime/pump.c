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

static void *pump_main(void *arg);

/* Remove and return the backlog head, or NULL. Caller holds ex->lock. */
static pp_future *backlog_pop(pp_executor *ex)
{
    pp_future *f = ex->bl_head;
    if (f) {
        ex->bl_head = f->next;
        if (!ex->bl_head)
            ex->bl_tail = NULL;
        f->next = NULL;
        /* relaxed: a hint for submitters; the list itself is under the lock. */
        atomic_fetch_sub_explicit(&ex->bl_count, 1, memory_order_relaxed);
    }
    return f;
}

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

int ppi_backlog_add(pp_executor *ex, pp_future *f, pp_fn fn, const void *arg, size_t arg_size)
{
    if (arg_size) {
        f->arg = malloc(arg_size);
        if (!f->arg)
            return -ENOMEM;
        memcpy(f->arg, arg, arg_size);
    }
    f->fn = fn;
    f->arg_size = arg_size;
    pp_future_ref(f); /* the backlog's reference */
    pthread_mutex_lock(&ex->lock);
    if (!ex->pump_started) {
        int rc = pthread_create(&ex->pump, NULL, pump_main, ex);
        if (rc) {
            pthread_mutex_unlock(&ex->lock);
            free(f->arg);
            f->arg = NULL;
            pp_future_release(f);
            return -rc;
        }
        ex->pump_started = 1;
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
    pthread_mutex_unlock(&ex->lock);
    if (found) {
        ppi_future_finish(f, -ECANCELED, NULL);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f); /* the backlog's reference */
    }
    return found;
}

/* Complete every backlog entry with @err (cancel, broken pool). */
void ppi_backlog_cancel_all(pp_executor *ex, int err, const char *msg)
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
        ppi_future_finish(f, err, msg);
        if (err == -ECANCELED)
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&ex->cancelled, 1, memory_order_relaxed);
        pp_future_release(f);
    }
}

/* Move backlog entries into slots while slots are free. Returns how many. */
static int feed(pp_executor *ex)
{
    int moved = 0;
    for (;;) {
        uint32_t idx;
        if (ppi_acquire_slot(ex, &idx) != 0)
            return moved;
        pthread_mutex_lock(&ex->lock);
        pp_future *f = backlog_pop(ex);
        pthread_mutex_unlock(&ex->lock);
        if (!f) {
            ppi_release_slot(ex, idx);
            return moved;
        }
        if (ppi_bind(ex, f, idx, f->fn, f->arg, f->arg_size) != 0) {
            pthread_mutex_lock(&ex->lock); /* no arena room: retry later */
            backlog_push_front(ex, f);
            pthread_mutex_unlock(&ex->lock);
            return moved;
        }
        free(f->arg);
        f->arg = NULL;
        /* The waiters that slept on cstate while in the backlog. */
        ppi_futex_wake(&f->cstate, INT_MAX, false);
        pp_future_release(f); /* the backlog's reference */
        moved++;
    }
}

/* Sleep until a worker finishes something (or a bounded nap passes). */
static void pump_nap(pp_executor *ex)
{
    ppi_ec *ec = &ex->seg.hdr->done_ec;
    uint32_t seq = ppi_ec_prepare(ec);
    /* acquire: pairs with the workers' release increments. */
    if (ppi_ring_nonempty(ex->free_slots) ||
        atomic_load_explicit(&ex->seg.hdr->reclaim, memory_order_acquire)) {
        ppi_ec_cancel(ec);
        return;
    }
    ppi_ec_sleep(ec, seq, PUMP_NAP_NS);
}

static void *pump_main(void *arg)
{
    pp_executor *ex = arg;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        while (!ex->bl_head && !ex->pump_quit) {
            /* acquire: pairs with pp_shutdown's store. */
            if (atomic_load_explicit(&ex->shutdown, memory_order_acquire) && !ex->stop_sent) {
                ex->stop_sent = 1; /* the last backlog entry is in: let workers drain */
                ppi_request_stop(ex);
            }
            if (atomic_load_explicit(&ex->shutdown, memory_order_acquire))
                goto out; /* nothing more can arrive */
            pthread_cond_wait(&ex->pump_cv, &ex->lock);
        }
        if (ex->pump_quit && !ex->bl_head)
            break;
        pthread_mutex_unlock(&ex->lock);
        if (ppi_pool_check(ex) != 0) {
            ppi_backlog_cancel_all(ex, PP_EBROKEN, "the pool is broken");
        } else if (feed(ex) == 0) {
            ppi_harvest(ex);
            if (feed(ex) == 0)
                pump_nap(ex);
        }
        pthread_mutex_lock(&ex->lock);
    }
out:
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

void ppi_pump_join(pp_executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    int started = ex->pump_started;
    pthread_cond_broadcast(&ex->pump_cv);
    pthread_mutex_unlock(&ex->lock);
    if (started && !pthread_equal(pthread_self(), ex->pump)) {
        /* The pump exits by itself once shutdown is set and the backlog is
         * empty (fed, cancelled or failed). Join once. */
        static pthread_mutex_t join_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&join_lock);
        pthread_mutex_lock(&ex->lock);
        int joinable = ex->pump_started == 1;
        if (joinable)
            ex->pump_started = 2;
        pthread_mutex_unlock(&ex->lock);
        if (joinable)
            pthread_join(ex->pump, NULL);
        pthread_mutex_unlock(&join_lock);
    }
}
