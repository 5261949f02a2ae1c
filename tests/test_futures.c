/*
 * test_futures.c — the Future and module-level API, as include/ppool.h
 * documents it: cancel (however deep the queue), honest running states,
 * exceptions, done-callbacks, pp_wait, as_completed, shutdown's four
 * combinations, the scope-exit helpers, terminate/kill, and a pool broken by
 * a crashing task (every blocking call returns).
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Nothing sleeps to "let things happen": tests wait on
 * conditions (PPT_WAIT_FOR, the API's own waits) with deadlines.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int allowed_cpus(void)
{
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    return n > 0 ? n : 1;
}

/* A pool of @workers; unpinned when there are more workers than CPUs (the
 * tasks here mostly sleep), so no oversubscription warning is printed. */
static void pool_config(pp_config *cfg, int workers)
{
    ppt_config(cfg, workers);
    if (workers > allowed_cpus())
        cfg->pin = PP_PIN_NONE;
}

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create(max_workers=%d): %d %s", cfg->max_workers, rc,
                 pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_executor *make_pool(int workers)
{
    pp_config cfg;
    pool_config(&cfg, workers);
    return make_pool_cfg(&cfg);
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

static pp_future *submit_sleepy(pp_executor *ex, double seconds)
{
    return submit_ok(ex, ppt_task_sleepy, &seconds, sizeof seconds);
}

/* A task that polls pp_task_should_stop() for up to @max seconds: it runs
 * until pp_shutdown(..., cancel_futures=true) (or a broken pool) stops it. */
static pp_future *submit_until_stop(pp_executor *ex, double max)
{
    return submit_ok(ex, ppt_task_until_stop, &max, sizeof max);
}

static pp_future *submit_u32_echo(pp_executor *ex, uint32_t v)
{
    return submit_ok(ex, ppt_task_echo, &v, sizeof v);
}

static void wait_running(pp_future *f, const char *what)
{
    bool ok = PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 20.0);
    cr_assert(ok, "%s never started", what);
    cr_assert(pp_future_running(f), "%s finished before the test could use it running", what);
}

/* Expects a ppt_task_until_stop future to finish with "saw the stop". */
static void expect_stopped(pp_future *f, const char *what)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, 20.0, &d, &n);
    cr_expect_eq(rc, 0, "%s: %d %s", what, rc, pp_strerror(rc));
    if (rc == 0 && n == sizeof(int32_t)) {
        int32_t seen;
        memcpy(&seen, d, sizeof seen);
        cr_expect_eq(seen, 1, "%s never saw pp_task_should_stop()", what);
    }
}

static void expect_cancelled_future(pp_future *f, const char *what, size_t i)
{
    cr_expect(pp_future_cancelled(f), "%s %zu: cancelled() false", what, i);
    cr_expect(pp_future_done(f), "%s %zu: done() false", what, i);
    cr_expect(!pp_future_running(f), "%s %zu: running() true", what, i);
    int rc = pp_future_result(f, 0.0, NULL, NULL);
    cr_expect_eq(rc, -ECANCELED, "%s %zu: result %d %s", what, i, rc, pp_strerror(rc));
    pp_exception exc;
    memset(&exc, 0x5a, sizeof exc);
    rc = pp_future_exception(f, 0.0, &exc);
    cr_expect_eq(rc, 0, "%s %zu: exception() %d %s", what, i, rc, pp_strerror(rc));
    cr_expect_eq(exc.error, -ECANCELED, "%s %zu: exception error %d %s", what, i, exc.error,
                 pp_strerror(exc.error));
    cr_expect_eq(exc.pid, 0, "%s %zu: cancelled future has pid %d", what, i, (int)exc.pid);
    cr_expect_not_null(exc.message);
}

/* Joins @th, failing the test if it does not finish within @seconds. */
static void join_within(pthread_t th, double seconds, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    int rc = pthread_timedjoin_np(th, NULL, &ts);
    cr_assert_eq(rc, 0, "%s did not return within %.0f s (pthread_timedjoin_np: %s)", what, seconds,
                 strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* callback recorder                                                        */
/* ------------------------------------------------------------------------ */

#define CB_MAX 256

typedef struct cb_log {
    _Atomic int claimed;  /* entries claimed */
    _Atomic int written;  /* entries fully written (release) */
    int ids[CB_MAX];
    pid_t pids[CB_MAX];
    pthread_t threads[CB_MAX];
    pp_future *futs[CB_MAX];
} cb_log;

typedef struct cb_arg {
    cb_log *log;
    int id;
    int ret; /* what the callback returns */
} cb_arg;

static int cb_record(pp_future *f, void *ud)
{
    cb_arg *a = ud;
    int k = atomic_fetch_add(&a->log->claimed, 1); /* relaxed would do; seq_cst is simplest */
    if (k < CB_MAX) {
        a->log->ids[k] = a->id;
        a->log->pids[k] = getpid();
        a->log->threads[k] = pthread_self();
        a->log->futs[k] = f;
    }
    atomic_fetch_add_explicit(&a->log->written, 1, memory_order_release); /* publishes the entry */
    return a->ret;
}

static int cb_written(cb_log *l) { return atomic_load_explicit(&l->written, memory_order_acquire); }

/* A counting callback: userdata = _Atomic int. */
static int cb_count(pp_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)ud, 1);
    return 0;
}

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
typedef struct waiter_ctx {
    pp_future *f;
    pp_future *fs[4];
    size_t nfs;
    int kind; /* 0 result, 1 exception, 2 pp_wait ALL, 3 as_completed, 4 pp_wait FIRST */
    _Atomic int started;
    int rc;
    pp_exception exc;
    int yielded;
    int extra_rc;
} waiter_ctx;

