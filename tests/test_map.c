/*
 * test_map.c — pp_map / pp_map_begin: order, zip, empty inputs, chunksizes,
 * timeout, early stop, errors inside a chunk, buffersize and endless
 * generators, shared arrays used in place, variable-size items, the
 * word-hash workload against a serial run, a worker crash mid-map.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

static pp_executor *make_pool(int workers)
{
    pp_config cfg;
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    ppt_config(&cfg, workers ? workers : (n >= 2 ? 2 : 1));
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

static pp_map_opts opts(size_t chunksize, size_t out_size)
{
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.chunksize = chunksize;
    o.out_size = out_size;
    return o;
}

/* ---- item functions (run in workers) ------------------------------------ */

/* out = in0 * in0 + 1 (uint64). */
static int sq1(pp_map_item *it)
{
    uint64_t x;
    memcpy(&x, it->in[0], 8);
    x = x * x + 1;
    memcpy(it->out, &x, 8);
    return 0;
}

/* out = sum of the inputs: the first two are uint64 arrays, any third is a
 * generator item (uint64 too); also checks index and sizes. */
static int sum_inputs(pp_map_item *it)
{
    uint64_t s = 0;
    for (int j = 0; j < it->n_in; j++) {
        if (it->in_size[j] != 8)
            return pp_map_raise(it, 1, "input %d has size %zu", j, it->in_size[j]);
        uint64_t v;
        memcpy(&v, it->in[j], 8);
        s += v;
    }
    memcpy(it->out, &s, 8);
    return 0;
}

/* Fails item ctx.fail_at with code 42 (raise) or returns 7 (ctx.plain). */
typedef struct fail_ctx {
    uint64_t fail_at;
    int plain;
} fail_ctx;

static int fail_at(pp_map_item *it)
{
    const fail_ctx *c = it->ctx;
    if (it->index == c->fail_at) {
        if (c->plain)
            return 7;
        return pp_map_raise(it, 42, "bad item %zu", it->index);
    }
    return sq1(it);
}

/* ctx: offset of a shared counter; counts the items started, then sleeps
 * ctx.sleep_s seconds; out = index. */
typedef struct count_ctx {
    uint64_t counter_off;
    double sleep_s;
} count_ctx;

static int counted_sleep(pp_map_item *it)
{
    const count_ctx *c = it->ctx;
    _Atomic uint64_t *cnt = pp_task_shm(it->task, c->counter_off);
    if (!cnt)
        return pp_map_raise(it, 1, "no counter");
    /* relaxed: a statistic read by the client after the map ended. */
    atomic_fetch_add_explicit(cnt, 1, memory_order_relaxed);
    ppt_sleep(c->sleep_s);
    uint64_t i = it->index;
    memcpy(it->out, &i, 8);
    return 0;
}

/* Shared arrays: checks that the input and output pointers are the shared
 * arrays themselves (nothing was copied). ctx = {in_off, out_off}. */
typedef struct shm_ctx {
    uint64_t in_off, out_off;
} shm_ctx;

static int shm_identity(pp_map_item *it)
{
    const shm_ctx *c = it->ctx;
    const char *in_base = pp_task_shm(it->task, c->in_off);
    char *out_base = pp_task_shm(it->task, c->out_off);
    if (it->in[0] != in_base + it->index * 8)
        return pp_map_raise(it, 1, "input %zu was copied", it->index);
    if (it->out != out_base + it->index * 8)
        return pp_map_raise(it, 2, "output %zu is not in place", it->index);
    return sq1(it);
}

/* Packed shared input: out = byte length. Checks pointer identity too. */
static int packed_len(pp_map_item *it)
{
    const shm_ctx *c = it->ctx;
    const char *data = pp_task_shm(it->task, c->in_off);
    if ((const char *)it->in[0] < data || (const char *)it->in[0] > data + (1 << 20))
        return pp_map_raise(it, 1, "packed item %zu was copied", it->index);
    uint64_t n = it->in_size[0];
    memcpy(it->out, &n, 8);
    return 0;
}

/* Variable-size result: the input string reversed. */
static int reverse(pp_map_item *it)
{
    const char *s = it->in[0];
    size_t n = it->in_size[0];
    char *o = it->out;
    for (size_t i = 0; i < n; i++)
        o[i] = s[n - 1 - i];
    it->out_size = n;
    return 0;
}

/* Claims a result larger than out_size at item 3. */
static int too_big(pp_map_item *it)
{
    it->out_size = it->index == 3 ? it->out_cap + 1 : 1;
    ((char *)it->out)[0] = 'x';
    return 0;
}

static int noop8(pp_map_item *it)
{
    memcpy(it->out, it->in[0], 8);
    return 0;
}

/* ctx: an int added to every item. */
static int add_ctx(pp_map_item *it)
{
    int32_t add;
    if (it->ctx_size != sizeof add)
        return pp_map_raise(it, 1, "ctx of %zu bytes", it->ctx_size);
    memcpy(&add, it->ctx, sizeof add);
    uint64_t x;
    memcpy(&x, it->in[0], 8);
    x += (uint64_t)add;
    memcpy(it->out, &x, 8);
    return 0;
}

/* Crashes the worker at item ctx (abort). */
static int crash_at(pp_map_item *it)
{
    if (it->index == *(const uint64_t *)it->ctx)
        abort();
    return sq1(it);
}

/* ---- SHA-512 (FIPS 180-4), hex, for the word workload -------------------- */

#include "../bench/sha512_portable.h"

