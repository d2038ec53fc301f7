#!/usr/bin/env bash
# Builds rcpu's tests and runs them with CTest. Installs missing Debian packages first.
#   scripts/test.sh          g++, -Werror, all tests (including the three consumer projects)
#   scripts/test.sh clang    clang++, -Werror
#   scripts/test.sh asan     g++ with AddressSanitizer + UndefinedBehaviorSanitizer
# Build trees go to build/<variant>. Extra arguments are passed to ctest (e.g. -R statistics).
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-gcc}
shift || true

scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
common=(-DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=ON -DRCPU_WARNINGS_AS_ERRORS=ON)
ctest_args=()
case "$variant" in
  gcc)   cfg=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release) ;;
  clang) cfg=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release); ctest_args=(-LE consumer) ;;
  asan)  cfg=(-DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g"
              -DRCPU_SANITIZE=address,undefined); ctest_args=(-LE consumer) ;;
  *) echo "usage: scripts/test.sh [gcc|clang|asan] [ctest args...]" >&2; exit 2 ;;
esac

build=build/$variant
cmake -S . -B "$build" "${common[@]}" "${cfg[@]}"
cmake --build "$build" -j "$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" -j "$jobs" --output-on-failure "${ctest_args[@]}" "$@"
