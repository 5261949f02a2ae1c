/*
 * test_procs.c — the pool's processes as processes: what they inherit, how
 * they end, and hostile environments (issue 11, items 13, 14, 16, 18, 19,
 * 21, 22).
 *
 *  - a task that _exit(0)s while shutdown waits is a death, not an orderly
 *    end (13);
 *  - pp_terminate_workers escalates to SIGKILL for a worker that ignores
 *    SIGTERM (14);
 *  - a worker killed right after pp_executor_create returned follows the
 *    death policy (16);
 *  - seccomp denying sched_getaffinity (EPERM) or pidfd_open (ENOSYS): the
 *    pool still starts, promptly, and dies with its client (18, 19);
 *  - workers and the manager hold no descriptor of the client's (21);
 *  - a task that closes and reuses descriptors neither delays timeouts nor
 *    has its files written or punched by the runtime (22).
 *
 * Tests that need a seccomp filter run their body in a forked child (the
 * filter is inherited by everything the child starts) and wait for it with
 * a deadline, so a hang fails the test instead of stalling the suite.
 * Under spawn every worker is a fresh exec of this binary: task functions
 * share nothing with the test but their arguments and results.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

/* ---- task functions -------------------------------------------------------- */

/* Sleeps the argument's seconds, then _exit(0) without publishing. */
static int task_exit0_after(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    _exit(0);
}

/* Ignores SIGTERM, then sleeps the argument's seconds. */
static int task_ignore_term(pp_task *t)
{
    signal(SIGTERM, SIG_IGN);
    ppt_sleep(ppt_arg_seconds(t));
    return 0;
}

/* What a worker holds. Argument: two descriptor numbers of the client's,
 * a close-on-exec pipe's write end and an inheritable one's. */
typedef struct fd_report {
    int pool_fds;     /* the pool's own: memfd "ppool", eventfd, signalfd, pidfd */
    int cloexec_pipe; /* 1 when the close-on-exec pipe is open here */
    int inherit_pipe; /* 1 when the inheritable pipe is open here */
} fd_report;

static int is_pipe(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static int task_fd_report(pp_task *t)
{
    size_t n = 0;
    const int *a = pp_task_arg(t, &n);
    fd_report r = {-1, -1, -1};
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        r.pool_fds = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            char path[300], to[128] = "";
            snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
            ssize_t k = readlink(path, to, sizeof to - 1);
            if (k > 0)
                to[k] = 0;
            r.pool_fds += strstr(to, "memfd:ppool") || strstr(to, "[eventfd]") ||
                          strstr(to, "[signalfd]") || strstr(to, "[pidfd]") || strstr(to, "pidfd");
        }
        closedir(d);
    }
    if (n == 2 * sizeof(int)) {
        r.cloexec_pipe = is_pipe(a[0]);
        r.inherit_pipe = is_pipe(a[1]);
    }
    return pp_task_set_result(t, &r, sizeof r);
}

static void close_from_3(void)
{
    if (syscall(SYS_close_range, 3u, ~0u, 0) != 0)
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
}

/* Closes every descriptor >= 3. */
static int task_close_all(pp_task *t)
{
    (void)t;
    close_from_3();
    return 0;
}

#define VICTIM_SIZE (256ull << 20)
#define VICTIM_STRIDE (1ull << 20)
#define VICTIM_LOW 3
#define VICTIM_HIGH 63

/* Closes every descriptor >= 3, then puts a "user file" (a sparse memfd with
 * a 'X' every MiB) on every number 3..63, and leaves it open. */
static int task_squat_fds(pp_task *t)
{
    close_from_3();
    int fd = memfd_create("victim", 0);
    if (fd != VICTIM_LOW || ftruncate(fd, (off_t)VICTIM_SIZE) != 0)
        return pp_task_raise(t, 1, "memfd on %d", fd);
    for (uint64_t off = 0; off < VICTIM_SIZE; off += VICTIM_STRIDE)
        if (pwrite(fd, "X", 1, (off_t)off) != 1)
            return pp_task_raise(t, 2, "pwrite");
    for (int i = VICTIM_LOW + 1; i <= VICTIM_HIGH; i++)
        if (dup2(fd, i) != i)
            return pp_task_raise(t, 3, "dup2");
    return 0;
}

