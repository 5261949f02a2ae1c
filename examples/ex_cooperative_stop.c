/*
 * ex_cooperative_stop.c — stopping tasks that are already running. Cancel
 * only removes tasks no worker has started; a running task stops early only
 * if it looks: here each task polls pp_task_should_stop(), which turns true
 * when the pool shuts down with cancel_futures (or the task is being killed).
 * Python: tasks poll a Manager().Event(); main cancels all, sets the event.
 * (pp_future_kill, in ex_kill_timeout.c, stops a task that never looks.)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Up to 10 s of work in 10 ms steps, checking between steps. */
static int long_task(pp_task *t)
{
    int stopped = 0;
    for (int step = 0; step < 1000 && !stopped; step++) {
        nap_ms(10);
        stopped = pp_task_should_stop(t);
    }
    return pp_task_set_result(t, &stopped, sizeof stopped);
}

int main(void)
{
    enum { N = 12, WORKERS = 2 };
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = WORKERS;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        if (pp_submit(ex, long_task, NULL, 0, &fs[i]) != 0)
            return 1;

    /* Wait until every worker runs a task (Python's demo sleeps 2 s). */
    for (int running = 0, tries = 0; running < WORKERS && tries < 5000; tries++) {
        running = 0;
        for (int i = 0; i < N; i++)
            running += pp_future_running(fs[i]);
        if (running < WORKERS)
            nap_ms(1);
    }

    int cancelled = 0;
    for (int i = 0; i < N; i++)
        cancelled += pp_future_cancel(fs[i]); /* false for the running ones */
    printf("cancelled %d waiting tasks, %d were already running\n", cancelled, N - cancelled);

    pp_shutdown(ex, true, true); /* running tasks now see pp_task_should_stop() */
    int asked = 0;
    for (int i = 0; i < N; i++) {
        const void *res;
        if (pp_future_result(fs[i], 0, &res, NULL) == 0 && *(const int *)res)
            asked++;
        pp_future_release(fs[i]);
    }
    printf("%d running tasks were asked to stop and returned early\n", asked);
    return pp_executor_destroy(ex);
}
