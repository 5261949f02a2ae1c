/*
 * worker.c — the worker loop and the task-side API (pp_task_*).
 *
 * A worker owns nothing but its ppi_worker record. It takes a slot entry from
 * the task ring, claims the slot with one CAS (QUEUED -> RUNNING(self)), runs
 * the function, writes the outcome into the slot and publishes it with one
 * CAS (RUNNING -> DONE/FAILED, or RECLAIM when the client dropped the
 * future), then wakes the slot's waiters if any said they sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "fnmap.h"
#include "ppool.h"
#include "process.h"
#include "shards.h"
#include "thread_env.h"

static pid_t worker_pid; /* getpid() is a system call; ours never changes */
static pid_t manager_pid; /* our parent */

struct pp_task {
    ppi_seg *seg;
    ppi_slot *slot;
    int widx;
    uint64_t res_size;
    uint64_t res_off;     /* arena block we own, 0 = inline */
    int res_err;          /* PP_ETOOBIG / -ENOMEM from pp_task_result */
    int raised;
    int code;
    uint32_t msg_len;
};

const void *pp_task_arg(pp_task *t, size_t *size)
{
    if (size)
        *size = t->slot->arg_size;
    if (t->slot->arg_off)
        return t->seg->base + t->slot->arg_off;
    return ppi_slot_arg_inline(t->seg, t->slot);
}

/* The result block is recorded in the slot (res_off) from the moment it is
 * taken until it is freed: if this worker dies in between (crash, kill,
 * timeout), the slot fails and its reclaimer (the client detaching or
 * reclaiming it) frees the block; nothing leaks. */
static void task_drop_result(pp_task *t)
{
    ppi_arena_free_rec(t->seg, &t->slot->res_off);
    t->res_off = 0;
    t->res_size = 0;
}

void *pp_task_result(pp_task *t, size_t size)
{
    task_drop_result(t);
    t->res_err = 0;
    if (size > t->seg->hdr->max_result) {
        t->res_err = PP_ETOOBIG;
        return NULL;
    }
    if (size <= t->seg->inline_size) {
        t->res_size = size;
        return ppi_slot_res_inline(t->seg, t->slot);
    }
    uint64_t off = ppi_arena_alloc_rec(t->seg, size, &t->slot->res_off);
    if (!off) {
        t->res_err = -ENOMEM;
        return NULL;
    }
    t->res_off = off;
    t->res_size = size;
    return t->seg->base + off;
}

int pp_task_set_result(pp_task *t, const void *data, size_t size)
{
    void *dst = pp_task_result(t, size);
    if (!dst)
        return t->res_err;
    if (size) /* the client reads it on another core: copy.h picks the way */
        ppi_copy_payload(dst, data, size);
    return 0;
}

int pp_task_raise(pp_task *t, int code, const char *fmt, ...)
{
    task_drop_result(t);
    char *msg = ppi_slot_res_inline(t->seg, t->slot);
    int n = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(msg, PP_MESSAGE_MAX + 1, fmt, ap); /* the area holds that */
        va_end(ap);
    } else {
        msg[0] = 0;
    }
    if (n < 0)
        n = 0;
    if (n > PP_MESSAGE_MAX)
        n = PP_MESSAGE_MAX;
    t->msg_len = (uint32_t)n;
    t->raised = 1;
    t->code = code;
    return PP_ETASK;
}

bool pp_task_should_stop(pp_task *t)
{
    ppi_hdr *h = t->seg->hdr;
    /* relaxed: polled hints; a late answer costs one more poll. */
    return atomic_load_explicit(&h->cancel_flag, memory_order_relaxed) ||
           atomic_load_explicit(&h->pool_state, memory_order_relaxed) != PPI_POOL_RUNNING ||
           ppi_st_state(atomic_load_explicit(&t->slot->state, memory_order_relaxed)) ==
               PPI_S_KILLING;
}

int pp_task_worker(pp_task *t) { return t->widx; }


void *pp_task_shm(pp_task *t, uint64_t offset)
{
    if (offset < t->seg->hdr->arena.off_data || offset >= t->seg->size)
        return NULL;
    return t->seg->base + offset;
}

const void *pp_task_shared(pp_task *t, uint64_t handle, size_t *size)
{
    uint64_t n = 0, off = ppi_share_lookup(t->seg, handle, &n);
    if (size)
        *size = (size_t)n;
    return off ? t->seg->base + off : NULL;
}