static void sha512_hex(const void *data, size_t n, char out[128])
{
    static const char hx[] = "0123456789abcdef";
    unsigned char md[64];
    ppb_sha512_bytes(data, n, md);
    for (int i = 0; i < 64; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
}

static int hash_word(pp_map_item *it)
{
    sha512_hex(it->in[0], it->in_size[0], it->out);
    return 0;
}

/* Deterministic lowercase words of 3..12 letters. */
static char **make_words(size_t n)
{
    char **w = calloc(n, sizeof *w);
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s += 0x9e3779b97f4a7c15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        size_t len = 3 + (size_t)(z % 10);
        w[i] = malloc(len + 1);
        for (size_t k = 0; k < len; k++) {
            w[i][k] = (char)('a' + (z >> (5 * k + 4)) % 26);
        }
        w[i][len] = '\0';
    }
    return w;
}

static void free_words(char **w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i]);
    free(w);
}

/* ---- generators (client side) -------------------------------------------- */

typedef struct gen_state {
    uint64_t value;     /* current item */
    size_t produced;    /* calls that returned an item */
    size_t limit;       /* SIZE_MAX: endless */
    size_t fail_at;     /* SIZE_MAX: never */
} gen_state;

static int gen_u64(void *user, size_t index, const void **item, size_t *size)
{
    gen_state *g = user;
    if (index != g->produced)
        return -EPROTO; /* items are asked for in order */
    if (index == g->fail_at)
        return -EIO;
    if (index >= g->limit)
        return 0;
    g->value = index * 3;
    g->produced++;
    *item = &g->value;
    *size = 8;
    return 1;
}

/* ======================================================================== */

Test(map, results_in_order_for_every_chunksize, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(0);
    const size_t n = 10007;
    uint64_t *in = malloc(n * 8), *out = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    size_t sizes[] = {1, 2, 7, 64, 1000, n - 1, n, n + 5, 1000000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        memset(out, 0xff, n * 8);
        pp_map_input mi = pp_map_array(in, n, 8);
        pp_map_opts o = opts(sizes[s], 8);
        pp_map_status st;
        int rc = pp_map(ex, sq1, &mi, 1, out, n, NULL, &o, &st);
        cr_assert_eq(rc, 0, "chunksize %zu: %s (%s)", sizes[s], pp_strerror(rc), st.message);
        cr_assert_eq(st.done, n);
        cr_assert_eq(st.chunks, (n + sizes[s] - 1) / sizes[s]);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(out[i], i * i + 1, "chunksize %zu item %zu", sizes[s], i);

        /* the same through the iterator */
        pp_map_iter *m;
        rc = pp_map_begin(&m, ex, sq1, &mi, 1, &o);
        cr_assert_eq(rc, 0);
        const void *r;
        size_t rs, k = 0;
        while ((rc = pp_map_next(m, &r, &rs)) == 0) {
            cr_assert_eq(rs, 8);
            cr_assert_eq(*(const uint64_t *)r, k * k + 1, "iterator item %zu", k);
            k++;
        }
        cr_assert_eq(rc, -ENOENT, "%s", pp_strerror(rc));
        cr_assert_eq(k, n);
        cr_assert_eq(pp_map_next(m, &r, &rs), -ENOENT, "the end is sticky");
        cr_assert_eq(pp_map_end(m), 0);
    }
    free(in);
    free(out);
    pp_executor_destroy(ex);
}

