/*
 * test_mpi_core — across 3 ranks: results and exceptions byte-identical to a
 * single-node run (inline, arena and beyond-eager sizes), the rank in
 * pp_exception, pp_wait, as_completed, callbacks, stats (total and per
 * rank), workers without the MPI launcher's environment, pp_mpi_share
 * (a block read in place on every rank; unknown and withdrawn handles), and
 * pp_map across ranks (orders, sizes, errors, early end, an endless
 * generator's memory, a map run on the other ranks only).
 * Then with credits 4 per rank (1 worker each: tasks travel several per TASK
 * message, outcomes several per RES message): many tasks of mixed sizes and
 * failures byte-identical and exactly counted, a map that opens at most
 * workers + 1 lanes per rank, kill and timeout of tasks that travelled in a
 * batch (some queued at their rank), shutdown's cancel of tasks queued at a
 * rank.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_check.h"

extern char **environ;

typedef struct job {
    uint64_t seed;
    uint64_t size;   /* result bytes */
    int32_t raise;   /* 0: result; >0: pp_task_raise(code); <0: return it */
    int32_t ms;      /* sleep first */
} job;

static int t_job(pp_task *t)
{
    const job *j = pp_task_arg(t, NULL);
    if (j->ms)
        usleep((useconds_t)j->ms * 1000);
    if (j->raise > 0)
        return pp_task_raise(t, j->raise, "job %llu raised %d", (unsigned long long)j->seed,
                             j->raise);
    if (j->raise < 0)
        return j->raise;
    unsigned char *out = pp_task_result(t, j->size);
    if (!out && j->size)
        return 99;
    uint64_t x = j->seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint64_t i = 0; i < j->size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (unsigned char)x;
    }
    return 0;
}

/* Counts the MPI launcher's variables in the worker's environment. */
static int t_mpi_env(pp_task *t)
{
    usleep(5000); /* long enough for every rank to take some */
    int n = 0;
    for (char **e = environ; *e; e++)
        n += !strncmp(*e, "OMPI_", 5) || !strncmp(*e, "PMIX_", 5) || !strncmp(*e, "PMI_", 4);
    return pp_task_set_result(t, &n, sizeof n);
}

/* What a task found under a shared handle (pp_task_shared). */
typedef struct shared_seen {
    uint64_t size, sum;
    int32_t found, in_segment;
} shared_seen;

static int t_shared(pp_task *t)
{
    uint64_t h = *(const uint64_t *)pp_task_arg(t, NULL);
    shared_seen s = {0};
    size_t n = 99;
    const unsigned char *p = pp_task_shared(t, h, &n);
    s.found = p != NULL;
    s.size = n;
    s.in_segment = p && mc_in_segment(p);
    for (size_t i = 0; p && i < n; i++)
        s.sum = s.sum * 31 + p[i];
    usleep(3000); /* long enough for every rank to take some */
    return pp_task_set_result(t, &s, sizeof s);
}

/* Tasks reading handle @h: how many found it with @size bytes summing to
 * @sum in the segment (in place), and on which ranks (bit mask). */
static int shared_round(pp_executor *ex, uint64_t h, uint64_t size, uint64_t sum, int n,
                        int *ranks)
{
    pp_future *fs[24];
    int ok = 0;
    *ranks = 0;
    for (int i = 0; i < n; i++)
        CHECK_EQ(pp_submit(ex, t_shared, &h, sizeof h, &fs[i]), 0);
    for (int i = 0; i < n; i++) {
        const shared_seen *s = NULL;
        CHECK_EQ(pp_future_result(fs[i], PP_FOREVER, (const void **)&s, NULL), 0);
        pp_exception e;
        pp_future_exception(fs[i], 0, &e);
        if (s && s->found) {
            CHECK(s->in_segment);
            CHECK_EQ(s->size, size);
            CHECK_EQ(s->sum, sum);
            ok++;
        } else if (s) {
            CHECK_EQ(s->size, 0);
        }
        if (e.rank >= 0 && e.rank < 3)
            *ranks |= 1 << e.rank;
        pp_future_release(fs[i]);
    }
    return ok;
}

/* pp_mpi_share: one block read in place on every rank; unknown handles and
 * a withdrawn one find nothing; on an ordinary executor it works too. */
