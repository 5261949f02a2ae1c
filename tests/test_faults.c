/*
 * test_faults.c — the manager under fault injection: workers killed under
 * load (policies RESPAWN and BREAK), tasks that crash in every way a process
 * can die, max_tasks_per_child recycling, initializers that fail or crash,
 * the client or the manager SIGKILLed, pp_future_kill and per-task timeouts,
 * a worker dying inside the ring's dequeue, shutdown latency.
 *
 * Every test runs in its own process (Criterion), as a child subreaper; the
 * teardown fails the test if any process it started outlives it or a new
 * /dev/shm entry remains. Waits are deadline loops on a condition; task
 * functions sleep or spin as their workload.
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
 *       reading results is what the max_tasks_per_child tests below do.
 *  - 17 (3 GiB argument and result): payload framing, not a manager fault
 *       (test_payload: row17_3gib_argument_and_result).
 *
 * Test hook: PPOOL_TEST_DIE_IN_POP=N (set before pp_executor_create, unset
 * after; the manager and every worker it starts inherit it) makes each worker
 * SIGKILL itself inside its N-th ring dequeue, between the ticket CAS and the
 * release of the cell.
 *
 * Start methods: every test works under fork, spawn and forkserver (CTest
 * runs the suite under each; PPOOL_START_METHOD picks it). What workers must
 * share with the test (noted pids, initializer counts, a "go" flag) lives in
 * a memfd whose descriptor number is in the environment (shared_map / sh()),
 * never in inherited globals. Note that under Criterion the test process runs
 * a second thread, so AUTO means forkserver there. The 10 000-task
 * max_tasks_per_child runs ask for fork explicitly (see MAXT_M).
 *
 * Sanitizers: crashes are made so that ASan/UBSan cannot turn them into
 * exit(1) (SIGSEGV reset with the raw system call, a store to a PROT_NONE
 * page rather than to NULL, _exit(3) instead of exit(3) so that LeakSanitizer
 * does not run in the worker); row 4 submits 200 000 and the max_tasks runs
 * 3 000 tasks under ASan.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

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

/* ======================================================================== */
/* memory shared with the workers                                           */
/* ======================================================================== */

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

static shared *g_sh;

#define SHARED_ENV "PPT_FAULTS_SHARED_FD"

/* A memfd (no name in /dev/shm) without close-on-exec, its descriptor number
 * in the environment: forked workers inherit the mapping itself, spawned
 * ones (PPOOL_START_METHOD=spawn|forkserver) inherit the descriptor and the
 * variable and map it on first use (sh()). */
static void shared_map(void)
{
    int fd = memfd_create("ppt_faults", 0);
    cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
    cr_assert_eq(ftruncate(fd, sizeof(shared)), 0);
    void *p = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(p, 0, sizeof(shared));
    g_sh = p;
    char v[16];
    snprintf(v, sizeof v, "%d", fd);
    cr_assert_eq(setenv(SHARED_ENV, v, 1), 0);
}

/* The shared block, in the client or a worker (NULL if the test made none). */
static shared *sh(void)
{
    if (!g_sh) {
        const char *v = getenv(SHARED_ENV);
        if (v && *v) {
            void *p = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED, atoi(v), 0);
            if (p != MAP_FAILED)
                g_sh = p;
        }
    }
    return g_sh;
}

static void note_pid(void)
{
    if (sh())
        atomic_store(&sh()->crash_pid, (int)getpid());
}

/* Wait (in a worker) until the test sets go, at most @seconds. */
static bool wait_go(double seconds)
{
    double dl = ppt_deadline(seconds);
    while (!sh() || !atomic_load(&sh()->go)) {
        if (ppt_expired(dl))
            return false;
        ppt_sleep(0.001);
    }
    return true;
}

/* ======================================================================== */
/* /proc                                                                    */
/* ======================================================================== */

/* ppid and state of @pid from /proc/<pid>/stat; false if it is gone. */
static bool proc_stat(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    char st = '?';
    int pp = -1;
    if (!rp || sscanf(rp + 1, " %c %d", &st, &pp) != 2)
        return false;
    if (ppid)
        *ppid = (pid_t)pp;
    if (state)
        *state = st;
    return true;
}

/* true while @pid exists and is not a zombie. */
static bool proc_alive(pid_t pid)
{
    char st;
    return pid > 0 && proc_stat(pid, NULL, &st) && st != 'Z' && st != 'X';
}

/* The manager: the parent of worker 0. */
static pid_t manager_pid_of(pp_executor *ex)
{
    pp_worker_stats ws[1];
    cr_assert_eq(pp_executor_stats(ex, NULL, ws, 1) > 0, true);
    pid_t ppid = 0;
    cr_assert(proc_stat(ws[0].pid, &ppid, NULL), "worker %d not in /proc", (int)ws[0].pid);
    cr_assert_gt(ppid, 0);
    cr_assert_neq(ppid, getpid(), "a worker's parent is the client?");
    return ppid;
}

/* ======================================================================== */
/* pools and futures                                                        */
/* ======================================================================== */

static pp_config cfg_of(int workers, pp_death_policy policy)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cfg.on_worker_death = policy;
    return cfg;
}

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_executor *make_pool(int workers, pp_death_policy policy)
{
    pp_config cfg = cfg_of(workers, policy);
    return make_pool_cfg(&cfg);
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

static pp_future *submit_secs(pp_executor *ex, pp_fn fn, double seconds)
{
    return submit_ok(ex, fn, &seconds, sizeof seconds);
}

static pp_future *submit_opts(pp_executor *ex, pp_fn fn, double seconds, double timeout,
                              double grace)
{
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = timeout;
    o.kill_grace = grace;
    pp_future *f = NULL;
    int rc = pp_submit_ex(ex, fn, &seconds, sizeof seconds, &o, &f);
    cr_assert_eq(rc, 0, "pp_submit_ex: %d %s", rc, pp_strerror(rc));
    return f;
}

static void wait_running(pp_future *f, const char *what)
{
    bool ok = PPT_WAIT_FOR(pp_future_running(f) || pp_future_done(f), 10.0);
    cr_assert(ok, "%s never started", what);
    cr_assert(!pp_future_done(f), "%s finished before it could be used", what);
}

/* The outcome of @f, waiting at most @timeout (asserts that it resolved). */
static pp_exception outcome(pp_future *f, double timeout, const char *what)
{
    pp_exception e;
    int rc = pp_future_exception(f, timeout, &e);
    cr_assert_eq(rc, 0, "%s: not resolved after %.1f s (%d %s)", what, timeout, rc,
                 pp_strerror(rc));
    return e;
}

static double arg_seconds(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    double s = 0;
    if (n >= sizeof s)
        memcpy(&s, a, sizeof s);
    return s;
}

/* Every future resolves within @timeout (from now) and succeeds. */
static void expect_all_ok(pp_future **fs, int n, double timeout, const char *what)
{
    double dl = ppt_deadline(timeout);
    for (int i = 0; i < n; i++) {
        double left = dl - ppt_now();
        int rc = pp_future_result(fs[i], left > 0 ? left : 0, NULL, NULL);
        cr_expect_eq(rc, 0, "%s: future %d: %d %s", what, i, rc, pp_strerror(rc));
    }
}

static void release_all(pp_future **fs, int n)
{
    for (int i = 0; i < n; i++)
        pp_future_release(fs[i]);
}

/* ======================================================================== */
/* task functions (run in workers)                                          */
/* ======================================================================== */

static void no_core(void)
{
    struct rlimit rl = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &rl);
}

/* SIGSEGV back to its default action with the raw system call: ASan
 * intercepts signal()/sigaction() and keeps its own handler, which turns a
 * fault into exit(1). */
