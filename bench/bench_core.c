/*
 * bench_core — ppool's core benchmark: the cost of one task.
 *
 *   a. round trip: submit a no-op task (8-byte argument, 8-byte result), wait
 *      for its result, release it; one at a time. Warm-up, then R rounds;
 *      median / p90 / p99 in microseconds (nearest-rank, per run).
 *   b. throughput: submit N no-op tasks as fast as possible, then wait for
 *      every one (checking its result) and release it; tasks per second from
 *      the first submit to the last release.
 *
 * Both shapes are repeated over K runs on one executor; the figures printed
 * are medians over the runs. Then, in the same invocation, the same shapes
 * are measured on every Python pool a user would pick instead (bench/
 * peer_ppe.py, same worker count): CPython's ProcessPoolExecutor and
 * multiprocessing.Pool (fork start method) and loky's ProcessPoolExecutor
 * (joblib.externals.loky), all printed side by side with ppool, with the
 * issue's targets marked MET or MISSED. The peers run under /usr/bin/python3
 * when it exists (Debian's python3-joblib carries loky there), else the
 * python3 on PATH; a peer that cannot run is shown as "not run".
 *
 * Usage: bench_core [--workers N] [--rounds R] [--tasks N] [--runs K]
 *                   [--py-rounds R] [--py-tasks N] [--peer PATH]
 *                   [--csv FILE] [--no-python] [--quick]
 * See bench/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ppool.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Targets (from the issue)                                                  */
/* ------------------------------------------------------------------------ */

#define TARGET_RT_MEDIAN_US 10.0
#define TARGET_TPUT 1000000.0
#define TARGET_TPUT_WORKERS 2
/* Issue 16, item 2: the round trip within this factor of a cross-CPU spin
 * ping-pong between two processes measured in the same run, while the
 * throughput stays at or above TARGET_TPUT_FAST with 2 workers. */
#define TARGET_RT_OVER_FLOOR 4.0
#define TARGET_TPUT_FAST 2000000.0
#define FLOOR_ROUNDS 20000
#define FLOOR_REPEATS 3

#define WARMUP_ROUNDS 1000

/* A result not there after this long means the runtime is stuck: say so and
 * exit rather than hang the benchmark. */
#define RESULT_TIMEOUT_S 60.0

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */

static const char *prog = "bench_core";
static int shards_opt = -1; /* --shards N: pp_config.ring_shards; -1 = the default */

#include "bench_util.h" /* after prog and RESULT_TIMEOUT_S: its helpers use them */

/* Every pp_* call that returns an int goes through CHECK. */
#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != 0)                                                          \
            die(#call, rc_);                                                   \
    } while (0)

/* Nearest-rank percentile of sorted samples (same definition as peer_ppe.py). */
static uint64_t percentile_u64(const uint64_t *sorted, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

static double min_d(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double max_d(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants an integer in %ld..%ld, got '%s'\n", prog, opt, lo, hi,
                s ? s : "(nothing)");
        exit(2);
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* The task                                                                   */
/* ------------------------------------------------------------------------ */

/* The no-op: 8 bytes in, the same 8 bytes out. */
static int noop_task(pp_task *t)
{
    size_t n = 0;
    const void *arg = pp_task_arg(t, &n);
    if (n != sizeof(uint64_t))
        return pp_task_raise(t, 1, "noop: argument is %zu bytes, expected 8", n);
    return pp_task_set_result(t, arg, sizeof(uint64_t));
}

/* Result of future @f must be the 8 bytes of @expect. */
static void check_result(pp_future *f, const char *what, uint64_t expect)
{
    const void *data = NULL;
    size_t size = 0;
    int rc = pp_future_result(f, RESULT_TIMEOUT_S, &data, &size);
    if (rc != 0)
        die_future(what, f, rc);
    uint64_t got;
    if (size != sizeof got || !data) {
        fprintf(stderr, "%s: %s: result is %zu bytes, expected 8\n", prog, what, size);
        exit(1);
    }
    memcpy(&got, data, sizeof got);
    if (got != expect) {
        fprintf(stderr, "%s: %s: result %" PRIu64 ", expected %" PRIu64 "\n", prog, what, got,
                expect);
        exit(1);
    }
}

/* ------------------------------------------------------------------------ */
/* The machine                                                                */
/* ------------------------------------------------------------------------ */

static size_t count_sub(const char *hay, const char *needle)
{
    size_t c = 0, n = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += n)
        c++;
    return c;
}

/* "1 package, 1 NUMA node, 2 cores, 2 PUs, 4570MB" from lstopo, or "" . */
static void hwloc_summary(char *out, size_t len)
{
    out[0] = '\0';
    FILE *p = popen("lstopo-no-graphics --of console -p --no-io 2>/dev/null", "r");
    if (!p)
        return;
    size_t cap = 1 << 16, used = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + used, 1, cap - 1 - used, p)) > 0) {
        used += r;
        if (used + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
    }
    buf[used] = '\0';
    int st = pclose(p);
    if (st != 0 || used == 0) {
        free(buf);
        return;
    }
    size_t pkg = count_sub(buf, "Package"), numa = count_sub(buf, "NUMANode"),
           core = count_sub(buf, "Core"), pu = count_sub(buf, "PU");
    char mem[32] = "";
    const char *m = strstr(buf, "Machine (");
    if (m) {
        m += strlen("Machine (");
        size_t i = 0;
        while (m[i] && m[i] != ' ' && m[i] != ')' && i + 1 < sizeof mem) {
            mem[i] = m[i];
            i++;
        }
        mem[i] = '\0';
    }
    if (core || pu)
        snprintf(out, len, "%zu package%s, %zu NUMA node%s, %zu core%s, %zu PU%s%s%s", pkg,
                 pkg == 1 ? "" : "s", numa, numa == 1 ? "" : "s", core, core == 1 ? "" : "s", pu,
                 pu == 1 ? "" : "s", mem[0] ? ", " : "", mem);
    free(buf);
}

