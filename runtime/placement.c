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
#include <stdio.h>
#include <string.h>

#include "topology_snap.h"

/* ------------------------------------------------------------------------ */
/* planning                                                                 */
/* ------------------------------------------------------------------------ */

/* Place a worker on exactly one PU, pus[@pu]. */
static void place_pu(const ppi_topo *t, int pu, ppi_place *p)
{
    const struct ppi_tpu *u = &t->pus[pu];
    const struct ppi_tcore *c = &t->cores[u->core];

    CPU_ZERO(&p->cpus);
    CPU_SET(u->os, &p->cpus);
    p->first_cpu = u->os;
    p->core = c->logical;
    p->package = c->package;
    p->numa = u->numa;
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

/**
 * ppi_topo_plan - place @nworkers workers; see topology.h.
 *
 * Every pinned place is exactly one PU (one bit in cpus):
 *  - PP_PIN_COMPACT: worker i on the first PU of core i, cores in hwloc
 *    logical order (all of package 0 before package 1);
 *  - PP_PIN_SCATTER: worker i on the first PU of the i-th core of the
 *    hierarchical round robin over packages, then NUMA nodes (build_scatter);
 *  - PP_PIN_PUS: worker i on PU i, PUs in logical order (SMT siblings
 *    adjacent);
 *  - PP_PIN_LIST: worker i on OS PU list[i % nlist];
 *  - PP_PIN_NONE: nothing pinned (empty cpus, every other field -1).
 * More workers than cores (COMPACT, SCATTER), PUs (PUS) or distinct listed
 * PUs (LIST) wrap around and @warn gets "oversubscribed: 5 workers on 4
 * cores"; with @strict it is -EINVAL instead.
 *
 * Purity: reads @t only; no allocation, no system call, no global state, so
 * it is safe to call concurrently on one handle and gives the same answer
 * every time.
 * Ownership: @out (caller's, @nworkers entries) and @warn (may be NULL when
 * @warnlen is 0) are written; nothing is retained.
 * Returns 0, or -EINVAL: NULL @t/@out, @nworkers < 1, unknown policy, LIST
 * with no list or with a PU not in @t, or strict oversubscription. On
 * -EINVAL @out is untouched and @warn says why where there is a reason to
 * give.
 */
int ppi_topo_plan(const ppi_topo *t, int nworkers, pp_pin_policy policy, const int *list,
                  int nlist, int strict, ppi_place *out, char *warn, size_t warnlen)
{
    int n = 0;
    const char *what = "";

    if (warn && warnlen)
        warn[0] = '\0';
    else
        warnlen = 0;
    if (!t || !out || nworkers < 1 || t->ncores < 1)
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
            if (j < nworkers)
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

    if (nworkers > n && warnlen)
        snprintf(warn, warnlen, "oversubscribed: %d workers on %d %s", nworkers, n, what);
    if (nworkers > n && strict)
        return -EINVAL;

    for (int i = 0; i < nworkers; i++) {
        int pu;
        switch (policy) {
        case PP_PIN_COMPACT:
            pu = t->cores[i % n].first_pu;
            break;
        case PP_PIN_SCATTER:
            pu = t->cores[t->scatter[i % n]].first_pu;
            break;
        case PP_PIN_PUS:
            pu = i % n;
            break;
        default: /* PP_PIN_LIST, validated above */
            pu = pu_index(t, list[i % nlist]);
            break;
        }
        place_pu(t, pu, &out[i]);
    }
    return 0;
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
