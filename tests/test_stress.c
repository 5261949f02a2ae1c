/*
 * test_stress.c — many futures from many client threads, with random
 * cancels, callbacks and fire-and-forget releases; every future accounted for
 * exactly once.
 *
 *  - stress/million_futures_four_threads: 4 client threads, 1 000 000 tiny
 *    tasks in all (200 000 under a sanitizer). ~10 % get a done-callback
 *    (a third of those are released at once: fire-and-forget, their outcome
 *    read inside the callback), ~10 % are cancelled right after submit.
 *    Every future ends exactly once: with its result (the echoed id) or
 *    cancelled; ok + cancelled == total; callbacks fired == registered, each
 *    exactly once; the pool's counters agree; everything released (ASan's
 *    leak check covers the client side).
 *  - stress/shared_futures_many_observers: one set of futures watched at once
 *    by two as_completed iterators, a pp_wait, a thread cancelling and a
 *    thread adding callbacks.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PPT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define PPT_SANITIZED 1
#endif
#endif
#ifndef PPT_SANITIZED
#define PPT_SANITIZED 0
#endif

#define ST_THREADS 4
#define ST_TOTAL (PPT_SANITIZED ? 200000u : 1000000u)
#define ST_WINDOW 4096u

/* xorshift64*, one per thread, fixed seeds. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void join_within(pthread_t th, double seconds, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + seconds;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    int rc = pthread_timedjoin_np(th, NULL, &ts);
    cr_assert_eq(rc, 0, "%s did not finish within %.0f s (%s)", what, seconds, strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* a million futures                                                        */
/* ------------------------------------------------------------------------ */

enum {
    REC_CB = 1, /* a callback was registered */
    REC_FF = 2, /* released right away; the callback reads the outcome */
};

typedef struct rec {
    _Atomic uint8_t fired; /* callback runs */
    uint8_t flags;         /* REC_*: written before the callback is registered */
} rec;

static rec *g_recs;
static _Atomic uint64_t g_registered, g_fired;
static _Atomic uint64_t g_cb_ok, g_cb_cancelled, g_cb_err, g_cb_badval;
static _Atomic int g_cb_first_err;

static int stress_cb(pp_future *f, void *ud)
{
    rec *r = ud;
    atomic_fetch_add_explicit(&r->fired, 1, memory_order_relaxed); /* checked after the joins */
    if (r->flags & REC_FF) {
        uint64_t id = (uint64_t)(r - g_recs);
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(f, 0.0, &d, &n);
        if (rc == 0) {
            uint64_t v = 0;
            if (n == sizeof v)
                memcpy(&v, d, sizeof v);
            if (n != sizeof v || v != id)
                atomic_fetch_add(&g_cb_badval, 1);
            atomic_fetch_add(&g_cb_ok, 1);
        } else if (rc == -ECANCELED) {
            atomic_fetch_add(&g_cb_cancelled, 1);
        } else {
            atomic_fetch_add(&g_cb_err, 1);
            atomic_store(&g_cb_first_err, rc);
        }
    }
    /* Last: the test waits for fired == registered, then reads the counters. */
    atomic_fetch_add_explicit(&g_fired, 1, memory_order_release);
    return 0;
}

typedef struct st_ctx {
    pp_executor *ex;
    uint64_t first, count; /* ids [first, first + count) */
    uint64_t seed;
    uint64_t ok, cancelled, ff, submit_err, result_err, bad_value, cancel_mismatch, cb_err;
    uint64_t cancel_tried, cancel_won, cb_added;
    int first_rc;
} st_ctx;

static void note_err(st_ctx *c, int rc)
{
    if (!c->first_rc)
        c->first_rc = rc;
}

