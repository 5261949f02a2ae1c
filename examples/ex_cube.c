/*
 * ex_cube.c — the smallest complete program: cube a few numbers with
 * pp_map, all results at once into an array, in input order. The pool lives
 * in a scope: PP_SCOPED_EXECUTOR destroys it (shutdown, wait, free) when the
 * scope ends, like Python's `with` statement.
 * Python: with ProcessPoolExecutor(max_workers=5) as ex:
 *             for r in ex.map(cube, [3, 4, 5, 6]): print(r)
 */
#include <ppool.h>

#include <stdio.h>

static int cube(pp_map_item *it)
{
    long x = *(const long *)it->in[0];
    *(long *)it->out = x * x * x;
    return 0;
}

int main(void)
{
    const long values[] = {3, 4, 5, 6};
    long cubes[4];
    int rc;
    {
        PP_SCOPED_EXECUTOR(ex);
        pp_config cfg;
        pp_config_init(&cfg);
        cfg.max_workers = 5;
        cfg.pin = PP_PIN_NONE; /* 5 workers may exceed the cores: do not pin */
        rc = pp_executor_create(&ex, &cfg);
        if (rc != 0) {
            fprintf(stderr, "pp_executor_create: %s\n", pp_strerror(rc));
            return 1;
        }
        pp_map_input in = pp_map_array(values, 4, sizeof values[0]);
        pp_map_opts o;
        pp_map_opts_init(&o);
        o.out_size = sizeof cubes[0];
        rc = pp_map(ex, cube, &in, 1, cubes, 4, NULL, &o, NULL);
    } /* the pool is shut down here */
    if (rc != 0) {
        fprintf(stderr, "pp_map: %s\n", pp_strerror(rc));
        return 1;
    }
    for (int i = 0; i < 4; i++)
        printf("cube of %ld is %ld\n", values[i], cubes[i]);
    return 0;
}
