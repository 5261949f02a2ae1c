/*
 * wait.c — waiting on many futures, possibly of several executors:
 * pp_wait (Python's concurrent.futures.wait) and the as_completed iterator.
 *
 * Completion is observed per future (pp_future_done); sleeping happens on the
 * done eventcount of every distinct executor involved at once, with
 * futex_waitv (Linux 5.16+), so a completion in any of them wakes the waiter.
 * Workers notify that eventcount after every task; client-side completions
 * (cancel, backlog failure) and the manager's broken-pool sweep notify it too.
 * Without futex_waitv the waiter naps 1 ms at a time instead. Every sleep is
 * bounded (50 ms) so a broken pool is noticed.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "tunables.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#define PPI_FUTEX_32 2u
#define MAX_EXECS 128 /* futex_waitv's limit */

struct ppi_futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

/* Distinct non-NULL futures of @fs into @out, in first-seen order.
 * Returns their number, or -ENOMEM. */
static long dedupe(pp_future *const *fs, size_t n, pp_future **out)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    uintptr_t *set = calloc(cap, sizeof *set);
    if (!set)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t p = (uintptr_t)fs[i];
        if (!p)
            continue;
        size_t h = (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull) & (cap - 1);
        while (set[h] && set[h] != p)
            h = (h + 1) & (cap - 1);
        if (!set[h]) {
            set[h] = p;
            out[m++] = fs[i];
        }
    }
    free(set);
    return (long)m;
}

/* A future is done and failed (not cancelled): for FIRST_EXCEPTION. */
static bool failed(pp_future *f)
{
    /* acquire: pairs with the release stores of cstate. */
    if (atomic_load_explicit(&f->cstate, memory_order_acquire) == PPI_F_DONE)
        return f->err != 0 && f->err != -ECANCELED;
    /* acquire: pairs with the finisher's release. */
    uint64_t w = atomic_load_explicit(&ppi_slot_at(&f->ex->seg, f->idx)->state,
                                      memory_order_acquire);
    return ppi_st_gen(w) == f->gen && ppi_st_state(w) == PPI_S_FAILED;
}

/* Sleep until something may have finished in any executor of @fs (or a
 * bounded nap). @ready re-checks the caller's condition after the waiters are
 * announced, closing the lost-wake-up window. */
static void sleep_on_executors(pp_future *const *fs, size_t n, uint64_t deadline,
                               bool (*ready)(void *), void *arg)
{
    pp_executor *ex[MAX_EXECS];
    struct ppi_futex_waitv wv[MAX_EXECS];
    size_t ne = 0;
    bool overflow = false;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < ne && ex[j] != fs[i]->ex)
            j++;
        if (j < ne)
            continue;
        if (ne == MAX_EXECS) {
            overflow = true;
            break;
        }
        ex[ne++] = fs[i]->ex;
    }
    for (size_t j = 0; j < ne; j++) {
        ppi_ec *ec = &ex[j]->seg.hdr->done_ec;
        wv[j] = (struct ppi_futex_waitv){.val = ppi_ec_prepare(ec),
                                         .uaddr = (uint64_t)(uintptr_t)&ec->seq,
                                         .flags = PPI_FUTEX_32};
    }
    if (!ready(arg)) {
        uint64_t left = ppi_remaining(deadline, overflow ? PPI_WAIT_POLL_NS : PPI_WAIT_NAP_NS);
        struct timespec abs;
        clock_gettime(CLOCK_MONOTONIC, &abs);
        abs.tv_sec += (time_t)(left / PPI_NSEC);
        abs.tv_nsec += (long)(left % PPI_NSEC);
        if (abs.tv_nsec >= (long)PPI_NSEC) {
            abs.tv_sec++;
            abs.tv_nsec -= (long)PPI_NSEC;
        }
        long rc = left ? syscall(SYS_futex_waitv, wv, ne, 0, &abs, CLOCK_MONOTONIC) : 0;
        if (rc < 0 && errno == ENOSYS) { /* old kernel: short naps */
            struct timespec nap = {0, (long)(left < PPI_WAIT_POLL_NS ? left : PPI_WAIT_POLL_NS)};
            nanosleep(&nap, NULL);
        }
    }
    for (size_t j = 0; j < ne; j++)
        ppi_ec_cancel(&ex[j]->seg.hdr->done_ec);
    for (size_t j = 0; j < ne; j++)
        ppi_pool_check(ex[j]); /* notices a dead manager after a quiet nap */
}