static void segv_default(void)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } ksa = {(void *)SIG_DFL, 0, NULL, 0};
    (void)syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof ksa.mask);
}

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

/* Result {pid, n}: this worker process's pid and how many tasks it has run,
 * this one included (counted in the process, so pid reuse cannot mix two
 * processes up). */
typedef struct pid_seq {
    int32_t pid;
    uint32_t seq;
} pid_seq;

static int task_pid_seq(pp_task *t)
{
    static pid_t me;
    static uint32_t n;
    pid_t p = getpid();
    if (p != me) {
        me = p;
        n = 0;
    }
    pid_seq r = {(int32_t)p, ++n};
    (void)pp_task_set_result(t, &r, sizeof r);
    return 0;
}

/* Argument double s: sleep s, then crash in the named way. Each notes its
 * pid in g_sh first. */
static int task_segv(pp_task *t)
{
    ppt_sleep(arg_seconds(t));
    note_pid();
    segv_now();
}

static int task_abort(pp_task *t)
{
    ppt_sleep(arg_seconds(t));
    note_pid();
    no_core();
    abort();
}

static int task_exit3(pp_task *t)
{
    ppt_sleep(arg_seconds(t));
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
    ppt_sleep(arg_seconds(t));
    free(p);
    return 0;
}

/* Notes its pid, then sleeps the argument (interrupted only by a kill). */
static int task_note_sleep(pp_task *t)
{
    note_pid();
    ppt_sleep(arg_seconds(t));
    return 0;
}

/* Ignores SIGTERM, then sleeps the argument. */
static int task_sleep_ignoring_term(pp_task *t)
{
    signal(SIGTERM, SIG_IGN);
    note_pid();
    ppt_sleep(arg_seconds(t));
    return 0;
}

/* Never returns (ignores pp_task_should_stop). */
static int task_endless(pp_task *t)
{
    (void)t;
    for (;;)
        ppt_sleep(0.01);
    return 0;
}

/* Spins the CPU for ever, ignoring SIGTERM. */
static int task_spin_forever_ignoring_term(pp_task *t)
{
    (void)t;
    signal(SIGTERM, SIG_IGN);
    volatile uint64_t x = 0;
    for (;;)
        x++;
    return 0;
}

/* Argument uint32 microseconds: busy-waits that long; result = the argument. */
static int task_spin_us(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    uint32_t us = 0;
    if (n >= sizeof us)
        memcpy(&us, a, sizeof us);
    double until = ppt_now() + us * 1e-6;
    while (ppt_now() < until)
        ;
    (void)pp_task_set_result(t, &us, sizeof us);
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
        if (!settled || pid <= 0 || !proc_stat(pid, &ppid, &st) || ppid != k->manager ||
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
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(faults, load_respawn_kill9_every_100ms_accounting_exact, PPT_FIXTURE, .timeout = 120)
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
    cr_expect_gt(killer.kills, 0, "the killer never killed (run too short?)");
    cr_log_info("load RESPAWN: %.2f s, %ld kills, %ld PP_EWORKER, %ld ok", ppt_now() - t0,
                killer.kills, ew, ok);
}

Test(faults, load_break_kill9_every_unfinished_future_fails_broken, PPT_FIXTURE, .timeout = 120)
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

Test(faults, crash_kinds_respawn_fail_one_future_with_signal_or_status, PPT_FIXTURE, .timeout = 60)
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

Test(faults, crash_kinds_break_fail_pool_with_cause_and_pid, PPT_FIXTURE, .timeout = 60)
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
Test(faults, break_backlog_futures_carry_the_cause, PPT_FIXTURE, .timeout = 60)
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
/* max_tasks_per_child                                                      */
/* ======================================================================== */

/* Runs @n pid_seq tasks with max_tasks_per_child = @max on @workers workers
 * (@method: PP_START_AUTO = as configured, i.e. PPOOL_START_METHOD) and
 * checks that no process ran more than @max of them. */
static void check_max_tasks(int workers, unsigned max, int n, double limit_s,
                            pp_start_method method)
{
    pp_config cfg = cfg_of(workers, PP_DEATH_BREAK);
    cfg.max_tasks_per_child = max;
    if (method != PP_START_AUTO)
        cfg.start_method = method;
    double t0 = ppt_now();
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future **fs = calloc((size_t)n, sizeof *fs);
    cr_assert_not_null(fs);
    for (int i = 0; i < n; i++)
        fs[i] = submit_ok(ex, task_pid_seq, NULL, 0);
    long pid_max = 4194304;
    FILE *pm = fopen("/proc/sys/kernel/pid_max", "r");
    if (pm) {
        if (fscanf(pm, "%ld", &pid_max) != 1)
            pid_max = 4194304;
        fclose(pm);
    }
    uint32_t *count = calloc((size_t)pid_max + 1, sizeof *count);
    uint32_t *starts = calloc((size_t)pid_max + 1, sizeof *starts);
    cr_assert(count && starts);
    long failed = 0, bad_seq = 0, processes = 0;
    double dl = ppt_deadline(limit_s);
    for (int i = 0; i < n; i++) {
        const void *d = NULL;
        size_t sz = 0;
        double left = dl - ppt_now();
        int rc = pp_future_result(fs[i], left > 0 ? left : 0, &d, &sz);
        if (rc != 0 || sz != sizeof(pid_seq)) {
            if (!failed)
                cr_expect_eq(rc, 0, "task %d: %d %s (size %zu)", i, rc, pp_strerror(rc), sz);
            failed++;
            continue;
        }
        pid_seq r;
        memcpy(&r, d, sizeof r);
        if (r.pid <= 0 || r.pid > pid_max || r.seq < 1 || r.seq > max) {
            bad_seq++;
            continue;
        }
        count[r.pid]++;
        if (r.seq == 1) {
            starts[r.pid]++;
            processes++;
        }
    }
    cr_expect_eq(failed, 0, "%ld of %d tasks failed", failed, n);
    cr_expect_eq(bad_seq, 0, "%ld tasks ran as task number > %u of their process", bad_seq, max);
    long over = 0;
    for (long p = 1; p <= pid_max; p++)
        if (count[p] && count[p] > max * (starts[p] ? starts[p] : 1)) {
            if (!over)
                cr_expect(false, "pid %ld ran %u tasks (max_tasks_per_child %u)", p, count[p],
                          max);
            over++;
        }
    cr_expect_eq(over, 0);
    long min_procs = (n + (long)max - 1) / (long)max;
    cr_expect_geq(processes, min_procs, "%ld worker processes for %d tasks at %u per child",
                  processes, n, max);
    pp_stats st;
    /* Counters follow the futures by a moment: wait for them. */
    PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) == workers && st.completed >= (uint64_t)n &&
                     st.respawns + (uint64_t)workers >= (uint64_t)processes,
                 5.0);
    cr_expect_geq(st.respawns + (uint64_t)workers, (uint64_t)processes,
                  "respawns %llu, processes %ld", (unsigned long long)st.respawns, processes);
    cr_expect_eq(st.completed, (uint64_t)n, "stats.completed %llu", (unsigned long long)st.completed);
    cr_log_info("max_tasks_per_child %u, %d worker(s), %d tasks, start method %d: %ld processes, "
                "%.2f s",
                max, workers, n, (int)pp_start_method_used(ex), processes, ppt_now() - t0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, n);
    free(fs);
    free(count);
    free(starts);
}

/* 10 000 tasks at up to one process per task: forked workers (about 1 ms a
 * respawn). Under Criterion, whose timeout thread makes the test process
 * multi-threaded, AUTO would pick forkserver (about 5 ms a respawn, so
 * minutes for these six); the configured method gets its own, smaller run
 * (max_tasks_configured_start_method). */
