/*
 * executor.c — the executor's life-cycle (create, submit, shutdown, destroy,
 * statistics) and the client's slot bookkeeping.
 *
 * Submission fast path (no lock, no system call unless a worker sleeps):
 *   pop a FREE slot index from the client's free ring -> copy the argument in
 *   -> store QUEUED (release) -> push (idx, gen) on the task ring (release)
 *   -> notify the workers' eventcount (one fence, one load).
 * When no slot (or no arena room for a large argument) is free, or a backlog
 * already exists (to keep submission order), the call goes to the backlog,
 * which the service thread (service_thread.c, backlog.c) feeds in as slots
 * free up.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "client.h"
#include "fnmap.h"
#include "process.h"
#include "topology.h"
#include "tunables.h"

#define MiB (1024ull * 1024ull)

void pp_config_init(pp_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->max_workers = 0;
    cfg->start_method = PP_START_AUTO;
    const char *m = getenv("PPOOL_START_METHOD"); /* lets a test run parameterise suites */
    if (m && !strcmp(m, "fork"))
        cfg->start_method = PP_START_FORK;
    else if (m && !strcmp(m, "spawn"))
        cfg->start_method = PP_START_SPAWN;
    else if (m && !strcmp(m, "forkserver"))
        cfg->start_method = PP_START_FORKSERVER;
    cfg->pin = PP_PIN_COMPACT;
    cfg->max_arg_size = 64 * MiB;
    cfg->max_result_size = 64 * MiB;
    cfg->inline_size = 192;
    cfg->arena_size = 1024 * MiB;
    cfg->slots = 4096;
    cfg->on_worker_death = PP_DEATH_BREAK;
    cfg->max_tasks_per_child = 0;
    cfg->max_rss_growth = 0;
    cfg->initializer = NULL;
}

void pp_submit_opts_init(pp_submit_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->timeout = -1.0;
    o->kill_grace = 1.0;
}

