/*
 * manager.c — the manager process: parent of every worker.
 *
 * Single-threaded by construction (a fresh fork of one client thread that
 * starts none), so it may fork replacement workers at any time without the
 * fork-with-threads hazards. It sleeps in poll() on three descriptors, with a
 * timeout set by the nearest task deadline or kill escalation:
 *  - a pidfd of the client: the client died; kill the workers and exit, so
 *    nothing outlives the client (the memfd goes with its last mapping);
 *  - a signalfd for SIGCHLD: a worker exited; reap it, attribute the death to
 *    the slot it held, apply the policy, replace it;
 *  - an eventfd for commands: the client asked to signal every worker
 *    (terminate/kill), or to kill one task, or a worker started a task that
 *    has a timeout.
 * It runs in its own process group so that a terminal's Ctrl-C reaches only
 * the client, which decides the pool's fate. It runs no user code, so it
 * cannot stall in a task: timeouts are enforced even if tasks spin.
 *
 * Deaths, by the phase the worker recorded (enum ppi_phase):
 *  - RETIRING + exit 75: max_tasks_per_child or max_rss_growth reached
 *    between tasks: replace.
 *  - START / INIT / INIT_FAILED: the pool could not start (initializer
 *    failed or crashed): break, whatever the policy (Python parity).
 *  - a slot KILLING(w): the task was killed on request or by its timeout:
 *    fail it with PP_EKILLED, replace the worker. Never breaks the pool.
 *  - stop requested and exit 0: orderly end.
 *  - anything else is unexpected: BREAK breaks the pool; RESPAWN fails the
 *    slot RUNNING(w) with PP_EWORKER, finishes a dequeue the worker died in
 *    (re-queueing the entry), and replaces the worker.
 */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "fnmap.h"
#include "ppool.h"
#include "process.h"

#define MAX_WORKERS PPI_MAX_WORKERS

