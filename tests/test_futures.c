/*
 * test_futures.c — Future states and cancel, as include/ppool.h documents
 * them: cancel (however deep the queue, twice, from many threads, waking every
 * waiter), honest running/done states, and the exception fields.
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ======================================================================== */
/* cancel                                                                   */
/* ======================================================================== */

Test(futures, cancel_every_task_however_deep_the_queue, PPT_FIXTURE, .timeout = 120)
{
    enum { N = 5000 };
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 64; /* most of the N tasks wait in the client-side backlog */
    pp_executor *ex = make_pool_cfg(&cfg);

    pp_future *fin = submit_u32_echo(ex, 7);
    cr_assert_eq(pp_future_result(fin, 20.0, NULL, NULL), 0);

    /* The only worker is held by a task that runs until the shutdown. */
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");

    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (size_t i = 0; i < N; i++)
        fs[i] = submit_ok(ex, ppt_task_noop, NULL, 0);

    pp_stats st;
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 1);
    cr_expect_gt(st.backlog, 0, "no task is in the backlog (slots = 64, %d submitted)", N);

    /* Back half from the end (backlog), then the front half (shared ring). */
    for (size_t i = N; i-- > N / 2;)
        cr_expect(pp_future_cancel(fs[i]), "cancel(queued %zu) returned false", i);
    for (size_t i = 0; i < N / 2; i++)
        cr_expect(pp_future_cancel(fs[i]), "cancel(queued %zu) returned false", i);
    for (size_t i = 0; i < N; i++) {
        expect_cancelled_future(fs[i], "queued", i);
        cr_expect(pp_future_cancel(fs[i]), "second cancel(%zu) returned false", i);
        cr_expect(pp_future_cancelled(fs[i]));
    }

    /* The running one and the finished one cannot be cancelled. */
    cr_expect(!pp_future_cancel(blocker), "cancel(running) returned true");
    cr_expect(!pp_future_cancelled(blocker));
    cr_expect(pp_future_running(blocker), "cancel(running) stopped it");
    cr_expect(!pp_future_cancel(fin), "cancel(finished) returned true");
    cr_expect(!pp_future_cancelled(fin));
    cr_expect_eq(pp_future_result(fin, 0.0, NULL, NULL), 0);

    bool counted = PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 1 && st.cancelled >= N, 10.0);
    cr_expect(counted, "stats.cancelled = %llu, expected %d", (unsigned long long)st.cancelled, N);
    cr_expect_eq(st.cancelled, (uint64_t)N);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    cr_expect(!pp_future_cancel(blocker), "cancel(finished blocker) returned true");
    cr_expect(!pp_future_cancelled(blocker));
    /* Nothing cancelled ran. */
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 1);
    cr_expect_eq(st.completed, 2, "stats.completed = %llu (cancelled tasks ran?)",
                 (unsigned long long)st.completed);

    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (size_t i = 0; i < N; i++)
        pp_future_release(fs[i]);
    free(fs);
    pp_future_release(blocker);
    pp_future_release(fin);
}

