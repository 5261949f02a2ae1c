#!/usr/bin/env bash
# script_fortran.sh <srcdir> <builddir> — the installed Fortran module, as a
# user gets it:
#  - ppool.mod sits in a compiler-specific directory (lib/fortran/<id>-<major>);
#  - a Fortran program builds with find_package(ppool COMPONENTS fortran)
#    (ppool::fortran, and ppool::fortran_static with libppool.a) and with
#    pkg-config ppool-fortran (shared, and static from the .a files), and
#    each runs under fork, spawn and forkserver;
#  - none of them has a text relocation (the c_funloc pitfall), and neither
#    does libppool_f.so;
#  - the core libppool links no Fortran runtime;
#  - pkg-config's ppool-fortran version is the header's.
set -euo pipefail
src=$1 build=$2
if [ ! -e "$build/libppool_f.a" ]; then
    echo "SKIP: ppool was configured without its Fortran module (PPOOL_FORTRAN)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
ver() { awk -v k="PPOOL_VERSION_$1" '$1 == "#define" && $2 == k {print $3}' "$src/include/ppool/version.h"; }
version=$(ver MAJOR).$(ver MINOR).$(ver PATCH)

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
mod=$(find "$tmp/prefix" -name ppool.mod | head -1)
[ -n "$mod" ] || fail "ppool.mod not installed"
case "$mod" in
    */fortran/*-[0-9]*/ppool.mod) ;;
    *) fail "ppool.mod is not in a compiler-specific directory: $mod" ;;
esac
libdir=$(dirname "$(find "$tmp/prefix" -name 'libppool_f.a' | head -1)")
[ -e "$libdir/libppool_f.so" ] || fail "libppool_f.so not installed"
if readelf -d "$libdir/libppool.so" | grep -q gfortran; then fail "libppool links the Fortran runtime"; fi
readelf -d "$libdir/libppool_f.so" | grep -q TEXTREL && fail "libppool_f.so has text relocations"

# Run a consumer under each start method; it prints "fconsumer: 42".
check_run() {
    local prog=$1 m out
    if readelf -d "$prog" | grep -q TEXTREL; then fail "$prog has text relocations"; fi
    for m in fork spawn forkserver; do
        out=$(PPOOL_START_METHOD=$m LD_LIBRARY_PATH="$libdir" timeout 60 "$prog") ||
            fail "$prog under $m exited $?"
        [ "$out" = "fconsumer: 42" ] || fail "$prog under $m printed: $out"
    done
}

cmake -S "$src/tests/fortran/consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DPPOOL_WANT_VERSION="$(ver MAJOR).$(ver MINOR)" -DPPOOL_WANT_STATIC=ON >/dev/null
cmake --build "$tmp/cm" >/dev/null
check_run "$tmp/cm/fconsumer"
check_run "$tmp/cm/fconsumer_static"
if readelf -d "$tmp/cm/fconsumer_static" | grep -q 'libppool'; then
    fail "fconsumer_static depends on a shared libppool"
fi

pcdir=$(dirname "$(find "$tmp/prefix" -name ppool-fortran.pc | head -1)")
export PKG_CONFIG_PATH="$pcdir"
[ "$(pkg-config --modversion ppool-fortran)" = "$version" ] ||
    fail "pkg-config ppool-fortran version is not $version"
fc=${FC:-gfortran}
# shellcheck disable=SC2046
"$fc" -o "$tmp/pc_fconsumer" "$src/tests/fortran/consumer/consumer.f90" \
    -J "$tmp" $(pkg-config --cflags --libs ppool-fortran)
check_run "$tmp/pc_fconsumer"
# Static from the archives: the .a files, then hwloc (its shared library
# carries its own dependencies) and pthreads.
# shellcheck disable=SC2046
"$fc" -o "$tmp/pc_fconsumer_static" "$src/tests/fortran/consumer/consumer.f90" -J "$tmp" \
    $(pkg-config --cflags ppool-fortran) "$libdir/libppool_f.a" "$libdir/libppool.a" \
    $(pkg-config --libs hwloc) -lpthread
check_run "$tmp/pc_fconsumer_static"
echo "fortran: ppool $version: module in ${mod#"$tmp/prefix/"}; CMake (shared, static) and" \
     "pkg-config (shared, static) consumers run under fork, spawn, forkserver; no text relocation"
