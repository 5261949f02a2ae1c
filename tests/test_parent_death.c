/*
 * test_parent_death.c — the processes above the workers SIGKILLed: the client
 * (rows 7 and 16: manager and workers gone promptly) and the manager (row 19:
 * every waiter, pp_wait, pp_future_done and later submits see PP_EBROKEN
 * promptly).
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Waits are deadline loops on a condition; task
 * functions sleep or spin as their workload. Shared helpers, start methods,
 * sanitizers and the known-failures rows that do not apply: faults_util.h.
 */
#include "faults_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ======================================================================== */
/* the client SIGKILLed (rows 7 and 16)                                     */
/* ======================================================================== */

typedef struct child_report {
    int rc;          /* 0 = ready */
    pid_t manager;
    pid_t workers[2];
} child_report;

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(2);
        c += w;
        n -= (size_t)w;
    }
}

/* Runs in the forked child client: never returns. */
static _Noreturn void child_client(int wfd)
{
    child_report rep;
    memset(&rep, 0, sizeof rep);
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    pp_executor *ex = NULL;
    rep.rc = pp_executor_create(&ex, &cfg);
    if (rep.rc) {
        write_all(wfd, &rep, sizeof rep);
        _exit(3);
    }
    pp_worker_stats ws[2];
    if (pp_executor_stats(ex, NULL, ws, 2) != 2)
        rep.rc = -1;
    rep.workers[0] = ws[0].pid;
    rep.workers[1] = ws[1].pid;
    if (!ppt_proc_stat(ws[0].pid, &rep.manager, NULL))
        rep.rc = -2;
    double s = 30.0;
    pp_future *f = NULL;
    if (!rep.rc)
        rep.rc = pp_submit(ex, ppt_task_sleepy, &s, sizeof s, &f);
    double dl = ppt_deadline(10.0);
    while (!rep.rc && !pp_future_running(f)) {
        if (ppt_expired(dl)) {
            rep.rc = -3;
            break;
        }
        ppt_sleep(0.001);
    }
    write_all(wfd, &rep, sizeof rep);
    for (;;)
        pause(); /* until the test kills us */
}

Test(parent_death, row7_row16_client_sigkilled_manager_and_workers_gone_within_1s, PPT_FIXTURE,
     .timeout = 60)
{
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(pfd[0]);
        child_client(pfd[1]);
    }
    close(pfd[1]);
    child_report rep;
    size_t got = 0;
    double dl = ppt_deadline(20.0);
    while (got < sizeof rep && !ppt_expired(dl)) {
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = read(pfd[0], (char *)&rep + got, sizeof rep - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pfd[0]);
    if (got != sizeof rep || rep.rc != 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        cr_assert(false, "child client failed to start (read %zu bytes, rc %d)", got,
                  got == sizeof rep ? rep.rc : 0);
    }
    pid_t procs[3] = {rep.manager, rep.workers[0], rep.workers[1]};
    for (int i = 0; i < 3; i++)
        cr_assert(proc_alive(procs[i]), "pid %d not alive before the kill", (int)procs[i]);

    cr_assert_eq(kill(child, SIGKILL), 0);
    double t0 = ppt_now();
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    /* The orphans reparent to us (subreaper): reap while polling. */
    bool gone = PPT_WAIT_FOR(({
                                 ppt_reap_zombies();
                                 !proc_alive(procs[0]) && !proc_alive(procs[1]) &&
                                     !proc_alive(procs[2]);
                             }),
                             PROMPT_S);
    double took = ppt_now() - t0;
    for (int i = 0; i < 3; i++)
        cr_expect(!proc_alive(procs[i]), "%s %d still alive %.2f s after the client died",
                  i == 0 ? "manager" : "worker", (int)procs[i], took);
    cr_expect(gone);
    cr_log_info("client SIGKILLed: manager and workers gone in %.3f s", took);
    /* /dev/shm and stragglers: the teardown checks (memfd: nothing named). */
}

/* ======================================================================== */
/* the manager SIGKILLed (row 19 and the test)                       */
/* ======================================================================== */

typedef struct waiter {
    pp_future *fs[4];
    int n;
    int kind; /* 0: pp_future_result(fs[0]); 1: pp_wait(ALL) */
    _Atomic int started;
    _Atomic int finished;
    int rc;
    double at;
} waiter;

static void *waiter_main(void *p)
{
    waiter *w = p;
    atomic_store(&w->started, 1);
    if (w->kind == 0)
        w->rc = pp_future_result(w->fs[0], PP_FOREVER, NULL, NULL);
    else
        w->rc = pp_wait(w->fs, (size_t)w->n, PP_FOREVER, PP_ALL_COMPLETED, NULL);
    w->at = ppt_now();
    atomic_store(&w->finished, 1);
    return NULL;
}

