/*
 * test_start.c — start methods (fork, spawn, forkserver) and function
 * translation. CTest also runs this whole suite with PPOOL_START_METHOD set,
 * but each test here names its methods explicitly.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_testutil.h"
#include <ppool.h>

int ppt_lib_triple(pp_task *t); /* libppt_shared.so */

static const pp_start_method methods[] = {PP_START_FORK, PP_START_SPAWN, PP_START_FORKSERVER};
static const char *names[] = {"?", "fork", "spawn", "forkserver"};

static int main_double(pp_task *t) /* in the executable, and static */
{
    const int64_t *x = pp_task_arg(t, NULL);
    int64_t y = 2 * *x;
    return pp_task_set_result(t, &y, sizeof y);
}

int ppt_exported_square(pp_task *t); /* in the executable, external linkage */
int ppt_exported_square(pp_task *t)
{
    const int64_t *x = pp_task_arg(t, NULL);
    int64_t y = *x * *x;
    return pp_task_set_result(t, &y, sizeof y);
}

static int init_seen;
static int init_record(const void *args, size_t n)
{
    init_seen = n == 5 && memcmp(args, "hello", 5) == 0;
    return init_seen ? 0 : 1;
}

static int read_init_seen(pp_task *t)
{
    return pp_task_set_result(t, &init_seen, sizeof init_seen);
}

static pp_executor *start(pp_start_method m, int workers)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.start_method = m;
    cfg.max_workers = workers;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "%s: create: %s", names[m], pp_strerror(rc));
    cr_assert_eq(pp_start_method_used(ex), m);
    return ex;
}

static int64_t call(pp_executor *ex, pp_fn fn, int64_t x)
{
    pp_future *f;
    int rc = pp_submit(ex, fn, &x, sizeof x, &f);
    cr_assert_eq(rc, 0, "submit: %s", pp_strerror(rc));
    const void *r;
    size_t n;
    rc = pp_future_result(f, 30, &r, &n);
    pp_exception e;
    pp_future_exception(f, 0, &e);
    cr_assert_eq(rc, 0, "result: %s (%s)", pp_strerror(rc), e.message);
    cr_assert_eq(n, sizeof(int64_t));
    int64_t y = *(const int64_t *)r;
    pp_future_release(f);
    return y;
}

TestSuite(start, .init = pp_test_setup, .fini = pp_test_teardown, .timeout = 120);

Test(start, functions_from_the_program_a_library_and_static_ones)
{
    for (size_t i = 0; i < 3; i++) {
        pp_executor *ex = start(methods[i], 2);
        for (int64_t x = 1; x <= 50; x++) {
            cr_assert_eq(call(ex, main_double, x), 2 * x, "%s static", names[methods[i]]);
            cr_assert_eq(call(ex, ppt_exported_square, x), x * x, "%s exported", names[methods[i]]);
            cr_assert_eq(call(ex, ppt_lib_triple, x), 3 * x, "%s library", names[methods[i]]);
        }
        cr_assert_eq(pp_executor_destroy(ex), 0);
    }
}

Test(start, initializer_and_its_args_under_every_method)
{
    for (size_t i = 0; i < 3; i++) {
        pp_config cfg;
        pp_config_init(&cfg);
        cfg.start_method = methods[i];
        cfg.max_workers = 2;
        cfg.initializer = init_record;
        cfg.initargs = "hello";
        cfg.initargs_size = 5;
        pp_executor *ex;
        cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
        pp_future *f;
        const void *r;
        cr_assert_eq(pp_submit(ex, read_init_seen, NULL, 0, &f), 0);
        cr_assert_eq(pp_future_result(f, 30, &r, NULL), 0, "%s", names[methods[i]]);
        cr_assert_eq(*(const int *)r, 1, "%s: the initializer ran in the worker", names[methods[i]]);
        pp_future_release(f);
        pp_executor_destroy(ex);
    }
}

