/*
 * bench_wordhash.c — the main job: the Python guide's word-hash workload
 * (SHA-512 hex digest of each of 1,049,938 words) as a chunksize sweep, with
 * ppool's map, OpenMP threads and CPython's ProcessPoolExecutor in one run.
 *
 *   ./build/release/bench_wordhash --out out          # the README's command
 *   ./build/release/bench_wordhash --quick --out /tmp/wq
 *
 * Every sweep point times, as the guide does, pool creation + the map +
 * pool shutdown: ppool = pp_executor_create .. pp_map .. pp_executor_destroy;
 * Python = `with ProcessPoolExecutor(w) as ex: set(ex.map(...))`. OpenMP's
 * thread team cannot be torn down, so it is created once (warm-up) and each
 * point times the parallel loop only: that favours OpenMP, the in-process
 * limit. ppool runs twice per point:
 *  - "ppool": the copying path of pp_map. The words stay in client memory and
 *    the digests go to the caller's array (allocated and touched once, outside
 *    the timings, like OpenMP's); the map copies the words into shared memory
 *    per chunk and the digests back.
 *  - "ppool-shm": the zero-copy path. Each run creates the pool, pp_shm_alloc's
 *    the packed words (bytes + offsets) and the digest array, memcpy's the
 *    words in (18 MB of input staging, timed), maps with the inputs read in
 *    place and the digests written in place, then pp_shm_free's and destroys
 *    the pool (timed); the check reads the digests in shared memory, between
 *    the map and pp_shm_free, outside the timing.
 *
 * Checks: every C run's digest array equals the serial one byte for byte;
 * every system's *set* of digests has the same size and the same checksum
 * (sum and xor of the first 64 bits of each distinct digest), which is what
 * the Python peer reports. A mismatch exits with status 1.
 *
 * docs/map.md describes the options and the output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef PP_HAVE_CRYPTO
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA512_Init & co.: the fastest path */
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#endif

#include "ppool.h"

extern char **environ;

static const char *prog = "bench_wordhash";

#include "bench_util.h" /* after prog: its helpers use it */

#define WORDS_FULL 1049938u
#define DISTINCT_FULL 979250u
#define HEX 128 /* bytes of one digest: 128 hex digits, no NUL */

/* ------------------------------------------------------------------------ */
/* Small utilities                                                            */
/* ------------------------------------------------------------------------ */

/* Whether big client arrays are marked MADV_DONTFORK (see big_alloc). */
static bool g_dontfork = true;
/* Start methods the sweep's pools used (bit per pp_start_method). */
static unsigned g_methods;
static const char *method_name(unsigned m)
{
    static const char *names[] = {"auto", "fork", "spawn", "forkserver"};
    return m < 4 ? names[m] : "?";
}

/*
 * A large client array, page-aligned and touched once. With g_dontfork it is
 * marked MADV_DONTFORK: a fork-based pool (ppool, like CPython's fork
 * context) otherwise shares every resident page of the client with the
 * manager and the workers copy-on-write, and the client then takes a page
 * fault and a 4 KiB copy on the first write to each page (~100 ms for the
 * 128 MB digest array on the reference machine). ppool's workers never read
 * client memory (the map copies what they need into shared memory), so they
 * lose nothing by not inheriting these arrays.
 */
static void *big_alloc(size_t n)
{
    size_t len = (n + 4095) & ~(size_t)4095;
    void *p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
        exit(1);
    }
    if (g_dontfork)
        madvise(p, len ? len : 4096, MADV_DONTFORK);
    memset(p, 0, n);
    return p;
}