static uint32_t next_pow2(uint32_t x)
{
    uint32_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* Validate and normalise @c. Returns 0 or -EINVAL. */
static int config_check(pp_config *c)
{
    if (c->max_workers < 0 || c->max_workers > 4096)
        return -EINVAL;
    if ((unsigned)c->start_method > PP_START_FORKSERVER)
        return -EINVAL;
    if ((unsigned)c->pin > PP_PIN_LIST)
        return -EINVAL;
    if (c->pin == PP_PIN_LIST && (!c->pin_cpus || c->n_pin_cpus <= 0))
        return -EINVAL;
    if (c->slots == 0 || c->slots > (1u << 24))
        return -EINVAL;
    if (c->inline_size > 64 * 1024)
        return -EINVAL;
    /* Bounds before rounding: a size near SIZE_MAX would round up to 0, and
     * the segment's layout sums must not overflow (see PP_ARENA_MAX). */
    if (c->arena_size > PP_ARENA_MAX)
        return -EINVAL;
    if (c->max_arg_size == 0 && c->max_result_size == 0 && c->arena_size == 0)
        return -EINVAL;
    if ((unsigned)c->on_worker_death > PP_DEATH_RESPAWN)
        return -EINVAL;
    if ((!c->initargs && c->initargs_size) || (c->initargs_size && !c->initializer))
        return -EINVAL;
    c->slots = next_pow2(c->slots);
    c->inline_size = c->inline_size < 64 ? 64 : (c->inline_size + 63) & ~(size_t)63;
    c->arena_size = (c->arena_size + PPI_ARENA_UNIT - 1) & ~(size_t)(PPI_ARENA_UNIT - 1);
    return 0;
}

/* Plan where the workers go. Returns 0 or -EINVAL/-ENOMEM. */
static const char *policy_name(pp_pin_policy p)
{
    static const char *names[] = {"compact", "scatter", "none", "pus", "list"};
    return (unsigned)p <= PP_PIN_LIST ? names[p] : "?";
}

/*
 * The machine's topology, loaded once per process (hwloc takes milliseconds)
 * and again only when this thread's allowed CPUs change (taskset, cgroups,
 * sched_setaffinity). Returns it with topo_lock held; release with
 * topo_unlock(). Never freed: it lives as long as the process.
 */
static pthread_mutex_t topo_lock = PTHREAD_MUTEX_INITIALIZER;
static ppi_topo *topo_cached;
static cpu_set_t topo_mask;

static int topo_get(ppi_topo **out)
{
    cpu_set_t mask;
    CPU_ZERO(&mask);
    sched_getaffinity(0, sizeof mask, &mask);
    pthread_mutex_lock(&topo_lock);
    if (!topo_cached || !CPU_EQUAL(&mask, &topo_mask)) {
        ppi_topo *t;
        int rc = ppi_topo_load(&t, NULL);
        if (rc) {
            pthread_mutex_unlock(&topo_lock);
            return rc;
        }
        if (topo_cached)
            ppi_topo_destroy(topo_cached);
        topo_cached = t;
        topo_mask = mask;
    }
    *out = topo_cached;
    return 0;
}

static void topo_unlock(void)
{
    pthread_mutex_unlock(&topo_lock);
}

static int plan_workers(pp_config *c, ppi_place **places, int *nworkers, char *summary,
                        size_t summary_len)
{
    ppi_topo *topo;
    int rc = topo_get(&topo);
    if (rc)
        return rc;
    int n = c->max_workers ? c->max_workers
                           : (c->pin == PP_PIN_PUS ? ppi_topo_pus(topo) : ppi_topo_cores(topo));
    if (!c->max_workers && n == 1 && sysconf(_SC_NPROCESSORS_ONLN) > 1) {
        /* A default pool of one worker on a multi-core machine is usually a
         * pinned creating thread (taskset, OMP_PROC_BIND, an MPI launcher):
         * say so once, since the pool inherits the restriction. */
        static _Atomic int said;
        if (!atomic_exchange_explicit(&said, 1, memory_order_relaxed)) /* relaxed: once-flag */
            fprintf(stderr, "ppool: this thread may run on 1 CPU only (taskset, OMP_PROC_BIND, "
                            "a launcher's binding?): the default pool gets 1 worker; set "
                            "max_workers or widen the affinity to use more\n");
    }
    ppi_place *p = calloc((size_t)n, sizeof *p);
    if (!p) {
        topo_unlock();
        return -ENOMEM;
    }
    char warn[256] = "", line[160];
    ppi_topo_summary(topo, line, sizeof line);
    snprintf(summary, summary_len, "%s; %d workers, pin %s", line, n, policy_name(c->pin));
    rc = ppi_topo_plan(topo, n, c->pin, c->pin_cpus, c->n_pin_cpus, c->pin_strict, p, warn,
                       sizeof warn);
    topo_unlock();
    if (rc) {
        free(p);
        return rc;
    }
    if (warn[0])
        fprintf(stderr, "ppool: %s\n", warn);
    *places = p;
    *nworkers = n;
    return 0;
}

static void executor_free(pp_executor *ex)
{
    /* A fork()ed child's copy: the service thread is not in this process and
     * another thread of the parent may have held a lock at the fork. */
    bool foreign = ex->owner_pid && ppi_foreign(ex);
    /* The service thread dropped its reference last thing: it touches
     * nothing of ours any more, so joining it is short. */
    if (ex->service_started && !foreign) {
        if (pthread_equal(ex->service, pthread_self()))
            pthread_detach(ex->service);
        else
            pthread_join(ex->service, NULL);
    }
    if (ex->manager_pidfd >= 0)
        close(ex->manager_pidfd);
    ppi_seg_unmap(&ex->seg);
    free(ex->free_slots);
    free(ex->slot_owner);
    free(ex->notify_owner);
    free((void *)ex->slot_lock);
    if (foreign) {
        free(ex);
        return;
    }
    pthread_mutex_destroy(&ex->lock);
    pthread_mutex_destroy(&ex->reap_lock);
    pthread_mutex_destroy(&ex->cb_lock);
    pthread_cond_destroy(&ex->service_cv);
    free(ex);
}

void ppi_executor_unref(pp_executor *ex)
{
    /* acq_rel: the last dropper sees every other user's writes before freeing. */
    if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1)
        executor_free(ex);
}

static int client_alloc(pp_executor *ex)
{
    uint32_t n = ex->seg.nslots;
    ex->free_slots = aligned_alloc(64, (ppi_ring_bytes(n) + 63) & ~(size_t)63);
    ex->slot_owner = calloc(n, sizeof *ex->slot_owner);
    ex->notify_owner = calloc(n, sizeof *ex->notify_owner);
    ex->slot_lock = calloc(n, sizeof *ex->slot_lock);
    if (!ex->free_slots || !ex->slot_owner || !ex->notify_owner || !ex->slot_lock)
        return -ENOMEM;
    ppi_ring_init(ex->free_slots, n);
    for (uint32_t i = 0; i < n; i++)
        ppi_ring_push(ex->free_slots, i);
    return 0;
}

/* Wait until every worker is ready, the pool broke, or the manager died. */
static int wait_ready(pp_executor *ex)
{
    ppi_hdr *h = ex->seg.hdr;
    uint64_t deadline = ppi_add_sat(ppi_now_ns(), PPI_READY_TIMEOUT_NS);
    for (;;) {
        /* acquire: pairs with each worker's release increment. */
        uint32_t r = atomic_load_explicit(&h->ready, memory_order_acquire);
        if (r >= h->nworkers)
            return 0;
        int rc = ppi_pool_check(ex);
        /* acquire: pairs with the manager's release (set before breaking). */
        if (rc && atomic_load_explicit(&h->broken_started, memory_order_acquire))
            return 0; /* started, then broke (initializer): a broken pool */
        if (rc)
            return rc;
        uint64_t left = ppi_remaining(deadline, PPI_READY_POLL_NS);
        if (left == 0)
            return PP_EBROKEN;
        ppi_futex_wait(&h->ready, r, left, true);
    }
}

