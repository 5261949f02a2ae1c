/*
 * bench_cores — core-count sweep: how a compute-bound workload speeds up with
 * 1, 2, ..., N ppool workers, against the ideal and against OpenMP threads.
 *
 * The workload is a fixed amount of work (--work units) cut into tasks of a
 * fixed size (--chunk units), each submitted with pp_submit:
 *
 *   pi      (default) Monte-Carlo estimate of pi: unit i draws two doubles
 *           from a counter-based splitmix64 stream and counts a hit inside the
 *           quarter circle. A task returns its chunk's hit count.
 *   sha512  (with libcrypto) the word-hash workload: unit i is a generated
 *           word of 4..12 letters; a task returns the sum (mod 2^64) of the
 *           first 8 bytes of each word's SHA-512.
 *
 * Unit i's value depends on i only, so every decomposition gives the same
 * total, and each run is checked against a serial run, exactly.
 *
 * For w = 1..N workers (N = --max-workers, default pp_config_init's: the
 * physical cores this process may use; beyond that rows are marked as
 * oversubscribed) each of --runs K runs times pool creation, the compute
 * (first submit to last result) and destruction; the medians give the
 * speed-up vs w = 1 and the efficiency, both with the pool already running
 * and including its creation and destruction. The same chunk function under
 * `omp parallel for schedule(dynamic)` with w threads (one chunk per
 * iteration, i.e. schedule(dynamic, chunk) over the units) is the in-process
 * reference.
 *
 * Prints the machine and each worker's placement first, then a table; writes
 * DIR/cores.csv, DIR/cores.dat, DIR/cores.gp and DIR/cores.png (gnuplot).
 *
 * Usage: bench_cores [--out DIR] [--max-workers N] [--runs K] [--chunk N]
 *                    [--work N] [--policy compact|scatter]
 *                    [--kernel pi|sha512] [--no-plot] [--quick]
 * See bench/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ppool.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef PP_HAVE_OPENMP
#include <omp.h>
#include <tune/omp_binding.h>
#endif
#ifdef PP_HAVE_CRYPTO
/* SHA512_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but
 * they keep no shared state: EVP contexts share a reference-counted EVP_MD
 * between threads, which would tax the OpenMP reference and not the
 * processes. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#endif

extern char **environ;

static const char *prog = "bench_cores";

/* A result not there after this long means the pool is stuck. */
#define RESULT_TIMEOUT_S 600.0
#define MAX_TASKS 10000000L
#define MAX_SWEEP 4096

#include "bench_util.h" /* after prog and RESULT_TIMEOUT_S: its helpers use them */
#include "tune/tune.h"  /* the CPU-time sample (tools/tune/, ppool-tune's sweep code) */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */
/* ------------------------------------------------------------------------ */

static void die_errno(const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s %s: %s\n", prog, what, arg ? arg : "", strerror(errno));
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu x %zu bytes)\n", prog, n, size);
        exit(1);
    }
    return p;
}

/* Accepts decimal, 0x hex, k/M/G suffixes (x1024) and 2^N. */
static long long parse_size(const char *opt, const char *s, long long lo, long long hi)
{
    long long v = 0;
    char *end = NULL;
    errno = 0;
    if (s && s[0] == '2' && s[1] == '^') {
        long e = strtol(s + 2, &end, 10);
        if (!errno && end != s + 2 && !*end && e >= 0 && e < 62)
            v = 1LL << e;
        else
            end = NULL;
    } else if (s) {
        v = strtoll(s, &end, 0);
        if (end && end != s && !errno) {
            long long mul = 1;
            if (*end == 'k' || *end == 'K')
                mul = 1024, end++;
            else if (*end == 'M')
                mul = 1024 * 1024, end++;
            else if (*end == 'G')
                mul = 1024LL * 1024 * 1024, end++;
            if (v > LLONG_MAX / mul)
                errno = ERANGE;
            v *= mul;
        } else {
            end = NULL;
        }
    }
    if (!s || !end || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants an integer in %lld..%lld (k/M/G suffixes and 2^N "
                        "accepted), got '%s'\n",
                prog, opt, lo, hi, s ? s : "(nothing)");
        exit(2);
    }
    return v;
}

/* "268435456" -> "2^28", other numbers as themselves. */
static const char *pow2_str(uint64_t v, char *buf, size_t len)
{
    if (v && (v & (v - 1)) == 0)
        snprintf(buf, len, "2^%d", __builtin_ctzll(v));
    else
        snprintf(buf, len, "%" PRIu64, v);
    return buf;
}

