/*
 * test_shutdown.c — pp_shutdown and pp_executor_destroy against done-
 * callbacks, concurrent shutdowns, a destroyed executor's futures, maps
 * stopped by cancel_futures, and a fork()ed child of the client.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

static pp_executor *make_pool(int workers, uint32_t slots)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    if (slots)
        cfg.slots = slots;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

/* ---- a gate: tasks that wait in a worker until the client opens it ------ */

/* Argument = uint64 segment offset of an _Atomic uint32_t; waits (up to 20 s)
 * until it is non-zero. */
static int gate_task(pp_task *t)
{
    const uint64_t *off = pp_task_arg(t, NULL);
    _Atomic uint32_t *g = pp_task_shm(t, *off);
    double dl = ppt_deadline(20.0);
    /* acquire: pairs with the client's release store. */
    while (!atomic_load_explicit(g, memory_order_acquire) && !ppt_expired(dl))
        ppt_sleep(0.0005);
    return 0;
}

typedef struct gate {
    pp_executor *ex;
    _Atomic uint32_t *word;
    uint64_t off;
} gate;

static gate gate_new(pp_executor *ex)
{
    void *p;
    cr_assert_eq(pp_shm_alloc(ex, 64, &p), 0);
    gate g = {ex, p, pp_shm_offset(ex, p)};
    atomic_store(g.word, 0);
    return g;
}

static pp_future *gate_submit(gate *g)
{
    pp_future *f;
    int rc = pp_submit(g->ex, gate_task, &g->off, sizeof g->off, &f);
    cr_assert_eq(rc, 0, "submit: %s", pp_strerror(rc));
    return f;
}

static void gate_open(gate *g)
{
    /* release: the tasks read nothing else. */
    atomic_store_explicit(g->word, 1, memory_order_release);
}

/* ---- item 9: pp_shutdown(wait) inside a callback run in the caller ------ */

typedef struct inline_ctx {
    pp_executor *ex;
    pp_future *other;          /* a task still running at the shutdown */
    _Atomic int other_cb_ran;  /* its callback ran */
    _Atomic int ran;
    int rc;
    bool other_done;           /* seen inside the callback after the shutdown */
    int other_cb_seen;
    pthread_t thread;
    bool same_thread;
    gate *g;                   /* opened by the callback: lets `other` finish */
} inline_ctx;

static int count_cb(pp_future *f, void *u)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)u, 1);
    return 0;
}

static int shutdown_wait_cb(pp_future *f, void *u)
{
    (void)f;
    inline_ctx *c = u;
    c->same_thread = pthread_equal(pthread_self(), c->thread);
    gate_open(c->g);
    c->rc = pp_shutdown(c->ex, true, false);
    c->other_done = pp_future_done(c->other);
    c->other_cb_seen = atomic_load(&c->other_cb_ran);
    atomic_store(&c->ran, 1);
    return 0;
}

/* The callback is registered on a future that is already done: it runs at
 * once in the registering thread, which holds it as a pending callback. */
Test(shutdown, wait_inside_callback_on_a_done_future, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(2, 0);
    gate g = gate_new(ex);
    inline_ctx c = {.ex = ex, .thread = pthread_self(), .g = &g};
    c.other = gate_submit(&g);
    cr_assert_eq(pp_future_add_done_callback(c.other, count_cb, &c.other_cb_ran), 0);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0);
    cr_assert_eq(pp_future_result(f, 10.0, NULL, NULL), 0);
    cr_assert_eq(pp_future_add_done_callback(f, shutdown_wait_cb, &c), 0);
    cr_assert(atomic_load(&c.ran), "the callback ran inside the registration");
    cr_assert(c.same_thread);
    cr_assert_eq(c.rc, 0, "%s", pp_strerror(c.rc));
    cr_assert(c.other_done, "pp_shutdown(wait) inside the callback waited for the tasks");
    cr_assert_eq(c.other_cb_seen, 1, "... and for the other pending callback");
    cr_assert_eq(ppt_count_children(true, NULL, 0), 0, "the manager was reaped");
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &(pp_future *){NULL}), -ESHUTDOWN);
    pp_future_release(f);
    pp_future_release(c.other);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* The callback runs inside pp_future_cancel, in the cancelling thread. */
