/* fnmap.c — function tokens across process images; see fnmap.h. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fnmap.h"

#define TOKEN_OFF_BITS 48
#define TOKEN_OFF_MASK ((UINT64_C(1) << TOKEN_OFF_BITS) - 1)

/* The GNU build-id of a loaded module, from its PT_NOTE segments. */
static uint32_t build_id_of(const struct dl_phdr_info *info, uint8_t *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            const char *name = p + sizeof *nh;
            const char *desc = name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                uint32_t n = nh->n_descsz < PPI_BUILD_ID_MAX ? nh->n_descsz : PPI_BUILD_ID_MAX;
                memcpy(out, desc, n);
                return n;
            }
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 0;
}

/* Path identifying a module: "" (the executable) becomes /proc/self/exe's
 * target, so the table names real files. */
static const char *module_path(const struct dl_phdr_info *info, char *buf, size_t len)
{
    if (info->dlpi_name && info->dlpi_name[0])
        return info->dlpi_name;
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    return buf;
}

typedef struct build_ctx {
    ppi_modtab *t;
    int err;
} build_ctx;

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    build_ctx *c = arg;
    ppi_modtab *t = c->t;
    char exe[PATH_MAX];
    const char *path = module_path(info, exe, sizeof exe);
    if (!path || strstr(path, "linux-vdso") || strstr(path, "linux-gate"))
        return 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        lo = a < lo ? a : lo;
        hi = a + ph->p_memsz > hi ? a + ph->p_memsz : hi;
    }
    size_t plen = strlen(path) + 1;
    if (lo >= hi)
        return 0;
    if (t->n == t->cap || plen > t->strings_cap - t->strings_used) {
        c->err = -ENOMEM;
        return 1;
    }
    ppi_module *m = &t->mod[t->n++];
    m->lo = lo;
    m->hi = hi;
    m->base = info->dlpi_addr;
    m->is_main = !(info->dlpi_name && info->dlpi_name[0]);
    m->path_off = t->strings_used;
    memcpy(ppi_modtab_strings(t) + t->strings_used, path, plen);
    t->strings_used += (uint32_t)plen;
    m->build_id_len = build_id_of(info, m->build_id);
    return 0;
}

typedef struct measure_ctx {
    uint64_t n, bytes;
} measure_ctx;

static int measure_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    measure_ctx *c = arg;
    char exe[PATH_MAX];
    const char *path = module_path(info, exe, sizeof exe);
    if (path) {
        c->n++;
        c->bytes += strlen(path) + 1;
    }
    return 0;
}

int ppi_modtab_measure(uint32_t *cap, uint32_t *strings_cap)
{
    measure_ctx c = {0, 0};
    dl_iterate_phdr(measure_module, &c);
    /* Slack: libraries loaded by another thread meanwhile. */
    c.n += 64;
    c.bytes += 64 * 256;
    if (c.n > PPI_MAX_MODULES)
        c.n = PPI_MAX_MODULES;
    if (c.bytes > UINT32_MAX / 2)
        return -ENOMEM;
    *cap = (uint32_t)c.n;
    *strings_cap = (uint32_t)c.bytes;
    return 0;
}

int ppi_modtab_build(ppi_modtab *t)
{
    /* relaxed: only uniqueness matters. */
    static _Atomic uint64_t next_id = 1;
    t->n = 0;
    t->strings_used = 0;
    t->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    build_ctx c = {.t = t};
    dl_iterate_phdr(add_module, &c);
    return c.err;
}

uint64_t ppi_fn_encode(const ppi_modtab *t, uintptr_t fn)
{
    /* One-entry cache per thread: submitting loops call the same function.
     * Keyed by the table's id, not its address: a later pool's segment may be
     * mapped where an earlier one was, and a library loaded where another was
     * unloaded. */
    static __thread uint64_t last_id;
    static __thread uintptr_t last_fn;
    static __thread uint64_t last_token;
    if (last_id == t->id && last_fn == fn && fn)
        return last_token;
    uint64_t a = (uint64_t)fn;
    for (uint32_t i = 0; i < t->n; i++) {
        const ppi_module *m = &t->mod[i];
        if (a >= m->lo && a < m->hi && a - m->base <= TOKEN_OFF_MASK) {
            uint64_t token = ((uint64_t)(i + 1) << TOKEN_OFF_BITS) | (a - m->base);
            last_id = t->id;
            last_fn = fn;
            last_token = token;
            return token;
        }
    }
    return 0;
}