static void *st_client(void *p)
{
    st_ctx *c = p;
    pp_future **fs = calloc(ST_WINDOW, sizeof *fs);
    uint8_t *cancel_state = calloc(ST_WINDOW, 1); /* 1 tried and lost, 2 won */
    if (!fs || !cancel_state) {
        c->submit_err = c->count;
        note_err(c, -ENOMEM);
        free(fs);
        free(cancel_state);
        return NULL;
    }
    for (uint64_t base = 0; base < c->count; base += ST_WINDOW) {
        uint64_t m = c->count - base < ST_WINDOW ? c->count - base : ST_WINDOW;
        for (uint64_t j = 0; j < m; j++) {
            uint64_t id = c->first + base + j;
            rec *r = &g_recs[id];
            fs[j] = NULL;
            cancel_state[j] = 0;
            int rc = pp_submit(c->ex, ppt_task_echo, &id, sizeof id, &fs[j]);
            if (rc != 0) {
                c->submit_err++;
                note_err(c, rc);
                fs[j] = NULL;
                continue;
            }
            uint64_t x = rnd(&c->seed);
            if (x % 10 == 0) {
                r->flags = REC_CB | ((x / 10) % 3 == 0 ? REC_FF : 0);
                atomic_fetch_add(&g_registered, 1);
                rc = pp_future_add_done_callback(fs[j], stress_cb, r);
                if (rc != 0) {
                    atomic_fetch_sub(&g_registered, 1);
                    c->cb_err++;
                    note_err(c, rc);
                    r->flags = 0;
                } else {
                    c->cb_added++;
                }
            }
            if ((x >> 20) % 10 == 0) {
                c->cancel_tried++;
                bool won = pp_future_cancel(fs[j]);
                cancel_state[j] = won ? 2 : 1;
                c->cancel_won += won;
            }
            if (r->flags & REC_FF) {
                /* Fire and forget: the callback accounts for it. */
                c->ff++;
                pp_future_release(fs[j]);
                fs[j] = NULL;
            }
        }
        for (uint64_t j = 0; j < m; j++) {
            if (!fs[j])
                continue;
            uint64_t id = c->first + base + j;
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_result(fs[j], PP_FOREVER, &d, &n);
            if (rc == 0) {
                c->ok++;
                uint64_t v = 0;
                if (n == sizeof v)
                    memcpy(&v, d, sizeof v);
                if (n != sizeof v || v != id)
                    c->bad_value++;
                if (cancel_state[j] == 2)
                    c->cancel_mismatch++; /* cancel said yes, yet it ran */
            } else if (rc == -ECANCELED) {
                c->cancelled++;
                if (cancel_state[j] != 2)
                    c->cancel_mismatch++; /* cancelled without a successful cancel */
                if (!pp_future_cancelled(fs[j]))
                    c->cancel_mismatch++;
            } else {
                c->result_err++;
                note_err(c, rc);
            }
            pp_future_release(fs[j]);
        }
    }
    free(fs);
    free(cancel_state);
    return NULL;
}

