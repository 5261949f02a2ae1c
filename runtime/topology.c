/*
 * topology.c — which cores this process may use: loading the machine (hwloc,
 * or the sched_getaffinity fallback) into a flat snapshot.
 *
 * A ppi_topo is an hwloc topology (or, when hwloc fails, a list of the CPUs
 * in sched_getaffinity) plus a flat snapshot taken from it once:
 *
 *   cores[]   usable physical cores in hwloc logical order (package 0 first),
 *   pus[]     their usable PUs, core by core, in logical order,
 *   scatter[] the cores in SCATTER order (see build_scatter()).
 *
 * The planner (placement.c) reads only the snapshot (topology_snap.h), so
 * ppi_topo_plan() is a pure function of (snapshot, workers, policy): it
 * allocates nothing, touches no global state and makes no system call,
 * which is what lets the tests check it on synthetic topologies on any
 * machine. See docs/topology.md.
 *
 * Thread safety: one handle is not thread-safe against ppi_topo_restrict() or
 * ppi_topo_destroy() (like hwloc_topology_t). The read-only calls
 * (ppi_topo_cores/pus/plan/summary) never modify the handle and may run
 * concurrently with each other. Distinct handles are independent.
 */
#include "topology.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hwloc.h>

#include "topology_snap.h"

/* ------------------------------------------------------------------------ */
/* snapshot                                                                 */
/* ------------------------------------------------------------------------ */

static void snap_free(ppi_topo *t)
{
    free(t->cores);
    free(t->pus);
    free(t->scatter);
    t->cores = NULL;
    t->pus = NULL;
    t->scatter = NULL;
    t->ncores = t->npus = t->npackages = t->nnuma = 0;
}

/* Allocate the snapshot arrays for at most @maxcores cores and @maxpus PUs. */
static int snap_alloc(ppi_topo *t, int maxcores, int maxpus)
{
    if (maxcores < 1)
        maxcores = 1;
    if (maxpus < 1)
        maxpus = 1;
    t->cores = calloc((size_t)maxcores, sizeof *t->cores);
    t->pus = calloc((size_t)maxpus, sizeof *t->pus);
    t->scatter = calloc((size_t)maxcores, sizeof *t->scatter);
    if (!t->cores || !t->pus || !t->scatter) {
        snap_free(t);
        return -ENOMEM;
    }
    return 0;
}

/*
 * SCATTER order: a hierarchical round robin. Cores are grouped into packages
 * and, inside a package, into domains (cores sharing a NUMA node; one domain
 * per package when NUMA is unknown). Each round visits every package in
 * order; a package hands out one core from its next domain (round robin over
 * its domains), and a domain hands out its cores in logical order. Packages
 * or domains that run out are skipped. So consecutive workers alternate
 * packages first, then NUMA nodes within a package, then cores.
 * (This is our own round robin, not hwloc_distrib(), which gives contiguous
 * blocks rather than alternation.)
 */
