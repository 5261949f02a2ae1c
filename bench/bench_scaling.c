/*
 * bench_scaling — how ppool's cost grows (issue 16, item 4):
 *
 *   a. outstanding futures: N no-op tasks (8-byte argument and result)
 *      submitted at once, then waited for and released in order, for N =
 *      1e3, 1e4, ... up to --max-futures (default 1e6; --full: 1e7 when the
 *      machine has the memory). Throughput N / (first submit .. last
 *      release), and the client's resident memory after the last submit
 *      over what it was before (VmRSS): per outstanding future, this is the
 *      future itself plus its place in the client-side backlog (the 4096
 *      slots of the default pool are in the shared segment, sized at
 *      create). Targets: throughput flat (the smallest at least 0.7 x the
 *      largest, N >= 1e4 — 1e3 tasks is too short a run to time) and memory
 *      O(slots + backlog): at most 1 KiB of client memory per outstanding
 *      future at the largest N.
 *   b. argument size: one task at a time with an argument of S bytes (8 B
 *      .. 64 MiB) that the task reads whole (a 64-bit sum of its words,
 *      checked by the client), against one memcpy of S bytes between two
 *      warm buffers measured in the same run. Target: from 1 MiB up, a round
 *      trip within 2 x that memcpy.
 *   c. workers 1..N beside OpenMP: bench_cores (its cores.png); not repeated
 *      here.
 *
 * Usage: bench_scaling [--out DIR] [--max-futures N] [--full] [--quick]
 * Writes DIR/scaling_futures.dat, DIR/scaling_args.dat, DIR/scaling.gp and,
 * when gnuplot runs, DIR/scaling_futures.png and DIR/scaling_args.png.
 * Numbers and reading: docs/scaling.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ppool.h>

#include <errno.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *prog = "bench_scaling";
#define RESULT_TIMEOUT_S 120.0
#include "bench_util.h"

#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != 0)                                                          \
            die(#call, rc_);                                                   \
    } while (0)

#define TARGET_FLAT 0.7               /* smallest / largest throughput */
#define TARGET_BYTES_PER_FUTURE 1024.0 /* client memory per outstanding future */
#define TARGET_ARG_OVER_MEMCPY 2.0    /* round trip / memcpy, from 1 MiB */
#define BIG_ARG ((size_t)1 << 20)

/* The client's resident memory in bytes (VmRSS from /proc/self/statm). */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f)
        return NAN;
    int n = fscanf(f, "%lu %lu", &size, &res);
    fclose(f);
    return n == 2 ? (double)res * (double)sysconf(_SC_PAGESIZE) : NAN;
}

/* Bytes the machine could still give us (MemAvailable), or 0. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024.0;
}

static int noop_task(pp_task *t)
{
    size_t n = 0;
    const void *arg = pp_task_arg(t, &n);
    return pp_task_set_result(t, arg, n < 8 ? n : 8);
}

/* Reads its whole argument: the 64-bit sum of its 8-byte words. */
static int sum_task(pp_task *t)
{
    size_t n = 0;
    const unsigned char *arg = pp_task_arg(t, &n);
    uint64_t s = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, arg + i, 8);
        s += w;
    }
    return pp_task_set_result(t, &s, sizeof s);
}

/* ---- a. outstanding futures ---------------------------------------------- */

typedef struct fut_row {
    size_t n;
    double tput, rss_delta, per_future;
} fut_row;

static void run_futures(pp_executor *ex, size_t n, fut_row *row)
{
    pp_future **f = xmalloc(n * sizeof *f);
    double rss0 = rss_bytes();
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t v = i;
        CHECK(pp_submit(ex, noop_task, &v, sizeof v, &f[i]));
    }
    double rss1 = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        const void *d;
        size_t sz;
        int rc = pp_future_result(f[i], RESULT_TIMEOUT_S, &d, &sz);
        if (rc)
            die_future("pp_future_result", f[i], rc);
        uint64_t got;
        memcpy(&got, d, 8);
        if (sz != 8 || got != i) {
            fprintf(stderr, "%s: future %zu: wrong result\n", prog, i);
            exit(1);
        }
        pp_future_release(f[i]);
    }
    uint64_t t1 = now_ns();
    free(f);
    row->n = n;
    row->tput = (double)n / ((double)(t1 - t0) * 1e-9);
    /* the futures array itself is the benchmark's, not ppool's */
    row->rss_delta = rss1 - rss0 - (double)(n * sizeof *f);
    row->per_future = row->rss_delta / (double)n;
}

/* ---- b. argument size ------------------------------------------------------ */

