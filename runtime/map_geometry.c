/*
 * map_geometry.c — the sizes of a map, as pure functions of plain values
 * (tests/test_map_geometry.c checks them and their invariants).
 *
 * The window: nrec chunks in flight at most (MI_WINDOW_MAX, the buffersize,
 * the map's chunk count), staged in nb batch slots of bc chunks each, bc
 * chosen so that a batch holds about MI_BATCH_ITEMS items but at most a
 * quarter of the window (so that the window refills in several steps). The
 * map block then holds, 64-byte aligned where several processes write:
 *   mi_hdr | ctx | done[nrec] | batch_blob[nb] | mi_rslot[nrun] | mi_errslot[nwork]
 * Every batch's staged inputs and results go into one blob (layout in
 * map_internal.h), allocated in a staging ring sized from the first blob.
 */
#include <errno.h>

#include "map_internal.h"

static size_t al64(size_t x) { return (x + 63) & ~(size_t)63; }

int ppi_map_geometry(const ppi_map_geom_in *in, ppi_map_geom *g)
{
    if (!in || !g || in->chunksize < 1 || in->chunksize > MI_CHUNK_MAX ||
        in->ctx_size > MI_CTX_MAX || in->nwork < 1 || in->nwork >= MI_CLIENT_W)
        return -EINVAL;
    const uint64_t cs = in->chunksize;
    /* The window: nrec chunks in flight, in nb batches of bc chunks. */
    uint64_t nchunks = in->items == SIZE_MAX ? UINT64_MAX
                                             : (in->items / cs) + (in->items % cs != 0);
    uint64_t nrec = MI_WINDOW_MAX;
    if (in->buffersize && in->buffersize < nrec)
        nrec = in->buffersize;
    if (nchunks < nrec)
        nrec = nchunks ? nchunks : 1;
    uint64_t bc = cs >= MI_BATCH_ITEMS ? 1 : MI_BATCH_ITEMS / cs;
    if (bc > nrec / 4)
        bc = nrec / 4 ? nrec / 4 : 1;
    g->nchunks = nchunks;
    g->bc = (uint32_t)bc;
    g->nb = (uint32_t)(nrec / bc);
    g->nrec = g->nb * g->bc;
    g->nrun = 2 * in->nwork + 2;
    /* The block. No sum can overflow: ctx <= 2^30, nrec <= 2^14, nwork < 2^24. */
    g->off_ctx = al16(sizeof(mi_hdr));
    g->off_done = al64(g->off_ctx + in->ctx_size);
    g->off_batch = g->off_done + (size_t)g->nrec * 8;
    g->off_run = al64(g->off_batch + (size_t)g->nb * 8);
    g->off_errs = g->off_run + (size_t)g->nrun * sizeof(mi_rslot);
    g->total = g->off_errs + (size_t)in->nwork * sizeof(mi_errslot);
    return 0;
}

/* a + b, or false on overflow */
static bool add_ok(size_t *acc, size_t b)
{
    if (*acc > SIZE_MAX - b)
        return false;
    *acc += b;
    return true;
}

/* a * b, or false on overflow */
static bool mul_ok(size_t a, size_t b, size_t *r)
{
    if (b && a > SIZE_MAX / b)
        return false;
    *r = a * b;
    return true;
}

/* x rounded up to 16, or false on overflow */
static bool al16_ok(size_t *x)
{
    if (*x > SIZE_MAX - 15)
        return false;
    *x = al16(*x);
    return true;
}

int ppi_map_blob_layout(int n_in, size_t count, const int *kind, const size_t *data,
                        size_t out_cap, bool out_var, uint64_t *sect, size_t *bytes)
{
    size_t b = al16(8 * ((size_t)n_in + 2)), t;
    for (int j = 0; j < n_in; j++) {
        sect[j] = 0;
        if (kind[j] == MI_SECT_NONE)
            continue;
        sect[j] = b;
        /* variable size: u64 count, u64 offsets[count + 1], the bytes */
        if (kind[j] == MI_SECT_VAR && (!mul_ok(count, 8, &t) || !add_ok(&b, t) || !add_ok(&b, 16)))
            return -EOVERFLOW;
        if (!add_ok(&b, data[j]) || !al16_ok(&b))
            return -EOVERFLOW;
    }
    sect[n_in] = sect[n_in + 1] = 0;
    if (out_cap) {
        sect[n_in] = b;
        if (!mul_ok(count, out_cap, &t) || !add_ok(&b, t) || !al16_ok(&b))
            return -EOVERFLOW;
        if (out_var) {
            sect[n_in + 1] = b;
            if (!mul_ok(count, 8, &t) || !add_ok(&b, t))
                return -EOVERFLOW;
        }
    }
    /* blob_alloc rounds the size up to 64: that must not overflow either */
    if (b > SIZE_MAX - 63)
        return -EOVERFLOW;
    *bytes = b;
    return 0;
}

size_t ppi_map_ring_cap(size_t bytes, uint32_t nwork)
{
    size_t cap;
    if (!mul_ok(bytes, (size_t)nwork + 2, &cap) || !add_ok(&cap, cap / 4))
        cap = MI_RING_MAX; /* saturate: the clamp below gives the same */
    if (cap < MI_RING_MIN)
        cap = MI_RING_MIN;
    if (cap > MI_RING_MAX)
        cap = MI_RING_MAX;
    return (cap + 4095) & ~(size_t)4095;
}
