/*
 * test_topology.c — the topology planner on synthetic topologies, plus a few
 * checks against this machine. Each Test runs in its own process (Criterion),
 * so changing the affinity or the environment inside one is harmless.
 */
#include "topology.h"

#include <criterion/criterion.h>
#include <hwloc.h> /* HWLOC_VERSION, for the summary line */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXW 256

static ppi_topo *load_syn(const char *s)
{
    ppi_topo *t = NULL;
    int rc = ppi_topo_load(&t, s);
    cr_assert_eq(rc, 0, "ppi_topo_load(\"%s\") = %d", s, rc);
    cr_assert_not_null(t);
    return t;
}

/* Plan and insist on success; returns the warning in @warn. */
static void plan_ok(const ppi_topo *t, int n, pp_pin_policy pol, ppi_place *out, char *warn,
                    size_t wl)
{
    int rc = ppi_topo_plan(t, n, pol, NULL, 0, 0, out, warn, wl);
    cr_assert_eq(rc, 0, "plan(%d workers, policy %d) = %d", n, (int)pol, rc);
}

/* Every place pinned to exactly one CPU, first_cpu being that CPU. */
static void assert_single_cpu(const ppi_place *p, int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(CPU_COUNT(&p[i].cpus), 1, "worker %d has %d cpus", i, CPU_COUNT(&p[i].cpus));
        cr_assert(p[i].first_cpu >= 0 && CPU_ISSET(p[i].first_cpu, &p[i].cpus),
                  "worker %d first_cpu %d", i, p[i].first_cpu);
    }
}

static void assert_distinct_cpus(const ppi_place *p, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(p[i].first_cpu, p[j].first_cpu, "workers %d and %d share cpu %d", i, j,
                          p[i].first_cpu);
}

static void assert_distinct_cores(const ppi_place *p, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(p[i].core, p[j].core, "workers %d and %d share core %d", i, j,
                          p[i].core);
}

Test(topology, one_package_two_cores, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:2 pu:1");
    ppi_place p[2];
    char warn[128], sum[128];

    cr_assert_eq(ppi_topo_cores(t), 2);
    cr_assert_eq(ppi_topo_pus(t), 2);
    ppi_topo_summary(t, sum, sizeof sum);
    cr_assert_str_eq(sum, "1 package, 2 cores, 2 PUs, 1 NUMA node (hwloc " HWLOC_VERSION ")");

    plan_ok(t, 2, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(p[i].first_cpu, i);
        cr_assert_eq(p[i].core, i);
        cr_assert_eq(p[i].package, 0);
        cr_assert_eq(p[i].numa, 0);
    }
    plan_ok(t, 2, PP_PIN_SCATTER, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_distinct_cpus(p, 2);
    ppi_topo_destroy(t);
}

Test(topology, two_sockets_compact_fills_package0, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 core:32 pu:1");
    ppi_place p[64];
    char warn[128];

    cr_assert_eq(ppi_topo_cores(t), 64);
    plan_ok(t, 32, PP_PIN_COMPACT, p, warn, sizeof warn);
    for (int i = 0; i < 32; i++)
        cr_assert_eq(p[i].package, 0, "worker %d on package %d", i, p[i].package);
    plan_ok(t, 64, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 64);
    assert_distinct_cpus(p, 64);
    assert_distinct_cores(p, 64);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(p[i].first_cpu, i);
        cr_assert_eq(p[i].core, i);
        cr_assert_eq(p[i].package, i / 32);
    }
    ppi_topo_destroy(t);
}

Test(topology, two_sockets_scatter_alternates, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 core:32 pu:1");
    ppi_place p[64];
    char warn[128];

    plan_ok(t, 64, PP_PIN_SCATTER, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 64);
    assert_distinct_cpus(p, 64);
    assert_distinct_cores(p, 64);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(p[i].package, i % 2, "worker %d on package %d", i, p[i].package);
        /* within a package, cores in order */
        cr_assert_eq(p[i].first_cpu, (i % 2) * 32 + i / 2);
    }
    /* two workers: one per socket */
    plan_ok(t, 2, PP_PIN_SCATTER, p, warn, sizeof warn);
    cr_assert_neq(p[0].package, p[1].package);
    ppi_topo_destroy(t);
}