const ppi_modtab *ppi_task_modtab(const pp_task *t) { return t->seg->modtab; }

/* Write the outcome fields (slot owned by us: RUNNING(widx)). */
static void task_write_outcome(pp_task *t, int rc)
{
    ppi_slot *sl = t->slot;
    sl->pid = worker_pid;
    if (t->raised) {
        sl->err = PP_ETASK;
        sl->code = t->code;
        sl->msg_len = t->msg_len;
    } else if (rc != 0) {
        task_drop_result(t);
        sl->err = PP_ETASK;
        sl->code = rc;
        sl->msg_len = (uint32_t)snprintf(ppi_slot_res_inline(t->seg, sl), PP_MESSAGE_MAX + 1,
                                         "task returned %d", rc);
    } else if (t->res_err) {
        sl->err = t->res_err;
        sl->code = 0;
        sl->msg_len = (uint32_t)snprintf(ppi_slot_res_inline(t->seg, sl), PP_MESSAGE_MAX + 1,
                                         "%s", t->res_err == PP_ETOOBIG
                                                   ? "result larger than max_result_size"
                                                   : "no room in the arena for the result");
    } else {
        sl->err = 0;
        sl->code = 0;
        sl->msg_len = 0;
    }
    if (sl->msg_len > PP_MESSAGE_MAX)
        sl->msg_len = PP_MESSAGE_MAX;
    sl->res_size = sl->err ? 0 : t->res_size;
    sl->res_off = t->res_off;
}

/* Claim the slot named by @e. Returns false if it is not ours to run. */
static bool slot_claim(ppi_seg *seg, uint64_t e, int widx)
{
    ppi_slot *sl = ppi_slot_at(seg, ppi_entry_idx(e));
    uint32_t gen = ppi_entry_gen(e);
    /* acquire: pairs with the client's release of QUEUED (payload visible). */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_acquire);
    for (;;) {
        if (ppi_st_gen(w) != gen)
            return false; /* stale entry; cannot happen while entries are unique */
        uint32_t st = ppi_st_state(w), fl = ppi_st_flags(w);
        uint64_t nw;
        if (st == PPI_S_QUEUED)
            nw = ppi_st_make(gen, PPI_S_RUNNING, fl, (uint32_t)widx);
        else if (st == PPI_S_CANCELLED)
            nw = ppi_st_make(gen, PPI_S_RECLAIM, 0, PPI_NO_WORKER);
        else
            return false; /* failed by a broken-pool sweep */
        /* acq_rel: acquire the payload; release our claim (RUNNING) so that
         * the client's cancel CAS fails from here on. */
        if (atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (st == PPI_S_CANCELLED) {
                /* release: the client's reclaim scan reads the slot after it. */
                atomic_fetch_add_explicit(&seg->hdr->reclaim, 1, memory_order_release);
                ppi_ec_notify(&seg->hdr->done_ec, 1);
                return false;
            }
            return true;
        }
    }
}

static void set_phase(ppi_worker *me, uint32_t phase)
{
    /* release: the manager reads the phase after our death (all our stores
     * are visible by then); release keeps it after the work it describes. */
    atomic_store_explicit(&me->phase, phase, memory_order_release);
}

/* Our slot was switched to KILLING (kill request or timeout): we may not
 * publish nor take another task. Exit; the manager fails the future with
 * PP_EKILLED and starts a replacement. */
static _Noreturn void exit_killed(ppi_worker *me)
{
    set_phase(me, PPI_PH_KILLED);
    fflush(stdout);
    fflush(stderr);
    _exit(PPI_EXIT_KILLED);
}

