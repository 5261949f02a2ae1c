/*
 * test_payload.c — argument and result bytes: inline and arena sizes at every
 * boundary, the configured limits, arena exhaustion, many medium payloads
 * from several threads, large payloads copied both ways (plain, streaming).
 */
#include "copy.h"
#include "pp_testutil.h"
#include "tunables.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define INLINE_DEFAULT ((size_t)192)

static int small_pool_size(void)
{
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    return n >= 2 ? 2 : 1;
}

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_executor *make_pool(void)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    return make_pool_cfg(&cfg);
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit(%zu bytes): %d %s", n, rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

static pp_future *submit_big_result(pp_executor *ex, size_t n)
{
    return submit_ok(ex, ppt_task_big_result, &n, sizeof n);
}

/* Echo of @n bytes: same size, same bytes, 16-byte aligned. */
static void echo_roundtrip(pp_executor *ex, size_t n, uint64_t seed)
{
    unsigned char *buf = n ? malloc(n) : NULL;
    if (n)
        cr_assert_not_null(buf, "malloc(%zu)", n);
    ppt_fill_seeded(buf, n, seed);
    pp_future *f = submit_ok(ex, ppt_task_echo, buf, n);
    const void *d = NULL;
    size_t sz = (size_t)-1;
    int rc = pp_future_result(f, PP_FOREVER, &d, &sz);
    cr_assert_eq(rc, 0, "echo(%zu): %d %s", n, rc, pp_strerror(rc));
    cr_assert_eq(sz, n, "echo(%zu): result size %zu", n, sz);
    if (n) {
        cr_assert_not_null(d);
        cr_expect_eq((uintptr_t)d % 16, 0, "echo(%zu): result not 16-byte aligned", n);
        cr_assert(memcmp(d, buf, n) == 0, "echo(%zu): result bytes differ", n);
    }
    pp_future_release(f);
    free(buf);
}

static void big_result_check(pp_executor *ex, size_t n)
{
    pp_future *f = submit_big_result(ex, n);
    const void *d = NULL;
    size_t sz = (size_t)-1;
    int rc = pp_future_result(f, PP_FOREVER, &d, &sz);
    cr_assert_eq(rc, 0, "big_result(%zu): %d %s", n, rc, pp_strerror(rc));
    cr_assert_eq(sz, n, "big_result(%zu): size %zu", n, sz);
    if (n) {
        cr_assert_not_null(d);
        cr_expect_eq((uintptr_t)d % 16, 0, "big_result(%zu): not 16-byte aligned", n);
        size_t bad = ppt_check_pattern(d, n);
        cr_assert_eq(bad, n, "big_result(%zu): first wrong byte at %zu", n, bad);
    }
    pp_future_release(f);
}

/* ------------------------------------------------------------------------ */

