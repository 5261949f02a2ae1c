/*
 * futures_util.h — client-side helpers shared by the Future API suites
 * (test_futures, test_callbacks, test_wait, test_lifecycle): pools, submits,
 * waits on running futures, a counting callback and blocked-waiter threads.
 *
 * static inline: each suite compiles the ones it uses, and the names (the
 * suites' own, e.g. make_pool) stay out of the link, where other suites keep
 * static helpers of the same names with other signatures.
 */
#ifndef PPT_FUTURES_UTIL_H
#define PPT_FUTURES_UTIL_H

#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* How many CPUs this process may run on (at least 1). */
static inline int allowed_cpus(void)
{
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    return n > 0 ? n : 1;
}

/* A pool of @workers; unpinned when there are more workers than CPUs (the
 * tasks here mostly sleep), so no oversubscription warning is printed. */
static inline void pool_config(pp_config *cfg, int workers)
{
    ppt_config(cfg, workers);
    if (workers > allowed_cpus())
        cfg->pin = PP_PIN_NONE;
}

/* pp_executor_create(@cfg), asserting that it succeeded. */
static inline pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create(max_workers=%d): %d %s", cfg->max_workers, rc,
                 pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

/* A pool of @workers as pool_config makes it (asserts that it started). */
static inline pp_executor *make_pool(int workers)
{
    pp_config cfg;
    pool_config(&cfg, workers);
    return make_pool_cfg(&cfg);
}

/* pp_submit(@fn, @arg of @n bytes), asserting that it was accepted. */
static inline pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

/* Submits ppt_task_sleepy for @seconds. */
static inline pp_future *submit_sleepy(pp_executor *ex, double seconds)
{
    return submit_ok(ex, ppt_task_sleepy, &seconds, sizeof seconds);
}

/* A task that polls pp_task_should_stop() for up to @max seconds: it runs
 * until pp_shutdown(..., cancel_futures=true) (or a broken pool) stops it. */
static inline pp_future *submit_until_stop(pp_executor *ex, double max)
{
    return submit_ok(ex, ppt_task_until_stop, &max, sizeof max);
}

/* Submits ppt_task_echo of @v (result: the same 4 bytes). */
static inline pp_future *submit_u32_echo(pp_executor *ex, uint32_t v)
{
    return submit_ok(ex, ppt_task_echo, &v, sizeof v);
}

/* Waits (up to 20 s) until @f runs; asserts it has not finished yet. */
static inline void wait_running(pp_future *f, const char *what)
{
    bool ok = PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 20.0);
    cr_assert(ok, "%s never started", what);
    cr_assert(pp_future_running(f), "%s finished before the test could use it running", what);
}

/* Expects a ppt_task_until_stop future to finish with "saw the stop". */
static inline void expect_stopped(pp_future *f, const char *what)
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

/* Expects @f (number @i of @what) cancelled, with every accessor agreeing. */
static inline void expect_cancelled_future(pp_future *f, const char *what, size_t i)
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
static inline void join_within(pthread_t th, double seconds, const char *what)
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

/* A counting callback: userdata = _Atomic int. */
static inline int cb_count(pp_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)ud, 1);
    return 0;
}

/* A thread blocked on a future (or a set of them) in the way kind says. */
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

/* Thread body: blocks as waiter_ctx.kind says, records what it got. */
static inline void *waiter_thread(void *p)
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

/* Starts a waiter_thread on @w and waits until it is about to block. */
static inline void start_waiter(pthread_t *th, waiter_ctx *w)
{
    cr_assert_eq(pthread_create(th, NULL, waiter_thread, w), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load(&w->started) == 1, 10.0));
}

#endif /* PPT_FUTURES_UTIL_H */
