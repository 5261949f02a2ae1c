/*
 * start.c — start methods: launching the manager (spawn, forkserver) and the
 * workers (spawn) as fresh execs of the program, and the entry point by which
 * such an exec becomes a manager or a worker *before main() runs*.
 *
 * The marker is a set of environment variables (role, the segment's and the
 * command eventfd's descriptor numbers, the expected parent pid, the worker
 * index). The descriptors are inherited across exec (their close-on-exec flag
 * is cleared only in the child, by posix_spawn's dup2 file actions). A
 * library constructor reads the marker, removes it from the environment (so
 * that programs the user's tasks start do not inherit it), maps the segment
 * and runs the role's loop; it never returns to the program, so user code in
 * main() never runs in a manager or worker.
 *
 * Anything wrong with the marker (a descriptor that is not a ppool segment, a
 * parent that is not the expected one) makes the process exit with
 * PPI_EXIT_ATTACH; its parent then sees a worker that died while starting and
 * breaks the pool — never a hang.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fnmap.h"
#include "ppool.h"
#include "process.h"
#include "thread_env.h"

extern char **environ;

#define ENV_ROLE "PPOOL_ROLE"
#define ENV_FD "PPOOL_SEG_FD"
#define ENV_CMD "PPOOL_CMD_FD"
#define ENV_PARENT "PPOOL_PARENT"
#define ENV_WIDX "PPOOL_WORKER"
#define BAD_FD 987 /* fault injection: a descriptor number nobody has open */

int ppi_count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Replace @fd with /dev/null (@devnull), close-on-exec, or close it. */
static void drop_fd(int fd, int devnull)
{
    if (devnull < 0 || dup3(devnull, fd, O_CLOEXEC) < 0)
        close(fd);
}

void ppi_drop_cloexec_fds(const int *keep, int nkeep)
{
    /* Numbers at or above the soft limit are not ours to judge (valgrind
     * keeps its own there). */
    struct rlimit rl;
    long top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur : 65536;
    if (top > 1 << 20)
        top = 1 << 20; /* the loop without /proc must stay short */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        /* dup3 onto an open number neither adds nor removes an entry, so
         * the listing stays valid while we go. */
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            int fd = atoi(e->d_name);
            bool kept = fd < 3 || fd >= top || fd == dirfd(d) || fd == devnull;
            for (int i = 0; i < nkeep; i++)
                kept |= fd == keep[i];
            int fl = kept ? 0 : fcntl(fd, F_GETFD);
            if (fl > 0 && (fl & FD_CLOEXEC))
                drop_fd(fd, devnull);
        }
        closedir(d);
    } else { /* no /proc: ask every number up to the limit */
        for (long fd = 3; fd < top; fd++) {
            bool kept = fd == devnull;
            for (int i = 0; i < nkeep; i++)
                kept |= fd == keep[i];
            int fl = kept ? 0 : fcntl((int)fd, F_GETFD);
            if (fl > 0 && (fl & FD_CLOEXEC))
                drop_fd((int)fd, devnull);
        }
    }
    if (devnull >= 0)
        close(devnull);
}

pp_start_method ppi_resolve_start_method(pp_start_method m)
{
    if (m != PP_START_AUTO)
        return m;
    return ppi_count_threads() == 1 ? PP_START_FORK : PP_START_FORKSERVER;
}

/* An MPI launcher's variable (Open MPI, PMIx, PMI/Slurm): a freshly exec'd
 * manager or worker never gets one, so that a task calling MPI_Init cannot
 * join the job of the rank that runs its pool (docs/mpi.md). */
static bool env_is_mpi(const char *s)
{
    return strncmp(s, "OMPI_", 5) == 0 || strncmp(s, "PMIX_", 5) == 0 ||
           strncmp(s, "PMI_", 4) == 0;
}

/* Does @s begin with the name @name followed by '='? */
static bool env_is(const char *s, const char *name)
{
    size_t n = strlen(name);
    return strncmp(s, name, n) == 0 && s[n] == '=';
}

