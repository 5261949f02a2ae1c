/*
 * test_patterns.c — the usage patterns of the Python guide (reference §3.6 and
 * workloads W3–W11 of §4), ported to ppool and asserted:
 *
 *   W3  map-and-wait via submit, submit + as_completed, submit + sequential
 *       use, callbacks, wait for all, wait for first then
 *       shutdown(wait=false, cancel_futures=true), the 2-iterable variant
 *   W4  future states: cancel a pending / running / done task, result timeout
 *   W5  a failing task via submit: exception() and result()
 *   W6  two callbacks per future run in order
 *   W8  cooperative stop: tasks poll pp_task_should_stop()
 *   W9  follow-up tasks submitted while iterating as_completed
 *   W10 progress dots from a done-callback
 *   W11 remaining-task counter from as_completed
 *
 * Sleeps are short (<= 0.2 s) and drawn from a fixed-seed PRNG, so the runs
 * are reproducible and the suite stays well under 30 s.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* splitmix64: a fixed-seed PRNG for reproducible sleeps and values. */
typedef struct prng {
    uint64_t s;
} prng;

static uint64_t prng_next(prng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double prng_uniform(prng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(prng_next(r) >> 11) * 0x1.0p-53);
}

/* The default pool (max_workers = 0: physical cores), as the guide uses. */
static pp_executor *default_pool(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create(defaults): %d %s", rc, pp_strerror(rc));
    return ex;
}

static pp_executor *pool_of(int workers)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cpu_set_t s;
    if (workers > ppt_allowed_cpus(&s))
        cfg.pin = PP_PIN_NONE; /* the tasks sleep; no oversubscription warning */
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create(%d): %d %s", workers, rc, pp_strerror(rc));
    return ex;
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

/* W3's task: "random sleep < 1 s, return its argument" (here <= 0.2 s). */
typedef struct w3_arg {
    double sleep;
    int64_t value;
} w3_arg;

static pp_future *submit_w3(pp_executor *ex, double sleep, int64_t value)
{
    w3_arg a = {sleep, value};
    /* ppt_task_sleep_echo: sleeps a.sleep, returns the bytes after it. */
    return submit_ok(ex, ppt_task_sleep_echo, &a, sizeof a);
}

static int64_t w3_value(pp_future *f)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, 30.0, &d, &n);
    cr_assert_eq(rc, 0, "result: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(int64_t), "result size %zu", n);
    int64_t v;
    memcpy(&v, d, sizeof v);
    return v;
}

/* The same, returning when it finished (CLOCK_MONOTONIC is system-wide, so
 * the worker's clock reading compares with the client's). */
typedef struct stamped {
    int64_t value;
    double finished;
} stamped;

static int task_stamped(pp_task *t)
{
    const w3_arg *a = pp_task_arg(t, NULL);
    w3_arg x;
    memcpy(&x, a, sizeof x);
    ppt_sleep(x.sleep);
    stamped r = {x.value, ppt_now()};
    return pp_task_set_result(t, &r, sizeof r);
}

/* ======================================================================== */
/* W3: the six usage patterns                                               */
/* ======================================================================== */

enum { W3_N = 10 };

