/* mpi_check.h — the mpi test programs' checks: every failed CHECK prints its
 * place and makes the program's exit status 1; the root decides, the other
 * ranks serve (pp_mpi_executor_create returns PP_MPI_SERVED there). */
#ifndef PPOOL_TEST_MPI_CHECK_H
#define PPOOL_TEST_MPI_CHECK_H

#include <errno.h>
#include <mpi.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ppool.h"
#include "ppool/mpi.h"
#include "mpi_hold.h" /* mc_now_s, mc_hold_root */

static int mc_failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
            mc_failed = 1;                                                               \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,  \
                    __LINE__, #a, #b, a_, b_);                                           \
            mc_failed = 1;                                                               \
        }                                                                                \
    } while (0)

/* MPI_Init_thread(MULTIPLE) and the test config: 1 worker per rank, no
 * pinning (3 ranks on 2 CPUs). */
static inline void mc_init(int *argc, char ***argv, pp_mpi_config *cfg)
{
    int prov = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &prov);
    pp_mpi_config_init(cfg);
    cfg->node.max_workers = 1;
    cfg->node.pin = PP_PIN_NONE;
}

/* true if @p lies in this process's mapping of a ppool shared segment (its
 * memfd is named "ppool"): for tasks checking that a block is read in place. */
static inline int mc_in_segment(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[512];
    int in = 0;
    while (!in && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)p >= lo &&
            (unsigned long)p < hi)
            in = strstr(line, "memfd:ppool") != NULL;
    }
    fclose(f);
    return in;
}

/* Wait until all @n futures are RUNNING at the root (started, or shipped to
 * a rank), for at most @limit seconds; false if they were not by then. */
static inline bool mc_wait_running(pp_future **fs, int n, double limit)
{
    double end = mc_now_s() + limit;
    while (mc_now_s() < end) {
        int r = 0;
        for (int i = 0; i < n; i++)
            r += pp_future_running(fs[i]);
        if (r == n)
            return true;
        usleep(1000);
    }
    return false;
}

/* The executor of a test run under mpirun --enable-recovery (a rank may be
 * lost): a serving rank ends with _exit(0) once served (after a loss
 * MPI_Finalize may wait for the dead rank); the root gets the executor, or
 * ends with _exit(1) if it could not be made. */
static inline pp_executor *mc_create_recovery(pp_mpi_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, cfg);
    if (rc == PP_MPI_SERVED) {
        fflush(NULL);
        _exit(0);
    }
    CHECK_EQ(rc, 0);
    if (rc) {
        fflush(NULL);
        _exit(1);
    }
    return ex;
}

/* End: 0 if every check passed (any rank), else 1. */
static inline int mc_finish(void)
{
    int mine = mc_failed, any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
