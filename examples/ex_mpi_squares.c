/*
 * ex_mpi_squares.c — the same futures code on one node or across MPI ranks.
 *
 *   mpirun -np 1 ./ex_mpi_squares          # one node: the root's pool only
 *   mpirun -np 3 ./ex_mpi_squares          # three ranks, one node pool each
 *   srun --ntasks-per-node=1 --cpu-bind=none ./ex_mpi_squares   # Slurm
 *
 * Only the create call differs from a single-node program: on the root it
 * returns an ordinary executor; the other ranks serve inside it and return
 * PP_MPI_SERVED when the root destroys the executor. The output is the same
 * whatever the number of ranks.
 */
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

#include <ppool.h>
#include <ppool/mpi.h>

/* A task: the square of its argument (in whichever rank's worker runs it). */
static int square(pp_task *t)
{
    const long *x = pp_task_arg(t, NULL);
    usleep(2000); /* some work, so that every rank gets a share */
    long y = *x * *x;
    return pp_task_set_result(t, &y, sizeof y);
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);

    pp_mpi_config cfg;
    pp_mpi_config_init(&cfg);
    cfg.node.max_workers = 1;     /* small, for the example */
    cfg.node.pin = PP_PIN_NONE;

    pp_executor *ex;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED) {    /* not the root: served, nothing else to do */
        MPI_Finalize();
        return 0;
    }
    if (rc) {
        fprintf(stderr, "pp_mpi_executor_create: %s\n", pp_strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }

    /* From here on: plain ppool code. */
    enum { N = 100 };
    pp_future *fs[N];
    for (long i = 0; i < N; i++)
        pp_submit(ex, square, &i, sizeof i, &fs[i]);

    long sum = 0;
    pp_as_completed *it;
    pp_as_completed_begin(&it, fs, N, PP_FOREVER);
    pp_future *f;
    while (pp_as_completed_next(it, &f) == 0) {
        const long *y;
        if (pp_future_result(f, 0, (const void **)&y, NULL) == 0)
            sum += *y;
    }
    pp_as_completed_end(it);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);

    printf("sum of squares below %d: %ld\n", N, sum);
    pp_executor_destroy(ex);      /* ends the other ranks' serving */
    MPI_Finalize();
    return sum == (long)(N - 1) * N * (2 * N - 1) / 6 ? 0 : 1;
}
