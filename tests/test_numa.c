/*
 * test_numa.c — memory placement and the per-worker placement report.
 *
 *  - A large result (pp_task_result, fresh arena pages) written by a pinned
 *    worker lies on that worker's NUMA node: the task itself asks hwloc
 *    (hwloc_get_area_memlocation, page by page) where its pages are, and the
 *    client compares with the node pp_executor_stats reports for the worker.
 *  - The same for a pp_shm_alloc array first-touched by a task (the recipe
 *    docs/topology.md gives for node-local input arrays), and for one bound
 *    from the client with hwloc_set_area_membind before its first touch.
 *  - pp_executor_stats gives every worker its own cpu and core when there are
 *    no more workers than cores, a NUMA node (or -1) that matches sysfs, and
 *    pp_executor_topology describes the machine.
 *
 * On a machine where hwloc cannot say where pages are (no move_pages, a
 * seccomp filter, the sched_getaffinity fallback without NUMA information)
 * the location tests are skipped with the reason.
 *
 * See docs/topology.md, "Memory placement".
 */
#include "pp_testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PPT_FIXTURE .init = pp_test_setup, .fini = pp_test_teardown

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define AREA_BYTES (8 * MiB)      /* the area whose pages are located */
#define REPORT_BYTES (16 * KiB)   /* room for numa_report at the start of a result */
#define MAX_PAGES 4096            /* page_node[] entries: 16 MiB of 4 KiB pages */
#define MAX_UNION 64
#define MAXW 64

#define PAGE_NONE (-1)  /* hwloc reported no node for the page (not present?) */
#define PAGE_MANY (-2)  /* hwloc reported several nodes for one page */

/* What the probe task reports (written by the worker, read by the client). */
typedef struct numa_report {
    int32_t err;            /* 0, or -errno of the failing call named in where[] */
    int32_t worker;         /* pp_task_worker() */
    int32_t cpu;            /* sched_getcpu() after touching the area */
    int32_t pid;
    int32_t topo_nodes;     /* NUMA nodes in the worker's hwloc topology */
    int32_t n_union;        /* OS indexes in union[] */
    int32_t union_nodes[MAX_UNION]; /* node set of the whole area, OS indexes */
    uint32_t npages;        /* pages located (page_node[0..npages-1]) */
    uint32_t page_size;
    char where[96];
    int16_t page_node[MAX_PAGES]; /* OS index per page, or PAGE_NONE / PAGE_MANY */
} numa_report;

_Static_assert(sizeof(numa_report) <= REPORT_BYTES, "report does not fit");

/* What the probe task is asked to do. */
typedef struct probe_arg {
    uint64_t shm_off;  /* UINT64_MAX: locate the task's own result, else this pp_shm block */
    uint64_t bytes;    /* size of the data area */
    double hold;       /* seconds to sleep first, so that every worker takes a probe */
} probe_arg;

static void report_fail(numa_report *r, const char *where, int err)
{
    if (r->err)
        return;
    r->err = -err;
    snprintf(r->where, sizeof r->where, "%s", where);
}

/*
 * Locate [area, area+len) page by page, and as a whole, with hwloc's
 * hwloc_get_area_memlocation (move_pages(2) on Linux). Needs a topology; a
 * worker has none of its own, so it loads one here.
 */
static void locate(numa_report *r, const void *area, size_t len)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) < 0) {
        report_fail(r, "hwloc_topology_init", errno);
        return;
    }
    if (hwloc_topology_load(topo) < 0) {
        report_fail(r, "hwloc_topology_load", errno);
        hwloc_topology_destroy(topo);
        return;
    }
    r->topo_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    if (!ns) {
        report_fail(r, "hwloc_bitmap_alloc", ENOMEM);
        hwloc_topology_destroy(topo);
        return;
    }
    /* The whole area: the union of its pages' nodes, as OS indexes. */
    if (hwloc_get_area_memlocation(topo, area, len, ns, HWLOC_MEMBIND_BYNODESET) < 0) {
        report_fail(r, "hwloc_get_area_memlocation(area)", errno);
        goto out;
    }
    unsigned idx;
    hwloc_bitmap_foreach_begin(idx, ns)
    {
        if (r->n_union < MAX_UNION)
            r->union_nodes[r->n_union++] = (int32_t)idx;
    }
    hwloc_bitmap_foreach_end();
    /* Page by page: the union above could hide a page that reports nothing. */
    size_t ps = r->page_size, np = len / ps;
    for (size_t p = 0; p < np && p < MAX_PAGES; p++) {
        if (hwloc_get_area_memlocation(topo, (const char *)area + p * ps, ps, ns,
                                       HWLOC_MEMBIND_BYNODESET) < 0) {
            report_fail(r, "hwloc_get_area_memlocation(page)", errno);
            goto out;
        }
        int w = hwloc_bitmap_weight(ns);
        r->page_node[p] = (int16_t)(w == 1 ? hwloc_bitmap_first(ns) : w == 0 ? PAGE_NONE : PAGE_MANY);
        r->npages = (uint32_t)(p + 1);
    }
