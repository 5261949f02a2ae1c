/*
 * bench_copy.c — why large payloads are copied plainly or with streaming
 * stores, whichever measures cheaper (runtime/copy.h, docs/design.md "Large
 * payload copies").
 *
 * Part 1, the hardware: two processes pinned to the first two allowed CPUs
 * share a memfd buffer. In turn, the writer copies S bytes into it (plain
 * memcpy, or ppi_copy_stream) and the reader sums them (64-bit words); the
 * writer's copy and the whole turn are timed, against a memcpy of the same
 * size into private memory. Also the spin floor: one cache line bounced
 * between the two (it tells which placement a VM gave the two CPUs).
 *
 * Part 2, ppool: one task at a time whose argument of S bytes the task sums
 * (as bench_scaling's argument rows), round trip, with the counts of the
 * client's large copies made each way (ppi_copy_payload_counts).
 *
 * Medians of R rounds. Compare only numbers from one run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
static const char *prog = "bench_copy";
#define RESULT_TIMEOUT_S 60.0
#include "bench_util.h"

#include "copy.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define MAXSIZES 16

static void usage(FILE *to)
{
    fprintf(to, "usage: %s [--rounds R] [--sizes LIST]\n"
                "  --rounds R    rounds per point (default 200)\n"
                "  --sizes LIST  bytes, comma-separated (default 262144,524288,1048576,"
                "2097152,4194304,8388608,16777216)\n",
            prog);
}

static uint64_t sum_words(const unsigned char *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        s += w;
    }
    return s;
}

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) {
        perror("sched_setaffinity");
        exit(1);
    }
}

/* Spin until *@w == @want; gives up (exit 1) if the child @pid died. */
static void await_word(_Atomic uint32_t *w, uint32_t want, pid_t pid)
{
    for (unsigned long spins = 1;; spins++) {
        /* acquire: the other side's writes before its store of @want */
        if (atomic_load_explicit(w, memory_order_acquire) == want)
            return;
        if (spins % (1ul << 22) == 0 && waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "%s: the other process died\n", prog);
            exit(1);
        }
    }
}

/* The shared page: a turn word, then the buffer. */
typedef struct shared {
    _Atomic uint32_t turn; /* 0: writer's turn, 1: reader's, 2: reader exits */
    _Atomic uint64_t sum;
    char pad[64 - 16];
    unsigned char buf[];
} shared;

/* Reset the turn word and fork; the child pins itself to @cpu. Returns the
 * fork's value (0 in the child). */
static pid_t fork_pinned(shared *sh, int cpu)
{
    atomic_store(&sh->turn, 0); /* a previous run may have left 2 (exit) there */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0)
        pin(cpu);
    return pid;
}

/* Writer = this process on cpu[0], reader = a child on cpu[1]. Fills
 * med[0..3] = private memcpy, plain write, streaming write, plain turn,
 * med[4] = streaming turn (microseconds). */
