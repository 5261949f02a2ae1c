/*
 * ex_respawn.c — what a crashing task does to the pool. With the default
 * policy, PP_DEATH_BREAK (Python's behaviour), a worker that dies breaks the
 * pool: every unfinished future fails with PP_EBROKEN and new submissions are
 * refused. With PP_DEATH_RESPAWN only the future whose task was running on
 * the dead worker fails, with PP_EWORKER and the signal; the manager starts a
 * new worker in the dead one's place and every other task runs normally.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { SLOW = -1, CRASH = -2 };

static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    struct timespec nap = {0, 300000000L};
    if (i == SLOW)
        nanosleep(&nap, NULL); /* still running when the other task crashes */
    if (i == CRASH)
        abort(); /* the worker dies of SIGABRT */
    return pp_task_set_result(t, &i, sizeof i);
}

static void show(const char *name, pp_future *f)
{
    pp_exception e;
    pp_future_exception(f, PP_FOREVER, &e); /* waits until done */
    if (e.error == 0)
        printf("  %s: ok\n", name);
    else if (e.error == PP_EWORKER || e.error == PP_EBROKEN)
        printf("  %s: %s (a worker died of signal %d)\n", name,
               e.error == PP_EWORKER ? "PP_EWORKER" : "PP_EBROKEN", e.code);
    else
        printf("  %s: %s\n", name, pp_strerror(e.error));
}

static void run(pp_death_policy policy, const char *name)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    cfg.on_worker_death = policy;
    pp_executor *ex;
    if (pp_executor_create(&ex, &cfg) != 0)
        exit(1);
    printf("%s:\n", name);
    int slow = SLOW, crash = CRASH, later = 7;
    pp_future *a, *b, *c = NULL;
    pp_submit(ex, task, &slow, sizeof slow, &a);
    pp_submit(ex, task, &crash, sizeof crash, &b);
    show("crashing task", b);
    show("task running beside it", a);
    int rc = pp_submit(ex, task, &later, sizeof later, &c);
    if (rc == 0)
        show("task submitted after", c);
    else
        printf("  task submitted after: refused, %s\n", rc == PP_EBROKEN ? "PP_EBROKEN" : pp_strerror(rc));
    if (policy == PP_DEATH_RESPAWN) {
        pp_stats st = {0};
        for (int i = 0; i < 5000 && st.respawns == 0; i++) { /* the manager replaces it */
            struct timespec ms = {0, 1000000L};
            nanosleep(&ms, NULL);
            pp_executor_stats(ex, &st, NULL, 0);
        }
        printf("  workers replaced: %llu\n", (unsigned long long)st.respawns);
    }
    pp_future_release(a);
    pp_future_release(b);
    pp_future_release(c);
    pp_executor_destroy(ex);
}

int main(void)
{
    run(PP_DEATH_BREAK, "PP_DEATH_BREAK (default)");
    run(PP_DEATH_RESPAWN, "PP_DEATH_RESPAWN");
    return 0;
}
