/*
 * executor.c — the executor's life-cycle: configuration, create (segment,
 * manager, workers), submit, destroy, statistics, and the pool-liveness
 * checks every waiter uses.
 *
 * pp_submit binds the call into a free slot (slots.c) when one is free and
 * no backlog exists; otherwise (no slot, no arena room for a large
 * argument, or a backlog to keep submission order behind) the call goes to
 * the backlog (backlog.c), which the service thread (service_thread.c)
 * feeds in as slots free up. pp_shutdown and terminate/kill are in
 * shutdown.c.
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
#include "ext_worker.h"
#include "fnmap.h"
#include "process.h"
#include "thread_env.h"
#include "topology.h"
#include "shards.h"
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
    cfg->cores_per_worker = 1;
    cfg->thread_env_override = 0;
    cfg->ring_shards = 0;
    const char *rs = getenv("PPOOL_RING_SHARDS"); /* as PPOOL_START_METHOD: suites run sharded */
    if (rs && *rs) {
        char *end;
        long v = strtol(rs, &end, 10);
        if (!*end && v >= 0 && v <= PP_RING_SHARDS_MAX)
            cfg->ring_shards = (int)v;
    }
    cfg->huge_pages = 1;
    const char *hp = getenv("PPOOL_HUGE_PAGES");
    if (hp && (!strcmp(hp, "0") || !strcmp(hp, "1")))
        cfg->huge_pages = hp[0] - '0';
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
    if (c->cores_per_worker < 1 || c->cores_per_worker > CPU_SETSIZE)
        return -EINVAL;
    if (c->ring_shards < 0 || c->ring_shards > PP_RING_SHARDS_MAX)
        return -EINVAL;
    if (c->huge_pages != 0 && c->huge_pages != 1)
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