Test(futures, cancel_running_and_finished_fail, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *r = submit_sleepy(ex, 0.3);
    wait_running(r, "sleepy(0.3)");
    cr_expect(!pp_future_cancel(r), "cancel(running) returned true");
    cr_expect(!pp_future_cancelled(r));
    cr_expect(!pp_future_done(r) || pp_future_result(r, 0.0, NULL, NULL) == 0);
    int rc = pp_future_result(r, 20.0, NULL, NULL);
    cr_expect_eq(rc, 0, "the running task, cancel refused: %d %s", rc, pp_strerror(rc));
    cr_expect(!pp_future_cancel(r), "cancel(finished) returned true");
    cr_expect(!pp_future_cancelled(r));
    cr_expect(pp_future_done(r));
    cr_expect(!pp_future_running(r));

    /* A task that raised is finished too. */
    pp_future *bad = submit_ok(ex, ppt_task_raiser, NULL, 0);
    cr_expect_eq(pp_future_result(bad, 20.0, NULL, NULL), PP_ETASK);
    cr_expect(!pp_future_cancel(bad), "cancel(failed) returned true");
    cr_expect(!pp_future_cancelled(bad));
    cr_expect_eq(pp_future_result(bad, 0.0, NULL, NULL), PP_ETASK);

    pp_future_release(r);
    pp_future_release(bad);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Four threads cancel the same queued futures, each callback fires once. */
typedef struct cancel_race {
    pp_future **fs;
    size_t n;
    int order; /* 0 forward, 1 backward, 2 odd then even, 3 strided */
    pthread_barrier_t *start;
    long refused;
} cancel_race;

static void *cancel_all_thread(void *p)
{
    cancel_race *c = p;
    size_t n = c->n;
    pthread_barrier_wait(c->start);
    for (size_t k = 0; k < n; k++) {
        size_t i;
        switch (c->order) {
        case 0: i = k; break;
        case 1: i = n - 1 - k; break;
        case 2: i = k < n / 2 ? 2 * k + 1 : 2 * (k - n / 2); break;
        default: i = (k * 7) % n; break;
        }
        if (i >= n)
            i = k;
        if (!pp_future_cancel(c->fs[i]))
            c->refused++;
    }
    return NULL;
}

static void cancel_race_round(int round)
{
    enum { N = 2000, T = 6 };
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 64; /* most of them in the client backlog */
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");

    static pp_future *fs[N];
    static _Atomic int fired[N];
    for (size_t i = 0; i < N; i++) {
        fs[i] = submit_ok(ex, ppt_task_noop, NULL, 0);
        atomic_init(&fired[i], 0);
        cr_assert_eq(pp_future_add_done_callback(fs[i], cb_count, &fired[i]), 0);
    }
    pthread_t th[T];
    cancel_race cr[T];
    pthread_barrier_t start;
    cr_assert_eq(pthread_barrier_init(&start, NULL, T), 0);
    /* Same order in several threads: they collide on every future. */
    int orders[T] = {0, 0, 0, 1, 2, 3};
    for (int k = 0; k < T; k++) {
        cr[k] = (cancel_race){.fs = fs, .n = N, .order = orders[k], .start = &start};
        cr_assert_eq(pthread_create(&th[k], NULL, cancel_all_thread, &cr[k]), 0);
    }
    for (int k = 0; k < T; k++)
        join_within(th[k], 30.0, "cancelling thread");
    pthread_barrier_destroy(&start);
    for (int k = 0; k < T; k++)
        cr_expect_eq(cr[k].refused, 0, "round %d, thread %d: %ld cancels of queued tasks returned false",
                     round, k, cr[k].refused);
    for (size_t i = 0; i < N; i++) {
        bool once = PPT_WAIT_FOR(atomic_load(&fired[i]) >= 1, 5.0);
        cr_expect(once, "callback of future %zu never ran", i);
        cr_expect_eq(atomic_load(&fired[i]), 1, "callback of future %zu ran %d times", i,
                     atomic_load(&fired[i]));
        expect_cancelled_future(fs[i], "raced", i);
    }
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    for (size_t i = 0; i < N; i++)
        cr_expect_eq(atomic_load(&fired[i]), 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (size_t i = 0; i < N; i++)
        pp_future_release(fs[i]);
    pp_future_release(blocker);
}

Test(futures, cancel_twice_and_from_many_threads, PPT_FIXTURE, .timeout = 60)
{
    for (int round = 0; round < 4; round++)
        cancel_race_round(round);
}

/* Threads blocked on a queued future all return when it is cancelled. */
Test(futures, cancel_wakes_every_waiter, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    pp_future *q = submit_u32_echo(ex, 1);

    enum { W = 5 };
    waiter_ctx w[W];
    pthread_t th[W];
    for (int k = 0; k < W; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].f = q;
        w[k].fs[0] = q;
        w[k].nfs = 1;
        w[k].kind = k;
        start_waiter(&th[k], &w[k]);
    }
    cr_expect(!pp_future_done(q));
    cr_assert(pp_future_cancel(q));
    for (int k = 0; k < W; k++)
        join_within(th[k], 10.0, "a waiter on a cancelled future");
    cr_expect_eq(w[0].rc, -ECANCELED, "result: %d %s", w[0].rc, pp_strerror(w[0].rc));
    cr_expect_eq(w[1].rc, 0, "exception: %d", w[1].rc);
    cr_expect_eq(w[1].exc.error, -ECANCELED, "exception error %d", w[1].exc.error);
    cr_expect_eq(w[2].rc, 1, "pp_wait(ALL): %d", w[2].rc);
    cr_expect_eq(w[3].rc, 0);
    cr_expect_eq(w[3].yielded, 1, "as_completed yielded %d", w[3].yielded);
    cr_expect_eq(w[3].extra_rc, -ENOENT);
    cr_expect_eq(w[4].rc, 1, "pp_wait(FIRST): %d", w[4].rc);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    pp_future_release(q);
    pp_future_release(blocker);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* honest states                                                            */
/* ======================================================================== */

Test(futures, running_only_once_a_worker_started_it, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *b = submit_sleepy(ex, 0.3);
    pp_future *q = submit_sleepy(ex, 0.05);
    wait_running(b, "first task");
    /* One worker, busy with b: q is queued, not running. Read q's state
     * between two observations of b running, so the snapshot is valid. */
    bool q_running = pp_future_running(q), q_done = pp_future_done(q);
    bool b_still = pp_future_running(b);
    if (b_still) {
        cr_expect(!q_running, "queued task reports running while the only worker runs another");
        cr_expect(!q_done, "queued task reports done");
        cr_expect(!pp_future_cancelled(q));
    } else {
        cr_log_warn("the 0.3 s task finished before its state was read; check skipped");
    }
    /* Once q runs, b must be finished (one worker). */
    bool started = PPT_WAIT_FOR(pp_future_running(q) || pp_future_done(q), 20.0);
    cr_assert(started);
    cr_expect(pp_future_done(b), "second task running while the first is not done (1 worker)");
    cr_expect(!pp_future_running(b), "finished task still reports running");
    cr_expect_eq(pp_future_result(q, 20.0, NULL, NULL), 0);
    cr_expect(!pp_future_running(q));
    cr_expect(pp_future_done(q));
    cr_expect(!pp_future_cancelled(q));
    pp_future_release(b);
    pp_future_release(q);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* done() is monotonic: all futures are finished before the poller starts,
 * and must read done while another thread collects their results (which
 * moves each outcome out of its slot and frees the slot). */
typedef struct done_poll {
    pp_future **fs;
    size_t n;
    _Atomic int stop;
    long not_done, polls;
} done_poll;

static void *done_poller(void *p)
{
    done_poll *d = p;
    while (!atomic_load(&d->stop)) {
        for (size_t i = 0; i < d->n; i++) {
            d->polls++;
            if (!pp_future_done(d->fs[i]))
                d->not_done++;
        }
    }
    return NULL;
}

Test(futures, done_stays_true_while_results_are_collected, PPT_FIXTURE, .timeout = 120)
{
    enum { N = 4000, ROUNDS = 50 };
    pp_executor *ex = make_pool(1);
    static pp_future *fs[N];
    long not_done = 0, polls = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < N; i++)
            fs[i] = submit_ok(ex, ppt_task_noop, NULL, 0);
        cr_assert_eq(pp_wait(fs, N, 60.0, PP_ALL_COMPLETED, NULL), N);
        done_poll d = {.fs = fs, .n = N};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, done_poller, &d), 0);
        for (size_t i = 0; i < N; i++)
            cr_expect_eq(pp_future_result(fs[i], PP_FOREVER, NULL, NULL), 0);
        atomic_store(&d.stop, 1);
        join_within(th, 30.0, "the poller");
        not_done += d.not_done;
        polls += d.polls;
        for (size_t i = 0; i < N; i++)
            pp_future_release(fs[i]);
    }
    cr_expect_eq(not_done, 0, "pp_future_done() returned false %ld times (of %ld polls) for finished futures",
                 not_done, polls);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* exception                                                                */