#define MAXT_N (PPT_ASAN ? 3000 : 10000) /* ASan makes each fork ~3x dearer */
#define MAXT_M PP_START_FORK

Test(faults, max_tasks_1_one_worker, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(1, 1, MAXT_N, 100.0, MAXT_M);
}
Test(faults, max_tasks_2_one_worker, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(1, 2, MAXT_N, 100.0, MAXT_M);
}
Test(faults, max_tasks_5_one_worker, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(1, 5, MAXT_N, 100.0, MAXT_M);
}
Test(faults, max_tasks_1_two_workers, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(2, 1, MAXT_N, 100.0, MAXT_M);
}
Test(faults, max_tasks_2_two_workers, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(2, 2, MAXT_N, 100.0, MAXT_M);
}
Test(faults, max_tasks_5_two_workers, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(2, 5, MAXT_N, 100.0, MAXT_M);
}

Test(faults, max_tasks_configured_start_method, PPT_FIXTURE, .timeout = 120)
{
    check_max_tasks(2, 2, 1000, 60.0, PP_START_AUTO);
    check_max_tasks(1, 1, 300, 60.0, PP_START_AUTO);
}

/* ------------------------------------------------------------------------ */
/* Known-failures row 18 (loky #373): a C library leaked in every task until  */
/* the OOM killer took the worker hours later. max_rss_growth recycles a      */
/* worker between tasks once its private memory grew past the limit.         */
/* ------------------------------------------------------------------------ */

#define ROW18_STEP ((size_t)4 << 20) /* bytes one task maps and touches */
#define ROW18_LIMIT ((size_t)32 << 20)
#define ROW18_TASKS 60

/* Argument bool leak: map ROW18_STEP bytes, touch every page, and unmap
 * them again (a task that cleans up) or not (a leak). mmap rather than
 * malloc: the result does not depend on the allocator (ASan keeps freed
 * blocks in its quarantine). Result: pid_seq. Each task touches ~1000 pages,
 * so it runs well over 100 µs and the worker checks its memory after it. */
static int task_map_pages(pp_task *t)
{
    const bool *leak = pp_task_arg(t, NULL);
    char *p = mmap(NULL, ROW18_STEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return pp_task_raise(t, errno, "mmap: %s", strerror(errno));
    long page = sysconf(_SC_PAGESIZE);
    for (size_t off = 0; off < ROW18_STEP; off += (size_t)page)
        p[off] = 1;
    if (!*leak)
        munmap(p, ROW18_STEP);
    return task_pid_seq(t);
}

/* Runs ROW18_TASKS tasks on one worker with max_rss_growth = ROW18_LIMIT.
 * Returns the number of worker processes that ran them; *most receives the
 * largest number of tasks one process ran. */
static long run_row18(bool leak, uint32_t *most, uint64_t *respawns)
{
    pp_config cfg = cfg_of(1, PP_DEATH_BREAK);
    cfg.max_rss_growth = ROW18_LIMIT;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future *fs[ROW18_TASKS];
    for (int i = 0; i < ROW18_TASKS; i++)
        fs[i] = submit_ok(ex, task_map_pages, &leak, sizeof leak);
    long processes = 0;
    *most = 0;
    for (int i = 0; i < ROW18_TASKS; i++) {
        const void *d = NULL;
        size_t sz = 0;
        int rc = pp_future_result(fs[i], 60.0, &d, &sz);
        cr_assert_eq(rc, 0, "leak=%d task %d: %d %s", leak, i, rc, pp_strerror(rc));
        cr_assert_eq(sz, sizeof(pid_seq));
        pid_seq r;
        memcpy(&r, d, sizeof r);
        if (r.seq == 1)
            processes++;
        if (r.seq > *most)
            *most = r.seq;
    }
    pp_stats st;
    PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) == 1 && st.completed == ROW18_TASKS, 5.0);
    *respawns = st.respawns;
    cr_expect_eq(st.failed, 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, ROW18_TASKS);
    return processes;
}

Test(faults, row18_rss_growth_recycles_a_leaking_worker, PPT_FIXTURE, .timeout = 120)
{
    uint32_t most = 0;
    uint64_t respawns = 0;
    long procs = run_row18(true, &most, &respawns);
    /* The baseline is taken after a process's first task; it retires after
     * the task that takes it past 32 MiB of growth, i.e. the 9th after the
     * first at 4 MiB each: 10 tasks, or fewer if the process grew a little
     * on its own besides. Never more: that would be a missed check. */
    uint32_t expect = 1 + (uint32_t)(ROW18_LIMIT / ROW18_STEP) + 1;
    cr_expect_leq(most, expect, "a process ran %u leaking tasks (limit: %u)", most, expect);
    cr_expect_geq(most, expect - 3, "a process retired after only %u tasks", most);
    cr_expect_geq(procs, ROW18_TASKS / (long)expect, "%ld processes ran %d leaking tasks", procs,
                  ROW18_TASKS);
    cr_expect_geq(respawns + 1, (uint64_t)procs, "respawns %llu for %ld processes",
                  (unsigned long long)respawns, procs);
    cr_log_info("row18: %ld processes for %d leaking tasks, at most %u tasks each", procs,
                ROW18_TASKS, most);
}

Test(faults, row18_rss_growth_leaves_a_worker_that_frees_alone, PPT_FIXTURE, .timeout = 120)
{
    uint32_t most = 0;
    uint64_t respawns = 0;
    long procs = run_row18(false, &most, &respawns);
    cr_expect_eq(procs, 1, "%ld processes for tasks that free what they map", procs);
    cr_expect_eq(most, ROW18_TASKS);
    cr_expect_eq(respawns, 0);
}

Test(faults, row1_one_worker_max_tasks_2_ten_tasks_complete, PPT_FIXTURE, .timeout = 30)
{
    check_max_tasks(1, 2, 10, 10.0, PP_START_AUTO);
}

/* Item function for row 2: out = in * 3 + worker pid check. */
static int item_triple(pp_map_item *it)
{
    uint64_t x;
    memcpy(&x, it->in[0], sizeof x);
    x = x * 3 + 1;
    memcpy(it->out, &x, sizeof x);
    return 0;
}