static void reap_manager(pp_executor *ex)
{
    pthread_mutex_lock(&ex->reap_lock);
    if (!ex->reaped) {
        while (waitpid(ex->manager_pid, NULL, 0) < 0 && errno == EINTR)
            ;
        ex->reaped = 1;
        /* release: later checks need not poll the pidfd any more. */
        atomic_store_explicit(&ex->manager_gone, 1, memory_order_release);
    }
    pthread_mutex_unlock(&ex->reap_lock);
}

/* Everything the manager and workers read from the segment: policies, the
 * initializer, the module table for function tokens, the placements. */
static int fill_segment(pp_executor *ex, const pp_config *cfg, const ppi_place *places)
{
    ppi_hdr *h = ex->seg.hdr;
    h->start_method = (uint32_t)ppi_resolve_start_method(cfg->start_method);
    const char *bad = getenv("PPOOL_TEST_BAD_FD"); /* fault injection (tests) */
    h->test_bad_fd = !bad ? 0 : !strcmp(bad, "manager") ? 1 : !strcmp(bad, "worker") ? 2 : 0;
    h->death_policy = (uint32_t)cfg->on_worker_death;
    h->max_tasks = cfg->max_tasks_per_child;
    h->max_rss_growth = cfg->max_rss_growth;
    int rc = ppi_modtab_build(ex->seg.modtab);
    if (rc)
        return rc;
    if (cfg->initializer) {
        h->initializer = ppi_fn_encode(ex->seg.modtab, (uintptr_t)cfg->initializer);
        if (!h->initializer)
            return PP_ENOFUNC;
    }
    if (cfg->initargs_size) {
        h->initargs_off = ppi_arena_alloc(&ex->seg, cfg->initargs_size);
        if (!h->initargs_off)
            return -ENOMEM;
        memcpy(ex->seg.base + h->initargs_off, cfg->initargs, cfg->initargs_size);
        h->initargs_size = cfg->initargs_size;
    }
    for (int i = 0; i < ex->nworkers; i++) {
        ppi_worker *w = &ex->seg.workers[i];
        w->place = places[i];
        w->cpu = places[i].first_cpu;
        w->core = places[i].core;
        w->numa = places[i].numa;
    }
    return 0;
}

/* Start the manager by the configured method. Returns 0 or -errno. */
static int start_manager(pp_executor *ex)
{
    fflush(NULL); /* no stdio buffer is duplicated into the children */
    pid_t pid;
    if (ex->seg.hdr->start_method == PP_START_FORK) {
        pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0)
            ppi_manager_main(&ex->seg);
    } else {
        int rc = ppi_exec_spawn(&ex->seg, "manager", -1, &pid);
        if (rc)
            return rc;
    }
    ex->manager_pid = pid;
    ex->manager_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

int pp_executor_create(pp_executor **out, const pp_config *cfg_in)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    pp_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        pp_config_init(&cfg);
    int rc = config_check(&cfg);
    if (rc)
        return rc;
    ppi_place *places = NULL;
    int nworkers = 0;
    char summary[192];
    rc = plan_workers(&cfg, &places, &nworkers, summary, sizeof summary);
    if (rc)
        return rc;
    pp_executor *ex = calloc(1, sizeof *ex);
    if (!ex) {
        free(places);
        return -ENOMEM;
    }
    snprintf(ex->topology, sizeof ex->topology, "%s", summary);
    ex->cfg = cfg;
    ex->nworkers = nworkers;
    ex->manager_pidfd = -1;
    ex->seg.fd = -1;
    ex->seg.cmd_fd = -1; /* executor_free before the segment exists */
    atomic_init(&ex->refs, 1);
    ppi_self_pid_init();
    ex->owner_pid = getpid();
    pthread_mutex_init(&ex->lock, NULL);
    pthread_mutex_init(&ex->reap_lock, NULL);
    pthread_mutex_init(&ex->cb_lock, NULL);
    pthread_cond_init(&ex->service_cv, NULL);
    CDS_INIT_LIST_HEAD(&ex->backlog);
    ppi_seg_geom g = {.nslots = cfg.slots,
                      .inline_size = (uint32_t)cfg.inline_size,
                      .nworkers = (uint32_t)nworkers,
                      .arena_size = cfg.arena_size,
                      .max_arg = cfg.max_arg_size,
                      .max_result = cfg.max_result_size};
    /* The module table is sized from the libraries loaded now. */
    rc = ppi_modtab_measure(&g.mod_cap, &g.mod_strings);
    if (!rc)
        rc = ppi_seg_create(&ex->seg, &g);
    if (!rc)
        rc = client_alloc(ex);
    if (!rc)
        rc = fill_segment(ex, &cfg, places);
    free(places);
    if (!rc)
        rc = start_manager(ex);
    if (rc) {
        executor_free(ex);
        return rc;
    }
    rc = wait_ready(ex);
    if (rc) {
        kill(ex->manager_pid, SIGKILL);
        reap_manager(ex);
        executor_free(ex);
        return rc;
    }
    ppi_exit_add(ex);
    *out = ex;
    return 0;
}

