/* segment.c — create, lay out and map the shared segment (see segment.h). */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fnmap.h"
#include "segment.h"
#include "shards.h"
#include "tunables.h"

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static int arena_init(ppi_arena *a)
{
    pthread_mutexattr_t at;
    int rc = pthread_mutexattr_init(&at);
    if (rc)
        return -rc;
    /* Process-shared and robust: a worker that dies holding it (the arena is a
     * cold path: payloads over the inline size) leaves EOWNERDEAD, not a hang. */
    rc = pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    if (!rc)
        rc = pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    if (!rc)
        rc = pthread_mutex_init(&a->lock, &at);
    pthread_mutexattr_destroy(&at);
    return -rc;
}

/*
 * Map @total bytes of the segment @fd at an address that is a multiple of
 * PPI_HUGE_ALIGN (reserve the size plus the alignment, place the mapping
 * with MAP_FIXED inside, give back both ends), and with @huge advise
 * MADV_HUGEPAGE from @off_data on. Where the kernel allows huge pages on
 * shared memory (transparent_hugepage/shmem_enabled advise, always or
 * within_size) a fresh 2 MiB of the arena then costs one fault instead of
 * 512: under a hypervisor that traps every first touch of a 4 KiB page in
 * each process (several us each), that is what makes arrays in shared
 * memory as cheap to fill as private ones. Elsewhere the advice is ignored.
 * Returns the address, or MAP_FAILED with errno set.
 */
static void *map_segment(int fd, uint64_t total, uint64_t off_data, bool huge)
{
    size_t span = (size_t)(total + PPI_HUGE_ALIGN);
    char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED)
        return MAP_FAILED;
    uintptr_t at = ((uintptr_t)res + PPI_HUGE_ALIGN - 1) & ~(uintptr_t)(PPI_HUGE_ALIGN - 1);
    char *base = mmap((void *)at, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                      fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        munmap(res, span);
        errno = e;
        return MAP_FAILED;
    }
    if (base > res)
        munmap(res, (size_t)(base - res));
    char *end = base + total, *res_end = res + span;
    if (res_end > end)
        munmap(end, (size_t)(res_end - end));
    if (huge && off_data < total)
        (void)madvise(base + off_data, (size_t)(total - off_data), MADV_HUGEPAGE); /* a hint */
    return base;
}

/* Point the process-local view at the parts of a mapped segment. */
static void seg_view(ppi_seg *seg)
{
    ppi_hdr *h = (ppi_hdr *)(void *)seg->base;
    seg->hdr = h;
    seg->workers = (ppi_worker *)(seg->base + h->off_workers);
    seg->rings = seg->base + h->off_ring;
    seg->ring_stride = h->ring_stride;
    seg->nshards = h->nshards;
    seg->cring = (ppi_ring *)(seg->base + h->off_cring);
    seg->modtab = (ppi_modtab *)(seg->base + h->off_modtab);
    seg->slots = seg->base + h->off_slots;
    seg->slot_size = h->slot_size;
    seg->inline_size = h->inline_size;
    seg->nslots = h->nslots;
}

