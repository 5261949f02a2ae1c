/*
 * test_shard.c — the sharded task ring (runtime/shards.h, docs/design.md
 * "The sharded task ring"): the automatic shard count on synthetic
 * topologies, the home shards, config validation, and with forced shard
 * counts on more workers than CPUs: exact accounting, no starvation (a
 * shard whose workers are busy, or whose only worker was SIGKILLed or died
 * inside a pop, is drained by stealers, and wake-ups are not lost), cancel,
 * kill, pp_map and shutdown(cancel_futures) unchanged.
 */
#include "faults_util.h"
#include "pp_testutil.h"
#include "ppool/map.h"
#include "shard_plan.h"
#include "topology.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ---- tasks (run in a worker) ------------------------------------------- */

typedef struct id_result {
    uint64_t value;  /* argument * 3 + 1 */
    int32_t worker;  /* pp_task_worker */
    int32_t pad;
} id_result;

static int task_id(pp_task *t)
{
    size_t n = 0;
    const uint64_t *a = pp_task_arg(t, &n);
    id_result r = {.value = (n == 8 ? *a : 0) * 3 + 1, .worker = pp_task_worker(t)};
    return pp_task_set_result(t, &r, sizeof r);
}

/* Result: when it started (CLOCK_MONOTONIC via ppt_now: one clock for all
 * processes); then it spins 2 ms, so the client refills slots faster than
 * the worker empties them. */
static int task_started_at(pp_task *t)
{
    double now = ppt_now();
    while (ppt_now() < now + 2e-3)
        ;
    return pp_task_set_result(t, &now, sizeof now);
}

static int map_triple(pp_map_item *it)
{
    *(uint64_t *)it->out = *(const uint64_t *)it->in[0] * 3 + 1;
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static pp_executor *pool_of(int workers, int shards, pp_death_policy policy)
{
    pp_config cfg = cfg_of(workers, policy);
    cfg.ring_shards = shards;
    return make_pool_cfg(&cfg);
}

static pp_future *submit_id(pp_executor *ex, uint64_t v)
{
    return submit_ok(ex, task_id, &v, sizeof v);
}

/* @f finished with task_id's result for @v; returns the worker that ran it. */
static int expect_id(pp_future *f, uint64_t v, double timeout)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, timeout, &d, &n);
    cr_assert_eq(rc, 0, "task %llu: %d %s", (unsigned long long)v, rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(id_result));
    id_result r;
    memcpy(&r, d, sizeof r);
    cr_assert_eq(r.value, v * 3 + 1, "task %llu: wrong result %llu", (unsigned long long)v,
                 (unsigned long long)r.value);
    return r.worker;
}

/* Once every future is done: submitted == completed + failed + cancelled +
 * killed, with the expected split. */
static void expect_accounting(pp_executor *ex, uint64_t submitted, uint64_t failed,
                              uint64_t cancelled, uint64_t killed)
{
    pp_stats st;
    STATS_WHEN(ex, st, st.completed + st.failed + st.cancelled + st.killed >= submitted);
    cr_expect_eq(st.submitted, submitted, "submitted %llu", (unsigned long long)st.submitted);
    cr_expect_eq(st.completed + st.failed + st.cancelled + st.killed, st.submitted,
                 "completed %llu + failed %llu + cancelled %llu + killed %llu != submitted %llu",
                 (unsigned long long)st.completed, (unsigned long long)st.failed,
                 (unsigned long long)st.cancelled, (unsigned long long)st.killed,
                 (unsigned long long)st.submitted);
    cr_expect_eq(st.failed, failed, "failed %llu", (unsigned long long)st.failed);
    cr_expect_eq(st.cancelled, cancelled, "cancelled %llu", (unsigned long long)st.cancelled);
    cr_expect_eq(st.killed, killed, "killed %llu", (unsigned long long)st.killed);
    cr_expect_eq(st.queued + st.running + st.backlog, 0);
}

static ppi_topo *load_syn(const char *s)
{
    ppi_topo *t = NULL;
    int rc = ppi_topo_load(&t, s);
    cr_assert_eq(rc, 0, "ppi_topo_load(\"%s\") = %d", s, rc);
    return t;
}

