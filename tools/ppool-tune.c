/*
 * ppool-tune — tune the user's own map kernel: workers x chunksize x
 * cores-per-worker on live pools, against a serial run (and OpenMP threads)
 * of the same function in the same run.
 *
 *   ppool-tune --lines words.txt --out tune ./libmykernel.so my_item_fn
 *
 * How a sweep runs (docs/tuning.md is the user's guide):
 *  1. The library is dlopen()ed first, before any pool exists, so its
 *     functions are in the module table every pool takes at create: under
 *     spawn and forkserver a worker finds the same function by (library,
 *     offset), checked by build-id (runtime/fnmap.h).
 *  2. The serial run: the function called in this process over every item,
 *     --repeat times; its digest is the reference every other run must match.
 *  3. One pool per cores-per-worker value k, created at the first worker
 *     count and taken to each next one with pp_executor_resize; at each
 *     worker count an untimed warm-up map (new workers dlopen the library on
 *     first use under spawn), then every chunksize, --repeat timed pp_map
 *     calls each, each run's results digested and checked.
 *  4. With --openmp: the same function in `omp parallel for
 *     schedule(dynamic, chunk)` at each (cores used, chunksize) of the grid,
 *     last (idle OpenMP threads may spin and would tax the pools).
 *  5. The table (median time, speed-up vs serial, efficiency = speed-up /
 *     cores used), CSV and a gnuplot PNG in --out DIR, the best setting last.
 * A digest that differs from the serial one stops the sweep: exit status 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#include <tune/omp_binding.h>
#endif

#include <ppool.h>

#include "tune/tune.h"

static const char *prog = "ppool-tune";

/* Exit statuses: 1 the sweep failed (a pool call, an item, a digest
 * mismatch); 2 bad usage or bad input, found before anything ran. */
enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ------------------------------------------------------------------------ */
/* Settings                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct settings {
    const char *lib, *fn_name;
    const char *lines, *binary; /* input files */
    long synthetic;             /* items, -1 unless --synthetic */
    long item_size;             /* --item-size, -1 unset */
    long out_size;              /* --out-size, -1 unset */
    bool variable;
    const char *workers_spec, *chunks_spec, *cpw_spec;
    int repeat;
    bool openmp;
    const char *outdir;
    bool plot;
    bool dry_run; /* print the machine and the grid, run nothing */
    int progress; /* -1 auto (a terminal), 0 off, 1 on */
    pp_pin_policy policy;
    const char *policy_name;
} settings;

/* Everything the sweep measured and the report shows. */
typedef struct sweep {
    settings s;
    void *lib;
    pp_map_fn fn;
    char lib_path[PATH_MAX];
    tune_input in;
    size_t out_size;
    char topology[512];
    int cores;       /* physical cores (PUs with --policy pus) this process may use */
    tune_axis workers[TUNE_AXIS_MAX]; /* per cpw value: its worker counts */
    tune_axis chunks, cpw;
    tune_point *pts;
    int npts, cap;
    double serial_s;
    uint64_t ref_digest;
    unsigned methods; /* start methods the pools used (bit per pp_start_method) */
    char *placement;  /* one line per (k, workers): where the pool's workers ran */
    size_t placement_len;
    FILE *rep;        /* a copy of the report, for DIR/tune.txt */
    char *rep_buf;
    size_t rep_len;
    tune_progress bar;
    tune_cpu_sample cpu0; /* at the start of the serial run */
} sweep;

/* ------------------------------------------------------------------------ */
/* Messages                                                                   */
/* ------------------------------------------------------------------------ */

static sweep *g_sw; /* for the error paths: clear the bar before writing */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] LIBRARY FUNCTION\n"
            "  LIBRARY   a shared library (a path, or a name dlopen finds) holding\n"
            "  FUNCTION  int FUNCTION(pp_map_item *it): reads it->in[0] (it->in_size[0] bytes),\n"
            "            writes its result to it->out, returns 0 (see <ppool/map.h>)\n"
            "input (one of; default --synthetic 10000 --item-size 64):\n"
            "  --lines FILE            one item per line, without the newline\n"
            "  --binary FILE           fixed-size records of --item-size bytes\n"
            "  --synthetic N           N pseudo-random items of --item-size bytes (same every run)\n"
            "  --item-size B           bytes per record / synthetic item\n"
            "results:\n"
            "  --out-size B            bytes FUNCTION writes to it->out (default: the value of\n"
            "                          the library's `size_t FUNCTION_out_size`, if it has one)\n"
            "  --variable              results of variable size: FUNCTION sets it->out_size\n"
            "                          (at most --out-size)\n"
            "grid (LIST: 1,2,4 | 1-8 | 1-64:x2 | 10-100:10, combined with commas):\n"
            "  --workers LIST          worker processes (default: 1,2,4,... up to cores / k, and\n"
            "                          cores / k)\n"
            "  --chunks LIST           chunksizes (default: those of 1,10,100,1000,10000 below the\n"
            "                          item count)\n"
            "  --cores-per-worker LIST k: cores each worker owns, its thread variables\n"
            "                          (OMP_NUM_THREADS ...) set to k (default: 1)\n"
            "  --policy compact|scatter|pus   pinning (default compact)\n"
            "  --repeat K              runs per point, the median is kept (default 3)\n"
            "  --openmp                also run FUNCTION on OpenMP threads (threads = cores used)\n"
            "output:\n"
            "  --out DIR               write DIR/tune.csv, tune.txt, tune.dat, tune.gp, tune.png\n"
            "  --no-plot               no gnuplot (the .dat and .gp files are still written)\n"
            "  --progress, --no-progress   the progress bar (default: when stderr is a terminal)\n"
            "  --dry-run               print the machine, the input and the grid; run nothing\n"
            "exit status: 0 done; 1 the sweep failed (a result differs from the serial run's,\n"
            "an item failed, a pool error); 2 bad usage or input\n",
            prog);
}