static int pidfd_open_compat(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

typedef struct mgr {
    ppi_seg *seg;
    int nworkers;         /* positions ever used (the loops' bound; resize.c) */
    uint32_t applied;     /* the last resize_seq applied */
    cpu_set_t own_cpus;   /* our affinity, restored after spawning a pinned worker */
    pid_t pids[MAX_WORKERS];        /* live worker pid per position, 0 = none */
    uint64_t term_entry[MAX_WORKERS]; /* the KILLING entry we sent SIGTERM for */
    uint64_t kill_at[MAX_WORKERS];  /* when to escalate to SIGKILL, 0 = never */
    uint32_t start_fails[MAX_WORKERS]; /* consecutive replacements that died starting */
    int live;
    uint64_t term_all_at; /* pp_terminate_workers: when to SIGKILL the rest, 0 = never */
    int cfd, sfd;         /* our pidfd of the client (-1: none) and signalfd */
} mgr;

/* A replacement that dies before it runs (e.g. a second OOM kill) is replaced
 * again under RESPAWN, but not forever: one that cannot start this many
 * times in a row breaks the pool. */
#define MAX_START_FAILS 3

static pid_t spawn_worker(mgr *m, int widx)
{
    pid_t me = getpid();
    ppi_worker *rec = &m->seg->workers[widx];
    /* relaxed: the child is forked after these stores (fork orders them). */
    atomic_store_explicit(&rec->phase, PPI_PH_START, memory_order_relaxed);
    atomic_store_explicit(&rec->deq_claim, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->deq_entry, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->current, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->deadline_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->retire, 0, memory_order_relaxed);
    pid_t pid;
    if (m->seg->hdr->start_method == PP_START_SPAWN) {
        /* A spawned worker starts bound: the thread runtimes that read
         * their places in a constructor (before the worker binds itself)
         * see its own CPUs. We are single-threaded: our mask is ours. */
        bool pinned = CPU_COUNT(&rec->place.cpus) > 0 &&
                      sched_setaffinity(0, sizeof rec->place.cpus, &rec->place.cpus) == 0;
        int rc = ppi_exec_spawn(m->seg, "worker", widx, &pid);
        if (pinned)
            sched_setaffinity(0, sizeof m->own_cpus, &m->own_cpus);
        if (rc) {
            errno = -rc;
            pid = -1;
        }
    } else {
        pid = fork(); /* we are single-threaded: always safe */
        if (pid == 0) {
            if (m->cfd >= 0) /* ours, not the worker's (exec would close them) */
                close(m->cfd);
            close(m->sfd);
            ppi_worker_main(m->seg, widx, me);
        }
    }
    if (pid > 0) {
        m->pids[widx] = pid;
        m->term_entry[widx] = 0;
        m->kill_at[widx] = 0;
        m->live++;
        /* release: statistics readers see pid with its position. */
        atomic_store_explicit(&rec->pid, pid, memory_order_release);
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

/* signal (> 0) or exit status (< 0): the code futures report for a death. */
static int exit_code(int status)
{
    return WIFSIGNALED(status) ? WTERMSIG(status) : ppi_code_exit(WEXITSTATUS(status));
}

/* Break the pool because of @msg; never returns. */
static void settle_counts(mgr *m, int widx);

static _Noreturn void break_and_exit(mgr *m, int code, pid_t pid, const char *msg)
{
    ppi_pool_break(m->seg, code, pid, msg);
    kill_and_reap_all(m);
    /* A worker killed here between publishing a task and counting it. */
    for (int w = 0; w < m->nworkers; w++)
        settle_counts(m, w);
    /* With every worker gone, no RUNNING slot can finish: fail them all. */
    for (uint32_t i = 0; i < m->seg->nslots; i++)
        ppi_slot_fail_broken(m->seg, i, true);
    _exit(0);
}

/* The slot worker @widx held when it died, failed with the right error.
 * Returns true if one was KILLING (so the death was a kill, not a crash). */
static bool attribute_death(mgr *m, int widx, pid_t pid, int status, bool policy_respawn)
{
    ppi_seg *s = m->seg;
    bool killed = false;
    for (uint32_t i = 0; i < s->nslots; i++) {
        ppi_slot *sl = ppi_slot_at(s, i);
        /* relaxed: a filter; ppi_slot_fail re-validates with a CAS. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
        uint32_t st = ppi_st_state(w);
        if ((st != PPI_S_RUNNING && st != PPI_S_KILLING) || ppi_st_worker(w) != (uint32_t)widx)
            continue;
        char msg[160];
        if (st == PPI_S_KILLING) {
            if (sl->kill_reason == PPI_KILL_TIMEOUT)
                snprintf(msg, sizeof msg, "timed out after %.3g s (worker %d)",
                         (double)sl->timeout_ns / 1e9, (int)pid);
            else
                snprintf(msg, sizeof msg, "killed on request (worker %d)", (int)pid);
            int code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
            if (ppi_slot_fail(s, i, 1u << PPI_S_KILLING, widx, PP_EKILLED, code, pid, msg)) {
                killed = true;
                /* relaxed: statistics. */
                atomic_fetch_add_explicit(&s->hdr->killed, 1, memory_order_relaxed);
            }
        } else if (policy_respawn) {
            describe_exit(msg, sizeof msg, pid, status);
            ppi_slot_fail(s, i, (1u << PPI_S_RUNNING) | (1u << PPI_S_KILLING), widx, PP_EWORKER,
                          exit_code(status), pid, msg);
        }
    }
    return killed;
}

/* The dead worker may have died inside a dequeue: finish it and put the
 * entry it took (but never started) back on the ring. */
static void recover_dequeue(mgr *m, int widx)
{
    ppi_seg *s = m->seg;
    ppi_worker *rec = &s->workers[widx];
    _Atomic uint64_t *others[MAX_WORKERS];
    int n = 0;
    for (int i = 0; i < m->nworkers; i++)
        if (i != widx && m->pids[i] > 0)
            others[n++] = &s->workers[i].deq_claim;
    uint64_t requeue[2];
    int nr = 0;
    /* relaxed: the dead worker's last stores, all visible after its death. */
    uint64_t claim = atomic_load_explicit(&rec->deq_claim, memory_order_relaxed);
    uint64_t e;
    if (ppi_tasks_recover(s, claim, others, n, PPI_RECOVER_WAIT_NS, &e))
        requeue[nr++] = e;
    e = atomic_load_explicit(&rec->deq_entry, memory_order_relaxed);
    if (e && (nr == 0 || requeue[0] != e))
        requeue[nr++] = e;
    for (int i = 0; i < nr; i++) {
        ppi_slot *sl = ppi_slot_at(s, ppi_entry_idx(requeue[i]));
        /* acquire: the slot's current state decides whether it still waits. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
        uint32_t st = ppi_st_state(w);
        if (ppi_st_gen(w) == ppi_entry_gen(requeue[i]) &&
            (st == PPI_S_QUEUED || st == PPI_S_CANCELLED)) {
            ppi_tasks_push_wait(s, requeue[i], PPI_REQUEUE_PUSH_NS);
            ppi_ec_notify(&s->hdr->work_ec, 1);
        }
    }
    /* relaxed: the record restarts with the replacement. */
    atomic_store_explicit(&rec->deq_claim, 0, memory_order_relaxed);
    atomic_store_explicit(&rec->deq_entry, 0, memory_order_relaxed);
}

/* Is position @widx beyond the pool's size (pp_executor_resize)? */
static bool beyond_target(mgr *m, int widx)
{
    /* acquire: pairs with the client's release store of target (the places
     * of new positions are written before it). */
    return (uint32_t)widx >= atomic_load_explicit(&m->seg->hdr->target, memory_order_acquire);
}

/* Start a process in vacant position @widx (growth, or a worker that left
 * by resize while the position was grown back): not a respawn. */
static void start_position(mgr *m, int widx)
{
    ppi_worker *rec = &m->seg->workers[widx];
    /* relaxed: the client reads ready only after our release of resize_ack
     * (or it waits for the value 1 the new worker stores with release). */
    atomic_store_explicit(&rec->ready, 0, memory_order_relaxed);
    m->start_fails[widx] = 0;
    if (spawn_worker(m, widx) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "could not fork worker %d: %s", widx, strerror(errno));
        break_and_exit(m, -errno, getpid(), msg);
    }
}

static void respawn(mgr *m, int widx)
{
    /* acquire: pairs with the client's release of pool_state / stop. */
    if (atomic_load_explicit(&m->seg->hdr->pool_state, memory_order_acquire) != PPI_POOL_RUNNING)
        return;
    if (beyond_target(m, widx))
        return; /* resized away: the position stays vacant */
    /* relaxed: statistics, single writer (us). Counted before the fork, so
     * that a client which saw a result of the replacement (its release
     * publish comes after the fork, which comes after this store) also sees
     * the respawn counted. A failed fork breaks the pool anyway. */
    atomic_fetch_add_explicit(&m->seg->workers[widx].respawns, 1, memory_order_relaxed);
    if (spawn_worker(m, widx) < 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "could not fork a replacement worker: %s", strerror(errno));
        break_and_exit(m, -errno, getpid(), msg);
    }
}

