/*
 * test_slab.c — the memory futures come from (runtime/slab.h): objects are
 * distinct, aligned and intact under threads; empty chunks are unmapped
 * beyond the spares and spares are reused; chunks are advised as huge pages
 * (and mapped as such where the kernel allows); fork() while other threads
 * allocate leaves the child a working slab; pp_future uses it and gives
 * every object back; under AddressSanitizer a freed object is poisoned.
 *
 * Each test runs in its own process (Criterion). Tests that start pools or
 * processes check that none outlive them (pp_test_teardown).
 */
#include "futures_util.h"
#include "slab.h"
#include "tunables.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif
#ifdef T_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

static ppi_slab_stats stats_of(ppi_slab *s)
{
    ppi_slab_stats st;
    ppi_slab_get_stats(s, &st);
    return st;
}

static uintptr_t chunk_base(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(PPI_SLAB_CHUNK - 1);
}

/* The VmFlags line of the mapping that contains @p (in /proc/self/smaps), and
 * its AnonHugePages in kB (-1 when not found). */
static long smaps_of(const void *p, char *flags, size_t flags_size)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    char line[512];
    bool inside = false;
    long huge_kb = -1;
    flags[0] = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            if (inside)
                break;
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (!inside)
            continue;
        long kb;
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            huge_kb = kb;
        if (!strncmp(line, "VmFlags:", 8))
            snprintf(flags, flags_size, "%.*s", (int)flags_size - 1, line + 8);
    }
    fclose(f);
    return huge_kb;
}

/* ------------------------------------------------------------------------ */

Test(slab, objects_are_distinct_aligned_and_in_their_chunk, .timeout = 60)
{
    static ppi_slab s = PPI_SLAB_INIT(40);
    cr_assert_eq(s.obj_size, 48, "sizes round up to 16 bytes");
    ppi_slab_stats st = stats_of(&s);
    size_t n = 3 * st.per_chunk + 7; /* four chunks, the last one partial */
    unsigned char **objs = calloc(n, sizeof *objs);
    cr_assert_not_null(objs);
    for (size_t i = 0; i < n; i++) {
        objs[i] = ppi_slab_alloc(&s);
        cr_assert_not_null(objs[i]);
        cr_assert_eq((uintptr_t)objs[i] % 16, 0, "object %zu is not 16-byte aligned", i);
        cr_assert_geq((uintptr_t)objs[i], chunk_base(objs[i]) + 64, "object over a chunk header");
        cr_assert_leq((uintptr_t)objs[i] + 48, chunk_base(objs[i]) + PPI_SLAB_CHUNK,
                      "object %zu crosses its chunk's end", i);
        memset(objs[i], (int)(i & 0xff), 48);
    }
    st = stats_of(&s);
    cr_expect_eq(st.live, n);
    cr_expect_eq(st.chunks, 4);
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < 48; b++)
            cr_assert_eq(objs[i][b], (unsigned char)(i & 0xff), "object %zu was overwritten", i);
    for (size_t i = 0; i < n; i++)
        ppi_slab_free(&s, objs[i]);
    ppi_slab_free(&s, NULL); /* ignored */
    st = stats_of(&s);
    cr_expect_eq(st.live, 0);
    free(objs);
}

Test(slab, empty_chunks_are_unmapped_beyond_the_spares_and_spares_reused, .timeout = 60)
{
    static ppi_slab s = PPI_SLAB_INIT(256);
    size_t per = stats_of(&s).per_chunk;
    size_t nchunks = PPI_SLAB_SPARE_CHUNKS + 3;
    size_t n = nchunks * per;
    void **objs = calloc(n, sizeof *objs);
    cr_assert_not_null(objs);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(objs[i] = ppi_slab_alloc(&s));
    ppi_slab_stats st = stats_of(&s);
    cr_assert_eq(st.chunks, nchunks, "%zu full chunks expected, %zu mapped", nchunks, st.chunks);
    cr_assert_eq(st.spare, 0);
    for (size_t i = 0; i < n; i++)
        ppi_slab_free(&s, objs[i]);
    st = stats_of(&s);
    cr_expect_eq(st.live, 0);
    cr_expect_eq(st.spare, PPI_SLAB_SPARE_CHUNKS, "empty chunks kept: %zu", st.spare);
    cr_expect_eq(st.chunks, PPI_SLAB_SPARE_CHUNKS, "chunks still mapped: %zu", st.chunks);

    /* The spares serve the next burst: no new mapping while they last. */
    for (size_t i = 0; i < PPI_SLAB_SPARE_CHUNKS * per; i++)
        cr_assert_not_null(objs[i] = ppi_slab_alloc(&s));
    st = stats_of(&s);
    cr_expect_eq(st.chunks, PPI_SLAB_SPARE_CHUNKS, "a spare was not reused");
    cr_expect_eq(st.spare, 0);
    for (size_t i = 0; i < PPI_SLAB_SPARE_CHUNKS * per; i++)
        ppi_slab_free(&s, objs[i]);
    free(objs);
}

