/*
 * manager.c — the manager process: parent of every worker.
 *
 * Single-threaded by construction (it is a fresh fork of one client thread and
 * starts none), so it may fork workers at any time without the fork-with-
 * threads hazards. It sleeps in poll() on two descriptors:
 *  - a signalfd for SIGCHLD: a worker exited; reap it and apply the policy;
 *  - a pidfd of the client: the client died; kill the workers and exit, so
 *    nothing outlives the client (the memfd goes with its last mapping).
 * It runs in its own process group so that a terminal's Ctrl-C reaches only
 * the client, which decides the pool's fate.
 *
 * Worker death policy so far: BREAK (Python parity). An exit that was not
 * asked for (any exit before `stop`, a signal, a non-zero status) breaks the
 * pool: the cause is recorded, the other workers are killed and reaped, every
 * queued or running slot fails with PP_EBROKEN, and every sleeper is woken.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "ppool.h"
#include "process.h"

static int pidfd_open_compat(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

bool ppi_pool_break(ppi_seg *seg, int code, pid_t pid, const char *msg)
{
    ppi_hdr *h = seg->hdr;
    uint32_t expect = PPI_POOL_RUNNING;
    /* Two-step publication: the cause first, then the state with release. A
     * loser of the CAS below may have written the cause concurrently only if
     * it also won... so writers serialise on broken_pid first. */
    int32_t zero = 0;
    /* acq_rel: the first breaker owns the cause fields. */
    if (!atomic_compare_exchange_strong_explicit(&h->broken_pid, &zero, pid > 0 ? pid : -1,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    /* relaxed: published by the release of pool_state below. */
    atomic_store_explicit(&h->broken_code, code, memory_order_relaxed);
    snprintf(h->broken_msg, sizeof h->broken_msg, "%s", msg);
    /* release: cause fields visible to whoever acquires BROKEN. */
    atomic_compare_exchange_strong_explicit(&h->pool_state, &expect, PPI_POOL_BROKEN,
                                            memory_order_release, memory_order_relaxed);
    /* Wake every class of sleeper: workers, the client's pump, and slot
     * waiters (woken by the slot sweeps that follow). */
    atomic_fetch_add_explicit(&h->work_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->work_ec.seq, INT_MAX, true);
    atomic_fetch_add_explicit(&h->done_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->done_ec.seq, INT_MAX, true);
    ppi_futex_wake(&h->ready, INT_MAX, true);
    return true;
}

bool ppi_slot_fail_broken(ppi_seg *seg, uint32_t idx, bool running)
{
    ppi_slot *sl = ppi_slot_at(seg, idx);
    ppi_hdr *h = seg->hdr;
    /* acquire: see the last owner's writes before we overwrite the outcome. */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    for (;;) {
        uint32_t st = ppi_st_state(w), fl = ppi_st_flags(w);
        if (st != PPI_S_QUEUED && !(running && st == PPI_S_RUNNING))
            return false;
        /* Claim the slot with an intermediate RUNNING(NO_WORKER) so that the
         * outcome fields are ours before we publish FAILED. */
        uint64_t claim = ppi_st_make(ppi_st_gen(w), PPI_S_RUNNING, fl, PPI_NO_WORKER - 1);
        /* acquire: as above; the claim makes a racing worker's publish fail. */
        if (atomic_compare_exchange_weak_explicit(&sl->state, &w, claim, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    sl->err = PP_EBROKEN;
    /* relaxed: published by pool_state's release, which we acquired. */
    sl->code = atomic_load_explicit(&h->broken_code, memory_order_relaxed);
    sl->pid = atomic_load_explicit(&h->broken_pid, memory_order_relaxed);
    sl->msg_len = (uint32_t)snprintf(ppi_slot_res_inline(seg, sl), seg->inline_size, "%s",
                                     h->broken_msg);
    if (sl->msg_len >= seg->inline_size)
        sl->msg_len = seg->inline_size - 1;
    sl->res_size = 0;
    uint64_t w2 = atomic_load_explicit(&sl->state, memory_order_relaxed);
    uint64_t nw;
    do {
        uint32_t fl = ppi_st_flags(w2);
        nw = (fl & PPI_F_ORPHAN) ? ppi_st_make(ppi_st_gen(w2), PPI_S_RECLAIM, 0, PPI_NO_WORKER)
                                 : ppi_st_make(ppi_st_gen(w2), PPI_S_FAILED, 0, PPI_NO_WORKER);
        /* release: publishes the outcome; pairs with the waiter's acquire. */
    } while (!atomic_compare_exchange_weak_explicit(&sl->state, &w2, nw, memory_order_release,
                                                    memory_order_relaxed));
    if (ppi_st_flags(w2) & PPI_F_WAITERS)
        ppi_futex_wake(ppi_slot_futex(sl), INT_MAX, true);
    if (ppi_st_state(nw) == PPI_S_RECLAIM)
        /* release: the reclaim scan reads the slot after this count. */
        atomic_fetch_add_explicit(&h->reclaim, 1, memory_order_release);
    else
        ppi_slot_notify(seg, idx, ppi_st_gen(w2), ppi_st_flags(w2));
    ppi_ec_notify(&h->done_ec, INT_MAX);
    return true;
}

typedef struct mgr {
    ppi_seg *seg;
    const ppi_place *places;
    int nworkers;
    pid_t *pids;      /* live worker pid per position, 0 = none */
    int live;
} mgr;

static pid_t spawn_worker(mgr *m, int widx)
{
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid == 0)
        ppi_worker_main(m->seg, widx, &m->places[widx], me);
    if (pid > 0) {
        m->pids[widx] = pid;
        m->live++;
        /* release: statistics readers see pid with its position. */
        atomic_store_explicit(&m->seg->workers[widx].pid, pid, memory_order_release);
    }
    return pid;
}

static void kill_and_reap_all(mgr *m)
{
    for (int i = 0; i < m->nworkers; i++)
        if (m->pids[i] > 0)
            kill(m->pids[i], SIGKILL);
    for (int i = 0; i < m->nworkers; i++)
        if (m->pids[i] > 0) {
            while (waitpid(m->pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
            m->pids[i] = 0;
            m->live--;
        }
}

static void describe_exit(char *buf, size_t len, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "worker %d was killed by signal %d (%s)", (int)pid, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "worker %d exited with status %d", (int)pid, WEXITSTATUS(status));
}

/* Break the pool after worker @pid ended with @status; never returns. */
static _Noreturn void break_and_exit(mgr *m, pid_t pid, int status)
{
    char msg[128];
    describe_exit(msg, sizeof msg, pid, status);
    int code = WIFSIGNALED(status) ? WTERMSIG(status) : -WEXITSTATUS(status);
    ppi_pool_break(m->seg, code, pid, msg);
    kill_and_reap_all(m);
    /* With every worker gone, no RUNNING slot can finish: fail them all. */
    for (uint32_t i = 0; i < m->seg->nslots; i++)
        ppi_slot_fail_broken(m->seg, i, true);
    _exit(0);
}

/* A command from the client (pp_terminate_workers / pp_kill_workers). */
static void run_command(mgr *m)
{
    uint64_t v;
    if (read(m->seg->cmd_fd, &v, sizeof v) != (ssize_t)sizeof v)
        return;
    /* acquire: pairs with the client's release store before it wrote the fd. */
    int sig = atomic_load_explicit(&m->seg->hdr->kill_signal, memory_order_acquire);
    if (sig > 0)
        for (int i = 0; i < m->nworkers; i++)
            if (m->pids[i] > 0)
                kill(m->pids[i], sig); /* our own unreaped child: pid cannot be reused */
}

static int find_worker(const mgr *m, pid_t pid)
{
    for (int i = 0; i < m->nworkers; i++)
        if (m->pids[i] == pid)
            return i;
    return -1;
}

static void reap(mgr *m)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        int widx = find_worker(m, pid);
        if (widx < 0)
            continue;
        m->pids[widx] = 0;
        m->live--;
        /* acquire: pairs with the client's release of stop. */
        bool stopping = atomic_load_explicit(&m->seg->hdr->stop, memory_order_acquire);
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!(stopping && clean))
            break_and_exit(m, pid, status);
    }
}

_Noreturn void ppi_manager_main(ppi_seg *seg, const ppi_place *places)
{
    pid_t client = seg->hdr->client_pid;
    int cfd = pidfd_open_compat(client);
    if (cfd < 0 || getppid() != client)
        _exit(0);
    prctl(PR_SET_NAME, "ppool-manager");
    setpgid(0, 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL); /* only SIGCHLD blocked: read via signalfd */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_IGN);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        _exit(102);
    /* relaxed: published to the client by the ready count's release. */
    atomic_store_explicit(&seg->hdr->manager_pid, getpid(), memory_order_relaxed);

    pid_t pids[4096];
    mgr m = {.seg = seg, .places = places, .nworkers = (int)seg->hdr->nworkers, .pids = pids};
    memset(pids, 0, sizeof pids);
    for (int i = 0; i < m.nworkers; i++)
        if (spawn_worker(&m, i) < 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "could not fork worker %d: %s", i, strerror(errno));
            ppi_pool_break(seg, -errno, getpid(), msg);
            kill_and_reap_all(&m);
            _exit(0);
        }

    struct pollfd pf[3] = {{.fd = cfd, .events = POLLIN},
                           {.fd = sfd, .events = POLLIN},
                           {.fd = seg->cmd_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(pf, 3, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            kill_and_reap_all(&m); /* the client is gone: nothing may outlive it */
            _exit(0);
        }
        if (pf[2].revents & POLLIN)
            run_command(&m);
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            ;
        reap(&m);
        /* acquire: pairs with the client's release of stop. */
        if (m.live == 0 && atomic_load_explicit(&seg->hdr->stop, memory_order_acquire))
            _exit(0);
        if (getppid() != client) { /* belt and braces next to the pidfd */
            kill_and_reap_all(&m);
            _exit(0);
        }
    }
    kill_and_reap_all(&m);
    _exit(0);
}
