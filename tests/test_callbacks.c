/*
 * test_callbacks.c — done-callbacks: order, the thread and process they run
 * in, inside cancel and shutdown(cancel_futures), on errors, a failing
 * callback, callbacks that submit follow-up work, bad input.
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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

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

/* ======================================================================== */
/* callbacks                                                                */
/* ======================================================================== */

Test(callbacks, callbacks_run_in_order_in_the_client, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callback_on_done_future_runs_at_once_in_caller, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callback_runs_inside_cancel, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callbacks_run_inside_shutdown_cancel_futures, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callback_runs_on_error, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callback_returning_nonzero_is_reported_and_others_run, PPT_FIXTURE, .timeout = 60)
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

Test(callbacks, callback_submits_follow_up_tasks_without_deadlock, PPT_FIXTURE, .timeout = 120)
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

Test(callbacks, callback_bad_input, PPT_FIXTURE, .timeout = 60)
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
