/*
 * bench_mpi.c — ppool across MPI ranks beside ppool on one node and beside
 * mpi4py.futures' MPIPoolExecutor, in one run.
 *
 *   ./build/release/bench_mpi --np 3 --out out        # table, CSV, PNG
 *   ./build/release/bench_mpi --quick --out /tmp/bm
 *
 * The driver (this program without --mpi) runs two MPI jobs of --np ranks:
 *   mpirun -np N bench_mpi --mpi ...       (ppool: root = client)
 *   mpirun -np N python3 -m mpi4py.futures bench/peer_mpi.py ...
 * and prints one table with ratios, writes mpi.csv and, with gnuplot,
 * mpi.png. Each job keeps one executor for all its measurements:
 *   noop       K submits of a no-op task, then waiting for all: tasks/s
 *   roundtrip  R sequential submit + result of a no-op: seconds each
 *   sweep      the word-hash workload (SHA-512 hex digest of W words) with
 *              one task per chunk of cs words, for each chunksize cs:
 *              seconds from the first submit to the last result
 *   map        the same words through pp_map (chunksize cs, packed words,
 *              128-byte digests into an array): across ranks, each chunk is
 *              shipped whole to a rank (a lane per worker there, plus one)
 *              or run by the root node's runners
 * The --mpi job measures ppool-mpi (remote only: the root node's worker is
 * held) with the default credits (--credits, 0 = adaptive), the same with
 * fixed --tuned-credits (default 64; 0 skips it), and ppool-mpi+root.
 * In the --mpi job the root also runs the same noop, sweep and map on one node
 * (an ordinary pp_executor with N workers: "ppool-1node").
 * Every system's set of digests is checked against the others' (size, sum
 * and xor of the first 64 bits); a mismatch exits with status 1.
 *
 * On one machine all ranks share its cores and the "network" is shared
 * memory: the numbers measure the protocol's cost, not scaling across
 * nodes. The output says so.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "ppool.h"
#include "ppool/mpi.h"
#include "mpi_hold.h" /* tests/mpi: mc_hold_root */
#include "sha512_portable.h"

#ifndef PPOOL_SOURCE_DIR
#define PPOOL_SOURCE_DIR "."
#endif

typedef struct opts {
    int np;
    unsigned credits, tuned;
    long words, noop, roundtrip, runs;
    char chunks[128];
    const char *out, *python, *mpirun;
} opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the tasks ---------------------------------------------------------- */

static int t_noop(pp_task *t)
{
    (void)t;
    return 0;
}

/* arg: uint32 n, uint32 off[n + 1], then the words' bytes; result: n hex
 * digests of 128 characters. */
static int t_hash_chunk(pp_task *t)
{
    const uint32_t *a = pp_task_arg(t, NULL);
    uint32_t n = a[0];
    const uint32_t *off = a + 1;
    const char *bytes = (const char *)(off + n + 1);
    char *out = pp_task_result(t, (size_t)n * 128);
    if (!out)
        return 1;
    static const char hx[] = "0123456789abcdef";
    for (uint32_t i = 0; i < n; i++) {
        unsigned char md[64];
        ppb_sha512_bytes(bytes + off[i], off[i + 1] - off[i], md);
        for (int k = 0; k < 64; k++) {
            out[i * 128 + 2 * k] = hx[md[k] >> 4];
            out[i * 128 + 2 * k + 1] = hx[md[k] & 15];
        }
    }
    return 0;
}

/* ---- the words and their digest set -------------------------------------- */

typedef struct words {
    long n;
    char *bytes;
    uint32_t *off; /* n + 1 */
} words;