Test(map, zip_stops_at_the_shortest_input, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    uint64_t a[100], b[60];
    for (int i = 0; i < 100; i++)
        a[i] = (uint64_t)i * 1000;
    for (int i = 0; i < 60; i++)
        b[i] = (uint64_t)i;
    uint64_t out[100];
    pp_map_input in[3] = {pp_map_array(a, 100, 8), pp_map_array(b, 60, 8)};
    pp_map_opts o = opts(7, 8);
    pp_map_status st;
    int rc = pp_map(ex, sum_inputs, in, 2, out, 100, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s", st.message);
    cr_assert_eq(st.done, 60);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(out[i], (uint64_t)i * 1001);

    /* a generator that ends first (40 items), zipped with both arrays */
    gen_state g = {.limit = 40, .fail_at = SIZE_MAX};
    in[2] = pp_map_generator(gen_u64, &g);
    rc = pp_map(ex, sum_inputs, in, 3, out, 100, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s", st.message);
    cr_assert_eq(st.done, 40);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(out[i], (uint64_t)i * 1004);

    /* out_count is a bound too */
    rc = pp_map(ex, sum_inputs, in, 2, out, 10, NULL, &o, &st);
    cr_assert_eq(rc, 0);
    cr_assert_eq(st.done, 10);
    pp_executor_destroy(ex);
}

Test(map, empty_inputs_and_bad_arguments, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    uint64_t x[4] = {1, 2, 3, 4}, out[4];
    pp_map_input in = pp_map_array(x, 0, 8);
    pp_map_opts o = opts(1, 8);
    pp_map_status st;
    cr_assert_eq(pp_map(ex, sq1, &in, 1, out, 4, NULL, &o, &st), 0);
    cr_assert_eq(st.done, 0);
    cr_assert_eq(st.chunks, 0);
    cr_assert_eq(st.runners, 0, "no item, no task");
    /* no input at all (Python: map(fn) issues nothing) */
    cr_assert_eq(pp_map(ex, sq1, NULL, 0, out, 4, NULL, &o, &st), 0);
    cr_assert_eq(st.done, 0);
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, sq1, &in, 1, &o), 0);
    cr_assert_eq(pp_map_next(m, NULL, NULL), -ENOENT);
    pp_map_end(m);

    in = pp_map_array(x, 4, 8);
    o.chunksize = 0;
    cr_assert_eq(pp_map(ex, sq1, &in, 1, out, 4, NULL, &o, &st), -EINVAL, "chunksize 0");
    cr_assert_eq(pp_map_begin(&m, ex, sq1, &in, 1, &o), -EINVAL);
    cr_assert_null(m);
    o = opts(1, 8);
    o.timeout = NAN;
    cr_assert_eq(pp_map(ex, sq1, &in, 1, out, 4, NULL, &o, &st), -EINVAL, "NaN timeout");
    o = opts(1, 8);
    cr_assert_eq(pp_map(ex, NULL, &in, 1, out, 4, NULL, &o, &st), -EINVAL, "no function");
    cr_assert_eq(pp_map(NULL, sq1, &in, 1, out, 4, NULL, &o, &st), -EINVAL, "no executor");
    cr_assert_eq(pp_map(ex, sq1, &in, 1, NULL, 4, NULL, &o, &st), -EINVAL, "no out");
    cr_assert_eq(pp_map(ex, sq1, &in, PP_MAP_MAX_INPUTS + 1, out, 4, NULL, &o, &st), -EINVAL);
    pp_map_input bad = pp_map_strided(x, 4, 8, 4); /* stride < item size */
    cr_assert_eq(pp_map(ex, sq1, &bad, 1, out, 4, NULL, &o, &st), -EINVAL);
    bad = pp_map_generator(NULL, NULL);
    cr_assert_eq(pp_map(ex, sq1, &bad, 1, out, 4, NULL, &o, &st), -EINVAL);
    o.ctx_size = 4; /* ctx NULL */
    cr_assert_eq(pp_map(ex, sq1, &in, 1, out, 4, NULL, &o, &st), -EINVAL);
    cr_assert_eq(pp_map_next(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(pp_map_end(NULL), -EINVAL);

    /* after shutdown: a map that has items cannot start */
    pp_shutdown(ex, true, false);
    o = opts(1, 8);
    cr_assert_eq(pp_map(ex, sq1, &in, 1, out, 4, NULL, &o, &st), -ESHUTDOWN);
    pp_executor_destroy(ex);
}

Test(map, timeout_mid_map, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    void *cnt;
    cr_assert_eq(pp_shm_alloc(ex, 64, &cnt), 0);
    count_ctx c = {.counter_off = pp_shm_offset(ex, cnt), .sleep_s = 0.02};
    enum { N = 400 };
    uint64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o = opts(1, 8);
    o.ctx = &c;
    o.ctx_size = sizeof c;
    o.timeout = 0.15;

    double t0 = ppt_now();
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, counted_sleep, &mi, 1, &o), 0);
    int rc;
    size_t k = 0;
    const void *r;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        cr_assert_eq(*(const uint64_t *)r, k);
        k++;
    }
    double t = ppt_now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "%s", pp_strerror(rc));
    cr_assert(t >= 0.14 && t < PPT_PROMPT(1.0), "timed out after %.3f s", t);
    cr_assert(k > 0 && k < N, "%zu results before the deadline", k);
    cr_assert_eq(pp_map_next(m, &r, NULL), -ETIMEDOUT, "a timeout ends the map");
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert_eq(st.error, -ETIMEDOUT);
    cr_assert_eq(st.done, k);
    pp_map_end(m);
    /* relaxed: the runners are finished (pp_map_end waited for them). */
    uint64_t started = atomic_load_explicit((_Atomic uint64_t *)cnt, memory_order_relaxed);
    cr_assert(started < N / 2, "the rest was cancelled (%llu started)",
              (unsigned long long)started);

    /* all at once: the results before the deadline are in out */
    uint64_t out[N];
    t0 = ppt_now();
    rc = pp_map(ex, counted_sleep, &mi, 1, out, N, NULL, &o, &st);
    t = ppt_now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT);
    cr_assert(t < PPT_PROMPT(1.0), "pp_map returned after %.3f s", t);
    cr_assert(st.done < N);
    for (size_t i = 0; i < st.done; i++)
        cr_assert_eq(out[i], i);
    pp_shm_free(ex, cnt);
    pp_executor_destroy(ex);
}

Test(map, early_stop_cancels_what_has_not_started, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    int workers = pp_max_workers(ex);
    void *cnt;
    cr_assert_eq(pp_shm_alloc(ex, 64, &cnt), 0);
    count_ctx c = {.counter_off = pp_shm_offset(ex, cnt), .sleep_s = 0.005};
    enum { N = 1000 };
    uint64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o = opts(1, 8);
    o.ctx = &c;
    o.ctx_size = sizeof c;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, counted_sleep, &mi, 1, &o), 0);
    const void *r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pp_map_next(m, &r, NULL), 0);
        cr_assert_eq(*(const uint64_t *)r, (uint64_t)i);
    }
    cr_assert_eq(pp_map_end(m), 0);
    /* relaxed: pp_map_end returned after every runner finished. */
    uint64_t started = atomic_load_explicit((_Atomic uint64_t *)cnt, memory_order_relaxed);
    /* 3 consumed; at most one chunk per worker was running when we stopped,
     * plus one each may have started while we consumed the third. */
    cr_assert(started >= 3 && started <= 3 + 2 * (uint64_t)workers,
              "%llu items started after stopping at 3", (unsigned long long)started);
    /* the pool is still fine */
    uint64_t out[N];
    pp_map_status st;
    o.ctx = &c;
    c.sleep_s = 0;
    cr_assert_eq(pp_map(ex, counted_sleep, &mi, 1, out, N, NULL, &o, &st), 0);
    pp_shm_free(ex, cnt);
    pp_executor_destroy(ex);
}

