/*
 * test_mpi_rankloss — under mpirun --enable-recovery (run_mpi.sh's mode
 * "recovery"): rank 2 is SIGKILLed while it holds four tasks (one running,
 * three waiting in its node's ring), two submitted with
 * pp_submit_opts.retries = 1 and two without. The root detects the silence
 * within node_timeout; the two retryable tasks are queued again (blockers
 * keep every other worker busy meanwhile, so the test sees them queued:
 * not running, and cancellable — it cancels one), the other runs on rank 0
 * or 1 and completes with its result; the two others fail PP_ENODE
 * (pp_exception.rank = 2); rank 2 gets nothing more; the counters are exact
 * (per rank and pool-wide); nothing hangs, and no process is left
 * (run_mpi.sh checks).
 *
 * After a loss the communicator is unusable for collectives (MPI_Finalize
 * included, on Open MPI 4.1 without ULFM), so the surviving ranks end with
 * _exit(), as docs/mpi.md advises.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
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

/* A task: its result (i * i and where it ran). With kill2, on rank 2 it
 * waits for the root's trigger file, then SIGKILLs the rank process and
 * waits to die with it. On a rank in hold_mask (a blocker) it first waits
 * for the release file. */
typedef struct work {
    int64_t i;
    int32_t kill2;
    uint32_t hold_mask;
    char trigger[64];
    char release[64];
} work;

typedef struct work_res {
    int64_t square;
    int32_t rank;
} work_res;

static int t_work(pp_task *t)
{
    const work *w = pp_task_arg(t, NULL);
    pid_t r = rank_pid();
    int rank = r > 0 ? rank_of(r) : -1;
    if (rank == 2 && w->kill2) {
        while (access(w->trigger, F_OK) != 0)
            usleep(1000); /* polls the root's condition */
        kill(r, SIGKILL);
        sleep(30); /* our manager dies with its client, and we with it */
    }
    while (rank >= 0 && (w->hold_mask >> rank & 1) && access(w->release, F_OK) != 0)
        usleep(1000); /* polls the root's condition */
    usleep(10000);
    work_res res = {.square = w->i * w->i, .rank = rank};
    return pp_task_set_result(t, &res, sizeof res);
}

