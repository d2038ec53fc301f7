#!/usr/bin/env bash
# Installs what is missing, builds the examples and runs rcpu's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_TESTS=OFF -DRCPU_BUILD_EXAMPLES=ON >/dev/null
cmake --build build/demo -j "$(nproc 2>/dev/null || echo 2)" --target rcpu_quickstart
./build/demo/examples/rcpu_quickstart "$@"