Test(faults, row2_hundred_items_with_max_tasks_5_complete, PPT_FIXTURE, .timeout = 60)
{
    /* As submits: every pid within its budget. */
    check_max_tasks(2, 5, 100, 10.0, PP_START_AUTO);
    /* As a map (chunks run by runner tasks, each a task of the worker). */
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    cfg.max_tasks_per_child = 5;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 100 };
    uint64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i * 7;
    memset(out, 0, sizeof out);
    for (size_t chunk = 1; chunk <= 5; chunk += 4) {
        pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.chunksize = chunk;
        o.out_size = sizeof(uint64_t);
        o.timeout = 20.0;
        pp_map_status st;
        int rc = pp_map(ex, item_triple, &mi, 1, out, N, NULL, &o, &st);
        cr_expect_eq(rc, 0, "map chunksize %zu: %d %s (%s)", chunk, rc, pp_strerror(rc),
                     st.message);
        for (int i = 0; i < N && rc == 0; i++)
            cr_expect_eq(out[i], in[i] * 3 + 1, "item %d", i);
    }
    /* And the map again after many recycles: submit enough to recycle. */
    for (int round = 0; round < 3; round++) {
        pp_future *fs[20];
        for (int i = 0; i < 20; i++)
            fs[i] = submit_ok(ex, task_pid_seq, NULL, 0);
        expect_all_ok(fs, 20, 10.0, "recycling round");
        release_all(fs, 20);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* initializer                                                              */
/* ======================================================================== */

#define INIT_MAGIC 0x1A17C0DEu
typedef struct init_args {
    uint32_t magic;
    char text[28];
} init_args;

static pid_t g_init_pid; /* set in a worker by init_record */

static int init_record(const void *a, size_t n)
{
    if (!a || n != sizeof(init_args) || ((const init_args *)a)->magic != INIT_MAGIC ||
        strcmp(((const init_args *)a)->text, "hello, worker") != 0) {
        if (sh())
            atomic_fetch_add(&sh()->init_bad, 1);
        return -1;
    }
    if (!sh())
        return -2;
    memcpy(sh()->seen, a, n);
    atomic_store(&sh()->seen_size, (int)n);
    atomic_fetch_add(&sh()->init_count, 1);
    g_init_pid = getpid();
    return 0;
}

/* Result {pid, 1 if the initializer ran in this very process}. */
static int task_init_state(pp_task *t)
{
    int32_t r[2] = {(int32_t)getpid(), g_init_pid == getpid()};
    (void)pp_task_set_result(t, r, sizeof r);
    return 0;
}

static int init_fail_on_go(const void *a, size_t n)
{
    (void)a;
    (void)n;
    note_pid();
    wait_go(10.0);
    return -1;
}

static int init_crash_on_go(const void *a, size_t n)
{
    (void)a;
    (void)n;
    note_pid();
    wait_go(10.0);
    no_core();
    segv_default();
    raise(SIGSEGV);
    return 0;
}

/* Submits pending tasks while the initializer is held, lets it fail or
 * crash, then checks: every pending future and every later submit report
 * PP_EBROKEN. */
static void check_init_breaks(pp_initializer init, pp_death_policy policy, int want_code,
                              const char *what)
{
    shared_map();
    pp_config cfg = cfg_of(2, policy);
    cfg.initializer = init;
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { N = 10 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, task_pid_seq, NULL, 0);
    atomic_store(&g_sh->go, 1);
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, what);
        cr_expect_eq(e.error, PP_EBROKEN, "%s: pending %d: %d %s", what, i, e.error,
                     pp_strerror(e.error));
        if (want_code)
            cr_expect_eq(e.code, want_code, "%s: pending %d: code %d (%s)", what, i, e.code,
                         e.message);
        else
            cr_expect_lt(e.code, 0, "%s: pending %d: code %d, expected an exit status (%s)",
                         what, i, e.code, e.message);
        cr_expect_gt(e.pid, 0, "%s: no pid", what);
        cr_expect(strstr(e.message, "initializer") != NULL, "%s: message \"%s\"", what,
                  e.message);
    }
    /* By now the pool has broken: submit fails (poll for it anyway). */
    int rc = 0;
    bool broke = PPT_WAIT_FOR(({
                                  pp_future *g = NULL;
                                  rc = pp_submit(ex, task_pid_seq, NULL, 0, &g);
                                  if (g) {
                                      pp_exception ge;
                                      if (pp_future_exception(g, 5.0, &ge) == 0 &&
                                          ge.error == PP_EBROKEN)
                                          rc = PP_EBROKEN;
                                      pp_future_release(g);
                                  }
                                  rc == PP_EBROKEN;
                              }),
                              5.0);
    cr_expect(broke, "%s: submit after the break: %d %s", what, rc, pp_strerror(rc));
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
}

Test(faults, initializer_failure_breaks_pool_submit_and_pending, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_fail_on_go, PP_DEATH_BREAK, 0, "failing initializer");
}

Test(faults, initializer_failure_breaks_pool_even_under_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_fail_on_go, PP_DEATH_RESPAWN, 0, "failing initializer (RESPAWN)");
}

Test(faults, initializer_crash_breaks_pool_with_signal, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_crash_on_go, PP_DEATH_BREAK, SIGSEGV, "crashing initializer");
}

Test(faults, initializer_crash_breaks_pool_even_under_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_init_breaks(init_crash_on_go, PP_DEATH_RESPAWN, SIGSEGV,
                      "crashing initializer (RESPAWN)");
}

Test(faults, initializer_gets_its_args_and_runs_once_per_worker_process, PPT_FIXTURE,
     .timeout = 60)
{
    shared_map();
    init_args ia;
    memset(&ia, 0, sizeof ia);
    ia.magic = INIT_MAGIC;
    snprintf(ia.text, sizeof ia.text, "hello, worker");
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    cfg.initializer = init_record;
    cfg.initargs = &ia;
    cfg.initargs_size = sizeof ia;
    cfg.max_tasks_per_child = 3; /* every replacement runs it too */
    pp_executor *ex = make_pool_cfg(&cfg);
    memset(&ia, 0xEE, sizeof ia); /* copied at create: the caller's buffer is free */
    enum { N = 60 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_ok(ex, task_init_state, NULL, 0);
    int not_init = 0;
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], 20.0, &d, &n);
        cr_assert_eq(rc, 0, "task %d: %d %s", i, rc, pp_strerror(rc));
        int32_t r[2];
        memcpy(r, d, sizeof r);
        not_init += r[1] != 1;
    }
    cr_expect_eq(not_init, 0, "%d tasks ran in a process whose initializer did not run",
                 not_init);
    cr_expect_eq(atomic_load(&g_sh->init_bad), 0, "the initializer saw wrong arguments");
    cr_expect_eq(atomic_load(&g_sh->seen_size), (int)sizeof(init_args));
    init_args want;
    memset(&want, 0, sizeof want);
    want.magic = INIT_MAGIC;
    snprintf(want.text, sizeof want.text, "hello, worker");
    cr_expect(memcmp(g_sh->seen, &want, sizeof want) == 0, "initargs bytes differ");
    /* Once per process: initial workers + every replacement that started.
     * The replacements forked after the last task still run it before they
     * see the stop, so count after the pool ended. */
    cr_assert_eq(pp_executor_destroy(ex), 0);
    int runs = atomic_load(&g_sh->init_count);
    /* 60 tasks at 3 per child: at least 20 processes; each ran it once. */
    cr_expect_geq(runs, N / 3, "initializer ran %d times for >= %d processes", runs, N / 3);
    cr_expect_leq(runs, N / 3 + 2, "initializer ran %d times: more than once per process?",
                  runs);
    release_all(fs, N);
}

/* Exactly once per process, counted against the pool's own respawn count. */
Test(faults, initializer_runs_exactly_once_per_process_count_matches_respawns, PPT_FIXTURE,
     .timeout = 60)
{
    shared_map();
    init_args ia;
    memset(&ia, 0, sizeof ia);
    ia.magic = INIT_MAGIC;
    snprintf(ia.text, sizeof ia.text, "hello, worker");
    pp_config cfg = cfg_of(2, PP_DEATH_RESPAWN);
    cfg.initializer = init_record;
    cfg.initargs = &ia;
    cfg.initargs_size = sizeof ia;
    pp_executor *ex = make_pool_cfg(&cfg);
    /* Three deaths (respawns), then quiet: count = workers + respawns. */
    for (int k = 0; k < 3; k++) {
        pp_future *f = submit_secs(ex, task_abort, 0.0);
        pp_exception e = outcome(f, 20.0, "abort");
        cr_expect_eq(e.error, PP_EWORKER);
        pp_future_release(f);
    }
    pp_future *fs[20];
    for (int i = 0; i < 20; i++)
        fs[i] = submit_ok(ex, task_init_state, NULL, 0);
    expect_all_ok(fs, 20, 20.0, "after respawns");
    pp_stats st;
    STATS_WHEN(ex, st, st.respawns >= 3);
    cr_expect_eq(st.respawns, 3);
    /* Every replacement has run its initializer before taking a task; wait
     * for the count rather than assume. */
    bool ok = PPT_WAIT_FOR(atomic_load(&g_sh->init_count) == 2 + (int)st.respawns, 5.0);
    cr_expect(ok, "initializer ran %d times, workers + respawns = %d",
              atomic_load(&g_sh->init_count), 2 + (int)st.respawns);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(atomic_load(&g_sh->init_count), 2 + (int)st.respawns);
    release_all(fs, 20);
}

