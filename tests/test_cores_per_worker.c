/*
 * test_cores_per_worker.c — pp_config.cores_per_worker: the planner's blocks
 * of k cores on synthetic topologies, and on this machine workers bound to
 * their k cores whose OpenMP runtime runs k threads there, with the thread
 * variables set (or kept, or overridden) before the initializer, under
 * whatever start method PPOOL_START_METHOD names (CTest runs the default,
 * @fork and @spawn legs). Each Test runs in its own process (Criterion), so
 * changing the environment inside one is harmless.
 */
#include "pp_testutil.h"
#include "topology.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* the planner, on synthetic topologies                                      */
/* ------------------------------------------------------------------------ */

static ppi_topo *load_syn(const char *s)
{
    ppi_topo *t = NULL;
    cr_assert_eq(ppi_topo_load(&t, s), 0, "load \"%s\"", s);
    return t;
}

/* Place @p holds exactly the OS PUs in @cpus (-1 terminated). */
static void assert_cpus(const ppi_place *p, const int *cpus, int w)
{
    int n = 0;
    for (; cpus[n] >= 0; n++)
        cr_assert(CPU_ISSET(cpus[n], &p->cpus), "worker %d lacks cpu %d", w, cpus[n]);
    cr_assert_eq(CPU_COUNT(&p->cpus), n, "worker %d has %d cpus, want %d", w,
                 CPU_COUNT(&p->cpus), n);
    cr_assert_eq(p->first_cpu, cpus[0] < cpus[n - 1] ? cpus[0] : cpus[n - 1], "worker %d", w);
}

Test(cores_plan, compact_blocks_on_first_pu_of_each_core, .timeout = 20)
{
    /* 2 packages x 4 cores x 2 PUs: core c has PUs 2c, 2c+1. */
    ppi_topo *t = load_syn("package:2 core:4 pu:2");
    ppi_place p[4];
    char warn[128];
    cr_assert_eq(ppi_topo_plan_k(t, 4, 2, PP_PIN_COMPACT, NULL, 0, 1, p, warn, sizeof warn), 0);
    cr_assert_str_empty(warn);
    static const int want[4][3] = {{0, 2, -1}, {4, 6, -1}, {8, 10, -1}, {12, 14, -1}};
    for (int i = 0; i < 4; i++) {
        assert_cpus(&p[i], want[i], i);
        cr_assert_eq(p[i].core, 2 * i);
        cr_assert_eq(p[i].package, i / 2, "a block stays inside its package");
    }
    ppi_topo_destroy(t);
}

Test(cores_plan, scatter_spreads_blocks_over_packages, .timeout = 20)
{
    ppi_topo *t = load_syn("package:2 core:4 pu:1");
    ppi_place p[4];
    cr_assert_eq(ppi_topo_plan_k(t, 4, 2, PP_PIN_SCATTER, NULL, 0, 1, p, NULL, 0), 0);
    static const int want[4][3] = {{0, 1, -1}, {4, 5, -1}, {2, 3, -1}, {6, 7, -1}};
    for (int i = 0; i < 4; i++) {
        assert_cpus(&p[i], want[i], i);
        cr_assert_eq(p[i].package, i % 2, "worker %d alternates packages", i);
    }
    ppi_topo_destroy(t);
}

Test(cores_plan, pus_and_list_take_k_units, .timeout = 20)
{
    ppi_topo *t = load_syn("core:2 pu:2");
    ppi_place p[2];
    cr_assert_eq(ppi_topo_plan_k(t, 2, 2, PP_PIN_PUS, NULL, 0, 1, p, NULL, 0), 0);
    assert_cpus(&p[0], (const int[]){0, 1, -1}, 0);
    assert_cpus(&p[1], (const int[]){2, 3, -1}, 1);
    const int list[] = {3, 1, 2, 0};
    cr_assert_eq(ppi_topo_plan_k(t, 2, 2, PP_PIN_LIST, list, 4, 1, p, NULL, 0), 0);
    assert_cpus(&p[0], (const int[]){1, 3, -1}, 0);
    assert_cpus(&p[1], (const int[]){0, 2, -1}, 1);
    cr_assert_eq(ppi_topo_plan_k(t, 2, 2, PP_PIN_NONE, NULL, 0, 1, p, NULL, 0), 0);
    cr_assert_eq(CPU_COUNT(&p[0].cpus), 0);
    cr_assert_eq(p[1].first_cpu, -1);
    ppi_topo_destroy(t);
}

