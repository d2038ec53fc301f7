#!/usr/bin/env bash
# Builds the GGUF fuzz target with clang's libFuzzer (+ AddressSanitizer and UndefinedBehaviorSanitizer)
# and runs it on a scratch copy of the seed corpus.
#   fuzz/run_fuzz.sh [SECONDS] [extra libFuzzer flags...]      (default 600 s)
# New interesting inputs stay in build-fuzz/corpus; add small ones that found bugs to fuzz/corpus/gguf.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-600}"
shift || true
out="$repo/build-fuzz"
mkdir -p "$out/corpus"
cp -n "$repo"/fuzz/corpus/gguf/* "$out/corpus/" 2>/dev/null || true
"${CXX_FUZZ:-clang++}" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$repo/include" -isystem /usr/include/eigen3 "$repo/fuzz/fuzz_gguf.cpp" -o "$out/fuzz_gguf"
cd "$out"
./fuzz_gguf -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "$@" corpus