Test(shutdown, wait_inside_callback_fired_by_cancel, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(1, 0);
    gate g = gate_new(ex);
    inline_ctx c = {.ex = ex, .thread = pthread_self(), .g = &g};
    c.other = gate_submit(&g); /* occupies the only worker until the callback */
    cr_assert_eq(pp_future_add_done_callback(c.other, count_cb, &c.other_cb_ran), 0);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0); /* queued behind it */
    cr_assert_eq(pp_future_add_done_callback(f, shutdown_wait_cb, &c), 0);
    cr_assert(pp_future_cancel(f));
    cr_assert(atomic_load(&c.ran), "the callback ran inside pp_future_cancel");
    cr_assert(c.same_thread);
    cr_assert_eq(c.rc, 0, "%s", pp_strerror(c.rc));
    cr_assert(c.other_done);
    cr_assert_eq(c.other_cb_seen, 1);
    cr_assert_eq(ppt_count_children(true, NULL, 0), 0, "the manager was reaped");
    pp_future_release(f);
    pp_future_release(c.other);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* exit() inside a callback that runs in the registering thread: the at-exit
 * handler waits for the pool and the program ends. Run in a child process
 * (a fresh client: the test process has no executor). */
static int exit_cb(pp_future *f, void *u)
{
    (void)f;
    (void)u;
    ppt_exit_without_leak_check(); /* exits from a callback: see there */
    exit(7);
}

Test(shutdown, exit_inside_inline_callback_ends_the_program, PPT_FIXTURE, .timeout = 30)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        pp_config cfg;
        ppt_config(&cfg, 1);
        pp_executor *ex;
        if (pp_executor_create(&ex, &cfg) != 0)
            _exit(2);
        pp_future *f, *g;
        double s = 0.2;
        if (pp_submit(ex, ppt_task_noop, NULL, 0, &f) != 0 ||
            pp_future_result(f, 10.0, NULL, NULL) != 0 ||
            pp_submit(ex, ppt_task_sleepy, &s, sizeof s, &g) != 0)
            _exit(3);
        pp_future_add_done_callback(f, exit_cb, NULL);
        _exit(4); /* not reached */
    }
    int st = 0;
    double dl = ppt_deadline(20.0);
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && !ppt_expired(dl))
        ppt_sleep(0.005);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        cr_assert_fail("exit() inside the callback hung");
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7, "child status %#x", st);
}

/* ---- item 10: two threads call pp_shutdown(wait) at once ---------------- */

enum { NCB = 20 };

typedef struct two_ctx {
    pp_executor *ex;
    _Atomic int cbs;
    int seen[2];
    int rc[2];
    _Atomic int go;
} two_ctx;

static int slow_count_cb(pp_future *f, void *u)
{
    (void)f;
    two_ctx *c = u;
    ppt_sleep(0.005); /* a callback with some work in it */
    atomic_fetch_add(&c->cbs, 1);
    return 0;
}

typedef struct two_arg {
    two_ctx *c;
    int i;
} two_arg;

static void *shutdown_thread(void *p)
{
    two_arg *a = p;
    while (!atomic_load(&a->c->go))
        sched_yield();
    a->c->rc[a->i] = pp_shutdown(a->c->ex, true, false);
    a->c->seen[a->i] = atomic_load(&a->c->cbs);
    return NULL;
}

