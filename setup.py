"""Build fastlb: two Cython extensions, the routing core ``fastlb._core``
and the proxy's native I/O shell ``fastlb.proxy._shell``, which cimports
the core's contract (``fastlb/_core.pxd``) so its calls into it are C calls.

``FASTLB_DEBUG=1`` (``make debug``) turns on bounds checks everywhere, line
tracing (``CYTHON_TRACE``), the core's own ``FLB_CHECK`` assertions and the
annotated HTML next to each source.  The normal build keeps Cython's default
bounds checks on; hot loops use raw pointers whose bounds the loop proves,
and guard them with ``FLB_CHECK`` (``fastlb/_cy/check.h``), which compiles to
nothing unless the debug switch is set.
"""

import os
import re

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("FASTLB_DEBUG", "") not in ("", "0")
MODE_FILE = os.path.join(ROOT, "build", "fastlb-build-mode")


def read_version():
    with open(os.path.join(ROOT, "fastlb", "_version.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if m is None:
        raise RuntimeError("fastlb/_version.py has no __version__")
    return m.group(1)


def mode_changed():
    """True when the last in-tree build was of the other mode.

    The generated C carries the directives and setuptools rebuilds only by
    timestamps, so switching between debug and normal must force a rebuild.
    """
    mode = "debug" if DEBUG else "normal"
    try:
        with open(MODE_FILE, encoding="utf-8") as f:
            last = f.read().strip()
    except OSError:
        last = ""
    os.makedirs(os.path.dirname(MODE_FILE), exist_ok=True)
    with open(MODE_FILE, "w", encoding="utf-8") as f:
        f.write(mode)
    return last != mode


# mode_changed() must run on every build (it records the mode), so it comes first.
FORCE = mode_changed() or DEBUG


class BuildExt(build_ext):
    """build_ext that recompiles everything when the mode changed."""

    def finalize_options(self):
        super().finalize_options()
        if FORCE:
            self.force = True


def extensions():
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "wraparound": False,
        "cdivision": True,
        "embedsignature": True,
    }
    macros = []
    cflags = ["-O2"]
    if DEBUG:
        directives.update(boundscheck=True, linetrace=True, profile=True)
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1"), ("FLB_DEBUG", "1")]
        cflags = ["-O0", "-g"]
    exts = [
        Extension(name, [source], include_dirs=["fastlb/_cy"], define_macros=macros,
                  extra_compile_args=cflags)
        for name, source in (("fastlb._core", "fastlb/_core.pyx"),
                             ("fastlb.proxy._shell", "fastlb/proxy/_shell.pyx"))
    ]
    return cythonize(
        exts,
        compiler_directives=directives,
        annotate=DEBUG,
        force=FORCE,
        include_path=[".", "fastlb"],
    )


setup(version=read_version(), ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
