/*
 * peer_mpi_other — another program (another build-id) that serves an MPI
 * executor's root: the MPMD test (test_mpi_mpmd) runs it as one rank, whose
 * tasks must then fail with PP_ENOFUNC, never jump to a wrong address.
 */
#include "mpi_check.h"

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    CHECK_EQ(rc, PP_MPI_SERVED);
    return mc_finish();
}
