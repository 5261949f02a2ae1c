/*
 * placement.c — where workers go: ppi_topo_plan, a pure function of
 * (snapshot, workers, policy), and binding a worker to its place.
 *
 * The planner reads only the snapshot (topology_snap.h): it allocates
 * nothing, touches no global state and makes no system call, so it may run
 * concurrently on one handle and the tests check it on synthetic topologies
 * on any machine. See docs/topology.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "topology_snap.h"

/* ------------------------------------------------------------------------ */
/* planning                                                                 */
/* ------------------------------------------------------------------------ */

/* Add PU pus[@pu] to place @p; the first one added names the core,
 * package and NUMA node; first_cpu is the lowest OS number. */
static void place_add_pu(const ppi_topo *t, int pu, ppi_place *p, bool first)
{
    const struct ppi_tpu *u = &t->pus[pu];
    const struct ppi_tcore *c = &t->cores[u->core];

    if (first) {
        CPU_ZERO(&p->cpus);
        p->first_cpu = u->os;
        p->core = c->logical;
        p->package = c->package;
        p->numa = u->numa;
    }
    CPU_SET(u->os, &p->cpus);
    if (u->os < p->first_cpu)
        p->first_cpu = u->os;
}

static void place_none(ppi_place *p)
{
    CPU_ZERO(&p->cpus);
    p->first_cpu = -1;
    p->core = -1;
    p->package = -1;
    p->numa = -1;
}

/* Index into pus[] of OS PU @os, -1 when it is not usable. */
static int pu_index(const ppi_topo *t, int os)
{
    for (int i = 0; i < t->npus; i++)
        if (t->pus[i].os == os)
            return i;
    return -1;
}

/* The first core of the @b-th block of @k cores in SCATTER order: blocks
 * are k consecutive cores in logical order (block b = cores b*k ..
 * b*k+k-1), ordered by where their first core comes in scatter[]. With
 * k = 1 this is scatter[b]. Read-only: a scan, no allocation. */
static int scatter_block_first(const ppi_topo *t, int k, int nblocks, int b)
{
    for (int i = 0, seen = 0; i < t->ncores; i++) {
        int c = t->scatter[i];
        if (c % k == 0 && c / k < nblocks && seen++ == b)
            return c;
    }
    return 0; /* unreachable: every block has a first core in scatter[] */
}

/**
 * ppi_topo_plan_k - place @nworkers workers of @k cores (or PUs) each; see
 * topology.h.
 *
 * Worker i gets k units; with @k = 1 each pinned place is exactly one PU:
 *  - PP_PIN_COMPACT: block i of k consecutive cores in hwloc logical order
 *    (all of package 0 before package 1), bound to the first PU of each;
 *  - PP_PIN_SCATTER: the same blocks, taken in the hierarchical round robin
 *    over packages, then NUMA nodes (build_scatter) of their first cores;
 *  - PP_PIN_PUS: PUs i*k .. i*k+k-1, PUs in logical order (SMT siblings
 *    adjacent);
 *  - PP_PIN_LIST: OS PUs list[(i*k + j) % nlist], j < k;
 *  - PP_PIN_NONE: nothing pinned (empty cpus, every other field -1).
 * A block is never split: with c cores there are c / k places, the cores
 * left over stay unused. More workers than places wrap around to block 0
 * and @warn gets "oversubscribed: 5 workers on 4 cores" ("3 workers x 2
 * cores on 4 cores" with k > 1); with @strict it is -EINVAL instead. With
 * k above the cores (PUs) a worker gets them all (oversubscribed).
 *
 * Purity: reads @t only; no allocation, no system call, no global state, so
 * it is safe to call concurrently on one handle and gives the same answer
 * every time. Prefix-stable: worker i's place does not depend on @nworkers,
 * which is what lets pp_executor_resize place new workers without moving
 * the others.
 * Ownership: @out (caller's, @nworkers entries) and @warn (may be NULL when
 * @warnlen is 0) are written; nothing is retained.
 * Returns 0, or -EINVAL: NULL @t/@out, @nworkers < 1, @k outside
 * 1..CPU_SETSIZE, unknown policy, LIST with no list or with a PU not in @t,
 * or strict oversubscription. On -EINVAL @out is untouched and @warn says
 * why where there is a reason to give.
 */
