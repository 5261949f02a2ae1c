/*
 * thread_env.h — the thread-count variables a worker starts with
 * (pp_config.cores_per_worker): OMP_NUM_THREADS and its kin set to k, and
 * OMP_PLACES / OMP_PROC_BIND describing the worker's own PUs.
 *
 * The client decides at create which variables it leaves alone (those its
 * environment already holds, unless thread_env_override): the keep mask in
 * the segment header. Every worker then builds the same list from (k, keep
 * mask, its place): the manager puts it in a spawned worker's exec
 * environment (so runtimes that read it in their constructors, before ours,
 * see it), and every worker sets it again with setenv before its
 * initializer and tells runtimes already loaded in a forked image the count
 * through their own calls.
 */
#ifndef PPOOL_RUNTIME_THREAD_ENV_H
#define PPOOL_RUNTIME_THREAD_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "topology.h"

/* Variables, in the bit order of the keep mask: the first
 * PPI_TENV_COUNTS hold a thread count. */
#define PPI_TENV_COUNTS 6
#define PPI_TENV_N 8

/* The list for one worker. */
typedef struct ppi_tenv {
    int n;                          /* entries in name/value */
    const char *name[PPI_TENV_N];
    const char *value[PPI_TENV_N];
    char count[16];                 /* k, in decimal */
    char places[8 * CPU_SETSIZE];   /* "{0},{1},..." */
} ppi_tenv;

/* Client, at create: the mask of variables to keep (those set in the
 * environment now), 0 with @override. Reads the environment. */
uint32_t ppi_tenv_keep_mask(bool override);

/* The list for a worker of @k cores at @p, leaving out the variables in
 * @keep (and the OMP_PLACES/OMP_PROC_BIND pair when @p is not pinned).
 * Pure; any process. */
void ppi_tenv_make(ppi_tenv *e, uint32_t k, uint32_t keep, const ppi_place *p);

/* Is @entry ("NAME=value") one of the variables @e sets? */
bool ppi_tenv_sets(const ppi_tenv *e, const char *entry);

/* In the worker, before its initializer: setenv each entry, then pass the
 * count to the thread runtimes present in this image (looked up with
 * dlsym; nothing is loaded) whose variable is not kept. */
void ppi_tenv_apply(const ppi_tenv *e, uint32_t k, uint32_t keep);

#endif