static int build_scatter(ppi_topo *t)
{
    int n = t->ncores, np = 0, nd = 0, emitted = 0;
    int *pkey = malloc((size_t)n * sizeof *pkey);     /* package value per package slot */
    int *pcur = malloc((size_t)n * sizeof *pcur);     /* last domain served, per package */
    int *dpkg = malloc((size_t)n * sizeof *dpkg);     /* package slot per domain */
    int *dnuma = malloc((size_t)n * sizeof *dnuma);   /* numa value per domain */
    int *dleft = malloc((size_t)n * sizeof *dleft);   /* cores not yet handed out */
    int *dpos = malloc((size_t)n * sizeof *dpos);     /* next core index to scan */
    int *cdom = malloc((size_t)n * sizeof *cdom);     /* domain of each core */
    int rc = 0;

    if (!pkey || !pcur || !dpkg || !dnuma || !dleft || !dpos || !cdom) {
        rc = -ENOMEM;
        goto out;
    }
    for (int c = 0; c < n; c++) {
        int p, d;
        for (p = 0; p < np && pkey[p] != t->cores[c].package; p++)
            ;
        if (p == np) {
            pkey[np] = t->cores[c].package;
            pcur[np] = -1;
            np++;
        }
        for (d = 0; d < nd && !(dpkg[d] == p && dnuma[d] == t->cores[c].numa); d++)
            ;
        if (d == nd) {
            dpkg[nd] = p;
            dnuma[nd] = t->cores[c].numa;
            dleft[nd] = 0;
            dpos[nd] = c;
            nd++;
        }
        dleft[d]++;
        cdom[c] = d;
    }
    while (emitted < n) {
        for (int p = 0; p < np && emitted < n; p++) {
            int d = -1;
            for (int step = 1; step <= nd; step++) {
                int cand = (pcur[p] + step) % nd;
                if (cand < 0)
                    cand += nd;
                if (dpkg[cand] == p && dleft[cand] > 0) {
                    d = cand;
                    break;
                }
            }
            if (d < 0)
                continue; /* this package is used up */
            while (cdom[dpos[d]] != d)
                dpos[d]++;
            t->scatter[emitted++] = dpos[d]++;
            dleft[d]--;
            pcur[p] = d;
        }
    }
out:
    free(pkey);
    free(pcur);
    free(dpkg);
    free(dnuma);
    free(dleft);
    free(dpos);
    free(cdom);
    return rc;
}

/* Count distinct packages and NUMA nodes, then build the SCATTER order. */
static int snap_finish(ppi_topo *t)
{
    hwloc_bitmap_t pk = hwloc_bitmap_alloc(), nu = hwloc_bitmap_alloc();
    int rc = 0;

    if (!pk || !nu) {
        rc = -ENOMEM;
        goto out;
    }
    for (int c = 0; c < t->ncores; c++)
        if (t->cores[c].package >= 0)
            hwloc_bitmap_set(pk, (unsigned)t->cores[c].package);
    for (int i = 0; i < t->npus; i++)
        if (t->pus[i].numa >= 0)
            hwloc_bitmap_set(nu, (unsigned)t->pus[i].numa);
    t->npackages = hwloc_bitmap_weight(pk);
    t->nnuma = hwloc_bitmap_weight(nu);
    rc = build_scatter(t);
out:
    hwloc_bitmap_free(pk);
    hwloc_bitmap_free(nu);
    return rc;
}

/* OS index of the first NUMA node (logical order) whose cpuset holds PU @os. */
static int numa_of(hwloc_topology_t hw, unsigned os)
{
    hwloc_obj_t n = NULL;

    while ((n = hwloc_get_next_obj_by_type(hw, HWLOC_OBJ_NUMANODE, n)) != NULL)
        if (n->cpuset && hwloc_bitmap_isset(n->cpuset, os))
            return n->os_index == HWLOC_UNKNOWN_INDEX ? -1 : (int)n->os_index;
    return -1;
}

/*
 * Snapshot of t->hw. A topology without Core objects (some VMs, synthetic
 * strings without "core:") treats every PU as its own core. PUs whose OS
 * index does not fit a cpu_set_t (>= CPU_SETSIZE) are left out; a core left
 * with no PU is left out. Returns 0 or -ENOMEM.
 */
static int snap_hwloc(ppi_topo *t)
{
    hwloc_topology_t hw = t->hw;
    hwloc_obj_type_t ctype = HWLOC_OBJ_CORE;
    int nc = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_CORE);
    int np = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
    int rc;

    if (nc <= 0) {
        ctype = HWLOC_OBJ_PU;
        nc = np;
    }
    rc = snap_alloc(t, nc, np);
    if (rc)
        return rc;
    for (int i = 0; i < nc; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(hw, ctype, (unsigned)i);
        hwloc_obj_t pkg, pu = NULL;
        int first = t->npus;

        if (!core || !core->cpuset)
            continue;
        while ((pu = hwloc_get_next_obj_inside_cpuset_by_type(hw, core->cpuset, HWLOC_OBJ_PU,
                                                              pu)) != NULL) {
            if (pu->os_index >= CPU_SETSIZE || t->npus >= np)
                continue;
            t->pus[t->npus].os = (int)pu->os_index;
            t->pus[t->npus].numa = numa_of(hw, pu->os_index);
            t->pus[t->npus].core = t->ncores;
            t->npus++;
        }
        if (t->npus == first)
            continue;
        pkg = hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_PACKAGE, core);
        t->cores[t->ncores].logical = (int)core->logical_index;
        t->cores[t->ncores].package = pkg ? (int)pkg->logical_index : -1;
        t->cores[t->ncores].numa = t->pus[first].numa;
        t->cores[t->ncores].first_pu = first;
        t->cores[t->ncores].npu = t->npus - first;
        t->ncores++;
    }
    rc = snap_finish(t);
    if (rc)
        snap_free(t);
    return rc;
}

