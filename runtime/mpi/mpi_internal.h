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
 *   mpi_map.c       pp_map across ranks: the root's remote lanes (a rank's
 *                   workers plus one, within its credit) and a serving
 *                   rank's chunk tasks
 *   mpi_share.c     pp_mpi_share / pp_mpi_unshare: blocks every node holds
 *   mpi_ulfm.c      ULFM's failure reports, when the MPI library has them
 *   mpi_watchdog.c  a serving rank's exit when its loop is stuck in MPI
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
#include "sync.h"
#include "ppool.h"
#include "ppool/mpi.h"

/* ---- wire ------------------------------------------------------------
 * Every message is between the root and one other rank, on the duplicated
 * communicator; MPI's non-overtaking order between two ranks is relied on
 * (the DATA messages of a TASK or RES follow it, in its records' order).
 *
 * A TASK message is a batch: one or more records, each a ppm_task header
 * followed by its argument when inline_arg; a RES message likewise holds one
 * or more records, each a ppm_res header, its message and its result when
 * inline_res. Records are packed back to back (read with memcpy: no
 * alignment). A record whose argument/result is not inline is followed, after
 * the whole TASK/RES message, by one TASK_DATA/RES_DATA message with those
 * bytes, in record order. docs/mpi.md, "Batching". */
enum {
    PPM_TAG_TASK = 1,      /* root -> rank: ppm_task records (+ inline arguments) */
    PPM_TAG_TASK_DATA = 2, /* root -> rank: one argument that was not inline */
    PPM_TAG_KILL = 3,      /* root -> rank: ppm_kill */
    PPM_TAG_STOP = 4,      /* root -> rank: end serving (no payload) */
    PPM_TAG_CANCEL = 5,    /* root -> rank: shutdown(cancel_futures) (no payload) */
    PPM_TAG_RES = 6,       /* rank -> root: ppm_res records (+ message + inline result) */
    PPM_TAG_RES_DATA = 7,  /* rank -> root: one result that was not inline */
    PPM_TAG_BEAT = 8,      /* either way: liveness (no payload) */
    /* mpi_map.c (pp_map across ranks): one chunk per message, not batched. */
    PPM_TAG_MAP_CHUNK = 9, /* root -> rank: ppm_mchunk + the chunk (mi_wchunk) */
    PPM_TAG_MAP_RES = 10,  /* rank -> root: ppm_mres + message + pad + result */
    /* mpi_share.c (pp_mpi_share); numbered apart from the task messages. */
    PPM_TAG_SHARE = 32,      /* root -> rank: ppm_share */
    PPM_TAG_SHARE_DATA = 33, /* root -> rank: the block's bytes (after its READY) */
    PPM_TAG_SHARE_ACK = 34,  /* rank -> root: ppm_share_ack (READY, then final) */
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
    uint32_t ready;      /* 1: room taken, send the bytes (err 0); 0: the answer */
} ppm_share_ack;

/* Most records in one TASK or RES message, and the byte size past which a
 * message being packed is sent and another begun (a single record larger
 * than that still goes alone: eager_limit bounds inline bytes). */
#define PPM_BATCH_MAX 64u
#define PPM_BATCH_BYTES ((size_t)64 << 10)

/* A task. Its id names its flight at the root (index << 32 | the rank's
 * count of flights begun): unique while in flight; the rank echoes it. */
typedef struct ppm_task {
    uint64_t id;
    uint64_t token;      /* function token of the root's module table */
    uint64_t timeout_ns; /* as pp_submit_opts, enforced by the serving node */
    uint64_t grace_ns;
    uint64_t arg_size;
    uint32_t inline_arg; /* 1: the argument follows this header */
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
    uint32_t held_us;    /* how long the rank held the task: from the TASK's
                            receipt to the outcome (us, saturating) */
    uint32_t run_us;     /* of which it ran, about: from when a worker was
                            free for it (us; adaptive credits) */
    uint32_t pad;
} ppm_res;

