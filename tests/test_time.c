/*
 * test_time.c — timeouts at the edges of double, and what a failed future or
 * a broken pool reports (issue 11, items 7, 8, 15, 23, 24, 25).
 *
 * Suite "time": timeouts of every kind (per-task timeout and kill grace,
 * pp_future_result / pp_future_exception, pp_wait, as_completed, map) at
 * +inf, DBL_MAX, 1e300, past 2^64 ns, and under a nanosecond (1e-12,
 * denormals); a future whose slot word was overwritten fails with -EPROTO
 * within its timeout instead of spinning.
 *
 * Suite "outcome": pp_exception's pid (never negative: 0 when no worker ran
 * the task, after pp_terminate_workers / pp_kill_workers too), its code kind
 * (exit(0) is told from "no code"), the message limit PP_MESSAGE_MAX (task,
 * map item, whatever the inline size), and pp_executor_broken_cause.
 *
 * Every test works under fork, spawn and forkserver (PPOOL_START_METHOD).
 * The slot-corruption tests reach the shared segment through the runtime's
 * internal headers (the suites link the static library).
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"  /* struct pp_future: the slot a future is bound to */
#include "segment.h" /* ppi_slot_at, the state word */
#include "sync.h"    /* ppi_s_to_ns, ppi_add_sat */

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* Timeouts that mean "no limit" although positive. */
static const double k_huge[] = {INFINITY, DBL_MAX, 1e300, 2e10, 1.8446744073709552e10};
/* Timeouts under a nanosecond: "now". */
static const double k_tiny[] = {1e-12, 5e-324 /* smallest denormal */, DBL_MIN, 1e-10};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static pp_executor *make_pool(int workers, pp_death_policy policy)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cfg.pin = PP_PIN_NONE;
    cfg.on_worker_death = policy;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

static pp_future *submit_sleep(pp_executor *ex, double s, const pp_submit_opts *o)
{
    pp_future *f = NULL;
    int rc = pp_submit_ex(ex, ppt_task_sleepy, &s, sizeof s, o, &f);
    cr_assert_eq(rc, 0, "pp_submit_ex: %s", pp_strerror(rc));
    return f;
}

/* ---- task functions --------------------------------------------------- */

/* Argument = int status: _exit(status) (no atexit handlers, no LSan). */
static int task_exit(pp_task *t)
{
    int st = 0;
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    if (n >= sizeof st)
        memcpy(&st, a, sizeof st);
    _exit(st);
}

/* Initializer: block SIGTERM in the worker before any task runs, so that a
 * killed task lives through its grace period unless SIGKILLed. */
static int init_block_term(const void *a, size_t n)
{
    (void)a;
    (void)n;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    return sigprocmask(SIG_BLOCK, &set, NULL) == 0 ? 0 : 1;
}

/* Argument = double seconds: sleep that long, return 0 (in a pool made by
 * term_proof_pool, SIGTERM is blocked). */
static int task_term_proof(pp_task *t)
{
    return ppt_task_sleepy(t);
}

static pp_executor *term_proof_pool(void)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin = PP_PIN_NONE;
    cfg.on_worker_death = PP_DEATH_RESPAWN;
    cfg.initializer = init_block_term;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

/* The message of length @len used by the raise tests: 'a'..'z' repeated. */
static void fill_msg(char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + i % 26);
    buf[len] = '\0';
}

/* Argument = size_t len: pp_task_raise with a message of that many bytes. */
static int task_raise_len(pp_task *t)
{
    size_t len = 0, n = 0;
    const void *a = pp_task_arg(t, &n);
    if (n >= sizeof len)
        memcpy(&len, a, sizeof len);
    char buf[4096];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    fill_msg(buf, len);
    return pp_task_raise(t, 7, "%s", buf);
}

/* Map item = size_t len: pp_map_raise with a message of that many bytes. */
static int item_raise_len(pp_map_item *it)
{
    size_t len;
    memcpy(&len, it->in[0], sizeof len);
    char buf[4096];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    fill_msg(buf, len);
    return pp_map_raise(it, 9, "%s", buf);
}

static int item_identity(pp_map_item *it)
{
    memcpy(it->out, it->in[0], sizeof(double));
    return 0;
}

static int init_fails(const void *a, size_t n)
{
    (void)a;
    (void)n;
    return 3;
}

