/* error.c — names for every error code (pp_strerror). */
#include <errno.h>
#include <string.h>

#include "ppool.h"

const char *pp_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case PP_EBROKEN: return "the pool is broken (a worker or the manager died, or it could not start)";
    case PP_ETASK: return "the task raised an error";
    case PP_EWORKER: return "the worker running the task died";
    case PP_EKILLED: return "the task was killed (on request or by its timeout)";
    case PP_ETOOBIG: return "payload larger than the configured limit";
    case PP_ENOFUNC: return "the function cannot be called in the workers (its module was not loaded when the pool started, or differs)";
    case PP_EFORKED: return "the executor belongs to another process (this one was forked from its client)";
    case PP_ENODE: return "the MPI rank running the task was lost";
    case -EINVAL: return "invalid argument";
    case -ENOMEM: return "out of memory";
    case -ETIMEDOUT: return "timed out";
    case -ECANCELED: return "cancelled";
    case -ESHUTDOWN: return "the executor is shut down";
    case -EAGAIN: return "resource temporarily unavailable";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerror's text for other errno values; the static table of glibc
         * makes this thread-safe for known codes. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}