/* Fallback snapshot: one core (and PU) per CPU in @mask, package 0, no NUMA. */
static int snap_mask(ppi_topo *t, const cpu_set_t *mask)
{
    int n = CPU_COUNT(mask), rc;

    rc = snap_alloc(t, n, n);
    if (rc)
        return rc;
    for (int cpu = 0; cpu < CPU_SETSIZE && t->ncores < n; cpu++) {
        if (!CPU_ISSET(cpu, mask))
            continue;
        t->pus[t->npus].os = cpu;
        t->pus[t->npus].numa = -1;
        t->pus[t->npus].core = t->ncores;
        t->cores[t->ncores].logical = t->ncores;
        t->cores[t->ncores].package = 0;
        t->cores[t->ncores].numa = -1;
        t->cores[t->ncores].first_pu = t->npus;
        t->cores[t->ncores].npu = 1;
        t->npus++;
        t->ncores++;
    }
    rc = snap_finish(t);
    if (rc)
        snap_free(t);
    return rc;
}

/* The calling thread's affinity; all online CPUs if the kernel will not say. */
static void affinity_mask(cpu_set_t *mask)
{
    CPU_ZERO(mask);
    if (sched_getaffinity(0, sizeof *mask, mask) == 0 && CPU_COUNT(mask) > 0)
        return;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    CPU_ZERO(mask);
    for (long i = 0; i < n && i < CPU_SETSIZE; i++)
        CPU_SET((int)i, mask);
}

/* ------------------------------------------------------------------------ */
/* loading                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Load this machine into t->hw, restricted to the PUs this process may use.
 * Disallowed PUs (cgroup cpuset) are dropped by hwloc by default;
 * HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING drops those outside the process
 * binding (taskset, Slurm, numactl). Then we restrict to the calling thread's
 * sched_getaffinity mask, the one the manager and workers forked from it
 * inherit: that catches a thread pinned on its own (hwloc reports the union
 * over all threads) and topologies hwloc did not read from this machine
 * (HWLOC_XMLFILE / HWLOC_SYNTHETIC in the environment). So a thread pinned
 * by e.g. OpenMP sees only its own CPUs, as os.sched_getaffinity(0) does.
 * Returns 0, -ENOMEM, or -EIO with @why filled when hwloc failed (including
 * a topology sharing no PU with the mask).
 */