/* Does worker @widx own a running (or killing) slot, or an entry it took
 * from the ring? Read after its death: its last stores are visible.
 *
 * From the worker's own records, not a scan of every slot: the only way a
 * slot becomes RUNNING(widx) is the worker's claim CAS (run_entry), which
 * happens while deq_entry holds the entry (set by the pop, cleared only
 * after current was set), and current keeps it until after the publish.
 * So a held slot is named by deq_entry or by current; current alone may
 * name a slot already published (then its state says so). The scan this
 * replaces touched every slot's page in the manager: 512 pages for 4,096
 * slots, 5-6 ms of page faults on a VM, at every pool's orderly end. */
static bool holds_task(mgr *m, int widx)
{
    ppi_seg *s = m->seg;
    ppi_worker *rec = &s->workers[widx];
    /* relaxed: the dead worker's own records (see recover_dequeue). */
    if (atomic_load_explicit(&rec->deq_entry, memory_order_relaxed))
        return true;
    uint64_t cur = atomic_load_explicit(&rec->current, memory_order_relaxed);
    if (!cur)
        return false;
    /* relaxed: a dead worker's slot cannot change under us but by the
     * client (cancel, kill), which keeps it RUNNING/KILLING(widx). */
    uint64_t w = atomic_load_explicit(&ppi_slot_at(s, ppi_entry_idx(cur))->state,
                                      memory_order_relaxed);
    uint32_t st = ppi_st_state(w);
    return ppi_st_gen(w) == ppi_entry_gen(cur) && (st == PPI_S_RUNNING || st == PPI_S_KILLING) &&
           ppi_st_worker(w) == (uint32_t)widx;
}

