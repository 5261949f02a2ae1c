/*
 * segment.h — the shared segment: one memfd, MAP_SHARED into the client, the
 * manager and every worker (at whatever address each gets).
 *
 * Layout (all offsets from the segment base, all 64-byte aligned):
 *
 *   [ ppi_hdr | ppi_worker[PPI_MAX_WORKERS] | task ring shards[nshards] | completion ring |
 *     slots[nslots] |
 *     arena bitmap | arena run lengths | arena data (4 KiB units) ]
 *
 * Rule: nothing in the segment is a pointer. Slots are named by index,
 * payloads by offset from the base.
 *
 * The slot state machine and its synchronisation table are in
 * docs/design.md ("Slots"); the short form is at ppi_slot below.
 */
#ifndef PPOOL_RUNTIME_SEGMENT_H
#define PPOOL_RUNTIME_SEGMENT_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ppool.h"
#include "ring.h"
#include "sync.h"
#include "topology.h"

#define PPI_MAGIC 0x6c6f6f7070ull /* "ppool" */
#define PPI_ARENA_UNIT 4096u
/* The arena's data starts at this file offset multiple and every process
 * maps the segment at an address multiple of it, so that a transparent huge
 * page of the memfd (2 MiB) can be mapped whole (docs/design.md, "Huge
 * pages"). */
#define PPI_HUGE_ALIGN ((uint64_t)2 << 20)

/* ---- slot state word --------------------------------------------------
 * 64 bits: [63:32] generation | [31:16] worker index | [15:8] flags | [7:0] state
 * The low 32 bits double as the futex that result waiters sleep on, so every
 * transition a waiter cares about changes them.
 *
 *   FREE --client--> QUEUED --worker CAS--> RUNNING(w) --worker--> DONE | FAILED
 *                      |                        |
 *                      +--client CAS--> CANCELLED --worker pops it--> RECLAIM
 *   DONE/FAILED --client detaches--> FREE        (client owns the slot again)
 *   RUNNING+ORPHAN --worker--> RECLAIM --client CAS--> FREE
 *   RUNNING(w) --client (kill) or manager (timeout) CAS--> KILLING(w)
 *   KILLING(w) --manager, after w died--> FAILED (PP_EKILLED)
 *   RUNNING(w) --manager, after w died (RESPAWN)--> FAILED (PP_EWORKER)
 *   QUEUED/RUNNING --manager or waiter, pool broken--> FAILED
 *   RUNNING(xid) --external worker, its rank lost, retries left--> QUEUED
 *                (same generation; the entry goes back on the ring)
 *
 * The generation increases on FREE -> QUEUED; ring entries carry it, so an
 * entry for an earlier use of a slot can never claim a later use (ABA-safe).
 */
enum ppi_slot_state {
    PPI_S_FREE = 0,
    PPI_S_QUEUED = 1,
    PPI_S_RUNNING = 2,
    PPI_S_DONE = 3,
    PPI_S_FAILED = 4,
    PPI_S_CANCELLED = 5,
    PPI_S_RECLAIM = 6,
    PPI_S_KILLING = 7,  /* RUNNING(w) asked to die (kill request or timeout);
                           the worker may no longer publish or take work */
};
#define PPI_F_WAITERS 0x01u /* a client thread sleeps on this slot's futex */
#define PPI_F_ORPHAN 0x02u  /* the client dropped its future; the worker recycles */
#define PPI_F_NOTIFY 0x04u  /* callbacks registered: the finisher pushes the entry
                               on the completion ring for the client's service thread */
#define PPI_NO_WORKER 0xffffu

static inline uint32_t ppi_st_state(uint64_t w) { return (uint32_t)(w & 0xff); }
static inline uint32_t ppi_st_flags(uint64_t w) { return (uint32_t)((w >> 8) & 0xff); }
static inline uint32_t ppi_st_worker(uint64_t w) { return (uint32_t)((w >> 16) & 0xffff); }
static inline uint32_t ppi_st_gen(uint64_t w) { return (uint32_t)(w >> 32); }
static inline uint64_t ppi_st_make(uint32_t gen, uint32_t state, uint32_t flags, uint32_t worker)
{
    return ((uint64_t)gen << 32) | ((uint64_t)worker << 16) | ((uint64_t)flags << 8) | state;
}
static inline int ppi_st_terminal(uint32_t s)
{
    return s == PPI_S_DONE || s == PPI_S_FAILED;
}

