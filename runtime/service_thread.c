/*
 * service_thread.c — the executor's client-side service thread.
 *
 * One thread per executor, started on first need (a submission that goes
 * to the backlog, a done-callback registered on an unfinished future). It
 *   - feeds the backlog into slots as they free up (backlog.c);
 *   - consumes the completion ring (entries of finished slots whose futures
 *     have callbacks) and runs their callbacks (callback.c);
 *   - fails what waits client-side when the pool breaks.
 * It sleeps on the segment's done eventcount, which workers notify after
 * each task, or on ex->service_cv when it has nothing to do; every sleep is
 * bounded. It lives while there is a backlog or a pending callback, and
 * exits after shutdown once both are gone. It holds a reference to the
 * executor until its very end, so a future that outlives
 * pp_executor_destroy never frees the executor under it.
 *
 * Life-cycle fields (service, service_started, service_running, stop_sent)
 * are under ex->lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "process.h"
#include "tunables.h"

/* The executor whose service thread the calling thread is, else NULL.
 * Thread-local: written once by that thread, read only by it. */
static _Thread_local pp_executor *service_of_this_thread;

static void *service_main(void *arg);

int ppi_service_start_locked(pp_executor *ex)
{
    if (ex->service_running)
        return 0;
    if (ex->service_started) /* it left its loop (after shutdown): reap it first */
        pthread_join(ex->service, NULL);
    ex->service_started = 0;
    /* The thread holds a reference to @ex until its very end: a future that
     * outlives pp_executor_destroy can never free the executor under it
     * (executor_free joins or detaches it). relaxed: we hold one already. */
    atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
    int rc = pthread_create(&ex->service, NULL, service_main, ex);
    if (rc) {
        /* relaxed: ours, taken just above; the caller's keeps it above 0. */
        atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_relaxed);
        return -rc;
    }
    ex->service_started = ex->service_running = 1;
    return 0;
}

void ppi_service_start(pp_executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    if (ppi_service_start_locked(ex) != 0)
        fprintf(stderr, "ppool: cannot start the callback thread; callbacks run on the next wait\n");
    pthread_cond_signal(&ex->service_cv);
    pthread_mutex_unlock(&ex->lock);
}

/* Sleep until a worker finishes something (or a bounded nap passes). */
static void service_nap(pp_executor *ex)
{
    ppi_ec *ec = &ex->seg.hdr->done_ec;
    uint32_t seq = ppi_ec_prepare(ec);
    if (ppi_ring_nonempty(ex->seg.cring)) {
        ppi_ec_cancel(ec);
        return;
    }
    ppi_ec_sleep(ec, seq, PPI_SERVICE_NAP_NS);
}

/* The pool broke: fail what waits client-side, and — if the manager is gone
 * too, so nobody else will — the slots that still wait on callbacks. */
static void service_broken(pp_executor *ex)
{
    ppi_backlog_fail_broken(ex);
    if (!ppi_manager_dead(ex))
        return;
    for (uint32_t i = 0; i < ex->seg.nslots; i++)
        ppi_slot_fail_broken(&ex->seg, i, true);
}

/* Nothing to do. Caller holds ex->lock. */
static bool service_idle(pp_executor *ex)
{
    /* relaxed: hints; every sleep below is bounded or signalled. */
    return ppi_backlog_empty(ex) &&
           atomic_load_explicit(&ex->cb_pending, memory_order_relaxed) == 0 &&
           !ppi_ring_nonempty(ex->seg.cring);
}

/* One round of work outside the lock: run finished callbacks, then fail
 * what a broken pool left or feed the backlog, sleeping a bounded nap when
 * there is nothing to move. @napped says whether the last round slept (the
 * full pool check polls the manager's pidfd: only then). */
static void service_round(pp_executor *ex, bool backlog, bool shut, int *starved, bool *napped)
{
    ppi_drain_completions(ex);
    bool broken = *napped ? ppi_pool_check(ex) != 0
                          /* acquire: pairs with ppi_pool_break's release. */
                          : atomic_load_explicit(&ex->seg.hdr->pool_state,
                                                 memory_order_acquire) != PPI_POOL_RUNNING;
    *napped = true;
    if (broken) {
        service_broken(ex);
        ppi_drain_completions(ex);
        pthread_mutex_lock(&ex->lock);
        bool idle = service_idle(ex);
        pthread_mutex_unlock(&ex->lock);
        if (!idle)
            service_nap(ex);
    } else if (backlog) {
        ppi_feed_result r = ppi_backlog_feed_round(ex, starved, shut);
        if (r == PPI_FEED_MOVED)
            *napped = false;
        else if (r == PPI_FEED_WAIT_DONE)
            service_nap(ex);
    } else {
        service_nap(ex);
    }
}

static void *service_main(void *arg)
{
    pp_executor *ex = arg;
    int starved = 0;
    bool napped = true;
    service_of_this_thread = ex;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        /* acquire: pairs with pp_shutdown's store. */
        bool shut = atomic_load_explicit(&ex->shutdown, memory_order_acquire);
        if (shut && ppi_backlog_empty(ex) && !ex->stop_sent) {
            ex->stop_sent = 1; /* the last backlog entry is in: let workers drain */
            ppi_request_stop(ex);
            ppi_svc_notify(ex);
        }
        if (service_idle(ex)) {
            if (shut)
                break; /* nothing more can arrive */
            pthread_cond_wait(&ex->service_cv, &ex->lock);
            continue;
        }
        bool backlog = !ppi_backlog_empty(ex);
        pthread_mutex_unlock(&ex->lock);
        service_round(ex, backlog, shut, &starved, &napped);
        pthread_mutex_lock(&ex->lock);
    }
    ex->service_running = 0;
    pthread_mutex_unlock(&ex->lock);
    ppi_svc_notify(ex);
    ppi_executor_unref(ex); /* may free it (then detaches this thread) */
    return NULL;
}

/* True when the calling thread is @ex's service thread (e.g. inside a done-
 * callback). Lock-free. */
bool ppi_service_is_self(pp_executor *ex)
{
    return service_of_this_thread == ex;
}

void ppi_service_join(pp_executor *ex)
{
    pthread_mutex_lock(&ex->lock);
    pthread_cond_broadcast(&ex->service_cv);
    bool join = ex->service_started && !pthread_equal(pthread_self(), ex->service);
    pthread_t tid = ex->service;
    if (join)
        ex->service_started = 0;
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
 * is bounded (the backlog's refill nap, service_nap).
 */
void ppi_service_serve_backlog(pp_executor *ex)
{
    int starved = 0;
    for (;;) {
        pthread_mutex_lock(&ex->lock);
        bool backlog = !ppi_backlog_empty(ex);
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
            service_broken(ex); /* fails the backlog */
            continue;
        }
        /* called by pp_shutdown: shut down */
        if (ppi_backlog_feed_round(ex, &starved, true) == PPI_FEED_WAIT_DONE)
            service_nap(ex);
    }
}

/* The service thread's callback work, once, for a pp_shutdown(wait=true)
 * called on it that waits for the other callbacks: a bounded sleep unless a
 * completion entry waits, then run the callbacks of finished tasks and fail
 * what a dead pool left. */
void ppi_service_serve_callbacks(pp_executor *ex)
{
    service_nap(ex); /* returns at once if an entry waits */
    ppi_drain_completions(ex);
    if (ppi_pool_check(ex) != 0) {
        service_broken(ex);
        ppi_drain_completions(ex);
    }
}