static void *waiter_thread(void *p)
{
    waiter_ctx *w = p;
    atomic_store(&w->started, 1);
    switch (w->kind) {
    case 0:
        w->rc = pp_future_result(w->f, PP_FOREVER, NULL, NULL);
        break;
    case 1:
        w->rc = pp_future_exception(w->f, PP_FOREVER, &w->exc);
        break;
    case 2:
        w->rc = pp_wait(w->fs, w->nfs, PP_FOREVER, PP_ALL_COMPLETED, NULL);
        break;
    case 4:
        w->rc = pp_wait(w->fs, w->nfs, PP_FOREVER, PP_FIRST_COMPLETED, NULL);
        break;
    case 3: {
        pp_as_completed *it = NULL;
        w->rc = pp_as_completed_begin(&it, w->fs, w->nfs, PP_FOREVER);
        if (w->rc != 0)
            break;
        pp_future *g;
        int rc;
        while ((rc = pp_as_completed_next(it, &g)) == 0)
            w->yielded++;
        w->extra_rc = rc;
        pp_as_completed_end(it);
        break;
    }
    }
    return NULL;
}

static void start_waiter(pthread_t *th, waiter_ctx *w)
{
    cr_assert_eq(pthread_create(th, NULL, waiter_thread, w), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load(&w->started) == 1, 10.0));
}

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

/* ======================================================================== */
/* callbacks                                                                */
/* ======================================================================== */

