/*
 * bench_backlog.c — what the client-side backlog costs: submitting from
 * several threads when every slot is taken (the backlog path, one mutex per
 * submit), against submitting into free slots (the lock-free path), and
 * cancelling a deep backlog.
 *
 *   ./build/release/bench_backlog [--tasks N] [--runs R] [--threads LIST]
 *
 * For each thread count T, T client threads each submit N/T no-op tasks to a
 * pool of 1 worker:
 *   - "ring":    slots = 2^17, so every submit takes a free slot (no lock);
 *   - "backlog": slots = 64, so almost every submit goes to the backlog
 *                (ex->lock, a list append, a malloc'd argument copy).
 * Printed: nanoseconds per submit as seen by the submitting threads (wall
 * time of the submit phase / N), median of R runs, with min and max. Then the
 * time to cancel N backlogged futures, newest first (the worst order for a
 * list searched from its head) — each cancel must be O(1).
 *
 * This is the measurement docs/design.md cites for keeping a mutex around
 * the backlog rather than a wait-free queue: compare "backlog" with "ring"
 * at the same T. On 2 CPUs, threads beyond 2 only add contention; rerun on a
 * bigger machine before concluding for it.
 */
#include <pthread.h>

static const char *prog = "bench_backlog";
#define RESULT_TIMEOUT_S 60.0
#include "bench_util.h"

static int noop(pp_task *t)
{
    (void)t;
    return 0;
}

/* Holds the only worker until the pool shuts down with cancel_futures. */
static int hold_worker(pp_task *t)
{
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 60000 && !pp_task_should_stop(t); i++)
        nanosleep(&ms, NULL);
    return 0;
}

typedef struct submitter {
    pp_executor *ex;
    pp_future **out;
    long n;
    pthread_barrier_t *go;
} submitter;

static void *submit_all(void *arg)
{
    submitter *s = arg;
    pthread_barrier_wait(s->go);
    for (long i = 0; i < s->n; i++) {
        int rc = pp_submit(s->ex, noop, &i, sizeof i, &s->out[i]);
        if (rc)
            die("pp_submit", rc);
    }
    return NULL;
}

static pp_executor *make_pool(unsigned slots)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    cfg.slots = slots;
    pp_executor *ex;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        die("pp_executor_create", rc);
    return ex;
}

/* One round: @threads threads submit @n tasks in all; returns the wall time
 * of the submit phase in ns per submit, after every result arrived. */
static double submit_round(pp_executor *ex, pp_future **fs, int threads, long n)
{
    pthread_t tid[64];
    submitter sub[64];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    long per = n / threads;
    for (int t = 0; t < threads; t++) {
        sub[t] = (submitter){ex, fs + t * per, per, &go};
        pthread_create(&tid[t], NULL, submit_all, &sub[t]);
    }
    pthread_barrier_wait(&go);
    uint64_t t0 = now_ns();
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double ns = (double)(now_ns() - t0) / (double)(per * threads);
    for (long i = 0; i < per * threads; i++) {
        int rc = pp_future_result(fs[i], RESULT_TIMEOUT_S, NULL, NULL);
        if (rc)
            die_future("a no-op task", fs[i], rc);
        pp_future_release(fs[i]);
    }
    pthread_barrier_destroy(&go);
    return ns;
}

/* ns per submit with @threads threads submitting @n tasks in all, measured
 * on a second round (the first one faults the slots and arena pages in). */
static double submit_phase(unsigned slots, int threads, long n)
{
    pp_executor *ex = make_pool(slots);
    pp_future **fs = xmalloc((size_t)n * sizeof *fs);
    submit_round(ex, fs, threads, n);
    double ns = submit_round(ex, fs, threads, n);
    free(fs);
    int rc = pp_executor_destroy(ex);
    if (rc)
        die("pp_executor_destroy", rc);
    return ns;
}

