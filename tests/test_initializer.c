/*
 * test_initializer.c — the worker initializer: one that fails or crashes
 * breaks the pool (also under RESPAWN) for pending futures and later submits;
 * it gets its arguments and runs exactly once per worker process, replacements
 * included.
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Waits are deadline loops on a condition; task
 * functions sleep or spin as their workload. Shared helpers, start methods,
 * sanitizers and the known-failures rows that do not apply: faults_util.h.
 */
#include "faults_util.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* Wait (in a worker) until the test sets go, at most @seconds. */
static bool wait_go(double seconds)
{
    double dl = ppt_deadline(seconds);
    while (!sh() || !atomic_load(&sh()->go)) {
        if (ppt_expired(dl))
            return false;
        ppt_sleep(0.001);
    }
    return true;
}

/* ======================================================================== */
/* initializer                                                              */
/* ======================================================================== */

#define INIT_MAGIC 0x1A17C0DEu
typedef struct init_args {
    uint32_t magic;
    char text[28];
} init_args;

static pid_t g_init_pid; /* set in a worker by init_record */

static int init_record(const void *a, size_t n)
{
    if (!a || n != sizeof(init_args) || ((const init_args *)a)->magic != INIT_MAGIC ||
        strcmp(((const init_args *)a)->text, "hello, worker") != 0) {
        if (sh())
            atomic_fetch_add(&sh()->init_bad, 1);
        return -1;
    }
    if (!sh())
        return -2;
    memcpy(sh()->seen, a, n);
    atomic_store(&sh()->seen_size, (int)n);
    atomic_fetch_add(&sh()->init_count, 1);
    g_init_pid = getpid();
    return 0;
}

/* Result {pid, 1 if the initializer ran in this very process}. */
static int task_init_state(pp_task *t)
{
    int32_t r[2] = {(int32_t)getpid(), g_init_pid == getpid()};
    (void)pp_task_set_result(t, r, sizeof r);
    return 0;
}

static int init_fail_on_go(const void *a, size_t n)
{
    (void)a;
    (void)n;
    note_pid();
    wait_go(10.0);
    return -1;
}

static int init_crash_on_go(const void *a, size_t n)
{
    (void)a;
    (void)n;
    note_pid();
    wait_go(10.0);
    no_core();
    segv_default();
    raise(SIGSEGV);
    return 0;
}

/* Submits pending tasks while the initializer is held, lets it fail or
 * crash, then checks: every pending future and every later submit report
 * PP_EBROKEN. */
static void check_init_breaks(pp_initializer init, pp_death_policy policy, int want_code,
                              const char *what)
{
    shared_map();
    pp_config cfg = cfg_of(2, policy);
    cfg.initializer = init;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 10 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, task_pid_seq, NULL, 0);
    atomic_store(&g_sh->go, 1);
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, what);
        cr_expect_eq(e.error, PP_EBROKEN, "%s: pending %d: %d %s", what, i, e.error,
                     pp_strerror(e.error));
        if (want_code)
            cr_expect_eq(e.code, want_code, "%s: pending %d: code %d (%s)", what, i, e.code,
                         e.message);
        else
            cr_expect_lt(e.code, 0, "%s: pending %d: code %d, expected an exit status (%s)",
                         what, i, e.code, e.message);
        cr_expect_gt(e.pid, 0, "%s: no pid", what);
        cr_expect(strstr(e.message, "initializer") != NULL, "%s: message \"%s\"", what,
                  e.message);
    }
    /* By now the pool has broken: submit fails (poll for it anyway). */
    int rc = 0;
    bool broke = PPT_WAIT_FOR(({
                                  pp_future *g = NULL;
                                  rc = pp_submit(ex, task_pid_seq, NULL, 0, &g);
                                  if (g) {
                                      pp_exception ge;
                                      if (pp_future_exception(g, 5.0, &ge) == 0 &&
                                          ge.error == PP_EBROKEN)
                                          rc = PP_EBROKEN;
                                      pp_future_release(g);
                                  }
                                  rc == PP_EBROKEN;
                              }),
                              5.0);
    cr_expect(broke, "%s: submit after the break: %d %s", what, rc, pp_strerror(rc));
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
}

Test(initializer, initializer_failure_breaks_pool_submit_and_pending, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_fail_on_go, PP_DEATH_BREAK, 0, "failing initializer");
}

Test(initializer, initializer_failure_breaks_pool_even_under_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_fail_on_go, PP_DEATH_RESPAWN, 0, "failing initializer (RESPAWN)");
}