/* ======================================================================== */
/* suite time: the conversion itself                                         */
/* ======================================================================== */

Test(time, seconds_to_ns_clamps, .timeout = 10)
{
    for (size_t i = 0; i < NELEM(k_huge); i++)
        cr_expect_eq(ppi_s_to_ns(k_huge[i]), UINT64_MAX, "%g s", k_huge[i]);
    for (size_t i = 0; i < NELEM(k_tiny) - 1; i++)
        cr_expect_eq(ppi_s_to_ns(k_tiny[i]), 0, "%g s", k_tiny[i]);
    cr_expect_eq(ppi_s_to_ns(NAN), 0);
    cr_expect_eq(ppi_s_to_ns(-INFINITY), 0);
    cr_expect_eq(ppi_s_to_ns(-1.0), 0);
    cr_expect_eq(ppi_s_to_ns(-0.0), 0);
    cr_expect_eq(ppi_s_to_ns(1.5), 1500000000ull);
    cr_expect_eq(ppi_s_to_ns(1e-9), 1ull);
    cr_expect_eq(ppi_s_to_ns(1.8e10), 18000000000000000000ull);
    /* the largest double under 2^64 ns converts exactly */
    cr_expect_eq(ppi_s_to_ns(nextafter(18446744073709551616.0, 0) / 1e9) > 18446744073700000000ull,
                 true);
    cr_expect_eq(ppi_add_sat(UINT64_MAX - 5, 5), UINT64_MAX);
    cr_expect_eq(ppi_add_sat(UINT64_MAX - 5, 6), UINT64_MAX);
    cr_expect_eq(ppi_add_sat(UINT64_MAX, UINT64_MAX), UINT64_MAX);
    cr_expect_eq(ppi_add_sat(3, 4), 7);
    /* a deadline never wraps into the past */
    for (size_t i = 0; i < NELEM(k_huge); i++)
        cr_expect_gt(ppi_deadline(k_huge[i]), ppi_now_ns() + 1000000000000000000ull);
}

/* ======================================================================== */
/* suite time: per-task timeout and kill grace                               */
/* ======================================================================== */

/* Today's (uint64_t)(timeout * 1e9) turned +inf, DBL_MAX, 1e300 and 2e10 s
 * into 0 (+1 ns): the task was killed at once. */
