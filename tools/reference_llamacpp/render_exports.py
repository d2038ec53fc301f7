#!/usr/bin/env python3
"""Renders what prove_exports.sh measured (development only).

  render_exports.py prove DIR WINDOWS NAME:RATIO:METHOD...   markdown of the llama.cpp proof on stdout
  render_exports.py speed DIR WINDOWS                         docs/export-speed.md on stdout

DIR holds the step files of prove_exports.sh (build-llamacpp/exports)."""
import json
import os
import re
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
               "PPL llama.cpp (F32) | relative diff | PPL llama.cpp F16 | PPL llama.cpp Q8_0 | PPL rcpu Q8_0 |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for c in configs:
        name, ratio, method = c.split(":")[:3]
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
        if "dupkv" in name or (len(c.split(":")) > 3 and "duplicate_kv" in c.split(":")[3]):
            label += ", GQA fix duplicate_kv"
        out.append(f"| {label} | {s['arch']} | {s['params']:,} ({s['removed']:.1f}% removed), {s['written']:,} written | "
                   f"{float(cmp_['max_abs']):.2e} | {float(cmp_['rel']):.2e} | {float(cmp_['argmax_agree']) * 100:.2f}% | "
                   f"{pr:.4f} | {pl:.4f} | {rel:.1e} | {f16:.4f} | {q8:.4f} | {q8r:.4f} |")
    out.append("")
    out.append(f"Largest relative perplexity difference between llama.cpp and rcpu on the F32 exports: {worst:.1e} "
               "(the issue's bound: 1e-3). `max |logit diff|` is over every position and vocabulary entry; "
               "`/ RMS logit` divides it by the RMS of llama.cpp's logits. `written` counts the parameters in the file, the zero query heads or KV copies that make the attention uniform included. The F16 and Q8_0 columns are llama.cpp "
               "on the F16 / Q8_0 exports (F32 KV cache); rcpu's Q8_0 column is rcpu-ppl on the same Q8_0 file "
               "(it dequantizes the weights; llama.cpp also quantizes the activations to 8 bits, so the two differ "
               "by more than rounding on quantized files). Without `--round-to`, Q8_0 exports write the weights "
               "whose rows are not a multiple of 32 (down_proj of the pruned layers) in F16.\n")
    return "\n".join(out)