static void clear_bar(void)
{
    if (g_sw)
        tune_progress_clear(&g_sw->bar);
}

static _Noreturn void bad_usage(const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help for the options)\n", prog);
    exit(EXIT_USAGE);
}

static _Noreturn void fail(const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    fflush(stdout);
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(EXIT_FAIL);
}

/* printf to stdout and to the report copy. */
static void say(sweep *sw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sweep *sw, const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (sw->rep) {
        va_start(ap, fmt);
        vfprintf(sw->rep, fmt, ap);
        va_end(ap);
    }
}

/* ------------------------------------------------------------------------ */
/* Options                                                                    */
/* ------------------------------------------------------------------------ */

static long parse_num(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi)
        bad_usage("%s wants an integer in %ld..%ld, not '%s'", opt, lo, hi, v ? v : "");
    return x;
}

static void parse_args(settings *s, int argc, char **argv)
{
    *s = (settings){.synthetic = -1, .item_size = -1, .out_size = -1, .repeat = 3, .plot = true,
                    .progress = -1, .policy = PP_PIN_COMPACT, .policy_name = "compact"};
    const char *pos[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* Every option but the flags below takes the next argument. */
        bool flag = !strcmp(a, "--variable") || !strcmp(a, "--openmp") ||
                    !strcmp(a, "--dry-run") ||
                    !strcmp(a, "--no-plot") || !strcmp(a, "--progress") ||
                    !strcmp(a, "--no-progress") || !strcmp(a, "-h") || !strcmp(a, "--help");
        const char *v = NULL;
        if (a[0] == '-' && a[1] && !flag) {
            if (i + 1 >= argc)
                bad_usage("%s needs a value", a);
            v = argv[++i];
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--lines")) {
            s->lines = v;
        } else if (!strcmp(a, "--binary")) {
            s->binary = v;
        } else if (!strcmp(a, "--synthetic")) {
            s->synthetic = parse_num(a, v, 1, 1L << 40);
        } else if (!strcmp(a, "--item-size")) {
            s->item_size = parse_num(a, v, 1, 1L << 30);
        } else if (!strcmp(a, "--out-size")) {
            s->out_size = parse_num(a, v, 0, 1L << 30);
        } else if (!strcmp(a, "--variable")) {
            s->variable = true;
        } else if (!strcmp(a, "--workers")) {
            s->workers_spec = v;
        } else if (!strcmp(a, "--chunks")) {
            s->chunks_spec = v;
        } else if (!strcmp(a, "--cores-per-worker")) {
            s->cpw_spec = v;
        } else if (!strcmp(a, "--repeat")) {
            s->repeat = (int)parse_num(a, v, 1, 99);
        } else if (!strcmp(a, "--openmp")) {
            s->openmp = true;
        } else if (!strcmp(a, "--out")) {
            s->outdir = v;
        } else if (!strcmp(a, "--dry-run")) {
            s->dry_run = true;
        } else if (!strcmp(a, "--no-plot")) {
            s->plot = false;
        } else if (!strcmp(a, "--progress")) {
            s->progress = 1;
        } else if (!strcmp(a, "--no-progress")) {
            s->progress = 0;
        } else if (!strcmp(a, "--policy")) {
            if (!strcmp(v, "compact"))
                s->policy = PP_PIN_COMPACT;
            else if (!strcmp(v, "scatter"))
                s->policy = PP_PIN_SCATTER;
            else if (!strcmp(v, "pus"))
                s->policy = PP_PIN_PUS;
            else
                bad_usage("--policy is compact, scatter or pus, not '%s'", v);
            s->policy_name = v;
        } else if (a[0] == '-' && a[1]) {
            bad_usage("unknown option '%s'", a);
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            bad_usage("unexpected argument '%s' (LIBRARY and FUNCTION come once)", a);
        }
    }
    if (npos != 2)
        bad_usage("give the LIBRARY and the FUNCTION to tune");
    s->lib = pos[0];
    s->fn_name = pos[1];
    int ninputs = !!s->lines + !!s->binary + (s->synthetic > 0);
    if (ninputs > 1)
        bad_usage("give one input: --lines, --binary or --synthetic");
    if (s->lines && s->item_size > 0)
        bad_usage("--item-size does not apply to --lines (a record is a line)");
#ifndef _OPENMP
    if (s->openmp)
        bad_usage("--openmp: this ppool-tune was built without OpenMP");
#endif
}