Test(patterns, map_and_wait_results_in_submission_order, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    prng r = {1};
    pp_future *fs[W3_N];
    for (int i = 0; i < W3_N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.2), i);
    /* "for result in executor.map(task, range(10))": in input order. */
    for (int i = 0; i < W3_N; i++)
        cr_expect_eq(w3_value(fs[i]), i, "result %d out of order", i);
    for (int i = 0; i < W3_N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(patterns, submit_and_use_as_completed, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    prng r = {2};
    pp_future *fs[W3_N];
    for (int i = 0; i < W3_N; i++) {
        w3_arg a = {prng_uniform(&r, 0.01, 0.2), i};
        fs[i] = submit_ok(ex, task_stamped, &a, sizeof a);
    }
    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, W3_N, 60.0), 0);
    bool seen[W3_N] = {false};
    double prev = 0;
    int n = 0, rc;
    pp_future *f;
    while ((rc = pp_as_completed_next(it, &f)) == 0) {
        const void *d = NULL;
        size_t sz = 0;
        cr_assert_eq(pp_future_result(f, 0.0, &d, &sz), 0, "yielded a future that is not done");
        cr_assert_eq(sz, sizeof(stamped));
        stamped s;
        memcpy(&s, d, sizeof s);
        cr_assert(s.value >= 0 && s.value < W3_N);
        cr_expect(!seen[s.value], "task %lld yielded twice", (long long)s.value);
        seen[s.value] = true;
        /* Completion order: a task finishing more than 50 ms before the
         * previous one would have been yielded first (the slack covers the
         * time between a worker's clock reading and its publication). */
        cr_expect_geq(s.finished, prev - 0.05, "task %lld (finished %.3f) after one that finished at %.3f",
                      (long long)s.value, s.finished, prev);
        if (s.finished > prev)
            prev = s.finished;
        n++;
    }
    cr_expect_eq(rc, -ENOENT);
    cr_expect_eq(n, W3_N);
    pp_as_completed_end(it);
    for (int i = 0; i < W3_N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(patterns, submit_and_use_sequentially, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    prng r = {3};
    pp_future *fs[W3_N];
    for (int i = 0; i < W3_N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.2), 100 + i);
    /* Iterate the futures list in submission order, one result at a time;
     * each call blocks only until that task is done. */
    for (int i = 0; i < W3_N; i++) {
        cr_expect_eq(w3_value(fs[i]), 100 + i);
        cr_expect(pp_future_done(fs[i]));
    }
    for (int i = 0; i < W3_N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* W3 #4 + W6 + W10: two callbacks per future (a progress dot, then a
 * second one), run in registration order, in the client. */
typedef struct progress {
    _Atomic int dots;
    _Atomic int seq;
    char line[64];
    int first[32], second[32];
    pid_t pid[32];
} progress;

typedef struct cb_slot {
    progress *p;
    int i;
} cb_slot;

static int cb_dot(pp_future *f, void *ud)
{
    (void)f;
    cb_slot *s = ud;
    s->p->first[s->i] = atomic_fetch_add(&s->p->seq, 1);
    s->p->pid[s->i] = getpid();
    int k = atomic_fetch_add(&s->p->dots, 1);
    if (k < (int)sizeof s->p->line - 1)
        s->p->line[k] = '.';
    return 0;
}

static int cb_second(pp_future *f, void *ud)
{
    (void)f;
    cb_slot *s = ud;
    s->p->second[s->i] = atomic_fetch_add(&s->p->seq, 1);
    return 0;
}

Test(patterns, callbacks_progress_dots, PPT_FIXTURE, .timeout = 60)
{
    enum { N = 20 };
    pp_executor *ex = pool_of(2);
    static progress p;
    memset(&p, 0, sizeof p);
    prng r = {10};
    pp_future *fs[N];
    cb_slot slots[N];
    for (int i = 0; i < N; i++) {
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.1), i);
        slots[i] = (cb_slot){&p, i};
        cr_assert_eq(pp_future_add_done_callback(fs[i], cb_dot, &slots[i]), 0);
        cr_assert_eq(pp_future_add_done_callback(fs[i], cb_second, &slots[i]), 0);
    }
    cr_assert_eq(pp_wait(fs, N, 60.0, PP_ALL_COMPLETED, NULL), N);
    /* Callbacks may still be running when pp_wait returns. */
    cr_assert(PPT_WAIT_FOR(atomic_load(&p.seq) == 2 * N, 10.0), "%d of %d callbacks ran",
              atomic_load(&p.seq), 2 * N);
    cr_expect_eq(atomic_load(&p.dots), N);
    char want[N + 1];
    memset(want, '.', N);
    want[N] = '\0';
    cr_expect_str_eq(p.line, want);
    cr_log_info("progress: %sDone!", p.line);
    for (int i = 0; i < N; i++) {
        cr_expect_lt(p.first[i], p.second[i], "future %d: callback 2 ran before callback 1", i);
        cr_expect_eq(p.pid[i], getpid(), "callback ran outside the client");
        pp_future_release(fs[i]);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(patterns, submit_and_wait_for_all, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    prng r = {5};
    pp_future *fs[W3_N];
    for (int i = 0; i < W3_N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.2), i);
    bool done[W3_N];
    cr_expect_eq(pp_wait(fs, W3_N, PP_FOREVER, PP_ALL_COMPLETED, done), W3_N);
    for (int i = 0; i < W3_N; i++) {
        cr_expect(done[i]);
        cr_expect_eq(w3_value(fs[i]), i);
        pp_future_release(fs[i]);
    }
    /* The other spelling: shutdown(wait=true) waits for all. */
    for (int i = 0; i < W3_N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.2), i);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    for (int i = 0; i < W3_N; i++) {
        cr_expect(pp_future_done(fs[i]));
        cr_expect_eq(w3_value(fs[i]), i);
        pp_future_release(fs[i]);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(patterns, wait_for_first_then_shutdown_cancel, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(2);
    prng r = {6};
    pp_future *fs[W3_N];
    for (int i = 0; i < W3_N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.05, 0.2), i);
    bool done[W3_N];
    int nd = pp_wait(fs, W3_N, 60.0, PP_FIRST_COMPLETED, done);
    cr_assert_geq(nd, 1, "pp_wait(FIRST_COMPLETED) = %d", nd);
    int first = -1;
    for (int i = 0; i < W3_N && first < 0; i++)
        if (done[i])
            first = i;
    cr_assert_geq(first, 0);
    cr_expect_eq(w3_value(fs[first]), first);
    /* shutdown(wait=False, cancel_futures=True): returns at once, the tasks
     * not started are cancelled, the running ones finish in the background. */
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < W3_N; i++) {
        int rc = pp_future_result(fs[i], 30.0, NULL, NULL);
        if (rc == 0) {
            ok++;
            cr_expect_eq(w3_value(fs[i]), i);
        } else if (rc == -ECANCELED) {
            cancelled++;
        } else {
            cr_expect(false, "future %d: %d %s", i, rc, pp_strerror(rc));
        }
    }
    cr_expect_geq(ok, 1);
    cr_expect_geq(cancelled, 1, "nothing was cancelled (%d ran)", ok);
    cr_expect_eq(ok + cancelled, W3_N);
    /* "the main thread will not close until all tasks have completed". */
    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (int i = 0; i < W3_N; i++) {
        cr_expect(pp_future_done(fs[i]));
        pp_future_release(fs[i]);
    }
}