static void shared_blocks(pp_executor *ex, pp_executor *one_node)
{
    unsigned char data[3000];
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (unsigned char)(i * 7 + 1);
        sum = sum * 31 + data[i];
    }
    uint64_t h = 0;
    CHECK_EQ(pp_mpi_share(ex, data, sizeof data, &h), 0);
    CHECK(h != 0);
    int ranks = 0, all = 0;
    for (int round = 0; round < 5 && all != 7; round++) {
        CHECK_EQ(shared_round(ex, h, sizeof data, sum, 12, &ranks), 12);
        all |= ranks;
    }
    CHECK_EQ(all, 7); /* read in place on every rank */
    CHECK_EQ(shared_round(ex, h + 256, 0, 0, 9, &ranks), 0);  /* never made */
    CHECK_EQ(shared_round(ex, 0, 0, 0, 3, &ranks), 0);
    uint64_t hx = 1;
    CHECK_EQ(pp_mpi_share(ex, NULL, 1, &hx), -EINVAL);
    CHECK_EQ(hx, 0); /* cleared on error */
    CHECK_EQ(pp_mpi_share(ex, data, 0, &hx), -EINVAL);
    CHECK_EQ(pp_mpi_share(ex, data, (size_t)INT_MAX + 1, &hx), PP_ETOOBIG);
    CHECK_EQ(pp_mpi_unshare(ex, h + 256), -ENOENT);
    /* A second block beside the first, then the first withdrawn. */
    uint64_t h2 = 0;
    CHECK_EQ(pp_mpi_share(ex, data, 100, &h2), 0);
    CHECK(h2 != 0);
    uint64_t sum100 = 0;
    for (size_t i = 0; i < 100; i++)
        sum100 = sum100 * 31 + data[i];
    CHECK_EQ(shared_round(ex, h2, 100, sum100, 12, &ranks), 12);
    CHECK_EQ(pp_mpi_unshare(ex, h2), 0);
    CHECK_EQ(pp_mpi_unshare(ex, h2), -ENOENT);
    CHECK_EQ(shared_round(ex, h2, 0, 0, 12, &ranks), 0); /* gone on every rank */
    CHECK_EQ(shared_round(ex, h, sizeof data, sum, 6, &ranks), 6);

    /* The same calls on one node. */
    uint64_t hl = 0;
    CHECK_EQ(pp_mpi_share(one_node, data, sizeof data, &hl), 0);
    CHECK_EQ(shared_round(one_node, hl, sizeof data, sum, 3, &ranks), 3);
    CHECK_EQ(pp_mpi_unshare(one_node, hl), 0);
    CHECK_EQ(shared_round(one_node, hl, 0, 0, 3, &ranks), 0);
    CHECK_EQ(pp_mpi_unshare(ex, h), 0);
}

/* ---- pp_map across ranks ------------------------------------------------ */

/* Item i fails (PP_ETASK, code 77) when ctx holds i. */
static int t_cube(pp_map_item *it)
{
    if (it->ctx_size == sizeof(size_t) && *(const size_t *)it->ctx == it->index)
        return pp_map_raise(it, 77, "item %zu raised", it->index);
    long x = *(const long *)it->in[0];
    *(long *)it->out = x * x * x;
    return 0;
}

/* Variable-size: in[0] a word, in[1] a long; the result is the word
 * repeated (index % 5) times followed by the long's low byte, at most
 * out_cap bytes. */
static size_t var_expect(const char *w, size_t wl, long v, size_t index, char *out)
{
    size_t n = 0;
    for (size_t r = 0; r < index % 5; r++)
        for (size_t k = 0; k < wl; k++)
            out[n++] = w[k];
    out[n++] = (char)v;
    return n;
}

static int t_var(pp_map_item *it)
{
    it->out_size = var_expect(it->in[0], it->in_size[0], *(const long *)it->in[1], it->index,
                              it->out);
    return 0;
}

/* The remote ranks' map chunk counters. */
static uint64_t remote_chunks(pp_executor *ex, uint64_t per[3])
{
    uint64_t sum = 0;
    for (int q = 0; q < 3; q++) {
        pp_mpi_rank_info ri;
        CHECK_EQ(pp_mpi_rank_stats(ex, q, &ri), 0);
        per[q] = ri.map_chunks;
        sum += ri.map_chunks;
    }
    return sum;
}

