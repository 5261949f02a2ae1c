/*
 * omp_binding.h — give the initial thread back the CPUs OpenMP took from it.
 * Header-only: its users (ppool-tune, bench_cores) link OpenMP; the sweep
 * library does not.
 */
#ifndef PPOOL_TUNE_OMP_BINDING_H
#define PPOOL_TUNE_OMP_BINDING_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <omp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>

/*
 * With OMP_PROC_BIND set, libgomp pins the initial thread to its first place
 * as the program starts, before main. Pools created from this thread would
 * then see one place's CPUs only (docs/topology.md: the topology follows the
 * creating thread's affinity). The union of all OpenMP places is the mask
 * libgomp started from: give it back to this thread. Returns true if it did.
 * Call from the initial thread, before any pool or parallel region.
 */
static inline bool tune_undo_omp_initial_binding(void)
{
    if (omp_get_proc_bind() == omp_proc_bind_false)
        return false;
    int np = omp_get_num_places();
    cpu_set_t all, cur;
    CPU_ZERO(&all);
    for (int p = 0; p < np; p++) {
        int n = omp_get_place_num_procs(p);
        if (n <= 0)
            continue;
        int *ids = calloc((size_t)n, sizeof *ids);
        if (!ids)
            continue;
        omp_get_place_proc_ids(p, ids);
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE)
                CPU_SET(ids[i], &all);
        free(ids);
    }
    if (CPU_COUNT(&all) == 0 || sched_getaffinity(0, sizeof cur, &cur) != 0 ||
        CPU_EQUAL(&all, &cur))
        return false;
    return sched_setaffinity(0, sizeof all, &all) == 0;
}

#endif
