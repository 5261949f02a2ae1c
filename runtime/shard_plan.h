/*
 * shard_plan.h — the pure half of the sharded task ring (shards.h): the
 * bounds, the automatic shard count and the home shard of a worker. No
 * state, no system call: unit-tested on synthetic topologies.
 */
#ifndef PPOOL_RUNTIME_SHARD_PLAN_H
#define PPOOL_RUNTIME_SHARD_PLAN_H

#include <stdint.h>

/* The most shards a segment may have (PP_RING_SHARDS_MAX in ppool.h). */
#define PPI_MAX_SHARDS 64
/* Shard k's tickets are k << 56 .. : 2^56 pops per shard before its range
 * runs into the next one (over 20 years at 100 M pops/s). */
#define PPI_SHARD_TICKET_SHIFT 56
/* Automatic rule: on a single NUMA domain, one shard per this many cores,
 * and only from twice that many cores on (see ppi_shards_auto). */
#define PPI_SHARD_GROUP_CORES 16

/* Fairness: every this many pops (a power of two) a worker starts its scan
 * at a rotating shard instead of its home (ppi_shard_pop_start). */
#define PPI_SHARD_FAIR_EVERY 16

/*
 * ppi_shard_pop_start - where a worker's next pop starts: its @home, except
 * every PPI_SHARD_FAIR_EVERY-th call (counted in *@tick, the caller's
 * own), when it starts at the next shard of a rotation over the others.
 * Without it a shard without home workers, or whose home workers are all
 * busy, is served only when every other worker's home runs dry: under a
 * sustained stream (a backlog refilling the home shards) its tasks would
 * wait without bound. With it, a non-empty shard's head is taken within
 * about PPI_SHARD_FAIR_EVERY x (S - 1) pops of any one worker. Pure.
 */
static inline uint32_t ppi_shard_pop_start(uint32_t home, uint32_t nshards, uint32_t *tick)
{
    if (nshards <= 1)
        return 0;
    uint32_t t = ++*tick;
    if (t % PPI_SHARD_FAIR_EVERY)
        return home;
    /* A rotation over the other shards: with 2, always the other one. */
    return (home + 1 + (t / PPI_SHARD_FAIR_EVERY) % (nshards - 1)) % nshards;
}

/*
 * ppi_shards_auto - the automatic shard count (pp_config.ring_shards = 0)
 * for a machine with @ncores usable physical cores in @nnuma NUMA domains
 * (0 or 1 = one domain or unknown). Pure.
 *  - several domains: one shard per domain, each domain of at least
 *    2 x PPI_SHARD_GROUP_CORES cores split further into groups of
 *    PPI_SHARD_GROUP_CORES;
 *  - one domain: one shard below 2 x PPI_SHARD_GROUP_CORES cores, else one
 *    per PPI_SHARD_GROUP_CORES cores.
 * At most PPI_MAX_SHARDS, at least 1.
 */
int ppi_shards_auto(int ncores, int nnuma);

/*
 * ppi_shard_home - the home shard of worker position @widx: the shard of its
 * core's group, cores taken in topology order (@core_rank of @ncores usable
 * cores) cut into @nshards equal blocks — one per NUMA domain when the shards
 * are the domains (hwloc's logical order lists a domain's cores together),
 * a group of consecutive cores otherwise. Unpinned workers (@core_rank < 0),
 * and all workers when there are more shards than cores (a forced count),
 * are spread as @widx mod @nshards. Pure.
 */
uint32_t ppi_shard_home(int core_rank, int ncores, int widx, int nshards);

#endif
