/*
 * ex_start_methods.c — how the workers are started, and what they inherit.
 * FORK: the manager is a fork of the client, so workers see the client's
 * memory as it was at pp_executor_create. SPAWN and FORKSERVER start from a
 * fresh exec of the program: they see only what the program sets up before
 * main() (and the shared segment). The same task function works under all
 * three. AUTO (the default) takes FORK in a single-threaded client and
 * FORKSERVER once the client runs threads (OpenMP, MPI, a BLAS pool, ...),
 * because forking a process that has threads can deadlock the child.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int configured; /* set by main before the pools start */

static int read_configured(pp_task *t)
{
    return pp_task_set_result(t, &configured, sizeof configured);
}

static const char *name(pp_start_method m)
{
    return m == PP_START_FORK ? "fork" : m == PP_START_SPAWN ? "spawn" : "forkserver";
}

static pp_start_method start(pp_start_method m, int *seen)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    cfg.start_method = m;
    pp_executor *ex;
    pp_future *f;
    const void *res;
    if (pp_executor_create(&ex, &cfg) != 0)
        exit(1);
    if (pp_submit(ex, read_configured, NULL, 0, &f) != 0 ||
        pp_future_result(f, PP_FOREVER, &res, NULL) != 0)
        exit(1);
    *seen = *(const int *)res;
    pp_start_method used = pp_start_method_used(ex);
    pp_future_release(f);
    pp_executor_destroy(ex);
    return used;
}

static void *idle_thread(void *fd)
{
    char c;
    (void)!read(*(int *)fd, &c, 1); /* until main writes */
    return NULL;
}

int main(void)
{
    unsetenv("PPOOL_START_METHOD"); /* it would override AUTO's choice */
    configured = 1;
    int seen;
    const pp_start_method all[] = {PP_START_FORK, PP_START_SPAWN, PP_START_FORKSERVER};
    for (int i = 0; i < 3; i++) {
        start(all[i], &seen);
        printf("%-10s workers see configured = %d\n", name(all[i]), seen);
    }
    printf("AUTO, single-threaded client: %s\n", name(start(PP_START_AUTO, &seen)));

    int fds[2];
    pthread_t th;
    if (pipe(fds) != 0 || pthread_create(&th, NULL, idle_thread, &fds[0]) != 0)
        return 1;
    printf("AUTO, client running a thread: %s\n", name(start(PP_START_AUTO, &seen)));
    (void)!write(fds[1], "x", 1);
    pthread_join(th, NULL);
    return 0;
}
