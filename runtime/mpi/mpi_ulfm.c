/*
 * mpi_ulfm.c — ULFM (MPI's User-Level Failure Mitigation, the MPIX_*
 * failure calls of Open MPI 5's ftmpi extension and of MPICH) when the MPI
 * library has it: compiled with PPOOL_HAVE_ULFM (cmake/mpi.cmake checks for
 * MPIX_ERR_PROC_FAILED in mpi.h / mpi-ext.h). An MPI call on the executor's
 * communicator that returns MPIX_ERR_PROC_FAILED (or _PENDING, which an
 * MPI_ANY_SOURCE probe returns until the failure is acknowledged) makes the
 * root acknowledge the failures (MPIX_Comm_failure_ack, which also
 * re-enables ANY_SOURCE probes) and declare every acknowledged failed rank
 * lost at once, instead of waiting for node_timeout; a serving rank treats
 * such an error on its root as the root's loss. Without ULFM both functions
 * do nothing and heartbeats remain the only detector (docs/mpi.md, Failures:
 * what was exercised).
 */
#include <stdlib.h>

#include "mpi_internal.h"

#ifdef PPOOL_HAVE_ULFM
#include <mpi-ext.h> /* Open MPI declares MPIX_* there; MPICH in mpi.h */
#endif

bool ppm_ulfm_proc_failed(int rc)
{
#ifdef PPOOL_HAVE_ULFM
    int cls = rc;
    if (rc == MPI_SUCCESS || MPI_Error_class(rc, &cls) != MPI_SUCCESS)
        return false;
    return cls == MPIX_ERR_PROC_FAILED || cls == MPIX_ERR_PROC_FAILED_PENDING;
#else
    (void)rc;
    return false;
#endif
}

int ppm_ulfm_note_failures(ppm_root *r, int rc)
{
#ifdef PPOOL_HAVE_ULFM
    if (!ppm_ulfm_proc_failed(rc))
        return 0;
    MPI_Group failed = MPI_GROUP_NULL, all = MPI_GROUP_NULL;
    int n = 0, lost = 0;
    if (MPIX_Comm_failure_ack(r->comm) != MPI_SUCCESS ||
        MPIX_Comm_failure_get_acked(r->comm, &failed) != MPI_SUCCESS ||
        MPI_Group_size(failed, &n) != MPI_SUCCESS || n <= 0 ||
        MPI_Comm_group(r->comm, &all) != MPI_SUCCESS)
        goto done;
    int *in = malloc((size_t)n * sizeof *in), *out = malloc((size_t)n * sizeof *out);
    if (in && out) {
        for (int i = 0; i < n; i++)
            in[i] = i;
        if (MPI_Group_translate_ranks(failed, n, in, all, out) == MPI_SUCCESS)
            for (int i = 0; i < n; i++) {
                int q = out[i];
                if (q == MPI_UNDEFINED || q < 0 || q >= r->size || q == r->me)
                    continue;
                /* check_losses declares it lost in this round: heard_ns 0
                 * is "reported failed" (never a real time: it is set to
                 * the clock at start). Comm thread only. */
                r->ranks[q].heard_ns = 0;
                lost++;
            }
    }
    free(in);
    free(out);
done:
    if (all != MPI_GROUP_NULL)
        MPI_Group_free(&all);
    if (failed != MPI_GROUP_NULL)
        MPI_Group_free(&failed);
    return lost;
#else
    (void)r;
    (void)rc;
    return 0;
#endif
}