static void print_machine(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int allowed = -1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        allowed = CPU_COUNT(&set);
    char model[256], topo[256];
    cpu_model(model, sizeof model);
    hwloc_summary(topo, sizeof topo);
    printf("machine:  %ld CPUs online (%d allowed), %s; %s\n", online, allowed, model,
           topo[0] ? topo : "(lstopo-no-graphics not available)");

    struct utsname u;
    if (uname(&u) == 0)
        printf("kernel:   %s %s %s\n", u.sysname, u.release, u.machine);
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown compiler";
#endif
#if defined(__OPTIMIZE__)
    const char *opt = "optimized";
#else
    const char *opt = "NOT optimized (numbers will be pessimistic)";
#endif
#if defined(_OPENMP)
    printf("compiler: %s, %s, OpenMP %d\n", cc, opt, _OPENMP);
#else
    printf("compiler: %s, %s\n", cc, opt);
#endif
}

/* ------------------------------------------------------------------------ */
/* ppool measurements                                                         */
/* ------------------------------------------------------------------------ */

typedef struct results {
    double floor_p50_us, floor_p99_us; /* the spin ping-pong floor; NaN: not measured */
    int floor_cpu[2];
    double rt_median_us, rt_p90_us, rt_p99_us, tput;
    /* spread over runs */
    double rt_median_min, rt_median_max, tput_min, tput_max;
} results;

/* ------------------------------------------------------------------------ */
/* The floor: a cross-CPU spin ping-pong between two processes               */
/* ------------------------------------------------------------------------ */

/* Two cache lines of a shared anonymous page: the parent writes ping, the
 * child answers on pong. */
typedef struct pingpong {
    _Alignas(64) _Atomic uint64_t ping;
    _Alignas(64) _Atomic uint64_t pong;
} pingpong;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pin_to(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    (void)sched_setaffinity(0, sizeof s, &s);
}

/*
 * The least a hand-off between two processes on two CPUs can cost: the
 * parent (pinned to one CPU) stores i in ping, the child (pinned to another)
 * spins until it sees i and stores it in pong, the parent spins until it
 * sees it: two cache-line transfers each way, no system call. Timed like a
 * ppool round trip (one clock pair per round), FLOOR_ROUNDS rounds after a
 * warm-up, FLOOR_REPEATS times; *p50 / *p99 get the median over the repeats
 * of each repeat's percentiles, in microseconds. Returns false (NaN floor)
 * with fewer than two allowed CPUs or if the child cannot be had.
 */
static bool spin_floor(double *p50, double *p99, int cpu[2])
{
    *p50 = *p99 = NAN;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return false;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpu[n++] = c;
    if (n < 2)
        return false;
    pingpong *pp = mmap(NULL, sizeof *pp, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pp == MAP_FAILED)
        return false;
    /* relaxed: before the fork, which orders it. */
    atomic_store_explicit(&pp->ping, 0, memory_order_relaxed);
    atomic_store_explicit(&pp->pong, 0, memory_order_relaxed);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        munmap(pp, sizeof *pp);
        return false;
    }
    if (pid == 0) { /* the answering side */
        pin_to(cpu[1]);
        uint64_t seen = 0;
        for (;;) {
            /* acquire/release: each round's value is handed back and forth;
             * UINT64_MAX ends the child. */
            uint64_t v = atomic_load_explicit(&pp->ping, memory_order_acquire);
            if (v == seen) {
                cpu_relax();
                continue;
            }
            if (v == UINT64_MAX)
                _exit(0);
            atomic_store_explicit(&pp->pong, v, memory_order_release);
            seen = v;
        }
    }
    cpu_set_t mine;
    bool had = sched_getaffinity(0, sizeof mine, &mine) == 0;
    pin_to(cpu[0]);
    const long warm = FLOOR_ROUNDS / 10;
    uint64_t *samples = xmalloc(sizeof *samples * FLOOR_ROUNDS);
    double m50[FLOOR_REPEATS], m99[FLOOR_REPEATS];
    uint64_t i = 0;
    bool ok = true;
    for (int r = 0; r < FLOOR_REPEATS && ok; r++) {
        for (long k = -warm; k < FLOOR_ROUNDS && ok; k++) {
            uint64_t t0 = now_ns();
            /* release / acquire: as the child's. */
            atomic_store_explicit(&pp->ping, ++i, memory_order_release);
            for (unsigned spins = 1; atomic_load_explicit(&pp->pong, memory_order_acquire) != i;
                 spins++) {
                cpu_relax();
                /* a clock read only now and then: it would inflate the floor */
                if (!(spins & 0xffff) && now_ns() - t0 > 1000000000ull) {
                    ok = false; /* the child is not running */
                    break;
                }
            }
            if (k >= 0)
                samples[k] = now_ns() - t0;
        }
        if (!ok)
            break;
        qsort(samples, FLOOR_ROUNDS, sizeof *samples, cmp_u64);
        m50[r] = percentile_u64(samples, FLOOR_ROUNDS, 0.50) / 1e3;
        m99[r] = percentile_u64(samples, FLOOR_ROUNDS, 0.99) / 1e3;
    }
    /* release: the child's last acquire sees it and exits. */
    atomic_store_explicit(&pp->ping, UINT64_MAX, memory_order_release);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (had)
        (void)sched_setaffinity(0, sizeof mine, &mine);
    free(samples);
    munmap(pp, sizeof *pp);
    if (!ok)
        return false;
    *p50 = median_d(m50, FLOOR_REPEATS, NULL, NULL);
    *p99 = median_d(m99, FLOOR_REPEATS, NULL, NULL);
    return true;
}

