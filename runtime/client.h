/*
 * client.h — the client process's private structures: the executor handle,
 * futures, the free-slot ring and the backlog. Nothing here is shared with
 * other processes.
 *
 * Locking, outermost first:
 *   ex->lock (backlog list, service thread life-cycle)  >  slot_lock[i]
 * A slot lock guards slot_owner[i] and the detach of the future bound to
 * slot i (copying its outcome out, freeing the slot). Nothing sleeps while
 * holding a slot lock.
 */
#ifndef PPOOL_RUNTIME_CLIENT_H
#define PPOOL_RUNTIME_CLIENT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <urcu/list.h> /* intrusive O(1) lists, client-private memory only */

#include "ppool.h"
#include "segment.h"

/* pp_future.cstate: where the future's outcome lives. */
enum {
    PPI_F_BACKLOG = 0, /* waiting client-side for a slot */
    PPI_F_SLOT = 1,    /* bound to slot (idx, gen); outcome is in the slot */
    PPI_F_DONE = 2,    /* outcome copied into the future */
    PPI_F_BACKLOG_WAITED = 3, /* BACKLOG, and a thread sleeps on cstate */
};
static inline bool ppi_in_backlog(uint32_t c)
{
    return c == PPI_F_BACKLOG || c == PPI_F_BACKLOG_WAITED;
}
#define PPI_BOUND 0x80000000u /* in pp_future.refs: bound to a slot */

struct pp_future {
    /* user references (low 31 bits) | PPI_BOUND. BOUND is cleared only under
     * the slot lock; the last user reference is dropped after clearing it. */
    _Atomic uint32_t refs;
    /* PPI_F_*; also a private futex for waiters while in the backlog. */
    _Atomic uint32_t cstate;
    pp_executor *ex;
    uint32_t idx, gen;         /* valid from PPI_F_SLOT on */
    /* Outcome, valid once cstate == PPI_F_DONE (written before its release). */
    int err, code;
    pid_t pid;
    int32_t rank1;             /* MPI rank + 1 that ran it, 0 = this node */
    char *msg;                 /* malloc'd, or NULL */
    const void *res;
    size_t res_size;
    uint64_t res_arena;        /* arena block owned by this future, 0 = none */
    void *res_heap;            /* malloc'd copy, or NULL */
    /* While in the backlog (owned by the backlog list under ex->lock). */
    uint64_t timeout_ns, grace_ns; /* pp_submit_opts, in nanoseconds */
    uint32_t retries;              /* pp_submit_opts.retries */
    uint64_t fn_token;         /* the task function as a token (fnmap.h) */
    void *arg;
    size_t arg_size;
    uint64_t arg_off;          /* arena block reserved by the service thread for the
                                  argument (until ppi_bind fills it), 0 = none */
    struct cds_list_head bl_node; /* in ex->backlog (under ex->lock); empty = not in it */
    /* Callbacks (callback.c), guarded by the executor's cb_lock. */
    struct cds_list_head cbs;  /* ppi_cb.node, registration order */
    int cb_fired;              /* 1 once they ran (later ones run at once) */
    _Atomic uint32_t want_notify; /* 1: bind with PPI_F_NOTIFY */
    alignas(16) unsigned char small[64]; /* small results live here; before
                                          * that, a backlogged argument that
                                          * fits (f->arg == small) */
};

typedef struct ppi_cb {
    pp_callback fn;
    void *userdata;
    struct cds_list_head node; /* in pp_future.cbs */
} ppi_cb;

struct pp_executor {
    ppi_seg seg;
    pp_config cfg;                 /* cfg.pin_cpus points at pin_cpus below */
    _Atomic int nworkers;          /* worker positions now (resize.c writes it) */
    _Atomic int workers_hwm;       /* positions ever used: the statistics' sums */
    int places_written;            /* positions whose place is in the segment
                                      (under resize_lock) */
    int *pin_cpus;                 /* our copy of cfg.pin_cpus (PP_PIN_LIST) */
    pthread_mutex_t resize_lock;   /* one pp_executor_resize at a time */
    pid_t manager_pid;
    int manager_pidfd;
    _Atomic uint32_t refs;         /* 1 for the handle + 1 per live future */
    _Atomic uint32_t manager_gone; /* 1 once reaped or seen dead */

    ppi_ring *free_slots;          /* indices of FREE slots we own */
    pp_future **slot_owner;        /* future bound to each slot */
    pp_future **notify_owner;      /* future whose callbacks await slot i's completion
                                      entry; the slot is freed only once it is seen */
    _Atomic uint32_t *slot_lock;   /* spinlock per slot */

