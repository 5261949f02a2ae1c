/*
 * exit_registry.c — the registry of live executors, and the atexit(3)
 * handler that makes the program wait for the work it submitted.
 *
 * Python joins every executor's workers when the interpreter exits
 * (concurrent.futures registers this with threading._register_atexit): work
 * already submitted still runs and its futures resolve, even after
 * shutdown(wait=False), and the program ends only then. ppool does the same
 * with an atexit(3) handler: every executor created by this process and not
 * yet destroyed is shut down with wait=true, cancel_futures=false, which
 * lets its queued and running tasks finish, stops its workers and reaps its
 * manager. Its memory is left to the end of the process (a thread may still
 * hold its futures). _exit(), quick_exit(), a fatal signal and SIGKILL skip
 * atexit handlers: then the workers and the manager die with the client
 * (parent-death signal), and what they had not finished is lost.
 *
 * Registry: an intrusive urcu list (pp_executor.exit_node) of live executors
 * (newest first).
 *
 * | what                         | written by                                  | read by                     |
 * |------------------------------|---------------------------------------------|-----------------------------|
 * | list links, ex->exit_listed  | ppi_exit_add (create), ppi_exit_remove      | exit_handler, under         |
 * |                              | (destroy), under exit_lock                  | exit_lock                   |
 * | ppi_self_pid                 | ppi_self_pid_init, ppi_exit_add (this       | exit_handler: acquire load, |
 * |                              | process's pid), after_fork_child (single-   | before it takes exit_lock;  |
 * |                              | threaded child): release stores             | ppi_foreign: relaxed        |
 *
 * References: the user's reference to an executor is dropped only after
 * ppi_exit_remove took it off the list under exit_lock, so an executor on
 * the list has refs >= 1 while the lock is held: the handler takes one more
 * for each, and shuts them down after dropping the lock (a done-callback
 * that runs during the wait may destroy another executor, which needs it).
 *
 * fork(): a child inherits the parent's list (executors that are not its
 * own: their manager is the parent's child) and possibly exit_lock held by
 * another parent thread. A pthread_atfork child handler empties the list and
 * re-initialises the lock. The handler also checks ppi_self_pid against
 * getpid(), so a process that did not build the list (a child made by a raw
 * clone, or a worker whose task calls exit()) never touches it.
 *
 * A handler that runs on an executor's service thread (exit() called inside
 * a done-callback there) does not wait for that executor: waiting would run
 * its other callbacks inside exit(). That executor is shut down without
 * waiting; the others wait. exit() inside a callback on any other thread
 * waits for every executor (pp_shutdown skips only the callbacks running
 * on the calling thread).
 *
 * ppi_self_pid doubles as the pid cache of the entry checks (client.h,
 * ppi_foreign): a fork()ed child sees its own pid there, which differs from
 * its executors' owner_pid, without a getpid() per call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "client.h"

static pthread_mutex_t exit_lock = PTHREAD_MUTEX_INITIALIZER;
static CDS_LIST_HEAD(exit_list); /* pp_executor.exit_node, under exit_lock */
_Atomic pid_t ppi_self_pid; /* client.h: also the entry checks' pid cache */
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void after_fork_child(void)
{
    /* Single-threaded here: no other thread can hold or take the lock. */
    pthread_mutex_init(&exit_lock, NULL);
    CDS_INIT_LIST_HEAD(&exit_list);
    /* release: pairs with exit_handler's acquire load. */
    atomic_store_explicit(&ppi_self_pid, getpid(), memory_order_release);
}

static void exit_handler(void)
{
    /* acquire: pairs with the stores of ppi_exit_add / after_fork_child. */
    if (atomic_load_explicit(&ppi_self_pid, memory_order_acquire) != getpid())
        return;
    pthread_mutex_lock(&exit_lock);
    size_t n = 0;
    struct cds_list_head *pos; /* node by node: see backlog.c */
    cds_list_for_each(pos, &exit_list)
        n++;
    pp_executor **all = n ? malloc(n * sizeof *all) : NULL;
    size_t k = 0;
    cds_list_for_each(pos, &exit_list) {
        if (!all)
            break;
        pp_executor *e = cds_list_entry(pos, pp_executor, exit_node);
        /* relaxed: refs >= 1 while it is listed (see above); the lock orders
         * this against the owner's removal. */
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        all[k++] = e;
    }
    pthread_mutex_unlock(&exit_lock);
    for (size_t i = 0; i < k; i++) {
        pp_shutdown(all[i], !ppi_service_is_self(all[i]), false);
        ppi_executor_unref(all[i]);
    }
    free(all);
}

static void exit_setup(void)
{
    (void)pthread_atfork(NULL, NULL, after_fork_child);
    (void)atexit(exit_handler);
}

/* pp_executor_create, first thing: the pid cache and the fork handler are
 * in place before the executor exists. */
void ppi_self_pid_init(void)
{
    pthread_once(&exit_once, exit_setup);
    /* release: pairs with exit_handler's acquire load. */
    atomic_store_explicit(&ppi_self_pid, getpid(), memory_order_release);
}

void ppi_exit_add(pp_executor *ex)
{
    pthread_once(&exit_once, exit_setup);
    pthread_mutex_lock(&exit_lock);
    /* release: pairs with exit_handler's acquire load. */
    atomic_store_explicit(&ppi_self_pid, getpid(), memory_order_release);
    cds_list_add(&ex->exit_node, &exit_list);
    ex->exit_listed = 1;
    pthread_mutex_unlock(&exit_lock);
}

void ppi_exit_remove(pp_executor *ex)
{
    pthread_mutex_lock(&exit_lock);
    if (ex->exit_listed) {
        cds_list_del(&ex->exit_node);
        ex->exit_listed = 0;
    }
    pthread_mutex_unlock(&exit_lock);
}
