/*
 * ex_word_hash.c — the Python guide's word-hash workload, small: the SHA-512
 * hex digest of every word of a list, computed with pp_map in chunks, then
 * the set of distinct digests. The words are made up (fixed seed), with
 * repeats; the result is checked against a serial run.
 * Python: set(ex.map(hash_word, words, chunksize=500))
 * bench/bench_wordhash.c is the full-size benchmark with the chunksize sweep.
 */
#include <ppool.h>

#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 20000, HEX = 2 * SHA512_DIGEST_LENGTH };

static void sha512_hex(const void *data, size_t n, char *hex)
{
    unsigned char md[SHA512_DIGEST_LENGTH];
    SHA512(data, n, md);
    for (int i = 0; i < SHA512_DIGEST_LENGTH; i++)
        sprintf(hex + 2 * i, "%02x", md[i]); /* writes HEX + 1 bytes in all */
}

static int hash_word(pp_map_item *it) /* runs in a worker */
{
    char hex[HEX + 1];
    sha512_hex(it->in[0], it->in_size[0], hex);
    memcpy(it->out, hex, HEX); /* exactly out_size bytes, no NUL */
    return 0;
}

static int cmp(const void *a, const void *b) { return memcmp(a, b, HEX); }

int main(void)
{
    static char text[N * 9], digests[N][HEX], serial[N][HEX];
    static const char *words[N];
    uint64_t s = 42; /* a fixed-seed LCG: 3..8 lowercase letters per word */
    char *p = text;
    for (int i = 0; i < N; i++) {
        if (i % 10 == 9) { /* every tenth word repeats an earlier one */
            words[i] = words[(i * 7) % i];
            continue;
        }
        words[i] = p;
        s = s * 6364136223846793005u + 1442695040888963407u;
        int len = 3 + (int)((s >> 33) % 6);
        for (int k = 0; k < len; k++, s = s * 6364136223846793005u + 1)
            *p++ = (char)('a' + (s >> 40) % 26);
        *p++ = '\0';
    }

    pp_executor *ex;
    if (pp_executor_create(&ex, NULL) != 0)
        return 1;
    pp_map_input in = pp_map_ptrs((const void *const *)words, NULL, N); /* C strings */
    pp_map_opts o;
    pp_map_opts_init(&o);
    o.chunksize = 500; /* 40 chunks: a few per worker, each worth the hand-off */
    o.out_size = HEX;
    pp_map_status st;
    int rc = pp_map(ex, hash_word, &in, 1, digests, N, NULL, &o, &st);
    pp_executor_destroy(ex);
    if (rc != 0) {
        fprintf(stderr, "pp_map: %s (%s)\n", pp_strerror(rc), st.message);
        return 1;
    }

    for (int i = 0; i < N; i++) {
        char hex[HEX + 1];
        sha512_hex(words[i], strlen(words[i]), hex);
        memcpy(serial[i], hex, HEX);
    }
    printf("%d words hashed in %llu chunks\n", N, (unsigned long long)st.chunks);
    printf("same digests as a serial run: %s\n", memcmp(digests, serial, sizeof serial) ? "no" : "yes");
    qsort(digests, N, HEX, cmp); /* the set: sort, count distinct */
    int distinct = 1;
    for (int i = 1; i < N; i++)
        distinct += memcmp(digests[i], digests[i - 1], HEX) != 0;
    printf("%d distinct digests\n", distinct);
    printf("sha512(\"%s\") = %.32s...\n", words[0], serial[0]);
    return 0;
}