    pthread_mutex_t lock;          /* backlog and service thread life-cycle */
    pthread_cond_t service_cv;     /* the idle service thread waits here */
    struct cds_list_head backlog;  /* pp_future.bl_node, FIFO (backlog.c) */
    _Atomic uint64_t bl_count;     /* its length, for lock-free hints */
    pthread_t service;             /* the service thread (service_thread.c) */
    int service_started;           /* a thread exists that nobody joined yet */
    int service_running;           /* that thread is still in its loop */

    _Atomic uint32_t shutdown;     /* no new submissions */
    _Atomic uint32_t cancel_req;   /* shutdown(cancel_futures): nothing more may start */
    _Atomic uint32_t in_submit;    /* submissions past the shutdown check */
    int stop_sent;                 /* under lock */
    int reaped;                    /* under lock */
    pthread_mutex_t reap_lock;

    char topology[2][192];         /* pp_executor_topology: the current one and the
                                      one before (resize.c writes the other) */
    _Atomic uint32_t topology_cur; /* index of the current one */
    pthread_mutex_t cb_lock;       /* callback lists of this executor's futures */
    _Atomic uint64_t cb_pending;   /* futures whose callbacks have not run yet */
    _Atomic uint64_t cb_blocked;   /* of those, running on threads that wait in
                                      pp_shutdown (callback.c) */
    _Atomic uint32_t svc_seq;      /* private futex: bumped when stop_sent, cb_pending
                                      or cb_blocked change (ppi_svc_notify) */
    _Atomic uint32_t svc_waiters;  /* threads sleeping on svc_seq */
    pid_t owner_pid;               /* the client: the process that created it */
    _Atomic uint64_t last_check_ns; /* pp_submit's periodic liveness check */
    _Atomic uint64_t submitted;
    _Atomic uint64_t cancelled;
    _Atomic uint64_t bl_failed;    /* backlog futures failed without a slot
                                      (broken pool, no arena room left) */
    struct cds_list_head exit_node; /* exit_registry.c's list, under its lock */
    int exit_listed;
    /* External workers (ext_worker.h): set once by pp_ext_attach before any
     * submission; NULL for an ordinary pool. */
    const struct pp_ext_ops *_Atomic ext_ops;
    void *ext_ctx;
    int ext_rank1;                 /* pp_exception.rank + 1 of this node's tasks
                                      (0: -1, an ordinary pool) */
    uint64_t ext_runner_token;     /* pp_map's runner, which stays on this node */
};

/* slot locks */
static inline void ppi_slot_lock(pp_executor *ex, uint32_t i)
{
    /* acquire: the critical section reads what the last holder wrote. */
    while (atomic_exchange_explicit(&ex->slot_lock[i], 1, memory_order_acquire))
        while (atomic_load_explicit(&ex->slot_lock[i], memory_order_relaxed))
            ppi_cpu_relax(); /* relaxed: spin on a read until it looks free */
}
static inline void ppi_slot_unlock(pp_executor *ex, uint32_t i)
{
    /* release: publishes the critical section. */
    atomic_store_explicit(&ex->slot_lock[i], 0, memory_order_release);
}

/* slots.c */
/* The arena block a pp_ext_submit_adopt caller hands to this thread's next
 * bind (0 = none); the bind clears it when it takes the block. */
extern _Thread_local uint64_t ppi_adopt_off;
int ppi_acquire_slot(pp_executor *ex, uint32_t *idx);
void ppi_reclaim_slots(pp_executor *ex);
int ppi_bind(pp_executor *ex, pp_future *f, uint32_t idx, const void *arg, size_t arg_size);
int ppi_bind_ex(pp_executor *ex, pp_future *f, uint32_t idx, const void *arg, size_t arg_size,
                bool notify);
void ppi_release_slot(pp_executor *ex, uint32_t idx);
bool ppi_release_slot_quiet(pp_executor *ex, uint32_t idx);
void ppi_free_ring_push(pp_executor *ex, uint32_t idx);

/* executor.c */
/* Plan @n workers (0: the default count) for @c; *places receives a
 * malloc'd array of *nworkers places, @summary the topology line. Prints
 * the planner's warning. Returns 0, -EINVAL or -ENOMEM. */
int ppi_plan_workers(const pp_config *c, int n, ppi_place **places, int *nworkers,
                     char *summary, size_t summary_len);
/* The shard count (c->ring_shards, or the automatic one for this machine
 * when 0) into *@nshards and the home shard of each of the @n @places into
 * @homes (shards.h, ppi_shard_home). Returns 0 or -errno (topology). */