int ppi_topo_plan_k(const ppi_topo *t, int nworkers, int k, pp_pin_policy policy,
                    const int *list, int nlist, int strict, ppi_place *out, char *warn,
                    size_t warnlen)
{
    int n = 0;
    const char *what = "";

    if (warn && warnlen)
        warn[0] = '\0';
    else
        warnlen = 0;
    if (!t || !out || nworkers < 1 || t->ncores < 1 || k < 1 || k > CPU_SETSIZE)
        return -EINVAL;

    switch (policy) {
    case PP_PIN_NONE:
        for (int i = 0; i < nworkers; i++)
            place_none(&out[i]);
        return 0;
    case PP_PIN_COMPACT:
    case PP_PIN_SCATTER:
        n = t->ncores;
        what = n == 1 ? "core" : "cores";
        break;
    case PP_PIN_PUS:
        n = t->npus;
        what = n == 1 ? "PU" : "PUs";
        break;
    case PP_PIN_LIST: {
        cpu_set_t seen;
        if (!list || nlist < 1) {
            if (warnlen)
                snprintf(warn, warnlen, "PP_PIN_LIST needs a non-empty CPU list");
            return -EINVAL;
        }
        CPU_ZERO(&seen);
        for (int j = 0; j < nlist; j++) {
            if (pu_index(t, list[j]) < 0) {
                if (warnlen)
                    snprintf(warn, warnlen, "cpu %d is not usable by this process", list[j]);
                return -EINVAL;
            }
            if ((long long)j < (long long)nworkers * k)
                CPU_SET(list[j], &seen);
        }
        n = CPU_COUNT(&seen);
        what = n == 1 ? "listed CPU" : "listed CPUs";
        break;
    }
    default:
        if (warnlen)
            snprintf(warn, warnlen, "unknown pin policy %d", (int)policy);
        return -EINVAL;
    }

    /* LIST has no blocks: worker i takes the next k entries, cyclically. */
    int places = policy == PP_PIN_LIST ? ((long long)nworkers * k <= n ? nworkers : 0) : n / k;
    if (nworkers > places) {
        if (warnlen && k == 1)
            snprintf(warn, warnlen, "oversubscribed: %d workers on %d %s", nworkers, n, what);
        else if (warnlen)
            snprintf(warn, warnlen, "oversubscribed: %d workers x %d %s on %d %s", nworkers, k,
                     policy == PP_PIN_PUS ? "PUs" : policy == PP_PIN_LIST ? "CPUs" : "cores", n,
                     what);
        if (strict)
            return -EINVAL;
    }
    int nblocks = places > 0 ? places : 1;

    for (int i = 0; i < nworkers; i++) {
        int b = i % nblocks;
        int base = policy == PP_PIN_SCATTER ? scatter_block_first(t, k, n / k > 0 ? n / k : 1, b)
                                            : b * k;
        for (int j = 0; j < k; j++) {
            int pu;
            switch (policy) {
            case PP_PIN_COMPACT:
            case PP_PIN_SCATTER:
                pu = t->cores[(base + j) % n].first_pu;
                break;
            case PP_PIN_PUS:
                pu = (base + j) % n;
                break;
            default: /* PP_PIN_LIST, validated above */
                pu = pu_index(t, list[(int)(((long long)i * k + j) % nlist)]);
                break;
            }
            place_add_pu(t, pu, &out[i], j == 0);
        }
    }
    return 0;
}

/**
 * ppi_topo_plan - ppi_topo_plan_k with one core (PU) per worker.
 */
int ppi_topo_plan(const ppi_topo *t, int nworkers, pp_pin_policy policy, const int *list,
                  int nlist, int strict, ppi_place *out, char *warn, size_t warnlen)
{
    return ppi_topo_plan_k(t, nworkers, 1, policy, list, nlist, strict, out, warn, warnlen);
}

/**
 * ppi_topo_bind_self - pin the calling thread (in a fresh child: the whole
 * process) to @p->cpus with sched_setaffinity(0, ...). An unpinned place
 * (empty cpus) is a no-op. Only a system call: safe between fork and exec.
 * Returns 0, -EINVAL for NULL @p, or -errno from sched_setaffinity (e.g.
 * -EINVAL when none of the CPUs is allowed by the cgroup).
 */
int ppi_topo_bind_self(const ppi_place *p)
{
    if (!p)
        return -EINVAL;
    if (CPU_COUNT(&p->cpus) == 0)
        return 0;
    if (sched_setaffinity(0, sizeof p->cpus, &p->cpus) != 0)
        return -errno;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* queries for the sharded task ring (shards.h)                             */
/* ------------------------------------------------------------------------ */

int ppi_topo_numa_nodes(const ppi_topo *t)
{
    return t ? t->nnuma : 0;
}

int ppi_topo_core_rank(const ppi_topo *t, int logical)
{
    if (!t || logical < 0)
        return -1;
    for (int i = 0; i < t->ncores; i++)
        if (t->cores[i].logical == logical)
            return i;
    return -1;
}
