/*
 * test_map_geometry.c — the pure sizes of a map (runtime/map_geometry.c):
 * the window (chunks in flight, batches), the map block's layout, a batch
 * blob's layout and the staging ring; normal cases, limits (chunksize 1,
 * chunksize past the item count, no items, unknown counts, sizes near
 * overflow) and the invariants the rest of runtime/map_*.c relies on.
 */
#include "map_internal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

static ppi_map_geom geom(size_t items, size_t cs, size_t buffersize, size_t ctx, uint32_t nwork)
{
    ppi_map_geom_in in = {.items = items, .chunksize = cs, .buffersize = buffersize,
                          .ctx_size = ctx, .nwork = nwork};
    ppi_map_geom g;
    memset(&g, 0xa5, sizeof g);
    int rc = ppi_map_geometry(&in, &g);
    cr_assert_eq(rc, 0, "geometry(items %zu, cs %zu, buf %zu, ctx %zu, nwork %u) = %d", items, cs,
                 buffersize, ctx, nwork, rc);
    return g;
}

static int geom_rc(size_t items, size_t cs, size_t buffersize, size_t ctx, uint32_t nwork)
{
    ppi_map_geom_in in = {.items = items, .chunksize = cs, .buffersize = buffersize,
                          .ctx_size = ctx, .nwork = nwork};
    ppi_map_geom g;
    return ppi_map_geometry(&in, &g);
}

/* Everything runtime/map_*.c relies on, for one geometry. */
static void check_invariants(size_t items, size_t cs, size_t buf, size_t ctx, uint32_t nwork)
{
    ppi_map_geom g = geom(items, cs, buf, ctx, nwork);
#define CHECK(cond)                                                                                \
    cr_assert(cond, "%s: items %zu cs %zu buf %zu ctx %zu nwork %u", #cond, items, cs, buf, ctx,   \
              nwork)
    uint64_t nchunks = items == SIZE_MAX ? UINT64_MAX : items / cs + (items % cs != 0);
    CHECK(g.nchunks == nchunks);
    /* the window: whole batches, at least one chunk, at most MI_WINDOW_MAX,
     * no more than the map has chunks or the buffersize allows */
    CHECK(g.bc >= 1 && g.nb >= 1);
    CHECK(g.nrec == (uint64_t)g.nb * g.bc);
    CHECK(g.nrec >= 1 && g.nrec <= MI_WINDOW_MAX);
    CHECK(g.nrec <= (nchunks ? nchunks : 1));
    CHECK(!buf || g.nrec <= buf);
    /* a batch fits an empty window (stage_batch needs published + bc -
     * consumed <= nrec), and unless batches are single chunks the window
     * holds at least four of them (it refills when half empty) */
    CHECK(g.bc <= g.nrec);
    CHECK(g.bc == 1 || g.nb >= 4);
    /* batches aim for MI_BATCH_ITEMS items, never more than that or a chunk */
    CHECK(cs < MI_BATCH_ITEMS || g.bc == 1);
    CHECK(cs >= MI_BATCH_ITEMS || g.bc <= MI_BATCH_ITEMS / cs);
    /* with a full window, batches are as large as aimed for */
    if (g.nrec == MI_WINDOW_MAX && cs < MI_BATCH_ITEMS)
        CHECK(g.bc == MI_BATCH_ITEMS / cs);
    /* the window shrinks below MI_WINDOW_MAX only by rounding to whole
     * batches, for the buffersize, or for the map's chunk count */
    uint64_t want = MI_WINDOW_MAX;
    if (buf && buf < want)
        want = buf;
    if (nchunks < want)
        want = nchunks ? nchunks : 1;
    CHECK(g.nrec > want - g.bc && g.nrec <= want);
    /* a chunk's done word sits at a fixed place in its batch's slot:
     * done[c % nrec] belongs to batch slot (c / bc) % nb */
    for (uint64_t c = 0; c < 3ull * g.nrec + 5; c += 1 + g.nrec / 7)
        CHECK(c % g.nrec == ((c / g.bc) % g.nb) * g.bc + c % g.bc);
    /* the done words start one lap behind: none matches its first chunk */
    for (uint64_t i = 0; i < g.nrec; i += 1 + g.nrec / 64)
        CHECK(!mi_dw_is(mi_dw(i - g.nrec, 0, MI_DONE), i));
    CHECK(g.nrun == 2 * nwork + 2);
    /* the block: in order, without overlap, aligned where processes write */
    CHECK(g.off_ctx >= sizeof(mi_hdr) && g.off_ctx % 16 == 0);
    CHECK(g.off_done >= g.off_ctx + ctx && g.off_done % 64 == 0);
    CHECK(g.off_batch == g.off_done + 8 * (size_t)g.nrec);
    CHECK(g.off_run >= g.off_batch + 8 * (size_t)g.nb && g.off_run % 64 == 0);
    CHECK(g.off_errs == g.off_run + (size_t)g.nrun * sizeof(mi_rslot) && g.off_errs % 64 == 0);
    CHECK(g.total == g.off_errs + (size_t)nwork * sizeof(mi_errslot));
#undef CHECK
}

