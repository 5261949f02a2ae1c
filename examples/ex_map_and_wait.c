/*
 * ex_map_and_wait.c — the "map and wait" pattern: apply one function to every
 * item and use the results in input order, whatever order the workers finish
 * in. Python: `for result in executor.map(task, range(10)): print(result)`.
 *
 * pp_map_begin / pp_map_next is the ordered iterator over a map; each item
 * sleeps a different, fixed time, so the workers finish out of order, yet the
 * results come back 0, 1, 2, ...
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, ... with -std=c11 */
#include <ppool.h>

#include <stdio.h>
#include <time.h>

/* The item function runs in a worker process: sleep a little, return the
 * item itself. */
static int task(pp_map_item *it)
{
    int value = *(const int *)it->in[0];
    struct timespec nap = {0, (long)(value * 37 % 10) * 10000000L}; /* 0..90 ms */
    nanosleep(&nap, NULL);
    *(int *)it->out = value;
    return 0;
}

int main(void)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    pp_executor *ex;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc != 0) {
        fprintf(stderr, "pp_executor_create: %s\n", pp_strerror(rc));
        return 1;
    }

    int items[10];
    for (int i = 0; i < 10; i++)
        items[i] = i;
    pp_map_input in = pp_map_array(items, 10, sizeof(int)); /* "range(10)" */
    pp_map_opts opts;
    pp_map_opts_init(&opts); /* chunksize 1, no timeout, as in Python */
    opts.out_size = sizeof(int);

    pp_map_iter *m;
    rc = pp_map_begin(&m, ex, task, &in, 1, &opts); /* every item is submitted now */
    if (rc == 0) {
        const void *res;
        while ((rc = pp_map_next(m, &res, NULL)) == 0) /* blocks for the next in order */
            printf("%d\n", *(const int *)res);
        pp_map_end(m);
    }
    if (rc != -ENOENT) /* -ENOENT: every result was delivered */
        fprintf(stderr, "map: %s\n", pp_strerror(rc));
    pp_executor_destroy(ex); /* the end of Python's `with` block */
    return rc == -ENOENT ? 0 : 1;
}
