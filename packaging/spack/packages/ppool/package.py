# Spack recipe for ppool, kept in ppool's repository (packaging/spack) so
# that it changes with the build. tests/script_spack.sh checks that it
# parses, that every CMake option it sets exists in ppool's CMake files and
# that its newest version is the one in include/ppool/version.h.

import os

from spack.package import *


class Ppool(CMakePackage):
    """Process pool over shared memory for numerical codes: what Python's
    concurrent.futures.ProcessPoolExecutor gives Python programs, for C and
    Fortran. Workers pinned with hwloc pull tasks from a lock-free ring in
    shared memory; a manager process respawns them."""

    homepage = "https://github.com/ppool/ppool"
    git = "https://github.com/ppool/ppool.git"

    maintainers("ppool")

    version("main", branch="main")
    version("0.1.0", tag="v0.1.0")

    variant("shared", default=True, description="Build the shared libraries (else libppool.a only)")
    variant("fortran", default=True, description="Build the Fortran module (use ppool, libppool_f)")
    variant(
        "mpi",
        default=False,
        description="Build the multi-node layer (libppool_mpi, CMake option PPOOL_MPI)",
    )

    depends_on("c", type="build")
    depends_on("fortran", type="build", when="+fortran")
    depends_on("cmake@3.21:", type="build")
    depends_on("pkgconfig", type="build")
    depends_on("hwloc@2:")
    # urcu/list.h only (header-only use), but CMake checks for it.
    depends_on("liburcu")
    depends_on("mpi", when="+mpi")

    # memfd, pidfd, futexes and /proc: Linux only.
    requires("platform=linux", msg="ppool runs on Linux only")

    def cmake_args(self):
        spec = self.spec
        return [
            self.define("PPOOL_TESTS", False),
            self.define("PPOOL_BENCH", False),
            self.define("PPOOL_DOCS", False),
            self.define("PPOOL_EXAMPLES", False),
            self.define("PPOOL_INSTALL", True),
            self.define_from_variant("PPOOL_SHARED", "shared"),
            self.define("PPOOL_FORTRAN", "ON" if spec.satisfies("+fortran") else "OFF"),
            self.define_from_variant("PPOOL_MPI", "mpi"),
        ]

    @property
    def libs(self):
        shared = self.spec.satisfies("+shared")
        return find_libraries("libppool", root=self.prefix, shared=shared, recursive=True)

    @property
    def fortran_libs(self):
        """spec["ppool"].fortran_libs: libppool_f, then libppool."""
        shared = self.spec.satisfies("+shared")
        return find_libraries(
            ["libppool_f", "libppool"], root=self.prefix, shared=shared, recursive=True
        )

    # ---- spack test run ppool ---------------------------------------------
    # The examples and the consumer programs are copied into the install's
    # test cache, built against the installed ppool and run: under spawn,
    # which re-executes the program (the path a broken install breaks).

    examples_src = ["examples/ex_map_and_wait.c", "examples/expected", "examples/fortran",
                    "tests/consumer/consumer.c"]

    @run_after("install")
    def cache_test_sources(self):
        cache_extra_test_sources(self, self.examples_src)

    def _test_dir(self):
        return self.test_suite.current_test_cache_dir

    def _run_checked(self, exe, expected_file):
        env = dict(os.environ, PPOOL_START_METHOD="spawn")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [self.prefix.lib, self.prefix.lib64, env.get("LD_LIBRARY_PATH", "")]
        )
        out = which(exe)(output=str.split, error=str.split, env=env)
        with open(expected_file) as f:
            want = f.read().splitlines()
        assert out.splitlines() == want, f"{exe}: got {out!r}, want {want!r}"

    def test_c_example(self):
        """build ex_map_and_wait.c against the installed ppool, run it under spawn"""
        d = self._test_dir()
        cc = which(os.environ.get("CC", "cc"))
        libs = [f"-L{self.prefix.lib}", f"-L{self.prefix.lib64}", "-lppool"]
        if self.spec.satisfies("~shared"):
            libs += self.spec["hwloc"].libs.ld_flags.split() + ["-lpthread"]
        cc("-o", "ex_map_and_wait", join_path(d, "examples", "ex_map_and_wait.c"),
           f"-I{self.prefix.include}", *libs)
        self._run_checked("./ex_map_and_wait",
                          join_path(d, "examples", "expected", "ex_map_and_wait.txt"))

    def test_fortran_example(self):
        """build the Fortran map-and-wait example against `use ppool`, run it under spawn"""
        if not self.spec.satisfies("+fortran"):
            raise SkipTest("built without +fortran")
        d = self._test_dir()
        fc = which(os.environ.get("FC", "gfortran"))
        moddirs = [os.path.dirname(p) for p in find(self.prefix, "ppool.mod")]
        assert moddirs, "ppool.mod is not installed"
        libs = [f"-L{self.prefix.lib}", f"-L{self.prefix.lib64}", "-lppool_f", "-lppool"]
        if self.spec.satisfies("~shared"):
            libs += self.spec["hwloc"].libs.ld_flags.split() + ["-lpthread"]
        fc("-o", "fex_map_and_wait", join_path(d, "examples", "fortran", "ex_map_and_wait.f90"),
           f"-I{moddirs[0]}", *libs)
        self._run_checked("./fex_map_and_wait",
                          join_path(d, "examples", "fortran", "expected", "ex_map_and_wait.txt"))
