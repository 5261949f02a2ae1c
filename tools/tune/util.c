/* util.c — result digests, medians, the clock and the progress bar; see tune.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tune.h"

/* ------------------------------------------------------------------------ */
/* Digest                                                                     */
/* ------------------------------------------------------------------------ */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    /* One multiply-xorshift round per 8 bytes (a murmur3-style finaliser on
     * the running state): order-sensitive, every input bit reaches the state. */
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

static uint64_t bytes(uint64_t h, const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = mix(h, v);
    }
    if (i < n) {
        uint64_t v = 0;
        memcpy(&v, p + i, n - i);
        h = mix(h, v ^ ((uint64_t)(n - i) << 56));
    }
    return h;
}

uint64_t tune_digest(const void *out, size_t n, size_t cap, const size_t *sizes)
{
    const unsigned char *p = out;
    uint64_t h = mix(0x6a09e667f3bcc908ull, n);
    if (!sizes)
        return mix(bytes(h, p, n * cap), cap); /* fixed: the results are contiguous */
    for (size_t i = 0; i < n; i++) {
        h = mix(h, sizes[i]);
        h = bytes(h, p + i * cap, sizes[i]);
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* Statistics, time                                                           */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tune_median(double *v, int n, double *mn, double *mx)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    if (mn)
        *mn = v[0];
    if (mx)
        *mx = v[n - 1];
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double tune_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Progress bar                                                               */
/* ------------------------------------------------------------------------ */

void tune_progress_init(tune_progress *p, FILE *to, bool on, double total_weight)
{
    *p = (tune_progress){.to = to, .on = on && to, .total = total_weight, .t0 = tune_now()};
}

static void eta_str(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 360000)
        snprintf(buf, len, "--:--");
    else if (s >= 3600)
        snprintf(buf, len, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(buf, len, "%d:%02d", (int)s / 60, (int)s % 60);
}

void tune_progress_show(tune_progress *p, const char *label)
{
    if (!p->on)
        return;
    double frac = p->total > 0 ? p->done / p->total : 0;
    frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    enum { BAR = 24 };
    char bar[BAR + 1];
    int fill = (int)(frac * BAR + 0.5);
    for (int i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = '\0';
    double el = tune_now() - p->t0;
    char eta[32];
    /* Until some work is done there is no rate to go by. */
    eta_str(p->done > 0 ? el / p->done * (p->total - p->done) : -1, eta, sizeof eta);
    int w = fprintf(p->to, "\r[%s] %3.0f%% ETA %s  %-40.40s", bar, frac * 100, eta,
                    label ? label : "");
    if (w > 0 && w < p->width) /* a shorter line leaves no tail of the last one */
        fprintf(p->to, "%*s", p->width - w, "");
    p->width = w > p->width ? w : p->width;
    fflush(p->to);
}

void tune_progress_add(tune_progress *p, double weight) { p->done += weight; }

void tune_progress_clear(tune_progress *p)
{
    if (!p->on || !p->width)
        return;
    fprintf(p->to, "\r%*s\r", p->width, "");
    fflush(p->to);
    p->width = 0;
}
