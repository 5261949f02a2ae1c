/*
 * test_crash.c — worker processes that die: workers SIGKILLed under load
 * (policies RESPAWN and BREAK), tasks that crash in every way a process can
 * die (segfault, abort, exit(3), RLIMIT_AS), the backlog of a broken pool, a
 * worker dying inside the ring's dequeue (rows 20, 24), OOM kills and kills
 * mid-task (rows 12, 13), dispatch to a dead worker (row 22), kills during
 * arena churn (row 25), respawns while client threads hold malloc locks
 * (row 8), and a replacement killed while it starts.
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Waits are deadline loops on a condition; task
 * functions sleep or spin as their workload. Shared helpers, start methods,
 * sanitizers and the known-failures rows that do not apply: faults_util.h.
 *
 * Test hook: PPOOL_TEST_DIE_IN_POP=N (set before pp_executor_create, unset
 * after; the manager and every worker it starts inherit it) makes each worker
 * SIGKILL itself inside its N-th ring dequeue, between the ticket CAS and the
 * release of the cell.
 */
#include "faults_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ======================================================================== */
/* task functions (run in workers)                                          */
/* ======================================================================== */

/* A page nobody may touch, mapped before the fault (the RLIMIT_AS task can
 * map nothing afterwards). */
static volatile int *guard_page(void)
{
    static volatile int *g;
    if (!g) {
        void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        g = p == MAP_FAILED ? (volatile int *)16 : (volatile int *)p;
    }
    return g;
}

/* A real segmentation fault, reported by the kernel as SIGSEGV also under
 * ASan + UBSan: a store to a PROT_NONE page (a NULL store would be reported
 * by UBSan first, and turned into exit(1) with halt_on_error). */
static _Noreturn void segv_now(void)
{
    volatile int *p = guard_page();
    no_core();
    segv_default();
    *p = 1;
    raise(SIGSEGV);
    _exit(99);
}

/* Argument double s: sleep s, then crash in the named way. Each notes its
 * pid in g_sh first. */
static int task_segv(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    note_pid();
    segv_now();
}

static int task_exit3(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    note_pid();
#if PPT_ASAN
    /* exit() would run LeakSanitizer in the worker, which reports the
     * client's inherited heap and changes the status to 23. */
    _exit(3);
#else
    exit(3);
#endif
}

/* Allocates until RLIMIT_AS stops it (malloc returns NULL), then faults
 * (SIGSEGV). */
static int task_oom(pp_task *t)
{
    note_pid();
    no_core();
    (void)guard_page();
    /* The limit: what is mapped now plus 256 MiB. */
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1)
        return pp_task_raise(t, 1, "cannot read /proc/self/statm");
    fclose(f);
    rlim_t lim = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
    struct rlimit rl = {lim, lim};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return pp_task_raise(t, 2, "setrlimit(RLIMIT_AS): %s", strerror(errno));
    const size_t chunk = 1u << 20;
    char *p = NULL;
    for (size_t total = 0; total < ((size_t)8 << 30); total += chunk) {
#if PPT_ASAN
        /* ASan's malloc dies on OOM instead of returning NULL: map directly. */
        p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            p = NULL;
#else
        p = malloc(chunk);
#endif
        if (!p)
            break;
        memset(p, 0xa5, chunk);
    }
    if (p)
        return pp_task_raise(t, 3, "RLIMIT_AS never stopped the allocations");
    /* Out of memory: touch memory it does not have, as a careless program
     * using the NULL would (the NULL itself would be reported by UBSan). */
    segv_now();
}

/* Touches 32 MiB (an "OOM candidate"), notes its pid, sleeps the argument. */
static int task_hog(pp_task *t)
{
    size_t n = 32u << 20;
    char *p = malloc(n);
    if (p)
        memset(p, 1, n);
    note_pid();
    ppt_sleep(ppt_arg_seconds(t));
    free(p);
    return 0;
}

/* Notes its pid, then sleeps the argument (interrupted only by a kill). */
static int task_note_sleep(pp_task *t)
{
    note_pid();
    ppt_sleep(ppt_arg_seconds(t));
    return 0;
}

/* Argument {double s; int32 idx}: notes its pid as task_pid[idx], then for s
 * seconds re-sizes its (arena) result over and over (arena alloc + free under
 * the arena's robust mutex), then returns a 100 KiB pattern. */
typedef struct churn_arg {
    double s;
    int32_t idx;
} churn_arg;