static void round_trips(pp_executor *ex, uint64_t *samples, long rounds, long warmup,
                        double *med, double *p90, double *p99)
{
    for (long i = 0; i < warmup; i++) {
        uint64_t v = (uint64_t)i;
        pp_future *f;
        CHECK(pp_submit(ex, noop_task, &v, sizeof v, &f));
        check_result(f, "warm-up pp_future_result", v);
        pp_future_release(f);
    }
    for (long i = 0; i < rounds; i++) {
        uint64_t v = (uint64_t)i ^ 0x5a5a5a5a5a5a5a5aull;
        pp_future *f;
        const void *data = NULL;
        size_t size = 0;
        uint64_t t0 = now_ns();
        int rc = pp_submit(ex, noop_task, &v, sizeof v, &f);
        if (rc != 0)
            die("pp_submit", rc);
        rc = pp_future_result(f, RESULT_TIMEOUT_S, &data, &size);
        uint64_t got = 0;
        if (rc == 0 && size == sizeof got && data)
            memcpy(&got, data, sizeof got);
        if (rc != 0)
            die_future("pp_future_result", f, rc);
        pp_future_release(f);
        samples[i] = now_ns() - t0;
        if (size != sizeof got || got != v) {
            fprintf(stderr, "%s: round trip %ld: result of %zu bytes, value %" PRIu64
                            ", expected 8 bytes, %" PRIu64 "\n",
                    prog, i, size, got, v);
            exit(1);
        }
    }
    qsort(samples, (size_t)rounds, sizeof *samples, cmp_u64);
    *med = percentile_u64(samples, (size_t)rounds, 0.50) / 1e3;
    *p90 = percentile_u64(samples, (size_t)rounds, 0.90) / 1e3;
    *p99 = percentile_u64(samples, (size_t)rounds, 0.99) / 1e3;
}

/* Returns tasks/s; *submit_ns receives the time spent in the submit loop
 * (the rest is waiting for and releasing the results). */
static double throughput(pp_executor *ex, pp_future **futs, long tasks, uint64_t *submit_ns)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < tasks; i++) {
        uint64_t v = (uint64_t)i;
        int rc = pp_submit(ex, noop_task, &v, sizeof v, &futs[i]);
        if (rc != 0)
            die("pp_submit", rc);
    }
    uint64_t ts = now_ns();
    for (long i = 0; i < tasks; i++) {
        check_result(futs[i], "pp_future_result", (uint64_t)i);
        pp_future_release(futs[i]);
    }
    uint64_t t1 = now_ns();
    *submit_ns = ts - t0;
    return (double)tasks / ((double)(t1 - t0) * 1e-9);
}

static void print_pool(pp_executor *ex, const char *when)
{
    int nw = pp_max_workers(ex);
    if (nw < 0)
        die("pp_max_workers", nw);
    pp_stats st;
    pp_worker_stats *ws = xmalloc(sizeof *ws * (size_t)nw);
    int got = pp_executor_stats(ex, &st, ws, nw);
    if (got < 0)
        die("pp_executor_stats", got);
    if (got > nw)
        got = nw;
    printf("  pool %s: %d worker%s;", when, st.workers, st.workers == 1 ? "" : "s");
    for (int i = 0; i < got; i++) {
        if (ws[i].cpu >= 0)
            printf(" w%d cpu %d", i, ws[i].cpu);
        else
            printf(" w%d unpinned", i);
        if (st.completed)
            printf(" %" PRIu64 " tasks", ws[i].tasks);
        if (ws[i].respawns)
            printf(" %" PRIu64 " respawns", ws[i].respawns);
        printf(i + 1 < got ? "," : "");
    }
    if (st.completed || st.failed || st.cancelled)
        printf("; completed %" PRIu64 ", failed %" PRIu64 ", cancelled %" PRIu64, st.completed,
               st.failed, st.cancelled);
    printf("\n");
    free(ws);
}