Test(map_geometry, chunksize_1_many_items, .timeout = 10)
{
    ppi_map_geom g = geom(1000000, 1, 0, 0, 2);
    cr_assert_eq(g.nchunks, 1000000);
    cr_assert_eq(g.bc, MI_BATCH_ITEMS);
    cr_assert_eq(g.nb, MI_WINDOW_MAX / MI_BATCH_ITEMS);
    cr_assert_eq(g.nrec, MI_WINDOW_MAX);
    cr_assert_eq(g.nrun, 6);
    check_invariants(1000000, 1, 0, 0, 2);
}

Test(map_geometry, chunksize_100, .timeout = 10)
{
    ppi_map_geom g = geom(1000000, 100, 0, 0, 4);
    cr_assert_eq(g.nchunks, 10000);
    cr_assert_eq(g.bc, 10);
    cr_assert_eq(g.nb, 1000);
    cr_assert_eq(g.nrec, 10000);
    check_invariants(1000000, 100, 0, 0, 4);
}

Test(map_geometry, large_chunks_are_their_own_batch, .timeout = 10)
{
    ppi_map_geom g = geom(1000000, 5000, 0, 0, 2);
    cr_assert_eq(g.nchunks, 200);
    cr_assert_eq(g.bc, 1);
    cr_assert_eq(g.nb, 200);
    cr_assert_eq(g.nrec, 200);
}

Test(map_geometry, few_items_small_window, .timeout = 10)
{
    ppi_map_geom g = geom(10, 1, 0, 0, 2);
    cr_assert_eq(g.nchunks, 10);
    cr_assert_eq(g.bc, 2); /* a quarter of the window */
    cr_assert_eq(g.nb, 5);
    cr_assert_eq(g.nrec, 10);
}

Test(map_geometry, chunksize_past_the_item_count, .timeout = 10)
{
    ppi_map_geom g = geom(5, 100, 0, 0, 2);
    cr_assert_eq(g.nchunks, 1);
    cr_assert_eq(g.bc, 1);
    cr_assert_eq(g.nb, 1);
    cr_assert_eq(g.nrec, 1);
    check_invariants(5, 100, 0, 0, 2);
    check_invariants(1, 1000000, 0, 0, 2);
}

Test(map_geometry, last_chunk_partial, .timeout = 10)
{
    cr_assert_eq(geom(101, 10, 0, 0, 1).nchunks, 11);
    cr_assert_eq(geom(100, 10, 0, 0, 1).nchunks, 10);
    cr_assert_eq(geom(9, 10, 0, 0, 1).nchunks, 1);
}

Test(map_geometry, no_items_still_one_slot, .timeout = 10)
{
    ppi_map_geom g = geom(0, 1, 0, 0, 2);
    cr_assert_eq(g.nchunks, 0);
    cr_assert_eq(g.nrec, 1);
    cr_assert_eq(g.nb, 1);
    cr_assert_eq(g.bc, 1);
    check_invariants(0, 1, 0, 0, 2);
    check_invariants(0, 7, 3, 64, 1);
}

Test(map_geometry, unknown_count_full_window, .timeout = 10)
{
    ppi_map_geom g = geom(SIZE_MAX, 3, 0, 0, 2);
    cr_assert_eq(g.nchunks, UINT64_MAX);
    cr_assert_eq(g.bc, MI_BATCH_ITEMS / 3);
    cr_assert_eq(g.nrec, g.nb * g.bc);
    cr_assert_leq(g.nrec, MI_WINDOW_MAX);
    check_invariants(SIZE_MAX, 3, 0, 0, 2);
}

Test(map_geometry, buffersize_bounds_the_window, .timeout = 10)
{
    ppi_map_geom g = geom(SIZE_MAX, 1, 1, 0, 2);
    cr_assert_eq(g.nrec, 1);
    g = geom(SIZE_MAX, 1, 5, 0, 2);
    cr_assert_eq(g.bc, 1);
    cr_assert_eq(g.nrec, 5);
    g = geom(SIZE_MAX, 1, 11, 0, 2); /* rounded down to whole batches of 2 */
    cr_assert_eq(g.bc, 2);
    cr_assert_eq(g.nrec, 10);
    g = geom(SIZE_MAX, 1, 1000000, 0, 2); /* past MI_WINDOW_MAX: no effect */
    cr_assert_eq(g.nrec, MI_WINDOW_MAX);
    g = geom(3, 1, 100, 0, 2); /* past the chunk count: no effect */
    cr_assert_eq(g.nrec, 3);
}