/* ======================================================================== */
/* the client SIGKILLed (rows 7 and 16)                                     */
/* ======================================================================== */

typedef struct child_report {
    int rc;          /* 0 = ready */
    pid_t manager;
    pid_t workers[2];
} child_report;

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(2);
        c += w;
        n -= (size_t)w;
    }
}

/* Runs in the forked child client: never returns. */
static _Noreturn void child_client(int wfd)
{
    child_report rep;
    memset(&rep, 0, sizeof rep);
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    pp_executor *ex = NULL;
    rep.rc = pp_executor_create(&ex, &cfg);
    if (rep.rc) {
        write_all(wfd, &rep, sizeof rep);
        _exit(3);
    }
    pp_worker_stats ws[2];
    if (pp_executor_stats(ex, NULL, ws, 2) != 2)
        rep.rc = -1;
    rep.workers[0] = ws[0].pid;
    rep.workers[1] = ws[1].pid;
    if (!proc_stat(ws[0].pid, &rep.manager, NULL))
        rep.rc = -2;
    double s = 30.0;
    pp_future *f = NULL;
    if (!rep.rc)
        rep.rc = pp_submit(ex, ppt_task_sleepy, &s, sizeof s, &f);
    double dl = ppt_deadline(10.0);
    while (!rep.rc && !pp_future_running(f)) {
        if (ppt_expired(dl)) {
            rep.rc = -3;
            break;
        }
        ppt_sleep(0.001);
    }
    write_all(wfd, &rep, sizeof rep);
    for (;;)
        pause(); /* until the test kills us */
}

Test(faults, row7_row16_client_sigkilled_manager_and_workers_gone_within_1s, PPT_FIXTURE,
     .timeout = 60)
{
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(pfd[0]);
        child_client(pfd[1]);
    }
    close(pfd[1]);
    child_report rep;
    size_t got = 0;
    double dl = ppt_deadline(20.0);
    while (got < sizeof rep && !ppt_expired(dl)) {
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = read(pfd[0], (char *)&rep + got, sizeof rep - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(pfd[0]);
    if (got != sizeof rep || rep.rc != 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        cr_assert(false, "child client failed to start (read %zu bytes, rc %d)", got,
                  got == sizeof rep ? rep.rc : 0);
    }
    pid_t procs[3] = {rep.manager, rep.workers[0], rep.workers[1]};
    for (int i = 0; i < 3; i++)
        cr_assert(proc_alive(procs[i]), "pid %d not alive before the kill", (int)procs[i]);

    cr_assert_eq(kill(child, SIGKILL), 0);
    double t0 = ppt_now();
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    /* The orphans reparent to us (subreaper): reap while polling. */
    bool gone = PPT_WAIT_FOR(({
                                 ppt_reap_zombies();
                                 !proc_alive(procs[0]) && !proc_alive(procs[1]) &&
                                     !proc_alive(procs[2]);
                             }),
                             PROMPT_S);
    double took = ppt_now() - t0;
    for (int i = 0; i < 3; i++)
        cr_expect(!proc_alive(procs[i]), "%s %d still alive %.2f s after the client died",
                  i == 0 ? "manager" : "worker", (int)procs[i], took);
    cr_expect(gone);
    cr_log_info("client SIGKILLed: manager and workers gone in %.3f s", took);
    /* /dev/shm and stragglers: the teardown checks (memfd: nothing named). */
}

/* ======================================================================== */
/* the manager SIGKILLed (row 19 and the test)                       */
/* ======================================================================== */

typedef struct waiter {
    pp_future *fs[4];
    int n;
    int kind; /* 0: pp_future_result(fs[0]); 1: pp_wait(ALL) */
    _Atomic int started;
    _Atomic int finished;
    int rc;
    double at;
} waiter;

static void *waiter_main(void *p)
{
    waiter *w = p;
    atomic_store(&w->started, 1);
    if (w->kind == 0)
        w->rc = pp_future_result(w->fs[0], PP_FOREVER, NULL, NULL);
    else
        w->rc = pp_wait(w->fs, (size_t)w->n, PP_FOREVER, PP_ALL_COMPLETED, NULL);
    w->at = ppt_now();
    atomic_store(&w->finished, 1);
    return NULL;
}

Test(faults, manager_sigkilled_waiters_and_submit_fail_broken_within_1s, PPT_FIXTURE,
     .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_RESPAWN);
    pid_t mgr = manager_pid_of(ex);
    pp_future *lng = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(lng, "long task");
    pp_future *lng2 = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *queued = submit_secs(ex, ppt_task_sleepy, 30.0);
    waiter w[2];
    memset(w, 0, sizeof w);
    w[0].fs[0] = lng;
    w[0].n = 1;
    w[0].kind = 0;
    w[1].fs[0] = lng;
    w[1].fs[1] = lng2;
    w[1].fs[2] = queued;
    w[1].n = 3;
    w[1].kind = 1;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load(&w[0].started) && atomic_load(&w[1].started), 5.0));

    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    bool back = PPT_WAIT_FOR(atomic_load(&w[0].finished) && atomic_load(&w[1].finished), 3.0);
    cr_assert(back, "waiters still blocked 3 s after the manager died (pp_future_result %s, "
                    "pp_wait %s)",
              atomic_load(&w[0].finished) ? "returned" : "blocked",
              atomic_load(&w[1].finished) ? "returned" : "blocked");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_expect_lt(w[0].at - t0, PROMPT_S, "pp_future_result returned after %.3f s",
                 w[0].at - t0);
    cr_expect_lt(w[1].at - t0, PROMPT_S, "pp_wait returned after %.3f s", w[1].at - t0);
    cr_expect_eq(w[0].rc, PP_EBROKEN, "pp_future_result: %d %s", w[0].rc, pp_strerror(w[0].rc));
    cr_expect_eq(w[1].rc, 3, "pp_wait: %d", w[1].rc);
    pp_future *all[3] = {lng, lng2, queued};
    for (int i = 0; i < 3; i++) {
        int rc = pp_future_result(all[i], 0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "future %d: %d %s", i, rc, pp_strerror(rc));
    }
    /* A later submit: refused, or its future fails, within 1 s. */
    double t1 = ppt_now();
    pp_future *g = NULL;
    int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &g);
    if (rc == 0) {
        pp_exception e = outcome(g, 5.0, "submit after the manager died");
        rc = e.error;
    }
    cr_expect_eq(rc, PP_EBROKEN, "submit after the manager died: %d %s", rc, pp_strerror(rc));
    cr_expect_lt(ppt_now() - t1, PROMPT_S, "submit after the manager died took %.3f s",
                 ppt_now() - t1);
    cr_log_info("manager SIGKILLed: result after %.3f s, pp_wait after %.3f s", w[0].at - t0,
                w[1].at - t0);
    double t2 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t2, PROMPT_S, "destroy took %.3f s", ppt_now() - t2);
    pp_future_release(g);
    release_all(all, 3);
    /* The workers died by PDEATHSIG and reparented to us: the teardown
     * reaps them and checks nothing lives on. */
}

