/*
 * test_core.c — the executor and future life-cycle: submit from many threads,
 * errors raised by tasks, shutdown, timeouts, states, the client backlog,
 * worker pinning, bad input, reference counting.
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* Two workers where the machine allows, else one. */
static int small_pool_size(void)
{
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    return n >= 2 ? 2 : 1;
}

static pp_executor *make_pool(int workers)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create(max_workers=%d): %d %s", workers, rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

static pp_future *submit_sleepy(pp_executor *ex, double seconds)
{
    return submit_ok(ex, ppt_task_sleepy, &seconds, sizeof seconds);
}

/* Checks an echo future returns exactly @arg. */
static void expect_echo(pp_future *f, const void *arg, size_t n)
{
    const void *d = NULL;
    size_t sz = 12345;
    int rc = pp_future_result(f, PP_FOREVER, &d, &sz);
    cr_assert_eq(rc, 0, "echo result: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(sz, n, "echo size %zu, expected %zu", sz, n);
    if (n)
        cr_assert(memcmp(d, arg, n) == 0, "echo bytes differ");
}

/* ------------------------------------------------------------------------ */
/* 100 000 tasks from 4 client threads                                      */
/* ------------------------------------------------------------------------ */

#define MT_THREADS 4
#define MT_PER_THREAD 25000

typedef struct mt_arg {
    uint32_t thread;
    uint32_t i;
} mt_arg;

typedef struct mt_ctx {
    pp_executor *ex;
    uint32_t id;
    long submit_err, result_err, value_err;
    int first_rc;
} mt_ctx;

static void *mt_client(void *p)
{
    mt_ctx *c = p;
    pp_future **fs = calloc(MT_PER_THREAD, sizeof *fs);
    if (!fs) {
        c->submit_err = MT_PER_THREAD;
        c->first_rc = -ENOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < MT_PER_THREAD; i++) {
        mt_arg a = {c->id, i};
        int rc = pp_submit(c->ex, ppt_task_hash64, &a, sizeof a, &fs[i]);
        if (rc != 0) {
            if (!c->first_rc)
                c->first_rc = rc;
            c->submit_err++;
            fs[i] = NULL;
        }
    }
    for (uint32_t i = 0; i < MT_PER_THREAD; i++) {
        if (!fs[i])
            continue;
        mt_arg a = {c->id, i};
        uint64_t want = ppt_fnv1a64(&a, sizeof a), got;
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], PP_FOREVER, &d, &n);
        if (rc != 0) {
            if (!c->first_rc)
                c->first_rc = rc;
            c->result_err++;
        } else if (n != sizeof got) {
            c->value_err++;
        } else {
            memcpy(&got, d, sizeof got);
            if (got != want)
                c->value_err++;
        }
        pp_future_release(fs[i]);
    }
    free(fs);
    return NULL;
}

Test(core, hundred_thousand_tasks_four_threads, PPT_FIXTURE, .timeout = 240)
{
    pp_executor *ex = make_pool(small_pool_size());
    pthread_t th[MT_THREADS];
    mt_ctx ctx[MT_THREADS];
    for (int k = 0; k < MT_THREADS; k++) {
        ctx[k] = (mt_ctx){.ex = ex, .id = (uint32_t)k};
        cr_assert_eq(pthread_create(&th[k], NULL, mt_client, &ctx[k]), 0);
    }
    for (int k = 0; k < MT_THREADS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < MT_THREADS; k++) {
        cr_expect_eq(ctx[k].submit_err, 0, "thread %d: %ld submit errors (first %d %s)", k,
                     ctx[k].submit_err, ctx[k].first_rc, pp_strerror(ctx[k].first_rc));
        cr_expect_eq(ctx[k].result_err, 0, "thread %d: %ld result errors (first %d %s)", k,
                     ctx[k].result_err, ctx[k].first_rc, pp_strerror(ctx[k].first_rc));
        cr_expect_eq(ctx[k].value_err, 0, "thread %d: %ld wrong results", k, ctx[k].value_err);
    }

    const uint64_t total = (uint64_t)MT_THREADS * MT_PER_THREAD;
    pp_stats st;
    int nw = pp_max_workers(ex);
    cr_assert_gt(nw, 0);
    pp_worker_stats ws[8];
    /* Counters are exact but may be published just after the futures; wait
     * for them to settle rather than sleeping. */
    bool settled = PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 0 && st.completed >= total, 5.0);
    cr_expect(settled, "stats.completed = %llu, expected %llu", (unsigned long long)st.completed,
              (unsigned long long)total);
    cr_expect_eq(st.completed, total, "stats.completed = %llu", (unsigned long long)st.completed);
    cr_expect_eq(st.submitted, total, "stats.submitted = %llu", (unsigned long long)st.submitted);
    cr_expect_eq(st.failed, 0);
    cr_expect_eq(st.cancelled, 0);
    cr_expect_eq(st.workers, nw);
    int got = pp_executor_stats(ex, NULL, ws, nw < 8 ? nw : 8);
    cr_expect_eq(got, nw, "pp_executor_stats returned %d", got);
    uint64_t sum = 0;
    for (int w = 0; w < got && w < 8; w++)
        sum += ws[w].tasks;
    if (nw <= 8)
        cr_expect_eq(sum, total, "sum of per-worker tasks = %llu", (unsigned long long)sum);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* tasks that raise                                                         */