Test(map, error_in_the_middle_of_a_chunk, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    enum { N = 100 };
    uint64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    pp_map_input mi = pp_map_array(in, N, 8);
    fail_ctx fc = {.fail_at = 25};
    pp_map_opts o = opts(10, 8);
    o.ctx = &fc;
    o.ctx_size = sizeof fc;

    /* iterator: items 0..24 (20..24 are the failed chunk's), then the error */
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, fail_at, &mi, 1, &o), 0);
    const void *r;
    int rc;
    size_t k = 0;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        cr_assert_eq(*(const uint64_t *)r, k * k + 1);
        k++;
    }
    cr_assert_eq(k, 25, "delivered %zu items before the error", k);
    cr_assert_eq(rc, PP_ETASK, "%s", pp_strerror(rc));
    pp_map_status st;
    cr_assert_eq(pp_map_get_status(m, &st), 0);
    cr_assert_eq(st.error, PP_ETASK);
    cr_assert_eq(st.done, 25);
    cr_assert_eq(st.code, 42);
    cr_assert_str_eq(st.message, "bad item 25");
    cr_assert(st.pid > 0 && st.pid != getpid(), "the failing worker's pid");
    cr_assert_eq(pp_map_next(m, &r, NULL), PP_ETASK, "the error is sticky");
    pp_map_end(m);

    /* all at once */
    memset(out, 0, sizeof out);
    rc = pp_map(ex, fail_at, &mi, 1, out, N, NULL, &o, &st);
    cr_assert_eq(rc, PP_ETASK);
    cr_assert_eq(st.done, 25);
    cr_assert_eq(st.code, 42);
    for (int i = 0; i < 25; i++)
        cr_assert_eq(out[i], (uint64_t)i * i + 1);

    /* a plain non-zero return; the error in the first item of a chunk */
    fc.fail_at = 30;
    fc.plain = 1;
    rc = pp_map(ex, fail_at, &mi, 1, out, N, NULL, &o, &st);
    cr_assert_eq(rc, PP_ETASK);
    cr_assert_eq(st.done, 30);
    cr_assert_eq(st.code, 7);
    cr_assert_str_eq(st.message, "item function returned 7");

    /* chunksize 1 and the last item */
    fc.fail_at = N - 1;
    o.chunksize = 1;
    rc = pp_map(ex, fail_at, &mi, 1, out, N, NULL, &o, &st);
    cr_assert_eq(rc, PP_ETASK);
    cr_assert_eq(st.done, N - 1);
    pp_executor_destroy(ex);
}

Test(map, buffersize_bounds_chunks_in_flight, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    const size_t cs = 4, bs = 3, n = 200;
    gen_state g = {.limit = n, .fail_at = SIZE_MAX};
    pp_map_input in = pp_map_generator(gen_u64, &g);
    pp_map_opts o = opts(cs, 8);
    o.buffersize = bs;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, sq1, &in, 1, &o), 0);
    cr_assert(g.produced <= bs * cs, "begin read %zu items", g.produced);
    const void *r;
    size_t k = 0;
    int rc;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        uint64_t v = k * 3;
        cr_assert_eq(*(const uint64_t *)r, v * v + 1);
        /* in flight: at most bs chunks after the one being read (which was
         * copied out of the window before its first item was returned) */
        size_t bound = (k / cs + 1 + bs) * cs;
        cr_assert(g.produced <= bound, "item %zu: %zu items read, bound %zu", k, g.produced,
                  bound);
        k++;
    }
    cr_assert_eq(rc, -ENOENT);
    cr_assert_eq(k, n);
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert(st.max_in_flight <= bs, "max in flight %zu", st.max_in_flight);
    cr_assert(st.max_in_flight >= 1);
    pp_map_end(m);
    pp_executor_destroy(ex);
}

/* Shared by buffersize_overlaps_the_caller's client and item function. */
typedef struct overlap_shm {
    _Atomic uint64_t calls;     /* pp_map_next calls the client has begun */
    _Atomic uint64_t ran_at[64]; /* item i: 1 + calls when it ran, 0 = not yet */
} overlap_shm;

/* Records the caller's pp_map_next count at which the item runs. */
static int record_call(pp_map_item *it)
{
    overlap_shm *s = pp_task_shm(it->task, *(const uint64_t *)it->ctx);
    if (!s || it->index >= 64)
        return pp_map_raise(it, 1, "bad shared block");
    /* acquire: pairs with the client's seq_cst store of calls. */
    uint64_t c = atomic_load_explicit(&s->calls, memory_order_acquire);
    /* release: the client acquires ran_at before reading the result. */
    atomic_store_explicit(&s->ran_at[it->index], c + 1, memory_order_release);
    uint64_t v = it->index * 7;
    memcpy(it->out, &v, 8);
    return 0;
}

/* The pp_map_next call (1-based; 0: pp_map_begin) at which item @i is
 * submitted, as CPython's map(buffersize=bs) does on chunks of cs items:
 * the first bs chunks at the start, chunk c + bs when the caller begins
 * reading chunk c (its first item, call c * cs + 1). */
static uint64_t expected_call(size_t i, size_t cs, size_t bs)
{
    size_t q = i / cs;
    return q < bs ? 0 : (uint64_t)(q - bs) * cs + 1;
}