/* Ring entries name a slot use: index and generation. */
static inline uint64_t ppi_entry(uint32_t idx, uint32_t gen) { return ((uint64_t)gen << 32) | idx; }
static inline uint32_t ppi_entry_idx(uint64_t e) { return (uint32_t)e; }
static inline uint32_t ppi_entry_gen(uint64_t e) { return (uint32_t)(e >> 32); }

/*
 * One task slot. Field ownership follows the state:
 *  - fn, arg_*: written by the client while it owns the slot (FREE), published
 *    by the release store of QUEUED and the ring push; read by the worker.
 *  - res_*, err, code, pid, msg_len: written by the worker between its
 *    RUNNING CAS and its DONE/FAILED release; read by the client after an
 *    acquire load sees DONE/FAILED. The manager (or a waiter, when the pool
 *    is broken) writes them only after winning the CAS out of QUEUED/RUNNING.
 * Inline payload bytes follow the struct: arg area, then result area (the
 * result area holds the error message when the task failed).
 */
typedef struct ppi_slot {
    _Atomic uint64_t state;
    uint64_t fn;        /* function address (fork start method: same image) */
    uint64_t arg_size;
    uint64_t arg_off;   /* arena offset, 0 = inline */
    uint64_t res_size;
    uint64_t res_off;   /* arena offset, 0 = inline */
    int32_t err;        /* 0 or PP_E* / -errno */
    int32_t code;       /* task's code, or signal / exit status */
    int32_t pid;        /* worker that ran it */
    uint32_t msg_len;
    /* Set by the client at submit (owned with the slot while FREE). */
    uint64_t timeout_ns;     /* run-time limit from start, 0 = none */
    /* SIGTERM -> SIGKILL delay for timeout/kill. Atomic (relaxed): besides
     * the binder, pp_future_kill rewrites it while the task runs, and an
     * external worker thread of this process reads it right after its claim
     * (either value is fine there: it re-reads once it sees KILLING). */
    _Atomic uint64_t kill_grace_ns;
    /* Written by the worker right after its claim CAS. */
    uint64_t started_ns;     /* CLOCK_MONOTONIC (system-wide) */
    /* Written by the killer before its RUNNING -> KILLING CAS. */
    int32_t kill_reason;     /* enum ppi_kill_reason */
    /* Rank + 1 of the MPI rank that ran it (an external worker's publish,
     * ext_worker.c); 0 = this node's workers. Cleared at bind. */
    int32_t rank1;
    /* Runs left after a lost MPI rank (pp_submit_opts.retries): set at
     * bind, decremented by pp_ext_requeue while the slot is RUNNING(xid). */
    uint32_t retries;
} ppi_slot;
#define PPI_SLOT_HDR 128u
/* Least size of a slot's result area: a message of PP_MESSAGE_MAX bytes and
 * its NUL, rounded to 64. */
#define PPI_MSG_AREA ((PP_MESSAGE_MAX + 1 + 63) / 64 * 64)
_Static_assert(sizeof(ppi_slot) <= PPI_SLOT_HDR, "slot header size");

enum ppi_kill_reason { PPI_KILL_NONE = 0, PPI_KILL_REQUEST = 1, PPI_KILL_TIMEOUT = 2 };

/* A worker's phase, written only by that worker, read by the manager after
 * it died: it tells a retirement or a failed initializer from a crash, even
 * if a task calls exit() with any status. */
enum ppi_phase {
    PPI_PH_START = 0,     /* forked, binding */
    PPI_PH_INIT = 1,      /* running the initializer */
    PPI_PH_LOOP = 2,      /* taking tasks */
    PPI_PH_RETIRING = 3,  /* max_tasks_per_child or max_rss_growth reached: exiting cleanly */
    PPI_PH_KILLED = 4,    /* found its slot KILLING: exiting */
    PPI_PH_INIT_FAILED = 5,
    PPI_PH_LEFT = 6,      /* its position was resized away: exiting between tasks */
};
#define PPI_EXIT_LEFT 74
#define PPI_EXIT_RETIRED 75
#define PPI_EXIT_KILLED 76
#define PPI_EXIT_INIT 77

