/*
 * faults_util.c — see faults_util.h: the memory shared with the workers and
 * the task functions several fault-injection suites submit.
 */
#include "faults_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ======================================================================== */
/* memory shared with the workers                                           */
/* ======================================================================== */

shared *g_sh;

#define SHARED_ENV "PPT_FAULTS_SHARED_FD"

/* A memfd (no name in /dev/shm) without close-on-exec, its descriptor number
 * in the environment: forked workers inherit the mapping itself, spawned
 * ones (PPOOL_START_METHOD=spawn|forkserver) inherit the descriptor and the
 * variable and map it on first use (sh()). */
void shared_map(void)
{
    int fd = memfd_create("ppt_faults", 0);
    cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
    cr_assert_eq(ftruncate(fd, sizeof(shared)), 0);
    void *p = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(p, 0, sizeof(shared));
    g_sh = p;
    char v[16];
    snprintf(v, sizeof v, "%d", fd);
    cr_assert_eq(setenv(SHARED_ENV, v, 1), 0);
}

/* The shared block, in the client or a worker (NULL if the test made none). */
shared *sh(void)
{
    if (!g_sh) {
        const char *v = getenv(SHARED_ENV);
        if (v && *v) {
            void *p = mmap(NULL, sizeof(shared), PROT_READ | PROT_WRITE, MAP_SHARED, atoi(v), 0);
            if (p != MAP_FAILED)
                g_sh = p;
        }
    }
    return g_sh;
}

void note_pid(void)
{
    if (sh())
        atomic_store(&sh()->crash_pid, (int)getpid());
}

/* ======================================================================== */
/* task functions (run in workers)                                          */
/* ======================================================================== */

void no_core(void)
{
    struct rlimit rl = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &rl);
}

/* SIGSEGV back to its default action with the raw system call: ASan
 * intercepts signal()/sigaction() and keeps its own handler, which turns a
 * fault into exit(1). */
void segv_default(void)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } ksa = {(void *)SIG_DFL, 0, NULL, 0};
    (void)syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof ksa.mask);
}

int task_pid_seq(pp_task *t)
{
    static pid_t me;
    static uint32_t n;
    pid_t p = getpid();
    if (p != me) {
        me = p;
        n = 0;
    }
    pid_seq r = {(int32_t)p, ++n};
    (void)pp_task_set_result(t, &r, sizeof r);
    return 0;
}

/* Argument double s: sleep s, then crash (abort). Notes its pid in g_sh first. */
int task_abort(pp_task *t)
{
    ppt_sleep(ppt_arg_seconds(t));
    note_pid();
    no_core();
    abort();
}

/* Argument uint32 microseconds: busy-waits that long; result = the argument. */
int task_spin_us(pp_task *t)
{
    size_t n = 0;
    const void *a = pp_task_arg(t, &n);
    uint32_t us = 0;
    if (n >= sizeof us)
        memcpy(&us, a, sizeof us);
    double until = ppt_now() + us * 1e-6;
    while (ppt_now() < until)
        ;
    (void)pp_task_set_result(t, &us, sizeof us);
    return 0;
}