Test(stress, million_futures_four_threads, PPT_FIXTURE, .timeout = 300)
{
    const uint64_t total = ST_TOTAL;
    g_recs = calloc(total, sizeof *g_recs);
    cr_assert_not_null(g_recs);
    pp_config cfg;
    pp_config_init(&cfg);
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));

    double t0 = ppt_now();
    pthread_t th[ST_THREADS];
    st_ctx ctx[ST_THREADS];
    for (int k = 0; k < ST_THREADS; k++) {
        uint64_t per = total / ST_THREADS;
        ctx[k] = (st_ctx){.ex = ex,
                          .first = per * (uint64_t)k,
                          .count = k == ST_THREADS - 1 ? total - per * (uint64_t)k : per,
                          .seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(k + 1)};
        cr_assert_eq(pthread_create(&th[k], NULL, st_client, &ctx[k]), 0);
    }
    for (int k = 0; k < ST_THREADS; k++)
        join_within(th[k], 280.0, "a client thread");
    double dt = ppt_now() - t0;

    bool fired = PPT_WAIT_FOR(atomic_load_explicit(&g_fired, memory_order_acquire) ==
                                  atomic_load(&g_registered),
                              60.0);
    cr_expect(fired, "callbacks fired %llu, registered %llu", (unsigned long long)atomic_load(&g_fired),
              (unsigned long long)atomic_load(&g_registered));

    uint64_t ok = 0, cancelled = 0, ff = 0, cancel_tried = 0, cancel_won = 0, cb_added = 0;
    for (int k = 0; k < ST_THREADS; k++) {
        st_ctx *c = &ctx[k];
        cr_expect_eq(c->submit_err, 0, "thread %d: %llu submit errors (first %d %s)", k,
                     (unsigned long long)c->submit_err, c->first_rc, pp_strerror(c->first_rc));
        cr_expect_eq(c->result_err, 0, "thread %d: %llu result errors (first %d %s)", k,
                     (unsigned long long)c->result_err, c->first_rc, pp_strerror(c->first_rc));
        cr_expect_eq(c->cb_err, 0, "thread %d: %llu add_done_callback errors (first %d %s)", k,
                     (unsigned long long)c->cb_err, c->first_rc, pp_strerror(c->first_rc));
        cr_expect_eq(c->bad_value, 0, "thread %d: %llu wrong results", k, (unsigned long long)c->bad_value);
        cr_expect_eq(c->cancel_mismatch, 0, "thread %d: %llu outcomes disagree with cancel()", k,
                     (unsigned long long)c->cancel_mismatch);
        ok += c->ok;
        cancelled += c->cancelled;
        ff += c->ff;
        cancel_tried += c->cancel_tried;
        cancel_won += c->cancel_won;
        cb_added += c->cb_added;
    }
    cr_expect_eq(atomic_load(&g_cb_err), 0, "%llu fire-and-forget futures failed (last %d %s)",
                 (unsigned long long)atomic_load(&g_cb_err), atomic_load(&g_cb_first_err),
                 pp_strerror(atomic_load(&g_cb_first_err)));
    cr_expect_eq(atomic_load(&g_cb_badval), 0, "%llu fire-and-forget futures had wrong results",
                 (unsigned long long)atomic_load(&g_cb_badval));
    ok += atomic_load(&g_cb_ok);
    cancelled += atomic_load(&g_cb_cancelled);
    cr_expect_eq(atomic_load(&g_cb_ok) + atomic_load(&g_cb_cancelled), ff,
                 "fire-and-forget: %llu accounted, %llu released", 
                 (unsigned long long)(atomic_load(&g_cb_ok) + atomic_load(&g_cb_cancelled)),
                 (unsigned long long)ff);
    cr_expect_eq(ok + cancelled, total, "ok %llu + cancelled %llu != %llu", (unsigned long long)ok,
                 (unsigned long long)cancelled, (unsigned long long)total);
    cr_expect_eq(cb_added, atomic_load(&g_registered));

    /* Each callback exactly once; none for futures without one. */
    uint64_t never = 0, twice = 0, stray = 0;
    for (uint64_t i = 0; i < total; i++) {
        uint8_t n = atomic_load_explicit(&g_recs[i].fired, memory_order_relaxed);
        if (g_recs[i].flags & REC_CB) {
            never += n == 0;
            twice += n > 1;
        } else {
            stray += n != 0;
        }
    }
    cr_expect_eq(never, 0, "%llu callbacks never ran", (unsigned long long)never);
    cr_expect_eq(twice, 0, "%llu callbacks ran more than once", (unsigned long long)twice);
    cr_expect_eq(stray, 0, "%llu callbacks ran for futures without one", (unsigned long long)stray);

    /* The pool's counters agree with the futures. */
    pp_stats st;
    bool settled = PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) > 0 && st.completed + st.cancelled >= total,
                                20.0);
    cr_expect(settled, "stats: completed %llu + cancelled %llu < %llu", (unsigned long long)st.completed,
              (unsigned long long)st.cancelled, (unsigned long long)total);
    cr_expect_eq(st.submitted, total, "stats.submitted %llu", (unsigned long long)st.submitted);
    cr_expect_eq(st.completed, ok, "stats.completed %llu, futures %llu", (unsigned long long)st.completed,
                 (unsigned long long)ok);
    cr_expect_eq(st.cancelled, cancelled, "stats.cancelled %llu, futures %llu", (unsigned long long)st.cancelled,
                 (unsigned long long)cancelled);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.backlog, 0);
    cr_expect_eq(st.queued, 0);
    cr_expect_eq(st.running, 0);

    cr_log_info("%llu futures in %.2f s (%.0f/s) on %d workers: %llu ok, %llu cancelled (%llu of %llu cancels "
                "won), %llu callbacks (%llu fire-and-forget)",
                (unsigned long long)total, dt, (double)total / dt, pp_max_workers(ex), (unsigned long long)ok,
                (unsigned long long)cancelled, (unsigned long long)cancel_won, (unsigned long long)cancel_tried,
                (unsigned long long)cb_added, (unsigned long long)ff);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    free(g_recs);
    g_recs = NULL;
}

