/*
 * topology_snap.h — internal to topology.c (which builds it) and placement.c
 * (which reads it): the flat snapshot of the usable cores and PUs that a
 * ppi_topo holds. Immutable once ppi_topo_load / ppi_topo_restrict returned.
 */
#ifndef PPOOL_RUNTIME_TOPOLOGY_SNAP_H
#define PPOOL_RUNTIME_TOPOLOGY_SNAP_H

#include <hwloc.h>

#include "topology.h"

/* One usable physical core. */
struct ppi_tcore {
    int logical;  /* hwloc logical index of the core (fallback: rank in the mask) */
    int package;  /* logical index of its package, -1 when unknown */
    int numa;     /* OS index of the NUMA node of its first PU, -1 when unknown */
    int first_pu; /* index into pus[] of its first usable PU */
    int npu;      /* its usable PUs: pus[first_pu .. first_pu + npu) */
};

/* One usable PU (hardware thread). */
struct ppi_tpu {
    int os;   /* OS index, < CPU_SETSIZE */
    int numa; /* OS index of the NUMA node containing it, -1 when unknown */
    int core; /* index into cores[] */
};

struct ppi_topo {
    hwloc_topology_t hw; /* NULL: sched_getaffinity fallback */
    int ncores, npus, npackages, nnuma;
    struct ppi_tcore *cores;
    struct ppi_tpu *pus;
    int *scatter; /* ncores indexes into cores[], SCATTER order */
};

#endif /* PPOOL_RUNTIME_TOPOLOGY_SNAP_H */
