/*
 * map_internal.h — what the parts of pp_map share: the shared block's
 * layout, the client's iterator, and the calls between the files.
 *
 * pp_map: Executor.map over chunks that runner tasks claim from a window in
 * shared memory.
 *
 * Why not one task per chunk: a task costs about 1 µs of client time
 * (future, slot, ring, wake, detach, release) while one SHA-512 of a word
 * costs 0.35 µs, so chunksize 1 would be several times slower than OpenMP's
 * schedule(dynamic, 1). Instead a map allocates one block of shared memory
 * (the window), stages the chunks' inputs into it, and submits at most one
 * *runner* task per worker with pp_submit. A runner claims chunks one at a
 * time with one CAS on the window's `next` ticket (OpenMP's dynamic schedule
 * does the same with a fetch-and-add), runs the item function on each item,
 * stores the chunk's done word, and returns once nothing is claimable for
 * MI_IDLE_NS. The chunk stays the unit of scheduling, cancellation and error
 * reporting, exactly as a task per chunk would be; see docs/map.md.
 *
 * The files:
 *   map_client.c    pp_map_begin / pp_map_next / pp_map_end / pp_map: set-up,
 *                   delivery of results in order, copying out
 *   map_wait.c      the client's watch: done words, runners (start, reap,
 *                   dead ones), waiting for a chunk, stopping, chunk errors
 *   map_stage.c     staging: gather the inputs of a batch, lay out and fill
 *                   its blob, publish it
 *   map_runner.c    the runner task (in the workers), pp_map_raise,
 *                   pp_map_should_stop
 *   map_geometry.c  pure sizes: window, batches, block offsets, blob layout,
 *                   staging ring
 *
 * Geometry. Chunk c holds items [c*cs, min((c+1)*cs, items_pub)). Chunks
 * are staged in *batches* of bc consecutive chunks (bc*cs >= ~1024 items
 * when possible): one blob per batch holds the batch's copied inputs and its
 * results, so the client's cost per chunk is a few stores, not an allocation.
 * Batch b lives in batch slot b % nb; chunk c's done word in done[c % nrec]
 * (nrec = nb * bc chunks in flight at most).
 *
 * Shared block (one pp_shm_alloc per map):
 *   mi_hdr | ctx | done[nrec] | batch_blob[nb] | mi_rslot[nrun] | mi_errslot[nwork]
 * plus a staging ring (a second block) for the blobs. Inputs and outputs
 * already in shared memory are used in place and take no blob space.
 *
 * Synchronisation:
 * | what | writer | how | reader | how |
 * | blobs, batch_blob, items_pub | client | plain / relaxed, then `avail` seq_cst store | runner | `avail` acquire load |
 * | `next` ticket = the claim | runners: CAS n -> n+1 (acq_rel); client: CAS n -> n|CLOSED (stop) | exactly one wins per n: chunks >= the closed value never start |
 * | rslot.cur = chunk+1, before the claim CAS | runner | relaxed store, published by the CAS | client (dead runner) | after an acquire load of next |
 * | results, rslot.progress | runner | plain, then progress release store | client (dead runner only) | acquire |
 * | done[c] = DONE/FAIL | runner | release store | client | acquire load |
 * | client sleep | client: wake_at = X, cwait (release), seq_cst fence, re-check X | runner finishing X: done store, seq_cst fence, cwait acquire | Dekker pair |
 * | runner liveness | runner: live=0 seq_cst, then next/avail/limit seq_cst | client: avail seq_cst, fence, live seq_cst | Dekker pair: work is never left with nobody to take it |
 */
#ifndef PPOOL_RUNTIME_MAP_INTERNAL_H
#define PPOOL_RUNTIME_MAP_INTERNAL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ppool.h"

#define MI_MAGIC 0x70706d6170763032ull    /* "ppmapv02" */
#define MI_WINDOW_MAX 16384u              /* chunks in flight, at most */
#define MI_BATCH_ITEMS 1024u              /* aim for batches of this many items */
#define MI_RING_MIN ((size_t)1 << 20)     /* staging ring: at least 1 MiB */
#define MI_RING_MAX ((size_t)256 << 20)   /* ... and at most 256 MiB */
#define MI_IDLE_NS 20000ull               /* a runner idles this long, then returns */
#define MI_SPIN_NS 20000ull               /* the iterator spins this long before sleeping */
#define MI_NAP_NS 10000000ull             /* the client sleeps at most this long */
#define MI_PROBE_NS 100000000ull          /* and probes its runners' health this often */
#define MI_MSG 200                        /* bytes of an item's error message */
#define MI_CLOSED (1ull << 63)            /* in `next`: the map was stopped */
#define MI_CLIENT_W 0xffffffu             /* "worker" of a chunk failed by the client */
#define MI_CHUNK_MAX ((size_t)1 << 48)    /* pp_map_opts limits, checked at begin */
#define MI_OUT_MAX ((size_t)1 << 40)
#define MI_CTX_MAX ((size_t)1 << 30)

enum { MI_DONE = 1, MI_FAIL = 2 };
enum { MI_IN_SHM_FIXED = 1, MI_IN_SHM_PACKED, MI_IN_STAGED_FIXED, MI_IN_STAGED_VAR };

/* done word: chunk seq (low 32 bits) | worker index (24 bits) | state (8 bits) */
static inline uint64_t mi_dw(uint64_t c, uint32_t w, uint32_t st)
{
    return (c << 32) | ((uint64_t)(w & 0xffffffu) << 8) | st;
}
static inline bool mi_dw_is(uint64_t d, uint64_t c) { return (d >> 32) == (c & 0xffffffffu); }
static inline uint32_t mi_dw_state(uint64_t d) { return (uint32_t)(d & 0xff); }
static inline uint32_t mi_dw_worker(uint64_t d) { return (uint32_t)((d >> 8) & 0xffffffu); }