Test(futures, callbacks_run_in_order_in_the_client, PPT_FIXTURE, .timeout = 60)
{
    static cb_log log; /* static: large */
    memset(&log, 0, sizeof log);
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_sleepy(ex, 0.3);
    enum { K = 8 };
    cb_arg args[K];
    for (int k = 0; k < K; k++) {
        args[k] = (cb_arg){.log = &log, .id = k};
        cr_assert_eq(pp_future_add_done_callback(f, cb_record, &args[k]), 0);
    }
    bool registered_before_done = !pp_future_done(f);
    cr_assert_eq(pp_future_result(f, 20.0, NULL, NULL), 0);
    cr_assert(PPT_WAIT_FOR(cb_written(&log) >= K, 10.0), "only %d of %d callbacks ran",
              cb_written(&log), K);
    cr_expect_eq(cb_written(&log), K);
    for (int k = 0; k < K; k++) {
        cr_expect_eq(log.ids[k], k, "callback %d ran in position %d", log.ids[k], k);
        cr_expect_eq(log.pids[k], getpid(), "callback ran in pid %d, client is %d", (int)log.pids[k],
                     (int)getpid());
        cr_expect_eq(log.futs[k], f, "callback got another future");
        if (registered_before_done)
            cr_expect(!pthread_equal(log.threads[k], pthread_self()),
                      "a callback of a future finished by a worker ran in the waiting thread");
    }
    for (int k = 1; k < K; k++)
        cr_expect(pthread_equal(log.threads[k], log.threads[0]), "callbacks of one future in several threads");

    /* Several futures: each one's callbacks in registration order. */
    memset(&log, 0, sizeof log);
    enum { NF = 6, PER = 3 };
    pp_future *fs[NF];
    cb_arg a2[NF][PER];
    for (int i = 0; i < NF; i++) {
        fs[i] = submit_sleepy(ex, 0.01);
        for (int k = 0; k < PER; k++) {
            a2[i][k] = (cb_arg){.log = &log, .id = i * 100 + k};
            cr_assert_eq(pp_future_add_done_callback(fs[i], cb_record, &a2[i][k]), 0);
        }
    }
    cr_assert_eq(pp_wait(fs, NF, 20.0, PP_ALL_COMPLETED, NULL), NF);
    cr_assert(PPT_WAIT_FOR(cb_written(&log) >= NF * PER, 10.0));
    int last[NF];
    for (int i = 0; i < NF; i++)
        last[i] = -1;
    for (int k = 0; k < NF * PER; k++) {
        int i = log.ids[k] / 100, j = log.ids[k] % 100;
        cr_assert(i >= 0 && i < NF);
        cr_expect_eq(j, last[i] + 1, "future %d: callback %d ran after callback %d", i, j, last[i]);
        last[i] = j;
        cr_expect_eq(log.pids[k], getpid());
        cr_expect_eq(log.futs[k], fs[i]);
    }
    for (int i = 0; i < NF; i++)
        pp_future_release(fs[i]);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(futures, callback_on_done_future_runs_at_once_in_caller, PPT_FIXTURE, .timeout = 60)
{
    static cb_log log;
    memset(&log, 0, sizeof log);
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_u32_echo(ex, 9);
    cr_assert_eq(pp_future_result(f, 20.0, NULL, NULL), 0);
    /* Callbacks of the completion itself (none registered) may still be in
     * flight; with no callback registered nothing can run late. */
    cb_arg a[3];
    for (int k = 0; k < 3; k++) {
        a[k] = (cb_arg){.log = &log, .id = k};
        cr_assert_eq(pp_future_add_done_callback(f, cb_record, &a[k]), 0);
        cr_expect_eq(cb_written(&log), k + 1, "callback on a done future did not run before add returned");
    }
    for (int k = 0; k < 3; k++) {
        cr_expect_eq(log.ids[k], k);
        cr_expect(pthread_equal(log.threads[k], pthread_self()), "ran in another thread");
        cr_expect_eq(log.pids[k], getpid());
        cr_expect_eq(log.futs[k], f);
    }
    /* Also on a failed and on a cancelled future. */
    pp_future *bad = submit_ok(ex, ppt_task_raiser, NULL, 0);
    cr_assert_eq(pp_future_result(bad, 20.0, NULL, NULL), PP_ETASK);
    cb_arg ab = {.log = &log, .id = 10};
    cr_assert_eq(pp_future_add_done_callback(bad, cb_record, &ab), 0);
    cr_expect_eq(cb_written(&log), 4);
    cr_expect_eq(log.ids[3], 10);
    cr_expect(pthread_equal(log.threads[3], pthread_self()));

    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    pp_future *q = submit_u32_echo(ex, 1);
    cr_assert(pp_future_cancel(q));
    cb_arg aq = {.log = &log, .id = 11};
    cr_assert_eq(pp_future_add_done_callback(q, cb_record, &aq), 0);
    cr_expect_eq(cb_written(&log), 5);
    cr_expect_eq(log.ids[4], 11);
    cr_expect(pthread_equal(log.threads[4], pthread_self()));

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    pp_future_release(f);
    pp_future_release(bad);
    pp_future_release(q);
    pp_future_release(blocker);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(futures, callback_runs_inside_cancel, PPT_FIXTURE, .timeout = 60)
{
    static cb_log log;
    memset(&log, 0, sizeof log);
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 16;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    /* q_ring sits in the shared ring, q_back in the client backlog. */
    pp_future *q_ring = submit_u32_echo(ex, 1);
    pp_future *fill[40];
    for (int i = 0; i < 40; i++)
        fill[i] = submit_ok(ex, ppt_task_noop, NULL, 0);
    pp_future *q_back = submit_u32_echo(ex, 2);

    cb_arg a1 = {.log = &log, .id = 1}, a2 = {.log = &log, .id = 2}, a3 = {.log = &log, .id = 3};
    cr_assert_eq(pp_future_add_done_callback(q_ring, cb_record, &a1), 0);
    cr_assert_eq(pp_future_add_done_callback(q_ring, cb_record, &a2), 0);
    cr_assert_eq(pp_future_add_done_callback(q_back, cb_record, &a3), 0);
    cr_expect_eq(cb_written(&log), 0, "a callback ran before its future was done");

    cr_assert(pp_future_cancel(q_ring));
    cr_expect_eq(cb_written(&log), 2, "callbacks had not run when cancel() returned");
    cr_assert(pp_future_cancel(q_back));
    cr_expect_eq(cb_written(&log), 3, "backlog future: callback had not run when cancel() returned");
    for (int k = 0; k < 3 && k < cb_written(&log); k++) {
        cr_expect_eq(log.ids[k], k + 1);
        cr_expect(pthread_equal(log.threads[k], pthread_self()), "callback %d not run by the cancelling thread",
                  k + 1);
        cr_expect_eq(log.pids[k], getpid());
    }
    /* A second cancel does not run them again. */
    cr_assert(pp_future_cancel(q_ring));
    cr_expect_eq(cb_written(&log), 3, "callbacks ran twice");

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    expect_stopped(blocker, "blocker");
    cr_expect_eq(cb_written(&log), 3);
    for (int i = 0; i < 40; i++)
        pp_future_release(fill[i]);
    pp_future_release(q_ring);
    pp_future_release(q_back);
    pp_future_release(blocker);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(futures, callbacks_run_inside_shutdown_cancel_futures, PPT_FIXTURE, .timeout = 60)
{
    static cb_log log;
    memset(&log, 0, sizeof log);
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 16;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *blocker = submit_until_stop(ex, 60.0);
    wait_running(blocker, "blocker");
    enum { N = 60 }; /* ring and backlog */
    pp_future *fs[N];
    cb_arg a[N];
    for (int i = 0; i < N; i++) {
        fs[i] = submit_u32_echo(ex, (uint32_t)i);
        a[i] = (cb_arg){.log = &log, .id = i};
        cr_assert_eq(pp_future_add_done_callback(fs[i], cb_record, &a[i]), 0);
    }
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    cr_expect_eq(cb_written(&log), N, "%d of %d callbacks of cancelled futures ran inside pp_shutdown",
                 cb_written(&log), N);
    int n = cb_written(&log) < N ? cb_written(&log) : N;
    bool seen[N] = {false};
    for (int k = 0; k < n; k++) {
        cr_expect(pthread_equal(log.threads[k], pthread_self()), "callback not run by the shutting-down thread");
        cr_assert(log.ids[k] >= 0 && log.ids[k] < N);
        cr_expect(!seen[log.ids[k]], "callback %d ran twice", log.ids[k]);
        seen[log.ids[k]] = true;
    }
    for (int i = 0; i < N; i++)
        expect_cancelled_future(fs[i], "queued at shutdown", (size_t)i);
    expect_stopped(blocker, "blocker");
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(cb_written(&log), N);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    pp_future_release(blocker);
}

/* A callback that inspects the failed future it was given. */
typedef struct err_probe {
    _Atomic int ran;
    int result_rc, exc_rc, exc_error, exc_code;
    char msg[64];
    pid_t pid;
} err_probe;

static int cb_probe_error(pp_future *f, void *ud)
{
    err_probe *p = ud;
    p->result_rc = pp_future_result(f, 0.0, NULL, NULL);
    pp_exception exc;
    p->exc_rc = pp_future_exception(f, 0.0, &exc);
    if (p->exc_rc == 0) {
        p->exc_error = exc.error;
        p->exc_code = exc.code;
        snprintf(p->msg, sizeof p->msg, "%s", exc.message ? exc.message : "(null)");
    }
    p->pid = getpid();
    atomic_store_explicit(&p->ran, 1, memory_order_release); /* publishes the fields */
    return 0;
}

Test(futures, callback_runs_on_error, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    err_probe p;
    memset(&p, 0, sizeof p);
    double delay = 0.1;
    pp_future *slow = submit_sleepy(ex, delay); /* so the raiser is still queued at registration */
    pp_future *bad = submit_ok(ex, ppt_task_raiser, NULL, 0);
    cr_assert_eq(pp_future_add_done_callback(bad, cb_probe_error, &p), 0);
    cr_expect_eq(pp_future_result(bad, 20.0, NULL, NULL), PP_ETASK);
    cr_assert(PPT_WAIT_FOR(atomic_load_explicit(&p.ran, memory_order_acquire) == 1, 10.0),
              "callback of a failed task never ran");
    cr_expect_eq(p.result_rc, PP_ETASK, "in callback: result %d", p.result_rc);
    cr_expect_eq(p.exc_rc, 0);
    cr_expect_eq(p.exc_error, PP_ETASK);
    cr_expect_eq(p.exc_code, 42);
    cr_expect_str_eq(p.msg, "bad value 7");
    cr_expect_eq(p.pid, getpid());
    pp_future_release(slow);
    pp_future_release(bad);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Captures file descriptor 2 into a memfd between begin and end. */
typedef struct stderr_capture {
    int saved, fd;
} stderr_capture;

static void capture_begin(stderr_capture *c)
{
    fflush(stderr);
    c->fd = memfd_create("ppt-stderr", MFD_CLOEXEC);
    cr_assert_geq(c->fd, 0, "memfd_create: %s", strerror(errno));
    c->saved = dup(2);
    cr_assert_geq(c->saved, 0);
    cr_assert_geq(dup2(c->fd, 2), 0);
}

/* Restores stderr; returns the captured text (malloc'd). */
static char *capture_end(stderr_capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    off_t n = lseek(c->fd, 0, SEEK_END);
    char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
    cr_assert_not_null(s);
    ssize_t got = n > 0 ? pread(c->fd, s, (size_t)n, 0) : 0;
    s[got > 0 ? got : 0] = '\0';
    close(c->fd);
    return s;
}

Test(futures, callback_returning_nonzero_is_reported_and_others_run, PPT_FIXTURE, .timeout = 60)
{
    static cb_log log;
    memset(&log, 0, sizeof log);
    pp_executor *ex = make_pool(1);
    stderr_capture cap;
    capture_begin(&cap);

    /* Finished by a worker: callbacks on the client-side thread. */
    pp_future *f = submit_sleepy(ex, 0.1);
    cb_arg a[4] = {{&log, 1, 1}, {&log, 2, 0}, {&log, 3, -5}, {&log, 4, 0}};
    for (int k = 0; k < 4; k++)
        cr_assert_eq(pp_future_add_done_callback(f, cb_record, &a[k]), 0);
    cr_assert_eq(pp_future_result(f, 20.0, NULL, NULL), 0);
    bool all = PPT_WAIT_FOR(cb_written(&log) >= 4, 10.0);

    /* Already done: in the caller. */
    cb_arg b[2] = {{&log, 5, 7}, {&log, 6, 0}};
    for (int k = 0; k < 2; k++)
        cr_assert_eq(pp_future_add_done_callback(f, cb_record, &b[k]), 0);
    char *text = capture_end(&cap);

    cr_expect(all, "only %d of 4 callbacks ran after some returned non-zero", cb_written(&log));
    cr_expect_eq(cb_written(&log), 6);
    for (int k = 0; k < 6 && k < cb_written(&log); k++)
        cr_expect_eq(log.ids[k], k + 1, "position %d: callback %d", k, log.ids[k]);
    cr_expect_neq(strlen(text), 0, "nothing was reported on stderr for callbacks returning non-zero");
    int lines = 0;
    for (const char *s = text; *s; s++)
        lines += *s == '\n';
    cr_expect_geq(lines, 3, "expected one report per failing callback (3), stderr was:\n%s", text);
    cr_log_info("stderr from failing callbacks:\n%s", text);
    free(text);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Follow-up tasks submitted from callbacks: a fan-out tree of N tasks through
 * a pool with 64 slots (so the backlog is used from the callback thread).
 * Each callback owns one reference to its future and releases it. */
typedef struct fanout {
    pp_executor *ex;
    int max;
    _Atomic int created;
    _Atomic int finished;
    _Atomic int errors;
    _Atomic int first_error;
} fanout;

static int cb_fanout(pp_future *f, void *ud);

static void fanout_spawn(fanout *c)
{
    int id = atomic_fetch_add(&c->created, 1);
    if (id >= c->max) {
        atomic_fetch_sub(&c->created, 1);
        return;
    }
    uint32_t v = (uint32_t)id;
    pp_future *g = NULL;
    int rc = pp_submit(c->ex, ppt_task_echo, &v, sizeof v, &g);
    if (rc != 0) {
        atomic_fetch_add(&c->errors, 1);
        atomic_store(&c->first_error, rc);
        atomic_fetch_sub(&c->created, 1);
        return;
    }
    /* g's one reference now belongs to its callback. */
    rc = pp_future_add_done_callback(g, cb_fanout, c);
    if (rc != 0) {
        atomic_fetch_add(&c->errors, 1);
        atomic_store(&c->first_error, rc);
        pp_future_release(g);
    }
}

static int cb_fanout(pp_future *f, void *ud)
{
    fanout *c = ud;
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, 0.0, &d, &n);
    if (rc != 0 || n != sizeof(uint32_t)) {
        atomic_fetch_add(&c->errors, 1);
        atomic_store(&c->first_error, rc ? rc : -1);
    }
    fanout_spawn(c);
    fanout_spawn(c);
    pp_future_release(f); /* the callback's own reference */
    atomic_fetch_add(&c->finished, 1);
    return 0;
}

Test(futures, callback_submits_follow_up_tasks_without_deadlock, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    pool_config(&cfg, allowed_cpus() >= 2 ? 2 : 1);
    cfg.slots = 64;
    pp_executor *ex = make_pool_cfg(&cfg);
    static fanout c;
    memset(&c, 0, sizeof c);
    c.ex = ex;
    c.max = 3000;

    /* The root: the test keeps its own reference and gives one to the
     * callback; it releases its own before the callback runs. */
    unsigned char rarg[sizeof(double) + sizeof(uint32_t)];
    double rs = 0.05;
    uint32_t rv = 0;
    memcpy(rarg, &rs, sizeof rs);
    memcpy(rarg + sizeof rs, &rv, sizeof rv);
    pp_future *root = submit_ok(ex, ppt_task_sleep_echo, rarg, sizeof rarg);
    atomic_fetch_add(&c.created, 1);
    pp_future_ref(root); /* the callback's reference */
    cr_assert_eq(pp_future_add_done_callback(root, cb_fanout, &c), 0);
    pp_future_release(root); /* the test's own */

    /* Also from the test thread, while callbacks are submitting. */
    for (int i = 0; i < 20; i++)
        fanout_spawn(&c);

    bool all = PPT_WAIT_FOR(atomic_load(&c.finished) >= c.max, 90.0);
    cr_assert(all, "follow-up chain stalled: %d created, %d finished of %d (deadlock?)",
              atomic_load(&c.created), atomic_load(&c.finished), c.max);
    cr_expect_eq(atomic_load(&c.errors), 0, "%d errors, last %d %s", atomic_load(&c.errors),
                 atomic_load(&c.first_error), pp_strerror(atomic_load(&c.first_error)));
    cr_expect_eq(atomic_load(&c.created), c.max);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(atomic_load(&c.finished), c.max);
}

static _Atomic int g_null_userdata_calls;

static int cb_null_userdata(pp_future *f, void *ud)
{
    (void)f;
    if (ud == NULL)
        atomic_fetch_add(&g_null_userdata_calls, 1);
    return 0;
}

Test(futures, callback_bad_input, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_u32_echo(ex, 1);
    _Atomic int n = 0;
    cr_expect_eq(pp_future_add_done_callback(NULL, cb_count, &n), -EINVAL);
    cr_expect_eq(pp_future_add_done_callback(f, NULL, &n), -EINVAL);
    cr_assert_eq(pp_future_result(f, 20.0, NULL, NULL), 0);
    cr_expect_eq(pp_future_add_done_callback(f, cb_count, &n), 0);
    cr_expect_eq(atomic_load(&n), 1);
    /* userdata may be NULL */
    cr_expect_eq(pp_future_add_done_callback(f, cb_null_userdata, NULL), 0);
    cr_expect_eq(atomic_load(&g_null_userdata_calls), 1);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* pp_wait                                                                  */
/* ======================================================================== */

Test(futures, wait_all_completed, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_first_completed, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_first_exception, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_timeout_returns_the_partition, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_cancelled_duplicates_and_null, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_two_executors, PPT_FIXTURE, .timeout = 60)
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

Test(futures, wait_bad_input, PPT_FIXTURE, .timeout = 60)
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

Test(futures, as_completed_finished_first_then_completion_order, PPT_FIXTURE, .timeout = 60)
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

Test(futures, as_completed_yields_each_future_once, PPT_FIXTURE, .timeout = 60)
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

Test(futures, as_completed_deadline, PPT_FIXTURE, .timeout = 60)
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

Test(futures, as_completed_two_executors, PPT_FIXTURE, .timeout = 60)
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

/* ======================================================================== */
/* shutdown                                                                 */
/* ======================================================================== */

enum { SD_N = 20 };

static void sd_submit(pp_executor *ex, pp_future **fs)
{
    for (int i = 0; i < SD_N; i++)
        fs[i] = submit_sleepy(ex, 0.05);
}

static void sd_release(pp_future **fs)
{
    for (int i = 0; i < SD_N; i++)
        pp_future_release(fs[i]);
}

/* Every future resolves: counts the completed and cancelled ones. */
static void sd_resolve(pp_future **fs, int *ok, int *cancelled)
{
    *ok = *cancelled = 0;
    for (int i = 0; i < SD_N; i++) {
        int rc = pp_future_result(fs[i], 30.0, NULL, NULL);
        if (rc == 0)
            ++*ok;
        else if (rc == -ECANCELED)
            ++*cancelled;
        else
            cr_expect(false, "future %d: %d %s", i, rc, pp_strerror(rc));
    }
}

static void expect_no_live_children(const char *when)
{
    int n = ppt_count_children(true, NULL, 0);
    cr_expect_eq(n, 0, "%d live process(es) %s", n, when);
}

static void expect_submit_refused(pp_executor *ex)
{
    pp_future *g = (pp_future *)(uintptr_t)1;
    int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    cr_expect_eq(rc, -ESHUTDOWN, "submit after shutdown: %d %s", rc, pp_strerror(rc));
    cr_expect_null(g);
}

Test(futures, shutdown_wait_no_cancel, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *fs[SD_N];
    sd_submit(ex, fs);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    for (int i = 0; i < SD_N; i++)
        cr_expect(pp_future_done(fs[i]), "future %d not done after shutdown(wait=true)", i);
    expect_no_live_children("after shutdown(wait=true)");
    int ok, cancelled;
    sd_resolve(fs, &ok, &cancelled);
    cr_expect_eq(ok, SD_N, "%d of %d ran", ok, SD_N);
    cr_expect_eq(pp_shutdown(ex, true, false), 0, "second shutdown");
    cr_expect_eq(pp_shutdown(ex, false, true), 0, "third shutdown");
    expect_submit_refused(ex);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    sd_release(fs);
}

Test(futures, shutdown_nowait_no_cancel, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *fs[SD_N];
    sd_submit(ex, fs);
    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    double dt = ppt_now() - t0;
    cr_expect(!pp_future_done(fs[SD_N - 1]), "shutdown(wait=false) waited for the work (%.3f s)", dt);
    expect_submit_refused(ex);
    int ok, cancelled;
    sd_resolve(fs, &ok, &cancelled);
    cr_expect_eq(ok, SD_N, "%d of %d ran (%d cancelled) after shutdown(wait=false)", ok, SD_N, cancelled);
    cr_expect_eq(pp_shutdown(ex, false, false), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    expect_no_live_children("after destroy");
    sd_release(fs);
}

Test(futures, shutdown_wait_cancel, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *fs[SD_N];
    sd_submit(ex, fs);
    wait_running(fs[0], "first task");
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    for (int i = 0; i < SD_N; i++)
        cr_expect(pp_future_done(fs[i]), "future %d not done after shutdown(wait=true)", i);
    expect_no_live_children("after shutdown(wait=true, cancel_futures=true)");
    int ok, cancelled;
    sd_resolve(fs, &ok, &cancelled);
    cr_expect_eq(pp_future_result(fs[0], 0.0, NULL, NULL), 0, "the running task was not completed");
    cr_expect_geq(ok, 1);
    cr_expect_geq(cancelled, SD_N - 3, "only %d cancelled", cancelled);
    cr_expect_eq(ok + cancelled, SD_N);
    /* Once cancelled, always cancelled: the ones that ran are a prefix. */
    for (int i = 0; i < ok; i++)
        cr_expect(!pp_future_cancelled(fs[i]), "future %d cancelled but a later one ran", i);
    expect_submit_refused(ex);
    cr_expect_eq(pp_shutdown(ex, true, true), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    sd_release(fs);
}

Test(futures, shutdown_nowait_cancel, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 8; /* some of them in the backlog */
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *fs[SD_N];
    sd_submit(ex, fs);
    wait_running(fs[0], "first task");
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    /* Cancelled inside the call, not later. */
    int cancelled_now = 0;
    for (int i = 0; i < SD_N; i++)
        cancelled_now += pp_future_cancelled(fs[i]);
    cr_expect_geq(cancelled_now, SD_N - 2, "%d cancelled when shutdown(wait=false, cancel) returned",
                  cancelled_now);
    expect_submit_refused(ex);
    int ok, cancelled;
    sd_resolve(fs, &ok, &cancelled);
    cr_expect_eq(cancelled, cancelled_now, "cancelled after return: %d, at return %d", cancelled, cancelled_now);
    cr_expect_eq(pp_future_result(fs[0], 0.0, NULL, NULL), 0);
    cr_expect_eq(ok + cancelled, SD_N);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    expect_no_live_children("after destroy");
    sd_release(fs);
}

Test(futures, destroy_after_nowait_shutdown_waits_for_work, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *fs[SD_N];
    sd_submit(ex, fs);
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0); /* = shutdown(wait) + free */
    for (int i = 0; i < SD_N; i++) {
        cr_expect(pp_future_done(fs[i]), "future %d not done after destroy", i);
        cr_expect_eq(pp_future_result(fs[i], 0.0, NULL, NULL), 0);
    }
    expect_no_live_children("after destroy");
    sd_release(fs);
}

Test(futures, scoped_executor_shuts_down_at_scope_exit, PPT_FIXTURE, .timeout = 60)
{
    pp_future *f = NULL;
    {
        PP_SCOPED_EXECUTOR(ex);
        cr_assert_null(ex);
        pp_config cfg;
        pool_config(&cfg, 1);
        cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
        cr_expect_gt(ppt_count_children(true, NULL, 0), 0, "no pool processes?");
        double s = 0.2;
        cr_assert_eq(pp_submit(ex, ppt_task_sleepy, &s, sizeof s, &f), 0);
        cr_expect(!pp_future_done(f));
    }
    /* Leaving the block ran shutdown(wait) + free. */
    cr_expect(pp_future_done(f), "the scope ended without waiting for the work");
    cr_expect_eq(pp_future_result(f, 0.0, NULL, NULL), 0);
    expect_no_live_children("after the scoped executor's block");
    pp_future_release(f);

    /* Scoped future: released at the end of its block. */
    pp_executor *ex2 = make_pool(1);
    for (int i = 0; i < 3; i++) {
        PP_SCOPED_FUTURE(g);
        cr_assert_null(g);
        uint32_t v = (uint32_t)i;
        cr_assert_eq(pp_submit(ex2, ppt_task_echo, &v, sizeof v, &g), 0);
        cr_expect_eq(pp_future_result(g, 20.0, NULL, NULL), 0);
    }
    cr_assert_eq(pp_executor_destroy(ex2), 0);

    /* The cleanup functions accept NULL. */
    pp_executor *nex = NULL;
    pp_executor_cleanup(&nex);
    pp_future *nf = NULL;
    pp_future_cleanup(&nf);
}

/* ======================================================================== */
/* terminate / kill                                                         */
/* ======================================================================== */

typedef int (*stop_fn)(pp_executor *);

static void check_stop_workers(stop_fn stop, const char *name)
{
    int nw = allowed_cpus() >= 2 ? 2 : 1;
    pp_executor *ex = make_pool(nw);
    pp_future *run[2] = {NULL, NULL};
    for (int i = 0; i < nw; i++)
        run[i] = submit_sleepy(ex, 30.0); /* does not poll: must be killed */
    for (int i = 0; i < nw; i++)
        wait_running(run[i], "30 s task");
    enum { Q = 6 };
    pp_future *q[Q];
    for (int i = 0; i < Q; i++)
        q[i] = submit_sleepy(ex, 0.01);

    _Atomic int cb = 0;
    cr_assert_eq(pp_future_add_done_callback(run[0], cb_count, &cb), 0);
    waiter_ctx w;
    memset(&w, 0, sizeof w);
    w.f = run[0];
    w.kind = 0;
    pthread_t th;
    start_waiter(&th, &w);
    waiter_ctx wq;
    memset(&wq, 0, sizeof wq);
    wq.fs[0] = run[0];
    wq.fs[1] = q[Q - 1];
    wq.nfs = 2;
    wq.kind = 2;
    pthread_t thq;
    start_waiter(&thq, &wq);

    double t0 = ppt_now();
    cr_assert_eq(stop(ex), 0, "%s", name);
    double dt = ppt_now() - t0;
    cr_expect_lt(dt, 5.0, "%s blocked for %.3f s", name, dt);

    for (int i = 0; i < nw; i++) {
        int rc = pp_future_result(run[i], 20.0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "%s: running future %d: %d %s", name, i, rc, pp_strerror(rc));
        cr_expect(pp_future_done(run[i]));
        cr_expect(!pp_future_running(run[i]));
    }
    double dt_fail = ppt_now() - t0;
    cr_expect_lt(dt_fail, 10.0, "%s: running futures failed only after %.3f s", name, dt_fail);
    for (int i = 0; i < Q; i++) {
        int rc = pp_future_result(q[i], 20.0, NULL, NULL);
        cr_expect(rc == -ECANCELED || rc == PP_EBROKEN, "%s: queued future %d: %d %s", name, i, rc,
                  pp_strerror(rc));
    }
    join_within(th, 20.0, "a thread blocked in pp_future_result");
    cr_expect_eq(w.rc, PP_EBROKEN, "waiter: %d %s", w.rc, pp_strerror(w.rc));
    join_within(thq, 20.0, "a thread blocked in pp_wait");
    cr_expect_eq(wq.rc, 2, "pp_wait: %d", wq.rc);
    cr_expect(PPT_WAIT_FOR(atomic_load(&cb) == 1, 10.0), "callback of the killed task did not run");

    pp_future *g = (pp_future *)(uintptr_t)1;
    int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    cr_expect(rc == -ESHUTDOWN || rc == PP_EBROKEN, "submit after %s: %d %s", name, rc, pp_strerror(rc));
    cr_expect_null(g);
    cr_expect_eq(stop(ex), 0, "second %s", name);

    t0 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t0, 10.0, "destroy after %s took %.3f s", name, ppt_now() - t0);
    expect_no_live_children("after destroy");
    for (int i = 0; i < nw; i++)
        pp_future_release(run[i]);
    for (int i = 0; i < Q; i++)
        pp_future_release(q[i]);
}

Test(futures, terminate_workers, PPT_FIXTURE, .timeout = 90)
{
    check_stop_workers(pp_terminate_workers, "pp_terminate_workers");
}

Test(futures, kill_workers, PPT_FIXTURE, .timeout = 90)
{
    check_stop_workers(pp_kill_workers, "pp_kill_workers");
}

Test(futures, terminate_and_kill_idle_pool_and_bad_input, PPT_FIXTURE, .timeout = 60)
{
    cr_expect_eq(pp_terminate_workers(NULL), -EINVAL);
    cr_expect_eq(pp_kill_workers(NULL), -EINVAL);
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_u32_echo(ex, 1);
    cr_assert_eq(pp_future_result(f, 20.0, NULL, NULL), 0);
    cr_expect_eq(pp_terminate_workers(ex), 0);
    cr_expect_eq(pp_kill_workers(ex), 0);
    /* A finished future keeps its result. */
    const void *d = NULL;
    size_t n = 0;
    cr_expect_eq(pp_future_result(f, 0.0, &d, &n), 0);
    cr_expect_eq(n, sizeof(uint32_t));
    pp_future *g = NULL;
    cr_expect_neq(pp_submit(ex, ppt_task_noop, NULL, 0, &g), 0);
    cr_expect_null(g);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    expect_no_live_children("after destroy");
    pp_future_release(f);
}

/* ======================================================================== */
/* a crashing task breaks the pool: every blocking call returns              */
/* ======================================================================== */

static void check_break(pp_fn crash, int signo, const char *name)
{
    pp_executor *ex = make_pool(2);
    pp_future *lng = submit_sleepy(ex, 30.0); /* does not poll */
    wait_running(lng, "30 s task");
    double delay = 0.3; /* lets the waiters below block first */
    pp_future *bad = submit_ok(ex, crash, &delay, sizeof delay);
    enum { Q = 4 };
    pp_future *q[Q];
    for (int i = 0; i < Q; i++)
        q[i] = submit_sleepy(ex, 0.01);

    waiter_ctx w[5];
    pthread_t th[5];
    memset(w, 0, sizeof w);
    w[0].f = lng;
    w[0].kind = 0; /* result on the other, long task */
    w[1].fs[0] = lng;
    w[1].fs[1] = q[0];
    w[1].nfs = 2;
    w[1].kind = 2; /* pp_wait ALL */
    w[2].fs[0] = lng;
    w[2].fs[1] = q[1];
    w[2].fs[2] = q[2];
    w[2].nfs = 3;
    w[2].kind = 3; /* as_completed */
    w[3].f = q[3];
    w[3].kind = 0; /* result on a queued task */
    w[4].fs[0] = lng;
    w[4].nfs = 1;
    w[4].kind = 4; /* pp_wait FIRST */
    for (int k = 0; k < 5; k++)
        start_waiter(&th[k], &w[k]);
    _Atomic int cb = 0;
    cr_assert_eq(pp_future_add_done_callback(lng, cb_count, &cb), 0);

    int rc = pp_future_result(bad, 30.0, NULL, NULL);
    cr_expect_eq(rc, PP_EBROKEN, "%s: the crashed task: %d %s", name, rc, pp_strerror(rc));
    pp_exception exc;
    memset(&exc, 0, sizeof exc);
    cr_assert_eq(pp_future_exception(bad, 5.0, &exc), 0);
    cr_expect_eq(exc.error, PP_EBROKEN, "exception error %d %s", exc.error, pp_strerror(exc.error));
    cr_expect_eq(exc.code, signo, "exception code %d, expected the signal %d", exc.code, signo);
    cr_expect_gt(exc.pid, 0, "no pid for the crashed task");
    cr_expect_not_null(exc.message);
    if (exc.message)
        cr_log_info("%s: crashed future's message: %s", name, exc.message);

    for (int k = 0; k < 5; k++)
        join_within(th[k], 20.0, "a thread blocked on the broken pool");
    cr_expect_eq(w[0].rc, PP_EBROKEN, "%s: result on the long task: %d %s", name, w[0].rc, pp_strerror(w[0].rc));
    cr_expect_eq(w[1].rc, 2, "pp_wait(ALL) returned %d", w[1].rc);
    cr_expect_eq(w[2].rc, 0);
    cr_expect_eq(w[2].yielded, 3, "as_completed yielded %d of 3", w[2].yielded);
    cr_expect_eq(w[2].extra_rc, -ENOENT);
    cr_expect_eq(w[3].rc, PP_EBROKEN, "result on a queued task: %d %s", w[3].rc, pp_strerror(w[3].rc));
    cr_expect_eq(w[4].rc, 1, "pp_wait(FIRST) returned %d", w[4].rc);
    for (int i = 0; i < Q; i++) {
        rc = pp_future_result(q[i], 5.0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "queued %d: %d %s", i, rc, pp_strerror(rc));
    }
    cr_expect_eq(pp_future_result(lng, 0.0, NULL, NULL), PP_EBROKEN);
    cr_expect(PPT_WAIT_FOR(atomic_load(&cb) == 1, 10.0), "callback on the broken future did not run");

    pp_future *g = (pp_future *)(uintptr_t)1;
    rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    cr_expect_eq(rc, PP_EBROKEN, "submit on a broken pool: %d %s", rc, pp_strerror(rc));
    cr_expect_null(g);

    double t0 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t0, 10.0, "destroy of a broken pool took %.3f s", ppt_now() - t0);
    expect_no_live_children("after destroy");
    pp_future_release(lng);
    pp_future_release(bad);
    for (int i = 0; i < Q; i++)
        pp_future_release(q[i]);
}

Test(futures, abort_in_task_breaks_pool_and_wakes_every_waiter, PPT_FIXTURE, .timeout = 90)
{
    check_break(ppt_task_abort, SIGABRT, "abort()");
}

Test(futures, sigkill_in_task_breaks_pool_and_wakes_every_waiter, PPT_FIXTURE, .timeout = 90)
{
    check_break(ppt_task_sigkill, SIGKILL, "raise(SIGKILL)");
}

/* ======================================================================== */
/* exit: the program waits for submitted work (Python parity, see exit.c)   */
/* ======================================================================== */

#include <fcntl.h>
#include <sys/wait.h>

#define EXIT_TASKS 6

/* Argument: {path of the log file, task number}. Appends "S<i>" at start
 * and "E<i>" after 40 ms to the log (O_APPEND: whole records from any
 * process). A path, not a descriptor: spawned workers inherit none of the
 * client's descriptors, so each task opens the file itself. */
typedef struct exit_arg {
    char path[96];
    int i;
} exit_arg;

static void exit_log(const char *path, char what, int i)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    char rec[8];
    int n = snprintf(rec, sizeof rec, "%c%d\n", what, i);
    ssize_t w = write(fd, rec, (size_t)n);
    (void)w;
    close(fd);
}

static int task_exit_logged(pp_task *t)
{
    const exit_arg *a = pp_task_arg(t, NULL);
    exit_log(a->path, 'S', a->i);
    ppt_sleep(0.04);
    exit_log(a->path, 'E', a->i);
    return 0;
}

static int exit_in_callback(pp_future *f, void *userdata)
{
    (void)f;
    (void)userdata;
    exit(7);
}

enum exit_how { EXIT_PLAIN, EXIT_AFTER_SHUTDOWN_NOWAIT, EXIT_AFTER_SHUTDOWN_CANCEL, EXIT_IN_CALLBACK };

/* Forked client: a one-worker pool, EXIT_TASKS logged tasks, then exit()
 * in the way @how says, without pp_executor_destroy. */
static _Noreturn void exit_child(const char *path, enum exit_how how)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    pp_executor *ex = NULL;
    if (pp_executor_create(&ex, &cfg) != 0)
        _exit(90);
    pp_future *fs[EXIT_TASKS];
    for (int i = 0; i < EXIT_TASKS; i++) {
        exit_arg a = {.i = i};
        snprintf(a.path, sizeof a.path, "%s", path);
        if (pp_submit(ex, task_exit_logged, &a, sizeof a, &fs[i]) != 0)
            _exit(91);
    }
    /* Wait until the first task runs: cancel_futures then has a running
     * task to let finish and queued ones to cancel. */
    double dl = ppt_deadline(20.0);
    while (!pp_future_running(fs[0]) && !pp_future_done(fs[0]) && !ppt_expired(dl))
        ppt_sleep(0.001);
    switch (how) {
    case EXIT_PLAIN:
        break;
    case EXIT_AFTER_SHUTDOWN_NOWAIT:
        pp_shutdown(ex, false, false);
        break;
    case EXIT_AFTER_SHUTDOWN_CANCEL:
        pp_shutdown(ex, false, true);
        break;
    case EXIT_IN_CALLBACK:
        pp_future_add_done_callback(fs[0], exit_in_callback, NULL);
        pp_future_result(fs[EXIT_TASKS - 1], PP_FOREVER, NULL, NULL); /* exit(7) ends it */
        _exit(92);
    }
    exit(0);
}

/* Runs exit_child(@how) in a forked process; returns its exit status and
 * fills started[i] / ended[i] from the log. */
static int run_exit_child(enum exit_how how, bool started[EXIT_TASKS], bool ended[EXIT_TASKS])
{
    char path[96];
    snprintf(path, sizeof path, "/tmp/ppool-exit-%d-%d.log", (int)getpid(), (int)how);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "open %s", path);
    close(fd);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0)
        exit_child(path, how);
    int status = 0;
    double dl = ppt_deadline(30.0);
    pid_t r;
    while ((r = waitpid(child, &status, WNOHANG)) == 0 && !ppt_expired(dl))
        ppt_sleep(0.002);
    if (r == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        cr_assert_fail("the client did not exit within 30 s");
    }
    /* Its workers may outlive it by a moment when it did not wait. */
    ppt_wait_no_children(5.0);
    for (int i = 0; i < EXIT_TASKS; i++)
        started[i] = ended[i] = false;
    FILE *log = fopen(path, "r");
    cr_assert_not_null(log);
    char what;
    int i;
    while (fscanf(log, " %c%d", &what, &i) == 2)
        if (i >= 0 && i < EXIT_TASKS)
            (what == 'S' ? started : ended)[i] = true;
    fclose(log);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Returning from main / exit() with work pending: it all runs first. */
Test(futures, exit_waits_for_every_submitted_task, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_PLAIN, started, ended), 0);
    for (int i = 0; i < EXIT_TASKS; i++)
        cr_expect(started[i] && ended[i], "task %d: started %d, ended %d", i, started[i], ended[i]);
}

