/*
 * test_mpi_rootloss — under mpirun --enable-recovery (run_mpi.sh's mode
 * "rootloss"): the root SIGKILLs itself while ranks 1 and 2 run its tasks.
 * Each serving rank notices the silence within node_timeout and exits with
 * PP_MPI_EXIT_ROOT_LOST; its node pool (manager, workers) ends with it.
 * run_mpi.sh checks that both ranks said so and that no process is left.
 */
#include <signal.h>
#include <unistd.h>

#include "mpi_check.h"

static int t_long(pp_task *t)
{
    (void)t;
    sleep(30);
    return 0;
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    cfg.heartbeat = 0.1;
    cfg.node_timeout = 1.0;
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED)
        return 3; /* never: a serving rank must exit on its own */
    pp_future *fs[3];
    for (int i = 0; i < 3; i++)
        pp_submit(ex, t_long, NULL, 0, &fs[i]);
    for (int i = 0; i < 3; i++)
        while (!pp_future_running(fs[i]))
            usleep(1000);
    raise(SIGKILL);
    return 4;
}