/* ------------------------------------------------------------------------ */

Test(core, task_raise_and_nonzero_return, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(small_pool_size());

    pp_future *f = submit_ok(ex, ppt_task_raiser, NULL, 0);
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, PP_FOREVER, &d, &n);
    cr_assert_eq(rc, PP_ETASK, "raiser: got %d %s", rc, pp_strerror(rc));
    cr_expect(pp_future_done(f));
    cr_expect(!pp_future_running(f));
    pp_exception exc;
    memset(&exc, 0x5a, sizeof exc);
    rc = pp_future_exception(f, PP_FOREVER, &exc);
    cr_assert_eq(rc, 0, "pp_future_exception: %d", rc);
    cr_expect_eq(exc.error, PP_ETASK, "exc.error = %d", exc.error);
    cr_expect_eq(exc.code, 42, "exc.code = %d", exc.code);
    cr_assert_not_null(exc.message);
    cr_expect_str_eq(exc.message, "bad value 7");
    cr_expect_gt(exc.pid, 0, "exc.pid = %d", (int)exc.pid);
    cr_expect_neq(exc.pid, getpid());
    pp_future_release(f);

    f = submit_ok(ex, ppt_task_returns_nonzero, NULL, 0);
    rc = pp_future_result(f, PP_FOREVER, NULL, NULL);
    cr_assert_eq(rc, PP_ETASK, "returns_nonzero: got %d %s", rc, pp_strerror(rc));
    memset(&exc, 0x5a, sizeof exc);
    cr_assert_eq(pp_future_exception(f, PP_FOREVER, &exc), 0);
    cr_expect_eq(exc.error, PP_ETASK);
    cr_expect_eq(exc.code, 5, "exc.code = %d", exc.code);
    cr_assert_not_null(exc.message);
    cr_expect_gt(exc.pid, 0);
    pp_future_release(f);

    /* The pool goes on. */
    const char msg[] = "still alive";
    f = submit_ok(ex, ppt_task_echo, msg, sizeof msg);
    expect_echo(f, msg, sizeof msg);
    /* A successful future's exception: error 0, a message, the worker pid. */
    memset(&exc, 0x5a, sizeof exc);
    cr_assert_eq(pp_future_exception(f, PP_FOREVER, &exc), 0);
    cr_expect_eq(exc.error, 0);
    cr_expect_eq(exc.code, 0);
    cr_expect_not_null(exc.message);
    cr_expect_gt(exc.pid, 0);
    pp_future_release(f);

    pp_stats st;
    cr_assert(PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 0 && st.failed >= 2 && st.completed >= 1,
                           5.0),
              "stats: failed %llu completed %llu", (unsigned long long)st.failed,
              (unsigned long long)st.completed);
    cr_expect_eq(st.failed, 2);
    cr_expect_eq(st.completed, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* shutdown                                                                 */
/* ------------------------------------------------------------------------ */

Test(core, submit_after_shutdown, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(small_pool_size());
    const int v = 17;
    pp_future *f = submit_ok(ex, ppt_task_echo, &v, sizeof v);

    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    /* wait=true: the task finished, the processes are gone. */
    cr_expect(pp_future_done(f));
    expect_echo(f, &v, sizeof v);
    pid_t left[8];
    int nleft = ppt_count_children(true, left, 8);
    cr_expect_eq(nleft, 0, "%d live child process(es) after pp_shutdown(wait=true) (first pid %d)", nleft,
                 nleft > 0 ? (int)left[0] : 0);

    pp_future *g = (pp_future *)(uintptr_t)0x1;
    int rc = pp_submit(ex, ppt_task_echo, &v, sizeof v, &g);
    cr_expect_eq(rc, -ESHUTDOWN, "submit after shutdown: %d %s", rc, pp_strerror(rc));
    cr_expect_null(g, "*out must be NULL on error");

    cr_expect_eq(pp_shutdown(ex, true, false), 0, "second shutdown");
    cr_expect_eq(pp_shutdown(ex, false, true), 0, "third shutdown");
    g = (pp_future *)(uintptr_t)0x1;
    rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    cr_expect_eq(rc, -ESHUTDOWN);
    cr_expect_null(g);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(f);
}

/* ------------------------------------------------------------------------ */
/* timeouts and states                                                       */
/* ------------------------------------------------------------------------ */

Test(core, result_timeout_then_complete, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_sleepy(ex, 0.5);

    double t0 = ppt_now();
    const void *d = (const void *)(uintptr_t)0x1;
    size_t n = 99;
    int rc = pp_future_result(f, 0.05, &d, &n);
    double dt = ppt_now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "result(timeout 0.05) on a 0.5 s task: %d %s", rc, pp_strerror(rc));
    /* A timed wait must not give up early (clock sanity, not speed). */
    cr_expect_geq(dt, 0.045, "returned -ETIMEDOUT after %.4f s", dt);
    cr_expect(!pp_future_done(f));
    rc = pp_future_result(f, 0.0, NULL, NULL);
    cr_expect_eq(rc, -ETIMEDOUT, "zero timeout on a running task: %d", rc);
    pp_exception exc;
    rc = pp_future_exception(f, 0.01, &exc);
    cr_expect_eq(rc, -ETIMEDOUT, "pp_future_exception(timeout): %d", rc);

    /* RUNNING once a worker took it; poll with a deadline. */
    bool running = PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 5.0) && pp_future_running(f);
    cr_expect(running, "the future never reported running (done=%d)", pp_future_done(f));

    rc = pp_future_result(f, PP_FOREVER, &d, &n);
    cr_assert_eq(rc, 0, "same future later: %d %s", rc, pp_strerror(rc));
    cr_expect_eq(n, 0, "sleepy sets no result: size %zu", n);
    cr_expect(pp_future_done(f));
    cr_expect(!pp_future_running(f));
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, done_and_running_on_finished_future, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(small_pool_size());
    pp_future *f = submit_ok(ex, ppt_task_noop, NULL, 0);
    const void *d = NULL;
    size_t n = 7;
    cr_assert_eq(pp_future_result(f, PP_FOREVER, &d, &n), 0);
    cr_expect_eq(n, 0);
    cr_expect(pp_future_done(f));
    cr_expect(!pp_future_running(f));
    /* Asking again gives the same answer at once. */
    cr_expect_eq(pp_future_result(f, 0.0, NULL, NULL), 0);
    cr_expect_eq(pp_future_result(f, 1.0, NULL, NULL), 0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Several threads wait on one future at the same time. */
typedef struct waiter_ctx {
    pp_future *f;
    int rc;
} waiter_ctx;

static void *waiter(void *p)
{
    waiter_ctx *w = p;
    w->rc = pp_future_result(w->f, PP_FOREVER, NULL, NULL);
    return NULL;
}

Test(core, many_threads_wait_one_future, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_sleepy(ex, 0.2);
    pthread_t th[4];
    waiter_ctx w[4];
    for (int k = 0; k < 4; k++) {
        w[k] = (waiter_ctx){.f = f, .rc = 12345};
        cr_assert_eq(pthread_create(&th[k], NULL, waiter, &w[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        cr_expect_eq(w[k].rc, 0, "waiter %d: %d %s", k, w[k].rc, pp_strerror(w[k].rc));
    }
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* client backlog                                                            */
/* ------------------------------------------------------------------------ */

static void check_hash_future(pp_future *f, uint32_t i)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, PP_FOREVER, &d, &n);
    cr_assert_eq(rc, 0, "task %u: %d %s", i, rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(uint64_t), "task %u: size %zu", i, n);
    uint64_t got;
    memcpy(&got, d, sizeof got);
    cr_assert_eq(got, ppt_fnv1a64(&i, sizeof i), "task %u: wrong hash", i);
}

Test(core, backlog_more_tasks_than_slots, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.slots = 64;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 10000 };
    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (uint32_t i = 0; i < N; i++)
        fs[i] = submit_ok(ex, ppt_task_hash64, &i, sizeof i);
    for (uint32_t i = 0; i < N; i++) {
        check_hash_future(fs[i], i);
        pp_future_release(fs[i]);
    }
    free(fs);
    pp_stats st;
    cr_expect(PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 0 && st.completed >= N, 5.0));
    cr_expect_eq(st.completed, N);
    cr_expect_eq(st.backlog, 0, "backlog %llu after everything finished", (unsigned long long)st.backlog);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, backlog_wait_last_first_all_held, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.slots = 64;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 5000 };
    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (uint32_t i = 0; i < N; i++)
        fs[i] = submit_ok(ex, ppt_task_hash64, &i, sizeof i);
    /* Every future is still held: slots must still recycle, and waiting on
     * the last (deep in the backlog) must not deadlock. */
    check_hash_future(fs[N - 1], N - 1);
    for (uint32_t i = 0; i < N; i++)
        check_hash_future(fs[i], i);
    for (uint32_t i = 0; i < N; i++)
        pp_future_release(fs[i]);
    free(fs);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/*
 * Threads that release finished futures while a backlog exists bind the
 * backlog's head into the slot they free (ppi_backlog_help), besides the
 * service thread. Race that against pp_shutdown(wait): it must wait for every
 * entry such a thread took off the backlog (stop is sent only once the
 * backlog is empty, and a helper's take and bind are one step under the
 * backlog lock), and with cancel_futures every future ends exactly once,
 * run or cancelled, none lost, none run after being reported cancelled.
 */
enum { HELP_THREADS = 4, HELP_PER_THREAD = 3000 };

typedef struct {
    pp_executor *ex;
    pthread_barrier_t *submitted;
    uint32_t first;
    int ok, cancelled, wrong;
} help_client;

static void *help_client_main(void *arg)
{
    help_client *c = arg;
    pp_future **fs = calloc(HELP_PER_THREAD, sizeof *fs);
    for (uint32_t i = 0; fs && i < HELP_PER_THREAD; i++) {
        uint32_t x = c->first + i;
        if (pp_submit(c->ex, ppt_task_hash64, &x, sizeof x, &fs[i]) != 0)
            c->wrong++;
    }
    pthread_barrier_wait(c->submitted);
    /* Collect in order and release each at once: every release frees a slot
     * while the backlog is deep, so this thread feeds it. */
    for (uint32_t i = 0; fs && i < HELP_PER_THREAD; i++) {
        if (!fs[i])
            continue;
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], 60.0, &d, &n);
        uint32_t x = c->first + i;
        uint64_t got = 0;
        if (rc == 0 && n == sizeof got)
            memcpy(&got, d, sizeof got);
        if (rc == 0 && n == sizeof got && got == ppt_fnv1a64(&x, sizeof x))
            c->ok++;
        else if (rc == -ECANCELED)
            c->cancelled++;
        else
            c->wrong++;
        pp_future_release(fs[i]);
    }
    free(fs);
    return NULL;
}

