/*
 * thread_env.c — the thread-count variables of a worker with k cores; see
 * thread_env.h.
 */
#include "thread_env.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tenv_names[PPI_TENV_N] = {
    "OMP_NUM_THREADS",  "OPENBLAS_NUM_THREADS",   "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
    "OMP_PLACES",       "OMP_PROC_BIND",
};
#define TENV_PLACES 6
#define TENV_BIND 7

uint32_t ppi_tenv_keep_mask(bool override)
{
    uint32_t keep = 0;
    if (override)
        return 0;
    for (int i = 0; i < PPI_TENV_N; i++)
        if (getenv(tenv_names[i]))
            keep |= 1u << i;
    return keep;
}

/* "{a},{b},..." for the PUs of @p, lowest first. */
static void format_places(char *buf, size_t len, const ppi_place *p)
{
    size_t used = 0;
    buf[0] = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && used + 1 < len; cpu++) {
        if (!CPU_ISSET(cpu, &p->cpus))
            continue;
        int w = snprintf(buf + used, len - used, "%s{%d}", used ? "," : "", cpu);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

void ppi_tenv_make(ppi_tenv *e, uint32_t k, uint32_t keep, const ppi_place *p)
{
    bool pinned = p && CPU_COUNT(&p->cpus) > 0;
    e->n = 0;
    snprintf(e->count, sizeof e->count, "%u", k);
    for (int i = 0; i < PPI_TENV_COUNTS; i++)
        if (!(keep & (1u << i))) {
            e->name[e->n] = tenv_names[i];
            e->value[e->n++] = e->count;
        }
    e->places[0] = 0;
    if (!pinned)
        return; /* nothing of its own to describe */
    if (!(keep & (1u << TENV_PLACES))) {
        format_places(e->places, sizeof e->places, p);
        e->name[e->n] = tenv_names[TENV_PLACES];
        e->value[e->n++] = e->places;
    }
    if (!(keep & (1u << TENV_BIND))) {
        e->name[e->n] = tenv_names[TENV_BIND];
        e->value[e->n++] = "close";
    }
}

bool ppi_tenv_sets(const ppi_tenv *e, const char *entry)
{
    for (int i = 0; i < e->n; i++) {
        size_t n = strlen(e->name[i]);
        if (strncmp(entry, e->name[i], n) == 0 && entry[n] == '=')
            return true;
    }
    return false;
}

/* Call @sym(@k) if this image has it: a runtime that read its variable
 * when the program started (FORK, FORKSERVER) learns the count this way. */
static void call_setter(const char *sym, uint32_t k, bool as_long)
{
    /* A union, not a cast: ISO C has no object-to-function pointer cast. */
    union {
        void *obj;
        void (*takes_int)(int);
        void (*takes_long)(long);
    } f = {.obj = dlsym(RTLD_DEFAULT, sym)};
    if (!f.obj)
        return;
    if (as_long) /* BLIS: dim_t, a 64-bit integer in its default build */
        f.takes_long((long)k);
    else
        f.takes_int((int)k);
}

void ppi_tenv_apply(const ppi_tenv *e, uint32_t k, uint32_t keep)
{
    for (int i = 0; i < e->n; i++)
        setenv(e->name[i], e->value[i], 1);
    if (!(keep & (1u << 0)))
        call_setter("omp_set_num_threads", k, false);
    if (!(keep & (1u << 1)))
        call_setter("openblas_set_num_threads", k, false);
    if (!(keep & (1u << 2)))
        call_setter("MKL_Set_Num_Threads", k, false);
    if (!(keep & (1u << 3)))
        call_setter("bli_thread_set_num_threads", k, true);
}
