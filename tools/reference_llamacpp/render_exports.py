#!/usr/bin/env python3
"""Renders what prove_exports.sh measured (development only).

  render_exports.py prove DIR WINDOWS NAME:RATIO:METHOD...   markdown of the llama.cpp proof on stdout
  render_exports.py speed DIR                                 docs/export-speed.md on stdout

DIR holds the step files of prove_exports.sh (build-llamacpp/exports)."""
import json
import os
import re
import statistics
import sys


def result(path):
    """The key=value pairs of the last RESULT line of a file."""
    with open(path) as f:
        lines = [l for l in f if l.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"render_exports: no RESULT line in {path}")
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:])


def summary(path):
    """prune-model's summary: parameters and architecture."""
    text = open(path).read()
    m = re.search(r"parameters (\d+) -> (\d+) \(([\d.]+)% removed\); written (\d+)", text)
    arch = re.search(r"\((llama|deci), F32 weights", text)
    fallback = re.search(r"Q8_0: (\d+) weights written F16", text)
    return {
        "dense": int(m.group(1)), "params": int(m.group(2)), "removed": float(m.group(3)),
        "written": int(m.group(4)), "arch": arch.group(1) if arch else "?",
        "q8_fallback": int(fallback.group(1)) if fallback else 0,
    }


def prove(d, windows, configs):
    out = []
    out.append("# rcpu's pruned GGUF exports in llama.cpp: SmolLM2-135M-Instruct\n")
    out.append("Written by `tools/reference_llamacpp/prove_exports.sh prove` (development only, never in CI).\n")
    out.append(
        "Model: `SmolLM2-135M-Instruct.Q4_1.gguf` (30 layers, d 576, 9 query / 3 KV heads, ffn 1536), pruned by "
        "`rcpu prune-model` with the study's calibration (128 random windows of 128 tokens from the first half of "
        "WikiText-2's test split, seed 20251009; `--gqa-rule query_heads`, `--gqa-fix cheapest`) and written F32, F16 "
        "and Q8_0. Evaluation: the same "
        f"{windows} evenly spaced 128-token windows of the whole text (rcpu-ppl `--windows {windows}`, logits.py "
        f"`--spread {windows}`), token ids from rcpu's tokenizer, each window an independent sequence. llama.cpp: "
        "llama-cpp-python 0.3.36, F32 KV cache. rcpu: `rcpu-ppl` on the same file (its logits equal the in-memory "
        "pruned model's bit for bit: tests/pipeline/export_checks.hpp).\n")
    out.append("| model | arch | parameters | max \\|logit diff\\| | / RMS logit | argmax agree | PPL rcpu (F32) | "
               "PPL llama.cpp (F32) | diff | PPL llama.cpp F16 | PPL llama.cpp Q8_0 | PPL rcpu Q8_0 |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for c in configs:
        name, ratio, method = c.split(":")
        s = summary(os.path.join(d, name + ".log"))
        cmp_ = result(os.path.join(d, name + ".compare.txt"))
        pr = float(cmp_["ppl_rcpu"])
        pl = float(cmp_["ppl_llama"])
        rel = abs(pl - pr) / pr
        worst = max(worst, rel)
        f16 = float(result(os.path.join(d, name + ".llama-f16.txt"))["ppl"])
        q8 = float(result(os.path.join(d, name + ".llama-q8_0.txt"))["ppl"])
        q8r = float(result(os.path.join(d, name + ".rcpu-q8_0.txt"))["ppl"])
        label = "dense (F32 of the Q4_1 file)" if name == "dense" else f"{method} {float(ratio) * 100:.0f}%"
        out.append(f"| {label} | {s['arch']} | {s['params']:,} ({s['removed']:.1f}% removed) | "
                   f"{float(cmp_['max_abs']):.2e} | {float(cmp_['rel']):.2e} | {float(cmp_['argmax_agree']) * 100:.2f}% | "
                   f"{pr:.4f} | {pl:.4f} | {rel * 100:.4f}% | {f16:.4f} | {q8:.4f} | {q8r:.4f} |")
    out.append("")
    out.append(f"Largest perplexity difference between llama.cpp and rcpu on the F32 exports: {worst * 100:.4f}% "
               "(the issue's bound: 0.1%). `max |logit diff|` is over every position and vocabulary entry; "
               "`/ RMS logit` divides it by the RMS of llama.cpp's logits. The F16 and Q8_0 columns are llama.cpp "
               "on the F16 / Q8_0 exports (F32 KV cache); rcpu's Q8_0 column is rcpu-ppl on the same Q8_0 file "
               "(it dequantizes the weights; llama.cpp also quantizes the activations to 8 bits, so the two differ "
               "by more than rounding on quantized files). Without `--round-to`, Q8_0 exports write the weights "
               "whose rows are not a multiple of 32 (down_proj of the pruned layers) in F16.\n")
    return "\n".join(out)


def speed(d):
    data = json.load(open(os.path.join(d, "speed.json")))
    md = open(os.path.join(d, "speed.md")).read()
    rows = data["results"] if isinstance(data, dict) and "results" in data else data
    out = []
    out.append("# Is the pruned model faster? llama.cpp on rcpu's exports\n")
    out.append("Written by `tools/reference_llamacpp/prove_exports.sh speed` (development only; it regenerates this "
               "page). SmolLM2-135M-Instruct pruned by `rcpu prune-model --method rotation` at 10/20/30% (heads and "
               "MLP channels of every layer; `--gqa-rule query_heads`), written F16 and Q8_0, with and without "
               "`--round-to 64`, against the dense model exported the same way. llama.cpp through "
               "llama-cpp-python 0.3.36: prompt processing of 512 tokens (pp512) and generation of 128 tokens "
               "(tg128), 2 threads, default F16 KV cache, each measurement in its own process, models interleaved "
               "round by round; medians over the rounds.\n")
    out.append(md.strip() + "\n")
    return "\n".join(out), rows


if __name__ == "__main__":
    if sys.argv[1] == "prove":
        print(prove(sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
    else:
        text, _ = speed(sys.argv[2])
        print(text)