static void releasing_threads_race_shutdown(bool cancel_futures)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.slots = 8;
    pp_executor *ex = make_pool_cfg(&cfg);
    pthread_barrier_t submitted;
    pthread_barrier_init(&submitted, NULL, HELP_THREADS + 1);
    help_client c[HELP_THREADS];
    pthread_t th[HELP_THREADS];
    for (int t = 0; t < HELP_THREADS; t++) {
        c[t] = (help_client){.ex = ex, .submitted = &submitted,
                             .first = (uint32_t)t * HELP_PER_THREAD};
        cr_assert_eq(pthread_create(&th[t], NULL, help_client_main, &c[t]), 0);
    }
    pthread_barrier_wait(&submitted);
    /* Every submission is in (most in the backlog); the threads now release. */
    cr_assert_eq(pp_shutdown(ex, true, cancel_futures), 0);
    pp_stats st;
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 0);
    cr_expect_eq(st.backlog, 0, "backlog %llu after shutdown(wait)", (unsigned long long)st.backlog);
    cr_expect_eq(st.completed + st.cancelled, (uint64_t)HELP_THREADS * HELP_PER_THREAD,
                 "completed %llu + cancelled %llu after shutdown(wait)",
                 (unsigned long long)st.completed, (unsigned long long)st.cancelled);
    int ok = 0, cancelled = 0, wrong = 0;
    for (int t = 0; t < HELP_THREADS; t++) {
        pthread_join(th[t], NULL);
        ok += c[t].ok;
        cancelled += c[t].cancelled;
        wrong += c[t].wrong;
    }
    pthread_barrier_destroy(&submitted);
    cr_expect_eq(wrong, 0, "%d futures failed or returned a wrong result", wrong);
    cr_expect_eq(ok + cancelled, HELP_THREADS * HELP_PER_THREAD, "%d ok + %d cancelled", ok,
                 cancelled);
    cr_expect_eq((uint64_t)ok, st.completed);
    cr_expect_eq((uint64_t)cancelled, st.cancelled);
    if (!cancel_futures)
        cr_expect_eq(cancelled, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, backlog_fed_by_releasing_threads_while_shutdown_waits, PPT_FIXTURE, .timeout = 120)
{
    releasing_threads_race_shutdown(false);
}