static int task_arena_churn(pp_task *t)
{
    churn_arg ca;
    memcpy(&ca, pp_task_arg(t, NULL), sizeof ca);
    if (sh())
        atomic_store(&sh()->task_pid[ca.idx & 3], (int)getpid());
    double dl = ppt_deadline(ca.s);
    for (unsigned i = 0; !ppt_expired(dl); i++) {
        unsigned char *r = pp_task_result(t, (size_t)(16 + (i % 16)) * 4096);
        if (r)
            r[0] = (unsigned char)i;
    }
    size_t n = 100 * 1024;
    unsigned char *r = pp_task_result(t, n);
    if (!r)
        return pp_task_raise(t, 1, "no arena room");
    ppt_fill_pattern(r, n);
    return 0;
}

/* ======================================================================== */
/* worker deaths under load                                                 */
/* ======================================================================== */

#define LOAD_TOTAL 100000
#define LOAD_THREADS 2
#define LOAD_PER_THREAD (LOAD_TOTAL / LOAD_THREADS)
#define LOAD_BATCH 2500

typedef struct load_arg {
    uint32_t thread, i;
} load_arg;

/* The load: about 20 us of work, result = the hash of the argument. */
#define LOAD_TASK_US 20e-6
static int task_load(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    double until = ppt_now() + LOAD_TASK_US;
    while (ppt_now() < until)
        ;
    uint64_t h = ppt_fnv1a64(a, n);
    (void)pp_task_set_result(t, &h, sizeof h);
    return 0;
}

typedef struct load_ctx {
    pp_executor *ex;
    uint32_t id;
    long ok, eworker, broken, submit_broken, wrong_value, bad_code, other;
    int first_other;
    char bad_msg[200];
} load_ctx;

static void *load_client(void *p)
{
    load_ctx *c = p;
    pp_future **fs = calloc(LOAD_BATCH, sizeof *fs);
    if (!fs) {
        c->other = LOAD_PER_THREAD;
        return NULL;
    }
    for (uint32_t base = 0; base < LOAD_PER_THREAD; base += LOAD_BATCH) {
        for (uint32_t k = 0; k < LOAD_BATCH; k++) {
            load_arg a = {c->id, base + k};
            int rc = pp_submit(c->ex, task_load, &a, sizeof a, &fs[k]);
            if (rc == PP_EBROKEN) {
                c->submit_broken++;
            } else if (rc != 0) {
                c->other++;
                if (!c->first_other)
                    c->first_other = rc;
            }
        }
        for (uint32_t k = 0; k < LOAD_BATCH; k++) {
            if (!fs[k])
                continue;
            load_arg a = {c->id, base + k};
            pp_exception e;
            int rc = pp_future_exception(fs[k], 60.0, &e);
            const void *d = NULL;
            size_t n = 0;
            if (rc != 0) {
                c->other++;
                if (!c->first_other)
                    c->first_other = rc;
            } else if (e.error == 0) {
                uint64_t got;
                if (pp_future_result(fs[k], 0, &d, &n) == 0 && n == sizeof got &&
                    (memcpy(&got, d, sizeof got), got == ppt_fnv1a64(&a, sizeof a)))
                    c->ok++;
                else
                    c->wrong_value++;
            } else if (e.error == PP_EWORKER) {
                c->eworker++;
                if (e.code != SIGKILL || e.pid <= 0) {
                    c->bad_code++;
                    snprintf(c->bad_msg, sizeof c->bad_msg, "code %d pid %d: %s", e.code,
                             (int)e.pid, e.message);
                }
            } else if (e.error == PP_EBROKEN) {
                c->broken++;
            } else {
                c->other++;
                if (!c->first_other)
                    c->first_other = e.error;
            }
            pp_future_release(fs[k]);
            fs[k] = NULL;
        }
    }
    free(fs);
    return NULL;
}

typedef struct killer_ctx {
    pp_executor *ex;
    pid_t manager;
    _Atomic int stop;
    long kills;
    bool once; /* BREAK: one kill, then stop */
    double period;
} killer_ctx;

static void *killer_main(void *p)
{
    killer_ctx *k = p;
    unsigned seed = 12345;
    int nw = pp_max_workers(k->ex);
    pp_worker_stats ws[16];
    pid_t prev[16] = {0};
    if (nw > 16)
        nw = 16;
    while (!atomic_load(&k->stop)) {
        ppt_sleep(k->period); /* the rhythm of the fault injection */
        if (atomic_load(&k->stop))
            break;
        if (pp_executor_stats(k->ex, NULL, ws, nw) <= 0)
            continue;
        int w = (int)(rand_r(&seed) % (unsigned)nw);
        pid_t pid = ws[w].pid, ppid = 0;
        char st = '?';
        bool settled = pid == prev[w];
        for (int i = 0; i < nw; i++)
            prev[i] = ws[i].pid;
        /* Only a live worker of this pool (guards against a stale pid), and
         * one that was there a period ago: a replacement killed while it
         * starts breaks the pool even under RESPAWN (its own test,
         * respawn_replacement_killed_while_starting_is_replaced). */
        if (!settled || pid <= 0 || !ppt_proc_stat(pid, &ppid, &st) || ppid != k->manager ||
            st == 'Z')
            continue;
        if (kill(pid, SIGKILL) == 0) {
            k->kills++;
            if (k->once)
                break;
        }
    }
    return NULL;
}

