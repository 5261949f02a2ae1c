/*
 * callback.c — done-callbacks (pp_future_add_done_callback).
 *
 * Callbacks run in the client process, in registration order, exactly once
 * per registration, in one of three places:
 *   - the registering thread, when the future is already done;
 *   - the thread that completes the future client-side (pp_future_cancel,
 *     pp_shutdown's cancellation, the service thread failing the backlog);
 *   - the executor's service thread (service_thread.c), for tasks finished by a worker
 *     or failed by the manager: the finisher saw PPI_F_NOTIFY in the slot word
 *     and pushed (idx, gen) on the completion ring.
 *
 * While callbacks are pending the runtime holds one reference to the future
 * (so a user may release it early, as in Python) and the slot is not reused
 * before its completion entry has been consumed (notify_owner[idx]).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"

/*
 * The callbacks the calling thread is running, innermost first (a callback
 * may run others: pp_future_cancel inside a callback). pp_shutdown(wait)
 * called inside a callback cannot wait for those: they finish only after it
 * returns. Thread-local: each frame lives on its thread's stack.
 */
typedef struct cb_frame {
    pp_executor *ex;
    bool counted; /* its future is counted in ex->cb_pending */
    struct cb_frame *up;
} cb_frame;
static _Thread_local cb_frame *cb_top;

uint64_t ppi_cb_running_here(pp_executor *ex)
{
    uint64_t n = 0;
    for (cb_frame *fr = cb_top; fr; fr = fr->up)
        n += fr->ex == ex && fr->counted;
    return n;
}

static int run_one(pp_future *f, ppi_cb *cb)
{
    int rc = cb->fn(f, cb->userdata);
    if (rc)
        fprintf(stderr, "ppool: exception calling callback for future %p (slot %u): %d (%s)\n",
                (void *)f, f->idx, rc, pp_strerror(rc));
    return rc;
}

/* Run @f's callbacks if it is done and they have not run. Any client thread;
 * must not hold a slot lock or the executor lock. */
void ppi_fire_callbacks(pp_future *f)
{
    pp_executor *ex = f->ex;
    pthread_mutex_lock(&ex->cb_lock);
    struct cds_list_head list;
    CDS_INIT_LIST_HEAD(&list);
    bool counted = !f->cb_fired && !cds_list_empty(&f->cbs);
    if (counted) {
        cds_list_splice(&f->cbs, &list); /* take them all, in order */
        CDS_INIT_LIST_HEAD(&f->cbs);
        f->cb_fired = 1;
    }
    pthread_mutex_unlock(&ex->cb_lock);
    cb_frame fr = {ex, counted, cb_top};
    cb_top = &fr;
    struct cds_list_head *pos, *next; /* node by node: see backlog.c */
    cds_list_for_each_safe(pos, next, &list) {
        ppi_cb *cb = cds_list_entry(pos, ppi_cb, node);
        run_one(f, cb);
        free(cb);
    }
    cb_top = fr.up;
    if (counted) {
        /* seq_cst: read by pp_shutdown's waiters together with cb_blocked;
         * the service thread polls it on bounded sleeps. */
        atomic_fetch_sub_explicit(&ex->cb_pending, 1, memory_order_seq_cst);
        ppi_svc_notify(ex);
        pp_future_release(f); /* the reference taken at registration */
    }
}

/* Set PPI_F_NOTIFY on @f's slot. Returns false if the slot already finished
 * (the caller then fires the callbacks itself). Caller holds the slot lock. */
