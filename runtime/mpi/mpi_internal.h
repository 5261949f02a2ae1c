/*
 * mpi_internal.h — what the files of libppool_mpi share: the wire format,
 * the root's context and the calls between the files. docs/mpi.md has the
 * design and the invariants.
 *
 *   mpi_executor.c  pp_mpi_config_init, pp_mpi_executor_create (the
 *                   collective set-up on every rank), pp_mpi_rank_stats
 *   mpi_root.c      the root's comm thread: external workers (one per
 *                   remote rank) feeding the ranks from the pool's ring,
 *                   results, kills, heartbeats, rank loss; the ext hooks
 *   mpi_serve.c     a serving rank's loop
 *   mpi_share.c     pp_mpi_share / pp_mpi_unshare: blocks every node holds
 *   mpi_ulfm.c      ULFM's failure reports, when the MPI library has them
 *   mpi_backoff.h   the idle back-off both loops use
 */
#ifndef PPOOL_MPI_INTERNAL_H
#define PPOOL_MPI_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ext_worker.h"
#include "ppool.h"
#include "ppool/mpi.h"

/* ---- wire ------------------------------------------------------------
 * Every message is between the root and one other rank, on the duplicated
 * communicator; MPI's non-overtaking order between two ranks is relied on
 * (a DATA message follows its header). */
enum {
    PPM_TAG_TASK = 1,      /* root -> rank: ppm_task (+ argument if inline) */
    PPM_TAG_TASK_DATA = 2, /* root -> rank: the argument, when not inline */
    PPM_TAG_KILL = 3,      /* root -> rank: ppm_kill */
    PPM_TAG_STOP = 4,      /* root -> rank: end serving (no payload) */
    PPM_TAG_CANCEL = 5,    /* root -> rank: shutdown(cancel_futures) (no payload) */
    PPM_TAG_RES = 6,       /* rank -> root: ppm_res + message + result if inline */
    PPM_TAG_RES_DATA = 7,  /* rank -> root: the result, when not inline */
    PPM_TAG_BEAT = 8,      /* either way: liveness (no payload) */
    /* mpi_share.c (pp_mpi_share); numbered apart from the task messages. */
    PPM_TAG_SHARE = 32,      /* root -> rank: ppm_share */
    PPM_TAG_SHARE_DATA = 33, /* root -> rank: the block's bytes (follows SHARE) */
    PPM_TAG_SHARE_ACK = 34,  /* rank -> root: ppm_share_ack */
    PPM_TAG_UNSHARE = 35,    /* root -> rank: ppm_share (size unused) */
};

/* pp_mpi_share's messages: the block of @size bytes registered under
 * @handle on the rank; its answer. */
typedef struct ppm_share {
    uint64_t handle;
    uint64_t size;
} ppm_share;

typedef struct ppm_share_ack {
    uint64_t handle;
    int32_t err;         /* 0, or why the rank holds no copy (-ENOMEM, ...) */
    uint32_t pad;
} ppm_share_ack;

/* A task: the slot use (ring entry) is its id at the root, unique while in
 * flight. */
typedef struct ppm_task {
    uint64_t id;
    uint64_t token;      /* function token of the root's module table */
    uint64_t timeout_ns; /* as pp_submit_opts, enforced by the serving node */
    uint64_t grace_ns;
    uint64_t arg_size;
    uint32_t inline_arg; /* 1: the argument follows in this message */
    uint32_t pad;
} ppm_task;

typedef struct ppm_kill {
    uint64_t id;
    uint64_t grace_ns;
} ppm_kill;

typedef struct ppm_res {
    uint64_t id;
    int32_t err, code, pid;
    uint32_t msg_len;    /* message bytes that follow the header */
    uint64_t res_size;
    uint32_t inline_res; /* 1: the result follows the message */
    uint32_t pad;
} ppm_res;

/* ---- idle back-off ---------------------------------------------------
 * MPI offers no wait that also wakes on a futex, and Open MPI's blocking
 * calls spin a core: both loops poll, yielding a few times after the last
 * progress, then sleeping 4 us doubling up to a cap (mpi4py.futures sleeps
 * likewise, up to 1 ms). */
typedef struct ppm_backoff {
    unsigned idle;
} ppm_backoff;

static inline void ppm_backoff_reset(ppm_backoff *b) { b->idle = 0; }