/* mkdir -p */
static void make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        die_errno("strdup", NULL);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) < 0 && errno != EEXIST)
                die_errno("mkdir", p);
            *s = c;
            if (!c)
                break;
        }
    }
    struct stat st;
    if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", prog, p);
        exit(1);
    }
    free(p);
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xcalloc(1, n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ------------------------------------------------------------------------ */
/* The kernels                                                                */
/* ------------------------------------------------------------------------ */

typedef enum kernel_kind { K_PI = 0, K_SHA512 = 1 } kernel_kind;
static const char *kernel_names[] = {"pi", "sha512"};

#define SEED 0x5eed0f5eed0f5eedULL
#define GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's output function: value number k of the stream is
 * mix64(SEED + k * GOLDEN), so any unit can start anywhere. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Units [first, first+count): samples with both coordinates in [0, 1) that
 * fall in the quarter circle. */
__attribute__((noinline)) static uint64_t pi_chunk(uint64_t first, uint64_t count)
{
    uint64_t hits = 0;
    uint64_t z = SEED + 2 * first * GOLDEN;
    for (uint64_t i = 0; i < count; i++) {
        double x = (double)(mix64(z += GOLDEN) >> 11) * 0x1p-53;
        double y = (double)(mix64(z += GOLDEN) >> 11) * 0x1p-53;
        hits += x * x + y * y <= 1.0;
    }
    return hits;
}

#ifdef PP_HAVE_CRYPTO
/* Units [first, first+count): word i is 4..12 lowercase letters drawn from
 * mix64; the sum of the first 8 bytes (little-endian) of each SHA-512. */
__attribute__((noinline)) static uint64_t sha_chunk(uint64_t first, uint64_t count)
{
    uint64_t acc = 0;
    unsigned char word[16], md[SHA512_DIGEST_LENGTH];
    for (uint64_t i = first; i < first + count; i++) {
        uint64_t r = mix64(SEED + (2 * i + 1) * GOLDEN), l = mix64(SEED + (2 * i + 2) * GOLDEN);
        size_t len = 4 + (size_t)(r % 9);
        for (size_t k = 0; k < len; k++) {
            word[k] = (unsigned char)('a' + l % 26);
            l /= 26;
        }
        SHA512_CTX c;
        SHA512_Init(&c);
        SHA512_Update(&c, word, len);
        SHA512_Final(md, &c);
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | md[k];
        acc += v;
    }
    return acc;
}
#endif

/* The chunk function every implementation calls. Both kernels combine by
 * addition mod 2^64, so the order of the chunks does not matter. */
static uint64_t run_chunk(kernel_kind k, uint64_t first, uint64_t count)
{
#ifdef PP_HAVE_CRYPTO
    if (k == K_SHA512)
        return sha_chunk(first, count);
#endif
    (void)k;
    return pi_chunk(first, count);
}

/* ------------------------------------------------------------------------ */
/* The task                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct chunk_arg {
    uint64_t first, count;
    uint32_t kernel;
} chunk_arg;

static int chunk_task(pp_task *t)
{
    size_t n = 0;
    const chunk_arg *a = pp_task_arg(t, &n);
    if (n != sizeof *a)
        return pp_task_raise(t, 1, "argument of %zu bytes, want %zu", n, sizeof *a);
    uint64_t v = run_chunk((kernel_kind)a->kernel, a->first, a->count);
    return pp_task_set_result(t, &v, sizeof v);
}

/* ------------------------------------------------------------------------ */
/* Settings and results                                                       */
/* ------------------------------------------------------------------------ */

typedef struct settings {
    const char *out;
    int max_workers;        /* sweep 1..max_workers */
    int cores;              /* the default pool's size: physical cores allowed */
    int runs;
    uint64_t work, chunk, tasks;
    kernel_kind kernel;
    pp_pin_policy policy;
    const char *policy_name;
    bool plot;
} settings;

typedef struct row {
    int w;
    bool oversub;
    char cpus[256];            /* the placement of the first run's pool */
    double *compute, *total, *create, *destroy, *omp; /* per run, seconds */
    double m_compute, m_total, m_create, m_destroy, m_omp;
    double min_compute, max_compute, min_total, max_total, min_omp, max_omp;
} row;

/* "0,1,2,3,5,0" -> "0-3,5,0": CPUs in worker order, ascending runs joined. */
static void cpu_list(const pp_worker_stats *ws, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 24 < len;) {
        int j = i;
        while (j + 1 < n && ws[j + 1].cpu == ws[j].cpu + 1 && ws[j].cpu >= 0)
            j++;
        if (ws[i].cpu < 0)
            o += (size_t)snprintf(buf + o, len - o, "%sunpinned", i ? "," : "");
        else if (j > i)
            o += (size_t)snprintf(buf + o, len - o, "%s%d-%d", i ? "," : "", ws[i].cpu, ws[j].cpu);
        else
            o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", ws[i].cpu);
        i = j + 1;
        if (i < n && o + 24 >= len)
            snprintf(buf + o, len - o, ",...");
    }
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                               */
/* ------------------------------------------------------------------------ */

static uint64_t serial_run(const settings *s, double *secs)
{
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t first = 0; first < s->work; first += s->chunk) {
        uint64_t count = s->work - first < s->chunk ? s->work - first : s->chunk;
        acc += run_chunk(s->kernel, first, count);
    }
    *secs = (double)(now_ns() - t0) * 1e-9;
    return acc;
}