static int load_machine(ppi_topo *t, char *why, size_t whylen)
{
    hwloc_topology_t hw;
    hwloc_bitmap_t bind;
    int rc;

    /* hwloc (2.9 at least) retries sched_getaffinity with ever larger sets
     * for as long as it fails, whatever the error: a seccomp profile that
     * denies it would hang us at 100 % CPU. Ask first; EINVAL only means a
     * set too small for the kernel's CPU count, so try a large one then. */
    {
        cpu_set_t probe;
        int ok = sched_getaffinity(0, sizeof probe, &probe) == 0, err = errno;
        if (!ok && err == EINVAL) {
            cpu_set_t *big = CPU_ALLOC(1 << 18);
            ok = big && sched_getaffinity(0, CPU_ALLOC_SIZE(1 << 18), big) == 0;
            err = big ? errno : ENOMEM;
            if (big)
                CPU_FREE(big);
        }
        if (!ok) {
            snprintf(why, whylen, "sched_getaffinity: %s", strerror(err));
            return -EIO;
        }
    }
    if (hwloc_topology_init(&hw) != 0) {
        snprintf(why, whylen, "hwloc_topology_init: %s", strerror(errno));
        return -EIO;
    }
    /* hwloc 2 refuses RESTRICT_TO_CPUBINDING without IS_THISSYSTEM (binding
     * support is needed to read the process binding). */
    if (hwloc_topology_set_flags(hw, HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM |
                                         HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING) != 0) {
        snprintf(why, whylen, "hwloc_topology_set_flags: %s", strerror(errno));
        hwloc_topology_destroy(hw);
        return -EIO;
    }
    if (hwloc_topology_load(hw) != 0) {
        snprintf(why, whylen, "hwloc_topology_load: %s", strerror(errno));
        hwloc_topology_destroy(hw);
        return -EIO;
    }
    bind = hwloc_bitmap_alloc();
    if (!bind) {
        hwloc_topology_destroy(hw);
        return -ENOMEM;
    }
    {
        cpu_set_t mask;
        affinity_mask(&mask);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, &mask))
                hwloc_bitmap_set(bind, (unsigned)cpu);
    }
    {
        hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(hw);
        const char *fail = NULL;
        if (!hwloc_bitmap_intersects(all, bind))
            fail = "its PUs are not this process's CPUs";
        else if (!hwloc_bitmap_isincluded(all, bind) && hwloc_topology_restrict(hw, bind, 0) != 0)
            fail = strerror(errno);
        if (fail) {
            snprintf(why, whylen, "hwloc_topology_restrict: %s", fail);
            hwloc_bitmap_free(bind);
            hwloc_topology_destroy(hw);
            return -EIO;
        }
    }
    hwloc_bitmap_free(bind);
    t->hw = hw;
    rc = snap_hwloc(t);
    if (rc == 0 && t->ncores == 0) {
        snprintf(why, whylen, "no usable PU found");
        rc = -EIO;
    }
    if (rc) {
        snap_free(t);
        hwloc_topology_destroy(hw);
        t->hw = NULL;
    }
    return rc;
}

/* The fallback warning, once per process whatever the number of threads. */
static void warn_fallback_once(const char *why)
{
    static atomic_int warned;

    if (atomic_exchange(&warned, 1) == 0)
        fprintf(stderr, "ppool: hwloc failed (%s), using sched_getaffinity\n", why);
}

/**
 * ppi_topo_load - discover a topology; see topology.h.
 * Ownership: on success *out is a new handle owned by the caller, to be
 * freed with ppi_topo_destroy(); on error *out is NULL.
 * Thread safety: safe to call from any thread; the fallback warning is
 * printed at most once per process.
 * Returns 0, -ENOMEM, or -EINVAL (NULL @out, bad synthetic string, or a
 * synthetic topology with no PU below CPU_SETSIZE).
 */
int ppi_topo_load(ppi_topo **out, const char *synthetic)
{
    ppi_topo *t;
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;

    if (synthetic) {
        if (hwloc_topology_init(&t->hw) != 0) {
            free(t);
            return -ENOMEM;
        }
        if (hwloc_topology_set_synthetic(t->hw, synthetic) != 0) {
            rc = -EINVAL;
            goto fail;
        }
        if (hwloc_topology_load(t->hw) != 0) {
            rc = errno == ENOMEM ? -ENOMEM : -EINVAL;
            goto fail;
        }
        rc = snap_hwloc(t);
        if (rc == 0 && t->ncores == 0)
            rc = -EINVAL;
        if (rc)
            goto fail;
    } else {
        char why[160] = "unknown error";
        rc = load_machine(t, why, sizeof why);
        if (rc == -EIO) {
            cpu_set_t mask;
            warn_fallback_once(why);
            affinity_mask(&mask);
            rc = snap_mask(t, &mask);
        }
        if (rc)
            goto fail;
    }
    *out = t;
    return 0;
fail:
    ppi_topo_destroy(t);
    return rc;
}

