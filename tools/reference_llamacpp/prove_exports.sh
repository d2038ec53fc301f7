#!/usr/bin/env bash
# Development only (never in CI): the proof that rcpu's pruned GGUF exports run in llama.cpp as they
# run in rcpu, on SmolLM2-135M-Instruct, and llama.cpp's speed on them.
#
#   tools/reference_llamacpp/prove_exports.sh prove   # -> tools/reference_llamacpp/results/smollm2_exports.md
#   tools/reference_llamacpp/prove_exports.sh speed   # -> docs/export-speed.md
#
# Each pruned model is made once with `rcpu prune-model` (the study's calibration: 128 random windows of
# 128 tokens in the first half of WikiText-2's test split, seed 20251009) and written F32, F16 and Q8_0.
# prove: on 16 evenly spaced windows of the text, llama.cpp's logits of the F32 export (F32 KV cache)
# against rcpu-ppl's on the same file (which equal the in-memory pruned model's bit for bit: tested), and
# both perplexities; the F16 and Q8_0 exports' perplexities beside them.
# speed: tools/reference_llamacpp/bench.py on the dense model and the rotation at 10/20/30%, F16 and
# Q8_0, with and without --round-to 64.
# Resumable: every finished step leaves its file in build-llamacpp/exports/ and is skipped when run
# again (delete the file to redo a step). Run it on an otherwise idle machine.
#
# Environment: RCPU_BUILD (default build/gcc: where apps/rcpu and tests/model/rcpu-ppl were built),
# RCPU_SMOLLM2_GGUF (default: tools/fetch_smollm2.sh), RCPU_PROVE_WINDOWS (default 16), REPEATS (speed, 5).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
phase=${1:-prove}
build=${RCPU_BUILD:-build/gcc}
rcpu=$build/apps/rcpu
ppl=$build/tests/model/rcpu-ppl
for b in "$rcpu" "$ppl"; do
  [ -x "$b" ] || { echo "prove_exports: $b is not built (cmake --build $build --target rcpu_cli rcpu-ppl)" >&2; exit 2; }
done
py=$(tools/reference_llamacpp/setup.sh | tail -n 1)
model=${RCPU_SMOLLM2_GGUF:-$(tools/fetch_smollm2.sh)}
text=../shared/data/wikitext-2-raw-test.txt
[ -f "$text" ] || { echo "prove_exports: $text not found" >&2; exit 2; }
out=build-llamacpp/exports
mkdir -p "$out"
W=${RCPU_PROVE_WINDOWS:-16}
calib=(--calib "$text" --wikitext --calib-fraction 0.5 --windows 128 --seq 128 --seed 20251009)

# prune NAME ARGS...: the F32, F16 and Q8_0 exports of one configuration.
prune() {
  local name=$1
  shift
  if [ ! -f "$out/$name-q8_0.gguf" ]; then
    echo "prove_exports: pruning $name ($*)" >&2
    "$rcpu" prune-model "$model" -o "$out/$name-{type}.gguf" --type f32,f16,q8_0 "${calib[@]}" "$@" \
      >"$out/$name.log" 2>"$out/$name.err"
  fi
}

# The configurations of the proof: the rotation at 10/20/30%, every method at 20%, the dense model.
# NAME:RATIO:METHOD[:more prune-model options]; rotation_dupkv-20 is the other exact GQA fix; the AL-AM
# allocations give every layer its own sizes (deci; with duplicate_kv, per-layer head counts too).
configs=(dense:0:rotation rotation-10:0.1:rotation rotation-20:0.2:rotation rotation-30:0.3:rotation
         wanda_sp-20:0.2:wanda_sp flap-20:0.2:flap none-20:0.2:none rotation_scale-20:0.2:rotation_scale
         rotation_bias-20:0.2:rotation_bias ridge-20:0.2:ridge
         "rotation_dupkv-20:0.2:rotation:--gqa-fix duplicate_kv"
         flap_alam-20:0.2:flap_alam "rotation_alam-20:0.2:rcpu_rotation_alam:--gqa-fix duplicate_kv")