static pp_executor *create_pool(const settings *s, int w)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = w; /* 0: the default */
    cfg.pin = s->policy;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        die("pp_executor_create", rc);
    return ex;
}

/* Submit every chunk, then collect every result in order. */
static uint64_t pool_compute(pp_executor *ex, const settings *s, pp_future **futs)
{
    uint64_t k = 0;
    for (uint64_t first = 0; first < s->work; first += s->chunk, k++) {
        chunk_arg a = {.first = first,
                       .count = s->work - first < s->chunk ? s->work - first : s->chunk,
                       .kernel = (uint32_t)s->kernel};
        int rc = pp_submit(ex, chunk_task, &a, sizeof a, &futs[k]);
        if (rc)
            die("pp_submit", rc);
    }
    uint64_t acc = 0;
    for (uint64_t i = 0; i < k; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(futs[i], RESULT_TIMEOUT_S, &d, &n);
        if (rc)
            die_future("pp_future_result", futs[i], rc);
        if (n != sizeof(uint64_t)) {
            fprintf(stderr, "%s: task %" PRIu64 " returned %zu bytes, want 8\n", prog, i, n);
            exit(1);
        }
        uint64_t v;
        memcpy(&v, d, sizeof v);
        acc += v;
        pp_future_release(futs[i]);
    }
    return acc;
}

/* One timed run with @w workers: create, compute, destroy. */
static uint64_t pool_run(const settings *s, int w, pp_future **futs, row *r, int run)
{
    uint64_t t0 = now_ns();
    pp_executor *ex = create_pool(s, w);
    uint64_t t1 = now_ns();
    uint64_t acc = pool_compute(ex, s, futs);
    uint64_t t2 = now_ns();
    if (run == 0) {
        pp_worker_stats ws[MAX_SWEEP];
        int n = pp_executor_stats(ex, NULL, ws, MAX_SWEEP);
        if (n < 0)
            die("pp_executor_stats", n);
        cpu_list(ws, n < MAX_SWEEP ? n : MAX_SWEEP, r->cpus, sizeof r->cpus);
    }
    int rc = pp_executor_destroy(ex);
    if (rc)
        die("pp_executor_destroy", rc);
    uint64_t t3 = now_ns();
    r->create[run] = (double)(t1 - t0) * 1e-9;
    r->compute[run] = (double)(t2 - t1) * 1e-9;
    r->destroy[run] = (double)(t3 - t2) * 1e-9;
    r->total[run] = (double)(t3 - t0) * 1e-9;
    return acc;
}

#ifdef PP_HAVE_OPENMP
static uint64_t omp_run(const settings *s, int w, double *secs)
{
    uint64_t acc = 0;
    long long nchunks = (long long)s->tasks;
    uint64_t work = s->work, chunk = s->chunk;
    kernel_kind kind = s->kernel;
    /* Start the team of w threads before timing (as the pool is started
     * before its compute time). */
#pragma omp parallel num_threads(w)
    {
        (void)0;
    }
    uint64_t t0 = now_ns();
    /* One chunk per iteration: schedule(dynamic, 1) over chunks is
     * schedule(dynamic, chunk) over the units, calling the same function. */
#pragma omp parallel for num_threads(w) schedule(dynamic, 1) reduction(+ : acc)
    for (long long c = 0; c < nchunks; c++) {
        uint64_t first = (uint64_t)c * chunk;
        uint64_t count = work - first < chunk ? work - first : chunk;
        acc += run_chunk(kind, first, count);
    }
    *secs = (double)(now_ns() - t0) * 1e-9;
    return acc;
}

#endif

static void check_acc(const char *what, int w, int run, uint64_t got, uint64_t want)
{
    if (got != want) {
        fprintf(stderr, "%s: %s with %d workers, run %d: result %" PRIu64 " != serial %" PRIu64
                        "\n",
                prog, what, w, run + 1, got, want);
        exit(1);
    }
}

/* ------------------------------------------------------------------------ */
/* The machine                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Other work on the machine skews every figure, so the benchmark measures it:
 * the machine-wide busy CPU time from /proc/stat (steal included: a
 * hypervisor's other guests compete too), minus this process tree's own
 * (tune_cpu_sample_now, tools/tune/, shared with ppool-tune).
 */
