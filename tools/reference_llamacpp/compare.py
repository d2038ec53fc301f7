#!/usr/bin/env python3
"""Compares llama.cpp's logits (logits.py --out, .npy) with rcpu's (rcpu-ppl --dump-logits: raw float32,
token-major, tokens x vocab). Development only, never run in CI; needs only numpy.

    python3 tools/reference_llamacpp/compare.py LLAMA_LOGITS.npy RCPU_LOGITS.f32 --vocab V \
        [--tokens TOKENS.txt --window 128 (--windows i,j,... | --first N | --spread N)]

Prints the max abs difference, the logits' scale (max |logit|, RMS over all logits of the reference),
max abs diff / RMS, the mean abs difference, and the share of positions whose argmax agrees. With --tokens
(and the same window selection that produced both files) it also prints both perplexities in rcpu's
protocol (token t+1 predicted from tokens 0..t of its window; exp of the mean cross-entropy).
The last line is machine-readable: RESULT max_abs=... rel=... argmax_agree=...
"""
import argparse
import math
import os
import sys

import numpy as np


def select_windows(total, args):
    if args.windows is not None:
        return [int(s) for s in args.windows.split(",") if s.strip()]
    if args.first is not None:
        return list(range(min(args.first, total)))
    if args.spread is not None:
        return list(range(total)) if args.spread >= total else [i * total // args.spread for i in range(args.spread)]
    return list(range(total))


def mean_nll(logits, ids, T):
    s, n = 0.0, 0
    for k in range(len(ids) // T):
        z = logits[k * T:(k + 1) * T - 1].astype(np.float64)
        y = ids[k * T + 1:(k + 1) * T]
        mx = z.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(z - mx).sum(axis=1))
        s += float((lse - z[np.arange(T - 1), y]).sum())
        n += T - 1
    return s / n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("llama", help="llama.cpp logits (.npy from logits.py)")
    p.add_argument("rcpu", help="rcpu logits (raw float32 from rcpu-ppl --dump-logits)")
    p.add_argument("--vocab", type=int, required=True)
    p.add_argument("--tokens", help="token ids, one per line (for the perplexities)")
    p.add_argument("--window", type=int, default=128)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--windows")
    g.add_argument("--first", type=int)
    g.add_argument("--spread", type=int)
    args = p.parse_args()

    a = np.load(args.llama, mmap_mode="r")
    V = args.vocab
    size = os.path.getsize(args.rcpu)
    if size % (4 * V):
        sys.exit(f"compare.py: {args.rcpu} has {size} bytes, not a multiple of 4 * vocab = {4 * V}")
    b = np.fromfile(args.rcpu, dtype=np.float32).reshape(-1, V)
    if a.ndim != 2 or a.shape[1] != V:
        sys.exit(f"compare.py: {args.llama} has shape {a.shape}, expected (tokens, {V})")
    if a.shape[0] != b.shape[0]:
        sys.exit(f"compare.py: {a.shape[0]} tokens in {args.llama}, {b.shape[0]} in {args.rcpu}")
    a = np.asarray(a, dtype=np.float32)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        print("compare.py: warning: non-finite logits", file=sys.stderr)

    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    max_abs = float(d.max())
    mean_abs = float(d.mean())
    where = np.unravel_index(int(d.argmax()), d.shape)
    scale_max = float(np.abs(a).max())
    rms = float(np.sqrt(np.mean(np.square(a.astype(np.float64)))))
    rel = max_abs / rms
    agree = int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
    n = a.shape[0]
    print(f"tokens x vocab: {n} x {V}")
    print(f"max |llama.cpp - rcpu| = {max_abs:.4e} (token {where[0]}, id {where[1]}), mean = {mean_abs:.4e}")
    print(f"scale (llama.cpp logits): max |logit| = {scale_max:.4f}, RMS = {rms:.4f}; "
          f"rcpu: max |logit| = {float(np.abs(b).max()):.4f}")
    print(f"max abs diff / RMS = {rel:.4e}; max abs diff / max |logit| = {max_abs / scale_max:.4e}")
    print(f"argmax agrees on {agree}/{n} positions ({100.0 * agree / n:.2f} %)")

    extra = ""
    if args.tokens:
        T = args.window
        with open(args.tokens) as f:
            tok = np.array([int(x) for x in f if x.strip()], dtype=np.int64)
        sel = select_windows(len(tok) // T, args)
        if len(sel) * T != n:
            sys.exit(f"compare.py: {len(sel)} windows x {T} tokens != {n} logit rows; give the same selection")
        ids = np.concatenate([tok[w * T:(w + 1) * T] for w in sel])
        na, nb = mean_nll(a, ids, T), mean_nll(b, ids, T)
        pa, pb = math.exp(na), math.exp(nb)
        print(f"perplexity ({len(sel)} windows of {T}): llama.cpp {pa:.6f} (nll {na:.8f}), rcpu {pb:.6f} "
              f"(nll {nb:.8f}); relative difference {100.0 * abs(pa - pb) / pb:.5f} %")
        extra = f" ppl_llama={pa:.6f} ppl_rcpu={pb:.6f}"
    print(f"RESULT max_abs={max_abs:.6e} rel={rel:.6e} argmax_agree={agree / n:.6f} mean_abs={mean_abs:.6e} "
          f"rms={rms:.6f} max_logit={scale_max:.6f}{extra}")


if __name__ == "__main__":
    main()