/* Seconds to cancel @n backlogged futures, newest first. */
static double cancel_phase(long n)
{
    pp_executor *ex = make_pool(64);
    pp_future *block; /* keeps the worker busy: nothing leaves the backlog */
    int rc = pp_submit(ex, hold_worker, NULL, 0, &block);
    if (rc)
        die("pp_submit", rc);
    pp_future **fs = xmalloc((size_t)n * sizeof *fs);
    for (long i = 0; i < n; i++)
        if ((rc = pp_submit(ex, noop, &i, sizeof i, &fs[i])) != 0)
            die("pp_submit", rc);
    uint64_t t0 = now_ns();
    long cancelled = 0;
    for (long i = n - 1; i >= 0; i--)
        cancelled += pp_future_cancel(fs[i]);
    double s = (double)(now_ns() - t0) / 1e9;
    if (cancelled < n - 64 - 1) {
        fprintf(stderr, "%s: only %ld of %ld cancels succeeded\n", prog, cancelled, n);
        exit(1);
    }
    pp_shutdown(ex, false, true); /* releases hold_worker */
    for (long i = 0; i < n; i++)
        pp_future_release(fs[i]);
    pp_future_release(block);
    free(fs);
    if ((rc = pp_executor_destroy(ex)) != 0)
        die("pp_executor_destroy", rc);
    return s;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [--tasks N] [--runs R] [--threads LIST]\n"
                "  --tasks N       tasks submitted per measurement (default 200000)\n"
                "  --runs R        measurements per point; the median is printed (default 5)\n"
                "  --threads LIST  submitting threads, comma-separated (default 1,2,4,8)\n",
            prog);
}

int main(int argc, char **argv)
{
    long tasks = 200000, runs = 5;
    int threads[16] = {1, 2, 4, 8}, nthreads = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tasks") && i + 1 < argc) {
            tasks = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthreads = 0;
            for (char *tok = strtok(argv[++i], ","); tok && nthreads < 16; tok = strtok(NULL, ","))
                threads[nthreads++] = atoi(tok);
        } else {
            usage(!strcmp(argv[i], "--help") ? stdout : stderr);
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    if (tasks < 1000 || runs < 1 || runs > 101) {
        usage(stderr);
        return 2;
    }
    for (int k = 0; k < nthreads; k++)
        if (threads[k] < 1 || threads[k] > 64) {
            usage(stderr);
            return 2;
        }

    char model[256];
    cpu_model(model, sizeof model);
    pp_executor *probe = make_pool(64);
    printf("machine: %ld CPUs online, %s; %s\n", sysconf(_SC_NPROCESSORS_ONLN), model,
           pp_executor_topology(probe));
    pp_executor_destroy(probe);
    printf("%ld no-op tasks per point, 1 worker, median of %ld runs (min-max)\n\n", tasks, runs);
    printf("threads | ring ns/submit        | backlog ns/submit     | backlog/ring\n");
    double *v = xmalloc((size_t)runs * sizeof *v);
    for (int k = 0; k < nthreads; k++) {
        double med[2], mn[2], mx[2];
        unsigned slots[2] = {1u << 17, 64};
        for (int m = 0; m < 2; m++) {
            for (long r = 0; r < runs; r++)
                v[r] = submit_phase(slots[m], threads[k], tasks);
            med[m] = median_d(v, (size_t)runs, &mn[m], &mx[m]);
        }
        printf("%7d | %6.0f (%5.0f-%5.0f)  | %6.0f (%5.0f-%5.0f)  | %5.2f\n", threads[k], med[0],
               mn[0], mx[0], med[1], mn[1], mx[1], med[1] / med[0]);
    }
    printf("\ncancel, newest first (each cancel O(1) => time linear in n):\n");
    for (long n = tasks / 8; n <= tasks; n *= 2) {
        for (long r = 0; r < runs; r++)
            v[r] = cancel_phase(n);
        double mn, mx, med = median_d(v, (size_t)runs, &mn, &mx);
        printf("  n = %7ld: %8.4f s (%.4f-%.4f), %.0f ns per cancel\n", n, med, mn, mx,
               med * 1e9 / (double)n);
    }
    free(v);
    return 0;
}