/* Publish the outcome: RUNNING -> DONE/FAILED (or RECLAIM for orphans). */
static void slot_publish(ppi_seg *seg, uint32_t idx, uint32_t gen, int widx)
{
    ppi_slot *sl = ppi_slot_at(seg, idx);
    uint32_t st = sl->err ? PPI_S_FAILED : PPI_S_DONE;
    /* relaxed: the CAS below re-validates. */
    uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
    uint64_t nw;
    do {
        if (ppi_st_gen(w) == gen && ppi_st_state(w) == PPI_S_KILLING &&
            ppi_st_worker(w) == (uint32_t)widx)
            exit_killed(&seg->workers[widx]);
        if (ppi_st_gen(w) != gen || ppi_st_state(w) != PPI_S_RUNNING ||
            ppi_st_worker(w) != (uint32_t)widx)
            return; /* a broken-pool sweep failed it first */
        if (ppi_st_flags(w) & PPI_F_ORPHAN) {
            /* Nobody reads the outcome: free the blocks while the slot is
             * ours, so they do not hold arena room until the client's next
             * reclaim scan (ORPHAN is never cleared: a failed CAS retries
             * this branch, and a second free finds the records cleared). */
            ppi_arena_free_rec(seg, &sl->res_off);
            ppi_arena_free_rec(seg, &sl->arg_off);
            nw = ppi_st_make(gen, PPI_S_RECLAIM, 0, PPI_NO_WORKER);
        }
        else
            nw = ppi_st_make(gen, st, 0, (uint32_t)widx);
        /* release: publishes the outcome fields written before; pairs with
         * the waiter's acquire load of the state. */
    } while (!atomic_compare_exchange_weak_explicit(&sl->state, &w, nw, memory_order_release,
                                                    memory_order_relaxed));
    ppi_slot_finished(seg, idx, w, nw);
}

/* A task with a timeout started: tell the manager when it must end. */
static void arm_timeout(ppi_seg *seg, ppi_worker *me, ppi_slot *sl, uint64_t t0)
{
    /* relaxed: the kill() below orders it for the manager (the signal
     * passes through the kernel's locks before its signalfd read). */
    atomic_store_explicit(&me->deadline_ns, ppi_add_sat(t0, sl->timeout_ns),
                          memory_order_relaxed);
    (void)seg;
    /* A signal, not the command eventfd: a task may have closed that
     * descriptor, or opened another file on its number. The signal orders
     * the store above for the manager (it reads its signalfd, then us).
     * Only while it is our parent: its pid cannot have been reused then. */
    if (getppid() == manager_pid)
        kill(manager_pid, PPI_SIG_ARM);
}

/* Runs the task of ring entry @e if we win its slot. Returns false when the
 * entry was stale (cancelled or killed before we claimed it); else true, with
 * the time the task function ran in *ran_ns and the clock after it in *end_ns. */
static bool run_entry(ppi_seg *seg, ppi_worker *me, int widx, uint64_t e, uint64_t *ran_ns,
                      uint64_t *end_ns)
{
    bool claimed = slot_claim(seg, e, widx);
    /* relaxed: crash-attribution records, read by the manager after death. */
    if (claimed)
        atomic_store_explicit(&me->current, e, memory_order_relaxed);
    atomic_store_explicit(&me->deq_entry, 0, memory_order_relaxed);
    if (!claimed)
        return false;
    ppi_slot *sl = ppi_slot_at(seg, ppi_entry_idx(e));
    pp_task t = {.seg = seg, .slot = sl, .widx = widx};
    const char *why = NULL;
    pp_fn fn = (pp_fn)ppi_fn_decode(seg->modtab, sl->fn, &why); /* 0 -> NULL */
    uint64_t t0 = ppi_now_ns();
    sl->started_ns = t0; /* RUNNING(us): the start time is ours to write */
    if (sl->timeout_ns)
        arm_timeout(seg, me, sl, t0);
    int rc = fn ? fn(&t) : pp_task_raise(&t, PP_ENOFUNC, "cannot call the task function: %s", why);
    uint64_t t1 = ppi_now_ns();
    task_write_outcome(&t, rc);
    if (!fn)
        sl->err = PP_ENOFUNC; /* not the task's own error: it never ran */
    bool failed = sl->err != 0; /* read before publishing: after it the slot is the client's */
    /* relaxed: statistics with a single writer (this worker); the counts
     * this task will make, for the manager should we die between the
     * publish and the counting below (read only after our death). */
    uint64_t ntasks = atomic_load_explicit(&me->tasks, memory_order_relaxed) + 1;
    uint64_t nfailed = atomic_load_explicit(&me->failed, memory_order_relaxed) + failed;
    atomic_store_explicit(&me->tasks_due, ntasks, memory_order_relaxed);
    atomic_store_explicit(&me->failed_due, nfailed, memory_order_relaxed);
    slot_publish(seg, ppi_entry_idx(e), ppi_entry_gen(e), widx);
    /* relaxed: our own records (see above). */
    atomic_store_explicit(&me->deadline_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&me->current, 0, memory_order_relaxed);
    /* relaxed: statistics with a single writer (this worker). */
    atomic_store_explicit(&me->busy_ns,
                          atomic_load_explicit(&me->busy_ns, memory_order_relaxed) + (t1 - t0),
                          memory_order_relaxed);
    atomic_store_explicit(&me->failed, nfailed, memory_order_relaxed);
    atomic_store_explicit(&me->tasks, ntasks, memory_order_relaxed);
    *ran_ns = t1 - t0;
    *end_ns = t1;
    return true;
}