Test(shutdown, concurrent_waits_both_see_every_callback, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(2, 0);
    gate g = gate_new(ex);
    two_ctx c = {.ex = ex};
    pp_future *fs[NCB];
    for (int i = 0; i < NCB; i++) {
        fs[i] = gate_submit(&g);
        cr_assert_eq(pp_future_add_done_callback(fs[i], slow_count_cb, &c), 0);
    }
    pthread_t th[2];
    two_arg a[2] = {{&c, 0}, {&c, 1}};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, shutdown_thread, &a[i]), 0);
    atomic_store(&c.go, 1);
    gate_open(&g);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(c.rc[i], 0);
        cr_expect_eq(c.seen[i], NCB, "thread %d returned after %d of %d callbacks", i, c.seen[i],
                     NCB);
    }
    for (int i = 0; i < NCB; i++)
        pp_future_release(fs[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- item 11: pp_shutdown(wait) on the service thread with a backlog ---- */

enum { NBL = 30 };

typedef struct svc_ctx {
    pp_executor *ex;
    pp_future *bl[NBL];
    _Atomic int ran;
    int rc;
    int done_ok;            /* backlog futures done with success, seen inside */
    bool manager_gone;
} svc_ctx;

static int shutdown_in_service_cb(pp_future *f, void *u)
{
    (void)f;
    svc_ctx *c = u;
    c->rc = pp_shutdown(c->ex, true, false);
    c->done_ok = 0;
    for (int i = 0; i < NBL; i++)
        c->done_ok += pp_future_done(c->bl[i]) && pp_future_result(c->bl[i], 0, NULL, NULL) == 0;
    c->manager_gone = ppt_count_children(true, NULL, 0) == 0;
    atomic_store(&c->ran, 1);
    return 0;
}

Test(shutdown, wait_on_the_service_thread_feeds_the_backlog_first, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(1, 1); /* one slot: everything else waits client-side */
    gate g = gate_new(ex);
    svc_ctx c = {.ex = ex};
    pp_future *f = gate_submit(&g);
    cr_assert_eq(pp_future_add_done_callback(f, shutdown_in_service_cb, &c), 0);
    for (int i = 0; i < NBL; i++)
        cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &c.bl[i]), 0);
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_assert_geq(st.backlog, NBL - 1, "the calls wait in the backlog");
    gate_open(&g); /* f finishes; its callback runs on the service thread */
    cr_assert(PPT_WAIT_FOR(atomic_load(&c.ran), 20.0), "the callback returned");
    cr_assert_eq(c.rc, 0, "%s", pp_strerror(c.rc));
    cr_assert_eq(c.done_ok, NBL, "%d of %d backlog tasks ran before the workers stopped",
                 c.done_ok, NBL);
    cr_assert(c.manager_gone, "the manager was reaped");
    for (int i = 0; i < NBL; i++)
        pp_future_release(c.bl[i]);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* pp_executor_destroy on the callback's own executor, on the service thread:
 * allowed; the executor is freed once the service thread is done with it. */
static int destroy_in_cb(pp_future *f, void *u)
{
    (void)f;
    svc_ctx *c = u;
    c->rc = pp_executor_destroy(c->ex);
    atomic_store(&c->ran, 1);
    return 0;
}

Test(shutdown, destroy_inside_a_callback, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(1, 1);
    gate g = gate_new(ex);
    svc_ctx c = {.ex = ex};
    pp_future *f = gate_submit(&g);
    cr_assert_eq(pp_future_add_done_callback(f, destroy_in_cb, &c), 0);
    for (int i = 0; i < NBL; i++)
        cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &c.bl[i]), 0);
    gate_open(&g);
    cr_assert(PPT_WAIT_FOR(atomic_load(&c.ran), 20.0));
    cr_assert_eq(c.rc, 0);
    for (int i = 0; i < NBL; i++) {
        cr_assert_eq(pp_future_result(c.bl[i], 10.0, NULL, NULL), 0);
        pp_future_release(c.bl[i]);
    }
    pp_future_release(f);
    cr_assert_eq(ppt_wait_no_children(5.0), 0);
}

/* ---- item 12: a callback added after the executor was destroyed --------- */

static int flag_cb(pp_future *f, void *u)
{
    (void)f;
    atomic_store((_Atomic int *)u, 1);
    return 0;
}

