#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer (+ AddressSanitizer and UndefinedBehaviorSanitizer) and
# runs it on a scratch copy of its seed corpus.
#   fuzz/run_fuzz.sh [SECONDS] [TARGET] [extra libFuzzer flags...]      (default 600 s, target gguf)
# TARGET is gguf (fuzz_gguf.cpp), npy (fuzz_npy.cpp), statistics (fuzz_statistics.cpp) or json
# (fuzz_json.cpp); it may also
# come first (fuzz/run_fuzz.sh npy 300). New interesting inputs stay in build-fuzz/corpus (gguf) or
# build-fuzz/corpus-TARGET; add small ones that found bugs to fuzz/corpus/TARGET as regress_*.seed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
is_target() { [[ "${1:-}" == gguf || "${1:-}" == npy || "${1:-}" == statistics || "${1:-}" == json ]]; }
target=""
if is_target "${1:-}"; then target="$1"; shift; fi
secs=600
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then secs="$1"; shift; fi
if [[ -z "$target" ]] && is_target "${1:-}"; then target="$1"; shift; fi
target="${target:-gguf}"
case "$target" in
  gguf) corpus=corpus; max_len=65536 ;;
  npy) corpus=corpus-npy; max_len=8192 ;;
  statistics) corpus=corpus-statistics; max_len=16384 ;;
  json) corpus=corpus-json; max_len=4096 ;;
esac
out="$repo/build-fuzz"
mkdir -p "$out/$corpus"
cp -n "$repo"/fuzz/corpus/"$target"/* "$out/$corpus/" 2>/dev/null || true
"${CXX_FUZZ:-clang++}" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$repo/include" -isystem /usr/include/eigen3 "$repo/fuzz/fuzz_$target.cpp" -o "$out/fuzz_$target"
cd "$out"
"./fuzz_$target" -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1 "$@" "$corpus"
