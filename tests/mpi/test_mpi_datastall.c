/*
 * test_mpi_datastall — under mpirun --enable-recovery (run_mpi.sh's mode
 * "recovery"): rank 2 dies between a RES message and the RES_DATA that
 * carries its result (a result too large to travel inside the RES). The
 * root's comm thread has read the RES and waits for the data; it must give
 * up after node_timeout, declare rank 2 lost, fail its tasks with PP_ENODE
 * (or run them again elsewhere when they may be retried) and go on. Before
 * the root's data receives were bounded, this run hung in MPI_Recv until
 * ctest's timeout.
 *
 * The death is placed by the MPI profiling interface: this program defines
 * MPI_Send, which libppool_mpi's calls reach first (the executable's symbol
 * wins), and on rank 2 it SIGKILLs the rank instead of sending the first
 * large message with the RES_DATA tag (7, runtime/mpi/mpi_internal.h). No
 * hook is compiled into the library.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mpi_check.h"

#define RES_DATA_TAG 7 /* PPM_TAG_RES_DATA */
#define BIG ((size_t)1 << 20)

int MPI_Send(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm)
{
    static int me = -1;
    if (me < 0)
        PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 2 && tag == RES_DATA_TAG && (size_t)count >= BIG) {
        fflush(NULL);
        kill(getpid(), SIGKILL); /* after its RES, before its data */
        pause();
    }
    return PMPI_Send(buf, count, type, dest, tag, comm);
}

/* A result of BIG bytes (its first word: @arg's value): never inline. */
static int t_big_result(pp_task *t)
{
    uint64_t v = *(const uint64_t *)pp_task_arg(t, NULL);
    uint64_t *r = pp_task_result(t, BIG);
    if (!r)
        return 1;
    memset(r, 0, BIG);
    r[0] = v;
    r[BIG / 8 - 1] = ~v;
    return 0;
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    cfg.heartbeat = 0.1;
    cfg.node_timeout = 1.5;
    cfg.credits = 2;
    pp_executor *ex = mc_create_recovery(&cfg);
    /* The root's worker held: every task goes to rank 1 or rank 2. Half of
     * them may be retried once. */
    mc_hold hold;
    CHECK(mc_hold_root(ex, &hold));
    enum { N = 12 };
    pp_future *fs[N];
    double t0 = mc_now_s();
    for (int i = 0; i < N; i++) {
        pp_submit_opts o;
        pp_submit_opts_init(&o);
        o.retries = i % 2;
        uint64_t v = 1000 + (uint64_t)i;
        CHECK_EQ(pp_submit_ex(ex, t_big_result, &v, sizeof v, &o, &fs[i]), 0);
    }
    int ok = 0, enode = 0, on2 = 0;
    for (int i = 0; i < N; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        if (e.error == 0) {
            const uint64_t *r = NULL;
            size_t n = 0;
            CHECK_EQ(pp_future_result(fs[i], 0, (const void **)&r, &n), 0);
            CHECK_EQ(n, BIG);
            CHECK(r && r[0] == 1000 + (uint64_t)i && r[BIG / 8 - 1] == ~(1000 + (uint64_t)i));
            CHECK(e.rank == 1); /* rank 2 never delivered one */
            ok++;
        } else {
            CHECK_EQ(e.error, PP_ENODE);
            CHECK_EQ(e.rank, 2);
            CHECK(strstr(e.message, "rank 2 lost") != NULL);
            CHECK_EQ(i % 2, 0); /* only tasks that may not run again fail */
            enode++;
        }
        pp_future_release(fs[i]);
    }
    double took = mc_now_s() - t0;
    pp_mpi_rank_info ri;
    CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
    CHECK_EQ(ri.alive, 0);
    CHECK_EQ(ri.in_flight, 0);
    on2 = (int)ri.tasks;
    CHECK(on2 >= 1); /* the one whose data never came, at least */
    CHECK(took < 3 * cfg.node_timeout + 5);
    /* The executor goes on with rank 1 (and the root, released). */
    CHECK(mc_release_root(ex, &hold));
    for (int i = 0; i < 6; i++) {
        uint64_t v = 7;
        CHECK_EQ(pp_submit(ex, t_big_result, &v, sizeof v, &fs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, 0);
        CHECK(e.rank == 0 || e.rank == 1);
        pp_future_release(fs[i]);
    }
    pp_executor_destroy(ex);
    fprintf(stderr,
            "test_mpi_datastall: %d delivered, %d failed PP_ENODE, rank 2 lost (its data stalled) "
            "within %.2f s; %s\n",
            ok, enode, took, mc_failed ? "FAILED" : "ok");
    fflush(NULL);
    _exit(mc_failed);
}