/* The task-ring layout: shard count and each worker's home shard. */
/* Where the shard count came from when --shards was not given. */
static const char *cfg_shards_default(void)
{
    pp_config c;
    pp_config_init(&c);
    return c.ring_shards ? "PPOOL_RING_SHARDS" : "automatic, from the topology";
}

static void print_shards(pp_executor *ex, int nw)
{
    int *homes = xmalloc(sizeof *homes * (size_t)(nw > 0 ? nw : 1));
    int s = pp_executor_shards(ex, homes, nw);
    if (s < 0)
        die("pp_executor_shards", s);
    printf("  task ring: %d shard%s (%s)", s, s == 1 ? "" : "s",
           shards_opt > 0 ? "--shards" : shards_opt == 0 ? "automatic, from the topology" : cfg_shards_default());
    if (s > 1) {
        printf("; worker home shards:");
        for (int i = 0; i < nw; i++)
            printf(" %d", homes[i]);
    }
    printf("\n");
    free(homes);
}

static void run_ppool(int workers_opt, long rounds, long tasks, long runs, long warmup,
                      int *workers_out, results *res)
{
    pp_config cfg;
    pp_config_init(&cfg);
    int def_workers = cfg.max_workers;
    if (workers_opt > 0)
        cfg.max_workers = workers_opt;
    if (shards_opt >= 0)
        cfg.ring_shards = shards_opt;

    /* The floor first, before any pool runs (its two spinning processes
     * would compete with the workers). */
    if (spin_floor(&res->floor_p50_us, &res->floor_p99_us, res->floor_cpu))
        printf("\nfloor: spin ping-pong between two processes pinned to CPUs %d and %d: "
               "p50 %.3f us, p99 %.3f us (median of %d x %d rounds)\n",
               res->floor_cpu[0], res->floor_cpu[1], res->floor_p50_us, res->floor_p99_us,
               FLOOR_REPEATS, FLOOR_ROUNDS);
    else
        printf("\nfloor: not measured (fewer than 2 CPUs allowed, or the partner did not run)\n");

    pp_executor *ex = NULL;
    CHECK(pp_executor_create(&ex, &cfg));
    int nw = pp_max_workers(ex);
    if (nw < 0)
        die("pp_max_workers", nw);
    *workers_out = nw;
    if (workers_opt > 0)
        printf("\nppool: %d worker%s (--workers), pin policy compact, client unpinned\n", nw,
               nw == 1 ? "" : "s");
    else
        printf("\nppool: %d worker%s (pp_config_init default%s), pin policy compact, "
               "client unpinned\n",
               nw, nw == 1 ? "" : "s", def_workers == 0 ? ": physical cores allowed" : "");
    print_pool(ex, "at start");
    print_shards(ex, nw);
    printf("  shapes: round trip %ld rounds after %ld warm-up; throughput %ld tasks; %ld runs\n",
           rounds, warmup, tasks, runs);
    fflush(stdout);

    uint64_t *samples = xmalloc(sizeof *samples * (size_t)rounds);
    pp_future **futs = xmalloc(sizeof *futs * (size_t)tasks);
    double *med = xmalloc(sizeof(double) * (size_t)runs);
    double *p90 = xmalloc(sizeof(double) * (size_t)runs);
    double *p99 = xmalloc(sizeof(double) * (size_t)runs);
    double *tp = xmalloc(sizeof(double) * (size_t)runs);

    for (long r = 0; r < runs; r++) {
        round_trips(ex, samples, rounds, warmup, &med[r], &p90[r], &p99[r]);
        uint64_t sub_ns = 0;
        tp[r] = throughput(ex, futs, tasks, &sub_ns);
        char b[64];
        double total_ns = (double)tasks / tp[r] * 1e9;
        printf("  run %ld/%ld: round trip median %.2f us, p90 %.2f us, p99 %.2f us; "
               "throughput %s tasks/s (%.0f ns/task: submit loop %.0f, wait+release %.0f)\n",
               r + 1, runs, med[r], p90[r], p99[r], grouped(tp[r], b, sizeof b),
               total_ns / (double)tasks, (double)sub_ns / (double)tasks,
               (total_ns - (double)sub_ns) / (double)tasks);
        fflush(stdout);
    }
    print_pool(ex, "at end");
    CHECK(pp_executor_destroy(ex));

    res->rt_median_min = min_d(med, (size_t)runs);
    res->rt_median_max = max_d(med, (size_t)runs);
    res->tput_min = min_d(tp, (size_t)runs);
    res->tput_max = max_d(tp, (size_t)runs);
    res->rt_median_us = median_d(med, (size_t)runs, NULL, NULL);
    res->rt_p90_us = median_d(p90, (size_t)runs, NULL, NULL);
    res->rt_p99_us = median_d(p99, (size_t)runs, NULL, NULL);
    res->tput = median_d(tp, (size_t)runs, NULL, NULL);

    free(samples);
    free(futs);
    free(med);
    free(p90);
    free(p99);
    free(tp);
}

