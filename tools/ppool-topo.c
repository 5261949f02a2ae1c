/*
 * ppool-topo — show the topology ppool sees and where it would put workers.
 *
 *   ppool-topo [--workers N] [--policy compact|scatter|none|pus|list]
 *              [--cpus 0,2,4-6] [--cores-per-worker K] [--strict]
 *              [--synthetic "package:2 core:32 pu:1"]
 *
 * Prints the topology summary, then one line per worker:
 *   worker 0: cpu 0 core 0 package 0 numa 0
 * ("worker 3: not pinned" under --policy none). With --cores-per-worker K
 * (pp_config.cores_per_worker) each line ends with the worker's PUs and the
 * OMP_PLACES it starts with, "cpus 0,1 places {0},{1}", and the default
 * number of workers is cores / K, as pp_executor_create computes it. A placement warning such as
 * oversubscription goes to stderr as "warning: ...".
 * Exit status: 0 ok, 1 topology or placement error, 2 bad usage.
 */
#include "topology.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 4096

static void usage(FILE *f)
{
    fprintf(f, "usage: ppool-topo [--workers N] [--policy compact|scatter|none|pus|list]\n"
               "                  [--cpus 0,2,4-6] [--cores-per-worker K] [--strict]\n"
               "                  [--synthetic \"package:2 core:32 pu:1\"]\n");
}

/* Parse a decimal int in [lo, hi]; 0 on success. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Parse "0,2,4-6" into @list (at most @max entries); returns the count or -1. */
static int parse_cpus(const char *s, int *list, int max)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;

    if (!copy)
        return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        int a, b;
        if (dash) {
            *dash = '\0';
            if (parse_int(tok, 0, CPU_SETSIZE - 1, &a) || parse_int(dash + 1, 0, CPU_SETSIZE - 1, &b) ||
                b < a)
                goto bad;
        } else {
            if (parse_int(tok, 0, CPU_SETSIZE - 1, &a))
                goto bad;
            b = a;
        }
        for (int c = a; c <= b; c++) {
            if (n == max)
                goto bad;
            list[n++] = c;
        }
    }
    free(copy);
    return n > 0 ? n : -1;
bad:
    free(copy);
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"workers", required_argument, NULL, 'w'}, {"policy", required_argument, NULL, 'p'},
        {"cpus", required_argument, NULL, 'c'},    {"strict", no_argument, NULL, 's'},
        {"synthetic", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {"cores-per-worker", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0}};
    static int cpus[MAX_WORKERS];
    int nworkers = 0, ncpus = 0, strict = 0, have_policy = 0, k = 1, opt, rc;
    pp_pin_policy policy = PP_PIN_COMPACT;
    const char *synthetic = NULL;
    ppi_topo *t;
    ppi_place *plan;
    char summary[256], warn[256];

    while ((opt = getopt_long(argc, argv, "w:p:c:sS:hk:", opts, NULL)) != -1) {
        switch (opt) {
        case 'k':
            if (parse_int(optarg, 1, CPU_SETSIZE, &k)) {
                fprintf(stderr, "ppool-topo: --cores-per-worker wants 1..%d, not '%s'\n",
                        CPU_SETSIZE, optarg);
                return 2;
            }
            break;
        case 'w':
            if (parse_int(optarg, 1, MAX_WORKERS, &nworkers)) {
                fprintf(stderr, "ppool-topo: --workers wants 1..%d, not '%s'\n", MAX_WORKERS,
                        optarg);
                return 2;
            }
            break;
        case 'p':
            have_policy = 1;
            if (!strcmp(optarg, "compact"))
                policy = PP_PIN_COMPACT;
            else if (!strcmp(optarg, "scatter"))
                policy = PP_PIN_SCATTER;
            else if (!strcmp(optarg, "none"))
                policy = PP_PIN_NONE;
            else if (!strcmp(optarg, "pus"))
                policy = PP_PIN_PUS;
            else if (!strcmp(optarg, "list"))
                policy = PP_PIN_LIST;
            else {
                fprintf(stderr, "ppool-topo: unknown policy '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'c':
            ncpus = parse_cpus(optarg, cpus, MAX_WORKERS);
            if (ncpus < 0) {
                fprintf(stderr, "ppool-topo: bad --cpus '%s' (want e.g. 0,2,4-6)\n", optarg);
                return 2;
            }
            break;
        case 's':
            strict = 1;
            break;
        case 'S':
            synthetic = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppool-topo: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (ncpus > 0 && !have_policy)
        policy = PP_PIN_LIST; /* --cpus alone means --policy list */
    if (ncpus > 0 && policy != PP_PIN_LIST) {
        fprintf(stderr, "ppool-topo: --cpus goes with --policy list\n");
        return 2;
    }

    rc = ppi_topo_load(&t, synthetic);
    if (rc) {
        fprintf(stderr, "ppool-topo: cannot load topology%s%s%s: %s\n", synthetic ? " \"" : "",
                synthetic ? synthetic : "", synthetic ? "\"" : "", strerror(-rc));
        return 1;
    }
    ppi_topo_summary(t, summary, sizeof summary);
    printf("%s\n", summary);
    if (nworkers == 0) /* as pp_executor_create's default */
        nworkers = (policy == PP_PIN_PUS ? ppi_topo_pus(t) : ppi_topo_cores(t)) / k;
    if (nworkers < 1)
        nworkers = 1;

    plan = calloc((size_t)nworkers, sizeof *plan);
    if (!plan) {
        fprintf(stderr, "ppool-topo: %s\n", strerror(ENOMEM));
        ppi_topo_destroy(t);
        return 1;
    }
    rc = ppi_topo_plan_k(t, nworkers, k, policy, ncpus ? cpus : NULL, ncpus, strict, plan, warn,
                         sizeof warn);
    if (rc) {
        fprintf(stderr, "ppool-topo: cannot place %d workers: %s%s%s\n", nworkers, strerror(-rc),
                warn[0] ? ": " : "", warn);
        free(plan);
        ppi_topo_destroy(t);
        return 1;
    }
    for (int i = 0; i < nworkers; i++) {
        if (plan[i].first_cpu < 0)
            printf("worker %d: not pinned\n", i);
        else if (k == 1)
            printf("worker %d: cpu %d core %d package %d numa %d\n", i, plan[i].first_cpu,
                   plan[i].core, plan[i].package, plan[i].numa);
        else {
            char list[4096] = "", places[8192] = "";
            size_t a = 0, b = 0;
            for (int c = 0; c < CPU_SETSIZE; c++) {
                if (!CPU_ISSET(c, &plan[i].cpus))
                    continue;
                a += (size_t)snprintf(list + a, sizeof list - a, "%s%d", a ? "," : "", c);
                b += (size_t)snprintf(places + b, sizeof places - b, "%s{%d}", b ? "," : "", c);
                if (a >= sizeof list || b >= sizeof places)
                    break;
            }
            printf("worker %d: cpu %d core %d package %d numa %d cpus %s places %s\n", i,
                   plan[i].first_cpu, plan[i].core, plan[i].package, plan[i].numa, list,
                   places);
        }
    }
    fflush(stdout);
    if (warn[0])
        fprintf(stderr, "warning: %s\n", warn);
    free(plan);
    ppi_topo_destroy(t);
    return 0;
}
