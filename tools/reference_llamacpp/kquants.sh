#!/usr/bin/env bash
# Development only (never in CI): rcpu reads the K-quant GGUFs people download. llama.cpp's own quantizer
# (llama_model_quantize through llama-cpp-python) turns the dense F32 export of SmolLM2-135M-Instruct
# (made by prove_exports.sh prove) into Q4_K_M; then
#   - rcpu-ppl on that file (rcpu dequantizes Q4_K/Q6_K/...) against llama.cpp on an F32 copy of it made
#     with PyPI gguf's dequantizers (to_f32.py): the same weights, so logits agree to float rounding;
#   - `rcpu prune-model` prunes the Q4_K_M file at 20% (rotation) and llama.cpp runs the F32 export.
# Writes tools/reference_llamacpp/results/smollm2_kquants.md. Resumable like prove_exports.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
build=${RCPU_BUILD:-build/gcc}
rcpu=$build/apps/rcpu
ppl=$build/tests/model/rcpu-ppl
py=$(tools/reference_llamacpp/setup.sh | tail -n 1)
text=../shared/data/wikitext-2-raw-test.txt
out=build-llamacpp/exports
W=${RCPU_PROVE_WINDOWS:-16}
[ -f "$out/dense-f32.gguf" ] || { echo "kquants: run prove_exports.sh prove first" >&2; exit 2; }
k="$out/dense-q4_k_m.gguf"
if [ ! -f "$k" ]; then
  "$py" - "$out/dense-f32.gguf" "$k" <<'EOF'
import sys
import llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p)
sys.exit(rc)
EOF
fi
"$py" - "$k" >"$out/q4_k_m.types.txt" <<'EOF'
import collections, sys
from gguf import GGUFReader
c = collections.Counter(t.tensor_type.name for t in GGUFReader(sys.argv[1]).tensors)
print(", ".join(f"{n} x{v}" for n, v in sorted(c.items())))
EOF
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$out/q4_k_m.compare.txt" ]; then
  [ -f "$out/dense-q4_k_m-f32.gguf" ] || "$py" tools/reference_llamacpp/to_f32.py "$k" "$out/dense-q4_k_m-f32.gguf"
  "$ppl" "$k" "$text" --windows "$W" --threads 2 --quiet --dump-tokens "$tmp/tok.txt" --dump-logits "$tmp/rcpu.f32" \
    >"$out/q4_k_m.rcpu.txt"
  "$py" tools/reference_llamacpp/logits.py "$out/dense-q4_k_m-f32.gguf" --tokens "$tmp/tok.txt" --window 128 \
    --spread "$W" --out "$tmp/llama.npy" --ppl >"$out/q4_k_m.llama-f32copy.txt"
  "$py" tools/reference_llamacpp/compare.py "$tmp/llama.npy" "$tmp/rcpu.f32" --vocab 49152 --tokens "$tmp/tok.txt" \
    --window 128 --spread "$W" >"$out/q4_k_m.compare.tmp"
  mv "$out/q4_k_m.compare.tmp" "$out/q4_k_m.compare.txt"
fi
[ -f "$out/q4_k_m.llama.txt" ] || "$py" tools/reference_llamacpp/logits.py "$k" --tokens "$out/tokens.txt" --window 128 \
  --spread "$W" --ppl >"$out/q4_k_m.llama.txt"
p="$out/q4km-rotation-20-f32.gguf"
if [ ! -f "$p" ]; then
  "$rcpu" prune-model "$k" -o "$p" --ratio 0.2 --method rotation --calib "$text" --wikitext --calib-fraction 0.5 \
    --windows 128 --seq 128 --seed 20251009 >"$out/q4km-rotation-20.log" 2>"$out/q4km-rotation-20.err"
fi
[ -f "$out/q4km-rotation-20.rcpu.txt" ] || "$ppl" "$p" "$text" --windows "$W" --threads 2 --quiet >"$out/q4km-rotation-20.rcpu.txt"
[ -f "$out/q4km-rotation-20.llama.txt" ] || "$py" tools/reference_llamacpp/logits.py "$p" --tokens "$out/tokens.txt" \
  --window 128 --spread "$W" --ppl >"$out/q4km-rotation-20.llama.txt"

val() { grep '^RESULT' "$1" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
{
  echo "# rcpu reads K-quant GGUFs: SmolLM2-135M-Instruct in Q4_K_M"
  echo
  echo "Written by \`tools/reference_llamacpp/kquants.sh\` (development only). llama.cpp's quantizer"
  echo "(llama-cpp-python 0.3.36, \`LLAMA_FTYPE_MOSTLY_Q4_K_M\`) made the file from rcpu's dense F32 export; its"
  echo "tensor types: $(cat "$out/q4_k_m.types.txt") (rows of 576 are not whole 256-blocks, so llama.cpp"
  echo "falls back to other types for them). $W evenly spaced 128-token windows of WikiText-2, F32 KV cache."
  echo
  echo "| check | value |"
  echo "|---|---|"
  echo "| rcpu-ppl on the Q4_K_M file vs llama.cpp on its F32 copy (PyPI gguf's dequantizers): max \\|logit diff\\| | $(val "$out/q4_k_m.compare.txt" max_abs) (RMS logit $(val "$out/q4_k_m.compare.txt" rms)) |"
  echo "| argmax agreement | $(val "$out/q4_k_m.compare.txt" argmax_agree) |"
  echo "| perplexity: rcpu on Q4_K_M / llama.cpp on the F32 copy | $(val "$out/q4_k_m.compare.txt" ppl_rcpu) / $(val "$out/q4_k_m.compare.txt" ppl_llama) |"
  echo "| perplexity: llama.cpp on the Q4_K_M file itself (8-bit activations) | $(val "$out/q4_k_m.llama.txt" ppl) |"
  echo "| \`rcpu prune-model\` of the Q4_K_M file, rotation 20%, F32 export: rcpu / llama.cpp perplexity | $(val "$out/q4km-rotation-20.rcpu.txt" ppl) / $(val "$out/q4km-rotation-20.llama.txt" ppl) |"
} >tools/reference_llamacpp/results/smollm2_kquants.md
echo "kquants: wrote tools/reference_llamacpp/results/smollm2_kquants.md" >&2