/*
 * max_rss_growth. The measure is private resident memory: statm's resident
 * minus shared pages (file-backed and shared memory), that is RssAnon. The
 * arena's pages a task touches are shared and do not count; a forked
 * worker's copy-on-write view of its parent does count, which is why the
 * baseline is taken after the first task (as loky does), not at start.
 * Reading costs one pread of /proc/self/statm (~2 µs), so it is done after
 * tasks that ran long enough to hide it, or after PPI_RSS_CHECK_NS of short ones.
 */

typedef struct rss_watch {
    uint64_t limit;   /* growth allowed in bytes, 0 = not watching */
    int fd;           /* /proc/self/statm, -1 when it cannot be read */
    dev_t dev;        /* ... its identity: a task may close the descriptor */
    ino_t ino;        /* and open another file on its number */
    uint64_t base;    /* private RSS after the first task; UINT64_MAX = not yet */
    uint64_t last_ns; /* when it was last read */
} rss_watch;

static void rss_watch_init(rss_watch *w, uint64_t limit)
{
    w->limit = limit;
    w->fd = -1;
    w->dev = 0;
    w->ino = 0;
    w->base = UINT64_MAX;
    w->last_ns = 0;
    if (!limit)
        return;
    w->fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (w->fd >= 0 && fstat(w->fd, &st) == 0) {
        w->dev = st.st_dev;
        w->ino = st.st_ino;
    } else {
        fprintf(stderr, "ppool: worker %d cannot read /proc/self/statm (%s): max_rss_growth is "
                        "not enforced\n", (int)worker_pid, strerror(errno));
        if (w->fd >= 0)
            close(w->fd);
        w->fd = -1;
    }
}

/* Is w->fd still our statm? Reopen it if a task closed or replaced it
 * (never close a number that is no longer ours). */
static bool rss_fd_ok(rss_watch *w)
{
    struct stat st;
    if (fstat(w->fd, &st) == 0 && st.st_dev == w->dev && st.st_ino == w->ino)
        return true;
    w->fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (w->fd < 0 || fstat(w->fd, &st) != 0)
        return false;
    w->dev = st.st_dev;
    w->ino = st.st_ino;
    return true;
}

/* Private resident bytes, or UINT64_MAX when statm cannot be read. */
static uint64_t private_rss(int fd)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return UINT64_MAX;
    buf[n] = 0;
    unsigned long long size, resident, shared;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3 || shared > resident)
        return UINT64_MAX;
    return (uint64_t)(resident - shared) * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* After a task that ran @ran_ns and ended at @end_ns: true when this worker
 * should retire because its private memory grew past the limit. */
static bool rss_grew_too_much(rss_watch *w, uint64_t ran_ns, uint64_t end_ns)
{
    if (w->fd < 0)
        return false;
    bool first = w->base == UINT64_MAX;
    if (!first && ran_ns < PPI_RSS_LONG_TASK_NS && end_ns - w->last_ns < PPI_RSS_CHECK_NS)
        return false;
    w->last_ns = end_ns;
    if (!rss_fd_ok(w))
        return false;
    uint64_t rss = private_rss(w->fd);
    if (rss == UINT64_MAX)
        return false;
    if (first) {
        w->base = rss;
        return false;
    }
    return rss > w->base && rss - w->base > w->limit;
}

/* Between tasks: exit cleanly; the manager sees RETIRING + exit 75 and
 * starts a replacement in the same position. */
static _Noreturn void retire(ppi_worker *me)
{
    set_phase(me, PPI_PH_RETIRING);
    fflush(stdout);
    fflush(stderr);
    _exit(PPI_EXIT_RETIRED);
}