Test(cores_plan, oversubscription_warns_or_fails_when_strict, .timeout = 20)
{
    ppi_topo *t = load_syn("core:4 pu:1");
    ppi_place p[3];
    char warn[128];
    cr_assert_eq(ppi_topo_plan_k(t, 3, 2, PP_PIN_COMPACT, NULL, 0, 0, p, warn, sizeof warn), 0);
    cr_assert_str_eq(warn, "oversubscribed: 3 workers x 2 cores on 4 cores");
    assert_cpus(&p[2], (const int[]){0, 1, -1}, 2); /* wraps to block 0 */
    cr_assert_eq(ppi_topo_plan_k(t, 3, 2, PP_PIN_COMPACT, NULL, 0, 1, p, warn, sizeof warn),
                 -EINVAL);
    /* k above the cores: the one worker gets them all, with a warning. */
    cr_assert_eq(ppi_topo_plan_k(t, 1, 5, PP_PIN_COMPACT, NULL, 0, 0, p, warn, sizeof warn), 0);
    cr_assert_eq(CPU_COUNT(&p[0].cpus), 4);
    cr_assert(strstr(warn, "oversubscribed") != NULL, "%s", warn);
    /* Five cores, k = 2: two blocks, the fifth core stays unused. */
    ppi_topo_destroy(t);
    t = load_syn("core:5 pu:1");
    cr_assert_eq(ppi_topo_plan_k(t, 2, 2, PP_PIN_COMPACT, NULL, 0, 1, p, warn, sizeof warn), 0);
    cr_assert_str_empty(warn);
    cr_assert_eq(ppi_topo_plan_k(t, 3, 2, PP_PIN_COMPACT, NULL, 0, 1, p, warn, sizeof warn),
                 -EINVAL);
    ppi_topo_destroy(t);
}

Test(cores_plan, prefix_stable_for_every_policy, .timeout = 20)
{
    ppi_topo *t = load_syn("package:2 numa:2 core:4 pu:2");
    const pp_pin_policy pols[] = {PP_PIN_COMPACT, PP_PIN_SCATTER, PP_PIN_PUS, PP_PIN_LIST};
    int list[32];
    for (int i = 0; i < 32; i++)
        list[i] = (i * 7) % 32;
    for (size_t q = 0; q < sizeof pols / sizeof pols[0]; q++)
        for (int k = 1; k <= 3; k++) {
            ppi_place small[3], big[5];
            cr_assert_eq(ppi_topo_plan_k(t, 3, k, pols[q], list, 32, 0, small, NULL, 0), 0);
            cr_assert_eq(ppi_topo_plan_k(t, 5, k, pols[q], list, 32, 0, big, NULL, 0), 0);
            for (int i = 0; i < 3; i++)
                cr_assert(CPU_EQUAL(&small[i].cpus, &big[i].cpus),
                          "policy %d k %d: worker %d moved with the pool's size", (int)pols[q], k,
                          i);
        }
    ppi_topo_destroy(t);
}

Test(cores_plan, k_out_of_range_is_einval, .timeout = 20)
{
    ppi_topo *t = load_syn("core:4 pu:1");
    ppi_place p[1];
    cr_assert_eq(ppi_topo_plan_k(t, 1, 0, PP_PIN_COMPACT, NULL, 0, 0, p, NULL, 0), -EINVAL);
    cr_assert_eq(ppi_topo_plan_k(t, 1, -2, PP_PIN_COMPACT, NULL, 0, 0, p, NULL, 0), -EINVAL);
    cr_assert_eq(ppi_topo_plan_k(t, 1, CPU_SETSIZE + 1, PP_PIN_COMPACT, NULL, 0, 0, p, NULL, 0),
                 -EINVAL);
    ppi_topo_destroy(t);
}

