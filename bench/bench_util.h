/*
 * bench_util.h — small helpers shared by the benchmark programs
 * (bench_core, bench_cores, bench_wordhash).
 *
 * Header-only: CMake builds every bench/bench_*.c as its own executable, so
 * the helpers are static inline (a program that does not use one gets no
 * unused-function warning).
 *
 * Contract with the including file:
 *  - define _GNU_SOURCE before any system header (as every bench does);
 *  - define `static const char *prog = "<program name>";` before including
 *    this header: the messages printed here start with it;
 *  - define RESULT_TIMEOUT_S (seconds) before including it to get
 *    die_future(), whose "looks stuck" message names that timeout.
 */
#ifndef PPOOL_BENCH_UTIL_H
#define PPOOL_BENCH_UTIL_H

#include <ppool.h>
#include <tune/tune.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Failing                                                                    */
/* ------------------------------------------------------------------------ */

static inline void die(const char *what, int rc)
{
    fprintf(stderr, "%s: %s failed: %s (%d)\n", prog, what, pp_strerror(rc), rc);
    exit(1);
}

#ifdef RESULT_TIMEOUT_S
/* A failed pp_future_result: say what the future itself reports, then exit. */
static inline void die_future(const char *what, pp_future *f, int rc)
{
    if (rc == -ETIMEDOUT) {
        fprintf(stderr, "%s: %s: no result after %.0f s; the pool looks stuck\n", prog, what,
                RESULT_TIMEOUT_S);
        exit(1);
    }
    pp_exception exc;
    if (pp_future_exception(f, 0.0, &exc) == 0)
        fprintf(stderr, "%s: %s failed: %s (%d); task: code %d, pid %ld, \"%s\"\n", prog, what,
                pp_strerror(rc), rc, exc.code, (long)exc.pid, exc.message);
    else
        fprintf(stderr, "%s: %s failed: %s (%d)\n", prog, what, pp_strerror(rc), rc);
    exit(1);
}
#endif

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Time, sorting, statistics, numbers                                         */
/* ------------------------------------------------------------------------ */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Conventional median of a few run results (mean of the middle two if even,
 * as Python's statistics.median), and, where @mn / @mx are not NULL, the
 * min and max of the @n values. Sorts @v in place. */
static inline double median_d(double *v, size_t n, double *mn, double *mx)
{
    qsort(v, n, sizeof *v, cmp_double);
    if (mn)
        *mn = v[0];
    if (mx)
        *mx = v[n - 1];
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* 1234567.8 -> "1,234,568" into @buf. */
static inline const char *grouped(double v, char *buf, size_t len)
{
    char tmp[64];
    if (!isfinite(v) || v < 0 || v >= 1e18) {
        snprintf(buf, len, "%.3g", v);
        return buf;
    }
    snprintf(tmp, sizeof tmp, "%" PRIu64, (uint64_t)llround(v));
    size_t n = strlen(tmp), o = 0;
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The machine, files, the peer's JSON                                        */
/* ------------------------------------------------------------------------ */

/* The CPU's model name (tools/tune, which every benchmark links). */
static inline void cpu_model(char *out, size_t len)
{
    tune_cpu_model(out, len);
}

static inline bool readable_file(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

/* Looks for an executable @name on $PATH. */
static inline bool on_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(out, len, "%.*s/%s", (int)(n ? n : 1), n ? path : ".", name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Where the value of "key" starts in a flat JSON object (after the colon and
 * any blanks), or NULL. An occurrence of "key" not followed by a colon (a
 * string value, e.g. "system": "python") is skipped. */
static inline const char *json_value(const char *js, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    for (const char *p = strstr(js, pat); p; p = strstr(p + 1, pat)) {
        const char *q = p + strlen(pat);
        while (isspace((unsigned char)*q))
            q++;
        if (*q != ':')
            continue;
        q++;
        while (isspace((unsigned char)*q))
            q++;
        return q;
    }
    return NULL;
}

/* Value of "key": <number> in a flat JSON object, or NAN. */
static inline double json_num(const char *js, const char *key)
{
    const char *p = json_value(js, key);
    if (!p)
        return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* Value of "key": "<string>" (no escapes expected) into @out; false if absent. */
static inline bool json_str(const char *js, const char *key, char *out, size_t len)
{
    const char *p = json_value(js, key);
    if (!p || *p++ != '"')
        return false;
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < len)
        out[i++] = *p++;
    out[i] = '\0';
    return true;
}

#endif /* PPOOL_BENCH_UTIL_H */
