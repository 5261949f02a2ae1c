/*
 * ex_progress_dots.c — a progress indicator: a done-callback prints one dot
 * per finished task while the main thread does nothing but wait.
 * Python: `future.add_done_callback(lambda f: print('.', end='', flush=True))`.
 *
 * Callbacks run in the client: on the executor's service thread, or at once
 * in the thread that adds one to a task already done. Two may therefore run
 * at the same time, so the counter is atomic (stdio locks by itself).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { N = 20 };

static atomic_int finished;

static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, (long)(i * 7 % 5) * 10000000L}; /* 0..40 ms */
    nanosleep(&nap, NULL);
    return 0; /* no result: the future still completes */
}

static int progress(pp_future *f, void *userdata)
{
    (void)f;
    (void)userdata;
    atomic_fetch_add(&finished, 1);
    putchar('.');
    fflush(stdout);
    return 0;
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    for (int i = 0; i < N; i++) {
        pp_future *f;
        if (pp_submit(ex, task, &i, sizeof i, &f) != 0)
            return 1;
        pp_future_add_done_callback(f, progress, NULL);
        pp_future_release(f); /* we never look at it again: the callback still runs */
    }
    pp_executor_destroy(ex); /* waits for the tasks and their callbacks */
    printf("\nDone! %d of %d tasks reported\n", atomic_load(&finished), N);
    return 0;
}