Test(parent_death, manager_sigkilled_waiters_and_submit_fail_broken_within_1s, PPT_FIXTURE,
     .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    pid_t mgr = manager_pid_of(ex);
    pp_future *lng = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(lng, "long task");
    pp_future *lng2 = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *queued = submit_secs(ex, ppt_task_sleepy, 30.0);
    waiter w[2];
    memset(w, 0, sizeof w);
    w[0].fs[0] = lng;
    w[0].n = 1;
    w[0].kind = 0;
    w[1].fs[0] = lng;
    w[1].fs[1] = lng2;
    w[1].fs[2] = queued;
    w[1].n = 3;
    w[1].kind = 1;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load(&w[0].started) && atomic_load(&w[1].started), 5.0));

    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    bool back = PPT_WAIT_FOR(atomic_load(&w[0].finished) && atomic_load(&w[1].finished), 3.0);
    cr_assert(back, "waiters still blocked 3 s after the manager died (pp_future_result %s, "
                    "pp_wait %s)",
              atomic_load(&w[0].finished) ? "returned" : "blocked",
              atomic_load(&w[1].finished) ? "returned" : "blocked");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_expect_lt(w[0].at - t0, PROMPT_S, "pp_future_result returned after %.3f s",
                 w[0].at - t0);
    cr_expect_lt(w[1].at - t0, PROMPT_S, "pp_wait returned after %.3f s", w[1].at - t0);
    cr_expect_eq(w[0].rc, PP_EBROKEN, "pp_future_result: %d %s", w[0].rc, pp_strerror(w[0].rc));
    cr_expect_eq(w[1].rc, 3, "pp_wait: %d", w[1].rc);
    pp_future *all[3] = {lng, lng2, queued};
    for (int i = 0; i < 3; i++) {
        int rc = pp_future_result(all[i], 0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "future %d: %d %s", i, rc, pp_strerror(rc));
    }
    /* A later submit: refused, or its future fails, within 1 s. */
    double t1 = ppt_now();
    pp_future *g = NULL;
    int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    if (rc == 0) {
        pp_exception e = outcome(g, 5.0, "submit after the manager died");
        rc = e.error;
    }
    cr_expect_eq(rc, PP_EBROKEN, "submit after the manager died: %d %s", rc, pp_strerror(rc));
    cr_expect_lt(ppt_now() - t1, PROMPT_S, "submit after the manager died took %.3f s",
                 ppt_now() - t1);
    cr_log_info("manager SIGKILLed: result after %.3f s, pp_wait after %.3f s", w[0].at - t0,
                w[1].at - t0);
    double t2 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t2, PROMPT_S, "destroy took %.3f s", ppt_now() - t2);
    pp_future_release(g);
    release_all(all, 3);
    /* The workers died by PDEATHSIG and reparented to us: the teardown
     * reaps them and checks nothing lives on. */
}

/* The same, but nobody waits on each future alone: only pp_wait (and
 * pp_future_done polling) must notice the dead manager. */
Test(parent_death, manager_sigkilled_pp_wait_alone_returns_within_1s, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pid_t mgr = manager_pid_of(ex);
    pp_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = submit_secs(ex, ppt_task_sleepy, 30.0); /* 2 running, 1 queued */
    wait_running(fs[0], "first");
    wait_running(fs[1], "second");
    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    int n = pp_wait(fs, 3, 3.0, PP_ALL_COMPLETED, NULL);
    double took = ppt_now() - t0;
    cr_expect_eq(n, 3, "pp_wait: %d of 3 done %.2f s after the manager died", n, took);
    cr_expect_lt(took, PROMPT_S, "pp_wait returned after %.3f s", took);
    bool polled = PPT_WAIT_FOR(pp_future_done(fs[2]), PROMPT_S);
    cr_expect(polled, "pp_future_done still false %.1f s after the manager died", PROMPT_S);
    for (int i = 0; i < 3; i++) {
        int rc = pp_future_result(fs[i], 5.0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "future %d: %d %s", i, rc, pp_strerror(rc));
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, 3);
}

Test(parent_death, row19_manager_sigkilled_every_future_fails_promptly, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    cfg.slots = 16; /* running, queued in slots, and in the client backlog */
    pp_executor *ex = make_pool_cfg(&cfg);
    pid_t mgr = manager_pid_of(ex);
    enum { N = 300 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_secs(ex, ppt_task_sleepy, 0.01);
    cr_assert(PPT_WAIT_FOR(pp_future_done(fs[5]), 10.0));
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    int ok = 0, broken = 0, other = 0;
    for (int i = 0; i < N; i++) {
        double left = t0 + PROMPT_S - ppt_now();
        pp_exception e;
        int rc = pp_future_exception(fs[i], left > 0 ? left : 0, &e);
        if (rc != 0) {
            cr_expect_eq(rc, 0, "future %d not resolved %.1f s after the manager died", i,
                         PROMPT_S);
            other++;
            continue;
        }
        if (e.error == 0)
            ok++;
        else if (e.error == PP_EBROKEN)
            broken++;
        else {
            other++;
            cr_expect(false, "future %d: %d %s", i, e.error, pp_strerror(e.error));
        }
    }
    double took = ppt_now() - t0;
    cr_expect_eq(ok + broken, N, "ok %d broken %d other %d", ok, broken, other);
    cr_expect_gt(broken, 0);
    cr_expect_gt(st.backlog, 0, "nothing was in the backlog when the manager died");
    cr_log_info("manager SIGKILLed with %llu in backlog: %d ok, %d broken in %.3f s",
                (unsigned long long)st.backlog, ok, broken, took);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
}
