/*
 * test_mpi_large — 64 MiB arguments (max_arg_size) cross ranks (header, then
 * the bytes sent straight from the root's arena), and 16 MiB results come
 * back straight into the root's arena; the bytes are checked on both sides.
 */
#include <stdint.h>
#include <string.h>

#include "mpi_check.h"

#define ARG_BYTES ((size_t)64 << 20)
#define RES_BYTES ((size_t)16 << 20)

static uint64_t pattern(uint64_t i, uint64_t seed) { return (i * 0x9e3779b97f4a7c15ull) ^ seed; }

/* Checks the argument's pattern, answers with RES_BYTES of another one. */
static int t_big(pp_task *t)
{
    size_t n;
    const uint64_t *a = pp_task_arg(t, &n);
    if (n != ARG_BYTES)
        return pp_task_raise(t, 1, "argument of %zu bytes", n);
    uint64_t seed = a[0];
    for (size_t i = 1; i < n / 8; i++)
        if (a[i] != pattern(i, seed))
            return pp_task_raise(t, 2, "argument corrupt at word %zu", i);
    uint64_t *r = pp_task_result(t, RES_BYTES);
    if (!r)
        return 3;
    for (size_t i = 0; i < RES_BYTES / 8; i++)
        r[i] = pattern(i, ~seed);
    return 0;
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED)
        return mc_finish();
    CHECK_EQ(rc, 0);
    if (rc)
        return mc_finish();
    uint64_t *arg = malloc(ARG_BYTES);
    pp_future *fs[3];
    int ranks = 0;
    /* Rounds of 3 until one crossed (on a loaded machine the root's worker
     * may take all three of a round before the comm thread runs). */
    for (int round = 0; round < 5 && !(ranks & 6); round++) {
    for (int k = 0; k < 3; k++) {
        arg[0] = 1000 + (uint64_t)k;
        for (size_t i = 1; i < ARG_BYTES / 8; i++)
            arg[i] = pattern(i, arg[0]);
        CHECK_EQ(pp_submit(ex, t_big, arg, ARG_BYTES, &fs[k]), 0);
    }
    for (int k = 0; k < 3; k++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[k], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, 0);
        if (e.error)
            fprintf(stderr, "task %d on rank %d: %s\n", k, e.rank, e.message);
        ranks |= 1 << e.rank;
        const uint64_t *r;
        size_t n = 0;
        CHECK_EQ(pp_future_result(fs[k], 0, (const void **)&r, &n), 0);
        CHECK_EQ(n, RES_BYTES);
        size_t bad = 0;
        for (size_t i = 0; r && n == RES_BYTES && i < RES_BYTES / 8; i++)
            bad += r[i] != pattern(i, ~(1000 + (uint64_t)k));
        CHECK_EQ(bad, 0);
        pp_future_release(fs[k]);
    }
    }
    free(arg);
    CHECK(ranks & 6); /* crossed to another rank */
    pp_executor_destroy(ex);
    return mc_finish();
}
