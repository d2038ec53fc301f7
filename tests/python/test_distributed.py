"""Statistics rebuilt from their sums (Statistics.from_sums) and combined across shards
(rcpu.distributed.combine: the arithmetic of rcpu.distributed.all_reduce without processes), against
one Statistics that saw every token and against merge; covariance and l2_norm against numpy.
numpy only; the torch.distributed path itself is checked in tests/python/test_torch.py (with torch)
and, with 2 processes on SmolLM2, by tools/torch/distributed.py."""
import numpy as np
import pytest

import rcpu
import rcpu.distributed
from test_rcpu import activations, rel

QUANTITIES = ("sum", "abs_sum", "sq_sum", "m2", "mean", "variance", "gram")
PER_CHANNEL = ("abs_sum", "sq_sum", "m2", "variance")  # positive per channel: compared channel by channel


def close(a, b, q):
    """Relative difference: per channel for the positive moments (a low-variance channel's error is not
    hidden by the others), against the largest entry for the signed ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if q in PER_CHANNEL:
        return float(np.max(np.abs(a - b) / np.abs(b)))
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def shards_of(x, cuts, gram=True, dtype=None):
    out = []
    for a, b in zip([0] + cuts, cuts + [len(x)]):
        s = rcpu.Statistics(x.shape[1], gram=gram, dtype=dtype)
        if b > a:
            s.update(x[a:b])
        out.append(s)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_combine_equals_one_pass_and_merge(dtype):
    rng = np.random.default_rng(21)
    # Shards of very different means (a distribution shift between ranks), channels of very different
    # scales, and a common offset of 1e3 standard deviations in one channel.
    x = activations(rng, 900, 13)
    x[600:] += 40.0
    x[:, 5] = 1e3 + rng.standard_normal(900)
    x = x.astype(dtype)
    whole = rcpu.Statistics(13)
    whole.update(x)
    shards = shards_of(x, [0, 100, 600, 601])  # an empty first shard and a one-token shard included
    assert shards[0].tokens == 0 and shards[0].dtype == "unset"
    c = rcpu.distributed.combine(shards)
    merged = rcpu.Statistics(13)
    for s in shards:
        merged.merge(s)
    assert c.tokens == 900 and c.dtype == np.dtype(dtype).name and c.has_gram
    for q in QUANTITIES:
        assert close(getattr(c, q), getattr(whole, q), q) < 1e-12, q
        assert close(getattr(c, q), getattr(merged, q), q) < 1e-12, q


def test_combine_diagonal_and_errors():
    rng = np.random.default_rng(22)
    x = activations(rng, 50, 4)
    c = rcpu.distributed.combine(shards_of(x, [20], gram=False))
    assert not c.has_gram and c.tokens == 50
    assert rel(c.variance, x.var(0)) < 1e-13
    with pytest.raises(ValueError, match="shard 1 has 5 channels"):
        rcpu.distributed.combine([rcpu.Statistics(4), rcpu.Statistics(5)])
    with pytest.raises(ValueError, match="shards is empty"):
        rcpu.distributed.combine([])
    a, b = rcpu.Statistics(4), rcpu.Statistics(4)
    a.update(x[:10])
    b.update(x[10:20].astype(np.float32))
    with pytest.raises(ValueError, match=r"combine: the statistics take different dtypes \(float32, float64\)"):
        rcpu.distributed.combine([a, b])
    assert rcpu.distributed.combine([rcpu.Statistics(4)]).dtype == "float32"  # nothing seen: float32
    assert rcpu.distributed.combine([rcpu.Statistics(4), a]).dtype == "float64"  # an empty shard first


def test_from_sums_round_trip_and_checks():
    rng = np.random.default_rng(23)
    x = activations(rng, 64, 6)
    s = rcpu.Statistics(6)
    s.update(x)
    t = rcpu.Statistics.from_sums(s.tokens, s.sum, s.abs_sum, s.sq_sum, s.m2, s.gram, dtype="float64")
    assert t.tokens == 64 and t.dtype == "float64"
    for q in QUANTITIES:
        assert np.array_equal(getattr(t, q), getattr(s, q)), q
    # Pruning from rebuilt statistics is pruning from the originals.
    W = rng.standard_normal((5, 6))
    a, b = rcpu.prune_layer(W, s, ratio=0.5), rcpu.prune_layer(W, t, ratio=0.5)
    assert a.kept_columns == b.kept_columns and np.array_equal(a.weight, b.weight)
    bad_m2 = s.m2.copy()
    bad_m2[2] = -1.0
    with pytest.raises(ValueError, match="m2 must be >= 0"):
        rcpu.Statistics.from_sums(64, s.sum, s.abs_sum, s.sq_sum, bad_m2, s.gram)
    with pytest.raises(ValueError, match=r"gram is 5x5, expected 6x6"):
        rcpu.Statistics.from_sums(64, s.sum, s.abs_sum, s.sq_sum, s.m2, s.gram[:5, :5])
    with pytest.raises(ValueError, match="same length"):
        rcpu.Statistics.from_sums(64, s.sum, s.abs_sum[:5], s.sq_sum, s.m2)
    nan_sum = s.sum.copy()
    nan_sum[0] = np.nan
    with pytest.raises(ValueError, match="from_sums: sum"):
        rcpu.Statistics.from_sums(64, nan_sum, s.abs_sum, s.sq_sum, s.m2)


def test_covariance_and_l2_norm():
    rng = np.random.default_rng(24)
    x = activations(rng, 400, 7)
    s = rcpu.Statistics(7)
    s.update(x)
    assert rel(s.covariance, np.cov(x, rowvar=False, bias=True)) < 1e-12
    assert rel(s.l2_norm, np.linalg.norm(x, axis=0)) < 1e-13
    with pytest.raises(ValueError, match="diagonal"):
        d = rcpu.Statistics(7, gram=False)
        d.update(x)
        d.covariance
    with pytest.raises(ValueError, match="l2_norm"):
        rcpu.Statistics(7).l2_norm