/* Frees a 4 MiB result block (a hole punch), then counts the victim's
 * damaged bytes (markers not 'X', bytes between them not 0, in the first
 * page after each marker), closes it, and returns the count (int). */
static int task_check_victim(pp_task *t)
{
    if (!pp_task_result(t, 4u << 20) || !pp_task_result(t, 4u << 20))
        return pp_task_raise(t, 4, "no result block");
    int bad = 0;
    char page[4096];
    for (uint64_t off = 0; off < VICTIM_SIZE; off += VICTIM_STRIDE) {
        if (pread(VICTIM_LOW, page, sizeof page, (off_t)off) != (ssize_t)sizeof page)
            return pp_task_raise(t, 5, "pread");
        bad += page[0] != 'X';
        for (size_t i = 1; i < sizeof page; i++)
            bad += page[i] != 0;
    }
    struct stat st;
    if (fstat(VICTIM_LOW, &st) != 0 || (uint64_t)st.st_size != VICTIM_SIZE)
        bad++;
    for (int i = VICTIM_LOW; i <= VICTIM_HIGH; i++)
        close(i);
    return pp_task_set_result(t, &bad, sizeof bad);
}

/* Closes every descriptor >= 3, puts a fake /proc/self/statm (a huge
 * private RSS) on every number 3..63, leaves it open, sleeps 20 ms (long
 * enough for the worker to read its RSS after the task). */