/* Before the sweep: how idle the machine is over half a second. */
static void print_idle_before(void)
{
    tune_cpu_sample a = tune_cpu_sample_now();
    struct timespec half = {0, 500000000};
    nanosleep(&half, NULL);
    tune_cpu_sample b = tune_cpu_sample_now();
    if (!a.ok || !b.ok || b.total_s <= a.total_s)
        return;
    double busy = (b.busy_s - a.busy_s) - (b.own_s - a.own_s);
    double frac = busy / (b.total_s - a.total_s);
    printf("idle:      the machine was %.0f%% idle over 0.5 s before the sweep",
           100.0 * (1.0 - (frac < 0 ? 0 : frac > 1 ? 1 : frac)));
    if (frac > 0.05)
        printf(" (other processes are running: figures will be noisy)");
    printf("\n");
}

/* After: CPU time other processes took during the sweep. */
static void print_others_during(const tune_cpu_sample *a, int cores)
{
    tune_cpu_sample b = tune_cpu_sample_now();
    if (!a->ok || !b.ok || b.total_s <= a->total_s)
        return;
    double others = (b.busy_s - a->busy_s) - (b.own_s - a->own_s);
    if (others < 0)
        others = 0;
    double frac = others / (b.total_s - a->total_s);
    printf("others:    other processes used %.1f CPU-s during the sweep, %.1f%% of the machine's "
           "CPU time",
           others, 100.0 * frac);
    if (frac > 0.02)
        printf(" (not an idle machine: with %d core%s, figures are noisy; rerun)", cores,
               cores == 1 ? "" : "s");
    printf("\n");
}

static void print_machine(settings *s, char *model, size_t model_len, char *topo,
                          size_t topo_len)
{
    cpu_set_t aff;
    int allowed = sched_getaffinity(0, sizeof aff, &aff) == 0 ? CPU_COUNT(&aff) : -1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    cpu_model(model, model_len);
    printf("machine:   nproc %d (online %ld), CPU \"%s\"\n", allowed, online, model);
    if (uname(&u) == 0)
        printf("kernel:    %s %s %s\n", u.sysname, u.release, u.machine);
#if defined(__clang__)
    printf("compiler:  %s", __VERSION__);
#elif defined(__GNUC__)
    printf("compiler:  gcc %s", __VERSION__);
#else
    printf("compiler:  unknown");
#endif
#ifdef PP_HAVE_OPENMP
    const char *bind = getenv("OMP_PROC_BIND"), *places = getenv("OMP_PLACES");
    printf("; OpenMP %d (OMP_PROC_BIND %s, OMP_PLACES %s)", _OPENMP, bind ? bind : "unset",
           places ? places : "unset");
#else
    printf("; no OpenMP (the reference rows are left out)");
#endif
#ifdef PP_HAVE_CRYPTO
    printf("; %s", OpenSSL_version(OPENSSL_VERSION));
#endif
    printf("\n");
    print_idle_before();

    /* The default pool: its size is the sweep's N, its plan the placement. */
    pp_executor *ex = create_pool(s, 0);
    snprintf(topo, topo_len, "%s", pp_executor_topology(ex));
    printf("topology:  %s\n", topo);
    pp_worker_stats ws[MAX_SWEEP];
    int n = pp_executor_stats(ex, NULL, ws, MAX_SWEEP);
    if (n < 0)
        die("pp_executor_stats", n);
    printf("placement: default pool, %d worker%s (one per physical core allowed), policy %s:\n",
           n, n == 1 ? "" : "s", s->policy_name);
    for (int i = 0; i < n && i < MAX_SWEEP; i++) {
        if (ws[i].cpu >= 0)
            printf("  worker %d: cpu %d core %d numa %d (pid %ld)\n", i, ws[i].cpu, ws[i].core,
                   ws[i].numa, (long)ws[i].pid);
        else
            printf("  worker %d: not pinned (pid %ld)\n", i, (long)ws[i].pid);
    }
    int rc = pp_executor_destroy(ex);
    if (rc)
        die("pp_executor_destroy", rc);
    s->cores = n;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                     */
/* ------------------------------------------------------------------------ */

static double ideal(const settings *s, int w) { return w < s->cores ? w : s->cores; }

static void print_table(const settings *s, row *rows, int nrows, double serial)
{
    bool omp = false;
#ifdef PP_HAVE_OPENMP
    omp = true;
#endif
    printf("\n%-8s %-12s | %-27s | %-38s |", "workers", "cpus", "ppool, pool running",
           "ppool, incl. create + destroy");
    if (omp)
        printf(" %-24s", "OpenMP (w threads)");
    printf("\n%-8s %-12s | %9s %8s %7s | %9s %8s %7s %10s |", "", "", "time s", "speed-up", "eff.",
           "time s", "speed-up", "eff.", "create ms");
    if (omp)
        printf(" %9s %8s %6s", "time s", "speed-up", "eff.");
    printf("\n");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        double sp = rows[0].m_compute / r->m_compute, st = rows[0].m_total / r->m_total;
        char wl[16];
        snprintf(wl, sizeof wl, "%d%s", r->w, r->oversub ? " *" : "");
        printf("%-8s %-12s | %9.3f %8.2f %6.0f%% | %9.3f %8.2f %6.0f%% %10.1f |", wl, r->cpus,
               r->m_compute, sp, 100.0 * sp / r->w, r->m_total, st, 100.0 * st / r->w,
               r->m_create * 1e3);
        if (omp) {
            double so = rows[0].m_omp / r->m_omp;
            printf(" %9.3f %8.2f %5.0f%%", r->m_omp, so, 100.0 * so / r->w);
        }
        printf("\n");
    }
    printf("speed-up: time(1) / time(w), each column against its own w = 1; eff. = speed-up / w;"
           " times are medians of %d run%s\n",
           s->runs, s->runs == 1 ? "" : "s");
    bool any_over = false;
    for (int i = 0; i < nrows; i++)
        any_over |= rows[i].oversub;
    if (any_over)
        printf("* oversubscribed: more workers than the %d physical core%s allowed "
               "(--max-workers); ideal speed-up stays at %d\n",
               s->cores, s->cores == 1 ? "" : "s", s->cores);
    printf("serial (1 thread, no pool): %.3f s; ppool w=1 / serial = %.3f", serial,
           rows[0].m_compute / serial);
    if (omp)
        printf(", OpenMP w=1 / serial = %.3f", rows[0].m_omp / serial);
    printf("\n");
    int best = 0;
    for (int i = 1; i < nrows; i++)
        if (rows[i].m_compute < rows[best].m_compute)
            best = i;
    printf("best ppool speed-up %.2f at %d worker%s (ideal %.0f)", rows[0].m_compute /
           rows[best].m_compute, rows[best].w, rows[best].w == 1 ? "" : "s", ideal(s, rows[best].w));
    if (omp) {
        int bo = 0;
        for (int i = 1; i < nrows; i++)
            if (rows[i].m_omp < rows[bo].m_omp)
                bo = i;
        printf("; best OpenMP speed-up %.2f at %d thread%s; ppool/OpenMP time at w=%d: %.3f",
               rows[0].m_omp / rows[bo].m_omp, rows[bo].w, rows[bo].w == 1 ? "" : "s",
               rows[nrows - 1].w, rows[nrows - 1].m_compute / rows[nrows - 1].m_omp);
    }
    printf("\n");
}

