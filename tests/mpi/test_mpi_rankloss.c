/*
 * test_mpi_rankloss — under mpirun --enable-recovery (run_mpi.sh's mode
 * "recovery"): rank 2 (2 workers) is SIGKILLed by a pp_map item running
 * there while a task is parked on its other worker; the root detects the
 * silence within node_timeout, fails that rank's task and the map chunk it
 * held with PP_ENODE (pp_exception.rank = 2; the map at that chunk's first
 * item, the items before it delivered), sends it nothing more, and goes on
 * with ranks 0 and 1 (tasks and a whole map); nothing hangs, and no process
 * is left (run_mpi.sh checks).
 *
 * After a loss the communicator is unusable for collectives (MPI_Finalize
 * included, on Open MPI 4.1 without ULFM), so the surviving ranks end with
 * _exit(), as docs/mpi.md advises.
 */
#include <errno.h>
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

/* On rank 2: sleep until the rank is killed (our manager dies with its
 * client, and we with it). Elsewhere: return the rank it ran on. */
static int t_park(pp_task *t)
{
    int rank = rank_of(rank_pid());
    if (rank == 2)
        sleep(30);
    return pp_task_set_result(t, &rank, sizeof rank);
}

/* A map item: on rank 2, SIGKILL the rank process and wait to die with it;
 * elsewhere the square of the input. */
static int t_kill_item(pp_map_item *it)
{
    pid_t r = rank_pid();
    if (r > 0 && rank_of(r) == 2) {
        kill(r, SIGKILL);
        sleep(30);
    }
    usleep(1000);
    long x = *(const long *)it->in[0];
    *(long *)it->out = x * x;
    return 0;
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
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 2)
        cfg.node.max_workers = 2; /* one parks a task, one runs the map's chunk */
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED) {
        fflush(NULL);
        _exit(0);
    }
    CHECK_EQ(rc, 0);
    if (rc)
        _exit(1);
    /* Park a task on rank 2 (tasks elsewhere return at once). */
    pp_future *parked = NULL;
    double park_s = now_s();
    for (int round = 0; round < 200 && !parked; round++) {
        pp_future *f = NULL;
        CHECK_EQ(pp_submit(ex, t_park, NULL, 0, &f), 0);
        pp_exception e;
        pp_mpi_rank_info r2;
        if (pp_future_exception(f, 0.2, &e) == -ETIMEDOUT &&
            pp_mpi_rank_stats(ex, 2, &r2) == 0 && r2.in_flight == 1) {
            parked = f; /* still running, and rank 2 holds a task: there */
            break;
        }
        pp_future_exception(f, PP_FOREVER, &e);
        pp_future_release(f);
    }
    CHECK(parked != NULL);
    park_s = now_s() - park_s;
    /* A map whose item kills rank 2 when it runs there. */
    enum { N = 2000 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof out[0];
    o.chunksize = 3;
    pp_map_status st;
    double t0 = now_s();
    int mrc = pp_map(ex, t_kill_item, &mi, 1, out, N, NULL, &o, &st);
    double t_lost = now_s() - t0;
    CHECK_EQ(mrc, PP_ENODE);
    CHECK(strstr(st.message, "rank 2 lost") != NULL);
    CHECK(st.done < N && st.done % 3 == 0); /* a chunk's first item */
    long bad = 0;
    for (size_t i = 0; i < st.done; i++)
        bad += out[i] != (long)(i * i);
    CHECK_EQ(bad, 0);
    CHECK(t_lost < cfg.node_timeout + 3); /* detected within the node timeout */
    if (parked) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(parked, PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, PP_ENODE);
        CHECK_EQ(e.rank, 2);
        CHECK(strstr(e.message, "rank 2 lost") != NULL);
        pp_future_release(parked);
    }
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
    /* A whole map (its first 600 items) on ranks 0 and 1. */
    memset(out, 0, sizeof out);
    CHECK_EQ(pp_map(ex, t_kill_item, &mi, 1, out, 600, NULL, &o, &st), 0);
    CHECK_EQ(st.done, 600);
    bad = 0;
    for (long i = 0; i < 600; i++)
        bad += out[i] != i * i;
    CHECK_EQ(bad, 0);
    pp_executor_destroy(ex);
    fprintf(stderr, "test_mpi_rankloss: task parked on rank 2 after %.2f s; rank 2 lost after "
                    "%.2f s; %s\n", park_s, t_lost, mc_failed ? "FAILED" : "ok");
    fflush(NULL);
    _exit(mc_failed);
}
