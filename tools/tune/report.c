/* report.c — the machine header, the table, CSV and the gnuplot plot of a
 * sweep; see tune.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tune.h"

extern char **environ;

const char *tune_impl_name(tune_impl i)
{
    static const char *names[] = {"serial", "ppool", "openmp"};
    return (unsigned)i < 3 ? names[i] : "?";
}

double tune_speedup(const tune_point *p, double serial_s)
{
    return p->med > 0 ? serial_s / p->med : 0;
}

double tune_efficiency(const tune_point *p, double serial_s)
{
    return p->cores > 0 ? tune_speedup(p, serial_s) / p->cores : 0;
}

const tune_point *tune_best(const tune_point *pts, int n, int impl_only)
{
    const tune_point *best = NULL;
    for (int i = 0; i < n; i++) {
        const tune_point *p = &pts[i];
        if (p->impl == TUNE_SERIAL || (impl_only >= 0 && (int)p->impl != impl_only))
            continue;
        /* Ties go to the setting that uses fewer cores (listed first
         * within its implementation only if the caller sorted so). */
        if (!best || p->med < best->med || (p->med == best->med && p->cores < best->cores))
            best = p;
    }
    return best;
}

/* ------------------------------------------------------------------------ */
/* The machine                                                                */
/* ------------------------------------------------------------------------ */

void tune_cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) && strncmp(line, "Model", 5) &&
            strncmp(line, "cpu model", 9))
            continue;
        char *c = strchr(line, ':');
        if (!c)
            continue;
        c++;
        while (*c == ' ' || *c == '\t')
            c++;
        c[strcspn(c, "\n")] = '\0';
        if (*c) {
            snprintf(out, len, "%s", c);
            break;
        }
    }
    fclose(f);
}

tune_cpu_sample tune_cpu_sample_now(void)
{
    tune_cpu_sample c = {0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        c.ok = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                      &v[3], &v[4], &v[5], &v[6], &v[7]) == 8;
        fclose(f);
    }
    double hz = (double)sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        c.ok = false;
    if (c.ok) { /* user nice system idle iowait irq softirq steal */
        c.busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
        c.total_s = c.busy_s + (double)(v[3] + v[4]) / hz;
    }
    struct rusage ru;
    for (int who = 0; who < 2; who++)
        if (getrusage(who ? RUSAGE_CHILDREN : RUSAGE_SELF, &ru) == 0)
            c.own_s += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return c;
}

double tune_others_share(const tune_cpu_sample *a, const tune_cpu_sample *b, double *secs)
{
    if (!a->ok || !b->ok || b->total_s <= a->total_s)
        return -1;
    double others = (b->busy_s - a->busy_s) - (b->own_s - a->own_s);
    others = others < 0 ? 0 : others;
    if (secs)
        *secs = others;
    double frac = others / (b->total_s - a->total_s);
    return frac > 1 ? 1 : frac;
}

void tune_print_machine(FILE *f, const char *topology)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    char model[256];
    tune_cpu_model(model, sizeof model);
    fprintf(f, "machine:  %ld CPUs online (%d allowed), %s\n", online, allowed, model);
    fprintf(f, "topology: %s\n", topology && *topology ? topology : "(unknown)");
    struct utsname u;
    if (uname(&u) == 0)
        fprintf(f, "kernel:   %s %s %s\n", u.sysname, u.release, u.machine);
}

/* ------------------------------------------------------------------------ */
/* Table and CSV                                                              */
/* ------------------------------------------------------------------------ */

void tune_print_table(FILE *f, const tune_point *pts, int n, double serial_s)
{
    fprintf(f, "%-7s %7s %7s %6s %9s %10s %10s %10s %9s %6s\n", "impl", "workers", "cores/w",
            "cores", "chunk", "time s", "min s", "max s", "speed-up", "eff.");
    bool over = false;
    for (int i = 0; i < n; i++) {
        const tune_point *p = &pts[i];
        char chunk[24], cpw[16];
        snprintf(chunk, sizeof chunk, p->impl == TUNE_SERIAL ? "-" : "%zu", p->chunk);
        snprintf(cpw, sizeof cpw, p->impl == TUNE_PPOOL ? "%d" : "-", p->cpw);
        fprintf(f, "%-7s %7d %7s %6d %9s %10.4f %10.4f %10.4f %9.2f %5.0f%%%s\n",
                tune_impl_name(p->impl), p->workers, cpw, p->cores, chunk, p->med, p->min,
                p->max, tune_speedup(p, serial_s), 100 * tune_efficiency(p, serial_s),
                p->oversub ? " *" : "");
        over |= p->oversub;
    }
    if (over)
        fprintf(f, "* more cores than this process may use: oversubscribed\n");
}