int ppi_plan_shards(const pp_config *c, const ppi_place *places, int n, int *nshards,
                    uint32_t *homes);
void ppi_poke_manager(pp_executor *ex);
void ppi_reap_manager(pp_executor *ex);
int ppi_pool_check(pp_executor *ex);
bool ppi_manager_dead(pp_executor *ex);
int ppi_liveness_tick(pp_executor *ex);
void ppi_request_stop(pp_executor *ex);
void ppi_executor_unref(pp_executor *ex);

/* future.c */
pp_future *ppi_future_new(pp_executor *ex);
void ppi_future_finish(pp_future *f, int err, const char *msg);
uint32_t ppi_future_complete(pp_future *f, int err, const char *msg);
/* Free @f's backlogged argument copy (unless it lives in f->small) and
 * clear it. Whoever owns the backlog entry. */
static inline void ppi_future_drop_arg(pp_future *f)
{
    if (f->arg != (void *)f->small)
        free(f->arg);
    f->arg = NULL;
}
void ppi_future_completed(pp_future *f, uint32_t was);
bool ppi_detach_locked(pp_executor *ex, pp_future *f);
bool ppi_cancel_bound(pp_executor *ex, uint32_t idx);
uint32_t ppi_harvest(pp_executor *ex);

/* callback.c */
void ppi_fire_callbacks(pp_future *f);
void ppi_drain_completions(pp_executor *ex);
void ppi_free_slot_word(pp_executor *ex, uint32_t idx, uint32_t gen);

/* backlog.c: submissions waiting client-side for a slot or arena room. */
/* ex->lock is an adaptive mutex (a short spin before sleeping). */
void ppi_backlog_lock_init(pthread_mutex_t *lock);
int ppi_backlog_add(pp_executor *ex, pp_future *f, const void *arg, size_t arg_size);
bool ppi_backlog_cancel(pp_executor *ex, pp_future *f);
void ppi_backlog_cancel_all(pp_executor *ex, int err, const char *msg);
void ppi_backlog_fail_broken(pp_executor *ex);
/* Bind the backlog's head into the FREE slot @idx the caller owns; true if
 * @idx was consumed (ppi_release_slot's helping path). Trylocks ex->lock. */
bool ppi_backlog_help(pp_executor *ex, uint32_t idx, bool notify);
/* true when nothing waits in the backlog. Caller holds ex->lock (or reads a
 * hint). */
bool ppi_backlog_empty(pp_executor *ex);
typedef enum ppi_feed_result {
    PPI_FEED_MOVED,     /* entries went into slots: go on without sleeping */
    PPI_FEED_IDLE,      /* nothing moved; any short nap was taken already */
    PPI_FEED_WAIT_DONE, /* waiting for arena room: sleep until a task finishes */
} ppi_feed_result;
/* One round of feeding the backlog into free slots (service thread only, or
 * pp_shutdown(wait) on it). @starved counts rounds without a free slot
 * across calls; @shut: the executor is shut down. */
ppi_feed_result ppi_backlog_feed_round(pp_executor *ex, int *starved, bool shut);

/* service_thread.c: the executor's client-side thread (backlog, callbacks). */
void ppi_service_start(pp_executor *ex);
int ppi_service_start_locked(pp_executor *ex); /* caller holds ex->lock */
void ppi_service_join(pp_executor *ex);
bool ppi_service_is_self(pp_executor *ex);
void ppi_service_serve_backlog(pp_executor *ex);
void ppi_service_serve_callbacks(pp_executor *ex);

/* exit_registry.c: executors still alive at exit(3) are shut down with wait. */
void ppi_exit_add(pp_executor *ex);
void ppi_exit_remove(pp_executor *ex);

/* exit_registry.c: this process's pid, cached: set at pp_executor_create, reset in a
 * fork()ed child by a pthread_atfork handler. */
extern _Atomic pid_t ppi_self_pid;
void ppi_self_pid_init(void);
/* true when the calling process is not @ex's client (a fork()ed child): then
 * every public call fails with PP_EFORKED and touches nothing shared. One
 * relaxed load: the cache is written only by this process, to its own pid. */
static inline bool ppi_foreign(const pp_executor *ex)
{
    /* relaxed: see above. */
    return atomic_load_explicit(&ppi_self_pid, memory_order_relaxed) != ex->owner_pid;
}

/* callback.c: done-callbacks of @ex that the calling thread is running now
 * and that pp_shutdown's wait must not count (cb_pending). */
uint64_t ppi_cb_running_here(pp_executor *ex);
/* shutdown.c: wake the threads waiting in pp_shutdown (svc_seq). */
void ppi_svc_notify(pp_executor *ex);

#endif