/* ------------------------------------------------------------------------ */
/* The CPython peer                                                           */
/* ------------------------------------------------------------------------ */

typedef struct py_results {
    double rt_median_us, rt_p90_us, rt_p99_us, tput;
    int workers;
    char version[32];
    bool have; /* the peer ran and its output parsed */
} py_results;

/* The Python peers, in the table's order: peer_ppe.py --impl <impl>. */
enum { PY_PPE, PY_MP_POOL, PY_LOKY, PY_N };
static const struct {
    const char *impl;  /* peer_ppe.py --impl */
    const char *title; /* the table's column */
    const char *csv;   /* the CSV's impl column, before the version */
    const char *what;  /* how it is run */
} py_peers[PY_N] = {
    {"ppe", "ProcessPoolExecutor", "python-ppe", "concurrent.futures.ProcessPoolExecutor, fork"},
    {"mp_pool", "multiprocessing.Pool", "python-mp-pool",
     "multiprocessing.Pool, fork, apply_async().get()"},
    {"loky", "loky", "python-loky", "joblib.externals.loky.ProcessPoolExecutor, loky start"},
};

/* Directory of the running executable (from /proc/self/exe, else argv[0]). */
static void exe_dir(const char *argv0, char *out, size_t len)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = '\0';
    } else if (argv0 && strchr(argv0, '/')) {
        if (!realpath(argv0, buf))
            snprintf(buf, sizeof buf, "%s", argv0);
    } else {
        snprintf(buf, sizeof buf, "./%s", prog);
    }
    char *slash = strrchr(buf, '/');
    if (slash == buf)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(buf, sizeof buf, ".");
    snprintf(out, len, "%s", buf);
}

/* Finds bench/peer_ppe.py: --peer, $PPOOL_SRC/bench, <exe dir>/../bench,
 * <exe dir>/../../bench. Returns false (with the places tried) if absent. */
static bool find_peer(const char *opt, const char *argv0, char *out, size_t len)
{
    if (opt) {
        snprintf(out, len, "%s", opt);
        if (readable_file(out))
            return true;
        fprintf(stderr, "%s: --peer %s: not a readable file\n", prog, opt);
        return false;
    }
    char dir[PATH_MAX], cand[3][PATH_MAX + 64];
    int nc = 0;
    const char *src = getenv("PPOOL_SRC");
    if (src && *src)
        snprintf(cand[nc++], sizeof cand[0], "%s/bench/peer_ppe.py", src);
    exe_dir(argv0, dir, sizeof dir);
    snprintf(cand[nc++], sizeof cand[0], "%s/../bench/peer_ppe.py", dir);
    snprintf(cand[nc++], sizeof cand[0], "%s/../../bench/peer_ppe.py", dir);
    for (int i = 0; i < nc; i++) {
        if (readable_file(cand[i])) {
            char real[PATH_MAX];
            const char *found = realpath(cand[i], real) ? real : cand[i];
            size_t n = strlen(found);
            if (n >= len)
                continue; /* cannot be passed on whole */
            memcpy(out, found, n + 1);
            return true;
        }
    }
    fprintf(stderr, "%s: bench/peer_ppe.py not found; tried:", prog);
    for (int i = 0; i < nc; i++)
        fprintf(stderr, " %s", cand[i]);
    fprintf(stderr, " (set PPOOL_SRC=<source dir> or pass --peer PATH)\n");
    return false;
}

