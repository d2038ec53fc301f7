#!/usr/bin/env python3
"""Writes docs/benchmarks.md (tables, targets) and docs/benchmarks-*.svg (plots) from the JSON files
of benchmarks/run.sh. Standard library only.

usage: report.py <results dir> <docs dir>
"""
import json
import math
import os
import re
import sys
from collections import defaultdict


def load(results, name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def medians(doc):
    """{base name: entry} with the median over repetitions (or the single run)."""
    out, singles = {}, defaultdict(list)
    if doc is None:
        return out
    for b in doc["benchmarks"]:
        base = re.sub(r"/(repeats:\d+|real_time|min_time:[\d.]+)", "", b["run_name"])
        if b.get("error_occurred"):
            continue
        if b["run_type"] == "aggregate":
            if b["aggregate_name"] == "median":
                out[base] = b
        else:
            singles[base].append(b)
    for base, runs in singles.items():
        if base not in out:
            runs = sorted(runs, key=lambda r: r["real_time"])
            out[base] = runs[len(runs) // 2]
    return out


def seconds(entry):
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[entry["time_unit"]]
    return entry["real_time"] * scale


def fmt_t(s):
    if s is None:
        return "n/a"
    if s >= 1:
        return "%.2f s" % s
    return "%.1f ms" % (s * 1e3)


def fmt_r(x):
    return "n/a" if x is None else "%.2f" % x


def fmt_g(flops):
    return "n/a" if flops is None else "%.1f" % (flops / 1e9)


def fmt_e(x):
    return "n/a" if x is None else "%.1e" % x


# --- SVG plot (log-log), no dependencies -------------------------------------------------------
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def svg_plot(path, title, series, xlabel, ylabel):
    """series: [(label, [(x, y), ...])] with x, y > 0."""
    pts = [p for _, s in series for p in s if p[1] and p[1] > 0]
    if not pts:
        return False
    W, H, L, R, T, B = 640, 400, 70, 170, 40, 50
    xs = [math.log10(p[0]) for p in pts]
    ys = [math.log10(p[1]) for p in pts]
    x0, x1 = min(xs) - 0.05, max(xs) + 0.05
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    if y1 == y0:
        y1 = y0 + 1

    def px(x):
        return L + (math.log10(x) - x0) / (x1 - x0) * (W - L - R)

    def py(y):
        return H - B - (math.log10(y) - y0) / (y1 - y0) * (H - T - B)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14">%s</text>' % (L, title)]
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y, W - R, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">1e%d</text>' % (L - 6, y + 4, e))
    for x in sorted(set(p[0] for p in pts)):
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (px(x), T, px(x), H - B))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (px(x), H - B + 16, x))
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % ((L + W - R) // 2, H - 10, xlabel))
    out.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">%s</text>' % (H // 2, H // 2, ylabel))
    for i, (label, s) in enumerate(series):
        s = sorted(p for p in s if p[1] and p[1] > 0)
        if not s:
            continue
        c = COLORS[i % len(COLORS)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' %
                   (c, " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in s)))
        for x, y in s:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), c))
        ly = T + 10 + 18 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>' % (W - R + 10, ly, W - R + 30, ly, c))
        out.append('<text x="%d" y="%d">%s</text>' % (W - R + 36, ly + 4, label))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def main():
    results, docs = sys.argv[1], sys.argv[2]
    os.makedirs(docs, exist_ok=True)
    machine = open(os.path.join(results, "machine.txt")).read().strip() if os.path.exists(
        os.path.join(results, "machine.txt")) else "(not recorded)"
    gram = medians(load(results, "bench_gram"))
    gram_e = medians(load(results, "bench_gram_eigen"))
    proc = medians(load(results, "bench_procrustes"))
    proc_e = medians(load(results, "bench_procrustes_eigen"))
    layer = medians(load(results, "bench_layer"))
    eb = medians(load(results, "bench_eigen_blas"))
    ctx = (load(results, "bench_gram") or load(results, "bench_procrustes") or {}).get("context", {})

    def measured(*names):
        """When a section's figures were measured (the JSON files' dates): one-group runs may differ."""
        dates = []
        for n in names:
            doc = load(results, n)
            if doc and doc.get("context", {}).get("date"):
                d = doc["context"]["date"][:16].replace("T", " ") + " UTC"
                if d not in dates:
                    dates.append(d)
        return ["Measured: " + ", ".join(dates) + ".", ""] if dates else []

    def get(m, key, field=None):
        e = m.get(key)
        if e is None:
            return None
        return seconds(e) if field is None else e.get(field)

    targets = []
    md = ["# Benchmarks", "",
          "Generated by `benchmarks/run.sh` (do not edit by hand). Every figure is the **median** of "
          "the repetitions (3 unless said otherwise), wall-clock time, all threads of OpenBLAS; ratios "
          "compare rcpu with the best baseline measured **in the same binary and the same run** "
          "(repetitions randomly interleaved), so that load bursts hit both sides alike. "
          "See [performance.md](performance.md) for the fast paths and the threading variables.", "",
          "## Machine and libraries", "", "```", machine]
    for name in sorted(os.listdir(results)):
        m = re.match(r"machine-(\w+)\.txt$", name)
        if m:
            with open(os.path.join(results, name)) as f:
                md += ["", "one-group run (--only %s):" % m.group(1), f.read().strip()]
    if ctx:
        md += ["openblas config: " + ctx.get("openblas_config", "?"),
               "openblas core: " + ctx.get("openblas_core", "?") + " (rcpu's products: " + ctx.get("rcpu_products", "?") + ")",
               "openblas threads: " + ctx.get("openblas_threads", "?"),
               "benchmark library: Google Benchmark " + ctx.get("library_version", "1.7") +
               ", build type " + ctx.get("library_build_type", "?"),
               "host: %s, %s CPUs at %s MHz" % (ctx.get("host_name", "?"), ctx.get("num_cpus", "?"), ctx.get("mhz_per_cpu", "?"))]
    md += ["```", ""]

    # --- Gram -------------------------------------------------------------------------------
    md += ["## Gram accumulation", "",
           "`Statistics::update` over 8192 tokens in 512-token blocks (plus the final `gram()`, which "
           "symmetrizes), against OpenBLAS `?syrk` on the same blocks into a zeroed matrix. GFLOP/s "
           "counted as N d^2 (one triangle). *rcpu* is the default (double sums: float blocks go "
           "through DSYRK); *input_blocks* is `GramPrecision::input_blocks` (float SSYRK over 4096 "
           "tokens, then summed in double). *Eigen* is Eigen's own rank update; *rcpu (Eigen)* is rcpu "
           "built without BLAS (`bench_gram_eigen`).", ""] + measured("bench_gram", "bench_gram_eigen") + [
           "| d | input | layout | rcpu GFLOP/s | ?syrk GFLOP/s | **rcpu / syrk** | input_blocks GFLOP/s | **input_blocks / syrk** | Eigen GFLOP/s | rcpu (Eigen) GFLOP/s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    gram_ratio = defaultdict(list)
    gram_series = defaultdict(list)
    for d in (576, 1536, 4096, 11008, 64):
        for sc in ("double", "float"):
            for lay in ("col", "row"):
                t = "%s/%s/%d" % (sc, lay, d)
                r = get(gram, "gram/rcpu/" + t, "flops")
                s = get(gram, "gram/syrk/" + t, "flops")
                ib = get(gram, "gram/rcpu_input_blocks/" + t, "flops")
                e = get(gram, "gram/eigen/" + t, "flops")
                re_ = get(gram_e, "gram/rcpu/" + t, "flops")
                if r is None and s is None:
                    continue
                ratio = r / s if r and s else None
                ratio_ib = ib / s if ib and s else None
                if ratio:
                    gram_ratio[sc].append((ratio, d, lay))
                if ratio_ib:
                    gram_ratio["float_input_blocks"].append((ratio_ib, d, lay))
                sd = get(gram, "gram/syrk/double/%s/%d" % (lay, d), "flops")
                if sc == "float" and r and sd:
                    gram_ratio["float_vs_dsyrk"].append((r / sd, d, lay))
                if lay == "col":
                    gram_series["rcpu " + sc].append((d, get(gram, "gram/rcpu/" + t)))
                    gram_series["syrk " + sc].append((d, get(gram, "gram/syrk/" + t)))
                md.append("| %d | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |" % (
                    d, sc, lay, fmt_g(r), fmt_g(s), fmt_r(ratio), fmt_g(ib),
                    "**" + fmt_r(ratio_ib) + "**" if ratio_ib else "", fmt_g(e), fmt_g(re_)))
    md.append("")
    if svg_plot(os.path.join(docs, "benchmarks-gram.svg"), "Gram accumulation, 8192 tokens (column-major blocks)",
                sorted(gram_series.items()), "d_in", "seconds"):
        md += ["![Gram accumulation time against d](benchmarks-gram.svg)", ""]

    # --- Eigen's BLAS back end ----------------------------------------------------------------
    if eb:
        md += ["## Eigen's EIGEN_USE_BLAS against direct CBLAS calls", "",
               "Same kernels, called through Eigen's BLAS back end (`EIGEN_USE_BLAS`, one translation unit) "
               "and directly: rank update of 512 tokens, and a square GEMM.", ""] + measured("bench_eigen_blas") + [
               "| kernel | d | EIGEN_USE_BLAS GFLOP/s | CBLAS GFLOP/s | ratio |", "|---|---|---|---|---|"]
        for op in ("rank_update", "gemm"):
            for d in (576, 4096, 64):
                a = get(eb, "eigen_blas/%s/eigen_use_blas/double/%d" % (op, d), "flops")
                b = get(eb, "eigen_blas/%s/cblas/double/%d" % (op, d), "flops")
                if a is None or b is None:
                    continue
                md.append("| %s | %d | %s | %s | %s |" % (op, d, fmt_g(a), fmt_g(b), fmt_r(a / b)))
        md.append("")

    # --- Procrustes -----------------------------------------------------------------------------
    md += ["## Procrustes", "",
           "Time to the rotation Q of a d x d M. *rcpu* is `ProcrustesMethod::automatic` (the `polar_eig` "
           "route); *gesdd* is LAPACKE `?gesdd` (full U, V^T) + one GEMM; *BDCSVD* is Eigen's + one GEMM "
           "(d <= 2048); *newton* and *mixed* are rcpu's other routes (one run at d = 4096; *newton* falls "
           "back to polar_eig on a singular M); *rcpu (Eigen)* is rcpu built without BLAS/LAPACK. "
           "Accuracy against ?gesdd: `orth` = ||Q^T Q - I||_F, `deficit` = (tr(S) - tr(Q^T M)) / tr(S), the "
           "relative loss of the objective (||Y - Q Z||^2 = ||Y||^2 + ||Z||^2 - 2 tr(Q^T M)); negative "
           "means better than ?gesdd by rounding.", ""] + measured("bench_procrustes", "bench_procrustes_eigen") + [
           "| d | scalar | M | rcpu | gesdd | **rcpu / gesdd** | newton | mixed | BDCSVD | rcpu (Eigen) | rcpu orth | gesdd orth | rcpu deficit |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    proc_series = defaultdict(list)
    proc_ratio = {}
    for d in (48, 576, 1024, 2048, 4096):
        for sc in ("double", "float"):
            for kind in ("full", "rankdef"):
                t = "%s/%s/%d" % (sc, kind, d)
                r = get(proc, "procrustes/rcpu/" + t)
                g = get(proc, "procrustes/gesdd/" + t)
                if r is None and g is None:
                    continue
                n = get(proc, "procrustes/rcpu_newton/" + t)
                mx = get(proc, "procrustes/rcpu_mixed/" + t)
                bd = get(proc, "procrustes/bdcsvd/" + t)
                pe = get(proc_e, "procrustes/rcpu/" + t)
                ratio = r / g if r and g else None
                proc_ratio[(sc, kind, d)] = (ratio, get(proc, "procrustes/rcpu/" + t, "orth"),
                                             get(proc, "procrustes/gesdd/" + t, "orth"),
                                             get(proc, "procrustes/rcpu/" + t, "trace_deficit"))
                if sc == "double" and kind == "full":
                    for label, v in (("rcpu (polar_eig)", r), ("gesdd + GEMM", g), ("newton", n), ("mixed", mx),
                                     ("Eigen BDCSVD + GEMM", bd), ("rcpu on pure Eigen", pe)):
                        if v:
                            proc_series[label].append((d, v))
                md.append("| %d | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s |" % (
                    d, sc, kind, fmt_t(r), fmt_t(g), fmt_r(ratio), fmt_t(n), fmt_t(mx), fmt_t(bd), fmt_t(pe),
                    fmt_e(proc_ratio[(sc, kind, d)][1]), fmt_e(proc_ratio[(sc, kind, d)][2]),
                    fmt_e(proc_ratio[(sc, kind, d)][3])))
    md.append("")
    order = ["rcpu (polar_eig)", "gesdd + GEMM", "newton", "mixed", "Eigen BDCSVD + GEMM", "rcpu on pure Eigen"]
    if svg_plot(os.path.join(docs, "benchmarks-procrustes.svg"), "Procrustes, double, full-rank M",
                [(k, proc_series[k]) for k in order if k in proc_series], "d", "seconds"):
        md += ["![Procrustes time against d](benchmarks-procrustes.svg)", "",
               "The slopes show the O(d^3) growth of every route; rcpu's advantage comes from reducing the "
               "symmetric M^T M to tridiagonal form (one symmetric matrix-vector product per column) where "
               "?gesdd bidiagonalizes M (two general ones), both memory-bound, and from doing the rest as "
               "large GEMMs.", ""]

    # --- Procrustes of a product (the compensation's rank-deficient case) ----------------------------
    prod_ratio = {}
    prod_rows = []
    for d in (48, 576, 1024, 2048, 4096):
        for sc in ("double", "float"):
            t = "%s/product/%d" % (sc, d)
            r = get(proc, "procrustes/rcpu/" + t)
            g = get(proc, "procrustes/gesdd/" + t)
            f = get(proc, "procrustes/rcpu_full/" + t)
            if r is None and g is None:
                continue
            iso = (get(proc, "procrustes/rcpu/" + t, "isometry"), get(proc, "procrustes/gesdd/" + t, "isometry"))
            deficit = get(proc, "procrustes/rcpu/" + t, "trace_deficit")
            prod_ratio[(sc, d)] = (r / g if r and g else None, iso[0], iso[1], deficit)
            prod_rows.append("| %d | %s | %s | %s | **%s** | %s | %s | %s | %s | %s |" % (
                d, sc, fmt_t(r), fmt_t(g), fmt_r(prod_ratio[(sc, d)][0]), fmt_t(f),
                fmt_r(r / f if r and f else None), fmt_e(iso[0]), fmt_e(iso[1]), fmt_e(deficit)))
    if prod_rows:
        md += ["### Rank-deficient M as the compensation meets it: a product", "",
               "M = A W^T with A and W d x k, k = 0.8 d (o_proj with a fifth of the heads removed), and "
               "the wanted result Q W (d x k). *rcpu* is `ProcrustesProduct` (two Householder QRs and a "
               "k x k Procrustes problem; no M, no Q); *gesdd* forms M, runs ?gesdd, Q = U V^T and Q W; "
               "*rcpu full* does the same with `Procrustes` (what `compensate()` did before). Accuracy "
               "against ?gesdd: `isometry` = ||(Q W)^T Q W - W^T W||_F / ||W^T W||_F and the deficit "
               "as above.", "",
               "| d | scalar | rcpu | gesdd | **rcpu / gesdd** | rcpu full | rcpu / rcpu full | rcpu isometry | gesdd isometry | rcpu deficit |",
               "|---|---|---|---|---|---|---|---|---|---|"] + prod_rows + [""]

    # --- One layer --------------------------------------------------------------------------------
    md += ["## One layer pruned from statistics", "",
           "`prune_layer` at 20% (score, selection, compensation, report; float W, double Gram of 8192 "
           "tokens) against its lower bound, the BLAS/LAPACK kernels it calls run back to back on "
           "ready contiguous operands: A = W G[:,K] (GEMM), W_D^T W_D (SYRK, for the report), M = A "
           "W_K^T (GEMM), the Procrustes kernels of `polar_eig` for a full-rank M (SYRK, ?sytrd, ?stedc, "
           "three n^3 GEMMs) and Q W_K (GEMM); for the ridge, A, W_D^T W_D, ?potrf of G_KK + lambda I and "
           "two TRSMs. o_proj keeps k < d_out columns, and rcpu then takes the reduced route "
           "(`ProcrustesProduct`), whose kernels are the bound there: A, W_D^T W_D, two ?geqrf, two TRMMs, "
           "polar_eig's kernels at order k, and the reflectors applied as GEMMs; *full-route kernels* is "
           "the d_out x d_out route's bound, for comparison. Peak memory, measured per call: the rise of the peak resident set during "
           "the call (freed heap trimmed and the peak reset just before it) plus the bytes of its inputs "
           "(W, G), against the bytes the computation must hold: W (float), G (double), "
           "and M, U, V (double) plus the output weight and rotation (float) for the rotations, or the "
           "Cholesky factor (double) plus the output weight for the ridge.", ""] + measured("bench_layer") + [
           "| layer | d_out x d_in | method | rcpu | kernels | **rcpu / kernels** | rcpu full route | full-route kernels | peak MiB | must-hold MiB | **peak / must** |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    shapes = [("smollm2_o_proj", "576 x 576"), ("smollm2_down_proj", "576 x 1536"),
              ("llama7b_o_proj", "4096 x 4096"), ("llama7b_down_proj", "4096 x 11008"),
              ("tiny_o_proj", "32 x 32"), ("tiny_down_proj", "24 x 64")]
    layer_ratio = {}
    for sh, dims in shapes:
        for method in ("rotation", "rotation_scale", "proximal_ridge"):
            r = get(layer, "layer/rcpu_%s/%s" % (method, sh))
            if r is None:
                continue
            kname = "proximal_ridge" if method == "proximal_ridge" else "rotation"
            k = get(layer, "layer/kernels_%s/%s" % (kname, sh))
            peak = get(layer, "layer/rcpu_%s/%s" % (method, sh), "peak_MiB")
            must = get(layer, "layer/rcpu_%s/%s" % (method, sh), "must_MiB")
            ratio = r / k if r and k else None
            mratio = peak / must if peak and must else None
            layer_ratio[(sh, method)] = (ratio, mratio)
            kf = get(layer, "layer/kernels_rotation_full/%s" % sh) if kname == "rotation" else None
            rf = get(layer, "layer/rcpu_rotation_full/%s" % sh) if method == "rotation" else None
            md.append("| %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | **%s** |" % (
                sh, dims, method, fmt_t(r), fmt_t(k), fmt_r(ratio), fmt_t(rf), fmt_t(kf),
                "n/a" if peak is None else "%.0f" % peak,
                "n/a" if must is None else "%.0f" % must, fmt_r(mratio)))
    md.append("")

    # --- Targets ---------------------------------------------------------------------------------
    md += ["## Targets (issues 4 and 14)", "", "| target | measured (median) | met |", "|---|---|---|"]

    def row(name, value, ok):
        md.append("| %s | %s | %s |" % (name, value, "yes" if ok else ("**no**" if ok is not None else "n/a")))

    for sc, label in (("double", "double, ?syrk = DSYRK"), ("float", "float blocks, default double sums, vs SSYRK"),
                      ("float_vs_dsyrk", "float blocks, default double sums, vs DSYRK: the bound of exact double sums"),
                      ("float_input_blocks", "float blocks, GramPrecision::input_blocks, vs SSYRK")):
        rs = gram_ratio.get(sc)
        if rs:
            lo = min(rs)
            row("Gram >= 0.9x ?syrk (%s)" % label,
                "min %.2f (d = %d, %s); all: %s" % (lo[0], lo[1], lo[2], ", ".join("%.2f" % r[0] for r in sorted(rs, key=lambda x: (x[1], x[2])))),
                lo[0] >= 0.9)
    for sc in ("double", "float"):
        for kind in ("full", "rankdef"):
            v = proc_ratio.get((sc, kind, 4096))
            if v and v[0]:
                acc_ok = v[3] is not None and abs(v[3]) <= (1e-10 if sc == "double" else 1e-4) and \
                    v[1] is not None and v[2] is not None and abs(v[1] - v[2]) <= (1e-10 if sc == "double" else 1e-4) * 4096 ** 0.5
                row("Procrustes d = 4096 <= 0.5x gesdd route (%s, %s M)" % (sc, kind),
                    "%.2f (orth %s vs gesdd %s, deficit %s)" % (v[0], fmt_e(v[1]), fmt_e(v[2]), fmt_e(v[3])),
                    v[0] <= 0.5 and acc_ok)
    for sc in ("double", "float"):
        v = prod_ratio.get((sc, 4096))
        if v and v[0]:
            tol = 1e-10 if sc == "double" else 1e-4
            acc_ok = v[3] is not None and abs(v[3]) <= tol and v[1] is not None and v[2] is not None and \
                v[1] <= v[2] + tol
            row("Procrustes d = 4096 <= 0.5x gesdd route (%s, rank-deficient product A W^T, Q W)" % sc,
                "%.2f (isometry %s vs gesdd %s, deficit %s)" % (v[0], fmt_e(v[1]), fmt_e(v[2]), fmt_e(v[3])),
                v[0] <= 0.5 and acc_ok)
    for method in ("rotation", "rotation_scale"):
        v = layer_ratio.get(("llama7b_o_proj", method))
        if v:
            row("o_proj 4096 x 4096, %s: time <= 1.2x kernels" % method, fmt_r(v[0]), v[0] is not None and v[0] <= 1.2)
    for method in ("rotation", "rotation_scale", "proximal_ridge"):
        v = layer_ratio.get(("llama7b_down_proj", method))
        if v:
            row("down_proj 4096 x 11008, %s: time <= 1.2x kernels" % method, fmt_r(v[0]), v[0] is not None and v[0] <= 1.2)
            row("down_proj 4096 x 11008, %s: peak memory <= 1.3x must-hold" % method, fmt_r(v[1]),
                v[1] is not None and v[1] <= 1.3)
    md.append("")
    with open(os.path.join(docs, "benchmarks.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