Test(time, huge_task_timeout_never_fires, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    pp_future *fs[NELEM(k_huge)];
    for (size_t i = 0; i < NELEM(k_huge); i++) {
        pp_submit_opts o;
        pp_submit_opts_init(&o);
        o.timeout = k_huge[i];
        fs[i] = submit_sleep(ex, 0.2, &o);
    }
    for (size_t i = 0; i < NELEM(k_huge); i++) {
        pp_exception e;
        cr_assert_eq(pp_future_exception(fs[i], 30.0, &e), 0);
        cr_expect_eq(e.error, 0, "timeout %g: %s (%s)", k_huge[i], pp_strerror(e.error),
                     e.message);
        pp_future_release(fs[i]);
    }
    pp_stats st;
    cr_expect_eq(pp_executor_stats(ex, &st, NULL, 0), 2);
    cr_expect_eq(st.killed, 0);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

Test(time, tiny_task_timeout_kills_at_once, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    for (size_t i = 0; i < NELEM(k_tiny); i++) {
        pp_submit_opts o;
        pp_submit_opts_init(&o);
        o.timeout = k_tiny[i];
        o.kill_grace = 0.0;
        double t0 = ppt_now();
        pp_future *f = submit_sleep(ex, 30.0, &o);
        pp_exception e;
        cr_assert_eq(pp_future_exception(f, 20.0, &e), 0);
        cr_expect_eq(e.error, PP_EKILLED, "timeout %g: %s", k_tiny[i], pp_strerror(e.error));
        cr_expect_lt(ppt_now() - t0, 10.0, "timeout %g took %.3f s", k_tiny[i], ppt_now() - t0);
        pp_future_release(f);
    }
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* A grace of +inf (etc.) means SIGTERM only, never SIGKILL. The task blocks
 * SIGTERM and returns after 0.5 s: its worker then exits at its publish
 * (killed during the grace period: code 0). Today's conversion made the
 * grace 0: SIGKILL at once (code 9). */
Test(time, huge_kill_grace_never_escalates, PPT_FIXTURE, .timeout = 90)
{
    pp_executor *ex = term_proof_pool();
    const double graces[] = {INFINITY, DBL_MAX, 1e300};
    for (size_t i = 0; i < NELEM(graces); i++) {
        double s = 0.5;
        pp_future *f = NULL;
        cr_assert_eq(pp_submit(ex, task_term_proof, &s, sizeof s, &f), 0);
        cr_assert(PPT_WAIT_FOR(pp_future_running(f), 20.0));
        cr_assert_eq(pp_future_kill(f, graces[i]), 0);
        pp_exception e;
        cr_assert_eq(pp_future_exception(f, 20.0, &e), 0);
        cr_expect_eq(e.error, PP_EKILLED, "grace %g: %s", graces[i], pp_strerror(e.error));
        cr_expect_eq(e.code, 0, "grace %g: SIGKILLed (code %d)", graces[i], e.code);
        cr_expect_eq(e.how, PP_CODE_NONE);
        pp_future_release(f);
    }
    /* the same through pp_submit_opts (timeout, then an endless grace) */
    for (size_t i = 0; i < NELEM(graces); i++) {
        pp_submit_opts o;
        pp_submit_opts_init(&o);
        o.timeout = 0.05;
        o.kill_grace = graces[i];
        double s = 0.5;
        pp_future *f = NULL;
        cr_assert_eq(pp_submit_ex(ex, task_term_proof, &s, sizeof s, &o, &f), 0);
        pp_exception e;
        cr_assert_eq(pp_future_exception(f, 20.0, &e), 0);
        cr_expect_eq(e.error, PP_EKILLED, "opts grace %g: %s", graces[i], pp_strerror(e.error));
        cr_expect_eq(e.code, 0, "opts grace %g: SIGKILLed (code %d)", graces[i], e.code);
        pp_future_release(f);
    }
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

Test(time, tiny_kill_grace_escalates_at_once, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = term_proof_pool();
    for (size_t i = 0; i < NELEM(k_tiny); i++) {
        double s = 30.0;
        pp_future *f = NULL;
        cr_assert_eq(pp_submit(ex, task_term_proof, &s, sizeof s, &f), 0);
        cr_assert(PPT_WAIT_FOR(pp_future_running(f), 20.0));
        double t0 = ppt_now();
        cr_assert_eq(pp_future_kill(f, k_tiny[i]), 0);
        pp_exception e;
        cr_assert_eq(pp_future_exception(f, 20.0, &e), 0);
        cr_expect_eq(e.error, PP_EKILLED);
        cr_expect_eq(e.code, SIGKILL, "grace %g: code %d", k_tiny[i], e.code);
        cr_expect_eq(e.how, PP_CODE_SIGNAL);
        cr_expect_lt(ppt_now() - t0, 10.0);
        pp_future_release(f);
    }
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* suite time: waiting                                                       */
/* ======================================================================== */

Test(time, huge_and_tiny_wait_timeouts, PPT_FIXTURE, .timeout = 90)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    /* huge: every waiting call waits for the outcome */
    for (size_t i = 0; i < NELEM(k_huge); i++) {
        pp_future *f = submit_sleep(ex, 0.05, NULL);
        cr_expect_eq(pp_future_result(f, k_huge[i], NULL, NULL), 0, "%g", k_huge[i]);
        pp_future_release(f);
        f = submit_sleep(ex, 0.05, NULL);
        pp_exception e;
        cr_expect_eq(pp_future_exception(f, k_huge[i], &e), 0, "%g", k_huge[i]);
        cr_expect_eq(e.error, 0);
        pp_future_release(f);
        pp_future *two[2] = {submit_sleep(ex, 0.05, NULL), submit_sleep(ex, 0.1, NULL)};
        bool done[2];
        cr_expect_eq(pp_wait(two, 2, k_huge[i], PP_ALL_COMPLETED, done), 2, "%g", k_huge[i]);
        cr_expect(done[0] && done[1]);
        pp_future_release(two[0]);
        pp_future_release(two[1]);
        two[0] = submit_sleep(ex, 0.05, NULL);
        two[1] = submit_sleep(ex, 0.1, NULL);
        pp_as_completed *it;
        cr_assert_eq(pp_as_completed_begin(&it, two, 2, k_huge[i]), 0);
        pp_future *g;
        cr_expect_eq(pp_as_completed_next(it, &g), 0, "%g", k_huge[i]);
        cr_expect_eq(pp_as_completed_next(it, &g), 0, "%g", k_huge[i]);
        cr_expect_eq(pp_as_completed_next(it, &g), -ENOENT);
        pp_as_completed_end(it);
        pp_future_release(two[0]);
        pp_future_release(two[1]);
        /* map: one deadline, +inf etc. = none */
        double xs[64], ys[64];
        for (int k = 0; k < 64; k++)
            xs[k] = k;
        pp_map_input in = pp_map_array(xs, 64, sizeof(double));
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.out_size = sizeof(double);
        o.chunksize = 4;
        o.timeout = k_huge[i];
        pp_map_status st;
        cr_expect_eq(pp_map(ex, item_identity, &in, 1, ys, 64, NULL, &o, &st), 0, "%g: %s",
                     k_huge[i], st.message);
        cr_expect_eq(st.done, 64);
        cr_expect_eq(ys[63], 63.0);
    }
    /* tiny: each call is a poll */
    pp_future *slow = submit_sleep(ex, 30.0, NULL);
    for (size_t i = 0; i < NELEM(k_tiny); i++) {
        double t0 = ppt_now();
        cr_expect_eq(pp_future_result(slow, k_tiny[i], NULL, NULL), -ETIMEDOUT);
        pp_exception e;
        cr_expect_eq(pp_future_exception(slow, k_tiny[i], &e), -ETIMEDOUT);
        cr_expect_eq(pp_wait(&slow, 1, k_tiny[i], PP_ALL_COMPLETED, NULL), 0);
        pp_as_completed *it;
        cr_assert_eq(pp_as_completed_begin(&it, &slow, 1, k_tiny[i]), 0);
        pp_future *g;
        cr_expect_eq(pp_as_completed_next(it, &g), -ETIMEDOUT);
        pp_as_completed_end(it);
        cr_expect_lt(ppt_now() - t0, 2.0, "%g took %.3f s", k_tiny[i], ppt_now() - t0);
    }
    cr_expect(pp_future_cancel(slow) || pp_future_kill(slow, 0) == 0);
    pp_future_release(slow);
    pp_shutdown(ex, false, true);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* suite time: a slot word that makes no sense                               */
/* ======================================================================== */

/* Overwrite the state word of @f's slot (a running task) with mut(word). */
static void corrupt_slot(pp_future *f, uint64_t (*mut)(uint64_t))
{
    ppi_slot *sl = ppi_slot_at(&f->ex->seg, f->idx);
    uint64_t w = atomic_load(&sl->state);
    atomic_store(&sl->state, mut(w));
}

static uint64_t bump_gen(uint64_t w)
{
    return ppi_st_make(ppi_st_gen(w) + 7, ppi_st_state(w), ppi_st_flags(w), ppi_st_worker(w));
}
static uint64_t older_gen_free(uint64_t w)
{
    return ppi_st_make(ppi_st_gen(w) - 1, PPI_S_FREE, 0, PPI_NO_WORKER);
}
static uint64_t bad_state(uint64_t w)
{
    return (w & ~(uint64_t)0xff) | 0x5a;
}

static void check_corrupt(uint64_t (*mut)(uint64_t), double timeout, const char *what)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *f = submit_sleep(ex, 0.5, NULL);
    cr_assert(PPT_WAIT_FOR(pp_future_running(f), 20.0));
    corrupt_slot(f, mut);
    double t0 = ppt_now();
    const void *d = (const void *)1;
    size_t n = 1;
    int rc = pp_future_result(f, timeout, &d, &n);
    double dt = ppt_now() - t0;
    cr_expect_eq(rc, -EPROTO, "%s: %s", what, pp_strerror(rc));
    cr_expect_lt(dt, timeout < 0 ? 3.0 : timeout + 0.5, "%s: took %.3f s", what, dt);
    cr_expect_null(d);
    cr_expect_eq(n, 0);
    cr_expect(pp_future_done(f));
    cr_expect(!pp_future_cancelled(f));
    pp_exception e;
    cr_expect_eq(pp_future_exception(f, 0, &e), 0);
    cr_expect_eq(e.error, -EPROTO);
    cr_expect_eq(e.pid, 0);
    cr_expect_neq(strstr(e.message, "overwritten"), NULL, "%s: %s", what, e.message);
    cr_expect_eq(pp_wait(&f, 1, PP_FOREVER, PP_ALL_COMPLETED, NULL), 1);
    pp_future_release(f);
    /* the rest of the pool goes on */
    pp_future *g = submit_sleep(ex, 0.0, NULL);
    cr_expect_eq(pp_future_result(g, 20.0, NULL, NULL), 0);
    pp_future_release(g);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* Today: pp_future_result spun at 100 % CPU forever on these. */
Test(time, corrupt_generation_fails_within_timeout, PPT_FIXTURE, .timeout = 30)
{
    check_corrupt(bump_gen, 3.0, "generation + 7");
}

Test(time, corrupt_free_word_fails_forever_wait, PPT_FIXTURE, .timeout = 30)
{
    check_corrupt(older_gen_free, PP_FOREVER, "FREE of an older generation");
}

Test(time, corrupt_state_byte_fails, PPT_FIXTURE, .timeout = 30)
{
    check_corrupt(bad_state, 3.0, "state 0x5a");
}

/* pp_wait and as_completed call pp_future_done on it: they return too. */
Test(time, corrupt_slot_wait_and_as_completed_return, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *f = submit_sleep(ex, 0.5, NULL);
    cr_assert(PPT_WAIT_FOR(pp_future_running(f), 20.0));
    corrupt_slot(f, bump_gen);
    double t0 = ppt_now();
    bool done = false;
    cr_expect_eq(pp_wait(&f, 1, 3.0, PP_ALL_COMPLETED, &done), 1);
    cr_expect(done);
    pp_as_completed *it;
    cr_assert_eq(pp_as_completed_begin(&it, &f, 1, 3.0), 0);
    pp_future *g;
    cr_expect_eq(pp_as_completed_next(it, &g), 0);
    pp_as_completed_end(it);
    cr_expect_lt(ppt_now() - t0, 3.0);
    cr_expect_eq(pp_future_result(f, 0, NULL, NULL), -EPROTO);
    pp_future_release(f);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* suite outcome: pid after terminate / kill workers                         */
/* ======================================================================== */

static void check_stop_pids(int (*stop)(pp_executor *), int sig)
{
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    enum { N = 6 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_sleep(ex, 60.0, NULL);
    cr_assert(PPT_WAIT_FOR(pp_future_running(fs[0]) && pp_future_running(fs[1]), 20.0));
    pp_worker_stats ws[2];
    cr_assert_eq(pp_executor_stats(ex, NULL, ws, 2), 2);
    cr_assert_eq(stop(ex), 0);
    pid_t seen[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        pp_exception e;
        cr_assert_eq(pp_future_exception(fs[i], 20.0, &e), 0);
        cr_expect_geq(e.pid, 0, "future %d: pid %d", i, (int)e.pid);
        if (i < 2) {
            /* running: failed as broken, naming the worker that ran it */
            cr_expect_eq(e.error, PP_EBROKEN, "future %d: %s", i, pp_strerror(e.error));
            cr_expect(e.pid == ws[0].pid || e.pid == ws[1].pid, "future %d: pid %d not a worker", i,
                      (int)e.pid);
            cr_expect_eq(e.code, sig);
            cr_expect_eq(e.how, PP_CODE_SIGNAL);
            seen[i] = e.pid;
        } else {
            /* never started: cancelled (or broken), no worker */
            cr_expect(e.error == -ECANCELED || e.error == PP_EBROKEN, "future %d: %s", i,
                      pp_strerror(e.error));
            cr_expect_eq(e.pid, 0, "future %d: pid %d", i, (int)e.pid);
        }
    }
    cr_expect_neq(seen[0], seen[1]);
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(ex, &c), 0);
    cr_expect_eq(c.error, PP_EBROKEN);
    cr_expect_eq(c.pid, 0);
    cr_expect_eq(c.code, sig);
    cr_expect_eq(c.how, PP_CODE_SIGNAL);
    cr_expect_neq(strstr(c.message, sig == SIGKILL ? "pp_kill_workers" : "pp_terminate_workers"),
                  NULL, "%s", c.message);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* Today: the running futures reported pid -1. */
Test(outcome, terminate_workers_pids, PPT_FIXTURE, .timeout = 60)
{
    check_stop_pids(pp_terminate_workers, SIGTERM);
}

Test(outcome, kill_workers_pids, PPT_FIXTURE, .timeout = 60)
{
    check_stop_pids(pp_kill_workers, SIGKILL);
}

/* ======================================================================== */
/* suite outcome: code kinds                                                 */
/* ======================================================================== */

static pp_exception outcome_of(pp_executor *ex, pp_fn fn, const void *arg, size_t n, pp_future **keep)
{
    pp_future *f = NULL;
    cr_assert_eq(pp_submit(ex, fn, arg, n, &f), 0);
    pp_exception e;
    cr_assert_eq(pp_future_exception(f, 30.0, &e), 0);
    *keep = f; /* e's strings live as long as f */
    return e;
}

Test(outcome, code_kinds_under_respawn, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_RESPAWN);
    pp_future *f;
    int st = 0;
    pp_exception e = outcome_of(ex, task_exit, &st, sizeof st, &f);
    cr_expect_eq(e.error, PP_EWORKER);
    cr_expect_eq(e.code, 0);
    cr_expect_eq(e.how, PP_CODE_EXIT, "_exit(0) must read as an exit, not as no code");
    cr_expect_gt(e.pid, 0);
    cr_expect_neq(strstr(e.message, "exited with status 0"), NULL, "%s", e.message);
    pp_future_release(f);
    st = 3;
    e = outcome_of(ex, task_exit, &st, sizeof st, &f);
    cr_expect_eq(e.error, PP_EWORKER);
    cr_expect_eq(e.code, -3);
    cr_expect_eq(e.how, PP_CODE_EXIT);
    pp_future_release(f);
    st = 255;
    e = outcome_of(ex, task_exit, &st, sizeof st, &f);
    cr_expect_eq(e.code, -255);
    cr_expect_eq(e.how, PP_CODE_EXIT);
    pp_future_release(f);
    e = outcome_of(ex, ppt_task_sigkill, NULL, 0, &f);
    cr_expect_eq(e.error, PP_EWORKER);
    cr_expect_eq(e.code, SIGKILL);
    cr_expect_eq(e.how, PP_CODE_SIGNAL);
    pp_future_release(f);
    e = outcome_of(ex, ppt_task_raiser, NULL, 0, &f);
    cr_expect_eq(e.error, PP_ETASK);
    cr_expect_eq(e.code, 42);
    cr_expect_eq(e.how, PP_CODE_TASK);
    pp_future_release(f);
    e = outcome_of(ex, ppt_task_noop, NULL, 0, &f);
    cr_expect_eq(e.error, 0);
    cr_expect_eq(e.code, 0);
    cr_expect_eq(e.how, PP_CODE_NONE);
    pp_future_release(f);
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(ex, &c), 0);
    cr_expect_eq(c.error, 0);
    cr_expect_eq(c.how, PP_CODE_NONE);
    cr_expect_str_eq(c.message, "");
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

Test(outcome, exit0_under_break_and_broken_cause, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pp_future *f;
    int st = 0;
    pp_exception e = outcome_of(ex, task_exit, &st, sizeof st, &f);
    cr_expect_eq(e.error, PP_EBROKEN);
    cr_expect_eq(e.code, 0);
    cr_expect_eq(e.how, PP_CODE_EXIT);
    cr_expect_gt(e.pid, 0);
    pp_future *g = NULL;
    cr_expect_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &g), PP_EBROKEN);
    cr_expect_null(g);
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(ex, &c), 0);
    cr_expect_eq(c.error, PP_EBROKEN);
    cr_expect_eq(c.code, 0);
    cr_expect_eq(c.how, PP_CODE_EXIT);
    cr_expect_eq(c.pid, e.pid);
    cr_expect_neq(strstr(c.message, "exited with status 0"), NULL, "%s", c.message);
    pp_future_release(f);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* suite outcome: pp_executor_broken_cause                                   */
/* ======================================================================== */

Test(outcome, broken_cause_bad_input, .timeout = 10)
{
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(NULL, &c), -EINVAL);
    cr_expect_eq(pp_executor_broken_cause((pp_executor *)&c, NULL), -EINVAL);
}

Test(outcome, broken_cause_worker_killed_under_break, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pp_future *f;
    pp_exception e = outcome_of(ex, ppt_task_sigkill, NULL, 0, &f);
    cr_expect_eq(e.error, PP_EBROKEN);
    pp_future *g = NULL;
    cr_expect_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &g), PP_EBROKEN);
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(ex, &c), 0);
    cr_expect_eq(c.error, PP_EBROKEN);
    cr_expect_eq(c.code, SIGKILL);
    cr_expect_eq(c.how, PP_CODE_SIGNAL);
    cr_expect_gt(c.pid, 0);
    cr_expect_eq(c.pid, e.pid);
    cr_expect_neq(strstr(c.message, "signal 9"), NULL, "%s", c.message);
    pp_future_release(f);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