static void write_csv(const settings *s, const row *rows, int nrows, double serial,
                      double serial_min, double serial_max, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die_errno("cannot write", path);
    fprintf(f, "impl,kernel,workers,oversubscribed,policy,cpus,work,chunk,tasks,runs,"
               "time_s,time_s_min,time_s_max,speedup,efficiency,"
               "total_s,total_s_min,total_s_max,total_speedup,total_efficiency,"
               "create_s,destroy_s\n");
    const char *k = kernel_names[s->kernel];
    fprintf(f, "serial,%s,1,0,,,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d,%.6f,%.6f,%.6f,,,,,,,,,\n",
            k, s->work, s->chunk, s->tasks, s->runs, serial, serial_min, serial_max);
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        double sp = rows[0].m_compute / r->m_compute, st = rows[0].m_total / r->m_total;
        fprintf(f,
                "ppool,%s,%d,%d,%s,\"%s\",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d,%.6f,%.6f,%.6f,"
                "%.4f,%.4f,%.6f,%.6f,%.6f,%.4f,%.4f,%.6f,%.6f\n",
                k, r->w, r->oversub, s->policy_name, r->cpus, s->work, s->chunk, s->tasks,
                s->runs, r->m_compute, r->min_compute, r->max_compute, sp, sp / r->w, r->m_total,
                r->min_total, r->max_total, st, st / r->w, r->m_create, r->m_destroy);
    }
#ifdef PP_HAVE_OPENMP
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        double so = rows[0].m_omp / r->m_omp;
        fprintf(f,
                "openmp,%s,%d,%d,,,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%d,%.6f,%.6f,%.6f,%.4f,"
                "%.4f,,,,,,,\n",
                k, r->w, r->oversub, s->work, s->chunk, s->tasks, s->runs, r->m_omp, r->min_omp,
                r->max_omp, so, so / r->w);
    }
#endif
    if (fclose(f) != 0)
        die_errno("cannot write", path);
}


