/*
 * mpi_watchdog.c — a serving rank's last defence against a dead root: a
 * thread that ends the rank when its serving loop has been stuck inside one
 * MPI call for node_timeout.
 *
 * Why: the serving loop notices the root's silence between its calls (see
 * ppm_serve). But a blocking call towards a dead root may never return: over
 * Open MPI's TCP transport (the one between nodes) a send to a dead peer
 * retries its connect() and, without ULFM, hangs ("Your Open MPI job may now
 * hang"); the rank, its node pool and its workers would then stay until the
 * job's wall-clock limit. The watchdog sees no pulse from the loop for
 * node_timeout and _exit()s the rank as the loop would (same message, same
 * status PP_MPI_EXIT_ROOT_LOST): the node pool's manager sees its client
 * die and ends the workers.
 *
 * The price: one message may not take node_timeout to send or receive
 * (docs/mpi.md, "Failures"), which at the default 10 s is gigabytes even
 * over a slow network.
 *
 * Synchronisation: pulse_ns is written by the serving thread (relaxed store
 * each loop turn) and read by the watchdog (relaxed load): it is a clock
 * value compared against a timeout, not a publication of other data. stop is
 * under lock, with the condition variable the watchdog sleeps on, so
 * ppm_watchdog_stop's join returns at once.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "mpi_internal.h"
#include "process.h"

/* How often the watchdog looks, at most (and node_timeout / 4 if shorter). */
#define PPM_WATCHDOG_TICK_NS 250000000ull

static void *watchdog_main(void *arg)
{
    ppm_watchdog *w = arg;
    uint64_t tick = w->limit_ns / 4 < PPM_WATCHDOG_TICK_NS ? w->limit_ns / 4 : PPM_WATCHDOG_TICK_NS;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + tick;
        ts.tv_sec = (time_t)(at / 1000000000ull);
        ts.tv_nsec = (long)(at % 1000000000ull);
        int rc = pthread_cond_timedwait(&w->cv, &w->lock, &ts);
        if (w->stop || rc != ETIMEDOUT)
            continue;
        /* relaxed: a clock value (see the file comment). */
        uint64_t pulse = atomic_load_explicit(&w->pulse_ns, memory_order_relaxed);
        uint64_t now = ppi_now_ns();
        if (now > pulse && now - pulse >= w->limit_ns) {
            fprintf(stderr, "ppool: rank serving the MPI executor: the root was silent for "
                            "%.1f s (this rank stuck in an MPI call to it); exiting\n",
                    (double)w->limit_ns / 1e9);
            _exit(PP_MPI_EXIT_ROOT_LOST);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int ppm_watchdog_start(ppm_watchdog *w, uint64_t limit_ns)
{
    w->limit_ns = limit_ns ? limit_ns : 1;
    w->stop = false;
    /* relaxed: nothing reads it before the thread starts (pthread_create
     * orders it). */
    atomic_store_explicit(&w->pulse_ns, ppi_now_ns(), memory_order_relaxed);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->lock, NULL);
    int rc = pthread_create(&w->thread, NULL, watchdog_main, w);
    w->started = rc == 0;
    if (rc) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->lock);
    }
    return -rc;
}

void ppm_watchdog_stop(ppm_watchdog *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->lock);
    w->started = false;
}