Test(map_geometry, huge_counts_and_chunks, .timeout = 10)
{
    ppi_map_geom g = geom(SIZE_MAX - 1, MI_CHUNK_MAX, 0, 0, 2);
    cr_assert_eq(g.nchunks, (SIZE_MAX - 1) / MI_CHUNK_MAX + 1);
    cr_assert_eq(g.bc, 1);
    cr_assert_eq(g.nrec, MI_WINDOW_MAX);
    g = geom(MI_CHUNK_MAX + 1, MI_CHUNK_MAX, 0, 0, 2);
    cr_assert_eq(g.nchunks, 2);
    cr_assert_eq(g.nrec, 2);
    g = geom(SIZE_MAX - 1, 1, 0, 0, 2);
    cr_assert_eq(g.nchunks, SIZE_MAX - 1);
    cr_assert_eq(g.nrec, MI_WINDOW_MAX);
    check_invariants(SIZE_MAX - 1, MI_CHUNK_MAX, 0, MI_CTX_MAX, 4096);
    check_invariants(SIZE_MAX - 1, 1, SIZE_MAX, MI_CTX_MAX, MI_CLIENT_W - 1);
}

Test(map_geometry, block_layout, .timeout = 10)
{
    ppi_map_geom g = geom(100, 1, 0, 100, 3);
    cr_assert_eq(g.off_ctx, al16(sizeof(mi_hdr)));
    cr_assert_eq(g.off_done, (g.off_ctx + 100 + 63) & ~(size_t)63);
    cr_assert_eq(g.off_batch, g.off_done + 8 * 100);
    cr_assert_eq(g.nrun, 8);
    cr_assert_eq(g.total, g.off_errs + 3 * sizeof(mi_errslot));
    /* no context: the done words follow the header */
    g = geom(100, 1, 0, 0, 3);
    cr_assert_eq(g.off_done, (al16(sizeof(mi_hdr)) + 63) & ~(size_t)63);
}

Test(map_geometry, rejects_what_begin_rejects, .timeout = 10)
{
    cr_assert_eq(geom_rc(10, 0, 0, 0, 2), -EINVAL);
    cr_assert_eq(geom_rc(10, MI_CHUNK_MAX + 1, 0, 0, 2), -EINVAL);
    cr_assert_eq(geom_rc(10, 1, 0, MI_CTX_MAX + 1, 2), -EINVAL);
    cr_assert_eq(geom_rc(10, 1, 0, 0, 0), -EINVAL);
    cr_assert_eq(geom_rc(10, 1, 0, 0, MI_CLIENT_W), -EINVAL); /* a worker index is 24 bits */
    cr_assert_eq(geom_rc(10, MI_CHUNK_MAX, 0, MI_CTX_MAX, MI_CLIENT_W - 1), 0);
    ppi_map_geom g;
    cr_assert_eq(ppi_map_geometry(NULL, &g), -EINVAL);
}

Test(map_geometry, invariants_across_inputs, .timeout = 60)
{
    static const size_t items[] = {0, 1, 2, 3, 4, 5, 10, 99, 1023, 1024, 1025, 4097,
                                   16384, 16385, 1000000, 1000000000, SIZE_MAX - 1, SIZE_MAX};
    static const size_t css[] = {1, 2, 3, 7, 100, 255, 256, 257, 1023, 1024, 1025, 5000,
                                 1u << 20, MI_CHUNK_MAX};
    static const size_t bufs[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 100, 16383, 16384, 16385,
                                  SIZE_MAX};
    static const uint32_t nworks[] = {1, 2, 3, 64, 4096};
    static const size_t ctxs[] = {0, 1, 17, 4096};
    for (size_t a = 0; a < sizeof items / sizeof *items; a++)
        for (size_t b = 0; b < sizeof css / sizeof *css; b++)
            for (size_t c = 0; c < sizeof bufs / sizeof *bufs; c++)
                for (size_t d = 0; d < sizeof nworks / sizeof *nworks; d++)
                    check_invariants(items[a], css[b], bufs[c], ctxs[(a + b + c + d) % 4],
                                     nworks[d]);
}

/* ---- a batch's blob ------------------------------------------------------ */