/* Runs the peer; its stderr passes through, its stdout is parsed. */
static bool run_python(const char *python, const char *peer, const char *impl, int workers,
                       long rounds, long tasks, long runs, py_results *res)
{
    char w[24], r[24], t[24], k[24];
    snprintf(w, sizeof w, "%d", workers);
    snprintf(r, sizeof r, "%ld", rounds);
    snprintf(t, sizeof t, "%ld", tasks);
    snprintf(k, sizeof k, "%ld", runs);
    char *args[] = {(char *)python, "-u", (char *)peer, "--impl", (char *)impl, "--workers", w,
                    "--rounds", r, "--tasks", t, "--runs", k, NULL};

    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("bench_core: pipe");
        return false;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    int err = posix_spawn(&pid, python, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (err != 0) {
        fprintf(stderr, "%s: cannot run %s: %s\n", prog, python, strerror(err));
        close(pfd[0]);
        return false;
    }
    FILE *in = fdopen(pfd[0], "r");
    if (!in) {
        perror("bench_core: fdopen");
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        return false;
    }
    char line[4096], last[4096] = "";
    while (fgets(line, sizeof line, in)) {
        if (strchr(line, '{'))
            snprintf(last, sizeof last, "%s", line);
    }
    fclose(in);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "%s: python peer %s killed by signal %d\n", prog, impl,
                    WTERMSIG(status));
        else
            fprintf(stderr, "%s: python peer %s exited with status %d\n", prog, impl,
                    WEXITSTATUS(status));
        return false;
    }
    res->rt_median_us = json_num(last, "rt_median_us");
    res->rt_p90_us = json_num(last, "rt_p90_us");
    res->rt_p99_us = json_num(last, "rt_p99_us");
    res->tput = json_num(last, "tput");
    double wk = json_num(last, "workers");
    res->workers = isfinite(wk) ? (int)wk : -1;
    if (!json_str(last, "python", res->version, sizeof res->version))
        snprintf(res->version, sizeof res->version, "?");
    if (!isfinite(res->rt_median_us) || !isfinite(res->rt_p90_us) ||
        !isfinite(res->rt_p99_us) || !isfinite(res->tput) || res->tput <= 0) {
        last[strcspn(last, "\n")] = '\0';
        fprintf(stderr, "%s: cannot parse the python peer's output: '%s'\n", prog, last);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                     */
/* ------------------------------------------------------------------------ */

/* One figure in a column of 22: a rate grouped in thousands, a time with
 * two decimals, "-" when the peer did not run. */
static const char *cell(char *buf, size_t len, double v, bool rate, bool have)
{
    char b[64];
    if (!have)
        snprintf(buf, len, "-");
    else if (rate)
        snprintf(buf, len, "%s", grouped(v, b, sizeof b));
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

static void print_table(const results *pp, const py_results *py)
{
    char a[64];
    printf("\n%-24s | %12s", "shape", "ppool");
    for (int k = 0; k < PY_N; k++)
        printf(" | %22s", py_peers[k].title);
    printf("\n-------------------------+-------------");
    for (int k = 0; k < PY_N; k++)
        printf("+------------------------");
    printf("\n");
    struct {
        const char *name;
        double p;
        size_t off; /* the figure in py_results */
        bool rate;
    } rows[] = {
        {"round trip median (us)", pp->rt_median_us, offsetof(py_results, rt_median_us), false},
        {"round trip p90 (us)", pp->rt_p90_us, offsetof(py_results, rt_p90_us), false},
        {"round trip p99 (us)", pp->rt_p99_us, offsetof(py_results, rt_p99_us), false},
        {"throughput (tasks/s)", pp->tput, offsetof(py_results, tput), true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        printf("%-24s | %12s", rows[i].name, cell(a, sizeof a, rows[i].p, rows[i].rate, true));
        for (int k = 0; k < PY_N; k++) {
            double y = *(const double *)((const char *)&py[k] + rows[i].off);
            char c[80];
            if (py[k].have) {
                /* Python's cost over ppool's: time ratio for latencies, and
                 * for a rate the ratio of per-task times (ppool / python). */
                double ratio = rows[i].rate ? rows[i].p / y : y / rows[i].p;
                snprintf(c, sizeof c, "%s (%.*fx)", cell(a, sizeof a, y, rows[i].rate, true),
                         ratio < 100 ? 1 : 0, ratio);
            } else {
                snprintf(c, sizeof c, "not run");
            }
            printf(" | %22s", c);
        }
        printf("\n");
    }
    printf("(Nx) = that pool's cost per task / ppool's (for throughput: ppool rate / its "
           "rate); > 1 means ppool is faster.\n");
}

static void print_targets(const results *pp, int workers)
{
    char b[64], v[64];
    printf("\nissue targets:\n");
    snprintf(v, sizeof v, "%.2f us", pp->rt_median_us);
    printf("  %-46s %20s  %s\n", "round trip median <= 10 us:", v,
           pp->rt_median_us <= TARGET_RT_MEDIAN_US ? "MET" : "MISSED");
    snprintf(v, sizeof v, "%s tasks/s", grouped(pp->tput, b, sizeof b));
    printf("  %-46s %20s  %s", "throughput >= 1,000,000 tasks/s with 2 workers:", v,
           pp->tput >= TARGET_TPUT ? "MET" : "MISSED");
    if (workers != TARGET_TPUT_WORKERS)
        printf(" (but measured with %d worker%s: rerun with --workers %d)", workers,
               workers == 1 ? "" : "s", TARGET_TPUT_WORKERS);
    printf("\n");
    /* issue 16, item 2 */
    if (isfinite(pp->floor_p50_us)) {
        double q = pp->rt_median_us / pp->floor_p50_us;
        snprintf(v, sizeof v, "%.2f / %.3f us = %.1fx", pp->rt_median_us, pp->floor_p50_us, q);
        printf("  %-46s %20s  %s\n", "round trip median <= 4 x spin floor p50:", v,
               q <= TARGET_RT_OVER_FLOOR ? "MET" : "MISSED");
    } else {
        printf("  %-46s %20s  %s\n", "round trip median <= 4 x spin floor p50:", "-",
               "not measured (no floor)");
    }
    snprintf(v, sizeof v, "%s tasks/s", grouped(pp->tput, b, sizeof b));
    printf("  %-46s %20s  %s", "throughput >= 2,000,000 tasks/s with 2 workers:", v,
           pp->tput >= TARGET_TPUT_FAST ? "MET" : "MISSED");
    if (workers != TARGET_TPUT_WORKERS)
        printf(" (but measured with %d worker%s)", workers, workers == 1 ? "" : "s");
    printf("\n  (round trip p50 %.2f us, p99 %.2f us; floor p99 %.3f us)\n", pp->rt_median_us,
           pp->rt_p99_us, pp->floor_p99_us);
}

static int write_csv(const char *path, int workers, const results *pp, long rounds, long tasks,
                     long runs, const py_results *pys, long py_rounds, long py_tasks,
                     long py_runs)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: --csv %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    fprintf(f, "impl,workers,metric,unit,value,min_over_runs,max_over_runs,n,runs\n");
    if (isfinite(pp->floor_p50_us)) {
        fprintf(f, "spin-floor,2,rt_median,us,%.3f,,,%d,%d\n", pp->floor_p50_us, FLOOR_ROUNDS,
                FLOOR_REPEATS);
        fprintf(f, "spin-floor,2,rt_p99,us,%.3f,,,%d,%d\n", pp->floor_p99_us, FLOOR_ROUNDS,
                FLOOR_REPEATS);
    }
    fprintf(f, "ppool,%d,rt_median,us,%.3f,%.3f,%.3f,%ld,%ld\n", workers, pp->rt_median_us,
            pp->rt_median_min, pp->rt_median_max, rounds, runs);
    fprintf(f, "ppool,%d,rt_p90,us,%.3f,,,%ld,%ld\n", workers, pp->rt_p90_us, rounds, runs);
    fprintf(f, "ppool,%d,rt_p99,us,%.3f,,,%ld,%ld\n", workers, pp->rt_p99_us, rounds, runs);
    fprintf(f, "ppool,%d,throughput,tasks/s,%.1f,%.1f,%.1f,%ld,%ld\n", workers, pp->tput,
            pp->tput_min, pp->tput_max, tasks, runs);
    for (int k = 0; k < PY_N; k++) {
        const py_results *py = &pys[k];
        const char *n = py_peers[k].csv;
        if (!py->have)
            continue;
        fprintf(f, "%s-%s,%d,rt_median,us,%.3f,,,%ld,%ld\n", n, py->version, py->workers,
                py->rt_median_us, py_rounds, py_runs);
        fprintf(f, "%s-%s,%d,rt_p90,us,%.3f,,,%ld,%ld\n", n, py->version, py->workers,
                py->rt_p90_us, py_rounds, py_runs);
        fprintf(f, "%s-%s,%d,rt_p99,us,%.3f,,,%ld,%ld\n", n, py->version, py->workers,
                py->rt_p99_us, py_rounds, py_runs);
        fprintf(f, "%s-%s,%d,throughput,tasks/s,%.1f,,,%ld,%ld\n", n, py->version,
                py->workers, py->tput, py_tasks, py_runs);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: --csv %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: %s [options]\n"
            "  --workers N    worker processes (default: pp_config_init's, the physical cores)\n"
            "  --shards N     task-ring shards (pp_config.ring_shards; default 0 = from\n"
            "                 the topology, or $PPOOL_RING_SHARDS)\n"
            "  --rounds R     round trips per run (default 20000)\n"
            "  --tasks N      tasks per throughput run (default 1000000)\n"
            "  --runs K       runs; medians over runs are reported (default 5)\n"
            "  --py-rounds R  python peers' round trips per run (default min(R, 2000))\n"
            "  --py-tasks N   python peers' tasks per run (default min(N, 20000))\n"
            "  --peer PATH    the python peer script (default: found from $PPOOL_SRC or the\n"
            "                 executable's directory: ../bench or ../../bench)\n"
            "  --python PATH  the interpreter for the peers (default /usr/bin/python3 if it\n"
            "                 exists, which has joblib's loky on Debian, else python3 on PATH)\n"
            "  --csv FILE     also write the results as CSV\n"
            "  --no-python    measure ppool only\n"
            "  --quick        small sizes, a smoke run of about a second\n",
            prog);
}

int main(int argc, char **argv)
{
    long rounds = 20000, tasks = 1000000, runs = 5, warmup = WARMUP_ROUNDS;
    long py_rounds = -1, py_tasks = -1;
    int workers_opt = 0;
    bool no_python = false, quick = false;
    bool set_rounds = false, set_tasks = false, set_runs = false;
    const char *csv = NULL, *peer_opt = NULL, *python_opt = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--workers")) {
            workers_opt = (int)parse_long(a, v, 1, 4096);
            i++;
        } else if (!strcmp(a, "--shards")) {
            shards_opt = (int)parse_long(a, v, 0, PP_RING_SHARDS_MAX);
            i++;
        } else if (!strcmp(a, "--rounds")) {
            rounds = parse_long(a, v, 1, 100000000);
            set_rounds = true;
            i++;
        } else if (!strcmp(a, "--tasks")) {
            tasks = parse_long(a, v, 1, 1000000000);
            set_tasks = true;
            i++;
        } else if (!strcmp(a, "--runs")) {
            runs = parse_long(a, v, 1, 1000);
            set_runs = true;
            i++;
        } else if (!strcmp(a, "--py-rounds")) {
            py_rounds = parse_long(a, v, 1, 100000000);
            i++;
        } else if (!strcmp(a, "--py-tasks")) {
            py_tasks = parse_long(a, v, 1, 1000000000);
            i++;
        } else if (!strcmp(a, "--csv")) {
            if (!v) {
                fprintf(stderr, "%s: --csv wants a file name\n", prog);
                return 2;
            }
            csv = v;
            i++;
        } else if (!strcmp(a, "--peer")) {
            if (!v) {
                fprintf(stderr, "%s: --peer wants a path\n", prog);
                return 2;
            }
            peer_opt = v;
            i++;
        } else if (!strcmp(a, "--python")) {
            if (!v) {
                fprintf(stderr, "%s: --python wants a path\n", prog);
                return 2;
            }
            python_opt = v;
            i++;
        } else if (!strcmp(a, "--no-python")) {
            no_python = true;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            usage(stderr);
            return 2;
        }
    }
    if (quick) { /* explicit sizes still win */
        if (!set_rounds)
            rounds = 2000;
        if (!set_tasks)
            tasks = 100000;
        if (!set_runs)
            runs = 2;
        warmup = 200;
    }
    if (py_rounds < 0)
        py_rounds = quick ? 200 : (rounds < 2000 ? rounds : 2000);
    if (py_tasks < 0)
        py_tasks = quick ? 2000 : (tasks < 20000 ? tasks : 20000);
    long py_runs = quick ? 1 : runs;

    printf("bench_core: ppool no-op task cost (8-byte argument, 8-byte result)%s\n",
           quick ? " [--quick]" : "");
    print_machine();
    fflush(stdout);

    /* Find the peer before measuring, so a missing one is said up front. */
    char python[PATH_MAX + 16], peer[PATH_MAX + 64];
    bool can_py = false;
    if (!no_python) {
        bool found = true;
        if (python_opt)
            snprintf(python, sizeof python, "%s", python_opt);
        else if (access("/usr/bin/python3", X_OK) == 0)
            snprintf(python, sizeof python, "/usr/bin/python3");
        else
            found = on_path("python3", python, sizeof python);
        if (!found)
            fprintf(stderr, "%s: python3 not found on PATH: measuring ppool only\n", prog);
        else if (find_peer(peer_opt, argv[0], peer, sizeof peer))
            can_py = true;
        else
            fprintf(stderr, "%s: measuring ppool only\n", prog);
    }

    results pp;
    int workers = 0;
    run_ppool(workers_opt, rounds, tasks, runs, warmup, &workers, &pp);

    py_results py[PY_N];
    memset(py, 0, sizeof py);
    bool have_py = false;
    if (can_py) {
        printf("\npython peers: %s %s, max_workers=%d, same shapes\n", python, peer, workers);
        printf("  shapes: round trip %ld rounds after %ld warm-up; throughput %ld tasks; %ld "
               "run%s\n",
               py_rounds, py_rounds < 1000 ? py_rounds : 1000, py_tasks, py_runs,
               py_runs == 1 ? "" : "s");
        printf("  (fewer rounds and tasks than ppool: a python task costs ~100x more; the "
               "per-task figures are compared, not totals)\n");
        for (int k = 0; k < PY_N; k++) {
            printf("  %s: %s\n", py_peers[k].title, py_peers[k].what);
            fflush(stdout);
            py[k].have = run_python(python, peer, py_peers[k].impl, workers, py_rounds, py_tasks,
                                    py_runs, &py[k]);
            if (py[k].have)
                printf("    python %s, %d workers: round trip median %.1f us, p99 %.1f us; "
                       "throughput %.0f tasks/s\n",
                       py[k].version, py[k].workers, py[k].rt_median_us, py[k].rt_p99_us,
                       py[k].tput);
            else
                printf("    not run: see the message above\n");
            have_py |= py[k].have;
        }
    }

    char b1[64], b2[64];
    printf("\nresults: medians over %ld runs, %d worker%s (spread over runs: round trip median "
           "%.2f..%.2f us, throughput %s..%s tasks/s)\n",
           runs, workers, workers == 1 ? "" : "s", pp.rt_median_min, pp.rt_median_max, grouped(pp.tput_min, b1, sizeof b1),
           grouped(pp.tput_max, b2, sizeof b2));
    print_table(&pp, py);
    if (no_python)
        printf("(python peer skipped: --no-python)\n");
    else if (!have_py)
        printf("(python peer not run: see the message above)\n");
    print_targets(&pp, workers);

    if (csv) {
        if (write_csv(csv, workers, &pp, rounds, tasks, runs, py, py_rounds, py_tasks, py_runs) !=
            0)
            return 1;
        printf("\ncsv: %s\n", csv);
    }
    return 0;
}
