/*
 * test_resize.c — pp_executor_resize under load: every submitted task runs
 * exactly once (a counter per task in a shared array) and the statistics add
 * up; shrinking never kills a running task; growing while a backlog waits;
 * racing pp_shutdown; both death policies with a worker SIGKILLed during a
 * resize; max_tasks_per_child; from a done-callback; the initializer and
 * the plan in grown workers. CTest runs it under every start method (the
 * default leg, @fork, @spawn).
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* A counted task's argument: it bumps runs[idx] in a shared array, sleeps,
 * and returns idx. */
typedef struct counted_arg {
    uint64_t runs_off; /* pp_shm_offset of the uint32_t array */
    uint32_t idx;
    double seconds;
} counted_arg;

static int task_counted(pp_task *t)
{
    const counted_arg *a = pp_task_arg(t, NULL);
    _Atomic uint32_t *runs = pp_task_shm(t, a->runs_off);
    /* relaxed: the client reads the array after the futures are done. */
    atomic_fetch_add_explicit(&runs[a->idx], 1, memory_order_relaxed);
    ppt_sleep(a->seconds);
    return pp_task_set_result(t, &a->idx, sizeof a->idx);
}

typedef struct batch {
    pp_executor *ex;
    _Atomic uint32_t *runs;
    uint64_t runs_off;
    pp_future **f;
    int n;          /* submitted so far */
    int cap;
} batch;

static void batch_init(batch *b, pp_executor *ex, int cap)
{
    memset(b, 0, sizeof *b);
    b->ex = ex;
    b->cap = cap;
    void *p;
    cr_assert_eq(pp_shm_alloc(ex, (size_t)cap * sizeof(uint32_t), &p), 0);
    memset(p, 0, (size_t)cap * sizeof(uint32_t));
    b->runs = p;
    b->runs_off = pp_shm_offset(ex, p);
    b->f = calloc((size_t)cap, sizeof *b->f);
    cr_assert_not_null(b->f);
}

static void batch_submit(batch *b, int count, double seconds)
{
    for (int i = 0; i < count; i++) {
        cr_assert(b->n < b->cap);
        counted_arg a = {.runs_off = b->runs_off, .idx = (uint32_t)b->n, .seconds = seconds};
        cr_assert_eq(pp_submit(b->ex, task_counted, &a, sizeof a, &b->f[b->n]), 0);
        b->n++;
    }
}

/* Every future done: ok ones ran exactly once and returned their index;
 * failed ones (only @allowed_err) ran at most once. Returns the failures. */
static int batch_check(batch *b, int allowed_err)
{
    int failed = 0;
    for (int i = 0; i < b->n; i++) {
        const void *res;
        size_t len;
        int rc = pp_future_result(b->f[i], PPT_PROMPT(30), &res, &len);
        /* relaxed: the task's increment happened before its future was done. */
        uint32_t runs = atomic_load_explicit(&b->runs[i], memory_order_relaxed);
        if (rc == 0) {
            cr_assert_eq(len, sizeof(uint32_t));
            cr_assert_eq(*(const uint32_t *)res, (uint32_t)i);
            cr_assert_eq(runs, 1, "task %d ran %u times", i, runs);
        } else {
            cr_assert_eq(rc, allowed_err, "task %d: %s", i, pp_strerror(rc));
            cr_assert_leq(runs, 1, "failed task %d ran %u times", i, runs);
            failed++;
        }
    }
    return failed;
}

static void batch_free(batch *b)
{
    for (int i = 0; i < b->n; i++)
        pp_future_release(b->f[i]);
    free(b->f);
}

/* Live (not zombie) processes whose parent is @parent. */
static int children_of(pid_t parent)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t ppid;
        char st;
        if (ppt_proc_stat((pid_t)atoi(e->d_name), &ppid, &st) && ppid == parent && st != 'Z' &&
            st != 'X')
            count++;
    }
    closedir(d);
    return count;
}

/* The manager's pid: the parent of worker 0. */
static pid_t manager_of(pp_executor *ex)
{
    pp_worker_stats w;
    cr_assert_eq(pp_executor_stats(ex, NULL, &w, 1) >= 1, true);
    pid_t ppid = 0;
    char st;
    cr_assert(ppt_proc_stat(w.pid, &ppid, &st));
    return ppid;
}

static bool gone(pid_t pid)
{
    char st;
    pid_t pp;
    return !ppt_proc_stat(pid, &pp, &st) || st == 'Z' || st == 'X';
}

