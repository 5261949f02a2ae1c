/*
 * ex_callbacks.c — done-callbacks. Each future gets two callbacks; they run in
 * the client process (never in a worker), in the order they were added, also
 * when the task failed. A callback that fails (returns non-zero) is reported
 * on stderr and the next one still runs. A callback added to a future that is
 * already done (and whose earlier callbacks have run) runs at once, in the
 * thread that adds it; otherwise it runs after the earlier ones.
 * Python: `future.add_done_callback(fn)`, twice per future.
 */
#include <ppool.h>

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

enum { N = 4, FAILING_TASK = 3, FAILING_CALLBACK = 2 };

typedef struct record {
    int index;
    int order[2]; /* when each callback ran (a global ticket) */
    pid_t pid;    /* where callback 1 ran */
    int error;    /* the future's outcome, as callback 1 saw it */
} record;

static atomic_int ticket;
static record rec[N];

static int task(pp_task *t)
{
    int i = *(const int *)pp_task_arg(t, NULL);
    if (i == FAILING_TASK)
        return pp_task_raise(t, 42, "task %d gives up", i);
    return pp_task_set_result(t, &i, sizeof i);
}

static int callback1(pp_future *f, void *userdata)
{
    record *r = userdata;
    r->order[0] = atomic_fetch_add(&ticket, 1);
    r->pid = getpid();
    r->error = pp_future_result(f, 0, NULL, NULL); /* done: never blocks here */
    return r->index == FAILING_CALLBACK ? -1 : 0;  /* -1: "raise" */
}

static int callback2(pp_future *f, void *userdata)
{
    (void)f;
    record *r = userdata;
    r->order[1] = atomic_fetch_add(&ticket, 1);
    return 0;
}

int main(void)
{
    pp_executor *ex;
    if (pp_executor_create(&ex, NULL) != 0)
        return 1;
    pp_future *fs[N];
    for (int i = 0; i < N; i++) {
        rec[i].index = i;
        if (pp_submit(ex, task, &i, sizeof i, &fs[i]) != 0)
            return 1;
        pp_future_add_done_callback(fs[i], callback1, &rec[i]);
        pp_future_add_done_callback(fs[i], callback2, &rec[i]);
    }

    /* Already done, no callback before it: it runs before
     * pp_future_add_done_callback returns. */
    int five = 5;
    record late = {.order = {-1, -1}};
    pp_future *g;
    if (pp_submit(ex, task, &five, sizeof five, &g) != 0)
        return 1;
    pp_future_result(g, PP_FOREVER, NULL, NULL);
    pp_future_add_done_callback(g, callback2, &late);
    printf("callback added after the task finished ran at once: %s\n",
           late.order[1] >= 0 ? "yes" : "no");
    pp_future_release(g);

    /* shutdown(wait) returns once every task is done and every callback ran. */
    pp_shutdown(ex, true, false);
    for (int i = 0; i < N; i++) {
        record *r = &rec[i];
        printf("task %d: %s; callback 1 %s, then callback 2 (%s); in the client: %s\n", i,
               r->error == 0 ? "ok" : pp_strerror(r->error),
               i == FAILING_CALLBACK ? "failed" : "ran",
               r->order[0] < r->order[1] ? "in order" : "OUT OF ORDER",
               r->pid == getpid() ? "yes" : "no");
        pp_future_release(fs[i]);
    }
    return pp_executor_destroy(ex);
}