static int task_fake_statm(pp_task *t)
{
    close_from_3();
    int fd = memfd_create("statm", 0);
    const char fake[] = "1000000000 900000000 0 1 0 1 0\n";
    if (fd != VICTIM_LOW || write(fd, fake, sizeof fake - 1) != (ssize_t)sizeof fake - 1)
        return pp_task_raise(t, 1, "memfd");
    for (int i = VICTIM_LOW + 1; i <= VICTIM_HIGH; i++)
        if (dup2(fd, i) != i)
            return pp_task_raise(t, 3, "dup2");
    ppt_sleep(0.02);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static pp_executor *make_pool(int workers, pp_death_policy policy)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    cfg.on_worker_death = policy;
    cfg.slots = 64;
    cfg.arena_size = 64u << 20;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

static pp_future *submit_seconds(pp_executor *ex, pp_fn fn, double s, double timeout)
{
    pp_submit_opts o;
    pp_submit_opts_init(&o);
    o.timeout = timeout;
    pp_future *f = NULL;
    int rc = pp_submit_ex(ex, fn, &s, sizeof s, &o, &f);
    cr_assert_eq(rc, 0, "submit: %s", pp_strerror(rc));
    return f;
}

static int result_int(pp_future *f, double timeout, int *out)
{
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_result(f, timeout, &d, &n);
    if (rc == 0 && n == sizeof *out)
        memcpy(out, d, sizeof *out);
    else if (rc == 0)
        rc = -EPROTO;
    return rc;
}

/* Install a seccomp filter making syscall @nr fail with @err (this thread
 * and everything it starts). Returns 0, or -1 where not supported. */
static int deny_syscall(long nr, int err)
{
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const unsigned arch = AUDIT_ARCH_AARCH64;
#else
    (void)nr;
    (void)err;
    return -1;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -1;
#endif
}

/* Run @body in a forked child under a seccomp filter denying @nr with @err.
 * Returns the child's exit status, 200 when the filter could not be
 * installed, or -1 when it did not end within @seconds (it is then killed). */
static int run_denied(long nr, int err, int (*body)(void), double seconds)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (deny_syscall(nr, err) != 0)
            _exit(200);
        _exit(body());
    }
    double dl = ppt_deadline(seconds);
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (ppt_expired(dl)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        ppt_sleep(0.005);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* A pool of 2 workers starts and runs a task: 0, or the step that failed. */
static int body_pool_works(void)
{
    pp_config cfg;
    ppt_config(&cfg, 2);
    cfg.slots = 64;
    cfg.arena_size = 64u << 20;
    pp_executor *ex = NULL;
    double t0 = ppt_now();
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    if (ppt_now() - t0 > 5.0)
        return 2;
    pp_future *f = NULL;
    const void *d;
    size_t n;
    if (pp_submit(ex, ppt_task_noop, NULL, 0, &f) != 0 || pp_future_result(f, 10.0, &d, &n) != 0)
        return 3;
    pp_future_release(f);
    pp_executor_destroy(ex);
    return 0;
}

/* ---- 13: a worker that dies holding a task during shutdown --------------- */

static void exit0_during_shutdown(pp_death_policy policy, int want)
{
    pp_executor *ex = make_pool(1, policy);
    pp_future *f = submit_seconds(ex, task_exit0_after, 0.3, -1);
    cr_assert(PPT_WAIT_FOR(pp_future_running(f), 10.0));
    cr_assert_eq(pp_shutdown(ex, true, false), 0);
    const void *d;
    size_t n;
    int rc = pp_future_result(f, 5.0, &d, &n);
    cr_expect_eq(rc, want, "a task that _exit(0)s while shutdown waits: got %d (%s), want %s", rc,
                 pp_strerror(rc), pp_strerror(want));
    pp_future_release(f);
    pp_executor_destroy(ex);
}

Test(procs, exit0_in_task_during_shutdown_respawn, PPT_FIXTURE, .timeout = 30)
{
    exit0_during_shutdown(PP_DEATH_RESPAWN, PP_EWORKER);
}

Test(procs, exit0_in_task_during_shutdown_break, PPT_FIXTURE, .timeout = 30)
{
    exit0_during_shutdown(PP_DEATH_BREAK, PP_EBROKEN);
}

/* ---- 14: terminate_workers escalates ------------------------------------------ */

Test(procs, terminate_escalates_to_sigkill, PPT_FIXTURE, .timeout = 30)
{
    /* One worker: an idle one would die of SIGTERM and break the pool. */
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *f = submit_seconds(ex, task_ignore_term, 30.0, -1);
    cr_assert(PPT_WAIT_FOR(pp_future_running(f), 10.0));
    ppt_sleep(0.05); /* the workload: the task installs SIG_IGN first */
    double t0 = ppt_now();
    cr_assert_eq(pp_terminate_workers(ex), 0);
    const void *d;
    size_t n;
    int rc = pp_future_result(f, 5.0, &d, &n);
    double took = ppt_now() - t0;
    cr_expect_eq(rc, PP_EBROKEN, "got %d (%s)", rc, pp_strerror(rc));
    cr_expect_lt(took, 3.0, "resolved after %.2f s (grace is 1 s)", took);
    if (rc == -ETIMEDOUT)
        pp_kill_workers(ex); /* unfixed runtime: let destroy return */
    pp_future_release(f);
    t0 = ppt_now();
    pp_executor_destroy(ex);
    cr_expect_lt(ppt_now() - t0, 3.0);
}

/* ---- 16: killed right after create ----------------------------------------- */

Test(procs, workers_killed_right_after_create_respawn, PPT_FIXTURE, .timeout = 120)
{
    double end = ppt_deadline(45.0); /* fewer rounds where starts are slow (ASan, spawn) */
    for (int round = 0; round < 30 && (round < 3 || !ppt_expired(end)); round++) {
        int nw = 5 + round % 9;
        pp_executor *ex = make_pool(nw, PP_DEATH_RESPAWN);
        pp_worker_stats w[16];
        cr_assert_eq(pp_executor_stats(ex, NULL, w, nw), nw);
        for (int i = 0; i < nw; i++)
            kill(w[i].pid, SIGKILL); /* every one, at once: any in the window counts */
        pp_future *fs[16];
        for (int i = 0; i < nw; i++)
            cr_assert_eq(pp_submit(ex, ppt_task_noop, NULL, 0, &fs[i]), 0);
        for (int i = 0; i < nw; i++) {
            const void *d;
            size_t n;
            int rc = pp_future_result(fs[i], 20.0, &d, &n);
            cr_expect_eq(rc, 0, "round %d (%d workers), task %d: %s", round, nw, i,
                         pp_strerror(rc));
            pp_future_release(fs[i]);
        }
        pp_executor_destroy(ex);
    }
}

/* ---- 18: sched_getaffinity denied --------------------------------------------- */

Test(procs, seccomp_sched_getaffinity_eperm, PPT_FIXTURE, .timeout = 60)
{
    int rc = run_denied(SYS_sched_getaffinity, EPERM, body_pool_works, 20.0);
    if (rc == 200)
        cr_skip_test("no seccomp filter here");
    cr_expect_eq(rc, 0, "child: %d (-1: hung past 20 s)", rc);
}

/* ---- 19: pidfd_open missing ------------------------------------------------- */

Test(procs, seccomp_no_pidfd_open_pool_works, PPT_FIXTURE, .timeout = 60)
{
    int rc = run_denied(SYS_pidfd_open, ENOSYS, body_pool_works, 20.0);
    if (rc == 200)
        cr_skip_test("no seccomp filter here");
    cr_expect_eq(rc, 0, "child: %d (-1: hung past 20 s)", rc);
}

/* Without pidfd_open: the manager's death fails a running future promptly. */
static int body_manager_dies(void)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.slots = 64;
    cfg.arena_size = 64u << 20;
    pp_executor *ex = NULL;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    double s = 30.0;
    pp_future *f = NULL;
    if (pp_submit(ex, ppt_task_sleepy, &s, sizeof s, &f) != 0)
        return 2;
    pid_t kids[4];
    if (ppt_count_children(true, kids, 4) != 1) /* the manager */
        return 3;
    kill(kids[0], SIGKILL);
    double t0 = ppt_now();
    const void *d;
    size_t n;
    int rc = pp_future_result(f, 10.0, &d, &n);
    if (rc != PP_EBROKEN)
        return 4;
    if (ppt_now() - t0 > 1.0)
        return 5;
    pp_future_release(f);
    pp_executor_destroy(ex);
    return 0;
}

