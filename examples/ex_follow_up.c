/*
 * ex_follow_up.c — follow-up tasks: while results of a first batch come in
 * (in completion order), submit a second task for each result that calls for
 * one. Submit from the client thread, never from inside a task.
 * Python: `for f in as_completed(fs): if f.result() > 0.5: ex.submit(task2, ...)`.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum { N = 10 };

/* First stage: a pseudo-random value in [0, 1) from the task's number. */
static int task1(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    uint64_t z = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15u;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9u;
    double value = (double)(z >> 11) * 0x1p-53;
    struct timespec nap = {0, (long)(value * 50e6)}; /* up to 50 ms */
    nanosleep(&nap, NULL);
    return pp_task_set_result(t, &value, sizeof value);
}

/* Second stage, only for values above 0.5. */
static int task2(pp_task *t)
{
    double v = *(const double *)pp_task_arg(t, NULL);
    double r = 100.0 * v;
    return pp_task_set_result(t, &r, sizeof r);
}

static double value_of(pp_future *f)
{
    const void *res;
    return pp_future_result(f, PP_FOREVER, &res, NULL) == 0 ? *(const double *)res : -1.0;
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    pp_future *first[N], *second[N] = {NULL};
    for (int i = 0; i < N; i++)
        if (pp_submit(ex, task1, &i, sizeof i, &first[i]) != 0)
            return 1;

    pp_as_completed *it;
    if (pp_as_completed_begin(&it, first, N, PP_FOREVER) != 0)
        return 1;
    pp_future *f;
    while (pp_as_completed_next(it, &f) == 0) {
        double v = value_of(f);
        int i = 0;
        while (first[i] != f) /* which task this was */
            i++;
        if (v > 0.5 && pp_submit(ex, task2, &v, sizeof v, &second[i]) != 0)
            return 1;
    }
    pp_as_completed_end(it);

    /* Report in task order (completion order varies from run to run). */
    for (int i = 0; i < N; i++) {
        if (second[i])
            printf("task %d: %.3f -> follow-up: %.1f\n", i, value_of(first[i]), value_of(second[i]));
        else
            printf("task %d: %.3f\n", i, value_of(first[i]));
        pp_future_release(first[i]);
        pp_future_release(second[i]); /* NULL is ignored */
    }
    return pp_executor_destroy(ex);
}