Test(slab, a_freed_object_is_the_next_one_given_and_full_chunks_regain_room, .timeout = 60)
{
    static ppi_slab s = PPI_SLAB_INIT(1024);
    size_t per = stats_of(&s).per_chunk;
    void **objs = calloc(per + 1, sizeof *objs);
    cr_assert_not_null(objs);
    for (size_t i = 0; i < per; i++)
        objs[i] = ppi_slab_alloc(&s);
    cr_assert_eq(stats_of(&s).chunks, 1, "one chunk holds %zu objects", per);
    /* Full: the next object opens a second chunk. */
    objs[per] = ppi_slab_alloc(&s);
    cr_assert_neq(chunk_base(objs[per]), chunk_base(objs[0]));
    cr_assert_eq(stats_of(&s).chunks, 2);
    /* A hole in the full chunk makes it the one allocations come from. */
    void *hole = objs[per / 2];
    ppi_slab_free(&s, hole);
    objs[per / 2] = ppi_slab_alloc(&s);
    cr_expect_eq(objs[per / 2], hole, "the freed object was not reused");
    for (size_t i = 0; i <= per; i++)
        ppi_slab_free(&s, objs[i]);
    cr_expect_eq(stats_of(&s).live, 0);
    free(objs);
}

Test(slab, chunks_are_advised_and_mapped_as_huge_pages_where_allowed, .timeout = 60)
{
    static ppi_slab s = PPI_SLAB_INIT(64);
    size_t per = stats_of(&s).per_chunk;
    void **objs = calloc(per, sizeof *objs);
    cr_assert_not_null(objs);
    for (size_t i = 0; i < per; i++) {
        objs[i] = ppi_slab_alloc(&s);
        memset(objs[i], 1, 64); /* touch the whole chunk */
    }
    cr_assert_eq(chunk_base(objs[0]), chunk_base(objs[per - 1]));
    char flags[256];
    long huge_kb = smaps_of(objs[0], flags, sizeof flags);
    cr_assert_neq(flags[0], 0, "the chunk's mapping is not in /proc/self/smaps");
    cr_expect_neq(strstr(flags, " hg"), NULL, "the chunk is not advised MADV_HUGEPAGE: %s", flags);
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = 0;
        fclose(f);
    }
    if (strstr(mode, "[never]") || !mode[0]) {
        cr_log_info("transparent huge pages are off here (%s): mapped with 4 KiB pages",
                    mode[0] ? mode : "no THP");
    } else {
        /* defrag may still fail to find a free 2 MiB page: not an error of
         * ours, so this is informational unless the kernel took it. */
        cr_log_info("AnonHugePages of the chunk: %ld kB (THP %.*s)", huge_kb, (int)strcspn(mode, "\n"), mode);
        if (huge_kb == 0)
            cr_log_warn("the kernel did not give the chunk a huge page (memory fragmented?)");
        else
            cr_expect_eq(huge_kb, 2048, "a chunk is one huge page, got %ld kB", huge_kb);
    }
    for (size_t i = 0; i < per; i++)
        ppi_slab_free(&s, objs[i]);
    free(objs);
}

/* ---- threads and fork --------------------------------------------------- */

static ppi_slab threaded_slab = PPI_SLAB_INIT(96);
static atomic_bool threads_stop;

/* Allocates and frees in a window, stamping each object with its owner and
 * checking the stamp before freeing. */
static void *churn(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    enum { WINDOW = 300 };
    uint64_t *win[WINDOW] = {0};
    size_t rounds = 0;
    while (!atomic_load(&threads_stop) || rounds < 200000) {
        size_t k = rounds++ % WINDOW;
        if (win[k]) {
            for (int j = 0; j < 12; j++)
                if (win[k][j] != (me << 32 | k))
                    return (void *)1;
            ppi_slab_free(&threaded_slab, win[k]);
        }
        win[k] = ppi_slab_alloc(&threaded_slab);
        if (!win[k])
            return (void *)2;
        for (int j = 0; j < 12; j++)
            win[k][j] = me << 32 | k;
        if (rounds > 2000000)
            break;
    }
    for (size_t k = 0; k < WINDOW; k++)
        ppi_slab_free(&threaded_slab, win[k]);
    return NULL;
}