Test(core, backlog_fed_by_releasing_threads_while_shutdown_cancels, PPT_FIXTURE, .timeout = 120)
{
    releasing_threads_race_shutdown(true);
}

/* The same with the default slot count (all held, wait on the last). */
Test(core, default_slots_wait_last_first_all_held, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool(small_pool_size());
    enum { N = 5000 };
    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (uint32_t i = 0; i < N; i++)
        fs[i] = submit_ok(ex, ppt_task_hash64, &i, sizeof i);
    check_hash_future(fs[N - 1], N - 1);
    for (uint32_t i = 0; i < N; i++) {
        check_hash_future(fs[i], i);
        pp_future_release(fs[i]);
    }
    free(fs);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* pinning                                                                   */
/* ------------------------------------------------------------------------ */

static int first_cpu(const cpu_set_t *s)
{
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, s))
            return c;
    return -1;
}

/* Probes every worker (by pp_task_worker) and checks its affinity against
 * pp_executor_stats. @exactly_one: each mask must hold exactly one CPU. */
static void check_affinity(pp_config *cfg, bool exactly_one)
{
    cpu_set_t allowed;
    ppt_allowed_cpus(&allowed);
    pp_executor *ex = make_pool_cfg(cfg);
    int nw = pp_max_workers(ex);
    cr_assert_eq(nw, cfg->max_workers);

    ppt_affinity seen[2];
    bool got[2] = {false, false};
    int ngot = 0;
    double dl = ppt_deadline(30.0);
    while (ngot < nw && !ppt_expired(dl)) {
        pp_future *fs[2];
        double pause = 0.05; /* keeps one worker busy while the other probes */
        for (int k = 0; k < nw; k++)
            fs[k] = submit_ok(ex, ppt_task_affinity, &pause, sizeof pause);
        for (int k = 0; k < nw; k++) {
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_result(fs[k], PP_FOREVER, &d, &n);
            cr_assert_eq(rc, 0, "probe: %d %s", rc, pp_strerror(rc));
            cr_assert_eq(n, sizeof(ppt_affinity));
            ppt_affinity a;
            memcpy(&a, d, sizeof a);
            cr_assert(a.worker >= 0 && a.worker < nw, "pp_task_worker = %d", a.worker);
            if (!got[a.worker]) {
                got[a.worker] = true;
                seen[a.worker] = a;
                ngot++;
            }
            pp_future_release(fs[k]);
        }
    }
    cr_assert_eq(ngot, nw, "only %d of %d workers ran a probe", ngot, nw);

    pp_stats st;
    pp_worker_stats ws[2];
    memset(ws, 0, sizeof ws);
    cr_assert_eq(pp_executor_stats(ex, &st, ws, 2), nw);
    cr_expect_eq(st.workers, nw);
    for (int w = 0; w < nw; w++) {
        int cnt = CPU_COUNT(&seen[w].mask);
        if (exactly_one)
            cr_expect_eq(cnt, 1, "worker %d is bound to %d CPUs", w, cnt);
        else
            cr_expect_geq(cnt, 1);
        cpu_set_t outside;
        CPU_XOR(&outside, &seen[w].mask, &allowed);
        CPU_AND(&outside, &outside, &seen[w].mask);
        cr_expect_eq(CPU_COUNT(&outside), 0, "worker %d bound outside the allowed CPUs", w);
        cr_expect_gt(seen[w].pid, 0);
        cr_expect_neq(seen[w].pid, getpid());
        cr_expect_eq(ws[w].pid, seen[w].pid, "stats pid %d, probe pid %d (worker %d)", (int)ws[w].pid,
                     (int)seen[w].pid, w);
        cr_expect_eq(ws[w].cpu, first_cpu(&seen[w].mask), "stats cpu %d, probe first cpu %d (worker %d)",
                     ws[w].cpu, first_cpu(&seen[w].mask), w);
        for (int v = 0; v < w; v++) {
            cpu_set_t both;
            CPU_AND(&both, &seen[w].mask, &seen[v].mask);
            cr_expect_eq(CPU_COUNT(&both), 0, "workers %d and %d share a CPU", v, w);
            cr_expect_neq(seen[w].pid, seen[v].pid);
        }
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, worker_affinity_default_policy, PPT_FIXTURE, .timeout = 60)
{
    cpu_set_t allowed;
    int ncpu = ppt_allowed_cpus(&allowed);
    cr_assert_gt(ncpu, 0);
    pp_config cfg;
    ppt_config(&cfg, ncpu < 2 ? ncpu : 2);
    /* Default (compact, one per core): exactly one CPU each where the allowed
     * CPUs have no SMT siblings (as on the CI machine). */
    check_affinity(&cfg, ppt_cpus_without_smt(&allowed));
}

Test(core, worker_affinity_per_pu, PPT_FIXTURE, .timeout = 60)
{
    cpu_set_t allowed;
    int ncpu = ppt_allowed_cpus(&allowed);
    cr_assert_gt(ncpu, 0);
    pp_config cfg;
    ppt_config(&cfg, ncpu < 2 ? ncpu : 2);
    cfg.pin = PP_PIN_PUS;
    check_affinity(&cfg, true);
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                 */
/* ------------------------------------------------------------------------ */

Test(core, bad_input_create, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    cr_expect_eq(pp_executor_create(NULL, NULL), -EINVAL);
    ppt_config(&cfg, 1);
    cr_expect_eq(pp_executor_create(NULL, &cfg), -EINVAL);

    pp_executor *ex = (pp_executor *)(uintptr_t)0x1;
    ppt_config(&cfg, -1);
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "max_workers = -1");
    cr_expect_null(ex, "*out must be NULL on failure");

    ex = (pp_executor *)(uintptr_t)0x1;
    ppt_config(&cfg, 4097);
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "max_workers = 4097");
    cr_expect_null(ex);

    ex = (pp_executor *)(uintptr_t)0x1;
    ppt_config(&cfg, 1);
    cfg.pin = (pp_pin_policy)99;
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "pin policy 99");
    cr_expect_null(ex);

    ex = (pp_executor *)(uintptr_t)0x1;
    ppt_config(&cfg, 1);
    cfg.start_method = (pp_start_method)99;
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "start method 99");
    cr_expect_null(ex);

    /* NULL executors everywhere. */
    cr_expect_eq(pp_shutdown(NULL, true, false), -EINVAL);
    cr_expect_eq(pp_executor_destroy(NULL), -EINVAL);
    cr_expect_eq(pp_max_workers(NULL), -EINVAL);
    pp_stats st;
    cr_expect_eq(pp_executor_stats(NULL, &st, NULL, 0), -EINVAL);
    pp_future_release(NULL); /* ignored */
}