/* ------------------------------------------------------------------------ */
/* one set of futures, many observers                                       */
/* ------------------------------------------------------------------------ */

#define SH_N (PPT_SANITIZED ? 5000u : 20000u)

typedef struct sh_ctx {
    pp_future **fs;
    pp_future **sorted; /* for pointer -> index lookups */
    size_t *sorted_idx;
    size_t n;
    int kind; /* 0 as_completed, 1 pp_wait, 2 canceller, 3 callback adder */
    uint64_t seed;
    /* results */
    size_t yielded, dup, unknown, not_done;
    int rc, end_rc;
    uint8_t *cancel_won;    /* kind 2: per index */
    _Atomic uint8_t *fired; /* kind 3: per index */
    uint8_t *cb_added;      /* kind 3: per index */
} sh_ctx;

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(pp_future *const *)a, y = (uintptr_t)*(pp_future *const *)b;
    return x < y ? -1 : x > y;
}

static long lookup(const sh_ctx *c, pp_future *f)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)c->sorted[mid] < (uintptr_t)f)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->sorted[lo] == f ? (long)c->sorted_idx[lo] : -1;
}

static _Atomic uint64_t g_sh_fired;

static int sh_cb(pp_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((_Atomic uint8_t *)ud, 1);
    atomic_fetch_add(&g_sh_fired, 1);
    return 0;
}

static void *sh_thread(void *p)
{
    sh_ctx *c = p;
    switch (c->kind) {
    case 0: {
        uint8_t *seen = calloc(c->n, 1);
        pp_as_completed *it = NULL;
        c->rc = pp_as_completed_begin(&it, c->fs, c->n, 240.0);
        if (c->rc != 0 || !seen) {
            free(seen);
            break;
        }
        pp_future *f;
        int rc;
        while ((rc = pp_as_completed_next(it, &f)) == 0) {
            long i = lookup(c, f);
            if (i < 0) {
                c->unknown++;
                continue;
            }
            if (seen[i]++)
                c->dup++;
            if (!pp_future_done(f))
                c->not_done++;
            c->yielded++;
        }
        c->end_rc = rc;
        pp_as_completed_end(it);
        free(seen);
        break;
    }
    case 1: {
        bool *done = calloc(c->n, sizeof *done);
        if (!done)
            break;
        c->rc = pp_wait(c->fs, c->n, 240.0, PP_ALL_COMPLETED, done);
        for (size_t i = 0; i < c->n; i++)
            c->not_done += !done[i];
        free(done);
        break;
    }
    case 2:
        for (size_t k = 0; k < c->n; k++) {
            uint64_t x = rnd(&c->seed);
            if (x % 10 == 0)
                c->cancel_won[k] = pp_future_cancel(c->fs[k]) ? 1 : 0;
        }
        break;
    case 3:
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->n - 1 - k; /* from the other end than the canceller */
            uint64_t x = rnd(&c->seed);
            if (x % 10 == 0) {
                if (pp_future_add_done_callback(c->fs[i], sh_cb, &c->fired[i]) == 0)
                    c->cb_added[i] = 1;
                else
                    c->rc = -1;
            }
        }
        break;
    }
    return NULL;
}