int ppi_plan_workers(const pp_config *c, int want, ppi_place **places, int *nworkers,
                     char *summary, size_t summary_len)
{
    ppi_topo *topo;
    int rc = topo_get(&topo);
    if (rc)
        return rc;
    int k = c->cores_per_worker;
    int n = want ? want
                 : (c->pin == PP_PIN_PUS ? ppi_topo_pus(topo) : ppi_topo_cores(topo)) / k;
    if (n < 1)
        n = 1; /* k above the cores: one (oversubscribed) worker */
    if (!want && k == 1 && n == 1 && sysconf(_SC_NPROCESSORS_ONLN) > 1) {
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
    char per[32] = "";
    if (k > 1)
        snprintf(per, sizeof per, " x %d %s", k, c->pin == PP_PIN_PUS ? "PUs" : "cores");
    snprintf(summary, summary_len, "%s; %d workers%s, pin %s", line, n, per,
             policy_name(c->pin));
    rc = ppi_topo_plan_k(topo, n, k, c->pin, c->pin_cpus, c->n_pin_cpus, c->pin_strict, p, warn,
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

int ppi_plan_shards(const pp_config *c, const ppi_place *places, int n, int *nshards,
                    uint32_t *homes)
{
    ppi_topo *topo;
    int rc = topo_get(&topo);
    if (rc)
        return rc;
    int ncores = ppi_topo_cores(topo);
    int s = c->ring_shards ? c->ring_shards : ppi_shards_auto(ncores, ppi_topo_numa_nodes(topo));
    for (int i = 0; i < n; i++)
        homes[i] = ppi_shard_home(ppi_topo_core_rank(topo, places[i].core), ncores, i, s);
    topo_unlock();
    if (nshards)
        *nshards = s;
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
    free(ex->pin_cpus);
    free(ex->slot_owner);
    free(ex->notify_owner);
    free((void *)ex->slot_lock);
    if (foreign) {
        free(ex);
        return;
    }
    pthread_mutex_destroy(&ex->lock);
    pthread_mutex_destroy(&ex->reap_lock);
    pthread_mutex_destroy(&ex->resize_lock);
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
        /* relaxed: set before the manager was started. */
        if (r >= (uint32_t)atomic_load_explicit(&ex->nworkers, memory_order_relaxed))
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

/* Wait for the manager process to exit and reap it (once; any client
 * thread; the others wait on reap_lock). Blocks until it exited. */
void ppi_reap_manager(pp_executor *ex)
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
static int fill_segment(pp_executor *ex, const pp_config *cfg, const ppi_place *places,
                        const uint32_t *homes)
{
    ppi_hdr *h = ex->seg.hdr;
    h->start_method = (uint32_t)ppi_resolve_start_method(cfg->start_method);
#ifdef PPOOL_FAULT_INJECTION
    const char *bad = getenv("PPOOL_TEST_BAD_FD"); /* test builds only */
    h->test_bad_fd = !bad ? 0 : !strcmp(bad, "manager") ? 1 : !strcmp(bad, "worker") ? 2 : 0;
#endif
    h->death_policy = (uint32_t)cfg->on_worker_death;
    h->max_tasks = cfg->max_tasks_per_child;
    h->cores_per_worker = (uint32_t)cfg->cores_per_worker;
    h->thread_env_keep = ppi_tenv_keep_mask(cfg->thread_env_override != 0);
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
    for (int i = 0; i < ex->places_written; i++) {
        ppi_worker *w = &ex->seg.workers[i];
        w->place = places[i];
        w->cpu = places[i].first_cpu;
        w->core = places[i].core;
        w->numa = places[i].numa;
        w->home_shard = homes[i];
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
    rc = ppi_plan_workers(&cfg, cfg.max_workers, &places, &nworkers, summary, sizeof summary);
    if (rc)
        return rc;
    int nshards = 1;
    uint32_t *homes = malloc((size_t)nworkers * sizeof *homes);
    rc = homes ? ppi_plan_shards(&cfg, places, nworkers, &nshards, homes) : -ENOMEM;
    if (rc) {
        free(homes);
        free(places);
        return rc;
    }
    cfg.ring_shards = nshards; /* resolved: pp_executor_resize places new workers with it */
    pp_executor *ex = calloc(1, sizeof *ex);
    int *pin_copy = cfg.pin == PP_PIN_LIST ? malloc((size_t)cfg.n_pin_cpus * sizeof *pin_copy)
                                           : NULL;
    if (!ex || (cfg.pin == PP_PIN_LIST && !pin_copy)) {
        free(ex);
        free(pin_copy);
        free(places);
        free(homes);
        return -ENOMEM;
    }
    if (pin_copy) /* pp_executor_resize plans again, long after the caller's list is gone */
        memcpy(pin_copy, cfg.pin_cpus, (size_t)cfg.n_pin_cpus * sizeof *pin_copy);
    ex->pin_cpus = pin_copy;
    snprintf(ex->topology[0], sizeof ex->topology[0], "%s", summary);
    ex->cfg = cfg;
    ex->cfg.pin_cpus = pin_copy;
    /* relaxed: the handle is not shared yet. */
    atomic_store_explicit(&ex->nworkers, nworkers, memory_order_relaxed);
    atomic_store_explicit(&ex->workers_hwm, nworkers, memory_order_relaxed);
    ex->places_written = nworkers;
    ex->manager_pidfd = -1;
    ex->seg.fd = -1;
    ex->seg.cmd_fd = -1; /* executor_free before the segment exists */
    atomic_init(&ex->refs, 1);
    ppi_self_pid_init();
    ex->owner_pid = getpid();
    ppi_backlog_lock_init(&ex->lock);
    pthread_mutex_init(&ex->reap_lock, NULL);
    pthread_mutex_init(&ex->resize_lock, NULL);
    pthread_mutex_init(&ex->cb_lock, NULL);
    pthread_cond_init(&ex->service_cv, NULL);
    CDS_INIT_LIST_HEAD(&ex->backlog);
    ppi_seg_geom g = {.nslots = cfg.slots,
                      .inline_size = (uint32_t)cfg.inline_size,
                      .nworkers = (uint32_t)nworkers,
                      .nshards = (uint32_t)nshards,
                      .huge = (uint32_t)cfg.huge_pages,
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
        rc = fill_segment(ex, &cfg, places, homes);
    free(places);
    free(homes);
    if (!rc)
        rc = start_manager(ex);
    if (rc) {
        executor_free(ex);
        return rc;
    }
    rc = wait_ready(ex);
    if (rc) {
        kill(ex->manager_pid, SIGKILL);
        ppi_reap_manager(ex);
        executor_free(ex);
        return rc;
    }
    ppi_exit_add(ex);
    *out = ex;
    return 0;
}

int pp_executor_shards(const pp_executor *ex, int *homes, int n)
{
    if (!ex)
        return -EINVAL;
    /* relaxed: one word; resize.c writes it under its lock. */
    int w = atomic_load_explicit(&ex->nworkers, memory_order_relaxed);
    /* home_shard: written once per position by the client before the
     * position's first worker starts, never changed. */
    for (int i = 0; homes && i < n && i < w; i++)
        homes[i] = (int)ex->seg.workers[i].home_shard;
    return (int)ex->seg.nshards;
}

const char *pp_executor_topology(const pp_executor *ex)
{
    /* acquire: pairs with resize.c's release after writing the new line. */
    return ex ? ex->topology[atomic_load_explicit(&ex->topology_cur, memory_order_acquire)] : "";
}

pp_start_method pp_start_method_used(const pp_executor *ex)
{
    return ex ? (pp_start_method)ex->seg.hdr->start_method : PP_START_AUTO;
}

int pp_max_workers(const pp_executor *ex)
{
    /* relaxed: one word; resize.c writes it under its lock. */
    return !ex                ? -EINVAL
           : ppi_foreign(ex) ? PP_EFORKED
                             : atomic_load_explicit(&ex->nworkers, memory_order_relaxed);
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
    /* acquire: pairs with ppi_reap_manager's release. */
    if (atomic_load_explicit(&ex->manager_gone, memory_order_acquire))
        return true;
    struct pollfd pf = {.fd = ex->manager_pidfd, .events = POLLIN};
    if (ex->manager_pidfd >= 0)
        return poll(&pf, 1, 0) == 1;
    /* No pidfd_open (old kernel, seccomp, valgrind): our child's exit,
     * seen without reaping it (ppi_reap_manager does that). ECHILD: gone. */
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
    /* acquire: pairs with ppi_reap_manager's release. */
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
    /* acquire: pairs with pp_ext_attach's release (the hooks). */
    const pp_ext_ops *ext = atomic_load_explicit(&ex->ext_ops, memory_order_acquire);
    if (ext)
        ext->before_stop(ex->ext_ctx); /* external workers take nothing more */
    /* release: workers that see stop also see every entry pushed before. */
    atomic_store_explicit(&h->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&h->work_ec.seq, 1, memory_order_release);
    ppi_futex_wake(&h->work_ec.seq, INT_MAX, true);
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
        f->retries = opts->retries;
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
    /* acquire: pairs with pp_ext_attach's release (the hooks). */
    const pp_ext_ops *ext = atomic_load_explicit(&ex->ext_ops, memory_order_acquire);
    if (ext)
        ext->destroy(ex->ext_ctx); /* external workers end (MPI: collective) */
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
    /* relaxed: sizes; a resize racing with this snapshot gives the one or
     * the other (each counter below is exact on its own). The sums run over
     * every position ever used, so retired workers' tasks still count. */
    int nw = atomic_load_explicit(&ex->nworkers, memory_order_relaxed);
    int hwm = atomic_load_explicit(&ex->workers_hwm, memory_order_relaxed);
    for (int i = 0; i < n && i < nw; i++) {
        ppi_worker *r = &s->workers[i];
        /* relaxed: statistics; each counter exact on its own. */
        w[i].pid = atomic_load_explicit(&r->pid, memory_order_relaxed);
        w[i].cpu = r->cpu;
        w[i].core = r->core;
        w[i].numa = r->numa;
        w[i].ncpus = CPU_COUNT(&r->place.cpus);
        w[i].tasks = atomic_load_explicit(&r->tasks, memory_order_relaxed);
        w[i].busy_ns = atomic_load_explicit(&r->busy_ns, memory_order_relaxed);
        w[i].respawns = atomic_load_explicit(&r->respawns, memory_order_relaxed);
    }
    if (st) {
        memset(st, 0, sizeof *st);
        st->workers = nw;
        /* relaxed: statistics. */
        st->submitted = atomic_load_explicit(&ex->submitted, memory_order_relaxed);
        st->backlog = atomic_load_explicit(&ex->bl_count, memory_order_relaxed);
        st->cancelled = atomic_load_explicit(&ex->cancelled, memory_order_relaxed);
        st->killed = atomic_load_explicit(&s->hdr->killed, memory_order_relaxed);
        for (int i = 0; i < hwm; i++)
            st->respawns += atomic_load_explicit(&s->workers[i].respawns, memory_order_relaxed);
        uint64_t tasks = 0, failed = 0;
        for (int i = 0; i < hwm; i++) {
            tasks += atomic_load_explicit(&s->workers[i].tasks, memory_order_relaxed);
            failed += atomic_load_explicit(&s->workers[i].failed, memory_order_relaxed);
        }
        /* acquire: pairs with pp_ext_attach's release (the hooks). */
        const pp_ext_ops *ext = atomic_load_explicit(&ex->ext_ops, memory_order_acquire);
        if (ext)
            ext->stats(ex->ext_ctx, &tasks, &failed); /* adds external workers' */
        st->completed = tasks - failed;
        /* relaxed: statistics. Tasks failed by a worker's death or a broken
         * pool: no worker counted them. */
        st->failed = failed + atomic_load_explicit(&s->hdr->swept, memory_order_relaxed) +
                     atomic_load_explicit(&ex->bl_failed, memory_order_relaxed);
        for (uint32_t i = 0; i < s->nslots; i++) {
            uint32_t state = ppi_st_state(
                atomic_load_explicit(&ppi_slot_at(s, i)->state, memory_order_relaxed));
            st->queued += state == PPI_S_QUEUED;
            st->running += state == PPI_S_RUNNING;
        }
    }
    return nw;
}

/* Wake the manager (commands, kill requests). Never blocks. */
void ppi_poke_manager(pp_executor *ex)
{
    uint64_t one = 1;
    ssize_t n = write(ex->seg.cmd_fd, &one, sizeof one);
    (void)n; /* a saturated counter still wakes the manager */
}


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