Test(core, bad_input_submit_and_result, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    int v = 3;
    pp_future *f = (pp_future *)(uintptr_t)0x1;
    cr_expect_eq(pp_submit(NULL, ppt_task_echo, &v, sizeof v, &f), -EINVAL, "NULL executor");
    cr_expect_null(f);
    f = (pp_future *)(uintptr_t)0x1;
    cr_expect_eq(pp_submit(ex, NULL, &v, sizeof v, &f), -EINVAL, "NULL fn");
    cr_expect_null(f);
    cr_expect_eq(pp_submit(ex, ppt_task_echo, &v, sizeof v, NULL), -EINVAL, "NULL out");
    f = (pp_future *)(uintptr_t)0x1;
    cr_expect_eq(pp_submit(ex, ppt_task_echo, NULL, 4, &f), -EINVAL, "NULL arg, size 4");
    cr_expect_null(f);

    pp_stats st;
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 1);
    cr_expect_eq(st.submitted, 0, "rejected submissions were counted: %llu", (unsigned long long)st.submitted);

    /* NULL arg with size 0 is fine. */
    f = submit_ok(ex, ppt_task_echo, NULL, 0);
    expect_echo(f, NULL, 0);

    cr_expect_eq(pp_future_result(f, NAN, NULL, NULL), -EINVAL, "NaN timeout");
    pp_exception exc;
    cr_expect_eq(pp_future_exception(f, NAN, &exc), -EINVAL, "NaN timeout (exception)");
    cr_expect_eq(pp_future_exception(f, PP_FOREVER, NULL), -EINVAL, "NULL exception");
    pp_future_release(f);

    /* NaN on a future that is still pending is refused too (not a wait). */
    f = submit_sleepy(ex, 0.2);
    cr_expect_eq(pp_future_result(f, NAN, NULL, NULL), -EINVAL);
    /* Any negative timeout means forever. */
    cr_expect_eq(pp_future_result(f, -5.0, NULL, NULL), 0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, strerror_names_every_code, .timeout = 10)
{
    const int codes[] = {0,          PP_EBROKEN, PP_ETASK,   PP_EWORKER, PP_EKILLED, PP_ETOOBIG,
                         -EINVAL,    -ETIMEDOUT, -ECANCELED, -ESHUTDOWN, -ENOMEM};
    const size_t nc = sizeof codes / sizeof codes[0];
    const char *unknown = pp_strerror(-123456);
    cr_assert_not_null(unknown);
    cr_expect_not_null(pp_strerror(777777));
    for (size_t i = 0; i < nc; i++) {
        const char *s = pp_strerror(codes[i]);
        cr_assert_not_null(s, "pp_strerror(%d) is NULL", codes[i]);
        cr_expect_gt(strlen(s), 0, "pp_strerror(%d) is empty", codes[i]);
        cr_expect(strcmp(s, unknown) != 0, "pp_strerror(%d) = \"%s\" (the unknown string)", codes[i], s);
        cr_expect(strstr(s, "nknown") == NULL, "pp_strerror(%d) = \"%s\"", codes[i], s);
        for (size_t j = 0; j < i; j++)
            cr_expect(strcmp(s, pp_strerror(codes[j])) != 0, "pp_strerror(%d) == pp_strerror(%d) = \"%s\"",
                      codes[i], codes[j], s);
    }
}