Test(cores_config, invalid_values_fail_create, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 30)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cr_assert_eq(cfg.cores_per_worker, 1, "default");
    cr_assert_eq(cfg.thread_env_override, 0, "default");
    pp_executor *ex = (pp_executor *)1;
    int bad[] = {0, -1, CPU_SETSIZE + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.cores_per_worker = bad[i];
        cr_assert_eq(pp_executor_create(&ex, &cfg), -EINVAL, "cores_per_worker %d", bad[i]);
        cr_assert_null(ex);
    }
    /* More cores than this process has, with pin_strict. */
    cpu_set_t set;
    int ncpu = ppt_allowed_cpus(&set);
    cfg.cores_per_worker = ncpu + 1;
    cfg.max_workers = 1;
    cfg.pin_strict = 1;
    cr_assert_eq(pp_executor_create(&ex, &cfg), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* on this machine                                                           */
/* ------------------------------------------------------------------------ */

#define MAX_THREADS 64

/* What a probe task saw in its worker. */
typedef struct probe {
    int worker;
    int max_threads;          /* omp_get_max_threads() */
    int team;                 /* threads in the parallel region */
    int outside;              /* threads that ran (or could run) off the worker's CPUs */
    cpu_set_t mask;           /* the worker's affinity */
    char omp_num[16], openblas[16], mkl[16], blis[16], veclib[16], numexpr[16];
    char places[64], bind[16];
} probe;

static void copy_env(char *dst, size_t n, const char *name)
{
    const char *v = getenv(name);
    snprintf(dst, n, "%s", v ? v : "(unset)");
}

/* Argument: double seconds to sleep first (so that each worker takes one).
 * Runs a parallel region; each thread checks it runs on, and may only run
 * on, the worker's CPUs. */
static int task_probe(pp_task *t)
{
    double s = ppt_arg_seconds(t);
    ppt_sleep(s);
    probe r;
    memset(&r, 0, sizeof r);
    r.worker = pp_task_worker(t);
    sched_getaffinity(0, sizeof r.mask, &r.mask);
    r.max_threads = omp_get_max_threads();
    int team = 0, outside = 0;
#pragma omp parallel reduction(+ : team, outside)
    {
        cpu_set_t mine;
        CPU_ZERO(&mine);
        sched_getaffinity(0, sizeof mine, &mine); /* this thread's */
        cpu_set_t off;
        CPU_AND(&off, &mine, &r.mask);
        int cpu = sched_getcpu();
        team = 1;
        outside = !CPU_EQUAL(&off, &mine) || cpu < 0 || !CPU_ISSET(cpu, &r.mask);
    }
    r.team = team;
    r.outside = outside;
    copy_env(r.omp_num, sizeof r.omp_num, "OMP_NUM_THREADS");
    copy_env(r.openblas, sizeof r.openblas, "OPENBLAS_NUM_THREADS");
    copy_env(r.mkl, sizeof r.mkl, "MKL_NUM_THREADS");
    copy_env(r.blis, sizeof r.blis, "BLIS_NUM_THREADS");
    copy_env(r.veclib, sizeof r.veclib, "VECLIB_MAXIMUM_THREADS");
    copy_env(r.numexpr, sizeof r.numexpr, "NUMEXPR_NUM_THREADS");
    copy_env(r.places, sizeof r.places, "OMP_PLACES");
    copy_env(r.bind, sizeof r.bind, "OMP_PROC_BIND");
    return pp_task_set_result(t, &r, sizeof r);
}

/* The physical cores this process may use (hwloc, as the pool sees them). */
static int machine_cores(void)
{
    ppi_topo *t = NULL;
    cr_assert_eq(ppi_topo_load(&t, NULL), 0);
    int n = ppi_topo_cores(t);
    ppi_topo_destroy(t);
    return n;
}

/* The environment as a user who set nothing would have it. */
static void clear_thread_env(void)
{
    const char *names[] = {"OMP_NUM_THREADS",  "OPENBLAS_NUM_THREADS",   "MKL_NUM_THREADS",
                           "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                           "OMP_PLACES",       "OMP_PROC_BIND"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

/* Run one probe per worker (each sleeps @s first so all workers take one)
 * into @out, indexed by worker. */
static void probe_all(pp_executor *ex, int n, double s, probe *out)
{
    pp_future *f[8];
    cr_assert(n <= 8);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pp_submit(ex, task_probe, &s, sizeof s, &f[i]), 0);
    bool seen[8] = {0};
    for (int i = 0; i < n; i++) {
        const void *res;
        size_t len;
        cr_assert_eq(pp_future_result(f[i], PPT_PROMPT(20), &res, &len), 0);
        cr_assert_eq(len, sizeof(probe));
        const probe *p = res;
        cr_assert(p->worker >= 0 && p->worker < n);
        out[p->worker] = *p;
        seen[p->worker] = true;
        pp_future_release(f[i]);
    }
    for (int i = 0; i < n; i++)
        cr_assert(seen[i], "worker %d took no probe", i);
}

/* Worker @i's affinity is exactly its place from the statistics, and its
 * OMP_PLACES lists those PUs. */
static void assert_probe(const probe *p, const pp_worker_stats *w, int k)
{
    cr_assert_eq(CPU_COUNT(&p->mask), k, "worker %d bound to %d cpus, want %d", p->worker,
                 CPU_COUNT(&p->mask), k);
    cr_assert_eq(w->ncpus, k);
    cr_assert(CPU_ISSET(w->cpu, &p->mask));
    char want[64] = "";
    size_t used = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &p->mask))
            used += (size_t)snprintf(want + used, sizeof want - used, "%s{%d}", used ? "," : "",
                                     c);
    cr_assert_str_eq(p->places, want);
    cr_assert_str_eq(p->bind, "close");
    cr_assert_eq(p->max_threads, k, "worker %d: omp_get_max_threads() = %d, want %d", p->worker,
                 p->max_threads, k);
    cr_assert_eq(p->team, k, "worker %d: a parallel region ran %d threads", p->worker, p->team);
    cr_assert_eq(p->outside, 0, "worker %d: %d threads ran off its cores", p->worker,
                 p->outside);
    char kk[16];
    snprintf(kk, sizeof kk, "%d", k);
    cr_assert_str_eq(p->omp_num, kk);
    cr_assert_str_eq(p->openblas, kk);
    cr_assert_str_eq(p->mkl, kk);
    cr_assert_str_eq(p->blis, kk);
    cr_assert_str_eq(p->veclib, kk);
    cr_assert_str_eq(p->numexpr, kk);
}