Test(initializer, initializer_crash_breaks_pool_with_signal, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_crash_on_go, PP_DEATH_BREAK, SIGSEGV, "crashing initializer");
}

Test(initializer, initializer_crash_breaks_pool_even_under_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_crash_on_go, PP_DEATH_RESPAWN, SIGSEGV,
                      "crashing initializer (RESPAWN)");
}

Test(initializer, initializer_gets_its_args_and_runs_once_per_worker_process, PPT_FIXTURE,
     .timeout = 60)
{
    shared_map();
    init_args ia;
    memset(&ia, 0, sizeof ia);
    ia.magic = INIT_MAGIC;
    snprintf(ia.text, sizeof ia.text, "hello, worker");
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    cfg.initializer = init_record;
    cfg.initargs = &ia;
    cfg.initargs_size = sizeof ia;
    cfg.max_tasks_per_child = 3; /* every replacement runs it too */
    pp_executor *ex = make_pool_cfg(&cfg);
    memset(&ia, 0xEE, sizeof ia); /* copied at create: the caller's buffer is free */
    enum { N = 60 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, task_init_state, NULL, 0);
    int not_init = 0;
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], 20.0, &d, &n);
        cr_assert_eq(rc, 0, "task %d: %d %s", i, rc, pp_strerror(rc));
        int32_t r[2];
        memcpy(r, d, sizeof r);
        not_init += r[1] != 1;
    }
    cr_expect_eq(not_init, 0, "%d tasks ran in a process whose initializer did not run",
                 not_init);
    cr_expect_eq(atomic_load(&g_sh->init_bad), 0, "the initializer saw wrong arguments");
    cr_expect_eq(atomic_load(&g_sh->seen_size), (int)sizeof(init_args));
    init_args want;
    memset(&want, 0, sizeof want);
    want.magic = INIT_MAGIC;
    snprintf(want.text, sizeof want.text, "hello, worker");
    cr_expect(memcmp(g_sh->seen, &want, sizeof want) == 0, "initargs bytes differ");
    /* Once per process: initial workers + every replacement that started.
     * The replacements forked after the last task still run it before they
     * see the stop, so count after the pool ended. */
    cr_assert_eq(pp_executor_destroy(ex), 0);
    int runs = atomic_load(&g_sh->init_count);
    /* 60 tasks at 3 per child: at least 20 processes; each ran it once. */
    cr_expect_geq(runs, N / 3, "initializer ran %d times for >= %d processes", runs, N / 3);
    cr_expect_leq(runs, N / 3 + 2, "initializer ran %d times: more than once per process?",
                  runs);
    release_all(fs, N);
}

/* Exactly once per process, counted against the pool's own respawn count. */
Test(initializer, initializer_runs_exactly_once_per_process_count_matches_respawns, PPT_FIXTURE,
     .timeout = 60)
{
    shared_map();
    init_args ia;
    memset(&ia, 0, sizeof ia);
    ia.magic = INIT_MAGIC;
    snprintf(ia.text, sizeof ia.text, "hello, worker");
    pp_config cfg = cfg_of(2, PP_DEATH_RESPAWN);
    cfg.initializer = init_record;
    cfg.initargs = &ia;
    cfg.initargs_size = sizeof ia;
    pp_executor *ex = make_pool_cfg(&cfg);
    /* Three deaths (respawns), then quiet: count = workers + respawns. */
    for (int k = 0; k < 3; k++) {
        pp_future *f = submit_secs(ex, task_abort, 0.0);
        pp_exception e = outcome(f, 20.0, "abort");
        cr_expect_eq(e.error, PP_EWORKER);
        pp_future_release(f);
    }
    pp_future *fs[20];
    for (int i = 0; i < 20; i++)
        fs[i] = submit_ok(ex, task_init_state, NULL, 0);
    expect_all_ok(fs, 20, 20.0, "after respawns");
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= 3);
    cr_expect_eq(st.respawns, 3);
    /* Every replacement has run its initializer before taking a task; wait
     * for the count rather than assume. */
    bool ok = PPT_WAIT_FOR(atomic_load(&g_sh->init_count) == 2 + (int)st.respawns, 5.0);
    cr_expect(ok, "initializer ran %d times, workers + respawns = %d",
              atomic_load(&g_sh->init_count), 2 + (int)st.respawns);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(atomic_load(&g_sh->init_count), 2 + (int)st.respawns);
    release_all(fs, 20);
}
