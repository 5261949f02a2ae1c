/*
 * ext_worker.h — external workers: executors of an ordinary pool's tasks that
 * are not worker processes of its node (libppool_mpi's remote ranks).
 *
 * NOT a public interface. These functions are exported from libppool (with
 * the pp_ext_ prefix, since only pp_ symbols may be) for libppool_mpi alone,
 * which is built from the same source tree; no stability is promised and
 * nothing installed declares them.
 *
 * An external worker is a thread of the client process (the MPI layer's
 * comm thread) that takes entries from the pool's task ring exactly as a
 * worker process does: it claims the slot QUEUED -> RUNNING(xid), where xid
 * (PPI_EXT_WID_BASE + n) names no ppi_worker position, so the manager never
 * attributes a death, a kill or a timeout to it; it has the task run
 * elsewhere; and it publishes the outcome RUNNING|KILLING(xid) -> DONE/FAILED
 * (or RECLAIM for an orphan) with the same CAS, wake and completion-ring push
 * as worker.c. So every client-side call (pp_wait, as_completed, callbacks,
 * cancel of queued tasks, shutdown) works on its tasks unchanged.
 * docs/mpi.md has the invariants.
 */
#ifndef PPOOL_RUNTIME_EXT_WORKER_H
#define PPOOL_RUNTIME_EXT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ppool.h"

/* Worker ids of external workers in the slot state word: at or above this,
 * below PPI_SWEEPER. A pool has at most 4096 worker positions. */
#define PPI_EXT_WID_BASE 0x8000u
#define PPI_EXT_WID_MAX 0x7ff0u /* external workers one pool may have */

/* Hooks the core calls on an executor with an external-worker layer. */
typedef struct pp_ext_ops {
    /* Before stop is sent to the workers (pp_shutdown, the service thread):
     * take no more entries from the ring (the node's own workers drain it).
     * Any client thread; must not block long. */
    void (*before_stop)(void *ctx);
    /* pp_shutdown(wait=true), after the manager was reaped: return once no
     * task taken from the ring is still in flight. */
    void (*drain)(void *ctx);
    /* pp_executor_destroy, after pp_shutdown(wait=true), before the handle's
     * reference is dropped: end the layer (join its threads, free it). */
    void (*destroy)(void *ctx);
    /* pp_executor_stats: tasks the layer finished and how many failed. */
    void (*stats)(void *ctx, uint64_t *tasks, uint64_t *failed);
    /* pp_map_begin: how many remote *lanes* the layer runs a map's chunks
     * on (each takes runner entries from the ring and holds at most one
     * chunk at a time: pp_ext_map_*). The map then counts that many runners
     * more than the node's workers, so the layer must never run more lanes
     * at once than this (a lane's index is below it: pp_ext_map_open), and
     * the value must not change while the layer is attached. NULL: maps
     * stay on the node (runner entries are handed back to the ring). Any
     * client thread; must not block. */
    uint32_t (*map_lanes)(void *ctx);
} pp_ext_ops;

/* A ring entry taken by an external worker. */
typedef struct pp_ext_item {
    uint32_t idx, gen;       /* the slot use (ring entry) */
    uint64_t token;          /* function token (the pool's module table) */
    const void *arg;         /* the argument in the slot or the arena: valid
                                until the item is published */
    size_t arg_size;
    uint64_t timeout_ns;     /* 0 = none (as the slot's) */
    uint64_t grace_ns;
    bool map_runner;         /* a pp_map runner (the layer has map_lanes):
                                drive it with pp_ext_map_open ... close, not
                                pp_ext_publish */
} pp_ext_item;

/* Attach the layer to @ex (once, right after pp_executor_create, before any
 * submission): @ops/@ctx outlive the executor's use of them; @local_rank is
 * what pp_exception.rank reports for tasks the node's own workers ran.
 * Returns 0, or -EALREADY. Not thread-safe with other calls on @ex. */
PP_API int pp_ext_attach(pp_executor *ex, const pp_ext_ops *ops, void *ctx, int local_rank);

/* The context attached with @ops, or NULL (not attached, or with other
 * hooks: another layer's executor). Any client thread. */
PP_API void *pp_ext_ctx(const pp_executor *ex, const pp_ext_ops *ops);

/* true once pp_shutdown(cancel_futures=true) was called on @ex: running
 * tasks should stop (what pp_task_should_stop reports to local tasks). */
PP_API bool pp_ext_cancelling(pp_executor *ex);

/* The pool's module table (what tokens index) as bytes to send to another
 * process: *bytes receives its size. Valid for the executor's lifetime. */
PP_API const void *pp_ext_modtab(pp_executor *ex, size_t *bytes);

/* In another process: adopt a copy of a module table received from a root
 * (pp_ext_modtab) and resolve it against this image (by build-id); returns
 * 0 or -ENOMEM. Then pp_ext_fn_decode turns that table's tokens into local
 * function pointers. One table per process; not thread-safe. */
