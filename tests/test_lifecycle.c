/*
 * test_lifecycle.c — the end of a pool: shutdown's four wait/cancel_futures
 * combinations, destroy after a no-wait shutdown, the scoped executor,
 * terminate/kill of the workers, a crashing task breaking the pool (every
 * blocked call wakes), and exit() with work pending (the program waits for it,
 * Python parity).
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
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

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

Test(lifecycle, shutdown_wait_no_cancel, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, shutdown_nowait_no_cancel, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, shutdown_wait_cancel, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, shutdown_nowait_cancel, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, destroy_after_nowait_shutdown_waits_for_work, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, scoped_executor_shuts_down_at_scope_exit, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, terminate_workers, PPT_FIXTURE, .timeout = 90)
{
    check_stop_workers(pp_terminate_workers, "pp_terminate_workers");
}

Test(lifecycle, kill_workers, PPT_FIXTURE, .timeout = 90)
{
    check_stop_workers(pp_kill_workers, "pp_kill_workers");
}

Test(lifecycle, terminate_and_kill_idle_pool_and_bad_input, PPT_FIXTURE, .timeout = 60)
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

Test(lifecycle, abort_in_task_breaks_pool_and_wakes_every_waiter, PPT_FIXTURE, .timeout = 90)
{
    check_break(ppt_task_abort, SIGABRT, "abort()");
}

Test(lifecycle, sigkill_in_task_breaks_pool_and_wakes_every_waiter, PPT_FIXTURE, .timeout = 90)
{
    check_break(ppt_task_sigkill, SIGKILL, "raise(SIGKILL)");
}

/* ======================================================================== */
/* exit: the program waits for submitted work (Python parity, see exit.c)   */
/* ======================================================================== */

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
    ppt_exit_without_leak_check(); /* exits from a callback: see there */
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
Test(lifecycle, exit_waits_for_every_submitted_task, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_PLAIN, started, ended), 0);
    for (int i = 0; i < EXIT_TASKS; i++)
        cr_expect(started[i] && ended[i], "task %d: started %d, ended %d", i, started[i], ended[i]);
}

/* Python: shutdown(wait=False) then the end of the program still runs the
 * queued work. */
Test(lifecycle, exit_after_shutdown_nowait_still_runs_the_queue, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_AFTER_SHUTDOWN_NOWAIT, started, ended), 0);
    for (int i = 0; i < EXIT_TASKS; i++)
        cr_expect(started[i] && ended[i], "task %d: started %d, ended %d", i, started[i], ended[i]);
}

/* Python's wait-first pattern: shutdown(wait=False, cancel_futures=True);
 * the program waits for the running task at exit, the queued ones never run. */
Test(lifecycle, exit_after_shutdown_cancel_finishes_only_the_running, PPT_FIXTURE, .timeout = 60)
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
Test(lifecycle, exit_inside_a_done_callback_does_not_hang, PPT_FIXTURE, .timeout = 60)
{
    bool started[EXIT_TASKS], ended[EXIT_TASKS];
    cr_assert_eq(run_exit_child(EXIT_IN_CALLBACK, started, ended), 7);
    cr_expect(started[0] && ended[0]);
}
