#!/usr/bin/env bash
# Installs what is missing, builds rcpu's demo and runs it: a toy LLaMA-style decoder block pruned at
# 10-30% with every score and every compensation, evaluated on held-out tokens, for calibration sets of
# 32 to 8192 tokens (docs/toy-transformer.md explains the result). It prints the tables and writes
# toy-transformer.csv and toy-transformer.svg to build/demo/out.
#   scripts/demo.sh                  the demo with its default sizes (under a minute on 2 cores)
#   scripts/demo.sh --out docs       regenerate the CSV and the figure shown in docs/
#   scripts/demo.sh --help           the demo's options (sizes, seeds, ratios, calibration sizes, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_TESTS=OFF -DRCPU_BUILD_EXAMPLES=ON \
  -DRCPU_EXAMPLES_NATIVE=ON >/dev/null
cmake --build build/demo -j "$(nproc 2>/dev/null || echo 2)" --target rcpu_toy_transformer
args=("$@")
case " $* " in
  *" --out "*) ;;
  *) args+=(--out build/demo/out) ;;
esac
./build/demo/examples/rcpu_toy_transformer "${args[@]}"