/* The same, but nobody waits on each future alone: only pp_wait (and
 * pp_future_done polling) must notice the dead manager. */
Test(faults, manager_sigkilled_pp_wait_alone_returns_within_1s, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pid_t mgr = manager_pid_of(ex);
    pp_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = submit_secs(ex, ppt_task_sleepy, 30.0); /* 2 running, 1 queued */
    wait_running(fs[0], "first");
    wait_running(fs[1], "second");
    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    int n = pp_wait(fs, 3, 3.0, PP_ALL_COMPLETED, NULL);
    double took = ppt_now() - t0;
    cr_expect_eq(n, 3, "pp_wait: %d of 3 done %.2f s after the manager died", n, took);
    cr_expect_lt(took, PROMPT_S, "pp_wait returned after %.3f s", took);
    bool polled = PPT_WAIT_FOR(pp_future_done(fs[2]), PROMPT_S);
    cr_expect(polled, "pp_future_done still false %.1f s after the manager died", PROMPT_S);
    for (int i = 0; i < 3; i++) {
        int rc = pp_future_result(fs[i], 5.0, NULL, NULL);
        cr_expect_eq(rc, PP_EBROKEN, "future %d: %d %s", i, rc, pp_strerror(rc));
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, 3);
}

Test(faults, row19_manager_sigkilled_every_future_fails_promptly, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg = cfg_of(2, PP_DEATH_BREAK);
    cfg.slots = 16; /* running, queued in slots, and in the client backlog */
    pp_executor *ex = make_pool_cfg(&cfg);
    pid_t mgr = manager_pid_of(ex);
    enum { N = 300 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_secs(ex, ppt_task_sleepy, 0.01);
    cr_assert(PPT_WAIT_FOR(pp_future_done(fs[5]), 10.0));
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_assert_eq(kill(mgr, SIGKILL), 0);
    double t0 = ppt_now();
    int ok = 0, broken = 0, other = 0;
    for (int i = 0; i < N; i++) {
        double left = t0 + PROMPT_S - ppt_now();
        pp_exception e;
        int rc = pp_future_exception(fs[i], left > 0 ? left : 0, &e);
        if (rc != 0) {
            cr_expect_eq(rc, 0, "future %d not resolved %.1f s after the manager died", i,
                         PROMPT_S);
            other++;
            continue;
        }
        if (e.error == 0)
            ok++;
        else if (e.error == PP_EBROKEN)
            broken++;
        else {
            other++;
            cr_expect(false, "future %d: %d %s", i, e.error, pp_strerror(e.error));
        }
    }
    double took = ppt_now() - t0;
    cr_expect_eq(ok + broken, N, "ok %d broken %d other %d", ok, broken, other);
    cr_expect_gt(broken, 0);
    cr_expect_gt(st.backlog, 0, "nothing was in the backlog when the manager died");
    cr_log_info("manager SIGKILLed with %llu in backlog: %d ok, %d broken in %.3f s",
                (unsigned long long)st.backlog, ok, broken, took);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(fs, N);
}

/* ======================================================================== */
/* pp_future_kill                                                           */
/* ======================================================================== */

Test(faults, row11_kill_running_task_sigterm_others_unaffected, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK); /* a kill never breaks */
    pp_future *victim = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(victim, "victim");
    enum { N = 40 };
    pp_future *others[N];
    for (int i = 0; i < N; i++)
        others[i] = submit_secs(ex, ppt_task_sleepy, 0.002);
    double t0 = ppt_now();
    cr_assert_eq(pp_future_kill(victim, 0.5), 0);
    pp_exception e = outcome(victim, 10.0, "victim");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "victim: %d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGTERM, "victim: code %d (%s)", e.code, e.message);
    cr_expect_gt(e.pid, 0);
    cr_expect_lt(took, PROMPT_S, "a task dying on SIGTERM took %.3f s to resolve", took);
    cr_expect(!pp_future_cancelled(victim));
    expect_all_ok(others, N, 20.0, "neighbours of the killed task");
    /* The pool goes on, on both positions. */
    pp_future *more[N];
    for (int i = 0; i < N; i++)
        more[i] = submit_secs(ex, ppt_task_sleepy, 0.001);
    expect_all_ok(more, N, 20.0, "after the kill");
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1 && st.respawns >= 1);
    cr_expect_eq(st.killed, 1, "stats.killed %llu", (unsigned long long)st.killed);
    cr_expect_eq(st.respawns, 1, "stats.respawns %llu", (unsigned long long)st.respawns);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(others, N);
    release_all(more, N);
    pp_future_release(victim);
}

Test(faults, kill_task_ignoring_sigterm_gets_sigkill_after_grace, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *victim = submit_secs(ex, task_sleep_ignoring_term, 30.0);
    wait_running(victim, "victim");
    const double grace = 0.5;
    double t0 = ppt_now();
    cr_assert_eq(pp_future_kill(victim, grace), 0);
    pp_exception e = outcome(victim, 10.0, "victim");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "%d %s", e.error, pp_strerror(e.error));
    cr_expect_eq(e.code, SIGKILL, "code %d (%s)", e.code, e.message);
    cr_expect_geq(took, grace, "resolved after %.3f s, before the %.1f s grace", took, grace);
    cr_expect_lt(took, grace + PROMPT_S, "resolved after %.3f s", took);
    /* A second kill of the killed future changes nothing. */
    int again = pp_future_kill(victim, 0);
    cr_expect(again == 0 || again == -EALREADY, "second kill: %d", again);
    cr_expect_eq(pp_future_result(victim, 0, NULL, NULL), PP_EKILLED);
    pp_future *next = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_result(next, 10.0, NULL, NULL), 0);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_log_info("SIGTERM ignored: resolved after %.3f s (grace %.1f)", took, grace);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(next);
    pp_future_release(victim);
}

Test(faults, kill_queued_task_cancels_and_kill_finished_is_ealready, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *done = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_assert_eq(pp_future_result(done, 10.0, NULL, NULL), 0);
    cr_expect_eq(pp_future_kill(done, 0.5), -EALREADY);
    cr_expect_eq(pp_future_result(done, 0, NULL, NULL), 0, "a refused kill changed the result");

    pp_future *blocker = submit_secs(ex, ppt_task_until_stop, 30.0);
    wait_running(blocker, "blocker");
    pp_future *queued = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_kill(queued, 0.5), 0);
    cr_expect(pp_future_cancelled(queued));
    cr_expect_eq(pp_future_result(queued, 0, NULL, NULL), -ECANCELED);
    pp_exception e = outcome(queued, 0, "queued");
    cr_expect_eq(e.error, -ECANCELED);
    cr_expect_eq(pp_future_kill(blocker, 0.5), 0);
    e = outcome(blocker, 10.0, "blocker");
    cr_expect_eq(e.error, PP_EKILLED);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_expect_eq(st.cancelled, 1);
    cr_expect_eq(pp_future_kill(NULL, 0), -EINVAL);
    cr_expect_eq(pp_future_kill(blocker, -1.0), -EINVAL);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(done);
    pp_future_release(queued);
    pp_future_release(blocker);
}

/* Row 21: a kill racing with the end of a task and the dequeue of the next
 * one. One worker, so "the next task on that worker" is the next in line. */
