/*
 * test_mpi_rankloss — under mpirun --enable-recovery (run_mpi.sh's mode
 * "recovery"): rank 2 is SIGKILLed while it runs a task; the root detects the
 * silence within node_timeout, fails that rank's futures with PP_ENODE
 * (pp_exception.rank = 2), sends it nothing more, and goes on with ranks 0
 * and 1; nothing hangs, and no process is left (run_mpi.sh checks).
 *
 * After a loss the communicator is unusable for collectives (MPI_Finalize
 * included, on Open MPI 4.1 without ULFM), so the surviving ranks end with
 * _exit(), as docs/mpi.md advises.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_check.h"

/* The rank process running this task: our worker's manager's parent. */
static pid_t rank_pid(void)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)getppid());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    int ppid = -1;
    if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* Its MPI rank, from its environment (ours has no launcher variables). */
static int rank_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char env[1 << 16];
    size_t n = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    env[n] = 0;
    for (size_t i = 0; i < n; i += strlen(env + i) + 1)
        if (!strncmp(env + i, "OMPI_COMM_WORLD_RANK=", 21))
            return atoi(env + i + 21);
    return -1;
}

/* On rank 2: SIGKILL the rank process, then wait to be killed with it.
 * Elsewhere: return the rank it ran on. */
static int t_kill_rank2(pp_task *t)
{
    pid_t r = rank_pid();
    int rank = r > 0 ? rank_of(r) : -1;
    if (rank == 2) {
        kill(r, SIGKILL);
        sleep(30); /* our manager dies with its client, and we with it */
    }
    usleep(20000);
    return pp_task_set_result(t, &rank, sizeof rank);
}

static int t_rank(pp_task *t)
{
    usleep(10000);
    int r = rank_of(rank_pid());
    return pp_task_set_result(t, &r, sizeof r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    cfg.heartbeat = 0.1;
    cfg.node_timeout = 1.5;
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED) {
        fflush(NULL);
        _exit(0);
    }
    CHECK_EQ(rc, 0);
    if (rc)
        _exit(1);
    /* Killer tasks until one lands on rank 2. */
    int lost = 0;
    double t_lost = 0;
    for (int round = 0; round < 40 && !lost; round++) {
        pp_future *fs[3];
        for (int i = 0; i < 3; i++)
            CHECK_EQ(pp_submit(ex, t_kill_rank2, NULL, 0, &fs[i]), 0);
        double t0 = now_s();
        for (int i = 0; i < 3; i++) {
            pp_exception e;
            CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
            if (e.error) {
                CHECK_EQ(e.error, PP_ENODE);
                CHECK_EQ(e.rank, 2);
                CHECK(strstr(e.message, "rank 2 lost") != NULL);
                lost = 1;
                t_lost = now_s() - t0;
            } else {
                const int *r;
                CHECK_EQ(pp_future_result(fs[i], 0, (const void **)&r, NULL), 0);
                CHECK(r && *r != 2 && *r == e.rank);
            }
            pp_future_release(fs[i]);
        }
    }
    CHECK(lost);
    CHECK(t_lost < cfg.node_timeout + 3); /* detected within the node timeout */
    pp_mpi_rank_info ri;
    CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
    CHECK_EQ(ri.alive, 0);
    CHECK_EQ(ri.in_flight, 0);
    /* The executor goes on with ranks 0 and 1. */
    pp_future *fs[12];
    for (int i = 0; i < 12; i++)
        CHECK_EQ(pp_submit(ex, t_rank, NULL, 0, &fs[i]), 0);
    for (int i = 0; i < 12; i++) {
        const int *r;
        CHECK_EQ(pp_future_result(fs[i], PP_FOREVER, (const void **)&r, NULL), 0);
        CHECK(r && (*r == 0 || *r == 1));
        pp_future_release(fs[i]);
    }
    pp_executor_destroy(ex);
    fprintf(stderr, "test_mpi_rankloss: rank 2 lost after %.2f s; %s\n", t_lost,
            mc_failed ? "FAILED" : "ok");
    fflush(NULL);
    _exit(mc_failed);
}