/* All at once, fixed-size results, chunksizes 1, 7, 1000: in order and
 * identical to the values computed here (chunks on the root's node and the
 * ranks, as timing decides). */
static void map_fixed(pp_executor *ex)
{
    enum { N = 6000 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i - N / 2;
    static const size_t css[] = {1, 7, 1000};
    static const size_t ns[] = {600, N, N};
    for (int k = 0; k < 3; k++) {
        memset(out, 0x5a, sizeof out);
        pp_map_input mi = pp_map_array(in, ns[k], sizeof in[0]);
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.out_size = sizeof out[0];
        o.chunksize = css[k];
        pp_map_status st;
        CHECK_EQ(pp_map(ex, t_cube, &mi, 1, out, ns[k], NULL, &o, &st), 0);
        CHECK_EQ(st.done, ns[k]);
        long bad = 0;
        for (size_t i = 0; i < ns[k]; i++)
            bad += out[i] != in[i] * in[i] * in[i];
        CHECK_EQ(bad, 0);
    }
    /* Which rank ran what depends on timing here (the root node's runner
     * is the nearest): map_remote_only checks the ranks deterministically. */
}

/* Variable-size results from variable and fixed inputs (packed words in
 * client memory, longs), through the iterator with a buffersize. */
static void map_variable(pp_executor *ex)
{
    enum { N = 3000 };
    static char words[N * 12];
    static size_t offs[N + 1];
    static long vals[N];
    size_t pos = 0;
    for (size_t i = 0; i < N; i++) {
        offs[i] = pos;
        size_t wl = 1 + i % 11;
        for (size_t k = 0; k < wl; k++)
            words[pos++] = (char)('a' + (i * 7 + k) % 26);
        vals[i] = (long)(i * 31);
    }
    offs[N] = pos;
    pp_map_input in[2] = {pp_map_packed(words, offs, N), pp_map_array(vals, N, sizeof vals[0])};
    static const size_t css[] = {1, 7, 1000};
    for (int c = 0; c < 3; c++) {
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.out_size = 64;
        o.out_variable = true;
        o.chunksize = css[c];
        o.buffersize = 5;
        pp_map_iter *m = NULL;
        CHECK_EQ(pp_map_begin(&m, ex, t_var, in, 2, &o), 0);
        if (!m)
            return;
        size_t n = 0, bad = 0;
        const void *r;
        size_t rs;
        int rc;
        size_t lim = css[c] == 1 ? 200 : N;
        while (n < lim && (rc = pp_map_next(m, &r, &rs)) == 0) {
            char want[64];
            size_t wn = var_expect(words + offs[n], offs[n + 1] - offs[n], vals[n], n, want);
            bad += rs != wn || memcmp(r, want, wn) != 0;
            n++;
        }
        if (n == N)
            CHECK_EQ(pp_map_next(m, &r, &rs), -ENOENT);
        CHECK_EQ(n, lim);
        CHECK_EQ(bad, 0);
        pp_map_status st;
        pp_map_get_status(m, &st);
        CHECK(st.max_in_flight <= 5);
        CHECK_EQ(pp_map_end(m), 0);
    }
}

/* An item raising at position K: the map fails at K with its code and
 * message, the K items before it delivered; ended early, a map cancels what
 * was not claimed (status counts at most the window past the reader). */
static void map_errors(pp_executor *ex)
{
    enum { N = 4000, K = 2345 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof out[0];
    o.chunksize = 7;
    size_t k = K;
    o.ctx = &k;
    o.ctx_size = sizeof k;
    pp_map_status st;
    CHECK_EQ(pp_map(ex, t_cube, &mi, 1, out, N, NULL, &o, &st), PP_ETASK);
    CHECK_EQ(st.done, K);
    CHECK_EQ(st.code, 77);
    CHECK(strstr(st.message, "item 2345 raised") != NULL);
    long bad = 0;
    for (long i = 0; i < K; i++)
        bad += out[i] != i * i * i;
    CHECK_EQ(bad, 0);

    /* Ended early: read 50 results of 4000 at chunksize 10, buffersize 8. */
    o.ctx = NULL;
    o.ctx_size = 0;
    o.chunksize = 10;
    o.buffersize = 8;
    pp_map_iter *m = NULL;
    CHECK_EQ(pp_map_begin(&m, ex, t_cube, &mi, 1, &o), 0);
    if (!m)
        return;
    for (long i = 0; i < 50; i++) {
        const void *r;
        CHECK_EQ(pp_map_next(m, &r, NULL), 0);
        CHECK(r && *(const long *)r == i * i * i);
    }
    pp_map_get_status(m, &st);
    CHECK(st.chunks <= 5 + 8 + 1);
    CHECK_EQ(pp_map_end(m), 0);
}

/* An endless generator with buffersize: the root's memory stays bounded by
 * the window and the ranks' credits however many items flow. */
static int gen_endless(void *user, size_t index, const void **item, size_t *size)
{
    long *cell = user;
    *cell = (long)(index % 1000);
    *item = cell;
    *size = sizeof *cell;
    return 1;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void map_endless(pp_executor *ex)
{
    long cell = 0;
    pp_map_input mi = pp_map_generator(gen_endless, &cell);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof(long);
    o.chunksize = 50;
    o.buffersize = 16;
    pp_map_iter *m = NULL;
    CHECK_EQ(pp_map_begin(&m, ex, t_cube, &mi, 1, &o), 0);
    if (!m)
        return;
    uint64_t before[3], after[3];
    remote_chunks(ex, before);
    enum { WARM = 80000, TOTAL = 240000 }; /* the staging ring (1 MiB) wraps before WARM */
    long rss0 = 0, bad = 0;
    for (size_t i = 0; i < TOTAL; i++) {
        const void *r;
        if (pp_map_next(m, &r, NULL) != 0) {
            CHECK(0);
            break;
        }
        long x = (long)(i % 1000);
        bad += *(const long *)r != x * x * x;
        if (i == WARM)
            rss0 = rss_kib();
    }
    long grown = rss_kib() - rss0;
    remote_chunks(ex, after);
    if (getenv("PPOOL_TEST_VERBOSE"))
        fprintf(stderr, "map_endless: VmRSS %ld KiB, grew %ld KiB over %d items; chunks on "
                        "ranks 1, 2: %llu, %llu\n", rss0, grown, TOTAL - WARM,
                (unsigned long long)(after[1] - before[1]), (unsigned long long)(after[2] - before[2]));
    pp_map_status st;
    pp_map_get_status(m, &st);
    CHECK_EQ(bad, 0);
    CHECK(st.max_in_flight <= 16);
    /* 160,000 items (1.3 MB of inputs and as much of results) flowed after
     * the first measure: growth far below that means nothing accumulates. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* ASan's quarantine keeps freed blocks (a chunk's message buffers) out
     * of reuse, and TSan's allocator and shadow memory grow with every
     * access: RSS grows with the traffic, not with what is kept. */
    (void)grown;
#else
    if (grown > 512)
        fprintf(stderr, "map_endless: VmRSS grew %ld KiB\n", grown);
    CHECK(grown <= 512);
#endif
    CHECK_EQ(pp_map_end(m), 0);
}

/* Every chunk on the other ranks (the root node's worker held): fixed and
 * variable results (map_variable) in order, an item error at its position, the chunk
 * counts per rank adding up. */
static void map_remote_only(pp_executor *ex)
{
    mc_hold hold;
    CHECK(mc_hold_root(ex, &hold));
    enum { N = 3000, K = 1111 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = 3 * i + 1;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof out[0];
    o.chunksize = 7;
    uint64_t before[3], after[3];
    remote_chunks(ex, before);
    pp_map_status st;
    CHECK_EQ(pp_map(ex, t_cube, &mi, 1, out, N, NULL, &o, &st), 0);
    remote_chunks(ex, after);
    long bad = 0;
    for (long i = 0; i < N; i++)
        bad += out[i] != in[i] * in[i] * in[i];
    CHECK_EQ(bad, 0);
    CHECK_EQ(after[1] - before[1] + after[2] - before[2], (N + 6) / 7); /* all remote */
    CHECK(after[1] > before[1] && after[2] > before[2]);
    size_t k = K;
    o.ctx = &k;
    o.ctx_size = sizeof k;
    CHECK_EQ(pp_map(ex, t_cube, &mi, 1, out, N, NULL, &o, &st), PP_ETASK);
    CHECK_EQ(st.done, K);
    CHECK_EQ(st.code, 77);
    CHECK(strstr(st.message, "item 1111 raised") != NULL);
    CHECK(st.pid > 0 && st.pid != getpid());
    bad = 0;
    for (long i = 0; i < K; i++)
        bad += out[i] != in[i] * in[i] * in[i];
    CHECK_EQ(bad, 0);
    map_variable(ex); /* variable sizes, packed inputs, the iterator */
    CHECK(mc_release_root(ex, &hold));
}

#define NJOBS 48
static const uint64_t sizes[] = {0, 8, 150, 300, 5000, 100000, 300000};

static job job_of(int i)
{
    job j = {.seed = (uint64_t)i + 1, .size = sizes[i % 7], .raise = 0, .ms = 1};
    if (i % 11 == 5)
        j.raise = 7 + i;
    if (i % 13 == 6)
        j.raise = -3;
    return j;
}

typedef struct outcome {
    int err, code, how;
    char msg[PP_MESSAGE_MAX + 1];
    size_t size;
    unsigned char *data;
    int rank;
} outcome;

static void collect(pp_future *f, outcome *o)
{
    pp_exception e;
    CHECK_EQ(pp_future_exception(f, PP_FOREVER, &e), 0);
    o->err = e.error;
    o->code = e.code;
    o->how = (int)e.how;
    o->rank = e.rank;
    snprintf(o->msg, sizeof o->msg, "%s", e.message);
    o->data = NULL;
    o->size = 0;
    if (!e.error) {
        const void *p;
        CHECK_EQ(pp_future_result(f, 0, &p, &o->size), 0);
        o->data = malloc(o->size ? o->size : 1);
        memcpy(o->data, p, o->size);
    }
}

static atomic_int callbacks_run;
static int on_done(pp_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&callbacks_run, 1);
    return 0;
}

static void run_jobs(pp_executor *ex, outcome *out, bool with_callbacks)
{
    pp_future *fs[NJOBS];
    for (int i = 0; i < NJOBS; i++) {
        job j = job_of(i);
        CHECK_EQ(pp_submit(ex, t_job, &j, sizeof j, &fs[i]), 0);
        if (with_callbacks)
            CHECK_EQ(pp_future_add_done_callback(fs[i], on_done, NULL), 0);
    }
    /* as_completed yields every future once. */
    pp_as_completed *it = NULL;
    CHECK_EQ(pp_as_completed_begin(&it, fs, NJOBS, PP_FOREVER), 0);
    int seen = 0;
    pp_future *f;
    while (pp_as_completed_next(it, &f) == 0)
        seen++;
    pp_as_completed_end(it);
    CHECK_EQ(seen, NJOBS);
    CHECK_EQ(pp_wait(fs, NJOBS, PP_FOREVER, PP_ALL_COMPLETED, NULL), NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        collect(fs[i], &out[i]);
        pp_future_release(fs[i]);
    }
}

/* Sleeps until killed (or 30 s). */
static int t_stubborn(pp_task *t)
{
    (void)t;
    sleep(30);
    return 0;
}

#define NMANY 400
/* Job i of the batch test: mostly small and inline, every 50th beyond the
 * eager limit (its result follows as RES_DATA inside a batch), every 7th
 * failing (raise or exit code) beside ones that succeed. */
static job many_of(int i)
{
    static const uint64_t msz[] = {0, 8, 100, 600, 3000};
    job j = {.seed = (uint64_t)i * 31 + 7, .size = msz[i % 5], .raise = 0, .ms = 0};
    if (i % 50 == 25)
        j.size = 100000;
    if (i % 7 == 3)
        j.raise = i % 2 ? 5 : -4;
    return j;
}

static void run_many(pp_executor *ex, outcome *out)
{
    static pp_future *fs[NMANY];
    for (int i = 0; i < NMANY; i++) {
        job j = many_of(i);
        CHECK_EQ(pp_submit(ex, t_job, &j, sizeof j, &fs[i]), 0);
    }
    for (int i = 0; i < NMANY; i++) {
        collect(fs[i], &out[i]);
        pp_future_release(fs[i]);
    }
}

/* A slow item (2 ms): the cube of its input. */
static int t_slow_cube(pp_map_item *it)
{
    usleep(2000);
    long x = *(const long *)it->in[0];
    *(long *)it->out = x * x * x;
    return 0;
}

/* Credits 4 per rank, 1 worker each: a map opens at most w + 1 = 2 lanes
 * on a rank (not one per credit), so a rank never holds more than 2 of the
 * root's flights while only the map runs; results in order, and the
 * ranks' lanes count as tasks (one each) and their chunks as map_chunks. */
static void map_lane_bound(pp_executor *ex)
{
    enum { N = 60 };
    static long in[N];
    for (long i = 0; i < N; i++)
        in[i] = i + 1;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof(long);
    o.chunksize = 1;
    uint64_t before[3], after[3];
    remote_chunks(ex, before);
    pp_map_iter *m = NULL;
    CHECK_EQ(pp_map_begin(&m, ex, t_slow_cube, &mi, 1, &o), 0);
    if (!m)
        return;
    uint64_t most = 0;
    long bad = 0;
    for (long i = 0; i < N; i++) {
        const void *r;
        CHECK_EQ(pp_map_next(m, &r, NULL), 0);
        bad += !r || *(const long *)r != in[i] * in[i] * in[i];
        for (int q = 1; q < 3; q++) {
            pp_mpi_rank_info ri;
            CHECK_EQ(pp_mpi_rank_stats(ex, q, &ri), 0);
            CHECK_EQ(ri.credits, 4);
            most = ri.in_flight > most ? ri.in_flight : most;
        }
    }
    CHECK_EQ(pp_map_end(m), 0);
    CHECK_EQ(bad, 0);
    remote_chunks(ex, after);
    if (getenv("PPOOL_TEST_VERBOSE"))
        fprintf(stderr, "map_lane_bound: most flights on a rank %llu; chunks on ranks 1, 2: "
                        "%llu, %llu\n", (unsigned long long)most,
                (unsigned long long)(after[1] - before[1]),
                (unsigned long long)(after[2] - before[2]));
    CHECK(most <= 2);
    CHECK(after[1] - before[1] + after[2] - before[2] <= N);
    /* The lanes close once idle (200 us): the ranks' credits are free
     * again for the tasks that follow. */
    double until = mc_now_s() + 5;
    for (int q = 1; q < 3; q++) {
        pp_mpi_rank_info ri;
        while (pp_mpi_rank_stats(ex, q, &ri) == 0 && ri.in_flight && mc_now_s() < until)
            usleep(1000);
        CHECK_EQ(ri.in_flight, 0);
    }
}

/* Credits 4 per rank: batches both ways; results byte-identical to one
 * node, every task counted once; kill and timeout of batched tasks. */
static void batches(pp_executor *ex)
{
    static outcome multi[NMANY], single[NMANY];
    /* The root's worker held: all cross (left free on a loaded machine, it
     * may take all of them before the comm thread ships one). Counts are
     * taken from here; the blocker itself adds one completed task. */
    mc_hold hold;
    CHECK(mc_hold_root(ex, &hold));
    uint64_t tasks0 = 0, failed0 = 0, completed0 = 0;
    for (int q = 0; q < 3; q++) {
        pp_mpi_rank_info rs;
        CHECK_EQ(pp_mpi_rank_stats(ex, q, &rs), 0);
        tasks0 += rs.tasks;
        failed0 += q ? rs.failed : 0;
    }
    pp_stats st0;
    CHECK(pp_executor_stats(ex, &st0, NULL, 0) >= 1);
    completed0 = st0.completed;
    run_many(ex, multi);
    CHECK(mc_release_root(ex, &hold));
    pp_config one;
    pp_config_init(&one);
    one.max_workers = 1;
    one.pin = PP_PIN_NONE;
    pp_executor *lex = NULL;
    CHECK_EQ(pp_executor_create(&lex, &one), 0);
    run_many(lex, single);
    pp_executor_destroy(lex);
    int bad = 0, remote = 0, failed = 0;
    for (int i = 0; i < NMANY; i++) {
        bad += multi[i].err != single[i].err || multi[i].code != single[i].code ||
               multi[i].how != single[i].how || strcmp(multi[i].msg, single[i].msg) != 0 ||
               multi[i].size != single[i].size ||
               (multi[i].size && memcmp(multi[i].data, single[i].data, multi[i].size) != 0);
        remote += multi[i].rank != 0;
        failed += multi[i].err != 0;
        free(multi[i].data);
        free(single[i].data);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(remote, NMANY);
    CHECK(failed > 0 && failed < NMANY);
    uint64_t per_rank = 0, per_rank_failed = 0;
    for (int q = 0; q < 3; q++) {
        pp_mpi_rank_info rs;
        CHECK_EQ(pp_mpi_rank_stats(ex, q, &rs), 0);
        CHECK_EQ(rs.in_flight, 0);
        if (q) {
            CHECK_EQ(rs.credits, 4);
            per_rank_failed += rs.failed;
        }
        per_rank += rs.tasks;
    }
    CHECK_EQ(per_rank - tasks0, NMANY + 1);
    pp_stats st;
    CHECK(pp_executor_stats(ex, &st, NULL, 0) >= 1);
    CHECK_EQ(st.completed - completed0 + st.failed - st0.failed, NMANY + 1);
    CHECK_EQ(st.failed - st0.failed, failed);
    CHECK(per_rank_failed - failed0 <= (uint64_t)failed);
    map_lane_bound(ex);

    /* 1 + 4 + 4 stubborn tasks: all RUNNING at the root (each remote rank
     * runs one and holds three queued), then all killed. */
    enum { NK = 9 };
    pp_future *fs[NK];
    for (int i = 0; i < NK; i++)
        CHECK_EQ(pp_submit(ex, t_stubborn, NULL, 0, &fs[i]), 0);
    CHECK(mc_wait_running(fs, NK, 10));
    double t0 = mc_now_s();
    for (int i = 0; i < NK; i++)
        CHECK_EQ(pp_future_kill(fs[i], 0.05), 0);
    int ranks = 0;
    for (int i = 0; i < NK; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, PP_EKILLED);
        ranks |= 1 << e.rank;
        pp_future_release(fs[i]);
    }
    CHECK_EQ(ranks, 7);
    CHECK(mc_now_s() - t0 < 10);

    /* The same with a timeout that travels with each task. */
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = 0.1;
    o.kill_grace = 0.05;
    t0 = mc_now_s();
    for (int i = 0; i < NK; i++)
        CHECK_EQ(pp_submit_ex(ex, t_stubborn, NULL, 0, &o, &fs[i]), 0);
    ranks = 0;
    for (int i = 0; i < NK; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, PP_EKILLED);
        ranks |= 1 << e.rank;
        pp_future_release(fs[i]);
    }
    CHECK(ranks & 6);
    CHECK(mc_now_s() - t0 < 10);

    /* shutdown(cancel_futures) with tasks waiting at the ranks: each remote
     * rank cancels its three queued ones, and the one its worker has not
     * started yet, if so (it confirmed they did not start): reported
     * cancelled at the root; the root's own runs to its end. */
    for (int i = 0; i < NK; i++) {
        job j = {.seed = 1, .size = 8, .raise = 0, .ms = 500};
        CHECK_EQ(pp_submit(ex, t_job, &j, sizeof j, &fs[i]), 0);
    }
    CHECK(mc_wait_running(fs, NK, 10));
    CHECK_EQ(pp_shutdown(ex, true, true), 0);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < NK; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], 0, &e), 0);
        ok += e.error == 0;
        cancelled += pp_future_cancelled(fs[i]);
        pp_future_release(fs[i]);
    }
    CHECK_EQ(ok + cancelled, NK);
    CHECK(ok >= 1 && ok <= 3);
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED) { /* the root creates three executors in turn */
        CHECK_EQ(pp_mpi_executor_create(&ex, &cfg), PP_MPI_SERVED);
        CHECK(ex == NULL);
        cfg.credits = 4;
        CHECK_EQ(pp_mpi_executor_create(&ex, &cfg), PP_MPI_SERVED);
        return mc_finish();
    }
    CHECK_EQ(rc, 0);
    if (rc)
        return mc_finish();
    int size = pp_mpi_size(ex);
    CHECK_EQ(size, 3);

    static outcome multi[NJOBS], single[NJOBS];
    run_jobs(ex, multi, true);

    /* The same jobs on one node: byte-identical outcomes. */
    pp_config one;
    pp_config_init(&one);
    one.max_workers = 1;
    one.pin = PP_PIN_NONE;
    pp_executor *lex = NULL;
    CHECK_EQ(pp_executor_create(&lex, &one), 0);
    run_jobs(lex, single, false);
    pp_executor_destroy(lex);
    int remote = 0;
    for (int i = 0; i < NJOBS; i++) {
        CHECK_EQ(multi[i].err, single[i].err);
        CHECK_EQ(multi[i].code, single[i].code);
        CHECK_EQ(multi[i].how, single[i].how);
        CHECK(strcmp(multi[i].msg, single[i].msg) == 0);
        CHECK_EQ(multi[i].size, single[i].size);
        CHECK(multi[i].size == single[i].size &&
              (multi[i].size == 0 || memcmp(multi[i].data, single[i].data, multi[i].size) == 0));
        CHECK(multi[i].rank >= 0 && multi[i].rank < 3);
        CHECK_EQ(single[i].rank, -1);
        remote += multi[i].rank != 0;
        free(multi[i].data);
        free(single[i].data);
    }
    CHECK(remote > 0);

    /* Callbacks ran for every future (before pp_wait returned or soon
     * after: shutdown(wait) waits for them). */
    pp_shutdown(ex, true, false);
    CHECK_EQ(atomic_load(&callbacks_run), NJOBS);

    /* Stats: all 48 counted, and each remote rank ran some. */
    pp_stats st;
    CHECK(pp_executor_stats(ex, &st, NULL, 0) >= 1);
    CHECK_EQ(st.completed + st.failed, NJOBS);
    uint64_t per_rank = 0;
    for (int q = 0; q < size; q++) {
        pp_mpi_rank_info rs;
        CHECK_EQ(pp_mpi_rank_stats(ex, q, &rs), 0);
        CHECK_EQ(rs.rank, q);
        CHECK(rs.alive);
        CHECK_EQ(rs.in_flight, 0);
        per_rank += rs.tasks;
        if (q != 0) {
            CHECK(rs.tasks > 0);
            CHECK_EQ(rs.credits, 64u * (unsigned)rs.workers); /* adaptive: the bound */
        }
    }
    CHECK_EQ(per_rank, NJOBS);
    pp_mpi_rank_info bad;
    CHECK_EQ(pp_mpi_rank_stats(ex, 3, &bad), -EINVAL);
    pp_executor_destroy(ex);

    /* A second executor on the same communicator; no launcher variables
     * reach a worker on any rank. */
    CHECK_EQ(pp_mpi_executor_create(&ex, &cfg), 0);
    pp_future *fs[24];
    mc_hold hold; /* the root's worker held: they all cross */
    CHECK(mc_hold_root(ex, &hold));
    for (int i = 0; i < 24; i++)
        CHECK_EQ(pp_submit(ex, t_mpi_env, NULL, 0, &fs[i]), 0);
    int ranks_seen[3] = {0, 0, 0};
    for (int i = 0; i < 24; i++) {
        const int *n;
        CHECK_EQ(pp_future_result(fs[i], PP_FOREVER, (const void **)&n, NULL), 0);
        if (n)
            CHECK_EQ(*n, 0);
        pp_exception e;
        pp_future_exception(fs[i], 0, &e);
        if (e.rank >= 0 && e.rank < 3)
            ranks_seen[e.rank]++;
        pp_future_release(fs[i]);
    }
    CHECK(mc_release_root(ex, &hold));
    CHECK_EQ(ranks_seen[1] + ranks_seen[2], 24);
    map_remote_only(ex);
    map_fixed(ex);
    map_errors(ex);
    map_endless(ex);
    CHECK_EQ(pp_executor_create(&lex, &one), 0);
    double t0 = MPI_Wtime();
    shared_blocks(ex, lex);
    fprintf(stderr, "test_mpi_core: pp_mpi_share part %.2f s\n", MPI_Wtime() - t0);
    pp_executor_destroy(lex);
    pp_executor_destroy(ex);

    cfg.credits = 4;
    CHECK_EQ(pp_mpi_executor_create(&ex, &cfg), 0);
    batches(ex);
    pp_executor_destroy(ex);
    CHECK(getenv("OMPI_COMM_WORLD_RANK") != NULL); /* the rank itself keeps them */
    return mc_finish();
}
