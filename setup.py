"""Build the compiled kernels (C and Cython extensions); the metadata is in pyproject.toml.

Portable flags only (no -march=native): the stencil kernel adds its own AVX2 / AVX-512
variants and picks one at run time. OpenMP is used where the compiler has it.
"""

from __future__ import annotations

import os
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from Cython.Build import cythonize
except ImportError as err:  # pragma: no cover - build-time only
    raise SystemExit(
        "affseg: building from source needs Cython >= 3 (pip installs it from "
        "[build-system] requires; with --no-build-isolation install it first)"
    ) from err

#: Bit-identical floating point: no FMA contraction, no fast-math in the Cython kernels.
KERNEL_FLAGS = ["-O3", "-ffp-contract=off"]
OPENMP = ["-fopenmp"]

TOOLCHAIN_HELP = (
    "affseg: could not compile its C extensions. Building affseg from source needs a C "
    "compiler (gcc or clang) and the Python headers, e.g. on Debian/Ubuntu: "
    "`apt-get install build-essential python3-dev`. Original error: {err}"
)


class BuildExt(build_ext):
    """build_ext with a clear error when the toolchain is missing, and OpenMP if present."""

    def _try_compile(self, code: str, flags: list[str]) -> None:
        """Compile and link a tiny program (raises on failure)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(code)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            self.compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)

    def build_extensions(self) -> None:
        try:
            self._try_compile("int main(void) { return 0; }\n", [])
        except Exception as err:  # noqa: BLE001 - any toolchain failure
            raise SystemExit(TOOLCHAIN_HELP.format(err=err)) from err
        try:
            self._try_compile(
                "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 0; }\n",
                OPENMP,
            )
            omp = True
        except Exception:  # noqa: BLE001
            omp = False
            print("affseg: the C compiler has no OpenMP; building single-threaded kernels")
        for ext in self.extensions:
            if ext.name in OPENMP_EXTENSIONS and omp:
                ext.extra_compile_args = [*ext.extra_compile_args, *OPENMP]
                ext.extra_link_args = [*ext.extra_link_args, *OPENMP]
        try:
            super().build_extensions()
        except Exception as err:
            if "CompileError" in type(err).__name__ or "ExecError" in type(err).__name__:
                raise SystemExit(TOOLCHAIN_HELP.format(err=err)) from err
            raise


#: Extensions whose kernels run on OpenMP threads (compiled and linked with -fopenmp).
OPENMP_EXTENSIONS = {
    "affseg.affinity._native",
    "affseg.affinity._kernels",
    "affseg.models._kernels",
}

extensions = [
    # the stencil: -O3 with the compiler's default contraction (FMA in the AVX2 variants)
    Extension(
        "affseg.affinity._native",
        ["src/affseg/affinity/_native.pyx", "src/affseg/affinity/_stencil.c"],
        extra_compile_args=["-O3"],
        depends=["src/affseg/affinity/_stencil_impl.h", "src/affseg/affinity/_stencil.h"],
    ),
    Extension(
        "affseg.grouping._kernels",
        ["src/affseg/grouping/_kernels.pyx"],
        extra_compile_args=KERNEL_FLAGS,
    ),
    Extension(
        "affseg.affinity._kernels",
        ["src/affseg/affinity/_kernels.pyx"],
        extra_compile_args=KERNEL_FLAGS,
    ),
    Extension(
        "affseg.models._kernels",
        ["src/affseg/models/_kernels.pyx"],
        extra_compile_args=KERNEL_FLAGS,
    ),
    Extension(
        "affseg.metrics._kernels",
        ["src/affseg/metrics/_kernels.pyx"],
        extra_compile_args=KERNEL_FLAGS,
    ),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