Test(faults, row21_kill_racing_with_task_end_never_hits_next_task, PPT_FIXTURE, .timeout = 90)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    unsigned seed = 777;
    enum { ROUNDS = 300, NEXT = 3 };
    int ok = 0, killed = 0, ealready = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t us = (uint32_t)(rand_r(&seed) % 201);
        pp_future *a = submit_ok(ex, task_spin_us, &us, sizeof us);
        pp_future *next[NEXT];
        for (int i = 0; i < NEXT; i++) {
            uint32_t z = (uint32_t)i;
            next[i] = submit_ok(ex, task_spin_us, &z, sizeof z);
        }
        /* Right after it starts (or at once if it already finished): spin,
         * a 1 ms poll would miss most of a 0-200 us task. */
        double dl = ppt_deadline(10.0);
        while (!pp_future_running(a) && !pp_future_done(a) && !ppt_expired(dl))
            ;
        cr_assert(!ppt_expired(dl), "round %d: the task never started", r);
        int krc = pp_future_kill(a, (r & 1) ? 0.0 : 0.5);
        cr_expect(krc == 0 || krc == -EALREADY, "round %d: kill: %d", r, krc);
        ealready += krc == -EALREADY;
        pp_exception e = outcome(a, 10.0, "raced task");
        if (e.error == 0) {
            ok++;
        } else if (e.error == PP_EKILLED) {
            killed++;
            cr_expect_eq(krc, 0, "round %d: killed although kill said %d", r, krc);
            cr_expect(e.code == 0 || e.code == SIGTERM || e.code == SIGKILL,
                      "round %d: code %d (%s)", r, e.code, e.message);
        } else {
            cr_expect(false, "round %d: raced task: %d %s (%s)", r, e.error,
                      pp_strerror(e.error), e.message);
        }
        for (int i = 0; i < NEXT; i++) {
            pp_exception n = outcome(next[i], 10.0, "next task");
            cr_expect_eq(n.error, 0, "round %d: next task %d hit: %d %s (%s)", r, i, n.error,
                         pp_strerror(n.error), n.message);
        }
        release_all(next, NEXT);
        pp_future_release(a);
    }
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= (uint64_t)killed);
    cr_expect_eq(st.killed, (uint64_t)killed, "stats.killed %llu, futures killed %d",
                 (unsigned long long)st.killed, killed);
    cr_log_info("kill race: %d ok, %d killed, %d -EALREADY of %d", ok, killed, ealready, ROUNDS);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Row 21: cancel racing with the worker's dequeue of that very task. */
Test(faults, row21_cancel_racing_with_dequeue_never_loses_a_task, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    unsigned seed = 4242;
    enum { ROUNDS = 2000 };
    int cancelled = 0, ran = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t us = (uint32_t)(rand_r(&seed) % 50);
        pp_future *a = submit_ok(ex, task_spin_us, &us, sizeof us);
        uint32_t z = 0;
        pp_future *b = submit_ok(ex, task_spin_us, &z, sizeof z);
        pp_future *c = submit_ok(ex, task_spin_us, &z, sizeof z);
        bool cb = pp_future_cancel(b);
        pp_exception e = outcome(b, 10.0, "cancel-raced task");
        if (cb) {
            cr_expect_eq(e.error, -ECANCELED, "round %d: cancel said yes, got %d", r, e.error);
            cancelled++;
        } else {
            cr_expect_eq(e.error, 0, "round %d: not cancelled, got %d %s", r, e.error,
                         pp_strerror(e.error));
            ran++;
        }
        cr_expect_eq(outcome(a, 10.0, "before").error, 0);
        cr_expect_eq(outcome(c, 10.0, "after").error, 0, "round %d: the task after", r);
        pp_future_release(a);
        pp_future_release(b);
        pp_future_release(c);
    }
    cr_log_info("cancel race: %d cancelled, %d ran", cancelled, ran);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ======================================================================== */
/* per-task timeouts                                                        */
/* ======================================================================== */

