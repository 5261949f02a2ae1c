/*
 * ex_kill_timeout.c — stopping a task that never looks at
 * pp_task_should_stop(): pp_future_kill() sends SIGTERM to its worker (then
 * SIGKILL after a grace period), and a per-task timeout (pp_submit_ex) does
 * the same once the task has run too long. Either way only that future fails,
 * with PP_EKILLED, the worker is replaced, and the pool goes on. Python has
 * no equivalent short of terminate_workers(), which ends the whole pool.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

static int stuck(pp_task *t) /* ten minutes, deaf to requests */
{
    (void)t;
    struct timespec nap = {600, 0};
    nanosleep(&nap, NULL);
    return 0;
}

static int quick(pp_task *t)
{
    int v = 42;
    return pp_task_set_result(t, &v, sizeof v);
}

static void outcome(const char *what, pp_future *f)
{
    pp_exception e;
    pp_future_exception(f, PP_FOREVER, &e);
    printf("%s: %s, signal %d\n", what, e.error == PP_EKILLED ? "PP_EKILLED" : pp_strerror(e.error),
           e.code);
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;

    /* 1. Kill on request, with 0.1 s between SIGTERM and SIGKILL. */
    pp_future *a;
    if (pp_submit(ex, stuck, NULL, 0, &a) != 0)
        return 1;
    while (!pp_future_running(a)) { /* only a started task needs a kill */
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    printf("kill -> %d\n", pp_future_kill(a, 0.1));
    outcome("killed task", a);

    /* 2. A time limit of 0.2 s, counted from the moment a worker starts it. */
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = 0.2;
    o.kill_grace = 0.1;
    pp_future *b;
    if (pp_submit_ex(ex, stuck, NULL, 0, &o, &b) != 0)
        return 1;
    outcome("timed-out task", b);

    /* 3. The pool is still whole. */
    pp_future *c;
    const void *res;
    if (pp_submit(ex, quick, NULL, 0, &c) != 0 || pp_future_result(c, PP_FOREVER, &res, NULL) != 0)
        return 1;
    printf("next task: %d\n", *(const int *)res);
    pp_shutdown(ex, true, false); /* counters are final once the pool stopped */
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    printf("killed: %llu, workers: %d\n", (unsigned long long)st.killed, pp_max_workers(ex));

    pp_future_release(a);
    pp_future_release(b);
    pp_future_release(c);
    return pp_executor_destroy(ex);
}