PP_API int pp_ext_modtab_adopt(const void *tab, size_t bytes);
PP_API pp_fn pp_ext_fn_decode(uint64_t token, const char **why);
/* Free the adopted table. */
PP_API void pp_ext_modtab_drop(void);

/* pp_submit_ex with an argument that already lies in @ex's arena: @block
 * from pp_shm_alloc(ex, size, &block) (size > the inline size). When the
 * task goes straight into a slot the block becomes its argument block (no
 * copy) and is freed with the slot; otherwise (the backlog, an error) it is
 * copied as pp_submit does, and freed here. Either way the caller no longer
 * owns @block. Returns as pp_submit_ex. Any client thread. */
PP_API int pp_ext_submit_adopt(pp_executor *ex, pp_fn fn, void *block, size_t size,
                               const pp_submit_opts *opts, pp_future **out);

/* Register @block (pp_shm_alloc on @ex, @size bytes, already written) under
 * @handle, a handle another node's pp_shm_share made (pp_mpi_share: every
 * rank holds its copy under the root's handle). Returns 0, -EEXIST (the
 * handle's entry is taken here), -EINVAL. Any client thread. */
PP_API int pp_ext_share_as(pp_executor *ex, uint64_t handle, void *block, size_t size);

/* Take one entry from the ring for external worker @xid (< PPI_EXT_WID_MAX)
 * and claim its slot RUNNING(xid). Returns 1 with *it filled, 0 when the
 * ring had nothing for it: empty, a stale/cancelled entry (recycled here as a
 * worker would), or a pp_map runner that @xid cannot run now: the layer has
 * no map_lanes hook, or @runner_ok is false (all of @xid's lanes are open).
 * Such a runner is handed back to the ring (its tail) for the node's workers
 * or a later take (*handed_back set). Otherwise a runner is claimed like a
 * task and returned with it->map_runner set.
 * The client thread that acts as @xid only. */
PP_API int pp_ext_take(pp_executor *ex, uint32_t xid, pp_ext_item *it, bool runner_ok,
                       bool *handed_back);

/* The item's slot: 1 still RUNNING(xid), 2 KILLING(xid) (pp_future_kill;
 * *grace_ns receives the grace), 0 no longer ours (a broken-pool sweep). */
PP_API int pp_ext_state(pp_executor *ex, uint32_t xid, const pp_ext_item *it, uint64_t *grace_ns);

/* Space for the item's result of @size bytes (inline or an arena block
 * recorded in the slot), to receive it in place; NULL: too big (PP_ETOOBIG)
 * or no arena room (-ENOMEM), in *err. Then pp_ext_publish. */
PP_API void *pp_ext_result_space(pp_executor *ex, const pp_ext_item *it, size_t size, int *err);

/* Whether @p (from pp_ext_result_space) is the slot's inline result area
 * (else an arena block). */
PP_API bool pp_ext_result_is_inline(pp_executor *ex, const pp_ext_item *it, const void *p);

/* Take the item's arena result block out of its slot without freeing it:
 * for a block another agent (MPI) may still write after we gave up on it.
 * The block stays allocated for the pool's life (a bounded leak, one per
 * such failure); the slot's next use gets fresh space. */
PP_API void pp_ext_result_abandon(pp_executor *ex, const pp_ext_item *it);

/* Publish the item's outcome: err 0 = success with the @res_size bytes
 * written into pp_ext_result_space (res_size 0: none); else err/code/pid and
 * @msg (@msg_len bytes, clipped to PP_MESSAGE_MAX). @rank is what
 * pp_exception.rank reports. A slot found KILLING(xid) fails PP_EKILLED as a
 * killed worker's does; one no longer ours is left alone (its result block
 * freed). After this the item is gone. */
PP_API void pp_ext_publish(pp_executor *ex, uint32_t xid, const pp_ext_item *it, int err,
                           int code, int pid, int rank, const char *msg, size_t msg_len,
                           size_t res_size);

/* The item's rank was lost: if its slot is still RUNNING(xid), not
 * orphaned, and has runs left (pp_submit_opts.retries), take one, put the
 * slot back to QUEUED (same generation: the future, its waiters and
 * callbacks do not see a new task) and its entry back on the ring, and
 * return 1: the item is gone, another worker or external worker runs it.
 * Otherwise return 0 and change nothing: publish the failure. The caller
 * must guarantee that the pool's workers still take from the ring (the
 * MPI layer: not after before_stop, under the same in_take guard as
 * pp_ext_take). The client thread acting as @xid only. */
PP_API int pp_ext_requeue(pp_executor *ex, uint32_t xid, const pp_ext_item *it);