Test(outcome, broken_cause_initializer_failed, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 2);
    cfg.pin = PP_PIN_NONE;
    cfg.initializer = init_fails;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc == PP_EBROKEN) /* broke before create returned: nothing to ask */
        cr_skip_test("the pool broke inside pp_executor_create");
    cr_assert_eq(rc, 0, "%s", pp_strerror(rc));
    pp_future *g = NULL;
    double dl = ppt_deadline(20.0);
    while ((rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g)) == 0 && !ppt_expired(dl)) {
        cr_expect_eq(pp_future_result(g, 5.0, NULL, NULL), PP_EBROKEN);
        pp_future_release(g);
        g = NULL;
    }
    cr_assert_eq(rc, PP_EBROKEN);
    pp_exception c;
    cr_expect_eq(pp_executor_broken_cause(ex, &c), 0);
    cr_expect_eq(c.error, PP_EBROKEN);
    cr_expect_gt(c.pid, 0);
    cr_expect_neq(strstr(c.message, "initializer"), NULL, "%s", c.message);
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* suite outcome: PP_MESSAGE_MAX                                             */
/* ======================================================================== */

static void check_raise_lengths(size_t inline_size)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin = PP_PIN_NONE;
    if (inline_size)
        cfg.inline_size = inline_size;
    pp_executor *ex = NULL;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    const size_t lens[] = {0, 1, PP_MESSAGE_MAX - 1, PP_MESSAGE_MAX, PP_MESSAGE_MAX + 1,
                           PP_MESSAGE_MAX + 9, 4 * PP_MESSAGE_MAX, 3000};
    for (size_t i = 0; i < NELEM(lens); i++) {
        pp_future *f;
        pp_exception e = outcome_of(ex, task_raise_len, &lens[i], sizeof lens[i], &f);
        cr_expect_eq(e.error, PP_ETASK);
        cr_expect_eq(e.code, 7);
        size_t want = lens[i] < PP_MESSAGE_MAX ? lens[i] : PP_MESSAGE_MAX;
        char buf[4096];
        fill_msg(buf, want);
        cr_expect_eq(strlen(e.message), want, "inline %zu, message of %zu: got %zu bytes",
                     inline_size, lens[i], strlen(e.message));
        cr_expect_str_eq(e.message, buf);
        pp_future_release(f);
    }
    cr_expect_eq(pp_executor_destroy(ex), 0);
}