/* ------------------------------------------------------------------------ */
/* sizing                                                                    */
/* ------------------------------------------------------------------------ */

Test(core, max_workers_as_configured, PPT_FIXTURE, .timeout = 60)
{
    for (int w = 1; w <= small_pool_size(); w++) {
        pp_executor *ex = make_pool(w);
        cr_expect_eq(pp_max_workers(ex), w);
        pp_stats st;
        cr_expect_eq(pp_executor_stats(ex, &st, NULL, 0), w);
        cr_expect_eq(st.workers, w);
        cr_assert_eq(pp_executor_destroy(ex), 0);
    }
    pp_executor *ex = make_pool(0);
    int n = pp_max_workers(ex);
    cr_expect_geq(n, 1, "default max_workers = %d", n);
    cpu_set_t s;
    cr_expect_leq(n, ppt_allowed_cpus(&s), "default %d workers exceeds the allowed CPUs", n);
    /* And it works. */
    const int v = 11;
    pp_future *f = submit_ok(ex, ppt_task_echo, &v, sizeof v);
    expect_echo(f, &v, sizeof v);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);

    /* A NULL config means the defaults. */
    ex = NULL;
    cr_assert_eq(pp_executor_create(&ex, NULL), 0);
    cr_expect_eq(pp_max_workers(ex), n);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* ownership                                                                 */
