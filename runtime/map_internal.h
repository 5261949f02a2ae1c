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
 * PPI_MAP_IDLE_NS. The chunk stays the unit of scheduling, cancellation and error
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
 *   map_ext.c       chunks run on another node: an external worker acting as
 *                   a runner (a remote lane) at the client, the chunk task
 *                   on the serving node (ext_worker.h's pp_ext_map_*)
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
#include "tunables.h"

#define MI_MAGIC 0x70706d6170763032ull    /* "ppmapv02" */
#define MI_WINDOW_MAX 16384u              /* chunks in flight, at most */
#define MI_BATCH_ITEMS 1024u              /* aim for batches of this many items */
#define MI_RING_MIN ((size_t)1 << 20)     /* staging ring: at least 1 MiB */
#define MI_RING_MAX ((size_t)256 << 20)   /* ... and at most 256 MiB */
#define MI_MSG (PP_MESSAGE_MAX + 1)       /* bytes of an item's error message */
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
    char pad[224 - MI_MSG];
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
    uint32_t nlocal, pad1;         /* the node's workers: error slots [0, nlocal);
                                      remote lanes (map_ext.c) use [nlocal, nwork) */
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

/* ---- the client's iterator (map_client.c, map_wait.c, map_stage.c) ------ */

typedef struct mi_cerr { /* a chunk failed by the client (runner died) */
    uint64_t seq, n_ok;
    int err, code;
    pid_t pid;
    char msg[256];
    struct mi_cerr *next;
} mi_cerr;

typedef struct mi_batch { /* client-private view of a staged batch */
    char *blob;          /* client pointer, NULL when nothing is staged */
    bool own;            /* its own pp_shm_alloc block (else in the ring) */
    uint64_t ring_end;   /* ring position after the blob */
    uint64_t c0, nch;    /* its chunks */
} mi_batch;

struct pp_map_iter {
    pp_executor *ex;
    pp_map_fn fn;
    int n_in;
    pp_map_input in[PP_MAP_MAX_INPUTS];
    bool in_shm[PP_MAP_MAX_INPUTS];
    bool per_item; /* some input must be gathered item by item */
    size_t cs;
    size_t n_limit; /* items (min of the known counts and out_count), SIZE_MAX unknown */
    uint64_t deadline;
    double timeout;
    /* all-at-once output */
    bool all;
    char *out;
    size_t *out_sizes;
    bool out_shm;
    size_t out_cap;
    bool out_var;
    /* shared block */
    void *block;
    mi_hdr *h;
    _Atomic uint64_t *done;
    uint64_t *batch;
    mi_rslot *rs;
    mi_errslot *errs;
    uint32_t nrec, nb, bc, nrun, nwork;
    uint32_t nlocal; /* the node's workers (nwork - nlocal: remote lanes) */
    mi_batch *bat; /* [nb] */
    /* staging ring (client-only bookkeeping; positions grow monotonically) */
    char *ring;
    size_t ring_cap;
    uint64_t ring_head, ring_tail;
    /* progress */
    uint64_t published, consumed;
    size_t items_staged;
    bool input_end;
    int in_err; /* an input failed at position in_err_at */
    size_t in_err_at;
    char in_err_msg[160];
    bool pending; /* a gathered batch waits for room */
    size_t pend_count;
    /* chunks >= dead_from will never run (no runner can be started) */
    uint64_t dead_from;
    int dead_err;
    /* iterator */
    bool cur_valid;
    size_t cur_k;
    /* buffersize given (iterator only): the chunk about to be read is copied
     * out of the window into cur_res / cur_sizes and its window slot given
     * back before its first item is returned, so that the next chunk is
     * published and runs while the caller reads this one (CPython submits
     * the next task before it yields a result). The window itself keeps its
     * bound of buffersize chunks. */
    bool overlap;
    bool cur_copied;   /* the current chunk is in cur_res, already released */
    size_t cur_n;      /* its items */
    char *cur_res;     /* [cs * out_cap], allocated at the first copy */
    uint64_t *cur_sizes; /* [cs] when out_var */
    int final_err;
    bool stopped;
    uint64_t closed_at; /* first chunk cancelled by the stop */
    pp_map_status st;
    /* runners */
    pp_future **rf;
    uint32_t *rid_free;
    uint32_t n_rid_free;
    int submit_err;
    bool saw_cancel;
    uint64_t last_probe;
    mi_cerr *cerrs;
    mi_cerr *suspects; /* chunks a dead runner may have held (see check_suspects) */
    /* scratch for gathering a batch */
    size_t g_cap;
    const char **g_ptr; /* [j * g_cap + k]; generator items: NULL (bytes in tmp) */
    size_t *g_size;
    size_t *g_toff;
    char *tmp;
    size_t tmp_cap, tmp_used;
};

/* Items in chunk @c (all published chunks are full but the last). */
static inline size_t chunk_count(pp_map_iter *m, uint64_t c)
{
    size_t first = (size_t)c * m->cs;
    return m->items_staged - first < m->cs ? m->items_staged - first : m->cs;
}

static inline mi_batch *batch_of(pp_map_iter *m, uint64_t c)
{
    return &m->bat[(c / m->bc) % m->nb];
}

/* The done word of chunk @c, 0 if it is not finished. Chunks past dead_from
 * read as failed by the client. */
static inline uint64_t chunk_done(pp_map_iter *m, uint64_t c)
{
    if (c >= m->dead_from)
        return mi_dw(c, MI_CLIENT_W, MI_FAIL);
    /* acquire: pairs with the runner's release of DONE/FAIL (results). */
    uint64_t d = atomic_load_explicit(&m->done[c % m->nrec], memory_order_acquire);
    return mi_dw_is(d, c) && mi_dw_state(d) ? d : 0;
}

/* ---- calls between the files --------------------------------------------- */

/* map_runner.c: the runner task (pp_fn) that ensure_runners submits. */
int ppi_map_runner(pp_task *t);

/* map_stage.c */
/* Stage as many batches as fit, publish them, start runners (was refill). */
int ppi_map_refill(pp_map_iter *m);
/* Give back chunk m->consumed, and its batch after its last chunk (was
 * release_chunk). */
void ppi_map_release_chunk(pp_map_iter *m);

/* map_wait.c */
/* Record the map's outcome, once (was set_final). */
void ppi_map_set_final(pp_map_iter *m, int err, size_t pos, int code, pid_t pid, const char *msg);
/* Stop the map: cancel every chunk not started (was stop_map). */
void ppi_map_stop(pp_map_iter *m);
/* Make sure enough runners will look at the unclaimed chunks (was
 * ensure_runners). */
void ppi_map_ensure_runners(pp_map_iter *m);
/* Reap finished runners (@wait == 0) or wait for them (was reap). */
void ppi_map_reap(pp_map_iter *m, double wait);
/* Wait until chunk @x is finished: 0 or -ETIMEDOUT (was wait_chunk). */
int ppi_map_wait_chunk(pp_map_iter *m, uint64_t x, bool spin);
/* Items of finished chunk @c (done word @d) that may be delivered (was
 * deliverable). */
size_t ppi_map_deliverable(pp_map_iter *m, uint64_t c, uint64_t d);
/* Set the final error from failed chunk @c (was chunk_error). */
void ppi_map_chunk_error(pp_map_iter *m, uint64_t c, uint64_t d, size_t pos);

/* ---- the runner's parts (map_runner.c), shared with map_ext.c ----------- */

/* What pp_map_raise / pp_map_should_stop reach through it->internal_. */
typedef struct mi_itemstate {
    mi_hdr *h;
    pp_task *t;
    mi_errslot *es;
    uint64_t chunk;
    int raised;
    int code;
    int stop_seen; /* pp_map_should_stop answered true for the pool's stop */
} mi_itemstate;

/* A runner's view of the map (map_runner.c; a remote lane's in map_ext.c,
 * with t NULL). */
typedef struct mi_run {
    pp_task *t;
    mi_hdr *h;
    _Atomic uint64_t *done;
    const uint64_t *batch;
    mi_rslot *me;
    mi_errslot *es;
    pp_map_fn fn;
    int widx;
    const char *base[PP_MAP_MAX_INPUTS];
    const size_t *offs[PP_MAP_MAX_INPUTS];
    char *out_base;
    size_t *sizes_base;
    const void *ctx;
    char *seg;      /* this process's view of the segment's offset 0 */
    /* Populate-ahead marks (see prefault): per in-place array, the address
     * up to which this worker's page tables are already populated. A
     * runner's claims only grow, so each mark only moves forward. */
    uintptr_t pf_in[PP_MAP_MAX_INPUTS], pf_offs[PP_MAP_MAX_INPUTS], pf_out, pf_sizes;
} mi_run;

/* Where chunk c's items are: per input, the base of the chunk's items (and
 * for a staged variable-size input, its offsets); the chunk's results. */
typedef struct mi_chunk {
    uint64_t c, first, count;
    const char *p[PP_MAP_MAX_INPUTS];
    const uint64_t *voffs[PP_MAP_MAX_INPUTS];
    const void *in[PP_MAP_MAX_INPUTS]; /* item k's inputs, as the item sees them */
    size_t in_size[PP_MAP_MAX_INPUTS];
    char *outp;       /* item 0's result, NULL = no result */
    uint64_t *vsz;    /* staged result sizes */
    size_t *shm_sz;   /* result sizes in the caller's shared array */
} mi_chunk;

/* Claim the next chunk with the CAS on `next` (rslot cur = c + 1 stored
 * before it): 1 (*c set), 0 nothing claimable now, -1 stop (the map closed,
 * or @stop: the caller's pool stops, recorded in pool_stop). */
int ppi_map_claim(mi_run *r, uint64_t *c, bool stop);
/* The runner leaves (live = 0, then a last look: the Dekker pair with the
 * client's count_live). true: leave; false: work appeared, live is 1 again. */
bool ppi_map_leave(mi_run *r);
/* Fail chunk @c after @n_ok items: error slot (its message already
 * written), limit, FAIL done word (release), client wake. */
void ppi_map_fail_chunk(mi_run *r, uint64_t c, uint64_t n_ok, int err, int code, int pid);
/* Wake the client if it waits for chunk @c (UINT64_MAX: whatever it waits for). */
void ppi_map_notify(mi_hdr *h, uint64_t c);
/* Locate claimed chunk ck->c: item count, inputs, results. */
void ppi_map_chunk_locate(mi_run *r, mi_chunk *ck);
/* Point ck->in / ck->in_size at item @k's inputs. */
void ppi_map_item_inputs(const mi_run *r, mi_chunk *ck, uint64_t k);
/* An item returned @rc: 0 if it succeeded, else its error (PP_ETASK with
 * *code, PP_ETOOBIG, -ECANCELED for the pool's stop) with the message
 * written into @es. */
int ppi_map_item_check(const mi_itemstate *ist, int rc, const pp_map_item *it, bool out_var,
                       mi_errslot *es, int *code);

/* ---- a chunk as bytes, run on another node (map_ext.c) -----------------
 * The root serialises a claimed chunk (its items, the context) into one
 * buffer, which the serving node runs as one task (pp_ext_map_chunk_task);
 * the task's result is the chunk's results. */
#define MI_WCHUNK_MAGIC 0x70706d6368756e6bull /* "ppmchunk" */
#define MI_WRES_MAGIC 0x70706d6372657331ull   /* "ppmcres1" */

typedef struct mi_wchunk {
    uint64_t magic;
    uint64_t fn;         /* item function token: of the root's module table on the
                            wire, of the serving node's in its task */
    uint64_t first, count; /* items [first, first + count) of the map */
    uint64_t out_cap;
    uint32_t out_var, n_in;
    uint32_t var_mask, pad; /* bit j: input j has variable-size items */
    uint64_t ctx_off, ctx_size; /* from the chunk's start */
    /* input j's section, from the chunk's start: fixed-size items back to
     * back (item_size[j] each); variable-size: u64 offsets[count + 1]
     * (relative to the bytes), then the bytes. */
    uint64_t sect[PP_MAP_MAX_INPUTS];
    uint64_t item_size[PP_MAP_MAX_INPUTS];
    uint64_t bytes;      /* the whole chunk */
} mi_wchunk;

/* A chunk's result: this header, then u64 sizes[count] when out_var, then
 * (from al16 of that) the n_ok results: n_ok * out_cap bytes, or packed
 * back to back when out_var. */
typedef struct mi_wres {
    uint64_t magic;
    uint64_t n_ok;        /* items that succeeded, from the first */
    int32_t err, code, pid; /* the failing item's (err 0: all succeeded) */
    uint32_t len;
    uint64_t bytes;       /* of the result that matter */
    char msg[MI_MSG];
} mi_wres;

/* ext_worker.c: remote lanes the external-worker layer adds to a map of
 * @ex (0: none; ext_ops->map_lanes). */
uint32_t ppi_ext_map_lanes(pp_executor *ex);

#endif