static pp_executor *make_pool(int workers, pp_pin_policy pin, pp_death_policy death)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cfg.pin = pin;
    cfg.on_worker_death = death;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    return ex;
}

/* The pool's counters against what the futures said: @died futures failed
 * because their worker died (PP_EWORKER: a task no worker finished, so the
 * statistics count it nowhere); every other one completed; no task raised. */
static void assert_stats_add_up(pp_executor *ex, int submitted, int died)
{
    pp_stats st;
    /* A worker counts a task just after publishing it: wait for the count
     * (after pp_shutdown(wait) it is already final). */
    PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 1 &&
                     st.completed >= (uint64_t)(submitted - died),
                 PPT_PROMPT(5));
    cr_assert_eq(st.submitted, (uint64_t)submitted);
    cr_assert_eq(st.completed, (uint64_t)(submitted - died), "completed %llu, want %d",
                 (unsigned long long)st.completed, submitted - died);
    cr_assert_eq(st.failed + st.cancelled, 0);
    cr_assert_eq(st.queued + st.running + st.backlog, 0);
}

/* ------------------------------------------------------------------------ */
/* tests                                                                     */
/* ------------------------------------------------------------------------ */

Test(resize, invalid_arguments, .init = pp_test_setup, .fini = pp_test_teardown, .timeout = 30)
{
    cr_assert_eq(pp_executor_resize(NULL, 2), -EINVAL);
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin_strict = 1;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    cr_assert_eq(pp_executor_resize(ex, 0), -EINVAL);
    cr_assert_eq(pp_executor_resize(ex, -1), -EINVAL);
    cr_assert_eq(pp_executor_resize(ex, 4097), -EINVAL);
    cpu_set_t set;
    int ncpu = ppt_allowed_cpus(&set);
    cr_assert_eq(pp_executor_resize(ex, ncpu + 1), -EINVAL, "strict: cannot be placed");
    cr_assert_eq(pp_max_workers(ex), 1, "a refused resize changes nothing");
    /* A fork()ed child is not the client (a worker is one too). */
    pid_t pid = fork();
    if (pid == 0)
        _exit(pp_executor_resize(ex, 1) == PP_EFORKED ? 0 : 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    cr_assert_eq(pp_executor_resize(ex, 1), -ESHUTDOWN);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(resize, grow_places_by_plan_and_shrink_retires, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    cpu_set_t set;
    if (ppt_allowed_cpus(&set) < 2)
        cr_skip_test("needs 2 CPUs");
    pp_executor *ex = make_pool(1, PP_PIN_COMPACT, PP_DEATH_BREAK);
    cr_assert(strstr(pp_executor_topology(ex), "; 1 workers") != NULL, "%s",
              pp_executor_topology(ex));
    cr_assert_eq(pp_executor_resize(ex, 2), 0);
    cr_assert_eq(pp_max_workers(ex), 2);
    cr_assert(strstr(pp_executor_topology(ex), "; 2 workers") != NULL, "%s",
              pp_executor_topology(ex));
    pp_worker_stats w[2];
    pp_stats st;
    cr_assert_eq(pp_executor_stats(ex, &st, w, 2), 2);
    cr_assert_eq(st.workers, 2);
    cr_assert(w[1].pid > 0 && w[1].pid != w[0].pid);
    cr_assert(w[1].cpu >= 0 && w[1].cpu != w[0].cpu, "new worker on its own core");
    cr_assert_eq(w[1].ncpus, 1);
    /* It runs where the statistics say, and it is the manager's child. */
    double s = 0.3;
    pp_future *f[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pp_submit(ex, ppt_task_affinity, &s, sizeof s, &f[i]), 0);
    for (int i = 0; i < 2; i++) {
        const void *res;
        cr_assert_eq(pp_future_result(f[i], PPT_PROMPT(20), &res, NULL), 0);
        const ppt_affinity *a = res;
        cr_assert_eq(CPU_COUNT(&a->mask), 1);
        cr_assert(CPU_ISSET(w[a->worker].cpu, &a->mask));
        pp_future_release(f[i]);
    }
    pid_t mgr = manager_of(ex);
    cr_assert_eq(children_of(mgr), 2);
    /* Shrink: the idle worker 1 leaves. */
    pid_t old1 = w[1].pid;
    int cpu1 = w[1].cpu;
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    cr_assert_eq(pp_max_workers(ex), 1);
    cr_assert_eq(pp_executor_stats(ex, &st, w, 2), 1);
    cr_assert_eq(st.workers, 1);
    cr_assert(strstr(pp_executor_topology(ex), "; 1 workers") != NULL);
    cr_assert(PPT_WAIT_FOR(gone(old1), PPT_PROMPT(5)), "retired worker %d still there",
              (int)old1);
    cr_assert(PPT_WAIT_FOR(children_of(mgr) == 1, PPT_PROMPT(5)));
    /* Grow back: a new process in the same place. */
    cr_assert_eq(pp_executor_resize(ex, 2), 0);
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 2), 2);
    cr_assert(w[1].pid > 0 && w[1].pid != old1);
    cr_assert_eq(w[1].cpu, cpu1);
    cr_assert_eq(w[1].respawns, 0, "a start after a resize is not a respawn");
    cr_assert_eq(children_of(mgr), 2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(resize, shrink_never_kills_a_running_task, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_PIN_NONE, PP_DEATH_BREAK);
    batch b;
    batch_init(&b, ex, 2);
    batch_submit(&b, 2, 0.8);
    cr_assert(PPT_WAIT_FOR(pp_future_running(b.f[0]) && pp_future_running(b.f[1]),
                           PPT_PROMPT(10)));
    pp_worker_stats w[2];
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 2), 2);
    double t0 = ppt_now();
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    cr_assert_lt(ppt_now() - t0, 0.6, "resize waited for the busy worker");
    cr_assert_not(gone(w[1].pid), "the busy worker was killed");
    cr_assert_eq(batch_check(&b, 0), 0);
    cr_assert(PPT_WAIT_FOR(gone(w[1].pid), PPT_PROMPT(5)), "it leaves after its task");
    cr_assert_not(gone(w[0].pid));
    assert_stats_add_up(ex, 2, 0);
    /* The pool goes on with one worker. */
    batch_free(&b);
    batch_init(&b, ex, 4);
    batch_submit(&b, 4, 0);
    cr_assert_eq(batch_check(&b, 0), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
}