static void big_free(void *p, size_t n)
{
    if (p)
        munmap(p, ((n + 4095) & ~(size_t)4095) ? ((n + 4095) & ~(size_t)4095) : 4096);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s wants an integer in [%ld, %ld]\n", prog, opt, lo, hi);
        exit(2);
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* Progress bar (stderr)                                                      */
/* ------------------------------------------------------------------------ */

static int pb_total, pb_done;
static bool pb_tty;

static void progress(const char *what)
{
    int width = 30, fill = pb_total ? pb_done * width / pb_total : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    if (pb_tty)
        fprintf(stderr, "\r[%s] %3d/%d %-44.44s", bar, pb_done, pb_total, what);
    else
        fprintf(stderr, "[%s] %3d/%d %s\n", bar, pb_done, pb_total, what);
    fflush(stderr);
}

static void progress_end(void)
{
    if (pb_tty)
        fprintf(stderr, "\r%-90s\r", "");
}

/* ------------------------------------------------------------------------ */
/* SHA-512 hex digest                                                         */
/* ------------------------------------------------------------------------ */

#include "wordhash_kernel.h" /* sha512_hex, shared with the ppool-tune plug-in */

/* ppool's item function: one word in, its digest out. */
static int hash_item(pp_map_item *it)
{
    sha512_hex(it->in[0], it->in_size[0], it->out);
    return 0;
}

/* The no-op item function of the throughput check: copy 8 bytes. */
static int noop_item(pp_map_item *it)
{
    memcpy(it->out, it->in[0], 8);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The word list                                                              */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

typedef struct words {
    size_t n, distinct;
    char *data;       /* the words back to back, in list order */
    size_t *off;      /* n + 1 offsets into data */
} words;

/*
 * Deterministic list: @distinct different lowercase words of 3..12 letters
 * (splitmix64, duplicates rejected with a hash set), then n - distinct
 * repeats of words picked at random, then a Fisher-Yates shuffle.
 */
static void make_words(words *w, size_t n, size_t distinct)
{
    uint64_t seed = 0x5eed0f1e4a5c11ull;
    char *uniq = xmalloc(distinct * 12);
    uint8_t *ulen = xmalloc(distinct);
    size_t hcap = 1;
    while (hcap < distinct * 2)
        hcap <<= 1;
    uint32_t *ht = calloc(hcap, sizeof *ht);
    if (!ht) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    size_t have = 0;
    while (have < distinct) {
        uint64_t r = splitmix64(&seed);
        size_t len = 3 + (size_t)(r % 10);
        char *p = uniq + have * 12;
        uint64_t bits = splitmix64(&seed), bits2 = splitmix64(&seed);
        for (size_t i = 0; i < len; i++) {
            uint64_t b = i < 6 ? bits : bits2;
            p[i] = (char)('a' + (b >> (10 * (i % 6))) % 26);
        }
        uint64_t hv = fnv1a(p, len);
        size_t slot = (size_t)hv & (hcap - 1);
        bool dup = false;
        while (ht[slot]) {
            size_t o = ht[slot] - 1;
            if (ulen[o] == len && memcmp(uniq + o * 12, p, len) == 0) {
                dup = true;
                break;
            }
            slot = (slot + 1) & (hcap - 1);
        }
        if (dup)
            continue;
        ht[slot] = (uint32_t)(have + 1);
        ulen[have] = (uint8_t)len;
        have++;
    }
    free(ht);
    size_t *order = xmalloc(n * sizeof *order);
    for (size_t i = 0; i < distinct; i++)
        order[i] = i;
    for (size_t i = distinct; i < n; i++)
        order[i] = (size_t)(splitmix64(&seed) % distinct);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(splitmix64(&seed) % (i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    w->n = n;
    w->distinct = distinct;
    w->off = big_alloc((n + 1) * sizeof *w->off);
    w->data = big_alloc(n * 12);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        w->off[i] = o;
        memcpy(w->data + o, uniq + order[i] * 12, ulen[order[i]]);
        o += ulen[order[i]];
    }
    w->off[n] = o;
    free(order);
    free(uniq);
    free(ulen);
}

static bool write_words(const words *w, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    for (size_t i = 0; i < w->n; i++) {
        fwrite(w->data + w->off[i], 1, w->off[i + 1] - w->off[i], f);
        fputc('\n', f);
    }
    return fclose(f) == 0;
}

/* ------------------------------------------------------------------------ */
/* Digest-set checksum                                                        */
/* ------------------------------------------------------------------------ */

typedef struct dsum {
    uint64_t distinct, sum, xr;
} dsum;

static uint64_t hex64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        v = (v << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v;
}

/* The set of n digests: its size and the sum / xor of the 64-bit prefixes of
 * its members (as peer_wordhash.py computes it). */
static dsum digest_set(const char *out, size_t n, uint64_t *scratch)
{
    for (size_t i = 0; i < n; i++)
        scratch[i] = hex64(out + i * HEX);
    qsort(scratch, n, sizeof *scratch, cmp_u64);
    dsum d = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (i && scratch[i] == scratch[i - 1])
            continue;
        d.distinct++;
        d.sum += scratch[i];
        d.xr ^= scratch[i];
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* The machine                                                                */
/* ------------------------------------------------------------------------ */

static void print_machine(pp_executor *ex)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int allowed = -1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        allowed = CPU_COUNT(&set);
    char model[256];
    cpu_model(model, sizeof model);
    printf("machine:  %ld CPUs online (%d allowed), %s\n", online, allowed, model);
    printf("topology: %s\n", pp_executor_topology(ex));
    struct utsname u;
    if (uname(&u) == 0)
        printf("kernel:   %s %s %s\n", u.sysname, u.release, u.machine);
    /* ppool-shm's fresh pages: huge pages on shared memory (pp_config.huge_pages
     * advises them; the kernel decides). */
    char thp[128] = "unknown";
    FILE *tf = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
    if (tf) {
        if (!fgets(thp, sizeof thp, tf))
            snprintf(thp, sizeof thp, "unknown");
        thp[strcspn(thp, "\n")] = 0;
        fclose(tf);
    }
    pp_config dc;
    pp_config_init(&dc); /* what new_pool's pools get */
    printf("huge pages on shared memory: shmem_enabled = %s; pp_config.huge_pages = %d\n", thp,
           dc.huge_pages);
#if defined(__clang__)
    const char *cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char *cc = "gcc " __VERSION__;
#else
    const char *cc = "unknown compiler";
#endif
#ifdef PP_HAVE_CRYPTO
    const char *sha = OPENSSL_VERSION_TEXT " (SHA512_Init/Update/Final)";
#else
    const char *sha = "built-in portable SHA-512 (no libcrypto at build time)";
#endif
#if defined(_OPENMP)
    printf("compiler: %s%s, OpenMP %d; SHA-512: %s\n", cc,
#if defined(__OPTIMIZE__)
           "",
#else
           " (NOT optimized)",
#endif
           _OPENMP, sha);
#else
    printf("compiler: %s; no OpenMP; SHA-512: %s\n", cc, sha);
#endif
}

/* ------------------------------------------------------------------------ */
/* Python peer                                                                */
/* ------------------------------------------------------------------------ */

static void exe_dir(char *out, size_t len)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        snprintf(out, len, ".");
        return;
    }
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, len, "%s", buf);
}

static bool find_peer(const char *opt, char *out, size_t len)
{
    if (opt) {
        snprintf(out, len, "%s", opt);
        return readable_file(out);
    }
    char dir[PATH_MAX], cand[3][2 * PATH_MAX];
    int nc = 0;
    const char *src = getenv("PPOOL_SRC");
    if (src && *src)
        snprintf(cand[nc++], sizeof cand[0], "%.*s/bench/peer_wordhash.py", PATH_MAX, src);
    exe_dir(dir, sizeof dir);
    snprintf(cand[nc++], sizeof cand[0], "%s/../bench/peer_wordhash.py", dir);
    snprintf(cand[nc++], sizeof cand[0], "%s/../../bench/peer_wordhash.py", dir);
    for (int i = 0; i < nc; i++)
        if (readable_file(cand[i])) {
            char real[PATH_MAX];
            snprintf(out, len, "%s", realpath(cand[i], real) ? real : cand[i]);
            return true;
        }
    return false;
}