/* The 2-iterable variant: map(task, ['1','2','3'], ['a','b','c']) — the two
 * items of each call travel in one struct. */
typedef struct pair_arg {
    char a[8];
    char b[8];
} pair_arg;

static int task_concat(pp_task *t)
{
    pair_arg p;
    memcpy(&p, pp_task_arg(t, NULL), sizeof p);
    char out[16];
    int n = snprintf(out, sizeof out, "%.7s%.7s", p.a, p.b);
    return pp_task_set_result(t, out, (size_t)n + 1);
}

Test(patterns, two_iterables_struct_argument, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    const char *xs[] = {"1", "2", "3"}, *ys[] = {"a", "b", "c"}, *want[] = {"1a", "2b", "3c"};
    pp_future *fs[3];
    for (int i = 0; i < 3; i++) {
        pair_arg p;
        memset(&p, 0, sizeof p);
        snprintf(p.a, sizeof p.a, "%s", xs[i]);
        snprintf(p.b, sizeof p.b, "%s", ys[i]);
        fs[i] = submit_ok(ex, task_concat, &p, sizeof p);
    }
    for (int i = 0; i < 3; i++) {
        const void *d = NULL;
        size_t n = 0;
        cr_assert_eq(pp_future_result(fs[i], 30.0, &d, &n), 0);
        cr_assert_eq(n, 3);
        cr_expect_str_eq((const char *)d, want[i]);
        pp_future_release(fs[i]);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* W4: future states                                                        */
/* ======================================================================== */

static int cb_flag(pp_future *f, void *ud)
{
    (void)f;
    atomic_store((_Atomic int *)ud, 1);
    return 0;
}

Test(patterns, cancel_pending_running_done, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = pool_of(1);

    /* Status of a submitted task, and result(timeout) giving up. */
    static const char msg[] = "all done";
    unsigned char arg[sizeof(double) + sizeof msg];
    double s = 0.2;
    memcpy(arg, &s, sizeof s);
    memcpy(arg + sizeof s, msg, sizeof msg);
    pp_future *w = submit_ok(ex, ppt_task_sleep_echo, arg, sizeof arg);
    cr_assert(PPT_WAIT_FOR(pp_future_running(w) || pp_future_done(w), 20.0));
    cr_expect(!pp_future_done(w), "running=%d done=%d", pp_future_running(w), pp_future_done(w));
    const void *d = NULL;
    size_t n = 0;
    cr_expect_eq(pp_future_result(w, 0.05, &d, &n), -ETIMEDOUT, "Gave up waiting for a result");
    cr_assert_eq(pp_future_result(w, PP_FOREVER, &d, &n), 0);
    cr_expect_eq(n, sizeof msg);
    cr_expect_str_eq((const char *)d, msg);
    pp_future_release(w);

    /* Cancel a pending task (1 worker, busy), with a callback. */
    double s1 = 0.2, s2 = 0.1;
    pp_future *first = submit_ok(ex, ppt_task_sleepy, &s1, sizeof s1);
    pp_future *second = submit_ok(ex, ppt_task_sleepy, &s2, sizeof s2);
    cr_assert(PPT_WAIT_FOR(pp_future_running(first) || pp_future_done(first), 20.0));
    cr_expect(pp_future_running(first), "First task running=True");
    cr_expect(!pp_future_running(second), "Second task running=False");
    _Atomic int called = 0;
    cr_assert_eq(pp_future_add_done_callback(second, cb_flag, &called), 0);
    cr_expect(pp_future_cancel(second), "Second task was cancelled: True");
    cr_expect_eq(atomic_load(&called), 1, "the callback runs inside cancel()");
    cr_expect(!pp_future_running(second) && pp_future_cancelled(second) && pp_future_done(second),
              "Second task running=False, cancelled=True, done=True");
    cr_expect_eq(pp_future_result(second, 0.0, NULL, NULL), -ECANCELED);

    /* Cancel the running task: refused; it finishes. */
    cr_expect(pp_future_running(first) || pp_future_done(first));
    cr_expect(!pp_future_cancel(first), "Task was cancelled: False");
    cr_assert_eq(pp_future_result(first, 30.0, NULL, NULL), 0);
    cr_expect(!pp_future_running(first) && !pp_future_cancelled(first) && pp_future_done(first),
              "Task running=False, cancelled=False, done=True");

    /* Cancel a done task: refused, state unchanged. */
    cr_expect(!pp_future_cancel(first), "Task was cancelled: False");
    cr_expect(!pp_future_running(first) && !pp_future_cancelled(first) && pp_future_done(first));
    cr_expect_eq(pp_future_result(first, 0.0, NULL, NULL), 0);

    pp_future_release(first);
    pp_future_release(second);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* W5: a failing task via submit                                            */
/* ======================================================================== */

static int task_fake_failure(pp_task *t)
{
    ppt_sleep(0.05);
    return pp_task_raise(t, 1, "This is Fake!");
}

Test(patterns, failing_task_via_submit, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = default_pool();
    pp_future *f = submit_ok(ex, task_fake_failure, NULL, 0);
    pp_exception exc;
    cr_assert_eq(pp_future_exception(f, 30.0, &exc), 0);
    cr_expect_eq(exc.error, PP_ETASK);
    cr_expect_eq(exc.code, 1);
    cr_expect_str_eq(exc.message, "This is Fake!");
    /* result() "re-raises". */
    cr_expect_eq(pp_future_result(f, 0.0, NULL, NULL), PP_ETASK);
    /* "not running, not cancelled, and done" */
    cr_expect(!pp_future_running(f) && !pp_future_cancelled(f) && pp_future_done(f));
    /* "will not break the process pool" */
    pp_future *g = submit_w3(ex, 0.0, 42);
    cr_expect_eq(w3_value(g), 42);
    pp_future_release(f);
    pp_future_release(g);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* W8: cooperative stop                                                     */
/* ======================================================================== */

Test(patterns, cooperative_stop, PPT_FIXTURE, .timeout = 60)
{
    enum { N = 50 };
    /* The guide's default pool, capped so that N tasks outnumber it on any
     * machine. */
    cpu_set_t cpus;
    int ncpu = ppt_allowed_cpus(&cpus);
    pp_executor *ex = pool_of(ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu);
    int nw = pp_max_workers(ex);
    cr_assert_gt(nw, 0);
    cr_assert_lt(nw, N);
    pp_future *fs[N];
    double max = 10.0; /* each polls pp_task_should_stop() for up to 10 s */
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, ppt_task_until_stop, &max, sizeof max);
    /* Instead of "sleep 2 s": wait until every worker runs one. */
    int running = 0;
    bool all = PPT_WAIT_FOR(({
                                running = 0;
                                for (int i = 0; i < N; i++)
                                    running += pp_future_running(fs[i]);
                                running == nw;
                            }),
                            20.0);
    cr_assert(all, "%d of %d workers running a task", running, nw);

    /* "cancel all": the queued ones are cancelled, the running ones not. */
    int cancelled = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        if (pp_future_cancel(fs[i]))
            cancelled++;
        else
            refused++;
    }
    cr_expect_eq(refused, nw);
    cr_expect_eq(cancelled, N - nw);

    /* "set the event": shutdown with cancel_futures asks the running tasks
     * to stop; they stop early instead of running 10 s. */
    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    double dt = ppt_now() - t0;
    cr_expect_lt(dt, 5.0, "running tasks did not stop early (shutdown took %.3f s)", dt);

    int asked = 0, ran_out = 0, cancelled_after = 0;
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], 0.0, &d, &n);
        if (rc == -ECANCELED) {
            cancelled_after++;
        } else if (rc == 0 && n == sizeof(int32_t)) {
            int32_t seen;
            memcpy(&seen, d, sizeof seen);
            if (seen)
                asked++; /* "Not done, asked to stop" */
            else
                ran_out++;
        } else {
            cr_expect(false, "future %d: %d %s", i, rc, pp_strerror(rc));
        }
    }
    cr_log_info("%d workers: %d asked to stop, %d cancelled", nw, asked, cancelled_after);
    cr_expect_eq(asked, nw, "%d tasks were asked to stop, expected one per worker (%d)", asked, nw);
    cr_expect_eq(ran_out, 0);
    cr_expect_eq(cancelled_after, N - nw);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* W9: follow-up tasks                                                      */