if [ "$phase" = prove ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for c in "${configs[@]}"; do
    IFS=: read -r name ratio method extra <<<"$c"
    # shellcheck disable=SC2086  # extra options are words
    prune "$name" --ratio "$ratio" --method "$method" $extra
    f32="$out/$name-f32.gguf"
    if [ ! -f "$out/$name.compare.txt" ]; then
      echo "prove_exports: $name: rcpu and llama.cpp logits on $W windows" >&2
      "$ppl" "$f32" "$text" --windows "$W" --threads 2 --quiet --dump-tokens "$out/tokens.txt" \
        --dump-logits "$tmp/rcpu.f32" >"$out/$name.rcpu.txt"
      "$py" tools/reference_llamacpp/logits.py "$f32" --tokens "$out/tokens.txt" --window 128 --spread "$W" \
        --out "$tmp/llama.npy" --ppl >"$out/$name.llama.txt"
      "$py" tools/reference_llamacpp/compare.py "$tmp/llama.npy" "$tmp/rcpu.f32" --vocab 49152 \
        --tokens "$out/tokens.txt" --window 128 --spread "$W" >"$out/$name.compare.tmp"
      mv "$out/$name.compare.tmp" "$out/$name.compare.txt"
      rm -f "$tmp/rcpu.f32" "$tmp/llama.npy"
    fi
    for t in f16 q8_0; do
      [ -f "$out/$name.llama-$t.txt" ] && continue
      echo "prove_exports: $name: $t perplexities" >&2
      "$ppl" "$out/$name-$t.gguf" "$text" --windows "$W" --threads 2 --quiet >"$out/$name.rcpu-$t.txt"
      "$py" tools/reference_llamacpp/logits.py "$out/$name-$t.gguf" --tokens "$out/tokens.txt" --window 128 \
        --spread "$W" --ppl >"$out/$name.llama-$t.tmp"
      mv "$out/$name.llama-$t.tmp" "$out/$name.llama-$t.txt"
    done
  done
  mkdir -p tools/reference_llamacpp/results
  "$py" tools/reference_llamacpp/render_exports.py prove "$out" "$W" "${configs[@]}" \
    >tools/reference_llamacpp/results/smollm2_exports.md
  echo "prove_exports: wrote tools/reference_llamacpp/results/smollm2_exports.md" >&2
elif [ "$phase" = speed ]; then
  prune dense --ratio 0
  models=("$out/dense-f16.gguf" "$out/dense-q8_0.gguf")
  for r in 10 20 30; do
    prune "rotation-$r" --ratio "0.$r" --method rotation
    prune "rotation-$r-r64" --ratio "0.$r" --method rotation --round-to 64
    for t in f16 q8_0; do models+=("$out/rotation-$r-$t.gguf" "$out/rotation-$r-r64-$t.gguf"); done
  done
  prune rotation_dupkv-20 --ratio 0.2 --method rotation --gqa-fix duplicate_kv
  models+=("$out/rotation_dupkv-20-f16.gguf" "$out/rotation_dupkv-20-q8_0.gguf")
  # What rounding costs: rcpu's perplexity of the F32 exports with and without --round-to 64.
  for r in 10 20 30; do
    for n in "rotation-$r" "rotation-$r-r64"; do
      [ -f "$out/$n.ppl.txt" ] && continue
      "$ppl" "$out/$n-f32.gguf" "$text" --windows "$W" --threads 2 --quiet >"$out/$n.ppl.tmp"
      mv "$out/$n.ppl.tmp" "$out/$n.ppl.txt"
    done
  done
  if [ ! -f "$out/speed.json" ]; then
    "$py" tools/reference_llamacpp/bench.py "${models[@]}" --threads 2 --repeats "${REPEATS:-5}" \
      --out "$out/speed.tmp.json" --md "$out/speed.md"
    mv "$out/speed.tmp.json" "$out/speed.json"
  fi
  "$py" tools/reference_llamacpp/render_exports.py speed "$out" "$W" >docs/export-speed.md
  echo "prove_exports: wrote docs/export-speed.md" >&2
else
  echo "usage: prove_exports.sh prove|speed" >&2
  exit 2
fi