Test(topology, smt2_compact_one_pu_per_core, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:4 pu:2");
    ppi_place p[9];
    char warn[128];

    cr_assert_eq(ppi_topo_cores(t), 4);
    cr_assert_eq(ppi_topo_pus(t), 8);
    plan_ok(t, 4, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 4);
    assert_distinct_cores(p, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(p[i].first_cpu, 2 * i, "worker %d: cpu %d, want first PU of core %d", i,
                     p[i].first_cpu, i);
    /* 5 workers on 4 cores is oversubscribed even though there are 8 PUs */
    plan_ok(t, 5, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_eq(warn, "oversubscribed: 5 workers on 4 cores");
    ppi_topo_destroy(t);
}

Test(topology, smt2_pus_uses_every_pu, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:4 pu:2");
    ppi_place p[9];
    char warn[128];

    plan_ok(t, 8, PP_PIN_PUS, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 8);
    assert_distinct_cpus(p, 8);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(p[i].first_cpu, i);
        cr_assert_eq(p[i].core, i / 2);
    }
    plan_ok(t, 9, PP_PIN_PUS, p, warn, sizeof warn);
    cr_assert_str_eq(warn, "oversubscribed: 9 workers on 8 PUs");
    cr_assert_eq(p[8].first_cpu, 0);
    ppi_topo_destroy(t);
}

Test(topology, numa_scatter_spreads_nodes, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 numa:2 core:4 pu:1");
    ppi_place p[16];
    char warn[128], sum[128];
    int seen[4] = {0};

    cr_assert_eq(ppi_topo_cores(t), 16);
    ppi_topo_summary(t, sum, sizeof sum);
    cr_assert(strstr(sum, "2 packages, 16 cores, 16 PUs, 4 NUMA nodes") == sum, "%s", sum);

    plan_ok(t, 16, PP_PIN_COMPACT, p, warn, sizeof warn);
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(p[i].numa, p[i].first_cpu / 4, "cpu %d numa %d", p[i].first_cpu, p[i].numa);
        cr_assert_eq(p[i].package, p[i].first_cpu / 8);
    }

    plan_ok(t, 4, PP_PIN_SCATTER, p, warn, sizeof warn);
    for (int i = 0; i < 4; i++) {
        cr_assert(p[i].numa >= 0 && p[i].numa < 4, "numa %d", p[i].numa);
        cr_assert_eq(seen[p[i].numa]++, 0, "two of 4 workers on NUMA node %d", p[i].numa);
        cr_assert_eq(p[i].package, i % 2);
        cr_assert_eq(p[i].numa, p[i].first_cpu / 4);
    }
    plan_ok(t, 16, PP_PIN_SCATTER, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_distinct_cpus(p, 16);
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(p[i].package, i % 2);
        cr_assert_eq(p[i].numa, p[i].first_cpu / 4);
        cr_assert_eq(p[i].numa, (i % 4 == 0) ? 0 : (i % 4 == 1) ? 2 : (i % 4 == 2) ? 1 : 3,
                     "worker %d numa %d", i, p[i].numa);
    }
    ppi_topo_destroy(t);
}

Test(topology, oversubscription_warns_or_fails, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:4 pu:1");
    ppi_place p[5], sentinel;
    char warn[128];
    pp_pin_policy pols[] = {PP_PIN_COMPACT, PP_PIN_SCATTER, PP_PIN_PUS};

    for (size_t k = 0; k < sizeof pols / sizeof pols[0]; k++) {
        plan_ok(t, 5, pols[k], p, warn, sizeof warn);
        cr_assert_str_eq(warn, pols[k] == PP_PIN_PUS ? "oversubscribed: 5 workers on 4 PUs"
                                                     : "oversubscribed: 5 workers on 4 cores");
        assert_single_cpu(p, 5);
        assert_distinct_cpus(p, 4);
        cr_assert_eq(p[4].first_cpu, p[0].first_cpu, "the fifth worker wraps around");

        memset(p, 0x5a, sizeof p);
        memcpy(&sentinel, &p[0], sizeof sentinel);
        int rc = ppi_topo_plan(t, 5, pols[k], NULL, 0, 1, p, warn, sizeof warn);
        cr_assert_eq(rc, -EINVAL);
        cr_assert_str_not_empty(warn);
        cr_assert(memcmp(&sentinel, &p[0], sizeof sentinel) == 0, "out written on error");

        /* exactly as many workers as cores is fine, strict or not */
        cr_assert_eq(ppi_topo_plan(t, 4, pols[k], NULL, 0, 1, p, warn, sizeof warn), 0);
        cr_assert_str_empty(warn);
    }
    ppi_topo_destroy(t);
}

