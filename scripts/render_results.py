#!/usr/bin/env python3
"""Turns the CSV files written by rcpu-prune-study into docs/results.md and its two figures.

Usage: render_results.py CSV_DIR OUT_MD [--command "the command that produced CSV_DIR"]

Reads CSV_DIR/runs.csv, CSV_DIR/layers.csv and CSV_DIR/meta.csv; writes OUT_MD and, next to it,
results-ratio.svg (test perplexity against the pruning ratio, one line per method) and
results-calibration.svg (test perplexity against the number of calibration windows, rotation and
ridge). Every sentence about which method wins is computed from the numbers, so the text stays true
when the study is re-run. Python's standard library only.
"""
import csv
import math
import os
import statistics
import sys

MAIN_ORDER = [
    "wanda_sp", "flap", "rcpu_none", "rcpu_rotation", "rcpu_rotation_scale", "ridge",
    "rcpu_rotation_bias", "rcpu_rotation_per_head", "rcpu_rotation_proper",
]
NAMES = {
    "dense": "dense",
    "wanda_sp": "Wanda-sp (no compensation)",
    "flap": "FLAP (WIFV + bias)",
    "flap_alam": "FLAP (WIFV + bias), AL-AM allocation",
    "rcpu_none": "RCPU score, no compensation",
    "rcpu_rotation": "RCPU rotation",
    "rcpu_rotation_scale": "RCPU rotation + scale",
    "ridge": "proximal ridge (lambda chosen on validation)",
    "rcpu_rotation_bias": "rotation + bias (ours)",
    "rcpu_rotation_per_head": "per-head block rotation on o_proj (ours)",
    "rcpu_rotation_proper": "proper rotation, det fix (ours)",
    "rcpu_rotation_o_only": "RCPU rotation, o_proj only",
    "rcpu_rotation_down_only": "RCPU rotation, down_proj only",
    "rcpu_rotation_alam": "RCPU rotation, AL-AM allocation",
}
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def ppl(x):
    v = num(x)
    return "n/a" if math.isnan(v) else "%.2f" % v


def pct(r):
    return "%g%%" % round(100 * r, 1)


def studies(run):
    return set(run["studies"].split(";")) if run["studies"] else set()


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# A small SVG line plot (log-scale y optional), so that no plotting package is needed.
def svg_lines(path, title, xlabel, ylabel, series, xlog=False, ylog=True, hline=None):
    W, H, L, R, T, B = 760, 460, 70, 250, 40, 55
    pts = [(x, y) for _, s in series for x, y in s if not math.isnan(y)]
    if not pts:
        return
    fx = (lambda v: math.log10(v)) if xlog else (lambda v: v)
    fy = (lambda v: math.log10(v)) if ylog else (lambda v: v)
    xs = [fx(x) for x, _ in pts]
    ys = [fy(y) for _, y in pts] + ([fy(hline[1])] if hline else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    px = lambda v: L + (fx(v) - x0) / (x1 - x0) * (W - L - R)
    py = lambda v: T + (1 - (fy(v) - y0) / (y1 - y0)) * (H - T - B)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
         'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15">%s</text>' % (L, title)]
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (L, T, W - L - R, H - T - B))
    # y ticks: a few round values in the range.
    lo, hi = (10 ** y0, 10 ** y1) if ylog else (y0, y1)
    ticks = nice_ticks(lo, hi, ylog)
    for t in ticks:
        y = py(t)
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (L, W - R, y, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 5, y + 4, "%g" % t))
    xt = sorted(set(x for x, _ in pts))
    for t in xt:
        x = px(t)
        o.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/>' % (x, x, T, H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, H - B + 16, "%g" % t))
    o.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % ((L + W - R) / 2, H - 12, xlabel))
    o.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">%s</text>'
             % ((T + H - B) / 2, (T + H - B) / 2, ylabel))
    if hline:
        y = py(hline[1])
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-dasharray="5,4"/>' % (L, W - R, y, y))
        o.append('<text x="%d" y="%.1f" fill="black">%s</text>' % (W - R + 8, y + 4, hline[0]))
    for i, (name, s) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        good = [(x, y) for x, y in s if not math.isnan(y)]
        if not good:
            continue
        o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                 % (c, " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in good)))
        for x, y in good:
            o.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(x), py(y), c))
        ly = T + 14 + 18 * i + (22 if hline else 0)
        o.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/>' % (W - R + 8, W - R + 28, ly - 4, ly - 4, c))
        o.append('<text x="%d" y="%d">%s</text>' % (W - R + 32, ly, name.replace("&", "&amp;")))
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")


