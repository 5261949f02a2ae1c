/*
 * test_shutdown.c — pp_shutdown and its effects: maps stopped by
 * cancel_futures.
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

static pp_executor *make_pool(int workers, uint32_t slots)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    if (slots)
        cfg.slots = slots;
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, &cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %s", pp_strerror(rc));
    return ex;
}

/* ---- item 17: map items that returned early on the pool's stop ----------- */

typedef struct stop_ctx {
    uint64_t started_off; /* _Atomic uint64_t in shared memory */
} stop_ctx;

/* out = 1 if it returned because pp_map_should_stop said so, 2 otherwise. */
static int until_stop_item(pp_map_item *it)
{
    const stop_ctx *c = it->ctx;
    _Atomic uint64_t *started = pp_task_shm(it->task, c->started_off);
    atomic_fetch_add(started, 1);
    double dl = ppt_deadline(10.0);
    uint64_t v = 2;
    while (!ppt_expired(dl)) {
        if (pp_map_should_stop(it)) {
            v = 1;
            break;
        }
        ppt_sleep(0.0005);
    }
    memcpy(it->out, &v, sizeof v);
    return 0;
}

Test(shutdown, map_items_stopped_by_cancel_futures_are_not_delivered, PPT_FIXTURE,
     .timeout = 60)
{
    pp_executor *ex = make_pool(2, 0);
    void *p;
    cr_assert_eq(pp_shm_alloc(ex, 64, &p), 0);
    atomic_store((_Atomic uint64_t *)p, 0);
    stop_ctx sc = {pp_shm_offset(ex, p)};
    enum { N = 8 };
    uint64_t in[N] = {0};
    pp_map_input mi = pp_map_array(in, N, 8);
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.out_size = 8;
    o.ctx = &sc;
    o.ctx_size = sizeof sc;
    pp_map_iter *m;
    cr_assert_eq(pp_map_begin(&m, ex, until_stop_item, &mi, 1, &o), 0);
    cr_assert(PPT_WAIT_FOR(atomic_load((_Atomic uint64_t *)p) >= 1, 10.0), "an item started");
    cr_assert_eq(pp_shutdown(ex, false, true), 0);
    int rc;
    const void *r;
    size_t k = 0;
    while ((rc = pp_map_next(m, &r, NULL)) == 0) {
        uint64_t v;
        memcpy(&v, r, sizeof v);
        cr_assert_neq(v, 1, "item %zu returned early on the stop and was delivered", k);
        k++;
    }
    cr_assert_eq(rc, -ECANCELED, "%s", pp_strerror(rc));
    pp_map_status st;
    pp_map_get_status(m, &st);
    cr_assert_eq(st.error, -ECANCELED);
    cr_assert_eq(st.done, k);
    cr_assert_eq(pp_map_end(m), 0);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}