/* A pp_map chunk for a lane (mpi_map.c): the lane's flight id (as a task's:
 * index << 32 | count) and the chunk's number; the chunk's bytes
 * (ext_worker.h) follow. */
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
    uint32_t held_us;    /* as ppm_res's: the chunk task held / ran (us), */
    uint32_t run_us;     /* for adaptive credits */
} ppm_mres;

/* The slot's raw code from the public one (the root converts it back the
 * same way as for its own workers' outcomes). */
static inline int ppm_raw_code(int how, int code)
{
    return how == PP_CODE_EXIT ? code + PPI_CODE_EXIT_BASE : code;
}

/* ---- idle back-off ---------------------------------------------------
 * MPI offers no wait that also wakes on a futex, and Open MPI's blocking
 * calls spin a core: both loops poll. After a round without progress a loop
 * sleeps a fraction (1/PPM_NAP_FRACTION) of the time it has been idle, at
 * least PPM_NAP_MIN_NS, at most a cap the loop chooses: the latency a nap
 * adds to a message is then at most about 1/8 of the time that message took
 * to come (12.5 %), and an idle loop settles at one wake-up per cap. (A
 * doubling back-off adds up to 100 %: 400 us into a round trip it sleeps
 * ~400 us more.) The loops set their thread's timer slack to
 * PPM_TIMER_SLACK_NS: Linux's default (50 us) would stretch every short nap
 * to 50 us or more. Where a wake-up can come from a futex the loops sleep
 * there instead (the ring, the node's done eventcount). No spinning: on a
 * box where ranks share cores a spinning loop delays the process it waits
 * for (measured: a spin window as long as one nap costs made round trips
 * slower here). docs/mpi.md, "Polling and back-off". */
#define PPM_NAP_FRACTION 8
#define PPM_NAP_MIN_NS 4000ull
#define PPM_TIMER_SLACK_NS 1000ul

typedef struct ppm_backoff {
    uint64_t idle_ns;    /* when the loop last made progress */
} ppm_backoff;

static inline void ppm_backoff_reset(ppm_backoff *b, uint64_t now) { b->idle_ns = now; }

/* How long to sleep now, idle since b->idle_ns. */
static inline uint64_t ppm_backoff_ns(const ppm_backoff *b, uint64_t now, uint64_t cap_ns)
{
    uint64_t ns = (now - b->idle_ns) / PPM_NAP_FRACTION;
    if (ns < PPM_NAP_MIN_NS)
        ns = PPM_NAP_MIN_NS;
    return ns < cap_ns ? ns : cap_ns;
}

