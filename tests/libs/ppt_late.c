/* A task function in a library the test dlopen()s only after the pool started. */
#include <ppool.h>

int ppt_late_task(pp_task *t)
{
    int v = 7;
    return pp_task_set_result(t, &v, sizeof v);
}
