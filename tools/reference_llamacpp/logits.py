#!/usr/bin/env python3
"""llama.cpp's logits (and perplexity) for given token ids, through PyPI llama-cpp-python.
Development only, never run in CI (needs the venv from tools/reference_llamacpp/setup.sh).

    build-llamacpp/venv/bin/python tools/reference_llamacpp/logits.py MODEL.gguf --tokens TOKENS.txt \
        --window 128 [--windows i,j,... | --first N | --spread N] --out LOGITS.npy [--ppl] [--threads 2]

TOKENS.txt holds one token id per line (rcpu-ppl --dump-tokens writes it). The stream is cut into
non-overlapping windows of --window tokens (a last partial window is dropped); each selected window is
evaluated as an independent sequence (the context is reset between windows, the KV cache cleared) with
Llama.eval(ids), n_ctx = n_batch = window, logits for every position. The KV cache is F32
(type_k = type_v = 0): with llama.cpp's default F16 cache the logits move by ~2e-2, too much for an
oracle check (--kv f16 selects it, to see the difference). --out writes float32 logits,
(windows * window) x vocab, windows in the order selected (the layout of rcpu-ppl --dump-logits with the
same selection, as .npy). llama.cpp's extra weight buffer types (AMX, CPU_REPACK) are off unless
--extra-bufts: the plain ggml kernels are the reference, and the AMX path crashes in this version on AMX
CPUs (see _llama.py). They do not apply to F32 weights anyway.

--ppl prints the perplexity in rcpu's protocol (include/rcpu/model/perplexity.hpp): in each window every
token t+1 (t = 0..window-2) is predicted from tokens 0..t, and PPL = exp(mean cross-entropy over all
predicted tokens of all selected windows). Window selection: --windows i,j,... explicit indices;
--first N the first N; --spread N N windows evenly spaced (rcpu-ppl --windows N: i * total / N);
none: all windows. The last line is machine-readable: RESULT ppl=... windows=... tokens=...
"""
import argparse
import math
import sys
import time

import numpy as np


def read_tokens(path):
    with open(path) as f:
        return np.array([int(line) for line in f if line.strip()], dtype=np.int64)


def select_windows(total, args):
    if args.windows is not None:
        sel = [int(s) for s in args.windows.split(",") if s.strip()]
    elif args.first is not None:
        sel = list(range(min(args.first, total)))
    elif args.spread is not None:
        sel = list(range(total)) if args.spread >= total else [i * total // args.spread for i in range(args.spread)]
    else:
        sel = list(range(total))
    for w in sel:
        if not 0 <= w < total:
            sys.exit(f"logits.py: window index {w} is outside [0, {total})")
    if not sel:
        sys.exit("logits.py: no window selected")
    return sel


def window_nll(logits, ids):
    """Sum of the cross-entropies of predicting ids[t+1] from logits[t], t = 0..T-2, in double
    (log-sum-exp with the max subtracted, as rcpu does)."""
    z = logits[:-1].astype(np.float64)
    mx = z.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(z - mx).sum(axis=1))
    return float((lse - z[np.arange(len(ids) - 1), ids[1:]]).sum())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--tokens", required=True, help="token ids, one per line (rcpu-ppl --dump-tokens)")
    p.add_argument("--window", type=int, default=128)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--windows", help="comma-separated window indices")
    g.add_argument("--first", type=int, help="the first N windows")
    g.add_argument("--spread", type=int, help="N windows evenly spaced (as rcpu-ppl --windows N)")
    p.add_argument("--out", help="write float32 logits (tokens x vocab) as .npy")
    p.add_argument("--ppl", action="store_true", help="print the perplexity (rcpu's protocol)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--extra-bufts", action="store_true",
                   help="let llama.cpp use its AMX / CPU_REPACK weight buffers (default: off, see _llama.py)")
    p.add_argument("--kv", choices=["f32", "f16"], default="f32",
                   help="KV cache type (default f32, for oracle checks; f16 is llama.cpp's default)")
    args = p.parse_args()
    if args.window < 2:
        sys.exit("logits.py: --window must be >= 2")
    if not args.out and not args.ppl:
        sys.exit("logits.py: nothing to do (give --out and/or --ppl)")

    import llama_cpp
    from _llama import open_llama

    tokens = read_tokens(args.tokens)
    T = args.window
    total = len(tokens) // T
    if total == 0:
        sys.exit(f"logits.py: {len(tokens)} tokens hold no whole window of {T}")
    sel = select_windows(total, args)

    kv = 0 if args.kv == "f32" else 1  # ggml_type: 0 = F32, 1 = F16
    llm = open_llama(args.model, extra_bufts=args.extra_bufts, n_ctx=T, n_batch=T, logits_all=True,
                     type_k=kv, type_v=kv, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    vocab = llm.n_vocab()
    if tokens.max() >= vocab or tokens.min() < 0:
        sys.exit(f"logits.py: token ids outside [0, {vocab})")
    print(f"logits.py: llama_cpp {llama_cpp.__version__}, {args.model}: vocab {vocab}; {len(sel)} of {total} "
          f"windows of {T} tokens, {args.kv.upper()} KV cache, {args.threads} threads, extra buffer types "
          f"{'on' if args.extra_bufts else 'off'}", file=sys.stderr)

    out = np.empty((len(sel) * T, vocab), dtype=np.float32) if args.out else None
    nll_sum, scored = 0.0, 0
    t0 = time.perf_counter()
    for k, w in enumerate(sel):
        ids = tokens[w * T:(w + 1) * T]
        llm.reset()  # n_tokens = 0: eval() clears the KV cache from position 0 on
        llm.eval(ids.tolist())
        lg = np.asarray(llm.scores[:T], dtype=np.float32)
        if lg.shape != (T, vocab):
            sys.exit(f"logits.py: got logits of shape {lg.shape}, expected {(T, vocab)}")
        if out is not None:
            out[k * T:(k + 1) * T] = lg
        if args.ppl:
            nll_sum += window_nll(lg, ids)
            scored += T - 1
    seconds = time.perf_counter() - t0
    if out is not None:
        np.save(args.out, out)
        print(f"logits.py: wrote {args.out} ({out.shape[0]} x {out.shape[1]} float32)", file=sys.stderr)
    tps = len(sel) * T / seconds if seconds > 0 else 0.0
    if args.ppl:
        nll = nll_sum / scored
        print(f"RESULT ppl={math.exp(nll):.6f} nll={nll:.8f} windows={len(sel)} of={total} tokens={len(sel) * T} "
              f"seconds={seconds:.3f} tokens_per_second={tps:.1f}")
    else:
        print(f"RESULT windows={len(sel)} of={total} tokens={len(sel) * T} seconds={seconds:.3f} "
              f"tokens_per_second={tps:.1f}")


if __name__ == "__main__":
    main()