/* The pool's counters once every future is done: every accepted task is
 * counted exactly once (a task lost with its worker or to the broken pool
 * as failed). */
static pp_stats load_stats;

static void run_load(pp_death_policy policy, load_ctx *ctx, killer_ctx *killer)
{
    pp_executor *ex = make_pool(2, policy);
    memset(killer, 0, sizeof *killer);
    killer->ex = ex;
    killer->manager = manager_pid_of(ex);
    killer->period = 0.1;
    killer->once = policy == PP_DEATH_BREAK;
    pthread_t th[LOAD_THREADS], kt;
    for (int i = 0; i < LOAD_THREADS; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].ex = ex;
        ctx[i].id = (uint32_t)i;
        cr_assert_eq(pthread_create(&th[i], NULL, load_client, &ctx[i]), 0);
    }
    cr_assert_eq(pthread_create(&kt, NULL, killer_main, killer), 0);
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&killer->stop, 1);
    pthread_join(kt, NULL);
    pp_shutdown(ex, true, false);
    cr_assert_geq(pp_executor_stats(ex, &load_stats, NULL, 0), 1);
    cr_expect_eq(load_stats.submitted,
                 load_stats.completed + load_stats.failed + load_stats.cancelled +
                     load_stats.killed,
                 "stats: submitted %llu != completed %llu + failed %llu + cancelled %llu + "
                 "killed %llu",
                 (unsigned long long)load_stats.submitted, (unsigned long long)load_stats.completed,
                 (unsigned long long)load_stats.failed, (unsigned long long)load_stats.cancelled,
                 (unsigned long long)load_stats.killed);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(crash, load_respawn_kill9_every_100ms_accounting_exact, PPT_FIXTURE, .timeout = 120)
{
    load_ctx ctx[LOAD_THREADS];
    killer_ctx killer;
    double t0 = ppt_now();
    run_load(PP_DEATH_RESPAWN, ctx, &killer);
    long ok = 0, ew = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        cr_expect_eq(ctx[i].other, 0, "thread %d: %ld unexpected outcomes (first %d %s)", i,
                     ctx[i].other, ctx[i].first_other, pp_strerror(ctx[i].first_other));
        cr_expect_eq(ctx[i].broken + ctx[i].submit_broken, 0,
                     "thread %d: %ld broken futures, %ld broken submits under RESPAWN", i,
                     ctx[i].broken, ctx[i].submit_broken);
        cr_expect_eq(ctx[i].wrong_value, 0, "thread %d: %ld wrong results", i,
                     ctx[i].wrong_value);
        cr_expect_eq(ctx[i].bad_code, 0, "thread %d: %ld PP_EWORKER without code 9 (%s)", i,
                     ctx[i].bad_code, ctx[i].bad_msg);
        ok += ctx[i].ok;
        ew += ctx[i].eworker;
    }
    cr_expect_eq(ok + ew, LOAD_TOTAL, "ok %ld + PP_EWORKER %ld != %d", ok, ew, LOAD_TOTAL);
    cr_expect_leq(ew, killer.kills, "%ld PP_EWORKER futures but only %ld kills", ew,
                  killer.kills);
    cr_expect_eq(load_stats.failed, (uint64_t)ew, "stats.failed %llu, PP_EWORKER futures %ld",
                 (unsigned long long)load_stats.failed, ew);
    cr_expect_gt(killer.kills, 0, "the killer never killed (run too short?)");
    cr_log_info("load RESPAWN: %.2f s, %ld kills, %ld PP_EWORKER, %ld ok", ppt_now() - t0,
                killer.kills, ew, ok);
}

Test(crash, load_break_kill9_every_unfinished_future_fails_broken, PPT_FIXTURE, .timeout = 120)
{
    load_ctx ctx[LOAD_THREADS];
    killer_ctx killer;
    double t0 = ppt_now();
    run_load(PP_DEATH_BREAK, ctx, &killer);
    long ok = 0, br = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        cr_expect_eq(ctx[i].other, 0, "thread %d: %ld unexpected outcomes (first %d %s)", i,
                     ctx[i].other, ctx[i].first_other, pp_strerror(ctx[i].first_other));
        cr_expect_eq(ctx[i].eworker, 0, "thread %d: PP_EWORKER under BREAK", i);
        cr_expect_eq(ctx[i].wrong_value, 0, "thread %d: %ld wrong results", i,
                     ctx[i].wrong_value);
        ok += ctx[i].ok;
        br += ctx[i].broken + ctx[i].submit_broken;
    }
    cr_expect_eq(ok + br, LOAD_TOTAL, "ok %ld + broken %ld != %d", ok, br, LOAD_TOTAL);
    cr_expect_eq(killer.kills, 1);
    cr_expect_gt(br, 0, "the pool never broke");
    cr_log_info("load BREAK: %.2f s, %ld ok, %ld broken", ppt_now() - t0, ok, br);
}

