/*
 * faults_util.h — what the fault-injection suites (test_crash, test_recycle,
 * test_initializer, test_parent_death, test_kill) share: a block of memory
 * shared with the workers, task functions several of them submit (defined in
 * faults_util.c), and client-side helpers for pools, futures and /proc.
 *
 * Start methods: every test works under fork, spawn and forkserver (CTest
 * runs each suite under each; PPOOL_START_METHOD picks it). What workers must
 * share with the test (noted pids, initializer counts, a "go" flag) lives in
 * a memfd whose descriptor number is in the environment (shared_map / sh()),
 * never in inherited globals. Note that under Criterion the test process runs
 * a second thread, so AUTO means forkserver there.
 *
 * Sanitizers: crashes are made so that ASan/UBSan cannot turn them into
 * exit(1) (SIGSEGV reset with the raw system call, a store to a PROT_NONE
 * page rather than to NULL, _exit(3) instead of exit(3) so that LeakSanitizer
 * does not run in the worker).
 *
 * Known-failures rows (/work/shared/reference/known-failures.md) are tests
 * named rowNN_... Rows 7 and 16 share one test. Rows that do not apply here:
 *  - 5  (shutdown racing with an argument-serialisation error), 9 (pickling
 *       errors at the 4 points), 14 (an error object that fails to decode):
 *       ppool serialises nothing. Arguments are bytes copied inside pp_submit
 *       (an oversized one is refused there with PP_ETOOBIG before anything is
 *       queued: test_core), a task's error is a code and a message written
 *       into its slot by the worker; there is no decode step that can fail.
 *  - 10 (map over an infinite generator with buffersize): map flow control,
 *       not a fault of the manager (map suites).
 *  - 15 (recycling while the parent decodes under an import lock): no import
 *       or decode in the result path; recycling concurrent with the client
 *       reading results is what the max_tasks_per_child tests do
 *       (test_recycle).
 *  - 17 (3 GiB argument and result): payload framing, not a manager fault
 *       (test_payload: row17_3gib_argument_and_result).
 *
 * Client-side helpers are static inline: each suite compiles the ones it
 * uses, and their names (the suites' own, e.g. make_pool) stay out of the
 * link, where other suites keep static helpers of the same names.
 */
#ifndef PPT_FAULTS_UTIL_H
#define PPT_FAULTS_UTIL_H

#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define PPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PPT_ASAN 1
#endif
#endif
#ifndef PPT_ASAN
#define PPT_ASAN 0
#endif

/* "Promptly": the bound the issue asks for (1 s). */
#define PROMPT_S PPT_PROMPT(1.0)

/* Read the pool's counters into @st once @cond holds (or after 5 s): the
 * counters follow the futures by a moment (the manager counts a kill or a
 * respawn just after failing the future). */
#define STATS_WHEN(ex, st, cond) \
    PPT_WAIT_FOR(pp_executor_stats((ex), &(st), NULL, 0) > 0 && (cond), 5.0)

/* ---- memory shared with the workers (faults_util.c) -------------------- */

/* Mapped MAP_SHARED|MAP_ANONYMOUS before pp_executor_create: the manager and
 * every worker it forks inherit it. */
typedef struct shared {
    _Atomic int go;              /* released by the test */
    _Atomic int crash_pid;       /* last getpid() noted by a task / initializer */
    _Atomic int init_count;      /* initializer runs */
    _Atomic int init_bad;        /* initializer saw wrong arguments */
    _Atomic int seen_size;       /* size of the initargs last seen */
    _Atomic int task_pid[4];     /* getpid() noted by a task, by its index */
    unsigned char seen[64];      /* the initargs last seen */
} shared;

/** The shared block as the client mapped it (NULL before shared_map). */
extern shared *g_sh;
/** Maps a zeroed shared block (memfd) and names its descriptor in the
 *  environment, for workers of every start method. */
void shared_map(void);
/** The shared block, in the client or a worker (NULL if the test made none). */
shared *sh(void);
/** Notes getpid() as shared.crash_pid (in a worker). */
void note_pid(void);

/* ---- task functions and what they use, run in workers (faults_util.c) -- */

