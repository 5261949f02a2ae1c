/*
 * ex_initializer.c — per-worker set-up: the initializer runs once in every
 * worker process before its first task, with bytes copied from
 * pp_config.initargs; what it builds stays in that worker's memory for all
 * the tasks it runs. An initializer that fails breaks the pool (as in Python):
 * every task then fails with PP_EBROKEN.
 * Python: ProcessPoolExecutor(2, initializer=init, initargs=(...,)).
 */
#include <ppool.h>

#include <stdio.h>
#include <string.h>

typedef struct settings {
    int scale;
    char unit[8];
} settings;

static settings worker_settings; /* one copy per worker process */
static int initialized;

static int init(const void *args, size_t size)
{
    if (size != sizeof(settings))
        return -1; /* non-zero: the pool breaks */
    memcpy(&worker_settings, args, sizeof worker_settings);
    initialized = 1;
    return 0;
}

static int init_fails(const void *args, size_t size)
{
    (void)args;
    (void)size;
    fprintf(stderr, "initializer: cannot set up this worker\n");
    return -1;
}

static int task(pp_task *t)
{
    if (!initialized)
        return pp_task_raise(t, 1, "the initializer did not run");
    int v = *(const int *)pp_task_arg(t, NULL);
    char out[32];
    snprintf(out, sizeof out, "%d %s", v * worker_settings.scale, worker_settings.unit);
    return pp_task_set_result(t, out, strlen(out) + 1);
}

int main(void)
{
    settings s = {.scale = 1000, .unit = "g"};
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    cfg.initializer = init;
    cfg.initargs = &s; /* copied by pp_executor_create */
    cfg.initargs_size = sizeof s;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    pp_future *fs[5];
    for (int i = 0; i < 5; i++)
        pp_submit(ex, task, &i, sizeof i, &fs[i]);
    for (int i = 0; i < 5; i++) {
        const void *res;
        int rc = pp_future_result(fs[i], PP_FOREVER, &res, NULL);
        printf("%d kg = %s\n", i, rc == 0 ? (const char *)res : pp_strerror(rc));
        pp_future_release(fs[i]);
    }
    pp_executor_destroy(ex);

    /* The same pool with an initializer that fails. */
    cfg.initializer = init_fails;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    int one = 1;
    pp_future *f = NULL;
    int rc = pp_submit(ex, task, &one, sizeof one, &f); /* may already be refused */
    if (rc == 0)
        rc = pp_future_result(f, PP_FOREVER, NULL, NULL);
    printf("with a failing initializer: %s\n", rc == PP_EBROKEN ? "PP_EBROKEN" : pp_strerror(rc));
    pp_future_release(f);
    return pp_executor_destroy(ex);
}