/* ======================================================================== */
/* tasks that crash: segfault, abort, exit(3), RLIMIT_AS                      */
/* ======================================================================== */

typedef struct crash_kind {
    const char *name;
    pp_fn fn;
    int code; /* signal (> 0) or exit status (< 0) */
} crash_kind;

static const crash_kind CRASHES[] = {
    {"segfault", task_segv, SIGSEGV},
    {"abort", task_abort, SIGABRT},
    {"exit(3)", task_exit3, -3},
    {"RLIMIT_AS exhausted", task_oom, SIGSEGV},
};
#define NCRASH (int)(sizeof CRASHES / sizeof CRASHES[0])

Test(crash, crash_kinds_respawn_fail_one_future_with_signal_or_status, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    for (int k = 0; k < NCRASH; k++) {
        const crash_kind *c = &CRASHES[k];
        atomic_store(&g_sh->crash_pid, 0);
        /* A neighbour on the other worker must be unaffected. */
        pp_future *other = submit_secs(ex, ppt_task_sleepy, 0.2);
        pp_future *f = submit_secs(ex, c->fn, 0.0);
        pp_exception e = outcome(f, 30.0, c->name);
        cr_expect_eq(e.error, PP_EWORKER, "%s: error %d %s (%s)", c->name, e.error,
                     pp_strerror(e.error), e.message);
        cr_expect_eq(e.code, c->code, "%s: code %d, expected %d (%s)", c->name, e.code, c->code,
                     e.message);
        cr_expect_eq(e.pid, atomic_load(&g_sh->crash_pid), "%s: pid %d, the task ran in %d",
                     c->name, (int)e.pid, atomic_load(&g_sh->crash_pid));
        cr_expect(strlen(e.message) > 0, "%s: empty message", c->name);
        cr_expect_eq(pp_future_result(other, 30.0, NULL, NULL), 0, "%s: neighbour failed",
                     c->name);
        /* The pool goes on. */
        pp_future *after = submit_ok(ex, task_pid_seq, NULL, 0);
        cr_expect_eq(pp_future_result(after, 30.0, NULL, NULL), 0, "%s: pool did not go on",
                     c->name);
        pp_future_release(after);
        pp_future_release(other);
        pp_future_release(f);
    }
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= (uint64_t)NCRASH);
    cr_expect_eq(st.respawns, (uint64_t)NCRASH, "respawns %llu", (unsigned long long)st.respawns);
    cr_log_info("start method used: %d", (int)pp_start_method_used(ex));
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* pp_submit_opts.retries is for a lost MPI rank only: on one node a task
 * whose worker died is not run again (one death, one PP_EWORKER), whatever
 * it says. */
