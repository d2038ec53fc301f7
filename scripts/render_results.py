#!/usr/bin/env python3
"""Turns the CSV files written by rcpu-prune-study into docs/results.md and its two figures.

Usage: render_results.py CSV_DIR OUT_MD [--command "the command that produced CSV_DIR"]

Inputs, in CSV_DIR (tools/rcpu_prune_study.cpp writes them; the study is resumable, so any of them may
hold only part of its plan):
  runs.csv         required. One row per finished run: its definition (method_id, ratio, statistics
                   source, gqa rule, allocation, calibration corpus / windows / seed, relative_lambda,
                   studies), its size (params, heads, kv_heads, channels), test_ppl (over every test
                   window for the runs of the paper's tables, over the side windows for the others;
                   test_windows says which), side_ppl (the side-window subset every run has), val_ppl,
                   timings, and the zero-shot results: zs_docs, zs_mean, zs_<task> (the paper's metric:
                   acc for boolq / piqa / winogrande, acc_norm for the others; fractions 0..1),
                   zs_<task>_acc, zs_<task>_acc_norm. An older runs.csv without the seed, statistics,
                   side_ppl or zs_ columns still renders (perplexity only).
  meta.csv         optional. Settings, machine and the plan's progress (seed, seeds, calib_windows,
                   test_windows, side_windows, ratios, studies, zeroshot_docs, runs_planned, runs_done,
                   runs_remaining, complete, run_seconds_total, total_seconds, n_heads, ...).
  comparisons.csv  optional. Paired bootstrap 95% intervals (ratio, method_key, baseline_key, metric,
                   estimate, lo, hi, n): each main method against FLAP and against the rotation,
                   each statistics-study method with dense statistics against itself layer by layer,
                   the ablation's one-module rotations against the rotation of both; metric
                   ppl_ratio (PPL method / PPL baseline), zs_mean or zs_<task> (accuracy difference,
                   fractions). Without it the claims fall back to point estimates.
  layers.csv       optional. One row per run and layer (the time-per-layer table).

Outputs: OUT_MD and, next to it, <name>-ratio.svg (test perplexity against the pruning ratio, one line
per method) and <name>-calibration.svg (perplexity against the number of calibration windows).

The page: a banner when the study is partial (meta complete = no: runs done / remaining, time left),
the setup (with how many query heads each ratio really removes per layer), the perplexity table (the
paper's Table 1), the zero-shot table per ratio (Table 2), paired 95% intervals against FLAP and the
rotation, the paper's claims tested (holds / no significant difference / reversed), calibration seeds,
statistics source, ablation, the ridge lambda sweeps, adaptive allocation, GQA rules, calibration size,
distribution shift, time and machine. Side tables compare like with like: perplexity over every test
window when all their runs have it, else over the side windows. A cell whose run has not finished
says "not yet run". Every sentence about which method wins is computed from the numbers, and the page
depends only on the inputs (no clock, no randomness). Python's standard library only.
"""
import csv
import math
import os
import re
import statistics
import sys

NOT_RUN = "not yet run"
# Rows of the paper's tables. "flap_dense": FLAP with statistics `dense` (every layer's statistics from
# the dense model in one pass, as FLAP's own code collects them); "flap": layer-by-layer statistics.
MAIN_ORDER = [
    "wanda_sp", "flap", "flap_dense", "rcpu_none", "rcpu_rotation", "rcpu_rotation_scale", "rcpu_rotation_bias",
    "ridge", "rcpu_rotation_ridge", "rcpu_rotation_per_head", "rcpu_rotation_proper",
]
# Rows evaluated on the side windows only (no zero-shot): rcpu's extra rotation variants.
SUBSET_ROWS = ("rcpu_rotation_per_head", "rcpu_rotation_proper")
ZS_ORDER = [m for m in MAIN_ORDER if m not in SUBSET_ROWS]
TASKS = [("boolq", "BoolQ"), ("piqa", "PIQA"), ("hellaswag", "HellaSwag"), ("winogrande", "WinoGrande"),
         ("arc_easy", "ARC-e"), ("arc_challenge", "ARC-c"), ("openbookqa", "OBQA")]
NAMES = {
    "dense": "dense",
    "wanda_sp": "Wanda-sp (no compensation)",
    "flap": "FLAP (WIFV + bias)",
    "flap_dense": "FLAP (WIFV + bias), dense statistics as in FLAP's code",
    "flap_alam": "FLAP (WIFV + bias), AL-AM allocation",
    "rcpu_none": "RCPU score, no compensation",
    "rcpu_rotation": "RCPU rotation",
    "rcpu_rotation_scale": "RCPU rotation + scale",
    "ridge": "proximal ridge LS(lambda), lambda chosen on validation",
    "rcpu_rotation_ridge": "ridge toward the rotation (ours), lambda chosen on validation",
    "rcpu_rotation_bias": "rotation + bias (ours)",
    "rcpu_rotation_per_head": "per-head block rotation on o_proj (ours)",
    "rcpu_rotation_proper": "proper rotation, det fix (ours)",
    "rcpu_rotation_o_only": "RCPU rotation, o_proj only",
    "rcpu_rotation_down_only": "RCPU rotation, down_proj only",
    "rcpu_rotation_alam": "RCPU rotation, AL-AM allocation",
}
PAPER_LABEL = {"flap": "FLAP", "wanda_sp": "Wanda-sp", "ridge": "Prop.Score + LS(lambda_best)",
               "rcpu_rotation": "RCPU Rot.", "rcpu_rotation_scale": "RCPU Rot.+Scale", "rcpu_none": "proposed score, no compensation"}
# The paper's numbers (METHOD.md section 6, LLaMA-7B): WikiText-2 perplexity and mean zero-shot accuracy (%).
PAPER_PPL = {0.1: {"wanda_sp": 14.66, "flap": 14.14, "rcpu_rotation": 13.55, "rcpu_rotation_scale": 13.52, "rcpu_none": 13.96},
             0.2: {"wanda_sp": 16.70, "flap": 15.36, "rcpu_rotation": 14.40, "rcpu_rotation_scale": 14.55, "rcpu_none": 16.85},
             0.3: {"wanda_sp": 24.13, "flap": 18.59, "rcpu_rotation": 18.35, "rcpu_rotation_scale": 18.21, "rcpu_none": 21.94}}
PAPER_ZS = {0.1: {"flap": 63.80, "wanda_sp": 63.71, "ridge": 61.62, "rcpu_rotation": 64.01, "rcpu_rotation_scale": 63.86},
            0.2: {"flap": 61.32, "wanda_sp": 60.78, "ridge": 56.83, "rcpu_rotation": 61.57, "rcpu_rotation_scale": 61.49},
            0.3: {"flap": 56.20, "wanda_sp": 54.00, "ridge": 51.73, "rcpu_rotation": 55.50, "rcpu_rotation_scale": 56.34}}
EPS = 1e-9  # an interval bound closer than this to 0 (or 1) touches it
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#393b79", "#637939"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_header(path):
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def intval(x, default=0):
    v = num(x)
    return default if math.isnan(v) else int(round(v))


def nan(v):
    return v is None or math.isnan(v)


def ppl(x):
    v = num(x)
    return "n/a" if math.isnan(v) else "%.2f" % v


def pct(r):
    return "%g%%" % round(100 * r, 1)


def acc(v):
    """A fraction as a percentage with 2 decimals."""
    return "n/a" if nan(v) else "%.2f" % (100 * v)


def signed(v, digits=2):
    s = "%+.*f" % (digits, v)
    return s.replace("-", "+", 1) if float(s) == 0 else s  # no "-0.00"


