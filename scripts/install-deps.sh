#!/usr/bin/env bash
# Installs what rcpu needs on Debian 12 (bookworm). Idempotent: packages already present are skipped.
# Usage: scripts/install-deps.sh            (uses sudo when not root)
set -euo pipefail

pkgs=(
  build-essential cmake g++ clang          # compilers (CI builds with both) and the build system
  ninja-build                              # faster parallel builds (scripts/test.sh uses it when present)
  libclang-rt-14-dev                       # clang's sanitizer and libFuzzer runtimes (clang-asan, fuzz/)
  libeigen3-dev                            # Eigen 3.4: the only hard dependency of the headers
  catch2                                   # Catch2 2.13 for the tests
  libbenchmark-dev                         # Google Benchmark 1.7 for benchmarks/
  libopenblas-dev liblapacke-dev           # optional BLAS/LAPACK fast paths and benchmark baselines
  python3-numpy python3-scipy              # outside-reference script tests/reference/make_reference.py
  python3-venv                             # the venv with PyPI gguf that scripts/test.sh makes (export tests)
  python3-dev python3-pytest               # the Python module (python/: headers) and its tests (tests/python)
  openmpi-bin libopenmpi-dev               # optional rcpu/mpi.hpp (statistics all-reduced across processes)
  time                                     # /usr/bin/time -v: peak memory in benchmarks/scale/run.sh
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
