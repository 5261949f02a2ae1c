/*
 * shutdown.c — pp_shutdown (Python's Executor.shutdown) and Python 3.14's
 * terminate_workers() / kill_workers().
 *
 * pp_shutdown stops accepting work, optionally cancels everything no worker
 * has started, and with wait=true returns only once the backlog is in,
 * stop was sent to the workers, the manager was reaped and every pending
 * done-callback ran — except the callbacks running on the calling thread
 * (a pp_shutdown inside a callback must not wait for itself). On the
 * executor's service thread it does that thread's work itself
 * (ppi_service_serve_backlog / _callbacks), since nobody else would.
 *
 * Waiters sleep on ex->svc_seq (a private futex bumped by ppi_svc_notify
 * whenever stop_sent, cb_pending or cb_blocked change), each sleep bounded
 * by PPI_SHUTDOWN_NAP_NS.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "client.h"
#include "ext_worker.h"
#include "process.h"
#include "tunables.h"

/* Cancel every task that no worker has started. */
static void cancel_pending(pp_executor *ex)
{
    ppi_backlog_cancel_all(ex, -ECANCELED, "cancelled by shutdown");
    for (uint32_t i = 0; i < ex->seg.nslots; i++)
        ppi_cancel_bound(ex, i);
}

/* Wake the threads waiting in pp_shutdown: call after changing stop_sent,
 * cb_pending or cb_blocked. */
void ppi_svc_notify(pp_executor *ex)
{
    /* seq_cst: our change, this bump, then the load of svc_waiters; a waiter
     * announces itself, then reads svc_seq, then the state (Dekker): either
     * it sees our change, or we see it waiting and wake it (and its futex
     * compare then fails on the new svc_seq). */
    atomic_fetch_add_explicit(&ex->svc_seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ex->svc_waiters, memory_order_seq_cst))
        ppi_futex_wake(&ex->svc_seq, INT_MAX, false);
}

/* Wait until stop was sent to the workers: by the service thread once it has
 * fed the last backlog entry in, or here when there is no service thread
 * (then there is no backlog either: it exists only with a service thread). */
static void wait_stop_sent(pp_executor *ex)
{
    /* seq_cst: see ppi_svc_notify. */
    atomic_fetch_add_explicit(&ex->svc_waiters, 1, memory_order_seq_cst);
    for (;;) {
        /* seq_cst: see ppi_svc_notify. */
        uint32_t seq = atomic_load_explicit(&ex->svc_seq, memory_order_seq_cst);
        pthread_mutex_lock(&ex->lock);
        bool sent = ex->stop_sent;
        if (!sent && !ex->service_running) {
            ex->stop_sent = 1;
            ppi_request_stop(ex);
            sent = true;
        }
        pthread_mutex_unlock(&ex->lock);
        if (sent)
            break;
        ppi_futex_wait(&ex->svc_seq, seq, PPI_SHUTDOWN_NAP_NS, false);
    }
    /* relaxed: only a hint for notifiers; a late one costs a futex_wake. */
    atomic_fetch_sub_explicit(&ex->svc_waiters, 1, memory_order_relaxed);
}

/* Wait until every pending done-callback ran, except those running on
 * threads that wait here themselves (@mine of them on this thread): they
 * finish only after their pp_shutdown returns. On the service thread, do
 * its callback work meanwhile. */
