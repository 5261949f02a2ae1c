/* ppool-tune's test plug-in (tests/script_tune.sh): map item functions whose
 * behaviour the script checks through the tool's output and exit status. */
#include <ppool.h>

#include <string.h>
#include <unistd.h>

/* The item's bytes, unchanged (--out-size = the item size). */
int ppt_tune_copy(pp_map_item *it)
{
    memcpy(it->out, it->in[0], it->in_size[0]);
    return 0;
}

/* Variable-size results: the item reversed, as long as it is (--variable). */
int ppt_tune_reverse(pp_map_item *it)
{
    const char *in = it->in[0];
    size_t n = it->in_size[0] < it->out_cap ? it->in_size[0] : it->out_cap;
    char *out = it->out;
    for (size_t i = 0; i < n; i++)
        out[i] = in[n - 1 - i];
    it->out_size = n;
    return 0;
}
const size_t ppt_tune_reverse_out_size = 256;

/* The calling process's pid: equal in the serial run, different in the
 * workers, so the digest check must fail. */
int ppt_tune_pid(pp_map_item *it)
{
    long pid = (long)getpid();
    memcpy(it->out, &pid, sizeof pid);
    return 0;
}
const size_t ppt_tune_pid_out_size = sizeof(long);

/* Succeeds in the tool's own process (no runner task), fails item 3 in a
 * worker with a message. */
int ppt_tune_fail_in_pool(pp_map_item *it)
{
    memset(it->out, 0, it->out_cap);
    if (it->task && it->index == 3)
        return pp_map_raise(it, 42, "item %zu refused in a worker", it->index);
    return 0;
}
const size_t ppt_tune_fail_in_pool_out_size = 8;