static void measure_hw(shared *sh, size_t n, int rounds, const int cpu[2], double med[5])
{
    pid_t pid = fork_pinned(sh, cpu[1]);
    if (pid == 0) {
        for (;;) {
            uint32_t t;
            /* acquire: the writer's bytes before its turn store */
            while ((t = atomic_load_explicit(&sh->turn, memory_order_acquire)) == 0)
                ;
            if (t == 2)
                _exit(0);
            atomic_store_explicit(&sh->sum, sum_words(sh->buf, n), memory_order_relaxed);
            /* release: our reads are done before the writer overwrites */
            atomic_store_explicit(&sh->turn, 0, memory_order_release);
        }
    }
    pin(cpu[0]);
    unsigned char *src = xmalloc(n), *priv = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)(i * 131u + 7u);
    memset(priv, 0, n);
    uint64_t want = sum_words(src, n);
    double *v[5];
    for (int k = 0; k < 5; k++)
        v[k] = xmalloc((size_t)rounds * sizeof(double));
    for (int way = 0; way < 2; way++)
        for (int r = -2; r < rounds; r++) {
            uint64_t t0 = now_ns();
            memcpy(priv, src, n);
            uint64_t t1 = now_ns();
            __asm__ volatile("" ::"r"(priv) : "memory");
            if (way)
                ppi_copy_stream(sh->buf, src, n);
            else
                memcpy(sh->buf, src, n);
            uint64_t t2 = now_ns();
            atomic_store_explicit(&sh->turn, 1, memory_order_release);
            await_word(&sh->turn, 0, pid);
            uint64_t t3 = now_ns();
            if (atomic_load_explicit(&sh->sum, memory_order_relaxed) != want) {
                fprintf(stderr, "%s: the reader summed the wrong bytes\n", prog);
                exit(1);
            }
            if (r >= 0) {
                if (!way)
                    v[0][r] = (double)(t1 - t0) * 1e-3;
                v[1 + way][r] = (double)(t2 - t1) * 1e-3;
                v[3 + way][r] = (double)(t3 - t1) * 1e-3;
            }
        }
    atomic_store_explicit(&sh->turn, 2, memory_order_release);
    waitpid(pid, NULL, 0);
    for (int k = 0; k < 5; k++) {
        med[k] = median_d(v[k], (size_t)rounds, NULL, NULL);
        free(v[k]);
    }
    free(src);
    free(priv);
}

/* One cache line bounced between the two CPUs: the median one-way time. */
static double spin_floor(shared *sh, const int cpu[2])
{
    enum { BOUNCES = 20000 };
    pid_t pid = fork_pinned(sh, cpu[1]);
    if (pid == 0) {
        for (uint32_t i = 1; i < 2 * BOUNCES; i += 2) {
            while (atomic_load_explicit(&sh->turn, memory_order_acquire) != i)
                ;
            atomic_store_explicit(&sh->turn, i + 1, memory_order_release);
        }
        _exit(0);
    }
    pin(cpu[0]);
    double *v = xmalloc(BOUNCES * sizeof *v);
    for (uint32_t i = 0; i < 2 * BOUNCES; i += 2) {
        uint64_t t0 = now_ns();
        atomic_store_explicit(&sh->turn, i + 1, memory_order_release);
        await_word(&sh->turn, i + 2, pid);
        v[i / 2] = (double)(now_ns() - t0) * 1e-3 / 2;
    }
    waitpid(pid, NULL, 0);
    double m = median_d(v, BOUNCES, NULL, NULL);
    free(v);
    atomic_store(&sh->turn, 0);
    return m;
}

static int sum_task(pp_task *t)
{
    size_t n = 0;
    const unsigned char *arg = pp_task_arg(t, &n);
    uint64_t s = sum_words(arg, n);
    return pp_task_set_result(t, &s, sizeof s);
}

/* ppool round trip of an n-byte argument summed by the task (median, us). */
static double measure_pool(pp_executor *ex, size_t n, int rounds)
{
    unsigned char *src = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        src[i] = (unsigned char)(i * 131u + 7u);
    uint64_t want = sum_words(src, n);
    double *v = xmalloc((size_t)rounds * sizeof *v);
    for (int r = -2; r < rounds; r++) {
        uint64_t t0 = now_ns();
        pp_future *f;
        int rc = pp_submit(ex, sum_task, src, n, &f);
        if (rc)
            die("pp_submit", rc);
        const void *d;
        size_t sz;
        rc = pp_future_result(f, RESULT_TIMEOUT_S, &d, &sz);
        if (rc)
            die_future("pp_future_result", f, rc);
        uint64_t got;
        memcpy(&got, d, 8);
        pp_future_release(f);
        if (got != want) {
            fprintf(stderr, "%s: argument of %zu bytes: wrong sum\n", prog, n);
            exit(1);
        }
        if (r >= 0)
            v[r] = (double)(now_ns() - t0) * 1e-3;
    }
    double m = median_d(v, (size_t)rounds, NULL, NULL);
    free(v);
    free(src);
    return m;
}