void tune_put_quoted(FILE *f, const char *s, char q)
{
    fputc(q, f);
    for (; *s; s++) {
        if (*s == q)
            fputc(q, f);
        fputc(*s, f);
    }
    fputc(q, f);
}

int tune_write_csv(const char *path, const tune_point *pts, int n, double serial_s,
                   const char *function, const char *input, int cores, const char *topology)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "impl,workers,cores_per_worker,cores,chunksize,time_s,min_s,max_s,repeat,speedup,"
               "efficiency,oversubscribed,digest,function,input,cores_available,topology\n");
    for (int i = 0; i < n; i++) {
        const tune_point *p = &pts[i];
        fprintf(f, "%s,%d,%d,%d,%zu,%.6f,%.6f,%.6f,%d,%.4f,%.4f,%d,%016llx,",
                tune_impl_name(p->impl), p->workers, p->cpw, p->cores, p->chunk, p->med, p->min,
                p->max, p->repeat, tune_speedup(p, serial_s), tune_efficiency(p, serial_s),
                p->oversub, (unsigned long long)p->digest);
        tune_put_quoted(f, function, '"');
        fputc(',', f);
        tune_put_quoted(f, input, '"');
        fprintf(f, ",%d,", cores);
        tune_put_quoted(f, topology, '"');
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Plot                                                                       */
/* ------------------------------------------------------------------------ */


/* Whether two points belong to the same plotted line. */
static bool same_series(const tune_point *a, const tune_point *b)
{
    return a->impl == b->impl && a->chunk == b->chunk && (a->impl != TUNE_PPOOL || a->cpw == b->cpw);
}

bool tune_run_gnuplot(const char *gp, FILE *msg, const char *prefix)
{
    char *argv[] = {"gnuplot", (char *)gp, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(msg, "%sgnuplot not run (%s); plot later with: gnuplot %s\n", prefix, strerror(rc),
                gp);
        return false;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return false;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(msg, "%sgnuplot failed (status %d); script: %s\n", prefix, st, gp);
        return false;
    }
    return true;
}

int tune_plot(const char *dir, const char *stem, const tune_point *pts, int n, double serial_s,
              int cores, const char *title1, const char *title2, FILE *msg)
{
    size_t plen = strlen(dir) + strlen(stem) + 8;
    char *dat = malloc(plen), *gp = malloc(plen), *png = malloc(plen);
    int ret = -1;
    FILE *f = NULL;
    if (!dat || !gp || !png)
        goto out;
    snprintf(dat, plen, "%s/%s.dat", dir, stem);
    snprintf(gp, plen, "%s/%s.gp", dir, stem);
    snprintf(png, plen, "%s/%s.png", dir, stem);

    /* One data block per series (gnuplot's `index`), points by cores used. */
    f = fopen(dat, "w");
    if (!f)
        goto out;
    bool *done = calloc((size_t)n + 1, 1);
    int *first = malloc(((size_t)n + 1) * sizeof *first);
    int nser = 0, maxc = 1;
    double maxs = 1;
    for (int i = 0; done && first && i < n; i++) {
        if (done[i] || pts[i].impl == TUNE_SERIAL)
            continue;
        first[nser] = i;
        fprintf(f, "%s# %s chunk %zu cpw %d\n", nser ? "\n\n" : "", tune_impl_name(pts[i].impl),
                pts[i].chunk, pts[i].cpw);
        for (int j = i; j < n; j++) /* the sweep records each series by cores used */
            if (!done[j] && same_series(&pts[i], &pts[j])) {
                done[j] = true;
                double s = tune_speedup(&pts[j], serial_s);
                fprintf(f, "%d %.5f\n", pts[j].cores, s);
                maxc = pts[j].cores > maxc ? pts[j].cores : maxc;
                maxs = s > maxs ? s : maxs;
            }
        nser++;
    }
    free(done);
    if (fclose(f) != 0 || !first) {
        f = NULL;
        free(first);
        goto out;
    }
    f = fopen(gp, "w");
    if (!f) {
        free(first);
        goto out;
    }
    fprintf(f, "# written by ppool-tune; run: gnuplot ");
    tune_put_quoted(f, gp, '\'');
    fprintf(f, "\nif (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "    set terminal pngcairo size 960,640 font ',10'\n"
               "} else {\n"
               "    set terminal png size 960,640\n"
               "}\nset output ");
    tune_put_quoted(f, png, '\'');
    fprintf(f, "\nset title ");
    tune_put_quoted(f, title1, '\'');
    fprintf(f, ".\"\\n\".");
    tune_put_quoted(f, title2, '\'');
    fprintf(f, " noenhanced\n"
               "set xlabel 'cores used (workers x cores per worker; OpenMP: threads)'\n"
               "set ylabel 'speed-up vs the serial run'\n"
               "set key top left box opaque noenhanced\n"
               "set grid\n"
               "set xrange [0.5:%g]\n"
               "set yrange [0:%g]\n",
            maxc + 0.5, ceil((maxs > cores ? maxs : cores) * 1.15 + 0.5));
    if (maxc <= 32)
        fprintf(f, "set xtics 1\n");
    if (maxc > cores) {
        fprintf(f, "set arrow from %g, graph 0 to %g, graph 1 nohead dashtype 3 lc rgb 'gray40'\n",
                cores + 0.5, cores + 0.5);
        fprintf(f, "set label 'oversubscribed' at %g, graph 0.05 left textcolor rgb 'gray40'\n",
                cores + 0.6);
    }
    fprintf(f, "ideal(x) = x < %d ? x : %d\n", cores, cores);
    fprintf(f, "plot ideal(x) with lines dashtype 2 lw 2 lc rgb 'black' title 'ideal (min(cores "
               "used, %d))'",
            cores);
    /* Colour by chunk size (its rank among the sizes plotted), point type
     * by cores per worker, OpenMP dashed: a chunk size reads the same on
     * every line. */
    static const int ptype[] = {7, 5, 9, 11, 13, 15};
    for (int s = 0; s < nser; s++) {
        const tune_point *p = &pts[first[s]];
        int rank = 0, cpw_rank = 0;
        for (int t = 0; t < nser; t++) {
            const tune_point *q = &pts[first[t]];
            bool earlier_chunk = q->chunk < p->chunk;
            for (int u = 0; u < t && earlier_chunk; u++) /* count each size once */
                earlier_chunk = pts[first[u]].chunk != q->chunk;
            rank += earlier_chunk;
            bool earlier_cpw = q->impl == TUNE_PPOOL && q->cpw < p->cpw;
            for (int u = 0; u < t && earlier_cpw; u++)
                earlier_cpw = !(pts[first[u]].impl == TUNE_PPOOL && pts[first[u]].cpw == q->cpw);
            cpw_rank += earlier_cpw;
        }
        char title[96];
        if (p->impl == TUNE_PPOOL)
            snprintf(title, sizeof title, "ppool, %d core%s/worker, chunksize %zu", p->cpw,
                     p->cpw == 1 ? "" : "s", p->chunk);
        else
            snprintf(title, sizeof title, "OpenMP threads, chunk %zu", p->chunk);
        fprintf(f, ", \\\n     ");
        tune_put_quoted(f, dat, '\'');
        fprintf(f, " index %d using 1:2 with linespoints lc %d pt %d lw 2 %stitle ", s, rank + 1,
                p->impl == TUNE_PPOOL ? ptype[cpw_rank % 6] : 6,
                p->impl == TUNE_OPENMP ? "dashtype 3 " : "");
        tune_put_quoted(f, title, '\'');
    }
    fprintf(f, "\n");
    free(first);
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    ret = tune_run_gnuplot(gp, msg, "plot:     ") ? 1 : 0;
out:
    if (f)
        fclose(f);
    free(dat);
    free(gp);
    free(png);
    return ret;
}