/*
 * A worker killed after publishing a task's outcome but before counting it
 * (worker.c, run_entry) left tasks/failed behind tasks_due/failed_due:
 * count that task for it. Not when it died holding a task (a RUNNING or
 * KILLING slot, a dequeued entry): its due counts are then that unpublished
 * task's, which is failed, killed or put back, and counted there. The due
 * counts are reset either way, so that a later death does not reuse them.
 * The worker is dead: its record has no other writer until the respawn.
 */
static void settle_counts(mgr *m, int widx)
{
    ppi_worker *rec = &m->seg->workers[widx];
    /* relaxed: the dead worker's own records; its stores are complete. */
    uint64_t tasks = atomic_load_explicit(&rec->tasks, memory_order_relaxed);
    uint64_t failed = atomic_load_explicit(&rec->failed, memory_order_relaxed);
    uint64_t tasks_due = atomic_load_explicit(&rec->tasks_due, memory_order_relaxed);
    uint64_t failed_due = atomic_load_explicit(&rec->failed_due, memory_order_relaxed);
    if (tasks_due > tasks && !holds_task(m, widx)) {
        /* relaxed: statistics (the client reads them relaxed). */
        atomic_store_explicit(&rec->failed, failed = failed_due, memory_order_relaxed);
        atomic_store_explicit(&rec->tasks, tasks = tasks_due, memory_order_relaxed);
    }
    atomic_store_explicit(&rec->tasks_due, tasks, memory_order_relaxed); /* relaxed: as above */
    atomic_store_explicit(&rec->failed_due, failed, memory_order_relaxed);
}