def nice_ticks(lo, hi, log):
    if log:
        out = []
        e = math.floor(math.log10(lo))
        while 10 ** e <= hi * 10:
            for m in (1, 2, 5):
                v = m * 10 ** e
                if lo <= v <= hi:
                    out.append(v)
            e += 1
        if len(out) < 3:  # a narrow range: linear ticks inside it
            return nice_ticks(lo, hi, False)
        return out
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 5))
    for m in (1, 2, 5, 10):
        if span / (m * step) <= 7:
            step *= m
            break
    v = math.ceil(lo / step) * step
    out = []
    while v <= hi:
        out.append(round(v, 10))
        v += step
    return out


# ------------------------------------------------------------------------------------------------
def main():
    args = sys.argv[1:]
    command = ""
    if "--command" in args:
        i = args.index("--command")
        command = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    src, out_md = args
    runs = read_csv(os.path.join(src, "runs.csv"))
    layers = read_csv(os.path.join(src, "layers.csv")) if os.path.exists(os.path.join(src, "layers.csv")) else []
    meta = {r["key"]: r["value"] for r in read_csv(os.path.join(src, "meta.csv"))}
    out_dir = os.path.dirname(out_md) or "."
    base = os.path.splitext(os.path.basename(out_md))[0]

    dense = next(r for r in runs if r["method_id"] == "dense")
    dense_ppl = num(dense["test_ppl"])
    ratios = sorted(set(num(r["ratio"]) for r in runs if "main" in studies(r)) - {0.0})
    calib = meta.get("calib_windows", "128")

    def find(method, ratio=None, study=None, corpus="wikitext", windows=None, pred=None):
        for r in runs:
            if r["method_id"] != method:
                continue
            if ratio is not None and abs(num(r["ratio"]) - ratio) > 1e-9:
                continue
            if study is not None and study not in studies(r):
                continue
            if corpus is not None and r["calib_corpus"] != corpus:
                continue
            if windows is not None and int(r["calib_windows"]) != int(windows):
                continue
            if pred is not None and not pred(r):
                continue
            return r
        return None

    def main_run(method, ratio):
        if method == "ridge":
            return find("ridge", ratio, "ridge_best", windows=calib)
        return find(method, ratio, "main", windows=calib)

    md = []
    w = md.append
    model_name = os.path.splitext(meta.get("model", "the model"))[0]
    w("# Results: pruning %s with rcpu, every method, the paper's protocol\n" % model_name)
    w("<!-- Generated by scripts/render_results.py from the CSV files of rcpu-prune-study; do not edit by hand:"
      " re-run scripts/reproduce_results.sh. -->\n")
    w("Model: `%s` (%s). Text: `%s`, prepared as the paper's evaluation does and tokenized once "
      "(%s tokens), split in two halves of tokens. **Calibration**: %s random %s-token windows of the first half "
      "(seed %s). **Evaluation**: perplexity (exp of the mean token cross-entropy) on %s evenly spaced "
      "non-overlapping %s-token windows of the second half, out of its %s windows (a fixed subset, the same "
      "windows for every method, to keep the whole study within 90 minutes on 2 cores). **Validation** (ridge "
      "lambda only): %s aligned windows of the first half that no calibration window touches.\n"
      % (meta.get("model"), meta.get("model_config"), meta.get("text"), meta.get("tokens"), calib,
         meta.get("seq"), meta.get("seed"), meta.get("test_windows"), meta.get("seq"),
         meta.get("test_windows_total"), meta.get("val_windows")))
    w("Pipeline (`rcpu::model::prune_models`, METHOD.md section 5): layer by layer, one dense pass of the layer "
      "on the outputs of the already-pruned layers collects the statistics at the inputs of o_proj and "
      "down_proj; o_proj loses heads, then down_proj loses MLP channels (uniform ratio: floor(ratio x units) "
      "per layer: 9 query heads, as in SmolLM2, lose 0, 1 and 2 heads at 10, 20 and 30%); the pruned layer feeds "
      "the next. Heads under grouped-query attention: rule `query_heads` (remove the lowest-scoring query "
      "heads anywhere; a KV head goes only when its whole group is gone) unless a table says otherwise. "
      "The pruned models are really smaller; their parameter counts are in the tables.\n")
    w("Dense perplexity on these windows: **%s** (%s parameters).\n" % (ppl(dense["test_ppl"]), dense["params"]))
    present = set()
    for r in runs:
        present |= studies(r)
    missing = [x for x in ("main", "ablation", "ridge", "gqa", "adaptive", "sweep", "shift") if x not in present]
    if missing or len(ratios) < 3:
        w("> **Partial run.** Studies in this page: %s; ratios: %s. Not run: %s. The full study is "
          "`scripts/reproduce_results.sh` without options.\n"
          % (", ".join(sorted(present - {"ridge_best"})), ", ".join(pct(r) for r in ratios),
             ", ".join(missing) if missing else "none"))

    # Main table.
    w("## The comparison (the paper's Table 1 on this model)\n")
    w("Test perplexity, lower is better; in brackets the ratio to the dense perplexity.\n")
    hdr = ["method"] + ["%s removed" % pct(r) for r in ratios]
    rows = []
    series = []
    for m in MAIN_ORDER:
        cells, pts = [], []
        for r in ratios:
            run = main_run(m, r)
            if run is None:
                cells.append("")
                continue
            v = num(run["test_ppl"])
            pts.append((100 * r, v))
            extra = ""
            if m == "ridge":
                extra = ", lambda %g" % num(run["relative_lambda"])
            cells.append("%s (x%.2f%s)" % (ppl(v), v / dense_ppl, extra))
        if any(cells):
            rows.append([NAMES[m]] + cells)
            series.append((NAMES[m], pts))
    prow = ["parameters"]
    for r in ratios:
        run = main_run("rcpu_rotation", r) or main_run("wanda_sp", r)
        prow.append("%s (%.1f%% of dense)" % (run["params"], 100 * num(run["params"]) / num(run["params_dense"])) if run else "")
    rows.append(prow)
    w(table(hdr, rows) + "\n")
    ratio_svg = base + "-ratio.svg"
    svg_lines(os.path.join(out_dir, ratio_svg), "%s: test perplexity vs pruning ratio" % model_name,
              "heads and MLP channels removed per layer (%)", "perplexity (log scale)", series,
              hline=("dense %.1f" % dense_ppl, dense_ppl))
    w("![perplexity against ratio](%s)\n" % ratio_svg)

    # What the main table says, computed.
    w("### What the table shows\n")
    for r in ratios:
        vals = {m: num(main_run(m, r)["test_ppl"]) for m in MAIN_ORDER if main_run(m, r) is not None}
        if not vals:
            continue
        best = min(vals, key=vals.get)
        rot = vals.get("rcpu_rotation", math.nan)
        line = "- At %s: the best is %s (%.2f)." % (pct(r), NAMES[best], vals[best])
        for peer in ("wanda_sp", "flap"):
            if peer in vals and not math.isnan(rot):
                line += " RCPU rotation %s %s (%.2f vs %.2f, %+.1f%%)." % (
                    "beats" if rot < vals[peer] else "does not beat", NAMES[peer], rot, vals[peer],
                    100 * (rot / vals[peer] - 1))
        if "rcpu_none" in vals and not math.isnan(rot):
            line += " The rotation %s the same pruning without compensation (%.2f)." % (
                "improves on" if rot < vals["rcpu_none"] else "is worse than", vals["rcpu_none"])
        if "ridge" in vals and not math.isnan(rot):
            line += " Tuned proximal ridge: %.2f (%s than the rotation)." % (
                vals["ridge"], "better" if vals["ridge"] < rot else "worse")
        w(line)
    w("")

    # The paper's claims (METHOD.md section 6, LLaMA-7B), checked on this model's numbers.
    claims = []

    def holds(ok):
        return "holds" if ok else "does not hold"

    def at(m, r):
        run = main_run(m, r)
        return num(run["test_ppl"]) if run else math.nan

    def wins(m, other):
        """(ratios where both ran, those where m has the lower perplexity)."""
        rs = [r for r in ratios if not math.isnan(at(m, r) + at(other, r))]
        return rs, [r for r in rs if at(m, r) < at(other, r)]

    for peer in ("wanda_sp", "flap"):
        rs, won = wins("rcpu_rotation", peer)
        if rs:
            claims.append("RCPU rotation beats %s at every ratio (paper: 10/20/30%%): %s here (wins at %s of %s%s)."
                          % (NAMES[peer], holds(len(won) == len(rs)), len(won), len(rs),
                             (": " + ", ".join(pct(r) for r in won)) if won else ""))
    rs, won = wins("rcpu_rotation", "rcpu_none")
    if rs:
        claims.append("The rotation improves on the RCPU score without compensation: %s here (%s of %s ratios)."
                      % (holds(len(won) == len(rs)), len(won), len(rs)))
    rs, won = wins("ridge", "rcpu_rotation")
    if rs:
        claims.append("METHOD.md notes that a tuned proximal ridge can beat the rotation (LLaMA-7B, 10%%: about "
                      "13.2 vs 13.55): here it does at %s of %s ratios, by %s." % (
                          len(won), len(rs), ", ".join("%.0f%% at %s" % (100 * (1 - at("ridge", r) / at("rcpu_rotation", r)), pct(r))
                                                       for r in won) or "nothing"))
    ratios_abl = next((r for r in ratios if find("rcpu_rotation_o_only", r, "ablation", windows=calib)), None)
    ab = {}
    if ratios_abl is not None:
        ab = {m: find(m, ratios_abl, "ablation", windows=calib)
              for m in ("rcpu_rotation", "rcpu_rotation_o_only", "rcpu_rotation_down_only")}
    if ab and all(ab.values()):
        both, o_only, d_only = (num(ab[m]["test_ppl"]) for m in ("rcpu_rotation", "rcpu_rotation_o_only",
                                                                   "rcpu_rotation_down_only"))
        claims.append("Compensating both modules beats compensating either one alone (paper, 20%%: 14.40 vs 15.47 "
                      "o_proj only, 15.76 down_proj only): %s here at %s (%.2f vs %.2f and %.2f)."
                      % (holds(both < o_only and both < d_only), pct(ratios_abl), both, o_only, d_only))
    if claims:
        w("### The paper's claims on this model\n")
        w("The paper's numbers are for LLaMA-7B (METHOD.md section 6); %s is a much smaller model (%s "
          "parameters; %s), so only the direction of each comparison can carry over.\n"
          % (model_name, dense["params"], meta.get("model_config", "").split(", ffn")[0]))
        for c in claims:
            w("- " + c)
        w("")

    # Ablation.
    abl = [("rcpu_none", "none (RCPU score only)"), ("rcpu_rotation_o_only", "o_proj only"),
           ("rcpu_rotation_down_only", "down_proj only"), ("rcpu_rotation", "both (RCPU rotation)")]
    if any(find(m, study="ablation") for m, _ in abl):
        w("## Ablation: which module to compensate\n")
        abl_ratios = [r for r in ratios if any(find(m, r, "ablation", windows=calib) for m, _ in abl)]
        w("RCPU score, rotation compensation applied to o_proj only, down_proj only, or both; test perplexity"
          "%s.\n" % ("" if abl_ratios == ratios else " (run at %s only, for time)" % ", ".join(pct(r) for r in abl_ratios)))
        rows = []
        for m, name in abl:
            cells = []
            for r in abl_ratios:
                run = find(m, r, "ablation", windows=calib)
                cells.append(ppl(run["test_ppl"]) if run else "")
            rows.append([name] + cells)
        w(table(["compensated"] + [pct(r) for r in abl_ratios], rows) + "\n")

    # Ridge sweep.
    ridge = [r for r in runs if r["method_id"] == "ridge" and "ridge" in studies(r)]
    swept = [r for r in ratios if any(abs(num(x["ratio"]) - r) < 1e-9 for x in ridge)]
    unswept = [r for r in ratios if r not in swept and main_run("ridge", r)]
    swept_note = ""
    if unswept:
        swept_note = (" To keep the study within its time budget, the sweep ran at %s only; at %s the main "
                      "table's ridge uses the a chosen at the nearest swept ratio (%s)." % (
                          ", ".join(pct(r) for r in swept), ", ".join(pct(r) for r in unswept),
                          ", ".join("a = %g at %s" % (num(main_run("ridge", r)["relative_lambda"]), pct(r))
                                    for r in unswept)))
    if ridge:
        w("## Proximal ridge: the lambda sweep and how lambda was chosen\n")
        w("Proximal ridge solves min ||Y - W' X_K||^2 + lambda ||W' - W_K||^2 per layer and module, with "
          "lambda = a x tr(G_KK) / k (a relative strength: a fraction of the mean energy of a kept channel, so "
          "one value suits layers whose activations differ by orders of magnitude). Each a was run at the "
          "ratios below and scored on the **validation** windows (first half, disjoint from calibration); the "
          "a with the lowest validation perplexity was then evaluated once on the test windows (the main "
          "table).%s\n" % swept_note)
        lams = sorted(set(num(r["relative_lambda"]) for r in ridge))
        rows = []
        for r in swept:
            cells = []
            best = find("ridge", r, "ridge_best", windows=calib)
            for a in lams:
                run = find("ridge", r, "ridge", windows=calib, pred=lambda x, a=a: abs(num(x["relative_lambda"]) - a) < 1e-12)
                c = ppl(run["val_ppl"]) if run else ""
                if run and best and run["key"] == best["key"]:
                    c = "**" + c + "**"
                cells.append(c)
            rows.append([pct(r)] + cells)
        w("Validation perplexity (dense: %s); bold: chosen.\n" % ppl(dense["val_ppl"]))
        w(table(["ratio"] + ["a = %g" % a for a in lams], rows) + "\n")

    # Adaptive allocation.
    if any("adaptive" in studies(r) for r in runs):
        w("## FLAP's adaptive allocation (AL-AM) against a uniform ratio\n")
        w("AL-AM removes the same global fraction of prunable parameters but lets each layer and module lose a "
          "different number of units (one threshold on standardised WIFV scores).\n")
        rows = []
        for m_u, m_a in (("flap", "flap_alam"), ("rcpu_rotation", "rcpu_rotation_alam")):
            for m in (m_u, m_a):
                cells = []
                for r in ratios:
                    run = main_run(m, r) if m == m_u else find(m, r, "adaptive", windows=calib)
                    cells.append("%s (%s params)" % (ppl(run["test_ppl"]), run["params"]) if run else "")
                rows.append([NAMES[m]] + cells)
        w(table(["method"] + [pct(r) for r in ratios], rows) + "\n")

    # GQA.
    gqa = [r for r in runs if "gqa" in studies(r)]
    if gqa:
        gr = num(gqa[0]["attention_ratio"])
        w("## Grouped-query attention: how heads are removed\n")
        w("%s has %s. Attention only (MLP untouched), %s of the query heads removed per layer under "
          "three rules: `query_heads` removes the lowest-scoring query heads anywhere and drops a KV head "
          "(its k and v rows) only when its whole group is gone; `kv_groups` removes whole KV groups (a group "
          "scores the sum of its heads' scores); `balanced` removes the same number of query heads from every "
          "group.\n" % (model_name, meta.get("model_config", "").split(", ffn")[0], pct(gr)))
        rows = []
        gqa_methods = [m for m in ("rcpu_none", "rcpu_rotation") if any(x["method_id"] == m for x in gqa)]
        for rule in ("query_heads", "kv_groups", "balanced"):
            cells = [rule]
            any_run = None
            for m in gqa_methods:
                run = next((x for x in gqa if x["gqa"] == rule and x["method_id"] == m), None)
                cells.append(ppl(run["test_ppl"]) if run else "")
                any_run = any_run or run
            if any_run:
                cells += [any_run["heads"], any_run["kv_heads"], any_run["params"]]
            rows.append(cells)
        label = {"rcpu_none": "no compensation", "rcpu_rotation": "RCPU rotation"}
        w(table(["rule"] + [label[m] for m in gqa_methods] + ["query heads left (all layers)", "KV heads left",
                                                              "parameters"], rows) + "\n")

    # Calibration sweep.
    sweep = [r for r in runs if "sweep" in studies(r)]
    if sweep:
        sr = num(meta.get("sweep_ratio", "0.2"))
        sizes = sorted(set(int(r["calib_windows"]) for r in sweep))
        w("## Calibration size: rotation against ridge\n")
        w("%s of heads and channels removed, RCPU score; calibration on the first N of the random windows "
          "(nested sets); ridge uses the lambda chosen above at this ratio. Test perplexity.\n" % pct(sr))
        rows, series = [], []
        for m in ("rcpu_rotation", "ridge"):
            cells, pts = [], []
            for n in sizes:
                run = find(m, sr, "sweep", windows=n)
                cells.append(ppl(run["test_ppl"]) if run else "")
                if run:
                    pts.append((n, num(run["test_ppl"])))
            rows.append([NAMES[m]] + cells)
            series.append((NAMES[m], pts))
        none = main_run("rcpu_none", sr)
        if none:
            series.append(("no compensation (%s windows)" % calib, [(n, num(none["test_ppl"])) for n in sizes]))
        w(table(["method"] + ["N = %d" % n for n in sizes], rows) + "\n")
        cal_svg = base + "-calibration.svg"
        svg_lines(os.path.join(out_dir, cal_svg), "%s, %s removed: perplexity vs calibration size" % (model_name, pct(sr)),
                  "calibration windows of %s tokens (log scale)" % meta.get("seq"), "perplexity (log scale)",
                  series, xlog=True, hline=("dense %.1f" % dense_ppl, dense_ppl))
        w("![perplexity against calibration size](%s)\n" % cal_svg)
        rot = {n: num(find("rcpu_rotation", sr, "sweep", windows=n)["test_ppl"]) for n in sizes
               if find("rcpu_rotation", sr, "sweep", windows=n)}
        rid = {n: num(find("ridge", sr, "sweep", windows=n)["test_ppl"]) for n in sizes
               if find("ridge", sr, "sweep", windows=n)}
        both = [n for n in sizes if n in rot and n in rid]
        if both:
            wins = [n for n in both if rot[n] < rid[n]]
            w("The rotation is better than the tuned ridge at %s of %d calibration sizes%s.\n"
              % (len(wins), len(both), (" (N = %s)" % ", ".join(map(str, wins))) if wins else ""))

    # Shift.
    shift = [r for r in runs if "shift" in studies(r)]
    if shift:
        sr = num(meta.get("sweep_ratio", "0.2"))
        w("## Distribution shift: calibrate on Python's documentation, evaluate on WikiText\n")
        w("%s removed; calibration on %s random windows of the Python 3.11 documentation as Debian packages it "
          "(`%s`, %s tokens; scripts/fetch_shift_corpus.sh) instead of WikiText; the same WikiText test windows.\n"
          % (pct(sr), calib, meta.get("shift_text"), meta.get("shift_tokens")))
        rows = []
        for m in ("flap", "rcpu_none", "rcpu_rotation", "rcpu_rotation_scale", "ridge"):
            wiki = main_run(m, sr)
            py = find(m, sr, "shift", corpus="pydoc")
            if not py:
                continue
            a, b = (num(wiki["test_ppl"]) if wiki else math.nan), num(py["test_ppl"])
            rows.append([NAMES[m], ppl(a), ppl(b), "%+.1f%%" % (100 * (b / a - 1)) if not math.isnan(a + b) else ""])
        w(table(["method", "calibrated on WikiText", "calibrated on Python docs", "change"], rows) + "\n")

    # Timing.
    w("## Time\n")
    if layers:
        per = {}
        for L in layers:
            per.setdefault(L["key"].split("-r")[0], []).append(num(L["seconds_prune"]))
        rows = []
        for m in ("wanda_sp", "flap", "rcpu_rotation", "rcpu_rotation_scale", "ridge", "rcpu_rotation_per_head"):
            v = [x for x in per.get(m, []) if not math.isnan(x)]
            if v:
                rows.append([NAMES[m], "%.1f" % (1000 * statistics.median(v)), "%.1f" % (1000 * max(v))])
        w("Time to score, prune and compensate o_proj and down_proj of one layer (both modules, from their "
          "statistics; the dense and pruned forward passes are not included), over all layers and runs:\n")
        w(table(["method", "median ms per layer", "max ms"], rows) + "\n")
    pr = [num(r["prune_seconds"]) for r in runs if r["method_id"] != "dense" and int(r["calib_windows"] or 0) == int(calib)]
    pr = [x for x in pr if not math.isnan(x) and x > 0]
    if pr:
        w("A whole pruning run (%s calibration windows through all layers, dense and pruned passes included): "
          "median %.0f s.\n" % (calib, statistics.median(pr)))
    w("The whole study: %s s (%.1f min), %s threads; load average at start and end: %s / %s.\n"
      % (meta.get("total_seconds"), num(meta.get("total_seconds")) / 60, meta.get("threads"),
         meta.get("load_start"), meta.get("load_end")))
    w("## Machine and settings\n")
    rows = [[k, meta[k]] for k in ("date", "cpu", "cores", "memory", "threads", "compiler", "eigen", "blas", "openblas_core", "products",
                                   "backend", "lambdas", "ridge_ratios", "ablation_ratios", "gqa_ratio",
                                   "sweep_ratio") if k in meta]
    w(table(["", ""], rows) + "\n")
    if command:
        w("Regenerate (about as long as the total above):\n\n```sh\n%s\n```\n" % command.strip())
    w("The raw numbers (every run, every layer, every window's loss) are in the CSV files next to this page: "
      "`results/runs.csv`, `results/layers.csv`, `results/window_nll.csv`, `results/meta.csv`.\n")
    with open(out_md, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    print("render_results: wrote %s" % out_md, file=sys.stderr)


if __name__ == "__main__":
    main()
