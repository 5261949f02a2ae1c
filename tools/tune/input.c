/* input.c — the items of a sweep: lines of a text file, fixed-size records
 * of a binary file, or synthetic items; see tune.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tune.h"

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *human(double b, char *buf, size_t len)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

/* The whole of @path into a fresh buffer (*size bytes, NUL-terminated); an
 * empty file is an error (no records to map). */
static int slurp(const char *path, char **data, size_t *size, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s is not a regular file", path);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return fail(err, errlen, "%s: out of memory (%zu bytes)", path, cap);
    }
    for (;;) {
        if (n + 1 == cap) { /* the file grew while we read it */
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return fail(err, errlen, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return fail(err, errlen, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n == 0) {
        free(buf);
        return fail(err, errlen, "%s is empty: no records to map", path);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return 0;
}

int tune_input_lines(tune_input *in, const char *path, char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    char *data;
    size_t size;
    if (slurp(path, &data, &size, err, errlen) != 0)
        return -1;
    size_t lines = 0;
    for (const char *p = data; (p = memchr(p, '\n', size - (size_t)(p - data))); p++)
        lines++;
    if (data[size - 1] != '\n')
        lines++; /* a last line without its newline */
    /* Records are packed without their newlines, so the item bytes are
     * exactly what the function sees (offsets index the packed copy). */
    size_t *off = malloc((lines + 1) * sizeof *off);
    if (!off) {
        free(data);
        return fail(err, errlen, "%s: out of memory for %zu offsets", path, lines + 1);
    }
    size_t o = 0, k = 0;
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        off[k++] = o;
        memmove(data + o, p, len);
        o += len;
        p += len + (nl ? 1 : 0);
    }
    off[k] = o;
    in->n = lines;
    in->item_size = 0;
    in->data = data;
    in->off = off;
    in->bytes = o;
    char h[32];
    snprintf(in->what, sizeof in->what, "%zu lines of %.200s (%s)", lines, path,
             human((double)size, h, sizeof h));
    return 0;
}

int tune_input_binary(tune_input *in, const char *path, size_t item_size, char *err,
                      size_t errlen)
{
    memset(in, 0, sizeof *in);
    if (item_size == 0)
        return fail(err, errlen, "a binary input needs --item-size (bytes per record)");
    char *data;
    size_t size;
    if (slurp(path, &data, &size, err, errlen) != 0)
        return -1;
    if (size % item_size) {
        free(data);
        return fail(err, errlen, "%s: %zu bytes is not a multiple of the %zu-byte record", path,
                    size, item_size);
    }
    in->n = size / item_size;
    in->item_size = item_size;
    in->data = data;
    in->bytes = size;
    char h[32];
    snprintf(in->what, sizeof in->what, "%zu records of %zu bytes from %.200s (%s)", in->n,
             item_size, path, human((double)size, h, sizeof h));
    return 0;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int tune_input_synthetic(tune_input *in, size_t n, size_t item_size, uint64_t seed, char *err,
                         size_t errlen)
{
    memset(in, 0, sizeof *in);
    if (n == 0 || item_size == 0)
        return fail(err, errlen, "synthetic input needs at least 1 item of at least 1 byte");
    if (n > SIZE_MAX / item_size)
        return fail(err, errlen, "%zu items of %zu bytes overflow", n, item_size);
    size_t size = n * item_size;
    char *data = malloc(size);
    if (!data)
        return fail(err, errlen, "out of memory for %zu synthetic bytes", size);
    uint64_t s = seed;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t r = splitmix64(&s);
        memcpy(data + i, &r, size - i < 8 ? size - i : 8);
    }
    in->n = n;
    in->item_size = item_size;
    in->data = data;
    in->bytes = size;
    char h[32];
    snprintf(in->what, sizeof in->what, "%zu synthetic items of %zu bytes (%s)", n, item_size,
             human((double)size, h, sizeof h));
    return 0;
}

const void *tune_input_item(const tune_input *in, size_t i, size_t *size)
{
    if (in->off) {
        *size = in->off[i + 1] - in->off[i];
        return in->data + in->off[i];
    }
    *size = in->item_size;
    return in->data + i * in->item_size;
}

void tune_input_free(tune_input *in)
{
    free(in->data);
    free(in->off);
    memset(in, 0, sizeof *in);
}
