/*
 * wordhash_kernel.h — the word-hash workload's one operation, header-only:
 * the 128 lowercase hex digits of SHA-512(word), and the map item function
 * built on it (one word in, its 128-byte digest out, no NUL).
 *
 * Shared by bench_wordhash (the chunksize sweep) and the ppool-tune example
 * plug-in (examples/tune/wordhash_kernel.c), so the tool tunes exactly the
 * benchmark's kernel. With PP_HAVE_CRYPTO defined (and libcrypto linked) it
 * uses OpenSSL's SHA512_Init/Update/Final, which keep no shared state; else
 * the portable implementation of sha512_portable.h.
 *
 * The includer defines _GNU_SOURCE / OPENSSL_SUPPRESS_DEPRECATED as it needs
 * before its first system header, and includes ppool.h (pp_map_item).
 */
#ifndef PPOOL_BENCH_WORDHASH_KERNEL_H
#define PPOOL_BENCH_WORDHASH_KERNEL_H

#include <stddef.h>

#ifdef PP_HAVE_CRYPTO
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA512_Init & co.: the fastest path */
#endif
#include <openssl/sha.h>
#else
#include "sha512_portable.h" /* builds without libcrypto */
#endif

/* Bytes of one result: 128 hex digits, no NUL. */
#define WORDHASH_HEX 128

/* The workload's one operation: 128 lowercase hex digits of SHA-512(word). */
static inline void sha512_hex(const void *word, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    unsigned char md[64];
#ifdef PP_HAVE_CRYPTO
    SHA512_CTX c;
    SHA512_Init(&c);
    SHA512_Update(&c, word, n);
    SHA512_Final(md, &c);
#else
    ppb_sha512_bytes(word, n, md);
#endif
    for (int i = 0; i < 64; i++) {
        out[2 * i] = hx[md[i] >> 4];
        out[2 * i + 1] = hx[md[i] & 15];
    }
}

#endif /* PPOOL_BENCH_WORDHASH_KERNEL_H */