typedef struct wait_state {
    pp_future **u;
    size_t nu;
    pp_return_when when;
    size_t ndone;
} wait_state;

static bool wait_satisfied(void *arg)
{
    wait_state *w = arg;
    size_t ndone = 0;
    bool any_failed = false;
    for (size_t i = 0; i < w->nu; i++)
        if (pp_future_done(w->u[i])) {
            ndone++;
            if (w->when == PP_FIRST_EXCEPTION && !any_failed)
                any_failed = failed(w->u[i]);
        }
    w->ndone = ndone;
    if (ndone == w->nu)
        return true;
    if (w->when == PP_FIRST_COMPLETED)
        return ndone > 0;
    if (w->when == PP_FIRST_EXCEPTION)
        return any_failed;
    return false;
}

int pp_wait(pp_future *const *fs, size_t n, double timeout, pp_return_when when, bool *done)
{
    if ((!fs && n) || isnan(timeout) || (unsigned)when > PP_FIRST_EXCEPTION)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] && ppi_foreign(fs[i]->ex))
            return PP_EFORKED;
    pp_future **u = malloc((n ? n : 1) * sizeof *u);
    if (!u)
        return -ENOMEM;
    long nu = dedupe(fs, n, u);
    if (nu < 0) {
        free(u);
        return (int)nu;
    }
    wait_state w = {.u = u, .nu = (size_t)nu, .when = when};
    uint64_t deadline = ppi_deadline(timeout);
    while (!wait_satisfied(&w) && ppi_now_ns() < deadline)
        sleep_on_executors(u, w.nu, deadline, wait_satisfied, &w);
    if (done)
        for (size_t i = 0; i < n; i++)
            done[i] = fs[i] && pp_future_done(fs[i]);
    free(u);
    return w.ndone > (size_t)INT32_MAX ? INT32_MAX : (int)w.ndone;
}

struct pp_as_completed {
    pp_future **pending;  /* not yet yielded, not yet seen done */
    size_t npending;
    pp_future **ready;    /* seen done, not yet yielded (FIFO) */
    size_t rhead, rtail;
    uint64_t deadline;
};

int pp_as_completed_begin(pp_as_completed **itp, pp_future *const *fs, size_t n, double timeout)
{
    if (!itp || (!fs && n) || isnan(timeout))
        return -EINVAL;
    *itp = NULL;
    for (size_t i = 0; i < n; i++)
        if (fs[i] && ppi_foreign(fs[i]->ex))
            return PP_EFORKED;
    pp_as_completed *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->pending = malloc((n ? n : 1) * sizeof *it->pending);
    it->ready = malloc((n ? n : 1) * sizeof *it->ready);
    long m = it->pending && it->ready ? dedupe(fs, n, it->pending) : -ENOMEM;
    if (m < 0) {
        pp_as_completed_end(it);
        return (int)m;
    }
    it->npending = (size_t)m;
    it->deadline = ppi_deadline(timeout);
    *itp = it;
    return 0;
}

/* Move every pending future that is done to the ready queue, keeping the
 * order in which they were passed. Returns true if any moved. */
static bool collect(void *arg)
{
    pp_as_completed *it = arg;
    size_t keep = 0;
    bool moved = false;
    for (size_t i = 0; i < it->npending; i++) {
        pp_future *f = it->pending[i];
        if (pp_future_done(f)) {
            it->ready[it->rtail++] = f;
            moved = true;
        } else {
            it->pending[keep++] = f;
        }
    }
    it->npending = keep;
    return moved;
}

int pp_as_completed_next(pp_as_completed *it, pp_future **f)
{
    if (!it || !f)
        return -EINVAL;
    *f = NULL;
    for (;;) {
        if (it->rhead < it->rtail) {
            *f = it->ready[it->rhead++];
            return 0;
        }
        if (it->npending == 0)
            return -ENOENT;
        if (collect(it))
            continue;
        if (ppi_now_ns() >= it->deadline)
            return -ETIMEDOUT;
        sleep_on_executors(it->pending, it->npending, it->deadline, collect, it);
    }
}

size_t pp_as_completed_pending(const pp_as_completed *it)
{
    return it ? it->npending + (it->rtail - it->rhead) : 0;
}

void pp_as_completed_end(pp_as_completed *it)
{
    if (!it)
        return;
    free(it->pending);
    free(it->ready);
    free(it);
}
