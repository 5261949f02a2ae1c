/*
 * test_kill.c — stopping work: pp_future_kill (SIGTERM, SIGKILL after the
 * grace, queued and finished futures, races with the task's end and with
 * dequeue: rows 11, 21), per-task timeouts (row 23), and the shutdown rows:
 * cancel then shutdown (3), a million tiny submits (4), a crash during a
 * no-wait shutdown (6), pp_terminate_workers / pp_kill_workers bounding
 * shutdown latency (26).
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Waits are deadline loops on a condition; task
 * functions sleep or spin as their workload. Shared helpers, start methods,
 * sanitizers and the known-failures rows that do not apply: faults_util.h.
 *
 * Row 4 submits 200 000 tasks under ASan.
 */
#include "faults_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ======================================================================== */
/* task functions (run in workers)                                          */
/* ======================================================================== */

/* Ignores SIGTERM, then sleeps the argument. */
static int task_sleep_ignoring_term(pp_task *t)
{
    signal(SIGTERM, SIG_IGN);
    note_pid();
    ppt_sleep(ppt_arg_seconds(t));
    return 0;
}

/* Never returns (ignores pp_task_should_stop). */
static int task_endless(pp_task *t)
{
    (void)t;
    for (;;)
        ppt_sleep(0.01);
    return 0;
}

/* Spins the CPU for ever, ignoring SIGTERM. */
static int task_spin_forever_ignoring_term(pp_task *t)
{
    (void)t;
    signal(SIGTERM, SIG_IGN);
    volatile uint64_t x = 0;
    for (;;)
        x++;
    return 0;
}

/* Submits @fn (argument double @seconds) with a timeout and kill grace. */
static pp_future *submit_opts(pp_executor *ex, pp_fn fn, double seconds, double timeout,
                              double grace)
{
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = timeout;
    o.kill_grace = grace;
    pp_future *f = NULL;
    int rc = pp_submit_ex(ex, fn, &seconds, sizeof seconds, &o, &f);
    cr_assert_eq(rc, 0, "pp_submit_ex: %d %s", rc, pp_strerror(rc));
    return f;
}

/* ======================================================================== */
/* pp_future_kill                                                           */
/* ======================================================================== */

Test(kill, row11_kill_running_task_sigterm_others_unaffected, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK); /* a kill never breaks */
    pp_future *victim = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(victim, "victim");
    enum { N = 40 };
    pp_future *others[N];
    for (int i = 0; i < N; i++)
        others[i] = submit_secs(ex, ppt_task_sleepy, 0.002);
    double t0 = ppt_now();
    cr_assert_eq(pp_future_kill(victim, 0.5), 0);
    pp_exception e = outcome(victim, 10.0, "victim");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "victim: %d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGTERM, "victim: code %d (%s)", e.code, e.message);
    cr_expect_gt(e.pid, 0);
    cr_expect_lt(took, PROMPT_S, "a task dying on SIGTERM took %.3f s to resolve", took);
    cr_expect(!pp_future_cancelled(victim));
    expect_all_ok(others, N, 20.0, "neighbours of the killed task");
    /* The pool goes on, on both positions. */
    pp_future *more[N];
    for (int i = 0; i < N; i++)
        more[i] = submit_secs(ex, ppt_task_sleepy, 0.001);
    expect_all_ok(more, N, 20.0, "after the kill");
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1 && st.respawns >= 1);
    cr_expect_eq(st.killed, 1, "stats.killed %llu", (unsigned long long)st.killed);
    cr_expect_eq(st.respawns, 1, "stats.respawns %llu", (unsigned long long)st.respawns);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(others, N);
    release_all(more, N);
    pp_future_release(victim);
}

Test(kill, kill_task_ignoring_sigterm_gets_sigkill_after_grace, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *victim = submit_secs(ex, task_sleep_ignoring_term, 30.0);
    wait_running(victim, "victim");
    const double grace = 0.5;
    double t0 = ppt_now();
    cr_assert_eq(pp_future_kill(victim, grace), 0);
    pp_exception e = outcome(victim, 10.0, "victim");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "%d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL, "code %d (%s)", e.code, e.message);
    cr_expect_geq(took, grace, "resolved after %.3f s, before the %.1f s grace", took, grace);
    cr_expect_lt(took, grace + PROMPT_S, "resolved after %.3f s", took);
    /* A second kill of the killed future changes nothing. */
    int again = pp_future_kill(victim, 0);
    cr_expect(again == 0 || again == -EALREADY, "second kill: %d", again);
    cr_expect_eq(pp_future_result(victim, 0, NULL, NULL), PP_EKILLED);
    pp_future *next = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_result(next, 10.0, NULL, NULL), 0);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_log_info("SIGTERM ignored: resolved after %.3f s (grace %.1f)", took, grace);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(next);
    pp_future_release(victim);
}

