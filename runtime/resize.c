/*
 * resize.c — pp_executor_resize, the client side (docs/design.md,
 * "Resizing"; the manager's side is apply_resize in manager.c).
 *
 * The client never touches a live worker. Under its resize lock it writes
 * the places of positions that never had one (the plan is prefix-stable:
 * position i's place is the same whatever the size, so nothing is moved),
 * the new size in its own handle and the topology line, then the target in
 * the segment and a new resize_seq (release), and wakes the manager. The
 * manager tells positions beyond the target to leave between tasks, starts
 * workers in vacant positions below it, and acknowledges the seq. Growing
 * then waits until every new position has a ready worker, as
 * pp_executor_create waits for the first ones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "tunables.h"

/* Write places for positions [ex->places_written, n) (under resize_lock). */
static int write_places(pp_executor *ex, int n, char *summary, size_t len)
{
    ppi_place *places = NULL;
    int got = 0;
    int rc = ppi_plan_workers(&ex->cfg, n, &places, &got, summary, len);
    if (rc)
        return rc;
    uint32_t *homes = malloc((size_t)n * sizeof *homes);
    /* cfg.ring_shards holds the count resolved at create: the same shards,
     * new positions homed by the same rule. */
    rc = homes ? ppi_plan_shards(&ex->cfg, places, n, NULL, homes) : -ENOMEM;
    if (rc) {
        free(homes);
        free(places);
        return rc;
    }
    for (int i = ex->places_written; i < n; i++) {
        ppi_worker *w = &ex->seg.workers[i];
        w->place = places[i];
        w->cpu = places[i].first_cpu;
        w->core = places[i].core;
        w->numa = places[i].numa;
        w->home_shard = homes[i];
    }
    if (n > ex->places_written)
        ex->places_written = n;
    free(places);
    free(homes);
    return 0;
}

/* The topology line for @n workers into the buffer not in use, then make it
 * current (under resize_lock). */
static void set_topology(pp_executor *ex, const char *summary)
{
    /* relaxed: only resize_lock holders write it. */
    uint32_t next = atomic_load_explicit(&ex->topology_cur, memory_order_relaxed) ^ 1u;
    snprintf(ex->topology[next], sizeof ex->topology[next], "%s", summary);
    /* release: the text before the index (pp_executor_topology acquires). */
    atomic_store_explicit(&ex->topology_cur, next, memory_order_release);
}

/* 0 while the call may go on; -ESHUTDOWN once pp_shutdown began (its stop
 * reached the segment, or our handle says so); PP_EBROKEN. */
static int resize_check(pp_executor *ex)
{
    int rc = ppi_pool_check(ex);
    if (rc)
        return rc;
    /* seq_cst: pp_shutdown's flag; acquire: the client's release of stop. */
    if (atomic_load_explicit(&ex->shutdown, memory_order_seq_cst) ||
        atomic_load_explicit(&ex->seg.hdr->stop, memory_order_acquire))
        return -ESHUTDOWN;
    return 0;
}

/* Wait until the manager acknowledged @seq. */
static int wait_ack(pp_executor *ex, uint32_t seq, uint64_t deadline)
{
    ppi_hdr *h = ex->seg.hdr;
    for (;;) {
        /* acquire: pairs with the manager's release (ready words reset). */
        uint32_t ack = atomic_load_explicit(&h->resize_ack, memory_order_acquire);
        if ((int32_t)(ack - seq) >= 0)
            return 0;
        int rc = resize_check(ex);
        if (rc)
            return rc;
        uint64_t left = ppi_remaining(deadline, PPI_READY_POLL_NS);
        if (left == 0)
            return PP_EBROKEN;
        ppi_futex_wait(&h->resize_ack, ack, left, true);
    }
}

/* Is the worker in position @i pinned, ready and through its initializer?
 * (A failed initializer never is: the pool breaks, resize_check says so.) */
static bool position_started(pp_executor *ex, int i)
{
    ppi_worker *w = &ex->seg.workers[i];
    /* acquire: pairs with the worker's release stores of ready and phase
     * (read after the manager's ack, so a new process's reset is seen). */
    if (!atomic_load_explicit(&w->ready, memory_order_acquire))
        return false;
    uint32_t ph = atomic_load_explicit(&w->phase, memory_order_acquire);
    return ph != PPI_PH_START && ph != PPI_PH_INIT && ph != PPI_PH_INIT_FAILED;
}

/* Wait until positions [from, to) each have a started worker. The wake-up
 * is the ready count (after the initializer a worker wakes nobody): naps
 * are short while only initializers remain. */
static int wait_grown(pp_executor *ex, int from, int to, uint64_t deadline)
{
    ppi_hdr *h = ex->seg.hdr;
    for (;;) {
        /* acquire: pairs with each worker's release increment. */
        uint32_t r = atomic_load_explicit(&h->ready, memory_order_acquire);
        int i = from;
        while (i < to && position_started(ex, i))
            i++;
        if (i == to)
            return 0;
        int rc = resize_check(ex);
        if (rc)
            return rc;
        uint64_t left = ppi_remaining(deadline, PPI_RESIZE_POLL_NS);
        if (left == 0)
            return PP_EBROKEN;
        ppi_futex_wait(&h->ready, r, left, true);
    }
}

int pp_executor_resize(pp_executor *ex, int n)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    if (n < 1 || n > PPI_MAX_WORKERS)
        return -EINVAL;
    pthread_mutex_lock(&ex->resize_lock);
    int rc = resize_check(ex);
    /* relaxed: only resize_lock holders write it. */
    int old = atomic_load_explicit(&ex->nworkers, memory_order_relaxed);
    char summary[192];
    if (!rc)
        rc = write_places(ex, n, summary, sizeof summary);
    if (rc) {
        pthread_mutex_unlock(&ex->resize_lock);
        return rc;
    }
    set_topology(ex, summary);
    /* relaxed: read by statistics, each word on its own; the manager learns
     * the size from the segment below. */
    if (n > atomic_load_explicit(&ex->workers_hwm, memory_order_relaxed))
        atomic_store_explicit(&ex->workers_hwm, n, memory_order_relaxed);
    atomic_store_explicit(&ex->nworkers, n, memory_order_relaxed);
    ppi_hdr *h = ex->seg.hdr;
    /* release: the places written above, then the target, come before the
     * seq the manager acquires. */
    atomic_store_explicit(&h->target, (uint32_t)n, memory_order_release);
    uint32_t seq = atomic_fetch_add_explicit(&h->resize_seq, 1, memory_order_release) + 1;
    ppi_poke_manager(ex);
    uint64_t deadline = ppi_add_sat(ppi_now_ns(), PPI_READY_TIMEOUT_NS);
    rc = wait_ack(ex, seq, deadline);
    if (!rc && n > old)
        rc = wait_grown(ex, old, n, deadline);
    pthread_mutex_unlock(&ex->resize_lock);
    return rc;
}