/* Sleep @ns. */
static inline void ppm_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* MPI_Improbe, repeated once when it finds nothing. Open MPI's probe (ob1,
 * ucx) matches what it has already received first and makes progress after:
 * a message that arrived since the last call is pulled in by this call and
 * seen only by the next. Without the second probe every message would cost
 * its receiver one more nap (measured: a remote round trip carried two
 * extra naps). Returns 1 with *m / *st set, 0 if none, -1 on an MPI error
 * (its code in *mpi_rc, for ULFM's failure reports: mpi_ulfm.c). */
static inline int ppm_probe(int src, MPI_Comm comm, MPI_Message *m, MPI_Status *st, int *mpi_rc)
{
    for (int i = 0; i < 2; i++) {
        int flag = 0;
        *mpi_rc = MPI_Improbe(src, MPI_ANY_TAG, comm, &flag, m, st);
        if (*mpi_rc != MPI_SUCCESS)
            return -1;
        if (flag)
            return 1;
    }
    return 0;
}

/* ---- the root's context --------------------------------------------- */

/* One TASK message being sent, shared by the flights it carries; freed when
 * the last of them ends (its result came: the rank received the message). */
typedef struct ppm_pkt {
    MPI_Request req;
    unsigned refs;       /* flights it carries that have not ended */
    size_t len;          /* bytes packed into buf */
    char buf[];          /* ppm_task records (+ inline arguments) */
} ppm_pkt;

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
    int counted;         /* ppm_flight_count ran for this use */
    int data_sending;    /* data_req: the argument's TASK_DATA send */
    uint64_t sent_ns;    /* when its TASK (a lane: its chunk) was sent */
    MPI_Request data_req;
    ppm_pkt *pkt;        /* the TASK message that carries it */
    /* A pp_map lane (it.map_runner; mpi_map.c): at most one chunk away. */
    pp_ext_map *map;     /* NULL: an ordinary task */
    uint32_t lane;       /* its index in the rank's lanes (lane0 + lane) */
    uint64_t chunk;      /* the chunk away, when chunk_away */
    int chunk_away;
    int creq_on;         /* creq is a pending send of cpkt */
    MPI_Request creq;
    void *cpkt;          /* ppm_mchunk + the chunk's bytes being sent */
    /* Its result's RES_DATA being received (rpending), without blocking
     * the comm thread: straight into rdst (the slot's arena block), or into
     * rbounce (heap) when rdst is the slot's inline area. Published when
     * it completes (poll_data, mpi_root.c). */
    int rpending;
    MPI_Request rreq;
    void *rdst, *rbounce;
    uint64_t rsize, rposted_ns;
    int32_t rcode, rpid;
} ppm_flight;

/* A data message received only to be dropped (no room for it, or its rank
 * was declared lost): the next one from the same rank must not match in
 * its place (MPI's order per pair), so it is received, not skipped. */
typedef struct ppm_drop {
    MPI_Request req;
    void *buf;
    int src;
    uint64_t posted_ns;
} ppm_drop;

typedef struct ppm_rank {
    _Atomic int alive;   /* written by the comm thread only (plain accesses
                            there are seq_cst); stats read it relaxed */
    int workers;
    unsigned credits;    /* fixed credits, or the adaptive ones' cap */
    bool adaptive;       /* cfg.credits 0: limit follows the round trip */
    unsigned limit;      /* tasks it may hold now (<= credits) */
    uint64_t transit_ns; /* adaptive: mean time a task travels (its flight
                            time less the time the rank held it) */
    uint64_t run_ns;     /* adaptive: mean time a task runs there */
    uint64_t quiet_ns;   /* adaptive: its last result, or when it last
                            began to hold tasks if later */
    ppm_flight *fl;      /* [credits] */
    unsigned nused;      /* flights in use (comm thread) */
    uint32_t begun;      /* flights begun (the low half of their ids) */
    unsigned next_free;  /* where flight_free looks first */
    ppm_flight *batch[PPM_BATCH_MAX]; /* taken this round, not yet sent */
    unsigned nbatch;
    size_t batch_bytes;  /* the TASK message they make */
    _Atomic uint64_t in_flight;
    _Atomic uint64_t tasks, failed;
    _Atomic uint64_t retried; /* its tasks put back on the ring when it was lost */
    _Atomic uint64_t chunks; /* pp_map chunks it answered (comm thread) */
    /* pp_map lanes (mpi_map.c): flights too, so they count in nused and
     * take a credit each; at most lane_cap at once. */
    uint32_t lane0;      /* its lanes are lane0 .. lane0 + lane_cap - 1 */
    uint32_t lane_cap;   /* min(workers + PPM_LANE_PREFETCH, credits) */
    uint32_t nlanes;     /* lanes open (comm thread) */
    ppm_flight **lane;   /* [lane_cap]: the flight of each open lane, or NULL */
    uint64_t heard_ns;   /* last message from it */
    unsigned npending;   /* flights with rpending */
    uint64_t data_ns;    /* when a data message from it last completed (or 0) */
    bool stalled;        /* a data message it announced made no progress for
                            node_timeout: lost at the next check_losses */
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
    uint32_t lanes;            /* map lanes: every other rank's lane_cap */
    ppm_drop *drops;           /* data being received to be dropped (comm thread) */
    unsigned ndrops, drops_cap;
} ppm_root;

