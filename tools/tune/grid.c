/* grid.c — parsing one axis of a sweep grid ("1,2,4", "1-8", "1-64:x2"); see tune.h. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal integer at *p (no sign); advances *p. False when none. */
static bool number(const char **p, long *v)
{
    if (**p < '0' || **p > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(*p, &end, 10);
    if (errno || x > LONG_MAX)
        return false;
    *v = (long)x;
    *p = end;
    return true;
}

/* Insert @v keeping a->v sorted and distinct; -1 when full. */
static int add(tune_axis *a, long v)
{
    int i = 0;
    while (i < a->n && a->v[i] < v)
        i++;
    if (i < a->n && a->v[i] == v)
        return 0;
    if (a->n == TUNE_AXIS_MAX)
        return -1;
    memmove(&a->v[i + 1], &a->v[i], (size_t)(a->n - i) * sizeof a->v[0]);
    a->v[i] = v;
    a->n++;
    return 0;
}

/* One term "N", "A-B", "A-B:S" or "A-B:xF" of @spec (the term is [s, e)). */
static int term(const char *s, const char *e, long lo, long hi, tune_axis *out, char *err,
                size_t errlen)
{
    const char *p = s;
    long a, b, step = 1;
    bool geo = false;
    int tl = (int)(e - s);
    if (p == e)
        return fail(err, errlen, "empty term");
    if (!number(&p, &a))
        return fail(err, errlen, "'%.*s' is not a number or range", tl, s);
    b = a;
    if (p < e && *p == '-') {
        p++;
        if (!number(&p, &b))
            return fail(err, errlen, "'%.*s': a range is A-B", tl, s);
        if (p < e && *p == ':') {
            p++;
            if (p < e && *p == 'x') {
                geo = true;
                p++;
            }
            if (!number(&p, &step))
                return fail(err, errlen, "'%.*s': a step is :S or :xF", tl, s);
        }
    }
    if (p != e)
        return fail(err, errlen, "'%.*s' is not a number or range", tl, s);
    if (a > b)
        return fail(err, errlen, "'%.*s': range runs backwards", tl, s);
    if (geo && step < 2)
        return fail(err, errlen, "'%.*s': a factor must be 2 or more", tl, s);
    if (!geo && step < 1)
        return fail(err, errlen, "'%.*s': a step must be 1 or more", tl, s);
    if (a < lo || b > hi)
        return fail(err, errlen, "'%.*s' is outside %ld..%ld", tl, s, lo, hi);
    long v = a;
    for (;;) {
        if (add(out, v) != 0)
            return fail(err, errlen, "more than %d values", TUNE_AXIS_MAX);
        if (v == b)
            break;
        /* The next value, or b itself when the step passes it. */
        long next = geo ? (v > b / step ? b : v * step) : (b - v < step ? b : v + step);
        if (next >= b) {
            /* Geometric: the last power below b, then b; arithmetic: b only
             * when it lies on the step. */
            if (geo || (b - a) % step == 0)
                v = b;
            else
                break;
        } else {
            v = next;
        }
    }
    return 0;
}

int tune_axis_parse(const char *spec, long lo, long hi, tune_axis *out, char *err, size_t errlen)
{
    out->n = 0;
    if (!spec || !*spec)
        return fail(err, errlen, "empty list");
    const char *s = spec;
    for (;;) {
        const char *e = strchr(s, ',');
        if (!e)
            e = s + strlen(s);
        if (term(s, e, lo, hi, out, err, errlen) != 0)
            return -1;
        if (!*e)
            break;
        s = e + 1;
    }
    return 0;
}

const char *tune_axis_str(const tune_axis *a, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < a->n && o + 24 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%ld", i ? "," : "", a->v[i]);
    return buf;
}