Test(resize, grow_while_a_backlog_waits, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin = PP_PIN_NONE;
    cfg.slots = 8; /* most of the tasks wait in the client backlog */
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    batch b;
    batch_init(&b, ex, 60);
    batch_submit(&b, 60, 0.01);
    cr_assert_eq(pp_executor_resize(ex, 3), 0);
    cr_assert_eq(batch_check(&b, 0), 0);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    assert_stats_add_up(ex, 60, 0);
    pp_worker_stats w[3];
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 3), 3);
    cr_assert_gt(w[1].tasks + w[2].tasks, 0, "the new workers took none of the backlog");
    cr_assert_eq(w[0].tasks + w[1].tasks + w[2].tasks, 60);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
}

Test(resize, exact_accounting_under_load, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 90)
{
    pp_executor *ex = make_pool(2, PP_PIN_NONE, PP_DEATH_BREAK);
    const int sizes[] = {3, 1, 2, 1, 4, 2, 1, 3};
    const int per = 40;
    batch b;
    batch_init(&b, ex, per * 9);
    batch_submit(&b, per, 0.001);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_assert_eq(pp_executor_resize(ex, sizes[i]), 0);
        cr_assert_eq(pp_max_workers(ex), sizes[i]);
        batch_submit(&b, per, i % 2 ? 0.002 : 0);
    }
    cr_assert_eq(batch_check(&b, 0), 0);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    assert_stats_add_up(ex, b.n, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
}

typedef struct racer {
    pp_executor *ex;
    _Atomic int stop;
    int last_rc;
    int resizes;
} racer;

static void *resize_loop(void *p)
{
    racer *r = p;
    /* relaxed: a stop flag. */
    for (int i = 0; !atomic_load_explicit(&r->stop, memory_order_relaxed); i++) {
        int rc = pp_executor_resize(r->ex, 1 + i % 3);
        r->last_rc = rc;
        if (rc)
            break;
        r->resizes++;
    }
    return NULL;
}

