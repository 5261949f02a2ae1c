/**
 * @file ppool/mpi.h
 * @brief The same futures API across nodes, over MPI (libppool_mpi).
 *
 * Static MPI ranks: the root rank is the client and gets an ordinary
 * ::pp_executor; every rank (the root included) runs an ordinary node pool;
 * MPI carries tasks and results between ranks only. Link `ppool::mpi`
 * (CMake) or `pkg-config ppool-mpi`; the core libppool never links MPI.
 *
 * @code
 * MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
 * pp_mpi_config cfg;
 * pp_mpi_config_init(&cfg);
 * pp_executor *ex;
 * if (pp_mpi_executor_create(&ex, &cfg) == 0) {   // the root
 *     ... pp_submit / pp_map / pp_wait / pp_as_completed as on one node ...
 *     pp_executor_destroy(ex);                     // ends the other ranks' serving
 * }                                                // the others return PP_MPI_SERVED
 * MPI_Finalize();
 * @endcode
 *
 * What runs where: a task submitted at the root runs on the root's node
 * pool or on another rank's, whichever has room first; each rank holds at
 * most `credits` of the root's tasks at a time (flow control). pp_map's
 * chunks run on the root's node or are shipped whole to another rank (at
 * most `credits` chunks per rank at a time), results in input order as on
 * one node; a chunk on a rank that is lost fails with PP_ENODE at its first
 * item. Design and invariants: docs/mpi.md.
 */
#ifndef PPOOL_MPI_H
#define PPOOL_MPI_H

#include <mpi.h>

#include "../ppool.h"

#ifdef __cplusplus
extern "C" {
#endif

/** pp_mpi_executor_create's return on every rank but the root: this rank
 *  served until the root destroyed the executor. */
#define PP_MPI_SERVED 1

/** Exit status of a serving rank whose root fell silent for node_timeout
 *  (the root died): it ends its node pool and _exit()s with this status. */
#define PP_MPI_EXIT_ROOT_LOST 70

/** Configuration of pp_mpi_executor_create; fill with pp_mpi_config_init. */
typedef struct pp_mpi_config {
    /** The ranks that take part (default MPI_COMM_WORLD; duplicated inside). */
    MPI_Comm comm;
    /** The client rank (default 0). */
    int root;
    /** Node pool configuration used on every rank (pp_config_init's
     *  defaults: max_workers 0 = the rank's cores). Its start method is
     *  forced to forkserver unless it says spawn: a rank runs threads, and
     *  forking one is unsafe. */
    pp_config node;
    /** Workers of the root's own node pool: -1 = node.max_workers (default);
     *  otherwise at least 1. */
    int root_workers;
    /** The root's tasks each other rank may hold at once; 0 = that rank's
     *  worker count (default), so a task is shipped only when a worker
     *  there is free, and a future RUNNING at the root is running remotely
     *  or about to. More credits hide the round trip (throughput of short
     *  tasks; bench_mpi --credits), at the price that a shipped task can no
     *  longer be cancelled. */
    unsigned credits;
    /** Arguments and results up to this many bytes travel in the same
     *  message as their header; larger ones follow in a second message
     *  sent from, and received into, slot or arena memory (default 64 KiB). */
    size_t eager_limit;
    /** Seconds between liveness messages in each direction while no other
     *  message went (default 0.5). */
    double heartbeat;
    /** A rank (or the root, seen from a rank) silent this many seconds is
     *  lost (default 10). */
    double node_timeout;
} pp_mpi_config;

/**
 * pp_mpi_config_init - fill @c with the defaults documented on each field.
 * Any thread; does not block; needs no MPI call.
 */
PP_API void pp_mpi_config_init(pp_mpi_config *c);

/**
 * pp_mpi_executor_create - collective over @c->comm: every rank of it must
 * call it with the same root.
 *
 * Every rank creates its node pool. On the root: returns 0 and *ex is an
 * ordinary executor on which every pp_* call works (pp_submit,
 * pp_submit_ex with timeout and kill, pp_map, futures, pp_wait,
 * pp_as_completed, callbacks, pp_shutdown, pp_executor_stats);
 * pp_executor_destroy on it ends the other ranks' serving. On every other
 * rank: serves the root's tasks, and returns PP_MPI_SERVED with *ex NULL
 * once the root destroyed its executor.
 *
 * Requires MPI initialised with MPI_THREAD_MULTIPLE (an internal thread of
 * the root makes MPI calls while the application may too): -ENOTSUP
 * otherwise, on every rank. Other errors: -EINVAL (bad config, or a rank of
 * another size than the communicator says), what pp_executor_create returns
 * (then on every rank: all ranks agree before any serves). A task whose
 * function the serving rank cannot call (another binary, another version of
 * its library: build-ids differ) fails with PP_ENOFUNC, its
 * pp_exception.rank naming that rank. Blocks (serving ranks until the end).
 *
 * Failures: a worker death inside a rank is handled by that rank's pool
 * (node.on_worker_death) and reported as on one node; a rank silent for
 * node_timeout (killed, node down; run with `mpirun --enable-recovery`, since
 * Open MPI otherwise aborts the job) is lost: its tasks in flight fail with
 * PP_ENODE and it gets no more; the executor goes on with the others. After
 * a loss, pp_executor_destroy does not free the communicator (a collective
 * call that the lost rank would never join).
 *
 * Any thread of the root, one call per communicator at a time.
 */
PP_API int pp_mpi_executor_create(pp_executor **ex, const pp_mpi_config *c);

/** One rank's view, from pp_mpi_rank_stats. */
typedef struct pp_mpi_rank_info {
    int rank;           /**< the rank (in the config's communicator) */
    int alive;          /**< 0 once lost (node_timeout) */
    int workers;        /**< its node pool's workers */
    unsigned credits;   /**< tasks it may hold at once (0 for the root) */
    uint64_t in_flight; /**< the root's tasks it holds now */
    uint64_t tasks;     /**< tasks it finished (ok or failed); a pp_map lane
                             counts as one task, as a runner does on one node */
    uint64_t failed;    /**< of which failed */
    uint64_t map_chunks; /**< pp_map chunks it answered (ok or failed; 0 for
                              the root: its node's runners count none) */
} pp_mpi_rank_info;

/**
 * pp_mpi_rank_stats - per-rank counters of an MPI executor (the root's own
 * node: the root rank, counters from pp_executor_stats' worker records).
 * @ex: an executor from pp_mpi_executor_create; @rank: 0..size-1.
 * Returns 0, or -EINVAL (not an MPI executor, rank out of range). Any client
 * thread; does not block; counters each exact, the set not one instant.
 */
PP_API int pp_mpi_rank_stats(pp_executor *ex, int rank, pp_mpi_rank_info *out);

/**
 * pp_mpi_size - number of ranks of an MPI executor (its communicator's
 * size), or -EINVAL. Any client thread.
 */
PP_API int pp_mpi_size(pp_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