static void on_death(mgr *m, int widx, pid_t pid, int status)
{
    ppi_seg *s = m->seg;
    ppi_worker *rec = &s->workers[widx];
    /* acquire: pairs with the worker's release stores of its phase. */
    uint32_t phase = atomic_load_explicit(&rec->phase, memory_order_acquire);
    bool stopping = atomic_load_explicit(&s->hdr->stop, memory_order_acquire);
    bool exited = WIFEXITED(status);
    int st = exited ? WEXITSTATUS(status) : -1;
    m->pids[widx] = 0;
    m->live--;
    settle_counts(m, widx);
    char msg[160];

    /* acquire: pairs with ppi_pool_break's release (terminate/kill workers,
     * or the client noticed something): no attribution, no replacement. */
    if (atomic_load_explicit(&s->hdr->pool_state, memory_order_acquire) != PPI_POOL_RUNNING)
        break_and_exit(m, exit_code(status), pid, "the pool is broken");
    if (phase == PPI_PH_RETIRING && st == PPI_EXIT_RETIRED) {
        respawn(m, widx); /* it exits again at once if the pool is stopping */
        return;
    }
    if (phase == PPI_PH_LEFT && st == PPI_EXIT_LEFT) {
        /* Left because of a shrink; grown back since: start a new one. */
        if (!beyond_target(m, widx) && !stopping)
            start_position(m, widx);
        return;
    }
    if (phase != PPI_PH_START && phase != PPI_PH_INIT && phase != PPI_PH_INIT_FAILED &&
        beyond_target(m, widx) && !holds_task(m, widx)) {
        /* Told to leave, and died holding no task (killed from outside,
         * or a crash between tasks): nothing is lost, nobody replaces it. */
        recover_dequeue(m, widx);
        return;
    }
    bool replacement = atomic_load_explicit(&rec->respawns, memory_order_relaxed) > 0;
    if (phase == PPI_PH_START && replacement && s->hdr->death_policy == PP_DEATH_RESPAWN &&
        ++m->start_fails[widx] < MAX_START_FAILS) {
        respawn(m, widx);
        return;
    }
    if (phase == PPI_PH_START || phase == PPI_PH_INIT || phase == PPI_PH_INIT_FAILED) {
        /* release: read by pp_executor_create with the broken state. The
         * initializer runs after the worker said ready: such a pool did start
         * (Python parity: submits and futures then fail with PP_EBROKEN). */
        if (phase != PPI_PH_START)
            atomic_store_explicit(&s->hdr->broken_started, 1, memory_order_release);
        if (phase == PPI_PH_INIT_FAILED && st == PPI_EXIT_INIT)
            snprintf(msg, sizeof msg, "the initializer failed in worker %d", (int)pid);
        else {
            char why[120];
            describe_exit(why, sizeof why, pid, status);
            snprintf(msg, sizeof msg, "%s while starting%s", why,
                     phase == PPI_PH_START ? "" : " (in the initializer)");
        }
        break_and_exit(m, exit_code(status), pid, msg);
    }
    m->start_fails[widx] = 0; /* it did start */
    /* Orderly end: exit 0 between tasks. A worker that dies holding a task
     * (e.g. the task called _exit(0)) is a death, whatever its status. */
    if (stopping && exited && st == 0 && phase == PPI_PH_LOOP && !holds_task(m, widx))
        return;
    bool respawn_policy = s->hdr->death_policy == PP_DEATH_RESPAWN;
    bool killed = attribute_death(m, widx, pid, status, respawn_policy);
    if (!killed && !respawn_policy) {
        describe_exit(msg, sizeof msg, pid, status);
        break_and_exit(m, exit_code(status), pid, msg);
    }
    recover_dequeue(m, widx);
    respawn(m, widx);
}

/*
 * pp_executor_resize, manager side (docs/design.md, "Resizing"): apply the
 * client's target if its seq is new. Positions beyond it are told to leave
 * (retire = 1; idle workers are woken to see it); vacant positions below it
 * get a worker (not while the pool stops); a position grown back before its
 * worker left is told to stay. Then the seq is acknowledged.
 */
static void apply_resize(mgr *m)
{
    ppi_hdr *h = m->seg->hdr;
    /* acquire: pairs with the client's release increment (target and the
     * new positions' places are visible). */
    uint32_t seq = atomic_load_explicit(&h->resize_seq, memory_order_acquire);
    if (seq == m->applied)
        return;
    int target = (int)atomic_load_explicit(&h->target, memory_order_acquire); /* as above */
    if (target > m->nworkers)
        m->nworkers = target;
    /* acquire: pairs with the client's release of stop. */
    bool stopping = atomic_load_explicit(&h->stop, memory_order_acquire);
    bool wake = false;
    for (int i = 0; i < m->nworkers; i++) {
        _Atomic uint32_t *retire = &m->seg->workers[i].retire;
        if (i >= target && m->pids[i] > 0 &&
            !atomic_load_explicit(retire, memory_order_relaxed)) { /* relaxed: our own word */
            /* relaxed: a hint the worker polls between tasks; the ec
             * notify below (seq_cst) wakes the sleeping ones after it. */
            atomic_store_explicit(retire, 1, memory_order_relaxed);
            wake = true;
        } else if (i < target && m->pids[i] > 0) {
            /* relaxed: as above; a worker that already saw 1 leaves, and
             * on_death starts a new one since the position is wanted. */
            atomic_store_explicit(retire, 0, memory_order_relaxed);
        } else if (i < target && m->pids[i] == 0 && !stopping) {
            start_position(m, i);
        }
    }
    if (wake)
        ppi_ec_notify(&h->work_ec, INT_MAX);
    m->applied = seq;
    /* release: the ready words reset by start_position come before. */
    atomic_store_explicit(&h->resize_ack, seq, memory_order_release);
    ppi_futex_wake(&h->resize_ack, INT_MAX, true);
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
        if (widx >= 0)
            on_death(m, widx, pid, status);
    }
}

