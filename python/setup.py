"""Builds dynamodb_cache._native with CMake (python/CMakeLists.txt: the C++ library of this
checkout, linked in statically) and installs it with the pure-Python modules.

    pip install --break-system-packages --no-build-isolation ./python   (scripts/install-python)

--no-build-isolation: the build uses Debian's setuptools and pybind11-dev, as no package
index is needed. DYNAMODB_CACHE_PY_BUILD (default python/build-cmake, kept between installs
so a second install recompiles only what changed) is CMake's build folder.
"""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    # The one version of the project: project(VERSION) in the top CMakeLists.txt.
    with open(os.path.join(HERE, "..", "CMakeLists.txt"), encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("project(dynamodb_cache VERSION "):
                return line.split()[2]
    raise RuntimeError("no project(dynamodb_cache VERSION ...) in ../CMakeLists.txt")


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.environ.get("DYNAMODB_CACHE_PY_BUILD", os.path.join(HERE, "build-cmake"))
        args = ["cmake", "-S", HERE, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                # -O2 as the C++ build's RelWithDebInfo (GCC 12 at -O3 warns falsely, PR 105651)
                "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG",
                f"-DPython3_EXECUTABLE={sys.executable}"]
        if shutil.which("ccache"):
            args += ["-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
        if os.environ.get("DYNAMODB_CACHE_WERROR") == "1":
            args += ["-DDYNAMODB_CACHE_WERROR=ON"]
        subprocess.check_call(args)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", build, "--target", "_native", "-j", jobs])
        built = [f for f in os.listdir(build) if f.startswith("_native") and f.endswith(".so")]
        if len(built) != 1:
            raise RuntimeError(f"expected one _native*.so in {build}, found {built}")
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(build, built[0]), dest)


setup(
    name="dynamodb_cache",
    version=version(),
    description="Amazon DynamoDB as a cache: the Python face of the C++ library, a drop-in for dynamodb_cache 0.1.1",
    packages=["dynamodb_cache", "dynamodb_cache.backend"],
    package_data={"dynamodb_cache": ["py.typed", "*.pyi"]},
    ext_modules=[Extension("dynamodb_cache._native", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    zip_safe=False,
)
