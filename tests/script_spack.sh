#!/usr/bin/env bash
# script_spack.sh <srcdir> <builddir> — the Spack recipe
# (packaging/spack/packages/ppool/package.py) stays true to the build,
# without Spack: it parses (python3 ast); it is a CMakePackage with the
# variants shared, fortran and mpi, depends on hwloc and liburcu, has a
# test that runs an installed example; every CMake option it sets is an
# option or cache variable of ppool's CMake files (PPOOL_MPI only once the
# MPI layer, runtime/mpi/, exists: until then the variant is declared ahead
# of it); its newest numbered version is include/ppool/version.h's, as are
# the configured CMake package version and pkg-config files.
set -euo pipefail
src=$1 build=$2
exec /usr/bin/python3 - "$src" "$build" <<'PY'
import ast, glob, os, re, sys

src, build = sys.argv[1], sys.argv[2]
recipe = os.path.join(src, "packaging/spack/packages/ppool/package.py")
errors = []

def fail(msg):
    errors.append(msg)

tree = ast.parse(open(recipe).read(), recipe)
classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Ppool"]
if not classes:
    sys.exit("FAIL: no class Ppool in " + recipe)
cls = classes[0]
if not any(isinstance(b, ast.Name) and b.id == "CMakePackage" for b in cls.bases):
    fail("Ppool is not a CMakePackage")

def calls(node, name):
    """Every call to `name(...)` (a plain function or a self.<name> method) under node."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if (isinstance(f, ast.Name) and f.id == name) or \
               (isinstance(f, ast.Attribute) and f.attr == name):
                yield n

def first_str(call):
    a = call.args[0] if call.args else None
    return a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None

variants = {first_str(c) for c in calls(cls, "variant")}
for v in ("shared", "fortran", "mpi"):
    if v not in variants:
        fail(f"variant {v} missing")
deps = {first_str(c).split("@")[0] for c in calls(cls, "depends_on") if first_str(c)}
for d in ("hwloc", "liburcu"):
    if d not in deps:
        fail(f"depends_on({d!r}) missing")

# The CMake options and cache variables ppool defines.
cmake_files = [os.path.join(src, "CMakeLists.txt")] + glob.glob(os.path.join(src, "cmake", "*.cmake")) \
    + glob.glob(os.path.join(src, "runtime", "**", "CMakeLists.txt"), recursive=True)
defined = set()
for f in cmake_files:
    text = open(f).read()
    defined |= set(re.findall(r"\boption\(\s*(\w+)", text))
    defined |= set(re.findall(r"\bset\(\s*(\w+)\s[^)]*\bCACHE\b", text))
args_fn = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "cmake_args"]
if not args_fn:
    fail("no cmake_args")
set_opts = []
for c in calls(args_fn[0] if args_fn else cls, "define") :
    set_opts.append(first_str(c))
for c in calls(args_fn[0] if args_fn else cls, "define_from_variant"):
    set_opts.append(first_str(c))
    if len(c.args) > 1 and isinstance(c.args[1], ast.Constant) and c.args[1].value not in variants:
        fail(f"define_from_variant({first_str(c)}, {c.args[1].value!r}): no such variant")
mpi_layer = os.path.isdir(os.path.join(src, "runtime", "mpi"))
for o in set_opts:
    if o is None:
        fail("a define() whose option is not a string literal")
    elif o not in defined:
        if o == "PPOOL_MPI" and not mpi_layer:
            print("note: PPOOL_MPI is set ahead of the MPI layer (runtime/mpi/ not here yet)")
        else:
            fail(f"the recipe sets {o}, which no CMake file of ppool defines")
if "PPOOL_SHARED" not in set_opts or "PPOOL_FORTRAN" not in set_opts:
    fail("the recipe does not set PPOOL_SHARED and PPOOL_FORTRAN")

tests = [n.name for n in cls.body if isinstance(n, ast.FunctionDef)
         and (n.name == "test" or n.name.startswith("test_"))]
if not tests:
    fail("no test method")
for n in cls.body:
    if isinstance(n, ast.FunctionDef) and n.name in tests:
        body = ast.dump(n)
        if "PPOOL_START_METHOD" not in ast.dump(cls) or "_run_checked" not in body:
            fail(f"{n.name} does not run an installed example with checked output")

# One version everywhere.
hdr = open(os.path.join(src, "include/ppool/version.h")).read()
parts = [re.search(rf"#define PPOOL_VERSION_{k} (\d+)", hdr).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
version = ".".join(parts)
numbered = [first_str(c) for c in calls(cls, "version") if first_str(c) and first_str(c)[0].isdigit()]
newest = max(numbered, key=lambda v: tuple(int(x) for x in v.split("."))) if numbered else None
if newest != version:
    fail(f"the recipe's newest version is {newest}, the header's {version}")
for pc in ("ppool.pc", "ppool-fortran.pc"):
    p = os.path.join(build, pc)
    if os.path.exists(p):
        m = re.search(r"^Version: (\S+)", open(p).read(), re.M)
        if not m or m.group(1) != version:
            fail(f"{pc} says version {m.group(1) if m else '?'}, the header {version}")
    elif pc == "ppool.pc":
        fail(f"{p} not configured")
cv = os.path.join(build, "ppoolConfigVersion.cmake")
if os.path.exists(cv):
    m = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', open(cv).read())
    if not m or m.group(1) != version:
        fail(f"ppoolConfigVersion.cmake says {m.group(1) if m else '?'}, the header {version}")
else:
    fail(f"{cv} not configured")

if errors:
    for e in errors:
        print("FAIL:", e)
    sys.exit(1)
print(f"spack: recipe parses; variants {sorted(variants)}; sets {sorted(set(o for o in set_opts if o))}; "
      f"tests {tests}; version {version} = header = CMake = pkg-config")
PY