/* ------------------------------------------------------------------------ */

Test(core, future_outlives_executor, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(small_pool_size());
    const char small[] = "the future outlives its executor";
    pp_future *f = submit_ok(ex, ppt_task_echo, small, sizeof small);
    const void *d = NULL;
    size_t n = 0;
    cr_assert_eq(pp_future_result(f, PP_FOREVER, &d, &n), 0);
    cr_assert_eq(n, sizeof small);

    /* A large one (arena), whose result is asked for only after destroy. */
    enum { BIG = 256 * 1024 };
    unsigned char *big = malloc(BIG);
    cr_assert_not_null(big);
    ppt_fill_seeded(big, BIG, 99);
    pp_future *g = submit_ok(ex, ppt_task_echo, big, BIG);

    cr_assert_eq(pp_executor_destroy(ex), 0);
    ex = NULL;

    cr_expect(memcmp(d, small, sizeof small) == 0, "result bytes changed after destroy");
    cr_expect(pp_future_done(g));
    const void *d2 = NULL;
    size_t n2 = 0;
    int rc = pp_future_result(g, 5.0, &d2, &n2);
    cr_expect_eq(rc, 0, "result after destroy: %d %s", rc, pp_strerror(rc));
    if (rc == 0) {
        cr_expect_eq(n2, (size_t)BIG);
        cr_expect(n2 == BIG && memcmp(d2, big, BIG) == 0, "big result bytes differ");
    }
    /* Re-read the first result through the API as well. */
    cr_expect_eq(pp_future_result(f, 0.0, &d, &n), 0);
    cr_expect(n == sizeof small && memcmp(d, small, n) == 0);
    pp_future_release(f);
    pp_future_release(g);
    free(big);
}

Test(core, future_ref_release_pairs, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(small_pool_size());
    const int v = 1234;
    pp_future *f = submit_ok(ex, ppt_task_echo, &v, sizeof v);
    pp_future *r1 = pp_future_ref(f);
    pp_future *r2 = pp_future_ref(f);
    cr_assert_eq(r1, f);
    cr_assert_eq(r2, f);
    pp_future_release(r1);
    expect_echo(f, &v, sizeof v);
    const void *d = NULL;
    size_t n = 0;
    cr_assert_eq(pp_future_result(f, PP_FOREVER, &d, &n), 0);
    pp_future_release(f); /* one reference (r2) left: data still valid */
    cr_expect_eq(n, sizeof v);
    cr_expect(memcmp(d, &v, sizeof v) == 0, "result changed while a reference was held");
    expect_echo(r2, &v, sizeof v);
    pp_future_release(r2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, release_running_and_queued_futures, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_sleepy(ex, 0.2);
    const int v = 5;
    pp_future *q = submit_ok(ex, ppt_task_echo, &v, sizeof v); /* queued behind f */
    cr_assert(PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 10.0));
    cr_expect(pp_future_running(f), "sleepy(0.2) finished before it was seen running");
    pp_future_release(f); /* still running: goes on, result discarded */
    pp_future_release(q); /* still queued */
    /* The pool still works. */
    pp_future *g = submit_ok(ex, ppt_task_echo, &v, sizeof v);
    expect_echo(g, &v, sizeof v);
    pp_future_release(g);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, release_running_then_destroy, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    pp_future *f = submit_sleepy(ex, 0.2);
    cr_assert(PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 10.0));
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* shutdown with cancel / without wait                                       */
/* ------------------------------------------------------------------------ */

