/* A program built against ppool: installed (CMake, pkg-config) or embedded
 * (add_subdirectory, FetchContent). */
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
    if (pp_version() != PPOOL_VERSION) { /* header and library disagree */
        fprintf(stderr, "consumer: header %s, library %s\n", PPOOL_VERSION_STRING,
                pp_version_string());
        return 1;
    }
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
