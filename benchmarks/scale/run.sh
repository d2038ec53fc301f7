#!/usr/bin/env bash
# The streamed pipeline (rcpu/model/streamed.hpp) on a synthetic model of LLaMA-7B's shapes: writes the
# model once (13 GiB, F16, random weights: tools/rcpu_scale_bench.cpp) into $RCPU_SCALE_DIR (default
# build-scale), prunes it at 20% with the rotation on WINDOWS calibration windows of 128 tokens (default 8),
# and writes docs/scale/llama7b-run.txt (the tool's per-layer table, then /usr/bin/time -v's lines) and
# docs/scale/llama7b-layers.csv. docs/scale.md discusses the figures.
#   benchmarks/scale/run.sh [WINDOWS]
# Dev-only (too big for CI): about 20 min on 2 cores and 40 GB of disk (the model, the output and its
# spool); run it on a quiet machine. The tool refuses, before writing, when the disk lacks the space.
set -euo pipefail
cd "$(dirname "$0")/../.."
windows=${1:-8}
dir=${RCPU_SCALE_DIR:-build-scale}
build=${RCPU_SCALE_BUILD:-build/scale}
# OpenBLAS's generic kernels on recent Intel Xeons (docs/scale.md: 2x the time per layer): name the core.
source scripts/openblas-core.sh
scripts/install-deps.sh >/dev/null
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=OFF \
  -DRCPU_BUILD_APPS=OFF >/dev/null
cmake --build "$build" --target rcpu-scale-bench -j "$(nproc)"
bench=$(find "$build" -name rcpu-scale-bench -type f -perm -u+x | head -n 1)
mkdir -p "$dir" docs/scale
model=$dir/llama7b-synthetic-f16.gguf
[ -f "$model" ] || "$bench" synth "$model" --shape 7b --type f16
out=docs/scale/llama7b-run.txt
{
  echo "# benchmarks/scale/run.sh $windows, $(date -u +%Y-%m-%d), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "# OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-(unset)}"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out"
/usr/bin/time -v "$bench" prune "$model" "$dir/llama7b-pruned-f16.gguf" --windows "$windows" --seq 128 --ratio 0.2 \
  --type f16 --threads "$(nproc)" --csv docs/scale/llama7b-layers.csv >> "$out" 2>&1
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out"
rm -f "$dir/llama7b-pruned-f16.gguf"
grep -E 'mean per layer|total|Maximum resident|Elapsed' "$out" || true