static bool arm_slot(pp_executor *ex, pp_future *f)
{
    if (ex->notify_owner[f->idx] == f)
        return true; /* bound with NOTIFY: its entry will reach the service thread */
    if (ex->slot_owner[f->idx] != f)
        return false; /* detached without NOTIFY: done */
    ppi_slot *sl = ppi_slot_at(&ex->seg, f->idx);
    /* relaxed: the CAS validates. */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
    for (;;) {
        uint32_t st = ppi_st_state(w);
        if (ppi_st_gen(w) != f->gen || (st != PPI_S_QUEUED && st != PPI_S_RUNNING))
            return false;
        if (ppi_st_flags(w) & PPI_F_NOTIFY)
            break;
        uint64_t nw = w | ((uint64_t)PPI_F_NOTIFY << 8);
        /* release: notify_owner (client-private) needs no ordering; the
         * finisher only reads the flag from the word it replaces. */
        if (atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    ex->notify_owner[f->idx] = f;
    return true;
}

int pp_future_add_done_callback(pp_future *f, pp_callback fn, void *userdata)
{
    if (!f || !fn)
        return -EINVAL;
    pp_executor *ex = f->ex;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    ppi_cb *cb = malloc(sizeof *cb);
    if (!cb)
        return -ENOMEM;
    cb->fn = fn;
    cb->userdata = userdata;
    pthread_mutex_lock(&ex->cb_lock);
    if (f->cb_fired) {
        pthread_mutex_unlock(&ex->cb_lock);
        cb_frame fr = {ex, false, cb_top};
        cb_top = &fr;
        run_one(f, cb); /* already done: run now, in the caller */
        cb_top = fr.up;
        free(cb);
        return 0;
    }
    bool first = cds_list_empty(&f->cbs);
    cds_list_add_tail(&cb->node, &f->cbs); /* O(1): registration order */
    if (first) {
        pp_future_ref(f); /* held until the callbacks ran */
        /* relaxed: a count the service thread polls. */
        atomic_fetch_add_explicit(&ex->cb_pending, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ex->cb_lock);
    if (!first)
        return 0;
    /* Arrange to be told when it finishes, unless it already did. */
    /* release: pairs with ppi_bind's acquire (a backlog entry bound later
     * gets PPI_F_NOTIFY). */
    atomic_store_explicit(&f->want_notify, 1, memory_order_seq_cst);
    bool armed = false;
    /* seq_cst: read after publishing want_notify, so a concurrent bind either
     * saw want_notify or is visible to us here as SLOT. */
    uint32_t c = atomic_load_explicit(&f->cstate, memory_order_seq_cst);
    if (ppi_in_backlog(c)) {
        armed = true; /* the bind (or the backlog's completion) takes it from here */
    } else if (c == PPI_F_SLOT || f->gen != 0) { /* bound once (gen starts at 1) */
        ppi_slot_lock(ex, f->idx);
        armed = arm_slot(ex, f);
        ppi_slot_unlock(ex, f->idx);
    }
    /* Only a future still to finish needs the service thread: a done one
     * (e.g. after pp_executor_destroy) runs its callbacks here, and never
     * restarts the service thread of a finished executor. Started after
     * arming: a completion entry pushed meanwhile waits on the ring for it. */
    if (armed)
        ppi_service_start(ex);
    else
        ppi_fire_callbacks(f);
    return 0;
}

/* Service thread: consume completion entries and run their callbacks. */
void ppi_drain_completions(pp_executor *ex)
{
    uint64_t e;
    while (ppi_ring_pop(ex->seg.cring, &e)) {
        uint32_t idx = ppi_entry_idx(e), gen = ppi_entry_gen(e);
        ppi_slot_lock(ex, idx);
        pp_future *f = ex->notify_owner[idx];
        bool release = false;
        if (f && f->gen == gen) {
            ex->notify_owner[idx] = NULL;
            if (ex->slot_owner[idx] == f) {
                release = ppi_detach_locked(ex, f);
            } else {
                ppi_free_slot_word(ex, idx, gen); /* detached earlier, kept for us */
                release = true;
            }
        } else {
            f = NULL;
        }
        ppi_slot_unlock(ex, idx);
        if (release)
            ppi_release_slot(ex, idx);
        if (f)
            ppi_fire_callbacks(f);
    }
}