Test(shutdown, callback_after_destroy_runs_inline_and_frees_cleanly, PPT_FIXTURE, .timeout = 120)
{
    /* Used to restart the service thread on the destroyed executor, which
     * the last release then freed under it (SIGSEGV in about 2 % of runs). */
    for (int it = 0; it < 200; it++) {
        pp_config cfg;
        ppt_config(&cfg, 1);
        cfg.slots = 4;
        cfg.start_method = PP_START_FORK; /* the bug is client-side: start fast */
        pp_executor *ex = NULL;
        cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
        pp_future *f;
        cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0);
        cr_assert_eq(pp_future_result(f, 10.0, NULL, NULL), 0);
        cr_assert_eq(pp_executor_destroy(ex), 0);
        _Atomic int ran = 0;
        cr_assert_eq(pp_future_add_done_callback(f, flag_cb, &ran), 0);
        cr_assert(atomic_load(&ran), "ran in the registering thread");
        pp_future_release(f); /* frees the executor */
    }
}

/* ---- item 17: map items that returned early on the pool's stop ----------- */

typedef struct stop_ctx {
    uint64_t started_off; /* _Atomic uint64_t in shared memory */
} stop_ctx;

/* out = 1 if it returned because pp_map_should_stop said so, 2 otherwise. */
static int until_stop_item(pp_map_item *it)
{
    const stop_ctx *c = it->ctx;
    _Atomic uint64_t *started = pp_task_shm(it->task, c->started_off);
    atomic_fetch_add(started, 1);
    double dl = ppt_deadline(10.0);
    uint64_t v = 2;
    while (!ppt_expired(dl)) {
        if (pp_map_should_stop(it)) {
            v = 1;
            break;
        }
        ppt_sleep(0.0005);
    }
    memcpy(it->out, &v, sizeof v);
    return 0;
}

Test(shutdown, map_items_stopped_by_cancel_futures_are_not_delivered, PPT_FIXTURE,
     .timeout = 60)
{
    pp_executor *ex = make_pool(2, 0);
    void *p;
    cr_assert_eq(pp_shm_alloc(ex, 64, &p), 0);
    atomic_store((_Atomic uint64_t *)p, 0);
    stop_ctx sc = {pp_shm_offset(ex, p)};
    enum { N = 8 };
    uint64_t in[N] = {0};
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = 8;
    o.ctx = &sc;
    o.ctx_size = sizeof sc;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, until_stop_item, &mi, 1, &o), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load((_Atomic uint64_t *)p) >= 1, 10.0), "an item started");
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    int rc;
    const void *r;
    size_t k = 0;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        uint64_t v;
        memcpy(&v, r, sizeof v);
        cr_assert_neq(v, 1, "item %zu returned early on the stop and was delivered", k);
        k++;
    }
    cr_assert_eq(rc, -ECANCELED, "%s", pp_strerror(rc));
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert_eq(st.error, -ECANCELED);
    cr_assert_eq(st.done, k);
    cr_assert_eq(pp_map_end(m), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- item 20: a fork()ed child of the client ------------------------------ */

/* Map item: waits for the gate whose offset is the context; out = index. */
static int gated_item(pp_map_item *it)
{
    const uint64_t *off = it->ctx;
    _Atomic uint32_t *g = pp_task_shm(it->task, *off);
    double dl = ppt_deadline(20.0);
    /* acquire: pairs with gate_open. */
    while (!atomic_load_explicit(g, memory_order_acquire) && !ppt_expired(dl))
        ppt_sleep(0.0005);
    uint64_t v = it->index;
    memcpy(it->out, &v, sizeof v);
    return 0;
}

static int child_checks(pp_executor *ex, pp_future *done_f, pp_future *running_f, pp_map_iter *m)
{
    int bad = 0;
    pp_future *f = (pp_future *)1;
#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "child: line %d: %s\n", __LINE__, #cond);                         \
            bad++;                                                                             \
        }                                                                                      \
    } while (0)
    CHECK(pp_submit(ex, ppt_task_noop, NULL, 0, &f) == PP_EFORKED && f == NULL);
    CHECK(pp_future_result(done_f, 0, NULL, NULL) == PP_EFORKED);
    CHECK(pp_future_result(running_f, 0.01, NULL, NULL) == PP_EFORKED);
    pp_exception exc;
    CHECK(pp_future_exception(done_f, 0, &exc) == PP_EFORKED);
    CHECK(!pp_future_done(done_f));
    CHECK(!pp_future_cancel(running_f));
    CHECK(pp_future_kill(running_f, 0) == PP_EFORKED);
    CHECK(pp_future_add_done_callback(running_f, count_cb, &(_Atomic int){0}) == PP_EFORKED);
    pp_future *both[2] = {done_f, running_f};
    CHECK(pp_wait(both, 2, 0, PP_ALL_COMPLETED, NULL) == PP_EFORKED);
    pp_as_completed *it = NULL;
    CHECK(pp_as_completed_begin(&it, both, 2, 0) == PP_EFORKED && it == NULL);
    pp_stats st;
    CHECK(pp_executor_stats(ex, &st, NULL, 0) == PP_EFORKED);
    CHECK(pp_max_workers(ex) == PP_EFORKED);
    void *p = NULL;
    CHECK(pp_shm_alloc(ex, 64, &p) == PP_EFORKED && p == NULL);
    CHECK(pp_shutdown(ex, false, true) == PP_EFORKED);
    CHECK(pp_terminate_workers(ex) == PP_EFORKED);
    CHECK(strstr(pp_strerror(PP_EFORKED), "forked") != NULL);
    CHECK(pp_map_next(m, NULL, NULL) == PP_EFORKED);
    CHECK(pp_map_end(m) == PP_EFORKED); /* frees the child's copy only */
    pp_map_iter *m2 = NULL;
    uint64_t x = 0;
    pp_map_input mi = pp_map_array(&x, 1, 8);
    CHECK(pp_map_begin(&m2, ex, gated_item, &mi, 1, NULL) == PP_EFORKED && m2 == NULL);
    /* Releasing and destroying free only this process's copy. */
    pp_future_release(done_f);
    pp_future_release(running_f);
    {
        PP_SCOPED_EXECUTOR(scoped);
        scoped = ex; /* destroyed at the end of the scope, as in the report */
    }
