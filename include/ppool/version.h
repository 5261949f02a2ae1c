/*
 * ppool/version.h — the version of this header, and how to compare it.
 *
 * The numbers below are the one place the version is written: CMake reads
 * them (project(), the installed ppoolConfigVersion.cmake, the library's
 * SOVERSION) and so does the pkg-config file.
 *
 * Compatibility policy (semantic versioning): while MAJOR is 0, a MINOR
 * release may change the ABI, so the shared library's SONAME carries
 * MAJOR.MINOR (libppool.so.0.1) and find_package(ppool 0.1) accepts only
 * 0.1.x; from 1.0 on the SONAME carries MAJOR and any 1.y satisfies a
 * request for 1.x with x <= y. PATCH releases never change the ABI.
 */
#ifndef PPOOL_VERSION_H
#define PPOOL_VERSION_H

/** Major version: incompatible API/ABI changes (from 1.0 on). */
#define PPOOL_VERSION_MAJOR 0
/** Minor version: additions (while MAJOR is 0: may break the ABI). */
#define PPOOL_VERSION_MINOR 1
/** Patch version: fixes only. */
#define PPOOL_VERSION_PATCH 0

/** The version as one number, comparable with <, e.g. 0.1.0 -> 0x000100
 *  (as hwloc's HWLOC_API_VERSION and libuv's UV_VERSION_HEX). */
#define PPOOL_VERSION                                                    \
    ((PPOOL_VERSION_MAJOR << 16) | (PPOOL_VERSION_MINOR << 8) | PPOOL_VERSION_PATCH)

#define PPOOL_VERSION_STRINGIFY_(x) #x
#define PPOOL_VERSION_STRINGIFY(x) PPOOL_VERSION_STRINGIFY_(x)
/** The version as a string, e.g. "0.1.0". */
#define PPOOL_VERSION_STRING                                             \
    PPOOL_VERSION_STRINGIFY(PPOOL_VERSION_MAJOR) "."                     \
    PPOOL_VERSION_STRINGIFY(PPOOL_VERSION_MINOR) "."                     \
    PPOOL_VERSION_STRINGIFY(PPOOL_VERSION_PATCH)

#endif /* PPOOL_VERSION_H */