/* One runner task's slot: runner-written, client-read. 64 bytes. */
typedef struct mi_rslot {
    _Atomic uint32_t live;     /* 1 while the runner will still look for work */
    uint32_t pad0;
    _Atomic uint64_t cur;      /* chunk + 1 it claims / runs, 0 = none */
    _Atomic uint64_t progress; /* items of that chunk finished */
    uint64_t pad[5];
} mi_rslot;
_Static_assert(sizeof(mi_rslot) == 64, "one runner slot per cache line");

/* One worker's error report (at most one item fails per worker per map). */
typedef struct mi_errslot {
    uint64_t chunk;    /* the chunk that failed */
    uint64_t n_ok;     /* its items finished before the failure */
    int32_t err, code; /* PP_ETASK / PP_ETOOBIG, and the item's code */
    int32_t pid;
    uint32_t len;
    char msg[MI_MSG];
    uint64_t pad[3];
} mi_errslot;
_Static_assert(sizeof(mi_errslot) == 256, "error slot size");

typedef struct mi_in {
    uint32_t how, pad;
    uint64_t item_size, stride;
    uint64_t off, off2; /* segment offsets: SHM_FIXED base; SHM_PACKED data, offsets */
} mi_in;

typedef struct mi_hdr {
    uint64_t magic;
    uint64_t fn;                   /* the item function as a token (fnmap.h) */
    uint64_t cs;                   /* items per chunk */
    uint32_t n_in, nrec, nb, bc;   /* inputs, done words, batch slots, chunks per batch */
    uint32_t nrun, nwork, out_var, out_shm;
    uint64_t out_cap;
    uint64_t out_off, sizes_off;   /* out_shm: segment offsets of out / out_sizes (0 = none) */
    uint64_t ctx_rel, ctx_size;    /* relative to the block */
    uint64_t done_rel, batch_rel, run_rel, errs_rel;
    mi_in in[PP_MAP_MAX_INPUTS];
    alignas(64) _Atomic uint64_t next; /* next chunk to claim | MI_CLOSED */
    alignas(64) _Atomic uint64_t avail;     /* chunks published */
    _Atomic uint64_t items_pub;             /* items published */
    _Atomic uint64_t limit;                 /* no claim at or past this chunk */
    _Atomic uint32_t stop;                  /* the client stopped the map */
    _Atomic uint32_t pool_stop;             /* a runner saw pp_task_should_stop */
    alignas(64) _Atomic uint32_t cwait;     /* the client sleeps on cword */
    _Atomic uint32_t cword;
    _Atomic uint64_t wake_at; /* ... until this chunk finishes */
} mi_hdr;

typedef struct mi_arg {
    uint64_t block;
    uint32_t rid;
    uint32_t pad;
} mi_arg;

/* Blob layout of one batch: u64 header[n_in + 2] with the byte offsets of
 * each staged input's section, of the results and of the result sizes; then
 * the sections. Fixed-size staged input: items back to back. Variable-size
 * staged input: u64 count, u64 offsets[count + 1] (relative to the bytes),
 * the bytes. */

static inline size_t al16(size_t x) { return (x + 15) & ~(size_t)15; }

/* ---- geometry (map_geometry.c): pure functions of plain values ---------- */

/* What the window's geometry depends on. */
typedef struct ppi_map_geom_in {
    size_t items;      /* items to map; SIZE_MAX: unknown (a generator) */
    size_t chunksize;  /* items per chunk: 1 .. MI_CHUNK_MAX */
    size_t buffersize; /* most chunks in flight asked for; 0: no limit */
    size_t ctx_size;   /* bytes of context copied into the block: <= MI_CTX_MAX */
    uint32_t nwork;    /* workers, >= 1 */
} ppi_map_geom_in;

/* The window and the map block's layout (offsets from the block's start). */
typedef struct ppi_map_geom {
    uint64_t nchunks;  /* chunks of the map; UINT64_MAX: unknown */
    uint32_t nrec;     /* chunks in flight at most = done words = nb * bc */
    uint32_t nb;       /* batch slots */
    uint32_t bc;       /* chunks per batch */
    uint32_t nrun;     /* runner slots */
    size_t off_ctx, off_done, off_batch, off_run, off_errs, total;
} ppi_map_geom;

/* Fill @g from @in. Returns 0, or -EINVAL when @in is outside the limits
 * above (pp_map_begin checks them first, so there it cannot fail). */
int ppi_map_geometry(const ppi_map_geom_in *in, ppi_map_geom *g);

/* How input j of a batch is staged into its blob. */
enum { MI_SECT_NONE = 0, MI_SECT_FIXED, MI_SECT_VAR };

/* One batch's blob layout, from @count items (>= 1), each of @n_in inputs'
 * kind[j] (MI_SECT_*) and data[j] (bytes of its items: count * item_size,
 * or the sum of the variable sizes), and the staged results (@out_cap bytes
 * per item, 0 = none; @out_var: a size per item). Fills sect[n_in + 2] (the
 * blob's header words; 0 = no section) and *bytes (the blob's size). Returns
 * 0, or -EOVERFLOW when the blob would not fit in a size_t. */
int ppi_map_blob_layout(int n_in, size_t count, const int *kind, const size_t *data,
                        size_t out_cap, bool out_var, uint64_t *sect, size_t *bytes);

/* Bytes of the staging ring, sized from its first blob (@bytes) and the
 * workers: room for every worker's blob and two more, plus a quarter, in
 * [MI_RING_MIN, MI_RING_MAX], a multiple of 4096. */
size_t ppi_map_ring_cap(size_t bytes, uint32_t nwork);

#endif