def hms(s):
    t = int(s + 0.5)
    if t >= 3600:
        return "%dh%02dm" % (t // 3600, (t % 3600) // 60)
    return "%dm%02ds" % (t // 60, t % 60)


def studies(run):
    return set(run["studies"].split(";")) if run.get("studies") else set()


def close(a, b):
    return not nan(a) and not nan(b) and abs(a - b) < 1e-9


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def spread(values, fmt):
    """'mean M, min-max, sd S (n values)' of the finite values."""
    v = [x for x in values if not nan(x)]
    if not v:
        return NOT_RUN
    if len(v) == 1:
        return "%s (1 seed so far)" % fmt(v[0])
    return "mean %s, %s-%s, sd %s (%d seeds)" % (fmt(statistics.mean(v)), fmt(min(v)), fmt(max(v)),
                                                 fmt(statistics.stdev(v)), len(v))


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
# The study's CSV files, and how to find a run in them.
MAIN_SEED = object()


class Study:
    def __init__(self, src):
        path = lambda name: os.path.join(src, name)
        self.runs = read_csv(path("runs.csv"))
        self.header = set(read_header(path("runs.csv")))
        self.meta = {r["key"]: r["value"] for r in read_csv(path("meta.csv"))} if os.path.exists(path("meta.csv")) else {}
        self.layers = read_csv(path("layers.csv")) if os.path.exists(path("layers.csv")) else []
        self.comps = read_csv(path("comparisons.csv")) if os.path.exists(path("comparisons.csv")) else None
        # window_nll.csv is left out of the repository (.gitignore): it passes 1 MiB, and the same
        # losses are in the committed cache (results/cache/*.json), from which the study rewrites it.
        self.files = [n for n in ("runs.csv", "comparisons.csv", "layers.csv", "meta.csv") if os.path.exists(path(n))]
        self.by_key = {r["key"]: r for r in self.runs}
        self.comp = {}
        for c in self.comps or []:
            self.comp[(c["method_key"], c["baseline_key"], c["metric"])] = c
        m = self.meta
        self.seed = m.get("seed", "")
        self.calib = m.get("calib_windows", "128")
        self.full_windows = intval(m["test_windows"]) if m.get("test_windows") else None
        self.has_side = "side_ppl" in self.header
        self.tasks = [(t, name) for t, name in TASKS if "zs_" + t in self.header]
        self.has_zs = "zs_mean" in self.header and any(not nan(num(r.get("zs_mean"))) for r in self.runs)
        self.dense = next((r for r in self.runs if r.get("method_id") == "dense"), None)
        self.present = set()
        for r in self.runs:
            self.present |= studies(r)
        self.planned = set(m["studies"].split()) if m.get("studies") else set(self.present)
        if m.get("ratios"):
            self.ratios = sorted(set(num(x) for x in m["ratios"].split()) - {0.0})
        else:
            self.ratios = sorted(set(num(r["ratio"]) for r in self.runs if "main" in studies(r)) - {0.0})
        self.sr = num(m.get("sweep_ratio", "0.2"))
        cfg = m.get("model_config", "")
        self.model_name = os.path.splitext(m.get("model", "the model"))[0]
        self.n_layers = intval(re.search(r"(\d+) layers", cfg).group(1)) if re.search(r"(\d+) layers", cfg) else 0
        q = re.search(r"(\d+) query", cfg)
        self.n_heads = intval(m.get("n_heads")) or (intval(q.group(1)) if q else 0)
        if not self.n_heads and self.dense and self.n_layers:
            self.n_heads = intval(self.dense.get("heads")) // self.n_layers
        f = re.search(r"ffn (\d+)", cfg)
        self.ffn = intval(f.group(1)) if f else 0

    # --- finding runs
    def find(self, method, ratio=None, study=None, corpus="wikitext", windows=None, seed=MAIN_SEED, stats=None,
             pred=None):
        for r in self.runs:
            if r.get("method_id") != method:
                continue
            if ratio is not None and not close(num(r.get("ratio")), ratio):
                continue
            if study is not None and study not in studies(r):
                continue
            if corpus is not None and (r.get("calib_corpus") or "wikitext") != corpus:
                continue
            if windows is not None and intval(r.get("calib_windows")) != intval(windows):
                continue
            if seed is not None and (r.get("seed") or self.seed) != (self.seed if seed is MAIN_SEED else str(seed)):
                continue
            if stats is not None and (r.get("statistics") or "pruned_prefix") != stats:
                continue
            if pred is not None and not pred(r):
                continue
            return r
        return None

    def main_run(self, row, ratio):
        """The run of a row of the paper's tables at a ratio (main seed, calibration and rules), or None."""
        if row == "dense":
            return self.dense
        plain = lambda r: ((r.get("gqa") or "query_heads") == "query_heads" and
                           (r.get("allocation") or "uniform") == "uniform")
        if row == "flap_dense":
            return self.find("flap", ratio, "main", windows=self.calib, stats="dense", pred=plain)
        study = {"ridge": "ridge_best", "rcpu_rotation_ridge": "rotation_ridge_best"}.get(row, "main")
        return self.find(row, ratio, study, windows=self.calib, stats="pruned_prefix", pred=plain)

    def row_of(self, run):
        if run is None:
            return None
        m = run.get("method_id")
        return "flap_dense" if m == "flap" and run.get("statistics") == "dense" else m

    # --- values
    def is_full(self, run):
        """Whether the run was evaluated on every test window of the tables (else the side windows)."""
        return self.full_windows is None or intval(run.get("test_windows")) == self.full_windows

    def test_ppl(self, run):
        return num(run.get("test_ppl")) if run is not None and self.is_full(run) else math.nan

    def side_ppl(self, run):
        if run is None:
            return math.nan
        return num(run.get("side_ppl")) if self.has_side else num(run.get("test_ppl"))

    def zs(self, run, task=None):
        if run is None:
            return math.nan
        if task == "mean_no_boolq":
            return self.zs_no_boolq(run)
        return num(run.get("zs_mean" if task is None else "zs_" + task))

    def zs_no_boolq(self, run):
        """The mean accuracy of the tasks other than BoolQ (all of them present), else nan."""
        if run is None:
            return math.nan
        v = [num(run.get("zs_" + t)) for t, _ in TASKS if t != "boolq"]
        return math.nan if any(nan(x) for x in v) else sum(v) / len(v)

    def boolq_yes(self, run):
        return math.nan if run is None else num(run.get("zs_boolq_yes"))

    def choose(self, runs):
        """Perplexity that compares like with like over `runs`: (getter, 'test' or 'side')."""
        runs = [r for r in runs if r is not None]
        if not self.has_side or all(self.is_full(r) for r in runs):
            return (lambda r: num(r.get("test_ppl")) if r is not None else math.nan), "test"
        return self.side_ppl, "side"

    def windows_label(self, kind):
        m = self.meta
        if kind == "side":
            return "the %s side windows" % m.get("side_windows", "48")
        total = m.get("test_windows_total")
        if self.full_windows is not None and total and intval(total) == self.full_windows:
            return "all %d test windows" % self.full_windows
        return "%s test windows%s" % (m.get("test_windows", "the"), " (of %s)" % total if total else "")

    def dense_ppl(self, kind):
        return self.side_ppl(self.dense) if kind == "side" else num((self.dense or {}).get("test_ppl"))

    def run_time(self, run):
        return sum(0 if nan(num(run.get(k))) else num(run.get(k))
                   for k in ("prune_seconds", "test_seconds", "val_seconds", "zs_seconds"))

    # --- comparisons
    def compare(self, a, b, metric):
        """a against b: dict(est, lo, hi, n, point) from comparisons.csv (either direction), else a point
        estimate from runs.csv (lo = hi = nan), else None."""
        if a is None or b is None:
            return None
        c = self.comp.get((a["key"], b["key"], metric))
        if c is not None:
            return dict(est=num(c["estimate"]), lo=num(c["lo"]), hi=num(c["hi"]), n=c["n"], point=False)
        c = self.comp.get((b["key"], a["key"], metric))
        if c is not None:
            e, lo, hi = num(c["estimate"]), num(c["lo"]), num(c["hi"])
            if metric == "ppl_ratio":
                inv = lambda x: 1 / x if not nan(x) and x > 0 else math.nan
                return dict(est=inv(e), lo=inv(hi), hi=inv(lo), n=c["n"], point=False)
            return dict(est=-e, lo=-hi, hi=-lo, n=c["n"], point=False)
        if metric == "ppl_ratio":
            get, _ = self.choose([a, b])
            e = get(a) / get(b) if get(b) > 0 else math.nan
        else:
            e = self.zs(a, None if metric == "zs_mean" else metric[3:]) - self.zs(b, None if metric == "zs_mean" else metric[3:])
        if nan(e):
            return None
        return dict(est=e, lo=math.nan, hi=math.nan, n="", point=True)


def better(c, metric):
    """'better' / 'worse' / 'none' for the method of comparison c (lower perplexity, higher accuracy is
    better): its interval entirely on one side of 1 (perplexity ratio) or 0 (accuracy difference); for a
    point estimate, its sign alone."""
    if metric == "ppl_ratio":
        lo, hi = (c["est"], c["est"]) if c["point"] else (c["lo"], c["hi"])
        return "better" if hi < 1 - EPS else "worse" if lo > 1 + EPS else "none"
    lo, hi = (c["est"], c["est"]) if c["point"] else (c["lo"], c["hi"])
    return "better" if lo > EPS else "worse" if hi < -EPS else "none"


def fmt_cmp(c, metric, unit=" points"):
    if c is None:
        return "n/a"
    if metric == "ppl_ratio":
        # A fourth digit where a bound would print as 1.000: the interval's side of 1 must show.
        d = 4 if not c["point"] and "1.000" in ("%.3f" % c["lo"], "%.3f" % c["hi"]) else 3
        s = "x%.*f" % (d, c["est"])
        return s + ("" if c["point"] else " [%.*f, %.*f]" % (d, c["lo"], d, c["hi"]))
    s = signed(100 * c["est"]) + unit
    return s + ("" if c["point"] else " [%s, %s]" % (signed(100 * c["lo"]), signed(100 * c["hi"])))


VERDICT = {"better": "significantly better", "none": "no significant difference", "worse": "significantly worse"}


def ci_verdict(c, metric):
    b = better(c, metric)
    if c["point"]:
        return {"better": "better (point estimate only)", "worse": "worse (point estimate only)",
                "none": "equal (point estimate only)"}[b]
    return VERDICT[b]


def claim_state(c, metric, expect):
    """'holds' / 'none' / 'reversed' for the claim that the method is `expect` ('better' or 'worse')."""
    b = better(c, metric)
    return "none" if b == "none" else ("holds" if b == expect else "reversed")


def claim_word(state, point):
    if point:
        return {"holds": "holds on the point estimate", "none": "no difference", "reversed": "reversed on the point estimate"}[state]
    return {"holds": "holds", "none": "no significant difference", "reversed": "reversed"}[state]


# ------------------------------------------------------------------------------------------------
def render(src, out_md, command=""):
    S = Study(src)
    meta, runs, dense, ratios, calib = S.meta, S.runs, S.dense, S.ratios, S.calib
    out_dir = os.path.dirname(out_md) or "."
    base = os.path.splitext(os.path.basename(out_md))[0]
    model_name = S.model_name
    full_label = S.windows_label("test")
    md = []
    w = md.append
    w("# Results: pruning %s with rcpu, every method, the paper's protocol\n" % model_name)
    w("<!-- Generated by scripts/render_results.py from the CSV files of rcpu-prune-study; do not edit by hand:"
      " re-run scripts/reproduce_results.sh. -->\n")

    # Partial study banner.
    def remaining_estimate():
        full = [r for r in runs if r is not dense and S.is_full(r) and intval(r.get("test_windows")) > 0]
        t = [S.run_time(r) for r in full]
        t = [x for x in t if x > 0]
        return (statistics.mean(t), len(t)) if t else (math.nan, 0)

    left = intval(meta.get("runs_remaining"))
    if meta.get("complete") == "no":
        avg, n_avg = remaining_estimate()
        w("> **Partial study: %s of %s planned runs done, %d still to run**%s. Every cell whose run has not "
          "finished says \"%s\"; the same command (`scripts/reproduce_results.sh` with the same options) goes on "
          "where it stopped, and the page is rendered again from all the finished runs.\n"
          % (meta.get("runs_done", "?"), meta.get("runs_planned", "?"), left,
             " (about %s more at the average pace of the finished full-evaluation runs)" % hms(avg * left)
             if not nan(avg) and left else "", NOT_RUN))
    elif "complete" not in meta:
        missing = [x for x in ("main", "ablation", "ridge", "gqa", "adaptive", "sweep", "shift") if x not in S.present]
        if missing or len(ratios) < 3:
            w("> **Partial run.** Studies in this page: %s; ratios: %s. Not run: %s. The full study is "
              "`scripts/reproduce_results.sh` without options.\n"
              % (", ".join(sorted(S.present - {"ridge_best"})) or "none", ", ".join(pct(r) for r in ratios) or "none",
                 ", ".join(missing) if missing else "none"))
    not_planned = [x for x in ("main", "ridge", "rotation_ridge", "seeds", "shift", "statistics", "ablation", "gqa",
                               "adaptive", "sweep") if x not in S.planned and x not in S.present]
    if meta.get("studies") and not_planned:
        w("Studies left out of this study's plan (`--studies`): %s.\n" % ", ".join(not_planned))

    # Setup.
    side = meta.get("side_windows")
    w("Model: `%s` (%s). Text: `%s`, prepared as the paper's evaluation does and tokenized once "
      "(%s tokens), split in two halves of tokens. **Calibration**: %s random %s-token windows of the first half "
      "(seed %s). **Perplexity** (exp of the mean token cross-entropy) on non-overlapping %s-token windows of "
      "the second half: the runs of the paper's tables on %s%s. **Validation** (ridge lambda only): %s aligned "
      "windows of the first half that no calibration window touches.\n"
      % (meta.get("model"), meta.get("model_config"), meta.get("text"), meta.get("tokens"), calib,
         meta.get("seq"), meta.get("seed"), meta.get("seq"), full_label,
         ("; the side studies (ablation, GQA rules, adaptive allocation, calibration size, rcpu's extra rotation "
          "variants) on %s evenly spaced ones, a subset every run is also scored on (`side_ppl`), so that side "
          "tables compare like with like" % side) if side else "", meta.get("val_windows")))
    if S.has_zs:
        w("**Zero-shot accuracy**: the paper's seven tasks (BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, "
          "OpenBookQA) scored as lm-evaluation-harness scores them (`acc` for BoolQ, PIQA and WinoGrande, "
          "`acc_norm` for the others), on %s of each task ([zeroshot.md](%s)), for the runs of the paper's tables "
          "and of the seeds, statistics and shift studies.\n" % (docs_text(meta), zeroshot_link(out_dir)))
    w("Pipeline (`rcpu::model::prune_models`, METHOD.md section 5): layer by layer, statistics at the inputs "
      "of o_proj and down_proj (by default collected on the outputs of the already-pruned layers: "
      "`pruned_prefix`); o_proj loses heads, then down_proj loses MLP channels (uniform ratio: floor(ratio x "
      "units) per layer); the pruned layer feeds the next. Heads under grouped-query attention: rule "
      "`query_heads` (remove the lowest-scoring query heads anywhere; a KV head goes only when its whole group "
      "is gone) unless a table says otherwise. The pruned models are really smaller; their parameter counts "
      "are in the tables.\n")
    w(head_budget(S) + "\n")
    if dense is not None:
        line = "Dense model (%s parameters): perplexity **%s** on %s" % (dense.get("params"), ppl(dense.get("test_ppl")),
                                                                        full_label)
        if S.has_side and side:
            line += ", %s on the %s side windows" % (ppl(dense.get("side_ppl")), side)
        if not nan(S.zs(dense)):
            line += "; mean zero-shot accuracy **%s%%**" % acc(S.zs(dense))
        w(line + ".\n")
    else:
        w("Dense model: %s.\n" % NOT_RUN)

    # ---- Table 1.
    w("## Perplexity (the paper's Table 1 on this model)\n")
    w("Test perplexity on %s, lower is better; in brackets the ratio to the dense perplexity.%s\n"
      % (full_label, (" Cells marked † are rcpu's extra rotation variants, evaluated on the %s side windows only "
                      "(their ratio is to the dense perplexity on those windows, %s): compare them with each "
                      "other and with the side tables, not with the other rows." % (side, ppl(S.side_ppl(dense))))
                     if S.has_side and side else ""))
    hdr = ["method"] + ["%s removed" % pct(r) for r in ratios]
    rows, series = [], []
    dense_test, dense_side = S.dense_ppl("test"), S.dense_ppl("side")
    for m in MAIN_ORDER:
        cells, pts, any_run = [], [], False
        for r in ratios:
            run = S.main_run(m, r)
            if run is None:
                cells.append(NOT_RUN)
                continue
            any_run = True
            extra = ", lambda %g" % num(run.get("relative_lambda")) if m in ("ridge", "rcpu_rotation_ridge") else ""
            if S.is_full(run):
                v = num(run.get("test_ppl"))
                pts.append((100 * r, v))
                cells.append("%s (x%.2f%s)" % (ppl(v), v / dense_test, extra) if dense_test > 0 else ppl(v) + extra)
            else:
                v = S.side_ppl(run)
                cells.append("%s† (x%.2f%s)" % (ppl(v), v / dense_side, extra) if dense_side > 0 else ppl(v) + "†")
        if any_run or m not in SUBSET_ROWS or "main" in S.planned:
            rows.append([NAMES[m]] + cells)
        if pts and m not in SUBSET_ROWS:
            series.append((NAMES[m], pts))
    prow = ["parameters"]
    for r in ratios:
        run = next((S.main_run(m, r) for m in ("rcpu_rotation", "wanda_sp", "flap") if S.main_run(m, r)), None)
        prow.append("%s (%.1f%% of dense)" % (run["params"], 100 * num(run["params"]) / num(run["params_dense"]))
                    if run else NOT_RUN)
    rows.append(prow)
    w(table(hdr, rows) + "\n")
    ratio_svg = base + "-ratio.svg"
    if series:
        svg_lines(os.path.join(out_dir, ratio_svg), "%s: test perplexity vs pruning ratio" % model_name,
                  "heads and MLP channels removed per layer (%)", "perplexity (log scale)", series,
                  hline=("dense %.1f" % dense_test, dense_test) if dense_test > 0 else None)
        w("![perplexity against ratio](%s)\n" % ratio_svg)

    w("### What the table shows\n")
    shown = False
    for r in ratios:
        vals = {m: S.test_ppl(S.main_run(m, r)) for m in MAIN_ORDER if m not in SUBSET_ROWS}
        vals = {m: v for m, v in vals.items() if not nan(v)}
        if not vals:
            continue
        shown = True
        best = min(vals, key=vals.get)
        rot = vals.get("rcpu_rotation", math.nan)
        line = "- At %s: the lowest perplexity is %s (%.2f)." % (pct(r), NAMES[best], vals[best])
        for peer in ("wanda_sp", "flap", "flap_dense"):
            if peer in vals and not nan(rot):
                line += " RCPU rotation %s %s (%.2f vs %.2f, %+.1f%%)." % (
                    "beats" if rot < vals[peer] else "does not beat", NAMES[peer], rot, vals[peer],
                    100 * (rot / vals[peer] - 1))
        if "rcpu_none" in vals and not nan(rot):
            line += " The rotation %s the same pruning without compensation (%.2f)." % (
                "improves on" if rot < vals["rcpu_none"] else "is worse than", vals["rcpu_none"])
        for m in ("ridge", "rcpu_rotation_ridge"):
            if m in vals and not nan(rot):
                line += " %s: %.2f (%s than the rotation)." % (NAMES[m], vals[m], "better" if vals[m] < rot else "worse")
        w(line)
    if not shown:
        w("Nothing to compare yet: no pruned run of the table has finished.")
    w("")

    # ---- Table 2.
    w("## Zero-shot accuracy (the paper's Table 2 on this model)\n")
    if not S.has_zs:
        w("This study has no zero-shot results (its runs.csv has no `zs_` values: an older study, or one run "
          "without `--zeroshot-dir`; see [zeroshot.md](%s)).\n" % zeroshot_link(out_dir))
    else:
        w("Accuracy in %%, higher is better: the paper's metric per task (`acc` for BoolQ, PIQA and WinoGrande, "
          "`acc_norm` for the others), their mean, and the perplexity on %s. Each task is scored on %s: a fixed, "
          "evenly spaced subset of its validation documents (rows i x total / N), the same documents for every "
          "run ([zeroshot.md](%s) explains how the numbers match lm-evaluation-harness). Bold: the best mean of "
          "the pruned models.\n" % (full_label, docs_text(meta), zeroshot_link(out_dir)))
        has_yes = "zs_boolq_yes" in S.header and any(t == "boolq" for t, _ in S.tasks)
        render_boolq_note(S, w)
        hdr = ["method"] + [name for _, name in S.tasks] + ["mean", "mean w/o BoolQ"] + (
            ["BoolQ: says yes"] if has_yes else []) + ["PPL"]
        for r in ratios:
            rows = []
            means = {m: S.zs(S.main_run(m, r)) for m in ZS_ORDER}
            finite = [v for v in means.values() if not nan(v)]
            top = max(finite) if finite else math.nan
            for m in ["dense"] + ZS_ORDER:
                run = S.main_run(m, r)
                if run is None:
                    rows.append([NAMES[m]] + [NOT_RUN] * (len(hdr) - 1))
                    continue
                name = NAMES[m] + (": %g" % num(run.get("relative_lambda")) if m in ("ridge", "rcpu_rotation_ridge") else "")
                mean = acc(S.zs(run))
                if m != "dense" and close(S.zs(run), top):
                    mean = "**%s**" % mean
                rows.append([name + (" (reference)" if m == "dense" else "")] + [acc(S.zs(run, t)) for t, _ in S.tasks]
                            + [mean, acc(S.zs_no_boolq(run))] + ([acc(S.boolq_yes(run))] if has_yes else [])
                            + [ppl(S.test_ppl(run))])
            w("### %s removed\n" % pct(r))
            w(table(hdr, rows) + "\n")
            paper = PAPER_ZS.get(round(r, 6))
            if paper:
                w("Paper (LLaMA-7B, dense mean 66.00) at %s, mean accuracy: %s.\n" % (
                    pct(r), ", ".join("%s %.2f" % (PAPER_LABEL[k], v) for k, v in paper.items())))

    # ---- Intervals.
    w("## How sure: paired bootstrap 95% intervals\n")
    if S.comps is None:
        w("No comparisons.csv in this study's folder: the intervals are not computed yet (rcpu-prune-study writes "
          "them at the end of each invocation, from the finished runs).\n")
    else:
        w("From comparisons.csv: each method against FLAP (layer-by-layer statistics) and against the RCPU "
          "rotation at the same ratio, on the same test windows (resampled for the perplexity ratio) and the same "
          "documents (resampled within each task for the mean accuracy). Δ accuracy: method minus baseline, in "
          "points; PPL ratio: method / baseline. **Significantly better / worse**: the interval lies entirely on "
          "one side of 0 (accuracy) or 1 (perplexity ratio); otherwise, including an interval that just reaches 0 "
          "(shown as +0.00), **no significant difference**.\n")
        for r in ratios:
            rows = []
            for m in ZS_ORDER:
                run = S.main_run(m, r)
                cells = [NAMES[m]]
                for base_row in ("flap", "rcpu_rotation"):
                    b = S.main_run(base_row, r)
                    for metric in ("zs_mean", "zs_mean_no_boolq", "ppl_ratio"):
                        if m == base_row:
                            cells.append("(baseline)")
                        elif run is None or b is None:
                            cells.append(NOT_RUN)
                        else:
                            c = S.compare(run, b, metric)
                            cells.append("%s: %s" % (fmt_cmp(c, metric, ""), ci_verdict(c, metric)) if c else "no interval")
                rows.append(cells)
            w("### %s removed\n" % pct(r))
            w(table(["method", "Δ mean accuracy vs FLAP (points) [95% CI]", "Δ mean w/o BoolQ vs FLAP",
                     "PPL ratio vs FLAP [95% CI]", "Δ mean accuracy vs rotation (points) [95% CI]",
                     "Δ mean w/o BoolQ vs rotation", "PPL ratio vs rotation [95% CI]"], rows) + "\n")

    # ---- Claims.
    render_claims(S, w)

    # ---- Seeds.
    if "seeds" in S.planned or "seeds" in S.present:
        render_seeds(S, w)
    if "statistics" in S.planned or "statistics" in S.present:
        render_statistics(S, w)
    render_side_studies(S, w, out_dir, base)
    render_time(S, w)

    w("## Machine and settings\n")
    rows = [[k, meta[k]] for k in ("date", "cpu", "cores", "memory", "threads", "compiler", "eigen", "blas", "openblas_core",
                                   "products", "backend", "ratios", "lambdas", "ridge_ratios", "ablation_ratios",
                                   "gqa_ratio", "sweep_ratio", "seed", "seeds", "calib_windows", "test_windows",
                                   "test_windows_total", "side_windows", "val_windows", "zeroshot_per_task",
                                   "zeroshot_docs", "studies", "runs_planned", "runs_done", "runs_remaining", "complete")
            if meta.get(k)]
    w(table(["", ""], rows) + "\n")
    if command:
        w("Regenerate (a complete study takes about as long as its runs' total above; a partial one goes on "
          "where it stopped):\n\n```sh\n%s\n```\n" % command.strip())
    rel = os.path.relpath(os.path.abspath(src), os.path.abspath(out_dir))
    w("The raw numbers (every run, every layer, every interval) are in the CSV files next to this page: %s. "
      "Every window's loss is in the run cache `%s/cache/*.json`; the study command also writes them as one "
      "table, `%s/window_nll.csv`, which is not committed (it passes 1 MiB).\n"
      % (", ".join("`%s`" % os.path.join(rel, f).replace(os.sep, "/") for f in S.files), rel.replace(os.sep, "/"),
         rel.replace(os.sep, "/")))
    with open(out_md, "w", encoding="utf-8") as f:
        f.write("\n".join(md))


def render_boolq_note(S, w):
    """What BoolQ accuracy measures on this model: how often each run answers yes (runs.csv zs_boolq_yes)
    against the share of yes among the gold answers (meta zs_boolq_gold_yes)."""
    if "zs_boolq_yes" not in S.header:
        return
    gold = num(S.meta.get("zs_boolq_gold_yes"))
    dense_yes = S.boolq_yes(S.dense)
    pruned = [(S.boolq_yes(x), num(x.get("zs_boolq"))) for x in S.runs
              if x.get("method_id") != "dense" and not nan(S.boolq_yes(x))]
    if nan(dense_yes) or not pruned:
        return
    lo, hi = min(y for y, _ in pruned), max(y for y, _ in pruned)
    accs = [a for _, a in pruned if not nan(a)]
    dense_acc = num(S.dense.get("zs_boolq"))
    swing = max(abs(a - dense_acc) for a in accs) if accs and not nan(dense_acc) else math.nan
    w("**BoolQ on this model mostly measures a yes/no bias.** %sThe dense model answers yes on %s%% of the BoolQ "
      "documents (accuracy %s); the pruned models of this study on %s%% to %s%%. A model that always answered yes "
      "would score %s, one that always answered no %s, so BoolQ accuracy moves with the bias by up to %s points "
      "here (%s points of the mean of %d tasks) whatever the method. The column *mean w/o BoolQ* (and its "
      "intervals below) is the comparison without it; *BoolQ: says yes* is the share of yes answers.\n"
      % ("Of its gold answers %s%% are yes. " % acc(gold) if not nan(gold) else "", acc(dense_yes), acc(dense_acc),
         acc(lo), acc(hi), acc(gold) if not nan(gold) else "the share of yes answers",
         acc(1 - gold) if not nan(gold) else "the rest", acc(swing), acc(swing / len(S.tasks)) if not nan(swing) else "n/a", len(S.tasks)))


def docs_text(meta):
    docs = {}
    for item in meta.get("zeroshot_docs", "").split():
        k, _, v = item.partition(":")
        docs[k] = v
    if not docs:
        n = meta.get("zeroshot_per_task")
        return "at most %s documents" % n if n else "a fixed subset of the documents"
    if len(set(docs.values())) == 1:
        return "%s documents" % next(iter(docs.values()))
    names = dict(TASKS)
    return "these numbers of documents (%s)" % ", ".join("%s %s" % (names.get(k, k), v) for k, v in docs.items())


def zeroshot_link(out_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.path.join(os.path.dirname(here), "docs", "zeroshot.md")
    return os.path.relpath(target, os.path.abspath(out_dir)).replace(os.sep, "/")


def head_budget(S):
    """How many query heads (and MLP channels) each ratio really removes per layer, from the runs."""
    if not S.n_layers or not S.n_heads or not S.ratios:
        return "How many heads each ratio removes: n/a (the model's configuration is not in meta.csv)."
    heads, chans, planned = [], [], False
    for r in S.ratios:
        run = next((S.main_run(m, r) for m in ZS_ORDER + list(SUBSET_ROWS) if S.main_run(m, r)), None)
        if run is not None and run.get("heads"):
            heads.append((S.n_layers * S.n_heads - intval(run.get("heads"))) / S.n_layers)
            chans.append((S.n_layers * S.ffn - intval(run.get("channels"))) / S.n_layers if S.ffn and run.get("channels")
                         else math.floor(r * S.ffn + 1e-9))
        else:
            heads.append(math.floor(r * S.n_heads + 1e-9))
            chans.append(math.floor(r * S.ffn + 1e-9))
            planned = True
    s = ("**How much of the attention budget the comparison exercises.** %s's %d query heads lose %s per layer at "
         "%s%% (%s of the heads)" % (S.model_name, S.n_heads, "/".join("%g" % p for p in heads),
                                     "/".join("%g" % round(100 * r, 1) for r in S.ratios),
                                     "/".join("%g%%" % round(100 * p / S.n_heads, 1) for p in heads)))
    if S.ffn:
        s += ", while the MLP loses %s of its %d channels per layer" % ("/".join("%g" % c for c in chans), S.ffn)
    s += "%s." % (" (from the finished runs; the floor rule for ratios with none yet)" if planned else "")
    zero = [r for r, p in zip(S.ratios, heads) if p == 0]
    if zero:
        s += (" At %s no head is removed, so there the comparison tests the MLP side (down_proj) only; the "
              "attention side (o_proj) of every comparison rests on %s." % (
                  ", ".join(pct(r) for r in zero),
                  " and ".join("%g head%s per layer at %s" % (p, "" if p == 1 else "s", pct(r))
                               for r, p in zip(S.ratios, heads) if p > 0) or "no ratio at all"))
    return s


def render_claims(S, w):
    ratios = S.ratios
    w("## The paper's claims on this model\n")
    w("The paper's numbers are for LLaMA-7B (METHOD.md section 6); %s is a much smaller model (%s parameters; "
      "%s), so only the direction of each comparison can carry over. Each claim is tested at every ratio "
      "where both runs have finished, with the paired bootstrap 95%% interval of comparisons.csv: **holds** when "
      "the interval lies entirely on the claimed side, **reversed** when it lies entirely on the other side, "
      "**no significant difference** otherwise.%s\n"
      % (S.model_name, (S.dense or {}).get("params", "?"), S.meta.get("model_config", "").split(", ffn")[0],
         "" if S.comps is not None else " (No comparisons.csv yet: point estimates from runs.csv instead, with "
                                        "no interval.)"))

    def paper_text(a_row, b_row, metric):
        src = PAPER_PPL if metric == "ppl_ratio" else PAPER_ZS
        parts = ["%.2f vs %.2f at %s" % (src[r][a_row], src[r][b_row], pct(r)) for r in sorted(src)
                 if a_row in src[r] and b_row in src[r]]
        return "; ".join(parts)

    def tested(a_row, b_row, metric, expect):
        """Per ratio: (ratio, state or None, text)."""
        out = []
        for r in ratios:
            a, b = S.main_run(a_row, r), S.main_run(b_row, r)
            if a is None or b is None:
                out.append((r, None, "%s: %s" % (pct(r), NOT_RUN)))
                continue
            c = S.compare(a, b, metric)
            if c is None:
                out.append((r, None, "%s: no data for this metric" % pct(r)))
                continue
            st = claim_state(c, metric, expect)
            out.append((r, st, "%s: **%s** (%s)" % (pct(r), claim_word(st, c["point"]), fmt_cmp(c, metric))))
        return out

    def summary(res):
        done = [st for _, st, _ in res if st]
        if not done:
            return "not testable yet"
        return "holds at %d of %d ratios tested, reversed at %d" % (done.count("holds"), len(done), done.count("reversed"))

    def bullet(title, paper, subs):
        w("- **%s**%s" % (title, (" Paper: " + paper + ".") if paper else ""))
        for label, res in subs:
            w("  - %s (%s): %s." % (label, summary(res), "; ".join(t for _, _, t in res)))

    zs_ok = S.has_zs
    # (a)
    if zs_ok:
        bullet("(a) The rotation beats FLAP in zero-shot accuracy.", "mean accuracy, rotation vs FLAP, " +
               paper_text("rcpu_rotation", "flap", "zs_mean"),
               [("against FLAP with layer-by-layer statistics", tested("rcpu_rotation", "flap", "zs_mean", "better")),
                ("the same, mean without BoolQ", tested("rcpu_rotation", "flap", "zs_mean_no_boolq", "better")),
                ("against FLAP with dense statistics, as the paper's FLAP numbers were made",
                 tested("rcpu_rotation", "flap_dense", "zs_mean", "better")),
                ("the same, mean without BoolQ", tested("rcpu_rotation", "flap_dense", "zs_mean_no_boolq", "better"))])
    # (b)
    bullet("(b) The rotation beats FLAP in perplexity.", "perplexity, rotation vs FLAP, " +
           paper_text("rcpu_rotation", "flap", "ppl_ratio"),
           [("against FLAP with layer-by-layer statistics, PPL ratio < 1", tested("rcpu_rotation", "flap", "ppl_ratio", "better")),
            ("against FLAP with dense statistics", tested("rcpu_rotation", "flap_dense", "ppl_ratio", "better"))])
    # (c)
    subs = [("perplexity, PPL ratio < 1", tested("rcpu_rotation", "wanda_sp", "ppl_ratio", "better"))]
    if zs_ok:
        subs.append(("zero-shot accuracy, Δ > 0", tested("rcpu_rotation", "wanda_sp", "zs_mean", "better")))
        subs.append(("the same, mean without BoolQ", tested("rcpu_rotation", "wanda_sp", "zs_mean_no_boolq", "better")))
    bullet("(c) The rotation beats Wanda-sp.", "perplexity %s; mean accuracy %s" % (
        paper_text("rcpu_rotation", "wanda_sp", "ppl_ratio"), paper_text("rcpu_rotation", "wanda_sp", "zs_mean")), subs)
    # (d) the central claim
    p = tested("ridge", "rcpu_rotation", "ppl_ratio", "better")
    subs = [("LS(lambda) wins perplexity: PPL(ridge) / PPL(rotation) < 1", p)]
    z = None
    if zs_ok:
        z = tested("ridge", "rcpu_rotation", "zs_mean", "worse")
        z6 = tested("ridge", "rcpu_rotation", "zs_mean_no_boolq", "worse")
        subs.append(("LS(lambda) loses zero-shot accuracy: accuracy(ridge) - accuracy(rotation) < 0", z))
        subs.append(("the same, mean without BoolQ", z6))
    bullet("(d) LS(lambda) wins perplexity but loses zero-shot accuracy to the rotation (the paper's central "
           "argument for the rotation).",
           "a tuned proximal ridge reaches about 13.2 vs 13.55 at 10%%; mean accuracy LS(lambda) vs rotation %s"
           % paper_text("ridge", "rcpu_rotation", "zs_mean"), subs)
    if z is not None:
        together = []
        ppl_txt = {"holds": "the ridge wins perplexity", "none": "no significant perplexity difference",
                   "reversed": "the rotation wins perplexity"}
        zs_txt = {"holds": "and the rotation wins accuracy", "none": "with no significant accuracy difference",
                  "reversed": "and the ridge wins accuracy"}
        for (r, sp, _), (_, sz, _), (_, sz6, _) in zip(p, z, z6):
            if sp is None or sz is None:
                continue
            together.append("at %s %s %s: the paper's trade-off %s%s" % (
                pct(r), ppl_txt[sp], zs_txt[sz], "reproduces" if sp == sz == "holds" else "does not reproduce",
                "" if sz6 is None else " (without BoolQ: %s)" % (
                    "reproduces" if sp == sz6 == "holds" else "does not reproduce")))
        w("  - Together: %s." % ("; ".join(together) if together else "not testable yet (both runs needed at a ratio)"))
    # (e) the ridge toward the rotation.
    if any(S.main_run("rcpu_rotation_ridge", r) for r in ratios) or "rotation_ridge" in S.planned:
        subs = [("perplexity against the rotation, PPL ratio < 1", tested("rcpu_rotation_ridge", "rcpu_rotation", "ppl_ratio", "better"))]
        if zs_ok:
            subs.append(("accuracy against the rotation, Δ > 0", tested("rcpu_rotation_ridge", "rcpu_rotation", "zs_mean", "better")))
            subs.append(("the same, mean without BoolQ", tested("rcpu_rotation_ridge", "rcpu_rotation", "zs_mean_no_boolq", "better")))
        subs.append(("perplexity against LS(lambda), PPL ratio < 1", tested("rcpu_rotation_ridge", "ridge", "ppl_ratio", "better")))
        if zs_ok:
            subs.append(("accuracy against LS(lambda), Δ > 0", tested("rcpu_rotation_ridge", "ridge", "zs_mean", "better")))
            subs.append(("the same, mean without BoolQ", tested("rcpu_rotation_ridge", "ridge", "zs_mean_no_boolq", "better")))
        bullet("(e) The ridge toward the rotation (ours) gets the ridge's perplexity and keeps the rotation's "
               "accuracy.", "", subs)
        pairs = [(S.main_run("rcpu_rotation_ridge", r), S.main_run("ridge", r)) for r in ratios]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if pairs and not any(S.comp.get((a["key"], b["key"], "ppl_ratio")) or S.comp.get((b["key"], a["key"], "ppl_ratio"))
                             for a, b in pairs):
            w("  - comparisons.csv pairs each method with FLAP and with the rotation only, so the comparison with "
              "LS(lambda) is a point estimate.")
    # (f) compensation at all.
    subs = [("perplexity", tested("rcpu_rotation", "rcpu_none", "ppl_ratio", "better"))]
    if zs_ok:
        subs.append(("zero-shot accuracy", tested("rcpu_rotation", "rcpu_none", "zs_mean", "better")))
        subs.append(("the same, mean without BoolQ", tested("rcpu_rotation", "rcpu_none", "zs_mean_no_boolq", "better")))
    bullet("(f) The rotation improves on the RCPU score without compensation.",
           "perplexity " + paper_text("rcpu_rotation", "rcpu_none", "ppl_ratio"), subs)
    # (g) ablation.
    abl_r = next((r for r in sorted(set(num(x.get("ratio")) for x in S.runs if "ablation" in studies(x)))), None)
    if abl_r is not None:
        ab = {m: S.find(m, abl_r, "ablation", windows=S.calib)
              for m in ("rcpu_rotation", "rcpu_rotation_o_only", "rcpu_rotation_down_only")}
        if all(ab.values()):
            get, kind = S.choose(ab.values())
            both, o_only, d_only = (get(ab[m]) for m in ("rcpu_rotation", "rcpu_rotation_o_only", "rcpu_rotation_down_only"))
            # Intervals from comparisons.csv (on the windows both runs have: the ablation's side windows).
            parts = []
            for m, label in (("rcpu_rotation_o_only", "o_proj only"), ("rcpu_rotation_down_only", "down_proj only")):
                c = S.compare(ab["rcpu_rotation"], ab[m], "ppl_ratio")
                st = claim_state(c, "ppl_ratio", "better")
                parts.append("against %s: **%s** (PPL ratio %s)" % (label, claim_word(st, c["point"]), fmt_cmp(c, "ppl_ratio")))
            w("- **(g) Compensating both modules beats compensating either one alone.** Paper, 20%%: 14.40 vs 15.47 "
              "o_proj only, 15.76 down_proj only. Here at %s, perplexity %.2f (both) vs %.2f (o_proj only) and %.2f "
              "(down_proj only) on %s; both %s."
              % (pct(abl_r), both, o_only, d_only, S.windows_label(kind), "; ".join(parts)))
        else:
            w("- **(g) Compensating both modules beats compensating either one alone.** %s (ablation at %s)."
              % (NOT_RUN, pct(abl_r)))
    w("")


def seed_list(S):
    seeds = [S.seed] if S.seed else []
    for s in S.meta.get("seeds", "").split():
        if s not in seeds:
            seeds.append(s)
    for r in S.runs:
        if "seeds" in studies(r) and r.get("seed") and r["seed"] not in seeds:
            seeds.append(r["seed"])
    return seeds


def render_seeds(S, w):
    sr = S.sr
    seeds = seed_list(S)
    w("## Calibration seeds\n")
    w("%s removed; the calibration windows drawn with each seed (the main seed %s is the one of every other "
      "table); each cell: perplexity on %s / mean zero-shot accuracy (%%). The spread says how much of a "
      "difference between methods one draw of calibration text can make.\n" % (pct(sr), S.seed, S.windows_label("test")))
    methods = ("flap", "rcpu_rotation", "rcpu_rotation_scale", "ridge")

    def run_at(m, s):
        if s == S.seed:
            return S.main_run(m, sr)
        return S.find(m, sr, "seeds", windows=S.calib, seed=s, stats="pruned_prefix")

    rows = []
    for m in methods:
        cells, pv, zv = [NAMES[m]], [], []
        for s in seeds:
            run = run_at(m, s)
            if run is None:
                cells.append(NOT_RUN)
                continue
            pv.append(S.test_ppl(run))
            zv.append(S.zs(run))
            cells.append("%s / %s" % (ppl(S.test_ppl(run)), acc(S.zs(run))))
        cells.append(spread(pv, lambda v: "%.2f" % v))
        cells.append(spread(zv, lambda v: "%.2f" % (100 * v)))
        rows.append(cells)
    w(table(["method"] + ["seed %s%s" % (s, " (main)" if s == S.seed else "") for s in seeds]
            + ["perplexity: mean, min-max, sample sd", "accuracy (%): mean, min-max, sample sd"], rows) + "\n")
    both = [(s, run_at("rcpu_rotation", s), run_at("flap", s)) for s in seeds]
    both = [(s, a, b) for s, a, b in both if a is not None and b is not None]
    if both:
        p_w = [s for s, a, b in both if S.test_ppl(a) < S.test_ppl(b)]
        z_w = [s for s, a, b in both if S.zs(a) > S.zs(b)]
        w("Point estimates per seed: the rotation has the lower perplexity than FLAP at %d of %d seeds and the higher "
          "mean accuracy at %d of %d%s.\n" % (len(p_w), len(both), len(z_w), len(both),
                                             "" if S.has_zs else " (no zero-shot results)"))


def render_statistics(S, w):
    w("## Statistics source: layer by layer or from the dense model\n")
    w("`pruned_prefix` (rcpu's default): each layer's statistics are collected on the outputs of the "
      "already-pruned layers. `dense`: every layer's statistics come from the dense model in one pass, which is "
      "how FLAP's own code collects them, so the paper's FLAP numbers correspond to `dense`; the main tables "
      "report FLAP both ways. Perplexity on %s / mean zero-shot accuracy (%%).\n" % S.windows_label("test"))
    st_ratios = sorted(set(num(r.get("ratio")) for r in S.runs if "statistics" in studies(r))) or [S.sr]
    methods = ["flap", "flap_alam", "rcpu_rotation"]
    for r in S.runs:
        if "statistics" in studies(r) and r.get("method_id") not in methods:
            methods.append(r["method_id"])
    rows, said = [], []
    for ratio in st_ratios:
        for m in methods:
            pre = S.find(m, ratio, "statistics", windows=S.calib, stats="pruned_prefix")
            den = S.find(m, ratio, "statistics", windows=S.calib, stats="dense")
            cell = lambda run: "%s / %s" % (ppl(S.test_ppl(run)), acc(S.zs(run))) if run else NOT_RUN
            verdict = ""
            if pre and den:
                # dense against pruned_prefix: the paired intervals of comparisons.csv (else point estimates).
                parts = []
                for metric in ("ppl_ratio", "zs_mean"):
                    c = S.compare(den, pre, metric)
                    if c is not None:
                        parts.append("%s, %s" % (fmt_cmp(c, metric), ci_verdict(c, metric)))
                        said.append((m, ratio, metric, better(c, metric), c["point"]))
                verdict = " / ".join(parts)
            rows.append([pct(ratio), NAMES.get(m, m), cell(pre), cell(den), verdict or NOT_RUN])
    w(table(["ratio", "method", "pruned_prefix", "dense", "dense against pruned_prefix"], rows) + "\n")
    if said:
        def who(metric, b):
            return ", ".join("%s at %s" % (NAMES.get(m, m), pct(r)) for m, r, mt, bb, _ in said if mt == metric and bb == b) or "none"
        point = [p for *_, p in said]
        w("Last column: the perplexity ratio (dense over layer by layer) and the accuracy difference (dense minus layer "
          "by layer, points), with %s. Dense statistics are better in perplexity for %s, worse for %s; better in "
          "accuracy for %s, worse for %s; the rest show no %sdifference.\n" % (
              "their paired bootstrap 95% intervals" if not any(point) else
              "point estimates only (comparisons.csv does not pair these runs)" if all(point) else
              "the paired bootstrap 95% intervals of comparisons.csv, or the point estimate where it does not pair the runs",
              who("ppl_ratio", "better"), who("ppl_ratio", "worse"), who("zs_mean", "better"), who("zs_mean", "worse"),
              "" if all(point) else "significant "))


def render_side_studies(S, w, out_dir, base):
    runs, meta, ratios, calib, dense = S.runs, S.meta, S.ratios, S.calib, S.dense
    model_name = S.model_name

    # Ablation.
    abl = [("rcpu_none", "none (RCPU score only)"), ("rcpu_rotation_o_only", "o_proj only"),
           ("rcpu_rotation_down_only", "down_proj only"), ("rcpu_rotation", "both (RCPU rotation)")]
    if "ablation" in S.planned or "ablation" in S.present:
        abl_ratios = sorted(set(num(x) for x in meta.get("ablation_ratios", "").split()) |
                            set(num(r.get("ratio")) for r in runs if "ablation" in studies(r)))
        w("## Ablation: which module to compensate\n")
        cells_runs = {(m, r): S.find(m, r, "ablation", windows=calib) for m, _ in abl for r in abl_ratios}
        get, kind = S.choose(cells_runs.values())
        w("RCPU score, rotation compensation applied to o_proj only, down_proj only, or both; test perplexity on "
          "%s%s.\n" % (S.windows_label(kind), "" if abl_ratios == ratios else
                       " (run at %s only, for time)" % ", ".join(pct(r) for r in abl_ratios)))
        rows = [[name] + [ppl(get(cells_runs[(m, r)])) if cells_runs[(m, r)] else NOT_RUN for r in abl_ratios]
                for m, name in abl]
        w(table(["compensated"] + [pct(r) for r in abl_ratios], rows) + "\n")

    # Ridge sweeps.
    sweeps = [("ridge", "ridge", "ridge_best", "proximal ridge LS(lambda)"),
              ("rcpu_rotation_ridge", "rotation_ridge", "rotation_ridge_best", "ridge toward the rotation")]
    sweeps = [s for s in sweeps if s[1] in S.planned or any(r.get("method_id") == s[0] and s[1] in studies(r) for r in runs)]
    if sweeps:
        w("## The ridges: the lambda sweep and how lambda was chosen\n")
        w("Proximal ridge LS(lambda) solves min ||Y - W' X_K||^2 + lambda ||W' - W_K||^2 per layer and module; the "
          "ridge toward the rotation (ours) pulls W' toward the rotated weight Q W_K instead of W_K. Both take "
          "lambda = a x tr(G_KK) / k (a relative strength: a fraction of the mean energy of a kept channel, so one "
          "value suits layers whose activations differ by orders of magnitude). Each a was run at the ratios "
          "below and scored on the **validation** windows (first half, disjoint from calibration); the a with "
          "the lowest validation perplexity was then evaluated on the test windows and the zero-shot tasks (the "
          "main tables); ratios without a sweep of their own take the a chosen at the nearest swept ratio.\n")
        lams = sorted(set(num(x) for x in meta.get("lambdas", "").split()) |
                      set(num(r.get("relative_lambda")) for r in runs if r.get("method_id") in ("ridge", "rcpu_rotation_ridge")
                          and ("ridge" in studies(r) or "rotation_ridge" in studies(r))))
        lams = [a for a in lams if not nan(a)]
        rows = []
        for mid, study, best_study, label in sweeps:
            sw_ratios = sorted(set(num(x) for x in meta.get("ridge_ratios", "").split()) |
                               set(num(r.get("ratio")) for r in runs if r.get("method_id") == mid and study in studies(r)
                                   and intval(r.get("val_windows")) > 0))
            for r in sw_ratios:
                best = S.find(mid, r, best_study, windows=calib)
                cells = []
                for a in lams:
                    run = S.find(mid, r, study, windows=calib,
                                 pred=lambda x, a=a: close(num(x.get("relative_lambda")), a) and intval(x.get("val_windows")) > 0)
                    c = ppl(run.get("val_ppl")) if run else NOT_RUN
                    if run and best and run["key"] == best["key"]:
                        c = "**" + c + "**"
                    cells.append(c)
                rows.append(["%s at %s" % (label, pct(r))] + cells)
        w("Validation perplexity (dense: %s); bold: chosen.\n" % ppl((dense or {}).get("val_ppl")))
        w(table(["sweep"] + ["a = %g" % a for a in lams], rows) + "\n")

    # Adaptive allocation.
    if "adaptive" in S.planned or "adaptive" in S.present:
        ad_ratios = sorted(set(num(r.get("ratio")) for r in runs if "adaptive" in studies(r))) or [S.sr]
        w("## FLAP's adaptive allocation (AL-AM) against a uniform ratio\n")
        cells_runs = {}
        for m_u, m_a in (("flap", "flap_alam"), ("rcpu_rotation", "rcpu_rotation_alam")):
            for r in ad_ratios:
                cells_runs[(m_u, r)] = S.main_run(m_u, r)
                cells_runs[(m_a, r)] = S.find(m_a, r, "adaptive", windows=calib, stats="pruned_prefix")
        get, kind = S.choose(cells_runs.values())
        w("AL-AM aims at the same global fraction of prunable parameters but lets each layer and module lose a "
          "different number of units (one threshold on standardised WIFV scores, a head costing its q, o and share "
          "of k, v parameters). The uniform ratio rounds each layer's count down (%s), so at a given ratio the "
          "AL-AM models can be the smaller ones: compare the parameter counts too. Test perplexity on %s.\n"
          % ("; ".join("at %s %d of %s heads and %d of %s channels" % (
              pct(r), math.floor(r * (S.n_heads or 0) + 1e-9), S.n_heads or "?", math.floor(r * (S.ffn or 0) + 1e-9),
              S.ffn or "?") for r in ad_ratios) if S.n_heads and S.ffn else "floor(ratio x units)",
             S.windows_label(kind)))
        rows = []
        for m in ("flap", "flap_alam", "rcpu_rotation", "rcpu_rotation_alam"):
            rows.append([NAMES[m]] + ["%s (%s params)" % (ppl(get(cells_runs[(m, r)])), cells_runs[(m, r)]["params"])
                                      if cells_runs[(m, r)] else NOT_RUN for r in ad_ratios])
        w(table(["method"] + [pct(r) for r in ad_ratios], rows) + "\n")

    # GQA.
    gqa = [r for r in runs if "gqa" in studies(r)]
    if gqa or "gqa" in S.planned:
        gr = num(gqa[0]["attention_ratio"]) if gqa else num(meta.get("gqa_ratio"))
        get, kind = S.choose(gqa)
        w("## Grouped-query attention: how heads are removed\n")
        w("%s has %s. Attention only (MLP untouched), %s of the query heads removed per layer under "
          "three rules: `query_heads` removes the lowest-scoring query heads anywhere and drops a KV head "
          "(its k and v rows) only when its whole group is gone; `kv_groups` removes whole KV groups (a group "
          "scores the sum of its heads' scores); `balanced` removes the same number of query heads from every "
          "group. Test perplexity on %s.\n" % (model_name, meta.get("model_config", "").split(", ffn")[0],
                                               pct(gr) if not nan(gr) else "a share", S.windows_label(kind)))
        gqa_methods = sorted(set(x["method_id"] for x in gqa), key=lambda m: (m != "rcpu_none", m)) or ["rcpu_rotation"]
        label = {"rcpu_none": "no compensation", "rcpu_rotation": "RCPU rotation"}
        rows = []
        for rule in ("query_heads", "kv_groups", "balanced"):
            cells, any_run = [rule], None
            for m in gqa_methods:
                run = next((x for x in gqa if x.get("gqa") == rule and x["method_id"] == m), None)
                cells.append(ppl(get(run)) if run else NOT_RUN)
                any_run = any_run or run
            cells += [any_run["heads"], any_run["kv_heads"], any_run["params"]] if any_run else [NOT_RUN] * 3
            rows.append(cells)
        w(table(["rule"] + [label.get(m, NAMES.get(m, m)) for m in gqa_methods]
                + ["query heads left (all layers)", "KV heads left", "parameters"], rows) + "\n")

    # Calibration sweep.
    sweep = [r for r in runs if "sweep" in studies(r)]
    if sweep or "sweep" in S.planned:
        sr = S.sr
        sizes = sorted(set(intval(r["calib_windows"]) for r in sweep) | {intval(calib)})
        cells_runs = {(m, n): S.find(m, sr, "sweep", windows=n) for m in ("rcpu_rotation", "ridge") for n in sizes}
        none = S.main_run("rcpu_none", sr)
        get, kind = S.choose(list(cells_runs.values()) + [none])
        w("## Calibration size: rotation against ridge\n")
        w("%s of heads and channels removed, RCPU score; calibration on the first N of the random windows "
          "(nested sets); the ridge uses the lambda chosen above at this ratio. Test perplexity on %s.\n"
          % (pct(sr), S.windows_label(kind)))
        rows, series = [], []
        for m in ("rcpu_rotation", "ridge"):
            cells, pts = [], []
            for n in sizes:
                run = cells_runs[(m, n)]
                cells.append(ppl(get(run)) if run else NOT_RUN)
                if run and not nan(get(run)):
                    pts.append((n, get(run)))
            rows.append([NAMES[m]] + cells)
            series.append((NAMES[m], pts))
        if none and not nan(get(none)):
            series.append(("no compensation (%s windows)" % calib, [(n, get(none)) for n in sizes]))
        w(table(["method"] + ["N = %d" % n for n in sizes], rows) + "\n")
        d = S.dense_ppl(kind)
        if any(pts for _, pts in series):
            cal_svg = base + "-calibration.svg"
            svg_lines(os.path.join(out_dir, cal_svg), "%s, %s removed: perplexity vs calibration size" % (model_name, pct(sr)),
                      "calibration windows of %s tokens (log scale)" % meta.get("seq"), "perplexity (log scale)",
                      series, xlog=True, hline=("dense %.1f" % d, d) if d > 0 else None)
            w("![perplexity against calibration size](%s)\n" % cal_svg)
        both = [n for n in sizes if cells_runs[("rcpu_rotation", n)] and cells_runs[("ridge", n)]]
        if both:
            wins = [n for n in both if get(cells_runs[("rcpu_rotation", n)]) < get(cells_runs[("ridge", n)])]
            w("The rotation is better than the tuned ridge at %s of %d calibration sizes%s.\n"
              % (len(wins), len(both), (" (N = %s)" % ", ".join(map(str, wins))) if wins else ""))

    # Shift.
    shift = [r for r in runs if "shift" in studies(r)]
    if shift or "shift" in S.planned:
        sr = S.sr
        w("## Distribution shift: calibrate on Python's documentation, evaluate on WikiText\n")
        methods = ["flap", "rcpu_none", "rcpu_rotation", "ridge"]
        if any(r["method_id"] == "rcpu_rotation_scale" for r in shift):
            methods.insert(3, "rcpu_rotation_scale")
        pairs = {m: (S.main_run(m, sr), S.find(m, sr, "shift", corpus="pydoc", windows=calib)) for m in methods}
        get, kind = S.choose([x for pr in pairs.values() for x in pr])
        w("%s removed; calibration on %s random windows of the Python 3.11 documentation as Debian packages it "
          "(`%s`, %s tokens; scripts/fetch_shift_corpus.sh) instead of WikiText; the same WikiText test windows "
          "(perplexity on %s) and the same zero-shot documents.\n"
          % (pct(sr), calib, meta.get("shift_text"), meta.get("shift_tokens"), S.windows_label(kind)))
        rows = []
        for m in methods:
            wiki, py = pairs[m]
            a, b = get(wiki), get(py)
            row = [NAMES[m], ppl(a) if wiki else NOT_RUN, ppl(b) if py else NOT_RUN,
                   "%+.1f%%" % (100 * (b / a - 1)) if not nan(a + b) else (NOT_RUN if not (wiki and py) else "n/a")]
            if S.has_zs:
                za, zb = S.zs(wiki), S.zs(py)
                row += [acc(za) if wiki else NOT_RUN, acc(zb) if py else NOT_RUN,
                        signed(100 * (zb - za)) if not nan(za + zb) else (NOT_RUN if not (wiki and py) else "n/a")]
            rows.append(row)
        hdr = ["method", "PPL, calibrated on WikiText", "PPL, calibrated on Python docs", "change"]
        if S.has_zs:
            hdr += ["accuracy (%), WikiText", "accuracy (%), Python docs", "change (points)"]
        w(table(hdr, rows) + "\n")
        if S.has_zs:
            rows = []
            for m in methods:
                for corpus, run in (("WikiText", pairs[m][0]), ("Python docs", pairs[m][1])):
                    rows.append(["%s, %s" % (NAMES[m], corpus)] + ([acc(S.zs(run, t)) for t, _ in S.tasks] + [acc(S.zs(run))]
                                                                 if run else [NOT_RUN] * (len(S.tasks) + 1)))
            w("Per task (%), calibrated on each corpus:\n")
            w(table(["method, calibration"] + [n for _, n in S.tasks] + ["mean"], rows) + "\n")


def render_time(S, w):
    meta, runs, calib = S.meta, S.runs, S.calib
    w("## Time\n")
    if S.layers:
        per = {}
        for L in S.layers:
            per.setdefault(S.row_of(S.by_key.get(L["key"])) or L["key"].split("-r")[0], []).append(num(L["seconds_prune"]))
        rows = []
        for m in ("wanda_sp", "flap", "rcpu_rotation", "rcpu_rotation_scale", "ridge", "rcpu_rotation_ridge",
                  "rcpu_rotation_per_head"):
            v = [x for x in per.get(m, []) if not nan(x)]
            if v:
                rows.append([NAMES[m], "%.1f" % (1000 * statistics.median(v)), "%.1f" % (1000 * max(v))])
        if rows:
            w("Time to score, prune and compensate o_proj and down_proj of one layer (both modules, from their "
              "statistics; the dense and pruned forward passes are not included), over all layers and runs:\n")
            w(table(["method", "median ms per layer", "max ms"], rows) + "\n")
    pr = [num(r.get("prune_seconds")) for r in runs if r.get("method_id") != "dense" and intval(r.get("calib_windows")) == intval(calib)]
    pr = [x for x in pr if not nan(x) and x > 0]
    if pr:
        w("A whole pruning run (%s calibration windows through all layers, dense and pruned passes included): "
          "median %.0f s.\n" % (calib, statistics.median(pr)))
    full = [r for r in runs if r.get("method_id") != "dense" and S.is_full(r) and intval(r.get("test_windows")) > 0]
    if full:
        t = [S.run_time(r) for r in full]
        zt = [num(r.get("zs_seconds")) for r in full if num(r.get("zs_seconds")) > 0]
        w("A run of the paper's tables (pruning, then perplexity on %s%s) takes %s on average (%d runs%s).\n" % (
            S.windows_label("test"), " and the zero-shot tasks" if zt else "", hms(statistics.mean(t)), len(t),
            "; the zero-shot tasks %s of it" % hms(statistics.mean(zt)) if zt else ""))
    if meta.get("run_seconds_total"):
        total = num(meta["run_seconds_total"])
        w("The %s finished runs took **%s** in all (%.0f s: each run's pruning and evaluations as timed when it "
          "ran, the cached ones included; %s thread(s) on %s).\n" % (meta.get("runs_done", len(runs)), hms(total), total,
                                                                   meta.get("threads", "?"), meta.get("cpu", "this machine")))
        if meta.get("complete") == "yes":
            w("The whole study: **%s** of run time on this machine; its last invocation took %s (it takes the runs "
              "it already has from the cache).\n" % (hms(total), hms(num(meta.get("total_seconds")) or 0)))
        elif meta.get("complete") == "no":
            left = intval(meta.get("runs_remaining"))
            t = [S.run_time(r) for r in full if S.run_time(r) > 0]
            if t and left:
                avg = statistics.mean(t)
                w("Still to run: %d runs; at the average of the finished full-evaluation runs (%s each) about "
                  "**%s** more (side-window and validation-only runs cost less, so this errs long), %s in all."
                  "\n" % (left, hms(avg), hms(avg * left), hms(total + avg * left)))
            else:
                w("Still to run: %d runs (no finished full-evaluation run to estimate their time from).\n" % left)
        if meta.get("load_start"):
            w("Load average at the start and end of the last invocation: %s / %s.\n" % (meta.get("load_start"),
                                                                                       meta.get("load_end")))
    elif meta.get("total_seconds"):
        w("The whole study: %s s (%.1f min), %s threads; load average at start and end: %s / %s.\n"
          % (meta.get("total_seconds"), num(meta.get("total_seconds")) / 60, meta.get("threads"),
             meta.get("load_start"), meta.get("load_end")))


def main():
    args = sys.argv[1:]
    command = ""
    if "--command" in args:
        i = args.index("--command")
        command = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    render(args[0], args[1], command)
    print("render_results: wrote %s" % args[1], file=sys.stderr)


if __name__ == "__main__":
    main()