/* Adaptive credits (cfg.credits 0): a rank of w workers may hold w plus
 * as many tasks as its workers run in one transit time, at most this many
 * times w in all. docs/mpi.md, "Credits". */
#define PPM_CREDITS_ADAPT_MAX 64u

/* pp_map: a rank runs at most its workers plus this many chunks at once,
 * the extra ones waiting there (prefetch). docs/mpi.md, "pp_map across
 * ranks". */
#define PPM_LANE_PREFETCH 1u

/* ---- a serving rank's watchdog (mpi_watchdog.c) ---------------------- */
typedef struct ppm_watchdog {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cv;       /* CLOCK_MONOTONIC; signalled by stop */
    bool stop;               /* under lock */
    uint64_t limit_ns;       /* node_timeout */
    _Atomic uint64_t pulse_ns; /* the serving loop's last turn */
} ppm_watchdog;

/* Start the thread: it _exit()s the rank with PP_MPI_EXIT_ROOT_LOST once no
 * pulse came for @limit_ns. Returns 0 or -errno (then nothing watches). */
int ppm_watchdog_start(ppm_watchdog *w, uint64_t limit_ns);
/* The serving loop is alive at @now (each turn). */
static inline void ppm_watchdog_pulse(ppm_watchdog *w, uint64_t now)
{
    /* relaxed: a clock value compared with a timeout; it publishes nothing. */
    atomic_store_explicit(&w->pulse_ns, now, memory_order_relaxed);
}
/* Stop and join the thread (no-op if it did not start). */
void ppm_watchdog_stop(ppm_watchdog *w);

extern const pp_ext_ops ppm_root_ops;

/* mpi_root.c */
int ppm_root_start(ppm_root *r);
/* A flight of rank @rk starts / ends: ids, nused, counters, drain's wake.
 * ppm_flight_begin before the take's in_take ends (drain counts it from
 * there). Call ppm_flight_count before publishing the flight's outcome (a
 * client that sees the future done then sees the rank's counters updated),
 * and ppm_flight_end after it (drain must not see 0 flights before the
 * outcome is published); ppm_flight_end counts if that was not done. Comm
 * thread only. */
void ppm_flight_begin(ppm_root *r, ppm_rank *rk, ppm_flight *f);
void ppm_flight_count(ppm_rank *rk, ppm_flight *f, int err);
void ppm_flight_end(ppm_root *r, ppm_rank *rk, ppm_flight *f, int err);
/* All three for flight @f of rank @q: count, publish the outcome (err,
 * code, pid, message, res_size bytes already in its result space), end. */
void ppm_flight_outcome(ppm_root *r, int q, ppm_flight *f, int err, int code, int pid,
                        const char *msg, size_t msg_len, size_t res_size);
/* Adaptive credits: a flight of @rk sent at @sent_ns was answered at @now
 * (@held_us / @run_us as the rank reported). Comm thread only. */
void ppm_credits_learn(ppm_rank *rk, uint64_t sent_ns, uint64_t now, uint32_t held_us,
                       uint32_t run_us);

/* mpi_map.c, at the root (comm thread) */
/* The map_lanes hook: every other rank's lane_cap (fixed at create). */
uint32_t ppm_map_lanes(void *ctx);
/* May rank @rk open one more lane now (pp_ext_take's runner_ok)? */
bool ppm_map_lane_free(const ppm_rank *rk);
/* A map runner taken for rank @q into flight @f (begun): open it as a
 * lane, or fail it. */
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
/* Chunk task @f (for lane @id) is done: answer MAP_RES (@held_us /
 * @run_us: as a RES record's). */
void ppm_map_serve_send(MPI_Comm comm, int root, uint64_t id, pp_future *f, uint32_t held_us,
                        uint32_t run_us);
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