Test(procs, seccomp_no_pidfd_open_manager_dies, PPT_FIXTURE, .timeout = 60)
{
    int rc = run_denied(SYS_pidfd_open, ENOSYS, body_manager_dies, 20.0);
    if (rc == 200)
        cr_skip_test("no seccomp filter here");
    cr_expect_eq(rc, 0, "child: %d (-1: hung past 20 s)", rc);
}

/* Without pidfd_open: the client's death ends the manager and the workers
 * (the teardown checks that nothing outlives the test). */
static int body_client_dies(void)
{
    pp_config cfg;
    ppt_config(&cfg, 2);
    cfg.slots = 64;
    cfg.arena_size = 64u << 20;
    pp_executor *ex = NULL;
    if (pp_executor_create(&ex, &cfg) != 0)
        return 1;
    _exit(0); /* no shutdown: the pool must notice */
}

Test(procs, seccomp_no_pidfd_open_client_dies, PPT_FIXTURE, .timeout = 60)
{
    int rc = run_denied(SYS_pidfd_open, ENOSYS, body_client_dies, 20.0);
    if (rc == 200)
        cr_skip_test("no seccomp filter here");
    cr_expect_eq(rc, 0, "child: %d", rc);
    /* The orphans are ours (subreaper): they must go within a second. */
    cr_expect_eq(ppt_wait_no_children(1.5), 0, "the pool outlived its client");
}

/* ---- 21: descriptors ----------------------------------------------------------- */

Test(procs, workers_hold_no_foreign_descriptors, PPT_FIXTURE, .timeout = 30)
{
    int pc[2], pn[2];
    cr_assert_eq(pipe2(pc, O_CLOEXEC), 0);
    cr_assert_eq(pipe(pn), 0); /* inheritable: passed on, as documented */
    pp_executor *ex = make_pool(2, PP_DEATH_BREAK);
    int fds[2] = {pc[1], pn[1]};
    pp_future *f;
    cr_assert_eq(pp_submit(ex, task_fd_report, fds, sizeof fds, &f), 0);
    const void *d;
    size_t n;
    int rc = pp_future_result(f, 10.0, &d, &n);
    cr_assert_eq(rc, 0, "%s", pp_strerror(rc));
    cr_assert_eq(n, sizeof(fd_report));
    fd_report r;
    memcpy(&r, d, sizeof r);
    pp_future_release(f);
    cr_expect_eq(r.pool_fds, 0, "a worker holds %d of the pool's descriptors", r.pool_fds);
    cr_expect_eq(r.cloexec_pipe, 0, "a worker holds the client's close-on-exec pipe");
    cr_expect_eq(r.inherit_pipe, 1, "a worker lacks the client's inheritable pipe");
    close(pc[1]);
    struct pollfd p = {.fd = pc[0], .events = POLLIN};
    double dl = ppt_deadline(2.0);
    while (!(p.revents & POLLHUP) && !ppt_expired(dl))
        poll(&p, 1, 50);
    cr_expect(p.revents & POLLHUP, "a close-on-exec pipe's reader sees no EOF while the pool lives");
    close(pc[0]);
    close(pn[0]);
    close(pn[1]);
    pp_executor_destroy(ex);
}