int main(int argc, char **argv)
{
    int rounds = 200;
    size_t sizes[MAXSIZES] = {256u << 10, 512u << 10, 1u << 20, 2u << 20, 4u << 20, 8u << 20, 16u << 20};
    int nsizes = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = 0;
            for (char *p = argv[++i]; *p && nsizes < MAXSIZES;) {
                char *end;
                unsigned long long v = strtoull(p, &end, 10);
                if (end == p || v == 0) {
                    usage(stderr);
                    return 2;
                }
                sizes[nsizes++] = (size_t)v;
                p = *end == ',' ? end + 1 : end;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (rounds < 1 || nsizes < 1) {
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    cpu_set_t allowed;
    int cpu[2] = {-1, -1}, found = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
            if (CPU_ISSET(c, &allowed))
                cpu[found++] = c;
    if (found < 2) {
        fprintf(stderr, "%s: needs two CPUs\n", prog);
        return 1;
    }
    size_t max = 0;
    for (int i = 0; i < nsizes; i++)
        max = sizes[i] > max ? sizes[i] : max;
    int fd = memfd_create("bench_copy", 0);
    if (fd < 0 || ftruncate(fd, (off_t)(sizeof(shared) + max)) != 0) {
        perror("memfd");
        return 1;
    }
    shared *sh = mmap(NULL, sizeof(shared) + max, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    memset(sh->buf, 0, max);

    char model[256];
    cpu_model(model, sizeof model);
    pp_config cfg;
    pp_config_init(&cfg);
    cfg.max_workers = 1;
    pp_executor *ex;
    int rc = pp_executor_create(&ex, &cfg);
    if (rc)
        die("pp_executor_create", rc);
    printf("machine: %ld CPUs online, %s; %s\n", sysconf(_SC_NPROCESSORS_ONLN), model,
           pp_executor_topology(ex));
    printf("writer on CPU %d, reader on CPU %d; spin floor (one way) %.3f us; median of %d "
           "rounds\n\n",
           cpu[0], cpu[1], spin_floor(sh, cpu), rounds);
    printf("a. the hardware: write S bytes into a buffer the other CPU has just read, then it "
           "sums them\n");
    printf("%10s | %9s | %9s | %9s | %11s | %11s | %s\n", "bytes", "memcpy us", "plain us",
           "stream us", "plain turn", "stream turn", "cheaper write");
    for (int i = 0; i < nsizes; i++) {
        double m[5];
        measure_hw(sh, sizes[i], rounds, cpu, m);
        printf("%10zu | %9.1f | %9.1f | %9.1f | %11.1f | %11.1f | %s\n", sizes[i], m[0], m[1],
               m[2], m[3], m[4], m[1] <= m[2] ? "plain" : "stream");
    }
    /* The pool pins its one worker to the first core (compact placement):
     * the client runs on the second CPU, as the reader did above (left
     * unpinned, it stayed on the worker's CPU in some runs, and every round
     * trip then waited for a context switch: 4 x slower). */
    pin(cpu[1]);
    printf("\nb. ppool: one task at a time with an S-byte argument the task sums "
           "(1 worker, pinned by the pool; the client on CPU %d)\n", cpu[1]);
    printf("%10s | %13s | %s\n", "bytes", "round trip us", "client's large copies: plain / stream");
    for (int i = 0; i < nsizes; i++) {
        uint64_t p0, s0, p1, s1;
        ppi_copy_payload_counts(&p0, &s0);
        double rt = measure_pool(ex, sizes[i], rounds);
        ppi_copy_payload_counts(&p1, &s1);
        printf("%10zu | %13.1f | %llu / %llu\n", sizes[i], rt, (unsigned long long)(p1 - p0),
               (unsigned long long)(s1 - s0));
    }
    pp_executor_destroy(ex);
    munmap(sh, sizeof(shared) + max);
    return 0;
}