/* Worker-local resolution: this process's load bias per table entry (arrays
 * of the table's n entries, allocated by ppi_modtab_resolve). */
static uint64_t *local_base;
static const char **local_why;
/* 1: the module is not in this image yet (the client had dlopen'ed it):
 * loaded by the first decode that needs it, not at start. A client that ever
 * loaded hwloc's plugins (X11, OpenCL, libxml2 for hwloc_gl, _opencl,
 * _xml_libxml) would otherwise make every spawned worker and forkserver
 * manager dlopen them all, about 10 ms, for functions nobody submits. */
static uint8_t *local_pending;

typedef struct find_ctx {
    bool is_main;
    const char *path;
    const uint8_t *bid;
    uint32_t bid_len;
    int found;
    int bid_mismatch;
    uint64_t base;
} find_ctx;

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    find_ctx *c = arg;
    bool is_main = !(info->dlpi_name && info->dlpi_name[0]);
    if (c->is_main != is_main)
        return 0;
    /* The program is the program, whatever its file is called now (a
     * replaced binary reads "... (deleted)"): the build-id decides. */
    if (!is_main && strcmp(info->dlpi_name, c->path) != 0)
        return 0;
    uint8_t bid[PPI_BUILD_ID_MAX];
    uint32_t n = build_id_of(info, bid);
    if (n != c->bid_len || memcmp(bid, c->bid, n) != 0) {
        c->bid_mismatch = 1;
        return 0;
    }
    c->found = 1;
    c->base = info->dlpi_addr;
    return 1;
}

/* Find module @i of @t in this process; with @may_load, dlopen it when it is
 * not loaded (and load it is not: it stays pending). Returns 0 (resolved),
 * 1 (pending) or -1 (unusable: local_why[i] says why). */
static int resolve_one(const ppi_modtab *t, uint32_t i, bool may_load)
{
    const ppi_module *m = &t->mod[i];
    find_ctx c = {.is_main = m->is_main,
                  .path = ppi_modtab_strings(t) + m->path_off,
                  .bid = m->build_id,
                  .bid_len = m->build_id_len};
    local_pending[i] = 0;
    dl_iterate_phdr(find_module, &c);
    if (!c.found && !c.bid_mismatch && !c.is_main) {
        if (!may_load) {
            local_pending[i] = 1;
            return 1;
        }
        /* The client had it loaded (dlopen before the pool): load it too. */
        if (dlopen(c.path, RTLD_NOW | RTLD_GLOBAL))
            dl_iterate_phdr(find_module, &c);
    }
    if (c.found) {
        local_base[i] = c.base;
        return 0;
    }
    local_why[i] = c.bid_mismatch ? "its module differs from the client's (build-id)"
                                  : "its module could not be loaded in the worker";
    return -1;
}

void ppi_modtab_resolve(const ppi_modtab *t, bool same_image)
{
    free(local_base);
    free(local_why);
    free(local_pending);
    size_t n = t->n ? t->n : 1;
    local_base = calloc(n, sizeof *local_base);
    local_why = calloc(n, sizeof *local_why);
    local_pending = calloc(n, sizeof *local_pending);
    if (!local_base || !local_why || !local_pending) {
        free(local_base);
        free(local_why);
        free(local_pending);
        local_base = NULL; /* every decode then fails cleanly (PP_ENOFUNC) */
        local_why = NULL;
        local_pending = NULL;
        return;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        local_base[i] = same_image ? t->mod[i].base : 0;
        local_why[i] = NULL;
        if (!same_image)
            resolve_one(t, i, false);
    }
}

uintptr_t ppi_fn_decode(const ppi_modtab *t, uint64_t token, const char **why)
{
    uint64_t mod = token >> TOKEN_OFF_BITS;
    if (mod == 0 || mod > t->n) {
        if (why)
            *why = "invalid function token";
        return 0;
    }
    if (!local_base) {
        if (why)
            *why = "no memory for the module table in the worker";
        return 0;
    }
    /* A worker is single-threaded: a lazy load needs no lock. */
    if (local_pending[mod - 1])
        resolve_one(t, (uint32_t)(mod - 1), true);
    if (!local_base[mod - 1] && local_why[mod - 1]) {
        if (why)
            *why = local_why[mod - 1];
        return 0;
    }
    return (uintptr_t)(local_base[mod - 1] + (token & TOKEN_OFF_MASK));
}
