/* mpi_hold.h — holding the root node's only worker, for the mpi test
 * programs and bench_mpi (which must not depend on the tests' CHECK
 * macros): while a blocker runs there, every task submitted is shipped to
 * the other ranks, deterministically. */
#ifndef PPOOL_TEST_MPI_HOLD_H
#define PPOOL_TEST_MPI_HOLD_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ppool.h"

/* Seconds on the monotonic clock. */
static inline double mc_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct mc_hold {
    void *blk;           /* pp_shm_alloc'd: the flag */
    pp_future *held;     /* the blocker running on the root's node, or NULL */
} mc_hold;

/* On the root's node: says so (word 1 of a pp_shm_alloc block: its offset
 * and the root's pid in the argument), then waits for word 0; returns 1 at
 * once on another rank (its manager's parent is not the root; the offset
 * means nothing in that node's segment, so it is not touched there). */
static inline int mc_t_hold(pp_task *t)
{
    const uint64_t *a = pp_task_arg(t, NULL);
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)getppid());
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    int ppid = -1;
    if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != (int)a[1])
        return 1;
    _Atomic uint32_t *flag = pp_task_shm(t, a[0]);
    if (!flag)
        return 2;
    /* release: pairs with mc_hold_root's acquire (it may count on us). */
    atomic_store_explicit(&flag[1], 1, memory_order_release);
    /* acquire: pairs with mc_release_root's release store. */
    while (!atomic_load_explicit(&flag[0], memory_order_acquire))
        usleep(200);
    return 0;
}

/* Lets the held blocker end; true if it ended well on the root (rank 0). */
static inline bool mc_release_root(pp_executor *ex, mc_hold *h)
{
    bool ok = true;
    if (h->blk)
        /* release: pairs with mc_t_hold's acquire. */
        atomic_store_explicit((_Atomic uint32_t *)h->blk, 1, memory_order_release);
    if (h->held) {
        pp_exception e;
        ok = pp_future_exception(h->held, PP_FOREVER, &e) == 0 && e.error == 0 && e.rank == 0;
        pp_future_release(h->held);
    }
    if (h->blk)
        pp_shm_free(ex, h->blk);
    h->held = NULL;
    h->blk = NULL;
    return ok;
}

/* Holds the root node's worker (cfg.node.max_workers 1): rounds of 3
 * blockers (one for each rank's credit or worker) until one says it runs on
 * the root's node; the others return at once on the ranks they were
 * shipped to and are waited for, so the caller's counts start after them.
 * Returns false (holding nothing) if no blocker reached the root's node in
 * 20 rounds, or a round did not settle within 30 s. */
static inline bool mc_hold_root(pp_executor *ex, mc_hold *h)
{
    h->held = NULL;
    h->blk = NULL;
    if (pp_shm_alloc(ex, 64, &h->blk) != 0)
        return false;
    _Atomic uint32_t *flag = h->blk;
    atomic_init(&flag[0], 0);
    atomic_init(&flag[1], 0);
    uint64_t harg[2] = {pp_shm_offset(ex, h->blk), (uint64_t)getpid()};
    bool settled = true;
    for (int round = 0; round < 20 && settled && !h->held; round++) {
        pp_future *f[3];
        int n = 0;
        for (int i = 0; i < 3; i++)
            if (pp_submit(ex, mc_t_hold, harg, sizeof harg, &f[n]) == 0)
                n++;
        /* Settled: every blocker done, or all but the root's once it said so. */
        double end = mc_now_s() + 30;
        int done = 0;
        bool on_root = false;
        settled = false;
        while (!settled && mc_now_s() < end) {
            /* acquire: pairs with mc_t_hold's release. */
            on_root = atomic_load_explicit(&flag[1], memory_order_acquire) != 0;
            done = 0;
            for (int i = 0; i < n; i++)
                done += pp_future_done(f[i]);
            settled = done == n || (on_root && done == n - 1);
            if (!settled)
                usleep(1000);
        }
        if (!settled) /* let them all end: nothing is held */
            atomic_store_explicit(&flag[0], 1, memory_order_release);
        for (int i = 0; i < n; i++) {
            if (settled && !pp_future_done(f[i])) {
                h->held = f[i];
                continue;
            }
            pp_exception e;
            pp_future_exception(f[i], PP_FOREVER, &e);
            pp_future_release(f[i]);
        }
    }
    if (!h->held) {
        pp_shm_free(ex, h->blk);
        h->blk = NULL;
    }
    return h->held != NULL;
}

#endif