Test(resize, racing_shutdown_loses_nothing, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 90)
{
    pp_executor *ex = make_pool(2, PP_PIN_NONE, PP_DEATH_BREAK);
    batch b;
    batch_init(&b, ex, 200);
    racer r = {.ex = ex};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, resize_loop, &r), 0);
    batch_submit(&b, 200, 0.0005);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    /* relaxed: a stop flag; the thread is joined after. */
    atomic_store_explicit(&r.stop, 1, memory_order_relaxed);
    pthread_join(th, NULL);
    cr_assert(r.last_rc == 0 || r.last_rc == -ESHUTDOWN, "resize: %s", pp_strerror(r.last_rc));
    cr_assert_eq(pp_executor_resize(ex, 2), -ESHUTDOWN);
    cr_assert_eq(batch_check(&b, 0), 0);
    assert_stats_add_up(ex, 200, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
}

/* RESPAWN: workers SIGKILLed while a shrink retires them. The task each
 * ran fails with PP_EWORKER (never runs twice), everything else completes,
 * and only positions below the size are replaced. */
Test(resize, respawn_kill9_during_shrink, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 90)
{
    pp_executor *ex = make_pool(3, PP_PIN_NONE, PP_DEATH_RESPAWN);
    pid_t mgr = manager_of(ex);
    batch b;
    batch_init(&b, ex, 60);
    batch_submit(&b, 60, 0.02);
    cr_assert(PPT_WAIT_FOR(pp_executor_stats(ex, &(pp_stats){0}, NULL, 0) > 0 &&
                               b.runs[0] + b.runs[1] + b.runs[2] >= 2,
                           PPT_PROMPT(10)));
    pp_worker_stats w[3];
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 3), 3);
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    kill(w[2].pid, SIGKILL); /* retiring: busy or idle */
    kill(w[0].pid, SIGKILL); /* staying: replaced */
    int failed = batch_check(&b, PP_EWORKER);
    cr_assert_leq(failed, 2);
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 3), 1);
    cr_assert(PPT_WAIT_FOR(children_of(mgr) == 1, PPT_PROMPT(5)), "%d workers",
              children_of(mgr));
    /* The pool goes on. */
    batch tail;
    batch_init(&tail, ex, 3);
    batch_submit(&tail, 3, 0);
    cr_assert_eq(batch_check(&tail, 0), 0);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    assert_stats_add_up(ex, 63, failed);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
    batch_free(&tail);
}

/* BREAK: a shrink is not a death; the pool stays whole while busy
 * workers retire. A retiring worker SIGKILLed while it holds a task still
 * breaks the pool, as on_worker_death says. */
Test(resize, break_policy_shrink_is_not_a_death, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    pp_executor *ex = make_pool(3, PP_PIN_NONE, PP_DEATH_BREAK);
    batch b;
    batch_init(&b, ex, 30);
    batch_submit(&b, 30, 0.01);
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    cr_assert_eq(batch_check(&b, 0), 0);
    pp_exception cause;
    cr_assert_eq(pp_executor_broken_cause(ex, &cause), 0);
    cr_assert_eq(cause.error, 0, "broken: %s", cause.message);
    cr_assert_eq(pp_executor_resize(ex, 2), 0);
    /* Now a busy retiring worker dies. */
    batch k;
    batch_init(&k, ex, 2);
    batch_submit(&k, 2, 5.0);
    cr_assert(PPT_WAIT_FOR(pp_future_running(k.f[0]) && pp_future_running(k.f[1]),
                           PPT_PROMPT(10)));
    pp_worker_stats w[2];
    cr_assert_eq(pp_executor_stats(ex, NULL, w, 2), 2);
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    kill(w[1].pid, SIGKILL);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pp_future_result(k.f[i], PPT_PROMPT(20), NULL, NULL), PP_EBROKEN);
    cr_assert_eq(pp_executor_resize(ex, 2), PP_EBROKEN);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
    batch_free(&k);
}

Test(resize, max_tasks_per_child_recycles_only_kept_positions, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 3);
    cfg.pin = PP_PIN_NONE;
    cfg.max_tasks_per_child = 3;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    pid_t mgr = manager_of(ex);
    batch b;
    batch_init(&b, ex, 80);
    batch_submit(&b, 40, 0.002);
    cr_assert_eq(pp_executor_resize(ex, 1), 0);
    batch_submit(&b, 40, 0.001);
    cr_assert_eq(batch_check(&b, 0), 0);
    cr_assert(PPT_WAIT_FOR(children_of(mgr) == 1, PPT_PROMPT(5)), "%d workers",
              children_of(mgr));
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_assert_geq(st.respawns, 80 / 3 - 3, "recycled %llu times",
                  (unsigned long long)st.respawns);
    cr_assert_eq(pp_executor_resize(ex, 2), 0);
    cr_assert_eq(children_of(mgr), 2);
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    assert_stats_add_up(ex, 80, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    batch_free(&b);
}

