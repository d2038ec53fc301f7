#!/usr/bin/env python3
"""The RCPU pipeline written as PyTorch pruning code: transformers model, forward hooks, rcpu.prune_layer.

Development only (torch and transformers: the venv of tools/torch/setup.sh). It is the proof that the
Python module drops into the code pruning researchers write, and that it gives the C++ pipeline's
results:

    python tools/torch/prune_smollm2.py --model SmolLM2-135M-Instruct.Q4_1.gguf \
        --text ../shared/data/wikitext-2-raw-test.txt --methods flap,rotation --ratio 0.2 \
        [--results docs/results] [--windows N] [--threads 1] [--out tools/torch/results/prune_smollm2.md]

What it does (the protocol of docs/results.md, rcpu/model/pipeline.hpp, written again in Python):
 1. loads the GGUF with transformers (dequantized to float32) and tokenizes the WikiText-2 test split as
    the paper's evaluation does, with the transformers GGUF tokenizer (SmolLM2's pre-tokenizer, as in
    tools/reference_transformers/compare.py); halves of tokens;
 2. calibration: 128 windows of 128 tokens drawn from the first half with rcpu's splitmix64 sampler
    (seed 20251009), so that both sides calibrate on the same tokens;
 3. layer by layer: the dense layer runs on the hidden states of the already-pruned layers; forward
    pre-hooks on o_proj and down_proj feed their inputs to rcpu.Statistics; rcpu.prune_layer prunes
    o_proj's heads and down_proj's channels and compensates them; the layer's modules are replaced by
    smaller ones (q rows, k/v rows duplicated per kept query head, gate/up rows); the pruned layer gives
    the next layer's inputs;
 4. perplexity on the non-overlapping 128-token windows of the second half (all 1190 by default), and the
    C++ study's figure for the same run read from docs/results/runs.csv, with their ratio; per layer,
    the output errors of the compensation against the C++ run's (docs/results/layers.csv).
"""
import argparse
import csv
import datetime
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference_transformers"))
import compare  # noqa: E402  (loader, tokenizer, WikiText protocol text and perplexity of the reference check)
import rcpu  # noqa: E402

SEQ = 128
MASK = (1 << 64) - 1

# method -> (score, compensation, key of the C++ study's run); as rcpu::model::method_options.
METHODS = {
    "flap": ("flap", "bias", "flap"),
    "rotation": ("rcpu", "rotation", "rcpu_rotation"),
    "rotation_scale": ("rcpu", "rotation_scale", "rcpu_rotation_scale"),
    "rotation_bias": ("rcpu", "rotation_bias", "rcpu_rotation_bias"),
    "none": ("rcpu", "none", "rcpu_none"),
    "wanda_sp": ("wanda_sp_rcpu", "none", "wanda_sp"),
}


def random_windows(first, last, window, count, seed):
    """rcpu::model::random_windows: splitmix64, uniform starts by rejection (no modulo bias)."""
    state = seed & MASK

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    n = last - first - window + 1
    limit = MASK - (MASK % n)
    out = []
    for _ in range(count):
        x = nxt()
        while x >= limit:
            x = nxt()
        out.append(first + x % n)
    return out


