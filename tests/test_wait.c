/*
 * test_wait.c — pp_wait (ALL, FIRST_COMPLETED, FIRST_EXCEPTION, timeouts,
 * cancelled and duplicate futures, two executors, bad input) and the
 * as_completed iterator (order, each future once, deadlines, two executors).
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Nothing sleeps to "let things happen": tests wait on
 * conditions (PPT_WAIT_FOR, the API's own waits) with deadlines.
 */
#include "futures_util.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ======================================================================== */
/* pp_wait                                                                  */
/* ======================================================================== */

Test(wait, wait_all_completed, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2);
    enum { N = 8 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_sleepy(ex, 0.02 * (i % 4));
    bool done[N];
    memset(done, 0, sizeof done);
    int rc = pp_wait(fs, N, PP_FOREVER, PP_ALL_COMPLETED, done);
    cr_expect_eq(rc, N, "pp_wait(ALL) = %d", rc);
    for (int i = 0; i < N; i++) {
        cr_expect(done[i], "done[%d] false", i);
        cr_expect(pp_future_done(fs[i]));
        cr_expect_eq(pp_future_result(fs[i], 0.0, NULL, NULL), 0);
    }
    /* done may be NULL; a second wait returns at once. */
    cr_expect_eq(pp_wait(fs, N, 0.0, PP_ALL_COMPLETED, NULL), N);
    /* With failures: ALL_COMPLETED waits for everything regardless. */
    pp_future *mix[3];
    mix[0] = submit_ok(ex, ppt_task_raiser, NULL, 0);
    mix[1] = submit_sleepy(ex, 0.1);
    mix[2] = submit_ok(ex, ppt_task_returns_nonzero, NULL, 0);
    bool d3[3] = {false, false, false};
    cr_expect_eq(pp_wait(mix, 3, 20.0, PP_ALL_COMPLETED, d3), 3);
    cr_expect(d3[0] && d3[1] && d3[2]);
    cr_expect_eq(pp_future_result(mix[1], 0.0, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        pp_future_release(mix[i]);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, wait_first_completed, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2);
    pp_future *fs[4];
    fs[0] = submit_until_stop(ex, 60.0);
    fs[1] = submit_sleepy(ex, 0.05); /* the fast one */
    fs[2] = submit_until_stop(ex, 60.0);
    fs[3] = submit_until_stop(ex, 60.0);
    bool done[4] = {true, true, true, true};
    double t0 = ppt_now();
    int rc = pp_wait(fs, 4, 30.0, PP_FIRST_COMPLETED, done);
    double dt = ppt_now() - t0;
    cr_expect_eq(rc, 1, "pp_wait(FIRST_COMPLETED) = %d after %.3f s", rc, dt);
    cr_expect(done[1], "the fast task is not marked done");
    cr_expect(!done[0] && !done[2] && !done[3], "slow tasks marked done: %d %d %d", done[0], done[2], done[3]);
    cr_expect(pp_future_done(fs[1]));
    cr_expect(!pp_future_done(fs[0]) && !pp_future_done(fs[2]) && !pp_future_done(fs[3]));
    cr_expect_lt(dt, 20.0);

    /* One already done: returns at once. */
    memset(done, 0, sizeof done);
    rc = pp_wait(fs, 4, 30.0, PP_FIRST_COMPLETED, done);
    cr_expect_eq(rc, 1);
    cr_expect(done[1]);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(fs[0], "slow 0");
    for (int i = 0; i < 4; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, wait_first_exception, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2);
    pp_future *fs[3];
    fs[0] = submit_until_stop(ex, 60.0);
    fs[1] = submit_ok(ex, ppt_task_raiser, NULL, 0);
    fs[2] = submit_until_stop(ex, 60.0);
    bool done[3] = {true, true, true};
    int rc = pp_wait(fs, 3, 30.0, PP_FIRST_EXCEPTION, done);
    cr_expect_eq(rc, 1, "pp_wait(FIRST_EXCEPTION) = %d", rc);
    cr_expect(done[1]);
    cr_expect(!done[0] && !done[2]);
    cr_expect_eq(pp_future_result(fs[1], 0.0, NULL, NULL), PP_ETASK);
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    for (int i = 0; i < 3; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);

    /* Nothing fails: as ALL_COMPLETED (it does not return at the first
     * success). */
    ex = make_pool(2);
    enum { N = 6 };
    pp_future *ok[N];
    for (int i = 0; i < N; i++)
        ok[i] = submit_sleepy(ex, 0.02 + 0.02 * i);
    bool d[N];
    memset(d, 0, sizeof d);
    rc = pp_wait(ok, N, 30.0, PP_FIRST_EXCEPTION, d);
    cr_expect_eq(rc, N, "FIRST_EXCEPTION with no failure returned %d of %d", rc, N);
    for (int i = 0; i < N; i++) {
        cr_expect(d[i]);
        cr_expect(pp_future_done(ok[i]));
        pp_future_release(ok[i]);
    }

    /* A task returning non-zero is a failure too; already failed → at once. */
    pp_future *nz[2];
    nz[0] = submit_ok(ex, ppt_task_returns_nonzero, NULL, 0);
    cr_assert_eq(pp_future_result(nz[0], 20.0, NULL, NULL), PP_ETASK);
    nz[1] = submit_until_stop(ex, 60.0);
    bool d2[2] = {false, true};
    rc = pp_wait(nz, 2, 30.0, PP_FIRST_EXCEPTION, d2);
    cr_expect_eq(rc, 1);
    cr_expect(d2[0] && !d2[1]);
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    pp_future_release(nz[0]);
    pp_future_release(nz[1]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, wait_timeout_returns_the_partition, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *s = submit_sleepy(ex, 0.5);
    bool done = true;
    double t0 = ppt_now();
    int rc = pp_wait(&s, 1, 0.05, PP_ALL_COMPLETED, &done);
    double dt = ppt_now() - t0;
    cr_expect_eq(rc, 0, "pp_wait timed out: returned %d (a timeout is not an error)", rc);
    cr_expect(!done, "done[0] true for a 0.5 s task after 0.05 s");
    cr_expect_geq(dt, 0.045, "returned after %.3f s, before the timeout", dt);
    cr_expect(!pp_future_done(s));
    /* timeout 0 polls */
    done = true;
    cr_expect_eq(pp_wait(&s, 1, 0.0, PP_FIRST_COMPLETED, &done), 0);
    cr_expect(!done);

    /* Mixed partition at timeout. */
    pp_future *fin = NULL;
    cr_assert_eq(pp_future_result(s, 20.0, NULL, NULL), 0);
    fin = s;
    pp_future *slow = submit_until_stop(ex, 60.0);
    pp_future *pair[2] = {slow, fin};
    bool d2[2] = {true, false};
    rc = pp_wait(pair, 2, 0.05, PP_ALL_COMPLETED, d2);
    cr_expect_eq(rc, 1);
    cr_expect(!d2[0] && d2[1]);
    cr_expect_eq(pp_wait(pair, 2, 0.05, PP_FIRST_EXCEPTION, d2), 1);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(slow, "slow");
    pp_future_release(slow);
    pp_future_release(fin);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, wait_cancelled_duplicates_and_null, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *fin = submit_u32_echo(ex, 5);
    cr_assert_eq(pp_future_result(fin, 20.0, NULL, NULL), 0);
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    pp_future *q = submit_u32_echo(ex, 6);
    pp_future *q2 = submit_u32_echo(ex, 7);
    cr_assert(pp_future_cancel(q));

    /* Cancelled counts as done; duplicates and NULLs. */
    pp_future *fs[7] = {q, NULL, q, fin, NULL, q, fin};
    bool done[7];
    memset(done, 0, sizeof done);
    int rc = pp_wait(fs, 7, 5.0, PP_ALL_COMPLETED, done);
    bool want[7] = {true, false, true, true, false, true, true};
    for (int i = 0; i < 7; i++)
        cr_expect_eq(done[i], want[i], "done[%d] = %d", i, done[i]);
    /* "the number of done futures": 2 distinct futures (in 5 entries), as
     * Python's wait() returns sets. */
    cr_expect_eq(rc, 2, "pp_wait with duplicates returned %d (2 distinct futures done, 5 entries)", rc);

    /* Duplicates of an unfinished future: timeout partition. */
    pp_future *gs[5] = {q2, fin, q2, NULL, blocker};
    bool d2[5];
    memset(d2, 1, sizeof d2);
    rc = pp_wait(gs, 5, 0.05, PP_ALL_COMPLETED, d2);
    cr_expect(!d2[0] && d2[1] && !d2[2] && !d2[3] && !d2[4], "partition %d %d %d %d %d", d2[0], d2[1], d2[2],
              d2[3], d2[4]);
    cr_expect_eq(rc, 1);
    /* A cancel by another party completes the wait. */
    cr_assert(pp_future_cancel(q2));
    memset(d2, 0, sizeof d2);
    rc = pp_wait(gs, 4, 5.0, PP_ALL_COMPLETED, d2); /* without the blocker */
    cr_expect(d2[0] && d2[1] && d2[2] && !d2[3]);
    cr_expect_eq(rc, 2, "returned %d for 2 distinct done futures", rc);

    /* Only NULLs (or nothing): nothing to wait for. */
    pp_future *nulls[3] = {NULL, NULL, NULL};
    bool dn[3] = {true, true, true};
    double t0 = ppt_now();
    cr_expect_eq(pp_wait(nulls, 3, PP_FOREVER, PP_ALL_COMPLETED, dn), 0);
    cr_expect(!dn[0] && !dn[1] && !dn[2]);
    cr_expect_eq(pp_wait(nulls, 3, PP_FOREVER, PP_FIRST_COMPLETED, NULL), 0);
    cr_expect_eq(pp_wait(nulls, 0, PP_FOREVER, PP_ALL_COMPLETED, NULL), 0);
    cr_expect_lt(ppt_now() - t0, 5.0);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    pp_future_release(fin);
    pp_future_release(blocker);
    pp_future_release(q);
    pp_future_release(q2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, wait_two_executors, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *e1 = make_pool(1);
    pp_executor *e2 = make_pool(1);
    pp_future *fs[4];
    fs[0] = submit_sleepy(e1, 0.1);
    fs[1] = submit_sleepy(e2, 0.05);
    fs[2] = submit_u32_echo(e1, 1);
    fs[3] = submit_u32_echo(e2, 2);
    bool done[4];
    memset(done, 0, sizeof done);
    cr_expect_eq(pp_wait(fs, 4, 30.0, PP_ALL_COMPLETED, done), 4);
    cr_expect(done[0] && done[1] && done[2] && done[3]);
    for (int i = 0; i < 4; i++)
        pp_future_release(fs[i]);

    /* FIRST_COMPLETED across pools: e1's task never ends by itself. */
    pp_future *gs[2];
    gs[0] = submit_until_stop(e1, 60.0);
    gs[1] = submit_sleepy(e2, 0.05);
    bool d2[2] = {true, false};
    cr_expect_eq(pp_wait(gs, 2, 30.0, PP_FIRST_COMPLETED, d2), 1);
    cr_expect(!d2[0] && d2[1]);
    /* FIRST_EXCEPTION across pools. */
    pp_future *bad = submit_ok(e2, ppt_task_raiser, NULL, 0);
    pp_future *hs[2] = {gs[0], bad};
    bool d3[2] = {true, false};
    cr_expect_eq(pp_wait(hs, 2, 30.0, PP_FIRST_EXCEPTION, d3), 1);
    cr_expect(!d3[0] && d3[1]);

    cr_assert_eq(pp_shutdown(e1, true, true), 0);
    expect_stopped(gs[0], "e1 task");
    pp_future_release(gs[0]);
    pp_future_release(gs[1]);
    pp_future_release(bad);
    cr_assert_eq(pp_executor_destroy(e1), 0);
    cr_assert_eq(pp_executor_destroy(e2), 0);
}

Test(wait, wait_bad_input, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_u32_echo(ex, 1);
    cr_expect_eq(pp_wait(NULL, 1, 1.0, PP_ALL_COMPLETED, NULL), -EINVAL);
    cr_expect_eq(pp_wait(&f, 1, NAN, PP_ALL_COMPLETED, NULL), -EINVAL);
    cr_expect_eq(pp_wait(&f, 1, 1.0, (pp_return_when)77, NULL), -EINVAL);
    cr_expect_eq(pp_wait(&f, 1, 20.0, PP_ALL_COMPLETED, NULL), 1);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* as_completed                                                             */
/* ======================================================================== */

Test(wait, as_completed_finished_first_then_completion_order, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(3);
    pp_future *pre = submit_u32_echo(ex, 99);
    cr_assert_eq(pp_future_result(pre, 20.0, NULL, NULL), 0);
    pp_future *s3 = submit_sleepy(ex, 0.3);
    pp_future *s1 = submit_sleepy(ex, 0.1);
    pp_future *s2 = submit_sleepy(ex, 0.2);
    pp_future *fs[4] = {s3, s1, pre, s2};
    pp_future *want[4] = {pre, s1, s2, s3};
    const char *names[4] = {"finished", "0.1", "0.2", "0.3"};

    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, 4, 30.0), 0);
    cr_assert_not_null(it);
    cr_expect_eq(pp_as_completed_pending(it), 4);
    for (int k = 0; k < 4; k++) {
        pp_future *g = NULL;
        int rc = pp_as_completed_next(it, &g);
        cr_assert_eq(rc, 0, "next #%d: %d %s", k, rc, pp_strerror(rc));
        cr_expect_eq(g, want[k], "position %d: expected the %s task", k, names[k]);
        cr_expect(pp_future_done(g), "yielded an unfinished future");
        cr_expect_eq(pp_as_completed_pending(it), (size_t)(3 - k));
    }
    pp_future *g = (pp_future *)(uintptr_t)1;
    cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT);
    cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT, "not -ENOENT again");
    cr_expect_eq(pp_as_completed_pending(it), 0);
    pp_as_completed_end(it);
    pp_as_completed_end(NULL);
    for (int i = 0; i < 4; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, as_completed_yields_each_future_once, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2);
    pp_future *a = submit_sleepy(ex, 0.05);
    pp_future *b = submit_u32_echo(ex, 3);
    pp_future *c = submit_sleepy(ex, 0.02);
    pp_future *fs[7] = {a, a, b, a, c, b, c};
    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, 7, 30.0), 0);
    int seen_a = 0, seen_b = 0, seen_c = 0, n = 0, rc;
    pp_future *g;
    while ((rc = pp_as_completed_next(it, &g)) == 0) {
        n++;
        seen_a += g == a;
        seen_b += g == b;
        seen_c += g == c;
        cr_assert_leq(n, 7);
    }
    cr_expect_eq(rc, -ENOENT);
    cr_expect_eq(n, 3, "yielded %d futures for 3 distinct ones", n);
    cr_expect(seen_a == 1 && seen_b == 1 && seen_c == 1, "a %d, b %d, c %d", seen_a, seen_b, seen_c);
    cr_expect_eq(pp_as_completed_pending(it), 0);
    pp_as_completed_end(it);

    /* Cancelled futures are yielded (they are done). */
    pp_future *blocker = submit_until_stop(ex, 60.0);
    pp_future *blocker2 = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    wait_running(blocker2, "blocker2");
    pp_future *q = submit_u32_echo(ex, 4);
    cr_assert(pp_future_cancel(q));
    cr_assert_eq(pp_as_completed_begin(&it, &q, 1, 5.0), 0);
    cr_expect_eq(pp_as_completed_next(it, &g), 0);
    cr_expect_eq(g, q);
    cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT);
    pp_as_completed_end(it);

    /* Nothing to iterate. */
    cr_assert_eq(pp_as_completed_begin(&it, fs, 0, 1.0), 0);
    cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT);
    cr_expect_eq(pp_as_completed_pending(it), 0);
    pp_as_completed_end(it);
    cr_expect_eq(pp_as_completed_begin(NULL, fs, 1, 1.0), -EINVAL);
    cr_expect_eq(pp_as_completed_begin(&it, NULL, 2, 1.0), -EINVAL);
    cr_expect_eq(pp_as_completed_begin(&it, fs, 1, NAN), -EINVAL);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    expect_stopped(blocker2, "blocker2");
    pp_future_release(a);
    pp_future_release(b);
    pp_future_release(c);
    pp_future_release(q);
    pp_future_release(blocker);
    pp_future_release(blocker2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, as_completed_deadline, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2);
    pp_future *pre = submit_u32_echo(ex, 1);
    cr_assert_eq(pp_future_result(pre, 20.0, NULL, NULL), 0);
    pp_future *s1 = submit_until_stop(ex, 60.0);
    pp_future *s2 = submit_until_stop(ex, 60.0);
    pp_future *fs[3] = {s1, pre, s2};
    pp_as_completed *it = NULL;
    double t0 = ppt_now();
    cr_assert_eq(pp_as_completed_begin(&it, fs, 3, 0.7), 0);
    /* One absolute deadline from begin: spending 0.6 s elsewhere leaves
     * 0.1 s for the calls below, not 0.7 s each. */
    ppt_sleep(0.6);
    pp_future *g = NULL;
    cr_expect_eq(pp_as_completed_next(it, &g), 0);
    cr_expect_eq(g, pre);
    int rc = pp_as_completed_next(it, &g);
    double dt = ppt_now() - t0;
    cr_expect_eq(rc, -ETIMEDOUT, "next after the deadline: %d %s", rc, pp_strerror(rc));
    cr_expect_geq(dt, 0.69, "timed out %.3f s after begin, deadline 0.7 s", dt);
    cr_expect_lt(dt, 1.2, "timed out %.3f s after begin: the deadline is not absolute", dt);
    cr_expect_eq(pp_as_completed_pending(it), 2);
    double t1 = ppt_now();
    cr_expect_eq(pp_as_completed_next(it, &g), -ETIMEDOUT);
    cr_expect_eq(pp_as_completed_next(it, &g), -ETIMEDOUT);
    cr_expect_lt(ppt_now() - t1, PPT_PROMPT(0.5), "-ETIMEDOUT after the deadline should be immediate");
    cr_expect_eq(pp_as_completed_pending(it), 2);
    pp_as_completed_end(it);

    /* Timeout 0: only what is finished. */
    cr_assert_eq(pp_as_completed_begin(&it, fs, 3, 0.0), 0);
    cr_expect_eq(pp_as_completed_next(it, &g), 0);
    cr_expect_eq(g, pre);
    cr_expect_eq(pp_as_completed_next(it, &g), -ETIMEDOUT);
    pp_as_completed_end(it);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(s1, "s1");
    expect_stopped(s2, "s2");
    pp_future_release(s1);
    pp_future_release(s2);
    pp_future_release(pre);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(wait, as_completed_two_executors, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *e1 = make_pool(1);
    pp_executor *e2 = make_pool(1);
    pp_future *fs[4];
    fs[0] = submit_sleepy(e1, 0.3);
    fs[1] = submit_sleepy(e2, 0.1);
    fs[2] = submit_sleepy(e1, 0.0); /* after 0.3 on e1 */
    fs[3] = submit_sleepy(e2, 0.1); /* after 0.1 on e2: at 0.2 */
    pp_future *want[4] = {fs[1], fs[3], fs[0], fs[2]};
    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, 4, 30.0), 0);
    for (int k = 0; k < 4; k++) {
        pp_future *g = NULL;
        cr_assert_eq(pp_as_completed_next(it, &g), 0);
        /* e1's two tasks finish within microseconds of each other: only
         * check the cross-executor order. */
        if (k < 2)
            cr_expect_eq(g, want[k], "position %d", k);
        else
            cr_expect(g == fs[0] || g == fs[2], "position %d", k);
        cr_expect(pp_future_done(g));
    }
    pp_future *g;
    cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT);
    pp_as_completed_end(it);
    for (int i = 0; i < 4; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(e1), 0);
    cr_assert_eq(pp_executor_destroy(e2), 0);
}