/** The task argument as a double (seconds); 0 if it is shorter. */
/** RLIMIT_CORE 0: a crash leaves no core file. */
void no_core(void);
/** SIGSEGV back to its default action with the raw system call (ASan
 *  keeps its own handler through signal()/sigaction()). */
void segv_default(void);

/* Result {pid, n}: this worker process's pid and how many tasks it has run,
 * this one included (counted in the process, so pid reuse cannot mix two
 * processes up). */
typedef struct pid_seq {
    int32_t pid;
    uint32_t seq;
} pid_seq;
/** Result pid_seq: this worker's pid and how many tasks its process has run. */
int task_pid_seq(pp_task *t);
/** Argument double s: sleeps s, notes its pid, then abort() (SIGABRT). */
int task_abort(pp_task *t);
/** Argument uint32 microseconds: busy-waits that long; result = the argument. */
int task_spin_us(pp_task *t);

/* ---- /proc --------------------------------------------------------------- */

/* true while @pid exists and is not a zombie. */
static inline bool proc_alive(pid_t pid)
{
    char st;
    return pid > 0 && ppt_proc_stat(pid, NULL, &st) && st != 'Z' && st != 'X';
}

/* The manager: the parent of worker 0. */
static inline pid_t manager_pid_of(pp_executor *ex)
{
    pp_worker_stats ws[1];
    cr_assert_eq(pp_executor_stats(ex, NULL, ws, 1) > 0, true);
    pid_t ppid = 0;
    cr_assert(ppt_proc_stat(ws[0].pid, &ppid, NULL), "worker %d not in /proc", (int)ws[0].pid);
    cr_assert_gt(ppid, 0);
    cr_assert_neq(ppid, getpid(), "a worker's parent is the client?");
    return ppid;
}

/* ---- pools and futures ------------------------------------------------- */

/* A pp_config of @workers with on_worker_death = @policy. */
static inline pp_config cfg_of(int workers, pp_death_policy policy)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cfg.on_worker_death = policy;
    return cfg;
}

/* pp_executor_create(@cfg), asserting that it succeeded. */
static inline pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

/* A pool of @workers with @policy (asserts that it started). */
static inline pp_executor *make_pool(int workers, pp_death_policy policy)
{
    pp_config cfg = cfg_of(workers, policy);
    return make_pool_cfg(&cfg);
}

/* pp_submit(@fn, @arg of @n bytes), asserting that it was accepted. */
static inline pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

/* Submits @fn with the argument double @seconds. */
static inline pp_future *submit_secs(pp_executor *ex, pp_fn fn, double seconds)
{
    return submit_ok(ex, fn, &seconds, sizeof seconds);
}

/* Waits (up to 10 s) until @f runs; asserts it has not finished yet. */
static inline void wait_running(pp_future *f, const char *what)
{
    bool ok = PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 10.0);
    cr_assert(ok, "%s never started", what);
    cr_assert(!pp_future_done(f), "%s finished before it could be used", what);
}

/* The outcome of @f, waiting at most @timeout (asserts that it resolved). */
static inline pp_exception outcome(pp_future *f, double timeout, const char *what)
{
    pp_exception e;
    int rc = pp_future_exception(f, timeout, &e);
    cr_assert_eq(rc, 0, "%s: not resolved after %.1f s (%d %s)", what, timeout, rc,
                 pp_strerror(rc));
    return e;
}

/* Every future resolves within @timeout (from now) and succeeds. */
static inline void expect_all_ok(pp_future **fs, int n, double timeout, const char *what)
{
    double dl = ppt_deadline(timeout);
    for (int i = 0; i < n; i++) {
        double left = dl - ppt_now();
        int rc = pp_future_result(fs[i], left > 0 ? left : 0, NULL, NULL);
        cr_expect_eq(rc, 0, "%s: future %d: %d %s", what, i, rc, pp_strerror(rc));
    }
}

/* pp_future_release of @n futures. */
static inline void release_all(pp_future **fs, int n)
{
    for (int i = 0; i < n; i++)
        pp_future_release(fs[i]);
}

#endif /* PPT_FAULTS_UTIL_H */