/* ---- 22: tasks that close descriptors ---------------------------------------- */

Test(procs, task_reuses_descriptor_numbers, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    pp_future *f;
    cr_assert_eq(pp_submit(ex, task_squat_fds, NULL, 0, &f), 0);
    const void *d;
    size_t n;
    int rc = pp_future_result(f, 20.0, &d, &n);
    cr_assert_eq(rc, 0, "%s", pp_strerror(rc));
    pp_future_release(f);
    /* A task with a timeout: the worker tells the manager when it started. */
    f = submit_seconds(ex, ppt_task_sleepy, 0.0, 30.0);
    rc = pp_future_result(f, 20.0, &d, &n);
    cr_assert_eq(rc, 0, "%s", pp_strerror(rc));
    pp_future_release(f);
    cr_assert_eq(pp_submit(ex, task_check_victim, NULL, 0, &f), 0);
    int bad = -1;
    rc = result_int(f, 20.0, &bad);
    cr_expect_eq(rc, 0, "%s", pp_strerror(rc));
    cr_expect_eq(bad, 0, "the runtime wrote or punched %d bytes of a task's file", bad);
    pp_future_release(f);
    pp_executor_destroy(ex);
}

Test(procs, timeout_prompt_after_task_closed_descriptors, PPT_FIXTURE, .timeout = 60)
{
    pp_executor *ex = make_pool(1, PP_DEATH_BREAK);
    for (int round = 0; round < 3; round++) {
        pp_future *f;
        cr_assert_eq(pp_submit(ex, task_close_all, NULL, 0, &f), 0);
        const void *d;
        size_t n;
        int rc = pp_future_result(f, 20.0, &d, &n);
        cr_assert_eq(rc, 0, "%s", pp_strerror(rc));
        pp_future_release(f);
        double t0 = ppt_now();
        f = submit_seconds(ex, ppt_task_sleepy, 10.0, 0.05);
        rc = pp_future_result(f, 20.0, &d, &n);
        double took = ppt_now() - t0;
        cr_expect_eq(rc, PP_EKILLED, "%s", pp_strerror(rc));
        cr_expect_lt(took, 0.6, "round %d: a 0.05 s timeout enforced after %.2f s", round, took);
        pp_future_release(f);
    }
    pp_executor_destroy(ex);
}

/* max_rss_growth reads the worker's own statm, not a file a task opened on
 * the descriptor's number. */
Test(procs, rss_watch_survives_descriptor_reuse, PPT_FIXTURE, .timeout = 60)
{
    pp_config cfg;
    ppt_config(&cfg, 1);
    cfg.slots = 64;
    cfg.arena_size = 64u << 20;
    cfg.max_rss_growth = 1u << 30;
    pp_executor *ex = NULL;
    cr_assert_eq(pp_executor_create(&ex, &cfg), 0);
    double s = 0.02;
    pp_fn fns[3] = {ppt_task_sleepy, task_fake_statm, ppt_task_sleepy};
    for (int i = 0; i < 3; i++) { /* baseline, fake, one more */
        pp_future *f;
        cr_assert_eq(pp_submit(ex, fns[i], &s, sizeof s, &f), 0);
        const void *d;
        size_t n;
        int rc = pp_future_result(f, 20.0, &d, &n);
        cr_assert_eq(rc, 0, "task %d: %s", i, pp_strerror(rc));
        pp_future_release(f);
    }
    pp_stats st;
    pp_executor_stats(ex, &st, NULL, 0);
    cr_expect_eq(st.respawns, 0, "the worker retired on a task's fake statm");
    pp_executor_destroy(ex);
}