const char *pp_executor_topology(const pp_executor *ex)
{
    return ex ? ex->topology : "";
}

pp_start_method pp_start_method_used(const pp_executor *ex)
{
    return ex ? (pp_start_method)ex->seg.hdr->start_method : PP_START_AUTO;
}

int pp_max_workers(const pp_executor *ex)
{
    return !ex ? -EINVAL : ppi_foreign(ex) ? PP_EFORKED : ex->nworkers;
}

const ppi_modtab *ppi_executor_modtab(const pp_executor *ex) { return ex->seg.modtab; }

/*
 * ppi_pool_check - 0 while the pool runs, PP_EBROKEN once it is broken.
 * Notices a dead manager (pidfd readable while no stop was asked) and breaks
 * the pool on its behalf, so that waiters return. Cheap: one load, plus one
 * poll() system call — callers use it only after a bounded sleep.
 */
/* true once the manager process has exited (reaped, or its pidfd readable). */
bool ppi_manager_dead(pp_executor *ex)
{
    /* acquire: pairs with reap_manager's release. */
    if (atomic_load_explicit(&ex->manager_gone, memory_order_acquire))
        return true;
    struct pollfd pf = {.fd = ex->manager_pidfd, .events = POLLIN};
    if (ex->manager_pidfd >= 0)
        return poll(&pf, 1, 0) == 1;
    /* No pidfd_open (old kernel, seccomp, valgrind): our child's exit,
     * seen without reaping it (reap_manager does that). ECHILD: gone. */
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)ex->manager_pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD;
    return si.si_pid == ex->manager_pid;
}

int ppi_pool_check(pp_executor *ex)
{
    ppi_hdr *h = ex->seg.hdr;
    /* acquire: pairs with ppi_pool_break's release. */
    if (atomic_load_explicit(&h->pool_state, memory_order_acquire) != PPI_POOL_RUNNING)
        return PP_EBROKEN;
    /* acquire: pairs with reap_manager's release. */
    if (atomic_load_explicit(&ex->manager_gone, memory_order_acquire))
        return 0; /* reaped after an orderly stop */
    if (ppi_manager_dead(ex)) {
        /* acquire: an orderly exit follows our own stop request. */
        if (atomic_load_explicit(&h->stop, memory_order_acquire) &&
            atomic_load_explicit(&h->pool_state, memory_order_acquire) == PPI_POOL_RUNNING)
            return 0;
        ppi_pool_break(&ex->seg, 0, ex->manager_pid, "the manager process died");
        return PP_EBROKEN;
    }
    return 0;
}

void ppi_request_stop(pp_executor *ex)
{
    ppi_hdr *h = ex->seg.hdr;
    /* release: workers that see stop also see every entry pushed before. */
    atomic_store_explicit(&h->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&h->work_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->work_ec.seq, INT_MAX, true);
}

int ppi_acquire_slot(pp_executor *ex, uint32_t *idx)
{
    uint64_t v;
    if (ppi_ring_pop(ex->free_slots, &v)) {
        *idx = (uint32_t)v;
        return 0;
    }
    ppi_reclaim_slots(ex);
    if (ppi_ring_pop(ex->free_slots, &v)) {
        *idx = (uint32_t)v;
        return 0;
    }
    return -EAGAIN;
}

/* Free the slots in RECLAIM (orphaned or cancelled uses) and their arena
 * blocks, returning them to the free ring. Client threads. */
