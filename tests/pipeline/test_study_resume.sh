#!/usr/bin/env bash
# The study driver's cache, resume and time budget (tools/rcpu_prune_study.cpp), on stories260K with a
# tiny plan and the made-up zero-shot documents of tests/data/zeroshot:
#   1. a full run; 2. the same command again takes every run from the cache and writes the same CSVs;
#   3. with two cached runs removed and a budget too small for anything, it stops cleanly (exit 0,
#      meta complete=no, runs_remaining > 0); 4. the same command without the budget finishes them, and
#      the CSVs equal those of the full run; 5. a cached run whose definition differs (another seed
#      written into it) is run again, not reused; 6. nor are zero-shot results of other documents;
#   7. two workers at once on one cache (claims) write the CSVs of the one-worker run, run nothing twice
#      and leave no claim behind; a stale claim (its process gone) is taken over;
#   8. the statistics study and the ablation get their intervals: each method with dense statistics
#      against itself layer by layer, each one-module rotation against the rotation of both.
# Exit 77 (CTest: skipped) when ../shared/data/stories260K.gguf or WikiText-2 is absent.
# Usage: test_study_resume.sh STUDY_BINARY SOURCE_DIR
set -euo pipefail
study="$1"
src="$2"
data="${RCPU_DATA_DIR:-$src/../shared/data}"
for f in "$data/stories260K.gguf" "$data/wikitext-2-raw-test.txt"; do
  [ -f "$f" ] || { echo "SKIPPED: $f not found (see docs/models.md; set RCPU_DATA_DIR)"; exit 77; }
done
out="$(mktemp -d)"; echo "work folder: $out"
trap '[ -n "${RCPU_KEEP:-}" ] || rm -rf "$out"' EXIT
run() {
  OMP_NUM_THREADS=1 "$study" --model "$data/stories260K.gguf" --text "$data/wikitext-2-raw-test.txt" \
    --out "$out/res" --zeroshot-dir "$src/tests/data/zeroshot" --zeroshot-per-task 2 --eval-windows 6 \
    --side-eval-windows 3 --val-windows 3 --calib-windows 6 --ratios 0.2,0.3 --seeds 1 --threads 1 \
    --studies main,ridge,rotation_ridge,seeds "$@" 2>"$out/log"
}
# The columns that depend on the moment (load, seconds) are left out of the comparisons (by name: the
# quoted method names hold commas).
stable() {
  python3 - "$1" <<'PY'
import csv, sys
skip = {"prune_seconds", "load_at_start", "test_seconds", "val_seconds", "zs_seconds"}
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
for r in rows:
    print("|".join(v for k, v in r.items() if k not in skip))
PY
}
fail() { echo "FAIL: $*"; tail -20 "$out/log"; exit 1; }

run >"$out/r1" || fail "first run"
grep -q "remaining=0" "$out/r1" || fail "first run incomplete: $(cat "$out/r1")"
planned=$(grep -c . "$out/res/runs.csv")
cp "$out/res/runs.csv" "$out/runs1.csv"
cp "$out/res/comparisons.csv" "$out/cmp1.csv"
grep -q ",zs_mean," "$out/res/comparisons.csv" || fail "no zero-shot comparison"
grep -q ",zs_mean_no_boolq," "$out/res/comparisons.csv" || fail "no zero-shot comparison without BoolQ"
# BoolQ's yes-rate. The two BoolQ documents of tests/data/zeroshot (per task 2) have the gold answers
# yes and no: both right or both wrong means one yes (0.5); one right means always yes or always no.
python3 - "$out/res/runs.csv" <<'PY' || fail "zs_boolq_yes does not follow the BoolQ accuracy"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1], newline="")) if r["zs_boolq"]]
assert rows
for r in rows:
    acc, yes = float(r["zs_boolq"]), float(r["zs_boolq_yes"])
    assert (yes == 0.5) if acc in (0.0, 1.0) else yes in (0.0, 1.0), (r["key"], acc, yes)
PY

run >"$out/r2" || fail "second run"
n=$((planned - 1))
grep -q "cached=$n remaining=0" "$out/r2" || fail "second run did not take all $n runs from the cache: $(cat "$out/r2")"
diff <(stable "$out/runs1.csv") <(stable "$out/res/runs.csv") >/dev/null || fail "runs.csv differs after a cached run"
diff "$out/cmp1.csv" "$out/res/comparisons.csv" >/dev/null || fail "comparisons.csv differs after a cached run"

rm "$out/res/cache/flap-r30.0-wikitext6.json" "$out/res/cache/rcpu_rotation-r30.0-wikitext6.json"
run --budget-minutes 0.00001 >"$out/r3" || fail "budget run exited non-zero"
grep -q 'complete,"no"' "$out/res/meta.csv" || fail "budget run not marked incomplete"
grep -q "remaining=2" "$out/r3" || fail "budget run: expected 2 runs remaining: $(cat "$out/r3")"
grep -q "stopped at the time budget" "$out/log" || fail "no budget message"

