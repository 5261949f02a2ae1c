/*
 * bench_start — what each start method costs, and what it does not.
 *
 * For fork, spawn and forkserver (medians over --runs K):
 *   start    pp_executor_create until every worker is pinned and ready, plus
 *            the first no-op result (Python starts workers lazily, so "pool
 *            usable" is the comparable point), then pp_executor_destroy;
 *   respawn  per-task cost with max_tasks_per_child = 1 (every task needs a
 *            new worker process) minus the plain round trip;
 *   round    the no-op round trip once workers run (it must not depend on
 *            the method).
 * In the same run, CPython's ProcessPoolExecutor does "create + first
 * result" with the same three multiprocessing contexts, and its
 * max_tasks_per_child=1 per-task cost (spawn/forkserver only: CPython refuses
 * max_tasks_per_child with fork). Ratios are python / ppool.
 *
 * Usage: bench_start [--runs K] [--workers N] [--no-python]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ppool.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int noop(pp_task *t)
{
    uint64_t x = 1;
    return pp_task_set_result(t, &x, sizeof x);
}

static void check(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench_start: %s: %s\n", what, pp_strerror(rc));
        exit(1);
    }
}

static void one_task(pp_executor *ex)
{
    pp_future *f;
    check(pp_submit(ex, noop, NULL, 0, &f), "submit");
    check(pp_future_result(f, 60, NULL, NULL), "result");
    pp_future_release(f);
}

static pp_executor *create(pp_start_method m, int workers, unsigned max_tasks)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.start_method = m;
    cfg.max_workers = workers;
    cfg.max_tasks_per_child = max_tasks;
    pp_executor *ex;
    check(pp_executor_create(&ex, &cfg), "create");
    return ex;
}

/* Seconds per task over @n sequential tasks. */
static double per_task(pp_executor *ex, int n)
{
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        one_task(ex);
    return (now_s() - t0) / n;
}

typedef struct method_result {
    double start, respawn, round;
} method_result;

static method_result measure(pp_start_method m, int workers, int runs)
{
    double *v = calloc((size_t)runs, sizeof *v);
    method_result r;
    for (int i = 0; i < runs; i++) {
        double t0 = now_s();
        pp_executor *ex = create(m, workers, 0);
        one_task(ex);
        pp_executor_destroy(ex);
        v[i] = now_s() - t0;
    }
    r.start = median(v, runs);
    pp_executor *ex = create(m, workers, 0);
    per_task(ex, 2000); /* warm-up */
    for (int i = 0; i < runs; i++)
        v[i] = per_task(ex, 5000);
    r.round = median(v, runs);
    pp_executor_destroy(ex);
    ex = create(m, 1, 1);
    for (int i = 0; i < runs; i++)
        v[i] = per_task(ex, 20) - r.round;
    r.respawn = median(v, runs);
    pp_executor_destroy(ex);
    free(v);
    return r;
}

static const char *py_prog =
    "import sys, time, statistics, concurrent.futures as cf, multiprocessing as mp\n"
    "def noop(): return 1\n"
    "if __name__ == '__main__':\n"
    "    method, workers, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "    ctx = mp.get_context(method)\n"
    "    s = []\n"
    "    for _ in range(runs):\n"
    "        t0 = time.perf_counter()\n"
    "        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as ex: ex.submit(noop).result()\n"
    "        s.append(time.perf_counter() - t0)\n"
    "    r = -1.0\n"
    "    if method != 'fork':\n"
    "        rr = []\n"
    "        with cf.ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as ex:\n"
    "            for _ in range(max(3, runs)):\n"
    "                t0 = time.perf_counter()\n"
    "                for _ in range(5): ex.submit(noop).result()\n"
    "                rr.append((time.perf_counter() - t0) / 5)\n"
    "        r = statistics.median(rr)\n"
    "    print(statistics.median(s), r)\n";

/* Python's (start, per-task with recycling) for @method; false if unavailable. */
static bool python(const char *method, int workers, int runs, double *start, double *respawn)
{
    char path[] = "/tmp/ppool_bench_startXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    if (write(fd, py_prog, strlen(py_prog)) != (ssize_t)strlen(py_prog)) {
        close(fd);
        unlink(path);
        return false;
    }
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 %s %s %d %d 2>/dev/null", path, method, workers, runs);
    FILE *p = popen(cmd, "r");
    bool ok = p && fscanf(p, "%lf %lf", start, respawn) == 2;
    if (p)
        pclose(p);
    unlink(path);
    return ok;
}

int main(int argc, char **argv)
{
    int runs = 7, workers = 0;
    bool py = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-python"))
            py = false;
        else {
            fprintf(stderr, "usage: bench_start [--runs K] [--workers N] [--no-python]\n");
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    pp_executor *probe = create(PP_START_FORK, workers, 0);
    workers = pp_max_workers(probe);
    printf("bench_start: start methods (medians of %d runs)\n", runs);
    printf("machine: %ld CPUs online; %s\n", sysconf(_SC_NPROCESSORS_ONLN), pp_executor_topology(probe));
    pp_executor_destroy(probe);

    static const pp_start_method m[] = {PP_START_FORK, PP_START_SPAWN, PP_START_FORKSERVER};
    static const char *name[] = {"fork", "spawn", "forkserver"};
    printf("\n%-11s | %14s %14s %7s | %14s %14s %7s | %12s\n", "method", "ppool start",
           "python start", "ratio", "ppool respawn", "python", "ratio", "round trip");
    printf("------------+---------------------------------------+---------------------------------"
           "------+-------------\n");
    for (int i = 0; i < 3; i++) {
        method_result r = measure(m[i], workers, runs);
        double ps = -1, pr = -1;
        bool have = py && python(name[i], workers, runs < 5 ? runs : 5, &ps, &pr);
        char pss[32] = "-", psr[32] = "-", prs[32] = "-", prr[32] = "-";
        if (have) {
            snprintf(pss, sizeof pss, "%.2f ms", ps * 1e3);
            snprintf(psr, sizeof psr, "%.0fx", ps / r.start);
            if (pr > 0) {
                snprintf(prs, sizeof prs, "%.2f ms", pr * 1e3);
                snprintf(prr, sizeof prr, "%.0fx", pr / r.respawn);
            } else {
                snprintf(prs, sizeof prs, "refused");
            }
        }
        printf("%-11s | %11.2f ms %14s %7s | %11.3f ms %14s %7s | %9.2f us\n", name[i],
               r.start * 1e3, pss, psr, r.respawn * 1e3, prs, prr, r.round * 1e6);
    }
    printf("\nstart = create + first result + destroy, %d workers; respawn = per-task cost with "
           "max_tasks_per_child=1 minus the round trip; python's respawn column is its whole "
           "per-task cost with max_tasks_per_child=1 (CPython refuses it with fork).\n",
           workers);
    return 0;
}
