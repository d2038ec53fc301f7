#!/usr/bin/env bash
# The one command behind docs/results.md: builds rcpu-prune-study, fetches SmolLM2-135M-Instruct
# (tools/fetch_smollm2.sh), the seven zero-shot tasks (tools/zeroshot/fetch_tasks.sh) and the
# distribution-shift corpus (scripts/fetch_shift_corpus.sh), runs every study of the comparison on
# ../shared/data/wikitext-2-raw-test.txt, writes the CSV files to docs/results/ and renders
# docs/results.md with its figures.
#
# Resumable: every finished run is kept in docs/results/cache/ (one JSON file per run, keyed by what
# defines it), and the same command later goes on where it stopped. --budget-minutes M stops cleanly
# before a run that would not end within M minutes; the page then marks what is not yet run. The whole
# study takes many hours on 2 cores (docs/results.md says how long the finished runs took), so it is
# meant to be run in pieces:
#   scripts/reproduce_results.sh --budget-minutes 120     two hours of it, then render the page
#   scripts/reproduce_results.sh                          all that is left
#   scripts/reproduce_results.sh --studies main           any rcpu-prune-study options are passed on
#   RCPU_MODEL=../shared/data/stories260K.gguf RCPU_RESULTS=build/results-smoke \
#     scripts/reproduce_results.sh --eval-windows 8 --zeroshot-per-task 5    a fast smoke run
# Environment: RCPU_WIKITEXT (default ../shared/data/wikitext-2-raw-test.txt), RCPU_MODEL (default:
# the SmolLM2 file), RCPU_RESULTS (default docs: CSVs and cache in docs/results/, the page
# docs/results.md), RCPU_THREADS (default: the number of cores; 1 is faster on a machine that is busy
# with something else), RCPU_NO_ZEROSHOT=1 (perplexity only).
set -euo pipefail
cd "$(dirname "$0")/.."
text="${RCPU_WIKITEXT:-../shared/data/wikitext-2-raw-test.txt}"
[ -f "$text" ] || { echo "reproduce_results: $text not found (WikiText-2 raw test split; see docs/models.md)" >&2; exit 2; }
scripts/install-deps.sh
model="${RCPU_MODEL:-$(tools/fetch_smollm2.sh)}"
shift_text="$(scripts/fetch_shift_corpus.sh)"
zeroshot=()
if [ -z "${RCPU_NO_ZEROSHOT:-}" ]; then
  zeroshot=(--zeroshot-dir "$(tools/zeroshot/fetch_tasks.sh)")
fi
cmake -S . -B build/study -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_EXAMPLES=OFF \
  -DRCPU_BUILD_APPS=OFF >/dev/null
cmake --build build/study -j "$(nproc 2>/dev/null || echo 2)" --target rcpu-prune-study
dest="${RCPU_RESULTS:-docs}"
csv="$dest/results"
mkdir -p "$csv"
threads="${RCPU_THREADS:-$(nproc 2>/dev/null || echo 2)}"
./build/study/tests/pipeline/rcpu-prune-study --model "$model" --text "$text" --shift-text "$shift_text" \
  "${zeroshot[@]}" --out "$csv" --threads "$threads" "$@"
python3 scripts/render_results.py "$csv" "$dest/results.md" --command "scripts/reproduce_results.sh $*"
