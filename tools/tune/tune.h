/*
 * tune.h — the sweep library behind ppool-tune: grid specs, inputs, result
 * digests, medians, a progress bar with an ETA, the machine header, and the
 * table / CSV / gnuplot output of a sweep.
 *
 * Nothing here calls the pool: the parts are plain C over plain data, so a
 * benchmark (bench/) can reuse any of them whatever libppool it links, and
 * the program that drives the pool (tools/ppool-tune.c) stays the one place
 * that knows how a point is measured. See docs/tuning.md for the user's view.
 *
 * Errors: functions that can fail return 0 or -1 and write a one-line reason
 * (no program name, no newline) into the caller's @err buffer.
 * Thread safety: none of these functions keeps hidden state except the
 * progress bar, whose object the caller owns; call each from one thread.
 */
#ifndef PPOOL_TOOLS_TUNE_H
#define PPOOL_TOOLS_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------------ */
/* Grid specs: "1,2,4", "1-8", "1-64:x2", "10-100:10", "auto"                */
/* ------------------------------------------------------------------------ */

/** The most values one axis of the grid may hold. */
#define TUNE_AXIS_MAX 64

/** One axis of the grid: distinct values, ascending. */
typedef struct tune_axis {
    int n;
    long v[TUNE_AXIS_MAX];
} tune_axis;

/*
 * Parse @spec into @out: comma-separated terms, each `N`, `A-B` (every
 * integer from A to B), `A-B:S` (step S) or `A-B:xF` (A, A*F, A*F^2, ... up
 * to B, with B itself added when the last power falls short). Every value
 * must lie in [@lo, @hi]; duplicates are merged; the result is sorted.
 * Returns 0, or -1 with the reason in @err (empty term, not a number, A > B,
 * a step below 1, a factor below 2, out of range, more than TUNE_AXIS_MAX
 * values).
 */
int tune_axis_parse(const char *spec, long lo, long hi, tune_axis *out, char *err, size_t errlen);