void ppi_reclaim_slots(pp_executor *ex)
{
    ppi_seg *s = &ex->seg;
    /* acquire: pairs with the workers' release increments. */
    if (atomic_load_explicit(&s->hdr->reclaim, memory_order_acquire) == 0)
        return;
    for (uint32_t i = 0; i < s->nslots; i++) {
        ppi_slot *sl = ppi_slot_at(s, i);
        /* relaxed: the CAS below validates. */
        uint64_t w = atomic_load_explicit(&sl->state, memory_order_relaxed);
        if (ppi_st_state(w) != PPI_S_RECLAIM)
            continue;
        uint64_t nw = ppi_st_make(ppi_st_gen(w), PPI_S_FREE, 0, PPI_NO_WORKER);
        /* acquire: the worker's writes (arena offsets) before we free them. */
        if (!atomic_compare_exchange_strong_explicit(&sl->state, &w, nw, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        /* relaxed: a counter; the CAS above owns the slot. */
        atomic_fetch_sub_explicit(&s->hdr->reclaim, 1, memory_order_relaxed);
        ppi_arena_free(s, sl->arg_off);
        ppi_arena_free(s, sl->res_off);
        sl->arg_off = sl->res_off = 0;
        ppi_free_ring_push(ex, i);
    }
}

/* Return a FREE slot index to the client's free ring. Its consumers are our
 * own threads, so waiting for a preempted one always ends. */
void ppi_free_ring_push(pp_executor *ex, uint32_t idx)
{
    while (!ppi_ring_push_wait(ex->free_slots, idx, PPI_FREE_RING_RETRY_NS))
        ;
}

void ppi_release_slot(pp_executor *ex, uint32_t idx)
{
    /* The service thread polls the free ring on short timed naps while a backlog
     * exists, so freeing a slot costs no wake-up. */
    ppi_free_ring_push(ex, idx);
}

/*
 * ppi_bind - put fn(arg) into the FREE slot @idx we own and queue it.
 * Returns 0, or -EAGAIN when a large argument finds no arena room (the slot
 * goes back to the free ring; the caller keeps the call in the backlog).
 */
int ppi_bind(pp_executor *ex, pp_future *f, uint32_t idx, const void *arg, size_t arg_size)
{
    ppi_seg *s = &ex->seg;
    ppi_slot *sl = ppi_slot_at(s, idx);
    uint64_t arg_off = 0;
    if (arg_size > s->inline_size) {
        /* The service thread may have reserved the block already (backlog_take). */
        arg_off = f->arg_off ? f->arg_off : ppi_arena_alloc(s, arg_size);
        f->arg_off = 0;
        if (!arg_off) {
            ppi_free_ring_push(ex, idx);
            return -EAGAIN;
        }
        memcpy(s->base + arg_off, arg, arg_size);
    } else if (arg_size) {
        memcpy(ppi_slot_arg_inline(s, sl), arg, arg_size);
    }
    sl->fn = f->fn_token;
    sl->timeout_ns = f->timeout_ns;
    sl->kill_grace_ns = f->grace_ns;
    sl->kill_reason = PPI_KILL_NONE;
    sl->started_ns = 0;
    sl->arg_size = arg_size;
    sl->arg_off = arg_off;
    sl->res_size = 0;
    sl->res_off = 0;
    sl->err = sl->code = sl->pid = 0;
    sl->msg_len = 0;
    /* relaxed: we own the FREE slot; nobody else writes its state. */
    uint32_t gen = ppi_st_gen(atomic_load_explicit(&sl->state, memory_order_relaxed)) + 1;
    f->idx = idx;
    f->gen = gen;
    ppi_slot_lock(ex, idx);
    ex->slot_owner[idx] = f;
    /* relaxed: BOUND is published with the slot lock's release. */
    atomic_fetch_or_explicit(&f->refs, PPI_BOUND, memory_order_relaxed);
    /* seq_cst, then the seq_cst load of want_notify: pairs with the
     * registration's store of want_notify then load of cstate (store-buffer
     * pattern): either it sees SLOT and arms the slot itself (under this slot
     * lock, so after us), or we see want_notify here. Exchange: a backlog
     * waiter that announced itself is woken below. A waiter seeing SLOT spins
     * on the slot word until the QUEUED store below (gen check). */
    uint32_t was = atomic_exchange_explicit(&f->cstate, PPI_F_SLOT, memory_order_seq_cst);
    uint32_t flags = atomic_load_explicit(&f->want_notify, memory_order_seq_cst) ? PPI_F_NOTIFY : 0;
    if (flags)
        ex->notify_owner[idx] = f;
    /* release: payload and fields above before QUEUED (pairs with the
     * worker's acquire in its claim CAS). */
    atomic_store_explicit(&sl->state, ppi_st_make(gen, PPI_S_QUEUED, flags, PPI_NO_WORKER),
                          memory_order_release);
    ppi_slot_unlock(ex, idx);
    /* The ring has a cell per slot and each slot is in it at most once, so it
     * is never logically full; wait out a worker preempted inside its pop.
     * Give up only once the pool is broken (a worker died there): the slot
     * stays QUEUED and its waiters fail it (fail_if_broken). */
    while (!ppi_ring_push_wait(s->ring, ppi_entry(idx, gen), PPI_RING_PUSH_RETRY_NS))
        if (ppi_pool_check(ex) != 0)
            break;
    ppi_ec_notify(&s->hdr->work_ec, 1);
    if (was == PPI_F_BACKLOG_WAITED)
        ppi_futex_wake(&f->cstate, INT_MAX, false);
    return 0;
}

/* Every few milliseconds a submission or a non-blocking poll checks that the
 * manager lives, so that a pool whose manager died is noticed promptly even
 * by callers that never sleep (costs one coarse clock read otherwise).
 * Returns ppi_pool_check's answer when it ran, else 0. */
int ppi_liveness_tick(pp_executor *ex)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * PPI_NSEC + (uint64_t)ts.tv_nsec;
    /* relaxed: a rate limiter; a duplicate check is harmless. */
    uint64_t last = atomic_load_explicit(&ex->last_check_ns, memory_order_relaxed);
    if (now - last < PPI_SUBMIT_CHECK_NS)
        return 0;
    atomic_store_explicit(&ex->last_check_ns, now, memory_order_relaxed);
    return ppi_pool_check(ex);
}

int pp_submit(pp_executor *ex, pp_fn fn, const void *arg, size_t arg_size, pp_future **out)
{
    return pp_submit_ex(ex, fn, arg, arg_size, NULL, out);
}

int pp_submit_ex(pp_executor *ex, pp_fn fn, const void *arg, size_t arg_size,
                 const pp_submit_opts *opts, pp_future **out)
{
    if (out)
        *out = NULL;
    if (!ex || !fn || !out || (!arg && arg_size))
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    if (opts && (isnan(opts->timeout) || isnan(opts->kill_grace) || opts->kill_grace < 0))
        return -EINVAL;
    if (arg_size > ex->cfg.max_arg_size)
        return PP_ETOOBIG;
    /* An argument over the whole arena could never be placed: it would wait
     * in the backlog for ever. */
    if (arg_size > ex->seg.inline_size &&
        arg_size > ex->seg.hdr->arena.units * (uint64_t)PPI_ARENA_UNIT)
        return PP_ETOOBIG;
    ppi_liveness_tick(ex);
    /* seq_cst: announce the submission before checking shutdown, so that
     * pp_shutdown (which sets shutdown, then waits for in_submit == 0) never
     * misses a submission that passed the check (Dekker pair). */
    atomic_fetch_add_explicit(&ex->in_submit, 1, memory_order_seq_cst);
    int rc = 0;
    if (atomic_load_explicit(&ex->shutdown, memory_order_seq_cst))
        rc = -ESHUTDOWN;
    else if (atomic_load_explicit(&ex->seg.hdr->pool_state, memory_order_acquire) !=
             PPI_POOL_RUNNING) /* acquire: pairs with ppi_pool_break */
        rc = PP_EBROKEN;
    pp_future *f = rc ? NULL : ppi_future_new(ex);
    if (!rc && !f)
        rc = -ENOMEM;
    uint64_t token = rc ? 0 : ppi_fn_encode(ex->seg.modtab, (uintptr_t)fn);
    if (!rc && !token)
        rc = PP_ENOFUNC;
    if (!rc && !f)
        rc = -ENOMEM;
    if (rc && f) {
        pp_future_release(f);
        f = NULL;
    }
    if (!rc)
        f->fn_token = token;
    if (!rc && opts) {
        /* + 1: 0 means no timeout; saturating, so that +inf stays "never". */
        f->timeout_ns = opts->timeout < 0 ? 0 : ppi_add_sat(ppi_s_to_ns(opts->timeout), 1);
        f->grace_ns = ppi_s_to_ns(opts->kill_grace);
    } else if (!rc) {
        f->grace_ns = PPI_NSEC;
    }
    if (!rc) {
        uint32_t idx;
        /* relaxed: a hint to keep order behind an existing backlog. */
        bool direct = atomic_load_explicit(&ex->bl_count, memory_order_relaxed) == 0 &&
                      ppi_acquire_slot(ex, &idx) == 0 &&
                      ppi_bind(ex, f, idx, arg, arg_size) == 0;
        if (!direct)
            rc = ppi_backlog_add(ex, f, arg, arg_size);
        if (rc) {
            pp_future_release(f);
            f = NULL;
        }
    }
    if (!rc)
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&ex->submitted, 1, memory_order_relaxed);
    /* release: our slot/backlog writes precede shutdown's observation. */
    atomic_fetch_sub_explicit(&ex->in_submit, 1, memory_order_release);
    *out = f;
    return rc;
}