#undef CHECK
    return bad;
}

Test(shutdown, forked_child_fails_clearly_and_leaves_the_pool_alone, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, 0);
    gate g = gate_new(ex);
    pp_future *done_f, *running_f = gate_submit(&g);
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &done_f), 0);
    gate_open(&g);
    cr_assert_eq(pp_future_result(done_f, 10.0, NULL, NULL), 0);
    /* A new gate keeps a task running across the fork. */
    gate g2 = gate_new(ex);
    pp_future *held = gate_submit(&g2);
    cr_assert_eq(pp_future_result(running_f, 10.0, NULL, NULL), 0);
    /* ... and a map waiting on the same gate. */
    enum { N = 6 };
    uint64_t in[N] = {0};
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = 8;
    o.ctx = &g2.off;
    o.ctx_size = sizeof g2.off;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, gated_item, &mi, 1, &o), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        _exit(child_checks(ex, done_f, held, m) ? 1 : 0);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x (see its stderr)", st);
    /* The parent's pool is untouched. */
    gate_open(&g2);
    cr_assert_eq(pp_future_result(held, 10.0, NULL, NULL), 0);
    const void *r;
    for (uint64_t i = 0; i < N; i++) {
        int mrc = pp_map_next(m, &r, NULL);
        cr_assert_eq(mrc, 0, "the parent's map, item %llu: %s", (unsigned long long)i,
                     pp_strerror(mrc));
        cr_assert_eq(*(const uint64_t *)r, i);
    }
    cr_assert_eq(pp_map_next(m, &r, NULL), -ENOENT);
    cr_assert_eq(pp_map_end(m), 0);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0);
    int rc = pp_future_result(f, 10.0, NULL, NULL);
    cr_assert_eq(rc, 0, "the parent's pool after the child's destroy: %s", pp_strerror(rc));
    pp_future_release(f);
    pp_future_release(held);
    pp_future_release(done_f);
    pp_future_release(running_f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