Test(faults, task_timeout_kills_endless_task_others_unaffected, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    double t0 = ppt_now();
    pp_future *endless = submit_opts(ex, task_endless, 0.0, 0.2, 0.2);
    enum { N = 10 };
    pp_future *others[N];
    for (int i = 0; i < N; i++)
        others[i] = submit_secs(ex, ppt_task_sleepy, 0.05); /* no timeout: 0.5 s in all */
    pp_exception e = outcome(endless, 10.0, "endless");
    double took = ppt_now() - t0;
    cr_expect_eq(e.error, PP_EKILLED, "%d %s", e.error, pp_strerror(e.error));
    cr_expect(strstr(e.message, "timed out") != NULL, "message \"%s\"", e.message);
    cr_expect_eq(e.code, SIGTERM, "code %d", e.code);
    cr_expect_geq(took, 0.2, "killed after %.3f s, before its timeout", took);
    cr_expect_lt(took, 0.2 + PROMPT_S, "killed after %.3f s", took);
    expect_all_ok(others, N, 20.0, "tasks without timeout");
    /* A timeout that is not reached changes nothing. */
    pp_future *fine = submit_opts(ex, ppt_task_sleepy, 0.05, 5.0, 1.0);
    cr_expect_eq(pp_future_result(fine, 10.0, NULL, NULL), 0);
    pp_stats st;
    STATS_WHEN(ex, st, st.killed >= 1);
    cr_expect_eq(st.killed, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    release_all(others, N);
    pp_future_release(fine);
    pp_future_release(endless);
}

/* Row 23: the manager runs no user code, so timeouts hold while every worker
 * spins the CPU (and ignores SIGTERM: the escalation must run). */
Test(faults, row23_timeouts_enforced_while_every_worker_spins, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    double t0 = ppt_now();
    enum { N = 4 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_opts(ex, task_spin_forever_ignoring_term, 0.0, 0.2, 0.2);
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, "spinner");
        cr_expect_eq(e.error, PP_EKILLED, "spinner %d: %d %s", i, e.error, pp_strerror(e.error));
        cr_expect_eq(e.code, SIGKILL, "spinner %d: code %d", i, e.code);
        cr_expect(strstr(e.message, "timed out") != NULL, "message \"%s\"", e.message);
    }
    double took = ppt_now() - t0;
    /* Two rounds of (0.2 s + 0.2 s grace) on two workers. */
    cr_expect_lt(took, 0.8 + 2 * PROMPT_S, "4 timed-out spinners took %.3f s", took);
    pp_future *g = submit_ok(ex, task_pid_seq, NULL, 0);
    cr_expect_eq(pp_future_result(g, 10.0, NULL, NULL), 0);
    cr_log_info("4 spinning tasks timed out and killed in %.3f s", took);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    pp_future_release(g);
    release_all(fs, N);
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

Test(faults, row24_worker_killed_between_ring_ticket_and_release_respawn_recovers, PPT_FIXTURE,
     .timeout = 90)
{
    check_die_in_pop_respawn(1, 1000, 7);
}

Test(faults, row20_worker_killed_inside_ring_critical_section_two_workers_recover, PPT_FIXTURE,
     .timeout = 90)
{
    check_die_in_pop_respawn(2, 1000, 7);
}

Test(faults, row20_worker_killed_inside_ring_critical_section_break_never_hangs, PPT_FIXTURE,
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

Test(faults, row12_oom_kill_one_worker_respawn_fails_one_future, PPT_FIXTURE, .timeout = 60)
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

Test(faults, row12_oom_kill_one_worker_break_policy_breaks_pool, PPT_FIXTURE, .timeout = 60)
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

Test(faults, row13_kill_worker_mid_task_future_resolves_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_kill_mid_task(PP_DEATH_RESPAWN);
}

Test(faults, row13_kill_worker_mid_task_future_resolves_break, PPT_FIXTURE, .timeout = 60)
{
    check_kill_mid_task(PP_DEATH_BREAK);
}

/* Row 22: dispatch to a worker that just died. First after its death is
 * certain (zombie), then racing with the SIGKILL itself. */
Test(faults, row22_submit_right_after_kill9_of_worker_completes, PPT_FIXTURE, .timeout = 60)
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
        cr_assert(proc_stat(pid, &ppid, NULL) && ppid == mgr);
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
Test(faults, row25_workers_killed_during_arena_churn_pool_goes_on, PPT_FIXTURE, .timeout = 60)
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
        if (pid > 0 && proc_stat(pid, &ppid, NULL) && ppid == mgr && kill(pid, SIGKILL) == 0)
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

Test(faults, row8_respawns_while_client_threads_hold_malloc_locks, PPT_FIXTURE, .timeout = 60)
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

/* ======================================================================== */
/* shutdown rows: 3, 4, 6, 26                                                */
/* ======================================================================== */

Test(faults, row3_cancel_right_after_submit_then_shutdown_wait, PPT_FIXTURE, .timeout = 60)
{
    for (int r = 0; r < 20; r++) {
        pp_executor *ex = make_pool(1, r & 1 ? PP_DEATH_RESPAWN : PP_DEATH_BREAK);
        int n = 1 + r * 5;
        pp_future *fs[100];
        for (int i = 0; i < n; i++) {
            fs[i] = submit_secs(ex, ppt_task_sleepy, 0.0);
            pp_future_cancel(fs[i]);
        }
        double t0 = ppt_now();
        cr_assert_eq(pp_shutdown(ex, true, false), 0);
        double took = ppt_now() - t0;
        cr_expect_lt(took, 5.0, "round %d: shutdown(wait) took %.2f s", r, took);
        for (int i = 0; i < n; i++) {
            pp_exception e = outcome(fs[i], 0, "cancelled");
            cr_expect(e.error == 0 || e.error == -ECANCELED, "round %d: %d %s", r, e.error,
                      pp_strerror(e.error));
        }
        cr_assert_eq(pp_executor_destroy(ex), 0);
        release_all(fs, n);
    }
}

Test(faults, row4_million_tiny_submits_no_hang, PPT_FIXTURE, .timeout = 180)
{
    const long n = PPT_ASAN ? 200000 : 1000000;
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    pp_future **fs = calloc((size_t)n, sizeof *fs);
    cr_assert_not_null(fs);
    double t0 = ppt_now();
    for (long i = 0; i < n; i++) {
        int rc = pp_submit(ex, ppt_task_noop, NULL, 0, &fs[i]);
        if (rc != 0)
            cr_assert_eq(rc, 0, "submit %ld: %d %s", i, rc, pp_strerror(rc));
    }
    double t1 = ppt_now();
    long bad = 0;
    for (long i = 0; i < n; i++) {
        int rc = pp_future_result(fs[i], 60.0, NULL, NULL);
        if (rc != 0 && bad++ == 0)
            cr_expect_eq(rc, 0, "task %ld: %d %s", i, rc, pp_strerror(rc));
        pp_future_release(fs[i]);
    }
    cr_expect_eq(bad, 0);
    free(fs);
    cr_log_info("%ld tiny submits in %.2f s, all done in %.2f s", n, t1 - t0, ppt_now() - t0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

static void check_crash_during_nowait_shutdown(pp_death_policy policy)
{
    shared_map();
    pp_executor *ex = make_pool(2, policy);
    enum { N = 30 };
    pp_future *fs[N];
    const int bad = 10;
    for (int i = 0; i < N; i++)
        fs[i] = i == bad ? submit_secs(ex, task_abort, 0.05) : submit_secs(ex, ppt_task_sleepy, 0.01);
    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, false, false), 0);
    cr_expect_lt(ppt_now() - t0, PPT_PROMPT(0.5), "shutdown(wait=false) blocked");
    for (int i = 0; i < N; i++) {
        pp_exception e = outcome(fs[i], 10.0, "task");
        if (i == bad) {
            int want = policy == PP_DEATH_RESPAWN ? PP_EWORKER : PP_EBROKEN;
            cr_expect_eq(e.error, want, "crasher: %d %s", e.error, pp_strerror(e.error));
            cr_expect_eq(e.code, SIGABRT);
        } else if (policy == PP_DEATH_RESPAWN) {
            cr_expect_eq(e.error, 0, "task %d: %d %s", i, e.error, pp_strerror(e.error));
        } else {
            cr_expect(e.error == 0 || e.error == PP_EBROKEN, "task %d: %d %s", i, e.error,
                      pp_strerror(e.error));
        }
    }
    double t1 = ppt_now();
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_lt(ppt_now() - t1, 5.0, "destroy after the crash took %.2f s", ppt_now() - t1);
    release_all(fs, N);
}

Test(faults, row6_worker_crash_during_shutdown_nowait_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_crash_during_nowait_shutdown(PP_DEATH_RESPAWN);
}

Test(faults, row6_worker_crash_during_shutdown_nowait_break, PPT_FIXTURE, .timeout = 60)
{
    check_crash_during_nowait_shutdown(PP_DEATH_BREAK);
}

/* Row 26: bounded shutdown latency while tasks sleep 30 s. The header:
 * "Running futures fail promptly with PP_EBROKEN" (either policy). */
static void check_bounded_shutdown(pp_death_policy policy, bool kill9)
{
    pp_executor *ex = make_pool(2, policy);
    pp_future *a = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *b = submit_secs(ex, ppt_task_sleepy, 30.0);
    pp_future *q = submit_secs(ex, ppt_task_sleepy, 30.0);
    wait_running(a, "a");
    wait_running(b, "b");
    double t0 = ppt_now();
    cr_assert_eq(kill9 ? pp_kill_workers(ex) : pp_terminate_workers(ex), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    double took = ppt_now() - t0;
    cr_expect_lt(took, PROMPT_S, "%s + destroy took %.3f s", kill9 ? "kill" : "terminate", took);
    pp_future *run[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        pp_exception e = outcome(run[i], PROMPT_S, "running task");
        cr_expect_eq(e.error, PP_EBROKEN, "%s policy, %s: running future %d: %d %s (%s)",
                     policy == PP_DEATH_RESPAWN ? "RESPAWN" : "BREAK",
                     kill9 ? "pp_kill_workers" : "pp_terminate_workers", i, e.error,
                     pp_strerror(e.error), e.message);
    }
    pp_exception e = outcome(q, PROMPT_S, "queued task");
    cr_expect(e.error == -ECANCELED || e.error == PP_EBROKEN, "queued: %d %s", e.error,
              pp_strerror(e.error));
    cr_log_info("%s, %s: workers stopped and destroy returned in %.3f s",
                kill9 ? "pp_kill_workers" : "pp_terminate_workers",
                policy == PP_DEATH_RESPAWN ? "RESPAWN" : "BREAK", took);
    release_all(run, 2);
    pp_future_release(q);
}

Test(faults, row26_kill_workers_bounds_shutdown_latency, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_BREAK, true);
}

Test(faults, row26_terminate_workers_bounds_shutdown_latency, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_BREAK, false);
}

Test(faults, row26_kill_workers_bounds_shutdown_latency_respawn, PPT_FIXTURE, .timeout = 60)
{
    check_bounded_shutdown(PP_DEATH_RESPAWN, true);
}

/* PP_DEATH_RESPAWN: "What happens when a worker process dies unexpectedly
 * (signal, exit(), OOM kill) while the pool runs ... a replacement worker is
 * started". A replacement SIGKILLed (an OOM kill) before it reached its task
 * loop is such a death: it must be replaced, not break the pool. */
Test(faults, respawn_replacement_killed_while_starting_is_replaced, PPT_FIXTURE, .timeout = 60)
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
        if (proc_stat(repl, &ppid, NULL) && ppid == mgr)
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
