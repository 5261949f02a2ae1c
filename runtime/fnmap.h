/*
 * fnmap.h — calling the same function pointer in another process image.
 *
 * Under fork a worker's image is a copy of the client's, so a pointer is
 * valid as is. Under spawn and forkserver the worker is a fresh exec of the
 * program: with ASLR every module (the executable and each shared library)
 * sits at another address. So a function pointer crosses as a *token*:
 * (index of its module in the segment's module table, offset in that module).
 *
 *  - The client fills the module table at pp_executor_create (dl_iterate_phdr):
 *    path, GNU build-id, and the address ranges of its loaded segments.
 *  - Encoding (client, at submit): find the module whose range holds the
 *    pointer; none = the function is not callable in the workers (e.g. its
 *    library was dlopen'ed after the pool started): PP_ENOFUNC at submit.
 *  - Decoding (worker): base of the same module in this process + offset. A
 *    worker resolves the table once at start (a forkserver manager does it
 *    for the workers it forks); a module it lacks (the client had dlopen'ed
 *    it before creating the pool) it dlopen()s when a token first needs it,
 *    not at start; a module whose build-id differs is unusable, and a task
 *    that needs it fails cleanly (PP_ENOFUNC) instead of jumping to a wrong
 *    address.
 */
#ifndef PPOOL_RUNTIME_FNMAP_H
#define PPOOL_RUNTIME_FNMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "segment.h"

/* Modules a token can name (16 bits of module index above 48 of offset). The
 * table itself is sized from the modules actually loaded at create. */
#define PPI_MAX_MODULES 65535u
#define PPI_BUILD_ID_MAX 32

typedef struct ppi_module {
    uint64_t lo, hi;          /* client address range (client use only) */
    uint64_t base;            /* client load bias (dlpi_addr) */
    uint32_t path_off;        /* offset of the NUL-terminated path in the string area */
    uint32_t is_main;         /* the program itself: matched as such, not by path
                                 (its file may have been replaced or renamed) */
    uint32_t build_id_len;
    uint8_t build_id[PPI_BUILD_ID_MAX];
} ppi_module;

typedef struct ppi_modtab {
    uint64_t id;              /* unique per table in this process (encode cache key) */
    uint32_t n;
    uint32_t strings_used;
    uint32_t cap;             /* entries mod[] has room for (set at segment layout) */
    uint32_t strings_cap;     /* bytes of the path area, which follows mod[cap] */
    ppi_module mod[];
} ppi_modtab;

static inline char *ppi_modtab_strings(const ppi_modtab *t)
{
    return (char *)(uintptr_t)(t->mod + t->cap);
}

/* Bytes of a table with room for @cap modules and @strings_cap path bytes. */
static inline uint64_t ppi_modtab_bytes(uint32_t cap, uint32_t strings_cap)
{
    return sizeof(ppi_modtab) + (uint64_t)cap * sizeof(ppi_module) + strings_cap;
}

/* Client: the room a table needs for the modules loaded now, with slack for
 * libraries another thread loads before ppi_modtab_build runs. Returns 0 or
 * -ENOMEM (more than PPI_MAX_MODULES modules). */
int ppi_modtab_measure(uint32_t *cap, uint32_t *strings_cap);

/* Client: fill @t (cap and strings_cap set) from this process's loaded
 * modules. Returns 0 or -ENOMEM (more modules or path bytes than its room). */
int ppi_modtab_build(ppi_modtab *t);

/* Client: the token for function address @fn (a function pointer cast to
 * uintptr_t), or 0 if no module of the table holds it. */
uint64_t ppi_fn_encode(const ppi_modtab *t, uintptr_t fn);

/* Worker: resolve every module of @t in this process (once, at start);
 * one that is not loaded here is left pending and dlopen()ed by the first
 * ppi_fn_decode that needs it. @same_image: this process is a fork of the client (fork start method), so
 * every module is where the client had it: nothing to look up. */
void ppi_modtab_resolve(const ppi_modtab *t, bool same_image);

/* Worker: the address for @token in this process, or 0 if its module is
 * not usable here (@why receives a reason). */
uintptr_t ppi_fn_decode(const ppi_modtab *t, uint64_t token, const char **why);

/* The module table a token is encoded with or decoded by, for code that
 * holds a task or an executor rather than a segment (pp_map's runner and
 * client): the worker's view of its segment (worker.c), the client's
 * (executor.c). */
struct pp_task;
struct pp_executor;
const ppi_modtab *ppi_task_modtab(const struct pp_task *t);
const ppi_modtab *ppi_executor_modtab(const struct pp_executor *ex);

#endif
