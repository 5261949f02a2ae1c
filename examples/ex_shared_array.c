/*
 * ex_shared_array.c — large arrays without copies. pp_shm_alloc() places an
 * array in the pool's shared memory; a task receives only its offset (from
 * pp_shm_offset) and a range, gets its own pointer with pp_task_shm(), and
 * works in place. The client sees the workers' writes directly.
 * (Arguments and results of pp_submit are copied; pointers into the client's
 * own heap mean nothing in a worker.)
 */
#include <ppool.h>

#include <stdint.h>
#include <stdio.h>

typedef struct slice {
    uint64_t offset; /* where the array is in the shared segment */
    size_t first, count;
} slice;

/* Double every element of the slice and return the slice's new sum. */
static int scale_and_sum(pp_task *t)
{
    const slice *s = pp_task_arg(t, NULL);
    double *a = pp_task_shm(t, s->offset);
    if (!a)
        return pp_task_raise(t, 1, "bad offset");
    double sum = 0;
    for (size_t i = s->first; i < s->first + s->count; i++) {
        a[i] *= 2.0;
        sum += a[i];
    }
    return pp_task_set_result(t, &sum, sizeof sum);
}

int main(void)
{
    enum { N = 1 << 20, TASKS = 8 };
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    double *a;
    if (pp_shm_alloc(ex, N * sizeof(double), (void **)&a) != 0)
        return 1;
    for (size_t i = 0; i < N; i++)
        a[i] = (double)(i + 1); /* 1, 2, ..., N */

    pp_future *fs[TASKS];
    for (int k = 0; k < TASKS; k++) {
        slice s = {pp_shm_offset(ex, a), (size_t)k * (N / TASKS), N / TASKS};
        if (pp_submit(ex, scale_and_sum, &s, sizeof s, &fs[k]) != 0)
            return 1;
    }
    double total = 0;
    for (int k = 0; k < TASKS; k++) {
        const void *res;
        if (pp_future_result(fs[k], PP_FOREVER, &res, NULL) == 0)
            total += *(const double *)res;
        pp_future_release(fs[k]);
    }
    double expect = (double)N * (N + 1); /* 2 * N(N+1)/2 */
    printf("sum after doubling: %.0f (expected %.0f)\n", total, expect);
    printf("a[0] = %.0f, a[N-1] = %.0f: changed in place\n", a[0], a[N - 1]);
    pp_shm_free(ex, a);
    return pp_executor_destroy(ex);
}