def tokens_and_calibration(model_path, text_path, count, seed):
    """The WikiText text in transformers' tokens of the GGUF and `count` calibration windows of SEQ tokens from
    its first half, as docs/results.md draws them. Returns (meta, tokenizer note, ids, starts, windows)."""
    meta = compare.gguf_meta(model_path)
    _, tok, tok_note = compare.load_tokenizers(model_path, meta)
    ids = compare.hf_ids(tok, compare.protocol_text(text_path))
    starts = random_windows(0, len(ids) // 2, SEQ, count, seed)
    calib = torch.tensor([ids[s:s + SEQ] for s in starts], dtype=torch.long)
    return meta, tok_note, ids, starts, calib


def as_linear(weight, bias):
    """A float32 nn.Linear holding `weight` (d_out x d_in, numpy) and `bias` (numpy or None)."""
    w = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(w)
        if bias is not None:
            lin.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    return lin


def rows(lin, keep):
    """nn.Linear with only the output rows `keep` (a LongTensor) of `lin`."""
    b = None if lin.bias is None else lin.bias.detach()[keep].numpy()
    return as_linear(lin.weight.detach()[keep].numpy(), b)


@torch.inference_mode()
def run_layer(layer, h, pos, chunk):
    """The decoder layer on hidden states h (windows x SEQ x d), chunk windows at a time: causal, no cache."""
    out = torch.empty_like(h)
    for b in range(0, h.shape[0], chunk):
        cos, sin = pos
        n = min(chunk, h.shape[0] - b)
        out[b:b + n] = layer(h[b:b + n], attention_mask=None, position_embeddings=(cos.expand(n, -1, -1), sin.expand(n, -1, -1)))
    return out


def prune_model(model, calib_ids, method, ratio, chunk, log):
    """The RCPU pipeline on `model` in place (sequential statistics: the pruned prefix feeds each layer)."""
    score, compensation, _ = METHODS[method]
    # run_layer passes no mask: causal only because sdpa makes a missing mask causal (eager would not).
    if model.config._attn_implementation != "sdpa":
        raise SystemExit(f"prune_model: needs sdpa attention, the model uses {model.config._attn_implementation}")
    gram = compensation not in ("none", "bias")  # as needs_gram(): only the rotation and ridges read the Gram
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    group = cfg.num_attention_heads // cfg.num_key_value_heads
    per_layer = []
    with torch.inference_mode():
        h = model.model.embed_tokens(calib_ids)
        pos = model.model.rotary_emb(h[:1], torch.arange(SEQ).unsqueeze(0))
    t_all = time.perf_counter()
    for l, layer in enumerate(model.model.layers):
        t0 = time.perf_counter()
        attn, mlp = layer.self_attn, layer.mlp
        so = rcpu.Statistics(attn.o_proj.in_features, gram=gram, dtype="float32")
        sd = rcpu.Statistics(mlp.down_proj.in_features, gram=gram, dtype="float32")
        # The hooks: what every PyTorch pruning code does, the block goes to rcpu as it lies (no copy).
        hooks = [attn.o_proj.register_forward_pre_hook(lambda m, a: so.update(a[0].reshape(-1, a[0].shape[-1]))),
                 mlp.down_proj.register_forward_pre_hook(lambda m, a: sd.update(a[0].reshape(-1, a[0].shape[-1])))]
        run_layer(layer, h, pos, chunk)  # the dense layer on the pruned prefix's outputs
        for k in hooks:
            k.remove()
        t1 = time.perf_counter()
        # o_proj: heads (uniform ratio; query heads anywhere, a KV head stays while one of its queries does).
        # Weights go in as float64 so that the compensation runs in double, as in the C++ pipeline.
        po = rcpu.prune_layer(attn.o_proj.weight.detach().double().numpy(), so, ratio=ratio, head_dim=hd,
                              score=score, compensation=compensation)
        heads = list(po.kept_units)
        if len(heads) < cfg.num_attention_heads:
            q_rows = torch.tensor(list(po.kept_columns))
            kv_rows = torch.tensor([(q // group) * hd + i for q in heads for i in range(hd)])
            attn.q_proj = rows(attn.q_proj, q_rows)
            attn.k_proj = rows(attn.k_proj, kv_rows)  # one KV head per kept query head: exact, uniform
            attn.v_proj = rows(attn.v_proj, kv_rows)
            attn.num_key_value_groups = 1
            attn.o_proj = as_linear(po.weight, po.bias)
        # down_proj: MLP channels.
        pd = rcpu.prune_layer(mlp.down_proj.weight.detach().double().numpy(), sd, ratio=ratio, score=score,
                              compensation=compensation)
        ch = torch.tensor(list(pd.kept_units))
        if len(ch) < mlp.down_proj.in_features:
            mlp.gate_proj = rows(mlp.gate_proj, ch)
            mlp.up_proj = rows(mlp.up_proj, ch)
            mlp.down_proj = as_linear(pd.weight, pd.bias)
        t2 = time.perf_counter()
        h = run_layer(layer, h, pos, chunk)  # the pruned layer feeds the next one
        t3 = time.perf_counter()
        per_layer.append(dict(layer=l, heads=len(heads), kv_heads=len({q // group for q in heads}), channels=len(ch), tokens=so.tokens,
                              attn=(po.report.before.relative_error, po.report.after.relative_error),
                              mlp=(pd.report.before.relative_error, pd.report.after.relative_error),
                              seconds=(t1 - t0, t2 - t1, t3 - t2)))
        log(f"  [{method}] layer {l + 1}/{len(model.model.layers)}: heads {len(heads)}/{cfg.num_attention_heads}, "
            f"channels {len(ch)}/{sd.channels}; o_proj err "
            f"{po.report.before.relative_error:.3g} -> {po.report.after.relative_error:.3g}; down_proj err "
            f"{pd.report.before.relative_error:.3g} -> {pd.report.after.relative_error:.3g}; "
            f"{t1 - t0:.1f} s dense + hooks, {t2 - t1:.2f} s rcpu, {t3 - t2:.1f} s pruned pass")
    return per_layer, time.perf_counter() - t_all


def read_csv(path, key):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["key"] == key]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True, help="WikiText-2 raw test split (../shared/data/wikitext-2-raw-test.txt)")
    ap.add_argument("--methods", default="flap,rotation", help="comma-separated: " + ", ".join(METHODS))
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--calib-windows", type=int, default=128)
    ap.add_argument("--seed", type=int, default=20251009)
    ap.add_argument("--windows", type=int, default=None, help="test windows, evenly spaced (default: all)")
    ap.add_argument("--dense", action="store_true", help="also evaluate the dense model")
    ap.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "results"),
                    help="the C++ study's CSV files (runs.csv, layers.csv)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=32, help="calibration windows per forward chunk")
    ap.add_argument("--batch", type=int, default=8, help="test windows per forward batch")
    ap.add_argument("--out", help="also write the results here (markdown)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    def log(s):
        print(s, file=sys.stderr, flush=True)

    meta, tok_note, ids, starts, calib = tokens_and_calibration(args.model, args.text, args.calib_windows, args.seed)
    half = len(ids) // 2
    second = ids[half:]
    total = len(second) // SEQ
    windows = compare.evenly(total, args.windows)
    started = datetime.datetime.now(datetime.timezone.utc)
    say(f"# rcpu from PyTorch: the RCPU pipeline on {os.path.basename(args.model)} with forward hooks and rcpu.prune_layer")
    say()
    say(f"- date: {started:%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} CPUs ({compare._cpu_name()}); "
        f"torch {torch.__version__} ({args.threads} thread(s)), transformers {compare.transformers.__version__}, rcpu {rcpu.__version__}")
    say(f"- command: python tools/torch/prune_smollm2.py {' '.join(compare._portable(os.path.abspath(a) if os.path.exists(a) else a) for a in sys.argv[1:])}")
    say(f"- tokens: {len(ids)} ({tok_note}); halves of {half} and {len(second)}; calibration {args.calib_windows} windows "
        f"of {SEQ} tokens from the first half (splitmix64, seed {args.seed}; first starts {starts[:4]}); test: "
        f"{len(windows)} of the {total} non-overlapping windows of the second half")
    say()
    say("| model | PPL (PyTorch + rcpu) | C++ pipeline (docs/results) | ratio | pruning (s) | evaluation (s) |")
    say("|---|---|---|---|---|---|")
    rows_out, layer_notes = [], []
    runs = os.path.join(args.results, "runs.csv")
    if args.dense:
        model = compare.load_model(args.model, meta)
        ppl, _, secs, _, _ = compare.hf_perplexity(model, second, windows, batch=args.batch)
        ref = read_csv(runs, "dense")
        cpp = float(ref[0]["test_ppl"]) if ref and int(ref[0]["test_windows"]) == len(windows) else None
        rows_out.append(("dense", ppl, cpp, 0.0, secs))
        say(f"| dense | {ppl:.4f} | {cpp if cpp is None else f'{cpp:.4f}'} | "
            f"{'' if cpp is None else f'{ppl / cpp:.5f}'} | | {secs:.0f} |")
        del model
    for method in args.methods.split(","):
        model = compare.load_model(args.model, meta)
        per_layer, secs_prune = prune_model(model, calib, method, args.ratio, args.chunk, log)
        ppl, _, secs, _, _ = compare.hf_perplexity(model, second, windows, batch=args.batch)
        key = f"{METHODS[method][2]}-r{100 * args.ratio:.1f}-wikitext{args.calib_windows}"
        ref = read_csv(runs, key)
        cpp = None
        if ref and args.seed == 20251009:
            r = ref[0]
            if int(r["test_windows"] or 0) == len(windows) and r["test_ppl"]:
                cpp = float(r["test_ppl"])
            elif args.windows == 48 and r["side_ppl"]:
                cpp = float(r["side_ppl"])
        # Parameters as the C++ pipeline counts them: a KV head shared by kept query heads once (this module
        # layout repeats it per query head, exactly; llama.cpp's export does the same with --gqa-fix duplicate_kv).
        params = sum(p.numel() for p in model.parameters())
        cfg, hd = model.config, model.config.hidden_size // model.config.num_attention_heads
        for p_l in per_layer:
            params -= 2 * (p_l["heads"] - p_l["kv_heads"]) * hd * cfg.hidden_size if p_l["heads"] < cfg.num_attention_heads else 0
        cpp_params = f" (C++: {ref[0]['params']})" if ref else ""
        say(f"| {method} at {100 * args.ratio:.0f}% ({params} parameters{cpp_params}) | {ppl:.4f} | "
            f"{'not in the study' if cpp is None else f'{cpp:.4f}'} | {'' if cpp is None else f'{ppl / cpp:.5f}'} | "
            f"{secs_prune:.0f} | {secs:.0f} |")
        rows_out.append((method, ppl, cpp, secs_prune, secs))
        cl = {int(r["layer"]): r for r in read_csv(os.path.join(args.results, "layers.csv"), key)}
        worst = [0.0, 0.0]
        same_shape = True
        for p in per_layer:
            c = cl.get(p["layer"])
            if c is None:
                continue
            same_shape &= int(c["heads"]) == p["heads"] and int(c["kv_heads"]) == p["kv_heads"] and int(c["channels"]) == p["channels"]
            for i, (name, v) in enumerate((("attn_err_after", p["attn"][1]), ("mlp_err_after", p["mlp"][1]))):
                if c[name]:
                    worst[i] = max(worst[i], abs(v - float(c[name])) / float(c[name]))
        if cl:
            layer_notes.append(f"- {method}: every layer keeps the C++ run's numbers of heads and channels: "
                               f"{'yes' if same_shape else 'NO'} (heads, KV heads, channels); " +
                               ("relative output error after compensation, per layer, against the C++ run's "
                                f"(layers.csv): largest relative difference o_proj {worst[0]:.2e}, down_proj {worst[1]:.2e}"
                                if any(c["attn_err_after"] for c in cl.values()) else
                                "the C++ run records no output errors for this method (no Gram)"))
        tp = [sum(p["seconds"][i] for p in per_layer) for i in range(3)]
        layer_notes.append(f"  time in the pipeline: dense passes with the hooks feeding rcpu.Statistics {tp[0]:.1f} s, "
                           f"rcpu.prune_layer {tp[1]:.1f} s, pruned passes {tp[2]:.1f} s")
        del model
    say()
    say("\n".join(layer_notes))
    ok = [abs(p / c - 1) <= 0.005 for _, p, c, _, _ in rows_out if c is not None]
    say()
    say(f"Within 0.5% of the C++ pipeline: {sum(ok)} of {len(ok)} models.")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
