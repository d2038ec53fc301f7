#!/usr/bin/env bash
# Builds rcpu's tests and runs them with CTest. Installs missing Debian packages first.
#   scripts/test.sh             g++, -Werror, all tests (the three consumer projects, a smoke run of each
#                               benchmark, the Python module's pytest), and the -march=x86-64-v4 compile
#                               check (nothing of it runs)
#   scripts/test.sh clang       clang++, -Werror
#   scripts/test.sh asan        g++ with AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh clang-asan  clang++, -Werror, with AddressSanitizer + UndefinedBehaviorSanitizer: every
#                               test (CI's second variant: clang's warnings and the sanitizers in one build)
#   scripts/test.sh cuda        the CUDA backend (needs nvcc): builds only its targets, runs ctest -L cuda
#                               (the device tests report Skipped where there is no GPU)
# Build trees go to build/<variant> (Ninja when installed). Extra arguments are passed to ctest
# (e.g. -R statistics). Each test executable is one unity translation unit (tests/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-gcc}
shift || true

scripts/install-deps.sh

# PyPI gguf 0.19.0, the second GGUF reader the export test compares rcpu's files against: a venv in
# build/pyenv (on Debian's numpy; --no-deps: the reader needs nothing else). Without PyPI the test
# reports that part skipped.
pyenv="$PWD/build/pyenv"
if ! "$pyenv/bin/python" -c 'import gguf' 2>/dev/null; then
  { /usr/bin/python3 -m venv --system-site-packages "$pyenv" &&
    "$pyenv/bin/python" -m pip install --quiet --no-deps gguf==0.19.0; } ||
    echo "scripts/test.sh: could not install PyPI gguf into $pyenv; its check will be skipped" >&2
fi
export RCPU_GGUF_PYTHON="$pyenv/bin/python"
# PyPI nanobind 3.1.0 in the same venv: the gcc variant then builds the Python module (python/) and
# CTest's python_tests runs pytest on it (Debian's python3-pytest). Without PyPI it is left out, said here.
python_cfg=()
if [ "$variant" = gcc ]; then
  "$pyenv/bin/python" -c 'import nanobind' 2>/dev/null ||
    "$pyenv/bin/python" -m pip install --quiet --no-deps nanobind==3.1.0 ||
    echo "scripts/test.sh: could not install PyPI nanobind into $pyenv; the Python module is not built" >&2
  if "$pyenv/bin/python" -c 'import nanobind' 2>/dev/null; then
    python_cfg=(-DRCPU_BUILD_PYTHON=ON "-DPython_EXECUTABLE=$pyenv/bin/python")
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
common=(-DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=ON -DRCPU_WARNINGS_AS_ERRORS=ON)
# -O1, not CMake's -O3: the tests are small; -O3 costs ~30% more compile time than -O2, and -O1 ~20% less
# (CI's gcc variant 887 -> 735 s, its tests as fast: the heavy products go to OpenBLAS). The benchmarks set
# their own -O3 -march=native; the demo, study and scale scripts build in Release trees of their own (-O3).
release=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG")
# Sanitizers: -g1 (line tables only; clang's -gline-tables-only) is all a sanitizer report needs for
# file:line in its stack traces, and compiles faster than -g (CI's clang-asan variant prints its time).
sanitized=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DRCPU_SANITIZE=address,undefined)
ctest_args=()
targets=()
case "$variant" in
  gcc)   cxx=g++; cfg=("${release[@]}" -DRCPU_BUILD_BENCHMARKS=ON -DRCPU_BENCHMARK_EIGEN_VARIANTS=OFF
                          -DRCPU_CHECK_X86_64_V4=ON) ;;
  clang) cxx=clang++; cfg=("${release[@]}"); ctest_args=(-LE consumer) ;;
  asan)  cxx=g++; cfg=("${sanitized[@]}" -DRCPU_BUILD_EXAMPLES=OFF -DRCPU_BUILD_TOOLS=OFF)
         ctest_args=(-LE consumer) ;;  # every test; the demo and the study tools are not rebuilt here
  clang-asan)
         cxx=clang++; cfg=("${sanitized[@]}"); ctest_args=(-LE consumer) ;;
  cuda)  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
           { echo "scripts/test.sh cuda: needs the CUDA toolkit (nvcc, cuBLAS, cuSOLVER)" >&2; exit 2; }
         cxx=g++; cfg=("${release[@]}" -DRCPU_ENABLE_CUDA=ON -DRCPU_BUILD_BENCHMARKS=ON)
         targets=(rcpu_cuda_checks)  # the kernel library, the CUDA tests and bench_cuda
         ctest_args=(-L cuda) ;;
  *) echo "usage: scripts/test.sh [gcc|clang|asan|clang-asan|cuda] [ctest args...]" >&2; exit 2 ;;
esac

build=build/$variant
# Ninja when installed (finer parallel scheduling), unless an existing tree was made with another generator.
if command -v ninja >/dev/null && { [ ! -f "$build/CMakeCache.txt" ] || grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build/CMakeCache.txt"; }; then
  common+=(-G Ninja)
fi
# The compiler goes in through CXX (read on the first configure only): passing CMAKE_CXX_COMPILER to an
# existing tree that spells it differently makes CMake wipe its cache, build type included.
CXX=$cxx cmake -S . -B "$build" "${common[@]}" "${cfg[@]}" ${python_cfg[@]+"${python_cfg[@]}"}
cmake --build "$build" -j "$jobs" ${targets[@]+--target "${targets[@]}"}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# CTest runs $jobs tests at once: one OpenBLAS thread each, unless told (OpenBLAS's default, a thread per
# core in every test, made pipeline_streamed_smollm2 spend a third of its time in sched_yield), and
# OpenBLAS's SkylakeX core on Intel CPUs with AVX-512, which Debian's OpenBLAS may not recognise
# (scripts/openblas-core.sh). Together: that test 127 s -> 34 s on a 2-core Xeon, the other core busy.
# The tools and benchmarks built -march=native then take OpenBLAS's products instead of rcpu's Eigen
# route (rcpu/kernels.hpp); that code is the one the pure-Eigen builds (test_fast_paths_eigen) test.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
source scripts/openblas-core.sh
ctest --test-dir "$build" -j "$jobs" --output-on-failure "${ctest_args[@]}" "$@"