/* Python: shutdown(wait=False) then the end of the program still runs the
 * queued work. */
Test(futures, exit_after_shutdown_nowait_still_runs_the_queue, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_AFTER_SHUTDOWN_NOWAIT, started, ended), 0);
    for (int i = 0; i < EXIT_TASKS; i++)
        cr_expect(started[i] && ended[i], "task %d: started %d, ended %d", i, started[i], ended[i]);
}

/* Python's wait-first pattern: shutdown(wait=False, cancel_futures=True);
 * the program waits for the running task at exit, the queued ones never run. */
Test(futures, exit_after_shutdown_cancel_finishes_only_the_running, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_AFTER_SHUTDOWN_CANCEL, started, ended), 0);
    cr_expect(started[0] && ended[0], "the running task did not finish (started %d, ended %d)",
              started[0], ended[0]);
    int ran = 0;
    for (int i = 0; i < EXIT_TASKS; i++) {
        cr_expect(!started[i] || ended[i], "task %d started but did not finish", i);
        ran += started[i];
    }
    cr_expect_lt(ran, EXIT_TASKS, "cancel_futures cancelled nothing (%d ran)", ran);
}

/* exit() inside a done-callback (on the service thread) ends the program
 * without hanging on that executor. */
Test(futures, exit_inside_a_done_callback_does_not_hang, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_IN_CALLBACK, started, ended), 7);
    cr_expect(started[0] && ended[0]);
}
