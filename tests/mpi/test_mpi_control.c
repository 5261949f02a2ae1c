/*
 * test_mpi_control — across 3 ranks: deep cancel (queued at the root), no
 * cancel of a task a rank runs, pp_future_kill and per-task timeouts
 * forwarded and enforced by the serving node, a worker SIGKILLed in a task
 * (PP_EWORKER at the root, the job goes on), shutdown(cancel_futures).
 */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_check.h"

/* Sleeps arg milliseconds (polling pp_task_should_stop), returns arg. */
static int t_sleep(pp_task *t)
{
    const int *ms = pp_task_arg(t, NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
        if (el >= *ms)
            break;
        usleep(2000);
    }
    return pp_task_set_result(t, ms, sizeof *ms);
}

/* Sleeps without looking at pp_task_should_stop: only a kill ends it early. */
static int t_stubborn(pp_task *t)
{
    (void)t;
    sleep(30);
    return 0;
}

static int t_die(pp_task *t)
{
    (void)t;
    usleep(30000);
    raise(SIGKILL);
    return 0;
}

static void deep_cancel(pp_executor *ex)
{
    enum { N = 30 };
    pp_future *fs[N];
    int ms = 40;
    for (int i = 0; i < N; i++)
        CHECK_EQ(pp_submit(ex, t_sleep, &ms, sizeof ms, &fs[i]), 0);
    for (int i = 10; i < N; i++)
        CHECK(pp_future_cancel(fs[i]));
    for (int i = 0; i < N; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, i < 10 ? 0 : -ECANCELED);
        CHECK_EQ(pp_future_cancelled(fs[i]), i >= 10);
        pp_future_release(fs[i]);
    }
}

/* Wait for the @n futures, check that each ended with @error, release
 * them; returns the set of ranks that ran them (bit r = rank r). */
static int outcomes_on_ranks(pp_future **fs, int n, int error)
{
    int ranks = 0;
    for (int i = 0; i < n; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, error);
        ranks |= 1 << e.rank;
        pp_future_release(fs[i]);
    }
    return ranks;
}

/* A task a rank runs is not cancelled (it started there). */
static void no_cancel_running(pp_executor *ex)
{
    pp_future *fs[3];
    int ms = 300;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pp_submit(ex, t_sleep, &ms, sizeof ms, &fs[i]), 0);
    CHECK(mc_wait_running(fs, 3, 10));
    for (int i = 0; i < 3; i++)
        CHECK(!pp_future_cancel(fs[i]));
    CHECK_EQ(outcomes_on_ranks(fs, 3, 0), 7); /* one on each rank */
}

static void kill_and_timeout(pp_executor *ex)
{
    pp_future *fs[3];
    double t0 = mc_now_s();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pp_submit(ex, t_stubborn, NULL, 0, &fs[i]), 0);
    CHECK(mc_wait_running(fs, 3, 10));
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pp_future_kill(fs[i], 0.1), 0);
    CHECK_EQ(outcomes_on_ranks(fs, 3, PP_EKILLED), 7);
    CHECK(mc_now_s() - t0 < 15);

    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = 0.3;
    o.kill_grace = 0.1;
    t0 = mc_now_s();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pp_submit_ex(ex, t_stubborn, NULL, 0, &o, &fs[i]), 0);
    CHECK_EQ(outcomes_on_ranks(fs, 3, PP_EKILLED), 7);
    CHECK(mc_now_s() - t0 < 15);
}

static void worker_death(pp_executor *ex)
{
    pp_future *fs[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pp_submit(ex, t_die, NULL, 0, &fs[i]), 0);
    int ranks = 0;
    for (int i = 0; i < 3; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, PP_EWORKER);
        CHECK_EQ(e.how, PP_CODE_SIGNAL);
        CHECK_EQ(e.code, SIGKILL);
        CHECK(e.pid > 0);
        ranks |= 1 << e.rank;
        pp_future_release(fs[i]);
    }
    CHECK(ranks & 6); /* at least one died on another rank */
    /* The job goes on: every rank's pool replaced its worker. */
    pp_future *ok[9];
    int ms = 20;
    for (int i = 0; i < 9; i++)
        CHECK_EQ(pp_submit(ex, t_sleep, &ms, sizeof ms, &ok[i]), 0);
    for (int i = 0; i < 9; i++) {
        CHECK_EQ(pp_future_result(ok[i], PP_FOREVER, NULL, NULL), 0);
        pp_future_release(ok[i]);
    }
}

static void shutdown_cancel(pp_executor *ex)
{
    enum { N = 30 };
    pp_future *fs[N];
    int ms = 40;
    for (int i = 0; i < N; i++)
        CHECK_EQ(pp_submit(ex, t_sleep, &ms, sizeof ms, &fs[i]), 0);
    CHECK_EQ(pp_shutdown(ex, true, true), 0);
    int cancelled = 0, ok = 0;
    for (int i = 0; i < N; i++) {
        CHECK(pp_future_done(fs[i]));
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], 0, &e), 0);
        cancelled += pp_future_cancelled(fs[i]);
        ok += e.error == 0;
        pp_future_release(fs[i]);
    }
    CHECK_EQ(cancelled + ok, N);
    CHECK(cancelled >= N / 2);
    pp_future *late = NULL;
    CHECK_EQ(pp_submit(ex, t_sleep, &ms, sizeof ms, &late), -ESHUTDOWN);
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    cfg.node.on_worker_death = PP_DEATH_RESPAWN;
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED)
        return mc_finish();
    CHECK_EQ(rc, 0);
    if (rc)
        return mc_finish();
    deep_cancel(ex);
    no_cancel_running(ex);
    kill_and_timeout(ex);
    worker_death(ex);
    shutdown_cancel(ex);
    pp_executor_destroy(ex);
    return mc_finish();
}