def speed(d, windows):
    data = json.load(open(os.path.join(d, "speed.json")))
    meta, rows = data["meta"], data["results"]
    by = {os.path.basename(e["model"])[:-5]: e for e in rows}  # name without .gguf
    out = []
    out.append("# Is the pruned model faster? llama.cpp on rcpu's exports\n")
    out.append(
        "Written by `tools/reference_llamacpp/prove_exports.sh speed` (development only; it regenerates this page "
        "from its measurements in build-llamacpp/exports). SmolLM2-135M-Instruct (30 layers, d 576, 9 query / 3 KV "
        "heads of 64, ffn 1536, vocabulary 49152 with tied embeddings) pruned by `rcpu prune-model --method rotation` "
        "at 10/20/30% of the heads and MLP channels of every layer (`--gqa-rule query_heads`, the pipeline's default), "
        "written F16 and Q8_0, with and without `--round-to 64`, against the dense model exported the same way "
        f"(`--ratio 0`). llama.cpp through llama-cpp-python {meta['llama_cpp_python']}: prompt processing of "
        f"{meta['pp_tokens']} tokens (pp{meta['pp_tokens']}) and generation of {meta['tg_tokens']} tokens "
        f"(tg{meta['tg_tokens']}), {meta['threads']} threads, {meta['kv_cache']} KV cache, each measurement in its "
        f"own process, the {len(rows)} models interleaved round by round, medians of {meta['repeats']} rounds "
        f"[min, max]. Machine: {meta['machine']}; {meta['date']}; CPU time of other processes during the "
        f"measurements: at most {meta['max_other_cores']:.2f} cores.\n")

    def cfg(name):
        parts = name.split("-")
        if parts[0] == "dense":
            return "dense", 0, False, parts[-1]
        return "rotation", int(parts[1]), "r64" in parts, parts[-1]

    out.append(f"| model | type | kept heads (written) / channels per layer | file MiB | pp{meta['pp_tokens']} tok/s "
               f"| vs dense | tg{meta['tg_tokens']} tok/s | vs dense | peak RSS MiB |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for t in ("f16", "q8_0"):
        dense = by[f"dense-{t}"]
        for name in sorted((n for n in by if n.endswith("-" + t)), key=lambda n: (cfg(n)[1], cfg(n)[2], "dupkv" in n)):
            e = by[name]
            kind, r, rounded, _ = cfg(name)
            log = os.path.join(d, (name[: -len(t) - 1]) + ".log")
            units = ""
            if os.path.exists(log):
                txt = open(log).read()
                m = re.search(r"^\s+0\s+(\d+)\((\d+)\)\s+(\d+)\((\d+)\)\s+(\d+)", txt, re.M)
                if m:
                    units = f"{m.group(1)} ({m.group(3)}) / {m.group(5)}"
            label = "dense" if kind == "dense" else f"rotation {r}%" + (", round-to 64" if rounded else "") + \
                (", GQA fix duplicate_kv" if "dupkv" in name else "")
            spp = e["pp"]["median"] / dense["pp"]["median"]
            stg = e["tg"]["median"] / dense["tg"]["median"]
            out.append(f"| {label} | {t.upper()} | {units} | {e['file_mib']:.1f} | {e['pp']['median']:.1f} "
                       f"[{e['pp']['min']:.1f}, {e['pp']['max']:.1f}] | x{spp:.3f} | {e['tg']['median']:.1f} "
                       f"[{e['tg']['min']:.1f}, {e['tg']['max']:.1f}] | x{stg:.3f} | "
                       f"{max(e['pp_peak_rss_mib']['max'], e['tg_peak_rss_mib']['max']):.0f} |")
            if kind != "dense":
                verdicts.append((label, t, spp, stg, e, dense))
    out.append("")
    out.append("## What it shows\n")
    unr = [v for v in verdicts if "round-to" not in v[0] and "duplicate_kv" not in v[0]]
    rnd = [v for v in verdicts if "round-to" in v[0]]
    unr_slow = [v for v in unr if v[4]["pp"]["max"] < v[5]["pp"]["min"]]
    rnd_fast = [v for v in rnd if v[4]["pp"]["min"] > v[5]["pp"]["max"]]
    if unr and rnd:
        lo = min(v[2] for v in unr)
        hi = max(v[2] for v in unr)
        chans = []
        for r in (10, 20, 30):
            log = os.path.join(d, f"rotation-{r}.log")
            m = re.search(r"^\s+0\s+\d+\(\d+\)\s+\d+\(\d+\)\s+(\d+)", open(log).read(), re.M) \
                if os.path.exists(log) else None
            if m:
                chans.append(m.group(1))
        out.append(f"**In short**: pruned to the sizes the ratio gives ({', '.join(chans)} channels: not multiples of the "
                   f"kernels' blocks), the model is *slower* at prompt processing in {len(unr_slow)} of {len(unr)} cases "
                   f"(x{lo:.2f} to x{hi:.2f} of the dense speed) although it is smaller; rounded with `--round-to 64` "
                   f"it is faster in {len(rnd_fast)} of {len(rnd)} cases (up to x{max(v[2] for v in rnd):.2f} at prompt "
                   f"processing and x{max(v[3] for v in rnd):.2f} at generation). Q8_0 runs without llama.cpp's AMX / "
                   "repacked kernels on this machine (they crash here, see the extra bufts column), F16 with them: "
                   "compare within a type.\n")
    out.append("- A change counts as real here only when every round of one model beats every round of the other "
               "(min of one above max of the other); otherwise it is listed as no measurable change.")
    for what, key in (("Prompt processing", "pp"), ("Generation", "tg")):
        faster, slower, same = [], [], []
        for label, t, spp, stg, e, dense in verdicts:
            ratio = spp if key == "pp" else stg
            item = f"{label} {t.upper()} x{ratio:.2f}"
            if e[key]["min"] > dense[key]["max"]:
                faster.append(item)
            elif e[key]["max"] < dense[key]["min"]:
                slower.append(item)
            else:
                same.append(item)
        out.append(f"- {what}: faster: " + (", ".join(faster) or "none") + "; **slower**: " + (", ".join(slower) or "none") +
                   "; **no measurable change**: " + (", ".join(same) or "none") + ".")
    heads = []
    for r in (10, 20, 30):
        log = os.path.join(d, f"rotation-{r}.log")
        if os.path.exists(log):
            m = re.search(r"^\s+0\s+(\d+)\((\d+)\)\s+(\d+)\((\d+)\)", open(log).read(), re.M)
            if m:
                heads.append(f"{r}%: {m.group(1)} heads kept, {m.group(3)} written")
    err = open(os.path.join(d, "dense.err")).read()
    dm = re.search(r"d (\d+), heads (\d+)/(\d+) \(kv\), ffn (\d+), vocab (\d+)", err)
    pm = re.search(r"parameters (\d+) ->", open(os.path.join(d, "dense.log")).read())
    if dm and pm:
        emb = int(dm.group(1)) * int(dm.group(5))
        out.append(f"- Attention (layer 0; every layer alike): {'; '.join(heads)}. With `query_heads` the "
                   f"{dm.group(2)} heads in {dm.group(3)} KV groups lose heads from unequal groups, llama.cpp needs "
                   "equal groups, and the cheapest exact fix pads them back with zero heads, so the attention of the "
                   "file is the dense one. Every change in speed comes from the MLP channels; the embedding, which "
                   f"is also the output head ({emb / 1e6:.1f}M of the {int(pm.group(1)) / 1e6:.1f}M parameters, and the "
                   f"{dm.group(5)}-wide output product of every token), is not pruned at all.")

    out.append("\n## What rounding costs\n")
    out.append(f"rcpu's perplexity of the F32 exports on {windows} evenly spaced windows of WikiText-2 (rcpu-ppl "
               f"`--windows {windows}`), kept MLP channels as written:\n")
    out.append("| ratio | channels kept | PPL | with --round-to 64: channels | PPL | change |")
    out.append("|---|---|---|---|---|---|")
    for r in (10, 20, 30):
        try:
            a = float(result(os.path.join(d, f"rotation-{r}.ppl.txt"))["ppl"])
            b = float(result(os.path.join(d, f"rotation-{r}-r64.ppl.txt"))["ppl"])
        except (OSError, SystemExit):
            continue
        kept = []
        for n in (f"rotation-{r}", f"rotation-{r}-r64"):
            log = os.path.join(d, n + ".log")
            m = re.search(r"^\s+0\s+\d+\(\d+\)\s+\d+\(\d+\)\s+(\d+)", open(log).read(), re.M) \
                if os.path.exists(log) else None
            kept.append(m.group(1) if m else "?")
        ca, cb = kept
        out.append(f"| {r}% | {ca} | {a:.3f} | {cb} | {b:.3f} | {100 * (b - a) / a:+.2f}% |")
    out.append("\n## The measurements\n")
    out.append(open(os.path.join(d, "speed.md")).read().strip())
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if sys.argv[1] == "prove":
        print(prove(sys.argv[2], int(sys.argv[3]), sys.argv[4:]))
    else:
        sys.stdout.write(speed(sys.argv[2], int(sys.argv[3])))
