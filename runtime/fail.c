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

#include "client.h"
#include "ppool.h"
#include "process.h"

static bool slot_fail(ppi_seg *seg, uint32_t idx, unsigned accept, int worker, int err, int code,
                      pid_t pid, bool pid_of_runner, const char *msg);

bool ppi_pool_break(ppi_seg *seg, int code, pid_t pid, const char *msg)
{
    ppi_hdr *h = seg->hdr;
    int32_t zero = 0;
    /* acq_rel: the first breaker (CAS winner on broken_err) alone writes the
     * cause fields. The claim is not on broken_pid: a break that no process
     * caused (pp_terminate_workers) has pid 0, which futures report as is. */
    if (!atomic_compare_exchange_strong_explicit(&h->broken_err, &zero, PP_EBROKEN,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    /* relaxed: published by the release store of pool_state below. */
    atomic_store_explicit(&h->broken_pid, pid > 0 ? pid : 0, memory_order_relaxed);
    atomic_store_explicit(&h->broken_code, code, memory_order_relaxed); /* relaxed: as above */
    snprintf(h->broken_msg, sizeof h->broken_msg, "%s", msg);
    /* release: the cause fields are visible to whoever acquires BROKEN. */
    atomic_store_explicit(&h->pool_state, PPI_POOL_BROKEN, memory_order_release);
    /* Wake every class of sleeper: workers, the client's service thread and waiters in
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
    return slot_fail(seg, idx, accept, worker, err, code, pid, false, msg);
}

/* ppi_slot_fail; @pid_of_runner: report the pid of the worker that held the
 * slot (0 if none had started it) instead of @pid. */
static bool slot_fail(ppi_seg *seg, uint32_t idx, unsigned accept, int worker, int err, int code,
                      pid_t pid, bool pid_of_runner, const char *msg)
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
    if (pid_of_runner) {
        uint32_t wk = ppi_st_worker(w), st = ppi_st_state(w);
        /* acquire: pairs with the manager's release store of the pid. */
        pid = (st == PPI_S_RUNNING || st == PPI_S_KILLING) && wk < seg->hdr->nworkers
                  ? atomic_load_explicit(&seg->workers[wk].pid, memory_order_acquire)
                  : 0;
        if (pid < 0)
            pid = 0;
    }
    sl->err = err;
    sl->code = code;
    sl->pid = pid;
    int n = snprintf(ppi_slot_res_inline(seg, sl), PP_MESSAGE_MAX + 1, "%s", msg);
    sl->msg_len = n < 0 ? 0 : n > PP_MESSAGE_MAX ? PP_MESSAGE_MAX : (uint32_t)n;
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
    /* Statistics: no worker counted this task (killed ones have their own
     * counter, bumped by the manager). relaxed: a counter. */
    if (err != PP_EKILLED)
        atomic_fetch_add_explicit(&seg->hdr->swept, 1, memory_order_relaxed);
    return true;
}

bool ppi_slot_fail_broken(ppi_seg *seg, uint32_t idx, bool running)
{
    ppi_hdr *h = seg->hdr;
    unsigned accept = 1u << PPI_S_QUEUED;
    if (running)
        accept |= (1u << PPI_S_RUNNING) | (1u << PPI_S_KILLING);
    /* relaxed: published by pool_state's release, which the caller acquired. */
    pid_t pid = atomic_load_explicit(&h->broken_pid, memory_order_relaxed);
    /* A break no worker's death caused (terminate/kill workers, the manager's
     * death): each future names the worker that ran it, or 0. */
    return slot_fail(seg, idx, accept, -1, PP_EBROKEN,
                     atomic_load_explicit(&h->broken_code, memory_order_relaxed), pid,
                     pid <= 0, h->broken_msg);
}

int ppi_public_code(int err, int code, pp_code_kind *how)
{
    if (err == PP_ETASK) {
        *how = PP_CODE_TASK;
        return code;
    }
    if (err == PP_EWORKER || err == PP_EBROKEN || err == PP_EKILLED) {
        if (code > 0) {
            *how = PP_CODE_SIGNAL;
            return code;
        }
        if (code <= PPI_CODE_EXIT_BASE && code >= PPI_CODE_EXIT_BASE - 255) {
            *how = PP_CODE_EXIT;
            return code - PPI_CODE_EXIT_BASE; /* -status */
        }
    }
    *how = PP_CODE_NONE;
    return code;
}

int pp_executor_broken_cause(pp_executor *ex, pp_exception *out)
{
    if (!ex || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->message = "";
    if (ppi_pool_check(ex) == 0)
        return 0;
    ppi_hdr *h = ex->seg.hdr;
    /* acquire: pairs with ppi_pool_break's release of pool_state (the cause
     * fields were written before it); ppi_pool_check saw it BROKEN. */
    (void)atomic_load_explicit(&h->pool_state, memory_order_acquire);
    out->error = PP_EBROKEN;
    /* relaxed: published by the acquire above. */
    out->code = ppi_public_code(PP_EBROKEN,
                                atomic_load_explicit(&h->broken_code, memory_order_relaxed),
                                &out->how);
    out->pid = atomic_load_explicit(&h->broken_pid, memory_order_relaxed); /* relaxed: as above */
    out->message = h->broken_msg;
    return 0;
}
