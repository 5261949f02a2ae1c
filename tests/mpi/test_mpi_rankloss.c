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
 * (per rank and pool-wide).
 * Then rank 1 (2 workers) is SIGKILLed by a pp_map item running there while
 * a task is parked on its other worker: the map fails PP_ENODE at that
 * chunk's first item (pp_exception.rank = 1 in the message), the items
 * before it delivered; the parked task fails PP_ENODE; a second map runs
 * whole on the root's node. Nothing hangs, and no process is left
 * (run_mpi.sh checks).
 *
 * After a loss the communicator is unusable for collectives (MPI_Finalize
 * included, on Open MPI 4.1 without ULFM), so the surviving ranks end with
 * _exit(), as docs/mpi.md advises.
 */
#include <errno.h>
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

/* On rank *arg: sleep until the rank is killed (our manager dies with its
 * client, and we with it). Elsewhere: return the rank it ran on. */
static int t_park(pp_task *t)
{
    int victim = *(const int *)pp_task_arg(t, NULL);
    int rank = rank_of(rank_pid());
    if (rank == victim)
        sleep(30);
    return pp_task_set_result(t, &rank, sizeof rank);
}

/* A map item: on rank *ctx, SIGKILL the rank process and wait to die with
 * it; elsewhere the square of the input. */