/* Sleep up to @ns nanoseconds unless the ring is non-empty or stop is set
 * (the eventcount idle workers sleep on, so pp_submit wakes it). */
PP_API void pp_ext_wait_work(pp_executor *ex, uint64_t ns);

/* Sleep until a task of @ex finishes, for a client thread that polls its
 * futures (a serving rank's loop): every slot that finishes notifies the
 * pool's done eventcount. The waiter's protocol, so that no completion is
 * missed: seq = pp_ext_done_prepare(ex); re-check its futures
 * (pp_future_done); then pp_ext_done_sleep(ex, seq, ns) — returns at a
 * completion after prepare, after @ns nanoseconds, or spuriously — or
 * pp_ext_done_cancel(ex) if one was done. Any client thread. */
PP_API uint32_t pp_ext_done_prepare(pp_executor *ex);
PP_API void pp_ext_done_sleep(pp_executor *ex, uint32_t seq, uint64_t ns);
PP_API void pp_ext_done_cancel(pp_executor *ex);

/* true once the pool is broken (PP_EBROKEN). */
PP_API bool pp_ext_broken(pp_executor *ex);

/* ---- pp_map chunks on remote lanes (map_ext.c) ---------------------------
 * An item taken with it->map_runner is a map's runner task. The external
 * worker acts as that runner on behalf of a remote node: it claims chunks
 * from the map's window (the same CAS on `next`, with the runner slot's cur
 * set first, as map_runner.c), ships each chunk's items as bytes, and writes
 * the results back where a runner would, then the chunk's done word
 * (release) and the client's wake. One chunk at a time per lane, so the
 * layer's lanes per node bound its chunks in flight. If the lane is closed
 * with an error while it holds a chunk (rank lost), the client's dead-runner
 * logic (map_wait.c) fails that chunk with the runner's error at its first
 * item. All calls: the client thread that acts as the item's xid. */
typedef struct pp_ext_map pp_ext_map;

/* Open runner item @it as lane @lane (< the layer's map_lanes at the map's
 * begin). NULL with *err: a bad runner argument (the item must then be
 * published with that error by pp_ext_publish), -ENOMEM. */
PP_API pp_ext_map *pp_ext_map_open(pp_executor *ex, uint32_t xid, const pp_ext_item *it,
                                   uint32_t lane, int *err);

/* Claim the lane's next chunk: 1 (*chunk set), 0 nothing claimable now (call
 * again later), -1 close the lane (pp_ext_map_close): the map is closed, the
 * pool stops or broke, or nothing was claimable for PPI_MAP_LANE_IDLE_NS.
 * Only while the lane holds no chunk. */
PP_API int pp_ext_map_claim(pp_ext_map *mh, uint64_t *chunk);

/* The claimed chunk as bytes to ship (a malloc'd buffer, *bytes its size,
 * the caller frees it): @head bytes for the caller's header (rounded up to
 * 16), then the chunk: its items copied from the window's blob or the
 * caller's shared arrays, and the map's context. NULL: -ENOMEM in *err. */
PP_API void *pp_ext_map_chunk_inputs(pp_ext_map *mh, uint64_t chunk, size_t head, size_t *bytes,
                                     int *err);

/* The chunk's outcome: @err != 0 (the task running it failed as a whole:
 * PP_EWORKER, PP_ENOFUNC, ...; code/pid/msg as a task's) fails it at its
 * first item; else @res/@len is the chunk task's result (pp_ext_map_res_bytes
 * of it), whose results are written into the window and whose item error,
 * if any, fails the chunk at that item. Then the lane holds no chunk. */
PP_API void pp_ext_map_chunk_done(pp_ext_map *mh, uint64_t chunk, const void *res, size_t len,
                                  int err, int code, int pid, const char *msg, size_t msg_len);

/* Close the lane and publish its runner task: @err 0 (it ran out of work),
 * else the lane's error (PP_ENODE for a lost rank: a chunk it still holds
 * fails with it). @rank: pp_exception.rank. Frees @mh. */
PP_API void pp_ext_map_close(pp_ext_map *mh, int err, int rank, const char *msg);

/* On a serving node: the task function that runs a chunk (its argument
 * the bytes of pp_ext_map_chunk_inputs, localized). */
PP_API int pp_ext_map_chunk_task(pp_task *t);

/* On a serving node, before submitting pp_ext_map_chunk_task: check the
 * received chunk (@bytes) and turn its function token (the root's table)
 * into @lex's. 0, -EINVAL (malformed), PP_ENOFUNC (*why says why). */
PP_API int pp_ext_map_chunk_localize(pp_executor *lex, void *chunk, size_t bytes,
                                     const char **why);

/* The bytes of a chunk task's result (@size as the future reports) that
 * must travel back; 0 if it is malformed. */
PP_API size_t pp_ext_map_res_bytes(const void *res, size_t size);

#endif
