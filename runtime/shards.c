/* shards.c — the sharded task ring: push rule, pop-then-steal, the
 * any-shard hint, crash recovery by shard, and the automatic shard count.
 * See shards.h and docs/design.md ("The sharded task ring"). */
#include "ppool.h"
#include "shards.h"

bool ppi_tasks_push_wait(ppi_seg *seg, uint64_t e, uint64_t max_ns)
{
    /* The slot index picks the shard: no shared cursor to write. The entry
     * is published by the ring's release store of the cell's seq. */
    uint32_t k = seg->nshards > 1 ? ppi_entry_idx(e) % seg->nshards : 0;
    return ppi_ring_push_wait(ppi_shard_ring(seg, k), e, max_ns);
}

bool ppi_tasks_pop_rec(ppi_seg *seg, uint32_t home, uint64_t *e, _Atomic uint64_t *claim,
                       _Atomic uint64_t *entry)
{
    uint32_t n = seg->nshards;
    if (n <= 1) /* the single ring: exactly today's pop */
        return ppi_ring_pop_rec(ppi_shard_ring(seg, 0), e, claim, entry);
    /* Home first, then steal in a fixed order starting after it: each
     * worker's first victim is its neighbour, so stealers of one empty
     * shard spread over the others instead of all hitting shard 0. An
     * empty shard costs one read of its deq line and head cell (no write:
     * ppi_ring_pop_rec's CAS is only tried on a full-looking cell). */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = home + i < n ? home + i : home + i - n;
        if (ppi_ring_pop_rec(ppi_shard_ring(seg, k), e, claim, entry))
            return true;
    }
    return false;
}

bool ppi_tasks_nonempty(const ppi_seg *seg, uint32_t home)
{
    uint32_t n = seg->nshards;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = home + i < n ? home + i : home + i - n;
        if (ppi_ring_nonempty(ppi_shard_ring(seg, k)))
            return true;
    }
    return false;
}

uint64_t ppi_tasks_depth(const ppi_seg *seg)
{
    uint64_t depth = 0;
    for (uint32_t k = 0; k < seg->nshards; k++)
        depth += ppi_ring_depth(ppi_shard_ring(seg, k));
    return depth;
}

bool ppi_tasks_recover(ppi_seg *seg, uint64_t claim, _Atomic uint64_t *const *others,
                       int nothers, uint64_t wait_ns, uint64_t *v)
{
    if (claim == 0)
        return false;
    /* The ticket's range names its shard (shard k's tickets start at
     * k << PPI_SHARD_TICKET_SHIFT), and tickets of different shards differ,
     * so the others' claim words are compared as with one ring. */
    uint64_t k = (claim - 1) >> PPI_SHARD_TICKET_SHIFT;
    if (k >= seg->nshards)
        return false; /* not a ticket of this segment: nothing to finish */
    return ppi_ring_recover(ppi_shard_ring(seg, (uint32_t)k), claim, others, nothers, wait_ns, v);
}

int ppi_shards_auto(int ncores, int nnuma)
{
    int g = PPI_SHARD_GROUP_CORES, s;
    if (ncores < 1)
        return 1;
    if (nnuma > 1) {
        int per = ncores / nnuma; /* domains are assumed alike */
        s = nnuma * (per >= 2 * g ? per / g : 1);
    } else {
        s = ncores >= 2 * g ? ncores / g : 1;
    }
    return s < 1 ? 1 : s > PPI_MAX_SHARDS ? PPI_MAX_SHARDS : s;
}

uint32_t ppi_shard_home(int core_rank, int ncores, int widx, int nshards)
{
    if (nshards <= 1)
        return 0;
    /* Unpinned, or more shards than cores (a count forced by ring_shards):
     * spread by position, so that every shard has home workers. */
    if (core_rank < 0 || ncores < 1 || core_rank >= ncores || nshards > ncores)
        return (uint32_t)(widx < 0 ? 0 : widx % nshards);
    /* Block b holds cores [b * ncores / S, (b + 1) * ncores / S). */
    return (uint32_t)(((int64_t)core_rank * nshards) / ncores);
}

_Static_assert(PPI_MAX_SHARDS == PP_RING_SHARDS_MAX, "ppool.h and shard_plan.h disagree");