static void wait_callbacks(pp_executor *ex, uint64_t mine)
{
    if (mine) {
        /* seq_cst: read with cb_pending by the other waiters. */
        atomic_fetch_add_explicit(&ex->cb_blocked, mine, memory_order_seq_cst);
        ppi_svc_notify(ex);
    }
    bool self = ppi_service_is_self(ex);
    /* seq_cst: see ppi_svc_notify. */
    atomic_fetch_add_explicit(&ex->svc_waiters, 1, memory_order_seq_cst);
    for (;;) {
        /* seq_cst: see ppi_svc_notify. A blocked waiter's count may be
         * dropped before its callback's: a transient "not yet", re-checked
         * at the next notification. */
        uint32_t seq = atomic_load_explicit(&ex->svc_seq, memory_order_seq_cst);
        uint64_t pending = atomic_load_explicit(&ex->cb_pending, memory_order_seq_cst);
        uint64_t blocked = atomic_load_explicit(&ex->cb_blocked, memory_order_seq_cst);
        if (pending <= blocked)
            break;
        if (self)
            ppi_service_serve_callbacks(ex); /* bounded sleep, then run what finished */
        else
            ppi_futex_wait(&ex->svc_seq, seq, PPI_SHUTDOWN_NAP_NS, false);
    }
    /* relaxed: as in wait_stop_sent. */
    atomic_fetch_sub_explicit(&ex->svc_waiters, 1, memory_order_relaxed);
    if (mine) {
        /* seq_cst: as above. */
        atomic_fetch_sub_explicit(&ex->cb_blocked, mine, memory_order_seq_cst);
        ppi_svc_notify(ex);
    }
}

int pp_shutdown(pp_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    /* seq_cst: pairs with pp_submit's increment of in_submit (Dekker). */
    atomic_store_explicit(&ex->shutdown, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&ex->in_submit, memory_order_seq_cst))
        sched_yield(); /* a submission in flight finishes in microseconds */
    if (cancel_futures) {
        /* seq_cst: pairs with the service thread's fence after each bind: either it sees
         * this and cancels what it just bound, or our sweep sees its slot. */
        atomic_store_explicit(&ex->cancel_req, 1, memory_order_seq_cst);
        /* Sweep before telling running tasks to stop: a task that stops early
         * frees its worker, which must find nothing left to start. */
        cancel_pending(ex);
        /* release: running tasks polling pp_task_should_stop see it. */
        atomic_store_explicit(&ex->seg.hdr->cancel_flag, 1, memory_order_release);
    }
    pthread_mutex_lock(&ex->lock);
    /* The service thread sends stop itself once it has fed the last backlog entry. */
    if (ppi_backlog_empty(ex) && !ex->stop_sent) {
        ex->stop_sent = 1;
        ppi_request_stop(ex);
    }
    pthread_cond_broadcast(&ex->service_cv);
    pthread_mutex_unlock(&ex->lock);
    if (!wait)
        return 0;
    /* Inside a done-callback of @ex the service thread cannot end (the
     * callback counts as pending): do not join it. On the service thread
     * itself, feed the backlog in here. Either way wait for what can finish
     * before the callback returns: every task, the processes, and every
     * other callback. A second concurrent caller waits the same way. */
    uint64_t mine = ppi_cb_running_here(ex);
    if (ppi_service_is_self(ex))
        ppi_service_serve_backlog(ex);
    else if (mine == 0)
        ppi_service_join(ex);
    wait_stop_sent(ex);
    ppi_reap_manager(ex);
    /* acquire: pairs with pp_ext_attach's release (the hooks). */
    const pp_ext_ops *ext = atomic_load_explicit(&ex->ext_ops, memory_order_acquire);
    if (ext)
        ext->drain(ex->ext_ctx); /* tasks external workers took are done */
    wait_callbacks(ex, mine);
    return 0;
}


/* Ask the manager to send @sig to every live worker (after shutdown). */
static int signal_workers(pp_executor *ex, int sig)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    pp_shutdown(ex, false, true);
    if (ppi_manager_dead(ex))
        return 0;
    /* Python's terminate_workers/kill_workers: the pool is unusable after and
     * the running futures fail as broken, whatever the death policy. Breaking
     * first also keeps the manager from replacing the workers it signals. */
    char msg[96];
    snprintf(msg, sizeof msg, "workers %s by pp_%s_workers", sig == SIGKILL ? "killed" : "terminated",
             sig == SIGKILL ? "kill" : "terminate");
    ppi_pool_break(&ex->seg, sig, 0, msg);
    /* release: the manager reads the signal after the eventfd wakes it. */
    atomic_store_explicit(&ex->seg.hdr->kill_signal, sig, memory_order_release);
    ppi_poke_manager(ex);
    return 0;
}

int pp_terminate_workers(pp_executor *ex) { return signal_workers(ex, SIGTERM); }
int pp_kill_workers(pp_executor *ex) { return signal_workers(ex, SIGKILL); }