static int auto_of(const char *syn)
{
    ppi_topo *t = load_syn(syn);
    int s = ppi_shards_auto(ppi_topo_cores(t), ppi_topo_numa_nodes(t));
    ppi_topo_destroy(t);
    return s;
}

/* ---- the automatic choice and the home shards (pure) ------------------- */

Test(shard, auto_count_on_synthetic_topologies, .timeout = 30)
{
    cr_expect_eq(auto_of("package:1 core:2 pu:1"), 1, "this box's shape keeps one ring");
    cr_expect_eq(auto_of("package:1 core:2 pu:2"), 1);
    cr_expect_eq(auto_of("package:2 numa:1 core:2 pu:1"), 2, "2 NUMA nodes: 2 shards");
    cr_expect_eq(auto_of("package:2 numa:2 core:2 pu:1"), 4, "4 NUMA nodes: 4 shards");
    cr_expect_eq(auto_of("package:1 core:31 pu:2"), 1, "below 32 cores: one ring");
    cr_expect_eq(auto_of("package:1 core:32 pu:2"), 2, "32 cores: groups of 16");
    cr_expect_eq(auto_of("package:1 core:128 pu:2"), 8, "128 cores: 8 groups of 16");
    cr_expect_eq(auto_of("package:2 numa:1 core:64 pu:2"), 8,
                 "2 NUMA nodes of 64 cores: 4 groups each");
    cr_expect_eq(auto_of("package:8 numa:2 core:8 pu:1"), 16, "16 small NUMA nodes: 16");
    /* The bounds of the pure function itself. */
    cr_expect_eq(ppi_shards_auto(0, 0), 1);
    cr_expect_eq(ppi_shards_auto(4096, 1), PPI_MAX_SHARDS);
    cr_expect_eq(ppi_shards_auto(4096, 128), PPI_MAX_SHARDS);
}

/* Homes follow the NUMA node of the worker's place, whatever the policy. */
Test(shard, homes_are_numa_domains_of_the_plan, .timeout = 30)
{
    ppi_topo *t = load_syn("package:2 numa:2 core:2 pu:2");
    int nc = ppi_topo_cores(t), s = ppi_shards_auto(nc, ppi_topo_numa_nodes(t));
    cr_assert_eq(s, 4);
    pp_pin_policy pols[] = {PP_PIN_COMPACT, PP_PIN_SCATTER, PP_PIN_PUS};
    for (size_t k = 0; k < sizeof pols / sizeof *pols; k++) {
        ppi_place p[16];
        cr_assert_eq(ppi_topo_plan(t, 16, pols[k], NULL, 0, 0, p, NULL, 0), 0);
        int per[4] = {0};
        for (int i = 0; i < 16; i++) {
            uint32_t h = ppi_shard_home(ppi_topo_core_rank(t, p[i].core), nc, i, s);
            cr_expect_eq((int)h, p[i].numa, "policy %d worker %d: home %u on NUMA node %d",
                         (int)pols[k], i, h, p[i].numa);
            per[h < 4 ? h : 0]++;
        }
        for (int h = 0; h < 4; h++)
            cr_expect_eq(per[h], 4, "policy %d: shard %d has %d home workers", (int)pols[k], h,
                         per[h]);
    }
    /* Groups of cores on one domain: consecutive blocks. */
    cr_expect_eq(ppi_shard_home(0, 64, 0, 4), 0);
    cr_expect_eq(ppi_shard_home(15, 64, 0, 4), 0);
    cr_expect_eq(ppi_shard_home(16, 64, 0, 4), 1);
    cr_expect_eq(ppi_shard_home(63, 64, 0, 4), 3);
    /* Unpinned workers, and more shards than cores: by position. */
    cr_expect_eq(ppi_shard_home(-1, 64, 5, 4), 1);
    cr_expect_eq(ppi_shard_home(1, 2, 2, 3), 2);
    cr_expect_eq(ppi_shard_home(7, 64, 9, 1), 0);
    ppi_topo_destroy(t);
}

/* ---- configuration ----------------------------------------------------- */