typedef struct arg_row {
    size_t size;
    int rounds;
    double rt_us, memcpy_us, ratio;
} arg_row;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_arg(pp_executor *ex, size_t size, arg_row *row)
{
    int rounds = (int)((size_t)256 << 20) / (int)(size > 1 ? size : 1);
    rounds = size >= ((size_t)256 << 20) ? 3 : rounds;
    if (rounds > 2000)
        rounds = 2000;
    if (rounds < 5)
        rounds = 5;
    unsigned char *src = xmalloc(size), *dst = xmalloc(size);
    uint64_t want = 0;
    for (size_t i = 0; i < size; i++)
        src[i] = (unsigned char)(i * 131u + 7u);
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        want += w;
    }
    memset(dst, 0, size);
    double *rt = xmalloc(sizeof(double) * (size_t)rounds);
    double *mc = xmalloc(sizeof(double) * (size_t)rounds);
    for (int r = -2; r < rounds; r++) { /* two warm-up rounds */
        uint64_t t0 = now_ns();
        memcpy(dst, src, size);
        uint64_t t1 = now_ns();
        __asm__ volatile("" ::"r"(dst) : "memory"); /* the copy is not dead */
        pp_future *f;
        CHECK(pp_submit(ex, sum_task, src, size, &f));
        const void *d;
        size_t sz;
        int rc = pp_future_result(f, RESULT_TIMEOUT_S, &d, &sz);
        if (rc)
            die_future("pp_future_result", f, rc);
        uint64_t got;
        memcpy(&got, d, 8);
        pp_future_release(f);
        uint64_t t2 = now_ns();
        if (sz != 8 || got != want) {
            fprintf(stderr, "%s: argument of %zu bytes: wrong sum\n", prog, size);
            exit(1);
        }
        if (r >= 0) {
            mc[r] = (double)(t1 - t0) * 1e-3;
            rt[r] = (double)(t2 - t1) * 1e-3;
        }
    }
    qsort(rt, (size_t)rounds, sizeof *rt, cmp_d);
    qsort(mc, (size_t)rounds, sizeof *mc, cmp_d);
    row->size = size;
    row->rounds = rounds;
    row->rt_us = rt[rounds / 2];
    row->memcpy_us = mc[rounds / 2];
    row->ratio = row->rt_us / row->memcpy_us;
    free(rt);
    free(mc);
    free(src);
    free(dst);
}

/* ---- output --------------------------------------------------------------- */


