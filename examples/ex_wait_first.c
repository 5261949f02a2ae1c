/*
 * ex_wait_first.c — "submit and wait for the first": use whichever result
 * arrives first, then stop: cancel everything not started and let the
 * running tasks finish in the background.
 * Python: `done, _ = wait(futures, return_when=FIRST_COMPLETED)`
 *         `executor.shutdown(wait=False, cancel_futures=True)`.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

/* Task 1 is quick, every other task takes 300 ms: task 1 finishes first. */
static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, i == 1 ? 10000000L : 300000000L};
    nanosleep(&nap, NULL);
    return pp_task_set_result(t, &i, sizeof i);
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

    bool done[N];
    int n = pp_wait(fs, N, PP_FOREVER, PP_FIRST_COMPLETED, done);
    for (int i = 0; i < N && n > 0; i++) {
        const void *res;
        if (done[i] && pp_future_result(fs[i], 0, &res, NULL) == 0) {
            printf("first result: %d\n", *(const int *)res);
            break;
        }
    }

    /* Returns at once: tasks not started are cancelled, running ones go on. */
    pp_shutdown(ex, false, true);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        int rc = pp_future_result(fs[i], PP_FOREVER, NULL, NULL);
        ok += rc == 0;
        cancelled += rc == -ECANCELED;
        pp_future_release(fs[i]);
    }
    printf("%d finished, %d cancelled\n", ok, cancelled);
    printf("every task either finished or was cancelled: %s\n",
           ok + cancelled == N ? "yes" : "no");
    return pp_executor_destroy(ex); /* waits for the processes to exit */
}