run >"$out/r4" || fail "resumed run"
grep -q "remaining=0" "$out/r4" || fail "resumed run incomplete"
grep -q 'complete,"yes"' "$out/res/meta.csv" || fail "resumed run not marked complete"
# The two runs were pruned and evaluated again: the same numbers (deterministic on one thread).
diff <(stable "$out/runs1.csv" | sort) <(stable "$out/res/runs.csv" | sort) >/dev/null || fail "resumed runs differ from the first run"

f="$out/res/cache/wanda_sp-r20.0-wikitext6.json"
sed -i 's/;seed=20251009"/;seed=7"/' "$f"
run >"$out/r5" || fail "run with a stale cache file"
grep -q "wanda_sp-r20.0-wikitext6: the cached run was made with other settings" "$out/log" || fail "stale cache file was reused"
grep -q ';seed=20251009"' "$f" || fail "stale cache file not rewritten"
# 6. Other zero-shot documents (one word changed, same counts): no cached zero-shot result is reused.
cp -r "$src/tests/data/zeroshot" "$out/zs"
sed -i 's/Open a jar./Open a big jar./' "$out/zs/piqa.jsonl"
OMP_NUM_THREADS=1 "$study" --model "$data/stories260K.gguf" --text "$data/wikitext-2-raw-test.txt" \
  --out "$out/res" --zeroshot-dir "$out/zs" --zeroshot-per-task 2 --eval-windows 6 --side-eval-windows 3 \
  --val-windows 3 --calib-windows 6 --ratios 0.2,0.3 --seeds 1 --threads 1 --studies main --budget-minutes 0.00001 \
  >"$out/r6" 2>"$out/log" || fail "run with other documents"
grep -q "dense: cached, but without every evaluation it now needs" "$out/log" || fail "zero-shot results of other documents were reused"
# 7. Two workers on one empty cache; a stale claim of a process that is gone is in the way of one run.
par="$out/par"
mkdir -p "$par/cache"
sleep 0 & dead=$!
wait "$dead"
echo "$(uname -n) $dead" >"$par/cache/wanda_sp-r20.0-wikitext6.claim"
run --out "$par" >"$out/w1" &
w1=$!
OMP_NUM_THREADS=1 "$study" --model "$data/stories260K.gguf" --text "$data/wikitext-2-raw-test.txt" \
  --out "$par" --zeroshot-dir "$src/tests/data/zeroshot" --zeroshot-per-task 2 --eval-windows 6 \
  --side-eval-windows 3 --val-windows 3 --calib-windows 6 --ratios 0.2,0.3 --seeds 1 --threads 1 \
  --studies main,ridge,rotation_ridge,seeds >"$out/w2" 2>"$out/log2" || fail "second worker"
wait "$w1" || fail "first worker"
grep -q "remaining=0" "$out/w1" && grep -q "remaining=0" "$out/w2" || fail "a worker did not finish: $(cat "$out/w1" "$out/w2")"
# (Rows in another order: a run whose lambda came from another worker joins the plan a pass later.)
diff <(stable "$out/runs1.csv" | sort) <(stable "$par/runs.csv" | sort) >/dev/null || fail "two workers: runs.csv differs from one worker's"
diff "$out/cmp1.csv" "$par/comparisons.csv" >/dev/null || fail "two workers: comparisons.csv differs from one worker's"
ls "$par/cache" | grep -q '\.claim' && fail "claims left behind: $(ls "$par/cache")"
ls "$par/cache" | grep -q '\.tmp' && fail "temporary files left behind: $(ls "$par/cache")"
grep -q "taking over a stale claim" "$out/log" "$out/log2" || fail "the stale claim was not taken over"
# 8. The statistics study and the ablation at 20%: the pairs of comparisons.csv they add.
run --out "$out/side" --ratios 0.2 --studies statistics,ablation >"$out/r8" || fail "statistics and ablation run"
grep -q "remaining=0" "$out/r8" || fail "statistics and ablation run incomplete: $(cat "$out/r8")"
for pair in flap-dense-r20.0-wikitext6,flap-r20.0-wikitext6 flap_alam-dense-r20.0-wikitext6,flap_alam-r20.0-wikitext6 \
            rcpu_rotation-dense-r20.0-wikitext6,rcpu_rotation-r20.0-wikitext6 flap_alam-r20.0-wikitext6,flap-r20.0-wikitext6 \
            rcpu_rotation_o_only-r20.0-wikitext6,rcpu_rotation-r20.0-wikitext6 \
            rcpu_rotation_down_only-r20.0-wikitext6,rcpu_rotation-r20.0-wikitext6; do
  grep -q "^0.2,$pair,ppl_ratio," "$out/side/comparisons.csv" || fail "no perplexity interval for $pair"
done
# The ablation's runs have the side windows only: their ratio rests on those 3, not on all 6.
grep -q "^0.2,rcpu_rotation_o_only-r20.0-wikitext6,rcpu_rotation-r20.0-wikitext6,ppl_ratio,.*,3$" "$out/side/comparisons.csv" ||
  fail "the ablation's interval is not on the side windows"
grep -q "^0.2,rcpu_rotation-dense-r20.0-wikitext6,rcpu_rotation-r20.0-wikitext6,zs_mean," "$out/side/comparisons.csv" ||
  fail "no accuracy interval for the rotation with dense statistics"
echo "study resume: $n runs; cache, resume, budget stop, stale-definition, stale-document, two-worker and side-comparison checks passed"