Test(stress, shared_futures_many_observers, PPT_FIXTURE, .timeout = 300)
{
    const size_t n = SH_N;
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.slots = 1024; /* part of them in the backlog */
    pp_executor *ex = NULL;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);

    pp_future **fs = calloc(n, sizeof *fs);
    pp_future **sorted = calloc(n, sizeof *sorted);
    size_t *sorted_idx = calloc(n, sizeof *sorted_idx);
    uint8_t *cancel_won = calloc(n, 1);
    _Atomic uint8_t *fired = calloc(n, sizeof *fired);
    uint8_t *cb_added = calloc(n, 1);
    cr_assert(fs && sorted && sorted_idx && cancel_won && fired && cb_added);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = i;
        int rc = pp_submit(ex, ppt_task_echo, &v, sizeof v, &fs[i]);
        cr_assert_eq(rc, 0, "submit %zu: %d %s", i, rc, pp_strerror(rc));
    }
    /* pointer -> index table */
    memcpy(sorted, fs, n * sizeof *fs);
    qsort(sorted, n, sizeof *sorted, cmp_ptr);
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if ((uintptr_t)sorted[mid] < (uintptr_t)fs[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        cr_assert(lo < n && sorted[lo] == fs[i]);
        sorted_idx[lo] = i;
    }

    enum { K = 5 };
    sh_ctx c[K];
    pthread_t th[K];
    int kinds[K] = {0, 0, 1, 2, 3};
    for (int k = 0; k < K; k++) {
        c[k] = (sh_ctx){.fs = fs,
                        .sorted = sorted,
                        .sorted_idx = sorted_idx,
                        .n = n,
                        .kind = kinds[k],
                        .seed = 0xA5A5A5A5ULL + (uint64_t)k,
                        .cancel_won = cancel_won,
                        .fired = fired,
                        .cb_added = cb_added};
        cr_assert_eq(pthread_create(&th[k], NULL, sh_thread, &c[k]), 0);
    }
    for (int k = 0; k < K; k++)
        join_within(th[k], 280.0, "an observer thread");

    for (int k = 0; k < 2; k++) {
        cr_expect_eq(c[k].rc, 0);
        cr_expect_eq(c[k].yielded, n, "as_completed %d yielded %zu of %zu", k, c[k].yielded, n);
        cr_expect_eq(c[k].dup, 0, "as_completed %d yielded %zu duplicates", k, c[k].dup);
        cr_expect_eq(c[k].unknown, 0);
        cr_expect_eq(c[k].not_done, 0, "as_completed %d yielded %zu unfinished futures", k, c[k].not_done);
        cr_expect_eq(c[k].end_rc, -ENOENT);
    }
    cr_expect_eq(c[2].rc, (int)n, "pp_wait(ALL) = %d", c[2].rc);
    cr_expect_eq(c[2].not_done, 0);
    cr_expect_eq(c[4].rc, 0, "add_done_callback failed");

    size_t ok = 0, cancelled = 0, bad = 0, mismatch = 0, registered = 0;
    for (size_t i = 0; i < n; i++) {
        const void *d = NULL;
        size_t sz = 0;
        int rc = pp_future_result(fs[i], 0.0, &d, &sz);
        if (rc == 0) {
            ok++;
            uint64_t v = 0;
            if (sz == sizeof v)
                memcpy(&v, d, sizeof v);
            bad += sz != sizeof v || v != i;
            mismatch += cancel_won[i];
        } else if (rc == -ECANCELED) {
            cancelled++;
            mismatch += !cancel_won[i];
        } else {
            cr_expect(false, "future %zu: %d %s", i, rc, pp_strerror(rc));
        }
        registered += cb_added[i];
    }
    cr_expect_eq(ok + cancelled, n);
    cr_expect_eq(bad, 0);
    cr_expect_eq(mismatch, 0, "%zu outcomes disagree with cancel()", mismatch);
    bool all = PPT_WAIT_FOR(atomic_load(&g_sh_fired) == registered, 30.0);
    cr_expect(all, "callbacks fired %llu, registered %zu", (unsigned long long)atomic_load(&g_sh_fired), registered);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(atomic_load(&fired[i]), cb_added[i], "future %zu: callback ran %d times", i,
                     (int)atomic_load(&fired[i]));
    cr_log_info("%zu shared futures: %zu ok, %zu cancelled, %zu callbacks", n, ok, cancelled, registered);

    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (size_t i = 0; i < n; i++)
        pp_future_release(fs[i]);
    free(fs);
    free(sorted);
    free(sorted_idx);
    free(cancel_won);
    free((void *)fired);
    free(cb_added);
}