/* Per worker position (the process in it may be replaced). Single writer:
 * the worker process in that position, except respawns (manager) and pid
 * (both the manager after fork() and the worker before ready store the same
 * value: the manager's store may come after the worker said ready). */
typedef struct ppi_worker {
    ppi_place place;             /* where it runs: written by the client at create */
    alignas(64) _Atomic int32_t pid;
    int32_t cpu;                 /* first OS PU it is pinned to, -1 none */
    int32_t core;                /* logical core index, -1 unknown */
    int32_t numa;                /* OS NUMA node index, -1 unknown */
    uint32_t home_shard;         /* task-ring shard it pops first (shards.h):
                                    written by the client with place */
    _Atomic uint32_t ready;      /* 1 once pinned and looping */
    _Atomic uint64_t tasks;      /* tasks finished (ok or failed) */
    _Atomic uint64_t failed;     /* of which failed */
    _Atomic uint64_t tasks_due;  /* tasks/failed once the task being published
                                    is counted: a worker killed between its
                                    publish and its count is settled by the
                                    manager from these (settle_counts) */
    _Atomic uint64_t failed_due;
    _Atomic uint64_t busy_ns;
    _Atomic uint64_t respawns;
    _Atomic uint32_t phase;      /* enum ppi_phase */
    /* Ring-claim record (crash attribution inside the dequeue): the ticket
     * being claimed (pos + 1, 0 = none), stored before the ticket CAS, and
     * the entry taken but not yet marked RUNNING (0 = none). */
    _Atomic uint64_t deq_claim;
    _Atomic uint64_t deq_entry;
    /* The slot entry it runs (0 = none) and, when that task has a timeout,
     * its deadline; read by the manager to enforce timeouts. */
    _Atomic uint64_t current;
    _Atomic uint64_t deadline_ns;
    /* pp_executor_resize (docs/design.md, "Resizing"): 1 = this position
     * is beyond the pool's size, leave between tasks. Written by the
     * manager only, read by the worker. */
    _Atomic uint32_t retire;
} ppi_worker;

/* Worker records in every segment: the most positions a pool can have
 * (pp_config.max_workers and pp_executor_resize's limit). The table is
 * address space only until a position is used (the memfd is sparse). */
#define PPI_MAX_WORKERS 4096

/* Pool life-cycle, in ppi_hdr.pool_state. */
enum ppi_pool_state {
    PPI_POOL_RUNNING = 0,
    PPI_POOL_BROKEN = 1,
};

/* One named shared block (share.c; docs/design.md, "Shared blocks"):
 * handle 0 = free, PPI_SHARE_BUSY = being written by the one registrar
 * that won it; any other value = the block at arena offset @off, @size
 * bytes, published under that handle. off and size are atomics (relaxed)
 * only so that the seqlock-style reader (ppi_share_lookup) may race with a
 * re-registration without a data race; the handle orders them. */
typedef struct ppi_share {
    _Atomic uint64_t handle;
    _Atomic uint64_t off;
    _Atomic uint64_t size;
} ppi_share;
#define PPI_SHARE_BUSY UINT64_MAX /* never a handle: a handle's low byte is 1..PP_SHARE_MAX */

/* The arena's bookkeeping; guarded by a robust process-shared mutex. */
typedef struct ppi_arena {
    pthread_mutex_t lock;
    uint64_t units;      /* data units of PPI_ARENA_UNIT bytes */
    uint64_t hint;       /* every unit below it is in use (a lower bound:
                            the lowest-address first fit starts there) */
    uint64_t off_bitmap; /* uint64_t[ceil(units/64)], bit set = used */
    uint64_t off_runlen; /* uint32_t[units], run length at a block's first unit */
    uint64_t off_data;
} ppi_arena;