/* Runs a map of n items (chunksize cs, buffersize bs) and checks after every
 * pp_map_next that exactly the items CPython would have submitted by then
 * ran, each at the call that submitted it: the next chunk runs while the
 * caller holds the previous result, and nothing runs earlier. */
static void check_overlap(pp_executor *ex, overlap_shm *s, size_t n, size_t cs, size_t bs)
{
    for (size_t i = 0; i < 64; i++) /* relaxed: no worker runs yet */
        atomic_store_explicit(&s->ran_at[i], 0, memory_order_relaxed);
    /* seq_cst: before the map's block is published by its first submit */
    atomic_store_explicit(&s->calls, 0, memory_order_seq_cst);
    uint64_t idx[64];
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    uint64_t off = pp_shm_offset(ex, s);
    pp_map_input in = pp_map_array(idx, n, 8);
    pp_map_opts o = opts(cs, 8);
    o.buffersize = bs;
    o.ctx = &off;
    o.ctx_size = sizeof off;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, record_call, &in, 1, &o), 0);
    for (uint64_t call = 0; call <= n; call++) {
        /* every item submitted by now runs without another call ... */
        for (size_t i = 0; i < n; i++) {
            uint64_t e = expected_call(i, cs, bs);
            if (e > call)
                continue;
            cr_assert(PPT_WAIT_FOR(atomic_load_explicit(&s->ran_at[i], memory_order_acquire),
                                   PPT_PROMPT(10.0)),
                      "cs %zu bs %zu: item %zu did not run after %lu calls (due at call %lu)",
                      cs, bs, i, (unsigned long)call, (unsigned long)e);
            /* acquire: pairs with record_call's release. */
            uint64_t at = atomic_load_explicit(&s->ran_at[i], memory_order_acquire) - 1;
            cr_assert_eq(at, e, "cs %zu bs %zu: item %zu ran at call %lu, CPython's at %lu",
                         cs, bs, i, (unsigned long)at, (unsigned long)e);
        }
        /* ... and no later one ran: the memory bound holds */
        for (size_t i = 0; i < n; i++)
            if (expected_call(i, cs, bs) > call)
                cr_assert_eq(atomic_load_explicit(&s->ran_at[i], memory_order_acquire), 0,
                             "cs %zu bs %zu: item %zu ran by call %lu, before it was due", cs,
                             bs, i, (unsigned long)call);
        if (call == n)
            break;
        /* seq_cst: stored before this call can submit anything. */
        atomic_store_explicit(&s->calls, call + 1, memory_order_seq_cst);
        const void *r;
        cr_assert_eq(pp_map_next(m, &r, NULL), 0);
        cr_assert_eq(*(const uint64_t *)r, call * 7);
    }
    const void *r;
    cr_assert_eq(pp_map_next(m, &r, NULL), -ENOENT);
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert_leq(st.max_in_flight, bs, "max in flight %zu", st.max_in_flight);
    cr_assert_eq(pp_map_end(m), 0);
}

Test(map, buffersize_overlaps_the_caller, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(0);
    overlap_shm *s;
    cr_assert_eq(pp_shm_alloc(ex, sizeof *s, (void **)&s), 0);
    check_overlap(ex, s, 12, 1, 1); /* item k runs during call k: 0, 1, 2, 3, ... */
    check_overlap(ex, s, 12, 1, 3);
    check_overlap(ex, s, 13, 3, 2); /* the last chunk short */
    pp_shm_free(ex, s);
    pp_executor_destroy(ex);
}

Test(map, endless_generator_with_buffersize, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(0);
    gen_state g = {.limit = SIZE_MAX, .fail_at = SIZE_MAX};
    pp_map_input in = pp_map_generator(gen_u64, &g);
    pp_map_opts o = opts(16, 8);
    o.buffersize = 4;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, sq1, &in, 1, &o), 0);
    const void *r;
    const size_t want = 200000;
    for (size_t k = 0; k < want; k++) {
        int rc = pp_map_next(m, &r, NULL);
        cr_assert_eq(rc, 0, "item %zu: %s", k, pp_strerror(rc));
        uint64_t v = k * 3;
        cr_assert_eq(*(const uint64_t *)r, v * v + 1);
        /* the chunk being read and at most 4 more */
        cr_assert(g.produced <= (k / 16 + 1 + 4) * 16, "item %zu: %zu read", k, g.produced);
    }
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert(st.max_in_flight <= 4);
    cr_assert_eq(pp_map_end(m), 0);
    cr_assert(g.produced <= want + 4 * 16, "read %zu items of an endless input", g.produced);

    /* a generator error surfaces at its position */
    gen_state g2 = {.limit = SIZE_MAX, .fail_at = 37};
    in = pp_map_generator(gen_u64, &g2);
    uint64_t out[100];
    pp_map_status st2;
    int rc = pp_map(ex, sq1, &in, 1, out, 100, NULL, &o, &st2);
    cr_assert_eq(rc, -EIO, "%s", pp_strerror(rc));
    cr_assert_eq(st2.done, 37);
    for (int i = 0; i < 37; i++)
        cr_assert_eq(out[i], (uint64_t)(i * 3) * (uint64_t)(i * 3) + 1);
    pp_executor_destroy(ex);
}