/* ======================================================================== */

typedef struct w9_arg {
    double sleep;
    double value;
} w9_arg;

static int task1(pp_task *t)
{
    w9_arg a;
    memcpy(&a, pp_task_arg(t, NULL), sizeof a);
    ppt_sleep(a.sleep);
    return pp_task_set_result(t, &a.value, sizeof a.value);
}

static int task2(pp_task *t)
{
    double v;
    memcpy(&v, pp_task_arg(t, NULL), sizeof v);
    double r = v * 2.0;
    return pp_task_set_result(t, &r, sizeof r);
}

static double result_double(pp_future *f)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, 30.0, &d, &n);
    cr_assert_eq(rc, 0, "result: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(double));
    double v;
    memcpy(&v, d, sizeof v);
    return v;
}

Test(patterns, follow_up_tasks, PPT_FIXTURE, .timeout = 60)
{
    enum { N = 10 };
    pp_executor *ex = default_pool(); /* the guide's pool of 4 */
    prng r = {9};
    pp_future *fs[N];
    double values[N];
    int expect_follow = 0;
    for (int i = 0; i < N; i++) {
        w9_arg a = {prng_uniform(&r, 0.0, 0.1), prng_uniform(&r, 0.0, 1.0)};
        values[i] = a.value;
        expect_follow += a.value > 0.5;
        fs[i] = submit_ok(ex, task1, &a, sizeof a);
    }
    cr_assert(expect_follow > 0 && expect_follow < N, "seed gives %d follow-ups", expect_follow);

    pp_future *fs2[N];
    double sent[N];
    int n2 = 0;
    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, N, 60.0), 0);
    pp_future *f;
    int rc;
    while ((rc = pp_as_completed_next(it, &f)) == 0) {
        double v = result_double(f);
        if (v > 0.5) {
            cr_assert_lt(n2, N);
            sent[n2] = v;
            fs2[n2++] = submit_ok(ex, task2, &v, sizeof v); /* from the main thread */
        }
    }
    cr_expect_eq(rc, -ENOENT);
    pp_as_completed_end(it);
    cr_expect_eq(n2, expect_follow);
    cr_assert_eq(pp_wait(fs2, (size_t)n2, 60.0, PP_ALL_COMPLETED, NULL), n2);
    for (int k = 0; k < n2; k++) {
        cr_expect_eq(result_double(fs2[k]), sent[k] * 2.0);
        pp_future_release(fs2[k]);
    }
    for (int i = 0; i < N; i++) {
        cr_expect_eq(result_double(fs[i]), values[i]);
        pp_future_release(fs[i]);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* W11: remaining-task counter                                              */
/* ======================================================================== */

Test(patterns, remaining_task_count, PPT_FIXTURE, .timeout = 60)
{
    enum { N = 50 };
    pp_executor *ex = default_pool();
    prng r = {11};
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_w3(ex, prng_uniform(&r, 0.0, 0.05), i);
    pp_as_completed *it = NULL;
    cr_assert_eq(pp_as_completed_begin(&it, fs, N, 60.0), 0);
    cr_expect_eq(pp_as_completed_pending(it), N);
    size_t expect = N;
    pp_future *f;
    int rc;
    char trail[512];
    size_t tl = 0;
    while ((rc = pp_as_completed_next(it, &f)) == 0) {
        expect--;
        size_t pending = pp_as_completed_pending(it);
        cr_expect_eq(pending, expect, "after %zu results: %zu pending", N - expect, pending);
        if (tl < sizeof trail - 8)
            tl += (size_t)snprintf(trail + tl, sizeof trail - tl, "%zu ", pending);
    }
    cr_expect_eq(rc, -ENOENT);
    cr_expect_eq(expect, 0);
    cr_expect_eq(pp_as_completed_pending(it), 0);
    cr_log_info("pending: %s", trail);
    pp_as_completed_end(it);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
