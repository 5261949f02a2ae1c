/*
 * pp_testutil.c — see pp_testutil.h.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ========================================================================== */
/* time                                                                        */
/* ========================================================================== */

double ppt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* LeakSanitizer's documented hook: non-zero turns the leak check off.
 * Read when the check runs (at exit), so setting the flag just before exit()
 * is enough. */
static volatile int lsan_off;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return lsan_off; }
void ppt_exit_without_leak_check(void) { lsan_off = 1; }

double ppt_time_scale(void)
{
    double scale = 1.0;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    scale = 4.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
    scale = 4.0;
#endif
#endif
    const char *env = getenv("PPT_TIME_SCALE");
    if (env && atof(env) > 0)
        scale *= atof(env);
    return scale;
}

double ppt_deadline(double seconds) { return ppt_now() + seconds; }

bool ppt_expired(double deadline) { return ppt_now() >= deadline; }

void ppt_sleep(double seconds)
{
    if (!(seconds > 0))
        return;
    struct timespec req, rem;
    req.tv_sec = (time_t)seconds;
    req.tv_nsec = (long)((seconds - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec >= 1000000000L) {
        req.tv_sec++;
        req.tv_nsec -= 1000000000L;
    }
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}

/* ========================================================================== */
/* processes                                                                   */
/* ========================================================================== */

/* Reads /proc/<pid>/stat: ppid, state and comm. Returns false if gone. */
static bool read_stat(pid_t pid, pid_t *ppid, char *state, char *comm, size_t commlen)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *lp = strchr(buf, '(');
    char *rp = strrchr(buf, ')'); /* comm may contain ')' and spaces */
    if (!lp || !rp || rp < lp)
        return false;
    if (comm && commlen) {
        size_t len = (size_t)(rp - lp - 1);
        if (len >= commlen)
            len = commlen - 1;
        memcpy(comm, lp + 1, len);
        comm[len] = '\0';
    }
    char st = '?';
    int pp = -1;
    if (sscanf(rp + 1, " %c %d", &st, &pp) != 2)
        return false;
    if (ppid)
        *ppid = (pid_t)pp;
    if (state)
        *state = st;
    return true;
}

bool ppt_proc_stat(pid_t pid, pid_t *ppid, char *state)
{
    return read_stat(pid, ppid, state, NULL, 0);
}

int ppt_count_children(bool live_only, pid_t *pids, int n)
{
    pid_t self = getpid();
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        pid_t ppid;
        char st;
        if (!read_stat(pid, &ppid, &st, NULL, 0))
            continue;
        if (ppid != self)
            continue;
        if (live_only && (st == 'Z' || st == 'X'))
            continue;
        if (pids && count < n)
            pids[count] = pid;
        count++;
    }
    closedir(d);
    return count;
}

int ppt_reap_zombies(void)
{
    int n = 0;
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p <= 0)
            break;
        n++;
    }
    return n;
}

int ppt_wait_no_children(double seconds)
{
    double dl = ppt_deadline(seconds);
    for (;;) {
        ppt_reap_zombies();
        int c = ppt_count_children(false, NULL, 0);
        if (c <= 0 || ppt_expired(dl))
            return c < 0 ? 0 : c;
        ppt_sleep(0.002);
    }
}

/* ========================================================================== */
/* /dev/shm snapshot                                                           */
/* ========================================================================== */

typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static name_list g_shm_before;

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static void names_add(name_list *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    char *c = strdup(s);
    if (c)
        l->v[l->n++] = c;
}

static bool names_has(const name_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static void shm_list(name_list *out)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* Open MPI's shared-memory transport files: an MPI job running
         * beside this suite (ctest -j, the mpi label) makes them, never
         * ppool; the MPI tests check their own leftovers. */
        if (strncmp(e->d_name, "vader_segment.", 14) == 0)
            continue;
        names_add(out, e->d_name);
    }
    closedir(d);
}

/* New /dev/shm entries since setup, into @out. Returns their count. */
static size_t shm_new_entries(name_list *out)
{
    name_list now = {0};
    shm_list(&now);
    for (size_t i = 0; i < now.n; i++)
        if (!names_has(&g_shm_before, now.v[i]))
            names_add(out, now.v[i]);
    names_free(&now);
    return out->n;
}

/* ========================================================================== */
/* fixtures                                                                    */
/* ========================================================================== */

void pp_test_setup(void)
{
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0,
                 "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
    names_free(&g_shm_before);
    shm_list(&g_shm_before);
    /* Nothing of ours may be around yet. */
    ppt_reap_zombies();
}

void pp_test_teardown(void)
{
    bool failed = false;
    double dl = ppt_deadline(2.0);
    int left;
    size_t nshm;
    name_list fresh = {0};
    for (;;) {
        ppt_reap_zombies();
        left = ppt_count_children(false, NULL, 0);
        names_free(&fresh);
        nshm = shm_new_entries(&fresh);
        if ((left <= 0 && nshm == 0) || ppt_expired(dl))
            break;
        ppt_sleep(0.002);
    }

    if (left > 0) {
        failed = true;
        pid_t pids[64];
        int n = ppt_count_children(false, pids, 64);
        if (n > 64)
            n = 64;
        for (int i = 0; i < n; i++) {
            pid_t ppid;
            char st = '?', comm[64] = "?";
            read_stat(pids[i], &ppid, &st, comm, sizeof comm);
            cr_expect(false, "process left behind: pid %d (%s) state %c", (int)pids[i], comm, st);
        }
        cr_expect_eq(left, 0, "%d process(es) still have the test process as parent 2 s after the test",
                     left);
        /* Clean up what this test started (by pid; a dead manager's workers
         * reparent to us, so repeat until nothing is left). */
        double dl2 = ppt_deadline(3.0);
        while (!ppt_expired(dl2)) {
            n = ppt_count_children(true, pids, 64);
            if (n > 64)
                n = 64;
            for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
            ppt_reap_zombies();
            if (ppt_count_children(false, NULL, 0) == 0)
                break;
            ppt_sleep(0.005);
        }
    }
    if (nshm > 0) {
        failed = true;
        for (size_t i = 0; i < fresh.n; i++)
            cr_expect(false, "/dev/shm entry left behind: %s", fresh.v[i]);
    }
    names_free(&fresh);
    names_free(&g_shm_before);
    if (failed) {
        /* Criterion 2.4 does not fail a test on assertions in .fini; crash so
         * the binary (and CTest) fails and names this test. */
        fflush(NULL);
        abort();
    }
}