typedef struct ppi_hdr {
    uint64_t magic;
    uint64_t total_size;
    uint32_t nslots;
    uint32_t slot_size;     /* header + inline_size + max(inline_size, PPI_MSG_AREA) */
    uint32_t inline_size;
    uint32_t nworkers;      /* worker records in the table (PPI_MAX_WORKERS) */
    uint64_t max_arg;
    uint64_t max_result;
    uint64_t off_workers;
    uint64_t off_ring;      /* task ring shard 0; shard k at off_ring + k * ring_stride */
    uint64_t ring_stride;   /* bytes between shards (64-byte multiple) */
    uint32_t nshards;       /* task-ring shards, 1..PPI_MAX_SHARDS (shards.h) */
    uint32_t huge;          /* 1: every process advises MADV_HUGEPAGE on the arena */
    uint64_t off_cring;
    uint64_t off_modtab;    /* ppi_modtab: modules for function tokens */
    uint64_t off_slots;
    uint32_t start_method;  /* pp_start_method actually used */
    uint32_t test_bad_fd;   /* PPOOL_FAULT_INJECTION builds: spawn with a bad fd
                               (always 0, and never read, in other builds) */
    int32_t client_pid;
    _Atomic int32_t manager_pid;
    /* Life-cycle words. Written with release, read with acquire. */
    _Atomic uint32_t pool_state;    /* enum ppi_pool_state */
    _Atomic uint32_t cancel_flag;   /* shutdown(cancel_futures): tasks should stop */
    _Atomic uint32_t stop;          /* workers exit once the ring is empty */
    _Atomic int32_t broken_err;     /* 0, or PP_EBROKEN: set by the one breaker's CAS */
    _Atomic int32_t broken_code;    /* signal (>0) or ppi_code_exit(status) */
    _Atomic int32_t broken_pid;     /* who broke it, 0 if no process did */
    _Atomic uint32_t broken_started; /* 1: broke after the workers had started
                                        (e.g. the initializer failed) */
    char broken_msg[PP_MESSAGE_MAX + 1]; /* written once, before pool_state BROKEN */
    _Atomic uint32_t ready;         /* workers started (futex for create) */
    _Atomic int32_t kill_signal;    /* manager command: signal every live worker */
    uint32_t death_policy;          /* pp_death_policy */
    uint32_t max_tasks;             /* per worker process, 0 = unlimited */
    uint64_t max_rss_growth;        /* bytes of private RSS growth, 0 = unlimited */
    uint64_t initializer;           /* function address, 0 = none */
    uint64_t initargs_off;          /* arena block with the initializer's bytes */
    uint64_t initargs_size;
    uint32_t cores_per_worker;      /* pp_config.cores_per_worker */
    uint32_t thread_env_keep;       /* thread_env.h: variables left as the client had them */
    /* Resizing (docs/design.md, "Resizing"). target: the number of worker
     * positions, written by the client (under its resize lock) before it
     * bumps resize_seq (release); the manager applies it and stores the
     * seq it applied in resize_ack (release, futex-woken). */
    _Atomic uint32_t target;
    _Atomic uint32_t resize_seq;
    _Atomic uint32_t resize_ack;
    _Atomic uint64_t killed;        /* tasks killed (statistics) */
    _Atomic uint64_t swept;         /* tasks failed from outside their worker: a
                                       worker's death, a broken pool (statistics) */
    alignas(64) ppi_ec work_ec;     /* workers sleep here when the ring is empty */
    alignas(64) ppi_ec done_ec;     /* the client's service thread sleeps here */
    alignas(64) _Atomic uint64_t reclaim; /* slots in RECLAIM awaiting the client */
    /* Named shared blocks (pp_shm_share): share_seq numbers the handles a
     * registrar makes; shares[] is indexed by a handle's low byte - 1. */
    alignas(64) _Atomic uint64_t share_seq;
    ppi_share shares[PP_SHARE_MAX];
    alignas(64) ppi_arena arena;
} ppi_hdr;

/* A process's view of the segment. */
typedef struct ppi_seg {
    char *base;
    size_t size;
    int fd;
    ppi_hdr *hdr;
    ppi_worker *workers;
    char *rings;        /* task ring shard 0; use ppi_shard_ring (shards.h) */
    uint64_t ring_stride;
    uint32_t nshards;
    ppi_ring *cring;    /* completion ring: entries of finished NOTIFY slots */
    struct ppi_modtab *modtab;
    char *slots;
    int cmd_fd;         /* eventfd: client -> manager commands (same number in both) */
    uint32_t slot_size;
    uint32_t inline_size;
    uint32_t nslots;
} ppi_seg;

