/*
 * ex_sequential.c — "submit and use sequentially": submit every task, keep
 * the futures in a list, and use the results in submission order. Each
 * pp_future_result blocks only until *that* task is done. This is also how a
 * map is written with pp_submit when each call needs its own future.
 * Python: `futures = [ex.submit(task, i) for i in range(10)]`
 *         `for f in futures: print(f.result())`.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The argument: a value and how long to sleep (bytes, copied at submit). */
typedef struct job {
    int value;
    int sleep_ms;
} job;

static int task(pp_task *t)
{
    job j;
    memcpy(&j, pp_task_arg(t, NULL), sizeof j);
    struct timespec nap = {0, j.sleep_ms * 1000000L};
    nanosleep(&nap, NULL);
    int result = j.value * 10;
    return pp_task_set_result(t, &result, sizeof result);
}

int main(void)
{
    pp_executor *ex;
    if (pp_executor_create(&ex, NULL) != 0) /* NULL: the defaults */
        return 1;

    enum { N = 10 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++) {
        job j = {i, (N - i) * 5}; /* later tasks are shorter: they finish first */
        int rc = pp_submit(ex, task, &j, sizeof j, &fs[i]);
        if (rc != 0) {
            fprintf(stderr, "pp_submit: %s\n", pp_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < N; i++) {
        const void *res;
        size_t size;
        int rc = pp_future_result(fs[i], PP_FOREVER, &res, &size);
        if (rc == 0 && size == sizeof(int))
            printf("task %d -> %d\n", i, *(const int *)res); /* valid until released */
        else
            printf("task %d failed: %s\n", i, pp_strerror(rc));
        pp_future_release(fs[i]);
    }
    return pp_executor_destroy(ex);
}