/**
 * ppi_topo_load_affinity - the sched_getaffinity-only topology; see
 * topology.h. Ownership as ppi_topo_load(). Prints nothing.
 * Returns 0, -ENOMEM, or -EINVAL (NULL @out).
 */
int ppi_topo_load_affinity(ppi_topo **out)
{
    cpu_set_t mask;
    ppi_topo *t;
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    affinity_mask(&mask);
    rc = snap_mask(t, &mask);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/**
 * ppi_topo_restrict - keep only the PUs in @allowed; see topology.h.
 * Cores, packages and NUMA nodes left without a usable PU disappear, and
 * hwloc renumbers logical indexes, so core/package numbers in later plans
 * are those of the restricted topology.
 * Thread safety: not with any other call on @t.
 * Returns 0; -EINVAL if @t or @allowed is NULL or nothing would remain (then
 * @t is unchanged); -ENOMEM, after which @t may only be destroyed.
 */
int ppi_topo_restrict(ppi_topo *t, const cpu_set_t *allowed)
{
    cpu_set_t keep;
    int rc;

    if (!t || !allowed)
        return -EINVAL;
    CPU_ZERO(&keep);
    for (int i = 0; i < t->npus; i++)
        if (CPU_ISSET(t->pus[i].os, allowed))
            CPU_SET(t->pus[i].os, &keep);
    if (CPU_COUNT(&keep) == 0)
        return -EINVAL;

    if (!t->hw) {
        snap_free(t);
        return snap_mask(t, &keep);
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set)
        return -ENOMEM;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &keep))
            hwloc_bitmap_set(set, (unsigned)cpu);
    rc = hwloc_topology_restrict(t->hw, set, 0) == 0 ? 0 : errno == EINVAL ? -EINVAL : -ENOMEM;
    hwloc_bitmap_free(set);
    if (rc == -EINVAL)
        return rc; /* hwloc left the topology (and so our snapshot) as it was */
    snap_free(t);
    return rc ? rc : snap_hwloc(t);
}

/**
 * ppi_topo_cores - usable physical cores (>= 1 for a loaded handle).
 * Read-only; 0 for NULL.
 */
int ppi_topo_cores(const ppi_topo *t)
{
    return t ? t->ncores : 0;
}

/**
 * ppi_topo_pus - usable hardware threads (>= 1 for a loaded handle).
 * Read-only; 0 for NULL.
 */
int ppi_topo_pus(const ppi_topo *t)
{
    return t ? t->npus : 0;
}

/**
 * ppi_topo_summary - one line such as
 * "2 packages, 64 cores, 64 PUs, 2 NUMA nodes (hwloc 2.9.0)", counting only
 * what this process may use; the fallback ends in "(sched_getaffinity
 * fallback)". Writes at most @len bytes, always NUL-terminated when @len > 0.
 * Read-only.
 */
void ppi_topo_summary(const ppi_topo *t, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    if (!t) {
        snprintf(buf, len, "no topology");
        return;
    }
#ifdef HWLOC_VERSION
    const char *src = t->hw ? "hwloc " HWLOC_VERSION : "sched_getaffinity fallback";
#else
    const char *src = t->hw ? "hwloc" : "sched_getaffinity fallback";
#endif
    snprintf(buf, len, "%d package%s, %d core%s, %d PU%s, %d NUMA node%s (%s)", t->npackages,
             t->npackages == 1 ? "" : "s", t->ncores, t->ncores == 1 ? "" : "s", t->npus,
             t->npus == 1 ? "" : "s", t->nnuma, t->nnuma == 1 ? "" : "s", src);
}

/**
 * ppi_topo_destroy - free @t, its snapshot and its hwloc topology.
 * NULL is a no-op. Must be the last call on @t.
 */
void ppi_topo_destroy(ppi_topo *t)
{
    if (!t)
        return;
    snap_free(t);
    if (t->hw)
        hwloc_topology_destroy(t->hw);
    free(t);
}
