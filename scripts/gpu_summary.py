#!/usr/bin/env python3
"""Turns the JSON files of bench_cuda (Google Benchmark) into the markdown tables of docs/benchmarks.md.

Usage: gpu_summary.py OUT.md BENCH.json [BENCH.json ...]   (appends to OUT.md; missing or truncated
files are reported, not fatal). Used by scripts/gpu_check.sh.
"""
import json
import re
import sys

TARGET_LAYER_MS = 500.0  # issue 5: both sub-layers of one LLaMA-7B layer in under 0.5 s (float)
TARGET_GRAM_FRACTION = 0.5  # issue 5: Gram accumulation at >= 50% of the same-shape SGEMM rate


def load(path):
    try:
        with open(path) as f:
            return json.load(f), None
    except FileNotFoundError:
        return None, "missing (the run did not get that far)"
    except json.JSONDecodeError as e:
        return None, f"truncated or invalid JSON ({e}); the run was probably stopped by its timeout"


def base_name(name):
    name = re.sub(r"/iterations:\d+", "", name)
    return name.replace("/manual_time", "")


def field(parts, key):
    for p in parts:
        if p.startswith(key + ":"):
            return p.split(":", 1)[1]
    return ""


def ms(b):
    t = float(b.get("real_time", float("nan")))
    unit = b.get("time_unit", "ms")
    return t * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}.get(unit, 1.0)


def fmt(x, digits=3):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 100 or x == 0:
        return f"{x:.0f}" if abs(x) >= 100 else "0"
    return f"{x:.{digits}g}"


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    out_path, files = sys.argv[1], sys.argv[2:]
    benches, notes, context = [], [], None
    for path in files:
        data, err = load(path)
        if err:
            notes.append(f"- `{path.split('/')[-1]}`: {err}")
            continue
        context = context or data.get("context", {})
        benches.extend(data.get("benchmarks", []))

    lines = []
    if context:
        lines.append(f"Benchmark binary run on {context.get('date', '?')}, host `{context.get('host_name', '?')}`, "
                     f"{context.get('num_cpus', '?')} CPUs; library build type {context.get('library_build_type', '?')}.")
        lines.append("")
    errors = [b for b in benches if b.get("error_occurred")]
    benches = [b for b in benches if not b.get("error_occurred") and b.get("run_type", "iteration") == "iteration"]

    gemm = {}
    for b in benches:
        n = base_name(b["name"]).split("/")
        if n[0] == "gemm":
            gemm[(n[1], field(n, "d"), field(n, "N"))] = b

    gram = [b for b in benches if base_name(b["name"]).startswith("gram/")]
    if gram:
        lines += ["### Gram accumulation (DeviceStatistics::update, one row-major block)", "",
                  "| d | tokens | input | Gram | kernel | finite check | ms | TFLOP/s (GEMM-equiv.) | SGEMM TFLOP/s (same shape) | fraction of SGEMM |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for b in gram:
            n = base_name(b["name"]).split("/")
            acc, dtype, kernel = n[1], n[2], n[3]
            check = "off" if "nocheck" in n else "on"
            rate = b.get("TFLOPS_gemm_equiv")
            peak = b.get("sgemm_TFLOPS")
            frac = rate / peak if rate and peak else None
            mark = "" if frac is None else (" (target met)" if frac >= TARGET_GRAM_FRACTION else " (below 50%)")
            lines.append(f"| {field(n, 'd')} | {field(n, 'N')} | {dtype} | {acc} | {kernel} | {check} | {fmt(ms(b))} | "
                         f"{fmt(rate)} | {fmt(peak)} | {fmt(frac, 2)}{mark} |")
        for (kind, d, n), b in sorted(gemm.items()):
            lines.append(f"| {d} | {n} | ({kind.upper()} baseline) | | | | {fmt(ms(b))} | {fmt(b.get('TFLOPS'))} | | |")
        lines.append("")

    pro = [b for b in benches if base_name(b["name"]).startswith("procrustes/")]
    if pro:
        lines += ["### Procrustes rotation of a d x d matrix", "",
                  "| d | rank | matrix | route | solve in | ms | ‖QᵀQ − I‖_F | \\|⟨Q, M⟩ − trace\\| / trace |",
                  "|---|---|---|---|---|---|---|---|"]
        for b in sorted(pro, key=lambda b: (int(field(base_name(b["name"]).split("/"), "d") or 0), ms(b))):
            n = base_name(b["name"]).split("/")
            lines.append(f"| {field(n, 'd')} | {field(n, 'rank')} | {n[1]} | {n[2]} | {n[3]} | {fmt(ms(b))} | "
                         f"{fmt(b.get('orth_err'), 2)} | {fmt(b.get('trace_rel_err'), 2)} |")
        lines.append("")

    llama = [b for b in benches if base_name(b["name"]).startswith("llama7b/")]
    if llama:
        lines += ["### One LLaMA-7B layer from statistics (prune 20% + rotation + report)", "",
                  "o_proj 4096x4096 (32 heads of 128, 6 removed), down_proj 4096x11008 (2201 channels removed), "
                  "statistics of 16384 tokens already on the device.", "",
                  "| weights | part | statistics | route | ms | relative error after (o_proj / down_proj) | target |",
                  "|---|---|---|---|---|---|---|"]
        for b in llama:
            n = base_name(b["name"]).split("/")
            route = n[4] if len(n) > 4 else "automatic (syevd)"
            errs = " / ".join(fmt(b.get(k), 3) for k in ("o_proj_rel_err", "down_proj_rel_err") if k in b)
            target = ""
            if n[2] == "layer" and n[1] == "float":
                target = "met (< 0.5 s)" if ms(b) < TARGET_LAYER_MS else "missed (>= 0.5 s)"
            lines.append(f"| {n[1]} | {n[2]} | {field(n, 'stats')} | {route} | {fmt(ms(b))} | {errs} | {target} |")
        lines.append("")

    if errors:
        lines += ["Benchmarks that reported an error:", ""]
        lines += [f"- `{base_name(b['name'])}`: {b.get('error_message', '?')}" for b in errors]
        lines.append("")
    if notes:
        lines += ["Benchmark files:", ""] + notes + [""]
    with open(out_path, "a") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