static int t_kill_item(pp_map_item *it)
{
    pid_t r = rank_pid();
    if (r > 0 && rank_of(r) == *(const int *)it->ctx) {
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

static void touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    cfg.heartbeat = 0.1;
    cfg.node_timeout = 1.5;
    cfg.credits = 4; /* rank 2 holds four tasks when it dies */
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 1)
        cfg.node.max_workers = 2; /* one parks a task, one runs a map chunk */
    pp_executor *ex = mc_create_recovery(&cfg);
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
    double dl = mc_now_s() + 30;
    int extra = 0;    /* blockers that ran elsewhere (completed at once) */
    int extra_on2 = 0; /* ... of them on rank 2 (its task count has them) */
    for (int tries = 0;; tries++) {
        work wb = {.i = 100, .hold_mask = 1};
        snprintf(wb.release, sizeof wb.release, "%s", release);
        CHECK_EQ(pp_submit(ex, t_work, &wb, sizeof wb, &blk[0]), 0);
        for (;;) { /* running on the root (no rank holds it), or done elsewhere */
            pp_executor_stats(ex, &st, NULL, 0);
            pp_mpi_rank_stats(ex, 1, &r1);
            pp_mpi_rank_stats(ex, 2, &r2);
            if (pp_future_done(blk[0]) ||
                (st.running == 1 && r1.in_flight == 0 && r2.in_flight == 0) || mc_now_s() > dl)
                break;
            usleep(1000);
        }
        if (!pp_future_done(blk[0]) || tries == 20 || mc_now_s() > dl)
            break;
        pp_exception be;
        pp_future_exception(blk[0], 0, &be);
        extra_on2 += be.rank == 2;
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
            if (ri.in_flight >= (uint64_t)(2 * phase + 2) || n == MAXT || mc_now_s() > dl)
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
                if (now.in_flight > ri.in_flight || pp_future_done(fs[n]) || mc_now_s() > dl) {
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
        if ((st.running == 9 && st.queued == 0) || mc_now_s() > dl)
            break;
        usleep(1000);
    }
    CHECK_EQ(st.running, 9);
    double t0 = mc_now_s();
    touch(trigger); /* rank 2 dies */
    /* Its two retryable tasks are queued again (nobody is free to take
     * them): queued, not running, cancellable; the other two fail. */
    pp_mpi_rank_info ri;
    for (;;) {
        CHECK_EQ(pp_mpi_rank_stats(ex, 2, &ri), 0);
        if (ri.retried == 2 || mc_now_s() > dl + 10)
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
            t_lost = mc_now_s() - t0;
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
    CHECK_EQ(ri.tasks, 2 + (uint64_t)extra_on2); /* the two that failed PP_ENODE */
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

    /* Rank 1 is lost while it runs a pp_map chunk. First a task parked on
     * one of its two workers: a blocker holds the root's worker (as above),
     * so the parked task can only go to rank 1; then the blocker ends. */
    pp_mpi_rank_info r1_before;
    CHECK_EQ(pp_mpi_rank_stats(ex, 1, &r1_before), 0);
    const int victim = 1;
    char release2[64];
    snprintf(release2, sizeof release2, "/tmp/ppool_rankloss_%d_release2", (int)getpid());
    unlink(release2);
    dl = mc_now_s() + 30;
    int parks = 0;
    pp_future *hold = NULL;
    for (int tries = 0; tries < 20 && !hold && mc_now_s() < dl; tries++) {
        work wb = {.i = 200, .hold_mask = 1};
        snprintf(wb.release, sizeof wb.release, "%s", release2);
        CHECK_EQ(pp_submit(ex, t_work, &wb, sizeof wb, &hold), 0);
        parks++;
        for (;;) { /* running on the root (rank 1 holds nothing), or done there */
            pp_executor_stats(ex, &st, NULL, 0);
            pp_mpi_rank_stats(ex, 1, &r1);
            if (pp_future_done(hold) || (st.running == 1 && r1.in_flight == 0) || mc_now_s() > dl)
                break;
            usleep(1000);
        }
        if (pp_future_done(hold)) {
            pp_future_release(hold);
            hold = NULL;
        }
    }
    CHECK(hold != NULL);
    pp_future *parked = NULL;
    CHECK_EQ(pp_submit(ex, t_park, &victim, sizeof victim, &parked), 0);
    parks++;
    while (pp_mpi_rank_stats(ex, 1, &r1) == 0 && r1.in_flight == 0 && mc_now_s() < dl)
        usleep(1000);
    CHECK_EQ(r1.in_flight, 1);
    touch(release2);
    if (hold) {
        const work_res *r;
        CHECK_EQ(pp_future_result(hold, PP_FOREVER, (const void **)&r, NULL), 0);
        CHECK(r && r->rank == 0);
        pp_future_release(hold);
    }
    unlink(release2);
    CHECK(!pp_future_done(parked));
    /* A map whose item kills rank 1 when it runs there. */
    enum { N = 2000 };
    static long in[N], out[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof out[0];
    o.chunksize = 3;
    o.ctx = &victim;
    o.ctx_size = sizeof victim;
    pp_map_status ms;
    t0 = mc_now_s();
    int mrc = pp_map(ex, t_kill_item, &mi, 1, out, N, NULL, &o, &ms);
    double t_lost1 = mc_now_s() - t0;
    uint64_t runners = ms.runners;
    CHECK_EQ(mrc, PP_ENODE);
    CHECK(strstr(ms.message, "rank 1 lost") != NULL);
    CHECK(ms.done < N && ms.done % 3 == 0); /* a chunk's first item */
    long bad = 0;
    for (size_t i = 0; i < ms.done; i++)
        bad += out[i] != (long)(i * i);
    CHECK_EQ(bad, 0);
    CHECK(t_lost1 < cfg.node_timeout + 3); /* detected within the node timeout */
    if (parked) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(parked, PP_FOREVER, &e), 0);
        CHECK_EQ(e.error, PP_ENODE);
        CHECK_EQ(e.rank, 1);
        CHECK(strstr(e.message, "rank 1 lost") != NULL);
        pp_future_release(parked);
    }
    CHECK_EQ(pp_mpi_rank_stats(ex, 1, &r1), 0);
    CHECK_EQ(r1.alive, 0);
    CHECK_EQ(r1.in_flight, 0);
    CHECK(r1.map_chunks >= r1_before.map_chunks);
    /* The parked task and every lane open on rank 1 (at least the one whose
     * chunk killed it) failed there. */
    CHECK(r1.failed >= r1_before.failed + 2);
    /* A whole map (its first 600 items) on the root's node. */
    memset(out, 0, sizeof out);
    CHECK_EQ(pp_map(ex, t_kill_item, &mi, 1, out, 600, NULL, &o, &ms), 0);
    runners += ms.runners;
    CHECK_EQ(ms.done, 600);
    bad = 0;
    for (long i = 0; i < 600; i++)
        bad += out[i] != i * i;
    CHECK_EQ(bad, 0);

    /* Pool-wide: every task counted once. A map's runners are tasks too:
     * those still queued when it ended are cancelled. */
    pp_shutdown(ex, true, false);
    CHECK(pp_executor_stats(ex, &st, NULL, 0) >= 1);
    CHECK_EQ(st.submitted, (uint64_t)(n + NB + extra + 12 + parks) + runners);
    CHECK_EQ(st.failed, 2 + (r1.failed - r1_before.failed));
    CHECK(st.cancelled >= 1);
    CHECK_EQ(st.completed + st.failed + st.cancelled, st.submitted);
    CHECK_EQ(st.queued + st.running + st.killed, 0);
    pp_executor_destroy(ex);
    fprintf(stderr, "test_mpi_rankloss: rank 2 lost after %.2f s, rank 1 (map) after %.2f s; %s\n",
            t_lost, t_lost1, mc_failed ? "FAILED" : "ok");
    fflush(NULL);
    _exit(mc_failed);
}
