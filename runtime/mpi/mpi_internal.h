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
 *   mpi_map.c       pp_map across ranks: the root's remote lanes (one per
 *                   credit) and a serving rank's chunk tasks
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
#include "process.h"
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
    PPM_TAG_MAP_CHUNK = 9, /* root -> rank: ppm_mchunk + the chunk (mi_wchunk) */
    PPM_TAG_MAP_RES = 10,  /* rank -> root: ppm_mres + message + pad + result */
};

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

/* A pp_map chunk for a lane (mpi_map.c): the lane's flight id and the
 * chunk's number; the chunk's bytes (ext_worker.h) follow. */
typedef struct ppm_mchunk {
    uint64_t id;
    uint64_t chunk;
} ppm_mchunk;

/* A chunk's outcome: the task's error (err != 0: the whole chunk failed)
 * and message, then, from al16(sizeof(ppm_mres) + msg_len), res_size bytes
 * of the chunk task's result. */
typedef struct ppm_mres {
    uint64_t id;
    uint64_t chunk;
    int32_t err, code, pid;
    uint32_t msg_len;
    uint64_t res_size;
} ppm_mres;

/* The slot's raw code from the public one (the root converts it back the
 * same way as for its own workers' outcomes). */
static inline int ppm_raw_code(int how, int code)
{
    return how == PP_CODE_EXIT ? code + PPI_CODE_EXIT_BASE : code;
}

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

/* A task shipped to a rank. */
typedef struct ppm_flight {
    pp_ext_item it;
    uint64_t id;
    int used;
    int kill_sent;
    int counted;         /* ppm_flight_count ran for this flight */
    int nreq;
    MPI_Request req[2];
    void *pkt;           /* header (+ inline argument) being sent */
    /* A pp_map lane (it.map_runner; mpi_map.c): at most one chunk away. */
    pp_ext_map *map;     /* NULL: an ordinary task */
    uint64_t chunk;      /* the chunk away, when chunk_away */
    int chunk_away;
    int creq_on;         /* creq is a pending send of cpkt */
    MPI_Request creq;
    void *cpkt;          /* ppm_mchunk + the chunk's bytes being sent */
} ppm_flight;

typedef struct ppm_rank {
    _Atomic int alive;   /* written by the comm thread only (plain accesses
                            there are seq_cst); stats read it relaxed */
    int workers;
    unsigned credits;
    ppm_flight *fl;      /* [credits] */
    _Atomic uint64_t in_flight;
    _Atomic uint64_t tasks, failed;
    _Atomic uint64_t chunks; /* pp_map chunks it answered (comm thread) */
    uint32_t lane0;      /* its lanes are lane0 .. lane0 + credits - 1 */
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
    uint32_t lanes;            /* map lanes: the credits of all other ranks */
} ppm_root;

extern const pp_ext_ops ppm_root_ops;

/* mpi_root.c */
int ppm_root_start(ppm_root *r);
/* A flight of rank @q starts / ends: ids, counters, drain's wake. Call
 * ppm_flight_count before publishing the flight's outcome (a client that
 * sees the future done then sees the rank's counters updated), and
 * ppm_flight_end after it (drain must not see 0 flights before the outcome
 * is published); ppm_flight_end counts if that was not done. */
void ppm_flight_begin(ppm_root *r, int q, ppm_flight *f);
void ppm_flight_count(ppm_rank *rk, ppm_flight *f, int err);
void ppm_flight_end(ppm_root *r, ppm_rank *rk, ppm_flight *f, int err);

/* mpi_map.c, at the root (comm thread) */
/* The map_lanes hook: every other rank's credits. */
uint32_t ppm_map_lanes(void *ctx);
/* A map runner taken for rank @q into flight @f: open it as a lane. */
void ppm_map_lane_open(ppm_root *r, int q, ppm_flight *f);
/* Claim and ship chunks for the lanes holding none; close idle lanes.
 * Returns true if it did anything. */
bool ppm_map_lanes_step(ppm_root *r);
/* A MAP_RES message from @src. */
void ppm_map_take_result(ppm_root *r, int src, const char *buf, size_t len);
/* Rank @q is lost: close lane @f with PP_ENODE (its chunk fails). */
void ppm_map_lane_lost(ppm_root *r, int q, ppm_flight *f, const char *msg);
/* mpi_map.c, on a serving rank */
/* A MAP_CHUNK message: submit its chunk task to @lex. 0 with *id / *f set;
 * otherwise (or when @refuse, an error to answer instead) the failure was
 * answered (MAP_RES) already. */
int ppm_map_serve_chunk(pp_executor *lex, MPI_Comm comm, int root, const char *buf, size_t len,
                        int refuse, uint64_t *id, pp_future **f);
/* Chunk task @f (for lane @id) is done: answer MAP_RES. */
void ppm_map_serve_send(MPI_Comm comm, int root, uint64_t id, pp_future *f);
/* mpi_serve.c: serve the root until STOP; returns PP_MPI_SERVED. */
int ppm_serve(MPI_Comm comm, int root, pp_executor *lex, const pp_mpi_config *cfg);

#endif
