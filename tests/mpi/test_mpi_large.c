/*
 * test_mpi_large — 64 MiB arguments (max_arg_size) cross ranks (header, then
 * the bytes sent straight from the root's arena), and 16 MiB results come
 * back straight into the root's arena; the bytes are checked on both sides.
 * Then pp_mpi_share: a 64 MiB block read in place by tasks on every rank;
 * a second one that rank 2's smaller arena cannot hold fails the call with
 * -ENOMEM and is withdrawn everywhere; after the first is unshared it fits.
 */
#include <stdbool.h>
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

#define SHARE_BYTES ((size_t)64 << 20)
/* Rank 2's arena: room for one argument and its result, or one shared block. */
#define RANK2_ARENA ((size_t)112 << 20)

typedef struct share_seen {
    uint64_t size, bad;
    int32_t found, in_segment;
} share_seen;

/* Checks the shared block's pattern where it lies. */
static int t_read_share(pp_task *t)
{
    const uint64_t *a = pp_task_arg(t, NULL);
    uint64_t h = a[0], seed = a[1];
    share_seen s = {0};
    size_t n = 0;
    const uint64_t *p = pp_task_shared(t, h, &n);
    s.found = p != NULL;
    s.size = n;
    s.in_segment = p && mc_in_segment(p);
    for (size_t i = 0; p && i < n / 8; i++)
        s.bad += p[i] != pattern(i, seed);
    return pp_task_set_result(t, &s, sizeof s);
}

/* Rounds of 3 readers of the @size bytes (h, seed) until every rank ran
 * one (@all), or one round. */
static void read_shared(pp_executor *ex, uint64_t h, uint64_t seed, size_t size, bool all)
{
    int ranks = 0;
    for (int round = 0; round < (all ? 10 : 1) && ranks != 7; round++) {
        pp_future *fs[3];
        uint64_t a[2] = {h, seed};
        for (int k = 0; k < 3; k++)
            CHECK_EQ(pp_submit(ex, t_read_share, a, sizeof a, &fs[k]), 0);
        for (int k = 0; k < 3; k++) {
            const share_seen *s = NULL;
            CHECK_EQ(pp_future_result(fs[k], PP_FOREVER, (const void **)&s, NULL), 0);
            pp_exception e;
            pp_future_exception(fs[k], 0, &e);
            CHECK(s && s->found && s->in_segment);
            CHECK(s && s->size == size && s->bad == 0);
            if (e.rank >= 0 && e.rank < 3)
                ranks |= 1 << e.rank;
            pp_future_release(fs[k]);
        }
    }
    if (all)
        CHECK_EQ(ranks, 7);
}

static void share_large(pp_executor *ex)
{
    uint64_t *data = malloc(SHARE_BYTES);
    for (size_t i = 0; i < SHARE_BYTES / 8; i++)
        data[i] = pattern(i, 77);
    uint64_t h1 = 0, h2 = 1;
    CHECK_EQ(pp_mpi_share(ex, data, SHARE_BYTES, &h1), 0);
    read_shared(ex, h1, 77, SHARE_BYTES, true);
    /* Rank 2 has 48 MiB left, no room for a second of 50: all or nothing. */
    size_t second = (size_t)50 << 20;
    for (size_t i = 0; i < second / 8; i++)
        data[i] = pattern(i, 78);
    CHECK_EQ(pp_mpi_share(ex, data, second, &h2), -ENOMEM);
    CHECK_EQ(h2, 0);
    read_shared(ex, h1, 77, SHARE_BYTES, false); /* the first is untouched */
    CHECK_EQ(pp_mpi_unshare(ex, h1), 0);
    CHECK_EQ(pp_mpi_share(ex, data, second, &h2), 0);
    read_shared(ex, h2, 78, second, false);
    CHECK_EQ(pp_mpi_unshare(ex, h2), 0);
    free(data);
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 2)
        cfg.node.arena_size = RANK2_ARENA;
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
    /* The root's worker held: all three cross (left free, it could take
     * them all while the next argument is being written). */
    mc_hold hold;
    CHECK(mc_hold_root(ex, &hold));
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
    CHECK(mc_release_root(ex, &hold));
    free(arg);
    CHECK(ranks & 6); /* crossed to another rank */
    CHECK(!(ranks & 1)); /* and none ran on the root's node */
    double t0 = MPI_Wtime();
    share_large(ex);
    fprintf(stderr, "test_mpi_large: pp_mpi_share part %.2f s\n", MPI_Wtime() - t0);
    pp_executor_destroy(ex);
    return mc_finish();
}
