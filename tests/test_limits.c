/*
 * test_limits.c — resource limits (issue 11): arguments that can never fit
 * the arena, arguments waiting for arena room, shutdown racing the backlog,
 * size rounding overflow, result blocks of dead workers, the arena's hole
 * punching against concurrent allocations, many loaded libraries, and the
 * arena's placement (lowest-address first fit, issue 16).
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#ifndef PP_ARENA_MAX /* lets this file build against an older header */
#define PP_ARENA_MAX ((size_t)1 << 48)
#endif

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_future *submit_ok(pp_executor *ex, pp_fn fn, const void *arg, size_t n)
{
    pp_future *f = NULL;
    int rc = pp_submit(ex, fn, arg, n, &f);
    cr_assert_eq(rc, 0, "pp_submit(%zu bytes): %d %s", n, rc, pp_strerror(rc));
    cr_assert_not_null(f);
    return f;
}

/* Fill the whole arena with pp_shm_alloc blocks of @chunk bytes (then
 * smaller ones down to one unit). Returns how many were taken; fills @blocks. */
static int fill_arena(pp_executor *ex, void **blocks, int max, size_t chunk)
{
    int n = 0;
    for (size_t c = chunk; c >= 4 * KiB && n < max; c /= 2)
        while (n < max && pp_shm_alloc(ex, c, &blocks[n]) == 0)
            n++;
    return n;
}

