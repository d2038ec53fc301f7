#!/usr/bin/env python3
"""llama.cpp's speed on GGUF models, through PyPI llama-cpp-python. Development only, never run in CI
(needs the venv from tools/reference_llamacpp/setup.sh).

    build-llamacpp/venv/bin/python tools/reference_llamacpp/bench.py MODEL.gguf [MODEL2.gguf ...] \
        --threads 2 --repeats 5 --out results.json [--md results.md]

Two measurements, in the spirit of llama-bench's pp512 and tg128:
  pp  prompt processing: one Llama.eval() of --pp (512) seeded random token ids, n_ctx 1024,
      n_batch 512, after one untimed warm-up eval of the same ids (the context is reset in between);
  tg  generation: an untimed prompt of --prompt (16) tokens, then --tg (128) evals of one token each
      (seeded random ids fed back, no sampling: the decode step alone), timed together.
Tokens/s = tokens / wall seconds of the timed part. The KV cache has llama.cpp's default type (F16, as
users run it; the oracle checks in logits.py use F32 instead); flash attention is off (llama-cpp-python's
default; --flash-attn turns it on). --extra-bufts auto (default) keeps llama.cpp's AMX / CPU_REPACK
weight buffers unless a probe run (8 tokens) crashes with them, as this version's AMX path does on AMX
CPUs (see _llama.py); the table says which was used. Every measurement runs in a fresh subprocess
(python + llama_cpp import + model load are not timed); the models are interleaved round by round
(round r: pp and tg of model 1, then of model 2, ...), so slow drifts of the machine hit every model
alike. Reported: median and min/max over --repeats rounds, file size, each subprocess's peak RSS
(os.wait4's ru_maxrss: python, the mmapped weights it touched, the KV cache and compute buffers), and
the CPU time other processes used meanwhile (/proc/stat; a warning when the CPUs were shared: llama.cpp's
OpenMP threads spin, and on 2 busy cores 2 threads ran 3-6x slower than on an idle machine).

Prints a markdown table (also to --md) and writes every run to --out (JSON).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def child(args):
    """One measurement in this process; prints one JSON line."""
    import numpy as np
    import llama_cpp
    from _llama import open_llama

    t_load = time.perf_counter()
    llm = open_llama(args.model, extra_bufts=args.extra_bufts == "on", n_ctx=args.n_ctx, n_batch=args.n_batch,
                     n_threads=args.threads, n_threads_batch=args.threads, flash_attn=args.flash_attn, verbose=False)
    t_load = time.perf_counter() - t_load
    vocab = llm.n_vocab()
    rng = np.random.default_rng(args.seed)
    res = {"kind": args.child, "load_seconds": t_load, "n_vocab": vocab}
    if args.child == "probe":  # a batch of 8 tokens: does the weights' kernel run at all?
        llm.eval(rng.integers(0, vocab, size=8).tolist())
        res.update(tokens=8, seconds=1.0)
    elif args.child == "pp":
        ids = rng.integers(0, vocab, size=args.pp).tolist()
        llm.eval(ids)  # warm-up: pages the weights in, allocates the compute buffers
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        dt = time.perf_counter() - t
        res.update(tokens=args.pp, seconds=dt)
    else:
        ids = rng.integers(0, vocab, size=args.prompt + args.tg).tolist()
        llm.eval(ids[:args.prompt])
        t = time.perf_counter()
        for tok in ids[args.prompt:]:
            llm.eval([tok])
        dt = time.perf_counter() - t
        res.update(tokens=args.tg, seconds=dt)
    res["tokens_per_second"] = res["tokens"] / res["seconds"]
    res["llama_cpp_version"] = llama_cpp.__version__
    try:
        res["system_info"] = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    except Exception:  # noqa: BLE001 - informational only
        res["system_info"] = ""
    print("BENCH " + json.dumps(res), flush=True)


def run_child(args, model, kind, extra_bufts, check=True):
    cmd = [sys.executable, os.path.abspath(__file__), model, "--child", kind, "--threads", str(args.threads),
           "--pp", str(args.pp), "--tg", str(args.tg), "--prompt", str(args.prompt), "--seed", str(args.seed),
           "--n-ctx", str(args.n_ctx), "--n-batch", str(args.n_batch), "--extra-bufts", extra_bufts]
    if args.flash_attn:
        cmd.append("--flash-attn")
    busy0, w0 = busy_cpu_seconds(), time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None if check else subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    p.stdout.close()
    _, status, ru = os.wait4(p.pid, 0)
    busy1, wall = busy_cpu_seconds(), time.perf_counter() - w0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        if not check:
            return None
        sys.exit(f"bench.py: {kind} on {model} failed (exit {p.returncode})")
    line = [ln for ln in out.splitlines() if ln.startswith("BENCH ")][-1]
    res = json.loads(line[len("BENCH "):])
    res["peak_rss_mib"] = ru.ru_maxrss / 1024.0  # Linux: KiB
    # CPU time of everything else on the machine while the child ran, in cores (includes the short
    # python start of the child's parent; 0 on an idle machine)
    res["other_cores"] = (None if busy0 is None or busy1 is None
                          else max(0.0, (busy1 - busy0 - ru.ru_utime - ru.ru_stime) / wall))
    return res


def busy_cpu_seconds():
    """Seconds of CPU time the whole machine has spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="write the results as JSON")
    p.add_argument("--md", help="also write the markdown table to this file")
    p.add_argument("--pp", type=int, default=512, help="prompt tokens (default 512)")
    p.add_argument("--tg", type=int, default=128, help="generated tokens (default 128)")
    p.add_argument("--prompt", type=int, default=16, help="untimed prompt before generation (default 16)")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--extra-bufts", choices=["auto", "on", "off"], default="auto",
                   help="llama.cpp's AMX / CPU_REPACK weight buffers: on (llama.cpp's default), off, or auto "
                        "(default): on unless a probe run crashes, as the AMX path does in this version on AMX "
                        "CPUs (see _llama.py)")
    p.add_argument("--flash-attn", action="store_true", help="flash attention on (llama-cpp-python's default: off)")
    p.add_argument("--child", choices=["pp", "tg", "probe"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.model = args.models[0]
        child(args)
        return
    if args.pp > args.n_batch or args.pp > args.n_ctx or args.prompt + args.tg > args.n_ctx:
        sys.exit("bench.py: --pp must fit n_batch and n_ctx, --prompt + --tg must fit n_ctx")

    models = [os.path.abspath(m) for m in args.models]
    for m in models:
        if not os.path.isfile(m):
            sys.exit(f"bench.py: no file {m}")
    runs = {m: {"pp": [], "tg": []} for m in models}
    t0 = time.time()
    extra = {}
    for m in models:
        if args.extra_bufts == "auto":
            ok = run_child(args, m, "probe", "on", check=False) is not None
            extra[m] = "on" if ok else "off"
            if not ok:
                print(f"bench.py: {os.path.basename(m)}: llama.cpp crashed with its extra weight buffer types "
                      "(AMX / CPU_REPACK); measuring without them", file=sys.stderr, flush=True)
        else:
            extra[m] = args.extra_bufts
    for r in range(args.repeats):
        for m in models:
            for kind in ("pp", "tg"):
                res = run_child(args, m, kind, extra[m])
                runs[m][kind].append(res)
                oc = "n/a" if res["other_cores"] is None else f"{res['other_cores']:.2f}"
                print(f"bench.py: round {r + 1}/{args.repeats} {os.path.basename(m)} {kind}: "
                      f"{res['tokens_per_second']:.1f} tok/s, peak RSS {res['peak_rss_mib']:.0f} MiB, "
                      f"other processes {oc} cores",
                      file=sys.stderr, flush=True)
    first = runs[models[0]]["pp"][0]
    others = [x["other_cores"] for m in models for k in ("pp", "tg") for x in runs[m][k]
              if x["other_cores"] is not None]
    busy = max(others) if others else None
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_name()})",
        "python": platform.python_version(),
        "llama_cpp_python": first["llama_cpp_version"],
        "system_info": first["system_info"],
        "threads": args.threads, "repeats": args.repeats, "pp_tokens": args.pp, "tg_tokens": args.tg,
        "tg_prompt": args.prompt, "n_ctx": args.n_ctx, "n_batch": args.n_batch, "seed": args.seed,
        "kv_cache": "llama.cpp default (F16)", "flash_attn": args.flash_attn, "extra_bufts_option": args.extra_bufts,
        "wall_seconds": time.time() - t0, "max_other_cores": busy,
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    }
    results = []
    for m in models:
        e = {"model": m, "file_mib": os.path.getsize(m) / 2**20, "n_vocab": runs[m]["pp"][0]["n_vocab"],
             "extra_bufts": extra[m] + (" (probe crashed with on)" if args.extra_bufts == "auto" and extra[m] == "off"
                                        else "")}
        for kind in ("pp", "tg"):
            e[kind] = summary([x["tokens_per_second"] for x in runs[m][kind]])
            e[kind + "_peak_rss_mib"] = summary([x["peak_rss_mib"] for x in runs[m][kind]])
            e[kind + "_load_seconds"] = summary([x["load_seconds"] for x in runs[m][kind]])
            e[kind + "_other_cores"] = [x["other_cores"] for x in runs[m][kind]]
        results.append(e)

    lines = [
        f"# llama.cpp speed (llama-cpp-python {meta['llama_cpp_python']}), {args.threads} threads, "
        f"{args.repeats} interleaved rounds",
        "",
        f"- date: {meta['date']}; machine: {meta['machine']}; python {meta['python']}",
        f"- pp{args.pp}: one eval of {args.pp} seeded random tokens (n_ctx {args.n_ctx}, n_batch {args.n_batch}) "
        f"after a warm-up eval; tg{args.tg}: {args.tg} one-token evals after a {args.prompt}-token prompt, "
        "no sampling",
        f"- KV cache: llama.cpp's default F16 (as users run it), flash attention "
        f"{'on' if args.flash_attn else 'off (llama-cpp-python default)'}; each measurement in a fresh subprocess",
        "- extra bufts: llama.cpp's AMX / CPU_REPACK weight buffers (on is llama.cpp's default; off where "
        "the AMX path crashed, see tools/reference_llamacpp/_llama.py)",
        f"- llama.cpp system info: {meta['system_info']}",
        "- other processes' CPU use during the measurements (cores, from /proc/stat minus the child's own): "
        + ("n/a" if busy is None else f"max {busy:.2f}")
        + (" -- WARNING: the CPUs were shared; llama.cpp's spinning OpenMP threads then slow down several-fold, "
           "rerun on an idle machine" if busy is not None and busy > 0.2 else ""),
        "",
        f"| model | file MiB | pp{args.pp} tok/s median [min, max] | tg{args.tg} tok/s median [min, max] "
        "| peak RSS MiB (pp / tg) | extra bufts |",
        "|---|---|---|---|---|---|",
    ]
    for e in results:
        pp, tg = e["pp"], e["tg"]
        lines.append(
            f"| {os.path.basename(e['model'])} | {e['file_mib']:.1f} | {pp['median']:.1f} [{pp['min']:.1f}, "
            f"{pp['max']:.1f}] | {tg['median']:.2f} [{tg['min']:.2f}, {tg['max']:.2f}] | "
            f"{e['pp_peak_rss_mib']['max']:.0f} / {e['tg_peak_rss_mib']['max']:.0f} | {extra[e['model']]} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
            f.write("\n")
        print(f"bench.py: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
