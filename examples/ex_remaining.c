/*
 * ex_remaining.c — how many tasks are left: while handling results as they
 * complete, pp_as_completed_pending() says how many have not finished yet.
 * pp_executor_stats() counts for the whole pool (submitted, queued, running,
 * completed, ...); a worker counts a task just after its future is done, so
 * read the counters as approximate while the pool runs (exact after it stops).
 * Python: a counter in a done-callback, or `len(executor._pending_work_items)`.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, (long)(i * 13 % 7) * 3000000L}; /* 0..18 ms */
    nanosleep(&nap, NULL);
    return 0;
}

int main(void)
{
    enum { N = 20 };
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        if (pp_submit(ex, task, &i, sizeof i, &fs[i]) != 0)
            return 1;

    pp_as_completed *it;
    if (pp_as_completed_begin(&it, fs, N, 60.0) != 0)
        return 1;
    printf("%zu tasks to go\n", pp_as_completed_pending(it));
    pp_future *f;
    while (pp_as_completed_next(it, &f) == 0)
        printf("one more done, %zu remain\n", pp_as_completed_pending(it));
    pp_as_completed_end(it);

    pp_shutdown(ex, true, false); /* the workers are finished: counters are final */
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    printf("pool: %llu submitted, %llu completed, %llu queued, %llu running\n",
           (unsigned long long)st.submitted, (unsigned long long)st.completed,
           (unsigned long long)st.queued, (unsigned long long)st.running);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    return pp_executor_destroy(ex);
}
