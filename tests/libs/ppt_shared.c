/* A task function that lives in a shared library (test_start). */
#include <ppool.h>
#include <stdint.h>

int ppt_lib_triple(pp_task *t)
{
    const int64_t *x = pp_task_arg(t, NULL);
    int64_t y = 3 * *x;
    return pp_task_set_result(t, &y, sizeof y);
}