/* Cancel every task that no worker has started. */
static void cancel_pending(pp_executor *ex)
{
    ppi_backlog_cancel_all(ex, -ECANCELED, "cancelled by shutdown");
    for (uint32_t i = 0; i < ex->seg.nslots; i++)
        ppi_cancel_bound(ex, i);
}

/* Wake the threads waiting in pp_shutdown: call after changing stop_sent,
 * cb_pending or cb_blocked. */
void ppi_svc_notify(pp_executor *ex)
{
    /* seq_cst: our change, this bump, then the load of svc_waiters; a waiter
     * announces itself, then reads svc_seq, then the state (Dekker): either
     * it sees our change, or we see it waiting and wake it (and its futex
     * compare then fails on the new svc_seq). */
    atomic_fetch_add_explicit(&ex->svc_seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&ex->svc_waiters, memory_order_seq_cst))
        ppi_futex_wake(&ex->svc_seq, INT_MAX, false);
}

/* Wait until stop was sent to the workers: by the service thread once it has
 * fed the last backlog entry in, or here when there is no service thread
 * (then there is no backlog either: it exists only with a service thread). */
static void wait_stop_sent(pp_executor *ex)
{
    /* seq_cst: see ppi_svc_notify. */
    atomic_fetch_add_explicit(&ex->svc_waiters, 1, memory_order_seq_cst);
    for (;;) {
        /* seq_cst: see ppi_svc_notify. */
        uint32_t seq = atomic_load_explicit(&ex->svc_seq, memory_order_seq_cst);
        pthread_mutex_lock(&ex->lock);
        bool sent = ex->stop_sent;
        if (!sent && !ex->service_running) {
            ex->stop_sent = 1;
            ppi_request_stop(ex);
            sent = true;
        }
        pthread_mutex_unlock(&ex->lock);
        if (sent)
            break;
        ppi_futex_wait(&ex->svc_seq, seq, PPI_SHUTDOWN_NAP_NS, false);
    }
    /* relaxed: only a hint for notifiers; a late one costs a futex_wake. */
    atomic_fetch_sub_explicit(&ex->svc_waiters, 1, memory_order_relaxed);
}