Test(slab, threads_share_a_slab_without_losing_or_mixing_objects, .timeout = 120)
{
    enum { T = 4 };
    pthread_t th[T];
    atomic_store(&threads_stop, false);
    for (uintptr_t i = 0; i < T; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
    atomic_store(&threads_stop, true);
    for (int i = 0; i < T; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        cr_expect_null(rc, "thread %d: %s", i, rc == (void *)1 ? "an object was overwritten"
                                                                : "an allocation failed");
    }
    cr_expect_eq(stats_of(&threaded_slab).live, 0);
}

Test(slab, fork_while_threads_allocate_leaves_the_child_a_working_slab, PPT_FIXTURE,
     .timeout = 120)
{
    enum { T = 2, FORKS = 200 };
    pthread_t th[T];
    atomic_store(&threads_stop, false);
    for (uintptr_t i = 0; i < T; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, churn, (void *)(i + 1)), 0);
    for (int n = 0; n < FORKS; n++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            /* A lock held by a parent thread at fork() would hang here. */
            void *p[1000];
            for (int i = 0; i < 1000; i++)
                if (!(p[i] = ppi_slab_alloc(&threaded_slab)))
                    _exit(2);
            for (int i = 0; i < 1000; i++)
                ppi_slab_free(&threaded_slab, p[i]);
            _exit(0);
        }
        /* Bounded: a child stuck on a lock is killed and reported. */
        int status = 0;
        pid_t got = 0;
        double deadline = ppt_deadline(20.0);
        while ((got = waitpid(pid, &status, WNOHANG)) == 0 && !ppt_expired(deadline))
            ppt_sleep(0.001);
        if (got == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            atomic_store(&threads_stop, true);
            cr_assert_fail("child %d did not finish in 20 s: its slab lock was held at fork()", n);
        }
        cr_assert_eq(got, pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", n,
                  status);
    }
    atomic_store(&threads_stop, true);
    for (int i = 0; i < T; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        cr_expect_null(rc);
    }
}

/* ---- pp_future ------------------------------------------------------------ */

Test(slab, futures_come_from_the_slab_and_all_go_back, PPT_FIXTURE, .timeout = 120)
{
    enum { N = 20000 };
    pp_config cfg;
    pool_config(&cfg, 1);
    cfg.slots = 64; /* most of them wait in the backlog */
    size_t live0 = stats_of(&ppi_future_slab).live;
    pp_executor *ex = make_pool_cfg(&cfg);
    pp_future **fs = calloc(N, sizeof *fs);
    cr_assert_not_null(fs);
    for (size_t i = 0; i < N; i++) {
        uint64_t v = i;
        fs[i] = submit_ok(ex, ppt_task_echo, &v, sizeof v);
    }
    cr_expect_eq(stats_of(&ppi_future_slab).live, live0 + N);
    for (size_t i = 0; i < N; i++) {
        const void *data;
        size_t size;
        cr_assert_eq(pp_future_result(fs[i], 60.0, &data, &size), 0);
        cr_assert_eq(size, sizeof(uint64_t));
        cr_assert_eq(*(const uint64_t *)data, i);
        pp_future_release(fs[i]);
    }
    free(fs);
    /* The service thread may still hold a reference for a moment after the
     * user's last release; destroy joins it. */
    cr_assert_eq(pp_executor_destroy(ex), 0);
    cr_expect_eq(stats_of(&ppi_future_slab).live, live0, "futures not given back");
    cr_expect_leq(stats_of(&ppi_future_slab).chunks, PPI_SLAB_SPARE_CHUNKS,
                  "empty chunks beyond the spares stay mapped");
}

#ifdef T_ASAN
Test(slab, a_freed_object_is_poisoned_under_asan, .timeout = 30)
{
    static ppi_slab s = PPI_SLAB_INIT(128);
    char *a = ppi_slab_alloc(&s);
    char *b = ppi_slab_alloc(&s);
    cr_assert_eq(__asan_region_is_poisoned(a, 128), NULL, "a live object is poisoned");
    cr_assert_not_null(__asan_address_is_poisoned(b + 128) ? b + 128 : NULL,
                       "the never-used object after b is not poisoned");
    ppi_slab_free(&s, a);
    cr_expect(__asan_address_is_poisoned(a), "a freed object is not poisoned");
    cr_expect(__asan_address_is_poisoned(a + 127));
    char *c = ppi_slab_alloc(&s);
    cr_expect_eq(c, a);
    cr_expect_eq(__asan_region_is_poisoned(c, 128), NULL, "a reused object stays poisoned");
    ppi_slab_free(&s, b);
    ppi_slab_free(&s, c);
}
#endif
