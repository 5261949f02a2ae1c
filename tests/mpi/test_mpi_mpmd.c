/*
 * test_mpi_mpmd — an MPMD launch: ranks 0-1 run this program, rank 2 runs
 * peer_mpi_other (another binary, another build-id). Tasks rank 2 takes fail
 * with PP_ENOFUNC naming rank 2, never a jump to a wrong address; the others
 * run. A pp_map's chunk shipped to rank 2 fails the same way, at its first
 * item, the items before it delivered. (run_mpi.sh's mode "mpmd".)
 */
#include <string.h>
#include <unistd.h>

#include "mpi_check.h"

static int t_square(pp_task *t)
{
    const int *x = pp_task_arg(t, NULL);
    usleep(20000);
    int y = *x * *x;
    return pp_task_set_result(t, &y, sizeof y);
}

static int t_item(pp_map_item *it)
{
    usleep(2000);
    int x = *(const int *)it->in[0];
    *(int *)it->out = x * x;
    return 0;
}

/* Enough 2 ms items that rank 2's lane takes chunks. */
static void map_mpmd(pp_executor *ex)
{
    enum { N = 300 };
    static int in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i + 1;
    pp_map_input mi = pp_map_array(in, N, sizeof in[0]);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = sizeof out[0];
    o.chunksize = 5;
    pp_map_status st;
    CHECK_EQ(pp_map(ex, t_item, &mi, 1, out, N, NULL, &o, &st), PP_ENOFUNC);
    CHECK(strstr(st.message, "build-id") != NULL);
    CHECK(st.done < N && st.done % 5 == 0);
    int bad = 0;
    for (size_t i = 0; i < st.done; i++)
        bad += out[i] != in[i] * in[i];
    CHECK_EQ(bad, 0);
}

int main(int argc, char **argv)
{
    pp_mpi_config cfg;
    mc_init(&argc, &argv, &cfg);
    pp_executor *ex = NULL;
    int rc = pp_mpi_executor_create(&ex, &cfg);
    if (rc == PP_MPI_SERVED)
        return mc_finish();
    CHECK_EQ(rc, 0);
    if (rc)
        return mc_finish();
    enum { N = 24 };
    pp_future *fs[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(pp_submit(ex, t_square, &i, sizeof i, &fs[i]), 0);
    int enofunc = 0, ok = 0;
    for (int i = 0; i < N; i++) {
        pp_exception e;
        CHECK_EQ(pp_future_exception(fs[i], PP_FOREVER, &e), 0);
        if (e.rank == 2) {
            CHECK_EQ(e.error, PP_ENOFUNC);
            CHECK(strstr(e.message, "build-id") != NULL);
            enofunc++;
        } else {
            CHECK_EQ(e.error, 0);
            const int *y;
            CHECK_EQ(pp_future_result(fs[i], 0, (const void **)&y, NULL), 0);
            CHECK(y && *y == i * i);
            ok++;
        }
        pp_future_release(fs[i]);
    }
    CHECK(enofunc > 0);
    CHECK(ok > 0);
    map_mpmd(ex);
    pp_executor_destroy(ex);
    return mc_finish();
}