/* "1,2,4" / "1-8" style description of @a (for headers), into @buf. */
const char *tune_axis_str(const tune_axis *a, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */
/* ------------------------------------------------------------------------ */

/** The items of a sweep, in client memory. */
typedef struct tune_input {
    size_t n;          /* items */
    size_t item_size;  /* bytes per item when fixed, 0 when variable (packed) */
    char *data;        /* the item bytes back to back */
    size_t *off;       /* variable: n + 1 offsets into data; NULL when fixed */
    size_t bytes;      /* bytes at data that belong to items */
    char what[320];    /* e.g. "1000 lines of words.txt (8.1 KiB)" */
} tune_input;

/*
 * Records of a text file, one per line, without the newline; a last line
 * without a newline counts, a trailing newline does not make an empty
 * record. Empty lines are records of 0 bytes. An empty file is an error.
 */
int tune_input_lines(tune_input *in, const char *path, char *err, size_t errlen);
/* Fixed-size records of a binary file; its size must be a non-zero multiple
 * of @item_size. */
int tune_input_binary(tune_input *in, const char *path, size_t item_size, char *err,
                      size_t errlen);
/* @n items of @item_size pseudo-random bytes (splitmix64 from @seed: the same
 * items in every run). */
int tune_input_synthetic(tune_input *in, size_t n, size_t item_size, uint64_t seed, char *err,
                         size_t errlen);
/* Item @i: its first byte, and its size in *@size. */
const void *tune_input_item(const tune_input *in, size_t i, size_t *size);
void tune_input_free(tune_input *in);

/* ------------------------------------------------------------------------ */
/* Result digests and statistics                                             */
/* ------------------------------------------------------------------------ */

/*
 * A 64-bit digest of @n results in order: result i is @cap bytes at
 * out + i * cap, or, when @sizes is not NULL, its first sizes[i] bytes (the
 * sizes are digested too). Equal digests mean equal outputs with
 * overwhelming probability; word-at-a-time, so digesting costs far less than
 * any kernel worth tuning.
 */
uint64_t tune_digest(const void *out, size_t n, size_t cap, const size_t *sizes);

/* Median of @v[0..n) (mean of the middle two when n is even); sorts @v. Its
 * min and max go to *mn / *mx when those are not NULL. */
double tune_median(double *v, int n, double *mn, double *mx);

double tune_now(void); /* CLOCK_MONOTONIC seconds */

/* ------------------------------------------------------------------------ */
/* Progress bar with an ETA                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A one-line bar redrawn in place (carriage return) on a terminal. Work is
 * counted in weights the caller chooses (e.g. the expected seconds of each
 * step); the ETA is the remaining weight at the rate seen so far. When
 * disabled every call does nothing, so callers need not test.
 */
typedef struct tune_progress {
    FILE *to;
    bool on;
    double total, done, t0;
    int width; /* characters of the last line drawn, to clear it */
} tune_progress;

void tune_progress_init(tune_progress *p, FILE *to, bool on, double total_weight);
/* Draw the bar with @label for the step about to run. */
void tune_progress_show(tune_progress *p, const char *label);
/* Count @weight as done. */
void tune_progress_add(tune_progress *p, double weight);
/* Erase the bar (before printing anything else on the same stream). */
void tune_progress_clear(tune_progress *p);

/* ------------------------------------------------------------------------ */
/* Points, the table, CSV, plot                                              */
/* ------------------------------------------------------------------------ */

typedef enum tune_impl { TUNE_SERIAL = 0, TUNE_PPOOL, TUNE_OPENMP } tune_impl;

/** One measured setting. */
typedef struct tune_point {
    tune_impl impl;
    int workers;      /* processes (ppool), threads (OpenMP), 1 (serial) */
    int cpw;          /* cores per worker (ppool), 1 otherwise */
    int cores;        /* cores the setting occupies: workers * cpw */
    size_t chunk;     /* chunksize (ppool, OpenMP schedule(dynamic, chunk)); 0 serial */
    bool oversub;     /* cores > the cores the sweep may use */
    int repeat;       /* runs; med/min/max over them */
    double med, min, max;
    uint64_t digest;  /* of the last run's results (every run is checked) */
} tune_point;

const char *tune_impl_name(tune_impl i);
/* Speed-up of @p over the serial time, and that per core used. */
double tune_speedup(const tune_point *p, double serial_s);
double tune_efficiency(const tune_point *p, double serial_s);
/* The fastest point that is not serial, or NULL when there is none;
 * @impl_only >= 0 restricts the choice to that implementation. */
const tune_point *tune_best(const tune_point *pts, int n, int impl_only);

/* Machine-wide CPU time from /proc/stat (steal included: a hypervisor's
 * other guests compete too) and this process tree's own (getrusage of self
 * and reaped children: the pools' managers and workers once destroyed). */
typedef struct tune_cpu_sample {
    double busy_s, total_s, own_s;
    bool ok;
} tune_cpu_sample;

tune_cpu_sample tune_cpu_sample_now(void);
/** The CPU's model name from /proc/cpuinfo ("unknown CPU" if none). */
void tune_cpu_model(char *out, size_t len);
/** Write @s between two @q characters, each @q inside doubled: a CSV field
 *  (q = '"') or a gnuplot single-quoted string (q = '\''). */
void tune_put_quoted(FILE *f, const char *s, char q);
/** Run `gnuplot @gp`; on failure say why on @msg, each line led by @prefix.
 *  Returns true if gnuplot exited 0. */
bool tune_run_gnuplot(const char *gp, FILE *msg, const char *prefix);
/* The share of the machine's CPU time that other processes took between @a
 * and @b (0..1), and their CPU-seconds in *@secs; -1 when /proc/stat could
 * not be read. */
double tune_others_share(const tune_cpu_sample *a, const tune_cpu_sample *b, double *secs);

/* The machine header: CPUs online / allowed, model, kernel, compiler, and
 * the hwloc summary line the caller got from its pool. */
void tune_print_machine(FILE *f, const char *topology);
/* The table: one row per point, serial first. */
void tune_print_table(FILE *f, const tune_point *pts, int n, double serial_s);
/* One CSV row per point (header line first); every row also names the
 * function, the input, the cores the sweep may use and the hwloc summary, so
 * a row read on its own says where it was measured. Returns 0 or -1 (errno). */
int tune_write_csv(const char *path, const tune_point *pts, int n, double serial_s,
                   const char *function, const char *input, int cores, const char *topology);
/*
 * DIR/<stem>.dat and DIR/<stem>.gp (speed-up over cores used: one line per
 * (cores per worker, chunksize) for ppool, one per chunksize for OpenMP, the
 * ideal), then gnuplot on it for DIR/<stem>.png. @title1/@title2 are the
 * plot's two title lines. Returns 1 when the PNG was drawn, 0 when gnuplot
 * is missing or failed (a line on @msg says so), -1 when a file could not be
 * written.
 */
int tune_plot(const char *dir, const char *stem, const tune_point *pts, int n, double serial_s,
              int cores, const char *title1, const char *title2, FILE *msg);

#endif /* PPOOL_TOOLS_TUNE_H */
