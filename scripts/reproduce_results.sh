#!/usr/bin/env bash
# The one command behind docs/results.md: builds rcpu-prune-study, fetches SmolLM2-135M-Instruct
# (tools/fetch_smollm2.sh) and the distribution-shift corpus (scripts/fetch_shift_corpus.sh), runs
# every study of the comparison on ../shared/data/wikitext-2-raw-test.txt (66 minutes on 2
# cores), writes the CSV files to docs/results/ and renders docs/results.md with its figures.
#   scripts/reproduce_results.sh                        the full study (SmolLM2)
#   scripts/reproduce_results.sh --studies main         any rcpu-prune-study options are passed on
#   RCPU_MODEL=../shared/data/stories260K.gguf RCPU_RESULTS=build/results-smoke \
#     scripts/reproduce_results.sh --eval-windows 8     a fast smoke run on the small model
# Environment: RCPU_WIKITEXT (default ../shared/data/wikitext-2-raw-test.txt), RCPU_MODEL (default:
# the SmolLM2 file), RCPU_RESULTS (default docs: CSVs in docs/results/, the page docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
text="${RCPU_WIKITEXT:-../shared/data/wikitext-2-raw-test.txt}"
[ -f "$text" ] || { echo "reproduce_results: $text not found (WikiText-2 raw test split; see docs/models.md)" >&2; exit 2; }
scripts/install-deps.sh
model="${RCPU_MODEL:-$(tools/fetch_smollm2.sh)}"
shift_text="$(scripts/fetch_shift_corpus.sh)"
cmake -S . -B build/study -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=OFF \
  -DRCPU_BUILD_APPS=OFF >/dev/null
cmake --build build/study -j "$(nproc 2>/dev/null || echo 2)" --target rcpu-prune-study
dest="${RCPU_RESULTS:-docs}"
csv="$dest/results"
mkdir -p "$csv"
rm -f "$csv"/runs.csv "$csv"/layers.csv "$csv"/window_nll.csv "$csv"/meta.csv
./build/study/tests/pipeline/rcpu-prune-study --model "$model" --text "$text" --shift-text "$shift_text" \
  --out "$csv" --threads "$(nproc 2>/dev/null || echo 2)" "$@"
python3 scripts/render_results.py "$csv" "$dest/results.md" --command "scripts/reproduce_results.sh $*"