Test(shard, config_validated_and_layout_reported, PPT_FIXTURE, .timeout = 30)
{
    pp_config cfg;
    pp_executor *ex = NULL;
    int bad[] = {-1, PP_RING_SHARDS_MAX + 1, 1 << 20};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ppt_config(&cfg, 1);
        cfg.ring_shards = bad[i];
        cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "ring_shards %d accepted", bad[i]);
        cr_expect_null(ex);
    }
    cr_expect_eq(pp_executor_shards(NULL, NULL, 0), -EINVAL);

    /* PPOOL_RING_SHARDS sets the default; nonsense leaves it automatic. */
    const char *old = getenv("PPOOL_RING_SHARDS");
    setenv("PPOOL_RING_SHARDS", "3", 1);
    pp_config_init(&cfg);
    cr_expect_eq(cfg.ring_shards, 3);
    const char *junk[] = {"x", "3x", "-1", "65", ""};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        setenv("PPOOL_RING_SHARDS", junk[i], 1);
        pp_config_init(&cfg);
        cr_expect_eq(cfg.ring_shards, 0, "PPOOL_RING_SHARDS=\"%s\" gave %d", junk[i],
                     cfg.ring_shards);
    }
    if (old)
        setenv("PPOOL_RING_SHARDS", old, 1);
    else
        unsetenv("PPOOL_RING_SHARDS");

    /* Automatic on this machine: what the pure rule says for it (one ring
     * on anything below 32 cores on one NUMA domain). */
    ppi_topo *t = NULL;
    cr_assert_eq(ppi_topo_load(&t, NULL), 0);
    int want = ppi_shards_auto(ppi_topo_cores(t), ppi_topo_numa_nodes(t));
    if (ppi_topo_cores(t) < 32 && ppi_topo_numa_nodes(t) <= 1)
        cr_expect_eq(want, 1);
    ppi_topo_destroy(t);
    ppt_config(&cfg, 2);
    cfg.ring_shards = 0;
    ex = make_pool_cfg(&cfg);
    int homes[2] = {-1, -1};
    cr_expect_eq(pp_executor_shards(ex, homes, 2), want);
    for (int i = 0; i < 2; i++)
        cr_expect(homes[i] >= 0 && homes[i] < want, "home %d", homes[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);

    /* Forced: the count and homes spread over every shard. Resizing keeps
     * the count and homes new positions by the same rule. */
    ex = pool_of(3, 3, PP_DEATH_BREAK);
    int h3[3];
    cr_expect_eq(pp_executor_shards(ex, h3, 3), 3);
    cr_expect(h3[0] != h3[1] && h3[1] != h3[2] && h3[0] != h3[2], "homes %d %d %d", h3[0],
              h3[1], h3[2]);
    cr_assert_eq(pp_executor_resize(ex, 4), 0);
    int h4[4] = {-1, -1, -1, -1};
    cr_expect_eq(pp_executor_shards(ex, h4, 4), 3);
    cr_expect(h4[3] >= 0 && h4[3] < 3);
    pp_future *f = submit_id(ex, 7);
    expect_id(f, 7, 10.0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* A synthetic 2-NUMA-node machine (HWLOC_SYNTHETIC, on this box's CPUs 0
 * and 1): the automatic rule gives a shard per node, one worker each, and
 * tasks run on both. */
Test(shard, synthetic_two_numa_nodes_get_two_shards, PPT_FIXTURE, .timeout = 30)
{
    cpu_set_t aff;
    cr_assert_eq(sched_getaffinity(0, sizeof aff, &aff), 0);
    if (!CPU_ISSET(0, &aff) || !CPU_ISSET(1, &aff))
        cr_skip_test("needs CPUs 0 and 1");
    cr_assert_eq(setenv("HWLOC_SYNTHETIC", "package:1 numa:2 core:1 pu:1", 1), 0);
    pp_config cfg;
    ppt_config(&cfg, 0);
    cfg.ring_shards = 0;
    pp_executor *ex = make_pool_cfg(&cfg);
    unsetenv("HWLOC_SYNTHETIC");
    int homes[2] = {-1, -1};
    cr_assert_eq(pp_max_workers(ex), 2, "%s", pp_executor_topology(ex));
    cr_expect_eq(pp_executor_shards(ex, homes, 2), 2, "%s", pp_executor_topology(ex));
    cr_expect(homes[0] == 0 && homes[1] == 1, "homes %d %d", homes[0], homes[1]);
    enum { N = 400 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_id(ex, (uint64_t)i);
    for (int i = 0; i < N; i++)
        expect_id(fs[i], (uint64_t)i, 20.0);
    release_all(fs, N);
    expect_accounting(ex, N, 0, 0, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- forced shard counts, more workers than CPUs ----------------------- */

Test(shard, oversubscribed_exact_accounting_for_2_3_4_shards, PPT_FIXTURE, .timeout = 60)
{
    enum { N = 1500, W = 7 };
    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (int s = 2; s <= 4; s++) {
        pp_executor *ex = pool_of(W, s, PP_DEATH_BREAK);
        cr_assert_eq(pp_executor_shards(ex, NULL, 0), s);
        int ran[W] = {0};
        for (int i = 0; i < N; i++)
            fs[i] = submit_id(ex, (uint64_t)(s * N + i));
        for (int i = 0; i < N; i++) {
            int w = expect_id(fs[i], (uint64_t)(s * N + i), 30.0);
            cr_assert(w >= 0 && w < W);
            ran[w]++;
        }
        release_all(fs, N);
        expect_accounting(ex, N, 0, 0, 0);
        pp_worker_stats ws[W];
        cr_assert_eq(pp_executor_stats(ex, NULL, ws, W), W);
        uint64_t sum = 0;
        for (int w = 0; w < W; w++) {
            sum += ws[w].tasks;
            cr_expect_eq(ws[w].tasks, (uint64_t)ran[w], "S=%d worker %d", s, w);
        }
        cr_expect_eq(sum, (uint64_t)N);
        cr_assert_eq(pp_executor_destroy(ex), 0);
    }
    free(fs);
}

/*
 * No starvation, no lost wake-up: 2 shards, 2 workers (homes 0 and 1). One
 * worker is held by a long task; every later task whose slot maps to the
 * held worker's shard can only be run by the other one, stealing it. Each
 * task is submitted after a pause that lets the free worker fall asleep on
 * the eventcount, so every one of them needs a wake-up that reaches a
 * sleeper homed on the other shard. A lost wake-up would show as a round
 * trip of the sleep bound (100 ms).
 */
Test(shard, stealer_drains_a_busy_shard_and_is_woken, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(2, 2, PP_DEATH_BREAK);
    int homes[2];
    cr_assert_eq(pp_executor_shards(ex, homes, 2), 2);
    cr_assert(homes[0] != homes[1]);
    double hold = 30.0;
    pp_future *blocker = submit_ok(ex, ppt_task_until_stop, &hold, sizeof hold);
    wait_running(blocker, "blocker");
    enum { N = 40 };
    double rt[N];
    int free_worker = -1;
    for (int i = 0; i < N; i++) {
        ppt_sleep(0.002); /* not a wait for a condition: lets the worker sleep */
        double t0 = ppt_now();
        pp_future *f = submit_id(ex, (uint64_t)i);
        int w = expect_id(f, (uint64_t)i, 10.0);
        rt[i] = ppt_now() - t0;
        pp_future_release(f);
        if (free_worker < 0)
            free_worker = w;
        cr_expect_eq(w, free_worker, "task %d ran on worker %d, the free one is %d", i, w,
                     free_worker);
    }
    /* Median round trip far below the eventcount's sleep bound. */
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && rt[j - 1] > rt[j]; j--) {
            double x = rt[j];
            rt[j] = rt[j - 1];
            rt[j - 1] = x;
        }
    cr_expect_lt(rt[N / 2], 0.05, "median round trip %.1f ms: wake-ups lost?", rt[N / 2] * 1e3);
    cr_assert(!pp_future_done(blocker), "the blocker ended early");
    cr_assert_eq(pp_future_kill(blocker, 1.0), 0);
    pp_exception e = outcome(blocker, 10.0, "blocker");
    cr_expect_eq(e.error, PP_EKILLED, "blocker: %d %s", e.error, pp_strerror(e.error));
    pp_future_release(blocker);
    expect_accounting(ex, N + 1, 0, 0, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* RESPAWN: a shard's only home worker is SIGKILLed under load; its shard
 * is still drained (by the other worker stealing, then by the replacement)
 * and the only casualty is the task it was running. */
Test(shard, sigkilled_home_worker_shard_still_drained_respawn, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(2, 2, PP_DEATH_RESPAWN);
    enum { N = 600 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++) {
        uint32_t us = 200;
        fs[i] = submit_ok(ex, task_spin_us, &us, sizeof us);
    }
    pp_worker_stats ws[2];
    cr_assert_eq(pp_executor_stats(ex, NULL, ws, 2), 2);
    PPT_WAIT_FOR(pp_executor_stats(ex, NULL, ws, 2) == 2 && ws[0].tasks >= 20, 10.0);
    cr_assert_eq(kill(ws[0].pid, SIGKILL), 0);
    int ok = 0, lost = 0;
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 30.0, "task");
        if (e.error == 0)
            ok++;
        else if (e.error == PP_EWORKER)
            lost++;
        else
            cr_expect(false, "task %d: %d %s", i, e.error, pp_strerror(e.error));
    }
    cr_expect_leq(lost, 1, "%d tasks lost with one worker", lost);
    cr_expect_eq(ok + lost, N);
    release_all(fs, N);
    expect_accounting(ex, N, (uint64_t)lost, 0, 0);
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= 1);
    cr_expect_geq(st.respawns, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* A worker dies inside a pop (after the ticket CAS, before releasing the
 * cell) of whichever shard it was popping or stealing from: the manager
 * finds the shard from the claim record, finishes the pop and re-queues the
 * entry; nothing is lost. */
Test(shard, death_inside_a_shard_pop_is_recovered, PPT_FIXTURE, .timeout = 90)
{
    cr_assert_eq(setenv("PPOOL_TEST_DIE_IN_POP", "7", 1), 0);
    pp_config cfg = cfg_of(3, PP_DEATH_RESPAWN);
    cfg.ring_shards = 3;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    unsetenv("PPOOL_TEST_DIE_IN_POP");
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    enum { N = 300 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_id(ex, (uint64_t)i);
    for (int i = 0; i < N; i++)
        expect_id(fs[i], (uint64_t)i, 30.0);
    release_all(fs, N);
    pp_stats st;
    STATS_WHEN(ex, st, st.completed >= N);
    cr_expect_eq(st.completed, N);
    cr_expect_eq(st.failed, 0);
    cr_expect_geq(st.respawns, N / 7 / 2, "only %llu deaths in pops",
                  (unsigned long long)st.respawns);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/*
 * Fairness under a sustained stream: one worker (home shard 0), 2 shards, 8
 * slots and a long backlog. Every freed slot is refilled at once, so the
 * home shard never runs dry; without the rotating start
 * (ppi_shard_pop_start) the tasks in shard 1 would wait for the whole
 * backlog (about N tasks overtaking them). Bound: how many later tasks
 * start before an earlier one.
 */
Test(shard, no_starvation_when_home_shard_never_runs_dry, PPT_FIXTURE, .timeout = 60)
{
    uint32_t tick = 0;
    int seen[3] = {0};
    for (int i = 0; i < 3 * PPI_SHARD_FAIR_EVERY; i++)
        seen[ppi_shard_pop_start(0, 3, &tick)]++;
    cr_expect(seen[1] > 0 && seen[2] > 0, "the rotation skips a shard: %d %d %d", seen[0],
              seen[1], seen[2]);
    cr_expect_geq(seen[0], 3 * (PPI_SHARD_FAIR_EVERY - 1), "home not preferred");

    pp_config cfg = cfg_of(1, PP_DEATH_BREAK);
    cfg.ring_shards = 2;
    cfg.slots = 8;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 500 };
    pp_future **fs = calloc(N, sizeof *fs);
    double *at = calloc(N, sizeof *at);
    cr_assert(fs && at);
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, task_started_at, NULL, 0);
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        cr_assert_eq(pp_future_result(fs[i], 30.0, &d, &n), 0, "task %d", i);
        cr_assert_eq(n, sizeof(double));
        memcpy(&at[i], d, sizeof(double));
    }
    int worst = 0, worst_i = 0;
    for (int i = 0; i < N; i++) {
        int over = 0;
        for (int j = i + 1; j < N; j++)
            over += at[j] < at[i];
        if (over > worst) {
            worst = over;
            worst_i = i;
        }
    }
    cr_expect_leq(worst, 12 * PPI_SHARD_FAIR_EVERY,
                  "task %d was overtaken by %d later tasks", worst_i, worst);
    cr_log_info("most later tasks started before an earlier one: %d (task %d)", worst, worst_i);
    release_all(fs, N);
    free(fs);
    free(at);
    expect_accounting(ex, N, 0, 0, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- cancel, kill, map, shutdown --------------------------------------- */

/* Occupy @n workers with tasks that run until killed or stopped (30 s at
 * most), and wait until each started: what is submitted next queues. */
static void hold_workers(pp_executor *ex, pp_future **b, int n)
{
    double hold = 30.0;
    for (int i = 0; i < n; i++)
        b[i] = submit_ok(ex, ppt_task_until_stop, &hold, sizeof hold);
    for (int i = 0; i < n; i++)
        wait_running(b[i], "blocker");
}

Test(shard, cancel_and_kill_exact_with_3_shards, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(2, 3, PP_DEATH_BREAK);
    pp_future *b[2];
    hold_workers(ex, b, 2);
    enum { N = 30 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_id(ex, (uint64_t)i);
    for (int i = 0; i < N; i += 2)
        cr_expect(pp_future_cancel(fs[i]), "queued task %d not cancelled", i);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pp_future_kill(b[i], 1.0), 0);
    for (int i = 0; i < 2; i++) {
        pp_exception e = outcome(b[i], 10.0, "blocker");
        cr_expect_eq(e.error, PP_EKILLED);
    }
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            cr_expect(pp_future_cancelled(fs[i]));
            cr_expect_eq(pp_future_result(fs[i], 5.0, NULL, NULL), -ECANCELED);
        } else {
            expect_id(fs[i], (uint64_t)i, 20.0);
        }
    }
    release_all(fs, N);
    release_all(b, 2);
    expect_accounting(ex, N + 2, 0, N / 2, 2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(shard, map_with_4_shards, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(5, 4, PP_DEATH_BREAK);
    const size_t n = 5003;
    uint64_t *in = malloc(n * 8), *out = malloc(n * 8);
    cr_assert(in && out);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    size_t chunks[] = {1, 7, 250};
    for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
        memset(out, 0xff, n * 8);
        pp_map_input mi = pp_map_array(in, n, 8);
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.chunksize = chunks[c];
        o.out_size = 8;
        pp_map_status st;
        int rc = pp_map(ex, map_triple, &mi, 1, out, n, NULL, &o, &st);
        cr_assert_eq(rc, 0, "chunksize %zu: %d %s", chunks[c], rc, st.message);
        cr_assert_eq(st.done, n);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], i * 3 + 1, "chunksize %zu item %zu", chunks[c], i);
    }
    free(in);
    free(out);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(shard, shutdown_cancel_futures_exact_with_3_shards, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(2, 3, PP_DEATH_BREAK);
    pp_future *b[2];
    hold_workers(ex, b, 2);
    enum { N = 24 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_id(ex, (uint64_t)i);
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    for (int i = 0; i < 2; i++) {
        const void *d = NULL;
        size_t n = 0;
        cr_expect_eq(pp_future_result(b[i], 5.0, &d, &n), 0, "a started task completes");
    }
    for (int i = 0; i < N; i++)
        cr_expect_eq(pp_future_result(fs[i], 5.0, NULL, NULL), -ECANCELED, "queued task %d", i);
    release_all(fs, N);
    release_all(b, 2);
    expect_accounting(ex, N + 2, 0, N, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