/* ========================================================================== */
/* CPUs                                                                        */
/* ========================================================================== */

int ppt_allowed_cpus(cpu_set_t *set)
{
    CPU_ZERO(set);
    if (sched_getaffinity(0, sizeof *set, set) != 0)
        return -errno;
    return CPU_COUNT(set);
}

/* Parses a sysfs cpu list ("0-3,8,10-11") into @set. */
static bool parse_cpulist(const char *s, cpu_set_t *set)
{
    CPU_ZERO(set);
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s)
            return false;
        long b = a;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            if (end == s + 1)
                return false;
            s = end;
        }
        for (long c = a; c <= b && c < CPU_SETSIZE; c++)
            CPU_SET((int)c, set);
        if (*s == ',')
            s++;
    }
    return true;
}

bool ppt_cpus_without_smt(const cpu_set_t *set)
{
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, set))
            continue;
        char path[128], buf[256];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool ok = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        cpu_set_t sib;
        if (!ok || !parse_cpulist(buf, &sib))
            continue;
        CPU_AND(&sib, &sib, set);
        if (CPU_COUNT(&sib) > 1)
            return false;
    }
    return true;
}

/* ========================================================================== */
/* payloads                                                                    */
/* ========================================================================== */

uint64_t ppt_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void ppt_fill_pattern(void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = ppt_pattern_byte(i);
}

size_t ppt_check_pattern(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != ppt_pattern_byte(i))
            return i;
    return n;
}

void ppt_fill_seeded(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
    if (x == 0)
        x = 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (unsigned char)(x >> 24);
    }
}

/* ========================================================================== */
/* task functions                                                              */
/* ========================================================================== */

int ppt_task_noop(pp_task *t)
{
    (void)t;
    return 0;
}

int ppt_task_echo(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    /* On failure the runtime fails the future itself (PP_ETOOBIG/-ENOMEM). */
    (void)pp_task_set_result(t, a, n);
    return 0;
}

int ppt_task_hash64(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    uint64_t h = ppt_fnv1a64(a, n);
    (void)pp_task_set_result(t, &h, sizeof h);
    return 0;
}

double ppt_arg_seconds(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    double s = 0;
    if (n >= sizeof s)
        memcpy(&s, a, sizeof s);
    return s;
}

int ppt_task_sleepy(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    return 0;
}

int ppt_task_raiser(pp_task *t) { return pp_task_raise(t, 42, "bad value %d", 7); }

int ppt_task_returns_nonzero(pp_task *t)
{
    (void)t;
    return 5;
}

int ppt_task_big_result(pp_task *t)
{
    size_t n = 0, want = 0;
    const void *a = pp_task_arg(t, &n);
    if (n >= sizeof want)
        memcpy(&want, a, sizeof want);
    unsigned char *r = pp_task_result(t, want);
    if (r)
        ppt_fill_pattern(r, want);
    return 0;
}

int ppt_task_until_stop(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    double s = 0;
    if (n >= sizeof s)
        memcpy(&s, a, sizeof s);
    double dl = ppt_deadline(s);
    int32_t seen = 0;
    while (!(seen = pp_task_should_stop(t)) && !ppt_expired(dl))
        ppt_sleep(0.001);
    (void)pp_task_set_result(t, &seen, sizeof seen);
    return 0;
}

int ppt_task_affinity(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    double s = 0;
    if (n >= sizeof s)
        memcpy(&s, a, sizeof s);
    ppt_sleep(s);
    ppt_affinity r;
    memset(&r, 0, sizeof r);
    CPU_ZERO(&r.mask);
    if (sched_getaffinity(0, sizeof r.mask, &r.mask) != 0)
        CPU_ZERO(&r.mask);
    r.pid = getpid();
    r.worker = pp_task_worker(t);
    (void)pp_task_set_result(t, &r, sizeof r);
    return 0;
}

/* ========================================================================== */
/* client conveniences                                                         */
/* ========================================================================== */

void ppt_config(pp_config *cfg, int max_workers)
{
    pp_config_init(cfg);
    cfg->max_workers = max_workers;
}

/* ========================================================================== */
/* task functions for the futures / patterns / stress suites                   */
/* ========================================================================== */

#include <sys/resource.h>


int ppt_task_abort(pp_task *t)
{
    struct rlimit rl = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &rl);
    ppt_sleep(ppt_arg_seconds(t));
    abort();
}

int ppt_task_sigkill(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    raise(SIGKILL);
    return 0;
}

int ppt_task_sleep_echo(pp_task *t)
{
    size_t n = 0;
    const unsigned char *a = pp_task_arg(t, &n);
    double s = 0;
    if (n >= sizeof s)
        memcpy(&s, a, sizeof s);
    ppt_sleep(s);
    if (n > sizeof s)
        (void)pp_task_set_result(t, a + sizeof s, n - sizeof s);
    return 0;
}
