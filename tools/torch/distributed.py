#!/usr/bin/env python3
"""Calibration statistics from several processes with torch.distributed, against one process.

Development only (torch and transformers: the venv of tools/torch/setup.sh):

    python tools/torch/distributed.py --model SmolLM2-135M-Instruct.Q4_1.gguf \
        --text ../shared/data/wikitext-2-raw-test.txt [--ranks 2] [--out tools/torch/results/distributed.md]

Each of --ranks processes (gloo backend, this machine) runs the dense model on its share of the 128
calibration windows of docs/results.md (rank r: windows [r n / R, (r + 1) n / R)), with forward
pre-hooks on every layer's o_proj and down_proj feeding rcpu.Statistics; rcpu.distributed.all_reduce
combines them (sums and Gram summed, m2 by Statistics.merge's rule). Rank 0 then collects the same
statistics in one process from all windows and compares every quantity, and the layer that
rcpu.prune_layer makes from each (the rotation at --ratio).
"""
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "reference_transformers"))
sys.path.insert(0, here)
import compare  # noqa: E402
import prune_smollm2  # noqa: E402  (the calibration windows)
import rcpu  # noqa: E402
import rcpu.distributed  # noqa: E402

QUANTITIES = ["sum", "abs_sum", "sq_sum", "m2", "mean", "variance", "gram"]


@torch.inference_mode()
def collect(model, windows, chunk):
    """Statistics at every layer's o_proj and down_proj inputs over `windows` (dense model, one pass)."""
    stats, hooks = [], []
    for layer in model.model.layers:
        so = rcpu.Statistics(layer.self_attn.o_proj.in_features, dtype="float32")
        sd = rcpu.Statistics(layer.mlp.down_proj.in_features, dtype="float32")
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a, s=so: s.update(a[0].reshape(-1, a[0].shape[-1]))))
        hooks.append(layer.mlp.down_proj.register_forward_pre_hook(lambda m, a, s=sd: s.update(a[0].reshape(-1, a[0].shape[-1]))))
        stats.append((so, sd))
    for b in range(0, windows.shape[0], chunk):
        model(windows[b:b + chunk])
    for h in hooks:
        h.remove()
    return stats


def worker(rank, args, port, queue):
    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks)
    meta, _, _, _, calib = prune_smollm2.tokens_and_calibration(args.model, args.text, args.calib_windows, args.seed)
    model = compare.load_model(args.model, meta)
    n = calib.shape[0]
    mine = calib[rank * n // args.ranks:(rank + 1) * n // args.ranks]
    t0 = time.perf_counter()
    local = collect(model, mine, args.chunk)
    dist.barrier()  # the all_reduce time below is the reduction's, not the wait for the other ranks
    t1 = time.perf_counter()
    combined = [tuple(rcpu.distributed.all_reduce(s) for s in pair) for pair in local]
    t2 = time.perf_counter()
    if rank == 0:
        ref = collect(model, calib, args.chunk)  # one process, every window
        t3 = time.perf_counter()
        worst = {q: 0.0 for q in QUANTITIES}
        tokens_equal, kept_equal, w_diff = True, True, 0.0
        hd = model.config.hidden_size // model.config.num_attention_heads
        for (co, cd), (ro, rd) in zip(combined, ref):
            for c, r in ((co, ro), (cd, rd)):
                tokens_equal &= c.tokens == r.tokens
                for q in QUANTITIES:
                    a, b = getattr(c, q), getattr(r, q)
                    worst[q] = max(worst[q], float(np.abs(a - b).max() / np.abs(b).max()))
        layers = list(model.model.layers)
        for l in sorted({0, len(layers) // 2, len(layers) - 1}):
            for lin, c, r, h in ((layers[l].self_attn.o_proj, combined[l][0], ref[l][0], hd),
                                 (layers[l].mlp.down_proj, combined[l][1], ref[l][1], None)):
                W = lin.weight.detach().double().numpy()
                pc = rcpu.prune_layer(W, c, ratio=args.ratio, head_dim=h)
                pr = rcpu.prune_layer(W, r, ratio=args.ratio, head_dim=h)
                kept_equal &= list(pc.kept_units) == list(pr.kept_units)
                w_diff = max(w_diff, float(np.abs(pc.weight - pr.weight).max() / np.abs(pr.weight).max()))
        queue.put(dict(worst=worst, tokens=combined[0][0].tokens, tokens_equal=tokens_equal, kept_equal=kept_equal,
                       w_diff=w_diff, t_collect=t1 - t0, t_reduce=t2 - t1, t_ref=t3 - t2, per_rank=mine.shape[0]))
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--calib-windows", type=int, default=128)
    ap.add_argument("--seed", type=int, default=20251009)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--tolerance", type=float, default=1e-12)
    ap.add_argument("--out")
    args = ap.parse_args()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    started = datetime.datetime.now(datetime.timezone.utc)
    mp.start_processes(worker, args=(args, port, queue), nprocs=args.ranks, start_method="spawn")
    r = queue.get()
    ok = r["tokens_equal"] and r["kept_equal"] and max(r["worst"].values()) <= args.tolerance
    lines = [
        f"# rcpu.distributed: calibration statistics from {args.ranks} processes (torch.distributed, gloo) against one",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} CPUs ({compare._cpu_name()}); "
        f"torch {torch.__version__}, rcpu {rcpu.__version__}",
        f"- command: python tools/torch/distributed.py {' '.join(compare._portable(os.path.abspath(a) if os.path.exists(a) else a) for a in sys.argv[1:])}",
        f"- {os.path.basename(args.model)}, dense model; {args.calib_windows} calibration windows of {prune_smollm2.SEQ} tokens "
        f"(docs/results.md's: seed {args.seed}), {r['per_rank']} on rank 0; statistics (float32 blocks, double sums, full "
        f"Gram) at the o_proj and down_proj inputs of every layer; {r['tokens']} tokens combined",
        "",
        "| quantity | largest max abs(all_reduce - one process) / max abs(one process), over 60 modules |",
        "|---|---|",
        f"| tokens | {'equal' if r['tokens_equal'] else 'DIFFERENT'} |",
    ]
    lines += [f"| {q} | {v:.2e} |" for q, v in r["worst"].items()]
    lines += [
        "",
        f"- rcpu.prune_layer (rotation, {100 * args.ratio:.0f}%) on the o_proj and down_proj of layers 1, 16 and 30 from both: kept units "
        f"{'identical' if r['kept_equal'] else 'DIFFERENT'}; weights differ by at most {r['w_diff']:.2e} (relative to the largest)",
        f"- time on rank 0: hooks + statistics on its windows {r['t_collect']:.1f} s; all_reduce of the 60 statistics "
        f"{r['t_reduce']:.2f} s; one-process reference {r['t_ref']:.1f} s",
        "",
        f"Within {args.tolerance:g}: {'yes' if ok else 'NO'}.",
    ]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