Test(kill, kill_queued_task_cancels_and_kill_finished_is_ealready, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *done = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_assert_eq(pp_future_result(done, 10.0, NULL, NULL), 0);
    cr_expect_eq(pp_future_kill(done, 0.5), -EALREADY);
    cr_expect_eq(pp_future_result(done, 0, NULL, NULL), 0, "a refused kill changed the result");

    pp_future *blocker = submit_secs(ex, ppt_task_until_stop, 30.0);
    wait_running(blocker, "blocker");
    pp_future *queued = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_kill(queued, 0.5), 0);
    cr_expect(pp_future_cancelled(queued));
    cr_expect_eq(pp_future_result(queued, 0, NULL, NULL), -ECANCELED);
    pp_exception e = outcome(queued, 0, "queued");
    cr_expect_eq(e.error, -ECANCELED);
    cr_expect_eq(pp_future_kill(blocker, 0.5), 0);
    e = outcome(blocker, 10.0, "blocker");
    cr_expect_eq(e.error, PP_EKILLED);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_expect_eq(st.cancelled, 1);
    cr_expect_eq(pp_future_kill(NULL, 0), -EINVAL);
    cr_expect_eq(pp_future_kill(blocker, -1.0), -EINVAL);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(done);
    pp_future_release(queued);
    pp_future_release(blocker);
}

/* Row 21: a kill racing with the end of a task and the dequeue of the next
 * one. One worker, so "the next task on that worker" is the next in line. */
Test(kill, row21_kill_racing_with_task_end_never_hits_next_task, PPT_FIXTURE, .timeout = 90)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    unsigned seed = 777;
    enum { ROUNDS = 300, NEXT = 3 };
    int ok = 0, killed = 0, ealready = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t us = (uint32_t)(rand_r(&seed) % 201);
        pp_future *a = submit_ok(ex, task_spin_us, &us, sizeof us);
        pp_future *next[NEXT];
        for (int i = 0; i < NEXT; i++) {
            uint32_t z = (uint32_t)i;
            next[i] = submit_ok(ex, task_spin_us, &z, sizeof z);
        }
        /* Right after it starts (or at once if it already finished): spin,
         * a 1 ms poll would miss most of a 0-200 us task. */
        double dl = ppt_deadline(10.0);
        while (!pp_future_running(a) && !pp_future_done(a) && !ppt_expired(dl))
            ;
        cr_assert(!ppt_expired(dl), "round %d: the task never started", r);
        int krc = pp_future_kill(a, (r & 1) ? 0.0 : 0.5);
        cr_expect(krc == 0 || krc == -EALREADY, "round %d: kill: %d", r, krc);
        ealready += krc == -EALREADY;
        pp_exception e = outcome(a, 10.0, "raced task");
        if (e.error == 0) {
            ok++;
        } else if (e.error == PP_EKILLED) {
            killed++;
            cr_expect_eq(krc, 0, "round %d: killed although kill said %d", r, krc);
            cr_expect(e.code == 0 || e.code == SIGTERM || e.code == SIGKILL,
                      "round %d: code %d (%s)", r, e.code, e.message);
        } else {
            cr_expect(false, "round %d: raced task: %d %s (%s)", r, e.error,
                      pp_strerror(e.error), e.message);
        }
        for (int i = 0; i < NEXT; i++) {
            pp_exception n = outcome(next[i], 10.0, "next task");
            cr_expect_eq(n.error, 0, "round %d: next task %d hit: %d %s (%s)", r, i, n.error,
                         pp_strerror(n.error), n.message);
        }
        release_all(next, NEXT);
        pp_future_release(a);
    }
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= (uint64_t)killed);
    cr_expect_eq(st.killed, (uint64_t)killed, "stats.killed %llu, futures killed %d",
                 (unsigned long long)st.killed, killed);
    cr_log_info("kill race: %d ok, %d killed, %d -EALREADY of %d", ok, killed, ealready, ROUNDS);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Row 21: cancel racing with the worker's dequeue of that very task. */