/* Sections in order, 16-aligned, after the header, inside the blob. */
static void check_blob(int n_in, size_t count, const int *kind, const size_t *data,
                       size_t out_cap, bool out_var, const uint64_t *sect, size_t bytes)
{
    size_t at = 8 * ((size_t)n_in + 2); /* the header */
    for (int j = 0; j < n_in; j++) {
        if (kind[j] == MI_SECT_NONE) {
            cr_assert_eq(sect[j], 0, "input %d is not staged", j);
            continue;
        }
        cr_assert_geq(sect[j], at, "input %d overlaps what precedes it", j);
        cr_assert_eq(sect[j] % 16, 0);
        at = sect[j] + data[j] + (kind[j] == MI_SECT_VAR ? 8 * (count + 2) : 0);
    }
    if (out_cap) {
        cr_assert_geq(sect[n_in], at);
        cr_assert_eq(sect[n_in] % 16, 0);
        at = sect[n_in] + count * out_cap;
        if (out_var) {
            cr_assert_geq(sect[n_in + 1], at);
            cr_assert_eq(sect[n_in + 1] % 8, 0);
            at = sect[n_in + 1] + 8 * count;
        } else {
            cr_assert_eq(sect[n_in + 1], 0);
        }
    } else {
        cr_assert_eq(sect[n_in], 0);
        cr_assert_eq(sect[n_in + 1], 0);
    }
    cr_assert_geq(bytes, at, "the blob holds its last section");
}

Test(map_geometry, blob_fixed_input_and_results, .timeout = 10)
{
    int kind[1] = {MI_SECT_FIXED};
    size_t data[1] = {10 * 8};
    uint64_t sect[3];
    size_t bytes = 0;
    cr_assert_eq(ppi_map_blob_layout(1, 10, kind, data, 8, false, sect, &bytes), 0);
    cr_assert_eq(sect[0], 32); /* header: 3 words, rounded to 16 */
    cr_assert_eq(sect[1], 32 + 80);
    cr_assert_eq(sect[2], 0);
    cr_assert_eq(bytes, 32 + 80 + 80);
    check_blob(1, 10, kind, data, 8, false, sect, bytes);
}

Test(map_geometry, blob_variable_input_and_sizes, .timeout = 10)
{
    int kind[3] = {MI_SECT_VAR, MI_SECT_NONE, MI_SECT_FIXED};
    size_t data[3] = {7, 0, 3 * 5};
    uint64_t sect[5];
    size_t bytes = 0;
    cr_assert_eq(ppi_map_blob_layout(3, 3, kind, data, 100, true, sect, &bytes), 0);
    cr_assert_eq(sect[0], 48);                 /* header: 5 words -> 48 */
    cr_assert_eq(sect[1], 0);                  /* used in place */
    cr_assert_eq(sect[2], al16(48 + 8 * 5 + 7)); /* count, offsets[4], bytes */
    cr_assert_eq(sect[3], al16(sect[2] + 15));
    cr_assert_eq(sect[4], al16(sect[3] + 300));
    cr_assert_eq(bytes, sect[4] + 24);
    check_blob(3, 3, kind, data, 100, true, sect, bytes);
}

Test(map_geometry, blob_without_inputs, .timeout = 10)
{
    uint64_t sect[2];
    size_t bytes = 0;
    cr_assert_eq(ppi_map_blob_layout(0, 1, NULL, NULL, 8, false, sect, &bytes), 0);
    cr_assert_eq(sect[0], 16);
    cr_assert_eq(bytes, 32);
    cr_assert_eq(ppi_map_blob_layout(0, 5, NULL, NULL, 0, false, sect, &bytes), 0);
    cr_assert_eq(sect[0], 0);
    cr_assert_eq(bytes, 16);
}

Test(map_geometry, blob_layouts_hold_their_sections, .timeout = 10)
{
    static const size_t counts[] = {1, 2, 3, 17, 1024, 5000};
    static const size_t caps[] = {0, 1, 8, 100, 4096};
    int kind[PP_MAP_MAX_INPUTS];
    size_t data[PP_MAP_MAX_INPUTS];
    uint64_t sect[PP_MAP_MAX_INPUTS + 2];
    for (int n_in = 0; n_in <= PP_MAP_MAX_INPUTS; n_in += 3)
        for (size_t a = 0; a < sizeof counts / sizeof *counts; a++)
            for (size_t b = 0; b < sizeof caps / sizeof *caps; b++)
                for (int var = 0; var < 2; var++) {
                    size_t count = counts[a];
                    for (int j = 0; j < n_in; j++) {
                        kind[j] = (int)((j + a + b) % 3);
                        data[j] = kind[j] == MI_SECT_FIXED ? count * (size_t)(j + 1)
                                  : kind[j] == MI_SECT_VAR ? 3 * count + (size_t)j
                                                           : 0;
                    }
                    size_t bytes = 0;
                    cr_assert_eq(ppi_map_blob_layout(n_in, count, kind, data, caps[b], var,
                                                     sect, &bytes), 0);
                    check_blob(n_in, count, kind, data, caps[b], var, sect, bytes);
                }
}

