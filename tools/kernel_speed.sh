#!/usr/bin/env bash
# rcpu-ppl's speed on SmolLM2-135M with each choice of product kernels, as on a machine whose OpenBLAS
# does not know the CPU (rcpu/kernels.hpp, docs/performance.md). OPENBLAS_CORETYPE=Prescott makes any
# x86-64 OpenBLAS run the generic kernels such a machine gets; RCPU_PRODUCTS forces the route:
#   right core   OpenBLAS with the core it picks itself (the speed to match)
#   generic      OPENBLAS_CORETYPE=Prescott, products through OpenBLAS (rcpu before the fix)
#   routed       OPENBLAS_CORETYPE=Prescott, products through Eigen's kernels (what rcpu now chooses
#                when it sees a generic core on an AVX2/AVX-512 CPU)
# Runs interleaved, ROUNDS times each, and prints medians of tokens/s as a Markdown table.
#   tools/kernel_speed.sh [BUILD_DIR] [WINDOWS] [ROUNDS]     (default build/gcc 16 3)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build/gcc}"
windows="${2:-16}"
rounds="${3:-3}"
ppl="$build/tests/model/rcpu-ppl"
[ -x "$ppl" ] || { echo "kernel_speed: build rcpu-ppl first (scripts/test.sh builds it in build/gcc)" >&2; exit 2; }
model="${RCPU_SMOLLM2_GGUF:-$("$repo/tools/fetch_smollm2.sh")}"
text="$repo/../shared/data/wikitext-2-raw-test.txt"
[ -f "$text" ] || { echo "kernel_speed: $text is missing (docs/models.md)" >&2; exit 2; }
declare -A runs
for ((r = 0; r < rounds; r++)); do
  for threads in 1 2; do
    for mode in right generic routed; do
      case $mode in
        right) env=(env -u OPENBLAS_CORETYPE -u RCPU_PRODUCTS) ;;
        generic) env=(env OPENBLAS_CORETYPE=Prescott RCPU_PRODUCTS=blas) ;;
        routed) env=(env OPENBLAS_CORETYPE=Prescott RCPU_PRODUCTS=eigen) ;;
      esac
      line=$("${env[@]}" "$ppl" "$model" "$text" --windows "$windows" --threads "$threads" --quiet 2>/dev/null | grep '^RESULT')
      tps=$(sed -E 's/.*tokens_per_second=([0-9.]+).*/\1/' <<<"$line")
      runs[$mode,$threads]+="$tps "
      echo "round $r threads $threads $mode: $tps tok/s ($line)" >&2
    done
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
core=$(env -u OPENBLAS_CORETYPE "$ppl" "$model" "$text" --windows 1 --quiet 2>/dev/null | sed -nE 's/.*openblas_core=([^ ]+).*/\1/p')
echo "rcpu-ppl, SmolLM2-135M-Instruct Q4_1, $windows windows of 128 tokens, median of $rounds interleaved runs"
echo "(tokens/s; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); OpenBLAS's own core: $core)"
echo
echo "| threads | right core ($core) | generic (Prescott) | routed to Eigen | right / routed |"
echo "|---|---|---|---|---|"
for threads in 1 2; do
  a=$(median "${runs[right,$threads]}"); g=$(median "${runs[generic,$threads]}"); e=$(median "${runs[routed,$threads]}")
  echo "| $threads | $a | $g | $e | $(awk -v a="$a" -v e="$e" 'BEGIN {printf "%.2f", a / e}') |"
done