Test(topology, restricted_odd_subset, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 core:4 pu:2"); /* PUs 0-7 package 0, 8-15 package 1 */
    ppi_place p[5];
    char warn[128], sum[128];
    cpu_set_t set;
    const int want_compact[] = {1, 3, 4, 9}, want_scatter[] = {1, 9, 3, 4};

    CPU_ZERO(&set);
    CPU_SET(1, &set);
    CPU_SET(3, &set);
    CPU_SET(4, &set);
    CPU_SET(9, &set);
    cr_assert_eq(ppi_topo_restrict(t, &set), 0);
    cr_assert_eq(ppi_topo_cores(t), 4);
    cr_assert_eq(ppi_topo_pus(t), 4);
    ppi_topo_summary(t, sum, sizeof sum);
    cr_assert(strstr(sum, "2 packages, 4 cores, 4 PUs") == sum, "%s", sum);

    plan_ok(t, 4, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(p[i].first_cpu, want_compact[i], "compact worker %d: cpu %d", i,
                     p[i].first_cpu);
        cr_assert_eq(p[i].core, i, "restricted cores are renumbered");
        cr_assert_eq(p[i].package, p[i].first_cpu / 8);
    }
    plan_ok(t, 4, PP_PIN_SCATTER, p, warn, sizeof warn);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(p[i].first_cpu, want_scatter[i], "scatter worker %d: cpu %d", i,
                     p[i].first_cpu);
    plan_ok(t, 4, PP_PIN_PUS, p, warn, sizeof warn);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(p[i].first_cpu, want_compact[i]);
    plan_ok(t, 5, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_eq(warn, "oversubscribed: 5 workers on 4 cores");

    /* nothing left -> -EINVAL, topology unchanged */
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    CPU_SET(100, &set);
    cr_assert_eq(ppi_topo_restrict(t, &set), -EINVAL);
    cr_assert_eq(ppi_topo_cores(t), 4);
    plan_ok(t, 4, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_eq(p[3].first_cpu, 9);
    ppi_topo_destroy(t);
}

Test(topology, list_policy, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:4 pu:1");
    ppi_place p[3];
    char warn[128];
    const int list[] = {3, 1}, bad[] = {0, 99}, two[] = {2, 1};

    cr_assert_eq(ppi_topo_plan(t, 2, PP_PIN_LIST, list, 2, 1, p, warn, sizeof warn), 0);
    cr_assert_str_empty(warn);
    cr_assert_eq(p[0].first_cpu, 3);
    cr_assert_eq(p[1].first_cpu, 1);
    cr_assert_eq(p[0].core, 3);
    cr_assert_eq(p[0].package, 0);
    cr_assert_eq(p[0].numa, 0);

    /* shorter list: cycled, with a warning; strict refuses */
    cr_assert_eq(ppi_topo_plan(t, 3, PP_PIN_LIST, list, 2, 0, p, warn, sizeof warn), 0);
    cr_assert_eq(p[2].first_cpu, 3);
    cr_assert_str_eq(warn, "oversubscribed: 3 workers on 2 listed CPUs");
    cr_assert_eq(ppi_topo_plan(t, 3, PP_PIN_LIST, list, 2, 1, p, warn, sizeof warn), -EINVAL);

    /* a PU that is not in the topology */
    cr_assert_eq(ppi_topo_plan(t, 2, PP_PIN_LIST, bad, 2, 0, p, warn, sizeof warn), -EINVAL);
    cr_assert(strstr(warn, "99") != NULL, "%s", warn);
    /* ... even in the part of the list not used by these workers */
    cr_assert_eq(ppi_topo_plan(t, 1, PP_PIN_LIST, bad, 2, 0, p, warn, sizeof warn), -EINVAL);
    /* no list */
    cr_assert_eq(ppi_topo_plan(t, 2, PP_PIN_LIST, NULL, 0, 0, p, warn, sizeof warn), -EINVAL);
    cr_assert_eq(ppi_topo_plan(t, 2, PP_PIN_LIST, two, 0, 0, p, warn, sizeof warn), -EINVAL);
    ppi_topo_destroy(t);
}

Test(topology, none_pins_nothing, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 core:2 pu:2");
    static ppi_place p[MAXW];
    char warn[128];

    /* many more workers than PUs: no warning, nothing to oversubscribe */
    cr_assert_eq(ppi_topo_plan(t, MAXW, PP_PIN_NONE, NULL, 0, 1, p, warn, sizeof warn), 0);
    cr_assert_str_empty(warn);
    for (int i = 0; i < MAXW; i++) {
        cr_assert_eq(CPU_COUNT(&p[i].cpus), 0);
        cr_assert_eq(p[i].first_cpu, -1);
        cr_assert_eq(p[i].core, -1);
        cr_assert_eq(p[i].package, -1);
        cr_assert_eq(p[i].numa, -1);
    }
    cr_assert_eq(ppi_topo_bind_self(&p[0]), 0, "binding an unpinned place is a no-op");
    ppi_topo_destroy(t);
}

Test(topology, bad_arguments, .timeout = 30)
{
    ppi_topo *t = load_syn("package:1 core:2 pu:1");
    ppi_place p[3];
    char warn[128];

    cr_assert_eq(ppi_topo_plan(t, 0, PP_PIN_COMPACT, NULL, 0, 0, p, warn, sizeof warn), -EINVAL);
    cr_assert_eq(ppi_topo_plan(t, -3, PP_PIN_NONE, NULL, 0, 0, p, warn, sizeof warn), -EINVAL);
    cr_assert_eq(ppi_topo_plan(t, 2, PP_PIN_COMPACT, NULL, 0, 0, NULL, warn, sizeof warn),
                 -EINVAL);
    cr_assert_eq(ppi_topo_plan(NULL, 2, PP_PIN_COMPACT, NULL, 0, 0, p, warn, sizeof warn),
                 -EINVAL);
    cr_assert_eq(ppi_topo_plan(t, 2, (pp_pin_policy)42, NULL, 0, 0, p, warn, sizeof warn),
                 -EINVAL);
    /* no warning buffer is fine; a tiny one is truncated, not overrun */
    cr_assert_eq(ppi_topo_plan(t, 3, PP_PIN_COMPACT, NULL, 0, 0, p, NULL, 0), 0);
    memset(warn, 'x', sizeof warn);
    cr_assert_eq(ppi_topo_plan(t, 3, PP_PIN_COMPACT, NULL, 0, 0, p, warn, 8), 0);
    cr_assert_str_eq(warn, "oversub");
    cr_assert_eq(warn[8], 'x');
    ppi_topo_destroy(t);
}

Test(topology, bad_synthetic_string, .timeout = 30)
{
    const char *bad[] = {"bogus:3", "package:2 core:", "package:0 core:2", "core:2 pu:1 pu:2"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ppi_topo *t = (ppi_topo *)1;
        cr_assert_eq(ppi_topo_load(&t, bad[i]), -EINVAL, "\"%s\" accepted", bad[i]);
        cr_assert_null(t);
    }
    cr_assert_eq(ppi_topo_load(NULL, "package:1 core:1 pu:1"), -EINVAL);
}

Test(topology, plan_is_pure, .timeout = 30)
{
    ppi_topo *a = load_syn("package:2 numa:2 core:4 pu:2");
    ppi_topo *b = load_syn("package:2 numa:2 core:4 pu:2");
    pp_pin_policy pols[] = {PP_PIN_COMPACT, PP_PIN_SCATTER, PP_PIN_PUS, PP_PIN_NONE};
    static ppi_place x[40], y[40], z[40];
    char w1[128], w2[128], w3[128];

    for (size_t k = 0; k < sizeof pols / sizeof pols[0]; k++) {
        memset(x, 0, sizeof x);
        memset(y, 0, sizeof y);
        memset(z, 0, sizeof z);
        plan_ok(a, 40, pols[k], x, w1, sizeof w1);
        plan_ok(a, 40, pols[k], y, w2, sizeof w2);
        plan_ok(b, 40, pols[k], z, w3, sizeof w3);
        cr_assert(memcmp(x, y, sizeof x) == 0, "policy %d: two plans differ", (int)pols[k]);
        cr_assert(memcmp(x, z, sizeof x) == 0, "policy %d: two handles differ", (int)pols[k]);
        cr_assert_str_eq(w1, w2);
        cr_assert_str_eq(w1, w3);
    }
    ppi_topo_destroy(a);
    ppi_topo_destroy(b);
}

Test(topology, this_machine, .timeout = 30)
{
    ppi_topo *t = NULL;
    cpu_set_t aff;
    static ppi_place p[CPU_SETSIZE];
    char warn[128], sum[256];
    int n;

    cr_assert_eq(ppi_topo_load(&t, NULL), 0);
    n = ppi_topo_cores(t);
    cr_assert_geq(n, 1);
    cr_assert_geq(ppi_topo_pus(t), n);
    ppi_topo_summary(t, sum, sizeof sum);
    cr_log_info("this machine: %s", sum);

    cr_assert_eq(sched_getaffinity(0, sizeof aff, &aff), 0);
    cr_assert_leq(n, CPU_COUNT(&aff), "more cores (%d) than allowed CPUs (%d)", n,
                  CPU_COUNT(&aff));
    plan_ok(t, n, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_str_empty(warn);
    assert_single_cpu(p, n);
    assert_distinct_cpus(p, n);
    assert_distinct_cores(p, n);
    for (int i = 0; i < n; i++)
        cr_assert(CPU_ISSET(p[i].first_cpu, &aff), "worker %d on cpu %d, not in affinity", i,
                  p[i].first_cpu);
    plan_ok(t, ppi_topo_pus(t), PP_PIN_PUS, p, warn, sizeof warn);
    for (int i = 0; i < ppi_topo_pus(t); i++)
        cr_assert(CPU_ISSET(p[i].first_cpu, &aff));
    ppi_topo_destroy(t);
}

/* Pin to one allowed CPU first: the topology must shrink to it. */
Test(topology, this_machine_follows_affinity, .timeout = 30)
{
    ppi_topo *t = NULL;
    cpu_set_t aff, one;
    ppi_place p[2];
    char warn[128];
    int last = -1;

    cr_assert_eq(sched_getaffinity(0, sizeof aff, &aff), 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &aff))
            last = c;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);

    cr_assert_eq(ppi_topo_load(&t, NULL), 0);
    cr_assert_eq(ppi_topo_cores(t), 1);
    cr_assert_eq(ppi_topo_pus(t), 1);
    plan_ok(t, 2, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert_eq(p[0].first_cpu, last);
    cr_assert_eq(p[1].first_cpu, last);
    cr_assert_str_eq(warn, "oversubscribed: 2 workers on 1 core");
    ppi_topo_destroy(t);
}

Test(topology, bind_self, .timeout = 30)
{
    ppi_topo *t = NULL;
    cpu_set_t now;
    ppi_place p[CPU_SETSIZE];
    char warn[128];
    int n;

    cr_assert_eq(ppi_topo_load(&t, NULL), 0);
    n = ppi_topo_cores(t);
    plan_ok(t, n, PP_PIN_COMPACT, p, warn, sizeof warn);
    for (int i = n - 1; i >= 0; i--) {
        cr_assert_eq(ppi_topo_bind_self(&p[i]), 0);
        cr_assert_eq(sched_getaffinity(0, sizeof now, &now), 0);
        cr_assert(CPU_EQUAL(&now, &p[i].cpus), "affinity is not worker %d's place", i);
        cr_assert_eq(sched_getcpu(), p[i].first_cpu);
    }
    ppi_topo_destroy(t);
}

Test(topology, affinity_fallback, .timeout = 30)
{
    ppi_topo *t = NULL;
    cpu_set_t aff;
    static ppi_place p[CPU_SETSIZE];
    char warn[128], sum[256];
    int n;

    cr_assert_eq(sched_getaffinity(0, sizeof aff, &aff), 0);
    cr_assert_eq(ppi_topo_load_affinity(&t), 0);
    n = ppi_topo_cores(t);
    cr_assert_eq(n, CPU_COUNT(&aff));
    cr_assert_eq(ppi_topo_pus(t), n);
    ppi_topo_summary(t, sum, sizeof sum);
    cr_assert(strstr(sum, "1 package, ") == sum, "%s", sum);
    cr_assert(strstr(sum, "(sched_getaffinity fallback)") != NULL, "%s", sum);

    plan_ok(t, n, PP_PIN_SCATTER, p, warn, sizeof warn);
    assert_single_cpu(p, n);
    assert_distinct_cpus(p, n);
    for (int i = 0; i < n; i++) {
        cr_assert(CPU_ISSET(p[i].first_cpu, &aff));
        cr_assert_eq(p[i].package, 0);
        cr_assert_eq(p[i].numa, -1);
    }
    /* restricting the fallback works too */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(p[n - 1].first_cpu, &one);
    cr_assert_eq(ppi_topo_restrict(t, &one), 0);
    cr_assert_eq(ppi_topo_cores(t), 1);
    plan_ok(t, 1, PP_PIN_COMPACT, p, warn, sizeof warn);
    cr_assert(CPU_EQUAL(&p[0].cpus, &one));
    ppi_topo_destroy(t);
}

/*
 * Make hwloc "fail" for this machine: HWLOC_SYNTHETIC (an hwloc environment
 * variable) replaces the machine by a one-PU topology, PU 0, while this
 * process may only run on another CPU. ppi_topo_load(NULL) must fall back
 * to sched_getaffinity and say so exactly once, however often it is called.
 */
Test(topology, hwloc_failure_falls_back_once, .timeout = 30)
{
    cpu_set_t aff, one;
    int target = -1, saved, nlines = 0, nwarn = 0;
    FILE *tmp;
    char line[512];

    cr_assert_eq(sched_getaffinity(0, sizeof aff, &aff), 0);
    for (int c = 1; c < CPU_SETSIZE && target < 0; c++)
        if (CPU_ISSET(c, &aff))
            target = c;
    if (target < 0)
        cr_skip_test("needs an allowed CPU other than 0");
    CPU_ZERO(&one);
    CPU_SET(target, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    cr_assert_eq(setenv("HWLOC_SYNTHETIC", "pu:1", 1), 0);

    tmp = tmpfile();
    cr_assert_not_null(tmp);
    fflush(stderr);
    saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(tmp), 2), 0);
    for (int k = 0; k < 3; k++) {
        ppi_topo *t = NULL;
        ppi_place p;
        int rc = ppi_topo_load(&t, NULL);
        if (rc == 0) {
            nlines += ppi_topo_cores(t) == 1 &&
                      ppi_topo_plan(t, 1, PP_PIN_COMPACT, NULL, 0, 0, &p, NULL, 0) == 0 &&
                      p.first_cpu == target;
            ppi_topo_destroy(t);
        }
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    cr_assert_eq(nlines, 3, "the fallback topology is not the affinity mask");
    rewind(tmp);
    while (fgets(line, sizeof line, tmp)) {
        cr_assert(strncmp(line, "ppool: hwloc failed (", 21) == 0, "unexpected: %s", line);
        cr_assert(strstr(line, "), using sched_getaffinity\n") != NULL, "%s", line);
        nwarn++;
    }
    fclose(tmp);
    cr_assert_eq(nwarn, 1, "%d warnings", nwarn);
}