/*
 * Kill enforcement, run on every wake-up. For each live worker: a task past
 * its deadline is switched RUNNING -> KILLING (the CAS decides: a task that
 * just finished is left alone); a KILLING task (ours or the client's
 * pp_future_kill) gets SIGTERM once, then SIGKILL after its grace period.
 * Returns the nearest time something is due (UINT64_MAX: nothing).
 */
static uint64_t enforce_kills(mgr *m)
{
    ppi_seg *s = m->seg;
    uint64_t now = ppi_now_ns(), next = UINT64_MAX;
    for (int i = 0; i < m->nworkers; i++) {
        if (m->pids[i] <= 0)
            continue;
        ppi_worker *rec = &s->workers[i];
        /* relaxed: the worker's records; the slot CAS below re-validates. */
        uint64_t cur = atomic_load_explicit(&rec->current, memory_order_relaxed);
        uint64_t dl = atomic_load_explicit(&rec->deadline_ns, memory_order_relaxed);
        if (!cur) {
            m->kill_at[i] = 0;
            continue;
        }
        ppi_slot *sl = ppi_slot_at(s, ppi_entry_idx(cur));
        uint32_t gen = ppi_entry_gen(cur);
        /* acquire: pairs with the killer's release CAS (kill_reason visible). */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
        if (ppi_st_gen(w) != gen || ppi_st_worker(w) != (uint32_t)i)
            continue;
        if (ppi_st_state(w) == PPI_S_RUNNING && dl) {
            if (now < dl) {
                next = dl < next ? dl : next;
                continue;
            }
            sl->kill_reason = PPI_KILL_TIMEOUT;
            uint64_t nw = (w & ~(uint64_t)0xff) | PPI_S_KILLING;
            /* release: kill_reason before KILLING; the worker's publish CAS
             * fails from now on, so it can never start another task. */
            if (!atomic_compare_exchange_strong_explicit(&sl->state, &w, nw,
                                                         memory_order_release,
                                                         memory_order_acquire))
                continue; /* finished (or killed by the client) meanwhile */
            w = nw;
        }
        if (ppi_st_state(w) != PPI_S_KILLING)
            continue;
        if (m->term_entry[i] != cur) {
            m->term_entry[i] = cur;
            /* relaxed: ordered by the acquire that read KILLING. */
            uint64_t grace = atomic_load_explicit(&sl->kill_grace_ns, memory_order_relaxed);
            m->kill_at[i] = ppi_add_sat(now, grace); /* grace may be "forever" */
            kill(m->pids[i], SIGTERM); /* our unreaped child: its pid is not reused */
        } else if (m->kill_at[i] && now >= m->kill_at[i]) {
            kill(m->pids[i], SIGKILL);
            m->kill_at[i] = 0;
        }
        if (m->kill_at[i])
            next = m->kill_at[i] < next ? m->kill_at[i] : next;
    }
    return next;
}

/* A command from the client: signal every live worker (pp_terminate_workers,
 * pp_kill_workers). Kill requests and timed tasks only need the wake-up. */