Test(core, shutdown_wait_cancel_futures, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    enum { N = 50 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_sleepy(ex, 0.05);
    /* Let the first one start, so at least one completes. */
    cr_assert(PPT_WAIT_FOR(pp_future_running(fs[0]) || pp_future_done(fs[0]), 10.0));

    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    pid_t left[8];
    int nleft = ppt_count_children(true, left, 8);
    cr_expect_eq(nleft, 0, "%d live child process(es) after pp_shutdown(wait=true)", nleft);

    int ncompleted = 0, ncancelled = 0;
    for (int i = 0; i < N; i++) {
        cr_expect(pp_future_done(fs[i]), "future %d not done after shutdown(wait=true)", i);
        cr_expect(!pp_future_running(fs[i]), "future %d still running", i);
        int rc = pp_future_result(fs[i], 5.0, NULL, NULL);
        pp_exception exc;
        memset(&exc, 0, sizeof exc);
        int erc = pp_future_exception(fs[i], 5.0, &exc);
        cr_expect_eq(erc, 0);
        cr_expect_eq(exc.error, rc, "future %d: exception error %d, result %d", i, exc.error, rc);
        if (rc == 0) {
            ncompleted++;
            cr_expect_gt(exc.pid, 0, "completed future %d without a worker pid", i);
        } else if (rc == -ECANCELED) {
            ncancelled++;
            cr_expect_eq(exc.pid, 0, "cancelled future %d has pid %d (a worker ran it?)", i, (int)exc.pid);
            cr_expect_not_null(exc.message);
        } else {
            cr_expect(false, "future %d: %d %s (expected 0 or -ECANCELED)", i, rc, pp_strerror(rc));
        }
    }
    cr_expect_geq(ncompleted, 1, "none completed");
    cr_expect_geq(ncancelled, 1, "none cancelled (%d completed)", ncompleted);
    cr_expect_eq(ncompleted + ncancelled, N);

    pp_stats st;
    if (pp_executor_stats(ex, &st, NULL, 0) >= 0) {
        cr_expect_eq(st.cancelled, (uint64_t)ncancelled, "stats.cancelled %llu, futures %d",
                     (unsigned long long)st.cancelled, ncancelled);
        cr_expect_eq(st.completed, (uint64_t)ncompleted, "stats.completed %llu, futures %d",
                     (unsigned long long)st.completed, ncompleted);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
}

Test(core, shutdown_nowait_work_still_resolves, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    enum { NS = 10, NH = 10 };
    pp_future *sl[NS], *hs[NH];
    for (int i = 0; i < NS; i++)
        sl[i] = submit_sleepy(ex, 0.1);
    for (uint32_t i = 0; i < NH; i++)
        hs[i] = submit_ok(ex, ppt_task_hash64, &i, sizeof i);

    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    double dt = ppt_now() - t0;
    /* ~1 s of work is queued on one worker: it cannot all be done yet. */
    cr_expect(!pp_future_done(hs[NH - 1]), "shutdown(wait=false) waited for the work (%.3f s)", dt);
    cr_expect_lt(dt, PPT_PROMPT(0.5), "shutdown(wait=false) took %.3f s", dt);

    pp_future *g = (pp_future *)(uintptr_t)0x1;
    cr_expect_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &g), -ESHUTDOWN);
    cr_expect_null(g);

    for (int i = 0; i < NS; i++) {
        int rc = pp_future_result(sl[i], 30.0, NULL, NULL);
        cr_expect_eq(rc, 0, "sleepy %d: %d %s", i, rc, pp_strerror(rc));
    }
    for (uint32_t i = 0; i < NH; i++)
        check_hash_future(hs[i], i);
    for (int i = 0; i < NS; i++)
        pp_future_release(sl[i]);
    for (int i = 0; i < NH; i++)
        pp_future_release(hs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(core, shutdown_nowait_then_wait, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    enum { N = 5 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_sleepy(ex, 0.05);
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    /* A later wait=true still waits. */
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    for (int i = 0; i < N; i++) {
        cr_expect(pp_future_done(fs[i]), "future %d not done after shutdown(wait=true)", i);
        cr_expect_eq(pp_future_result(fs[i], 0.0, NULL, NULL), 0);
    }
    int nleft = ppt_count_children(true, NULL, 0);
    cr_expect_eq(nleft, 0, "%d live child process(es) after pp_shutdown(wait=true)", nleft);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
}

Test(core, shutdown_cancel_running_task_sees_should_stop, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1);
    double max = 20.0;
    pp_future *f = submit_ok(ex, ppt_task_until_stop, &max, sizeof max);
    pp_future *q = submit_sleepy(ex, 0.01); /* queued behind: cancelled */
    cr_assert(PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 10.0));
    cr_assert(pp_future_running(f));
    cr_assert_eq(pp_shutdown(ex, true, true), 0);
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, 5.0, &d, &n);
    cr_assert_eq(rc, 0, "running task: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(int32_t));
    int32_t seen;
    memcpy(&seen, d, sizeof seen);
    cr_expect_eq(seen, 1, "the running task never saw pp_task_should_stop()");
    rc = pp_future_result(q, 5.0, NULL, NULL);
    cr_expect_eq(rc, -ECANCELED, "queued task: %d %s", rc, pp_strerror(rc));
    pp_future_release(f);
    pp_future_release(q);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