Test(kill, row21_cancel_racing_with_dequeue_never_loses_a_task, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    unsigned seed = 4242;
    enum { ROUNDS = 2000 };
    int cancelled = 0, ran = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t us = (uint32_t)(rand_r(&seed) % 50);
        pp_future *a = submit_ok(ex, task_spin_us, &us, sizeof us);
        uint32_t z = 0;
        pp_future *b = submit_ok(ex, task_spin_us, &z, sizeof z);
        pp_future *c = submit_ok(ex, task_spin_us, &z, sizeof z);
        bool cb = pp_future_cancel(b);
        pp_exception e = outcome(b, 10.0, "cancel-raced task");
        if (cb) {
            cr_expect_eq(e.error, -ECANCELED, "round %d: cancel said yes, got %d", r, e.error);
            cancelled++;
        } else {
            cr_expect_eq(e.error, 0, "round %d: not cancelled, got %d %s", r, e.error,
                         pp_strerror(e.error));
            ran++;
        }
        cr_expect_eq(outcome(a, 10.0, "before").error, 0);
        cr_expect_eq(outcome(c, 10.0, "after").error, 0, "round %d: the task after", r);
        pp_future_release(a);
        pp_future_release(b);
        pp_future_release(c);
    }
    cr_log_info("cancel race: %d cancelled, %d ran", cancelled, ran);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* per-task timeouts                                                        */
/* ======================================================================== */

Test(kill, task_timeout_kills_endless_task_others_unaffected, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    double t0 = ppt_now();
    pp_future *endless = submit_opts(ex, task_endless, 0.0, 0.2, 0.2);
    enum { N = 10 };
    pp_future *others[N];
    for (int i = 0; i < N; i++)
        others[i] = submit_secs(ex, ppt_task_sleepy, 0.05); /* no timeout: 0.5 s in all */
    pp_exception e = outcome(endless, 10.0, "endless");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "%d %s", e.error, pp_strerror(e.error));
    cr_expect(strstr(e.message, "timed out") != NULL, "message \"%s\"", e.message);
    cr_expect_eq(e.code, SIGTERM, "code %d", e.code);
    cr_expect_geq(took, 0.2, "killed after %.3f s, before its timeout", took);
    cr_expect_lt(took, 0.2 + PROMPT_S, "killed after %.3f s", took);
    expect_all_ok(others, N, 20.0, "tasks without timeout");
    /* A timeout that is not reached changes nothing. */
    pp_future *fine = submit_opts(ex, ppt_task_sleepy, 0.05, 5.0, 1.0);
    cr_expect_eq(pp_future_result(fine, 10.0, NULL, NULL), 0);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(others, N);
    pp_future_release(fine);
    pp_future_release(endless);
}

/* Row 23: the manager runs no user code, so timeouts hold while every worker
 * spins the CPU (and ignores SIGTERM: the escalation must run). */
Test(kill, row23_timeouts_enforced_while_every_worker_spins, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    double t0 = ppt_now();
    enum { N = 4 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_opts(ex, task_spin_forever_ignoring_term, 0.0, 0.2, 0.2);
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, "spinner");
        cr_expect_eq(e.error, PP_EKILLED, "spinner %d: %d %s", i, e.error, pp_strerror(e.error));
        cr_expect_eq(e.code, SIGKILL, "spinner %d: code %d", i, e.code);
        cr_expect(strstr(e.message, "timed out") != NULL, "message \"%s\"", e.message);
    }
    double took = ppt_now() - t0;
    /* Two rounds of (0.2 s + 0.2 s grace) on two workers. */
    cr_expect_lt(took, 0.8 + 2 * PROMPT_S, "4 timed-out spinners took %.3f s", took);
    pp_future *g = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_result(g, 10.0, NULL, NULL), 0);
    cr_log_info("4 spinning tasks timed out and killed in %.3f s", took);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(g);
    release_all(fs, N);
}

/* ======================================================================== */
/* shutdown rows: 3, 4, 6, 26                                                */
/* ======================================================================== */

Test(kill, row3_cancel_right_after_submit_then_shutdown_wait, PPT_FIXTURE, .timeout = 60)
{
    for (int r = 0; r < 20; r++) {
        pp_executor *ex = make_pool(1, r & 1 ? PP_DEATH_RESPAWN : PP_DEATH_BREAK);
        int n = 1 + r * 5;
        pp_future *fs[100];
        for (int i = 0; i < n; i++) {
            fs[i] = submit_secs(ex, ppt_task_sleepy, 0.0);
            pp_future_cancel(fs[i]);
        }
        double t0 = ppt_now();
        cr_assert_eq(pp_shutdown(ex, true, false), 0);
        double took = ppt_now() - t0;
        cr_expect_lt(took, 5.0, "round %d: shutdown(wait) took %.2f s", r, took);
        for (int i = 0; i < n; i++) {
            pp_exception e = outcome(fs[i], 0, "cancelled");
            cr_expect(e.error == 0 || e.error == -ECANCELED, "round %d: %d %s", r, e.error,
                      pp_strerror(e.error));
        }
        cr_assert_eq(pp_executor_destroy(ex), 0);
        release_all(fs, n);
    }
}