static void write_plots(const char *dir, const fut_row *fr, int nf, const arg_row *ar, int na,
                        bool plot)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/scaling_futures.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return;
    }
    fprintf(f, "# outstanding_futures tasks_per_s client_rss_delta_bytes bytes_per_future\n");
    for (int i = 0; i < nf; i++)
        fprintf(f, "%zu %.1f %.0f %.1f\n", fr[i].n, fr[i].tput, fr[i].rss_delta,
                fr[i].per_future);
    fclose(f);
    snprintf(path, sizeof path, "%s/scaling_args.dat", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "# arg_bytes round_trip_us memcpy_us ratio rounds\n");
    for (int i = 0; i < na; i++)
        fprintf(f, "%zu %.3f %.3f %.3f %d\n", ar[i].size, ar[i].rt_us, ar[i].memcpy_us,
                ar[i].ratio, ar[i].rounds);
    fclose(f);
    snprintf(path, sizeof path, "%s/scaling.gp", dir);
    f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "# written by bench_scaling; run from anywhere: gnuplot %s\n", path);
    fprintf(f, "cd '%s'\nset terminal pngcairo size 900,560 noenhanced\nset grid\n", dir);
    fprintf(f, "set output 'scaling_futures.png'\n"
               "set title 'ppool: no-op throughput and client memory vs outstanding futures'\n"
               "set logscale x\nset xlabel 'outstanding futures'\n"
               "set ylabel 'tasks/s'\nset y2label 'client RSS bytes per future'\n"
               "set ytics nomirror\nset y2tics\nset yrange [0:*]\nset y2range [0:*]\n"
               "plot 'scaling_futures.dat' using 1:2 with linespoints title 'throughput', \\\n"
               "     '' using 1:4 axes x1y2 with linespoints title 'bytes per future'\n"
               "unset y2tics\nunset y2label\nset ytics mirror\n");
    fprintf(f, "set output 'scaling_args.png'\n"
               "set title 'ppool: round trip vs argument size, beside one memcpy'\n"
               "set logscale xy\nset xlabel 'argument bytes'\nset ylabel 'microseconds'\n"
               "set yrange [*:*]\n"
               "plot 'scaling_args.dat' using 1:2 with linespoints title 'ppool round trip', \\\n"
               "     '' using 1:3 with linespoints title 'memcpy', \\\n"
               "     '' using 1:($3*2) with lines dashtype 2 title '2 x memcpy'\n");
    fclose(f);
    if (plot && tune_run_gnuplot(path, stdout, "plot: "))
        printf("plots: %s/scaling_futures.png %s/scaling_args.png\n", dir, dir);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [--out DIR] [--max-futures N] [--full] [--quick] [--no-plot]\n"
                "  --out DIR          where the .dat, .gp and .png files go (default out)\n"
                "  --max-futures N    largest outstanding-futures point (default 1000000)\n"
                "  --full             up to 10,000,000 futures and 64 MiB arguments, memory allowing\n"
                "  --quick            up to 100,000 futures and 4 MiB arguments\n"
                "  --no-plot          write the gnuplot script but do not run gnuplot\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *dir = "out";
    size_t max_fut = 1000000, max_arg = (size_t)64 << 20;
    bool plot = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--out") && v) {
            dir = v;
            i++;
        } else if (!strcmp(a, "--max-futures") && v) {
            max_fut = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--full")) {
            max_fut = 10000000;
        } else if (!strcmp(a, "--quick")) {
            max_fut = 100000;
            max_arg = (size_t)4 << 20;
        } else if (!strcmp(a, "--no-plot")) {
            plot = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (max_fut < 1000)
        max_fut = 1000;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: --out %s: %s\n", prog, dir, strerror(errno));
        return 1;
    }
    /* Room for the futures (about 1 KiB each, generously) and the pointers. */
    double avail = mem_available();
    while (max_fut > 1000 && avail > 0 && (double)max_fut * 1200.0 > avail / 2)
        max_fut /= 10;

    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 2;
    cfg.arena_size = (size_t)1 << 30; /* room for a 64 MiB argument in flight */
    pp_executor *ex;
    CHECK(pp_executor_create(&ex, &cfg));
    printf("bench_scaling: 2 workers, %u slots, memory available %.1f GiB\n", cfg.slots,
           avail / (1 << 30));

    fut_row fr[8];
    int nf = 0;
    printf("\na. outstanding futures (no-op tasks, all submitted, then waited for in order)\n");
    printf("%14s | %14s | %16s | %16s\n", "futures", "tasks/s", "client RSS +MiB", "bytes/future");
    for (size_t n = 1000; n <= max_fut && nf < 8; n *= 10) {
        run_futures(ex, n, &fr[nf]);
        char b[64];
        printf("%14zu | %14s | %16.1f | %16.1f\n", n, grouped(fr[nf].tput, b, sizeof b),
               fr[nf].rss_delta / (1 << 20), fr[nf].per_future);
        fflush(stdout);
        nf++;
    }

    arg_row ar[16];
    int na = 0;
    printf("\nb. argument size (one task at a time; the task reads every byte; median of the "
           "rounds)\n");
    printf("%12s | %8s | %14s | %12s | %9s\n", "bytes", "rounds", "round trip us", "memcpy us",
           "ratio");
    for (size_t s = 8; s <= max_arg && na < 16; s *= 8) {
        run_arg(ex, s, &ar[na]);
        printf("%12zu | %8d | %14.2f | %12.2f | %8.1fx\n", s, ar[na].rounds, ar[na].rt_us,
               ar[na].memcpy_us, ar[na].ratio);
        fflush(stdout);
        na++;
        if (s < max_arg && s * 8 > max_arg) /* end on the largest size asked */
            s = max_arg / 8;
    }
    CHECK(pp_executor_destroy(ex));

    printf("\nc. workers 1..N beside OpenMP: see bench_cores (cores.png)\n");

    printf("\ntargets (this run):\n");
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < nf; i++) {
        if (fr[i].n < 10000)
            continue;
        lo = fr[i].tput < lo ? fr[i].tput : lo;
        hi = fr[i].tput > hi ? fr[i].tput : hi;
    }
    if (hi > 0)
        printf("  %-58s %.2f  %s\n", "throughput flat (smallest / largest, >= 1e4 futures) >= 0.7:",
               lo / hi, lo / hi >= TARGET_FLAT ? "MET" : "MISSED");
    else
        printf("  throughput flat: not measured (fewer than 1e4 futures)\n");
    const fut_row *last = &fr[nf - 1];
    printf("  %-58s %.0f B at %zu  %s\n", "client memory per outstanding future <= 1 KiB:",
           last->per_future, last->n,
           last->per_future <= TARGET_BYTES_PER_FUTURE ? "MET" : "MISSED");
    double worst = 0;
    size_t worst_at = 0;
    for (int i = 0; i < na; i++)
        if (ar[i].size >= BIG_ARG && ar[i].ratio > worst) {
            worst = ar[i].ratio;
            worst_at = ar[i].size;
        }
    if (worst > 0)
        printf("  %-58s %.2fx at %zu B  %s\n", "arguments >= 1 MiB: round trip <= 2 x memcpy:",
               worst, worst_at, worst <= TARGET_ARG_OVER_MEMCPY ? "MET" : "MISSED");
    write_plots(dir, fr, nf, ar, na, plot);
    return 0;
}