Test(map_geometry, blob_overflow_is_reported, .timeout = 10)
{
    int kind[1] = {MI_SECT_VAR};
    size_t data[1] = {0};
    uint64_t sect[3];
    size_t bytes = 0;
    /* the offsets of SIZE_MAX / 8 items alone overflow */
    cr_assert_eq(ppi_map_blob_layout(1, SIZE_MAX / 8, kind, data, 0, false, sect, &bytes),
                 -EOVERFLOW);
    /* data near SIZE_MAX */
    kind[0] = MI_SECT_FIXED;
    data[0] = SIZE_MAX - 20;
    cr_assert_eq(ppi_map_blob_layout(1, 1, kind, data, 0, false, sect, &bytes), -EOVERFLOW);
    /* results: 2^30 items of MI_OUT_MAX bytes */
    data[0] = 0;
    cr_assert_eq(ppi_map_blob_layout(1, (size_t)1 << 30, kind, data, MI_OUT_MAX, false, sect,
                                     &bytes), -EOVERFLOW);
    cr_assert_eq(ppi_map_blob_layout(0, (size_t)1 << 30, NULL, NULL, MI_OUT_MAX, false, sect,
                                     &bytes), -EOVERFLOW);
    /* large but representable: fine, and the 64-byte rounding still fits */
    data[0] = (size_t)1 << 62;
    cr_assert_eq(ppi_map_blob_layout(1, 1, kind, data, MI_OUT_MAX, true, sect, &bytes), 0);
    cr_assert_geq(bytes, ((size_t)1 << 62) + MI_OUT_MAX + 8);
    cr_assert_leq(bytes, SIZE_MAX - 63);
}

/* ---- the staging ring ---------------------------------------------------- */

Test(map_geometry, ring_small_blobs_get_the_minimum, .timeout = 10)
{
    cr_assert_eq(ppi_map_ring_cap(0, 1), MI_RING_MIN);
    cr_assert_eq(ppi_map_ring_cap(64, 2), MI_RING_MIN);
    cr_assert_eq(ppi_map_ring_cap(4096, 64), MI_RING_MIN); /* 4096 * 66 * 1.25 < 1 MiB */
}

Test(map_geometry, ring_room_for_every_worker, .timeout = 10)
{
    size_t b = (size_t)1 << 20;
    cr_assert_eq(ppi_map_ring_cap(b, 2), 5 * b); /* 4 blobs + a quarter */
    cr_assert_eq(ppi_map_ring_cap(1000000, 2), ((size_t)5000000 + 4095) & ~(size_t)4095);
}

Test(map_geometry, ring_maximum_and_overflow, .timeout = 10)
{
    cr_assert_eq(ppi_map_ring_cap((size_t)64 << 20, 2), MI_RING_MAX);
    cr_assert_eq(ppi_map_ring_cap(SIZE_MAX / 2, 2), MI_RING_MAX);
    cr_assert_eq(ppi_map_ring_cap(SIZE_MAX, MI_CLIENT_W - 1), MI_RING_MAX);
    cr_assert_eq(ppi_map_ring_cap(SIZE_MAX / 5, 3), MI_RING_MAX); /* *5 fits, *1.25 does not */
}

Test(map_geometry, ring_bounds_and_monotony, .timeout = 10)
{
    static const uint32_t nworks[] = {1, 2, 7, 4096};
    for (size_t d = 0; d < sizeof nworks / sizeof *nworks; d++) {
        size_t prev = 0;
        for (size_t b = 0; b < ((size_t)1 << 40); b = b * 3 + 1) {
            size_t cap = ppi_map_ring_cap(b, nworks[d]);
            cr_assert_geq(cap, MI_RING_MIN);
            cr_assert_leq(cap, MI_RING_MAX);
            cr_assert_eq(cap % 4096, 0);
            cr_assert_geq(cap, prev, "monotone in the blob size");
            /* a first blob that is not given its own block (bytes <= cap / 2)
             * leaves room for the other workers' */
            if (b <= cap / 2 && cap < MI_RING_MAX)
                cr_assert_geq(cap, b * (nworks[d] + 2));
            prev = cap;
        }
    }
}