Test(kill, row4_million_tiny_submits_no_hang, PPT_FIXTURE, .timeout = 180)
{
    const long n = PPT_ASAN ? 200000 : 1000000;
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pp_future **fs = calloc((size_t)n, sizeof *fs);
    cr_assert_not_null(fs);
    double t0 = ppt_now();
    for (long i = 0; i < n; i++) {
        int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &fs[i]);
        if (rc != 0)
            cr_assert_eq(rc, 0, "submit %ld: %d %s", i, rc, pp_strerror(rc));
    }
    double t1 = ppt_now();
    long bad = 0;
    for (long i = 0; i < n; i++) {
        int rc = pp_future_result(fs[i], 60.0, NULL, NULL);
        if (rc != 0 && bad++ == 0)
            cr_expect_eq(rc, 0, "task %ld: %d %s", i, rc, pp_strerror(rc));
        pp_future_release(fs[i]);
    }
    cr_expect_eq(bad, 0);
    free(fs);
    cr_log_info("%ld tiny submits in %.2f s, all done in %.2f s", n, t1 - t0, ppt_now() - t0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

static void check_crash_during_nowait_shutdown(pp_death_policy policy)
{
    shared_map();
    pp_executor *ex = make_pool(2, policy);
    enum { N = 30 };
    pp_future *fs[N];
    const int bad = 10;
    for (int i = 0; i < N; i++)
        fs[i] = i == bad ? submit_secs(ex, task_abort, 0.05) : submit_secs(ex, ppt_task_sleepy, 0.01);
    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    cr_expect_lt(ppt_now() - t0, PPT_PROMPT(0.5), "shutdown(wait=false) blocked");
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, "task");
        if (i == bad) {
            int want = policy == PP_DEATH_RESPAWN ? PP_EWORKER : PP_EBROKEN;
            cr_expect_eq(e.error, want, "crasher: %d %s", e.error, pp_strerror(e.error));
            cr_expect_eq(e.code, SIGABRT);
        } else if (policy == PP_DEATH_RESPAWN) {
            cr_expect_eq(e.error, 0, "task %d: %d %s", i, e.error, pp_strerror(e.error));
        } else {
            cr_expect(e.error == 0 || e.error == PP_EBROKEN, "task %d: %d %s", i, e.error,
                      pp_strerror(e.error));
        }
    }
    double t1 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t1, 5.0, "destroy after the crash took %.2f s", ppt_now() - t1);
    release_all(fs, N);
}

Test(kill, row6_worker_crash_during_shutdown_nowait_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_crash_during_nowait_shutdown(PP_DEATH_RESPAWN);
}

Test(kill, row6_worker_crash_during_shutdown_nowait_break, PPT_FIXTURE, .timeout = 60)
{
    check_crash_during_nowait_shutdown(PP_DEATH_BREAK);
}

/* Row 26: bounded shutdown latency while tasks sleep 30 s. The header:
 * "Running futures fail promptly with PP_EBROKEN" (either policy). */
static void check_bounded_shutdown(pp_death_policy policy, bool kill9)
{
    pp_executor *ex = make_pool(2, policy);
    pp_future *a = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *b = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *q = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(a, "a");
    wait_running(b, "b");
    double t0 = ppt_now();
    cr_assert_eq(kill9 ? pp_kill_workers(ex) : pp_terminate_workers(ex), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    double took = ppt_now() - t0;
    cr_expect_lt(took, PROMPT_S, "%s + destroy took %.3f s", kill9 ? "kill" : "terminate", took);
    pp_future *run[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        pp_exception e = outcome(run[i], PROMPT_S, "running task");
        cr_expect_eq(e.error, PP_EBROKEN, "%s policy, %s: running future %d: %d %s (%s)",
                     policy == PP_DEATH_RESPAWN ? "RESPAWN" : "BREAK",
                     kill9 ? "pp_kill_workers" : "pp_terminate_workers", i, e.error,
                     pp_strerror(e.error), e.message);
    }
    pp_exception e = outcome(q, PROMPT_S, "queued task");
    cr_expect(e.error == -ECANCELED || e.error == PP_EBROKEN, "queued: %d %s", e.error,
              pp_strerror(e.error));
    cr_log_info("%s, %s: workers stopped and destroy returned in %.3f s",
                kill9 ? "pp_kill_workers" : "pp_terminate_workers",
                policy == PP_DEATH_RESPAWN ? "RESPAWN" : "BREAK", took);
    release_all(run, 2);
    pp_future_release(q);
}

Test(kill, row26_kill_workers_bounds_shutdown_latency, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_BREAK, true);
}

Test(kill, row26_terminate_workers_bounds_shutdown_latency, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_BREAK, false);
}

Test(kill, row26_kill_workers_bounds_shutdown_latency_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_RESPAWN, true);
}