/* Today: cut at inline_size - 1 (191 by default, 63 or 1023 here). */
Test(outcome, task_message_limit_default_inline, PPT_FIXTURE, .timeout = 60)
{
    check_raise_lengths(0);
}

Test(outcome, task_message_limit_small_inline, PPT_FIXTURE, .timeout = 60)
{
    check_raise_lengths(64);
}

Test(outcome, task_message_limit_large_inline, PPT_FIXTURE, .timeout = 60)
{
    check_raise_lengths(1024);
}

/* Today: pp_map_raise cut at 199. */
Test(outcome, map_message_limit, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    const size_t lens[] = {PP_MESSAGE_MAX - 1, PP_MESSAGE_MAX, PP_MESSAGE_MAX + 1, 1000};
    for (size_t i = 0; i < NELEM(lens); i++) {
        pp_map_input in = pp_map_array(&lens[i], 1, sizeof lens[i]);
        pp_map_opts o;
        pp_map_opts_init(&o);
        pp_map_status st;
        cr_expect_eq(pp_map(ex, item_raise_len, &in, 1, NULL, 1, NULL, &o, &st), PP_ETASK);
        cr_expect_eq(st.code, 9);
        size_t want = lens[i] < PP_MESSAGE_MAX ? lens[i] : PP_MESSAGE_MAX;
        char buf[4096];
        fill_msg(buf, want);
        cr_expect_eq(strlen(st.message), want, "message of %zu: got %zu bytes", lens[i],
                     strlen(st.message));
        cr_expect_str_eq(st.message, buf);
    }
    cr_expect_eq(pp_executor_destroy(ex), 0);
}
