/*
 * ex_cancel.c — a future's states, and cancel() on a waiting, a running and a
 * finished task (one worker, so the second task has to wait). A task can be
 * cancelled as long as no worker has started it, however long the queue;
 * pp_future_running() is true only while a worker executes it. A callback on
 * a cancelled future runs inside pp_future_cancel().
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

static int sleeper(pp_task *t)
{
    double s = *(const double *)pp_task_arg(t, NULL);
    struct timespec nap = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&nap, NULL);
    return 0;
}

static int on_done(pp_future *f, void *userdata)
{
    printf("  callback: %s\n", pp_future_cancelled(f) ? "cancelled" : "finished");
    (void)userdata;
    return 0;
}

static void show(const char *name, pp_future *f)
{
    printf("%s: running=%d cancelled=%d done=%d\n", name, pp_future_running(f),
           pp_future_cancelled(f), pp_future_done(f));
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    double long_s = 0.3, short_s = 0.1;
    pp_future *first, *second;
    if (pp_submit(ex, sleeper, &long_s, sizeof long_s, &first) != 0 ||
        pp_submit(ex, sleeper, &short_s, sizeof short_s, &second) != 0)
        return 1;
    while (!pp_future_running(first) && !pp_future_done(first)) { /* until it starts */
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    show("first", first);
    show("second", second);

    /* Waiting: it can be cancelled; its callback runs inside cancel. */
    pp_future_add_done_callback(second, on_done, NULL);
    printf("cancel(second) -> %s\n", pp_future_cancel(second) ? "true" : "false");
    show("second", second);
    printf("result(second) -> %s\n", pp_strerror(pp_future_result(second, 0, NULL, NULL)));

    /* Running: cancel refuses; result with a timeout gives up first. */
    printf("cancel(first) -> %s\n", pp_future_cancel(first) ? "true" : "false");
    printf("result(first, 0.05 s) -> %s\n",
           pp_strerror(pp_future_result(first, 0.05, NULL, NULL)));
    printf("result(first) -> %s\n", pp_strerror(pp_future_result(first, PP_FOREVER, NULL, NULL)));

    /* Finished: cancel refuses, nothing changes. */
    printf("cancel(first) -> %s\n", pp_future_cancel(first) ? "true" : "false");
    show("first", first);

    pp_future_release(first);
    pp_future_release(second);
    return pp_executor_destroy(ex);
}