int ppi_exec_spawn(const ppi_seg *seg, const char *role, int widx, pid_t *pid_out)
{
    size_t n = 0;
    while (environ[n])
        n++;
    bool worker = strcmp(role, "worker") == 0;
    /* A worker's thread variables go in its exec environment: runtimes
     * that read them in their constructors run before ours. */
    static ppi_tenv tenv; /* 8 KiB; the manager is single-threaded */
    tenv.n = 0;
    if (worker)
        ppi_tenv_make(&tenv, seg->hdr->cores_per_worker, seg->hdr->thread_env_keep,
                      &seg->workers[widx].place);
    char **env = calloc(n + 6 + PPI_TENV_N, sizeof *env);
    char *tenv_str[PPI_TENV_N] = {0};
    if (!env)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_is(environ[i], ENV_ROLE) && !env_is(environ[i], ENV_FD) &&
            !env_is(environ[i], ENV_CMD) && !env_is(environ[i], ENV_PARENT) &&
            !env_is(environ[i], ENV_WIDX) && !env_is_mpi(environ[i]) &&
            !ppi_tenv_sets(&tenv, environ[i]))
            env[k++] = environ[i];
    for (int i = 0; i < tenv.n; i++) {
        size_t len = strlen(tenv.name[i]) + strlen(tenv.value[i]) + 2;
        tenv_str[i] = malloc(len);
        if (!tenv_str[i])
            continue; /* the worker sets it again before its initializer */
        snprintf(tenv_str[i], len, "%s=%s", tenv.name[i], tenv.value[i]);
        env[k++] = tenv_str[i];
    }
#ifdef PPOOL_FAULT_INJECTION
    uint32_t bad = seg->hdr->test_bad_fd; /* 1: manager, 2: workers */
    int fd = (bad == 1 && !worker) || (bad == 2 && worker) ? BAD_FD : seg->fd;
#else
    int fd = seg->fd;
#endif
    char v_role[32], v_fd[32], v_cmd[32], v_parent[32], v_widx[32];
    snprintf(v_role, sizeof v_role, ENV_ROLE "=%s", role);
    snprintf(v_fd, sizeof v_fd, ENV_FD "=%d", fd);
    snprintf(v_cmd, sizeof v_cmd, ENV_CMD "=%d", seg->cmd_fd);
    snprintf(v_parent, sizeof v_parent, ENV_PARENT "=%d", (int)getpid());
    snprintf(v_widx, sizeof v_widx, ENV_WIDX "=%d", widx);
    env[k++] = v_role;
    env[k++] = v_fd;
    env[k++] = v_cmd;
    env[k++] = v_parent;
    env[k++] = v_widx;
    env[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    /* dup2 onto itself clears close-on-exec in the child only (glibc >= 2.29). */
    posix_spawn_file_actions_adddup2(&fa, seg->fd, seg->fd);
    posix_spawn_file_actions_adddup2(&fa, seg->cmd_fd, seg->cmd_fd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char name[32];
    snprintf(name, sizeof name, worker ? "ppool-w%d" : "ppool-manager", widx);
    char *argv[] = {name, NULL};
    /* /proc/self/exe: this very file, even if the path was replaced since.
     * Under valgrind (its preload in LD_PRELOAD) that names the tool, so
     * the program's path (valgrind answers readlink with it) is used. */
    char exe[4096] = "/proc/self/exe";
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[len > 0 ? len : 0] = 0;
        if (len <= 0)
            snprintf(exe, sizeof exe, "/proc/self/exe");
    }
    int rc = posix_spawn(pid_out, exe, &fa, &at, argv, env);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    for (int i = 0; i < PPI_TENV_N; i++)
        free(tenv_str[i]);
    return -rc;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

/*
 * The exec entry. Runs as a constructor of libppool, before main(), in every
 * process that links it; returns at once unless the marker is present.
 */
__attribute__((constructor)) static void ppi_exec_entry(void)
{
    const char *role = getenv(ENV_ROLE);
    if (!role)
        return;
    bool manager = strcmp(role, "manager") == 0;
    int fd = (int)env_long(ENV_FD, -1), cmd = (int)env_long(ENV_CMD, -1);
    pid_t parent = (pid_t)env_long(ENV_PARENT, -1);
    int widx = (int)env_long(ENV_WIDX, -1);
    unsetenv(ENV_ROLE);
    unsetenv(ENV_FD);
    unsetenv(ENV_CMD);
    unsetenv(ENV_PARENT);
    unsetenv(ENV_WIDX);
    ppi_seg seg;
    if (getppid() != parent || ppi_seg_attach(&seg, fd, cmd) != 0)
        _exit(PPI_EXIT_ATTACH);
    if (manager)
        ppi_manager_main(&seg);
    if (widx < 0 || (uint32_t)widx >= seg.hdr->nworkers)
        _exit(PPI_EXIT_ATTACH);
    ppi_worker_main(&seg, widx, parent);
}