static void write_plot_files(const settings *s, const row *rows, int nrows, const char *model,
                             const char *topo, const char *dat, const char *gp, const char *png)
{
    FILE *f = fopen(dat, "w");
    if (!f)
        die_errno("cannot write", dat);
    fprintf(f, "# workers ideal ppool_running ppool_incl_pool openmp\n");
    for (int i = 0; i < nrows; i++) {
        const row *r = &rows[i];
        fprintf(f, "%d %.4f %.4f %.4f ", r->w, ideal(s, r->w), rows[0].m_compute / r->m_compute,
                rows[0].m_total / r->m_total);
#ifdef PP_HAVE_OPENMP
        fprintf(f, "%.4f\n", rows[0].m_omp / r->m_omp);
#else
        fprintf(f, "NaN\n");
#endif
    }
    if (fclose(f) != 0)
        die_errno("cannot write", dat);

    f = fopen(gp, "w");
    if (!f)
        die_errno("cannot write", gp);
    char line1[512], line2[640], b1[32], b2[32];
    snprintf(line1, sizeof line1, "ppool core sweep: %s, %s units in tasks of %s, policy %s, "
             "median of %d run%s",
             kernel_names[s->kernel], pow2_str(s->work, b1, sizeof b1),
             pow2_str(s->chunk, b2, sizeof b2), s->policy_name, s->runs, s->runs == 1 ? "" : "s");
    snprintf(line2, sizeof line2, "%s | %s", model, topo);
    fprintf(f, "# written by bench_cores; run: gnuplot ");
    tune_put_quoted(f, gp, '\'');
    fprintf(f, "\nif (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "    set terminal pngcairo size 960,640 font ',10'\n"
               "} else {\n"
               "    set terminal png size 960,640\n"
               "}\n");
    fprintf(f, "set output ");
    tune_put_quoted(f, png, '\'');
    fprintf(f, "\nset title ");
    tune_put_quoted(f, line1, '\'');
    fprintf(f, ".\"\\n\".");
    tune_put_quoted(f, line2, '\'');
    fprintf(f, " noenhanced\n");
    int maxw = rows[nrows - 1].w;
    fprintf(f, "set xlabel 'workers (processes) / threads'\n"
               "set ylabel 'speed-up vs 1'\n"
               "set key top left box opaque noenhanced\n"
               "set grid\n"
               "set xrange [0.5:%g]\n"
               "set yrange [0:%g]\n",
            maxw + 0.5, ceil(ideal(s, maxw) * 1.15 + 0.5));
    if (maxw <= 32)
        fprintf(f, "set xtics 1\n");
    if (maxw > s->cores) {
        fprintf(f, "set arrow from %g, graph 0 to %g, graph 1 nohead dashtype 3 lc rgb 'gray40'\n",
                s->cores + 0.5, s->cores + 0.5);
        fprintf(f, "set label 'oversubscribed' at %g, graph 0.05 left textcolor rgb 'gray40'\n",
                s->cores + 0.6);
    }
    fprintf(f, "plot ");
    tune_put_quoted(f, dat, '\'');
    fprintf(f, " using 1:2 with lines dashtype 2 lw 2 lc rgb 'black' title '%s', \\\n",
            maxw > s->cores ? "ideal (min(w, cores))" : "ideal");
    fprintf(f, "     '' using 1:3 with linespoints pt 7 lw 2 title 'ppool, pool running', \\\n"
               "     '' using 1:4 with linespoints pt 5 lw 2 title 'ppool, incl. create + destroy'");
#ifdef PP_HAVE_OPENMP
    fprintf(f, ", \\\n     '' using 1:5 with linespoints pt 9 lw 2 title 'OpenMP threads'");
#endif
    fprintf(f, "\n");
    if (fclose(f) != 0)
        die_errno("cannot write", gp);
}


/* ------------------------------------------------------------------------ */
/* main                                                                       */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_cores [--out DIR] [--max-workers N] [--runs K] [--chunk N] [--work N]\n"
            "                   [--policy compact|scatter] [--kernel pi|sha512] [--no-plot] "
            "[--quick]\n"
            "  --out DIR          where cores.csv, cores.dat, cores.gp, cores.png go (out)\n"
            "  --max-workers N    sweep 1..N workers (default: the physical cores allowed;\n"
            "                     more is an oversubscription experiment, marked as such)\n"
            "  --runs K           runs per worker count; medians are reported (3)\n"
            "  --chunk N          units per task (pi: 2^20 samples, sha512: 2^12 words)\n"
            "  --work N           units in all (pi: 2^28, sha512: 2^21)\n"
            "  --policy P         pin policy of the pools (compact)\n"
            "  --kernel K         pi (Monte-Carlo) or sha512 (word hashing; needs libcrypto)\n"
            "  --no-plot          write the gnuplot script but do not run gnuplot\n"
            "  --quick            a few seconds: pi 2^26 samples in tasks of 2^18, 1 run\n"
            "Sizes take k/M/G suffixes (x1024) and 2^N.\n");
}