Test(crash, retries_do_not_rerun_a_task_whose_worker_died, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_RESPAWN);
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    cr_expect_eq(o.retries, 0);
    o.retries = 3;
    pp_future *f = NULL;
    cr_assert_eq(pp_submit_ex(ex, ppt_task_sigkill, NULL, 0, &o, &f), 0);
    pp_exception e = outcome(f, 30.0, "sigkill with retries");
    cr_expect_eq(e.error, PP_EWORKER, "error %d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL);
    pp_future_release(f);
    /* The pool goes on, and that worker died once. */
    pp_future *after = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_result(after, 30.0, NULL, NULL), 0);
    pp_future_release(after);
    pp_stats st;
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    STATS_WHEN(ex, st, st.respawns >= 1);
    cr_expect_eq(st.respawns, 1, "respawns %llu", (unsigned long long)st.respawns);
    cr_expect_eq(st.failed, 1);
    cr_expect_eq(st.completed, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(crash, crash_kinds_break_fail_pool_with_cause_and_pid, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    for (int k = 0; k < NCRASH; k++) {
        const crash_kind *c = &CRASHES[k];
        atomic_store(&g_sh->crash_pid, 0);
        pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
        pp_future *lng = submit_secs(ex, ppt_task_sleepy, 30.0);
        wait_running(lng, "long task");
        pp_future *f = submit_secs(ex, c->fn, 0.0);
        pp_future *queued[3];
        for (int i = 0; i < 3; i++)
            queued[i] = submit_secs(ex, ppt_task_sleepy, 30.0);
        double t0 = ppt_now();
        pp_exception e = outcome(f, 30.0, c->name);
        pid_t crasher = atomic_load(&g_sh->crash_pid);
        cr_expect_eq(e.error, PP_EBROKEN, "%s: error %d %s (%s)", c->name, e.error,
                     pp_strerror(e.error), e.message);
        cr_expect_eq(e.code, c->code, "%s: code %d, expected %d (%s)", c->name, e.code, c->code,
                     e.message);
        cr_expect_eq(e.pid, crasher, "%s: pid %d, the task ran in %d", c->name, (int)e.pid,
                     (int)crasher);
        /* Every other future fails with the same cause, promptly. */
        pp_future *rest[4] = {lng, queued[0], queued[1], queued[2]};
        for (int i = 0; i < 4; i++) {
            pp_exception o = outcome(rest[i], 5.0, c->name);
            cr_expect_eq(o.error, PP_EBROKEN, "%s: other future %d: %d %s", c->name, i, o.error,
                         pp_strerror(o.error));
            cr_expect_eq(o.code, c->code, "%s: other future %d: code %d", c->name, i, o.code);
            cr_expect_eq(o.pid, crasher, "%s: other future %d: pid %d", c->name, i, (int)o.pid);
        }
        cr_expect_lt(ppt_now() - t0, 10.0);
        pp_future *g = NULL;
        int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
        cr_expect_eq(rc, PP_EBROKEN, "%s: submit after break: %d %s", c->name, rc,
                     pp_strerror(rc));
        cr_expect_null(g);
        cr_assert_eq(pp_executor_destroy(ex), 0);
        release_all(rest, 4);
        pp_future_release(f);
    }
}

/* Header, PP_DEATH_BREAK: "Every pending and running future fails with
 * PP_EBROKEN (pp_future_exception gives the dead worker's pid and signal)" —
 * pending includes futures still in the client-side backlog. */
Test(crash, break_backlog_futures_carry_the_cause, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    pp_config cfg = cfg_of(1, PP_DEATH_BREAK);
    cfg.slots = 4;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *bad = submit_secs(ex, task_abort, 0.1);
    enum { N = 40 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_secs(ex, ppt_task_sleepy, 0.0);
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_expect_gt(st.backlog, 0, "nothing in the backlog");
    pp_exception e = outcome(bad, 30.0, "abort");
    pid_t crasher = atomic_load(&g_sh->crash_pid);
    cr_expect_eq(e.error, PP_EBROKEN);
    cr_expect_eq(e.code, SIGABRT);
    int wrong = 0, first = -1;
    for (int i = 0; i < N; i++) {
        pp_exception o = outcome(fs[i], 5.0, "pending");
        cr_expect_eq(o.error, PP_EBROKEN, "pending %d: %d %s", i, o.error, pp_strerror(o.error));
        if (o.code != SIGABRT || o.pid != crasher) {
            if (first < 0)
                first = i;
            wrong++;
        }
    }
    if (wrong) {
        pp_exception o = outcome(fs[first], 0, "pending");
        cr_expect_eq(wrong, 0,
                     "%d of %d pending futures lack the cause (first: #%d code %d pid %d "
                     "message \"%s\"; expected code %d pid %d)",
                     wrong, N, first, o.code, (int)o.pid, o.message, SIGABRT, (int)crasher);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
    pp_future_release(bad);
}

/* ======================================================================== */
/* a worker dying inside the ring's dequeue (rows 20 and 24)                  */
/* ======================================================================== */

static pp_executor *make_pool_dying_in_pop(int workers, pp_death_policy policy, int nth)
{
    char v[16];
    snprintf(v, sizeof v, "%d", nth);
    cr_assert_eq(setenv("PPOOL_TEST_DIE_IN_POP", v, 1), 0);
    pp_config cfg = cfg_of(workers, policy);
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    unsetenv("PPOOL_TEST_DIE_IN_POP");
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    return ex;
}

static void check_die_in_pop_respawn(int workers, int n, int nth)
{
    pp_executor *ex = make_pool_dying_in_pop(workers, PP_DEATH_RESPAWN, nth);
    double t0 = ppt_now();
    pp_future **fs = calloc((size_t)n, sizeof *fs);
    cr_assert_not_null(fs);
    for (int i = 0; i < n; i++) {
        uint32_t us = (uint32_t)(i % 7);
        fs[i] = submit_ok(ex, task_spin_us, &us, sizeof us);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        pp_exception e = outcome(fs[i], 30.0, "task");
        if (e.error != 0 && bad++ < 5)
            cr_expect(false, "task %d: %d %s (%s)", i, e.error, pp_strerror(e.error), e.message);
    }
    cr_expect_eq(bad, 0, "%d of %d tasks failed", bad, n);
    pp_stats st;
    STATS_WHEN(ex, st, st.completed >= (uint64_t)n);
    /* Each process dies in its nth pop: at least n/(nth-1) deaths. */
    cr_expect_geq(st.respawns, (uint64_t)(n / nth), "only %llu respawns",
                  (unsigned long long)st.respawns);
    cr_expect_eq(st.completed, (uint64_t)n);
    cr_log_info("die in pop (N=%d), %d worker(s): %d tasks, %llu respawns, %.2f s", nth, workers,
                n, (unsigned long long)st.respawns, ppt_now() - t0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, n);
    free(fs);
}

Test(crash, row24_worker_killed_between_ring_ticket_and_release_respawn_recovers, PPT_FIXTURE,
     .timeout = 90)
{
    check_die_in_pop_respawn(1, 1000, 7);
}

Test(crash, row20_worker_killed_inside_ring_critical_section_two_workers_recover, PPT_FIXTURE,
     .timeout = 90)
{
    check_die_in_pop_respawn(2, 1000, 7);
}

Test(crash, row20_worker_killed_inside_ring_critical_section_break_never_hangs, PPT_FIXTURE,
     .timeout = 60)
{
    pp_executor *ex = make_pool_dying_in_pop(2, PP_DEATH_BREAK, 3);
    enum { N = 200 };
    pp_future *fs[N];
    int submitted = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        uint32_t us = 10;
        int rc = pp_submit(ex, task_spin_us, &us, sizeof us, &fs[submitted]);
        if (rc == 0)
            submitted++;
        else {
            cr_expect_eq(rc, PP_EBROKEN, "submit %d: %d %s", i, rc, pp_strerror(rc));
            refused++;
        }
    }
    int ok = 0, broken = 0;
    for (int i = 0; i < submitted; i++) {
        pp_exception e = outcome(fs[i], 10.0, "task");
        if (e.error == 0)
            ok++;
        else if (e.error == PP_EBROKEN)
            broken++;
        else
            cr_expect(false, "task %d: %d %s", i, e.error, pp_strerror(e.error));
    }
    cr_expect_eq(ok + broken + refused, N);
    cr_expect_gt(broken + refused, 0, "the pool did not break");
    cr_expect_lt(ok, N);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, submitted);
}

/* ======================================================================== */
/* worker deaths: rows 12, 13, 22, 25                                        */
/* ======================================================================== */

/* Kills (SIGKILL, as the OOM killer does) the worker running @f, whose pid
 * the task noted in g_sh. Returns that pid. */
static pid_t kill_running_worker(pp_future *f)
{
    wait_running(f, "victim");
    cr_assert(PPT_WAIT_FOR(atomic_load(&g_sh->crash_pid) != 0, 10.0), "victim noted no pid");
    pid_t pid = atomic_load(&g_sh->crash_pid);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    return pid;
}

Test(crash, row12_oom_kill_one_worker_respawn_fails_one_future, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    pp_future *hog = submit_secs(ex, task_hog, 30.0);
    enum { N = 30 };
    pp_future *others[N];
    for (int i = 0; i < N; i++)
        others[i] = submit_secs(ex, ppt_task_sleepy, 0.005);
    pid_t pid = kill_running_worker(hog);
    pp_exception e = outcome(hog, PROMPT_S, "OOM-killed task");
    cr_expect_eq(e.error, PP_EWORKER, "%d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL);
    cr_expect_eq(e.pid, pid);
    expect_all_ok(others, N, 20.0, "the other futures");
    pp_future *g = submit_secs(ex, task_hog, 0.0);
    cr_expect_eq(pp_future_result(g, 10.0, NULL, NULL), 0, "pool did not go on");
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= 1);
    cr_expect_eq(st.respawns, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(others, N);
    pp_future_release(g);
    pp_future_release(hog);
}

Test(crash, row12_oom_kill_one_worker_break_policy_breaks_pool, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pp_future *hog = submit_secs(ex, task_hog, 30.0);
    pid_t pid = kill_running_worker(hog);
    pp_exception e = outcome(hog, PROMPT_S, "OOM-killed task");
    cr_expect_eq(e.error, PP_EBROKEN, "%d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL);
    cr_expect_eq(e.pid, pid);
    pp_future *g = NULL;
    cr_expect_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &g), PP_EBROKEN);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(hog);
}

static void check_kill_mid_task(pp_death_policy policy)
{
    shared_map();
    pp_executor *ex = make_pool(1, policy);
    pp_future *f = submit_secs(ex, task_note_sleep, 30.0);
    pp_future *behind = submit_secs(ex, ppt_task_sleepy, 0.0);
    pid_t pid = kill_running_worker(f);
    double t0 = ppt_now();
    pp_exception e = outcome(f, PROMPT_S, "task of the killed worker");
    cr_expect_lt(ppt_now() - t0, PROMPT_S);
    int want = policy == PP_DEATH_RESPAWN ? PP_EWORKER : PP_EBROKEN;
    cr_expect_eq(e.error, want, "%d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL);
    cr_expect_eq(e.pid, pid);
    pp_exception b = outcome(behind, 10.0, "the task behind");
    cr_expect_eq(b.error, policy == PP_DEATH_RESPAWN ? 0 : PP_EBROKEN, "behind: %d %s", b.error,
                 pp_strerror(b.error));
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(behind);
    pp_future_release(f);
}

Test(crash, row13_kill_worker_mid_task_future_resolves_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_kill_mid_task(PP_DEATH_RESPAWN);
}

Test(crash, row13_kill_worker_mid_task_future_resolves_break, PPT_FIXTURE, .timeout = 60)
{
    check_kill_mid_task(PP_DEATH_BREAK);
}

/* Row 22: dispatch to a worker that just died. First after its death is
 * certain (zombie), then racing with the SIGKILL itself. */
Test(crash, row22_submit_right_after_kill9_of_worker_completes, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_RESPAWN);
    pid_t mgr = manager_pid_of(ex);
    enum { ROUNDS = 20, N = 20 };
    long kills = 0, eworker = 0;
    for (int r = 0; r < ROUNDS; r++) {
        /* The current worker, in its task loop: the one that runs a task
         * (killing a replacement that is still starting breaks the pool,
         * see respawn_replacement_killed_while_starting_is_replaced). */
        pp_future *probe = submit_ok(ex, task_pid_seq, NULL, 0);
        const void *d = NULL;
        size_t sz = 0;
        int prc = pp_future_result(probe, 10.0, &d, &sz);
        cr_assert_eq(prc, 0, "round %d: probe: %d %s", r, prc, pp_strerror(prc));
        pid_seq ps;
        memcpy(&ps, d, sizeof ps);
        pp_future_release(probe);
        pid_t pid = ps.pid, ppid = 0;
        cr_assert(ppt_proc_stat(pid, &ppid, NULL) && ppid == mgr);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        kills++;
        bool racing = r & 1;
        if (!racing) /* dead for sure (a zombie or reaped) before we submit */
            cr_assert(PPT_WAIT_FOR(!proc_alive(pid), 5.0));
        pp_future *fs[N];
        for (int i = 0; i < N; i++)
            fs[i] = submit_ok(ex, task_pid_seq, NULL, 0);
        for (int i = 0; i < N; i++) {
            pp_exception e = outcome(fs[i], 10.0, "dispatched task");
            if (e.error == PP_EWORKER && racing) {
                cr_expect_eq(e.code, SIGKILL);
                cr_expect_eq(e.pid, pid, "round %d: a task failed on pid %d, we killed %d", r,
                             (int)e.pid, (int)pid);
                eworker++;
            } else {
                cr_expect_eq(e.error, 0, "round %d (%s): task %d: %d %s (%s)", r,
                             racing ? "racing" : "after death", i, e.error,
                             pp_strerror(e.error), e.message);
            }
        }
        release_all(fs, N);
    }
    cr_expect_leq(eworker, kills / 2);
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= (uint64_t)ROUNDS);
    cr_expect_eq(st.respawns, (uint64_t)ROUNDS);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Row 25: workers SIGKILLed while they allocate and free arena blocks (the
 * arena's process-shared robust mutex): the pool goes on, large results
 * still work. Best effort: some kills land inside the lock. */
Test(crash, row25_workers_killed_during_arena_churn_pool_goes_on, PPT_FIXTURE, .timeout = 60)
{
    shared_map();
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    pid_t mgr = manager_pid_of(ex);
    unsigned seed = 99;
    long kills = 0, eworker = 0, ok = 0;
    for (int r = 0; r < 20; r++) {
        pp_future *fs[2];
        for (int i = 0; i < 2; i++) {
            atomic_store(&g_sh->task_pid[i], 0);
            churn_arg ca = {0.05, i};
            fs[i] = submit_ok(ex, task_arena_churn, &ca, sizeof ca);
        }
        int w = r & 1;
        cr_assert(PPT_WAIT_FOR(atomic_load(&g_sh->task_pid[w]) != 0 || pp_future_done(fs[w]),
                               10.0));
        pid_t pid = atomic_load(&g_sh->task_pid[w]), ppid = 0;
        /* Some microseconds into the churn. */
        ppt_sleep((double)(rand_r(&seed) % 3000) * 1e-6);
        if (pid > 0 && ppt_proc_stat(pid, &ppid, NULL) && ppid == mgr && kill(pid, SIGKILL) == 0)
            kills++;
        for (int i = 0; i < 2; i++) {
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_result(fs[i], 20.0, &d, &n);
            if (rc == PP_EWORKER) {
                eworker++;
            } else {
                pp_exception e = outcome(fs[i], 0, "churner");
                cr_expect_eq(rc, 0, "round %d: %d %s (%s)", r, rc, pp_strerror(rc), e.message);
                if (rc == 0) {
                    cr_expect_eq(n, 100 * 1024);
                    cr_expect_eq(ppt_check_pattern(d, n), n, "round %d: result corrupt", r);
                    ok++;
                }
            }
        }
        release_all(fs, 2);
    }
    cr_expect_leq(eworker, kills);
    /* Everything still works, arena included. */
    size_t big = 1 << 20;
    pp_future *g = submit_ok(ex, ppt_task_big_result, &big, sizeof big);
    const void *d = NULL;
    size_t n = 0;
    cr_expect_eq(pp_future_result(g, 10.0, &d, &n), 0);
    cr_expect_eq(n, big);
    cr_log_info("arena churn: %ld kills, %ld PP_EWORKER, %ld ok", kills, eworker, ok);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(g);
}

/* ======================================================================== */
/* row 8: respawns while client threads hold malloc and other locks          */
/* ======================================================================== */

typedef struct churn_ctx {
    _Atomic int stop;
    pthread_mutex_t *m;
    long rounds;
} churn_ctx;

static void *malloc_churn(void *p)
{
    churn_ctx *c = p;
    while (!atomic_load(&c->stop)) {
        pthread_mutex_lock(c->m);
        void *a[16];
        for (int i = 0; i < 16; i++)
            a[i] = malloc((size_t)(16 << (i % 12)));
        for (int i = 0; i < 16; i++)
            free(a[i]);
        pthread_mutex_unlock(c->m);
        c->rounds++;
    }
    return NULL;
}

Test(crash, row8_respawns_while_client_threads_hold_malloc_locks, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg = cfg_of(2, PP_DEATH_RESPAWN);
    cfg.max_tasks_per_child = 1; /* a fork per task */
    pp_executor *ex = make_pool_cfg(&cfg);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    enum { T = 4 };
    churn_ctx c[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].m = &m;
        cr_assert_eq(pthread_create(&th[i], NULL, malloc_churn, &c[i]), 0);
    }
    enum { N = 300 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = (i % 50 == 49) ? submit_secs(ex, task_abort, 0.0)
                               : submit_ok(ex, task_pid_seq, NULL, 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 30.0, "task");
        int want = (i % 50 == 49) ? PP_EWORKER : 0;
        if (e.error != want && bad++ < 5)
            cr_expect(false, "task %d: %d %s", i, e.error, pp_strerror(e.error));
    }
    cr_expect_eq(bad, 0);
    for (int i = 0; i < T; i++)
        atomic_store(&c[i].stop, 1);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= (uint64_t)N - 2);
    cr_expect_geq(st.respawns, (uint64_t)N - 2);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
}

