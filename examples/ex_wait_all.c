/*
 * ex_wait_all.c — "submit and wait for all": block until every task is done,
 * then use the results. Python: `wait(futures)` (return_when=ALL_COMPLETED).
 * A timeout is not an error: pp_wait returns how many are done so far.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, 50000000L + (i % 3) * 10000000L}; /* 50..70 ms */
    nanosleep(&nap, NULL);
    int square = i * i;
    return pp_task_set_result(t, &square, sizeof square);
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    enum { N = 10 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        if (pp_submit(ex, task, &i, sizeof i, &fs[i]) != 0)
            return 1;

    /* With a short timeout: returns with some (here none) done. The tasks take
     * at least 5 x 50 ms on 2 workers, so 10 ms cannot see them all. */
    int n = pp_wait(fs, N, 0.010, PP_ALL_COMPLETED, NULL);
    printf("after 10 ms: %s\n", n >= 0 && n < N ? "not all done yet" : "unexpected");

    /* Without a limit: returns once all are done; done[i] says which. */
    bool done[N];
    n = pp_wait(fs, N, PP_FOREVER, PP_ALL_COMPLETED, done);
    printf("pp_wait returned %d\n", n);
    for (int i = 0; i < N; i++) {
        const void *res;
        if (done[i] && pp_future_result(fs[i], 0, &res, NULL) == 0)
            printf("%d squared is %d\n", i, *(const int *)res);
        pp_future_release(fs[i]);
    }
    return pp_executor_destroy(ex);
}
