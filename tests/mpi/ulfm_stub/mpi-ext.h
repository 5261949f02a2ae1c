/*
 * A stand-in for a ULFM-enabled MPI's mpi-ext.h (Open MPI 5's ftmpi
 * extension), declaring only what runtime/mpi/mpi_ulfm.c uses, with the
 * same signatures: it lets the PPOOL_HAVE_ULFM path be compiled (never run)
 * against Debian's Open MPI 4.1, which has no ULFM. CMake builds
 * ppool_mpi_ulfm_compile_check from it (cmake/mpi.cmake).
 */
#ifndef PPOOL_TEST_ULFM_STUB_MPI_EXT_H
#define PPOOL_TEST_ULFM_STUB_MPI_EXT_H

#include <mpi.h>

#define MPIX_ERR_PROC_FAILED 75
#define MPIX_ERR_PROC_FAILED_PENDING 76
int MPIX_Comm_failure_ack(MPI_Comm comm);
int MPIX_Comm_failure_get_acked(MPI_Comm comm, MPI_Group *failedgrp);

#endif
