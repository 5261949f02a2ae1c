/*
 * shm_alloc.c — user-visible shared arrays (pp_shm_*): blocks of the
 * executor's arena that the client fills and workers read in place.
 *
 * Ownership: a block belongs to the client until pp_shm_free; workers only
 * read or write inside it through pp_task_shm. The arena lock is taken once
 * per alloc/free, never per access.
 */
#include <errno.h>

#include "client.h"

int pp_shm_alloc(pp_executor *ex, size_t size, void **ptr)
{
    if (ptr)
        *ptr = NULL;
    if (!ex || !ptr || size == 0)
        return -EINVAL;
    if (ppi_foreign(ex))
        return PP_EFORKED;
    uint64_t off = ppi_arena_alloc(&ex->seg, size);
    if (!off)
        return -ENOMEM;
    *ptr = ex->seg.base + off;
    return 0;
}

void pp_shm_free(pp_executor *ex, void *ptr)
{
    if (!ex || !ptr || ppi_foreign(ex))
        return;
    uint64_t off = pp_shm_offset(ex, ptr);
    if (off != UINT64_MAX)
        ppi_arena_free_punch(&ex->seg, off); /* placed afresh by the next first touch */
}

uint64_t pp_shm_offset(pp_executor *ex, const void *ptr)
{
    if (!ex || !ptr)
        return UINT64_MAX;
    const char *p = ptr;
    if (p < ex->seg.base + ex->seg.hdr->arena.off_data || p >= ex->seg.base + ex->seg.size)
        return UINT64_MAX;
    return (uint64_t)(p - ex->seg.base);
}