static void free_blocks(pp_executor *ex, void **blocks, int n)
{
    for (int i = 0; i < n; i++)
        pp_shm_free(ex, blocks[i]);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* item 1: what can never fit is refused; what cannot fit now waits          */
/* ------------------------------------------------------------------------ */

/* An argument larger than the whole arena fails at submit with PP_ETOOBIG,
 * even when max_arg_size allows it; later submissions run; destroy returns. */
Test(limits, arg_larger_than_arena_refused_at_submit, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 1 * MiB;
    cfg.max_arg_size = 3 * GiB;
    pp_executor *ex = make_pool_cfg(&cfg);

    size_t big = 2 * MiB;
    void *buf = calloc(1, big);
    cr_assert_not_null(buf);
    pp_future *f = NULL;
    int rc = pp_submit(ex, ppt_task_hash64, buf, big, &f);
    cr_expect_eq(rc, PP_ETOOBIG, "2 MiB argument, 1 MiB arena: %d %s", rc, pp_strerror(rc));
    cr_expect_null(f);
    pp_future_release(f);
    /* Exactly the arena's size still fits. */
    f = submit_ok(ex, ppt_task_hash64, buf, 1 * MiB);
    cr_expect_eq(pp_future_result(f, 30.0, NULL, NULL), 0);
    pp_future_release(f);
    free(buf);

    /* A 0-byte task is not held up by anything. */
    f = submit_ok(ex, ppt_task_noop, NULL, 0);
    cr_expect_eq(pp_future_result(f, 30.0, NULL, NULL), 0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* The case: a 2.2 GB argument, max_arg_size 3 GiB, the default
 * 1 GiB arena. The bytes are a PROT_NONE reservation: refused before a copy. */
Test(limits, arg_2_2gb_over_default_arena, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.max_arg_size = 3 * GiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    size_t big = (size_t)2200 * 1000 * 1000;
    void *p = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    pp_future *f = NULL;
    int rc = pp_submit(ex, ppt_task_hash64, p, big, &f);
    cr_expect_eq(rc, PP_ETOOBIG, "2.2 GB argument, 1 GiB arena: %d %s", rc, pp_strerror(rc));
    pp_future_release(f);
    munmap(p, big);
    f = submit_ok(ex, ppt_task_noop, NULL, 0);
    cr_expect_eq(pp_future_result(f, 30.0, NULL, NULL), 0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* The arena is full of pp_shm_alloc blocks: a large argument waits for room
 * (without spinning), smaller tasks behind it run, and it runs once a block
 * is freed. */
Test(limits, arg_waiting_for_room_blocks_nothing, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 4 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    void *blocks[64];
    int nb = fill_arena(ex, blocks, 64, 1 * MiB);
    cr_assert_geq(nb, 4);

    size_t big = 512 * KiB;
    unsigned char *buf = malloc(big);
    cr_assert_not_null(buf);
    ppt_fill_seeded(buf, big, 11);
    pp_future *fb = submit_ok(ex, ppt_task_hash64, buf, big);

    enum { N = 50 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++) {
        uint64_t v = (uint64_t)i;
        fs[i] = submit_ok(ex, ppt_task_echo, &v, sizeof v);
    }
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_result(fs[i], 20.0, &d, &n);
        cr_expect_eq(rc, 0, "small task %d behind a waiting argument: %d %s", i, rc,
                     pp_strerror(rc));
        pp_future_release(fs[i]);
    }

    /* Waiting costs no CPU: over a 0.5 s wait the process stays far below
     * one core (a spinning service thread burns the whole 0.5 s). */
    double c0 = cpu_seconds(), t0 = ppt_now();
    cr_expect_eq(pp_future_result(fb, 0.5, NULL, NULL), -ETIMEDOUT);
    double used = cpu_seconds() - c0, wall = ppt_now() - t0;
    cr_expect_lt(used, 0.25 * wall + 0.05, "waiting for arena room used %.3f s CPU in %.3f s",
                 used, wall);

    /* Room comes back: the argument goes in and runs. */
    free_blocks(ex, blocks, nb);
    const void *d = NULL;
    size_t n = 0;
    cr_assert_eq(pp_future_result(fb, 20.0, &d, &n), 0);
    uint64_t got;
    cr_assert_eq(n, sizeof got);
    memcpy(&got, d, sizeof got);
    cr_expect_eq(got, ppt_fnv1a64(buf, big));
    pp_future_release(fb);
    free(buf);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* destroy (shutdown with wait, no cancel) while an argument can never get
 * room: it fails with -ENOMEM once nothing runs, and destroy returns. */
Test(limits, destroy_with_argument_that_finds_no_room, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 2 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    void *blocks[64];
    int nb = fill_arena(ex, blocks, 64, 1 * MiB);
    cr_assert_geq(nb, 2);
    size_t big = 256 * KiB;
    void *buf = calloc(1, big);
    cr_assert_not_null(buf);
    pp_future *fb = submit_ok(ex, ppt_task_hash64, buf, big);
    pp_future *fs = submit_ok(ex, ppt_task_noop, NULL, 0);
    free(buf);
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(pp_future_result(fs, 0, NULL, NULL), 0);
    int rc = pp_future_result(fb, 0, NULL, NULL);
    cr_expect_eq(rc, -ENOMEM, "argument without room at destroy: %d %s", rc, pp_strerror(rc));
    pp_future_release(fb);
    pp_future_release(fs);
}

/* ------------------------------------------------------------------------ */
/* item 2: shutdown(cancel_futures) racing the pump's failed bind            */
/* ------------------------------------------------------------------------ */

Test(limits, shutdown_cancel_races_waiting_argument, PPT_FIXTURE, .timeout = 120)
{
    /* The arena is 4 KiB blocks with every other one freed: an argument of
     * two units never fits, and each of the service thread's attempts scans
     * the whole bitmap unit by unit, so it spends most of its time between
     * taking the entry and giving up on it: the window the race needs. */
    enum { UNITS = 16384 };
    void **blocks = calloc(UNITS, sizeof *blocks);
    cr_assert_not_null(blocks);
    for (int round = 0; round < 30; round++) {
        pp_config cfg;
        ppt_config(&cfg, 1);
        cfg.arena_size = UNITS * 4 * KiB;
        pp_executor *ex = make_pool_cfg(&cfg);
        int nb = 0;
        while (nb < UNITS && pp_shm_alloc(ex, 4 * KiB, &blocks[nb]) == 0)
            nb++;
        cr_assert_eq(nb, UNITS);
        for (int i = 0; i < nb; i += 2) {
            pp_shm_free(ex, blocks[i]);
            blocks[i] = NULL;
        }
        size_t big = 8 * KiB;
        void *buf = calloc(1, big);
        cr_assert_not_null(buf);
        pp_future *f = submit_ok(ex, ppt_task_hash64, buf, big);
        free(buf);
        /* Let the service thread retry a varying number of times. */
        for (volatile int spin = 0; spin < round * 20000; spin++)
            ;
        cr_assert_eq(pp_shutdown(ex, true, true), 0);
        int rc = pp_future_result(f, 5.0, NULL, NULL);
        cr_expect_eq(rc, -ECANCELED, "round %d: %d %s", round, rc, pp_strerror(rc));
        pp_future_release(f);
        for (int i = 1; i < nb; i += 2)
            pp_shm_free(ex, blocks[i]);
        cr_assert_eq(pp_executor_destroy(ex), 0);
    }
    free(blocks);
}

/* ------------------------------------------------------------------------ */
/* item 3: size rounding overflow                                            */
/* ------------------------------------------------------------------------ */

Test(limits, arena_size_overflow_rejected, PPT_FIXTURE, .timeout = 60)
{
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX - 4095, PP_ARENA_MAX + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pp_config cfg;
        ppt_config(&cfg, 1);
        cfg.arena_size = bad[i];
        pp_executor *ex = NULL;
        int rc = pp_executor_create(&ex, &cfg);
        cr_expect_eq(rc, -EINVAL, "arena_size %zu: %d %s", bad[i], rc, pp_strerror(rc));
        cr_expect_null(ex);
        if (ex)
            pp_executor_destroy(ex);
    }
    /* Other sizes that are rounded: out of range is -EINVAL, never wrapped. */
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.inline_size = SIZE_MAX;
    pp_executor *ex = NULL;
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL);
    ppt_config(&cfg, 1);
    cfg.slots = UINT32_MAX;
    cr_expect_eq(pp_executor_create(&ex, &cfg), -EINVAL);
    cr_expect_null(ex);

    /* A pool still works, and allocations near SIZE_MAX fail cleanly. */
    ppt_config(&cfg, 1);
    cfg.arena_size = 1 * MiB;
    ex = make_pool_cfg(&cfg);
    void *p = (void *)1;
    cr_expect_eq(pp_shm_alloc(ex, SIZE_MAX, &p), -ENOMEM);
    cr_expect_null(p);
    cr_expect_eq(pp_shm_alloc(ex, SIZE_MAX - 4094, &p), -ENOMEM);
    /* Timeouts too large for nanoseconds mean "no limit". */
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = 1e300;
    o.kill_grace = 1e300;
    pp_future *f = NULL;
    cr_assert_eq(pp_submit_ex(ex, ppt_task_noop, NULL, 0, &o, &f), 0);
    cr_expect_eq(pp_future_result(f, 30.0, NULL, NULL), 0);
    pp_future_release(f);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* item 4: a dead worker's result block is reclaimed                         */
/* ------------------------------------------------------------------------ */

typedef struct die_arg {
    size_t size;
    int how; /* 0: SIGKILL itself; 1: wait to be killed (timeout) */
} die_arg;

static int task_result_then_die(pp_task *t)
{
    die_arg a;
    memcpy(&a, pp_task_arg(t, NULL), sizeof a);
    unsigned char *r = pp_task_result(t, a.size);
    if (!r)
        return 99; /* no room: the leak this test looks for */
    memset(r, 0x5a, 4096);
    if (a.how == 0)
        raise(SIGKILL);
    signal(SIGTERM, SIG_IGN); /* only the SIGKILL after the grace ends it */
    for (;;)
        pause();
}

static void expect_room_for(pp_executor *ex, size_t n)
{
    pp_future *f = submit_ok(ex, ppt_task_big_result, &n, sizeof n);
    const void *d = NULL;
    size_t sz = 0;
    int rc = pp_future_result(f, 30.0, &d, &sz);
    cr_expect_eq(rc, 0, "a %zu MiB result after the deaths: %d %s", n / MiB, rc,
                 pp_strerror(rc));
    if (rc == 0) {
        cr_expect_eq(sz, n);
        cr_expect_eq(ppt_check_pattern(d, sz), sz);
    }
    pp_future_release(f);
}

Test(limits, crashed_task_result_block_reclaimed, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 256 * MiB;
    cfg.max_result_size = 256 * MiB;
    cfg.on_worker_death = PP_DEATH_RESPAWN;
    pp_executor *ex = make_pool_cfg(&cfg);
    for (int i = 0; i < 4; i++) {
        die_arg a = {64 * MiB, 0};
        pp_future *f = submit_ok(ex, task_result_then_die, &a, sizeof a);
        int rc = pp_future_result(f, 30.0, NULL, NULL);
        cr_expect_eq(rc, PP_EWORKER, "crash %d: %d %s", i, rc, pp_strerror(rc));
        pp_future_release(f);
    }
    expect_room_for(ex, 192 * MiB);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* Orphaned: the future is released before its worker crashes. */
Test(limits, crashed_orphan_result_block_reclaimed, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 256 * MiB;
    cfg.max_result_size = 256 * MiB;
    cfg.on_worker_death = PP_DEATH_RESPAWN;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_stats st;
    for (int i = 0; i < 4; i++) {
        die_arg a = {64 * MiB, 0};
        pp_future_release(submit_ok(ex, task_result_then_die, &a, sizeof a));
        cr_assert(PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 0 &&
                                   st.respawns >= (uint64_t)i + 1,
                               30.0));
    }
    expect_room_for(ex, 192 * MiB);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(limits, killed_task_result_block_reclaimed, PPT_FIXTURE, .timeout = 120)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 256 * MiB;
    cfg.max_result_size = 256 * MiB;
    cfg.on_worker_death = PP_DEATH_RESPAWN;
    pp_executor *ex = make_pool_cfg(&cfg);
    for (int i = 0; i < 3; i++) {
        die_arg a = {64 * MiB, 1};
        pp_submit_opts o;
        pp_submit_opts_init(&o);
        o.timeout = 0.1;
        o.kill_grace = 0.05;
        pp_future *f = NULL;
        cr_assert_eq(pp_submit_ex(ex, task_result_then_die, &a, sizeof a, &o, &f), 0);
        int rc = pp_future_result(f, 30.0, NULL, NULL);
        cr_expect_eq(rc, PP_EKILLED, "timeout %d: %d %s", i, rc, pp_strerror(rc));
        pp_future_release(f);
    }
    expect_room_for(ex, 192 * MiB);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* item 5: a freed block is punched before it can be handed out again       */
/* ------------------------------------------------------------------------ */

typedef struct punch_ctx {
    pp_executor *ex;
    unsigned char tag;
    double until;
    long bad, rounds;
} punch_ctx;

static void *punch_thread(void *arg)
{
    punch_ctx *c = arg;
    const size_t n = 256 * KiB; /* the size from which frees punch */
    while (!ppt_expired(c->until)) {
        void *p = NULL;
        if (pp_shm_alloc(c->ex, n, &p) != 0) {
            sched_yield();
            continue;
        }
        unsigned char *b = p;
        memset(b, c->tag, n);
        sched_yield();
        for (size_t i = 0; i < n; i += 4096)
            if (b[i] != c->tag || b[i + 4095] != c->tag) {
                c->bad++;
                break;
            }
        pp_shm_free(c->ex, p);
        c->rounds++;
    }
    return NULL;
}

Test(limits, freed_block_punched_before_reuse, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 512 * KiB; /* two blocks: every free is reused at once */
    pp_executor *ex = make_pool_cfg(&cfg);
    enum { T = 3 };
    punch_ctx c[T];
    pthread_t th[T];
    double until = ppt_deadline(3.0);
    for (int i = 0; i < T; i++) {
        c[i] = (punch_ctx){.ex = ex, .tag = (unsigned char)(0x11 * (i + 1)), .until = until};
        cr_assert_eq(pthread_create(&th[i], NULL, punch_thread, &c[i]), 0);
    }
    long bad = 0, rounds = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        bad += c[i].bad;
        rounds += c[i].rounds;
    }
    cr_log_info("%ld rounds, %ld blocks whose data was zeroed", rounds, bad);
    cr_expect_gt(rounds, 100);
    cr_expect_eq(bad, 0, "%ld of %ld blocks had their data punched by another free", bad,
                 rounds);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* ------------------------------------------------------------------------ */
/* item 6: more than 256 loaded shared libraries                             */
/* ------------------------------------------------------------------------ */

#define NLIBS 300

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = in && out ? 0 : -1;
    char buf[65536];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

Test(limits, many_loaded_libraries, PPT_FIXTURE, .timeout = 120)
{
    char dir[] = "/tmp/ppool_limits_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char src[512], so[512], cmd[1400];
    snprintf(src, sizeof src, "%s/lib.c", dir);
    snprintf(so, sizeof so, "%s/lib.so", dir);
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs("struct pp_task;\nint ppt_lib_task(struct pp_task *t) { (void)t; return 0; }\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -shared -fPIC -o '%s' '%s'", so, src);
    int crc = system(cmd);
    unlink(src);
    if (crc != 0) {
        unlink(so);
        rmdir(dir);
        cr_skip_test("no C compiler to build test libraries (%s)", cmd);
    }
    void *h[NLIBS];
    char path[NLIBS][512];
    int loaded = 0;
    for (int i = 0; i < NLIBS; i++) {
        snprintf(path[i], sizeof path[i], "%s/libppt%03d.so", dir, i);
        cr_assert_eq(copy_file(so, path[i]), 0, "copy to %s", path[i]);
        h[i] = dlopen(path[i], RTLD_NOW | RTLD_LOCAL);
        cr_assert_not_null(h[i], "dlopen %s: %s", path[i], dlerror());
        loaded++;
    }
    unlink(so);

    pp_config cfg;
    ppt_config(&cfg, 1);
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_expect_eq(rc, 0, "create with %d extra libraries: %d %s", NLIBS, rc, pp_strerror(rc));
    if (rc == 0) {
        pp_future *fu = submit_ok(ex, ppt_task_noop, NULL, 0);
        cr_expect_eq(pp_future_result(fu, 30.0, NULL, NULL), 0);
        pp_future_release(fu);
        /* A function from the last library loaded (module index > 256). */
        pp_fn last = (pp_fn)(uintptr_t)dlsym(h[NLIBS - 1], "ppt_lib_task");
        cr_assert_not_null(last);
        fu = NULL;
        rc = pp_submit(ex, last, NULL, 0, &fu);
        cr_expect_eq(rc, 0, "submit from library %d: %d %s", NLIBS - 1, rc, pp_strerror(rc));
        if (fu) {
            rc = pp_future_result(fu, 30.0, NULL, NULL);
            cr_expect_eq(rc, 0, "task from library %d: %d %s", NLIBS - 1, rc, pp_strerror(rc));
            pp_future_release(fu);
        }
        cr_expect_eq(pp_executor_destroy(ex), 0);
    }
    for (int i = 0; i < loaded; i++) {
        dlclose(h[i]);
        unlink(path[i]);
    }
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* the arena places lowest-address first fit (issue 16, docs/scaling.md)    */
/* ------------------------------------------------------------------------ */

/* A freed block is handed out again at once (its pages are already mapped
 * everywhere), the lowest hole that fits is taken, and a block that does
 * not fit a hole goes past it without moving the search past the hole. */
Test(limits, arena_reuses_the_lowest_free_block_first, PPT_FIXTURE, .timeout = 30)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.arena_size = 16 * MiB;
    pp_executor *ex = make_pool_cfg(&cfg);
    void *a, *b, *c, *d, *e, *f;
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &a), 0);
    cr_assert_eq(pp_shm_alloc(ex, 8 * KiB, &b), 0);
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &c), 0);
    cr_assert_lt((char *)a, (char *)b);
    cr_assert_lt((char *)b, (char *)c);
    /* free-then-alloc of the same size: the same block (next fit moved on) */
    for (int i = 0; i < 100; i++) {
        pp_shm_free(ex, c);
        void *again;
        cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &again), 0);
        cr_assert_eq(again, c, "round %d: %p, the freed block was %p", i, again, c);
    }
    /* a hole of 8 KiB at b: a 12 KiB block goes past it, the hole stays first */
    pp_shm_free(ex, b);
    cr_assert_eq(pp_shm_alloc(ex, 12 * KiB, &d), 0);
    cr_assert_gt((char *)d, (char *)c);
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &e), 0);
    cr_assert_eq(e, b, "the lowest hole is used first");
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &f), 0);
    cr_assert_eq((char *)f, (char *)b + 4 * KiB, "then the rest of it");
    /* the lowest block freed last is still found first */
    pp_shm_free(ex, a);
    void *g;
    cr_assert_eq(pp_shm_alloc(ex, 4 * KiB, &g), 0);
    cr_assert_eq(g, a);
    void *blocks[] = {c, d, e, f, g};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        pp_shm_free(ex, blocks[i]);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