Test(start, a_library_loaded_after_the_pool_is_refused_at_submit)
{
    const char *dir = getenv("PPT_LIBDIR");
    cr_assert(dir, "PPT_LIBDIR not set (CTest sets it)");
    char path[4096];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/libppt_late_%s.so", dir, names[methods[i]]);
        pp_executor *ex = start(methods[i], 1);
        void *h = dlopen(path, RTLD_NOW);
        cr_assert(h, "dlopen %s: %s", path, dlerror());
        pp_fn late = (pp_fn)(uintptr_t)dlsym(h, "ppt_late_task");
        cr_assert(late);
        pp_future *f = (pp_future *)1;
        cr_assert_eq(pp_submit(ex, late, NULL, 0, &f), PP_ENOFUNC, "%s", names[methods[i]]);
        cr_assert_null(f);
        cr_assert_str_neq(pp_strerror(PP_ENOFUNC), "unknown error");
        cr_assert_eq(call(ex, main_double, 4), 8, "the pool is unaffected");
        pp_executor_destroy(ex);
        /* A pool created after the dlopen knows the library: it works there. */
        ex = start(methods[i], 1);
        cr_assert_eq(pp_submit(ex, late, NULL, 0, &f), 0, "%s after dlopen", names[methods[i]]);
        const void *r;
        cr_assert_eq(pp_future_result(f, 30, &r, NULL), 0, "%s: library dlopen'ed before the pool",
                     names[methods[i]]);
        cr_assert_eq(*(const int *)r, 7);
        pp_future_release(f);
        pp_executor_destroy(ex);
        dlclose(h);
    }
}

Test(start, openmp_threads_before_the_pool)
{
    /* A numerical code: OpenMP threads already run when the pool starts. */
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) num_threads(4)
    for (int i = 0; i < 1000000; i++)
        sum += 1.0 / (1.0 + i);
    cr_assert_gt(sum, 1.0);
    cr_assert_gt(omp_get_max_threads(), 0);
    pp_config cfg;
    pp_config_init(&cfg);
    pp_executor *ex;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    /* The default notices the threads and does not fork this process. */
    if (!getenv("PPOOL_START_METHOD"))
        cr_assert_eq(pp_start_method_used(ex), PP_START_FORKSERVER);
    pp_executor_destroy(ex);
    for (size_t i = 1; i < 3; i++) { /* spawn, forkserver */
        ex = start(methods[i], 2);
        for (int64_t x = 0; x < 100; x++)
            cr_assert_eq(call(ex, main_double, x), 2 * x);
        pp_executor_destroy(ex);
    }
}

static void expect_broken_start(pp_start_method m, const char *which)
{
    setenv("PPOOL_TEST_BAD_FD", which, 1);
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.start_method = m;
    cfg.max_workers = 2;
    pp_executor *ex = NULL;
    double t0 = ppt_now();
    int rc = pp_executor_create(&ex, &cfg);
    unsetenv("PPOOL_TEST_BAD_FD");
    cr_assert_eq(rc, PP_EBROKEN, "%s with a bad %s fd: %s", names[m], which, pp_strerror(rc));
    cr_assert_null(ex);
    cr_assert_lt(ppt_now() - t0, 10.0, "reported promptly, not a hang");
}

Test(start, a_bad_fd_in_a_spawned_process_is_a_broken_pool)
{
    expect_broken_start(PP_START_SPAWN, "manager");
    expect_broken_start(PP_START_FORKSERVER, "manager");
    expect_broken_start(PP_START_SPAWN, "worker");
}

Test(start, respawn_and_recycling_under_every_method)
{
    for (size_t i = 0; i < 3; i++) {
        pp_config cfg;
        pp_config_init(&cfg);
        cfg.start_method = methods[i];
        cfg.max_workers = 2;
        cfg.max_tasks_per_child = 3;
        pp_executor *ex;
        cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
        for (int64_t x = 0; x < 30; x++)
            cr_assert_eq(call(ex, main_double, x), 2 * x, "%s", names[methods[i]]);
        /* 10 processes ran the 30 tasks: 8 replacements at least. The last
         * retirements follow the last results, and the counters follow the
         * manager (documented lag): wait for them rather than read once. */
        pp_stats st;
        PPT_WAIT_FOR(pp_executor_stats(ex, &st, NULL, 0) >= 1 && st.respawns >= 8, 10.0);
        cr_assert_geq(st.respawns, 8, "%s: workers were recycled (respawns %llu)",
                      names[methods[i]], (unsigned long long)st.respawns);
        pp_executor_destroy(ex);
    }
}
