#!/usr/bin/env bash
# Builds rcpu's tests and runs them with CTest. Installs missing Debian packages first.
#   scripts/test.sh          g++, -Werror, all tests (the three consumer projects, a smoke run of each benchmark)
#   scripts/test.sh clang    clang++, -Werror
#   scripts/test.sh asan     g++ with AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh cuda     the CUDA backend (needs nvcc): builds only its targets, runs ctest -L cuda
#                            (the device tests report Skipped where there is no GPU)
# Build trees go to build/<variant>. Extra arguments are passed to ctest (e.g. -R statistics).
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-gcc}
shift || true

scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
common=(-DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=ON -DRCPU_WARNINGS_AS_ERRORS=ON)
ctest_args=()
targets=()
case "$variant" in
  gcc)   cxx=g++; cfg=(-DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_BENCHMARKS=ON) ;;
  clang) cxx=clang++; cfg=(-DCMAKE_BUILD_TYPE=Release); ctest_args=(-LE consumer) ;;
  asan)  cxx=g++; cfg=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g"
              -DRCPU_SANITIZE=address,undefined -DRCPU_BUILD_EXAMPLES=OFF -DRCPU_BUILD_TOOLS=OFF)
         ctest_args=(-LE consumer) ;;  # every test; the demo and the study tools are not rebuilt here
  cuda)  command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
           { echo "scripts/test.sh cuda: needs the CUDA toolkit (nvcc, cuBLAS, cuSOLVER)" >&2; exit 2; }
         cxx=g++; cfg=(-DCMAKE_BUILD_TYPE=Release -DRCPU_ENABLE_CUDA=ON -DRCPU_BUILD_BENCHMARKS=ON)
         targets=(rcpu_cuda_checks)  # the kernel library, the CUDA tests and bench_cuda
         ctest_args=(-L cuda) ;;
  *) echo "usage: scripts/test.sh [gcc|clang|asan|cuda] [ctest args...]" >&2; exit 2 ;;
esac

build=build/$variant
# The compiler goes in through CXX (read on the first configure only): passing CMAKE_CXX_COMPILER to an
# existing tree that spells it differently makes CMake wipe its cache, build type included.
CXX=$cxx cmake -S . -B "$build" "${common[@]}" "${cfg[@]}"
cmake --build "$build" -j "$jobs" ${targets[@]+--target "${targets[@]}"}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" -j "$jobs" --output-on-failure "${ctest_args[@]}" "$@"