static void make_words(words *w, long n)
{
    w->n = n;
    w->off = malloc((size_t)(n + 1) * sizeof *w->off);
    w->bytes = malloc((size_t)n * 24);
    size_t at = 0;
    for (long i = 0; i < n; i++) {
        w->off[i] = (uint32_t)at;
        at += (size_t)sprintf(w->bytes + at, "w%ld-%ld", i, (i * 7919) % 1000);
    }
    w->off[n] = (uint32_t)at;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct dsum {
    uint64_t distinct, sum, xr;
} dsum;

static dsum digest_set(const char *hex, long n)
{
    uint64_t *v = malloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++) {
        char buf[17];
        memcpy(buf, hex + i * 128, 16);
        buf[16] = 0;
        v[i] = strtoull(buf, NULL, 16);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    dsum d = {0, 0, 0};
    for (long i = 0; i < n; i++)
        if (i == 0 || v[i] != v[i - 1]) {
            d.distinct++;
            d.sum += v[i];
            d.xr ^= v[i];
        }
    free(v);
    return d;
}

/* ---- measurements (the root of the --mpi job) ------------------------------ */

/* The map's item: the word's hex digest into it->out (128 bytes). */
static int t_hash_item(pp_map_item *it)
{
    static const char hx[] = "0123456789abcdef";
    unsigned char md[64];
    ppb_sha512_bytes(it->in[0], it->in_size[0], md);
    char *out = it->out;
    for (int k = 0; k < 64; k++) {
        out[2 * k] = hx[md[k] >> 4];
        out[2 * k + 1] = hx[md[k] & 15];
    }
    return 0;
}

/* The median of @n values (sorts them), as peer_mpi.py reports mpi4py's. */
static double median(double *v, long n)
{
    for (long i = 1; i < n; i++) /* insertion sort: a few runs */
        for (long k = i; k > 0 && v[k] < v[k - 1]; k--) {
            double x = v[k];
            v[k] = v[k - 1];
            v[k - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double noop_rate(pp_executor *ex, long k, long runs)
{
    pp_future **fs = malloc((size_t)k * sizeof *fs);
    double *rate = malloc((size_t)runs * sizeof *rate);
    for (long r = 0; r < runs; r++) {
        double t0 = now_s();
        for (long i = 0; i < k; i++)
            if (pp_submit(ex, t_noop, NULL, 0, &fs[i]))
                exit(2);
        for (long i = 0; i < k; i++) {
            pp_future_result(fs[i], PP_FOREVER, NULL, NULL);
            pp_future_release(fs[i]);
        }
        rate[r] = (double)k / (now_s() - t0);
    }
    free(fs);
    double m = median(rate, runs);
    free(rate);
    return m;
}

static double roundtrip(pp_executor *ex, long r)
{
    double t0 = now_s();
    for (long i = 0; i < r; i++) {
        pp_future *f;
        pp_submit(ex, t_noop, NULL, 0, &f);
        pp_future_result(f, PP_FOREVER, NULL, NULL);
        pp_future_release(f);
    }
    return (now_s() - t0) / (double)r;
}

/* One sweep point: seconds (median of runs), digests into @hex. */
static double sweep_point(pp_executor *ex, const words *w, long cs, long runs, char *hex)
{
    long nchunks = (w->n + cs - 1) / cs;
    pp_future **fs = malloc((size_t)nchunks * sizeof *fs);
    uint32_t *pkt = malloc((size_t)(cs + 2) * 4 + (size_t)cs * 24);
    double *secs = malloc((size_t)runs * sizeof *secs);
    for (long r = 0; r < runs; r++) {
        double t0 = now_s();
        for (long c = 0; c < nchunks; c++) {
            long lo = c * cs, hi = lo + cs < w->n ? lo + cs : w->n;
            uint32_t n = (uint32_t)(hi - lo);
            pkt[0] = n;
            for (uint32_t i = 0; i <= n; i++)
                pkt[1 + i] = w->off[lo + i] - w->off[lo];
            size_t nb = w->off[hi] - w->off[lo];
            memcpy(pkt + n + 2, w->bytes + w->off[lo], nb);
            if (pp_submit(ex, t_hash_chunk, pkt, (n + 2) * 4 + nb, &fs[c]))
                exit(2);
        }
        for (long c = 0; c < nchunks; c++) {
            const void *p;
            size_t sz;
            if (pp_future_result(fs[c], PP_FOREVER, &p, &sz) == 0)
                memcpy(hex + c * cs * 128, p, sz);
            pp_future_release(fs[c]);
        }
        secs[r] = now_s() - t0;
    }
    free(pkt);
    free(fs);
    double m = median(secs, runs);
    free(secs);
    return m;
}

/* One pp_map point: seconds (median of runs), digests into @hex in order. */
static double map_point(pp_executor *ex, const words *w, long cs, long runs, char *hex)
{
    size_t *offs = malloc((size_t)(w->n + 1) * sizeof *offs);
    double *secs = malloc((size_t)runs * sizeof *secs);
    for (long i = 0; i <= w->n; i++)
        offs[i] = w->off[i];
    pp_map_input in = pp_map_packed(w->bytes, offs, (size_t)w->n);
    pp_map_opts mo;
    pp_map_opts_init(&mo);
    mo.chunksize = (size_t)cs;
    mo.out_size = 128;
    for (long r = 0; r < runs; r++) {
        double t0 = now_s();
        if (pp_map(ex, t_hash_item, &in, 1, hex, (size_t)w->n, NULL, &mo, NULL) != 0)
            exit(2);
        secs[r] = now_s() - t0;
    }
    free(offs);
    double med = median(secs, runs);
    free(secs);
    return med;
}

static void run_all(const char *sys, pp_executor *ex, const opts *o, const words *w, char *hex,
                    bool rt)
{
    printf("{\"system\": \"%s\", \"what\": \"noop\", \"tasks_per_s\": %.1f}\n", sys,
           noop_rate(ex, o->noop, o->runs));
    if (rt)
        printf("{\"system\": \"%s\", \"what\": \"roundtrip\", \"seconds\": %.9f}\n", sys,
               roundtrip(ex, o->roundtrip));
    char list[128];
    snprintf(list, sizeof list, "%s", o->chunks);
    for (char *s = strtok(list, ","); s; s = strtok(NULL, ",")) {
        long cs = atol(s);
        double t = sweep_point(ex, w, cs, o->runs, hex);
        dsum d = digest_set(hex, w->n);
        printf("{\"system\": \"%s\", \"what\": \"sweep\", \"chunksize\": %ld, \"seconds\": %.6f, "
               "\"distinct\": %llu, \"sum\": %llu, \"xor\": %llu}\n",
               sys, cs, t, (unsigned long long)d.distinct, (unsigned long long)d.sum,
               (unsigned long long)d.xr);
        t = map_point(ex, w, cs, o->runs, hex);
        d = digest_set(hex, w->n);
        printf("{\"system\": \"%s\", \"what\": \"map\", \"chunksize\": %ld, \"seconds\": %.6f, "
               "\"distinct\": %llu, \"sum\": %llu, \"xor\": %llu}\n",
               sys, cs, t, (unsigned long long)d.distinct, (unsigned long long)d.sum,
               (unsigned long long)d.xr);
        fflush(stdout);
    }
}

/* Hold the root node's worker (tests/mpi/mpi_hold.h: remote only, like
 * mpi4py, whose root only drives); a failure ends the job. */
static void hold_root(pp_executor *ex, mc_hold *h)
{
    if (!mc_hold_root(ex, h)) {
        fprintf(stderr, "bench_mpi: could not hold the root's worker\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}

/* Let it go; its line says whether it ran on the root (rank 0) as meant. */
static void release_root(pp_executor *ex, mc_hold *h, const char *sys)
{
    bool ok = mc_release_root(ex, h);
    printf("{\"system\": \"%s\", \"what\": \"hold\", \"rank\": %d}\n", sys, ok ? 0 : -1);
}

static pp_executor *mpi_create(const opts *o, unsigned credits)
{
    pp_mpi_config cfg;
    pp_mpi_config_init(&cfg);
    cfg.node.max_workers = 1;
    cfg.node.pin = PP_PIN_NONE;
    cfg.credits = credits;
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED)
        return NULL;
    if (rc) {
        fprintf(stderr, "bench_mpi: pp_mpi_executor_create: %s\n", pp_strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    (void)o;
    return ex;
}

static int mpi_main(int argc, char **argv, const opts *o)
{
    int prov;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &prov);
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    pp_executor *ex = mpi_create(o, o->credits);
    if (!ex) { /* serving: the root creates a second executor when tuned */
        if (o->tuned)
            mpi_create(o, o->tuned);
        MPI_Finalize();
        return 0;
    }
    words w;
    make_words(&w, o->words);
    char *hex = malloc((size_t)w.n * 128);
    noop_rate(ex, 256, 1); /* warm */
    mc_hold hold;
    hold_root(ex, &hold);
    run_all("ppool-mpi", ex, o, &w, hex, true);
    release_root(ex, &hold, "ppool-mpi");
    run_all("ppool-mpi+root", ex, o, &w, hex, true);
    for (int q = 0; q < size; q++) {
        pp_mpi_rank_info ri;
        pp_mpi_rank_stats(ex, q, &ri);
        printf("{\"system\": \"ppool-mpi\", \"what\": \"rank\", \"rank\": %d, \"tasks\": %llu, "
               "\"map_chunks\": %llu}\n",
               q, (unsigned long long)ri.tasks, (unsigned long long)ri.map_chunks);
    }
    pp_executor_destroy(ex);
    if (o->tuned) { /* remote only again, with fixed credits */
        ex = mpi_create(o, o->tuned);
        noop_rate(ex, 256, 1);
        hold_root(ex, &hold);
        run_all("ppool-mpi-tuned", ex, o, &w, hex, true);
        release_root(ex, &hold, "ppool-mpi-tuned");
        pp_executor_destroy(ex);
    }
    /* One node, as many workers as ranks. */
    pp_config one;
    pp_config_init(&one);
    one.max_workers = size;
    one.pin = PP_PIN_NONE;
    pp_executor *lex;
    if (pp_executor_create(&lex, &one) == 0) {
        noop_rate(lex, 256, 1);
        run_all("ppool-1node", lex, o, &w, hex, true);
        pp_executor_destroy(lex);
    }
    free(hex);
    free(w.bytes);
    free(w.off);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}

/* ---- the driver ----------------------------------------------------------- */

enum { SYS_MPI, SYS_TUNED, SYS_ALL, SYS_ONE, SYS_PY, NSYS };
static const char *sys_name[NSYS] = {"ppool-mpi", "ppool-mpi-tuned", "ppool-mpi+root",
                                     "ppool-1node", "mpi4py"};

#define MAXCS 16
typedef struct result {
    double noop[NSYS], rt[NSYS];
    long cs[MAXCS];
    int ncs;
    double sweep[NSYS][MAXCS];
    dsum sum[NSYS][MAXCS];
    double map[NSYS][MAXCS]; /* pp_map (ppool systems only) */
    dsum msum[NSYS][MAXCS];
    unsigned long long rank_tasks[64], rank_chunks[64];
    int nranks;
    int hold_rank;
} result;

static double jnum(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

static unsigned long long ju64(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static int cs_index(result *R, long cs)
{
    for (int i = 0; i < R->ncs; i++)
        if (R->cs[i] == cs)
            return i;
    if (R->ncs == MAXCS)
        return -1;
    R->cs[R->ncs] = cs;
    return R->ncs++;
}

static bool run_job(result *R, const char *cmd)
{
    fprintf(stderr, "bench_mpi: %s\n", cmd);
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        int s = -1;
        for (int k = 0; k < NSYS; k++) {
            char tag[64];
            snprintf(tag, sizeof tag, "\"system\": \"%s\"", sys_name[k]);
            if (strstr(line, tag))
                s = k;
        }
        if (s < 0)
            continue;
        if (strstr(line, "\"noop\""))
            R->noop[s] = jnum(line, "tasks_per_s");
        else if (strstr(line, "\"roundtrip\""))
            R->rt[s] = jnum(line, "seconds");
        else if (strstr(line, "\"hold\""))
            R->hold_rank = (int)jnum(line, "rank");
        else if (strstr(line, "\"what\": \"rank\"") && R->nranks < 64) {
            R->rank_chunks[R->nranks] = ju64(line, "map_chunks");
            R->rank_tasks[R->nranks++] = ju64(line, "tasks");
        } else if (strstr(line, "\"sweep\"")) {
            int i = cs_index(R, (long)jnum(line, "chunksize"));
            if (i >= 0) {
                R->sweep[s][i] = jnum(line, "seconds");
                R->sum[s][i] = (dsum){ju64(line, "distinct"), ju64(line, "sum"), ju64(line, "xor")};
            }
        } else if (strstr(line, "\"what\": \"map\"")) {
            int i = cs_index(R, (long)jnum(line, "chunksize"));
            if (i >= 0) {
                R->map[s][i] = jnum(line, "seconds");
                R->msum[s][i] = (dsum){ju64(line, "distinct"), ju64(line, "sum"), ju64(line, "xor")};
            }
        }
    }
    return pclose(p) == 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_mpi [--np N] [--credits C] [--tuned-credits T] [--quick] [--words W]\n"
                    "                 [--noop K] [--runs R]\n"
                    "                 [--chunks a,b,c] [--out DIR] [--python PATH] [--mpirun PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    opts o = {.np = 3, .tuned = 64, .words = 20000, .noop = 5000, .roundtrip = 300, .runs = 3,
              .out = NULL, .python = "/usr/bin/python3", .mpirun = "mpirun"};
    snprintf(o.chunks, sizeof o.chunks, "1,10,100,1000");
    bool mpi = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--mpi"))
            mpi = true;
        else if (!strcmp(a, "--quick")) {
            o.words = 4000;
            o.noop = 2000;
            o.roundtrip = 100;
            o.runs = 1;
        } else if (!v)
            usage();
        else if (!strcmp(a, "--np") && ++i)
            o.np = atoi(v);
        else if (!strcmp(a, "--credits") && ++i)
            o.credits = (unsigned)atoi(v);
        else if (!strcmp(a, "--tuned-credits") && ++i)
            o.tuned = (unsigned)atoi(v);
        else if (!strcmp(a, "--words") && ++i)
            o.words = atol(v);
        else if (!strcmp(a, "--noop") && ++i)
            o.noop = atol(v);
        else if (!strcmp(a, "--roundtrip") && ++i)
            o.roundtrip = atol(v);
        else if (!strcmp(a, "--runs") && ++i)
            o.runs = atol(v);
        else if (!strcmp(a, "--chunks") && ++i)
            snprintf(o.chunks, sizeof o.chunks, "%s", v);
        else if (!strcmp(a, "--out") && ++i)
            o.out = v;
        else if (!strcmp(a, "--python") && ++i)
            o.python = v;
        else if (!strcmp(a, "--mpirun") && ++i)
            o.mpirun = v;
        else
            usage();
    }
    if (o.np < 2 || o.words < 1 || o.noop < 1 || o.runs < 1 || o.roundtrip < 1)
        usage();
    if (mpi)
        return mpi_main(argc, argv, &o);

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = 0;
    char args[512], cmd[8192];
    snprintf(args, sizeof args, "--words %ld --noop %ld --roundtrip %ld --runs %ld --chunks %s",
             o.words, o.noop, o.roundtrip, o.runs, o.chunks);
    char pargs[600];
    snprintf(pargs, sizeof pargs, "%s --credits %u --tuned-credits %u", args, o.credits, o.tuned);
    const char *flags = "--allow-run-as-root --oversubscribe --bind-to none";
    result R;
    memset(&R, 0, sizeof R);
    snprintf(cmd, sizeof cmd, "%s %s -np %d '%s' --mpi %s", o.mpirun, flags, o.np, self, pargs);
    bool ok = run_job(&R, cmd);
    snprintf(cmd, sizeof cmd, "%s %s -np %d %s -m mpi4py.futures %s/bench/peer_mpi.py %s",
             o.mpirun, flags, o.np, o.python, PPOOL_SOURCE_DIR, args);
    bool py = run_job(&R, cmd);

    printf("\nbench_mpi: %d MPI ranks on this machine; ppool: 1 worker per rank; mpi4py: %d "
           "workers (rank 0 is its client)\n", o.np, o.np - 1);
    printf("  ppool-mpi       tasks run on the other ranks only (the root node's worker is held\n"
           "                  busy meanwhile; it ran on rank %d), as mpi4py's do\n", R.hold_rank);
    printf("  ppool-mpi-tuned the same with fixed credits %u per rank (0: not run): tasks wait\n"
           "                  shipped at a rank, not cancellable (the trade-off)\n", o.tuned);
    printf("  ppool-mpi+root  the root's node works too (the default)\n");
    printf("  credits per rank: %u%s\n", o.credits,
           o.credits ? "" : " (adaptive, the default: its workers, plus what covers the round\n"
                            "                    trip when tasks are short against it; docs/mpi.md)");
    printf("  ppool-1node     an ordinary pp_executor with %d workers\n", o.np);
    printf("NOTE: one box: every rank shares these cores and the network is shared memory;\n"
           "      this measures the protocol's cost, not scaling across nodes.\n\n");
    printf("%-24s", "");
    for (int s = 0; s < NSYS; s++)
        printf(" %15s", sys_name[s]);
    printf(" %11s %12s\n", "mpi/mpi4py", "tuned/mpi4py");
    printf("%-24s", "no-op tasks/s");
    for (int s = 0; s < NSYS; s++)
        printf(" %15.0f", R.noop[s]);
    double py_noop = R.noop[SYS_PY] > 0 ? R.noop[SYS_PY] : 0;
    printf(" %10.1fx %11.1fx\n", py_noop ? R.noop[SYS_MPI] / py_noop : 0,
           py_noop ? R.noop[SYS_TUNED] / py_noop : 0);
    printf("%-24s", "round trip (us)");
    for (int s = 0; s < NSYS; s++)
        printf(" %15.1f", R.rt[s] * 1e6);
    printf(" %10.1fx %11.1fx\n", R.rt[SYS_MPI] > 0 ? R.rt[SYS_PY] / R.rt[SYS_MPI] : 0,
           R.rt[SYS_TUNED] > 0 ? R.rt[SYS_PY] / R.rt[SYS_TUNED] : 0);
    bool sums_ok = true, faster = true, tuned_faster = o.tuned > 0;
    for (int i = 0; i < R.ncs; i++) {
        char label[64];
        snprintf(label, sizeof label, "word-hash cs=%ld (s)", R.cs[i]);
        printf("%-24s", label);
        for (int s = 0; s < NSYS; s++)
            printf(" %15.4f", R.sweep[s][i]);
        printf(" %10.1fx %11.1fx\n",
               R.sweep[SYS_MPI][i] > 0 ? R.sweep[SYS_PY][i] / R.sweep[SYS_MPI][i] : 0,
               R.sweep[SYS_TUNED][i] > 0 ? R.sweep[SYS_PY][i] / R.sweep[SYS_TUNED][i] : 0);
        for (int s = 1; s < NSYS; s++)
            if (R.sum[s][i].distinct && (R.sum[s][i].distinct != R.sum[0][i].distinct ||
                                         R.sum[s][i].sum != R.sum[0][i].sum ||
                                         R.sum[s][i].xr != R.sum[0][i].xr))
                sums_ok = false;
        if (!(R.sweep[SYS_MPI][i] > 0 && R.sweep[SYS_MPI][i] < R.sweep[SYS_PY][i]))
            faster = false;
        if (!(R.sweep[SYS_TUNED][i] > 0 && R.sweep[SYS_TUNED][i] < R.sweep[SYS_PY][i]))
            tuned_faster = false;
    }
    for (int i = 0; i < R.ncs; i++) {
        char label[64];
        snprintf(label, sizeof label, "word-hash map cs=%ld (s)", R.cs[i]);
        printf("%-24s", label);
        for (int s = 0; s < NSYS; s++)
            printf(" %15.4f", s == SYS_PY ? R.sweep[s][i] : R.map[s][i]);
        printf(" %10.1fx %11.1fx\n", R.map[SYS_MPI][i] > 0 ? R.sweep[SYS_PY][i] / R.map[SYS_MPI][i] : 0,
               R.map[SYS_TUNED][i] > 0 ? R.sweep[SYS_PY][i] / R.map[SYS_TUNED][i] : 0);
        for (int s = 0; s < SYS_PY; s++)
            if (R.msum[s][i].distinct && (R.msum[s][i].distinct != R.sum[0][i].distinct ||
                                          R.msum[s][i].sum != R.sum[0][i].sum ||
                                          R.msum[s][i].xr != R.sum[0][i].xr))
                sums_ok = false;
    }
    printf("(x/mpi4py: how many times ppool-mpi (default credits) or ppool-mpi-tuned beats\n"
           " mpi4py; > 1 = ppool faster; round trip: mpi4py's time / ppool's)\n");
    printf("(map rows: ppool's pp_map, chunks shipped whole to the ranks; the mpi4py column\n"
           " repeats its one-future-per-chunk sweep, which is what its executor.map does)\n");
    printf("tasks per rank (ppool-mpi and ppool-mpi+root, all runs; a map lane is one task):");
    for (int q = 0; q < R.nranks; q++)
        printf(" %d:%llu", q, R.rank_tasks[q]);
    printf("\nmap chunks answered per rank (ppool-mpi and ppool-mpi+root):");
    for (int q = 0; q < R.nranks; q++)
        printf(" %d:%llu", q, R.rank_chunks[q]);
    printf("\n\ntargets use ppool-mpi: remote only, default (adaptive) credits; ppool-mpi-tuned\n"
           "(credits %u) is shown beside them\n", o.tuned);
    printf("target: no-op throughput (ppool-mpi, remote only) >= 10x mpi4py: %s (%.1fx; "
           "tuned: %s, %.1fx)\n",
           py_noop && R.noop[SYS_MPI] >= 10 * py_noop ? "MET" : "MISSED",
           py_noop ? R.noop[SYS_MPI] / py_noop : 0,
           py_noop && R.noop[SYS_TUNED] >= 10 * py_noop ? "MET" : "MISSED",
           py_noop ? R.noop[SYS_TUNED] / py_noop : 0);
    printf("target: ppool-mpi faster than mpi4py at every chunksize: %s (tuned: %s)\n",
           faster && py ? "MET" : "MISSED", tuned_faster && py ? "MET" : "MISSED");
    printf("round trip (remote, one task at a time): ppool-mpi %.1f us, mpi4py %.1f us: %s\n",
           R.rt[SYS_MPI] * 1e6, R.rt[SYS_PY] * 1e6,
           R.rt[SYS_MPI] > 0 && R.rt[SYS_PY] > 0 && R.rt[SYS_MPI] < R.rt[SYS_PY] ? "ppool faster"
                                                                            : "ppool NOT faster");
    printf("digest sets agree across systems: %s\n", sums_ok ? "yes" : "NO");
    if (o.out) {
        char path[4096];
        snprintf(path, sizeof path, "mkdir -p '%s'", o.out);
        if (system(path) != 0)
            return 2;
        snprintf(path, sizeof path, "%s/mpi.csv", o.out);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "what,chunksize,ppool_mpi,ppool_mpi_tuned,ppool_mpi_root,ppool_1node,mpi4py\n");
            fprintf(f, "noop_tasks_per_s,,%.1f,%.1f,%.1f,%.1f,%.1f\n", R.noop[0], R.noop[1],
                    R.noop[2], R.noop[3], R.noop[4]);
            fprintf(f, "roundtrip_s,,%.9f,%.9f,%.9f,%.9f,%.9f\n", R.rt[0], R.rt[1], R.rt[2],
                    R.rt[3], R.rt[4]);
            for (int i = 0; i < R.ncs; i++)
                fprintf(f, "wordhash_s,%ld,%.6f,%.6f,%.6f,%.6f,%.6f\n", R.cs[i], R.sweep[0][i],
                        R.sweep[1][i], R.sweep[2][i], R.sweep[3][i], R.sweep[4][i]);
            for (int i = 0; i < R.ncs; i++) /* mpi4py: its per-chunk sweep again */
                fprintf(f, "map_wordhash_s,%ld,%.6f,%.6f,%.6f,%.6f,%.6f\n", R.cs[i], R.map[0][i],
                        R.map[1][i], R.map[2][i], R.map[3][i], R.sweep[4][i]);
            fclose(f);
            printf("wrote %s\n", path);
        }
        snprintf(cmd, sizeof cmd,
                 "command -v gnuplot >/dev/null && gnuplot -e \"set terminal png size 800,500; "
                 "set output '%s/mpi.png'; set datafile separator ','; set logscale xy; "
                 "set xlabel 'chunksize (words per task)'; set ylabel 'seconds'; "
                 "set title 'word-hash, %ld words, %d ranks on one machine (protocol cost)'; "
                 "plot '< grep ^wordhash %s/mpi.csv' using 2:3 with linespoints title 'ppool-mpi', "
                 "'' using 2:4 with linespoints title 'ppool-mpi-tuned', "
                 "'' using 2:5 with linespoints title 'ppool-mpi+root', "
                 "'' using 2:6 with linespoints title 'ppool-1node', "
                 "'' using 2:7 with linespoints title 'mpi4py', "
                 "'< grep ^map_ %s/mpi.csv' using 2:3 with linespoints title 'ppool-mpi map', "
                 "'' using 2:5 with linespoints title 'ppool-mpi+root map', "
                 "'' using 2:6 with linespoints title 'ppool-1node map'\" && echo wrote %s/mpi.png",
                 o.out, o.words, o.np, o.out, o.out, o.out);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_mpi: no PNG (gnuplot missing or failed)\n");
    }
    return ok && sums_ok ? 0 : 1;
}