/* Wait until every pending done-callback ran, except those running on
 * threads that wait here themselves (@mine of them on this thread): they
 * finish only after their pp_shutdown returns. On the service thread, do
 * its callback work meanwhile. */
static void wait_callbacks(pp_executor *ex, uint64_t mine)
{
    if (mine) {
        /* seq_cst: read with cb_pending by the other waiters. */
        atomic_fetch_add_explicit(&ex->cb_blocked, mine, memory_order_seq_cst);
        ppi_svc_notify(ex);
    }
    bool self = ppi_service_is_self(ex);
    /* seq_cst: see ppi_svc_notify. */
    atomic_fetch_add_explicit(&ex->svc_waiters, 1, memory_order_seq_cst);
    for (;;) {
        /* seq_cst: see ppi_svc_notify. A blocked waiter's count may be
         * dropped before its callback's: a transient "not yet", re-checked
         * at the next notification. */
        uint32_t seq = atomic_load_explicit(&ex->svc_seq, memory_order_seq_cst);
        uint64_t pending = atomic_load_explicit(&ex->cb_pending, memory_order_seq_cst);
        uint64_t blocked = atomic_load_explicit(&ex->cb_blocked, memory_order_seq_cst);
        if (pending <= blocked)
            break;
        if (self)
            ppi_service_serve_callbacks(ex); /* bounded sleep, then run what finished */
        else
            ppi_futex_wait(&ex->svc_seq, seq, PPI_SHUTDOWN_NAP_NS, false);
    }
    /* relaxed: as in wait_stop_sent. */
    atomic_fetch_sub_explicit(&ex->svc_waiters, 1, memory_order_relaxed);
    if (mine) {
        /* seq_cst: as above. */
        atomic_fetch_sub_explicit(&ex->cb_blocked, mine, memory_order_seq_cst);
        ppi_svc_notify(ex);
    }
}

int pp_shutdown(pp_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    /* seq_cst: pairs with pp_submit's increment of in_submit (Dekker). */
    atomic_store_explicit(&ex->shutdown, 1, memory_order_seq_cst);
    while (atomic_load_explicit(&ex->in_submit, memory_order_seq_cst))
        sched_yield(); /* a submission in flight finishes in microseconds */
    if (cancel_futures) {
        /* seq_cst: pairs with the service thread's fence after each bind: either it sees
         * this and cancels what it just bound, or our sweep sees its slot. */
        atomic_store_explicit(&ex->cancel_req, 1, memory_order_seq_cst);
        /* Sweep before telling running tasks to stop: a task that stops early
         * frees its worker, which must find nothing left to start. */
        cancel_pending(ex);
        /* release: running tasks polling pp_task_should_stop see it. */
        atomic_store_explicit(&ex->seg.hdr->cancel_flag, 1, memory_order_release);
    }
    pthread_mutex_lock(&ex->lock);
    /* The service thread sends stop itself once it has fed the last backlog entry. */
    if (ppi_backlog_empty(ex) && !ex->stop_sent) {
        ex->stop_sent = 1;
        ppi_request_stop(ex);
    }
    pthread_cond_broadcast(&ex->service_cv);
    pthread_mutex_unlock(&ex->lock);
    if (!wait)
        return 0;
    /* Inside a done-callback of @ex the service thread cannot end (the
     * callback counts as pending): do not join it. On the service thread
     * itself, feed the backlog in here. Either way wait for what can finish
     * before the callback returns: every task, the processes, and every
     * other callback. A second concurrent caller waits the same way. */
    uint64_t mine = ppi_cb_running_here(ex);
    if (ppi_service_is_self(ex))
        ppi_service_serve_backlog(ex);
    else if (mine == 0)
        ppi_service_join(ex);
    wait_stop_sent(ex);
    reap_manager(ex);
    wait_callbacks(ex, mine);
    return 0;
}