Test(payload, echo_sizes, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool();
    const size_t sizes[] = {0,    1,        INLINE_DEFAULT - 1, INLINE_DEFAULT, INLINE_DEFAULT + 1,
                            4096, 1 * MiB, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        echo_roundtrip(ex, sizes[i], 1000 + i);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Inline payload sizes are rounded up to 64 (at least 64): check the edges of
 * a non-default inline size too. */
Test(payload, echo_sizes_custom_inline, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.inline_size = 100; /* becomes 128 */
    pp_executor *ex = make_pool_cfg(&cfg);
    const size_t sizes[] = {0, 1, 63, 64, 65, 99, 100, 101, 127, 128, 129, 255, 256, 257, 8192};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        echo_roundtrip(ex, sizes[i], 2000 + i);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(payload, big_result_sizes, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool();
    const size_t sizes[] = {0, 1, 191, 192, 193, 1 * MiB, 64 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        big_result_check(ex, sizes[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(payload, argument_over_limit, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.max_arg_size = 1024;
    pp_executor *ex = make_pool_cfg(&cfg);

    unsigned char buf[1025];
    ppt_fill_seeded(buf, sizeof buf, 7);
    pp_future *f = (pp_future *)(uintptr_t)0x1;
    int rc = pp_submit(ex, ppt_task_echo, buf, 1025, &f);
    cr_expect_eq(rc, PP_ETOOBIG, "1025-byte argument, limit 1024: %d %s", rc, pp_strerror(rc));
    cr_expect_null(f, "*out must be NULL on error");

    /* Nothing was scheduled. */
    pp_stats st;
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 1);
    cr_expect_eq(st.submitted, 0, "stats.submitted = %llu after a rejected submit",
                 (unsigned long long)st.submitted);
    cr_expect_eq(st.queued + st.running + st.backlog, 0);

    /* Exactly the limit works. */
    echo_roundtrip(ex, 1024, 8);
    cr_assert_geq(pp_executor_stats(ex, &st, NULL, 0), 1);
    cr_expect_eq(st.submitted, 1);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(payload, result_over_limit, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.max_result_size = 1024;
    pp_executor *ex = make_pool_cfg(&cfg);

    pp_future *f = submit_big_result(ex, 1025);
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, PP_FOREVER, &d, &n);
    cr_expect_eq(rc, PP_ETOOBIG, "1025-byte result, limit 1024: %d %s", rc, pp_strerror(rc));
    pp_exception exc;
    memset(&exc, 0, sizeof exc);
    cr_expect_eq(pp_future_exception(f, PP_FOREVER, &exc), 0);
    cr_expect_eq(exc.error, PP_ETOOBIG, "exc.error = %d", exc.error);
    cr_expect_not_null(exc.message);
    pp_future_release(f);

    /* An echo with a result over the limit fails the same way. */
    unsigned char buf[2048];
    ppt_fill_seeded(buf, sizeof buf, 3);
    f = submit_ok(ex, ppt_task_echo, buf, sizeof buf);
    rc = pp_future_result(f, PP_FOREVER, NULL, NULL);
    cr_expect_eq(rc, PP_ETOOBIG, "echo of 2048 bytes, result limit 1024: %d %s", rc, pp_strerror(rc));
    pp_future_release(f);

    /* The pool goes on; the limit itself is allowed. */
    big_result_check(ex, 1024);
    echo_roundtrip(ex, 1000, 4);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(payload, arena_exhaustion_for_results, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, small_pool_size());
    cfg.arena_size = 8 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);

    enum { N = 4 };
    const size_t big = 6 * MiB;
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_big_result(ex, big);
    int ok = 0, nomem = 0;
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        /* Bounded wait: a future that never resolves is the bug. */
        int rc = pp_future_result(fs[i], 30.0, &d, &n);
        cr_assert_neq(rc, -ETIMEDOUT, "future %d did not resolve", i);
        if (rc == 0) {
            ok++;
            cr_expect_eq(n, big);
            cr_expect_eq(ppt_check_pattern(d, n), n, "future %d: wrong bytes", i);
        } else if (rc == -ENOMEM) {
            nomem++;
            cr_expect(pp_future_done(fs[i]));
        } else {
            cr_expect(false, "future %d: %d %s (expected 0 or -ENOMEM)", i, rc, pp_strerror(rc));
        }
    }
    cr_expect_geq(ok, 1, "no 6 MiB result fit an empty 8 MiB arena");
    cr_expect_geq(nomem, 1, "%d held 6 MiB results in an 8 MiB arena", ok);
    cr_log_info("arena 8 MiB, 4 x 6 MiB results held: %d ok, %d -ENOMEM", ok, nomem);
    for (int i = 0; i < N; i++)
        pp_future_release(fs[i]);

    /* The space comes back once released. */
    big_result_check(ex, big);
    /* Small results (inline) never needed the arena. */
    big_result_check(ex, 100);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Arguments that do not fit the arena fail at submit or in the future, but
 * never hang, and the pool goes on. */
Test(payload, arena_exhaustion_for_arguments, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 8 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    const size_t n = 3 * MiB;
    unsigned char *buf = malloc(n);
    cr_assert_not_null(buf);
    ppt_fill_seeded(buf, n, 5);
    enum { N = 4 };
    pp_future *fs[N];
    int nsub = 0;
    for (int i = 0; i < N; i++) {
        fs[i] = NULL;
        int rc = pp_submit(ex, ppt_task_hash64, buf, n, &fs[i]);
        cr_expect(rc == 0 || rc == -ENOMEM, "submit %d: %d %s", i, rc, pp_strerror(rc));
        if (rc == 0)
            nsub++;
        else
            cr_expect_null(fs[i]);
    }
    cr_expect_geq(nsub, 1);
    uint64_t want = ppt_fnv1a64(buf, n);
    for (int i = 0; i < N; i++) {
        if (!fs[i])
            continue;
        const void *d = NULL;
        size_t sz = 0;
        int rc = pp_future_result(fs[i], 30.0, &d, &sz);
        cr_assert_neq(rc, -ETIMEDOUT, "future %d did not resolve", i);
        cr_expect(rc == 0 || rc == -ENOMEM, "future %d: %d %s", i, rc, pp_strerror(rc));
        if (rc == 0) {
            uint64_t got;
            cr_assert_eq(sz, sizeof got);
            memcpy(&got, d, sizeof got);
            cr_expect_eq(got, want);
        }
        pp_future_release(fs[i]);
    }
    pp_future *f = submit_ok(ex, ppt_task_hash64, buf, n);
    const void *d = NULL;
    size_t sz = 0;
    cr_assert_eq(pp_future_result(f, 30.0, &d, &sz), 0);
    pp_future_release(f);
    free(buf);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* many medium payloads from two client threads                              */
/* ------------------------------------------------------------------------ */

#define MED_SIZE (4 * KiB)
#define MED_TASKS 2000
#define MED_THREADS 2

typedef struct med_ctx {
    pp_executor *ex;
    int id;
    long submit_err, result_err, value_err;
    int first_rc;
} med_ctx;

static void *med_client(void *p)
{
    med_ctx *c = p;
    const int per = MED_TASKS / MED_THREADS;
    pp_future **fs = calloc((size_t)per, sizeof *fs);
    unsigned char *buf = malloc(MED_SIZE);
    if (!fs || !buf) {
        free(fs);
        free(buf);
        c->submit_err = per;
        return NULL;
    }
    for (int i = 0; i < per; i++) {
        ppt_fill_seeded(buf, MED_SIZE, (uint64_t)c->id << 32 | (uint64_t)i);
        int rc = pp_submit(c->ex, ppt_task_echo, buf, MED_SIZE, &fs[i]);
        if (rc) {
            if (!c->first_rc)
                c->first_rc = rc;
            c->submit_err++;
            fs[i] = NULL;
        }
    }
    for (int i = 0; i < per; i++) {
        if (!fs[i])
            continue;
        ppt_fill_seeded(buf, MED_SIZE, (uint64_t)c->id << 32 | (uint64_t)i);
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], PP_FOREVER, &d, &n);
        if (rc) {
            if (!c->first_rc)
                c->first_rc = rc;
            c->result_err++;
        } else if (n != MED_SIZE || memcmp(d, buf, MED_SIZE) != 0) {
            c->value_err++;
        }
        pp_future_release(fs[i]);
    }
    free(fs);
    free(buf);
    return NULL;
}

Test(payload, many_medium_payloads_two_threads, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool();
    pthread_t th[MED_THREADS];
    med_ctx ctx[MED_THREADS];
    for (int k = 0; k < MED_THREADS; k++) {
        ctx[k] = (med_ctx){.ex = ex, .id = k};
        cr_assert_eq(pthread_create(&th[k], NULL, med_client, &ctx[k]), 0);
    }
    for (int k = 0; k < MED_THREADS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < MED_THREADS; k++) {
        cr_expect_eq(ctx[k].submit_err, 0, "thread %d: %ld submit errors (first %d %s)", k,
                     ctx[k].submit_err, ctx[k].first_rc, pp_strerror(ctx[k].first_rc));
        cr_expect_eq(ctx[k].result_err, 0, "thread %d: %ld failed futures (first %d %s)", k,
                     ctx[k].result_err, ctx[k].first_rc, pp_strerror(ctx[k].first_rc));
        cr_expect_eq(ctx[k].value_err, 0, "thread %d: %ld wrong results", k, ctx[k].value_err);
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* Large payloads are copied plainly or with streaming stores, whichever the */
/* process measured cheaper (runtime/copy.h): both ways keep every byte.     */
/* ------------------------------------------------------------------------ */

/* ppi_copy_stream at every destination and source alignment mod 16, lengths
 * around the 16-byte head and the 64-byte body: exact bytes, nothing written
 * outside the destination. */
Test(payload, stream_copy_every_alignment_and_length, .timeout = 30)
{
    const size_t lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 79, 127, 128, 129, 4096 + 13};
    enum { GUARD = 64, MAXLEN = 4096 + 13 + 32 };
    unsigned char *src = malloc(MAXLEN), *dst = malloc(MAXLEN + 2 * GUARD);
    cr_assert(src && dst);
    ppt_fill_seeded(src, MAXLEN, 7);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
        for (size_t da = 0; da < 16; da++)
            for (size_t sa = 0; sa < 16; sa++) {
                size_t n = lens[li];
                memset(dst, 0xEE, MAXLEN + 2 * GUARD);
                ppi_copy_stream(dst + GUARD + da, src + sa, n);
                cr_assert(memcmp(dst + GUARD + da, src + sa, n) == 0,
                          "len %zu, dst %% 16 = %zu, src %% 16 = %zu: bytes differ", n, da, sa);
                for (size_t i = 0; i < MAXLEN + 2 * GUARD; i++)
                    if (i < GUARD + da || i >= GUARD + da + n)
                        cr_assert_eq(dst[i], 0xEE, "len %zu, dst+%zu, src+%zu: byte %zu outside written",
                                     n, da, sa, i);
            }
    free(src);
    free(dst);
}

/* ppi_copy_payload: below PPI_STREAM_COPY_MIN nothing is counted; from there
 * a new size class is copied once each way (plain, then streaming, where the
 * CPU has streaming stores), then mostly the cheaper way with a probe of the
 * other every PPI_STREAM_PROBE_EVERY copies. Every copy is exact. */
Test(payload, payload_copy_tries_both_ways_and_keeps_bytes, .timeout = 60)
{
    const size_t sizes[] = {PPI_STREAM_COPY_MIN - 1, PPI_STREAM_COPY_MIN, PPI_STREAM_COPY_MIN + 3,
                            2 * PPI_STREAM_COPY_MIN + 17, 5 * PPI_STREAM_COPY_MIN + 1};
    size_t max = 5 * PPI_STREAM_COPY_MIN + 1 + 16;
    unsigned char *src = malloc(max), *dst = malloc(max);
    cr_assert(src && dst);
    uint64_t plain0, stream0;
    ppi_copy_payload_counts(&plain0, &stream0);
    cr_assert_eq(plain0 + stream0, 0);
    ppi_copy_payload(dst, src, sizes[0]);
    uint64_t plain, stream;
    ppi_copy_payload_counts(&plain, &stream);
    cr_assert_eq(plain + stream, 0, "a copy below the minimum was measured");
    const int rounds = 3 * (int)PPI_STREAM_PROBE_EVERY;
    uint64_t large = 0;
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i], off = (size_t)r % 16;
            ppt_fill_seeded(src, n + off, (uint64_t)(r * 10 + (int)i));
            memset(dst, 0, n + off);
            ppi_copy_payload(dst + off, src + off, n);
            cr_assert(memcmp(dst + off, src + off, n) == 0, "round %d, %zu bytes: differ", r, n);
            large += n >= PPI_STREAM_COPY_MIN;
        }
    ppi_copy_payload_counts(&plain, &stream);
    cr_assert_eq(plain + stream, large, "%llu plain + %llu streaming copies, %llu large ones",
                 (unsigned long long)plain, (unsigned long long)stream, (unsigned long long)large);
    cr_assert_geq(plain, 1, "never copied plainly");
#if defined(__x86_64__)
    /* Whichever way is cheaper, the other still gets its probes. Three size
     * classes (1 MiB and 1 MiB + 3; 2 MiB + 17; 5 MiB + 1) with k copies
     * each: the first is plain, the second streaming, and one in
     * PPI_STREAM_PROBE_EVERY of the other k - 2 goes the dearer way. */
    const uint64_t k[3] = {2 * (uint64_t)rounds, (uint64_t)rounds, (uint64_t)rounds};
    uint64_t min_minor = 0;
    for (int c = 0; c < 3; c++)
        min_minor += 1 + (k[c] - 2) / PPI_STREAM_PROBE_EVERY;
    cr_assert_geq(plain < stream ? plain : stream, min_minor,
                  "the dearer way copied %llu times, expected at least %llu probes",
                  (unsigned long long)(plain < stream ? plain : stream),
                  (unsigned long long)min_minor);
#endif
    free(src);
    free(dst);
}

/* Returns this worker's (plain, streaming) large-copy counts. */
static int copy_counts_task(pp_task *t)
{
    uint64_t c[2];
    ppi_copy_payload_counts(&c[0], &c[1]);
    return pp_task_set_result(t, c, sizeof c);
}

/* Through a pool: arguments (copied by the client) and echoed results
 * (copied by the worker with pp_task_set_result) around the streaming
 * minimum, often enough that both processes use both ways: every byte
 * arrives, in both directions. */
Test(payload, large_payloads_both_copy_ways_in_client_and_worker, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, 1); /* one worker: its counts cover every result */
    pp_executor *ex = make_pool_cfg(&cfg);
    const size_t sizes[] = {PPI_STREAM_COPY_MIN - 1, PPI_STREAM_COPY_MIN, PPI_STREAM_COPY_MIN + 1,
                            3 * PPI_STREAM_COPY_MIN + 5};
    for (int r = 0; r < 2 * (int)PPI_STREAM_PROBE_EVERY; r++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            echo_roundtrip(ex, sizes[i], (uint64_t)(5000 + r * 10 + (int)i));
    uint64_t plain, stream;
    ppi_copy_payload_counts(&plain, &stream);
    pp_future *f = submit_ok(ex, copy_counts_task, NULL, 0);
    const void *d = NULL;
    size_t sz = 0;
    cr_assert_eq(pp_future_result(f, PP_FOREVER, &d, &sz), 0);
    cr_assert_eq(sz, 2 * sizeof(uint64_t));
    uint64_t w[2];
    memcpy(w, d, sizeof w);
    pp_future_release(f);
    uint64_t want = 2 * PPI_STREAM_PROBE_EVERY * 3; /* three of the sizes are large */
    cr_assert_eq(plain + stream, want, "client: %llu + %llu large copies, expected %llu",
                 (unsigned long long)plain, (unsigned long long)stream, (unsigned long long)want);
    /* a forked worker inherits the client's counts; a spawned one does not */
    cr_assert_geq(w[0] + w[1], want, "worker: %llu + %llu large copies, expected %llu or more",
                  (unsigned long long)w[0], (unsigned long long)w[1], (unsigned long long)want);
#if defined(__x86_64__)
    cr_assert(plain && stream, "client: %llu plain, %llu streaming", (unsigned long long)plain,
              (unsigned long long)stream);
    cr_assert(w[0] && w[1], "worker: %llu plain, %llu streaming", (unsigned long long)w[0],
              (unsigned long long)w[1]);
#endif
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* Known-failures row 17 (loky #143, bpo-17560): payloads over 2 GiB broke   */
/* the pipe framing of Python's pools and deadlocked them. ppool has no      */
/* framing (sizes are 64-bit fields of the slot, bytes live in the arena),   */
/* and this test holds it to that: a 3 GiB argument in, a 3 GiB result out.  */
/* ------------------------------------------------------------------------ */

#define GiB (1024 * MiB)
#define ROW17_BYTES (3 * GiB)
#define ROW17_XOR 0xA5C3F00D12345678ull

/* The word at 8-byte index i of the argument. */
static inline uint64_t row17_word(size_t i)
{
    uint64_t z = (uint64_t)i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    return z ^ (z >> 31);
}

/* Result = argument with every 64-bit word XORed with ROW17_XOR: proves the
 * worker read all of the argument and wrote all of the result. A task that
 * finds a wrong argument word raises with its index. */
static int row17_task(pp_task *t)
{
    size_t n = 0;
    const uint64_t *a = pp_task_arg(t, &n);
    if (n != ROW17_BYTES)
        return pp_task_raise(t, 1, "argument of %zu bytes, expected %zu", n, (size_t)ROW17_BYTES);
    uint64_t *r = pp_task_result(t, n);
    if (!r)
        return pp_task_raise(t, 2, "no room for a %zu-byte result", n);
    for (size_t i = 0; i < n / 8; i++) {
        if (a[i] != row17_word(i))
            return pp_task_raise(t, 3, "argument word %zu is wrong", i);
        r[i] = a[i] ^ ROW17_XOR;
    }
    return 0;
}

Test(payload, row17_3gib_argument_and_result, PPT_FIXTURE, .timeout = 300)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.max_arg_size = ROW17_BYTES;
    cfg.max_result_size = ROW17_BYTES;
    cfg.arena_size = 8 * GiB; /* address space; pages are used only as touched */
    pp_executor *ex = make_pool_cfg(&cfg);

    uint64_t *arg = malloc(ROW17_BYTES);
    cr_assert_not_null(arg, "malloc(3 GiB)");
    for (size_t i = 0; i < ROW17_BYTES / 8; i++)
        arg[i] = row17_word(i);
    pp_future *f = submit_ok(ex, row17_task, arg, ROW17_BYTES);
    free(arg); /* pp_submit copied it: the client's buffer is not needed */

    const uint64_t *res = NULL;
    size_t sz = 0;
    int rc = pp_future_result(f, PP_FOREVER, (const void **)&res, &sz);
    if (rc == PP_ETASK) {
        pp_exception e;
        pp_future_exception(f, 0.0, &e);
        cr_assert_fail("the task failed: code %d: %s", e.code, e.message);
    }
    cr_assert_eq(rc, 0, "3 GiB round trip: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(sz, (size_t)ROW17_BYTES, "result size %zu", sz);
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < ROW17_BYTES / 8 && bad == SIZE_MAX; i++)
        if (res[i] != (row17_word(i) ^ ROW17_XOR))
            bad = i;
    cr_assert_eq(bad, SIZE_MAX, "result word %zu is wrong", bad);

    /* One byte over the configured limit is still refused at submit, as for
     * small limits (argument_over_limit), without touching the bytes. */
    pp_future *over = NULL;
    cr_expect_eq(pp_submit(ex, row17_task, res, ROW17_BYTES + 1, &over), PP_ETOOBIG);
    cr_expect_null(over);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- named shared blocks (pp_shm_share / pp_task_shared) ---------------- */

typedef struct share_probe {
    uint64_t handle;
    uint64_t off;  /* pp_shm_offset of the block at the client, 0: don't check */
} share_probe;

typedef struct share_seen {
    uint64_t size;
    uint64_t hash;     /* FNV-1a of the bytes read in place */
    int32_t in_place;  /* the pointer is the block's own (pp_task_shm(off)) */
    int32_t found;
} share_seen;

/* Looks the block up, hashes it where it lies. */
static int task_read_shared(pp_task *t)
{
    const share_probe *p = pp_task_arg(t, NULL);
    share_seen s = {0};
    size_t n = 12345;
    const void *b = pp_task_shared(t, p->handle, &n);
    s.found = b != NULL;
    s.size = n;
    if (b) {
        s.hash = ppt_fnv1a64(b, n);
        s.in_place = p->off && b == pp_task_shm(t, p->off);
    }
    return pp_task_set_result(t, &s, sizeof s);
}

static share_seen read_shared(pp_executor *ex, uint64_t handle, uint64_t off)
{
    share_probe p = {.handle = handle, .off = off};
    pp_future *f = submit_ok(ex, task_read_shared, &p, sizeof p);
    const void *d = NULL;
    size_t sz = 0;
    int rc = pp_future_result(f, PP_FOREVER, &d, &sz);
    cr_assert_eq(rc, 0, "task_read_shared: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(sz, sizeof(share_seen));
    share_seen s;
    memcpy(&s, d, sizeof s);
    pp_future_release(f);
    return s;
}

/* A 1 MiB block shared once is read in place by tasks on every worker (the
 * same bytes, the block's own address); unknown, zero and withdrawn handles
 * find nothing; withdrawal hands the block back; handles are not reused. */
Test(payload, shared_block_read_in_place, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool();
    size_t n = 1 * MiB;
    void *block = NULL;
    cr_assert_eq(pp_shm_alloc(ex, n, &block), 0);
    ppt_fill_seeded(block, n, 42);
    uint64_t want = ppt_fnv1a64(block, n);
    uint64_t h = 0;
    cr_assert_eq(pp_shm_share(ex, block, n, &h), 0);
    cr_assert_neq(h, 0);
    uint64_t off = pp_shm_offset(ex, block);
    for (int i = 0; i < 8; i++) {
        share_seen s = read_shared(ex, h, off);
        cr_expect(s.found && s.in_place, "task %d: found %d, in place %d", i, s.found, s.in_place);
        cr_expect_eq(s.size, n);
        cr_expect_eq(s.hash, want, "task %d read other bytes", i);
    }
    /* Unknown handles: 0, a malformed one, a well-formed one never made. */
    uint64_t bad[] = {0, 1, UINT64_MAX, (h & ~(uint64_t)0xff) | 0x3f, h + ((uint64_t)7 << 8)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        share_seen s = read_shared(ex, bad[i], 0);
        cr_expect(!s.found && s.size == 0, "handle %#llx found (size %llu)",
                  (unsigned long long)bad[i], (unsigned long long)s.size);
    }
    /* A second block of another size, under its own handle. */
    void *small = NULL;
    cr_assert_eq(pp_shm_alloc(ex, 100, &small), 0);
    memset(small, 7, 100);
    uint64_t h2 = 0;
    cr_assert_eq(pp_shm_share(ex, small, 100, &h2), 0);
    cr_expect_neq(h2, h);
    share_seen s2 = read_shared(ex, h2, pp_shm_offset(ex, small));
    cr_expect(s2.found && s2.in_place && s2.size == 100);
    cr_expect_eq(s2.hash, ppt_fnv1a64(small, 100));

    /* Withdrawn: the block comes back; tasks find nothing; twice: -ENOENT. */
    void *back = NULL;
    cr_assert_eq(pp_shm_unshare(ex, h, &back), 0);
    cr_expect_eq(back, block);
    cr_expect_eq(pp_shm_unshare(ex, h, &back), -ENOENT);
    cr_expect_null(back);
    share_seen s = read_shared(ex, h, 0);
    cr_expect(!s.found && s.size == 0, "a withdrawn handle was found");
    /* Sharing the same block again gives a new handle; the old stays dead. */
    uint64_t h3 = 0;
    cr_assert_eq(pp_shm_share(ex, block, n, &h3), 0);
    cr_expect_neq(h3, h);
    cr_expect(!read_shared(ex, h, 0).found, "an old handle found a new registration");
    cr_expect_eq(read_shared(ex, h3, off).hash, want);
    cr_expect_eq(pp_shm_unshare(ex, h3, NULL), 0);
    cr_expect_eq(pp_shm_unshare(ex, h2, NULL), 0);
    pp_shm_free(ex, small);
    pp_shm_free(ex, block);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Bad input is refused and registers nothing; PP_SHARE_MAX at once, then
 * -ENOSPC until one is withdrawn. */
Test(payload, shared_block_errors_and_table_full, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 1 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    void *block = NULL;
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &block), 0);
    uint64_t h = 99;
    char heap[16];
    cr_expect_eq(pp_shm_share(NULL, block, 1, &h), -EINVAL);
    cr_expect_eq(h, 0);
    cr_expect_eq(pp_shm_share(ex, NULL, 1, &h), -EINVAL);
    cr_expect_eq(pp_shm_share(ex, block, 1, NULL), -EINVAL);
    cr_expect_eq(pp_shm_share(ex, block, 0, &h), -EINVAL);
    cr_expect_eq(pp_shm_share(ex, heap, sizeof heap, &h), -EINVAL);
    cr_expect_eq(pp_shm_share(ex, block, 2 * MiB, &h), -EINVAL); /* past the segment */
    cr_expect_eq(pp_shm_unshare(NULL, 1, NULL), -EINVAL);
    cr_expect_eq(pp_shm_unshare(ex, 0, NULL), -ENOENT);
    cr_expect_eq(pp_shm_unshare(ex, 12345, NULL), -ENOENT);

    uint64_t hs[PP_SHARE_MAX];
    for (int i = 0; i < PP_SHARE_MAX; i++)
        cr_assert_eq(pp_shm_share(ex, (char *)block + i, 1, &hs[i]), 0, "share %d", i);
    cr_expect_eq(pp_shm_share(ex, block, 1, &h), -ENOSPC);
    cr_expect_eq(h, 0);
    cr_assert_eq(pp_shm_unshare(ex, hs[10], NULL), 0);
    cr_expect_eq(pp_shm_share(ex, block, 1, &h), 0);
    for (int i = 0; i < PP_SHARE_MAX; i++) {
        if (i == 10)
            continue;
        void *b = NULL;
        cr_expect_eq(pp_shm_unshare(ex, hs[i], &b), 0);
        cr_expect_eq(b, (char *)block + i);
        cr_expect_neq(hs[i], h);
    }
    cr_expect_eq(pp_shm_unshare(ex, h, NULL), 0);
    pp_shm_free(ex, block);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* The lookup against a racing withdraw + re-registration of the same table
 * entry (seqlock): the client alternates sharing block A and block B (the
 * entry is reused, the handle changes) and logs each handle; tasks look up
 * the latest handles over and over: each lookup finds nothing or exactly the
 * block that handle was made for, never the other. */
typedef struct share_log {
    uint64_t count;        /* entries written (atomic) */
    uint64_t stop;         /* the client is done (atomic) */
    uint64_t ready;        /* tasks looking (atomic) */
    uint64_t handle[4096]; /* handle i (mod 4096) was made for block A (i even) or B */
} share_log;

static int task_race_lookups(pp_task *t)
{
    uint64_t off = *(const uint64_t *)pp_task_arg(t, NULL);
    share_log *log = pp_task_shm(t, off);
    uint64_t bad = 0, found = 0;
    __atomic_fetch_add(&log->ready, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&log->stop, __ATOMIC_ACQUIRE)) {
        uint64_t n = __atomic_load_n(&log->count, __ATOMIC_ACQUIRE);
        for (uint64_t i = n > 4 ? n - 4 : 0; i < n; i++) {
            size_t size = 0;
            uint64_t h = __atomic_load_n(&log->handle[i % 4096], __ATOMIC_RELAXED);
            const unsigned char *p = pp_task_shared(t, h, &size);
            if (!p)
                continue;
            found++;
            unsigned char want = i % 2 ? 0xBB : 0xAA;
            size_t want_size = i % 2 ? 8192 : 4096;
            bad += size != want_size || p[0] != want || p[size - 1] != want;
        }
    }
    uint64_t r[2] = {bad, found};
    return pp_task_set_result(t, r, sizeof r);
}

Test(payload, shared_block_lookup_races_reregistration, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool();
    void *a = NULL, *b = NULL, *logp = NULL;
    cr_assert_eq(pp_shm_alloc(ex, 4096, &a), 0);
    cr_assert_eq(pp_shm_alloc(ex, 8192, &b), 0);
    cr_assert_eq(pp_shm_alloc(ex, sizeof(share_log), &logp), 0);
    memset(a, 0xAA, 4096);
    memset(b, 0xBB, 8192);
    share_log *log = logp;
    memset(log, 0, sizeof *log);
    uint64_t off = pp_shm_offset(ex, log);
    int nt = small_pool_size();
    pp_future *fs[2];
    for (int k = 0; k < nt; k++)
        fs[k] = submit_ok(ex, task_race_lookups, &off, sizeof off);
    /* Race only while every task looks (they start in their own time). */
    double dl = ppt_deadline(30);
    while (__atomic_load_n(&log->ready, __ATOMIC_ACQUIRE) < (uint64_t)nt) {
        cr_assert(!ppt_expired(dl), "the looking tasks did not start");
        ppt_sleep(0.001);
    }
    double end = ppt_now() + 0.3 * ppt_time_scale();
    for (uint64_t i = 0; i % 1024 || ppt_now() < end; i++) {
        uint64_t h = 0;
        cr_assert_eq(pp_shm_share(ex, i % 2 ? b : a, i % 2 ? 8192 : 4096, &h), 0);
        __atomic_store_n(&log->handle[i % 4096], h, __ATOMIC_RELAXED);
        __atomic_store_n(&log->count, i + 1, __ATOMIC_RELEASE);
        cr_assert_eq(pp_shm_unshare(ex, h, NULL), 0);
    }
    __atomic_store_n(&log->stop, 1, __ATOMIC_RELEASE);
    uint64_t found = 0;
    for (int k = 0; k < nt; k++) {
        const uint64_t *r = NULL;
        cr_assert_eq(pp_future_result(fs[k], PP_FOREVER, (const void **)&r, NULL), 0);
        cr_expect_eq(r[0], 0, "task %d: %llu lookups found the wrong block", k,
                     (unsigned long long)r[0]);
        found += r[1];
        pp_future_release(fs[k]);
    }
    cr_log_info("shared-block race: %llu lookups found their block", (unsigned long long)found);
    pp_shm_free(ex, logp);
    pp_shm_free(ex, b);
    pp_shm_free(ex, a);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ---- huge pages (pp_config.huge_pages) --------------------------------- */

/* What /proc/self/smaps says of the mapping holding @p. */
typedef struct vma_seen {
    int32_t found, advised; /* VmFlags has "hg" (MADV_HUGEPAGE) */
    int64_t pmd_kb;         /* ShmemPmdMapped: huge pages mapped whole */
    uint64_t align_mod;     /* @p's address modulo 2 MiB */
} vma_seen;

static vma_seen vma_of(const void *p)
{
    vma_seen v = {.align_mod = (uintptr_t)p % (2 * MiB)};
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return v;
    char line[512];
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3 && strchr(line, ' ') &&
            strchr(line, '-') < strchr(line, ' ')) {
            if (in)
                break; /* the next mapping */
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            v.found |= in;
            continue;
        }
        long kb;
        if (in && sscanf(line, "ShmemPmdMapped: %ld kB", &kb) == 1)
            v.pmd_kb = kb;
        if (in && !strncmp(line, "VmFlags:", 8))
            v.advised = strstr(line, " hg") != NULL;
    }
    fclose(f);
    return v;
}

/* Task: touch the @arg[1] bytes at arena offset @arg[0] and report the
 * worker's own mapping of them. */
static int t_touch_and_look(pp_task *t)
{
    const uint64_t *a = pp_task_arg(t, NULL);
    volatile char *p = pp_task_shm(t, a[0]);
    if (!p)
        return pp_task_raise(t, 1, "offset %llu not in the segment", (unsigned long long)a[0]);
    for (uint64_t i = 0; i < a[1]; i += 4096)
        p[i] = 1;
    vma_seen v = vma_of((const void *)p);
    return pp_task_set_result(t, &v, sizeof v);
}

static vma_seen worker_view(pp_executor *ex, void *block, size_t n)
{
    uint64_t a[2] = {pp_shm_offset(ex, block), n};
    pp_future *f = submit_ok(ex, t_touch_and_look, a, sizeof a);
    const vma_seen *v = NULL;
    int rc = pp_future_result(f, PP_FOREVER, (const void **)&v, NULL);
    cr_assert_eq(rc, 0, "task: %d %s", rc, pp_strerror(rc));
    vma_seen out = *v;
    pp_future_release(f);
    return out;
}

/* Whether this kernel gives shared memory transparent huge pages when
 * advised (shmem_enabled advise, always or within_size). */
static bool shmem_thp_allowed(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
    char buf[256] = "";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = 0;
        fclose(f);
    }
    return strstr(buf, "[advise]") || strstr(buf, "[always]") || strstr(buf, "[within_size]");
}

/* The promise of pp_config.huge_pages: a fresh pool's first pp_shm_alloc
 * block starts on a 2 MiB boundary in the client and in a worker (whatever
 * the start method), and the arena's mapping carries MADV_HUGEPAGE in both
 * with 1 (the default), in neither with 0. */
Test(payload, huge_pages_advised_in_every_process, PPT_FIXTURE, .timeout = 60)
{
    /* A kernel without transparent huge pages refuses the advice. */
    int thp = access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0;
    for (int huge = 1; huge >= 0; huge--) {
        pp_config cfg;
        ppt_config(&cfg, 1);
        cr_expect_eq(cfg.huge_pages, 1, "default");
        cfg.huge_pages = huge;
        pp_executor *ex = make_pool_cfg(&cfg);
        void *block = NULL;
        cr_assert_eq(pp_shm_alloc(ex, 4 * MiB, &block), 0);
        vma_seen c = vma_of(block);
        cr_expect(c.found, "client: no mapping holds the block");
        cr_expect_eq(c.align_mod, 0, "client: block at %p, not on a 2 MiB boundary", block);
        cr_expect_eq(c.advised, huge && thp, "client: hg flag %d with huge_pages %d", c.advised, huge);
        vma_seen w = worker_view(ex, block, 4 * MiB);
        cr_expect(w.found, "worker: no mapping holds the block");
        cr_expect_eq(w.align_mod, 0, "worker: the block is not on a 2 MiB boundary");
        cr_expect_eq(w.advised, huge && thp, "worker: hg flag %d with huge_pages %d", w.advised, huge);
        pp_shm_free(ex, block);
        cr_assert_eq(pp_executor_destroy(ex), 0);
    }
}

/* Where the kernel allows it, the 4 MiB a worker touches come as huge
 * pages mapped whole (in the worker, and then in the client too). */
Test(payload, huge_pages_taken_where_the_kernel_allows, PPT_FIXTURE, .timeout = 60)
{
    if (!shmem_thp_allowed())
        cr_skip_test("transparent_hugepage/shmem_enabled gives shared memory no huge pages here");
    pp_config cfg;
    ppt_config(&cfg, 1);
    pp_executor *ex = make_pool_cfg(&cfg);
    void *block = NULL;
    cr_assert_eq(pp_shm_alloc(ex, 4 * MiB, &block), 0);
    vma_seen w = worker_view(ex, block, 4 * MiB);
    cr_expect_geq(w.pmd_kb, 2048, "worker: %lld kB mapped as huge pages", (long long)w.pmd_kb);
    volatile char *p = block;
    for (size_t i = 0; i < 4 * MiB; i += 4096)
        (void)p[i];
    cr_expect_geq(vma_of(block).pmd_kb, 2048, "client: no huge page mapped");
    pp_shm_free(ex, block);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Values other than 0 and 1 are refused; PPOOL_HUGE_PAGES sets the default. */
Test(payload, huge_pages_config, PPT_FIXTURE, .timeout = 30)
{
    pp_config cfg;
    int bad[] = {-1, 2, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ppt_config(&cfg, 1);
        cfg.huge_pages = bad[i];
        pp_executor *ex = NULL;
        cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL, "huge_pages %d accepted", bad[i]);
        cr_expect_null(ex);
    }
    setenv("PPOOL_HUGE_PAGES", "0", 1);
    pp_config_init(&cfg);
    cr_expect_eq(cfg.huge_pages, 0);
    const char *junk[] = {"", "2", "yes", "1x", "-1"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        setenv("PPOOL_HUGE_PAGES", junk[i], 1);
        pp_config_init(&cfg);
        cr_expect_eq(cfg.huge_pages, 1, "PPOOL_HUGE_PAGES=\"%s\" gave %d", junk[i], cfg.huge_pages);
    }
    unsetenv("PPOOL_HUGE_PAGES");
}
