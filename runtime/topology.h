/*
 * topology.h — internal: what cores this process may use, and where workers go.
 *
 * hwloc-style life-cycle: ppi_topo_load() -> queries / ppi_topo_plan() ->
 * ppi_topo_destroy(). The plan is a pure function of (topology, workers,
 * policy) so it is unit-tested on synthetic topologies on any machine.
 * Not thread-safe per handle (like hwloc_topology_t); distinct handles are
 * independent. Called in the client (planning) and in workers (binding).
 */
#ifndef PPOOL_RUNTIME_TOPOLOGY_H
#define PPOOL_RUNTIME_TOPOLOGY_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* guarded: CMake also passes -D_GNU_SOURCE */
#endif
#include <sched.h>
#include <stddef.h>
#include "ppool.h"

typedef struct ppi_topo ppi_topo;

/** Where one worker goes. */
typedef struct ppi_place {
    cpu_set_t cpus;  /* OS PU numbers it is bound to; empty = not pinned */
    int first_cpu;   /* lowest OS PU in cpus, -1 when not pinned */
    int core;        /* logical index of its physical core, -1 when unknown */
    int package;     /* logical index of its package (socket), -1 when unknown */
    int numa;        /* OS index of its NUMA node, -1 when unknown */
} ppi_place;

/**
 * ppi_topo_load - discover a topology.
 * @synthetic: NULL for this machine, restricted to the PUs this process may
 *   run on (cgroup cpuset and inherited affinity); otherwise an hwloc
 *   synthetic description such as "package:2 core:32 pu:1" (unrestricted).
 * If hwloc fails for this machine, falls back to sched_getaffinity (one core
 * per allowed CPU, one package, no NUMA) and prints one warning per process.
 * Returns 0, -ENOMEM, or -EINVAL (bad synthetic string).
 */
int ppi_topo_load(ppi_topo **out, const char *synthetic);

/** Restrict to the given OS PUs (tests: "a topology restricted to an odd
 *  subset"). Returns 0 or -EINVAL if nothing would remain. */
int ppi_topo_restrict(ppi_topo *t, const cpu_set_t *allowed);

/** Physical cores usable (>= 1). */
int ppi_topo_cores(const ppi_topo *t);
/** Hardware threads (PUs) usable (>= 1). */
int ppi_topo_pus(const ppi_topo *t);

/**
 * ppi_topo_plan - place @nworkers workers.
 * @policy, @list, @nlist: as pp_config.pin / pin_cpus / n_pin_cpus.
 * @strict: non-zero makes an impossible placement -EINVAL.
 * @out: array of @nworkers places.
 * @warn, @warnlen: receives a one-line warning (e.g. oversubscription), or ""
 * Returns 0 or -EINVAL.
 */
int ppi_topo_plan(const ppi_topo *t, int nworkers, pp_pin_policy policy, const int *list,
                  int nlist, int strict, ppi_place *out, char *warn, size_t warnlen);

/**
 * ppi_topo_plan_k - place @nworkers workers of @k cores each (k PUs with
 * PP_PIN_PUS, k list entries with PP_PIN_LIST): see placement.c. k = 1 is
 * ppi_topo_plan. Worker i's place does not depend on @nworkers.
 * Returns 0 or -EINVAL.
 */
int ppi_topo_plan_k(const ppi_topo *t, int nworkers, int k, pp_pin_policy policy,
                    const int *list, int nlist, int strict, ppi_place *out, char *warn,
                    size_t warnlen);

/** NUMA domains among the usable PUs (0 when unknown, e.g. the fallback). */
int ppi_topo_numa_nodes(const ppi_topo *t);

/** Rank of the core with hwloc logical index @logical among the usable cores
 *  (0 .. ppi_topo_cores - 1, topology order), -1 when it is not one of them.
 *  Reads @t only. */
int ppi_topo_core_rank(const ppi_topo *t, int logical);

/** One-line summary, e.g. "1 package, 2 cores, 2 PUs, 1 NUMA node (hwloc 2.9.0)". */
void ppi_topo_summary(const ppi_topo *t, char *buf, size_t len);

/** Bind the calling thread/process to @p (sched_setaffinity); no-op when not
 *  pinned. Returns 0 or -errno. Async-signal-safe enough for a fresh child. */
int ppi_topo_bind_self(const ppi_place *p);

/**
 * ppi_topo_load_affinity - the fallback topology, built without hwloc.
 * One core per CPU in the calling thread's sched_getaffinity mask, one
 * package (0), no NUMA information (numa -1). This is what ppi_topo_load(NULL)
 * uses when hwloc fails; exposed so tests can exercise it. Prints nothing.
 * Returns 0, -ENOMEM, or -EINVAL (NULL @out); *out is NULL on error.
 */
int ppi_topo_load_affinity(ppi_topo **out);

/** Free @t (and its hwloc topology). NULL is a no-op. */
void ppi_topo_destroy(ppi_topo *t);

#endif