static uint64_t json_u64(const char *js, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p)
        return 0;
    return strtoull(p + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                    */
/* ------------------------------------------------------------------------ */

/* The two ppool variants: SYS_PPOOL maps the client's arrays (the copying
 * path: words staged into shared memory per chunk, digests copied back);
 * SYS_PPSHM maps arrays allocated with pp_shm_alloc (words + offsets copied in
 * once per run, inside the timing; digests written in place by the workers;
 * the map itself copies nothing). */
enum { SYS_PPOOL, SYS_PPSHM, SYS_OMP, SYS_PY, NSYS };
static const char *sys_name[NSYS] = {"ppool", "ppool-shm", "openmp", "python"};

/* Where one ppool run's time goes (seconds; medians per point). */
typedef struct phases {
    double create;   /* pp_executor_create (+ the pp_shm_alloc calls for ppool-shm) */
    double stage;    /* ppool-shm: memcpy of the words + offsets into shared memory */
    double map;      /* pp_map */
    double map_cpu;  /* the client thread's CPU time inside pp_map */
    double teardown; /* (pp_shm_free +) pp_executor_destroy */
} phases;

typedef struct point {
    bool have;
    double sec, min, max;
    int runs;
    bool ok; /* digests check */
} point;

#define MAXSIZES 16

typedef struct report {
    size_t n, distinct;
    int workers;
    int nsizes;
    size_t sizes[MAXSIZES];
    point pt[NSYS][MAXSIZES];
    phases ph[2][MAXSIZES]; /* [SYS_PPOOL or SYS_PPSHM][size] */
    point serial_c, serial_py;
    dsum ref;
    double noop_all, noop_iter; /* items/s, chunksize 1 */
    size_t noop_n;
    char pyver[32];
    int failures;
} report;

/* ------------------------------------------------------------------------ */
/* Measurements                                                               */
/* ------------------------------------------------------------------------ */

static void die_pp(const char *what, int rc, const pp_map_status *st)
{
    progress_end();
    fprintf(stderr, "%s: %s: %s", prog, what, pp_strerror(rc));
    if (st && st->message[0])
        fprintf(stderr, " (item %zu: %s)", st->done, st->message);
    fprintf(stderr, "\n");
    exit(1);
}

static pp_executor *new_pool(int workers)
{
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = workers;
    pp_executor *ex;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        die_pp("pp_executor_create", rc, NULL);
    return ex;
}

static void run_serial(const words *w, char *out)
{
    for (size_t i = 0; i < w->n; i++)
        sha512_hex(w->data + w->off[i], w->off[i + 1] - w->off[i], out + i * HEX);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One ppool sweep point, copying variant: create, map the client's arrays
 * (@out is the caller's digest array), destroy. Returns seconds. */
static double run_ppool(const words *w, char *out, int workers, size_t cs, phases *ph)
{
    double t0 = now_s();
    pp_executor *ex = new_pool(workers);
    g_methods |= 1u << (unsigned)pp_start_method_used(ex);
    double t1 = now_s();
    pp_map_input in = pp_map_packed(w->data, w->off, w->n);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.chunksize = cs;
    o.out_size = HEX;
    pp_map_status st;
    double c1 = thread_cpu_s();
    int rc = pp_map(ex, hash_item, &in, 1, out, w->n, NULL, &o, &st);
    double c2 = thread_cpu_s(), t2 = now_s();
    if (rc)
        die_pp("pp_map", rc, &st);
    pp_executor_destroy(ex);
    double t3 = now_s();
    *ph = (phases){.create = t1 - t0, .map = t2 - t1, .map_cpu = c2 - c1, .teardown = t3 - t2};
    return t3 - t0;
}

static void *shm_block(pp_executor *ex, size_t n)
{
    void *p = NULL;
    int rc = pp_shm_alloc(ex, n ? n : 1, &p);
    if (rc)
        die_pp("pp_shm_alloc", rc, NULL);
    return p;
}

/*
 * One ppool sweep point, shared-array variant: create the pool, pp_shm_alloc
 * the packed words (bytes + offsets) and the digest array, copy the words in
 * (the input staging, timed), map with zero copies (inputs read in place,
 * digests written in place), then — outside the timing — check the digests
 * where the workers wrote them, then pp_shm_free and destroy (timed again).
 * The digest block is fresh memory of a fresh pool, so stale results cannot
 * pass the check. @ok is cleared on a wrong digest, or if the map copied
 * anything (it must take the zero-copy path). Returns the timed seconds.
 */
static double run_ppool_shm(const words *w, int workers, size_t cs, const char *ref,
                            uint64_t *scratch, const dsum *want, bool set_check, bool *ok,
                            phases *ph)
{
    size_t n = w->n, nbytes = w->off[n];
    double t0 = now_s();
    pp_executor *ex = new_pool(workers);
    g_methods |= 1u << (unsigned)pp_start_method_used(ex);
    char *data = shm_block(ex, nbytes);
    size_t *off = shm_block(ex, (n + 1) * sizeof *off);
    char *dig = shm_block(ex, n * HEX);
    double t1 = now_s();
    memcpy(data, w->data, nbytes);
    memcpy(off, w->off, (n + 1) * sizeof *off);
    double t2 = now_s();
    pp_map_input in = pp_map_packed(data, off, n);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.chunksize = cs;
    o.out_size = HEX;
    pp_map_status st;
    double c2 = thread_cpu_s();
    int rc = pp_map(ex, hash_item, &in, 1, dig, n, NULL, &o, &st);
    double c3 = thread_cpu_s(), t3 = now_s();
    if (rc)
        die_pp("pp_map", rc, &st);

    /* Untimed: the checks, on the digests in shared memory. */
    if (st.staged_bytes || st.result_bytes) {
        progress_end();
        fprintf(stderr,
                "%s: ppool-shm chunksize %zu: the map copied %llu input and %llu result "
                "bytes (expected 0: zero-copy path not taken)\n",
                prog, cs, (unsigned long long)st.staged_bytes,
                (unsigned long long)st.result_bytes);
        *ok = false;
    }
    if (memcmp(dig, ref, n * HEX) != 0)
        *ok = false;
    if (set_check) {
        dsum d = digest_set(dig, n, scratch);
        if (d.distinct != want->distinct || d.sum != want->sum || d.xr != want->xr)
            *ok = false;
    }

    double t4 = now_s();
    pp_shm_free(ex, dig);
    pp_shm_free(ex, off);
    pp_shm_free(ex, data);
    pp_executor_destroy(ex);
    double t5 = now_s();
    *ph = (phases){.create = t1 - t0,
                   .stage = t2 - t1,
                   .map = t3 - t2,
                   .map_cpu = c3 - c2,
                   .teardown = t5 - t4};
    return (t3 - t0) + (t5 - t4);
}

#ifdef _OPENMP
static double run_omp(const words *w, char *out, int workers, size_t cs)
{
    double t0 = now_s();
    long n = (long)w->n;
    int chunk = cs > INT_MAX ? INT_MAX : (int)cs;
#pragma omp parallel for schedule(dynamic, chunk) num_threads(workers)
    for (long i = 0; i < n; i++)
        sha512_hex(w->data + w->off[i], w->off[i + 1] - w->off[i], out + (size_t)i * HEX);
    return now_s() - t0;
}
#endif

/* Time @runs runs of one point and check its output against the serial one. */
static void measure_point(report *R, int sys, int si, const words *w, char *out,
                          const char *ref, uint64_t *scratch, int runs)
{
    double t[64];
    phases ph[64];
    bool ok = true;
    for (int r = 0; r < runs; r++) {
        char label[96];
        snprintf(label, sizeof label, "%s chunksize %zu (run %d/%d)", sys_name[sys], R->sizes[si],
                 r + 1, runs);
        progress(label);
        if (sys == SYS_PPSHM) { /* checks its digests in shared memory itself */
            t[r] = run_ppool_shm(w, R->workers, R->sizes[si], ref, scratch, &R->ref,
                                 r == runs - 1, &ok, &ph[r]);
            pb_done++;
            continue;
        }
        memset(out, 0, w->n * HEX); /* stale results cannot pass the check */
#ifdef _OPENMP
        t[r] = sys == SYS_PPOOL ? run_ppool(w, out, R->workers, R->sizes[si], &ph[r])
                                : run_omp(w, out, R->workers, R->sizes[si]);
#else
        t[r] = run_ppool(w, out, R->workers, R->sizes[si], &ph[r]);
#endif
        if (memcmp(out, ref, w->n * HEX) != 0)
            ok = false;
        pb_done++;
    }
    if (sys != SYS_PPSHM) {
        dsum d = digest_set(out, w->n, scratch);
        if (d.distinct != R->ref.distinct || d.sum != R->ref.sum || d.xr != R->ref.xr)
            ok = false;
    }
    if (sys == SYS_PPOOL || sys == SYS_PPSHM) { /* the median of each phase */
        double v[64];
        phases *m = &R->ph[sys][si];
#define PHASE_MEDIAN(f)                                                                            \
    do {                                                                                           \
        for (int r = 0; r < runs; r++)                                                             \
            v[r] = ph[r].f;                                                                        \
        m->f = median_d(v, (size_t)runs, NULL, NULL);                                              \
    } while (0)
        PHASE_MEDIAN(create);
        PHASE_MEDIAN(stage);
        PHASE_MEDIAN(map);
        PHASE_MEDIAN(map_cpu);
        PHASE_MEDIAN(teardown);
#undef PHASE_MEDIAN
    }
    point *p = &R->pt[sys][si];
    p->have = true;
    p->runs = runs;
    double mn = t[0], mx = t[0];
    for (int r = 1; r < runs; r++) {
        mn = t[r] < mn ? t[r] : mn;
        mx = t[r] > mx ? t[r] : mx;
    }
    p->min = mn;
    p->max = mx;
    p->sec = median_d(t, (size_t)runs, NULL, NULL);
    p->ok = ok;
    if (!ok)
        R->failures++;
}

/* The no-op map: 8-byte items in and out, chunksize 1, on a warm pool. */
static void measure_noop(report *R, size_t n, int runs)
{
    pp_executor *ex = new_pool(R->workers);
    uint64_t *in = xmalloc(n * 8), *out = xmalloc(n * 8);
    for (size_t i = 0; i < n; i++)
        in[i] = i * 2654435761u;
    memset(out, 0, n * 8);
    pp_map_input mi = pp_map_array(in, n, 8);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.chunksize = 1;
    o.out_size = 8;
    double ta[16], ti[16];
    for (int r = 0; r < runs; r++) {
        progress("no-op map, chunksize 1");
        pp_map_status st;
        double t0 = now_s();
        int rc = pp_map(ex, noop_item, &mi, 1, out, n, NULL, &o, &st);
        ta[r] = now_s() - t0;
        if (rc)
            die_pp("no-op pp_map", rc, &st);
        if (memcmp(in, out, n * 8)) {
            fprintf(stderr, "%s: no-op map: wrong results\n", prog);
            R->failures++;
        }
        pp_map_iter *m;
        t0 = now_s();
        rc = pp_map_begin(&m, ex, noop_item, &mi, 1, &o);
        if (rc)
            die_pp("no-op pp_map_begin", rc, NULL);
        const void *res;
        size_t k = 0;
        while ((rc = pp_map_next(m, &res, NULL)) == 0) {
            if (*(const uint64_t *)res != in[k])
                R->failures++;
            k++;
        }
        pp_map_end(m);
        ti[r] = now_s() - t0;
        if (rc != -ENOENT || k != n)
            die_pp("no-op pp_map_next", rc, NULL);
        pb_done++;
    }
    R->noop_all = (double)n / median_d(ta, (size_t)runs, NULL, NULL);
    R->noop_iter = (double)n / median_d(ti, (size_t)runs, NULL, NULL);
    R->noop_n = n;
    free(in);
    free(out);
    pp_executor_destroy(ex);
}

/* Runs the Python peer; fills R->pt[SYS_PY] and R->serial_py. */
static bool run_python(report *R, const char *python, const char *peer, const char *wordfile,
                       int runs, int py_first, int py_end)
{
    char w[24], k[24], sizes[256] = "";
    snprintf(w, sizeof w, "%d", R->workers);
    snprintf(k, sizeof k, "%d", runs);
    for (int i = py_first; i < py_end; i++) {
        size_t l = strlen(sizes);
        snprintf(sizes + l, sizeof sizes - l, "%s%zu", l ? "," : "", R->sizes[i]);
    }
    char *args[] = {(char *)python, "-u", (char *)peer, "--words", (char *)wordfile,
                    "--workers", w, "--sizes", sizes, "--runs", k, NULL};
    int pfd[2];
    if (pipe(pfd) != 0)
        return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    /* The peer's own stderr is quiet apart from one banner line. */
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    int err = posix_spawn(&pid, python, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (err) {
        fprintf(stderr, "%s: cannot run %s: %s\n", prog, python, strerror(err));
        close(pfd[0]);
        return false;
    }
    FILE *in = fdopen(pfd[0], "r");
    char line[2048];
    progress("python serial");
    while (in && fgets(line, sizeof line, in)) {
        if (!strchr(line, '{'))
            continue;
        double cs = json_num(line, "chunksize");
        point p = {.have = true,
                   .sec = json_num(line, "seconds"),
                   .min = json_num(line, "min"),
                   .max = json_num(line, "max"),
                   .runs = (int)json_num(line, "runs")};
        dsum d = {json_u64(line, "distinct"), json_u64(line, "sum"), json_u64(line, "xor")};
        p.ok = d.distinct == R->ref.distinct && d.sum == R->ref.sum && d.xr == R->ref.xr &&
               (size_t)json_num(line, "items") == R->n;
        if (!p.ok)
            R->failures++;
        json_str(line, "python", R->pyver, sizeof R->pyver);
        int si = -1;
        for (int i = py_first; i < py_end; i++)
            if ((double)R->sizes[i] == cs)
                si = i;
        if (cs == 0)
            R->serial_py = p;
        else if (si >= 0)
            R->pt[SYS_PY][si] = p;
        pb_done += cs == 0 ? 1 : runs;
        int next = si < 0 ? py_first : si + 1;
        char label[96];
        if (next < py_end)
            snprintf(label, sizeof label, "python chunksize %zu", R->sizes[next]);
        else
            snprintf(label, sizeof label, "python done");
        progress(label);
    }
    if (in)
        fclose(in);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        progress_end();
        fprintf(stderr, "%s: python peer failed (status %d)\n", prog, status);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                     */
/* ------------------------------------------------------------------------ */

static int best_of(const report *R, int sys)
{
    int b = -1;
    for (int i = 0; i < R->nsizes; i++)
        if (R->pt[sys][i].have && (b < 0 || R->pt[sys][i].sec < R->pt[sys][b].sec))
            b = i;
    return b;
}

static void cell(char *buf, size_t len, const point *p)
{
    if (p->have)
        snprintf(buf, len, "%.3f%s", p->sec, p->ok ? "" : " BAD");
    else
        snprintf(buf, len, "-");
}

/* The ppool variant and size index of the best ppool time (both variants). */
static int best_ppool(const report *R, int *sys)
{
    int bc = best_of(R, SYS_PPOOL), bs = best_of(R, SYS_PPSHM);
    if (bs >= 0 && (bc < 0 || R->pt[SYS_PPSHM][bs].sec < R->pt[SYS_PPOOL][bc].sec)) {
        *sys = SYS_PPSHM;
        return bs;
    }
    *sys = SYS_PPOOL;
    return bc;
}

static void target_at1(const report *R, int sys, int i1)
{
    char what[48];
    snprintf(what, sizeof what, "%s@1 <= 1.5 x openmp@1:", sys_name[sys]);
    if (i1 >= 0 && R->pt[sys][i1].have && R->pt[SYS_OMP][i1].have) {
        double q = R->pt[sys][i1].sec / R->pt[SYS_OMP][i1].sec;
        printf("  %-48s%.3f s / %.3f s = %.2fx  %s%s\n", what, R->pt[sys][i1].sec,
               R->pt[SYS_OMP][i1].sec, q, q <= 1.5 ? "MET" : "MISSED",
               sys == SYS_PPOOL ? "" : " (shared arrays; shown beside the target)");
    } else {
        printf("  %-48snot measured\n", what);
    }
}

static void print_report(const report *R, bool have_omp, bool have_py)
{
    char a[32], b[32];
    printf("\nword-hash sweep: %s words (%s distinct), SHA-512 hex digest per word, %d worker%s\n",
           grouped((double)R->n, a, sizeof a), grouped((double)R->distinct, b, sizeof b),
           R->workers, R->workers == 1 ? "" : "s");
    printf("seconds per run%s; ppool and python include pool creation and shutdown, openmp's "
           "thread team is warm\n",
           R->pt[SYS_PPOOL][0].runs > 1 ? " (median)" : "");
    char ms[64] = "";
    for (unsigned m = 0; m < 4; m++)
        if (g_methods & (1u << m))
            snprintf(ms + strlen(ms), sizeof ms - strlen(ms), "%s%s", ms[0] ? "+" : "",
                     method_name(m));
    printf("ppool: start method %s (pp_config_init's AUTO: forkserver once the client runs "
           "threads, here OpenMP's), default config\n",
           ms[0] ? ms : "?");
    printf("variants: ppool = copying map of the client's arrays (words staged into shared "
           "memory per chunk, digests copied back); ppool-shm = map over pp_shm_alloc arrays "
           "(words + offsets memcpy'd in once per run, timed; digests written in place; the map "
           "copies nothing)\n");
    printf("client arrays %s\n", g_dontfork ? "marked MADV_DONTFORK (matters for fork only)"
                                            : "inheritable (--no-dontfork)");
    if (!have_omp)
        printf("openmp: not measured (--no-openmp, or built without OpenMP)\n");
    printf("serial C: %.3f s", R->serial_c.sec);
    if (have_py && R->serial_py.have)
        printf("; serial python: %.3f s", R->serial_py.sec);
    printf("\n\n");
    printf("%9s | %9s | %9s | %9s | %9s | %12s | %16s | %12s | %12s\n", "chunksize", "ppool",
           "ppool-shm", "openmp", "python", "ppool/openmp", "ppool-shm/openmp", "python/ppool",
           "serial/ppool");
    printf("----------+-----------+-----------+-----------+-----------+--------------+------------"
           "------+--------------+--------------\n");
    for (int i = 0; i < R->nsizes; i++) {
        char c0[32], cs[32], c1[32], c2[32], r1[32] = "-", rs[32] = "-", r2[32] = "-",
                                                  r3[32] = "-";
        const point *pp = &R->pt[SYS_PPOOL][i], *sh = &R->pt[SYS_PPSHM][i],
                    *om = &R->pt[SYS_OMP][i], *py = &R->pt[SYS_PY][i];
        cell(c0, sizeof c0, pp);
        cell(cs, sizeof cs, sh);
        cell(c1, sizeof c1, om);
        if (py->have)
            cell(c2, sizeof c2, py);
        else
            snprintf(c2, sizeof c2, have_py ? "(skipped)" : "-");
        if (pp->have && om->have)
            snprintf(r1, sizeof r1, "%.2f", pp->sec / om->sec);
        if (sh->have && om->have)
            snprintf(rs, sizeof rs, "%.2f", sh->sec / om->sec);
        if (pp->have && py->have)
            snprintf(r2, sizeof r2, "%.1f", py->sec / pp->sec);
        if (pp->have)
            snprintf(r3, sizeof r3, "%.2f", R->serial_c.sec / pp->sec);
        printf("%9zu | %9s | %9s | %9s | %9s | %12s | %16s | %12s | %12s\n", R->sizes[i], c0, cs,
               c1, c2, r1, rs, r2, r3);
    }
    printf("\nbest:");
    for (int s = 0; s < NSYS; s++) {
        int bi = best_of(R, s);
        if (bi >= 0)
            printf("  %s %.3f s at chunksize %zu;", sys_name[s], R->pt[s][bi].sec, R->sizes[bi]);
    }
    printf("\n");
    /* Where each ppool variant's time goes at its best chunksize. */
    for (int s = SYS_PPOOL; s <= SYS_PPSHM; s++) {
        int bi = best_of(R, s);
        if (bi < 0)
            continue;
        const phases *h = &R->ph[s][bi];
        if (s == SYS_PPOOL)
            printf("time split, ppool at %zu: create %.1f ms + map %.1f ms (client CPU %.1f ms) + "
                   "destroy %.1f ms\n",
                   R->sizes[bi], h->create * 1e3, h->map * 1e3, h->map_cpu * 1e3,
                   h->teardown * 1e3);
        else
            printf("time split, ppool-shm at %zu: create + pp_shm_alloc %.1f ms + copy words in "
                   "%.1f ms + map %.1f ms (client CPU %.1f ms) + pp_shm_free + destroy %.1f ms\n",
                   R->sizes[bi], h->create * 1e3, h->stage * 1e3, h->map * 1e3,
                   h->map_cpu * 1e3, h->teardown * 1e3);
    }
    char r1[32], r2[32];
    printf("no-op map (8-byte items, chunksize 1, %s items, warm pool): %s items/s all at once, "
           "%s items/s through the iterator\n",
           grouped((double)R->noop_n, a, sizeof a), grouped(R->noop_all, r1, sizeof r1),
           grouped(R->noop_iter, r2, sizeof r2));
    if (have_py)
        printf("python below chunksize 500 is skipped (minutes per point, as the guide warns)\n");

    printf("\ntargets (this run):\n");
    int bsys, bp = best_ppool(R, &bsys), bo = best_of(R, SYS_OMP);
    if (bp >= 0 && bo >= 0) {
        double q = R->pt[bsys][bp].sec / R->pt[SYS_OMP][bo].sec;
        printf("  %-48s%.3f s / %.3f s = %.2fx  %s (best ppool: %s at chunksize %zu)\n",
               "ppool best <= 1.1 x openmp best:", R->pt[bsys][bp].sec, R->pt[SYS_OMP][bo].sec,
               q, q <= 1.1 ? "MET" : "MISSED", sys_name[bsys], R->sizes[bp]);
    } else {
        printf("  %-48snot measured (no openmp)\n", "ppool best <= 1.1 x openmp best:");
    }
    /* Zero copy must win: the map over shared arrays at its best against
     * the copying map at its best, and against OpenMP (issue 16, item 1). */
    int bc = best_of(R, SYS_PPOOL), bz = best_of(R, SYS_PPSHM);
    if (bc >= 0 && bz >= 0) {
        double q = R->pt[SYS_PPSHM][bz].sec / R->pt[SYS_PPOOL][bc].sec;
        printf("  %-48s%.3f s / %.3f s = %.2fx  %s (at chunksizes %zu / %zu)\n",
               "ppool-shm best <= 0.95 x ppool best:", R->pt[SYS_PPSHM][bz].sec,
               R->pt[SYS_PPOOL][bc].sec, q, q <= 0.95 ? "MET" : "MISSED", R->sizes[bz],
               R->sizes[bc]);
    }
    if (bz >= 0 && bo >= 0) {
        double q = R->pt[SYS_PPSHM][bz].sec / R->pt[SYS_OMP][bo].sec;
        printf("  %-48s%.3f s / %.3f s = %.2fx  %s\n", "ppool-shm best <= 1.05 x openmp best:",
               R->pt[SYS_PPSHM][bz].sec, R->pt[SYS_OMP][bo].sec, q, q <= 1.05 ? "MET" : "MISSED");
    } else {
        printf("  %-48snot measured (no openmp)\n", "ppool-shm best <= 1.05 x openmp best:");
    }
    int i1 = -1;
    for (int i = 0; i < R->nsizes; i++)
        if (R->sizes[i] == 1)
            i1 = i;
    target_at1(R, SYS_PPOOL, i1);
    target_at1(R, SYS_PPSHM, i1);
    printf("  %-48s%s items/s  %s\n", "no-op map >= 2,000,000 items/s at chunksize 1:",
           grouped(R->noop_all, r1, sizeof r1), R->noop_all >= 2e6 ? "MET" : "MISSED");
    printf("  digests: %s\n",
           R->failures ? "MISMATCH (see BAD above)"
                       : "every system's set of digests (ppool-shm's read in shared memory) is "
                         "identical to the serial run's");
}

static int write_csv(const report *R, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "system,chunksize,seconds,min_s,max_s,runs,items,workers,digests_ok\n");
    fprintf(f, "serial-c,0,%.6f,%.6f,%.6f,%d,%zu,1,%d\n", R->serial_c.sec, R->serial_c.min,
            R->serial_c.max, R->serial_c.runs, R->n, 1);
    if (R->serial_py.have)
        fprintf(f, "serial-python,0,%.6f,%.6f,%.6f,%d,%zu,1,%d\n", R->serial_py.sec,
                R->serial_py.min, R->serial_py.max, R->serial_py.runs, R->n, R->serial_py.ok);
    for (int s = 0; s < NSYS; s++)
        for (int i = 0; i < R->nsizes; i++) {
            const point *p = &R->pt[s][i];
            if (p->have)
                fprintf(f, "%s,%zu,%.6f,%.6f,%.6f,%d,%zu,%d,%d\n", sys_name[s], R->sizes[i],
                        p->sec, p->min, p->max, p->runs, R->n, R->workers, p->ok);
        }
    fprintf(f, "noop-map-all,1,%.6f,,,1,%zu,%d,1\n", (double)R->noop_n / R->noop_all, R->noop_n,
            R->workers);
    fprintf(f, "noop-map-iter,1,%.6f,,,1,%zu,%d,1\n", (double)R->noop_n / R->noop_iter,
            R->noop_n, R->workers);
    return fclose(f);
}

/* Writes DIR/wordhash.gp and runs gnuplot on it. */
static bool plot(const report *R, const char *dir)
{
    char gp[PATH_MAX + 64], exe[PATH_MAX];
    if (!on_path("gnuplot", exe, sizeof exe)) {
        printf("plot: gnuplot not found on PATH; %s/wordhash.png not written\n", dir);
        return false;
    }
    /* pngcairo when this gnuplot has it (gnuplot-nox may not), else png. */
    bool cairo = system("gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo") == 0;
    snprintf(gp, sizeof gp, "%s/wordhash.gp", dir);
    FILE *f = fopen(gp, "w");
    if (!f)
        return false;
    fprintf(f, "# written by bench_wordhash; re-plot with: gnuplot %s\n", gp);
    fprintf(f, "set terminal %s size 960,640\n", cairo ? "pngcairo enhanced font 'sans,10'" : "png");
    fprintf(f, "set output '%s/wordhash.png'\n", dir);
    fprintf(f, "set datafile separator ','\n");
    fprintf(f, "set title 'SHA-512 of %zu words, %d workers: time vs chunksize (pool creation "
               "included)'\n",
            R->n, R->workers);
    fprintf(f, "set logscale xy\nset grid\nset key top left\n");
    fprintf(f, "set xlabel 'chunksize (items per task)'\nset ylabel 'seconds'\n");
    fprintf(f, "set xrange [0.7:%g]\n", (double)R->sizes[0] * 1.5);
    fprintf(f, "csv = '%s/wordhash.csv'\n", dir);
    fprintf(f, "sel(s) = (strcol(1) eq s) ? $3 : 1/0\n");
    fprintf(f, "plot csv using 2:(sel('ppool')) with linespoints lw 2 pt 7 title 'ppool map', \\\n");
    fprintf(f, "     csv using 2:(sel('ppool-shm')) with linespoints lw 2 pt 11 title "
               "'ppool (shared arrays)', \\\n");
    fprintf(f, "     csv using 2:(sel('openmp')) with linespoints lw 2 pt 5 title 'OpenMP "
               "dynamic (threads)', \\\n");
    fprintf(f, "     csv using 2:(sel('python')) with linespoints lw 2 pt 9 title "
               "'CPython ProcessPoolExecutor', \\\n");
    fprintf(f, "     %.6f with lines dt 2 lw 1.5 lc rgb '#555555' title 'serial C', \\\n",
            R->serial_c.sec);
    if (R->serial_py.have)
        fprintf(f, "     %.6f with lines dt 3 lw 1.5 lc rgb '#3070b0' title 'serial python'\n",
                R->serial_py.sec);
    else
        fprintf(f, "     1/0 notitle\n");
    fclose(f);
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", gp);
    int rc = system(cmd);
    if (rc != 0) {
        printf("plot: gnuplot failed (status %d); see %s\n", rc, gp);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* main                                                                       */
/* ------------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: %s [options]\n"
            "  --out DIR      where wordhash.csv, wordhash.png, wordhash.gp and words.txt go "
            "(default: out)\n"
            "  --quick        100,000 words and fewer chunksizes (a smoke run)\n"
            "  --words N      number of words (distinct ones scaled as 979,250 / 1,049,938)\n"
            "  --workers N    workers / threads (default: the physical cores this process may "
            "use)\n"
            "  --runs K       runs per point; the median is reported (default 1)\n"
            "  --sizes LIST   chunk sizes to sweep, comma-separated (default: n/workers,\n"
            "                 100000, 50000, 10000, 5000, 1000, 500, 100, 10, 1)\n"
            "  --no-python    skip CPython's ProcessPoolExecutor\n"
            "  --no-openmp    skip OpenMP\n"
            "  --no-dontfork  leave the big client arrays inheritable by fork (shows the\n"
            "                 copy-on-write cost a fork-based pool puts on the client)\n"
            "  --peer PATH    bench/peer_wordhash.py (default: found from $PPOOL_SRC or the "
            "executable)\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *outdir = "out", *peer_opt = NULL;
    bool quick = false, no_python = false, no_omp = false;
    long nwords = -1, runs = 1;
    int workers_opt = 0;
    size_t user_sizes[MAXSIZES];
    int n_user_sizes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--out") && v) {
            outdir = v;
            i++;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--words")) {
            nwords = parse_long(a, v, 10, 100000000);
            i++;
        } else if (!strcmp(a, "--workers")) {
            workers_opt = (int)parse_long(a, v, 1, 4096);
            i++;
        } else if (!strcmp(a, "--sizes") && v) {
            char *list = strdup(v), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (n_user_sizes == MAXSIZES) {
                    fprintf(stderr, "%s: --sizes: at most %d sizes\n", prog, MAXSIZES);
                    return 2;
                }
                user_sizes[n_user_sizes++] = (size_t)parse_long(a, tok, 1, 100000000);
            }
            free(list);
            i++;
        } else if (!strcmp(a, "--runs")) {
            runs = parse_long(a, v, 1, 64);
            i++;
        } else if (!strcmp(a, "--no-python")) {
            no_python = true;
        } else if (!strcmp(a, "--no-openmp")) {
            no_omp = true;
        } else if (!strcmp(a, "--no-dontfork")) {
            g_dontfork = false;
        } else if (!strcmp(a, "--peer") && v) {
            peer_opt = v;
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            usage(stderr);
            return 2;
        }
    }
#ifndef _OPENMP
    no_omp = true;
#endif
    pb_tty = isatty(STDERR_FILENO);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mkdir(outdir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, outdir, strerror(errno));
        return 1;
    }

    static report R;
    R.n = nwords > 0 ? (size_t)nwords : quick ? 100000 : WORDS_FULL;
    R.distinct = R.n == WORDS_FULL
                     ? DISTINCT_FULL
                     : (size_t)llround((double)R.n * DISTINCT_FULL / WORDS_FULL);

    /* The machine, and a warm-up pool (the first hwloc load is slow). */
    pp_executor *ex0 = new_pool(workers_opt);
    R.workers = pp_max_workers(ex0);
    printf("%s: the Python guide's word-hash workload, chunksize sweep%s\n", prog,
           quick ? " [--quick]" : "");
    print_machine(ex0);
    pp_executor_destroy(ex0);

    size_t base = (R.n + (size_t)R.workers - 1) / (size_t)R.workers;
    static const size_t full_sizes[] = {100000, 50000, 10000, 5000, 1000, 500, 100, 10, 1};
    static const size_t quick_sizes[] = {10000, 1000, 100, 10, 1};
    const size_t *ls = quick ? quick_sizes : full_sizes;
    int nls = quick ? 5 : 9;
    if (n_user_sizes) { /* largest first, as the default list (the Python peer relies on it) */
        for (int i = 0; i < n_user_sizes; i++) {
            int j = R.nsizes++;
            while (j > 0 && R.sizes[j - 1] < user_sizes[i]) {
                R.sizes[j] = R.sizes[j - 1];
                j--;
            }
            R.sizes[j] = user_sizes[i];
        }
    } else {
        R.sizes[R.nsizes++] = base;
        for (int i = 0; i < nls; i++)
            if (ls[i] < base)
                R.sizes[R.nsizes++] = ls[i];
    }
    int py_first = 0; /* python runs the sizes >= 500 (sizes decrease) */
    while (py_first < R.nsizes && R.sizes[py_first] < 500)
        py_first++;
    int py_end = py_first;
    while (py_end < R.nsizes && R.sizes[py_end] >= 500)
        py_end++;

    char python[PATH_MAX], peer[PATH_MAX];
    bool have_py = !no_python;
    if (have_py && !on_path("python3", python, sizeof python)) {
        printf("python: python3 not on PATH; CPython peer skipped\n");
        have_py = false;
    }
    if (have_py && !find_peer(peer_opt, peer, sizeof peer)) {
        printf("python: bench/peer_wordhash.py not found (set PPOOL_SRC or --peer); skipped\n");
        have_py = false;
    }

    int npy = py_end - py_first;
    pb_total = 1 + (int)runs /* noop */ + R.nsizes * (int)runs * (no_omp ? 2 : 3) +
               (have_py ? 1 + npy * (int)runs : 0);

    /* The words. */
    progress("generating words");
    words W;
    make_words(&W, R.n, R.distinct);
    char wordfile[PATH_MAX + 16];
    snprintf(wordfile, sizeof wordfile, "%s/words.txt", outdir);
    if (have_py && !write_words(&W, wordfile)) {
        fprintf(stderr, "%s: cannot write %s\n", prog, wordfile);
        have_py = false;
    }
    char *ref = big_alloc(R.n * HEX), *out = big_alloc(R.n * HEX);
    uint64_t *scratch = big_alloc(R.n * sizeof *scratch);

    /* Serial reference. */
    progress("serial C");
    double ts[64];
    for (int r = 0; r < runs; r++) {
        memset(ref, 0, R.n * HEX);
        double t0 = now_s();
        run_serial(&W, ref);
        ts[r] = now_s() - t0;
    }
    R.serial_c.have = true;
    R.serial_c.runs = (int)runs;
    R.serial_c.min = R.serial_c.max = ts[0];
    for (int r = 1; r < runs; r++) {
        R.serial_c.min = ts[r] < R.serial_c.min ? ts[r] : R.serial_c.min;
        R.serial_c.max = ts[r] > R.serial_c.max ? ts[r] : R.serial_c.max;
    }
    R.serial_c.sec = median_d(ts, (size_t)runs, NULL, NULL);
    R.serial_c.ok = true;
    R.ref = digest_set(ref, R.n, scratch);
    pb_done++;
    if (R.ref.distinct != R.distinct) {
        progress_end();
        fprintf(stderr, "%s: %llu distinct digests, expected %zu\n", prog,
                (unsigned long long)R.ref.distinct, R.distinct);
        R.failures++;
    }

    /* The no-op map target. */
    measure_noop(&R, quick ? 200000 : 2000000, (int)runs);

    /* Sweep: ppool (copying), ppool-shm, then OpenMP at each size. */
#ifdef _OPENMP
    if (!no_omp) { /* warm the thread team once, outside the timings */
        volatile int team = 0;
#pragma omp parallel num_threads(R.workers)
        {
#pragma omp atomic
            team += 1;
        }
        (void)team;
    }
#endif
    {
        pp_executor *warm = new_pool(R.workers); /* page cache / hwloc warm, untimed */
        pp_executor_destroy(warm);
    }
    for (int i = 0; i < R.nsizes; i++) {
        measure_point(&R, SYS_PPOOL, i, &W, out, ref, scratch, (int)runs);
        measure_point(&R, SYS_PPSHM, i, &W, out, ref, scratch, (int)runs);
        if (!no_omp)
            measure_point(&R, SYS_OMP, i, &W, out, ref, scratch, (int)runs);
    }

    if (have_py && py_first < py_end)
        have_py = run_python(&R, python, peer, wordfile, (int)runs, py_first, py_end);
    pb_done = pb_total;
    progress("done");
    progress_end();

    print_report(&R, !no_omp, have_py);
    char csv[PATH_MAX + 16];
    snprintf(csv, sizeof csv, "%s/wordhash.csv", outdir);
    if (write_csv(&R, csv) != 0)
        fprintf(stderr, "%s: cannot write %s\n", prog, csv);
    bool png = plot(&R, outdir);
    printf("\nfiles: %s", csv);
    if (png)
        printf(", %s/wordhash.png, %s/wordhash.gp", outdir, outdir);
    if (have_py)
        printf(", %s", wordfile);
    printf("\n");
    big_free(ref, R.n * HEX);
    big_free(out, R.n * HEX);
    big_free(scratch, R.n * sizeof *scratch);
    big_free(W.data, R.n * 12);
    big_free(W.off, (R.n + 1) * sizeof *W.off);
    return R.failures ? 1 : 0;
}
