/*
 * ex_as_completed.c — "submit and use as completed": submit every task, then
 * handle each result as soon as its task finishes, in completion order.
 * Python: `for f in as_completed(futures): print(f.result())`.
 *
 * Completion order depends on timing, so the program prints each result as it
 * comes and then checks that every task was seen exactly once.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

/* Sleep value*37 % 10 hundredths of a second, then return value. */
static int task(pp_task *t)
{
    int value = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, (long)(value * 37 % 10) * 10000000L};
    nanosleep(&nap, NULL);
    return pp_task_set_result(t, &value, sizeof value);
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

    pp_as_completed *it;
    int rc = pp_as_completed_begin(&it, fs, N, 30.0); /* one deadline for all */
    if (rc != 0)
        return 1;
    int seen[N] = {0};
    pp_future *f;
    while ((rc = pp_as_completed_next(it, &f)) == 0) {
        const void *res;
        if (pp_future_result(f, 0, &res, NULL) == 0) { /* done: does not block */
            int v = *(const int *)res;
            printf("finished: task %d\n", v);
            seen[v]++;
        }
    }
    pp_as_completed_end(it); /* rc is -ENOENT once every future was yielded */

    int once = 0;
    for (int i = 0; i < N; i++)
        once += seen[i] == 1;
    printf("%d of %d tasks seen exactly once (%s)\n", once, N,
           rc == -ENOENT ? "all yielded" : pp_strerror(rc));

    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    return pp_executor_destroy(ex) == 0 && once == N ? 0 : 1;
}
