/* A program built against the *installed* ppool, by CMake and by pkg-config. */
#include <ppool.h>
#include <stdio.h>

static int twice(pp_task *t)
{
    const int *x = pp_task_arg(t, NULL);
    int r = 2 * *x;
    return pp_task_set_result(t, &r, sizeof r);
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    pp_executor *ex;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc) {
        fprintf(stderr, "create: %s\n", pp_strerror(rc));
        return 1;
    }
    int x = 21;
    pp_future *f;
    const void *res;
    rc = pp_submit(ex, twice, &x, sizeof x, &f);
    if (!rc)
        rc = pp_future_result(f, PP_FOREVER, &res, NULL);
    if (!rc)
        printf("consumer: %d\n", *(const int *)res);
    pp_future_release(f);
    pp_executor_destroy(ex);
    return rc ? 1 : 0;
}
