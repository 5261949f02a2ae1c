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
 * most `credits` of the root's tasks at a time (flow control; adaptive by
 * default); several tasks, and several outcomes, share one MPI message when
 * they can. pp_map's chunks run on the root's node or are shipped whole to
 * another rank (at most its workers + 1 chunks per rank at a time, within
 * its credit), results in input order as on one node; a chunk on a rank
 * that is lost fails with PP_ENODE at its first item. Design and
 * invariants: docs/mpi.md.
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
    /** The root's tasks each other rank may hold at once (flow control:
     *  memory at the root for shipped tasks stays bounded by it).
     *  0 (default) = adaptive, per rank: its worker count w, plus as many
     *  as its workers finish while a task travels (measured: the round
     *  trip's transit time over the tasks' run time there), at most 64 w.
     *  So a future RUNNING at the root is running on that rank or waits
     *  there about one transit time (its w workers finish the tasks ahead
     *  of it meanwhile); tasks long against the transit time get none extra
     *  (when run > 2 w transit): RUNNING means running there or about to,
     *  as with credits = w. > 0: exactly this many (more hide the
     *  round trip for short tasks — bench_mpi --tuned-credits — at the price
     *  that a shipped task may wait there behind others). Either way a
     *  shipped task is not cancellable: pp_future_cancel returns false for
     *  it, as for a task a worker started. pp_mpi_rank_info.credits reports
     *  the bound (64 w when adaptive). A pp_map lane of a rank (it holds one
     *  chunk there at a time) takes one credit as a task does; a rank runs
     *  at most w + 1 lanes (fewer if credits is smaller). */
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
 * PP_ENODE, or are queued again for the other ranks and the root's node
 * when submitted with pp_submit_opts.retries left (a pp_map chunk it held
 * fails with PP_ENODE at its first item, the items before it delivered);
 * it gets no more; the executor goes on with the others. After
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
    unsigned credits;   /**< tasks it may hold at once, at most (0 for the root) */
    uint64_t in_flight; /**< the root's tasks it holds now (and its open pp_map lanes) */
    uint64_t tasks;     /**< tasks it finished (ok or failed); a pp_map lane
                             counts as one task, as a runner does on one node */
    uint64_t failed;    /**< of which failed */
    uint64_t retried;   /**< tasks it held when it was lost that were queued
                           again (pp_submit_opts.retries): not counted in
                           tasks; they finish elsewhere */
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
 * pp_mpi_share - copy @size bytes at @data once into every node's shared
 * arena and register each copy under one handle, so that a task reads the
 * block in place with pp_task_shared(t, *handle, &n) wherever it runs: a
 * read-only table every task needs crosses each rank once, not with every
 * task.
 * @ex: an MPI executor (its root), or an ordinary one: then the block is
 *   placed on that node only, so the same program runs on one node.
 * @data, @size: the bytes (copied; 1 <= @size <= INT_MAX: one MPI message).
 * @handle: receives the handle (never 0).
 *
 * The root copies @data into its arena (pp_shm_alloc) and registers it
 * (pp_shm_share); its comm thread sends the bytes, straight from that block,
 * to every live rank, which receives them straight into a block of its own
 * arena, registers it under the same handle and answers. The call returns
 * once every live rank answered (or was lost: a rank lost meanwhile gets
 * no more tasks, so it needs no copy): every task submitted after it
 * returns finds the block on whichever node runs it. All or nothing: if a
 * rank cannot hold it (no arena room), the block is withdrawn everywhere
 * and that rank's error is returned.
 * Returns 0; -EINVAL (NULL argument, @size 0); PP_ETOOBIG (@size over
 * INT_MAX); -ENOMEM (no room in the root's arena, or a rank's); -ENOSPC
 * (PP_SHARE_MAX blocks shared); PP_EFORKED. Any client thread of the root,
 * not concurrently with pp_executor_destroy. Blocks for one round trip and
 * the transfer to every rank (at most node_timeout longer if a rank dies).
 * The blocks are freed by pp_mpi_unshare, or with each node pool at
 * pp_executor_destroy.
 */
PP_API int pp_mpi_share(pp_executor *ex, const void *data, size_t size, uint64_t *handle);

/**
 * pp_mpi_unshare - withdraw a handle from pp_mpi_share (only those: it
 * frees the block, which pp_shm_share's blocks are not) on every node and
 * free the copies. Call it once no task that reads the block is queued or
 * running (their futures are done): a task that looks the handle up
 * afterwards gets NULL, and one still reading the block would read freed
 * memory. The root's copy is withdrawn and freed before the call returns;
 * the other ranks' as each receives the message, before any task
 * submitted after the call.
 * Returns 0; -ENOENT (nothing is shared under @handle); -EINVAL;
 * PP_EFORKED. Any client thread of the root; blocks until the messages are
 * sent.
 */
PP_API int pp_mpi_unshare(pp_executor *ex, uint64_t handle);

/**
 * pp_mpi_size - number of ranks of an MPI executor (its communicator's
 * size), or -EINVAL. Any client thread.
 */
PP_API int pp_mpi_size(pp_executor *ex);

#ifdef __cplusplus
}
#endif

#endif
