/*
 * shards.h — the task ring, sharded: S Vyukov rings (ring.h) in the shared
 * segment instead of one, so that on a many-core node the workers of one
 * NUMA domain (or group of cores) pop from their own ring's `deq` line and
 * not from one line every worker of the machine fights for. docs/design.md,
 * "The sharded task ring", has the cost model and the protocol; the short
 * form:
 *
 *  - S is fixed at pp_executor_create (pp_config.ring_shards; 0 = chosen from
 *    the topology by ppi_shards_auto). S = 1 is exactly the single ring.
 *  - push: a slot entry goes to shard (slot index mod S). Slot indices come
 *    from the client's FIFO free-slot list, so consecutive submissions
 *    cycle over the shards, and the rule needs no shared counter (a
 *    round-robin cursor would be one more line every client thread writes).
 *    Every push (submit, the manager's re-queue of a dead worker's entry, an
 *    external worker's hand-back) uses it.
 *  - pop: a worker pops its home shard (ppi_worker.home_shard, from its
 *    place), then steals from home+1, home+2, ... (mod S) before it sleeps;
 *    every PPI_SHARD_FAIR_EVERY-th pop starts at a rotating shard instead
 *    (ppi_shard_pop_start), so no shard waits for the others to run dry.
 *  - wake: one eventcount (hdr->work_ec) for all shards. A sleeper re-checks
 *    *every* shard after announcing itself, and every push notifies after
 *    publishing, so a task pushed into a shard whose own workers all sleep
 *    or are busy wakes some sleeper, which steals it (no lost wake-up).
 *  - tickets: shard k's tickets start at k << PPI_SHARD_TICKET_SHIFT, so a
 *    consumer's crash-trail claim (ticket + 1) names both the ticket and the
 *    shard, and claims of different shards never compare equal.
 *
 * Ownership: the rings live in the segment (any process maps them); the
 * functions here keep no state. Thread safety: all lock-free, any thread of
 * any process mapping the segment, as the ring functions they call.
 */
#ifndef PPOOL_RUNTIME_SHARDS_H
#define PPOOL_RUNTIME_SHARDS_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"
#include "segment.h"
#include "shard_plan.h"

static inline uint64_t ppi_shard_ticket_base(uint32_t k)
{
    return (uint64_t)k << PPI_SHARD_TICKET_SHIFT;
}

/* The ring of shard @k (< seg->nshards). */
static inline ppi_ring *ppi_shard_ring(const ppi_seg *seg, uint32_t k)
{
    return (ppi_ring *)(void *)(seg->rings + (uint64_t)k * seg->ring_stride);
}

/*
 * ppi_tasks_push_wait - push slot entry @e into its shard (slot index mod
 * S), waiting out a consumer preempted inside its pop as ppi_ring_push_wait.
 * Returns false only after @max_ns without progress. The caller notifies
 * hdr->work_ec afterwards (the wake half of the protocol).
 */
bool ppi_tasks_push_wait(ppi_seg *seg, uint64_t e, uint64_t max_ns);

/*
 * ppi_tasks_pop_rec - pop an entry: shard @home (< S) first, then the
 * others in the order home+1, home+2, ... (mod S). With @claim/@entry, the
 * crash-recovery trail of ppi_ring_pop_rec (the claim names the shard).
 * Returns false when every shard looked empty.
 */
bool ppi_tasks_pop_rec(ppi_seg *seg, uint32_t home, uint64_t *e, _Atomic uint64_t *claim,
                       _Atomic uint64_t *entry);

/* true if some shard would likely give a value now (a hint: reads only,
 * home shard first). */
bool ppi_tasks_nonempty(const ppi_seg *seg, uint32_t home);

/* About how many tasks wait in all shards together (ppi_ring_depth of each;
 * a hint: reads only). */
uint64_t ppi_tasks_depth(const ppi_seg *seg);

/*
 * ppi_tasks_recover - ppi_ring_recover on the shard that @claim's ticket
 * belongs to (the dead consumer's trail); see ring.h. Returns true when an
 * entry was recovered into *@v (the caller re-queues it).
 */
bool ppi_tasks_recover(ppi_seg *seg, uint64_t claim, _Atomic uint64_t *const *others,
                       int nothers, uint64_t wait_ns, uint64_t *v);

#endif