static inline void ppm_backoff_nap(ppm_backoff *b, uint64_t cap_ns)
{
    if (b->idle < 16) {
        b->idle++;
        sched_yield();
        return;
    }
    unsigned sh = b->idle - 16 < 20 ? b->idle - 16 : 20;
    uint64_t ns = (uint64_t)4000 << sh;
    if (ns > cap_ns)
        ns = cap_ns;
    else
        b->idle++;
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* ---- the root's context --------------------------------------------- */

/* pp_mpi_share's requests from client threads to the comm thread
 * (mpi_share.c): a FIFO under @lock; the comm thread works on one at a time. */
struct ppm_share_req;
typedef struct ppm_shares {
    pthread_mutex_t lock;        /* head/tail, each request's done flag */
    pthread_cond_t cv;           /* a request is done */
    struct ppm_share_req *head, *tail;
    _Atomic uint32_t queued;     /* requests in the FIFO: the comm thread's cheap look */
    struct ppm_share_req *active; /* the comm thread's, out of the FIFO */
} ppm_shares;

/* A task shipped to a rank. */
typedef struct ppm_flight {
    pp_ext_item it;
    uint64_t id;
    int used;
    int kill_sent;
    int nreq;
    MPI_Request req[2];
    void *pkt;           /* header (+ inline argument) being sent */
} ppm_flight;

typedef struct ppm_rank {
    _Atomic int alive;   /* written by the comm thread only (plain accesses
                            there are seq_cst); stats read it relaxed */
    int workers;
    unsigned credits;
    ppm_flight *fl;      /* [credits] */
    _Atomic uint64_t in_flight;
    _Atomic uint64_t tasks, failed;
    _Atomic uint64_t retried; /* its tasks put back on the ring when it was lost */
    uint64_t heard_ns;   /* last message from it */
} ppm_rank;

typedef struct ppm_root {
    pp_executor *ex;
    MPI_Comm comm;
    int me, size;
    pp_mpi_config cfg;
    ppm_rank *ranks;     /* [size]; ranks[me] unused */
    pthread_t thread;
    int thread_started;
    _Atomic uint32_t closing;  /* before_stop: take nothing more */
    _Atomic uint32_t in_take;  /* the comm thread is between check and take */
    _Atomic uint32_t quit;     /* destroy: send STOP and end */
    _Atomic uint64_t flying;   /* tasks in flight on all ranks */
    _Atomic uint32_t lost_any; /* a rank was lost: no collective at the end */
    pthread_mutex_t lock;      /* drain's sleep */
    pthread_cond_t cv;
    uint64_t sent_ns;          /* last message to all ranks (heartbeat) */
    int cancel_sent;
    int rr;                    /* round-robin start for taking */
    bool handed_back;          /* this round handed a map runner back: nap,
                                  do not sleep on the ring (it is not empty) */
    ppm_shares shares;         /* pp_mpi_share (mpi_share.c) */
} ppm_root;

extern const pp_ext_ops ppm_root_ops;

/* mpi_root.c */
int ppm_root_start(ppm_root *r);
/* mpi_share.c: the root's side (comm thread: progress, on_ack; root_new /
 * root_destroy: init, fini) and a serving rank's (its loop, on SHARE and
 * UNSHARE). */
void ppm_share_init(ppm_root *r);
void ppm_share_fini(ppm_root *r);
bool ppm_share_progress(ppm_root *r);
void ppm_share_on_ack(ppm_root *r, int src, const char *buf, size_t len);
void ppm_serve_share(MPI_Comm comm, int root, pp_executor *lex, const char *buf, size_t len);
void ppm_serve_unshare(pp_executor *lex, const char *buf, size_t len);
/* mpi_ulfm.c: with PPOOL_HAVE_ULFM, is @rc a process failure, and (root)
 * acknowledge the failures and mark those ranks for check_losses (returns
 * how many); without, false and 0. Comm thread / serving loop only. */
bool ppm_ulfm_proc_failed(int rc);
int ppm_ulfm_note_failures(ppm_root *r, int rc);
/* mpi_serve.c: serve the root until STOP; returns PP_MPI_SERVED. */
int ppm_serve(MPI_Comm comm, int root, pp_executor *lex, const pp_mpi_config *cfg);

#endif