static int t_rank(pp_task *t)
{
    usleep(10000);
    int r = rank_of(rank_pid());
    return pp_task_set_result(t, &r, sizeof r);
}

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
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
    cfg.credits = 4; /* rank 2 holds four tasks when it dies */
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED) {
        fflush(NULL);
        _exit(0);
    }
    CHECK_EQ(rc, 0);
    if (rc)
        _exit(1);
    char trigger[64], release[64];
    snprintf(trigger, sizeof trigger, "/tmp/ppool_rankloss_%d", (int)getpid());
    snprintf(release, sizeof release, "/tmp/ppool_rankloss_%d_release", (int)getpid());
    unlink(trigger);
    unlink(release);
    /* Every wait below polls a condition up to a deadline (a failed check,
     * never a hang). First a blocker on the root's own worker (it holds
     * only there), so that the tasks below go to ranks 1 and 2. */
    enum { MAXT = 64, NB = 5 };
    pp_future *blk[NB];
    pp_stats st;
    pp_mpi_rank_info r1, r2;
    double dl = now_s() + 30;
    int extra = 0; /* blockers that ran elsewhere (completed at once) */
    for (int tries = 0;; tries++) {
        work wb = {.i = 100, .hold_mask = 1};
        snprintf(wb.release, sizeof wb.release, "%s", release);
        CHECK_EQ(pp_submit(ex, t_work, &wb, sizeof wb, &blk[0]), 0);
        for (;;) { /* running on the root (no rank holds it), or done elsewhere */
            pp_executor_stats(ex, &st, NULL, 0);
            pp_mpi_rank_stats(ex, 1, &r1);
            pp_mpi_rank_stats(ex, 2, &r2);
            if (pp_future_done(blk[0]) ||
                (st.running == 1 && r1.in_flight == 0 && r2.in_flight == 0) || now_s() > dl)
                break;
            usleep(1000);
        }
        if (!pp_future_done(blk[0]) || tries == 20 || now_s() > dl)
            break;
        pp_future_release(blk[0]);
        extra++;
    }
    CHECK(!pp_future_done(blk[0]));
    /* Rank 2 (4 credits) gets 2 retryable tasks, then 2 that are not; each
     * submission waits until its task landed on rank 2 or ran on rank 1,
     * so exactly these four are on rank 2 when it dies. */
    pp_future *fs[MAXT];
    work w[MAXT];
    unsigned retries[MAXT];
    bool on2[MAXT];
    int n = 0;
    for (int phase = 0; phase < 2; phase++) {
        for (;;) {
            pp_mpi_rank_info ri;
            CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
            if (ri.in_flight >= (uint64_t)(2 * phase + 2) || n == MAXT || now_s() > dl)
                break;
            w[n] = (work){.i = n + 1, .kill2 = 1};
            on2[n] = false;
            snprintf(w[n].trigger, sizeof w[n].trigger, "%s", trigger);
            pp_submit_opts o;
            pp_submit_opts_init(&o);
            CHECK_EQ(o.retries, 0);
            o.retries = retries[n] = phase == 0 ? 1 : 0;
            CHECK_EQ(pp_submit_ex(ex, t_work, &w[n], sizeof w[n], &o, &fs[n]), 0);
            for (;;) { /* landed on rank 2, or done elsewhere */
                pp_mpi_rank_info now;
                pp_mpi_rank_stats(ex, 2, &now);
                if (now.in_flight > ri.in_flight || pp_future_done(fs[n]) || now_s() > dl) {
                    on2[n] = now.in_flight > ri.in_flight;
                    break;
                }
                usleep(1000);
            }
            n++;
        }
    }
    CHECK(n < MAXT);
    /* Blockers fill rank 1's four credits (rank 2's are full, the root's
     * worker is held), so that the retried tasks wait QUEUED at the root
     * after the loss. */
    for (int b = 1; b < NB; b++) {
        work wb = {.i = 100 + b, .hold_mask = 3};
        snprintf(wb.release, sizeof wb.release, "%s", release);
        CHECK_EQ(pp_submit(ex, t_work, &wb, sizeof wb, &blk[b]), 0);
    }
    for (;;) { /* 4 on rank 2, 4 on rank 1, 1 on the root's worker */
        pp_executor_stats(ex, &st, NULL, 0);
        if ((st.running == 9 && st.queued == 0) || now_s() > dl)
            break;
        usleep(1000);
    }
    CHECK_EQ(st.running, 9);
    double t0 = now_s();
    touch(trigger); /* rank 2 dies */
    /* Its two retryable tasks are queued again (nobody is free to take
     * them): queued, not running, cancellable; the other two fail. */
    pp_mpi_rank_info ri;
    for (;;) {
        CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
        if (ri.retried == 2 || now_s() > dl + 10)
            break;
        usleep(1000);
    }
    CHECK_EQ(ri.retried, 2);
    pp_executor_stats(ex, &st, NULL, 0);
    CHECK_EQ(st.queued, 2);
    int cancelled_i = -1;
    for (int i = 0; i < n; i++) {
        if (!on2[i] || !retries[i])
            continue;
        CHECK(!pp_future_running(fs[i]));
        CHECK(!pp_future_done(fs[i]));
        if (cancelled_i < 0) {
            CHECK(pp_future_cancel(fs[i]));
            CHECK(pp_future_cancelled(fs[i]));
            cancelled_i = i;
        }
    }
    CHECK(cancelled_i >= 0);
    touch(release); /* the blockers end; the other retried task runs */
    for (int b = 0; b < NB; b++) {
        const work_res *r;
        CHECK_EQ(pp_future_result(blk[b], PP_FOREVER, (const void **)&r, NULL), 0);
        CHECK(r && r->square == (100 + b) * (100 + b) && r->rank != 2);
        CHECK(r && r->rank == (b == 0 ? 0 : 1));
        pp_future_release(blk[b]);
    }
    int enode = 0;
    double t_lost = 0;
    for (int i = 0; i < n; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        if (i == cancelled_i) {
            CHECK_EQ(e.error, -ECANCELED);
        } else if (e.error) {
            CHECK_EQ(e.error, PP_ENODE);
            CHECK_EQ(e.rank, 2);
            CHECK(strstr(e.message, "rank 2 lost") != NULL);
            CHECK_EQ(retries[i], 0); /* only tasks that may not run again fail */
            enode++;
            t_lost = now_s() - t0;
        } else {
            const work_res *r;
            CHECK_EQ(pp_future_result(fs[i], 0, (const void **)&r, NULL), 0);
            CHECK(r && r->square == w[i].i * w[i].i);
            CHECK(r && r->rank != 2 && r->rank == e.rank);
        }
        pp_future_release(fs[i]);
    }
    unlink(trigger);
    unlink(release);
    CHECK_EQ(enode, 2);
    CHECK(t_lost < cfg.node_timeout + 3); /* detected within the node timeout */
    CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
    CHECK_EQ(ri.alive, 0);
    CHECK_EQ(ri.in_flight, 0);
    CHECK_EQ(ri.retried, 2); /* the two retryable ones ran again elsewhere */
    CHECK_EQ(ri.tasks, 2);   /* the two that failed PP_ENODE */
    CHECK_EQ(ri.failed, 2);
    /* The executor goes on with ranks 0 and 1. */
    for (int i = 0; i < 12; i++)
        CHECK_EQ(pp_submit(ex, t_rank, NULL, 0, &fs[i]), 0);
    for (int i = 0; i < 12; i++) {
        const int *r;
        CHECK_EQ(pp_future_result(fs[i], PP_FOREVER, (const void **)&r, NULL), 0);
        CHECK(r && (*r == 0 || *r == 1));
        pp_future_release(fs[i]);
    }
    pp_shutdown(ex, true, false);
    CHECK(pp_executor_stats(ex, &st, NULL, 0) >= 1);
    CHECK_EQ(st.submitted, (uint64_t)(n + NB + extra + 12));
    CHECK_EQ(st.completed, (uint64_t)(n + NB + extra + 12 - 3));
    CHECK_EQ(st.failed, 2);
    CHECK_EQ(st.cancelled, 1);
    CHECK_EQ(st.queued + st.running + st.killed, 0);
    pp_executor_destroy(ex);
    fprintf(stderr, "test_mpi_rankloss: rank 2 lost after %.2f s; %s\n", t_lost,
            mc_failed ? "FAILED" : "ok");
    fflush(NULL);
    _exit(mc_failed);
}
