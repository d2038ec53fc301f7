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
# study (79 runs) took 18 h of one-thread run time on a 2-core Xeon, about 9 h with the two workers
# (docs/results.md says how long the finished runs took), so it is meant to be run in pieces:
#   scripts/reproduce_results.sh --budget-minutes 120     two hours of it, then render the page
#   scripts/reproduce_results.sh                          all that is left
#   scripts/reproduce_results.sh --studies main           any rcpu-prune-study options are passed on
#   RCPU_MODEL=../shared/data/stories260K.gguf RCPU_RESULTS=build/results-smoke \
#     scripts/reproduce_results.sh --eval-windows 8 --zeroshot-per-task 5    a fast smoke run
# Environment: RCPU_WIKITEXT (default ../shared/data/wikitext-2-raw-test.txt), RCPU_MODEL (default:
# the SmolLM2 file), RCPU_RESULTS (default docs: CSVs and cache in docs/results/, the page
# docs/results.md), RCPU_WORKERS (study processes sharing the plan through the cache, each claiming the
# runs it does; default 2, or 1 on a one-core machine: on 2 cores each of two one-thread workers ran as
# fast as one worker alone, so twice the runs per hour; the extra workers log to build/study/worker-K.log),
# RCPU_THREADS (threads per worker; default: the cores divided among the workers), RCPU_NO_ZEROSHOT=1
# (perplexity only).
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
cores="$(nproc 2>/dev/null || echo 2)"
workers="${RCPU_WORKERS:-$((cores >= 2 ? 2 : 1))}"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "reproduce_results: RCPU_WORKERS must be a positive number" >&2; exit 2; }
threads="${RCPU_THREADS:-$((cores / workers > 1 ? cores / workers : 1))}"
study() {
  OMP_NUM_THREADS="$threads" ./build/study/tests/pipeline/rcpu-prune-study --model "$model" --text "$text" \
    --shift-text "$shift_text" "${zeroshot[@]}" --out "$csv" --threads "$threads" "$@"
}
# Extra workers in the background (the same plan; the cache's claims keep them from running anything
# twice), the first in the foreground; the page is rendered once every worker has stopped.
pids=()
# Background jobs of a script ignore Ctrl-C: stop them with the script.
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' INT TERM
for ((k = 2; k <= workers; k++)); do
  echo "reproduce_results: worker $k of $workers logs to build/study/worker-$k.log" >&2
  study "$@" >"build/study/worker-$k.log" 2>&1 &
  pids+=($!)
done
status=0
study "$@" || status=$?
for p in "${pids[@]}"; do wait "$p" || status=$?; done
[ "$status" -eq 0 ] || { echo "reproduce_results: a study worker failed (status $status)" >&2; exit "$status"; }
python3 scripts/render_results.py "$csv" "$dest/results.md" --command "scripts/reproduce_results.sh $*"