int pp_executor_destroy(pp_executor *ex)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex)) {
        /* A fork()ed child's copy: free its private memory, touch nothing
         * shared, leave the parent's pool and exit registry alone. */
        ppi_executor_unref(ex);
        return PP_EFORKED;
    }
    /* Off the exit registry before the handle's reference goes (exit_registry.c). */
    ppi_exit_remove(ex);
    pp_shutdown(ex, true, false);
    ppi_executor_unref(ex);
    return 0;
}

int pp_executor_stats(const pp_executor *ex, pp_stats *st, pp_worker_stats *w, int n)
{
    if (!ex || n < 0 || (n > 0 && !w))
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    const ppi_seg *s = &ex->seg;
    for (int i = 0; i < n && i < ex->nworkers; i++) {
        ppi_worker *r = &s->workers[i];
        /* relaxed: statistics; each counter exact on its own. */
        w[i].pid = atomic_load_explicit(&r->pid, memory_order_relaxed);
        w[i].cpu = r->cpu;
        w[i].core = r->core;
        w[i].numa = r->numa;
        w[i].tasks = atomic_load_explicit(&r->tasks, memory_order_relaxed);
        w[i].busy_ns = atomic_load_explicit(&r->busy_ns, memory_order_relaxed);
        w[i].respawns = atomic_load_explicit(&r->respawns, memory_order_relaxed);
    }
    if (st) {
        memset(st, 0, sizeof *st);
        st->workers = ex->nworkers;
        /* relaxed: statistics. */
        st->submitted = atomic_load_explicit(&ex->submitted, memory_order_relaxed);
        st->backlog = atomic_load_explicit(&ex->bl_count, memory_order_relaxed);
        st->cancelled = atomic_load_explicit(&ex->cancelled, memory_order_relaxed);
        st->killed = atomic_load_explicit(&s->hdr->killed, memory_order_relaxed);
        for (int i = 0; i < ex->nworkers; i++)
            st->respawns += atomic_load_explicit(&s->workers[i].respawns, memory_order_relaxed);
        uint64_t tasks = 0, failed = 0;
        for (int i = 0; i < ex->nworkers; i++) {
            tasks += atomic_load_explicit(&s->workers[i].tasks, memory_order_relaxed);
            failed += atomic_load_explicit(&s->workers[i].failed, memory_order_relaxed);
        }
        st->completed = tasks - failed;
        st->failed = failed;
        for (uint32_t i = 0; i < s->nslots; i++) {
            uint32_t state = ppi_st_state(
                atomic_load_explicit(&ppi_slot_at(s, i)->state, memory_order_relaxed));
            st->queued += state == PPI_S_QUEUED;
            st->running += state == PPI_S_RUNNING;
        }
    }
    return ex->nworkers;
}

/* Wake the manager (commands, kill requests). Never blocks. */
void ppi_poke_manager(pp_executor *ex)
{
    uint64_t one = 1;
    ssize_t n = write(ex->seg.cmd_fd, &one, sizeof one);
    (void)n; /* a saturated counter still wakes the manager */
}

/* Ask the manager to send @sig to every live worker (after shutdown). */
static int signal_workers(pp_executor *ex, int sig)
{
    if (!ex)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    pp_shutdown(ex, false, true);
    if (ppi_manager_dead(ex))
        return 0;
    /* Python's terminate_workers/kill_workers: the pool is unusable after and
     * the running futures fail as broken, whatever the death policy. Breaking
     * first also keeps the manager from replacing the workers it signals. */
    char msg[96];
    snprintf(msg, sizeof msg, "workers %s by pp_%s_workers", sig == SIGKILL ? "killed" : "terminated",
             sig == SIGKILL ? "kill" : "terminate");
    ppi_pool_break(&ex->seg, sig, 0, msg);
    /* release: the manager reads the signal after the eventfd wakes it. */
    atomic_store_explicit(&ex->seg.hdr->kill_signal, sig, memory_order_release);
    ppi_poke_manager(ex);
    return 0;
}

int pp_terminate_workers(pp_executor *ex) { return signal_workers(ex, SIGTERM); }
int pp_kill_workers(pp_executor *ex) { return signal_workers(ex, SIGKILL); }

void pp_executor_cleanup(pp_executor **exp)
{
    if (exp && *exp) {
        pp_executor_destroy(*exp);
        *exp = NULL;
    }
}

void pp_future_cleanup(pp_future **fp)
{
    if (fp && *fp) {
        pp_future_release(*fp);
        *fp = NULL;
    }
}