/* Geometry for ppi_seg_create. */
typedef struct ppi_seg_geom {
    uint32_t nslots;        /* power of two */
    uint32_t inline_size;   /* multiple of 64 */
    uint32_t nworkers;
    uint32_t nshards;       /* task-ring shards, 1..PPI_MAX_SHARDS */
    uint32_t huge;          /* pp_config.huge_pages: advise huge pages on the arena */
    uint64_t arena_size;    /* bytes, multiple of PPI_ARENA_UNIT */
    uint64_t max_arg;
    uint64_t max_result;
    uint32_t mod_cap;       /* module table room (ppi_modtab_measure) */
    uint32_t mod_strings;
} ppi_seg_geom;

/* Create and initialise a segment (client). Returns 0 or -errno. */
int ppi_seg_create(ppi_seg *seg, const ppi_seg_geom *g);
/* Map an existing segment from an inherited descriptor (a freshly exec'd
 * manager or worker). Returns 0 or -errno (-EINVAL: not a ppool segment). */
int ppi_seg_attach(ppi_seg *seg, int fd, int cmd_fd);
/* Unmap and close (any process). */
void ppi_seg_unmap(ppi_seg *seg);

static inline ppi_slot *ppi_slot_at(const ppi_seg *s, uint32_t idx)
{
    return (ppi_slot *)(s->slots + (size_t)idx * s->slot_size);
}
static inline char *ppi_slot_arg_inline(const ppi_seg *s, ppi_slot *sl)
{
    (void)s;
    return (char *)sl + PPI_SLOT_HDR;
}
static inline char *ppi_slot_res_inline(const ppi_seg *s, ppi_slot *sl)
{
    return (char *)sl + PPI_SLOT_HDR + s->inline_size;
}
static inline _Atomic uint32_t *ppi_slot_futex(ppi_slot *sl)
{
    return (_Atomic uint32_t *)(void *)&sl->state; /* low half (little-endian) */
}

/* After a slot's finishing CAS from @old to @now (DONE, FAILED or RECLAIM):
 * wake its waiters, count a RECLAIM, push the completion entry if callbacks
 * asked for one, and notify the done eventcount. Any process. */
void ppi_slot_finished(ppi_seg *s, uint32_t idx, uint64_t old, uint64_t now);

/* Push (idx, gen) on the completion ring if @flags (the slot's flags just
 * before it finished) asked for it, and wake the client's service thread. */
void ppi_slot_notify(ppi_seg *s, uint32_t idx, uint32_t gen, uint32_t flags);

/* Named shared blocks (share.c). Register the block at arena offset @off
 * (@size bytes, already written) under @want (a handle made by another
 * node's registrar: pp_mpi_share), or under a new handle when @want is 0;
 * *handle receives it. Returns 0, -ENOSPC (table full), -EEXIST (@want's
 * entry is taken), -EINVAL (@want malformed). Any client thread. */
int ppi_share_register(ppi_seg *s, uint64_t want, uint64_t off, uint64_t size, uint64_t *handle);
/* Withdraw @handle; *off / *size receive what it named. -ENOENT if it is
 * not registered. Any client thread. */
int ppi_share_withdraw(ppi_seg *s, uint64_t handle, uint64_t *off, uint64_t *size);
/* The block registered under @handle now: its offset (0: none) and size.
 * Any process (a worker's task); lock-free, never blocks. */
uint64_t ppi_share_lookup(const ppi_seg *s, uint64_t handle, uint64_t *size);

/* Arena (arena.c). Offsets are from the segment base; 0 means none. */
uint64_t ppi_arena_alloc(ppi_seg *s, uint64_t bytes);
void ppi_arena_free(ppi_seg *s, uint64_t off);
/* Variants that keep the offset in *rec (set under the arena lock on alloc,
 * cleared under it on free), so a process dying between the two leaves the
 * block recorded for its reclaimer (a worker's result block in its slot). */
uint64_t ppi_arena_alloc_rec(ppi_seg *s, uint64_t bytes, uint64_t *rec);
void ppi_arena_free_rec(ppi_seg *s, uint64_t *rec);
/* Free a pp_shm_alloc block: as ppi_arena_free, but a block of 256 KiB or
 * more is always punched (never kept under PPI_ARENA_KEEP_BYTES), so that a
 * later pp_shm_alloc block is placed afresh by its first touch
 * (docs/topology.md). */
void ppi_arena_free_punch(ppi_seg *s, uint64_t off);

#endif