/* ======================================================================== */

Test(futures, exception_fields, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_worker_stats ws;
    cr_assert_eq(pp_executor_stats(ex, NULL, &ws, 1), 1);

    /* raised */
    pp_future *bad = submit_ok(ex, ppt_task_raiser, NULL, 0);
    pp_exception exc;
    memset(&exc, 0x5a, sizeof exc);
    cr_assert_eq(pp_future_exception(bad, 20.0, &exc), 0);
    cr_expect_eq(exc.error, PP_ETASK, "error %d %s", exc.error, pp_strerror(exc.error));
    cr_expect_eq(exc.code, 42);
    cr_assert_not_null(exc.message);
    cr_expect_str_eq(exc.message, "bad value 7");
    cr_expect_gt(exc.pid, 0);
    cr_expect_neq(exc.pid, getpid(), "the task ran in the client?");
    cr_expect_eq(exc.pid, ws.pid, "pid %d, worker pid %d", (int)exc.pid, (int)ws.pid);
    cr_expect_eq(pp_future_result(bad, 0.0, NULL, NULL), PP_ETASK);
    cr_expect(pp_future_done(bad) && !pp_future_running(bad) && !pp_future_cancelled(bad));

    /* returned non-zero */
    pp_future *nz = submit_ok(ex, ppt_task_returns_nonzero, NULL, 0);
    memset(&exc, 0x5a, sizeof exc);
    cr_assert_eq(pp_future_exception(nz, 20.0, &exc), 0);
    cr_expect_eq(exc.error, PP_ETASK);
    cr_expect_eq(exc.code, 5);
    cr_expect_not_null(exc.message);
    cr_expect_gt(exc.pid, 0);

    /* success */
    pp_future *ok = submit_u32_echo(ex, 3);
    memset(&exc, 0x5a, sizeof exc);
    cr_assert_eq(pp_future_exception(ok, 20.0, &exc), 0);
    cr_expect_eq(exc.error, 0, "success: error %d", exc.error);
    cr_expect_eq(exc.code, 0);
    cr_expect_not_null(exc.message);
    cr_expect_gt(exc.pid, 0);

    /* still running: exception() times out like result() */
    pp_future *slow = submit_until_stop(ex, 60.0);
    wait_running(slow, "slow");
    double t0 = ppt_now();
    cr_expect_eq(pp_future_exception(slow, 0.05, &exc), -ETIMEDOUT);
    cr_expect_geq(ppt_now() - t0, 0.04, "exception(timeout=0.05) returned early");
    cr_expect_eq(pp_future_exception(slow, 0.0, &exc), -ETIMEDOUT);
    cr_expect_eq(pp_future_exception(slow, NAN, &exc), -EINVAL);
    cr_expect_eq(pp_future_exception(NULL, 0.0, &exc), -EINVAL);

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(slow, "slow");
    pp_future_release(bad);
    pp_future_release(nz);
    pp_future_release(ok);
    pp_future_release(slow);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