out:
    hwloc_bitmap_free(ns);
    hwloc_topology_destroy(topo);
}

/*
 * The probe. Result mode: result = [report | REPORT_BYTES-padded][data], the
 * whole result (report pages included) first-touched here and located. Shared
 * array mode: first-touch the pp_shm block, locate it, result = the report.
 * The data is filled with ppt_pattern_byte so the client can check it.
 */
static int numa_probe_task(pp_task *t)
{
    size_t n = 0;
    const probe_arg *a = pp_task_arg(t, &n);
    if (n != sizeof *a)
        return pp_task_raise(t, 1, "bad argument size %zu", n);
    probe_arg arg = *a;
    if (arg.hold > 0)
        ppt_sleep(arg.hold);
    long psz = sysconf(_SC_PAGESIZE);
    if (psz <= 0 || REPORT_BYTES % (size_t)psz)
        return pp_task_raise(t, 2, "page size %ld", psz);

    numa_report *r;
    unsigned char *area, *data;
    size_t area_len;
    if (arg.shm_off == UINT64_MAX) {
        area_len = REPORT_BYTES + arg.bytes;
        area = pp_task_result(t, area_len);
        if (!area)
            return 0; /* the runtime fails the future (PP_ETOOBIG / -ENOMEM) */
        memset(area, 0, REPORT_BYTES); /* first touch of the report pages, here */
        r = (numa_report *)area;
        data = area + REPORT_BYTES;
    } else {
        data = pp_task_shm(t, arg.shm_off);
        if (!data)
            return pp_task_raise(t, 3, "pp_task_shm(%llu) = NULL", (unsigned long long)arg.shm_off);
        area = data;
        area_len = arg.bytes;
        r = calloc(1, sizeof *r);
        if (!r)
            return pp_task_raise(t, 4, "out of memory");
    }
    ppt_fill_pattern(data, arg.bytes); /* first touch of every data page, here */
    r->worker = pp_task_worker(t);
    r->pid = (int32_t)getpid();
    r->page_size = (uint32_t)psz;
    r->cpu = sched_getcpu();
    locate(r, area, area_len);
    if (arg.shm_off != UINT64_MAX) {
        int rc = pp_task_set_result(t, r, sizeof *r);
        free(r);
        return rc ? pp_task_raise(t, 5, "pp_task_set_result: %d", rc) : 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* client side                                                                */
/* ------------------------------------------------------------------------ */

static int small_pool_size(void)
{
    cpu_set_t s;
    int n = ppt_allowed_cpus(&s);
    return n >= 2 ? 2 : 1;
}

static pp_executor *make_pool_cfg(const pp_config *cfg)
{
    pp_executor *ex = NULL;
    int rc = pp_executor_create(&ex, cfg);
    cr_assert_eq(rc, 0, "pp_executor_create: %d %s", rc, pp_strerror(rc));
    cr_assert_not_null(ex);
    return ex;
}

static pp_executor *make_pool(int workers)
{
    pp_config cfg;
    ppt_config(&cfg, workers);
    return make_pool_cfg(&cfg);
}

static int get_stats(pp_executor *ex, pp_worker_stats *ws, int n)
{
    memset(ws, 0, sizeof *ws * (size_t)n);
    int nw = pp_executor_stats(ex, NULL, ws, n);
    cr_assert_gt(nw, 0, "pp_executor_stats: %d %s", nw, pp_strerror(nw));
    cr_assert_leq(nw, n);
    return nw;
}

/* Skip (after cleaning up) when the machine cannot answer the question. */
static void skip_unless_numa_known(pp_executor *ex, const pp_worker_stats *ws, int nw)
{
    for (int w = 0; w < nw; w++)
        if (ws[w].numa < 0) {
            pp_executor_destroy(ex);
            cr_skip_test("worker %d has no NUMA node (numa = %d): hwloc gave no NUMA "
                         "information (fallback topology?); nothing to check",
                         w, ws[w].numa);
        }
}

static void skip_if_unsupported(pp_executor *ex, const numa_report *r)
{
    if (r->err == -ENOSYS || r->err == -EPERM || r->err == -EACCES || r->err == -EOPNOTSUPP) {
        pp_executor_destroy(ex);
        cr_skip_test("%s: %s: hwloc cannot locate memory on this machine (no move_pages, "
                     "or a seccomp filter); nothing to check",
                     r->where, strerror(-r->err));
    }
}

static void format_union(const numa_report *r, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n_union && o + 16 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", r->union_nodes[i]);
}

/*
 * Check one report against the worker's expected node: the task ran on the
 * worker's planned CPU, the whole area's node set is exactly {node}, and every
 * page individually is on it. @what names the area for messages.
 */
static void check_report(const numa_report *r, const pp_worker_stats *ws, int nw, size_t area_len,
                         const char *what)
{
    cr_assert_eq(r->err, 0, "%s: %s failed: %s", what, r->where, strerror(-r->err));
    cr_assert(r->worker >= 0 && r->worker < nw, "%s: pp_task_worker = %d", what, r->worker);
    const pp_worker_stats *w = &ws[r->worker];
    cr_expect_eq(r->pid, (int32_t)w->pid, "%s: probe pid %d, stats pid %d (worker %d)", what,
                 r->pid, (int)w->pid, r->worker);
    cr_expect_eq(r->cpu, w->cpu, "%s: worker %d ran on cpu %d, pinned to cpu %d", what, r->worker,
                 r->cpu, w->cpu);
    cr_assert_geq(r->topo_nodes, 1, "%s: the worker's hwloc topology has no NUMA node", what);

    char un[256];
    format_union(r, un, sizeof un);
    cr_assert_eq(r->n_union, 1, "%s: pages of worker %d (node %d) are on nodes {%s}", what,
                 r->worker, w->numa, un);
    cr_assert_eq(r->union_nodes[0], w->numa, "%s: pages of worker %d are on node %d, not %d",
                 what, r->worker, r->union_nodes[0], w->numa);

    size_t want = area_len / r->page_size;
    cr_assert_eq(r->npages, want < MAX_PAGES ? want : MAX_PAGES, "%s: %u pages located, want %zu",
                 what, r->npages, want);
    size_t off = 0, none = 0, many = 0, first_bad = SIZE_MAX;
    for (size_t p = 0; p < r->npages; p++) {
        int node = r->page_node[p];
        if (node == w->numa)
            continue;
        off++;
        none += node == PAGE_NONE;
        many += node == PAGE_MANY;
        if (first_bad == SIZE_MAX)
            first_bad = p;
    }
    cr_assert_eq(off, 0,
                 "%s: %zu of %u pages of worker %d are not on its node %d (%zu report no node, "
                 "%zu several; first bad page %zu is on %d)",
                 what, off, r->npages, r->worker, w->numa, none, many, first_bad,
                 first_bad == SIZE_MAX ? 0 : r->page_node[first_bad]);
}

/* ------------------------------------------------------------------------ */
/* tests                                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Big results are written into fresh arena pages by the pinned worker, so
 * they are first-touched there: every page on the worker's node.
 */
Test(numa, result_pages_on_worker_node, PPT_FIXTURE, .timeout = 120)
{
    int nw0 = small_pool_size();
    pp_executor *ex = make_pool(nw0);
    pp_worker_stats ws[MAXW];
    int nw = get_stats(ex, ws, MAXW);
    cr_assert_eq(nw, nw0);
    skip_unless_numa_known(ex, ws, nw);

    bool seen[MAXW] = {false};
    int nseen = 0, checked = 0;
    /* Rounds of 2 probes per worker, each holding 50 ms before it touches
     * anything, until every worker has answered at least once. */
    for (int round = 0; round < 10 && nseen < nw; round++) {
        pp_future *fs[2 * MAXW];
        int nf = 2 * nw;
        probe_arg arg = {.shm_off = UINT64_MAX, .bytes = AREA_BYTES, .hold = 0.05};
        for (int k = 0; k < nf; k++) {
            int rc = pp_submit(ex, numa_probe_task, &arg, sizeof arg, &fs[k]);
            cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
        }
        for (int k = 0; k < nf; k++) {
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_result(fs[k], 60.0, &d, &n);
            if (rc == PP_ETASK) {
                pp_exception exc;
                pp_future_exception(fs[k], 0, &exc);
                cr_assert_fail("probe raised %d: %s", exc.code, exc.message);
            }
            cr_assert_eq(rc, 0, "probe: %d %s", rc, pp_strerror(rc));
            cr_assert_eq(n, REPORT_BYTES + AREA_BYTES, "result size %zu", n);
            const numa_report *r = d;
            skip_if_unsupported(ex, r);
            check_report(r, ws, nw, n, "8 MiB result");
            size_t bad = ppt_check_pattern((const unsigned char *)d + REPORT_BYTES, AREA_BYTES);
            cr_assert_eq(bad, AREA_BYTES, "result data differs at byte %zu", bad);
            if (!seen[r->worker]) {
                seen[r->worker] = true;
                nseen++;
            }
            checked++;
            pp_future_release(fs[k]);
        }
    }
    cr_expect_eq(nseen, nw, "only %d of %d workers ran a probe", nseen, nw);
    cr_log_info("%d results of 8 MiB checked page by page on %d workers", checked, nseen);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/*
 * A pp_shm_alloc array that the client has not touched is first-touched by
 * the task that writes it, on that task's worker's node (the recipe for
 * node-local input arrays).
 */
Test(numa, shm_array_first_touched_by_worker, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool(small_pool_size());
    pp_worker_stats ws[MAXW];
    int nw = get_stats(ex, ws, MAXW);
    skip_unless_numa_known(ex, ws, nw);

    void *arr = NULL;
    int rc = pp_shm_alloc(ex, AREA_BYTES, &arr);
    cr_assert_eq(rc, 0, "pp_shm_alloc: %d %s", rc, pp_strerror(rc));
    probe_arg arg = {.shm_off = pp_shm_offset(ex, arr), .bytes = AREA_BYTES, .hold = 0};
    cr_assert_neq(arg.shm_off, UINT64_MAX);

    pp_future *f = NULL;
    rc = pp_submit(ex, numa_probe_task, &arg, sizeof arg, &f);
    cr_assert_eq(rc, 0, "pp_submit: %d %s", rc, pp_strerror(rc));
    const void *d = NULL;
    size_t n = 0;
    rc = pp_future_result(f, 60.0, &d, &n);
    cr_assert_eq(rc, 0, "probe: %d %s", rc, pp_strerror(rc));
    cr_assert_eq(n, sizeof(numa_report));
    const numa_report *r = d;
    skip_if_unsupported(ex, r);
    check_report(r, ws, nw, AREA_BYTES, "pp_shm_alloc array");
    /* The client sees what the worker wrote, in place. */
    size_t bad = ppt_check_pattern(arr, AREA_BYTES);
    cr_assert_eq(bad, AREA_BYTES, "shared array differs at byte %zu", bad);
    pp_future_release(f);
    pp_shm_free(ex, arr);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/*
 * The other recipe: bind a fresh pp_shm_alloc block to a node from the client
 * (hwloc_set_area_membind: mbind on the memfd range) before anyone touches
 * it; then even the unpinned client's first touch lands there. The binding is
 * a policy of the memfd range, so it is reset before the block is freed.
 */
Test(numa, shm_array_bound_from_client, PPT_FIXTURE, .timeout = 120)
{
    pp_executor *ex = make_pool(1);
    pp_worker_stats ws[MAXW];
    int nw = get_stats(ex, ws, MAXW);
    skip_unless_numa_known(ex, ws, nw);
    int node = ws[0].numa;

    void *arr = NULL;
    int rc = pp_shm_alloc(ex, AREA_BYTES, &arr);
    cr_assert_eq(rc, 0, "pp_shm_alloc: %d %s", rc, pp_strerror(rc));

    hwloc_topology_t topo;
    cr_assert_eq(hwloc_topology_init(&topo), 0);
    cr_assert_eq(hwloc_topology_load(topo), 0, "hwloc_topology_load: %s", strerror(errno));
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    cr_assert_not_null(ns);
    hwloc_bitmap_only(ns, (unsigned)node);
    if (hwloc_set_area_membind(topo, arr, AREA_BYTES, ns, HWLOC_MEMBIND_BIND,
                               HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT) < 0) {
        int e = errno;
        hwloc_bitmap_free(ns);
        hwloc_topology_destroy(topo);
        pp_shm_free(ex, arr);
        pp_executor_destroy(ex);
        cr_skip_test("hwloc_set_area_membind(node %d): %s: cannot bind memory here", node,
                     strerror(e));
    }
    ppt_fill_pattern(arr, AREA_BYTES); /* first touch by the client */

    hwloc_bitmap_zero(ns);
    rc = hwloc_get_area_memlocation(topo, arr, AREA_BYTES, ns, HWLOC_MEMBIND_BYNODESET);
    if (rc < 0) {
        int e = errno;
        hwloc_bitmap_free(ns);
        hwloc_topology_destroy(topo);
        pp_shm_free(ex, arr);
        pp_executor_destroy(ex);
        if (e == ENOSYS || e == EPERM || e == EACCES || e == EOPNOTSUPP)
            cr_skip_test("hwloc_get_area_memlocation: %s: cannot locate memory here", strerror(e));
        cr_assert_fail("hwloc_get_area_memlocation: %s", strerror(e));
    }
    char *s = NULL;
    hwloc_bitmap_list_asprintf(&s, ns);
    cr_expect(hwloc_bitmap_weight(ns) == 1 && hwloc_bitmap_isset(ns, (unsigned)node),
              "bound array is on nodes {%s}, not {%d}", s ? s : "?", node);
    free(s);

    /* Reset the range's policy: it belongs to the memfd and would outlive the block. */
    cr_expect_eq(hwloc_set_area_membind(topo, arr, AREA_BYTES, ns, HWLOC_MEMBIND_DEFAULT,
                                        HWLOC_MEMBIND_BYNODESET),
                 0, "resetting the policy: %s", strerror(errno));
    hwloc_bitmap_free(ns);
    hwloc_topology_destroy(topo);
    pp_shm_free(ex, arr);
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

/* The NUMA node sysfs gives for OS CPU @cpu, or -1. */
static int sysfs_cpu_node(int cpu)
{
    for (int node = 0; node < 1024; node++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/node%d", cpu, node);
        if (access(path, F_OK) == 0)
            return node;
    }
    return -1;
}

/* The count N in "..., N cores, ..." of the topology line, or -1. */
static int topology_cores(const char *line)
{
    const char *p = strstr(line, " core");
    if (!p)
        return -1;
    while (p > line && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return atoi(p);
}

static void check_placement(pp_pin_policy pol, const char *name)
{
    pp_config cfg;
    pp_config_init(&cfg); /* max_workers 0: one per usable physical core */
    cfg.pin = pol;
    pp_executor *ex = make_pool_cfg(&cfg);
    int nw = pp_max_workers(ex);
    cr_assert_geq(nw, 1);
    cr_assert_leq(nw, MAXW, "more workers than this test can look at");

    const char *topo = pp_executor_topology(ex);
    cr_assert_not_null(topo);
    cr_assert_gt(strlen(topo), 0, "pp_executor_topology is empty");
    cr_assert_not_null(strstr(topo, "core"), "no \"core\" in \"%s\"", topo);
    int cores = topology_cores(topo);
    cr_expect_eq(cores, nw, "%s: the default pool has %d workers, the topology line says %d "
                 "cores (\"%s\")", name, nw, cores, topo);

    cpu_set_t allowed;
    ppt_allowed_cpus(&allowed);
    pp_worker_stats ws[MAXW];
    cr_assert_eq(get_stats(ex, ws, MAXW), nw);
    for (int i = 0; i < nw; i++) {
        cr_expect_gt(ws[i].pid, 0, "%s: worker %d pid %d", name, i, (int)ws[i].pid);
        cr_assert_geq(ws[i].cpu, 0, "%s: worker %d not pinned (cpu %d)", name, i, ws[i].cpu);
        cr_expect(CPU_ISSET(ws[i].cpu, &allowed), "%s: worker %d on cpu %d, not an allowed CPU",
                  name, i, ws[i].cpu);
        cr_assert_geq(ws[i].core, 0, "%s: worker %d core %d", name, i, ws[i].core);
        cr_expect_lt(ws[i].core, nw, "%s: worker %d core %d (logical index of %d cores)", name,
                     i, ws[i].core, nw);
        cr_expect_geq(ws[i].numa, -1, "%s: worker %d numa %d", name, i, ws[i].numa);
        int sys = sysfs_cpu_node(ws[i].cpu);
        if (ws[i].numa >= 0 && sys >= 0)
            cr_expect_eq(ws[i].numa, sys, "%s: worker %d on cpu %d: numa %d, sysfs says node %d",
                         name, i, ws[i].cpu, ws[i].numa, sys);
        for (int j = 0; j < i; j++) {
            cr_expect_neq(ws[i].cpu, ws[j].cpu, "%s: workers %d and %d share cpu %d", name, j,
                          i, ws[i].cpu);
            cr_expect_neq(ws[i].core, ws[j].core, "%s: workers %d and %d share core %d", name, j,
                          i, ws[i].core);
        }
    }
    cr_assert_eq(pp_executor_destroy(ex), 0);
}

Test(numa, stats_distinct_cpu_and_core_compact, PPT_FIXTURE, .timeout = 60)
{
    check_placement(PP_PIN_COMPACT, "compact");
}

Test(numa, stats_distinct_cpu_and_core_scatter, PPT_FIXTURE, .timeout = 60)
{
    check_placement(PP_PIN_SCATTER, "scatter");
}