static _Atomic int cb_rc = 1;

static int cb_resize(pp_future *f, void *ud)
{
    (void)f;
    /* relaxed: read after the flag's wait below sees it change. */
    atomic_store_explicit(&cb_rc, pp_executor_resize(ud, 2), memory_order_relaxed);
    return 0;
}

Test(resize, from_a_done_callback, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_PIN_NONE, PP_DEATH_BREAK);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), 0);
    cr_assert_eq(pp_future_add_done_callback(f, cb_resize, ex), 0);
    /* relaxed: polled. */
    cr_assert(PPT_WAIT_FOR(atomic_load_explicit(&cb_rc, memory_order_relaxed) != 1,
                           PPT_PROMPT(10)));
    cr_assert_eq(atomic_load_explicit(&cb_rc, memory_order_relaxed), 0);
    cr_assert_eq(pp_max_workers(ex), 2);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

static int initialized; /* per worker process */

static int init_mark(const void *a, size_t n)
{
    (void)a;
    (void)n;
    initialized = 1;
    return 0;
}

static int task_initialized(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    int r[2] = {pp_task_worker(t), initialized};
    return pp_task_set_result(t, r, sizeof r);
}

Test(resize, grown_workers_run_the_initializer, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin = PP_PIN_NONE;
    cfg.initializer = init_mark;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    cr_assert_eq(pp_executor_resize(ex, 2), 0);
    double s = 0.3;
    pp_future *f[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pp_submit(ex, task_initialized, &s, sizeof s, &f[i]), 0);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        const void *res;
        cr_assert_eq(pp_future_result(f[i], PPT_PROMPT(20), &res, NULL), 0);
        const int *r = res;
        cr_assert_eq(r[1], 1, "worker %d skipped the initializer", r[0]);
        seen |= 1 << r[0];
        pp_future_release(f[i]);
    }
    cr_assert_eq(seen, 3, "both workers ran a task");
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* A grown worker whose initializer fails breaks the pool, as at create.
 * The initializer fails once the file named by its argument exists. */
static int init_fails_once_file(const void *a, size_t n)
{
    (void)n;
    return access((const char *)a, F_OK) == 0 ? 1 : 0;
}

Test(resize, failing_initializer_in_a_grown_worker_breaks, .init = pp_test_setup,
     .fini = pp_test_teardown, .timeout = 60)
{
    char path[] = "/tmp/ppt_resize_initXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    unlink(path);
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.pin = PP_PIN_NONE;
    cfg.initializer = init_fails_once_file;
    cfg.initargs = path;
    cfg.initargs_size = sizeof path;
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert(fd >= 0);
    close(fd);
    int rc = pp_executor_resize(ex, 2);
    unlink(path);
    cr_assert_eq(rc, PP_EBROKEN, "resize: %s", pp_strerror(rc));
    pp_future *f;
    cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &f), PP_EBROKEN);
    pp_exception cause;
    cr_assert_eq(pp_executor_broken_cause(ex, &cause), 0);
    cr_assert(strstr(cause.message, "initializer") != NULL, "%s", cause.message);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* From inside a task: the worker is not the client. Under FORK it holds a
 * copy of the handle (PP_EFORKED); under SPAWN/FORKSERVER its global was
 * never set (-EINVAL). Either way the pool keeps its size. */
static pp_executor *g_ex;

static int task_resizes(pp_task *t)
{
    int rc = pp_executor_resize(g_ex, 3);
    return pp_task_set_result(t, &rc, sizeof rc);
}

Test(resize, from_inside_a_task_is_refused, .init = pp_test_setup, .fini = pp_test_teardown,
     .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_PIN_NONE, PP_DEATH_BREAK);
    g_ex = ex;
    pp_future *f;
    cr_assert_eq(pp_submit(ex, task_resizes, NULL, 0, &f), 0);
    const void *res;
    cr_assert_eq(pp_future_result(f, PPT_PROMPT(20), &res, NULL), 0);
    int rc = *(const int *)res;
    cr_assert(rc == PP_EFORKED || rc == -EINVAL, "resize in a worker: %s", pp_strerror(rc));
    cr_assert_eq(pp_max_workers(ex), 1);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
