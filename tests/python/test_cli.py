"""The Python module against the C++ library's CLI (apps/: `rcpu prune`, `rcpu stats`) on the same inputs:
the same statistics and the same pruned layer, and statistics written by Python read by the CLI and back.
Skipped when RCPU_CLI (set by CTest when the CLI is built) does not name the program."""
import json
import os
import subprocess

import numpy as np
import pytest

import rcpu

CLI = os.environ.get("RCPU_CLI", "")
pytestmark = pytest.mark.skipif(not os.path.isfile(CLI),
                                reason="SKIPPED: the rcpu CLI is not built (RCPU_CLI unset); build apps/")


def cli(*args):
    subprocess.run([CLI, *args, "--quiet"], check=True)


@pytest.fixture
def layer(tmp_path):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((700, 24)) * np.logspace(-1, 1, 24) + 0.5).astype(np.float32)
    W = rng.standard_normal((12, 24)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "W.npy", W)
    return tmp_path, x, W


@pytest.mark.parametrize("compensation", ["rotation", "proximal_ridge", "bias"])
def test_prune_equals_the_cli(layer, compensation):
    d, x, W = layer
    cli("prune", "--weight", str(d / "W.npy"), "--acts", str(d / "x.npy"), "--ratio", "0.25", "--head-dim", "4",
        "--compensation", compensation, "--lambda", "0.3", "--out", str(d / "out"))
    want = np.load(d / "out" / "weight.npy")
    report = json.loads((d / "out" / "report.json").read_text())
    # The CLI reads the file into column-major blocks: the same block in Fortran order takes the same
    # path, bit for bit; in C order the per-channel sums run in another order (rounding only).
    for order, exact in (("F", True), ("C", False)):
        s = rcpu.Statistics(24)
        s.update(np.asarray(x, order=order))
        got = rcpu.prune_layer(W, s, ratio=0.25, head_dim=4, compensation=compensation, lam=0.3)
        assert got.weight.dtype == want.dtype == np.float32
        assert got.kept_units == np.load(d / "out" / "kept_units.npy").tolist()
        assert got.kept_columns == np.load(d / "out" / "kept_columns.npy").tolist()
        scores = np.load(d / "out" / "scores.npy")
        if exact:
            assert np.array_equal(got.weight, want) and np.array_equal(got.unit_scores, scores), order
            assert got.report.after.relative_error == report["report"]["after"]["relative_error"]
        else:
            assert np.linalg.norm(got.weight - want) <= 1e-6 * np.linalg.norm(want)
            assert np.linalg.norm(got.unit_scores - scores) <= 1e-13 * np.linalg.norm(scores)


def test_statistics_round_trip_through_the_cli(layer):
    d, x, W = layer
    s = rcpu.Statistics(24)
    s.update(x[:300])
    s.save(str(d / "py-a"))
    b = rcpu.Statistics(24)
    b.update(x[300:])
    b.save(str(d / "py-b"))
    cli("merge", str(d / "py-a"), str(d / "py-b"), "--out", str(d / "merged"))  # the C++ side reads Python's
    cli("stats", "--acts", str(d / "x.npy"), "--out", str(d / "cli"))
    merged = rcpu.Statistics.load(str(d / "merged"))                              # and Python reads the C++ side's
    whole = rcpu.Statistics.load(str(d / "cli"))
    s.merge(b)
    assert merged.tokens == whole.tokens == 700
    # The same sums to rounding: the CLI merges into empty statistics and combines m2 in its own order.
    for name in ("sum", "abs_sum", "sq_sum", "m2", "gram"):
        for other in (merged, whole):
            a, c = getattr(other, name), getattr(s, name)
            assert np.linalg.norm(a - c) <= 1e-13 * np.linalg.norm(c), name