/* PP_DEATH_RESPAWN: "What happens when a worker process dies unexpectedly
 * (signal, exit(), OOM kill) while the pool runs ... a replacement worker is
 * started". A replacement SIGKILLed (an OOM kill) before it reached its task
 * loop is such a death: it must be replaced, not break the pool. */
Test(crash, respawn_replacement_killed_while_starting_is_replaced, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_RESPAWN);
    pid_t mgr = manager_pid_of(ex);
    for (int r = 0; r < 10; r++) {
        /* A worker that ran a task is in its loop: kill it. */
        pp_future *f = submit_ok(ex, task_pid_seq, NULL, 0);
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(f, 10.0, &d, &n);
        cr_assert_eq(rc, 0, "round %d: %d %s", r, rc, pp_strerror(rc));
        pid_seq ps;
        memcpy(&ps, d, sizeof ps);
        pp_future_release(f);
        cr_assert_eq(kill(ps.pid, SIGKILL), 0);
        /* Its replacement, as soon as it exists. */
        pp_worker_stats ws[1];
        pid_t repl = 0, ppid = 0;
        bool seen = PPT_WAIT_FOR((pp_executor_stats(ex, NULL, ws, 1) == 1 && ws[0].pid != ps.pid &&
                                  ws[0].pid > 0 && (repl = ws[0].pid)),
                                 10.0);
        cr_assert(seen, "round %d: no replacement", r);
        if (ppt_proc_stat(repl, &ppid, NULL) && ppid == mgr)
            kill(repl, SIGKILL);
        pp_future *g = NULL;
        rc = pp_submit(ex, task_pid_seq, NULL, 0, &g);
        if (rc == 0) {
            pp_exception e = outcome(g, 10.0, "after the replacement's death");
            rc = e.error;
            if (rc)
                cr_expect(false, "round %d: %d %s (%s)", r, rc, pp_strerror(rc), e.message);
            pp_future_release(g);
        } else {
            cr_expect(false, "round %d: submit: %d %s", r, rc, pp_strerror(rc));
        }
        if (rc)
            break;
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
