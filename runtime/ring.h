/*
 * ring.h — bounded lock-free MPMC ring of 64-bit values (Vyukov's design:
 * one sequence number per cell).
 *
 * Used twice: in shared memory as the task ring (client threads produce slot
 * entries, workers consume them) and in client memory as the free-slot ring.
 * The ring holds no pointers, only values, so it works at any mapping address.
 *
 * Synchronisation table (pos = a producer's or consumer's ticket):
 *
 * | field      | written by                 | how                         | read by        | how     |
 * |------------|----------------------------|-----------------------------|----------------|---------|
 * | enq        | producers                  | CAS relaxed (ticket only)   | producers      | relaxed |
 * | deq        | consumers                  | CAS relaxed (ticket only)   | consumers      | relaxed |
 * | cell.val   | the producer owning pos    | relaxed, before seq release | that consumer  | relaxed, after seq acquire |
 * | cell.seq   | producer: pos+1 (release)  | publishes val               | consumers: acquire; == pos+1 means full |
 * |            | consumer: pos+cap (release)| frees the cell              | producers: acquire; == pos means empty   |
 *
 * A cell is owned exclusively between a successful ticket CAS and the seq
 * store. A process that dies inside that window leaves that one cell stuck
 * (see docs/design.md, "crash safety"); the rest of the ring is undamaged.
 *
 * Capacity is a power of two. Every ring in ppool holds at most one entry per
 * slot and has one cell per slot, so it is never *logically* full. But a push
 * can still find its cell unreleased: the consumer of that cell one lap
 * earlier may be preempted between its ticket CAS and its release store, and
 * ppi_ring_push then answers "full" although the ring may be empty. Pushes
 * that must not fail use ppi_ring_push_wait, which waits for that consumer.
 */
#ifndef PPOOL_RUNTIME_RING_H
#define PPOOL_RUNTIME_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ppi_ring_cell {
    _Atomic uint64_t seq;
    _Atomic uint64_t val;
} ppi_ring_cell;

typedef struct ppi_ring {
    uint64_t mask;                 /* capacity - 1; written once at init */
    alignas(64) _Atomic uint64_t enq;
    alignas(64) _Atomic uint64_t deq;
    alignas(64) ppi_ring_cell cells[];
} ppi_ring;

/* Bytes needed for a ring of @cap cells (@cap a power of two). */
static inline size_t ppi_ring_bytes(uint64_t cap)
{
    return sizeof(ppi_ring) + cap * sizeof(ppi_ring_cell);
}

/* Initialise @r for @cap cells. Not concurrent with any other use. */
void ppi_ring_init(ppi_ring *r, uint64_t cap);

/* Initialise @r for @cap cells with its tickets starting at @base (a
 * multiple of @cap) instead of 0. The sharded task ring (shards.h) gives
 * each shard its own range, so that a ticket (and a consumer's claim
 * record) names its shard. Not concurrent with any other use. */
void ppi_ring_init_at(ppi_ring *r, uint64_t cap, uint64_t base);

/* Enqueue @v. Returns false if full. Lock-free; any thread or process. */
bool ppi_ring_push(ppi_ring *r, uint64_t v);

/*
 * ppi_ring_push_wait - push into a ring that cannot be logically full,
 * waiting (spin, then yield) while the target cell is still held by a
 * preempted consumer. Returns false only after @max_ns without progress: the
 * consumer died inside its window (the caller treats that as a broken pool).
 */
bool ppi_ring_push_wait(ppi_ring *r, uint64_t v, uint64_t max_ns);

/* Dequeue into *@v. Returns false if empty. Lock-free; any thread or process. */
bool ppi_ring_pop(ppi_ring *r, uint64_t *v);

/*
 * ppi_ring_pop_rec - ppi_ring_pop that leaves a trail for crash recovery:
 * *@claim = ticket + 1 before the ticket CAS, *@entry = the value once taken,
 * *@claim = 0 once the cell is released. A process that dies in between
 * leaves enough for ppi_ring_recover (run by its parent) to finish the pop.
 */
bool ppi_ring_pop_rec(ppi_ring *r, uint64_t *v, _Atomic uint64_t *claim, _Atomic uint64_t *entry);

/*
 * ppi_ring_recover - after the consumer that left @claim died: if it held
 * ticket claim-1 (the cell is still unreleased although the dequeue position
 * passed it, and @others — the live consumers' claim words — do not name it
 * for longer than @wait_ns), release that cell and return its value in *@v
 * (the caller re-queues it). Returns true when a value was recovered.
 */
bool ppi_ring_recover(ppi_ring *r, uint64_t claim, _Atomic uint64_t *const *others, int nothers,
                      uint64_t wait_ns, uint64_t *v);

#ifdef PPOOL_FAULT_INJECTION
/* Fault-injection hook for tests (builds with PPOOL_FAULT_INJECTION only):
 * called by ppi_ring_pop_rec right after a successful ticket CAS. NULL unless
 * a test set it. Process-local. */
extern void (*ppi_ring_test_hook)(void);
#endif

/* true if a pop would likely find a value now (a hint, for spinning). */
bool ppi_ring_nonempty(ppi_ring *r);
/* About how many values the ring holds (taken tickets, including cells a
 * producer has not published yet): a hint, never larger than the truth plus
 * the pushes in flight. Reads only. */
uint64_t ppi_ring_depth(ppi_ring *r);

#endif