Test(map, shared_arrays_are_used_in_place, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    const size_t n = 5000;
    uint64_t *in, *out;
    cr_assert_eq(pp_shm_alloc(ex, n * 8, (void **)&in), 0);
    cr_assert_eq(pp_shm_alloc(ex, n * 8, (void **)&out), 0);
    for (size_t i = 0; i < n; i++)
        in[i] = i;
    shm_ctx c = {pp_shm_offset(ex, in), pp_shm_offset(ex, out)};
    pp_map_input mi = pp_map_array(in, n, 8);
    pp_map_opts o = opts(37, 8);
    o.ctx = &c;
    o.ctx_size = sizeof c;
    pp_map_status st;
    int rc = pp_map(ex, shm_identity, &mi, 1, out, n, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s: %s", pp_strerror(rc), st.message);
    cr_assert_eq(st.staged_bytes, 0, "no input byte copied");
    cr_assert_eq(st.result_bytes, 0, "no result byte copied");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], i * i + 1);

    /* a packed shared input (bytes and offsets in shared memory) */
    char *data;
    size_t *offs;
    cr_assert_eq(pp_shm_alloc(ex, 1 << 20, (void **)&data), 0);
    cr_assert_eq(pp_shm_alloc(ex, (n + 1) * sizeof *offs, (void **)&offs), 0);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        offs[i] = pos;
        size_t len = i % 17;
        memset(data + pos, 'a', len);
        pos += len;
    }
    offs[n] = pos;
    c.in_off = pp_shm_offset(ex, data);
    mi = pp_map_packed(data, offs, n);
    rc = pp_map(ex, packed_len, &mi, 1, out, n, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s: %s", pp_strerror(rc), st.message);
    cr_assert_eq(st.staged_bytes, 0);
    cr_assert_eq(st.result_bytes, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], i % 17);

    /* the same map into private memory copies the results (and only them) */
    uint64_t *priv = malloc(n * 8);
    rc = pp_map(ex, packed_len, &mi, 1, priv, n, NULL, &o, &st);
    cr_assert_eq(rc, 0);
    cr_assert_eq(st.staged_bytes, 0);
    cr_assert_eq(st.result_bytes, n * 8);
    free(priv);
    pp_shm_free(ex, data);
    pp_shm_free(ex, offs);
    pp_shm_free(ex, in);
    pp_shm_free(ex, out);
    pp_executor_destroy(ex);
}

Test(map, variable_size_items, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    const size_t n = 3000;
    char **w = make_words(n);
    char *out = malloc(n * 16);
    size_t *sizes = malloc(n * sizeof *sizes);
    pp_map_input in = pp_map_ptrs((const void *const *)w, NULL, n);
    pp_map_opts o = opts(13, 16);
    o.out_variable = true;
    pp_map_status st;
    int rc = pp_map(ex, reverse, &in, 1, out, n, sizes, &o, &st);
    cr_assert_eq(rc, 0, "%s", st.message);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(w[i]);
        cr_assert_eq(sizes[i], len, "item %zu", i);
        for (size_t k = 0; k < len; k++)
            cr_assert_eq(out[i * 16 + k], w[i][len - 1 - k]);
    }
    cr_assert(st.staged_bytes > 0);

    /* iterator over the same */
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, reverse, &in, 1, &o), 0);
    const void *r;
    size_t rs, k = 0;
    while ((rc = pp_map_next(m, &r, &rs)) == 0) {
        cr_assert_eq(rs, strlen(w[k]));
        cr_assert_eq(memcmp(r, out + k * 16, rs), 0);
        k++;
    }
    cr_assert_eq(rc, -ENOENT);
    cr_assert_eq(k, n);
    pp_map_end(m);

    /* a result larger than out_size fails that item with PP_ETOOBIG */
    rc = pp_map(ex, too_big, &in, 1, out, n, sizes, &o, &st);
    cr_assert_eq(rc, PP_ETOOBIG, "%s", pp_strerror(rc));
    cr_assert_eq(st.done, 3);

    /* explicit sizes; a NULL item with a size fails at its position */
    size_t lens[4] = {3, 0, 2, 5};
    const char *items[4] = {"abc", NULL, "xy", NULL};
    in = pp_map_ptrs((const void *const *)items, lens, 4);
    rc = pp_map(ex, reverse, &in, 1, out, 4, sizes, &o, &st);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_eq(st.done, 3);
    cr_assert_eq(sizes[0], 3);
    cr_assert_eq(memcmp(out, "cba", 3), 0);
    cr_assert_eq(sizes[1], 0);
    cr_assert_eq(memcmp(out + 32, "yx", 2), 0);
    free_words(w, n);
    free(out);
    free(sizes);
    pp_executor_destroy(ex);
}

Test(map, word_digests_equal_a_serial_run, PPT_FIXTURE, .timeout = 120)
{
    char hex[129] = {0};
    sha512_hex("abc", 3, hex);
    cr_assert_str_eq(hex,
                     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
                     "the test's SHA-512 is right");
    pp_executor *ex = make_pool(0);
    const size_t n = 30000;
    char **w = make_words(n);
    char *serial = malloc(n * 128), *par = malloc(n * 128);
    for (size_t i = 0; i < n; i++)
        sha512_hex(w[i], strlen(w[i]), serial + i * 128);
    size_t sizes[] = {n / 2 + 1, 5000, 1000, 100, 1};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        memset(par, 0, n * 128);
        pp_map_input in = pp_map_ptrs((const void *const *)w, NULL, n);
        pp_map_opts o = opts(sizes[s], 128);
        pp_map_status st;
        int rc = pp_map(ex, hash_word, &in, 1, par, n, NULL, &o, &st);
        cr_assert_eq(rc, 0, "%s", st.message);
        cr_assert_eq(memcmp(par, serial, n * 128), 0, "chunksize %zu: digests differ",
                     sizes[s]);
    }
    /* through the iterator, one digest at a time */
    pp_map_input in = pp_map_ptrs((const void *const *)w, NULL, n);
    pp_map_opts o = opts(1, 128);
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, hash_word, &in, 1, &o), 0);
    const void *r;
    size_t k = 0;
    int rc;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        cr_assert_eq(memcmp(r, serial + k * 128, 128), 0, "digest %zu", k);
        k++;
    }
    cr_assert_eq(rc, -ENOENT);
    cr_assert_eq(k, n);
    pp_map_end(m);
    free_words(w, n);
    free(serial);
    free(par);
    pp_executor_destroy(ex);
}