int main(int argc, char **argv)
{
    settings s = {.out = "out", .runs = 3, .kernel = K_PI, .policy = PP_PIN_COMPACT,
                  .policy_name = "compact", .plot = true};
    long long work = 0, chunk = 0;
    int runs = 0;
    bool quick = false;
    enum { O_OUT = 1, O_MAXW, O_RUNS, O_CHUNK, O_WORK, O_POLICY, O_KERNEL, O_NOPLOT, O_QUICK, O_HELP };
    static const struct option opts[] = {
        {"out", required_argument, NULL, O_OUT},       {"max-workers", required_argument, NULL, O_MAXW},
        {"runs", required_argument, NULL, O_RUNS},     {"chunk", required_argument, NULL, O_CHUNK},
        {"work", required_argument, NULL, O_WORK},     {"policy", required_argument, NULL, O_POLICY},
        {"kernel", required_argument, NULL, O_KERNEL}, {"no-plot", no_argument, NULL, O_NOPLOT},
        {"quick", no_argument, NULL, O_QUICK},         {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_OUT:
            s.out = optarg;
            break;
        case O_MAXW:
            s.max_workers = (int)parse_size("--max-workers", optarg, 1, MAX_SWEEP);
            break;
        case O_RUNS:
            runs = (int)parse_size("--runs", optarg, 1, 1000);
            break;
        case O_CHUNK:
            chunk = parse_size("--chunk", optarg, 1, 1LL << 40);
            break;
        case O_WORK:
            work = parse_size("--work", optarg, 1, 1LL << 50);
            break;
        case O_POLICY:
            if (strcmp(optarg, "compact") == 0)
                s.policy = PP_PIN_COMPACT;
            else if (strcmp(optarg, "scatter") == 0)
                s.policy = PP_PIN_SCATTER;
            else {
                fprintf(stderr, "%s: --policy wants compact or scatter, got '%s'\n", prog, optarg);
                return 2;
            }
            s.policy_name = s.policy == PP_PIN_COMPACT ? "compact" : "scatter";
            break;
        case O_KERNEL:
            if (strcmp(optarg, "pi") == 0)
                s.kernel = K_PI;
            else if (strcmp(optarg, "sha512") == 0) {
#ifdef PP_HAVE_CRYPTO
                s.kernel = K_SHA512;
#else
                fprintf(stderr, "%s: --kernel sha512 needs libcrypto (not found at build time)\n",
                        prog);
                return 2;
#endif
            } else {
                fprintf(stderr, "%s: --kernel wants pi or sha512, got '%s'\n", prog, optarg);
                return 2;
            }
            break;
        case O_NOPLOT:
            s.plot = false;
            break;
        case O_QUICK:
            quick = true;
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        usage(stderr);
        return 2;
    }
    /* Defaults: about 2 ms per task and 1 s of serial work on a 2020s core. */
    if (s.kernel == K_PI) {
        s.work = (uint64_t)(work ? work : quick ? 1LL << 26 : 1LL << 28);
        s.chunk = (uint64_t)(chunk ? chunk : quick ? 1LL << 18 : 1LL << 20);
    } else {
        s.work = (uint64_t)(work ? work : quick ? 1LL << 18 : 1LL << 21);
        s.chunk = (uint64_t)(chunk ? chunk : quick ? 1LL << 10 : 1LL << 12);
    }
    s.runs = runs ? runs : quick ? 1 : 3;
    if (s.chunk > s.work)
        s.chunk = s.work;
    s.tasks = (s.work + s.chunk - 1) / s.chunk;
    if (s.tasks > (uint64_t)MAX_TASKS) {
        fprintf(stderr, "%s: %" PRIu64 " tasks is too many (at most %ld): raise --chunk\n", prog,
                s.tasks, MAX_TASKS);
        return 2;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);
    bool unbound = false;
#ifdef PP_HAVE_OPENMP
    unbound = tune_undo_omp_initial_binding();
#endif
    cpu_set_t saved_aff;
    bool have_aff = sched_getaffinity(0, sizeof saved_aff, &saved_aff) == 0;
    char b1[32], b2[32], model[256], topo[256];
    printf("bench_cores: core-count sweep, kernel %s (%s), %s units in %" PRIu64
           " tasks of %s, %d run%s per point\n",
           kernel_names[s.kernel],
           s.kernel == K_PI ? "Monte-Carlo pi, counter-based splitmix64"
                            : "SHA-512 of generated words, OpenSSL",
           pow2_str(s.work, b1, sizeof b1), s.tasks, pow2_str(s.chunk, b2, sizeof b2), s.runs,
           s.runs == 1 ? "" : "s");
    if (unbound)
        printf("note:      OMP_PROC_BIND had pinned this thread at start-up; it was given back "
               "the CPUs of all OpenMP places, so that the pools see them\n");
    print_machine(&s, model, sizeof model, topo, sizeof topo);
    if (s.max_workers == 0)
        s.max_workers = s.cores;
    int nrows = s.max_workers;
    printf("sweep:     1..%d worker%s%s; then OpenMP with 1..%d threads\n", nrows,
           nrows == 1 ? "" : "s",
           nrows > s.cores ? " (beyond the physical cores: oversubscription experiment; "
                             "pp_executor_create warns on stderr for each such pool)"
                           : "",
           nrows);

    make_dirs(s.out);
    char *csv = path_in(s.out, "cores.csv"), *dat = path_in(s.out, "cores.dat"),
         *gp = path_in(s.out, "cores.gp"), *png = path_in(s.out, "cores.png");

    /* The reference answer, and the serial time. */
    tune_cpu_sample cpu0 = tune_cpu_sample_now();
    double *ser = xcalloc((size_t)s.runs, sizeof *ser), ser_min, ser_max;
    uint64_t want = serial_run(&s, &ser[0]);
    for (int r = 1; r < s.runs; r++)
        check_acc("serial", 1, r, serial_run(&s, &ser[r]), want);
    double serial = median_d(ser, (size_t)s.runs, &ser_min, &ser_max);
    if (s.kernel == K_PI)
        printf("serial:    %.3f s, pi ~ %.8f (%" PRIu64 " hits)\n", serial,
               4.0 * (double)want / (double)s.work, want);
    else
        printf("serial:    %.3f s, checksum %016" PRIx64 "\n", serial, want);
    if (serial < 0.1)
        printf("warning:   the serial time is short: pool start-up and per-task costs will "
               "dominate (raise --work)\n");

    row *rows = xcalloc((size_t)nrows, sizeof *rows);
    for (int i = 0; i < nrows; i++) {
        rows[i].w = i + 1;
        rows[i].oversub = i + 1 > s.cores;
        rows[i].compute = xcalloc((size_t)s.runs, sizeof(double));
        rows[i].total = xcalloc((size_t)s.runs, sizeof(double));
        rows[i].create = xcalloc((size_t)s.runs, sizeof(double));
        rows[i].destroy = xcalloc((size_t)s.runs, sizeof(double));
        rows[i].omp = xcalloc((size_t)s.runs, sizeof(double));
    }
    pp_future **futs = xcalloc((size_t)s.tasks, sizeof *futs);

    /* ppool first, every worker count in turn within a run (so that slow
     * drift spreads over all counts), then OpenMP: its idle threads may spin
     * for a while after a region, and with OMP_PROC_BIND it pins this thread,
     * which would shrink the topology later pools see. */
    for (int r = 0; r < s.runs; r++) {
        /* The line is printed once the run is over: pp_executor_create's
         * oversubscription warnings go to stderr meanwhile. */
        for (int i = 0; i < nrows; i++)
            check_acc("ppool", rows[i].w, r, pool_run(&s, rows[i].w, futs, &rows[i], r), want);
        printf("ppool run %d/%d:", r + 1, s.runs);
        for (int i = 0; i < nrows; i++)
            printf(" w%d %.3fs", rows[i].w, rows[i].compute[r]);
        printf("\n");
    }
#ifdef PP_HAVE_OPENMP
    omp_set_dynamic(0);
    for (int r = 0; r < s.runs; r++) {
        for (int i = 0; i < nrows; i++)
            check_acc("OpenMP", rows[i].w, r, omp_run(&s, rows[i].w, &rows[i].omp[r]), want);
        printf("OpenMP run %d/%d:", r + 1, s.runs);
        for (int i = 0; i < nrows; i++)
            printf(" w%d %.3fs", rows[i].w, rows[i].omp[r]);
        printf("\n");
    }
#endif
    if (have_aff)
        (void)sched_setaffinity(0, sizeof saved_aff, &saved_aff);

    for (int i = 0; i < nrows; i++) {
        row *w = &rows[i];
        size_t n = (size_t)s.runs;
        w->m_compute = median_d(w->compute, n, &w->min_compute, &w->max_compute);
        w->m_total = median_d(w->total, n, &w->min_total, &w->max_total);
        w->m_create = median_d(w->create, n, NULL, NULL);
        w->m_destroy = median_d(w->destroy, n, NULL, NULL);
#ifdef PP_HAVE_OPENMP
        w->m_omp = median_d(w->omp, n, &w->min_omp, &w->max_omp);
#endif
    }

    print_others_during(&cpu0, s.cores);
    print_table(&s, rows, nrows, serial);
    write_csv(&s, rows, nrows, serial, ser_min, ser_max, csv);
    write_plot_files(&s, rows, nrows, model, topo, dat, gp, png);
    printf("\nwrote:     %s, %s, %s\n", csv, dat, gp);
    if (s.plot && tune_run_gnuplot(gp, stdout, "plot:      "))
        printf("plot:      %s (speed-up vs workers, with the ideal line)\n", png);

    for (int i = 0; i < nrows; i++) {
        free(rows[i].compute);
        free(rows[i].total);
        free(rows[i].create);
        free(rows[i].destroy);
        free(rows[i].omp);
    }
    free(rows);
    free(futs);
    free(ser);
    free(csv);
    free(dat);
    free(gp);
    free(png);
    return 0;
}
