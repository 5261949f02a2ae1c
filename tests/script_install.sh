#!/usr/bin/env bash
# Install the built tree into a scratch prefix and build a consumer against it
# with find_package(ppool CONFIG) (shared and static, and shared alone where
# hwloc cannot be found) and with pkg-config. All must run. The installed
# version, SONAME and pkg-config version agree with include/ppool/version.h.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ver() { awk -v k="PPOOL_VERSION_$1" '$1 == "#define" && $2 == k {print $3}' "$src/include/ppool/version.h"; }
major=$(ver MAJOR) minor=$(ver MINOR) patch=$(ver PATCH)
version=$major.$minor.$patch
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libppool.so' | head -1)")
run() { out=$(LD_LIBRARY_PATH="$libdir" "$1"); [ "$out" = "consumer: 42" ] || { echo "$1 printed: $out"; exit 1; }; }

cmake -S "$src/tests/consumer" -B "$tmp/cm" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DPPOOL_WANT_VERSION="$major.$minor" -DPPOOL_WANT_STATIC=ON >/dev/null
cmake --build "$tmp/cm" >/dev/null
run "$tmp/cm/consumer"
run "$tmp/cm/consumer_static"
# The shared library alone needs no hwloc at configure time.
PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= \
    cmake -S "$src/tests/consumer" -B "$tmp/nohw" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/nohw" >/dev/null
run "$tmp/nohw/consumer"
# A version from another ABI line is refused.
if cmake -S "$src/tests/consumer" -B "$tmp/bad" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
        -DPPOOL_WANT_VERSION="$((major + 1)).0" >/dev/null 2>&1; then
    echo "find_package(ppool $((major + 1)).0) accepted version $version"; exit 1
fi

pcdir=$(dirname "$(find "$tmp/prefix" -name ppool.pc | head -1)")
[ "$(PKG_CONFIG_PATH="$pcdir" pkg-config --modversion ppool)" = "$version" ] ||
    { echo "pkg-config version is not $version"; exit 1; }
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs ppool)
cc -o "$tmp/pc_consumer" "$src/tests/consumer/consumer.c" $flags
run "$tmp/pc_consumer"

lib=$(find "$tmp/prefix" -name 'libppool.so.*' | head -1)
if [ "$major" = 0 ]; then want_soname=libppool.so.$major.$minor; else want_soname=libppool.so.$major; fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "$want_soname" ] || { echo "SONAME $soname, want $want_soname"; exit 1; }
# The installed library carries no test hooks (PPOOL_FAULT_INJECTION is
# for libppool_fi, which is never installed).
if grep -q PPOOL_TEST_ "$lib" "$libdir/libppool.a"; then echo "installed library has test hooks"; exit 1; fi
if [ -n "$(find "$tmp/prefix" -name 'libppool_fi*')" ]; then echo "libppool_fi was installed"; exit 1; fi
grep -qa PPOOL_TEST_DIE_IN_POP "$build/libppool_fi.so" || { echo "libppool_fi lacks its hooks"; exit 1; }
# Nothing but pp_ symbols is exported.
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^pp_' || true)
[ -z "$bad" ] || { echo "exported non-pp_ symbols: $bad"; exit 1; }
# The tools run from the prefix (ppool-tune finds the installed libppool.so
# through its RUNPATH, $ORIGIN/../lib).
"$tmp/prefix/bin/ppool-topo" >/dev/null || { echo "installed ppool-topo does not run"; exit 1; }
"$tmp/prefix/bin/ppool-tune" --help | grep -q '^usage: ppool-tune' ||
    { echo "installed ppool-tune does not run"; exit 1; }
echo "install: ppool $version ($soname): cmake (shared, static, no-hwloc) and pkg-config consumers OK"
