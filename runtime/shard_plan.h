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
