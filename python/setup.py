"""Build the hydb Python package: the C extension hydb._core against libhydb.

The library is found, in this order:
  1. HYDB_BUILD_DIR (a configured build tree, e.g. ../build) or, when it is
     not set, the source tree's ./build next to this directory, if it holds
     .libs/libhydb.so: headers from ../src (or $HYDB_SRCDIR/src), the library
     from the build tree,
     and an rpath to it so that the installed extension finds it;
  2. an installed libhydb through pkg-config (hydb.pc).
"""
import os
import shlex
import subprocess
import sys

import numpy
from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))
top = os.path.dirname(here)


def from_build_tree():
    build = os.environ.get("HYDB_BUILD_DIR") or os.path.join(top, "build")
    build = os.path.abspath(build)
    libdir = os.path.join(build, ".libs")
    src = os.path.join(os.environ.get("HYDB_SRCDIR") or top, "src")
    if os.path.exists(os.path.join(libdir, "libhydb.so")) and os.path.exists(os.path.join(src, "hydb.h")):
        return dict(include_dirs=[src], library_dirs=[libdir],
                    runtime_library_dirs=[libdir], libraries=["hydb"]), "build tree " + build
    if os.environ.get("HYDB_BUILD_DIR"):
        sys.exit("setup.py: HYDB_BUILD_DIR=%s has no .libs/libhydb.so, or %s no hydb.h (run tools/build "
                 "first; set HYDB_SRCDIR for a copy of python/ outside the source tree)" % (build, src))
    return None, None


def from_pkg_config():
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "hydb"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None
    kw = dict(include_dirs=[], library_dirs=[], runtime_library_dirs=[], libraries=[])
    for flag in shlex.split(out):
        if flag.startswith("-I"):
            kw["include_dirs"].append(flag[2:])
        elif flag.startswith("-L"):
            kw["library_dirs"].append(flag[2:])
            kw["runtime_library_dirs"].append(flag[2:])
        elif flag.startswith("-l"):
            kw["libraries"].append(flag[2:])
    return kw, "pkg-config hydb"


kw, origin = from_build_tree()
if kw is None:
    kw, origin = from_pkg_config()
if kw is None:
    sys.exit("setup.py: libhydb not found: run tools/build in the source tree (or set HYDB_BUILD_DIR), "
             "or install hydb so that 'pkg-config hydb' finds it")
print("setup.py: building against libhydb from " + origin, file=sys.stderr)
kw["include_dirs"].append(numpy.get_include())

ext = Extension("hydb._core", sources=["hydb/_core.c"],
                extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                    "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
                define_macros=[("_GNU_SOURCE", None)], **kw)

setup(
    name="hydb",
    version="0.1.0",
    description="Nearest-neighbour search over hyperbolic (Lorentz) embeddings: bindings of libhydb",
    packages=["hydb"],
    package_data={"hydb": ["*.pyi", "py.typed"]},
    ext_modules=[ext],
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
