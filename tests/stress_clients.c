/*
 * stress_clients.c — client-side concurrency stress, a plain program so that
 * it runs under ThreadSanitizer too (Criterion cannot start under TSan).
 *
 * 4 threads share one executor (small slot count, so the backlog and the
 * pump are exercised) and, per task: submit, maybe add a callback, maybe
 * cancel, wait (result / pp_wait / as_completed), check, release. A fifth
 * thread reads statistics meanwhile. Every future must be accounted for
 * exactly once: completed-with-the-right-result or cancelled.
 * Exit status 0 and "N passed, 0 failed" on success.
 */
#include <ppool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define BATCH 64

static pp_executor *ex;
static long per_thread = 20000;
static _Atomic long ok, cancelled, bad, cb_registered, cb_fired;
static _Atomic int stop_stats;

static int mix(pp_task *t)
{
    const uint64_t *x = pp_task_arg(t, NULL);
    uint64_t y = *x * 0x9E3779B97F4A7C15ull;
    return pp_task_set_result(t, &y, sizeof y);
}

static int on_done(pp_future *f, void *ud)
{
    (void)f;
    (void)ud;
    atomic_fetch_add(&cb_fired, 1);
    return 0;
}

static uint64_t rng(uint64_t *s)
{
    *s += 0x9E3779B97F4A7C15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void check(pp_future *f, uint64_t x)
{
    const void *r;
    size_t n;
    int rc = pp_future_result(f, 60, &r, &n);
    if (rc == -ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    else if (rc == 0 && n == 8 && *(const uint64_t *)r == x * 0x9E3779B97F4A7C15ull)
        atomic_fetch_add(&ok, 1);
    else {
        fprintf(stderr, "bad result rc=%d (%s) n=%zu\n", rc, pp_strerror(rc), n);
        atomic_fetch_add(&bad, 1);
    }
}

static void *client(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919;
    pp_future *fs[BATCH];
    uint64_t xs[BATCH];
    for (long done = 0; done < per_thread; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            xs[i] = rng(&seed);
            if (pp_submit(ex, mix, &xs[i], sizeof xs[i], &fs[i]) != 0) {
                atomic_fetch_add(&bad, 1);
                fs[i] = NULL;
                continue;
            }
            uint64_t r = rng(&seed) % 100;
            if (r < 10) {
                atomic_fetch_add(&cb_registered, 1);
                pp_future_add_done_callback(fs[i], on_done, NULL);
            }
            if (r >= 90)
                pp_future_cancel(fs[i]);
        }
        switch (rng(&seed) % 3) {
        case 0:
            break;
        case 1:
            pp_wait(fs, BATCH, PP_FOREVER, PP_ALL_COMPLETED, NULL);
            break;
        case 2: {
            pp_as_completed *it;
            pp_future *f;
            if (pp_as_completed_begin(&it, fs, BATCH, PP_FOREVER) == 0) {
                while (pp_as_completed_next(it, &f) == 0)
                    ;
                pp_as_completed_end(it);
            }
            break;
        }
        }
        for (int i = 0; i < BATCH; i++)
            if (fs[i]) {
                check(fs[i], xs[i]);
                pp_future_release(fs[i]);
            }
    }
    return NULL;
}

static void *stats_reader(void *arg)
{
    (void)arg;
    pp_stats st;
    pp_worker_stats w[8];
    while (!atomic_load(&stop_stats))
        pp_executor_stats(ex, &st, w, 8);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        per_thread = atol(argv[1]);
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    cfg.slots = 256;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc) {
        fprintf(stderr, "create: %s\n", pp_strerror(rc));
        return 1;
    }
    pthread_t th[THREADS], st;
    pthread_create(&st, NULL, stats_reader, NULL);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, client, (void *)(i + 1));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop_stats, 1);
    pthread_join(st, NULL);
    pp_executor_destroy(ex);
    long total = (per_thread + BATCH - 1) / BATCH * BATCH * THREADS;
    long fails = atomic_load(&bad) + (atomic_load(&ok) + atomic_load(&cancelled) != total) +
                 (atomic_load(&cb_fired) != atomic_load(&cb_registered));
    printf("stress_clients: %ld futures: %ld ok, %ld cancelled, %ld bad; callbacks %ld/%ld\n",
           total, atomic_load(&ok), atomic_load(&cancelled), atomic_load(&bad),
           atomic_load(&cb_fired), atomic_load(&cb_registered));
    printf("%d passed, %d failed\n", fails ? 0 : 1, fails ? 1 : 0);
    return fails ? 1 : 0;
}