Test(map, a_million_items_at_chunksize_1, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool(0);
    const size_t n = 1000000;
    uint64_t *in = malloc(n * 8), *out = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        in[i] = i ^ 0x5555;
    pp_map_input mi = pp_map_array(in, n, 8);
    pp_map_opts o = opts(1, 8);
    pp_map_status st;
    int rc = pp_map(ex, noop8, &mi, 1, out, n, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s", st.message);
    cr_assert_eq(st.chunks, n);
    cr_assert_eq(memcmp(in, out, n * 8), 0);
    cr_assert(st.max_in_flight <= 16384, "bounded internally (%zu)", st.max_in_flight);
    pp_stats ps;
    pp_executor_stats(ex, &ps, NULL, 0);
    cr_assert_eq(ps.backlog, 0);
    free(in);
    free(out);
    pp_executor_destroy(ex);
}

Test(map, context_bytes_reach_every_call, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    uint64_t in[50], out[50];
    for (int i = 0; i < 50; i++)
        in[i] = (uint64_t)i;
    int32_t add = 1000;
    pp_map_input mi = pp_map_array(in, 50, 8);
    pp_map_opts o = opts(3, 8);
    o.ctx = &add;
    o.ctx_size = sizeof add;
    pp_map_status st;
    cr_assert_eq(pp_map(ex, add_ctx, &mi, 1, out, 50, NULL, &o, &st), 0, "%s", st.message);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(out[i], (uint64_t)i + 1000);
    pp_executor_destroy(ex);
}

Test(map, two_iterators_interleaved, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    enum { N = 3000 };
    uint64_t a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (uint64_t)i;
        b[i] = (uint64_t)(N - i);
    }
    pp_map_input ia = pp_map_array(a, N, 8), ib = pp_map_array(b, N, 8);
    pp_map_opts o1 = opts(1, 8), o2 = opts(5, 8);
    o2.buffersize = 2;
    pp_map_iter *ma, *mb;
    cr_assert_eq(pp_map_begin(&ma, ex, sq1, &ia, 1, &o1), 0);
    cr_assert_eq(pp_map_begin(&mb, ex, sq1, &ib, 1, &o2), 0);
    for (int i = 0; i < N; i++) {
        const void *ra, *rb;
        cr_assert_eq(pp_map_next(ma, &ra, NULL), 0);
        cr_assert_eq(pp_map_next(mb, &rb, NULL), 0);
        cr_assert_eq(*(const uint64_t *)ra, a[i] * a[i] + 1);
        cr_assert_eq(*(const uint64_t *)rb, b[i] * b[i] + 1);
    }
    cr_assert_eq(pp_map_next(ma, NULL, NULL), -ENOENT);
    cr_assert_eq(pp_map_next(mb, NULL, NULL), -ENOENT);
    pp_map_end(ma);
    pp_map_end(mb);
    pp_executor_destroy(ex);
}

Test(map, worker_crash_mid_map_fails_the_map, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(0);
    enum { N = 2000 };
    uint64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    uint64_t at = 500;
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o = opts(10, 8);
    o.ctx = &at;
    o.ctx_size = sizeof at;
    pp_map_status st;
    double t0 = ppt_now();
    int rc = pp_map(ex, crash_at, &mi, 1, out, N, NULL, &o, &st);
    cr_assert(rc == PP_EBROKEN || rc == PP_EWORKER, "%s", pp_strerror(rc));
    cr_assert(ppt_now() - t0 < 10.0, "a crash never hangs the map");
    cr_assert(st.done <= at, "failed at %zu", st.done);
    for (size_t i = 0; i < st.done; i++)
        cr_assert_eq(out[i], i * i + 1);
    cr_assert(st.message[0]);
    pp_executor_destroy(ex);
}

Test(map, shutdown_with_cancel_futures_cancels_the_rest, PPT_FIXTURE, .timeout = 30)
{
    pp_executor *ex = make_pool(0);
    void *cnt;
    cr_assert_eq(pp_shm_alloc(ex, 64, &cnt), 0);
    count_ctx c = {.counter_off = pp_shm_offset(ex, cnt), .sleep_s = 0.01};
    enum { N = 300 };
    uint64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o = opts(1, 8);
    o.ctx = &c;
    o.ctx_size = sizeof c;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, counted_sleep, &mi, 1, &o), 0);
    const void *r;
    cr_assert_eq(pp_map_next(m, &r, NULL), 0);
    cr_assert_eq(pp_map_next(m, &r, NULL), 0);
    double t0 = ppt_now();
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    int rc;
    size_t k = 2;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        cr_assert_eq(*(const uint64_t *)r, k);
        k++;
    }
    cr_assert_eq(rc, -ECANCELED, "%s", pp_strerror(rc));
    cr_assert(k < N, "the map stopped at %zu", k);
    cr_assert(ppt_now() - t0 < PPT_PROMPT(2.0), "promptly");
    pp_map_end(m);
    pp_executor_destroy(ex);
}