/* ------------------------------------------------------------------------ */
/* Library, input, grid                                                       */
/* ------------------------------------------------------------------------ */

/* Load the library before any pool exists: every pool's module table then
 * holds it, so the function's token resolves in workers under every start
 * method. A path with a slash is made absolute (a spawned worker opens the
 * module by the path the client's loader recorded). */
static void load_library(sweep *sw)
{
    const char *want = sw->s.lib;
    if (strchr(want, '/')) {
        if (!realpath(want, sw->lib_path))
            bad_usage("cannot load library %s: %s", want, strerror(errno));
        want = sw->lib_path;
    } else {
        snprintf(sw->lib_path, sizeof sw->lib_path, "%s", want);
    }
    dlerror();
    sw->lib = dlopen(want, RTLD_NOW | RTLD_LOCAL);
    if (!sw->lib)
        bad_usage("cannot load library %s: %s", sw->s.lib, dlerror());
    dlerror();
    void *sym = dlsym(sw->lib, sw->s.fn_name);
    const char *e = dlerror();
    if (e || !sym)
        bad_usage("no function '%s' in %s: %s", sw->s.fn_name, sw->lib_path,
                  e ? e : "the symbol is NULL");
    sw->fn = (pp_map_fn)(uintptr_t)sym;

    if (sw->s.out_size >= 0) {
        sw->out_size = (size_t)sw->s.out_size;
    } else {
        char name[512];
        snprintf(name, sizeof name, "%s_out_size", sw->s.fn_name);
        const size_t *os = dlsym(sw->lib, name);
        if (!os)
            bad_usage("how many bytes does %s write? give --out-size B (or define `const size_t "
                      "%s` in the library)",
                      sw->s.fn_name, name);
        sw->out_size = *os;
    }
    if (sw->out_size == 0)
        bad_usage("--out-size 0: the function's results are what the sweep checks");
}

static void load_input(sweep *sw)
{
    char err[512];
    int rc;
    const settings *s = &sw->s;
    if (s->lines)
        rc = tune_input_lines(&sw->in, s->lines, err, sizeof err);
    else if (s->binary)
        rc = tune_input_binary(&sw->in, s->binary, s->item_size > 0 ? (size_t)s->item_size : 0,
                               err, sizeof err);
    else
        rc = tune_input_synthetic(&sw->in, s->synthetic > 0 ? (size_t)s->synthetic : 10000,
                                  s->item_size > 0 ? (size_t)s->item_size : 64,
                                  0x7475e5eedull, err, sizeof err);
    if (rc != 0)
        bad_usage("input: %s", err);
}

static void parse_axis(const char *opt, const char *spec, long hi, tune_axis *out)
{
    char err[256];
    if (tune_axis_parse(spec, 1, hi, out, err, sizeof err) != 0)
        bad_usage("%s '%s': %s", opt, spec, err);
}

/* The grid specs given, checked before anything starts (make_grid parses
 * them again once the core count is known, for the defaults). */
static void check_specs(const settings *s)
{
    tune_axis a;
    if (s->cpw_spec)
        parse_axis("--cores-per-worker", s->cpw_spec, 1024, &a);
    if (s->chunks_spec)
        parse_axis("--chunks", s->chunks_spec, LONG_MAX, &a);
    if (s->workers_spec)
        parse_axis("--workers", s->workers_spec, 4096, &a);
}

/* The grid; the default worker counts need the core count (sw->cores). */
static void make_grid(sweep *sw)
{
    const settings *s = &sw->s;
    if (s->cpw_spec)
        parse_axis("--cores-per-worker", s->cpw_spec, 1024, &sw->cpw);
    else
        sw->cpw = (tune_axis){.n = 1, .v = {1}};
    if (s->chunks_spec) {
        parse_axis("--chunks", s->chunks_spec, LONG_MAX, &sw->chunks);
    } else {
        sw->chunks.n = 0;
        for (long c = 1; c <= 10000; c *= 10)
            if ((size_t)c < sw->in.n || sw->chunks.n == 0)
                sw->chunks.v[sw->chunks.n++] = c;
    }
    for (int k = 0; k < sw->cpw.n; k++) {
        tune_axis *w = &sw->workers[k];
        if (s->workers_spec) {
            parse_axis("--workers", s->workers_spec, 4096, w);
            continue;
        }
        long max = sw->cores / sw->cpw.v[k];
        max = max < 1 ? 1 : max;
        char spec[64];
        snprintf(spec, sizeof spec, "1-%ld:x2", max);
        parse_axis("--workers", spec, 4096, w);
    }
}

