/*
 * ex_task_error.c — a task that fails. The task "raises" with
 * pp_task_raise(t, code, fmt, ...) (or by returning non-zero); its future is
 * then done, not cancelled, and pp_future_result() returns PP_ETASK while
 * pp_future_exception() gives the code, the message and the worker's pid.
 * A failing task does not harm the pool.
 * Python: raise Exception('Something bad happened!') in the task;
 *         future.exception() / future.result() in the caller.
 */
#include <ppool.h>

#include <stdio.h>

static int parse_positive(pp_task *t)
{
    int v = *(const int *)pp_task_arg(t, NULL);
    if (v <= 0)
        return pp_task_raise(t, 22, "expected a positive number, got %d", v);
    return pp_task_set_result(t, &v, sizeof v);
}

static void report(pp_future *f)
{
    pp_exception e;
    pp_future_exception(f, PP_FOREVER, &e); /* waits like result() */
    int rc = pp_future_result(f, 0, NULL, NULL);
    if (rc == 0)
        printf("ok (exception: none)\n");
    else
        printf("result: %s; exception: code %d, \"%s\", raised in a worker: %s\n",
               rc == PP_ETASK ? "PP_ETASK" : pp_strerror(rc), e.code, e.message,
               e.pid > 0 ? "yes" : "no");
    printf("  done=%d cancelled=%d\n", pp_future_done(f), pp_future_cancelled(f));
}

int main(void)
{
    pp_executor *ex;
    if (pp_executor_create(&ex, NULL) != 0)
        return 1;
    int bad = -5, good = 7;
    pp_future *f, *g;
    if (pp_submit(ex, parse_positive, &bad, sizeof bad, &f) != 0 ||
        pp_submit(ex, parse_positive, &good, sizeof good, &g) != 0)
        return 1;
    report(f);
    report(g); /* the pool goes on after a failed task */
    pp_future_release(f);
    pp_future_release(g);
    return pp_executor_destroy(ex);
}