static void run_command(mgr *m)
{
    uint64_t v;
    if (read(m->seg->cmd_fd, &v, sizeof v) != (ssize_t)sizeof v)
        return;
    /* acquire: pairs with the client's release store before it wrote the fd. */
    int sig = atomic_exchange_explicit(&m->seg->hdr->kill_signal, 0, memory_order_acquire);
    if (sig > 0)
        for (int i = 0; i < m->nworkers; i++)
            if (m->pids[i] > 0)
                kill(m->pids[i], sig); /* our own unreaped child: pid cannot be reused */
    /* A worker may ignore or handle SIGTERM: escalate after the grace. */
    if (sig > 0 && sig != SIGKILL && !m->term_all_at)
        m->term_all_at = ppi_now_ns() + PPI_TERMINATE_GRACE_NS;
}

_Noreturn void ppi_manager_main(ppi_seg *seg)
{
    pid_t client = seg->hdr->client_pid;
    /* FORK: none of the client's close-on-exec descriptors (a pipe the
     * client closes must see EOF; workers inherit from us), as if execed. */
    int keep[2] = {seg->fd, seg->cmd_fd};
    ppi_drop_cloexec_fds(keep, 2);
    /* Without pidfd_open (old kernel, seccomp, valgrind) the client's death
     * is noticed by polling getppid() every PPI_LIVENESS_NS instead. Not
     * PR_SET_PDEATHSIG: it fires when the creating *thread* exits. */
    int cfd = pidfd_open_compat(client);
    if (getppid() != client)
        _exit(0);
    prctl(PR_SET_NAME, "ppool-manager");
    setpgid(0, 0);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigaddset(&chld, PPI_SIG_ARM); /* a worker armed a timeout (worker.c) */
    sigprocmask(SIG_SETMASK, &chld, NULL); /* only these blocked: read via signalfd */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, SIG_IGN);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        _exit(102);
    /* relaxed: published to the client by the ready count's release. */
    atomic_store_explicit(&seg->hdr->manager_pid, getpid(), memory_order_relaxed);

    if (seg->hdr->start_method == PP_START_FORKSERVER)
        ppi_modtab_resolve(seg->modtab, false); /* once, for every forked worker */
    static mgr m; /* large (per-worker arrays): not on the stack */
    m.seg = seg;
    m.cfd = cfd;
    m.sfd = sfd;
    CPU_ZERO(&m.own_cpus);
    sched_getaffinity(0, sizeof m.own_cpus, &m.own_cpus);
    /* acquire: the client wrote the initial target before starting us. */
    m.nworkers = (int)atomic_load_explicit(&seg->hdr->target, memory_order_acquire);
    for (int i = 0; i < m.nworkers; i++)
        if (spawn_worker(&m, i) < 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "could not fork worker %d: %s", i, strerror(errno));
            break_and_exit(&m, -errno, getpid(), msg);
        }

    struct pollfd pf[3] = {{.fd = cfd, .events = POLLIN},
                           {.fd = sfd, .events = POLLIN},
                           {.fd = seg->cmd_fd, .events = POLLIN}};
    uint64_t next_due = UINT64_MAX;
    for (;;) {
        uint64_t tick = cfd >= 0 ? PPI_MANAGER_TICK_NS : PPI_MANAGER_TICK_NO_PIDFD_NS;
        int timeout_ms = (int)(tick / 1000000);
        if (m.term_all_at && m.live > 0 && m.term_all_at < next_due) /* never a busy loop */
            next_due = m.term_all_at;
        if (next_due != UINT64_MAX) {
            uint64_t left = ppi_remaining(next_due, tick);
            timeout_ms = (int)((left + 999999) / 1000000);
        }
        int n = poll(pf, 3, timeout_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            kill_and_reap_all(&m); /* the client is gone: nothing may outlive it */
            _exit(0);
        }
        if (pf[2].revents & POLLIN)
            run_command(&m);
        apply_resize(&m);
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            ;
        reap(&m);
        if (m.term_all_at && ppi_now_ns() >= m.term_all_at && m.live > 0)
            break_and_exit(&m, SIGKILL, getpid(), "workers killed: still alive 1 s after SIGTERM");
        next_due = enforce_kills(&m);
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