static void run_machine_case(int k, int want_workers)
{
    clear_thread_env();
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.cores_per_worker = k;
    cfg.max_workers = 0; /* cores / k */
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    cr_assert_eq(pp_max_workers(ex), want_workers);
    pp_worker_stats ws[8];
    cr_assert_eq(pp_executor_stats(ex, NULL, ws, 8), want_workers);
    probe p[8];
    probe_all(ex, want_workers, want_workers > 1 ? 0.3 : 0, p);
    cpu_set_t seen;
    CPU_ZERO(&seen);
    for (int i = 0; i < want_workers; i++) {
        assert_probe(&p[i], &ws[i], k);
        cpu_set_t both;
        CPU_AND(&both, &seen, &p[i].mask);
        cr_assert_eq(CPU_COUNT(&both), 0, "workers share a cpu");
        CPU_OR(&seen, &seen, &p[i].mask);
    }
    if (k > 1)
        cr_assert(strstr(pp_executor_topology(ex), " x 2 cores") != NULL, "%s",
                  pp_executor_topology(ex));
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(cores_machine, two_cores_one_worker_runs_two_threads_there, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    int cores = machine_cores();
    if (cores < 2)
        cr_skip_test("needs 2 physical cores, this process has %d", cores);
    run_machine_case(2, cores / 2);
}

Test(cores_machine, one_core_each_runs_one_thread_there, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    int cores = machine_cores();
    if (cores < 2)
        cr_skip_test("needs 2 physical cores, this process has %d", cores);
    run_machine_case(1, cores < 8 ? cores : 8);
}

/* A user's own values stay; with thread_env_override they do not. */
static void run_env_case(bool override)
{
    clear_thread_env();
    setenv("OMP_NUM_THREADS", "3", 1);
    setenv("MKL_NUM_THREADS", "7", 1);
    setenv("OMP_PROC_BIND", "spread", 1);
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    cfg.thread_env_override = override;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    probe p;
    probe_all(ex, 1, 0, &p);
    cr_assert_str_eq(p.omp_num, override ? "1" : "3");
    cr_assert_str_eq(p.mkl, override ? "1" : "7");
    cr_assert_str_eq(p.bind, override ? "close" : "spread");
    cr_assert_str_eq(p.openblas, "1", "a variable the user did not set is set");
    if (override)
        cr_assert_eq(p.max_threads, 1, "omp_get_max_threads() = %d", p.max_threads);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(cores_env, user_values_are_kept, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    run_env_case(false);
}

Test(cores_env, override_replaces_user_values, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    run_env_case(true);
}

/* The initializer already sees the variables: it fails (breaking the pool)
 * unless OMP_NUM_THREADS is the count it was given. */
static int init_checks_env(const void *arg, size_t n)
{
    char want[16];
    snprintf(want, sizeof want, "%d", n == sizeof(int) ? *(const int *)arg : -1);
    const char *v = getenv("OMP_NUM_THREADS");
    return v && !strcmp(v, want) && omp_get_max_threads() == atoi(want) ? 0 : 1;
}

Test(cores_env, set_before_the_initializer, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    clear_thread_env();
    int k = machine_cores() >= 2 ? 2 : 1;
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    cfg.cores_per_worker = k;
    cfg.initializer = init_checks_env;
    cfg.initargs = &k;
    cfg.initargs_size = sizeof k;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0);
    cr_assert_eq(pp_future_result(f, PPT_PROMPT(20), NULL, NULL), 0,
                 "the initializer did not see OMP_NUM_THREADS=%d", k);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(cores_env, unpinned_workers_get_counts_but_no_places, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    clear_thread_env();
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.pin = PP_PIN_NONE;
    cfg.max_workers = 1;
    cfg.cores_per_worker = 2;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    probe p;
    probe_all(ex, 1, 0, &p);
    cr_assert_str_eq(p.omp_num, "2");
    cr_assert_eq(p.max_threads, 2);
    cr_assert_str_eq(p.places, "(unset)");
    cr_assert_str_eq(p.bind, "(unset)");
    pp_worker_stats w;
    cr_assert_eq(pp_executor_stats(ex, NULL, &w, 1), 1);
    cr_assert_eq(w.ncpus, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
