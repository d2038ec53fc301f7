#!/usr/bin/env python3
"""Checks scripts/render_results.py on a small study (tests/data/study_sample: a stories260K smoke run of
rcpu-prune-study with 5 documents per zero-shot task, so its numbers mean nothing) and on partial or older
copies of it: the page must hold the zero-shot table, the claims with verdicts and "not yet run" where a run
is missing, and any subset of the runs must render.

Run: /usr/bin/python3 tests/scripts/test_render_results.py   (unittest; standard library only)
"""
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "scripts", "render_results.py")
SAMPLE = os.path.join(ROOT, "tests", "data", "study_sample")


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(header)
        wr.writerows(rows)


class RenderResults(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="render_results_test_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def copy(self, name):
        """A copy of the sample to modify."""
        d = os.path.join(self.tmp, name)
        shutil.copytree(SAMPLE, d)
        return d

    def render(self, src, name="results"):
        out = os.path.join(self.tmp, name + "-page")
        os.makedirs(out, exist_ok=True)
        md = os.path.join(out, "results.md")
        p = subprocess.run([sys.executable, SCRIPT, src, md, "--command", "scripts/reproduce_results.sh"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, "render_results.py failed on %s:\n%s" % (src, p.stderr))
        with open(md, encoding="utf-8") as f:
            return f.read()

    def keep_runs(self, src, keep):
        """Keeps the rows of runs.csv for which keep(row dict) is true."""
        path = os.path.join(src, "runs.csv")
        header, rows = read(path)
        write(path, header, [r for r in rows if keep(dict(zip(header, r)))])

    @staticmethod
    def line_of(page, start):
        return next((l for l in page.splitlines() if l.startswith(start)), "")

    # --- the whole sample
    def test_sample_page(self):
        page = self.render(SAMPLE)
        self.assertIn("## Zero-shot accuracy (the paper's Table 2 on this model)", page)
        self.assertIn("| method | BoolQ | PIQA | HellaSwag | WinoGrande | ARC-e | ARC-c | OBQA | mean | mean w/o BoolQ "
                      "| BoolQ: says yes | PPL |", page)
        # BoolQ's yes/no bias: the note, from zs_boolq_yes and the gold share in meta.csv.
        self.assertIn("BoolQ on this model mostly measures a yes/no bias", page)
        self.assertIn("Of its gold answers 60.00% are yes. The dense model answers yes on 20.00%", page)
        self.assertIn("| dense (reference) | 20.00 | 80.00 | 40.00 | 20.00 | 40.00 | 0.00 | 20.00 | 31.43 | 33.33 | 20.00 |",
                      page)
        self.assertIn("Δ mean w/o BoolQ vs FLAP", page)
        self.assertIn("the same, mean without BoolQ", page)
        self.assertIn("5 documents", page)
        self.assertIn("zeroshot.md", page)
        self.assertIn("## The paper's claims on this model", page)
        self.assertIn("(a) The rotation beats FLAP in zero-shot accuracy", page)
        self.assertIn("(d) LS(lambda) wins perplexity but loses zero-shot accuracy", page)
        claims = page.split("## The paper's claims on this model")[1].split("\n## ")[0]
        self.assertRegex(claims, r"\*\*(holds|no significant difference|reversed)\*\*")
        self.assertIn("## How sure: paired bootstrap 95% intervals", page)
        self.assertRegex(page, r"significantly (better|worse)")
        self.assertIn("## Calibration seeds", page)
        self.assertIn("## Statistics source", page)
        self.assertIn("query heads lose 0/1/2 per layer at 10/20/30%", page)
        # The sample is partial: 2 runs left (FLAP at 20% and the ridge's chosen lambda among them).
        self.assertIn("Partial study: 50 of 52 planned runs done, 2 still to run", page)
        self.assertIn("not yet run", self.line_of(page, "| FLAP (WIFV + bias) |"))
        self.assertIn("not yet run", self.line_of(page, "| proximal ridge LS(lambda), lambda chosen on validation |"))
        # Extra rotation variants are on the side windows and marked.
        self.assertIn("†", self.line_of(page, "| proper rotation, det fix (ours) |"))
        self.assertIn("The 50 finished runs took", page)

    def test_deterministic(self):
        self.assertEqual(self.render(SAMPLE, "a"), self.render(SAMPLE, "a"))

    def test_deleted_run_is_not_yet_run(self):
        src = self.copy("deleted")
        self.keep_runs(src, lambda r: r["key"] != "rcpu_rotation_bias-r30.0-wikitext8")
        page = self.render(src)
        row = self.line_of(page, "| rotation + bias (ours) |")
        self.assertTrue(row.rstrip(" |").endswith("not yet run"), row)
        full = self.line_of(self.render(SAMPLE, "full"), "| rotation + bias (ours) |")
        self.assertNotIn("not yet run", full)

    def test_complete_has_no_banner(self):
        src = self.copy("complete")
        path = os.path.join(src, "meta.csv")
        header, rows = read(path)
        fix = {"complete": "yes", "runs_remaining": "0", "runs_done": "52"}
        write(path, header, [[k, fix.get(k, v)] for k, v in rows])
        page = self.render(src)
        self.assertNotIn("Partial study", page)
        self.assertIn("The whole study:", page)

    def test_ridge_claim_verdicts(self):
        """The central claim (d) with both runs present: a ridge made from the ridge toward the rotation."""
        src = self.copy("ridge")
        path = os.path.join(src, "runs.csv")
        header, rows = read(path)
        extra = []
        for r in rows:
            d = dict(zip(header, r))
            if d["method_id"] == "rcpu_rotation_ridge" and "rotation_ridge_best" in d["studies"]:
                d.update(key="ridge-" + d["key"], method_id="ridge", studies="main;ridge_best")
                extra.append([d[h] for h in header])
        write(path, header, rows + extra)
        path = os.path.join(src, "comparisons.csv")
        header, rows = read(path)
        rr = [dict(zip(header, r)) for r in rows]
        add = []
        for d in rr:
            if d["method_key"].startswith("rcpu_rotation_ridge-") and d["baseline_key"].startswith("rcpu_rotation-"):
                d = dict(d, method_key="ridge-" + d["method_key"])
                add.append([d[h] for h in header])
        write(path, header, rows + add)
        page = self.render(src)
        claims = page.split("## The paper's claims on this model")[1].split("\n## ")[0]
        together = self.line_of(claims, "  - Together:")
        self.assertIn("the paper's trade-off", together)
        self.assertIn("at 20%", together)

    def test_shift_has_zero_shot_columns(self):
        """The shift study (not in the sample): runs made from the 20% main runs, calibrated on "pydoc"."""
        src = self.copy("shift")
        path = os.path.join(src, "runs.csv")
        header, rows = read(path)
        extra = []
        for r in rows:
            d = dict(zip(header, r))
            if d["ratio"] == "0.2" and d["method_id"] in ("rcpu_none", "rcpu_rotation") and d["statistics"] == "pruned_prefix" \
                    and "main" in d["studies"]:
                d.update(key=d["key"].replace("wikitext", "pydoc"), calib_corpus="pydoc", studies="shift")
                extra.append([d[h] for h in header])
        write(path, header, rows + extra)
        page = self.render(src)
        shift = page.split("## Distribution shift")[1].split("\n## ")[0]
        self.assertIn("accuracy (%), Python docs", shift)
        self.assertIn("not yet run", self.line_of(shift, "| FLAP (WIFV + bias) |"))
        self.assertNotIn("not yet run", self.line_of(shift, "| RCPU rotation |"))
        self.assertIn("| RCPU rotation, Python docs |", shift)

    def test_side_study_intervals(self):
        """The statistics study's dense-against-layer-by-layer pairs and the ablation's one-module rotations
        against the rotation of both, once comparisons.csv holds them (the sample's tool did not pair them)."""
        src = self.copy("side")
        path = os.path.join(src, "comparisons.csv")
        header, rows = read(path)
        add = [("flap_alam-dense-r20.0-wikitext8", "flap_alam-r20.0-wikitext8", "ppl_ratio", "1.1", "1.05", "1.15", "4"),
               ("flap_alam-dense-r20.0-wikitext8", "flap_alam-r20.0-wikitext8", "zs_mean", "0.02", "-0.01", "0.05", "35"),
               ("rcpu_rotation_o_only-r20.0-wikitext8", "rcpu_rotation-r20.0-wikitext8", "ppl_ratio", "1.2", "1.1", "1.3", "4"),
               ("rcpu_rotation_down_only-r20.0-wikitext8", "rcpu_rotation-r20.0-wikitext8", "ppl_ratio", "1.05", "0.98",
                "1.12", "4")]
        cols = ["method_key", "baseline_key", "metric", "estimate", "lo", "hi", "n"]
        rows += [[dict(zip(cols, a), ratio="0.2")[h] for h in header] for a in add]
        write(path, header, rows)
        page = self.render(src)
        stats = page.split("## Statistics source")[1].split("\n## ")[0]
        row = self.line_of(stats, "| 20% | FLAP (WIFV + bias), AL-AM allocation |")
        self.assertIn("x1.100 [1.050, 1.150], significantly worse", row)
        self.assertIn("+2.00 points [-1.00, +5.00], no significant difference", row)
        # The rotation's pair is still missing: its point estimate, said so.
        self.assertIn("(point estimate only)", self.line_of(stats, "| 20% | RCPU rotation |"))
        self.assertIn("or the point estimate where it does not pair the runs", stats)
        g = self.line_of(page, "- **(g)")
        # Both against o_proj only: the inverse of o_proj only against both.
        self.assertIn("against o_proj only: **holds** (PPL ratio x0.833 [0.769, 0.909])", g)
        self.assertIn("against down_proj only: **no significant difference** (PPL ratio x0.952 [0.893, 1.020])", g)

    # --- partial and older inputs: they must render
    def test_dense_only(self):
        src = self.copy("dense_only")
        self.keep_runs(src, lambda r: r["method_id"] == "dense")
        page = self.render(src)
        self.assertIn("not yet run", self.line_of(page, "| RCPU rotation |"))
        self.assertIn("not yet run", page.split("## Zero-shot accuracy")[1])

    def test_dense_and_main_20(self):
        src = self.copy("main20")
        self.keep_runs(src, lambda r: r["method_id"] == "dense" or (r["ratio"] == "0.2" and "main" in r["studies"]))
        page = self.render(src)
        self.assertIn("### 20% removed", page)
        self.assertIn("not yet run", self.line_of(page, "| RCPU rotation |"))

    def test_no_runs_at_all(self):
        src = self.copy("empty")
        self.keep_runs(src, lambda r: False)
        os.remove(os.path.join(src, "comparisons.csv"))
        os.remove(os.path.join(src, "layers.csv"))
        self.render(src)

    def test_no_comparisons(self):
        src = self.copy("nocomp")
        os.remove(os.path.join(src, "comparisons.csv"))
        page = self.render(src)
        self.assertIn("No comparisons.csv", page)
        self.assertIn("point estimate", page)
        self.assertIn("**holds on the point estimate** (PPL ratio x0.902)", self.line_of(page, "- **(g)"))

    def test_no_meta(self):
        src = self.copy("nometa")
        os.remove(os.path.join(src, "meta.csv"))
        self.render(src)

    def test_old_format(self):
        """A runs.csv as the study wrote it before zero-shot, seeds and side windows."""
        src = self.copy("old")
        path = os.path.join(src, "runs.csv")
        header, rows = read(path)
        keep = [i for i, h in enumerate(header)
                if not (h.startswith("zs_") or h in ("seed", "statistics", "side_ppl"))]
        dense_stats = header.index("statistics")
        rows = [r for r in rows if r[dense_stats] != "dense" and "-s" not in r[0].split("wikitext")[-1]]
        write(path, [header[i] for i in keep], [[r[i] for i in keep] for r in rows])
        os.remove(os.path.join(src, "comparisons.csv"))
        mpath = os.path.join(src, "meta.csv")
        header, rows = read(mpath)
        old = ("date", "model", "model_config", "text", "shift_text", "tokens", "shift_tokens", "seq", "seed",
               "calib_windows", "test_windows", "test_windows_total", "val_windows", "sweep_ratio", "gqa_ratio",
               "lambdas", "ridge_ratios", "ablation_ratios", "cpu", "cores", "memory", "threads", "load_start",
               "load_end", "total_seconds", "backend", "blas", "compiler", "eigen")
        write(mpath, header, [r for r in rows if r[0] in old])
        page = self.render(src)
        self.assertIn("no zero-shot results", page)
        self.assertIn("## Perplexity (the paper's Table 1 on this model)", page)

    def test_random_subsets(self):
        """Random subsets of runs.csv and comparisons.csv (fixed seeds, so the test is repeatable)."""
        for trial in range(6):
            rng = random.Random(1000 + trial)
            src = self.copy("random%d" % trial)
            frac = rng.choice([0.2, 0.5, 0.8])
            self.keep_runs(src, lambda r: rng.random() < frac)
            path = os.path.join(src, "comparisons.csv")
            header, rows = read(path)
            write(path, header, [r for r in rows if rng.random() < frac])
            page = self.render(src, "random%d" % trial)
            self.assertIn("not yet run", page)


if __name__ == "__main__":
    unittest.main()