/* ------------------------------------------------------------------------ */
/* Measuring                                                                  */
/* ------------------------------------------------------------------------ */

/* A client array the pools' fork()s do not inherit: a fork-based pool would
 * otherwise share its pages copy-on-write and the client would pay a page
 * fault and a copy on its next write to each (bench_wordhash measured 100 ms
 * for 128 MB). Workers never read client memory. */
static void *big_alloc(size_t n)
{
    size_t len = (n + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        fail("out of memory (%zu bytes of results)", n);
    madvise(p, len ? len : 4096, MADV_DONTFORK);
    return p;
}

static void big_free(void *p, size_t n)
{
    size_t len = (n + 4095) & ~(size_t)4095;
    munmap(p, len ? len : 4096);
}

typedef struct results {
    char *out;     /* n * out_size bytes */
    size_t *sizes; /* variable results: n sizes; else NULL */
} results;

static tune_point *new_point(sweep *sw)
{
    if (sw->npts == sw->cap) {
        sw->cap = sw->cap ? 2 * sw->cap : 64;
        sw->pts = realloc(sw->pts, (size_t)sw->cap * sizeof *sw->pts);
        if (!sw->pts)
            fail("out of memory");
    }
    tune_point *p = &sw->pts[sw->npts++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Results are poisoned before every run, so one that writes nothing cannot
 * pass for the previous run's. */
static void poison(const sweep *sw, results *r)
{
    memset(r->out, 0xa5, sw->in.n * sw->out_size);
    if (r->sizes)
        memset(r->sizes, 0xa5, sw->in.n * sizeof *r->sizes);
}

static uint64_t digest(const sweep *sw, const results *r)
{
    return tune_digest(r->out, sw->in.n, sw->out_size, r->sizes);
}

/* One call of the function in this process, as a worker would make it. */
static int call_item(const sweep *sw, size_t i, results *r)
{
    size_t sz;
    const void *item = tune_input_item(&sw->in, i, &sz);
    const void *in[1] = {item};
    size_t in_size[1] = {sz};
    pp_map_item it = {.index = i,
                      .n_in = 1,
                      .in = in,
                      .in_size = in_size,
                      .out = r->out + i * sw->out_size,
                      .out_cap = sw->out_size,
                      .out_size = sw->out_size};
    int rc = sw->fn(&it);
    if (r->sizes)
        r->sizes[i] = it.out_size;
    if (rc == 0 && r->sizes && it.out_size > sw->out_size)
        return -EOVERFLOW;
    return rc;
}

/* The serial reference: --repeat runs, each digested; they must agree (a
 * function whose results change from run to run cannot be checked). */
static void run_serial(sweep *sw, results *r)
{
    int K = sw->s.repeat;
    double t[100];
    tune_point *p = new_point(sw);
    *p = (tune_point){.impl = TUNE_SERIAL, .workers = 1, .cpw = 1, .cores = 1, .repeat = K};
    for (int k = 0; k < K; k++) {
        char label[64];
        snprintf(label, sizeof label, "serial run %d/%d", k + 1, K);
        tune_progress_show(&sw->bar, label);
        poison(sw, r);
        double t0 = tune_now();
        for (size_t i = 0; i < sw->in.n; i++) {
            int rc = call_item(sw, i, r);
            if (rc == -EOVERFLOW)
                fail("serial run: item %zu: %s set it->out_size to %zu, over --out-size %zu", i,
                     sw->s.fn_name, r->sizes[i], sw->out_size);
            if (rc != 0)
                fail("serial run: item %zu: %s returned %d", i, sw->s.fn_name, rc);
        }
        t[k] = tune_now() - t0;
        uint64_t d = digest(sw, r);
        if (k > 0 && d != sw->ref_digest)
            fail("serial run %d: results digest %016llx differs from run 1's %016llx: %s is not "
                 "deterministic, so its parallel results cannot be checked",
                 k + 1, (unsigned long long)d, (unsigned long long)sw->ref_digest,
                 sw->s.fn_name);
        sw->ref_digest = d;
        tune_progress_add(&sw->bar, t[k]);
    }
    p->med = tune_median(t, K, &p->min, &p->max);
    p->digest = sw->ref_digest;
    sw->serial_s = p->med;
}

/* Expected seconds of one run at @cores cores: the progress bar's weight. */
static double weight(const sweep *sw, int cores)
{
    int c = cores < sw->cores ? cores : sw->cores;
    return sw->serial_s / (c > 0 ? c : 1) + 1e-3;
}

static void check_digest(const sweep *sw, const tune_point *p, uint64_t d, int run)
{
    if (d == sw->ref_digest)
        return;
    fail("results differ from the serial run's: %s workers %d, cores/worker %d, chunksize %zu, "
         "run %d: digest %016llx, serial %016llx",
         tune_impl_name(p->impl), p->workers, p->cpw, p->chunk, run,
         (unsigned long long)d, (unsigned long long)sw->ref_digest);
}

static void map_opts(const sweep *sw, size_t chunk, pp_map_opts *o)
{
    pp_map_opts_init(o);
    o->chunksize = chunk;
    o->out_size = sw->out_size;
    o->out_variable = sw->s.variable;
}

static pp_map_input map_input(const sweep *sw)
{
    if (sw->in.off)
        return pp_map_packed(sw->in.data, sw->in.off, sw->in.n);
    return pp_map_array(sw->in.data, sw->in.n, sw->in.item_size);
}

static void map_or_die(sweep *sw, pp_executor *ex, size_t count, size_t chunk, results *r,
                       const char *what)
{
    pp_map_input in = map_input(sw);
    in.count = count;
    pp_map_opts o;
    map_opts(sw, chunk, &o);
    pp_map_status st;
    int rc = pp_map(ex, sw->fn, &in, 1, r->out, count, r->sizes, &o, &st);
    if (rc == 0)
        return;
    if (rc == PP_ETASK)
        fail("%s: item %zu failed: %s (code %d)", what, st.done, st.message, st.code);
    fail("%s: pp_map: %s%s%s", what, pp_strerror(rc), st.message[0] ? ": " : "", st.message);
}

/* Untimed: one small map, so each worker has run the function (under spawn a
 * worker dlopen()s the library at its first call) before the clock starts. */
static void warm_up(sweep *sw, pp_executor *ex, int workers, results *r)
{
    size_t n = (size_t)workers * 8;
    map_or_die(sw, ex, n < sw->in.n ? n : sw->in.n, 1, r, "warm-up map");
}

static void measure_ppool(sweep *sw, pp_executor *ex, int w, int k, size_t chunk, results *r)
{
    int K = sw->s.repeat;
    double t[100];
    tune_point *p = new_point(sw);
    *p = (tune_point){.impl = TUNE_PPOOL, .workers = w, .cpw = k, .cores = w * k,
                      .chunk = chunk, .oversub = w * k > sw->cores, .repeat = K};
    for (int run = 0; run < K; run++) {
        char label[96], what[96];
        snprintf(label, sizeof label, "ppool w=%d k=%d chunk=%zu run %d/%d", w, k, chunk,
                 run + 1, K);
        tune_progress_show(&sw->bar, label);
        snprintf(what, sizeof what, "ppool, %d workers x %d cores, chunksize %zu", w, k, chunk);
        poison(sw, r);
        double t0 = tune_now();
        map_or_die(sw, ex, sw->in.n, chunk, r, what);
        t[run] = tune_now() - t0;
        p->digest = digest(sw, r);
        check_digest(sw, p, p->digest, run + 1);
        tune_progress_add(&sw->bar, weight(sw, w * k));
    }
    p->med = tune_median(t, K, &p->min, &p->max);
}

/* Where the workers of @ex are now, as "cpu 0, 1" or, with k > 1, "cpus
 * 0+2, 2+2" (first CPU + how many), appended to the placement lines. */
static void note_placement(sweep *sw, pp_executor *ex, int w, int k)
{
    pp_worker_stats *ws = calloc((size_t)w, sizeof *ws);
    if (!ws)
        fail("out of memory");
    int n = pp_executor_stats(ex, NULL, ws, w);
    if (n < 0)
        fail("pp_executor_stats: %s", pp_strerror(n));
    char line[1024];
    size_t o = (size_t)snprintf(line, sizeof line, "  k=%d, %d worker%s: ", k, w,
                                w == 1 ? "" : "s");
    for (int i = 0; i < n && i < w && o + 40 < sizeof line; i++) {
        if (ws[i].cpu < 0)
            o += (size_t)snprintf(line + o, sizeof line - o, "%sunpinned", i ? ", " : "");
        else if (ws[i].ncpus > 1)
            o += (size_t)snprintf(line + o, sizeof line - o, "%scpus %d+%d", i ? ", " : "",
                                  ws[i].cpu, ws[i].ncpus);
        else
            o += (size_t)snprintf(line + o, sizeof line - o, "%scpu %d", i ? ", " : "",
                                  ws[i].cpu);
    }
    if (n > w)
        o += (size_t)snprintf(line + o, sizeof line - o, " (%d positions)", n);
    free(ws);
    size_t add = strlen(line) + 1;
    char *p = realloc(sw->placement, sw->placement_len + add + 1);
    if (!p)
        fail("out of memory");
    sw->placement = p;
    memcpy(p + sw->placement_len, line, add - 1);
    sw->placement_len += add;
    p[sw->placement_len - 1] = '\n';
    p[sw->placement_len] = '\0';
}

/* One live pool for cores-per-worker @k: created at the first worker count,
 * resized to each next one. */
static void sweep_cpw(sweep *sw, int ki, results *r)
{
    int k = (int)sw->cpw.v[ki];
    const tune_axis *wa = &sw->workers[ki];
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = (int)wa->v[0];
    cfg.cores_per_worker = k;
    cfg.pin = sw->s.policy;
    pp_executor *ex = NULL;
    clear_bar(); /* an oversubscribed pool warns on stderr */
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        fail("pp_executor_create (%d workers x %d cores): %s", cfg.max_workers, k,
             pp_strerror(rc));
    sw->methods |= 1u << (unsigned)pp_start_method_used(ex);
    for (int wi = 0; wi < wa->n; wi++) {
        int w = (int)wa->v[wi];
        if (wi > 0) {
            clear_bar();
            rc = pp_executor_resize(ex, w);
            if (rc)
                fail("pp_executor_resize to %d workers x %d cores: %s", w, k, pp_strerror(rc));
        }
        if (pp_max_workers(ex) != w)
            fail("the pool has %d workers, want %d", pp_max_workers(ex), w);
        note_placement(sw, ex, w, k);
        warm_up(sw, ex, w, r);
        for (int ci = 0; ci < sw->chunks.n; ci++)
            measure_ppool(sw, ex, w, k, (size_t)sw->chunks.v[ci], r);
    }
    rc = pp_executor_destroy(ex);
    if (rc)
        fail("pp_executor_destroy: %s", pp_strerror(rc));
}

#ifdef _OPENMP
/* The same function on @threads OpenMP threads, schedule(dynamic, chunk). */
static double omp_run(sweep *sw, int threads, size_t chunk, results *r)
{
    long n = (long)sw->in.n;
    int ch = chunk > INT_MAX ? INT_MAX : (int)chunk;
    long bad = -1;
    int bad_rc = 0;
    double t0 = tune_now();
#pragma omp parallel for schedule(dynamic, ch) num_threads(threads)
    for (long i = 0; i < n; i++) {
        int rc = call_item(sw, (size_t)i, r);
        if (rc) {
#pragma omp critical(ppool_tune_bad)
            if (bad < 0 || i < bad) {
                bad = i;
                bad_rc = rc;
            }
        }
    }
    double t = tune_now() - t0;
    if (bad >= 0)
        fail("openmp, %d threads, chunk %zu: item %ld: %s returned %d", threads, chunk, bad,
             sw->s.fn_name, bad_rc);
    return t;
}


/* OpenMP at every (cores used, chunksize) pair of the ppool grid. */
static void sweep_openmp(sweep *sw, results *r)
{
    int K = sw->s.repeat;
    tune_axis threads = {0};
    for (int ki = 0; ki < sw->cpw.n; ki++)
        for (int wi = 0; wi < sw->workers[ki].n; wi++) {
            long c = sw->workers[ki].v[wi] * sw->cpw.v[ki];
            int j = 0; /* insert c into the sorted, distinct thread counts */
            while (j < threads.n && threads.v[j] < c)
                j++;
            if ((j < threads.n && threads.v[j] == c) || threads.n == TUNE_AXIS_MAX)
                continue;
            memmove(&threads.v[j + 1], &threads.v[j], (size_t)(threads.n - j) * sizeof c);
            threads.v[j] = c;
            threads.n++;
        }
    for (int ti = 0; ti < threads.n; ti++) {
        int th = (int)threads.v[ti];
        /* Start the team before the clock, as a pool is started before its maps. */
#pragma omp parallel num_threads(th)
        {
            (void)0;
        }
        for (int ci = 0; ci < sw->chunks.n; ci++) {
            size_t chunk = (size_t)sw->chunks.v[ci];
            tune_point *p = new_point(sw);
            *p = (tune_point){.impl = TUNE_OPENMP, .workers = th, .cpw = 1, .cores = th,
                              .chunk = chunk, .oversub = th > sw->cores, .repeat = K};
            double t[100];
            for (int run = 0; run < K; run++) {
                char label[96];
                snprintf(label, sizeof label, "openmp t=%d chunk=%zu run %d/%d", th, chunk,
                         run + 1, K);
                tune_progress_show(&sw->bar, label);
                poison(sw, r);
                t[run] = omp_run(sw, th, chunk, r);
                p->digest = digest(sw, r);
                check_digest(sw, p, p->digest, run + 1);
                tune_progress_add(&sw->bar, weight(sw, th));
            }
            p->med = tune_median(t, K, &p->min, &p->max);
        }
    }
}
#endif

/* ------------------------------------------------------------------------ */
/* main                                                                       */
/* ------------------------------------------------------------------------ */

/* A default pool, only to learn the machine: its topology line and how many
 * workers of one core the policy places (the cores the sweep may use). */
static void probe_machine(sweep *sw)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.pin = sw->s.policy;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        fail("pp_executor_create (the default pool): %s", pp_strerror(rc));
    /* The machine part of the line; the pool's own size and policy (after
     * the ';') belong to this probe, not to the sweep's points. */
    const char *topo = pp_executor_topology(ex);
    snprintf(sw->topology, sizeof sw->topology, "%.*s", (int)strcspn(topo, ";"), topo);
    sw->cores = pp_max_workers(ex);
    pp_executor_destroy(ex);
}

static void print_header(sweep *sw)
{
    char b1[256], b2[256];
    say(sw, "%s: tuning %s() from %s (ppool %s)\n", prog, sw->s.fn_name, sw->lib_path,
        pp_version_string());
    clear_bar();
    tune_print_machine(stdout, sw->topology);
    if (sw->rep)
        tune_print_machine(sw->rep, sw->topology);
    say(sw, "cores:    %d this process may use (policy %s)\n", sw->cores, sw->s.policy_name);
    say(sw, "input:    %s; results %s%zu bytes each\n", sw->in.what,
        sw->s.variable ? "up to " : "", sw->out_size);
    say(sw, "grid:     cores/worker %s; chunksizes %s; workers", tune_axis_str(&sw->cpw, b1, sizeof b1),
        tune_axis_str(&sw->chunks, b2, sizeof b2));
    for (int k = 0; k < sw->cpw.n; k++)
        say(sw, "%s %s (k=%ld)", k ? ";" : "", tune_axis_str(&sw->workers[k], b1, sizeof b1),
            sw->cpw.v[k]);
    say(sw, "; %d run%s per point, median kept%s\n", sw->s.repeat, sw->s.repeat == 1 ? "" : "s",
        sw->s.openmp ? "; OpenMP reference" : "");
}

static void print_results(sweep *sw)
{
    static const char *mname[] = {"auto", "fork", "spawn", "forkserver"};
    say(sw, "\n");
    clear_bar();
    tune_print_table(stdout, sw->pts, sw->npts, sw->serial_s);
    if (sw->rep)
        tune_print_table(sw->rep, sw->pts, sw->npts, sw->serial_s);
    say(sw, "time: median of %d pp_map call%s on a warm pool (pool start and resize not "
            "included); speed-up = serial / time; eff. = speed-up / cores\n",
        sw->s.repeat, sw->s.repeat == 1 ? "" : "s");
    say(sw, "placement (each worker's first CPU, +N when bound to N; one pool per k, resized "
            "between worker counts):\n%s",
        sw->placement ? sw->placement : "");
    say(sw, "start method:");
    for (unsigned m = 1; m < 4; m++)
        if (sw->methods & (1u << m))
            say(sw, " %s", mname[m]);
    say(sw, "\ndigest:   %016llx, every run of every point equal to the serial run's\n",
        (unsigned long long)sw->ref_digest);
}

/* Other processes' CPU time during the sweep: on a machine they share, every
 * figure of the table moves with it. */
static void print_others(sweep *sw, const tune_cpu_sample *end)
{
    double secs = 0, frac = tune_others_share(&sw->cpu0, end, &secs);
    if (frac < 0)
        return;
    say(sw, "others:   other processes used %.1f CPU-s during the sweep, %.1f%% of the machine's "
            "CPU time%s\n",
        secs, 100 * frac,
        frac > 0.02 ? " (not an idle machine: the figures are noisy; rerun on an idle one)"
                    : "");
}

static void print_best(sweep *sw)
{
    const tune_point *b = tune_best(sw->pts, sw->npts, TUNE_PPOOL);
    if (!b)
        return;
    say(sw, "best:     workers %d, cores per worker %d, chunksize %zu: %.4f s, speed-up %.2f, "
            "efficiency %.0f%% (%d core%s)%s\n",
        b->workers, b->cpw, b->chunk, b->med, tune_speedup(b, sw->serial_s),
        100 * tune_efficiency(b, sw->serial_s), b->cores, b->cores == 1 ? "" : "s",
        b->oversub ? ", oversubscribed" : "");
}

static void write_files(sweep *sw)
{
    const char *dir = sw->s.outdir;
    size_t plen = strlen(dir) + 16;
    char *csv = malloc(plen), *txt = malloc(plen);
    if (!csv || !txt)
        fail("out of memory");
    snprintf(csv, plen, "%s/tune.csv", dir);
    snprintf(txt, plen, "%s/tune.txt", dir);
    if (tune_write_csv(csv, sw->pts, sw->npts, sw->serial_s, sw->s.fn_name, sw->in.what,
                       sw->cores, sw->topology) != 0)
        fail("cannot write %s: %s", csv, strerror(errno));
    int png = 0;
    char t1[640], t2[640];
    snprintf(t1, sizeof t1, "ppool-tune: %s() over %s, median of %d", sw->s.fn_name, sw->in.what,
             sw->s.repeat);
    snprintf(t2, sizeof t2, "%d cores | %s", sw->cores, sw->topology);
    if (sw->s.plot) {
        fflush(stdout);
        png = tune_plot(dir, "tune", sw->pts, sw->npts, sw->serial_s, sw->cores, t1, t2, stdout);
        if (png < 0)
            fail("cannot write %s/tune.dat or tune.gp: %s", dir, strerror(errno));
    }
    say(sw, "files:    %s, %s, %s/tune.dat, %s/tune.gp", csv, txt, dir, dir);
    say(sw, png > 0 ? ", %s/tune.png\n" : " (no plot)\n", dir);
    print_best(sw); /* last, in the report file too */
    fclose(sw->rep);
    sw->rep = NULL;
    FILE *f = fopen(txt, "w");
    if (!f || fwrite(sw->rep_buf, 1, sw->rep_len, f) != sw->rep_len || fclose(f) != 0)
        fail("cannot write %s", txt);
    free(csv);
    free(txt);
}

int main(int argc, char **argv)
{
    static sweep sw;
    g_sw = &sw;
    parse_args(&sw.s, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef _OPENMP
    if (tune_undo_omp_initial_binding())
        printf("note:     OMP_PROC_BIND had pinned this thread at start; unpinned it for the "
               "pools\n");
#endif
    /* Everything that can be wrong with the request is found before a pool
     * starts: the library first (before any pool: see load_library). */
    check_specs(&sw.s);
    load_library(&sw);
    load_input(&sw);
    if (sw.s.outdir && mkdir(sw.s.outdir, 0777) != 0 && errno != EEXIST)
        bad_usage("cannot create %s: %s", sw.s.outdir, strerror(errno));
    if (sw.s.outdir) {
        sw.rep = open_memstream(&sw.rep_buf, &sw.rep_len);
        if (!sw.rep)
            fail("out of memory");
    }
    probe_machine(&sw);
    make_grid(&sw);
    print_header(&sw);
    if (sw.s.dry_run) {
        if (sw.rep)
            fclose(sw.rep);
        free(sw.rep_buf);
        tune_input_free(&sw.in);
        return 0;
    }

    results r = {.out = big_alloc(sw.in.n * sw.out_size)};
    if (sw.s.variable)
        r.sizes = big_alloc(sw.in.n * sizeof *r.sizes);

    /* The bar's weights are expected seconds: the serial run's first (1 s as
     * a guess until it is measured), then each point's at its core count. */
    bool bar_on = sw.s.progress < 0 ? isatty(STDERR_FILENO) : sw.s.progress;
    tune_progress_init(&sw.bar, stderr, bar_on, 0);
    sw.cpu0 = tune_cpu_sample_now();
    run_serial(&sw, &r);
    double total = sw.bar.done;
    for (int k = 0; k < sw.cpw.n; k++)
        for (int wi = 0; wi < sw.workers[k].n; wi++) {
            int c = (int)(sw.workers[k].v[wi] * sw.cpw.v[k]);
            total += sw.chunks.n * sw.s.repeat * weight(&sw, c) * (sw.s.openmp ? 2 : 1);
        }
    sw.bar.total = total;

    for (int k = 0; k < sw.cpw.n; k++)
        sweep_cpw(&sw, k, &r);
#ifdef _OPENMP
    if (sw.s.openmp)
        sweep_openmp(&sw, &r);
#endif
    tune_progress_clear(&sw.bar);
    tune_cpu_sample cpu1 = tune_cpu_sample_now();
    print_results(&sw);
    print_others(&sw, &cpu1);
    if (sw.s.outdir)
        write_files(&sw);
    else
        print_best(&sw);

    big_free(r.out, sw.in.n * sw.out_size);
    if (r.sizes)
        big_free(r.sizes, sw.in.n * sizeof *r.sizes);
    free(sw.pts);
    free(sw.placement);
    free(sw.rep_buf);
    tune_input_free(&sw.in);
    return 0;
}