int ppi_seg_create(ppi_seg *seg, const ppi_seg_geom *g)
{
    /* The result area also holds a failed task's message: at least
     * PP_MESSAGE_MAX + 1 bytes whatever the inline size. */
    uint64_t slot_size = PPI_SLOT_HDR + (uint64_t)g->inline_size +
                         (g->inline_size > PPI_MSG_AREA ? g->inline_size : PPI_MSG_AREA);
    uint64_t units = g->arena_size / PPI_ARENA_UNIT;
    uint64_t off_workers = align64(sizeof(ppi_hdr));
    uint64_t off_ring = align64(off_workers + (uint64_t)PPI_MAX_WORKERS * sizeof(ppi_worker));
    /* Each shard has a cell per slot: a slot is in at most one shard at a
     * time, so no shard is ever logically full, whatever the push rule. */
    uint32_t nshards = g->nshards ? g->nshards : 1;
    uint64_t ring_stride = align64(ppi_ring_bytes(g->nslots));
    uint64_t off_cring = align64(off_ring + nshards * ring_stride);
    uint64_t off_modtab = align64(off_cring + ppi_ring_bytes(g->nslots));
    uint64_t off_slots = align64(off_modtab + ppi_modtab_bytes(g->mod_cap, g->mod_strings));
    uint64_t off_bitmap = align64(off_slots + (uint64_t)g->nslots * slot_size);
    uint64_t off_runlen = align64(off_bitmap + ((units + 63) / 64) * 8);
    /* The data on a huge-page boundary of the file (the gap is a hole). */
    uint64_t off_data = (off_runlen + units * 4 + PPI_HUGE_ALIGN - 1) & ~(PPI_HUGE_ALIGN - 1);
    uint64_t total = off_data + units * PPI_ARENA_UNIT;

    memset(seg, 0, sizeof *seg);
    seg->cmd_fd = -1;
    /* memfd: anonymous, never in /dev/shm; it disappears with its last user. */
    int fd = memfd_create("ppool", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)total) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    void *base = map_segment(fd, total, off_data, g->huge != 0);
    if (base == MAP_FAILED) {
        int e = -errno;
        close(fd);
        return e;
    }
    seg->base = base;
    seg->size = total;
    seg->fd = fd;
    ppi_hdr *h = base; /* the file is zero-filled by ftruncate */
    h->magic = PPI_MAGIC;
    h->total_size = total;
    h->nslots = g->nslots;
    h->slot_size = (uint32_t)slot_size;
    h->inline_size = g->inline_size;
    h->nworkers = PPI_MAX_WORKERS; /* records; g->nworkers of them start */
    atomic_init(&h->target, g->nworkers);
    h->max_arg = g->max_arg;
    h->max_result = g->max_result;
    h->off_workers = off_workers;
    h->off_ring = off_ring;
    h->ring_stride = ring_stride;
    h->nshards = nshards;
    h->huge = g->huge != 0;
    h->off_cring = off_cring;
    h->off_modtab = off_modtab;
    h->off_slots = off_slots;
    h->client_pid = getpid();
    h->arena.units = units;
    h->arena.off_bitmap = off_bitmap;
    h->arena.off_runlen = off_runlen;
    h->arena.off_data = off_data;
    int rc = arena_init(&h->arena);
    if (rc) {
        ppi_seg_unmap(seg);
        return rc;
    }
    seg_view(seg);
    seg->modtab->cap = g->mod_cap;
    seg->modtab->strings_cap = g->mod_strings;
    for (uint32_t k = 0; k < nshards; k++)
        ppi_ring_init_at(ppi_shard_ring(seg, k), g->nslots, ppi_shard_ticket_base(k));
    ppi_ring_init(seg->cring, g->nslots);
    seg->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (seg->cmd_fd < 0) {
        rc = -errno;
        ppi_seg_unmap(seg);
        return rc;
    }
    for (uint32_t i = 0; i < g->nworkers; i++)
        seg->workers[i].cpu = -1;
    /* Slots need no initialisation: the zero-filled file reads as FREE,
     * generation 0 (the worker field of a FREE slot means nothing), and not
     * touching them keeps the pages unallocated until used. */
    return 0;
}

int ppi_seg_attach(ppi_seg *seg, int fd, int cmd_fd)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = seg->cmd_fd = -1;
    ppi_hdr probe;
    if (pread(fd, &probe, sizeof probe, 0) != (ssize_t)sizeof probe)
        return errno ? -errno : -EINVAL;
    struct stat st;
    if (probe.magic != PPI_MAGIC || fstat(fd, &st) < 0 || (uint64_t)st.st_size != probe.total_size)
        return -EINVAL;
    void *base = map_segment(fd, probe.total_size, probe.arena.off_data, probe.huge != 0);
    if (base == MAP_FAILED)
        return -errno;
    seg->base = base;
    seg->size = probe.total_size;
    seg->fd = fd;
    seg->cmd_fd = cmd_fd;
    seg_view(seg);
    return 0;
}

void ppi_seg_unmap(ppi_seg *seg)
{
    if (seg->base)
        munmap(seg->base, seg->size);
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->cmd_fd >= 0)
        close(seg->cmd_fd);
    seg->base = NULL;
    seg->fd = -1;
    seg->cmd_fd = -1;
}

void ppi_slot_finished(ppi_seg *s, uint32_t idx, uint64_t old, uint64_t now)
{
    if (ppi_st_flags(old) & PPI_F_WAITERS)
        ppi_futex_wake(ppi_slot_futex(ppi_slot_at(s, idx)), INT_MAX, true);
    if (ppi_st_state(now) == PPI_S_RECLAIM)
        /* release: orders the finisher's slot writes before the client's
         * reclaim scan, which acquires the count. */
        atomic_fetch_add_explicit(&s->hdr->reclaim, 1, memory_order_release);
    else
        ppi_slot_notify(s, idx, ppi_st_gen(old), ppi_st_flags(old));
    ppi_ec_notify(&s->hdr->done_ec, INT_MAX); /* service thread, pp_wait, as_completed */
}

void ppi_slot_notify(ppi_seg *s, uint32_t idx, uint32_t gen, uint32_t flags)
{
    if (!(flags & PPI_F_NOTIFY))
        return;
    /* One cell per slot and a slot use finishes once, so the ring is never
     * logically full; wait out a preempted consumer (the client's service
     * thread). Its only way to stay stuck is the client dying, after which
     * nobody needs the entry: give up after a few seconds. */
    ppi_ring_push_wait(s->cring, ppi_entry(idx, gen), PPI_CRING_PUSH_TIMEOUT_NS);
    ppi_ec_notify(&s->hdr->done_ec, INT_MAX);
}