/* Has a shrink (pp_executor_resize) asked this position to leave? */
static bool asked_to_leave(ppi_worker *me)
{
    /* relaxed: a hint polled between tasks; the manager decides nothing
     * from when we see it (docs/design.md, "Resizing"). */
    return atomic_load_explicit(&me->retire, memory_order_relaxed) != 0;
}

/* Between tasks, our position resized away: exit cleanly; the manager sees
 * LEFT + exit 74 and leaves the position vacant (or starts a new worker if
 * the pool was grown back meanwhile). */
static _Noreturn void leave(ppi_worker *me)
{
    set_phase(me, PPI_PH_LEFT);
    fflush(stdout);
    fflush(stderr);
    _exit(PPI_EXIT_LEFT);
}

/* Wait for work in any shard (@home first). Returns true when the worker
 * should exit. */
static bool wait_for_work(ppi_seg *seg, ppi_worker *me, uint32_t home, pid_t manager)
{
    ppi_hdr *h = seg->hdr;
    /* Spin with pause for a few microseconds (the round trip's fast path),
     * then spin with sched_yield: a client or service thread that shares our
     * core then gets it at once (on a machine with as many workers as cores
     * they always do), while new work is still seen within microseconds. */
    uint64_t t0 = ppi_now_ns();
    for (unsigned i = 1;; i++) {
        if (ppi_tasks_nonempty(seg, home))
            return false;
        if ((i & 63) == 0) {
            uint64_t now = ppi_now_ns();
            if (now - t0 > PPI_WORKER_SPIN_NS)
                break;
            if (now - t0 > PPI_WORKER_PAUSE_NS)
                sched_yield();
        }
        ppi_cpu_relax();
    }
    /* The Dekker re-check covers every shard: an entry pushed into any of
     * them either is seen here or its pusher's notify sees us (shards.h). */
    uint32_t seq = ppi_ec_prepare(&h->work_ec);
    if (ppi_tasks_nonempty(seg, home) || asked_to_leave(me)) {
        ppi_ec_cancel(&h->work_ec);
        return false;
    }
    /* acquire: pairs with the client's release of stop / break. */
    if (atomic_load_explicit(&h->stop, memory_order_acquire) ||
        atomic_load_explicit(&h->pool_state, memory_order_acquire) != PPI_POOL_RUNNING) {
        ppi_ec_cancel(&h->work_ec);
        return true;
    }
    ppi_ec_sleep(&h->work_ec, seq, PPI_LIVENESS_NS);
    if (getppid() != manager)
        _exit(0); /* manager gone (PDEATHSIG normally got here first) */
    return false;
}

static void run_initializer(ppi_seg *seg, ppi_worker *me)
{
    ppi_hdr *h = seg->hdr;
    if (!h->initializer)
        return;
    set_phase(me, PPI_PH_INIT);
    const char *why = NULL;
    pp_initializer init = (pp_initializer)ppi_fn_decode(seg->modtab, h->initializer, &why);
    if (!init) {
        fprintf(stderr, "ppool: worker cannot call the initializer: %s\n", why);
        set_phase(me, PPI_PH_INIT_FAILED);
        _exit(PPI_EXIT_INIT);
    }
    const void *args = h->initargs_off ? seg->base + h->initargs_off : NULL;
    if (init(args, h->initargs_size) != 0) {
        set_phase(me, PPI_PH_INIT_FAILED);
        fflush(stdout);
        fflush(stderr);
        _exit(PPI_EXIT_INIT);
    }
}

#ifdef PPOOL_FAULT_INJECTION
/* Test hook (fault injection, used by the test suite only): with
 * PPOOL_TEST_DIE_IN_POP=N in the environment, a worker SIGKILLs itself inside
 * its N-th dequeue, after taking the ring ticket and before releasing the
 * cell — the worst place for a consumer to die. */
static long die_in_pop = -1;
static void die_in_pop_hook(void)
{
    if (die_in_pop > 0 && --die_in_pop == 0)
        raise(SIGKILL);
}
static void install_test_hooks(void)
{
    const char *v = getenv("PPOOL_TEST_DIE_IN_POP");
    if (v && *v) {
        die_in_pop = atol(v);
        ppi_ring_test_hook = die_in_pop_hook;
    }
}
#else
static void install_test_hooks(void) {}
#endif