Test(map, worker_crash_with_respawn_fails_only_its_chunk, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    cpu_set_t s;
    ppt_config(&cfg, ppt_allowed_cpus(&s) >= 2 ? 2 : 1);
    cfg.on_worker_death = PP_DEATH_RESPAWN;
    pp_executor *ex = NULL;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    enum { N = 2000 };
    uint64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = (uint64_t)i;
    uint64_t at = 503; /* inside chunk 50 (items 500..509) */
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o = opts(10, 8);
    o.ctx = &at;
    o.ctx_size = sizeof at;
    pp_map_status st;
    int rc = pp_map(ex, crash_at, &mi, 1, out, N, NULL, &o, &st);
    cr_assert_eq(rc, PP_EWORKER, "%s (%s)", pp_strerror(rc), st.message);
    cr_assert_eq(st.done, at, "the items the worker finished are delivered (%zu)", st.done);
    cr_assert_eq(st.code, 6, "SIGABRT (%d)", st.code);
    for (size_t i = 0; i < st.done; i++)
        cr_assert_eq(out[i], i * i + 1);
    /* the pool goes on */
    uint64_t ok_at = N + 1;
    o.ctx = &ok_at;
    cr_assert_eq(pp_map(ex, crash_at, &mi, 1, out, N, NULL, &o, &st), 0, "%s", st.message);
    pp_executor_destroy(ex);
}

/* ---- big chunks run side by side --------------------------------------- */

/* Two chunks of BIG_CS items on two workers, the second staged only once
 * the first is running (the generator holds it back): the runner busy with
 * chunk 0 must not count as the taker of chunk 1, or the chunks run one
 * after the other (a map with chunksize n / workers, the first point of a
 * chunksize sweep, took twice as long before this was fixed). Each chunk's
 * first item notes its start in shared memory and waits, up to 10 s, for
 * the other chunk to start: out = 1 when it saw both running. */
#define BIG_CS 4096

typedef struct big_ctx {
    uint64_t flags_off; /* pp_shm_offset of two _Atomic uint32_t "started" flags */
} big_ctx;

static int big_chunk_item(pp_map_item *it)
{
    const big_ctx *c = it->ctx;
    _Atomic uint32_t *started = pp_task_shm(it->task, c->flags_off);
    uint64_t i = *(const uint64_t *)it->in[0];
    uint64_t saw_both = 1;
    if (i % BIG_CS == 0) {
        int mine = (int)(i / BIG_CS);
        atomic_store(&started[mine], 1);
        double dl = ppt_deadline(10.0);
        while (!atomic_load(&started[1 - mine]) && !ppt_expired(dl))
            ppt_sleep(0.0005);
        saw_both = atomic_load(&started[1 - mine]);
    }
    memcpy(it->out, &saw_both, 8);
    return 0;
}

typedef struct big_gen {
    _Atomic uint32_t *started; /* the client's view of the flags */
    uint64_t value;
    int held_back;             /* 1: waited for chunk 0 before item BIG_CS */
} big_gen;

static int big_gen_next(void *user, size_t index, const void **item, size_t *size)
{
    big_gen *g = user;
    if (index >= 2 * BIG_CS)
        return 0;
    if (index == BIG_CS) { /* chunk 1 only once chunk 0 runs */
        double dl = ppt_deadline(10.0);
        while (!atomic_load(&g->started[0]) && !ppt_expired(dl))
            ppt_sleep(0.0005);
        g->held_back = (int)atomic_load(&g->started[0]);
    }
    g->value = index;
    *item = &g->value;
    *size = 8;
    return 1;
}

Test(map, two_big_chunks_run_side_by_side_on_two_workers, PPT_FIXTURE, .timeout = 60)
{
    cpu_set_t s;
    if (ppt_allowed_cpus(&s) < 2)
        cr_skip_test("needs 2 CPUs");
    pp_executor *ex = make_pool(2);
    void *flags = NULL;
    cr_assert_eq(pp_shm_alloc(ex, 64, &flags), 0);
    memset(flags, 0, 64);
    big_ctx c = {.flags_off = pp_shm_offset(ex, flags)};
    big_gen g = {.started = flags};
    pp_map_input in = pp_map_generator(big_gen_next, &g);
    pp_map_opts o = opts(BIG_CS, 8);
    o.ctx = &c;
    o.ctx_size = sizeof c;
    uint64_t *out = calloc(2 * BIG_CS, 8);
    cr_assert_not_null(out);
    pp_map_status st;
    int rc = pp_map(ex, big_chunk_item, &in, 1, out, 2 * BIG_CS, NULL, &o, &st);
    cr_assert_eq(rc, 0, "%s", st.message);
    cr_assert_eq(st.done, 2 * BIG_CS);
    cr_expect(g.held_back, "chunk 0 never started while the generator held chunk 1 back");
    cr_expect_eq(out[0], 1, "chunk 0 ran without chunk 1 beside it (runners: %llu)",
                 (unsigned long long)st.runners);
    cr_expect_eq(out[BIG_CS], 1, "chunk 1 ran without chunk 0 beside it");
    cr_expect_geq(st.runners, 2);
    free(out);
    pp_shm_free(ex, flags);
    pp_executor_destroy(ex);
}