_Noreturn void ppi_worker_main(ppi_seg *seg, int widx, pid_t manager)
{
    /* The manager is single-threaded, so "parent thread died" = manager died. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != manager)
        _exit(0);
    char name[16];
    snprintf(name, sizeof name, "ppool-w%d", widx);
    prctl(PR_SET_NAME, name);
    signal(SIGCHLD, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    ppi_worker *me = &seg->workers[widx];
    worker_pid = getpid();
    manager_pid = manager;
    /* The pool's descriptors are not the task's: the segment is mapped and
     * the manager is reached by signals (the manager's own ones were closed
     * after fork, or by exec). */
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->cmd_fd >= 0)
        close(seg->cmd_fd);
    seg->fd = seg->cmd_fd = -1;
    /* relaxed: published by the ready stores below. The manager stores the
     * same value after fork() returns, but it may run later than we reach
     * ready (a slow parent, e.g. under ASan): pp_executor_create promises
     * every pid once it returns. */
    atomic_store_explicit(&me->pid, worker_pid, memory_order_relaxed);
    set_phase(me, PPI_PH_START);
    atomic_store_explicit(&me->current, 0, memory_order_relaxed); /* relaxed: own record */
    atomic_store_explicit(&me->deadline_ns, 0, memory_order_relaxed);
    if (ppi_topo_bind_self(&me->place) != 0)
        _exit(101);
    /* cores_per_worker: the thread variables, before the initializer. */
    static ppi_tenv tenv; /* 8 KiB: not on the stack */
    ppi_tenv_make(&tenv, seg->hdr->cores_per_worker, seg->hdr->thread_env_keep, &me->place);
    ppi_tenv_apply(&tenv, seg->hdr->cores_per_worker, seg->hdr->thread_env_keep);
    /* FORK: the client's image. FORKSERVER: the manager resolved the table
     * before forking us, and we inherited that. SPAWN: a fresh image. */
    if (seg->hdr->start_method == PP_START_SPAWN)
        ppi_modtab_resolve(seg->modtab, false);
    else if (seg->hdr->start_method == PP_START_FORK)
        ppi_modtab_resolve(seg->modtab, true);
    /* Leave START before saying ready: pp_executor_create returns once all
     * are ready, and a worker killed after that is a death in a started
     * pool (death policy), not a pool that could not start. */
    set_phase(me, seg->hdr->initializer ? PPI_PH_INIT : PPI_PH_LOOP);
    /* release: the client reads ready then the record (pid, cpu). */
    atomic_store_explicit(&me->ready, 1, memory_order_release);
    /* release: counts ready workers for pp_executor_create's wait. */
    atomic_fetch_add_explicit(&seg->hdr->ready, 1, memory_order_release);
    ppi_futex_wake(&seg->hdr->ready, INT_MAX, true);
    run_initializer(seg, me);
    set_phase(me, PPI_PH_LOOP);
    install_test_hooks();

    uint64_t done = 0, max_tasks = seg->hdr->max_tasks;
    /* Written by the client before this position's first worker started;
     * never changes. Out of range only if the segment was overwritten. */
    uint32_t home = me->home_shard < seg->nshards ? me->home_shard : 0;
    uint32_t fair_tick = 0; /* ppi_shard_pop_start's count (process-local) */
    rss_watch rss;
    rss_watch_init(&rss, seg->hdr->max_rss_growth);
    for (;;) {
        uint64_t e, ran_ns, end_ns;
        if (asked_to_leave(me))
            leave(me);
        uint32_t start = ppi_shard_pop_start(home, seg->nshards, &fair_tick);
        if (ppi_tasks_pop_rec(seg, start, &e, &me->deq_claim, &me->deq_entry)) {
            /* A stale entry (cancelled before we claimed it) ran nothing:
             * it counts toward neither limit. */
            if (!run_entry(seg, me, widx, e, &ran_ns, &end_ns))
                continue;
            if (max_tasks && ++done >= max_tasks)
                retire(me);
            if (rss.limit && rss_grew_too_much(&rss, ran_ns, end_ns))
                retire(me);
            continue;
        }
        if (wait_for_work(seg, me, home, manager))
            break;
    }
    fflush(stdout); /* a task's buffered prints are not lost (cf. Python's W14) */
    fflush(stderr);
    _exit(0);
}
